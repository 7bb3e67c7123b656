package tencent_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/tencent"
)

// A redirect is never followed, by a client built with the defaults, with
// an HTTP client of the caller's (which would follow it), or by Spec: the
// signed body and the AppKey go to the endpoint only, and a create
// redirected elsewhere is not sent a second time. A 3xx says nothing of
// what the server that sent it did, whatever its body holds (Status OK, a
// documented refusal, an empty list): a create is Ambiguous (the order is
// looked up), a listing Unavailable (never NotFound).
func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	bodies := map[string]string{
		"empty":   "",
		"created": `{"Response":{"RequestId":"r","Status":"OK"}}`,
		"refusal": `{"Response":{"Error":{"Code":"InvalidAction","Message":"x"},"RequestId":"r"}}`,
		"no list": `{"Response":{"RequestId":"r","Orders":[],"Total":0}}`,
	}
	clients := map[string]func(t *testing.T, url string) providers.Provider{
		"default": func(t *testing.T, url string) providers.Provider {
			c, err := tencent.New(tencent.Options{Endpoint: url, AppKey: appKey, AppSecret: appSecret})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		"own client": func(t *testing.T, url string) providers.Provider {
			// A client with Go's default redirect policy, on a transport
			// of its own: http.DefaultTransport, shared by every test here,
			// may keep an idle connection to a closed server whose port
			// this test's server took over, and a create on it fails
			// mid-request.
			tr := http.DefaultTransport.(*http.Transport).Clone()
			t.Cleanup(tr.CloseIdleConnections)
			c, err := tencent.New(tencent.Options{Endpoint: url, AppKey: appKey, AppSecret: appSecret, HTTPClient: &http.Client{Transport: tr}})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		"spec": func(t *testing.T, url string) providers.Provider {
			env := map[string]string{tencent.EnvEndpoint: url, tencent.EnvAppKey: appKey, tencent.EnvAppSecret: appSecret}
			cfg, err := tencent.Spec().ReadConfig(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			p, reason, err := tencent.Spec().Build(cfg, providers.Deps{})
			if err != nil || p == nil {
				t.Fatalf("Build = %v, %q, %v", p, reason, err)
			}
			return p
		},
	}
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		for bname, body := range bodies {
			for cname, client := range clients {
				t.Run(fmt.Sprintf("%d/%s/%s", status, bname, cname), func(t *testing.T) {
					t.Parallel()
					// The redirect's target answers as a create and a
					// listing that worked, so a redirect followed would
					// show as a success.
					// Only requests for this call's own path count: a
					// client of another test whose server closed may meet
					// this one on the port it took over.
					var reached atomic.Int32
					prefix := "/" + uuid.NewString()
					target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if strings.HasPrefix(r.URL.Path, prefix+"/") {
							reached.Add(1)
						} else {
							t.Logf("a request for %s, not a redirect's", r.URL.Path)
						}
						_, _ = w.Write([]byte(`{"Response":{"RequestId":"r","Status":"OK","Orders":[` + oursListed + `],"Total":1}}`))
					}))
					t.Cleanup(target.Close)
					var sent atomic.Int32
					front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						sent.Add(1)
						// The body read, as a server does before it answers: one left
						// unread closes the connection, which a reused one meets as a
						// transport error.
						_, _ = io.Copy(io.Discard, r.Body)
						w.Header().Set("Location", target.URL+prefix+r.URL.Path)
						w.WriteHeader(status)
						_, _ = w.Write([]byte(body))
					}))
					t.Cleanup(front.Close)
					p := client(t, front.URL)

					_, err := p.Submit(lookupCtx(t), order("Mine", ours))
					if c := providers.CodeOf(err); c != providers.Ambiguous {
						t.Errorf("Submit redirected = %v, want ambiguous", err)
					}
					var pe *providers.Error
					if !errors.As(err, &pe) || pe.HTTPStatus != status {
						t.Errorf("Submit error = %#v, want one at HTTP %d", err, status)
					}
					if got := sent.Load(); got != 1 {
						t.Errorf("create sent %d time(s), want once", got)
					}

					_, err = p.Lookup(lookupCtx(t), order("Mine", ours))
					if c := providers.CodeOf(err); c != providers.Unavailable {
						t.Errorf("Lookup redirected = %v, want unavailable", err)
					}
					if got := reached.Load(); got != 0 {
						t.Errorf("the redirect's target received %d request(s), want none", got)
					}
				})
			}
		}
	}
}
