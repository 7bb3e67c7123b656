package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// A busy process, whose every write's pipeline reads the replica count,
// still reads the most replicas another process recorded for the master:
// its writes are refused as the others' are.
func TestBusyProcessReadsWhatOthersRecorded(t *testing.T) {
	t.Parallel()
	m := taskstest.StartRedis(t, nil)
	m.AttachReplica(t)
	busy := ledger.New(m.Client(t), nil)
	n := 0
	claim := func() error {
		n++
		_, err := busy.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: fmt.Sprint("B", n)}, []byte(`{}`), "h")
		return err
	}
	if err := claim(); err != nil {
		t.Fatal(err)
	}
	// Another process saw a second replica, since gone, and recorded it.
	if err := m.Client(t).HSet(ctx, "orderworker:{ledger}:replicated", masterReplid(t, m), 2).Err(); err != nil {
		t.Fatal(err)
	}
	var few *ledger.TooFewReplicasError
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err := claim()
		if errors.As(err, &few) && few.Want == 2 && few.Have == 1 {
			break
		}
		if err != nil && !errors.Is(err, ledger.ErrNotDurable) {
			t.Fatal(err)
		}
		if time.Now().After(end) {
			t.Fatal("a busy process kept counting writes on a master held to two replicas by another process's record")
		}
	}
}

// A replica whose host died without closing its link (here: stopped) is
// still listed until the master's repl-timeout drops it; a replacement
// that attaches meanwhile makes two listed where one exists. What a WAIT
// did not acknowledge is not recorded: once the dead link is dropped, the
// master with its one live replica takes writes.
func TestDeadReplicaLinkRaisesNoHold(t *testing.T) {
	t.Parallel()
	m := taskstest.StartRedis(t, nil)
	mc := m.Client(t)
	for k, v := range map[string]string{"repl-timeout": "6", "repl-diskless-sync-delay": "0"} {
		if err := mc.ConfigSet(ctx, k, v).Err(); err != nil {
			t.Fatal(err)
		}
	}
	dead := m.AttachReplica(t)
	l := ledger.New(mc, &ledger.Options{WaitTimeout: 300 * time.Millisecond})
	// The replica seen acknowledging (on a busy machine a fresh replica
	// may miss the first WAIT: the claim is sent again, as a producer
	// would).
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "S0"}, []byte(`{}`), "h")
		if err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatal(err)
		}
	}
	pid := serverPID(t, dead)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	// The replacement: two listed, one alive.
	rep := taskstest.StartRedis(t, nil)
	host, port, _ := strings.Cut(m.Addr, ":")
	if err := rep.Client(t).Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); strings.Count(mc.Info(ctx, "replication").Val(), "state=online") < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the replacement did not come online beside the dead link:\n%s", mc.Info(ctx, "replication").Val())
		}
	}
	if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "S1"}, []byte(`{}`), "h"); err == nil {
		t.Error("a claim acknowledged by one of the two replicas listed counted as durable")
	}
	for end := time.Now().Add(20 * time.Second); !strings.Contains(mc.Info(ctx, "replication").Val(), "connected_slaves:1"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the master did not drop the dead link")
		}
	}
	if v := mc.HGet(ctx, "orderworker:{ledger}:replicated", masterReplid(t, m)).Val(); v != "1" {
		t.Errorf("recorded %q replicas, want 1: only acknowledged replicas count", v)
	}
	var err error
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err = l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "S2"}, []byte(`{}`), "h"); err == nil || time.Now().After(end) {
			break
		}
	}
	if err != nil {
		t.Errorf("claim once the dead link was dropped: %v, want it durable", err)
	}
	if _, err := ledger.New(mc, nil).Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "S3"}, []byte(`{}`), "h"); err != nil {
		t.Errorf("claim from a new process: %v, want it durable", err)
	}
}

func serverPID(t *testing.T, s *taskstest.Server) int {
	t.Helper()
	n, err := strconv.Atoi(infoOf(t, s, "server", "process_id"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// matchedOwner is a ledger where order X holds provider order PO-1 by
// matching, pending, and order Y is claimed.
func matchedOwner(t *testing.T) (l *ledger.Ledger, x, y ledger.Ref) {
	t.Helper()
	l, _, _ = setup(t)
	x, y = ledger.Ref{Provider: "aliyun", OrderNo: "X"}, ledger.Ref{Provider: "aliyun", OrderNo: "Y"}
	claim(t, l, x)
	claim(t, l, y)
	if _, err := l.Begin(ctx, x, ledger.BeginArgs{Token: "tx"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, x, "tx", ledger.SetPending("PO-1", time.Now(), time.Now().Add(time.Minute)).WithMatched()); err != nil {
		t.Fatal(err)
	}
	return l, x, y
}

// An order whose own create's answer names a provider order another order
// holds by matching takes it over with that order's pay mark, and with
// the provider's acceptance of that pay: the provider order is not paid
// again.
func TestTakeOverKeepsAnAcceptedPay(t *testing.T) {
	t.Parallel()
	l, x, y := matchedOwner(t)
	b, err := l.Begin(ctx, x, ledger.BeginArgs{Token: "tx2", Pay: true, PayAgainAfter: time.Millisecond})
	if err != nil || !b.Record.PayMarked {
		t.Fatal(b.Record, err)
	}
	if err := l.Settle(ctx, x, "tx2", ledger.SetPending("PO-1", time.Now(), time.Now().Add(time.Minute)).WithPayAccepted(b.Record.PaySentAt)); err != nil {
		t.Fatal(err)
	}
	if xr, _ := l.Get(ctx, x); !xr.PayAccepted() {
		t.Fatalf("X: %+v", xr)
	}
	if _, err := l.Begin(ctx, y, ledger.BeginArgs{Token: "ty"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, y, "ty", ledger.SetPending("PO-1", time.Now(), time.Now().Add(time.Minute)).WithAnswered()); err != nil {
		t.Fatal(err)
	}
	if yr, _ := l.Get(ctx, y); !yr.PayAccepted() {
		t.Errorf("Y after taking PO-1 over: pay sent %v, accepted %v; want X's accepted pay", yr.PaySentAt, yr.PayAcceptedAt)
	}
	if xr, _ := l.Get(ctx, x); !xr.PaySentAt.IsZero() || !xr.PayAcceptedAt.IsZero() {
		t.Errorf("X after losing PO-1: pay sent %v, accepted %v; want neither", xr.PaySentAt, xr.PayAcceptedAt)
	}
	time.Sleep(5 * time.Millisecond)
	b, err = l.Begin(ctx, y, ledger.BeginArgs{Token: "ty2", Pay: true, PayAgainAfter: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if b.Record.PayMarked {
		t.Errorf("Y's pay of PO-1 marked again although X's pay of it was accepted")
	}
}

// A take-over while the matched owner's pay is open hands on the mark of
// when that pay may last land (its lease's end), not when it started: the
// order that takes the provider order over pays it again no sooner than a
// listing lag after the owner's pay could have landed.
func TestTakeOverDuringAnOpenPay(t *testing.T) {
	t.Parallel()
	l, x, y := matchedOwner(t)
	const lease = 2 * time.Second
	b, err := l.Begin(ctx, x, ledger.BeginArgs{Token: "tx2", Pay: true, PayAgainAfter: time.Millisecond, LeaseTTL: lease})
	if err != nil || !b.Record.PayMarked {
		t.Fatal(b.Record, err)
	}
	// X's pay is open; Y's create answers with PO-1.
	if _, err := l.Begin(ctx, y, ledger.BeginArgs{Token: "ty"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, y, "ty", ledger.SetPending("PO-1", time.Now(), time.Now().Add(time.Minute)).WithAnswered()); err != nil {
		t.Fatal(err)
	}
	yr, _ := l.Get(ctx, y)
	if d := yr.PaySentAt.Sub(b.Record.PaySentAt); d < lease-100*time.Millisecond || yr.PayAccepted() {
		t.Errorf("Y after taking PO-1 over during X's pay: pay sent %v, %s after X's mark, accepted %v; want the end of X's lease, %s after, not accepted",
			yr.PaySentAt, d, yr.PayAccepted(), lease)
	}
	b, err = l.Begin(ctx, y, ledger.BeginArgs{Token: "ty2", Pay: true, PayAgainAfter: 500 * time.Millisecond})
	if err != nil || b.Record.PayMarked {
		t.Errorf("Y's pay of PO-1 while X's may still land: marked %v, %v; want no pay", b.Record.PayMarked, err)
	}
}

// An order sent back to submission (SetRetry: a lookup's not-found, an
// operator's absent) forgets that a pay was accepted: the provider order
// its next create makes is paid as any is.
func TestRetryForgetsAnAcceptedPay(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	x := ledger.Ref{Provider: "aliyun", OrderNo: "X"}
	claim(t, l, x)
	if _, err := l.Begin(ctx, x, ledger.BeginArgs{Token: "t1"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, x, "t1", ledger.SetPending("PO-1", time.Now(), time.Now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	b, err := l.Begin(ctx, x, ledger.BeginArgs{Token: "t2", Pay: true, PayAgainAfter: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, x, "t2", ledger.SetPending("PO-1", time.Now(), time.Now().Add(time.Minute)).WithPayAccepted(b.Record.PaySentAt)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Begin(ctx, x, ledger.BeginArgs{Token: "t3"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, x, "t3", ledger.SetUnknown("provider answered without a status").WithMayExist(true)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Begin(ctx, x, ledger.BeginArgs{Token: "t4"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, x, "t4", ledger.SetRetry("not found").WithMayExist(false)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Begin(ctx, x, ledger.BeginArgs{Token: "t5"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, x, "t5", ledger.SetPending("PO-2", time.Now(), time.Now().Add(time.Minute)).WithAnswered()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	b, err = l.Begin(ctx, x, ledger.BeginArgs{Token: "t6", Pay: true, PayAgainAfter: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Record.PayMarked {
		t.Errorf("the new provider order PO-2 is not paid (accepted %v): the accepted pay of PO-1 holds it back", b.Record.PayAccepted())
	}
}

// A server whose replicas cannot be read (INFO renamed away, as some
// managed services and proxies do) takes no durable write: the count is
// unknown, not 0, and the error says how to do without.
func TestUnreadableReplicasRefuseDurableWrites(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, &taskstest.Options{Args: []string{"--rename-command", "INFO", ""}})
	rdb := rs.Client(t)
	l := ledger.New(rdb, nil)
	ref := ledger.Ref{Provider: "tencent", OrderNo: "NOINFO-1"}
	_, err := l.Claim(ctx, ref, []byte(`{}`), "h")
	if err == nil || !strings.Contains(err.Error(), "ORDERWORKER_DURABLE_WRITES=off") {
		t.Fatalf("claim on a server without INFO: %v; want refused, naming ORDERWORKER_DURABLE_WRITES=off", err)
	}
	if n, _ := rdb.Exists(ctx, "orderworker:{ledger}:order:tencent:NOINFO-1").Result(); n != 0 {
		t.Error("the refused claim was written")
	}
	if err := l.CheckWritable(ctx); err == nil {
		t.Error("CheckWritable: ready, on a server whose replicas cannot be read")
	}
	off := ledger.New(rdb, &ledger.Options{Durable: ledger.DurableOff})
	if _, err := off.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
		t.Errorf("claim with durable writes off: %v", err)
	}
}

// A master restarted (with its data: AOF) while one of its two replicas is
// down is held to two still, although a restart gives it a new replication
// id: taken on the one replica left, its writes would be lost to a
// failover that promoted the stale one (by replica-priority, say; a
// black-box run: 66 to 80 orders answered enqueued lost in each of three
// runs). So in the process that saw it with two, and in a process started
// after the restart, which knows it only by what was recorded. A second
// replica attached again: writes go on. Both processes watch the replicas
// every second, as workers and producers do: a watch that recorded the
// restarted master from its own sight (one replica in sync) freed the hold
// for every process (a review).
func TestRestartedMasterKeepsItsHold(t *testing.T) {
	t.Parallel()
	m := taskstest.StartRedis(t, &taskstest.Options{AOF: true})
	keep := m.AttachReplica(t)
	lost := m.AttachReplica(t)
	l := ledger.New(m.Client(t), nil)
	watch(t, l)
	if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "RS1"}, []byte(`{}`), "h"); err != nil {
		t.Fatalf("Claim with two replicas = %v", err)
	}
	before := masterReplid(t, m)
	for end := time.Now().Add(5 * time.Second); m.Client(t).HGet(ctx, "orderworker:{ledger}:replicated", before).Val() != "2"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the master was not recorded as seen with two replicas: %v", m.Client(t).HGetAll(ctx, "orderworker:{ledger}:replicated").Val())
		}
	}
	lost.Stop()
	m.Restart(t)
	if after := masterReplid(t, m); after == before {
		t.Fatalf("the restarted master kept its replication id %s: nothing to test", before)
	}
	// The replica left reconnects to the restarted master.
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(m.Client(t).Info(ctx, "replication").Val(), "connected_slaves:1") &&
			strings.Contains(keep.Client(t).Info(ctx, "replication").Val(), "master_link_status:up") {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the replica did not reconnect:\n%s", m.Client(t).Info(ctx, "replication").Val())
		}
	}
	time.Sleep(3 * time.Second) // an idle moment: the watches see the replica in sync
	var few *ledger.TooFewReplicasError
	if err := beginUntilRefused(l, ledger.Ref{Provider: "tencent", OrderNo: "RS1"}); !errors.As(err, &few) || few.Want != 2 || few.Have != 1 {
		t.Errorf("Begin on the restarted master with one of its two replicas = %v, want TooFewReplicasError (have 1, want 2)", err)
	}
	fresh := ledger.New(m.Client(t), nil)
	watch(t, fresh)
	time.Sleep(1500 * time.Millisecond)
	if _, err := fresh.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "RS2"}, []byte(`{}`), "h"); !errors.As(err, &few) || few.Want != 2 {
		t.Errorf("Claim on the restarted master from a new process = %v, want TooFewReplicasError (want 2)", err)
	}
	if got := m.Client(t).HGet(ctx, "orderworker:{ledger}:replicated", masterReplid(t, m)).Val(); got != "2" {
		t.Errorf("the restarted master is recorded as seen with %q replicas, want 2", got)
	}
	m.AttachReplica(t)
	if _, err := ledger.New(m.Client(t), nil).Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "RS3"}, []byte(`{}`), "h"); err != nil {
		t.Errorf("Claim once two replicas are attached again = %v", err)
	}
}

// watch runs l.WatchReplicas every second until the test ends, as every
// worker and producer does.
func watch(t *testing.T, l *ledger.Ledger) {
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for wctx.Err() == nil {
			c, cc := context.WithTimeout(wctx, time.Second)
			_ = l.WatchReplicas(c)
			cc()
			select {
			case <-wctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
}

// A replica promoted after its master was lost for good starts afresh,
// and is held to its own count, not the lost master's, when its id changes
// again without a promotion: its backlog freed after repl-backlog-ttl with
// no replica attached (or a restart). Held to the lost master's replicas,
// which it cannot have, it refused every write an hour after the failover
// (a review).
func TestPromotedReplicaIsNotHeldToTheLostMaster(t *testing.T) {
	t.Parallel()
	m := taskstest.StartRedis(t, &taskstest.Options{AOF: true})
	r := m.AttachReplica(t)
	l := ledger.New(m.Client(t), seenOnly())
	if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "P1"}, []byte(`{}`), "h"); err != nil {
		t.Fatalf("Claim with a replica = %v", err)
	}
	before := masterReplid(t, m)
	for end := time.Now().Add(5 * time.Second); r.Client(t).HGet(ctx, "orderworker:{ledger}:replicated", before).Val() != "1"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the master was not recorded as seen with a replica on its replica: %v", r.Client(t).HGetAll(ctx, "orderworker:{ledger}:replicated").Val())
		}
	}
	m.Stop() // lost for good
	rc := r.Client(t)
	if err := rc.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.ConfigSet(ctx, "repl-backlog-ttl", "1").Err(); err != nil {
		t.Fatal(err)
	}
	promoted := masterReplid(t, r)
	nl := ledger.New(rc, seenOnly())
	watch(t, nl)
	if _, err := nl.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "P2"}, []byte(`{}`), "h"); err != nil {
		t.Fatalf("Claim on the promoted replica = %v", err)
	}
	// Its backlog freed: a new id, master_replid2 zeros, as after a restart.
	for end := time.Now().Add(30 * time.Second); masterReplid(t, r) == promoted; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the promoted replica kept its id %s: nothing to test", promoted)
		}
	}
	if id2 := infoOf(t, r, "replication", "master_replid2"); strings.Trim(id2, "0") != "" {
		t.Fatalf("master_replid2 after the backlog was freed = %s, want zeros", id2)
	}
	time.Sleep(1500 * time.Millisecond) // a watch sees the new id
	for i, p := range []*ledger.Ledger{nl, ledger.New(rc, seenOnly())} {
		if _, err := p.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "P3-" + strconv.Itoa(i)}, []byte(`{}`), "h"); err != nil {
			t.Errorf("Claim on the promoted replica, its backlog freed (process %d) = %v, want it taken", i, err)
		}
	}
}

// A process that made no write while a replica was promoted (idle, or
// every write refused by min-replicas-to-write) still leaves the promoted
// master named the last master: its id changing again (its backlog freed)
// holds it to its own count, not the lost master's. Unnamed, it was taken
// for a restart of the lost master and held to a replica it cannot have
// (a black-box run: writes refused until an operator acted).
func TestIdleProcessNamesThePromotedMaster(t *testing.T) {
	t.Parallel()
	m := taskstest.StartRedis(t, &taskstest.Options{AOF: true})
	r := m.AttachReplica(t)
	l := ledger.New(m.Client(t), seenOnly())
	if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "I1"}, []byte(`{}`), "h"); err != nil {
		t.Fatalf("Claim with a replica = %v", err)
	}
	before := masterReplid(t, m)
	for end := time.Now().Add(5 * time.Second); r.Client(t).HGet(ctx, "orderworker:{ledger}:replicated", before).Val() != "1"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the master was not recorded on its replica: %v", r.Client(t).HGetAll(ctx, "orderworker:{ledger}:replicated").Val())
		}
	}
	m.Stop() // lost for good
	rc := r.Client(t)
	if err := rc.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	promoted := masterReplid(t, r)
	idle := ledger.New(rc, seenOnly())
	if err := idle.WatchReplicas(ctx); err != nil { // the once-a-second read, no write
		t.Fatalf("WatchReplicas on the promoted master = %v", err)
	}
	if got := rc.HGet(ctx, "orderworker:{ledger}:replicated", "last").Val(); got != promoted {
		t.Errorf("last master recorded after the promoted one was watched = %q, want %q", got, promoted)
	}
	if err := rc.ConfigSet(ctx, "repl-backlog-ttl", "1").Err(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); masterReplid(t, r) == promoted; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the promoted replica kept its id %s: nothing to test", promoted)
		}
	}
	for i, p := range []*ledger.Ledger{idle, ledger.New(rc, seenOnly())} {
		if _, err := p.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "I2-" + strconv.Itoa(i)}, []byte(`{}`), "h"); err != nil {
			t.Errorf("Claim on the promoted master, its backlog freed (process %d) = %v, want it taken", i, err)
		}
	}
}

// An operator who deletes the record of the replicas seen (a replica
// removed for good) frees the hold of every running process at its next
// read of the record, without a restart: also of a process that reads it
// only after another process recorded the master afresh (a black-box run:
// one process freed, another held until restarted).
func TestDeletedRecordFreesTheHoldWithoutARestart(t *testing.T) {
	t.Parallel()
	m := taskstest.StartRedis(t, nil)
	m.AttachReplica(t)
	gone := m.AttachReplica(t)
	replid := masterReplid(t, m)
	for _, afresh := range []bool{false, true} {
		l := ledger.New(m.Client(t), nil)
		if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "D1"}, []byte(`{}`), "h"); err != nil && !errors.Is(err, ledger.ErrNotDurable) {
			t.Fatalf("Claim = %v", err)
		}
		if afresh {
			// Recorded with two by l before the replica stopped.
			if err := m.Client(t).HSet(ctx, "orderworker:{ledger}:replicated", replid, "2", "last", replid).Err(); err != nil {
				t.Fatal(err)
			}
		}
		for end := time.Now().Add(5 * time.Second); m.Client(t).HGet(ctx, "orderworker:{ledger}:replicated", replid).Val() != "2"; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("the master was not recorded with two replicas: %v", m.Client(t).HGetAll(ctx, "orderworker:{ledger}:replicated").Val())
			}
		}
		if !afresh {
			gone.Stop()
		}
		var few *ledger.TooFewReplicasError
		if err := beginUntilRefused(l, ledger.Ref{Provider: "tencent", OrderNo: "D1"}); !errors.As(err, &few) {
			t.Fatalf("Begin with one of two replicas = %v, want TooFewReplicasError", err)
		}
		if err := m.Client(t).Del(ctx, "orderworker:{ledger}:replicated").Err(); err != nil {
			t.Fatal(err)
		}
		if afresh {
			// Another process, its hold dropped, records the master
			// with what it sees now before l reads the record.
			if err := m.Client(t).HSet(ctx, "orderworker:{ledger}:replicated", replid, "1", "last", replid).Err(); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		for end := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if err = l.CheckWritable(ctx); err == nil || time.Now().After(end) {
				break
			}
		}
		if err != nil {
			t.Fatalf("CheckWritable after the record was deleted (recorded afresh by another: %v) = %v, want writable without a restart", afresh, err)
		}
		if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "D2-" + strconv.FormatBool(afresh)}, []byte(`{}`), "h"); err != nil {
			t.Errorf("Claim after the record was deleted (recorded afresh by another: %v) = %v", afresh, err)
		}
		m.Client(t).Del(ctx, "orderworker:{ledger}:replicated")
	}
}

// infoFrom makes c answer INFO from other: a client whose pool reaches two
// servers (old connections on the old master, new ones on the new).
type infoFrom struct{ other *redis.Client }

func (h infoFrom) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h infoFrom) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h infoFrom) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "info" {
			return h.other.Process(ctx, cmd)
		}
		return next(ctx, cmd)
	}
}

// A watch whose INFO reached the old master and whose script reached the
// current one (a split: a client whose old connections reach the old
// master) does not name the old master the last one: the current master,
// restarted from its AOF with one of its two replicas, inherits its own
// count (2), not the old master's (1).
func TestStaleWatchNamesNoOtherMasterLast(t *testing.T) {
	t.Parallel()
	old := taskstest.StartRedis(t, nil)
	old.AttachReplica(t)
	oldID := masterReplid(t, old)

	m := taskstest.StartRedis(t, &taskstest.Options{AOF: true})
	keep := m.AttachReplica(t)
	lost := m.AttachReplica(t)
	mc := m.Client(t)
	// The old master's record, as the promoted one holds it.
	if err := mc.HSet(ctx, "orderworker:{ledger}:replicated", oldID, "1", "last", oldID).Err(); err != nil {
		t.Fatal(err)
	}
	l := ledger.New(mc, nil)
	if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "SL0"}, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	watch(t, l) // a busy worker: its watch records through sawReplicas
	id := masterReplid(t, m)
	for end := time.Now().Add(10 * time.Second); mc.HGet(ctx, "orderworker:{ledger}:replicated", id).Val() != "2"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not recorded with 2: %v", mc.HGetAll(ctx, "orderworker:{ledger}:replicated").Val())
		}
	}
	// A stale watch: INFO from the old master, script on the current one.
	sc := m.Client(t)
	sc.AddHook(infoFrom{old.Client(t)})
	if err := ledger.New(sc, nil).WatchReplicas(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mc.HGet(ctx, "orderworker:{ledger}:replicated", "last").Val(); got != id {
		t.Errorf("after a watch that read the old master: last = %.8s…, want the current master %.8s…", got, id)
	}
	lost.Stop()
	m.Restart(t)
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(m.Client(t).Info(ctx, "replication").Val(), "connected_slaves:1") &&
			strings.Contains(keep.Client(t).Info(ctx, "replication").Val(), "master_link_status:up") {
			break
		}
		if time.Now().After(end) {
			t.Fatal("replica did not reconnect")
		}
	}
	time.Sleep(3 * time.Second)
	var few *ledger.TooFewReplicasError
	_, err := ledger.New(m.Client(t), nil).Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "SL1"}, []byte(`{}`), "h")
	t.Logf("record after restart: %v", m.Client(t).HGetAll(ctx, "orderworker:{ledger}:replicated").Val())
	if !errors.As(err, &few) || few.Want != 2 {
		t.Errorf("Claim on the restarted master with one of its two replicas = %v, want TooFewReplicasError (want 2)", err)
	}
}

// A process that saw the master with a replica, and made no write while
// that replica was promoted (another process named it), carries no hold to
// the promoted master's next id (its backlog freed: master_replid2 zeros).
func TestIdleProcessCarriesNoHoldToThePromotedMaster(t *testing.T) {
	t.Parallel()
	m := taskstest.StartRedis(t, &taskstest.Options{AOF: true})
	r := m.AttachReplica(t)
	var addr atomic.Value
	addr.Store(m.Addr)
	c := redis.NewClient(&redis.Options{Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr.Load().(string))
	}, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	p := ledger.New(c, seenOnly())
	if _, err := p.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "IC1"}, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	before := masterReplid(t, m)
	for end := time.Now().Add(5 * time.Second); r.Client(t).HGet(ctx, "orderworker:{ledger}:replicated", before).Val() != "1"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("not recorded on the replica")
		}
	}
	m.Stop()
	rc := r.Client(t)
	if err := rc.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	promoted := masterReplid(t, r)
	if err := ledger.New(rc, seenOnly()).WatchReplicas(ctx); err != nil { // another process names it
		t.Fatal(err)
	}
	if err := rc.ConfigSet(ctx, "repl-backlog-ttl", "1").Err(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); masterReplid(t, r) == promoted; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("kept its id")
		}
	}
	t.Logf("record: %v; replid2 %s", rc.HGetAll(ctx, "orderworker:{ledger}:replicated").Val(), infoOf(t, r, "replication", "master_replid2"))
	addr.Store(r.Addr)
	var err error
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, err = p.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "IC2"}, []byte(`{}`), "h")
		t.Logf("claim: %v", err)
		if errors.Is(err, ledger.ErrNotDurable) {
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "connect") && !strings.Contains(err.Error(), "refused") && !strings.Contains(err.Error(), "EOF") || time.Now().After(end) {
			break
		}
	}
	if err != nil {
		t.Errorf("Claim by the process that saw the lost master, on the promoted one (backlog freed) = %v, want it taken", err)
	}
}

// seenOnly is a ledger's options that hold each master only to the most
// it was seen with (NoAutoFloor): the tests of that per-master hold, of a
// promoted replica taking writes before any replica attaches to it among
// them, which the default's floor of one replica would refuse.
func seenOnly() *ledger.Options { return &ledger.Options{NoAutoFloor: true} }

// promotedAfterALoss is a replica promoted after its master, seen with it
// (a claim waited for it, and the replica holds the record), was lost.
func promotedAfterALoss(t *testing.T) (*taskstest.Server, *redis.Client) {
	t.Helper()
	m := taskstest.StartRedis(t, &taskstest.Options{AOF: true})
	r := m.AttachReplica(t)
	if _, err := ledger.New(m.Client(t), nil).Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "L1"}, []byte(`{}`), "h"); err != nil {
		t.Fatalf("Claim with a replica = %v", err)
	}
	before := masterReplid(t, m)
	for end := time.Now().Add(5 * time.Second); r.Client(t).HGet(ctx, "orderworker:{ledger}:replicated", before).Val() != "1"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the master was not recorded as seen with a replica on its replica: %v", r.Client(t).HGetAll(ctx, "orderworker:{ledger}:replicated").Val())
		}
	}
	m.Stop()
	rc := r.Client(t)
	if err := rc.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	return r, rc
}

// By default a replica promoted when its master died waits for a replica
// of its own before it takes a durable write, once a master of the ledger
// was seen with replicas: held to none, it took writes no other server
// held until a replica attached, and a second failure in that window (the
// old master restarted beside it and promoted in turn) lost them (a
// black-box run: 238 and 262 orders answered enqueued). Nothing is
// written while it waits; once a replica attaches, writes go through.
func TestAPromotedReplicaWaitsForAReplicaOfItsOwn(t *testing.T) {
	t.Parallel()
	r, rc := promotedAfterALoss(t)
	nl := ledger.New(rc, nil)
	ref := ledger.Ref{Provider: "tencent", OrderNo: "W2"}
	_, err := nl.Claim(ctx, ref, []byte(`{}`), "h")
	if !errors.As(err, new(*ledger.TooFewReplicasError)) {
		t.Fatalf("Claim on the promoted replica without a replica = %v, want TooFewReplicasError", err)
	}
	if rec, gerr := nl.Get(ctx, ref); rec != nil || gerr != nil {
		t.Fatalf("after the refusal the order reads %+v, %v; want nothing written", rec, gerr)
	}
	var few *ledger.TooFewReplicasError
	if errors.As(err, &few) && (!few.AutoFloor || !strings.Contains(err.Error(), "promoted")) {
		t.Errorf("refusal %v: want it to say a promoted replica waits for one of its own", err)
	}
	r.AttachReplica(t)
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err = nl.Claim(ctx, ref, []byte(`{}`), "h"); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("Claim once a replica attached to the promoted master = %v, want it taken", err)
		}
	}
}

// An operator who gives the replicas up deletes the record (as the
// refusal says): the floor goes with it, also in a process that never
// read the record gone, another having named the promoted master in it
// again meanwhile (a review: such a process kept refusing every write).
func TestADeletedRecordFreesTheFloorWhenWrittenAgain(t *testing.T) {
	t.Parallel()
	r, rc := promotedAfterALoss(t)
	nl := ledger.New(rc, nil)
	ref := ledger.Ref{Provider: "tencent", OrderNo: "D2"}
	if _, err := nl.Claim(ctx, ref, []byte(`{}`), "h"); !errors.As(err, new(*ledger.TooFewReplicasError)) {
		t.Fatalf("Claim on the promoted replica without a replica = %v, want TooFewReplicasError", err)
	}
	promoted := masterReplid(t, r)
	rc.Del(ctx, "orderworker:{ledger}:replicated")
	rc.HSet(ctx, "orderworker:{ledger}:replicated", promoted, "0", "last", promoted)
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, err := nl.Claim(ctx, ref, []byte(`{}`), "h")
		if err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("Claim after the record was deleted and written again = %v, want it taken", err)
		}
	}
}
