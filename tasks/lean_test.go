package tasks_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	ordersm "github.com/orderworker/orderworker/tasks/order"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// roundTrips counts what a client sends: one per command or pipeline.
type roundTrips struct {
	n     atomic.Int64 // round trips
	calls atomic.Int64 // commands sent, in round trips of their own or shared
	mu    sync.Mutex
	log   []string
}

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "hello", "client", "auth", "select":
			// A new connection's handshake, not the ledger's work.
			return next(ctx, cmd)
		}
		c.n.Add(1)
		c.calls.Add(1)
		c.mu.Lock()
		c.log = append(c.log, fmt.Sprint(cmd.Args()[0]))
		c.mu.Unlock()
		return next(ctx, cmd)
	}
}
func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		trip := false
		for _, cmd := range cmds {
			switch cmd.Name() {
			case "hello", "client", "auth", "select":
				// a new connection's handshake
			default:
				trip = true
				c.calls.Add(1)
			}
		}
		if trip {
			c.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// memEnv is a worker on the in-memory provider: no HTTP.
type memEnv struct {
	backend  *memprov.Backend
	ledger   *ledger.Ledger
	reader   *ledger.Ledger // on a client the round-trip count does not see
	enqueuer *tasks.Enqueuer
	trips    *roundTrips
	redis    *taskstest.Server
	srv      *tasks.Server
}

func setupMem(t *testing.T, ho *tasks.HandlerOptions, pending bool) *memEnv {
	t.Helper()
	e := &memEnv{backend: memprov.NewBackend("s"), trips: &roundTrips{}, redis: taskstest.StartRedis(t, nil)}
	e.backend.Pending = pending
	rdb := e.redis.Client(t)
	rdb.AddHook(e.trips)
	e.ledger = ledger.New(rdb, nil)
	e.reader = ledger.New(e.redis.Client(t), nil)
	set := providers.NewSet()
	set.Add(memprov.New(e.backend, memprov.Options{Secret: "s", AutoPay: true}))
	opt := asynq.RedisClientOpt{Addr: e.redis.Addr}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	e.enqueuer = tasks.NewEnqueuer(client, e.ledger, set, nil)
	if ho == nil {
		ho = &tasks.HandlerOptions{}
	}
	ho.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if ho.ListingLag == 0 {
		ho.ListingLag = -1 // the in-memory provider lists an order at once
	}
	h := tasks.NewHandler(e.ledger, set, ho)
	var mux *asynq.ServeMux
	e.srv, mux = tasks.NewServer(opt, h, tasks.ServerOptions{Concurrency: 8, TaskCheckInterval: 10 * time.Millisecond,
		DelayedTaskCheckInterval: 50 * time.Millisecond, Logger: ho.Logger})
	if err := e.srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.srv.Shutdown)
	return e
}

func (e *memEnv) wait(t *testing.T, no string, want tasks.State) *tasks.Record {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rec, err := e.reader.Get(context.Background(), tasks.OrderRef{Provider: memprov.Name, OrderNo: no})
		if err == nil && rec != nil && rec.State == want {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s: %+v, %v; want %s", no, rec, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func memOrder(no string) []byte {
	return []byte(fmt.Sprintf(`{"provider":"mem","order_no":%q,"params":{"item":"sku-1","qty":2}}`, no))
}

// The lean order path: an order paid on its first call costs the ledger
// exactly three scripts (claim; begin; settle) in at most three round trips
// (orders running at the same moment share them), the params are parsed
// once, and nothing else touches the ledger.
func TestHappyPathLedgerRoundTrips(t *testing.T) {
	t.Parallel()
	e := setupMem(t, nil, false)
	const n = 20
	// Warm the script cache, so that EVALSHA never falls back to EVAL.
	if res, err := e.enqueuer.Enqueue(context.Background(), memOrder("warm")); err != nil || res.Status != tasks.Enqueued {
		t.Fatal(res, err)
	}
	e.wait(t, "warm", tasks.StatePaid)
	// Count without the test's own reads: enqueue all, wait on the
	// provider's side, then read.
	e.trips.n.Store(0)
	e.trips.calls.Store(0)
	e.trips.mu.Lock()
	e.trips.log = nil
	e.trips.mu.Unlock()
	for i := range n {
		if res, err := e.enqueuer.Enqueue(context.Background(), memOrder(fmt.Sprintf("LeanB%02d", i))); err != nil || res.Status != tasks.Enqueued {
			t.Fatal(res, err)
		}
	}
	var recs []*tasks.Record
	for i := range n {
		recs = append(recs, e.wait(t, fmt.Sprintf("LeanB%02d", i), tasks.StatePaid))
	}
	if calls, trips := e.trips.calls.Load(), e.trips.n.Load(); calls != 3*n || trips > 3*n {
		e.trips.mu.Lock()
		t.Errorf("ledger commands for %d orders = %d in %d round trips, want %d (claim, begin, settle each) in at most as many; %v", n, calls, trips, 3*n, e.trips.log)
		e.trips.mu.Unlock()
	}
	for _, rec := range recs {
		if rec.Attempts != 1 || len(rec.History) != 1 || rec.History[0].Call != "submit" {
			t.Errorf("%s: attempts %d, history %+v", rec.OrderNo, rec.Attempts, rec.History)
		}
	}
}

// A new order costs its producer one round trip to Redis, asynq's enqueue
// included: the claim queues the task. With task options of the caller's
// own, asynq's client enqueues it after the claim. Both get paid.
func TestEnqueueIsOneRoundTrip(t *testing.T) {
	t.Parallel()
	e := setupMem(t, nil, false)
	set := providers.NewSet()
	set.Add(memprov.New(e.backend, memprov.Options{Secret: "s"}))
	for i, c := range []struct {
		name  string
		opts  *tasks.EnqueuerOptions
		trips int64
	}{
		{"one trip", nil, 1},
		{"task options", &tasks.EnqueuerOptions{TaskOptions: []asynq.Option{asynq.Retention(time.Minute)}}, 2},
	} {
		trips := &roundTrips{}
		rdb := e.redis.Client(t)
		rdb.AddHook(trips)
		client := asynq.NewClientFromRedisClient(rdb) // its commands are counted too
		enq := tasks.NewEnqueuer(client, ledger.New(rdb, nil), set, c.opts)
		no := strings.ReplaceAll(c.name, " ", "-")
		if res, err := enq.Enqueue(context.Background(), memOrder(no+"-warm")); err != nil || res.Status != tasks.Enqueued {
			t.Fatal(res, err)
		}
		trips.n.Store(0)
		trips.calls.Store(0)
		if res, err := enq.Enqueue(context.Background(), memOrder(no)); err != nil || res.Status != tasks.Enqueued {
			t.Fatal(res, err)
		}
		if n := trips.n.Load(); n != c.trips {
			trips.mu.Lock()
			t.Errorf("%s: a new order took %d round trips, want %d: %v", c.name, n, c.trips, trips.log)
			trips.mu.Unlock()
		}
		e.wait(t, no+"-warm", tasks.StatePaid)
		e.wait(t, no, tasks.StatePaid)
		if n := e.backend.Calls("create"); n != 2*(i+1) {
			t.Errorf("after %s: %d creates reached the provider, want %d (one per order)", c.name, n, 2*(i+1))
		}
	}
}

// crossSlot refuses, as a proxy in front of a sharded Redis would, every
// script whose keys span hash slots (the claim with its task, whose keys
// are the ledger's and asynq's), and counts the refusals.
type crossSlot struct{ refused atomic.Int64 }

type crossSlotErr string

func (e crossSlotErr) Error() string { return string(e) }
func (crossSlotErr) RedisError()     {}

func (c *crossSlot) refuse(cmd redis.Cmder) bool {
	args := cmd.Args()
	if (cmd.Name() != "evalsha" && cmd.Name() != "eval") || len(args) < 3 {
		return false
	}
	n, _ := args[2].(int)
	for i := 4; i < 3+n && i < len(args); i++ {
		if taskstest.KeySlot(fmt.Sprint(args[i])) != taskstest.KeySlot(fmt.Sprint(args[3])) {
			cmd.SetErr(crossSlotErr("CROSSSLOT Keys in request don't hash to the same slot"))
			c.refused.Add(1)
			return true
		}
	}
	return false
}

func (c *crossSlot) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *crossSlot) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if c.refuse(cmd) {
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}
func (c *crossSlot) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var rest []redis.Cmder
		var first error
		for _, cmd := range cmds {
			if c.refuse(cmd) {
				first = cmp.Or(first, cmd.Err())
				continue
			}
			rest = append(rest, cmd)
		}
		if len(rest) > 0 {
			first = cmp.Or(next(ctx, rest), first)
		}
		return first
	}
}

// Behind a Redis that refuses a script across hash slots, a producer's
// first claim with its task is refused unwritten; the producer then claims
// and enqueues separately, and every order is accepted once and paid.
func TestEnqueueFallsBackOnCrossSlot(t *testing.T) {
	t.Parallel()
	e := setupMem(t, nil, false)
	set := providers.NewSet()
	set.Add(memprov.New(e.backend, memprov.Options{Secret: "s"}))
	for _, batch := range []bool{false, true} {
		proxy := &crossSlot{}
		rdb := e.redis.Client(t)
		rdb.AddHook(proxy)
		client := asynq.NewClient(asynq.RedisClientOpt{Addr: e.redis.Addr})
		t.Cleanup(func() { client.Close() })
		enq := tasks.NewEnqueuer(client, ledger.New(rdb, nil), set, nil)
		nos := []string{fmt.Sprintf("X%v-1", batch), fmt.Sprintf("X%v-2", batch), fmt.Sprintf("X%v-3", batch)}
		if batch {
			got := enq.EnqueueBatch(context.Background(), [][]byte{memOrder(nos[0]), memOrder(nos[1])})
			for i, r := range got {
				if r.Err != nil || r.Status != tasks.Enqueued {
					t.Fatalf("batch order %d: %+v, %v", i, r.EnqueueResult, r.Err)
				}
			}
		} else {
			for _, no := range nos[:2] {
				if res, err := enq.Enqueue(context.Background(), memOrder(no)); err != nil || res.Status != tasks.Enqueued {
					t.Fatalf("Enqueue %s = %+v, %v", no, res, err)
				}
			}
		}
		if res, err := enq.Enqueue(context.Background(), memOrder(nos[2])); err != nil || res.Status != tasks.Enqueued {
			t.Fatalf("Enqueue %s = %+v, %v", nos[2], res, err)
		}
		if n := proxy.refused.Load(); n == 0 || (!batch && n != 1) {
			t.Errorf("batch %v: %d claims with their task refused, want the first only", batch, n)
		}
		for _, no := range nos {
			e.wait(t, no, tasks.StatePaid)
		}
	}
	if n := e.backend.Calls("create"); n != 6 {
		t.Errorf("%d creates reached the provider, want 6 (one per order)", n)
	}
	// A claim with its task built before another goroutine's refusal
	// switched the ledger over is answered as a refusal (nothing sent),
	// which the Enqueuer takes as "claim, then enqueue".
	proxy := &crossSlot{}
	rdb := e.redis.Client(t)
	rdb.AddHook(proxy)
	l := ledger.New(rdb, nil)
	task := func(no string) *ledger.Task {
		return &ledger.Task{Type: tasks.TypeOrderSubmit, Payload: []byte("{}"), ID: "mem:" + no, Queue: "orders", Retry: 1, Timeout: 1}
	}
	if _, err := l.ClaimQueue(context.Background(), ledger.ClaimArgs{Ref: ledger.Ref{Provider: "mem", OrderNo: "S1"}, ParamsHash: "h", Task: task("S1")}); !errors.Is(err, ledger.ErrTaskNotInClaim) {
		t.Fatalf("first claim with its task: %v, want ErrTaskNotInClaim", err)
	}
	if _, err := l.ClaimQueue(context.Background(), ledger.ClaimArgs{Ref: ledger.Ref{Provider: "mem", OrderNo: "S2"}, ParamsHash: "h", Task: task("S2")}); !errors.Is(err, ledger.ErrTaskNotInClaim) {
		t.Errorf("a claim with its task after the switch: %v, want ErrTaskNotInClaim", err)
	}
	if _, _, err := l.ClaimMany(context.Background(), []ledger.ClaimArgs{{Ref: ledger.Ref{Provider: "mem", OrderNo: "S3"}, ParamsHash: "h", Task: task("S3")}}); !errors.Is(err, ledger.ErrTaskNotInClaim) {
		t.Errorf("a batch of claims with their tasks after the switch: %v, want ErrTaskNotInClaim", err)
	}
	if n := proxy.refused.Load(); n != 1 {
		t.Errorf("%d scripts refused, want 1: nothing is sent once the ledger switched over", n)
	}
	if rec, err := e.reader.Get(context.Background(), ledger.Ref{Provider: "mem", OrderNo: "S2"}); err != nil || rec != nil {
		t.Errorf("S2 = %+v, %v; want nothing written", rec, err)
	}
}

// Pay is a step of its own, recorded as such; a lookup never pays.
func TestPayIsItsOwnStep(t *testing.T) {
	t.Parallel()
	e := setupMem(t, &tasks.HandlerOptions{PollInterval: 10 * time.Millisecond}, true)
	if res, err := e.enqueuer.Enqueue(context.Background(), memOrder("Pay1")); err != nil || res.Status != tasks.Enqueued {
		t.Fatal(res, err)
	}
	rec := e.wait(t, "Pay1", tasks.StatePaid)
	var calls []string
	for _, a := range rec.History {
		calls = append(calls, a.Call+":"+a.Result)
	}
	if fmt.Sprint(calls) != "[submit:ok pay:ok]" {
		t.Errorf("history = %v, want [submit:ok pay:ok]", calls)
	}
	if n := e.backend.Calls("pay"); n != 1 {
		t.Errorf("pay calls = %d, want 1", n)
	}
}

// A provider whose checks go on showing an order unpaid after a pay whose
// answer was lost gets another pay only a listing lag after the last one,
// never on every check; the order ends errored when its pending window
// closes.
func TestPaidAgainOnlyAfterTheListingLag(t *testing.T) {
	t.Parallel()
	const lag = 300 * time.Millisecond
	e := setupMem(t, &tasks.HandlerOptions{PollInterval: 10 * time.Millisecond, PendingWindow: 2 * time.Second, ListingLag: lag}, true)
	e.backend.SetPayAnswerLost(true)
	if res, err := e.enqueuer.Enqueue(context.Background(), memOrder("PayOnce")); err != nil || res.Status != tasks.Enqueued {
		t.Fatal(res, err)
	}
	rec := e.wait(t, "PayOnce", tasks.StateErrored)
	var pays []time.Time
	polls := 0
	for _, a := range rec.History {
		switch a.Call {
		case "pay":
			pays = append(pays, a.At)
		case "poll":
			polls++
		}
	}
	// The history keeps the last ledger.MaxHistory attempts: with the
	// polls between pays, the first pays may have been dropped from it.
	if n := e.backend.Calls("pay"); n < 2 || n > 7 || n != len(pays) && (len(rec.History) < ledger.MaxHistory || n < len(pays)) {
		t.Errorf("%d pay calls, %d in the history; want 2 to 7 (at most one per listing lag in a 2s window)", n, len(pays))
	}
	// The lag is judged between the pays' marks, on Redis's clock in whole
	// milliseconds; the history has each call's start on the worker's, a
	// moment after its mark: allow a millisecond or two either way.
	for i := 1; i < len(pays); i++ {
		if gap := pays[i].Sub(pays[i-1]); gap < lag-2*time.Millisecond {
			t.Errorf("pay %d only %s after the one before, within the listing lag of %s", i+1, gap, lag)
		}
	}
	if polls < 5 || rec.PaySentAt.IsZero() || !strings.Contains(rec.Reason, "still unpaid after the pending window") {
		t.Errorf("%d polls, pay sent at %v, reason %q; want the polls between pays, the last pay's time and the window's end", polls, rec.PaySentAt, rec.Reason)
	}
}

// A worker whose own clock runs an hour ahead judges a pay's listing lag
// on Redis's clock, as the ledger stamped the pay: it waits out the lag
// between its checks instead of taking it as passed at once, asking to pay
// again, being refused by Begin (on Redis's clock) and checking the order
// again and again in a loop.
func TestPayLagOnRedisClock(t *testing.T) {
	t.Parallel()
	// asynq times a retry in whole seconds: a wait of poll comes back
	// within one.
	const lag, poll = 5 * time.Second, time.Second
	ahead := func() time.Time { return time.Now().Add(time.Hour) }
	e := setupMem(t, &tasks.HandlerOptions{PollInterval: poll, PendingWindow: time.Minute, ListingLag: lag, Now: ahead}, true)
	e.backend.NextCheck = -1 // checked at the poll interval
	e.backend.SetPayAnswerLost(true)
	if res, err := e.enqueuer.Enqueue(context.Background(), memOrder("PaySkew")); err != nil || res.Status != tasks.Enqueued {
		t.Fatal(res, err)
	}
	for end := time.Now().Add(10 * time.Second); e.backend.Calls("pay") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("no pay sent")
		}
	}
	before := e.backend.Calls("lookup")
	time.Sleep(3 * time.Second) // within the lag
	checks := e.backend.Calls("lookup") - before
	if pays := e.backend.Calls("pay"); pays != 1 || checks < 1 || checks > 8 {
		t.Errorf("3s within the listing lag after a pay: %d pays, %d checks; want 1 pay and a check every %s or so", pays, checks, poll)
	}
}

// A pay the provider answered as accepted is never sent again, however
// long its checks go on showing the order unpaid: nothing documents that a
// pay is idempotent. Nor is the order errored at the pending window (the
// pay went through as far as the provider said): it stays pending for a
// person (the decision's reason says so: see tasks/order).
func TestAcceptedPayIsNotSentAgain(t *testing.T) {
	t.Parallel()
	const lag = 200 * time.Millisecond
	e := setupMem(t, &tasks.HandlerOptions{PollInterval: 10 * time.Millisecond, PendingWindow: time.Second, ListingLag: lag}, true)
	e.backend.SetPayLags(true)
	if res, err := e.enqueuer.Enqueue(context.Background(), memOrder("PayAccepted")); err != nil || res.Status != tasks.Enqueued {
		t.Fatal(res, err)
	}
	var rec *ledger.Record
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if rec, err = e.ledger.Get(context.Background(), ledger.Ref{Provider: "mem", OrderNo: "PayAccepted"}); err != nil {
			t.Fatal(err)
		}
		if rec != nil && !rec.PendingSince.IsZero() && time.Since(rec.PendingSince) > 2*time.Second {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("order PayAccepted: %+v; want pending past its window, waiting for a person", rec)
		}
	}
	if n := e.backend.Calls("pay"); n != 1 {
		t.Errorf("%d pay calls, want 1: the provider accepted the first", n)
	}
	if rec.State != ledger.StatePending || !rec.PayAccepted() {
		t.Errorf("order: state %s, pay accepted %v; want pending past its window, the pay accepted", rec.State, rec.PayAccepted())
	}
}

// A batch answers each order as Enqueue would, in order, with the claims in
// one round trip.
func TestEnqueueBatch(t *testing.T) {
	t.Parallel()
	e := setupMem(t, nil, false)
	// A producer of its own, whose round trips the worker's do not mix with.
	trips := &roundTrips{}
	rdb := e.redis.Client(t)
	rdb.AddHook(trips)
	set := providers.NewSet()
	set.Add(memprov.New(e.backend, memprov.Options{Secret: "s"}))
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: e.redis.Addr})
	t.Cleanup(func() { client.Close() })
	enq := tasks.NewEnqueuer(client, ledger.New(rdb, nil), set, nil)
	if res, err := enq.Enqueue(context.Background(), memOrder("B-dup")); err != nil || res.Status != tasks.Enqueued {
		t.Fatal(res, err)
	}
	// Paid before the batch: a duplicate of an order still queued is
	// checked for its task, which the running worker may finish between
	// the claim and that check (then queued again: "repaired").
	e.wait(t, "B-dup", tasks.StatePaid)
	trips.n.Store(0)
	batch := [][]byte{
		memOrder("B-new1"),
		memOrder("B-dup"),
		[]byte(`{"provider":"mem","order_no":"B-dup","params":{"item":"sku-1","qty":3}}`),
		[]byte(`{"provider":"mem","order_no":"B-bad","params":{"item":"sku-1"}}`),
		[]byte(`not json`),
		memOrder("B-new2"),
		// A new order given twice in the batch: answered from the first,
		// never queued twice nor "repaired".
		memOrder("B-twice"),
		memOrder("B-twice"),
		[]byte(`{"provider":"mem","order_no":"B-twice","params":{"item":"sku-1","qty":3}}`),
	}
	got := enq.EnqueueBatch(context.Background(), batch)
	want := []string{tasks.Enqueued, tasks.Duplicate, tasks.Conflict, tasks.Invalid, tasks.Invalid, tasks.Enqueued,
		tasks.Enqueued, tasks.Duplicate, tasks.Conflict}
	for i, r := range got {
		if r.Err != nil || r.Status != want[i] || r.Repaired {
			t.Errorf("order %d: %+v, %v; want %s, not repaired", i, r.EnqueueResult, r.Err, want[i])
		}
	}
	// The claims, then the repeats' dedupe counts (only for a batch that
	// gives an order twice).
	if n := trips.n.Load(); n != 2 {
		t.Errorf("ledger round trips for the batch = %d, want 2", n)
	}
	// Repeats count as claims would have: B-dup's duplicate and conflict
	// by their claims, B-twice's by the batch.
	if counts, err := ledger.New(rdb, nil).DedupeCounts(context.Background()); err != nil ||
		counts["mem"]["duplicate"] != 2 || counts["mem"]["conflict"] != 2 {
		t.Errorf("dedupe counts after the batch = %v, %v; want 2 duplicates and 2 conflicts", counts, err)
	}
	e.wait(t, "B-new1", tasks.StatePaid)
	e.wait(t, "B-new2", tasks.StatePaid)
}

// memEnqueuer starts a redis-server and returns it and an Enqueuer on it
// (opts: its options) for the mem provider, with no worker.
func memEnqueuer(t *testing.T, opts *tasks.EnqueuerOptions) (*taskstest.Server, *tasks.Enqueuer) {
	t.Helper()
	srv := taskstest.StartRedis(t, nil)
	set := providers.NewSet()
	set.Add(memprov.New(memprov.NewBackend("s"), memprov.Options{Secret: "s"}))
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	return srv, tasks.NewEnqueuer(client, ledger.New(srv.Client(t), nil), set, opts)
}

// An order given again in a batch after an occurrence that conflicts with
// the record is judged on its own: the recorded order sent again is a
// duplicate, never a conflict (a producer told "conflict" may renumber it,
// and the order would be created twice).
func TestBatchRepeatAfterAConflictIsJudgedOnItsOwn(t *testing.T) {
	t.Parallel()
	_, enq := memEnqueuer(t, nil)
	ctx := context.Background()
	if res, err := enq.Enqueue(ctx, memOrder("R-1")); err != nil || res.Status != tasks.Enqueued {
		t.Fatal(res, err)
	}
	other := []byte(`{"provider":"mem","order_no":"R-1","params":{"item":"sku-1","qty":3}}`)
	got := enq.EnqueueBatch(ctx, [][]byte{other, memOrder("R-1"), other, memOrder("R-1")})
	want := []string{tasks.Conflict, tasks.Duplicate, tasks.Conflict, tasks.Duplicate}
	for i, r := range got {
		if r.Err != nil || r.Status != want[i] {
			t.Errorf("order %d: %+v, %v; want %s", i, r.EnqueueResult, r.Err, want[i])
		}
	}
}

// Task options a producer gives never replace the order's task id or
// queue: each order gets its own task, where the reconciler looks for it.
func TestTaskOptionsKeepTheOrdersTaskIDAndQueue(t *testing.T) {
	t.Parallel()
	srv, enq := memEnqueuer(t, &tasks.EnqueuerOptions{
		TaskOptions: []asynq.Option{asynq.TaskID("fixed"), asynq.Queue("elsewhere"), asynq.Retention(time.Minute)}})
	for _, no := range []string{"T-1", "T-2"} {
		if res, err := enq.Enqueue(context.Background(), memOrder(no)); err != nil || res.Status != tasks.Enqueued {
			t.Fatal(res, err)
		}
	}
	ins := asynq.NewInspector(asynq.RedisClientOpt{Addr: srv.Addr})
	t.Cleanup(func() { ins.Close() })
	for _, no := range []string{"T-1", "T-2"} {
		info, err := ins.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID(memprov.Name, no))
		if err != nil || info.Retention != time.Minute {
			t.Errorf("task of %s: %+v, %v; want it in %s under its own id, with the producer's retention", no, info, err, tasks.DefaultQueue)
		}
	}
}

// Sealed params a worker cannot open (no data key, or another one than the
// producers') hold the order back unchanged, whatever its state, until a
// worker with the right key takes it.
func TestUnreadableParamsLeaveTheOrderWaiting(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	l := ledger.New(rdb, nil)
	backend := memprov.NewBackend("s")
	set := providers.NewSet()
	set.Add(memprov.New(backend, memprov.Options{Secret: "s"}))
	opt := asynq.RedisClientOpt{Addr: rs.Addr}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	keyA, _ := tasks.NewSealer("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")
	keyB, _ := tasks.NewSealer("QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=")
	enq := tasks.NewEnqueuer(client, l, set, &tasks.EnqueuerOptions{Sealer: keyA})
	// One order queued, one unknown (its create may have gone out).
	for _, no := range []string{"Seal-Q", "Seal-U"} {
		if res, err := enq.Enqueue(context.Background(), memOrder(no)); err != nil || res.Status != tasks.Enqueued {
			t.Fatal(res, err)
		}
	}
	u := tasks.OrderRef{Provider: memprov.Name, OrderNo: "Seal-U"}
	if _, err := l.Begin(context.Background(), u, ledger.BeginArgs{Token: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(context.Background(), u, "t", ledger.SetUnknown("timeout after write").WithFailures(1)); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func(s *tasks.Sealer) (*tasks.Problems, func()) {
		problems := tasks.NewProblems()
		h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Sealer: s, Problems: problems, ConfigWait: 20 * time.Millisecond, ListingLag: -1, Logger: quiet})
		srv, mux := tasks.NewServer(opt, h, tasks.ServerOptions{TaskCheckInterval: 10 * time.Millisecond, DelayedTaskCheckInterval: 20 * time.Millisecond, Logger: quiet})
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		return problems, srv.Shutdown
	}
	for name, s := range map[string]*tasks.Sealer{"no key": nil, "another key": keyB} {
		problems, stop := start(s)
		time.Sleep(400 * time.Millisecond) // many runs of both tasks
		stop()
		if err := problems.Err(); err == nil || !strings.Contains(err.Error(), "data_key") {
			t.Errorf("%s: problems = %v, want data_key", name, err)
		}
		for no, want := range map[string]tasks.State{"Seal-Q": tasks.StateQueued, "Seal-U": tasks.StateUnknown} {
			rec, _ := l.Get(context.Background(), tasks.OrderRef{Provider: memprov.Name, OrderNo: no})
			if rec.State != want || len(rec.History) != 0 {
				t.Errorf("%s: %s is %s with %d calls, want %s untouched", name, no, rec.State, len(rec.History), want)
			}
		}
	}
	if n := backend.Calls("create") + backend.Calls("lookup"); n != 0 {
		t.Errorf("the provider got %d calls from workers that cannot read the params", n)
	}
	_, stop := start(keyA)
	defer stop()
	for _, no := range []string{"Seal-Q", "Seal-U"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if rec, _ := l.Get(context.Background(), tasks.OrderRef{Provider: memprov.Name, OrderNo: no}); rec != nil && rec.State == tasks.StatePaid {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not paid by the worker with the right key", no)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// rejectingRun is a handler with e's in-memory provider and the task of
// order no with params, which the provider rejects.
func rejectingRun(t *testing.T, e *memEnv, no string, params []byte) (*tasks.Handler, *asynq.Task) {
	t.Helper()
	task, err := tasks.NewOrderSubmitTask(tasks.Payload{Provider: memprov.Name, OrderNo: no, Params: params})
	if err != nil {
		t.Fatal(err)
	}
	set := providers.NewSet()
	set.Add(memprov.New(e.backend, memprov.Options{Secret: "s"}))
	return tasks.NewHandler(e.ledger, set, &tasks.HandlerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}), task
}

// Recorded params that this worker's provider rejects (a stricter version
// of its validation, say) end an order that was about to be created, with
// the reason; nothing is sent.
func TestRejectedRecordedParamsEndTheOrder(t *testing.T) {
	t.Parallel()
	e := setupMem(t, nil, false)
	bad := []byte(`{"item":"sku-1","qty":1000}`) // over memprov's bound
	ref := tasks.OrderRef{Provider: memprov.Name, OrderNo: "Bad1"}
	if _, err := e.ledger.Claim(context.Background(), ref, bad, "h"); err != nil {
		t.Fatal(err)
	}
	h, task := rejectingRun(t, e, "Bad1", bad)
	if err := h.ProcessTask(context.Background(), task); err == nil {
		t.Fatal("ProcessTask = nil, want the task stopped")
	}
	rec := e.wait(t, "Bad1", tasks.StateErrored)
	if !strings.Contains(rec.Reason, "recorded params rejected") || rec.Inflight != 0 {
		t.Errorf("record = %+v", rec)
	}
	if n := e.backend.Calls("create"); n != 0 {
		t.Errorf("%d creates sent for rejected params", n)
	}
}

// Recorded params this worker rejects, on an order a create of which may
// have been received (a run of a version that took them died with it in
// flight), leave the order unknown for a person, never errored and nothing
// sent; a later look by this worker rests, not archiving the task again.
// Before, the run only ended the task: the order stayed submitting with
// its create in flight, re-queued and archived at every sweep, out of
// sight of the alerts on unknown orders (a review).
func TestRejectedRecordedParamsOfAnOrderThatMayExistAreLeftForAPerson(t *testing.T) {
	t.Parallel()
	e := setupMem(t, nil, false)
	bad := []byte(`{"item":"sku-1","qty":1000}`) // over memprov's bound
	ref := tasks.OrderRef{Provider: memprov.Name, OrderNo: "Bad2"}
	ctx := context.Background()
	if _, err := e.ledger.Claim(ctx, ref, bad, "h"); err != nil {
		t.Fatal(err)
	}
	if b, err := e.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: "killed", LeaseTTL: time.Millisecond}); err != nil || !b.Record.InflightMarked {
		t.Fatalf("Begin = %+v, %v; want a create marked", b, err)
	}
	time.Sleep(5 * time.Millisecond) // the killed run's lease ends
	h, task := rejectingRun(t, e, "Bad2", bad)
	if err := h.ProcessTask(ctx, task); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("ProcessTask = %v, want the task ended for a person", err)
	}
	rec := e.wait(t, "Bad2", tasks.StateUnknown)
	if !ordersm.LeftForAPerson(rec.Reason) || !strings.Contains(rec.Reason, "recorded params rejected") || !rec.MayExist {
		t.Errorf("record = %+v; want unknown, left for a person, may exist", rec)
	}
	// The reconciler's later look: nothing new, the task rests.
	if err := h.ProcessTask(ctx, task); err != nil {
		t.Errorf("a later look = %v, want the task to rest (not archived again)", err)
	}
	if n := e.backend.Calls("create") + e.backend.Calls("lookup"); n != 0 {
		t.Errorf("%d calls sent for rejected params", n)
	}
}

// A run that died with a create in flight leaves the order to the next
// run, which records it unknown (with its order.unknown event) before it
// looks it up, and never creates it again.
func TestAbandonedCreateIsUnknownThenLookedUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := taskstest.StartRedis(t, nil)
	l := ledger.New(rs.Client(t), nil)
	backend := memprov.NewBackend("s")
	prov := memprov.New(backend, memprov.Options{Secret: "s"})
	set := providers.NewSet()
	set.Add(prov)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: rs.Addr})
	t.Cleanup(func() { client.Close() })
	if res, err := tasks.NewEnqueuer(client, l, set, nil).Enqueue(ctx, memOrder("Dead-1")); err != nil || res.Status != tasks.Enqueued {
		t.Fatal(res, err)
	}
	ref := tasks.OrderRef{Provider: memprov.Name, OrderNo: "Dead-1"}
	rec, _ := l.Get(ctx, ref)
	// The dead run: its create marked in flight and received, its lease
	// run out, nothing settled.
	if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "dead", LeaseTTL: 50 * time.Millisecond}); err != nil || b.Record == nil || !b.Record.InflightMarked {
		t.Fatalf("begin: %+v, %v; want the create marked", b, err)
	}
	parsed, _ := memprov.Parse(rec.Params)
	if _, err := prov.Submit(ctx, providers.Order{OrderNo: "Dead-1", Params: rec.Params, Parsed: parsed}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)

	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{ListingLag: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	task, err := tasks.NewOrderSubmitTask(tasks.Payload{Provider: memprov.Name, OrderNo: "Dead-1", Params: rec.Params})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.ProcessTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	rec, _ = l.Get(ctx, ref)
	if rec.State != tasks.StatePaid || backend.Count("Dead-1") != 1 || backend.Calls("create") != 1 {
		t.Fatalf("state %s, %d orders at the provider after %d creates; want paid, 1, 1", rec.State, backend.Count("Dead-1"), backend.Calls("create"))
	}
	evs, err := l.Events(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	if fmt.Sprint(types) != "[order.unknown order.paid]" {
		t.Errorf("events %v, want [order.unknown order.paid]", types)
	}
}
