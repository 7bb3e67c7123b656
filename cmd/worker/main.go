// Command worker processes orders: it takes order:submit tasks from Redis,
// signs and submits each to its provider, retries with backoff, and records
// every order's outcome in the ledger. It serves /metrics, /healthz,
// /readyz, the asynqmon dashboard at /monitoring/ and the Orders pages at
// /orders/ and /api/orders on its admin address.
//
// worker -dev needs nothing set up: it starts an embedded Redis (never the
// one REDIS_URL names; -dev-redis URL gives it an empty one of yours) and
// built-in provider sandboxes with demo credentials. Its Redis, API and
// admin server listen on addresses of their own on 127.0.0.1 (package
// devmode), never the real ones a producer or a health check may use;
// -admin-addr names another admin address.
// worker -dev -demo also enqueues one sample order per provider, prints
// each outcome and exits.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/logmask"
)

func main() {
	redis.SetLogger(logmask.RedisLogger{}) // before any client: see RedisLogger
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}
