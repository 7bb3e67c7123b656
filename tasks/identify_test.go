package tasks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	aliyunsandbox "github.com/orderworker/orderworker/providers/aliyun/sandbox"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/guard"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// Two workers whose clocks disagree by three minutes. The one behind sends
// the create, whose answer is lost; the other looks the order up a second
// later, while the provider's listing does not show it yet. The listing
// lag is judged on Redis's clock, so the not-found is not believed and the
// order is not created twice (judged on the workers' clocks, the create
// looked three minutes old).
func TestListingLagOnRedisClock(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	ctx := context.Background()
	e.sandbox.ListLag = 30 * time.Second
	opts := func() *tasks.HandlerOptions {
		return &tasks.HandlerOptions{ListingLag: 2 * time.Minute, Logger: quiet,
			Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}
	}
	behind := ledger.New(e.rdb, &ledger.Options{Now: func() time.Time { return time.Now().Add(-3 * time.Minute) }})
	hBehind := tasks.NewHandler(behind, e.set, opts())
	hRight := tasks.NewHandler(e.ledger, e.set, opts())

	// The order was accepted five minutes ago (a backlog).
	ref := ledger.Ref{Provider: "tencent", OrderNo: "Order-Skew"}
	params := json.RawMessage(`{"CustomerId":"Customer100001","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":2}`)
	hash, err := tasks.ParamsHash(params)
	if err != nil {
		t.Fatal(err)
	}
	earlier := ledger.New(e.rdb, &ledger.Options{Now: func() time.Time { return time.Now().Add(-5 * time.Minute) }})
	if _, err := earlier.Claim(ctx, ref, params, hash); err != nil {
		t.Fatal(err)
	}
	task, _ := tasks.NewOrderSubmitTask(tasks.Payload{Provider: "tencent", OrderNo: "Order-Skew", Params: params})

	e.sandbox.Faults().Script(fault.FailAfter) // created, the answer lost
	_ = hBehind.ProcessTask(ctx, task)
	if rec, _ := e.ledger.Get(ctx, ref); rec.State != ledger.StateUnknown {
		t.Fatalf("after the create: state %s, want unknown", rec.State)
	}
	time.Sleep(time.Second)
	_ = hRight.ProcessTask(ctx, task) // the lookup, a second after the create

	rec, _ := e.ledger.Get(ctx, ref)
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 || rec.State != ledger.StateUnknown {
		t.Fatalf("%d creates, state %s; want 1 create, the order still unknown within the listing lag", n, rec.State)
	}
}

// addAliyun adds to e's providers an Aliyun client on a sandbox of its
// own, with mod applied to its options, and returns the sandbox.
func addAliyun(t *testing.T, e *env, mod func(*aliyun.Options)) *aliyunsandbox.Server {
	t.Helper()
	sb := aliyunsandbox.New("TestKey", "test-secret", "test-project")
	hs := httptest.NewServer(sb)
	t.Cleanup(hs.Close)
	o := aliyun.Options{Endpoint: hs.URL, AppKey: "TestKey", AppSecret: providers.Secret("test-secret"), ProjectID: "test-project"}
	if mod != nil {
		mod(&o)
	}
	c, err := aliyun.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.set.Add(c)
	return sb
}

// An Aliyun order's snapshot of the device's orders is taken anew before
// each create that follows a try known to have created nothing (here a
// throttled create). Kept from before, it would let an order the device's
// user bought meanwhile pass for ours after our next create fails
// ambiguously: recorded paid with someone else's order, ours never made.
func TestSnapshotRetakenAfterAFailedCreate(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
	ctx := context.Background()
	// ALIYUN_RECREATE_UNLISTED: the sandbox lists every order.
	sb := addAliyun(t, e, func(o *aliyun.Options) { o.RecreateUnlisted = true })
	e.enqueue(t, []byte(`{"provider":"aliyun","order_no":"Snap-1","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1}}`))
	ref := ledger.Ref{Provider: "aliyun", OrderNo: "Snap-1"}
	rec, _ := e.ledger.Get(ctx, ref)
	task, _ := tasks.NewOrderSubmitTask(tasks.Payload{Provider: "aliyun", OrderNo: "Snap-1", Params: json.RawMessage(rec.Params)})

	// The snapshot (an empty device), then the create is throttled.
	sb.Faults().Script(fault.Throttle)
	_ = e.handler.ProcessTask(ctx, task)
	if rec, _ = e.ledger.Get(ctx, ref); rec.State != ledger.StateSubmitting || rec.Known != nil || sb.Count("dev1") != 0 {
		t.Fatalf("after a throttled create: state %s, snapshot %v, %d orders at the provider; want submitting, no snapshot, none", rec.State, rec.Known, sb.Count("dev1"))
	}
	// Meanwhile the device's user buys the same plan in the app.
	foreign := sb.AddOrder(aliyunsandbox.Order{IotID: "dev1", CommodityCode: "streamingResource_20_10", Copies: 1, PaymentStatus: 1})

	// A new snapshot (with the foreign order), a create refused with a
	// 503 before the platform acted (ambiguous to us), then the lookup:
	// not found, so it is created (and waits to be paid).
	sb.Faults().Script(fault.FailBefore)
	_ = e.handler.ProcessTask(ctx, task)
	if rec, _ = e.ledger.Get(ctx, ref); !slices.Contains(rec.Known, foreign.OrderID) {
		t.Fatalf("snapshot %v does not hold the order made since the first one (%s)", rec.Known, foreign.OrderID)
	}
	_ = e.handler.ProcessTask(ctx, task)
	rec, _ = e.ledger.Get(ctx, ref)
	if (rec.State != ledger.StatePending && rec.State != ledger.StatePaid) || rec.ProviderOrderID == "" || rec.ProviderOrderID == foreign.OrderID || sb.Count("dev1") != 2 {
		t.Fatalf("state %s with provider order %q (the foreign one is %s), %d orders on the device; want pending or paid with an order of its own, 2 orders",
			rec.State, rec.ProviderOrderID, foreign.OrderID, sb.Count("dev1"))
	}
}

// A producer that writes its asynq tasks itself puts them on the queue as
// the README names it ("orders"); with a sharded ledger the worker serves
// that queue beside its shards' queues, so such an order is not left
// unseen (it has no record until a worker claims it).
func TestHandWrittenTaskRunsWithAShardedLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memprov.NewBackend("")
	srv, _, l, set := memSetup(t, &ledger.Options{Shards: 3}, memprov.New(b, memprov.Options{}))
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Logger: quiet})
	s, mux := tasks.NewServer(asynq.RedisClientOpt{Addr: srv.Addr}, h, tasks.ServerOptions{
		Concurrency: 2, TaskCheckInterval: 20 * time.Millisecond, ShutdownTimeout: time.Second, Logger: quiet})
	if err := s.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	c := asynq.NewClient(asynq.RedisClientOpt{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	task, _ := tasks.NewOrderSubmitTask(tasks.Payload{Provider: "mem", OrderNo: "Raw-1", Params: json.RawMessage(`{"item":"x","qty":1}`)})
	if _, err := c.Enqueue(task, asynq.Queue(tasks.DefaultQueue)); err != nil {
		t.Fatal(err)
	}
	ref := ledger.Ref{Provider: "mem", OrderNo: "Raw-1"}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if rec, _ := l.Get(ctx, ref); rec != nil && rec.State == ledger.StatePaid {
			if n := b.Calls("create"); n != 1 {
				t.Fatalf("%d creates, want 1", n)
			}
			return
		}
	}
	rec, _ := l.Get(ctx, ref)
	t.Fatalf("a hand-written task on %q with 3 ledger shards: record %+v, %d creates; want it paid", tasks.DefaultQueue, rec, b.Calls("create"))
}

// slowProv is the in-memory provider with creates that take a while,
// counting how many are in flight at once.
type slowProv struct {
	*memprov.Client
	delay          time.Duration
	mu             sync.Mutex
	inFlight, peak int
}

func (p *slowProv) Submit(ctx context.Context, o providers.Order) (providers.Result, error) {
	p.mu.Lock()
	p.inFlight++
	p.peak = max(p.peak, p.inFlight)
	p.mu.Unlock()
	defer func() { p.mu.Lock(); p.inFlight--; p.mu.Unlock() }()
	time.Sleep(p.delay)
	return p.Client.Submit(ctx, o)
}

// The worker's concurrency counts provider calls: it runs a few more
// orders than that (their bookkeeping around the calls), but never has
// more calls in flight than its concurrency.
func TestConcurrencyBoundsProviderCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memprov.NewBackend("")
	prov := &slowProv{Client: memprov.New(b, memprov.Options{}), delay: 50 * time.Millisecond}
	srv, _, l, set := memSetup(t, nil, prov)
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Logger: quiet})
	const concurrency, n = 4, 40
	s, mux := tasks.NewServer(asynq.RedisClientOpt{Addr: srv.Addr}, h, tasks.ServerOptions{
		Concurrency: concurrency, TaskCheckInterval: 10 * time.Millisecond, ShutdownTimeout: time.Second, Logger: quiet})
	c := asynq.NewClient(asynq.RedisClientOpt{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	enq := tasks.NewEnqueuer(c, l, set, nil)
	for i := range n {
		payload := fmt.Sprintf(`{"provider":"mem","order_no":"C-%d","params":{"item":"x","qty":1}}`, i)
		if res, err := enq.Enqueue(ctx, []byte(payload)); err != nil || res.Status != tasks.Enqueued {
			t.Fatalf("Enqueue = %+v, %v", res, err)
		}
	}
	if err := s.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	for i := range n {
		ref := ledger.Ref{Provider: "mem", OrderNo: fmt.Sprintf("C-%d", i)}
		for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if rec, _ := l.Get(ctx, ref); rec != nil && rec.State == ledger.StatePaid {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("order %s not paid", ref.OrderNo)
			}
		}
	}
	prov.mu.Lock()
	peak := prov.peak
	prov.mu.Unlock()
	if peak != concurrency {
		t.Errorf("at most %d creates in flight at once, want the concurrency, %d", peak, concurrency)
	}
	if got := b.Calls("create"); got != n {
		t.Errorf("%d creates for %d orders", got, n)
	}
}

// gateProv fails the create of one order number, after telling started
// and waiting d: a provider call in flight that ends in a failure.
type gateProv struct {
	*memprov.Client
	orderNo string
	started chan struct{}
	d       time.Duration
}

func (p *gateProv) Submit(ctx context.Context, o providers.Order) (providers.Result, error) {
	if o.OrderNo == p.orderNo {
		close(p.started)
		time.Sleep(p.d)
		return providers.Result{}, providers.Errorf(providers.Unavailable, "create", "503 service unavailable")
	}
	return p.Client.Submit(ctx, o)
}

// slowReportGuard is a breaker that opens on the first failure reported,
// taking d to take it in.
type slowReportGuard struct {
	mu   sync.Mutex
	open bool
	d    time.Duration
}

func (g *slowReportGuard) Wait(ctx context.Context, provider string) (time.Duration, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		return time.Second, nil
	}
	return 0, nil
}

func (g *slowReportGuard) Done(provider string, err error) {
	time.Sleep(g.d)
	if err != nil && !errors.Is(err, providers.ErrNoNews) {
		g.mu.Lock()
		g.open = true
		g.mu.Unlock()
	}
}

// A call's slot goes back only once the breaker knows how the call went:
// the step that waited for that slot is admitted, or held back, by a
// breaker that counted it. Here the failure opens the breaker, so the
// waiting order sends nothing.
func TestSlotGoesBackAfterTheBreakerCountedTheCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memprov.NewBackend("")
	prov := &gateProv{Client: memprov.New(b, memprov.Options{}), orderNo: "Gate-A", started: make(chan struct{}), d: 100 * time.Millisecond}
	_, _, l, set := memSetup(t, nil, prov)
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Guard: &slowReportGuard{d: 100 * time.Millisecond}, Logger: quiet,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}})
	h.LimitCalls(1)
	_, taskA := claimedMemOrder(t, l, "Gate-A")
	refB, taskB := claimedMemOrder(t, l, "Gate-B")

	doneA := make(chan struct{})
	go func() { defer close(doneA); _ = h.ProcessTask(ctx, taskA) }()
	defer func() { <-doneA }()
	<-prov.started // A's create holds the only slot
	err := h.ProcessTask(ctx, taskB)
	if err == nil || !strings.Contains(err.Error(), "circuit breaker") {
		t.Fatalf("the order waiting for the slot of a call that opened the breaker: %v, want held back by the breaker", err)
	}
	if n := b.Calls("create"); n != 0 {
		t.Errorf("%d creates sent after the breaker opened", n)
	}
	if rec, _ := l.Get(ctx, refB); rec.State != ledger.StateQueued || rec.Inflight != 0 {
		t.Errorf("B: state %s, inflight %d; want queued, nothing in flight", rec.State, rec.Inflight)
	}
}

// panicProv's creates panic, as a provider client with a bug might.
type panicProv struct{ *memprov.Client }

func (p *panicProv) Submit(context.Context, providers.Order) (providers.Result, error) {
	panic("a provider client's bug")
}

// A provider client that panics mid-call (asynq recovers the panic) leaves
// no keepalive running: the order's lease runs out at its TTL, and the
// next run takes the order on and looks it up (the create was marked in
// flight), instead of finding it busy until the process ends.
func TestPanickingCallLetsTheLeaseRunOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, _, l, set := memSetup(t, nil, &panicProv{Client: memprov.New(memprov.NewBackend(""), memprov.Options{})})
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{LeaseTTL: 300 * time.Millisecond, Logger: quiet})
	ref, task := claimedMemOrder(t, l, "Panic-1")
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the provider's panic did not reach the caller")
			}
		}()
		_ = h.ProcessTask(ctx, task)
	}()
	time.Sleep(time.Second) // three TTLs: a keepalive would have extended the lease meanwhile
	b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "next-run", LeaseTTL: time.Second})
	if err != nil || b.Status != ledger.Began {
		t.Fatalf("a run after the panicked one: %+v, %v; want the lease run out and the order begun", b, err)
	}
	if b.Record.Inflight == 0 {
		t.Errorf("after a panic mid-create: %+v; want the create still marked in flight (to be looked up)", b.Record)
	}
}

// stallHook holds every pipeline's answer back while stalled is set: a
// worker process that stalls (a long pause, a frozen VM) right after a
// round trip.
type stallHook struct {
	stalled atomic.Bool
	d       time.Duration
}

func (h *stallHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *stallHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *stallHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if h.stalled.Load() {
			time.Sleep(h.d)
		}
		return err
	}
}

// A create never leaves on a lease taken longer ago than a third of its
// TTL: a run that stalled between Begin and the call (its lease may have
// run out, another run may be deciding about the order) sends nothing and
// gives the mark back; the next run creates the order once.
func TestStalledRunSendsNoCreate(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{LeaseTTL: 300 * time.Millisecond,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
	ctx := context.Background()
	hook := &stallHook{d: 150 * time.Millisecond}
	e.rdb.AddHook(hook)
	e.enqueue(t, order("Order-Stall"))
	ref := ledger.Ref{Provider: "tencent", OrderNo: "Order-Stall"}
	rec, _ := e.ledger.Get(ctx, ref)
	task, _ := tasks.NewOrderSubmitTask(tasks.Payload{Provider: "tencent", OrderNo: "Order-Stall", Params: json.RawMessage(rec.Params)})

	hook.stalled.Store(true)
	if err := e.handler.ProcessTask(ctx, task); err == nil || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("a run stalled after Begin: %v, want a wait saying the create was not sent", err)
	}
	hook.stalled.Store(false)
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 0 {
		t.Fatalf("a stalled run sent %d creates", n)
	}
	if rec, _ := e.ledger.Get(ctx, ref); rec.State != ledger.StateQueued || rec.Inflight != 0 {
		t.Fatalf("after a stalled run: state %s, inflight %d; want queued, nothing in flight", rec.State, rec.Inflight)
	}
	if err := e.handler.ProcessTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	if rec, _ := e.ledger.Get(ctx, ref); rec.State != ledger.StatePaid || e.sandbox.Calls("ServiceCreateOrder") != 1 {
		t.Fatalf("next run: state %s, %d creates; want paid, 1", rec.State, e.sandbox.Calls("ServiceCreateOrder"))
	}
}

// payMarkStallHook stalls once, for d, right after the Begin that marked
// an order's pay sent: a worker process that stalls between marking a pay
// and sending it.
type payMarkStallHook struct {
	d    time.Duration
	done atomic.Bool
}

func (h *payMarkStallHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *payMarkStallHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *payMarkStallHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			cmd, ok := c.(*redis.Cmd)
			if !ok || cmd.Err() != nil {
				continue
			}
			// Begin answers {"began", record, mark, time}; mark "2" is a
			// pay marked sent.
			if res, _ := cmd.Val().([]any); len(res) > 2 && res[0] == "began" && res[2] == "2" && h.done.CompareAndSwap(false, true) {
				time.Sleep(h.d)
			}
		}
		return err
	}
}

// A pay never leaves on a lease taken longer ago than a third of its TTL
// either: a run that stalled between marking the pay and sending it could
// otherwise pay after another run, a listing lag after the mark, found the
// order unpaid and paid it. The stalled run sends nothing and gives the
// mark back; the next run pays once.
func TestStalledRunSendsNoPay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memprov.NewBackend("")
	b.Pending = true
	_, rdb, l, set := memSetup(t, nil, memprov.New(b, memprov.Options{AutoPay: true}))
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{LeaseTTL: 300 * time.Millisecond, ListingLag: time.Hour, Logger: quiet,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}})
	ref, task := claimedMemOrder(t, l, "PayStall-1")
	rdb.AddHook(&payMarkStallHook{d: 150 * time.Millisecond})

	if err := h.ProcessTask(ctx, task); err == nil || !strings.Contains(err.Error(), "sending the pay; not sent") {
		t.Fatalf("a run stalled after marking the pay: %v, want a wait saying the pay was not sent", err)
	}
	if n := b.Calls("pay"); n != 0 {
		t.Fatalf("a stalled run sent %d pays", n)
	}
	rec, _ := l.Get(ctx, ref)
	if rec.State != ledger.StatePending || !rec.PaySentAt.IsZero() {
		t.Fatalf("after a stalled run: state %s, pay marked at %v; want pending, no pay mark", rec.State, rec.PaySentAt)
	}
	if err := h.ProcessTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, ref); rec.State != ledger.StatePaid || b.Calls("pay") != 1 || b.Calls("create") != 1 {
		t.Fatalf("next run: state %s, %d pays, %d creates; want paid, 1, 1", rec.State, b.Calls("pay"), b.Calls("create"))
	}
}

// loseRecordHook deletes an order's record right after the first pipeline
// that settles an order pending: Redis losing the record between two
// steps of one run.
type loseRecordHook struct {
	rdb  *redis.Client
	key  string
	done atomic.Bool
}

func (h *loseRecordHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *loseRecordHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *loseRecordHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if c.Err() == nil && slices.Contains(c.Args(), any(string(ledger.StatePending))) && h.done.CompareAndSwap(false, true) {
				h.rdb.Del(ctx, h.key)
			}
		}
		return err
	}
}

// A record lost between two steps of one run (created, then to be paid)
// is recorded again as unknown and looked up, as for a task that ran
// before: never submitted as a new order.
func TestRecordLostBetweenStepsIsLookedUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memprov.NewBackend("")
	b.Pending = true
	b.Duplicates = true // a provider that would take the same order number twice
	_, rdb, l, set := memSetup(t, nil, memprov.New(b, memprov.Options{AutoPay: true}))
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{ListingLag: -1, Logger: quiet})
	params := json.RawMessage(`{"item":"sku-1","qty":2}`)
	hash, _ := tasks.ParamsHash(params)
	ref := ledger.Ref{Provider: memprov.Name, OrderNo: "Lost-1"}
	if _, err := l.Claim(ctx, ref, params, hash); err != nil {
		t.Fatal(err)
	}
	keys, _ := rdb.Keys(ctx, "*order:mem:Lost-1").Result()
	if len(keys) != 1 {
		t.Fatalf("record keys %v", keys)
	}
	lose := &loseRecordHook{rdb: rdb, key: keys[0]}
	rdb.AddHook(lose)
	task, _ := tasks.NewOrderSubmitTask(tasks.Payload{Provider: memprov.Name, OrderNo: "Lost-1", Params: params})
	_ = h.ProcessTask(ctx, task)
	_ = h.ProcessTask(ctx, task)
	if !lose.done.Load() {
		t.Fatal("the record was never lost")
	}
	if n := b.Calls("create"); n != 1 {
		t.Fatalf("%d creates for one order whose record was lost between its create and its payment", n)
	}
	if rec, _ := l.Get(ctx, ref); rec == nil || rec.State != ledger.StatePaid {
		t.Fatalf("record %+v, want paid after the lookup", rec)
	}
}

// A half-open breaker lets one trial call through. A step it let through
// that then makes no call (its order is busy with another run) reports
// that, so the trial place goes to the next order at once instead of
// being held until it times out.
func TestNoCallFreesTheBreakersTrial(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, _, l, set := memSetup(t, nil, memprov.New(memprov.NewBackend(""), memprov.Options{}))
	g := guard.New(nil, &guard.Options{FailureThreshold: 1, Cooldown: 50 * time.Millisecond, HalfOpenCalls: 1, TrialTimeout: time.Minute,
		Logger: quiet})
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Guard: g, Logger: quiet})
	params := json.RawMessage(`{"item":"sku-1","qty":2}`)
	hash, _ := tasks.ParamsHash(params)
	claim := func(no string) *asynq.Task {
		if _, err := l.Claim(ctx, ledger.Ref{Provider: memprov.Name, OrderNo: no}, params, hash); err != nil {
			t.Fatal(err)
		}
		task, _ := tasks.NewOrderSubmitTask(tasks.Payload{Provider: memprov.Name, OrderNo: no, Params: params})
		return task
	}
	busy, next := claim("Busy-1"), claim("Next-1")
	// Another run holds Busy-1's lease.
	if _, err := l.Begin(ctx, ledger.Ref{Provider: memprov.Name, OrderNo: "Busy-1"}, ledger.BeginArgs{Token: "other"}); err != nil {
		t.Fatal(err)
	}
	g.Done(memprov.Name, providers.Errorf(providers.Unavailable, "create", "down")) // the breaker opens
	time.Sleep(80 * time.Millisecond)                                               // and is half-open
	if err := h.ProcessTask(ctx, busy); err == nil || !strings.Contains(err.Error(), "being processed by another run") {
		t.Fatalf("busy order: %v, want a wait for the other run", err)
	}
	if err := h.ProcessTask(ctx, next); err != nil {
		t.Fatalf("the next order after a step that made no call: %v, want it let through as the trial", err)
	}
	if rec, _ := l.Get(ctx, ledger.Ref{Provider: memprov.Name, OrderNo: "Next-1"}); rec.State != ledger.StatePaid || g.State(memprov.Name) != guard.Closed {
		t.Fatalf("state %s, breaker %v; want paid, the breaker closed by the trial", rec.State, g.State(memprov.Name))
	}
}

// An order's record lost while its task waits between polls: asynq's
// retry count says nothing (waits do not raise it), but the task was
// queued for a claimed order, so the worker records the order unknown and
// looks it up rather than create it again. An order whose claim was undone
// (its task queued after all) is still taken for a new one.
func TestLostRecordOfAClaimedTaskIsLookedUp(t *testing.T) {
	t.Parallel()
	forResend(t, func(t *testing.T, resend bool) {
		before := time.Now()
		rec := loseRecordWhilePending(t, "Poll-1", func(ctx context.Context, _ *asynq.Client, enq *tasks.Enqueuer, _ *ledger.Ledger) error {
			res, err := enq.Enqueue(ctx, []byte(`{"provider":"mem","order_no":"Poll-1","params":{"item":"sku-1","qty":2}}`))
			if err == nil && res.Status != tasks.Enqueued {
				err = fmt.Errorf("%+v", res)
			}
			return err
		}, false, resend)
		if rec.FirstAttemptAt.IsZero() || rec.FirstAttemptAt.Before(before.Add(-time.Second)) || rec.FirstAttemptAt.After(time.Now()) {
			t.Errorf("recreated with first attempt %s; want the claim's time, to look the order up from", rec.FirstAttemptAt)
		}
	})
}

// forResend runs test as two subtests: the record lost alone, and lost
// then recorded again by the producer sending the order anew before the
// task's next run (see loseRecordWhilePending).
func forResend(t *testing.T, test func(t *testing.T, resend bool)) {
	for _, resend := range []bool{false, true} {
		t.Run(fmt.Sprintf("resend=%v", resend), func(t *testing.T) {
			t.Parallel()
			test(t, resend)
		})
	}
}

// The same for a task a producer wrote itself (no claim header): its
// create was marked on the task before it left, so a run that finds the
// record gone knows the order may exist, and looks it up.
func TestLostRecordOfAProducersTaskIsLookedUp(t *testing.T) {
	t.Parallel()
	forResend(t, func(t *testing.T, resend bool) {
		loseRecordWhilePending(t, "Hand-1", func(ctx context.Context, client *asynq.Client, _ *tasks.Enqueuer, _ *ledger.Ledger) error {
			_, err := client.EnqueueContext(ctx, asynq.NewTask(tasks.TypeOrderSubmit, []byte(`{"provider":"mem","order_no":"Hand-1","params":{"item":"sku-1","qty":2}}`)),
				asynq.Queue(tasks.DefaultQueue), asynq.MaxRetry(tasks.TaskMaxRetry), asynq.TaskID(tasks.TaskID(memprov.Name, "Hand-1")))
			return err
		}, false, resend)
	})
}

// A task queued for a claim that was undone (its enqueue answered an
// error, yet it got queued) takes the order on as a new one: its creates
// are marked on it, so that when Redis later loses the record, the order
// is looked up, not created again.
func TestLostRecordOfATaskWhoseClaimWasUndoneIsLookedUp(t *testing.T) {
	t.Parallel()
	forResend(t, func(t *testing.T, resend bool) {
		loseRecordWhilePending(t, "Undone-1", func(ctx context.Context, client *asynq.Client, _ *tasks.Enqueuer, l *ledger.Ledger) error {
			params := json.RawMessage(`{"item":"sku-1","qty":2}`)
			hash, _ := tasks.ParamsHash(params)
			ref := ledger.Ref{Provider: memprov.Name, OrderNo: "Undone-1"}
			cr, err := l.Claim(ctx, ref, params, hash)
			if err != nil {
				return err
			}
			if err := l.Unclaim(ctx, ref, cr.Token); err != nil {
				return err
			}
			payload := []byte(`{"provider":"mem","order_no":"Undone-1","params":{"item":"sku-1","qty":2}}`)
			task := asynq.NewTaskWithHeaders(tasks.TypeOrderSubmit, payload, map[string]string{"orderworker-claimed": fmt.Sprintf("%d:%s", time.Now().UnixMilli(), cr.Token)})
			_, err = client.EnqueueContext(ctx, task, asynq.Queue(tasks.DefaultQueue), asynq.MaxRetry(tasks.TaskMaxRetry), asynq.TaskID(tasks.TaskID(memprov.Name, "Undone-1")))
			return err
		}, false, resend)
	})
}

// A claimed task whose first create failed after the provider took it
// (a counted retry, so asynq's retry count is above 0) is recorded again
// with the claim's time as its first attempt: the lookup has a lower
// bound for its window (without one, a lookup by window cannot conclude,
// and the order would wait in unknown until its deadline).
func TestLostRecordAfterACountedRetryKeepsTheClaimsTime(t *testing.T) {
	t.Parallel()
	forResend(t, func(t *testing.T, resend bool) {
		before := time.Now()
		rec := loseRecordWhilePending(t, "Retried-1", func(ctx context.Context, _ *asynq.Client, enq *tasks.Enqueuer, _ *ledger.Ledger) error {
			_, err := enq.Enqueue(ctx, []byte(`{"provider":"mem","order_no":"Retried-1","params":{"item":"sku-1","qty":2}}`))
			return err
		}, true, resend)
		if rec.FirstAttemptAt.IsZero() || rec.FirstAttemptAt.Before(before.Add(-time.Second)) || rec.FirstAttemptAt.After(time.Now()) {
			t.Errorf("recreated with first attempt %s; want the claim's time", rec.FirstAttemptAt)
		}
	})
}

// loseRecordWhilePending queues one order of the mem provider (enqueue),
// runs a worker until the order is pending (firstFails: its first create
// is taken but answered with a failure, so the task is retried), deletes
// its record as a Redis that lost it would, and returns the record as the
// worker recorded it again, after a few more polls. The order must then be
// pending or unknown, created once: looked up, never created again.
//
// resend: the producer sends the order again (through the Enqueuer) after
// the record was lost and before the task runs again, so that the task
// finds a new queued record, not a missing one.
func loseRecordWhilePending(t *testing.T, no string, enqueue func(context.Context, *asynq.Client, *tasks.Enqueuer, *ledger.Ledger) error, firstFails, resend bool) *ledger.Record {
	t.Helper()
	ctx := context.Background()
	b := memprov.NewBackend("")
	b.Pending = true
	b.Duplicates = true // a provider that would take the same order number twice
	if firstFails {
		b.Faults().Script(fault.FailAfter)
	}
	srv, rdb, l, set := memSetup(t, nil, memprov.New(b, memprov.Options{}))
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{PollInterval: 20 * time.Millisecond, ListingLag: -1, Logger: quiet,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}})
	opt := asynq.RedisClientOpt{Addr: srv.Addr}
	var stop func()
	start := func() {
		s, mux := tasks.NewServer(opt, h, tasks.ServerOptions{Concurrency: 2, TaskCheckInterval: 10 * time.Millisecond,
			DelayedTaskCheckInterval: 20 * time.Millisecond, ShutdownTimeout: time.Second, Logger: quiet})
		if err := s.Start(mux); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
		stop = s.Shutdown
	}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	enq := tasks.NewEnqueuer(client, l, set, nil)
	if err := enqueue(ctx, client, enq, l); err != nil {
		t.Fatal(err)
	}
	start()
	ref := ledger.Ref{Provider: memprov.Name, OrderNo: no}
	waitFor := func(what string, ok func(*ledger.Record) bool) *ledger.Record {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			rec, _ := l.Get(ctx, ref)
			if ok(rec) {
				return rec
			}
			if time.Now().After(end) {
				t.Fatalf("%s: record %+v", what, rec)
			}
		}
	}
	waitFor("pending", func(r *ledger.Record) bool { return r != nil && r.State == ledger.StatePending })
	keys, _ := rdb.Keys(ctx, "*order:mem:"+no).Result()
	if len(keys) != 1 {
		t.Fatalf("record keys %v", keys)
	}
	if resend {
		stop()
	}
	rdb.Del(ctx, keys[0]) // Redis loses the record; the task polls on
	if resend {
		// The producer, finding nothing (GET answers 404), sends the
		// order again: recorded anew, its task already there.
		res, err := enq.Enqueue(ctx, []byte(`{"provider":"mem","order_no":"`+no+`","params":{"item":"sku-1","qty":2}}`))
		if err != nil || res.Status != tasks.Enqueued {
			t.Fatalf("resend = %+v, %v", res, err)
		}
		start()
	}
	rec := waitFor("recorded again", func(r *ledger.Record) bool { return r != nil && r.Attempts > 0 })
	time.Sleep(200 * time.Millisecond) // a few more polls
	if got, _ := l.Get(ctx, ref); got.State != ledger.StatePending && got.State != ledger.StateUnknown {
		t.Fatalf("state %s, want the order looked up (pending)", got.State)
	}
	if n := b.Calls("create"); n != 1 {
		t.Fatalf("%d creates after the record was lost (record %+v)", n, rec)
	}
	return rec
}

// quiet discards a test's logs.
var quiet = slog.New(slog.DiscardHandler)

// memSetup starts a redis-server and returns it, a client on it, a ledger
// (lo: its options; nil, the defaults) and a provider set holding prov.
func memSetup(t *testing.T, lo *ledger.Options, prov providers.Provider) (*taskstest.Server, *redis.Client, *ledger.Ledger, *providers.Set) {
	t.Helper()
	srv := taskstest.StartRedis(t, nil)
	rdb := srv.Client(t)
	set := providers.NewSet()
	set.Add(prov)
	return srv, rdb, ledger.New(rdb, lo), set
}

// holdOnce is a breaker that holds its provider back once, then lets
// everything through.
type holdOnce struct{ n atomic.Int64 }

func (g *holdOnce) Wait(context.Context, string) (time.Duration, error) {
	if g.n.Add(1) == 1 {
		return 30 * time.Millisecond, nil
	}
	return 0, nil
}
func (g *holdOnce) Done(string, error) {}

// A task a producer wrote itself whose first run waited before reaching
// the ledger (the breaker held it) is a new order on its next run, created
// once: only a run about to send a create marks the task as one that may
// have created the order. (Taken for a lost record, an Aliyun order without
// a snapshot could never be looked up, and would wait until its deadline.)
func TestProducersTaskThatWaitedFirstIsCreated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := aliyunsandbox.New("SnapKey", "snap-secret", "snap-project")
	hs := httptest.NewServer(sb)
	t.Cleanup(hs.Close)
	c, err := aliyun.New(aliyun.Options{Endpoint: hs.URL, AppKey: "SnapKey", AppSecret: providers.Secret("snap-secret"), ProjectID: "snap-project"})
	if err != nil {
		t.Fatal(err)
	}
	srv, _, l, set := memSetup(t, nil, c)
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Logger: quiet, ListingLag: -1, Guard: &holdOnce{},
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}})
	opt := asynq.RedisClientOpt{Addr: srv.Addr}
	s, mux := tasks.NewServer(opt, h, tasks.ServerOptions{Concurrency: 2, TaskCheckInterval: 10 * time.Millisecond,
		DelayedTaskCheckInterval: 20 * time.Millisecond, ShutdownTimeout: time.Second, Logger: quiet})
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	payload := []byte(`{"provider":"aliyun","order_no":"Hand-W","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1}}`)
	if _, err := client.EnqueueContext(ctx, asynq.NewTask(tasks.TypeOrderSubmit, payload), asynq.Queue(tasks.DefaultQueue),
		asynq.MaxRetry(tasks.TaskMaxRetry), asynq.TaskID(tasks.TaskID("aliyun", "Hand-W"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	ref := ledger.Ref{Provider: "aliyun", OrderNo: "Hand-W"}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rec, _ := l.Get(ctx, ref)
		if rec != nil && sb.Count("dev1") == 1 && (rec.State == ledger.StatePending || rec.State == ledger.StatePaid) {
			for _, a := range rec.History {
				if a.Call == "lookup" {
					t.Errorf("history %+v: looked up as a lost record", rec.History)
				}
			}
			break
		}
		if time.Now().After(end) {
			t.Fatalf("not created once: record %+v, orders at the provider %d", rec, sb.Count("dev1"))
		}
	}
}

// An Aliyun order identified by matching the device's listing after an
// ambiguous create is recorded matched, and with AutoPay it is paid only
// when PayMatched says so: here our create failed before the platform
// acted, and the order the device's user bought meanwhile (unpaid, the
// same plan) is what the lookup finds. Later checks pass Matched back, so
// they do not pay it either.
func TestMatchedOrderIsPaidOnlyWhenTold(t *testing.T) {
	t.Parallel()
	for _, payMatched := range []bool{false, true} {
		t.Run(fmt.Sprintf("PayMatched=%v", payMatched), func(t *testing.T) {
			t.Parallel()
			e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8,
				Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
			ctx := context.Background()
			sb := addAliyun(t, e, func(o *aliyun.Options) { o.AutoPay, o.PayMatched = true, payMatched })
			e.enqueue(t, []byte(`{"provider":"aliyun","order_no":"Match-1","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1}}`))
			ref := ledger.Ref{Provider: "aliyun", OrderNo: "Match-1"}
			rec, _ := e.ledger.Get(ctx, ref)
			task, _ := tasks.NewOrderSubmitTask(tasks.Payload{Provider: "aliyun", OrderNo: "Match-1", Params: json.RawMessage(rec.Params)})

			// The snapshot (an empty device), then a create refused with a
			// 503 before the platform acted: ambiguous to us.
			sb.Faults().Script(fault.FailBefore)
			_ = e.handler.ProcessTask(ctx, task)
			if rec, _ = e.ledger.Get(ctx, ref); rec.State != ledger.StateUnknown || sb.Count("dev1") != 0 {
				t.Fatalf("after an ambiguous create: state %s, %d orders; want unknown, none", rec.State, sb.Count("dev1"))
			}
			foreign := sb.AddOrder(aliyunsandbox.Order{IotID: "dev1", CommodityCode: "streamingResource_20_10", Copies: 1, PaymentStatus: 0})
			for range 3 {
				_ = e.handler.ProcessTask(ctx, task)
			}
			rec, _ = e.ledger.Get(ctx, ref)
			if !rec.Matched || rec.ProviderOrderID != foreign.OrderID {
				t.Fatalf("record %+v: want the order found by matching, recorded matched", rec)
			}
			pays := sb.Calls(aliyun.PathPay)
			if !payMatched && (pays != 0 || rec.State != ledger.StatePending) {
				t.Errorf("without PayMatched: %d pay call(s), state %s; want none, pending for a person", pays, rec.State)
			}
			if payMatched && (pays != 1 || rec.State == ledger.StateErrored) {
				t.Errorf("with PayMatched: %d pay call(s), state %s; want one pay", pays, rec.State)
			}
			if n := sb.Count("dev1"); n != 1 {
				t.Errorf("%d orders on the device, want the one found", n)
			}
		})
	}
}

// payUnsure is a mem provider whose pay times out after it was sent, as an
// Aliyun pay does behind a 5xx gateway: Ambiguous.
type payUnsure struct{ *memprov.Client }

func (p payUnsure) Pay(context.Context, providers.Order) (providers.Result, error) {
	return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: "mem pay", HTTPStatus: 503, Message: "service unavailable"}
}

// doneLog is a breaker that lets everything through and records what each
// call told it.
type doneLog struct {
	mu   sync.Mutex
	errs []error
}

func (g *doneLog) Wait(context.Context, string) (time.Duration, error) { return 0, nil }
func (g *doneLog) Done(_ string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.errs = append(g.errs, err)
}

// An acting call that fails unsure counts against the provider's breaker,
// a pay as a create: only a read that answered without singling the order
// out (Ambiguous) tells of a provider that is up.
func TestUnsurePayCountsAgainstTheBreaker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memprov.NewBackend("")
	b.Pending = true
	_, _, l, set := memSetup(t, nil, payUnsure{memprov.New(b, memprov.Options{AutoPay: true})})
	g := &doneLog{}
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Guard: g, Logger: quiet, ListingLag: -1})
	_, task := claimedMemOrder(t, l, "PayUnsure-1")
	_ = h.ProcessTask(ctx, task) // create (ok), then the pay (unsure)
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.errs) != 2 || g.errs[0] != nil || providers.CodeOf(g.errs[1]) != providers.Ambiguous {
		t.Fatalf("the breaker was told %v; want the create's success, then the pay's ambiguous failure", g.errs)
	}
}

// claimedMemOrder claims the mem order no in l, as a producer would, and
// returns it with its task.
func claimedMemOrder(t *testing.T, l *ledger.Ledger, no string) (ledger.Ref, *asynq.Task) {
	t.Helper()
	params := json.RawMessage(`{"item":"sku-1","qty":2}`)
	hash, _ := tasks.ParamsHash(params)
	ref := ledger.Ref{Provider: memprov.Name, OrderNo: no}
	if _, err := l.Claim(context.Background(), ref, params, hash); err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewOrderSubmitTask(tasks.Payload{Provider: memprov.Name, OrderNo: no, Params: params})
	if err != nil {
		t.Fatal(err)
	}
	return ref, task
}

// heldAliyun is the Aliyun client whose create for one order number holds
// its answer (the order made at the provider) until release is closed.
type heldAliyun struct {
	*aliyun.Client
	orderNo string
	release chan struct{}
}

func (p *heldAliyun) Submit(ctx context.Context, o providers.Order) (providers.Result, error) {
	r, err := p.Client.Submit(ctx, o)
	if o.OrderNo == p.orderNo {
		<-p.release
	}
	return r, err
}

// Two orders for the same device and plan. X's create is refused with a
// 503 (ambiguous to us: nothing was made); Y's create makes its order at
// once but answers late.
//
// Y marked itself X's rival before its create left (ledger.MarkRival), so
// X's lookup, meanwhile, finds Y's order as the one new order of its kind
// since its snapshot but does not take it: it may be Y's. Y's answer names
// it; X, looked up again, finds nothing of its own and is created once.
//
// Without the mark (Y created by a worker that marks no rivals), X's lookup
// takes Y's order by matching; Y's answer then names that order: the answer
// outweighs the match, so the order becomes Y's and X is looked up again,
// finds nothing of its own and is created once. Before that, Y was refused
// its own order (owned by X), its lookups dropped it as X's, and Y was
// created a second time, while X stood for Y's order.
func TestAnsweredCreateTakesItsOrderBackFromAMatch(t *testing.T) {
	t.Parallel()
	for _, marked := range []bool{true, false} {
		t.Run(fmt.Sprint("rivals marked ", marked), func(t *testing.T) {
			t.Parallel()
			testRaceForAMatch(t, marked)
		})
	}
}

func testRaceForAMatch(t *testing.T, marked bool) {
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
	ctx := context.Background()
	sb := aliyunsandbox.New("TestKey", "test-secret", "test-project")
	hs := httptest.NewServer(sb)
	t.Cleanup(hs.Close)
	// ALIYUN_RECREATE_UNLISTED: the sandbox lists every order.
	c, err := aliyun.New(aliyun.Options{Endpoint: hs.URL, AppKey: "TestKey", AppSecret: providers.Secret("test-secret"), ProjectID: "test-project", RecreateUnlisted: true})
	if err != nil {
		t.Fatal(err)
	}
	prov := &heldAliyun{Client: c, orderNo: "Race-Y", release: make(chan struct{})}
	e.set.Add(prov)
	tasksOf := map[string]*asynq.Task{}
	for _, no := range []string{"Race-X", "Race-Y"} {
		e.enqueue(t, []byte(`{"provider":"aliyun","order_no":"`+no+`","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1}}`))
		rec, _ := e.ledger.Get(ctx, ledger.Ref{Provider: "aliyun", OrderNo: no})
		tasksOf[no], _ = tasks.NewOrderSubmitTask(tasks.Payload{Provider: "aliyun", OrderNo: no, Params: json.RawMessage(rec.Params)})
	}
	get := func(no string) *tasks.Record {
		rec, _ := e.ledger.Get(ctx, ledger.Ref{Provider: "aliyun", OrderNo: no})
		return rec
	}

	// X: the snapshot (an empty device), then a create refused with a 503.
	sb.Faults().Script(fault.FailBefore)
	_ = e.handler.ProcessTask(ctx, tasksOf["Race-X"])
	if x := get("Race-X"); x.State != ledger.StateUnknown || sb.Count("dev1") != 0 {
		t.Fatalf("X after its refused create: %s, %d orders on the device; want unknown, none", x.State, sb.Count("dev1"))
	}
	// Y: its create makes the order, and its answer is held.
	yDone := make(chan struct{})
	go func() { defer close(yDone); _ = e.handler.ProcessTask(ctx, tasksOf["Race-Y"]) }()
	for end := time.Now().Add(10 * time.Second); sb.Count("dev1") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("Y's create made no order")
		}
	}
	yOrder := sb.Orders()["dev1"][0].OrderID
	if !marked {
		keys, err := e.rdb.Keys(ctx, "*rivals:*").Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("rivals sets %v, %v; want the device's one", keys, err)
		}
		e.rdb.Del(ctx, keys...)
	}
	_ = e.handler.ProcessTask(ctx, tasksOf["Race-X"])
	if x := get("Race-X"); marked && (x.ProviderOrderID != "" || x.State != ledger.StateUnknown || len(x.History) == 0 || !strings.Contains(x.History[len(x.History)-1].Message, "not guessing")) {
		t.Fatalf("X after its lookup beside Y's create: %+v; want unknown, no order taken", x)
	} else if !marked && (x.ProviderOrderID != yOrder || !x.Matched) {
		t.Fatalf("X after its lookup: %+v; want Y's order %s, matched", x, yOrder)
	}
	// Y's answer arrives.
	close(prov.release)
	<-yDone
	if y := get("Race-Y"); y.ProviderOrderID != yOrder {
		t.Fatalf("Y after its create's answer: %+v; want its order %s", y, yOrder)
	}
	if x := get("Race-X"); x.State != ledger.StateUnknown || x.ProviderOrderID != "" {
		t.Fatalf("X after Y's answer: %+v; want unknown, no order of its own yet", x)
	}
	// X is looked up again, finds nothing of its own, and is created.
	for range 3 {
		_ = e.handler.ProcessTask(ctx, tasksOf["Race-X"])
		_ = e.handler.ProcessTask(ctx, tasksOf["Race-Y"])
	}
	x, y := get("Race-X"), get("Race-Y")
	if x.ProviderOrderID == "" || x.ProviderOrderID == yOrder || y.ProviderOrderID != yOrder || sb.Count("dev1") != 2 {
		t.Fatalf("X %s with %q, Y %s with %q, %d orders on the device; want each its own order, 2 in all",
			x.State, x.ProviderOrderID, y.State, y.ProviderOrderID, sb.Count("dev1"))
	}
	// With the mark, X never stood for Y's order: no event names it as X's.
	evs, err := e.ledger.Events(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if marked && ev.Data.OrderNo == "Race-X" && ev.Data.ProviderOrderID == yOrder {
			t.Errorf("event %+v gives X Y's order", ev)
		}
	}
}

// Two orders for the same device and plan, both unknown: X's create
// refused with a 503 (nothing made), Y's create made with its answer lost,
// a moment later, within the listing lag: Y's snapshot may not show an
// order X's create made. The one new order on the device could be either's:
// neither takes it, and nothing is created again while it is undecided (a
// person resolves one, see the README's "Guarantees").
func TestRivalsBothUnknownTakeNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8, ListingLag: time.Minute,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
	ctx := context.Background()
	sb := addAliyun(t, e, nil)
	tasksOf := map[string]*asynq.Task{}
	for _, no := range []string{"Both-X", "Both-Y"} {
		e.enqueue(t, []byte(`{"provider":"aliyun","order_no":"`+no+`","params":{"iotId":"dev2","commodityCode":"streamingResource_20_10","copies":1}}`))
		rec, _ := e.ledger.Get(ctx, ledger.Ref{Provider: "aliyun", OrderNo: no})
		tasksOf[no], _ = tasks.NewOrderSubmitTask(tasks.Payload{Provider: "aliyun", OrderNo: no, Params: json.RawMessage(rec.Params)})
	}
	sb.Faults().Script(fault.FailBefore)
	_ = e.handler.ProcessTask(ctx, tasksOf["Both-X"])
	sb.Faults().Script(fault.FailAfter)
	_ = e.handler.ProcessTask(ctx, tasksOf["Both-Y"])
	if sb.Count("dev2") != 1 {
		t.Fatalf("%d orders on the device; want Y's one", sb.Count("dev2"))
	}
	for range 3 {
		_ = e.handler.ProcessTask(ctx, tasksOf["Both-X"])
		_ = e.handler.ProcessTask(ctx, tasksOf["Both-Y"])
	}
	for _, no := range []string{"Both-X", "Both-Y"} {
		rec, _ := e.ledger.Get(ctx, ledger.Ref{Provider: "aliyun", OrderNo: no})
		if rec.ProviderOrderID != "" || rec.State != ledger.StateUnknown {
			t.Errorf("%s: %s with %q (%s); want unknown, no order taken", no, rec.State, rec.ProviderOrderID, rec.Reason)
		}
	}
	if sb.Count("dev2") != 1 {
		t.Errorf("%d orders on the device; want still 1: nothing created while undecided", sb.Count("dev2"))
	}
}

// lookupUnreadable is the in-memory provider whose lookups fail
// Unavailable, with the given HTTP status (0: no answer at all).
type lookupUnreadable struct {
	*memprov.Client
	status int
	code   string
}

func (p lookupUnreadable) Lookup(context.Context, providers.Order) (providers.Result, error) {
	return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: "mem list", HTTPStatus: p.status, ProviderCode: p.code, Message: "malformed order list"}
}

// A read the provider answered but the client could not use (a malformed
// or unending listing: Unavailable at a 2xx, without an error code) tells
// nothing of the provider's health: it is reported as no news, neither a
// failure (one order's unreadable listing would open the breaker for
// every order, and its half-open trials, going to that order's lookups,
// would keep it open) nor a success. A read that got no answer, a 4xx or
// 5xx, or an error code at a 2xx (InternalError) counts.
func TestUnreadableListingDoesNotOpenTheBreaker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tt := range []struct {
		status int
		code   string
		counts bool
	}{{200, "", false}, {200, "InternalError", true}, {200, "500", true}, {404, "", true}, {0, "", true}, {503, "", true}, {408, "", true}} {
		t.Run(fmt.Sprint(tt.status, tt.code), func(t *testing.T) {
			t.Parallel()
			b := memprov.NewBackend("")
			b.Faults().Script(fault.FailAfter) // created, the answer lost: a lookup follows
			_, _, l, set := memSetup(t, nil, lookupUnreadable{memprov.New(b, memprov.Options{}), tt.status, tt.code})
			g := &doneLog{}
			h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Guard: g, Logger: quiet, ListingLag: -1,
				Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}})
			_, task := claimedMemOrder(t, l, "Unreadable-1")
			_ = h.ProcessTask(ctx, task) // the create, ambiguous
			_ = h.ProcessTask(ctx, task) // the lookup, unreadable
			g.mu.Lock()
			defer g.mu.Unlock()
			if len(g.errs) != 2 || providers.CodeOf(g.errs[0]) != providers.Ambiguous {
				t.Fatalf("the breaker was told %v; want the create's ambiguous failure, then the lookup's", g.errs)
			}
			if counted := providers.CodeOf(g.errs[1]) == providers.Unavailable; counted != tt.counts || (!counted && !errors.Is(g.errs[1], providers.ErrNoNews)) {
				t.Errorf("a lookup unavailable at HTTP %d %s told the breaker %v; counts: %v, want %v (else no news)", tt.status, tt.code, g.errs[1], counted, tt.counts)
			}
		})
	}
}

// freezeHook holds every command back while frozen is set (until it is
// cleared or the command's context ends): a process frozen mid-call,
// whose keepalive cannot extend its lease.
type freezeHook struct{ frozen atomic.Bool }

func (h *freezeHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *freezeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		for h.frozen.Load() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		return next(ctx, cmd)
	}
}
func (h *freezeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// lateProv's create freezes its process (freeze) and leaves only once
// another run has created the order (after): a request that stalled
// before the socket, past its lease, and another run's lookup that could
// not see it.
type lateProv struct {
	*memprov.Client
	freeze *freezeHook
	after  <-chan struct{}
}

func (p *lateProv) Submit(_ context.Context, o providers.Order) (providers.Result, error) {
	p.freeze.frozen.Store(true)
	<-p.after
	r, err := p.Client.Submit(context.Background(), o) // the stalled request leaves
	p.freeze.frozen.Store(false)
	return r, err
}

// A create whose lease ran out while it was under way (the process
// stalled mid-call, before its request left) may reach the provider after
// another run took the order, looked it up, found nothing and created it:
// no check before the socket closes that gap. The stalled run finds the
// order taken when it ends and makes it known: an error naming the order
// and orderworker_late_provider_calls_total (alert
// ProviderCallAfterLeaseLost).
func TestCreateThatLostItsLeaseMidCallIsMadeKnown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ttl = time.Second
	backend := memprov.NewBackend("")
	srv := taskstest.StartRedis(t, nil)
	freeze := &freezeHook{}
	stalled := srv.Client(t)
	stalled.AddHook(freeze)
	lA := ledger.New(stalled, nil)
	created := make(chan struct{})
	setA := providers.NewSet()
	setA.Add(&lateProv{Client: memprov.New(backend, memprov.Options{AutoPay: true}), freeze: freeze, after: created})
	reg := prometheus.NewRegistry()
	metrics := tasks.NewMetrics(reg)
	metrics.Init([]string{memprov.Name})
	var logs lockedBuffer
	hA := tasks.NewHandler(lA, setA, &tasks.HandlerOptions{LeaseTTL: ttl, ListingLag: -1, Metrics: metrics,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ref, task := claimedMemOrder(t, lA, "Late-1")
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hA.ProcessTask(ctx, task)
	}()
	for deadline := time.Now().Add(30 * time.Second); !freeze.frozen.Load(); time.Sleep(5 * time.Millisecond) {
		select {
		case <-done:
			t.Fatal("the first run ended without sending its create (a loaded machine took it past a third of the lease?)")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the first run never reached its create")
		}
	}
	time.Sleep(ttl + ttl/2) // the lease runs out: nothing extends it

	lB := ledger.New(srv.Client(t), nil)
	setB := providers.NewSet()
	setB.Add(memprov.New(backend, memprov.Options{AutoPay: true}))
	hB := tasks.NewHandler(lB, setB, &tasks.HandlerOptions{LeaseTTL: time.Minute, ListingLag: -1, Logger: quiet})
	for i := 0; ; i++ {
		_ = hB.ProcessTask(ctx, task)
		if rec, _ := lB.Get(ctx, ref); rec != nil && rec.State == tasks.StatePaid {
			break
		}
		if i > 50 {
			t.Fatal("the second run did not pay the order")
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(created)
	<-done

	if n := backend.Calls("create"); n != 2 {
		t.Fatalf("creates = %d, want 2: the stalled request left after the second run's", n)
	}
	want := `
# HELP orderworker_late_provider_calls_total Creates and pays (call) that lost the order's lease while under way and found it taken by another run when they ended (the process stalled mid-call, a frozen VM or a paused container, a failover lost the lease, or Redis lost the order's record and another run recorded it again): the request may have left after another run had created or paid the order. Check the provider for the order twice.
# TYPE orderworker_late_provider_calls_total counter
orderworker_late_provider_calls_total{call="pay",provider="mem"} 0
orderworker_late_provider_calls_total{call="submit",provider="mem"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "orderworker_late_provider_calls_total"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(logs.String(), "lost the order's lease while under way") || !strings.Contains(logs.String(), "order_no=Late-1") || !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("no error naming the order:\n%s", logs.String())
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger and a reader at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
