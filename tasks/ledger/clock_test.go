package ledger

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks/taskstest"
)

// A producer whose clock is hours off (a server set to local time) stamps
// nothing that bounds an order's life: the claim records Redis's time as
// the order's creation (the deadline counts from it), its index score and
// its event, and NotAfterNow (a task's claim mark, the lower bound of a
// lookup should Redis lose the record) is on Redis's clock too, both when
// it reads TIME and when it adds the offset it read to the skewed clock.
func TestClaimTimesAreRedisTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	l := New(rdb, &Options{Durable: DurableOff})
	skew := 8 * time.Hour
	var reads atomic.Int64
	l.clock.wall = func() time.Time { reads.Add(1); return time.Now().Add(skew) }
	l.now = func() time.Time { return time.Now().Add(skew) } // this process's clock

	redisNow := func() time.Time {
		t.Helper()
		v, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return v.Truncate(time.Millisecond)
	}
	near := func(what string, got time.Time, lo, hi time.Time) {
		t.Helper()
		if got.Before(lo) || got.After(hi) {
			t.Errorf("%s = %v; want Redis's time, within [%v, %v] (the producer's clock says %v)", what, got, lo, hi, time.Now().Add(skew))
		}
	}

	ref := Ref{Provider: "tencent", OrderNo: "SKEW-1"}
	lo := redisNow()
	if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	hi := redisNow().Add(time.Millisecond)
	rec, err := l.Get(ctx, ref)
	if err != nil || rec == nil {
		t.Fatalf("Get = %v, %v", rec, err)
	}
	near("created", rec.CreatedAt, lo, hi)
	near("updated", rec.UpdatedAt, lo, hi)
	score, err := rdb.ZScore(ctx, l.shardOf(ref).indexKey(ref.Provider, StateQueued), ref.OrderNo).Result()
	if err != nil {
		t.Fatal(err)
	}
	near("queued index score", time.UnixMilli(int64(score)).UTC(), lo, hi)

	// An operator's re-drive restarts the deadline on Redis's clock too.
	if err := rdb.HSet(ctx, l.shardOf(ref).recordKey(ref), "state", "errored").Err(); err != nil {
		t.Fatal(err)
	}
	lo = redisNow()
	if err := l.Redrive(ctx, ref, "ops", ""); err != nil {
		t.Fatal(err)
	}
	hi = redisNow().Add(time.Millisecond)
	if rec, err = l.Get(ctx, ref); err != nil || rec == nil {
		t.Fatalf("Get = %v, %v", rec, err)
	}
	near("redriven", rec.RedrivenAt, lo, hi)

	// So do a worker's steps: Begin's and Settle's updated time, state
	// index, outcome time and event.
	ref3 := Ref{Provider: "tencent", OrderNo: "SKEW-3"}
	if _, err := l.Claim(ctx, ref3, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	lo = redisNow()
	if _, err := l.Begin(ctx, ref3, BeginArgs{Token: "step"}); err != nil {
		t.Fatal(err)
	}
	hi = redisNow().Add(time.Millisecond)
	if rec, err = l.Get(ctx, ref3); err != nil || rec == nil {
		t.Fatalf("Get = %v, %v", rec, err)
	}
	near("updated by Begin", rec.UpdatedAt, lo, hi)
	score, err = rdb.ZScore(ctx, l.shardOf(ref3).indexKey(ref3.Provider, StateSubmitting), ref3.OrderNo).Result()
	if err != nil {
		t.Fatal(err)
	}
	near("submitting index score", time.UnixMilli(int64(score)).UTC(), lo, hi)
	lo = redisNow()
	if err := l.Settle(ctx, ref3, "step", SetPaid("P-3")); err != nil {
		t.Fatal(err)
	}
	hi = redisNow().Add(time.Millisecond)
	if rec, err = l.Get(ctx, ref3); err != nil || rec == nil {
		t.Fatalf("Get = %v, %v", rec, err)
	}
	near("updated by Settle", rec.UpdatedAt, lo, hi)
	near("outcome_at", rec.OutcomeAt, lo, hi)
	score, err = rdb.ZScore(ctx, l.shardOf(ref3).indexKey(ref3.Provider, StatePaid), ref3.OrderNo).Result()
	if err != nil {
		t.Fatal(err)
	}
	near("paid index score", time.UnixMilli(int64(score)).UTC(), lo, hi)
	evs, err := rdb.XRevRangeN(ctx, l.shardOf(ref3).events, "+", "-", 1).Result()
	if err != nil || len(evs) != 1 {
		t.Fatalf("events: %v, %v", evs, err)
	}
	at, _ := evs[0].Values["at"].(string)
	ms, _ := strconv.ParseInt(at, 10, 64)
	near("the paid event's at", time.UnixMilli(ms).UTC(), lo, hi)

	// The first call reads TIME; the next ones (within clockReread)
	// correct the skewed clock by what it read: never later than Redis's
	// clock, early by at most a round trip.
	for i := range 3 {
		lo := redisNow()
		got, err := l.NotAfterNow(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		hi := redisNow().Add(time.Millisecond)
		near("NotAfterNow", got, lo.Add(-time.Second), hi)
		if i == 0 && reads.Load() == 0 {
			t.Fatal("NotAfterNow did not consult this process's clock")
		}
	}
	if n := reads.Load(); n < 3 {
		t.Errorf("the skewed clock was read %d times; want one per call (the offset applied to it)", n)
	}

	// With a clock given (Options.Now), that clock is the claim's.
	fixed := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	lf := New(rdb, &Options{Durable: DurableOff, Now: func() time.Time { return fixed }})
	ref2 := Ref{Provider: "tencent", OrderNo: "SKEW-2"}
	if _, err := lf.Claim(ctx, ref2, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	if rec, err := lf.Get(ctx, ref2); err != nil || rec == nil || !rec.CreatedAt.Equal(fixed) {
		t.Errorf("with Options.Now: created %v, %v; want %v", rec, err, fixed)
	}
	if got, _ := lf.NotAfterNow(ctx, ref2); !got.Equal(fixed) {
		t.Errorf("with Options.Now: NotAfterNow = %v; want %v", got, fixed)
	}
}
