package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
)

// Outcome of an enqueue.
const (
	Enqueued  = "enqueued"  // a new order, now queued
	Duplicate = "duplicate" // the same order was already accepted
	Conflict  = "conflict"  // the order number was taken by different params
	Invalid   = "invalid"   // the payload or params are not acceptable
)

// EnqueueResult is what happened to one order.
type EnqueueResult struct {
	Status   string `json:"status"`
	Provider string `json:"provider,omitempty"`
	OrderNo  string `json:"order_no,omitempty"`
	// State is the order's ledger state (for duplicates, the existing one).
	State  State  `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Repaired is set when a duplicate found its record claimed but never
	// enqueued (a producer crashed between the two writes) and queued it.
	Repaired bool `json:"repaired,omitempty"`
}

// EnqueuerOptions configure an Enqueuer. nil means defaults.
type EnqueuerOptions struct {
	// Queue is the asynq queue. Default DefaultQueue.
	Queue string
	// TaskOptions are added to every task (the Enqueuer already sets
	// TaskID, Queue, MaxRetry and Timeout).
	TaskOptions []asynq.Option
	// Metrics records dedupe hits; nil records nothing.
	Metrics *Metrics
	// Sealer encrypts params before they reach Redis; nil stores them in
	// clear and refuses orders carrying personal-data params.
	Sealer *Sealer
}

// Enqueuer accepts orders: it validates them, claims the order number in the
// ledger and enqueues the task. It is safe for concurrent use.
type Enqueuer struct {
	client    *asynq.Client
	ledger    *Ledger
	providers *providers.Set
	queue     string
	taskOpts  []asynq.Option
	metrics   *Metrics
	sealer    *Sealer
}

// NewEnqueuer returns an Enqueuer that validates params with set.
func NewEnqueuer(client *asynq.Client, ledger *Ledger, set *providers.Set, opts *EnqueuerOptions) *Enqueuer {
	if opts == nil {
		opts = &EnqueuerOptions{}
	}
	e := &Enqueuer{client: client, ledger: ledger, providers: set, queue: opts.Queue,
		taskOpts: opts.TaskOptions, metrics: opts.Metrics, sealer: opts.Sealer}
	if e.queue == "" {
		e.queue = DefaultQueue
	}
	return e
}

// TaskMaxRetry is asynq's retry limit for order tasks. The handler keeps
// its own, smaller, failure budget in the ledger and ends the task itself;
// asynq's limit is only a backstop, set high so that waits which do not
// count as failures (throttling, polling) are never cut off by it.
const TaskMaxRetry = 1000

// TaskTimeout bounds one run of an order task.
const TaskTimeout = 5 * time.Minute

// Enqueue accepts one order given as payload bytes. The returned error is
// for infrastructure failures only (Redis unreachable); everything about
// the order itself is in the result.
func (e *Enqueuer) Enqueue(ctx context.Context, data []byte) (EnqueueResult, error) {
	p, err := DecodePayload(data)
	if err != nil {
		return EnqueueResult{Status: Invalid, Reason: reasonOf(err)}, nil
	}
	return e.EnqueuePayload(ctx, p)
}

func reasonOf(err error) string {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return err.Error()
}

// EnqueuePayload accepts one decoded order.
func (e *Enqueuer) EnqueuePayload(ctx context.Context, p Payload) (EnqueueResult, error) {
	res := EnqueueResult{Provider: p.Provider, OrderNo: p.OrderNo}
	if err := p.check(); err != nil {
		res.Status, res.Reason = Invalid, reasonOf(err)
		return res, nil
	}
	clear, err := openAndValidate(p, e.providers, e.sealer)
	if err != nil {
		res.Status, res.Reason = Invalid, reasonOf(err)
		return res, nil
	}
	hash, err := e.sealer.hash(clear)
	if err != nil {
		res.Status, res.Reason = Invalid, "params: malformed JSON"
		return res, nil
	}
	if e.sealer != nil {
		if p.Params, err = e.sealer.Seal(clear); err != nil {
			return res, err
		}
	} else {
		p.Params = clear
	}
	claim, err := e.ledger.Claim(ctx, p, hash)
	if err != nil {
		return res, err
	}
	res.State = claim.State
	switch {
	case claim.Created:
		if err := e.enqueueTask(ctx, p); err != nil {
			e.undoClaim(p)
			return res, err
		}
		res.Status = Enqueued
		return res, nil
	case claim.ParamsHash != hash:
		e.metrics.dedupe(p.Provider, "conflict")
		res.Status = Conflict
		res.Reason = "order_no already used by an order with different params"
		return res, nil
	}
	e.metrics.dedupe(p.Provider, "duplicate")
	res.Status = Duplicate
	if claim.State == StateQueued && !claim.Enqueued {
		// Claimed, but the producer died before the task was queued.
		// Queue the params as recorded.
		rec, err := e.ledger.Get(ctx, p.Provider, p.OrderNo)
		if err != nil || rec == nil {
			return res, fmt.Errorf("repair order: %v", err)
		}
		p.Params = rec.Params
		if err := e.enqueueTask(ctx, p); err != nil {
			return res, err
		}
		res.Repaired = true
	}
	return res, nil
}

// enqueueTask queues the order's task and marks the record enqueued. A task
// that already exists (TaskID conflict) counts as queued.
func (e *Enqueuer) enqueueTask(ctx context.Context, p Payload) error {
	task, err := NewOrderSubmitTask(p)
	if err != nil {
		return err
	}
	opts := append([]asynq.Option{asynq.Queue(e.queue), asynq.MaxRetry(TaskMaxRetry), asynq.Timeout(TaskTimeout)}, e.taskOpts...)
	if _, err := e.client.EnqueueContext(ctx, task, opts...); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue order task: %w", err)
	}
	// If this write fails the task is queued all the same; a later
	// duplicate or the reconciler marks the record. Nothing is lost.
	_ = e.ledger.MarkEnqueued(ctx, p.Provider, p.OrderNo)
	return nil
}

// undoClaim removes a claim whose task could not be queued, so a failed
// enqueue leaves nothing half-written. If Redis is gone too, the claim
// stays, and the next enqueue of the order (or the reconciler) repairs it.
func (e *Enqueuer) undoClaim(p Payload) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rec, err := e.ledger.Get(ctx, p.Provider, p.OrderNo)
	if err != nil || rec == nil {
		return
	}
	_ = unclaimScript.Run(ctx, e.ledger.rdb,
		[]string{recordKey(p.Provider, p.OrderNo), indexKey(p.Provider, StateQueued)},
		rec.CreatedAt.UnixMilli(), p.OrderNo).Err()
}
