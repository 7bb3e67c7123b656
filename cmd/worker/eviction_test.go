package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/internal/redisrisk"
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
		got, _ := redisrisk.EvictionPolicy(ctx, rdb)
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
	if got, _ := redisrisk.PersistenceRisk(ctx, rdb, true); got[rs.Addr] != "appendonly no" {
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
		if got, _ := redisrisk.PersistenceRisk(ctx, rdb, true); got[rs.Addr] != tt.want || tt.want == "" && len(got) != 0 {
			t.Errorf("appendfsync %s: persistenceRisk = %v, want %q", tt.fsync, got, tt.want)
		}
	}
	// Replicas that durable writes wait for cover a crash that fails over
	// to one of them, not a master restarted before a failover: it comes
	// back without the last second its replicas acknowledged, and they
	// copy it. With an fsync per write, nothing is at risk.
	rs.AttachReplica(t)
	if got, _ := redisrisk.PersistenceRisk(ctx, rdb, true); len(got) != 0 {
		t.Errorf("with a replica, durable writes and appendfsync always: persistenceRisk = %v, want none", got)
	}
	if err := rdb.ConfigSet(ctx, "appendfsync", "everysec").Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := redisrisk.PersistenceRisk(ctx, rdb, true); !strings.HasPrefix(got[rs.Addr], "appendfsync everysec, with replicas (") {
		t.Errorf("with a replica and durable writes, appendfsync everysec: persistenceRisk = %v", got)
	}
	if got, _ := redisrisk.PersistenceRisk(ctx, rdb, false); got[rs.Addr] != "appendfsync everysec" {
		t.Errorf("with a replica, durable writes off: persistenceRisk = %v", got)
	}
	// Without AOF, replicas do not cover a master restarted before a
	// failover: it comes back empty, and they copy it.
	if err := rdb.ConfigSet(ctx, "appendonly", "no").Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := redisrisk.PersistenceRisk(ctx, rdb, true); !strings.HasPrefix(got[rs.Addr], "appendonly no, with replicas") {
		t.Errorf("with a replica and durable writes, no AOF: persistenceRisk = %v", got)
	}
}
