package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/orderworker/orderworker/internal/logmask"
)

// newLogger returns the worker's logger. Every string it writes passes
// through the phone-number mask (package logmask), a last line of defence
// behind the masking the providers and the handler already do.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return logmask.New(w, lv, strings.EqualFold(format, "text")), nil
}
