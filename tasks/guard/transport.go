package guard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/orderworker/orderworker/providers"
)

// maxReadWait is the longest a read (a poll, a lookup: a call that does
// not act at the provider) waits for its place under the rate limit, its
// deadline allowing. Acting calls (a create, a pay) wait up to half the
// time left to their deadline, reads at most this: reads over the limit
// can then never fill it so far ahead that an acting call (an Aliyun
// create has 8 s, so 4 s to wait) finds no place within its time, which
// would starve every create while polls go on. What an acting call waits
// comes off its own time: an Aliyun pay that waited 7.5 s of its 15 s has
// less than the documented 10 s left, and a late answer is then ambiguous
// (looked up, never paid again blind).
const maxReadWait = time.Second

// maxWaitNoDeadline is the longest an acting request whose context has no
// deadline waits for the rate limiter.
const maxWaitNoDeadline = time.Minute

// limitWait is how long a request may wait for its place under the rate
// limit: acting, a create or a pay (providers.Acting); deadline, when ok,
// its context's.
func limitWait(acting bool, deadline time.Time, ok bool) time.Duration {
	w := maxWaitNoDeadline
	if ok {
		w = time.Until(deadline) / 2
	}
	if !acting {
		w = min(w, maxReadWait)
	}
	return w
}

// errOwnLimit is in the error of a request this worker's own rate limit
// held back: not the provider's throttling (see breaker.throttled).
var errOwnLimit = errors.New("held back by this worker's rate limit")

// redisRetry is the RetryAfter of a request refused because the limiter
// could not be asked: the handler's own wait for Redis.
const redisRetry = 5 * time.Second

// Transport returns an http.RoundTripper that holds every request it
// carries to this process's rate for the provider, once the provider
// throttled its requests (see adaptive; none while the breakers are
// disabled), and to the provider's shared rate limit, then sends it
// through next (nil means providers.NewTransport()). With neither, it
// returns next itself. Each provider client is built on its own, so that
// every request it makes (each page of a lookup, a payment, a token fetch)
// counts.
//
// A request waits for its place under this process's rate as it does
// under the shared limit (below), the shared limit then asked with what
// is left of its wait.
//
// Before each request the transport reserves a place in the shared
// limiter, one Redis round trip, and waits until the place is due. It
// waits only as long as leaves the request at least half of the time to
// its context's deadline (a minute when the context has none): a request
// sent with nothing left of its deadline would time out after it was
// written, and a create would become Ambiguous. When the wait would be
// longer, or when Redis cannot be asked, nothing is reserved or sent: the
// request fails with a *providers.Error of code RateLimited whose
// RetryAfter says when to try again, which providers.Send passes on as the
// call's error, so the caller treats it like the provider's own throttling
// (no retry budget spent, no breaker failure). A context cancelled while
// waiting ends the wait with its error, also before anything is sent (the
// place it reserved stays spent).
func (g *Guard) Transport(provider string, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = providers.NewTransport()
	}
	if g.opts.FailureThreshold < 0 {
		if _, ok := g.limits[provider]; !ok {
			return next // no limit, and no rate of its own (see adaptive)
		}
	}
	return &transport{g: g, provider: provider, next: next}
}

// transport is a Transport for a limited provider.
type transport struct {
	g        *Guard
	provider string
	next     http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	fail := func(err error) (*http.Response, error) {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper closes the body, even on error
		}
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	deadline, has := ctx.Deadline()
	maxWait := limitWait(providers.Acting(ctx), deadline, has)
	var rate *adaptive
	held := false
	if t.g.opts.FailureThreshold >= 0 {
		// This process's own rate, once the provider throttled it. A
		// read may wait for one place at it, its deadline allowing: at
		// a rate under a request a second, a lookup's later pages would
		// otherwise never find a place within a second, and each lookup
		// fail after its first page. (One, not more: reads then keep
		// the next place within two intervals, so that a create, which
		// waits longer, still finds one ahead of them.)
		rate = &t.g.breaker(t.provider).rate
		var stretch time.Duration
		if !providers.Acting(ctx) {
			stretch = maxWaitNoDeadline
			if has {
				stretch = time.Until(deadline) / 2
			}
		}
		wait, ok := rate.reserve(t.g.now(), maxWait, stretch)
		if !ok || wait > 0 {
			// Held back, as by ORDERWORKER_RATE_LIMITS: counted once.
			t.g.metrics.waited(t.provider)
			held = true
		}
		if !ok {
			return fail(&providers.Error{Code: providers.RateLimited, Op: "rate limit " + t.provider,
				Message: fmt.Sprintf("over this worker's rate for %s, lowered since %s throttled its requests, for %s more, longer than the request may wait; request not sent",
					t.provider, t.provider, wait.Round(time.Millisecond)),
				RetryAfter: wait, Err: errOwnLimit})
		}
		if wait > 0 {
			if err := t.g.sleep(ctx, wait); err != nil {
				return fail(err)
			}
			maxWait = max(maxWait-wait, 0)
		}
	}
	if _, limited := t.g.limits[t.provider]; !limited {
		return t.send(req, rate)
	}
	wait, ok, err := t.g.reserve(ctx, t.provider, maxWait)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return fail(ctx.Err())
		}
		return fail(&providers.Error{Code: providers.RateLimited, Op: "rate limit " + t.provider,
			Message: "rate limiter unreachable; request not sent", RetryAfter: redisRetry, Err: fmt.Errorf("%w: %w", errOwnLimit, err)})
	}
	if wait > 0 && !held {
		t.g.metrics.waited(t.provider)
	}
	if !ok {
		return fail(&providers.Error{Code: providers.RateLimited, Op: "rate limit " + t.provider,
			Message:    fmt.Sprintf("over the rate limit for %s more, longer than the request may wait; request not sent", wait.Round(time.Millisecond)),
			RetryAfter: wait, Err: errOwnLimit})
	}
	if wait > 0 {
		if err := t.g.sleep(ctx, wait); err != nil {
			return fail(err)
		}
	}
	return t.send(req, rate)
}

// send sends req through next, counted under rate (nil: none) as sent
// now: what the provider's throttles are judged against (see adaptive).
func (t *transport) send(req *http.Request, rate *adaptive) (*http.Response, error) {
	if rate != nil {
		rate.sentNow(t.g.now())
	}
	return t.next.RoundTrip(req)
}

// CloseIdleConnections closes next's idle connections, for
// http.Client.CloseIdleConnections.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
