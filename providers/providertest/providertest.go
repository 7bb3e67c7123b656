// Package providertest is the conformance suite every provider passes
// against its sandbox. A provider's test file is a few lines:
//
//	func TestConformance(t *testing.T) {
//		providertest.RunConformanceTests(t, newHarness, providertest.Features{})
//	}
//
// Optional behaviour is declared in Features, never skipped ad hoc: a case
// that only makes sense for some providers (a snapshot for a Preparer, pay
// for a Payer) is part of the suite exactly when its Feature is declared,
// and the suite checks the declaration against the provider's interfaces.
package providertest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
)

// Harness is one provider client wired to a fresh sandbox.
type Harness interface {
	// Provider returns the real client, pointed at the sandbox with valid
	// credentials.
	Provider() providers.Provider
	// BadSecretProvider returns the real client pointed at the sandbox with
	// a wrong secret, so its signatures do not verify.
	BadSecretProvider() providers.Provider
	// Faults is the sandbox's fault injector.
	Faults() *fault.Injector
	// Order returns a valid order, distinct for each n (with its own
	// target: device, instance name or customer). A copy with another
	// OrderNo is another order for the same target, with the same
	// commodity.
	Order(n int) providers.Order
	// InvalidParams returns params that Validate must reject, each with a
	// word the reason must contain (usually the field name).
	InvalidParams() map[string]json.RawMessage
	// Count returns how many provider-side orders the sandbox holds for o.
	Count(o providers.Order) int
	// Secrets returns every credential string the client holds; none may
	// appear in any error text.
	Secrets() []string
}

// Features declares optional provider behaviour.
type Features struct {
	// SubmitPending: a new order comes back pending and Payable (the
	// harness's provider is a providers.Payer configured to pay) and
	// reaches paid through Pay and then Lookup, instead of paid at once.
	// The suite then checks that Lookup never pays (LookupDoesNotPay).
	SubmitPending bool
	// Prepares: the provider is a providers.Preparer. The suite takes the
	// snapshot before the first create wherever the worker would, and
	// checks that an order that existed before it is never identified as
	// the new one (SnapshotExcludesEarlierOrders).
	Prepares bool
	// FailBeforeCode is the code a 5xx before creation maps to for a create
	// call. Providers that cannot tell it from a failure after creation
	// report Ambiguous; the zero value means Ambiguous.
	FailBeforeCode providers.Code
	// ThrottleCode is the code a throttled create maps to; the zero value
	// means RateLimited. A provider whose documents describe no throttling
	// answer reads the sandbox's own as Ambiguous (the order is looked up
	// before it is created again).
	ThrottleCode providers.Code
}

type testCase struct {
	name string
	fn   func(t *testing.T, h Harness, f Features)
}

// RunConformanceTests runs the suite. newHarness is called once per subtest,
// so each subtest has its own sandbox.
func RunConformanceTests(t *testing.T, newHarness func(t *testing.T) Harness, f Features) {
	t.Helper()
	if f.FailBeforeCode == providers.OK {
		f.FailBeforeCode = providers.Ambiguous
	}
	if f.ThrottleCode == providers.OK {
		f.ThrottleCode = providers.RateLimited
	}
	tests := []testCase{
		{"DeclaredFeatures", testDeclaredFeatures},
		{"SubmitThenLookup", testSubmitThenLookup},
		{"LookupMissing", testLookupMissing},
		{"ValidateRejects", testValidateRejects},
		{"BadSignature", testBadSignature},
		{"Throttle", testThrottle},
		{"FailBeforeCreate", testFailBefore},
		{"FailAfterCreateThenLookup", testFailAfter},
		{"HangHonoursDeadline", testHang},
		{"Concurrent", testConcurrent},
		{"LookupNeverAdoptsAnotherOrder", testNeverAdopts},
	}
	if f.SubmitPending {
		tests = append(tests, testCase{"LookupDoesNotPay", testLookupDoesNotPay})
	}
	if f.Prepares {
		tests = append(tests, testCase{"SnapshotExcludesEarlierOrders", testSnapshot})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newHarness(t), f)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// settle drives a submitted order to paid as the worker would: Pay when a
// result says Payable, else Lookup (poll) a pending order.
func settle(t *testing.T, p providers.Provider, o providers.Order, r providers.Result) providers.Result {
	t.Helper()
	for i := 0; r.Status == providers.StatusPending; i++ {
		if i == 20 {
			t.Fatalf("order %s still pending after %d calls", o.OrderNo, i)
		}
		if r.ProviderOrderID != "" {
			o.ProviderOrderID = r.ProviderOrderID
		}
		var err error
		if r.Payable && !r.Unpaid {
			// The worker pays a Payable order; one it paid is errored as
			// unpaid only on a check that says Unpaid: a Payable result
			// without it would be paid again every listing lag, never
			// errored.
			t.Fatalf("result %+v is Payable but not Unpaid", r)
		}
		if r.Payable {
			payer, ok := p.(providers.Payer)
			if !ok {
				t.Fatalf("result %+v is Payable but %T is not a providers.Payer", r, p)
			}
			r, err = payer.Pay(ctx(t), o)
			if err != nil {
				t.Fatalf("Pay pending order: %v", err)
			}
			continue
		}
		r, err = p.Lookup(ctx(t), o)
		if err != nil {
			t.Fatalf("Lookup pending order: %v", err)
		}
	}
	return r
}

// prepare takes the snapshot a Preparer takes before an order's first
// create, as the worker does, and returns o with Known set.
func prepare(t *testing.T, p providers.Provider, f Features, o providers.Order) providers.Order {
	t.Helper()
	if !f.Prepares {
		return o
	}
	known, err := p.(providers.Preparer).Prepare(ctx(t), o)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if known == nil {
		t.Fatal("Prepare returned a nil snapshot: want a list, empty when there is nothing")
	}
	o.Known = known
	return o
}

// twin returns another order for o's target, with o's params.
func twin(o providers.Order, suffix string) providers.Order {
	b := o
	b.OrderNo += suffix
	b.Known, b.Owned, b.ProviderOrderID = nil, nil, ""
	return b
}

// owns reports the ids of other orders as owned, as the ledger does.
func owns(ids ...string) func(context.Context, string) (bool, error) {
	return func(_ context.Context, id string) (bool, error) {
		return id != "" && slices.Contains(ids, id), nil
	}
}

func submit(t *testing.T, h Harness, f Features, o providers.Order) providers.Result {
	t.Helper()
	p := h.Provider()
	if err := p.Validate(o.Params); err != nil {
		t.Fatalf("Validate(valid order): %v", err)
	}
	r, err := p.Submit(ctx(t), o)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	want := providers.StatusPaid
	if f.SubmitPending {
		want = providers.StatusPending
	}
	if r.Status != want {
		t.Fatalf("Submit status = %q, want %q", r.Status, want)
	}
	return r
}

// testDeclaredFeatures holds the declarations to the provider's interfaces,
// so a provider cannot leave a case out by not declaring it.
func testDeclaredFeatures(t *testing.T, h Harness, f Features) {
	p := h.Provider()
	if _, ok := p.(providers.Preparer); ok != f.Prepares {
		t.Errorf("%T: providers.Preparer is %v, Features.Prepares %v", p, ok, f.Prepares)
	}
	if _, ok := p.(providers.Payer); f.SubmitPending && !ok {
		t.Errorf("%T: Features.SubmitPending, but not a providers.Payer", p)
	}
}

func testSubmitThenLookup(t *testing.T, h Harness, f Features) {
	p := h.Provider()
	o := h.Order(1)
	o.FirstAttempt = time.Now()
	o = prepare(t, p, f, o)
	r := submit(t, h, f, o)
	r = settle(t, p, o, r)
	if r.Status != providers.StatusPaid {
		t.Fatalf("status after settle = %q, want paid", r.Status)
	}
	o.ProviderOrderID = r.ProviderOrderID
	got, err := p.Lookup(ctx(t), o)
	if err != nil {
		t.Fatalf("Lookup after submit: %v", err)
	}
	if got.Status != providers.StatusPaid {
		t.Errorf("Lookup status = %q, want paid", got.Status)
	}
	if got.ProviderOrderID != r.ProviderOrderID {
		t.Errorf("Lookup ProviderOrderID = %q, want %q", got.ProviderOrderID, r.ProviderOrderID)
	}
	// A lookup without the provider's id (as after a crash mid-submit) must
	// find the order too.
	o.ProviderOrderID = ""
	if _, err := p.Lookup(ctx(t), o); err != nil {
		t.Errorf("Lookup without provider id: %v", err)
	}
	if n := h.Count(o); n != 1 {
		t.Errorf("sandbox holds %d orders, want 1", n)
	}
}

func testLookupMissing(t *testing.T, h Harness, f Features) {
	o := h.Order(2)
	o.FirstAttempt = time.Now().Add(-time.Minute)
	_, err := h.Provider().Lookup(ctx(t), o)
	if c := providers.CodeOf(err); c != providers.NotFound {
		t.Fatalf("Lookup(never submitted) code = %v (%v), want not_found", c, err)
	}
	checkNoSecrets(t, h, err)
}

func testValidateRejects(t *testing.T, h Harness, f Features) {
	cases := h.InvalidParams()
	if len(cases) == 0 {
		t.Fatal("harness gives no invalid params")
	}
	for word, params := range cases {
		err := h.Provider().Validate(params)
		if c := providers.CodeOf(err); c != providers.InvalidArgument {
			t.Errorf("Validate(%s) code = %v (%v), want invalid_argument", params, c, err)
			continue
		}
		if !strings.Contains(err.Error(), word) {
			t.Errorf("Validate(%s) = %q, want the reason to name %q", params, err, word)
		}
	}
}

func testBadSignature(t *testing.T, h Harness, f Features) {
	o := h.Order(3)
	o.FirstAttempt = time.Now()
	_, err := h.BadSecretProvider().Submit(ctx(t), o)
	if c := providers.CodeOf(err); c != providers.Unauthenticated {
		t.Fatalf("Submit with a bad secret: code = %v (%v), want unauthenticated", c, err)
	}
	if providers.Retryable(providers.CodeOf(err)) {
		t.Errorf("a bad signature must not be retryable")
	}
	if n := h.Count(o); n != 0 {
		t.Errorf("sandbox holds %d orders after a rejected signature, want 0", n)
	}
	checkNoSecrets(t, h, err)
}

func testThrottle(t *testing.T, h Harness, f Features) {
	o := h.Order(4)
	o.FirstAttempt = time.Now()
	h.Faults().Script(fault.Throttle)
	_, err := h.Provider().Submit(ctx(t), o)
	if c := providers.CodeOf(err); c != f.ThrottleCode {
		t.Fatalf("throttled Submit: code = %v (%v), want %v", c, err, f.ThrottleCode)
	}
	if n := h.Count(o); n != 0 {
		t.Fatalf("sandbox holds %d orders after throttling, want 0", n)
	}
	checkNoSecrets(t, h, err)
	if providers.MaybeCreated(f.ThrottleCode) {
		// As the worker would: look the order up before creating again.
		if _, err := h.Provider().Lookup(ctx(t), o); providers.CodeOf(err) != providers.NotFound {
			t.Fatalf("Lookup after a throttled create: %v, want not_found", err)
		}
	}
	submit(t, h, f, o)
	if n := h.Count(o); n != 1 {
		t.Errorf("sandbox holds %d orders after the retry, want 1", n)
	}
}

func testFailBefore(t *testing.T, h Harness, f Features) {
	o := h.Order(5)
	o.FirstAttempt = time.Now()
	o = prepare(t, h.Provider(), f, o)
	h.Faults().Script(fault.FailBefore)
	_, err := h.Provider().Submit(ctx(t), o)
	if c := providers.CodeOf(err); c != f.FailBeforeCode {
		t.Fatalf("Submit with 5xx before create: code = %v (%v), want %v", c, err, f.FailBeforeCode)
	}
	checkNoSecrets(t, h, err)
	if _, err := h.Provider().Lookup(ctx(t), o); providers.CodeOf(err) != providers.NotFound {
		t.Fatalf("Lookup after 5xx before create: %v, want not_found", err)
	}
	submit(t, h, f, o)
	if n := h.Count(o); n != 1 {
		t.Errorf("sandbox holds %d orders, want 1", n)
	}
}

// reconcile is what the worker does after an ambiguous failure: look the
// order up, and submit again only when it is not found.
func reconcile(t *testing.T, h Harness, f Features, o providers.Order) providers.Result {
	t.Helper()
	p := h.Provider()
	r, err := p.Lookup(ctx(t), o)
	if providers.CodeOf(err) == providers.NotFound {
		t.Fatalf("Lookup after the order was created: not found")
	}
	if err != nil {
		t.Fatalf("Lookup after an ambiguous failure: %v", err)
	}
	return settle(t, p, o, r)
}

func testFailAfter(t *testing.T, h Harness, f Features) {
	o := h.Order(6)
	o.FirstAttempt = time.Now()
	o = prepare(t, h.Provider(), f, o)
	h.Faults().Script(fault.FailAfter)
	_, err := h.Provider().Submit(ctx(t), o)
	if c := providers.CodeOf(err); c != providers.Ambiguous {
		t.Fatalf("Submit with 5xx after create: code = %v (%v), want ambiguous", c, err)
	}
	checkNoSecrets(t, h, err)
	if r := reconcile(t, h, f, o); r.Status != providers.StatusPaid {
		t.Errorf("status after reconcile = %q, want paid", r.Status)
	}
	if n := h.Count(o); n != 1 {
		t.Errorf("sandbox holds %d orders, want exactly 1", n)
	}
}

func testHang(t *testing.T, h Harness, f Features) {
	o := h.Order(7)
	o.FirstAttempt = time.Now()
	o = prepare(t, h.Provider(), f, o)
	// A deadline short enough to keep the test quick; on a machine so
	// loaded that it passes before the request is even sent (nothing
	// written, no hang injected: the answer is then rightly
	// "unavailable"), the same again with a longer one.
	var err error
	for _, deadline := range []time.Duration{300 * time.Millisecond, time.Second, 3 * time.Second} {
		hangs := h.Faults().Counts()[fault.HangAfter]
		h.Faults().Script(fault.HangAfter)
		c, cancel := context.WithTimeout(context.Background(), deadline)
		start := time.Now()
		_, err = h.Provider().Submit(c, o)
		cancel()
		if took := time.Since(start); took > deadline+5*time.Second {
			t.Errorf("Submit returned %v after its %v deadline", took, deadline)
		}
		if h.Faults().Counts()[fault.HangAfter] > hangs {
			break
		}
		if code := providers.CodeOf(err); code != providers.Unavailable {
			t.Fatalf("Submit that never reached the sandbox within %v: code = %v (%v), want unavailable", deadline, code, err)
		}
		if n := h.Count(o); n != 0 {
			t.Fatalf("Submit that never reached the sandbox: the sandbox holds %d orders", n)
		}
		h.Faults().Reset()
		t.Logf("%v passed before the create was sent (%v): again with a longer deadline", deadline, err)
	}
	if code := providers.CodeOf(err); code != providers.Ambiguous {
		t.Fatalf("Submit that hung after create: code = %v (%v), want ambiguous", code, err)
	}
	checkNoSecrets(t, h, err)
	reconcile(t, h, f, o)
	if n := h.Count(o); n != 1 {
		t.Errorf("sandbox holds %d orders, want exactly 1", n)
	}
}

func testConcurrent(t *testing.T, h Harness, f Features) {
	p := h.Provider()
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := h.Order(100 + i)
			o.FirstAttempt = time.Now()
			r, err := p.Submit(ctx(t), o)
			if err == nil && r.Status == providers.StatusPending {
				o.ProviderOrderID = r.ProviderOrderID
				_, err = p.Lookup(ctx(t), o)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent submit: %v", err)
		}
	}
	for i := range n {
		if c := h.Count(h.Order(100 + i)); c != 1 {
			t.Errorf("order %d: sandbox holds %d, want 1", i, c)
		}
	}
}

// testNeverAdopts: order A's create fails before anything is created;
// order B, another order number for the same target and commodity, is
// created. A's lookup, told that B's order belongs to another record, must
// not take it for A's: A is not found (and so may be created), and once
// created, A's lookup finds A's own order, not B's.
func testNeverAdopts(t *testing.T, h Harness, f Features) {
	p := h.Provider()
	a := h.Order(8)
	a.FirstAttempt = time.Now()
	a = prepare(t, p, f, a)
	b := twin(a, "B")
	b = prepare(t, p, f, b)

	h.Faults().Script(fault.FailBefore)
	if _, err := p.Submit(ctx(t), a); providers.CodeOf(err) != f.FailBeforeCode {
		t.Fatalf("Submit A with 5xx before create: %v, want %v", err, f.FailBeforeCode)
	}
	rb := settle(t, p, b, submit(t, h, f, b))

	a.Owned = owns(rb.ProviderOrderID)
	r, err := p.Lookup(ctx(t), a)
	if c := providers.CodeOf(err); c != providers.NotFound {
		t.Fatalf("Lookup A (never created) with B's order owned = %+v, %v; want not_found (B's id is %q)", r, err, rb.ProviderOrderID)
	}
	checkNoSecrets(t, h, err)

	ra := submit(t, h, f, a)
	if rb.ProviderOrderID != "" && ra.ProviderOrderID == rb.ProviderOrderID {
		t.Fatalf("A and B were given the same provider order id %q", ra.ProviderOrderID)
	}
	got, err := p.Lookup(ctx(t), a)
	if err != nil {
		t.Fatalf("Lookup A after it was created: %v", err)
	}
	if got.ProviderOrderID != ra.ProviderOrderID {
		t.Errorf("Lookup A found %q, want A's own order %q (B's is %q)", got.ProviderOrderID, ra.ProviderOrderID, rb.ProviderOrderID)
	}
}

// testLookupDoesNotPay: Lookup only reads. A pending, Payable order stays
// so however often it is looked up, until Pay.
func testLookupDoesNotPay(t *testing.T, h Harness, f Features) {
	p := h.Provider()
	o := h.Order(9)
	o.FirstAttempt = time.Now()
	r := submit(t, h, f, o)
	if !r.Payable {
		t.Fatalf("Submit = %+v: pending but not Payable", r)
	}
	o.ProviderOrderID = r.ProviderOrderID
	for i := range 3 {
		got, err := p.Lookup(ctx(t), o)
		if err != nil {
			t.Fatalf("Lookup %d: %v", i, err)
		}
		if got.Status != providers.StatusPending || !got.Payable {
			t.Fatalf("Lookup %d = %+v: want still pending and Payable (a lookup must not pay)", i, got)
		}
	}
	pr, err := p.(providers.Payer).Pay(ctx(t), o)
	if err != nil {
		t.Fatalf("Pay: %v", err)
	}
	if pr.Payable {
		t.Errorf("Pay = %+v: Payable again at once", pr)
	}
	if r := settle(t, p, o, pr); r.Status != providers.StatusPaid {
		t.Errorf("status after Pay = %q, want paid", r.Status)
	}
}

// testSnapshot: an order for the same target that existed before Prepare,
// and that no record owns (made outside the worker), is never identified
// as the new order, though it was created moments before the first
// attempt.
func testSnapshot(t *testing.T, h Harness, f Features) {
	p := h.Provider()
	old := h.Order(10)
	old.FirstAttempt = time.Now()
	rold := settle(t, p, old, submit(t, h, f, old))

	o := twin(old, "N")
	o.FirstAttempt = time.Now()
	o = prepare(t, p, f, o)
	if rold.ProviderOrderID != "" && !slices.Contains(o.Known, rold.ProviderOrderID) {
		t.Fatalf("snapshot %v lacks the earlier order %q", o.Known, rold.ProviderOrderID)
	}

	h.Faults().Script(fault.FailBefore)
	if _, err := p.Submit(ctx(t), o); providers.CodeOf(err) != f.FailBeforeCode {
		t.Fatalf("Submit with 5xx before create: %v, want %v", err, f.FailBeforeCode)
	}
	r, err := p.Lookup(ctx(t), o)
	if c := providers.CodeOf(err); c != providers.NotFound {
		t.Fatalf("Lookup (never created) = %+v, %v; want not_found, not the earlier order %q", r, err, rold.ProviderOrderID)
	}

	h.Faults().Script(fault.FailAfter)
	if _, err := p.Submit(ctx(t), o); providers.CodeOf(err) != providers.Ambiguous {
		t.Fatalf("Submit with 5xx after create: %v, want ambiguous", err)
	}
	r = reconcile(t, h, f, o)
	if r.Status != providers.StatusPaid || r.ProviderOrderID == "" || r.ProviderOrderID == rold.ProviderOrderID {
		t.Errorf("reconciled %+v, want the new order, paid, not the earlier %q", r, rold.ProviderOrderID)
	}
	if n := h.Count(o); n != 2 {
		t.Errorf("sandbox holds %d orders for the target, want 2 (the earlier one and the new one)", n)
	}
}

func checkNoSecrets(t *testing.T, h Harness, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Errorf("error %q is %T, want *providers.Error", err, err)
	}
	for _, s := range h.Secrets() {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error text %q holds a credential", err)
		}
	}
}
