package tasks_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers/fault"
	unicloudsandbox "github.com/orderworker/orderworker/providers/unicloud/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	orderpolicy "github.com/orderworker/orderworker/tasks/order"
)

// A UniCloud order whose create was abandoned (a run killed mid-create,
// the order made but left out of QueryOrders) is held for a person. Redis
// then loses data (here: only the epoch, as a roll-back restoring the held
// record would) and the order's task runs again (the reconciler re-queues
// every unknown order whose task is archived): Begin's other-steps branch
// sets looked_first, Failures is 0; the order was never only looked up
// for the loss (LookOnly), so it stays held, not created again.
func TestHeldUnlistedOrderStaysHeldAfterALoss(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8, ListingLag: -1,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
	sb := unicloudsandbox.New("UKey", "usecret")
	hidden := ""
	sb.Unlisted = func(o unicloudsandbox.Order) bool { return o.ID == hidden }
	addUnicloud(t, e, sb)
	ctx := context.Background()
	if _, err := e.ledger.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	task := enqueueTask(t, e, unicloudOrder("UL-9", "unlisted-nas9"))
	ref := ledger.Ref{Provider: "unicloud", OrderNo: "UL-9"}
	// The dead run: its create marked and received (made, not listed).
	if b, err := e.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: "dead", LeaseTTL: 50 * time.Millisecond}); err != nil || !b.Record.InflightMarked {
		t.Fatalf("begin: %+v %v", b, err)
	}
	hidden = sb.Seed(unicloudsandbox.Order{InstanceName: "unlisted-nas9"}).ID
	time.Sleep(100 * time.Millisecond)
	err := e.handler.ProcessTask(ctx, task)
	got, _ := e.ledger.Get(ctx, ref)
	if !errors.Is(err, asynq.SkipRetry) || got.State != tasks.StateUnknown || !strings.Contains(got.Reason, "does not prove") {
		t.Fatalf("first run: %v; %s %q; want held", err, got.State, got.Reason)
	}
	t.Logf("held: failures=%d looked_first=%v", got.Failures, got.LookedFirstAt)
	// A loss is found (the held record survives it, as in a roll-back).
	keys, _ := e.rdb.Keys(ctx, "*epoch").Result()
	if len(keys) == 0 {
		t.Fatal("no epoch key")
	}
	e.rdb.Del(ctx, keys...)
	// The reconciler re-queues the held order (its task archived).
	for range 3 {
		if err = e.handler.ProcessTask(ctx, task); err == nil || errors.Is(err, asynq.SkipRetry) {
			break
		}
	}
	got, _ = e.ledger.Get(ctx, ref)
	t.Logf("after the loss: %v; %s failures=%d looked_first=%v %q", err, got.State, got.Failures, got.LookedFirstAt, got.Reason)
	if n := len(sb.Orders()); n != 1 || got.State != tasks.StateUnknown {
		t.Errorf("%d orders at the provider, state %s; want 1, still held", n, got.State)
	}
}

// The worker's own create of a UniCloud order answers a 5xx (made, left
// out of the listing); Redis then loses its data, and the order's task
// runs again: its record is recreated unknown (ClaimLost, Failures 0), and
// its next Begin, in the look-first window, sets looked_first. The hold's
// exemption (an order looked up first for the loss, no create of it marked
// since) does not take it: it stays held, not created a second time.
func TestOwnUnlistedCreateThenALossStaysHeld(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8, ListingLag: -1,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
	sb := unicloudsandbox.New("UKey", "usecret")
	sb.Unlisted = func(unicloudsandbox.Order) bool { return true }
	addUnicloud(t, e, sb)
	ctx := context.Background()
	if _, err := e.ledger.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	task := enqueueTask(t, e, unicloudOrder("UL-A", "unlisted-a"))
	ref := ledger.Ref{Provider: "unicloud", OrderNo: "UL-A"}
	sb.Faults().Script(fault.FailAfter)
	_ = e.handler.ProcessTask(ctx, task)
	got, _ := e.ledger.Get(ctx, ref)
	t.Logf("after the 5xx: %s failures=%d; %d orders", got.State, got.Failures, len(sb.Orders()))
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var err error
	for range 5 {
		if err = e.handler.ProcessTask(ctx, task); err == nil || errors.Is(err, asynq.SkipRetry) {
			break
		}
	}
	got, _ = e.ledger.Get(ctx, ref)
	t.Logf("after the loss: %v; %s failures=%d looked_first=%v", err, got.State, got.Failures, got.LookedFirstAt)
	if n := len(sb.Orders()); n != 1 {
		t.Errorf("%d orders at the provider (state %s); want 1: its own create may have been received, so it is held", n, got.State)
	}
}

// An order recorded after a loss is looked up first (look_only), believed
// absent, then its own create is marked and the run dies mid-create, the
// order made at the provider and not listed. The next lookup's not-found
// holds it for a person: the create's mark cleared look_only (kept, the
// hold's exemption would have it created twice).
func TestLookOnlyIsClearedByTheOrdersOwnCreate(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8, ListingLag: -1,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
	sb := unicloudsandbox.New("UKey", "usecret")
	hidden := ""
	sb.Unlisted = func(o unicloudsandbox.Order) bool { return o.ID == hidden }
	addUnicloud(t, e, sb)
	ctx := context.Background()
	if _, err := e.ledger.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	keys, _ := e.rdb.Keys(ctx, "*epoch").Result()
	e.rdb.Del(ctx, keys...) // a loss, found by the next Watch
	if _, err := e.ledger.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	task := enqueueTask(t, e, unicloudOrder("UL-LO", "unlisted-lo"))
	ref := ledger.Ref{Provider: "unicloud", OrderNo: "UL-LO"}
	b, err := e.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: "t1", LeaseTTL: time.Second, LookFirst: time.Hour})
	if err != nil || b.Record.LookFirstSince.IsZero() {
		t.Fatalf("begin: %+v %v; want a look-first", b.Record, err)
	}
	plan := orderpolicy.PlanStep(b.Record, orderpolicy.Policy{}, time.Now())
	if err := e.ledger.Settle(ctx, ref, "t1", plan.Settle); err != nil {
		t.Fatal(err)
	}
	if rec, _ := e.ledger.Get(ctx, ref); !rec.LookOnly {
		t.Fatalf("after the look-first: %s look_only=%v; want look_only", rec.State, rec.LookOnly)
	}
	// its lookup: not found, believed absent (the exemption)
	if _, err := e.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: "t2", LeaseTTL: time.Second, LookFirst: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.Settle(ctx, ref, "t2", ledger.SetRetry("absent").WithMayExist(false)); err != nil {
		t.Fatal(err)
	}
	// its own create, marked; the run dies after the provider made it
	b, err = e.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: "dead", LeaseTTL: 50 * time.Millisecond, LookFirst: time.Hour})
	if err != nil || !b.Record.InflightMarked {
		t.Fatalf("begin create: %+v %v", b.Record, err)
	}
	hidden = sb.Seed(unicloudsandbox.Order{InstanceName: "unlisted-lo"}).ID
	time.Sleep(100 * time.Millisecond)
	for range 4 {
		if err = e.handler.ProcessTask(ctx, task); err == nil || errors.Is(err, asynq.SkipRetry) {
			break
		}
	}
	rec, _ := e.ledger.Get(ctx, ref)
	if n := len(sb.Orders()); n != 1 || rec.State != tasks.StateUnknown || rec.LookOnly {
		t.Errorf("%d orders at the provider (state %s, look_only=%v); want 1, held unknown, look_only cleared", n, rec.State, rec.LookOnly)
	}
}
