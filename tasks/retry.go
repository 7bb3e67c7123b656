package tasks

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
)

// Backoff is capped exponential backoff with full jitter: the n-th retry
// (from 0) waits a uniformly random time in [0, min(Max, Base·2ⁿ)].
type Backoff struct {
	Base time.Duration // default 1s
	Max  time.Duration // default 5m
}

// Delay returns the wait before retry n.
func (b Backoff) Delay(n int) time.Duration {
	base, max := b.Base, b.Max
	if base <= 0 {
		base = time.Second
	}
	if max <= 0 {
		max = 5 * time.Minute
	}
	ceil := max
	if n < 40 {
		if d := base << n; d > 0 && d < max {
			ceil = d
		}
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// retryError asks asynq to run the task again after delay. A failure
// counts against asynq's retry count; a wait (throttling, polling a pending
// order, another worker holding the order) does not.
type retryError struct {
	delay   time.Duration
	failure bool
	err     error
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// RetryDelay is the asynq.RetryDelayFunc for order tasks: the handler has
// already chosen the delay; other errors fall back to backoff.
func RetryDelay(b Backoff) asynq.RetryDelayFunc {
	return func(n int, err error, _ *asynq.Task) time.Duration {
		var re *retryError
		if errors.As(err, &re) {
			return max(re.delay, 100*time.Millisecond)
		}
		return b.Delay(n)
	}
}

// IsFailure is the asynq IsFailure func for order tasks: waits are not
// failures.
func IsFailure(err error) bool {
	var re *retryError
	if errors.As(err, &re) {
		return re.failure
	}
	return true
}
