package tasks_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/internal/devmode"
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// A Go producer is refused a Redis that holds worker -dev's marker, as the
// enqueue CLI is: the sandboxes there pay every order without creating it
// anywhere, so a real order written there is lost while its producer takes
// it for accepted. The refusal writes nothing. A Redis that gets the marker
// while the producer runs is refused within a second, and an Enqueuer made
// for -dev (enqueue -dev, -dev's API) writes there.
func TestEnqueuerRefusesWorkerDevsRedis(t *testing.T) {
	t.Parallel()
	r := taskstest.StartRedis(t, nil)
	rdb := r.Client(t)
	ctx := context.Background()
	set := providers.NewSet()
	set.Add(memprov.New(memprov.NewBackend("s"), memprov.Options{Secret: "s"}))
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	t.Cleanup(func() { client.Close() })
	l := tasks.NewLedger(rdb)
	real := tasks.NewEnqueuer(client, l, set, nil)

	if res, err := real.Enqueue(ctx, memOrder("Before-1")); err != nil || res.Status != tasks.Enqueued {
		t.Fatalf("before the marker: %+v, %v; want enqueued", res, err)
	}
	// worker -dev empties and marks the database (here: flushed, then marked).
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, devmode.MarkerKey, devmode.MarkerValue, 0).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(devmode.WatchInterval + 100*time.Millisecond)
	for _, data := range [][]byte{memOrder("Real-1"), memOrder("Real-2")} {
		if res, err := real.Enqueue(ctx, data); !errors.Is(err, tasks.ErrDevRedis) {
			t.Errorf("into -dev's Redis: %+v, %v; want ErrDevRedis", res, err)
		}
	}
	if got := real.EnqueueBatch(ctx, [][]byte{memOrder("Real-3")}); !errors.Is(got[0].Err, tasks.ErrDevRedis) {
		t.Errorf("a batch into -dev's Redis: %+v; want ErrDevRedis", got[0])
	}
	if keys, err := rdb.Keys(ctx, "*").Result(); err != nil || len(keys) != 1 || keys[0] != devmode.MarkerKey {
		t.Errorf("keys after the refusals: %v, %v; want only the marker", keys, err)
	}
	dev := tasks.NewEnqueuer(client, l, set, &tasks.EnqueuerOptions{Dev: true})
	if res, err := dev.Enqueue(ctx, memOrder("Demo-1")); err != nil || res.Status != tasks.Enqueued {
		t.Errorf("a -dev producer: %+v, %v; want enqueued", res, err)
	}
}
