package ledger_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// splitRig is a master with a replica behind one endpoint whose new
// connections reach the old master, or, once toNew, the promoted replica
// (a managed endpoint moved by a failover that left the old master
// running: connections made before still reach it).
type splitRig struct {
	m, r   *taskstest.Server
	toNew  atomic.Bool
	rdbFor func() *redis.Client
}

func newSplitRig(t *testing.T) *splitRig {
	s := &splitRig{}
	s.m = taskstest.StartRedis(t, nil)
	s.r = s.m.AttachReplica(t)
	s.rdbFor = func() *redis.Client {
		rdb := redis.NewClient(&redis.Options{Addr: "endpoint:0", ConnMaxIdleTime: time.Nanosecond, PoolSize: 4,
			Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
				addr := s.m.Addr
				if s.toNew.Load() {
					addr = s.r.Addr
				}
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}})
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}
	return s
}

func (s *splitRig) promote(t *testing.T) {
	ctx := context.Background()
	if err := s.r.Client(t).Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); !strings.Contains(s.m.Client(t).Info(ctx, "replication").Val(), "connected_slaves:0"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("old master still reports the replica")
		}
	}
}

// claimTencent claims orders nos (provider tencent) through l.
func claimTencent(t *testing.T, l *ledger.Ledger, nos ...string) {
	t.Helper()
	for _, no := range nos {
		// A claim the replica did not acknowledge within a short
		// WaitTimeout (a busy machine) is claimed again: the setup needs
		// it on both, not in time.
		for try := 0; ; try++ {
			_, err := l.Claim(context.Background(), ledger.Ref{Provider: "tencent", OrderNo: no}, []byte(`{}`), "h")
			if err == nil {
				break
			}
			if !errors.Is(err, ledger.ErrNotDurable) || try == 20 {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// countOnNew has l read the replica count on the new master, then routes
// new connections to the old one again (a stale route): l's next write
// is judged by a count that is not its server's.
func (s *splitRig) countOnNew(t *testing.T, l *ledger.Ledger) {
	t.Helper()
	s.toNew.Store(true)
	if err := l.CheckWritable(context.Background()); err != nil {
		t.Fatalf("check writable on new master: %v", err)
	}
	s.toNew.Store(false)
}

// A process that never saw the old master with replicas itself (started,
// or idle, during the split), its replica count read on the new master
// (none, and no hold of its own), whose write's connection reaches the
// old master: the write is not taken for durable there (the new master
// holds the old one's record, which turns the check on).
func TestProcessStartedDuringASplitDoesNotWriteOnTheOldMaster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSplitRig(t)
	opts := &ledger.Options{NoAutoFloor: true, WaitTimeout: 200 * time.Millisecond}
	l1 := ledger.New(s.rdbFor(), opts)
	ref := func(no string) ledger.Ref { return ledger.Ref{Provider: "tencent", OrderNo: no} }
	claimTencent(t, l1, "A", "B", "C")
	time.Sleep(300 * time.Millisecond)
	s.promote(t)
	l2 := ledger.New(s.rdbFor(), opts) // a process started (or idle) now
	s.countOnNew(t, l2)                // this write's connection reaches the old master
	_, err := l2.Claim(ctx, ref("Fresh"), []byte(`{}`), "h")
	onNew, _ := s.r.Client(t).Exists(ctx, "orderworker:{ledger}:order:tencent:Fresh").Result()
	onOld, _ := s.m.Client(t).Exists(ctx, "orderworker:{ledger}:order:tencent:Fresh").Result()
	if err == nil && onNew == 0 {
		t.Errorf("claim answered durable (on the old master: %d), but its record is not on the new one", onOld)
	}
	if onOld == 0 {
		t.Errorf("the claim did not reach the old master (err %v): the test shows nothing", err)
	}
}

// An event read on the old master after a split (a settle ran there,
// answered not durable, its event written all the same) is not confirmed
// as on the replicas, though the count read on the new master is 0.
func TestEventReadOnTheOldMasterIsNotConfirmed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSplitRig(t)
	opts := &ledger.Options{NoAutoFloor: true, WaitTimeout: 200 * time.Millisecond}
	l := ledger.New(s.rdbFor(), opts)
	ref := func(no string) ledger.Ref { return ledger.Ref{Provider: "tencent", OrderNo: no} }
	claimTencent(t, l, "A", "B", "C")
	time.Sleep(300 * time.Millisecond)
	s.promote(t)
	// An outcome event the old master took (a settle that ran there,
	// answered not durable, its event written all the same).
	if err := s.m.Client(t).XAdd(ctx, &redis.XAddArgs{Stream: "orderworker:{ledger}:events", Values: []any{
		"type", "order.paid", "provider", "tencent", "order_no", "A", "state", "paid", "provider_order_id", "x", "reason", "", "attempts", "1", "at", "1"}}).Err(); err != nil {
		t.Fatal(err)
	}
	s.toNew.Store(true)
	var err error
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if _, err = l.Claim(ctx, ref("OnNew"), []byte(`{}`), "h"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("claim on new master: %v", err)
	}
	if err := l.CheckWritable(ctx); err != nil { // the count read on the new master
		t.Fatal(err)
	}
	s.toNew.Store(false)
	p, err := l.ReadEvents(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	paid := false
	for _, e := range p.Events {
		if e.Type == "order.paid" {
			paid = true
		}
	}
	if !paid {
		t.Fatalf("the event the old master holds was not read there (%d events): the test shows nothing", len(p.Events))
	}
	if err := l.EventsOnReplicas(ctx, p); err == nil {
		t.Errorf("an event only the held old master holds was confirmed as on the replicas")
	}
}

// An operator's re-drive or decision that ran on a held old master (its
// count read on the new one) is not reported as done: the re-drive is
// ErrNotDurable; the decision, whose lease is taken there first, is
// refused or ErrNotDurable.
func TestOperatorActionOnTheOldMasterIsNotAcknowledged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSplitRig(t)
	opts := &ledger.Options{NoAutoFloor: true, WaitTimeout: 200 * time.Millisecond}
	l := ledger.New(s.rdbFor(), opts)
	ref := func(no string) ledger.Ref { return ledger.Ref{Provider: "tencent", OrderNo: no} }
	claimTencent(t, l, "A", "B", "RD", "RS")
	m := s.m.Client(t)
	for no, state := range map[string]string{"RD": "errored", "RS": "unknown"} {
		if err := m.HSet(ctx, "orderworker:{ledger}:order:tencent:"+no, "state", state).Err(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	s.promote(t)
	// The count read on the new master, then the action's connections
	// reach the old master.
	s.countOnNew(t, l)
	if err := l.Redrive(ctx, ref("RD"), "ann", ""); !errors.Is(err, ledger.ErrNotDurable) {
		t.Errorf("re-drive on the held old master: %v, want ErrNotDurable", err)
	}
	if got := m.HGet(ctx, "orderworker:{ledger}:order:tencent:RD", "state").Val(); got != "submitting" {
		t.Errorf("RD on the old master is %q: the re-drive did not reach it, the test shows nothing", got)
	}
	s.countOnNew(t, l)
	if rec, err := l.Resolve(ctx, ref("RS"), ledger.ResolveArgs{As: ledger.ResolveErrored, Note: "n", By: "ann"}); err == nil {
		t.Errorf("decision on the held old master answered done (%s)", rec.State)
	}
}

// A decision or re-drive the replicas do not acknowledge in time (a
// replica stopped) says so: ErrNotDurable, with the record for a
// decision, though the master has it.
func TestOperatorActionNotAcknowledgedSaysSo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := taskstest.StartRedis(t, nil)
	r := m.AttachReplica(t)
	l := ledger.New(m.Client(t), &ledger.Options{WaitTimeout: 200 * time.Millisecond})
	ref := func(no string) ledger.Ref { return ledger.Ref{Provider: "tencent", OrderNo: no} }
	claimTencent(t, l, "RD", "RS")
	rdb := m.Client(t)
	for no, state := range map[string]string{"RD": "errored", "RS": "unknown"} {
		if err := rdb.HSet(ctx, "orderworker:{ledger}:order:tencent:"+no, "state", state).Err(); err != nil {
			t.Fatal(err)
		}
	}
	r.Pause(t)
	defer r.Resume()
	if err := l.Redrive(ctx, ref("RD"), "ann", ""); !errors.Is(err, ledger.ErrNotDurable) {
		t.Errorf("re-drive no replica acknowledged: %v, want ErrNotDurable", err)
	}
	rec, err := l.Resolve(ctx, ref("RS"), ledger.ResolveArgs{As: ledger.ResolveErrored, Note: "n", By: "ann"})
	if !errors.Is(err, ledger.ErrNotDurable) || rec == nil || rec.State != ledger.StateErrored {
		t.Errorf("decision no replica acknowledged: %v, %v; want the errored record and ErrNotDurable", rec, err)
	}
	if got := rdb.HGet(ctx, "orderworker:{ledger}:order:tencent:RD", "state").Val(); got != "submitting" {
		t.Errorf("RD on the master is %q: the re-drive did not run, the test shows nothing", got)
	}
}
