package tasks_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	aliyunsandbox "github.com/orderworker/orderworker/providers/aliyun/sandbox"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/unicloud"
	unicloudsandbox "github.com/orderworker/orderworker/providers/unicloud/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// A listing that leaves orders out (here UniCloud's QueryOrders, as a
// server would that reads a missing ProductCategory as another category's)
// shows no absence. V0's create was answered, so its order is known to
// exist; V1's made an order and lost the answer. V1's lookups, whose window
// holds V0's order, find the listing lacks it: V1 stays unknown, never
// created again.
func TestListingThatLacksOurOrderShowsNoAbsence(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
	sb := unicloudsandbox.New("UKey", "usecret")
	sb.Unlisted = func(unicloudsandbox.Order) bool { return true }
	addUnicloud(t, e, sb)
	ctx := context.Background()
	v0, v1 := enqueueTask(t, e, unicloudOrder("V0", "nas-v0")), enqueueTask(t, e, unicloudOrder("V1", "nas-v1"))
	_ = e.handler.ProcessTask(ctx, v0)
	if rec, _ := e.ledger.Get(ctx, ledger.Ref{Provider: "unicloud", OrderNo: "V0"}); rec.State != tasks.StatePaid {
		t.Fatalf("V0 %s; want paid by its create's answer", rec.State)
	}
	sb.Faults().Script(fault.FailAfter) // V1: made, answer lost
	for range 4 {
		_ = e.handler.ProcessTask(ctx, v1)
	}
	rec, _ := e.ledger.Get(ctx, ledger.Ref{Provider: "unicloud", OrderNo: "V1"})
	if n := sb.Count("nas-v1"); n != 1 || rec.State != tasks.StateUnknown {
		t.Fatalf("%d orders named nas-v1, V1 %s; want one, V1 unknown", n, rec.State)
	}
	if h := rec.History[len(rec.History)-1]; !strings.Contains(h.Message, "not the whole listing") {
		t.Errorf("last call %+v; want the listing judged incomplete", h)
	}
}

// The check that a listing shows our answered orders waits the listing
// lag only, not the provider's create overrun on top of it: an answered
// create's order existed before the answer. With a 100 ms lag and a
// minute's overrun, V0 (answered 300 ms before) must be listed, and the
// listing that lacks it shows no absence.
func TestListingCompletenessWaitsTheLagAlone(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8, ListingLag: 100 * time.Millisecond,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
	sb := unicloudsandbox.New("UKey", "usecret")
	sb.Unlisted = func(unicloudsandbox.Order) bool { return true }
	hs := httptest.NewServer(sb)
	t.Cleanup(hs.Close)
	c, err := unicloud.New(unicloud.Options{Endpoint: hs.URL, AccessKeyID: "UKey", AccessKeySecret: providers.Secret("usecret"), CreateOverrun: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.set.Add(c)
	ctx := context.Background()
	v0, v1 := enqueueTask(t, e, unicloudOrder("W0", "nas-w0")), enqueueTask(t, e, unicloudOrder("W1", "nas-w1"))
	_ = e.handler.ProcessTask(ctx, v0)
	time.Sleep(300 * time.Millisecond)
	sb.Faults().Script(fault.FailAfter) // W1: made, answer lost
	for range 2 {
		_ = e.handler.ProcessTask(ctx, v1)
	}
	rec, _ := e.ledger.Get(ctx, ledger.Ref{Provider: "unicloud", OrderNo: "W1"})
	if h := rec.History[len(rec.History)-1]; rec.State != tasks.StateUnknown || !strings.Contains(h.Message, "not the whole listing") {
		t.Errorf("W1 %s, last call %+v; want unknown, the listing judged incomplete (W0 missing)", rec.State, h)
	}
}

// The same on Aliyun, with an order/query that lists only paid orders
// (order/query's answer is not documented): Z0, created and unpaid, is
// missing from the listing of Z1, of the same device, commodity and copies,
// whose create made an order and lost the answer. Z1 is never created
// again.
func TestAliyunListingWithoutUnpaidOrdersShowsNoAbsence(t *testing.T) {
	t.Parallel()
	r := newRivalsEnv(t, "devL")
	sb := addAliyun(t, r.env, nil)
	sb.Unlisted = func(o aliyunsandbox.Order) bool { return o.PaymentStatus != 1 }
	r.order("Z0", 1)
	r.order("Z1", 1)
	r.run("Z0")
	if z0 := r.get("Z0"); z0.ProviderOrderID == "" {
		t.Fatalf("Z0 %s without an id; want created by its answer", z0.State)
	}
	sb.Faults().Script(fault.FailAfter) // Z1: made, answer lost
	for range 4 {
		r.run("Z1")
	}
	if n, z1 := sb.Count("devL"), r.get("Z1"); n != 2 || z1.ProviderOrderID != "" {
		t.Errorf("%d orders on the device, Z1 %s with %q; want 2, Z1 unknown", n, z1.State, z1.ProviderOrderID)
	}
}
