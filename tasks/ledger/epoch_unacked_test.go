package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks/taskstest"
)

// A wipe after a reading the replicas had not acknowledged (the id known,
// no acknowledged reading yet) is noticed all the same: Begin checks the id
// it knows, and so does the watch it runs, from the last reading. (Found by
// review: the watch checked nothing then, drew a new id, and the resend's
// create was marked with no lookup first.)
func TestWipeAfterAnUnacknowledgedReadingIsNoticed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	l := New(rdb, nil)
	if _, err := l.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	// As if the reading's WAIT had timed out: the id known, nothing
	// acknowledged.
	l.epochs.update(0, func(s epochState) epochState { s.good, s.gen = time.Time{}, 0; return s })
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	ref := Ref{Provider: "p", OrderNo: "X"}
	if res, err := l.Claim(ctx, ref, []byte(`{"a":1}`), "h1"); err != nil || !res.Created {
		t.Fatal(res, err)
	}
	b, err := l.Begin(ctx, ref, BeginArgs{Token: "x", LookFirst: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	losses, err := l.Watch(ctx)
	if b.Record.InflightMarked || b.Record.LookFirstSince.IsZero() || err != nil || len(losses) != 1 || !losses[0].Wiped {
		t.Errorf("a resend after the wipe: marked %v, look-first since %v; Watch = %+v, %v; want it looked up first and the wipe reported",
			b.Record.InflightMarked, b.Record.LookFirstSince, losses, err)
	}
}
