package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
)

// ServerOptions configure NewServer. Zero values mean defaults.
type ServerOptions struct {
	// Queue to process. Default DefaultQueue.
	Queue string
	// Concurrency is how many orders are processed at once. Default 20.
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
	// DelayedTaskCheckInterval is how often retries and scheduled tasks
	// are moved to the queue (asynq's default 5s); tests lower it.
	DelayedTaskCheckInterval time.Duration
	// Logger receives asynq's own warnings and errors. Default
	// slog.Default().
	Logger *slog.Logger
}

// DefaultPollInterval is an idle worker's poll interval: a median pickup
// of about 40 ms for about 40 Redis commands a second (asynq's default, 1s,
// gives about 0.5 s for about 3).
const DefaultPollInterval = 75 * time.Millisecond

// NewServer returns an asynq server that runs order tasks with h, with
// retry delays and failure accounting decided by the handler.
func NewServer(r asynq.RedisConnOpt, h *Handler, o ServerOptions) (*asynq.Server, *asynq.ServeMux) {
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
	log := o.Logger
	srv := asynq.NewServer(r, asynq.Config{
		Concurrency:              o.Concurrency,
		Queues:                   map[string]int{o.Queue: 1},
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
	})
	mux := asynq.NewServeMux()
	mux.Handle(TypeOrderSubmit, h)
	return srv, mux
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
