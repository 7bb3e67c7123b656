// Command naiveworker is the baseline that cmd/worker's BenchmarkCompare
// measures the worker against: the asynq worker one would write by hand in
// an afternoon. It takes order:submit tasks, decodes the payload, and signs
// and POSTs Tencent's ServiceCreateOrder with the project's tencent client.
// Nothing else: no ledger, no dedupe, no lock, no lookup after an ambiguous
// failure, no metrics, no per-order log line. A failed call is retried by
// asynq's defaults.
//
// It reads the worker's variables: REDIS_URL, ORDERWORKER_QUEUE,
// ORDERWORKER_CONCURRENCY, TENCENT_ENDPOINT, TENCENT_APP_KEY and
// TENCENT_APP_SECRET. NAIVEWORKER_IDLE_CONNS sets the HTTP transport's idle
// connections per host (default: the concurrency; 0 keeps Go's default
// transport, which keeps 2). It prints "naiveworker: ready" once it takes
// tasks and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/tencent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "naiveworker:", err)
		os.Exit(1)
	}
}

// payload is the order:submit task's JSON, as producers write it.
type payload struct {
	Provider string          `json:"provider"`
	OrderNo  string          `json:"order_no"`
	Params   json.RawMessage `json:"params"`
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	redisOpt, err := asynq.ParseRedisURI(env("REDIS_URL", "redis://127.0.0.1:6379/0"))
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	concurrency, err := strconv.Atoi(env("ORDERWORKER_CONCURRENCY", "20"))
	if err != nil || concurrency <= 0 {
		return errors.New("ORDERWORKER_CONCURRENCY: want a positive integer")
	}
	idle, err := strconv.Atoi(env("NAIVEWORKER_IDLE_CONNS", strconv.Itoa(concurrency)))
	if err != nil || idle < 0 {
		return errors.New("NAIVEWORKER_IDLE_CONNS: want a number")
	}
	var hc *http.Client
	if idle > 0 {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = idle
		tr.MaxIdleConnsPerHost = idle
		hc = &http.Client{Transport: tr}
	}
	client, err := tencent.New(tencent.Options{
		Endpoint:   env("TENCENT_ENDPOINT", tencent.DefaultEndpoint),
		AppKey:     getenv("TENCENT_APP_KEY"),
		AppSecret:  providers.Secret(getenv("TENCENT_APP_SECRET")),
		HTTPClient: hc,
	})
	if err != nil {
		return err
	}

	mux := asynq.NewServeMux()
	mux.HandleFunc("order:submit", func(ctx context.Context, t *asynq.Task) error {
		var p payload
		if err := json.Unmarshal(t.Payload(), &p); err != nil {
			return fmt.Errorf("decode payload: %v: %w", err, asynq.SkipRetry)
		}
		if p.Provider != tencent.Name {
			return fmt.Errorf("provider %q: only tencent: %w", p.Provider, asynq.SkipRetry)
		}
		_, err := client.Submit(ctx, providers.Order{OrderNo: p.OrderNo, Params: p.Params})
		return err
	})
	srv := asynq.NewServer(redisOpt, asynq.Config{
		Concurrency:     concurrency,
		Queues:          map[string]int{env("ORDERWORKER_QUEUE", "orders"): 1},
		LogLevel:        asynq.WarnLevel,
		ShutdownTimeout: 10 * time.Second,
	})
	if err := srv.Start(mux); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "naiveworker: ready")
	<-ctx.Done()
	srv.Shutdown()
	return nil
}
