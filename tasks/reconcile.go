package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/order"
)

// ReconcilerOptions configure a Reconciler. nil means defaults.
type ReconcilerOptions struct {
	// Queue is the asynq queue. Default DefaultQueue.
	Queue string
	// Interval between sweeps. Default 1m.
	Interval time.Duration
	// Grace is how long an order may sit in a state without a task before
	// the sweep acts on it. Default 1m.
	Grace time.Duration
	// Batch bounds the orders examined per provider and state per sweep:
	// the oldest Batch, and Batch more per ledger shard from where the
	// last sweep's walk through the rest stopped, so that behind a backlog
	// of live orders every order is still looked at, within about
	// (orders ÷ Batch) sweeps. Default 500.
	Batch int64
	// HeldRecheck is how soon an unknown order left for a person (still
	// unknown at its deadline, or a UniCloud or Aliyun order its listing
	// does not prove absent) is first looked up again: its task is queued
	// again once its record has not changed for that long, or for a
	// quarter of the time since it was left (Record.HeldAt) if longer (at
	// most a day), so that it is taken soon after a lookup that failed
	// only for the moment (a provider's 5xx at the deadline), and when the
	// provider comes to show it, without a lookup and a history entry
	// every sweep, nor one every quarter of an hour for weeks. Default 15m.
	HeldRecheck time.Duration
	// Registerer receives orderworker_reconciler_found_total; nil: none.
	Registerer prometheus.Registerer
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Reconciler sweeps the ledger for orders that no task will move on and
// queues a task for each: orders queued but never enqueued (a producer
// crashed between claim and enqueue), orders submitting or unknown whose
// task is gone or archived (a lost task, a Redis restart, an outcome still
// unknown at the deadline), and pending orders past their next check. The
// task's handler then decides; the reconciler never calls a provider.
//
// One worker sweeps at a time (a lock in Redis); any number may run it.
type Reconciler struct {
	ledger    *ledger.Ledger
	inspector *asynq.Inspector
	client    *asynq.Client
	providers []string
	opts      ReconcilerOptions
	found     *prometheus.CounterVec
	unchecked prometheus.Counter
	log       *slog.Logger
	// walk is where each provider, state and shard's walk past the oldest
	// Batch goes on at the next sweep (an offset into the index).
	walk map[walkKey]int64
}

type walkKey struct {
	provider string
	state    State
	shard    int
}

// NewReconciler returns a Reconciler over the named providers' orders.
func NewReconciler(l *ledger.Ledger, inspector *asynq.Inspector, client *asynq.Client, providerNames []string, opts *ReconcilerOptions) *Reconciler {
	o := ReconcilerOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Queue == "" {
		o.Queue = DefaultQueue
	}
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.Grace <= 0 {
		o.Grace = time.Minute
	}
	if o.HeldRecheck <= 0 {
		o.HeldRecheck = DefaultHeldRecheck
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Reconciler{ledger: l, inspector: inspector, client: client, providers: providerNames, opts: o, log: o.Logger, walk: map[walkKey]int64{},
		found: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderworker_reconciler_found_total",
			Help: "Orders the reconciler found with no task to move them on, each queued again (claimed_not_enqueued: queued, nothing tried, no task in the workers' queue; queued_in_unserved_queue: its task waits in a queue no worker serves; STATE_without_task: no task; STATE_task_ended: its task archived or completed), or with a task set to retry further ahead than the worker ever sets one, run now (retry_far_ahead), by kind.",
		}, []string{"kind"}),
		unchecked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderworker_reconciler_unchecked_total",
			Help: "Orders the reconciler could not check (their task unreadable, say), each time it tried; the log names them. The sweep goes on with the others.",
		})}
	// At zero from the start, so the first finding shows in increase().
	r.found.WithLabelValues("claimed_not_enqueued")
	for _, s := range []State{StateQueued, StateSubmitting, StateUnknown, StatePending} {
		r.found.WithLabelValues(string(s) + "_without_task")
		r.found.WithLabelValues(string(s) + "_task_ended")
	}
	r.found.WithLabelValues("retry_far_ahead")
	r.found.WithLabelValues("queued_in_unserved_queue")
	if o.Registerer != nil {
		o.Registerer.MustRegister(r.found, r.unchecked)
	}
	return r
}

// Run sweeps every Interval until ctx is done.
func (r *Reconciler) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.Sweep(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("reconciler sweep failed", "error", err)
			}
		}
	}
}

// Sweep runs one pass, if no other worker is sweeping, and returns what it
// found by kind.
func (r *Reconciler) Sweep(ctx context.Context) (map[string]int, error) {
	release, ok, err := r.ledger.TryLock(ctx, "reconciler:sweep", uuid.NewString(), r.opts.Interval)
	if err != nil || !ok {
		return nil, err
	}
	defer release()
	found := map[string]int{}
	// The indexes' scores and next checks are on Redis's clock.
	now, err := r.ledger.NotAfterNow(ctx, ledger.Ref{})
	if err != nil {
		return nil, err
	}
	cutoff := now.Add(-r.opts.Grace)
	for _, p := range r.providers {
		for _, s := range []State{StateQueued, StateSubmitting, StateUnknown, StatePending} {
			refs, err := r.examine(ctx, p, s, cutoff)
			if err != nil {
				return found, err
			}
			for _, ref := range refs {
				kind, err := r.check(ctx, ref, s, cutoff)
				if err != nil {
					// One order that cannot be checked (its task
					// unreadable: a producer's or a tool's write, another
					// asynq version's) stops no sweep: it is named and
					// counted, and the others are checked, unless Redis
					// itself fails (it does not answer a PING).
					if perr := r.ledger.Ping(ctx); perr != nil || ctx.Err() != nil {
						return found, err
					}
					r.unchecked.Inc()
					r.log.Warn("reconciler could not check an order; it goes on with the others", "provider", ref.Provider, "order_no", ref.OrderNo, "state", s, "error", err)
					continue
				}
				if kind != "" {
					found[kind]++
					r.found.WithLabelValues(kind).Inc()
				}
			}
		}
	}
	if len(found) > 0 {
		r.log.Warn("reconciler re-queued orders", "found", found)
	}
	return found, nil
}

// examine lists the orders of provider in state s a sweep looks at: the
// oldest Batch (the likeliest to be stuck and the nearest their deadline),
// then Batch more per shard from where the walk through the rest stopped,
// the walk starting over once it reaches the end.
func (r *Reconciler) examine(ctx context.Context, provider string, s State, cutoff time.Time) ([]ledger.Ref, error) {
	refs, err := r.ledger.InState(ctx, provider, s, cutoff, r.opts.Batch)
	if err != nil || int64(len(refs)) < r.opts.Batch {
		return refs, err // all of them
	}
	seen := make(map[string]bool, len(refs))
	for _, ref := range refs {
		seen[ref.OrderNo] = true
	}
	for shard := range r.ledger.Shards() {
		k := walkKey{provider, s, shard}
		off := r.walk[k]
		page, err := r.ledger.InStatePage(ctx, provider, s, cutoff, shard, off, r.opts.Batch)
		if err != nil {
			return refs, err
		}
		if r.walk[k] = off + int64(len(page)); int64(len(page)) < r.opts.Batch {
			r.walk[k] = 0 // the end: start over next sweep
		}
		for _, ref := range page {
			if !seen[ref.OrderNo] {
				seen[ref.OrderNo] = true
				refs = append(refs, ref)
			}
		}
	}
	return refs, nil
}

// check re-queues one order if nothing will move it on, and says why.
func (r *Reconciler) check(ctx context.Context, ref ledger.Ref, s State, cutoff time.Time) (string, error) {
	rec, err := r.ledger.Get(ctx, ref)
	if err != nil || rec == nil || rec.State.Terminal() || rec.State != s {
		return "", err
	}
	if s == StatePending && (rec.NextCheckAt.IsZero() || rec.NextCheckAt.After(cutoff)) {
		return "", nil
	}
	if s == StateUnknown && order.LeftForAPerson(rec.Reason) {
		now := rec.ReadAt
		if now.IsZero() {
			now = time.Now()
		}
		if now.Sub(rec.UpdatedAt) < r.heldRecheck(rec, now) {
			return "", nil
		}
	}
	queued, ended, err := requeue(ctx, r.ledger, r.inspector, r.client, r.opts.Queue, rec)
	if err != nil {
		return "", err
	}
	if !queued {
		return r.runOverdue(rec)
	}
	kind := string(s) + "_without_task"
	switch {
	case ended != 0:
		// Archived (out of retries, or by an operator) or completed
		// while the order is not done: not a producer's doing.
		kind = string(s) + "_task_ended"
	case s == StateQueued && rec.Attempts == 0:
		// No task in the workers' queue, nothing tried: a producer that
		// stopped between its claim and its enqueue (where they are two
		// writes), a task deleted by hand, or one queued where no
		// worker takes tasks from.
		kind = "claimed_not_enqueued"
	}
	unserved := ""
	if kind == "claimed_not_enqueued" {
		if unserved = r.unservedQueueOf(TaskID(rec.Provider, rec.OrderNo)); unserved != "" {
			// Its producer queued it where no worker serves (a -queue
			// or ORDERWORKER_QUEUE of its own): that task stays there.
			kind = "queued_in_unserved_queue"
		}
	}
	args := []any{"provider", rec.Provider, "order_no", rec.OrderNo, "state", rec.State, "kind", kind}
	if ended != 0 {
		args = append(args, "task_was", ended.String())
	}
	if unserved != "" {
		args = append(args, "unserved_queue", unserved)
	}
	r.log.Warn("reconciler re-queued an order", args...)
	return kind, nil
}

// unservedQueueOf is the queue, other than the ones the workers serve,
// where a task with id waits to run (pending, scheduled or retrying): a
// producer's that no worker will take. "" when there is none, or the
// queues cannot be read.
func (r *Reconciler) unservedQueueOf(id string) string {
	queues, err := r.inspector.Queues()
	if err != nil {
		return ""
	}
	served := ServedQueues(r.opts.Queue, r.ledger.Shards())
	for _, q := range queues {
		if slices.Contains(served, q) {
			continue
		}
		info, err := r.inspector.GetTaskInfo(q, id)
		if err == nil && (info.State == asynq.TaskStatePending || info.State == asynq.TaskStateScheduled || info.State == asynq.TaskStateRetry) {
			return q
		}
	}
	return ""
}

// runOverdue runs now the order's retrying task when it is due further
// ahead than any retry the worker sets (maxRetryAhead), judged on both
// Redis's clock and this process's: asynq times a retry on the clock of
// the worker that set it, and a worker whose clock is hours fast leaves
// the order's task live, so never re-queued, and unrun for those hours,
// past the order's deadline ("a task that is live but will not run for
// hours", a hunt for stranded orders). Its kind is "retry_far_ahead".
func (r *Reconciler) runOverdue(rec *Record) (string, error) {
	now := time.Now()
	if rec.ReadAt.After(now) {
		now = rec.ReadAt
	}
	if rec.ReadAt.IsZero() || rec.ReadAt.Sub(rec.UpdatedAt) < MaxRetryDelay {
		// Changed within the longest retry: a run took a step lately.
		// (A worker whose clock is fast, alive, has its orders run early
		// so at most once in that time each, not at every sweep.)
		return "", nil
	}
	id := TaskID(rec.Provider, rec.OrderNo)
	for _, q := range slices.Compact([]string{OrderQueue(r.opts.Queue, r.ledger, rec.Ref()), r.opts.Queue}) {
		info, err := r.inspector.GetTaskInfo(q, id)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
			continue
		case err != nil:
			return "", err
		case info.State != asynq.TaskStateRetry || !info.NextProcessAt.After(now.Add(maxRetryAhead)):
			continue
		}
		if err := r.inspector.RunTask(q, id); err != nil {
			// Taken meanwhile (a worker dequeued it), or gone: nothing
			// to run early.
			r.log.Debug("reconciler: a task set to retry far ahead could not be run now", "provider", rec.Provider, "order_no", rec.OrderNo, "error", err)
			return "", nil
		}
		r.log.Warn("reconciler ran now an order's task that was set to retry further ahead than the worker ever sets one (a worker whose clock is fast?)",
			"provider", rec.Provider, "order_no", rec.OrderNo, "state", rec.State, "due", info.NextProcessAt.UTC().Format(time.RFC3339))
		return "retry_far_ahead", nil
	}
	return "", nil
}

// maxRetryAhead is further ahead than any retry the worker sets
// (MaxRetryDelay), with a margin for clocks a little apart.
const maxRetryAhead = MaxRetryDelay + time.Hour

// DefaultHeldRecheck is ReconcilerOptions.HeldRecheck's default.
const DefaultHeldRecheck = 15 * time.Minute

// maxHeldRecheck bounds how long an order left for a person waits between
// two looks as it stays held (see ReconcilerOptions.HeldRecheck).
const maxHeldRecheck = 24 * time.Hour

// heldRecheck is how long an order left for a person waits, unchanged,
// before it is looked up again (see ReconcilerOptions.HeldRecheck): a
// quarter of the time since it was left, within HeldRecheck and a day
// (HeldRecheck if longer), so that an order held for a month is looked
// up about fifty times, most of them in its first days. It counts from
// the hold, not from the order's enqueue: an order left at a deadline a
// day after its enqueue is looked at again within the quarter hour, not
// six hours later. A record held before HeldAt was written counts from
// its enqueue, as it did then.
func (r *Reconciler) heldRecheck(rec *Record, now time.Time) time.Duration {
	since := rec.HeldAt
	if since.IsZero() {
		since = rec.CreatedAt
	}
	return max(r.opts.HeldRecheck, min(now.Sub(since)/4, maxHeldRecheck))
}

// Queues lists the asynq queues of a ledger of shards shards: queue
// itself for one shard; for more, one per shard, named by
// ledger.ShardTag(queue, i, shards) (for three: orders-0.1, orders-1.7,
// orders-2.4) so that on a Redis Cluster with shards masters, shard i's
// queue and its ledger keys are on the same master and every master
// serves one. asynq keeps a
// queue in one hash slot; these queues spread the tasks over the slots as
// the ledger spreads the orders.
func Queues(queue string, shards int) []string {
	if queue == "" {
		queue = DefaultQueue
	}
	out := make([]string, max(shards, 1))
	for i := range out {
		out[i] = ledger.ShardTag(queue, i, len(out))
	}
	return out
}

// ServedQueues are the queues a worker serves: its shards' (Queues) and,
// with more than one shard, the queue as named, where a producer that
// writes its tasks itself puts them (a task found there is claimed in its
// shard and run where it is).
func ServedQueues(queue string, shards int) []string {
	qs := Queues(queue, shards)
	if len(qs) > 1 {
		if queue == "" {
			queue = DefaultQueue
		}
		qs = append(qs, queue)
	}
	return qs
}

// OrderQueue is the asynq queue of an order's task: the queue of its
// ledger shard (see Queues).
func OrderQueue(queue string, l *ledger.Ledger, ref OrderRef) string {
	if queue == "" {
		queue = DefaultQueue
	}
	return ledger.ShardTag(queue, l.ShardOf(ref), l.Shards())
}

// Requeue queues a task for the recorded order on its own queue
// (OrderQueue of base, the queue as named) unless a live task for it
// exists (pending, scheduled, retrying or running): an archived or
// completed one is replaced. With ledger shards a task a producer wrote
// itself sits in base, not in the order's shard queue: a live one there
// runs the order, and an archived or completed one hands what it stood
// for on to the new task as one in the shard queue does, and is deleted
// once that task is queued (so that a later resend's claim, which finds a
// task under the id in either queue, does not take it for a live one; a
// failure to delete leaves it as it was, harmless). It reports
// whether it queued one. The task carries the params as recorded, and the
// record's claim: should Redis lose the record, its runs know that the
// order may exist, as the Enqueuer's tasks do. A deleted task that stood
// for creates the record does not know of (queued for another claim, not
// undone, or marked as having sent a create under another record: the
// record was lost and recorded again since) hands that on to the new one
// (see ranToken), with the earlier time, in the same step as it replaces
// it (ledger.ReplaceTask). Operators' tools use it after
// re-driving or resolving an order; the reconciler after finding one
// without a task.
func Requeue(ctx context.Context, l *ledger.Ledger, inspector *asynq.Inspector, client *asynq.Client, base string, rec *Record) (bool, error) {
	queued, _, err := requeue(ctx, l, inspector, client, base, rec)
	return queued, err
}

// requeue is Requeue, also saying what it found of the order's task when
// it queued one: ended, an archived or completed task it replaced (asynq's
// state of it), or "" for none at all.
func requeue(ctx context.Context, l *ledger.Ledger, inspector *asynq.Inspector, client *asynq.Client, base string, rec *Record) (bool, asynq.TaskState, error) {
	if base == "" {
		base = DefaultQueue
	}
	queue := OrderQueue(base, l, rec.Ref())
	id := TaskID(rec.Provider, rec.OrderNo)
	at, token := requeueMark(rec), rec.Claim
	var found asynq.TaskState
	if queue != base {
		// A producer's own task sits in the queue as named.
		ended, live, err := findTask(inspector, base, id)
		switch {
		case err != nil:
			return false, 0, err
		case live:
			return false, 0, nil // the producer's live task will handle it
		case ended != nil:
			if token, at, err = handOn(ctx, l, base, id, ended, rec, token, at); err != nil {
				return false, 0, err
			}
			found = ended.State
		}
	}
	ok, replaced, err := requeueIn(ctx, l, inspector, client, queue, id, rec, token, at)
	if ok && found != 0 {
		_ = inspector.DeleteTask(base, id) // its marks are carried by the new task
	}
	if replaced != 0 {
		found = replaced
	}
	return ok, found, err
}

// RequeueNow is Requeue for an operator's decision (an order resolved
// absent, to be created): a live task that waits to run (scheduled, or
// retrying after a backoff; a pending order waiting for a person checks
// up to an hour apart) is run now rather than left to its time, which
// could fall past the order's deadline. It reports whether it queued a
// task or ran one early.
func RequeueNow(ctx context.Context, l *ledger.Ledger, inspector *asynq.Inspector, client *asynq.Client, base string, rec *Record) (bool, error) {
	queued, err := Requeue(ctx, l, inspector, client, base, rec)
	if err != nil || queued {
		return queued, err
	}
	if base == "" {
		base = DefaultQueue
	}
	id := TaskID(rec.Provider, rec.OrderNo)
	for _, q := range []string{OrderQueue(base, l, rec.Ref()), base} {
		info, err := inspector.GetTaskInfo(q, id)
		if err != nil {
			continue
		}
		if info.State == asynq.TaskStateScheduled || info.State == asynq.TaskStateRetry {
			if err := inspector.RunTask(q, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return false, fmt.Errorf("run %s now: %w", id, err)
			}
			return true, nil
		}
	}
	return false, nil
}

// handOn is what an archived or completed task (info, id in queue) stood
// for, carried into a task replacing it: the token and time its
// replacement carries, starting from token and at. A task queued for
// another claim that was not undone, or marked as having sent a create
// under another record, stood for creates rec does not know of (ranToken).
func handOn(ctx context.Context, l *ledger.Ledger, queue, id string, info *asynq.TaskInfo, rec *Record, token string, at time.Time) (string, time.Time, error) {
	if claimed, t, tok := claimedMark(asynq.NewTaskWithHeaders(info.Type, nil, info.Headers)); claimed && tok != "" && tok != rec.Claim {
		undone, err := l.Unclaimed(ctx, rec.Ref(), tok)
		if err != nil {
			return token, at, err
		}
		if !undone {
			token, at = ranToken, earlierBound(at, t)
		}
	}
	ran, t, under, err := l.TaskRanBefore(ctx, queue, id)
	if err != nil {
		return token, at, err
	}
	if ran && (under == "" || under != rec.Claim) {
		token, at = ranToken, earlierBound(at, t)
	}
	return token, at, nil
}

// requeueIn is Requeue in queue, the order's own, carrying token and at
// and what a task it replaces there stood for; it says the state of an
// ended task it found there (0: none).
func requeueIn(ctx context.Context, l *ledger.Ledger, inspector *asynq.Inspector, client *asynq.Client, queue, id string, rec *Record, token string, at time.Time) (bool, asynq.TaskState, error) {
	ended, live, err := findTask(inspector, queue, id)
	var found asynq.TaskState
	switch {
	case err != nil:
		return false, 0, err
	case live:
		return false, 0, nil // a live task will handle it
	case ended != nil:
		found = ended.State
		if token, at, err = handOn(ctx, l, queue, id, ended, rec, token, at); err != nil {
			return false, 0, err
		}
		// The new task takes the old one's place in one step: a
		// failure between a delete and an enqueue would lose what the
		// old one stood for.
		data, err := json.Marshal(Payload{Provider: rec.Provider, OrderNo: rec.OrderNo, Params: rec.Params})
		if err != nil {
			return false, 0, err
		}
		err = l.ReplaceTask(ctx, ledger.Task{Type: TypeOrderSubmit, Payload: data, ID: id, Queue: queue,
			Headers: map[string]string{claimedHeader: claimMark(at, token)}, Retry: TaskMaxRetry, Timeout: int64(TaskTimeout / time.Second)})
		switch {
		case err == nil:
			return true, found, nil
		case errors.Is(err, ledger.ErrTaskLive):
			return false, 0, nil // a live task will handle it
		case !errors.Is(err, ledger.ErrTaskGone):
			return false, 0, fmt.Errorf("re-queue %s: %w", id, err)
		}
		// Gone since it was read (asynq trims archived tasks): queued
		// anew below, carrying what it stood for all the same.
	}
	task, err := newClaimedTask(Payload{Provider: rec.Provider, OrderNo: rec.OrderNo, Params: rec.Params}, at, token)
	if err != nil {
		return false, 0, err
	}
	if _, err := client.EnqueueContext(ctx, task, asynq.Queue(queue), asynq.MaxRetry(TaskMaxRetry), asynq.Timeout(TaskTimeout)); err != nil {
		if errors.Is(err, asynq.ErrTaskIDConflict) {
			return false, 0, nil
		}
		return false, 0, fmt.Errorf("re-queue %s: %w", id, err)
	}
	return true, found, nil
}

// findTask reads the task id in queue: live when one stands for the
// order and will run (pending, scheduled, retrying or running); else
// ended, an archived or completed one, or nil when there is none.
func findTask(inspector *asynq.Inspector, queue, id string) (ended *asynq.TaskInfo, live bool, err error) {
	info, err := inspector.GetTaskInfo(queue, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case info.State == asynq.TaskStateArchived || info.State == asynq.TaskStateCompleted:
		return info, false, nil
	}
	return nil, true, nil
}

// earlierBound is the earlier of two times no create left before, zero
// (no time known, so none to look an order up from) when either is.
func earlierBound(a, b time.Time) time.Time {
	if a.IsZero() || b.IsZero() {
		return time.Time{}
	}
	if b.Before(a) {
		return b
	}
	return a
}

// ranToken is the claim a re-queued task carries for a task it replaced
// that had sent a create under another record than the one it is queued
// for: no claim has it, and none undoes it, so the task's runs take the
// order for one that may exist (see Handler, priorCreate).
const ranToken = "ran"

// requeueMark is the time a re-queued task carries as no later than any
// create of rec's order (see claimedHeader), which bounds the lookup should
// Redis lose the record again: its creation, or its first attempt when
// earlier (a record recreated after Redis lost it was written after the
// creates it stands for); none when the record may stand for creates and
// knows no time for them, rather than one that could be after them (a
// lookup from a time after the create would miss the order, and it would
// be created again).
func requeueMark(rec *Record) time.Time {
	switch {
	case !rec.FirstAttemptAt.IsZero() && rec.FirstAttemptAt.Before(rec.CreatedAt):
		return rec.FirstAttemptAt
	case rec.FirstAttemptAt.IsZero() && rec.MayHaveExisted:
		return time.Time{}
	}
	return rec.CreatedAt
}
