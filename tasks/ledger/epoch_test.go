package ledger_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// A process that watched the ledger notices Redis losing its data: every
// key gone (at the next order's first create, before anything is marked)
// or the epoch's count gone back. The orders recorded since are begun
// without their first create marked, to be looked up first; an order
// recorded before the loss, and one after the window, are created as any.
func TestLossOfRedisDataIsNoticed(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	const window = time.Hour
	begin := func(l *ledger.Ledger, no string) *ledger.Record {
		t.Helper()
		b, err := l.Begin(ctx, ledger.Ref{Provider: "p", OrderNo: no}, ledger.BeginArgs{Token: "t-" + no, LookFirst: window})
		if err != nil || b.Status != ledger.Began {
			t.Fatalf("Begin %s = %+v, %v", no, b, err)
		}
		return b.Record
	}
	if losses, err := l.Watch(ctx); err != nil || len(losses) != 0 {
		t.Fatalf("first Watch = %v, %v; want no loss", losses, err)
	}
	claim(t, l, ledger.Ref{Provider: "p", OrderNo: "A"})
	if rec := begin(l, "A"); !rec.InflightMarked || !rec.LookFirstSince.IsZero() {
		t.Fatalf("before any loss: %+v; want the create marked", rec)
	}

	// Every key gone: the first create after it notices, and is not marked.
	time.Sleep(5 * time.Millisecond)
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	claim(t, l, ledger.Ref{Provider: "p", OrderNo: "A"}) // its producer sends it again
	rec := begin(l, "A")
	if rec.InflightMarked || rec.LookFirstSince.IsZero() || rec.State != ledger.StateQueued {
		t.Fatalf("after the keys went: %+v; want no create marked, to be looked up first", rec)
	}
	losses, err := l.Watch(ctx)
	if err != nil || len(losses) != 1 || !losses[0].Wiped || !losses[0].Since.Equal(rec.LookFirstSince) {
		t.Fatalf("Watch after the keys went = %+v, %v; want one loss, wiped, since %v", losses, err, rec.LookFirstSince)
	}
	// Another process, started after the loss, finds it recorded.
	l2 := ledger.New(rdb, nil)
	if losses, err := l2.Watch(ctx); err != nil || len(losses) != 0 {
		t.Fatalf("a new process's first Watch = %v, %v", losses, err)
	}
	claim(t, l, ledger.Ref{Provider: "p", OrderNo: "B"})
	if rec := begin(l2, "B"); rec.InflightMarked || !rec.LookFirstSince.Equal(losses0(t, losses)) {
		t.Fatalf("a new process, an order recorded after the loss: %+v; want it looked up first", rec)
	}
	// Past the window, an order is created as any.
	short := func(l *ledger.Ledger, no string) *ledger.Record {
		b, err := l.Begin(ctx, ledger.Ref{Provider: "p", OrderNo: no}, ledger.BeginArgs{Token: "s-" + no, LookFirst: time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		return b.Record
	}
	claim(t, l, ledger.Ref{Provider: "p", OrderNo: "C"})
	if rec := short(l, "C"); !rec.InflightMarked {
		t.Fatalf("past the window: %+v; want the create marked", rec)
	}

	// The epoch's count gone back (an older snapshot): noticed by Watch.
	// D was recorded before it, and written again (a lookup, say) after
	// the roll-back: its step since may itself have been fooled by what
	// was lost (a not-found within the listing lag of a lost create), so
	// it is looked up first all the same: every order not final is
	// looked at once for a loss, whatever its times say.
	claim(t, l, ledger.Ref{Provider: "p", OrderNo: "D"})
	if err := rdb.HSet(ctx, "orderworker:{ledger}:order:p:D", "created", time.Now().Add(-2*time.Minute).UnixMilli(),
		"updated", time.Now().Add(2*time.Minute).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	keys, _ := rdb.Keys(ctx, "*epoch").Result()
	if len(keys) != 1 {
		t.Fatalf("epoch keys %v", keys)
	}
	countsBack(t, rdb, keys[0])
	losses, err = l.Watch(ctx)
	if err != nil || len(losses) != 1 || losses[0].Wiped {
		t.Fatalf("Watch after the count went back = %+v, %v; want one loss, not wiped", losses, err)
	}
	claim(t, l, ledger.Ref{Provider: "p", OrderNo: "E"})
	if rec := begin(l, "E"); rec.InflightMarked || !rec.LookFirstSince.Equal(losses[0].Since) {
		t.Fatalf("an order recorded after the count went back: %+v; want it looked up first", rec)
	}
	if rec := begin(l, "D"); rec.InflightMarked || !rec.LookFirstSince.Equal(losses[0].Since) || time.Since(rec.LookFirstFound) > time.Minute {
		t.Fatalf("an order recorded before the loss and written after it: %+v; want it looked up first, the loss found just now", rec)
	}
	// One last written in the minute before the last reading (a retry
	// planned, its create then sent in what was lost) was restored.
	claim(t, l, ledger.Ref{Provider: "p", OrderNo: "Q"})
	if err := rdb.HSet(ctx, "orderworker:{ledger}:order:p:Q", "created", time.Now().Add(-5*time.Minute).UnixMilli(),
		"updated", time.Now().Add(-20*time.Second).UnixMilli(), "first_attempt", time.Now().Add(-4*time.Minute).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if rec := begin(l, "Q"); rec.InflightMarked || rec.LookFirstSince.IsZero() {
		t.Fatalf("a restored record written just before the loss, a create before it: %+v; want it looked up first", rec)
	}
	// Records the roll-back restored, last written before it (perhaps
	// created since, in what was lost), are looked up first too, once
	// for that loss.
	claim(t, l, ledger.Ref{Provider: "p", OrderNo: "R"})
	old := time.Now().Add(-2 * time.Minute).UnixMilli()
	if err := rdb.HSet(ctx, "orderworker:{ledger}:order:p:R", "created", old, "updated", old).Err(); err != nil {
		t.Fatal(err)
	}
	rec = begin(l, "R")
	if rec.InflightMarked || !rec.LookFirstSince.Equal(losses[0].Since) {
		t.Fatalf("a record restored by the roll-back: %+v; want it looked up first", rec)
	}
	// So is one whose snapshot comes first (a Preparer's): the snapshot
	// would hold the order if it was created in what was lost.
	claim(t, l, ledger.Ref{Provider: "p", OrderNo: "K"})
	if err := rdb.HSet(ctx, "orderworker:{ledger}:order:p:K", "created", old, "updated", old).Err(); err != nil {
		t.Fatal(err)
	}
	if b, err := l.Begin(ctx, ledger.Ref{Provider: "p", OrderNo: "K"}, ledger.BeginArgs{Token: "k", NeedsKnown: true, LookFirst: window}); err != nil || b.Record.LookFirstSince.IsZero() {
		t.Fatalf("a restored record whose snapshot comes first: %+v, %v; want it looked up first", b.Record, err)
	}
	// Looked up for the loss and not found, E is created: its create is
	// not held back for that loss again.
	e := ledger.Ref{Provider: "p", OrderNo: "E"}
	if err := l.Settle(ctx, e, "t-E", ledger.SetUnknownSince("looked up first", time.Now().Add(-time.Hour), nil).WithLookedFirst(losses[0].Since, time.Now())); err != nil {
		t.Fatal(err)
	}
	b, err := l.Begin(ctx, e, ledger.BeginArgs{Token: "e2", LookFirst: window})
	if err != nil || b.Record.State != ledger.StateUnknown || time.Since(b.Record.LastCreateAt) > time.Minute {
		t.Fatalf("Begin E's lookup: %+v, %v; want unknown, its last create when the loss was found holding it", b, err)
	}
	if err := l.Settle(ctx, e, "e2", ledger.SetRetry("not found")); err != nil {
		t.Fatal(err)
	}
	if b, err := l.Begin(ctx, e, ledger.BeginArgs{Token: "e3", LookFirst: window}); err != nil || !b.Record.InflightMarked {
		t.Fatalf("E after its lookup for the loss: %+v, %v; want its create marked", b.Record, err)
	}

	// The count gone back again, to before any loss was recorded: noticed
	// at a create (not only by Watch).
	if err := rdb.HDel(ctx, keys[0], "lost").Err(); err != nil {
		t.Fatal(err)
	}
	countsBack(t, rdb, keys[0])
	claim(t, l, ledger.Ref{Provider: "p", OrderNo: "G"})
	if rec := begin(l, "G"); rec.InflightMarked || rec.LookFirstSince.IsZero() {
		t.Fatalf("an order recorded after a roll-back its create noticed: %+v; want it looked up first", rec)
	}
	if losses, err := l.Watch(ctx); err != nil || len(losses) != 1 || losses[0].Wiped {
		t.Fatalf("Watch after a roll-back a create noticed = %+v, %v; want it reported", losses, err)
	}

	// A process that never watched checks nothing.
	claim(t, l, ledger.Ref{Provider: "p", OrderNo: "F"})
	if rec := begin(ledger.New(rdb, nil), "F"); !rec.InflightMarked {
		t.Fatalf("a process that never watched: %+v; want the create marked", rec)
	}
}

func losses0(t *testing.T, l []ledger.Loss) time.Time {
	t.Helper()
	if len(l) == 0 {
		t.Fatal("no loss")
	}
	return l[0].Since
}

// After a roll-back, a pay of a pending order it restored counts as sent
// when the loss was found: the pay may have left in what was lost. None
// leaves before a check a listing lag later (PayAgainAfter).
func TestPayAfterARollBackWaits(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	if _, err := l.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	ref := ledger.Ref{Provider: "p", OrderNo: "P"}
	claim(t, l, ref)
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "c"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, ref, "c", ledger.SetPending("PO-P", time.Now(), time.Now())); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Minute).UnixMilli()
	if err := rdb.HSet(ctx, "orderworker:{ledger}:order:p:P", "updated", old).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	keys, _ := rdb.Keys(ctx, "*epoch").Result()
	countsBack(t, rdb, keys[0])
	pay := ledger.BeginArgs{Token: "pay1", Pay: true, PayAgainAfter: time.Hour, LookFirst: time.Hour}
	b, err := l.Begin(ctx, ref, pay)
	if err != nil || b.Record.PayMarked || time.Since(b.Record.PaySentAt) > time.Minute || b.Record.LookedFirstAt.IsZero() {
		t.Fatalf("a pay of a restored order after a roll-back: %+v, %v; want no pay marked, the pay counted as sent now", b.Record, err)
	}
	if err := l.Settle(ctx, ref, "pay1", ledger.Release()); err != nil {
		t.Fatal(err)
	}
	pay.Token = "pay2"
	if b, err := l.Begin(ctx, ref, pay); err != nil || b.Record.PayMarked {
		t.Fatalf("a pay within the listing lag after that: %+v, %v; want none", b.Record, err)
	}
}

// countsBack puts every process's count in the epoch hash key back to 1,
// as a roll-back to an older snapshot does.
func countsBack(t *testing.T, rdb *redis.Client, key string) {
	t.Helper()
	h, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	for f := range h {
		if strings.HasPrefix(f, "g:") {
			if err := rdb.HSet(ctx, key, f, 1).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// An order recorded within the window after a loss was found is looked up
// first whenever it runs, even once the window is over: a resend that a
// backlog, a breaker or a rate limit held past it may be of an order the
// loss hid (a black-box run: 24 of 60 resends run after the window were
// created again). One recorded after the window is created as any.
func TestOrderRecordedInTheWindowIsLookedUpFirstWhenRunAfterIt(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	const window = 400 * time.Millisecond
	begin := func(no string) *ledger.Record {
		t.Helper()
		b, err := l.Begin(ctx, ledger.Ref{Provider: "p", OrderNo: no}, ledger.BeginArgs{Token: "t-" + no, LookFirst: window})
		if err != nil || b.Status != ledger.Began {
			t.Fatalf("Begin %s = %+v, %v", no, b, err)
		}
		return b.Record
	}
	if _, err := l.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if losses, err := l.Watch(ctx); err != nil || len(losses) != 1 {
		t.Fatalf("Watch after the keys went = %+v, %v; want one loss", losses, err)
	}
	claim(t, l, ledger.Ref{Provider: "p", OrderNo: "Resent"}) // within the window
	time.Sleep(window + 100*time.Millisecond)
	if rec := begin("Resent"); rec.InflightMarked || rec.LookFirstSince.IsZero() {
		t.Errorf("an order recorded within the window, run after it: %+v; want it looked up first", rec)
	}
	claim(t, l, ledger.Ref{Provider: "p", OrderNo: "Later"}) // after it
	if rec := begin("Later"); !rec.InflightMarked {
		t.Errorf("an order recorded after the window: %+v; want the create marked", rec)
	}
}
