// Package logmask is the logging of orderworker's commands: every string a
// log record carries (its message, string attributes, and the text of
// error attributes) passes through the phone-number mask, a last line of
// defence behind the masking the providers and the handler already do.
package logmask

import (
	"io"
	"log/slog"

	"github.com/orderworker/orderworker/providers"
)

// ReplaceAttr is a slog.HandlerOptions.ReplaceAttr that masks phone
// numbers (providers.MaskPhones) in string values, the message included,
// and in the text of error values. Other values are left as they are.
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindDuration:
		// As Go writes it ("25s"), in JSON as in text, rather than a count
		// of nanoseconds.
		a.Value = slog.StringValue(a.Value.Duration().String())
	case slog.KindString:
		a.Value = slog.StringValue(providers.MaskPhones(a.Value.String()))
	case slog.KindAny:
		if l, ok := a.Value.Any().(slog.Level); ok {
			// The record's level (slog hands it here as a value of any
			// kind once ReplaceAttr is set): written as the handlers
			// write it without one ("INFO"), not through encoding/json,
			// which every log line would otherwise pay for.
			a.Value = slog.StringValue(l.String())
			break
		}
		if err, ok := a.Value.Any().(error); ok {
			a.Value = slog.StringValue(providers.MaskPhones(err.Error()))
		}
	}
	return a
}

// New returns a logger writing to w at level, as text lines when text is
// set and as JSON lines otherwise, with ReplaceAttr applied.
func New(w io.Writer, level slog.Leveler, text bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: ReplaceAttr}
	if text {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
