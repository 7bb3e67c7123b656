package taskstest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestACLRedisLetsOnlyTheACLUserIn(t *testing.T) {
	t.Parallel()
	s := StartACLRedis(t)
	ctx := context.Background()
	if err := s.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING as %s: %v", s.Username, err)
	}
	for _, c := range []struct {
		name string
		opt  redis.Options
	}{
		{"no credentials", redis.Options{Addr: s.Addr}},
		{"password as the default user", redis.Options{Addr: s.Addr, Password: s.Password}},
		{"wrong password", redis.Options{Addr: s.Addr, Username: s.Username, Password: "not-" + s.Password}},
	} {
		c.opt.MaxRetries = -1
		rdb := redis.NewClient(&c.opt)
		err := rdb.Ping(ctx).Err()
		rdb.Close()
		if err == nil || !redis.IsAuthError(err) {
			t.Errorf("%s: PING = %v, want an auth error", c.name, err)
		}
	}
}

// The harness itself: a forced failover and a SIGKILLed master each give a
// new master that holds what the old one acknowledged (the write is waited
// into a replica), and a killed master started again comes back as a
// replica.
func TestSentinelFailoverAndKill(t *testing.T) {
	t.Parallel()
	s := StartSentinel(t, &SentinelOptions{SentinelAuth: true})
	ctx := context.Background()
	if !strings.HasPrefix(s.URL(), "redis-sentinel://:"+s.SentinelPassword+"@") {
		t.Errorf("URL %s lacks the sentinel password", s.URL())
	}
	first := s.MasterAddr(t)
	if first != s.Servers[0].Addr {
		t.Fatalf("master = %s, want the first server %s", first, s.Servers[0].Addr)
	}
	write := func(key string) {
		t.Helper()
		c := s.Master(t).Client(t)
		if err := c.Set(ctx, key, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Wait(ctx, len(s.Servers)-1, 5*time.Second).Result(); err != nil || n != int64(len(s.Servers)-1) {
			t.Fatalf("WAIT = %d, %v; want every replica", n, err)
		}
	}
	read := func(key string) {
		t.Helper()
		if got, err := s.Master(t).Client(t).Get(ctx, key).Result(); err != nil || got != "v" {
			t.Fatalf("GET %s on the new master = %q, %v", key, got, err)
		}
	}

	write("before-failover")
	start := time.Now()
	old := s.Failover(t)
	second := s.WaitNewMaster(t, old, 30*time.Second)
	t.Logf("SENTINEL FAILOVER: new master after %s", time.Since(start).Round(time.Millisecond))
	if second == first {
		t.Fatalf("failover kept master %s", first)
	}
	read("before-failover")
	s.WaitReplicas(t, len(s.Servers)-1, 30*time.Second)

	write("before-kill")
	start = time.Now()
	killed := s.KillMaster(t)
	if killed.Addr != second {
		t.Fatalf("KillMaster killed %s, want the master %s", killed.Addr, second)
	}
	third := s.WaitNewMaster(t, second, 30*time.Second)
	t.Logf("SIGKILL: new master after %s", time.Since(start).Round(time.Millisecond))
	if third == second {
		t.Fatalf("no new master after the kill")
	}
	read("before-kill")

	killed.Start(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		role, err := killed.role()
		if err == nil && role == "slave" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed master, started again, has role %q (%v), want slave\n%s", role, err, s.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
