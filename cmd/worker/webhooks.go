package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/devmode"
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/api"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/webhook"
)

// parseWebhooks reads ORDERWORKER_WEBHOOK_URLS and checks the webhook
// settings that go with it (ORDERWORKER_WEBHOOK_SECRET, which -dev does not
// read, is checked by parseConfig: one secret, or several separated by
// whitespace while one is rotated, each request signed with each). Errors
// never show a secret.
func (c *config) parseWebhooks(urls string) error {
	u, err := webhook.ParseURLs(urls)
	if err != nil {
		return fmt.Errorf("ORDERWORKER_WEBHOOK_URLS: %w", err)
	}
	c.WebhookURLs = u
	switch {
	case c.WebhookRetryMax < c.WebhookRetryBase:
		return fmt.Errorf("ORDERWORKER_WEBHOOK_RETRY_MAX %s is below ORDERWORKER_WEBHOOK_RETRY_BASE %s", c.WebhookRetryMax, c.WebhookRetryBase)
	}
	return nil
}

// startWebhooks delivers outcome events to the configured URLs on their own
// goroutines until stop is called (not when ctx ends: deliveries go on while
// the worker drains its tasks); stop waits for deliveries in flight. The
// deliveries use a Redis client of their own: their blocking reads must
// never take the connections order processing needs. An event goes out
// only once the replicas hold it (webhook.Options.Durable, with the
// ledger's options lopts).
func startWebhooks(ctx context.Context, cfg *config, redisOpt asynq.RedisConnOpt, streams []ledger.EventStream, lopts ledger.Options, reg prometheus.Registerer, log *slog.Logger) (stop func(), err error) {
	if len(cfg.WebhookURLs) == 0 {
		return func() {}, nil
	}
	signer, err := webhook.NewSigner(cfg.WebhookSecret.Reveal())
	if err != nil {
		return nil, fmt.Errorf("ORDERWORKER_WEBHOOK_SECRET: %w", err)
	}
	opts := &webhook.Options{
		MaxAge: cfg.WebhookMaxAge, RetryBase: cfg.WebhookRetryBase, RetryMax: cfg.WebhookRetryMax,
		Timeout: cfg.WebhookTimeout, Senders: cfg.WebhookConcurrency, Streams: streams, Registerer: reg, Logger: log,
	}
	rdb := ledgerClient(tasks.WithPoolSize(redisOpt, webhook.Connections(len(cfg.WebhookURLs), opts)))
	opts.Durable = ledger.New(rdb, &lopts)
	d, err := webhook.New(rdb, cfg.WebhookURLs, signer, opts)
	if err != nil {
		rdb.Close()
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	// The groups exist before the worker takes its first order: a new
	// endpoint gets every event from this start on.
	sc, scancel := context.WithTimeout(ctx, 30*time.Second)
	err = d.Setup(sc)
	scancel()
	if err != nil {
		rdb.Close()
		return nil, fmt.Errorf("webhooks: set up the endpoints' consumer groups: %w", err)
	}
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(c) })
	for i, u := range cfg.WebhookURLs {
		log.Info("webhooks: delivering outcome events", "endpoint", i, "url", webhook.DisplayURL(u))
	}
	warnUnconfigured(ctx, rdb, streams, cfg.WebhookURLs, log)
	return func() { cancel(); wg.Wait(); rdb.Close() }, nil
}

// warnUnconfigured logs each endpoint Redis knows that no longer is in
// ORDERWORKER_WEBHOOK_URLS but still holds events: its id is a hash of its
// URL, so a URL changed (a new token in its query, a trailing slash) is a
// new endpoint, and no worker delivers the old one's backlog.
func warnUnconfigured(ctx context.Context, rdb redis.UniversalClient, streams []ledger.EventStream, urls []string, log *slog.Logger) {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	eps, err := webhook.NewStore(rdb, streams).Unconfigured(c, urls)
	if err != nil {
		log.Warn("webhooks: cannot list the endpoints Redis knows", "error", err)
		return
	}
	for _, ep := range eps {
		log.Warn("webhooks: an endpoint no longer in ORDERWORKER_WEBHOOK_URLS holds undelivered events; no worker delivers them (put its URL back, or see enqueue webhooks)",
			"endpoint_id", ep.ID, "url", ep.URL, "backlog", ep.Backlog, "failed", ep.Failed)
	}
}

// serveDevAPI serves the producers' HTTP API for -dev on loopback, at
// devmode.APIAddr (any free port when that one is taken), never at
// ORDERWORKER_API_ADDR: a -dev worker started while the real API is down
// would take its producers' orders and pay them through the sandboxes.
// With ORDERWORKER_API_TOKENS when set, else open, which loopback keeps to
// this machine.
func serveDevAPI(ctx context.Context, cfg *config, client *asynq.Client, ledger *tasks.Ledger, rdb redis.UniversalClient, set *providers.Set, sealer *tasks.Sealer, log *slog.Logger) (stop func(), err error) {
	var ln net.Listener
	err = errors.New("ORDERWORKER_API_ADDR names -dev's own port")
	if _, p, perr := net.SplitHostPort(cfg.realAPIAddr); perr != nil || p != devmode.APIPort {
		// Unless the real API may be the one there, down.
		ln, err = net.Listen("tcp", devmode.APIAddr)
	}
	if err != nil {
		log.Warn("dev: the API's own address is not free; using a free port", "wanted", devmode.APIAddr, "reason", err.Error())
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("dev: API: %w", err)
		}
	}
	tokens := api.ParseTokens(cfg.APITokens.Reveal())
	enq := tasks.NewEnqueuer(client, ledger, set, &tasks.EnqueuerOptions{Queue: cfg.Queue, Sealer: sealer, Dev: true})
	h, err := api.New(enq, ledger, rdb, set, &api.Options{Tokens: tokens, Open: len(tokens) == 0, Sealer: sealer, Logger: log})
	if err != nil {
		ln.Close()
		return nil, err
	}
	c, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := api.Serve(c, ln, h); err != nil {
			log.Error("dev: API stopped", "error", err)
		}
	}()
	log.Info("dev: API listening", "addr", ln.Addr().String(), "open", len(tokens) == 0)
	if len(tokens) == 0 {
		log.Warn("dev: the API is open (no ORDERWORKER_API_TOKENS): only this machine can reach it, on loopback")
	}
	return func() { cancel(); <-done }, nil
}
