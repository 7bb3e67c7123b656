package tasks_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// heldLookup is the in-memory provider whose first lookup tells the test
// it arrived and answers only once the test lets it.
type heldLookup struct {
	*memprov.Client
	arrived, answer chan struct{}
}

func (p heldLookup) Lookup(ctx context.Context, o providers.Order) (providers.Result, error) {
	select {
	case p.arrived <- struct{}{}:
		<-p.answer
	default: // a later lookup: at once
	}
	return p.Client.Lookup(ctx, o)
}

// A task a producer wrote itself sends a create whose answer is lost (the
// provider made the order), and its run looks the order up. Meanwhile
// Redis loses the order's record, and the producer, finding nothing, sends
// the order again through the Enqueuer: recorded anew under a new claim,
// its task already there. The lookup's settle finds its lease lost, and
// the run waits in place, then takes its next step on the new record. The
// task's mark, written right before the first create, says an order may
// exist: the run looks it up before any create, and the provider holds
// the order once (a run that went on trusting the mark as it read it
// before that create sent a second one).
func TestAWaitInPlaceAfterARecordLostAndRecordedAgainLooksUpFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memprov.NewBackend("")
	b.Duplicates = true // a provider that would take the same order number twice
	b.Faults().Script(fault.FailAfter)
	prov := heldLookup{memprov.New(b, memprov.Options{}), make(chan struct{}), make(chan struct{})}
	srv, rdb, l, set := memSetup(t, nil, prov)
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Logger: quiet, ListingLag: 3 * time.Second, MaxAttempts: 8,
		Backoff: exactBackoff(10 * time.Millisecond)})
	opt := asynq.RedisClientOpt{Addr: srv.Addr}
	// A task handed back to asynq does not run again within the test:
	// only a wait in place takes the run's next step.
	s, mux := tasks.NewServer(opt, h, tasks.ServerOptions{Concurrency: 4, TaskCheckInterval: 10 * time.Millisecond,
		DelayedTaskCheckInterval: time.Minute, ShutdownTimeout: 10 * time.Second, Logger: quiet})
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	enq := tasks.NewEnqueuer(client, l, set, nil)
	payload := []byte(`{"provider":"mem","order_no":"Stay-R1","params":{"item":"sku-1","qty":2}}`)
	if _, err := client.EnqueueContext(ctx, asynq.NewTask(tasks.TypeOrderSubmit, payload), asynq.Queue(tasks.DefaultQueue),
		asynq.MaxRetry(tasks.TaskMaxRetry), asynq.TaskID(tasks.TaskID(memprov.Name, "Stay-R1"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	select {
	case <-prov.arrived: // created, its answer lost; the lookup is out
	case <-time.After(10 * time.Second):
		t.Fatalf("no lookup after the lost answer (%d creates)", b.Calls("create"))
	}
	ref := ledger.Ref{Provider: memprov.Name, OrderNo: "Stay-R1"}
	keys, _ := rdb.Keys(ctx, "*order:mem:Stay-R1").Result()
	if len(keys) != 1 {
		t.Fatalf("record keys %v", keys)
	}
	rdb.Del(ctx, keys[0]) // Redis loses the record
	if res, err := enq.Enqueue(ctx, payload); err != nil || res.Status != tasks.Enqueued {
		t.Fatalf("resend = %+v, %v; want it recorded anew", res, err)
	}
	close(prov.answer)
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		rec, _ := l.Get(ctx, ref)
		if rec != nil && rec.State == ledger.StatePaid {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("record %+v; want the order found paid", rec)
		}
	}
	if n, held := b.Calls("create"), b.Count("Stay-R1"); n != 1 || held != 1 {
		t.Errorf("create calls = %d, provider holds %d orders; want the one create whose answer was lost, one order", n, held)
	}
}
