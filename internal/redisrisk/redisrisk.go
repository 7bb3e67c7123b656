// Package redisrisk watches the settings of the Redis masters a process
// writes to that can lose orders (an eviction policy, persistence that may
// take back acknowledged writes, replicas the writes do not wait for), and
// logs and exports them.
package redisrisk

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// Watcher watches the settings of the Redis masters a process writes to
// that can lose orders: an eviction policy that evicts keys of any kind
// (an evicted record or task is an order lost, or created twice), and
// persistence that may take back acknowledged writes (see PersistenceRisk),
// and replicas the process's writes do not wait for, or do not hold the
// master to (see ReplicationRisk).
// It logs each risk when it is first seen and when it is gone, and exports
// orderworker_redis_config_risk{redis, risk} = 1 while it stands.
type Watcher struct {
	rdb  redis.UniversalClient
	opts Options
	log  *slog.Logger
	desc *prometheus.Desc

	mu  sync.Mutex
	cur map[riskKey]string // what each risk is
}

type riskKey struct{ addr, kind string }

// Options are what a Watcher checks.
type Options struct {
	// Replicated: durable writes wait for replicas (PersistenceRisk).
	Replicated bool
	// Persistence: persistence and replication are checked at all (not
	// for -dev's embedded Redis).
	Persistence bool
	// Unheld names the setting by which the process's writes give up
	// waiting for the master's replicas, or holding it to them (UnheldBy);
	// "" when none does.
	Unheld string
	// Who names the process in what is logged ("worker", "server").
	Who string
	// ClusterFloor is ORDERWORKER_MIN_REPLICAS, the fewest replicas the
	// writes wait for, which on Redis Cluster is all they are held to
	// (see ReplicationRisk); read only with Cluster.
	ClusterFloor int64
	// Cluster: the client is a Redis Cluster client (ClusterFloor counts).
	Cluster bool
}

// New returns a Watcher of the masters rdb writes to, which logs to log.
func New(rdb redis.UniversalClient, opts Options, log *slog.Logger) *Watcher {
	if opts.Who == "" {
		opts.Who = "process"
	}
	return &Watcher{rdb: rdb, opts: opts, log: log, cur: map[riskKey]string{},
		desc: prometheus.NewDesc("orderworker_redis_config_risk",
			"1 for each Redis master the "+opts.Who+" writes to whose settings can lose orders, by risk: eviction (a maxmemory-policy that evicts keys of any kind), persistence (acknowledged writes a crash may take back: no AOF, or AOF without appendfsync always; with replicas that durable writes wait for, when the master is restarted before a failover) or replication (the master has replicas, and this "+opts.Who+"'s writes do not wait for them, ORDERWORKER_DURABLE_WRITES=off, or do not hold the master to them, ORDERWORKER_MIN_REPLICAS=0, or on Redis Cluster below 1 or below the replicas the master has: a failover may lose acknowledged writes). Read at start and every minute.",
			[]string{"redis", "risk"}, nil)}
}

// Check reads the masters' settings and logs what changed since the last
// check. A master whose answers cannot be read this time keeps what was
// last seen of it (a read that times out is not a risk put right).
func (r *Watcher) Check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	now := map[riskKey]string{}
	unread := map[string]map[string]bool{}
	var found map[string]string
	found, unread["eviction"] = EvictionPolicy(ctx, r.rdb)
	for addr, policy := range found {
		now[riskKey{addr, "eviction"}] = policy
	}
	if r.opts.Persistence {
		found, unread["persistence"] = PersistenceRisk(ctx, r.rdb, r.opts.Replicated)
		for addr, how := range found {
			now[riskKey{addr, "persistence"}] = how
		}
		if floor := r.floor(); r.opts.Unheld != "" || floor >= 0 {
			found, unread["replication"] = ReplicationRisk(ctx, r.rdb, r.opts.Unheld, floor)
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
			if now[k] == ClusterBelowReplicas {
				r.log.Warn("Redis Cluster master has more replicas than ORDERWORKER_MIN_REPLICAS, which is all the writes wait for there: a failover to a replica that did not acknowledge the last writes may lose orders answered enqueued, and have one whose create was in flight created again; set ORDERWORKER_MIN_REPLICAS to the replicas each master has on every worker and producer",
					"redis", k.addr, "replication", now[k])
				continue
			}
			r.log.Warn("Redis has replicas that this "+r.opts.Who+"'s writes do not wait for, or do not hold the master to: a failover may lose orders answered enqueued, and have one whose create was in flight created again; unset ORDERWORKER_DURABLE_WRITES and set ORDERWORKER_MIN_REPLICAS=1 on every worker and producer",
				"redis", k.addr, "replication", now[k])
		}
	}
	for k := range before {
		if _, ok := now[k]; !ok {
			r.log.Info("a Redis setting that could lose orders is no longer seen", "redis", k.addr, "risk", k.kind, "was", before[k])
		}
	}
}

// Watch checks every d until ctx ends.
func (r *Watcher) Watch(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Check(ctx)
		}
	}
}

// floor is ReplicationRisk's floor: Options.ClusterFloor on Redis
// Cluster, else -1.
func (r *Watcher) floor() int64 {
	if !r.opts.Cluster {
		return -1
	}
	return max(r.opts.ClusterFloor, 0)
}

// Risk is what the last check saw of risk kind ("eviction", "persistence",
// "replication") at the master addr, "" for none.
func (r *Watcher) Risk(addr, kind string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur[riskKey{addr, kind}]
}

// Describe implements prometheus.Collector.
func (r *Watcher) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

// Collect implements prometheus.Collector: the risks the last check saw.
func (r *Watcher) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.cur {
		ch <- prometheus.MustNewConstMetric(r.desc, prometheus.GaugeValue, 1, k.addr, k.kind)
	}
}

// EvictionPolicy returns the maxmemory-policy of each Redis master c
// writes to that evicts keys of any kind (allkeys-…), by address, and the
// addresses of the masters whose answers it could not read (INFO refused,
// say), which are left out.
func EvictionPolicy(ctx context.Context, c redis.UniversalClient) (map[string]string, map[string]bool) {
	out, unread := map[string]string{}, map[string]bool{}
	read := func(ctx context.Context, n *redis.Client) {
		addr := nodeAddr(ctx, n)
		info, err := n.Info(ctx, "memory").Result()
		if err != nil {
			unread[addr] = true
			return
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:"); ok && strings.HasPrefix(v, "allkeys-") {
				out[addr] = v
			}
		}
	}
	eachMaster(ctx, c, read)
	return out, unread
}

// PersistenceRisk returns, by address, each Redis master c writes to that
// may take back writes it acknowledged when it or its host crashes, and
// how: no AOF (a restart falls back to the last snapshot, or to nothing),
// or AOF without an fsync per write (a host crash takes back up to about a
// second). Replicas that durable writes wait for (replicated) cover a
// crash that fails over to one of them, not a master restarted before its
// sentinels fail over (a supervisor, a container's restart policy): it
// comes back as it last wrote to disk, with a new replication id, and its
// replicas copy it, dropping the writes they acknowledged ("…, with
// replicas"; with appendfsync always, nothing). One whose answers cannot be read
// (INFO or CONFIG refused, as some managed Redis services do) is left out,
// its address in the second map.
func PersistenceRisk(ctx context.Context, c redis.UniversalClient, replicated bool) (map[string]string, map[string]bool) {
	out, unread := map[string]string{}, map[string]bool{}
	read := func(ctx context.Context, n *redis.Client) {
		addr := nodeAddr(ctx, n)
		// Two calls: Redis before 7.0 takes one section at a time.
		info, err := n.Info(ctx, "persistence").Result()
		if err != nil {
			unread[addr] = true
			return
		}
		repl, err := n.Info(ctx, "replication").Result()
		if err != nil {
			unread[addr] = true
			return
		}
		info += "\n" + repl
		field := func(name string) string {
			for _, line := range strings.Split(info, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
					return v
				}
			}
			return ""
		}
		withReplicas := replicated && field("connected_slaves") != "" && field("connected_slaves") != "0"
		switch field("aof_enabled") {
		case "0":
			out[addr] = "appendonly no"
			if withReplicas {
				out[addr] = "appendonly no, with replicas (a master restarted before a failover comes back empty or at its last snapshot, and its replicas copy it: turn on AOF, or never restart it automatically)"
			}
		case "1":
			v, err := n.ConfigGet(ctx, "appendfsync").Result()
			if err != nil {
				unread[addr] = true
				return
			}
			fsync := v["appendfsync"]
			switch {
			case fsync == "" || fsync == "always":
			case withReplicas:
				out[addr] = "appendfsync " + fsync + ", with replicas (a master whose host crashed, restarted before a failover, comes back without the writes it had not yet written to disk, which its replicas acknowledged, and they copy it: appendfsync always, or never restart it automatically)"
			default:
				out[addr] = "appendfsync " + fsync
			}
		}
	}
	eachMaster(ctx, c, read)
	return out, unread
}

// UnheldBy names the setting by which writes give up a master's replicas
// (see Options.Unheld), "" for none: durable writes off (none waited
// for), or no floor (ORDERWORKER_MIN_REPLICAS=0: a master not held to the
// most it was seen with). On Redis Cluster no master is held to the most
// it was seen with, so there a floor below 1, auto included, gives them up.
func UnheldBy(durable ledger.Durability, minReplicas int64, cluster bool) string {
	switch {
	case durable == ledger.DurableOff:
		return "ORDERWORKER_DURABLE_WRITES=off"
	case cluster && minReplicas < 1:
		return "ORDERWORKER_MIN_REPLICAS below 1 on Redis Cluster"
	case minReplicas == ledger.NoReplicaFloor:
		return "ORDERWORKER_MIN_REPLICAS=0"
	}
	return ""
}

// ReplicationRisk returns, by address, each Redis master c writes to that
// reports replicas, which the writes give up by the setting unheld (see
// Options.Unheld): what unheld says (not how many, which would log the
// risk again at each change). One whose INFO cannot be read is left out,
// its address in the second map.
//
// floor is, on Redis Cluster, the fewest replicas writes wait for
// (ORDERWORKER_MIN_REPLICAS; -1 elsewhere): no master is held there to the
// most it was seen with, so one with more replicas than the floor is a
// risk too (ClusterBelowReplicas): a write that reached the floor's
// replicas is lost when another of its replicas is promoted.
func ReplicationRisk(ctx context.Context, c redis.UniversalClient, unheld string, floor int64) (map[string]string, map[string]bool) {
	out, unread := map[string]string{}, map[string]bool{}
	eachMaster(ctx, c, func(ctx context.Context, n *redis.Client) {
		addr := nodeAddr(ctx, n)
		info, err := n.Info(ctx, "replication").Result()
		if err != nil {
			unread[addr] = true
			return
		}
		if !strings.Contains(info, "role:master") {
			return
		}
		switch n := ledger.Replicas(info); {
		case n > 0 && unheld != "":
			out[addr] = unheld
		case floor >= 0 && n > floor:
			out[addr] = ClusterBelowReplicas
		}
	})
	return out, unread
}

// ClusterBelowReplicas is the replication risk of a Redis Cluster master
// with more replicas than ORDERWORKER_MIN_REPLICAS (ReplicationRisk).
const ClusterBelowReplicas = "ORDERWORKER_MIN_REPLICAS below the master's replicas on Redis Cluster"

// sentinelAddr is what go-redis names every node of a Sentinel client.
const sentinelAddr = "FailoverClient"

// nodeAddr is the address of the Redis node n talks to: its own for a
// plain or cluster client; for a Sentinel client, which names its node
// "FailoverClient", the node's address as the node reports it (CLIENT
// INFO's laddr, Redis 6.2 and later), else "sentinel master".
func nodeAddr(ctx context.Context, n *redis.Client) string {
	addr := n.Options().Addr
	if addr != sentinelAddr {
		return addr
	}
	if ci, err := n.ClientInfo(ctx).Result(); err == nil && ci.LAddr != "" {
		return ci.LAddr
	}
	return "sentinel master"
}

// eachMaster calls read for each Redis master c writes to, one at a time.
func eachMaster(ctx context.Context, c redis.UniversalClient, read func(context.Context, *redis.Client)) {
	switch cc := c.(type) {
	case *redis.ClusterClient:
		var mu sync.Mutex
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			mu.Lock() // the callbacks run at once
			defer mu.Unlock()
			read(ctx, n)
			return nil
		})
	case *redis.Client:
		read(ctx, cc)
	}
}
