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

// An order whose own call was refused for the configuration (here, the
// credentials) comes back a tenth to a half of a ConfigWait after the
// others held without a call, so that the next probe is another held
// order's: back at the ConfigWait itself, it came back as the next probe
// window opened and took it each time (a black-box run: a few orders
// refused for their own params in words that named the credentials kept
// probing, while the orders that would have gone through waited).
func TestAnOrderRefusedForTheConfigurationComesBackAfterTheOthers(t *testing.T) {
	t.Parallel()
	opts := heldOptions(tasks.NewProblems())
	opts.ConfigWait = 10 * time.Second
	e := setup(t, &setupOpts{secret: "not-the-secret", noServer: true, handler: opts})
	e.enqueue(t, order("Order-Lag-1"))
	task := asynq.NewTask(tasks.TypeOrderSubmit, order("Order-Lag-1"))
	err := e.handler.ProcessTask(context.Background(), task)
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
		t.Fatalf("create calls = %d, want the one refused", n)
	}
	d := tasks.RetryDelay(tasks.Backoff{})(0, err, task)
	if d <= opts.ConfigWait || d >= opts.ConfigWait*3/2 {
		t.Errorf("the refused order comes back after %s (%v); want a tenth to a half of the ConfigWait (%s) later", d, err, opts.ConfigWait)
	}
	// The next order probes (the first refusal was no probe's) and is
	// refused too; one after it is held without a call, and comes back
	// at the ConfigWait.
	for i, no := range []string{"Order-Lag-2", "Order-Lag-3"} {
		e.enqueue(t, order(no))
		task := asynq.NewTask(tasks.TypeOrderSubmit, order(no))
		err = e.handler.ProcessTask(context.Background(), task)
		if n := e.sandbox.Calls("ServiceCreateOrder"); n != 2 {
			t.Fatalf("%s: create calls = %d, want 2 (the first order's and one probe)", no, n)
		}
		d := tasks.RetryDelay(tasks.Backoff{})(0, err, task)
		if i == 0 && (d <= opts.ConfigWait || d >= opts.ConfigWait*3/2) {
			t.Errorf("the probe, refused, comes back after %s (%v); want a tenth to a half of the ConfigWait later", d, err)
		}
		if i == 1 && d != opts.ConfigWait {
			t.Errorf("an order held without a call comes back after %s (%v); want the ConfigWait, %s", d, err, opts.ConfigWait)
		}
	}
}
