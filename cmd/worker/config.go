package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/guard"
)

// config is everything the worker reads from its environment and flags.
// Flags override the environment.
type config struct {
	Dev  bool
	Demo bool

	RedisURL        string
	AdminAddr       string
	Queue           string
	Concurrency     int
	MaxAttempts     int
	RetryBase       time.Duration
	RetryMax        time.Duration
	OrderDeadline   time.Duration
	Deadlines       map[string]time.Duration
	PendingWindow   time.Duration
	ShutdownTimeout time.Duration
	ReconcileEvery  time.Duration
	RateLimits      map[string]guard.Limit
	BreakerFailures int
	BreakerCooldown time.Duration
	LogLevel        string
	LogFormat       string

	DataKey            providers.Secret
	MonitoringToken    providers.Secret
	MonitoringReadOnly bool

	Tencent  tencentConfig
	Aliyun   aliyunConfig
	Unicloud unicloudConfig
}

type tencentConfig struct {
	Endpoint, AppKey string
	AppSecret        providers.Secret
}

type aliyunConfig struct {
	Endpoint, AppKey, ProjectID string
	AppSecret                   providers.Secret
	AutoPay                     bool
}

type unicloudConfig struct {
	Endpoint, AccessKeyID string
	AccessKeySecret       providers.Secret
}

// envVar documents one setting; the README's table is this list.
type envVar struct {
	name, def, help string
}

var envVars = []envVar{
	{"REDIS_URL", "redis://127.0.0.1:6379/0", "Redis: redis://, rediss:// (TLS), redis-sentinel://, redis-cluster://host:port,host:port"},
	{"ORDERWORKER_ADMIN_ADDR", ":9090", "admin HTTP address: /metrics, /healthz, /readyz, /monitoring/"},
	{"ORDERWORKER_QUEUE", "orders", "asynq queue"},
	{"ORDERWORKER_CONCURRENCY", "20", "orders processed at once"},
	{"ORDERWORKER_MAX_ATTEMPTS", "8", "failed submissions (that created nothing) before an order is errored"},
	{"ORDERWORKER_RETRY_BASE", "1s", "first retry backoff (doubles, full jitter)"},
	{"ORDERWORKER_RETRY_MAX", "5m", "backoff cap"},
	{"ORDERWORKER_ORDER_DEADLINE", "24h", "an order not submitted this long after enqueue is errored"},
	{"ORDERWORKER_ORDER_DEADLINES", "", "per-provider deadlines overriding ORDERWORKER_ORDER_DEADLINE: aliyun=2h,tencent=48h"},
	{"ORDERWORKER_PENDING_WINDOW", "30m", "how long a pending order is polled before it is errored as unpaid"},
	{"ORDERWORKER_SHUTDOWN_TIMEOUT", "25s", "on SIGTERM, how long in-flight attempts may finish"},
	{"ORDERWORKER_RECONCILE_INTERVAL", "1m", "how often the reconciler sweeps for orders no task will move on"},
	{"ORDERWORKER_RATE_LIMITS", "", "requests per second shared by all workers, per provider or provider/account: tencent=20:40,aliyun=10 (rate[:burst])"},
	{"ORDERWORKER_BREAKER_FAILURES", "5", "consecutive provider-down results that open a provider's circuit breaker (0 turns breakers off)"},
	{"ORDERWORKER_BREAKER_COOLDOWN", "30s", "how long an open breaker holds orders back before a trial call"},
	{"ORDERWORKER_LOG_LEVEL", "info", "debug, info, warn, error"},
	{"ORDERWORKER_LOG_FORMAT", "json", "json or text"},
	{"ORDERWORKER_DATA_KEY", "", "32 random bytes, base64 (openssl rand -base64 32), shared with producers: order params are stored encrypted in Redis; required for personal-data params (Aliyun userName)"},
	{"ORDERWORKER_MONITORING_TOKEN", "", "if set, /monitoring/ needs it as a bearer token or basic-auth password"},
	{"ORDERWORKER_MONITORING_READONLY", "true", "false lets the dashboard retry, delete and archive tasks"},
	{"TENCENT_ENDPOINT", "https://iot.cloud.tencent.com", "Tencent IoT Explorer base URL"},
	{"TENCENT_APP_KEY", "", "Tencent AppKey (provider disabled without it)"},
	{"TENCENT_APP_SECRET", "", "Tencent AppSecret"},
	{"ALIYUN_ENDPOINT", "https://api.link.aliyun.com", "Aliyun IoT Living API gateway base URL"},
	{"ALIYUN_APP_KEY", "", "Aliyun cloud AppKey (provider disabled without it)"},
	{"ALIYUN_APP_SECRET", "", "Aliyun cloud AppSecret"},
	{"ALIYUN_PROJECT_ID", "", "Aliyun project for cloudToken"},
	{"ALIYUN_AUTO_PAY", "false", "pay pending Aliyun orders with /order/pay"},
	{"UNICLOUD_ENDPOINT", "https://api.unicloud.com", "UniCloud OpenAPI base URL"},
	{"UNICLOUD_ACCESS_KEY_ID", "", "UniCloud AccessKeyId (provider disabled without it)"},
	{"UNICLOUD_ACCESS_KEY_SECRET", "", "UniCloud AccessKeySecret"},
}

// parseConfig reads the environment through getenv, then flags from args.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	env := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		for _, e := range envVars {
			if e.name == name {
				return e.def
			}
		}
		return ""
	}
	var errs []error
	dur := func(name string) time.Duration {
		d, err := time.ParseDuration(env(name))
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive duration like 30s", name, env(name)))
		}
		return d
	}
	num := func(name string) int {
		n, err := strconv.Atoi(env(name))
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive integer", name, env(name)))
		}
		return n
	}
	boolean := func(name string) bool {
		b, err := strconv.ParseBool(env(name))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", name, env(name)))
		}
		return b
	}
	c := &config{
		RedisURL:           env("REDIS_URL"),
		AdminAddr:          env("ORDERWORKER_ADMIN_ADDR"),
		Queue:              env("ORDERWORKER_QUEUE"),
		Concurrency:        num("ORDERWORKER_CONCURRENCY"),
		MaxAttempts:        num("ORDERWORKER_MAX_ATTEMPTS"),
		RetryBase:          dur("ORDERWORKER_RETRY_BASE"),
		RetryMax:           dur("ORDERWORKER_RETRY_MAX"),
		OrderDeadline:      dur("ORDERWORKER_ORDER_DEADLINE"),
		PendingWindow:      dur("ORDERWORKER_PENDING_WINDOW"),
		ShutdownTimeout:    dur("ORDERWORKER_SHUTDOWN_TIMEOUT"),
		ReconcileEvery:     dur("ORDERWORKER_RECONCILE_INTERVAL"),
		BreakerCooldown:    dur("ORDERWORKER_BREAKER_COOLDOWN"),
		LogLevel:           env("ORDERWORKER_LOG_LEVEL"),
		LogFormat:          env("ORDERWORKER_LOG_FORMAT"),
		DataKey:            providers.Secret(env("ORDERWORKER_DATA_KEY")),
		MonitoringToken:    providers.Secret(env("ORDERWORKER_MONITORING_TOKEN")),
		MonitoringReadOnly: boolean("ORDERWORKER_MONITORING_READONLY"),
		Tencent: tencentConfig{
			Endpoint: env("TENCENT_ENDPOINT"), AppKey: env("TENCENT_APP_KEY"),
			AppSecret: providers.Secret(env("TENCENT_APP_SECRET")),
		},
		Aliyun: aliyunConfig{
			Endpoint: env("ALIYUN_ENDPOINT"), AppKey: env("ALIYUN_APP_KEY"),
			AppSecret: providers.Secret(env("ALIYUN_APP_SECRET")), ProjectID: env("ALIYUN_PROJECT_ID"),
			AutoPay: boolean("ALIYUN_AUTO_PAY"),
		},
		Unicloud: unicloudConfig{
			Endpoint: env("UNICLOUD_ENDPOINT"), AccessKeyID: env("UNICLOUD_ACCESS_KEY_ID"),
			AccessKeySecret: providers.Secret(env("UNICLOUD_ACCESS_KEY_SECRET")),
		},
	}
	if n, err := strconv.Atoi(env("ORDERWORKER_BREAKER_FAILURES")); err != nil || n < 0 {
		errs = append(errs, fmt.Errorf("ORDERWORKER_BREAKER_FAILURES=%q: want a number, 0 to turn breakers off", env("ORDERWORKER_BREAKER_FAILURES")))
	} else {
		c.BreakerFailures = n
	}
	deadlines, err := parseDeadlines(env("ORDERWORKER_ORDER_DEADLINES"))
	if err != nil {
		errs = append(errs, err)
	}
	c.Deadlines = deadlines
	limits, err := parseLimits(env("ORDERWORKER_RATE_LIMITS"))
	if err != nil {
		errs = append(errs, err)
	}
	c.RateLimits = limits
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: worker [flags]\n\nProcesses orders until SIGINT or SIGTERM, then drains.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nEnvironment (flags override it):\n")
		for _, e := range envVars {
			def := e.def
			if def == "" {
				def = "-"
			}
			fmt.Fprintf(stderr, "  %-32s %s (default %s)\n", e.name, e.help, def)
		}
	}
	fs.BoolVar(&c.Dev, "dev", false, "development mode: embedded Redis when none is reachable, built-in provider sandboxes with demo credentials")
	fs.BoolVar(&c.Demo, "demo", false, "with -dev: enqueue one sample order per provider, print each outcome and exit")
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL (REDIS_URL)")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "admin HTTP address (ORDERWORKER_ADMIN_ADDR)")
	fs.StringVar(&c.Queue, "queue", c.Queue, "asynq queue (ORDERWORKER_QUEUE)")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "orders processed at once (ORDERWORKER_CONCURRENCY)")
	fs.IntVar(&c.MaxAttempts, "max-attempts", c.MaxAttempts, "failure budget per order (ORDERWORKER_MAX_ATTEMPTS)")
	fs.DurationVar(&c.RetryBase, "retry-base", c.RetryBase, "first retry backoff (ORDERWORKER_RETRY_BASE)")
	fs.DurationVar(&c.RetryMax, "retry-max", c.RetryMax, "backoff cap (ORDERWORKER_RETRY_MAX)")
	fs.DurationVar(&c.OrderDeadline, "order-deadline", c.OrderDeadline, "per-order deadline (ORDERWORKER_ORDER_DEADLINE)")
	fs.DurationVar(&c.PendingWindow, "pending-window", c.PendingWindow, "pending polling window (ORDERWORKER_PENDING_WINDOW)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "drain time on SIGTERM (ORDERWORKER_SHUTDOWN_TIMEOUT)")
	fs.DurationVar(&c.ReconcileEvery, "reconcile-interval", c.ReconcileEvery, "reconciler sweep interval (ORDERWORKER_RECONCILE_INTERVAL)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level (ORDERWORKER_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or text (ORDERWORKER_LOG_FORMAT)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if c.Demo && !c.Dev {
		return nil, errors.New("-demo needs -dev")
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		return nil, fmt.Errorf("log format %q: want json or text", c.LogFormat)
	}
	if c.Concurrency <= 0 || c.MaxAttempts <= 0 {
		return nil, errors.New("-concurrency and -max-attempts must be positive")
	}
	return c, nil
}

// parseKeyed reads a comma-separated list of key=value items (spaces and
// empty items ignored) for the variable name, parsing each value with
// parse; an error names the variable, the item and the reason.
func parseKeyed[T any](name, s string, parse func(val string) (T, error)) (map[string]T, error) {
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
		v, err := parse(val)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", name, item, err)
		}
		out[key] = v
	}
	return out, nil
}

// parseLimits reads "tencent=20:40,aliyun/acct-1=5": a rate per second and
// an optional burst (default: the rate, at least 1) per provider or
// provider/account.
func parseLimits(s string) (map[string]guard.Limit, error) {
	return parseKeyed("ORDERWORKER_RATE_LIMITS", s, func(val string) (guard.Limit, error) {
		rate, burst, hasBurst := strings.Cut(val, ":")
		r, err := strconv.ParseFloat(rate, 64)
		if err != nil || r <= 0 {
			return guard.Limit{}, errors.New("want provider=rate[:burst], e.g. tencent=20:40")
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

// parseDeadlines reads "aliyun=2h,tencent=48h".
func parseDeadlines(s string) (map[string]time.Duration, error) {
	return parseKeyed("ORDERWORKER_ORDER_DEADLINES", s, func(val string) (time.Duration, error) {
		d, err := time.ParseDuration(val)
		if err != nil || d <= 0 {
			return 0, errors.New("want provider=duration, e.g. aliyun=2h")
		}
		return d, nil
	})
}
