package tasks_test

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/tasks"
)

// A worker whose listing lag is shorter than the one that sent an order's
// create (ORDERWORKER_LISTING_LAG changed in a rolling restart, or two
// workers set apart) waits out the longer lag before it believes a
// lookup's not-found: the lag is recorded with the create's mark. Here the
// first worker (lag 3 s) makes a create whose answer is lost, then stops;
// the order's next step is run at once (an operator's "run" in the
// dashboard) by a worker that believes a not-found at once, while the
// provider does not list the order for 1.5 s.
func TestShorterLagWaitsTheLagOfTheCreate(t *testing.T) {
	t.Parallel()
	const no = "Order-LagMix"
	backoff := tasks.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	e := setup(t, &setupOpts{handler: &tasks.HandlerOptions{MaxAttempts: 4, ListingLag: 3 * time.Second, Backoff: backoff}, noServer: true})
	e.sandbox.ListLag = 1500 * time.Millisecond
	e.sandbox.Faults().Script(fault.FailAfter)
	e.startServer(t)
	e.enqueue(t, order(no))
	rec := e.waitState(t, no, tasks.StateUnknown)
	e.srv.Shutdown()
	if rec.MarkLag != 3*time.Second {
		t.Errorf("the record's mark lag = %s, want the first worker's 3s", rec.MarkLag)
	}

	short := tasks.NewHandler(e.ledger, e.set, &tasks.HandlerOptions{MaxAttempts: 4, ListingLag: -1, Backoff: backoff})
	redisOpt := asynq.RedisClientOpt{Addr: e.redis.Addr}
	srv, mux := tasks.NewServer(redisOpt, short, tasks.ServerOptions{
		Concurrency: 4, TaskCheckInterval: 20 * time.Millisecond, DelayedTaskCheckInterval: 50 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ins := asynq.NewInspector(redisOpt)
	t.Cleanup(func() { ins.Close() })
	// Run now unless it waits no longer (already queued or running).
	for {
		info, err := ins.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID("tencent", no))
		if errors.Is(err, asynq.ErrTaskNotFound) {
			break // done already
		}
		if err != nil {
			t.Fatalf("the order's task: %v", err)
		}
		if info.State != asynq.TaskStateScheduled && info.State != asynq.TaskStateRetry {
			break
		}
		if err := ins.RunTask(tasks.DefaultQueue, info.ID); err == nil {
			break
		}
	}
	rec = e.waitState(t, no, tasks.StatePaid)
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
		t.Errorf("ServiceCreateOrder called %d times, want 1: the second worker took a not-found within the first one's lag", n)
	}
}
