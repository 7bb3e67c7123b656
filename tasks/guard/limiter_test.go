package guard

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks/taskstest"
)

// TestLimiterSharedScriptClock drives the script's clock: two guards (two
// processes) sharing one Redis admit exactly Burst + Rate*window calls.
func TestLimiterSharedScriptClock(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	for _, tc := range []struct {
		name   string
		limit  Limit
		window time.Duration
		step   time.Duration
		// want is the exact count, or -1 for a bound only.
		want int
	}{
		{"20/s burst 5", Limit{Rate: 20, Burst: 5}, 10 * time.Second, 10 * time.Millisecond, 5 + 200},
		{"1/s burst 1", Limit{Rate: 1, Burst: 1}, 30 * time.Second, 100 * time.Millisecond, 1 + 30},
		{"0.5/s burst 3", Limit{Rate: 0.5, Burst: 3}, 60 * time.Second, 250 * time.Millisecond, 3 + 30},
		{"3/s burst 2", Limit{Rate: 3, Burst: 2}, 10 * time.Second, 7 * time.Millisecond, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "tencent/" + tc.name
			opts := &Options{Limits: map[string]Limit{key: tc.limit}}
			script := newClock()
			a, _ := newGuard(srv.Client(t), opts)
			b, _ := newGuard(srv.Client(t), opts)
			a.scriptNow, b.scriptNow = script.Now, script.Now
			admitted := 0
			for elapsed := time.Duration(0); elapsed <= tc.window; elapsed += tc.step {
				for range 3 {
					for _, g := range []*Guard{a, b} {
						if mustWait(t, g, key) == 0 {
							admitted++
						}
					}
				}
				script.Add(tc.step)
			}
			bound := float64(tc.limit.Burst) + tc.limit.Rate*tc.window.Seconds()
			if float64(admitted) > bound {
				t.Errorf("admitted %d calls in %s, over the bound %v", admitted, tc.window, bound)
			}
			if tc.want >= 0 && admitted != tc.want {
				t.Errorf("admitted %d calls in %s, want %d", admitted, tc.window, tc.want)
			}
			if tc.want < 0 && float64(admitted) < bound-2 {
				t.Errorf("admitted %d calls in %s, want about %v", admitted, tc.window, bound)
			}
		})
	}
}

// TestLimiterSharedRedisClock runs two guards (two processes) against
// Redis's own clock. The bounds hold however slow the machine is: the
// limiter can admit at most Burst + Rate*elapsed calls, and it must admit
// at least the burst and one more after a refill.
func TestLimiterSharedRedisClock(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	limit := Limit{Rate: 20, Burst: 4}
	opts := &Options{Limits: map[string]Limit{"aliyun": limit}}
	a, _ := newGuard(srv.Client(t), opts)
	b, _ := newGuard(srv.Client(t), opts)

	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(1500 * time.Millisecond)
	for _, g := range []*Guard{a, b, a, b} {
		wg.Go(func() {
			for time.Now().Before(stop) {
				d, err := g.Wait(context.Background(), "aliyun")
				if err != nil {
					t.Errorf("Wait: %v", err)
					return
				}
				if d == 0 {
					admitted.Add(1)
				} else if d > 50*time.Millisecond {
					t.Errorf("Wait = %v, over one emission interval (50ms)", d)
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	n := admitted.Load()
	bound := float64(limit.Burst) + limit.Rate*elapsed.Seconds() + 1 // +1: clock granularity
	t.Logf("admitted %d calls in %s (bound %.1f)", n, elapsed.Round(time.Millisecond), bound)
	if float64(n) > bound {
		t.Errorf("admitted %d calls in %s, over Burst + Rate*elapsed = %.1f", n, elapsed, bound)
	}
	if n < int64(limit.Burst)+1 {
		t.Errorf("admitted %d calls in %s, want at least the burst (%d) and one more", n, elapsed, limit.Burst)
	}
}

func TestLimiterWaitAndKeys(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	rdb := srv.Client(t)
	g, _ := newGuard(rdb, &Options{Limits: map[string]Limit{"tencent": {Rate: 2, Burst: 2}}})
	script := newClock()
	g.scriptNow = script.Now

	for i := range 2 {
		if d := mustWait(t, g, "tencent"); d != 0 {
			t.Fatalf("call %d within the burst waited %v", i, d)
		}
	}
	// Exhausted: the next call may go in one emission interval (500ms),
	// and refusals change nothing.
	for range 3 {
		if d := mustWait(t, g, "tencent"); d != 500*time.Millisecond {
			t.Fatalf("Wait after the burst = %v, want 500ms", d)
		}
	}
	script.Add(200 * time.Millisecond)
	if d := mustWait(t, g, "tencent"); d != 300*time.Millisecond {
		t.Fatalf("Wait 200ms later = %v, want 300ms", d)
	}
	script.Add(300 * time.Millisecond)
	if d := mustWait(t, g, "tencent"); d != 0 {
		t.Fatalf("Wait after the interval = %v, want 0", d)
	}

	keys, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "orderworker:{guard}:rate:tencent" {
		t.Errorf("keys = %q, want [orderworker:{guard}:rate:tencent]", keys)
	}
	ttl, err := rdb.PTTL(context.Background(), "orderworker:{guard}:rate:tencent").Result()
	if err != nil || ttl <= 0 || ttl > 2*time.Second {
		t.Errorf("PTTL = %v, %v; want the key to expire when idle (within 2s)", ttl, err)
	}
}

// TestLimiterAccountKey: a "provider/account" call is held to the
// account's limit and to the provider's.
func TestLimiterAccountKey(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	g, _ := newGuard(srv.Client(t), &Options{Limits: map[string]Limit{
		"tencent":   {Rate: 100, Burst: 3},
		"tencent/a": {Rate: 1, Burst: 2},
		"aliyun/b":  {Rate: 1, Burst: 1},
	}})
	script := newClock()
	g.scriptNow = script.Now

	for _, tc := range []struct {
		key  string
		wait bool
	}{
		{"tencent/a", false},
		{"tencent/a", false},
		{"tencent/a", true},  // the account's burst is spent
		{"tencent/b", false}, // no account limit; the provider's third
		{"tencent", true},    // the provider's burst is spent
		{"tencent/b", true},
		{"aliyun/b", false},
		{"aliyun/b", true},
		{"aliyun", false}, // no provider limit
		{"aliyun/c", false},
		{"unicloud", false},
	} {
		if got := mustWait(t, g, tc.key) > 0; got != tc.wait {
			t.Errorf("Wait(%q) waits = %v, want %v", tc.key, got, tc.wait)
		}
	}
	// A refused account call did not spend the provider's limit: 10ms
	// later the provider admits one call again.
	script.Add(10 * time.Millisecond)
	if d := mustWait(t, g, "tencent"); d != 0 {
		t.Errorf("Wait(tencent) after 10ms = %v, want 0", d)
	}
}

func TestLimiterNoLimit(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	g, _ := newGuard(srv.Client(t), &Options{Limits: map[string]Limit{
		"tencent": {Rate: 0, Burst: 5},  // no limit
		"aliyun":  {Rate: -1, Burst: 5}, // no limit
		"x":       {Rate: 1000},         // burst 0 means 1
	}})
	for range 100 {
		if mustWait(t, g, "tencent") != 0 || mustWait(t, g, "aliyun") != 0 {
			t.Fatal("a provider without a positive rate waited")
		}
	}
	if len(g.limits) != 1 || g.limits["x"].burst != "1" || g.limits["x"].interval != "1000" {
		t.Errorf("compiled limits = %+v", g.limits)
	}
}

// TestLimiterRedisDown: with Redis gone, a limited call reports the error
// (the handler waits for Redis) and an unlimited one still goes.
func TestLimiterRedisDown(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	g, _ := newGuard(srv.Client(t), &Options{Limits: map[string]Limit{"tencent": {Rate: 10, Burst: 1}}})
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if d, err := g.Wait(ctx, "tencent"); err == nil {
		t.Errorf("Wait(tencent) with Redis down = %v, nil; want an error", d)
	}
	if d, err := g.Wait(ctx, "aliyun"); d != 0 || err != nil {
		t.Errorf("Wait(aliyun) (unlimited) with Redis down = %v, %v; want 0, nil", d, err)
	}
}
