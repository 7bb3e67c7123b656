//go:build linux

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers/registry"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// BenchmarkCompare measures the project's enqueue CLI and worker side by
// side with a naive asynq worker (internal/naiveworker: decode, sign, POST
// to the same sandbox; no ledger, no dedupe) on one redis-server and one
// Tencent sandbox, in one run:
//
//	go test -run '^$' -bench Compare ./cmd/worker
//
// Each sub-benchmark reports its figures with ReportMetric; at the end a
// table of them is printed. It drives the project only through its
// binaries, built here from ./cmd/worker and ./cmd/enqueue, so it measures
// whatever those binaries are today. Nothing is asserted but correctness
// (every order created exactly once at the sandbox).
//
//   - processing: N orders are queued first (through the enqueue CLI for the
//     worker, through asynq's client for the naive worker), then the worker
//     starts; the rate is N over the time from the first create call reaching
//     the sandbox to the Nth (the time from the process's start to the
//     first call is reported as startup). Redis commands per order are the
//     INFO commandstats delta (calls, including those a Lua script makes)
//     from just before the worker starts to just after it stopped, over N.
//   - enqueue: 10,000 orders through the enqueue CLI from a file, and through
//     asynq's Client from one goroutine (one producer each).
//   - idle: with nothing queued, the commands per second of a worker that
//     has nothing to do; then one order at a time with random gaps, the
//     time from the producer's return to the create call reaching the
//     sandbox.
//
// Every worker run gets a flushed Redis database and a fresh sandbox behind
// the same loopback address. The naive worker keeps asynq's defaults (a
// 1 s poll of an empty queue) and an HTTP transport that keeps as many idle
// connections per host as its concurrency. ORDERWORKER_TEST_COMPARE_SCALE (e.g. 0.2) scales
// the order counts for a quick run; ORDERWORKER_TEST_WORKER_ENV
// (space-separated K=V) adds settings to the project worker, e.g.
// ORDERWORKER_POLL_INTERVAL=100ms; NAIVEWORKER_IDLE_CONNS=0 gives the naive
// worker Go's default HTTP transport (2 idle connections per host).
func BenchmarkCompare(b *testing.B) {
	e := newCmpEnv(b)
	for _, c := range cmpCases(e.scale) {
		b.Run("processing_"+c.name, func(b *testing.B) {
			r := e.once(b, func() cmpResult { return e.processing(b, c) })
			r.report(b)
		})
	}
	b.Run("enqueue", func(b *testing.B) {
		r := e.once(b, func() cmpResult { return e.enqueue(b) })
		r.report(b)
	})
	b.Run("idle", func(b *testing.B) {
		r := e.once(b, func() cmpResult { return e.idle(b) })
		r.report(b)
	})
	e.printTable()
}

const (
	// cmpEnqueueOrders is the enqueue comparison's order count.
	cmpEnqueueOrders = 10_000
	// cmpIdleOrders are enqueued one at a time for the pickup latency.
	cmpIdleOrders = 40
	// cmpIdleWindow is how long an idle worker's commands are counted.
	cmpIdleWindow = 10 * time.Second
	// cmpRunTimeout bounds one worker run.
	cmpRunTimeout = 2 * time.Minute
)

// cmpCase is one processing comparison.
type cmpCase struct {
	name        string
	title       string
	latency     time.Duration
	concurrency int
	orders      int
}

func cmpCases(scale float64) []cmpCase {
	n := func(v int) int { return max(50, int(float64(v)*scale)) }
	return []cmpCase{
		{"instant_c50", "instant provider, concurrency 50", 0, 50, n(5_000)},
		{"100ms_c200", "100 ms provider, concurrency 200", 100 * time.Millisecond, 200, n(5_000)},
		{"100ms_c500", "100 ms provider, concurrency 500", 100 * time.Millisecond, 500, n(10_000)},
	}
}

// cmpEnv is what every part of the comparison shares.
type cmpEnv struct {
	bins     cmpBinaries
	dir      string
	rs       *taskstest.Server
	rdb      *redis.Client
	redisOpt asynq.RedisConnOpt
	sandbox  *cmpSandbox
	endpoint string
	run      string // makes this run's order numbers unique
	scale    float64
	rounds   int // processing rounds per case
	machine  string
	started  time.Time
	load     string // /proc/loadavg when the comparison started

	// perOrder holds Redis commands per order (orderworker, naive) by
	// part: "enqueue" and each processing case's name.
	perOrder map[string][2]float64

	mu      sync.Mutex
	results map[string]cmpResult
	order   []string
}

func newCmpEnv(b *testing.B) *cmpEnv {
	e := &cmpEnv{dir: b.TempDir(), scale: 1, rounds: 3, results: map[string]cmpResult{}, started: time.Now(),
		load: cmpLoadAvg(), perOrder: map[string][2]float64{}}
	if s := os.Getenv("ORDERWORKER_TEST_COMPARE_SCALE"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 {
			b.Fatalf("ORDERWORKER_TEST_COMPARE_SCALE=%q: want a positive number", s)
		}
		e.scale = v
	}
	if s := os.Getenv("ORDERWORKER_TEST_COMPARE_ROUNDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("ORDERWORKER_TEST_COMPARE_ROUNDS=%q: want a positive integer", s)
		}
		e.rounds = v
	}
	e.bins = cmpBuild(b, e.dir)
	// ORDERWORKER_TEST_COMPARE_REDIS_ARGS: more redis-server arguments, such
	// as the compose file's "--hash-max-listpack-value 1024".
	var ropts *taskstest.Options
	if s := strings.Fields(os.Getenv("ORDERWORKER_TEST_COMPARE_REDIS_ARGS")); len(s) > 0 {
		ropts = &taskstest.Options{Args: s}
	}
	e.rs = taskstest.StartRedis(b, ropts)
	e.rdb = e.rs.Client(b)
	opt, err := asynq.ParseRedisURI(e.rs.URL())
	if err != nil {
		b.Fatal(err)
	}
	e.redisOpt = opt
	key := "T" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	secret := strings.ReplaceAll(uuid.NewString(), "-", "")
	e.sandbox = newCmpSandbox(key, secret)
	srv := httptest.NewServer(e.sandbox)
	b.Cleanup(srv.Close)
	e.endpoint = srv.URL
	e.run = strconv.FormatInt(time.Now().UnixNano()%1_000_000_000, 36)
	e.machine = cmpMachine(context.Background(), e.rdb)
	return e
}

// once runs measure the first time b's name is seen and returns the
// stored result after that, so a benchmark the framework calls again (it
// does when a body took under -benchtime) reports without measuring twice.
func (e *cmpEnv) once(b *testing.B, measure func() cmpResult) cmpResult {
	e.mu.Lock()
	r, ok := e.results[b.Name()]
	e.mu.Unlock()
	if ok {
		return r
	}
	r = measure()
	e.mu.Lock()
	e.results[b.Name()] = r
	e.order = append(e.order, b.Name())
	e.mu.Unlock()
	return r
}

// cmpResult is what one sub-benchmark measured: metrics to report and
// rows for the table.
type cmpResult struct {
	metrics []cmpMetric
	rows    [][4]string // what, orderworker, naive, ratio
	details []string
}

type cmpMetric struct {
	v    float64
	unit string
}

func (r *cmpResult) metric(v float64, unit string) { r.metrics = append(r.metrics, cmpMetric{v, unit}) }
func (r *cmpResult) row(what, project, naive, ratio string) {
	r.rows = append(r.rows, [4]string{what, project, naive, ratio})
}

func (r cmpResult) report(b *testing.B) {
	b.ReportMetric(0, "ns/op") // one pass per run: ns/op means nothing here
	for _, m := range r.metrics {
		b.ReportMetric(m.v, m.unit)
	}
}

// flush empties the benchmark's Redis database (no worker runs then).
func (e *cmpEnv) flush(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	if err := e.rdb.FlushDB(ctx).Err(); err != nil {
		b.Fatalf("flush redis: %v", err)
	}
}

func (e *cmpEnv) stats(b *testing.B) cmpStats {
	b.Helper()
	s, err := cmpCommandStats(context.Background(), e.rdb)
	if err != nil {
		b.Fatalf("INFO commandstats: %v", err)
	}
	return s
}

// cmpParams are the Tencent params of the i-th order.
func cmpParams(i int) json.RawMessage {
	p, _ := json.Marshal(map[string]any{
		"CustomerId": "Bench" + strconv.Itoa(i%500), "ItemId": "D-FireInsurance2020",
		"ItemVNO": "FireBusiness", "ItemNum": 1 + i%5,
	})
	return p
}

// cmpPayload is the order:submit task payload of the README.
func cmpPayload(orderNo string, i int) []byte {
	p, _ := json.Marshal(struct {
		Provider string          `json:"provider"`
		OrderNo  string          `json:"order_no"`
		Params   json.RawMessage `json:"params"`
	}{"tencent", orderNo, cmpParams(i)})
	return p
}

func (e *cmpEnv) orderNos(tag string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("CMP%s%s%06d", e.run, tag, i)
	}
	return out
}

// enqueueFile writes the orders one per line for the enqueue CLI.
func (e *cmpEnv) enqueueFile(b *testing.B, name string, orderNos []string) string {
	b.Helper()
	var buf []byte
	for i, no := range orderNos {
		buf = append(buf, cmpPayload(no, i)...)
		buf = append(buf, '\n')
	}
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// enqueueCLI runs the enqueue CLI on file and returns how long it took;
// it fails the benchmark unless every order was accepted.
func (e *cmpEnv) enqueueCLI(b *testing.B, file string, want int) time.Duration {
	b.Helper()
	out, err := os.Create(file + ".out")
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	var stderr strings.Builder
	cmd := exec.Command(e.bins.enqueue, file)
	cmd.Env = append(cmpBaseEnv(), "REDIS_URL="+e.rs.URL())
	cmd.Stdout, cmd.Stderr = out, &stderr
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		b.Fatalf("enqueue %s: %v\n%s", filepath.Base(file), err, stderr.String())
	}
	data, _ := os.ReadFile(out.Name())
	if n := strings.Count(string(data), "\n"); n != want {
		b.Fatalf("enqueue printed %d lines for %d orders\n%s", n, want, stderr.String())
	}
	return elapsed
}

// enqueueAsynq enqueues the orders as raw order:submit tasks through
// asynq's client from the given number of goroutines.
func (e *cmpEnv) enqueueAsynq(b *testing.B, orderNos []string, producers int) time.Duration {
	b.Helper()
	client := asynq.NewClient(e.redisOpt)
	defer client.Close()
	tasks := make([]*asynq.Task, len(orderNos))
	for i, no := range orderNos {
		tasks[i] = asynq.NewTask("order:submit", cmpPayload(no, i))
	}
	start := time.Now()
	if producers == 1 {
		// One goroutine: this one, no hand-off per order.
		for _, t := range tasks {
			if _, err := client.Enqueue(t, asynq.Queue("orders")); err != nil {
				b.Fatalf("asynq enqueue: %v", err)
			}
		}
		return time.Since(start)
	}
	next := make(chan *asynq.Task)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range producers {
		wg.Go(func() {
			for t := range next {
				if _, err := client.Enqueue(t, asynq.Queue("orders")); err != nil {
					mu.Lock()
					firstErr = cmpFirst(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, t := range tasks {
		next <- t
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		b.Fatalf("asynq enqueue: %v", firstErr)
	}
	return elapsed
}

// enqueueGo enqueues the orders through the project's Go Enqueuer: one
// Enqueue call per order from the given number of goroutines, or (batch)
// EnqueueBatch in batches of 256 from one.
func (e *cmpEnv) enqueueGo(b *testing.B, orderNos []string, batch bool, producers int) time.Duration {
	b.Helper()
	client := asynq.NewClient(e.redisOpt)
	defer client.Close()
	// The Redis client as the project's commands make it (RESP2).
	rdb := tasks.RESP2(e.redisOpt).MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	enq := tasks.NewEnqueuer(client, tasks.NewLedger(rdb), registry.Validators("enqueue only"), nil)
	payloads := make([][]byte, len(orderNos))
	for i, no := range orderNos {
		payloads[i] = cmpPayload(no, i)
	}
	ctx := context.Background()
	start := time.Now()
	if batch {
		for i := 0; i < len(payloads); i += 256 {
			for _, r := range enq.EnqueueBatch(ctx, payloads[i:min(i+256, len(payloads))]) {
				if r.Err != nil || r.Status != tasks.Enqueued {
					b.Fatalf("EnqueueBatch: %+v, %v", r.EnqueueResult, r.Err)
				}
			}
		}
	} else if producers == 1 {
		// One goroutine: this one, no hand-off per order.
		for _, p := range payloads {
			if r, err := enq.Enqueue(ctx, p); err != nil || r.Status != tasks.Enqueued {
				b.Fatalf("Enqueue: %+v, %v", r, err)
			}
		}
	} else {
		next := make(chan []byte)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		for range producers {
			wg.Go(func() {
				for p := range next {
					if r, err := enq.Enqueue(ctx, p); err != nil || r.Status != tasks.Enqueued {
						mu.Lock()
						firstErr = cmpFirst(firstErr, fmt.Errorf("%+v, %v", r, err))
						mu.Unlock()
					}
				}
			})
		}
		for _, p := range payloads {
			next <- p
		}
		close(next)
		wg.Wait()
		if firstErr != nil {
			b.Fatalf("Enqueue: %v", firstErr)
		}
	}
	return time.Since(start)
}

func cmpFirst(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// projectEnv is the project worker's environment.
func (e *cmpEnv) projectEnv(concurrency int, admin string) []string {
	env := append(cmpBaseEnv(),
		"REDIS_URL="+e.rs.URL(),
		"TENCENT_ENDPOINT="+e.endpoint,
		"TENCENT_APP_KEY="+e.sandbox.key,
		"TENCENT_APP_SECRET="+e.sandbox.secret,
		"ORDERWORKER_CONCURRENCY="+strconv.Itoa(concurrency),
		"ORDERWORKER_ADMIN_ADDR="+admin,
		"ORDERWORKER_SHUTDOWN_TIMEOUT=10s",
		"ORDERWORKER_LOG_FORMAT=json",
	)
	return append(env, cmpWorkerExtraEnv()...)
}

// naiveEnv is the naive worker's environment.
func (e *cmpEnv) naiveEnv(concurrency int) []string {
	return append(cmpBaseEnv(),
		"REDIS_URL="+e.rs.URL(),
		"TENCENT_ENDPOINT="+e.endpoint,
		"TENCENT_APP_KEY="+e.sandbox.key,
		"TENCENT_APP_SECRET="+e.sandbox.secret,
		"ORDERWORKER_CONCURRENCY="+strconv.Itoa(concurrency),
	)
}

// startWorker starts the project worker (project true) or the naive one.
func (e *cmpEnv) startWorker(b *testing.B, project bool, concurrency int, tag string) (p *cmpProc, ready func() bool) {
	b.Helper()
	if project {
		admin := cmpFreeAddr(b)
		p = cmpStart(b, "worker", e.bins.worker, filepath.Join(e.dir, "worker-"+tag+".log"), e.projectEnv(concurrency, admin))
		return p, cmpReadyz(admin)
	}
	p = cmpStart(b, "naiveworker", e.bins.naive, filepath.Join(e.dir, "naive-"+tag+".log"), e.naiveEnv(concurrency))
	return p, p.logSays("naiveworker: ready")
}

// cmpRun is one worker's processing run.
type cmpRun struct {
	orders  int
	created int           // create calls when the run ended
	startup time.Duration // process start → first create call
	steady  time.Duration // first → last create call
	total   time.Duration // process start → last create call
	cmds    cmpStats
	peak    int64         // VmHWM, bytes
	cpu     time.Duration // the worker process's CPU time
	rcpu    time.Duration // redis-server's CPU time during the run
	reads   int64         // redis-server's reads of client sockets during the run (round trips)
	usec    cmpStats      // Redis microseconds by command during the run
	note    string
}

func (r cmpRun) rate() float64 {
	if r.steady <= 0 {
		return 0
	}
	return float64(r.created) / r.steady.Seconds()
}

func (r cmpRun) readsPerOrder() float64 {
	if r.orders == 0 {
		return 0
	}
	return float64(r.reads) / float64(r.orders)
}

func (r cmpRun) cmdsPerOrder() float64 {
	if r.orders == 0 {
		return 0
	}
	return float64(r.cmds.total()) / float64(r.orders)
}

// processOnce queues c.orders orders, starts one worker and waits until
// the sandbox has had a create call for each.
func (e *cmpEnv) processOnce(b *testing.B, project bool, c cmpCase) cmpRun {
	b.Helper()
	kind, tag := "naive", "N"
	if project {
		kind, tag = "project", "P"
	}
	tag += strings.ReplaceAll(c.name, "_", "")
	e.flush(b)
	nos := e.orderNos(tag, c.orders)
	if project {
		e.enqueueCLI(b, e.enqueueFile(b, "orders-"+tag+".jsonl", nos), len(nos))
	} else {
		e.enqueueAsynq(b, nos, 4)
	}
	e.sandbox.reset(c.latency, c.orders, false)
	before := e.stats(b)
	usecBefore, _ := cmpCommandUsec(context.Background(), e.rdb)
	redisBefore := cmpRedisCPU(e.rdb)
	readsBefore := cmpRedisReads(e.rdb)
	p, _ := e.startWorker(b, project, c.concurrency, tag)
	deadline := time.Now().Add(cmpRunTimeout)
	err := p.waitUntil(cmpRunTimeout, "done", func() bool { return e.sandbox.doneAt.Load() != 0 })
	first, last := cmpUnix(e.sandbox.first.Load()), cmpUnix(e.sandbox.doneAt.Load())
	stillMissing := func() int { m, _, _ := cmpCheckOrders(e.sandbox.current(), nos); return m }
	if err == nil && stillMissing() > 0 {
		// A failed create call counts as a call too: wait until every
		// order exists (a retried one comes back after asynq's backoff).
		err = p.waitUntil(time.Until(deadline), "done", func() bool { return stillMissing() == 0 })
		last = time.Now()
	}
	if err != nil {
		b.Errorf("%s %s: %v", kind, c.name, err)
		last = time.Now()
	}
	run := cmpRun{orders: c.orders, created: c.orders - stillMissing()}
	if !first.IsZero() {
		run.startup = first.Sub(p.started)
		run.steady = last.Sub(first)
		run.total = last.Sub(p.started)
	}
	if peak, err := p.peakRSS(); err == nil {
		run.peak = peak
	} else {
		b.Logf("%s: peak RSS: %v", kind, err)
	}
	if cpu, err := p.cpuTime(); err == nil {
		run.cpu = cpu
	}
	run.rcpu = cmpRedisCPU(e.rdb) - redisBefore
	run.reads = cmpRedisReads(e.rdb) - readsBefore
	if err := p.stop(30 * time.Second); err != nil {
		b.Errorf("%s worker after SIGTERM: %v\n%s", kind, err, p.tail(20))
	}
	run.cmds = cmpDelta(before, e.stats(b))
	if after, err := cmpCommandUsec(context.Background(), e.rdb); err == nil {
		run.usec = cmpDelta(usecBefore, after)
		delete(run.usec, "info")
	}

	missing, dupes, total := cmpCheckOrders(e.sandbox.current(), nos)
	if missing > 0 || dupes > 0 || total != len(nos) {
		b.Errorf("%s %s: the sandbox holds %d orders for %d order numbers: %d missing, %d with more than one",
			kind, c.name, total, len(nos), missing, dupes)
	}
	insp := asynq.NewInspector(e.redisOpt)
	defer insp.Close()
	if qi, err := insp.GetQueueInfo("orders"); err == nil && (qi.Pending+qi.Active+qi.Scheduled+qi.Retry+qi.Archived) > 0 {
		run.note = fmt.Sprintf("left in the queue: pending %d, active %d, scheduled %d, retry %d, archived %d",
			qi.Pending, qi.Active, qi.Scheduled, qi.Retry, qi.Archived)
		b.Logf("%s %s: %s", kind, c.name, run.note)
	}
	b.Logf("%-7s %-12s %6d orders in %s (startup %s): %s orders/s, %.1f cmds/order, %.2f round trips/order, peak RSS %.0f MB, CPU per order: worker %s, redis-server %s",
		kind, c.name, run.created, run.steady.Round(time.Millisecond), run.startup.Round(time.Millisecond),
		cmpNum(run.rate(), 0), run.cmdsPerOrder(), run.readsPerOrder(), float64(run.peak)/(1<<20),
		(run.cpu / time.Duration(max(run.orders, 1))).Round(time.Microsecond), (run.rcpu / time.Duration(max(run.orders, 1))).Round(time.Microsecond))
	return run
}

// cmpMedianRun is the run with the median rate (the lower middle one of
// an even count).
func cmpMedianRun(runs []cmpRun) cmpRun {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b cmpRun) int { return cmp.Compare(a.rate(), b.rate()) })
	return s[(len(s)-1)/2]
}

// cmpEnqueueRounds is how many alternating rounds measure one call per
// order.
const cmpEnqueueRounds = 3

// cmpList prints figures for a log line.
func cmpList(v []float64) string {
	parts := make([]string, len(v))
	for i, f := range v {
		if f < 10 {
			parts[i] = fmt.Sprintf("%.2f", f)
		} else {
			parts[i] = cmpNum(f, 0)
		}
	}
	return strings.Join(parts, ", ")
}

// cmpMedian is the median of v (0 for none).
func cmpMedian(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (e *cmpEnv) processing(b *testing.B, c cmpCase) cmpResult {
	// Rounds alternate which worker goes first, so that a change of load
	// on the shared machine weighs on both alike; each side's figures are
	// its median-rate run, the ratio the median of the rounds' ratios.
	var prs, nvs []cmpRun
	var ratios []float64
	for i := range e.rounds {
		var pr, nv cmpRun
		if i%2 == 0 {
			pr = e.processOnce(b, true, c)
			nv = e.processOnce(b, false, c)
		} else {
			nv = e.processOnce(b, false, c)
			pr = e.processOnce(b, true, c)
		}
		prs, nvs = append(prs, pr), append(nvs, nv)
		if nv.rate() > 0 {
			ratios = append(ratios, pr.rate()/nv.rate())
		}
	}
	pr, nv := cmpMedianRun(prs), cmpMedianRun(nvs)
	e.mu.Lock()
	e.perOrder[c.name] = [2]float64{pr.cmdsPerOrder(), nv.cmdsPerOrder()}
	e.mu.Unlock()
	var r cmpResult
	ratio := cmpMedian(ratios)
	if len(ratios) > 1 {
		parts := make([]string, len(ratios))
		for i, v := range ratios {
			parts[i] = fmt.Sprintf("%.2f", v)
		}
		r.details = append(r.details, fmt.Sprintf("%s: ratio by round: %s (median %.2f)", c.name, strings.Join(parts, ", "), ratio))
	}
	r.metric(pr.rate(), "project_orders/s")
	r.metric(nv.rate(), "naive_orders/s")
	r.metric(ratio, "ratio")
	r.metric(pr.cmdsPerOrder(), "project_cmds/order")
	r.metric(nv.cmdsPerOrder(), "naive_cmds/order")
	r.metric(float64(pr.startup.Milliseconds()), "project_startup_ms")
	r.metric(float64(nv.startup.Milliseconds()), "naive_startup_ms")
	what := fmt.Sprintf("processing, %s (%s orders)", c.title, cmpNum(float64(c.orders), 0))
	if c.latency > 0 {
		little := float64(c.concurrency) / c.latency.Seconds()
		r.metric(little, "little_orders/s")
		r.metric(pr.rate()/little, "project_of_little")
		r.metric(nv.rate()/little, "naive_of_little")
		r.row(what+"; concurrency ÷ latency = "+cmpNum(little, 0)+"/s",
			fmt.Sprintf("%s orders/s (%.2f of it)", cmpNum(pr.rate(), 0), pr.rate()/little),
			fmt.Sprintf("%s/s (%.2f)", cmpNum(nv.rate(), 0), nv.rate()/little),
			fmt.Sprintf("%.2f", ratio))
	} else {
		r.row(what, cmpNum(pr.rate(), 0)+" orders/s", cmpNum(nv.rate(), 0)+"/s", fmt.Sprintf("%.2f", ratio))
	}
	r.row("  Redis commands per order, processing", fmt.Sprintf("%.1f", pr.cmdsPerOrder()), fmt.Sprintf("%.1f", nv.cmdsPerOrder()),
		fmt.Sprintf("%.1f×", pr.cmdsPerOrder()/max(nv.cmdsPerOrder(), 1e-9)))
	r.metric(pr.readsPerOrder(), "project_round_trips/order")
	r.metric(nv.readsPerOrder(), "naive_round_trips/order")
	r.row("  Redis round trips per order, processing (reads of client sockets)", fmt.Sprintf("%.2f", pr.readsPerOrder()), fmt.Sprintf("%.2f", nv.readsPerOrder()),
		fmt.Sprintf("%.1f×", pr.readsPerOrder()/max(nv.readsPerOrder(), 1e-9)))
	r.row("  start → first create call; with it, start → last", fmt.Sprintf("%d ms; %s orders/s", pr.startup.Milliseconds(), cmpNum(float64(pr.created)/pr.total.Seconds(), 0)),
		fmt.Sprintf("%d ms; %s/s", nv.startup.Milliseconds(), cmpNum(float64(nv.created)/nv.total.Seconds(), 0)), "")
	if c.concurrency >= 500 {
		r.metric(float64(pr.peak)/(1<<20), "project_peak_RSS_MB")
		r.metric(float64(nv.peak)/(1<<20), "naive_peak_RSS_MB")
		r.row("  worker peak RSS (VmHWM)", fmt.Sprintf("%.0f MB", float64(pr.peak)/(1<<20)), fmt.Sprintf("%.0f MB", float64(nv.peak)/(1<<20)), "")
	}
	r.details = append(r.details,
		fmt.Sprintf("%s: orderworker per order: %s", c.name, pr.cmds.perUnit(float64(pr.orders))),
		fmt.Sprintf("%s: naive per order:       %s", c.name, nv.cmds.perUnit(float64(nv.orders))),
		fmt.Sprintf("%s: orderworker Redis µs per order: %s", c.name, pr.usec.perUnit(float64(pr.orders))),
		fmt.Sprintf("%s: naive Redis µs per order:       %s", c.name, nv.usec.perUnit(float64(nv.orders))))
	for _, n := range []struct {
		who  string
		note string
	}{{"orderworker", pr.note}, {"naive", nv.note}} {
		if n.note != "" {
			r.details = append(r.details, fmt.Sprintf("%s: %s %s", c.name, n.who, n.note))
		}
	}
	return r
}

func (e *cmpEnv) enqueue(b *testing.B) cmpResult {
	n := max(100, int(cmpEnqueueOrders*e.scale))

	e.flush(b)
	file := e.enqueueFile(b, "enqueue.jsonl", e.orderNos("EC", n))
	before := e.stats(b)
	cli := e.enqueueCLI(b, file, n)
	cliCmds := cmpDelta(before, e.stats(b))

	e.flush(b)
	nos := e.orderNos("EA", n)
	before = e.stats(b)
	raw := e.enqueueAsynq(b, nos, 1)
	rawCmds := cmpDelta(before, e.stats(b))
	e.flush(b)
	goBatch := e.enqueueGo(b, e.orderNos("EB", n), true, 1)
	e.flush(b)
	goBatchRate := float64(n) / goBatch.Seconds()
	// One call per order, from one goroutine and from eight each way:
	// rounds that alternate which side goes first, each side's median
	// rate, and the median of the rounds' ratios (this machine's load
	// drifts within seconds).
	var rawRates, goOneRates, oneRatios, raw8Rates, go8Rates, ratios8 []float64
	for k := range cmpEnqueueRounds {
		pair := func(producers int) (float64, float64) {
			var mine, theirs time.Duration
			asynqRun := func() {
				theirs = e.enqueueAsynq(b, e.orderNos(fmt.Sprintf("A%d-%d-", producers, k), n), producers)
				e.flush(b)
			}
			goRun := func() {
				mine = e.enqueueGo(b, e.orderNos(fmt.Sprintf("G%d-%d-", producers, k), n), false, producers)
				e.flush(b)
			}
			if k%2 == 0 {
				asynqRun()
				goRun()
			} else {
				goRun()
				asynqRun()
			}
			return float64(n) / mine.Seconds(), float64(n) / theirs.Seconds()
		}
		g1, a1 := pair(1)
		g8, a8 := pair(8)
		goOneRates, rawRates, oneRatios = append(goOneRates, g1), append(rawRates, a1), append(oneRatios, g1/a1)
		go8Rates, raw8Rates, ratios8 = append(go8Rates, g8), append(raw8Rates, a8), append(ratios8, g8/a8)
	}
	goOneRate, raw8Rate, go8Rate := cmpMedian(goOneRates), cmpMedian(raw8Rates), cmpMedian(go8Rates)
	b.Logf("one call per order, %d rounds: one goroutine %s/s vs asynq %s/s, ratios %s; eight goroutines %s/s vs asynq %s/s, ratios %s",
		cmpEnqueueRounds, cmpList(goOneRates), cmpList(rawRates), cmpList(oneRatios), cmpList(go8Rates), cmpList(raw8Rates), cmpList(ratios8))

	cliRate, rawRate := float64(n)/cli.Seconds(), float64(n)/raw.Seconds()
	cliPer, rawPer := float64(cliCmds.total())/float64(n), float64(rawCmds.total())/float64(n)
	b.Logf("enqueue %d orders: CLI %s (%s/s, %.1f cmds/order); asynq client %s (%s/s, %.1f cmds/order)",
		n, cli.Round(time.Millisecond), cmpNum(cliRate, 0), cliPer, raw.Round(time.Millisecond), cmpNum(rawRate, 0), rawPer)

	e.mu.Lock()
	e.perOrder["enqueue"] = [2]float64{cliPer, rawPer}
	e.mu.Unlock()
	var r cmpResult
	r.metric(cliRate, "cli_orders/s")
	r.metric(rawRate, "asynq_orders/s")
	r.metric(cliRate/rawRate, "ratio")
	r.metric(cliPer, "cli_cmds/order")
	r.metric(rawPer, "asynq_cmds/order")
	r.row(fmt.Sprintf("enqueue, %s orders, one producer (`enqueue` CLI on a file vs asynq's Client)", cmpNum(float64(n), 0)),
		cmpNum(cliRate, 0)+" orders/s", cmpNum(rawRate, 0)+"/s", fmt.Sprintf("%.2f", cliRate/rawRate))
	r.metric(goBatchRate/rawRate, "go_batch_ratio")
	r.metric(cmpMedian(oneRatios), "go_one_ratio")
	r.row("enqueue, one goroutine: Go `Enqueuer.EnqueueBatch` (256 a batch) vs asynq's Client",
		cmpNum(goBatchRate, 0)+" orders/s", cmpNum(rawRate, 0)+"/s", fmt.Sprintf("%.2f", goBatchRate/rawRate))
	r.row(fmt.Sprintf("enqueue, one goroutine: Go `Enqueuer.Enqueue` (one call per order) vs asynq's Client, median of %d alternating rounds", cmpEnqueueRounds),
		cmpNum(goOneRate, 0)+" orders/s", cmpNum(cmpMedian(rawRates), 0)+"/s", fmt.Sprintf("%.2f", cmpMedian(oneRatios)))
	r.metric(cmpMedian(ratios8), "go_8_ratio")
	r.row(fmt.Sprintf("enqueue, 8 goroutines each: Go `Enqueuer.Enqueue` (one call per order) vs asynq's Client, median of %d alternating rounds", cmpEnqueueRounds),
		cmpNum(go8Rate, 0)+" orders/s", cmpNum(raw8Rate, 0)+"/s", fmt.Sprintf("%.2f", cmpMedian(ratios8)))
	r.row("  Redis commands per order, enqueue", fmt.Sprintf("%.1f", cliPer), fmt.Sprintf("%.1f", rawPer),
		fmt.Sprintf("%.1f×", cliPer/max(rawPer, 1e-9)))
	r.details = append(r.details,
		"enqueue: orderworker CLI per order: "+cliCmds.perUnit(float64(n)),
		"enqueue: asynq Client per order:    "+rawCmds.perUnit(float64(n)))
	return r
}

// cmpIdleRun is one worker's idle figures.
type cmpIdleRun struct {
	cmdsPerSec  float64
	window      time.Duration
	cmds        cmpStats
	pickups     []time.Duration // sorted
	early, lost int
}

// idleOnce starts a worker on an empty queue, counts its commands while
// it has nothing to do, then feeds it one order at a time.
func (e *cmpEnv) idleOnce(b *testing.B, project bool) cmpIdleRun {
	b.Helper()
	kind, tag := "naive", "IN"
	if project {
		kind, tag = "project", "IP"
	}
	e.flush(b)
	e.sandbox.reset(0, 0, true)
	p, ready := e.startWorker(b, project, 50, "idle-"+kind)
	if err := p.waitUntil(time.Minute, "ready", ready); err != nil {
		b.Fatalf("%s: %v", kind, err)
	}
	time.Sleep(2 * time.Second) // let start-up work settle

	var run cmpIdleRun
	window := cmpIdleWindow
	if e.scale < 1 {
		window = max(2*time.Second, time.Duration(float64(window)*e.scale))
	}
	before := e.stats(b)
	t0 := time.Now()
	time.Sleep(window)
	run.cmds = cmpDelta(before, e.stats(b))
	run.window = time.Since(t0)
	run.cmdsPerSec = float64(run.cmds.total()) / run.window.Seconds()

	client := asynq.NewClient(e.redisOpt)
	defer client.Close()
	rng := rand.New(rand.NewPCG(8, 6))
	n := max(5, int(cmpIdleOrders*e.scale))
	for i, no := range e.orderNos(tag, n) {
		var returned time.Time
		if project {
			var stderr strings.Builder
			cmd := exec.Command(e.bins.enqueue, "-provider", "tencent", "-order-no", no, "-params", string(cmpParams(i)))
			cmd.Env = append(cmpBaseEnv(), "REDIS_URL="+e.rs.URL())
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				b.Fatalf("enqueue %s: %v\n%s", no, err, stderr.String())
			}
			returned = time.Now()
		} else {
			if _, err := client.Enqueue(asynq.NewTask("order:submit", cmpPayload(no, i)), asynq.Queue("orders")); err != nil {
				b.Fatalf("asynq enqueue %s: %v", no, err)
			}
			returned = time.Now()
		}
		var at time.Time
		for deadline := returned.Add(10 * time.Second); ; {
			var ok bool
			if at, ok = e.sandbox.arrival(no); ok || time.Now().After(deadline) || !p.alive() {
				break
			}
			time.Sleep(time.Millisecond)
		}
		switch {
		case at.IsZero():
			run.lost++
		case at.Before(returned):
			run.early++ // the worker was faster than the producer's exit
			run.pickups = append(run.pickups, 0)
		default:
			run.pickups = append(run.pickups, at.Sub(returned))
		}
		time.Sleep(100*time.Millisecond + time.Duration(rng.Int64N(int64(600*time.Millisecond))))
	}
	if err := p.stop(30 * time.Second); err != nil {
		b.Errorf("%s worker after SIGTERM: %v", kind, err)
	}
	if run.lost > 0 {
		b.Errorf("%s: %d of %d orders did not reach the sandbox within 10s", kind, run.lost, n)
	}
	slices.Sort(run.pickups)
	b.Logf("%-7s idle: %.1f Redis commands/s over %s; pickup p50 %s, p90 %s, max %s (%d orders)",
		kind, run.cmdsPerSec, run.window.Round(time.Millisecond), cmpPercentile(run.pickups, 0.5).Round(time.Millisecond),
		cmpPercentile(run.pickups, 0.9).Round(time.Millisecond), cmpPercentile(run.pickups, 1).Round(time.Millisecond), n)
	return run
}

func (e *cmpEnv) idle(b *testing.B) cmpResult {
	pr := e.idleOnce(b, true)
	nv := e.idleOnce(b, false)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	var r cmpResult
	p50, p90 := cmpPercentile(pr.pickups, 0.5), cmpPercentile(pr.pickups, 0.9)
	n50, n90 := cmpPercentile(nv.pickups, 0.5), cmpPercentile(nv.pickups, 0.9)
	r.metric(ms(p50), "project_pickup_p50_ms")
	r.metric(ms(p90), "project_pickup_p90_ms")
	r.metric(ms(n50), "naive_pickup_p50_ms")
	r.metric(ms(n90), "naive_pickup_p90_ms")
	r.metric(pr.cmdsPerSec, "project_idle_cmds/s")
	r.metric(nv.cmdsPerSec, "naive_idle_cmds/s")
	r.row(fmt.Sprintf("idle pickup, %d orders one at a time: producer returns → create call reaches the sandbox (the default ORDERWORKER_POLL_INTERVAL, %s)", len(pr.pickups), tasks.DefaultPollInterval),
		fmt.Sprintf("p50 %.0f ms, p90 %.0f ms", ms(p50), ms(p90)),
		fmt.Sprintf("p50 %.0f ms, p90 %.0f ms", ms(n50), ms(n90)), "")
	r.row(fmt.Sprintf("idle worker, Redis commands per second (over %.0f s)", pr.window.Seconds()),
		fmt.Sprintf("%.1f", pr.cmdsPerSec), fmt.Sprintf("%.1f", nv.cmdsPerSec), "")
	r.details = append(r.details,
		"idle: orderworker per second: "+pr.cmds.perUnit(pr.window.Seconds()),
		"idle: naive per second:       "+nv.cmds.perUnit(nv.window.Seconds()))
	if pr.early > 0 {
		r.details = append(r.details, fmt.Sprintf("idle: %d orderworker orders reached the sandbox before the enqueue process had exited (counted as 0)", pr.early))
	}
	return r
}

// printTable prints every result as one Markdown table, for BENCHMARKS.md.
func (e *cmpEnv) printTable() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.order) == 0 {
		return
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nCompared with a naive asynq worker (%s)\n", e.machine)
	fmt.Fprintf(&sb, "\n| | orderworker | naive asynq worker | ratio |\n|---|---|---|---|\n")
	var details []string
	for _, name := range e.order {
		r := e.results[name]
		for _, row := range r.rows {
			fmt.Fprintf(&sb, "| %s | %s | %s | %s |\n", row[0], row[1], row[2], row[3])
		}
		details = append(details, r.details...)
	}
	enq, ok1 := e.perOrder["enqueue"]
	proc, ok2 := e.perOrder["instant_c50"]
	if ok1 && ok2 {
		p, n := enq[0]+proc[0], enq[1]+proc[1]
		fmt.Fprintf(&sb, "| Redis commands per order, enqueue + processing (instant, concurrency 50) | %.1f + %.1f = %.1f | %.1f + %.1f = %.1f | %.1f× |\n",
			enq[0], proc[0], p, enq[1], proc[1], n, p/max(n, 1e-9))
	}
	fmt.Fprintf(&sb, "\nRedis commands by name (INFO commandstats calls, Lua scripts' own calls included):\n\n")
	for _, d := range details {
		fmt.Fprintf(&sb, "    %s\n", d)
	}
	fmt.Fprintf(&sb, "\nwhole comparison: %s; load average (1, 5, 15 min) at the start %s, at the end %s\n",
		time.Since(e.started).Round(time.Second), e.load, cmpLoadAvg())
	fmt.Print(sb.String())
}
