package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderworker/orderworker/internal/jsonscan"
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/ops"
)

// ordersConfig is what the Orders pages and API are built from.
type ordersConfig struct {
	Ledger    *ledger.Ledger
	Inspector *asynq.Inspector
	RedisOpt  asynq.RedisConnOpt // for the client that queues re-driven orders
	Set       *providers.Set
	Sealer    *tasks.Sealer // opens params to show them masked; nil: shown sealed
	Queue     string
	// ReadOnly refuses every action (403) and shows no forms
	// (ORDERWORKER_MONITORING_READONLY).
	ReadOnly bool
	// Token is the monitoring token: adminHandler requires it, and the
	// key of the forms' CSRF tokens is derived from it. Empty: a random
	// key per process.
	Token      providers.Secret
	Registerer prometheus.Registerer // orderworker_operator_actions_total
	// Secrets are removed from operators' notes (ops.Options.Secrets).
	Secrets []string
	// ListingLag is ORDERWORKER_LISTING_LAG (ops.Options.ListingLag).
	ListingLag time.Duration
	Logger     *slog.Logger
}

// ordersAdmin serves the operator's Orders pages (/orders/) and their JSON
// API (/api/orders). adminHandler puts both behind the monitoring token.
//
// Cross-site requests: every POST must pass http.CrossOriginProtection
// (Sec-Fetch-Site same-origin or none, else an Origin matching Host); a
// form POST must also carry a CSRF token, the HMAC of the browser's
// session cookie (random, HttpOnly, SameSite=Lax, path /orders/) under a
// key derived from the monitoring token; an API POST must be JSON, which
// no cross-site form can send.
type ordersAdmin struct {
	ops       *ops.Orders
	inspector *asynq.Inspector
	client    *asynq.Client
	readOnly  bool
	csrfKey   []byte
	origin    *http.CrossOriginProtection
	log       *slog.Logger
	mux       *http.ServeMux
	handler   http.Handler // mux behind the cross-origin check
}

// operatorActions is the counter of operator actions.
func operatorActions(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderworker_operator_actions_total",
		Help: "Operator actions on orders taken through this worker's admin API and Orders pages, by action (resolve_paid, resolve_absent, resolve_errored, redrive) and result (ok, refused, error).",
	}, []string{"action", "result"})
	for _, a := range ops.Actions {
		for _, r := range ops.Results {
			c.WithLabelValues(a, r)
		}
	}
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

func newOrdersAdmin(cfg ordersConfig) *ordersAdmin {
	actions := operatorActions(cfg.Registerer)
	client := asynq.NewClient(cfg.RedisOpt)
	a := &ordersAdmin{
		ops: ops.New(cfg.Ledger, cfg.Inspector, client, cfg.Set, &ops.Options{
			Queue: cfg.Queue, Sealer: cfg.Sealer, ListingLag: cfg.ListingLag, Secrets: cfg.Secrets,
			Observe: func(action, result string) { actions.WithLabelValues(action, result).Inc() },
		}),
		inspector: cfg.Inspector,
		client:    client,
		readOnly:  cfg.ReadOnly,
		csrfKey:   csrfKey(cfg.Token),
		origin:    http.NewCrossOriginProtection(),
		log:       cfg.Logger,
		mux:       http.NewServeMux(),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.origin.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.refuse(w, r, http.StatusForbidden, "cross-site request refused")
	}))
	m := a.mux
	m.HandleFunc("GET /orders/{$}", a.listPage)
	m.HandleFunc("GET /orders/{provider}/{order_no}", a.orderPage)
	m.HandleFunc("POST /orders/{provider}/{order_no}/resolve", a.resolveForm)
	m.HandleFunc("POST /orders/{provider}/{order_no}/redrive", a.redriveForm)
	m.HandleFunc("GET /api/orders", a.apiList)
	m.HandleFunc("GET /api/orders/{provider}/{order_no}", a.apiGet)
	m.HandleFunc("POST /api/orders/{provider}/{order_no}/resolve", a.apiResolve)
	m.HandleFunc("POST /api/orders/{provider}/{order_no}/redrive", a.apiRedriveOne)
	m.HandleFunc("POST /api/orders/redrive", a.apiRedrive)
	a.handler = a.origin.Handler(m)
	return a
}

// Close releases the client that queues re-driven orders.
func (a *ordersAdmin) Close() error { return a.client.Close() }

func (a *ordersAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	}
	a.handler.ServeHTTP(w, r)
}

// refuse answers a refused request: JSON for the API, a page otherwise.
func (a *ordersAdmin) refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	// A refusal may quote what the request gave (an order number, a
	// filter): a phone number typed there is shown masked, as anywhere
	// on these pages.
	msg = providers.MaskPhones(msg)
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, code, map[string]string{"error": msg})
		return
	}
	a.render(w, code, "message", messagePage{pageData: pageData{Title: http.StatusText(code)}, Message: msg})
}

// readOnlyMsg is why an action is refused in read-only mode.
const readOnlyMsg = "read-only: this worker runs with ORDERWORKER_MONITORING_READONLY=true (the default); actions need false"

// ---------------------------------------------------------------------------
// CSRF: a session cookie and a token derived from it.

const sessionCookie = "orderworker_orders_session"

// csrfKey derives the key of the forms' CSRF tokens from the monitoring
// token, so that every replica behind a load balancer accepts the forms of
// the others and changing the token retires every form; without a token,
// a random key for this process.
func csrfKey(token providers.Secret) []byte {
	if token == "" {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		return k
	}
	m := hmac.New(sha256.New, []byte(token.Reveal()))
	m.Write([]byte("orderworker orders csrf key v1"))
	return m.Sum(nil)
}

// session returns the browser's session id, setting a new one when it has
// none.
func (a *ordersAdmin) session(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(sessionCookie); err == nil && validSession(c.Value) {
		return c.Value
	}
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: "/orders/",
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
	})
	return id
}

func validSession(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 18
}

// csrfToken is the forms' token for a session.
func (a *ordersAdmin) csrfToken(session string) string {
	m := hmac.New(sha256.New, a.csrfKey)
	m.Write([]byte("orders form\x00" + session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkForm refuses a form POST whose CSRF token does not match its
// session cookie (the cross-origin check ran before).
func (a *ordersAdmin) checkForm(r *http.Request) error {
	c, err := r.Cookie(sessionCookie)
	if err != nil || !validSession(c.Value) {
		return errors.New("no session: reload the order's page and send the form again")
	}
	got := r.PostFormValue("csrf_token")
	if !hmac.Equal([]byte(got), []byte(a.csrfToken(c.Value))) {
		return errors.New("this form is stale or was not sent from this site: reload the order's page and send it again")
	}
	return nil
}

// ---------------------------------------------------------------------------
// The JSON API.

func writeJSON(w http.ResponseWriter, code int, v any) {
	if m, ok := v.(map[string]string); ok {
		// An error answer may quote what the request gave (a filter, a
		// body's field): a phone number typed there is shown masked.
		for k, s := range m {
			m[k] = providers.MaskPhones(s)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// apiFail answers an action's or a read's error (writeJSON masks phone
// numbers in it).
func (a *ordersAdmin) apiFail(w http.ResponseWriter, err error) {
	var refused *ledger.RefusedError
	var usage *ops.UsageError
	msg := err.Error()
	switch {
	case errors.As(err, &refused):
		writeJSON(w, http.StatusConflict, map[string]string{"error": msg, "reason": refused.Reason})
	case errors.Is(err, ledger.ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such order"})
	case errors.As(err, &usage):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg})
	default:
		a.log.Warn("orders API", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "ledger unavailable: " + msg})
	}
}

// filterOf reads a listing's filter from a query: state, provider,
// older_than (a Go duration), limit, cursor.
func filterOf(q interface{ Get(string) string }) (ops.Filter, error) {
	var f ops.Filter
	var err error
	if f.State, err = ops.ParseState(q.Get("state")); err != nil {
		return f, err
	}
	f.Provider = strings.TrimSpace(q.Get("provider"))
	if s := strings.TrimSpace(q.Get("older_than")); s != "" {
		if f.OlderThan, err = time.ParseDuration(s); err != nil || f.OlderThan < 0 {
			return f, &ops.UsageError{Msg: fmt.Sprintf("older_than %q: want a duration such as 15m or 2h", s)}
		}
	}
	if s := strings.TrimSpace(q.Get("limit")); s != "" {
		if f.Limit, err = strconv.Atoi(s); err != nil || f.Limit < 1 || f.Limit > 1000 {
			return f, &ops.UsageError{Msg: fmt.Sprintf("limit %q: want 1 to 1000", s)}
		}
	}
	f.Cursor = q.Get("cursor")
	return f, nil
}

// filterParams are the query parameters filterOf reads.
var filterParams = []string{"state", "provider", "older_than", "limit", "cursor"}

func (a *ordersAdmin) apiList(w http.ResponseWriter, r *http.Request) {
	// A parameter it does not read is refused, named: a mistyped ?stat=
	// would list every order as if unfiltered.
	for name := range r.URL.Query() {
		if !slices.Contains(filterParams, name) {
			a.apiFail(w, &ops.UsageError{Msg: fmt.Sprintf("unknown query parameter %q (want %s)", providers.Truncate(providers.MaskPhones(name), 64), strings.Join(filterParams, ", "))})
			return
		}
	}
	f, err := filterOf(r.URL.Query())
	if err != nil {
		a.apiFail(w, err)
		return
	}
	page, err := a.ops.List(r.Context(), f)
	if err != nil {
		a.apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func refOf(r *http.Request) ledger.Ref {
	return ledger.Ref{Provider: r.PathValue("provider"), OrderNo: r.PathValue("order_no")}
}

func (a *ordersAdmin) apiGet(w http.ResponseWriter, r *http.Request) {
	rec, err := a.ops.Get(r.Context(), refOf(r))
	if err != nil {
		a.apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// decodeAction checks an API action (read-only mode, a JSON body) and
// decodes its body into v; it answers and returns false when refused.
func (a *ordersAdmin) decodeAction(w http.ResponseWriter, r *http.Request, v any, mutates func() bool) bool {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "send the body as JSON (Content-Type: application/json)"})
		return false
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return false
	}
	if msg := strictKeys(body, v); msg != "" {
		// encoding/json takes the last of a key given twice and a key
		// in any case: a proxy or an audit log reading the first
		// "as" would see another decision than the one recorded.
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + msg})
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return false
	}
	if a.readOnly && mutates() {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": readOnlyMsg})
		return false
	}
	return true
}

// strictKeys refuses a JSON object body (for the struct v points to) that
// gives a key twice, or a key that is not one of v's field names as
// written (encoding/json matches them in any case): "" when it does
// neither, or is not an object (decoding reports that).
func strictKeys(body []byte, v any) string {
	if key, found, valid := jsonscan.DuplicateKey(body); valid && found {
		return fmt.Sprintf("key %q given twice", providers.Truncate(providers.HidePhones(key), 64))
	}
	members, ok := jsonscan.Members(body)
	if !ok {
		return ""
	}
	names := map[string]bool{}
	t := reflect.TypeOf(v).Elem()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names[name] = true
	}
	for _, m := range members {
		if !names[string(m.Key)] {
			return fmt.Sprintf("unknown field %q (the fields are %s, in lower case)", providers.Truncate(providers.HidePhones(string(m.Key)), 64), strings.Join(slices.Sorted(maps.Keys(names)), ", "))
		}
	}
	return ""
}

// resolveBody is the body of POST .../resolve.
type resolveBody struct {
	As              string `json:"as"`
	ProviderOrderID string `json:"provider_order_id"`
	Note            string `json:"note"`
	By              string `json:"by"`
}

func (a *ordersAdmin) apiResolve(w http.ResponseWriter, r *http.Request) {
	var b resolveBody
	if !a.decodeAction(w, r, &b, func() bool { return true }) {
		return
	}
	res, err := a.resolve(r.Context(), refOf(r), b)
	if err != nil {
		a.apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *ordersAdmin) resolve(ctx context.Context, ref ledger.Ref, b resolveBody) (ops.Resolved, error) {
	res, err := a.ops.Resolve(ctx, ref, ops.ResolveArgs{As: ledger.Resolution(strings.TrimSpace(b.As)),
		ProviderOrderID: b.ProviderOrderID, Note: b.Note, By: b.By})
	a.log.Info("operator action", "action", "resolve", "as", b.As, "provider", ref.Provider, "order_no", ref.OrderNo,
		"by", providers.MaskPhones(b.By), "result", resultName(err))
	if err == nil && res.Warning != "" {
		a.log.Warn("order resolved, but a step after the decision failed", "provider", ref.Provider, "order_no", ref.OrderNo, "error", res.Warning)
	}
	if err == nil && res.RequeueError != "" {
		a.log.Warn("resolved order's task not run now (a task it has runs at its time; the reconciler queues one for an order without)", "provider", ref.Provider, "order_no", ref.OrderNo, "error", res.RequeueError)
	}
	if err == nil && res.Unacknowledged != "" {
		a.log.Warn("resolved order not acknowledged by the Redis replicas", "provider", ref.Provider, "order_no", ref.OrderNo, "error", res.Unacknowledged)
	}
	return res, err
}

// redriveBody is the body of POST .../redrive (one order) and of POST
// /api/orders/redrive (with the filter and dry_run).
type redriveBody struct {
	State       string `json:"state"`
	Provider    string `json:"provider"`
	ReasonMatch string `json:"reason_match"`
	OlderThan   string `json:"older_than"`
	DryRun      bool   `json:"dry_run"`
	By          string `json:"by"`
	Note        string `json:"note"`
}

func (a *ordersAdmin) apiRedriveOne(w http.ResponseWriter, r *http.Request) {
	var b struct {
		By   string `json:"by"`
		Note string `json:"note"`
	}
	if !a.decodeAction(w, r, &b, func() bool { return true }) {
		return
	}
	res, err := a.redriveOne(r.Context(), refOf(r), b.By, b.Note)
	switch {
	case err != nil:
		a.apiFail(w, err)
	case res.Status == ops.StatusRefused:
		writeJSON(w, http.StatusConflict, res)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

func (a *ordersAdmin) redriveOne(ctx context.Context, ref ledger.Ref, by, note string) (ops.Redriven, error) {
	if strings.TrimSpace(by) == "" {
		return ops.Redriven{}, &ops.UsageError{Msg: "a re-drive needs the name of who runs it (by)"}
	}
	res, err := a.ops.RedriveOne(ctx, ref, by, note)
	result := resultName(err)
	if err == nil && res.Status == ops.StatusRefused {
		result = ops.ResultRefused
	}
	a.log.Info("operator action", "action", "redrive", "provider", ref.Provider, "order_no", ref.OrderNo,
		"by", providers.MaskPhones(by), "result", result)
	if err == nil && res.Unacknowledged != "" {
		a.log.Warn("re-driven order not acknowledged by the Redis replicas", "provider", ref.Provider, "order_no", ref.OrderNo, "error", res.Unacknowledged)
	}
	return res, err
}

func resultName(err error) string {
	var refused *ledger.RefusedError
	switch {
	case err == nil:
		return ops.ResultOK
	case errors.As(err, &refused), errors.Is(err, ledger.ErrNotFound):
		return ops.ResultRefused
	}
	return ops.ResultError
}

// redriveAnswer is the answer of POST /api/orders/redrive.
type redriveAnswer struct {
	Orders       []ops.Redriven `json:"orders"`
	Redriven     int            `json:"redriven"`
	WouldRedrive int            `json:"would_redrive"`
	Skipped      int            `json:"skipped"`
	Refused      int            `json:"refused"`
}

func (a *ordersAdmin) apiRedrive(w http.ResponseWriter, r *http.Request) {
	var b redriveBody
	if !a.decodeAction(w, r, &b, func() bool { return !b.DryRun }) {
		return
	}
	if b.State != string(ledger.StateErrored) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `state "errored" is required: only errored orders are re-driven`})
		return
	}
	var older time.Duration
	if b.OlderThan != "" {
		var err error
		if older, err = time.ParseDuration(b.OlderThan); err != nil || older < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("older_than %q: want a duration such as 15m or 2h", b.OlderThan)})
			return
		}
	}
	ans := redriveAnswer{Orders: []ops.Redriven{}}
	err := a.ops.Redrive(r.Context(), ops.RedriveArgs{Provider: b.Provider, ReasonMatch: b.ReasonMatch, OlderThan: older,
		DryRun: b.DryRun, By: b.By, Note: b.Note}, func(x ops.Redriven) error {
		ans.Orders = append(ans.Orders, x)
		switch x.Status {
		case ops.StatusRedriven:
			ans.Redriven++
		case ops.StatusWouldRedrive:
			ans.WouldRedrive++
		case ops.StatusSkipped:
			ans.Skipped++
		case ops.StatusRefused:
			ans.Refused++
		}
		return nil
	})
	if !b.DryRun {
		a.log.Info("operator action", "action", "redrive", "filter_provider", b.Provider, "by", providers.MaskPhones(b.By),
			"redriven", ans.Redriven, "skipped", ans.Skipped, "refused", ans.Refused, "result", resultName(err))
	}
	if err != nil {
		a.apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ans)
}
