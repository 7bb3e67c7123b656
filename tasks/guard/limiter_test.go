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
// processes) sharing one Redis admit exactly Burst + Rate*window requests.
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
			provider := tc.name
			opts := &Options{Limits: map[string]Limit{provider: tc.limit}}
			script := newClock()
			a, _ := newGuard(srv.Client(t), opts)
			b, _ := newGuard(srv.Client(t), opts)
			a.scriptNow, b.scriptNow = script.Now, script.Now
			admitted := 0
			for elapsed := time.Duration(0); elapsed <= tc.window; elapsed += tc.step {
				for range 3 {
					for _, g := range []*Guard{a, b} {
						if mustLimit(t, g, provider) == 0 {
							admitted++
						}
					}
				}
				script.Add(tc.step)
			}
			bound := float64(tc.limit.Burst) + tc.limit.Rate*tc.window.Seconds()
			if float64(admitted) > bound {
				t.Errorf("admitted %d requests in %s, over the bound %v", admitted, tc.window, bound)
			}
			if tc.want >= 0 && admitted != tc.want {
				t.Errorf("admitted %d requests in %s, want %d", admitted, tc.window, tc.want)
			}
			if tc.want < 0 && float64(admitted) < bound-2 {
				t.Errorf("admitted %d requests in %s, want about %v", admitted, tc.window, bound)
			}
		})
	}
}

// TestLimiterSharedRedisClock runs two guards (two processes) against
// Redis's own clock. The bounds hold however slow the machine is: the
// limiter can admit at most Burst + Rate*elapsed requests, and it must
// admit at least the burst and one more after a refill.
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
				d, ok, err := g.reserve(context.Background(), "aliyun", 0)
				if err != nil {
					t.Errorf("reserve: %v", err)
					return
				}
				if ok {
					admitted.Add(1)
				} else if d > 50*time.Millisecond {
					t.Errorf("reserve = %v, over one emission interval (50ms)", d)
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	n := admitted.Load()
	bound := float64(limit.Burst) + limit.Rate*elapsed.Seconds() + 1 // +1: clock granularity
	t.Logf("admitted %d requests in %s (bound %.1f)", n, elapsed.Round(time.Millisecond), bound)
	if float64(n) > bound {
		t.Errorf("admitted %d requests in %s, over Burst + Rate*elapsed = %.1f", n, elapsed, bound)
	}
	if n < int64(limit.Burst)+1 {
		t.Errorf("admitted %d requests in %s, want at least the burst (%d) and one more", n, elapsed, limit.Burst)
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
		if d := mustLimit(t, g, "tencent"); d != 0 {
			t.Fatalf("request %d within the burst waited %v", i, d)
		}
	}
	// Exhausted: the next request may go in one emission interval
	// (500ms), and refusals change nothing.
	for range 3 {
		if d := mustLimit(t, g, "tencent"); d != 500*time.Millisecond {
			t.Fatalf("wait after the burst = %v, want 500ms", d)
		}
	}
	script.Add(200 * time.Millisecond)
	if d := mustLimit(t, g, "tencent"); d != 300*time.Millisecond {
		t.Fatalf("wait 200ms later = %v, want 300ms", d)
	}
	script.Add(300 * time.Millisecond)
	if d := mustLimit(t, g, "tencent"); d != 0 {
		t.Fatalf("wait after the interval = %v, want 0", d)
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

// TestLimiterReserve: a request willing to wait gets the next place and
// counts against the limit at once; one that would have to wait longer
// than it will changes nothing.
func TestLimiterReserve(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	g, _ := newGuard(srv.Client(t), &Options{Limits: map[string]Limit{"tencent": {Rate: 2, Burst: 1}}}) // every 500ms
	script := newClock()
	g.scriptNow = script.Now
	ms := time.Millisecond
	for i, tc := range []struct {
		advance, maxWait, wait time.Duration
		ok                     bool
	}{
		{0, 0, 0, true},
		{0, 0, 500 * ms, false},
		{0, 499 * ms, 500 * ms, false},
		{0, 500 * ms, 500 * ms, true},   // the place at +500ms
		{0, time.Hour, 1000 * ms, true}, // the next, at +1s
		{0, 0, 1500 * ms, false},        // two places are taken
		{1200 * ms, 0, 300 * ms, false}, // time passes
		{300 * ms, 0, 0, true},          // the next place is now
		{0, time.Hour, 500 * ms, true},
	} {
		script.Add(tc.advance)
		wait, ok, err := g.reserve(context.Background(), "tencent", tc.maxWait)
		if err != nil || wait != tc.wait || ok != tc.ok {
			t.Fatalf("step %d: reserve(max %s) = %s, %v, %v; want %s, %v", i, tc.maxWait, wait, ok, err, tc.wait, tc.ok)
		}
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
		if mustLimit(t, g, "tencent") != 0 || mustLimit(t, g, "aliyun") != 0 {
			t.Fatal("a provider without a positive rate waited")
		}
	}
	if len(g.limits) != 1 || g.limits["x"].burst != "1" || g.limits["x"].interval != "1000" {
		t.Errorf("compiled limits = %+v", g.limits)
	}
}

// TestLimiterRedisDown: with Redis gone, a limited provider's request
// gets the error (and the transport refuses it) and an unlimited one still
// goes.
func TestLimiterRedisDown(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	g, _ := newGuard(srv.Client(t), &Options{Limits: map[string]Limit{"tencent": {Rate: 10, Burst: 1}}})
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if d, ok, err := g.reserve(ctx, "tencent", time.Second); err == nil || ok {
		t.Errorf("reserve(tencent) with Redis down = %v, %v, nil; want an error", d, ok)
	}
	if d, ok, err := g.reserve(ctx, "aliyun", 0); d != 0 || !ok || err != nil {
		t.Errorf("reserve(aliyun) (unlimited) with Redis down = %v, %v, %v; want 0, true, nil", d, ok, err)
	}
}
