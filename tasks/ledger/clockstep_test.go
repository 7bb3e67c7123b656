package ledger

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/taskstest"
)

// stepClock makes l's last reading of shard 0's clock say Redis's clock
// read step less than it does: as if that reading came from a master whose
// clock is step behind this one's (the old master, before a failover), or
// from this master before its clock was set forward by step.
func stepClock(t *testing.T, l *Ledger, step time.Duration) {
	t.Helper()
	now, err := l.rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	l.clock.mu.Lock()
	delete(l.clock.bases, 0)
	l.clock.mu.Unlock()
	l.clock.based(0, now.Add(-step), bootClock())
}

// A master whose clock stepped forward (a failover to one whose clock is
// ahead) makes every lease, create and pay stamped before the step look
// older than it is. A Begin of a process that read the clock before finds
// the step and records it; for its hold, every Begin (this process's or
// another's, which never saw the step) judges leases and pays that much
// later, and records carry the hold for the listing lags.
func TestAClockStepForwardIsHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := taskstest.StartRedis(t, nil)
	var mu sync.Mutex
	var found []time.Duration
	l := New(srv.Client(t), &Options{Durable: DurableOff, OnClockStep: func(shard int, step, hold time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		found = append(found, step)
	}})
	other := New(srv.Client(t), &Options{Durable: DurableOff}) // a process started after the step
	rdb := l.rdb
	redisMs := func() int64 {
		t.Helper()
		v, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return v.UnixMilli()
	}

	// A lease another run took, run out 5 s ago on this clock; a pending
	// order whose pay was marked 70 s ago.
	leased := Ref{Provider: "tencent", OrderNo: "STEP-LEASED"}
	paid := Ref{Provider: "tencent", OrderNo: "STEP-PAY"}
	for _, ref := range []Ref{leased, paid} {
		if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.HSet(ctx, l.shardOf(leased).recordKey(leased), "lease", "dead-run", "lease_until", strconv.FormatInt(redisMs()-5000, 10), "lease_mark", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, l.shardOf(paid).recordKey(paid), "state", "pending", "provider_order_id", "P1", "pay_sent", strconv.FormatInt(redisMs()-70_000, 10)).Err(); err != nil {
		t.Fatal(err)
	}

	// Without a step, Begins find nothing, however far apart.
	probe := Ref{Provider: "tencent", OrderNo: "STEP-PROBE"}
	if _, err := l.Claim(ctx, probe, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		tok := "probe-" + strconv.Itoa(i)
		if _, err := l.Begin(ctx, probe, BeginArgs{Token: tok, NoCreate: true}); err != nil {
			t.Fatal(err)
		}
		if err := l.Settle(ctx, probe, tok, Release()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if n, err := rdb.Exists(ctx, l.shards[0].clockKey()).Result(); err != nil || n != 0 {
		t.Fatalf("a clock that kept pace: hold recorded (%d, %v); want none", n, err)
	}

	// The clock steps forward by a minute.
	step := time.Minute
	stepClock(t, l, step)
	b, err := l.Begin(ctx, leased, BeginArgs{Token: "t1", ClockHold: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != Busy {
		t.Fatalf("a lease run out 5 s ago on a clock that stepped a minute forward: status %v; want Busy (the lease runs out a minute later)", b.Status)
	}
	h, err := rdb.HGetAll(ctx, l.shards[0].clockKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	by, _ := strconv.ParseInt(h["by"], 10, 64)
	if d := time.Duration(by) * time.Millisecond; d < step || d > step+2*time.Second {
		t.Fatalf("hold recorded %v (%v); want the step, %v", d, h, step)
	}
	ttl, err := rdb.PTTL(ctx, l.shards[0].clockKey()).Result()
	if err != nil || ttl < 10*time.Minute || ttl > 12*time.Minute {
		t.Fatalf("hold expires in %v (%v); want the hold asked for plus the step, 11m", ttl, err)
	}
	mu.Lock()
	if len(found) != 1 || found[0] < step {
		t.Errorf("steps reported %v; want the one found", found)
	}
	mu.Unlock()

	// Another process, which never read the clock before the step: the
	// hold is in Redis, for every Begin and Get.
	if b, err := other.Begin(ctx, leased, BeginArgs{Token: "t2"}); err != nil || b.Status != Busy {
		t.Fatalf("another process's Begin under the hold: %+v, %v; want Busy", b, err)
	}
	b, err = other.Begin(ctx, paid, BeginArgs{Token: "t3", Pay: true, PayAgainAfter: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if b.Record.PayMarked {
		t.Errorf("a pay marked 70 s ago on a clock that stepped a minute forward, paid again after 30 s: marked again; want not (10 s since, less the step)")
	}
	if b.Record.ClockHold < step {
		t.Errorf("Begin's record: clock hold %v; want the step, %v", b.Record.ClockHold, step)
	}
	if err := other.Settle(ctx, paid, "t3", Keep("")); err != nil {
		t.Fatal(err)
	}
	rec, err := other.Get(ctx, paid)
	if err != nil || rec == nil || rec.ClockHold < step {
		t.Fatalf("Get under the hold: %+v, %v; want its clock hold, %v", rec, err, step)
	}
	// The step is this process's base now: its next Begins find no other.
	if _, err := l.Begin(ctx, probe, BeginArgs{Token: "probe-after", NoCreate: true}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(found) != 1 {
		t.Errorf("steps reported %v; want one: the step, found once", found)
	}
	mu.Unlock()

	// An operator's absent for an order whose last create ended 70 s ago,
	// with a listing lag of 30 s: refused while the step is held.
	lost := Ref{Provider: "tencent", OrderNo: "STEP-ABSENT"}
	if _, err := l.Claim(ctx, lost, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, l.shardOf(lost).recordKey(lost), "state", "unknown", "may_exist", "1", "attempts", "1",
		"first_attempt", strconv.FormatInt(redisMs()-70_000, 10), "last_create", strconv.FormatInt(redisMs()-70_000, 10),
		"created", strconv.FormatInt(redisMs()-80_000, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	absent := ResolveArgs{As: ResolveAbsent, Note: "not in the console", By: "ops", ListingLag: 30 * time.Second}
	var refused *RefusedError
	if _, err := other.Resolve(ctx, lost, absent); !errors.As(err, &refused) || !strings.Contains(err.Error(), "listing lag") {
		t.Errorf("absent 70 s after the last create, a lag of 30 s, under a minute's hold: %v; want refused for the listing lag", err)
	}

	// Once the hold is over, leases and pays are judged on the clock.
	if err := rdb.Del(ctx, l.shards[0].clockKey()).Err(); err != nil {
		t.Fatal(err)
	}
	if b, err := other.Begin(ctx, leased, BeginArgs{Token: "t4"}); err != nil || b.Status != Began || b.Record.ClockHold != 0 {
		t.Fatalf("after the hold: %+v, %v; want the run-out lease taken, no hold", b, err)
	}
	if b, err := other.Begin(ctx, paid, BeginArgs{Token: "t5", Pay: true, PayAgainAfter: 30 * time.Second}); err != nil || !b.Record.PayMarked {
		t.Fatalf("after the hold, a pay marked over 70 s ago: %+v, %v; want it paid again", b.Record, err)
	}
	if _, err := other.Resolve(ctx, lost, absent); err != nil {
		t.Errorf("absent after the hold: %v; want it taken", err)
	}
}

// The expectation a Begin carries: none without a reading; from the
// newest reading, the time since on bootClock, with a tolerance that
// grows with it.
func TestClockExpectation(t *testing.T) {
	var c redisClock
	if got, _ := c.expect(0, time.Hour); got != "" {
		t.Fatalf("no reading: %q; want none", got)
	}
	r := time.UnixMilli(1_700_000_000_000)
	c.based(0, r, 10*time.Second)
	c.based(0, r.Add(-time.Hour), 5*time.Second) // an older reading, answered late: not the base
	if got, base := c.expect(0, 12*time.Second); got != "1700000002000 5002" || !base.Equal(r) {
		t.Errorf("2 s after the reading: %q, based on %v; want %q, on %v", got, base, "1700000002000 5002", r)
	}
	if got, _ := c.expect(0, 10*time.Second+time.Hour); got != "1700003600000 8600" {
		t.Errorf("an hour after the reading: %q; want %q (tolerance 5 s + 0.1 %%)", got, "1700003600000 8600")
	}
	if got, _ := c.expect(1, time.Hour); got != "" {
		t.Errorf("another shard: %q; want none", got)
	}
}

// Two steps forward within one hold (a failover onto a master a minute
// ahead, then onto another a minute ahead of that): a time stamped before
// both looks two minutes older, and the hold is their sum. The same step
// found by another process, whose reading predates the step's record, is
// counted once.
func TestClockStepsAddUpButNotTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := taskstest.StartRedis(t, nil)
	l := New(srv.Client(t), &Options{Durable: DurableOff})
	rdb := l.rdb
	key := l.shards[0].clockKey()
	leased := Ref{Provider: "tencent", OrderNo: "STEP2-LEASED"}
	if _, err := l.Claim(ctx, leased, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	ms := now.UnixMilli()
	// Stamped on the first master with 30 s left: on this (the third)
	// master's clock, two minutes ahead, it ran out 90 s ago.
	if err := rdb.HSet(ctx, l.shardOf(leased).recordKey(leased), "lease", "live-run", "lease_mark", "0",
		"lease_until", strconv.FormatInt(ms-120_000+30_000, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	// The first step, recorded on the second master (its clock a minute
	// behind this one's) a second before this process's reading of it.
	if err := rdb.HSet(ctx, key, "by", "60000", "until", strconv.FormatInt(ms+600_000, 10), "at", strconv.FormatInt(ms-61_000, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	stepClock(t, l, time.Minute) // read on the second master: a minute behind
	b, err := l.Begin(ctx, leased, BeginArgs{Token: "t1", NoCreate: true})
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != Busy {
		t.Errorf("a lease with 30 s left across two steps of a minute: %v; want Busy", b.Status)
	}
	by, err := rdb.HGet(ctx, key, "by").Int64()
	if err != nil || by < 120_000 || by > 122_000 {
		t.Errorf("hold recorded %d ms (%v); want both steps, 120000", by, err)
	}

	// One step, recorded just now by another process; this one read the
	// clock before it (on the old master, a minute behind).
	if err := rdb.HSet(ctx, key, "by", "60000", "until", strconv.FormatInt(ms+600_000, 10), "at", strconv.FormatInt(ms+1_000, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	stepClock(t, l, time.Minute)
	if _, err := l.Begin(ctx, leased, BeginArgs{Token: "t2", NoCreate: true}); err != nil {
		t.Fatal(err)
	}
	if by, err := rdb.HGet(ctx, key, "by").Int64(); err != nil || by < 60_000 || by > 62_000 {
		t.Errorf("the same step found again: hold %d ms (%v); want it once, 60000", by, err)
	}
}

// A step found on a Begin whose record gets more fields after it (a create
// whose run died: its last create moved to the end of its lease; a lookup
// within the window after a loss of the ledger's data) is recorded and
// reported all the same.
func TestClockStepReportedWhateverTheBeginWrote(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := taskstest.StartRedis(t, nil)
	var mu sync.Mutex
	var steps, holds []time.Duration
	l := New(srv.Client(t), &Options{Durable: DurableOff, OnClockStep: func(_ int, step, hold time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		steps, holds = append(steps, step), append(holds, hold)
	}})
	rdb := l.rdb
	if _, err := l.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	ms := now.UnixMilli()
	abandoned, looked := Ref{Provider: "tencent", OrderNo: "STEP-ABANDONED"}, Ref{Provider: "tencent", OrderNo: "STEP-LOSS"}
	for _, ref := range []Ref{abandoned, looked} {
		if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.HSet(ctx, l.shardOf(abandoned).recordKey(abandoned), "state", "submitting", "inflight", "1",
		"lease", "dead", "lease_mark", "1", "lease_until", strconv.FormatInt(ms-180_000, 10),
		"last_create", strconv.FormatInt(ms-200_000, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, l.shardOf(looked).recordKey(looked), "state", "unknown", "attempts", "1", "may_exist", "1",
		"last_create", strconv.FormatInt(ms-600_000, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, l.shards[0].epochKey(), "lost", strconv.FormatInt(ms-5_000, 10), "found", strconv.FormatInt(ms, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		ref  Ref
		args BeginArgs
	}{
		{abandoned, BeginArgs{Token: "a1", NoCreate: true}},
		{looked, BeginArgs{Token: "l1", LookFirst: time.Hour}},
	} {
		if err := rdb.Del(ctx, l.shards[0].clockKey()).Err(); err != nil {
			t.Fatal(err)
		}
		stepClock(t, l, time.Minute)
		b, err := l.Begin(ctx, c.ref, c.args)
		if err != nil {
			t.Fatal(err)
		}
		if b.Record.ClockHold < time.Minute {
			t.Errorf("%s: the record's clock hold %v; want the step, a minute", c.ref, b.Record.ClockHold)
		}
		mu.Lock()
		if len(steps) != i+1 || steps[i] < time.Minute || holds[i] < time.Minute {
			t.Errorf("%s: steps reported %v, holds %v; want this one, a minute", c.ref, steps, holds)
		}
		mu.Unlock()
	}
}

// A Begin that reaches Redis late (a network stall: TCP delivers it
// seconds after it was sent) finds Redis's clock later than expected by
// the delay; its reply, as late, accounts for it: no step is recorded,
// none reported.
func TestALateRequestIsNoClockStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := taskstest.StartRedis(t, nil)
	proxy := taskstest.StartProxy(t, srv.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ReadTimeout: 20 * time.Second, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	reported := 0
	l := New(rdb, &Options{Durable: DurableOff, OnClockStep: func(int, time.Duration, time.Duration) { reported++ }})
	ref := Ref{Provider: "tencent", OrderNo: "STEP-LATE"}
	if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Begin(ctx, ref, BeginArgs{Token: "a", NoCreate: true}); err != nil { // a reading
		t.Fatal(err)
	}
	if err := l.Settle(ctx, ref, "a", Release()); err != nil {
		t.Fatal(err)
	}
	proxy.DelayNext(7 * time.Second)
	b, err := l.Begin(ctx, ref, BeginArgs{Token: "b", NoCreate: true})
	if err != nil {
		t.Fatal(err)
	}
	if b.Record.ClockHold < 5*time.Second {
		t.Errorf("the late Begin's own record: clock hold %v; want the delay held for it, 7 s", b.Record.ClockHold)
	}
	if n, err := srv.Client(t).Exists(ctx, l.shards[0].clockKey()).Result(); err != nil || n != 0 {
		t.Errorf("a request 7 s late: a clock step recorded (%d, %v); want none", n, err)
	}
	if reported != 0 {
		t.Errorf("a request 7 s late: %d steps reported; want none", reported)
	}
}

// A step of the clock is held at least as long as a call marked before it
// may be judged by the listing lag of the process that marked it: here a
// process with a 1 h lag marks a create, and another with a lag of a few
// seconds finds a step and asks for a hold of 500 ms past it (the first
// process's later mark with no lag changes nothing). The hold lasts
// past the first one's lag from its mark (on the new clock, the step
// later), plus the tail a call may stay open after its mark, so that the
// record, whose mark_lag is 1 h, is judged with the step held after the
// second process's own hold would have run out.
func TestAClockStepIsHeldForTheLongestMarkedLag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := taskstest.StartRedis(t, nil)
	long := New(srv.Client(t), &Options{Durable: DurableOff})
	short := New(srv.Client(t), &Options{Durable: DurableOff})
	for _, l := range []*Ledger{long, short} {
		if _, err := l.Watch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ref := Ref{Provider: "tencent", OrderNo: "STEP-LONG"}
	if _, err := long.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	// ClockHold: as a worker's, its longest lag (whatever the provider)
	// and a call's tail.
	longHold := time.Hour + time.Minute
	b, err := long.Begin(ctx, ref, BeginArgs{Token: "create", LookFirst: time.Hour, ListingLag: time.Hour, ClockHold: longHold})
	if err != nil || !b.Record.InflightMarked {
		t.Fatalf("the 1h process's create: %+v, %v; want marked", b, err)
	}
	marked := b.Record.ReadAt
	if err := long.Settle(ctx, ref, "create", SetUnknown("timeout").WithMayExist(true)); err != nil {
		t.Fatal(err)
	}
	// The same process marks another order's create with a lag of none
	// (another provider's): that does not shorten what the first needs.
	other := Ref{Provider: "tencent", OrderNo: "STEP-SHORT"}
	if _, err := long.Claim(ctx, other, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	if b, err := long.Begin(ctx, other, BeginArgs{Token: "create2", LookFirst: time.Hour, ClockHold: longHold}); err != nil || !b.Record.InflightMarked {
		t.Fatalf("the second create: %+v, %v; want marked", b, err)
	}

	step := clockTolerance + time.Second // the least step found
	stepClock(t, short, step)
	probe := Ref{Provider: "tencent", OrderNo: "STEP-PROBE2"}
	if _, err := short.Claim(ctx, probe, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	tail := 5 * time.Second
	if _, err := short.Begin(ctx, probe, BeginArgs{Token: "p", NoCreate: true, LookFirst: time.Hour, ListingLag: 2 * time.Second, ClockHold: 500 * time.Millisecond, LostCallTail: tail}); err != nil {
		t.Fatal(err)
	}
	until, err := short.rdb.HGet(ctx, short.shards[0].clockKey(), "until").Int64()
	if err != nil {
		t.Fatalf("no step recorded: %v", err)
	}
	if want := marked.Add(time.Hour + step + tail); time.UnixMilli(until).Before(want) {
		t.Errorf("the step is held until %v; want at least %v: the 1h lag from the mark, the step later, plus the tail", time.UnixMilli(until).UTC(), want.UTC())
	}
	time.Sleep(step + time.Second) // past the hold the finder asked for: the step, and 500ms
	b, err = short.Begin(ctx, ref, BeginArgs{Token: "look", NoCreate: true, LookFirst: time.Hour, ListingLag: 2 * time.Second})
	if err != nil || b.Status != Began {
		t.Fatalf("the lookup's Begin: %+v, %v", b, err)
	}
	if b.Record.ClockHold < step || b.Record.MarkLag != time.Hour {
		t.Errorf("the 1h record read past the finder's own hold: clock hold %v, mark lag %v; want the step, %v, and 1h", b.Record.ClockHold, b.Record.MarkLag, step)
	}
}
