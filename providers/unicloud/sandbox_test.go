package unicloud_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/unicloud"
	"github.com/orderworker/orderworker/providers/unicloud/sandbox"
)

// setup returns a fresh sandbox, configured by configure before it serves,
// and a client for it built from opts (endpoint and credentials filled in
// unless set).
func setup(t *testing.T, opts unicloud.Options, configure ...func(*sandbox.Server)) (*sandbox.Server, *unicloud.Client) {
	t.Helper()
	sb := sandbox.New(accessKeyID, accessKeySecret)
	for _, f := range configure {
		f(sb)
	}
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, client(t, srv.URL, opts)
}

func client(t *testing.T, endpoint string, opts unicloud.Options) *unicloud.Client {
	t.Helper()
	opts.Endpoint = endpoint
	if opts.AccessKeyID == "" {
		opts.AccessKeyID = accessKeyID
	}
	if opts.AccessKeySecret == "" {
		opts.AccessKeySecret = accessKeySecret
	}
	c, err := unicloud.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func order(name string) providers.Order {
	return providers.Order{OrderNo: "no-" + name, Params: params(name), FirstAttempt: time.Now()}
}

func withParam(name, field, value string) providers.Order {
	o := order(name)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(o.Params, &m)
	m[field] = json.RawMessage(value)
	o.Params, _ = json.Marshal(m)
	return o
}

func checkSecretFree(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{accessKeyID, accessKeySecret, "wrong-secret"} {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("error text %q holds a credential", err)
		}
	}
}

// How the client maps each of the sandbox's answers.
func TestSandboxErrorMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    unicloud.Options
		config  func(sb *sandbox.Server) // before it serves
		prepare func(sb *sandbox.Server)
		order   providers.Order
		lookup  bool // call Lookup (with a provider id) instead of Submit
		want    providers.Code
		// wantStatus is the HTTP status the error carries.
		wantStatus int
		wantCode   string
		retry      time.Duration
		created    int // orders the sandbox holds afterwards
	}{
		{name: "bad signature", opts: unicloud.Options{AccessKeySecret: "wrong-secret"},
			want: providers.Unauthenticated, wantStatus: 400, wantCode: "InvalidParameter"},
		{name: "unknown access key", opts: unicloud.Options{AccessKeyID: "NoSuchKeyId"},
			want: providers.Unauthenticated, wantStatus: 200, wantCode: "InvalidAccessKeyId.NotFound"},
		{name: "clock 20 minutes fast", opts: unicloud.Options{Now: func() time.Time { return time.Now().Add(20 * time.Minute) }},
			want: providers.Unauthenticated, wantStatus: 400, wantCode: "InvalidTimeStamp.Expired"},
		{name: "product config error", order: withParam("pce", "specificationCode", `"ebs.ssd"`),
			want: providers.InvalidArgument, wantStatus: 200, wantCode: "ProductConfigError"},
		// A throttled create may have made the order: looked up first.
		{name: "throttled 429", prepare: func(sb *sandbox.Server) { sb.Faults().Script(fault.Throttle) },
			want: providers.Ambiguous, wantStatus: 429, wantCode: "Throttling"},
		{name: "throttled 200", config: func(sb *sandbox.Server) { sb.ThrottleStatus = 200 }, prepare: func(sb *sandbox.Server) { sb.Faults().Script(fault.Throttle) },
			want: providers.Ambiguous, wantStatus: 200, wantCode: "Throttling"},
		{name: "503 before create", prepare: func(sb *sandbox.Server) { sb.Faults().Script(fault.FailBefore) },
			want: providers.Ambiguous, wantStatus: 503, wantCode: "ServiceUnavailable"},
		{name: "500 after create", prepare: func(sb *sandbox.Server) { sb.Faults().Script(fault.FailAfter) },
			want: providers.Ambiguous, wantStatus: 500, wantCode: "InternalError", created: 1},
		{name: "lookup 503", lookup: true, prepare: func(sb *sandbox.Server) { sb.Faults().SetRates(1, map[fault.Kind]float64{fault.FailBefore: 1}) },
			want: providers.Unavailable, wantStatus: 503, wantCode: "ServiceUnavailable"},
		{name: "lookup throttled", lookup: true, prepare: func(sb *sandbox.Server) { sb.Faults().SetRates(1, map[fault.Kind]float64{fault.Throttle: 1}) },
			want: providers.RateLimited, wantStatus: 429, retry: time.Second},
		{name: "lookup unknown id", lookup: true,
			want: providers.Unavailable, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var configure []func(*sandbox.Server)
			if tt.config != nil {
				configure = append(configure, tt.config)
			}
			sb, c := setup(t, tt.opts, configure...)
			if tt.prepare != nil {
				tt.prepare(sb)
			}
			o := tt.order
			if o.Params == nil {
				o = order("map-" + strings.ReplaceAll(tt.name, " ", "-"))
			}
			var err error
			if tt.lookup {
				o.ProviderOrderID = "900000000000000001"
				_, err = c.Lookup(context.Background(), o)
			} else {
				_, err = c.Submit(context.Background(), o)
			}
			var pe *providers.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *providers.Error", err)
			}
			if pe.Code != tt.want || pe.HTTPStatus != tt.wantStatus {
				t.Errorf("got %v (http %d), want %v (http %d): %v", pe.Code, pe.HTTPStatus, tt.want, tt.wantStatus, err)
			}
			if tt.wantCode != "" && pe.ProviderCode != tt.wantCode {
				t.Errorf("ProviderCode = %q, want %q", pe.ProviderCode, tt.wantCode)
			}
			if pe.RetryAfter != tt.retry {
				t.Errorf("RetryAfter = %v, want %v", pe.RetryAfter, tt.retry)
			}
			if n := len(sb.Orders()); n != tt.created {
				t.Errorf("sandbox holds %d orders, want %d", n, tt.created)
			}
			checkSecretFree(t, err)
		})
	}
}

func TestSubmitKeepsNumericOrderID(t *testing.T) {
	t.Parallel()
	sb, c := setup(t, unicloud.Options{}, func(sb *sandbox.Server) { sb.NumericOrderID = true })
	r, err := c.Submit(context.Background(), order("numeric"))
	if err != nil {
		t.Fatal(err)
	}
	got := sb.Orders()
	if len(got) != 1 || r.ProviderOrderID != got[0].ID || len(r.ProviderOrderID) != 18 {
		t.Fatalf("ProviderOrderID = %q, sandbox holds %+v", r.ProviderOrderID, got)
	}
	if !strings.Contains(r.Message, got[0].FileSystemID) || !strings.HasPrefix(got[0].FileSystemID, "nas-") {
		t.Errorf("Message %q lacks the file system id %s", r.Message, got[0].FileSystemID)
	}
	// The id round-trips through OrderDetail.
	o := order("numeric")
	o.ProviderOrderID = r.ProviderOrderID
	l, err := c.Lookup(context.Background(), o)
	if err != nil || l.ProviderOrderID != r.ProviderOrderID || l.Status != providers.StatusPaid {
		t.Errorf("Lookup = %+v, %v", l, err)
	}
}

// The sandbox refuses a replayed request: same query, same nonce.
func TestSandboxRejectsReplay(t *testing.T) {
	t.Parallel()
	sb := sandbox.New(accessKeyID, accessKeySecret)
	var uri, body string
	var header http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		uri, body, header = r.URL.RequestURI(), string(b), r.Header.Clone()
		r.Body = io.NopCloser(strings.NewReader(body))
		sb.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := client(t, srv.URL, unicloud.Options{})
	if _, err := c.Submit(context.Background(), order("replayed")); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+uri, strings.NewReader(body))
	req.Header = header
	resp, err := ownClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct{ Code string }
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	if resp.StatusCode != http.StatusBadRequest || answer.Code != "SignatureNonceUsed" {
		t.Errorf("replay answered %d %s, want 400 SignatureNonceUsed", resp.StatusCode, answer.Code)
	}
	if n := sb.Count("replayed"); n != 1 {
		t.Errorf("sandbox holds %d orders, want 1", n)
	}
}

// A wrong endpoint (a path the server does not serve) or a wrong secret is
// a configuration problem: Unauthenticated, on which the order waits
// unchanged, whether it is a create or a lookup. Nothing is created.
func TestSandboxConfigurationProblems(t *testing.T) {
	t.Parallel()
	sb := sandbox.New(accessKeyID, accessKeySecret)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	for name, c := range map[string]*unicloud.Client{
		"wrong path":   client(t, srv.URL+"/v2", unicloud.Options{}),
		"wrong secret": client(t, srv.URL, unicloud.Options{AccessKeySecret: "wrong-secret"}),
	} {
		o := order("config-" + strings.ReplaceAll(name, " ", "-"))
		if _, err := c.Submit(context.Background(), o); providers.CodeOf(err) != providers.Unauthenticated {
			t.Errorf("%s: Submit = %v, want unauthenticated", name, err)
		}
		if _, err := c.Lookup(context.Background(), o); providers.CodeOf(err) != providers.Unauthenticated {
			t.Errorf("%s: Lookup = %v, want unauthenticated", name, err)
		}
		o.ProviderOrderID = "900000000000000001"
		if _, err := c.Lookup(context.Background(), o); providers.CodeOf(err) != providers.Unauthenticated {
			t.Errorf("%s: Lookup by id = %v, want unauthenticated", name, err)
		}
	}
	if n := len(sb.Orders()); n != 0 {
		t.Errorf("sandbox holds %d orders, want none", n)
	}
}

// ownClient has a transport of its own: httptest.Server.Close drops the
// idle connections of http.DefaultTransport, which breaks a request
// another parallel test is sending on one of them at that moment.
var ownClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
