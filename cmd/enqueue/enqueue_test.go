package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/internal/devmode"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

func runCLI(t *testing.T, url string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := func(k string) string {
		if k == "REDIS_URL" {
			return url
		}
		return ""
	}
	code = run(context.Background(), args, env, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func lines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

const good = `{"provider":"tencent","order_no":"E1","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`

func TestEnqueueFromStdinOnePerLine(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	in := good + "\n\n" + good + "\n" +
		`{"provider":"tencent","order_no":"E1","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":2}}` + "\n" +
		`{"provider":"nope","order_no":"E2","params":{}}` + "\n" + `not json` + "\n"
	code, out, errs := runCLI(t, rs.URL(), in)
	if code != exitRejected {
		t.Fatalf("exit = %d, want %d (stderr %s)", code, exitRejected, errs)
	}
	got := lines(t, out)
	want := []string{tasks.Enqueued, tasks.Duplicate, tasks.Conflict, tasks.Invalid, tasks.Invalid}
	if len(got) != len(want) {
		t.Fatalf("got %d result lines, want %d:\n%s", len(got), len(want), out)
	}
	for i, w := range want {
		if got[i]["status"] != w {
			t.Errorf("line %d: status %v, want %s (%v)", i+1, got[i]["status"], w, got[i])
		}
	}
	if got[3]["reason"] == nil || !strings.Contains(got[3]["reason"].(string), "unknown provider") {
		t.Errorf("invalid line lacks its reason: %v", got[3])
	}
	if got[4]["source"] != "stdin:6" {
		t.Errorf("source = %v, want stdin:6", got[4]["source"])
	}
}

func TestEnqueueFileWithOnePrettyObjectAndStatus(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	dir := t.TempDir()
	f := filepath.Join(dir, "order.json")
	pretty := "{\n  \"provider\": \"tencent\",\n  \"order_no\": \"E3\",\n  \"params\": {\"CustomerId\": \"C1\", \"ItemId\": \"D-FireInsurance2020\", \"ItemNum\": 1}\n}\n"
	if err := os.WriteFile(f, []byte(pretty), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, rs.URL(), "", f)
	if code != exitOK || lines(t, out)[0]["status"] != tasks.Enqueued {
		t.Fatalf("exit %d, out %s, err %s", code, out, errs)
	}
	code, out, _ = runCLI(t, rs.URL(), "", "status", "tencent", "E3")
	if code != exitOK {
		t.Fatalf("status exit %d", code)
	}
	var rec tasks.Record
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("status output: %v\n%s", err, out)
	}
	if rec.State != tasks.StateQueued || rec.OrderNo != "E3" {
		t.Errorf("status = %+v", rec)
	}
	if code, _, _ := runCLI(t, rs.URL(), "", "status", "tencent", "missing"); code != exitRejected {
		t.Errorf("status of a missing order exit = %d, want %d", code, exitRejected)
	}
	// An unknown provider is a usage error, as in resolve: no such
	// order could exist.
	if code, _, stderr := runCLI(t, rs.URL(), "", "status", "tencnet", "E3"); code != exitError || !strings.Contains(stderr, `provider "tencnet": want one of aliyun, tencent, unicloud`) {
		t.Errorf("status of an unknown provider = %d, %q; want %d naming the providers", code, stderr, exitError)
	}
}

func TestEnqueueByFlags(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	code, out, _ := runCLI(t, rs.URL(), "", "-provider", "tencent", "-order-no", "E4", "-params", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`)
	if code != exitOK || lines(t, out)[0]["status"] != tasks.Enqueued {
		t.Fatalf("exit %d, out %s", code, out)
	}
	code, out, _ = runCLI(t, rs.URL(), "", "-provider", "tencent", "-order-no", "E5", "-params", `{oops`)
	if code != exitRejected || !strings.Contains(out, "params: not valid JSON: syntax error at byte 2") {
		t.Fatalf("bad -params: exit %d, out %s", code, out)
	}
	// Cut short: said so, not only that it is not JSON.
	code, out, _ = runCLI(t, rs.URL(), "", "-provider", "tencent", "-order-no", "E5", "-params", `{"CustomerId":"C1"`)
	if code != exitRejected || !strings.Contains(out, "params: not valid JSON: unexpected end of input after byte 18") {
		t.Fatalf("bad -params: exit %d, out %s", code, out)
	}
	// Every line of an order from flags says so, as the others do.
	if got := lines(t, out)[0]["source"]; got != "flags" {
		t.Errorf("bad -params: source %v, want flags", got)
	}
}

// Redis unreachable: exit 2 with a clear error saying nothing was sent,
// an order given by flags answered error with the reason.
func TestEnqueueRedisUnreachable(t *testing.T) {
	t.Parallel()
	// The timeout is long enough for go-redis's dial attempts to fail on
	// a busy machine: the error is then the refused connection, not the
	// deadline.
	code, out, errs := runCLI(t, "redis://127.0.0.1:1/0", good, "-timeout", "15s")
	if code != exitError || out != "" || !strings.Contains(errs, "127.0.0.1:1: connect: connection refused") || !strings.Contains(errs, "nothing was read or sent") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 with Redis's error, no order read", code, out, errs)
	}
	code, out, errs = runCLI(t, "redis://127.0.0.1:1/0", "", "-timeout", "15s", "-provider", "tencent", "-order-no", "E1", "-params", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`)
	checkErrorLines(t, out, "flags")
	if code != exitError || !strings.Contains(errs, "127.0.0.1:1: connect: connection refused") || !strings.Contains(errs, "with the same order numbers") {
		t.Fatalf("one order by flags: exit %d, stdout %q, stderr %q; want exit 2 with Redis's error", code, out, errs)
	}
}

// A Redis that accepts connections and never answers holds no command
// longer than -timeout: go-redis's own waits (5 s for a new connection's
// handshake, 3 s a read) are capped by it, so each command that reaches
// Redis gives up within about -timeout (before, a single order took 10 s
// with -timeout 1s, and status 5 s).
func TestTimeoutBoundsASilentRedis(t *testing.T) {
	t.Parallel()
	url := silentRedis(t)
	for _, args := range [][]string{
		{"-provider", "tencent", "-order-no", "E1", "-params", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`},
		{"status", "tencent", "E1"},
		{"list"},
	} {
		start := time.Now()
		code, out, errs := runCLI(t, url, "", append([]string{"-timeout", "300ms"}, args...)...)
		took := time.Since(start)
		// Each command makes a few waits of at most -timeout (the dev
		// marker, the shard count, the claim); 5 s is far under the 10 s
		// one wait took before and far over what a busy machine adds.
		if code != exitError || took > 5*time.Second || !strings.Contains(out+errs, "deadline exceeded") && !strings.Contains(out+errs, "i/o timeout") {
			t.Errorf("enqueue -timeout 300ms %v: exit %d after %v, stdout %q, stderr %q; want exit 2 with a timeout, within 5s", args, code, took, out, errs)
		}
	}
}

// silentRedis is the URL of a listener that accepts every connection and
// never answers, as a Redis host cut off by a firewall that lets the
// handshake through.
func silentRedis(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn // accepted, never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return "redis://" + ln.Addr().String() + "/0"
}

// A short -timeout leaves a durable write's answer intact: the ledger's
// WAIT waits at most half of it, so its reply arrives within the client's
// read timeout (capped at -timeout). With the replica hung, the order is
// taken back and answered as not accepted or maybe accepted, never cut
// off with a bare deadline while its record and task stand unacknowledged.
func TestShortTimeoutKeepsDurableAnswers(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rep := rs.AttachReplica(t)
	rep.Pause(t)
	env := map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_DURABLE_WRITES": "auto"}
	code, out, errs := runCLIEnv(t, env, "", "-timeout", "1s", "-provider", "tencent", "-order-no", "E1", "-params", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`)
	checkErrorLines(t, out, "flags")
	if code != exitError || strings.Contains(out+errs, "deadline exceeded") || !strings.Contains(out, "replicas") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 saying the replicas did not acknowledge it", code, out, errs)
	}
	if rec, err := tasks.NewLedger(rs.Client(t)).Get(context.Background(), tasks.OrderRef{Provider: "tencent", OrderNo: "E1"}); err != nil || rec != nil {
		t.Errorf("the order's record after the answer: %+v, %v; want it taken back", rec, err)
	}
}

// checkErrorLines checks that out is one error line for each source, for
// the order good (tencent E1), with the reason.
func checkErrorLines(t *testing.T, out string, sources ...string) {
	t.Helper()
	got := lines(t, out)
	if len(got) != len(sources) {
		t.Fatalf("stdout %q: want %d lines", out, len(sources))
	}
	for i, l := range got {
		if l["status"] != "error" || l["provider"] != "tencent" || l["order_no"] != "E1" || l["source"] != sources[i] || l["reason"] == "" {
			t.Errorf("line %d = %v, want status error for tencent E1 from %s, with the reason", i+1, l, sources[i])
		}
	}
}

// With ORDERWORKER_MIN_REPLICAS above what the master has, enqueue fails
// naming the setting and writes nothing; a bad value is refused at start.
func TestEnqueueNeedsTheMinReplicas(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	env := map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_MIN_REPLICAS": "1"}
	code, out, errs := runCLIEnv(t, env, good)
	checkErrorLines(t, out, "stdin:1")
	if code != exitError || !strings.Contains(errs, "ORDERWORKER_MIN_REPLICAS") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit %d naming ORDERWORKER_MIN_REPLICAS", code, out, errs, exitError)
	}
	if n, _ := rs.Client(t).Exists(context.Background(), "orderworker:{ledger}:order:tencent:E1", "asynq:{orders}:t:tencent:E1").Result(); n != 0 {
		t.Errorf("%d keys written for a refused order", n)
	}
	env["ORDERWORKER_MIN_REPLICAS"] = "some"
	if code, _, errs := runCLIEnv(t, env, good); code == exitOK || !strings.Contains(errs, "ORDERWORKER_MIN_REPLICAS") {
		t.Errorf("ORDERWORKER_MIN_REPLICAS=some: exit %d, stderr %q", code, errs)
	}
}

// A producer that writes one order at a time to enqueue's standard input
// and waits for its answer gets it before it writes the next: orders are
// batched only from what the input already holds.
func TestEnqueueAnswersEachOrderBeforeMoreInput(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	env := func(k string) string {
		if k == "REDIS_URL" {
			return rs.URL()
		}
		return ""
	}
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), nil, env, inR, outW, io.Discard)
		outW.Close()
	}()
	answers := bufio.NewScanner(outR)
	for i := range 3 {
		order := strings.Replace(good, `"E1"`, fmt.Sprintf(`"Pipe%d"`, i), 1)
		if _, err := io.WriteString(inW, order+"\n"); err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		go func() {
			if answers.Scan() {
				got <- answers.Text()
			}
			close(got)
		}()
		select {
		case line := <-got:
			if !strings.Contains(line, `"status":"enqueued"`) || !strings.Contains(line, fmt.Sprintf("Pipe%d", i)) {
				t.Fatalf("answer %d = %s", i, line)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer to order %d while the input stays open", i)
		}
	}
	inW.Close()
	if code := <-done; code != exitOK {
		t.Errorf("exit = %d, want 0", code)
	}
}

// An infrastructure error for some orders of a batch: every order of the
// batch gets its line, in order (those that met the error answered error,
// with provider, order_no, source and reason; the others enqueued), no
// later order is read or sent, and enqueue exits 2 saying what was not
// sent and that an order answered error is safe to send again. Here the
// Redis user may not write one of the two ledger shards.
func TestEnqueueBatchErrorPrintsTheWholeBatch(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	ctx := context.Background()
	const pw = "batch-error-pw"
	shard0 := "orderworker:{" + ledger.ShardTag("ledger", 0, 2) + "}:*"
	if err := rs.Client(t).Do(ctx, "ACL", "SETUSER", "producer", "on", ">"+pw,
		"~asynq:*", "~orderworker:{ledger}:*", "~"+shard0, "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	u := strings.Replace(rs.URL(), "redis://", "redis://producer:"+pw+"@", 1)
	env := map[string]string{"REDIS_URL": u, "ORDERWORKER_LEDGER_SHARDS": "2"}

	shards := ledger.New(rs.Client(t), &ledger.Options{Shards: 2})
	order := func(no string) string {
		return fmt.Sprintf(`{"provider":"tencent","order_no":%q,"params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`, no)
	}
	// A full batch, then orders that must not be sent, then a file that
	// must not be read.
	var in strings.Builder
	var nos []string
	for i := range maxBatch + 20 {
		no := fmt.Sprintf("Batch%d", i)
		nos = append(nos, no)
		in.WriteString(order(no) + "\n")
	}
	later := filepath.Join(t.TempDir(), "later.jsonl")
	if err := os.WriteFile(later, []byte(order("Later1")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLIEnv(t, env, in.String(), "-", later)
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	got := lines(t, out)
	if len(got) != maxBatch {
		t.Fatalf("%d lines, want one for each of the %d orders of the first batch:\n%s", len(got), maxBatch, out)
	}
	var errored, enqueued int
	for i, l := range got {
		no := nos[i]
		shard := shards.ShardOf(ledger.Ref{Provider: "tencent", OrderNo: no})
		want := tasks.Enqueued
		if shard == 1 {
			want = "error"
		}
		if l["status"] != want || l["provider"] != "tencent" || l["order_no"] != no || l["source"] != fmt.Sprintf("stdin:%d", i+1) {
			t.Errorf("line %d = %v, want %s for %s from stdin:%d", i+1, l, want, no, i+1)
		}
		if want == "error" {
			errored++
			if r, _ := l["reason"].(string); !strings.Contains(r, "NOPERM") {
				t.Errorf("line %d: reason %q, want Redis's", i+1, r)
			}
		} else {
			enqueued++
		}
	}
	if errored == 0 || enqueued == 0 {
		t.Fatalf("%d orders errored, %d enqueued: want some of each", errored, enqueued)
	}
	for _, w := range []string{fmt.Sprintf("%d orders answered error", errored), "NOPERM", "nothing more was read or sent",
		"without an output line were not sent", "may or may not have been accepted", "same order_no"} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr %q does not say %q", errs, w)
		}
	}
	// The batch's enqueued orders are in the ledger; the orders after the
	// batch, and the next file's, were not sent.
	for i, no := range append(nos, "Later1") {
		rec, err := shards.Get(ctx, ledger.Ref{Provider: "tencent", OrderNo: no})
		if i < maxBatch && got[i]["status"] == tasks.Enqueued {
			if err != nil || rec == nil {
				t.Errorf("order %s answered enqueued: %+v, %v; want it in the ledger", no, rec, err)
			}
		} else if i >= maxBatch && (err != nil || rec != nil) {
			t.Errorf("order %s after the failed batch: %+v, %v; want it never sent", no, rec, err)
		}
	}
	if n, err := rs.Client(t).Keys(ctx, "*Later1*").Result(); err != nil || len(n) != 0 {
		t.Errorf("keys for the next file's order: %v, %v", n, err)
	}
}

// enqueue status refuses a malformed ORDERWORKER_DATA_KEY, exit 2 naming
// it, as every other command does, rather than show the params sealed as
// if no key were set.
func TestStatusRefusesAMalformedDataKey(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	env := map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_DATA_KEY": "ZGF0YS1rZXktZm9yLXN0YXR1cy10ZXN0LCAzMiBieXQ="}
	if code, out, errs := runCLIEnv(t, env, good); code != exitOK {
		t.Fatalf("enqueue: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLIEnv(t, env, "", "status", "tencent", "E1"); code != exitOK || !strings.Contains(out, `"CustomerId"`) {
		t.Fatalf("status with the key: exit %d, %s%s; want the params opened", code, out, errs)
	}
	for _, bad := range []string{"not-base64!", "c2hvcnQ="} {
		env["ORDERWORKER_DATA_KEY"] = bad
		code, out, errs := runCLIEnv(t, env, "", "status", "tencent", "E1")
		if code != exitError || out != "" || !strings.Contains(errs, "ORDERWORKER_DATA_KEY") {
			t.Errorf("status with ORDERWORKER_DATA_KEY=%s: exit %d, stdout %q, stderr %q; want exit %d naming ORDERWORKER_DATA_KEY", bad, code, out, errs, exitError)
		}
		if strings.Contains(errs, bad) {
			t.Errorf("stderr %q shows the key", errs)
		}
	}
}

// An order number given to status, resolve or redrive that holds a phone
// number is masked where the command names it (a review: "no order
// tencent/13800138000" went to stderr in clear; the API masked it).
func TestOperatorCommandsMaskAPhoneInTheOrderNumber(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	for _, args := range [][]string{
		{"status", "tencent", "13800138000"},
		{"resolve", "tencent", "Order13800138000", "-as", "errored", "-note", "n", "-by", "ops"},
	} {
		code, out, errs := runCLI(t, rs.URL(), "", args...)
		if code != exitRejected || out != "" || !strings.Contains(errs, "no order") || strings.Contains(errs, "13800138000") || !strings.Contains(errs, "138****8000") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, no order, the number masked", args, code, out, errs, exitRejected)
		}
	}
}

// enqueue -dev writes only to a Redis that holds worker -dev's marker:
// given a real one (no marker), whether by -redis-url or REDIS_URL, it
// refuses and writes nothing; given -dev's, it enqueues, sealing params
// with -dev's data key.
func TestEnqueueDevWritesOnlyToADevRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	realRedis := taskstest.StartRedis(t, nil)
	code, out, errs := runCLI(t, realRedis.URL(), good+"\n", "-dev", "-redis-url", realRedis.URL())
	if code != exitError || out != "" || !strings.Contains(errs, "not worker -dev's Redis") {
		t.Errorf("enqueue -dev into a Redis without the marker: exit %d, out %q, err %q; want exit %d, nothing out, the refusal", code, out, errs, exitError)
	}
	if n := realRedis.Client(t).DBSize(ctx).Val(); n != 0 {
		t.Errorf("the refused Redis holds %d keys, want none", n)
	}

	devRedis := taskstest.StartRedis(t, nil)
	if err := devRedis.Client(t).Set(ctx, devmode.MarkerKey, devmode.MarkerValue, 0).Err(); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCLI(t, realRedis.URL(), good+"\n", "-dev", "-redis-url", devRedis.URL())
	if code != exitOK || !strings.Contains(out, `"status":"enqueued"`) {
		t.Fatalf("enqueue -dev into -dev's Redis: exit %d, out %q, err %q; want it enqueued", code, out, errs)
	}
	rec, err := tasks.NewLedger(devRedis.Client(t)).Get(ctx, ledger.Ref{Provider: "tencent", OrderNo: "E1"})
	// (Sealed: not the clear params; a substring test would fail when
	// the ciphertext's base64 happens to spell "C1".)
	if err != nil || rec == nil || !tasks.IsSealed(rec.Params) || strings.Contains(string(rec.Params), `"CustomerId"`) {
		t.Errorf("the order in -dev's Redis: %+v, %v; want its params sealed with -dev's data key", rec, err)
	}
	if n := realRedis.Client(t).DBSize(ctx).Val(); n != 0 {
		t.Errorf("REDIS_URL's Redis holds %d keys after enqueue -dev, want none", n)
	}
}

// A producer without -dev refuses worker -dev's Redis (its orders would be
// paid by sandboxes and created nowhere), and enqueue -dev does not serve
// an API: worker -dev serves its own, never on the real one's address.
func TestEnqueueWithoutDevRefusesADevRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	devRedis := taskstest.StartRedis(t, nil)
	c := devRedis.Client(t)
	if err := c.Set(ctx, devmode.MarkerKey, devmode.MarkerValue, 0).Err(); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, devRedis.URL(), good+"\n")
	if code != exitError || out != "" || !strings.Contains(errs, "worker -dev's") {
		t.Errorf("enqueue into -dev's Redis: exit %d, out %q, err %q; want exit %d, the refusal", code, out, errs, exitError)
	}
	if n := c.DBSize(ctx).Val(); n != 1 {
		t.Errorf("-dev's Redis holds %d keys after the refusal, want the marker alone", n)
	}
	code, _, errs = runCLI(t, devRedis.URL(), "", "-dev", "-redis-url", devRedis.URL(), "serve", "-open")
	if code != exitError || !strings.Contains(errs, "worker -dev serves the API itself") {
		t.Errorf("enqueue -dev serve: exit %d, err %q; want it refused", code, errs)
	}
	// Refused as such even where no -dev Redis answers: the marker is not
	// what refuses it.
	code, _, errs = runCLI(t, "redis://127.0.0.1:1/0", "", "-dev", "-redis-url", "redis://127.0.0.1:1/0", "serve", "-h")
	if code != exitError || !strings.Contains(errs, "worker -dev serves the API itself") {
		t.Errorf("enqueue -dev serve -h without -dev's Redis: exit %d, err %q; want it refused as such", code, errs)
	}
}

// Flags at zero or below are usage errors naming the flag, before anything
// is read or sent.
func TestEnqueueRefusesNonPositiveFlags(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	for _, args := range [][]string{
		{"-timeout", "0"}, {"-timeout", "-1s"}, {"-queue", " "}, {"-queue", "orders\t"},
		{"serve", "-open", "-max-wait", "-1s"}, {"serve", "-open", "-max-batch-bytes", "-5"}, {"serve", "-open", "-max-batch-orders", "0"},
	} {
		code, out, errs := runCLI(t, rs.URL(), good+"\n", args...)
		flagName := args[len(args)-2]
		if code != exitError || out != "" || !strings.Contains(errs, flagName) {
			t.Errorf("enqueue %v: exit %d, out %q, err %q; want exit %d naming %s", args, code, out, errs, exitError, flagName)
		}
	}
	if n := rs.Client(t).DBSize(context.Background()).Val(); n != 0 {
		t.Errorf("Redis holds %d keys after refused flags, want none", n)
	}
}

// enqueue names a variable of orderworker's that no command reads, with
// the setting it is likely meant for, and goes on. Not parallel: it sets
// the process's environment.
func TestEnqueueWarnsOfAVariableItDoesNotRead(t *testing.T) {
	t.Setenv("ORDERWORKER_DATA_KY", "key-not-printed-77c2")
	rs := taskstest.StartRedis(t, nil)
	code, stdout, stderr := runCLI(t, rs.URL(), "", "-provider", "tencent", "-order-no", "WARN-1", "-params", `{"CustomerId":"C1","ItemId":"I1","ItemVNO":"V1","ItemNum":1}`)
	if code != 0 || !strings.Contains(stdout, `"enqueued"`) {
		t.Fatalf("enqueue = %d\n%s\n%s", code, stdout, stderr)
	}
	want := "enqueue: warning: ORDERWORKER_DATA_KY is set, but no orderworker command reads it: did you mean ORDERWORKER_DATA_KEY?\n"
	if !strings.Contains(stderr, want) { // (a developer's own variables may add lines)
		t.Errorf("stderr = %q, want it to hold %q", stderr, want)
	}
}

// A producer with another data key than the one the ledger's params are
// sealed with is refused before it reads any order (exit 2, naming
// ORDERWORKER_DATA_KEY), and enqueue serve refuses to start. A producer
// without a key is not refused (its params stay in clear).
func TestEnqueueRefusesAKeyThatIsNotTheLedgers(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	keyed := map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_DATA_KEY": "ZGF0YS1rZXktZm9yLXN0YXR1cy10ZXN0LCAzMiBieXQ="}
	if code, out, errs := runCLIEnv(t, keyed, good); code != exitOK {
		t.Fatalf("keyed enqueue: exit %d\n%s%s", code, out, errs)
	}
	other := map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_DATA_KEY": "b3RoZXIta2V5LWZvci10aGUtbWlzbWF0Y2gtdGVzdCE="}
	code, out, errs := runCLIEnv(t, other, strings.ReplaceAll(good, "E1", "E9"))
	if code != exitError || out != "" || !strings.Contains(errs, "ORDERWORKER_DATA_KEY: this ledger's order params are sealed with data key id") {
		t.Errorf("another key: exit %d, stdout %q, stderr %q; want exit %d naming the key, nothing printed", code, out, errs, exitError)
	}
	if rec, err := tasks.NewLedger(rs.Client(t)).Get(context.Background(), tasks.OrderRef{Provider: "tencent", OrderNo: "E9"}); err != nil || rec != nil {
		t.Errorf("a refused order was recorded: %+v, %v", rec, err)
	}
	// serve, bounded: were it to start, the context ends it.
	other["ORDERWORKER_API_TOKENS"] = "t"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var serveErr bytes.Buffer
	code = run(ctx, []string{"serve", "-addr", "127.0.0.1:0"}, func(k string) string { return other[k] }, strings.NewReader(""), io.Discard, &serveErr)
	if code != exitError || !strings.Contains(serveErr.String(), "sealed with data key id") || ctx.Err() != nil {
		t.Errorf("another key: serve exit %d, stderr %q; want %d at once, naming the key", code, serveErr.String(), exitError)
	}
	// Without a key: accepted, in clear.
	if code, out, errs := runCLIEnv(t, map[string]string{"REDIS_URL": rs.URL()}, strings.ReplaceAll(good, "E1", "E10")); code != exitOK || !strings.Contains(out, `"enqueued"`) {
		t.Errorf("no key: exit %d, %s%s; want it enqueued", code, out, errs)
	}
}

// A producer with a data key on a ledger whose workers run without one is
// refused before it reads an order (exit 2, naming ORDERWORKER_DATA_KEY and
// the workers): it would seal params they cannot open, and the next of
// them to start would refuse to.
func TestEnqueueRefusesAKeyTheWorkersLack(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	if err := tasks.NewLedger(rs.Client(t)).CheckDataKey(context.Background(), ""); err != nil { // a worker without a key
		t.Fatal(err)
	}
	keyed := map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_DATA_KEY": "ZGF0YS1rZXktZm9yLXN0YXR1cy10ZXN0LCAzMiBieXQ="}
	code, out, errs := runCLIEnv(t, keyed, good)
	if code != exitError || out != "" || !strings.Contains(errs, "ORDERWORKER_DATA_KEY: this ledger's workers run without a data key") {
		t.Errorf("a key the workers lack: exit %d, stdout %q, stderr %q; want exit %d naming it, nothing printed", code, out, errs, exitError)
	}
	if rec, err := tasks.NewLedger(rs.Client(t)).Get(context.Background(), tasks.OrderRef{Provider: "tencent", OrderNo: "E1"}); err != nil || rec != nil {
		t.Errorf("a refused order was recorded: %+v, %v", rec, err)
	}
}

// enqueue -dev waits for the marker's final value: while worker -dev still
// checks a Redis it claims for other writers, an order written there would
// be one of them.
func TestEnqueueDevWaitsForTheClaim(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	if err := rs.Client(t).Set(context.Background(), devmode.MarkerKey, devmode.PendingPrefix+"test", 0).Err(); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "", "", "-dev", "-redis-url", rs.URL(), "-provider", "tencent", "-order-no", "E1", "-params", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`)
	if code != exitError || out != "" || !strings.Contains(errs, "still claiming it") {
		t.Errorf("enqueue -dev during the claim: exit %d, stdout %q, stderr %q; want exit 2, nothing sent", code, out, errs)
	}
}

// A long run (orders from stdin) stops writing once worker -dev empties
// and marks its Redis: the order read after that is refused, never
// written where the sandboxes would pay it without creating it.
func TestEnqueueStopsWhenItsRedisGetsTheDevMarker(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	pr, pw := io.Pipe()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		env := func(k string) string { return map[string]string{"REDIS_URL": rs.URL()}[k] }
		done <- run(context.Background(), nil, env, pr, &out, &errb)
	}()
	if _, err := io.WriteString(pw, good+"\n"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if rec, _ := tasks.NewLedger(rdb).Get(ctx, tasks.OrderRef{Provider: "tencent", OrderNo: "E1"}); rec != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first order was not recorded; stderr %q", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := rdb.Set(ctx, devmode.MarkerKey, "marked by worker -dev", 0).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(devmode.WatchInterval + 100*time.Millisecond)
	_, _ = io.WriteString(pw, strings.ReplaceAll(good, "E1", "E2")+"\n")
	pw.Close()
	var code int
	select {
	case code = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("enqueue did not end")
	}
	if code != exitError || !strings.Contains(errb.String(), "holds the "+devmode.MarkerKey+" marker") {
		t.Errorf("exit %d, stderr %q; want exit %d refusing the marked Redis", code, errb.String(), exitError)
	}
	if rec, err := tasks.NewLedger(rdb).Get(ctx, tasks.OrderRef{Provider: "tencent", OrderNo: "E2"}); err != nil || rec != nil {
		t.Errorf("the order read after the marker appeared was written: %+v, %v", rec, err)
	}
}

// An error of a Redis that cannot be reached names it, its password
// hidden, and the setting it comes from, and keeps the dial's error, even
// when go-redis gives up on the deadline (it then says only "context
// deadline exceeded"). serve logs which Redis it uses at start.
func TestRedisErrorsNameTheRedis(t *testing.T) {
	t.Parallel()
	const url, shown = "redis://:Pw-Not-Shown-3@127.0.0.1:1/0", "redis://:xxxxx@127.0.0.1:1/0"
	code, _, errs := runCLI(t, url, "", "-timeout", "2s", "status", "tencent", "A1")
	if code != exitError || !strings.Contains(errs, shown+" (REDIS_URL)") || !strings.Contains(errs, "connection refused") {
		t.Errorf("status: exit %d, stderr %q; want it to name %s (REDIS_URL) and the refused connection", code, errs, shown)
	}
	code, out, errs := runCLI(t, url, good, "-timeout", "1s")
	if code != exitError || !strings.Contains(errs, shown+" (REDIS_URL)") || !strings.Contains(errs, "connection refused") || out != "" {
		t.Errorf("enqueue: exit %d, stdout %q, stderr %q; want no order answered and the reason to name %s (REDIS_URL) and the refused connection", code, out, errs, shown)
	}
	code, _, errs = runCLI(t, "", "", "-timeout", "2s", "-redis-url", url, "list")
	if code != exitError || !strings.Contains(errs, shown+" (-redis-url)") {
		t.Errorf("list -redis-url: exit %d, stderr %q; want it to name %s (-redis-url)", code, errs, shown)
	}
	if strings.Contains(out+errs, "Pw-Not-Shown-3") {
		t.Error("the password was shown")
	}
	_, stop, logs := startServeLogs(t, map[string]string{"REDIS_URL": url}, "-open", "-log-format", "json")
	stop()
	if !strings.Contains(logs.String(), `"msg":"using redis","redis":"`+shown+`","redis_setting":"REDIS_URL"`) || strings.Contains(logs.String(), "Pw-Not-Shown-3") {
		t.Errorf("serve's log:\n%s\nwant it to say it uses %s from REDIS_URL", logs, shown)
	}
}

// A Redis that does not answer at all (a listener that never replies, as
// a host cut off by a firewall) costs enqueue one -timeout, not one for
// each of its checks and then the first batch's: it exits 2 saying that
// nothing was sent, a single order's line saying "not sent".
func TestRedisNotAnsweringCostsOneTimeout(t *testing.T) {
	t.Parallel()
	url := silentRedis(t)
	const timeout = 2 * time.Second
	for _, c := range []struct {
		name  string
		stdin string
		args  []string
	}{
		{"file", good + "\n" + strings.ReplaceAll(good, "E1", "E2") + "\n", nil},
		{"single", "", []string{"-provider", "tencent", "-order-no", "E3", "-params", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			code, out, errs := runCLI(t, url, c.stdin, append([]string{"-timeout", timeout.String()}, c.args...)...)
			took := time.Since(start)
			if code != exitError || !strings.Contains(errs, "nothing was read or sent") {
				t.Errorf("exit %d, stderr %q; want exit %d saying nothing was sent", code, errs, exitError)
			}
			// Four waits before: the PING, the -dev marker, the data key's
			// check and the first batch.
			if took >= 2*timeout+timeout/2 {
				t.Errorf("took %s with -timeout %s; want one wait", took, timeout)
			}
			switch got := lines(t, out); {
			case c.name == "file" && len(got) != 0:
				t.Errorf("orders answered %v; want none read", got)
			case c.name == "single" && (len(got) != 1 || got[0]["status"] != statusError || !strings.HasPrefix(got[0]["reason"].(string), "not sent: ")):
				t.Errorf("answer %v; want the order answered error, not sent", got)
			}
		})
	}
}

// Orders refused for another shard count than the ledger's were never
// written: enqueue says so, not that they may have been accepted (a
// black-box run).
func TestOrdersRefusedForTheShardCountAreSaidUnwritten(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	order := func(no string) string {
		return fmt.Sprintf(`{"provider":"tencent","order_no":%q,"params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`, no)
	}
	if code, out, errs := runCLIEnv(t, map[string]string{"REDIS_URL": rs.URL()}, order("One1")+"\n", "-"); code != exitOK {
		t.Fatalf("first order: exit %d, %s %s", code, out, errs)
	}
	for _, in := range []string{order("Three1") + "\n" + order("Three2") + "\n", ""} {
		args := []string{"-"}
		if in == "" {
			args = []string{"-provider", "tencent", "-order-no", "Three3", "-params", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`}
		}
		code, out, errs := runCLIEnv(t, map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_LEDGER_SHARDS": "3"}, in, args...)
		if code != exitError || !strings.Contains(out, `"status":"error"`) || !strings.Contains(errs, "Nothing of those orders was written") || strings.Contains(errs, "may or may not") {
			t.Errorf("%v: exit %d\n%s%s\nwant error lines, said unwritten", args, code, out, errs)
		}
	}
	if n := rs.Client(t).DBSize(context.Background()).Val(); n == 0 {
		t.Fatal("no keys at all")
	}
	for _, no := range []string{"Three1", "Three2", "Three3"} {
		if rec, err := ledger.New(rs.Client(t), nil).Get(context.Background(), ledger.Ref{Provider: "tencent", OrderNo: no}); err != nil || rec != nil {
			t.Errorf("%s: %+v, %v; want no record", no, rec, err)
		}
	}
}
