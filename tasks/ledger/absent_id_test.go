package ledger_test

import (
	"testing"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// An unknown order whose failed create named an id (recorded, and owned in
// the owner index) is resolved absent by an operator: the provider holds no
// such order. The id is forgotten and released, and not listed as
// another's: kept, the next create and its lookups went by it, and that
// create's own answer was not recorded (a review).
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
	if rec.State != ledger.StateSubmitting || rec.ProviderOrderID != "" || owner != "" || len(rec.NotOurs) != 0 {
		t.Errorf("after absent: state %s, provider_order_id %q, owner of X-1 %q, not ours %v; want submitting with no id, X-1 released, not listed as another's",
			rec.State, rec.ProviderOrderID, owner, rec.NotOurs)
	}
}
