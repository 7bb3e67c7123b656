package ledger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks/taskstest"
)

// A durable write queued before its process knew the master was held
// (verify false) is not taken for durable when the check after it fails:
// the check is asked for again as the batch is sent, and a batch whose
// check failed acknowledges none of its durable writes.
func TestDurableCallQueuedBeforeTheHoldWasKnownIsChecked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := taskstest.StartRedis(t, nil)
	r := m.AttachReplica(t)
	l := New(m.Client(t), &Options{WaitTimeout: 200 * time.Millisecond})
	for _, no := range []string{"A", "B"} {
		// Claimed again when the replica did not acknowledge it within
		// the short WaitTimeout (a busy machine): the setup needs it on
		// both, not in time.
		for try := 0; ; try++ {
			_, err := l.Claim(ctx, Ref{Provider: "tencent", OrderNo: no}, []byte(`{}`), "h")
			if err == nil {
				break
			}
			if !errors.Is(err, ErrNotDurable) || try == 20 {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !l.verifyRan() {
		t.Fatal("the master was seen with its replica, but writes are not checked: the test shows nothing")
	}
	r.Pause(t) // writes now go unacknowledged: the check after them fails
	defer r.Resume()
	write := func(no string, verify bool) *call {
		return &call{ctx: ctx, script: recordReplicasScript, keys: []string{metaPrefix + "test:" + no}, args: []any{"x", 1},
			durable: true, verify: verify}
	}

	// Queued before the hold was known, sent after.
	early := write("early", false)
	l.batch.sendOn(ctx, l.rdb, []*call{early}, true)
	if early.err != nil || early.ack {
		t.Errorf("a write queued before the hold was known: err %v, ack %v; want it run and not acknowledged", early.err, early.ack)
	}

	// In a batch whose check failed, beside a write that asked for it.
	verifyRan := l.batch.verifyRan
	l.batch.verifyRan = nil
	defer func() { l.batch.verifyRan = verifyRan }()
	unchecked, checked := write("unchecked", false), write("checked", true)
	l.batch.sendOn(ctx, l.rdb, []*call{unchecked, checked}, true)
	if checked.ack {
		t.Fatal("the checked write was acknowledged: the test shows nothing")
	}
	if unchecked.err != nil || unchecked.ack {
		t.Errorf("a durable write in a batch whose check failed: err %v, ack %v; want it not acknowledged", unchecked.err, unchecked.ack)
	}
}

// Deleting the record of the masters seen with replicas (an operator
// freeing a hold) frees the hold, not the check of which server ran a
// write: during a split, a write that reached the cut-off old master on
// an old connection is still judged by that server (checkRan), not taken
// for durable because this process's hold was dropped.
func TestDeletedRecordKeepsWritesChecked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := taskstest.StartRedis(t, nil)
	m.AttachReplica(t)
	l := New(m.Client(t), nil)
	for try := 0; ; try++ {
		_, err := l.Claim(ctx, Ref{Provider: "tencent", OrderNo: "K1"}, []byte(`{}`), "h")
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNotDurable) || try == 20 {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for end := time.Now().Add(5 * time.Second); m.Client(t).HLen(ctx, replicatedKey).Val() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the master was not recorded")
		}
	}
	if err := m.Client(t).Del(ctx, replicatedKey).Err(); err != nil {
		t.Fatal(err)
	}
	l.replicasMu.Lock()
	l.recordReadAt = time.Time{}
	l.keySeen = true
	err := l.readRecorded(ctx)
	held := l.hadCount
	l.replicasMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if held != 0 {
		t.Errorf("after the record was deleted: held to %d, want the hold dropped", held)
	}
	if !l.verifyRan() {
		t.Error("after the record was deleted, writes are no longer checked against the server that ran them")
	}
}
