package tasks

import (
	"errors"
	"testing"
	"time"
)

// An order left for a person is looked up again once its record has not
// changed for HeldRecheck at first, then for a quarter of its age, at most
// a day: hourly for weeks, a held order's history (50 entries) kept only
// the looks, and the provider answered a lookup an hour per such order.
func TestHeldRecheckGrowsWithTheOrdersAge(t *testing.T) {
	r := &Reconciler{opts: ReconcilerOptions{HeldRecheck: time.Hour}}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		age, want time.Duration
	}{
		{10 * time.Minute, time.Hour},
		{4 * time.Hour, time.Hour},
		{8 * time.Hour, 2 * time.Hour},
		{48 * time.Hour, 12 * time.Hour},
		{30 * 24 * time.Hour, 24 * time.Hour},
	} {
		if got := r.heldRecheck(&Record{CreatedAt: now.Add(-c.age)}, now); got != c.want {
			t.Errorf("order %s old: looked up again after %s unchanged; want %s", c.age, got, c.want)
		}
	}
	// Looks over 30 days: a few dozen (fewer than a history holds), not 720.
	looks := 0
	created := now
	for at := now.Add(time.Hour); at.Before(now.Add(30 * 24 * time.Hour)); at = at.Add(r.heldRecheck(&Record{CreatedAt: created}, at)) {
		looks++
	}
	if looks >= 50 {
		t.Errorf("%d looks over 30 days; want a few dozen", looks)
	}
	t.Logf("%d looks over 30 days", looks)
	// A longer HeldRecheck is kept.
	long := &Reconciler{opts: ReconcilerOptions{HeldRecheck: 48 * time.Hour}}
	if got := long.heldRecheck(&Record{CreatedAt: now.Add(-100 * 24 * time.Hour)}, now); got != 48*time.Hour {
		t.Errorf("HeldRecheck 48h, order 100 days old: %s; want 48h", got)
	}
}

// No retry waits longer than MaxRetryDelay, whatever a provider's
// Retry-After or the backoff ask for: the reconciler takes a retry due
// further ahead for one timed on a fast clock.
func TestRetryDelayIsCapped(t *testing.T) {
	d := RetryDelay(Backoff{Base: time.Hour, Max: 100 * time.Hour})
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
}

var errTest = errors.New("a failure")
