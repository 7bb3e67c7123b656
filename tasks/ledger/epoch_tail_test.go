package ledger_test

import (
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// A create (or a pay) lost with Redis's data may still have been under
// way when the loss was found: its run began it before, and the call
// lasts up to its timeout. The last create a loss sets, for a record
// looked up first (a new one, a resend) and for any other step, is the
// time found plus BeginArgs.LostCallTail, so the listing lag counts from
// when such a call ended, not from when the loss was found.
func TestLossSetsTheLastCreateAfterACallUnderWayThenEnded(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	const window, tail = time.Hour, 45 * time.Second
	args := func(token string) ledger.BeginArgs {
		return ledger.BeginArgs{Token: token, LookFirst: window, LostCallTail: tail}
	}
	if _, err := l.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	// Creates marked before the loss (this process's count goes up), one
	// of them left unknown.
	for _, no := range []string{"A", "B", "U"} {
		ref := ledger.Ref{Provider: "p", OrderNo: no}
		claim(t, l, ref)
		if b, err := l.Begin(ctx, ref, args("t-"+no)); err != nil || !b.Record.InflightMarked {
			t.Fatalf("Begin %s before the loss = %+v, %v; want the create marked", no, b.Record, err)
		}
	}
	u := ledger.Ref{Provider: "p", OrderNo: "U"}
	if err := l.Settle(ctx, u, "t-U", ledger.SetUnknown("timeout").WithMayExist(true)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	keys, _ := rdb.Keys(ctx, "*epoch").Result()
	if len(keys) != 1 {
		t.Fatalf("epoch keys %v", keys)
	}
	countsBack(t, rdb, keys[0]) // a roll-back
	found := time.Now()
	if losses, err := l.Watch(ctx); err != nil || len(losses) != 1 {
		t.Fatalf("Watch after the roll-back = %+v, %v; want one loss", losses, err)
	}
	near := func(got, want time.Time) bool { return got.Sub(want).Abs() < 5*time.Second }

	// A new order: looked up first, its last create the tail after the
	// loss was found.
	n := ledger.Ref{Provider: "p", OrderNo: "N"}
	claim(t, l, n)
	b, err := l.Begin(ctx, n, args("t-N"))
	if err != nil || b.Record.InflightMarked || b.Record.LookFirstSince.IsZero() || !near(b.Record.LookFirstFound, found.Add(tail)) {
		t.Fatalf("Begin N after the loss = %+v, %v; want a look-first, its create's end %v after the loss was found", b.Record, err, tail)
	}
	// An unknown order's lookup: its last create raised to the same.
	b, err = l.Begin(ctx, u, args("t-U2"))
	if err != nil || b.Record.State != ledger.StateUnknown || !near(b.Record.LastCreateAt, found.Add(tail)) {
		t.Fatalf("Begin U's lookup after the loss = %+v, %v; want its last create %v after the loss was found", b.Record, err, tail)
	}
}
