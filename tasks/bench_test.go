package tasks_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/tasks"
)

// BenchmarkEnqueue measures accepting new orders (validate, claim in the
// ledger, enqueue the task) from 8 producers.
func BenchmarkEnqueue(b *testing.B) {
	e := setupBench(b)
	var n atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := e.enqueuer.Enqueue(context.Background(), order(fmt.Sprintf("B-%d", n.Add(1))))
			if err != nil || res.Status != tasks.Enqueued {
				b.Fatalf("Enqueue = %+v, %v", res, err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
}

// BenchmarkDuplicate measures the dedupe path: the same order again.
func BenchmarkDuplicate(b *testing.B) {
	e := setupBench(b)
	payload := order("B-dup")
	if _, err := e.enqueuer.Enqueue(context.Background(), payload); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res, err := e.enqueuer.Enqueue(context.Background(), payload); err != nil || res.Status != tasks.Duplicate {
				b.Fatalf("Enqueue = %+v, %v", res, err)
			}
		}
	})
}

// BenchmarkEndToEnd enqueues b.N orders and runs a worker (concurrency 50)
// until every one is paid at the Tencent sandbox over loopback HTTP:
// validation, ledger claim, dequeue, lock, two ledger transitions, signing
// and the HTTP call, per order.
func BenchmarkEndToEnd(b *testing.B) {
	e := setupBench(b)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				if _, err := e.enqueuer.Enqueue(context.Background(), order(fmt.Sprintf("E-%d", i))); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	srv, mux := tasks.NewServer(asynq.RedisClientOpt{Addr: e.redis.Addr}, e.handler, tasks.ServerOptions{
		Concurrency: 50, TaskCheckInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	for {
		st, err := e.ledger.Stats(context.Background(), []string{"tencent"})
		if err != nil {
			b.Fatal(err)
		}
		if st["tencent"][tasks.StatePaid].Count == int64(b.N) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N), "heapB/order")
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != b.N {
		b.Fatalf("ServiceCreateOrder called %d times for %d orders", n, b.N)
	}
}

func setupBench(b *testing.B) *env {
	b.Helper()
	return setup(b, &setupOpts{noServer: true})
}
