package tasks_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// What BenchmarkDurable measures, per mode and round.
const (
	durableLedgerRounds = 10   // rounds per ledger case; each runs off and auto, alternating which goes first
	durableE2ERounds    = 6    // rounds per end-to-end case, the same way
	durableOpsOne       = 500  // ledger calls per round, one goroutine (times b.N)
	durableOpsMany      = 2000 // ledger calls per round, 16 goroutines (times b.N)
	durableOrders       = 3000 // orders per end-to-end round
	durableBatch        = 256  // EnqueueBatch size, as the enqueue CLI sends
	durableMaxRepls     = 2
)

// BenchmarkDurable measures what durable writes (ledger.DurableAuto: Redis
// WAIT for every replica, in the same round trip as the write) cost against
// DurableOff, on one master with 0, 1 and 2 replicas on loopback:
//
//   - replicas=R/claim|begin|settle/g=G: the ledger call alone, from G
//     goroutines: calls per second and the mean time of one call;
//   - replicas=R/e2e: 3,000 orders enqueued with EnqueueBatch, then a
//     worker (concurrency 50, the in-memory provider answering at once)
//     until every one is paid.
//
// Each case runs in rounds, off and auto back to back, alternating which
// goes first; rates are medians over the rounds and auto/off the median of
// the rounds' own ratios. With no replica, auto has nothing to wait for:
// its auto/off ratio is the noise floor of the run. WAITs are counted on
// the master (INFO commandstats) around each measurement. The benchmark
// fails when auto issued no WAIT with a replica present, or when off (or
// auto without replicas) issued one; timings are only reported. Run it
// with -benchtime 1x (about 2 minutes).
func BenchmarkDurable(b *testing.B) {
	if os.Getenv("ORDERWORKER_TEST_REDIS_URL") != "" {
		b.Fatal("BenchmarkDurable starts its own master and replicas: unset ORDERWORKER_TEST_REDIS_URL")
	}
	d := &durableRig{master: taskstest.StartRedis(b, nil)}
	d.admin = d.master.Client(b)
	ctx := context.Background()
	// Replicas sync at once rather than after the diskless-sync delay.
	if err := d.admin.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil {
		b.Fatal(err)
	}
	var rows []durableRow
	for r := 0; r <= durableMaxRepls; r++ {
		if r > 0 {
			d.attachReplica(b)
		}
		for _, op := range []string{"claim", "begin", "settle"} {
			for _, g := range []int{1, 16} {
				var row durableRow // the last run's, when the framework runs a case again
				b.Run(fmt.Sprintf("replicas=%d/%s/g=%d", r, op, g), func(b *testing.B) {
					row = d.ledgerOps(b, op, g)
				})
				if row.unit != "" {
					rows = append(rows, row)
				}
			}
		}
		var e2e []durableRow
		b.Run(fmt.Sprintf("replicas=%d/e2e", r), func(b *testing.B) {
			e2e = d.endToEnd(b)
		})
		rows = append(rows, e2e...)
	}
	// Two tables, each within the ten lines the testing package prints of
	// a benchmark's log.
	var ops, orders []durableRow
	for _, r := range rows {
		if r.unit == "ops/s" {
			ops = append(ops, r)
		} else {
			orders = append(orders, r)
		}
	}
	for _, t := range []struct {
		name, title string
		rows        []durableRow
	}{
		{"table/ledger", fmt.Sprintf("ledger calls per second, median of %d rounds", durableLedgerRounds), ops},
		{"table/e2e", fmt.Sprintf("orders per second, median of %d rounds of %d orders", durableE2ERounds, durableOrders), orders},
	} {
		if len(t.rows) > 0 {
			b.Run(t.name, func(b *testing.B) {
				b.ReportMetric(0, "ns/op")
				b.Logf("%s:\n%s", t.title, durableTable(t.rows))
			})
		}
	}
}

// durableRig is a master and the replicas attached to it so far.
type durableRig struct {
	master   *taskstest.Server
	admin    *redis.Client
	replicas []*taskstest.Server
}

// attachReplica starts a redis-server, makes it a replica of the master and
// waits until the master reports it online and its link is up.
func (d *durableRig) attachReplica(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	// A small initial sync.
	if err := d.admin.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	d.replicas = append(d.replicas, d.master.AttachReplica(b))
}

// infoField is a field of an INFO reply, "" when absent.
func infoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// waits is how many WAIT commands the master has run.
func (d *durableRig) waits(b *testing.B) int64 {
	b.Helper()
	info, err := d.admin.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	v := infoField(info, "cmdstat_wait") // calls=N,usec=…
	v, _ = strings.CutPrefix(v, "calls=")
	v, _, _ = strings.Cut(v, ",")
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// reset empties the master and waits until every replica has applied it,
// so that no replication of earlier work overlaps the next measurement.
func (d *durableRig) reset(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	if err := d.admin.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	d.sync(b)
}

// sync waits until every replica has applied what the master holds.
func (d *durableRig) sync(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	if n := len(d.replicas); n > 0 {
		got, err := d.admin.Do(ctx, "WAIT", n, 10000).Int64()
		if err != nil || got < int64(n) {
			b.Fatalf("replicas in sync: %d of %d acknowledged, %v", got, n, err)
		}
	}
}

func (d *durableRig) client(b *testing.B) *redis.Client {
	b.Helper()
	opt, err := redis.ParseURL(d.master.URL())
	if err != nil {
		b.Fatal(err)
	}
	return redis.NewClient(opt)
}

var durableModes = []struct {
	name string
	mode ledger.Durability
}{{"off", ledger.DurableOff}, {"auto", ledger.DurableAuto}}

// modeOrder alternates which mode runs first, round by round.
func modeOrder(round int) []int {
	if round%2 == 0 {
		return []int{0, 1}
	}
	return []int{1, 0}
}

// durableRow is one measured case: per mode (indexed as durableModes), the
// median rate over the rounds, the median mean latency, and WAITs per unit.
type durableRow struct {
	replicas int
	name     string // "claim g=1", "e2e processing", …
	unit     string // "ops/s", "orders/s"
	rate     [2]float64
	ratio    float64    // the median of the rounds' auto/off rate ratios
	latUS    [2]float64 // 0: not measured
	waitsPer [2]float64
}

// pairedRatio is the median over the rounds of auto's rate over off's in
// the same round: the two ran back to back, so a change in the machine's
// load between rounds moves both.
func pairedRatio(rates [2][]float64) float64 {
	var rs []float64
	for i := range rates[0] {
		rs = append(rs, rates[1][i]/rates[0][i])
	}
	return median(rs)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// parallel runs f(0..n-1) from g goroutines and returns the wall time and
// the sum of the calls' own durations.
func parallel(g, n int, f func(i int) error) (wall, calls time.Duration, err error) {
	var next, sum atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				t := time.Now()
				e := f(i)
				sum.Add(int64(time.Since(t)))
				if e != nil {
					once.Do(func() { err = e })
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), time.Duration(sum.Load()), err
}

// ledgerOps measures one ledger call (claim, begin or settle) from g
// goroutines, off and auto alternating. Begin and settle run on orders
// prepared, untimed, by a DurableOff ledger.
func (d *durableRig) ledgerOps(b *testing.B, op string, g int) durableRow {
	ctx := context.Background()
	n := durableOpsOne * b.N
	if g > 1 {
		n = durableOpsMany * b.N
	}
	rdb := d.client(b)
	defer rdb.Close()
	prep := ledger.New(rdb, &ledger.Options{Durable: ledger.DurableOff})
	params := []byte(`{"item":"sku-1","qty":2}`)
	refs := make([]ledger.Ref, n)
	tokens := make([]string, n)
	var rates, lats [2][]float64
	var waits [2]int64
	for round := range durableLedgerRounds {
		for _, m := range modeOrder(round) {
			d.reset(b)
			l := ledger.New(rdb, &ledger.Options{Durable: durableModes[m].mode})
			for i := range refs {
				refs[i] = ledger.Ref{Provider: memprov.Name, OrderNo: fmt.Sprintf("L%d-%d", round, i)}
				tokens[i] = fmt.Sprintf("tok-%d-%d", round, i)
			}
			claim := func(l *ledger.Ledger) func(int) error {
				return func(i int) error {
					cr, err := l.Claim(ctx, refs[i], params, "h")
					if err == nil && !cr.Created {
						err = fmt.Errorf("claim %s: not created", refs[i])
					}
					return err
				}
			}
			begin := func(l *ledger.Ledger) func(int) error {
				return func(i int) error {
					br, err := l.Begin(ctx, refs[i], ledger.BeginArgs{Token: tokens[i]})
					if err == nil && (br.Status != ledger.Began || !br.Record.InflightMarked) {
						err = fmt.Errorf("begin %s: %+v", refs[i], br)
					}
					return err
				}
			}
			settle := func(i int) error {
				t := ledger.SetPaid("P-" + refs[i].OrderNo).WithAttempt(&ledger.Attempt{
					N: 1, At: time.Now(), DurationMS: 1, Call: "submit", Result: "ok"})
				return l.Settle(ctx, refs[i], tokens[i], t)
			}
			var f func(int) error
			switch op {
			case "claim":
				f = claim(l)
			case "begin":
				if _, _, err := parallel(16, n, claim(prep)); err != nil {
					b.Fatal(err)
				}
				f = begin(l)
			case "settle":
				if _, _, err := parallel(16, n, claim(prep)); err != nil {
					b.Fatal(err)
				}
				if _, _, err := parallel(16, n, begin(prep)); err != nil {
					b.Fatal(err)
				}
				f = settle
			}
			d.sync(b) // the preparation's replication done before the clock starts
			w0 := d.waits(b)
			wall, calls, err := parallel(g, n, f)
			if err != nil {
				b.Fatalf("%s, %s: %v", durableModes[m].name, op, err)
			}
			waits[m] += d.waits(b) - w0
			rates[m] = append(rates[m], float64(n)/wall.Seconds())
			lats[m] = append(lats[m], float64(calls.Microseconds())/float64(n))
		}
	}
	row := durableRow{replicas: len(d.replicas), name: fmt.Sprintf("%s g=%d", op, g), unit: "ops/s"}
	row.ratio = pairedRatio(rates)
	for m := range durableModes {
		row.rate[m] = median(rates[m])
		row.latUS[m] = median(lats[m])
		row.waitsPer[m] = float64(waits[m]) / float64(durableLedgerRounds*n)
	}
	d.checkWaits(b, waits)
	reportRow(b, row)
	return row
}

// checkWaits fails the benchmark when the modes did not do what they
// promise: auto waits whenever the master has replicas, off never waits,
// and nothing waits without replicas.
func (d *durableRig) checkWaits(b *testing.B, waits [2]int64) {
	b.Helper()
	if waits[0] != 0 {
		b.Fatalf("off mode issued %d WAITs", waits[0])
	}
	switch r := len(d.replicas); {
	case r > 0 && waits[1] == 0:
		b.Fatalf("auto mode issued no WAIT with %d replica(s) attached", r)
	case r == 0 && waits[1] != 0:
		b.Fatalf("auto mode issued %d WAITs with no replica", waits[1])
	}
}

func reportRow(b *testing.B, row durableRow) {
	b.ReportMetric(0, "ns/op") // the whole case's time per iteration means nothing here
	b.ReportMetric(row.rate[0], "off-"+row.unit)
	b.ReportMetric(row.rate[1], "auto-"+row.unit)
	b.ReportMetric(row.ratio, "auto/off")
	if row.latUS[0] > 0 {
		b.ReportMetric(row.latUS[0], "off-µs/op")
		b.ReportMetric(row.latUS[1], "auto-µs/op")
	}
	b.ReportMetric(row.waitsPer[1], "auto-WAITs/"+strings.TrimSuffix(row.unit, "s/s"))
}

// endToEnd enqueues durableOrders orders in batches, then runs a worker
// until every one is paid, off and auto alternating; it returns the
// enqueue and the processing rows.
func (d *durableRig) endToEnd(b *testing.B) []durableRow {
	var enq, proc [2][]float64
	var enqWaits, procWaits [2]int64
	for round := range durableE2ERounds {
		for _, m := range modeOrder(round) {
			e, p, we, wp := d.e2eRound(b, durableModes[m].mode)
			enq[m] = append(enq[m], e)
			proc[m] = append(proc[m], p)
			enqWaits[m] += we
			procWaits[m] += wp
		}
	}
	d.checkWaits(b, [2]int64{enqWaits[0] + procWaits[0], enqWaits[1] + procWaits[1]})
	r := len(d.replicas)
	en := durableRow{replicas: r, name: "e2e enqueue", unit: "orders/s"}
	pr := durableRow{replicas: r, name: "e2e processing", unit: "orders/s"}
	en.ratio, pr.ratio = pairedRatio(enq), pairedRatio(proc)
	for m := range durableModes {
		en.rate[m], pr.rate[m] = median(enq[m]), median(proc[m])
		en.waitsPer[m] = float64(enqWaits[m]) / float64(durableE2ERounds*durableOrders)
		pr.waitsPer[m] = float64(procWaits[m]) / float64(durableE2ERounds*durableOrders)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(pr.rate[0], "off-orders/s")
	b.ReportMetric(pr.rate[1], "auto-orders/s")
	b.ReportMetric(pr.ratio, "auto/off")
	b.ReportMetric(en.ratio, "enq-auto/off")
	b.ReportMetric(en.rate[0], "off-enq-orders/s")
	b.ReportMetric(en.rate[1], "auto-enq-orders/s")
	b.ReportMetric(pr.waitsPer[1]+en.waitsPer[1], "auto-WAITs/order")
	return []durableRow{en, pr}
}

// e2eRound runs one mode once: the enqueue rate, the processing rate, and
// the WAITs the master ran during each.
func (d *durableRig) e2eRound(b *testing.B, mode ledger.Durability) (enqRate, procRate float64, enqWaits, procWaits int64) {
	ctx := context.Background()
	d.reset(b)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	backend := memprov.NewBackend("s")
	set := providers.NewSet()
	set.Add(memprov.New(backend, memprov.Options{Secret: "s"}))
	opt := asynq.RedisClientOpt{Addr: d.master.Addr}

	// The producer: its own client and ledger, as the enqueue CLI has.
	prdb := d.client(b)
	defer prdb.Close()
	client := asynq.NewClient(opt)
	defer client.Close()
	enqueuer := tasks.NewEnqueuer(client, ledger.New(prdb, &ledger.Options{Durable: mode}), set, nil)
	payloads := make([][]byte, durableOrders)
	for i := range payloads {
		payloads[i] = []byte(fmt.Sprintf(`{"provider":"mem","order_no":"D%05d","params":{"item":"sku-1","qty":2}}`, i))
	}
	w0 := d.waits(b)
	start := time.Now()
	for i := 0; i < len(payloads); i += durableBatch {
		for k, res := range enqueuer.EnqueueBatch(ctx, payloads[i:min(i+durableBatch, len(payloads))]) {
			if res.Err != nil || res.Status != tasks.Enqueued {
				b.Fatalf("order %d: %+v, %v", i+k, res.EnqueueResult, res.Err)
			}
		}
	}
	enqRate = float64(durableOrders) / time.Since(start).Seconds()
	w1 := d.waits(b)

	// The worker.
	wrdb := d.client(b)
	defer wrdb.Close()
	h := tasks.NewHandler(ledger.New(wrdb, &ledger.Options{Durable: mode}), set, &tasks.HandlerOptions{Logger: quiet})
	srv, mux := tasks.NewServer(opt, h, tasks.ServerOptions{Concurrency: 50, TaskCheckInterval: 10 * time.Millisecond, Logger: quiet})
	reader := ledger.New(d.admin, &ledger.Options{Durable: ledger.DurableOff})
	start = time.Now()
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	for {
		st, err := reader.Stats(ctx, []string{memprov.Name})
		if err != nil {
			b.Fatal(err)
		}
		if st[memprov.Name][tasks.StatePaid].Count == durableOrders {
			break
		}
		if time.Since(start) > time.Minute {
			b.Fatalf("after a minute: %+v", st[memprov.Name])
		}
		time.Sleep(2 * time.Millisecond)
	}
	procRate = float64(durableOrders) / time.Since(start).Seconds()
	srv.Shutdown()
	w2 := d.waits(b)
	if n := backend.Calls("create"); n != durableOrders {
		b.Fatalf("%d creates for %d orders", n, durableOrders)
	}
	return enqRate, procRate, w1 - w0, w2 - w1
}

// durableTable renders the rows as a table of rates, a case a line and a
// column group a replica count.
func durableTable(rows []durableRow) string {
	var names []string
	cells := map[string]map[int]durableRow{}
	units := map[string]string{}
	maxR := 0
	for _, r := range rows {
		if cells[r.name] == nil {
			names = append(names, r.name)
			cells[r.name] = map[int]durableRow{}
			units[r.name] = strings.TrimSuffix(r.unit, "/s")
		}
		cells[r.name][r.replicas] = r
		maxR = max(maxR, r.replicas)
	}
	var s strings.Builder
	fmt.Fprintf(&s, "%-24s", "")
	for r := 0; r <= maxR; r++ {
		fmt.Fprintf(&s, " | %-10s %7s %7s %8s", fmt.Sprintf("%d replicas", r), "off", "auto", "auto/off")
	}
	fmt.Fprintf(&s, " | auto WAITs per op or order\n")
	for _, name := range names {
		fmt.Fprintf(&s, "%-24s", name+" ("+units[name]+")")
		waits := ""
		for r := 0; r <= maxR; r++ {
			c, ok := cells[name][r]
			if !ok {
				fmt.Fprintf(&s, " | %-10s %7s %7s %8s", "", "-", "-", "-")
				continue
			}
			fmt.Fprintf(&s, " | %-10s %7.0f %7.0f %8.2f", "", c.rate[0], c.rate[1], c.ratio)
			if r > 0 {
				waits = fmt.Sprintf("%.3f", c.waitsPer[1])
			}
		}
		fmt.Fprintf(&s, " | %s\n", waits)
	}
	return strings.TrimSuffix(s.String(), "\n")
}
