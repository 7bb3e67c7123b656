package tasks_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
	decide "github.com/orderworker/orderworker/tasks/order"
)

// heldTwice is a provider whose lookups find the order twice.
type heldTwice struct{ *memprov.Client }

func (heldTwice) Lookup(context.Context, providers.Order) (providers.Result, error) {
	return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: "mem lookup", HTTPStatus: 200,
		Message: "2 orders carry this number; a person decides"}
}

// An order whose lookup finds it held twice at the provider says so: its
// record's reason names the double (not the timeout that made it unknown)
// and the worker logs it once at WARN, when it is found, not 20 minutes
// later through the stuck-unknown alert alone.
func TestLookupFindingTheOrderTwiceIsToldAtOnce(t *testing.T) {
	t.Parallel()
	b := memprov.NewBackend("s")
	b.Faults().Script(fault.FailAfter) // made, then no answer
	e, h, logs := memHandler(t, heldTwice{memprov.New(b, memprov.Options{Secret: "s"})}, &tasks.HandlerOptions{Deadline: time.Hour, ListingLag: -1,
		Backoff: tasks.Backoff{Base: 10 * time.Millisecond, Max: 20 * time.Millisecond}})
	task := enqueueTask(t, e, memOrder("Twice-1"))
	ctx := context.Background()
	for range 4 { // the create, then three lookups
		if err := h.ProcessTask(ctx, task); err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("the task ended (%v); want it waiting on the lookups", err)
		}
	}
	rec, _ := e.ledger.Get(ctx, tasks.OrderRef{Provider: memprov.Name, OrderNo: "Twice-1"})
	if rec == nil || rec.State != tasks.StateUnknown || !strings.HasPrefix(rec.Reason, decide.AmbiguousLookup) || !strings.Contains(rec.Reason, "2 orders carry this number") {
		t.Fatalf("record %+v; want unknown, its reason naming the double", rec)
	}
	var warned int
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "cannot single the order out") && strings.Contains(l, "level=WARN") && strings.Contains(l, "order_no=Twice-1") {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("%d WARN lines name the double, want 1 (three lookups found it); the log:\n%s", warned, logs.String())
	}
	if strings.Contains(logs.String(), "call=lookup code=ambiguous") {
		// Answered, and logged once per answer above: not a provider
		// step failing (a review: logged every minute as one).
		t.Errorf("an ambiguous lookup logged as a failing step; the log:\n%s", logs.String())
	}
	if n := b.Count("Twice-1"); n != 1 {
		t.Errorf("the order was created %d times", n)
	}
}
