package tasks_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/unicloud"
	unicloudsandbox "github.com/orderworker/orderworker/providers/unicloud/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// A UniCloud order whose create may have been received (an answer of
// unknown effect) and which the listing does not show once the listing lag
// has passed is held for a person, not created again: what QueryOrders
// leaves out by default is not documented (it takes an OrderStatus filter
// whose values are not listed), and a listing that leaves out exactly the
// orders whose create failed midway would have every such order made
// twice. Resolved absent, it is created; with UNICLOUD_RECREATE_UNLISTED
// (UniCloud confirmed its listing shows every order) it is created again
// at once, as before.
func TestUnlistedUnicloudOrderIsHeldForAPerson(t *testing.T) {
	t.Parallel()
	for _, recreate := range []bool{false, true} {
		e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8, ListingLag: -1,
			Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
		sb := unicloudsandbox.New("UKey", "usecret")
		hs := httptest.NewServer(sb)
		t.Cleanup(hs.Close)
		c, err := unicloud.New(unicloud.Options{Endpoint: hs.URL, AccessKeyID: "UKey", AccessKeySecret: providers.Secret("usecret"), RecreateUnlisted: recreate})
		if err != nil {
			t.Fatal(err)
		}
		e.set.Add(c)
		ctx := context.Background()
		task := enqueueTask(t, e, unicloudOrder("UL-1", "unlisted-nas"))
		ref := ledger.Ref{Provider: "unicloud", OrderNo: "UL-1"}
		sb.Faults().Script(fault.FailBefore) // nothing made, an answer of unknown effect
		var err2 error
		for range 4 {
			if err2 = e.handler.ProcessTask(ctx, task); err2 == nil || errors.Is(err2, asynq.SkipRetry) {
				break
			}
		}
		got, _ := e.ledger.Get(ctx, ref)
		if recreate {
			if got.State != tasks.StatePaid || len(sb.Orders()) != 1 {
				t.Errorf("recreate: %s, %d orders at the provider; want paid, created again once", got.State, len(sb.Orders()))
			}
			continue
		}
		if !errors.Is(err2, asynq.SkipRetry) || got.State != tasks.StateUnknown || !strings.Contains(got.Reason, "does not prove the order absent") {
			t.Fatalf("run = %v; %s %q; want the task ended, unknown, held for a person", err2, got.State, got.Reason)
		}
		if n := len(sb.Orders()); n != 0 {
			t.Fatalf("%d orders at the provider; want none created while held", n)
		}
		// The person checks the console: absent. Then it is created.
		if _, err := e.ledger.Resolve(ctx, ref, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "not in the console", By: "ann"}); err != nil {
			t.Fatalf("resolve absent: %v", err)
		}
		for range 4 {
			if err := e.handler.ProcessTask(ctx, task); err == nil {
				break
			}
		}
		if got, _ = e.ledger.Get(ctx, ref); got.State != tasks.StatePaid || len(sb.Orders()) != 1 {
			t.Errorf("after absent: %s, %d orders at the provider; want paid, created once", got.State, len(sb.Orders()))
		}
	}
}
