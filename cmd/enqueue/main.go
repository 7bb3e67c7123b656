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
// enqueue then reads and sends nothing more, and exits 2.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/logmask"
)

func main() {
	redis.SetLogger(logmask.RedisLogger{}) // before any client: see RedisLogger
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
