package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/orderworker/orderworker/internal/devmode"

	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
	"github.com/orderworker/orderworker/tasks/webhook"
)

type serveOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *serveOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *serveOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Without a token, serve refuses to start unless told -open.
func TestServeRefusesWithoutToken(t *testing.T) {
	t.Parallel()
	code, _, errs := runCLI(t, "redis://127.0.0.1:1/0", "", "serve", "-addr", "127.0.0.1:0")
	if code != exitError || !strings.Contains(errs, "ORDERWORKER_API_TOKENS") || !strings.Contains(errs, "-open") {
		t.Errorf("serve without a token: exit %d, stderr %q; want %d naming ORDERWORKER_API_TOKENS and -open", code, errs, exitError)
	}
	if code, _, _ := runCLI(t, "redis://127.0.0.1:1/0", "", "serve", "-addr", "127.0.0.1:0", "extra"); code != exitError {
		t.Errorf("serve with an argument: exit %d, want %d", code, exitError)
	}
	// The worker's log settings apply to serve too; bad ones are refused.
	for name, v := range map[string]string{"ORDERWORKER_LOG_FORMAT": "yaml", "ORDERWORKER_LOG_LEVEL": "loud"} {
		env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "ORDERWORKER_API_TOKENS": "t", name: v}
		if code, _, errs := runCLIEnv(t, env, "", "serve", "-addr", "127.0.0.1:0"); code != exitError || !strings.Contains(errs, v) {
			t.Errorf("serve with %s=%s: exit %d, stderr %q; want %d naming it", name, v, code, errs, exitError)
		}
	}
}

// startServe runs enqueue serve in-process until the test ends and returns
// its base URL and a func that stops it (as SIGTERM does) and returns the
// exit code.
func startServe(t *testing.T, env map[string]string, args ...string) (string, func() int) {
	t.Helper()
	base, stop, _ := startServeLogs(t, env, append([]string{"-log-format", "json"}, args...)...)
	return base, stop
}

// startServeLogs is startServe with serve's log (its stderr) returned too;
// args must give -log-format.
func startServeLogs(t *testing.T, env map[string]string, args ...string) (string, func() int, *serveOutput) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &serveOutput{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "-addr", "127.0.0.1:0"}, args...),
			func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, stderr)
	}()
	re := regexp.MustCompile(`(?:"msg":"api listening","addr":"|msg="api listening" addr=)([0-9.:]+)`)
	deadline := time.Now().Add(20 * time.Second)
	for re.FindStringSubmatch(stderr.String()) == nil {
		select {
		case code := <-done:
			t.Fatalf("serve exited %d:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopped := false
	code := 0
	stop := func() int {
		if !stopped {
			cancel()
			select {
			case code = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("serve did not stop after its context ended")
			}
			stopped = true
		}
		return code
	}
	t.Cleanup(func() { stop() })
	return "http://" + re.FindStringSubmatch(stderr.String())[1], stop, stderr
}

// serve's log passes the same phone-number mask as the worker's: a request
// for an order numbered like a phone, answered 503 while Redis is
// unreachable, is logged with the number masked, in both log formats.
func TestServeLogsMaskPhones(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "ORDERWORKER_API_TOKENS": "tok"}
			api, stop, logs := startServeLogs(t, env, "-log-format", format)
			if status, b := httpDo(t, "GET", api+"/v1/orders/tencent/13912345678", "Bearer tok", ""); status != http.StatusServiceUnavailable {
				t.Fatalf("GET with Redis unreachable: %d %s, want 503", status, b)
			}
			stop()
			out := logs.String()
			if !strings.Contains(out, "api: answered 503") || !strings.Contains(out, "/v1/orders/tencent/139****5678") {
				t.Errorf("the log lacks the request, its order number masked:\n%s", out)
			}
			if strings.Contains(out, "13912345678") {
				t.Errorf("the log shows the phone number in clear:\n%s", out)
			}
		})
	}
}

func httpDo(t *testing.T, method, url, auth, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// serve answers with the token from ORDERWORKER_API_TOKENS, and stops with
// exit 0 when told to.
func TestServe(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	api, stop := startServe(t, map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_API_TOKENS": "tok-a, tok-b"})
	if status, b := httpDo(t, "POST", api+"/v1/orders", "Bearer tok-b", good); status != 201 || !strings.Contains(b, `"status":"enqueued"`) {
		t.Errorf("POST /v1/orders: %d %s", status, b)
	}
	if status, _ := httpDo(t, "POST", api+"/v1/orders", "", good); status != 401 {
		t.Errorf("POST without a token: %d, want 401", status)
	}
	if status, b := httpDo(t, "GET", api+"/v1/orders/tencent/E1", "Bearer tok-a", ""); status != 200 || !strings.Contains(b, `"state":"queued"`) {
		t.Errorf("GET the order: %d %s", status, b)
	}
	if code := stop(); code != exitOK {
		t.Errorf("serve stopped with exit %d, want 0", code)
	}
}

// -open serves without a token.
func TestServeOpen(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	api, _ := startServe(t, map[string]string{"REDIS_URL": rs.URL()}, "-open")
	if status, b := httpDo(t, "POST", api+"/v1/orders", "", good); status != 201 {
		t.Errorf("POST to an open API: %d %s", status, b)
	}
}

// enqueue webhooks lists endpoints and failed events, re-sends and
// discards them.
func TestWebhooksCLI(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	var mu sync.Mutex
	up := false
	var got []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !up {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		got = append(got, r.Header.Get("webhook-id"))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	signer, err := webhook.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	// dispatch runs a dispatcher for the endpoint that keeps events for
	// maxAge, until the returned stop is called (or the test ends).
	dispatch := func(maxAge time.Duration) (stop func()) {
		d, err := webhook.New(rdb, []string{recv.URL + "/hook?token=sekrit"}, signer, &webhook.Options{
			MaxAge: maxAge, RetryBase: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond, Timeout: time.Second, Poll: 50 * time.Millisecond,
			Streams: ledger.New(rdb, nil).EventStreams()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { d.Run(ctx); close(stopped) }()
		var once sync.Once
		stop = func() { once.Do(func() { cancel(); <-stopped }) }
		t.Cleanup(stop)
		return stop
	}
	// Events are given up on soon: both end failed.
	stopShort := dispatch(200 * time.Millisecond)
	l := ledger.New(rdb, nil)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	id := webhook.EndpointID(recv.URL + "/hook?token=sekrit")
	waitFor("the endpoint's consumer group", func() bool {
		gs, _ := rdb.XInfoGroups(context.Background(), ledger.New(rdb, nil).EventStreams()[0].Key).Result()
		return len(gs) == 1
	})
	for _, no := range []string{"W1", "W2"} {
		ref := ledger.Ref{Provider: "tencent", OrderNo: no}
		if _, err := l.Claim(context.Background(), ref, []byte(`{}`), "h"); err != nil {
			t.Fatal(err)
		}
		tok := uuid.NewString()
		if _, err := l.Begin(context.Background(), ref, ledger.BeginArgs{Token: tok}); err != nil {
			t.Fatal(err)
		}
		if err := l.Settle(context.Background(), ref, tok, ledger.SetPaid("P"+no)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("2 failed events", func() bool {
		_, out, _ := runCLI(t, rs.URL(), "", "webhooks")
		return strings.Contains(out, `"failed":2`)
	})

	code, out, errs := runCLI(t, rs.URL(), "", "webhooks")
	eps := lines(t, out)
	if code != exitOK || len(eps) != 1 || eps[0]["id"] != id || strings.Contains(out, "sekrit") || eps[0]["url"] != recv.URL+"/hook" {
		t.Errorf("enqueue webhooks: exit %d, %s (%s); want the endpoint, its URL without the query", code, out, errs)
	}
	// With another shard count than the ledger's, the events would be
	// read from streams that hold none: refused, not "nothing failed".
	if code, out, errs := runCLIEnv(t, map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_LEDGER_SHARDS": "2"}, "", "webhooks", "failed"); code != exitError || !strings.Contains(errs, "ORDERWORKER_LEDGER_SHARDS") {
		t.Errorf("enqueue webhooks failed with another shard count: exit %d, %s %s; want refused naming ORDERWORKER_LEDGER_SHARDS", code, out, errs)
	}
	code, out, _ = runCLI(t, rs.URL(), "", "webhooks", "failed", "-endpoint", id)
	failed := lines(t, out)
	if code != exitOK || len(failed) != 2 || !strings.Contains(out, `"last_error":"HTTP 502"`) || !strings.Contains(out, `"order_no":"W1"`) {
		t.Fatalf("enqueue webhooks failed: exit %d, %s", code, out)
	}
	// The alerts' endpoint label (its index) names it too.
	if code, byIndex, errs := runCLI(t, rs.URL(), "", "webhooks", "failed", "-endpoint", "0"); code != exitOK || byIndex != out {
		t.Errorf("enqueue webhooks failed -endpoint 0: exit %d, %s %s; want the same as by its id", code, byIndex, errs)
	}
	first := failed[0]["event"].(map[string]any)["id"].(string)

	for _, args := range [][]string{
		{"webhooks", "resend", "-all"},
		{"webhooks", "resend", "-endpoint", id},
		{"webhooks", "resend", "-endpoint", id, "-all", first},
		{"webhooks", "resend", "-endpoint", "nope", "-all"},
		{"webhooks", "frobnicate"},
		// Ids that are not failed events: refused, nothing done (the
		// resend of first below still finds it failed).
		{"webhooks", "resend", "-endpoint", id, first, "1700000000000-0"},
		{"webhooks", "discard", "-endpoint", id, "not-an-id"},
	} {
		if code, _, _ := runCLI(t, rs.URL(), "", args...); code != exitError {
			t.Errorf("enqueue %v: exit %d, want %d", args, code, exitError)
		}
	}

	// The re-sent event is delivered by a dispatcher that keeps events
	// long enough for a loaded machine: with a 200 ms MAX_AGE, a re-sent
	// event whose turn came over a second late (its Timeout) was given up
	// on unsent, as it should be.
	stopShort()
	dispatch(time.Minute)
	mu.Lock()
	up = true
	mu.Unlock()
	code, out, _ = runCLI(t, rs.URL(), "", "webhooks", "resend", "-endpoint", recv.URL+"/hook", first)
	if code != exitOK || !strings.Contains(out, `"resent":1`) {
		t.Errorf("enqueue webhooks resend ID: exit %d, %s", code, out)
	}
	waitFor("the re-sent event delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	code, out, _ = runCLI(t, rs.URL(), "", "webhooks", "discard", "-endpoint", id, "-all")
	if code != exitOK || !strings.Contains(out, `"discarded":1`) {
		t.Errorf("enqueue webhooks discard -all: exit %d, %s", code, out)
	}
	_, out, _ = runCLI(t, rs.URL(), "", "webhooks")
	var ep map[string]any
	_ = json.Unmarshal([]byte(out), &ep)
	if ep["failed"] != float64(0) || ep["backlog"] != float64(0) {
		t.Errorf("after the re-send and the discard: %s", out)
	}
	mu.Lock()
	if len(got) != 1 || got[0] != first {
		t.Errorf("delivered %v, want only %s", got, first)
	}
	mu.Unlock()

	// A second endpoint that differs only in its query shows the same
	// URL: the URL no longer names one endpoint, and is refused.
	other := recv.URL + "/hook?token=other"
	d2, err := webhook.New(rdb, []string{other}, signer, &webhook.Options{Timeout: time.Second, Poll: 50 * time.Millisecond,
		Streams: ledger.New(rdb, nil).EventStreams()})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	stopped2 := make(chan struct{})
	go func() { d2.Run(ctx2); close(stopped2) }()
	defer func() { cancel2(); <-stopped2 }()
	waitFor("the second endpoint listed", func() bool {
		_, out, _ := runCLI(t, rs.URL(), "", "webhooks")
		return len(strings.Split(strings.TrimSpace(out), "\n")) == 2
	})
	code, _, errs = runCLI(t, rs.URL(), "", "webhooks", "discard", "-endpoint", recv.URL+"/hook", "-all")
	if code != exitError || !strings.Contains(errs, "give the id") {
		t.Errorf("discard by a URL two endpoints show: exit %d, %s; want refused, asking for the id", code, errs)
	}
	if code, out, errs := runCLI(t, rs.URL(), "", "webhooks", "discard", "-endpoint", webhook.EndpointID(other), "-all"); code != exitOK {
		t.Errorf("discard by id: exit %d, %s %s", code, out, errs)
	}
}

// A running enqueue serve whose Redis worker -dev empties and marks
// meanwhile stops, as it would refuse that Redis at start: the orders it
// accepted there would be paid by -dev's sandboxes, never created.
func TestServeStopsWhenItsRedisGetsTheDevMarker(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	env := map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_API_TOKENS": "t"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var serveErr serveOutput
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, &serveErr)
	}()
	for end := time.Now().Add(15 * time.Second); !strings.Contains(serveErr.String(), "api listening"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("serve did not start:\n%s", serveErr.String())
		}
	}
	if err := rs.Client(t).Set(context.Background(), devmode.MarkerKey, devmode.MarkerValue, 0).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != exitError || !strings.Contains(serveErr.String(), "now holds the -dev marker") || ctx.Err() != nil {
			t.Errorf("serve exit %d, stderr %q; want %d, naming the marker", code, serveErr.String(), exitError)
		}
	case <-ctx.Done():
		t.Fatalf("serve still running after its Redis got the marker:\n%s", serveErr.String())
	}
}

// serve -h names which endpoints need a token and which do not, as the
// server answers them: without a token, each of the first is 401, none of
// the others.
func TestServeHelpNamesTheTokenlessEndpoints(t *testing.T) {
	t.Parallel()
	_, help, _ := runCLI(t, nowhere, "", "serve", "-h")
	need, free, ok := strings.Cut(help, "These need no token:")
	if !ok {
		t.Fatalf("serve -h does not say which endpoints need no token:\n%s", help)
	}
	free, _, _ = strings.Cut(free, "Serve flags:")
	endpoints := regexp.MustCompile(`(GET|POST) (/[a-z0-9/{}_.]+)`)
	base, _, _ := startServeLogs(t, map[string]string{"REDIS_URL": nowhere, "ORDERWORKER_API_TOKENS": "help-token"}, "-log-format", "json")
	for _, c := range []struct {
		text string
		want bool // a 401 without a token
	}{{need, true}, {free, false}} {
		found := endpoints.FindAllStringSubmatch(c.text, -1)
		if len(found) < 3 {
			t.Fatalf("found only %v in %q", found, c.text)
		}
		for _, m := range found {
			p := strings.NewReplacer("{provider}", "tencent", "{order_no}", "A1").Replace(m[2])
			code, _ := httpDo(t, m[1], base+p, "", "{}")
			if (code == http.StatusUnauthorized) != c.want {
				t.Errorf("%s %s without a token: %d; serve -h says it needs one: %v", m[1], m[2], code, c.want)
			}
		}
	}
	if !strings.Contains(free, "/healthz") || !strings.Contains(free, "/readyz") {
		t.Errorf("serve -h does not name /healthz and /readyz among those that need no token:\n%s", free)
	}
}

// A server without a data key beside workers that have one starts (it
// takes new orders, in clear) and says at start that it answers a resend
// of an order another producer sealed 503; with no key recorded, it says
// nothing of it.
func TestServeWithoutAKeyBesideKeyedWorkersWarns(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	env := map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_API_TOKENS": "a-token-long-enough-1234"}
	_, stop, logs := startServeLogs(t, env, "-log-format", "json")
	stop()
	if strings.Contains(logs.String(), "no ORDERWORKER_DATA_KEY") {
		t.Errorf("a keyless server on a ledger with no key recorded warned:\n%s", logs)
	}
	// A worker with a key records it.
	if err := ledger.New(rs.Client(t), nil).CheckDataKey(context.Background(), "key-id-1"); err != nil {
		t.Fatal(err)
	}
	_, stop, logs = startServeLogs(t, env, "-log-format", "json")
	stop()
	if !strings.Contains(logs.String(), "no ORDERWORKER_DATA_KEY while the ledger's workers have one") {
		t.Errorf("a keyless server beside keyed workers did not warn:\n%s", logs)
	}
}

// The server answers orders enqueued on the same Redis the workers use, so
// it warns of the settings that can lose them as the workers do: replicas
// its writes do not wait for (its own ORDERWORKER_DURABLE_WRITES=off,
// whatever the workers' settings), and persistence that may take back
// what it acknowledged.
func TestServeWarnsOfRedisSettingsThatCanLoseOrders(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, &taskstest.Options{AOF: true})
	rs.AttachReplica(t)
	env := map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_API_TOKENS": "a-token-long-enough-1234"}
	_, stop, logs := startServeLogs(t, env, "-log-format", "json")
	stop()
	if strings.Contains(logs.String(), "do not wait for, or do not hold the master to") || strings.Contains(logs.String(), "may take back writes") {
		t.Errorf("durable writes on, AOF with appendfsync always: warned\n%s", logs)
	}
	env["ORDERWORKER_DURABLE_WRITES"] = "off"
	_, stop, logs = startServeLogs(t, env, "-log-format", "json")
	stop()
	if !strings.Contains(logs.String(), "Redis has replicas that this server's writes do not wait for") ||
		!strings.Contains(logs.String(), `"replication":"ORDERWORKER_DURABLE_WRITES=off"`) {
		t.Errorf("ORDERWORKER_DURABLE_WRITES=off beside a replica: no warning naming it\n%s", logs)
	}
	delete(env, "ORDERWORKER_DURABLE_WRITES")
	if err := rs.Client(t).ConfigSet(context.Background(), "appendonly", "no").Err(); err != nil {
		t.Fatal(err)
	}
	_, stop, logs = startServeLogs(t, env, "-log-format", "json")
	stop()
	if !strings.Contains(logs.String(), "may take back writes it acknowledged") {
		t.Errorf("no AOF: no persistence warning\n%s", logs)
	}
}

// enqueue serve, running while Redis loses every key with no worker
// running (restarted without persistence between deploys of the
// workers: here flushed), notices the loss and records it in the ledger,
// as a worker would, so that a worker started after looks the orders
// producers send again up at the provider before creating them.
func TestServeRecordsALossOfRedisData(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	addr, stop, logs := startServeLogs(t, map[string]string{"REDIS_URL": rs.URL()}, "-open", "-log-format", "json")
	defer stop()
	post := func(no string) int {
		t.Helper()
		body := `{"provider":"tencent","order_no":"` + no + `","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`
		resp, err := http.Post(addr+"/v1/orders", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("LOSS-1"); code != http.StatusCreated {
		t.Fatalf("POST before the loss: %d", code)
	}
	rdb := rs.Client(t)
	ctx := context.Background()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second) // read every 10 s
	for !strings.Contains(logs.String(), "Redis lost the ledger's data") {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not notice the loss in 30s:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := post("LOSS-1"); code != http.StatusCreated {
		t.Fatalf("POST again after the loss: %d", code)
	}
	found, err := ledger.New(rdb, nil).LossFoundWithin(ctx, ledger.Ref{Provider: "tencent", OrderNo: "LOSS-1"}, time.Hour)
	if err != nil || found.IsZero() {
		t.Errorf("the ledger records no loss found: %v, %v; want the time serve found it", found, err)
	}
}
