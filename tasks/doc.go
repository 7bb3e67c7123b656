// Package tasks is what producers and the worker share: the order:submit
// task type and its payload, validation, the Enqueuer that deduplicates by
// order number, the Handler that drives each order through its states, the
// reconciler and the metrics.
//
//	queued ─▶ submitting ─┬─▶ paid                      (terminal)
//	                      ├─▶ pending ─poll/pay─▶ paid | errored
//	                      ├─▶ errored                   (terminal)
//	                      └─▶ unknown ─lookup─▶ paid | pending | submitting | errored
//
// The ledger (package tasks/ledger), not asynq, is the source of truth: a
// (provider, order_no) record is claimed atomically at enqueue with a hash
// of the normalized params, every create is marked in flight before the
// request is sent, and an order whose fate is unknown is looked up at the
// provider before it is ever submitted again. What happens next is decided
// by the pure functions of package tasks/order; the Handler is the shell
// around them: per step, one ledger Begin, at most one provider call, one
// ledger Settle.
package tasks
