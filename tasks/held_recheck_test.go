package tasks_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderworker/orderworker/providers/fault"
	unicloudsandbox "github.com/orderworker/orderworker/providers/unicloud/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// A held order's task is archived (Stop). The reconciler queues the task
// of an unknown order left for a person again only once its record has not
// changed for ReconcilerOptions.HeldRecheck (15m at first): it ran a lookup, wrote a
// history entry and logged warnings every sweep (every minute), and the
// create that made the order unknown left its 50-entry history within the
// hour. Past HeldRecheck it is looked up again; still not listed, its task
// ends at rest, not archived: archived again, it counted as one more task
// ended for good (orderworker_tasks_stopped_total), and the
// OrderTasksArchived alert fired every hour for every held order.
func TestHeldOrderIsLookedUpOnlyOnceItsRecheckIsDue(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8, ListingLag: -1,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}, Metrics: tasks.NewMetrics(reg)}})
	sb := unicloudsandbox.New("UKey", "usecret")
	sb.Unlisted = func(unicloudsandbox.Order) bool { return true } // hides the order made midway
	addUnicloud(t, e, sb)
	ctx := context.Background()
	e.enqueue(t, unicloudOrder("UL-R", "unlisted-r"))
	sb.Faults().Script(fault.FailAfter)
	e.startServer(t)
	ref := ledger.Ref{Provider: "unicloud", OrderNo: "UL-R"}
	inspector := asynq.NewInspector(asynq.RedisClientOpt{Addr: e.redis.Addr})
	t.Cleanup(func() { inspector.Close() })
	waitArchived := func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			info, err := inspector.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID("unicloud", "UL-R"))
			if err == nil && info.State == asynq.TaskStateArchived {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("task not archived: %+v %v", info, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitArchived()
	rec, _ := e.ledger.Get(ctx, ref)
	if rec.State != tasks.StateUnknown || !strings.Contains(rec.Reason, "does not prove") {
		t.Fatalf("%s %q; want held", rec.State, rec.Reason)
	}
	// When it was left, from which its later looks are spaced: the hold's
	// own step.
	heldAt := rec.HeldAt
	if heldAt.IsZero() || heldAt.Before(rec.CreatedAt) || !heldAt.Equal(rec.UpdatedAt) {
		t.Fatalf("held_at %v (created %v, updated %v); want the hold's time", heldAt, rec.CreatedAt, rec.UpdatedAt)
	}
	r := tasks.NewReconciler(e.ledger, inspector, e.client, []string{"unicloud"}, &tasks.ReconcilerOptions{Grace: time.Nanosecond})
	before := sb.Calls("QueryOrders")
	for i := 0; i < 3; i++ {
		found, err := r.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("sweep %d: %v", i, found)
		time.Sleep(100 * time.Millisecond)
		waitArchived()
	}
	rec, _ = e.ledger.Get(ctx, ref)
	t.Logf("QueryOrders calls during 3 sweeps: %d; history entries %d; orders at provider %d; state %s", sb.Calls("QueryOrders")-before, len(rec.History), len(sb.Orders()), rec.State)
	if n := sb.Calls("QueryOrders") - before; n > 0 {
		t.Errorf("a held order (left for a person) was looked up %d times by 3 sweeps", n)
	}
	due := tasks.NewReconciler(e.ledger, inspector, e.client, []string{"unicloud"}, &tasks.ReconcilerOptions{Grace: time.Nanosecond, HeldRecheck: time.Nanosecond})
	found, err := due.Sweep(ctx)
	if err != nil || found["unknown_task_ended"] != 1 {
		t.Fatalf("sweep with its recheck due = %v, %v; want it queued again (its task, ended for a person, replaced)", found, err)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := inspector.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID("unicloud", "UL-R"))
		if errors.Is(err, asynq.ErrTaskNotFound) || err == nil && (info.State == asynq.TaskStateCompleted || info.State == asynq.TaskStateArchived) {
			if err == nil && info.State == asynq.TaskStateArchived {
				t.Errorf("the held order's task, looked up again and still held, was archived again")
			}
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the task queued again never ended: %+v %v", info, err)
		}
	}
	rec, _ = e.ledger.Get(ctx, ref)
	if n := sb.Calls("QueryOrders") - before; n == 0 || rec.State != tasks.StateUnknown || !strings.Contains(rec.Reason, "does not prove") {
		t.Errorf("after the due look: %d lookups, %s %q; want looked up and still held", n, rec.State, rec.Reason)
	}
	if !rec.HeldAt.Equal(heldAt) || !rec.UpdatedAt.After(heldAt) {
		t.Errorf("after the due look: held_at %v, updated %v; want held_at kept from the first stop (%v)", rec.HeldAt, rec.UpdatedAt, heldAt)
	}
	if n := counterValue(t, reg, "orderworker_tasks_stopped_total", nil); n != 1 {
		t.Errorf("orderworker_tasks_stopped_total = %v; want 1 (the first stop, not the later look)", n)
	}
}
