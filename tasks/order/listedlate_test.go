package order

import (
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// A lookup that finds, by matching, an order that may be another's
// (UniCloud's and Aliyun's without an id, held for a person) does not tell
// that ours was listed late: it counted so before (a review).
func TestNotListedLateOnAMatch(t *testing.T) {
	p := policy()
	p.ListingLag = 2 * time.Minute
	created := t0.Add(time.Minute)
	rec := &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateUnknown, Attempts: 3, CreatedAt: t0,
		FirstAttemptAt: created, LastCreateAt: created, MayExist: true,
		UnseenAt: created.Add(61 * time.Second), ReadAt: created.Add(2*time.Minute + time.Second)}
	found := Outcome{Result: providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P9", Matched: true, Held: true},
		Attempt: &ledger.Attempt{Call: "lookup"}}
	d := Decide(rec, Lookup, found, p, rec.ReadAt)
	t.Logf("to %s, reason %q, ListedLate %s", d.Settle.To(), d.Then.Reason, d.ListedLate)
	if d.ListedLate != 0 {
		t.Errorf("ListedLate %s for an order found only by matching and held as perhaps another's; want 0", d.ListedLate)
	}
}

// A not-found believed at or past the lag (here held as unlisted) records
// when it was seen too, so that a later find (the reconciler's recheck)
// tells the order was unlisted for the whole lag: before, it told nothing
// with a lag under 16 s (no steps), or half the lag (a review).
func TestBelievedNotFoundIsRecordedUnseen(t *testing.T) {
	for _, lag := range []time.Duration{10 * time.Second, 2 * time.Minute} {
		p := policy()
		p.ListingLag = lag
		p.HoldUnlisted = true
		created := t0.Add(time.Minute)
		lastUnseen := created.Add(time.Second)
		if lag >= minSteppedLag {
			lastUnseen = created.Add(lag/2 + time.Second)
		}
		rec := &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateUnknown, Attempts: 3, Failures: 1, CreatedAt: t0,
			FirstAttemptAt: created, LastCreateAt: created, MayExist: true, UnseenAt: lastUnseen,
			ReadAt: created.Add(lag + time.Second)}
		d := Decide(rec, Lookup, Outcome{Err: providers.Errorf(providers.NotFound, "op", "no such order")}, p, rec.ReadAt)
		if !strings.HasPrefix(d.Settle.Reason(), HeldUnlisted) {
			t.Fatalf("lag %s: %q; want held unlisted", lag, d.Settle.Reason())
		}
		recorded := !d.Settle.UnseenAt().IsZero()
		if recorded {
			rec.UnseenAt = d.Settle.UnseenAt()
		}
		// The reconciler's recheck, 15 minutes later, finds it.
		rec.Reason = d.Settle.Reason()
		rec.ReadAt = rec.ReadAt.Add(15 * time.Minute)
		found := Outcome{Result: providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P1"}, Attempt: &ledger.Attempt{Call: "lookup"}}
		d = Decide(rec, Lookup, found, p, rec.ReadAt)
		t.Logf("lag %s: held-unlisted not-found recorded unseen_at=%v; later find: to %s, ListedLate %s", lag, recorded, d.Settle.To(), d.ListedLate)
		if d.ListedLate < lag {
			t.Errorf("lag %s: order unlisted at %s after its create (held as unlisted), found later: ListedLate %s; want >= the lag", lag, lag+time.Second, d.ListedLate)
		}
	}
}

// With a step of Redis's clock held (ClockHold), the stepped looks are
// spaced on the lag itself, as listedLate judges it, so that an order not
// listed until late in the lag is told: before, they were spaced on the
// lag and the hold, the half-lag look landed at (lag-hold)/2, and such an
// order went untold (a review).
func TestListedLateUnderAClockHold(t *testing.T) {
	p := policy()
	p.ListingLag = 2 * time.Minute
	p.Deadline = 0
	const hold = 60 * time.Second
	created := t0.Add(time.Minute)
	rec := &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateUnknown, Attempts: 1, CreatedAt: t0,
		FirstAttemptAt: created, LastCreateAt: created, MayExist: true, ClockHold: hold,
		ReadAt: created.Add(hold + time.Second)} // stamped before the step: 1 s real
	// The provider lists the order 100 s (real) after its create: 0.83 of the lag.
	listedReal := 100 * time.Second
	for i := 0; i < 10; i++ {
		real := rec.ReadAt.Sub(created) - hold
		if real >= listedReal {
			break
		}
		d := Decide(rec, Lookup, Outcome{Err: providers.Errorf(providers.NotFound, "op", "no such order")}, p, rec.ReadAt)
		if d.Then.Next != Wait {
			t.Fatalf("not-found at %s (stepped): %v; want Wait", rec.ReadAt.Sub(created), d.Then.Next)
		}
		t.Logf("not-found at %s stepped (%s real), next in %s", rec.ReadAt.Sub(created), real, d.Then.Delay)
		rec.UnseenAt = d.Settle.UnseenAt()
		rec.ReadAt = rec.ReadAt.Add(d.Then.Delay)
	}
	found := Outcome{Result: providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P1"}, Attempt: &ledger.Attempt{Call: "lookup"}}
	d := Decide(rec, Lookup, found, p, rec.ReadAt)
	t.Logf("found at %s stepped: ListedLate %s", rec.ReadAt.Sub(created), d.ListedLate)
	if d.ListedLate == 0 {
		t.Errorf("an order not listed until %s (real) after its create, %s lag, a clock step of %s held: not told as listed late", listedReal, p.ListingLag, hold)
	}
}

// A lookup within the lag, past the deadline, that fails for the moment
// (here this worker's own rate limiter refuses it, nothing sent) waits as
// before the deadline: it left the order for a person and ended its task,
// though the lag still ran and the steps add three such lookups (a
// review).
func TestFailedLookupWithinTheLagPastTheDeadlineWaits(t *testing.T) {
	p := policy()
	p.ListingLag = 2 * time.Minute
	created := t0.Add(59*time.Minute + 50*time.Second)
	rec := &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateUnknown, Attempts: 2, CreatedAt: t0,
		FirstAttemptAt: t0, LastCreateAt: created, MayExist: true, Reason: "looked up: not found",
		ReadAt: created.Add(16 * time.Second)} // the lag/8 step, 6 s past the 1h deadline
	err := &providers.Error{Code: providers.RateLimited, Op: "rate limit p", Message: "held back by the rate limit", RetryAfter: 2 * time.Second}
	d := Decide(rec, Lookup, Outcome{Err: err}, p, rec.ReadAt)
	t.Logf("next %v, reason %q", d.Then.Next, d.Then.Reason)
	if d.Then.Next == Stop {
		t.Errorf("a step look refused unsent by the limiter, %s into a %s lag, past the deadline: task stopped, order left for a person (%q)", 16*time.Second, p.ListingLag, d.Settle.Reason())
	}
}

// A provider whose lookups find an order without an id by matching
// (Aliyun, UniCloud) does not look again within the lag: a match within it
// is not taken, so a lookup sooner could take nothing, and each costs
// listings. With an id recorded (a create's answer) it looks by the id, and
// steps.
func TestMatchingLookupsWaitTheWholeLag(t *testing.T) {
	p := policy()
	p.ListingLag = 2 * time.Minute
	p.Deadline = 0
	p.Matches = true
	created := t0.Add(time.Minute)
	notFound := Outcome{Err: providers.Errorf(providers.NotFound, "op", "no such order")}
	for _, c := range []struct {
		id   string
		want time.Duration
	}{
		{"", 119 * time.Second},
		{"P1", 15 * time.Second},
	} {
		rec := &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateUnknown, Attempts: 1, CreatedAt: t0,
			FirstAttemptAt: created, LastCreateAt: created, MayExist: true, ProviderOrderID: c.id, ReadAt: created.Add(time.Second)}
		d := Decide(rec, Lookup, notFound, p, rec.ReadAt)
		if d.Then.Next != Wait || d.Then.Delay != c.want {
			t.Errorf("id %q: next %v in %s; want Wait in %s", c.id, d.Then.Next, d.Then.Delay, c.want)
		}
	}
}
