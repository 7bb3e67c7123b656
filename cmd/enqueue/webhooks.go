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

	"github.com/orderworker/orderworker/tasks/webhook"
)

const webhooksUsage = `Usage:
  enqueue [flags] webhooks                                    the webhook endpoints workers deliver to, with their backlog and failed events
  enqueue [flags] webhooks failed [-endpoint E] [-limit N]    failed events (given up after ORDERWORKER_WEBHOOK_MAX_AGE), as JSON lines
  enqueue [flags] webhooks resend -endpoint E (-all | EVENT_ID ...)   deliver failed events again, oldest first
  enqueue [flags] webhooks discard -endpoint E (-all | EVENT_ID ...)  delete failed events for good

E is an endpoint's id or URL as "enqueue webhooks" lists them.
`

// webhooks lists webhook endpoints and their failed events, and re-sends
// or discards failed events.
func webhooks(ctx context.Context, args []string, redisOpt asynq.RedisConnOpt, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("enqueue webhooks "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, webhooksUsage) }
	endpoint := fs.String("endpoint", "", "endpoint id or URL")
	limit := fs.Int64("limit", 1000, "most failed events listed per endpoint")
	all := fs.Bool("all", false, "every failed event of the endpoint")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitError
	}
	rdb := redisOpt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	l, err := newLedger(rdb, getenv)
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
	find := func() (webhook.EndpointInfo, bool) {
		for _, ep := range eps {
			if *endpoint != "" && (ep.ID == *endpoint || ep.URL == *endpoint) {
				return ep, true
			}
		}
		fmt.Fprintf(stderr, "enqueue webhooks %s: no endpoint %q (enqueue webhooks lists them)\n", cmd, *endpoint)
		return webhook.EndpointInfo{}, false
	}
	switch cmd {
	case "", "list":
		if fs.NArg() > 0 {
			fs.Usage()
			return exitError
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
