package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/registry"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// ordersFixture is a Redis holding orders in every state an operator acts
// on, their tasks in the orders queue (paused, so that nothing runs them).
type ordersFixture struct {
	t       *testing.T
	rs      *taskstest.Server
	dataKey string
	sealer  *tasks.Sealer
	ledger  *ledger.Ledger
	insp    *asynq.Inspector
	// lag is the servers' listing lag (ordersConfig.ListingLag): -1, a
	// not-found believed at once, unless a test sets it.
	lag time.Duration
}

// The phone number the Aliyun orders' userName holds, and its mask.
const (
	fixturePhone  = "15812348558"
	fixtureMasked = "158****8558"
)

func newOrdersFixture(t *testing.T) *ordersFixture {
	t.Helper()
	rs := taskstest.StartRedis(t, nil)
	f := &ordersFixture{t: t, rs: rs, dataKey: newDataKey(t), ledger: ledger.New(rs.Client(t), nil),
		insp: asynq.NewInspector(asynq.RedisClientOpt{Addr: rs.Addr})}
	t.Cleanup(func() { f.insp.Close() })
	var err error
	if f.sealer, err = tasks.NewSealer(f.dataKey); err != nil {
		t.Fatal(err)
	}
	return f
}

// seed enqueues orders as a producer would and moves them as a worker
// would: per provider, the orders in each state.
//
//	tencent  queued T-Q1 T-Q2, errored T-E1 (nothing created, task archived), errored T-E2 (may exist)
//	aliyun   unknown A-U1 A-U2, pending A-P1, paid A-PAID (owns PO-OWNED)
//	unicloud none
//
// Every Aliyun order's userName is a phone number; so is T-Q2's CustomerId.
func (f *ordersFixture) seed() {
	f.t.Helper()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: f.rs.Addr})
	defer client.Close()
	enq := tasks.NewEnqueuer(client, f.ledger, registry.Validators("test"), &tasks.EnqueuerOptions{Sealer: f.sealer})
	tencent := func(no, customer string) string {
		return fmt.Sprintf(`{"provider":"tencent","order_no":%q,"params":{"CustomerId":%q,"ItemId":"D-FireInsurance2020","ItemNum":1}}`, no, customer)
	}
	aliyun := func(no string) string {
		return fmt.Sprintf(`{"provider":"aliyun","order_no":%q,"params":{"iotId":"dev-1","commodityCode":"streamingResource_20_10","copies":1,"userName":%q}}`, no, fixturePhone)
	}
	for _, o := range []string{tencent("T-Q1", "C1"), tencent("T-Q2", "13912345678"), tencent("T-E1", "C1"), tencent("T-E2", "C1"),
		aliyun("A-U1"), aliyun("A-U2"), aliyun("A-P1"), aliyun("A-PAID")} {
		res, err := enq.Enqueue(context.Background(), []byte(o))
		if err != nil || res.Status != tasks.Enqueued {
			f.t.Fatalf("enqueue %s: %+v, %v", o, res, err)
		}
	}
	if err := f.insp.PauseQueue(tasks.DefaultQueue); err != nil {
		f.t.Fatal(err)
	}
	f.settle("tencent", "T-E1", ledger.SetErrored("provider rejected the order: invalid ItemId").WithMayExist(false).
		WithAttempt(&ledger.Attempt{N: 1, At: time.Now(), DurationMS: 42, Call: "submit", HTTPStatus: 400, Code: "InvalidParameter", Result: "invalid_argument", Message: "ItemId not found"}))
	f.settle("tencent", "T-E2", ledger.SetErrored("deadline passed with the order unknown").WithMayExist(true))
	f.settle("aliyun", "A-U1", ledger.SetUnknown("timeout after sending").WithMayExist(true).
		WithAttempt(&ledger.Attempt{N: 1, At: time.Now(), DurationMS: 10000, Call: "submit", Result: "ambiguous", Message: "no answer in 10s for user " + fixturePhone}))
	f.settle("aliyun", "A-U2", ledger.SetUnknown("timeout after sending").WithMayExist(true))
	f.settle("aliyun", "A-P1", ledger.SetPending("PO-P1", time.Now(), time.Now().Add(time.Minute)).WithMayExist(true))
	f.settle("aliyun", "A-PAID", ledger.SetPaid("PO-OWNED").WithMayExist(true))
	if err := f.insp.ArchiveTask(tasks.DefaultQueue, tasks.TaskID("tencent", "T-E1")); err != nil {
		f.t.Fatal(err)
	}
}

func (f *ordersFixture) settle(provider, orderNo string, tr ledger.Transition) {
	f.t.Helper()
	time.Sleep(2 * time.Millisecond) // each order enters its state in a millisecond of its own
	ref := ledger.Ref{Provider: provider, OrderNo: orderNo}
	tok := fmt.Sprintf("test-%s-%d", orderNo, time.Now().UnixNano())
	b, err := f.ledger.Begin(context.Background(), ref, ledger.BeginArgs{Token: tok})
	if err != nil || b.Status != ledger.Began {
		f.t.Fatalf("begin %s: %+v, %v", ref, b, err)
	}
	if err := f.ledger.Settle(context.Background(), ref, tok, tr); err != nil {
		f.t.Fatalf("settle %s: %v", ref, err)
	}
}

func (f *ordersFixture) state(provider, orderNo string) ledger.State {
	f.t.Helper()
	rec, err := f.ledger.Get(context.Background(), ledger.Ref{Provider: provider, OrderNo: orderNo})
	if err != nil || rec == nil {
		f.t.Fatalf("get %s/%s: %v", provider, orderNo, err)
	}
	return rec.State
}

func (f *ordersFixture) taskState(provider, orderNo string) string {
	f.t.Helper()
	info, err := f.insp.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID(provider, orderNo))
	if errors.Is(err, asynq.ErrTaskNotFound) {
		return "none"
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return info.State.String()
}

// server serves the admin handler with the Orders pages and API, as the
// worker builds it, with the given token and mode.
func (f *ordersFixture) server(token string, readOnly bool) (*httptest.Server, *prometheus.Registry) {
	f.t.Helper()
	reg := prometheus.NewRegistry()
	opt := asynq.RedisClientOpt{Addr: f.rs.Addr}
	orders := newOrdersAdmin(ordersConfig{Ledger: f.ledger, Inspector: f.insp, RedisOpt: opt, Set: registry.Validators("test"),
		Sealer: f.sealer, Queue: tasks.DefaultQueue, ReadOnly: readOnly, Token: providers.Secret(token), Registerer: reg,
		ListingLag: cmp.Or(f.lag, -1)})
	srv := httptest.NewServer(adminHandler(reg, func() error { return nil }, http.NotFoundHandler(), orders, providers.Secret(token)))
	f.t.Cleanup(func() { srv.Close(); orders.Close() })
	return srv, reg
}

// apiCall sends a request with the bearer token (none when "") and
// returns the status and the body.
func apiCall(t *testing.T, method, url, token, contentType, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestOrdersAPI(t *testing.T) {
	t.Parallel()
	f := newOrdersFixture(t)
	f.seed()
	const token = "orders-api-token"
	srv, reg := f.server(token, false)
	api := srv.URL + "/api/orders"
	const jsonType = "application/json"

	// The token guards every endpoint.
	for _, c := range []struct{ method, url, body string }{
		{"GET", api, ""},
		{"GET", api + "/aliyun/A-U1", ""},
		{"POST", api + "/aliyun/A-U1/resolve", `{"as":"errored","note":"n","by":"x"}`},
		{"POST", api + "/redrive", `{"state":"errored","by":"x"}`},
	} {
		if code, _ := apiCall(t, c.method, c.url, "", jsonType, c.body); code != http.StatusUnauthorized {
			t.Errorf("%s %s without the token: %d, want 401", c.method, c.url, code)
		}
		if code, _ := apiCall(t, c.method, c.url, "wrong", jsonType, c.body); code != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong token: %d, want 401", c.method, c.url, code)
		}
	}
	if f.state("aliyun", "A-U1") != ledger.StateUnknown || f.state("tencent", "T-E1") != ledger.StateErrored {
		t.Fatal("a request without the token changed an order")
	}

	// List: filters, newest first, cursor paging, masked.
	type page struct {
		Orders []map[string]any `json:"orders"`
		Next   string           `json:"next_cursor"`
	}
	list := func(query string) (int, page, string) {
		code, body := apiCall(t, "GET", api+query, token, "", "")
		var p page
		if code == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				t.Fatalf("GET %s: %v\n%s", query, err, body)
			}
		}
		return code, p, body
	}
	// A parameter the listing does not read is refused, named.
	if code, body := apiCall(t, "GET", api+"?stat=paid", token, "", ""); code != http.StatusBadRequest || !strings.Contains(body, `unknown query parameter \"stat\"`) {
		t.Errorf("?stat=paid: %d %s, want 400 naming stat", code, body)
	}
	code, p, body := list("?state=unknown")
	if code != http.StatusOK || len(p.Orders) != 2 || p.Orders[0]["order_no"] != "A-U2" || p.Orders[1]["order_no"] != "A-U1" || p.Next != "" {
		t.Errorf("state=unknown: %d, want A-U2, A-U1 and no next cursor:\n%s", code, body)
	}
	if !strings.Contains(body, fixtureMasked) || len(phonesInClear(body)) > 0 {
		t.Errorf("state=unknown: want the userName masked as %s, no phone number in clear:\n%s", fixtureMasked, body)
	}
	var all []string
	cursor := ""
	for range 10 {
		code, p, body = list("?limit=3&cursor=" + url.QueryEscape(cursor))
		if code != http.StatusOK {
			t.Fatalf("limit=3: %d %s", code, body)
		}
		for _, o := range p.Orders {
			all = append(all, fmt.Sprint(o["order_no"]))
		}
		checkNoPhone(t, "GET /api/orders", body)
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if len(all) != 8 {
		t.Errorf("paging by 3 listed %v, want the 8 orders", all)
	}
	if code, p, body = list("?provider=tencent&state=errored&older_than=1h"); code != http.StatusOK || len(p.Orders) != 0 {
		t.Errorf("older_than=1h: %d, want none:\n%s", code, body)
	}
	for _, q := range []string{"?state=stuck", "?provider=nope", "?older_than=soon", "?limit=0", "?cursor=garbage!"} {
		if code, _, body := list(q); code != http.StatusBadRequest || !strings.Contains(body, `"error"`) {
			t.Errorf("GET %s: %d %s, want 400 with the error", q, code, body)
		}
	}

	// One order, with its history masked.
	code, body = apiCall(t, "GET", api+"/aliyun/A-U1", token, "", "")
	if code != http.StatusOK || !strings.Contains(body, `"call":"submit"`) || !strings.Contains(body, "no answer in 10s for user "+fixtureMasked) {
		t.Errorf("GET one order: %d, want its history with the message masked:\n%s", code, body)
	}
	checkNoPhone(t, "GET /api/orders/aliyun/A-U1", body)
	if code, _ = apiCall(t, "GET", api+"/aliyun/NOPE", token, "", ""); code != http.StatusNotFound {
		t.Errorf("GET a missing order: %d, want 404", code)
	}
	// A phone number typed where an order number or a filter goes is
	// not echoed in clear.
	pages := strings.TrimSuffix(api, "/api/orders") + "/orders/"
	for _, u := range []string{api + "?provider=13800138000", api + "?state=13800138000", pages + "aliyun/13800138000", pages + "?state=13800138000", pages + "?older_than=13800138000"} {
		code, body := apiCall(t, "GET", u, token, "", "")
		if code != http.StatusNotFound && code != http.StatusBadRequest || strings.Contains(body, "13800138000") || !strings.Contains(body, "138****8000") {
			t.Errorf("GET %s: %d %s, want a refusal with the number masked", u, code, body)
		}
	}

	if code, body := apiCall(t, "POST", api+"/redrive", token, "application/json", `{"state":"errored","older_than":"13800138000","by":"ann","note":"n"}`); code != http.StatusBadRequest || strings.Contains(body, "13800138000") || !strings.Contains(body, "138****8000") {
		t.Errorf("re-drive with a phone number as older_than: %d %s, want a refusal with the number masked", code, body)
	}

	// Resolve: refused requests change nothing.
	resolveURL := api + "/aliyun/A-U1/resolve"
	for _, c := range []struct {
		name, contentType, body string
		header                  []string
		want                    int
	}{
		{"a form body", "application/x-www-form-urlencoded", "as=errored&note=n&by=x", nil, http.StatusUnsupportedMediaType},
		{"text/plain", "text/plain", `{"as":"errored","note":"n","by":"x"}`, nil, http.StatusUnsupportedMediaType},
		{"cross-site", jsonType, `{"as":"errored","note":"n","by":"x"}`, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"another origin", jsonType, `{"as":"errored","note":"n","by":"x"}`, []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"an unknown field", jsonType, `{"as":"errored","note":"n","by":"x","force":true}`, nil, http.StatusBadRequest},
		// A key given twice, or in another case, is refused: encoding/json
		// takes the last and any case, so a proxy or an audit log reading
		// the first would see another decision (a black-box run).
		{"a key given twice", jsonType, `{"as":"absent","note":"n","by":"x","as":"errored"}`, nil, http.StatusBadRequest},
		{"a key in another case", jsonType, `{"As":"errored","note":"n","by":"x"}`, nil, http.StatusBadRequest},
		{"no note", jsonType, `{"as":"errored","by":"x"}`, nil, http.StatusBadRequest},
		{"an unknown decision", jsonType, `{"as":"bogus","note":"n","by":"x"}`, nil, http.StatusBadRequest},
		{"no name", jsonType, `{"as":"errored","note":"n"}`, nil, http.StatusBadRequest},
		{"a placeholder id", jsonType, `{"as":"paid","provider_order_id":"0","note":"n","by":"x"}`, nil, http.StatusBadRequest},
		{"another order's id", jsonType, `{"as":"paid","provider_order_id":"PO-OWNED","note":"n","by":"x"}`, nil, http.StatusConflict},
	} {
		code, body := apiCall(t, "POST", resolveURL, token, c.contentType, c.body, c.header...)
		if code != c.want {
			t.Errorf("resolve with %s: %d %s, want %d", c.name, code, body, c.want)
		}
	}
	if f.state("aliyun", "A-U1") != ledger.StateUnknown {
		t.Fatal("a refused resolve changed the order")
	}
	code, body = apiCall(t, "POST", api+"/aliyun/A-P1/resolve", token, jsonType, `{"as":"absent","note":"n","by":"x"}`)
	if code != http.StatusConflict || !strings.Contains(body, `"reason":"absent is not a decision for an order in state pending`) {
		t.Errorf("absent for a pending order: %d %s, want 409 with the reason", code, body)
	}
	code, body = apiCall(t, "POST", resolveURL, token, jsonType, `{"as":"paid","provider_order_id":"PO-U1","note":"paid in the console","by":"ann"}`)
	var resolved map[string]any
	_ = json.Unmarshal([]byte(body), &resolved)
	if code != http.StatusOK || resolved["state"] != "paid" || resolved["provider_order_id"] != "PO-U1" {
		t.Errorf("resolve paid: %d %s", code, body)
	}
	// Not absent within the listing lag of its last create (here the
	// default, 2m): the provider's console may not show the order yet.
	f.lag = tasks.DefaultListingLag
	lagged, _ := f.server(token, false)
	f.lag = 0
	code, body = apiCall(t, "POST", lagged.URL+"/api/orders/aliyun/A-U2/resolve", token, jsonType, `{"as":"absent","note":"not in the console","by":"ann"}`)
	if code != http.StatusConflict || !strings.Contains(body, "within the listing lag (2m0s)") {
		t.Errorf("resolve absent a moment after its create: %d %s, want 409 for the listing lag", code, body)
	}
	code, body = apiCall(t, "POST", api+"/aliyun/A-U2/resolve", token, jsonType, `{"as":"absent","note":"not in the console","by":"ann"}`)
	// Its task is still pending: it will submit the order; none is added.
	if code != http.StatusOK || !strings.Contains(body, `"state":"submitting"`) || strings.Contains(body, `"requeued"`) || f.taskState("aliyun", "A-U2") != "pending" {
		t.Errorf("resolve absent: %d %s, want submitting, its pending task kept", code, body)
	}

	// Re-drive one order; an order that may exist is refused.
	code, body = apiCall(t, "POST", api+"/tencent/T-E2/redrive", token, jsonType, `{"by":"ann"}`)
	if code != http.StatusConflict || !strings.Contains(body, `"status":"refused"`) || !strings.Contains(body, "may exist") {
		t.Errorf("redrive of an order that may exist: %d %s, want 409", code, body)
	}
	if code, body = apiCall(t, "POST", api+"/tencent/T-E1/redrive", token, jsonType, `{}`); code != http.StatusBadRequest {
		t.Errorf("redrive without by: %d %s, want 400", code, body)
	}
	// The bulk re-drive: the dry run first.
	code, body = apiCall(t, "POST", api+"/redrive", token, jsonType, `{"state":"errored","dry_run":true}`)
	if code != http.StatusOK || !strings.Contains(body, `"would_redrive":1,"skipped":1,"refused":0`) {
		t.Errorf("dry run: %d %s", code, body)
	}
	if f.state("tencent", "T-E1") != ledger.StateErrored {
		t.Fatal("the dry run changed T-E1")
	}
	if code, body = apiCall(t, "POST", api+"/redrive", token, jsonType, `{"state":"paid","by":"ann"}`); code != http.StatusBadRequest {
		t.Errorf("redrive state=paid: %d %s, want 400", code, body)
	}
	code, body = apiCall(t, "POST", api+"/redrive", token, jsonType, `{"state":"errored","provider":"tencent","reason_match":"itemid","by":"ann","note":"fixed"}`)
	if code != http.StatusOK || !strings.Contains(body, `"redriven":1`) || !strings.Contains(body, `"order_no":"T-E1"`) || !strings.Contains(body, `"requeued":true`) {
		t.Errorf("redrive: %d %s", code, body)
	}
	if f.state("tencent", "T-E1") != ledger.StateSubmitting || f.taskState("tencent", "T-E1") != "pending" {
		t.Errorf("T-E1 after the re-drive: %s, task %s; want submitting, pending", f.state("tencent", "T-E1"), f.taskState("tencent", "T-E1"))
	}

	// An order number with a slash, a question mark and a percent sign.
	odd := "Odd/1?x%2F"
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: f.rs.Addr})
	defer client.Close()
	enq := tasks.NewEnqueuer(client, f.ledger, registry.Validators("test"), nil)
	if res, err := enq.Enqueue(context.Background(), []byte(`{"provider":"tencent","order_no":"`+odd+`","params":{"CustomerId":"C1","ItemId":"I","ItemNum":1}}`)); err != nil || res.Status != tasks.Enqueued {
		t.Fatalf("enqueue %s: %+v %v", odd, res, err)
	}
	if code, body = apiCall(t, "GET", api+"/tencent/"+url.PathEscape(odd), token, "", ""); code != http.StatusOK || !strings.Contains(body, `"order_no":"Odd/1?x%2F"`) {
		t.Errorf("GET %s: %d %s", odd, code, body)
	}

	// The actions are counted.
	want := map[string]float64{
		`action="resolve_paid",result="ok"`:         1,
		`action="resolve_paid",result="refused"`:    1,
		`action="resolve_absent",result="ok"`:       1,
		`action="resolve_absent",result="refused"`:  1,
		`action="resolve_errored",result="refused"`: 0, // no note: a bad request, no action
		`action="redrive",result="ok"`:              1,
		`action="redrive",result="refused"`:         1,
		`action="redrive",result="error"`:           0,
	}
	got := operatorCounts(t, reg)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("orderworker_operator_actions_total{%s} = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// operatorCounts reads orderworker_operator_actions_total by its labels.
func operatorCounts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "orderworker_operator_actions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out[fmt.Sprintf("action=%q,result=%q", l["action"], l["result"])] = m.GetCounter().GetValue()
		}
	}
	return out
}

// Read-only (the default): every action is refused with 403 and nothing
// changes; reads and dry runs work.
func TestOrdersAPIReadOnly(t *testing.T) {
	t.Parallel()
	f := newOrdersFixture(t)
	f.seed()
	const token = "orders-ro-token"
	srv, _ := f.server(token, true)
	api := srv.URL + "/api/orders"
	for _, c := range []struct{ url, body string }{
		{api + "/aliyun/A-U1/resolve", `{"as":"errored","note":"n","by":"x"}`},
		{api + "/tencent/T-E1/redrive", `{"by":"x"}`},
		{api + "/redrive", `{"state":"errored","by":"x"}`},
	} {
		code, body := apiCall(t, "POST", c.url, token, "application/json", c.body)
		if code != http.StatusForbidden || !strings.Contains(body, "read-only") {
			t.Errorf("POST %s read-only: %d %s, want 403", c.url, code, body)
		}
	}
	if f.state("aliyun", "A-U1") != ledger.StateUnknown || f.state("tencent", "T-E1") != ledger.StateErrored {
		t.Fatal("a read-only worker changed an order")
	}
	if code, body := apiCall(t, "POST", api+"/redrive", token, "application/json", `{"state":"errored","dry_run":true}`); code != http.StatusOK || !strings.Contains(body, `"would_redrive":1`) {
		t.Errorf("dry run read-only: %d %s, want 200", code, body)
	}
	if code, _ := apiCall(t, "GET", api+"?state=unknown", token, "", ""); code != http.StatusOK {
		t.Errorf("list read-only: %d, want 200", code)
	}
}

// The pages' forms: refused without the session's CSRF token, from
// another site, and in read-only mode; the stylesheet is the one the
// Content-Security-Policy allows.
func TestOrdersPagesForms(t *testing.T) {
	t.Parallel()
	f := newOrdersFixture(t)
	f.seed()
	const token = "orders-pages-token"
	srv, _ := f.server(token, false)
	page := srv.URL + "/orders/aliyun/A-U1"

	req, _ := http.NewRequest("GET", page, nil)
	req.SetBasicAuth("ann", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", page, resp.StatusCode)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/orders/" {
		t.Fatalf("session cookie = %+v; want HttpOnly, SameSite=Lax, Path=/orders/", session)
	}
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the resolve form:\n%s", body)
	}
	csrf := string(m[1])
	if !strings.Contains(string(body), `name="by" required maxlength="100" value="ann"`) {
		t.Errorf("the form's by is not the basic-auth user name")
	}
	// absent is offered for an unknown order, not for a pending one its
	// own create was answered for (only for one found by matching).
	if !strings.Contains(string(body), `<option value="absent">`) {
		t.Errorf("no absent option for an unknown order")
	}
	getPage := func(no string) string {
		if !strings.Contains(no, "/") {
			no = "aliyun/" + no
		}
		req, _ := http.NewRequest("GET", srv.URL+"/orders/"+no, nil)
		req.SetBasicAuth("ann", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if pending := getPage("A-P1"); !strings.Contains(pending, `id="resolve"`) || strings.Contains(pending, `<option value="absent">`) {
		t.Errorf("a pending order's page: want the resolve form without absent\n%s", pending)
	}
	// Resolving paid names the provider's order id, but for a provider
	// whose orders have none (Tencent): Resolve refuses one there, so the
	// form offers no field for it.
	if unknown := string(body); !strings.Contains(unknown, `name="provider_order_id"`) {
		t.Errorf("an Aliyun order's resolve form has no provider order id field")
	}
	f.settle("tencent", "T-Q2", ledger.SetUnknown("timeout after sending").WithMayExist(true))
	if tencent := getPage("tencent/T-Q2"); !strings.Contains(tencent, `<option value="paid">`) || strings.Contains(tencent, `name="provider_order_id"`) {
		t.Errorf("an unknown Tencent order's page: want paid offered without a provider order id field\n%s", tencent)
	}
	// A pending order found by matching: absent is offered (the matched
	// order may be another's).
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: f.rs.Addr})
	defer client.Close()
	enq := tasks.NewEnqueuer(client, f.ledger, registry.Validators("test"), &tasks.EnqueuerOptions{Sealer: f.sealer})
	if res, err := enq.Enqueue(context.Background(), []byte(`{"provider":"aliyun","order_no":"A-M1","params":{"iotId":"dev-2","commodityCode":"streamingResource_20_10","copies":1}}`)); err != nil || res.Status != tasks.Enqueued {
		t.Fatalf("enqueue A-M1: %+v, %v", res, err)
	}
	f.settle("aliyun", "A-M1", ledger.SetPending("PO-M1", time.Now(), time.Now().Add(time.Minute)).WithMayExist(true).WithMatched())
	if matched := getPage("A-M1"); !strings.Contains(matched, `<option value="absent">`) || !strings.Contains(matched, "the matched one is another") {
		t.Errorf("a matched pending order's page: want absent offered\n%s", matched)
	}
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindSubmatch(body)
	sum := sha256.Sum256(style[1])
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q does not allow the page's stylesheet by its hash, or allows more", csp)
	}
	checkNoPhone(t, "order page", string(body))

	postTo := func(page string, form url.Values, cookie *http.Cookie, header ...string) (int, string, string) {
		req, _ := http.NewRequest("POST", page+"/resolve", strings.NewReader(form.Encode()))
		req.SetBasicAuth("ann", token)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != nil {
			req.AddCookie(cookie)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}
	post := func(form url.Values, cookie *http.Cookie, header ...string) (int, string, string) {
		return postTo(page, form, cookie, header...)
	}
	form := url.Values{"as": {"errored"}, "note": {"cancelled at the provider"}, "by": {"ann"}, "csrf_token": {csrf}}
	other := &http.Cookie{Name: sessionCookie, Value: base64.RawURLEncoding.EncodeToString(make([]byte, 18))}
	noToken := url.Values{"as": {"errored"}, "note": {"n"}, "by": {"ann"}}
	for _, c := range []struct {
		name   string
		form   url.Values
		cookie *http.Cookie
		header []string
	}{
		{"no CSRF token", noToken, session, nil},
		{"no session cookie", form, nil, nil},
		{"another session's cookie", form, other, nil},
		{"from another site", form, session, []string{"Sec-Fetch-Site", "cross-site"}},
		{"from another origin", form, session, []string{"Origin", "https://evil.example"}},
	} {
		if code, _, body := post(c.form, c.cookie, c.header...); code != http.StatusForbidden {
			t.Errorf("form with %s: %d, want 403\n%s", c.name, code, body)
		}
	}
	if f.state("aliyun", "A-U1") != ledger.StateUnknown {
		t.Fatal("a refused form changed the order")
	}
	code, loc, answer := post(form, session, "Sec-Fetch-Site", "same-origin", "Origin", srv.URL)
	if code != http.StatusSeeOther || loc != "/orders/aliyun/A-U1?done=errored" {
		t.Fatalf("form: %d, Location %q, want 303 to the order's page\n%s", code, loc, answer)
	}
	if f.state("aliyun", "A-U1") != ledger.StateErrored {
		t.Errorf("the form did not resolve the order")
	}
	// A queued order no create of which has left: the form offers only
	// errored (stop it before it is made), and takes it.
	queued := getPage("tencent/T-Q1")
	if !strings.Contains(queued, `id="resolve"`) || !strings.Contains(queued, `<option value="errored">`) ||
		strings.Contains(queued, `<option value="paid">`) || strings.Contains(queued, `<option value="absent">`) || strings.Contains(queued, `name="provider_order_id"`) {
		t.Errorf("a queued order's page: want the resolve form with errored alone\n%s", queued)
	}
	stop := url.Values{"as": {"errored"}, "note": {"params refused by the provider"}, "by": {"ann"}, "csrf_token": {csrf}}
	if code, loc, body := postTo(srv.URL+"/orders/tencent/T-Q1", stop, session); code != http.StatusSeeOther || loc != "/orders/tencent/T-Q1?done=errored" {
		t.Errorf("stopping a queued order: %d, Location %q\n%s", code, loc, body)
	}
	if f.state("tencent", "T-Q1") != ledger.StateErrored {
		t.Errorf("the form did not stop the queued order")
	}
	// A refused decision shows the order's page with the reason.
	form.Set("as", "absent")
	if code, _, body := post(form, session); code != http.StatusConflict || !strings.Contains(body, "Refused: the order is errored already") {
		t.Errorf("refused form: %d, want 409 with the reason\n%s", code, body)
	}

	// Read-only: no form, and a POST is refused.
	ro, _ := f.server(token, true)
	req, _ = http.NewRequest("GET", ro.URL+"/orders/aliyun/A-U2", nil)
	req.SetBasicAuth("ann", token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body2, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body2), "<form method=\"post\"") || !strings.Contains(string(body2), `id="read-only"`) {
		t.Errorf("read-only order page shows a form, or does not say it is read-only:\n%s", body2)
	}
	req, _ = http.NewRequest("POST", ro.URL+"/orders/aliyun/A-U2/resolve", strings.NewReader(url.Values{"as": {"errored"}, "note": {"n"}, "by": {"ann"}, "csrf_token": {csrf}}.Encode()))
	req.SetBasicAuth("ann", token)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(session)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || f.state("aliyun", "A-U2") != ledger.StateUnknown {
		t.Errorf("read-only form POST: %d, order %s; want 403, unchanged", resp.StatusCode, f.state("aliyun", "A-U2"))
	}
}
