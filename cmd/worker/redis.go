package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// redisConn parses a Redis URL into asynq's connection options: asynq's own
// forms (redis://, rediss://, redis-socket://, redis-sentinel://) and
// redis-cluster://[user:password@]host:port,host:port[?tls=true].
func redisConn(raw string) (asynq.RedisConnOpt, error) {
	if rest, ok := strings.CutPrefix(raw, "redis-cluster://"); ok {
		u, err := url.Parse("redis://" + rest)
		if err != nil {
			return nil, fmt.Errorf("redis url: %s", redactURL(raw))
		}
		opt := asynq.RedisClusterClientOpt{Addrs: strings.Split(u.Host, ",")}
		if u.User != nil {
			opt.Username = u.User.Username()
			opt.Password, _ = u.User.Password()
		}
		return opt, nil
	}
	opt, err := asynq.ParseRedisURI(raw)
	if err != nil {
		return nil, fmt.Errorf("redis url %s: want redis://, rediss://, redis-sentinel:// or redis-cluster://", redactURL(raw))
	}
	return opt, nil
}

// redactURL hides a password in a URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// ledgerClient returns a go-redis client for the same server asynq uses.
func ledgerClient(opt asynq.RedisConnOpt) redis.UniversalClient {
	return opt.MakeRedisClient().(redis.UniversalClient)
}

func ping(ctx context.Context, c redis.UniversalClient, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.Ping(ctx).Err()
}
