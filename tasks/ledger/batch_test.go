package ledger

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/taskstest"
)

// pipelines counts the round trips a client makes: single commands and
// pipelines alike.
type pipelines struct{ trips, cmds atomic.Int64 }

func (p *pipelines) DialHook(next redis.DialHook) redis.DialHook { return next }
func (p *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		p.trips.Add(1)
		p.cmds.Add(1)
		return next(ctx, cmd)
	}
}
func (p *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		p.trips.Add(1)
		p.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// incrScript increments its key and answers the new value with its
// argument, so every caller can check it got its own reply.
var incrScript = redis.NewScript(`return {redis.call('INCR', KEYS[1]), ARGV[1]}`)

// Many goroutines running scripts at once each get their own reply, every
// script runs exactly once, and they share round trips; a script Redis
// lost (SCRIPT FLUSH) is loaded again and the calls go through.
func TestBatcherSharesRoundTrips(t *testing.T) {
	t.Parallel()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	hook := &pipelines{}
	rdb.AddHook(hook)
	l := New(rdb, &Options{Durable: DurableOff})
	const goroutines, each = 64, 60
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if g == 0 && i == each/2 {
					if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
						t.Error(err)
					}
				}
				key := "n:" + strconv.Itoa(g)
				tag := strconv.Itoa(g) + "/" + strconv.Itoa(i)
				v, ack, err := l.runShared(context.Background(), incrScript, true, []string{key}, tag)
				res, _ := v.([]any)
				if err != nil || !ack || len(res) != 2 || res[0] != int64(i+1) || res[1] != tag {
					bad.Add(1)
					t.Errorf("call %s = %v, %v, %v; want [%d %s]", tag, v, ack, err, i+1, tag)
				}
			}
		})
	}
	wg.Wait()
	if bad.Load() > 0 {
		return
	}
	for g := range goroutines {
		if n, err := rdb.Get(context.Background(), "n:"+strconv.Itoa(g)).Int(); err != nil || n != each {
			t.Errorf("key n:%d = %d, %v; want %d (every script run once)", g, n, err, each)
		}
	}
	calls := int64(goroutines * each)
	t.Logf("%d calls in %d round trips (%d commands)", calls, hook.trips.Load(), hook.cmds.Load())
	if hook.trips.Load() >= calls {
		t.Errorf("%d calls took %d round trips: no batch was shared", calls, hook.trips.Load())
	}
}

// A caller whose context is done before its batch is sent gets the
// context's error, and nothing runs for it; the others' calls go on.
func TestBatcherSkipsCancelledCalls(t *testing.T) {
	t.Parallel()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	b := &batcher{rdb: rdb}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	dead := &call{ctx: cancelled, script: incrScript, keys: []string{"dead"}, args: []any{"x"}}
	live := &call{ctx: context.Background(), script: incrScript, keys: []string{"live"}, args: []any{"y"}}
	for _, c := range []*call{dead, live} {
		c.done, c.promote = make(chan struct{}), make(chan struct{}, 1)
	}
	b.exec([]*call{dead, live})
	<-dead.done
	<-live.done
	if dead.err != context.Canceled || live.err != nil || !live.ack {
		t.Errorf("dead: %v; live: %v, ack %v", dead.err, live.err, live.ack)
	}
	if n, _ := rdb.Exists(context.Background(), "dead").Result(); n != 0 {
		t.Error("a cancelled call's script ran")
	}
}

// A pipeline that fails before any reply (no server, refused credentials)
// fails every call in it with that error, never with an empty reply.
func TestBatcherReportsPipelineFailures(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	l := New(rdb, &Options{Durable: DurableOff})
	v, ack, err := l.runShared(context.Background(), incrScript, true, []string{"k"}, "x")
	if err == nil || !strings.Contains(err.Error(), "refused") || ack || v != nil {
		t.Errorf("run against no server = %v, %v, %v; want the dial error", v, ack, err)
	}
}

// A client that syncs only to take a copy (redis-cli --rdb: port 0) is no
// replica: neither waited for nor counted toward the most replicas a
// master was seen with.
func TestConnectedReplicasLeavesOutCopyClients(t *testing.T) {
	for _, tt := range []struct {
		info string
		want int64
	}{
		{"# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid:abc\r\n", 0},
		{"role:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=0,state=wait_bgsave,offset=0,lag=0\r\nmaster_failover_state:no-failover\r\n", 0},
		{"role:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=9,lag=0\r\nslave1:ip=127.0.0.1,port=0,state=send_bulk,offset=0,lag=0\r\n", 1},
		{"role:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=9,lag=0\r\nslave1:ip=10.0.0.3,port=6380,state=wait_bgsave,offset=0,lag=0\r\nslave_read_only:1\r\n", 2},
		{"role:master\r\nconnected_slaves:3\r\n", 3}, // no slaveN lines listed
		// redis-cli --replica: online, but acknowledging nothing.
		{"role:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=0,state=online,offset=0,lag=1\r\n", 0},
		// A replica on a Unix socket only: no port, but it acknowledges.
		{"role:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=0,state=online,offset=101,lag=0\r\n", 1},
		{"role:master\r\nconnected_slaves:1\r\nslave0:ip=::1,port=6380,state=online,offset=9,lag=0\r\n", 1},
	} {
		if got := connectedReplicas(tt.info); got != tt.want {
			t.Errorf("connectedReplicas(%q) = %d, want %d", tt.info, got, tt.want)
		}
	}
	// A link whose replica died without closing it stays listed, online,
	// its lag growing: not live.
	info := "role:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=900,lag=0\r\nslave1:ip=10.0.0.3,port=6379,state=online,offset=500,lag=7\r\n"
	if got := liveReplicas(info, 3); got != 1 {
		t.Errorf("liveReplicas = %d, want 1 (one link 7 s silent)", got)
	}
}

// WatchReplicas counts a replica as seen only in sync and acknowledging
// (online, an offset, its last acknowledgement at most a second old), once
// per address: a dead link still listed beside the one that replaced it is
// neither a second replica nor, by its address, counted twice.
func TestSyncedReplicas(t *testing.T) {
	for _, tt := range []struct {
		info string
		want int64
	}{
		{"role:master\r\nconnected_slaves:0\r\n", 0},
		{"role:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=9,lag=0\r\nslave1:ip=10.0.0.3,port=6379,state=online,offset=9,lag=1\r\n", 2},
		// Still syncing, or silent for 2 s: not yet, or no longer.
		{"role:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=9,lag=0\r\nslave1:ip=10.0.0.3,port=6379,state=wait_bgsave,offset=0,lag=0\r\n", 1},
		{"role:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=9,lag=0\r\nslave1:ip=10.0.0.3,port=6379,state=online,offset=5,lag=2\r\n", 1},
		// A restarted replica's dead link beside its new one.
		{"role:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=9,lag=1\r\nslave1:ip=10.0.0.2,port=6379,state=online,offset=9,lag=0\r\n", 1},
		// A copy client.
		{"role:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=0,state=online,offset=0,lag=0\r\n", 0},
		// No slaveN lines: nothing to tell a live replica by.
		{"role:master\r\nconnected_slaves:3\r\n", 0},
		// Synced from disk, before its first acknowledgement: offset 0.
		{"role:master\r\nconnected_slaves:1\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=0,lag=0\r\n", 1},
		// A lag from a clock stepped back, or none given: not counted.
		{"role:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=9,lag=-3\r\nslave1:ip=10.0.0.3,port=6379,state=online,offset=9\r\n", 0},
		// Two replicas on Unix sockets: each counts.
		{"role:master\r\nconnected_slaves:2\r\nslave0:ip=/tmp/r1.sock,port=0,state=online,offset=9,lag=0\r\nslave1:ip=/tmp/r1.sock,port=0,state=online,offset=9,lag=1\r\n", 2},
	} {
		if got := syncedReplicas(tt.info); got != tt.want {
			t.Errorf("syncedReplicas(%q) = %d, want %d", tt.info, got, tt.want)
		}
	}
}

// A master seen with more replicas while an earlier count of it is being
// recorded has the higher count recorded too, once the first is: not only
// at this process's next sight of it.
func TestHigherReplicaCountSeenWhileRecordingIsRecorded(t *testing.T) {
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	l := New(rdb, nil)
	l.replicasMu.Lock()
	l.sawReplicas("replid-1", 1)
	l.sawReplicas("replid-1", 2) // while the first is recorded
	l.replicasMu.Unlock()
	for end := time.Now().Add(5 * time.Second); rdb.HGet(context.Background(), replicatedKey, "replid-1").Val() != "2"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("recorded %q, want 2", rdb.HGet(context.Background(), replicatedKey, "replid-1").Val())
		}
	}
}

// A master without a record of its own inherits the hold of the master
// last recorded when it was never promoted (restarted, its backlog freed):
// not when promoted, nor when the server does not say (no
// master_replid2), nor from a record of its own.
func TestRestartedFrom(t *testing.T) {
	t.Parallel()
	const a, b, zeros = "aaaa", "bbbb", "0000000000000000000000000000000000000000"
	rec := map[string]string{a: "2", lastMasterField: a}
	for _, tt := range []struct {
		name            string
		all             map[string]string
		replid, replid2 string
		want            int64
	}{
		{"restarted", rec, b, zeros, 2},
		{"promoted", rec, b, a, 0},
		{"replid2 not given", rec, b, "", 0},
		{"the last itself", rec, a, zeros, 0},
		{"a record of its own", map[string]string{a: "2", b: "1", lastMasterField: a}, b, zeros, 0},
		{"no last (an earlier version's records)", map[string]string{a: "2"}, b, zeros, 0},
		{"an earlier version's time", map[string]string{a: "1796606327556", lastMasterField: a}, b, zeros, 1},
	} {
		if got := restartedFrom(tt.all, tt.replid, tt.replid2); got != tt.want {
			t.Errorf("%s: restartedFrom = %d, want %d", tt.name, got, tt.want)
		}
	}
}
