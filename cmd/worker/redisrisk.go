package main

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// riskEvery is how often a running worker reads the Redis masters'
// settings again: a failover promotes a replica configured otherwise, and
// an operator's CONFIG SET changes a master in place, long after start.
var riskEvery = time.Minute

// redisRisks watches the settings of the Redis masters the worker writes
// to that can lose orders: an eviction policy that evicts keys of any kind
// (an evicted record or task is an order lost, or created twice), and
// persistence that may take back acknowledged writes (see persistenceRisk),
// and replicas this worker's writes do not wait for, or do not hold the
// master to (see replicationRisk).
// It logs each risk when it is first seen and when it is gone, and exports
// orderworker_redis_config_risk{redis, risk} = 1 while it stands.
type redisRisks struct {
	rdb         redis.UniversalClient
	replicated  bool // durable writes wait for replicas (persistenceRisk)
	persistence bool // checked at all (not for -dev's embedded Redis)
	// unheld names the setting by which this worker's writes give up
	// waiting for the master's replicas, or holding it to them
	// (ORDERWORKER_DURABLE_WRITES=off, ORDERWORKER_MIN_REPLICAS=0); "" when
	// none does.
	unheld string
	log    *slog.Logger
	desc   *prometheus.Desc

	mu  sync.Mutex
	cur map[riskKey]string // what each risk is
}

type riskKey struct{ addr, kind string }

func newRedisRisks(rdb redis.UniversalClient, replicated, persistence bool, unheld string, log *slog.Logger) *redisRisks {
	return &redisRisks{rdb: rdb, replicated: replicated, persistence: persistence, unheld: unheld, log: log, cur: map[riskKey]string{},
		desc: prometheus.NewDesc("orderworker_redis_config_risk",
			"1 for each Redis master the worker writes to whose settings can lose orders, by risk: eviction (a maxmemory-policy that evicts keys of any kind), persistence (acknowledged writes a crash may take back: no AOF, or AOF without appendfsync always; with replicas that durable writes wait for, when the master is restarted before a failover) or replication (the master has replicas, and this worker's writes do not wait for them, ORDERWORKER_DURABLE_WRITES=off, or do not hold the master to them, ORDERWORKER_MIN_REPLICAS=0, or on Redis Cluster below 1: a failover may lose acknowledged writes). Read at start and every minute.",
			[]string{"redis", "risk"}, nil)}
}

// check reads the masters' settings and logs what changed since the last
// check. A master whose answers cannot be read this time keeps what was
// last seen of it (a read that times out is not a risk put right).
func (r *redisRisks) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	now := map[riskKey]string{}
	unread := map[string]map[string]bool{}
	var found map[string]string
	found, unread["eviction"] = evictionPolicy(ctx, r.rdb)
	for addr, policy := range found {
		now[riskKey{addr, "eviction"}] = policy
	}
	if r.persistence {
		found, unread["persistence"] = persistenceRisk(ctx, r.rdb, r.replicated)
		for addr, how := range found {
			now[riskKey{addr, "persistence"}] = how
		}
		if r.unheld != "" {
			found, unread["replication"] = replicationRisk(ctx, r.rdb, r.unheld)
			for addr, how := range found {
				now[riskKey{addr, "replication"}] = how
			}
		}
	}
	r.mu.Lock()
	before := r.cur
	for k, v := range before {
		if unread[k.kind][k.addr] {
			now[k] = v
		}
	}
	r.cur = now
	r.mu.Unlock()
	keys := make([]riskKey, 0, len(now))
	for k := range now {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].addr+keys[i].kind < keys[j].addr+keys[j].kind })
	for _, k := range keys {
		if before[k] == now[k] {
			continue
		}
		switch k.kind {
		case "eviction":
			r.log.Error("Redis evicts keys of any kind when its memory is full: an evicted order record or task is an order lost, or created twice; set maxmemory-policy noeviction",
				"redis", k.addr, "maxmemory_policy", now[k])
		case "persistence":
			r.log.Warn("Redis may take back writes it acknowledged when it or its host crashes: an order answered enqueued may be lost, and one whose create was in flight created again; turn on AOF with appendfsync always; with replicas that durable writes wait for, at least never restart a crashed master before its replicas fail over",
				"redis", k.addr, "persistence", now[k])
		case "replication":
			r.log.Warn("Redis has replicas that this worker's writes do not wait for, or do not hold the master to: a failover may lose orders answered enqueued, and have one whose create was in flight created again; unset ORDERWORKER_DURABLE_WRITES and set ORDERWORKER_MIN_REPLICAS=1 on every worker and producer",
				"redis", k.addr, "replication", now[k])
		}
	}
	for k := range before {
		if _, ok := now[k]; !ok {
			r.log.Info("a Redis setting that could lose orders is no longer seen", "redis", k.addr, "risk", k.kind, "was", before[k])
		}
	}
}

// watch checks every riskEvery until ctx ends.
func (r *redisRisks) watch(ctx context.Context) { every(ctx, riskEvery, r.check) }

// every runs f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f(ctx)
		}
	}
}

// Describe implements prometheus.Collector.
func (r *redisRisks) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

// Collect implements prometheus.Collector: the risks the last check saw.
func (r *redisRisks) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.cur {
		ch <- prometheus.MustNewConstMetric(r.desc, prometheus.GaugeValue, 1, k.addr, k.kind)
	}
}
