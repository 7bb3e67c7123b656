package ledger_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// The listing lag a create or a pay was marked with stays on the record,
// the longest of them: a later mark with a shorter lag does not shorten
// it, and a step that marks nothing does not touch it.
func TestMarkLagKeepsTheLongest(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "p", OrderNo: "ML"}
	claim(t, l, ref)
	for i, step := range []struct {
		args ledger.BeginArgs
		tr   ledger.Transition
		want time.Duration
	}{
		{ledger.BeginArgs{ListingLag: time.Hour}, ledger.SetUnknown("timeout").WithMayExist(true), time.Hour},
		{ledger.BeginArgs{NoCreate: true, ListingLag: 2 * time.Hour}, ledger.SetUnknown("looked"), time.Hour},
		{ledger.BeginArgs{ListingLag: time.Minute}, ledger.SetUnknown("timeout").WithMayExist(true), time.Hour},
	} {
		tok := "ml-" + string(rune('a'+i))
		step.args.Token = tok
		b, err := l.Begin(ctx, ref, step.args)
		if err != nil || b.Status != ledger.Began {
			t.Fatalf("Begin %d: %+v, %v", i, b, err)
		}
		if err := l.Settle(ctx, ref, tok, step.tr); err != nil {
			t.Fatalf("Settle %d: %v", i, err)
		}
		if rec, err := l.Get(ctx, ref); err != nil || rec.MarkLag != step.want {
			t.Errorf("after step %d: mark lag %v (%v), want %s", i, rec.MarkLag, err, step.want)
		}
	}
}

// An operator's resolve waits at least the lag the order's last create was
// marked with, whatever lag the operator's own process gives (one run from
// a shell without the workers' ORDERWORKER_LISTING_LAG, or with 0).
func TestResolveWaitsTheLagOfTheMark(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "p", OrderNo: "RL"}
	claim(t, l, ref)
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "c", ListingLag: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, ref, "c", ledger.SetUnknown("timeout").WithMayExist(true)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	var refused *ledger.RefusedError
	for _, lag := range []time.Duration{time.Millisecond, 0, -1} {
		for _, as := range []ledger.Resolution{ledger.ResolveAbsent, ledger.ResolveErrored} {
			_, err := l.Resolve(ctx, ref, ledger.ResolveArgs{As: as, Note: "not in the console", By: "ann", ListingLag: lag})
			if !errors.As(err, &refused) || !strings.Contains(err.Error(), "listing lag (1h0m0s)") {
				t.Errorf("%s with the operator's lag %s, 10ms after a create marked with 1h: %v; want refused for the 1h lag", as, lag, err)
			}
		}
	}
	if rec, _ := l.Get(ctx, ref); rec.State != ledger.StateUnknown {
		t.Errorf("state %s after refused decisions, want unknown", rec.State)
	}
}

// A pay is not marked again within the lag the last pay was marked with,
// though the Begin asking for it would pay again sooner.
func TestPayAgainWaitsTheLagOfTheMark(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	since := time.Now().Add(-time.Hour)
	ref := settled(t, l, "PL", ledger.SetPending("PO-PL", since, time.Now().Add(time.Hour)))
	b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "pay1", Pay: true, PayAgainAfter: time.Hour, ListingLag: time.Hour})
	if err != nil || !b.Record.PayMarked {
		t.Fatalf("first pay: %+v, %v", b, err)
	}
	if err := l.Settle(ctx, ref, "pay1", ledger.SetPending("PO-PL", since, time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	b, err = l.Begin(ctx, ref, ledger.BeginArgs{Token: "pay2", Pay: true, PayAgainAfter: time.Millisecond, ListingLag: time.Millisecond})
	if err != nil || b.Status != ledger.Began || b.Record.PayMarked {
		t.Errorf("a pay again 10ms after one marked with a 1h lag: %+v, %v; want begun, no pay marked", b, err)
	}
}

// A lag recorded is at most MaxListingLag: a slip in one worker's setting
// (40h for 40s) holds its orders a day at the most, not for as long.
func TestMarkLagIsAtMostADay(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "p", OrderNo: "MD"}
	claim(t, l, ref)
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "c", ListingLag: 1000 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if rec, err := l.Get(ctx, ref); err != nil || rec.MarkLag != ledger.MaxListingLag {
		t.Errorf("a create marked with a 1000h lag: mark lag %v (%v), want %s", rec.MarkLag, err, ledger.MaxListingLag)
	}
}

// A create that a lookup's not-found let go, a not-found seen sooner after
// the last create (absent_lag) than the Begin's own listing lag, is not
// marked: Begin says to look the order up again (AbsentRecheck), and marks
// nothing, however late it comes (what counts is when the lookup looked),
// and says so again to the same Begin run again. A Begin whose lag is no
// longer than that marks the create; an operator's absent forgets the
// belief.
func TestAbsentBelievedUnderAShorterLag(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "p", OrderNo: "AL"}
	claim(t, l, ref)
	begin := func(tok string, args ledger.BeginArgs) *ledger.Record {
		t.Helper()
		args.Token = tok
		b, err := l.Begin(ctx, ref, args)
		if err != nil || b.Status != ledger.Began {
			t.Fatalf("Begin %s: %+v, %v", tok, b, err)
		}
		return b.Record
	}
	step := func(tok string, args ledger.BeginArgs, tr ledger.Transition) *ledger.Record {
		t.Helper()
		rec := begin(tok, args)
		if err := l.Settle(ctx, ref, tok, tr); err != nil {
			t.Fatalf("Settle %s: %v", tok, err)
		}
		return rec
	}
	// A create that timed out, then a lookup's not-found seen 300ms
	// after it, believed.
	step("create", ledger.BeginArgs{}, ledger.SetUnknown("timeout").WithMayExist(true))
	step("look", ledger.BeginArgs{NoCreate: true}, ledger.SetRetry("not found").WithMayExist(false).WithAbsentLag(300*time.Millisecond))
	if rec, err := l.Get(ctx, ref); err != nil || !rec.AbsentBelieved || rec.AbsentLag != 300*time.Millisecond {
		t.Fatalf("after the belief: %+v, %v; want 300ms recorded", rec, err)
	}

	// A worker with a 1s lag, 1.2s after the create: looked up again,
	// nothing marked, and so again for the same Begin run again.
	time.Sleep(1200 * time.Millisecond)
	for range 2 {
		rec := begin("long", ledger.BeginArgs{ListingLag: time.Second})
		if !rec.AbsentRecheck || rec.InflightMarked {
			t.Errorf("a create with a 1s lag on a not-found seen after 300ms: recheck %v, marked %v; want a recheck, nothing marked", rec.AbsentRecheck, rec.InflightMarked)
		}
	}
	if err := l.Settle(ctx, ref, "long", ledger.Release()); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Get(ctx, ref); got.State != ledger.StateSubmitting || got.Inflight != 0 {
		t.Errorf("after the recheck's Begin: state %s, in flight %d; want submitting, nothing in flight", got.State, got.Inflight)
	}

	// A lag no longer than the belief's: marked.
	rec := step("same", ledger.BeginArgs{ListingLag: 300 * time.Millisecond}, ledger.SetUnknown("timeout").WithMayExist(true))
	if rec.AbsentRecheck || !rec.InflightMarked {
		t.Errorf("a create with the belief's own lag: recheck %v, marked %v; want marked", rec.AbsentRecheck, rec.InflightMarked)
	}

	// An operator's absent forgets the belief: a worker with a longer lag
	// creates the order at once.
	step("look2", ledger.BeginArgs{NoCreate: true}, ledger.SetUnknown("looked").WithMayExist(true).WithAbsentLag(0))
	time.Sleep(350 * time.Millisecond) // the 300ms mark lag
	if _, err := l.Resolve(ctx, ref, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "not in the console", By: "ann"}); err != nil {
		t.Fatalf("resolve absent: %v", err)
	}
	rec = step("after", ledger.BeginArgs{ListingLag: time.Hour}, ledger.SetUnknown("timeout").WithMayExist(true))
	if rec.AbsentBelieved || rec.AbsentRecheck || !rec.InflightMarked {
		t.Errorf("a create with a 1h lag after an operator's absent: believed %v, recheck %v, marked %v; want marked, no belief", rec.AbsentBelieved, rec.AbsentRecheck, rec.InflightMarked)
	}
}
