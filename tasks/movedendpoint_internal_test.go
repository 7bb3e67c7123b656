package tasks

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// After a failover that moved the address the client dials and left the
// old master running, the client's connections come to reach the new
// master (they are re-dialed after a lifetime): writes, refused while
// they reach the held old master, are accepted again on the new one,
// never on the old one. Without a lifetime, go-redis keeps a connection
// in use for as long as it is used, and the split never ends for it.
func TestConnectionsFollowAMovedEndpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := taskstest.StartRedis(t, nil)
	r := m.AttachReplica(t)
	p := taskstest.StartProxy(t, m.Addr)
	const life = time.Second
	rdb := RESP2(asynq.RedisClientOpt{Addr: p.Addr()}).(resp2Conn).makeClient(life).(redis.UniversalClient)
	defer rdb.Close()
	// (Held only to the most each master was seen with: the promoted
	// replica here has none of its own, which the default floor would
	// wait for; this test is of the connections.)
	l := ledger.New(rdb, &ledger.Options{WaitTimeout: 200 * time.Millisecond, NoAutoFloor: true})
	ref := func(no string) ledger.Ref { return ledger.Ref{Provider: "tencent", OrderNo: no} }
	for _, no := range []string{"A", "B", "C"} {
		if _, err := l.Claim(ctx, ref(no), []byte(`{}`), "h"); err != nil {
			t.Fatalf("claim %s before the failover: %v", no, err)
		}
	}
	time.Sleep(300 * time.Millisecond) // the hold recorded
	if err := r.Client(t).Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); !strings.Contains(m.Client(t).Info(ctx, "replication").Val(), "connected_slaves:0"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("old master still reports the replica")
		}
	}
	p.Move(r.Addr)
	moved := time.Now()
	var accepted []string
	refused := 0
	for i := 0; time.Since(moved) < 10*time.Second && len(accepted) < 5; i++ {
		no := fmt.Sprintf("N%d", i)
		if _, err := l.Claim(ctx, ref(no), []byte(`{}`), "h"); err != nil {
			refused++
			time.Sleep(20 * time.Millisecond)
			continue
		}
		accepted = append(accepted, no)
	}
	took := time.Since(moved)
	if len(accepted) < 5 {
		t.Fatalf("%d of the claims sent in %s after the endpoint moved were accepted (%d refused): the client's connections still reach the old master", len(accepted), took.Round(time.Millisecond), refused)
	}
	if took > 5*life {
		t.Errorf("writes resumed %s after the endpoint moved, want within a few connection lifetimes (%s)", took.Round(time.Millisecond), life)
	}
	for _, no := range accepted {
		key := "orderworker:{ledger}:order:tencent:" + no
		if n, _ := r.Client(t).Exists(ctx, key).Result(); n == 0 {
			t.Errorf("claim %s accepted, but its record is not on the new master", no)
		}
		if n, _ := m.Client(t).Exists(ctx, key).Result(); n != 0 {
			t.Errorf("claim %s accepted on the old master", no)
		}
	}
	t.Logf("writes resumed %s after the endpoint moved (%d claims refused meanwhile)", took.Round(time.Millisecond), refused)
}

// Every client the worker and the producers make re-dials its
// connections after connMaxLifetime: a plain address, Sentinel, Cluster.
func TestClientsHaveAConnectionLifetime(t *testing.T) {
	cluster := ClusterOpt{asynq.RedisClusterClientOpt{Addrs: []string{"127.0.0.1:1"}}}
	made := []any{cluster.MakeRedisClient()}
	for _, opt := range []asynq.RedisConnOpt{
		asynq.RedisClientOpt{Addr: "127.0.0.1:1"},
		asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}},
		asynq.RedisClusterClientOpt{Addrs: []string{"127.0.0.1:1"}},
		cluster,
	} {
		made = append(made, RESP2(opt).MakeRedisClient())
	}
	for _, c := range made {
		var life time.Duration
		switch c := c.(type) {
		case *redis.Client:
			life = c.Options().ConnMaxLifetime
		case *redis.ClusterClient:
			life = c.Options().ConnMaxLifetime
		}
		c.(io.Closer).Close()
		if life != connMaxLifetime {
			t.Errorf("%T: connections live %s, want %s", c, life, connMaxLifetime)
		}
	}
}
