package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderworker/orderworker/internal/cliflag"
	"github.com/orderworker/orderworker/internal/devmode"
	"github.com/orderworker/orderworker/internal/settings"
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/registry"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/guard"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/webhook"
)

// config is everything the worker reads from its environment and flags.
// Flags override the environment.
type config struct {
	Dev  bool
	Demo bool
	// DevRedis is -dev-redis: the Redis -dev uses instead of an embedded
	// one, refused when it holds data -dev did not write.
	DevRedis string

	RedisURL        string
	AdminAddr       string
	Queue           string
	Concurrency     int
	Dequeuers       int // 0: tasks.Dequeuers(Concurrency)
	MaxAttempts     int
	RetryBase       time.Duration
	RetryMax        time.Duration
	OrderDeadline   time.Duration
	Deadlines       map[string]time.Duration
	PendingWindow   time.Duration
	ListingLag      time.Duration // 0: a lookup's not-found is believed at once (but for a provider's create overrun)
	SameTargets     []string      // ORDERWORKER_SAME_TARGETS
	ShutdownTimeout time.Duration
	ReconcileEvery  time.Duration
	PollInterval    time.Duration
	Durable         ledger.Durability
	MinReplicas     int64
	Shards          int
	RateLimits      map[string]guard.Limit
	BreakerFailures int
	BreakerCooldown time.Duration
	LogLevel        string
	LogFormat       string

	DataKey            providers.Secret
	MonitoringToken    providers.Secret
	MonitoringReadOnly bool

	// Webhooks: the URLs outcome events are POSTed to, the secret they
	// are signed with, and how they are retried.
	WebhookURLs      []string
	WebhookSecret    providers.Secret
	WebhookMaxAge    time.Duration
	WebhookRetryBase time.Duration
	WebhookRetryMax  time.Duration
	WebhookTimeout   time.Duration
	// WebhookConcurrency is the deliveries in flight per endpoint.
	WebhookConcurrency int
	// APITokens: the tokens of the producers' HTTP API that -dev serves
	// (on devmode.APIAddr).
	APITokens providers.Secret
	// realAPIAddr is ORDERWORKER_API_ADDR, the real API's (enqueue
	// serve's) address, which -dev's own API never takes.
	realAPIAddr string
	// flags are the flags given on the command line and envSet the
	// variables set in the environment, by name: an error about a setting
	// names the flag when the flag set it, else the variable (setting).
	flags  map[string]bool
	envSet map[string]bool
	// DevIgnored names the variables set in the environment that -dev does
	// not read (every provider's settings: -dev reads its sandboxes';
	// REDIS_URL, ORDERWORKER_ADMIN_ADDR and ORDERWORKER_API_ADDR, whose
	// addresses -dev never uses), in worker -h's order
	// (ORDERWORKER_API_ADDR last).
	DevIgnored []string

	// Providers are every provider the registry lists, each with its
	// settings.
	Providers []providerConfig
}

// providerConfig is one provider and the settings it read.
type providerConfig struct {
	Spec   providers.Spec
	Config providers.Config
}

// envVars lists every variable the worker reads: its own, then each
// provider's settings, in the registry's order. The README's table is
// this list.
func envVars() []settings.Var { return settings.Worker() }

// setting names a setting for an error: the flag ("-log-format \"xml\"")
// when the command line gave it, else the variable
// ("ORDERWORKER_LOG_FORMAT=\"xml\"", or "... (unset: the default \":9090\")"
// when the environment does not set it).
func (c *config) setting(flag, env, value string) string {
	switch {
	case c.flags[flag]:
		return fmt.Sprintf("-%s %q", flag, value)
	case c.envSet[env]:
		return fmt.Sprintf("%s=%q", env, value)
	}
	return fmt.Sprintf("%s (unset: the default %q)", env, value)
}

// redisSource names where the worker's Redis URL comes from, for its log
// and for an error about that Redis: the flag, the variable, -dev's, or
// the default when neither -redis-url nor REDIS_URL is set (a mistyped
// REDIS_URL leaves the worker on 127.0.0.1:6379, which its log must say).
func (c *config) redisSource() string {
	switch {
	case c.Dev && c.DevRedis != "":
		return "-dev-redis"
	case c.Dev:
		return "-dev's embedded Redis"
	case c.flags["redis-url"]:
		return "-redis-url"
	case c.envSet["REDIS_URL"]:
		return "REDIS_URL"
	}
	return "the default: REDIS_URL is not set"
}

// redisWhere names the worker's Redis for an error: its URL with the
// password hidden, and where it comes from.
func (c *config) redisWhere() string {
	return fmt.Sprintf("%s (%s)", tasks.RedactURL(c.RedisURL), c.redisSource())
}

// maxWebhookConcurrency bounds ORDERWORKER_WEBHOOK_CONCURRENCY.
const maxWebhookConcurrency = 256

// parseConfig reads the environment through getenv, then flags from args.
func parseConfig(args []string, getenv func(string) string, stdout, stderr io.Writer) (*config, error) {
	vars := envVars()
	env := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		for _, e := range vars {
			if e.Name == name {
				return e.Default
			}
		}
		return ""
	}
	// A bad value is refused only once the flags are parsed, and only
	// when no flag overrides it (envErrs, by variable): worker -h must
	// print the help whatever the environment holds, and a flag must get
	// a worker past a bad variable, as flags override the environment.
	// Until then the setting holds its default, which -h shows.
	var errs []error
	envErrs := map[string]error{}
	def := func(name string) string {
		for _, e := range vars {
			if e.Name == name {
				return e.Default
			}
		}
		return ""
	}
	dur := func(name string) time.Duration {
		d, err := time.ParseDuration(env(name))
		if err != nil || d <= 0 {
			envErrs[name] = fmt.Errorf("%s=%q: want a positive duration like 30s", name, env(name))
			d, _ = time.ParseDuration(def(name))
		}
		return d
	}
	num := func(name string) int {
		n, err := strconv.Atoi(env(name))
		if err != nil || n <= 0 {
			envErrs[name] = fmt.Errorf("%s=%q: want a positive integer", name, env(name))
			n, _ = strconv.Atoi(def(name))
		}
		return n
	}
	auto := func(name string) int {
		if strings.EqualFold(env(name), "auto") {
			return 0
		}
		n, err := strconv.Atoi(env(name))
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want auto or a positive integer", name, env(name)))
		}
		return n
	}
	boolean := func(name string) bool {
		b, ok := providers.ParseBool(env(name))
		if !ok {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", name, env(name)))
		}
		return b
	}
	c := &config{
		RedisURL:           env("REDIS_URL"),
		AdminAddr:          env("ORDERWORKER_ADMIN_ADDR"),
		Queue:              env("ORDERWORKER_QUEUE"),
		Concurrency:        num("ORDERWORKER_CONCURRENCY"),
		Dequeuers:          auto("ORDERWORKER_DEQUEUERS"),
		MaxAttempts:        num("ORDERWORKER_MAX_ATTEMPTS"),
		RetryBase:          dur("ORDERWORKER_RETRY_BASE"),
		RetryMax:           dur("ORDERWORKER_RETRY_MAX"),
		OrderDeadline:      dur("ORDERWORKER_ORDER_DEADLINE"),
		PendingWindow:      dur("ORDERWORKER_PENDING_WINDOW"),
		ListingLag:         listingLagSetting(env("ORDERWORKER_LISTING_LAG"), &errs),
		ShutdownTimeout:    dur("ORDERWORKER_SHUTDOWN_TIMEOUT"),
		ReconcileEvery:     dur("ORDERWORKER_RECONCILE_INTERVAL"),
		PollInterval:       dur("ORDERWORKER_POLL_INTERVAL"),
		BreakerCooldown:    dur("ORDERWORKER_BREAKER_COOLDOWN"),
		LogLevel:           env("ORDERWORKER_LOG_LEVEL"),
		LogFormat:          env("ORDERWORKER_LOG_FORMAT"),
		DataKey:            providers.Secret(env("ORDERWORKER_DATA_KEY")),
		MonitoringToken:    providers.Secret(env("ORDERWORKER_MONITORING_TOKEN")),
		MonitoringReadOnly: boolean("ORDERWORKER_MONITORING_READONLY"),
		WebhookSecret:      providers.Secret(env("ORDERWORKER_WEBHOOK_SECRET")),
		WebhookMaxAge:      dur("ORDERWORKER_WEBHOOK_MAX_AGE"),
		WebhookRetryBase:   dur("ORDERWORKER_WEBHOOK_RETRY_BASE"),
		WebhookRetryMax:    dur("ORDERWORKER_WEBHOOK_RETRY_MAX"),
		WebhookTimeout:     dur("ORDERWORKER_WEBHOOK_TIMEOUT"),
		WebhookConcurrency: num("ORDERWORKER_WEBHOOK_CONCURRENCY"),
		APITokens:          providers.Secret(env("ORDERWORKER_API_TOKENS")),
	}
	if err := c.parseWebhooks(env("ORDERWORKER_WEBHOOK_URLS")); err != nil {
		errs = append(errs, err)
	}
	for _, f := range strings.FieldsFunc(env("ORDERWORKER_SAME_TARGETS"), func(r rune) bool { return r == ',' || r == ' ' }) {
		lf := strings.ToLower(f) // as reasons spell them; hex in either case is the same
		if !isFingerprint(lf) {
			errs = append(errs, fmt.Errorf("ORDERWORKER_SAME_TARGETS: %q is not a create-target fingerprint (16 hexadecimal digits, as the worker's log line names it for a held order)", f))
			continue
		}
		c.SameTargets = append(c.SameTargets, lf)
	}
	var names []string
	// What -dev does not read (the providers' settings, the webhook
	// secret) is refused only without -dev, once the flags say.
	var notDevErrs []error
	if c.WebhookSecret != "" {
		if _, err := webhook.NewSigner(c.WebhookSecret.Reveal()); err != nil {
			notDevErrs = append(notDevErrs, fmt.Errorf("ORDERWORKER_WEBHOOK_SECRET: %w", err))
		}
	}
	for _, s := range registry.All() {
		pc, err := s.ReadConfig(getenv)
		if err != nil {
			notDevErrs = append(notDevErrs, err)
		}
		c.Providers = append(c.Providers, providerConfig{Spec: s, Config: pc})
		names = append(names, s.Name)
	}
	if n, err := tasks.ParseShards(env("ORDERWORKER_LEDGER_SHARDS")); err != nil {
		errs = append(errs, err)
	} else {
		c.Shards = n
	}
	if d, n, err := ledger.ParseDurable(env("ORDERWORKER_DURABLE_WRITES"), env("ORDERWORKER_MIN_REPLICAS")); err != nil {
		errs = append(errs, err)
	} else {
		c.Durable, c.MinReplicas = d, n
	}
	if n, err := strconv.Atoi(env("ORDERWORKER_BREAKER_FAILURES")); err != nil || n < 0 {
		errs = append(errs, fmt.Errorf("ORDERWORKER_BREAKER_FAILURES=%q: want a number, 0 to turn breakers off", env("ORDERWORKER_BREAKER_FAILURES")))
	} else {
		c.BreakerFailures = n
	}
	deadlines, err := parseDeadlines(env("ORDERWORKER_ORDER_DEADLINES"), names)
	if err != nil {
		errs = append(errs, err)
	}
	c.Deadlines = deadlines
	limits, err := parseLimits(env("ORDERWORKER_RATE_LIMITS"), names)
	if err != nil {
		errs = append(errs, err)
	}
	c.RateLimits = limits

	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: worker [flags]\n\nProcesses orders until SIGINT or SIGTERM, then drains.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nEnvironment (flags override it):\n")
		// ORDERWORKER_API_ADDR too: -dev reads it, to keep clear of it.
		for _, e := range append(vars[:len(vars):len(vars)], settings.APIAddr) {
			def := e.Default
			if def == "" {
				def = "-"
			}
			fmt.Fprintf(fs.Output(), "  %-32s %s (default %s)\n", e.Name, e.Help, def)
		}
	}
	fs.BoolVar(&c.Dev, "dev", false, "development mode: an embedded Redis on "+devmode.RedisAddr+" (never REDIS_URL's, nor its address; enqueue -dev finds it) and built-in provider sandboxes with demo credentials; every provider setting in the environment is ignored (a warning names those set)")
	fs.BoolVar(&c.Demo, "demo", false, "with -dev: enqueue one sample order per provider, print each outcome and exit")
	fs.StringVar(&c.DevRedis, "dev-redis", "", "with -dev: use this Redis `URL` instead of an embedded one; refused when it holds data that -dev did not write")
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL (REDIS_URL)")
	// -h prints the default: REDIS_URL's, whose password it must not show.
	fs.Lookup("redis-url").DefValue = tasks.RedactURL(c.RedisURL)
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "admin HTTP address (ORDERWORKER_ADMIN_ADDR); with -dev, "+devmode.AdminAddr+" unless this flag is given, and with -dev a free loopback port when the address is taken (the log line \"admin server listening\" names it)")
	fs.StringVar(&c.Queue, "queue", c.Queue, "asynq queue (ORDERWORKER_QUEUE)")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "provider calls in flight at once; a quarter more orders run (ORDERWORKER_CONCURRENCY)")
	fs.IntVar(&c.MaxAttempts, "max-attempts", c.MaxAttempts, "failure budget per order (ORDERWORKER_MAX_ATTEMPTS)")
	fs.DurationVar(&c.RetryBase, "retry-base", c.RetryBase, "first retry backoff (ORDERWORKER_RETRY_BASE)")
	fs.DurationVar(&c.RetryMax, "retry-max", c.RetryMax, "backoff cap (ORDERWORKER_RETRY_MAX)")
	fs.DurationVar(&c.OrderDeadline, "order-deadline", c.OrderDeadline, "how long after enqueue (or a re-drive) an order may still be submitted (ORDERWORKER_ORDER_DEADLINE)")
	fs.DurationVar(&c.PendingWindow, "pending-window", c.PendingWindow, "pending polling window (ORDERWORKER_PENDING_WINDOW)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "drain time on SIGTERM (ORDERWORKER_SHUTDOWN_TIMEOUT)")
	fs.DurationVar(&c.ReconcileEvery, "reconcile-interval", c.ReconcileEvery, "reconciler sweep interval (ORDERWORKER_RECONCILE_INTERVAL)")
	fs.DurationVar(&c.PollInterval, "poll-interval", c.PollInterval, "idle poll interval (ORDERWORKER_POLL_INTERVAL)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level (ORDERWORKER_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or text (ORDERWORKER_LOG_FORMAT)")
	if err := cliflag.Parse(fs, args, stdout, stderr); err != nil {
		return nil, err
	}
	// The variable each flag overrides: its bad value is no error then.
	overrides := map[string]string{
		"concurrency": "ORDERWORKER_CONCURRENCY", "max-attempts": "ORDERWORKER_MAX_ATTEMPTS",
		"retry-base": "ORDERWORKER_RETRY_BASE", "retry-max": "ORDERWORKER_RETRY_MAX",
		"order-deadline": "ORDERWORKER_ORDER_DEADLINE", "pending-window": "ORDERWORKER_PENDING_WINDOW",
		"shutdown-timeout": "ORDERWORKER_SHUTDOWN_TIMEOUT", "reconcile-interval": "ORDERWORKER_RECONCILE_INTERVAL",
		"poll-interval": "ORDERWORKER_POLL_INTERVAL",
	}
	fs.Visit(func(f *flag.Flag) { delete(envErrs, overrides[f.Name]) })
	for _, v := range vars {
		if err := envErrs[v.Name]; err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if err := tasks.CheckQueue(c.Queue); err != nil {
		return nil, fmt.Errorf("queue %q (ORDERWORKER_QUEUE or -queue): %w", c.Queue, err)
	}
	if c.Demo && !c.Dev {
		return nil, errors.New("-demo needs -dev")
	}
	if c.DevRedis != "" && !c.Dev {
		return nil, errors.New("-dev-redis needs -dev")
	}
	if len(notDevErrs) > 0 && !c.Dev {
		return nil, errors.Join(notDevErrs...)
	}
	c.realAPIAddr = getenv(settings.APIAddr.Name)
	c.flags, c.envSet = map[string]bool{}, map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.flags[f.Name] = true })
	for _, v := range append(vars, settings.APIAddr) {
		if getenv(v.Name) != "" {
			c.envSet[v.Name] = true
		}
	}
	if c.Dev {
		c.DevIgnored = devIgnored(c, vars)
		// Its events are the sandboxes': signed with -dev's own secret,
		// never the real one, which a receiver on this machine (a real
		// upstream app's) would take them for its own with.
		c.WebhookSecret = providers.Secret(devmode.WebhookSecret)
	}
	if len(c.WebhookURLs) > 0 && c.WebhookSecret == "" {
		return nil, errors.New("ORDERWORKER_WEBHOOK_URLS needs ORDERWORKER_WEBHOOK_SECRET to sign with (whsec_ and a base64 key: echo whsec_$(openssl rand -base64 32))")
	}
	if c.Dev && flagSet(fs, "redis-url") {
		return nil, errors.New("-dev never uses -redis-url or REDIS_URL: give -dev-redis URL to use another Redis than the embedded one")
	}
	if c.Dev && !flagSet(fs, "admin-addr") {
		// Like the dev API: an address of its own on loopback (the admin
		// server has no token in -dev unless one is set), never
		// ORDERWORKER_ADMIN_ADDR's: a -dev worker started on a host whose
		// real worker is down would answer its health checks and scrapes.
		// -admin-addr still names one.
		c.AdminAddr = devmode.AdminAddr
		if _, p, err := net.SplitHostPort(getenv("ORDERWORKER_ADMIN_ADDR")); err == nil && p == devmode.AdminPort {
			c.AdminAddr = "127.0.0.1:0" // the real admin's port: any other
		}
	}
	if c.RetryMax < c.RetryBase {
		return nil, fmt.Errorf("ORDERWORKER_RETRY_MAX (-retry-max) %s is below ORDERWORKER_RETRY_BASE (-retry-base) %s: the backoff cap must be at least the first backoff", c.RetryMax, c.RetryBase)
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		return nil, fmt.Errorf("%s: want json or text", c.setting("log-format", "ORDERWORKER_LOG_FORMAT", c.LogFormat))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return nil, fmt.Errorf("%s: %w", c.setting("log-level", "ORDERWORKER_LOG_LEVEL", c.LogLevel), err)
	}
	if !c.Dev || c.flags["admin-addr"] {
		// Refused now, before Redis is waited for: listening on it comes
		// last (run names the setting if that fails).
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			return nil, fmt.Errorf("%s: want host:port or :port, like :9090: %w", c.setting("admin-addr", "ORDERWORKER_ADMIN_ADDR", c.AdminAddr), err)
		}
	}
	if c.Concurrency <= 0 {
		return nil, fmt.Errorf("ORDERWORKER_CONCURRENCY (-concurrency) %d: want a positive number", c.Concurrency)
	}
	if c.WebhookConcurrency > maxWebhookConcurrency {
		return nil, fmt.Errorf("ORDERWORKER_WEBHOOK_CONCURRENCY=%d: at most %d (each delivery in flight holds a Redis connection too)", c.WebhookConcurrency, maxWebhookConcurrency)
	}
	if c.MaxAttempts <= 0 {
		return nil, fmt.Errorf("ORDERWORKER_MAX_ATTEMPTS (-max-attempts) %d: want a positive number", c.MaxAttempts)
	}
	// The flags' durations as strictly as the environment's (dur): a zero
	// or negative backoff, deadline or interval is refused, never taken.
	for _, d := range []struct {
		flag, env string
		v         time.Duration
	}{
		{"retry-base", "ORDERWORKER_RETRY_BASE", c.RetryBase}, {"retry-max", "ORDERWORKER_RETRY_MAX", c.RetryMax},
		{"order-deadline", "ORDERWORKER_ORDER_DEADLINE", c.OrderDeadline}, {"pending-window", "ORDERWORKER_PENDING_WINDOW", c.PendingWindow},
		{"shutdown-timeout", "ORDERWORKER_SHUTDOWN_TIMEOUT", c.ShutdownTimeout}, {"reconcile-interval", "ORDERWORKER_RECONCILE_INTERVAL", c.ReconcileEvery},
		{"poll-interval", "ORDERWORKER_POLL_INTERVAL", c.PollInterval},
	} {
		if flagSet(fs, d.flag) && d.v <= 0 {
			return nil, fmt.Errorf("-%s %s (%s): want a positive duration like 30s", d.flag, d.v, d.env)
		}
	}
	if c.PollInterval < minPollInterval {
		return nil, fmt.Errorf("ORDERWORKER_POLL_INTERVAL (-poll-interval) %s: want at least %s: each look for a new order costs 3 Redis commands (%s is about %d a second)",
			c.PollInterval, minPollInterval, minPollInterval, 3*int(time.Second/minPollInterval))
	}
	if c.Dequeuers > c.Concurrency {
		return nil, fmt.Errorf("ORDERWORKER_DEQUEUERS=%d is over the concurrency (%d): each loop needs at least one order slot", c.Dequeuers, c.Concurrency)
	}
	return c, nil
}

// devIgnored names the variables set in the environment (c.envSet) that
// -dev does not read: every provider's settings (-dev reads its
// sandboxes' instead), REDIS_URL, ORDERWORKER_API_ADDR, and
// ORDERWORKER_ADMIN_ADDR unless -admin-addr overrides it anyway. Names
// only: a value may be a secret.
func devIgnored(c *config, vars []settings.Var) []string {
	ignored := map[string]bool{"REDIS_URL": true, settings.APIAddr.Name: true, "ORDERWORKER_ADMIN_ADDR": !c.flags["admin-addr"],
		"ORDERWORKER_WEBHOOK_SECRET": true}
	for _, s := range registry.All() {
		for _, st := range s.Settings {
			ignored[st.Name] = true
		}
	}
	var out []string
	for _, v := range append(vars, settings.APIAddr) {
		if ignored[v.Name] && c.envSet[v.Name] {
			out = append(out, v.Name)
		}
	}
	return out
}

// minPollInterval is the shortest ORDERWORKER_POLL_INTERVAL taken: an
// idle worker's Redis load grows as its inverse (1ns would be about 80,000
// commands a second), while the median pickup it saves is half of it.
const minPollInterval = 10 * time.Millisecond

// flagSet reports whether the named flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parseKeyed reads a comma-separated list of key=value items (spaces and
// empty items ignored) for the variable name, parsing each value with
// parse; each key must be one of keys. An error names the variable, the
// item and the reason.
func parseKeyed[T any](name, s string, keys []string, parse func(val string) (T, error)) (map[string]T, error) {
	out := map[string]T{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, val, ok := strings.Cut(item, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("%s: %q: want key=value", name, item)
		}
		if !slices.Contains(keys, key) {
			return nil, fmt.Errorf("%s: %q: unknown provider %q (known: %s)", name, item, key, strings.Join(keys, ", "))
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%s: %q: %s is given twice", name, item, key)
		}
		v, err := parse(val)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", name, item, err)
		}
		out[key] = v
	}
	return out, nil
}

// maxRate bounds a rate limit: beyond it a limit limits nothing.
const maxRate = 1_000_000

// parseLimits reads "tencent=20:40,aliyun=5": a rate per second and an
// optional burst (default: the rate, at least 1) for each provider, whose
// names are keys. Limits per account ("tencent/acct-1") are refused:
// accounts are not configurable.
func parseLimits(s string, keys []string) (map[string]guard.Limit, error) {
	for _, item := range strings.Split(s, ",") {
		if key, _, _ := strings.Cut(item, "="); strings.Contains(key, "/") {
			return nil, fmt.Errorf("ORDERWORKER_RATE_LIMITS: %q: limits per account are not supported (a provider has one account): want provider=rate[:burst]", strings.TrimSpace(item))
		}
	}
	return parseKeyed("ORDERWORKER_RATE_LIMITS", s, keys, func(val string) (guard.Limit, error) {
		rate, burst, hasBurst := strings.Cut(val, ":")
		r, err := strconv.ParseFloat(rate, 64)
		if err != nil || math.IsNaN(r) || math.IsInf(r, 0) || r <= 0 || r > maxRate {
			return guard.Limit{}, fmt.Errorf("want provider=rate[:burst] with a rate per second above 0 and at most %d, e.g. tencent=20:40", maxRate)
		}
		l := guard.Limit{Rate: r, Burst: max(1, int(r))}
		if hasBurst {
			if l.Burst, err = strconv.Atoi(burst); err != nil || l.Burst < 1 {
				return guard.Limit{}, errors.New("burst must be a positive integer")
			}
		}
		return l, nil
	})
}

// parseDeadlines reads "aliyun=2h,tencent=48h" for the providers named keys.
func parseDeadlines(s string, keys []string) (map[string]time.Duration, error) {
	return parseKeyed("ORDERWORKER_ORDER_DEADLINES", s, keys, func(val string) (time.Duration, error) {
		d, err := time.ParseDuration(val)
		if err != nil || d <= 0 {
			return 0, errors.New("want provider=duration, e.g. aliyun=2h")
		}
		return d, nil
	})
}

// isFingerprint reports whether s is a create-target fingerprint as the
// ledger records it: 16 lower-case hexadecimal digits.
func isFingerprint(s string) bool {
	if len(s) != 16 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// listingLagSetting reads ORDERWORKER_LISTING_LAG (v), appending to errs a
// value that is not a duration from 0 to ledger.MaxListingLag.
func listingLagSetting(v string, errs *[]error) time.Duration {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > ledger.MaxListingLag {
		*errs = append(*errs, fmt.Errorf("ORDERWORKER_LISTING_LAG=%q: want a duration like 2m, at most 24h, or 0", v))
		return 0
	}
	return d
}
