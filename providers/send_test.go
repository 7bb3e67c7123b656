package providers

import (
	"context"
	"errors"
	"net/http"
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
