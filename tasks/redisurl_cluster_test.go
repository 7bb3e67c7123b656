package tasks

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/taskstest"
)

// redis-cluster:// to a real cluster of three masters with a password:
// naming every node, or one node only (the client learns the others from
// it). The task lands on the master that serves its queue's hash slot.
func TestRedisURLThroughCluster(t *testing.T) {
	t.Parallel()
	cl := taskstest.StartCluster(t, &taskstest.ClusterOptions{Masters: 3, Auth: true})
	master, _ := cl.MasterFor("asynq:{urltest}:pending")
	for _, c := range []struct{ name, url, id string }{
		{"every node", cl.URL(), "cluster-all"},
		{"one node", "redis-cluster://" + url.UserPassword("", cl.Password).String() + "@" + cl.Masters[(master+1)%3].Addr, "cluster-one"},
	} {
		t.Run(c.name, func(t *testing.T) {
			opt, err := ParseRedisURL(c.url)
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, opt, c.id)
			direct := redis.NewClient(&redis.Options{Addr: cl.Masters[master].Addr, Password: cl.Password})
			defer direct.Close()
			if n, err := direct.Exists(context.Background(), "asynq:{urltest}:t:"+c.id).Result(); err != nil || n != 1 {
				t.Errorf("task %s on master %s (slot of {urltest}): EXISTS = %d, %v", c.id, cl.Masters[master].Addr, n, err)
			}
		})
	}
}

// A cluster URL to a server that is not a cluster node, a database other
// than 0 on a cluster node, and a cluster's refusals are permanent (the
// worker exits with the reason instead of waiting); a cluster that is not
// there is not. No error shows a password.
func TestPermanentRedisErrorWithCluster(t *testing.T) {
	t.Parallel()
	cl := taskstest.StartCluster(t, &taskstest.ClusterOptions{Masters: 1, Auth: true})
	plain := taskstest.StartRedis(t, nil)
	wrong := taskstest.Password(t)
	// Port 1 (tcpmux), where nothing listens: a free port closed again
	// could be taken meanwhile by a server another test starts.
	gone := "127.0.0.1:1"
	node := cl.Masters[0].Addr
	for _, c := range []struct {
		name, url string
		permanent bool
		reason    string
	}{
		{"cluster URL to a plain server", "redis-cluster://" + plain.Addr, true, "cluster support disabled"},
		{"redis:// with a database to a cluster node", "redis://:" + cl.Password + "@" + node + "/3", true, "SELECT is not allowed in cluster mode"},
		{"wrong password", "redis-cluster://:" + wrong + "@" + node, true, "WRONGPASS"},
		{"no password", "redis-cluster://" + node, true, "NOAUTH"},
		{"nothing listening", "redis-cluster://:" + wrong + "@" + gone, false, "refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opt, err := ParseRedisURL(c.url)
			if err != nil {
				t.Fatal(err)
			}
			rdb := opt.MakeRedisClient().(redis.UniversalClient)
			defer rdb.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = rdb.Ping(ctx).Err()
			if err == nil {
				t.Fatal("PING succeeded")
			}
			if got := PermanentRedisError(err); got != c.permanent {
				t.Errorf("PermanentRedisError(%v) = %v, want %v", err, got, c.permanent)
			}
			reason := RedisErrorReason(err).Error()
			if !strings.Contains(reason, c.reason) {
				t.Errorf("reason %q does not say %q", reason, c.reason)
			}
			for _, pw := range []string{cl.Password, wrong} {
				if strings.Contains(reason, pw) || strings.Contains(err.Error(), pw) {
					t.Errorf("a password shows: %v / %s", err, reason)
				}
			}
		})
	}
}
