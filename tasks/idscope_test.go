package tasks_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// scopedEnv is a ledger on its own redis-server and the in-memory provider
// whose ids are numbered per item (its scope).
func scopedEnv(t *testing.T) (*taskstest.Server, *ledger.Ledger, *memprov.Backend, *providers.Set) {
	t.Helper()
	rs := taskstest.StartRedis(t, nil)
	backend := memprov.NewBackend("s")
	backend.IDsPerItem = true
	set := providers.NewSet()
	set.Add(memprov.NewScoped(backend, memprov.Options{Secret: "s"}))
	return rs, ledger.New(rs.Client(t), nil), backend, set
}

// A provider whose order ids are unique only within a scope (Aliyun: the
// device) answers orders of different scopes with the same id: each is
// its own order, created once and paid. Before ids were kept by scope, the
// second order of an id was taken for the first's, recorded unknown, its
// own order passed over in the lookup as another's, and created again and
// again (a black-box run with a platform numbering orders per device: 1,046
// creates for 200 orders).
func TestSameIDInAnotherScopeIsItsOwnOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs, l, backend, set := scopedEnv(t)
	opt := asynq.RedisClientOpt{Addr: rs.Addr}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	enq := tasks.NewEnqueuer(client, l, set, nil)
	orders := map[string]string{"S1": "dev-a", "S2": "dev-b", "S3": "dev-c", "S4": "dev-a", "S5": "dev-b"}
	for no, item := range orders {
		payload := fmt.Appendf(nil, `{"provider":"mem","order_no":%q,"params":{"item":%q,"qty":1}}`, no, item)
		if res, err := enq.Enqueue(ctx, payload); err != nil || res.Status != tasks.Enqueued {
			t.Fatal(res, err)
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{ListingLag: -1, Logger: logger})
	srv, mux := tasks.NewServer(opt, h, tasks.ServerOptions{Concurrency: 4, TaskCheckInterval: 10 * time.Millisecond,
		DelayedTaskCheckInterval: 50 * time.Millisecond, Logger: logger})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	deadline := time.Now().Add(15 * time.Second)
	ids := map[string]string{}
	for no, item := range orders {
		for {
			rec, err := l.Get(ctx, tasks.OrderRef{Provider: memprov.Name, OrderNo: no})
			if err == nil && rec.State == tasks.StatePaid {
				ids[no] = rec.ProviderOrderID
				if rec.IDScope != item {
					t.Errorf("%s: id scope %q, want %q", no, rec.IDScope, item)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v, %v; want paid", no, rec, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if n := backend.Calls("create"); n != len(orders) {
		t.Errorf("%d creates for %d orders, want one each", n, len(orders))
	}
	// Each owns its id in its scope, and only there.
	for no, item := range orders {
		if owner, err := l.OwnerIn(ctx, memprov.Name, item, ids[no]); err != nil || owner != no {
			t.Errorf("owner of %s in %s = %q, %v; want %s", ids[no], item, owner, err, no)
		}
	}
	// Per item, the ids are the backend's numbering: M1, M2, ….
	byItem := map[string][]string{}
	for no, item := range orders {
		byItem[item] = append(byItem[item], ids[no])
	}
	for item, got := range byItem {
		slices.Sort(got)
		want := []string{"M1", "M2"}[:len(got)]
		if !slices.Equal(got, want) {
			t.Errorf("%s: ids %v, want %v", item, got, want)
		}
	}
}

// Owner entries written before ids were kept by scope (by the id alone)
// are moved under their own order's scope when met, and count there
// only: an order of another device answered with
// the same id, or finding its own order with it in a lookup, takes it (it
// was taken for the old entry's, and created again: a black-box run of an
// upgraded ledger, 20 creates for 10 orders), and one of the same device is
// refused it, as on a new ledger (it was recorded paid under the other's
// order).
func TestOwnerEntriesOfBeforeScopesCountForTheirOwnScope(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, l, backend, set := scopedEnv(t)
	claim := func(no, item string) *asynq.Task {
		t.Helper()
		p := fmt.Appendf(nil, `{"item":%q,"qty":1}`, item)
		hash, err := tasks.ParamsHash(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Claim(ctx, ledger.Ref{Provider: memprov.Name, OrderNo: no}, p, hash); err != nil {
			t.Fatal(err)
		}
		task, err := tasks.NewOrderSubmitTask(tasks.Payload{Provider: memprov.Name, OrderNo: no, Params: p})
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
	// An order of dev-a recorded paid under M1 by a version that owned
	// ids by the id alone.
	claim("Old", "dev-a")
	old := ledger.Ref{Provider: memprov.Name, OrderNo: "Old"}
	if _, err := l.Begin(ctx, old, ledger.BeginArgs{Token: "old"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, old, "old", ledger.SetPaid("M1")); err != nil {
		t.Fatal(err)
	}
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{ListingLag: -1, MaxAttempts: 3,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	run := func(no string, task *asynq.Task) *tasks.Record {
		t.Helper()
		var rec *tasks.Record
		for range 10 {
			_ = h.ProcessTask(ctx, task)
			var err error
			if rec, err = l.Get(ctx, tasks.OrderRef{Provider: memprov.Name, OrderNo: no}); err != nil {
				t.Fatal(err)
			}
			if rec.State.Terminal() {
				break
			}
		}
		return rec
	}
	// Another device's first order, answered M1: its own.
	if rec := run("New-b", claim("New-b", "dev-b")); rec.State != tasks.StatePaid || rec.ProviderOrderID != "M1" {
		t.Errorf("New-b: %s %q (%s); want paid under M1", rec.State, rec.ProviderOrderID, rec.Reason)
	}
	// Another device's first order whose create's answer was lost: its
	// lookup finds its own M1, not the old entry's.
	backend.Faults().Script(fault.FailAfter)
	before := backend.Calls("create")
	if rec := run("New-c", claim("New-c", "dev-c")); rec.State != tasks.StatePaid || rec.ProviderOrderID != "M1" || backend.Calls("create")-before != 1 {
		t.Errorf("New-c: %s %q (%s) after %d creates; want paid under M1 after one", rec.State, rec.ProviderOrderID, rec.Reason, backend.Calls("create")-before)
	}
	// The old order's device, answered M1 (the backend's first for
	// dev-a): the old order's, refused.
	if rec := run("New-a", claim("New-a", "dev-a")); rec.State == tasks.StatePaid || rec.ProviderOrderID == "M1" {
		t.Errorf("New-a: %s %q; want M1 refused (the old order's on its device)", rec.State, rec.ProviderOrderID)
	}
	// The old entry, moved under its order's device.
	for item, want := range map[string]string{"dev-b": "New-b", "dev-c": "New-c", "dev-a": "Old"} {
		if owner, _ := l.OwnerIn(ctx, memprov.Name, item, "M1"); owner != want {
			t.Errorf("owner of M1 on %s = %q, want %q", item, owner, want)
		}
	}
	if owner, _ := l.Owner(ctx, memprov.Name, "M1"); owner != "" {
		t.Errorf("owner of M1 by the id alone = %q, want the entry moved", owner)
	}
}
