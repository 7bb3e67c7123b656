package tasks_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	aliyunsandbox "github.com/orderworker/orderworker/providers/aliyun/sandbox"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/unicloud"
	unicloudsandbox "github.com/orderworker/orderworker/providers/unicloud/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// A UniCloud order whose create may have been received (an answer of
// unknown effect) and which the listing does not show once the listing lag
// has passed is held for a person, not created again: what QueryOrders
// leaves out by default is not documented (it takes an OrderStatus filter
// whose values are not listed), and a listing that leaves out exactly the
// orders whose create failed midway would have every such order made
// twice. Resolved absent, it is created; with UNICLOUD_RECREATE_UNLISTED
// (UniCloud confirmed its listing shows every order) it is created again
// at once, as before.
func TestUnlistedUnicloudOrderIsHeldForAPerson(t *testing.T) {
	t.Parallel()
	for _, recreate := range []bool{false, true} {
		e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8, ListingLag: -1,
			Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
		sb := unicloudsandbox.New("UKey", "usecret")
		hs := httptest.NewServer(sb)
		t.Cleanup(hs.Close)
		c, err := unicloud.New(unicloud.Options{Endpoint: hs.URL, AccessKeyID: "UKey", AccessKeySecret: providers.Secret("usecret"), CreateOverrun: -1, RecreateUnlisted: recreate})
		if err != nil {
			t.Fatal(err)
		}
		e.set.Add(c)
		ctx := context.Background()
		task := enqueueTask(t, e, unicloudOrder("UL-1", "unlisted-nas"))
		ref := ledger.Ref{Provider: "unicloud", OrderNo: "UL-1"}
		sb.Faults().Script(fault.FailBefore) // nothing made, an answer of unknown effect
		var err2 error
		for range 4 {
			if err2 = e.handler.ProcessTask(ctx, task); err2 == nil || errors.Is(err2, asynq.SkipRetry) {
				break
			}
		}
		got, _ := e.ledger.Get(ctx, ref)
		if recreate {
			if got.State != tasks.StatePaid || len(sb.Orders()) != 1 {
				t.Errorf("recreate: %s, %d orders at the provider; want paid, created again once", got.State, len(sb.Orders()))
			}
			continue
		}
		if !errors.Is(err2, asynq.SkipRetry) || got.State != tasks.StateUnknown || !strings.Contains(got.Reason, "does not prove the order absent") {
			t.Fatalf("run = %v; %s %q; want the task ended, unknown, held for a person", err2, got.State, got.Reason)
		}
		if n := len(sb.Orders()); n != 0 {
			t.Fatalf("%d orders at the provider; want none created while held", n)
		}
		// The person checks the console: absent. Then it is created.
		if _, err := e.ledger.Resolve(ctx, ref, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "not in the console", By: "ann"}); err != nil {
			t.Fatalf("resolve absent: %v", err)
		}
		for range 4 {
			if err := e.handler.ProcessTask(ctx, task); err == nil {
				break
			}
		}
		if got, _ = e.ledger.Get(ctx, ref); got.State != tasks.StatePaid || len(sb.Orders()) != 1 {
			t.Errorf("after absent: %s, %d orders at the provider; want paid, created once", got.State, len(sb.Orders()))
		}
	}
}

// A UniCloud server may go on making an order after the create's request
// ended (its SDK waits 60 s; the worker gives up at 30 s, a gateway's
// error may cut a request shorter): with UNICLOUD_RECREATE_UNLISTED, a
// not-found is believed only once the listing lag has passed after the
// create's end plus that overrun (UNICLOUD_CREATE_OVERRUN). Counted from
// the end alone, an order the server made after the worker gave up, and
// listed a lag after that, was created twice.
func TestUnicloudNotFoundWaitsForTheCreateOverrun(t *testing.T) {
	t.Parallel()
	const lag, overrun = 200 * time.Millisecond, 3 * time.Second
	for _, withOverrun := range []bool{true, false} {
		e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8, ListingLag: lag,
			Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
		sb := unicloudsandbox.New("UKey", "usecret")
		hs := httptest.NewServer(sb)
		t.Cleanup(hs.Close)
		o := unicloud.Options{Endpoint: hs.URL, AccessKeyID: "UKey", AccessKeySecret: providers.Secret("usecret"),
			RecreateUnlisted: true, CreateOverrun: -1}
		if withOverrun {
			o.CreateOverrun = overrun
		}
		c, err := unicloud.New(o)
		if err != nil {
			t.Fatal(err)
		}
		e.set.AddSpec(unicloud.Spec(), c)
		ctx := context.Background()
		task := enqueueTask(t, e, unicloudOrder("OV-1", "overrun-nas"))
		ref := ledger.Ref{Provider: "unicloud", OrderNo: "OV-1"}
		sb.Faults().Script(fault.FailBefore) // nothing made (yet), an answer of unknown effect
		_ = e.handler.ProcessTask(ctx, task)
		got, _ := e.ledger.Get(ctx, ref)
		if got.State != tasks.StateUnknown {
			t.Fatalf("after the failed create: %s, want unknown", got.State)
		}
		ended := got.LastCreateAt
		// Past the listing lag, within the overrun.
		time.Sleep(2 * lag)
		run2 := e.handler.ProcessTask(ctx, task)
		got, _ = e.ledger.Get(ctx, ref)
		if !withOverrun {
			if got.State != tasks.StatePaid || len(sb.Orders()) != 1 {
				t.Errorf("without an overrun, a lag after the create: %s, %d orders; want created again, paid", got.State, len(sb.Orders()))
			}
			continue
		}
		if got.State != tasks.StateUnknown || len(sb.Orders()) != 0 || run2 == nil || !strings.Contains(run2.Error(), "within the listing lag of "+(lag+overrun).String()) {
			t.Fatalf("a lag after the create, within the overrun (%s after it): %s, %d orders, run %v; want still unknown, nothing created, waiting out the lag with the overrun",
				time.Since(ended), got.State, len(sb.Orders()), run2)
		}
		// Past both: not listed, created again.
		time.Sleep(time.Until(ended.Add(lag + overrun + 100*time.Millisecond)))
		for range 4 {
			if err := e.handler.ProcessTask(ctx, task); err == nil {
				break
			}
		}
		if got, _ = e.ledger.Get(ctx, ref); got.State != tasks.StatePaid || len(sb.Orders()) != 1 {
			t.Errorf("past the lag and the overrun: %s, %d orders; want created again once, paid", got.State, len(sb.Orders()))
		}
	}
}

// A UniCloud create answered throttled may have made the order (no
// document places a throttle before the order is made): it is looked up,
// never sent again blind. A throttle before anything was made: not listed,
// the order is created again, not held for a person, since its only
// unsure creates were throttled. A throttle after the order was made: the
// lookup finds it (by matching: UNICLOUD_TAKE_MATCHED here, else it waits
// for a person to confirm it, as any order found so), and it is not made
// twice (it was, every time, while throttles were taken for "nothing
// made").
func TestThrottledUnicloudCreateIsLookedUpThenCreatedOnce(t *testing.T) {
	t.Parallel()
	for _, after := range []bool{false, true} {
		e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 3, ListingLag: -1,
			Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
		sb := unicloudsandbox.New("UKey", "usecret")
		sb.ThrottleAfterCreate = after
		hs := httptest.NewServer(sb)
		t.Cleanup(hs.Close)
		c, err := unicloud.New(unicloud.Options{Endpoint: hs.URL, AccessKeyID: "UKey", AccessKeySecret: providers.Secret("usecret"), CreateOverrun: -1, TakeMatched: after})
		if err != nil {
			t.Fatal(err)
		}
		e.set.Add(c)
		ctx := context.Background()
		no := map[bool]string{false: "TH-before", true: "TH-after"}[after]
		task := enqueueTask(t, e, unicloudOrder(no, "throttled-nas-"+no))
		ref := ledger.Ref{Provider: "unicloud", OrderNo: no}
		// Throttled twice (the second create too, when the first made
		// nothing), then answered.
		sb.Faults().Script(fault.Throttle, fault.Throttle)
		var runErr error
		for range 8 {
			if runErr = e.handler.ProcessTask(ctx, task); runErr == nil || errors.Is(runErr, asynq.SkipRetry) {
				break
			}
		}
		got, _ := e.ledger.Get(ctx, ref)
		if runErr != nil || got.State != tasks.StatePaid {
			t.Fatalf("throttle after the order was made %v: run = %v; %s %q; want paid", after, runErr, got.State, got.Reason)
		}
		if n := len(sb.Orders()); n != 1 {
			t.Errorf("throttle after the order was made %v: %d orders at the provider; want 1", after, n)
		}
		if got.Failures != 0 {
			t.Errorf("throttle after the order was made %v: %d failures spent; want none (throttles)", after, got.Failures)
		}
	}
}

// A UniCloud create throttled after the server made the order, in a
// listing that shows a name outside ASCII as its UTF-8 read byte by byte
// (as a black-box run's server did; another listed the file system's id):
// the lookup sees an order made while that create may have acted, under
// another name, that no order of the ledger owns, which may be this one,
// and does not believe its not-found: the order stays unknown, made once
// (every such order was made twice while a throttle was taken for
// "nothing made" unless the listing showed our name). A throttle that
// made nothing, beside an order of ours listed as sent and owned, is
// still believed: the order is created again, once.
func TestThrottledCreateARenamingListingHidesIsNotMadeTwice(t *testing.T) {
	t.Parallel()
	for _, after := range []bool{true, false} {
		e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 3, ListingLag: -1,
			Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
		sb := unicloudsandbox.New("UKey", "usecret")
		sb.ThrottleAfterCreate = after
		sb.ShownName = mojibake
		addUnicloudWith(t, e, sb, unicloud.Options{})
		ctx := context.Background()
		run := func(task *asynq.Task) error { return runTask(e, task, 6) }
		// An order of ours, made and answered, its name in ASCII: listed
		// as sent, and owned.
		if err := run(enqueueTask(t, e, unicloudOrder("RN-0", "renamed-nas-zero"))); err != nil {
			t.Fatalf("throttle after the order was made %v: first order: %v", after, err)
		}
		sb.Faults().Script(fault.Throttle)
		_ = run(enqueueTask(t, e, unicloudOrder("RN-1", "测试盘-renamed-one")))
		got, _ := e.ledger.Get(ctx, ledger.Ref{Provider: "unicloud", OrderNo: "RN-1"})
		if n := len(sb.Orders()); n != 2 {
			t.Errorf("throttle after the order was made %v: %d orders at the provider; want 2 (each order made once)", after, n)
		}
		if !after {
			if got.State != tasks.StatePaid {
				t.Errorf("throttle before the order was made: %s %q; want created again, paid", got.State, got.Reason)
			}
			continue
		}
		if got.State != tasks.StateUnknown || !strings.Contains(got.Reason, "may be this order renamed") {
			t.Errorf("throttle after the order was made: %s %q; want unknown, the lookup saying an order no one owns may be this one renamed", got.State, got.Reason)
		}
	}
}

// runTask runs task up to tries times, until it ends (done, or SkipRetry):
// its last error.
func runTask(e *env, task *asynq.Task, tries int) error {
	var err error
	for range tries {
		if err = e.handler.ProcessTask(context.Background(), task); err == nil || errors.Is(err, asynq.SkipRetry) {
			break
		}
	}
	return err
}

// mojibake is a sandbox order's instance name as a listing that reads its
// UTF-8 bytes one by one as characters shows it.
func mojibake(o unicloudsandbox.Order) string {
	var b strings.Builder
	for i := 0; i < len(o.InstanceName); i++ {
		b.WriteRune(rune(o.InstanceName[i]))
	}
	return b.String()
}

// An Aliyun order whose create may have been received and which order/query
// does not show once the listing lag has passed is held for a person, not
// created again: which orders order/query lists is not documented, and one
// that lists only paid orders (here the sandbox's) would have every such
// order made twice (a black-box run: 24 of 100 orders made two or three
// times). Resolved paid with the console's order id, it is paid; with
// ALIYUN_RECREATE_UNLISTED (Aliyun confirmed its listing shows unpaid
// orders) it is created again at once, as before, here twice over.
func TestUnlistedAliyunOrderIsHeldForAPerson(t *testing.T) {
	t.Parallel()
	for _, recreate := range []bool{false, true} {
		e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8, ListingLag: -1,
			Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
		sb := addAliyun(t, e, func(o *aliyun.Options) { o.AutoPay, o.RecreateUnlisted = true, recreate })
		sb.Unlisted = func(o aliyunsandbox.Order) bool { return aliyun.PaymentStatus(o.PaymentStatus) != aliyun.PaymentPaid }
		ctx := context.Background()
		task := enqueueTask(t, e, []byte(`{"provider":"aliyun","order_no":"AUL-1","params":{"iotId":"devU","commodityCode":"streamingResource_20_10","copies":1}}`))
		ref := ledger.Ref{Provider: "aliyun", OrderNo: "AUL-1"}
		sb.Faults().Script(fault.FailAfter) // made, unpaid; the answer a 500
		var err error
		for range 6 {
			if err = e.handler.ProcessTask(ctx, task); err == nil || errors.Is(err, asynq.SkipRetry) {
				break
			}
		}
		got, _ := e.ledger.Get(ctx, ref)
		if recreate {
			if got.State != tasks.StatePaid || sb.Count("devU") != 2 {
				t.Errorf("recreate: %s, %d orders on the device; want paid, created again (the first left unpaid)", got.State, sb.Count("devU"))
			}
			continue
		}
		if !errors.Is(err, asynq.SkipRetry) || got.State != tasks.StateUnknown || !strings.Contains(got.Reason, "does not prove the order absent") {
			t.Fatalf("run = %v; %s %q; want the task ended, unknown, held for a person", err, got.State, got.Reason)
		}
		if n := sb.Count("devU"); n != 1 {
			t.Fatalf("%d orders on the device; want the one the first create made, none more", n)
		}
		// The person finds it in the console, and pays it there.
		var id string
		for _, o := range sb.Orders()["devU"] {
			id = o.OrderID
		}
		if _, err := e.ledger.Resolve(ctx, ref, ledger.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: id, Note: "in the console", By: "ann"}); err != nil {
			t.Fatalf("resolve paid: %v", err)
		}
		if got, _ = e.ledger.Get(ctx, ref); got.State != tasks.StatePaid || got.ProviderOrderID != id || sb.Count("devU") != 1 {
			t.Errorf("after paid: %s with %q, %d orders on the device; want paid with %s, one order", got.State, got.ProviderOrderID, sb.Count("devU"), id)
		}
	}
}

// With UNICLOUD_RECREATE_UNLISTED, a lookup believes a not-found only from
// a listing whose instance names are the ones our creates sent: one that
// shows another field as the name (the file system's id here, as a
// black-box run's server did) makes every order of ours look like another
// instance's. An order of ours whose create was answered with its id, and
// which the listing shows under a name that cannot be its own, tells the
// lookup so: the not-found is not believed, and the order whose create's
// answer was lost is not created again (it was: 34 of 160 orders made two
// to four times in that run). With names shown as sent, the same order is
// found. With a data key, the name noted with the id is sealed, as params
// are: Redis holds it nowhere in clear.
func TestMisnamedListingIsNotBelievedAbsent(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name             string
		misnamed, sealed bool
	}{{"misnamed", true, false}, {"misnamed, sealed", true, true}, {"names as sent", false, false}} {
		opts := &tasks.HandlerOptions{MaxAttempts: 8, ListingLag: -1, Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}
		var sealer *tasks.Sealer
		if tt.sealed {
			sealer = newSealer(t)
			opts.Sealer = sealer
		}
		e := setup(t, &setupOpts{noServer: true, handler: opts})
		if sealer != nil {
			e.enqueuer = tasks.NewEnqueuer(e.client, e.ledger, e.set, &tasks.EnqueuerOptions{Sealer: sealer})
		}
		sb := unicloudsandbox.New("UKey", "usecret")
		if tt.misnamed {
			sb.ShownName = func(o unicloudsandbox.Order) string { return o.FileSystemID }
		}
		addUnicloudWith(t, e, sb, unicloud.Options{CreateOverrun: -1, RecreateUnlisted: true, TakeMatched: true})
		ctx := context.Background()
		run := func(task *asynq.Task) error { return runTask(e, task, 6) }
		// An order created and answered: its id is noted as one the
		// listing must show, with its name.
		if err := run(enqueueTask(t, e, unicloudOrder("MN-1", "misnamed-nas-one"))); err != nil {
			t.Fatalf("%s: first order: %v", tt.name, err)
		}
		// An order made, its create's answer lost.
		sb.Faults().Script(fault.FailAfter)
		_ = run(enqueueTask(t, e, unicloudOrder("MN-2", "misnamed-nas-two")))
		got, _ := e.ledger.Get(ctx, ledger.Ref{Provider: "unicloud", OrderNo: "MN-2"})
		if n := len(sb.Orders()); n != 2 {
			t.Errorf("%s: %d orders at the provider; want 2 (each order made once)", tt.name, n)
		}
		if tt.sealed {
			if dump := e.redis.Dump(t); strings.Contains(dump, "misnamed-nas") {
				t.Errorf("%s: Redis holds an instance name in clear:\n%s", tt.name, dump)
			}
		}
		if !tt.misnamed {
			if got.State != tasks.StatePaid {
				t.Errorf("%s: %s %q; want found and paid", tt.name, got.State, got.Reason)
			}
			continue
		}
		if got.State == tasks.StatePaid || !strings.Contains(got.Reason, "under an instance name that is not the one that create sent") {
			t.Errorf("%s: %s %q; want not paid, the lookup saying the listing's names are not the names sent", tt.name, got.State, got.Reason)
		}
	}
}

// A UniCloud order whose detail shows another name while it is being
// provisioned (the file system's id, at its first detail, which a lookup
// within the listing lag asks for) is found by the lookup past the lag,
// and not created again: the names lookups within the lag read are read
// again once its not-found would be believed (providers.Order.ShownFrom).
// Remembered as first read, they had such orders made twice (a black-box
// run).
func TestNamesShownLateDoNotHaveAnOrderCreatedAgain(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8, ListingLag: 3 * time.Second, Backoff: lagBackoff}})
	sb := unicloudsandbox.New("UKey", "usecret")
	var served atomic.Int32 // details that showed the file system's id
	sb.ShownName = func(o unicloudsandbox.Order) string {
		if served.CompareAndSwap(0, 1) {
			return o.FileSystemID
		}
		return o.InstanceName
	}
	addUnicloudWith(t, e, sb, unicloud.Options{CreateOverrun: -1, RecreateUnlisted: true, TakeMatched: true})
	sb.Faults().Script(fault.FailAfter) // made, its answer lost
	e.startServer(t)
	e.enqueue(t, unicloudOrder("NL-1", "late-named-nas"))
	ref := ledger.Ref{Provider: "unicloud", OrderNo: "NL-1"}
	var rec *tasks.Record
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var err error
		if rec, err = e.ledger.Get(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
		if rec.State == tasks.StatePaid || rec.State == tasks.StateErrored {
			break
		}
	}
	if n := len(sb.Orders()); n != 1 || rec.State != tasks.StatePaid {
		t.Errorf("%d orders at the provider, the record %s %q; want 1, paid", n, rec.State, rec.Reason)
	}
	var looks int
	for _, a := range rec.History {
		if a.Call == "lookup" {
			looks++
		}
	}
	if looks < 2 || served.Load() != 1 {
		t.Errorf("%d lookups, the file system's id shown %d times; want the order looked up within the lag (its detail read under the file system's id) and past it", looks, served.Load())
	}
}

// A UniCloud order whose first create was throttled, looked up and not
// found, then refused for its params (ProductConfigError), is errored: the
// refusal is the order's, since its only earlier create was throttled and
// found absent. (A black-box run: every such order was held for a person,
// and "resolve it absent" only sent the create to be refused again.)
func TestRefusedAfterAThrottledCreateIsErrored(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		// failLookups answers that many QueryOrders after the refusal with
		// a 500: a lookup that fails keeps the order's reason, and adds
		// what it met (an ambiguous one rewrites it:
		// TestRefusalAfterThrottlesOutlivesAnAmbiguousLookup).
		failLookups int32
	}{{"looked up once", 0}, {"a lookup failed between", 2}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 3, ListingLag: -1,
				Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
			sb := unicloudsandbox.New("UKey", "usecret")
			var creates, failed atomic.Int32
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch action := r.URL.Query().Get("Action"); {
				case action == "CreateOrder" && creates.Add(1) > 1:
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, `{"Status":false,"Auth":true,"Code":"ProductConfigError","Msg":"no such specification","RequestId":"r-1"}`)
					return
				case action == "QueryOrders" && creates.Load() > 1 && failed.Add(1) <= c.failLookups:
					w.WriteHeader(http.StatusInternalServerError)
					return
				}
				sb.ServeHTTP(w, r)
			}))
			t.Cleanup(hs.Close)
			cl, err := unicloud.New(unicloud.Options{Endpoint: hs.URL, AccessKeyID: "UKey", AccessKeySecret: providers.Secret("usecret"), CreateOverrun: -1})
			if err != nil {
				t.Fatal(err)
			}
			e.set.Add(cl)
			ctx := context.Background()
			task := enqueueTask(t, e, unicloudOrder("TH-refused", "throttled-then-refused"))
			sb.Faults().Script(fault.Throttle)
			var runErr error
			for range 12 {
				if runErr = e.handler.ProcessTask(ctx, task); runErr == nil || errors.Is(runErr, asynq.SkipRetry) {
					break
				}
			}
			got, _ := e.ledger.Get(ctx, ledger.Ref{Provider: "unicloud", OrderNo: "TH-refused"})
			if got.State != tasks.StateErrored || !strings.Contains(got.Reason, "ProductConfigError") {
				t.Errorf("run = %v; %s %q; want errored for the refusal", runErr, got.State, got.Reason)
			}
			if n, made := creates.Load(), len(sb.Orders()); n != 2 || made != 0 {
				t.Errorf("%d creates sent, %d orders made; want 2 sent (throttled, refused), none made", n, made)
			}
			if f := failed.Load(); f < c.failLookups {
				t.Errorf("%d lookups failed; want %d (the case not reached)", f, c.failLookups)
			}
		})
	}
}
