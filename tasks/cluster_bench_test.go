package tasks_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/tencent"
	tencentsandbox "github.com/orderworker/orderworker/providers/tencent/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// What BenchmarkClusterCommandsPerMaster runs.
const (
	clusterBenchOrders = 2000 // orders per run (times b.N)
	clusterBenchBatch  = 256  // EnqueueBatch size, as the enqueue CLI sends
)

// BenchmarkClusterCommandsPerMaster runs 2,000 Tencent orders through a
// real Redis Cluster (redis-cluster:// URL, no replicas) of 1 master, then
// of 3 masters, and reports the Redis commands each master ran per order:
// INFO commandstats deltas per node (every call counted, the commands Lua
// scripts run included, the INFO reads left out), for the enqueue (one
// producer, EnqueueBatch of 256, as the enqueue CLI sends) and for the
// processing (a worker of concurrency 20, as the worker runs by default,
// against the Tencent sandbox over loopback HTTP, until every order is
// paid). A third case runs the 3 masters with the queue orders-2, whose
// slot is on another master than the ledger's, to show the ledger's and
// asynq's shares apart. It prints two tables; nothing is asserted but
// that every order was paid, created once. Run it with
//
//	go test -run '^$' -bench ClusterCommandsPerMaster -benchtime 1x ./tasks
func BenchmarkClusterCommandsPerMaster(b *testing.B) {
	rows := make([][]clusterBenchRow, len(clusterBenchCases))
	for i, c := range clusterBenchCases {
		b.Run(c.name, func(b *testing.B) {
			rows[i] = clusterBenchRun(b, c.masters, c.queue, c.shards) // the last run's, when the framework runs a case again
		})
	}
	// Two tables, each within the ten lines the testing package prints of
	// a benchmark's log.
	for _, t := range []struct {
		name, title string
		rows        []clusterBenchRow
	}{
		{"table/default-queue", "the default queue", slices.Concat(rows[0], rows[1])},
		{"table/queue=orders-2", "the queue on the second master", rows[2]},
		{"table/shards=3", "the ledger in three shards, a queue each", rows[3]},
	} {
		if len(t.rows) > 0 {
			b.Run(t.name, func(b *testing.B) {
				b.ReportMetric(0, "ns/op")
				b.Logf("Redis commands per order on each master, %s (%d orders):\n%s", t.title, clusterBenchOrders*b.N,
					strings.TrimSuffix(clusterBenchTable(t.rows), "\n"))
			})
		}
	}
}

// clusterBenchCases: the default queue, orders, hashes ({orders}, slot
// 105) into the same first third of the slots as the ledger ({ledger},
// slot 2466); the queue orders-2 (slot 6948) lands on the second master.
// The last case shards the ledger three ways (ORDERWORKER_LEDGER_SHARDS=3):
// a shard and its queue per master.
var clusterBenchCases = []struct {
	name    string
	masters int
	queue   string
	shards  int
}{
	{"masters=1", 1, tasks.DefaultQueue, 1},
	{"masters=3", 3, tasks.DefaultQueue, 1},
	{"masters=3/queue=orders-2", 3, "orders-2", 1},
	{"masters=3/shards=3", 3, tasks.DefaultQueue, 3},
}

// clusterBenchRow is one master's share of one run.
type clusterBenchRow struct {
	masters          int
	queue            string
	node             int
	slots, holds     string
	enqueue, process float64 // commands per order
	share            float64 // of every master's commands, enqueue and processing
	top              string
}

func clusterBenchRun(b *testing.B, masters int, queue string, shards int) []clusterBenchRow {
	ctx := context.Background()
	n := clusterBenchOrders * b.N
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cl := taskstest.StartCluster(b, &taskstest.ClusterOptions{Masters: masters})
	opt, err := tasks.ParseRedisURL(cl.URL())
	if err != nil {
		b.Fatal(err)
	}
	sb := tencentsandbox.New(appKey, appSecret)
	hs := httptest.NewServer(sb)
	b.Cleanup(hs.Close)
	tc, err := tencent.New(tencent.Options{Endpoint: hs.URL, AppKey: appKey, AppSecret: providers.Secret(appSecret)})
	if err != nil {
		b.Fatal(err)
	}
	set := providers.NewSet()
	set.Add(tc)

	prodRDB := opt.MakeRedisClient().(redis.UniversalClient)
	b.Cleanup(func() { prodRDB.Close() })
	client := asynq.NewClient(opt)
	b.Cleanup(func() { client.Close() })
	enq := tasks.NewEnqueuer(client, tasks.NewShardedLedger(prodRDB, shards), set, &tasks.EnqueuerOptions{Queue: queue})
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = []byte(fmt.Sprintf(`{"provider":"tencent","order_no":"CB%d-%06d","params":{"CustomerId":"Customer100001","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":2}}`, masters, i))
	}

	b.ResetTimer()
	s0 := cl.CommandStats(b)
	for i := 0; i < n; i += clusterBenchBatch {
		for _, r := range enq.EnqueueBatch(ctx, payloads[i:min(i+clusterBenchBatch, n)]) {
			if r.Err != nil || r.Status != tasks.Enqueued {
				b.Fatalf("EnqueueBatch: %+v, %v", r.EnqueueResult, r.Err)
			}
		}
	}
	s1 := cl.CommandStats(b)

	workerRDB := opt.MakeRedisClient().(redis.UniversalClient)
	b.Cleanup(func() { workerRDB.Close() })
	l := tasks.NewShardedLedger(workerRDB, shards)
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Logger: quiet})
	srv, mux := tasks.NewServer(opt, h, tasks.ServerOptions{Queue: queue, Concurrency: 20, ShutdownTimeout: 5 * time.Second, Logger: quiet})
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	// Wait on the sandbox (no Redis command), then for the last outcomes.
	deadline := time.Now().Add(5 * time.Minute)
	for sb.Calls("ServiceCreateOrder") < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d orders created after 5 minutes", sb.Calls("ServiceCreateOrder"), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		st, err := l.Stats(ctx, []string{"tencent"})
		if err == nil && st["tencent"][tasks.StatePaid].Count == int64(n) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("not every order paid: %+v, %v", st["tencent"], err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Shutdown()
	s2 := cl.CommandStats(b)
	b.StopTimer()
	if c := sb.Calls("ServiceCreateOrder"); c != n {
		b.Fatalf("ServiceCreateOrder called %d times for %d orders", c, n)
	}

	holdsOf := map[int][]string{}
	for i, q := range tasks.Queues(queue, shards) {
		tag := ledger.ShardTag("ledger", i, shards)
		m, _ := cl.MasterFor("orderworker:{" + tag + "}:events")
		holdsOf[m] = append(holdsOf[m], "{"+tag+"}")
		m, _ = cl.MasterFor("asynq:{" + q + "}:pending")
		holdsOf[m] = append(holdsOf[m], "{"+q+"}")
	}
	queueLabel := queue
	if shards > 1 {
		queueLabel = fmt.Sprintf("%s, %d ledger shards", strings.Join(tasks.Queues(queue, shards), " "), shards)
	}
	var rows []clusterBenchRow
	var total, top float64
	for i, m := range cl.Masters {
		e := s1[m.Addr].Sub(s0[m.Addr]).Without("info")
		p := s2[m.Addr].Sub(s1[m.Addr]).Without("info")
		lo, hi := cl.SlotRange(i)
		holds := holdsOf[i]
		both := s2[m.Addr].Sub(s0[m.Addr]).Without("info")
		rows = append(rows, clusterBenchRow{
			masters: masters, queue: queueLabel, node: i, slots: fmt.Sprintf("%d-%d", lo, hi), holds: strings.Join(holds, " "),
			enqueue: float64(e.Total()) / float64(n), process: float64(p.Total()) / float64(n), top: clusterBenchTop(both, n, 4),
		})
		per := float64(both.Total()) / float64(n)
		total += per
		top = max(top, per)
	}
	for i := range rows {
		rows[i].share = (rows[i].enqueue + rows[i].process) / total
	}
	b.ReportMetric(total, "cmds/order")
	b.ReportMetric(top, "busiest-master-cmds/order")
	return rows
}

func clusterBenchTable(rows []clusterBenchRow) string {
	var s strings.Builder
	fmt.Fprintf(&s, "| masters | queue | master | slots | holds | enqueue | processing | total | share | most run, per order |\n")
	fmt.Fprintf(&s, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&s, "| %d | %s | %d | %s | %s | %.2f | %.2f | %.2f | %.0f %% | %s |\n",
			r.masters, r.queue, r.node, r.slots, r.holds, r.enqueue, r.process, r.enqueue+r.process, 100*r.share, r.top)
	}
	return s.String()
}

// clusterBenchTop renders the k commands st ran most, per order of n.
func clusterBenchTop(st taskstest.CommandStats, n, k int) string {
	var parts []string
	for _, f := range strings.Fields(st.Top(k)) {
		name, calls, ok := strings.Cut(f, "=")
		if !ok {
			continue // the "..." after the first k
		}
		c, _ := strconv.ParseFloat(calls, 64)
		parts = append(parts, fmt.Sprintf("%s %.2f", name, c/float64(n)))
	}
	return strings.Join(parts, ", ")
}
