package tasks_test

import (
	"context"
	"testing"

	"github.com/orderworker/orderworker/tasks"
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
