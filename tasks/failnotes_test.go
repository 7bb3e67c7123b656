package tasks_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// A create that failed is logged as a failed step tried again; a lookup
// within the listing lag that does not find the order yet is no failure,
// and is not (a black-box run: "not_found … within the listing lag" logged
// as failing).
func TestFailedStepsAreLoggedNotLookupsWithinTheLag(t *testing.T) {
	t.Parallel()
	r := taskstest.StartRedis(t, nil)
	b := memprov.NewBackend("s")
	b.Faults().Script(fault.FailBefore) // unanswered, nothing made
	set := providers.NewSet()
	set.Add(memprov.New(b, memprov.Options{Secret: "s"}))
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	t.Cleanup(func() { client.Close() })
	var logs lockedBuffer
	e := &env{ledger: tasks.NewLedger(r.Client(t))}
	e.enqueuer = tasks.NewEnqueuer(client, e.ledger, set, nil)
	h := tasks.NewHandler(e.ledger, set, &tasks.HandlerOptions{Deadline: time.Hour, ListingLag: time.Hour,
		Backoff: tasks.Backoff{Base: 10 * time.Millisecond, Max: 20 * time.Millisecond},
		Logger:  slog.New(slog.NewTextHandler(&logs, nil))})
	task := enqueueTask(t, e, memOrder("Fails-1"))
	ctx := context.Background()
	for range 3 { // the create, then lookups within the lag
		if err := h.ProcessTask(ctx, task); err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("the task ended (%v); want it waiting", err)
		}
	}
	var failing []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "provider steps failing and tried again") {
			failing = append(failing, l)
		}
	}
	if len(failing) != 1 || !strings.Contains(failing[0], "code=ambiguous") || !strings.Contains(failing[0], "level=WARN") {
		t.Errorf("failing lines %q; want one, at WARN, for the create's ambiguous answer, none for the lookups:\n%s", failing, logs.String())
	}
}
