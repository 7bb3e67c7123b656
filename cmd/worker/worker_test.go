package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers/registry"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// syncBuffer is a bytes.Buffer safe for the worker's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// adminAddr waits until the worker logging to logs says where its admin
// server listens (it is started with -admin-addr 127.0.0.1:0, so no other
// test's server can hold that port first) and returns that address. done
// reports the worker stopping before that.
func adminAddr(t *testing.T, logs fmt.Stringer, done <-chan error) string {
	t.Helper()
	re := regexp.MustCompile(`admin server listening.*?addr"?[=:]"?([0-9.]+:[0-9]+)`)
	deadline := time.Now().Add(time.Minute)
	for {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("worker stopped before its admin server listened: %v\nlogs:\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker's admin server did not listen within a minute; logs:\n%s", logs.String())
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// demoRecords runs worker -dev -demo with args added and returns the
// records it printed.
func demoRecords(t *testing.T, env map[string]string, args ...string) []tasks.Record {
	t.Helper()
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, append([]string{"-dev", "-demo", "-admin-addr", "127.0.0.1:0", "-log-format", "text"}, args...), envFunc(env), &stdout, &stderr)
	if err != nil {
		t.Fatalf("worker -dev -demo: %v\nlogs:\n%s", err, stderr.String())
	}
	var recs []tasks.Record
	sc := bufio.NewScanner(strings.NewReader(stdout.String()))
	for sc.Scan() {
		var r tasks.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("demo output line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// -dev -demo on an empty Redis given with -dev-redis, then again on the
// same Redis, which now holds only what -dev wrote.
func TestDevDemoReachesPaid(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	checkDemo(t, demoRecords(t, nil, "-dev-redis", rs.URL()))
	checkDemo(t, demoRecords(t, nil, "-dev-redis", rs.URL()))
}

// Without -dev-redis, -dev starts an embedded Redis.
func TestDevDemoWithEmbeddedRedis(t *testing.T) {
	t.Parallel()
	recs := demoRecords(t, map[string]string{"REDIS_URL": "redis://" + freeAddr(t) + "/0"})
	checkDemo(t, recs)
}

func checkDemo(t *testing.T, recs []tasks.Record) {
	t.Helper()
	providersSeen := map[string]bool{}
	for _, r := range recs {
		providersSeen[r.Provider] = true
		if r.State != tasks.StatePaid {
			t.Errorf("demo order %s/%s ended %s: %s", r.Provider, r.OrderNo, r.State, r.Reason)
		}
		if len(r.History) == 0 {
			t.Errorf("demo order %s/%s has no attempt history", r.Provider, r.OrderNo)
		}
	}
	for _, p := range demoProviders(t) {
		if !providersSeen[p] {
			t.Errorf("no demo order reached an outcome for %s", p)
		}
	}
}

func demoProviders(t *testing.T) []string {
	var out []string
	for _, p := range demoPayloads("test") {
		out = append(out, p.Provider)
	}
	if !slices.Equal(out, registry.Names()) {
		t.Errorf("demo orders are for %v, want one for each provider: %v", out, registry.Names())
	}
	return out
}

// A running worker: orders flow, the admin endpoints answer, /metrics
// passes promtool, and SIGTERM (ctx cancel) drains and returns.
func TestWorkerServesAndDrains(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-dev", "-dev-redis", rs.URL(), "-admin-addr", "127.0.0.1:0", "-shutdown-timeout", "3s"}, envFunc(nil), &stdout, &stderr)
	}()
	base := "http://" + adminAddr(t, &stderr, done)
	waitHTTP(t, base+"/readyz", http.StatusOK)
	if body := get(t, base+"/healthz"); strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %q", body)
	}

	client := asynq.NewClient(asynq.RedisClientOpt{Addr: rs.Addr})
	defer client.Close()
	// A producer meant for -dev's Redis (a real one is refused there).
	enq := tasks.NewEnqueuer(client, tasks.NewLedger(rs.Client(t)), validatorsForTest(), &tasks.EnqueuerOptions{Dev: true})
	res, err := enq.Enqueue(context.Background(), []byte(`{"provider":"tencent","order_no":"W1","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`))
	if err != nil || res.Status != tasks.Enqueued {
		t.Fatalf("Enqueue = %+v, %v", res, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		rec, err := tasks.NewLedger(rs.Client(t)).Get(context.Background(), tasks.OrderRef{Provider: "tencent", OrderNo: "W1"})
		if err == nil && rec != nil && rec.State == tasks.StatePaid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order W1 not paid: %+v %v\nlogs:\n%s", rec, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The same order again, twice, and once with other params: counted
	// by the claims in Redis, whatever process made them.
	for _, p := range []string{
		`{"provider":"tencent","order_no":"W1","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`,
		`{"provider":"tencent","order_no":"W1","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`,
		`{"provider":"tencent","order_no":"W1","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":2}}`,
	} {
		if _, err := enq.Enqueue(context.Background(), []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`orderworker_enqueue_dedupe_total{kind="duplicate",provider="tencent"} 2`,
		`orderworker_enqueue_dedupe_total{kind="conflict",provider="tencent"} 1`,
		`orderworker_enqueue_dedupe_total{kind="duplicate",provider="aliyun"} 0`,
		`orderworker_orders_total{outcome="paid",provider="tencent"} 1`,
		`orderworker_orders{provider="tencent",state="paid"} 1`,
		`orderworker_provider_request_duration_seconds_count{call="submit",provider="tencent",result="ok"} 1`,
		`asynq_tasks_processed_total{queue="orders"}`,
		`asynq_tasks_enqueued{queue="orders",state="pending"}`,
		`asynq_tasks_enqueued_total{queue="orders",state="pending"}`,
		`asynq_queue_paused_total{queue="orders"} 0`,
		`orderworker_redis_up 1`,
		`orderworker_breaker_state{provider="tencent"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(metrics)
	out, err := cmd.CombinedOutput()
	// asynq's collector names two gauges like counters; they are served
	// under those names too, for queries written for it, and are the only
	// findings allowed.
	var other []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.HasPrefix(line, "asynq_tasks_enqueued_total non-counter metrics should not have \"_total\" suffix") &&
			!strings.HasPrefix(line, "asynq_queue_paused_total non-counter metrics should not have \"_total\" suffix") {
			other = append(other, line)
		}
	}
	if len(other) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop after cancel")
	}
	if !strings.Contains(stderr.String(), "worker stopped") {
		t.Errorf("logs lack the shutdown line:\n%s", stderr.String())
	}
}

func waitHTTP(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d (last: %v)", url, want, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"ORDERWORKER_CONCURRENCY": "zero"}, nil, "ORDERWORKER_CONCURRENCY"},
		{map[string]string{"ORDERWORKER_RETRY_BASE": "5"}, nil, "ORDERWORKER_RETRY_BASE"},
		{map[string]string{"ALIYUN_AUTO_PAY": "maybe"}, nil, "ALIYUN_AUTO_PAY"},
		{nil, []string{"-demo"}, "-demo needs -dev"},
		{nil, []string{"-log-format", "xml"}, `-log-format "xml"`},
		{nil, []string{"stray"}, "unexpected arguments"},
		{map[string]string{"REDIS_URL": "http://user:hunter2@x"}, nil, "redis url"},
		{map[string]string{"ORDERWORKER_RATE_LIMITS": "tencent=fast"}, nil, "ORDERWORKER_RATE_LIMITS"},
		{map[string]string{"ORDERWORKER_RATE_LIMITS": "tencent=5:0"}, nil, "burst"},
		{map[string]string{"ORDERWORKER_BREAKER_FAILURES": "-1"}, nil, "ORDERWORKER_BREAKER_FAILURES"},
		{map[string]string{"ORDERWORKER_ORDER_DEADLINES": "aliyun=soon"}, nil, "ORDERWORKER_ORDER_DEADLINES"},
		{map[string]string{"ORDERWORKER_DURABLE_WRITES": "sometimes"}, nil, "ORDERWORKER_DURABLE_WRITES"},
		{map[string]string{"ORDERWORKER_MIN_REPLICAS": "-1"}, nil, "ORDERWORKER_MIN_REPLICAS"},
		{map[string]string{"ORDERWORKER_MIN_REPLICAS": "1", "ORDERWORKER_DURABLE_WRITES": "off"}, nil, "needs ORDERWORKER_DURABLE_WRITES=auto"},
	}
	for _, tt := range tests {
		var stderr syncBuffer
		err := run(context.Background(), tt.args, envFunc(tt.env), io.Discard, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%v, %v) = %v, want an error about %s", tt.env, tt.args, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error %q shows a password", err)
		}
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	if err := run(context.Background(), []string{"-h"}, envFunc(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, e := range envVars() {
		if !strings.Contains(out.String(), e.Name) {
			t.Errorf("-h does not mention %s", e.Name)
		}
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	got, err := parseLimits(" tencent=20:40, aliyun=0.5 ,", registry.Names())
	if err != nil {
		t.Fatal(err)
	}
	if got["tencent"].Rate != 20 || got["tencent"].Burst != 40 || got["aliyun"].Rate != 0.5 || got["aliyun"].Burst != 1 || len(got) != 2 {
		t.Errorf("parseLimits = %+v", got)
	}
}

// The README's configuration table documents every variable the worker
// reads.
func TestREADMEListsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range envVars() {
		if !strings.Contains(string(readme), "`"+e.Name+"`") {
			t.Errorf("README.md does not document %s", e.Name)
		}
	}
}
