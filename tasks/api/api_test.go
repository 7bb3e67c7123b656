package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers/registry"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/api"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

const token = "t0ken-for-tests"

type env struct {
	t      *testing.T
	rs     *taskstest.Server
	ledger *ledger.Ledger
	h      *api.Handler
	url    string
	// seen records every (path template, method, status) the server
	// answered, for the OpenAPI check.
	seen *seenSet
}

type seenSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *seenSet) add(k string) {
	s.mu.Lock()
	s.m[k] = true
	s.mu.Unlock()
}

func testSealer(t *testing.T) *tasks.Sealer {
	t.Helper()
	s, err := tasks.NewSealer(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func setup(t *testing.T, opts *api.Options) *env {
	t.Helper()
	rs := taskstest.StartRedis(t, nil)
	return serve(t, rs, ledger.New(rs.Client(t), nil), opts)
}

// serve starts the API on ledger l over rs's Redis.
func serve(t *testing.T, rs *taskstest.Server, l *ledger.Ledger, opts *api.Options) *env {
	t.Helper()
	rdb := rs.Client(t)
	opt, err := tasks.ParseRedisURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	set := registry.Validators("test")
	o := api.Options{Tokens: []string{"another-token", token}}
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Sealer == nil {
		o.Sealer = testSealer(t)
	}
	enq := tasks.NewEnqueuer(client, l, set, &tasks.EnqueuerOptions{Sealer: o.Sealer})
	h, err := api.New(enq, l, rdb, set, &o)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, rs: rs, ledger: l, h: h, seen: &seenSet{m: map[string]bool{}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		e.seen.add(templateOf(r.URL.Path) + " " + r.Method + " " + fmt.Sprint(rec.status))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	e.url = srv.URL
	return e
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// templateOf maps a request path to the OpenAPI path it falls under.
func templateOf(path string) string {
	switch {
	case path == "/v1/orders", path == "/v1/orders/batch", path == "/v1/events", path == "/v1/openapi.json":
		return path
	case strings.HasPrefix(path, "/v1/orders/"):
		return "/v1/orders/{provider}/{order_no}"
	}
	return path
}

// do sends a request with the test token (auth "" sends none) and returns
// the status and body.
func (e *env) do(method, path, auth string, body []byte) (int, []byte, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := ownClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

const bearer = "Bearer " + token

func tencentOrder(orderNo string, itemNum int) []byte {
	return fmt.Appendf(nil, `{"provider":"tencent","order_no":%q,"params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":%d}}`, orderNo, itemNum)
}

func result(t *testing.T, b []byte) tasks.EnqueueResult {
	t.Helper()
	var r tasks.EnqueueResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
	return r
}

func TestCreateOrder(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	tests := []struct {
		name       string
		auth       string
		body       []byte
		wantStatus int
		wantWord   string
		wantReason string
	}{
		{"new", bearer, tencentOrder("A1", 2), 201, tasks.Enqueued, ""},
		{"again, keys in another order", "bearer " + token, []byte(`{"params":{"ItemNum":2,"ItemId":"D-FireInsurance2020","CustomerId":"C1"},"order_no":"A1","provider":"tencent"}`), 200, tasks.Duplicate, ""},
		{"same number, other params", "BEARER " + token, tencentOrder("A1", 3), 409, tasks.Conflict, "different params"},
		{"bad field", bearer, tencentOrder("A2", 0), 422, tasks.Invalid, "ItemNum"},
		{"unknown field", bearer, []byte(`{"provider":"tencent","order_no":"A3","params":{},"extra":1}`), 422, tasks.Invalid, "extra"},
		{"unknown provider", bearer, []byte(`{"provider":"nope","order_no":"A3","params":{}}`), 422, tasks.Invalid, ""},
		{"not an object", bearer, []byte(`[1,2]`), 422, tasks.Invalid, "object"},
		{"other token", "Bearer another-token", tencentOrder("A4", 1), 201, tasks.Enqueued, ""},
		{"order number with a slash", bearer, tencentOrder("shop/A6", 1), 201, tasks.Enqueued, ""},
		{"field in another case", bearer, []byte(`{"provider":"tencent","Order_No":"A7","params":{"CustomerId":"C1","ItemId":"I","ItemNum":1}}`), 422, tasks.Invalid, "Order_No"},
		{"after a byte order mark", bearer, append([]byte("\xef\xbb\xbf"), tencentOrder("A8", 1)...), 201, tasks.Enqueued, ""},
	}
	for _, tt := range tests {
		status, b, h := e.do("POST", "/v1/orders", tt.auth, tt.body)
		if status != tt.wantStatus {
			t.Errorf("%s: status %d, want %d (%s)", tt.name, status, tt.wantStatus, b)
			continue
		}
		if loc := h.Get("Location"); status == 201 {
			// Location names the order's own resource, which answers it.
			r := result(t, b)
			if want := api.OrderPath("tencent", r.OrderNo); loc != want {
				t.Errorf("%s: Location %q, want %q", tt.name, loc, want)
			} else if code, got, _ := e.do("GET", loc, bearer, nil); code != 200 || !strings.Contains(string(got), `"order_no":"`+r.OrderNo+`"`) {
				t.Errorf("%s: GET Location %s: %d %s", tt.name, loc, code, got)
			}
		} else if loc != "" {
			t.Errorf("%s: status %d with Location %q", tt.name, status, loc)
		}
		r := result(t, b)
		if r.Status != tt.wantWord || !strings.Contains(r.Reason, tt.wantReason) {
			t.Errorf("%s: answer %+v, want %s naming %q", tt.name, r, tt.wantWord, tt.wantReason)
		}
	}
	// Not an order at all: problem details, nothing written.
	for _, tt := range []struct {
		name string
		auth string
		body []byte
		want int
	}{
		{"malformed JSON", bearer, []byte(`{"provider":"tencent",`), 400},
		{"invalid UTF-8", bearer, []byte("{\"provider\":\"\xff\"}"), 400},
		{"empty", bearer, nil, 400},
		{"too large", bearer, append(append([]byte(`{"provider":"tencent","order_no":"Big","params":{"x":"`), bytes.Repeat([]byte("a"), tasks.MaxPayloadBytes)...), `"}}`...), 413},
		{"no token", "", tencentOrder("A5", 1), 401},
		{"wrong token", "Bearer nope", tencentOrder("A5", 1), 401},
		{"token as basic auth", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+token)), tencentOrder("A5", 1), 401},
		{"token without scheme", token, tencentOrder("A5", 1), 401},
		{"empty bearer", "Bearer ", tencentOrder("A5", 1), 401},
	} {
		status, b, h := e.do("POST", "/v1/orders", tt.auth, tt.body)
		if status != tt.want || h.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s (%s), want %d problem+json", tt.name, status, h.Get("Content-Type"), b, tt.want)
		}
		if status == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", tt.name, h.Get("WWW-Authenticate"))
		}
		if invalid := strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`); invalid != (tt.name == "wrong token") {
			t.Errorf("%s: WWW-Authenticate %q: want error=\"invalid_token\" only for a wrong bearer token", tt.name, h.Get("WWW-Authenticate"))
		}
	}
	// Two Authorization headers, the first a good token: refused (a proxy
	// or an audit log reading the other would see another caller than
	// the one let in).
	req, err := http.NewRequest("POST", e.url+"/v1/orders", bytes.NewReader(tencentOrder("A5", 1)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Authorization", bearer)
	req.Header.Add("Authorization", "Bearer nope")
	resp, err := ownClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(b), "more than one Authorization header") {
		t.Errorf("two Authorization headers: %d %s; want 401 saying so", resp.StatusCode, b)
	}
	if rec, _ := e.ledger.Get(context.Background(), ledger.Ref{Provider: "tencent", OrderNo: "A5"}); rec != nil {
		t.Errorf("an unauthorized request wrote order A5: %+v", rec)
	}
}

func TestNewRefusesWithoutTokens(t *testing.T) {
	t.Parallel()
	if _, err := api.New(nil, nil, nil, nil, &api.Options{}); !errors.Is(err, api.ErrNoTokens) {
		t.Errorf("New without tokens = %v, want ErrNoTokens", err)
	}
	if _, err := api.New(nil, nil, nil, nil, &api.Options{Tokens: api.ParseTokens(" , ,")}); !errors.Is(err, api.ErrNoTokens) {
		t.Errorf("New with blank tokens = %v, want ErrNoTokens", err)
	}
	if got := api.ParseTokens(" a, b ,,c "); strings.Join(got, "|") != "a|b|c" {
		t.Errorf("ParseTokens = %q", got)
	}
}

// An open API (worker -dev) needs no token.
func TestOpen(t *testing.T) {
	t.Parallel()
	e := setup(t, &api.Options{Open: true})
	if status, b, _ := e.do("POST", "/v1/orders", "", tencentOrder("Open1", 1)); status != 201 {
		t.Errorf("open API: %d %s, want 201", status, b)
	}
}

func TestBatch(t *testing.T) {
	t.Parallel()
	e := setup(t, &api.Options{Tokens: []string{token}, MaxBatchOrders: 5, MaxBatchBytes: 4096})
	if status, _, _ := e.do("POST", "/v1/orders", bearer, tencentOrder("B0", 1)); status != 201 {
		t.Fatal("setup order not accepted")
	}
	ndjson := strings.Join([]string{
		string(tencentOrder("B1", 1)),
		"",
		string(tencentOrder("B0", 1)),
		`{"provider":"tencent","order_no":"B2",`,
		string(tencentOrder("B0", 2)),
		string(tencentOrder("B3", 0)),
	}, "\n")
	array := "[" + strings.Join([]string{string(tencentOrder("B4", 1)), string(tencentOrder("B1", 1)), `7`}, ",\n") + "]"
	tests := []struct {
		name, body string
		want       []string
		reason     []string
	}{
		{"ndjson", ndjson, []string{"enqueued", "duplicate", "invalid", "conflict", "invalid"}, []string{"", "", "malformed", "different params", "ItemNum"}},
		{"array", array, []string{"enqueued", "duplicate", "invalid"}, []string{"", "", "object"}},
		{"empty array", "[]", []string{}, nil},
		// A byte order mark in front, as Windows tools write it: dropped,
		// as the CLI drops it, and the array is read as one.
		{"array after a byte order mark", "\xef\xbb\xbf[" + string(tencentOrder("B5", 1)) + "," + string(tencentOrder("B6", 1)) + "]",
			[]string{"enqueued", "enqueued"}, []string{"", ""}},
	}
	for _, tt := range tests {
		status, b, _ := e.do("POST", "/v1/orders/batch", bearer, []byte(tt.body))
		if status != 200 {
			t.Errorf("%s: %d %s", tt.name, status, b)
			continue
		}
		var got []tasks.EnqueueResult
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %s: %v", tt.name, b, err)
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: %d results, want %d: %s", tt.name, len(got), len(tt.want), b)
			continue
		}
		for i, r := range got {
			if r.Status != tt.want[i] || !strings.Contains(r.Reason, tt.reason[i]) {
				t.Errorf("%s: result %d = %+v, want %s naming %q", tt.name, i, r, tt.want[i], tt.reason[i])
			}
		}
	}
	for _, tt := range []struct {
		name, body string
		want       int
	}{
		{"malformed array", `[{"provider":"tencent"},`, 400},
		{"too many orders", strings.Repeat(string(tencentOrder("Many", 1))+"\n", 6), 413},
		{"too many bytes", strings.Repeat(" ", 5000), 413},
	} {
		if status, b, _ := e.do("POST", "/v1/orders/batch", bearer, []byte(tt.body)); status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, status, b, tt.want)
		}
	}
	if rec, _ := e.ledger.Get(context.Background(), ledger.Ref{Provider: "tencent", OrderNo: "Many"}); rec != nil {
		t.Error("a batch answered 413 wrote an order")
	}
	if status, _, _ := e.do("POST", "/v1/orders/batch", "", []byte(array)); status != 401 {
		t.Errorf("batch without a token: %d, want 401", status)
	}
}

// settle moves an order through the ledger as a worker would.
func settle(t *testing.T, l *ledger.Ledger, ref ledger.Ref, tr ledger.Transition) {
	t.Helper()
	tok := uuid.NewString()
	if _, err := l.Begin(context.Background(), ref, ledger.BeginArgs{Token: tok}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(context.Background(), ref, tok, tr); err != nil {
		t.Fatal(err)
	}
}

// Who took an operator's step is for operators: neither the record the
// API shows nor the order's event names them.
func TestOperatorNameNotShownToProducers(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	if status, b, _ := e.do("POST", "/v1/orders", bearer, tencentOrder("OP1", 1)); status != 201 {
		t.Fatalf("%d %s", status, b)
	}
	ref := ledger.Ref{Provider: "tencent", OrderNo: "OP1"}
	settle(t, e.ledger, ref, ledger.SetUnknown("create timed out"))
	rec, err := e.ledger.Resolve(ctx, ref, ledger.ResolveArgs{As: ledger.ResolveErrored, Note: "cancelled at the provider", By: "Operator Annabel"})
	if err != nil || rec.History[len(rec.History)-1].By != "Operator Annabel" {
		t.Fatalf("Resolve = %+v, %v; want the name in the history entry", rec, err)
	}
	_, order, _ := e.do("GET", "/v1/orders/tencent/OP1", bearer, nil)
	_, events, _ := e.do("GET", "/v1/events", bearer, nil)
	for what, b := range map[string][]byte{"the record": order, "the events": events} {
		if strings.Contains(string(b), "Annabel") || !strings.Contains(string(b), "cancelled at the provider") {
			t.Errorf("%s: %s; want the note and not the operator's name", what, b)
		}
	}
}

func TestGetOrder(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	aliyun := []byte(`{"provider":"aliyun","order_no":"G/1","params":{"iotId":"dev1","commodityCode":"c","copies":1,"userName":"Zhang Sanfeng","userId":"13912345678"}}`)
	if status, b, _ := e.do("POST", "/v1/orders", bearer, aliyun); status != 201 {
		t.Fatalf("%d %s", status, b)
	}
	status, b, _ := e.do("GET", "/v1/orders/aliyun/G%2F1", bearer, nil)
	if status != 200 {
		t.Fatalf("GET: %d %s", status, b)
	}
	var rec ledger.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.OrderNo != "G/1" || rec.State != ledger.StateQueued || !strings.Contains(string(rec.Params), "iotId") {
		t.Errorf("record %s", b)
	}
	if strings.Contains(string(b), "Sanfeng") || !strings.Contains(string(rec.Params), "userName") {
		t.Errorf("personal data not masked: %s", b)
	}
	// Hidden whole, not masked as for an operator: seven digits shown
	// would leave a phone number to find in ten thousand sends, each
	// answered duplicate or conflict.
	for _, part := range []string{"Z", "139", "5678"} {
		if strings.Contains(string(rec.Params), part) {
			t.Errorf("params %s show %q of a personal value", rec.Params, part)
		}
	}
	// Tencent's CustomerId (the vendor's user id, perhaps a login
	// name) is hidden too, though accepted without a data key.
	named := []byte(`{"provider":"tencent","order_no":"G/2","params":{"CustomerId":"zhang_san_feng","ItemId":"D-1","ItemNum":1}}`)
	if status, b, _ := e.do("POST", "/v1/orders", bearer, named); status != 201 {
		t.Fatalf("%d %s", status, b)
	}
	if status, b, _ := e.do("GET", "/v1/orders/tencent/G%2F2", bearer, nil); status != 200 || strings.Contains(string(b), "zhang") || !strings.Contains(string(b), `"CustomerId":"***"`) {
		t.Errorf("GET tencent: %d %s; want the CustomerId hidden", status, b)
	}
	// A userId that is an account name, not a phone number, is personal
	// data all the same.
	if status, b, _ := e.do("POST", "/v1/orders", bearer, []byte(`{"provider":"aliyun","order_no":"G/2","params":{"iotId":"dev1","commodityCode":"c","copies":1,"userId":"zhang.san@example.com"}}`)); status != 201 {
		t.Fatalf("%d %s", status, b)
	}
	if _, b, _ := e.do("GET", "/v1/orders/aliyun/G%2F2", bearer, nil); strings.Contains(string(b), "zhang") || !strings.Contains(string(b), "userId") {
		t.Errorf("userId not hidden: %s", b)
	}
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/v1/orders/aliyun/nope", 404},
		{"/v1/orders/aliyun/G%2F1?wait=soon", 400},
		{"/v1/orders/aliyun/G%2F1?wait=-1s", 400},
	} {
		if status, b, _ := e.do("GET", tt.path, bearer, nil); status != tt.want {
			t.Errorf("GET %s: %d %s, want %d", tt.path, status, b, tt.want)
		}
	}
	if status, _, _ := e.do("GET", "/v1/orders/aliyun/G%2F1", "", nil); status != 401 {
		t.Errorf("GET without a token: %d", status)
	}

	// wait: answers when the order is paid, not before.
	ref := ledger.Ref{Provider: "aliyun", OrderNo: "G/1"}
	go func() {
		time.Sleep(300 * time.Millisecond)
		settle(t, e.ledger, ref, ledger.SetPending("P1", time.Now(), time.Now().Add(time.Minute)))
		time.Sleep(300 * time.Millisecond)
		settle(t, e.ledger, ref, ledger.SetPaid("P1"))
	}()
	start := time.Now()
	status, b, _ = e.do("GET", "/v1/orders/aliyun/G%2F1?wait=20s", bearer, nil)
	if status != 200 || !strings.Contains(string(b), `"state":"paid"`) {
		t.Fatalf("GET ?wait=20s: %d %s, want the paid record", status, b)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Errorf("GET ?wait answered after %s, before the order was paid", waited)
	}
	// wait on an order that stays open answers with it as it stands.
	if status, _, _ := e.do("POST", "/v1/orders", bearer, tencentOrder("G2", 1)); status != 201 {
		t.Fatal("order G2 not accepted")
	}
	status, b, _ = e.do("GET", "/v1/orders/tencent/G2?wait=0.3", bearer, nil)
	if status != 200 || !strings.Contains(string(b), `"state":"queued"`) {
		t.Errorf("GET ?wait=0.3 on an open order: %d %s", status, b)
	}
}

// A long poll answers at once when the server shuts down, and Serve
// returns.
func TestServeShutsDownGracefully(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	if status, _, _ := e.do("POST", "/v1/orders", bearer, tencentOrder("SD1", 1)); status != 201 {
		t.Fatal("order not accepted")
	}
	addr, cancel, served := listenAndServe(t, e)
	got := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/orders/tencent/SD1?wait=50s", nil)
		req.Header.Set("Authorization", bearer)
		resp, err := ownClient.Do(req)
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	time.Sleep(300 * time.Millisecond) // the poll is waiting
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if status := <-got; status != 200 {
		t.Errorf("the long poll cut by the shutdown answered %d, want 200", status)
	}
}

// listenAndServe runs api.Serve with e's handler on a loopback port: its address,
// the cancel that stops it, and where its return value arrives.
func listenAndServe(t *testing.T, e *env) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	served := make(chan error, 1)
	go func() { served <- api.Serve(ctx, ln, e.h) }()
	return ln.Addr().String(), cancel, served
}

// A request still running at the end of the shutdown grace (a batch
// still uploading) is cut off, and Serve returns nil: a stop on a signal
// is no failure.
func TestServeCutsAStalledUploadAtTheGrace(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	addr, cancel, served := listenAndServe(t, e)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/orders/batch HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n", bearer)
	fmt.Fprintf(conn, "%s\n", tencentOrder("CUT1", 1))
	time.Sleep(300 * time.Millisecond) // the handler reads the body
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after its grace")
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(conn); len(b) != 0 {
		t.Errorf("the cut upload was answered: %q", b)
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	// A first read of an empty stream gives a position: events written and
	// trimmed away before the next read are reported missed.
	_, b, _ := e.do("GET", "/v1/events", bearer, nil)
	var first struct {
		NextAfter string `json:"next_after"`
	}
	if err := json.Unmarshal(b, &first); err != nil || first.NextAfter != "0-0" {
		t.Fatalf("GET /v1/events on an empty stream: %s, %v; want next_after 0-0", b, err)
	}
	defer func() {
		_, b, _ := e.do("GET", "/v1/events?after="+first.NextAfter, bearer, nil)
		var page struct {
			Missed bool `json:"missed"`
		}
		if err := json.Unmarshal(b, &page); err != nil || !page.Missed {
			t.Errorf("GET /v1/events?after=0-0 after trimming: %s, %v; want missed", b, err)
		}
	}()
	for i := range 5 {
		no := fmt.Sprintf("E%d", i)
		if status, _, _ := e.do("POST", "/v1/orders", bearer, tencentOrder(no, 1)); status != 201 {
			t.Fatal("order not accepted")
		}
		settle(t, e.ledger, ledger.Ref{Provider: "tencent", OrderNo: no}, ledger.SetPaid("P"+no))
	}
	var all []ledger.Event
	after := ""
	for range 10 {
		status, b, _ := e.do("GET", "/v1/events?limit=2&after="+after, bearer, nil)
		if status != 200 {
			t.Fatalf("events: %d %s", status, b)
		}
		var page struct {
			Events    []ledger.Event `json:"events"`
			NextAfter string         `json:"next_after"`
			Missed    bool           `json:"missed"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		if page.Missed {
			t.Errorf("missed = true with nothing trimmed")
		}
		if len(page.Events) == 0 {
			if after != "" && page.NextAfter != after {
				t.Errorf("an empty page's next_after = %q, want %q", page.NextAfter, after)
			}
			break
		}
		all = append(all, page.Events...)
		after = page.NextAfter
	}
	if len(all) != 5 {
		t.Fatalf("read %d events, want 5", len(all))
	}
	for i, ev := range all {
		if ev.Type != "order.paid" || ev.Data.OrderNo != fmt.Sprintf("E%d", i) || ev.Data.ProviderOrderID != "PE"+fmt.Sprint(i) || ev.ID == "" {
			t.Errorf("event %d = %+v", i, ev)
		}
	}
	// Retention trims the oldest: a reader behind it is told it missed
	// events; one past the trimmed ones is not.
	if err := e.rs.Client(t).XTrimMaxLen(context.Background(), ledger.New(nil, nil).EventStreams()[0].Key, 2).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		after  string
		missed bool
		n      int
	}{{all[0].ID, true, 2}, {all[3].ID, false, 1}, {all[4].ID, false, 0}, {"", false, 2}} {
		_, b, _ := e.do("GET", "/v1/events?after="+tt.after, bearer, nil)
		var page struct {
			Events []ledger.Event `json:"events"`
			Missed bool           `json:"missed"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		if page.Missed != tt.missed || len(page.Events) != tt.n {
			t.Errorf("after trimming, GET /v1/events?after=%s: missed %v, %d events; want %v, %d", tt.after, page.Missed, len(page.Events), tt.missed, tt.n)
		}
	}
	for _, q := range []string{"?after=x", "?after=1-2-3", "?limit=0", "?limit=-1", "?limit=two"} {
		if status, b, _ := e.do("GET", "/v1/events"+q, bearer, nil); status != 400 {
			t.Errorf("GET /v1/events%s: %d %s, want 400", q, status, b)
		}
	}
	if status, _, _ := e.do("GET", "/v1/events", "", nil); status != 401 {
		t.Errorf("events without a token: %d", status)
	}
}

// A limit over a page's most is answered with a full page, as a long wait
// is cut to the longest: a reader written without the maximum still reads
// every event, a page at a time.
func TestEventsLimitOverTheMostIsAFullPage(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	n := api.MaxEventsLimit + 5
	for i := range n {
		ref := ledger.Ref{Provider: "tencent", OrderNo: fmt.Sprintf("L%d", i)}
		if _, err := e.ledger.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
			t.Fatal(err)
		}
		settle(t, e.ledger, ref, ledger.SetPaid("P"+ref.OrderNo))
	}
	read := 0
	after := "0"
	for range 3 {
		limit := "100000"
		if read > 0 {
			limit = "99999999999999999999" // past int64
		}
		status, b, _ := e.do("GET", "/v1/events?limit="+limit+"&after="+after, bearer, nil)
		if status != 200 {
			t.Fatalf("GET /v1/events?limit=100000: %d %s", status, b)
		}
		var page struct {
			Events    []ledger.Event `json:"events"`
			NextAfter string         `json:"next_after"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		if read == 0 && len(page.Events) != api.MaxEventsLimit {
			t.Errorf("first page of %d events with limit=100000, want %d", len(page.Events), api.MaxEventsLimit)
		}
		read += len(page.Events)
		after = page.NextAfter
	}
	if read != n {
		t.Errorf("read %d events a page at a time, want %d", read, n)
	}
}

// Paths and methods the API does not have, and odd parameters, are
// answered with problem details.
func TestProblemsForEverythingElse(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	for _, tt := range []struct {
		method, path string
		want         int
		allow        string
	}{
		{"GET", "/v1/nope", 404, ""},
		{"DELETE", "/v1/orders", 405, "POST"},
		{"GET", "/v1/orders", 405, "POST"},
		{"PUT", "/v1/orders/tencent/A1", 405, "GET, HEAD"},
		{"GET", "/v1/orders/tencent/A1?wait=NaN", 400, ""},
		{"GET", "/v1/events?after=18446744073709551615-18446744073709551615", 200, ""},
	} {
		status, b, h := e.do(tt.method, tt.path, bearer, nil)
		if status != tt.want || h.Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d (Allow %q) %s; want %d (Allow %q)", tt.method, tt.path, status, h.Get("Allow"), b, tt.want, tt.allow)
		}
		if tt.want >= 400 && !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s %s: Content-Type %q, want problem details", tt.method, tt.path, h.Get("Content-Type"))
		}
	}
	// An order number the GET path could not name is refused up front.
	for _, no := range []string{"x/../y", "a//b", ".."} {
		body := fmt.Sprintf(`{"provider":"tencent","order_no":%q,"params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`, no)
		if status, b, _ := e.do("POST", "/v1/orders", bearer, []byte(body)); status != 422 || !strings.Contains(string(b), "order_no") {
			t.Errorf("POST order_no %q: %d %s, want 422 naming order_no", no, status, b)
		}
	}
}

// A body that is not JSON is answered with what is wrong and where: cut
// short, two values sent as one, or a batch line that is no JSON at all.
func TestNotJSONSaysWhy(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	order := `{"provider":"tencent","order_no":"J1","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`
	for body, want := range map[string]string{
		order + order:              fmt.Sprintf("the body is not valid JSON: extra data after the first value, at byte %d", len(order)+1),
		order[:len(order)-1]:       fmt.Sprintf("the body is not valid JSON: unexpected end of input after byte %d", len(order)-1),
		`{"provider":"tencent",x}`: "the body is not valid JSON: syntax error at byte 23",
	} {
		status, b, _ := e.do("POST", "/v1/orders", bearer, []byte(body))
		if status != 400 || !strings.Contains(string(b), want) {
			t.Errorf("POST %s: %d %s; want 400 saying %q", body, status, b, want)
		}
	}
	status, b, _ := e.do("POST", "/v1/orders/batch", bearer, []byte("not json\n"+order))
	if status != 200 || !strings.Contains(string(b), "payload is not JSON: syntax error at byte 2") {
		t.Errorf("batch with a line that is not JSON: %d %s; want its result to say it is not JSON", status, b)
	}
}

// A query parameter an endpoint does not read is refused, named: a
// mistyped ?aftr= would replay every event, a ?wat= answer at once.
func TestUnknownQueryParameterIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	for path, want := range map[string]string{
		"/v1/events?aftr=1700000000000-0":             `unknown query parameter \"aftr\" (want after, limit)`,
		"/v1/events?after=0&limit=5&Limit=5":          `unknown query parameter \"Limit\"`,
		"/v1/orders/tencent/A1?wat=1s":                `unknown query parameter \"wat\" (want wait)`,
		"/v1/orders/tencent/A1?wait=1s&13800138000=1": `unknown query parameter \"***\"`,
		"/v1/events?after=0&after=1700000000000-0":    `query parameter \"after\" given more than once`,
		"/v1/events?limit=5&after=0&limit=6":          `query parameter \"limit\" given more than once`,
		"/v1/orders/tencent/A1?wait=2s&wait=3s":       `query parameter \"wait\" given more than once`,
	} {
		status, b, h := e.do("GET", path, bearer, nil)
		if status != 400 || h.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d %s %s; want 400 problem details saying %s", path, status, h.Get("Content-Type"), b, want)
		}
	}
	// An empty value is the parameter left out (a client's URL template
	// with nothing filled in yet), as the document says.
	for _, path := range []string{"/v1/events?after=0&limit=5", "/v1/orders/tencent/A1?wait=0s", "/v1/events?after=&limit=", "/v1/orders/tencent/A1?wait="} {
		if status, b, _ := e.do("GET", path, bearer, nil); status == 400 {
			t.Errorf("GET %s: 400 %s", path, b)
		}
	}
}

// With Redis gone nothing is written, and each endpoint answers 503.
func TestRedisUnavailable(t *testing.T) {
	e := setup(t, &api.Options{Tokens: []string{token}, Timeout: 2 * time.Second})
	e.rs.Stop()
	for _, tt := range []struct{ method, path, body string }{
		{"POST", "/v1/orders", string(tencentOrder("U1", 1))},
		{"POST", "/v1/orders/batch", string(tencentOrder("U2", 1))},
		{"GET", "/v1/orders/tencent/U1", ""},
		{"GET", "/v1/orders/tencent/U1?wait=1s", ""},
		{"GET", "/v1/events", ""},
	} {
		status, b, h := e.do(tt.method, tt.path, bearer, []byte(tt.body))
		if status != 503 || h.Get("Retry-After") == "" {
			t.Errorf("%s %s with Redis down: %d %s, want 503 with Retry-After", tt.method, tt.path, status, b)
		}
		// An earlier send of the order, whose answer was lost, may be
		// in: a 503 for Redis not answering never says "not accepted"
		// (its producer, sending it under another number, would have it
		// made twice).
		if tt.method == "POST" && (strings.Contains(string(b), "not accepted") || strings.Contains(string(b), "no order was accepted") || !strings.Contains(string(b), "may have been accepted") && !strings.Contains(string(b), "may or may not have been accepted")) {
			t.Errorf("%s %s with Redis down: %s; want it to say the order may have been accepted", tt.method, tt.path, b)
		}
	}
	// An order no resend could fix is answered as such, Redis or not.
	for body, want := range map[string]int{`{`: 400, `{"provider":"tencent","order_no":"U3","params":{}}`: 422} {
		if status, b, _ := e.do("POST", "/v1/orders", bearer, []byte(body)); status != want {
			t.Errorf("POST %s with Redis down: %d %s, want %d", body, status, b, want)
		}
	}
	e.rs.Start(t)
	for _, no := range []string{"U1", "U2"} {
		if rec, err := e.ledger.Get(context.Background(), ledger.Ref{Provider: "tencent", OrderNo: no}); err != nil || rec != nil {
			t.Errorf("order %s after a 503: %+v, %v; want none", no, rec, err)
		}
	}
	// Redis is back: the client's connections recover within a few
	// tries, as a producer honouring Retry-After sees.
	var status int
	var b []byte
	for try := 0; try < 20 && status != 201; try++ {
		if try > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		status, b, _ = e.do("POST", "/v1/orders", bearer, tencentOrder("U1", 1))
	}
	if status != 201 {
		t.Errorf("after Redis is back: %d %s", status, b)
	}
}

// A server whose shard count is not the ledger's accepts nothing and
// says why; with the ledger's count, a sharded events stream pages by
// next_after only.
func TestShardedLedgerThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	rdb := e.rs.Client(t)
	three := ledger.New(rdb, &ledger.Options{Shards: 3})
	if err := three.CheckShards(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, b, _ := e.do("POST", "/v1/orders", bearer, tencentOrder("M1", 1))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "ORDERWORKER_LEDGER_SHARDS=3") {
		t.Errorf("POST with 1 shard on a 3-shard ledger: %d %s; want 503 naming ORDERWORKER_LEDGER_SHARDS=3", code, b)
	}
	if keys, _ := rdb.Keys(context.Background(), "orderworker:*order:*").Result(); len(keys) != 0 {
		t.Errorf("the refused order was written: %v", keys)
	}

	// The same Redis seen by a 3-shard server.
	opt, err := tasks.ParseRedisURL(e.rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	set := registry.Validators("test")
	h, err := api.New(tasks.NewEnqueuer(client, three, set, nil), three, rdb, set, &api.Options{Tokens: []string{token}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e3 := &env{t: t, rs: e.rs, ledger: three, h: h, url: srv.URL, seen: e.seen}
	for i := range 12 {
		ref := ledger.Ref{Provider: "tencent", OrderNo: fmt.Sprintf("M3-%d", i)}
		if code, b, _ := e3.do("POST", "/v1/orders", bearer, tencentOrder(ref.OrderNo, 1)); code != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", ref.OrderNo, code, b)
		}
		tok := uuid.NewString()
		if _, err := three.Begin(context.Background(), ref, ledger.BeginArgs{Token: tok}); err != nil {
			t.Fatal(err)
		}
		if err := three.Settle(context.Background(), ref, tok, ledger.SetPaid("P"+ref.OrderNo)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	after := "0"
	for range 20 {
		code, b, _ := e3.do("GET", "/v1/events?limit=5&after="+after, bearer, nil)
		var page struct {
			Events    []ledger.Event `json:"events"`
			NextAfter string         `json:"next_after"`
		}
		if code != http.StatusOK || json.Unmarshal(b, &page) != nil {
			t.Fatalf("GET /v1/events: %d %s", code, b)
		}
		if len(page.Events) == 0 {
			break
		}
		for _, ev := range page.Events {
			if seen[ev.ID] {
				t.Errorf("event %s twice", ev.ID)
			}
			seen[ev.ID] = true
		}
		after = page.NextAfter
	}
	if len(seen) != 12 {
		t.Errorf("paged %d events, want 12", len(seen))
	}
	var anyID string
	for id := range seen {
		anyID = id
	}
	if code, b, _ := e3.do("GET", "/v1/events?after="+anyID, bearer, nil); code != http.StatusBadRequest || !strings.Contains(string(b), "is the id of one shard's event") || !strings.Contains(string(b), "next_after") {
		t.Errorf("GET /v1/events?after=<an event id> on 3 shards: %d %s; want 400 asking for next_after", code, b)
	}
}

// A server whose ledger needs more replicas than the master reports
// (ORDERWORKER_MIN_REPLICAS) answers 503 saying so, and writes nothing.
func TestTooFewReplicasThroughTheAPI(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	e := serve(t, rs, ledger.New(rdb, &ledger.Options{MinReplicas: 1}), nil)
	code, b, hdr := e.do("POST", "/v1/orders", bearer, tencentOrder("R1", 1))
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(string(b), "ORDERWORKER_MIN_REPLICAS") {
		t.Errorf("POST on a master without the replicas required: %d %s; want 503 naming ORDERWORKER_MIN_REPLICAS", code, b)
	}
	code, b, _ = e.do("POST", "/v1/orders/batch", bearer, append(append(tencentOrder("R2", 1), '\n'), tencentOrder("R3", 1)...))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "ORDERWORKER_MIN_REPLICAS") || !strings.Contains(string(b), "nothing was written") {
		t.Errorf("POST batch on a master without the replicas required: %d %s; want 503 naming ORDERWORKER_MIN_REPLICAS, saying nothing was written", code, b)
	}
	if keys, _ := rdb.Keys(context.Background(), "*:R[123]").Result(); len(keys) != 0 {
		t.Errorf("the refused orders were written: %v", keys)
	}
}

// A master short of replicas refuses every write unsent, but an order an
// earlier send got in (its record, or a task a producer wrote itself) is
// not answered "not accepted": it may have been, and runs once the
// replicas are back (a black-box failover run: a producer that trusted
// "not accepted" would have reported as failed an order then created and
// paid). One order and a batch alike.
func TestAnOrderAnEarlierSendGotInIsNeverSaidNotAccepted(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	before := serve(t, rs, ledger.New(rdb, nil), nil)
	if code, b, _ := before.do("POST", "/v1/orders", bearer, tencentOrder("IN1", 1)); code != http.StatusCreated {
		t.Fatalf("POST IN1 before the floor: %d %s", code, b)
	}
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: rs.Addr})
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask(tasks.TypeOrderSubmit, tencentOrder("OWN1", 1)), asynq.Queue(tasks.DefaultQueue), asynq.TaskID(tasks.TaskID("tencent", "OWN1"))); err != nil {
		t.Fatal(err)
	}
	e := serve(t, rs, ledger.New(rdb, &ledger.Options{MinReplicas: 1}), nil)
	for _, no := range []string{"IN1", "OWN1"} {
		code, b, _ := e.do("POST", "/v1/orders", bearer, tencentOrder(no, 1))
		if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "may have been accepted") || !strings.Contains(string(b), "an earlier send of it is in Redis") || strings.Contains(string(b), "not accepted") {
			t.Errorf("POST %s, in Redis, on a master short of replicas: %d %s; want 503 may have been accepted", no, code, b)
		}
		// The cause in short: the ledger's error, with the master's
		// address on Cluster and the record's key, is for the log.
		if !strings.Contains(string(b), "(this send was refused before it was written: the Redis master has fewer replicas than durable writes require)") {
			t.Errorf("POST %s, in Redis, on a master short of replicas: %s; want the cause in short", no, b)
		}
	}
	code, b, _ := e.do("POST", "/v1/orders", bearer, tencentOrder("NEW1", 1))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "the order was not accepted") {
		t.Errorf("POST NEW1, never sent, on a master short of replicas: %d %s; want 503 not accepted", code, b)
	}
	code, b, _ = e.do("POST", "/v1/orders/batch", bearer, append(append(tencentOrder("NEW2", 1), '\n'), tencentOrder("IN1", 1)...))
	if code != http.StatusServiceUnavailable || strings.Contains(string(b), "nothing was written for it nor") || !strings.Contains(string(b), "may or may not have been accepted") {
		t.Errorf("POST batch holding IN1 on a master short of replicas: %d %s; want 503 saying the rest may have been accepted", code, b)
	}
	code, b, _ = e.do("POST", "/v1/orders/batch", bearer, append(append(tencentOrder("NEW2", 1), '\n'), tencentOrder("NEW3", 1)...))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "nothing was written for it nor") {
		t.Errorf("POST batch of orders never sent on a master short of replicas: %d %s; want 503 saying nothing was written", code, b)
	}
	// A batch longer than one chunk stops at the first: the orders of
	// the chunks after it are never sent, and one of them is in Redis.
	var big []byte
	for i := range 300 {
		big = append(append(big, tencentOrder(fmt.Sprintf("BIG%d", i), 1)...), '\n')
	}
	code, b, _ = e.do("POST", "/v1/orders/batch", bearer, append(big, tencentOrder("IN1", 1)...))
	if code != http.StatusServiceUnavailable || strings.Contains(string(b), "nothing was written for it nor") || !strings.Contains(string(b), "may or may not have been accepted") {
		t.Errorf("POST a long batch holding IN1 after its first chunk on a master short of replicas: %d %s; want 503 saying the rest may have been accepted", code, b)
	}
	code, b, _ = e.do("POST", "/v1/orders/batch", bearer, big)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "nothing was written for it nor") {
		t.Errorf("POST a long batch of orders never sent on a master short of replicas: %d %s; want 503 saying nothing was written", code, b)
	}
}

// /readyz, asked without a token, is 200 while an order would be taken,
// and 503 naming why in short when it would not: a master short of the
// replicas durable writes need, one over its maxmemory, Redis gone, the
// server shutting down.
// /healthz is 200 whatever Redis does.
func TestReadiness(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	probe := func(path string) (int, string) {
		t.Helper()
		code, b, _ := e.do("GET", path, "", nil)
		return code, string(b)
	}
	if code, b := probe("/readyz"); code != http.StatusOK || !strings.Contains(b, `"ready"`) {
		t.Errorf("/readyz: %d %s; want 200 ready", code, b)
	}
	rs := taskstest.StartRedis(t, nil)
	short := serve(t, rs, ledger.New(rs.Client(t), &ledger.Options{MinReplicas: 1}), nil)
	if code, b, _ := short.do("GET", "/readyz", "", nil); code != http.StatusServiceUnavailable || !strings.Contains(string(b), "not ready: too few redis replicas") {
		t.Errorf("/readyz on a master short of replicas: %d %s; want 503 naming too few replicas", code, b)
	}
	// Over its maxmemory under noeviction, Redis answers every write OOM.
	full := taskstest.StartRedis(t, nil)
	fullAPI := serve(t, full, ledger.New(full.Client(t), nil), nil)
	if code, b, _ := fullAPI.do("POST", "/v1/orders", bearer, tencentOrder("R-ROOM", 1)); code != http.StatusCreated {
		t.Fatalf("POST an order: %d %s", code, b)
	}
	if err := full.Client(t).ConfigSet(context.Background(), "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if code, b, _ := fullAPI.do("GET", "/readyz", "", nil); code != http.StatusServiceUnavailable || !strings.Contains(string(b), "not ready: redis out of memory") {
		t.Errorf("/readyz on a Redis over its maxmemory: %d %s; want 503 naming its memory", code, b)
	}
	if code, b, _ := fullAPI.do("POST", "/v1/orders", bearer, tencentOrder("R-OOM", 1)); code != http.StatusServiceUnavailable {
		t.Errorf("POST an order to a Redis over its maxmemory: %d %s; want 503", code, b)
	}
	if err := full.Client(t).ConfigSet(context.Background(), "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if code, b, _ := fullAPI.do("GET", "/readyz", "", nil); code != http.StatusOK {
		t.Errorf("/readyz once the memory limit is lifted: %d %s; want 200", code, b)
	}
	e.rs.Stop()
	if code, b := probe("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(b, "not ready: redis unreachable") || strings.Contains(b, "127.0.0.1") {
		t.Errorf("/readyz with Redis gone: %d %s; want 503 saying redis unreachable and no address", code, b)
	}
	if code, b := probe("/healthz"); code != http.StatusOK || !strings.Contains(b, `"ok"`) {
		t.Errorf("/healthz with Redis gone: %d %s; want 200", code, b)
	}
	e.h.Close()
	if code, b := probe("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(b, "shutting down") {
		t.Errorf("/readyz once closing: %d %s; want 503 shutting down", code, b)
	}
}

// A server whose Redis is a replica now (a failover demoted it, the
// client not yet on the new master), with a floor of replicas to hold
// to, answers 503 saying the order may have been accepted (an earlier
// send may have reached the master), for one order and for a batch.
func TestReplicaNowThroughTheAPI(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rep := rs.AttachReplica(t)
	// The ledger's shard count and data key were recorded before the
	// failover (the replica holds them), as a running server had checked.
	master := ledger.New(rs.Client(t), nil)
	if err := master.CheckShards(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := master.CheckDataKey(context.Background(), testSealer(t).KeyID()); err != nil {
		t.Fatal(err)
	}
	if err := rs.Client(t).Do(context.Background(), "WAIT", 1, 5000).Err(); err != nil {
		t.Fatal(err)
	}
	e := serve(t, rep, ledger.New(rep.Client(t), &ledger.Options{MinReplicas: 1}), nil)
	// What a replica holds says nothing of what the master took: never
	// "not accepted".
	code, b, _ := e.do("POST", "/v1/orders", bearer, tencentOrder("RN1", 1))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "replica now") || !strings.Contains(string(b), "may have been accepted") || strings.Contains(string(b), "not accepted") {
		t.Errorf("POST on a replica: %d %s; want 503 saying it is a replica now and the order may have been accepted", code, b)
	}
	code, b, _ = e.do("POST", "/v1/orders/batch", bearer, append(append(tencentOrder("RN2", 1), '\n'), tencentOrder("RN3", 1)...))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "replica now") || !strings.Contains(string(b), "may or may not have been accepted") {
		t.Errorf("POST batch on a replica: %d %s; want 503 saying the orders may have been accepted", code, b)
	}
}

// GET /v1/events answers an event only once the replicas hold it, as a
// webhook is sent: while the replica is stopped (the change's write was
// not acknowledged, and a failover now would take it back, and the
// order's redone change would come with an event of another id), it
// answers 503, and the event once the replica caught up.
func TestEventsWaitForTheReplicas(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rep := rs.AttachReplica(t)
	e := serve(t, rs, ledger.New(rs.Client(t), &ledger.Options{WaitTimeout: 100 * time.Millisecond}), nil)
	if status, b, _ := e.do("POST", "/v1/orders", bearer, tencentOrder("R1", 1)); status != 201 {
		t.Fatalf("order not accepted: %d %s", status, b)
	}
	// The worker's write goes on while the replica is stopped, as an
	// unacknowledged one does.
	rep.Pause(t)
	settle(t, ledger.New(rs.Client(t), &ledger.Options{Durable: ledger.DurableOff}), ledger.Ref{Provider: "tencent", OrderNo: "R1"}, ledger.SetPaid("PR1"))
	status, b, h := e.do("GET", "/v1/events", bearer, nil)
	rep.Resume()
	if status != http.StatusServiceUnavailable || !strings.Contains(string(b), "replicas") || h.Get("Retry-After") == "" || strings.Contains(string(b), "PR1") {
		t.Errorf("GET /v1/events with the replica behind: %d %s; want 503 saying why, with Retry-After, and no event", status, b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, b, _ = e.do("GET", "/v1/events", bearer, nil)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/events once the replica caught up: %d %s", status, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(string(b), `"order.paid"`) || !strings.Contains(string(b), "PR1") {
		t.Errorf("GET /v1/events = %s, want R1's paid event", b)
	}
}

// An outcome only the master holds is not told as an order's state: a GET,
// or a long poll woken by its event, answers 503 while the replicas do not
// hold it (a failover could take it back, and the producer would have
// delivered, or refunded, on it); a long poll that outlasts the replica's
// lag answers it.
func TestOutcomeIsToldOnceTheReplicasHoldIt(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rep := rs.AttachReplica(t)
	e := serve(t, rs, ledger.New(rs.Client(t), &ledger.Options{WaitTimeout: 100 * time.Millisecond}), nil)
	if status, b, _ := e.do("POST", "/v1/orders", bearer, tencentOrder("R1", 1)); status != 201 {
		t.Fatalf("order not accepted: %d %s", status, b)
	}
	rep.Pause(t)
	resumed := false
	defer func() {
		if !resumed {
			rep.Resume()
		}
	}()
	settle(t, ledger.New(rs.Client(t), &ledger.Options{Durable: ledger.DurableOff}), ledger.Ref{Provider: "tencent", OrderNo: "R1"}, ledger.SetPaid("PR1"))
	for _, path := range []string{"/v1/orders/tencent/R1", "/v1/orders/tencent/R1?wait=1s"} {
		status, b, h := e.do("GET", path, bearer, nil)
		if status != http.StatusServiceUnavailable || !strings.Contains(string(b), "replicas") || h.Get("Retry-After") == "" || strings.Contains(string(b), "PR1") {
			t.Errorf("GET %s with the replica behind: %d %s; want 503 saying why, with Retry-After, and no outcome", path, status, b)
		}
	}
	time.AfterFunc(time.Second, func() { rep.Resume() })
	resumed = true
	status, b, _ := e.do("GET", "/v1/orders/tencent/R1?wait=20s", bearer, nil)
	if status != http.StatusOK || !strings.Contains(string(b), `"state":"paid"`) {
		t.Errorf("a long poll outlasting the replica's lag: %d %s; want 200, paid", status, b)
	}
}

// ownClient has a transport of its own: httptest.Server.Close drops the
// idle connections of http.DefaultTransport, which breaks a request
// another parallel test is sending on one of them at that moment.
var ownClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

// The ledger's keys join the provider and the order number with a colon,
// which an order number may hold: a GET naming a provider that does not
// exist is 404, never the record of another order whose key reads alike
// ("tencent:Q1" and "R" against "tencent" and "Q1:R").
func TestGetOrderOfNoSuchProvider(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	e := serve(t, rs, ledger.New(rs.Client(t), nil), nil)
	if code, b, _ := e.do("POST", "/v1/orders", bearer, tencentOrder("Q1:R", 1)); code != http.StatusCreated {
		t.Fatalf("POST = %d %s", code, b)
	}
	if code, b, _ := e.do("GET", "/v1/orders/tencent/Q1:R", bearer, nil); code != http.StatusOK {
		t.Fatalf("GET tencent/Q1:R = %d %s; want 200", code, b)
	}
	for _, path := range []string{"/v1/orders/tencent:Q1/R", "/v1/orders/tencent%3AQ1/R", "/v1/orders/acme/Q1:R"} {
		if code, b, _ := e.do("GET", path, bearer, nil); code != http.StatusNotFound || strings.Contains(string(b), `"state"`) {
			t.Errorf("GET %s = %d %s; want 404, no record", path, code, b)
		}
	}
}

// Run without tokens, the API refuses a browser's request on behalf of
// another site: a web page could otherwise enqueue orders through any
// browser that reaches the address, with a form's POST (no preflight).
// Clients other than browsers send neither header, and are served.
func TestOpenAPIRefusesCrossSiteBrowserRequests(t *testing.T) {
	t.Parallel()
	e := setup(t, &api.Options{Open: true})
	post := func(no string, hdr map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", e.url+"/v1/orders", bytes.NewReader(tencentOrder(no, 1)))
		req.Header.Set("Content-Type", "text/plain")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := ownClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	host := strings.TrimPrefix(e.url, "http://")
	for i, c := range []struct {
		hdr  map[string]string
		want int
	}{
		{map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://" + host}, http.StatusForbidden},
		{map[string]string{"Origin": "null"}, http.StatusForbidden},
		{nil, http.StatusCreated}, // curl, a producer's HTTP library
		{map[string]string{"Origin": "http://" + host, "Sec-Fetch-Site": "same-origin"}, http.StatusCreated},
		{map[string]string{"Origin": "http://" + host}, http.StatusCreated},
	} {
		no := fmt.Sprintf("CS-%d", i)
		if got := post(no, c.hdr); got != c.want {
			t.Errorf("open API, POST with %v: %d; want %d", c.hdr, got, c.want)
		}
		if rec, _ := e.ledger.Get(context.Background(), ledger.Ref{Provider: "tencent", OrderNo: no}); c.want == http.StatusForbidden && rec != nil {
			t.Errorf("a refused request recorded %s", no)
		}
	}
	// DNS rebinding: a page whose name now resolves to this address
	// sends as its own origin (Origin and Host that name, same-origin):
	// refused, as the API runs without tokens. By its IP address, or by
	// a name from a client that is no browser, it is served.
	_, port, _ := net.SplitHostPort(host)
	rebound := func(no, name string, hdr map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", e.url+"/v1/orders", bytes.NewReader(tencentOrder(no, 1)))
		req.Host = name + ":" + port
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := ownClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusForbidden && !strings.Contains(string(body), "DNS rebinding") {
			t.Errorf("a rebound request's refusal does not say why: %s", body)
		}
		return resp.StatusCode
	}
	if got := rebound("CS-R1", "evil.example", map[string]string{"Origin": "http://evil.example:" + port, "Sec-Fetch-Site": "same-origin"}); got != http.StatusForbidden {
		t.Errorf("open API, a browser's request by a rebound name: %d; want 403", got)
	}
	if rec, _ := e.ledger.Get(context.Background(), ledger.Ref{Provider: "tencent", OrderNo: "CS-R1"}); rec != nil {
		t.Error("a request by a rebound name recorded its order")
	}
	if got := rebound("CS-R2", "localhost", map[string]string{"Origin": "http://localhost:" + port, "Sec-Fetch-Site": "same-origin"}); got != http.StatusCreated {
		t.Errorf("open API, a browser's request by localhost: %d; want 201", got)
	}
	if got := rebound("CS-R3", "api", nil); got != http.StatusCreated {
		t.Errorf("open API, a producer's request by a service name: %d; want 201", got)
	}
	// With tokens, a request carrying one is served, browser or not.
	te := setup(t, nil)
	req, _ := http.NewRequest("POST", te.url+"/v1/orders", bytes.NewReader(tencentOrder("CS-T", 1)))
	req.Header.Set("Authorization", bearer)
	req.Header.Set("Origin", "https://app.example")
	resp, err := ownClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("with a token, from a browser: %d; want 201", resp.StatusCode)
	}
}

// A body whose Content-Length is over the limit is answered 413 at once,
// not once the read timeout (a minute) cut off a body that never comes.
func TestOversizedContentLengthIsAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n{}", bearer)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer within 20 s: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("Content-Length 99999999: %d; want 413", resp.StatusCode)
	}
}

// An order refused for a phone number in its order number, a params key
// or its provider is answered with nothing of the number kept, as every
// API answer shows one (the enqueue CLI masks it for an operator:
// 138****8000; a black-box run found the provider so masked in a 422).
func TestRefusedOrdersHidePhoneNumbersWhole(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	for _, body := range [][]byte{
		tencentOrder("Order13800138000", 1),
		[]byte(`{"provider":"tencent","order_no":"P1","params":{"CustomerId":"C1","ItemId":"D-1","ItemNum":1,"13800138000":1}}`),
		[]byte(`{"provider":"p13800138000","order_no":"a1","params":{}}`),
	} {
		code, b, _ := e.do("POST", "/v1/orders", bearer, body)
		if code != http.StatusUnprocessableEntity || strings.Contains(string(b), "138") || strings.Contains(string(b), "8000") || !strings.Contains(string(b), "***") {
			t.Errorf("POST %s: %d %s; want 422 with the phone number hidden whole", body, code, b)
		}
		code, b, _ = e.do("POST", "/v1/orders/batch", bearer, body)
		if code != http.StatusOK || strings.Contains(string(b), "138") || strings.Contains(string(b), "8000") || !strings.Contains(string(b), "***") {
			t.Errorf("POST batch %s: %d %s; want its result with the phone number hidden whole", body, code, b)
		}
	}
	if code, b, _ := e.do("GET", "/v1/orders/tencent/Order13800138000", bearer, nil); code != http.StatusNotFound || strings.Contains(string(b), "138") || !strings.Contains(string(b), "***") {
		t.Errorf("GET of an unknown order numbered with a phone number: %d %s; want 404 with the number hidden whole", code, b)
	}
}

// An order refused for its number after Redis lost its data (perhaps with
// its record) is answered 503, not 422: its detail hides the phone number
// whole, as the 422 does, and nothing is written.
func TestRefusalAfterALossHidesPhoneNumbersWhole(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	ref := ledger.Ref{Provider: "tencent", OrderNo: "Order13800138000"}
	if _, err := e.ledger.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	// Recorded as a version before the rule did; then Redis loses it all.
	if _, err := e.ledger.Claim(ctx, ref, []byte(`{"CustomerId":"C1","ItemId":"D-1","ItemNum":1}`), "h"); err != nil {
		t.Fatal(err)
	}
	rdb := e.rs.Client(t)
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if losses, err := e.ledger.Watch(ctx); err != nil || len(losses) != 1 {
		t.Fatalf("Watch after the wipe = %v, %v; want the loss found", losses, err)
	}
	code, b, _ := e.do("POST", "/v1/orders", bearer, tencentOrder(ref.OrderNo, 1))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "lost its data") || strings.Contains(string(b), "138") || strings.Contains(string(b), "8000") || !strings.Contains(string(b), "***") {
		t.Errorf("POST after the loss: %d %s; want 503 saying Redis lost its data, the phone number hidden whole", code, b)
	}
	code, b, _ = e.do("POST", "/v1/orders/batch", bearer, tencentOrder(ref.OrderNo, 1))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "lost its data") || strings.Contains(string(b), "138") || strings.Contains(string(b), "8000") || !strings.Contains(string(b), "***") {
		t.Errorf("POST batch after the loss: %d %s; want 503 at that order saying Redis lost its data, the phone number hidden whole", code, b)
	}
	if rec, err := e.ledger.Get(ctx, ref); err != nil || rec != nil {
		t.Errorf("recorded %+v, %v; want nothing written", rec, err)
	}
}

// A server whose data key is not the ledger's refuses an order with 503,
// never saying the order was not accepted: this request wrote nothing, but
// an earlier send of it through a server with the right key may be in.
func TestDataKeyMismatchNeverSaysNotAccepted(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	other, err := tasks.NewSealer(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(rs.Client(t), nil)
	if err := l.CheckDataKey(context.Background(), other.KeyID()); err != nil {
		t.Fatal(err)
	}
	e := serve(t, rs, l, nil)
	code, b, _ := e.do("POST", "/v1/orders", bearer, tencentOrder("DK1", 1))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "ORDERWORKER_DATA_KEY") ||
		!strings.Contains(string(b), "may have been accepted") || strings.Contains(string(b), "not accepted") {
		t.Errorf("POST with another data key than the ledger's: %d %s; want 503 naming the key, never \"not accepted\"", code, b)
	}
	code, b, _ = e.do("POST", "/v1/orders/batch", bearer, append(append(tencentOrder("DK1", 1), '\n'), tencentOrder("DK2", 1)...))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "ORDERWORKER_DATA_KEY") ||
		!strings.Contains(string(b), "may have been accepted") || strings.Contains(string(b), "not accepted") || strings.Contains(string(b), "no order was accepted") {
		t.Errorf("POST batch with another data key than the ledger's: %d %s; want 503 naming the key, never \"not accepted\"", code, b)
	}
	if n, err := rs.Client(t).Exists(context.Background(), "orderworker:{ledger}:order:tencent:DK1", "orderworker:{ledger}:order:tencent:DK2").Result(); err != nil || n != 0 {
		t.Errorf("the refused order was written: exists %d, %v", n, err)
	}
}
