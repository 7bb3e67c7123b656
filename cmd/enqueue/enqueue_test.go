package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks"
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
}

func TestEnqueueByFlags(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	code, out, _ := runCLI(t, rs.URL(), "", "-provider", "tencent", "-order-no", "E4", "-params", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`)
	if code != exitOK || lines(t, out)[0]["status"] != tasks.Enqueued {
		t.Fatalf("exit %d, out %s", code, out)
	}
	code, out, _ = runCLI(t, rs.URL(), "", "-provider", "tencent", "-order-no", "E5", "-params", `{oops`)
	if code != exitRejected || !strings.Contains(out, "params: not valid JSON") {
		t.Fatalf("bad -params: exit %d, out %s", code, out)
	}
}

// Redis unreachable: a clear error, exit 2, nothing half-written (there is
// no Redis to write to; the claim is atomic).
func TestEnqueueRedisUnreachable(t *testing.T) {
	t.Parallel()
	code, out, errs := runCLI(t, "redis://127.0.0.1:1/0", good, "-timeout", "2s")
	if code != exitError || out != "" || !strings.Contains(errs, "claim order") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 with a claim error", code, out, errs)
	}
}

// With ORDERWORKER_MIN_REPLICAS above what the master has, enqueue fails
// naming the setting and writes nothing; a bad value is refused at start.
func TestEnqueueNeedsTheMinReplicas(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	env := map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_MIN_REPLICAS": "1"}
	code, out, errs := runCLIEnv(t, env, good)
	if code != exitError || out != "" || !strings.Contains(errs, "ORDERWORKER_MIN_REPLICAS") {
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
