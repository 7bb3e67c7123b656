package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/internal/devmode"
)

// An error about a setting names where its value came from: the flag when
// the command line gave it, else the variable.
func TestErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		env      map[string]string
		args     []string
		want     string
		dontWant string
	}{
		{map[string]string{"ORDERWORKER_LOG_FORMAT": "xml"}, nil, `ORDERWORKER_LOG_FORMAT="xml": want json or text`, "-log-format"},
		{map[string]string{"ORDERWORKER_LOG_FORMAT": "text"}, []string{"-log-format", "xml"}, `-log-format "xml": want json or text`, "ORDERWORKER_LOG_FORMAT"},
		{map[string]string{"ORDERWORKER_LOG_LEVEL": "loud"}, nil, `ORDERWORKER_LOG_LEVEL="loud": want debug, info, warn or error`, "-log-level"},
		{nil, []string{"-log-level", "loud"}, `-log-level "loud": want debug, info, warn or error`, "ORDERWORKER_LOG_LEVEL"},
		{map[string]string{"ORDERWORKER_ADMIN_ADDR": "nonsense"}, nil, `ORDERWORKER_ADMIN_ADDR="nonsense"`, "-admin-addr"},
		{nil, []string{"-admin-addr", "nonsense"}, `-admin-addr "nonsense"`, "ORDERWORKER_ADMIN_ADDR"},
		{map[string]string{"ORDERWORKER_ADMIN_ADDR": busy.Addr().String(), "REDIS_URL": "redis://127.0.0.1:1/0"}, nil,
			`admin address ORDERWORKER_ADMIN_ADDR="` + busy.Addr().String() + `": listen tcp`, "-admin-addr"},
		{map[string]string{"REDIS_URL": "garbage"}, nil, "REDIS_URL: ", "-redis-url"},
		{nil, []string{"-redis-url", "garbage"}, "-redis-url: ", "REDIS_URL"},
	} {
		err := run(context.Background(), c.args, envFunc(c.env), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), c.dontWant) {
			t.Errorf("worker %v with %v = %v; want an error naming %s, not %s", c.args, c.env, err, c.want, c.dontWant)
		}
	}
}

// logLines parses JSON log lines.
func logLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(s, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// -dev reads only its sandboxes' provider settings: one warning at start
// names each variable set in the environment that it ignores (the
// providers' settings, REDIS_URL, ORDERWORKER_API_ADDR,
// ORDERWORKER_ADMIN_ADDR), never a value.
func TestDevWarnsOfTheSettingsItIgnores(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"REDIS_URL":               "redis://" + freeAddr(t) + "/0",
		"ALIYUN_AUTO_PAY":         "false",
		"ALIYUN_PAGE_BASE":        "1",
		"TENCENT_ENDPOINT":        "https://tencent.example",
		"TENCENT_APP_SECRET":      "secret-value-7c1d",
		"ORDERWORKER_ADMIN_ADDR":  ":9090",
		"ORDERWORKER_API_ADDR":    ":8080",
		"ORDERWORKER_QUEUE":       "orders", // read by -dev
		"ORDERWORKER_CONCURRENCY": "4",      // read by -dev
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-dev", "-shutdown-timeout", "2s"}, envFunc(env), io.Discard, &logs)
	}()
	waitStarted(t, &logs)
	cancel()
	<-done
	var warnings []map[string]any
	for _, m := range logLines(t, logs.String()) {
		if strings.HasPrefix(m["msg"].(string), "dev: ignoring these variables") {
			warnings = append(warnings, m)
		}
	}
	if len(warnings) != 1 || warnings[0]["level"] != "WARN" {
		t.Fatalf("warnings about ignored variables: %v; want one\nlogs:\n%s", warnings, logs.String())
	}
	var got []string
	for _, v := range warnings[0]["variables"].([]any) {
		got = append(got, v.(string))
	}
	want := []string{"REDIS_URL", "ORDERWORKER_ADMIN_ADDR", "TENCENT_ENDPOINT", "TENCENT_APP_SECRET", "ALIYUN_AUTO_PAY", "ALIYUN_PAGE_BASE", "ORDERWORKER_API_ADDR"}
	if !slices.Equal(got, want) {
		t.Errorf("ignored variables named %v, want %v", got, want)
	}
	if strings.Contains(logs.String(), "secret-value-7c1d") || strings.Contains(logs.String(), "tencent.example") {
		t.Errorf("a value reached the log:\n%s", logs.String())
	}
	// -admin-addr overrides ORDERWORKER_ADMIN_ADDR as it does without
	// -dev: not named then; and without any, no warning.
	cfg, err := parseConfig([]string{"-dev", "-admin-addr", "127.0.0.1:0"}, envFunc(env), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(cfg.DevIgnored, "ORDERWORKER_ADMIN_ADDR") {
		t.Errorf("with -admin-addr, DevIgnored = %v names ORDERWORKER_ADMIN_ADDR", cfg.DevIgnored)
	}
	if cfg, err := parseConfig([]string{"-dev"}, envFunc(map[string]string{"ORDERWORKER_QUEUE": "q"}), io.Discard, io.Discard); err != nil || len(cfg.DevIgnored) != 0 {
		t.Errorf("DevIgnored without provider settings = %v, %v; want none", cfg.DevIgnored, err)
	}
}

// With REDIS_URL on -dev's own port, the embedded Redis listens elsewhere
// and the warning gives that reason, not a port in use.
func TestDevSaysWhyItLeavesItsOwnPort(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	cfg := &config{RedisURL: "redis://127.0.0.1:" + devmode.RedisPort + "/0"}
	d := &devEnv{stop: make(chan struct{})}
	if err := d.startRedis(cfg, slog.New(slog.NewTextHandler(&b, nil))); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if out := b.String(); !strings.Contains(out, "REDIS_URL names the port of -dev's own Redis") || strings.Contains(out, "in use") || strings.Contains(out, "not free") {
		t.Errorf("log %q; want it to say REDIS_URL names -dev's port, and no port in use", out)
	}
}

// A provider with some of its credentials but not all is disabled with a
// warning naming what is missing (likely a typo); one with none is
// disabled with an info line, as before.
func TestHalfConfiguredProviderWarns(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig(nil, envFunc(map[string]string{"TENCENT_APP_KEY": "k-value-91f2", "ALIYUN_AUTO_PAY": "true"}), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := buildProviders(cfg, nil, slog.New(slog.NewJSONHandler(&b, nil)), nil); err != nil {
		t.Fatal(err)
	}
	levels := map[string]map[string]any{}
	for _, m := range logLines(t, b.String()) {
		levels[m["provider"].(string)] = m
	}
	tc := levels["tencent"]
	if tc["level"] != "WARN" || !strings.Contains(tc["msg"].(string), "provider disabled") || !slices.Equal(asStrings(tc["missing"]), []string{"TENCENT_APP_SECRET"}) {
		t.Errorf("tencent with its key only: %v; want a warning naming TENCENT_APP_SECRET", tc)
	}
	// ALIYUN_AUTO_PAY is no credential.
	for _, p := range []string{"aliyun", "unicloud"} {
		if m := levels[p]; m["level"] != "INFO" || m["msg"] != "provider disabled" {
			t.Errorf("%s without credentials: %v; want the info line", p, m)
		}
	}
	if strings.Contains(b.String(), "k-value-91f2") {
		t.Errorf("a value reached the log: %s", b.String())
	}
}

func asStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// The worker's log writes durations as Go writes them ("25s"), in JSON as
// in text, and still masks phone numbers.
func TestLogDurations(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"json", "text"} {
		var b bytes.Buffer
		log, err := newLogger(&b, "info", format)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("call 13812345678", "timeout", 25*time.Second, slog.Group("g", "wait", 1500*time.Millisecond))
		out := b.String()
		want := []string{`"timeout":"25s"`, `"wait":"1.5s"`}
		if format == "text" {
			want = []string{"timeout=25s", "g.wait=1.5s"}
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: %q lacks %s", format, out, w)
			}
		}
		if strings.Contains(out, "13812345678") {
			t.Errorf("%s: %q shows a phone number", format, out)
		}
	}
}

// worker -h lists every Redis URL scheme the parser takes, and says that
// -dev's admin server falls back to a free port, which its log names.
func TestHelpDocumentsSchemesAndDevFallback(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	if err := run(context.Background(), []string{"-h"}, envFunc(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"redis://", "rediss://", "redis-socket://", "redis-sentinel://", "rediss-sentinel://", "redis-cluster://", "rediss-cluster://",
		"free loopback port when that one is taken", `"admin server listening" names it`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("worker -h does not say %q", want)
		}
	}
}
