package aliyun_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/aliyun/sandbox"
)

// elsewhere starts the server redirects point to and returns the URL they
// name: the server's, with a path of this call's own before the
// redirected one. It answers every request as a created, paid order, so a
// redirect followed would show as a success; it counts the requests for
// that path, which must be none. Requests for other paths are not counted:
// tests run in parallel, and a client of a test whose server has closed may
// meet this server on the port it took over, which says nothing of
// redirects.
func elsewhere(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	prefix := "/" + uuid.NewString()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, prefix+"/") {
			n.Add(1)
		} else {
			t.Logf("a request for %s, not a redirect's", r.URL.Path)
		}
		_, _ = w.Write([]byte(`{"code":200,"data":{"orderId":"20201104134310000196","paymentStatus":1}}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + prefix, &n
}

// redirectFront serves sb, but answers every request to path with status,
// a Location naming the same path on to, header and body. It returns its
// URL and the number of requests it received for a path.
func redirectFront(t *testing.T, sb http.Handler, path string, status int, header http.Header, body, to string) (string, func(string) int) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path != path {
			sb.ServeHTTP(w, r)
			return
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		// The body read, as a server does before it answers: one left
		// unread closes the connection, which a reused one meets as a
		// transport error.
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Location", to+r.URL.Path)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func(p string) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[p]
	}
}

// A redirect is never followed, by a client built with the defaults, with
// an HTTP client of the caller's (which would follow it), or by Spec: the
// signed request, the AppKey, the cloudToken and the userName go to the
// endpoint only, and a create redirected elsewhere is not sent a second
// time. A 3xx says nothing of what the server that sent it did, whatever
// it carries (a success naming an order, a refused token, a parameter
// error, a gateway reason): a create or a pay is Ambiguous, a lookup and a
// token request Unavailable, and nothing is sent again.
func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	answers := []struct {
		name   string
		header http.Header
		body   string
	}{
		{"empty", nil, ""},
		{"success", nil, `{"code":200,"data":{"orderId":"20201104134310000196","paymentStatus":1}}`},
		{"token refused", nil, `{"code":401,"message":"request auth error"}`},
		{"parameter error", nil, `{"code":460,"message":"request parameter error"}`},
		{"gateway refusal", http.Header{aliyun.HeaderErrorMessage: {"Invalid Signature"}}, ""},
	}
	run := map[string]func(context.Context, providers.Provider, providers.Order) error{
		"submit": func(ctx context.Context, p providers.Provider, o providers.Order) error {
			_, err := p.Submit(ctx, o)
			return err
		},
		"pay": func(ctx context.Context, p providers.Provider, o providers.Order) error {
			o.ProviderOrderID = "20201104134310000196"
			_, err := p.(providers.Payer).Pay(ctx, o)
			return err
		},
		"get": func(ctx context.Context, p providers.Provider, o providers.Order) error {
			o.ProviderOrderID = "20201104134310000196"
			_, err := p.Lookup(ctx, o)
			return err
		},
		"query": func(ctx context.Context, p providers.Provider, o providers.Order) error {
			o.FirstAttempt = time.Now().Add(-time.Minute)
			_, err := p.Lookup(ctx, o)
			return err
		},
	}
	calls := []struct {
		name, path, run string
		code            providers.Code
	}{
		{"create", aliyun.PathCreate, "submit", ambiguous},
		{"pay", aliyun.PathPay, "pay", ambiguous},
		{"get", aliyun.PathGet, "get", unavailable},
		{"query", aliyun.PathQuery, "query", unavailable},
		// The token is refused before any create is sent.
		{"token", aliyun.PathToken, "submit", unavailable},
	}
	clients := map[string]func(t *testing.T, url string) providers.Provider{
		"default": func(t *testing.T, url string) providers.Provider {
			return newClient(t, url, appSecret, nil, nil)
		},
		"own client": func(t *testing.T, url string) providers.Provider {
			// A client of the caller's follows redirects. Its own
			// transport, without keep-alives: on Go's shared default one,
			// a create sent on a connection the server was closing met a
			// transport error (once in a CI run), not the redirect.
			hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			return newClient(t, url, appSecret, nil, func(o *aliyun.Options) { o.HTTPClient = hc })
		},
		"spec": func(t *testing.T, url string) providers.Provider {
			env := map[string]string{aliyun.EnvEndpoint: url, aliyun.EnvAppKey: appKey, aliyun.EnvAppSecret: appSecret,
				aliyun.EnvProjectID: projectID, aliyun.EnvAutoPay: "true"}
			cfg, err := aliyun.Spec().ReadConfig(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			p, reason, err := aliyun.Spec().Build(cfg, providers.Deps{})
			if err != nil || p == nil {
				t.Fatalf("Build = %v, %q, %v", p, reason, err)
			}
			return p
		},
	}
	n := 0
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		for _, call := range calls {
			for _, a := range answers {
				for cname, client := range clients {
					n++
					dev := 900 + n
					o := testOrder(dev)
					t.Run(fmt.Sprintf("%d/%s/%s/%s", status, call.name, a.name, cname), func(t *testing.T) {
						t.Parallel()
						to, reached := elsewhere(t)
						sb := sandbox.New(appKey, appSecret, projectID)
						url, seen := redirectFront(t, sb, call.path, status, a.header, a.body, to)
						p := client(t, url)
						err := run[call.run](ctx(t), p, o)
						if c := providers.CodeOf(err); c != call.code {
							t.Errorf("code = %v (%v), want %v", c, err, call.code)
						}
						var pe *providers.Error
						if !errors.As(err, &pe) || pe.HTTPStatus != status {
							t.Errorf("error = %#v, want one at HTTP %d", err, status)
						}
						if got := reached.Load(); got != 0 {
							t.Errorf("the redirect's target received %d request(s), want none", got)
						}
						if got := seen(call.path); got != 1 {
							t.Errorf("%s sent %d time(s), want once", call.path, got)
						}
						if call.path == aliyun.PathToken {
							if got := seen(aliyun.PathCreate); got != 0 {
								t.Errorf("create sent %d time(s) without a token, want none", got)
							}
						}
						if got := sb.Count(iotID(dev)); got != 0 {
							t.Errorf("the sandbox holds %d order(s), want none", got)
						}
					})
				}
			}
		}
	}
}
