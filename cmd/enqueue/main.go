// Command enqueue hands orders to orderworker.
//
//	enqueue [flags] [FILE ...]          orders as JSON from files or stdin
//	enqueue [flags] -provider P -order-no N -params '{...}'
//	enqueue [flags] status PROVIDER ORDER_NO
//
// Each order is one JSON object; a file holds one object (which may span
// lines) or one object per line. For every order it sends it prints one
// JSON line: {"status":"enqueued"|"duplicate"|"conflict"|"invalid"|"error",
// ...} with the reason for the last three. It exits 1 when any order was not
// accepted (conflict or invalid), 2 on a usage or infrastructure error. A
// duplicate is accepted: the order is already in hand. An error is an order
// an infrastructure error (Redis unreachable) left unanswered: it may or may
// not have been accepted, and is safe to send again with the same order_no;
// enqueue then reads and sends nothing more, and exits 2. A Redis that
// refuses enqueue for good (a wrong password) is found before the first
// order is read: enqueue says that nothing was read or sent, and exits 2.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/logmask"
)

func main() {
	redis.SetLogger(redisLogger{}) // before any client: see redisLogger
	redisLogInServe = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// redisLogger is go-redis's logger in enqueue (redis.SetLogger): silent,
// except in enqueue serve once its log is set up (logRedis), where
// go-redis's own messages (a pool that cannot dial, a sentinel's news)
// go to that log as warnings, in its format (logmask.RedisLogger). The
// other commands report every Redis error themselves, once, with what it
// means for the orders: go-redis's lines before it ("redis: connection
// pool: failed to dial after 5 attempts") would only repeat it, in
// another format, on the same stderr.
type redisLogger struct{}

// redisLogOn says that enqueue serve has set up its log (logRedis).
var redisLogOn atomic.Bool

// redisLogInServe says that enqueue serve sends go-redis's messages to its
// log: set by main, for the process's one serve. go-redis's logger is the
// process's, so tests, which run several serves in one process, each over
// its own buffer, leave it alone.
var redisLogInServe bool

// Printf implements go-redis's internal.Logging.
func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if redisLogOn.Load() {
		logmask.RedisLogger{}.Printf(ctx, format, v...)
	}
}

// logRedis sends go-redis's own messages to log from now on.
func logRedis(log *slog.Logger) {
	logmask.SetRedisLogger(log)
	redisLogOn.Store(true)
}
