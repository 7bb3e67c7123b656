package tasks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/order"
)

// HandlerOptions configure a Handler. nil means defaults.
type HandlerOptions struct {
	// MaxAttempts is each order's failure budget: after this many failed
	// submissions that created nothing, the order is errored. Throttling,
	// lookups and polling a pending order do not count. Default 8.
	MaxAttempts int
	// Backoff spaces retries after failures. Default 1s doubling to 5m,
	// with full jitter.
	Backoff Backoff
	// Deadline is how long after enqueue an order may still be submitted;
	// past it the order is errored with that reason (once the provider has
	// confirmed it holds no such order). Default 24h.
	Deadline time.Duration
	// Deadlines overrides Deadline per provider.
	Deadlines map[string]time.Duration
	// PendingWindow is how long a pending order is polled before it is
	// errored as unpaid. Default 30m.
	PendingWindow time.Duration
	// PollInterval is the first wait between polls of a pending order when
	// the provider gives no hint; it doubles up to one minute. Default 2s.
	PollInterval time.Duration
	// ConfigWait is how long an order held back by a configuration
	// problem waits before it is tried again. Default 30s.
	ConfigWait time.Duration
	// ListingLag is how long after a create a lookup that does not find
	// the order is not believed (see order.Policy): the order stays
	// unknown and is looked up again. Default DefaultListingLag; negative:
	// none. The provider's create overrun is added to it either way
	// (ListingLagFor).
	ListingLag time.Duration
	// SameTargets are create targets (the fingerprints a record keeps,
	// Record.CreateTarget) this worker's providers answer for as for
	// their own: after a key rotation, say, the old key's fingerprint, so
	// that orders created with it are looked up with the new one. A
	// target not listed, and not this worker's, holds the order
	// (ProblemTarget).
	SameTargets []string
	// LeaseTTL is how long an order's lease holds without a keepalive; the
	// keepalive extends it every third of that while a call runs. Default
	// 30s.
	LeaseTTL time.Duration
	// Guard, if set, is consulted before every provider operation (the
	// circuit breakers; rate limits apply to each HTTP request, in the
	// providers' transports) and told its result.
	Guard Guard
	// Metrics records outcomes and calls; nil records nothing.
	Metrics *Metrics
	// Problems collects configuration problems for /readyz and metrics;
	// nil: a private one.
	Problems *Problems
	// Logger receives one line per state change. Default slog.Default().
	Logger *slog.Logger
	// Sealer opens sealed params (and seals those of orders it adopts);
	// nil means params are in clear.
	Sealer *Sealer
	// BeforeRecord, when set, is asked before the handler records an
	// order whose record is missing (a record lost mid-step or before a
	// run, recreated as unknown; a producer's own task, claimed on first
	// sight): an error holds the task back, a wait, with nothing written.
	// worker -dev writes nothing so into a Redis that lost its -dev
	// marker (flushed while it ran): a real worker started there later
	// would create its demo orders at the real providers.
	BeforeRecord func(ctx context.Context) error
	// Now is this worker's own clock; default time.Now. It judges only
	// a record read without Redis's time: one Begin read is judged on
	// Redis's clock (see judgeClock), so that a worker whose clock is
	// off judges it as every other worker does. Tests set it to play
	// such a worker.
	Now func() time.Time
}

// Guard stands between the handler and a provider: Wait returns how long
// to wait before a call may be made (0: go ahead), Done reports its result.
type Guard interface {
	Wait(ctx context.Context, provider string) (time.Duration, error)
	Done(provider string, err error)
}

// Handler processes order:submit tasks: the imperative shell around the
// state machine in package order. Each step of an order is one ledger
// Begin, at most one provider call, and one ledger Settle. It is safe for
// concurrent use.
type Handler struct {
	ledger    *ledger.Ledger
	providers *providers.Set
	opts      HandlerOptions
	log       *slog.Logger
	metrics   *Metrics
	problems  *Problems
	parsed    parsedCache
	// hold is clockHold, as the providers were when h was made.
	hold time.Duration
	// calls holds one token per provider call in flight, from a step's
	// Begin to the end of its call; nil: unbounded (see LimitCalls).
	calls chan struct{}
	// stays holds one token per run waiting in place for its next step
	// (see stay); nil: none waits in place. stopStays is closed by
	// StopWaiting.
	stays     chan struct{}
	stopStays chan struct{}
	stopOnce  sync.Once
	// failing logs the failed steps tried again (see failNotes).
	failing failNotes
}

// LimitCalls bounds the provider calls h makes at once to n (n <= 0: no
// bound). A step takes a slot before its Begin and gives it back as soon
// as its call returns, so an order's bookkeeping around the call (asynq
// taking the task and marking it done, the ledger's Settle) does not hold
// one: with more orders running than slots, the slots stay busy with
// calls. NewServer sets it to the worker's concurrency; call it before the
// handler runs. Only the first call with n > 0 counts: a second server on
// the same handler shares the first one's slots.
func (h *Handler) LimitCalls(n int) {
	if h.calls != nil {
		return // set once: a running handler's slots are never swapped
	}
	if n <= 0 {
		h.calls = nil
		return
	}
	h.calls = make(chan struct{}, n)
	h.stays = make(chan struct{}, Headroom(n))
}

// stay waits in place for the step err asks for, when it is a short wait,
// and reports whether it did: the run then takes the step itself instead
// of handing the task back to asynq. asynq runs a task handed back with a
// delay once its forwarder moves it back to the queue, every
// DelayedTaskCheckInterval (5 s), so a pending order checked "now", a
// throttled request told to come back in a second, or a request this
// worker's own rate held back a moment would otherwise wait up to 5 s
// more each time. Waits for a configuration problem never stay; others
// (a failure's backoff too) stay for at most maxStay, only while the task
// has at least half of its time left after the wait (TaskTimeout: six
// steps and their waits fit), never on a run's last step (it would then
// hand its task back all the same), and only as many at
// once as the worker runs orders beyond its call slots (Headroom: those
// would otherwise wait for a slot), so orders of other providers never
// wait behind them. A stopping server ends every wait in place at once
// (false: the wait goes back to asynq). slot is released first: no call
// slot is held while waiting.
func (h *Handler) stay(ctx context.Context, err error, slot *callSlot) bool {
	var re *retryError
	if h.stays == nil || !errors.As(err, &re) || re.heldFor != "" || re.delay > maxStay {
		return false
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl)-re.delay < TaskTimeout/2 {
		return false
	}
	select {
	case <-h.stopStays:
		return false
	default:
	}
	select {
	case h.stays <- struct{}{}:
	default:
		return false
	}
	defer func() { <-h.stays }()
	slot.release()
	t := time.NewTimer(max(re.delay, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return ctx.Err() == nil
	case <-ctx.Done():
	case <-h.stopStays:
	}
	return false
}

// maxStay is the longest wait a run takes in place (see stay): asynq's
// forwarder interval, within which a task handed back may wait again as
// long.
const maxStay = 5 * time.Second

// StopWaiting ends every wait in place (see stay) and keeps runs from
// starting one, for good (a server started again on h hands every wait
// back to asynq): their tasks go back to asynq with their whole waits.
// The Server calls it when it stops taking tasks, so that a shutdown is
// not held up by runs waiting for their next step.
func (h *Handler) StopWaiting() {
	h.stopOnce.Do(func() { close(h.stopStays) })
}

// callSlot is a step's hold on one of the handler's call slots, and on
// what the provider's guard let through for it.
type callSlot struct {
	ch   chan struct{}
	held bool
	// admitted: the guard let a call through (a half-open breaker's
	// trial place, say) that has not been reported: release reports it
	// as no call made, so the place is not held until it times out.
	admitted bool
	guard    Guard
	provider string
}

// errNoCall reports to a guard that a step it let through made no call
// (the order was busy, finished, or waits): no news of the provider.
var errNoCall = fmt.Errorf("no provider call made: %w", context.Canceled)

// called marks the admission as reported by the call itself.
func (s *callSlot) called() { s.admitted = false }

// take waits for a slot, or for ctx to end.
func (s *callSlot) take(ctx context.Context) error {
	if s.ch == nil || s.held {
		return nil
	}
	select {
	case s.ch <- struct{}{}:
		s.held = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release gives the slot back, if held, and reports an admission that
// made no call.
func (s *callSlot) release() {
	if s.admitted {
		s.admitted = false
		s.guard.Done(s.provider, errNoCall)
	}
	if s.held {
		s.held = false
		<-s.ch
	}
}

// NewHandler returns a Handler that drives orders in l through the
// providers in set.
func NewHandler(l *ledger.Ledger, set *providers.Set, opts *HandlerOptions) *Handler {
	o := HandlerOptions{}
	if opts != nil {
		o = *opts
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.Deadline <= 0 {
		o.Deadline = 24 * time.Hour
	}
	if o.PendingWindow <= 0 {
		o.PendingWindow = 30 * time.Minute
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.ConfigWait <= 0 {
		o.ConfigWait = 30 * time.Second
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	switch {
	case o.ListingLag == 0:
		o.ListingLag = DefaultListingLag
	case o.ListingLag < 0:
		o.ListingLag = 0
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Problems == nil {
		o.Problems = NewProblems()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sealer != nil && !l.RivalsKeyed() {
		// Workers sharing the data key must name rivals sets alike: a
		// ledger built without the secret hashes them unkeyed.
		o.Logger.Warn("tasks: the handler seals params but its ledger names rivals sets by an unkeyed hash: build the ledger with ledger.Options{RivalSecret: sealer.RivalSecret()}, as the worker does")
	}
	h := &Handler{ledger: l, providers: set, opts: o, log: o.Logger, metrics: o.Metrics, problems: o.Problems, stopStays: make(chan struct{})}
	h.hold = h.clockHold()
	h.metrics.deadlines(set.Names(), h.deadline)
	return h
}

// deadline is how long after enqueue (or a re-drive) provider's orders may
// still be submitted.
func (h *Handler) deadline(provider string) time.Duration {
	if pd, ok := h.opts.Deadlines[provider]; ok && pd > 0 {
		return pd
	}
	return h.opts.Deadline
}

// policy is the state machine's view of the configuration for provider.
func (h *Handler) policy(provider string, prov providers.Provider) order.Policy {
	d := h.deadline(provider)
	_, prepares := prov.(providers.Preparer)
	un, _ := prov.(providers.UnlistedNotAbsent)
	_, matches := prov.(providers.Matcher)
	return order.Policy{
		MaxAttempts: h.opts.MaxAttempts, Backoff: h.opts.Backoff, Deadline: d,
		PendingWindow: h.opts.PendingWindow, PollInterval: h.opts.PollInterval,
		ConfigWait: h.opts.ConfigWait, NeedsKnown: prepares, ListingLag: ListingLagFor(h.opts.ListingLag, h.providers, provider),
		HoldUnlisted: un != nil && un.UnlistedNotAbsent(), Matches: matches,
	}
}

// ListingLagFor is how long after a create of provider's order ended a
// lookup's not-found is not believed: lag (the workers'
// ORDERWORKER_LISTING_LAG, the listing's delay; zero or less: none) plus
// the time the provider may go on making an order after its create
// request ended (providers.Spec.CreateOverrun), so that a not-found is
// believed only once an order made that late would be listed. The
// overrun is added whatever the lag: a listing that shows every order at
// once still cannot show one the server has yet to make.
func ListingLagFor(lag time.Duration, set *providers.Set, provider string) time.Duration {
	lag = max(lag, 0)
	if set == nil {
		return lag
	}
	return lag + set.CreateOverrun(provider)
}

// DefaultListingLag is how long after a create a lookup's not-found is not
// believed, by default. No provider documents how soon its listings show
// a new order; two minutes covers a listing served by another service
// than the create (UniCloud's) and costs an order whose ambiguous create
// really created nothing two minutes before it is sent again.
const DefaultListingLag = 2 * time.Minute

// stop ends the task for good; the ledger already says why.
func stop(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), asynq.SkipRetry)
}

// redisWait is how long to wait when Redis is unreachable: the worker
// waits for it rather than failing orders.
const redisWait = 5 * time.Second

// maxSteps bounds the steps one run takes (prepare, submit; lookup,
// submit; poll, pay); a run that needs more comes back.
const maxSteps = 6

// ProcessTask implements asynq.Handler.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	growStack()
	err := h.handBackHeld(ctx, h.processTask(ctx, t))
	if errors.Is(err, asynq.SkipRetry) {
		queue, _ := asynq.GetQueueName(ctx)
		h.metrics.taskStopped(queue)
	}
	return err
}

func (h *Handler) processTask(ctx context.Context, t *asynq.Task) error {
	p, err := DecodePayload(t.Payload())
	if err != nil {
		h.log.Warn("dropping malformed task", "reason", reasonOf(err))
		return stop("%s", reasonOf(err))
	}
	ref := ledger.Ref{Provider: p.Provider, OrderNo: p.OrderNo}
	prov, err := h.providers.Get(p.Provider)
	if err != nil {
		if providers.CodeOf(err) == providers.FailedPrecondition {
			// Disabled here (no credentials): a configuration problem,
			// never the order's. It waits for a worker that can send it,
			// its record saying why, unless its deadline passed with
			// nothing sent: that needs no provider.
			done, missing, err2 := h.endUnsent(ctx, ref, p.Provider, msgOf(err))
			if done || err2 != nil {
				return err2
			}
			if missing {
				// A task a producer wrote itself (or one whose record
				// Redis lost) is recorded on first sight, as a worker
				// that can send it would: its params judged (a bad one
				// stops the task with the reason), its deadline counting.
				tk := &taskRun{}
				tk.claimed, tk.at, tk.claim = claimedMark(t)
				if err := h.adoptMissing(ctx, t, p, ref, nil, tk); err != nil {
					return err
				}
			}
			_ = h.ledger.NoteWaiting(ctx, ref, "waiting for a worker that can send it: "+msgOf(err))
			return h.configWait(ref, ProblemProviderDisabled, msgOf(err))
		}
		h.log.Warn("dropping task for an unknown provider", "provider", p.Provider)
		return stop("%s", msgOf(err))
	}
	if _, err := h.opts.Sealer.Open(p.Params); err != nil {
		// The task's params are sealed with a key this worker does not
		// have: so, surely, are the record's. Nothing is touched.
		return h.configWait(ref, ProblemDataKey, err.Error())
	}
	pol := h.policy(p.Provider, prov)
	base := uuid.NewString()
	want := order.None // the step a Continue asked for
	slot := callSlot{ch: h.calls, guard: h.opts.Guard, provider: p.Provider}
	defer slot.release()
	var seen *ledger.Record // the record as this run's last step began it
	// The claim this task was queued for ("" for one a producer wrote
	// itself): a run of a task that is not the record's own claim's marks
	// its creates on it (see markRan), and asks first whether an earlier
	// run of it may have created the order under a record since lost (see
	// priorCreate).
	tk := &taskRun{}
	tk.claimed, tk.at, tk.claim = claimedMark(t)
	for i := 0; i < maxSteps; i++ {
		slot.release() // a previous step's, if its call did not return it
		if held, kind, reason := h.problems.Probe(p.Provider, h.opts.ConfigWait, ProblemCredentials, ProblemClock); held {
			// The provider refuses this worker's every call: one order
			// a ConfigWait probes, the others wait without a call. One
			// past its deadline with nothing sent is errored now, as
			// the deadline says; it needs no provider.
			if i == 0 {
				if done, _, err := h.endUnsent(ctx, ref, p.Provider, "its provider refuses this worker's "+strings.TrimSuffix(kind, "_rejected")); done || err != nil {
					return err
				}
			}
			// Held by the problem as reported, not reported again: a
			// probe that went through may have cleared it since Probe
			// answered, and a report now would set it again, holding
			// every order another ConfigWait (a black-box run: after a
			// key was put right, orders trickled out for minutes).
			h.metrics.configWait(ref.Provider, kind)
			return &retryError{delay: h.opts.ConfigWait, err: fmt.Errorf("order %s waits: %s: %s", ref, kind, reason), heldFor: kind, provider: ref.Provider}
		}
		if err := slot.take(ctx); err != nil {
			// Nothing was written: the order goes back as it was.
			return wait(time.Second, fmt.Errorf("order %s: waiting for a call slot: %w", ref, err))
		}
		// The breaker is asked once the slot is ours, right before the
		// step: a wait for a slot is never a call the breaker let through
		// earlier.
		if err := h.admit(ctx, ref); err != nil {
			if i == 0 && errors.Is(err, errBreakerHolds) {
				// Held before its first step: one past its deadline with
				// nothing sent is errored now, as the deadline says; it
				// needs no provider.
				if done, _, err2 := h.endUnsent(ctx, ref, p.Provider, "its provider's circuit breaker is open"); done || err2 != nil {
					return err2
				}
				// Its record says why it waits (a queued order's reason;
				// one whose last step left a reason keeps it).
				_ = h.ledger.NoteWaiting(ctx, ref, "waiting: its provider's circuit breaker is open (its calls have been failing); tried again once it lets calls through")
			}
			return err
		}
		slot.admitted = h.opts.Guard != nil
		token := base + ":" + strconv.Itoa(i)
		began := time.Now()
		b, err := h.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: token, LeaseTTL: h.opts.LeaseTTL, NeedsKnown: pol.NeedsKnown,
			Pay: want == order.Pay, PayAgainAfter: max(pol.ListingLag, time.Millisecond), ListingLag: pol.ListingLag, Target: targetHash(prov),
			LookFirst: pol.LookFirstWindow(), LostCallTail: h.lostCallTail(), ClockHold: h.hold})
		answered := time.Now()
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			if err := h.adoptMissing(ctx, t, p, ref, seen, tk); err != nil {
				return err
			}
			continue
		case errors.Is(err, ledger.ErrNotDurable) && b.Status == ledger.Finished:
			// Final on the master only: a failover could take the
			// outcome back, and the order would need this task again.
			return wait(redisWait, fmt.Errorf("order %s: its outcome: %w", ref, err))
		case errors.Is(err, ledger.ErrNotDurable):
			// The mark is on the master only: a failover could lose it,
			// so no request may leave on it.
			if b.Record != nil {
				h.settleQuiet(ref, token, ledger.Unmark(b.Record))
			} else {
				h.release(ref, token)
			}
			return wait(redisWait, fmt.Errorf("order %s: %w", ref, err))
		case errors.As(err, new(*ledger.TooFewReplicasError)):
			// Nothing was sent: the order waits, unchanged, for a
			// master with its replicas. The problem is reported until
			// two minutes after it was last met (on Redis Cluster it
			// is one master's, and a write to another does not clear
			// it).
			return h.configWait(ref, ProblemReplicas, msgOf(err))
		case err != nil:
			return wait(redisWait, err)
		}
		switch b.Status {
		case ledger.Finished:
			if i == 0 {
				h.metrics.dedupe(p.Provider, "terminal")
			}
			return nil
		case ledger.Busy:
			d := min(max(time.Until(b.LeaseUntil), 100*time.Millisecond), 5*time.Second)
			err := wait(d, fmt.Errorf("order %s is being processed by another run", ref))
			if i < maxSteps-1 && h.stay(ctx, err, &slot) {
				want = order.None
				continue
			}
			return err
		}
		rec := b.Record
		seen = rec
		h.releaseNotOurs(ctx, rec)
		if h.differs(p, rec) {
			h.settleQuiet(ref, token, ledger.Unmark(rec))
			h.metrics.dedupe(p.Provider, "conflict")
			h.log.Warn("task conflicts with the recorded order; not processed", "provider", p.Provider, "order_no", p.OrderNo)
			return stop("order %s: task params differ from the recorded order", ref)
		}
		then, err := h.step(ctx, prov, pol, rec, token, want, &slot, began, h.clockOf(rec, answered), tk)
		if err == nil && then.Next == order.Continue {
			want = then.Step
			continue
		}
		if i < maxSteps-1 && h.stay(ctx, err, &slot) {
			want = order.None
			continue
		}
		return err
	}
	return wait(100*time.Millisecond, fmt.Errorf("order %s: more steps to take", ref))
}

// step plans, calls and settles one step of rec, whose lease token holds;
// want is the step the previous one asked for (None: plan it). It returns
// Continue with the next step when that is due at once, else the task's
// result as err. The call gives slot back as soon as it returns. began is
// when the step's Begin was sent.
//
// clk is the clock rec is judged on (see judgeClock).
//
// tk is the running task. When it is not the one queued with the
// record's claim (a producer wrote it, its own claim was undone and it
// took on the order of another, or its record was lost and another claim
// recorded the order again), it is asked, before a create of a record no
// create of which may ever have been received, whether an earlier run of
// it may have created the order (priorCreate): then the order is looked up
// instead. Otherwise the create is marked on the task before it leaves
// (markRan), as nothing else would tell a later run that finds the record
// lost that the order may exist, or from when: so is a create of a task
// queued with the record's claim but no time.
func (h *Handler) step(ctx context.Context, prov providers.Provider, pol order.Policy, rec *ledger.Record, token string, want order.Step, slot *callSlot, began time.Time, clk judgeClock, tk *taskRun) (order.Then, error) {
	foreign := tk.claim == "" || tk.claim != rec.Claim
	ref := rec.Ref()
	clear, parsed, err := h.params(prov, rec)
	if err != nil {
		if errors.Is(err, errConfig) {
			// Nothing is sent: the order goes back to where it was.
			h.settleQuiet(ref, token, ledger.Unmark(rec))
			return order.Then{}, h.configWait(ref, ProblemDataKey, err.Error())
		}
		// Recorded params this worker's version rejects: nothing is sent.
		// An order about to be created is errored; one that may exist is
		// left for a person, never errored.
		d := order.ParamsRejected(rec, pol, clk.now(), msgOf(err))
		h.log.Error("order params rejected", "provider", ref.Provider, "order_no", ref.OrderNo, "state", string(d.Settle.To()), "reason", d.Then.Reason)
		return h.finish(ctx, rec, token, d)
	}
	plan := order.PlanStep(rec, pol, clk.now())
	if want == order.Pay && plan.Step == order.Poll && rec.PayMarked {
		// The poll that just ran found the order payable, and this
		// step's Begin marked the pay sent: pay it. Without the mark (a
		// pay was sent before) it is only checked.
		plan.Step = order.Pay
	}
	if plan.Step == order.None {
		d := order.Decision{Settle: plan.Settle, Then: plan.Then}
		return h.finish(ctx, rec, token, d)
	}
	here := targetHash(prov)
	if (plan.Step == order.Lookup || plan.Step == order.Poll || plan.Step == order.Pay) &&
		(!h.sameTarget(rec.CreateTarget, here) || plan.Step == order.Lookup && rec.Known != nil && !h.sameTarget(rec.KnownTarget, here)) {
		// Its create went to another endpoint or account: this worker's
		// provider would not know the order, and its not-found would have
		// it created a second time. Nothing is sent; it waits, unchanged.
		h.settleQuiet(ref, token, ledger.Unmark(rec))
		other := rec.CreateTarget
		if h.sameTarget(other, here) {
			other = rec.KnownTarget // the snapshot the lookup compares with
		}
		return order.Then{}, h.configWait(ref, ProblemTarget, fmt.Sprintf(
			"its create went, or its snapshot was read, at another endpoint or account (target %s; this worker's %s): run it on a worker configured as that one, list %s in ORDERWORKER_SAME_TARGETS if this worker's provider is that one (a rotated key), or resolve it by hand",
			other, here, other))
	}
	if plan.Step == order.Submit && rec.Known != nil && !h.sameTarget(rec.KnownTarget, here) {
		// The snapshot its lookups will compare the listing with was read
		// at another endpoint or account: this one's older orders would
		// look new. Nothing is sent; it waits, unchanged.
		h.settleQuiet(ref, token, ledger.Unmark(rec))
		return order.Then{}, h.configWait(ref, ProblemTarget, fmt.Sprintf(
			"the snapshot of its target's orders was read at another endpoint or account (target %s; this worker's %s): run it on a worker configured as the one that read it, list %s in ORDERWORKER_SAME_TARGETS if this worker's provider is that one, or resolve it by hand",
			rec.KnownTarget, here, rec.KnownTarget))
	}
	idScope, _ := h.providers.IDScope(ref.Provider, parsed)
	o := providers.Order{
		OrderNo: rec.OrderNo, Params: clear, Parsed: parsed, FirstAttempt: rec.FirstAttemptAt, Now: clk.now(),
		ShownFrom:       order.ShownFrom(rec, pol),
		LastCreate:      order.LastCreate(rec),
		Throttled:       order.BelievedForThrottle(rec, pol),
		ListingLag:      pol.ListingLag,
		ProviderOrderID: rec.ProviderOrderID, Known: rec.Known, Matched: rec.Matched,
		Owned: func(ctx context.Context, id string) (bool, error) {
			if slices.Contains(rec.NotOurs, id) {
				return true, nil // an operator found it another's
			}
			// By the id in its scope, where the provider's ids are
			// unique only within one (another device's order with the
			// same id is not this one's rival).
			owner, err := h.ledger.OwnerIn(ctx, ref.Provider, idScope, id)
			if err == nil && owner == "" && idScope != "" {
				// An entry written by id alone (by a version before
				// ids were kept by scope) is moved under its order's
				// scope, then looked at again; one whose order's
				// scope cannot be told counts here too.
				if owner, err = MoveLegacyOwner(ctx, h.ledger, h.providers, h.opts.Sealer, ref.Provider, id); err == nil && owner == "" {
					owner, err = h.ledger.OwnerIn(ctx, ref.Provider, idScope, id)
				}
			}
			return owner != "" && owner != ref.OrderNo, err
		},
	}
	matchKey := ""
	if m, ok := prov.(providers.Matcher); ok {
		matchKey = m.MatchKey(parsed)
	}
	if matchKey != "" {
		// Orders made before the snapshot's read began are in it (a
		// listing lag later: the bound allows for it).
		o.KnownAt = rec.KnownFrom
		if o.KnownAt.IsZero() || rec.KnownAt.Before(o.KnownAt) {
			o.KnownAt = rec.KnownAt
		}
		o.Rivals = func(ctx context.Context, since time.Time) (int, error) {
			if !since.IsZero() && pol.ListingLag > 0 {
				// A rival's order made up to a listing lag before since
				// may be missing from what since bounds (a snapshot
				// read then): it still counts.
				since = since.Add(-pol.ListingLag)
			}
			return h.ledger.Rivals(ctx, ref, matchKey, since)
		}
	}
	if sc, ok := prov.(providers.ListingScoper); ok {
		scope := listingScope(prov, sc, parsed)
		o.Listed = func(ctx context.Context, from time.Time) ([]providers.ListedOrder, error) {
			// A listing lag ago or more: the provider may not list a
			// newer one yet.
			// Orders whose creates were answered (what Listed
			// returns) were made before the answer: the listing's
			// delay alone, without the create overrun.
			noted, err := h.ledger.Listed(ctx, ref.Provider, scope, from, clk.now().Add(-h.opts.ListingLag))
			out := make([]providers.ListedOrder, len(noted))
			for i, n := range noted {
				out[i] = providers.ListedOrder{ID: n.ID, Name: h.openListedName(n.Name)}
			}
			return out, err
		}
	}
	if plan.Step == order.Submit && foreign && !rec.MayHaveExisted {
		ran, since, known, err := tk.priorCreate(ctx, h, rec)
		if err != nil {
			// Not sent: the order goes back as it was.
			h.settleQuiet(ref, token, ledger.Unmark(rec))
			return order.Then{}, wait(redisWait, fmt.Errorf("order %s: %w", ref, err))
		}
		if ran {
			reason := "an earlier run of this order's task may have created it under a record since lost; looking the order up before any submission"
			h.log.Error("order task ran before its record was recorded again (Redis lost data?); looking the order up first",
				"provider", ref.Provider, "order_no", ref.OrderNo)
			return h.finish(ctx, rec, token, order.Decision{Settle: ledger.SetUnknownSince(reason, since, known),
				Then: order.Then{Next: order.Continue, Step: order.Lookup, Reason: reason}})
		}
	}
	if plan.Step == order.Submit && (foreign || tk.claimed && tk.at.IsZero()) {
		if err := h.markRan(ctx, clk.now(), rec.Claim); err != nil {
			// Not marked, not sent: the order goes back as it was.
			h.settleQuiet(ref, token, ledger.Unmark(rec))
			return order.Then{}, wait(redisWait, fmt.Errorf("order %s: %w", ref, err))
		}
		// The mark read before is stale now: a later step of this run
		// (after a wait in place, its record lost and recorded again
		// under another claim) reads it again, this create on it.
		tk.read = false
	}
	if matchKey != "" && (plan.Step == order.Submit ||
		plan.Step == order.Lookup && rec.RivalKey != h.ledger.RivalKey(ref.Provider, matchKey)) {
		// Before the create leaves: from now on, a lookup of another
		// order with the same match key counts this one as a rival and
		// does not take its order (see ledger.MarkRival). So before the
		// lookup of an order that may exist and was never marked (its
		// record lost and recorded again, or marked by no earlier
		// version): its order may be listed as well.
		if err := h.ledger.MarkRival(ctx, ref, token, matchKey); err != nil {
			h.settleQuiet(ref, token, ledger.Unmark(rec))
			if errors.As(err, new(*ledger.TooFewReplicasError)) {
				return order.Then{}, h.configWait(ref, ProblemReplicas, msgOf(err))
			}
			return order.Then{}, wait(redisWait, fmt.Errorf("order %s: %w", ref, err))
		}
	}
	if held := ledger.HeldSince(began, time.Now()); (plan.Step == order.Submit || plan.Step == order.Pay) && held > h.opts.LeaseTTL/3 {
		// The process stalled (a long pause, a frozen or suspended VM)
		// between Begin and here: the lease may have run out, and
		// another run may be deciding about this order (and, a listing
		// lag after this step's pay mark, paying it). A create or a pay
		// never leaves on a lease this old; nothing was sent, so the
		// mark goes (the step ends as if Begin had not marked it).
		h.settleQuiet(ref, token, ledger.Unmark(rec))
		what := "create"
		if plan.Step == order.Pay {
			what = "pay"
		}
		return order.Then{}, wait(100*time.Millisecond, fmt.Errorf("order %s: %s passed between taking the lease and sending the %s; not sent", ref, held.Round(time.Millisecond), what))
	}
	out := h.call(ctx, prov, rec, plan.Step, o, token, began, slot, clk)
	d := order.Decide(rec, plan.Step, out, pol, clk.now())
	if d.Settle.SetsKnown() {
		d.Settle = d.Settle.WithKnownTarget(here)
	}
	if d.Then.Next == order.ConfigWait {
		// The step held and the refusal: its problem's kind (heldBy).
		d.Then.Step, d.Then.Cause = plan.Step, out.Err
	}
	clearProblems(h.problems, ref.Provider, plan.Step, out.Err)
	return h.finish(ctx, rec, token, d)
}

// judgeClock is the clock an order step judges its record on: Redis's
// clock as Begin read it (Record.ReadAt), advanced by this process's
// monotonic clock since Begin answered. The ledger stamps the times a
// decision weighs (when a create or a pay left, leases) on Redis's clock,
// so a worker whose own clock runs ahead would otherwise take the listing
// lag after a pay as passed at once and poll in a loop, and one behind
// would hold a window open too long. Reading Redis's time when Begin
// answered (not when it was sent) errs early: the lag is never cut short.
type judgeClock struct {
	read     time.Time // Redis's clock at Begin; zero: not known
	answered time.Time // this process's clock when Begin answered
	own      func() time.Time
}

// clockOf is the clock to judge rec, read by a Begin that answered at
// answered, on.
func (h *Handler) clockOf(rec *ledger.Record, answered time.Time) judgeClock {
	return judgeClock{read: rec.ReadAt, answered: answered, own: h.opts.Now}
}

func (c judgeClock) now() time.Time {
	if c.read.IsZero() {
		return c.own()
	}
	return c.read.Add(time.Since(c.answered))
}

// answered reports whether a read that failed with err had an answer from
// the provider that tells nothing of its health: Ambiguous (it answered,
// but not singling the order out), or Unavailable at a 2xx without an
// error code of the provider's (an answer the client could not use: a
// malformed or unending listing). A transport failure, a timeout, a 4xx
// or 5xx, or an error code at a 2xx (InternalError, 500 in the body) tell
// of a provider that is failing.
func answered(err error) bool {
	if providers.CodeOf(err) == providers.Ambiguous {
		return true
	}
	var pe *providers.Error
	return errors.As(err, &pe) && pe.Code == providers.Unavailable && pe.ProviderCode == "" &&
		pe.HTTPStatus >= 200 && pe.HTTPStatus < 300
}

// lostCallTail is how long after a loss of Redis's data was found a create
// or a pay lost with it may still have been under way: its run began it
// before the loss, may have held it up to a lease's time before sending
// (the held-for check, the first keepalive), and the call itself lasts up
// to providers.MaxCallTimeout.
func (h *Handler) lostCallTail() time.Duration {
	return h.opts.LeaseTTL + providers.MaxCallTimeout
}

// clockHold is how long a step forward of Redis's clock a Begin finds is
// held past its size (ledger.BeginArgs.ClockHold): while a create or a
// pay stamped before it may still be judged against a listing lag, the
// longest of the providers', after the call ended as late as a run that
// died with it open could have left it (lostCallTail).
func (h *Handler) clockHold() time.Duration {
	lag := ListingLagFor(h.opts.ListingLag, h.providers, "")
	if h.providers != nil {
		for _, name := range h.providers.Names() {
			lag = max(lag, ListingLagFor(h.opts.ListingLag, h.providers, name))
		}
	}
	return lag + h.lostCallTail()
}

// listedAmbiguous reports whether a read that failed with err was
// answered at a 2xx, in full, with orders it cannot single this one out
// from: Ambiguous with the answer's HTTP status, nothing unread
// (providers.ErrNoNews) behind it. An Ambiguous read without a status
// made no call, or could not finish one (a page cap): no news.
func listedAmbiguous(err error) bool {
	var pe *providers.Error
	return errors.As(err, &pe) && pe.Code == providers.Ambiguous && pe.HTTPStatus >= 200 && pe.HTTPStatus < 300 &&
		!errors.Is(err, providers.ErrNoNews)
}

// heldBy is the kind of configuration problem a ConfigWait reports: a
// refusal for the clock or the account (its cause) is ProblemClock or
// ProblemAccount at any step, one of the signature or key
// (providers.ErrSignature) ProblemCredentials; any other refusal at the
// prepare step is ProblemPrepare, any other ProblemCredentials.
func heldBy(t order.Then) string {
	switch {
	case errors.Is(t.Cause, providers.ErrClock):
		return ProblemClock
	case errors.Is(t.Cause, providers.ErrAccount):
		return ProblemAccount
	case errors.Is(t.Cause, providers.ErrSignature):
		// Refused at the prepare step too: a black-box run with a wrong
		// AppSecret was told "prepare refused".
		return ProblemCredentials
	case t.Step == order.Prepare:
		return ProblemPrepare
	}
	return ProblemCredentials
}

// clearProblems clears what a call that succeeded shows fixed: any call
// the credentials and the clock, only a prepare step what prepares (other
// calls may succeed while every prepare is refused). A refused account is
// never cleared so: a provider may refuse one call of the account's (its
// creates, a quota of one API) while others succeed, and clearing it on
// them would make the problem, and its alert, flicker while orders wait.
// It ends when no order has been held for it for problemTTL.
func clearProblems(p *Problems, provider string, step order.Step, err error) {
	if err != nil {
		return
	}
	if step == order.Prepare {
		p.Clear(provider, ProblemCredentials, ProblemClock, ProblemPrepare)
		return
	}
	p.Clear(provider, ProblemCredentials, ProblemClock)
}

// finish settles a decision and turns what follows into the task's result.
func (h *Handler) finish(ctx context.Context, rec *ledger.Record, token string, d order.Decision) (order.Then, error) {
	ref := rec.Ref()
	// Ledger writes after a provider call must happen even when the
	// task's ctx was cancelled (shutdown) mid-call.
	wc, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	scope := h.idScope(rec)
	d.Settle = d.Settle.WithIDScope(scope)
	var err error
	if id := d.Settle.ProviderOrderID(); id != "" && scope != "" && id != rec.ProviderOrderID {
		// An owner entry written by id alone (by a version before ids
		// were kept by scope) is not seen by the settle, which owns the
		// id in its scope: moved under its order's scope first, so that
		// the settle judges it (an answered create outweighing a match
		// included), or the id would be this order's and that one's both
		// (a black-box run of an upgraded ledger). One whose order's
		// scope cannot be told refuses the id here.
		err = h.retrying(wc, ref, func() error {
			owner, err := MoveLegacyOwner(wc, h.ledger, h.providers, h.opts.Sealer, ref.Provider, id)
			if err == nil && owner != "" && owner != ref.OrderNo {
				return &ledger.OwnedError{ProviderOrderID: id, Owner: owner}
			}
			return err
		})
	}
	if err == nil {
		err = h.settle(wc, ref, token, d.Settle)
	}
	var owned *ledger.OwnedError
	switch {
	case errors.Is(err, ledger.ErrNotDurable) && (d.Then.Next == order.Done || d.Then.Next == order.Stop || d.Then.Next == order.Rest):
		// The outcome is on the master only: a failover now could take
		// it back, leaving the step's in-flight mark (so the order is
		// looked up). The task does not end on it: it comes back, and its
		// next run finds the outcome kept (and ends) or taken back (and
		// looks the order up), at once instead of when the reconciler
		// finds an unfinished order without a task. Counted and logged
		// here all the same: the next run that finds it kept counts
		// nothing (it may run on another worker), and only a failover
		// that takes it back, after which the order is done again, counts
		// it twice.
		h.log.Warn("order outcome recorded on the Redis master only (its replicas did not acknowledge it in time); the task comes back to confirm it",
			"provider", ref.Provider, "order_no", ref.OrderNo, "state", string(d.Settle.To()))
		h.observe(rec, d)
		return order.Then{}, wait(redisWait, fmt.Errorf("order %s: outcome %s not yet acknowledged by the replicas", ref, d.Settle.To()))
	case err == nil, errors.Is(err, ledger.ErrNotDurable):
		// (Not durable, the order goes on: the next step's Begin is a
		// durable write too, and sends nothing on a mark the replicas
		// did not acknowledge.)
	case errors.As(err, &owned):
		// The provider answered with another order's id: never adopt it.
		reason := fmt.Sprintf("%sits order %s belongs to order %s; looking again", order.OwnedAnswer, owned.ProviderOrderID, owned.Owner)
		h.log.Error("provider answered with another order's id", "provider", ref.Provider, "order_no", ref.OrderNo, "owner", owned.Owner)
		// The call is recorded, and so is that an order may exist: a
		// provider that answered may have acted, so no operator may
		// re-drive the order before a lookup.
		t := ledger.SetUnknown(reason).WithMayExist(true)
		if a := d.Settle.Attempt(); a != nil {
			t = t.WithAttempt(a)
		}
		f := max(d.Settle.Failures(), rec.Failures)
		if a := d.Settle.Attempt(); a != nil && a.Call == "submit" {
			// A create answered so counts against the failure budget: a
			// provider that answers a create of these params with the
			// order it made for another (one that dedupes by params), or
			// that numbers orders in a scope it does not say, would
			// otherwise have the order looked up (its own order passed
			// over as another's), created and answered so again until
			// its deadline (a black-box run: 87 creates of 14 orders).
			// Once the budget is spent, a lookup that finds nothing but
			// the other order's leaves it for a person (order.HeldOwned).
			f++
			t = t.WithOwnedAnswer()
		}
		if f >= 0 {
			t = t.WithFailures(f)
		}
		if err := h.settle(wc, ref, token, t.WithIDScope(scope)); err != nil {
			return order.Then{}, wait(redisWait, err)
		}
		return order.Then{}, wait(h.opts.Backoff.Delay(rec.Attempts), errors.New(reason))
	case errors.Is(err, ledger.ErrLeaseLost):
		// (Not an abandoned create the plan enters in the history: this
		// run sent nothing.)
		if a := d.Settle.Attempt(); a != nil && (a.Call == "submit" || a.Call == "pay") && a.Result != order.AbandonedResult {
			// A create or a pay lost its lease while under way. Its
			// keepalive extends the lease, and cancels the call the
			// moment it cannot, so this takes a stall of the whole
			// process (a frozen VM, a paused container) past the lease,
			// or a failover that lost the lease: another run took the
			// order meanwhile, and what it found at the provider may not
			// have included this request, which may have left (or
			// arrived) after that run created or paid the order. No check
			// before the socket can close that gap: it is made known.
			h.metrics.lateCall(ref.Provider, a.Call)
			h.log.Error("a "+map[string]string{"submit": "create", "pay": "pay"}[a.Call]+" lost the order's lease while under way (the process stalled mid-call, a failover lost the lease, or Redis lost the order's record and it was recorded again) and another run has the order: the request may have reached the provider after that run created or paid it; check the provider for this order twice",
				"provider", ref.Provider, "order_no", ref.OrderNo, "call", a.Call, "took_ms", a.DurationMS)
		} else {
			h.log.Warn("order lease lost mid-step (a stall, a failover, or a record Redis lost and recorded again); another run has the order", "provider", ref.Provider, "order_no", ref.OrderNo)
		}
		return order.Then{}, wait(time.Second, fmt.Errorf("order %s: %w", ref, err))
	case errors.Is(err, ledger.ErrNotFound):
		// The record vanished while the step ran (a failover lost it):
		// record it again as unknown, so it is looked up, never resent.
		h.log.Error("order record vanished mid-step; recording it as unknown", "provider", ref.Provider, "order_no", ref.OrderNo)
		// What this run knew bounds the lookup: the first create's time
		// (Begin set it when it marked one) and the snapshot.
		lost := ledger.Lost{FirstAttempt: rec.FirstAttemptAt, Known: rec.Known, CreateTarget: rec.CreateTarget, KnownTarget: rec.KnownTarget}
		if p, err := h.providers.Get(ref.Provider); err == nil && rec.InflightMarked {
			// This step's Begin marked the create, with this worker's
			// target: the record as read holds the one before.
			lost.CreateTarget = targetHash(p)
		}
		if err := h.mayRecord(wc); err != nil {
			return order.Then{}, wait(redisWait, fmt.Errorf("order %s: record lost mid-step, not recorded again: %w", ref, err))
		}
		if _, err := h.ledger.ClaimLost(wc, ref, rec.Params, rec.ParamsHash, "record lost mid-step; looking the order up", lost); err != nil && !errors.Is(err, ledger.ErrNotDurable) {
			return order.Then{}, wait(redisWait, err)
		}
		return order.Then{}, wait(time.Second, fmt.Errorf("order %s: record lost mid-step", ref))
	default:
		// The mark in flight stays, so the next run looks the order up.
		if a := d.Settle.Attempt(); a != nil {
			// What the provider answered is lost with it: the next run
			// knows only that the call may have gone through (a create is
			// looked up; a pay, paid again only a listing lag later if
			// the order then shows unpaid, though the provider may have
			// accepted it).
			h.log.Error("the provider's answer could not be recorded (Redis failed, tried again for up to 10 s); the next run takes the call as one whose answer was lost",
				"provider", ref.Provider, "order_no", ref.OrderNo, "call", a.Call, "result", a.Result, "error", err)
		}
		return order.Then{}, wait(redisWait, err)
	}
	h.observe(rec, d)
	return h.then(ref, d.Then)
}

// settle records t, trying again while Redis fails (a timeout, a reset
// connection, a failover under way) until ctx ends: a step's settle
// carries what the provider answered, which a later run cannot learn
// again (a pay it accepted, a create's id), and repeating it is safe (a
// settle already applied, its reply lost, answers ok again, even after
// another run took the order and settled it since). The ledger's
// own answers (the lease lost, the record gone, an id owned, writes not
// acknowledged) end it at once, as does a failure that says nothing was
// run (an error in the script).
func (h *Handler) settle(ctx context.Context, ref ledger.Ref, token string, t ledger.Transition) error {
	return h.retrying(ctx, ref, func() error { return h.ledger.Settle(ctx, ref, token, t) })
}

// retrying runs write until it passes, or fails otherwise than as
// retryableRedisError tells (the ledger's own answers, see settle), or ctx
// ends.
func (h *Handler) retrying(ctx context.Context, ref ledger.Ref, write func() error) error {
	delay := 50 * time.Millisecond
	for {
		err := write()
		var owned *ledger.OwnedError
		if err == nil || errors.Is(err, ledger.ErrNotDurable) || errors.Is(err, ledger.ErrLeaseLost) ||
			errors.Is(err, ledger.ErrNotFound) || errors.As(err, &owned) || !retryableRedisError(err) {
			return err
		}
		h.log.Warn("recording an order's step failed; trying again", "provider", ref.Provider, "order_no", ref.OrderNo, "error", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// retryableRedisError reports whether err, from a Redis command, may pass
// if the command is sent again: a network failure or timeout, or a server
// that is loading, read-only (a failover under way) or busy; not an error
// a script raised, which would be raised again.
func retryableRedisError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, redis.ErrClosed) {
		return false
	}
	var re redis.Error
	if errors.As(err, &re) {
		msg := err.Error()
		for _, p := range []string{"LOADING", "READONLY", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "NOREPLICAS", "MOVED", "ASK"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	return true
}

// observe logs and counts what a settled decision changed.
func (h *Handler) observe(rec *ledger.Record, d order.Decision) {
	// On Redis's clock, which the record's creation is on: read only for
	// an outcome's latency, and briefly (a cached reading mostly; a Redis
	// that does not answer costs at most 500 ms, then this clock).
	now := time.Now()
	if to := d.Settle.To(); to == StatePaid || to == StateErrored || to == StatePending && rec.State != StatePending {
		c, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		if t, err := h.ledger.NotAfterNow(c, rec.Ref()); err == nil {
			now = t
		}
		cancel()
	}
	to := d.Settle.To()
	calls := rec.Attempts
	if d.Settle.Attempt() != nil {
		calls++
	}
	ctx := context.Background()
	who := [2]slog.Attr{slog.String("provider", rec.Provider), slog.String("order_no", rec.OrderNo)}
	switch {
	case to == StatePaid:
		h.metrics.outcome(rec, StatePaid, calls, now)
		h.log.LogAttrs(ctx, slog.LevelInfo, "order paid", who[0], who[1], slog.Int("attempts", calls))
	case to == StateErrored:
		h.metrics.outcome(rec, StateErrored, calls, now)
		h.log.LogAttrs(ctx, slog.LevelWarn, "order errored", who[0], who[1], slog.Int("attempts", calls), slog.String("reason", d.Then.Reason))
	case to == StatePending && rec.State != StatePending:
		h.metrics.outcome(rec, StatePending, calls, now)
		h.log.LogAttrs(ctx, slog.LevelInfo, "order pending", who[0], who[1], slog.Duration("next_check", d.Then.Delay))
	case to == StateUnknown && d.Then.Next == order.Rest:
		// Looked up again by the reconciler, and left as it was: its
		// first stop warned.
		h.log.LogAttrs(ctx, slog.LevelInfo, "order outcome still unknown; left for an operator", who[0], who[1],
			slog.String("reason", d.Then.Reason))
	case to == StateUnknown && d.Then.Next == order.Stop:
		// Its task ends here: only the reconciler's later looks (see
		// ReconcilerOptions.HeldRecheck) look it up again, until an
		// operator resolves it.
		h.log.LogAttrs(ctx, slog.LevelWarn, "order outcome unknown; left for an operator", who[0], who[1],
			slog.Int("attempts", calls), slog.String("reason", d.Then.Reason))
	case to == StateUnknown && strings.HasPrefix(d.Settle.Reason(), order.AmbiguousLookup) && d.Settle.Reason() != rec.Reason:
		// Once per answer: the same one again is not logged again.
		h.log.LogAttrs(ctx, slog.LevelWarn, "order lookup cannot single the order out among the provider's orders; it stays unknown, looked up again until its deadline (a person may have to decide)", who[0], who[1],
			slog.String("reason", d.Settle.Reason()))
	case to == StateUnknown && rec.State != StateUnknown:
		h.log.LogAttrs(ctx, slog.LevelWarn, "order outcome unknown; will look it up before any resubmission", who[0], who[1],
			slog.Int("attempt", rec.Attempts+1), slog.String("error", d.Then.Reason))
	}
	if n := d.Then.Next; (n == order.Wait || n == order.Retry) && d.Then.Code != providers.OK {
		h.metrics.retry(rec.Provider, d.Then.Code)
		call := ""
		if a := d.Settle.Attempt(); a != nil {
			call = a.Call
		}
		if looked := call == "lookup" || call == "poll"; !looked || d.Then.Code != providers.NotFound && d.Then.Code != providers.Ambiguous {
			// (A lookup or check that did not find the order yet, or
			// cannot single it out, was answered: no failure, and the
			// latter is logged once per answer above; a black-box run
			// and a review.)
			h.failing.note(h.log, rec.Provider, call, d.Then.Code, d.Then.Reason, time.Now())
		}
	}
	if d.ListedLate > 0 {
		h.metrics.orderListedLate(rec.Provider)
		attrs := []slog.Attr{who[0], who[1], slog.Duration("unlisted_after", d.ListedLate.Round(time.Millisecond)), slog.Duration("listing_lag", d.ListingLag)}
		if first := rec.FirstAttemptAt; !first.IsZero() && first.Before(rec.LastCreateAt) && rec.UnseenAt.After(first) {
			// Created more than once: the order found may be the first
			// create's, listed that much later than it (and the later
			// create may have made a second).
			attrs = append(attrs, slog.Duration("unlisted_after_first_create", rec.UnseenAt.Sub(first).Round(time.Millisecond)))
		}
		h.log.LogAttrs(ctx, slog.LevelWarn, "order listed late: an earlier lookup did not find it this long after its last create, half the listing lag or more; raise ORDERWORKER_LISTING_LAG well above how late the provider lists orders, or a not-found past it will have an order created twice", attrs...)
	}
	if d.CreatedAgain > 0 {
		// Each is an order made twice if the provider lists orders later
		// than the lag: the one count of that, for providers whose
		// listing is matched (no later lookup finds the first by its
		// number), and the orders to compare with the provider's.
		h.metrics.orderCreatedAgain(rec.Provider)
		h.log.LogAttrs(ctx, slog.LevelWarn, "order to be created again: a lookup did not find it this long after a create of it that may have been received; were the provider to list that create's order later than this, the order is about to be made twice (check the provider for it)", who[0], who[1],
			slog.Duration("unlisted_after", d.CreatedAgain.Round(time.Millisecond)), slog.Duration("listing_lag", d.ListingLag))
	}
}

// then turns what follows a step into the task's result.
func (h *Handler) then(ref ledger.Ref, t order.Then) (order.Then, error) {
	switch t.Next {
	case order.Done, order.Continue, order.Rest:
		return t, nil
	case order.Stop:
		return t, stop("order %s: %s", ref, t.Reason)
	case order.Retry:
		return t, failed(t.Delay, fmt.Errorf("order %s: %s", ref, t.Reason))
	case order.ConfigWait:
		err := h.configWait(ref, heldBy(t), t.Reason)
		var re *retryError
		if errors.As(err, &re) {
			// This order's own call was refused for the configuration:
			// it comes back a little after the others held without a
			// call, so that the next probe (Problems.Probe, one call a
			// ConfigWait) is another held order's. Back at the ConfigWait
			// itself, it came back as the next probe window opened and
			// took it each time: a few orders refused for their own
			// params in words that named the credentials kept probing,
			// while the orders that would have gone through waited (a
			// black-box run: 27 made no progress for 15 minutes).
			re.delay += probeLag(re.delay)
		}
		return t, err
	}
	return t, wait(t.Delay, fmt.Errorf("order %s: %s", ref, t.Reason))
}

// probeLag is how much later than the ConfigWait d an order whose own call
// was refused for the configuration comes back: a tenth to a half of d.
func probeLag(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/10 + rand.N(d*4/10+1)
}

// configWait holds an order back for a configuration problem: loud, counted
// and reported by /readyz, and never a change to the order.
func (h *Handler) configWait(ref ledger.Ref, kind, reason string) error {
	if h.problems.Report(ref.Provider, kind, reason) {
		if kind == ProblemReplicas {
			// Redis's state, not this worker's settings: a replica down
			// or resyncing, or a failover under way (a connection still
			// on the old master). Counted and reported the same.
			h.log.Warn("the Redis master has fewer replicas than durable writes require (a replica down or resyncing, or a failover under way); orders wait, unchanged, until it has them",
				"provider", ref.Provider, "problem", kind, "reason", reason)
		} else {
			h.log.Error("configuration problem holds orders back; they wait, unchanged, for a correctly configured worker",
				"provider", ref.Provider, "problem", kind, "reason", reason, "order_no", ref.OrderNo)
		}
	}
	h.metrics.configWait(ref.Provider, kind)
	return &retryError{delay: h.opts.ConfigWait, err: fmt.Errorf("order %s waits: %s: %s", ref, kind, reason), heldFor: kind, provider: ref.Provider}
}

// handBackHeld turns err, an order held for this worker's own
// configuration (handsBack) while another worker taking the same queue's
// orders says its calls of the provider go through
// (ledger.WentElsewhere), into a hand-back: the order goes back to the
// queue at once, for that worker, after this one waited handBack
// (holding one of its slots: a worker that hands every order back would
// otherwise take and return them as fast as Redis answers).
func (h *Handler) handBackHeld(ctx context.Context, err error) error {
	var re *retryError
	if !errors.As(err, &re) || !handsBack(re.heldFor) {
		return err
	}
	queue, _ := asynq.GetQueueName(ctx)
	if !h.ledger.WentElsewhere(ctx, re.provider, queue) {
		return err
	}
	select {
	case <-ctx.Done():
	case <-time.After(handBack + rand.N(handBack/2)):
	}
	return wait(100*time.Millisecond, fmt.Errorf("%w; handed back to the queue: another worker's calls of %s go through", re.err, re.provider))
}

// handBack is about how long a worker keeps an order held for its own
// configuration before it hands it back (handBackHeld).
const handBack = time.Second

// handsBack reports whether a configuration problem of kind is this
// worker's own (its credentials, its clock, none at all), which another
// worker, configured right, does not have: its orders are handed back
// rather than held while another's calls go through. Not the account's, a
// prepare refused (the account's or the project's), sealed params, nor
// Redis's replicas: every worker meets those alike.
func handsBack(kind string) bool {
	return kind == ProblemCredentials || kind == ProblemClock || kind == ProblemProviderDisabled
}

// endUnsent ends, as a worker that can send it would, an order held here
// because its provider is disabled on this worker, when the state machine
// errors it without a call: queued, or submitting with no create in
// flight, past its deadline (or its failure budget spent). It takes the
// lease without marking a create, so nothing can be sent on it, and
// reports whether the task is done (the order errored, or already
// final). Anything else (an order that may exist, a lookup or a poll
// due, a lease held elsewhere, Redis failing) is left to wait unchanged.
// held is why this worker cannot send it, for the errored order's reason.
// missing reports that the order has no record (read without an error).
func (h *Handler) endUnsent(ctx context.Context, ref ledger.Ref, provider, held string) (done, missing bool, err error) {
	pol := h.policy(provider, nil)
	stops := func(rec *ledger.Record) (order.Plan, bool) {
		plan := order.PlanStep(rec, pol, h.clockOf(rec, time.Now()).now())
		return plan, plan.Step == order.None && plan.Then.Next == order.Stop && plan.Settle.To() == ledger.StateErrored
	}
	// A read first: a held order is met every ConfigWait, and most are
	// not due.
	// A final one is asked again through Begin below, which says whether
	// the replicas hold its outcome (a failover could take back one they
	// do not, and the order would need this task again).
	if rec, err := h.ledger.Get(ctx, ref); err != nil || rec == nil {
		return false, err == nil && rec == nil, nil
	} else if _, ok := stops(rec); !ok && !rec.State.Terminal() {
		return false, false, nil
	}
	token := uuid.NewString()
	// LookFirst: an order Redis may have lost a create of (a loss of its
	// data) is looked up before anything errors it (PlanStep).
	// ListingLag: an order a not-found let go, seen sooner than this
	// worker's lag after its last create, is looked up again rather than
	// errored as never created (Record.AbsentRecheck; left unchanged here).
	b, err := h.ledger.Begin(ctx, ref, ledger.BeginArgs{Token: token, LeaseTTL: h.opts.LeaseTTL, NoCreate: true, LookFirst: pol.LookFirstWindow(), LostCallTail: h.lostCallTail(), ClockHold: h.hold, ListingLag: pol.ListingLag})
	switch {
	case b.Status == ledger.Finished && err != nil:
		// Final on the master only: the task waits for the replicas,
		// no configuration problem.
		return false, false, wait(redisWait, fmt.Errorf("order %s: its outcome: %w", ref, err))
	case b.Status == ledger.Finished:
		return true, false, nil // nothing left to send
	case err == nil && b.Status == ledger.Began:
	case b.Record != nil: // taken on the master only (ErrNotDurable)
		h.release(ref, token)
		return false, false, nil
	default:
		return false, false, nil
	}
	plan, ok := stops(b.Record)
	if !ok {
		h.release(ref, token)
		return false, false, nil
	}
	// Settled, the task stops; not settled (Redis failing, the lease
	// lost), it comes back.
	reason := plan.Then.Reason + " (the worker that ended it cannot send it: " + held + ")"
	_, err = h.finish(ctx, b.Record, token, order.Decision{Settle: ledger.SetErrored(reason), Then: order.Then{Next: order.Stop, Reason: reason}})
	return true, false, err
}

// release ends a step that made no call.
func (h *Handler) release(ref ledger.Ref, token string) { h.settleQuiet(ref, token, ledger.Release()) }

// settleQuiet applies t, best effort: a failure leaves the lease to expire
// and, where a create was marked, the mark to be looked up.
func (h *Handler) settleQuiet(ref ledger.Ref, token string, t ledger.Transition) {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.ledger.Settle(c, ref, token, t)
}

// asynqRetried reports whether this task ran before.
func asynqRetried(ctx context.Context) bool {
	n, ok := asynq.GetRetryCount(ctx)
	return ok && n > 0
}

// differs reports whether a task's params are not the recorded order's (a
// producer that wrote a task for a number already in use).
func (h *Handler) differs(p Payload, rec *ledger.Record) bool {
	if string(p.Params) == string(rec.Params) {
		return false
	}
	clear, err := h.opts.Sealer.Open(p.Params)
	if err != nil {
		return false // cannot tell; the recorded params are what is submitted
	}
	parsed, err := h.providers.Parse(p.Provider, clear)
	if err != nil {
		return true
	}
	hash, err := h.opts.Sealer.hashAsRecorded(rec, clear, parsed)
	return err == nil && hash != rec.ParamsHash
}

// taskRun is what a run knows of its task, for a record not of the task's
// own claim.
type taskRun struct {
	claimed bool      // queued with a claim (by the Enqueuer, or the reconciler)
	claim   string    // that claim's token (ranToken for a task that stands for creates of a lost record)
	at      time.Time // the claim's time: no create of the task left before it
	// lostRan: this run found the record missing and judged that the task
	// ran before (a create may exist), lost bounding its lookup.
	lostRan bool
	lost    ledger.Lost
	// ran, ranAt, ranClaim: the task's own mark (Handler.taskRanBefore),
	// once read.
	read     bool
	ran      bool
	ranAt    time.Time
	ranClaim string
}

// ranBefore reads the task's mark once, until this run writes it (right
// before a create, see markRan): only this run could write it since.
func (tk *taskRun) ranBefore(ctx context.Context, h *Handler) (bool, time.Time, error) {
	if !tk.read {
		ran, at, claim, err := h.taskRanBefore(ctx)
		if err != nil {
			return false, time.Time{}, err
		}
		tk.read, tk.ran, tk.ranAt, tk.ranClaim = true, ran, at, claim
	}
	return tk.ran, tk.ranAt, nil
}

// priorCreate reports whether an earlier run of the task may have sent a
// create of the order that rec, a record not of the task's own claim,
// does not know of, the earliest time that create may have left (zero:
// not known), and a snapshot from before it (nil: none). It may have when
// this run found the record missing after such a run (lostRan); when the
// task was queued with a claim that is not rec's and was not undone (the
// record of that claim existed, and its creates are not marked on the
// task: it was lost, and another claim recorded the order again, a
// producer sending it anew; or the reconciler carried it over from a task
// it replaced, see ranToken); or when the task's own mark says a first
// create left under another record than rec (markRan).
func (tk *taskRun) priorCreate(ctx context.Context, h *Handler, rec *ledger.Record) (bool, time.Time, []string, error) {
	if tk.lostRan {
		return true, tk.lost.FirstAttempt, tk.lost.Known, nil
	}
	ran, since := false, time.Time{}
	if tk.claim != "" && tk.claim != rec.Claim {
		undone, err := h.ledger.Unclaimed(ctx, rec.Ref(), tk.claim)
		if err != nil {
			return false, time.Time{}, nil, err
		}
		if !undone {
			ran, since = true, tk.at
		}
	}
	marked, at, err := tk.ranBefore(ctx, h)
	if err != nil {
		return false, time.Time{}, nil, err
	}
	if ran && since.IsZero() && marked && tk.ranClaim == tk.claim {
		// Queued with its claim but no time: its creates under that
		// claim's record are marked (see step), and the record let none
		// leave before a lookup or a person found the order absent, so
		// the first mark's time bounds every create that may exist.
		since = at
	}
	// A mark under rec itself is one of its own creates, which rec knows
	// (one refused before the provider acted, say); a mark without a
	// claim may be under any record.
	if marked && tk.ranClaim != "" && tk.ranClaim == rec.Claim {
		marked = false
	}
	if marked {
		if ran {
			since = earlierBound(since, at)
		} else {
			ran, since = true, at
		}
	}
	return ran, since, nil, nil
}

// taskRanBefore reports whether a run of the running task was about to
// send a create, and when the first was (ledger.TaskRanBefore); false
// outside asynq (no task id).
func (h *Handler) taskRanBefore(ctx context.Context) (bool, time.Time, string, error) {
	id, ok := asynq.GetTaskID(ctx)
	if !ok {
		return false, time.Time{}, "", nil
	}
	queue, _ := asynq.GetQueueName(ctx)
	return h.ledger.TaskRanBefore(ctx, queue, id)
}

// markRan marks the running task as about to send a create
// (ledger.MarkTaskRan), for a task a producer wrote itself: nothing else
// tells a later run that finds the order's record lost that the order may
// exist (a task the Enqueuer or the reconciler queued carries its claim).
// Outside asynq (no task id) there is nothing to mark.
func (h *Handler) markRan(ctx context.Context, at time.Time, claim string) error {
	id, ok := asynq.GetTaskID(ctx)
	if !ok {
		return nil
	}
	queue, _ := asynq.GetQueueName(ctx)
	return h.ledger.MarkTaskRan(ctx, queue, id, at, claim)
}

// mayRecord asks Options.BeforeRecord, if set, whether an order whose
// record is missing may be recorded now.
func (h *Handler) mayRecord(ctx context.Context) error {
	if h.opts.BeforeRecord == nil {
		return nil
	}
	return h.opts.BeforeRecord(ctx)
}

// adoptMissing records the order of a task that runs without a record
// (see adopt): a producer's own task on its first run, or a record lost to
// a Redis failover or restart, which is recorded as unknown when a run of
// the task may have created the order. seen is the record as this run's
// last step began it (nil before the first).
func (h *Handler) adoptMissing(ctx context.Context, t *asynq.Task, p Payload, ref ledger.Ref, seen *ledger.Record, tk *taskRun) error {
	// Missing after a step of this run that may have created
	// the order, or found that an earlier one may have, the
	// record was lost: it counts as ran before, and is recorded
	// again with what this run knew (the first create's time,
	// the snapshot) to look the order up by.
	// So is a task queued for a claimed order whose claim was
	// not undone: its record existed, and may have recorded
	// creates (runs that ended in waits leave asynq's retry
	// count as it was).
	var lost ledger.Lost
	ranBefore := asynqRetried(ctx)
	if seen != nil && (seen.InflightMarked || seen.MayHaveBeenCreated() || seen.MayHaveExisted ||
		seen.State == ledger.StateUnknown || seen.State == ledger.StatePending) {
		ranBefore = true
		lost = ledger.Lost{FirstAttempt: seen.FirstAttemptAt, Known: seen.Known, CreateTarget: seen.CreateTarget, KnownTarget: seen.KnownTarget}
	}
	if claimed, at, token := claimedMark(t); claimed {
		if !ranBefore {
			undone, err := h.ledger.Unclaimed(ctx, ref, token)
			if err != nil {
				return wait(redisWait, fmt.Errorf("order %s: %w", ref, err))
			}
			ranBefore = !undone
		}
		// Looked up from the claim on (no create left before
		// it), or from the first create this run saw, whichever
		// is earlier.
		if !at.IsZero() && (lost.FirstAttempt.IsZero() || at.Before(lost.FirstAttempt)) {
			lost.FirstAttempt = at
		}
	}
	if !ranBefore || lost.FirstAttempt.IsZero() {
		// A task not queued with the record's claim (see
		// markRan): whether a run of it was about to send a
		// create is marked on the task, with the time of the
		// first, which bounds the lookup (also when asynq's
		// retry count already says it ran).
		ran, at, err := tk.ranBefore(ctx, h)
		if err != nil {
			return wait(redisWait, fmt.Errorf("order %s: %w", ref, err))
		}
		ranBefore = ranBefore || ran
		if ran && !at.IsZero() && (lost.FirstAttempt.IsZero() || at.Before(lost.FirstAttempt)) {
			lost.FirstAttempt = at
		}
	}
	if ranBefore {
		// Should another claim record the order first (its
		// producer sent it again), what this run knew still
		// holds: see priorCreate.
		tk.lostRan, tk.lost = true, lost
	}
	return h.adopt(ctx, p, ranBefore, lost)
}

// adopt records an order whose task runs without a record: a producer that
// writes asynq tasks itself (a first run), or a record lost to a Redis
// failover or restart (a task that ran before): that one is recorded as
// unknown, so it is looked up before anything is submitted.
func (h *Handler) adopt(ctx context.Context, p Payload, ranBefore bool, lost ledger.Lost) error {
	if !ranBefore {
		// As the Enqueuer refuses it: no record is keyed by a phone
		// number. (One that ran before is recorded whatever its number:
		// the order may exist.)
		if err := checkOrderNoPersonal(p.OrderNo); err != nil {
			h.log.Warn("dropping task whose order number is a phone number", "provider", p.Provider, "order_no", providers.HidePhones(p.OrderNo))
			return stop("%s", reasonOf(err))
		}
	}
	clear, parsed, err := openAndValidate(p, h.providers, h.opts.Sealer)
	if pe := (personalError{}); ranBefore && errors.As(err, &pe) {
		// Accepted before the rule (an older version): the order may
		// exist, and is recorded again as it was, to be looked up.
		err = nil
	}
	if err != nil {
		ref := ledger.Ref{Provider: p.Provider, OrderNo: p.OrderNo}
		if errors.Is(err, ErrSealed) || errors.Is(err, errConfig) {
			return h.configWait(ref, ProblemDataKey, err.Error())
		}
		if ranBefore {
			// The order may exist, and this worker rejects its params
			// (a stricter version than the one that sent it): it is
			// recorded anyway, as unknown, for a person to see; its
			// steps stop at the params, never submitting.
			reason := "record lost, and this worker rejects the task's params (" + reasonOf(err) + "); the order may exist: left for a person"
			stored := p.Params
			if h.opts.Sealer != nil && !IsSealed(stored) {
				sealed, serr := h.opts.Sealer.Seal(p.Params)
				if serr != nil {
					return wait(redisWait, serr)
				}
				stored = sealed
			}
			if err := h.mayRecord(ctx); err != nil {
				return wait(redisWait, fmt.Errorf("order %s: not recorded: %w", ref, err))
			}
			if _, cerr := h.ledger.ClaimLost(ctx, ref, stored, "", reason, lost); cerr != nil && !errors.Is(cerr, ledger.ErrNotDurable) {
				return wait(redisWait, cerr)
			}
			h.log.Error("order record missing for a task that ran before, and its params are rejected; recorded as unknown for a person",
				"provider", p.Provider, "order_no", p.OrderNo)
		}
		return stop("%s", reasonOf(err))
	}
	if h.opts.Sealer == nil && !ranBefore {
		// As the Enqueuer refuses it: a phone number is not recorded in
		// clear. (A record lost to Redis is recreated whatever it holds:
		// its order was accepted before, and may exist.)
		if field := phoneField(clear); field != "" {
			h.log.Warn("dropping task whose params hold what looks like a phone number, without a data key to seal it", "provider", p.Provider, "order_no", p.OrderNo, "field", field)
			return stop("%s holds what looks like a phone number, which is personal data: set ORDERWORKER_DATA_KEY so params are stored encrypted", field)
		}
	}
	if h.opts.Sealer != nil && !ranBefore && !IsSealed(p.Params) {
		field := sensitiveField(h.providers, p.Provider, clear)
		if field != "" {
			field = "params." + field
		} else {
			field = phoneField(clear)
		}
		if field != "" {
			// The record is sealed; the producer's task, which this worker
			// cannot rewrite (asynq writes it back as read at each retry),
			// keeps what it was given until the order is done.
			h.log.Warn("task written by its producer holds personal data in clear in Redis, in asynq's task, until the order is done (the order's record is sealed): send such orders through the Go Enqueuer, enqueue or the HTTP API, which seal them before anything reaches Redis",
				"provider", p.Provider, "order_no", p.OrderNo, "field", field)
		}
	}
	hash, err := h.opts.Sealer.hash(clear, parsed)
	if err != nil {
		return stop("params: %v", err)
	}
	stored := clear
	if h.opts.Sealer != nil {
		if stored, err = h.opts.Sealer.Seal(clear); err != nil {
			return wait(redisWait, err)
		}
	}
	ref := ledger.Ref{Provider: p.Provider, OrderNo: p.OrderNo}
	if err := h.mayRecord(ctx); err != nil {
		return wait(redisWait, fmt.Errorf("order %s: not recorded: %w", ref, err))
	}
	var claim ledger.ClaimResult
	if ranBefore {
		claim, err = h.ledger.ClaimLost(ctx, ref, stored, hash, "record lost; looking the order up before any submission", lost)
	} else {
		claim, err = h.ledger.Claim(ctx, ref, stored, hash)
	}
	if err != nil && !errors.Is(err, ledger.ErrNotDurable) {
		return wait(redisWait, err)
	}
	switch {
	case ranBefore && claim.Created && errors.Is(err, ledger.ErrNotDurable):
		// Not acknowledged: during a failover, a connection still on the
		// old master finds no record of an order the new master took
		// (no data lost); the order's next step is refused there too.
		h.log.Warn("order record missing on the Redis server this run reached for a task that ran before, and the replicas did not acknowledge it recorded again (a failover in progress, a connection still on the old master? or Redis lost data); recorded as unknown so it is looked up first",
			"provider", p.Provider, "order_no", p.OrderNo)
	case ranBefore && claim.Created:
		h.log.Error("order record missing for a task that ran before (Redis lost data? or, during a failover, the task was read on one server and the record looked for on another); recorded it as unknown so it is looked up first",
			"provider", p.Provider, "order_no", p.OrderNo)
	case ranBefore:
		// Another claim recorded the order meanwhile (its producer sent
		// it again): this run goes on from that record, and looks the
		// order up first should this task have created it (see
		// priorCreate).
		h.log.Warn("order record missing for a task that ran before (Redis lost data? or, during a failover, the task was read on one server and the record looked for on another); another claim has recorded the order since, which this task goes on from (looking the order up first)",
			"provider", p.Provider, "order_no", p.OrderNo)
	}
	if !claim.Created && claim.ParamsHash != hash {
		h.metrics.dedupe(p.Provider, "conflict")
		return stop("order %s: task params differ from the recorded order", ref)
	}
	return nil
}

// params returns the record's params in clear and parsed, from a cache
// keyed by order and params hash, so each order's params are opened and
// validated once per process.
func (h *Handler) params(prov providers.Provider, rec *ledger.Record) (json.RawMessage, providers.Params, error) {
	key := rec.Provider + "\x00" + rec.OrderNo + "\x00" + rec.ParamsHash
	if e, ok := h.parsed.get(key); ok {
		return e.clear, e.parsed, nil
	}
	clear, err := h.opts.Sealer.Open(rec.Params)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s", errConfig, err.Error())
	}
	parsed, err := h.providers.Parse(rec.Provider, clear)
	if err != nil {
		return nil, nil, err
	}
	h.parsed.put(key, parsedEntry{clear, parsed})
	return clear, parsed, nil
}

// idScope is the scope rec's provider order ids are unique within
// (providers.IDScoper), read from its params; the record's own when they
// cannot be read here.
func (h *Handler) idScope(rec *ledger.Record) string {
	if _, scoped := h.providers.IDScope(rec.Provider, nil); !scoped {
		return rec.IDScope
	}
	prov, err := h.providers.Get(rec.Provider)
	if err != nil {
		return rec.IDScope
	}
	if _, parsed, err := h.params(prov, rec); err == nil && parsed != nil {
		scope, _ := h.providers.IDScope(rec.Provider, parsed)
		return scope
	}
	return rec.IDScope
}

// errConfig marks an error caused by this worker's configuration.
var errConfig = errors.New("configuration")

type parsedEntry struct {
	clear  json.RawMessage
	parsed providers.Params
}

// parsedCache is a small bounded map: cleared when full, which only costs
// a re-parse.
type parsedCache struct {
	mu sync.Mutex
	m  map[string]parsedEntry
}

const parsedCacheSize = 8192

func (c *parsedCache) get(k string) (parsedEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	return e, ok
}

func (c *parsedCache) put(k string, e parsedEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= parsedCacheSize {
		c.m = make(map[string]parsedEntry, 256)
	}
	c.m[k] = e
}

// errText is an error as recorded in the ledger and asynq: short, phone
// numbers masked (providers already strip credentials).
func errText(err error) string {
	return providers.Truncate(providers.MaskPhones(err.Error()), 300)
}

// call makes one provider call for step under the order's lease, reports
// it to the guard and the metrics, and returns its outcome with the
// history entry, timed on clk (Redis's clock, as the record's other times
// are). It gives slot back as soon as the provider answers.
func (h *Handler) call(ctx context.Context, prov providers.Provider, rec *ledger.Record, step order.Step, o providers.Order, token string, began time.Time, slot *callSlot, clk judgeClock) order.Outcome {
	// The lease runs from its Begin (sent at began), not from here.
	cctx, stopKeepalive := h.ledger.KeepAliveFrom(ctx, rec.Ref(), token, h.opts.LeaseTTL, began)
	// Also on a provider client's panic (asynq recovers it): a keepalive
	// left running would hold the order's lease until the process ends.
	defer stopKeepalive()
	start, startAt := time.Now(), clk.now()
	var out order.Outcome
	switch step {
	case order.Submit:
		out.Result, out.Err = prov.Submit(cctx, o)
	case order.Lookup, order.Poll:
		out.Result, out.Err = prov.Lookup(cctx, o)
	case order.Pay:
		if payer, ok := prov.(providers.Payer); ok {
			out.Result, out.Err = payer.Pay(cctx, o)
		} else {
			out.Err = providers.Errorf(providers.FailedPrecondition, "pay", "provider %s does not pay orders", prov.Name())
		}
	case order.Prepare:
		if prep, ok := prov.(providers.Preparer); ok {
			out.Known, out.Err = prep.Prepare(cctx, o)
		}
	}
	took := time.Since(start)
	switch {
	case out.Err == nil:
		h.problems.Went(rec.Provider, step, start)
	case order.CredentialsRefused(out.Err):
		out.OthersWent = h.problems.OthersWent(rec.Provider, step, rec.OrderNo, start)
	}
	slot.called() // reported below, with the call's outcome
	stopKeepalive()
	if h.opts.Guard != nil {
		report := out.Err
		switch read := step != order.Submit && step != order.Pay; {
		case read && listedAmbiguous(out.Err):
			// The provider answered a read at a 2xx, in full, with
			// orders this one cannot be told from (held twice, no
			// snapshot to tell ours by): it is up, as a success says. As
			// no news, a half-open breaker whose trials went to such
			// lookups (all of them, after Redis lost its data and every
			// order was looked up) never closed, and any failure among
			// them opened it again, holding new orders back for minutes.
			report = nil
		case read && answered(out.Err):
			// A read is Ambiguous only when the provider answered but the
			// answer cannot single the order out, and Unavailable at a
			// 2xx without an error code when it answered what the client
			// cannot read as complete (a malformed or unending listing):
			// no news of the provider's health, neither a failure (one
			// order's unreadable listing would open the breaker for every
			// order, and its half-open trials, going to that order's
			// lookups, would keep it open) nor a success. An acting call
			// (a create, a pay) is Ambiguous on a timeout or an unsure
			// answer too: it counts.
			report = providers.ErrNoNews
		}
		h.opts.Guard.Done(rec.Provider, report)
	}
	// The slot goes back once the guard knows the outcome: a step that
	// takes it next is admitted by a breaker that counted this call.
	slot.release()
	if out.Err == nil {
		// Said to workers held for their own configuration, which hand
		// this queue's orders of the provider back (handBackHeld).
		queue, _ := asynq.GetQueueName(ctx)
		h.ledger.MarkWent(context.WithoutCancel(ctx), rec.Provider, queue)
	}
	if sc, ok := prov.(providers.ListingScoper); ok && step == order.Submit && out.Err == nil && out.Result.ProviderOrderID != "" {
		h.noteListed(ctx, prov, sc, o, out.Result.ProviderOrderID, clk.now())
	}
	name := step.String()
	h.metrics.request(rec.Provider, name, out.Err, took)
	r := out.Result
	a := &ledger.Attempt{N: rec.Attempts + 1, At: startAt.UTC(), DurationMS: took.Milliseconds(), Call: name, Result: "ok",
		HTTPStatus: r.HTTPStatus, Code: r.Code, Message: providers.Truncate(r.Message, 200)}
	if out.Err != nil {
		out.Message = errText(out.Err)
		a.Result = providers.CodeOf(out.Err).String()
		a.Message = out.Message
		var pe *providers.Error
		if errors.As(out.Err, &pe) {
			a.HTTPStatus, a.Code = pe.HTTPStatus, pe.ProviderCode
		}
	}
	out.Attempt = a
	return out
}

// admit asks the guard whether the provider's next operation may start
// now: with guard.Guard, whether its circuit breaker lets it through. Rate
// limits are not asked here: they hold each HTTP request, in the
// transport the provider's client is built on, and one that cannot go in
// time comes back from the call as RateLimited. A non-nil error is the
// wait to return to asynq: nothing is sent and nothing is written.
func (h *Handler) admit(ctx context.Context, ref ledger.Ref) error {
	if h.opts.Guard == nil {
		return nil
	}
	d, err := h.opts.Guard.Wait(ctx, ref.Provider)
	if err != nil {
		return wait(redisWait, fmt.Errorf("order %s: provider guard: %w", ref, err))
	}
	if d > 0 {
		return wait(d, fmt.Errorf("order %s: %w; waiting %s", ref, errBreakerHolds, d.Round(time.Millisecond)))
	}
	return nil
}

// errBreakerHolds is admit's reason when the provider's circuit breaker
// holds the step back.
var errBreakerHolds = errors.New("its provider is held back by its circuit breaker")

// releaseNotOurs releases the owner entries rec's order still holds for
// provider order ids an operator found another's (Record.NotOurs): the
// release after that decision failed, and the order that made the id
// could not take it. Best effort: the next step tries again.
func (h *Handler) releaseNotOurs(ctx context.Context, rec *ledger.Record) {
	for _, id := range rec.NotOurs {
		if id == rec.ProviderOrderID {
			continue
		}
		if owner, err := h.ledger.OwnerIn(ctx, rec.Provider, rec.IDScope, id); err != nil || owner != rec.OrderNo {
			continue
		}
		if err := h.ledger.ReleaseNotOurs(ctx, rec.Ref(), rec.IDScope, id); err != nil && !errors.Is(err, ledger.ErrNotDurable) {
			// (Unacknowledged: released on the master; a failover that
			// took it back leaves it this order's, released again here.)
			h.log.Warn("could not release a provider order id an operator found another's (the order that made it cannot take it until then)",
				"provider", rec.Provider, "order_no", rec.OrderNo, "provider_order_id", id, "error", err)
		}
	}
}

// listingScope is the scope of an order's listing (ListingScoper) with
// the account it is read at (targetHash): orders created at another
// account are not in it.
func listingScope(prov providers.Provider, sc providers.ListingScoper, p providers.Params) string {
	return targetHash(prov) + "\x00" + sc.ListingScope(p)
}

// noteListed notes id, the order a create was answered with, as one its
// listing must show, with the name its create sent (providers.Namer;
// ledger.NoteListed): best effort, since a note lost only leaves a later
// lookup one check fewer.
func (h *Handler) noteListed(ctx context.Context, prov providers.Provider, sc providers.ListingScoper, o providers.Order, id string, at time.Time) {
	if o.Parsed == nil {
		return
	}
	wc, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	name := ""
	if n, ok := prov.(providers.Namer); ok {
		name = h.sealListedName(n.ListedName(o.Parsed))
	}
	if err := h.ledger.NoteListed(wc, prov.Name(), listingScope(prov, sc, o.Parsed), id, name, at); err != nil {
		h.log.Warn("could not note a created order for the checks of later lookups' listings (those lookups check one order fewer)", "provider", prov.Name(), "order_no", o.OrderNo, "error", err)
	}
}

// sealListedName is name as a note keeps it (ledger.NoteListed): sealed
// with the data key where this process has one, as params are; "" for
// none, or when it cannot be sealed (the note goes without it).
func (h *Handler) sealListedName(name string) string {
	if name == "" {
		return ""
	}
	v, _ := json.Marshal(name)
	if h.opts.Sealer == nil {
		return string(v)
	}
	sealed, err := h.opts.Sealer.Seal(v)
	if err != nil {
		return ""
	}
	return string(sealed)
}

// openListedName is a noted name (sealListedName) in clear; "" when it
// cannot be read (sealed with a data key this process lacks): no name.
func (h *Handler) openListedName(v string) string {
	if v == "" {
		return ""
	}
	clear, err := h.opts.Sealer.Open(json.RawMessage(v))
	if err != nil {
		return ""
	}
	var name string
	if json.Unmarshal(clear, &name) != nil {
		return ""
	}
	return name
}

// targetHash is the fingerprint of p's create target
// (providers.Targeter) a record keeps (Record.CreateTarget): a hash, so
// that no endpoint or key id is stored or shown; "" when p has none.
func targetHash(p providers.Provider) string {
	t := providers.TargetOf(p)
	if t == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("orderworker create target\x00" + t))
	return hex.EncodeToString(sum[:8])
}

// sameTarget reports whether recorded, a record's create (or snapshot)
// target, is this worker's (here) for its provider: the same fingerprint,
// one listed in HandlerOptions.SameTargets, or either unknown ("": recorded
// by an earlier version, or a provider that names none).
func (h *Handler) sameTarget(recorded, here string) bool {
	return recorded == "" || here == "" || recorded == here || slices.Contains(h.opts.SameTargets, recorded)
}
