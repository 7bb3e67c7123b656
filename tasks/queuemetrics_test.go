package tasks_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// The queue collector reports zeros for a queue never used, the queue's
// figures once it is, and nothing at all while Redis cannot be read: zeros
// then would read as every archived task gone and back again (a "newly
// archived" alert for the whole archive) and as counters reset.
func TestQueueCollector(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, &taskstest.Options{AOF: true})
	opt := asynq.RedisClientOpt{Addr: srv.Addr}
	ins := asynq.NewInspector(opt)
	t.Cleanup(func() { ins.Close() })
	c := tasks.NewQueueCollector(ins, []string{"orders"})
	archived := func() string {
		var b strings.Builder
		for _, line := range strings.Split(collectText(t, c), "\n") {
			if strings.HasPrefix(line, `asynq_tasks_enqueued{queue="orders",state="archived"}`) {
				b.WriteString(line)
			}
		}
		return b.String()
	}
	if got := archived(); got != `asynq_tasks_enqueued{queue="orders",state="archived"} 0` {
		t.Errorf("a queue never used: %q, want 0", got)
	}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	if _, err := client.Enqueue(asynq.NewTask("t", nil), asynq.TaskID("a1"), asynq.Queue("orders")); err != nil {
		t.Fatal(err)
	}
	if err := ins.ArchiveTask("orders", "a1"); err != nil {
		t.Fatal(err)
	}
	if got := archived(); got != `asynq_tasks_enqueued{queue="orders",state="archived"} 1` {
		t.Errorf("one archived task: %q, want 1", got)
	}
	srv.Stop()
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("Redis down: %d series, want none (zeros would fake a reset)\n%s", n, collectText(t, c))
	}
	srv.Start(t)
	if got := archived(); got != `asynq_tasks_enqueued{queue="orders",state="archived"} 1` {
		t.Errorf("Redis back: %q, want 1", got)
	}
}

// collectText is what c exports, in the text exposition format.
func collectText(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// A task the handler ends for good (archived by asynq) is counted by
// queue, so that the archived-tasks alert sees it when asynq's archive,
// full, shows nothing new.
func TestStoppedTasksAreCounted(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	reg := prometheus.NewRegistry()
	m := tasks.NewMetrics(reg)
	m.InitQueues([]string{"orders"})
	h := tasks.NewHandler(e.ledger, e.set, &tasks.HandlerOptions{Metrics: m, Logger: quiet})
	if err := h.ProcessTask(context.Background(), asynq.NewTask(tasks.TypeOrderSubmit, []byte(`{"provider":`))); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("a malformed task: %v, want it ended for good", err)
	}
	want := `
# HELP orderworker_tasks_stopped_total Order tasks this worker ended for good (returned to asynq not to be retried, which archives them), by queue. asynq's archive is trimmed (10,000 tasks, 90 days), so its size stops showing new ones; this counter does not.
# TYPE orderworker_tasks_stopped_total counter
orderworker_tasks_stopped_total{queue=""} 1
orderworker_tasks_stopped_total{queue="orders"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "orderworker_tasks_stopped_total"); err != nil {
		t.Error(err)
	}
}

// Each provider's deadline is exported, so that the OrdersStuckSubmitting
// alert can tell an order submitting past it (nothing running its task)
// from one still retrying within it.
func TestDeadlinesAreExported(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	reg := prometheus.NewRegistry()
	m := tasks.NewMetrics(reg)
	tasks.NewHandler(e.ledger, e.set, &tasks.HandlerOptions{Metrics: m, Logger: quiet,
		Deadline: 36 * time.Hour, Deadlines: map[string]time.Duration{"tencent": 2 * time.Hour}})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "orderworker_order_deadline_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			got[mt.GetLabel()[0].GetValue()] = mt.GetGauge().GetValue()
		}
	}
	want := map[string]float64{}
	for _, p := range e.set.Names() {
		want[p] = (36 * time.Hour).Seconds()
	}
	want["tencent"] = (2 * time.Hour).Seconds()
	if len(want) < 2 || !maps.Equal(got, want) {
		t.Errorf("orderworker_order_deadline_seconds = %v, want %v", got, want)
	}
}

// A payload that cannot be decoded is answered invalid, naming its
// provider and order number where it gives them: a producer can tell which
// order it was. A payload too broken for that names none.
func TestInvalidPayloadNamesItsOrder(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	for _, tt := range []struct{ in, provider, orderNo string }{
		{`{"provider":"tencent","order_no":"M7"}`, "tencent", "M7"},
		{`{"provider":"tencent","order_no":"M8","params":{},"extra":1}`, "tencent", "M8"},
		{`{"provider":7,"order_no":"M9"}`, "", "M9"},
		{`{"provider":"tencent",`, "", ""},
	} {
		res := e.enqueue(t, []byte(tt.in))
		if res.Status != tasks.Invalid || res.Provider != tt.provider || res.OrderNo != tt.orderNo {
			t.Errorf("Enqueue %s = %+v; want invalid naming %q/%q", tt.in, res, tt.provider, tt.orderNo)
		}
		got := e.enqueuer.EnqueueBatch(context.Background(), [][]byte{[]byte(tt.in)})
		if got[0].Status != tasks.Invalid || got[0].Provider != tt.provider || got[0].OrderNo != tt.orderNo {
			t.Errorf("EnqueueBatch %s = %+v; want invalid naming %q/%q", tt.in, got[0], tt.provider, tt.orderNo)
		}
	}
}

// The ledger collector tells pending orders apart by what they wait for.
func TestLedgerCollectorPendingKinds(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	pendingOrder(t, e.ledger, "PK-1", true)
	text := collectText(t, tasks.NewLedgerCollector(e.ledger, []string{"aliyun"}))
	for _, want := range []string{
		`orderworker_pending_orders{kind="matched",provider="aliyun"} 1`,
		`orderworker_pending_orders{kind="plain",provider="aliyun"} 0`,
		`orderworker_pending_orders_oldest_age_seconds{kind="plain",provider="aliyun"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %s in\n%s", want, text)
		}
	}
}

// failHMGET fails every HMGET a pipeline sends: a ledger whose pending
// orders cannot be read in time.
type failHMGET struct{}

func (failHMGET) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (failHMGET) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (failHMGET) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if c.Name() == "hmget" {
				return errors.New("hmget refused")
			}
		}
		return next(ctx, cmds)
	}
}

// When the pending orders cannot be read, every kind's age is the oldest
// pending order's: no alert on pending orders goes silent.
func TestLedgerCollectorPendingUnread(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	pendingOrder(t, e.ledger, "PU-1", false)
	time.Sleep(1100 * time.Millisecond)
	e.rdb.AddHook(failHMGET{})
	text := collectText(t, tasks.NewLedgerCollector(e.ledger, []string{"aliyun"}))
	if strings.Contains(text, "orderworker_pending_orders{") {
		t.Errorf("counts exported though unread:\n%s", text)
	}
	for _, kind := range ledger.PendingKinds {
		prefix := `orderworker_pending_orders_oldest_age_seconds{kind="` + kind + `",provider="aliyun"} `
		i := strings.Index(text, prefix)
		if i < 0 || strings.HasPrefix(text[i+len(prefix):], "0\n") {
			t.Errorf("%s: no age or 0 though an order has been pending over a second:\n%s", kind, text)
		}
	}
}

// pendingOrder records the Aliyun order no pending in l, found by matching
// when matched, as a worker would.
func pendingOrder(t *testing.T, l *ledger.Ledger, no string, matched bool) {
	t.Helper()
	ctx := context.Background()
	ref := ledger.Ref{Provider: "aliyun", OrderNo: no}
	if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: no}); err != nil {
		t.Fatal(err)
	}
	tr := ledger.SetPending("P-"+no, time.Now(), time.Now().Add(time.Minute))
	if matched {
		tr = tr.WithMatched()
	}
	if err := l.Settle(ctx, ref, no, tr); err != nil {
		t.Fatal(err)
	}
}
