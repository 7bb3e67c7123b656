package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers/registry"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// BenchmarkEnqueueCeiling splits a one-call Enqueue's time, one goroutine,
// against asynq's own Client.Enqueue on the same redis-server, in
// alternating rounds: the whole Enqueue, and its claim round trip alone
// (ledger.ClaimQueue with its arguments built beforehand: Enqueue without
// its decoding, validation, hashing and argument building). The second
// ratio is the most any work on the client side could bring the first to;
// the rest is the claim itself (the order's record, its index entry and
// the task, in one script) against asynq's task alone. Rounds alternate
// between Redis's default hash-max-listpack-value (64) and the compose
// file's (1024), and each reports the Redis memory an order and a task
// take. Run with -benchtime 1x; it prints its figures.
func BenchmarkEnqueueCeiling(b *testing.B) {
	// A server of its own (never ORDERWORKER_TEST_REDIS_URL's): the rounds
	// change its settings, and its memory counts this benchmark's alone.
	rs := taskstest.StartRedis(b, &taskstest.Options{Args: []string{"--hash-max-listpack-value", "64"}})
	opt, err := asynq.ParseRedisURI(rs.URL())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	client := asynq.NewClient(opt)
	defer client.Close()
	rdb := RESP2(opt).MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	gc := asynq.NewClient(opt)
	defer gc.Close()
	enq := NewEnqueuer(gc, NewLedger(rdb), registry.Validators("enqueue only"), nil)
	payload := func(no string, i int) []byte {
		params, _ := json.Marshal(map[string]any{"CustomerId": "Bench" + strconv.Itoa(i%500), "ItemId": "D-FireInsurance2020", "ItemVNO": "FireBusiness", "ItemNum": 1 + i%5})
		p, _ := json.Marshal(map[string]any{"provider": "tencent", "order_no": no, "params": json.RawMessage(params)})
		return p
	}
	// Warm both paths (scripts loaded, connections open).
	if _, err := enq.Enqueue(ctx, payload("warm", 0)); err != nil {
		b.Fatal(err)
	}
	if _, err := client.Enqueue(asynq.NewTask(TypeOrderSubmit, payload("warm-a", 0)), asynq.Queue(DefaultQueue)); err != nil {
		b.Fatal(err)
	}
	// Rounds alternate between Redis's default encoding of small hashes
	// (hash-max-listpack-value 64) and the deployment's (1024, see the
	// compose file): an order's record and its task each hold a value
	// longer than 64 bytes (the params, the task's message), which by
	// default makes each a hash table.
	rc := rs.Client(b)
	const n, rounds = 5000, 6
	var sumA, sumE, sumC [2]time.Duration
	var memA, memE [2]int64
	for r := range rounds {
		cfg := r % 2
		setListpackValue(b, rc, [2]string{"64", "1024"}[cfg])
		tag := fmt.Sprintf("r%d-%d-", r, time.Now().UnixNano()%1e6)
		var ours, theirs [][]byte
		var claims []ledger.ClaimArgs
		for i := range n {
			ours = append(ours, payload("E"+tag+strconv.Itoa(i), i))
			theirs = append(theirs, payload("A"+tag+strconv.Itoa(i), i))
			p, err := decodeProduced(payload("C"+tag+strconv.Itoa(i), i))
			if err != nil {
				b.Fatal(err)
			}
			pr, err := enq.prepare(ctx, p)
			if err != nil {
				b.Fatal(err)
			}
			a, err := enq.claimArgs(ctx, pr)
			if err != nil {
				b.Fatal(err)
			}
			claims = append(claims, a)
		}
		m0 := usedMemory(b, rc)
		s := time.Now()
		for _, q := range theirs {
			if _, err := client.Enqueue(asynq.NewTask(TypeOrderSubmit, q), asynq.Queue(DefaultQueue)); err != nil {
				b.Fatal(err)
			}
		}
		ta := time.Since(s)
		m1 := usedMemory(b, rc)
		s = time.Now()
		for _, p := range ours {
			if res, err := enq.Enqueue(ctx, p); err != nil || res.Status != Enqueued {
				b.Fatalf("Enqueue = %+v, %v", res, err)
			}
		}
		te := time.Since(s)
		m2 := usedMemory(b, rc)
		s = time.Now()
		for _, a := range claims {
			if c, err := enq.ledger.ClaimQueue(ctx, a); err != nil || !c.Created {
				b.Fatalf("ClaimQueue = %+v, %v", c, err)
			}
		}
		tc := time.Since(s)
		sumA[cfg], sumE[cfg], sumC[cfg] = sumA[cfg]+ta, sumE[cfg]+te, sumC[cfg]+tc
		memA[cfg], memE[cfg] = memA[cfg]+(m1-m0), memE[cfg]+(m2-m1)
		us := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
		b.Logf("round %d (hash-max-listpack-value %s): asynq Client.Enqueue %.1f µs an order, %d bytes of Redis memory; Enqueue %.1f µs, %d bytes (ratio %.2f); the claim round trip alone %.1f µs (ratio %.2f)",
			r+1, [2]string{"64", "1024"}[cfg], us(ta), (m1-m0)/n, us(te), (m2-m1)/n, ta.Seconds()/te.Seconds(), us(tc), ta.Seconds()/tc.Seconds())
		if err := rc.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
	setListpackValue(b, rc, "64")
	const per = n * rounds / 2
	b.ReportMetric(sumA[0].Seconds()/sumE[0].Seconds(), "enqueue-ratio")
	b.ReportMetric(sumA[0].Seconds()/sumC[0].Seconds(), "claim-only-ratio")
	b.ReportMetric(sumA[1].Seconds()/sumE[1].Seconds(), "enqueue-ratio-1024")
	b.ReportMetric(sumA[1].Seconds()/sumC[1].Seconds(), "claim-only-ratio-1024")
	b.ReportMetric(float64(memE[0])/per, "B/order")
	b.ReportMetric(float64(memE[1])/per, "B/order-1024")
	b.ReportMetric(float64(memA[0])/per, "asynq-B/task")
	b.ReportMetric(float64(memA[1])/per, "asynq-B/task-1024")
}

// setListpackValue sets the longest value a Redis hash keeps in its
// compact encoding (listpack; ziplist before Redis 7).
func setListpackValue(b *testing.B, rc redis.UniversalClient, v string) {
	b.Helper()
	ctx := context.Background()
	if err := rc.ConfigSet(ctx, "hash-max-listpack-value", v).Err(); err != nil {
		if err2 := rc.ConfigSet(ctx, "hash-max-ziplist-value", v).Err(); err2 != nil {
			b.Fatalf("config set hash-max-listpack-value %s: %v", v, err)
		}
	}
}

// usedMemory is Redis's used_memory.
func usedMemory(b *testing.B, rc redis.UniversalClient) int64 {
	b.Helper()
	info, err := rc.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("INFO memory without used_memory")
	return 0
}

// BenchmarkEnqueueClientWork is the work a one-call Enqueue does on the
// client before its round trip, for one Tencent order: decoding the
// payload, validating and hashing its params, building the claim and its
// task (the script's keys and arguments, built by the ledger, are not in
// it). Redis is asked only for the clock and the -dev marker, which are
// read once a second at most.
func BenchmarkEnqueueClientWork(b *testing.B) {
	rs := taskstest.StartRedis(b, nil)
	opt, err := asynq.ParseRedisURI(rs.URL())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rdb := RESP2(opt).MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	gc := asynq.NewClient(opt)
	defer gc.Close()
	enq := NewEnqueuer(gc, NewLedger(rdb), registry.Validators("enqueue only"), nil)
	params, _ := json.Marshal(map[string]any{"CustomerId": "Bench1", "ItemId": "D-FireInsurance2020", "ItemVNO": "FireBusiness", "ItemNum": 3})
	data, _ := json.Marshal(map[string]any{"provider": "tencent", "order_no": "E-r1-12345-999", "params": json.RawMessage(params)})
	if res, err := enq.Enqueue(ctx, data); err != nil || res.Status != Enqueued {
		b.Fatalf("Enqueue = %+v, %v", res, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		p, err := decodeProduced(data)
		if err != nil {
			b.Fatal(err)
		}
		pr, err := enq.prepare(ctx, p)
		if err != nil || pr.done {
			b.Fatalf("prepare = %+v, %v", pr.res, err)
		}
		if _, err := enq.claimArgs(ctx, pr); err != nil {
			b.Fatal(err)
		}
	}
}
