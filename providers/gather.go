package providers

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Gather runs one call for many callers: concurrent Do calls with the same
// key share a run of Run, each handing it an argument. A call made while
// no run for its key is under way starts one at once; a call made while
// one is under way waits for the next, which starts when that one ends and
// serves every call made meanwhile. So each caller's answer comes from a
// run that started after its own call did, as a run of its own would have
// (never from one already under way, which may have read the provider
// before the caller's reason to ask arose), and at most one run per key is
// under way at a time, however many callers wait.
//
// Providers use it for listings many lookups read at once (UniCloud's
// QueryOrders): a run of lookups after an outage read the same pages once
// each, hundreds of times over.
//
// A run's context is the first caller's, without its cancellation (the
// others wait on it); a caller whose own context ends stops waiting, with
// its context's error, marked (Queued) when its run had not started then:
// it only waited behind a run under way for other callers. Run
// must bound its own time (each request's timeout). Its answer is shared:
// callers must not change it.
type Gather[K comparable, A, R any] struct {
	Run func(ctx context.Context, key K, args []A) (R, error)

	mu     sync.Mutex
	groups map[K]*gatherGroup[A, R]
}

type gatherGroup[A, R any] struct {
	next *gatherRun[A, R] // the run the calls made now wait for; nil: none yet
}

type gatherRun[A, R any] struct {
	ctx     context.Context
	args    []A
	started bool // under Gather's mu: the run is under way (or over)
	done    chan struct{}
	r       R
	err     error
}

// queued is the error of a Do whose caller's context ended while its run
// had not started (see Queued).
type queued struct{ err error }

func (q queued) Error() string { return q.err.Error() }
func (q queued) Unwrap() error { return q.err }

// Queued reports whether err is the end of a Do whose caller's context
// ended while the run it waited for had not started: it was queued behind
// a run under way for other callers, so the time it lost says nothing of
// how the run it asked for went. A caller whose own run was under way when
// its context ended (a run started at its call, or the one it queued for)
// is not: that run was slow to it, as a call of its own would have been.
// errors.Is reaches the context's error through it.
func Queued(err error) bool {
	var q queued
	return errors.As(err, &q)
}

// Do hands arg to the next run for key and returns that run's answer.
func (g *Gather[K, A, R]) Do(ctx context.Context, key K, arg A) (R, error) {
	g.mu.Lock()
	if g.groups == nil {
		g.groups = make(map[K]*gatherGroup[A, R])
	}
	grp, running := g.groups[key]
	if !running {
		grp = &gatherGroup[A, R]{}
		g.groups[key] = grp
	}
	run := grp.next
	if run == nil {
		run = &gatherRun[A, R]{ctx: context.WithoutCancel(ctx), done: make(chan struct{})}
		if running {
			grp.next = run // started when the one under way ends
		} else {
			run.started = true // started below, at once
		}
	}
	run.args = append(run.args, arg)
	g.mu.Unlock()
	if !running {
		go g.runFrom(key, grp, run)
	}
	select {
	case <-run.done:
		return run.r, run.err
	case <-ctx.Done():
		var zero R
		g.mu.Lock()
		started := run.started
		g.mu.Unlock()
		if !started {
			return zero, queued{ctx.Err()}
		}
		return zero, ctx.Err()
	}
}

// safeRun is Run, a panic in it returned as an error: it runs on Gather's
// own goroutine, where nothing else would recover it (a provider client's
// panic in a task is asynq's to recover, and fails that task alone), and
// its callers would wait on it until their contexts end.
func (g *Gather[K, A, R]) safeRun(ctx context.Context, key K, args []A) (r R, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &Error{Code: Unavailable, Op: "shared call", Message: fmt.Sprintf("panic: %v", p)}
		}
	}()
	return g.Run(ctx, key, args)
}

// runFrom runs run, then each run its calls made while the one before was
// under way, until none waits.
func (g *Gather[K, A, R]) runFrom(key K, grp *gatherGroup[A, R], run *gatherRun[A, R]) {
	for run != nil {
		g.mu.Lock()
		args := run.args // no call joins a run once it starts
		g.mu.Unlock()
		run.r, run.err = g.safeRun(run.ctx, key, args)
		close(run.done)
		g.mu.Lock()
		run, grp.next = grp.next, nil
		if run == nil {
			delete(g.groups, key)
		} else {
			run.started = true
		}
		g.mu.Unlock()
	}
}
