package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// The Standard Webhooks spec's own test vector.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignSpecVector(t *testing.T) {
	t.Parallel()
	s, err := NewSigner(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sign(specID, time.Unix(specTimestamp, 0), []byte(specBody)); got != specSignature {
		t.Errorf("Sign(spec vector) = %q, want %q", got, specSignature)
	}
	h := http.Header{}
	s.Header(h, specID, time.Now(), []byte(specBody))
	if err := s.Verify([]byte(specBody), h); err != nil {
		t.Errorf("Verify(own signature) = %v", err)
	}
	if err := s.Verify([]byte(`{"test": 2432232315}`), h); err == nil {
		t.Error("Verify(altered body) = nil, want an error")
	}
	if got := fmt.Sprint(s); strings.Contains(got, "MfKQ") {
		t.Errorf("a Signer prints its secret: %s", got)
	}
}

func TestNewSignerRefusesBadSecrets(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",      // no prefix
		"whsec_not*base64!",                     // not base64
		"whsec_c2hvcnQ=",                        // 5 bytes
		"whsec_",                                // empty
		"whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // another prefix
		" \t\n",                                 // none
		specSecret + " whsec_c2hvcnQ=",          // the second one short
	} {
		_, err := NewSigner(secret)
		if err == nil {
			t.Errorf("NewSigner(%q) = nil error, want one", secret)
			continue
		}
		if rest := strings.TrimPrefix(secret, "whsec_"); len(rest) > 4 && strings.Contains(err.Error(), rest) {
			t.Errorf("NewSigner error %q repeats the secret", err)
		}
	}
}

// With several secrets (a rotation), every message carries one signature
// per secret, space-separated as the spec allows: a receiver that knows
// the old secret only, or the new one only, accepts it; the old secret's
// signature is the spec's known answer.
func TestSignerRotation(t *testing.T) {
	t.Parallel()
	const newSecret = "whsec_" + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // bytes 0..31
	both, err := NewSigner(" " + newSecret + "\n\t" + specSecret + " ")
	if err != nil {
		t.Fatal(err)
	}
	newOnly, err := NewSigner(newSecret)
	if err != nil {
		t.Fatal(err)
	}
	oldOnly, err := NewSigner(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(specTimestamp, 0)
	want := newOnly.Sign(specID, ts, []byte(specBody)) + " " + specSignature
	if got := both.Sign(specID, ts, []byte(specBody)); got != want {
		t.Errorf("Sign with two secrets = %q, want %q (one signature per secret, space-separated)", got, want)
	}
	h := http.Header{}
	both.Header(h, specID, time.Now(), []byte(specBody))
	for name, s := range map[string]*Signer{"the old secret": oldOnly, "the new secret": newOnly, "both": both} {
		if err := s.Verify([]byte(specBody), h); err != nil {
			t.Errorf("a receiver with %s: Verify = %v", name, err)
		}
	}
	other, _ := NewSigner("whsec_" + strings.Repeat("A", 43) + "=")
	if err := other.Verify([]byte(specBody), h); err == nil {
		t.Error("a receiver with another secret accepts the message")
	}
	if err := both.Verify([]byte(specBody), http.Header{}); err == nil {
		t.Error("Verify without headers = nil")
	}
	h2 := http.Header{}
	other.Header(h2, specID, time.Now(), []byte(specBody))
	if err := both.Verify([]byte(specBody), h2); err == nil {
		t.Error("a signer with two secrets accepts a message signed with a third")
	}
	_, err = NewSigner(specSecret + " whsec_c2hvcnQ=")
	if err == nil || !strings.Contains(err.Error(), "secret 2 of 2") {
		t.Errorf("NewSigner(a good secret and a short one) = %v, want an error naming the second", err)
	}
}

func TestParseURLs(t *testing.T) {
	t.Parallel()
	got, err := ParseURLs(" https://a.example/hook?token=x , http://b.example:8080/h ,")
	if err != nil || !slices.Equal(got, []string{"https://a.example/hook?token=x", "http://b.example:8080/h"}) {
		t.Errorf("ParseURLs = %q, %v", got, err)
	}
	for _, bad := range []string{"a.example/hook", "ftp://a.example/x", "https://a.example/x,https://a.example/x", "http:///path"} {
		if _, err := ParseURLs(bad); err == nil {
			t.Errorf("ParseURLs(%q) = nil error", bad)
		}
	}
	// A URL is named by its index from 0, empty items not counted, as
	// enqueue webhooks and the metrics name an endpoint.
	for in, want := range map[string]string{
		"notaurl": "URL at index 0: not an absolute URL: want one like https://example.com/hook",
		"https://a.example/h,, ftp://b.example/x": "URL at index 1 (ftp://b.example/x): want an http:// or https:// URL",
		"https://a.example/h,https://a.example/h": "URL at index 1 (https://a.example/h) is the one at index 0 again",
	} {
		if _, err := ParseURLs(in); err == nil || err.Error() != want {
			t.Errorf("ParseURLs(%q) = %v, want %q", in, err, want)
		}
	}
	if _, err := ParseURLs("ftp://u:secretpw@a.example/x?token=tok123"); err == nil || strings.Contains(err.Error(), "secretpw") || strings.Contains(err.Error(), "tok123") {
		t.Errorf("ParseURLs error %v: want one that hides credentials and query", err)
	}
}

// DisplayURL never shows credentials, the query, or a path segment that may
// be a token.
func TestDisplayURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://u:pw@a.example/hook?token=x#f":                             "https://a.example/hook",
		"https://hooks.slack.com/services/T000/B000/XXXXSECRETTOKEN1234567": "https://hooks.slack.com/services/T000/B000/…",
		"http://127.0.0.1:8080/v1/order-events":                             "http://127.0.0.1:8080/v1/order-events",
		"https://a.example/hooks/5f2b9c1e8d7a4b3c9e0f1a2b":                  "https://a.example/hooks/…",
		"https://a.example/abc%2Fdef":                                       "https://a.example/…",
		"https://a.example/hooks/AbcdefGhijklMnopqrStuvwx":                  "https://a.example/hooks/…",
		"not a url": "(unparsable URL)",
	} {
		if got := DisplayURL(in); got != want {
			t.Errorf("DisplayURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// The webhook keys share the events stream's hash tag, so the scripts
// that touch both run on one Redis Cluster shard.
func TestKeysShareTheEventsStreamsSlot(t *testing.T) {
	t.Parallel()
	tag := func(k string) string {
		i := strings.Index(k, "{")
		j := strings.Index(k[i+1:], "}")
		return k[i+1 : i+1+j]
	}
	for _, shards := range []int{1, 3} {
		for _, stream := range ledger.New(nil, &ledger.Options{Shards: shards}).EventStreams() {
			k := keysFor(EndpointID("https://example.com/hook"), stream)
			for _, key := range []string{k.ev, k.st, k.due, k.backlog, k.failed, k.lost, k.base + "q:tencent:O1", k.base + "f:tencent:O1"} {
				if tag(key) != tag(stream.Key) {
					t.Errorf("key %s: hash tag %q, the events stream's is %q", key, tag(key), tag(stream.Key))
				}
			}
		}
	}
	if tag(endpointsKey) != "ledger" {
		t.Errorf("%s: want the ledger-wide hash tag {ledger}", endpointsKey)
	}
}

// ---------------------------------------------------------------------------
// Against a real Redis.

type env struct {
	t      *testing.T
	rdb    *redis.Client
	ledger *ledger.Ledger
	signer *Signer
}

func setup(t *testing.T) *env { t.Helper(); return setupShards(t, 1) }

// setupShards is setup with a ledger of n shards: one events stream each.
func setupShards(t *testing.T, n int) *env {
	t.Helper()
	rs := taskstest.StartRedis(t, nil)
	s, err := NewSigner(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	rdb := rs.Client(t)
	return &env{t: t, rdb: rdb, ledger: ledger.New(rdb, &ledger.Options{Shards: n}), signer: s}
}

// start runs a Dispatcher for urls until the test ends and waits until its
// consumer groups exist (events from then on are delivered).
func (e *env) start(urls []string, opts *Options) (*Dispatcher, *prometheus.Registry) {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	o := Options{RetryBase: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, Timeout: 2 * time.Second, Poll: 50 * time.Millisecond}
	if opts != nil {
		o = *opts
	}
	o.Registerer = reg
	o.Streams = e.ledger.EventStreams()
	d, err := New(e.rdb, urls, e.signer, &o)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	e.t.Cleanup(func() { cancel(); <-done })
	for _, u := range urls {
		for _, stream := range o.Streams {
			e.waitFor(5*time.Second, "the consumer group of "+u, func() bool {
				gs, err := e.rdb.XInfoGroups(context.Background(), stream.Key).Result()
				return err == nil && slices.ContainsFunc(gs, func(g redis.XInfoGroup) bool { return g.Name == keysFor(EndpointID(u), stream).group })
			})
		}
	}
	return d, reg
}

func (e *env) waitFor(timeout time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// order takes an order through the ledger's real transitions, each of
// which appends its event: pending, then paid.
func (e *env) order(orderNo string, states ...ledger.State) {
	e.t.Helper()
	ctx := context.Background()
	ref := ledger.Ref{Provider: "tencent", OrderNo: orderNo}
	if _, err := e.ledger.Claim(ctx, ref, []byte(`{}`), "h-"+orderNo); err != nil {
		e.t.Fatal(err)
	}
	for _, s := range states {
		tok := uuid.NewString()
		if _, err := e.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: tok}); err != nil {
			e.t.Fatal(err)
		}
		var tr ledger.Transition
		switch s {
		case ledger.StatePending:
			tr = ledger.SetPending("P-"+orderNo, time.Now(), time.Now().Add(time.Minute))
		case ledger.StatePaid:
			tr = ledger.SetPaid("P-" + orderNo)
		case ledger.StateErrored:
			tr = ledger.SetErrored("refused")
		case ledger.StateUnknown:
			tr = ledger.SetUnknown("timeout after sending")
		}
		if err := e.ledger.Settle(ctx, ref, tok, tr); err != nil {
			e.t.Fatal(err)
		}
	}
}

// delivery is one request a receiver got.
type delivery struct {
	id, order, typ string
	body           string
	ok             bool // answered 2xx
	verified       bool
}

// receiver records every request; fail decides, per request, whether to
// answer 500 instead of 204.
type receiver struct {
	t      *testing.T
	signer *Signer
	srv    *httptest.Server
	mu     sync.Mutex
	log    []delivery
	fail   func(id string, nth int) bool
	hold   chan struct{} // when set, requests wait for it to close
	delay  time.Duration // when set, each answer waits this long
}

func newReceiver(t *testing.T, s *Signer, fail func(id string, nth int) bool) *receiver {
	r := &receiver{t: t, signer: s, fail: fail}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	hold := r.hold
	r.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-req.Context().Done():
		}
	}
	var ev ledger.Event
	_ = json.Unmarshal(body, &ev)
	d := delivery{id: req.Header.Get(HeaderID), order: ev.Data.OrderNo, typ: ev.Type, body: string(body),
		verified: r.signer.Verify(body, req.Header) == nil && ev.ID == req.Header.Get(HeaderID)}
	r.mu.Lock()
	nth := 0
	for _, x := range r.log {
		if x.id == d.id {
			nth++
		}
	}
	d.ok = r.fail == nil || !r.fail(d.id, nth)
	r.log = append(r.log, d)
	r.mu.Unlock()
	if !d.ok {
		http.Error(w, "try later", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// delivered returns the ids answered 2xx at least once.
func (r *receiver) delivered() map[string]bool {
	out := map[string]bool{}
	for _, d := range r.deliveries() {
		if d.ok {
			out[d.id] = true
		}
	}
	return out
}

// checkOrder checks that no event of an order was sent before the order's
// previous event was delivered, and that every request was signed and
// carried the same body for the same id.
func checkOrder(t *testing.T, log []delivery) {
	t.Helper()
	bodies := map[string]string{}
	deliveredUpTo := map[string]string{} // order -> id of its last delivered event
	for i, d := range log {
		if !d.verified {
			t.Errorf("request %d (%s): signature does not verify", i, d.id)
		}
		if b, ok := bodies[d.id]; ok && b != d.body {
			t.Errorf("event %s: body changed between deliveries:\n%s\n%s", d.id, b, d.body)
		}
		bodies[d.id] = d.body
		// An order's events have increasing ids; event d may be sent only
		// once every earlier event of its order was delivered.
		for _, e := range log[:i] {
			if e.order == d.order && compareIDs(e.id, d.id) < 0 && !slices.ContainsFunc(log[:i], func(x delivery) bool { return x.id == e.id && x.ok }) {
				t.Errorf("order %s: event %s sent while its earlier event %s was not delivered", d.order, d.id, e.id)
			}
		}
		if d.ok {
			deliveredUpTo[d.order] = d.id
		}
	}
}

func (e *env) events() []ledger.Event {
	e.t.Helper()
	evs, err := e.ledger.Events(context.Background(), "", 100_000)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// flaky fails 30% of first deliveries (by a hash of the id, so the test
// is the same on every run) and every delivery of some events twice more.
func flaky(id string, nth int) bool {
	h := fnv.New32a()
	h.Write([]byte(id))
	v := h.Sum32() % 100
	return nth == 0 && v < 30 || nth < 3 && v < 5
}

// Every event reaches the endpoint, signed, despite 30 % of first
// deliveries failing, with one order's events in order, while two
// dispatchers (two replicas) share the work.
func TestDeliversEveryEventInOrderDespiteFailures(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{1, 3} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			t.Parallel()
			deliversEveryEventInOrder(t, setupShards(t, shards))
		})
	}
}

func deliversEveryEventInOrder(t *testing.T, e *env) {
	r := newReceiver(t, e.signer, flaky)
	_, reg := e.start([]string{r.srv.URL}, nil)
	_, reg2 := e.start([]string{r.srv.URL}, nil)
	const orders = 60
	for i := range orders {
		e.order(fmt.Sprintf("O%03d", i), ledger.StateUnknown, ledger.StatePending, ledger.StatePaid)
	}
	evs := e.events()
	if len(evs) != 3*orders {
		t.Fatalf("%d events, want %d", len(evs), 3*orders)
	}
	e.waitFor(30*time.Second, "every event delivered", func() bool { return len(r.delivered()) == len(evs) })
	log := r.deliveries()
	checkOrder(t, log)
	failures := 0
	for _, d := range log {
		if !d.ok {
			failures++
		}
	}
	if failures == 0 {
		t.Error("the receiver failed no delivery: the test proves nothing")
	}
	// A delivery is counted once its answer is read, a moment after the
	// receiver has it.
	e.waitFor(5*time.Second, "every delivery counted", func() bool {
		return int(deliveriesOf(t, reg, "0", "ok")+deliveriesOf(t, reg2, "0", "ok")) >= len(evs)
	})
	e.waitFor(5*time.Second, "an empty backlog", func() bool {
		info, err := NewStore(e.rdb, e.ledger.EventStreams()).Stats(context.Background(), EndpointID(r.srv.URL))
		return err == nil && info.Backlog == 0 && info.Failed == 0
	})
	t.Logf("%d events, %d requests (%d answered 500)", len(evs), len(log), failures)
}

func deliveriesOf(t *testing.T, reg *prometheus.Registry, endpoint, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "orderworker_webhook_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["endpoint"] == endpoint && labels["result"] == result {
				v = m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// An event older than MaxAge is kept as failed with the events of its
// order behind it; the metric counts them, the store lists them, and a
// re-send delivers them in order once the endpoint is back.
func TestGivesUpThenResends(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{1, 3} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			t.Parallel()
			givesUpThenResends(t, setupShards(t, shards))
		})
	}
}

func givesUpThenResends(t *testing.T, e *env) {
	var down sync.Map
	down.Store("down", true)
	r := newReceiver(t, e.signer, func(string, int) bool { v, _ := down.Load("down"); return v.(bool) })
	d, reg := e.start([]string{r.srv.URL}, &Options{MaxAge: 300 * time.Millisecond, RetryBase: 20 * time.Millisecond,
		RetryMax: 50 * time.Millisecond, Timeout: time.Second, Poll: 50 * time.Millisecond})
	id := EndpointID(r.srv.URL)
	e.order("A1", ledger.StatePending, ledger.StatePaid)
	e.order("A2", ledger.StateErrored)
	store := NewStore(e.rdb, e.ledger.EventStreams())
	e.waitFor(10*time.Second, "3 failed events", func() bool {
		info, err := store.Stats(context.Background(), id)
		return err == nil && info.Failed == 3 && info.Backlog == 0
	})
	if got := gauge(t, reg, "orderworker_webhook_failed_events"); got != 3 {
		t.Errorf("orderworker_webhook_failed_events = %v, want 3", got)
	}
	failed, err := store.Failed(context.Background(), id, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 3 {
		t.Fatalf("Failed listed %d events, want 3", len(failed))
	}
	behind := 0
	for _, f := range failed {
		switch {
		case f.Attempts > 0 && f.LastError == "HTTP 500":
		case f.Attempts == 0 && strings.Contains(f.LastError, "an earlier event of the order failed"):
			behind++ // A1's paid, never sent while its pending failed
		default:
			t.Errorf("failed event %+v: want attempts and HTTP 500, or held behind its order's earlier event", f)
		}
	}
	if behind != 1 {
		t.Errorf("%d events held behind an earlier one, want 1 (A1's paid)", behind)
	}
	eps, err := store.Endpoints(context.Background())
	if err != nil || len(eps) != 1 || eps[0].URL != DisplayURL(r.srv.URL) || eps[0].Failed != 3 {
		t.Errorf("Endpoints = %+v, %v", eps, err)
	}

	down.Store("down", false)
	n, err := store.Resend(context.Background(), id, nil)
	if err != nil || n != 3 {
		t.Fatalf("Resend = %d, %v; want 3", n, err)
	}
	d.pokeAll()
	e.waitFor(10*time.Second, "the re-sent events delivered", func() bool { return len(r.delivered()) == 3 })
	checkOrder(t, r.deliveries())
	// A delivery is recorded after the endpoint's answer: wait for it.
	e.waitFor(5*time.Second, "nothing failed or waiting after the re-send", func() bool {
		info, err := store.Stats(context.Background(), id)
		return err == nil && info.Failed == 0 && info.Backlog == 0
	})
}

// An order's later event never overtakes its failed one: it waits in
// failed behind it, and re-sending either re-sends both, in order.
func TestLaterEventWaitsBehindAFailedOne(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var down sync.Map
	down.Store("down", true)
	r := newReceiver(t, e.signer, func(string, int) bool { v, _ := down.Load("down"); return v.(bool) })
	d, _ := e.start([]string{r.srv.URL}, &Options{MaxAge: 300 * time.Millisecond, RetryBase: 20 * time.Millisecond,
		RetryMax: 50 * time.Millisecond, Timeout: time.Second, Poll: 50 * time.Millisecond})
	id := EndpointID(r.srv.URL)
	store := NewStore(e.rdb, e.ledger.EventStreams())
	ctx := context.Background()
	e.order("B1", ledger.StateUnknown)
	e.waitFor(10*time.Second, "the unknown event failed", func() bool {
		info, err := store.Stats(ctx, id)
		return err == nil && info.Failed == 1 && info.Backlog == 0
	})
	down.Store("down", false)
	// The order is found paid later: its paid event must wait.
	ref := ledger.Ref{Provider: "tencent", OrderNo: "B1"}
	if _, err := e.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: "t2"}); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.Settle(ctx, ref, "t2", ledger.SetPaid("P-B1")); err != nil {
		t.Fatal(err)
	}
	e.waitFor(10*time.Second, "the paid event held behind the failed one", func() bool {
		info, err := store.Stats(ctx, id)
		return err == nil && info.Failed == 2
	})
	d.pokeAll()
	time.Sleep(300 * time.Millisecond)
	if got := r.delivered(); len(got) != 0 {
		t.Fatalf("delivered %v while the order's first event had failed, want nothing", got)
	}
	failed, err := store.Failed(ctx, id, 10)
	if err != nil || len(failed) != 2 {
		t.Fatalf("Failed = %+v, %v; want 2", failed, err)
	}
	later := failed[0].Event.ID
	if compareIDs(failed[1].Event.ID, later) > 0 {
		later = failed[1].Event.ID
	}
	// Re-sending the later one alone re-sends the order's failed events.
	if n, err := store.Resend(ctx, id, []string{later}); err != nil || n != 2 {
		t.Fatalf("Resend(%s) = %d, %v; want 2 (the order's events, in order)", later, n, err)
	}
	d.pokeAll()
	e.waitFor(10*time.Second, "both delivered", func() bool { return len(r.delivered()) == 2 })
	checkOrder(t, r.deliveries())
	var types []string
	for _, x := range r.deliveries() {
		if x.ok {
			types = append(types, x.typ)
		}
	}
	if !slices.Equal(types, []string{"order.unknown", "order.paid"}) {
		t.Errorf("delivered %v, want the unknown event, then the paid one", types)
	}
	// The order is no longer blocked: its next event would go straight out.
	k := keysFor(id, e.ledger.EventStreams()[0])
	if n := e.rdb.Exists(ctx, k.base+"f:tencent:B1").Val(); n != 0 {
		t.Errorf("the order's blocked list is still there after the re-send")
	}
}

func (d *Dispatcher) pokeAll() {
	for _, ep := range d.eps {
		ep.poke()
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// An endpoint whose URL left the configuration while it still held events
// is listed as unconfigured: no worker delivers them.
func TestUnconfiguredEndpoints(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := newReceiver(t, e.signer, func(string, int) bool { return true })
	e.start([]string{r.srv.URL}, &Options{MaxAge: time.Hour, RetryBase: time.Second, RetryMax: time.Second, Timeout: time.Second})
	e.order("U1", ledger.StatePaid)
	store := NewStore(e.rdb, e.ledger.EventStreams())
	ctx := context.Background()
	e.waitFor(10*time.Second, "the event admitted", func() bool {
		info, err := store.Stats(ctx, EndpointID(r.srv.URL))
		return err == nil && info.Backlog == 1
	})
	if eps, err := store.Unconfigured(ctx, []string{r.srv.URL}); err != nil || len(eps) != 0 {
		t.Errorf("Unconfigured with the URL configured = %+v, %v; want none", eps, err)
	}
	changed := r.srv.URL + "?v=2"
	eps, err := store.Unconfigured(ctx, []string{changed})
	if err != nil || len(eps) != 1 || eps[0].ID != EndpointID(r.srv.URL) || eps[0].Backlog != 1 {
		t.Errorf("Unconfigured after the URL changed = %+v, %v; want the old endpoint with its backlog", eps, err)
	}
}

// An endpoint replaced in its place in the setting (another URL at the
// same index) is listed with the time a worker last registered it, the
// one registered since before it: which of the two the workers deliver to
// now is plain (a black-box run: two lines differing only by their ids).
func TestReplacedEndpointIsListedWithItsRegistration(t *testing.T) {
	t.Parallel()
	e := setup(t)
	store := NewStore(e.rdb, e.ledger.EventStreams())
	ctx := context.Background()
	old, now := "http://127.0.0.1:1/a", "http://user:pw@127.0.0.1:1/a?token=t2"
	if err := store.register(ctx, EndpointID(old), DisplayURL(old), 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := NewStore(e.rdb, e.ledger.EventStreams()).register(ctx, EndpointID(now), DisplayURL(now), 0); err != nil {
		t.Fatal(err)
	}
	eps, err := store.Endpoints(ctx)
	if err != nil || len(eps) != 2 {
		t.Fatalf("Endpoints = %+v, %v; want 2", eps, err)
	}
	if eps[0].ID != EndpointID(now) || eps[1].ID != EndpointID(old) || !eps[0].Registered.After(eps[1].Registered) || eps[1].Registered.IsZero() {
		t.Errorf("Endpoints = %+v; want the one registered last first, both with their times, the latest later", eps)
	}
	if d := time.Since(eps[0].Registered); d < -time.Minute || d > time.Minute {
		t.Errorf("registered %v, %v from now; want Redis's clock, about now", eps[0].Registered, d)
	}
}

// Discard deletes failed events for good.
func TestDiscard(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := newReceiver(t, e.signer, func(string, int) bool { return true })
	e.start([]string{r.srv.URL}, &Options{MaxAge: 100 * time.Millisecond, RetryBase: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond, Timeout: time.Second, Poll: 50 * time.Millisecond})
	id := EndpointID(r.srv.URL)
	e.order("D1", ledger.StatePaid)
	e.order("D2", ledger.StatePaid)
	store := NewStore(e.rdb, e.ledger.EventStreams())
	e.waitFor(10*time.Second, "2 failed events", func() bool {
		info, err := store.Stats(context.Background(), id)
		return err == nil && info.Failed == 2
	})
	failed, _ := store.Failed(context.Background(), id, 10)
	n, err := store.Discard(context.Background(), id, []string{failed[0].Event.ID})
	if err != nil || n != 1 {
		t.Fatalf("Discard(one) = %d, %v", n, err)
	}
	if n, _ := store.Discard(context.Background(), id, nil); n != 1 {
		t.Errorf("Discard(all) = %d, want the 1 left", n)
	}
	if info, _ := store.Stats(context.Background(), id); info.Failed != 0 {
		t.Errorf("failed = %d after discarding all", info.Failed)
	}
	if n, _ := e.rdb.HLen(context.Background(), keysFor(id, e.ledger.EventStreams()[0]).ev).Result(); n != 0 {
		t.Errorf("%d event bodies left after discarding all", n)
	}
}

// A slow endpoint holds up neither the other endpoints nor anything else:
// while one endpoint answers nothing, the other receives every event.
func TestSlowEndpointDoesNotHoldOthers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	slow := newReceiver(t, e.signer, nil)
	slow.hold = make(chan struct{})
	fast := newReceiver(t, e.signer, nil)
	e.start([]string{slow.srv.URL, fast.srv.URL}, &Options{RetryBase: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, Timeout: 20 * time.Second, Senders: 4, Poll: 50 * time.Millisecond})
	for i := range 30 {
		e.order(fmt.Sprintf("S%02d", i), ledger.StatePaid)
	}
	e.waitFor(15*time.Second, "the fast endpoint to receive every event", func() bool { return len(fast.delivered()) == 30 })
	if n := len(slow.deliveries()); n != 0 {
		t.Errorf("the held endpoint answered %d requests", n)
	}
	slow.mu.Lock()
	close(slow.hold)
	slow.hold = nil
	slow.mu.Unlock()
	e.waitFor(15*time.Second, "the slow endpoint to catch up", func() bool { return len(slow.delivered()) == 30 })
}

// An endpoint that answers slowly, within the timeout but later than a
// Redis write may take, has each event delivered once: its delivery is
// recorded after the answer. One that does not answer within the timeout
// has its attempts, their error and the backoff between them recorded,
// and is given up on with them at MaxAge.
func TestSlowAnswersAreRecorded(t *testing.T) {
	t.Parallel()
	e := setup(t)
	slow := newReceiver(t, e.signer, nil)
	slow.delay = redisWriteTimeout + 700*time.Millisecond
	dead := newReceiver(t, e.signer, nil)
	dead.hold = make(chan struct{}) // never answers
	t.Cleanup(func() { close(dead.hold) })
	timeout := redisWriteTimeout + 1500*time.Millisecond
	e.start([]string{slow.srv.URL, dead.srv.URL}, &Options{RetryBase: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		Timeout: timeout, MaxAge: timeout + time.Second, Senders: 4, Poll: 50 * time.Millisecond})
	e.order("Slow1", ledger.StatePending, ledger.StatePaid)
	e.order("Slow2", ledger.StatePaid)
	store := NewStore(e.rdb, e.ledger.EventStreams())
	e.waitFor(3*timeout+10*time.Second, "the slow endpoint's 3 events delivered and recorded", func() bool {
		info, err := store.Stats(context.Background(), EndpointID(slow.srv.URL))
		return len(slow.delivered()) == 3 && err == nil && info.Backlog == 0 && info.Failed == 0
	})
	if n := len(slow.deliveries()); n != 3 {
		t.Errorf("the slow endpoint got %d requests for 3 events, each answered 204: want each once", n)
	}
	checkOrder(t, slow.deliveries())
	deadID := EndpointID(dead.srv.URL)
	e.waitFor(4*timeout+10*time.Second, "the dead endpoint's events kept as failed", func() bool {
		info, err := store.Stats(context.Background(), deadID)
		return err == nil && info.Failed == 3 && info.Backlog == 0
	})
	failed, err := store.Failed(context.Background(), deadID, 10)
	if err != nil {
		t.Fatal(err)
	}
	tried := 0
	for _, f := range failed {
		if f.Attempts > 0 {
			tried++
			if !strings.Contains(f.LastError, "Timeout") && !strings.Contains(f.LastError, "deadline") {
				t.Errorf("failed event %+v: want the timeout as its last error", f)
			}
		}
	}
	if tried != 2 { // Slow1's pending and Slow2's paid; Slow1's paid waits behind its pending
		t.Errorf("failed events %+v: want the two sent ones with their attempts recorded", failed)
	}
}

// A process that read events from the group and died before admitting
// them, or that died holding a lease mid-delivery, loses nothing: another
// process admits the first (XAUTOCLAIM) and re-sends the second when the
// lease is over.
func TestCrashedConsumerLosesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := newReceiver(t, e.signer, nil)
	ctx := context.Background()
	stream := e.ledger.EventStreams()[0]
	k := keysFor(EndpointID(r.srv.URL), stream)
	if err := e.rdb.XGroupCreateMkStream(ctx, stream.Key, k.group, "$").Err(); err != nil {
		t.Fatal(err)
	}
	e.order("C1", ledger.StatePaid)
	e.order("C2", ledger.StatePaid)
	// A dead process read both events and admitted none.
	got, err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: k.group, Consumer: "dead-1", Streams: []string{stream.Key, ">"}}).Result()
	if err != nil || len(got[0].Messages) != 2 {
		t.Fatalf("XREADGROUP = %v, %v", got, err)
	}
	e.order("C3", ledger.StatePaid)
	// Another admitted C3 and leased it, then died mid-delivery.
	dead := &Dispatcher{rdb: e.rdb, consumer: "dead-2", now: time.Now, opts: Options{Timeout: 200 * time.Millisecond}}
	ep := &endpoint{k: k, wake: make(chan struct{}, 1)}
	if _, err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: k.group, Consumer: "dead-2", Streams: []string{stream.Key, ">"}}).Result(); err != nil {
		t.Fatal(err)
	}
	if _, err := dead.admit(ctx, ep, slogDiscard(), 0); err != nil {
		t.Fatal(err)
	}
	items, _, err := dead.lease(ctx, ep, time.Now(), 10)
	if err != nil || len(items) != 3 {
		t.Fatalf("lease = %d items, %v; want 3 (the dead process's admit took over all pending entries)", len(items), err)
	}
	e.start([]string{r.srv.URL}, &Options{RetryBase: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, Timeout: 200 * time.Millisecond, Poll: 50 * time.Millisecond})
	e.waitFor(10*time.Second, "all 3 events delivered after the lease ran out", func() bool { return len(r.delivered()) == 3 })
	if n := len(r.deliveries()); n != 3 {
		t.Errorf("%d requests for 3 events, want 3", n)
	}
	p, err := e.rdb.XPending(ctx, stream.Key, k.group).Result()
	if err != nil || p.Count != 0 {
		t.Errorf("XPENDING = %+v, %v: want no entry left pending", p, err)
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Webhook times are read on Redis's clock: a host whose own clock is an
// hour off still reads Redis's time, and keeps the last offset while
// Redis cannot be asked.
func TestRedisClock(t *testing.T) {
	t.Parallel()
	e := setup(t)
	skew := time.Hour
	c := newRedisClock(e.rdb)
	c.local = func() time.Time { return time.Now().Add(skew) }
	if d := c.Now().Sub(time.Now()); d < -time.Second || d > time.Second {
		t.Errorf("a clock an hour ahead reads %s off Redis's time, want within a second", d)
	}
	skew = -time.Hour
	c.mu.Lock()
	c.checked = time.Time{} // measure again
	c.mu.Unlock()
	if d := c.Now().Sub(time.Now()); d < -time.Second || d > time.Second {
		t.Errorf("a clock an hour behind reads %s off Redis's time, want within a second", d)
	}
	down := newRedisClock(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1}))
	if d := down.Now().Sub(time.Now()); d < -time.Second || d > time.Second {
		t.Errorf("without Redis the clock reads %s off the local one, want the local time", d)
	}
}

// The scripts keep an order's events right around a give-up: a delivery
// recorded after another process gave up on the event takes it out of
// failed and unblocks the order; a re-send puts the order's failed events
// back oldest first, also one failed before orders were blocked.
func TestGiveUpScriptsKeepTheOrder(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	k := keysFor("ep", e.ledger.EventStreams()[0])
	body := `{"provider":"tencent","order_no":"X"}`
	run := func(s *redis.Script, keys []string, args ...any) int {
		t.Helper()
		n, err := s.Run(ctx, e.rdb, keys, args...).Int()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// E1 is leased (score 5000) and given up on; then the lease holder's
	// delivery, which had succeeded, is recorded.
	e.rdb.HSet(ctx, k.ev, "100-0", body)
	e.rdb.RPush(ctx, k.base+"q:tencent:X", "100-0")
	e.rdb.ZAdd(ctx, k.due, redis.Z{Score: 5000, Member: "100-0"})
	if n := run(giveUpScript, []string{k.due, k.ev, k.st, k.backlog, k.failed}, k.base, "100-0", 5000, 6000, `{"n":3}`); n != 1 {
		t.Fatalf("give-up moved %d, want 1", n)
	}
	if n := run(doneScript, []string{k.due, k.ev, k.st, k.backlog, k.failed}, k.base, "100-0", 7000); n != 1 {
		t.Fatalf("done = %d, want 1", n)
	}
	if n := e.rdb.ZCard(ctx, k.failed).Val() + e.rdb.Exists(ctx, k.base+"f:tencent:X").Val(); n != 0 {
		t.Errorf("after the late delivery: %d failed or blocked left, want none", n)
	}
	// An event failed before orders were blocked (no blocked list), then
	// a later one given up on: a re-send of all puts the older first.
	e.rdb.HSet(ctx, k.ev, "200-0", body, "300-0", body)
	e.rdb.ZAdd(ctx, k.failed, redis.Z{Score: 1, Member: "200-0"})
	e.rdb.RPush(ctx, k.base+"q:tencent:X", "300-0")
	e.rdb.ZAdd(ctx, k.due, redis.Z{Score: 8000, Member: "300-0"})
	run(giveUpScript, []string{k.due, k.ev, k.st, k.backlog, k.failed}, k.base, "300-0", 8000, 9000, `{"n":3}`)
	if n := run(resendScript, []string{k.due, k.ev, k.st, k.backlog, k.failed}, k.base, 10000, "200-0", "300-0"); n != 2 {
		t.Fatalf("resend moved %d, want 2", n)
	}
	if q := e.rdb.LRange(ctx, k.base+"q:tencent:X", 0, -1).Val(); !slices.Equal(q, []string{"200-0", "300-0"}) {
		t.Errorf("queue after the re-send = %v, want [200-0 300-0]", q)
	}
}

// Events written after Setup and before Run reads are delivered: the
// worker sets its endpoints' groups up before it takes its first order.
func TestSetupBeforeTheFirstOrderMissesNoEvent(t *testing.T) {
	t.Parallel()
	e := setupShards(t, 3)
	r := newReceiver(t, e.signer, nil)
	o := Options{RetryBase: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, Timeout: 2 * time.Second, Poll: 50 * time.Millisecond,
		Registerer: prometheus.NewRegistry(), Streams: e.ledger.EventStreams()}
	d, err := New(e.rdb, []string{r.srv.URL}, e.signer, &o)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		e.order(fmt.Sprintf("Early%d", i), ledger.StatePaid)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	want := e.events()
	if len(want) != 6 {
		t.Fatalf("%d events written, want 6", len(want))
	}
	e.waitFor(10*time.Second, "every early event delivered", func() bool { return len(r.delivered()) == len(want) })
	for _, ev := range want {
		if !r.delivered()[ev.ID] {
			t.Errorf("event %s (%s) not delivered", ev.ID, ev.Data.OrderNo)
		}
	}
}

// An endpoint that accepts connections and never answers holds every
// request until its timeout. Events whose MAX_AGE has passed by more than
// one delivery's timeout when their turn comes are kept as failed without
// being sent: a stale event is not delivered, and a backlog behind such an
// endpoint is given up on as its events age, not one timeout each.
func TestBlackholedEndpointGivesUpWithoutSendingStaleEvents(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var arrived atomic.Int64
	stop := make(chan struct{})
	hole := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		arrived.Add(1)
		_, _ = io.Copy(io.Discard, req.Body) // so that a closed connection ends the request
		select {
		case <-req.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(hole.Close)
	t.Cleanup(func() { close(stop) }) // runs first
	e.start([]string{hole.URL}, &Options{MaxAge: 500 * time.Millisecond, RetryBase: 10 * time.Millisecond,
		RetryMax: 50 * time.Millisecond, Timeout: 200 * time.Millisecond, Senders: 2, Poll: 50 * time.Millisecond})
	const n = 30
	for i := range n {
		e.order(fmt.Sprintf("H%02d", i), ledger.StatePaid)
	}
	store := NewStore(e.rdb, e.ledger.EventStreams())
	id := EndpointID(hole.URL)
	e.waitFor(30*time.Second, "every event kept as failed", func() bool {
		info, err := store.Stats(context.Background(), id)
		return err == nil && info.Failed == n && info.Backlog == 0
	})
	if got := arrived.Load(); got >= n {
		t.Errorf("the endpoint got %d requests for %d events; want the stale ones kept as failed unsent", got, n)
	}
	failed, err := store.Failed(context.Background(), id, n)
	if err != nil {
		t.Fatal(err)
	}
	unsent := 0
	for _, f := range failed {
		if strings.Contains(f.LastError, "not sent again: older than ORDERWORKER_WEBHOOK_MAX_AGE") {
			unsent++
		}
	}
	if unsent == 0 {
		t.Errorf("none of %d failed events says it was kept unsent past its MAX_AGE", len(failed))
	}
}

// With Options.Durable, an event goes out only once the replicas hold it:
// while the replica is stopped (the change's write was not acknowledged,
// and a failover now would take it back, and the order's redone change
// would come with an event of another id), nothing is delivered; once the
// replica catches up, the event is.
func TestEventWaitsUntilTheReplicasHoldIt(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rep := rs.AttachReplica(t)
	s, err := NewSigner(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	rdb := rs.Client(t)
	// The worker's ledger here does not wait, so that its writes go on
	// while the replica is stopped, as a worker's unacknowledged ones do.
	e := &env{t: t, rdb: rdb, ledger: ledger.New(rdb, &ledger.Options{Durable: ledger.DurableOff}), signer: s}
	r := newReceiver(t, s, nil)
	e.start([]string{r.srv.URL}, &Options{Timeout: 200 * time.Millisecond, Poll: 50 * time.Millisecond,
		Durable: ledger.New(rdb, &ledger.Options{WaitTimeout: 100 * time.Millisecond})})

	e.order("D1", ledger.StatePaid)
	e.waitFor(10*time.Second, "D1's event", func() bool { return len(r.delivered()) == 1 })

	rep.Pause(t)
	e.order("D2", ledger.StatePaid)
	time.Sleep(2 * time.Second) // more than a lease (2 × 200ms + 1s)
	for _, d := range r.deliveries() {
		if d.order == "D2" {
			rep.Resume()
			t.Fatalf("D2's event was sent (%s) while the replica did not hold it", d.id)
		}
	}
	rep.Resume()
	e.waitFor(15*time.Second, "D2's event once the replica holds it", func() bool { return len(r.delivered()) == 2 })
	checkOrder(t, r.deliveries())
}

// A phone number in an order's reason leaves the process hidden whole, by
// webhook as by GET /v1/events (which serves ledger.ReadEvents): nothing
// of it, not the seven digits an operator's mask keeps.
func TestEventBodiesHidePhoneNumbers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := newReceiver(t, e.signer, nil)
	e.start([]string{r.srv.URL}, nil)
	ctx := context.Background()
	for i, reason := range []string{"user phone 15812348558 not bound", "user phone 158****8558 not bound"} {
		ref := ledger.Ref{Provider: "tencent", OrderNo: fmt.Sprintf("P%d", i)}
		if _, err := e.ledger.Claim(ctx, ref, []byte(`{}`), "h-"+ref.OrderNo); err != nil {
			t.Fatal(err)
		}
		if _, err := e.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: "t"}); err != nil {
			t.Fatal(err)
		}
		if err := e.ledger.Settle(ctx, ref, "t", ledger.SetErrored(reason)); err != nil {
			t.Fatal(err)
		}
	}
	e.waitFor(10*time.Second, "both events delivered", func() bool { return len(r.delivered()) == 2 })
	remnant := regexp.MustCompile(`[0-9]{3}\*{4}[0-9]{4}|[0-9]{4}`)
	for _, d := range r.deliveries() {
		var ev ledger.Event
		if err := json.Unmarshal([]byte(d.body), &ev); err != nil {
			t.Fatal(err)
		}
		if m := remnant.FindString(ev.Data.Reason); m != "" || ev.Data.Reason != "user phone *** not bound" {
			t.Errorf("webhook body %s: want the phone number hidden whole (***), found %q", d.body, m)
		}
	}
	page, err := e.ledger.ReadEvents(ctx, "", 10)
	if err != nil || len(page.Events) != 2 {
		t.Fatalf("ReadEvents = %+v, %v", page, err)
	}
	for _, ev := range page.Events {
		if ev.Type == "order.errored" && ev.Data.Reason != "user phone *** not bound" {
			t.Errorf("pulled event reason %q, want the phone number hidden whole", ev.Data.Reason)
		}
	}
}

// A process that stops admits everything it read before it leaves the
// group, also beyond what one admit takes (20 × 200 entries): XGROUP
// DELCONSUMER would drop the entries it still held, and no process would
// ever deliver them.
func TestLeavingAdmitsEverythingRead(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	stream := e.ledger.EventStreams()[0]
	d, err := New(e.rdb, []string{"http://127.0.0.1:1/hook"}, e.signer, &Options{Streams: e.ledger.EventStreams()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	ep := d.eps[0]
	const n = 4500
	pipe := e.rdb.Pipeline()
	for i := range n {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream.Key, Values: []any{"type", "order.paid", "provider", "tencent",
			"order_no", fmt.Sprintf("L%04d", i), "state", "paid", "at", "1700000000000"}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// The process read them all, and stops before admitting any.
	got, err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: ep.k.group, Consumer: d.consumer,
		Streams: []string{stream.Key, ">"}, Count: n}).Result()
	if err != nil || len(got[0].Messages) != n {
		t.Fatalf("XREADGROUP = %d entries, %v; want %d", len(got[0].Messages), err, n)
	}
	d.leave(ctx, ep, slogDiscard())
	if admitted := e.rdb.HLen(ctx, ep.k.ev).Val(); admitted != n {
		t.Errorf("%d of %d events read admitted before leaving the group; the rest are lost", admitted, n)
	}
	if p, err := e.rdb.XPending(ctx, stream.Key, ep.k.group).Result(); err != nil || p.Count != 0 {
		t.Errorf("XPENDING = %+v, %v; want nothing pending", p, err)
	}
	cs, err := e.rdb.XInfoConsumers(ctx, stream.Key, ep.k.group).Result()
	if err != nil || slices.ContainsFunc(cs, func(c redis.XInfoConsumer) bool { return c.Name == d.consumer }) {
		t.Errorf("consumers %+v, %v: want the process's consumer gone once it left", cs, err)
	}
}

// gaugeOf reads a gauge's value for one endpoint label; ok is false when
// no such series is exported.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name, endpoint string) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" && l.GetValue() == endpoint {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// An endpoint dropped from the configuration while it holds failed or
// undelivered events still shows in the gauges, labelled by its id, so
// that the alerts on them see it; one that holds nothing does not.
func TestUnconfiguredEndpointsKeepTheirGauges(t *testing.T) {
	t.Parallel()
	e := setup(t)
	old := newReceiver(t, e.signer, func(string, int) bool { return true })
	empty := newReceiver(t, e.signer, nil)
	e.start([]string{old.srv.URL, empty.srv.URL}, &Options{MaxAge: 200 * time.Millisecond, RetryBase: 20 * time.Millisecond,
		RetryMax: 50 * time.Millisecond, Timeout: time.Second, Poll: 50 * time.Millisecond})
	e.order("R1", ledger.StatePaid)
	e.order("R2", ledger.StatePaid)
	store := NewStore(e.rdb, e.ledger.EventStreams())
	e.waitFor(10*time.Second, "2 failed events for the old endpoint", func() bool {
		info, err := store.Stats(context.Background(), EndpointID(old.srv.URL))
		return err == nil && info.Failed == 2 && info.Backlog == 0
	})
	e.waitFor(10*time.Second, "the other endpoint's deliveries", func() bool { return len(empty.delivered()) == 2 })
	// A worker configured with another URL only.
	reg := prometheus.NewRegistry()
	if _, err := New(e.rdb, []string{"http://127.0.0.1:1/new"}, e.signer, &Options{Streams: e.ledger.EventStreams(), Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if v, ok := gaugeOf(t, reg, "orderworker_webhook_failed_events", EndpointID(old.srv.URL)); !ok || v != 2 {
		t.Errorf("orderworker_webhook_failed_events{endpoint=%q} = %v (exported %v), want 2", EndpointID(old.srv.URL), v, ok)
	}
	if _, ok := gaugeOf(t, reg, "orderworker_webhook_backlog_events", EndpointID(old.srv.URL)); !ok {
		t.Errorf("no orderworker_webhook_backlog_events for the unconfigured endpoint")
	}
	if _, ok := gaugeOf(t, reg, "orderworker_webhook_failed_events", "0"); !ok {
		t.Errorf("no orderworker_webhook_failed_events for the configured endpoint")
	}
	e.waitFor(5*time.Second, "the delivered endpoint's backlog empty", func() bool {
		info, err := store.Stats(context.Background(), EndpointID(empty.srv.URL))
		return err == nil && info.Backlog == 0
	})
	if _, ok := gaugeOf(t, reg, "orderworker_webhook_failed_events", EndpointID(empty.srv.URL)); ok {
		t.Errorf("an unconfigured endpoint holding nothing is exported")
	}
}

// lostTotal reads orderworker_webhook_events_lost_total for one endpoint
// label; ok is false when no such series is exported.
func lostTotal(t *testing.T, reg *prometheus.Registry, endpoint string) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "orderworker_webhook_events_lost_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" && l.GetValue() == endpoint {
					if m.GetCounter() == nil {
						t.Fatalf("orderworker_webhook_events_lost_total is not a counter")
					}
					return m.GetCounter().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// newCollecting is a Dispatcher for urls that is never run, with a registry
// of its own: a worker that only exports the metrics (another replica, or
// the same worker after a restart).
func (e *env) newCollecting(urls []string) *prometheus.Registry {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	if _, err := New(e.rdb, urls, e.signer, &Options{Streams: e.ledger.EventStreams(), Registerer: reg}); err != nil {
		e.t.Fatal(err)
	}
	return reg
}

// wantLost checks the lost total every worker exports for an endpoint.
func wantLost(t *testing.T, reg *prometheus.Registry, endpoint string, want float64) {
	t.Helper()
	if got, ok := lostTotal(t, reg, endpoint); !ok || got != want {
		t.Errorf("orderworker_webhook_events_lost_total{endpoint=%q} = %v (exported: %v), want %v", endpoint, got, ok, want)
	}
}

// syncLog collects a logger's output.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Events trimmed from the stream (retention) after a process read them and
// before any admitted them are counted as lost, once, on the endpoint's
// label, in Redis: every worker, a restarted one too, exports the same
// total.
func TestEventsTrimmedBeforeAdmissionAreCounted(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	stream := e.ledger.EventStreams()[0]
	urls := []string{"http://127.0.0.1:1/a", "http://127.0.0.1:1/b"}
	reg := prometheus.NewRegistry()
	d, err := New(e.rdb, urls, e.signer, &Options{Streams: e.ledger.EventStreams(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	ep := d.eps[1]
	for i := range 5 {
		e.order(fmt.Sprintf("T%d", i), ledger.StatePaid)
	}
	// A process read them, and died before admitting them; retention
	// trimmed them meanwhile.
	if _, err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: ep.k.group, Consumer: "dead",
		Streams: []string{stream.Key, ">"}}).Result(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.XTrimMaxLen(ctx, stream.Key, 0).Err(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := d.admit(ctx, ep, slogDiscard(), readBatch); err != nil {
			t.Fatal(err)
		}
	}
	wantLost(t, reg, "1", 5)
	wantLost(t, reg, "0", 0)
	// Another worker, or this one restarted, reports the same total.
	wantLost(t, e.newCollecting(urls), "1", 5)
	if p, err := e.rdb.XPending(ctx, stream.Key, ep.k.group).Result(); err != nil || p.Count != 0 {
		t.Errorf("XPENDING = %+v, %v; want the trimmed entries acknowledged", p, err)
	}
}

// Events trimmed from the stream before any worker read them (every
// webhook worker stopped while orders were settled) are counted as lost
// too, once, by the first worker that starts, with a warning; what the
// stream still holds is delivered.
func TestEventsTrimmedBeforeAnyWorkerReadThemAreCounted(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	stream := e.ledger.EventStreams()[0]
	r := newReceiver(t, e.signer, nil)
	other := newReceiver(t, e.signer, nil)
	urls := []string{other.srv.URL, r.srv.URL}
	// The worker set the groups up, then stopped; 8 events were written
	// and retention trimmed the first 5 before any worker came back.
	first, err := New(e.rdb, urls, e.signer, &Options{Streams: e.ledger.EventStreams()})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		e.order(fmt.Sprintf("N%d", i), ledger.StatePaid)
	}
	if err := e.rdb.XTrimMaxLen(ctx, stream.Key, 3).Err(); err != nil {
		t.Fatal(err)
	}
	kept, err := e.rdb.XRange(ctx, stream.Key, "-", "+").Result()
	if err != nil || len(kept) != 3 {
		t.Fatalf("XRANGE = %d entries, %v; want 3", len(kept), err)
	}
	// Before any worker admits them: the 3 the stream holds wait, not the
	// 8 the group's lag counts.
	if info, err := NewStore(e.rdb, e.ledger.EventStreams()).Stats(ctx, EndpointID(r.srv.URL)); err != nil || info.Unadmitted != 3 {
		t.Errorf("Stats before a worker came back = %+v, %v; want 3 unadmitted (the 5 trimmed are not waiting)", info, err)
	}
	logs := &syncLog{}
	o := &Options{RetryBase: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, Timeout: 2 * time.Second, Poll: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	_, reg := e.start(urls, o)
	_, reg2 := e.start(urls, &Options{RetryBase: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, Timeout: 2 * time.Second, Poll: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	e.waitFor(10*time.Second, "the 3 events kept delivered to both endpoints", func() bool {
		return len(r.delivered()) == 3 && len(other.delivered()) == 3
	})
	for _, k := range kept {
		if !r.delivered()[stream.EventID(k.ID)] {
			t.Errorf("event %s, kept in the stream, not delivered", k.ID)
		}
	}
	// Counted once for each endpoint, though two workers admit them.
	time.Sleep(300 * time.Millisecond)
	for _, g := range []*prometheus.Registry{reg, reg2, e.newCollecting(urls)} {
		wantLost(t, g, "0", 5)
		wantLost(t, g, "1", 5)
	}
	if n := strings.Count(logs.String(), "lost=5 never_read=5"); n != 2 {
		t.Errorf("%d warnings with lost=5 never_read=5, want 2 (one per endpoint); log:\n%s", n, logs.String())
	}
	info, err := NewStore(e.rdb, e.ledger.EventStreams()).Stats(ctx, EndpointID(r.srv.URL))
	if err != nil || info.Lost != 5 || info.Unadmitted != 0 {
		t.Errorf("Stats = %+v, %v; want 5 lost and nothing unadmitted (the group's count no longer holds the trimmed entries)", info, err)
	}
	// More events, and no more loss.
	e.order("N8", ledger.StatePaid)
	e.waitFor(10*time.Second, "the next event delivered", func() bool { return len(r.delivered()) == 4 })
	wantLost(t, reg, "1", 5)
}

// Redis 7.0 loses a group's read count when it restarts from its AOF (it
// writes XREADGROUP there as an XCLAIM that does not carry the count), and
// on its replicas: the count falls back to what it was when the group was
// created. Nothing was lost, and nothing is counted so: the endpoint's own
// copy of the count stands, and the group's is set back to it.
func TestGroupReadCountLostByRedisIsNoLoss(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	stream := e.ledger.EventStreams()[0]
	r := newReceiver(t, e.signer, nil)
	urls := []string{r.srv.URL}
	o := &Options{RetryBase: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, Timeout: 2 * time.Second, Poll: 50 * time.Millisecond}
	_, reg := e.start(urls, o)
	for i := range 5 {
		e.order(fmt.Sprintf("R%d", i), ledger.StatePaid)
	}
	e.waitFor(10*time.Second, "5 events delivered", func() bool { return len(r.delivered()) == 5 })
	groups, err := e.rdb.XInfoGroups(ctx, stream.Key).Result()
	if err != nil || len(groups) != 1 || groups[0].EntriesRead != 5 {
		t.Fatalf("XINFO GROUPS = %+v, %v; want one group that read 5", groups, err)
	}
	// What a restart from the AOF leaves of the group's count.
	if err := e.rdb.Do(ctx, "XGROUP", "SETID", stream.Key, groups[0].Name, groups[0].LastDeliveredID, "ENTRIESREAD", 0).Err(); err != nil {
		t.Fatal(err)
	}
	e.order("R5", ledger.StatePaid)
	e.waitFor(10*time.Second, "the next event delivered", func() bool { return len(r.delivered()) == 6 })
	time.Sleep(200 * time.Millisecond)
	wantLost(t, reg, "0", 0)
	info, err := NewStore(e.rdb, e.ledger.EventStreams()).Stats(ctx, EndpointID(r.srv.URL))
	if err != nil || info.Lost != 0 || info.Unadmitted != 0 {
		t.Errorf("Stats = %+v, %v; want nothing lost, nothing unadmitted", info, err)
	}
}

// A worker of an earlier version, which reads without raising the
// endpoint's copy of the read count (a rolling deploy), leaves the group's
// count ahead of the copy: the larger stands, and nothing it read is
// counted lost.
func TestReadsByAnEarlierWorkerAreNoLoss(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	stream := e.ledger.EventStreams()[0]
	k := keysFor("ep1", stream)
	if err := groupScript.Run(ctx, e.rdb, []string{stream.Key}, k.group, k.base).Err(); err != nil {
		t.Fatal(err)
	}
	admit := func() []any {
		v, err := admitScript.Run(ctx, e.rdb, []string{stream.Key, k.ev, k.due, k.backlog, k.failed, k.st, k.lost},
			k.group, "new", k.base, time.Now().UnixMilli(), 200, 200, k.id).Slice()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for i := range 3 {
		e.order(fmt.Sprintf("A%d", i), ledger.StatePaid)
	}
	admit()
	for i := range 4 {
		e.order(fmt.Sprintf("B%d", i), ledger.StatePaid)
	}
	// The earlier worker reads the 4 new entries itself.
	if err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: k.group, Consumer: "old", Streams: []string{stream.Key, ">"}, Count: 10}).Err(); err != nil {
		t.Fatal(err)
	}
	v := admit()
	if admitted, unread := v[0].(int64), v[3].(int64); admitted != 4 || unread != 0 {
		t.Errorf("admit after an earlier worker's read: %v admitted, %v counted lost unread; want 4 and 0", admitted, unread)
	}
	if n, _ := e.rdb.HGet(ctx, k.lost, k.id).Int(); n != 0 {
		t.Errorf("lost = %d, want 0", n)
	}
}

// A stream trimmed to nothing while no worker ran: all of it is counted.
func TestEventsAllTrimmedBeforeAnyWorkerReadThemAreCounted(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	stream := e.ledger.EventStreams()[0]
	urls := []string{"http://127.0.0.1:1/a"}
	reg := prometheus.NewRegistry()
	d, err := New(e.rdb, urls, e.signer, &Options{Streams: e.ledger.EventStreams(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		e.order(fmt.Sprintf("A%d", i), ledger.StatePaid)
	}
	if err := e.rdb.XTrimMaxLen(ctx, stream.Key, 0).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := d.admit(ctx, d.eps[0], slogDiscard(), readBatch)
	if err != nil || res.lostUnread != 4 || res.admitted != 0 {
		t.Fatalf("admit = %+v, %v; want 4 lost unread, none admitted", res, err)
	}
	for range 2 {
		if res, err := d.admit(ctx, d.eps[0], slogDiscard(), readBatch); err != nil || res.lostUnread != 0 {
			t.Fatalf("admit again = %+v, %v; want nothing counted twice", res, err)
		}
	}
	wantLost(t, reg, "0", 4)
}

// A gap that a read passed over before it was counted (a worker of an
// older version read on past it), which Redis before 8 keeps in the
// group's read count, is counted once the group has read everything.
func TestGapReadPastIsCounted(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	stream := e.ledger.EventStreams()[0]
	reg := prometheus.NewRegistry()
	d, err := New(e.rdb, []string{"http://127.0.0.1:1/a"}, e.signer, &Options{Streams: e.ledger.EventStreams(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	ep := d.eps[0]
	for i := range 6 {
		e.order(fmt.Sprintf("G%d", i), ledger.StatePaid)
	}
	if err := e.rdb.XTrimMaxLen(ctx, stream.Key, 2).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: ep.k.group, Consumer: "old",
		Streams: []string{stream.Key, ">"}}).Result(); err != nil {
		t.Fatal(err)
	}
	si, err := e.rdb.XInfoStream(ctx, stream.Key).Result()
	if err != nil {
		t.Fatal(err)
	}
	gs, err := e.rdb.XInfoGroups(ctx, stream.Key).Result()
	if err != nil || len(gs) != 1 {
		t.Fatalf("XINFO GROUPS = %+v, %v", gs, err)
	}
	// Redis 8 recounts a read past a gap: nothing is left to find.
	want := si.EntriesAdded - gs[0].EntriesRead
	t.Logf("after the read past the gap: entries-added %d, entries-read %d", si.EntriesAdded, gs[0].EntriesRead)
	res, err := d.admit(ctx, ep, slogDiscard(), readBatch)
	if err != nil || res.lostUnread != want || res.admitted != 2 {
		t.Fatalf("admit = %+v, %v; want %d lost unread and the 2 events read admitted", res, err, want)
	}
	if res, err := d.admit(ctx, ep, slogDiscard(), readBatch); err != nil || res.lostUnread != 0 {
		t.Fatalf("admit again = %+v, %v; want nothing counted twice", res, err)
	}
	wantLost(t, reg, "0", float64(want))
}

// tripCounter counts a client's round trips: one per command, one per
// pipeline.
type tripCounter struct{ n atomic.Int64 }

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// The endpoints hash keeps every endpoint ever registered: a scrape, and
// the start-up check for endpoints left behind, read the many dropped
// endpoints that hold nothing in one round trip, not a few each.
func TestDroppedEndpointsCostOneRoundTrip(t *testing.T) {
	t.Parallel()
	e := setupShards(t, 3)
	ctx := context.Background()
	rdb := redis.NewClient(e.rdb.Options())
	t.Cleanup(func() { rdb.Close() })
	trips := &tripCounter{}
	rdb.AddHook(trips)
	reg := prometheus.NewRegistry()
	urls := []string{"http://127.0.0.1:1/a"}
	d, err := New(rdb, urls, e.signer, &Options{Streams: e.ledger.EventStreams(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	store := NewStore(rdb, e.ledger.EventStreams())
	cost := func(f func()) int64 {
		t.Helper()
		trips.n.Store(0)
		f()
		return trips.n.Load()
	}
	scrape := func() {
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	unconfigured := func() {
		if eps, err := store.Unconfigured(ctx, urls); err != nil || len(eps) != 0 {
			t.Fatalf("Unconfigured = %+v, %v; want none", eps, err)
		}
	}
	scrapeBase, listBase := cost(scrape), cost(unconfigured)
	for i := range 50 {
		u := fmt.Sprintf("http://127.0.0.1:1/old%d", i)
		if err := store.register(ctx, EndpointID(u), DisplayURL(u), i); err != nil {
			t.Fatal(err)
		}
	}
	if got := cost(scrape); got > scrapeBase+1 {
		t.Errorf("a scrape takes %d round trips with 50 dropped endpoints holding nothing, %d without", got, scrapeBase)
	}
	if got := cost(unconfigured); got > listBase+1 {
		t.Errorf("Unconfigured takes %d round trips with 50 dropped endpoints holding nothing, %d without", got, listBase)
	}
}
