package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/cliflag"
	"github.com/orderworker/orderworker/internal/settings"
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/registry"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/ops"
)

// cmdEnv is what the operator subcommands (list, resolve, redrive) share
// with the top-level command: its global flags and its streams.
type cmdEnv struct {
	redisOpt asynq.RedisConnOpt
	queue    string
	timeout  time.Duration
	getenv   func(string) string
	stdout   io.Writer
	stderr   io.Writer
}

// fail prints an error and returns the exit code.
func (c cmdEnv) fail(code int, format string, a ...any) int {
	// Masked: an order number given on the command line may hold a phone
	// number (one taken before such numbers were refused, or a typo).
	fmt.Fprintln(c.stderr, "enqueue: "+providers.MaskPhones(fmt.Sprintf(format, a...)))
	return code
}

// orders opens the operator actions on the ledger; close releases them.
func (c cmdEnv) orders() (o *ops.Orders, close func(), err error) {
	sealer, err := dataKey(c.getenv)
	if err != nil {
		return nil, nil, err
	}
	// The workers' listing lag: resolving an order absent is refused
	// within it of its last create (ops.Options.ListingLag).
	lag := time.Duration(0) // the default
	if v := c.getenv("ORDERWORKER_LISTING_LAG"); v != "" {
		if lag, err = time.ParseDuration(v); err != nil || lag < 0 || lag > ledger.MaxListingLag {
			return nil, nil, fmt.Errorf("ORDERWORKER_LISTING_LAG=%q: want a duration like 2m, at most 24h, or 0", v)
		}
		if lag == 0 {
			lag = -1 // believed at once, as the workers do
		}
	}
	// The providers' create overruns as the workers read them (added to
	// the lag for resolving absent).
	set := validators()
	for _, sp := range registry.All() {
		if err := set.ConfigureOverrun(sp, c.getenv); err != nil {
			return nil, nil, err
		}
	}
	rdb := c.redisOpt.MakeRedisClient().(redis.UniversalClient)
	l, err := newLedger(rdb, c.getenv, c.timeout)
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	// A process with another shard count than the ledger's would read
	// and act on the wrong keys: refuse (an unreachable Redis is left to
	// the command to report).
	vctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	err = l.VerifyShards(vctx)
	cancel()
	var mm *ledger.ShardsMismatchError
	if errors.As(err, &mm) {
		rdb.Close()
		return nil, nil, err
	}
	inspector := asynq.NewInspector(c.redisOpt)
	client := asynq.NewClient(c.redisOpt)
	o = ops.New(l, inspector, client, set, &ops.Options{Queue: c.queue, Sealer: sealer, ListingLag: lag, Secrets: settings.SecretValues(c.getenv)})
	return o, func() { client.Close(); inspector.Close(); rdb.Close() }, nil
}

// actionError maps an operator action's error to an exit code, printing
// the reason: 1 when the action was refused (or the order has no record),
// 2 for a usage or infrastructure error.
func (c cmdEnv) actionError(err error, ref ledger.Ref) int {
	var refused *ledger.RefusedError
	switch {
	case errors.As(err, &refused):
		return c.fail(exitRejected, "%s: %s", ref, err)
	case errors.Is(err, ledger.ErrNotFound):
		return c.fail(exitRejected, "no order %s", ref)
	}
	return c.fail(exitError, "%s", err)
}

// parseArgs parses a subcommand's flags wherever they stand among its
// positional arguments (enqueue resolve tencent O1 -as paid ...) and
// returns the positional ones. After "--" everything is positional.
func parseArgs(fs *flag.FlagSet, c cmdEnv, args []string) ([]string, error) {
	var pos []string
	for {
		if err := cliflag.Parse(fs, args, c.stdout, c.stderr); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// subUsage sets a subcommand's usage text.
func subUsage(fs *flag.FlagSet, text string) {
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), text+"\nFlags:\n")
		fs.PrintDefaults()
	}
}

// parseFailed is the exit code of a failed parse: 0 for -h.
func parseFailed(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitError
}

// list prints a page of orders as JSON lines, newest first by when they
// entered their state, params masked (or sealed), without their history;
// when more follow, a last line on stderr gives the cursor of the next
// page: {"next_cursor":"..."}.
func list(ctx context.Context, c cmdEnv, args []string) int {
	fs := flag.NewFlagSet("enqueue list", flag.ContinueOnError)
	subUsage(fs, `Usage:
  enqueue [flags] list [-state S] [-provider P] [-older-than D] [-limit N] [-cursor C]

Prints orders as JSON lines, newest first by when they entered their state,
params masked, without their history. When more orders follow, the last line
on stderr is {"next_cursor":"..."}: run again with -cursor to read them.
`)
	state := fs.String("state", "", "only orders in this state: queued, submitting, unknown, pending, paid or errored")
	provider := fs.String("provider", "", "only this provider's orders")
	olderThan := fs.Duration("older-than", 0, "only orders that entered their state at least this long ago (15m, 2h)")
	limit := fs.Int("limit", 50, "orders per page, 1 to 1000")
	cursor := fs.String("cursor", "", "the next page of an earlier listing (its next_cursor)")
	pos, err := parseArgs(fs, c, args)
	if err != nil {
		return parseFailed(err)
	}
	if len(pos) > 0 {
		return c.fail(exitError, "list takes no arguments, got %q", pos)
	}
	st, err := ops.ParseState(*state)
	if err != nil {
		return c.fail(exitError, "-state: %s", err)
	}
	if *limit < 1 || *limit > 1000 {
		return c.fail(exitError, "-limit %d: want 1 to 1000", *limit)
	}
	if *olderThan < 0 {
		return c.fail(exitError, "-older-than cannot be negative")
	}
	o, closeOrders, err := c.orders()
	if err != nil {
		return c.fail(exitError, "%s", err)
	}
	defer closeOrders()
	tc, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	page, err := o.List(tc, ops.Filter{State: st, Provider: *provider, OlderThan: *olderThan, Limit: *limit, Cursor: *cursor})
	if err != nil {
		return c.fail(exitError, "%s", err)
	}
	enc := json.NewEncoder(c.stdout)
	for _, r := range page.Orders {
		if err := enc.Encode(r); err != nil {
			return c.fail(exitError, "%s", err)
		}
	}
	if page.Next != "" {
		line, _ := json.Marshal(map[string]string{"next_cursor": page.Next})
		fmt.Fprintf(c.stderr, "%s\n", line)
	}
	return exitOK
}
