package tasks_test

import (
	"context"
	"strings"
	"testing"
	"time"

	aliyunsandbox "github.com/orderworker/orderworker/providers/aliyun/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// Redis loses every key while the worker runs (restarted without
// persistence): the producer sends an order it had sent before, already
// created and paid at the provider. Recorded anew, it is looked up before
// its first create and found: one create, not two. An order new since the
// loss is looked up too, found absent, and created once.
func TestResendAfterRedisLostItsDataIsLookedUpFirst(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	if _, err := e.ledger.Watch(ctx); err != nil { // as the worker does at start
		t.Fatal(err)
	}
	e.enqueue(t, order("Lost-1"))
	e.waitState(t, "Lost-1", tasks.StatePaid)
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if res := e.enqueue(t, order("Lost-1")); res.Status != tasks.Enqueued {
		t.Fatalf("resend after the loss: %+v; want enqueued (its record went with the data)", res)
	}
	rec := e.waitState(t, "Lost-1", tasks.StatePaid)
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
		t.Errorf("%d creates of Lost-1; want 1: the resend after the loss is looked up first", n)
	}
	looked := false
	for _, a := range rec.History {
		looked = looked || a.Call == "lookup"
	}
	if !looked {
		t.Errorf("history %+v; want the lookup that found the order", rec.History)
	}
	e.enqueue(t, order("Lost-2"))
	e.waitState(t, "Lost-2", tasks.StatePaid)
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 2 {
		t.Errorf("%d creates after a new order; want 2", n)
	}
	losses, err := e.ledger.Watch(ctx)
	if err != nil || len(losses) != 1 || !losses[0].Wiped {
		t.Errorf("Watch = %+v, %v; want the loss reported", losses, err)
	}
}

// After a loss of Redis's data, an Aliyun order first sent since, on a
// device that holds an order of the same kind, is looked up before its
// create and left unknown for a person: the listing (no creation time, no
// order number of ours) cannot tell whether that order was made for it
// before the loss. Resolved absent, as the runbook says for an order its
// producer first sent after the loss, it is created, once, and not looked
// up first again.
func TestAliyunOrderHeldAfterALossIsCreatedOnceResolvedAbsent(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
	ctx := context.Background()
	sb := addAliyun(t, e, nil)
	if _, err := e.ledger.Watch(ctx); err != nil { // as the worker does at start
		t.Fatal(err)
	}
	// The device's user bought the same plan before (in the app, say).
	sb.AddOrder(aliyunsandbox.Order{IotID: "devL", CommodityCode: "streamingResource_20_10", Copies: 1, PaymentStatus: 1})
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	task := enqueueTask(t, e, []byte(`{"provider":"aliyun","order_no":"Loss-A1","params":{"iotId":"devL","commodityCode":"streamingResource_20_10","copies":1}}`))
	ref := ledger.Ref{Provider: "aliyun", OrderNo: "Loss-A1"}
	for range 3 {
		_ = e.handler.ProcessTask(ctx, task)
	}
	rec, _ := e.ledger.Get(ctx, ref)
	if rec.State != ledger.StateUnknown || !strings.Contains(rec.Reason, "could not single the order out") || sb.Count("devL") != 1 {
		t.Fatalf("after the loss: %s (%q), %d orders of the device; want unknown, undecidable, nothing created", rec.State, rec.Reason, sb.Count("devL"))
	}
	if _, err := e.ledger.Resolve(ctx, ref, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "first sent after the Redis loss", By: "ann"}); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		_ = e.handler.ProcessTask(ctx, task)
	}
	rec, _ = e.ledger.Get(ctx, ref)
	if sb.Count("devL") != 2 || rec.ProviderOrderID == "" || rec.State != ledger.StatePaid && rec.State != ledger.StatePending {
		t.Errorf("after absent: %s with %q (%q), %d orders of the device; want ours created once beside the other", rec.State, rec.ProviderOrderID, rec.Reason, sb.Count("devL"))
	}
}
