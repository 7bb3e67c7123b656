package guard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	timeout := &net.OpError{Op: "read", Err: context.DeadlineExceeded}
	for _, tc := range []struct {
		name string
		err  error
		want outcome
	}{
		{"nil", nil, success},
		{"unavailable", perr(providers.Unavailable), failure},
		{"ambiguous", perr(providers.Ambiguous), failure},
		{"unknown code", perr(providers.Unknown), failure},
		{"plain error", errors.New("boom"), failure},
		{"deadline", context.DeadlineExceeded, failure},
		{"wrapped timeout", fmt.Errorf("submit: %w", timeout), failure},
		{"wrapped unavailable", fmt.Errorf("submit: %w", perr(providers.Unavailable)), failure},
		{"invalid argument", perr(providers.InvalidArgument), ignored},
		{"unauthenticated", perr(providers.Unauthenticated), ignored},
		{"permission denied", perr(providers.PermissionDenied), ignored},
		{"failed precondition", perr(providers.FailedPrecondition), ignored},
		{"rate limited", perr(providers.RateLimited), ignored},
		{"not found", perr(providers.NotFound), ignored},
		{"canceled", context.Canceled, ignored},
		{"no news (a read answered unusably)", providers.ErrNoNews, ignored},
		{"no news, wrapped", fmt.Errorf("lookup: %w", providers.ErrNoNews), ignored},
		{"canceled in transport", &providers.Error{Code: providers.Unavailable, Op: "x", Err: context.Canceled}, ignored},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%s) = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestBreakerLifecycle(t *testing.T) {
	t.Parallel()
	g, c := newGuard(nil, &Options{FailureThreshold: 3, Cooldown: 30 * time.Second})

	// Failures open it only when consecutive: a success resets the count.
	g.Done("tencent", perr(providers.Unavailable))
	g.Done("tencent", perr(providers.Ambiguous))
	g.Done("tencent", nil)
	g.Done("tencent", perr(providers.Unavailable))
	g.Done("tencent", perr(providers.Unavailable))
	if s := g.State("tencent"); s != Closed {
		t.Fatalf("after 2 consecutive failures: %v, want closed", s)
	}
	if d := mustWait(t, g, "tencent"); d != 0 {
		t.Fatalf("closed Wait = %v, want 0", d)
	}
	g.Done("tencent", perr(providers.Unknown))
	if s := g.State("tencent"); s != Open {
		t.Fatalf("after 3 consecutive failures: %v, want open", s)
	}

	// Open: orders wait out the rest of the cool-down.
	if d := mustWait(t, g, "tencent"); d != 30*time.Second {
		t.Errorf("open Wait = %v, want 30s", d)
	}
	c.Add(12 * time.Second)
	if d := mustWait(t, g, "tencent"); d != 18*time.Second {
		t.Errorf("open Wait 12s later = %v, want 18s", d)
	}
	// Other providers are not affected.
	if d := mustWait(t, g, "aliyun"); d != 0 {
		t.Errorf("aliyun Wait = %v, want 0", d)
	}
	// Late results of calls made before it opened change nothing.
	g.Done("tencent", nil)
	if s := g.State("tencent"); s != Open {
		t.Fatalf("after a late success while open: %v, want open", s)
	}

	// Half-open after the cool-down: one trial goes, the rest wait.
	c.Add(18 * time.Second)
	if s := g.State("tencent"); s != HalfOpen {
		t.Fatalf("after the cool-down: %v, want half-open", s)
	}
	if d := mustWait(t, g, "tencent"); d != 0 {
		t.Fatalf("first half-open Wait = %v, want 0 (a trial)", d)
	}
	if d := mustWait(t, g, "tencent"); d != 3*time.Second {
		t.Errorf("second half-open Wait = %v, want 3s (a tenth of the cool-down)", d)
	}

	// A failed trial opens it again for a full cool-down.
	g.Done("tencent", perr(providers.Unavailable))
	if s := g.State("tencent"); s != Open {
		t.Fatalf("after a failed trial: %v, want open", s)
	}
	if d := mustWait(t, g, "tencent"); d != 30*time.Second {
		t.Errorf("re-opened Wait = %v, want 30s", d)
	}

	// A successful trial closes it.
	c.Add(30 * time.Second)
	if d := mustWait(t, g, "tencent"); d != 0 {
		t.Fatalf("half-open Wait = %v, want 0", d)
	}
	g.Done("tencent", nil)
	if s := g.State("tencent"); s != Closed {
		t.Fatalf("after a successful trial: %v, want closed", s)
	}
	for range 5 {
		if d := mustWait(t, g, "tencent"); d != 0 {
			t.Fatalf("closed Wait = %v, want 0", d)
		}
	}
	// The failure count starts over.
	g.Done("tencent", perr(providers.Unavailable))
	g.Done("tencent", perr(providers.Unavailable))
	if s := g.State("tencent"); s != Closed {
		t.Fatalf("2 failures after closing: %v, want closed", s)
	}
}

// TestBreakerIgnoresOrderErrors: errors about one order, credentials,
// throttling or our own cancellation neither open the breaker nor reset
// its count.
func TestBreakerIgnoresOrderErrors(t *testing.T) {
	t.Parallel()
	g, c := newGuard(nil, &Options{FailureThreshold: 2, Cooldown: time.Minute})
	others := []error{
		perr(providers.InvalidArgument), perr(providers.Unauthenticated), perr(providers.NotFound),
		perr(providers.RateLimited), perr(providers.PermissionDenied), perr(providers.FailedPrecondition),
		context.Canceled,
	}
	for range 10 {
		for _, err := range others {
			g.Done("unicloud", err)
		}
	}
	if s := g.State("unicloud"); s != Closed {
		t.Fatalf("after 70 order-level errors: %v, want closed", s)
	}
	g.Done("unicloud", perr(providers.Unavailable))
	for _, err := range others {
		g.Done("unicloud", err)
	}
	g.Done("unicloud", perr(providers.Ambiguous))
	if s := g.State("unicloud"); s != Open {
		t.Fatalf("2 failures with order-level errors between: %v, want open", s)
	}

	// In half-open, an order-level error frees the trial's place without
	// deciding anything.
	c.Add(time.Minute)
	if d := mustWait(t, g, "unicloud"); d != 0 {
		t.Fatalf("trial Wait = %v, want 0", d)
	}
	g.Done("unicloud", perr(providers.InvalidArgument))
	if s := g.State("unicloud"); s != HalfOpen {
		t.Fatalf("after an order-level error in half-open: %v, want half-open", s)
	}
	if d := mustWait(t, g, "unicloud"); d != 0 {
		t.Fatalf("next trial Wait = %v, want 0", d)
	}
}

func TestBreakerTrials(t *testing.T) {
	t.Parallel()
	g, c := newGuard(nil, &Options{FailureThreshold: 1, Cooldown: 100 * time.Second, HalfOpenCalls: 2, TrialTimeout: 20 * time.Second})
	g.Done("aliyun", perr(providers.Unavailable))
	c.Add(100 * time.Second)

	// Two trials at a time.
	for i := range 2 {
		if d := mustWait(t, g, "aliyun"); d != 0 {
			t.Fatalf("trial %d Wait = %v, want 0", i, d)
		}
	}
	if d := mustWait(t, g, "aliyun"); d != 10*time.Second {
		t.Fatalf("third Wait = %v, want 10s", d)
	}
	// The wait never outlasts the oldest trial's timeout.
	c.Add(15 * time.Second)
	if d := mustWait(t, g, "aliyun"); d != 5*time.Second {
		t.Fatalf("Wait 15s later = %v, want 5s (trials time out at 20s)", d)
	}
	// Trials never reported (the handler gave up before calling) free
	// their places after TrialTimeout: the breaker cannot stay wedged.
	c.Add(5 * time.Second)
	for i := range 2 {
		if d := mustWait(t, g, "aliyun"); d != 0 {
			t.Fatalf("trial %d after the timeout: Wait = %v, want 0", i, d)
		}
	}
	g.Done("aliyun", nil)
	if s := g.State("aliyun"); s != Closed {
		t.Fatalf("after a successful trial: %v, want closed", s)
	}
	// The other trial's late failure is counted like any other.
	g.Done("aliyun", perr(providers.Unavailable))
	if s := g.State("aliyun"); s != Open {
		t.Fatalf("threshold 1: %v, want open", s)
	}
}

func TestBreakerDisabled(t *testing.T) {
	t.Parallel()
	g, _ := newGuard(nil, &Options{FailureThreshold: -1})
	for range 100 {
		g.Done("tencent", perr(providers.Unavailable))
	}
	if s, d := g.State("tencent"), mustWait(t, g, "tencent"); s != Closed || d != 0 {
		t.Errorf("disabled breaker: %v, Wait %v; want closed, 0", s, d)
	}
}

// TestBreakerIgnoresLimiter: Wait is the breaker's answer alone. A spent
// rate limit does not hold an operation back (its requests wait in the
// transport), and with Redis gone the breaker still opens, cools down and
// closes on what operations report.
func TestBreakerIgnoresLimiter(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	g, c := newGuard(srv.Client(t), &Options{
		Limits:           map[string]Limit{"tencent": {Rate: 1, Burst: 1}},
		FailureThreshold: 1,
		Cooldown:         10 * time.Second,
	})
	script := newClock()
	g.scriptNow = script.Now
	if d := mustLimit(t, g, "tencent"); d != 0 {
		t.Fatalf("first request: wait %v", d)
	}
	if d := mustLimit(t, g, "tencent"); d != time.Second {
		t.Fatalf("second request: wait %v, want 1s", d)
	}
	for i := range 3 {
		if d := mustWait(t, g, "tencent"); d != 0 {
			t.Fatalf("Wait %d with the limit spent = %v, want 0", i, d)
		}
	}

	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := g.reserve(ctx, "tencent", time.Minute); err == nil {
		t.Fatal("reserve with Redis down: want an error")
	}
	g.Done("tencent", perr(providers.Unavailable))
	if d, err := g.Wait(ctx, "tencent"); d != 10*time.Second || err != nil {
		t.Errorf("open with Redis down: Wait = %v, %v; want 10s, nil", d, err)
	}
	c.Add(10 * time.Second)
	if d, err := g.Wait(ctx, "tencent"); d != 0 || err != nil {
		t.Errorf("half-open with Redis down: Wait = %v, %v; want 0, nil (a trial)", d, err)
	}
	g.Done("tencent", nil)
	if s := g.State("tencent"); s != Closed {
		t.Errorf("state = %v, want closed", s)
	}
}

func TestStateString(t *testing.T) {
	t.Parallel()
	for s, want := range map[State]string{Closed: "closed", HalfOpen: "half-open", Open: "open", 7: "state(7)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

// The provider's throttling sets this process's rate of requests to it:
// none before; a throttle now and then cuts nothing; throttles of a share
// of the requests start a trial that cuts the rate to 0.7 of what was sent
// after a second at the pace as it is, and keeps the cut when the share
// refused falls; throttles of most requests cut at once; raised by a tenth
// a second while requests use it all; its Retry-After puts the next
// request that far ahead; dropped five minutes after the last cut. This
// worker's own limit cuts nothing, nor does another provider's throttling;
// the breaker's state does not change, and Wait holds nothing.
func TestThrottlingSetsARate(t *testing.T) {
	t.Parallel()
	g, c := newGuard(nil, &Options{FailureThreshold: 3, Cooldown: 30 * time.Second, Providers: []string{"aliyun"}, Registerer: prometheus.NewRegistry()})
	a := &g.breaker("aliyun").rate
	cuts := func() float64 { return testutil.ToFloat64(g.metrics.cuts.WithLabelValues("aliyun")) }
	throttle := &providers.Error{Code: providers.RateLimited, Op: "x", HTTPStatus: 429}
	// send sends n requests over d, each at its place, and answers each
	// at once, a throttle each throttleEvery'th (0: none).
	send := func(n int, d time.Duration, throttleEvery int) {
		t.Helper()
		for i := range n {
			c.Add(d / time.Duration(n))
			w, ok := a.reserve(c.Now(), time.Minute, 0)
			if !ok {
				t.Fatalf("a request refused a place: wait %s", w)
			}
			c.Add(w)
			a.sentNow(c.Now())
			if throttleEvery > 0 && i%throttleEvery == 0 {
				g.Done("aliyun", throttle)
			} else {
				g.Done("aliyun", nil)
			}
		}
	}
	for range 50 { // 50 requests in the last second, no rate
		c.Add(18 * time.Millisecond)
		a.sentNow(c.Now())
	}
	if r := g.Rate("aliyun"); r != 0 || cuts() != 0 {
		t.Fatalf("before any throttle: rate %v, %v cuts", r, cuts())
	}
	// A throttle now and then (under a tenth of the last second's
	// requests) is not the rate's: nothing cut.
	for range 4 {
		g.Done("aliyun", throttle)
	}
	if r := g.Rate("aliyun"); r != 0 || cuts() != 0 {
		t.Fatalf("4 throttles of 50 requests: rate %v, %v cuts; want none", r, cuts())
	}
	// A tenth of the requests: a trial, nothing cut until a span of a
	// second (and 100 answers, about ten of them refused at a tenth) at
	// the pace as it is shows the share.
	g.Done("aliyun", throttle)
	if r := g.Rate("aliyun"); r != 0 || cuts() != 0 || a.trial.phase != trialBefore || a.trial.need != 100 {
		t.Fatalf("5 throttles of 50 requests: rate %v, %v cuts, trial %d needing %d answers; want none, 0, a trial needing 100", r, cuts(), a.trial.phase, a.trial.need)
	}
	if d := mustWait(t, g, "aliyun"); d != 0 || g.State("aliyun") != Closed {
		t.Errorf("Wait %s, state %v; want none, closed: throttling says nothing against the provider being up", d, g.State("aliyun"))
	}
	send(55, 550*time.Millisecond, 5)
	if r := g.Rate("aliyun"); r != 0 || cuts() != 0 {
		t.Fatalf("half a span: rate %v, %v cuts; want none", r, cuts())
	}
	send(55, 550*time.Millisecond, 5)
	r := g.Rate("aliyun")
	if r < 66 || r > 74 || cuts() != 1 || a.trial.phase != trialAfter {
		t.Fatalf("a span at 100 a second, a fifth throttled: rate %v, %v cuts, trial %d; want about 70 (0.7 of 100), 1, judging it", r, cuts(), a.trial.phase)
	}
	// Requests now go 1/r s apart; one that may not wait that long takes
	// no place.
	iv := time.Duration(float64(time.Second) / r)
	w1, _ := a.reserve(c.Now(), time.Minute, 0)
	w2, _ := a.reserve(c.Now(), time.Minute, 0)
	if w3, ok := a.reserve(c.Now(), 10*time.Millisecond, 0); w2-w1 != iv || ok || w3-w2 != iv {
		t.Errorf("three requests at once: waits %s, %s, then %s (%v); want each %s apart, the last refused", w1, w2, w3, ok, iv)
	}
	if d := mustWait(t, g, "tencent"); d != 0 || g.Rate("tencent") != 0 {
		t.Errorf("another provider: wait %s, rate %v; want none", d, g.Rate("tencent"))
	}
	// At the rate cut, none throttled: the cut is kept, no raise while
	// the trial judges it.
	c.Add(time.Second)
	send(int(r*1.2), 1200*time.Millisecond, 0)
	if r2 := g.Rate("aliyun"); r2 < r || r2 > 1.05*r || a.trial.phase != trialNone || cuts() != 1 {
		t.Fatalf("a span at the rate cut, none throttled: rate %v, trial %d, %v cuts; want %v kept (judged after a second), 1", r2, a.trial.phase, cuts(), r)
	}
	r = g.Rate("aliyun")
	// Used in full with no throttle for a second: raised a tenth.
	send(int(r), time.Second, 0)
	if r2 := g.Rate("aliyun"); r2 < r*1.05 || r2 > r*1.15 {
		t.Errorf("a second used in full: rate %v; want about %v", r2, r*1.1)
	}
	r = g.Rate("aliyun")
	// Not used: not raised.
	c.Add(10 * time.Second)
	g.Done("aliyun", nil)
	if r2 := g.Rate("aliyun"); r2 != r {
		t.Errorf("idle: rate %v; want it as it was, %v", r2, r)
	}
	// Most of 20 requests throttled (a create that may have acted
	// among them, with a Retry-After): cut at once, and the Retry-After
	// holds the next request.
	for range 20 {
		c.Add(40 * time.Millisecond)
		a.sentNow(c.Now())
	}
	for range 9 {
		g.Done("aliyun", throttle)
	}
	if cuts() != 1 || a.trial.phase != trialBefore {
		t.Fatalf("9 throttles of 20 requests: %v cuts, trial %d; want 1, a trial started", cuts(), a.trial.phase)
	}
	g.Done("aliyun", &providers.Error{Code: providers.Ambiguous, Op: "x", HTTPStatus: 429, RetryAfter: 2 * time.Second, Err: providers.ErrThrottled})
	if r2 := g.Rate("aliyun"); r2 < 0.69*r || r2 > 0.71*r || cuts() != 2 {
		t.Errorf("10 throttles of 20 requests: rate %v, %v cuts; want %v, 2", r2, cuts(), 0.7*r)
	}
	if w, _ := a.reserve(c.Now(), time.Minute, 0); w != 2*time.Second {
		t.Errorf("after a Retry-After of 2s: wait %s", w)
	}
	r = g.Rate("aliyun")
	// Right after a cut, answers raise nothing: the last second still
	// holds what was sent before it.
	c.Add(500 * time.Millisecond)
	g.Done("aliyun", nil)
	if r2 := g.Rate("aliyun"); r2 != r {
		t.Errorf("an answer right after a cut: rate %v; want it as cut, %v", r2, r)
	}
	// A Retry-After of years puts the next request 30 s ahead at most,
	// and throttles until it ends are of the same burst: one cut.
	c.Add(2 * time.Second)
	for range 30 {
		a.sentNow(c.Now())
	}
	for range 10 {
		c.Add(2 * time.Second)
		g.Done("aliyun", &providers.Error{Code: providers.RateLimited, Op: "x", HTTPStatus: 429, RetryAfter: 200_000_000 * time.Second})
	}
	if w, _ := a.reserve(c.Now(), time.Hour, 0); w > maxRetryAfter || cuts() != 3 {
		t.Errorf("throttles asking for years: wait %s, %v cuts; want at most %s, 3", w, cuts(), maxRetryAfter)
	}
	// Throttled at every request, a request a second: eight in a row
	// are most, and the rate never falls under half a request a second.
	c.Add(maxRetryAfter)
	for range 80 {
		c.Add(1100 * time.Millisecond)
		w, _ := a.reserve(c.Now(), time.Hour, 0)
		c.Add(w) // sent at its place
		a.sentNow(c.Now())
		g.Done("aliyun", throttle)
	}
	if r := g.Rate("aliyun"); r != adaptiveMin {
		t.Errorf("throttled at every request: rate %v; want %v", r, adaptiveMin)
	}
	// This worker's own limit cuts nothing, nor raises anything.
	c.Add(time.Minute)
	before := cuts()
	for range 20 {
		c.Add(100 * time.Millisecond)
		g.Done("aliyun", &providers.Error{Code: providers.RateLimited, Op: "rate limit aliyun", RetryAfter: 5 * time.Second, Err: errOwnLimit})
	}
	if cuts() != before || g.Rate("aliyun") != adaptiveMin {
		t.Errorf("held back by this worker's own limit: %v cuts more, rate %v; want none, %v", cuts()-before, g.Rate("aliyun"), adaptiveMin)
	}
	// One caller sending at its places, each answered 1.2 s later: the
	// rate is used in full, and rises.
	for range 20 {
		w, _ := a.reserve(c.Now(), time.Hour, 0)
		c.Add(w)
		a.sentNow(c.Now())
		c.Add(1200 * time.Millisecond)
		g.Done("aliyun", nil)
	}
	if r := g.Rate("aliyun"); r < 2 {
		t.Errorf("a lone caller using every place, answered in 1.2 s: rate %v after 20 requests; want it risen over 2", r)
	}
	// Five minutes after the last cut: no rate.
	last := g.breaker("aliyun").rate.cut
	c.Add(last.Add(5*time.Minute - time.Millisecond).Sub(c.Now()))
	if r := g.Rate("aliyun"); r == 0 {
		t.Errorf("just under five minutes after the last cut: no rate; want one")
	}
	c.Add(time.Millisecond)
	if r := g.Rate("aliyun"); r != 0 {
		t.Errorf("five minutes after the last cut: rate %v; want none", r)
	}
	if w, ok := a.reserve(c.Now(), 0, 0); w != 0 || !ok {
		t.Errorf("five minutes after the last cut: wait %s, %v", w, ok)
	}
}

// A provider call that failed because this worker's own limits held one of
// its requests back (a listing whose page was not sent, read by the
// provider client as unavailable) says nothing of the provider: it never
// opens the breaker.
func TestOwnLimitFailuresDoNotOpenTheBreaker(t *testing.T) {
	t.Parallel()
	g, _ := newGuard(nil, &Options{FailureThreshold: 2})
	held := &providers.Error{Code: providers.Unavailable, Op: "aliyun order/query", Message: "page 2 could not be read",
		Err: &providers.Error{Code: providers.RateLimited, Op: "rate limit aliyun", Err: errOwnLimit}}
	for range 5 {
		g.Done("aliyun", held)
	}
	if s := g.State("aliyun"); s != Closed {
		t.Errorf("after 5 calls failing on this worker's own limit: %v; want closed", s)
	}
	g.Done("aliyun", perr(providers.Unavailable))
	g.Done("aliyun", perr(providers.Unavailable))
	if s := g.State("aliyun"); s != Open {
		t.Errorf("after 2 provider failures: %v; want open", s)
	}
}

// A cut undone (throttles of a share whatever the pace) is logged once,
// with the provider and the share taken for its own; nothing else about
// the rate is.
func TestAnUndoneCutIsLogged(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	g, c := newGuard(nil, &Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Registerer: prometheus.NewRegistry()})
	a := &g.breaker("aliyun").rate
	throttle := &providers.Error{Code: providers.RateLimited, Op: "x", HTTPStatus: 429}
	for i := range 400 { // 100 a second, a fifth throttled, for 4 s
		c.Add(10 * time.Millisecond)
		w, _ := a.reserve(c.Now(), time.Hour, 0)
		c.Add(w)
		a.sentNow(c.Now())
		if i%5 == 0 {
			g.Done("aliyun", throttle)
		} else {
			g.Done("aliyun", nil)
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"msg":"provider throttles a share of requests whatever the pace: the rate's last cut is undone"`) ||
		!strings.Contains(lines[0], `"provider":"aliyun"`) || !strings.Contains(lines[0], `"throttled_share":0.2`) {
		t.Errorf("log after a cut undone: %q; want one line naming aliyun and a share of 0.2", buf.String())
	}
	if r := g.Rate("aliyun"); r != 0 {
		t.Errorf("rate %v after the undo; want none", r)
	}
}
