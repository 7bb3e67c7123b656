package providers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestSendTransportRefusal: an *Error a transport returns before sending
// (a rate limiter's refusal) is the call's error, code and RetryAfter
// kept, named after the call; other transport failures are classified as
// before.
func TestSendTransportRefusal(t *testing.T) {
	t.Parallel()
	refusal := &Error{Code: RateLimited, Op: "rate limit tencent", Message: "over the rate limit", RetryAfter: 1500 * time.Millisecond}
	for _, tc := range []struct {
		name      string
		rt        roundTripFunc
		create    bool
		wantCode  Code
		wantAfter time.Duration
	}{
		{"refused create", func(*http.Request) (*http.Response, error) { return nil, refusal }, true, RateLimited, 1500 * time.Millisecond},
		{"refused lookup", func(*http.Request) (*http.Response, error) { return nil, refusal }, false, RateLimited, 1500 * time.Millisecond},
		{"dial error", func(*http.Request) (*http.Response, error) { return nil, errors.New("connection refused") }, true, Unavailable, 0},
		{"deadline before sending", func(*http.Request) (*http.Response, error) { return nil, context.DeadlineExceeded }, true, Unavailable, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc := &http.Client{Transport: tc.rt}
			req, err := http.NewRequest(http.MethodPost, "http://provider.invalid/create?AccessKeyId=AKID", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Send(context.Background(), hc, req, "tencent ServiceCreateOrder", tc.create)
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.wantCode || e.RetryAfter != tc.wantAfter || e.Op != "tencent ServiceCreateOrder" {
				t.Fatalf("Send = %v, want %v with RetryAfter %v named after the call", err, tc.wantCode, tc.wantAfter)
			}
			if strings.Contains(err.Error(), "AKID") {
				t.Errorf("error text %q holds the URL's query", err)
			}
		})
	}
	// The refusal itself is not changed.
	if refusal.Op != "rate limit tencent" {
		t.Errorf("the transport's error was modified: op %q", refusal.Op)
	}
}

// blockingBody gives its first bytes, then blocks until ctx is done: a
// request whose headers (and part of its body) are on the wire when the
// call times out, before net/http would report it written.
type blockingBody struct {
	ctx  context.Context
	sent bool
}

func (b *blockingBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, `{"OrderNo":`), nil
	}
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

func (b *blockingBody) Close() error { return nil }

// TestSendTimeoutMidRequest: a call cut off while its request is being
// sent may have reached the provider: Ambiguous for a create, whatever
// net/http says of the request being written.
func TestSendTimeoutMidRequest(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	for _, create := range []bool{true, false} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, &blockingBody{ctx: ctx})
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = 100
		_, err = Send(ctx, srv.Client(), req, "op", create)
		cancel()
		want := Unavailable
		if create {
			want = Ambiguous
		}
		if c := CodeOf(err); c != want {
			t.Errorf("create %v: %v (%v), want %v", create, c, err, want)
		}
	}
}

// Send marks an acting call (a create, a pay) in its request's context, for
// the rate limiter, and only that.
func TestSendMarksActingCalls(t *testing.T) {
	t.Parallel()
	for _, create := range []bool{true, false} {
		var seen bool
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			seen = Acting(r.Context())
			return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("{}")), Header: http.Header{}}, nil
		})}
		req, err := http.NewRequest(http.MethodPost, "http://provider.invalid/x", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Send(context.Background(), hc, req, "op", create); err != nil {
			t.Fatal(err)
		}
		if seen != create {
			t.Errorf("create %v: the transport saw Acting %v", create, seen)
		}
	}
}

// A server that answers with its own malformed status line, made of the
// request target it read (its query: an access key id, a signature), does
// not get it into the error's text.
func TestSendErrorHoldsNothingTheServerEchoed(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(conn).ReadString('\n')
			target := line
			if f := strings.Fields(line); len(f) > 1 {
				target = f[1]
			}
			fmt.Fprintf(conn, "HTTP/1.1 %s 200\r\nContent-Length: 0\r\n\r\n", target)
			conn.Close()
		}
	}()
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/openapi/nas?AccessKeyId=KEYID-IN-ECHO&Signature=SIG-IN-ECHO", nil)
	_, err = Send(context.Background(), http.DefaultClient, req, "unicloud CreateOrder", true)
	if err == nil {
		t.Fatal("Send succeeded; want the malformed status refused")
	}
	if s := err.Error(); strings.Contains(s, "KEYID-IN-ECHO") || strings.Contains(s, "SIG-IN-ECHO") || !strings.Contains(s, "malformed HTTP") {
		t.Errorf("error %q; want the kind of failure without what the server echoed", s)
	}
	if CodeOf(err) != Ambiguous {
		t.Errorf("code %v; want ambiguous (the request was sent)", CodeOf(err))
	}
}

// Local marks a failure of the worker's own store as no news of the
// provider's health, and keeps the failure itself reachable.
func TestLocalIsNoNews(t *testing.T) {
	down := errors.New("redis: connection refused")
	err := error(&Error{Code: Unavailable, Op: "op", Message: "cannot tell", Err: Local(down)})
	if !errors.Is(err, ErrNoNews) || !errors.Is(err, down) || err.Error() == "" {
		t.Errorf("Local: no news %v, the failure %v (%v)", errors.Is(err, ErrNoNews), errors.Is(err, down), err)
	}
	if errors.Is(Local(down), ErrThrottled) {
		t.Error("Local is a throttle")
	}
}
