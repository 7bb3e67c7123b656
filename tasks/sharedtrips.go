package tasks

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// sharedTrips returns opt with every client it makes sending the scripts
// that concurrent callers run at the same moment in one pipeline: one
// write, one read and one pool checkout for them all instead of one each.
// asynq runs a script per task to mark it done (and one per dequeue),
// each from the task's own goroutine; with many orders in flight those
// round trips share, as the ledger's Begin and Settle do (see the
// ledger's batcher). Each script still runs atomically on its own, with
// its own reply or error; only the round trip is shared. A caller alone
// sends at once. Commands other than scripts go as they always did.
//
// A shared pipeline is never sent again: go-redis sends a whole pipeline
// again when a reply fails to arrive (a timeout, a dropped connection),
// scripts whose replies had arrived included, which a script sent alone
// never is (an asynq dequeue run twice takes a second task that nobody
// runs until its lease ends). Every script of a pipeline that failed so
// fails, as one sent alone and not answered would; the callers try again
// as they do after any failure.
//
// Not on a Redis Cluster client: there one pipeline in flight would hold
// every master's scripts behind the slowest master (a master that hangs
// would stop every shard's dequeues), so its scripts go alone.
func sharedTrips(opt asynq.RedisConnOpt) asynq.RedisConnOpt {
	return sharedTripsOpt{opt}
}

type sharedTripsOpt struct{ asynq.RedisConnOpt }

// MakeRedisClient makes the client opt makes, with the shared trips added
// unless it is a cluster client.
func (o sharedTripsOpt) MakeRedisClient() any {
	c := o.RedisConnOpt.MakeRedisClient()
	addTrips(c)
	return c
}

// addTrips adds the shared trips' hook to c and returns it; nil for a
// cluster client, or anything not a go-redis client.
func addTrips(c any) *tripHook {
	if _, cluster := c.(*redis.ClusterClient); cluster {
		return nil
	}
	u, ok := c.(redis.UniversalClient)
	if !ok {
		return nil
	}
	h := &tripHook{rdb: u}
	u.AddHook(h)
	return h
}

// errTripPanicked is the error of a script whose shared pipeline
// panicked before its reply was in.
var errTripPanicked = errors.New("redis: the shared pipeline carrying this script panicked; whether it ran is not known")

// maxTrip bounds the scripts in one shared pipeline.
const maxTrip = 64

// tripHook gathers scripts into pipelines. No goroutines of its own: the
// caller that finds no pipeline in flight sends the queue, its own script
// included; the others wait. A sender sends until its own script has
// gone, then hands the queue, if any, to the oldest waiting caller.
type tripHook struct {
	rdb redis.UniversalClient // the client the hook is on: its pipelines pass no script through ProcessHook

	mu      sync.Mutex
	queue   []*trip
	sending bool
}

type trip struct {
	ctx  context.Context
	cmd  redis.Cmder
	sent bool          // taken into a pipeline (under mu)
	lead chan struct{} // this caller is to send from now on
	done chan struct{} // closed once cmd holds its reply
}

func (h *tripHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *tripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *tripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isScript(cmd) {
			return next(ctx, cmd)
		}
		if err := ctx.Err(); err != nil {
			// As go-redis does for a command alone: nothing sent.
			cmd.SetErr(err)
			return err
		}
		t := &trip{ctx: ctx, cmd: cmd, lead: make(chan struct{}, 1), done: make(chan struct{})}
		h.mu.Lock()
		h.queue = append(h.queue, t)
		if !h.sending {
			h.sending = true
			h.send(t)
			return cmd.Err()
		}
		h.mu.Unlock()
		select {
		case <-t.done:
		case <-t.lead:
			h.mu.Lock()
			h.send(t)
		case <-ctx.Done():
			h.mu.Lock()
			if !t.sent {
				// Given up before it went: taken out, never sent.
				h.queue = deleteTrip(h.queue, t)
				select {
				case <-t.lead:
					// Promoted meanwhile (a lead goes only to a queued
					// caller, under mu): the queue goes on to the next.
					h.handOn()
				default:
				}
				h.mu.Unlock()
				cmd.SetErr(ctx.Err())
				return ctx.Err()
			}
			h.mu.Unlock()
			<-t.done // on its way: its reply stands
		}
		return cmd.Err()
	}
}

func deleteTrip(q []*trip, t *trip) []*trip {
	for i, x := range q {
		if x == t {
			return append(q[:i], q[i+1:]...)
		}
	}
	return q
}

// isScript reports whether cmd runs a script (EVALSHA or EVAL): those
// never block, so one waiting in a pipeline holds no other up.
func isScript(cmd redis.Cmder) bool {
	n := cmd.Name()
	return strings.EqualFold(n, "evalsha") || strings.EqualFold(n, "eval")
}

// noRetry is a script sent in a shared pipeline: go-redis sends no
// pipeline holding one again (see sharedTrips). Its reply is the
// script's own command's.
type noRetry struct{ redis.Cmder }

func (noRetry) NoRetry() bool { return true }

// send, called with mu held, sends pipelines until own has gone, then
// hands the queue to its oldest caller or stops sending; it returns with
// mu released and own's reply in.
func (h *tripHook) send(own *trip) {
	var batch []*trip
	sending := false
	defer func() {
		if !sending {
			return
		}
		// A panic out of the pipeline (a hook's, go-redis's): the
		// scripts in it fail, as scripts not answered do, and the queue
		// goes on to its next caller, so that a caller that recovers
		// leaves no script waiting for ever behind it.
		for _, t := range batch {
			if t.cmd.Err() == nil {
				t.cmd.SetErr(errTripPanicked)
			}
			if t != own {
				close(t.done)
			}
		}
		h.mu.Lock()
		h.handOn()
		h.mu.Unlock()
	}()
	for !own.sent {
		n := min(len(h.queue), maxTrip)
		batch = make([]*trip, n)
		copy(batch, h.queue)
		h.queue = append(h.queue[:0], h.queue[n:]...)
		for _, t := range batch {
			t.sent = true
		}
		h.mu.Unlock()
		// Not cut short by the sender's own context: the others' scripts
		// ride on it (the client's read timeout bounds the wait).
		ctx := context.WithoutCancel(own.ctx)
		sending = true
		_, _ = h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, t := range batch {
				_ = p.Process(ctx, noRetry{t.cmd})
			}
			return nil
		})
		sending = false
		for _, t := range batch {
			if t != own {
				close(t.done)
			}
		}
		h.mu.Lock()
	}
	h.handOn()
	h.mu.Unlock()
}

// handOn, called with mu held by the sender, hands the queue to its oldest
// caller, or stops sending when none waits.
func (h *tripHook) handOn() {
	if len(h.queue) > 0 {
		h.queue[0].lead <- struct{}{}
	} else {
		h.sending = false
	}
}
