package tasks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
)

// lookupCannotTell is a provider whose lookups answer Ambiguous: with the
// answer's status when status is set (a listing read in full that holds
// orders the order cannot be told from), without one otherwise (no call
// made, or one cut short by a page cap).
type lookupCannotTell struct {
	*memprov.Client
	status int
}

func (p lookupCannotTell) Lookup(context.Context, providers.Order) (providers.Result, error) {
	return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: "mem list", HTTPStatus: p.status, Message: "2 orders match; a person decides"}
}

// A lookup the provider answered in full at a 2xx, with orders the order
// cannot be told from, tells the breaker the provider is up: a success.
// As no news, a half-open breaker whose trials all went to such lookups
// (after Redis lost its data every order is looked up, and without its
// snapshot most cannot be told apart) never closed, and one failure among
// them opened it again: new orders waited minutes. An Ambiguous read
// without an answer's status stays no news.
func TestLookupAnsweredButUndecidedTellsTheBreakerTheProviderIsUp(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status  int
		success bool
	}{{200, true}, {0, false}, {503, false}} {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := memprov.NewBackend("")
			b.Faults().Script(fault.FailAfter) // created, the answer lost: a lookup follows
			_, _, l, set := memSetup(t, nil, lookupCannotTell{memprov.New(b, memprov.Options{}), tt.status})
			g := &doneLog{}
			h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Guard: g, Logger: quiet, ListingLag: -1,
				Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}})
			_, task := claimedMemOrder(t, l, "CannotTell-1")
			_ = h.ProcessTask(ctx, task) // the create, ambiguous
			_ = h.ProcessTask(ctx, task) // the lookup
			g.mu.Lock()
			defer g.mu.Unlock()
			if len(g.errs) != 2 || providers.CodeOf(g.errs[0]) != providers.Ambiguous {
				t.Fatalf("the breaker was told %v; want the create's ambiguous failure, then the lookup's", g.errs)
			}
			if got := g.errs[1] == nil; got != tt.success {
				t.Errorf("a lookup ambiguous at HTTP %d told the breaker %v; success %v, want %v", tt.status, g.errs[1], got, tt.success)
			}
		})
	}
}
