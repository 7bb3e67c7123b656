package tasks_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/tasks"
)

func TestDeadlinePassedBeforeSubmitEndsErrored(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{handler: &tasks.HandlerOptions{Deadlines: map[string]time.Duration{"tencent": time.Nanosecond}}})
	e.enqueue(t, order("Order-Late"))
	rec := e.waitState(t, "Order-Late", tasks.StateErrored)
	if !strings.Contains(rec.Reason, "deadline of 1ns passed") {
		t.Errorf("reason = %q", rec.Reason)
	}
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 0 {
		t.Errorf("ServiceCreateOrder called %d times, want 0", n)
	}
}

// An Aliyun order that is never paid (auto-pay off) is polled through the
// pending window, then errored with that reason; polling spends no budget.
func TestPendingWindowEndsErrored(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{
		MaxAttempts: 1, PendingWindow: 1500 * time.Millisecond, PollInterval: 100 * time.Millisecond,
	}})
	sb := addAliyun(t, e, func(o *aliyun.Options) { o.PollInterval = 100 * time.Millisecond })
	e.startServer(t)
	res, err := e.enqueuer.Enqueue(context.Background(), []byte(`{"provider":"aliyun","order_no":"Pend-1","params":{"iotId":"pend1","commodityCode":"streamingResource_20_10","copies":1}}`))
	if err != nil || res.Status != tasks.Enqueued {
		t.Fatalf("Enqueue = %+v, %v", res, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var rec *tasks.Record
	for time.Now().Before(deadline) {
		rec, _ = e.ledger.Get(context.Background(), tasks.OrderRef{Provider: "aliyun", OrderNo: "Pend-1"})
		if rec != nil && rec.State == tasks.StateErrored {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rec == nil || rec.State != tasks.StateErrored || !strings.Contains(rec.Reason, "pending window") {
		t.Fatalf("record = %+v, want errored after the pending window", rec)
	}
	if rec.ProviderOrderID == "" || rec.PendingSince.IsZero() {
		t.Errorf("record lacks the provider order id or pending_since: %+v", rec)
	}
	lookups := 0
	for _, a := range rec.History {
		if a.Call == "poll" {
			lookups++
		}
	}
	if lookups < 2 || rec.Failures != 0 {
		t.Errorf("lookups = %d, failures = %d; want several polls that spend no budget", lookups, rec.Failures)
	}
	if n := sb.Count("pend1"); n != 1 {
		t.Errorf("sandbox holds %d orders, want 1", n)
	}
}
