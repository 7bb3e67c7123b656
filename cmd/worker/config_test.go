package main

import (
	"context"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// Settings that are accepted today but cannot work are refused at start,
// with the bad value named.
func TestConfigRejectsBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		args []string
		want []string
	}{
		{map[string]string{"ORDERWORKER_SAME_TARGETS": "0123456789abcdef, 41126a66fb08d38g"}, nil, []string{"ORDERWORKER_SAME_TARGETS", "41126a66fb08d38g"}},
		{map[string]string{"ORDERWORKER_WEBHOOK_SECRET": "whsec_abc"}, nil, []string{"ORDERWORKER_WEBHOOK_SECRET"}},
		{map[string]string{"ORDERWORKER_RATE_LIMITS": "tencent=NaN"}, nil, []string{"ORDERWORKER_RATE_LIMITS", "tencent=NaN"}},
		{map[string]string{"ORDERWORKER_RATE_LIMITS": "tencent=nan:5"}, nil, []string{"ORDERWORKER_RATE_LIMITS", "tencent=nan:5"}},
		{map[string]string{"ORDERWORKER_RATE_LIMITS": "tencent=Inf"}, nil, []string{"ORDERWORKER_RATE_LIMITS", "tencent=Inf"}},
		{map[string]string{"ORDERWORKER_RATE_LIMITS": "aliyun=+Inf:10"}, nil, []string{"ORDERWORKER_RATE_LIMITS", "aliyun=+Inf:10"}},
		{map[string]string{"ORDERWORKER_RATE_LIMITS": "aliyun=-5"}, nil, []string{"ORDERWORKER_RATE_LIMITS", "aliyun=-5"}},
		{map[string]string{"ORDERWORKER_RATE_LIMITS": "aliyun=0"}, nil, []string{"ORDERWORKER_RATE_LIMITS", "aliyun=0"}},
		{map[string]string{"ORDERWORKER_RATE_LIMITS": "aliyun=1e300"}, nil, []string{"ORDERWORKER_RATE_LIMITS", "aliyun=1e300"}},
		{map[string]string{"ORDERWORKER_RATE_LIMITS": "tencnet=5"}, nil, []string{"ORDERWORKER_RATE_LIMITS", `unknown provider "tencnet"`, "tencent"}},
		{map[string]string{"ORDERWORKER_RATE_LIMITS": "tencent=5,tencent=6"}, nil, []string{"ORDERWORKER_RATE_LIMITS", "twice"}},
		{map[string]string{"ORDERWORKER_RATE_LIMITS": "tencent/acct-1=5"}, nil, []string{"ORDERWORKER_RATE_LIMITS", "tencent/acct-1=5", "per account"}},
		{map[string]string{"ORDERWORKER_ORDER_DEADLINES": "tencnet=1h"}, nil, []string{"ORDERWORKER_ORDER_DEADLINES", `unknown provider "tencnet"`}},
		{map[string]string{"ORDERWORKER_RETRY_BASE": "10s", "ORDERWORKER_RETRY_MAX": "5s"}, nil, []string{"ORDERWORKER_RETRY_MAX", "5s", "ORDERWORKER_RETRY_BASE", "10s"}},
		{nil, []string{"-retry-base", "2m", "-retry-max", "1m"}, []string{"RETRY_MAX", "1m0s", "RETRY_BASE", "2m0s"}},
		{map[string]string{"TENCENT_ENDPOINT": "iot.cloud.tencent.com"}, nil, []string{"TENCENT_ENDPOINT", "base URL"}},
		{map[string]string{"ALIYUN_AUTO_PAY": "maybe"}, nil, []string{`ALIYUN_AUTO_PAY="maybe"`}},
		// Only the words: a 1, a t or TRUE never turns payments on.
		{map[string]string{"ALIYUN_AUTO_PAY": "1"}, nil, []string{`ALIYUN_AUTO_PAY="1"`, "true or false"}},
		{map[string]string{"ALIYUN_PAY_MATCHED": "TRUE"}, nil, []string{`ALIYUN_PAY_MATCHED="TRUE"`, "true or false"}},
		{map[string]string{"UNICLOUD_CREATE_OVERRUN": "60"}, nil, []string{`UNICLOUD_CREATE_OVERRUN="60"`, "duration"}},
		{map[string]string{"UNICLOUD_CREATE_OVERRUN": "-1s"}, nil, []string{`UNICLOUD_CREATE_OVERRUN="-1s"`, "duration"}},
		{map[string]string{"ORDERWORKER_LISTING_LAG": "-1s"}, nil, []string{`ORDERWORKER_LISTING_LAG="-1s"`, "duration"}},
		// A slip (40h for 40s) would hold every order it creates that long:
		// the lag is kept on the record for every worker and operator.
		{map[string]string{"ORDERWORKER_LISTING_LAG": "24h0m1s"}, nil, []string{`ORDERWORKER_LISTING_LAG="24h0m1s"`, "at most 24h"}},
		{map[string]string{"ORDERWORKER_MONITORING_READONLY": "0"}, nil, []string{`ORDERWORKER_MONITORING_READONLY="0"`, "true or false"}},
		// Flags as strictly as the environment.
		{nil, []string{"-retry-base", "-1s"}, []string{"-retry-base", "ORDERWORKER_RETRY_BASE", "positive duration"}},
		{nil, []string{"-shutdown-timeout", "0"}, []string{"-shutdown-timeout", "positive duration"}},
		{nil, []string{"-order-deadline", "0s"}, []string{"-order-deadline", "positive duration"}},
		{nil, []string{"-poll-interval", "0"}, []string{"-poll-interval", "positive duration"}},
		// An idle worker's Redis load grows as the poll's inverse.
		{map[string]string{"ORDERWORKER_POLL_INTERVAL": "1ns"}, nil, []string{"ORDERWORKER_POLL_INTERVAL", "1ns", "at least 10ms"}},
		{nil, []string{"-poll-interval", "9ms"}, []string{"-poll-interval", "9ms", "at least 10ms"}},
		{nil, []string{"-dev-redis", "redis://127.0.0.1:1/0"}, []string{"-dev-redis needs -dev"}},
		// A queue of spaces is no unset one: its orders would wait where
		// no worker of the right spelling serves.
		{map[string]string{"ORDERWORKER_QUEUE": " "}, nil, []string{"ORDERWORKER_QUEUE", "space"}},
		{nil, []string{"-queue", "orders "}, []string{"-queue", "space"}},
		{map[string]string{"ORDERWORKER_DEQUEUERS": "many"}, nil, []string{`ORDERWORKER_DEQUEUERS="many"`, "auto or a positive integer"}},
		{map[string]string{"ORDERWORKER_DEQUEUERS": "0"}, nil, []string{`ORDERWORKER_DEQUEUERS="0"`}},
		{map[string]string{"ORDERWORKER_DEQUEUERS": "5", "ORDERWORKER_CONCURRENCY": "4"}, nil, []string{"ORDERWORKER_DEQUEUERS=5", "concurrency (4)"}},
		{nil, []string{"-dev", "-redis-url", "redis://127.0.0.1:1/0"}, []string{"-dev never uses -redis-url", "-dev-redis"}},
	}
	for _, tt := range tests {
		err := run(context.Background(), tt.args, envFunc(tt.env), io.Discard, io.Discard)
		if err == nil {
			t.Errorf("run(%v, %v) = nil, want an error", tt.env, tt.args)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("run(%v, %v) = %q, want it to name %q", tt.env, tt.args, err, w)
			}
		}
	}
}

// -dev reads none of the providers' settings, nor the webhook secret: a
// bad value of one (a production environment's, say) does not stop it,
// and without -dev the same value is refused. A fingerprint in upper case
// is the same fingerprint.
func TestDevIgnoresWhatItDoesNotRead(t *testing.T) {
	t.Parallel()
	for _, env := range []map[string]string{
		{"ALIYUN_AUTO_PAY": "1"}, {"TENCENT_ENDPOINT": "ftp://x"}, {"ALIYUN_PAGE_BASE": "7"},
		{"UNICLOUD_CREATE_OVERRUN": "-5s"}, {"ORDERWORKER_WEBHOOK_SECRET": "whsec_abc"},
	} {
		if _, err := parseConfig(nil, envFunc(env), io.Discard, io.Discard); err == nil {
			t.Errorf("%v without -dev: accepted, want it refused", env)
		}
		cfg, err := parseConfig([]string{"-dev"}, envFunc(env), io.Discard, io.Discard)
		if err != nil {
			t.Errorf("%v with -dev: %v, want it ignored", env, err)
			continue
		}
		if len(cfg.DevIgnored) == 0 && env["ORDERWORKER_WEBHOOK_SECRET"] == "" {
			t.Errorf("%v with -dev: not named among the variables ignored", env)
		}
	}
	cfg, err := parseConfig(nil, envFunc(map[string]string{"ORDERWORKER_SAME_TARGETS": "41126A66FB08D387"}), io.Discard, io.Discard)
	if err != nil || len(cfg.SameTargets) != 1 || cfg.SameTargets[0] != "41126a66fb08d387" {
		t.Errorf("a fingerprint in upper case: %v, %v; want it taken, as reasons spell it", cfg, err)
	}
}

// Valid settings for every provider the registry lists are accepted, and
// equal backoffs are a valid (constant) backoff.
func TestConfigAcceptsProviderSettings(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"ORDERWORKER_RATE_LIMITS":     "tencent=20:40, aliyun=0.5, unicloud=10",
		"ORDERWORKER_ORDER_DEADLINES": "aliyun=2h,tencent=48h,unicloud=1h",
		"ORDERWORKER_RETRY_BASE":      "3s", "ORDERWORKER_RETRY_MAX": "3s",
		"TENCENT_APP_KEY": "k", "TENCENT_APP_SECRET": "s", "ALIYUN_AUTO_PAY": "true",
	}
	cfg, err := parseConfig(nil, envFunc(env), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.RateLimits) != 3 || cfg.RateLimits["aliyun"].Rate != 0.5 || len(cfg.Deadlines) != 3 {
		t.Errorf("limits %+v, deadlines %v", cfg.RateLimits, cfg.Deadlines)
	}
	got := map[string]string{}
	for _, pc := range cfg.Providers {
		got[pc.Spec.Name] = pc.Config.String()
	}
	if !strings.Contains(got["tencent"], `TENCENT_APP_KEY="k"`) || !strings.Contains(got["tencent"], "TENCENT_APP_SECRET=***") ||
		!strings.Contains(got["aliyun"], `ALIYUN_AUTO_PAY="true"`) || !strings.Contains(got["unicloud"], `UNICLOUD_ENDPOINT="https://api.unicloud.com"`) {
		t.Errorf("provider settings = %v", got)
	}
}

// In -dev the admin server listens on loopback, at the default's port,
// unless ORDERWORKER_ADMIN_ADDR or -admin-addr asks for an address; outside
// -dev the default stands.
func TestDevAdminAddrIsLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"-dev"}, "127.0.0.1:9091"},
		// The real worker's admin address is never -dev's.
		{map[string]string{"ORDERWORKER_ADMIN_ADDR": ":9191"}, []string{"-dev"}, "127.0.0.1:9091"},
		{map[string]string{"ORDERWORKER_ADMIN_ADDR": "0.0.0.0:9091"}, []string{"-dev"}, "127.0.0.1:0"},
		{nil, []string{"-dev", "-admin-addr", ":9192"}, ":9192"},
		{map[string]string{"ORDERWORKER_ADMIN_ADDR": "0.0.0.0:9193"}, []string{"-dev", "-admin-addr", "[::1]:9194"}, "[::1]:9194"},
		{nil, nil, ":9090"},
	}
	for _, tt := range tests {
		cfg, err := parseConfig(tt.args, envFunc(tt.env), io.Discard, io.Discard)
		if err != nil {
			t.Fatalf("parseConfig(%v, %v): %v", tt.args, tt.env, err)
		}
		if cfg.AdminAddr != tt.want {
			t.Errorf("parseConfig(%v, %v): admin address %q, want %q", tt.args, tt.env, cfg.AdminAddr, tt.want)
		}
	}
}

// worker -h says what the code does: the concurrency counts provider calls
// (the server runs a quarter more orders, tasks.Headroom), the deadline
// counts from a re-drive too, and the admin settings cover the Orders pages.
func TestHelpMatchesTheCode(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	if err := run(context.Background(), []string{"-h"}, envFunc(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	help := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[0], "ORDERWORKER_") {
			help[f[0]] = line
		}
	}
	for name, wants := range map[string][]string{
		"ORDERWORKER_CONCURRENCY":         {"provider calls in flight", "a quarter more orders"},
		"ORDERWORKER_ORDER_DEADLINE":      {"after enqueue", "re-drove"},
		"ORDERWORKER_ADMIN_ADDR":          {"/monitoring/", "/orders/", "/api/orders", "-dev", "127.0.0.1"},
		"ORDERWORKER_MONITORING_TOKEN":    {"/monitoring/", "/orders/", "/api/orders"},
		"ORDERWORKER_MONITORING_READONLY": {"/orders/", "/api/orders", "resolve", "re-drive"},
	} {
		for _, w := range wants {
			if !strings.Contains(help[name], w) {
				t.Errorf("-h for %s = %q, want it to say %q", name, help[name], w)
			}
		}
	}
	if strings.Contains(help["ORDERWORKER_CONCURRENCY"], "orders processed at once") {
		t.Errorf("-h for ORDERWORKER_CONCURRENCY still counts orders: %q", help["ORDERWORKER_CONCURRENCY"])
	}
	if tasks.Headroom(20) != 5 {
		t.Errorf("tasks.Headroom(20) = %d: the help's \"a quarter more\" no longer holds", tasks.Headroom(20))
	}
}

// A variable of orderworker's that no command reads (a misspelled
// ORDERWORKER_MONITORING_TOKEN would leave the dashboard open) is named
// in a warning at start, with the setting it is likely meant for, and
// never with its value. Not parallel: it sets the process's environment.
func TestWorkerWarnsOfAVariableItDoesNotRead(t *testing.T) {
	t.Setenv("ORDERWORKER_MONITORING_TOKN", "tok-not-logged-4b1e")
	rs := taskstest.StartRedis(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done, logs := startWorker(t, ctx, rs.URL(), "127.0.0.1:0")
	for deadline := time.Now().Add(time.Minute); !strings.Contains(logs.String(), `"worker started"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not start; logs:\n%s", logs.String())
		}
	}
	cancel()
	<-done
	var warning, started map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			switch m["msg"] {
			case "environment variable not read by orderworker":
				warning = m
			case "worker started":
				started = m
			}
		}
	}
	// No provider has credentials here: the start lists none (each was
	// logged as disabled, with the reason).
	if p, ok := started["providers"].([]any); !ok || len(p) != 0 {
		t.Errorf("worker started: providers %v, want none", started["providers"])
	}
	if warning == nil {
		t.Fatalf("no warning about ORDERWORKER_MONITORING_TOKN; logs:\n%s", logs.String())
	}
	if warning["level"] != "WARN" || warning["name"] != "ORDERWORKER_MONITORING_TOKN" || warning["did_you_mean"] != "ORDERWORKER_MONITORING_TOKEN" {
		t.Errorf("warning = %v", warning)
	}
	if strings.Contains(logs.String(), "tok-not-logged-4b1e") {
		t.Error("the variable's value reached the log")
	}
}

// -h shows REDIS_URL as the -redis-url default with its password hidden.
func TestHelpHidesTheRedisPassword(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {"-dev", "-h"}} {
		var out syncBuffer
		if err := run(context.Background(), args, envFunc(map[string]string{"REDIS_URL": "redis://:Pw-In-Help-7@127.0.0.1:1/0"}), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		if s := out.String(); strings.Contains(s, "Pw-In-Help-7") || !strings.Contains(s, "redis://:xxxxx@127.0.0.1:1/0") {
			t.Errorf("worker %v prints %q; want REDIS_URL with its password hidden", args, s)
		}
	}
}

// Flags override the environment, a bad value of it too: a flag gets the
// worker past a bad variable, which is refused only when it is in effect,
// and -h prints the help (with the variable's default) whatever the
// environment holds.
func TestFlagsOverrideABadEnvironment(t *testing.T) {
	t.Parallel()
	env := envFunc(map[string]string{"ORDERWORKER_CONCURRENCY": "ten", "ORDERWORKER_RETRY_BASE": "soon"})
	c, err := parseConfig([]string{"-concurrency", "5", "-retry-base", "2s"}, env, io.Discard, io.Discard)
	if err != nil {
		t.Fatalf("flags over a bad environment: %v", err)
	}
	if c.Concurrency != 5 || c.RetryBase != 2*time.Second {
		t.Errorf("concurrency %d, retry base %s; want the flags' 5 and 2s", c.Concurrency, c.RetryBase)
	}
	_, err = parseConfig([]string{"-concurrency", "5"}, env, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `ORDERWORKER_RETRY_BASE="soon"`) || strings.Contains(err.Error(), "ORDERWORKER_CONCURRENCY") {
		t.Errorf("a bad variable no flag overrides: %v; want ORDERWORKER_RETRY_BASE named, and only it", err)
	}
	var out syncBuffer
	if err := run(context.Background(), []string{"-h"}, env, &out, io.Discard); err != nil {
		t.Fatalf("-h with a bad environment: %v", err)
	}
	if s := out.String(); !strings.Contains(s, "Usage: worker") || !regexp.MustCompile(`-concurrency int\n.*\(default 20\)`).MatchString(s) {
		t.Errorf("-h with a bad environment printed %q; want the help with the default concurrency", s)
	}
}
