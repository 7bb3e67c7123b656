package tasks_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// The ledger stamps its index scores on Redis's clock, and the
// LedgerCollector measures ages on it too: a worker whose clock is 2 h
// ahead of Redis's does not report an order accepted a moment ago as 2 h
// old (firing the queued-too-long alert), nor one 2 h behind negative ages
// (silencing it).
func TestCollectorAgesOnRedisClock(t *testing.T) {
	t.Parallel()
	for _, off := range []time.Duration{-2 * time.Hour, 2 * time.Hour} {
		m := miniredis.RunT(t)
		m.SetTime(time.Now().Add(off)) // Redis's clock, 2 h off this process's
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		defer rdb.Close()
		l := ledger.New(rdb, &ledger.Options{Durable: ledger.DurableOff}) // miniredis keeps no replication section
		ctx := context.Background()
		if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "AGE-1"}, []byte(`{}`), "h"); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(tasks.NewLedgerCollector(l, []string{"tencent"}))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		seen := false
		for _, mf := range mfs {
			if mf.GetName() != "orderworker_order_oldest_age_seconds" {
				continue
			}
			for _, mm := range mf.GetMetric() {
				for _, lp := range mm.GetLabel() {
					if lp.GetName() == "state" && lp.GetValue() == "queued" {
						seen = true
						if age := mm.GetGauge().GetValue(); age < -1 || age > 60 {
							t.Errorf("Redis %v off: oldest queued age of an order accepted just now = %.0f s; want about 0", off, age)
						}
					}
				}
			}
		}
		if !seen {
			t.Errorf("Redis %v off: no orderworker_order_oldest_age_seconds{state=queued}", off)
		}
	}
}

// A task's claim mark (no create of the order leaves before it) is never
// later than the clock of the master that holds its record, as the
// creates' own times are. A producer reads Redis's clock once every 30 s:
// after a failover to a master whose clock is behind the old one's, a mark
// from the old reading would fall after creates stamped on the new master,
// and a lookup from it (should Redis lose the record) miss the order. The
// claim refuses such a mark, and the producer reads the clock again. The
// two-step enqueue (claim, then asynq's client) marks the task with the
// record's own creation time.
func TestClaimMarkNeverAheadOfTheMaster(t *testing.T) {
	t.Parallel()
	set := providers.NewSet()
	set.Add(memprov.New(memprov.NewBackend("s"), memprov.Options{Secret: "s"}))
	for _, twoStep := range []bool{false, true} {
		m := miniredis.RunT(t)
		start := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
		m.SetTime(start)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		defer rdb.Close()
		client := asynq.NewClient(asynq.RedisClientOpt{Addr: m.Addr()})
		defer client.Close()
		var opts *tasks.EnqueuerOptions
		if twoStep {
			// Options asynq's client applies: claim, then enqueue.
			opts = &tasks.EnqueuerOptions{TaskOptions: []asynq.Option{asynq.Retention(time.Hour)}}
		}
		l := ledger.New(rdb, &ledger.Options{Durable: ledger.DurableOff})
		enq := tasks.NewEnqueuer(client, l, set, opts)
		ctx := context.Background()
		if res, err := enq.Enqueue(ctx, memOrder("MARK-1")); err != nil || res.Status != tasks.Enqueued {
			t.Fatalf("two-step %v: first Enqueue = %+v, %v", twoStep, res, err)
		}
		// The master fails over to one whose clock is an hour behind,
		// then to one behind that one: an order through Enqueue, then
		// two through EnqueueBatch.
		m.SetTime(start.Add(-time.Hour))
		if res, err := enq.Enqueue(ctx, memOrder("MARK-2")); err != nil || res.Status != tasks.Enqueued {
			t.Fatalf("two-step %v: Enqueue MARK-2 = %+v, %v", twoStep, res, err)
		}
		m.SetTime(start.Add(-2 * time.Hour))
		for _, r := range enq.EnqueueBatch(ctx, [][]byte{memOrder("MARK-3"), memOrder("MARK-4")}) {
			if r.Err != nil || r.Status != tasks.Enqueued {
				t.Fatalf("two-step %v: EnqueueBatch = %+v, %v", twoStep, r.EnqueueResult, r.Err)
			}
		}
		for _, no := range []string{"MARK-2", "MARK-3", "MARK-4"} {
			rec, err := l.Get(ctx, ledger.Ref{Provider: memprov.Name, OrderNo: no})
			if err != nil || rec == nil {
				t.Fatalf("Get %s = %v, %v", no, rec, err)
			}
			info, err := asynq.NewInspector(asynq.RedisClientOpt{Addr: m.Addr()}).GetTaskInfo(tasks.DefaultQueue, tasks.TaskID(memprov.Name, no))
			if err != nil {
				t.Fatalf("two-step %v: task of %s: %v", twoStep, no, err)
			}
			ms, _, _ := strings.Cut(info.Headers["orderworker-claimed"], ":")
			mark, err := strconv.ParseInt(ms, 10, 64)
			if err != nil {
				t.Fatalf("two-step %v: claim mark of %s = %q", twoStep, no, info.Headers["orderworker-claimed"])
			}
			if at := time.UnixMilli(mark).UTC(); at.After(rec.CreatedAt) {
				t.Errorf("two-step %v: %s's claim mark %v is %v after its record's creation %v on the master's clock",
					twoStep, no, at, at.Sub(rec.CreatedAt), rec.CreatedAt)
			}
		}
	}
}

// A resend that finds the order still queued without its task (its
// producer died between the claim and the enqueue) queues the task marked
// no later than the master's clock now, not with the record's creation
// time, which may be on another clock: an earlier master's, ahead of this
// one, or an older producer's own (8 h ahead, a server on local time).
func TestRepairedTaskMarkNotAheadOfTheMaster(t *testing.T) {
	t.Parallel()
	provs := providers.NewSet()
	provs.Add(memprov.New(memprov.NewBackend("s"), memprov.Options{Secret: "s"}))
	for _, tc := range []string{"failover-behind", "producer-clock"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			m := miniredis.RunT(t)
			start := time.Now().Truncate(time.Millisecond)
			m.SetTime(start) // miniredis's clock stands still from here
			set := time.Now()
			rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
			defer rdb.Close()
			client := asynq.NewClient(asynq.RedisClientOpt{Addr: m.Addr()})
			defer client.Close()
			ctx := context.Background()
			const no = "REPAIR-1"
			lo := &ledger.Options{Durable: ledger.DurableOff}
			if tc == "producer-clock" {
				// A producer that stamped records on its own clock.
				lo.Now = func() time.Time { return time.Now().Add(8 * time.Hour) }
			}
			if res, err := tasks.NewEnqueuer(client, ledger.New(rdb, lo), provs, nil).Enqueue(ctx, memOrder(no)); err != nil || res.Status != tasks.Enqueued {
				t.Fatalf("first send = %+v, %v", res, err)
			}
			ins := asynq.NewInspector(asynq.RedisClientOpt{Addr: m.Addr()})
			defer ins.Close()
			if err := ins.DeleteTask(tasks.DefaultQueue, tasks.TaskID(memprov.Name, no)); err != nil {
				t.Fatal(err) // as if its producer died between the writes
			}
			if tc == "failover-behind" {
				m.SetTime(start.Add(-time.Hour))
				set = time.Now()
			}
			for _, twoStep := range []bool{false, true} {
				var opts *tasks.EnqueuerOptions
				if twoStep {
					opts = &tasks.EnqueuerOptions{TaskOptions: []asynq.Option{asynq.Retention(time.Hour)}}
				}
				res, err := tasks.NewEnqueuer(client, ledger.New(rdb, &ledger.Options{Durable: ledger.DurableOff}), provs, opts).Enqueue(ctx, memOrder(no))
				if err != nil || res.Status != tasks.Duplicate || (!twoStep && !res.Repaired) {
					t.Fatalf("two-step %v: resend = %+v, %v; want a duplicate that queued the task", twoStep, res, err)
				}
				info, err := ins.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID(memprov.Name, no))
				if err != nil {
					t.Fatal(err)
				}
				ms, _, _ := strings.Cut(info.Headers["orderworker-claimed"], ":")
				mark, err := strconv.ParseInt(ms, 10, 64)
				if err != nil {
					t.Fatalf("claim mark %q", info.Headers["orderworker-claimed"])
				}
				redisNow, err := rdb.Time(ctx).Result()
				if err != nil {
					t.Fatal(err)
				}
				// A real clock would have moved on since it was set.
				redisNow = redisNow.Add(time.Since(set))
				if at := time.UnixMilli(mark); at.After(redisNow) {
					t.Errorf("two-step %v: the repaired task's mark %v is %v ahead of the master's clock", twoStep, at.UTC(), at.Sub(redisNow))
				}
				if err := ins.DeleteTask(tasks.DefaultQueue, tasks.TaskID(memprov.Name, no)); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// The history's times are on Redis's clock, as the record's other times
// are (and as an operator's entries are): with Redis's clock an hour
// behind this process's, the create and a resolve are recorded at the time
// Redis says.
func TestHistoryOnRedisClock(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	m.SetTime(time.Now().Add(-time.Hour))
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	b := memprov.NewBackend("s")
	b.Pending = true
	set := providers.NewSet()
	set.Add(memprov.New(b, memprov.Options{Secret: "s"}))
	l := ledger.New(rdb, &ledger.Options{Durable: ledger.DurableOff}) // miniredis keeps no replication section
	ctx := context.Background()
	ref := ledger.Ref{Provider: memprov.Name, OrderNo: "HIST-1"}
	params := []byte(`{"item":"sku-1","qty":2}`)
	hash, err := tasks.ParamsHash(params)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Claim(ctx, ref, params, hash); err != nil {
		t.Fatal(err)
	}
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Logger: quiet, ListingLag: -1})
	task, _ := tasks.NewOrderSubmitTask(tasks.Payload{Provider: memprov.Name, OrderNo: "HIST-1", Params: params})
	_ = h.ProcessTask(ctx, task) // created pending: the task waits to poll
	if _, err := l.Resolve(ctx, ref, ledger.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "M1", Note: "paid by hand", By: "Operator"}); err != nil {
		t.Fatal(err)
	}
	rec, _ := l.Get(ctx, ref)
	if len(rec.History) != 2 {
		t.Fatalf("history %+v; want the create and the resolve", rec.History)
	}
	for _, a := range rec.History {
		if off := time.Since(a.At); off < 59*time.Minute || off > 61*time.Minute {
			t.Errorf("%s recorded at %v, %v before this process's clock; want Redis's clock, an hour behind", a.Call, a.At, off.Round(time.Second))
		}
	}
}
