package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// lossWorld is one redis-server, a mem provider that would take the same
// order number twice, a producer and a worker that can be stopped and
// started again: for orders whose record Redis loses.
type lossWorld struct {
	t       *testing.T
	b       *memprov.Backend
	rdb     *redis.Client
	l       *ledger.Ledger
	enq     *tasks.Enqueuer
	client  *asynq.Client
	ins     *asynq.Inspector
	opt     asynq.RedisClientOpt
	h       *tasks.Handler
	running *tasks.Server
	srv     *taskstest.Server
	set     *providers.Set
}

func newLossWorld(t *testing.T) *lossWorld { return newLossWorldOf(t, nil) }

// newLossWorldOf is newLossWorld with the ledger's options lo.
func newLossWorldOf(t *testing.T, lo *ledger.Options) *lossWorld {
	t.Helper()
	b := memprov.NewBackend("")
	b.Pending = true
	b.Duplicates = true
	srv, rdb, l, set := memSetup(t, lo, memprov.New(b, memprov.Options{}))
	w := &lossWorld{t: t, b: b, rdb: rdb, l: l, opt: asynq.RedisClientOpt{Addr: srv.Addr}, srv: srv, set: set}
	w.h = tasks.NewHandler(l, set, &tasks.HandlerOptions{PollInterval: 20 * time.Millisecond, ListingLag: -1, Logger: quiet,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}})
	w.client = asynq.NewClient(w.opt)
	t.Cleanup(func() { w.client.Close() })
	w.ins = asynq.NewInspector(w.opt)
	t.Cleanup(func() { w.ins.Close() })
	w.enq = tasks.NewEnqueuer(w.client, l, set, nil)
	return w
}

func (w *lossWorld) start() {
	w.t.Helper()
	s, mux := tasks.NewServer(w.opt, w.h, tasks.ServerOptions{Concurrency: 2, TaskCheckInterval: 10 * time.Millisecond,
		DelayedTaskCheckInterval: 20 * time.Millisecond, ShutdownTimeout: time.Second, Logger: quiet})
	if err := s.Start(mux); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(s.Shutdown)
	w.running = s
}

func (w *lossWorld) stop() { w.running.Shutdown() }

// send is the producer sending the order: answered enqueued.
func (w *lossWorld) send(no string) {
	w.t.Helper()
	res, err := w.enq.Enqueue(context.Background(), memOrder(no))
	if err != nil || res.Status != tasks.Enqueued {
		w.t.Fatalf("Enqueue %s = %+v, %v; want enqueued", no, res, err)
	}
}

func (w *lossWorld) waitFor(no, what string, ok func(*ledger.Record) bool) *ledger.Record {
	w.t.Helper()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		rec, _ := w.l.Get(context.Background(), ledger.Ref{Provider: memprov.Name, OrderNo: no})
		if ok(rec) {
			return rec
		}
		if time.Now().After(end) {
			w.t.Fatalf("%s: record %+v", what, rec)
		}
	}
}

// lose deletes the order's record, as a Redis that lost it would.
func (w *lossWorld) lose(no string) {
	w.t.Helper()
	keys, _ := w.rdb.Keys(context.Background(), "*order:mem:"+no).Result()
	if len(keys) != 1 {
		w.t.Fatalf("record keys %v", keys)
	}
	w.rdb.Del(context.Background(), keys[0])
}

// createdOnce waits a while for more runs, then wants one create.
func (w *lossWorld) createdOnce(no string) {
	w.t.Helper()
	w.waitFor(no, "recorded again and settled", func(r *ledger.Record) bool {
		return r != nil && (r.State == ledger.StatePending || r.State == ledger.StateUnknown) && r.Attempts > 0
	})
	time.Sleep(300 * time.Millisecond)
	if n := w.b.Calls("create"); n != 1 {
		w.t.Fatalf("%d creates of %s; want 1 (looked up, never created again)", n, no)
	}
}

// queueOwn queues the order's task as a producer that writes asynq tasks
// itself would, with headers (nil: none), in the queue as named.
func (w *lossWorld) queueOwn(no string, headers map[string]string) {
	w.t.Helper()
	task := asynq.NewTaskWithHeaders(tasks.TypeOrderSubmit, memOrderPayload(no), headers)
	if _, err := w.client.Enqueue(task, asynq.Queue(tasks.DefaultQueue), asynq.MaxRetry(tasks.TaskMaxRetry),
		asynq.TaskID(tasks.TaskID(memprov.Name, no))); err != nil {
		w.t.Fatal(err)
	}
}

// archive archives the order's task, as asynq does with a task that
// stopped.
func (w *lossWorld) archive(no string) {
	w.t.Helper()
	id := tasks.TaskID(memprov.Name, no)
	err := w.ins.ArchiveTask(tasks.DefaultQueue, id)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		// The Enqueuer's task, in the order's shard queue.
		err = w.ins.ArchiveTask(tasks.OrderQueue(tasks.DefaultQueue, w.l, tasks.OrderRef{Provider: memprov.Name, OrderNo: no}), id)
	}
	if err != nil {
		w.t.Fatal(err)
	}
}

// sweep runs the reconciler once, every record past its grace.
func (w *lossWorld) sweep() {
	w.t.Helper()
	r := tasks.NewReconciler(w.l, w.ins, w.client, []string{memprov.Name}, &tasks.ReconcilerOptions{Grace: time.Nanosecond, Logger: quiet})
	time.Sleep(5 * time.Millisecond)
	if _, err := r.Sweep(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

func pendingNow(r *ledger.Record) bool { return r != nil && r.State == ledger.StatePending }

// A task the reconciler (or an operator's tool) queued for an order that
// may exist carries the record's claim: when Redis later loses the record
// and the producer sends the order again, the task looks the order up
// rather than create it again, though it never sent a create itself.
func TestRequeuedTaskLooksUpAfterTheRecordIsLostAndResent(t *testing.T) {
	t.Parallel()
	w := newLossWorld(t)
	const no = "RQ-1"
	w.send(no)
	w.start()
	w.waitFor(no, "pending", pendingNow)
	w.stop()
	if err := w.ins.DeleteTask(tasks.DefaultQueue, tasks.TaskID(memprov.Name, no)); err != nil {
		t.Fatal(err)
	}
	rec, _ := w.l.Get(context.Background(), ledger.Ref{Provider: memprov.Name, OrderNo: no})
	if ok, err := tasks.Requeue(context.Background(), w.l, w.ins, w.client, tasks.DefaultQueue, rec); err != nil || !ok {
		t.Fatalf("Requeue = %v, %v", ok, err)
	}
	w.start()
	time.Sleep(200 * time.Millisecond) // the new task polls
	w.stop()
	w.lose(no)
	w.send(no)
	w.start()
	w.createdOnce(no)
}

// An archived task that created the order, replaced by the reconciler for
// a record the producer sent again after Redis lost the first: the new
// task inherits what the archived one stood for, and looks the order up.
func TestReplacedArchivedTaskHandsOnItsCreate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		producer bool
		shards   int
	}{{false, 1}, {true, 1}, {false, 3}, {true, 3}} {
		name := "enqueuer"
		if c.producer {
			name = "producer-written"
		}
		// With shards, a producer's own task sits in the queue as named,
		// not in the order's shard queue: the reconciler looks there too.
		producer := c.producer
		t.Run(fmt.Sprintf("%s/shards=%d", name, c.shards), func(t *testing.T) {
			t.Parallel()
			w := newLossWorldOf(t, &ledger.Options{Shards: c.shards})
			const no = "RQ-2"
			if producer {
				// Its creates are marked on it, not carried by a claim.
				w.queueOwn(no, nil)
			} else {
				w.send(no)
			}
			w.start()
			w.waitFor(no, "pending", pendingNow)
			w.stop()
			w.archive(no)
			w.lose(no)
			w.send(no) // answered enqueued: the archived task holds the id
			w.sweep()
			w.start()
			w.createdOnce(no)
		})
	}
}

// A producer's task whose first create was refused before the provider
// acted (throttled) creates the order on its next try without a lookup:
// its mark was written under the record it finds, which knows that create.
func TestRefusedCreateOfAProducersTaskIsNotTakenForALostRecord(t *testing.T) {
	t.Parallel()
	w := newLossWorld(t)
	w.b.Pending = false
	w.b.Faults().Script(fault.Throttle)
	const no = "Thr-1"
	w.queueOwn(no, nil)
	w.start()
	rec := w.waitFor(no, "paid", func(r *ledger.Record) bool { return r != nil && r.State == ledger.StatePaid })
	for _, a := range rec.History {
		if a.Call == "lookup" {
			t.Errorf("history %+v: looked up, as if a create under a lost record may exist", rec.History)
		}
	}
	if n := w.b.Calls("create"); n != 2 {
		t.Errorf("%d creates; want paid on the second", n)
	}
}

// A producer's task whose params give a key twice, the first holding a
// phone number: without a data key it is refused, never recorded in
// clear (decoded, only the last value would be seen).
func TestPhoneInADuplicatedKeyOfAProducersTaskIsRefused(t *testing.T) {
	t.Parallel()
	w := newLossWorld(t)
	payload := []byte(`{"provider":"mem","order_no":"Dup-1","params":{"item":"13912345678","item":"sku-1","qty":1}}`)
	err := w.h.ProcessTask(context.Background(), asynq.NewTask(tasks.TypeOrderSubmit, payload))
	if err == nil || strings.Contains(err.Error(), "13912345678") {
		t.Errorf("run = %v; want it refused, without the number", err)
	}
	for _, k := range w.rdb.Keys(context.Background(), "*order:mem:*").Val() {
		if p := w.rdb.HGet(context.Background(), k, "params").Val(); strings.Contains(p, "13912345678") {
			t.Errorf("record %s holds the phone number in clear: %s", k, p)
		}
	}
}

func memOrderPayload(no string) []byte {
	b, _ := json.Marshal(map[string]any{"provider": "mem", "order_no": no, "params": json.RawMessage(`{"item":"sku-1","qty":2}`)})
	return b
}

// A task whose claim the Enqueuer undid took the order on and created it
// under a record of its own; archived, then replaced by the reconciler
// after Redis lost that record and the producer sent the order again: the
// undone claim says nothing, the task's mark does, and it is handed on.
func TestReplacedTaskOfAnUndoneClaimHandsOnItsMark(t *testing.T) {
	t.Parallel()
	w := newLossWorld(t)
	ctx := context.Background()
	const no = "UN-1"
	ref := ledger.Ref{Provider: memprov.Name, OrderNo: no}
	cr, err := w.l.Claim(ctx, ref, []byte(`{"item":"sku-1","qty":2}`), "h")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.l.Unclaim(ctx, ref, cr.Token); err != nil { // undone…
		t.Fatal(err)
	}
	// …yet queued.
	w.queueOwn(no, map[string]string{"orderworker-claimed": strconv.FormatInt(time.Now().UnixMilli(), 10) + ":" + cr.Token})
	w.start()
	w.waitFor(no, "taken on and created", pendingNow)
	w.stop()
	w.archive(no)
	w.lose(no)
	w.send(no)
	w.sweep()
	w.start()
	w.createdOnce(no)
}

// A task re-queued for a record that knows no time for its creates
// (recorded again after a loss, then resolved absent by a person) marks
// its own create with its time: should the record be lost again, the
// lookup has a time to search from.
func TestRequeuedTaskWithoutATimeMarksItsCreate(t *testing.T) {
	t.Parallel()
	forResend(t, func(t *testing.T, resend bool) { requeuedWithoutATime(t, resend) })
}

func requeuedWithoutATime(t *testing.T, resend bool) {
	w := newLossWorld(t)
	ctx := context.Background()
	const no = "NT-1"
	ref := ledger.Ref{Provider: memprov.Name, OrderNo: no}
	params := json.RawMessage(`{"item":"sku-1","qty":2}`)
	hash, _ := tasks.ParamsHash(params)
	if _, err := w.l.ClaimLost(ctx, ref, params, hash, "record lost", ledger.Lost{}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.l.Resolve(ctx, ref, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "checked the console", By: "ops"}); err != nil {
		t.Fatal(err)
	}
	rec, _ := w.l.Get(ctx, ref)
	if ok, err := tasks.Requeue(ctx, w.l, w.ins, w.client, tasks.DefaultQueue, rec); err != nil || !ok {
		t.Fatalf("Requeue = %v, %v", ok, err)
	}
	before := time.Now()
	w.start()
	w.waitFor(no, "created", pendingNow)
	w.stop()
	w.lose(no)
	if resend {
		w.send(no)
	}
	w.start()
	got := w.waitFor(no, "recorded again and taken for one that may exist", func(r *ledger.Record) bool { return r != nil && r.MayHaveExisted })
	if got.FirstAttemptAt.IsZero() || got.FirstAttemptAt.Before(before.Add(-time.Second)) {
		t.Errorf("recorded again with first attempt %v; want the create's time, to look the order up from", got.FirstAttemptAt)
	}
	w.createdOnce(no)
}

// A lost record whose task's params this worker rejects, on a worker with
// a data key: recorded unknown, its params sealed, for a person.
func TestLostRecordWithRejectedParamsIsRecordedSealed(t *testing.T) {
	t.Parallel()
	w := newLossWorld(t)
	ctx := context.Background()
	sealer, err := tasks.NewSealer("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")
	if err != nil {
		t.Fatal(err)
	}
	set := providers.NewSet()
	set.Add(memprov.New(w.b, memprov.Options{}))
	h := tasks.NewHandler(w.l, set, &tasks.HandlerOptions{Sealer: sealer, ListingLag: -1, Logger: quiet})
	payload := []byte(`{"provider":"mem","order_no":"RJ-1","params":{"item":"not an item!","qty":2}}`)
	// Queued for a claim not undone whose record is gone: it may have
	// created the order.
	task := asynq.NewTaskWithHeaders(tasks.TypeOrderSubmit, payload,
		map[string]string{"orderworker-claimed": strconv.FormatInt(time.Now().UnixMilli(), 10) + ":lost-claim"})
	if err := h.ProcessTask(ctx, task); err == nil {
		t.Fatal("run = nil; want it stopped for the rejected params")
	}
	rec, _ := w.l.Get(ctx, ledger.Ref{Provider: memprov.Name, OrderNo: "RJ-1"})
	if rec == nil || rec.State != ledger.StateUnknown || !tasks.IsSealed(rec.Params) || !strings.Contains(rec.Reason, "left for a person") {
		t.Errorf("record %+v; want unknown, params sealed, left for a person", rec)
	}
}

// A task replacing an archived one takes its place in one step, through
// the ledger, not asynq's client: there is no moment in which the old one
// is gone and the new one, which hands on what it stood for, not yet
// queued (a failure there lost it, and a resend's repair task created the
// order again).
func TestReplacingAnArchivedTaskIsOneStep(t *testing.T) {
	t.Parallel()
	w := newLossWorld(t)
	ctx := context.Background()
	const no = "HO-1"
	w.send(no)
	w.start()
	w.waitFor(no, "pending", pendingNow)
	w.stop()
	w.archive(no)
	w.lose(no)
	w.send(no)
	rec, _ := w.l.Get(ctx, ledger.Ref{Provider: memprov.Name, OrderNo: no})
	// asynq's client is not used to replace it: an unreachable one
	// changes nothing.
	dead := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { dead.Close() })
	if ok, err := tasks.Requeue(ctx, w.l, w.ins, dead, tasks.DefaultQueue, rec); err != nil || !ok {
		t.Fatalf("Requeue = %v, %v; want the archived task replaced", ok, err)
	}
	info, err := w.ins.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID(memprov.Name, no))
	if err != nil || info.State != asynq.TaskStatePending || info.Headers["orderworker-claimed"] == "" {
		t.Fatalf("task after the replacement: %+v, %v; want it pending, with its claim header", info, err)
	}
	// The producer sends it again meanwhile: a duplicate, nothing to
	// repair.
	if res, err := w.enq.Enqueue(ctx, memOrder(no)); err != nil || res.Status != tasks.Duplicate || res.Repaired {
		t.Fatalf("resend = %+v, %v; want a duplicate, not repaired", res, err)
	}
	w.start()
	w.createdOnce(no)
}

// With ledger shards, the reconciler queues no task in the order's shard
// queue beside a producer's live task in the queue as named (one waiting
// on a disabled provider or a backoff, say): that task runs the order.
func TestReconcilerLeavesAProducersLiveTaskInAShardedLedger(t *testing.T) {
	t.Parallel()
	w := newLossWorldOf(t, &ledger.Options{Shards: 3})
	ctx := context.Background()
	const no = "SH-2"
	w.queueOwn(no, nil) // pending in the queue as named
	ref := ledger.Ref{Provider: memprov.Name, OrderNo: no}
	params := json.RawMessage(`{"item":"sku-1","qty":2}`)
	hash, _ := tasks.ParamsHash(params)
	if _, err := w.l.Claim(ctx, ref, params, hash); err != nil { // as a run of the task claims it
		t.Fatal(err)
	}
	w.sweep()
	shard := tasks.OrderQueue(tasks.DefaultQueue, w.l, tasks.OrderRef{Provider: memprov.Name, OrderNo: no})
	if _, err := w.ins.GetTaskInfo(shard, tasks.TaskID(memprov.Name, no)); err == nil {
		t.Fatalf("the reconciler queued a second task in %s beside the producer's live one", shard)
	}
	w.start()
	w.createdOnce(no)
}

// With ledger shards, a task a producer wrote itself sits in the queue as
// named, not in the order's shard queue: a resend after Redis lost its
// record queues no second task beside it, and that task looks the order
// up before it creates it again.
func TestResendBesideAProducersTaskInAShardedLedger(t *testing.T) {
	t.Parallel()
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			t.Parallel()
			w := newLossWorldOf(t, &ledger.Options{Shards: 3})
			ctx := context.Background()
			const no = "SH-1"
			w.queueOwn(no, nil)
			w.start()
			w.waitFor(no, "pending", pendingNow)
			w.stop()
			w.lose(no)
			var res tasks.EnqueueResult
			if batch {
				got := w.enq.EnqueueBatch(ctx, [][]byte{memOrder(no)})
				res = got[0].EnqueueResult
				if got[0].Err != nil {
					t.Fatal(got[0].Err)
				}
			} else {
				var err error
				if res, err = w.enq.Enqueue(ctx, memOrder(no)); err != nil {
					t.Fatal(err)
				}
			}
			if res.Status != tasks.Enqueued {
				t.Fatalf("resend = %+v; want enqueued", res)
			}
			shard := tasks.OrderQueue(tasks.DefaultQueue, w.l, tasks.OrderRef{Provider: memprov.Name, OrderNo: no})
			if _, err := w.ins.GetTaskInfo(shard, tasks.TaskID(memprov.Name, no)); err == nil {
				t.Fatalf("a second task was queued in %s beside the producer's", shard)
			}
			w.start()
			w.createdOnce(no)
		})
	}
}

// notDurableWorld is a lossWorld whose Redis has a replica, paused: no
// write is acknowledged. The producer has a Redis client of its own,
// rdb (its hooks see only the producer's calls).
func notDurableWorld(t *testing.T) (w *lossWorld, rep *taskstest.Server, rdb *redis.Client) {
	t.Helper()
	b := memprov.NewBackend("")
	srv, wrdb, l, set := memSetup(t, &ledger.Options{WaitTimeout: 300 * time.Millisecond}, memprov.New(b, memprov.Options{}))
	rep = srv.AttachReplica(t)
	w = &lossWorld{t: t, b: b, rdb: wrdb, l: l, opt: asynq.RedisClientOpt{Addr: srv.Addr}}
	w.h = tasks.NewHandler(l, set, &tasks.HandlerOptions{Logger: quiet})
	w.client = asynq.NewClient(w.opt)
	t.Cleanup(func() { w.client.Close() })
	w.ins = asynq.NewInspector(w.opt)
	t.Cleanup(func() { w.ins.Close() })
	rdb = srv.Client(t)
	w.enq = tasks.NewEnqueuer(w.client, ledger.New(rdb, &ledger.Options{WaitTimeout: 300 * time.Millisecond}), set, nil)
	rep.Pause(t)
	return w, rep, rdb
}

// resumeBeforeNthWait resumes a paused replica just before the n-th
// pipeline that waits for the replicas (a durable write) goes out.
type resumeBeforeNthWait struct {
	rep *taskstest.Server
	n   int
	mu  sync.Mutex
}

func (h *resumeBeforeNthWait) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *resumeBeforeNthWait) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *resumeBeforeNthWait) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if c.Name() == "wait" {
				h.mu.Lock()
				if h.n--; h.n == 0 {
					h.rep.Resume()
				}
				h.mu.Unlock()
				break
			}
		}
		return next(ctx, cmds)
	}
}

// A claim the replicas did not acknowledge, whose task a worker took
// meanwhile, cannot be taken back: the order goes ahead. It is never
// answered "not accepted": the record is offered to the replicas again,
// and answered enqueued once they hold it, else "may have been accepted".
func TestNotDurableClaimAWorkerTookIsConfirmed(t *testing.T) {
	t.Parallel()
	for _, back := range []bool{false, true} {
		t.Run(fmt.Sprintf("replica_back=%v", back), func(t *testing.T) {
			t.Parallel()
			w, rep, rdb := notDurableWorld(t)
			if back {
				// Back before the second durable write (the take-back,
				// which finds the order taken): the confirmation after it
				// is acknowledged.
				rdb.AddHook(&resumeBeforeNthWait{rep: rep, n: 2})
			}
			w.start()
			const no = "ND-W"
			res, err := w.enq.Enqueue(context.Background(), memOrder(no))
			switch {
			case errors.Is(err, tasks.ErrNotAccepted):
				t.Fatalf("answered not accepted, yet a worker took the order: %v", err)
			case back && (err != nil || res.Status != tasks.Enqueued):
				t.Fatalf("with the replica back for the confirmation: %+v, %v; want enqueued", res, err)
			case !back && !errors.Is(err, tasks.ErrMaybeAccepted):
				t.Fatalf("with the replica hung: %+v, %v; want may have been accepted", res, err)
			}
			rep.Resume()
			w.waitFor(no, "paid", func(r *ledger.Record) bool { return r != nil && r.State == ledger.StatePaid })
			if res, err := w.enq.Enqueue(context.Background(), memOrder(no)); err != nil || res.Status != tasks.Duplicate {
				t.Fatalf("sent again = %+v, %v; want duplicate", res, err)
			}
			if n := w.b.Calls("create"); n != 1 {
				t.Errorf("%d creates, want 1", n)
			}
		})
	}
}

// Two sends of one order at once, neither acknowledged by the replicas:
// the second found the record, so the first cannot take it back, and the
// order goes ahead. Neither is answered "not accepted".
func TestTwoNotDurableSendsAreNeverBothNotAccepted(t *testing.T) {
	t.Parallel()
	w, rep, _ := notDurableWorld(t)
	const no = "ND-2x"
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 50 * time.Millisecond)
			_, errs[i] = w.enq.Enqueue(context.Background(), memOrder(no))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, tasks.ErrMaybeAccepted) {
			t.Errorf("send %d = %v; want may have been accepted (the record stands)", i+1, err)
		}
	}
	rep.Resume()
	w.start()
	w.waitFor(no, "paid", func(r *ledger.Record) bool { return r != nil && r.State == ledger.StatePaid })
	if n := w.b.Calls("create"); n != 1 {
		t.Errorf("%d creates, want 1", n)
	}
}

// onWaits calls before and after around each pipeline that waits for the
// replicas (a durable write), with its number, from 1.
type onWaits struct {
	before, after func(n int)
	mu            sync.Mutex
	n             int
}

func (h *onWaits) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *onWaits) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *onWaits) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return c.Name() == "wait" }) {
			return next(ctx, cmds)
		}
		h.mu.Lock()
		h.n++
		n := h.n
		h.mu.Unlock()
		h.before(n)
		err := next(ctx, cmds)
		h.after(n)
		return err
	}
}

// A producer whose claim does not queue the task (asynq task options
// given; Redis Cluster): a claim the replicas did not acknowledge, that
// another send found meanwhile (so it is not taken back), is confirmed and
// then its task is queued, as for any new record: never answered enqueued
// without a task.
func TestConfirmedClaimGetsItsTask(t *testing.T) {
	t.Parallel()
	w, rep, rdb := notDurableWorld(t)
	const no = "ND-T"
	ctx := context.Background()
	key := "orderworker:{ledger}:order:" + memprov.Name + ":" + no
	var found atomic.Bool
	rdb.AddHook(&onWaits{
		before: func(int) {
			if found.Load() { // the confirmation
				rep.Resume()
			}
		},
		after: func(int) {
			if !found.Load() && w.rdb.HExists(ctx, key, "state").Val() {
				// Right after the claim, another send finds the record.
				w.rdb.HIncrBy(ctx, key, "resent", 1)
				found.Store(true)
			}
		},
	})
	set := providers.NewSet()
	set.Add(memprov.New(w.b, memprov.Options{}))
	enq := tasks.NewEnqueuer(w.client, ledger.New(rdb, &ledger.Options{WaitTimeout: 300 * time.Millisecond}), set,
		&tasks.EnqueuerOptions{TaskOptions: []asynq.Option{asynq.Retention(time.Minute)}})
	res, err := enq.Enqueue(ctx, memOrder(no))
	if err != nil || res.Status != tasks.Enqueued {
		t.Fatalf("Enqueue = %+v, %v; want enqueued once the replica is back", res, err)
	}
	if _, err := w.ins.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID(memprov.Name, no)); err != nil {
		t.Fatalf("answered enqueued, but the order's task: %v", err)
	}
}

// Where the claim does not queue the task (Redis Cluster, a proxy that
// refuses scripts across slots, EnqueuerOptions.TaskOptions), a claim the
// replicas did not acknowledge is taken back only while no task stands
// for the order: a task whose record a failover lost, a producer's own, or
// one an earlier send queued whose answer was lost runs the order whatever
// becomes of the record. Taken back, the answer would be "not accepted,
// will not run" for an order that then gets created, and a producer that
// renumbered it would have it created twice. The claim stands instead: it
// is confirmed, answered enqueued, and the order created once.
func TestNotAcceptedNeverWhileATaskStandsForTheOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"lost-record", "producers-own-task", "enqueue-error-then-resend", "task-queued-before-the-take-back"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			w := newLossWorldOf(t, &ledger.Options{WaitTimeout: 300 * time.Millisecond})
			srv, set := w.srv, w.set
			rep := srv.AttachReplica(t)
			prdb := srv.Client(t)
			// The producer's asynq client: armed, its next script runs and
			// its answer is lost (a Redis timeout).
			ardb := srv.Client(t)
			lose := &loseNextScriptReply{}
			ardb.AddHook(lose)
			aclient := asynq.NewClientFromRedisClient(ardb)
			twoStep := tasks.NewEnqueuer(aclient, ledger.New(prdb, &ledger.Options{WaitTimeout: 300 * time.Millisecond}), set,
				&tasks.EnqueuerOptions{TaskOptions: []asynq.Option{asynq.Retention(time.Minute)}})
			const no = "NA-1"
			ctx := context.Background()
			// One order first, so that the producer has seen the replica.
			if res, err := twoStep.Enqueue(ctx, memOrder("NA-warm")); err != nil || res.Status != tasks.Enqueued {
				t.Fatalf("warm-up = %+v, %v", res, err)
			}
			switch tc {
			case "lost-record":
				// Accepted, then its record is lost (a failover of the
				// master that holds it; on a cluster its task lives on
				// another).
				if res, err := twoStep.Enqueue(ctx, memOrder(no)); err != nil || res.Status != tasks.Enqueued {
					t.Fatalf("first send = %+v, %v", res, err)
				}
				w.lose(no)
			case "producers-own-task":
				w.queueOwn(no, nil)
			case "enqueue-error-then-resend":
				// Claimed, its task written by asynq's client, whose answer
				// is lost: the claim is undone, and the answer is an error
				// ("may or may not have been accepted; send it again").
				lose.armed.Store(true)
				if res, err := twoStep.Enqueue(ctx, memOrder(no)); err == nil {
					t.Fatalf("first send = %+v; want an error", res)
				}
			}
			if tc == "task-queued-before-the-take-back" {
				// A producer's own task lands between the take-back's
				// check for a task and the take-back itself.
				prdb.AddHook(&onScript{key: "unclaimed:mem:" + no, do: func() { w.queueOwn(no, nil) }})
			}
			// The replica stops acknowledging for the resend's claim and is
			// back for the next durable write (a take-back or the
			// confirmation).
			rep.Pause(t)
			waits := &resumeBeforeNthWait{rep: rep, n: 2}
			prdb.AddHook(waits)
			res, err := twoStep.Enqueue(ctx, memOrder(no))
			if waits.n > 0 {
				t.Fatalf("the resend waited for the replicas %d time(s); want the claim's and one more", 2-waits.n)
			}
			if err != nil || res.Status != tasks.Enqueued {
				t.Errorf("resend = %+v, %v; want enqueued: a task stands for the order, so the claim stands", res, err)
			}
			w.start()
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) && w.b.Count(no) == 0 {
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond) // room for a second create
			if n := w.b.Count(no); n != 1 {
				t.Errorf("creates of %s = %d, want 1", no, n)
			}
		})
	}
}

// loseNextScriptReply, once armed, lets the next script call reach Redis
// and answers it with a timeout, as a reply lost on the way back.
type loseNextScriptReply struct{ armed, done atomic.Bool }

func (h *loseNextScriptReply) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *loseNextScriptReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if n := cmd.Name(); (n == "evalsha" || n == "eval") && err == nil && h.armed.Load() && h.done.CompareAndSwap(false, true) {
			cmd.SetErr(context.DeadlineExceeded)
			return context.DeadlineExceeded
		}
		return err
	}
}
func (h *loseNextScriptReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A record the claim found with other params, gone before they could be
// compared (Redis lost it), is neither a conflict nor a duplicate: the
// answer is an error (send it again), never "conflict", which could have
// its producer renumber an accepted order.
func TestConflictOnlyWhenTheRecordWasCompared(t *testing.T) {
	t.Parallel()
	b := memprov.NewBackend("")
	srv, rdb, l, set := memSetup(t, nil, memprov.New(b, memprov.Options{}))
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	ctx := context.Background()
	if res, err := tasks.NewEnqueuer(client, l, set, nil).Enqueue(ctx, memOrder("CMP-1")); err != nil || res.Status != tasks.Enqueued {
		t.Fatalf("first send = %+v, %v", res, err)
	}
	// The producer's client: the record vanishes right after its claim.
	prdb := srv.Client(t)
	prdb.AddHook(&onScript{key: "order:mem:CMP-1", after: true, do: func() {
		keys, _ := rdb.Keys(ctx, "*order:mem:CMP-1").Result()
		rdb.Del(ctx, keys...)
	}})
	other := []byte(`{"provider":"mem","order_no":"CMP-1","params":{"item":"sku-2","qty":1}}`)
	res, err := tasks.NewEnqueuer(client, ledger.New(prdb, nil), set, nil).Enqueue(ctx, other)
	if err == nil || res.Status == tasks.Conflict {
		t.Errorf("Enqueue with other params, the record gone before the comparison = %+v, %v; want an error", res, err)
	}
}

// onScript runs do once, before (or, after, after) the first loaded
// script's call on key (EVALSHA: the ledger's scripts; not the clock's
// EVAL), alone or in a pipeline.
type onScript struct {
	key   string
	after bool
	do    func()
	done  atomic.Bool
}

func (h *onScript) match(cmd redis.Cmder) bool {
	return cmd.Name() == "evalsha" && strings.Contains(fmt.Sprint(cmd.Args()), h.key)
}

func (h *onScript) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *onScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		run := h.match(cmd) && !h.done.Load()
		if run && !h.after && h.done.CompareAndSwap(false, true) {
			h.do()
		}
		err := next(ctx, cmd)
		if run && h.after && h.done.CompareAndSwap(false, true) {
			h.do()
		}
		return err
	}
}
func (h *onScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		run := !h.done.Load() && slices.ContainsFunc(cmds, h.match)
		if run && !h.after && h.done.CompareAndSwap(false, true) {
			h.do()
		}
		err := next(ctx, cmds)
		if run && h.after && h.done.CompareAndSwap(false, true) {
			h.do()
		}
		return err
	}
}
