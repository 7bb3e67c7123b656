package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderworker/orderworker/internal/logmask"
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/tencent"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// The monitoring token is accepted as a bearer token or a basic-auth
// password, with the auth scheme in any case (RFC 9110 §11.1).
func TestRequireTokenSchemes(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	h := requireToken(token, ok)
	basic := func(user, pass string) string {
		return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	}
	tests := []struct {
		auth string
		want int
	}{
		{"Bearer " + token, http.StatusOK},
		{"bearer " + token, http.StatusOK},
		{"BEARER " + token, http.StatusOK},
		{"bEaReR " + token, http.StatusOK},
		{"Bearer   " + token, http.StatusOK},
		{"Basic " + basic("admin", token), http.StatusOK},
		{"basic " + basic("", token), http.StatusOK},
		{"", http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
		{"Bearer ", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"Bearer" + token, http.StatusUnauthorized},
		{"Token " + token, http.StatusUnauthorized},
		{"bearer " + token + "x", http.StatusUnauthorized},
		{"Basic " + basic("admin", "wrong"), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/monitoring/", nil)
		if tt.auth != "" {
			r.Header.Set("Authorization", tt.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("Authorization %q: status %d, want %d", tt.auth, w.Code, tt.want)
		}
	}
	// Two Authorization headers, the first the token: refused (a proxy or
	// an audit log reading the other would see another operator).
	r := httptest.NewRequest(http.MethodGet, "/monitoring/", nil)
	r.Header.Add("Authorization", "Bearer "+token)
	r.Header.Add("Authorization", "Basic "+basic("mallory", "wrong"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("two Authorization headers: status %d, want %d", w.Code, http.StatusUnauthorized)
	}
}

// The dashboard's actions are refused when another site's page makes the
// browser send them (the operator's credentials ride along); the
// dashboard's own page, and curl, pass.
func TestMonitoringRefusesCrossSiteActions(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	var reached []string
	monitoring := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = append(reached, r.Method+" "+r.Header.Get("Sec-Fetch-Site"))
		w.WriteHeader(http.StatusNoContent)
	})
	h := adminHandler(prometheus.NewRegistry(), func() error { return nil }, monitoring, nil, token)
	tests := []struct {
		method string
		header map[string]string
		want   int
	}{
		{http.MethodPost, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{http.MethodDelete, map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{http.MethodPost, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{http.MethodPost, map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusNoContent},
		{http.MethodPost, nil, http.StatusNoContent}, // curl, a script
		{http.MethodGet, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusNoContent},
	}
	for _, tt := range tests {
		reached = nil
		r := httptest.NewRequest(tt.method, "http://admin.example/monitoring/api/queues/orders:pause", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		for k, v := range tt.header {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("%s %v: status %d, want %d", tt.method, tt.header, w.Code, tt.want)
		}
		if got := len(reached) == 1; got != (tt.want == http.StatusNoContent) {
			t.Errorf("%s %v: reached the dashboard %v, want %v", tt.method, tt.header, got, !got)
		}
	}
}

// Without a token, the admin pages answer anyone who reaches the address,
// but not a browser sent by a web page whose name was pointed at it (DNS
// rebinding: Origin and Host that name, same-origin), which would drive
// the Orders pages' actions and read them; by an IP address or localhost,
// and from clients that are no browser (Prometheus scraping by a service
// name), they answer.
func TestTokenlessAdminRefusesAReboundName(t *testing.T) {
	t.Parallel()
	served := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	h := adminHandler(prometheus.NewRegistry(), func() error { return nil }, http.HandlerFunc(served), http.HandlerFunc(served), "")
	browser := func(host string) map[string]string {
		return map[string]string{"Origin": "http://" + host, "Sec-Fetch-Site": "same-origin"}
	}
	for _, tt := range []struct {
		method, host, path string
		header             map[string]string
		want               int
	}{
		{http.MethodPost, "evil.example:9090", "/api/orders/tencent/T1/resolve", browser("evil.example:9090"), http.StatusForbidden},
		{http.MethodGet, "evil.example:9090", "/orders/", map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}, http.StatusForbidden},
		{http.MethodPost, "evil.example:9090", "/monitoring/api/queues/orders:pause", browser("evil.example:9090"), http.StatusForbidden},
		{http.MethodPost, "127.0.0.1:9090", "/api/orders/tencent/T1/resolve", browser("127.0.0.1:9090"), http.StatusNoContent},
		{http.MethodGet, "localhost:8080", "/orders/", map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}, http.StatusNoContent},
		{http.MethodPost, "worker:9090", "/api/orders/tencent/T1/resolve", nil, http.StatusNoContent}, // curl, a script
		{http.MethodGet, "worker:9090", "/metrics", nil, http.StatusOK},
	} {
		r := httptest.NewRequest(tt.method, "http://"+tt.host+tt.path, nil)
		for k, v := range tt.header {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("%s %s%s %v: status %d, want %d (%s)", tt.method, tt.host, tt.path, tt.header, w.Code, tt.want, w.Body)
		}
	}
}

// The dashboard's payload view: a payload it cannot read is a placeholder
// (a producer may have written anything in it), and personal data is
// masked whatever JSON value holds it and however deep.
func TestMaskPayload(t *testing.T) {
	t.Parallel()
	set := providers.NewSet()
	set.Disable(aliyun.Name, "test", aliyun.Validate, aliyun.Spec().Sensitive...)
	set.Disable("acme", "test", nil, "holder")
	set.DisableSpec(tencent.Spec(), "test")
	const aliyunOrder = `{"provider":"aliyun","order_no":"A1","params":{"iotId":"dev-1","copies":1,"userName":"Li Si Guang"}}`
	tests := []struct {
		name, payload string
		want          []string // in the view
		clear         []string // never in it
	}{
		{"readable", aliyunOrder,
			[]string{`"order_no":"A1"`, `"iotId":"dev-1"`, `"copies":1`, `"userName":"L****g"`}, []string{"Li Si Guang"}},
		{"trailing NUL", aliyunOrder + "\x00",
			[]string{fmt.Sprintf("(unreadable payload, %d bytes)", len(aliyunOrder)+1)}, []string{"Li Si", "dev-1"}},
		{"not JSON", `phone=18812345678; userName=Li Si Guang`,
			[]string{"(unreadable payload, 39 bytes)"}, []string{"1881234", "Li Si", "188****5678"}},
		{"a name in an array", `{"provider":"aliyun","order_no":"A2","params":{"iotId":"dev-1","userName":["Li Si Guang"]}}`,
			[]string{`"userName":"***"`, `"iotId":"dev-1"`}, []string{"Li Si"}},
		{"a name in an object", `{"provider":"aliyun","order_no":"A3","params":{"UserName":{"first":"Li","last":"Si Guang"},"nickName":42}}`,
			[]string{`"UserName":"***"`, `"nickName":"***"`}, []string{"Si Guang", "42"}},
		{"nested personal keys", `{"provider":"tencent","order_no":"T1","params":{"contact":{"realName":"Wang Xiao Ming","mobile":["13912345678"],"note":"ok"},"list":[{"phone":"Zhang San Feng"}]}}`,
			[]string{`"realName":"W****g"`, `"mobile":"***"`, `"note":"ok"`, `"phone":"Z****g"`}, []string{"Xiao", "San Feng", "13912345678", "139****5678"}},
		{"a provider's own sensitive param", `{"provider":"acme","order_no":"X1","params":{"holder":["Li Si Guang"],"other":"kept"}}`,
			[]string{`"holder":"***"`, `"other":"kept"`}, []string{"Li Si"}},
		{"phones anywhere", `{"provider":"tencent","order_no":"13712345678","params":{"CustomerId":"13912345678","ItemNum":12345678901234}}`,
			[]string{`"order_no":"137****5678"`, `"CustomerId":"139****5678"`, `"ItemNum":12345678901234`}, []string{"13712345678", "13912345678"}},
		{"tencent's CustomerId", `{"provider":"tencent","order_no":"T2","params":{"CustomerId":"zhang_san_feng","ItemId":"D-1","ItemNum":1}}`,
			[]string{`"CustomerId":"z****g"`, `"ItemId":"D-1"`}, []string{"zhang"}},
		{"sealed", `{"provider":"aliyun","order_no":"A4","params":"sealed:v1:AAAA"}`,
			[]string{`"params":"sealed:v1:AAAA"`}, nil},
		{"no params", `{"provider":"aliyun","order_no":"A5"}`,
			[]string{`"order_no":"A5"`, `"params":null`}, nil},
	}
	for _, tt := range tests {
		got := maskPayload([]byte(tt.payload), set)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: view %q lacks %s", tt.name, got, w)
			}
		}
		for _, c := range tt.clear {
			if strings.Contains(got, c) {
				t.Errorf("%s: view %q shows %s", tt.name, got, c)
			}
		}
	}
}

// /readyz, which anyone who reaches the admin port may ask, names the
// provider and the kind of problem, or that Redis is unreachable, and
// nothing of the detail (a provider's message, Redis's error text); the
// log has the detail, once per change.
func TestReadyzSaysOnlyTheKind(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	log := logmask.New(&logs, slog.LevelInfo, false)
	problems := tasks.NewProblems()
	var redisErr error
	started := false
	ready := readinessCheck(func() bool { return started }, func() error { return redisErr }, problems,
		func() error { return nil }, []string{"tencent", "aliyun"}, log)
	srv := httptest.NewServer(adminHandler(prometheus.NewRegistry(), ready, http.NotFoundHandler(), nil, ""))
	defer srv.Close()
	readyz := func() (int, string) {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	check := func(wantCode int, want string, hidden ...string) {
		t.Helper()
		code, body := readyz()
		if code != wantCode || body != want {
			t.Errorf("/readyz = %d %q, want %d %q", code, body, wantCode, want)
		}
		for _, h := range hidden {
			if strings.Contains(body, h) {
				t.Errorf("/readyz %q shows %q", body, h)
			}
		}
	}

	check(http.StatusServiceUnavailable, "not ready: starting")
	// Redis down since the start: said so, rather than "starting".
	redisErr = errors.New("dial tcp 10.1.2.3:6379: connect: connection refused")
	check(http.StatusServiceUnavailable, "not ready: redis unreachable", "10.1.2.3")
	redisErr = nil
	check(http.StatusServiceUnavailable, "not ready: starting")
	started = true
	check(http.StatusOK, "ready")

	redisErr = errors.New("dial tcp 10.1.2.3:6379: connect: connection refused")
	check(http.StatusServiceUnavailable, "not ready: redis unreachable", "10.1.2.3", "refused")
	check(http.StatusServiceUnavailable, "not ready: redis unreachable")
	redisErr = nil

	problems.Report("tencent", tasks.ProblemCredentials, "AppKey AKID-secret-1 is not valid for 13912345678")
	problems.Report("aliyun", tasks.ProblemProviderDisabled, "disabled: ALIYUN_APP_KEY is not set")
	problems.Report("acme-13712345678", tasks.ProblemDataKey, "sealed params: cannot decrypt with this data key")
	check(http.StatusServiceUnavailable,
		"not ready: a provider: cannot open sealed params (data key); aliyun: provider disabled (no credentials); tencent: credentials rejected",
		"AKID", "1391234", "139****", "ALIYUN_APP_KEY", "1371234", "decrypt")
	problems.Clear("tencent", tasks.ProblemCredentials)
	problems.Clear("aliyun", tasks.ProblemProviderDisabled)
	problems.Clear("acme-13712345678", tasks.ProblemDataKey)
	// The replicas' hold is read as it stands (the ledger's check), not
	// from the problem a refused write reported, which lasts two
	// minutes past the last one and comes only with a write; it is
	// Redis's, not a provider's.
	problems.Report("tencent", tasks.ProblemReplicas, "the master reports 0 replicas, ORDERWORKER_MIN_REPLICAS is 1")
	check(http.StatusOK, "ready")
	redisErr = fmt.Errorf("claim: %w", &ledger.TooFewReplicasError{Have: 0, Want: 1})
	check(http.StatusServiceUnavailable, "not ready: too few redis replicas", "ORDERWORKER_MIN_REPLICAS", "tencent")
	redisErr = &ledger.OutOfMemoryError{Used: 2 << 20, Max: 1 << 20}
	check(http.StatusServiceUnavailable, "not ready: redis out of memory", "maxmemory")
	redisErr = fmt.Errorf("mark: %w", ledger.ErrReplicaNow)
	check(http.StatusServiceUnavailable, "not ready: redis is a replica now", "failover")
	redisErr = fmt.Errorf("read the master's replica count: %w", redisReply("NOPERM User orders has no permissions to run the 'info' command"))
	check(http.StatusServiceUnavailable, "not ready: redis refuses the ledger's check", "NOPERM", "orders")
	redisErr = nil
	problems.Clear("tencent", tasks.ProblemReplicas)
	check(http.StatusOK, "ready")

	// The log has each reason once per time it began, with its detail
	// (masked): Redis was unreachable twice, while starting and after.
	out := logs.String()
	for _, w := range []string{"10.1.2.3:6379: connect: connection refused", "AKID-secret-1 is not valid for 139****5678", "ALIYUN_APP_KEY is not set", "ORDERWORKER_MIN_REPLICAS"} {
		if !strings.Contains(out, w) {
			t.Errorf("the log lacks %q:\n%s", w, out)
		}
	}
	if n := strings.Count(out, "redis unreachable"); n != 2 {
		t.Errorf("the log says redis unreachable %d times, want twice:\n%s", n, out)
	}
	if strings.Contains(out, "13912345678") {
		t.Errorf("the log shows a phone number in clear:\n%s", out)
	}

	// An error of another kind is never quoted.
	plain := httptest.NewServer(adminHandler(prometheus.NewRegistry(), func() error { return errors.New("secret detail") }, http.NotFoundHandler(), nil, ""))
	defer plain.Close()
	resp, err := http.Get(plain.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(b), "secret") {
		t.Errorf("/readyz with a plain error = %d %q", resp.StatusCode, b)
	}
}

// Every kind of configuration problem has its own words on /readyz (the
// README says it names the kind), none the catch-all; the replicas' hold
// is not a provider's problem there.
func TestReadyzNamesEveryProblemKind(t *testing.T) {
	t.Parallel()
	for _, kind := range tasks.ProblemKinds() {
		if kind == tasks.ProblemReplicas {
			continue // read as it stands (TestReadyzSaysOnlyTheKind)
		}
		problems := tasks.NewProblems()
		problems.Report("tencent", kind, "detail")
		got := problemSummary(problems, []string{"tencent"})
		if phrase, ok := problemPhrases[kind]; !ok || got != "tencent: "+phrase {
			t.Errorf("kind %s: /readyz says %q; want words of its own", kind, got)
		}
	}
}

// The worker warns when its dashboard and orders API answer anyone who
// reaches the admin address: no token, and not on loopback.
func TestOpenAdminIsWarnedOf(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		addr  string
		token providers.Secret
		open  bool
	}{
		{"0.0.0.0:9090", "", true},
		{"10.1.2.3:9090", "", true},
		{"[::]:9090", "", true},
		{"127.0.0.1:9090", "", false},
		{"[::1]:9090", "", false},
		{"0.0.0.0:9090", "t0ken", false},
	} {
		a, err := net.ResolveTCPAddr("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := openAdmin(a, tt.token); got != tt.open {
			t.Errorf("openAdmin(%s, token %v) = %v, want %v", tt.addr, tt.token != "", got, tt.open)
		}
	}
}

// redisReply is a reply error of Redis's, as go-redis gives it.
type redisReply string

func (e redisReply) Error() string { return string(e) }
func (redisReply) RedisError()     {}
