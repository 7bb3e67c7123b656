package guard

import (
	"context"
	"testing"

	"github.com/orderworker/orderworker/tasks/taskstest"
)

// BenchmarkLimit measures one limiter round trip, paid by every HTTP
// request to a limited provider: the script on a real redis-server, with a
// limit high enough never to make a request wait.
func BenchmarkLimit(b *testing.B) {
	srv := taskstest.StartRedis(b, nil)
	g := New(srv.Client(b), &Options{Limits: map[string]Limit{"tencent": {Rate: 1e6, Burst: 1 << 30}}, Logger: quiet})
	ctx := context.Background()
	for b.Loop() {
		if _, ok, err := g.reserve(ctx, "tencent", 0); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkWait is the breaker check before each operation: no Redis.
func BenchmarkWait(b *testing.B) {
	g := New(nil, &Options{Logger: quiet})
	ctx := context.Background()
	for b.Loop() {
		if _, err := g.Wait(ctx, "tencent"); err != nil {
			b.Fatal(err)
		}
		g.Done("tencent", nil)
	}
}
