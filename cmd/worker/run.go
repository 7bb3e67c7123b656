package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/devmode"
	"github.com/orderworker/orderworker/internal/logmask"
	"github.com/orderworker/orderworker/internal/losswatch"
	"github.com/orderworker/orderworker/internal/redisrisk"
	"github.com/orderworker/orderworker/internal/settings"
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/guard"
	ledgerpkg "github.com/orderworker/orderworker/tasks/ledger"
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	logmask.SetRedisLogger(log)
	for _, m := range settings.UnknownHere() {
		// Only the name: a value may be a secret.
		log.Warn("environment variable not read by orderworker", m.Args()...)
	}
	if cfg.Dev {
		dev, err := startDev(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer dev.Close()
	}
	redisOpt, err := tasks.ParseRedisURL(cfg.RedisURL)
	if err != nil {
		if cfg.flags["redis-url"] {
			return fmt.Errorf("-redis-url: %w", err)
		}
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	redisOpt = tasks.RESP2(redisOpt)
	rdb := ledgerClient(redisOpt)
	defer rdb.Close()

	var sealer *tasks.Sealer
	if cfg.DataKey != "" {
		if sealer, err = tasks.NewSealer(cfg.DataKey.Reveal()); err != nil {
			return fmt.Errorf("ORDERWORKER_DATA_KEY: %w", err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	failures := cfg.BreakerFailures
	if failures == 0 {
		failures = -1 // guard: negative turns breakers off
	}
	names := make([]string, 0, len(cfg.Providers))
	for _, pc := range cfg.Providers {
		names = append(names, pc.Spec.Name)
	}
	// The guard's limits hold each provider's HTTP requests (its
	// transport), its breakers each order's provider operations (the
	// handler).
	g := guard.New(rdb, &guard.Options{
		Limits: cfg.RateLimits, FailureThreshold: failures, Cooldown: cfg.BreakerCooldown,
		Providers: names, Registerer: reg, Logger: log,
	})
	set, err := buildProviders(cfg, rdb, log, func(provider string) http.RoundTripper {
		return g.Transport(provider, providers.NewTransport())
	})
	if err != nil {
		return err
	}
	metrics := tasks.NewMetrics(reg)
	metrics.Init(set.Names())
	problems := tasks.NewProblems()
	reg.MustRegister(problems)
	// How long a running worker takes to see a change of the ledger's data
	// key or format (its watch) and drain its orders.
	drainFor := dataKeyWatch + cfg.ShutdownTimeout + 5*time.Second
	lopts := ledgerpkg.Options{Durable: cfg.Durable, MinReplicas: cfg.MinReplicas, Shards: cfg.Shards, Providers: names,
		RivalSecret: sealer.RivalSecret(), KeylessDrain: drainFor, FormatDrain: drainFor,
		OnClockStep: newClockSteps(reg, log).found}
	ledger := ledgerpkg.New(rdb, &lopts)
	reg.MustRegister(tasks.NewLedgerCollector(ledger, set.Names()))
	inspector := asynq.NewInspector(redisOpt)
	defer inspector.Close()
	reg.MustRegister(tasks.NewQueueCollector(inspector, tasks.ServedQueues(cfg.Queue, cfg.Shards)))
	metrics.InitQueues(tasks.ServedQueues(cfg.Queue, cfg.Shards))

	backoff := tasks.Backoff{Base: cfg.RetryBase, Max: cfg.RetryMax}
	handler := tasks.NewHandler(ledger, set, &tasks.HandlerOptions{
		MaxAttempts:   cfg.MaxAttempts,
		Backoff:       backoff,
		Deadline:      cfg.OrderDeadline,
		Deadlines:     cfg.Deadlines,
		PendingWindow: cfg.PendingWindow,
		ListingLag:    listingLag(cfg.ListingLag),
		SameTargets:   cfg.SameTargets,
		Guard:         g,
		Sealer:        sealer,
		Metrics:       metrics,
		Problems:      problems,
		Logger:        log,
		BeforeRecord:  devRecordCheck(cfg.Dev, rdb),
	})
	srv, mux := tasks.NewServer(redisOpt, handler, tasks.ServerOptions{
		Queue:             cfg.Queue,
		Concurrency:       cfg.Concurrency,
		Dequeuers:         cfg.Dequeuers,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		TaskCheckInterval: cfg.PollInterval,
		Backoff:           backoff,
		Logger:            log,
	})

	mon := newMonitoring(redisOpt, cfg.MonitoringReadOnly, set)
	defer mon.Close()
	var started atomic.Bool
	ready := readinessCheck(started.Load, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return ledger.CheckWritable(ctx)
	}, problems, srv.Ping, names, log)
	ln, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil && cfg.Dev {
		// -dev must run anywhere: take any free port rather than fail
		// ("admin server listening" below names it).
		log.Warn("dev: admin address in use; using a free port", "wanted", cfg.AdminAddr)
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		if cfg.Dev && !cfg.flags["admin-addr"] {
			return fmt.Errorf("-dev's admin address: %w", err)
		}
		return fmt.Errorf("admin address %s: %w", cfg.setting("admin-addr", "ORDERWORKER_ADMIN_ADDR", cfg.AdminAddr), err)
	}
	orders := newOrdersAdmin(ordersConfig{Ledger: ledger, Inspector: inspector, RedisOpt: redisOpt, Set: set, Sealer: sealer,
		Queue: cfg.Queue, ReadOnly: cfg.MonitoringReadOnly, Token: cfg.MonitoringToken, Registerer: reg, Logger: log,
		ListingLag: listingLag(cfg.ListingLag), Secrets: settings.SecretValues(getenv)})
	defer orders.Close()
	admin := &http.Server{Handler: adminHandler(reg, ready, mon, orders, cfg.MonitoringToken), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", "error", err)
		}
	}()
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = admin.Shutdown(c)
	}()
	log.Info("admin server listening", "addr", ln.Addr().String())
	if openAdmin(ln.Addr(), cfg.MonitoringToken) {
		log.Warn("the dashboard and the orders API (/monitoring/, /orders/, /api/orders) answer anyone who reaches the admin address: set ORDERWORKER_MONITORING_TOKEN, or listen on loopback (ORDERWORKER_ADMIN_ADDR=127.0.0.1:9090) behind a proxy that authenticates",
			"addr", ln.Addr().String())
	}

	// Which Redis, before it is waited for: a worker left on the default
	// by a mistyped REDIS_URL says so.
	log.Info("using redis", "redis", tasks.RedactURL(cfg.RedisURL), "redis_setting", cfg.redisSource())
	// A wait for Redis names it too: the dial error alone names an
	// address, not the setting that chose it.
	rlog := log.With("redis", tasks.RedactURL(cfg.RedisURL), "redis_setting", cfg.redisSource())
	if err := waitForRedis(ctx, rdb, rlog, cfg.redisWhere()); err != nil {
		return stoppedAtStart(ctx, cfg, log, err)
	}
	if !cfg.Dev {
		// A Redis marked as -dev's holds sandbox orders: a real worker
		// would send them to the real providers (and pay them). Asked
		// first, before the checks below write to it or name another
		// cause (its data key is -dev's).
		// A failed read is waited out like the writes below, never
		// taken for "not marked".
		if err := untilWritable(ctx, rlog, func() error {
			marked, err := devmode.Marked(ctx, rdb)
			if err == nil && marked {
				return fmt.Errorf("the Redis at REDIS_URL holds the %s marker: it holds worker -dev's sandbox orders, which a real worker would send to the real providers; point REDIS_URL at your own Redis (or delete the marker if this Redis was marked by mistake and holds only real orders)", devMarkerKey)
			}
			return err
		}); err != nil {
			return stoppedAtStart(ctx, cfg, log, err)
		}
	}
	if err := untilWritable(ctx, rlog, func() error { return ledger.CheckDataKey(ctx, sealer.KeyID()) }); err != nil {
		if ctx.Err() != nil {
			return stoppedAtStart(ctx, cfg, log, err)
		}
		// Orders sealed with the producers' key would only wait on this
		// worker (with another key, or none): refuse to start instead,
		// with the reason.
		return fmt.Errorf("ORDERWORKER_DATA_KEY: %w", err)
	}
	if sealer != nil {
		// Turning sealing on: workers that ran without a key may still
		// run (each stops once it sees the key: below). Their lookups
		// would not count the rivals this one marks under its keyed
		// hash, so no order is taken until they are gone.
		if d, err := ledger.KeylessDrain(ctx); err == nil && d > 0 {
			log.Warn("this ledger's workers ran without ORDERWORKER_DATA_KEY until now: waiting for them to stop before taking orders", "wait", d.Round(time.Second))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(d):
			}
		}
	}
	if err := untilWritable(ctx, rlog, func() error { return ledger.CheckShards(ctx) }); err != nil {
		return stoppedAtStart(ctx, cfg, log, err)
	}
	// This version's format recorded over an earlier one's: workers of
	// that version may still run (each stops once it sees it: below), and
	// would misread what this one writes, so no order is taken until they
	// are gone.
	var drain time.Duration
	if err := untilWritable(ctx, rlog, func() (err error) { drain, err = ledger.FormatDrain(ctx); return err }); err != nil {
		return stoppedAtStart(ctx, cfg, log, err)
	}
	if drain > 0 {
		log.Warn("this ledger was written by an earlier orderworker version until now: waiting for its workers to stop before taking orders", "wait", drain.Round(time.Second))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(drain):
		}
		// A still later version may have written it meanwhile.
		if err := untilWritable(ctx, rlog, func() error { _, err := ledger.Watched(ctx); return err }); err != nil {
			return stoppedAtStart(ctx, cfg, log, err)
		}
	}
	// Checked at start and every minute after (a failover promotes a
	// replica configured otherwise); -dev's embedded Redis keeps nothing
	// on purpose.
	_, cluster := rdb.(*redis.ClusterClient)
	risks := redisrisk.New(rdb, redisrisk.Options{Replicated: cfg.Durable == ledgerpkg.DurableAuto, Persistence: !cfg.Dev,
		Unheld: redisrisk.UnheldBy(cfg.Durable, cfg.MinReplicas, cluster), Who: "worker", Cluster: cluster, ClusterFloor: cfg.MinReplicas}, log)
	risks.Check(ctx)
	reg.MustRegister(risks)
	if cc, ok := rdb.(*redis.ClusterClient); ok && ledger.Shards() == 1 {
		var masters atomic.Int64 // the callbacks run at once
		_ = cc.ForEachMaster(ctx, func(context.Context, *redis.Client) error { masters.Add(1); return nil })
		if masters.Load() > 1 {
			log.Warn("the ledger and the queue are in one hash slot, so one master of the cluster serves them all: set ORDERWORKER_LEDGER_SHARDS on every worker and producer before the first order (see the README's Redis Cluster)",
				"masters", masters.Load())
		}
	}
	// The -dev marker is watched while the worker runs, not only at start
	// (devmode.Watch): a real worker stops when its Redis gets it, a -dev
	// worker when its Redis loses it. Everything it runs beside the asynq
	// servers (webhooks, reconciler, -dev's API and demo) stops with it.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	go risks.Watch(runCtx, riskEvery)
	// Read before the first order, so that a loss of Redis's data from
	// now on is noticed at the next order's first create.
	losses := losswatch.New(ledger, reg, log)
	losses.Check(ctx)
	go losses.Run(runCtx, losswatch.Every)
	// Every second: the master's replicas in sync count toward the most
	// it is held to even while no write reaches them (a replica seen only
	// by an idle worker, then stopped, could be promoted without what the
	// master took after).
	go every(runCtx, time.Second, func(c context.Context) {
		c, cancel := context.WithTimeout(c, time.Second)
		defer cancel()
		_ = ledger.WatchReplicas(c) // a failed read is a write's error too
	})
	// And at the end: a loss an order's create noticed since the last
	// reading is logged before the worker stops.
	defer losses.Check(context.WithoutCancel(ctx))
	// A data key recorded for the ledger that this worker does not have
	// (it ran without one, and the workers are being given it), or a
	// later version's format: it stops, as it would refuse to start.
	go every(runCtx, dataKeyWatch, func(c context.Context) {
		id, err := ledger.Watched(c)
		if f := new(ledgerpkg.FormatError); errors.As(err, &f) {
			err := fmt.Errorf("%w; stopping", err)
			log.Error(err.Error())
			stopRun(err)
		} else if err == nil && id != "" && id != sealer.KeyID() {
			err := fmt.Errorf("ORDERWORKER_DATA_KEY: %w; stopping", &ledgerpkg.DataKeyMismatchError{Want: id, Have: sealer.KeyID()})
			log.Error(err.Error())
			stopRun(err)
		}
	})
	go func() {
		if err := devmode.Watch(runCtx, rdb, cfg.Dev); err != nil {
			log.Error(err.Error())
			stopRun(err)
		}
	}()
	// The webhooks' consumer groups are set up before the first order is
	// taken, so that a new endpoint misses none of its events.
	stopWebhooks, err := startWebhooks(runCtx, cfg, redisOpt, ledger.EventStreams(), lopts, reg, log)
	if err != nil {
		return err
	}
	defer stopWebhooks()
	if cfg.Dev {
		// -dev checks its marker before every order too, not only every
		// second: an order written into its Redis just after a flush (the
		// marker gone) may be a real one, which the sandboxes would pay.
		mux.Use(devOnly(rdb))
	}
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	started.Store(true)
	enabled := []string{}
	for _, p := range set.Enabled() {
		enabled = append(enabled, p.Name())
	}
	// providers: those orders are submitted to; the others were each
	// logged as disabled, with the reason.
	log.Info("worker started", "queue", cfg.Queue, "concurrency", cfg.Concurrency, "providers", enabled,
		"redis", tasks.RedactURL(cfg.RedisURL), "redis_setting", cfg.redisSource())

	client := asynq.NewClient(redisOpt)
	defer client.Close()
	rec := tasks.NewReconciler(ledger, inspector, client, set.Names(), &tasks.ReconcilerOptions{
		Queue: cfg.Queue, Interval: cfg.ReconcileEvery, Registerer: reg, Logger: log,
	})
	recCtx, stopRec := context.WithCancel(runCtx)
	defer stopRec()
	go rec.Run(recCtx)

	if cfg.Dev {
		stopAPI, err := serveDevAPI(runCtx, cfg, client, ledger, rdb, set, sealer, log)
		if err != nil {
			return err
		}
		defer stopAPI()
	}

	var runErr error
	if cfg.Demo {
		runErr = runDemo(runCtx, redisOpt, cfg.Queue, ledger, set, sealer, stdout, log)
	} else {
		<-runCtx.Done()
	}
	if cause := context.Cause(runCtx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		runErr = cause
	}
	log.Info("shutting down; letting in-flight attempts finish", "timeout", cfg.ShutdownTimeout)
	srv.Shutdown()
	log.Info("worker stopped")
	return runErr
}

// stoppedAtStart is what a start-up wait that ended returns: nothing when
// the worker was told to stop (SIGINT, SIGTERM) meanwhile, as a stop once
// running is (a black-box run: a worker stopped while it waited for its
// Redis exited 1, "context canceled", a failure to a supervisor); else
// err. -demo, whose exit says whether its orders were paid, says it was
// interrupted before it sent any.
func stoppedAtStart(ctx context.Context, cfg *config, log *slog.Logger, err error) error {
	if ctx.Err() == nil {
		return err
	}
	if cfg.Demo {
		return errors.New("interrupted before any demo order was sent")
	}
	log.Info("worker stopped before taking orders")
	return nil
}

// waitForRedis blocks until Redis answers or ctx ends: a worker started
// before Redis waits for it instead of failing. An error that waiting
// cannot heal (wrong credentials, no such database or master name, see
// tasks.PermanentRedisError) is returned at once, with the reason and
// where, the Redis's redacted URL and its setting (config.redisWhere).
func waitForRedis(ctx context.Context, rdb redis.UniversalClient, log *slog.Logger, where string) error {
	for d := 100 * time.Millisecond; ; d = min(2*d, 5*time.Second) {
		err := ping(ctx, rdb, 2*time.Second)
		if err == nil {
			return notAClusterNode(ctx, rdb)
		}
		if tasks.PermanentRedisError(err) {
			return fmt.Errorf("cannot use redis %s: %w", where, tasks.RedisErrorReason(err))
		}
		log.Warn("waiting for redis", "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

// dataKeyWatch is how often a running worker reads the data key recorded
// for its ledger.
const dataKeyWatch = 10 * time.Second

// untilWritable runs check, a first write to a new ledger (its data key,
// its shard count), until Redis takes it: a master that refuses writes
// for now (NOREPLICAS while its replicas resync, LOADING, READONLY in a
// failover) or cannot be reached is waited for, as at start. A refusal
// by the ledger itself (another data key, another shard count) or a
// permanent Redis error is returned.
func untilWritable(ctx context.Context, log *slog.Logger, check func() error) error {
	for d := 100 * time.Millisecond; ; d = min(2*d, 5*time.Second) {
		err := check()
		if err == nil || !passing(err) || ctx.Err() != nil {
			return err
		}
		log.Warn("waiting for redis to take writes", "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

// passing reports whether err, a start-up write's, is one to wait out: a
// master that refuses writes for now (NOREPLICAS, READONLY or MASTERDOWN
// in a failover, LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, OOM, MISCONF, too
// many clients) or a server not reached. Anything else (the ledger's own refusal, a script error, a
// proxy that lacks a command, a permanent Redis error) ends the start
// with its reason.
func passing(err error) bool {
	var keys *ledgerpkg.DataKeyMismatchError
	var shards *ledgerpkg.ShardsMismatchError
	var format *ledgerpkg.FormatError
	if errors.As(err, &keys) || errors.As(err, &shards) || errors.As(err, &format) || tasks.PermanentRedisError(err) {
		return false
	}
	msg := err.Error()
	for _, prefix := range []string{"NOREPLICAS", "READONLY", "MASTERDOWN", "LOADING", "BUSY ", "TRYAGAIN", "CLUSTERDOWN",
		"OOM", "MISCONF", "ERR max number of clients"} {
		// Also as a script's error quotes it (Redis 6: "ERR Error
		// running script … -READONLY …").
		if redis.HasErrorPrefix(err, prefix) || strings.Contains(msg, "-"+prefix) {
			return true
		}
	}
	var re redis.Error
	if errors.As(err, &re) {
		return false // another reply from a server that answers
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted)
}

// notAClusterNode refuses a plain redis:// URL that names a node of a Redis
// Cluster: it would half work (MOVED on every key of another node's slots).
func notAClusterNode(ctx context.Context, rdb redis.UniversalClient) error {
	if _, ok := rdb.(*redis.ClusterClient); ok {
		return nil
	}
	c, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := rdb.Info(c, "cluster").Result()
	if err == nil && strings.Contains(info, "cluster_enabled:1") {
		return errors.New("cannot use redis: REDIS_URL names one node of a Redis Cluster; give every node as redis-cluster://host:port,host:port")
	}
	return nil
}

// runDemo enqueues one sample order per provider (numbered for this run),
// waits for each to reach an outcome and prints its record, one JSON line
// each. It fails if any order does not end paid.
func runDemo(ctx context.Context, redisOpt asynq.RedisConnOpt, queue string, ledger *tasks.Ledger, set *providers.Set, sealer *tasks.Sealer, stdout io.Writer, log *slog.Logger) error {
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	enq := tasks.NewEnqueuer(client, ledger, set, &tasks.EnqueuerOptions{Queue: queue, Sealer: sealer, Dev: true}) // -demo needs -dev
	suffix := time.Now().UTC().Format("20060102T150405")
	var refs []tasks.OrderRef
	for _, p := range demoPayloads(suffix) {
		res, err := enq.EnqueuePayload(ctx, p)
		if err != nil {
			return err
		}
		if res.Status != tasks.Enqueued {
			return fmt.Errorf("demo order %s/%s: %s %s", p.Provider, p.OrderNo, res.Status, res.Reason)
		}
		log.Info("demo order enqueued", "provider", p.Provider, "order_no", p.OrderNo)
		refs = append(refs, tasks.OrderRef{Provider: p.Provider, OrderNo: p.OrderNo})
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return printOutcomes(ctx, ledger, refs, set, sealer, stdout)
}

// printOutcomes waits for each order's outcome and prints its record as a
// JSON line, params masked. Interrupted, or out of time, it still prints
// the records of the orders that did end, and names every one that did
// not (a black-box run: Ctrl-C while one order was pending printed none of
// the orders paid after it in the list, and named that one alone).
func printOutcomes(ctx context.Context, ledger *tasks.Ledger, refs []tasks.OrderRef, set *providers.Set, sealer *tasks.Sealer, stdout io.Writer) error {
	var failed []string
	enc := json.NewEncoder(stdout)
	show := func(ref tasks.OrderRef, rec *tasks.Record) error {
		if rec.State != tasks.StatePaid {
			failed = append(failed, ref.Provider+"/"+ref.OrderNo+": "+string(rec.State))
		}
		if clear, err := sealer.Open(rec.Params); err == nil {
			rec.Params = providers.MaskParams(clear, set.Masked(ref.Provider))
		}
		return enc.Encode(rec)
	}
	for i, ref := range refs {
		rec, err := waitOutcome(ctx, ledger, ref)
		if err == nil {
			if err := show(ref, rec); err != nil {
				return err
			}
			continue
		}
		if ctx.Err() == nil {
			return err
		}
		// The rest are read once more, on a context of their own: those
		// that ended are printed, the others named.
		rc, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var open []string
		for _, r := range refs[i:] {
			rec, err := ledger.Get(rc, r)
			if err == nil && rec != nil && rec.State.Terminal() {
				if err := show(r, rec); err != nil {
					return err
				}
				continue
			}
			state := "no record"
			switch {
			case err != nil:
				state = "unread: " + err.Error()
			case rec != nil:
				state = string(rec.State)
			}
			open = append(open, r.Provider+"/"+r.OrderNo+" ("+state+")")
		}
		if len(open) == 0 {
			break // every one ended after all
		}
		how := "interrupted while orders were under way"
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			how = "no outcome in time"
		}
		if len(failed) > 0 {
			return fmt.Errorf("%s: %s; and did not end paid: %s", how, strings.Join(open, ", "), strings.Join(failed, ", "))
		}
		return fmt.Errorf("%s: %s", how, strings.Join(open, ", "))
	}
	if len(failed) > 0 {
		return fmt.Errorf("demo orders did not end paid: %v", failed)
	}
	return nil
}

// waitOutcome polls the ledger until the order is paid or errored.
func waitOutcome(ctx context.Context, ledger *tasks.Ledger, ref tasks.OrderRef) (*tasks.Record, error) {
	for {
		rec, err := ledger.Get(ctx, ref)
		if err == nil && rec != nil && rec.State.Terminal() {
			return rec, nil
		}
		select {
		case <-ctx.Done():
			state := "no record"
			if rec != nil {
				state = string(rec.State)
			}
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("interrupted while order %s/%s was %s", ref.Provider, ref.OrderNo, state)
			}
			return nil, fmt.Errorf("order %s/%s: no outcome in time (state %s)", ref.Provider, ref.OrderNo, state)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// listingLag is ORDERWORKER_LISTING_LAG as HandlerOptions takes it: 0 (a
// not-found believed at once) is negative there.
func listingLag(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
