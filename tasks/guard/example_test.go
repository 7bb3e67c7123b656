package guard_test

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/guard"
)

// Wiring a Guard into the order handler, as cmd/worker does.
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	reg := prometheus.NewRegistry()
	g := guard.New(rdb, &guard.Options{
		Limits: map[string]guard.Limit{
			"tencent":        {Rate: 20, Burst: 5}, // every worker together
			"aliyun/acct-01": {Rate: 5, Burst: 1},  // one account
		},
		FailureThreshold: 5,
		Cooldown:         30 * time.Second,
		Providers:        []string{"tencent", "aliyun", "unicloud"},
		Registerer:       reg,
	})
	_ = &tasks.HandlerOptions{Guard: g}
}
