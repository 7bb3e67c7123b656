// Package providertest is the conformance suite every provider passes
// against its sandbox. A provider's test file is a few lines:
//
//	func TestConformance(t *testing.T) {
//		providertest.RunConformanceTests(t, newHarness, providertest.Features{})
//	}
//
// Optional behaviour is declared in Features, never skipped ad hoc.
package providertest

import (
	"context"
	"encoding/json"
	"errors"
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
	// Order returns a valid order, distinct for each n.
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
	// SubmitPending: a new order comes back pending and reaches paid
	// through Lookup (which pays and polls), instead of paid at once.
	SubmitPending bool
	// FailBeforeCode is the code a 5xx before creation maps to for a create
	// call. Providers that cannot tell it from a failure after creation
	// report Ambiguous; the zero value means Ambiguous.
	FailBeforeCode providers.Code
}

// RunConformanceTests runs the suite. newHarness is called once per subtest,
// so each subtest has its own sandbox.
func RunConformanceTests(t *testing.T, newHarness func(t *testing.T) Harness, f Features) {
	t.Helper()
	if f.FailBeforeCode == providers.OK {
		f.FailBeforeCode = providers.Ambiguous
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness, f Features)
	}{
		{"SubmitThenLookup", testSubmitThenLookup},
		{"LookupMissing", testLookupMissing},
		{"ValidateRejects", testValidateRejects},
		{"BadSignature", testBadSignature},
		{"Throttle", testThrottle},
		{"FailBeforeCreate", testFailBefore},
		{"FailAfterCreateThenLookup", testFailAfter},
		{"HangHonoursDeadline", testHang},
		{"Concurrent", testConcurrent},
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

// settle drives a submitted order to paid through Lookup, as the worker
// would poll a pending order.
func settle(t *testing.T, p providers.Provider, o providers.Order, r providers.Result) providers.Result {
	t.Helper()
	for i := 0; r.Status == providers.StatusPending; i++ {
		if i == 20 {
			t.Fatalf("order %s still pending after %d lookups", o.OrderNo, i)
		}
		if r.ProviderOrderID != "" {
			o.ProviderOrderID = r.ProviderOrderID
		}
		var err error
		r, err = p.Lookup(ctx(t), o)
		if err != nil {
			t.Fatalf("Lookup pending order: %v", err)
		}
	}
	return r
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

func testSubmitThenLookup(t *testing.T, h Harness, f Features) {
	p := h.Provider()
	o := h.Order(1)
	o.FirstAttempt = time.Now()
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
	if c := providers.CodeOf(err); c != providers.RateLimited {
		t.Fatalf("throttled Submit: code = %v (%v), want rate_limited", c, err)
	}
	if n := h.Count(o); n != 0 {
		t.Fatalf("sandbox holds %d orders after throttling, want 0", n)
	}
	checkNoSecrets(t, h, err)
	submit(t, h, f, o)
	if n := h.Count(o); n != 1 {
		t.Errorf("sandbox holds %d orders after the retry, want 1", n)
	}
}

func testFailBefore(t *testing.T, h Harness, f Features) {
	o := h.Order(5)
	o.FirstAttempt = time.Now()
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
	h.Faults().Script(fault.HangAfter)
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h.Provider().Submit(c, o)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Submit returned %v after its 300ms deadline", took)
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
