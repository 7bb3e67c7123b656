package tasks_test

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers/aliyun"
	aliyunsandbox "github.com/orderworker/orderworker/providers/aliyun/sandbox"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	orderpolicy "github.com/orderworker/orderworker/tasks/order"
)

// holdAfterFirst is a breaker that lets its provider's first call through,
// then holds every call back until released.
type holdAfterFirst struct {
	asked    atomic.Int64
	held     atomic.Int64 // calls held back
	released atomic.Bool
}

func (g *holdAfterFirst) Wait(context.Context, string) (time.Duration, error) {
	if g.asked.Add(1) == 1 || g.released.Load() {
		return 0, nil
	}
	g.held.Add(1)
	return 20 * time.Millisecond, nil
}
func (g *holdAfterFirst) Done(string, error) {}

// An Aliyun order whose snapshot of the device's orders was taken, and
// whose first create was then held back (the breaker opened) for longer
// than a snapshot may be kept, takes the snapshot again before that create.
// Kept, the old snapshot would let an order the device's user bought
// meanwhile pass for ours once our create failed ambiguously: the lookup
// takes the one order new since the snapshot, so the order was recorded
// paid with the foreign order's id (the worker paying it, with AutoPay),
// and ours was never created.
func TestSnapshotKeptThroughAWaitIsRetaken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := &holdAfterFirst{}
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8, Guard: g,
		PollInterval: 20 * time.Millisecond, Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
	// ALIYUN_RECREATE_UNLISTED: the sandbox lists every order.
	sb := addAliyun(t, e, func(o *aliyun.Options) {
		o.AutoPay, o.PollInterval, o.RecreateUnlisted = true, 20*time.Millisecond, true
	})
	e.startServer(t)
	const no = "Stale-1"
	ref := ledger.Ref{Provider: "aliyun", OrderNo: no}
	e.enqueue(t, []byte(`{"provider":"aliyun","order_no":"`+no+`","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1}}`))

	// The snapshot (the device has no orders), then the create is held
	// back by the breaker.
	var rec *ledger.Record
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		rec, _ = e.ledger.Get(ctx, ref)
		if g.held.Load() > 0 && rec != nil && !rec.KnownAt.IsZero() {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no snapshot taken and create held back: record %+v, %d calls held", rec, g.held.Load())
		}
	}
	if (rec.State != ledger.StateQueued && rec.State != ledger.StateSubmitting) || rec.Known == nil || len(rec.Known) != 0 || rec.InflightMarked || sb.Calls(aliyun.PathCreate) != 0 {
		t.Fatalf("while held back: state %s, snapshot %v, marked %v, %d creates; want queued or submitting, an empty snapshot, nothing sent",
			rec.State, rec.Known, rec.InflightMarked, sb.Calls(aliyun.PathCreate))
	}

	// The order waits longer than a snapshot may be kept: the snapshot is
	// made older than that in the record.
	keys, err := e.rdb.Keys(ctx, "*order:aliyun:"+no).Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("record keys %v (%v), want one", keys, err)
	}
	old := time.Now().Add(-2 * orderpolicy.DefaultSnapshotMaxAge)
	if err := e.rdb.HSet(ctx, keys[0], "known_at", strconv.FormatInt(old.UnixMilli(), 10)).Err(); err != nil {
		t.Fatal(err)
	}
	if rec, _ = e.ledger.Get(ctx, ref); !rec.KnownAt.Equal(time.UnixMilli(old.UnixMilli())) {
		t.Fatalf("snapshot time %v, want %v", rec.KnownAt, old)
	}
	// Meanwhile the device's user buys the same plan in the app (not paid
	// yet), and our create will fail before the platform acts (a 503,
	// ambiguous to us), so the order is looked up.
	foreign := sb.AddOrder(aliyunsandbox.Order{IotID: "dev1", CommodityCode: "streamingResource_20_10", Copies: 1})
	sb.Faults().Script(fault.FailBefore)
	g.released.Store(true)

	for end := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rec, _ = e.ledger.Get(ctx, ref)
		if rec != nil && (rec.State == ledger.StatePaid || rec.State == ledger.StateErrored) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("order not settled: record %+v", rec)
		}
	}
	if owner, err := e.ledger.Owner(ctx, "aliyun", foreign.OrderID); err != nil || owner != "" {
		t.Errorf("the foreign order %s is recorded as order %q's (%v)", foreign.OrderID, owner, err)
	}
	var ours []aliyunsandbox.Order
	for _, o := range sb.Orders()["dev1"] {
		switch {
		case o.OrderID == foreign.OrderID && o.PaymentStatus != 0:
			t.Errorf("the foreign order %s was paid (payment status %d)", o.OrderID, o.PaymentStatus)
		case o.OrderID != foreign.OrderID:
			ours = append(ours, o)
		}
	}
	if rec.State != ledger.StatePaid || rec.ProviderOrderID == "" || rec.ProviderOrderID == foreign.OrderID ||
		len(ours) != 1 || ours[0].OrderID != rec.ProviderOrderID || ours[0].PaymentStatus != 1 {
		t.Errorf("state %s with provider order %q (the foreign one is %s), %d orders of ours on the device %+v; want paid with the one order of its own",
			rec.State, rec.ProviderOrderID, foreign.OrderID, len(ours), ours)
	}
	if !slices.Contains(rec.Known, foreign.OrderID) {
		t.Errorf("snapshot %v does not hold the order made while the create was held back (%s)", rec.Known, foreign.OrderID)
	}
	if n := sb.Calls(aliyun.PathCreate); n != 2 {
		t.Errorf("%d creates, want 2 (the one that failed before the platform acted, and ours)", n)
	}
}

// Params a newer worker rejects, on an Aliyun order whose snapshot is of
// unknown age (a record older than the snapshot's time): the order is
// errored, as one about to be created is, not left to take its snapshot
// again forever.
func TestRejectedParamsWithAnAgelessSnapshotAreErrored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, &setupOpts{noServer: true})
	sb := addAliyun(t, e, nil)
	ref := ledger.Ref{Provider: "aliyun", OrderNo: "Rej-1"}
	params := []byte(`{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":0}`)
	if _, err := e.ledger.Claim(ctx, ref, params, "h"); err != nil {
		t.Fatal(err)
	}
	keys := e.rdb.Keys(ctx, "*order:aliyun:Rej-1").Val()
	if len(keys) != 1 {
		t.Fatalf("record keys %v", keys)
	}
	e.rdb.HSet(ctx, keys[0], "known", "[]") // no known_at
	task := asynq.NewTask(tasks.TypeOrderSubmit, []byte(`{"provider":"aliyun","order_no":"Rej-1","params":`+string(params)+`}`))
	_ = e.handler.ProcessTask(ctx, task)
	if rec, _ := e.ledger.Get(ctx, ref); rec == nil || rec.State != ledger.StateErrored {
		t.Errorf("record %+v; want errored for its rejected params", rec)
	}
	if n := sb.Calls(aliyun.PathCreate); n != 0 {
		t.Errorf("%d creates; want none", n)
	}
}

// A snapshot's age is judged on Redis's clock, as it is stamped: a worker
// whose own clock runs two minutes behind (more than a snapshot may be
// kept) takes the snapshot, creates and pays the order once, instead of
// finding every snapshot it takes already too old and taking another.
func TestSnapshotAgeOnRedisClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, &setupOpts{noServer: true})
	sb := addAliyun(t, e, func(o *aliyun.Options) { o.AutoPay, o.PollInterval = true, 20*time.Millisecond })
	behind := func() time.Time { return time.Now().Add(-2 * orderpolicy.DefaultSnapshotMaxAge) }
	h := tasks.NewHandler(ledger.New(e.rdb, &ledger.Options{Now: behind}), e.set, &tasks.HandlerOptions{Now: behind, Logger: quiet,
		ListingLag: -1, PollInterval: 20 * time.Millisecond, Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}})
	const no = "Skew-Snap"
	payload := `{"provider":"aliyun","order_no":"` + no + `","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1}}`
	e.enqueue(t, []byte(payload))
	task := asynq.NewTask(tasks.TypeOrderSubmit, []byte(payload))
	ref := ledger.Ref{Provider: "aliyun", OrderNo: no}
	var rec *ledger.Record
	for i := 0; i < 30; i++ {
		_ = h.ProcessTask(ctx, task)
		if rec, _ = e.ledger.Get(ctx, ref); rec != nil && rec.State == ledger.StatePaid {
			break
		}
	}
	if rec == nil || rec.State != ledger.StatePaid || sb.Calls(aliyun.PathCreate) != 1 {
		state := ledger.State("none")
		if rec != nil {
			state = rec.State
		}
		t.Fatalf("order %s, %d creates, %d listings of the device's orders; want paid after one create", state, sb.Calls(aliyun.PathCreate), sb.Calls(aliyun.PathQuery))
	}
}
