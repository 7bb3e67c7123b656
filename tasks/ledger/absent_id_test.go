package ledger_test

import (
	"fmt"
	"testing"

	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// An unknown order whose failed create named an id (recorded, and owned in
// the owner index) is resolved absent by an operator: the provider holds no
// such order. The record forgets the id, and does not list it as another's:
// kept, the next create and its lookups went by it, and that create's own
// answer was not recorded (a review). Its owner entry stays the order's:
// should the id turn up after all, it is this order's own create's.
func TestResolveAbsentForgetsAFailedCreatesID(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := settled(t, l, "AbsentID-1", ledger.SetUnknown("timeout").WithMayExist(true).WithProviderOrderID("X-1"))
	if _, err := l.Resolve(ctx, ref, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "no such order at the provider", By: "op"}); err != nil {
		t.Fatal(err)
	}
	rec, err := l.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	owner, _ := l.Owner(ctx, ref.Provider, "X-1")
	if rec.State != ledger.StateSubmitting || rec.ProviderOrderID != "" || owner != ref.OrderNo || len(rec.NotOurs) != 0 {
		t.Errorf("after absent: state %s, provider_order_id %q, owner of X-1 %q, not ours %v; want submitting, no id, X-1 still this order's, not listed as another's",
			rec.State, rec.ProviderOrderID, owner, rec.NotOurs)
	}
}

// On a ledger of several shards, where an id's owner entry may sit in
// another shard than the order's record, forgetting an own id touches no
// owner entry: the record forgets it, the entry stays the order's (a
// review: the entry of a forgotten id in another shard was never released,
// while the record said it was).
func TestForgottenOwnIDKeepsItsOwnerEntryAcrossShards(t *testing.T) {
	t.Parallel()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	l := ledger.New(rdb, &ledger.Options{Shards: 3})
	for i := range 12 {
		ref := ledger.Ref{Provider: "p", OrderNo: fmt.Sprintf("Own-%d", i)}
		id := fmt.Sprintf("X-%d", i)
		if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "a"}); err != nil {
			t.Fatal(err)
		}
		if err := l.Settle(ctx, ref, "a", ledger.SetUnknown("timeout").WithMayExist(true).WithProviderOrderID(id)); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Resolve(ctx, ref, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "none at the provider", By: "op"}); err != nil {
			t.Fatal(err)
		}
		rec, err := l.Get(ctx, ref)
		owner, _ := l.Owner(ctx, ref.Provider, id)
		if err != nil || rec.ProviderOrderID != "" || owner != ref.OrderNo {
			t.Errorf("%s: provider_order_id %q, owner of %s %q, %v; want no id, the entry still the order's", ref.OrderNo, rec.ProviderOrderID, id, owner, err)
		}
	}
}
