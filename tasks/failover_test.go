package tasks_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
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
	// ORDERWORKER_MIN_REPLICAS=1, as the README says for a replicated
	// deployment: a master just promoted reports no replicas until they
	// attach, and without the floor its writes would count with no copy;
	// the SIGKILL that follows could then lose an accepted order.
	f := startFailoverRun(t, opt, 1, 1, "FO")

	// Seconds without Redis, as a client sees them.
	var down atomic.Int64 // ms
	probe := opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { probe.Close() })
	go func() {
		for f.ctx.Err() == nil {
			c, cc := context.WithTimeout(f.ctx, 200*time.Millisecond)
			err := probe.Set(c, "failover-probe", "x", 0).Err()
			cc()
			if err != nil && f.ctx.Err() == nil {
				down.Add(100)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	f.waitSent(30, 60*time.Second)
	first := s.Failover(t)
	second := s.WaitNewMaster(t, first, 30*time.Second)
	t.Logf("SENTINEL FAILOVER: %s -> %s", first, second)
	f.waitSent(70, 60*time.Second)
	// The second failure comes once both replicas follow the new master.
	// (Within the seconds before they do, a write can count with only the
	// replicas attached so far, and a second failover may promote the
	// other: no WAIT can cover a replica that is not connected.)
	for deadline := time.Now().Add(30 * time.Second); strings.Count(probe.Info(f.ctx, "replication").Val(), "state=online") < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the replicas did not follow the new master")
		}
		time.Sleep(50 * time.Millisecond)
	}
	killed := s.KillMaster(t)
	third := s.WaitNewMaster(t, killed.Addr, 60*time.Second)
	t.Logf("SIGKILL of the master %s; new master %s", killed.Addr, third)
	<-f.produced

	reader := ledger.New(opt.MakeRedisClient().(redis.UniversalClient), nil)
	delays, doubled := f.account(reader)
	t.Logf("failover accounting: %d orders, %d paid, %d created twice; creates %d, lookups %d; batches sent again %d; "+
		"Redis unreachable for about %.1fs in all; accepted-to-paid p50 %s, max %s",
		f.n, len(delays), doubled, f.backend.Calls("create"), f.backend.Calls("lookup"), f.resent.Load(),
		float64(down.Load())/1000, delays[len(delays)/2].Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond))
}

// failoverRun is what the failover tests put through a Redis that fails
// over: a worker (concurrency 20) and a reconciler on a ledger of the given
// shards, against a provider that answers in 100 ms and lets a number be
// created twice (so a double would show), and a producer that enqueues
// 120 orders in batches of 10, sending again a batch that met the outage
// (duplicates answer for what got in).
type failoverRun struct {
	t        *testing.T
	ctx      context.Context
	backend  *memprov.Backend
	prefix   string
	n        int
	accepted []time.Time
	sent     atomic.Int64 // orders accepted so far
	resent   atomic.Int64 // batches sent again
	produced chan struct{}
}

func startFailoverRun(t *testing.T, opt asynq.RedisConnOpt, shards int, minReplicas int64, prefix string) *failoverRun {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &failoverRun{t: t, backend: memprov.NewBackend("s"), prefix: prefix, n: 120, produced: make(chan struct{})}
	f.accepted = make([]time.Time, f.n)
	f.backend.Duplicates = true
	f.backend.Delay = 100 * time.Millisecond
	set := providers.NewSet()
	set.Add(memprov.New(f.backend, memprov.Options{Secret: "s"}))

	workerRDB := opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { workerRDB.Close() })
	l := ledger.New(workerRDB, &ledger.Options{Shards: shards, MinReplicas: minReplicas})
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{
		LeaseTTL: 3 * time.Second, Logger: quiet, ConfigWait: 500 * time.Millisecond,
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
	f.ctx = ctx
	go rec.Run(ctx)

	prodRDB := opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { prodRDB.Close() })
	enq := tasks.NewEnqueuer(client, ledger.New(prodRDB, &ledger.Options{Shards: shards, MinReplicas: minReplicas}), set, nil)
	go func() {
		defer close(f.produced)
		for i := 0; i < f.n; i += 10 {
			var batch [][]byte
			for j := i; j < i+10; j++ {
				batch = append(batch, memOrder(f.orderNo(j)))
			}
			for {
				if ctx.Err() != nil {
					return
				}
				c, cc := context.WithTimeout(ctx, 5*time.Second)
				results := enq.EnqueueBatch(c, batch)
				cc()
				ok := true
				var answers []string
				for k, r := range results {
					if r.Err != nil || (r.Status != tasks.Enqueued && r.Status != tasks.Duplicate) {
						ok = false
					}
					if r.Err != nil {
						answers = append(answers, fmt.Sprintf("%s: %v", f.orderNo(i+k), r.Err))
					} else if r.Status != tasks.Enqueued {
						answers = append(answers, fmt.Sprintf("%s: %s %s", f.orderNo(i+k), r.Status, r.State))
					}
				}
				if len(answers) > 0 {
					t.Logf("%s batch from %s: %s", time.Now().Format("15:04:05.000"), f.orderNo(i), strings.Join(answers, "; "))
				}
				if ok {
					for j := i; j < i+10; j++ {
						f.accepted[j] = time.Now()
					}
					break
				}
				f.resent.Add(1)
				time.Sleep(200 * time.Millisecond)
			}
			f.sent.Store(int64(i + 10))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return f
}

func (f *failoverRun) orderNo(i int) string { return fmt.Sprintf("%s%03d", f.prefix, i) }

// waitSent waits until the producer has had k orders accepted.
func (f *failoverRun) waitSent(k int64, timeout time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for f.sent.Load() < k {
		if time.Now().After(deadline) {
			f.t.Fatalf("producer stuck at %d orders", f.sent.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// account waits (up to 4 minutes) until every order is paid, as reader
// sees it, and fails the test for each order the provider holds other than
// once. It returns the accepted-to-paid delays, sorted, and the doubles.
func (f *failoverRun) account(reader *ledger.Ledger) (delays []time.Duration, doubled int) {
	f.t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for i := range f.n {
		no := f.orderNo(i)
		for {
			r, err := reader.Get(f.ctx, tasks.OrderRef{Provider: memprov.Name, OrderNo: no})
			if err == nil && r != nil && r.State == tasks.StatePaid {
				delays = append(delays, r.OutcomeAt.Sub(f.accepted[i]))
				break
			}
			if time.Now().After(deadline) {
				f.t.Fatalf("order %s: %+v, %v; want paid", no, r, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i := range f.n {
		if c := f.backend.Count(f.orderNo(i)); c != 1 {
			doubled++
			f.t.Errorf("order %s: created %d times at the provider, want 1", f.orderNo(i), c)
		}
	}
	sort.Slice(delays, func(a, b int) bool { return delays[a] < delays[b] })
	return delays, doubled
}

// A worker cut off from Redis in the middle of a create: its keepalive
// cannot extend the order's lease, so it abandons the call before the
// lease can expire; the worker that takes the order over finds the create
// in flight, looks the order up and records it, never creating it again.
func TestPartitionedWorkerNeverDoublesAnOrder(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	proxy := taskstest.StartProxy(t, rs.Addr)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	backend := memprov.NewBackend("s")
	backend.Duplicates = true
	backend.Delay = 2 * time.Second
	set := providers.NewSet()
	timed := &endTimed{Client: memprov.New(backend, memprov.Options{Secret: "s"}), ended: make(chan struct{}, 4)}
	set.Add(timed)

	direct := rs.Client(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: rs.Addr})
	t.Cleanup(func() { client.Close() })
	enq := tasks.NewEnqueuer(client, ledger.New(direct, nil), set, nil)
	if res, err := enq.Enqueue(context.Background(), memOrder("Part1")); err != nil || res.Status != tasks.Enqueued {
		t.Fatal(res, err)
	}
	task, err := tasks.NewOrderSubmitTask(tasks.Payload{Provider: memprov.Name, OrderNo: "Part1", Params: []byte(`{"item":"sku-1","qty":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 900 * time.Millisecond
	viaProxy := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { viaProxy.Close() })
	a := tasks.NewHandler(ledger.New(viaProxy, nil), set, &tasks.HandlerOptions{LeaseTTL: ttl, Logger: quiet})
	aDone := make(chan error, 1)
	go func() { aDone <- a.ProcessTask(context.Background(), task) }()
	deadline := time.Now().Add(10 * time.Second)
	for backend.Calls("create") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("worker A never sent the create")
		}
		time.Sleep(5 * time.Millisecond)
	}
	proxy.Cut() // A loses Redis mid-call
	select {
	case <-timed.ended:
	case <-time.After(ttl):
		t.Fatalf("worker A still in its call after the lease TTL: it did not abandon it")
	}
	// (Its run then tries to record the step for a while, Redis failing.)
	select {
	case err := <-aDone:
		if err == nil {
			t.Fatal("worker A finished the order without Redis")
		}
		t.Logf("worker A gave up: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatalf("worker A's run did not end without Redis")
	}
	// Worker B takes the task over once A's lease has expired.
	time.Sleep(ttl)
	b := tasks.NewHandler(ledger.New(direct, nil), set, &tasks.HandlerOptions{LeaseTTL: ttl, Logger: quiet})
	if err := b.ProcessTask(context.Background(), task); err != nil {
		t.Fatalf("worker B: %v", err)
	}
	rec, _ := ledger.New(direct, nil).Get(context.Background(), tasks.OrderRef{Provider: memprov.Name, OrderNo: "Part1"})
	if rec.State != tasks.StatePaid || backend.Count("Part1") != 1 || backend.Calls("create") != 1 {
		t.Fatalf("after the partition: %s, created %d times, %d creates; want paid, once", rec.State, backend.Count("Part1"), backend.Calls("create"))
	}
	var calls []string
	for _, at := range rec.History {
		calls = append(calls, at.Call+":"+at.Result)
	}
	if fmt.Sprint(calls) != "[submit:abandoned lookup:ok]" {
		t.Errorf("history = %v, want [submit:abandoned lookup:ok] (A's create recorded by B without an answer, which A could not record; then B's lookup)", calls)
	}
}

// A worker whose Redis master reports fewer replicas than
// ORDERWORKER_MIN_REPLICAS sends nothing: the order waits, unchanged, and
// the problem is reported (/readyz, orderworker_config_problem, for two
// minutes after it was last met). Once the master has its replica, the
// same worker pays the order once.
func TestTooFewReplicasHoldOrdersUnsent(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	backend := memprov.NewBackend("s")
	set := providers.NewSet()
	set.Add(memprov.New(backend, memprov.Options{Secret: "s"}))
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: rs.Addr})
	t.Cleanup(func() { client.Close() })
	ctx := context.Background()
	if res, err := tasks.NewEnqueuer(client, ledger.New(rdb, nil), set, nil).Enqueue(ctx, memOrder("Few1")); err != nil || res.Status != tasks.Enqueued {
		t.Fatal(res, err)
	}
	task, err := tasks.NewOrderSubmitTask(tasks.Payload{Provider: memprov.Name, OrderNo: "Few1", Params: []byte(`{"item":"sku-1","qty":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	problems := tasks.NewProblems()
	l := ledger.New(rdb, &ledger.Options{MinReplicas: 1})
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Problems: problems, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := h.ProcessTask(ctx, task); err == nil {
		t.Fatal("the order was processed on a master without the replicas required")
	}
	rec, _ := l.Get(ctx, tasks.OrderRef{Provider: memprov.Name, OrderNo: "Few1"})
	if backend.Calls("create") != 0 || rec.State != tasks.StateQueued || rec.Inflight != 0 || rec.Attempts != 0 {
		t.Errorf("after the refusal: %d creates, %s, inflight %d, attempts %d; want nothing sent, queued and unchanged", backend.Calls("create"), rec.State, rec.Inflight, rec.Attempts)
	}
	if err := problems.Err(); err == nil || !strings.Contains(err.Error(), tasks.ProblemReplicas) || !strings.Contains(err.Error(), "ORDERWORKER_MIN_REPLICAS") {
		t.Errorf("problems = %v, want %s naming ORDERWORKER_MIN_REPLICAS", err, tasks.ProblemReplicas)
	}

	rs.AttachReplica(t)
	// The same worker reads the replica count again within seconds.
	deadline := time.Now().Add(15 * time.Second)
	for h.ProcessTask(ctx, task) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the order did not proceed once the master had its replica")
		}
		time.Sleep(200 * time.Millisecond)
	}
	rec, _ = l.Get(ctx, tasks.OrderRef{Provider: memprov.Name, OrderNo: "Few1"})
	if rec.State != tasks.StatePaid || backend.Count("Few1") != 1 {
		t.Errorf("after the replica came: %s, created %d times; want paid once", rec.State, backend.Count("Few1"))
	}
}

// A failover's interleaving seen in a Sentinel run: the producer's claim
// and its task were written on a master that a failover then demoted (the
// replicas never got them); asynq had already dequeued the task from it,
// and its run reaches the ledger on the promoted replica, where the
// producer's resend (told "may have been accepted", or given no answer)
// records the order anew with a task of its own. Whichever of the two runs
// first, the order is created once, and goes on being polled after the
// demoted master resyncs and its task is gone (queued again by the
// reconciler where no other task stands for it).
func TestTaskFromADemotedMasterBesideTheResend(t *testing.T) {
	t.Parallel()
	for _, resendFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("resendFirst=%v", resendFirst), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := memprov.NewBackend("")
			b.Pending = true    // created pending, polled until paid
			b.Duplicates = true // a provider that would take the same order number twice
			newSrv, _, newL, set := memSetup(t, nil, memprov.New(b, memprov.Options{}))
			oldSrv := taskstest.StartRedis(t, nil)
			oldRdb := oldSrv.Client(t)
			newOpt, oldOpt := asynq.RedisClientOpt{Addr: newSrv.Addr}, asynq.RedisClientOpt{Addr: oldSrv.Addr}
			newClient, oldClient := asynq.NewClient(newOpt), asynq.NewClient(oldOpt)
			t.Cleanup(func() { newClient.Close(); oldClient.Close() })
			h := tasks.NewHandler(newL, set, &tasks.HandlerOptions{PollInterval: 20 * time.Millisecond, ListingLag: -1, Logger: quiet,
				Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}})
			serve := func(opt asynq.RedisClientOpt) *tasks.Server {
				s, mux := tasks.NewServer(opt, h, tasks.ServerOptions{Concurrency: 2, TaskCheckInterval: 10 * time.Millisecond,
					DelayedTaskCheckInterval: 20 * time.Millisecond, ShutdownTimeout: time.Second, Logger: quiet})
				if err := s.Start(mux); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.Shutdown)
				return s
			}
			const no = "Demoted-1"
			ref := ledger.Ref{Provider: memprov.Name, OrderNo: no}
			resend := func() {
				t.Helper()
				res, err := tasks.NewEnqueuer(newClient, newL, set, nil).Enqueue(ctx, memOrder(no))
				if err != nil || (res.Status != tasks.Enqueued && res.Status != tasks.Duplicate) {
					t.Fatalf("resend on the promoted replica = %+v, %v; want enqueued or duplicate", res, err)
				}
			}
			waitRecord := func(what string, ok func(*ledger.Record) bool) {
				t.Helper()
				for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
					if rec, _ := newL.Get(ctx, ref); ok(rec) {
						return
					}
					if time.Now().After(end) {
						rec, _ := newL.Get(ctx, ref)
						t.Fatalf("%s: record %+v", what, rec)
					}
				}
			}

			// The first send, on the master about to be demoted: its
			// record and task never reach the replica.
			if res, err := tasks.NewEnqueuer(oldClient, ledger.New(oldRdb, nil), set, nil).Enqueue(ctx, memOrder(no)); err != nil || res.Status != tasks.Enqueued {
				t.Fatalf("first send = %+v, %v", res, err)
			}
			if resendFirst {
				resend()
			}
			// A worker whose asynq server still dequeues from the demoted
			// master, its ledger already on the promoted replica.
			old := serve(oldOpt)
			waitRecord("the demoted master's task created the order, recorded on the promoted replica", func(r *ledger.Record) bool {
				return r != nil && r.State == ledger.StatePending
			})
			if !resendFirst {
				resend()
			}
			// The demoted master resyncs from the promoted replica: what
			// only it held is gone, its task with it.
			old.Shutdown()
			if err := oldRdb.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			serve(newOpt)
			r := tasks.NewReconciler(newL, asynq.NewInspector(newOpt), newClient, []string{memprov.Name},
				&tasks.ReconcilerOptions{Grace: time.Nanosecond, Logger: quiet})
			polls := b.Calls("lookup")
			for end := time.Now().Add(10 * time.Second); b.Calls("lookup") < polls+3; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(end) {
					rec, _ := newL.Get(ctx, ref)
					t.Fatalf("the order is no longer polled once the demoted master's task is gone: record %+v", rec)
				}
				if _, err := r.Sweep(ctx); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(300 * time.Millisecond) // any other run
			if n := b.Calls("create"); n != 1 {
				t.Fatalf("%d creates of %s; want 1", n, no)
			}
			if rec, _ := newL.Get(ctx, ref); rec == nil || rec.State != ledger.StatePending {
				t.Fatalf("record %+v; want pending", rec)
			}
		})
	}
}

// endTimed is a provider that says when each of its creates returned.
type endTimed struct {
	*memprov.Client
	ended chan struct{}
}

func (p *endTimed) Submit(ctx context.Context, o providers.Order) (providers.Result, error) {
	r, err := p.Client.Submit(ctx, o)
	p.ended <- struct{}{}
	return r, err
}
