package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// Durable writes on Redis Cluster: each claim, in-flight mark and outcome
// waits (WAIT, on the connection that ran the script) for the replicas of
// the master that took it. A claim answered without error is on the
// replica already; with one master's replica hung, that master's writes
// come back ErrNotDurable (a create is not sent on such a mark) while the
// other masters' go on; with durable writes off nothing waits.
func TestDurableWritesOnCluster(t *testing.T) {
	t.Parallel()
	cl := taskstest.StartCluster(t, &taskstest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	rc := cl.Client(t)
	l := ledger.New(rc, &ledger.Options{Shards: 3, WaitTimeout: 300 * time.Millisecond})
	// An order number in each shard, and the replica of each shard's master.
	refIn := func(shard int, prefix string) ledger.Ref {
		for i := 0; ; i++ {
			ref := ledger.Ref{Provider: "tencent", OrderNo: fmt.Sprintf("%s%d", prefix, i)}
			if l.ShardOf(ref) == shard {
				return ref
			}
		}
	}
	replicaOf := func(shard int) *taskstest.Server {
		m, _ := cl.MasterFor("orderworker:{" + ledger.ShardTag("ledger", shard, 3) + "}:x")
		return cl.Replicas[m][0]
	}
	recordOn := func(s *taskstest.Server, shard int, ref ledger.Ref) bool {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, OnConnect: func(ctx2 context.Context, cn *redis.Conn) error {
			return cn.ReadOnly(ctx2).Err()
		}})
		defer c.Close()
		key := "orderworker:{" + ledger.ShardTag("ledger", shard, 3) + "}:order:" + ref.Provider + ":" + ref.OrderNo
		n, err := c.Exists(ctx, key).Result()
		return err == nil && n == 1
	}

	for shard := range 3 {
		ref := refIn(shard, "D")
		cr, err := l.Claim(ctx, ref, []byte(`{}`), "h")
		if err != nil || !cr.Created {
			t.Fatalf("Claim in shard %d = %+v, %v", shard, cr, err)
		}
		if !recordOn(replicaOf(shard), shard, ref) {
			t.Errorf("the claim of %s was acknowledged before shard %d's replica had it", ref.OrderNo, shard)
		}
	}

	// Shard 0's replica hangs.
	replicaOf(0).Pause(t)
	hung, fine := refIn(0, "H"), refIn(1, "F")
	if _, err := l.Claim(ctx, hung, []byte(`{}`), "h"); !errors.Is(err, ledger.ErrNotDurable) {
		t.Errorf("Claim in the hung replica's shard = %v, want ErrNotDurable", err)
	}
	if _, err := l.Claim(ctx, fine, []byte(`{}`), "h"); err != nil {
		t.Errorf("Claim in another shard = %v", err)
	}
	b, err := l.Begin(ctx, hung, ledger.BeginArgs{Token: "t1"})
	if !errors.Is(err, ledger.ErrNotDurable) || !b.Record.InflightMarked {
		t.Errorf("Begin (marks a create in flight) in the hung replica's shard = %+v, %v; want the mark and ErrNotDurable", b.Record, err)
	}
	if _, err := l.Begin(ctx, fine, ledger.BeginArgs{Token: "t2"}); err != nil {
		t.Errorf("Begin in another shard = %v", err)
	}
	many := []ledger.ClaimArgs{{Ref: refIn(0, "M"), Params: []byte(`{}`), ParamsHash: "h"}, {Ref: refIn(2, "M"), Params: []byte(`{}`), ParamsHash: "h"}}
	res, errs, err := l.ClaimMany(ctx, many)
	if err != nil || !res[0].Created || !res[1].Created || !errors.Is(errs[0], ledger.ErrNotDurable) || errs[1] != nil {
		t.Errorf("ClaimMany over the hung shard and another = %+v, %v, %v; want both created, the first ErrNotDurable", res, errs, err)
	}
	off := ledger.New(rc, &ledger.Options{Shards: 3, Durable: ledger.DurableOff})
	if _, err := off.Claim(ctx, refIn(0, "O"), []byte(`{}`), "h"); err != nil {
		t.Errorf("Claim with durable writes off = %v, want no wait", err)
	}

	replicaOf(0).Resume()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		_, err := l.Claim(ctx, refIn(0, fmt.Sprintf("R%d-", i)), []byte(`{}`), "h")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Claim after the replica came back = %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A floor above the replicas a master has: durable writes refused
	// unsent, naming the master; at the replicas it has: written.
	two := ledger.New(rc, &ledger.Options{Shards: 3, MinReplicas: 2})
	ref := refIn(1, "Two")
	var few *ledger.TooFewReplicasError
	if _, err := two.Claim(ctx, ref, []byte(`{}`), "h"); !errors.As(err, &few) || few.Have != 1 || few.Want != 2 || few.Master == "" {
		t.Errorf("Claim needing 2 replicas of 1 = %v, want TooFewReplicasError naming the master", err)
	}
	if rec, err := l.Get(ctx, ref); rec != nil || err != nil {
		t.Errorf("a refused claim was written: %+v, %v", rec, err)
	}
	one := ledger.New(rc, &ledger.Options{Shards: 3, MinReplicas: 1})
	if cr, err := one.Claim(ctx, ref, []byte(`{}`), "h"); err != nil || !cr.Created || !recordOn(replicaOf(1), 1, ref) {
		t.Errorf("Claim needing 1 replica of 1 = %+v, %v (on the replica: %v)", cr, err, recordOn(replicaOf(1), 1, ref))
	}

	// After a failover, a client whose slot map still names the old
	// master (a replica now, with no replicas of its own) is not refused
	// for too few replicas: the write goes to the new master.
	m, _ := cl.MasterFor("orderworker:{" + ledger.ShardTag("ledger", 2, 3) + "}:x")
	if _, err := one.Claim(ctx, refIn(2, "Pre"), []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	promoted := cl.Failover(t, m)
	pc := redis.NewClient(&redis.Options{Addr: promoted.Addr, Password: cl.Password})
	defer pc.Close()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(pc.Info(ctx, "replication").Val(), "connected_slaves:1"); {
		if time.Now().After(deadline) {
			t.Fatal("the old master did not become the new master's replica")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(5500 * time.Millisecond) // past the replica counts read before the failover
	if cr, err := one.Claim(ctx, refIn(2, "Post"), []byte(`{}`), "h"); err != nil || !cr.Created {
		t.Errorf("Claim after the failover through a stale slot map = %+v, %v; want it on the new master", cr, err)
	}
}

// CheckWritable on Redis Cluster asks every master: with a master short
// of the replicas durable writes need it says so, naming that master,
// whichever node answers first; with a master down it fails; at the
// replicas there are, it passes.
func TestCheckWritableOnCluster(t *testing.T) {
	t.Parallel()
	cl := taskstest.StartCluster(t, &taskstest.ClusterOptions{Masters: 2, ReplicasPerMaster: 0})
	rc := cl.Client(t)
	if err := ledger.New(rc, &ledger.Options{Shards: 2}).CheckWritable(ctx); err != nil {
		t.Errorf("CheckWritable needing no replica = %v, want nil", err)
	}
	one := ledger.New(rc, &ledger.Options{Shards: 2, MinReplicas: 1})
	for range 4 { // any node may be asked first
		var few *ledger.TooFewReplicasError
		if err := one.CheckWritable(ctx); !errors.As(err, &few) || few.Want != 1 || few.Master == "" {
			t.Fatalf("CheckWritable needing 1 replica of 0 = %v, want TooFewReplicasError naming a master", err)
		}
	}
	if err := ledger.New(rc, &ledger.Options{Shards: 2, Durable: ledger.DurableOff, MinReplicas: 1}).CheckWritable(ctx); err != nil {
		t.Errorf("CheckWritable without durable writes = %v, want nil", err)
	}
	cl.Masters[1].Stop()
	if err := ledger.New(rc, &ledger.Options{Shards: 2}).CheckWritable(ctx); err == nil {
		t.Errorf("CheckWritable with a master down = nil, want an error")
	}
}
