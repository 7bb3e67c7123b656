package tasks_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/tasks"
)

// exactBackoff waits exactly d before every retry.
func exactBackoff(d time.Duration) tasks.Backoff {
	return tasks.Backoff{Base: d, Max: d, Rand: func(n int64) int64 { return n }}
}

// startSlowForwarder starts e's handler on a server whose forwarder moves
// tasks handed back with a delay once a minute: a test finishes long
// before such a task runs again.
func (e *env) startSlowForwarder(t *testing.T) {
	t.Helper()
	srv, mux := tasks.NewServer(asynq.RedisClientOpt{Addr: e.redis.Addr}, e.handler, tasks.ServerOptions{
		Concurrency: 4, TaskCheckInterval: 20 * time.Millisecond, DelayedTaskCheckInterval: time.Minute,
		ShutdownTimeout: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	t.Cleanup(srv.Shutdown)
}

// A throttle's short wait is waited by the run itself, not by a task
// handed back to asynq, whose forwarder moves such tasks back to the queue
// only every DelayedTaskCheckInterval (5 s by default; a minute here): the
// order is created again 300 ms after the throttle, not at the forwarder's
// next turn.
func TestAShortWaitIsWaitedInPlace(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 4, Backoff: exactBackoff(300 * time.Millisecond)}})
	e.sandbox.Faults().Script(fault.Throttle)
	e.startSlowForwarder(t)
	start := time.Now()
	e.enqueue(t, order("Order-stay-1"))
	rec := e.waitStateFor(t, "Order-stay-1", tasks.StatePaid, 20*time.Second)
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("paid %s after the enqueue: the throttle's 300 ms wait was not kept", took)
	}
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 2 {
		t.Errorf("create calls = %d, want 2 (throttled, then created)", n)
	}
	if rec.State != tasks.StatePaid {
		t.Errorf("state %s, want paid", rec.State)
	}
}

// Stopping the server ends a wait in place at once: the task goes back to
// asynq with its wait (in the retry set, nothing lost), and the shutdown
// is not held up for the wait.
func TestAStopEndsAWaitInPlace(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 4, Backoff: exactBackoff(4 * time.Second)}})
	e.sandbox.Faults().Script(fault.Throttle)
	e.startSlowForwarder(t)
	e.enqueue(t, order("Order-stay-2"))
	deadline := time.Now().Add(10 * time.Second)
	for e.sandbox.Calls("ServiceCreateOrder") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the order was never sent")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the throttle settled, the run waiting
	start := time.Now()
	e.srv.Shutdown()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown took %s: held up by the run's 4 s wait", took)
	}
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: e.redis.Addr})
	defer insp.Close()
	retry, err := insp.ListRetryTasks(tasks.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if len(retry) != 1 {
		t.Fatalf("retry tasks = %d, want the order's task handed back", len(retry))
	}
	if d := time.Until(retry[0].NextProcessAt); d < 2*time.Second {
		t.Errorf("the handed-back task runs again in %s, want its wait (4 s)", d)
	}
	rec, err := e.ledger.Get(context.Background(), tasks.OrderRef{Provider: "tencent", OrderNo: "Order-stay-2"})
	if err != nil {
		t.Fatal(err)
	}
	// (The worker takes a throttled create for one that may have made the
	// order: it is looked up first when its task runs again.)
	if rec.State != tasks.StateUnknown || e.sandbox.Calls("ServiceCreateOrder") != 1 {
		t.Errorf("state %s after %d creates, want unknown after the one throttled", rec.State, e.sandbox.Calls("ServiceCreateOrder"))
	}
}
