package main

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	ledgerpkg "github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// A master that refuses writes for now (NOREPLICAS: its replicas are
// resyncing) when a worker first writes to a new ledger is waited for,
// as an unreachable one is: the worker starts once the master takes
// writes, instead of exiting.
func TestStartWaitsForAMasterThatRefusesWrites(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	ctx := context.Background()
	if err := rdb.ConfigSet(ctx, "min-replicas-to-write", "1").Err(); err != nil {
		t.Fatal(err)
	}
	l := ledgerpkg.New(rdb, &ledgerpkg.Options{Durable: ledgerpkg.DurableOff})
	if err := l.CheckShards(ctx); err == nil {
		t.Fatal("CheckShards on a master without replicas succeeded: the test needs NOREPLICAS")
	}
	done := make(chan error, 1)
	go func() {
		done <- untilWritable(ctx, slog.New(slog.DiscardHandler), func() error { return l.CheckShards(ctx) })
	}()
	select {
	case err := <-done:
		t.Fatalf("untilWritable returned %v while the master refused writes", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := rdb.ConfigSet(ctx, "min-replicas-to-write", "0").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("untilWritable = %v once the master takes writes", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("untilWritable still waits after the master took writes again")
	}
	// A script error (a reply of a server that answers, not a refusal
	// for now) ends the start at once.
	if err := untilWritable(ctx, slog.New(slog.DiscardHandler), func() error { return rdb.Eval(ctx, "return redis.error_reply('WRONGTYPE bad')", nil).Err() }); err == nil {
		t.Error("untilWritable on a script error = nil, want the error")
	}
	// A refusal by the ledger itself ends the start at once.
	other := ledgerpkg.New(rdb, &ledgerpkg.Options{Shards: 3, Durable: ledgerpkg.DurableOff})
	var mm *ledgerpkg.ShardsMismatchError
	if err := untilWritable(ctx, slog.New(slog.DiscardHandler), func() error { return other.CheckShards(ctx) }); !errors.As(err, &mm) {
		t.Errorf("untilWritable with another shard count = %v, want ShardsMismatchError", err)
	}
}
