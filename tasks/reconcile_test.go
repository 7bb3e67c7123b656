package tasks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

func TestReconcilerRequeuesStrandedOrders(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	ctx := context.Background()
	// 1: claimed, never enqueued (the producer died between the writes).
	var p tasks.Payload
	if err := json.Unmarshal(order("Order-R1"), &p); err != nil {
		t.Fatal(err)
	}
	hash, _ := tasks.ParamsHash(p.Params)
	if _, err := e.ledger.Claim(ctx, tasks.OrderRef{Provider: p.Provider, OrderNo: p.OrderNo}, p.Params, hash); err != nil {
		t.Fatal(err)
	}
	// 2: unknown, created at the provider, and its task is gone (lost
	// with a Redis that was not persisted, or deleted by hand).
	e.enqueue(t, order("Order-R2"))
	inspector := asynq.NewInspector(asynq.RedisClientOpt{Addr: e.redis.Addr})
	defer inspector.Close()
	if err := inspector.DeleteTask(tasks.DefaultQueue, tasks.TaskID("tencent", "Order-R2")); err != nil {
		t.Fatal(err)
	}
	r2 := tasks.OrderRef{Provider: "tencent", OrderNo: "Order-R2"}
	if _, err := e.ledger.Begin(ctx, r2, ledger.BeginArgs{Token: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.Settle(ctx, r2, "t", ledger.SetUnknown("timeout").WithFailures(1)); err != nil {
		t.Fatal(err)
	}
	prov, _ := e.set.Get("tencent")
	_ = json.Unmarshal(order("Order-R2"), &p)
	if _, err := prov.Submit(ctx, providers.Order{OrderNo: "Order-R2", Params: p.Params}); err != nil {
		t.Fatal(err)
	}
	// 3: queued with a live task: left alone.
	e.enqueue(t, order("Order-R3"))
	// 4: queued, its task archived (by hand, or out of retries): no
	// producer's doing, so not counted as one that claimed and stopped.
	e.enqueue(t, order("Order-R4"))
	if err := inspector.ArchiveTask(tasks.DefaultQueue, tasks.TaskID("tencent", "Order-R4")); err != nil {
		t.Fatal(err)
	}
	// 5: queued by a producer in a queue no worker serves: queued again
	// in the workers', and told (a live check of the alerts: it passed for
	// a producer that stopped between its claim and its enqueue).
	elsewhere := tasks.NewEnqueuer(e.client, e.ledger, e.set, &tasks.EnqueuerOptions{Queue: "nobody"})
	if res, err := elsewhere.Enqueue(ctx, order("Order-R5")); err != nil || res.Status != tasks.Enqueued {
		t.Fatal(res, err)
	}
	time.Sleep(10 * time.Millisecond) // past the sweep's cutoff, as the others are

	caughtUp(t, e)
	rec := tasks.NewReconciler(e.ledger, inspector, e.client, []string{"tencent"}, &tasks.ReconcilerOptions{Grace: time.Nanosecond})
	found, err := rec.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if found["claimed_not_enqueued"] != 1 || found["unknown_without_task"] != 1 || found["queued_task_ended"] != 1 || found["queued_in_unserved_queue"] != 1 || len(found) != 4 {
		t.Fatalf("Sweep found %v, want one claimed_not_enqueued, one unknown_without_task, one queued_task_ended and one queued_in_unserved_queue", found)
	}
	if again, _ := rec.Sweep(ctx); len(again) != 0 {
		t.Errorf("second Sweep found %v, want nothing (tasks are queued now)", again)
	}
	e.startServer(t)
	for _, no := range []string{"Order-R1", "Order-R2", "Order-R3", "Order-R4", "Order-R5"} {
		e.waitState(t, no, tasks.StatePaid)
		if n := e.sandbox.Count(no); n != 1 {
			t.Errorf("%s: sandbox holds %d orders, want 1", no, n)
		}
	}
}

// Orders whose task cannot be read (its message corrupt: a producer's or
// a tool's write) stop no sweep, however many in a row: the orders after
// them are still found and re-queued (a hunt for stranded orders: one such
// task turned the reconciler off for every order, a WARN every sweep
// naming none).
func TestReconcilerGoesOnPastAnUnreadableTask(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	ctx := context.Background()
	inspector := asynq.NewInspector(asynq.RedisClientOpt{Addr: e.redis.Addr})
	defer inspector.Close()
	for _, no := range []string{"Order-Z1", "Order-Z1b", "Order-Z1c", "Order-Z1d", "Order-Z2", "Order-Z3"} {
		e.enqueue(t, order(no))
		time.Sleep(2 * time.Millisecond) // the unreadable ones are the oldest, checked first
	}
	for _, no := range []string{"Order-Z2", "Order-Z3"} {
		if err := inspector.DeleteTask(tasks.DefaultQueue, tasks.TaskID("tencent", no)); err != nil {
			t.Fatal(err)
		}
	}
	for _, no := range []string{"Order-Z1", "Order-Z1b", "Order-Z1c", "Order-Z1d"} {
		if err := e.rdb.HSet(ctx, "asynq:{"+tasks.DefaultQueue+"}:t:"+tasks.TaskID("tencent", no), "msg", "garbage").Err(); err != nil {
			t.Fatal(err)
		}
	}
	caughtUp(t, e)
	rec := tasks.NewReconciler(e.ledger, inspector, e.client, []string{"tencent"}, &tasks.ReconcilerOptions{Grace: time.Nanosecond})
	found, err := rec.Sweep(ctx)
	if err != nil || found["claimed_not_enqueued"] != 2 {
		t.Fatalf("Sweep = %v, %v; want the two orders without a task re-queued past the unreadable one", found, err)
	}
}

// A task set to retry further ahead than the worker ever sets one (a
// worker whose clock is hours fast timed it) is run now: live, it would
// never be re-queued, and its order would wait past its deadline. One due
// within the longest retry is left to its time.
func TestReconcilerRunsARetryTimedOnAFastClock(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	ctx := context.Background()
	inspector := asynq.NewInspector(asynq.RedisClientOpt{Addr: e.redis.Addr})
	defer inspector.Close()
	q := tasks.DefaultQueue
	for no, ahead := range map[string]time.Duration{"Order-F1": 8 * time.Hour, "Order-F2": 30 * time.Minute} {
		e.enqueue(t, order(no))
		id := tasks.TaskID("tencent", no)
		// As asynq's retry writes it, on a clock that is ahead.
		pipe := e.rdb.TxPipeline()
		pipe.LRem(ctx, "asynq:{"+q+"}:pending", 0, id)
		pipe.ZAdd(ctx, "asynq:{"+q+"}:retry", redis.Z{Score: float64(time.Now().Add(ahead).Unix()), Member: id})
		pipe.HSet(ctx, "asynq:{"+q+"}:t:"+id, "state", "retry")
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// F3, as F1 but its record changed lately (a run took a step: a live
	// fast worker's order is run early at most once in the longest
	// retry, not at every sweep).
	e.enqueue(t, order("Order-F3"))
	f3 := tasks.TaskID("tencent", "Order-F3")
	pipe := e.rdb.TxPipeline()
	pipe.LRem(ctx, "asynq:{"+q+"}:pending", 0, f3)
	pipe.ZAdd(ctx, "asynq:{"+q+"}:retry", redis.Z{Score: float64(time.Now().Add(8 * time.Hour).Unix()), Member: f3})
	pipe.HSet(ctx, "asynq:{"+q+"}:t:"+f3, "state", "retry")
	// F1 and F2 unchanged for two hours.
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	for _, no := range []string{"Order-F1", "Order-F2"} {
		pipe.HSet(ctx, "orderworker:{ledger}:order:tencent:"+no, "updated", old)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, e)
	rec := tasks.NewReconciler(e.ledger, inspector, e.client, []string{"tencent"}, &tasks.ReconcilerOptions{Grace: time.Nanosecond})
	found, err := rec.Sweep(ctx)
	if err != nil || found["retry_far_ahead"] != 1 || len(found) != 1 {
		t.Fatalf("Sweep = %v, %v; want one retry_far_ahead", found, err)
	}
	for no, want := range map[string]asynq.TaskState{"Order-F1": asynq.TaskStatePending, "Order-F2": asynq.TaskStateRetry, "Order-F3": asynq.TaskStateRetry} {
		info, err := inspector.GetTaskInfo(q, tasks.TaskID("tencent", no))
		if err != nil || info.State != want {
			t.Errorf("%s's task after the sweep: %v, %v; want %s", no, info, err, want)
		}
	}
}

// Behind a backlog of more than Batch live orders in a state, an order
// without a task is still found: each sweep looks at the oldest Batch and
// walks Batch further through the rest.
func TestReconcilerWalksPastABacklog(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	ctx := context.Background()
	for i := range 12 {
		e.enqueue(t, order(fmt.Sprintf("Order-B%02d", i)))
	}
	time.Sleep(2 * time.Millisecond) // the stranded order is the newest
	var p tasks.Payload
	if err := json.Unmarshal(order("Order-Stranded"), &p); err != nil {
		t.Fatal(err)
	}
	hash, _ := tasks.ParamsHash(p.Params)
	if _, err := e.ledger.Claim(ctx, tasks.OrderRef{Provider: p.Provider, OrderNo: p.OrderNo}, p.Params, hash); err != nil {
		t.Fatal(err)
	}
	inspector := asynq.NewInspector(asynq.RedisClientOpt{Addr: e.redis.Addr})
	defer inspector.Close()
	caughtUp(t, e)
	rec := tasks.NewReconciler(e.ledger, inspector, e.client, []string{"tencent"}, &tasks.ReconcilerOptions{Grace: time.Nanosecond, Batch: 5})
	// 13 queued orders, 5 a page: the walk reaches the 13th at the third
	// sweep.
	for sweep := 1; sweep <= 3; sweep++ {
		found, err := rec.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[sweep == 3]; found["claimed_not_enqueued"] != want || len(found) > 1 {
			t.Fatalf("sweep %d found %v, want %d claimed_not_enqueued", sweep, found, want)
		}
	}
	if _, err := inspector.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID("tencent", "Order-Stranded")); err != nil {
		t.Errorf("the stranded order's task after the sweeps: %v", err)
	}
}

// A re-queued task carries, as the time no create of its order left
// before, the record's creation or its first attempt when that is earlier
// (a record recreated after Redis lost it is written after the creates it
// stands for), and no time for a record that may stand for creates but
// knows none: should the record be lost again, the lookup must not start
// after the order's create.
func TestRequeueMarksNoLaterThanTheFirstCreate(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	ctx := context.Background()
	inspector := asynq.NewInspector(asynq.RedisClientOpt{Addr: e.redis.Addr})
	defer inspector.Close()
	var p tasks.Payload
	first := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for _, tt := range []struct {
		no   string
		lost *ledger.Lost // nil: claimed as new
		want time.Time    // zero: no time
	}{
		{"Order-Q1", nil, time.Time{}}, // want: its creation (checked below)
		{"Order-Q2", &ledger.Lost{FirstAttempt: first}, first},
		{"Order-Q3", &ledger.Lost{}, time.Time{}},
	} {
		t.Run(tt.no, func(t *testing.T) {
			if err := json.Unmarshal(order(tt.no), &p); err != nil {
				t.Fatal(err)
			}
			hash, _ := tasks.ParamsHash(p.Params)
			ref := tasks.OrderRef{Provider: p.Provider, OrderNo: p.OrderNo}
			var err error
			if tt.lost == nil {
				_, err = e.ledger.Claim(ctx, ref, p.Params, hash)
			} else {
				_, err = e.ledger.ClaimLost(ctx, ref, p.Params, hash, "record lost", *tt.lost)
			}
			if err != nil {
				t.Fatal(err)
			}
			rec, err := e.ledger.Get(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := tasks.Requeue(ctx, e.ledger, inspector, e.client, "", rec); err != nil || !ok {
				t.Fatalf("Requeue = %v, %v", ok, err)
			}
			info, err := inspector.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID(p.Provider, p.OrderNo))
			if err != nil {
				t.Fatal(err)
			}
			ms, _, _ := strings.Cut(info.Headers["orderworker-claimed"], ":")
			n, _ := strconv.ParseInt(ms, 10, 64)
			want := tt.want
			if tt.lost == nil {
				want = rec.CreatedAt
			}
			switch {
			case want.IsZero() && n > 0:
				t.Errorf("header %q, want no time", info.Headers["orderworker-claimed"])
			case !want.IsZero() && n != want.UnixMilli():
				t.Errorf("header %q, want %d", info.Headers["orderworker-claimed"], want.UnixMilli())
			}
		})
	}
}

// caughtUp waits until the ledger's reading of Redis's clock, a lower
// bound that lags Redis by a reply's transit, is past what Redis's clock
// said after the test's writes: on a loaded machine a sweep made right
// after them (Grace 1 ns) could otherwise see a cutoff before orders
// claimed a moment ago, and pass them over.
func caughtUp(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	redisNow, err := e.rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		now, err := e.ledger.NotAfterNow(ctx, ledger.Ref{})
		if err != nil {
			t.Fatal(err)
		}
		if now.UnixMilli() > redisNow.UnixMilli() {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("the ledger's clock is at %v, Redis's at %v", now, redisNow)
		}
	}
}
