package guard

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/unicloud"
	unicloudsandbox "github.com/orderworker/orderworker/providers/unicloud/sandbox"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// upstream is an HTTP server that counts the requests it gets.
type upstream struct {
	*httptest.Server
	mu sync.Mutex
	n  int
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.n++
		u.mu.Unlock()
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n
}

// get sends a GET to url through hc, as providers.Send does, and returns
// its error.
func get(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := providers.Send(ctx, hc, req, "test call", false)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}

// sleeps records the limiter's waits.
type sleeps struct {
	mu sync.Mutex
	ds []time.Duration
}

func (s *sleeps) total() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum time.Duration
	for _, d := range s.ds {
		sum += d
	}
	return sum
}

// fakeSleep makes g's transports wait by moving script (the limiter's
// clock) forward instead of sleeping, and records the waits.
func fakeSleep(g *Guard, script *clock) *sleeps {
	s := &sleeps{}
	g.sleep = func(ctx context.Context, d time.Duration) error {
		s.mu.Lock()
		s.ds = append(s.ds, d)
		s.mu.Unlock()
		script.Add(d)
		return ctx.Err()
	}
	return s
}

// TestTransportHoldsLookupToRate: one UniCloud lookup that reads many
// QueryOrders pages and asks OrderDetail about every listed order is held
// to the provider's rate request by request, not counted once. The
// limiter's clock is fake and its waits move it forward, so the times the
// sandbox sees the requests at are exact.
func TestTransportHoldsLookupToRate(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	const rate, burst = 10, 2 // an emission interval of 100ms
	interval := time.Second / rate
	g, _ := newGuard(srv.Client(t), &Options{Limits: map[string]Limit{"unicloud": {Rate: rate, Burst: burst}}})
	script := newClock()
	g.scriptNow = script.Now
	waits := fakeSleep(g, script)

	usb := unicloudsandbox.New("AKSANDBOXRATE", "sandbox-rate-secret")
	for i := range 30 {
		usb.Seed(unicloudsandbox.Order{InstanceName: fmt.Sprintf("other-nas-%02d", i), OrderCategory: "NEW", PayType: "DAY_MONTH_USAGE",
			RegionID: "cn-tianjin-yfb", AzoneID: "cn-tianjin-yfb1", ComponentCode: "nas.onestor", SpecificationCode: "nas.capacity.nfs",
			RentCount: 1, RentUnit: "month"})
	}
	var mu sync.Mutex
	var arrivals []time.Time // on the limiter's clock
	sb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, script.Now())
		mu.Unlock()
		usb.ServeHTTP(w, r)
	}))
	t.Cleanup(sb.Close)
	uc, err := unicloud.New(unicloud.Options{Endpoint: sb.URL, AccessKeyID: "AKSANDBOXRATE", AccessKeySecret: "sandbox-rate-secret",
		PageSize: 5, HTTPClient: &http.Client{Transport: g.Transport("unicloud", nil)}})
	if err != nil {
		t.Fatal(err)
	}
	params := []byte(`{"azoneId":"cn-tianjin-yfb1","componentCode":"nas.onestor","dataEncryption":0,"instanceName":"ours-nas","orderCategory":"NEW","payType":"DAY_MONTH_USAGE","projectId":"rg-rate","regionId":"cn-tianjin-yfb","renewType":"manualrenew","rentCount":1,"rentUnit":"month","specificationCode":"nas.capacity.nfs","unit":"GB","vpc":"vpc-rate"}`)
	_, err = uc.Lookup(context.Background(), providers.Order{OrderNo: "RateOrder1", Params: params, FirstAttempt: time.Now()})
	if providers.CodeOf(err) != providers.NotFound {
		t.Fatalf("Lookup = %v, want not_found (no listed order is ours)", err)
	}

	pages, details := usb.Calls("QueryOrders"), usb.Calls("OrderDetail")
	mu.Lock()
	defer mu.Unlock()
	n := len(arrivals)
	if pages < 6 || details < 30 || n != pages+details {
		t.Fatalf("the lookup made %d QueryOrders and %d OrderDetail calls, the sandbox saw %d requests; want at least 6 pages and 30 details, all seen", pages, details, n)
	}
	t.Logf("one lookup: %d QueryOrders pages and %d OrderDetail calls, over %s of the limiter's clock", pages, details, arrivals[n-1].Sub(arrivals[0]))
	// Each request waited for its own place: the first Burst went at
	// once, then one every interval.
	for k, at := range arrivals {
		if want := time.Duration(max(0, k-burst+1)) * interval; at.Sub(arrivals[0]) != want {
			t.Errorf("request %d of %d reached the sandbox %s after the first, want %s", k+1, n, at.Sub(arrivals[0]), want)
		}
	}
	// However the window is placed, it holds at most Burst + Rate*length.
	for i := range arrivals {
		for j := i; j < n; j++ {
			if in, bound := j-i+1, burst+rate*arrivals[j].Sub(arrivals[i]).Seconds(); float64(in) > bound {
				t.Fatalf("%d requests within %s, over Burst + Rate*t = %.1f", in, arrivals[j].Sub(arrivals[i]), bound)
			}
		}
	}
	if got, want := waits.total(), time.Duration(n-burst)*interval; got != want {
		t.Errorf("the lookup's requests waited %s in all, want %s", got, want)
	}
}

// TestTransportDeadline: a request whose context's deadline leaves too
// little time for its place is not sent and fails RateLimited with the
// wait as RetryAfter, counting nothing; one with time enough waits and
// goes.
func TestTransportDeadline(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	g, _ := newGuard(srv.Client(t), &Options{Limits: map[string]Limit{"tencent": {Rate: 1, Burst: 1}}})
	script := newClock()
	g.scriptNow = script.Now
	waits := fakeSleep(g, script)
	up := newUpstream(t)
	hc := &http.Client{Transport: g.Transport("tencent", nil)}

	if err := get(context.Background(), hc, up.URL); err != nil {
		t.Fatalf("first request: %v", err)
	}
	// The next place is 1s away: a request with 500ms to its deadline
	// (or with 1.5s: it would keep less than half) is refused, unsent.
	for _, timeout := range []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := get(ctx, hc, up.URL)
		cancel()
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.Code != providers.RateLimited || pe.RetryAfter != time.Second {
			t.Fatalf("request with %s to its deadline: %v, want rate_limited with RetryAfter 1s", timeout, err)
		}
		if pe.Op != "test call" || pe.HTTPStatus != 0 {
			t.Errorf("refused request: op %q, http %d; want the caller's op and no status", pe.Op, pe.HTTPStatus)
		}
		if n := up.count(); n != 1 {
			t.Fatalf("upstream got %d requests, want 1: the refused one was sent", n)
		}
	}
	if slept := waits.total(); slept != 0 {
		t.Fatalf("refused requests waited %s", slept)
	}
	// The refusals reserved nothing: a request with time enough (3s:
	// it keeps 2s) waits the same 1s and goes.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := get(ctx, hc, up.URL); err != nil {
		t.Fatalf("request with 3s to its deadline: %v", err)
	}
	if n, slept := up.count(), waits.total(); n != 2 || slept != time.Second {
		t.Errorf("upstream got %d requests after %s of waits, want 2 after 1s", n, slept)
	}
}

// TestTransportCancelledWhileWaiting: a request whose context is cancelled
// while it waits for its place is not sent.
func TestTransportCancelledWhileWaiting(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	g, _ := newGuard(srv.Client(t), &Options{Limits: map[string]Limit{"tencent": {Rate: 1.25, Burst: 1}}}) // a place every 800ms, within a read's wait
	up := newUpstream(t)
	hc := &http.Client{Transport: g.Transport("tencent", nil)}
	if err := get(context.Background(), hc, up.URL); err != nil {
		t.Fatalf("first request: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // time enough to wait
	done := make(chan error, 1)
	go func() { done <- get(ctx, hc, up.URL) }()
	time.Sleep(50 * time.Millisecond) // the request is most likely waiting by now; if not, it fails at once
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled request: %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a cancelled request kept waiting")
	}
	if n := up.count(); n != 1 {
		t.Errorf("upstream got %d requests, want 1", n)
	}
}

// TestTransportRedisDown: with Redis gone, a request to a limited
// provider fails RateLimited before it is sent; an unlimited provider's
// transport needs no Redis (with the breakers disabled, it is the
// underlying one).
func TestTransportRedisDown(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	g, _ := newGuard(srv.Client(t), &Options{Limits: map[string]Limit{"tencent": {Rate: 10, Burst: 1}}})
	up := newUpstream(t)
	base := providers.NewTransport()
	off, _ := newGuard(srv.Client(t), &Options{FailureThreshold: -1})
	if rt := off.Transport("aliyun", base); rt != http.RoundTripper(base) {
		t.Errorf("Transport(aliyun) without a limit, breakers disabled = %T, want the transport it was given", rt)
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := get(ctx, &http.Client{Transport: g.Transport("tencent", base)}, up.URL)
	if providers.CodeOf(err) != providers.RateLimited || providers.RetryAfterOf(err) <= 0 {
		t.Errorf("request with Redis down: %v, want rate_limited with a RetryAfter", err)
	}
	if err := get(ctx, &http.Client{Transport: g.Transport("aliyun", base)}, up.URL); err != nil {
		t.Errorf("unlimited request with Redis down: %v", err)
	}
	if n := up.count(); n != 1 {
		t.Errorf("upstream got %d requests, want 1 (the unlimited one)", n)
	}
}

// TestTransportActingCallsWaitLongerThanReads: with the next place 2 s
// away, a read (a poll, a lookup) is refused however long its deadline,
// since reads wait at most maxReadWait, while an acting call (a create, a
// pay: providers.Send marks it) with the same deadline waits and goes.
func TestTransportActingCallsWaitLongerThanReads(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	g, _ := newGuard(srv.Client(t), &Options{Limits: map[string]Limit{"aliyun": {Rate: 0.5, Burst: 1}}})
	script := newClock()
	g.scriptNow = script.Now
	waits := fakeSleep(g, script)
	up := newUpstream(t)
	hc := &http.Client{Transport: g.Transport("aliyun", nil)}
	send := func(acting bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, up.URL, nil)
		if err != nil {
			return err
		}
		_, err = providers.Send(ctx, hc, req, "test call", acting)
		return err
	}
	if err := send(false); err != nil {
		t.Fatalf("first request: %v", err)
	}
	if err := send(false); providers.CodeOf(err) != providers.RateLimited {
		t.Fatalf("a read with its place 2s away: %v, want rate_limited (reads wait at most %s)", err, maxReadWait)
	}
	if err := send(true); err != nil {
		t.Fatalf("an acting call with its place 2s away and 10s to its deadline: %v, want it to wait and go", err)
	}
	if n, slept := up.count(), waits.total(); n != 2 || slept != 2*time.Second {
		t.Errorf("upstream got %d requests after %s of waits, want 2 after 2s", n, slept)
	}
}

// TestTransportKeepsToTheRateAThrottleSet: once the provider throttled
// requests, the transport spaces them at the rate the throttle set (here
// half of 36 requests throttled: 0.7 of the 18 not refused, with a tenth
// more, 20: 14 a second), with no limit configured and no Redis; a read
// whose place is more than a second off is not sent, RateLimited by this
// worker (not counted as the provider's throttling), saying why.
func TestTransportKeepsToTheRateAThrottleSet(t *testing.T) {
	t.Parallel()
	g, c := newGuard(nil, nil)
	sl := fakeSleep(g, c)
	up := newUpstream(t)
	hc := &http.Client{Transport: g.Transport("aliyun", nil)}
	for range 36 { // 36 in the last second
		c.Add(25 * time.Millisecond)
		if err := get(context.Background(), hc, up.URL); err != nil {
			t.Fatal(err)
		}
	}
	if sl.total() != 0 {
		t.Fatalf("before any throttle: waited %s", sl.total())
	}
	for range 18 { // half of the last second's requests: most, cut at once
		g.Done("aliyun", &providers.Error{Code: providers.RateLimited, Op: "x", HTTPStatus: 429})
	}
	if r := g.Rate("aliyun"); r < 13.99 || r > 14.01 {
		t.Fatalf("after 18 throttles of 36 requests: rate %v; want 14", r)
	}
	for range 15 {
		if err := get(context.Background(), hc, up.URL); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := sl.total(), 14*(time.Second/14); got < want-time.Millisecond || got > want+time.Millisecond {
		t.Errorf("15 requests at once after the throttle: waited %s in all; want about %s (14 a second)", got, want)
	}
	// 20 reads asked at once: those whose place is more than a second
	// away are not sent.
	refused := 0
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		g.sleep = func(context.Context, time.Duration) error { return nil } // the clock stands still
		err := get(ctx, hc, up.URL)
		cancel()
		if err != nil {
			refused++
			if providers.CodeOf(err) != providers.RateLimited || !errors.Is(err, errOwnLimit) || !strings.Contains(err.Error(), "lowered since aliyun throttled") {
				t.Fatalf("a read over the rate: %v; want rate_limited by this worker, saying why", err)
			}
		}
	}
	if refused != 6 {
		t.Errorf("20 reads at once: %d refused; want 6 (at 14 a second, the 15th is more than a second off)", refused)
	}
	if n := up.count(); n != 36+15+14 {
		t.Errorf("upstream got %d requests; want %d", n, 36+15+14)
	}
}

// TestTransportLetsAReadWaitAPlaceAtALowRate: at a rate under a request a
// second, a read (a lookup's next page) may wait for its place at it, its
// deadline allowing, rather than a second, which it would never find; one
// place, not more, so that reads keep the next place within two intervals
// for creates, which wait longer.
func TestTransportLetsAReadWaitAPlaceAtALowRate(t *testing.T) {
	t.Parallel()
	g, c := newGuard(nil, &Options{Registerer: prometheus.NewRegistry()})
	g.sleep = func(context.Context, time.Duration) error { return nil } // the clock stands still
	up := newUpstream(t)
	hc := &http.Client{Transport: g.Transport("aliyun", nil)}
	if err := get(context.Background(), hc, up.URL); err != nil {
		t.Fatal(err)
	}
	for range adaptiveMostRun + 20 { // every answer throttled, a second apart: cut to the least, half a request a second
		c.Add(1100 * time.Millisecond)
		g.Done("aliyun", &providers.Error{Code: providers.RateLimited, Op: "x", HTTPStatus: 429})
	}
	if r := g.Rate("aliyun"); r != adaptiveMin {
		t.Fatalf("rate %v; want %v", r, adaptiveMin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for range 3 {
		errs = append(errs, get(ctx, hc, up.URL))
	}
	if errs[0] != nil || errs[1] != nil || providers.CodeOf(errs[2]) != providers.RateLimited {
		t.Errorf("three reads at once at 0.5 a second: %v; want two sent (now, and 2 s off: a place), the third not (4 s)", errs)
	}
	// Held back by the rate a throttle set, as by a limit: the read
	// that waited and the one refused are counted.
	if n := testutil.ToFloat64(g.metrics.waits.WithLabelValues("aliyun")); n != 2 {
		t.Errorf("orderworker_rate_limit_waits_total = %v after a wait and a refusal at the lowered rate; want 2", n)
	}
	// A create (acting: half its deadline) still finds the place after.
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, up.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := providers.Send(cctx, hc, req, "test create", true); err != nil {
		t.Errorf("a create after the reads, 10 s to its deadline: %v; want sent (4 s off)", err)
	}
}
