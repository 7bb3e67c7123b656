package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
)

// HandlerOptions configure a Handler. nil means defaults.
type HandlerOptions struct {
	// MaxAttempts is each order's failure budget: after this many failed
	// submissions that created nothing, the order is errored. Throttling
	// and polling a pending order do not count. Default 8.
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
	// Guard, if set, is consulted before every provider call (rate limits,
	// circuit breakers).
	Guard Guard
	// Metrics records outcomes and calls; nil records nothing.
	Metrics *Metrics
	// Logger receives one line per state change. Default slog.Default().
	Logger *slog.Logger
	// Sealer opens sealed params (and seals those of orders it adopts);
	// nil means params are in clear.
	Sealer *Sealer
}

// Guard stands between the handler and a provider: Wait returns how long
// to wait before a call may be made (0: go ahead), Done reports its result.
type Guard interface {
	Wait(ctx context.Context, provider string) (time.Duration, error)
	Done(provider string, err error)
}

// Handler processes order:submit tasks. It is safe for concurrent use.
type Handler struct {
	ledger    *Ledger
	providers *providers.Set
	opts      HandlerOptions
	log       *slog.Logger
	metrics   *Metrics
	lockTTL   time.Duration
}

// NewHandler returns a Handler that drives orders in ledger through the
// providers in set.
func NewHandler(ledger *Ledger, set *providers.Set, opts *HandlerOptions) *Handler {
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
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Handler{ledger: ledger, providers: set, opts: o, log: o.Logger, metrics: o.Metrics, lockTTL: 30 * time.Second}
}

func (h *Handler) deadline(provider string) time.Duration {
	if d, ok := h.opts.Deadlines[provider]; ok && d > 0 {
		return d
	}
	return h.opts.Deadline
}

// wait asks asynq to come back after d without counting a failure.
func wait(d time.Duration, err error) error { return &retryError{delay: d, err: err} }

// failed asks asynq to come back after d, counting a failure.
func failed(d time.Duration, err error) error { return &retryError{delay: d, failure: true, err: err} }

// stop ends the task for good; the ledger already says why.
func stop(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), asynq.SkipRetry)
}

// redisWait is how long to wait when Redis is unreachable: the worker
// waits for it rather than failing orders.
const redisWait = 5 * time.Second

// ProcessTask implements asynq.Handler.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := DecodePayload(t.Payload())
	if err != nil {
		h.log.Warn("dropping malformed task", "reason", reasonOf(err))
		return stop("%s", reasonOf(err))
	}
	rec, err := h.ledger.Get(ctx, p.Provider, p.OrderNo)
	if err != nil {
		return wait(redisWait, err)
	}
	if rec == nil {
		if rec, err = h.adopt(ctx, p); err != nil {
			return err
		}
	} else if h.differs(p, rec) {
		h.metrics.dedupe(p.Provider, "conflict")
		h.log.Warn("task conflicts with the recorded order; not processed", "provider", p.Provider, "order_no", p.OrderNo)
		return stop("order %s/%s: task params differ from the recorded order", p.Provider, p.OrderNo)
	}
	if rec.State.Terminal() {
		h.metrics.dedupe(p.Provider, "terminal")
		return nil
	}
	release, ok, err := h.lock(ctx, p.Provider, p.OrderNo)
	if err != nil {
		return wait(redisWait, err)
	}
	if !ok {
		return wait(2*time.Second, fmt.Errorf("order %s/%s is being processed by another worker", p.Provider, p.OrderNo))
	}
	defer release()
	// Read again under the lock: another worker may have moved it on.
	if rec, err = h.ledger.Get(ctx, p.Provider, p.OrderNo); err != nil {
		return wait(redisWait, err)
	}
	if rec == nil || rec.State.Terminal() {
		return nil
	}
	return h.drive(ctx, rec)
}

// differs reports whether a task's params are not the recorded order's (a
// producer that wrote a task for a number already in use).
func (h *Handler) differs(p Payload, rec *Record) bool {
	if string(p.Params) == string(rec.Params) {
		return false
	}
	clear, err := h.opts.Sealer.Open(p.Params)
	if err != nil {
		return false // cannot tell; the recorded params are what is submitted
	}
	hash, err := h.opts.Sealer.hash(clear)
	return err == nil && hash != rec.ParamsHash
}

// adopt claims a record for a task enqueued without the Enqueuer (a
// producer that writes asynq tasks itself).
func (h *Handler) adopt(ctx context.Context, p Payload) (*Record, error) {
	clear, err := openAndValidate(p, h.providers, h.opts.Sealer)
	if err != nil {
		return nil, stop("%s", reasonOf(err))
	}
	hash, err := h.opts.Sealer.hash(clear)
	if err != nil {
		return nil, stop("params: malformed JSON")
	}
	if h.opts.Sealer != nil {
		if p.Params, err = h.opts.Sealer.Seal(clear); err != nil {
			return nil, wait(redisWait, err)
		}
	}
	claim, err := h.ledger.Claim(ctx, p, hash)
	if err != nil {
		return nil, wait(redisWait, err)
	}
	if !claim.Created && claim.ParamsHash != hash {
		h.metrics.dedupe(p.Provider, "conflict")
		return nil, stop("order %s/%s: task params differ from the recorded order", p.Provider, p.OrderNo)
	}
	_ = h.ledger.MarkEnqueued(ctx, p.Provider, p.OrderNo)
	rec, err := h.ledger.Get(ctx, p.Provider, p.OrderNo)
	if err != nil || rec == nil {
		return nil, wait(redisWait, fmt.Errorf("read adopted order: %v", err))
	}
	return rec, nil
}

var refreshScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// lock takes the order's lock and keeps it alive until released, so a
// second run of the same task (asynq may run a task twice) waits.
func (h *Handler) lock(ctx context.Context, provider, orderNo string) (func(), bool, error) {
	token := uuid.NewString()
	release, ok, err := h.ledger.Lock(ctx, provider, orderNo, token, h.lockTTL)
	if err != nil || !ok {
		return nil, ok, err
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(h.lockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c, cancel := context.WithTimeout(context.Background(), h.lockTTL/3)
				_ = refreshScript.Run(c, h.ledger.rdb, []string{lockKey(provider, orderNo)}, token, h.lockTTL.Milliseconds()).Err()
				cancel()
			}
		}
	}()
	return func() { close(done); release() }, true, nil
}

// drive moves a non-terminal order one step on.
func (h *Handler) drive(ctx context.Context, rec *Record) error {
	prov, err := h.providers.Get(rec.Provider)
	if err != nil {
		return h.finish(ctx, rec, nil, StateErrored, providers.Result{}, msgOf(err))
	}
	clear, err := h.opts.Sealer.Open(rec.Params)
	if err != nil {
		return h.finish(ctx, rec, nil, StateErrored, providers.Result{}, err.Error())
	}
	rec.Params = clear
	switch {
	case rec.State == StatePending:
		return h.poll(ctx, prov, rec)
	case rec.State == StateUnknown || (rec.State == StateSubmitting && rec.Inflight):
		return h.reconcile(ctx, prov, rec)
	default:
		if h.pastDeadline(rec) {
			return h.finish(ctx, rec, nil, StateErrored, providers.Result{},
				fmt.Sprintf("deadline of %s passed before the order could be submitted", h.deadline(rec.Provider)))
		}
		return h.submit(ctx, prov, rec)
	}
}

func (h *Handler) pastDeadline(rec *Record) bool {
	return time.Now().After(rec.CreatedAt.Add(h.deadline(rec.Provider)))
}

// order is the provider's view of a record. FirstAttempt is set by submit
// before the first call, so lookups always have it.
func order(rec *Record) providers.Order {
	return providers.Order{OrderNo: rec.OrderNo, Params: rec.Params, FirstAttempt: rec.FirstAttemptAt, ProviderOrderID: rec.ProviderOrderID}
}

// writeCtx is for ledger writes after a provider call: they must happen
// even when the task's ctx was cancelled (shutdown) mid-call.
func writeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// lookup asks the provider about the order (see call).
func (h *Handler) lookup(ctx context.Context, prov providers.Provider, rec *Record) (providers.Result, *Attempt, error) {
	return h.call(ctx, rec, "lookup", func(c context.Context) (providers.Result, error) { return prov.Lookup(c, order(rec)) })
}

// errText is an error as recorded in the ledger and asynq: short, phone
// numbers masked (providers already strip credentials).
func errText(err error) string {
	return providers.Truncate(providers.MaskPhones(err.Error()), 300)
}

// call makes one provider call, reports it to the guard and the metrics,
// counts it in rec.Attempts and returns the attempt to record.
func (h *Handler) call(ctx context.Context, rec *Record, name string, fn func(context.Context) (providers.Result, error)) (providers.Result, *Attempt, error) {
	start := time.Now()
	r, err := fn(ctx)
	took := time.Since(start)
	if h.opts.Guard != nil {
		report := err
		if name == "lookup" && providers.CodeOf(err) == providers.Ambiguous {
			// A lookup is Ambiguous only when the provider answered but
			// the answer cannot single the order out: the provider is up.
			report = nil
		}
		h.opts.Guard.Done(rec.Provider, report)
	}
	h.metrics.request(rec.Provider, name, err, took)
	a := &Attempt{N: rec.Attempts + 1, At: start.UTC(), DurationMS: took.Milliseconds(), Call: name, Result: "ok",
		HTTPStatus: r.HTTPStatus, Code: r.Code, Message: providers.Truncate(r.Message, 200)}
	rec.Attempts++
	if err != nil {
		a.Result = providers.CodeOf(err).String()
		a.Message = errText(err)
		var pe *providers.Error
		if errors.As(err, &pe) {
			a.HTTPStatus, a.Code = pe.HTTPStatus, pe.ProviderCode
		}
	}
	return r, a, err
}

// admit asks the guard whether a call may go out now. A non-nil error is
// the wait to return to asynq: nothing is sent and no budget is spent.
func (h *Handler) admit(ctx context.Context, rec *Record) error {
	if h.opts.Guard == nil {
		return nil
	}
	d, err := h.opts.Guard.Wait(ctx, rec.Provider)
	if err != nil {
		return wait(redisWait, fmt.Errorf("order %s/%s: provider guard: %w", rec.Provider, rec.OrderNo, err))
	}
	if d > 0 {
		return wait(d, fmt.Errorf("order %s/%s: provider %s is rate limited or its breaker is open; waiting %s", rec.Provider, rec.OrderNo, rec.Provider, d.Round(time.Millisecond)))
	}
	return nil
}

// submit sends the order. The record says submitting with the attempt in
// flight before the request leaves, so a crash mid-call is found later and
// reconciled, never resubmitted blindly.
func (h *Handler) submit(ctx context.Context, prov providers.Provider, rec *Record) error {
	if err := h.admit(ctx, rec); err != nil {
		return err
	}
	now := time.Now()
	set := map[string]string{"inflight": strconv.Itoa(rec.Attempts + 1), "attempts": strconv.Itoa(rec.Attempts + 1)}
	if rec.FirstAttemptAt.IsZero() {
		rec.FirstAttemptAt = now
		set["first_attempt"] = strconv.FormatInt(now.UnixMilli(), 10)
	}
	if err := h.ledger.Transition(ctx, rec.Provider, rec.OrderNo, Change{
		From: []State{StateQueued, StateSubmitting}, To: StateSubmitting, Set: set,
	}); err != nil {
		return wait(redisWait, err)
	}
	r, a, err := h.call(ctx, rec, "submit", func(c context.Context) (providers.Result, error) { return prov.Submit(c, order(rec)) })
	wc, cancel := writeCtx(ctx)
	defer cancel()
	if err == nil {
		return h.settle(wc, rec, a, StateSubmitting, r)
	}
	code := providers.CodeOf(err)
	msg := errText(err)
	switch {
	case providers.MaybeCreated(code):
		// The order may exist: the next attempt looks it up first.
		rec.Failures++
		if terr := h.ledger.Transition(wc, rec.Provider, rec.OrderNo, Change{
			From: []State{StateSubmitting}, To: StateUnknown, Attempt: a,
			Set: map[string]string{"inflight": "", "failures": strconv.Itoa(rec.Failures), "reason": msg},
		}); terr != nil {
			return wait(redisWait, terr)
		}
		h.metrics.retry(rec.Provider, code)
		h.log.Warn("order outcome unknown; will look it up before any resubmission", "provider", rec.Provider, "order_no", rec.OrderNo, "attempt", rec.Attempts, "error", msg)
		return failed(h.opts.Backoff.Delay(rec.Failures-1), fmt.Errorf("order %s/%s: %w", rec.Provider, rec.OrderNo, err))
	case code == providers.RateLimited:
		if terr := h.ledger.Transition(wc, rec.Provider, rec.OrderNo, Change{
			From: []State{StateSubmitting}, To: StateSubmitting, Attempt: a,
			Set: map[string]string{"inflight": "", "reason": msg},
		}); terr != nil {
			return wait(redisWait, terr)
		}
		h.metrics.retry(rec.Provider, code)
		d := providers.RetryAfterOf(err)
		if d <= 0 {
			d = h.opts.Backoff.Delay(min(rec.Attempts, 6))
		}
		return wait(d, fmt.Errorf("order %s/%s: %w", rec.Provider, rec.OrderNo, err))
	case providers.Retryable(code):
		rec.Failures++
		if rec.Failures >= h.opts.MaxAttempts {
			return h.finish(wc, rec, a, StateErrored, providers.Result{},
				fmt.Sprintf("gave up after %d failed attempts: %s", rec.Failures, msg))
		}
		if terr := h.ledger.Transition(wc, rec.Provider, rec.OrderNo, Change{
			From: []State{StateSubmitting}, To: StateSubmitting, Attempt: a,
			Set: map[string]string{"inflight": "", "failures": strconv.Itoa(rec.Failures), "reason": msg},
		}); terr != nil {
			return wait(redisWait, terr)
		}
		h.metrics.retry(rec.Provider, code)
		return failed(h.opts.Backoff.Delay(rec.Failures-1), fmt.Errorf("order %s/%s: %w", rec.Provider, rec.OrderNo, err))
	default:
		return h.finish(wc, rec, a, StateErrored, providers.Result{}, msg)
	}
}

// reconcile looks up an order whose last submission may have created it,
// and submits again only when the provider surely does not hold it.
func (h *Handler) reconcile(ctx context.Context, prov providers.Provider, rec *Record) error {
	if rec.State == StateSubmitting {
		// A worker died or was cut off mid-attempt.
		if err := h.ledger.Transition(ctx, rec.Provider, rec.OrderNo, Change{
			From: []State{StateSubmitting}, To: StateUnknown,
			Set: map[string]string{"inflight": "", "reason": "attempt abandoned mid-flight; looking the order up"},
		}); err != nil {
			return wait(redisWait, err)
		}
		h.log.Warn("found an attempt abandoned mid-flight; looking the order up", "provider", rec.Provider, "order_no", rec.OrderNo)
		rec.State = StateUnknown
	}
	if err := h.admit(ctx, rec); err != nil {
		return err
	}
	r, a, err := h.lookup(ctx, prov, rec)
	wc, cancel := writeCtx(ctx)
	defer cancel()
	if err == nil {
		return h.settle(wc, rec, a, StateUnknown, r)
	}
	code := providers.CodeOf(err)
	msg := errText(err)
	if code == providers.NotFound {
		// Surely not created: submit again, unless the order is out of
		// budget or time.
		if rec.Failures >= h.opts.MaxAttempts || h.pastDeadline(rec) {
			return h.finish(wc, rec, a, StateErrored, providers.Result{},
				fmt.Sprintf("not created after %d failed attempts: %s", rec.Failures, rec.Reason))
		}
		if terr := h.ledger.Transition(wc, rec.Provider, rec.OrderNo, Change{
			From: []State{StateUnknown}, To: StateSubmitting, Attempt: a,
			Set: map[string]string{"attempts": strconv.Itoa(rec.Attempts)},
		}); terr != nil {
			return wait(redisWait, terr)
		}
		rec.State = StateSubmitting
		return h.submit(ctx, prov, rec)
	}
	// The lookup failed: the order stays unknown. Lookups do not spend the
	// failure budget, but stop at the deadline: the order is left in
	// unknown for the reconciler and an operator (never guessed).
	if terr := h.ledger.Transition(wc, rec.Provider, rec.OrderNo, Change{
		From: []State{StateUnknown}, To: StateUnknown, Attempt: a,
		Set: map[string]string{"attempts": strconv.Itoa(rec.Attempts)},
	}); terr != nil {
		return wait(redisWait, terr)
	}
	h.metrics.retry(rec.Provider, code)
	if h.pastDeadline(rec) {
		h.log.Error("order outcome still unknown at its deadline; left for the reconciler", "provider", rec.Provider, "order_no", rec.OrderNo, "error", msg)
		return stop("order %s/%s: outcome unknown at the deadline (lookup failed: %s)", rec.Provider, rec.OrderNo, msg)
	}
	d := providers.RetryAfterOf(err)
	if d <= 0 {
		d = h.opts.Backoff.Delay(min(rec.Attempts, 8))
	}
	return wait(d, fmt.Errorf("order %s/%s: lookup: %w", rec.Provider, rec.OrderNo, err))
}

// poll checks a pending order. Polling never spends the failure budget;
// the pending window bounds it.
func (h *Handler) poll(ctx context.Context, prov providers.Provider, rec *Record) error {
	if err := h.admit(ctx, rec); err != nil {
		return err
	}
	r, a, err := h.lookup(ctx, prov, rec)
	wc, cancel := writeCtx(ctx)
	defer cancel()
	if err == nil {
		return h.settle(wc, rec, a, StatePending, r)
	}
	code := providers.CodeOf(err)
	msg := errText(err)
	if code == providers.NotFound {
		return h.finish(wc, rec, a, StateErrored, providers.Result{}, "pending order no longer found: "+msg)
	}
	// Any other failure (even a permanent-looking one such as rotated
	// credentials) leaves the order pending: the provider holds it, so it
	// is polled until the window ends rather than forgotten.
	if h.pendingExpired(rec) {
		return h.finish(wc, rec, a, StateErrored, providers.Result{},
			fmt.Sprintf("still unpaid after the pending window of %s (last check failed: %s)", h.opts.PendingWindow, msg))
	}
	if terr := h.ledger.Transition(wc, rec.Provider, rec.OrderNo, Change{
		From: []State{StatePending}, To: StatePending, Attempt: a,
		Set: map[string]string{"attempts": strconv.Itoa(rec.Attempts)},
	}); terr != nil {
		return wait(redisWait, terr)
	}
	d := providers.RetryAfterOf(err)
	if d <= 0 {
		d = h.pollDelay(rec)
	}
	return wait(d, fmt.Errorf("order %s/%s: poll: %w", rec.Provider, rec.OrderNo, err))
}

func (h *Handler) pendingExpired(rec *Record) bool {
	return !rec.PendingSince.IsZero() && time.Since(rec.PendingSince) > h.opts.PendingWindow
}

// pollDelay doubles from PollInterval up to a minute with the time spent
// pending.
func (h *Handler) pollDelay(rec *Record) time.Duration {
	d := h.opts.PollInterval
	if !rec.PendingSince.IsZero() {
		for elapsed := time.Since(rec.PendingSince); d < time.Minute && elapsed > 4*d; d *= 2 {
		}
	}
	return min(d, time.Minute)
}

// settle records a successful call's result: paid ends the order, pending
// schedules the next check.
func (h *Handler) settle(ctx context.Context, rec *Record, a *Attempt, from State, r providers.Result) error {
	if r.ProviderOrderID != "" {
		rec.ProviderOrderID = r.ProviderOrderID
	}
	switch r.Status {
	case providers.StatusPaid:
		return h.finish(ctx, rec, a, StatePaid, r, "")
	case providers.StatusPending:
		now := time.Now()
		first := rec.PendingSince.IsZero()
		if first {
			rec.PendingSince = now
		}
		if h.pendingExpired(rec) {
			return h.finish(ctx, rec, a, StateErrored, r, fmt.Sprintf("still unpaid after the pending window of %s", h.opts.PendingWindow))
		}
		d := r.NextCheck
		if d <= 0 {
			d = h.pollDelay(rec)
		}
		if err := h.ledger.Transition(ctx, rec.Provider, rec.OrderNo, Change{
			From: []State{from}, To: StatePending, Attempt: a,
			Set: map[string]string{
				"inflight": "", "reason": "", "attempts": strconv.Itoa(rec.Attempts),
				"provider_order_id": rec.ProviderOrderID,
				"pending_since":     strconv.FormatInt(rec.PendingSince.UnixMilli(), 10),
				"next_check":        strconv.FormatInt(now.Add(d).UnixMilli(), 10),
			},
		}); err != nil {
			return wait(redisWait, err)
		}
		if first {
			h.metrics.outcome(rec, StatePending, now)
			h.log.Info("order pending", "provider", rec.Provider, "order_no", rec.OrderNo, "next_check", d)
		}
		return wait(d, fmt.Errorf("order %s/%s: pending; next check in %s", rec.Provider, rec.OrderNo, d.Round(time.Millisecond)))
	default:
		// A provider returned no status: treat as unknown, look it up.
		if err := h.ledger.Transition(ctx, rec.Provider, rec.OrderNo, Change{
			From: []State{from}, To: StateUnknown, Attempt: a,
			Set: map[string]string{"inflight": "", "attempts": strconv.Itoa(rec.Attempts)},
		}); err != nil {
			return wait(redisWait, err)
		}
		return failed(h.opts.Backoff.Delay(rec.Failures), fmt.Errorf("order %s/%s: provider gave no status", rec.Provider, rec.OrderNo))
	}
}

// finish moves the order to paid or errored for good.
func (h *Handler) finish(ctx context.Context, rec *Record, a *Attempt, s State, r providers.Result, reason string) error {
	now := time.Now()
	set := map[string]string{
		"inflight": "", "reason": reason, "outcome_at": strconv.FormatInt(now.UnixMilli(), 10),
		"attempts": strconv.Itoa(rec.Attempts), "failures": strconv.Itoa(rec.Failures),
	}
	if rec.ProviderOrderID != "" {
		set["provider_order_id"] = rec.ProviderOrderID
	}
	if err := h.ledger.Transition(ctx, rec.Provider, rec.OrderNo, Change{To: s, Attempt: a, Set: set}); err != nil {
		// A write whose reply was lost and that the client retried finds
		// its own work done: that is success, not a Redis failure.
		if cur, ok := CurrentState(err); !ok || cur != s {
			return wait(redisWait, err)
		}
	}
	h.metrics.outcome(rec, s, now)
	if s == StatePaid {
		h.log.Info("order paid", "provider", rec.Provider, "order_no", rec.OrderNo, "attempts", rec.Attempts)
		return nil
	}
	h.log.Warn("order errored", "provider", rec.Provider, "order_no", rec.OrderNo, "attempts", rec.Attempts, "reason", reason)
	return stop("order %s/%s errored: %s", rec.Provider, rec.OrderNo, reason)
}
