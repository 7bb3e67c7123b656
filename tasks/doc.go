// Package tasks is what producers and the worker share: the order:submit
// task type and its payload, validation, the order ledger in Redis, the
// Enqueuer that deduplicates by order number, and the Handler that drives
// each order through its states:
//
//	queued ─▶ submitting ─┬─▶ paid                      (terminal)
//	                      ├─▶ pending ─poll─▶ paid | errored
//	                      ├─▶ errored                   (terminal)
//	                      └─▶ unknown ─lookup─▶ paid | pending | submitting | errored
//
// The ledger, not asynq, is the source of truth: a (provider, order_no)
// record is claimed atomically at enqueue with a hash of the params, every
// attempt is written to it before the request is sent, and an order whose
// fate is unknown is looked up at the provider before it is ever submitted
// again.
package tasks
