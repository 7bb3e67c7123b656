package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ServerOptions configure NewServer. Zero values mean defaults.
type ServerOptions struct {
	// Queue to process. Default DefaultQueue.
	Queue string
	// Concurrency is how many provider calls run at once (the handler's
	// call slots, Handler.LimitCalls). The worker runs up to Headroom more
	// orders than that, so that the bookkeeping around each call (asynq
	// taking the task off the queue and marking it done, the ledger's
	// Settle) happens while other orders' calls keep the slots busy.
	// Default 20.
	Concurrency int
	// ShutdownTimeout is how long in-flight attempts may run after a stop
	// signal before their context is cancelled (an attempt cut off is
	// reconciled later). Default 25s.
	ShutdownTimeout time.Duration
	// Backoff for retries the handler did not schedule itself.
	Backoff Backoff
	// TaskCheckInterval is how often an idle worker polls for a new task
	// (asynq's TaskCheckInterval, each wait drawn from [½, 1½] of it): the
	// median pickup of an order by an idle worker is about half of it, and
	// each poll costs three Redis commands. Default DefaultPollInterval.
	TaskCheckInterval time.Duration
	// Dequeuers is how many asynq servers share Concurrency. asynq takes
	// tasks off the queue one at a time per server, each a Redis round
	// trip, so with fast providers one server's dequeue loop caps how many
	// orders a second the worker starts; several run that loop side by
	// side. Only the first polls an empty queue every TaskCheckInterval;
	// the others every 3s, doing asynq's periodic chores once a minute, so
	// an idle worker costs about one dequeuer plus 2.5 Redis commands a
	// second per other (mostly its heartbeat). Default
	// Dequeuers(Concurrency).
	Dequeuers int
	// DelayedTaskCheckInterval is how often retries and scheduled tasks
	// are moved to the queue (asynq's default 5s); tests lower it.
	DelayedTaskCheckInterval time.Duration
	// Logger receives asynq's own warnings and errors. Default
	// slog.Default().
	Logger *slog.Logger
}

// DefaultPollInterval is an idle worker's poll interval: a median pickup
// of about 40 ms for about 38 Redis commands a second (asynq's default,
// 1s, gives about 0.5 s for about 3).
const DefaultPollInterval = 80 * time.Millisecond

// Server runs order tasks: one or more asynq servers on the same queue
// sharing the handler and the concurrency (see ServerOptions.Dequeuers).
// Its methods are asynq.Server's.
type Server struct {
	servers []*asynq.Server
	rdb     redis.UniversalClient // the dequeuers' client, closed once they are shut down
	h       *Handler
	started bool
}

// Start starts every dequeuer with handler h; on an error the ones
// started are shut down.
func (s *Server) Start(h asynq.Handler) error {
	if s.started {
		// (Its dequeuers would refuse one by one, and the client they
		// share would be closed under the running ones.)
		return errors.New("orderworker: server already started")
	}
	s.started = true
	for i, srv := range s.servers {
		if err := srv.Start(h); err != nil {
			for _, started := range s.servers[:i] {
				started.Shutdown()
			}
			s.rdb.Close()
			return err
		}
	}
	return nil
}

// Shutdown stops taking tasks and waits, up to ShutdownTimeout, for the
// running ones; the dequeuers shut down together. Runs waiting in place
// for their next step hand their tasks back at once (Handler.StopWaiting).
func (s *Server) Shutdown() {
	s.stopWaiting()
	var wg sync.WaitGroup
	for _, srv := range s.servers {
		wg.Go(srv.Shutdown)
	}
	wg.Wait()
	s.rdb.Close()
}

// Stop stops taking new tasks; running ones go on, but no longer wait in
// place for their next steps (Handler.StopWaiting).
func (s *Server) Stop() {
	s.stopWaiting()
	for _, srv := range s.servers {
		srv.Stop()
	}
}

func (s *Server) stopWaiting() {
	if s.h != nil {
		s.h.StopWaiting()
	}
}

// Ping checks every dequeuer's connection to Redis.
func (s *Server) Ping() error {
	for _, srv := range s.servers {
		if err := srv.Ping(); err != nil {
			return err
		}
	}
	return nil
}

// Headroom is how many orders a worker runs beyond its concurrency c (a
// quarter of it, at least one): they wait for a call slot while the
// others' bookkeeping runs. With a 100 ms provider that bookkeeping is
// about a tenth of an order's time in the worker on two busy cores.
func Headroom(c int) int { return max(1, c/4) }

// Dequeuers is how many asynq servers share concurrency c by default: one
// per 16 of concurrency, at most maxDequeuers.
func Dequeuers(c int) int { return min(max(1, c/16), maxDequeuers) }

const (
	maxDequeuers = 3
	// extraPollInterval is how often a dequeuer other than the first
	// polls an empty queue (asynq sleeps ½ to 1½ of it, and a shutdown
	// waits for the sleep); extraChoreInterval how often it does asynq's
	// periodic chores (moving due retries, health checks, cleaning up),
	// which the first does at asynq's pace.
	extraPollInterval  = 3 * time.Second
	extraChoreInterval = time.Minute
)

// NewServer returns a server that runs order tasks with h, with retry
// delays and failure accounting decided by the handler.
func NewServer(r asynq.RedisConnOpt, h *Handler, o ServerOptions) (*Server, *asynq.ServeMux) {
	if o.Queue == "" {
		o.Queue = DefaultQueue
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 20
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 25 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.TaskCheckInterval <= 0 {
		o.TaskCheckInterval = DefaultPollInterval
	}
	queues := map[string]int{}
	// With a sharded ledger, each shard's queue, and the queue as named
	// for producers that write their tasks themselves: unserved, those
	// would wait unseen (no record exists until a worker claims one).
	for _, q := range ServedQueues(o.Queue, h.ledger.Shards()) {
		queues[q] = 1
	}
	h.LimitCalls(o.Concurrency)
	slots := o.Concurrency + Headroom(o.Concurrency)
	n := o.Dequeuers
	if n <= 0 {
		n = Dequeuers(o.Concurrency)
	}
	n = min(n, o.Concurrency)
	log := o.Logger
	// One client for every dequeuer: the scripts of all their orders
	// share round trips (sharedTrips).
	s := &Server{rdb: sharedTrips(r).MakeRedisClient().(redis.UniversalClient), h: h}
	for i := range n {
		// The orders are split as evenly as they go.
		c := slots / n
		if i < slots%n {
			c++
		}
		cfg := asynq.Config{
			Concurrency:              c,
			Queues:                   queues,
			RetryDelayFunc:           RetryDelay(o.Backoff),
			IsFailure:                IsFailure,
			ShutdownTimeout:          o.ShutdownTimeout,
			TaskCheckInterval:        o.TaskCheckInterval,
			DelayedTaskCheckInterval: o.DelayedTaskCheckInterval,
			Logger:                   slogAdapter{log},
			LogLevel:                 asynq.WarnLevel,
			ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
				if IsFailure(err) {
					log.Debug("order attempt failed", "task", t.Type(), "error", err)
				}
			}),
		}
		if i > 0 {
			// The first dequeuer picks orders up from an idle queue and
			// does asynq's periodic chores; the others poll an empty queue
			// rarely and do the chores once a minute: they join in once
			// there is a backlog (a loop that finds tasks never sleeps), and
			// cost an idle worker little more than their heartbeats.
			cfg.TaskCheckInterval = max(o.TaskCheckInterval, extraPollInterval)
			cfg.DelayedTaskCheckInterval = extraChoreInterval
			cfg.HealthCheckInterval = extraChoreInterval
			cfg.JanitorInterval = extraChoreInterval
		}
		s.servers = append(s.servers, asynq.NewServerFromRedisClient(s.rdb, cfg))
	}
	mux := asynq.NewServeMux()
	mux.Handle(TypeOrderSubmit, h)
	return s, mux
}

// slogAdapter lets asynq log through slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a slogAdapter) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a slogAdapter) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a slogAdapter) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a slogAdapter) Fatal(args ...any) {
	a.l.Error(fmt.Sprint(args...), "component", "asynq", "fatal", true)
}
