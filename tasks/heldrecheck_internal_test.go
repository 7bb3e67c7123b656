package tasks

import (
	"errors"
	"testing"
	"time"
)

// An order left for a person is looked up again once its record has not
// changed for HeldRecheck at first, then for a quarter of the time since
// it was left, at most a day. Counted from the order's enqueue, as it was,
// an order left at a 24h deadline because its last lookup failed (a 5xx
// of the moment) waited six hours for its next look.
func TestHeldRecheckGrowsWithTheTimeHeld(t *testing.T) {
	r := &Reconciler{opts: ReconcilerOptions{HeldRecheck: DefaultHeldRecheck}}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name      string
		age, held time.Duration
		want      time.Duration
	}{
		{"just held, at a 24h deadline", 24 * time.Hour, 0, 15 * time.Minute},
		{"held 10m", 24 * time.Hour, 10 * time.Minute, 15 * time.Minute},
		{"held 4h", 28 * time.Hour, 4 * time.Hour, time.Hour},
		{"held 2 days", 3 * 24 * time.Hour, 48 * time.Hour, 12 * time.Hour},
		{"held 30 days", 31 * 24 * time.Hour, 30 * 24 * time.Hour, 24 * time.Hour},
		// Held before HeldAt was written: from its enqueue, as then.
		{"held before the field, 2 days old", 48 * time.Hour, -1, 12 * time.Hour},
	} {
		rec := &Record{CreatedAt: now.Add(-c.age)}
		if c.held >= 0 {
			rec.HeldAt = now.Add(-c.held)
		}
		if got := r.heldRecheck(rec, now); got != c.want {
			t.Errorf("%s: looked up again after %s unchanged; want %s", c.name, got, c.want)
		}
	}
	// Looks over 30 days held, as the reconciler's sweeps (a minute apart)
	// judge them, each at its own time: about fifty, most in the first
	// days, not 2,880 (one every quarter of an hour).
	looks, firstDay := 0, 0
	held := &Record{CreatedAt: now.Add(-24 * time.Hour), HeldAt: now}
	last := now
	for at := now; at.Before(now.Add(30 * 24 * time.Hour)); at = at.Add(time.Minute) {
		if at.Sub(last) >= r.heldRecheck(held, at) {
			looks++
			last = at
			if at.Before(now.Add(24 * time.Hour)) {
				firstDay++
			}
		}
	}
	if looks > 55 || firstDay < 10 {
		t.Errorf("%d looks over 30 days, %d in the first; want about fifty, most early", looks, firstDay)
	}
	t.Logf("%d looks over 30 days held, %d in the first day", looks, firstDay)
	// A longer HeldRecheck is kept.
	long := &Reconciler{opts: ReconcilerOptions{HeldRecheck: 48 * time.Hour}}
	if got := long.heldRecheck(&Record{CreatedAt: now.Add(-100 * 24 * time.Hour), HeldAt: now.Add(-99 * 24 * time.Hour)}, now); got != 48*time.Hour {
		t.Errorf("HeldRecheck 48h, order held 99 days: %s; want 48h", got)
	}
}

// No retry waits longer than MaxRetryDelay, whatever a provider's
// Retry-After or the backoff ask for: the reconciler takes a retry due
// further ahead for one timed on a fast clock.
func TestRetryDelayIsCapped(t *testing.T) {
	// The jitter's top: a backoff is random in [0, ceiling], so the test
	// asks for the ceiling itself (with the default jitter a delay under
	// the cap would come one run in a hundred).
	top := func(n int64) int64 { return n }
	d := RetryDelay(Backoff{Base: time.Hour, Max: 100 * time.Hour, Rand: top})
	for _, c := range []struct {
		name string
		err  error
		want time.Duration
	}{
		{"a provider's Retry-After of two days", &retryError{delay: 48 * time.Hour}, MaxRetryDelay},
		{"a wait of a minute", &retryError{delay: time.Minute}, time.Minute},
		{"a backoff of many hours", errTest, MaxRetryDelay},
	} {
		if got := d(10, c.err, nil); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	// With the default jitter no delay passes the cap either.
	jittered := RetryDelay(Backoff{Base: time.Hour, Max: 100 * time.Hour})
	for i := 0; i < 1000; i++ {
		if got := jittered(10, errTest, nil); got < 0 || got > MaxRetryDelay {
			t.Fatalf("a jittered backoff of many hours: %s, want at most %s", got, MaxRetryDelay)
		}
	}
}

var errTest = errors.New("a failure")
