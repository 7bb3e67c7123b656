package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"sync/atomic"
)

// MaxResponseBytes bounds how much of a response body a provider reads.
const MaxResponseBytes = 1 << 20

// Response is an HTTP response read in full.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// Send performs req with hc and reads the whole body (at most
// MaxResponseBytes). Transport failures come back as *Error, classified by
// whether the request may have been sent before the failure, which it may
// from the moment it has a connection (net/http reports a request
// written only after it was flushed, and a timeout can come in between):
//
//   - no connection yet (dial failed, ctx done first): Unavailable;
//   - a connection, and create is true: Ambiguous (the order may exist);
//   - a connection, and create is false (a lookup): Unavailable.
//
// A transport that refuses a request before sending it with an *Error of
// its own (a rate limiter: RateLimited with a RetryAfter) is taken at its
// word: that error comes back, named after op.
//
// HTTP statuses are not judged here: each provider maps them itself.
//
// A request with create set is marked as an acting call in its context
// (Acting), for a transport (the rate limiter) that treats those first.
func Send(ctx context.Context, hc *http.Client, req *http.Request, op string, create bool) (*Response, error) {
	var wrote atomic.Bool // may have been sent: it has a connection
	trace := &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { wrote.Store(true) },
	}
	if create {
		ctx = context.WithValue(ctx, actingKey{}, true)
	}
	req = req.WithContext(httptrace.WithClientTrace(ctx, trace))
	resp, err := hc.Do(req)
	if err != nil {
		var refused *Error
		if !wrote.Load() && errors.As(err, &refused) {
			e := *refused
			e.Op = op
			return nil, &e
		}
		return nil, transportError(op, create, wrote.Load(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, transportError(op, create, true, err)
	}
	if len(body) > MaxResponseBytes {
		return nil, &Error{Code: codeAfterWrite(create), Op: op, HTTPStatus: resp.StatusCode,
			Message: fmt.Sprintf("response body over %d bytes", MaxResponseBytes)}
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

type actingKey struct{}

// Acting reports whether ctx is a request's that may act at the provider
// (a create, a pay), as Send marks it: a rate limiter gives such calls a
// place before reads (polls, lookups), which can wait.
func Acting(ctx context.Context) bool {
	v, _ := ctx.Value(actingKey{}).(bool)
	return v
}

func codeAfterWrite(create bool) Code {
	if create {
		return Ambiguous
	}
	return Unavailable
}

func transportError(op string, create, wrote bool, err error) *Error {
	code := Unavailable
	if wrote {
		code = codeAfterWrite(create)
	}
	// Keep the text short and free of the URL (whose query may carry an
	// access key id): report only the kind of failure.
	var reason string
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		reason = "timeout"
	case errors.Is(err, context.Canceled):
		reason = "canceled"
	default:
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			reason = "timeout"
		} else {
			reason = "transport error"
		}
	}
	if wrote {
		reason += " after the request was sent"
	} else {
		reason += " before the request was sent"
	}
	return &Error{Code: code, Op: op, Message: reason, Err: cause(err)}
}

// cause strips *url.Error, whose text holds the full URL (and with it any
// query parameters), down to its cause, whose text is cut of what a server
// may have put in it (transportText).
func cause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return transportCause{err}
}

// transportCause is a transport failure's cause with its text cut of what
// the server sent (transportText); errors.Is and As see the cause itself.
type transportCause struct{ err error }

func (c transportCause) Error() string { return transportText(c.err.Error()) }
func (c transportCause) Unwrap() error { return c.err }

// serverBytes are the parts of a transport error's text that may hold what
// the server sent, or the request: quoted text (net/http quotes a malformed
// status line or header, which a server may have made of the request it
// read, with its query's access key id and signature) and a URL's query.
var serverBytes = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|\?[^\s"]*`)

// transportText is a transport error's text with serverBytes elided.
func transportText(s string) string {
	return serverBytes.ReplaceAllStringFunc(s, func(m string) string {
		if m[0] == '"' {
			return `"…"`
		}
		return "?…"
	})
}

// NewTransport returns the HTTP transport a provider client uses unless it
// is given its own: http.DefaultTransport's settings, but keeping enough idle
// connections per host for a worker's concurrency (the default keeps two,
// so a worker with hundreds of orders in flight would open and close a
// connection, and its TLS handshake, for nearly every call).
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 512
	return t
}
