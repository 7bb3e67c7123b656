//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers/tencent/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
	"github.com/orderworker/orderworker/tasks/webhook"
)

// runCLIEnv is runCLI with more environment variables.
func runCLIEnv(t *testing.T, env map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// The ledger sharded over a real cluster of three masters (a replica
// each, passwords on): with ORDERWORKER_LEDGER_SHARDS=3 on the enqueue CLI
// and a worker process, the three shards' keys and queues land on the
// three masters, and every master runs a share of the work; every order
// is paid, created once; duplicates are answered from their shard; the
// reconciler finds a claim stranded in one shard; an operator's redrive
// queues an errored order on its shard's queue; enqueue status, list,
// /metrics and the dashboard cover every shard; a webhook endpoint receives every
// shard's outcome events; and a producer configured with one shard is
// refused before it writes.
func TestShardedLedgerThroughCluster(t *testing.T) {
	t.Parallel()
	const orders, shards = 90, 3
	cl := taskstest.StartCluster(t, &taskstest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Auth: true})
	url := cl.URL()
	env := map[string]string{"REDIS_URL": url, "ORDERWORKER_LEDGER_SHARDS": "3"}
	ctx := context.Background()

	// Where the shards live: one master each.
	masters := map[int]bool{}
	for i, q := range tasks.Queues(tasks.DefaultQueue, shards) {
		lm, _ := cl.MasterFor("orderworker:{" + ledger.ShardTag("ledger", i, shards) + "}:events")
		qm, _ := cl.MasterFor("asynq:{" + q + "}:pending")
		if lm != qm {
			t.Errorf("shard %d: ledger on master %d, its queue %s on master %d", i, lm, q, qm)
		}
		masters[lm] = true
	}
	if len(masters) != shards {
		t.Fatalf("the %d shards are on %d masters, want one each", shards, len(masters))
	}

	const appKey, appSecret = "ShardAppKey", "ShardAppSecret-51c2e8"
	tsb := sandbox.New(appKey, appSecret)
	hs := httptest.NewServer(tsb)
	t.Cleanup(hs.Close)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	hooks := map[string]string{} // webhook-id -> order_no of order.paid events
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if signer.Verify(body, r.Header) != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev ledger.Event
		_ = json.Unmarshal(body, &ev)
		if ev.Type == "order.paid" {
			mu.Lock()
			hooks[r.Header.Get(webhook.HeaderID)] = ev.Data.OrderNo
			mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)

	bin := buildWorkerForCluster(t)
	before := cl.CommandStats(t)
	admin := clusterFreeAddr(t)
	w := startClusterWorker(t, bin, admin,
		"REDIS_URL="+url, "ORDERWORKER_LEDGER_SHARDS=3",
		"TENCENT_ENDPOINT="+hs.URL, "TENCENT_APP_KEY="+appKey, "TENCENT_APP_SECRET="+appSecret,
		"ORDERWORKER_RECONCILE_INTERVAL=1s",
		"ORDERWORKER_WEBHOOK_URLS="+recv.URL+"/hook", "ORDERWORKER_WEBHOOK_SECRET="+secret,
	)
	w.waitReady(t, 60*time.Second)
	rc := cl.Client(t)
	l := ledger.New(rc, &ledger.Options{Shards: shards})
	// Events from the endpoint's first configuration on are delivered:
	// wait until its consumer group exists on every shard's stream.
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range l.EventStreams() {
		for {
			gs, err := rc.XInfoGroups(ctx, s.Key).Result()
			if err == nil && len(gs) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no consumer group on %s: %v\nworker:\n%s", s.Key, err, w.tail(20))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// A producer with another shard count is refused before it writes.
	one := `{"provider":"tencent","order_no":"SH-one","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`
	if code, out, errs := runCLIEnv(t, map[string]string{"REDIS_URL": url}, one); code != exitError || !strings.Contains(errs, "ORDERWORKER_LEDGER_SHARDS=3") {
		t.Errorf("enqueue with one shard: exit %d, want %d naming ORDERWORKER_LEDGER_SHARDS=3\n%s%s", code, exitError, out, errs)
	}

	var in strings.Builder
	for i := range orders {
		fmt.Fprintf(&in, `{"provider":"tencent","order_no":"SH%03d","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`+"\n", i)
	}
	code, out, errs := runCLIEnv(t, env, in.String(), "-timeout", "20s")
	if code != exitOK || strings.Count(out, `"status":"enqueued"`) != orders {
		t.Fatalf("enqueue: exit %d\n%s%s\nworker:\n%s", code, out, errs, w.tail(20))
	}
	if code, out, _ := runCLIEnv(t, env, in.String()); code != exitOK || strings.Count(out, `"status":"duplicate"`) != orders {
		t.Errorf("enqueue again: exit %d, want %d duplicates:\n%s", code, orders, out)
	}
	// A claim whose producer died before queueing its task.
	past := ledger.New(rc, &ledger.Options{Shards: shards, Now: func() time.Time { return time.Now().Add(-2 * time.Minute) }})
	params := json.RawMessage(`{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`)
	hash, err := tasks.ParamsHash(params)
	if err != nil {
		t.Fatal(err)
	}
	stranded := tasks.OrderRef{Provider: "tencent", OrderNo: "SH-stranded"}
	if cr, err := past.Claim(ctx, stranded, params, hash); err != nil || !cr.Created {
		t.Fatalf("Claim = %+v, %v", cr, err)
	}

	// An order that ended errored having surely created nothing: an
	// operator re-drives it, onto its shard's queue.
	redriven := tasks.OrderRef{Provider: "tencent", OrderNo: "SH-redriven"}
	if cr, err := l.Claim(ctx, redriven, params, hash); err != nil || !cr.Created {
		t.Fatalf("Claim = %+v, %v", cr, err)
	}
	if b, err := l.Begin(ctx, redriven, ledger.BeginArgs{Token: "op"}); err != nil || b.Status != ledger.Began {
		t.Fatalf("Begin = %+v, %v", b, err)
	}
	if err := l.Settle(ctx, redriven, "op", ledger.SetErrored("refused before sending").WithMayExist(false)); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLIEnv(t, env, "", "redrive", "-state", "errored", "-by", "tester"); code != exitOK || !strings.Contains(out, "SH-redriven") {
		t.Fatalf("redrive: exit %d\n%s%s", code, out, errs)
	}
	paid := int64(orders + 2) // and the stranded and the re-driven order

	perShard := make([]int, shards)
	for i := range orders {
		perShard[l.ShardOf(tasks.OrderRef{Provider: "tencent", OrderNo: fmt.Sprintf("SH%03d", i)})]++
	}
	deadline = time.Now().Add(90 * time.Second)
	for {
		st, err := l.Stats(ctx, []string{"tencent"})
		if err == nil && st["tencent"][tasks.StatePaid].Count == paid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every order paid within 90s: %+v, %v\nworker:\n%s", st["tencent"], err, w.tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range orders {
		if n := tsb.Count(fmt.Sprintf("SH%03d", i)); n != 1 {
			t.Errorf("order SH%03d created %d times, want 1", i, n)
		}
	}
	for _, no := range []string{stranded.OrderNo, redriven.OrderNo} {
		if n := tsb.Count(no); n != 1 {
			t.Errorf("order %s was created %d times, want 1", no, n)
		}
	}

	// Operator commands through the cluster: status and list.
	for _, no := range []string{"SH000", "SH045", stranded.OrderNo, redriven.OrderNo} {
		code, out, errs := runCLIEnv(t, env, "", "status", "tencent", no)
		var rec tasks.Record
		if code != exitOK || json.Unmarshal([]byte(out), &rec) != nil || rec.State != tasks.StatePaid {
			t.Errorf("status %s: exit %d, %s %s", no, code, out, errs)
		}
	}
	if code, out, errs := runCLIEnv(t, env, "", "list", "-state", "paid", "-limit", "1000"); code != exitOK || int64(len(lines(t, out))) != paid {
		t.Errorf("list -state paid: exit %d, %d lines, want %d\n%s", code, len(lines(t, out)), paid, errs)
	}

	// /metrics: the gauges over every shard, asynq's queue of each.
	metrics := clusterGet(t, "http://"+admin+"/metrics", http.StatusOK)
	if v, ok := metricValue(metrics, `orderworker_orders{provider="tencent",state="paid"}`); !ok || v != float64(paid) {
		t.Errorf("/metrics: paid = %v, %v; want %d", v, ok, paid)
	}
	if v, ok := metricValue(metrics, `orderworker_reconciler_found_total{kind="claimed_not_enqueued"}`); !ok || v != 1 {
		t.Errorf("/metrics: reconciler found %v, %v; want 1", v, ok)
	}
	for _, q := range tasks.Queues(tasks.DefaultQueue, shards) {
		if v, ok := metricValue(metrics, `asynq_tasks_processed_total{queue="`+q+`"}`); !ok || v < 1 {
			t.Errorf("/metrics: queue %s processed %v, %v", q, v, ok)
		}
	}

	// The dashboard lists every shard's queue.
	dash := clusterGet(t, "http://"+admin+"/monitoring/api/queues", http.StatusOK)
	for _, q := range tasks.Queues(tasks.DefaultQueue, shards) {
		if !strings.Contains(dash, `"queue":"`+q+`"`) {
			t.Errorf("/monitoring/api/queues lacks %s: %.300s", q, dash)
		}
	}

	// Every paid event reached the webhook endpoint, each under its own id.
	deadline = time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(hooks)
		mu.Unlock()
		if int64(n) == paid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d paid events delivered, want %d\nworker:\n%s", n, paid, w.tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}

	w.stop(t)
	if logs := w.log(); strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("the worker logged errors:\n%s", w.tail(30))
	}
	after := cl.CommandStats(t)
	var total int64
	calls := make([]int64, len(cl.Masters))
	for i, m := range cl.Masters {
		calls[i] = after[m.Addr].Sub(before[m.Addr]).Without("info").Total()
		total += calls[i]
	}
	for i, c := range calls {
		// Each master holds a third of the orders (perShard) and a queue;
		// asynq's per-process chores land on every master too.
		if float64(c) < 0.15*float64(total) {
			t.Errorf("master %d ran %d of %d commands: the shards do not spread the load", i, c, total)
		}
	}
	t.Logf("orders per shard %v; commands per master %v (%d in all, %.1f per order)", perShard, calls, total, float64(total)/float64(paid))
}

// enqueue serve with another shard count than the ledger's refuses to
// start, naming the count to set; status reads nothing and says why.
func TestServeRefusesAnotherShardCount(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	if err := ledger.New(rs.Client(t), &ledger.Options{Shards: 3}).CheckShards(context.Background()); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_API_TOKENS": "tok"}
	done := make(chan struct{})
	var code int
	var errs string
	go func() {
		defer close(done)
		code, _, errs = runCLIEnv(t, env, "", "serve", "-addr", "127.0.0.1:0")
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("serve with the wrong shard count did not exit")
	}
	if code != exitError || !strings.Contains(errs, "ORDERWORKER_LEDGER_SHARDS=3") {
		t.Errorf("serve: exit %d, stderr %q; want %d naming ORDERWORKER_LEDGER_SHARDS=3", code, errs, exitError)
	}
	if code, out, errs := runCLIEnv(t, env, "", "status", "tencent", "X1"); code != exitError || out != "" || !strings.Contains(errs, "ORDERWORKER_LEDGER_SHARDS=3") {
		t.Errorf("status: exit %d, %q %q; want %d naming ORDERWORKER_LEDGER_SHARDS=3", code, out, errs, exitError)
	}
}
