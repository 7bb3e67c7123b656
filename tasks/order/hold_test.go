package order

import (
	"strings"
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
// and a warning tell the operators); a later look that leaves it so, for
// the same kind of reason or with no answer at all, ends its task at rest
// (archived again, it counted as a new task ended for good and fired the
// alert every hour for every such order), its reason kept when the look
// had no answer. Left for another kind of reason, it stops anew: what a
// person was told may no longer hold.
func TestOrderLeftForAPersonRestsOnALaterLook(t *testing.T) {
	p := policy()
	p.HoldUnlisted = true
	notFound := Outcome{Err: providers.Errorf(providers.NotFound, "op", "none")}
	unavailable := Outcome{Err: providers.Errorf(providers.Unavailable, "op", "down")}
	ambiguous := Outcome{Err: providers.Errorf(providers.Ambiguous, "op", "2 orders carry its name")}
	created := t0.Add(-48 * time.Hour)
	rec := &ledger.Record{Provider: "unicloud", OrderNo: "o", State: ledger.StateUnknown, Attempts: 1, Failures: 1,
		Reason: "timeout after sending", CreatedAt: created, FirstAttemptAt: created, LastCreateAt: created, MayExist: true}
	left := func(out Outcome) ledger.Record {
		t.Helper()
		d := Decide(rec, Lookup, out, p, t0)
		if d.Then.Next != Stop || d.Settle.To() != ledger.StateUnknown || !LeftForAPerson(d.Then.Reason) {
			t.Fatalf("first time, %v: %v -> %s %q; want a stop, left for a person", out.Err, d.Then.Next, d.Settle.To(), d.Then.Reason)
		}
		l := *rec
		l.Reason = d.Settle.Reason()
		return l
	}
	for _, c := range []struct {
		name        string
		first, then Outcome
		want        Next
		keeps       bool // the reason it was left with stands
	}{
		{"held, not listed again", notFound, notFound, Rest, false},
		{"held, the look had no answer", notFound, unavailable, Rest, true},
		{"at its deadline, no answer again", unavailable, unavailable, Rest, true},
		{"at its deadline, ambiguous again", ambiguous, ambiguous, Rest, false},
		{"held, now among orders it cannot be told from", notFound, ambiguous, Stop, false},
		{"at its deadline, now not listed", unavailable, notFound, Stop, false},
		{"at its deadline with no answer, now ambiguous", unavailable, ambiguous, Stop, false},
	} {
		l := left(c.first)
		d := Decide(&l, Lookup, c.then, p, t0)
		if d.Then.Next != c.want || d.Settle.To() != ledger.StateUnknown || !LeftForAPerson(d.Settle.Reason()) {
			t.Errorf("%s: %v -> %s %q; want %v, still left for a person", c.name, d.Then.Next, d.Settle.To(), d.Settle.Reason(), c.want)
		}
		if c.keeps && d.Settle.Reason() != l.Reason {
			t.Errorf("%s: reason %q; want the one it was left with, %q", c.name, d.Settle.Reason(), l.Reason)
		}
	}
	// Within its deadline, an ambiguous answer is news: the order is
	// looked up again.
	l := left(notFound)
	if d := Decide(&l, Lookup, ambiguous, p, t0.Add(-47*time.Hour)); d.Then.Next == Rest || d.Then.Next == Stop {
		t.Errorf("held, within its deadline, an ambiguous answer: %v; want looked up again", d.Then.Next)
	}
}

// A pending order that waits for a person (found by matching and held, or
// found paid by someone else) is checked less often as it waits: a quarter
// of how long it has been pending, from a minute up to an hour, not once a
// minute for as long as it waits (a black-box run: 200 held orders, 3.3
// calls a second to the provider, a history entry each).
func TestPendingOrderWaitingForAPersonIsCheckedLessOften(t *testing.T) {
	p := policy()
	p.PendingWindow = 0
	held := Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1", Matched: true, Held: true}}
	for _, c := range []struct {
		pending, want time.Duration
	}{
		{10 * time.Second, time.Minute},
		{20 * time.Minute, 5 * time.Minute},
		{3 * time.Hour, 45 * time.Minute},
		{8 * time.Hour, time.Hour},
		{30 * 24 * time.Hour, time.Hour},
	} {
		rec := &ledger.Record{Provider: "unicloud", OrderNo: "o", State: ledger.StatePending, Attempts: 2, ProviderOrderID: "P1", Matched: true,
			CreatedAt: t0.Add(-c.pending - time.Minute), PendingSince: t0.Add(-c.pending)}
		d := Decide(rec, Poll, held, p, t0)
		if d.Then.Next != Wait || d.Then.Delay != c.want {
			t.Errorf("held %s: %v after %s; want a wait of %s", c.pending, d.Then.Next, d.Then.Delay, c.want)
		}
	}
	// Held by the provider (a status other than 0), not found by matching:
	// it may clear by itself within the pending window, and is polled as
	// before (checked late, it would be found payable past the window and
	// errored).
	byProvider := Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1", Held: true}}
	rec := &ledger.Record{Provider: "aliyun", OrderNo: "o", State: ledger.StatePending, Attempts: 2, ProviderOrderID: "P1",
		CreatedAt: t0.Add(-21 * time.Minute), PendingSince: t0.Add(-20 * time.Minute)}
	if d := Decide(rec, Poll, byProvider, p, t0); d.Then.Next != Wait || d.Then.Delay > time.Minute {
		t.Errorf("held by the provider 20m: %v after %s; want polled within a minute", d.Then.Next, d.Then.Delay)
	}
}

// Where a listing does not prove an order absent (HoldUnlisted), an order
// whose every create that may have been received was answered throttled
// (a throttle comes before the provider acts by no document) is looked up
// past the listing lag and, not found, created again rather than left for
// a person; any other unsure create, before or after, or one abandoned
// since, holds it as before.
func TestThrottledOnlyOrderIsCreatedAgainWhereUnlistedIsNoProof(t *testing.T) {
	t.Parallel()
	p := policy()
	p.HoldUnlisted = true
	p.ListingLag = 2 * time.Minute
	throttled := Outcome{Err: &providers.Error{Code: providers.Ambiguous, Op: "create", HTTPStatus: 429, Message: "throttled", Err: providers.ErrThrottled}}
	unsure := Outcome{Err: &providers.Error{Code: providers.Ambiguous, Op: "create", Message: "timeout"}}
	notFound := Outcome{Err: providers.Errorf(providers.NotFound, "op", "none")}
	// settled is rec after d's settle, its create having ended at end.
	settled := func(rec *ledger.Record, d Decision, end time.Time) *ledger.Record {
		r := *rec
		r.State, r.Inflight, r.InflightMarked, r.LastCreateAt = d.Settle.To(), 0, false, end
		r.MayExist, r.MayHaveExisted = true, true
		r.ThrottledCreateAt = time.Time{}
		if d.Settle.ThrottledCreate() {
			r.ThrottledCreateAt = end
		}
		return &r
	}
	lookup := func(rec *ledger.Record, now time.Time) Decision {
		t.Helper()
		return Decide(rec, Lookup, notFound, p, now)
	}
	created := func(d Decision) bool { return d.Then.Next == Continue && d.Then.Step == Submit }

	// The first create, throttled: flagged, looked up, created again.
	end := t0.Add(time.Minute)
	d := Decide(queuedMarked(), Submit, throttled, p, end)
	if !d.Settle.ThrottledCreate() || d.Settle.To() != ledger.StateUnknown {
		t.Fatalf("throttled first create: to %q, throttled %v; want unknown, recorded as throttled", d.Settle.To(), d.Settle.ThrottledCreate())
	}
	rec := settled(queuedMarked(), d, end)
	if !rec.ThrottledLast() {
		t.Fatal("ThrottledLast false right after the throttled create")
	}
	if d := lookup(rec, end.Add(time.Minute)); d.Then.Next != Wait {
		t.Errorf("within the listing lag: %v; want a wait", d.Then.Next)
	}
	d = lookup(rec, end.Add(p.ListingLag+time.Second))
	if !created(d) {
		t.Fatalf("throttled only, not listed past the lag: %v %v %q; want created again", d.Then.Next, d.Then.Step, d.Then.Reason)
	}
	// Throttled again: still only throttles, created again after its lookup.
	again := *rec
	again.State, again.Inflight, again.InflightMarked, again.MayExist = ledger.StateSubmitting, 2, true, false
	d = Decide(&again, Submit, throttled, p, end.Add(3*time.Minute))
	if !d.Settle.ThrottledCreate() {
		t.Error("a second throttled create after one: not recorded as throttled")
	}
	if d := lookup(settled(&again, d, end.Add(3*time.Minute)), end.Add(6*time.Minute)); !created(d) {
		t.Errorf("throttled twice, not listed: %v %v; want created again", d.Then.Next, d.Then.Step)
	}
	// Then a create that timed out: held, as any unsure create.
	d = Decide(&again, Submit, unsure, p, end.Add(3*time.Minute))
	if d.Settle.ThrottledCreate() {
		t.Error("a create that timed out recorded as throttled")
	}
	if d := lookup(settled(&again, d, end.Add(3*time.Minute)), end.Add(6*time.Minute)); d.Then.Next != Stop {
		t.Errorf("a timed-out create after a throttled one, not listed: %v %v; want held for a person", d.Then.Next, d.Then.Step)
	}
	// A throttled create after an unsure one (MayHaveExisted, no flag):
	// not recorded as throttled only, held.
	timedOut := *rec
	timedOut.ThrottledCreateAt = time.Time{}
	timedOut.State, timedOut.Inflight, timedOut.InflightMarked, timedOut.MayExist = ledger.StateSubmitting, 2, true, false
	if d := Decide(&timedOut, Submit, throttled, p, end.Add(3*time.Minute)); d.Settle.ThrottledCreate() {
		t.Error("a throttled create after one that timed out recorded as the only kind")
	}
	// A create abandoned since the throttled one (its run killed: Begin
	// moved the last create to the lease's end): held.
	moved := *rec
	moved.LastCreateAt = end.Add(90 * time.Second)
	if d := lookup(&moved, end.Add(5*time.Minute)); d.Then.Next != Stop {
		t.Errorf("a create abandoned after the throttled one, not listed: %v %v; want held", d.Then.Next, d.Then.Step)
	}
	// A create answered what the documents call retryable as it stands
	// (Aliyun's 503 service not available): flagged as a throttled one
	// is, and created again past the lag; it spends a failure, as a
	// throttle does not.
	retry := Outcome{Err: &providers.Error{Code: providers.Ambiguous, Op: "create", HTTPStatus: 503, Message: "service not available", Err: providers.ErrRetryAnswer}}
	d = Decide(queuedMarked(), Submit, retry, p, end)
	if !d.Settle.ThrottledCreate() || d.Settle.To() != ledger.StateUnknown {
		t.Fatalf("a first create answered 503: to %q, flagged %v; want unknown, flagged", d.Settle.To(), d.Settle.ThrottledCreate())
	}
	if d := lookup(settled(queuedMarked(), d, end), end.Add(p.ListingLag+time.Second)); !created(d) {
		t.Errorf("answered 503 only, not listed past the lag: %v %v %q; want created again", d.Then.Next, d.Then.Step, d.Then.Reason)
	}
	// Without HoldUnlisted nothing changes: created again.
	p.HoldUnlisted = false
	if d := lookup(&moved, end.Add(5*time.Minute)); !created(d) {
		t.Errorf("without HoldUnlisted: %v %v; want created again", d.Then.Next, d.Then.Step)
	}
}

// An order whose every earlier create was answered throttled, and which a
// lookup has since found absent, is looked up once more when its next
// create is refused for its params, and errored with the refusal when not
// found a listing lag after it, rather than looked up and created again
// until its budget is spent (bad Tencent orders took 34 attempts in a
// black-box run) or, where a listing is no proof, left for a person (every
// bad UniCloud order whose first create was throttled was). A refusal
// that made nothing and is not the order's (throttled before acting,
// unavailable) keeps the record's "throttled only", so that a later
// throttled create's not-found is still believed. After a create that
// timed out, or one answered with another's id, a refusal is looked up
// as before; so is a credentials refusal (it may be "number used" in
// words that name the AppKey).
func TestARefusalAfterOnlyThrottledCreatesIsTheOrders(t *testing.T) {
	t.Parallel()
	p := policy()
	p.HoldUnlisted = true
	p.ListingLag = 2 * time.Minute
	end := t0.Add(time.Minute)
	// The create under way after a throttled one whose lookup found
	// nothing past the lag: Begin carried the flag over to it.
	again := func() *ledger.Record {
		return &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateSubmitting, Attempts: 2, Inflight: 2, InflightMarked: true,
			CreatedAt: t0, MayHaveExisted: true, LastCreateAt: end, ThrottledCreateAt: end}
	}
	bad := Outcome{Err: &providers.Error{Code: providers.InvalidArgument, Op: "create", Message: "ProductConfigError: no such specification"}}
	refusedAt := end.Add(3 * time.Minute)
	d := Decide(again(), Submit, bad, p, refusedAt)
	if d.Settle.To() != ledger.StateUnknown || !d.Settle.ThrottledCreate() || !strings.HasPrefix(d.Then.Reason, RefusedAfterThrottles) || !strings.Contains(d.Settle.RefusedCreate(), "ProductConfigError") {
		t.Fatalf("refused for its params after throttles only: to %q, kept %v, %q, refusal recorded %q; want unknown, looked up once more, throttled kept, the refusal recorded", d.Settle.To(), d.Settle.ThrottledCreate(), d.Then.Reason, d.Settle.RefusedCreate())
	}
	// As the settle leaves it: the refused create ended at refusedAt.
	looked := again()
	looked.State, looked.Inflight, looked.InflightMarked, looked.MayExist = ledger.StateUnknown, 0, false, true
	looked.LastCreateAt, looked.ThrottledCreateAt, looked.Reason, looked.Failures = refusedAt, refusedAt, d.Then.Reason, 1
	looked.RefusedCreateAt, looked.RefusedCreate = refusedAt, d.Settle.RefusedCreate()
	notFound := Outcome{Err: providers.Errorf(providers.NotFound, "op", "none")}
	if d := Decide(looked, Lookup, notFound, p, refusedAt.Add(time.Minute)); d.Then.Next != Wait {
		t.Errorf("not found within the listing lag: %v; want a wait", d.Then.Next)
	}
	d = Decide(looked, Lookup, notFound, p, refusedAt.Add(p.ListingLag+time.Second))
	if d.Settle.To() != ledger.StateErrored || d.Then.Next != Stop || !strings.Contains(d.Then.Reason, "ProductConfigError") {
		t.Errorf("not found a listing lag after the refusal: to %q, %v %q; want errored with the refusal", d.Settle.To(), d.Then.Next, d.Then.Reason)
	}
	found := Outcome{Result: providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P9"}}
	if d := Decide(looked, Lookup, found, p, refusedAt.Add(p.ListingLag+time.Second)); d.Settle.To() != ledger.StatePaid {
		t.Errorf("found by the lookup after the refusal: to %q; want paid", d.Settle.To())
	}
	// A lookup in between rewrote the reason (an ambiguous one): the
	// record still holds the refusal (a review: the reason's prefix was
	// lost, and the order created again).
	rewritten := *looked
	rewritten.Reason = "lookup: an unowned order in the window may be this one; looking again"
	d = Decide(&rewritten, Lookup, notFound, p, refusedAt.Add(p.ListingLag+time.Second))
	if d.Settle.To() != ledger.StateErrored || !strings.Contains(d.Then.Reason, "ProductConfigError") {
		t.Errorf("not found a listing lag after the refusal, the reason rewritten between: to %q, %q; want errored with the refusal", d.Settle.To(), d.Then.Reason)
	}
	// Recorded by an earlier version, in the reason only: errored all the
	// same.
	legacy := *looked
	legacy.RefusedCreateAt, legacy.RefusedCreate = time.Time{}, ""
	d = Decide(&legacy, Lookup, notFound, p, refusedAt.Add(p.ListingLag+time.Second))
	if d.Settle.To() != ledger.StateErrored || !strings.Contains(d.Then.Reason, "ProductConfigError") {
		t.Errorf("refused under an earlier version (the reason only), not found a listing lag after: to %q, %q; want errored with the refusal", d.Settle.To(), d.Then.Reason)
	}
	// A later create ended since (its refusal is not the latest create's
	// answer): not errored with it.
	later := *looked
	later.LastCreateAt, later.ThrottledCreateAt = refusedAt.Add(time.Minute), refusedAt.Add(time.Minute)
	if d := Decide(&later, Lookup, notFound, p, refusedAt.Add(time.Minute+p.ListingLag+time.Second)); d.Settle.To() == ledger.StateErrored || strings.Contains(d.Then.Reason, "ProductConfigError") {
		t.Errorf("not found after a later create than the refused one: to %q, %q; want not errored with the old refusal", d.Settle.To(), d.Then.Reason)
	}
	for _, c := range []struct {
		name string
		err  error
		next Next
	}{
		{"throttled before acting", &providers.Error{Code: providers.RateLimited, Op: "create", Message: "slow down"}, Wait},
		{"unavailable", &providers.Error{Code: providers.Unavailable, Op: "create", Message: "connection refused"}, Retry},
	} {
		d := Decide(again(), Submit, Outcome{Err: c.err}, p, refusedAt)
		if d.Then.Next != c.next || !d.Settle.ThrottledCreate() || d.Settle.To() == ledger.StateUnknown {
			t.Errorf("%s after throttles only: %v to %q, throttled kept %v; want %v, kept", c.name, d.Then.Next, d.Settle.To(), d.Settle.ThrottledCreate(), c.next)
		}
	}
	auth := Outcome{Err: &providers.Error{Code: providers.Unauthenticated, Op: "create", Message: "OrderNo submitted under AppKey"}}
	if d := Decide(again(), Submit, auth, p, refusedAt); d.Settle.To() != ledger.StateUnknown || !strings.Contains(d.Then.Reason, "looking it up") {
		t.Errorf("credentials refused after throttles only: to %q %q; want looked up", d.Settle.To(), d.Then.Reason)
	}
	// Still to be found absent (the throttled create not yet looked up
	// past the lag: no create would be sent, but a record may say so).
	unresolved := again()
	unresolved.MayExist = true
	if d := Decide(unresolved, Submit, bad, p, refusedAt); d.Settle.To() != ledger.StateUnknown || strings.HasPrefix(d.Then.Reason, RefusedAfterThrottles) {
		t.Errorf("refused while the throttled create may still have made it: to %q %q; want looked up as before", d.Settle.To(), d.Then.Reason)
	}
	// After a create that timed out (no flag): looked up, as before.
	timedOut := again()
	timedOut.ThrottledCreateAt = time.Time{}
	if d := Decide(timedOut, Submit, bad, p, refusedAt); d.Settle.To() != ledger.StateUnknown || !strings.Contains(d.Then.Reason, "looking it up") {
		t.Errorf("refused after a create that timed out: to %q %q; want looked up", d.Settle.To(), d.Then.Reason)
	}
	// Answered with another's id before: looked up, as before.
	owned := again()
	owned.OwnedAnswer = true
	if d := Decide(owned, Submit, bad, p, refusedAt); d.Settle.To() != ledger.StateUnknown || strings.HasPrefix(d.Then.Reason, RefusedAfterThrottles) {
		t.Errorf("refused after an answer with another's id: to %q %q; want looked up as before", d.Settle.To(), d.Then.Reason)
	}
}
