package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/cliflag"
	"github.com/orderworker/orderworker/internal/devmode"
	"github.com/orderworker/orderworker/internal/logmask"
	"github.com/orderworker/orderworker/internal/losswatch"
	"github.com/orderworker/orderworker/internal/redisrisk"
	"github.com/orderworker/orderworker/internal/settings"
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/api"
	ledgerpkg "github.com/orderworker/orderworker/tasks/ledger"
)

// serve runs the HTTP API for producers (package api) until ctx ends.
func serve(ctx context.Context, args []string, redisOpt asynq.RedisConnOpt, queue string, timeout time.Duration, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("enqueue serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := cmp.Or(getenv(settings.APIAddr.Name), settings.APIAddr.Default)
	fs.StringVar(&addr, "addr", addr, "listen address (ORDERWORKER_API_ADDR)")
	open := fs.Bool("open", false, "allow running without ORDERWORKER_API_TOKENS: anyone who reaches the address may enqueue and read orders")
	maxWait := fs.Duration("max-wait", api.DefaultMaxWait, "longest ?wait= long poll")
	maxBytes := fs.Int64("max-batch-bytes", api.DefaultMaxBatchBytes, "largest batch body, in bytes")
	maxOrders := fs.Int("max-batch-orders", api.DefaultMaxBatchOrders, "most orders in one batch")
	logFormat := fs.String("log-format", cmp.Or(getenv("ORDERWORKER_LOG_FORMAT"), "text"), "text or json (ORDERWORKER_LOG_FORMAT)")
	logLevel := fs.String("log-level", cmp.Or(getenv("ORDERWORKER_LOG_LEVEL"), "info"), "debug, info, warn or error (ORDERWORKER_LOG_LEVEL)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: enqueue [flags] serve [serve flags]

Serves the HTTP API for producers until SIGINT or SIGTERM. These carry
Authorization: Bearer TOKEN, one of ORDERWORKER_API_TOKENS (comma-separated;
without any, serve refuses to start unless -open): POST /v1/orders,
POST /v1/orders/batch, GET /v1/orders/{provider}/{order_no}[?wait=30s],
GET /v1/events?after=ID&limit=N. These need no token: GET /v1/openapi.json,
GET /healthz (200 while serve runs) and GET /readyz (200 while an order sent
now would be taken, else 503 with the reason in short).

Serve flags:
`)
		fs.PrintDefaults()
	}
	if err := cliflag.Parse(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitError
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "enqueue serve: unexpected arguments:", fs.Args())
		return exitError
	}
	switch {
	case *maxWait <= 0:
		fmt.Fprintf(stderr, "enqueue serve: -max-wait %s: want a positive duration\n", *maxWait)
		return exitError
	case *maxBytes <= 0:
		fmt.Fprintf(stderr, "enqueue serve: -max-batch-bytes %d: want a positive number of bytes\n", *maxBytes)
		return exitError
	case *maxOrders <= 0:
		fmt.Fprintf(stderr, "enqueue serve: -max-batch-orders %d: want a positive number\n", *maxOrders)
		return exitError
	}
	// An error names the flag when the command line gave it, else the
	// variable that set the value.
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	setting := func(flag, env, value string) string {
		switch {
		case given[flag]:
			return fmt.Sprintf("-%s %q", flag, value)
		case getenv(env) != "":
			return fmt.Sprintf("%s=%q", env, value)
		}
		return fmt.Sprintf("%s (unset: the default %q)", env, value)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "enqueue serve: %s: want debug, info, warn or error\n", setting("log-level", "ORDERWORKER_LOG_LEVEL", *logLevel))
		return exitError
	}
	if *logFormat != "text" && *logFormat != "json" {
		fmt.Fprintf(stderr, "enqueue serve: %s: want text or json\n", setting("log-format", "ORDERWORKER_LOG_FORMAT", *logFormat))
		return exitError
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		fmt.Fprintf(stderr, "enqueue serve: %s: want host:port or :port, like :8080: %v\n", setting("addr", settings.APIAddr.Name, addr), err)
		return exitError
	}
	// Refused before anything else touches Redis (the flags are checked
	// first, so that -h and a bad flag need no Redis).
	if err := checkNotDevRedis(ctx, redisOpt.MakeRedisClient().(redis.UniversalClient), true, timeout); err != nil {
		fmt.Fprintln(stderr, "enqueue serve:", err)
		return exitError
	}
	// Every string logged passes the phone-number mask, as the worker's,
	// and durations are written as "25s" (logmask).
	log := logmask.New(stderr, level, *logFormat == "text")
	if redisLogInServe {
		logRedis(log)
	}
	for _, m := range settings.UnknownHere() {
		log.Warn("environment variable not read by orderworker", m.Args()...)
	}
	// Which Redis, before anything waits for it: one left on the default
	// by a mistyped REDIS_URL says so.
	if n := redisNameOf(redisOpt); n.url != "" {
		log.Info("using redis", "redis", n.url, "redis_setting", n.setting)
	}
	tokens := api.ParseTokens(getenv("ORDERWORKER_API_TOKENS"))
	if len(tokens) == 0 && !*open {
		fmt.Fprintln(stderr, "enqueue serve: no API token: set ORDERWORKER_API_TOKENS (comma-separated), or give -open to serve without one (anyone who reaches the address may then enqueue orders)")
		return exitError
	}
	sealer, err := dataKey(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "enqueue serve:", err)
		return exitError
	}
	set := validators()
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	rdb := redisOpt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	ledger, err := newLedger(rdb, getenv, timeout)
	if err != nil {
		fmt.Fprintln(stderr, "enqueue serve:", err)
		return exitError
	}
	enq := tasks.NewEnqueuer(client, ledger, set, &tasks.EnqueuerOptions{Queue: queue, Sealer: sealer})
	// The long polls' listeners block on a connection per shard: a pool
	// of their own, so that they never take the ones orders need.
	listen := withPoolSize(redisOpt, len(ledger.EventStreams())+1).MakeRedisClient().(redis.UniversalClient)
	defer listen.Close()
	h, err := api.New(enq, ledger, rdb, set, &api.Options{
		Tokens: tokens, Open: *open, Sealer: sealer, MaxWait: *maxWait,
		MaxBatchBytes: *maxBytes, MaxBatchOrders: *maxOrders, Timeout: timeout, Listen: listen, Logger: log,
	})
	if err != nil {
		fmt.Fprintln(stderr, "enqueue serve:", err)
		return exitError
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "enqueue serve: %s: %v\n", setting("addr", settings.APIAddr.Name, addr), err)
		return exitError
	}
	c, cancel := context.WithTimeout(ctx, 2*time.Second)
	if err := rdb.Ping(c).Err(); tasks.PermanentRedisError(err) && !redis.IsPermissionError(err) {
		// Refused for good (a wrong password, an unknown master, a
		// certificate that does not verify): no wait heals it, and
		// producers told "503, send it again" would retry for ever.
		cancel()
		ln.Close()
		fmt.Fprintf(stderr, "enqueue serve: cannot use Redis: %s\n", strings.TrimSuffix(providers.MaskPhones(tasks.RedisErrorReason(err).Error()), "."))
		return exitError
	} else if err != nil {
		// Serve anyway: requests answer 503 until Redis is back.
		log.Warn("redis unreachable; requests answer 503 until it answers", "error", tasks.RedisErrorReason(err))
	} else if err := ledger.CheckShards(c); errors.As(err, new(*ledgerpkg.ShardsMismatchError)) || errors.As(err, new(*ledgerpkg.FormatError)) {
		cancel()
		ln.Close()
		fmt.Fprintln(stderr, "enqueue serve:", err)
		return exitError
	} else if err := checkDataKey(c, enq, 2*time.Second); err != nil {
		// Every order would be refused: say so now.
		cancel()
		ln.Close()
		fmt.Fprintln(stderr, "enqueue serve:", err)
		return exitError
	} else if errors.Is(enq.CheckCompare(c), tasks.ErrNoKeyToCompare) {
		// Supported (it takes new orders, in clear), but a resend of an
		// order a keyed producer sealed is answered 503 here.
		log.Warn("this server has no ORDERWORKER_DATA_KEY while the ledger's workers have one: it takes new orders with their params in clear, and answers a resend of an order sealed by another producer 503; give it the producers' key")
	}
	cancel()
	// The Redis settings that can lose orders this server answers
	// enqueued (an eviction policy, persistence, replicas its writes do
	// not wait for), as the workers check them: logged at start and when
	// they change (a failover promotes a replica configured otherwise).
	risks := redisRisks(rdb, getenv, log)
	risks.Check(ctx)
	// The ledger's epochs, read before the first order and every 10 s
	// after, as the workers read them: a loss of Redis's data while this
	// server runs (Redis restarted empty while every worker was down, say)
	// is recorded in the ledger, so that whichever worker runs the orders
	// producers send again looks each up at the provider before creating
	// it, rather than create twice what was made before the loss.
	losses := losswatch.New(ledger, nil, log)
	c, cancel = context.WithTimeout(ctx, 2*time.Second) // a Redis down at start is read again in 10 s
	losses.Check(c)
	cancel()
	if len(tokens) == 0 {
		log.Warn("the API is open: no token is needed (-open)")
	}
	log.Info("api listening", "addr", ln.Addr().String(), "tokens", len(tokens))
	// A Redis that worker -dev empties and marks meanwhile is refused as
	// at start: the orders accepted there would be paid by its sandboxes,
	// never created (devmode.Watch).
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	go risks.Watch(runCtx, riskEvery)
	go losses.Run(runCtx, losswatch.Every)
	go func() {
		if err := devmode.Watch(runCtx, rdb, false); err != nil {
			log.Error(err.Error())
			stopRun(err)
		}
	}()
	// Every second, as the workers do: the master's replicas in sync
	// count toward the most it is held to even while no order comes in
	// (ledger.WatchReplicas).
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				c, cancel := context.WithTimeout(runCtx, time.Second)
				_ = ledger.WatchReplicas(c)
				cancel()
			}
		}
	}()
	if err := api.Serve(runCtx, ln, h); err != nil {
		fmt.Fprintln(stderr, "enqueue serve:", err)
		return exitError
	}
	if cause := context.Cause(runCtx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		fmt.Fprintln(stderr, "enqueue serve:", cause)
		return exitError
	}
	log.Info("api stopped")
	return exitOK
}

// riskEvery is how often the server reads the Redis masters' settings
// again (redisRisks).
var riskEvery = time.Minute

// redisRisks watches the settings of the Redis masters rdb writes to that
// can lose orders (redisrisk), with this server's durable-writes settings
// (already checked by newLedger).
func redisRisks(rdb redis.UniversalClient, getenv func(string) string, log *slog.Logger) *redisrisk.Watcher {
	d, minReplicas, _ := ledgerpkg.ParseDurable(getenv("ORDERWORKER_DURABLE_WRITES"), getenv("ORDERWORKER_MIN_REPLICAS"))
	_, cluster := rdb.(*redis.ClusterClient)
	return redisrisk.New(rdb, redisrisk.Options{Replicated: d == ledgerpkg.DurableAuto, Persistence: true,
		Unheld: redisrisk.UnheldBy(d, minReplicas, cluster), Who: "server", Cluster: cluster, ClusterFloor: minReplicas}, log)
}
