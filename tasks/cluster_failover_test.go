package tasks_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// Orders flow through a Redis Cluster of three masters with a replica
// each, the ledger in three shards (one per master), while the master of
// one shard is failed over (CLUSTER FAILOVER on its replica) and then the
// master of another is SIGKILLed (its replica promoted by the cluster).
// Every order must end paid, created exactly once at the provider: each
// in-flight mark waits for its master's replica (durable writes on a
// cluster), so no failover can make a create that was sent look unsent.
// The provider lets a number be created twice, so a double would show.
func TestClusterFailoverNeverDoublesAnOrder(t *testing.T) {
	t.Parallel()
	const shards = 3
	cl := taskstest.StartCluster(t, &taskstest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	opt, err := tasks.ParseRedisURL(cl.URL())
	if err != nil {
		t.Fatal(err)
	}
	// No replica floor: the master killed below leaves its shard without
	// a replica, and nothing is killed after that.
	f := startFailoverRun(t, opt, shards, 0, "CF")
	masterOf := func(shard int) int {
		m, _ := cl.MasterFor("orderworker:{" + ledger.ShardTag("ledger", shard, shards) + "}:x")
		return m
	}
	f.waitSent(30, 90*time.Second)
	start := time.Now()
	promoted := cl.Failover(t, masterOf(0))
	t.Logf("CLUSTER FAILOVER of shard 0's master: %s took over in %s", promoted.Addr, time.Since(start).Round(time.Millisecond))
	f.waitSent(70, 90*time.Second)
	start = time.Now()
	killed, promoted := cl.KillMaster(t, masterOf(1))
	t.Logf("SIGKILL of shard 1's master %s: %s promoted %s later", killed.Addr, promoted.Addr, time.Since(start).Round(time.Millisecond))
	<-f.produced

	reader := ledger.New(opt.MakeRedisClient().(redis.UniversalClient), &ledger.Options{Shards: shards})
	delays, doubled := f.account(reader)
	t.Logf("cluster failover accounting: %d orders, %d paid, %d created twice; creates %d, lookups %d; batches sent again %d; accepted-to-paid p50 %s, max %s",
		f.n, len(delays), doubled, f.backend.Calls("create"), f.backend.Calls("lookup"), f.resent.Load(),
		delays[len(delays)/2].Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond))
}
