package main

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/ops"
)

// The Orders pages: server-rendered, no script, no external asset; the one
// stylesheet is inline and allowed by its hash in the Content-Security-Policy.

//go:embed orders.html
var ordersHTML string

const ordersCSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2733;background:#f5f7fa}
header{display:flex;gap:1.5em;align-items:center;padding:.7em 1.5em;background:#1d2733;color:#fff}
header a{color:#fff;text-decoration:none;margin-right:1em}.brand{font-weight:600}
main{padding:1em 1.5em;max-width:1200px}
h1{font-size:1.4em;margin:.3em 0 .6em}h2{font-size:1.1em;margin:1.4em 0 .5em}h3{margin:0 0 .3em;font-size:1em}
table{border-collapse:collapse;background:#fff;margin:.3em 0}
th,td{border:1px solid #d8dee6;padding:.3em .6em;text-align:left;vertical-align:top}
thead th{background:#e9eef4}
.counts td{text-align:right;min-width:5.5em}.counts td small{display:block;color:#7a5b00;font-size:.8em}
.counts td.none a{color:#9aa5b1}.counts td.some.unknown,.counts td.some.errored{background:#fff1f0}
.state,.badge,.result{display:inline-block;padding:0 .45em;border-radius:3px;background:#e2e8f0;font-size:.9em}
.state.paid,.result.ok{background:#d7f5dd}.state.errored{background:#fddcdc}.state.unknown{background:#ffe7b8}
.state.pending{background:#e0e9ff}.badge.ro{background:#ffe7b8;color:#1d2733}
.reason,.msg{max-width:38em;word-break:break-word}
dl.record{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;background:#fff;padding:.8em;border:1px solid #d8dee6}
dl.record dt{color:#52606d}dl.record dd{margin:0}pre{margin:0;white-space:pre-wrap;word-break:break-all}
form.filter label,form.action label{margin-right:1em;display:inline-block;margin-bottom:.4em}
form.action{background:#fff;border:1px solid #d8dee6;padding:.8em;margin:.6em 0}
.error{color:#a61b1b;background:#fddcdc;padding:.5em .8em}.done{background:#d7f5dd;padding:.5em .8em}
.pager a{margin-right:1.5em}
`

var (
	ordersTemplates = template.Must(template.New("orders").Funcs(template.FuncMap{
		"css":      func() template.CSS { return template.CSS(ordersCSS) },
		"orderURL": orderURL,
		"when":     when,
		"age":      age,
		"short":    func(s string) string { return providers.Truncate(s, 160) },
	}).Parse(ordersHTML))

	// ordersCSP allows the inline stylesheet (by its hash), forms to this
	// origin, and nothing else: no script, no frame, no external asset.
	ordersCSP = func() string {
		sum := sha256.Sum256([]byte(ordersCSS))
		return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
			"'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	}()
)

// orderURL is the path of an order's page.
func orderURL(provider, orderNo string) string {
	return "/orders/" + url.PathEscape(provider) + "/" + url.PathEscape(orderNo)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

// age is a short duration since t: 45s, 17m, 3h05m, 4d2h.
func age(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := max(time.Since(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// pageData is what every page shows.
type pageData struct {
	Title    string
	ReadOnly bool
}

type messagePage struct {
	pageData
	Message string
}

// render executes a page into a buffer first, so that a template error
// never sends half a page.
func (a *ordersAdmin) render(w http.ResponseWriter, code int, name string, data any) {
	switch d := data.(type) {
	case messagePage:
		d.ReadOnly = a.readOnly
		data = d
	}
	var buf bytes.Buffer
	if err := ordersTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		a.log.Error("orders page", "page", name, "error", err)
		http.Error(w, "page error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", ordersCSP)
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// ---------------------------------------------------------------------------
// The list.

type countCell struct {
	Provider string
	State    ledger.State
	Count    int64
	Oldest   string // age of the oldest, in non-terminal states
	URL      string
}

type countRow struct {
	Provider string
	Cells    []countCell
	Total    int64
}

type listFilter struct {
	State, Provider, OlderThan, Limit, Cursor string
}

type listPage struct {
	pageData
	States    []ledger.State
	Providers []string
	Rows      []countRow
	Filter    listFilter
	Orders    []*ledger.Record
	Error     string
	NextURL   string
	FirstURL  string
}

func listURL(f listFilter) string {
	q := url.Values{}
	for k, v := range map[string]string{"state": f.State, "provider": f.Provider, "older_than": f.OlderThan, "limit": f.Limit, "cursor": f.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return "/orders/"
	}
	return "/orders/?" + q.Encode()
}

func (a *ordersAdmin) listPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := listPage{
		pageData:  pageData{Title: "Orders", ReadOnly: a.readOnly},
		States:    ledger.States,
		Providers: a.ops.Providers(),
		Filter: listFilter{State: q.Get("state"), Provider: q.Get("provider"),
			OlderThan: strings.TrimSpace(q.Get("older_than")), Limit: q.Get("limit"), Cursor: q.Get("cursor")},
	}
	stats, err := a.ops.Stats(r.Context())
	if err != nil {
		a.log.Warn("orders page", "error", err)
		a.refuse(w, r, http.StatusServiceUnavailable, "the ledger cannot be read: "+err.Error())
		return
	}
	for _, p := range d.Providers {
		row := countRow{Provider: p}
		for _, s := range ledger.States {
			st := stats[p][s]
			c := countCell{Provider: p, State: s, Count: st.Count, URL: listURL(listFilter{State: string(s), Provider: p})}
			if !s.Terminal() && st.Count > 0 {
				c.Oldest = age(st.Oldest)
			}
			row.Cells = append(row.Cells, c)
			row.Total += st.Count
		}
		d.Rows = append(d.Rows, row)
	}
	code := http.StatusOK
	f, err := filterOf(q)
	if err == nil {
		var page ops.Page
		if page, err = a.ops.List(r.Context(), f); err == nil {
			d.Orders = page.Orders
			if page.Next != "" {
				next := d.Filter
				next.Cursor = page.Next
				d.NextURL = listURL(next)
			}
		}
	}
	var usage *ops.UsageError
	switch {
	case errors.As(err, &usage):
		code, d.Error = http.StatusBadRequest, providers.MaskPhones(err.Error())
		// The form shows the filter again: a phone number typed into
		// it, masked as the error shows it.
		f := &d.Filter
		for _, v := range []*string{&f.State, &f.Provider, &f.OlderThan, &f.Limit, &f.Cursor} {
			*v = providers.MaskPhones(*v)
		}
	case err != nil:
		a.log.Warn("orders page", "error", err)
		code, d.Error = http.StatusServiceUnavailable, "the ledger cannot be read: "+providers.MaskPhones(err.Error())
	}
	first := d.Filter
	first.Cursor = ""
	d.FirstURL = listURL(first)
	a.render(w, code, "list", d)
}

// ---------------------------------------------------------------------------
// An order.

type orderPage struct {
	pageData
	Order      *ledger.Record
	Queue      string
	TaskID     string
	TaskState  string
	TaskURL    string
	CSRF       string
	By         string
	Done       string
	Error      string
	CanResolve bool
	CanPaid    bool // the order may be resolved paid
	PaidID     bool // resolving it paid names the provider's order id (its provider gives one)
	CanAbsent  bool // the order may be resolved absent
	CanRedrive bool
	NoAction   string
}

// ActionURL is where an action's form posts.
func (p orderPage) ActionURL(action string) string {
	return orderURL(p.Order.Provider, p.Order.OrderNo) + "/" + action
}

// doneMessages are what the order's page says after an action (the
// redirect names one; nothing else is ever shown from the URL).
var doneMessages = func() map[string]string {
	m := map[string]string{
		"paid":     "Resolved as paid.",
		"absent":   "Resolved as absent: the order goes back to submission and its task is queued.",
		"errored":  "Resolved as errored.",
		"redriven": "Re-driven: the order goes back to submission and its task is queued.",
	}
	for k, v := range m {
		m[k+unacknowledged] = v + " Not yet safe: " + ops.NotAcknowledged + "."
	}
	return m
}()

// unacknowledged ends the name of an action's message (doneMessages) when
// the Redis replicas did not acknowledge it in time.
const unacknowledged = "-unacknowledged"

func (a *ordersAdmin) orderPage(w http.ResponseWriter, r *http.Request) {
	a.showOrder(w, r, refOf(r), http.StatusOK, doneMessages[r.URL.Query().Get("done")], "")
}

// showOrder renders an order's page with a message after an action.
func (a *ordersAdmin) showOrder(w http.ResponseWriter, r *http.Request, ref ledger.Ref, code int, done, failed string) {
	rec, err := a.ops.Get(r.Context(), ref)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		a.refuse(w, r, http.StatusNotFound, "no order "+ref.String())
		return
	case err != nil:
		a.log.Warn("order page", "error", err)
		a.refuse(w, r, http.StatusServiceUnavailable, "the ledger cannot be read: "+err.Error())
		return
	}
	d := orderPage{
		pageData: pageData{Title: ref.Provider + " / " + ref.OrderNo, ReadOnly: a.readOnly},
		Order:    rec,
		Queue:    a.ops.OrderQueue(ref),
		TaskID:   tasks.TaskID(ref.Provider, ref.OrderNo),
		Done:     done,
		Error:    providers.MaskPhones(failed),
	}
	info, err := a.inspector.GetTaskInfo(d.Queue, d.TaskID)
	switch {
	case err == nil:
		d.TaskState = info.State.String()
		d.TaskURL = "/monitoring/queues/" + url.PathEscape(d.Queue) + "/tasks/" + url.PathEscape(d.TaskID)
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		d.TaskState = "none (done, or not queued)"
	default:
		d.TaskState = "cannot be read: " + err.Error()
	}
	// A queued or submitting order may be resolved errored only, while
	// no create of it may have been received (Record.Resolvable).
	d.CanPaid = rec.Resolvable(ledger.ResolvePaid)
	d.PaidID = d.CanPaid && a.ops.HasOrderIDs(ref.Provider)
	d.CanAbsent = rec.Resolvable(ledger.ResolveAbsent)
	d.CanResolve = d.CanPaid || d.CanAbsent || rec.Resolvable(ledger.ResolveErrored)
	d.CanRedrive = rec.State == ledger.StateErrored && !rec.MayHaveBeenCreated()
	switch {
	case rec.State == ledger.StateErrored && rec.MayHaveBeenCreated():
		d.NoAction = "This order may exist at the provider, so it is never re-driven: look it up there."
	case rec.State.Terminal() && !d.CanRedrive:
		d.NoAction = fmt.Sprintf("The order is %s: that is final, nothing is left to do.", rec.State)
	case !d.CanResolve && !d.CanRedrive && (rec.State == ledger.StateQueued || rec.State == ledger.StateSubmitting):
		d.NoAction = fmt.Sprintf("The order is %s and a create of it may have reached the provider: the worker looks it up and moves it on by itself; it can no longer be stopped before it is made.", rec.State)
	case !d.CanResolve && !d.CanRedrive:
		d.NoAction = fmt.Sprintf("No action applies to an order in state %s: the worker moves it on by itself.", rec.State)
	}
	if !a.readOnly {
		d.CSRF = a.csrfToken(a.session(w, r))
		if u, _, ok := r.BasicAuth(); ok {
			d.By = u
		}
	}
	a.render(w, code, "order", d)
}

// formAction checks an action's form: not read-only, a CSRF token that
// matches the session. It answers and returns false when refused.
func (a *ordersAdmin) formAction(w http.ResponseWriter, r *http.Request) bool {
	if a.readOnly {
		a.refuse(w, r, http.StatusForbidden, readOnlyMsg)
		return false
	}
	if err := a.checkForm(r); err != nil {
		a.refuse(w, r, http.StatusForbidden, err.Error())
		return false
	}
	return true
}

// afterAction redirects to the order's page (so that a reload does not
// send the form again) or shows it with the reason an action failed.
func (a *ordersAdmin) afterAction(w http.ResponseWriter, r *http.Request, ref ledger.Ref, done string, err error) {
	var refused *ledger.RefusedError
	var usage *ops.UsageError
	switch {
	case err == nil:
		http.Redirect(w, r, orderURL(ref.Provider, ref.OrderNo)+"?done="+done, http.StatusSeeOther)
	case errors.As(err, &refused):
		a.showOrder(w, r, ref, http.StatusConflict, "", "Refused: "+refused.Reason)
	case errors.As(err, &usage):
		a.showOrder(w, r, ref, http.StatusBadRequest, "", err.Error())
	case errors.Is(err, ledger.ErrNotFound):
		a.refuse(w, r, http.StatusNotFound, "no order "+ref.String())
	default:
		a.log.Warn("order action", "error", err)
		a.refuse(w, r, http.StatusServiceUnavailable, "the ledger cannot be written: "+err.Error())
	}
}

func (a *ordersAdmin) resolveForm(w http.ResponseWriter, r *http.Request) {
	if !a.formAction(w, r) {
		return
	}
	ref := refOf(r)
	b := resolveBody{As: r.PostFormValue("as"), ProviderOrderID: r.PostFormValue("provider_order_id"),
		Note: r.PostFormValue("note"), By: r.PostFormValue("by")}
	res, err := a.resolve(r.Context(), ref, b)
	done := strings.TrimSpace(b.As)
	if err == nil && res.Unacknowledged != "" {
		done += unacknowledged
	}
	a.afterAction(w, r, ref, done, err)
}

func (a *ordersAdmin) redriveForm(w http.ResponseWriter, r *http.Request) {
	if !a.formAction(w, r) {
		return
	}
	ref := refOf(r)
	res, err := a.redriveOne(r.Context(), ref, r.PostFormValue("by"), r.PostFormValue("note"))
	if err == nil && res.Status == ops.StatusRefused {
		err = &ledger.RefusedError{Reason: res.Why}
	}
	done := "redriven"
	if err == nil && res.Unacknowledged != "" {
		done += unacknowledged
	}
	a.afterAction(w, r, ref, done, err)
}
