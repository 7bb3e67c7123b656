package tasks

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/orderworker/orderworker/providers"
)

// failNoteEvery is how often, at most, the worker logs that a provider's
// steps fail and are tried again, per provider, call and code.
const failNoteEvery = time.Minute

// failNotes logs the steps that fail and are tried again (a throttle, a
// provider unreachable, an answer that cannot be read), most of which
// change no order's state and so log nothing of their own: without it a
// provider failing every call for minutes left nothing in the log (a
// black-box run: 56 failed token calls in 90 s, seen only in the metrics
// and the orders' reasons). One line per provider, call and code at most
// every failNoteEvery, counting the failures since the last line (those
// after the last one are in the metrics only), with the latest reason
// (masked as every reason is). The zero value is ready.
type failNotes struct {
	mu   sync.Mutex
	last map[failKey]*failNote
}

type failKey struct {
	provider, call string
	code           providers.Code
}

type failNote struct {
	at time.Time // when it was last logged; zero: never
	n  int       // failures since
}

// note counts one failed step of call (submit, lookup, …; "" when the step
// made none); it logs when the provider, call and code were not logged
// within failNoteEvery.
func (f *failNotes) note(log *slog.Logger, provider, call string, code providers.Code, reason string, now time.Time) {
	f.mu.Lock()
	if f.last == nil {
		f.last = map[failKey]*failNote{}
	}
	k := failKey{provider, call, code}
	e := f.last[k]
	if e == nil {
		e = &failNote{}
		f.last[k] = e
	}
	e.n++
	if !e.at.IsZero() && now.Sub(e.at) < failNoteEvery {
		f.mu.Unlock()
		return
	}
	n, since := e.n, e.at
	e.at, e.n = now, 0
	f.mu.Unlock()
	attrs := []slog.Attr{slog.String("provider", provider), slog.String("call", call), slog.String("code", code.String()), slog.Int("failures", n), slog.String("last_reason", reason)}
	if !since.IsZero() {
		attrs = append(attrs, slog.Duration("since", now.Sub(since).Round(time.Second)))
	}
	log.LogAttrs(context.Background(), slog.LevelWarn, "provider steps failing and tried again", attrs...)
}
