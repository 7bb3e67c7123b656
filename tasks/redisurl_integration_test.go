package tasks

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/taskstest"
)

// roundTrip enqueues a task through opt, reads it back with an Inspector
// and pings through opt's go-redis client: what the worker and the
// producers do first, without the ledger.
func roundTrip(t *testing.T, opt asynq.RedisConnOpt, id string) {
	t.Helper()
	client := asynq.NewClient(opt)
	defer client.Close()
	payload := []byte(`{"check":"` + id + `"}`)
	if _, err := client.Enqueue(asynq.NewTask("test:url", payload), asynq.Queue("urltest"), asynq.TaskID(id)); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	info, err := insp.GetTaskInfo("urltest", id)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if string(info.Payload) != string(payload) {
		t.Errorf("task payload = %s, want %s", info.Payload, payload)
	}
	rdb := opt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING through MakeRedisClient: %v", err)
	}
}

// asynqKeysIn counts asynq's keys in database db of s.
func asynqKeysIn(t *testing.T, s *taskstest.Server, db int) int {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Username: s.Username, Password: s.Password, DB: db})
	defer c.Close()
	keys, err := c.Keys(context.Background(), "asynq:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

func userURL(scheme, user, pw, hostAndPath string) string {
	return scheme + "://" + url.UserPassword(user, pw).String() + "@" + hostAndPath
}

// The ACL user (the default user off) through redis://, redis-socket://
// and rediss://: user name, password, database and TLS all arrive.
func TestRedisURLWithACLUser(t *testing.T) {
	t.Parallel()
	acl := taskstest.StartACLRedis(t)
	tlsSrv := taskstest.StartTLSRedis(t)

	t.Run("redis", func(t *testing.T) {
		opt, err := ParseRedisURL(userURL("redis", acl.Username, acl.Password, acl.Addr+"/3"))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, opt, "acl-redis")
		if n := asynqKeysIn(t, acl, 3); n == 0 {
			t.Error("no asynq key in database 3")
		}
	})
	t.Run("redis-socket", func(t *testing.T) {
		opt, err := ParseRedisURL(userURL("redis-socket", acl.Username, acl.Password, acl.Socket+"?db=5"))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, opt, "acl-socket")
		if n := asynqKeysIn(t, acl, 5); n == 0 {
			t.Error("no asynq key in database 5")
		}
	})
	t.Run("rediss", func(t *testing.T) {
		opt, err := ParseRedisURL(userURL("rediss", tlsSrv.Username, tlsSrv.Password, tlsSrv.TLSAddr+"/2"))
		if err != nil {
			t.Fatal(err)
		}
		// The test CA is no system's: trust it here; the server name
		// checked is the URL's host.
		opt.(asynq.RedisClientOpt).TLSConfig.RootCAs = tlsSrv.Roots
		roundTrip(t, opt, "acl-tls")
		if n := asynqKeysIn(t, tlsSrv.Server, 2); n == 0 {
			t.Error("no asynq key in database 2")
		}
	})
	if n := asynqKeysIn(t, acl, 0); n != 0 {
		t.Errorf("%d asynq keys in database 0, want none: every URL named another database", n)
	}
}

// redis-sentinel:// to a password-protected master behind sentinels with a
// password of their own; the same client goes on after a failover.
func TestRedisURLThroughSentinel(t *testing.T) {
	t.Parallel()
	s := taskstest.StartSentinel(t, &taskstest.SentinelOptions{SentinelAuth: true})
	raw := "redis-sentinel://" + url.UserPassword("", s.SentinelPassword).String() + "@" + strings.Join(s.SentinelAddrs, ",") +
		"/4?master=" + s.MasterName + "&password=" + url.QueryEscape(s.Password)
	opt, err := ParseRedisURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, opt, "sentinel-1")
	if n := asynqKeysIn(t, s.Master(t), 4); n == 0 {
		t.Error("no asynq key in database 4 of the master")
	}

	// Every replica holds the task before the failover starts.
	if n, err := s.Master(t).Client(t).Wait(context.Background(), len(s.Servers)-1, 5*time.Second).Result(); err != nil || n != int64(len(s.Servers)-1) {
		t.Fatalf("WAIT = %d, %v; want every replica", n, err)
	}
	old := s.Failover(t)
	s.WaitNewMaster(t, old, 30*time.Second)
	// The first commands after the switch may meet the old master,
	// now read-only, or a closed connection; go-redis moves on.
	deadline := time.Now().Add(15 * time.Second)
	client := asynq.NewClient(opt)
	defer client.Close()
	for {
		_, err := client.Enqueue(asynq.NewTask("test:url", nil), asynq.Queue("urltest"), asynq.TaskID("sentinel-2"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("enqueue after the failover: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	if _, err := insp.GetTaskInfo("urltest", "sentinel-2"); err != nil {
		t.Fatalf("inspect after the failover: %v", err)
	}
	if _, err := insp.GetTaskInfo("urltest", "sentinel-1"); err != nil {
		t.Errorf("the task enqueued before the failover is gone from the new master: %v", err)
	}
}

// Real servers' refusals are permanent, and the error never shows a
// password; servers that are away are not.
func TestPermanentRedisErrorFromRealServers(t *testing.T) {
	t.Parallel()
	acl := taskstest.StartACLRedis(t)
	plain := taskstest.StartRedis(t, nil)
	tlsSrv := taskstest.StartTLSRedis(t)
	sen := taskstest.StartSentinel(t, &taskstest.SentinelOptions{SentinelAuth: true})
	ctx := context.Background()
	limited := taskstest.Password(t)
	if err := acl.Client(t).Do(ctx, "ACL", "SETUSER", "limited", "on", ">"+limited, "~*", "+@all", "-ping").Err(); err != nil {
		t.Fatal(err)
	}
	wrong := taskstest.Password(t)
	secrets := []string{acl.Password, tlsSrv.Password, sen.Password, sen.SentinelPassword, limited, wrong}
	hosts := strings.Join(sen.SentinelAddrs, ",")
	sentinelURL := func(spw, master, mpw string) string {
		return "redis-sentinel://" + url.UserPassword("", spw).String() + "@" + hosts + "/0?master=" + master + "&password=" + url.QueryEscape(mpw)
	}
	// Port 1 (tcpmux), where nothing listens: a free port closed again
	// could be taken meanwhile by a server another test starts (one run
	// met an HTTP server there).
	gone := "127.0.0.1:1"
	for _, c := range []struct {
		name, url string
		roots     bool // trust the TLS server's CA
		permanent bool
		reason    string
	}{
		{"wrong password", userURL("redis", acl.Username, wrong, acl.Addr+"/0"), false, true, "WRONGPASS"},
		{"password without the user name", "redis://:" + acl.Password + "@" + acl.Addr + "/0", false, true, "WRONGPASS"},
		{"no credentials", "redis://" + acl.Addr + "/0", false, true, "NOAUTH"},
		{"user may not PING", userURL("redis", "limited", limited, acl.Addr+"/0"), false, true, "NOPERM"},
		{"database 99", strings.TrimSuffix(plain.URL(), "/0") + "/99", false, true, "DB index is out of range"},
		{"TLS name mismatch", userURL("rediss", tlsSrv.Username, tlsSrv.Password, strings.Replace(tlsSrv.TLSAddr, "localhost", "127.0.0.1", 1)), true, true, "certificate"},
		{"sentinel: wrong master password", sentinelURL(sen.SentinelPassword, sen.MasterName, wrong), false, true, "WRONGPASS"},
		{"sentinel: no master password", sentinelURL(sen.SentinelPassword, sen.MasterName, ""), false, true, "NOAUTH"},
		{"sentinel: wrong sentinel password", sentinelURL(wrong, sen.MasterName, sen.Password), false, true, "WRONGPASS"},
		{"sentinel: unknown master", sentinelURL(sen.SentinelPassword, "no-such-master", sen.Password), false, true, "sentinel: no master"},
		{"sentinel URL to a plain server", "redis-sentinel://" + plain.Addr + "?master=m", false, true, "sentinel: ERR unknown command 'sentinel'"},
		{"nothing listening", userURL("redis", acl.Username, acl.Password, gone+"/0"), false, false, "refused"},
		{"no sentinel listening", "redis-sentinel://" + gone + "?master=m&password=" + wrong, false, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opt, err := ParseRedisURL(c.url)
			if err != nil {
				t.Fatal(err)
			}
			if c.roots {
				opt.(asynq.RedisClientOpt).TLSConfig.RootCAs = tlsSrv.Roots
			}
			rdb := opt.MakeRedisClient().(redis.UniversalClient)
			defer rdb.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err = rdb.Ping(ctx).Err()
			if err == nil {
				t.Fatal("PING succeeded")
			}
			if got := PermanentRedisError(err); got != c.permanent {
				t.Errorf("PermanentRedisError(%v) = %v, want %v", err, got, c.permanent)
			}
			reason := RedisErrorReason(err)
			if !errors.Is(reason, err) {
				t.Errorf("RedisErrorReason(%v) does not wrap it", err)
			}
			if !strings.Contains(reason.Error(), c.reason) || strings.Contains(reason.Error(), "\n") {
				t.Errorf("reason %q does not say %q on one line", reason, c.reason)
			}
			for _, s := range secrets {
				if s != "" && (strings.Contains(err.Error(), s) || strings.Contains(reason.Error(), s)) {
					t.Errorf("error %q shows a password", err)
				}
			}
		})
	}
}
