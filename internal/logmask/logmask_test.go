package logmask

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
)

// Every string of a record, in text and in JSON, passes the phone-number
// mask: the message, string attributes (in groups too, and from a
// LogValuer), and the text of errors; a secret still logs as "***".
func TestNewMasksPhones(t *testing.T) {
	t.Parallel()
	for _, text := range []bool{true, false} {
		var b bytes.Buffer
		log := New(&b, slog.LevelDebug, text).With("order_no", "13712345678")
		log.Debug("call 13812345678 back",
			"user", "15812348558",
			slog.Group("params", "phone", "+86 139 1234 5678"),
			"error", errors.New("provider said: 13612345678 is not reachable"),
			"secret", providers.Secret("13512345678"),
			"n", 42)
		out := b.String()
		for _, clear := range []string{"13712345678", "13812345678", "15812348558", "139 1234 5678", "13612345678", "13512345678"} {
			if strings.Contains(out, clear) {
				t.Errorf("text=%v: the log shows %s in clear:\n%s", text, clear, out)
			}
		}
		for _, masked := range []string{"137****5678", "138****5678", "158****8558", "861****5678", "136****5678", "***", "42"} {
			if !strings.Contains(out, masked) {
				t.Errorf("text=%v: the log lacks %s:\n%s", text, masked, out)
			}
		}
	}
}

// The level is honoured, and JSON is the default format.
func TestNewLevelAndFormat(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	log := New(&b, slog.LevelWarn, false)
	log.Info("hidden")
	log.Warn("shown")
	if out := b.String(); strings.Contains(out, "hidden") || !strings.HasPrefix(out, "{") || !strings.Contains(out, `"msg":"shown"`) {
		t.Errorf("log = %q, want only the warning, as JSON", out)
	}
}

// The level reads as slog's own handlers write it, custom levels included,
// in both formats.
func TestLevelAsSlogWritesIt(t *testing.T) {
	t.Parallel()
	timeField := regexp.MustCompile(`^\{"time":"[^"]*",|^time=\S* `)
	for _, text := range []bool{false, true} {
		for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelWarn + 2, slog.LevelDebug - 1} {
			var got, want bytes.Buffer
			plain := &slog.HandlerOptions{Level: slog.LevelDebug - 8, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}
			var ref *slog.Logger
			if text {
				ref = slog.New(slog.NewTextHandler(&want, plain))
			} else {
				ref = slog.New(slog.NewJSONHandler(&want, plain))
			}
			log := New(&got, slog.LevelDebug-8, text)
			ctx := context.Background()
			log.Log(ctx, l, "m", "k", "v")
			ref.Log(ctx, l, "m", "k", "v")
			// Without the time, which the reference leaves out.
			g := timeField.ReplaceAllStringFunc(got.String(), func(m string) string {
				if text {
					return ""
				}
				return "{"
			})
			if g != want.String() {
				t.Errorf("text %v, level %v: %q, want %q", text, l, g, want.String())
			}
		}
	}
}

// go-redis's own messages go through the command's logger, in its format.
func TestRedisLogger(t *testing.T) {
	var b bytes.Buffer
	SetRedisLogger(New(&b, slog.LevelInfo, false))
	defer SetRedisLogger(nil)
	RedisLogger{}.Printf(context.Background(), "pool.go:770: connection pool: failed to dial after %d attempts: %s\n", 5, "refused, call 13800138000")
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON line: %q: %v", b.String(), err)
	}
	if rec["level"] != "WARN" || rec["from"] != "go-redis" || rec["msg"] != "redis: pool.go:770: connection pool: failed to dial after 5 attempts: refused, call 138****8000" {
		t.Errorf("logged %v", rec)
	}
}

// A log writes durations as Go writes them ("25s"), in JSON
// as in text, and still masks phone numbers.
func TestDurationsAsGoWritesThem(t *testing.T) {
	t.Parallel()
	for _, text := range []bool{false, true} {
		var b bytes.Buffer
		New(&b, slog.LevelInfo, text).Info("call 13812345678", "timeout", 25*time.Second, "wait", 1500*time.Millisecond)
		out := b.String()
		want := []string{`"timeout":"25s"`, `"wait":"1.5s"`}
		if text {
			want = []string{"timeout=25s", "wait=1.5s"}
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("text=%v: %q lacks %s", text, out, w)
			}
		}
		if strings.Contains(out, "13812345678") {
			t.Errorf("text=%v: %q shows a phone number", text, out)
		}
	}
}
