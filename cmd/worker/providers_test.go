package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/registry"
	"github.com/orderworker/orderworker/providers/tencent"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/guard"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// TestBuildProvidersLimitRequests: buildProviders builds every provider's
// HTTP client on the limiter transport for its name, so the limit counts
// requests, whichever call makes them. With a burst of one request and the
// next place 1000s away, each sandbox sees exactly one request (for Aliyun
// the cloudToken fetch a create makes first), and the call that needs
// another comes back RateLimited without sending it.
func TestBuildProvidersLimitRequests(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	env := map[string]string{"ORDERWORKER_RATE_LIMITS": "tencent=0.001:1,aliyun=0.001:1,unicloud=0.001:1"}
	seen := map[string]*atomic.Int64{}
	for _, s := range registry.All() {
		sb := s.Sandbox()
		n := &atomic.Int64{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			sb.Handler.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		maps.Copy(env, sb.Env(srv.URL))
		seen[s.Name] = n
	}
	cfg, err := parseConfig(nil, envFunc(env), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	g := guard.New(rdb, &guard.Options{Limits: cfg.RateLimits, Logger: log})
	set, err := buildProviders(cfg, rdb, log, func(provider string) http.RoundTripper {
		return g.Transport(provider, providers.NewTransport())
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range registry.All() {
		p, err := set.Get(s.Name)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var refused error
		for i := range 2 {
			o := providers.Order{OrderNo: fmt.Sprintf("Limited%d", i), Params: s.Example, FirstAttempt: time.Now()}
			if _, err := p.Submit(ctx, o); providers.CodeOf(err) == providers.RateLimited {
				refused = err
				break
			} else if err != nil {
				t.Errorf("%s: Submit %d: %v", s.Name, i, err)
			}
		}
		cancel()
		if refused == nil || providers.RetryAfterOf(refused) < time.Minute {
			t.Errorf("%s: no Submit came back RateLimited with the limiter's wait (%v)", s.Name, refused)
		}
		if n := seen[s.Name].Load(); n != 1 {
			t.Errorf("%s: the sandbox got %d requests, want 1 (the burst)", s.Name, n)
		}
	}
}

// TestRateLimitedRequestIsThrottling: an order whose create request the
// limiter refuses is handled as throttled by the provider: nothing was
// sent, so it stays submitting (not unknown), spends no retry budget, its
// task waits, and the breaker (opened here by a single provider-down
// result) stays closed.
func TestRateLimitedRequestIsThrottling(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	var spec providers.Spec
	for _, s := range registry.All() {
		if s.Name == tencent.Name {
			spec = s
		}
	}
	sb := spec.Sandbox()
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent.Add(1)
		sb.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	env := sb.Env(srv.URL)
	env["ORDERWORKER_RATE_LIMITS"] = "tencent=0.001:1"
	cfg, err := parseConfig(nil, envFunc(env), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	g := guard.New(rdb, &guard.Options{Limits: cfg.RateLimits, FailureThreshold: 1, Logger: log})
	set, err := buildProviders(cfg, rdb, log, func(provider string) http.RoundTripper {
		return g.Transport(provider, providers.NewTransport())
	})
	if err != nil {
		t.Fatal(err)
	}
	ledger := tasks.NewLedger(rdb)
	client := asynq.NewClient(redisOpt(t, rs))
	t.Cleanup(func() { client.Close() })
	enq := tasks.NewEnqueuer(client, ledger, enqueueValidators(), nil)
	h := tasks.NewHandler(ledger, set, &tasks.HandlerOptions{Guard: g, Logger: log})

	ctx := context.Background()
	for i, want := range []tasks.State{tasks.StatePaid, tasks.StateSubmitting} {
		p := tasks.Payload{Provider: tencent.Name, OrderNo: fmt.Sprintf("Throttled%d", i), Params: spec.Example}
		if res, err := enq.EnqueuePayload(ctx, p); err != nil || res.Status != tasks.Enqueued {
			t.Fatalf("enqueue %s: %+v %v", p.OrderNo, res, err)
		}
		task, err := tasks.NewOrderSubmitTask(p)
		if err != nil {
			t.Fatal(err)
		}
		procErr := h.ProcessTask(ctx, task)
		rec, err := ledger.Get(ctx, tasks.OrderRef{Provider: p.Provider, OrderNo: p.OrderNo})
		if err != nil || rec == nil {
			t.Fatalf("record %s: %v %v", p.OrderNo, rec, err)
		}
		if rec.State != want {
			t.Fatalf("order %d: %s (%s), want %s", i, rec.State, rec.Reason, want)
		}
		if want == tasks.StatePaid {
			continue
		}
		last := rec.History[len(rec.History)-1]
		if procErr == nil || rec.Failures != 0 || last.Call != "submit" || last.Result != "rate_limited" {
			t.Errorf("refused create: task error %v, failures %d, last attempt %s:%s; want a wait, 0, submit:rate_limited",
				procErr, rec.Failures, last.Call, last.Result)
		}
	}
	if n := sent.Load(); n != 1 {
		t.Errorf("the sandbox got %d requests, want 1", n)
	}
	if st := g.State(tencent.Name); st != guard.Closed {
		t.Errorf("breaker %v after a refused request, want closed", st)
	}
}
