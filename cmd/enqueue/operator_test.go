package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// opsEnv is a Redis with orders enqueued by the CLI and moved to the
// states a test needs through the ledger, as a worker would have.
type opsEnv struct {
	t       *testing.T
	rs      *taskstest.Server
	dataKey string
	ledger  *ledger.Ledger
	insp    *asynq.Inspector
	env     map[string]string // more of the CLI's environment
}

func newOpsEnv(t *testing.T) *opsEnv {
	t.Helper()
	rs := taskstest.StartRedis(t, nil)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: rs.Addr})
	t.Cleanup(func() { insp.Close() })
	return &opsEnv{t: t, rs: rs, dataKey: base64.StdEncoding.EncodeToString(key), ledger: ledger.New(rs.Client(t), nil), insp: insp}
}

// cli runs enqueue with REDIS_URL and, when withKey, ORDERWORKER_DATA_KEY.
func (e *opsEnv) cli(withKey bool, args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	var out, errb bytes.Buffer
	env := func(k string) string {
		switch {
		case k == "REDIS_URL":
			return e.rs.URL()
		case k == "ORDERWORKER_DATA_KEY" && withKey:
			return e.dataKey
		}
		return e.env[k]
	}
	code = run(context.Background(), args, env, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// cliAs runs enqueue with REDIS_URL and the operating system's user name
// (USER) set to user.
func (e *opsEnv) cliAs(user string, args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	var out, errb bytes.Buffer
	env := func(k string) string {
		switch k {
		case "REDIS_URL":
			return e.rs.URL()
		case "USER":
			return user
		}
		return ""
	}
	code = run(context.Background(), args, env, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// enqueue enqueues orders (JSON lines) through the CLI, with the data key.
func (e *opsEnv) enqueue(orders ...string) {
	e.t.Helper()
	var out, errb bytes.Buffer
	env := func(k string) string {
		switch k {
		case "REDIS_URL":
			return e.rs.URL()
		case "ORDERWORKER_DATA_KEY":
			return e.dataKey
		}
		return ""
	}
	if code := run(context.Background(), nil, env, strings.NewReader(strings.Join(orders, "\n")), &out, &errb); code != exitOK {
		e.t.Fatalf("enqueue: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// settle moves an order as one step of a worker would.
func (e *opsEnv) settle(provider, orderNo string, tr ledger.Transition) {
	e.t.Helper()
	ref := ledger.Ref{Provider: provider, OrderNo: orderNo}
	tok := fmt.Sprintf("test-%s-%d", orderNo, time.Now().UnixNano())
	b, err := e.ledger.Begin(context.Background(), ref, ledger.BeginArgs{Token: tok})
	if err != nil || b.Status != ledger.Began {
		e.t.Fatalf("begin %s: %+v, %v", ref, b, err)
	}
	if err := e.ledger.Settle(context.Background(), ref, tok, tr); err != nil {
		e.t.Fatalf("settle %s: %v", ref, err)
	}
}

func (e *opsEnv) record(provider, orderNo string) *ledger.Record {
	e.t.Helper()
	rec, err := e.ledger.Get(context.Background(), ledger.Ref{Provider: provider, OrderNo: orderNo})
	if err != nil || rec == nil {
		e.t.Fatalf("get %s/%s: %+v, %v", provider, orderNo, rec, err)
	}
	return rec
}

// archive archives an order's task, as asynq does when its retries end.
func (e *opsEnv) archive(provider, orderNo string) {
	e.t.Helper()
	if err := e.insp.ArchiveTask(tasks.DefaultQueue, tasks.TaskID(provider, orderNo)); err != nil {
		e.t.Fatalf("archive %s/%s: %v", provider, orderNo, err)
	}
}

func (e *opsEnv) taskState(provider, orderNo string) string {
	e.t.Helper()
	info, err := e.insp.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID(provider, orderNo))
	if errors.Is(err, asynq.ErrTaskNotFound) {
		return "none"
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.String()
}

func tencentOrder(no string) string {
	return fmt.Sprintf(`{"provider":"tencent","order_no":%q,"params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`, no)
}

// The phone number an Aliyun order's userName holds, in clear and masked.
const (
	testPhone  = "15812348558"
	maskedTest = "158****8558"
)

func aliyunOrder(no string) string {
	return fmt.Sprintf(`{"provider":"aliyun","order_no":%q,"params":{"iotId":"dev-1","commodityCode":"streamingResource_20_10","copies":1,"userName":%q}}`, no, testPhone)
}

var clearPhone = regexp.MustCompile(`(?:^|\D)1[3-9]\d{9}(?:\D|$)`)

// paramsHash is a record's params hash as list prints it.
var paramsHash = regexp.MustCompile(`"params_hash":"[0-9a-f]*"`)

func TestListPagesNewestFirstMasked(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t)
	var want []string
	for i := range 5 {
		no := fmt.Sprintf("L%d", i)
		e.enqueue(tencentOrder(no))
		want = append([]string{"tencent/" + no}, want...)
		time.Sleep(3 * time.Millisecond) // distinct entry times
	}
	e.enqueue(aliyunOrder("LA1"))
	e.settle("aliyun", "LA1", ledger.SetUnknown("timeout after sending").WithMayExist(true))
	want = append([]string{"aliyun/LA1"}, want...)

	// Every order, two a page, newest first, by following the cursor.
	var got []string
	args := []string{"list", "-limit", "2"}
	for pages := 0; ; pages++ {
		code, out, errs := e.cli(true, args...)
		if code != exitOK {
			t.Fatalf("list: exit %d\n%s", code, errs)
		}
		for _, l := range lines(t, out) {
			got = append(got, fmt.Sprint(l["provider"], "/", l["order_no"]))
			if l["history"] != nil {
				t.Errorf("list shows the history: %v", l)
			}
		}
		// (A params hash is hex, keyed by the test's random data key:
		// a run of its digits may look like a phone number.)
		if clearPhone.MatchString(paramsHash.ReplaceAllString(out+errs, "")) {
			t.Errorf("list shows a phone number in clear:\n%s", out)
		}
		if errs == "" {
			break
		}
		var next struct {
			Next string `json:"next_cursor"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(errs)), &next); err != nil || next.Next == "" {
			t.Fatalf("stderr %q: want {\"next_cursor\":...}", errs)
		}
		args = []string{"list", "-limit", "2", "-cursor", next.Next}
		if pages > 5 {
			t.Fatal("the cursor does not advance")
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("listed %v, want %v", got, want)
	}

	// Filters; the data key opens the params, which show masked.
	code, out, _ := e.cli(true, "list", "-state", "unknown")
	l := lines(t, out)
	if code != exitOK || len(l) != 1 || l[0]["order_no"] != "LA1" {
		t.Fatalf("-state unknown: exit %d, %s", code, out)
	}
	if !strings.Contains(out, maskedTest) || strings.Contains(out, testPhone) || l[0]["may_exist"] != true {
		t.Errorf("-state unknown: want the userName masked as %s and may_exist:\n%s", maskedTest, out)
	}
	// Without the key the params stay sealed.
	if code, out, _ = e.cli(false, "list", "-provider", "aliyun"); code != exitOK || !strings.Contains(out, `sealed:v1:`) || strings.Contains(out, testPhone) {
		t.Errorf("-provider aliyun without the data key: exit %d, want the params sealed:\n%s", code, out)
	}
	if code, out, _ = e.cli(true, "list", "-provider", "tencent", "-state", "queued"); code != exitOK || len(lines(t, out)) != 5 {
		t.Errorf("-provider tencent -state queued: exit %d, want 5 orders:\n%s", code, out)
	}
	if code, out, _ = e.cli(true, "list", "-older-than", "1h"); code != exitOK || out != "" {
		t.Errorf("-older-than 1h: exit %d, want nothing:\n%s", code, out)
	}

	// Redis unreachable: exit 2 with the reason.
	var errb bytes.Buffer
	env := func(k string) string {
		if k == "REDIS_URL" {
			return "redis://127.0.0.1:1/0"
		}
		return ""
	}
	if code := run(context.Background(), []string{"-timeout", "2s", "list"}, env, strings.NewReader(""), io.Discard, &errb); code != exitError || errb.Len() == 0 {
		t.Errorf("list with Redis unreachable: exit %d, stderr %q; want 2 with the reason", code, errb.String())
	}

	for _, bad := range [][]string{
		{"list", "-state", "stuck"},
		{"list", "-provider", "nope"},
		{"list", "-cursor", "garbage!"},
		{"list", "-limit", "0"},
		{"list", "extra"},
	} {
		if code, out, errs := e.cli(true, bad...); code != exitError || out != "" || errs == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 with the reason", bad, code, out, errs)
		}
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t)
	e.enqueue(aliyunOrder("RU1"), aliyunOrder("RU2"), aliyunOrder("RP1"), tencentOrder("RQ1"), aliyunOrder("ROWN"), tencentOrder("RT1"))
	e.settle("aliyun", "RU1", ledger.SetUnknown("timeout after sending").WithMayExist(true))
	e.settle("tencent", "RT1", ledger.SetUnknown("timeout after sending").WithMayExist(true))
	e.settle("aliyun", "RU2", ledger.SetUnknown("timeout after sending").WithMayExist(true))
	e.settle("aliyun", "RP1", ledger.SetPending("PO-RP1", time.Now(), time.Now().Add(time.Minute)).WithMayExist(true))
	e.settle("aliyun", "ROWN", ledger.SetPaid("PO-OWNED").WithMayExist(true))

	// Usage errors: exit 2, nothing changed.
	for _, bad := range [][]string{
		{"resolve", "aliyun", "RU1", "-as", "paid", "-note", "n", "-by", "ann"}, // no provider order id
		{"resolve", "aliyun", "RU1", "-as", "gone", "-note", "n", "-by", "ann"},
		{"resolve", "aliyun", "RU1", "-as", "errored", "-by", "ann"},
		{"resolve", "aliyun", "RU1", "-as", "errored", "-note", "n"},
		{"resolve", "aliyun", "-as", "errored", "-note", "n", "-by", "ann"},
		{"resolve", "nope", "RU1", "-as", "errored", "-note", "n", "-by", "ann"},
		{"resolve", "aliyun", "RU1", "-as", "errored", "-provider-order-id", "X", "-note", "n", "-by", "ann"},
	} {
		if code, out, errs := e.cli(true, bad...); code != exitError || out != "" || errs == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 with the reason", bad, code, out, errs)
		}
	}
	if rec := e.record("aliyun", "RU1"); rec.State != ledger.StateUnknown {
		t.Fatalf("a usage error changed the order: %+v", rec)
	}

	// Refused, exit 1 with the reason: another order owns the id; absent
	// from pending; an order already paid; no such order.
	for _, c := range []struct {
		args   []string
		reason string
	}{
		{[]string{"resolve", "aliyun", "RU1", "-as", "paid", "-provider-order-id", "PO-OWNED", "-note", "n", "-by", "ann"}, "belongs to order"},
		{[]string{"resolve", "aliyun", "RP1", "-as", "absent", "-note", "n", "-by", "ann"}, "not a decision for an order in state pending"},
		{[]string{"resolve", "aliyun", "ROWN", "-as", "errored", "-note", "n", "-by", "ann"}, "paid already"},
		{[]string{"resolve", "tencent", "RQ1", "-as", "absent", "-note", "n", "-by", "ann"}, "state queued"},
		{[]string{"resolve", "tencent", "MISSING", "-as", "errored", "-note", "n", "-by", "ann"}, "no order tencent/MISSING"},
	} {
		code, out, errs := e.cli(true, c.args...)
		if code != exitRejected || out != "" || !strings.Contains(errs, c.reason) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 with %q", c.args, code, out, errs, c.reason)
		}
	}

	// paid: flags after the positional arguments or before them; the
	// note's phone number is stored masked.
	code, out, errs := e.cli(true, "resolve", "-as", "paid", "aliyun", "RU1", "-provider-order-id", "PO-RU1",
		"-note", "console shows it paid; called 13912345678", "-by", "ann")
	if code != exitOK {
		t.Fatalf("resolve paid: exit %d\n%s", code, errs)
	}
	var rec ledger.Record
	if err := json.Unmarshal([]byte(out), &rec); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("resolve paid: want one JSON line, got %v\n%s", err, out)
	}
	last := rec.History[len(rec.History)-1]
	if rec.State != ledger.StatePaid || rec.ProviderOrderID != "PO-RU1" || last.Call != "resolve" || last.Result != "paid" ||
		last.By != "ann" || !strings.Contains(last.Message, "console shows it paid; called 139****5678") {
		t.Errorf("resolve paid printed %+v, last entry %+v", rec, last)
	}
	if strings.Contains(out, testPhone) || strings.Contains(out, "13912345678") || !strings.Contains(out, maskedTest) {
		t.Errorf("resolve paid shows a phone number in clear, or not the masked userName:\n%s", out)
	}
	// Tencent knows an order by its number and gives it no id: paid
	// needs none.
	if code, _, errs := e.cli(true, "resolve", "tencent", "RT1", "-as", "paid", "-note", "console shows it", "-by", "ann"); code != exitOK {
		t.Errorf("resolve tencent paid without an id: exit %d\n%s", code, errs)
	} else if rec := e.record("tencent", "RT1"); rec.State != ledger.StatePaid || rec.ProviderOrderID != "" {
		t.Errorf("tencent RT1 after resolve paid: %+v", rec)
	}
	if stored := e.record("aliyun", "RU1"); strings.Contains(stored.History[len(stored.History)-1].Message, "13912345678") {
		t.Errorf("the note's phone number is stored in clear: %+v", stored.History)
	}
	evs, err := e.ledger.Events(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	paidEvents := 0
	for _, ev := range evs {
		if ev.Data.OrderNo == "RU1" && ev.Type == "order.paid" {
			paidEvents++
		}
	}
	if paidEvents != 1 {
		t.Errorf("resolve paid emitted %d order.paid events, want 1", paidEvents)
	}

	// absent: refused within the listing lag of the order's last create
	// (ORDERWORKER_LISTING_LAG, 2m by default), which the provider's
	// console may not show yet.
	code, _, errs = e.cli(true, "resolve", "aliyun", "RU2", "-as", "absent", "-note", "not in the console", "-by", "bob")
	if code != exitRejected || !strings.Contains(errs, "within the listing lag (2m0s)") {
		t.Fatalf("resolve absent a moment after its create: exit %d\n%s; want refused for the listing lag", code, errs)
	}
	for _, bad := range []string{"bad", "25h"} {
		e.env = map[string]string{"ORDERWORKER_LISTING_LAG": bad}
		if code, _, errs = e.cli(true, "resolve", "aliyun", "RU2", "-as", "absent", "-note", "n", "-by", "bob"); code != exitError || !strings.Contains(errs, "ORDERWORKER_LISTING_LAG") {
			t.Fatalf("resolve with the listing lag %q: exit %d\n%s; want a usage error naming it", bad, code, errs)
		}
	}
	// absent, the workers believing a not-found at once: back to
	// submission, its archived task queued again.
	e.env = map[string]string{"ORDERWORKER_LISTING_LAG": "0"}
	e.archive("aliyun", "RU2")
	code, out, errs = e.cli(true, "resolve", "aliyun", "RU2", "-as", "absent", "-note", "not in the console", "-by", "bob")
	if code != exitOK {
		t.Fatalf("resolve absent: exit %d\n%s", code, errs)
	}
	l := lines(t, out)[0]
	if l["state"] != "submitting" || l["requeued"] != true || l["may_exist"] != nil {
		t.Errorf("resolve absent printed %v; want submitting, requeued, may_exist false", l)
	}
	if s := e.taskState("aliyun", "RU2"); s != "pending" {
		t.Errorf("after absent the task is %s, want pending", s)
	}

	// errored, from pending: the note is the reason; who decided is in
	// the history only (the reason goes out in the order's event).
	code, out, _ = e.cli(true, "resolve", "aliyun", "RP1", "-as", "errored", "-note", "cancelled at the provider", "-by", "cy")
	if l := lines(t, out); code != exitOK || l[0]["state"] != "errored" || fmt.Sprint(l[0]["reason"]) != "operator: cancelled at the provider" {
		t.Errorf("resolve errored: exit %d, %s", code, out)
	}
	if last := e.record("aliyun", "RP1").History; len(last) == 0 || last[len(last)-1].By != "cy" {
		t.Errorf("resolve errored: history %+v, want the last entry by cy", last)
	}
}

func TestRedrive(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t)
	e.enqueue(tencentOrder("E1"), tencentOrder("E2"), tencentOrder("E3"), aliyunOrder("EA1"), tencentOrder("P1"))
	e.settle("tencent", "E1", ledger.SetErrored("provider rejected the order: invalid ItemId").WithMayExist(false))
	e.settle("tencent", "E2", ledger.SetErrored("provider rejected the order: invalid ItemId").WithMayExist(true))
	e.settle("tencent", "E3", ledger.SetErrored("deadline passed with nothing created").WithMayExist(false))
	e.settle("aliyun", "EA1", ledger.SetErrored("still unpaid after the pending window").WithMayExist(true))
	e.settle("tencent", "P1", ledger.SetPaid("PO-P1"))
	e.archive("tencent", "E1")

	status := func(out string) map[string]string {
		m := map[string]string{}
		for _, l := range lines(t, out) {
			m[fmt.Sprint(l["order_no"])] = fmt.Sprint(l["status"])
			if l["status"] == "skipped" && (l["may_exist"] != true || l["why"] == nil) {
				t.Errorf("skipped without may_exist and why: %v", l)
			}
		}
		return m
	}

	// The dry run lists, changes nothing and needs no name.
	code, out, errs := e.cli(true, "redrive", "-state", "errored", "-dry-run")
	want := map[string]string{"E1": "would_redrive", "E2": "skipped", "E3": "would_redrive", "EA1": "skipped"}
	if got := status(out); code != exitOK || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dry run: exit %d, %v, want %v\n%s", code, got, want, errs)
	}
	if !strings.Contains(errs, "dry run: 2 would be re-driven, 2 skipped") {
		t.Errorf("dry run summary: %q", errs)
	}
	for _, no := range []string{"E1", "E2", "E3"} {
		if rec := e.record("tencent", no); rec.State != ledger.StateErrored {
			t.Errorf("the dry run changed %s: %+v", no, rec)
		}
	}

	// Usage errors.
	for _, bad := range [][]string{
		{"redrive", "-dry-run"},
		{"redrive", "-state", "unknown", "-by", "ann"},
		{"redrive", "-state", "errored", "-provider", "nope", "-by", "ann"},
	} {
		if code, out, errs := e.cli(true, bad...); code != exitError || out != "" || errs == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 with the reason", bad, code, out, errs)
		}
	}

	// The re-drive of the orders that match: E1 only; E2 matches but may
	// exist.
	code, out, errs = e.cli(true, "redrive", "-state", "errored", "-provider", "tencent", "-reason-match", "INVALID itemid", "-by", "carol", "-note", "ItemId fixed upstream")
	want = map[string]string{"E1": "redriven", "E2": "skipped"}
	if got := status(out); code != exitOK || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("redrive: exit %d, %v, want %v\n%s", code, got, want, errs)
	}
	if l := lines(t, out); l[0]["order_no"] == "E1" && (l[0]["requeued"] != true || l[0]["state"] != "submitting") {
		t.Errorf("E1: %v, want requeued, submitting", l[0])
	}
	rec := e.record("tencent", "E1")
	last := rec.History[len(rec.History)-1]
	if rec.State != ledger.StateSubmitting || rec.Failures != 0 || last.Call != "redrive" || last.By != "carol" || last.Message != "ItemId fixed upstream" ||
		rec.Reason != "re-driven by an operator: ItemId fixed upstream" {
		t.Errorf("E1 after the re-drive: %+v, last entry %+v", rec, last)
	}
	if s := e.taskState("tencent", "E1"); s != "pending" {
		t.Errorf("E1's task is %s, want pending (its archived task replaced)", s)
	}
	for _, no := range []string{"E2", "E3"} {
		if rec := e.record("tencent", no); rec.State != ledger.StateErrored {
			t.Errorf("%s changed: %+v", no, rec)
		}
	}
	if rec := e.record("aliyun", "EA1"); rec.State != ledger.StateErrored {
		t.Errorf("EA1 changed: %+v", rec)
	}

	// Without -by, the re-drive is recorded under the operating system's
	// user name, unless that is a service account.
	if code, out, errs := e.cliAs("nonroot", "redrive", "-state", "errored", "-provider", "tencent", "-dry-run"); code != exitOK || status(out)["E3"] != "would_redrive" || strings.Contains(errs, "no -by given") {
		t.Errorf("dry run as a service account without -by: exit %d, %q, %q; want it listed, no warning", code, out, errs)
	}
	code, out, errs = e.cliAs("dana", "redrive", "-state", "errored", "-provider", "tencent")
	if got := status(out); code != exitOK || got["E3"] != "redriven" {
		t.Fatalf("redrive without -by: exit %d, %v\n%s", code, got, errs)
	}
	rec = e.record("tencent", "E3")
	if last := rec.History[len(rec.History)-1]; last.Call != "redrive" || last.By != "dana" {
		t.Errorf("E3 re-driven without -by: last entry %+v, want it by dana", last)
	}
}

// Run as a service account (root in a container) without -by, a re-drive
// goes ahead as the documented command line has it, recorded as by that
// account, with a warning to name who re-drives.
func TestRedriveAsAServiceAccount(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t)
	e.enqueue(tencentOrder("R1"))
	e.settle("tencent", "R1", ledger.SetErrored("provider rejected the order: invalid ItemId").WithMayExist(false))
	code, out, errs := e.cliAs("root", "redrive", "-state", "errored")
	if code != exitOK || !strings.Contains(out, `"redriven"`) {
		t.Fatalf("redrive as root without -by: exit %d, %s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "no -by given") {
		t.Errorf("no warning to name who re-drives: %q", errs)
	}
	rec := e.record("tencent", "R1")
	if last := rec.History[len(rec.History)-1]; last.Call != "redrive" || last.By != "root (a service account; no -by)" {
		t.Errorf("last entry %+v, want the re-drive by root, named as a service account", last)
	}
}

// resolve -as absent reads UNICLOUD_CREATE_OVERRUN as the workers do: a
// UniCloud order's last create is given that long on top of the listing
// lag (none here) before absent is taken; a bad value is refused, naming
// it; 0s takes absent at once.
func TestResolveAbsentReadsTheCreateOverrun(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t)
	e.enqueue(`{"provider":"unicloud","order_no":"RUC1","params":{"azoneId":"cn-tianjin-yfb1","componentCode":"nas.onestor","dataEncryption":0,"instanceName":"overrun-nas","orderCategory":"NEW","payType":"DAY_MONTH_USAGE","projectId":"rg-k0n2gf8ew1pd","regionId":"cn-tianjin-yfb","renewType":"manualrenew","rentCount":1,"rentUnit":"month","specificationCode":"nas.capacity.nfs","unit":"GB","vpc":"vpc-g2gmswxtthml"}}`)
	e.settle("unicloud", "RUC1", ledger.SetUnknown("timeout after sending").WithMayExist(true))
	args := []string{"resolve", "unicloud", "RUC1", "-as", "absent", "-note", "not in the console", "-by", "bob"}
	e.env = map[string]string{"ORDERWORKER_LISTING_LAG": "0"}
	if code, _, errs := e.cli(true, args...); code != exitRejected || !strings.Contains(errs, "within the listing lag (1m0s)") {
		t.Fatalf("resolve absent a moment after its create, lag 0: exit %d\n%s; want refused for UniCloud's 1m0s overrun", code, errs)
	}
	e.env = map[string]string{"ORDERWORKER_LISTING_LAG": "0", "UNICLOUD_CREATE_OVERRUN": "60"}
	if code, _, errs := e.cli(true, args...); code != exitError || !strings.Contains(errs, "UNICLOUD_CREATE_OVERRUN") {
		t.Fatalf("resolve with a bad overrun: exit %d\n%s; want a usage error naming it", code, errs)
	}
	e.env = map[string]string{"ORDERWORKER_LISTING_LAG": "0", "UNICLOUD_CREATE_OVERRUN": "0s"}
	if code, _, errs := e.cli(true, args...); code != exitOK {
		t.Fatalf("resolve absent with no overrun: exit %d\n%s", code, errs)
	}
}

// Every command that writes says so when it writes to the default Redis
// because REDIS_URL is not set (a script that forgot its environment), and
// only then. Not parallel: it points the default at its own server.
func TestWritesToTheDefaultRedisAreNamed(t *testing.T) {
	rs := taskstest.StartRedis(t, nil)
	saved := defaultRedisURL
	defaultRedisURL = rs.URL()
	t.Cleanup(func() { defaultRedisURL = saved })
	cases := []struct {
		what  string
		stdin string
		args  []string
		note  string
	}{
		{"enqueue", good, nil, "enqueue: sending orders to " + rs.URL() + " (the default: REDIS_URL is not set)"},
		{"resolve", "", []string{"resolve", "tencent", "MISSING", "-as", "errored", "-note", "n", "-by", "ann"}, "enqueue: resolve: using " + rs.URL() + " (the default: REDIS_URL is not set)"},
		{"redrive", "", []string{"redrive", "-state", "errored", "-dry-run"}, "enqueue: redrive: using " + rs.URL() + " (the default: REDIS_URL is not set)"},
	}
	for _, c := range cases {
		_, _, errs := runCLI(t, "", c.stdin, c.args...)
		if !strings.Contains(errs, c.note) {
			t.Errorf("%s without REDIS_URL: stderr %q lacks %q", c.what, errs, c.note)
		}
		_, _, errs = runCLI(t, rs.URL(), c.stdin, c.args...)
		if strings.Contains(errs, "the default") {
			t.Errorf("%s with REDIS_URL set: stderr %q speaks of the default", c.what, errs)
		}
		_, _, errs = runCLI(t, "", c.stdin, append([]string{"-redis-url", rs.URL()}, c.args...)...)
		if strings.Contains(errs, "the default") {
			t.Errorf("%s with -redis-url: stderr %q speaks of the default", c.what, errs)
		}
	}
	if n, err := rs.Client(t).Exists(context.Background(), "orderworker:{ledger}:order:tencent:E1").Result(); err != nil || n != 1 {
		t.Errorf("the order sent to the default Redis is not in it: exists %d, %v", n, err)
	}
}
