package tasks_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/tencent"
	"github.com/orderworker/orderworker/providers/tencent/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// An order whose create went to one endpoint (its answer lost) is not
// looked up by a worker configured for another endpoint, or another
// account: that provider would not know the order, and its not-found would
// have the order created a second time. The order waits, unchanged, with
// the problem reported, until a worker configured as the one that sent the
// create looks it up.
func TestLookupOnlyWhereTheCreateWent(t *testing.T) {
	t.Parallel()
	for _, other := range []string{"endpoint", "account"} {
		t.Run(other, func(t *testing.T) {
			t.Parallel()
			e := setup(t, &setupOpts{noServer: true})
			ctx := context.Background()
			endpoint, key := e.sandboxURL, appKey
			sb := e.sandbox
			if other == "endpoint" {
				sb = sandbox.New(appKey, appSecret)
				hs := httptest.NewServer(sb)
				t.Cleanup(hs.Close)
				endpoint = hs.URL
			} else {
				key = "OtherAppKey"
			}
			c, err := tencent.New(tencent.Options{Endpoint: endpoint, AppKey: key, AppSecret: providers.Secret(appSecret), Timeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			set := providers.NewSet()
			set.Add(c)
			problems := tasks.NewProblems()
			elsewhere := tasks.NewHandler(e.ledger, set, &tasks.HandlerOptions{Logger: quiet, ListingLag: -1, Problems: problems,
				Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}})

			e.enqueue(t, order("Target-1"))
			ref := ledger.Ref{Provider: "tencent", OrderNo: "Target-1"}
			rec, _ := e.ledger.Get(ctx, ref)
			task, _ := tasks.NewOrderSubmitTask(tasks.Payload{Provider: "tencent", OrderNo: "Target-1", Params: rec.Params})
			e.sandbox.Faults().Script(fault.FailAfter) // created, the answer lost
			_ = e.handler.ProcessTask(ctx, task)
			if rec, _ := e.ledger.Get(ctx, ref); rec.State != ledger.StateUnknown || rec.CreateTarget == "" {
				t.Fatalf("after the create: %s, target %q; want unknown, the create's target recorded", rec.State, rec.CreateTarget)
			}
			for range 3 {
				err := elsewhere.ProcessTask(ctx, task)
				if err == nil || !strings.Contains(err.Error(), tasks.ProblemTarget) {
					t.Fatalf("the other worker's run = %v; want it held as %s", err, tasks.ProblemTarget)
				}
			}
			if n := e.sandbox.Calls("ServiceCreateOrder") + boolInt(sb != e.sandbox)*sb.Calls("ServiceCreateOrder"); n != 1 {
				t.Fatalf("%d creates; want the first one only", n)
			}
			if sb.Calls("ServiceGetOrderList") != 0 && sb != e.sandbox {
				t.Errorf("the other endpoint was asked about the order")
			}
			if rec, _ := e.ledger.Get(ctx, ref); rec.State != ledger.StateUnknown {
				t.Fatalf("after the other worker's runs: %s; want unknown, unchanged", rec.State)
			}
			if err := problems.Err(); err == nil || !strings.Contains(err.Error(), tasks.ProblemTarget) {
				t.Errorf("problems %v; want %s reported", err, tasks.ProblemTarget)
			}
			// The worker configured as the one that sent it finds it.
			_ = e.handler.ProcessTask(ctx, task)
			if rec, _ := e.ledger.Get(ctx, ref); rec.State != ledger.StatePaid || e.sandbox.Count("Target-1") != 1 {
				t.Fatalf("after its own worker's lookup: %s, %d orders; want paid, one", rec.State, e.sandbox.Count("Target-1"))
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
