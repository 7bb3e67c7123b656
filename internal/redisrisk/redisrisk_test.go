package redisrisk

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The settings are read again while the worker runs, not only at start: a
// failover promotes a replica configured otherwise, and CONFIG SET changes
// a master in place. A risk is logged when it appears and when it is gone,
// and exported as orderworker_redis_config_risk while it stands.
func TestRedisRisksAreWatched(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil) // no AOF: a persistence risk
	rdb := rs.Client(t)
	ctx := context.Background()
	var failInfo atomic.Bool
	watched := rs.Client(t)
	watched.AddHook(failInfoHook{&failInfo})
	var logs syncBuffer
	r := New(watched, Options{Replicated: false, Persistence: true, Unheld: "", Who: "worker"}, slog.New(slog.NewTextHandler(&logs, nil)))
	reg := prometheus.NewRegistry()
	reg.MustRegister(r)
	risks := func() map[string]bool {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, lp := range m.GetLabel() {
					labels[lp.GetName()] = lp.GetValue()
				}
				if labels["redis"] != rs.Addr || m.GetGauge().GetValue() != 1 {
					t.Errorf("%s %v = %v", mf.GetName(), labels, m.GetGauge().GetValue())
				}
				out[labels["risk"]] = true
			}
		}
		return out
	}
	r.Check(ctx)
	if got := risks(); !got["persistence"] || got["eviction"] {
		t.Fatalf("at start (no AOF, noeviction): risks %v; want persistence only", got)
	}
	if n := strings.Count(logs.String(), "may take back writes"); n != 1 {
		t.Errorf("the persistence warning was logged %d times, want 1:\n%s", n, logs.String())
	}
	// The policy changes while the worker runs.
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	r.Check(ctx)
	if got := risks(); !got["eviction"] || !got["persistence"] {
		t.Errorf("after CONFIG SET maxmemory-policy allkeys-lru: risks %v; want eviction and persistence", got)
	}
	if !strings.Contains(logs.String(), "maxmemory_policy=allkeys-lru") {
		t.Errorf("the eviction risk was not logged when it appeared:\n%s", logs.String())
	}
	if n := strings.Count(logs.String(), "may take back writes"); n != 1 {
		t.Errorf("the persistence warning was logged %d times, want once (it stands, unchanged):\n%s", n, logs.String())
	}
	// A read that fails is no risk put right: what was seen stands, and
	// nothing is logged.
	failInfo.Store(true)
	r.Check(ctx)
	failInfo.Store(false)
	if got := risks(); !got["eviction"] || !got["persistence"] {
		t.Errorf("after a check whose INFO failed: risks %v; want eviction and persistence still", got)
	}
	if strings.Contains(logs.String(), "no longer seen") {
		t.Errorf("a failed read was logged as a risk gone:\n%s", logs.String())
	}
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	r.Check(ctx)
	if got := risks(); got["eviction"] {
		t.Errorf("after CONFIG SET maxmemory-policy noeviction: risks %v; want no eviction", got)
	}
	if !strings.Contains(logs.String(), "no longer seen") || !strings.Contains(logs.String(), "risk=eviction") {
		t.Errorf("the eviction risk's end was not logged:\n%s", logs.String())
	}
}

// failInfoHook fails INFO while fail is set (a read that times out).
type failInfoHook struct{ fail *atomic.Bool }

func (h failInfoHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h failInfoHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "info" && h.fail.Load() {
			cmd.SetErr(context.DeadlineExceeded)
			return context.DeadlineExceeded
		}
		return next(ctx, cmd)
	}
}
func (h failInfoHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// Behind Sentinel, go-redis names the master "FailoverClient": the risks
// (their log lines and the metric's redis label) name the node's own
// address instead, which an operator can act on.
func TestRedisRisksNameTheSentinelMaster(t *testing.T) {
	t.Parallel()
	s := taskstest.StartSentinel(t, nil) // no AOF
	opt, err := tasks.ParseRedisURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := opt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	got, _ := PersistenceRisk(context.Background(), rdb, false)
	if _, ok := got[s.MasterAddr(t)]; !ok || len(got) != 1 {
		t.Errorf("persistenceRisk behind Sentinel = %v; want the master %s", got, s.MasterAddr(t))
	}
}

// A master with replicas that this worker's writes do not wait for
// (ORDERWORKER_DURABLE_WRITES=off), or do not hold it to
// (ORDERWORKER_MIN_REPLICAS=0), is a risk: a failover may lose what it
// acknowledged. Logged once and exported while it stands; none without a
// replica, nor when the writes wait for them.
func TestUnheldReplicasAreARisk(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, &taskstest.Options{AOF: true})
	ctx := context.Background()
	for _, unheld := range []string{"ORDERWORKER_DURABLE_WRITES=off", ""} {
		var logs syncBuffer
		r := New(rs.Client(t), Options{Replicated: unheld == "", Persistence: true, Unheld: unheld, Who: "worker"}, slog.New(slog.NewTextHandler(&logs, nil)))
		r.Check(ctx)
		if strings.Contains(logs.String(), "replication=") {
			t.Errorf("%q, no replica: %s", unheld, logs.String())
		}
	}
	rs.AttachReplica(t)
	for _, tt := range []struct{ unheld, want string }{
		{"ORDERWORKER_DURABLE_WRITES=off", "ORDERWORKER_DURABLE_WRITES=off"},
		{"ORDERWORKER_MIN_REPLICAS=0", "ORDERWORKER_MIN_REPLICAS=0"},
		{"", ""},
	} {
		var logs syncBuffer
		r := New(rs.Client(t), Options{Replicated: tt.unheld == "", Persistence: true, Unheld: tt.unheld, Who: "worker"}, slog.New(slog.NewTextHandler(&logs, nil)))
		r.Check(ctx)
		r.Check(ctx)
		got := r.Risk(rs.Addr, "replication")
		if got != tt.want {
			t.Errorf("%q with a replica: risk %q, want %q", tt.unheld, got, tt.want)
		}
		if n := strings.Count(logs.String(), "do not wait for, or do not hold the master to"); (n == 1) != (tt.want != "") || n > 1 {
			t.Errorf("%q with a replica: warned %d times:\n%s", tt.unheld, n, logs.String())
		}
		if tt.want == "" {
			continue
		}
		// A second replica: the same risk, not warned of again.
		second := rs.AttachReplica(t)
		r.Check(ctx)
		second.Stop()
		if n := strings.Count(logs.String(), "do not wait for, or do not hold the master to"); n != 1 {
			t.Errorf("%q, a second replica attached: warned %d times:\n%s", tt.unheld, n, logs.String())
		}
	}
}

// Which settings give up a master's replicas: on Redis Cluster, where no
// master is held to the most it was seen with, a floor below 1 does (auto
// included), as ORDERWORKER_MIN_REPLICAS=0 does elsewhere.
func TestUnheldBy(t *testing.T) {
	for _, tt := range []struct {
		durable ledger.Durability
		min     int64
		cluster bool
		want    string
	}{
		{ledger.DurableAuto, 0, false, ""},
		{ledger.DurableAuto, 1, false, ""},
		{ledger.DurableAuto, ledger.NoReplicaFloor, false, "ORDERWORKER_MIN_REPLICAS=0"},
		{ledger.DurableOff, 1, false, "ORDERWORKER_DURABLE_WRITES=off"},
		{ledger.DurableOff, 1, true, "ORDERWORKER_DURABLE_WRITES=off"},
		{ledger.DurableAuto, 0, true, "ORDERWORKER_MIN_REPLICAS below 1 on Redis Cluster"},
		{ledger.DurableAuto, ledger.NoReplicaFloor, true, "ORDERWORKER_MIN_REPLICAS below 1 on Redis Cluster"},
		{ledger.DurableAuto, 1, true, ""},
	} {
		if got := UnheldBy(tt.durable, tt.min, tt.cluster); got != tt.want {
			t.Errorf("UnheldBy(%v, %d, cluster %v) = %q, want %q", tt.durable, tt.min, tt.cluster, got, tt.want)
		}
	}
}

// On Redis Cluster no master is held to the most replicas it was seen
// with: the writes wait for ORDERWORKER_MIN_REPLICAS only. A master with
// more replicas than that is a risk (a failover to one that did not
// acknowledge the last writes loses them); one with no more is not.
func TestClusterMasterWithMoreReplicasThanTheFloorIsARisk(t *testing.T) {
	t.Parallel()
	c := taskstest.StartCluster(t, &taskstest.ClusterOptions{Masters: 3, ReplicasPerMaster: 2})
	ctx := context.Background()
	for _, tt := range []struct {
		floor int64
		want  string
	}{{1, ClusterBelowReplicas}, {2, ""}} {
		var logs syncBuffer
		r := New(c.Client(t), Options{Replicated: true, Persistence: true, Who: "worker", Cluster: true, ClusterFloor: tt.floor},
			slog.New(slog.NewTextHandler(&logs, nil)))
		r.Check(ctx)
		for _, addr := range c.MasterAddrs() {
			if got := r.Risk(addr, "replication"); got != tt.want {
				t.Errorf("floor %d, master %s with 2 replicas: risk %q, want %q", tt.floor, addr, got, tt.want)
			}
		}
		if warned := strings.Contains(logs.String(), "set ORDERWORKER_MIN_REPLICAS to the replicas each master has"); warned != (tt.want != "") {
			t.Errorf("floor %d: warned %v:\n%s", tt.floor, warned, logs.String())
		}
	}
	// Not on a Redis that is no cluster, whatever the floor.
	rs := taskstest.StartRedis(t, &taskstest.Options{AOF: true})
	rs.AttachReplica(t)
	rs.AttachReplica(t)
	r := New(rs.Client(t), Options{Replicated: true, Persistence: true, Who: "worker", ClusterFloor: 1}, slog.New(slog.NewTextHandler(&syncBuffer{}, nil)))
	r.Check(ctx)
	if got := r.Risk(rs.Addr, "replication"); got != "" {
		t.Errorf("no cluster, floor 1, 2 replicas: risk %q, want none (the master is held to the most it was seen with)", got)
	}
}
