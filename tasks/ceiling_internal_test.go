package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
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
// the task, in one script) against asynq's task alone. Run with
// -benchtime 1x; it prints its figures.
func BenchmarkEnqueueCeiling(b *testing.B) {
	rs := taskstest.StartRedis(b, nil)
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
	const n, rounds = 5000, 3
	var sumA, sumE, sumC time.Duration
	for r := range rounds {
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
		s := time.Now()
		for _, q := range theirs {
			if _, err := client.Enqueue(asynq.NewTask(TypeOrderSubmit, q), asynq.Queue(DefaultQueue)); err != nil {
				b.Fatal(err)
			}
		}
		ta := time.Since(s)
		s = time.Now()
		for _, p := range ours {
			if res, err := enq.Enqueue(ctx, p); err != nil || res.Status != Enqueued {
				b.Fatalf("Enqueue = %+v, %v", res, err)
			}
		}
		te := time.Since(s)
		s = time.Now()
		for _, a := range claims {
			if c, err := enq.ledger.ClaimQueue(ctx, a); err != nil || !c.Created {
				b.Fatalf("ClaimQueue = %+v, %v", c, err)
			}
		}
		tc := time.Since(s)
		sumA, sumE, sumC = sumA+ta, sumE+te, sumC+tc
		us := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
		b.Logf("round %d: asynq Client.Enqueue %.1f µs an order; Enqueue %.1f µs (ratio %.2f); the claim round trip alone %.1f µs (ratio %.2f)",
			r+1, us(ta), us(te), ta.Seconds()/te.Seconds(), us(tc), ta.Seconds()/tc.Seconds())
		if err := rs.Client(b).FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(sumA.Seconds()/sumE.Seconds(), "enqueue-ratio")
	b.ReportMetric(sumA.Seconds()/sumC.Seconds(), "claim-only-ratio")
}
