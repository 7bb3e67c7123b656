package tasks_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/memprov"
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
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	backend := memprov.NewBackend("s")
	backend.Duplicates = true
	backend.Delay = 100 * time.Millisecond
	set := providers.NewSet()
	set.Add(memprov.New(backend, memprov.Options{Secret: "s"}))

	workerRDB := opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { workerRDB.Close() })
	l := ledger.New(workerRDB, &ledger.Options{Shards: shards})
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{
		LeaseTTL: 3 * time.Second, Logger: quiet,
		Backoff: tasks.Backoff{Base: 50 * time.Millisecond, Max: 500 * time.Millisecond},
	})
	srv, mux := tasks.NewServer(opt, h, tasks.ServerOptions{Concurrency: 20, TaskCheckInterval: 20 * time.Millisecond,
		DelayedTaskCheckInterval: 200 * time.Millisecond, ShutdownTimeout: 2 * time.Second, Logger: quiet})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	inspector := asynq.NewInspector(opt)
	t.Cleanup(func() { inspector.Close() })
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	rec := tasks.NewReconciler(l, inspector, client, set.Names(), &tasks.ReconcilerOptions{Interval: time.Second, Grace: 3 * time.Second, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go rec.Run(ctx)

	prodRDB := opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { prodRDB.Close() })
	enq := tasks.NewEnqueuer(client, ledger.New(prodRDB, &ledger.Options{Shards: shards}), set, nil)
	const n = 120
	accepted := make([]time.Time, n)
	var resent, sent atomic.Int64
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; i < n; i += 10 {
			var batch [][]byte
			for j := i; j < i+10; j++ {
				batch = append(batch, memOrder(fmt.Sprintf("CF%03d", j)))
			}
			for {
				if ctx.Err() != nil {
					return
				}
				c, cc := context.WithTimeout(ctx, 5*time.Second)
				results := enq.EnqueueBatch(c, batch)
				cc()
				ok := true
				for _, r := range results {
					if r.Err != nil || (r.Status != tasks.Enqueued && r.Status != tasks.Duplicate) {
						ok = false
					}
				}
				if ok {
					for j := i; j < i+10; j++ {
						accepted[j] = time.Now()
					}
					break
				}
				resent.Add(1)
				time.Sleep(200 * time.Millisecond)
			}
			sent.Store(int64(i + 10))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	waitSent := func(k int64) {
		deadline := time.Now().Add(90 * time.Second)
		for sent.Load() < k {
			if time.Now().After(deadline) {
				t.Fatalf("producer stuck at %d orders", sent.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	masterOf := func(shard int) int {
		m, _ := cl.MasterFor("orderworker:{" + ledger.ShardTag("ledger", shard, shards) + "}:x")
		return m
	}
	waitSent(30)
	start := time.Now()
	promoted := cl.Failover(t, masterOf(0))
	t.Logf("CLUSTER FAILOVER of shard 0's master: %s took over in %s", promoted.Addr, time.Since(start).Round(time.Millisecond))
	waitSent(70)
	start = time.Now()
	killed, promoted := cl.KillMaster(t, masterOf(1))
	t.Logf("SIGKILL of shard 1's master %s: %s promoted %s later", killed.Addr, promoted.Addr, time.Since(start).Round(time.Millisecond))
	<-produced

	deadline := time.Now().Add(4 * time.Minute)
	var delays []time.Duration
	for i := range n {
		no := fmt.Sprintf("CF%03d", i)
		for {
			r, err := l.Get(ctx, tasks.OrderRef{Provider: memprov.Name, OrderNo: no})
			if err == nil && r != nil && r.State == tasks.StatePaid {
				delays = append(delays, r.OutcomeAt.Sub(accepted[i]))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s: %+v, %v; want paid", no, r, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	doubled := 0
	for i := range n {
		if c := backend.Count(fmt.Sprintf("CF%03d", i)); c != 1 {
			doubled++
			t.Errorf("order CF%03d: created %d times at the provider, want 1", i, c)
		}
	}
	sort.Slice(delays, func(a, b int) bool { return delays[a] < delays[b] })
	t.Logf("cluster failover accounting: %d orders, %d paid, %d created twice; creates %d, lookups %d; batches sent again %d; accepted-to-paid p50 %s, max %s",
		n, len(delays), doubled, backend.Calls("create"), backend.Calls("lookup"), resent.Load(),
		delays[len(delays)/2].Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond))
}
