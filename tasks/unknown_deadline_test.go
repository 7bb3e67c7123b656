package tasks_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
)

// An order whose outcome is still unknown at its deadline is left for an
// operator: its task ends, nothing looks the order up again, and the worker
// says so at WARN, where an operator's log filter sees it (it was a DEBUG
// line of the task's end).
func TestUnknownAtItsDeadlineIsLoggedForAnOperator(t *testing.T) {
	t.Parallel()
	b := memprov.NewBackend("s")
	b.Faults().Script(fault.FailAfter)                                  // made, then no answer
	b.Faults().SetRates(1, map[fault.Kind]float64{fault.FailBefore: 1}) // every lookup fails
	e, h, logs := memHandler(t, memprov.New(b, memprov.Options{Secret: "s"}), &tasks.HandlerOptions{Deadline: 400 * time.Millisecond, ListingLag: -1,
		Backoff: tasks.Backoff{Base: 10 * time.Millisecond, Max: 20 * time.Millisecond}})
	task := enqueueTask(t, e, memOrder("Unknown-1"))
	ctx := context.Background()
	ended := false
	for end := time.Now().Add(10 * time.Second); !ended && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		err := h.ProcessTask(ctx, task)
		ended = err == nil || errors.Is(err, asynq.SkipRetry)
	}
	if !ended {
		t.Fatal("the task did not end at the order's deadline")
	}
	rec, _ := e.ledger.Get(ctx, tasks.OrderRef{Provider: memprov.Name, OrderNo: "Unknown-1"})
	if rec == nil || rec.State != tasks.StateUnknown {
		t.Fatalf("record %+v; want unknown, left for an operator", rec)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "left for an operator") {
			line = l
		}
	}
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "order_no=Unknown-1") {
		t.Errorf("no WARN line names the order left for an operator; the log:\n%s", logs.String())
	}
	if n := b.Count("Unknown-1"); n != 1 {
		t.Errorf("the order was created %d times", n)
	}
}
