package guard

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/orderworker/orderworker/providers"
)

// State is a circuit breaker's state. Its value is the value of the
// orderworker_breaker_state gauge.
type State int

const (
	// Closed: calls go through.
	Closed State = 0
	// HalfOpen: a few trial calls go through to see whether the provider
	// is back.
	HalfOpen State = 1
	// Open: no calls go through until the cool-down ends.
	Open State = 2
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// outcome is what a call's result tells the breaker.
type outcome int

const (
	ignored outcome = iota // says nothing about whether the provider is up
	success
	failure // the provider is down
)

// classify sorts a call's result for the breaker: see the package doc.
func classify(err error) outcome {
	if err == nil {
		return success
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, providers.ErrNoNews) || errors.Is(err, errOwnLimit) {
		// The worker cancelled the call (shutdown), the provider
		// answered a read in a way that could not be used, or this
		// worker's own limits held a request of it back (whatever the
		// provider client made of that): no news of the provider.
		return ignored
	}
	switch providers.CodeOf(err) {
	case providers.Unavailable, providers.Ambiguous, providers.Unknown:
		return failure
	}
	return ignored
}

// breaker is one provider's circuit breaker, local to this process.
type breaker struct {
	provider string
	opts     *Options
	log      *slog.Logger
	metrics  *metrics

	mu       sync.Mutex
	st       State
	failures int         // closed: consecutive provider-down results
	until    time.Time   // open: end of the cool-down
	trials   []time.Time // half-open: deadlines of the trials in flight
	// rate is this process's rate of requests to the provider once it
	// throttled them (see adaptive).
	rate adaptive
}

// throttled reports whether err is the provider's throttling (not this
// worker's own rate limit), with the wait the provider asked for.
func throttled(err error) (time.Duration, bool) {
	if err == nil || errors.Is(err, errOwnLimit) {
		return 0, false
	}
	if providers.CodeOf(err) != providers.RateLimited && !errors.Is(err, providers.ErrThrottled) {
		return 0, false
	}
	var pe *providers.Error
	if errors.As(err, &pe) {
		return pe.RetryAfter, true
	}
	return 0, true
}

func newBreaker(provider string, opts *Options, log *slog.Logger, m *metrics) *breaker {
	b := &breaker{provider: provider, opts: opts, log: log, metrics: m}
	m.setState(provider, Closed)
	return b
}

func (b *breaker) disabled() bool { return b.opts.FailureThreshold < 0 }

// probeWait is what a half-open breaker with no free trial place tells
// callers to wait: a tenth of the cool-down, at least a second.
func (b *breaker) probeWait() time.Duration { return max(time.Second, b.opts.Cooldown/10) }

// acquire asks whether a call may go now: 0, or how long to wait. In
// half-open, a call it lets through takes a trial place, freed by its
// result (done) or after TrialTimeout.
func (b *breaker) acquire(now time.Time) time.Duration {
	if b.disabled() {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	switch b.st {
	case Closed:
		return 0
	case Open:
		return b.until.Sub(now)
	}
	if len(b.trials) < b.opts.HalfOpenCalls {
		b.trials = append(b.trials, now.Add(b.opts.TrialTimeout))
		return 0
	}
	wait := b.probeWait()
	for _, deadline := range b.trials {
		wait = min(wait, deadline.Sub(now))
	}
	return wait
}

// done records a call's outcome; err is its error, for throttling.
func (b *breaker) done(now time.Time, o outcome, err error) {
	if b.disabled() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	switch after, ok := throttled(err); {
	case ok:
		// The provider throttled: this process's requests to it go at
		// a rate it cuts now and raises while no throttle comes (see
		// adaptive). The breaker's state is left alone.
		if b.rate.throttled(now, after) {
			b.metrics.cut(b.provider)
		}
	case errors.Is(err, errOwnLimit) || errors.Is(err, context.Canceled):
		// Never sent (this worker's own limits held it back), or
		// cancelled: nothing the provider said.
	default:
		// Any other answer (a success, a refusal, a failure): the
		// provider took the request. A failure counts as refused, with
		// the throttles, when a trial judges a cut: a provider shedding
		// load partly with 5xx, partly with throttles, throttles for the
		// pace. The answer may end a trial's span, and cut.
		if b.rate.answered(now, o != failure) {
			b.metrics.cut(b.provider)
		}
	}
	if share, ok := b.rate.undoneShare(); ok {
		b.log.Info("provider throttles a share of requests whatever the pace: the rate's last cut is undone",
			"provider", b.provider, "throttled_share", math.Round(share*100)/100, "kept_for", adaptiveNoiseFor.String())
	}
	switch b.st {
	case Closed:
		switch o {
		case success:
			b.failures = 0
		case failure:
			b.failures++
			if b.failures >= b.opts.FailureThreshold {
				b.open(now, "after consecutive provider-down results")
			}
		}
	case Open:
		// A call that started before the breaker opened: old news.
	case HalfOpen:
		switch o {
		case success:
			b.set(Closed, "a call succeeded")
			b.failures, b.trials = 0, nil
		case failure:
			b.open(now, "a trial call failed")
		default:
			if n := len(b.trials); n > 0 {
				b.trials = b.trials[1:]
			}
		}
	}
}

// state returns the state now.
func (b *breaker) state(now time.Time) State {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	return b.st
}

// advance applies the transitions time makes: open to half-open after the
// cool-down, and forgetting trials that outlived TrialTimeout. b.mu is held.
func (b *breaker) advance(now time.Time) {
	switch b.st {
	case Open:
		if !now.Before(b.until) {
			b.trials = nil
			b.set(HalfOpen, "cool-down over; letting trial calls through")
		}
	case HalfOpen:
		kept := b.trials[:0]
		for _, deadline := range b.trials {
			if now.Before(deadline) {
				kept = append(kept, deadline)
			}
		}
		b.trials = kept
	}
}

// open opens the breaker for a cool-down. b.mu is held.
func (b *breaker) open(now time.Time, why string) {
	b.until = now.Add(b.opts.Cooldown)
	b.failures, b.trials = 0, nil
	b.set(Open, why)
}

// set changes the state, logs it and updates the gauge. b.mu is held.
func (b *breaker) set(s State, why string) {
	if s == b.st {
		return
	}
	from := b.st
	b.st = s
	b.metrics.setState(b.provider, s)
	level := slog.LevelInfo
	if s == Open {
		level = slog.LevelWarn
	}
	b.log.Log(context.Background(), level, "circuit breaker "+s.String(), "provider", b.provider, "from", from.String(), "reason", why, "cooldown", b.opts.Cooldown)
}
