package tasks_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	ordersm "github.com/orderworker/orderworker/tasks/order"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// ownedAnswer answers every create with provider order PO-1.
type ownedAnswer struct {
	*memprov.Client
	creates atomic.Int32
}

func (o *ownedAnswer) Submit(context.Context, providers.Order) (providers.Result, error) {
	o.creates.Add(1)
	return providers.Result{Status: providers.StatusPaid, ProviderOrderID: "PO-1", HTTPStatus: 200}, nil
}

// ownedSetup records order B paid under PO-1, then claims order A, whose
// creates ownedAnswer answers with PO-1, and returns A's handler and task.
func ownedSetup(t *testing.T, opts *tasks.HandlerOptions) (*ledger.Ledger, *tasks.Handler, *ownedAnswer, ledger.Ref, *asynq.Task) {
	t.Helper()
	ctx := context.Background()
	l := tasks.NewLedger(taskstest.StartRedis(t, nil).Client(t))
	p := json.RawMessage(`{"item":"x","qty":1}`)
	hash, err := tasks.ParamsHash(p)
	if err != nil {
		t.Fatal(err)
	}
	owner := ledger.Ref{Provider: "mem", OrderNo: "B"}
	if _, err := l.Claim(ctx, owner, p, hash); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Begin(ctx, owner, ledger.BeginArgs{Token: "tb"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, owner, "tb", ledger.SetPaid("PO-1")); err != nil {
		t.Fatal(err)
	}
	prov := &ownedAnswer{Client: memprov.New(memprov.NewBackend(""), memprov.Options{Name: "mem"})}
	set := providers.NewSet()
	set.Add(prov)
	opts.Backoff = tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}
	h := tasks.NewHandler(l, set, opts)
	ref := ledger.Ref{Provider: "mem", OrderNo: "A"}
	if _, err := l.Claim(ctx, ref, p, hash); err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewOrderSubmitTask(tasks.Payload{Provider: "mem", OrderNo: "A", Params: p})
	if err != nil {
		t.Fatal(err)
	}
	return l, h, prov, ref, task
}

// A create answered with another order's provider id is never adopted, and
// it is never forgotten either: the record keeps the call in its history
// and says the order may exist, so an operator cannot re-drive it without
// a lookup.
func TestCreateAnsweredWithAnOwnedID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, h, prov, ref, task := ownedSetup(t, &tasks.HandlerOptions{})
	if err := h.ProcessTask(ctx, task); err == nil {
		t.Fatal("ProcessTask succeeded on a create answered with another order's id")
	}
	rec, err := l.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != ledger.StateUnknown || rec.ProviderOrderID != "" || !rec.MayExist || rec.Attempts != 1 {
		t.Errorf("after the answer: state %s, provider order %q, may exist %v, %d calls; want unknown, none, true, 1",
			rec.State, rec.ProviderOrderID, rec.MayExist, rec.Attempts)
	}
	if n := len(rec.History); n == 0 || rec.History[n-1].Call != "submit" {
		t.Errorf("history %+v: want the create last", rec.History)
	}
	if prov.creates.Load() != 1 {
		t.Errorf("%d creates, want 1", prov.creates.Load())
	}
}

// Creates answered again and again with another order's id (a provider
// that answers a create of these params with the order it made for
// another, or numbers orders in a scope it does not say) spend the
// failure budget: once it is spent the order is left for a person, not
// created until its deadline (a black-box run: 87 creates of 14 orders),
// nor errored as surely not created (the provider may hold an order made
// for it, which an operator's re-drive would make again: a review).
func TestCreatesAnsweredWithAnOwnedIDSpendTheBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, h, prov, ref, task := ownedSetup(t, &tasks.HandlerOptions{MaxAttempts: 3, ListingLag: -1})
	var rec *ledger.Record
	var err error
	for range 20 {
		_ = h.ProcessTask(ctx, task)
		if rec, err = l.Get(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	if rec.State != ledger.StateUnknown || !rec.MayExist || !ordersm.LeftForAPerson(rec.Reason) || prov.creates.Load() != 3 {
		t.Errorf("state %s (may exist %v) after %d creates (%q); want unknown, left for a person, after 3", rec.State, rec.MayExist, prov.creates.Load(), rec.Reason)
	}
}
