package guard

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Limit is a rate limit: Rate HTTP requests per second on average, and up
// to Burst requests at once after a quiet spell.
type Limit struct {
	// Rate is requests per second. Zero or less means no limit; rates
	// over a million per second count as a million.
	Rate float64
	// Burst is how many requests may go at once. Values below 1 mean 1.
	Burst int
}

// Options configure a Guard. nil means defaults.
type Options struct {
	// Limits are the rate limits shared by every worker, by provider name.
	// Transport applies them to every HTTP request to the provider. A
	// provider without a limit is unlimited. Default none.
	Limits map[string]Limit
	// FailureThreshold is how many consecutive provider-down results open
	// a provider's breaker. Default 5; negative disables the breakers.
	FailureThreshold int
	// Cooldown is how long a breaker stays open before it lets trial
	// calls through. Default 30s.
	Cooldown time.Duration
	// HalfOpenCalls is how many trial calls a half-open breaker lets
	// through at once. Default 1.
	HalfOpenCalls int
	// TrialTimeout is how long a trial call may go unreported (no Done)
	// before its place is given to another. Default 1m.
	TrialTimeout time.Duration
	// Providers, and the providers named in Limits, are exported in
	// orderworker_breaker_state from the start (Providers in
	// orderworker_rate_limit_waits_total too, at zero); others appear
	// when first used.
	Providers []string
	// Registerer receives the metrics orderworker_breaker_state,
	// orderworker_rate_limit_waits_total, orderworker_throttle_cuts_total
	// and orderworker_throttle_rate, all labelled by provider. Default
	// nil: no metrics.
	Registerer prometheus.Registerer
	// Logger receives one line per breaker state change, and one per
	// cut of a throttled provider's rate undone (its throttles taken for
	// the provider's own, whatever the pace). Default slog.Default().
	Logger *slog.Logger
	// NowFunc is the breakers' clock. Default time.Now. The rate limiter
	// always uses Redis's clock.
	NowFunc func() time.Time
}

// Guard is a rate limiter shared through Redis, applied to each HTTP
// request by Transport, plus a circuit breaker per provider, consulted by
// the handler before each provider operation through Wait and Done. It
// implements tasks.Guard and is safe for concurrent use.
type Guard struct {
	rdb     redis.UniversalClient
	opts    Options
	limits  map[string]limit
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	mu       sync.Mutex
	breakers map[string]*breaker

	// scriptNow, when set (tests), replaces Redis's clock in the limiter.
	scriptNow func() time.Time
	// sleep waits d or until ctx is done (tests replace it).
	sleep func(ctx context.Context, d time.Duration) error
}

// New returns a Guard that keeps its rate limits in rdb (which may be nil
// when there are no Limits). opts may be nil; see Options for defaults.
func New(rdb redis.UniversalClient, opts *Options) *Guard {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.FailureThreshold == 0 {
		o.FailureThreshold = 5
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 30 * time.Second
	}
	if o.HalfOpenCalls <= 0 {
		o.HalfOpenCalls = 1
	}
	if o.TrialTimeout <= 0 {
		o.TrialTimeout = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.NowFunc == nil {
		o.NowFunc = time.Now
	}
	g := &Guard{
		rdb:      rdb,
		opts:     o,
		limits:   compileLimits(o.Limits),
		log:      o.Logger,
		now:      o.NowFunc,
		breakers: map[string]*breaker{},
		sleep:    sleep,
	}
	g.metrics = newMetrics(g, o.Registerer)
	for _, p := range o.Providers {
		g.breaker(p)
		g.metrics.initWaits(p)
	}
	for p := range o.Limits {
		g.breaker(p)
	}
	return g
}

// sleep waits d, or until ctx is done and returns its error.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Wait reports how long to wait before an operation on the provider (one
// Submit, Lookup, Pay or Prepare, however many requests it makes) may
// start: 0 means go ahead. It consults only the provider's circuit breaker:
// rate limits apply to each request, in Transport. It never sleeps and
// never touches Redis; its error is always nil.
//
// A breaker that is open answers with the rest of its cool-down; a
// half-open one lets its trial calls through and tells the others to wait.
func (g *Guard) Wait(_ context.Context, provider string) (time.Duration, error) {
	return g.breaker(provider).acquire(g.now()), nil
}

// Done reports the result of an operation that Wait let through: nil for
// success, else the provider's error.
func (g *Guard) Done(provider string, err error) {
	g.breaker(provider).done(g.now(), classify(err), err)
}

// Rate is the rate of requests a second this process allows itself to the
// provider now, since the provider throttled them (0: none; see Transport).
func (g *Guard) Rate(provider string) float64 {
	return g.breaker(provider).rate.current(g.now())
}

// State returns the provider's breaker state now.
func (g *Guard) State(provider string) State {
	return g.breaker(provider).state(g.now())
}

func (g *Guard) breaker(provider string) *breaker {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, ok := g.breakers[provider]
	if !ok {
		b = newBreaker(provider, &g.opts, g.log, g.metrics)
		g.breakers[provider] = b
	}
	return b
}

// snapshot returns the breakers, for the metrics collector.
func (g *Guard) snapshot() []*breaker {
	g.mu.Lock()
	defer g.mu.Unlock()
	bs := make([]*breaker, 0, len(g.breakers))
	for _, b := range g.breakers {
		bs = append(bs, b)
	}
	return bs
}
