package tasks_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// holdingGuard is a circuit breaker that never lets a call through.
type holdingGuard struct{}

func (holdingGuard) Wait(context.Context, string) (time.Duration, error) {
	return 30 * time.Second, nil
}
func (holdingGuard) Done(string, error) {}

// An order its provider's breaker holds back before anything was sent is
// errored once its deadline has passed, as the deadline says: that needs
// no provider. Before the deadline it only waits.
func TestBreakerHeldOrderErroredAtItsDeadline(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{Deadline: 300 * time.Millisecond, Guard: holdingGuard{}}})
	ctx := context.Background()
	task := enqueueTask(t, e, order("Held-1"))
	if err := e.handler.ProcessTask(ctx, task); err == nil {
		t.Fatal("held by the breaker: the task ended; want a wait")
	}
	ref := ledger.Ref{Provider: "tencent", OrderNo: "Held-1"}
	if rec, _ := e.ledger.Get(ctx, ref); rec.State != tasks.StateQueued || !strings.Contains(rec.Reason, "circuit breaker is open") {
		t.Fatalf("before its deadline: %s (%q); want queued, its reason naming the breaker (a live check of the alerts: the runbook says the reason tells what holds a queued order)", rec.State, rec.Reason)
	}
	time.Sleep(400 * time.Millisecond)
	if err := e.handler.ProcessTask(ctx, task); err != nil && !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("past its deadline: %v; want the task ended", err)
	}
	rec, _ := e.ledger.Get(ctx, ref)
	if rec.State != tasks.StateErrored || !strings.Contains(rec.Reason, "deadline") || !strings.Contains(rec.Reason, "circuit breaker") {
		t.Errorf("past its deadline: %s (%q); want errored for the deadline, naming the breaker", rec.State, rec.Reason)
	}
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 0 {
		t.Errorf("%d creates sent", n)
	}
}
