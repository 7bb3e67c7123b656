package tasks_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// switchGuard is a circuit breaker that holds every call while held is set.
type switchGuard struct{ held atomic.Bool }

func (g *switchGuard) Wait(context.Context, string) (time.Duration, error) {
	if g.held.Load() {
		return 30 * time.Second, nil
	}
	return 0, nil
}
func (g *switchGuard) Done(string, error) {}

// An order is created and paid at Tencent; Redis rolls back to its queued
// record and the loss is noticed. Its deadline has passed. Without a
// breaker, the look-first finds it (paid, one create). With the provider's
// breaker open, the order is not errored at its deadline as one never sent
// would be: it may exist at the provider, so it waits for its lookup.
// (Found by review: it was errored "deadline passed before the order could
// be submitted", its producer told so.)
func TestBreakerHeldOrderRestoredByARollBackIsLookedUpNotErrored(t *testing.T) {
	t.Parallel()
	for _, breaker := range []bool{false, true} {
		t.Run(map[bool]string{false: "no-breaker", true: "breaker-open"}[breaker], func(t *testing.T) {
			g := &switchGuard{}
			e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{Deadline: time.Hour, Guard: g}})
			ctx := context.Background()
			if _, err := e.ledger.Watch(ctx); err != nil {
				t.Fatal(err)
			}
			task := enqueueTask(t, e, order("RB-1"))
			key := "orderworker:{ledger}:order:tencent:RB-1"
			snap, _ := e.rdb.HGetAll(ctx, key).Result() // queued
			// As restored, the order was enqueued 2 h ago (its deadline, 1 h,
			// passed; its create left just before it, in what was lost).
			old := strconv.FormatInt(time.Now().Add(-2*time.Hour).UnixMilli(), 10)
			snap["created"], snap["updated"] = old, old
			if err := e.handler.ProcessTask(ctx, task); err != nil {
				t.Fatalf("first run: %v", err)
			}
			ref := ledger.Ref{Provider: "tencent", OrderNo: "RB-1"}
			if rec, _ := e.ledger.Get(ctx, ref); rec.State != tasks.StatePaid {
				t.Fatalf("first run: %s; want paid", rec.State)
			}
			if _, err := e.ledger.Watch(ctx); err != nil {
				t.Fatal(err)
			}
			// Roll-back: the record as queued, the epoch's count back.
			e.rdb.Del(ctx, key)
			e.rdb.HSet(ctx, key, snap)
			keys, _ := e.rdb.Keys(ctx, "*epoch").Result()
			fields, _ := e.rdb.HKeys(ctx, keys[0]).Result()
			for _, f := range fields {
				if strings.HasPrefix(f, "g:") {
					e.rdb.HSet(ctx, keys[0], f, 1)
				}
			}
			if losses, err := e.ledger.Watch(ctx); err != nil || len(losses) != 1 {
				t.Fatalf("Watch = %v, %v; want the loss", losses, err)
			}
			g.held.Store(breaker)
			_ = e.handler.ProcessTask(ctx, task)
			rec, _ := e.ledger.Get(ctx, ref)
			if rec.State == tasks.StateErrored {
				t.Errorf("restored order created at the provider (%d creates) recorded errored: %q", e.sandbox.Calls("ServiceCreateOrder"), rec.Reason)
			}
			if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
				t.Errorf("%d creates; want the one before the roll-back", n)
			}
			if !breaker && rec.State != tasks.StatePaid {
				t.Errorf("without a breaker: %s (%q); want paid, found by its lookup", rec.State, rec.Reason)
			}
		})
	}
}
