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
	b := memprov.NewBackend("s")
	b.Faults().Script(fault.FailBefore) // unanswered, nothing made
	e, h, logs := memHandler(t, memprov.New(b, memprov.Options{Secret: "s"}), &tasks.HandlerOptions{Deadline: time.Hour, ListingLag: time.Hour,
		Backoff: tasks.Backoff{Base: 10 * time.Millisecond, Max: 20 * time.Millisecond}})
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

// memHandler is a handler over p (an in-memory provider, often wrapped),
// on a Redis of its own, logging to the buffer it returns, and its env
// (ledger and Enqueuer) for enqueueTask. ho's Logger is set.
func memHandler(t *testing.T, p providers.Provider, ho *tasks.HandlerOptions) (*env, *tasks.Handler, *lockedBuffer) {
	t.Helper()
	r := taskstest.StartRedis(t, nil)
	set := providers.NewSet()
	set.Add(p)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	t.Cleanup(func() { client.Close() })
	logs := &lockedBuffer{}
	e := &env{ledger: tasks.NewLedger(r.Client(t))}
	e.enqueuer = tasks.NewEnqueuer(client, e.ledger, set, nil)
	ho.Logger = slog.New(slog.NewTextHandler(logs, nil))
	return e, tasks.NewHandler(e.ledger, set, ho), logs
}
