package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks"
)

// redisName is the Redis a command uses, as its errors and serve's log
// name it: its URL with the password hidden, and the setting it comes
// from (a mistyped REDIS_URL leaves enqueue on the default, which a bare
// "dial tcp 127.0.0.1:6379" does not say).
type redisName struct{ url, setting string }

// newRedisName names rawURL, taken from setting.
func newRedisName(rawURL, setting string) redisName {
	return redisName{url: tasks.RedactURL(rawURL), setting: setting}
}

func (n redisName) String() string { return n.url + " (" + n.setting + ")" }

// namedRedis is a Redis connection option whose clients name their Redis
// in the errors of the commands that could not reach it
// (unreachableError). Redis's own replies are left as they are.
type namedRedis struct {
	asynq.RedisConnOpt
	name redisName
}

// MakeRedisClient returns the option's client, with the hook that names
// it.
func (o namedRedis) MakeRedisClient() any {
	c := o.RedisConnOpt.MakeRedisClient()
	if h, ok := c.(interface{ AddHook(redis.Hook) }); ok {
		h.AddHook(&unreachableHook{name: o.name})
	}
	return c
}

// withPoolSize is tasks.WithPoolSize for an option namedRedis may wrap.
func withPoolSize(opt asynq.RedisConnOpt, n int) asynq.RedisConnOpt {
	if o, ok := opt.(namedRedis); ok {
		o.RedisConnOpt = tasks.WithPoolSize(o.RedisConnOpt, n)
		return o
	}
	return tasks.WithPoolSize(opt, n)
}

// redisNameOf is the name of opt's Redis, the zero redisName when opt is
// not a namedRedis.
func redisNameOf(opt asynq.RedisConnOpt) redisName {
	o, _ := opt.(namedRedis)
	return o.name
}

// unreachableHook wraps a command's error that is not Redis's reply (a
// dial refused, a timeout) in an unreachableError, and keeps the last
// dial's error: go-redis retries a command until its context ends, and
// then gives only "context deadline exceeded", without the "connection
// refused" that says why.
type unreachableHook struct {
	name redisName

	mu       sync.Mutex
	lastDial error
}

func (h *unreachableHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		h.mu.Lock()
		h.lastDial = err
		h.mu.Unlock()
		return cn, err
	}
}

func (h *unreachableHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return h.wrap(next(ctx, cmd))
	}
}

func (h *unreachableHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if e := c.Err(); e != nil {
				c.SetErr(h.wrap(e))
			}
		}
		return h.wrap(err)
	}
}

// wrap returns err in an unreachableError unless it is nil, already one,
// a reply of Redis's (redis.Nil included) or the caller's cancellation.
func (h *unreachableHook) wrap(err error) error {
	var reply redis.Error
	var done *unreachableError
	if err == nil || errors.As(err, &reply) || errors.As(err, &done) || errors.Is(err, context.Canceled) {
		return err
	}
	h.mu.Lock()
	dial := h.lastDial
	h.mu.Unlock()
	return &unreachableError{name: h.name, err: err, dial: dial}
}

// unreachableError is a command's error that is not Redis's reply, with
// the Redis it was for and, when the error itself does not say it, the
// last dial's error.
type unreachableError struct {
	name redisName
	err  error
	dial error
}

func (e *unreachableError) Error() string {
	s := "Redis " + e.name.String() + ": " + e.err.Error()
	if e.dial != nil && !strings.Contains(s, e.dial.Error()) {
		s += " (the last dial: " + e.dial.Error() + ")"
	}
	return s
}

func (e *unreachableError) Unwrap() error { return e.err }
