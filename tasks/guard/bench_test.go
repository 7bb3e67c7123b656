package guard

import (
	"context"
	"testing"

	"github.com/orderworker/orderworker/tasks/taskstest"
)

// BenchmarkWait measures one limiter round trip: the script on a real
// redis-server, with a limit high enough never to refuse.
func BenchmarkWait(b *testing.B) {
	srv := taskstest.StartRedis(b, nil)
	g := New(srv.Client(b), &Options{Limits: map[string]Limit{"tencent": {Rate: 1e6, Burst: 1 << 30}}, Logger: quiet})
	ctx := context.Background()
	for b.Loop() {
		if _, err := g.Wait(ctx, "tencent"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWaitAccount checks two limits (account and provider) in one
// round trip.
func BenchmarkWaitAccount(b *testing.B) {
	srv := taskstest.StartRedis(b, nil)
	g := New(srv.Client(b), &Options{Limits: map[string]Limit{
		"tencent":   {Rate: 1e6, Burst: 1 << 30},
		"tencent/a": {Rate: 1e6, Burst: 1 << 30},
	}, Logger: quiet})
	ctx := context.Background()
	for b.Loop() {
		if _, err := g.Wait(ctx, "tencent/a"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWaitUnlimited is the breaker alone: no limit, no Redis.
func BenchmarkWaitUnlimited(b *testing.B) {
	g := New(nil, &Options{Logger: quiet})
	ctx := context.Background()
	for b.Loop() {
		if _, err := g.Wait(ctx, "tencent"); err != nil {
			b.Fatal(err)
		}
		g.Done("tencent", nil)
	}
}
