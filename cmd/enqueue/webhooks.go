package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/cliflag"
	"github.com/orderworker/orderworker/tasks/webhook"
)

const webhooksUsage = `Usage:
  enqueue [flags] webhooks                                    the webhook endpoints workers deliver to, with their backlog and failed events
  enqueue [flags] webhooks failed [-endpoint E] [-limit N]    failed events (given up after ORDERWORKER_WEBHOOK_MAX_AGE), as JSON lines
  enqueue [flags] webhooks resend -endpoint E (-all | EVENT_ID ...)   deliver failed events again, each order's events in order
  enqueue [flags] webhooks discard -endpoint E (-all | EVENT_ID ...)  delete failed events for good

"enqueue webhooks" prints one JSON line per endpoint a worker has registered:
id, url (without credentials or query), index (its place in
ORDERWORKER_WEBHOOK_URLS), registered (when a worker last started with it
there: one dropped or replaced keeps its index and an older time), backlog (events not yet delivered),
oldest_undelivered (when the oldest of them became due; left out when the
backlog is 0), unadmitted (events in the stream no worker has taken for it
yet; -1 when unknown), failed and lost. With no endpoint it prints nothing on
standard output, and says so on standard error.

A re-send moves the events back to delivery: an order's events go out in
order, one after another, but the events of different orders are sent at
once, in no set order. Re-sending one event of an order re-sends all its
failed events.

E is an endpoint's id, URL or index as "enqueue webhooks" lists them (the
index is the alerts' endpoint label; a URL that two endpoints show, which
differ only in what the listing hides, is refused: give the id). An
EVENT_ID that is not a failed event of E is refused, with nothing done.
`

// webhooks lists webhook endpoints and their failed events, and re-sends
// or discards failed events.
func webhooks(ctx context.Context, args []string, redisOpt asynq.RedisConnOpt, timeout time.Duration, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		// A flag first ("webhooks -h") is the listing's.
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("enqueue webhooks "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), webhooksUsage)
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	endpoint := fs.String("endpoint", "", "endpoint id, URL, or index (the alerts' endpoint label)")
	limit := fs.Int64("limit", 1000, "most failed events listed per endpoint")
	all := fs.Bool("all", false, "every failed event of the endpoint")
	if err := cliflag.Parse(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitError
	}
	// Refused before Redis is asked anything, each with what is wrong:
	// the usage alone would leave a mistyped subcommand to be guessed.
	switch cmd {
	case "", "list", "failed", "resend", "discard":
	default:
		fmt.Fprintf(stderr, "enqueue webhooks: unknown subcommand %q (want failed, resend or discard; enqueue webhooks -h)\n", cmd)
		return exitError
	}
	if *limit < 1 {
		fmt.Fprintf(stderr, "enqueue webhooks %s: -limit %d: want a positive number\n", cmd, *limit)
		return exitError
	}
	rdb := redisOpt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	l, err := newLedger(rdb, getenv, timeout)
	if err == nil {
		// The events of a ledger with another shard count than this
		// process's are in streams it would not read: it would report
		// nothing failed.
		err = l.VerifyShards(c)
	}
	if err != nil {
		fmt.Fprintln(stderr, "enqueue webhooks:", err)
		return exitError
	}
	store := webhook.NewStore(rdb, l.EventStreams())
	eps, err := store.Endpoints(c)
	if err != nil {
		fmt.Fprintln(stderr, "enqueue webhooks:", err)
		return exitError
	}
	enc := json.NewEncoder(stdout)
	// find is the endpoint -endpoint names: by id, or by URL as listed
	// when exactly one endpoint shows that URL (the listed URL hides
	// query strings and token-like path parts, so two endpoints may show
	// the same one), or by its index, the webhook metrics' and alerts'
	// endpoint label, when exactly one endpoint has it (one no longer
	// configured keeps the index it had).
	find := func() (webhook.EndpointInfo, bool) {
		var byURL, byIndex []webhook.EndpointInfo
		for _, ep := range eps {
			switch {
			case *endpoint == "":
			case ep.ID == *endpoint:
				return ep, true
			case ep.URL == *endpoint:
				byURL = append(byURL, ep)
			case strconv.Itoa(ep.Index) == *endpoint:
				byIndex = append(byIndex, ep)
			}
		}
		if len(byURL) == 0 {
			byURL = byIndex
		}
		switch len(byURL) {
		case 1:
			return byURL[0], true
		case 0:
			fmt.Fprintf(stderr, "enqueue webhooks %s: no endpoint %q (enqueue webhooks lists them)\n", cmd, *endpoint)
		default:
			ids := make([]string, len(byURL))
			for i, ep := range byURL {
				ids[i] = ep.ID
			}
			fmt.Fprintf(stderr, "enqueue webhooks %s: %d endpoints show %q (ids %s): give the id\n", cmd, len(byURL), *endpoint, strings.Join(ids, ", "))
		}
		return webhook.EndpointInfo{}, false
	}
	switch cmd {
	case "", "list":
		if fs.NArg() > 0 {
			fs.Usage()
			return exitError
		}
		if len(eps) == 0 {
			// Standard output stays empty, for scripts that read it.
			fmt.Fprintln(stderr, "enqueue webhooks: no webhook endpoints: no worker has registered one (workers register the URLs in ORDERWORKER_WEBHOOK_URLS when they start)")
		}
		for _, ep := range eps {
			if err := enc.Encode(ep); err != nil {
				return exitError
			}
		}
		return exitOK
	case "failed":
		if fs.NArg() > 0 {
			fs.Usage()
			return exitError
		}
		targets := eps
		if *endpoint != "" {
			ep, ok := find()
			if !ok {
				return exitError
			}
			targets = []webhook.EndpointInfo{ep}
		}
		for _, ep := range targets {
			evs, err := store.Failed(c, ep.ID, *limit)
			if err != nil {
				fmt.Fprintln(stderr, "enqueue webhooks failed:", err)
				return exitError
			}
			for _, ev := range evs {
				if err := enc.Encode(ev); err != nil {
					return exitError
				}
			}
		}
		return exitOK
	case "resend", "discard":
		if *endpoint == "" || (*all == (fs.NArg() > 0)) {
			fmt.Fprintf(stderr, "enqueue webhooks %s: give -endpoint and either -all or event ids\n", cmd)
			return exitError
		}
		ep, ok := find()
		if !ok {
			return exitError
		}
		if !*all {
			// Every id given must be a failed event of the endpoint:
			// a mistyped one is refused, with nothing done, rather than
			// ignored under a success.
			have, err := store.FailedEventIDs(c, ep.ID)
			if err != nil {
				fmt.Fprintf(stderr, "enqueue webhooks %s: %v\n", cmd, err)
				return exitError
			}
			var unknown []string
			for _, id := range fs.Args() {
				if !have[id] {
					unknown = append(unknown, id)
				}
			}
			if len(unknown) > 0 {
				if len(unknown) > 10 {
					unknown = append(unknown[:10], fmt.Sprintf("and %d more", len(unknown)-10))
				}
				fmt.Fprintf(stderr, "enqueue webhooks %s: not failed events of endpoint %s: %s (enqueue webhooks failed -endpoint %s lists them); nothing was done\n",
					cmd, ep.ID, strings.Join(unknown, ", "), ep.ID)
				return exitError
			}
		}
		var n int
		if cmd == "resend" {
			n, err = store.Resend(c, ep.ID, fs.Args())
		} else {
			n, err = store.Discard(c, ep.ID, fs.Args())
		}
		if err != nil {
			fmt.Fprintf(stderr, "enqueue webhooks %s: %v\n", cmd, err)
			return exitError
		}
		word := map[string]string{"resend": "resent", "discard": "discarded"}[cmd]
		_ = enc.Encode(map[string]any{"endpoint": ep.ID, word: n})
		return exitOK
	}
	fs.Usage()
	return exitError
}
