package tasks_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
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

// An Aliyun order whose snapshot of the device's orders was read at another
// endpoint or account is not created here: its lookups would compare this
// provider's listing with another's snapshot, and take this one's older
// orders for new. It waits, unchanged, unless the snapshot's target is
// listed in SameTargets.
func TestCreateOnlyWhereTheSnapshotWasRead(t *testing.T) {
	t.Parallel()
	for _, same := range []bool{false, true} {
		t.Run(fmt.Sprint("listed in SameTargets ", same), func(t *testing.T) {
			t.Parallel()
			e := setup(t, &setupOpts{noServer: true})
			sb := addAliyun(t, e, nil)
			ctx := context.Background()
			const elsewhere = "0123456789abcdef"
			opts := &tasks.HandlerOptions{Logger: quiet, ListingLag: -1, Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}
			if same {
				opts.SameTargets = []string{elsewhere}
			}
			h := tasks.NewHandler(e.ledger, e.set, opts)
			e.enqueue(t, []byte(`{"provider":"aliyun","order_no":"Snap-1","params":{"iotId":"devS","commodityCode":"streamingResource_20_10","copies":1}}`))
			ref := ledger.Ref{Provider: "aliyun", OrderNo: "Snap-1"}
			// The prepare step, as a worker at another target settles it.
			if _, err := e.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: "prep", NeedsKnown: true}); err != nil {
				t.Fatal(err)
			}
			if err := e.ledger.Settle(ctx, ref, "prep", ledger.SetKnown([]string{}).WithKnownTarget(elsewhere)); err != nil {
				t.Fatal(err)
			}
			rec, _ := e.ledger.Get(ctx, ref)
			task, _ := tasks.NewOrderSubmitTask(tasks.Payload{Provider: "aliyun", OrderNo: "Snap-1", Params: rec.Params})
			err := h.ProcessTask(ctx, task)
			rec, _ = e.ledger.Get(ctx, ref)
			if same {
				if rec.State != ledger.StatePending || sb.Count("devS") != 1 {
					t.Errorf("run = %v; %s, %d orders; want the order created", err, rec.State, sb.Count("devS"))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tasks.ProblemTarget) || sb.Calls(aliyun.PathCreate) != 0 || rec.State != ledger.StateQueued || rec.Inflight != 0 {
				t.Errorf("run = %v; %s, inflight %d, %d creates; want it held as %s, nothing sent, unchanged",
					err, rec.State, rec.Inflight, sb.Calls(aliyun.PathCreate), tasks.ProblemTarget)
			}
		})
	}
}

// A fingerprint in SameTargets is looked up here as this worker's own:
// the same service under another address (or, after a key rotation, the
// same account under another key).
func TestSameTargetsLookUpHere(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	ctx := context.Background()
	e.enqueue(t, order("Same-1"))
	ref := ledger.Ref{Provider: "tencent", OrderNo: "Same-1"}
	rec, _ := e.ledger.Get(ctx, ref)
	task, _ := tasks.NewOrderSubmitTask(tasks.Payload{Provider: "tencent", OrderNo: "Same-1", Params: rec.Params})
	e.sandbox.Faults().Script(fault.FailAfter) // created, the answer lost
	_ = e.handler.ProcessTask(ctx, task)
	rec, _ = e.ledger.Get(ctx, ref)
	// The same sandbox, under another address.
	c, err := tencent.New(tencent.Options{Endpoint: strings.Replace(e.sandboxURL, "127.0.0.1", "localhost", 1), AppKey: appKey, AppSecret: providers.Secret(appSecret), Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	set := providers.NewSet()
	set.Add(c)
	h := tasks.NewHandler(e.ledger, set, &tasks.HandlerOptions{Logger: quiet, ListingLag: -1, SameTargets: []string{rec.CreateTarget},
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}})
	if err := h.ProcessTask(ctx, task); err != nil {
		t.Fatalf("run with the create's target listed = %v; want the lookup", err)
	}
	if rec, _ := e.ledger.Get(ctx, ref); rec.State != ledger.StatePaid || e.sandbox.Count("Same-1") != 1 {
		t.Errorf("%s, %d orders; want paid, one", rec.State, e.sandbox.Count("Same-1"))
	}
}

// deletingTencent is the Tencent client whose Submit deletes the order's
// record while the create is under way (a failover that loses it).
type deletingTencent struct {
	*tencent.Client
	rdb interface {
		Keys(ctx context.Context, pattern string) *redis.StringSliceCmd
		Del(ctx context.Context, keys ...string) *redis.IntCmd
	}
}

func (p deletingTencent) Submit(ctx context.Context, o providers.Order) (providers.Result, error) {
	keys, _ := p.rdb.Keys(ctx, "*order:tencent:"+o.OrderNo).Result()
	p.rdb.Del(ctx, keys...)
	return p.Client.Submit(ctx, o)
}

// A record lost while its create was under way is recorded again with
// where that create went: a worker configured for another target still
// does not look it up.
func TestLostRecordKeepsItsCreateTarget(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	ctx := context.Background()
	c, err := tencent.New(tencent.Options{Endpoint: e.sandboxURL, AppKey: appKey, AppSecret: providers.Secret(appSecret), Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.set.Add(deletingTencent{Client: c, rdb: e.rdb})
	e.enqueue(t, order("LostT-1"))
	ref := ledger.Ref{Provider: "tencent", OrderNo: "LostT-1"}
	rec, _ := e.ledger.Get(ctx, ref)
	task, _ := tasks.NewOrderSubmitTask(tasks.Payload{Provider: "tencent", OrderNo: "LostT-1", Params: rec.Params})
	_ = e.handler.ProcessTask(ctx, task)
	rec, _ = e.ledger.Get(ctx, ref)
	if rec == nil || rec.State != ledger.StateUnknown || rec.CreateTarget == "" {
		t.Fatalf("after the create under which the record was lost: %+v; want it recorded again, unknown, with the create's target", rec)
	}
}

// An Aliyun order whose create's target is not known (recorded by an
// earlier version, or lost) but whose snapshot was read at another target
// is not looked up here either: the lookup would compare this provider's
// listing with that snapshot.
func TestLookupOnlyWhereTheSnapshotWasRead(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	sb := addAliyun(t, e, nil)
	ctx := context.Background()
	e.enqueue(t, []byte(`{"provider":"aliyun","order_no":"SnapL-1","params":{"iotId":"devL","commodityCode":"streamingResource_20_10","copies":1}}`))
	ref := ledger.Ref{Provider: "aliyun", OrderNo: "SnapL-1"}
	if _, err := e.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: "prep", NeedsKnown: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.Settle(ctx, ref, "prep", ledger.SetKnown([]string{}).WithKnownTarget("0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	if b, err := e.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: "create", NeedsKnown: true}); err != nil || !b.Record.InflightMarked {
		t.Fatalf("Begin the create = %+v, %v", b, err)
	}
	if err := e.ledger.Settle(ctx, ref, "create", ledger.SetUnknown("timeout").WithMayExist(true)); err != nil {
		t.Fatal(err)
	}
	rec, _ := e.ledger.Get(ctx, ref)
	task, _ := tasks.NewOrderSubmitTask(tasks.Payload{Provider: "aliyun", OrderNo: "SnapL-1", Params: rec.Params})
	err := e.handler.ProcessTask(ctx, task)
	if err == nil || !strings.Contains(err.Error(), tasks.ProblemTarget) || sb.Calls(aliyun.PathQuery) != 0 || sb.Calls(aliyun.PathCreate) != 0 {
		t.Errorf("run = %v, %d listings, %d creates; want it held as %s, nothing sent", err, sb.Calls(aliyun.PathQuery), sb.Calls(aliyun.PathCreate), tasks.ProblemTarget)
	}
}
