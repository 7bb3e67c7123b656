//go:build linux

package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.yaml.in/yaml/v3"

	provset "github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/tencent"
	"github.com/orderworker/orderworker/providers/tencent/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// emptyUntil lists the dashboard panels whose queries return no series until
// their event happens, with that event: their metrics are counters or
// histograms with labels, which have no series before the first
// observation. deploy/README.md ("Dashboard") lists the same panels; every
// other panel draws from the moment a worker is scraped.
//
// TestDashboardOnLivePrometheus holds both sides of that promise: on idle
// workers that have processed nothing, exactly these panels are empty; once
// the test has made every one of these events happen, every panel returns
// series.
var emptyUntil = map[string]string{
	"Enqueue to outcome p50 / p99": "an order reaches paid, pending or errored",
	"Attempts per order p50 / p99": "an order reaches paid or errored",
	"Provider latency p50 / p99":   "a worker calls a provider",
	"Provider requests by result":  "a worker calls a provider",
	"Provider error ratio":         "a worker calls a provider",
}

// Names of the panels whose values the test checks: against the ledger and
// the queue, to prove their aggregation over replicas (max, not sum), and
// the reconciler's one finding.
const (
	panelWorkersUp     = "Workers up"
	panelOrdersByState = "Orders by state"
	panelArchived      = "Archived tasks"
	panelReconciler    = "Reconciler findings"
)

// Credentials of the test's own Tencent sandbox: they open nothing else.
const (
	liveAppKey    = "DeployLiveAppKey"
	liveAppSecret = "deploy-live-app-secret"
)

// The test's orders: valid Tencent params (the order number is set per order).
const liveParams = `{"CustomerId":"Customer100001","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":1}`

// TestDashboardOnLivePrometheus proves the Grafana dashboard against a live
// Prometheus: Debian's prometheus scrapes two worker processes (built from
// cmd/worker) every second, with the alert rules loaded, while they process
// orders against a Tencent sandbox that injects faults; every query of every
// panel is then evaluated through Prometheus's HTTP API, with Grafana's
// variables replaced as Grafana would replace them. Each must parse and
// return series with a number (not only NaN, which Grafana draws as
// nothing), except the panels of emptyUntil while their event has not
// happened yet. The orders exercise every such event: paid and errored
// orders (a failure budget spent on 5xx answers), throttling, a create that
// fails after the order exists, shared rate limits, a task run for a
// finished order and an order a crashed producer left without a task (found
// by the reconciler).
func TestDashboardOnLivePrometheus(t *testing.T) {
	t.Parallel()
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not found on PATH (%v): install it (Debian: apt-get install prometheus; .ci/run does) to evaluate the dashboard's queries on a live Prometheus", err)
	}
	queries, vars := livePanelQueries(t)
	checkEmptyUntilDocumented(t, queries)
	if t.Failed() {
		return
	}

	ctx := t.Context()
	workerBin := buildWorkerBinary(t)
	rs := taskstest.StartRedis(t, nil)
	sb := sandbox.New(liveAppKey, liveAppSecret)
	api := httptest.NewServer(sb)
	t.Cleanup(api.Close)

	env := []string{
		"REDIS_URL=" + rs.URL(),
		"TENCENT_ENDPOINT=" + api.URL,
		"TENCENT_APP_KEY=" + liveAppKey,
		"TENCENT_APP_SECRET=" + liveAppSecret,
		"ORDERWORKER_LOG_FORMAT=json",
		"ORDERWORKER_CONCURRENCY=10",
		"ORDERWORKER_MAX_ATTEMPTS=2",
		"ORDERWORKER_RETRY_BASE=50ms",
		"ORDERWORKER_RETRY_MAX=200ms",
		"ORDERWORKER_LISTING_LAG=100ms",
		"ORDERWORKER_RECONCILE_INTERVAL=1s",
		"ORDERWORKER_BREAKER_COOLDOWN=1s",
		"ORDERWORKER_RATE_LIMITS=tencent=20:4",
		"ORDERWORKER_SHUTDOWN_TIMEOUT=2s",
	}
	workers := []*liveProc{
		startLiveWorker(t, workerBin, env, "w1"),
		startLiveWorker(t, workerBin, env, "w2"),
	}
	for _, w := range workers {
		w.waitReady(t, 30*time.Second)
	}
	prom := startLivePrometheus(t, promBin, []string{workers[0].addr, workers[1].addr})
	prom.waitTargetsUp(t, len(workers), 30*time.Second)
	started := time.Now()

	// Idle workers: every panel outside emptyUntil draws, those in it
	// are empty.
	res := prom.evaluateUntil(t, queries, 30*time.Second, func(q liveQuery, r liveResult) bool {
		_, listed := emptyUntil[q.panel]
		return listed || r.ok()
	})
	for _, q := range queries {
		r := res[q.key()]
		_, listed := emptyUntil[q.panel]
		switch {
		case r.err != nil:
			t.Errorf("%s: %v\n  query: %s", q.key(), r.err, q.expr)
		case listed && r.series > 0:
			t.Errorf("%s: returns %d series on workers that processed nothing, but deploy/README.md says it is empty until %s: update the README and emptyUntil\n  query: %s",
				q.key(), r.series, emptyUntil[q.panel], q.expr)
		case !listed && !r.ok():
			t.Errorf("%s: %s on running workers; a panel outside emptyUntil must draw at once\n  query: %s", q.key(), r.describe(), q.expr)
		}
	}
	if t.Failed() {
		return
	}

	// Orders. Each phase ends before the next starts, so that the
	// sandbox's scripted faults strike the orders they are meant for.
	opt, err := tasks.ParseRedisURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	rdb := rs.Client(t)
	led := tasks.NewLedger(rdb)
	set := provset.NewSet()
	set.Disable(tencent.Name, "validation only", tencent.Validate)
	enq := tasks.NewEnqueuer(client, led, set, nil)
	enqueue := func(orderNos ...string) {
		t.Helper()
		for _, no := range orderNos {
			r, err := enq.EnqueuePayload(ctx, livePayload(no))
			if err != nil || r.Status != tasks.Enqueued {
				t.Fatalf("enqueue %s: %+v, %v", no, r, err)
			}
		}
	}
	wait := func(want tasks.State, orderNos ...string) {
		t.Helper()
		waitLiveStates(t, led, workers, want, orderNos, 45*time.Second)
	}

	// 1. An order paid at the first try.
	enqueue("Live-Warm")
	wait(tasks.StatePaid, "Live-Warm")

	// 2. An order errored: both its creates answer 503, which spends its
	// failure budget (2).
	sb.Faults().Script(fault.FailBefore, fault.FailBefore)
	enqueue("Live-Err")
	wait(tasks.StateErrored, "Live-Err")
	if n := sb.Faults().Counts()[fault.FailBefore]; n != 2 {
		t.Fatalf("the sandbox injected %d 503s before create, want the 2 scripted", n)
	}

	// 3. At once, all ending paid (one 503 before create is scripted, and
	// an order whose create answered 500 after creating it is found by
	// its lookup, so no order spends its budget):
	//   - a batch through throttling, a 503 before and a 500 after the
	//     create (the lookup finds that order), and the shared rate limit;
	//   - a task run again for the finished warm-up order (a producer's
	//     own task, or asynq running a task twice): stopped by the ledger;
	//   - an order whose producer crashed two minutes ago between its
	//     claim and its enqueue: a record without a task, older than the
	//     reconciler's grace (1m), which the reconciler re-queues.
	sb.Faults().Script(fault.Throttle, fault.FailBefore, fault.FailAfter, fault.Throttle)
	var batch []string
	for i := range 8 {
		batch = append(batch, fmt.Sprintf("Live-Batch-%d", i))
	}
	enqueue(batch...)
	warm, err := json.Marshal(livePayload("Live-Warm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.EnqueueContext(ctx, asynq.NewTask(tasks.TypeOrderSubmit, warm), asynq.Queue(tasks.DefaultQueue)); err != nil {
		t.Fatal(err)
	}
	stranded := livePayload("Live-Stranded")
	hash, err := tasks.ParamsHash(stranded.Params)
	if err != nil {
		t.Fatal(err)
	}
	past := ledger.New(rdb, &ledger.Options{Now: func() time.Time { return time.Now().Add(-2 * time.Minute) }})
	if _, err := past.Claim(ctx, tasks.OrderRef{Provider: stranded.Provider, OrderNo: stranded.OrderNo}, stranded.Params, hash); err != nil {
		t.Fatal(err)
	}
	wait(tasks.StatePaid, append(batch, "Live-Stranded")...)

	// Every panel returns series with a number now, once Prometheus has
	// scraped what the ledger and the queue hold at the end.
	prom.waitScrapedAfter(t, time.Now(), 15*time.Second)
	res = prom.evaluateUntil(t, queries, 30*time.Second, func(_ liveQuery, r liveResult) bool { return r.ok() })
	t.Logf("queries evaluated %s after Prometheus started (the queries' rate window is %s)", time.Since(started).Round(time.Second), vars["__rate_interval"])
	for _, q := range queries {
		if r := res[q.key()]; !r.ok() {
			t.Errorf("%s: %s after the orders ran\n  query: %s", q.key(), r.describe(), q.expr)
		}
	}

	// Values checked against the ledger and the queue: with two replicas
	// scraped, a sum where max belongs doubles them.
	stats, err := led.Stats(ctx, []string{tencent.Name})
	if err != nil {
		t.Fatal(err)
	}
	inspector := asynq.NewInspector(opt)
	t.Cleanup(func() { inspector.Close() })
	info, err := inspector.GetQueueInfo(tasks.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if info.Archived == 0 {
		t.Errorf("no archived task in queue %s, want the errored orders' tasks", tasks.DefaultQueue)
	}
	checkLiveValue(t, queries, res, panelWorkersUp, nil, float64(len(workers)))
	checkLiveValue(t, queries, res, panelArchived, nil, float64(info.Archived))
	for _, s := range []tasks.State{tasks.StatePaid, tasks.StateErrored} {
		checkLiveValue(t, queries, res, panelOrdersByState, map[string]string{"provider": tencent.Name, "state": string(s)}, float64(stats[tencent.Name][s].Count))
	}
	// One finding, the first of its kind on its replica: a counter born
	// at 1, which increase() alone reads as 0.
	checkLiveValue(t, queries, res, panelReconciler, map[string]string{"kind": "claimed_not_enqueued"}, 1)
	if paid, errored := stats[tencent.Name][tasks.StatePaid].Count, stats[tencent.Name][tasks.StateErrored].Count; paid != 10 || errored != 1 {
		t.Errorf("ledger: %d tencent orders paid and %d errored, want 10 and 1", paid, errored)
	}

	prom.checkRulesHealthy(t)
}

// ---------------------------------------------------------------------------
// The dashboard's queries, with Grafana's variables replaced.

// liveQuery is one target of one panel.
type liveQuery struct {
	panel, refID string
	expr         string // variables replaced
}

func (q liveQuery) key() string { return fmt.Sprintf("panel %q target %s", q.panel, q.refID) }

// livePanelQueries reads every panel's targets and replaces Grafana's
// variables, as Grafana does with the provisioned datasource and the
// dashboard's default time range: $__interval by the datasource's scrape
// interval (its timeInterval, the least Grafana uses), $__rate_interval by
// four of them (Grafana's floor for it), $__range by the default range, and
// the dashboard's own variables by their current value (for "All", the
// variable's allValue or the alternation of its options). It returns the
// queries and the values used.
func livePanelQueries(t *testing.T) ([]liveQuery, map[string]string) {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Time struct {
			From string `json:"from"`
		} `json:"time"`
		Panels     []dashPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Query      any    `json:"query"`
				IncludeAll bool   `json:"includeAll"`
				AllValue   string `json:"allValue"`
				Current    struct {
					Value any `json:"value"`
				} `json:"current"`
				Options []struct {
					Value string `json:"value"`
				} `json:"options"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}

	var ds struct {
		Datasources []struct {
			JSONData struct {
				TimeInterval string `yaml:"timeInterval"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, datasourcesPath, &ds)
	scrape := 15 * time.Second // Grafana's default when the datasource names none
	if len(ds.Datasources) > 0 && ds.Datasources[0].JSONData.TimeInterval != "" {
		if scrape, err = time.ParseDuration(ds.Datasources[0].JSONData.TimeInterval); err != nil {
			t.Fatalf("%s: timeInterval: %v", datasourcesPath, err)
		}
	}
	rangeDur := strings.TrimPrefix(d.Time.From, "now-")
	if !regexp.MustCompile(`^[0-9]+[smhdwy]$`).MatchString(rangeDur) {
		t.Fatalf("%s: time.from %q: want now-DURATION", dashboardPath, d.Time.From)
	}
	vars := map[string]string{
		"__interval":      promDuration(scrape),
		"__rate_interval": promDuration(4 * scrape),
		"__range":         rangeDur,
	}
	for _, v := range d.Templating.List {
		val, ok := "", false
		switch cur := v.Current.Value.(type) {
		case string:
			val, ok = cur, cur != ""
		case []any:
			var vals []string
			for _, x := range cur {
				if s, isStr := x.(string); isStr {
					vals = append(vals, s)
				}
			}
			if len(vals) == 1 {
				val, ok = vals[0], true
			} else if len(vals) > 1 {
				val, ok = "("+strings.Join(vals, "|")+")", true
			}
		}
		if val == "$__all" || (!ok && v.IncludeAll) {
			val, ok = v.AllValue, v.AllValue != ""
			if !ok && len(v.Options) > 0 {
				var vals []string
				for _, o := range v.Options {
					if o.Value != "$__all" {
						vals = append(vals, o.Value)
					}
				}
				val, ok = "("+strings.Join(vals, "|")+")", len(vals) > 0
			}
		}
		if !ok {
			if s, isStr := v.Query.(string); isStr && v.Type == "constant" {
				val, ok = s, true
			}
		}
		if !ok {
			t.Errorf("template variable %s (%s): no current value or options to evaluate the queries with", v.Name, v.Type)
			continue
		}
		vars[v.Name] = val
	}

	var out []liveQuery
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, liveQuery{panel: p.Title, refID: tg.RefID, expr: replaceGrafanaVars(t, p.Title, tg.Expr, vars)})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(out) == 0 {
		t.Fatalf("%s: no panel queries", dashboardPath)
	}
	seen := map[string]bool{}
	for _, q := range out {
		if seen[q.key()] {
			t.Errorf("%s: two targets are %s; the test tells them apart by panel title and refId", dashboardPath, q.key())
		}
		seen[q.key()] = true
	}
	return out, vars
}

// promDuration renders d as a PromQL duration (whole seconds).
func promDuration(d time.Duration) string {
	return strconv.Itoa(int(d/time.Second)) + "s"
}

var leftoverVar = regexp.MustCompile(`\$\{?[A-Za-z_]|\[\[`)

// replaceGrafanaVars replaces $name, ${name}, ${name:format} and [[name]]
// for each variable, and fails the test if a variable is left.
func replaceGrafanaVars(t *testing.T, panel, expr string, vars map[string]string) string {
	t.Helper()
	out := expr
	for name, val := range vars {
		re := regexp.MustCompile(`\$\{` + regexp.QuoteMeta(name) + `(?::[A-Za-z]+)?\}|\$` + regexp.QuoteMeta(name) + `\b|\[\[` + regexp.QuoteMeta(name) + `\]\]`)
		out = re.ReplaceAllLiteralString(out, val)
	}
	if leftoverVar.MatchString(out) {
		t.Errorf("panel %q: a Grafana variable this test does not know is left in %q", panel, out)
	}
	return out
}

// checkEmptyUntilDocumented checks that emptyUntil names existing panels
// and that deploy/README.md's "Dashboard" section lists exactly them.
func checkEmptyUntilDocumented(t *testing.T, queries []liveQuery) {
	t.Helper()
	for panel := range emptyUntil {
		if !slices.ContainsFunc(queries, func(q liveQuery) bool { return q.panel == panel }) {
			t.Errorf("emptyUntil names panel %q, which %s does not have", panel, dashboardPath)
		}
	}
	b, err := os.ReadFile(runbookPath)
	if err != nil {
		t.Fatal(err)
	}
	_, section, found := strings.Cut(string(b), "\n## Dashboard\n")
	if !found {
		t.Fatalf("%s has no section \"## Dashboard\" listing the panels that are empty until their event", runbookPath)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if !strings.HasPrefix(line, "| ") || len(cells) < 2 {
			continue
		}
		panel := strings.TrimSpace(cells[0])
		if panel == "panel" || strings.HasPrefix(panel, "---") {
			continue
		}
		documented[panel] = true
		if _, ok := emptyUntil[panel]; !ok {
			t.Errorf("%s \"Dashboard\" lists panel %q as empty until its event; emptyUntil in this test does not", runbookPath, panel)
		}
		if strings.TrimSpace(cells[1]) == "" {
			t.Errorf("%s \"Dashboard\": panel %q: no event", runbookPath, panel)
		}
	}
	for panel := range emptyUntil {
		if !documented[panel] {
			t.Errorf("%s \"Dashboard\" does not list panel %q, empty until %s", runbookPath, panel, emptyUntil[panel])
		}
	}
}

// ---------------------------------------------------------------------------
// Processes: the worker and Prometheus.

// buildWorkerBinary builds cmd/worker into a scratch directory.
func buildWorkerBinary(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH (go test puts it there): %v", err)
	}
	out := filepath.Join(t.TempDir(), "worker")
	start := time.Now()
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", out, filepath.Join(repoRoot, "cmd", "worker"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build the worker: %v\n%s", err, b)
	}
	t.Logf("built the worker in %s", time.Since(start).Round(time.Millisecond))
	return out
}

// liveProc is a child process in its own process group, killed with the
// test (and by the kernel if the test binary dies first), with its output
// in the test's artifact directory (go test -artifacts keeps it).
type liveProc struct {
	name, addr, log string
	cmd             *exec.Cmd
	exited          chan struct{}
	exit            error
}

func startLiveProc(t *testing.T, name, addr string, env []string, bin string, args ...string) *liveProc {
	t.Helper()
	p := &liveProc{name: name, addr: addr, log: filepath.Join(t.ArtifactDir(), name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.exit = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *liveProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after 10s.
func (p *liveProc) stop() {
	if !p.alive() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

func (p *liveProc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitHTTP waits until GET url answers 200, failing the test if p exits.
func (p *liveProc) waitHTTP(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = errors.New(resp.Status)
		}
		if !p.alive() {
			t.Fatalf("%s exited (%v):\n%s", p.name, p.exit, p.tail(20))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not ready after %s (last: %v):\n%s", p.name, url, timeout, err, p.tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *liveProc) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	p.waitHTTP(t, "http://"+p.addr+"/readyz", timeout)
}

// freeLoopbackAddr returns a loopback address that was free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startLiveWorker runs the worker with env only (nothing inherited, so no
// credential of the machine's environment reaches it) and its admin server
// on a free port.
func startLiveWorker(t *testing.T, bin string, env []string, name string) *liveProc {
	t.Helper()
	addr := freeLoopbackAddr(t)
	return startLiveProc(t, name, addr, append(slices.Clip(env), "ORDERWORKER_ADMIN_ADDR="+addr), bin)
}

// waitLiveStates waits until every order is in state want, failing at once
// when one ends in another terminal state.
func waitLiveStates(t *testing.T, led *tasks.Ledger, workers []*liveProc, want tasks.State, orderNos []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, no := range orderNos {
		ref := tasks.OrderRef{Provider: tencent.Name, OrderNo: no}
		for {
			rec, err := led.Get(t.Context(), ref)
			if err == nil && rec.State == want {
				break
			}
			if err == nil && rec.State.Terminal() {
				t.Fatalf("order %s ended %s (%s), want %s", no, rec.State, rec.Reason, want)
			}
			for _, w := range workers {
				if !w.alive() {
					t.Fatalf("worker %s exited (%v):\n%s", w.name, w.exit, w.tail(20))
				}
			}
			if time.Now().After(deadline) {
				state := "no record"
				if rec != nil {
					state = fmt.Sprintf("%s (%s)", rec.State, rec.Reason)
				}
				t.Fatalf("order %s is %s after %s, want %s (err %v)", no, state, timeout, want, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func livePayload(orderNo string) tasks.Payload {
	return tasks.Payload{Provider: tencent.Name, OrderNo: orderNo, Params: json.RawMessage(liveParams)}
}

// livePrometheus is Debian's prometheus, scraping the workers every second
// (job orderworker, as prometheus/prometheus.yml names it) and evaluating
// prometheus/alerts.yml.
type livePrometheus struct {
	*liveProc
	base string
}

func startLivePrometheus(t *testing.T, bin string, targets []string) *livePrometheus {
	t.Helper()
	rules, err := filepath.Abs(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := map[string]any{
		"global": map[string]any{
			"scrape_interval":     "1s",
			"scrape_timeout":      "1s",
			"evaluation_interval": "1s",
		},
		"rule_files": []string{rules},
		"scrape_configs": []any{map[string]any{
			"job_name":       "orderworker",
			"metrics_path":   "/metrics",
			"static_configs": []any{map[string]any{"targets": targets}},
		}},
	}
	b, err := yaml.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// The port was free a moment ago; another process may take it before
	// Prometheus binds it, so try a few.
	for attempt := 1; ; attempt++ {
		addr := freeLoopbackAddr(t)
		p := startLiveProc(t, fmt.Sprintf("prometheus-%d", attempt), addr, os.Environ(), bin,
			"--config.file="+configPath,
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data-%d", attempt)),
			"--web.listen-address="+addr,
		)
		lp := &livePrometheus{liveProc: p, base: "http://" + addr}
		if err := lp.waitStarted(30 * time.Second); err != nil {
			if !p.alive() && attempt < 3 && strings.Contains(p.tail(5), "address already in use") {
				continue
			}
			t.Fatalf("prometheus: %v:\n%s", err, p.tail(20))
		}
		return lp
	}
}

func (p *livePrometheus) waitStarted(timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !p.alive() {
			return fmt.Errorf("exited (%v)", p.exit)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitTargetsUp waits until Prometheus has scraped n workers successfully.
func (p *livePrometheus) waitTargetsUp(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := p.query(t.Context(), `up{job="orderworker"} == 1`)
		if r.err == nil && r.series == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %d of %d workers up after %s (%v):\n%s", r.series, n, timeout, r.err, p.tail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitScrapedAfter waits until every worker's latest scrape began after at.
func (p *livePrometheus) waitScrapedAfter(t *testing.T, at time.Time, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		// timestamp() gives a sample's own time only when applied to a
		// selector (on anything else it gives the evaluation time).
		r := p.query(t.Context(), `min(timestamp(up{job="orderworker"}))`)
		if r.err == nil && len(r.samples) == 1 && r.samples[0].value > float64(at.UnixMilli())/1000 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: no scrape of every worker after %s within %s (%s):\n%s", at.Format(time.TimeOnly), timeout, r.describe(), p.tail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// liveResult is what one instant query returned.
type liveResult struct {
	err     error
	refused bool // Prometheus refused the query (it does not parse or cannot run)
	series  int  // samples in the result
	finite  int  // of which a number (not NaN or ±Inf)
	samples []liveSeries
}

type liveSeries struct {
	labels map[string]string
	value  float64
}

// ok: the query parsed and returned a series with a number.
func (r liveResult) ok() bool { return r.err == nil && r.finite > 0 }

func (r liveResult) describe() string {
	switch {
	case r.err != nil:
		return r.err.Error()
	case r.series == 0:
		return "no series"
	case r.finite == 0:
		return fmt.Sprintf("%d series, none with a number (NaN or Inf: Grafana draws nothing)", r.series)
	}
	return fmt.Sprintf("%d series", r.series)
}

// query evaluates expr at the present time through /api/v1/query.
func (p *livePrometheus) query(ctx context.Context, expr string) liveResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/api/v1/query",
		strings.NewReader(url.Values{"query": {expr}}.Encode()))
	if err != nil {
		return liveResult{err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := ownClient.Do(req)
	if err != nil {
		return liveResult{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return liveResult{err: err}
	}
	var ans struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return liveResult{err: fmt.Errorf("HTTP %s: %v: %.200s", resp.Status, err, body)}
	}
	if ans.Status != "success" {
		return liveResult{err: fmt.Errorf("Prometheus refuses the query: %s: %s", ans.ErrorType, ans.Error), refused: true}
	}
	var res liveResult
	add := func(labels map[string]string, v [2]any) {
		s, _ := v[1].(string)
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			res.err = fmt.Errorf("sample value %q: %v", s, err)
			return
		}
		res.series++
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			res.finite++
		}
		res.samples = append(res.samples, liveSeries{labels, f})
	}
	switch ans.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(ans.Data.Result, &vec); err != nil {
			return liveResult{err: err}
		}
		for _, s := range vec {
			add(s.Metric, s.Value)
		}
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(ans.Data.Result, &v); err != nil {
			return liveResult{err: err}
		}
		add(nil, v)
	default:
		return liveResult{err: fmt.Errorf("result type %q, want a vector or a scalar (a panel draws instant vectors over time)", ans.Data.ResultType), refused: true}
	}
	return res
}

// evaluateUntil evaluates every query until done holds for each (a query
// Prometheus refuses counts as done: waiting does not mend it) or timeout
// passes, and returns the last results by query key.
func (p *livePrometheus) evaluateUntil(t *testing.T, queries []liveQuery, timeout time.Duration, done func(liveQuery, liveResult) bool) map[string]liveResult {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		res := map[string]liveResult{}
		all := true
		for _, q := range queries {
			r := p.query(t.Context(), q.expr)
			res[q.key()] = r
			all = all && (r.refused || done(q, r))
		}
		if all || time.Now().After(deadline) || !p.alive() {
			return res
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkLiveValue checks the sample of panel (the one with labels, when
// given) against want.
func checkLiveValue(t *testing.T, queries []liveQuery, res map[string]liveResult, panel string, labels map[string]string, want float64) {
	t.Helper()
	i := slices.IndexFunc(queries, func(q liveQuery) bool { return q.panel == panel })
	if i < 0 {
		t.Errorf("%s has no panel %q, whose value this test checks; update the test", dashboardPath, panel)
		return
	}
	q := queries[i]
	for _, s := range res[q.key()].samples {
		match := true
		for k, v := range labels {
			match = match && s.labels[k] == v
		}
		if !match {
			continue
		}
		if s.value != want {
			t.Errorf("%s %v = %v, want %v\n  query: %s", q.key(), labels, s.value, want, q.expr)
		}
		return
	}
	t.Errorf("%s: no series %v\n  query: %s", q.key(), labels, q.expr)
}

// checkRulesHealthy checks that Prometheus loaded every alert rule and
// evaluates each without error on the live series.
func (p *livePrometheus) checkRulesHealthy(t *testing.T) {
	t.Helper()
	var want []string
	for _, r := range loadAlerts(t) {
		want = append(want, r.Alert)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		problems, got := p.ruleProblems(t)
		slices.Sort(got)
		slices.Sort(want)
		if len(problems) == 0 && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			if !slices.Equal(got, want) {
				t.Errorf("prometheus loaded alerts %v, want %v", got, want)
			}
			for _, pr := range problems {
				t.Error(pr)
			}
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (p *livePrometheus) ruleProblems(t *testing.T) (problems, names []string) {
	t.Helper()
	resp, err := http.Get(p.base + "/api/v1/rules")
	if err != nil {
		return []string{err.Error()}, nil
	}
	defer resp.Body.Close()
	var ans struct {
		Status string `json:"status"`
		Data   struct {
			Groups []struct {
				Rules []struct {
					Name           string `json:"name"`
					Health         string `json:"health"`
					LastError      string `json:"lastError"`
					LastEvaluation string `json:"lastEvaluation"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return []string{fmt.Sprintf("/api/v1/rules: %v", err)}, nil
	}
	for _, g := range ans.Data.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Name)
			if r.Health != "ok" {
				problems = append(problems, fmt.Sprintf("alert %s: health %q (last evaluation %s) %s", r.Name, r.Health, r.LastEvaluation, r.LastError))
			}
		}
	}
	return problems, names
}

// ownClient has a transport of its own: httptest.Server.Close drops the
// idle connections of http.DefaultTransport, which breaks a request
// another parallel test is sending on one of them at that moment.
var ownClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
