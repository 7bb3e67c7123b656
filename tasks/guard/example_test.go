package guard_test

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/guard"
)

// Wiring a Guard in, as cmd/worker does: its Transport under each
// provider's HTTP client, its breakers in the order handler.
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	reg := prometheus.NewRegistry()
	g := guard.New(rdb, &guard.Options{
		Limits: map[string]guard.Limit{
			"tencent": {Rate: 20, Burst: 5}, // requests per second, every worker together
		},
		FailureThreshold: 5,
		Cooldown:         30 * time.Second,
		Providers:        []string{"tencent", "aliyun", "unicloud"},
		Registerer:       reg,
	})
	// Each provider's Spec.Build(cfg, deps[name]) builds its HTTP client
	// on the transport, so every request it makes waits for its place
	// under the provider's limit. aliyun and unicloud have none: theirs
	// is the underlying transport itself.
	deps := map[string]providers.Deps{}
	for _, name := range []string{"tencent", "aliyun", "unicloud"} {
		deps[name] = providers.Deps{Redis: rdb, HTTPTransport: g.Transport(name, providers.NewTransport())}
	}
	// Each provider operation asks the breaker first.
	_ = &tasks.HandlerOptions{Guard: g}
}
