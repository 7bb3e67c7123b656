package ledger

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks/taskstest"
)

// With more than one shard, a finished order's provider order id is
// reserved in the id's shard, apart from the settle that recorded it; a
// task of the order that runs again (as it does after a settle whose
// acknowledgement was missing) reserves it again, so that a reservation
// the id's master lost in a failover is made good before the order counts
// as finished, and no other order can take the id.
func TestFinishedOrderReservesItsProviderOrderIDAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	l := New(rdb, &Options{Shards: 4})
	if err := l.CheckShards(ctx); err != nil {
		t.Fatal(err)
	}
	ref := Ref{Provider: "unicloud", OrderNo: "OWN-1"}
	id := claimWithIDElsewhere(t, l, ref, 9000)
	if err := l.Settle(ctx, ref, "t1", SetPaid(id)); err != nil {
		t.Fatal(err)
	}
	ownerKey := l.ownerShard(ref.Provider, id).ownerKey(ref.Provider)
	if got := rdb.HGet(ctx, ownerKey, id).Val(); got != ref.OrderNo {
		t.Fatalf("owner of %s = %q after the settle, want %s", id, got, ref.OrderNo)
	}
	rdb.HDel(ctx, ownerKey, id) // lost with the id's master
	b, err := l.Begin(ctx, ref, BeginArgs{Token: "t2"})
	if err != nil || b.Status != Finished {
		t.Fatalf("begin of the paid order: %+v, %v", b.Status, err)
	}
	if got := rdb.HGet(ctx, ownerKey, id).Val(); got != ref.OrderNo {
		t.Errorf("owner of %s = %q after the order's task ran again, want %s: another order could take the id", id, got, ref.OrderNo)
	}
}

// A re-drive sent again with its own token (the client's automatic retry
// after a lost reply) answers ok again, not refused for the state it left;
// another re-drive of the order is refused.
func TestRedriveSentAgainAnswersOK(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	l := New(rdb, nil)
	ref := Ref{Provider: "tencent", OrderNo: "RD-AGAIN"}
	if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	sh := l.shardOf(ref)
	if err := rdb.HSet(ctx, sh.recordKey(ref), "state", "errored").Err(); err != nil {
		t.Fatal(err)
	}
	run := func(token string) any {
		v, _, err := l.run(ctx, redriveScript, true,
			[]string{sh.recordKey(ref), sh.historyKey(ref), sh.indexKey(ref.Provider, StateErrored), sh.indexKey(ref.Provider, StateSubmitting)},
			ref.OrderNo, l.claimTime(), `{}`, "re-driven", MaxHistory, token)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for i := range 2 {
		if v := run("tok-1"); fmt.Sprint(v) != "[ok]" {
			t.Errorf("re-drive, sent %d times: %v, want ok", i+1, v)
		}
	}
	if v := run("tok-2"); fmt.Sprint(v) == "[ok]" {
		t.Errorf("another re-drive of the submitting order: %v, want refused", v)
	}
}

// With more than one shard, a matched order resolved absent whose id's
// release the replicas did not acknowledge is resolved all the same, said
// unacknowledged (ErrNotDurable with the record): the release ran on the
// master, and the id is not "still recorded as this order's".
func TestResolveAbsentWithAnUnacknowledgedRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := taskstest.StartRedis(t, nil)
	r := m.AttachReplica(t)
	rdb := m.Client(t)
	l := New(rdb, &Options{Shards: 4, WaitTimeout: 200 * time.Millisecond})
	if err := l.CheckShards(ctx); err != nil {
		t.Fatal(err)
	}
	ref := Ref{Provider: "unicloud", OrderNo: "REL-1"}
	id := claimWithIDElsewhere(t, l, ref, 7000)
	if err := l.Settle(ctx, ref, "t1", SetPending(id, time.Now(), time.Now().Add(time.Minute)).WithMayExist(true).WithMatched()); err != nil {
		t.Fatal(err)
	}
	r.Pause(t)
	defer r.Resume()
	rec, err := l.Resolve(ctx, ref, ResolveArgs{As: ResolveAbsent, Note: "another's order", By: "ann"})
	if !errors.Is(err, ErrNotDurable) || rec == nil || rec.State != StateSubmitting {
		t.Errorf("resolve absent, no replica acknowledging: %+v, %v; want the submitting record and ErrNotDurable", rec, err)
	}
	if owner := rdb.HGet(ctx, l.ownerShard(ref.Provider, id).ownerKey(ref.Provider), id).Val(); owner != "" {
		t.Errorf("the matched id is still %q's on the master: the release did not run, the test shows nothing", owner)
	}
}

// With more than one shard, a matched order resolved paid under another id
// releases the matched id, in another shard than its record, before the
// decision: a paid order takes no further step that would release it
// later, and the order that made the id could never take it.
func TestResolvePaidUnderAnotherIDReleasesAcrossShards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	l := New(rdb, &Options{Shards: 4})
	if err := l.CheckShards(ctx); err != nil {
		t.Fatal(err)
	}
	ref := Ref{Provider: "unicloud", OrderNo: "RPA-1"}
	id := claimWithIDElsewhere(t, l, ref, 8000)
	if err := l.Settle(ctx, ref, "t1", SetPending(id, time.Now(), time.Now().Add(time.Minute)).WithMayExist(true).WithMatched()); err != nil {
		t.Fatal(err)
	}
	if owner, _ := l.Owner(ctx, ref.Provider, id); owner != ref.OrderNo {
		t.Fatalf("the matched id is owned by %q before the decision: the test shows nothing", owner)
	}
	rec, err := l.Resolve(ctx, ref, ResolveArgs{As: ResolvePaid, ProviderOrderID: "9999", Note: "ours is 9999", By: "ann"})
	if err != nil || rec.State != StatePaid || rec.ProviderOrderID != "9999" {
		t.Fatalf("resolve paid under another id: %+v, %v", rec, err)
	}
	if owner, _ := l.Owner(ctx, ref.Provider, id); owner != "" {
		t.Errorf("the matched id in another shard is still owned by %q after the order was resolved paid under another", owner)
	}
	if owner, _ := l.Owner(ctx, ref.Provider, "9999"); owner != ref.OrderNo {
		t.Errorf("9999 owned by %q", owner)
	}
}

// claimWithIDElsewhere claims ref on l, begins a step of it (token "t1"),
// and returns a provider order id, counting up from from, whose owner
// entry is in another shard than ref's record.
func claimWithIDElsewhere(t *testing.T, l *Ledger, ref Ref, from int) string {
	t.Helper()
	ctx := context.Background()
	id := ""
	for i := 0; id == ""; i++ {
		if c := fmt.Sprint(from + i); l.ownerShard(ref.Provider, c) != l.shardOf(ref) {
			id = c
		}
	}
	if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Begin(ctx, ref, BeginArgs{Token: "t1"}); err != nil {
		t.Fatal(err)
	}
	return id
}
