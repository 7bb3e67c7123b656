package tasks

import (
	"errors"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/tasks/order"
)

// Backoff is capped exponential backoff with full jitter (see order.Backoff).
type Backoff = order.Backoff

// retryError asks asynq to run the task again after delay. A failure
// counts against asynq's retry count; a wait (throttling, polling a pending
// order, another worker holding the order) does not.
type retryError struct {
	delay   time.Duration
	failure bool
	err     error
	// heldFor is, for an order held for a configuration problem, its
	// kind, and provider the provider held (configWait).
	heldFor, provider string
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// wait asks asynq to come back after d without counting a failure.
func wait(d time.Duration, err error) error { return &retryError{delay: d, err: err} }

// Wait is an error that asks asynq to run the task again after d without
// counting a failure (nor raising asynq's retry count, which the handler
// reads as "ran before"): for a check outside the handler (a middleware)
// that holds an order back without touching it.
func Wait(d time.Duration, err error) error { return wait(d, err) }

// failed asks asynq to come back after d, counting a failure.
func failed(d time.Duration, err error) error { return &retryError{delay: d, failure: true, err: err} }

// RetryDelay is the asynq.RetryDelayFunc for order tasks: the handler has
// already chosen the delay; other errors fall back to backoff.
func RetryDelay(b Backoff) asynq.RetryDelayFunc {
	return func(n int, err error, _ *asynq.Task) time.Duration {
		var re *retryError
		if errors.As(err, &re) {
			return min(max(re.delay, 100*time.Millisecond), MaxRetryDelay)
		}
		return min(b.Delay(n), MaxRetryDelay)
	}
}

// MaxRetryDelay is the longest an order's task waits to run again: an
// order waiting for a person is checked up to an hour apart, and a
// provider's Retry-After, or a backoff, asking for longer is cut to it.
// The reconciler takes a task set to retry further ahead than that (by a
// margin) for one timed on a fast clock, and runs it.
const MaxRetryDelay = time.Hour

// IsFailure is the asynq IsFailure func for order tasks: waits are not
// failures.
func IsFailure(err error) bool {
	var re *retryError
	if errors.As(err, &re) {
		return re.failure
	}
	return true
}
