package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/orderworker/orderworker/providers"
)

// newLogger returns the worker's logger. Every string it writes passes
// through providers.MaskPhones, a last line of defence behind the masking
// the providers and the handler already do.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{
		Level: lv,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindString {
				a.Value = slog.StringValue(providers.MaskPhones(a.Value.String()))
			}
			if a.Value.Kind() == slog.KindAny {
				if err, ok := a.Value.Any().(error); ok {
					a.Value = slog.StringValue(providers.MaskPhones(err.Error()))
				}
			}
			return a
		},
	}
	if strings.EqualFold(format, "text") {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}
