package tasks_test

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// RESP2 keeps every setting of the options it wraps and only changes the
// protocol; the clients it makes work with asynq.
func TestRESP2KeepsTheOptions(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	opt, err := tasks.ParseRedisURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	c, ok := tasks.RESP2(opt).MakeRedisClient().(*redis.Client)
	if !ok {
		t.Fatalf("RESP2(%T) made %T", opt, tasks.RESP2(opt).MakeRedisClient())
	}
	defer c.Close()
	o := c.Options()
	if o.Protocol != 2 || o.Addr != srv.Addr || o.Password != srv.Password || o.Username != srv.Username {
		t.Errorf("options = protocol %d addr %s user %q, want 2 %s %q and the password", o.Protocol, o.Addr, o.Username, srv.Addr, srv.Username)
	}
	if err := c.HSet(context.Background(), "h", "a", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if m, err := c.HGetAll(context.Background(), "h").Result(); err != nil || m["a"] != "1" {
		t.Errorf("HGETALL over RESP2 = %v, %v", m, err)
	}
	client := asynq.NewClient(tasks.RESP2(opt))
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask("t", nil)); err != nil {
		t.Errorf("asynq over RESP2: %v", err)
	}

	fo := tasks.RESP2(asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}, Password: "pw", DB: 3}).MakeRedisClient().(*redis.Client)
	defer fo.Close()
	if o := fo.Options(); o.Protocol != 2 || o.Password != "pw" || o.DB != 3 {
		t.Errorf("failover options = protocol %d db %d", o.Protocol, o.DB)
	}
	cl := tasks.RESP2(asynq.RedisClusterClientOpt{Addrs: []string{"127.0.0.1:1"}, Password: "pw"}).MakeRedisClient().(*redis.ClusterClient)
	defer cl.Close()
	if o := cl.Options(); o.Protocol != 2 || o.Password != "pw" || len(o.Addrs) != 1 {
		t.Errorf("cluster options = protocol %d addrs %v", o.Protocol, o.Addrs)
	}
}

// WithPoolSize sets the pool of every kind of client RESP2 makes.
func TestWithPoolSize(t *testing.T) {
	t.Parallel()
	for _, opt := range []asynq.RedisConnOpt{
		asynq.RedisClientOpt{Addr: "127.0.0.1:1"},
		asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}},
		asynq.RedisClusterClientOpt{Addrs: []string{"127.0.0.1:1"}},
		tasks.ClusterOpt{RedisClusterClientOpt: asynq.RedisClusterClientOpt{Addrs: []string{"127.0.0.1:1"}}},
	} {
		var got int
		switch c := tasks.WithPoolSize(tasks.RESP2(opt), 37).MakeRedisClient().(type) {
		case *redis.Client:
			got = c.Options().PoolSize
			c.Close()
		case *redis.ClusterClient:
			got = c.Options().PoolSize
			c.Close()
		}
		if got != 37 {
			t.Errorf("WithPoolSize(RESP2(%T), 37): pool size %d", opt, got)
		}
	}
}
