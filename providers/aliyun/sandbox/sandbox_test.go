package sandbox_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/aliyun/sandbox"
)

const appKey, appSecret, project = "24881234", "SandboxSecret-1", "proj1"

type answer struct {
	status  int
	gateway string
	code    int
	message string
	data    map[string]any
}

type env struct {
	t   *testing.T
	sb  *sandbox.Server
	url string
}

func setup(t *testing.T) *env {
	t.Helper()
	sb := sandbox.New(appKey, appSecret, project)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return &env{t: t, sb: sb, url: srv.URL}
}

// do posts an envelope to path, signed with secret at time at; tamper, if
// given, edits the request after signing.
func (e *env) do(path, token string, params any, secret string, at time.Time, tamper func(*http.Request)) answer {
	e.t.Helper()
	body, _ := json.Marshal(aliyun.NewEnvelope(uuid.NewString(), token, params))
	req, _ := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader(body))
	aliyun.SignRequest(req, body, appKey, secret, at, uuid.NewString())
	if tamper != nil {
		tamper(req)
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) answer {
	e.t.Helper()
	resp, err := ownClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, gateway: resp.Header.Get(aliyun.HeaderErrorMessage)}
	if a.gateway != "" {
		if len(raw) != 0 {
			e.t.Errorf("gateway error with a body: %s", raw)
		}
		return a
	}
	var b struct {
		Code    int
		Message string
		Data    map[string]any
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		e.t.Fatalf("body %q: %v", raw, err)
	}
	a.code, a.message, a.data = b.Code, b.Message, b.Data
	return a
}

func (e *env) token() string {
	e.t.Helper()
	a := e.do(aliyun.PathToken, "", map[string]string{"grantType": "project", "res": project}, appSecret, time.Now(), nil)
	tok, _ := a.data["cloudToken"].(string)
	if a.code != 200 || tok == "" {
		e.t.Fatalf("token: %+v", a)
	}
	return tok
}

var createParams = map[string]any{"iotId": "dev1", "commodityCode": "streamingResource_20_10", "copies": 1, "userName": "15812348558"}

func TestGatewayChecks(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tok := e.token()
	now := time.Now()
	tests := []struct {
		name   string
		secret string
		at     time.Time
		tamper func(*http.Request)
		status int
		prefix string
	}{
		{"unknown AppKey", appSecret, now, func(r *http.Request) { r.Header.Set("X-Ca-Key", "nobody") }, 400, "Invalid AppKey"},
		{"no signature", appSecret, now, func(r *http.Request) { r.Header.Del("X-Ca-Signature") }, 401, "Empty Signature"},
		{"bad secret", "wrong", now, nil, 400, "Invalid Signature, Server StringToSign:POST"},
		{"body changed", appSecret, now, func(r *http.Request) {
			b := []byte(`{"id":"1","version":"1.0","request":{"apiVer":"1.0.0"},"params":{}}`)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		}, 400, "Invalid Content-MD5"},
		{"signed header changed", appSecret, now, func(r *http.Request) { r.Header.Set("X-Ca-Nonce", uuid.NewString()) }, 400, "Invalid Signature"},
		{"accept changed", appSecret, now, func(r *http.Request) { r.Header.Set("Accept", "*/*") }, 400, "Invalid Signature"},
		{"old timestamp", appSecret, now.Add(-16 * time.Minute), nil, 400, "Timestamp Expired"},
		{"future timestamp", appSecret, now.Add(16 * time.Minute), nil, 400, "Timestamp Expired"},
		{"unknown path", appSecret, now, func(r *http.Request) { r.URL.Path = "/nope" }, 404, "Invalid Url"},
	}
	for _, tt := range tests {
		a := e.do(aliyun.PathCreate, tok, createParams, tt.secret, tt.at, tt.tamper)
		if a.status != tt.status || !strings.HasPrefix(a.gateway, tt.prefix) {
			t.Errorf("%s: http %d %q, want %d %q", tt.name, a.status, a.gateway, tt.status, tt.prefix)
		}
	}
	if n := e.sb.Count("dev1"); n != 0 {
		t.Errorf("%d orders created by refused requests", n)
	}
	// Within the window, slightly off clocks are fine.
	if a := e.do(aliyun.PathCreate, tok, createParams, appSecret, now.Add(-14*time.Minute), nil); a.code != 200 {
		t.Errorf("14 minutes old: %+v", a)
	}
}

// The server's StringToSign comes back, newlines removed, and equals the
// client's when only the secret differs.
func TestInvalidSignatureEchoesStringToSign(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := []byte(`{"id":"1","version":"1.0","request":{"apiVer":"1.0.0"},"params":{"grantType":"project","res":"proj1"}}`)
	req, _ := http.NewRequest(http.MethodPost, e.url+aliyun.PathToken, bytes.NewReader(body))
	sts := aliyun.SignRequest(req, body, appKey, "wrong", time.Now(), uuid.NewString())
	a := e.send(req)
	want := "Invalid Signature, Server StringToSign:" + strings.ReplaceAll(sts, "\n", "")
	if a.status != 400 || a.gateway != want {
		t.Errorf("got http %d %q\nwant %q", a.status, a.gateway, want)
	}
}

func TestNonceReuse(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := []byte(`{"id":"1","version":"1.0","request":{"apiVer":"1.0.0"},"params":{"grantType":"project","res":"proj1"}}`)
	nonce := uuid.NewString()
	for i, want := range []string{"", "Nonce Used"} {
		req, _ := http.NewRequest(http.MethodPost, e.url+aliyun.PathToken, bytes.NewReader(body))
		aliyun.SignRequest(req, body, appKey, appSecret, time.Now(), nonce)
		if a := e.send(req); a.gateway != want {
			t.Errorf("request %d: %q, want %q", i, a.gateway, want)
		}
	}
}

// Lower-case signed header names (the Node SDK's way, KAT-A2) verify too.
func TestLowerCaseSignedHeaders(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := []byte(`{"id":"1","version":"1.0","request":{"apiVer":"1.0.0"},"params":{"grantType":"project","res":"proj1"}}`)
	ts, nonce := strconv.FormatInt(time.Now().UnixMilli(), 10), uuid.NewString()
	md5 := aliyun.ContentMD5(body)
	sts := aliyun.StringToSign(aliyun.Canonical{
		Method: "POST", Accept: aliyun.Accept, ContentMD5: md5, ContentType: "application/json; charset=utf-8",
		Headers: []aliyun.Header{
			{Name: "x-ca-key", Value: appKey}, {Name: "x-ca-nonce", Value: nonce},
			{Name: "x-ca-signature-method", Value: "HmacSHA256"}, {Name: "x-ca-timestamp", Value: ts},
		},
		Path: aliyun.PathToken,
	})
	req, _ := http.NewRequest(http.MethodPost, e.url+aliyun.PathToken, bytes.NewReader(body))
	for k, v := range map[string]string{
		"accept": aliyun.Accept, "content-type": "application/json; charset=utf-8", "content-md5": md5,
		"x-ca-key": appKey, "x-ca-nonce": nonce, "x-ca-signature-method": "HmacSHA256", "x-ca-timestamp": ts,
		"x-ca-signature-headers": "x-ca-key,x-ca-nonce,x-ca-signature-method,x-ca-timestamp",
		"x-ca-signature":         aliyun.Signature(sts, appSecret),
	} {
		req.Header.Set(k, v)
	}
	if a := e.send(req); a.code != 200 {
		t.Errorf("lower-case request: %+v", a)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	e := setup(t)
	old := e.token()
	if a := e.do(aliyun.PathCreate, old, createParams, appSecret, time.Now(), nil); a.code != 200 {
		t.Fatalf("create with a fresh token: %+v", a)
	}
	cur := e.token()
	for _, tc := range []struct{ name, tok string }{{"replaced", old}, {"none", ""}, {"made up", "abc"}} {
		if a := e.do(aliyun.PathCreate, tc.tok, createParams, appSecret, time.Now(), nil); a.status != 200 || a.code != 401 {
			t.Errorf("%s token: %+v, want code 401", tc.name, a)
		}
	}
	if a := e.do(aliyun.PathCreate, cur, createParams, appSecret, time.Now(), nil); a.code != 200 {
		t.Errorf("current token: %+v", a)
	}
	if a := e.do(aliyun.PathToken, "", map[string]string{"grantType": "project", "res": "other"}, appSecret, time.Now(), nil); a.code != 403 {
		t.Errorf("token for another project: %+v", a)
	}
	// Both spellings of the lifetime are served.
	a1 := e.do(aliyun.PathToken, "", map[string]string{"grantType": "project", "res": project}, appSecret, time.Now(), nil)
	a2 := e.do(aliyun.PathToken, "", map[string]string{"grantType": "project", "res": project}, appSecret, time.Now(), nil)
	spelling := func(d map[string]any) string {
		for _, k := range []string{"expireIn", "expiresIn"} {
			if _, ok := d[k]; ok {
				return k
			}
		}
		return ""
	}
	if s1, s2 := spelling(a1.data), spelling(a2.data); s1 == "" || s2 == "" || s1 == s2 {
		t.Errorf("token lifetimes: %v and %v, want one of each spelling", a1.data, a2.data)
	}
}

func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.sb.SetTokenTTL(50 * time.Millisecond)
	tok := e.token()
	time.Sleep(100 * time.Millisecond)
	if a := e.do(aliyun.PathCreate, tok, createParams, appSecret, time.Now(), nil); a.code != 401 {
		t.Errorf("expired token: %+v, want code 401", a)
	}
}

func TestParamsChecked(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tok := e.token()
	bad := []map[string]any{
		{"iotId": "dev1", "commodityCode": "c", "copies": 61},
		{"iotId": "dev1", "commodityCode": "c", "copies": 0},
		{"iotId": "", "commodityCode": "c", "copies": 1},
		{"iotId": "dev1", "copies": 1},
		{"iotId": "dev1", "commodityCode": "c", "copies": 1, "cloudToken": tok},
	}
	for _, p := range bad {
		if a := e.do(aliyun.PathCreate, tok, p, appSecret, time.Now(), nil); a.code != 460 {
			t.Errorf("create %v: %+v, want 460", p, a)
		}
	}
	if n := e.sb.Count("dev1"); n != 0 {
		t.Errorf("%d orders from bad params", n)
	}
}

func TestOrderLifecycle(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tok := e.token()
	call := func(path string, params any) map[string]any {
		t.Helper()
		a := e.do(path, tok, params, appSecret, time.Now(), nil)
		if a.code != 200 {
			t.Fatalf("%s: %+v", path, a)
		}
		return a.data
	}
	d := call(aliyun.PathCreate, createParams)
	id, _ := d["orderId"].(string)
	if id == "" || d["paymentStatus"] != 0.0 || d["userName"] != "158****8558" {
		t.Fatalf("create data = %v", d)
	}
	ref := map[string]string{"iotId": "dev1", "orderId": id}
	steps := []struct {
		path string
		want float64
	}{
		{aliyun.PathGet, 0}, {aliyun.PathPay, 2}, {aliyun.PathGet, 1}, {aliyun.PathGet, 1}, {aliyun.PathPay, 1},
	}
	for i, s := range steps {
		if got := call(s.path, ref)["paymentStatus"]; got != s.want {
			t.Errorf("step %d %s: paymentStatus %v, want %v", i, s.path, got, s.want)
		}
	}
	if a := e.do(aliyun.PathGet, tok, map[string]string{"iotId": "dev2", "orderId": id}, appSecret, time.Now(), nil); a.code == 200 {
		t.Errorf("order found under another device")
	}
	list := call(aliyun.PathQuery, map[string]any{"iotId": "dev1", "pageNo": 1, "pageSize": 20})
	items, _ := list["data"].([]any)
	if list["total"] != 1.0 || len(items) != 1 {
		t.Fatalf("query = %v", list)
	}
	if item := items[0].(map[string]any); item["orderId"] != id || item["gmtCreate"] != nil {
		t.Errorf("listed order = %v, want the documented fields only", item)
	}
	e.sb.SetListCreateTime(true)
	list = call(aliyun.PathQuery, map[string]any{"iotId": "dev1", "pageNo": 1, "pageSize": 20})
	items, _ = list["data"].([]any)
	if item := items[0].(map[string]any); item["gmtCreate"] == nil {
		t.Errorf("listed order = %v, want gmtCreate when asked for", item)
	}
	if e.sb.Count("dev1") != 1 || len(e.sb.Orders()["dev1"]) != 1 {
		t.Errorf("Count/Orders disagree")
	}
}

// ownClient has a transport of its own: httptest.Server.Close drops the
// idle connections of http.DefaultTransport, which breaks a request
// another parallel test is sending on one of them at that moment.
var ownClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
