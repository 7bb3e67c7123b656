package main

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	ledgerpkg "github.com/orderworker/orderworker/tasks/ledger"
)

// ledgerClient returns a go-redis client for the same server asynq uses.
func ledgerClient(opt asynq.RedisConnOpt) redis.UniversalClient {
	return opt.MakeRedisClient().(redis.UniversalClient)
}

func ping(ctx context.Context, c redis.UniversalClient, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.Ping(ctx).Err()
}

// evictionPolicy returns the maxmemory-policy of each Redis master c
// writes to that evicts keys of any kind (allkeys-…), by address, and the
// addresses of the masters whose answers it could not read (INFO refused,
// say), which are left out.
func evictionPolicy(ctx context.Context, c redis.UniversalClient) (map[string]string, map[string]bool) {
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

// persistenceRisk returns, by address, each Redis master c writes to that
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
func persistenceRisk(ctx context.Context, c redis.UniversalClient, replicated bool) (map[string]string, map[string]bool) {
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

// unheldBy names the setting by which writes give up a master's replicas
// (see redisRisks.unheld), "" for none: durable writes off (none waited
// for), or no floor (ORDERWORKER_MIN_REPLICAS=0: a master not held to the
// most it was seen with). On Redis Cluster no master is held to the most
// it was seen with, so there a floor below 1, auto included, gives them up.
func unheldBy(durable ledgerpkg.Durability, minReplicas int64, cluster bool) string {
	switch {
	case durable == ledgerpkg.DurableOff:
		return "ORDERWORKER_DURABLE_WRITES=off"
	case cluster && minReplicas < 1:
		return "ORDERWORKER_MIN_REPLICAS below 1 on Redis Cluster"
	case minReplicas == ledgerpkg.NoReplicaFloor:
		return "ORDERWORKER_MIN_REPLICAS=0"
	}
	return ""
}

// replicationRisk returns, by address, each Redis master c writes to that
// reports replicas, which the writes give up by the setting unheld (see
// redisRisks.unheld): what unheld says (not how many, which would log the
// risk again at each change). One whose INFO cannot be read is left out,
// its address in the second map.
func replicationRisk(ctx context.Context, c redis.UniversalClient, unheld string) (map[string]string, map[string]bool) {
	out, unread := map[string]string{}, map[string]bool{}
	eachMaster(ctx, c, func(ctx context.Context, n *redis.Client) {
		addr := nodeAddr(ctx, n)
		info, err := n.Info(ctx, "replication").Result()
		if err != nil {
			unread[addr] = true
			return
		}
		if strings.Contains(info, "role:master") {
			if ledgerpkg.Replicas(info) > 0 {
				out[addr] = unheld
			}
		}
	})
	return out, unread
}

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
