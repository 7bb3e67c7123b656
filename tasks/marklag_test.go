package tasks_test

import (
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/tencent"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// A worker whose listing lag is shorter than the one that sent an order's
// create (ORDERWORKER_LISTING_LAG changed in a rolling restart, or two
// workers set apart) waits out the longer lag before it believes a
// lookup's not-found: the lag is recorded with the create's mark. Here the
// first worker (lag 3 s) makes a create whose answer is lost, then stops;
// the order's next step is run at once (an operator's "run" in the
// dashboard) by a worker that believes a not-found at once, while the
// provider does not list the order for 1.5 s.
func TestShorterLagWaitsTheLagOfTheCreate(t *testing.T) {
	t.Parallel()
	const no = "Order-LagMix"
	e, rec := lostCreate(t, no, 3*time.Second, 1500*time.Millisecond)
	if rec.MarkLag != 3*time.Second {
		t.Errorf("the record's mark lag = %s, want the first worker's 3s", rec.MarkLag)
	}

	e.runWith(t, no, &tasks.HandlerOptions{MaxAttempts: 4, ListingLag: -1, Backoff: lagBackoff})
	rec = e.waitState(t, no, tasks.StatePaid)
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
		t.Errorf("ServiceCreateOrder called %d times, want 1: the second worker took a not-found within the first one's lag", n)
	}
}

// lagBackoff is the retry backoff of the listing lag tests' workers.
var lagBackoff = tasks.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}

// lostCreate starts a worker with the listing lag lag against a sandbox
// that lists new orders listLag late, enqueues order no, whose create is
// made and answered 500, and stops the worker once the order is unknown.
func lostCreate(t *testing.T, no string, lag, listLag time.Duration) (*env, *tasks.Record) {
	t.Helper()
	e := setup(t, &setupOpts{handler: &tasks.HandlerOptions{MaxAttempts: 4, ListingLag: lag, Backoff: lagBackoff}, noServer: true})
	e.sandbox.ListLag = listLag
	e.sandbox.Faults().Script(fault.FailAfter)
	e.startServer(t)
	e.enqueue(t, order(no))
	rec := e.waitState(t, no, tasks.StateUnknown)
	e.srv.Shutdown()
	return e, rec
}

// runWith starts a worker with the handler options o on e's Redis, and
// runs the order's task at once unless it waits no longer (already queued
// or running), as an operator's "run" in the dashboard does. The worker
// is shut down at the test's end, or by the caller.
func (e *env) runWith(t *testing.T, no string, o *tasks.HandlerOptions) *tasks.Server {
	t.Helper()
	h := tasks.NewHandler(e.ledger, e.set, o)
	redisOpt := asynq.RedisClientOpt{Addr: e.redis.Addr}
	srv, mux := tasks.NewServer(redisOpt, h, tasks.ServerOptions{
		Concurrency: 4, TaskCheckInterval: 20 * time.Millisecond, DelayedTaskCheckInterval: 50 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ins := asynq.NewInspector(redisOpt)
	t.Cleanup(func() { ins.Close() })
	for {
		info, err := ins.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID("tencent", no))
		if errors.Is(err, asynq.ErrTaskNotFound) {
			return srv // done already
		}
		if err != nil {
			t.Fatalf("the order's task: %v", err)
		}
		if info.State != asynq.TaskStateScheduled && info.State != asynq.TaskStateRetry {
			return srv
		}
		if err := ins.RunTask(tasks.DefaultQueue, info.ID); err == nil {
			return srv
		}
	}
}

// A worker whose listing lag is longer than how soon after the last create
// a lookup's not-found was seen does not create the order on that belief:
// it looks the order up again, whether it comes within its own lag of the
// create or after it (what counts is when the lookup looked). Here a first
// worker (lag 1 s) makes a create whose answer is lost, then stops; a
// worker with the same 1 s lag (played by the test, through the ledger)
// looks the order up 1.1 s after the create, finds nothing (the provider
// lists new orders 2.5 s late) and believes it, and stops before its
// create; then a worker with a 3 s lag runs the order, 1.1 s or 3.5 s
// after the create: it looks it up again, and finds the order the first
// create made.
func TestLongerLagLooksAgainBeforeACreate(t *testing.T) {
	t.Parallel()
	for _, arrives := range []time.Duration{1100 * time.Millisecond, 3500 * time.Millisecond} {
		t.Run(arrives.String(), func(t *testing.T) {
			t.Parallel()
			no := "Order-LagLook-" + strconv.FormatInt(arrives.Milliseconds(), 10)
			e, rec := lostCreate(t, no, time.Second, 2500*time.Millisecond)
			created := rec.LastCreateAt

			// The 1 s worker's lookup and its belief.
			time.Sleep(time.Until(created.Add(1100 * time.Millisecond)))
			ref := ledger.Ref{Provider: "tencent", OrderNo: no}
			b, err := e.ledger.Begin(t.Context(), ref, ledger.BeginArgs{Token: "short-lookup", NoCreate: true, ListingLag: time.Second})
			if err != nil || b.Status != ledger.Began {
				t.Fatalf("the short worker's Begin: %+v, %v", b, err)
			}
			if got := e.sandbox.Calls("ServiceCreateOrder"); got != 1 {
				t.Fatalf("ServiceCreateOrder called %d times before the belief, want 1", got)
			}
			seen := b.Record.ReadAt.Sub(created)
			if err := e.ledger.Settle(t.Context(), ref, "short-lookup", ledger.SetRetry("not found").WithMayExist(false).WithAbsentLag(seen)); err != nil {
				t.Fatal(err)
			}

			time.Sleep(time.Until(created.Add(arrives)))
			e.runWith(t, no, &tasks.HandlerOptions{MaxAttempts: 4, ListingLag: 3 * time.Second, Backoff: lagBackoff})
			rec = e.waitState(t, no, tasks.StatePaid)
			if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
				t.Errorf("ServiceCreateOrder called %d times, want 1: the 3s worker created the order on a not-found seen %s after the create", n, seen)
			}
			if last := rec.History[len(rec.History)-1]; last.Call != "lookup" || last.Result != "ok" {
				t.Errorf("paid by %s %s, want by a lookup that found the order", last.Call, last.Result)
			}
		})
	}
}

// A worker that cannot send an order (its provider not configured) errors
// it at its deadline as never created, but not one a lookup's not-found
// let go that was seen sooner after the last create than its listing lag:
// that order may exist, and waits for a worker that can look it up.
func TestUnsentOrderAwaitingARecheckIsNotErrored(t *testing.T) {
	t.Parallel()
	const no = "Order-Recheck-Unsent"
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{ConfigWait: 50 * time.Millisecond,
		Deadline: 300 * time.Millisecond, ListingLag: time.Hour}})
	e.set.Disable("tencent", "TENCENT_APP_KEY is not set", tencent.Validate)
	e.enqueue(t, order(no))
	ref := ledger.Ref{Provider: "tencent", OrderNo: no}
	// Another worker's create, its answer lost, and its lookup's not-found
	// believed 100ms after it.
	if _, err := e.ledger.Begin(t.Context(), ref, ledger.BeginArgs{Token: "create"}); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.Settle(t.Context(), ref, "create", ledger.SetUnknown("timeout").WithMayExist(true)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ledger.Begin(t.Context(), ref, ledger.BeginArgs{Token: "look", NoCreate: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.Settle(t.Context(), ref, "look", ledger.SetRetry("not found").WithMayExist(false).WithAbsentLag(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	e.startServer(t)
	time.Sleep(time.Second) // past the deadline, several config waits
	rec, err := e.ledger.Get(t.Context(), ref)
	if err != nil || rec.State != ledger.StateSubmitting {
		t.Errorf("past the deadline: %s (%q), %v; want submitting still, for a worker that can look it up", rec.State, rec.Reason, err)
	}
}

// An order errored as never created on a lookup's not-found seen sooner
// after its last create than another worker's lag (past its deadline, or
// with its failure budget spent) and re-driven by an operator is looked up
// again by that worker before it creates it, as the same not-found before
// the deadline would have it (TestLongerLagLooksAgainBeforeACreate): the
// errored record keeps when the not-found was seen, and the re-drive keeps
// that. Before, the longer-lag worker created the re-driven order at once,
// and the provider, listing the first create's order late, held it twice
// (a review).
func TestRedrivenAfterAShortLagBeliefLooksAgain(t *testing.T) {
	t.Parallel()
	const no = "Order-LagRedrive"
	e, _ := lostCreate(t, no, time.Second, 3*time.Second)
	ref := ledger.Ref{Provider: "tencent", OrderNo: no}

	// A worker with a 1 s lag and a 1 s deadline believes the not-found
	// and errors the order: the provider holds no such order, it says.
	short := e.runWith(t, no, &tasks.HandlerOptions{MaxAttempts: 4, ListingLag: time.Second, Deadline: time.Second, Backoff: lagBackoff})
	rec := e.waitState(t, no, tasks.StateErrored)
	short.Shutdown()
	if rec.MayExist || !strings.Contains(rec.Reason, "holds no such order") {
		t.Fatalf("errored %q (may exist %v); want errored as never created", rec.Reason, rec.MayExist)
	}
	if !rec.AbsentBelieved || rec.AbsentLag < time.Second || rec.AbsentLag >= 3*time.Second {
		t.Fatalf("absent_lag %s (recorded %v); want when the not-found was seen, 1s to 3s after the create", rec.AbsentLag, rec.AbsentBelieved)
	}
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
		t.Fatalf("ServiceCreateOrder called %d times before the re-drive; want 1", n)
	}

	// An operator re-drives it; a worker with a 5 s lag runs it within 3 s
	// of the create, before the provider lists the order.
	if err := e.ledger.Redrive(t.Context(), ref, "ann", "retry"); err != nil {
		t.Fatalf("redrive: %v", err)
	}
	rec, _ = e.ledger.Get(t.Context(), ref)
	ins := asynq.NewInspector(asynq.RedisClientOpt{Addr: e.redis.Addr})
	t.Cleanup(func() { ins.Close() })
	if _, err := tasks.Requeue(t.Context(), e.ledger, ins, e.client, tasks.DefaultQueue, rec); err != nil {
		t.Fatalf("requeue: %v", err)
	}
	e.runWith(t, no, &tasks.HandlerOptions{MaxAttempts: 4, ListingLag: 5 * time.Second, Backoff: lagBackoff})
	e.waitState(t, no, tasks.StatePaid)
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
		t.Errorf("ServiceCreateOrder called %d times, want 1: the 5s worker created the re-driven order on a not-found seen within its lag of the first create", n)
	}
}

// Within the listing lag, a lookup that does not find the order looks
// again at an eighth, a quarter and half of the lag after the last create,
// then at its end: an order the provider lists a little late is paid once
// it shows, not only when the lag is over (it waited the whole lag before);
// and one the provider still did not list half the lag after its create is
// counted and logged as listed late (orderworker_orders_listed_late_total,
// alert OrdersListedLate): the lag is then close to how late the provider
// lists orders, past which a not-found is believed and the order created
// again. Here the lag is 16 s; the provider lists new orders 3 s late in
// one case and 10 s late in the other.
func TestLookupsWithinTheLagStepAndTellALateListing(t *testing.T) {
	t.Parallel()
	const lag = 16 * time.Second
	for _, c := range []struct {
		name    string
		listLag time.Duration
		late    bool
	}{
		{"listed 3s late", 3 * time.Second, false},
		{"listed 10s late", 10 * time.Second, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			const no = "Order-Steps"
			reg := prometheus.NewRegistry()
			e := setup(t, &setupOpts{handler: &tasks.HandlerOptions{MaxAttempts: 4, ListingLag: lag, Backoff: lagBackoff, Metrics: tasks.NewMetrics(reg)}, noServer: true})
			e.sandbox.ListLag = c.listLag
			e.sandbox.Faults().Script(fault.FailAfter)
			e.startServer(t)
			e.enqueue(t, order(no))
			rec := e.waitStateFor(t, no, tasks.StatePaid, 30*time.Second)
			// The count follows the settle: the handler's run has ended
			// once the server is down (on a loaded machine the record
			// was read paid before the run that settled it counted).
			e.srv.Shutdown()
			if n := e.sandbox.Calls("ServiceCreateOrder"); n != 1 {
				t.Errorf("ServiceCreateOrder called %d times, want 1", n)
			}
			took := rec.OutcomeAt.Sub(rec.LastCreateAt)
			lookups := e.sandbox.Calls("ServiceGetOrderList")
			late := counterValue(t, reg, "orderworker_orders_listed_late_total", map[string]string{"provider": "tencent"})
			t.Logf("paid %s after the create, %d lookups, listed late %v; last unseen %s after it", took.Round(time.Millisecond), lookups, late, rec.UnseenAt.Sub(rec.LastCreateAt).Round(time.Millisecond))
			if c.late {
				if late != 1 || took < lag/2 {
					t.Errorf("listed late counted %v, paid %s after the create; want 1, past half the lag (%s)", late, took, lag/2)
				}
			} else if late != 0 || took >= lag/2 {
				t.Errorf("listed late counted %v, paid %s after the create; want 0, at a quarter of the lag (%s), once listed", late, took, lag/4)
			}
			if lookups > 6 {
				t.Errorf("%d lookups within the lag; want at most 6 (an eighth, a quarter, half, the end, and the first)", lookups)
			}
		})
	}
}

// A create that follows a lookup's believed not-found, after a create of
// the order that may have been received, is counted
// (orderworker_orders_created_again_total) and logged: with the listing
// lag above how late the provider lists orders, such an order's first
// create made nothing; with a lag shorter than that (here 1 s against a
// listing 3 s late), the order is now made twice, and this count is the
// one trace of it for providers whose lookups match their listing. An
// order whose create was answered is not counted.
func TestCreatedAgainIsCounted(t *testing.T) {
	t.Parallel()
	const lag = time.Second
	for _, c := range []struct {
		name    string
		fault   fault.Kind
		listLag time.Duration
		again   float64
		orders  int
	}{
		{"answered", fault.None, 0, 0, 1},
		{"nothing made", fault.FailBefore, 0, 1, 1},
		{"made, listed after the lag", fault.FailAfter, 3 * time.Second, 1, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			const no = "Order-Again"
			reg := prometheus.NewRegistry()
			e := setup(t, &setupOpts{handler: &tasks.HandlerOptions{MaxAttempts: 4, ListingLag: lag, Backoff: lagBackoff, Metrics: tasks.NewMetrics(reg)}, noServer: true})
			e.sandbox.ListLag = c.listLag
			if c.fault != fault.None {
				e.sandbox.Faults().Script(c.fault)
			}
			e.startServer(t)
			e.enqueue(t, order(no))
			e.waitStateFor(t, no, tasks.StatePaid, 30*time.Second)
			e.srv.Shutdown() // the run that settled it has counted
			again := counterValue(t, reg, "orderworker_orders_created_again_total", map[string]string{"provider": "tencent"})
			made := len(e.sandbox.Orders()[no])
			if again != c.again || made != c.orders {
				t.Errorf("created again counted %v, %d orders at the provider; want %v, %d", again, made, c.again, c.orders)
			}
		})
	}
}
