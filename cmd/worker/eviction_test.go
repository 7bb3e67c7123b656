package main

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks"
	ledgerpkg "github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// A Redis that evicts keys of any kind under memory pressure can drop an
// order's record or task: the worker says so at start, loudly, naming the
// policy; with noeviction, or a policy that only evicts keys with a TTL
// (the ledger's records, indexes and history have none; losing one of
// its remembered undone claims makes a lookup, not a second order), it
// says nothing.
func TestWorkerWarnsOfAnEvictingRedis(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	ctx := context.Background()
	for _, tt := range []struct {
		policy string
		warns  bool
	}{
		{"noeviction", false},
		{"volatile-lru", false},
		{"allkeys-lru", true},
	} {
		if err := rdb.ConfigSet(ctx, "maxmemory-policy", tt.policy).Err(); err != nil {
			t.Fatal(err)
		}
		got, _ := evictionPolicy(ctx, rdb)
		if tt.warns != (got[rs.Addr] == tt.policy) || (!tt.warns && len(got) != 0) {
			t.Errorf("%s: evictionPolicy = %v", tt.policy, got)
		}
	}
	// At start, in the log.
	if logs := startLog(t, rs.URL(), "maxmemory-policy noeviction"); !strings.Contains(logs, "allkeys-lru") {
		t.Errorf("the warning does not name the policy:\n%s", logs)
	}
}

// startLog starts a worker on redisURL, waits until its log says want,
// stops it and returns the log.
func startLog(t *testing.T, redisURL, want string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done, logs := startWorker(t, ctx, redisURL, "127.0.0.1:0")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log at start:\n%s", want, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	return logs.String()
}

// A Redis that may take back writes it acknowledged (no AOF, or AOF
// without an fsync per write) loses accepted orders and lets orders in
// flight be created again when it or its host crashes, unless durable
// writes wait for its replicas: the worker says so at start, naming how.
func TestWorkerWarnsOfARedisThatMayTakeBackWrites(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil) // no AOF, no snapshots
	rdb := rs.Client(t)
	ctx := context.Background()
	if got, _ := persistenceRisk(ctx, rdb, true); got[rs.Addr] != "appendonly no" {
		t.Errorf("without AOF: persistenceRisk = %v", got)
	}
	// At start, in the log.
	if logs := startLog(t, rs.URL(), "may take back writes it acknowledged"); !strings.Contains(logs, "appendonly no") {
		t.Errorf("the warning does not say how:\n%s", logs)
	}

	for _, tt := range []struct {
		fsync string
		want  string
	}{{"everysec", "appendfsync everysec"}, {"no", "appendfsync no"}, {"always", ""}} {
		if err := rdb.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.ConfigSet(ctx, "appendfsync", tt.fsync).Err(); err != nil {
			t.Fatal(err)
		}
		if got, _ := persistenceRisk(ctx, rdb, true); got[rs.Addr] != tt.want || tt.want == "" && len(got) != 0 {
			t.Errorf("appendfsync %s: persistenceRisk = %v, want %q", tt.fsync, got, tt.want)
		}
	}
	// Replicas that durable writes wait for cover a crash that fails over
	// to one of them, not a master restarted before a failover: it comes
	// back without the last second its replicas acknowledged, and they
	// copy it. With an fsync per write, nothing is at risk.
	rs.AttachReplica(t)
	if got, _ := persistenceRisk(ctx, rdb, true); len(got) != 0 {
		t.Errorf("with a replica, durable writes and appendfsync always: persistenceRisk = %v, want none", got)
	}
	if err := rdb.ConfigSet(ctx, "appendfsync", "everysec").Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := persistenceRisk(ctx, rdb, true); !strings.HasPrefix(got[rs.Addr], "appendfsync everysec, with replicas (") {
		t.Errorf("with a replica and durable writes, appendfsync everysec: persistenceRisk = %v", got)
	}
	if got, _ := persistenceRisk(ctx, rdb, false); got[rs.Addr] != "appendfsync everysec" {
		t.Errorf("with a replica, durable writes off: persistenceRisk = %v", got)
	}
	// Without AOF, replicas do not cover a master restarted before a
	// failover: it comes back empty, and they copy it.
	if err := rdb.ConfigSet(ctx, "appendonly", "no").Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := persistenceRisk(ctx, rdb, true); !strings.HasPrefix(got[rs.Addr], "appendonly no, with replicas") {
		t.Errorf("with a replica and durable writes, no AOF: persistenceRisk = %v", got)
	}
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
	r := newRedisRisks(watched, false, true, "", slog.New(slog.NewTextHandler(&logs, nil)))
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
	r.check(ctx)
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
	r.check(ctx)
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
	r.check(ctx)
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
	r.check(ctx)
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
	got, _ := persistenceRisk(context.Background(), rdb, false)
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
		r := newRedisRisks(rs.Client(t), unheld == "", true, unheld, slog.New(slog.NewTextHandler(&logs, nil)))
		r.check(ctx)
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
		r := newRedisRisks(rs.Client(t), tt.unheld == "", true, tt.unheld, slog.New(slog.NewTextHandler(&logs, nil)))
		r.check(ctx)
		r.check(ctx)
		r.mu.Lock()
		got := r.cur[riskKey{rs.Addr, "replication"}]
		r.mu.Unlock()
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
		r.check(ctx)
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
		durable ledgerpkg.Durability
		min     int64
		cluster bool
		want    string
	}{
		{ledgerpkg.DurableAuto, 0, false, ""},
		{ledgerpkg.DurableAuto, 1, false, ""},
		{ledgerpkg.DurableAuto, ledgerpkg.NoReplicaFloor, false, "ORDERWORKER_MIN_REPLICAS=0"},
		{ledgerpkg.DurableOff, 1, false, "ORDERWORKER_DURABLE_WRITES=off"},
		{ledgerpkg.DurableOff, 1, true, "ORDERWORKER_DURABLE_WRITES=off"},
		{ledgerpkg.DurableAuto, 0, true, "ORDERWORKER_MIN_REPLICAS below 1 on Redis Cluster"},
		{ledgerpkg.DurableAuto, ledgerpkg.NoReplicaFloor, true, "ORDERWORKER_MIN_REPLICAS below 1 on Redis Cluster"},
		{ledgerpkg.DurableAuto, 1, true, ""},
	} {
		if got := unheldBy(tt.durable, tt.min, tt.cluster); got != tt.want {
			t.Errorf("unheldBy(%v, %d, cluster %v) = %q, want %q", tt.durable, tt.min, tt.cluster, got, tt.want)
		}
	}
}
