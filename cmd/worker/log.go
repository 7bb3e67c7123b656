package main

import (
	"errors"
	"io"
	"log/slog"
	"strings"

	"github.com/orderworker/orderworker/internal/logmask"
)

// newLogger returns the worker's logger. Every string it writes passes
// through the phone-number mask (package logmask), a last line of defence
// behind the masking the providers and the handler already do, and every
// duration is written as Go writes it ("25s"), in JSON as in text, rather
// than as a count of nanoseconds.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	lv, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	return logmask.New(w, lv, strings.EqualFold(format, "text")), nil
}

// parseLevel reads a log level: debug, info, warn or error.
func parseLevel(level string) (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return 0, errors.New("want debug, info, warn or error")
	}
	return lv, nil
}
