package main

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ledgerClient returns a go-redis client for the same server asynq uses.
func ledgerClient(opt asynq.RedisConnOpt) redis.UniversalClient {
	return opt.MakeRedisClient().(redis.UniversalClient)
}

func ping(ctx context.Context, c redis.UniversalClient, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.Ping(ctx).Err()
}

// evictionPolicy returns the maxmemory-policy of each Redis master c
// writes to that evicts keys of any kind (allkeys-…), by address; an
// answer it cannot read (INFO refused, say) is left out.
func evictionPolicy(ctx context.Context, c redis.UniversalClient) map[string]string {
	out := map[string]string{}
	read := func(ctx context.Context, n *redis.Client) {
		info, err := n.Info(ctx, "memory").Result()
		if err != nil {
			return
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:"); ok && strings.HasPrefix(v, "allkeys-") {
				out[n.Options().Addr] = v
			}
		}
	}
	switch cc := c.(type) {
	case *redis.ClusterClient:
		var mu sync.Mutex
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			mu.Lock() // the callbacks run at once
			defer mu.Unlock()
			read(ctx, n)
			return nil
		})
	case *redis.Client:
		read(ctx, cc)
	}
	return out
}
