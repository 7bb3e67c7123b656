package tasks_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
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

// Orders flow through a Sentinel deployment (a master, two replicas, three
// sentinels) while the master is failed over (SENTINEL FAILOVER) and then
// the new master is SIGKILLed. Every order must end paid, created exactly
// once at the provider: the in-flight mark written before each create waits
// for the replicas (durable writes, on by default), so no failover can make
// a create that was sent look unsent. The provider lets a number be created
// twice, so a double would show.
func TestSentinelFailoverNeverDoublesAnOrder(t *testing.T) {
	t.Parallel()
	s := taskstest.StartSentinel(t, &taskstest.SentinelOptions{DownAfter: time.Second})
	opt, err := tasks.ParseRedisURL(s.URL())
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
	l := ledger.New(workerRDB, nil)
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

	// Seconds without Redis, as a client sees them.
	var down atomic.Int64 // ms
	probe := opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { probe.Close() })
	go func() {
		for ctx.Err() == nil {
			c, cc := context.WithTimeout(ctx, 200*time.Millisecond)
			err := probe.Set(c, "failover-probe", "x", 0).Err()
			cc()
			if err != nil && ctx.Err() == nil {
				down.Add(100)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	// The producer: batches of 10; a batch that met the outage is sent
	// again (duplicates answer for what got in).
	prodRDB := opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { prodRDB.Close() })
	enq := tasks.NewEnqueuer(client, ledger.New(prodRDB, nil), set, nil)
	const n = 120
	accepted := make([]time.Time, n)
	var resent atomic.Int64
	var sent atomic.Int64
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; i < n; i += 10 {
			var batch [][]byte
			for j := i; j < i+10; j++ {
				batch = append(batch, memOrder(fmt.Sprintf("FO%03d", j)))
			}
			for try := 0; ; try++ {
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
		deadline := time.Now().Add(60 * time.Second)
		for sent.Load() < k {
			if time.Now().After(deadline) {
				t.Fatalf("producer stuck at %d orders", sent.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitSent(30)
	first := s.Failover(t)
	second := s.WaitNewMaster(t, first, 30*time.Second)
	t.Logf("SENTINEL FAILOVER: %s -> %s", first, second)
	waitSent(70)
	killed := s.KillMaster(t)
	third := s.WaitNewMaster(t, killed.Addr, 60*time.Second)
	t.Logf("SIGKILL of the master %s; new master %s", killed.Addr, third)
	<-produced

	reader := ledger.New(opt.MakeRedisClient().(redis.UniversalClient), nil)
	deadline := time.Now().Add(4 * time.Minute)
	var delays []time.Duration
	for i := 0; i < n; i++ {
		no := fmt.Sprintf("FO%03d", i)
		for {
			r, err := reader.Get(ctx, tasks.OrderRef{Provider: memprov.Name, OrderNo: no})
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
	for i := 0; i < n; i++ {
		if c := backend.Count(fmt.Sprintf("FO%03d", i)); c != 1 {
			doubled++
			t.Errorf("order FO%03d: created %d times at the provider, want 1", i, c)
		}
	}
	sort.Slice(delays, func(a, b int) bool { return delays[a] < delays[b] })
	var mu sync.Mutex
	mu.Lock()
	defer mu.Unlock()
	t.Logf("failover accounting: %d orders, %d paid, %d created twice; creates %d, lookups %d; batches sent again %d; "+
		"Redis unreachable for about %.1fs in all; accepted-to-paid p50 %s, max %s",
		n, len(delays), doubled, backend.Calls("create"), backend.Calls("lookup"), resent.Load(),
		float64(down.Load())/1000, delays[len(delays)/2].Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond))
}
