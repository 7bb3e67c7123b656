package tasks

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
)

// Failed steps tried again are logged once per provider and code a
// minute, counting those between.
func TestFailNotesLogOncePerMinute(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var f failNotes
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for i := range 3 {
		f.note(log, "aliyun", "submit", providers.Unavailable, "token: unreadable answer", t0.Add(time.Duration(i)*time.Second))
	}
	f.note(log, "aliyun", "submit", providers.RateLimited, "throttled", t0.Add(3*time.Second))
	f.note(log, "tencent", "submit", providers.Unavailable, "connection refused", t0.Add(4*time.Second))
	f.note(log, "aliyun", "lookup", providers.Unavailable, "token: unreadable answer", t0.Add(5*time.Second))
	f.note(log, "aliyun", "submit", providers.Unavailable, "token: unreadable answer again", t0.Add(61*time.Second))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines; want 5 (aliyun's submit unavailable twice, its submit throttled and its lookup unavailable, tencent):\n%s", len(lines), buf.String())
	}
	for i, want := range []string{
		`provider=aliyun call=submit code=unavailable failures=1 last_reason="token: unreadable answer"`,
		`provider=aliyun call=submit code=rate_limited failures=1`,
		`provider=tencent call=submit code=unavailable failures=1`,
		`provider=aliyun call=lookup code=unavailable failures=1`,
		`provider=aliyun call=submit code=unavailable failures=3 last_reason="token: unreadable answer again" since=1m1s`,
	} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "level=WARN") {
			t.Errorf("line %d = %s; want %s at WARN", i, lines[i], want)
		}
	}
}
