// Command enqueue hands orders to orderworker.
//
//	enqueue [flags] [FILE ...]          orders as JSON from files or stdin
//	enqueue [flags] -provider P -order-no N -params '{...}'
//	enqueue [flags] status PROVIDER ORDER_NO
//
// Each order is one JSON object; a file holds one object (which may span
// lines) or one object per line. For every order it prints one JSON line:
// {"status":"enqueued"|"duplicate"|"conflict"|"invalid", ...} with the reason
// for the last two. It exits 1 when any order was not accepted (conflict or
// invalid), 2 on a usage or infrastructure error. A duplicate is accepted:
// the order is already in hand.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
