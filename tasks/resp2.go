package tasks

import (
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// RESP2 returns opt with every client it makes speaking RESP2 instead of
// go-redis's default RESP3. orderworker uses nothing RESP3 adds (push
// messages, client-side caching), and under RESP3 go-redis checks each
// reply for pending push notifications, work every command pays for.
// Options it does not know are returned as they are.
func RESP2(opt asynq.RedisConnOpt) asynq.RedisConnOpt {
	switch opt.(type) {
	case asynq.RedisClientOpt, asynq.RedisFailoverClientOpt, asynq.RedisClusterClientOpt:
		return resp2Conn{opt}
	}
	return opt
}

type resp2Conn struct{ asynq.RedisConnOpt }

// MakeRedisClient builds the client asynq's own MakeRedisClient would,
// with Protocol 2.
func (c resp2Conn) MakeRedisClient() any {
	switch o := c.RedisConnOpt.(type) {
	case asynq.RedisClientOpt:
		return redis.NewClient(&redis.Options{
			Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: o.PoolSize, TLSConfig: o.TLSConfig, Protocol: 2,
		})
	case asynq.RedisFailoverClientOpt:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: o.MasterName, SentinelAddrs: o.SentinelAddrs,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
			Username: o.Username, Password: o.Password, DB: o.DB,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: o.PoolSize, TLSConfig: o.TLSConfig, Protocol: 2,
		})
	case asynq.RedisClusterClientOpt:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: o.Addrs, MaxRedirects: o.MaxRedirects, Username: o.Username, Password: o.Password,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			TLSConfig: o.TLSConfig, Protocol: 2,
		})
	}
	return c.RedisConnOpt.MakeRedisClient()
}
