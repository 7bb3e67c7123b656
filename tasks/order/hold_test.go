package order

import (
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// LookedFirstAt is never cleared, and an abandoned create (or resolve
// absent / redrive, which reset Failures) leaves Failures at 0: the hold's
// exemption is LookOnly (looked up first for a loss, no create marked
// since), never LookedFirstAt, so an order whose own create was sent since
// and may have been received is held.
func TestHoldUnlistedAfterALookFirstAndAnOwnCreate(t *testing.T) {
	p := policy()
	p.HoldUnlisted = true
	notFound := Outcome{Err: providers.Errorf(providers.NotFound, "op", "none")}
	lost := t0.Add(-3 * time.Hour)
	// Looked up first for a loss hours ago, believed absent, created; that
	// create's run was killed mid-create (abandoned): Failures stays 0.
	rec := &ledger.Record{Provider: "unicloud", OrderNo: "o", State: ledger.StateSubmitting, Attempts: 1, Inflight: 2,
		CreatedAt: lost, LookedFirstAt: lost, LastCreateAt: t0.Add(-10 * time.Minute), FirstAttemptAt: lost, MayHaveExisted: true}
	plan := PlanStep(rec, p, t0)
	if plan.Then.Step != Lookup {
		t.Fatalf("plan %+v; want abandoned -> lookup", plan)
	}
	after := *rec
	after.State, after.Inflight = ledger.StateUnknown, 0
	// Past its deadline: errored "the provider holds no such order".
	d := Decide(&after, Lookup, notFound, p, t0)
	if d.Then.Next != Stop || d.Settle.To() != ledger.StateUnknown {
		t.Errorf("past deadline, own create abandoned after a look-first, not listed: %v -> %s %q; want held unknown", d.Then.Next, d.Settle.To(), d.Then.Reason)
	}
	// Within its deadline (re-driven / resolved absent 30 min ago): created again.
	after.RedrivenAt = t0.Add(-30 * time.Minute)
	d = Decide(&after, Lookup, notFound, p, t0)
	if d.Then.Next != Stop {
		t.Errorf("own create abandoned after a look-first, not listed: %v %v; want held (its own create may have been received)", d.Then.Next, d.Then.Step)
	}
	// A record ClaimLost recreated after its own ambiguous create (finish,
	// ErrNotFound), whose next Begin falls in the look-first window:
	// Begin's other-steps branch sets looked_first, Failures is 0.
	cl := &ledger.Record{Provider: "unicloud", OrderNo: "o2", State: ledger.StateUnknown, Reason: "record lost mid-step; looking the order up",
		CreatedAt: t0.Add(-10 * time.Minute), LookedFirstAt: lost, LastCreateAt: t0.Add(-5 * time.Minute), MayExist: true}
	if d := Decide(cl, Lookup, notFound, p, t0); d.Then.Next != Stop {
		t.Errorf("ClaimLost record after its own create, not listed: %v %v; want held", d.Then.Next, d.Then.Step)
	}
}

// An order left for a person (held as not listed, or unknown at its
// deadline) is looked up again by the reconciler now and then. The first
// time it is left, its task stops (archived: the OrderTasksArchived alert
// and a warning tell the operators); a later look that leaves it so ends
// its task at rest: archived again, it counted as a new task ended for
// good and fired the alert every hour for every such order.
func TestOrderLeftForAPersonRestsOnALaterLook(t *testing.T) {
	p := policy()
	p.HoldUnlisted = true
	notFound := Outcome{Err: providers.Errorf(providers.NotFound, "op", "none")}
	unavailable := Outcome{Err: providers.Errorf(providers.Unavailable, "op", "down")}
	created := t0.Add(-48 * time.Hour)
	rec := &ledger.Record{Provider: "unicloud", OrderNo: "o", State: ledger.StateUnknown, Attempts: 1, Failures: 1,
		Reason: "timeout after sending", CreatedAt: created, FirstAttemptAt: created, LastCreateAt: created, MayExist: true}
	for _, c := range []struct {
		name string
		out  Outcome
	}{{"not listed", notFound}, {"lookup fails past the deadline", unavailable}} {
		first := Decide(rec, Lookup, c.out, p, t0)
		if first.Then.Next != Stop || first.Settle.To() != ledger.StateUnknown || !LeftForAPerson(first.Then.Reason) {
			t.Fatalf("%s, first time: %v -> %s %q; want a stop, left for a person", c.name, first.Then.Next, first.Settle.To(), first.Then.Reason)
		}
		left := *rec
		left.Reason = first.Settle.Reason()
		for _, out := range []Outcome{notFound, unavailable} {
			again := Decide(&left, Lookup, out, p, t0)
			if again.Then.Next != Rest || again.Settle.To() != ledger.StateUnknown || !LeftForAPerson(again.Then.Reason) {
				t.Errorf("%s, looked up again (%v): %v -> %s %q; want at rest, still left for a person", c.name, out.Err, again.Then.Next, again.Settle.To(), again.Then.Reason)
			}
		}
		// An ambiguous answer is news: the order is looked up again (and
		// stops anew if it ends left for a person).
		amb := Decide(&left, Lookup, Outcome{Err: providers.Errorf(providers.Ambiguous, "op", "twice")}, p, t0.Add(-47*time.Hour))
		if amb.Then.Next == Rest || amb.Then.Next == Stop {
			t.Errorf("%s, within its deadline, an ambiguous answer: %v; want looked up again", c.name, amb.Then.Next)
		}
	}
}
