package order

import (
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// An order a roll-back restored (recorded long before the loss), whose
// first step comes an hour after the loss was found, is looked up first,
// and its not-found is believed at once: any create lost with the data
// left before the loss was found, so the listing lag counts from then, not
// from the order's own Begin. (Found by review: every order of the window
// waited a full lag from its own step.)
func TestOrderLongAfterTheLossDoesNotWaitTheLag(t *testing.T) {
	p := policy()
	p.ListingLag = 2 * time.Minute
	lost := t0.Add(-time.Hour)
	rec := &ledger.Record{Provider: "p", OrderNo: "n", State: ledger.StateQueued, CreatedAt: lost.Add(-time.Hour),
		LookFirstSince: lost, LookFirstFound: lost.Add(time.Minute), ReadAt: t0}
	plan := PlanStep(rec, p, t0)
	if !plan.Settle.LookedFirst().Equal(lost) || plan.Then.Step != Lookup {
		t.Fatalf("plan %+v; want a look-first for the loss", plan)
	}
	if at := plan.Settle.LookedFirstAt(); !at.Equal(rec.LookFirstFound) {
		t.Errorf("the look-first records its last create at %v; want when the loss was found, %v", at, rec.LookFirstFound)
	}
	// The record as the settle leaves it.
	after := *rec
	after.State, after.LookFirstSince, after.LookedFirstAt, after.LastCreateAt, after.ReadAt = ledger.StateUnknown, time.Time{}, lost, plan.Settle.LookedFirstAt(), t0.Add(10*time.Millisecond)
	d := Decide(&after, Lookup, Outcome{Err: providers.Errorf(providers.NotFound, "op", "none")}, p, t0.Add(10*time.Millisecond))
	if d.Then.Next == Wait {
		t.Errorf("a restored order an hour after the loss was found, not found: waits %s before its create; want a create now", d.Then.Delay)
	}
}

// An order first recorded after a loss was found (a new order, or a
// producer's resend of one lost with the data) is looked up first, and a
// not-found is believed once the listing lag has passed since the loss
// was found: no create of it lost with the data left after that, and none
// has left under its own record. It does not wait the lag from its own
// creation, which every new order for a day after a loss would pay.
func TestOrderRecordedAfterTheLossDoesNotWaitTheLagFromItsCreation(t *testing.T) {
	p := policy()
	p.ListingLag = 2 * time.Minute
	lost := t0.Add(-time.Hour)
	found := lost.Add(time.Minute)
	rec := &ledger.Record{Provider: "p", OrderNo: "n", State: ledger.StateQueued, CreatedAt: t0.Add(-time.Second),
		LookFirstSince: lost, LookFirstFound: found, ReadAt: t0}
	plan := PlanStep(rec, p, t0)
	if plan.Then.Step != Lookup || !plan.Settle.LookedFirstAt().Equal(found) {
		t.Fatalf("plan %+v; want a look-first, its last create when the loss was found", plan)
	}
	after := *rec
	after.State, after.LookFirstSince, after.LookedFirstAt, after.LastCreateAt, after.ReadAt = ledger.StateUnknown, time.Time{}, lost, plan.Settle.LookedFirstAt(), t0.Add(10*time.Millisecond)
	after.FirstAttemptAt = lost.Add(-p.LookFirstWindow())
	d := Decide(&after, Lookup, Outcome{Err: providers.Errorf(providers.NotFound, "op", "none")}, p, t0.Add(10*time.Millisecond))
	if d.Then.Next != Continue || d.Then.Step != Submit {
		t.Errorf("an order recorded an hour after the loss was found, not found: %v %s; want its create now", d.Then.Next, d.Then.Delay)
	}
	// Within the lag after the loss was found, the not-found still waits.
	soon := after
	soon.CreatedAt, soon.LastCreateAt, soon.ReadAt = found.Add(30*time.Second), found, found.Add(31*time.Second)
	if d := Decide(&soon, Lookup, Outcome{Err: providers.Errorf(providers.NotFound, "op", "none")}, p, soon.ReadAt); d.Then.Next != Wait || d.Then.Delay > 90*time.Second {
		t.Errorf("an order recorded 30 s after the loss was found, not found a second later: %v %s; want a wait of the lag left since the loss was found (89 s)", d.Then.Next, d.Then.Delay)
	}
}

// With HoldUnlisted (a provider whose listing may leave out an order
// whose create failed midway), a not-found past the listing lag holds an
// order whose own create may have been received for a person; one looked
// up only for a loss of Redis's data, never sent since, is created (else
// every order after a loss would wait for a person).
func TestHoldUnlistedHoldsOnlyAnOrderWithACreateOfItsOwn(t *testing.T) {
	p := policy()
	p.HoldUnlisted = true
	notFound := Outcome{Err: providers.Errorf(providers.NotFound, "op", "none")}
	own := unknown()
	own.Failures = 1
	if d := Decide(own, Lookup, notFound, p, t0.Add(time.Minute)); d.Then.Next != Stop || d.Settle.To() != ledger.StateUnknown || !strings.Contains(d.Then.Reason, "left for a person") {
		t.Errorf("own create, not listed: %v %q; want unknown, stopped, for a person", d.Then.Next, d.Then.Reason)
	}
	abandoned := unknown() // a create whose run died: no failure counted
	abandoned.Failures = 0
	if d := Decide(abandoned, Lookup, notFound, p, t0.Add(time.Minute)); d.Then.Next != Stop {
		t.Errorf("abandoned create, not listed: %v; want held", d.Then.Next)
	}
	lossOnly := unknown()
	lossOnly.Failures, lossOnly.LookedFirstAt, lossOnly.LookOnly = 0, t0.Add(-time.Hour), true
	// Looked first for a loss by another step (its LookedFirstAt set, not
	// LookOnly): its own create may have been received.
	otherStep := unknown()
	otherStep.Failures, otherStep.LookedFirstAt = 0, t0.Add(-time.Hour)
	if d := Decide(otherStep, Lookup, notFound, p, t0.Add(time.Minute)); d.Then.Next != Stop {
		t.Errorf("looked at for a loss at a lookup, its own create abandoned before: %v; want held", d.Then.Next)
	}
	// Its create is its first (or one a loss hid, which the loss's own
	// count and alert tell): not counted as created again.
	if d := Decide(lossOnly, Lookup, notFound, p, t0.Add(time.Minute)); d.Then.Next != Continue || d.Then.Step != Submit || d.CreatedAgain != 0 {
		t.Errorf("looked up only for a loss, not listed: %v %v, created again %s; want its create, not counted as created again", d.Then.Next, d.Then.Step, d.CreatedAgain)
	}
	p.HoldUnlisted = false
	if d := Decide(own, Lookup, notFound, p, t0.Add(time.Minute)); d.Then.Next != Continue || d.Then.Step != Submit || d.CreatedAgain == 0 {
		t.Errorf("without HoldUnlisted: %v %v, created again %s; want its create, counted as created again", d.Then.Next, d.Then.Step, d.CreatedAgain)
	}
}
