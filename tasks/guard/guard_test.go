package guard

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

var _ tasks.Guard = (*Guard)(nil)

// clock is a settable clock for the breakers and the limiter script.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newGuard returns a Guard on rdb with a fake breaker clock and a quiet
// logger; opts may be nil.
func newGuard(rdb redis.UniversalClient, opts *Options) (*Guard, *clock) {
	c := newClock()
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.NowFunc == nil {
		o.NowFunc = c.Now
	}
	if o.Logger == nil {
		o.Logger = quiet
	}
	return New(rdb, &o), c
}

func mustWait(t *testing.T, g *Guard, provider string) time.Duration {
	t.Helper()
	d, err := g.Wait(context.Background(), provider)
	if err != nil {
		t.Fatalf("Wait(%q): %v", provider, err)
	}
	return d
}

// mustLimit asks the limiter for a place for a request that waits for
// none: 0 means the request may go and was counted, else how long until a
// place would be free (and nothing was counted).
func mustLimit(t *testing.T, g *Guard, provider string) time.Duration {
	t.Helper()
	d, ok, err := g.reserve(context.Background(), provider, 0)
	if err != nil {
		t.Fatalf("reserve(%q): %v", provider, err)
	}
	if ok != (d == 0) {
		t.Fatalf("reserve(%q, 0) = %v, %v: a place must be granted exactly when it is free now", provider, d, ok)
	}
	return d
}

func perr(code providers.Code) error {
	return &providers.Error{Code: code, Op: "test call", Message: code.String()}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	g := New(nil, nil)
	o := g.opts
	if o.FailureThreshold != 5 || o.Cooldown != 30*time.Second || o.HalfOpenCalls != 1 || o.TrialTimeout != time.Minute || o.Logger == nil || o.NowFunc == nil {
		t.Errorf("defaults = %+v", o)
	}
	// No limits: Wait never touches Redis (there is none here).
	if d, err := g.Wait(context.Background(), "tencent"); d != 0 || err != nil {
		t.Errorf("Wait without limits = %v, %v; want 0, nil", d, err)
	}
	g.Done("tencent", nil)
}

// gather returns the values of the named metric family in reg by the
// provider label, and fails t unless the family has the wanted type.
func gather(t *testing.T, reg prometheus.Gatherer, name string, typ dto.MetricType) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		if mf.GetType() != typ || mf.GetHelp() == "" {
			t.Errorf("%s: type %v, help %q; want %v with help", name, mf.GetType(), mf.GetHelp(), typ)
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "provider" {
				t.Errorf("%s: labels %v, want provider only", name, m.GetLabel())
				continue
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[m.GetLabel()[0].GetValue()] = v
		}
	}
	return got
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	reg := prometheus.NewRegistry()
	g, c := newGuard(srv.Client(t), &Options{
		Registerer:       reg,
		Providers:        []string{"aliyun", "tencent"},
		Limits:           map[string]Limit{"unicloud": {Rate: 1, Burst: 2}},
		FailureThreshold: 2,
		Cooldown:         10 * time.Second,
	})
	script := newClock()
	g.scriptNow = script.Now

	check := func(step string, want map[string]State) {
		t.Helper()
		got := gather(t, reg, "orderworker_breaker_state", dto.MetricType_GAUGE)
		wantValues := map[string]float64{}
		for p, s := range want {
			wantValues[p] = float64(s)
		}
		if !maps.Equal(got, wantValues) {
			t.Errorf("%s: orderworker_breaker_state = %v, want %v", step, got, wantValues)
		}
	}
	// Configured providers and limited ones are exported from the start.
	check("start", map[string]State{"aliyun": Closed, "tencent": Closed, "unicloud": Closed})

	g.Done("tencent", perr(providers.Unavailable))
	g.Done("tencent", perr(providers.Ambiguous))
	check("opened", map[string]State{"aliyun": Closed, "tencent": Open, "unicloud": Closed})

	// The cool-down ends with no order asking: the scrape shows half-open.
	c.Add(10 * time.Second)
	check("cool-down over", map[string]State{"aliyun": Closed, "tencent": HalfOpen, "unicloud": Closed})

	if d := mustWait(t, g, "tencent"); d != 0 {
		t.Fatalf("trial Wait = %v, want 0", d)
	}
	g.Done("tencent", nil)
	check("closed", map[string]State{"aliyun": Closed, "tencent": Closed, "unicloud": Closed})

	// Rate limit waits count requests: a burst of 2 goes at once, the
	// next 3 wait for their places, and one whose deadline is too near
	// for its place is refused: 4 waits.
	up := newUpstream(t)
	sleeps := fakeSleep(g, script)
	hc := &http.Client{Transport: g.Transport("unicloud", nil)}
	for i := range 5 {
		if err := get(context.Background(), hc, up.URL); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := get(ctx, hc, up.URL); providers.CodeOf(err) != providers.RateLimited {
		t.Errorf("request with a 100ms deadline, its place 1s away: %v, want rate_limited", err)
	}
	if n, slept := up.count(), sleeps.total(); n != 5 || slept != 3*time.Second {
		t.Errorf("upstream got %d requests after %s of waits, want 5 after 3s", n, slept)
	}
	waits := func(step string, want map[string]float64) {
		t.Helper()
		if got := gather(t, reg, "orderworker_rate_limit_waits_total", dto.MetricType_COUNTER); !maps.Equal(got, want) {
			t.Errorf("%s: orderworker_rate_limit_waits_total = %v, want %v", step, got, want)
		}
	}
	waits("after the burst", map[string]float64{"aliyun": 0, "tencent": 0, "unicloud": 4}) // Providers from the start, at zero
	// An open breaker's wait is not a rate limit wait.
	g.Done("aliyun", perr(providers.Unavailable))
	g.Done("aliyun", perr(providers.Unavailable))
	if d := mustWait(t, g, "aliyun"); d != 10*time.Second {
		t.Errorf("Wait with aliyun open = %v, want 10s", d)
	}
	waits("breaker open", map[string]float64{"aliyun": 0, "tencent": 0, "unicloud": 4})
	check("aliyun open", map[string]State{"aliyun": Open, "tencent": Closed, "unicloud": Closed})
}

func TestNoRegisterer(t *testing.T) {
	t.Parallel()
	g, _ := newGuard(nil, &Options{FailureThreshold: 1})
	g.Done("tencent", perr(providers.Unavailable))
	if g.metrics != nil || g.State("tencent") != Open {
		t.Errorf("metrics = %v, state = %v; want nil, open", g.metrics, g.State("tencent"))
	}
}

// TestConcurrent exercises every path at once for the race detector.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	g, c := newGuard(srv.Client(t), &Options{
		Registerer:       prometheus.NewRegistry(),
		Limits:           map[string]Limit{"tencent": {Rate: 1000, Burst: 10}},
		FailureThreshold: 3,
		Cooldown:         time.Second,
		HalfOpenCalls:    2,
	})
	up := newUpstream(t)
	hc := &http.Client{Transport: g.Transport("tencent", nil)}
	errs := []error{nil, perr(providers.Unavailable), perr(providers.InvalidArgument), errors.New("boom"), context.Canceled}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				provider := []string{"tencent", "aliyun"}[(w+i)%2]
				if d, err := g.Wait(context.Background(), provider); err != nil {
					t.Errorf("Wait: %v", err)
					return
				} else if d == 0 {
					if provider == "tencent" && i%4 == 0 {
						if err := get(context.Background(), hc, up.URL); err != nil {
							t.Errorf("request: %v", err)
							return
						}
					}
					g.Done(provider, errs[(w*7+i)%len(errs)])
				}
				if i%10 == 0 {
					c.Add(300 * time.Millisecond)
					_ = g.State("tencent")
				}
			}
		})
	}
	wg.Wait()
}

// Reads with long deadlines (polls, lookups: 10 s) and creates with short
// ones (an Aliyun create: 3 s) share one limit. Were each to wait up to
// half its deadline, the reads, over the limit, would keep it 5 s ahead,
// and no create would ever find a place within its 1.5 s: reads wait at
// most maxReadWait, acting calls half their time, so the creates find
// places while the reads over the limit are refused (and retried).
func TestCreatesGetPlacesBeforeReads(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	const p = "aliyun"
	g, _ := newGuard(srv.Client(t), &Options{Limits: map[string]Limit{p: {Rate: 10, Burst: 10}}})
	script := newClock()
	g.scriptNow = script.Now
	ctx := context.Background()
	start := time.Now()
	poll, create := limitWait(false, start.Add(10*time.Second), true), limitWait(true, start.Add(3*time.Second), true)
	if poll >= create {
		t.Fatalf("a poll may wait %s, a create %s; want the create longer", poll, create)
	}
	if w := limitWait(false, time.Time{}, false); w != maxReadWait {
		t.Errorf("a read without a deadline waits up to %s, want %s", w, maxReadWait)
	}
	var creates, tried int
	step := 50 * time.Millisecond // 20 polls a second against a limit of 10
	for i := range int(60 * time.Second / step) {
		if _, _, err := g.reserve(ctx, p, poll); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 { // a create every 500 ms
			tried++
			if _, ok, err := g.reserve(ctx, p, create); err != nil {
				t.Fatal(err)
			} else if ok {
				creates++
			}
		}
		script.Add(step)
	}
	if creates != tried {
		t.Errorf("%d of %d creates found a place under the limit; want all (polls over the limit must not starve them)", creates, tried)
	}
}
