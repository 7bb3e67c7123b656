package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// Upgrading across a change of the ledger's format: a worker started on
// a ledger an earlier format wrote waits for that version's workers to
// stop before it takes an order; a running worker stops once a later
// version's format is recorded, saying why; and one does not start on a
// later version's ledger.
func TestWorkersOfAnEarlierFormatStopAndWait(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	const formatKey = "orderworker:{ledger}:format"
	start := func() (<-chan error, *syncBuffer, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		var logs syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"-admin-addr", "127.0.0.1:0", "-shutdown-timeout", "2s"},
				envFunc(map[string]string{"REDIS_URL": rs.URL()}), &syncBuffer{}, &logs)
		}()
		return done, &logs, cancel
	}
	// An earlier format recorded: the worker records its own and waits.
	if err := rdb.Set(context.Background(), formatKey, strconv.Itoa(ledger.Format-1), 0).Err(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	done, logs, cancel := start()
	defer cancel()
	for deadline := time.Now().Add(time.Minute); !strings.Contains(logs.String(), "worker started"); {
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not start; logs:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if waited := time.Since(began); waited < dataKeyWatch+2*time.Second || !strings.Contains(logs.String(), "waiting for its workers to stop") {
		t.Errorf("the worker started %s after recording its format over an earlier one (want at least the watch and the others' drain); logs:\n%s", waited, logs)
	}
	if v, _ := rdb.Get(context.Background(), formatKey).Int(); v != ledger.Format {
		t.Errorf("format recorded = %d, want %d", v, ledger.Format)
	}
	// A later version writes the ledger: this one stops.
	if err := rdb.Set(context.Background(), formatKey, strconv.Itoa(ledger.Format+1), 0).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "later orderworker") || !strings.Contains(err.Error(), "stopping") {
			t.Errorf("the worker stopped with %v; want an error saying a later version wrote the ledger", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the worker still runs 30s after a later format was recorded; logs:\n%s", logs)
	}
	// Nor does one start.
	done, logs, cancel2 := start()
	defer cancel2()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "later orderworker") {
			t.Errorf("a worker on a later version's ledger ended with %v; want it refused, saying why", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("a worker on a later version's ledger still runs after 30s; logs:\n%s", logs)
	}
}
