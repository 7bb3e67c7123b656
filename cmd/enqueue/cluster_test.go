//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers/tencent/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// The product through a redis-cluster:// URL, on a real cluster of three
// masters with a replica each, every node with a password: the enqueue CLI (in this process) accepts
// orders; a worker process (the cmd/worker binary) takes them to paid at
// the Tencent sandbox, each created once; enqueue status reads them; the
// worker's reconciler queues an order that was claimed but never got a
// task; /metrics counts the paid orders and reports the asynq queue;
// asynqmon answers on /monitoring/ and sees the cluster. The test log
// shows what each master received (INFO commandstats), to show where the
// load lands: the ledger lives in the hash slot of {ledger} and asynq's
// queue in that of {orders}. No output shows the password.
func TestProductThroughClusterURL(t *testing.T) {
	t.Parallel()
	const orders = 60
	cl := taskstest.StartCluster(t, &taskstest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Auth: true})
	url := cl.URL()
	var shown strings.Builder // everything the CLI printed
	ctx := context.Background()

	const appKey, appSecret = "ClusterAppKey", "ClusterAppSecret-7f3a90"
	tsb := sandbox.New(appKey, appSecret)
	hs := httptest.NewServer(tsb)
	t.Cleanup(hs.Close)

	bin := buildWorkerForCluster(t)
	before := cl.CommandStats(t)
	admin := clusterFreeAddr(t)
	w := startClusterWorker(t, bin, admin,
		"REDIS_URL="+url,
		"TENCENT_ENDPOINT="+hs.URL, "TENCENT_APP_KEY="+appKey, "TENCENT_APP_SECRET="+appSecret,
		"ORDERWORKER_RECONCILE_INTERVAL=1s",
	)
	w.waitReady(t, 60*time.Second)

	// The enqueue CLI, one order per line on standard input.
	var in strings.Builder
	for i := range orders {
		fmt.Fprintf(&in, `{"provider":"tencent","order_no":"CL%03d","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`+"\n", i)
	}
	code, out, errs := runCLI(t, url, in.String(), "-timeout", "20s")
	shown.WriteString(out + errs)
	if code != exitOK {
		t.Fatalf("enqueue exit %d\nstdout %s\nstderr %s\nworker:\n%s", code, out, errs, w.tail(20))
	}
	results := lines(t, out)
	if len(results) != orders {
		t.Fatalf("enqueue printed %d results for %d orders:\n%s", len(results), orders, out)
	}
	for _, r := range results {
		if r["status"] != tasks.Enqueued {
			t.Errorf("enqueue result %v, want enqueued", r)
		}
	}
	// The same orders again are duplicates, answered from the ledger.
	if code, out, errs := runCLI(t, url, in.String()); code != exitOK || strings.Count(out+errs, `"status":"duplicate"`) != orders {
		t.Errorf("enqueue again: exit %d, want %d duplicates:\n%s", code, orders, out)
	}

	// An order claimed in the ledger whose producer died before queueing
	// its task: claimed two minutes ago, past the reconciler's grace.
	rc := cl.Client(t)
	past := ledger.New(rc, &ledger.Options{Now: func() time.Time { return time.Now().Add(-2 * time.Minute) }})
	params := json.RawMessage(`{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`)
	hash, err := tasks.ParamsHash(params)
	if err != nil {
		t.Fatal(err)
	}
	stranded := tasks.OrderRef{Provider: "tencent", OrderNo: "CL-stranded"}
	if cr, err := past.Claim(ctx, stranded, params, hash); err != nil || !cr.Created {
		t.Fatalf("Claim = %+v, %v", cr, err)
	}

	// Every order paid, each created once.
	reader := tasks.NewLedger(rc)
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err := reader.Stats(ctx, []string{"tencent"})
		if err == nil && st["tencent"][tasks.StatePaid].Count == orders+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every order paid within 90s: %+v, %v\nworker:\n%s", st["tencent"], err, w.tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range orders {
		no := fmt.Sprintf("CL%03d", i)
		if n := tsb.Count(no); n != 1 {
			t.Errorf("order %s created %d times at the sandbox, want 1", no, n)
		}
	}
	if n := tsb.Count(stranded.OrderNo); n != 1 {
		t.Errorf("the stranded order was created %d times at the sandbox, want 1", n)
	}

	// enqueue status reads them through the cluster URL.
	for _, no := range []string{"CL000", fmt.Sprintf("CL%03d", orders-1), stranded.OrderNo} {
		code, out, errs := runCLI(t, url, "", "status", "tencent", no)
		shown.WriteString(out + errs)
		var rec tasks.Record
		if code != exitOK || json.Unmarshal([]byte(out), &rec) != nil {
			t.Fatalf("status %s: exit %d\n%s%s", no, code, out, errs)
		}
		if rec.State != tasks.StatePaid || rec.OrderNo != no || len(rec.History) == 0 {
			t.Errorf("status %s = %s with history %v, want paid", no, rec.State, rec.History)
		}
	}

	// /metrics: the ledger's gauges, the reconciler's find, asynq's queue.
	metrics := clusterGet(t, "http://"+admin+"/metrics", http.StatusOK)
	for series, want := range map[string]func(float64) bool{
		`orderworker_orders{provider="tencent",state="paid"}`:             func(v float64) bool { return v == orders+1 },
		`orderworker_orders{provider="tencent",state="queued"}`:           func(v float64) bool { return v == 0 },
		`orderworker_orders_total{outcome="paid",provider="tencent"}`:     func(v float64) bool { return v == orders+1 },
		`orderworker_reconciler_found_total{kind="claimed_not_enqueued"}`: func(v float64) bool { return v == 1 },
		`orderworker_redis_up`:                                 func(v float64) bool { return v == 1 },
		`asynq_tasks_processed_total{queue="orders"}`:          func(v float64) bool { return v >= orders+1 },
		`asynq_queue_size{queue="orders"}`:                     func(v float64) bool { return v >= 0 },
		`asynq_tasks_enqueued{queue="orders",state="pending"}`: func(v float64) bool { return v == 0 },
		`asynq_queue_paused{queue="orders"}`:                   func(v float64) bool { return v == 0 },
		`orderworker_provider_request_duration_seconds_count{call="submit",provider="tencent",result="ok"}`: func(v float64) bool { return v > 0 && v <= orders+1 },
	} {
		v, ok := metricValue(metrics, series)
		if !ok || !want(v) {
			t.Errorf("/metrics: %s = %v (present: %v)", series, v, ok)
		}
	}

	// The dashboard: its page, its queue list and its Redis page, which on
	// a cluster names the queue's slot and nodes.
	if page := clusterGet(t, "http://"+admin+"/monitoring/", http.StatusOK); !strings.Contains(page, "<html") && !strings.Contains(page, "<!doctype html") {
		t.Errorf("/monitoring/ is not the dashboard page: %.200s", page)
	}
	if queues := clusterGet(t, "http://"+admin+"/monitoring/api/queues", http.StatusOK); !strings.Contains(queues, `"queue":"orders"`) {
		t.Errorf("/monitoring/api/queues lacks the orders queue: %.300s", queues)
	}
	var info struct {
		Cluster        bool `json:"cluster"`
		QueueLocations []struct {
			Queue   string   `json:"queue"`
			KeySlot int64    `json:"keyslot"`
			Nodes   []string `json:"nodes"`
		} `json:"queue_locations"`
	}
	raw := clusterGet(t, "http://"+admin+"/monitoring/api/redis_info", http.StatusOK)
	if err := json.Unmarshal([]byte(raw), &info); err != nil {
		t.Fatalf("/monitoring/api/redis_info: %v: %.300s", err, raw)
	}
	ordersMaster, ordersSlot := cl.MasterFor("asynq:{orders}:pending")
	if !info.Cluster || len(info.QueueLocations) != 1 || info.QueueLocations[0].Queue != "orders" ||
		info.QueueLocations[0].KeySlot != int64(ordersSlot) || !slices.Contains(info.QueueLocations[0].Nodes, cl.Masters[ordersMaster].Addr) {
		t.Errorf("/monitoring/api/redis_info = cluster %v, queues %+v; want orders at slot %d on %s", info.Cluster, info.QueueLocations, ordersSlot, cl.Masters[ordersMaster].Addr)
	}

	w.stop(t)
	if logs := w.log(); strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("the worker logged errors:\n%s", w.tail(30))
	}
	if logs := w.log(); !strings.Contains(logs, `"kind":"claimed_not_enqueued"`) {
		t.Errorf("the worker's log lacks the reconciler's re-queue:\n%s", w.tail(30))
	}
	if strings.Contains(w.log()+shown.String()+metrics, cl.Password) {
		t.Error("the cluster's password shows in the worker's log, the CLI's output or /metrics")
	}
	logClusterLoad(t, cl, before, cl.CommandStats(t), orders+1)
}

// logClusterLoad logs, per node, the Redis commands it ran between before
// and after (INFO commandstats; the INFO reads themselves left out), per
// order, and the commands it ran most.
func logClusterLoad(t *testing.T, cl *taskstest.Cluster, before, after map[string]taskstest.CommandStats, orders int) {
	t.Helper()
	ledgerMaster, ledgerSlot := cl.MasterFor("orderworker:{ledger}:order:tencent:x")
	ordersMaster, ordersSlot := cl.MasterFor("asynq:{orders}:pending")
	var b strings.Builder
	fmt.Fprintf(&b, "Redis commands per node for %d orders (enqueued, enqueued again as duplicates, processed, read back, one reconciled, /metrics and the dashboard read; {ledger} is slot %d, {orders} slot %d):\n", orders, ledgerSlot, ordersSlot)
	fmt.Fprintf(&b, "%-8s %-16s %-11s %-18s %8s %9s  %s\n", "node", "address", "slots", "holds", "calls", "per order", "top commands")
	var total int64
	for i, m := range cl.Masters {
		d := after[m.Addr].Sub(before[m.Addr]).Without("info")
		total += d.Total()
		lo, hi := cl.SlotRange(i)
		var holds []string
		if i == ledgerMaster {
			holds = append(holds, "{ledger}")
		}
		if i == ordersMaster {
			holds = append(holds, "{orders}")
		}
		fmt.Fprintf(&b, "%-8s %-16s %-11s %-18s %8d %9.1f  %s\n", fmt.Sprintf("master%d", i), m.Addr, fmt.Sprintf("%d-%d", lo, hi),
			strings.Join(holds, ","), d.Total(), float64(d.Total())/float64(orders), d.Top(5))
		for j, r := range cl.Replicas[i] {
			rd := after[r.Addr].Sub(before[r.Addr]).Without("info")
			fmt.Fprintf(&b, "%-8s %-16s %-11s %-18s %8d %9.1f  %s\n", fmt.Sprintf(" rep%d.%d", i, j), r.Addr, "", "(replicated)",
				rd.Total(), float64(rd.Total())/float64(orders), rd.Top(3))
		}
	}
	fmt.Fprintf(&b, "masters in all: %d calls, %.1f per order", total, float64(total)/float64(orders))
	t.Log(b.String())
}

// buildWorkerForCluster builds cmd/worker into a scratch directory, with
// -race unless ORDERWORKER_TEST_WORKER_RACE=0 (as cmd/worker's process
// tests do).
func buildWorkerForCluster(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH (go test puts it there): %v", err)
	}
	out := filepath.Join(t.TempDir(), "worker")
	args := []string{"build", "-o", out}
	if os.Getenv("ORDERWORKER_TEST_WORKER_RACE") != "0" {
		args = append(args, "-race")
	}
	start := time.Now()
	if b, err := exec.Command(goBin, append(args, "github.com/orderworker/orderworker/cmd/worker")...).CombinedOutput(); err != nil {
		t.Fatalf("go build the worker: %v\n%s", err, b)
	}
	t.Logf("built the worker (%v) in %s", args[3:], time.Since(start).Round(time.Millisecond))
	return out
}

func clusterFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// clusterWorker is a worker process with its log in a file.
type clusterWorker struct {
	admin  string
	cmd    *exec.Cmd
	logf   string
	exited chan struct{}
	err    error
}

// startClusterWorker runs the worker binary with env (and nothing of this
// process's environment but GORACE) in its own process group, killed with
// the test process; it is stopped in t.Cleanup if the test did not.
func startClusterWorker(t *testing.T, bin, admin string, env ...string) *clusterWorker {
	t.Helper()
	w := &clusterWorker{admin: admin, logf: filepath.Join(t.ArtifactDir(), "worker.log"), exited: make(chan struct{})}
	f, err := os.Create(w.logf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w.cmd = exec.Command(bin)
	w.cmd.Env = append([]string{"ORDERWORKER_ADMIN_ADDR=" + admin, "ORDERWORKER_LOG_FORMAT=json", "ORDERWORKER_SHUTDOWN_TIMEOUT=3s"}, env...)
	if v, ok := os.LookupEnv("GORACE"); ok {
		w.cmd.Env = append(w.cmd.Env, "GORACE="+v)
	}
	w.cmd.Stdout, w.cmd.Stderr = f, f
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("start the worker: %v", err)
	}
	go func() { w.err = w.cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() {
		select {
		case <-w.exited:
		default:
			_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
			<-w.exited
		}
	})
	return w
}

func (w *clusterWorker) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get("http://" + w.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-w.exited:
			t.Fatalf("the worker exited while starting (%v):\n%s", w.err, w.tail(20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker not ready after %s (last: %v):\n%s", timeout, err, w.tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and wants a clean exit.
func (w *clusterWorker) stop(t *testing.T) {
	t.Helper()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
		if w.err != nil {
			t.Errorf("the worker exited with %v after SIGTERM:\n%s", w.err, w.tail(20))
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the worker still running 30s after SIGTERM:\n%s", w.tail(20))
	}
}

func (w *clusterWorker) log() string {
	b, _ := os.ReadFile(w.logf)
	return string(b)
}

func (w *clusterWorker) tail(n int) string {
	ls := strings.Split(strings.TrimRight(w.log(), "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

func clusterGet(t *testing.T, url string, want int) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = io.Copy(&b, resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d: %.300s", url, resp.StatusCode, want, b.String())
	}
	return b.String()
}

// metricValue is the value of the sample named exactly series (name and
// labels as the exposition format writes them) in a /metrics page.
func metricValue(page, series string) (float64, bool) {
	for line := range strings.SplitSeq(page, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}
