package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/providers/tencent"
	"github.com/orderworker/orderworker/providers/tencent/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

const appKey, appSecret = "TestAppKey", "TestAppSecret-5d2c1b"

type env struct {
	sandboxURL string
	redis      *taskstest.Server
	rdb        *redis.Client
	ledger     *tasks.Ledger
	sandbox    *sandbox.Server
	set        *providers.Set
	client     *asynq.Client
	enqueuer   *tasks.Enqueuer
	handler    *tasks.Handler
	srv        *tasks.Server
}

type setupOpts struct {
	secret   string // the worker's Tencent secret (default: the right one)
	noServer bool   // do not start the asynq server
	aof      bool   // Redis with AOF, so it can be restarted with its data
	handler  *tasks.HandlerOptions
}

func setup(t testing.TB, o *setupOpts) *env {
	t.Helper()
	if o == nil {
		o = &setupOpts{}
	}
	e := &env{redis: taskstest.StartRedis(t, &taskstest.Options{AOF: o.aof})}
	e.rdb = e.redis.Client(t)
	e.ledger = tasks.NewLedger(e.rdb)
	e.sandbox = sandbox.New(appKey, appSecret)
	e.sandbox.Faults().SetHangLimit(5 * time.Second)
	hs := httptest.NewServer(e.sandbox)
	t.Cleanup(hs.Close)
	e.sandboxURL = hs.URL
	secret := o.secret
	if secret == "" {
		secret = appSecret
	}
	tc, err := tencent.New(tencent.Options{Endpoint: hs.URL, AppKey: appKey, AppSecret: providers.Secret(secret), Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.set = providers.NewSet()
	e.set.Add(tc)
	e.set.Disable("unicloud", "no credentials configured", nil)
	redisOpt := asynq.RedisClientOpt{Addr: e.redis.Addr}
	e.client = asynq.NewClient(redisOpt)
	t.Cleanup(func() { e.client.Close() })
	e.enqueuer = tasks.NewEnqueuer(e.client, e.ledger, e.set, nil)
	ho := &tasks.HandlerOptions{MaxAttempts: 4, Backoff: tasks.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}}
	if o.handler != nil {
		ho = o.handler
	}
	ho.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if ho.ListingLag == 0 {
		// A lookup's not-found is believed at once here: the sandbox
		// lists an order as soon as it is created. TestListingLagHoldsARecreate
		// runs with the lag.
		ho.ListingLag = -1
	}
	e.handler = tasks.NewHandler(e.ledger, e.set, ho)
	if !o.noServer {
		e.startServer(t)
	}
	return e
}

func (e *env) startServer(t testing.TB) {
	t.Helper()
	srv, mux := tasks.NewServer(asynq.RedisClientOpt{Addr: e.redis.Addr}, e.handler, tasks.ServerOptions{
		Concurrency: 8, TaskCheckInterval: 20 * time.Millisecond, DelayedTaskCheckInterval: 50 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	t.Cleanup(srv.Shutdown)
}

func order(no string) []byte {
	return []byte(fmt.Sprintf(`{"provider":"tencent","order_no":%q,"params":{"CustomerId":"Customer100001","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":2}}`, no))
}

func (e *env) enqueue(t *testing.T, payload []byte) tasks.EnqueueResult {
	t.Helper()
	res, err := e.enqueuer.Enqueue(context.Background(), payload)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return res
}

// waitState waits for the order to reach want and returns its record.
func (e *env) waitState(t *testing.T, orderNo string, want tasks.State) *tasks.Record {
	t.Helper()
	return e.waitStateFor(t, orderNo, want, 15*time.Second)
}

func (e *env) waitStateFor(t *testing.T, orderNo string, want tasks.State, d time.Duration) *tasks.Record {
	t.Helper()
	deadline := time.Now().Add(d)
	var rec *tasks.Record
	for time.Now().Before(deadline) {
		var err error
		rec, err = e.ledger.Get(context.Background(), tasks.OrderRef{Provider: "tencent", OrderNo: orderNo})
		if err != nil {
			t.Fatal(err)
		}
		if rec != nil && rec.State == want {
			return rec
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("order %s: state %v, want %s (record %+v)", orderNo, stateOf(rec), want, rec)
	return nil
}

func stateOf(r *tasks.Record) any {
	if r == nil {
		return "no record"
	}
	return r.State
}

func TestEnqueueToPaid(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	res := e.enqueue(t, order("Order100001"))
	if res.Status != tasks.Enqueued || res.State != tasks.StateQueued {
		t.Fatalf("Enqueue = %+v, want enqueued/queued", res)
	}
	rec := e.waitState(t, "Order100001", tasks.StatePaid)
	if n := e.sandbox.Count("Order100001"); n != 1 {
		t.Errorf("sandbox holds %d orders, want 1", n)
	}
	if rec.Attempts != 1 || len(rec.History) != 1 {
		t.Fatalf("attempts = %d, history = %+v; want one attempt", rec.Attempts, rec.History)
	}
	a := rec.History[0]
	if a.Call != "submit" || a.Result != "ok" || a.HTTPStatus != 200 || a.Code != "OK" {
		t.Errorf("attempt = %+v, want a successful submit with HTTP 200, code OK", a)
	}
	if rec.OutcomeAt.IsZero() || rec.FirstAttemptAt.IsZero() {
		t.Errorf("record lacks timestamps: %+v", rec)
	}
	// Once paid, the same order again is a duplicate and creates no task.
	if res := e.enqueue(t, order("Order100001")); res.Status != tasks.Duplicate || res.State != tasks.StatePaid {
		t.Errorf("re-enqueue of a paid order = %+v, want duplicate/paid", res)
	}
	time.Sleep(200 * time.Millisecond)
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
		t.Errorf("ServiceCreateOrder called %d times, want 1", n)
	}
}

func TestSameOrderConcurrentlyOneProviderCall(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	var wg sync.WaitGroup
	results := make(chan string, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.enqueuer.Enqueue(context.Background(), order("Order-Concurrent"))
			if err != nil {
				t.Error(err)
				return
			}
			results <- res.Status
		}()
	}
	wg.Wait()
	close(results)
	counts := map[string]int{}
	for s := range results {
		counts[s]++
	}
	if counts[tasks.Enqueued] != 1 || counts[tasks.Duplicate] != 99 {
		t.Fatalf("statuses = %v, want 1 enqueued and 99 duplicate", counts)
	}
	e.waitState(t, "Order-Concurrent", tasks.StatePaid)
	time.Sleep(200 * time.Millisecond)
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
		t.Errorf("ServiceCreateOrder called %d times, want 1", n)
	}
}

func TestConflict(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	e.enqueue(t, order("Order-C"))
	other := []byte(`{"provider":"tencent","order_no":"Order-C","params":{"CustomerId":"Customer100001","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":3}}`)
	if res := e.enqueue(t, other); res.Status != tasks.Conflict || res.Reason == "" {
		t.Fatalf("Enqueue(same number, other params) = %+v, want conflict with a reason", res)
	}
	// Same params in another key order and spacing are the same order.
	same := []byte(`{"order_no":"Order-C","provider":"tencent","params":{"ItemNum":2, "ItemVNO":"FireBusiness","ItemId":"D-FireInsurance2020","CustomerId":"Customer100001"}}`)
	if res := e.enqueue(t, same); res.Status != tasks.Duplicate {
		t.Fatalf("Enqueue(same params reordered) = %+v, want duplicate", res)
	}
	info, err := asynq.NewInspector(asynq.RedisClientOpt{Addr: e.redis.Addr}).GetQueueInfo(tasks.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != 1 {
		t.Errorf("queue holds %d tasks, want 1", info.Size)
	}
}

// The same order written differently (2.0 for 2, an optional field sent
// as "" or null instead of left out) makes the same provider request, so it
// is a duplicate, not a conflict; a different value is a conflict.
func TestNormalizedParamsDedupe(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	first := `{"provider":"tencent","order_no":"Norm1","params":{"CustomerId":"C1","ItemId":"D-Fire","ItemNum":2}}`
	if res := e.enqueue(t, []byte(first)); res.Status != tasks.Enqueued {
		t.Fatalf("first = %+v", res)
	}
	for _, again := range []string{
		`{"provider":"tencent","order_no":"Norm1","params":{"ItemNum":2.0,"ItemId":"D-Fire","CustomerId":"C1"}}`,
		`{"provider":"tencent","order_no":"Norm1","params":{"CustomerId":"C1","ItemId":"D-Fire","ItemNum":20e-1,"ItemVNO":""}}`,
		`{"provider":"tencent","order_no":"Norm1","params":{"CustomerId":"C1","ItemId":"D-Fire","ItemNum":2,"ItemVNO":null}}`,
	} {
		if res := e.enqueue(t, []byte(again)); res.Status != tasks.Duplicate {
			t.Errorf("%s: %+v, want duplicate", again, res)
		}
	}
	for _, other := range []string{
		`{"provider":"tencent","order_no":"Norm1","params":{"CustomerId":"C1","ItemId":"D-Fire","ItemNum":3}}`,
		`{"provider":"tencent","order_no":"Norm1","params":{"CustomerId":"C1","ItemId":"D-Fire","ItemNum":2,"ItemVNO":"v2"}}`,
	} {
		if res := e.enqueue(t, []byte(other)); res.Status != tasks.Conflict {
			t.Errorf("%s: %+v, want conflict", other, res)
		}
	}
	if res := e.enqueue(t, []byte(`{"provider":"tencent","order_no":"Norm2","params":{"CustomerId":"C1","ItemId":"D-Fire","ItemNum":1.0000000000000001}}`)); res.Status != tasks.Invalid {
		t.Errorf("a non-integer ItemNum: %+v, want invalid", res)
	}
}

func TestInvalidOrdersStoreNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	tests := []struct{ payload, reason string }{
		{`{"provider":"nope","order_no":"A1","params":{}}`, `unknown provider "nope"`},
		{`{"provider":"tencent","order_no":"","params":{}}`, "order_no: required"},
		{`{"provider":"tencent","order_no":"` + strings.Repeat("x", 65) + `","params":{}}`, "order_no: longer than 64"},
		{`{"provider":"tencent","order_no":"A1"}`, "params: required"},
		{`{"provider":"tencent","order_no":"A1","params":{"CustomerId":"c","ItemId":"i","ItemNum":0}}`, "params.ItemNum: must be between 1"},
		{`{"provider":"tencent","order_no":"A1","params":{"CustomerId":"c","ItemId":"i","ItemNum":"2"}}`, "params.ItemNum: must be an integer"},
		{`{"provider":"tencent","order_no":"A1","params":{"ItemId":"i","ItemNum":1}}`, "params.CustomerId: required"},
		{`{"provider":"tencent","order_no":"A1","params":{"CustomerId":"c","ItemId":"i","ItemNum":1,"Extra":1}}`, "params.Extra: unknown field"},
		{`{"provider":"tencent","order_no":"A1","params":{"CustomerId":"c","ItemId":"i","ItemNum":1},"secret":"x"}`, `unknown field "secret"`},
		// A key that is not a plain name may be a person's: withheld.
		{`{"provider":"tencent","order_no":"A1","params":{"CustomerId":"c","ItemId":"i","ItemNum":1,"Zhang Wei 张伟":1}}`, "params.(a field name withheld): unknown field"},
		{`{"provider":"tencent","order_no":"A1","params":{"CustomerId":"c","ItemId":"i","ItemNum":1},"Zhang Wei 张伟":1}`, `unknown field "(a field name withheld)"`},
		{`{"provider":"tencent",`, "malformed payload"},
		{"{\"provider\":\"tencent\",\"order_no\":\"A\xff\"}", "not valid UTF-8"},
		{`[1]`, "must be a JSON object"},
		{`{"provider":"tencent","order_no":"A1","params":{"CustomerId":"` + strings.Repeat("x", tasks.MaxPayloadBytes) + `"}}`, "over the 65536-byte limit"},
	}
	for _, tt := range tests {
		res := e.enqueue(t, []byte(tt.payload))
		if res.Status != tasks.Invalid || !strings.Contains(res.Reason, tt.reason) {
			t.Errorf("Enqueue(%.60q) = %+v, want invalid with reason containing %q", tt.payload, res, tt.reason)
		}
	}
	if keys := e.rdb.Keys(context.Background(), "*").Val(); len(keys) != 0 {
		t.Errorf("invalid orders left keys in Redis: %v", keys)
	}
}

// heldOptions are a handler's options for the tests of orders held for
// the configuration: a small failure budget, which a held order must not
// spend.
func heldOptions(problems *tasks.Problems) *tasks.HandlerOptions {
	return &tasks.HandlerOptions{MaxAttempts: 2, ConfigWait: 50 * time.Millisecond, Problems: problems,
		Backoff: tasks.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}}
}

// heldThenPaid checks that order no, refused for the configuration (kind)
// by e's running worker, keeps being tried past its failure budget and
// waits unchanged, reported as kind (and not as any of absent); then that
// a worker with the right configuration (a Tencent client on e's sandbox)
// pays it, once. It returns the record as it waited.
func heldThenPaid(t *testing.T, e *env, no, kind string, problems *tasks.Problems, absent ...string) *tasks.Record {
	t.Helper()
	e.enqueue(t, order(no))
	deadline := time.Now().Add(10 * time.Second)
	for e.sandbox.Calls("ServiceCreateOrder") < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("the worker held by %s did not keep trying", kind)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Between two attempts (not while one is in flight, when the record
	// shows it): nothing spent, nothing left marked.
	var rec *tasks.Record
	for deadline := time.Now().Add(10 * time.Second); ; {
		rec = e.waitState(t, no, tasks.StateSubmitting)
		if rec.Inflight == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if rec.Failures != 0 || rec.Inflight != 0 {
		t.Errorf("failures = %d, inflight = %d; want 0, 0 (%s spends no budget)", rec.Failures, rec.Inflight, kind)
	}
	if err := problems.Err(); err == nil || !strings.Contains(err.Error(), kind) {
		t.Errorf("problems = %v, want %s reported", err, kind)
	}
	for _, other := range absent {
		if err := problems.Err(); err != nil && strings.Contains(err.Error(), other) {
			t.Errorf("problems = %v, want no %s", err, other)
		}
	}
	// The fix: a worker configured right takes it.
	e.restartConfiguredRight(t)
	e.waitState(t, no, tasks.StatePaid)
	if n := e.sandbox.Count(no); n != 1 {
		t.Errorf("sandbox holds %d orders, want 1", n)
	}
	return rec
}

// restartConfiguredRight stops e's worker and starts it again with a
// Tencent client configured right (on e's sandbox, its key and secret).
func (e *env) restartConfiguredRight(t *testing.T) {
	t.Helper()
	e.srv.Shutdown()
	good, err := tencent.New(tencent.Options{Endpoint: e.sandboxURL, AppKey: appKey, AppSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	e.set.Add(good)
	e.startServer(t)
}

// A worker whose credentials the provider refuses must not end orders:
// the refusal created nothing, so the order waits, unchanged, for a worker
// with the right credentials, and that one pays it.
func TestRejectedCredentialsLeaveTheOrderWaiting(t *testing.T) {
	t.Parallel()
	problems := tasks.NewProblems()
	e := setup(t, &setupOpts{secret: "not-the-secret", handler: heldOptions(problems)})
	rec := heldThenPaid(t, e, "Order-Sig", "credentials_rejected", problems)
	for _, a := range rec.History {
		if strings.Contains(a.Message, "not-the-secret") {
			t.Errorf("history %+v holds the secret", a)
		}
	}
}

// A worker whose credentials the provider refuses sends it one request a
// ConfigWait while it holds orders back (a probe), not one per order held:
// a gateway may throttle, or lock, a key that signs dozens of refused
// requests a minute. The orders wait all the same, unchanged, and a
// worker with the right credentials pays them.
func TestRejectedCredentialsAreProbedNotHammered(t *testing.T) {
	t.Parallel()
	problems := tasks.NewProblems()
	opts := heldOptions(problems)
	opts.ConfigWait = 400 * time.Millisecond
	e := setup(t, &setupOpts{secret: "not-the-secret", handler: opts})
	const n = 30
	for i := range n {
		e.enqueue(t, order(fmt.Sprintf("Order-Probe-%d", i)))
	}
	time.Sleep(time.Second) // every order met once, the first wave refused
	before := e.sandbox.Calls("ServiceCreateOrder")
	time.Sleep(4 * time.Second) // ten ConfigWaits: each held order met ten times
	calls := e.sandbox.Calls("ServiceCreateOrder") - before
	if calls < 3 || calls > 20 {
		t.Errorf("%d orders held for refused credentials, 4 s at a ConfigWait of 400 ms: %d refused creates; want a probe each ConfigWait, about 10 (not one per order each: about %d)", n, calls, n*10)
	}
	if o := e.sandbox.Orders(); len(o) != 0 {
		t.Errorf("sandbox holds orders for %d order numbers; want none", len(o))
	}
	e.restartConfiguredRight(t)
	for i := range n {
		no := fmt.Sprintf("Order-Probe-%d", i)
		e.waitState(t, no, tasks.StatePaid)
		if c := e.sandbox.Count(no); c != 1 {
			t.Errorf("%s: sandbox holds %d orders, want 1", no, c)
		}
	}
}

// A worker whose clock is off has every request refused for its
// timestamp: a configuration problem, like refused credentials. The
// order waits, unchanged and with its failure budget unspent, reported as
// clock_rejected (not errored once the budget is spent, as when the
// refusal counted as the provider being down), and a worker with a right
// clock pays it.
func TestAWorkersClockOffLeavesTheOrderWaiting(t *testing.T) {
	t.Parallel()
	problems := tasks.NewProblems()
	e := setup(t, &setupOpts{noServer: true, handler: heldOptions(problems)})
	skewed, err := tencent.New(tencent.Options{Endpoint: e.sandboxURL, AppKey: appKey, AppSecret: appSecret,
		Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	e.set.Add(skewed)
	e.startServer(t)
	heldThenPaid(t, e, "Order-Clock", "clock_rejected", problems, "credentials_rejected")
}

func TestAmbiguousFailureAfterCreateEndsPaidOnce(t *testing.T) {
	t.Parallel()
	for _, f := range []fault.Kind{fault.FailAfter, fault.HangAfter} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			e := setup(t, nil)
			e.sandbox.Faults().Script(f)
			e.enqueue(t, order("Order-Amb"))
			rec := e.waitState(t, "Order-Amb", tasks.StatePaid)
			if n := e.sandbox.Count("Order-Amb"); n != 1 {
				t.Fatalf("sandbox holds %d orders, want exactly 1", n)
			}
			if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
				t.Errorf("ServiceCreateOrder called %d times, want 1", n)
			}
			var calls []string
			for _, a := range rec.History {
				calls = append(calls, a.Call+":"+a.Result)
			}
			if len(calls) != 2 || calls[0] != "submit:ambiguous" || calls[1] != "lookup:ok" {
				t.Errorf("history = %v, want [submit:ambiguous lookup:ok]", calls)
			}
		})
	}
}

// A provider whose listing shows an order only a while after its create:
// a lookup's not-found within the listing lag is not believed, so the
// order whose answer was lost is found, not created again. Believed at
// once, the same not-found creates it twice.
func TestListingLagHoldsARecreate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		lag     time.Duration
		creates int
	}{
		{"lag", 3 * time.Second, 1},
		{"believed at once", -1, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, &setupOpts{handler: &tasks.HandlerOptions{MaxAttempts: 4, ListingLag: tt.lag,
				Backoff: tasks.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}}, noServer: true})
			e.sandbox.ListLag = 1500 * time.Millisecond
			e.sandbox.Faults().Script(fault.FailAfter)
			e.startServer(t)
			e.enqueue(t, order("Order-Lag"))
			rec := e.waitState(t, "Order-Lag", tasks.StatePaid)
			if n := e.sandbox.Calls("ServiceCreateOrder"); n != tt.creates {
				t.Errorf("ServiceCreateOrder called %d times, want %d", n, tt.creates)
			}
			if tt.creates != 1 {
				return
			}
			var calls []string
			for _, a := range rec.History {
				calls = append(calls, a.Call+":"+a.Result)
			}
			if len(calls) < 3 || calls[0] != "submit:ambiguous" || calls[1] != "lookup:not_found" || calls[len(calls)-1] != "lookup:ok" {
				t.Errorf("history = %v, want the submit, lookups not found within the lag, then found", calls)
			}
		})
	}
}

func TestFailureBeforeCreateRetriesAndCreatesOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.sandbox.Faults().Script(fault.FailBefore, fault.Throttle)
	e.enqueue(t, order("Order-Retry"))
	rec := e.waitState(t, "Order-Retry", tasks.StatePaid)
	if n := e.sandbox.Count("Order-Retry"); n != 1 {
		t.Fatalf("sandbox holds %d orders, want 1", n)
	}
	// 503 before create (ambiguous for a create call: looked up, not
	// found), then throttled (Tencent's documents describe no throttling
	// answer: the sandbox's own, RequestLimitExceeded, may have come after
	// the create acted, so it is ambiguous too: looked up, not found, but
	// it spends no failure), then created.
	var calls []string
	for _, a := range rec.History {
		calls = append(calls, a.Call+":"+a.Result)
	}
	want := []string{"submit:ambiguous", "lookup:not_found", "submit:ambiguous", "lookup:not_found", "submit:ok"}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("history = %v, want %v", calls, want)
	}
	if rec.Failures != 1 {
		t.Errorf("failures = %d, want 1 (the 503's; a throttle spends none)", rec.Failures)
	}
}

func TestRetryBudgetEndsErrored(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	for range 10 {
		e.sandbox.Faults().Script(fault.FailBefore)
	}
	e.enqueue(t, order("Order-Budget"))
	rec := e.waitState(t, "Order-Budget", tasks.StateErrored)
	if rec.Failures != 4 || !strings.Contains(rec.Reason, "not created after 4 failed attempts") {
		t.Errorf("failures = %d, reason = %q; want errored after the budget of 4", rec.Failures, rec.Reason)
	}
	if n := e.sandbox.Count("Order-Budget"); n != 0 {
		t.Errorf("sandbox holds %d orders, want 0", n)
	}
}

// A worker that died mid-attempt leaves the record submitting with the
// attempt in flight. The next run must look the order up, not resubmit.
func TestAbandonedAttemptIsReconciled(t *testing.T) {
	t.Parallel()
	for _, created := range []bool{true, false} {
		t.Run(fmt.Sprintf("created=%v", created), func(t *testing.T) {
			t.Parallel()
			e := setup(t, &setupOpts{noServer: true})
			ctx := context.Background()
			no := "Order-Abandoned"
			e.enqueue(t, order(no))
			// Simulate the dead worker: it began the step (the record says
			// a create is in flight) and never settled it; (when created)
			// the provider got the order.
			b, err := e.ledger.Begin(ctx, tasks.OrderRef{Provider: "tencent", OrderNo: no}, ledger.BeginArgs{Token: "dead-worker", LeaseTTL: 50 * time.Millisecond})
			if err != nil || !b.Record.InflightMarked {
				t.Fatalf("Begin = %+v, %v; want the create marked in flight", b, err)
			}
			if created {
				p, _ := e.set.Get("tencent")
				var pl tasks.Payload
				_ = json.Unmarshal(order(no), &pl)
				if _, err := p.Submit(ctx, providers.Order{OrderNo: no, Params: pl.Params}); err != nil {
					t.Fatal(err)
				}
			}
			e.startServer(t)
			rec := e.waitState(t, no, tasks.StatePaid)
			if n := e.sandbox.Count(no); n != 1 {
				t.Fatalf("sandbox holds %d orders, want exactly 1", n)
			}
			// Created: only the dead worker's call. Not created: one
			// submission, after the lookup found nothing.
			if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
				t.Errorf("ServiceCreateOrder called %d times, want 1", n)
			}
			// The dead worker's create in the history, its answer
			// unknown; then the lookup.
			if len(rec.History) < 2 || rec.History[0].Call != "submit" || rec.History[0].Result != "abandoned" || rec.History[0].N != 1 ||
				rec.History[1].Call != "lookup" {
				t.Errorf("history %+v; want the dead worker's create (1, abandoned), then a lookup", rec.History)
			}
		})
	}
}

// A crash between claiming the record and queueing the task must not lose
// the order: enqueueing it again repairs it.
func TestClaimedButNotEnqueuedIsRepaired(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	var p tasks.Payload
	if err := json.Unmarshal(order("Order-Repair"), &p); err != nil {
		t.Fatal(err)
	}
	hash, _ := tasks.ParamsHash(p.Params)
	if _, err := e.ledger.Claim(ctx, tasks.OrderRef{Provider: p.Provider, OrderNo: p.OrderNo}, p.Params, hash); err != nil { // the claim, then the "crash"
		t.Fatal(err)
	}
	res := e.enqueue(t, order("Order-Repair"))
	if res.Status != tasks.Duplicate || !res.Repaired {
		t.Fatalf("Enqueue = %+v, want duplicate with repaired", res)
	}
	e.waitState(t, "Order-Repair", tasks.StatePaid)
	if n := e.sandbox.Count("Order-Repair"); n != 1 {
		t.Errorf("sandbox holds %d orders, want 1", n)
	}
}

// A provider without credentials on this worker holds its orders back
// without touching them but for the reason their records show: no state
// change, no attempt, a reported problem; they are processed once a
// worker has the credentials.
func TestDisabledProviderOrdersWaitUnchanged(t *testing.T) {
	t.Parallel()
	problems := tasks.NewProblems()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{ConfigWait: 50 * time.Millisecond, Problems: problems}})
	e.set.Disable("tencent", "TENCENT_APP_KEY is not set", tencent.Validate)
	e.startServer(t)
	res := e.enqueue(t, order("Order-Disabled"))
	if res.Status != tasks.Enqueued {
		t.Fatalf("Enqueue = %+v, want enqueued", res)
	}
	deadline := time.Now().Add(10 * time.Second)
	for problems.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no configuration problem reported")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // several runs
	rec := e.waitState(t, "Order-Disabled", tasks.StateQueued)
	if rec.Attempts != 0 || len(rec.History) != 0 || !rec.UpdatedAt.Equal(rec.CreatedAt) {
		t.Errorf("record changed while its provider was disabled: %+v", rec)
	}
	if !strings.Contains(rec.Reason, "waiting for a worker that can send it: disabled: TENCENT_APP_KEY is not set") {
		t.Errorf("reason %q, want why the order waits", rec.Reason)
	}
	if err := problems.Err(); !strings.Contains(err.Error(), "tencent: provider_disabled: disabled: TENCENT_APP_KEY is not set") {
		t.Errorf("problems = %v", err)
	}
	e.srv.Shutdown()
	good, err := tencent.New(tencent.Options{Endpoint: e.sandboxURL, AppKey: appKey, AppSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	e.set.Add(good)
	e.startServer(t)
	e.waitState(t, "Order-Disabled", tasks.StatePaid)
}

// An order held because its provider is disabled on the worker that runs
// it is still errored at its deadline, nothing having been sent: that needs
// no provider, and without it an order no worker can send would wait, and
// its producer hear nothing, for good. Its event says so.
//
// The deadline is judged on Redis's clock: a worker whose own clock runs
// an hour behind errors it on time too.
func TestDisabledProviderOrderErroredAtItsDeadline(t *testing.T) {
	t.Parallel()
	for _, skew := range []time.Duration{0, -time.Hour} {
		t.Run(fmt.Sprint("clock ", skew), func(t *testing.T) {
			t.Parallel()
			disabledErroredAtItsDeadline(t, func() time.Time { return time.Now().Add(skew) })
		})
	}
}

func disabledErroredAtItsDeadline(t *testing.T, clock func() time.Time) {
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{ConfigWait: 50 * time.Millisecond,
		Deadline: 400 * time.Millisecond, Now: clock}})
	e.set.Disable("tencent", "TENCENT_APP_KEY is not set", tencent.Validate)
	e.startServer(t)
	e.enqueue(t, order("Order-Disabled-Late"))
	time.Sleep(150 * time.Millisecond) // runs before the deadline leave it queued
	if rec, err := e.ledger.Get(context.Background(), ledger.Ref{Provider: "tencent", OrderNo: "Order-Disabled-Late"}); err != nil || rec.State != ledger.StateQueued {
		t.Fatalf("before its deadline: %+v, %v; want queued", rec, err)
	}
	rec := e.waitState(t, "Order-Disabled-Late", tasks.StateErrored)
	if !strings.Contains(rec.Reason, "deadline of 400ms passed before the order could be submitted") ||
		!strings.Contains(rec.Reason, "cannot send it: disabled: TENCENT_APP_KEY is not set") {
		t.Errorf("reason %q, want the deadline and why the worker could not send it", rec.Reason)
	}
	if rec.Attempts != 0 || rec.Inflight != 0 || rec.MayHaveExisted {
		t.Errorf("errored record %+v: want no attempt, nothing in flight", rec)
	}
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 0 {
		t.Errorf("%d creates sent by a worker without the provider", n)
	}
	evs, err := e.ledger.Events(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var errored int
	for _, ev := range evs {
		if ev.Data.OrderNo == "Order-Disabled-Late" && ev.Type == "order.errored" {
			errored++
		}
	}
	if errored != 1 {
		t.Errorf("events %+v: want one order.errored for the order", evs)
	}
}

// An order whose create a killed worker left in flight, met by a worker
// without its provider's credentials, waits unchanged but for its reason,
// which says why (a hunt for stranded orders: it kept no reason, so its
// record did not say what held it).
func TestDisabledProviderNamesWhyAnInFlightOrderWaits(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{ConfigWait: 50 * time.Millisecond}})
	e.set.DisableSpec(tencent.Spec(), "TENCENT_APP_KEY is not set")
	ctx := context.Background()
	e.enqueue(t, order("Order-Inflight-Held"))
	ref := ledger.Ref{Provider: "tencent", OrderNo: "Order-Inflight-Held"}
	if _, err := e.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: "killed", LeaseTTL: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	before, err := e.ledger.Get(ctx, ref)
	if err != nil || before.State != ledger.StateSubmitting || !before.MayHaveBeenCreated() || before.Reason != "" {
		t.Fatalf("after a create marked in flight: %+v, %v; want submitting, in flight, no reason", before, err)
	}
	time.Sleep(5 * time.Millisecond) // the killed run's lease ends
	if err := e.handler.ProcessTask(ctx, asynq.NewTask(tasks.TypeOrderSubmit, order("Order-Inflight-Held"))); err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("ProcessTask = %v; want a wait for a worker that can send it", err)
	}
	rec, err := e.ledger.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.Reason, "waiting for a worker that can send it: disabled: TENCENT_APP_KEY is not set") {
		t.Errorf("reason %q; want why the order waits", rec.Reason)
	}
	if rec.State != ledger.StateSubmitting || !rec.MayHaveBeenCreated() || rec.Attempts != before.Attempts || len(rec.History) != len(before.History) {
		t.Errorf("record %+v; want it unchanged but for its reason (was %+v)", rec, before)
	}
}

// A task a producer wrote itself, met by a worker without its provider's
// credentials, is recorded on first sight as any worker records it: a
// valid order is claimed (the same dedupe) and waits, errored at its
// deadline by this worker; one whose params hold a phone number (no data
// key) or break the provider's rules stops with the reason, recording
// nothing. Before, such tasks went round in asynq's retries with no record
// and no end, the deadline never applying.
func TestDisabledProviderRecordsAProducersOwnTask(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{ConfigWait: 50 * time.Millisecond, Deadline: 400 * time.Millisecond}})
	e.set.DisableSpec(tencent.Spec(), "TENCENT_APP_KEY is not set") // as the worker disables it
	ctx := context.Background()
	run := func(payload string) error {
		return e.handler.ProcessTask(ctx, asynq.NewTask(tasks.TypeOrderSubmit, []byte(payload)))
	}
	get := func(no string) *tasks.Record {
		rec, err := e.ledger.Get(ctx, ledger.Ref{Provider: "tencent", OrderNo: no})
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	for _, c := range []struct{ no, params, reason string }{
		{"Hand-Phone", `{"CustomerId":"13812345678","ItemId":"D-FireInsurance2020","ItemNum":1}`, "phone number"},
		{"Hand-Bad", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":0}`, "ItemNum"},
	} {
		err := run(`{"provider":"tencent","order_no":"` + c.no + `","params":` + c.params + `}`)
		if !errors.Is(err, asynq.SkipRetry) || !strings.Contains(err.Error(), c.reason) || strings.Contains(err.Error(), "13812345678") {
			t.Errorf("%s: ProcessTask = %v; want the task stopped, naming %q (the number masked)", c.no, err, c.reason)
		}
		if rec := get(c.no); rec != nil {
			t.Errorf("%s: recorded %+v; want nothing", c.no, rec)
		}
	}
	good := `{"provider":"tencent","order_no":"Hand-Good","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`
	if err := run(good); err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("ProcessTask = %v; want a wait for a worker that can send it", err)
	}
	rec := get("Hand-Good")
	if rec == nil || rec.State != ledger.StateQueued || !strings.Contains(rec.Reason, "waiting for a worker that can send it") {
		t.Fatalf("recorded %+v; want queued, waiting for a worker that can send it", rec)
	}
	dup := []byte(`{"provider":"tencent","order_no":"Hand-Good","params":{"ItemNum":1,"ItemId":"D-FireInsurance2020","CustomerId":"C1"}}`)
	if res := e.enqueue(t, dup); res.Status != tasks.Duplicate {
		t.Errorf("Enqueue of the same order = %+v; want duplicate (the same params hash as the Enqueuer's)", res)
	}
	time.Sleep(450 * time.Millisecond) // past the deadline
	if err := run(good); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("ProcessTask past the deadline = %v; want the task ended", err)
	}
	if rec := get("Hand-Good"); rec.State != ledger.StateErrored || !strings.Contains(rec.Reason, "deadline of 400ms passed") {
		t.Errorf("past the deadline: %+v; want errored at the deadline", rec)
	}
	if err := run(good); err != nil {
		t.Errorf("ProcessTask of a final order = %v; want the task done", err)
	}
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 0 {
		t.Errorf("%d creates sent by a worker without the provider", n)
	}
}

// An attempt still in flight when the shutdown timeout ends is cut off: it
// is recorded as unknown and, after a restart, looked up, not resubmitted.
func TestShutdownCutsOffAttemptThenReconciles(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{
		MaxAttempts: 4, Backoff: tasks.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond},
	}})
	e.sandbox.Faults().Script(fault.HangAfter)
	e.sandbox.Faults().SetHangLimit(time.Minute)
	// A slow provider: long client timeout, so only the shutdown cuts the call.
	slow, err := tencent.New(tencent.Options{Endpoint: e.sandboxURL, AppKey: appKey, AppSecret: appSecret, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.set.Add(slow)
	srv, mux := tasks.NewServer(asynq.RedisClientOpt{Addr: e.redis.Addr}, e.handler, tasks.ServerOptions{
		TaskCheckInterval: 20 * time.Millisecond, ShutdownTimeout: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	e.enqueue(t, order("Order-Shutdown"))
	deadline := time.Now().Add(10 * time.Second)
	for e.sandbox.Count("Order-Shutdown") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the order never reached the sandbox")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	srv.Shutdown() // SIGTERM
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("shutdown took %v with a 300ms timeout", took)
	}
	rec := e.waitState(t, "Order-Shutdown", tasks.StateUnknown)
	if got := rec.History[len(rec.History)-1]; got.Call != "submit" || got.Result != "ambiguous" {
		t.Errorf("cut-off attempt recorded as %+v, want submit:ambiguous", got)
	}
	e.startServer(t) // the restart
	rec = e.waitState(t, "Order-Shutdown", tasks.StatePaid)
	if n := e.sandbox.Count("Order-Shutdown"); n != 1 {
		t.Fatalf("sandbox holds %d orders, want 1", n)
	}
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
		t.Errorf("ServiceCreateOrder called %d times, want 1 (looked up, not resubmitted)", n)
	}
	if last := rec.History[len(rec.History)-1]; last.Call != "lookup" || last.Result != "ok" {
		t.Errorf("after the restart: %+v, want lookup:ok", last)
	}
}

// Redis going away under a running worker: the worker waits, and when Redis
// is back (with its data, AOF on) every order is processed, none twice. A
// task that was active when Redis went away could not be handed back; asynq
// recovers it when its lease expires (about a minute later).
func TestRedisOutageUnderWorker(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{aof: true})
	const n = 30
	for i := range n {
		e.enqueue(t, order(fmt.Sprintf("Order-Outage-%d", i)))
	}
	e.redis.Stop()
	time.Sleep(2 * time.Second) // the worker polls a dead Redis meanwhile
	e.redis.Start(t)
	for i := range n {
		no := fmt.Sprintf("Order-Outage-%d", i)
		e.waitStateFor(t, no, tasks.StatePaid, 3*time.Minute)
		if c := e.sandbox.Count(no); c != 1 {
			t.Errorf("%s: sandbox holds %d orders, want 1", no, c)
		}
	}
}

// A server with several dequeuers splits its concurrency among them, and
// they process the one queue together: every order once.
func TestServerDequeuersShareConcurrency(t *testing.T) {
	t.Parallel()
	if got := []int{tasks.Dequeuers(1), tasks.Dequeuers(20), tasks.Dequeuers(32), tasks.Dequeuers(50), tasks.Dequeuers(500)}; fmt.Sprint(got) != "[1 1 2 3 3]" {
		t.Errorf("Dequeuers(1, 20, 32, 50, 500) = %v, want [1 1 2 3 3]", got)
	}
	e := setup(t, &setupOpts{noServer: true})
	opt := asynq.RedisClientOpt{Addr: e.redis.Addr}
	srv, mux := tasks.NewServer(opt, e.handler, tasks.ServerOptions{
		Concurrency: 10, Dequeuers: 3, TaskCheckInterval: 10 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	const n = 30
	for i := range n {
		e.enqueue(t, order(fmt.Sprintf("DQ-%d", i)))
	}
	for i := range n {
		e.waitState(t, fmt.Sprintf("DQ-%d", i), tasks.StatePaid)
	}
	if got := e.sandbox.Calls("ServiceCreateOrder"); got != n {
		t.Errorf("ServiceCreateOrder called %d times for %d orders", got, n)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	servers, err := insp.Servers()
	if err != nil {
		t.Fatal(err)
	}
	var conc []int
	for _, s := range servers {
		conc = append(conc, s.Concurrency)
	}
	slices.Sort(conc)
	// 10 call slots and a headroom of 2 orders: 12 orders at once.
	if fmt.Sprint(conc) != "[4 4 4]" || tasks.Headroom(10) != 2 {
		t.Errorf("asynq servers' concurrency = %v (headroom %d), want [4 4 4] (2)", conc, tasks.Headroom(10))
	}
	if err := srv.Ping(); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// deadRunSentCreate leaves order no as a run that died mid-call leaves it:
// its create marked in flight and received by the provider, its lease
// expired, its task still to come back.
func deadRunSentCreate(t *testing.T, e *env, no string) tasks.OrderRef {
	t.Helper()
	ctx := context.Background()
	e.enqueue(t, order(no))
	ref := tasks.OrderRef{Provider: "tencent", OrderNo: no}
	b, err := e.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: "dead-run", LeaseTTL: 50 * time.Millisecond})
	if err != nil || !b.Record.InflightMarked {
		t.Fatal(b, err)
	}
	prov, err := e.set.Get("tencent")
	if err != nil {
		t.Fatal(err)
	}
	var p tasks.Payload
	if err := json.Unmarshal(order(no), &p); err != nil {
		t.Fatal(err)
	}
	if _, err := prov.Submit(ctx, providers.Order{OrderNo: no, Params: p.Params}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the dead run's lease expires
	return ref
}

// An operator's refused resolve on an order whose run died with a create
// in flight leaves the mark: the order's task then looks the order up and
// never creates it again.
func TestRefusedResolveKeepsACreateInFlight(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	ctx := context.Background()
	ref := deadRunSentCreate(t, e, "Order-Res")
	var refused *ledger.RefusedError
	if _, err := e.ledger.Resolve(ctx, ref, ledger.ResolveArgs{As: ledger.ResolveErrored, Note: "n", By: "op"}); !errors.As(err, &refused) {
		t.Fatalf("resolve of a submitting order = %v, want refused", err)
	}
	if rec, _ := e.ledger.Get(ctx, ref); rec.Inflight == 0 {
		t.Fatalf("the refused resolve cleared the create in flight: %+v", rec)
	}
	ownTaskFindsTheOrder(t, e, ref, "after the refused resolve")
}

// ownTaskFindsTheOrder runs the order's own task over a create a dead run
// left in flight: the order must end paid, found by a lookup, created once.
func ownTaskFindsTheOrder(t *testing.T, e *env, ref tasks.OrderRef, after string) {
	t.Helper()
	ctx := context.Background()
	if err := e.handler.ProcessTask(ctx, asynq.NewTask(tasks.TypeOrderSubmit, order(ref.OrderNo))); err != nil {
		t.Fatal(err)
	}
	rec, _ := e.ledger.Get(ctx, ref)
	if n := e.sandbox.Count(ref.OrderNo); n != 1 || rec.State != tasks.StatePaid || len(rec.History) < 2 ||
		rec.History[0].Result != "abandoned" || rec.History[1].Call != "lookup" {
		t.Errorf("%s: %d orders at the provider, %s, history %+v; want one, paid, the abandoned create then a lookup", after, n, rec.State, rec.History)
	}
}

// A task whose params differ from the record (a producer writing asynq
// tasks itself) runs while a dead run's create is in flight: it stops
// without touching the mark, and the order's own task looks the order up
// instead of creating it again.
func TestConflictingTaskKeepsACreateInFlight(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	ctx := context.Background()
	ref := deadRunSentCreate(t, e, "Order-Dif")
	other := []byte(`{"provider":"tencent","order_no":"Order-Dif","params":{"CustomerId":"Customer100001","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":3}}`)
	if err := e.handler.ProcessTask(ctx, asynq.NewTask(tasks.TypeOrderSubmit, other)); err == nil {
		t.Fatal("the conflicting task was processed")
	}
	if rec, _ := e.ledger.Get(ctx, ref); rec.Inflight == 0 {
		t.Fatalf("the conflicting task cleared the create in flight: %+v", rec)
	}
	ownTaskFindsTheOrder(t, e, ref, "after the conflicting task")
}

// An outcome its replicas did not acknowledge does not end the task: a
// failover could take it back, and the order would then sit unfinished
// without a task until the reconciler found it. The task comes back; its
// next run finds the outcome kept and ends, the order created once.
func TestNotDurableOutcomeKeepsTheTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	rep := rs.AttachReplica(t)
	l := ledger.New(rdb, &ledger.Options{WaitTimeout: 300 * time.Millisecond})
	backend := memprov.NewBackend("s")
	backend.Delay = 300 * time.Millisecond
	set := providers.NewSet()
	set.Add(memprov.New(backend, memprov.Options{Secret: "s"}))
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: rs.Addr})
	t.Cleanup(func() { client.Close() })
	if res, err := tasks.NewEnqueuer(client, l, set, nil).Enqueue(ctx, memOrder("ND-Out")); err != nil || res.Status != tasks.Enqueued {
		t.Fatal(res, err)
	}
	task, err := tasks.NewOrderSubmitTask(tasks.Payload{Provider: memprov.Name, OrderNo: "ND-Out", Params: []byte(`{"item":"sku-1","qty":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Metrics: tasks.NewMetrics(reg), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan error, 1)
	go func() { done <- h.ProcessTask(ctx, task) }()
	for end := time.Now().Add(10 * time.Second); backend.Calls("create") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the create never left")
		}
	}
	rep.Pause(t) // the replica stops acknowledging while the create is under way
	err = <-done
	if err == nil || errors.Is(err, asynq.SkipRetry) || !strings.Contains(err.Error(), "not yet acknowledged by the replicas") {
		t.Fatalf("ProcessTask with the outcome unacknowledged = %v; want the task kept (a wait)", err)
	}
	rep.Resume()
	if err := h.ProcessTask(ctx, task); err != nil {
		t.Fatalf("ProcessTask again with the replica back = %v; want the task done", err)
	}
	rec, err := l.Get(ctx, tasks.OrderRef{Provider: memprov.Name, OrderNo: "ND-Out"})
	if err != nil || rec.State != tasks.StatePaid || backend.Count("ND-Out") != 1 || backend.Calls("create") != 1 {
		t.Fatalf("record %+v, %v, created %d times in %d creates; want paid, once", rec, err, backend.Count("ND-Out"), backend.Calls("create"))
	}
	// Counted once, as paid: by the run that settled it, not by the one
	// that found it kept.
	if n := counterValue(t, reg, "orderworker_orders_total", map[string]string{"outcome": "paid"}); n != 1 {
		t.Errorf("orderworker_orders_total{outcome=paid} = %v; want 1", n)
	}
}

// An order whose claim the replicas did not acknowledge is taken back,
// with the task the claim queued. It is answered "not accepted" only when
// the replicas acknowledged the take-back: otherwise a failover could
// bring back an order its producer was told was not accepted (and that a
// producer who renumbered would create twice), so it is "may have been
// accepted". A batch's such orders are left to run, "may have been
// accepted". Sent again once the replicas are back, a taken-back order is
// a new order, queued once; a batch's answers duplicate.
func TestNotDurableClaimLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	rep := rs.AttachReplica(t)
	l := ledger.New(rdb, &ledger.Options{WaitTimeout: 300 * time.Millisecond})
	set := providers.NewSet()
	tc, err := tencent.New(tencent.Options{Endpoint: "http://127.0.0.1:1", AppKey: appKey, AppSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	set.Add(tc)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: rs.Addr})
	t.Cleanup(func() { client.Close() })
	enq := tasks.NewEnqueuer(client, l, set, nil)
	inspector := asynq.NewInspector(asynq.RedisClientOpt{Addr: rs.Addr})
	t.Cleanup(func() { inspector.Close() })
	left := func(no string) (record bool, task bool) {
		t.Helper()
		rec, err := l.Get(ctx, tasks.OrderRef{Provider: "tencent", OrderNo: no})
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			t.Fatal(err)
		}
		_, terr := inspector.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID("tencent", no))
		return rec != nil, terr == nil
	}
	rep.Pause(t)
	// The replica hung through the take-back too.
	if _, err := enq.Enqueue(ctx, order("ND-1")); !errors.Is(err, ledger.ErrNotDurable) || !errors.Is(err, tasks.ErrMaybeAccepted) {
		t.Fatalf("Enqueue with the replica hung = %v, want ErrNotDurable, may have been accepted", err)
	}
	if rec, task := left("ND-1"); rec || task {
		t.Errorf("ND-1: record left %v, task left %v on the master; want neither (taken back)", rec, task)
	}
	if r := enq.EnqueueBatch(ctx, [][]byte{order("ND-2"), order("ND-3")}); !errors.Is(r[0].Err, tasks.ErrMaybeAccepted) || !errors.Is(r[1].Err, tasks.ErrMaybeAccepted) {
		t.Fatalf("EnqueueBatch with the replica hung = %+v, want may have been accepted for each", r)
	}
	// With task options the claim does not queue the task: the batch
	// queues it, so that the order runs without waiting for the
	// reconciler.
	opted := tasks.NewEnqueuer(client, l, set, &tasks.EnqueuerOptions{TaskOptions: []asynq.Option{asynq.Retention(time.Hour)}})
	if r := opted.EnqueueBatch(ctx, [][]byte{order("ND-5")}); !errors.Is(r[0].Err, tasks.ErrMaybeAccepted) {
		t.Fatalf("EnqueueBatch with task options, the replica hung = %+v, want may have been accepted", r)
	}
	for _, no := range []string{"ND-2", "ND-3", "ND-5"} {
		if rec, task := left(no); !rec || !task {
			t.Errorf("%s: record %v, task %v; want both (a batch's orders are left to run)", no, rec, task)
		}
	}
	// The replica back before the take-back's WAIT (the claim's is the
	// first): the take-back is acknowledged.
	rdb.AddHook(&resumeBeforeNthWait{rep: rep, n: 2})
	if _, err := enq.Enqueue(ctx, order("ND-4")); !errors.Is(err, ledger.ErrNotDurable) || !errors.Is(err, tasks.ErrNotAccepted) {
		t.Fatalf("Enqueue with the replica back for the take-back = %v, want ErrNotDurable, not accepted", err)
	}
	if rec, task := left("ND-4"); rec || task {
		t.Errorf("ND-4: record left %v, task left %v; want neither", rec, task)
	}
	rep.Resume()
	for _, c := range []struct {
		no, want string
	}{{"ND-1", tasks.Enqueued}, {"ND-4", tasks.Enqueued}, {"ND-2", tasks.Duplicate}} {
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			res, err := enq.Enqueue(ctx, order(c.no))
			if err == nil {
				if res.Status != c.want {
					t.Fatalf("%s sent again = %+v, want %s", c.no, res, c.want)
				}
				break
			}
			if time.Now().After(end) {
				t.Fatalf("Enqueue %s once the replica is back: %v", c.no, err)
			}
		}
		if rec, task := left(c.no); !rec || !task {
			t.Errorf("%s sent again: record %v, task %v; want both", c.no, rec, task)
		}
	}
}

// counterValue is the value of the counter name with the given labels
// (among others) in reg, 0 when there is none.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// Init creates every labelled counter at zero for each provider, so that
// its first event shows in rate() and increase(): retries by code and
// configuration waits by kind too.
func TestMetricsInitCreatesTheCounters(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	tasks.NewMetrics(reg).Init([]string{"tencent"})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetCounter().GetValue() != 0 {
				t.Errorf("%s %v = %v after Init; want 0", mf.GetName(), m.GetLabel(), m.GetCounter().GetValue())
			}
			series[mf.GetName()]++
		}
	}
	for name, want := range map[string]int{
		"orderworker_orders_total":              3, // paid, pending, errored
		"orderworker_dedupe_hits_total":         3,
		"orderworker_late_provider_calls_total": 2,
		"orderworker_retries_total":             9,                         // every code but ok
		"orderworker_config_waits_total":        len(tasks.ProblemKinds()), // every kind of problem
	} {
		if series[name] != want {
			t.Errorf("%s: %d series after Init; want %d", name, series[name], want)
		}
	}
}

// BeforeRecord holds back, with nothing written, a task whose order has no
// record: worker -dev refuses so to record anything in a Redis that lost
// its marker. The same task is recorded (and paid) once it allows it; a
// record lost mid-step is not recorded again while it refuses either.
func TestBeforeRecordHoldsMissingRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := taskstest.StartRedis(t, nil)
	l := ledger.New(rs.Client(t), nil)
	backend := memprov.NewBackend("s")
	set := providers.NewSet()
	set.Add(memprov.New(backend, memprov.Options{Secret: "s"}))
	var refuse atomic.Bool
	refuse.Store(true)
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Logger: slog.New(slog.DiscardHandler), BeforeRecord: func(context.Context) error {
		if refuse.Load() {
			return errors.New("marker gone")
		}
		return nil
	}})
	task, err := tasks.NewOrderSubmitTask(tasks.Payload{Provider: memprov.Name, OrderNo: "BR-1", Params: []byte(`{"item":"sku-1","qty":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	ref := tasks.OrderRef{Provider: memprov.Name, OrderNo: "BR-1"}
	err = h.ProcessTask(ctx, task)
	if err == nil || !strings.Contains(err.Error(), "marker gone") || tasks.IsFailure(err) {
		t.Fatalf("ProcessTask while BeforeRecord refuses = %v; want a wait naming its reason", err)
	}
	if rec, err := l.Get(ctx, ref); err != nil || rec != nil || backend.Calls("create") != 0 {
		t.Fatalf("while BeforeRecord refuses: record %+v, %v, %d creates; want nothing written or sent", rec, err, backend.Calls("create"))
	}
	refuse.Store(false)
	if err := h.ProcessTask(ctx, task); err != nil {
		t.Fatalf("ProcessTask once BeforeRecord allows = %v", err)
	}
	if rec, err := l.Get(ctx, ref); err != nil || rec == nil || rec.State != tasks.StatePaid || backend.Count("BR-1") != 1 {
		t.Fatalf("once allowed: record %+v, %v, created %d times; want paid, once", rec, err, backend.Count("BR-1"))
	}
}
