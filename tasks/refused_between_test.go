package tasks_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
)

// throttledThenRefused is a provider that answers an order's first create
// throttled where it may have acted, refuses every later one for its
// params, and answers the first lookup after that refusal ambiguous (an
// order it cannot tell from ours, as UniCloud's unowned renamed orders):
// the lookups otherwise go to the in-memory backend, which holds nothing.
type throttledThenRefused struct {
	*memprov.Client
	creates, lookups atomic.Int32
}

func (p *throttledThenRefused) Submit(ctx context.Context, o providers.Order) (providers.Result, error) {
	if p.creates.Add(1) == 1 {
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: "mem create", HTTPStatus: 429,
			Message: "throttled", Err: providers.ErrThrottled}
	}
	return providers.Result{}, &providers.Error{Code: providers.InvalidArgument, Op: "mem create", HTTPStatus: 400,
		ProviderCode: "ProductConfigError", Message: "no such plan"}
}

func (p *throttledThenRefused) Lookup(ctx context.Context, o providers.Order) (providers.Result, error) {
	if p.creates.Load() > 1 && p.lookups.Add(1) == 1 {
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: "mem lookup", HTTPStatus: 200,
			Message: "an unowned order in the window may be this one"}
	}
	return p.Client.Lookup(ctx, o)
}

// An order refused for its params after creates answered only throttled
// is errored with that refusal when a lookup a listing lag after it finds
// nothing, though an ambiguous lookup between rewrote its reason (a
// review: the rule rested on the reason, and the order was created again,
// refused again, until its budget was spent).
func TestRefusalAfterThrottlesOutlivesAnAmbiguousLookup(t *testing.T) {
	t.Parallel()
	p := &throttledThenRefused{Client: memprov.New(memprov.NewBackend("s"), memprov.Options{Secret: "s"})}
	e, h, _ := memHandler(t, p, &tasks.HandlerOptions{Deadline: time.Hour, ListingLag: -1, MaxAttempts: 5,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}})
	task := enqueueTask(t, e, memOrder("Refused-1"))
	ctx := context.Background()
	var runErr error
	for range 12 {
		if runErr = h.ProcessTask(ctx, task); runErr == nil || errors.Is(runErr, asynq.SkipRetry) {
			break
		}
	}
	rec, _ := e.ledger.Get(ctx, tasks.OrderRef{Provider: memprov.Name, OrderNo: "Refused-1"})
	if rec == nil || rec.State != tasks.StateErrored || !strings.Contains(rec.Reason, "no such plan") {
		t.Fatalf("run = %v; record %+v; want errored with the refusal", runErr, rec)
	}
	if n := p.creates.Load(); n != 2 {
		t.Errorf("%d creates sent; want 2 (throttled, refused)", n)
	}
	var ambiguous bool
	for _, a := range rec.History {
		ambiguous = ambiguous || strings.Contains(a.Message, "unowned order in the window")
	}
	if !ambiguous || p.lookups.Load() < 2 {
		t.Errorf("%d lookups after the refusal, one ambiguous: %v; want the ambiguous one and a not-found after it (the case not reached)", p.lookups.Load(), ambiguous)
	}
}
