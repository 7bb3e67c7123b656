package unicloud

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
)

func newTestClient(t *testing.T, opts Options) *Client {
	t.Helper()
	if opts.AccessKeyID == "" {
		opts.AccessKeyID = "6oPiV0WMJXhxiT65"
	}
	if opts.AccessKeySecret == "" {
		opts.AccessKeySecret = "testsecret"
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// KAT-U1 built the way the client builds it: from a request, not a map.
// Timestamp is given in UTC+8 to show it is sent in UTC.
func TestRequestSignsLikeKATU1(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, Options{Endpoint: "https://api.unicloud.com/"})
	at := time.Date(2020, 7, 30, 20, 0, 0, 0, ChinaTime())
	s := stamp{Timestamp: at, Nonce: "16343456325226"}
	extra := map[string]string{"regionId": "cn-tianjin-yfb"}
	req, err := c.request(context.Background(), http.MethodPost, NASPath, "CreateOrder", extra, []byte(`{"a":1}`), s)
	if err != nil {
		t.Fatal(err)
	}
	const want = "https://api.unicloud.com/openapi/nas?AccessKeyId=6oPiV0WMJXhxiT65&Action=CreateOrder&Format=json&SignatureMethod=HMAC-SHA1&SignatureNonce=16343456325226&SignatureVersion=2.0&Timestamp=2020-07-30T12%3A00%3A00Z&Version=2020-07-30&regionId=cn-tianjin-yfb&Signature=U%2B7ziGlauZIuvzhyZTi84Yat9Oc%3D"
	if got := req.URL.String(); got != want {
		t.Errorf("URL =\n%s\nwant\n%s", got, want)
	}
	if got := req.Header.Get("Content-Type"); got != "application/json;charset=UTF-8" {
		t.Errorf("Content-Type = %q", got)
	}
	// The body is not signed: another body, the same signature.
	req2, err := c.request(context.Background(), http.MethodPost, NASPath, "CreateOrder", extra, []byte(`{"b":2}`), s)
	if err != nil {
		t.Fatal(err)
	}
	if req2.URL.String() != want {
		t.Errorf("a different body changed the URL: %s", req2.URL)
	}
	// GET signs with GET (KAT-U1 GET) and sends no body.
	get, err := c.request(context.Background(), http.MethodGet, NASPath, "CreateOrder", extra, nil, s)
	if err != nil {
		t.Fatal(err)
	}
	if q := get.URL.Query(); q.Get("Signature") != "KWaE5eUcvMcBFYosS00YG+Lpci0=" {
		t.Errorf("GET Signature = %q", q.Get("Signature"))
	}
	if get.Body != nil || get.Header.Get("Content-Type") != "" {
		t.Errorf("GET request has a body or Content-Type")
	}
}

type captured struct {
	method, path, rawQuery, contentType string
	query                               url.Values
	body                                []byte
}

// capture serves answer to every request and records each one.
func capture(t *testing.T, answer string) (string, func() []captured) {
	t.Helper()
	var mu sync.Mutex
	var got []captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, captured{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), r.URL.Query(), body})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []captured {
		mu.Lock()
		defer mu.Unlock()
		return append([]captured(nil), got...)
	}
}

const okAnswer = `{"Status":true,"Auth":true,"Code":"Success","Res":{"Ids":["nas-g6kv2k3zcldu"],"OrderId":"907804353770394031"},"RequestId":"a99c4e22-ff64-4142-a1aa-2c4b38970a99"}`

const validParams = `{"azoneId":"cn-tianjin-yfb1","componentCode":"nas.onestor","dataEncryption":0,"instanceName":"实例 one","orderCategory":"NEW","payType":"DAY_MONTH_USAGE","projectId":"rg-k0n2gf8ew1pd","regionId":"cn-tianjin-yfb","renewType":"manualrenew","rentCount":1,"rentUnit":"month","specificationCode":"nas.capacity.nfs","unit":"GB","vpc":"vpc-g2gmswxtthml"}`

func TestSubmitRequest(t *testing.T) {
	t.Parallel()
	endpoint, requests := capture(t, okAnswer)
	now := time.Date(2024, 3, 1, 18, 30, 5, 0, ChinaTime())
	c := newTestClient(t, Options{Endpoint: endpoint, Now: func() time.Time { return now }})
	o := providers.Order{OrderNo: "o1", Params: json.RawMessage(validParams)}
	for range 2 {
		r, err := c.Submit(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != providers.StatusPaid || r.ProviderOrderID != "907804353770394031" || r.Code != "Success" {
			t.Errorf("Submit = %+v", r)
		}
	}
	got := requests()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	req := got[0]
	if req.method != http.MethodPost || req.path != NASPath {
		t.Errorf("request %s %s, want POST %s", req.method, req.path, NASPath)
	}
	if req.contentType != "application/json;charset=UTF-8" {
		t.Errorf("Content-Type = %q", req.contentType)
	}
	want := map[string]string{
		"Action": "CreateOrder", "Format": "json", "Version": "2020-07-30", "AccessKeyId": "6oPiV0WMJXhxiT65",
		"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "2.0", "Timestamp": "2024-03-01T10:30:05Z",
		"regionId": "cn-tianjin-yfb",
	}
	for k, v := range want {
		if got := req.query.Get(k); got != v {
			t.Errorf("query %s = %q, want %q", k, got, v)
		}
	}
	if len(req.query.Get("SignatureNonce")) != 36 {
		t.Errorf("SignatureNonce = %q, want a UUID", req.query.Get("SignatureNonce"))
	}
	if got[0].query.Get("SignatureNonce") == got[1].query.Get("SignatureNonce") {
		t.Errorf("two attempts share SignatureNonce %s", got[0].query.Get("SignatureNonce"))
	}
	if !strings.Contains(req.rawQuery, "&Timestamp=2024-03-01T10%3A30%3A05Z&") {
		t.Errorf("raw query %s: Timestamp not percent-encoded", req.rawQuery)
	}
	if !strings.HasSuffix(req.rawQuery, "&Signature="+PercentEncode(req.query.Get("Signature"))) {
		t.Errorf("raw query %s does not end in the encoded Signature", req.rawQuery)
	}
	params := map[string]string{}
	for k := range req.query {
		params[k] = req.query.Get(k)
	}
	if got := Sign(http.MethodPost, params, "testsecret"); got != req.query.Get("Signature") {
		t.Errorf("Signature %s does not verify (want %s)", req.query.Get("Signature"), got)
	}
	if strings.Contains(req.rawQuery, "instanceName") || strings.Contains(req.rawQuery, "vpc") {
		t.Errorf("raw query %s carries body fields", req.rawQuery)
	}
	var body, sent map[string]any
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatalf("body %s: %v", req.body, err)
	}
	_ = json.Unmarshal([]byte(validParams), &sent)
	if len(body) != len(sent) {
		t.Errorf("body has %d fields, want %d: %s", len(body), len(sent), req.body)
	}
	for k, v := range sent {
		if body[k] != v {
			t.Errorf("body %s = %v, want %v", k, body[k], v)
		}
	}
	if !strings.Contains(string(req.body), `"rentCount":1`) || !strings.Contains(string(req.body), `"dataEncryption":0`) {
		t.Errorf("body %s: integers must be JSON numbers", req.body)
	}
}

func TestLookupByIDRequest(t *testing.T) {
	t.Parallel()
	endpoint, requests := capture(t, `{"Order":{"Id":"1144119593783001088","OrderStatus":"PAID","ProductCategory":"NAS"},"RequestId":"x"}`)
	c := newTestClient(t, Options{Endpoint: endpoint})
	r, err := c.Lookup(context.Background(), providers.Order{ProviderOrderID: "1144119593783001088"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != providers.StatusPaid || r.ProviderOrderID != "1144119593783001088" {
		t.Errorf("Lookup = %+v", r)
	}
	req := requests()[0]
	if req.method != http.MethodGet || req.path != TransactionPath || len(req.body) != 0 {
		t.Errorf("request %s %s with %d body bytes, want GET %s and no body", req.method, req.path, len(req.body), TransactionPath)
	}
	if req.query.Get("Action") != "OrderDetail" || req.query.Get("OrderId") != "1144119593783001088" {
		t.Errorf("query %s", req.rawQuery)
	}
}

func TestParseResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body  string
		wantErr     bool
		wantOrderID string
		wantIDs     int
		wantCode    string
		wantStatus  string // "true", "false" or "" (absent)
	}{
		{name: "spec success", body: okAnswer, wantOrderID: "907804353770394031", wantIDs: 1, wantCode: "Success", wantStatus: "true"},
		{name: "numeric OrderId kept exactly", body: `{"Status":true,"Code":"Success","Res":{"OrderId":907804353770394031}}`, wantOrderID: "907804353770394031", wantCode: "Success", wantStatus: "true"},
		{name: "Res as a list", body: `{"Status":true,"Res":[{"Ids":["nas-1","nas-2"],"OrderId":"42"}]}`, wantOrderID: "42", wantIDs: 2, wantStatus: "true"},
		{name: "spec failure", body: `{"Status":false,"Msg":"产品配置错误","Auth":true,"Code":"ProductConfigError","RequestId":"r"}`, wantCode: "ProductConfigError", wantStatus: "false"},
		{name: "Status as string", body: `{"Status":"false","Code":"X"}`, wantCode: "X", wantStatus: "false"},
		{name: "lower-case keys", body: `{"status":true,"code":"Success","res":{"orderId":"7"}}`, wantOrderID: "7", wantCode: "Success", wantStatus: "true"},
		{name: "error envelope", body: `{"Code":"InvalidParameter","Msg":"The specified parameter \"Signature\" is not valid."}`, wantCode: "InvalidParameter"},
		{name: "float OrderId", body: `{"Status":true,"Res":{"OrderId":9.078043537703940e17}}`, wantErr: true},
		{name: "negative fraction OrderId", body: `{"Status":true,"Res":{"OrderId":-1.5}}`, wantErr: true},
		{name: "object OrderId", body: `{"Status":true,"Res":{"OrderId":{}}}`, wantErr: true},
		{name: "long OrderId", body: `{"Status":true,"Res":{"OrderId":"` + strings.Repeat("9", 65) + `"}}`, wantErr: true},
		{name: "Status not boolean", body: `{"Status":1}`, wantErr: true},
		{name: "not an object", body: `[]`, wantErr: true},
		{name: "HTML", body: `<html>502</html>`, wantErr: true},
		{name: "empty", body: ``, wantErr: true},
		{name: "truncated", body: `{"Status":true,"Res":{"OrderId":"1"`, wantErr: true},
		// A placeholder names no order.
		{name: "OrderId 0 on a refusal", body: `{"Status":false,"Auth":true,"Code":"ProductConfigError","Msg":"产品配置错误","Res":{"Ids":null,"OrderId":0}}`, wantCode: "ProductConfigError", wantStatus: "false"},
		{name: `OrderId "0"`, body: `{"Status":false,"Code":"X","Res":{"OrderId":"0"}}`, wantCode: "X", wantStatus: "false"},
		{name: `OrderId "000"`, body: `{"Status":false,"Code":"X","Res":{"OrderId":"000"}}`, wantCode: "X", wantStatus: "false"},
		{name: "OrderId -1", body: `{"Status":false,"Code":"X","Res":{"OrderId":-1}}`, wantCode: "X", wantStatus: "false"},
		{name: `OrderId "-42"`, body: `{"Status":false,"Code":"X","Res":{"OrderId":"-42"}}`, wantCode: "X", wantStatus: "false"},
		{name: "OrderId -0", body: `{"Status":false,"Code":"X","Res":{"OrderId":-0}}`, wantCode: "X", wantStatus: "false"},
		{name: "OrderId blank", body: `{"Status":false,"Code":"X","Res":{"OrderId":"  "}}`, wantCode: "X", wantStatus: "false"},
		{name: "a placeholder, then an id", body: `{"Status":true,"Res":[{"OrderId":0},{"OrderId":"42"}]}`, wantOrderID: "42", wantStatus: "true"},
		{name: "leading zeros of a real id kept", body: `{"Status":true,"Res":{"OrderId":"0042"}}`, wantOrderID: "0042", wantStatus: "true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := ParseResponse([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if r.OrderID != tt.wantOrderID || len(r.IDs) != tt.wantIDs || r.Code != tt.wantCode {
				t.Errorf("got OrderID %q, %d Ids, Code %q; want %q, %d, %q", r.OrderID, len(r.IDs), r.Code, tt.wantOrderID, tt.wantIDs, tt.wantCode)
			}
			status := ""
			if r.Status != nil {
				status = map[bool]string{true: "true", false: "false"}[*r.Status]
			}
			if status != tt.wantStatus {
				t.Errorf("Status = %q, want %q", status, tt.wantStatus)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	const secret, keyID = "testsecret", "6oPiV0WMJXhxiT65"
	c := newTestClient(t, Options{AccessKeyID: keyID, AccessKeySecret: secret})
	tests := []struct {
		name       string
		status     int
		header     string // Retry-After
		body       string
		create     bool
		want       providers.Code // Unknown: success
		wantRetry  time.Duration
		wantPCode  string
		wantInText string
	}{
		{"success", 200, "", okAnswer, true, providers.Unknown, 0, "", ""},
		{"ProductConfigError", 200, "", `{"Status":false,"Msg":"产品配置错误","Auth":true,"Code":"ProductConfigError"}`, true, providers.InvalidArgument, 0, "ProductConfigError", "产品配置错误"},
		{"Auth false", 200, "", `{"Status":false,"Auth":false,"Code":"InvalidAccessKeyId.NotFound","Msg":"key 6oPiV0WMJXhxiT65 unknown"}`, true, providers.Unauthenticated, 0, "InvalidAccessKeyId.NotFound", "key *** unknown"},
		// A throttled create may have made the order (none is
		// documented, nor when it comes): looked up first. A throttled
		// query waits as asked.
		{"throttling code at 200, create", 200, "", `{"Status":false,"Auth":true,"Code":"Throttling.User","Msg":"slow down"}`, true, providers.Ambiguous, 0, "Throttling.User", ""},
		{"throttling code at 200, query", 200, "", `{"Status":false,"Auth":true,"Code":"Throttling.User","Msg":"slow down"}`, false, providers.RateLimited, 0, "Throttling.User", ""},
		{"429 seconds, create", 429, "7", `{"Code":"Throttling","Msg":"Request was denied due to request throttling."}`, true, providers.Ambiguous, 0, "Throttling", ""},
		{"429 seconds, query", 429, "7", `{"Code":"Throttling","Msg":"Request was denied due to request throttling."}`, false, providers.RateLimited, 7 * time.Second, "Throttling", ""},
		{"429 no body, create", 429, "", ``, true, providers.Ambiguous, 0, "", ""},
		{"429 no body", 429, "", ``, false, providers.RateLimited, 0, "", ""},
		// A create answered 5xx may have acted, whatever code it carries.
		{"throttling code at 503, create", 503, "", `{"Code":"Throttling","Msg":"x"}`, true, providers.Ambiguous, 0, "Throttling", ""},
		{"throttling code at 503, query", 503, "", `{"Code":"Throttling","Msg":"x"}`, false, providers.RateLimited, 0, "Throttling", ""},
		{"400 bad signature", 400, "", `{"Code":"InvalidParameter","Msg":"The specified parameter \"Signature\" is not valid.","RequestId":"r"}`, true, providers.Unauthenticated, 0, "InvalidParameter", "Signature"},
		{"400 bad signature, spec quotes", 400, "", `{"Code":"InvalidParameter","Msg":"The specified parameter”Signature”is not valid."}`, true, providers.Unauthenticated, 0, "InvalidParameter", ""},
		{"400 SignatureDoesNotMatch", 400, "", `{"Code":"SignatureDoesNotMatch","Msg":"x"}`, true, providers.Unauthenticated, 0, "", ""},
		{"400 other parameter", 400, "", `{"Code":"InvalidParameter","Msg":"The specified parameter \"vpc\" is not valid."}`, true, providers.InvalidArgument, 0, "InvalidParameter", "vpc"},
		{"400 missing parameter", 400, "", `{"Code":"MissingParameter","Msg":"x"}`, true, providers.InvalidArgument, 0, "", ""},
		{"400 expired timestamp", 400, "", `{"Code":"InvalidTimeStamp.Expired","Msg":"Specified time stamp or date value is expired."}`, true, providers.Unauthenticated, 0, "", "worker's clock"},
		{"400 Timestamp parameter", 400, "", `{"Code":"InvalidParameter","Msg":"The specified parameter \"Timestamp\" is not valid."}`, true, providers.Unauthenticated, 0, "", "worker's clock"},
		// An internal error whose text names a timestamp is no clock refusal.
		{"400 InternalError naming a timestamp, create", 400, "", `{"Code":"InternalError","Msg":"null value in column createTimestamp"}`, true, providers.Ambiguous, 0, "InternalError", ""},
		{"200 InternalError naming a timestamp, create", 200, "", `{"Status":false,"Auth":true,"Code":"InternalError","Msg":"createTimestamp is null"}`, true, providers.Ambiguous, 0, "InternalError", ""},
		{"400 InternalError naming a timestamp, query", 400, "", `{"Code":"InternalError","Msg":"null value in column createTimestamp"}`, false, providers.Unavailable, 0, "InternalError", ""},
		{"400 nonce reused, create", 400, "", `{"Code":"SignatureNonceUsed","Msg":"Specified signature nonce was used already."}`, true, providers.Ambiguous, 0, "", ""},
		{"400 nonce reused, query", 400, "", `{"Code":"SignatureNonceUsed","Msg":"Specified signature nonce was used already."}`, false, providers.Unavailable, 0, "", ""},
		// An answer the API cannot have written (it answers JSON) at a status
		// that refuses the request itself comes from in front of it: a
		// configuration problem, on which the order waits.
		{"400 not JSON", 400, "", `Bad Request`, true, providers.Unauthenticated, 0, "", "Bad Request"},
		{"400 HTML, query", 400, "", `<html><body>The plain HTTP request was sent to HTTPS port</body></html>`, false, providers.Unauthenticated, 0, "", ""},
		{"403 not JSON", 403, "", `<html>Forbidden</html>`, true, providers.Unauthenticated, 0, "", ""},
		{"401 not JSON", 401, "", ``, true, providers.Unauthenticated, 0, "", ""},
		{"403 Forbidden.RAM", 403, "", `{"Code":"Forbidden.RAM","Msg":"x"}`, true, providers.Unauthenticated, 0, "", "refused the account"},
		{"403 Forbidden", 403, "", `{"Code":"Forbidden","Msg":"x"}`, true, providers.Unauthenticated, 0, "", "refused the account"},
		{"403 NoPermission", 403, "", `{"Code":"NoPermission","Msg":"x"}`, true, providers.Unauthenticated, 0, "", "refused the account"},
		{"400 Forbidden.NotAuthorized", 400, "", `{"Code":"Forbidden.NotAuthorized","Msg":"x"}`, true, providers.Unauthenticated, 0, "", "refused the account"},
		// A refusal that names no permission may come after the order was
		// made (a risk check on the order): looked up, not probed with
		// creates (a black-box run: orders made two to five times). On the
		// queries it still waits for the account.
		{"403 Forbidden.RiskControl, create", 403, "", `{"Code":"Forbidden.RiskControl","Msg":"风控拦截，请联系客服"}`, true, providers.Ambiguous, 0, "Forbidden.RiskControl", ""},
		{"400 Forbidden.RiskControl, create", 400, "", `{"Code":"Forbidden.RiskControl","Msg":"x"}`, true, providers.Ambiguous, 0, "", ""},
		{"403 QuotaExceeded, create", 403, "", `{"Code":"QuotaExceeded","Msg":"x"}`, true, providers.Ambiguous, 0, "", ""},
		{"403 Forbidden.RiskControl, query", 403, "", `{"Code":"Forbidden.RiskControl","Msg":"x"}`, false, providers.Unauthenticated, 0, "", "refused the account"},
		{"404 not JSON", 404, "", `<html/>`, true, providers.Unauthenticated, 0, "", ""},
		{"413 not JSON", 413, "", `<html/>`, true, providers.Unauthenticated, 0, "", ""},
		// The signature refusal, its body's shape not documented: found
		// wherever the body says it, at 400, 401 or 403 with no code or
		// an InvalidParameter one.
		{"400 signature under another key", 400, "", `{"Code":"InvalidParameter","ErrorMessage":"The specified parameter \"Signature\" is not valid."}`, true, providers.Unauthenticated, 0, "InvalidParameter", ""},
		{"400 signature nested", 400, "", `{"RequestId":"r","Error":{"Code":"InvalidParameter","Message":"The specified parameter”Signature”is not valid."}}`, true, providers.Unauthenticated, 0, "", ""},
		{"400 signature as text", 400, "", `The specified parameter "Signature" is not valid.`, true, providers.Unauthenticated, 0, "", ""},
		{"400 signature as XML", 400, "", `<?xml version="1.0"?><Error><Code>InvalidParameter</Code><Message>The specified parameter "Signature" is not valid.</Message></Error>`, true, providers.Unauthenticated, 0, "", ""},
		{"400 signature in Chinese", 400, "", `{"Code":"InvalidParameter","Msg":"签名无效"}`, true, providers.Unauthenticated, 0, "", ""},
		{"400 numeric code, signature", 400, "", `{"code":400,"msg":"signature error"}`, true, providers.Unauthenticated, 0, "", ""},
		{"403 access key, no code", 403, "", `{"RequestId":"r","ErrorMessage":"The AccessKeyId is disabled."}`, true, providers.Unauthenticated, 0, "", ""},
		{"403 Forbidden.AccessKeyDisabled", 403, "", `{"Code":"Forbidden.AccessKeyDisabled","Msg":"x"}`, true, providers.Unauthenticated, 0, "", ""},
		{"400 MissingSignature", 400, "", `{"Code":"MissingSignature","Msg":"x"}`, false, providers.Unauthenticated, 0, "", ""},
		{"400 access key, query", 400, "", `{"Code":"InvalidParameter","Message":"The specified parameter \"AccessKeyId\" is not valid."}`, false, providers.Unauthenticated, 0, "", ""},
		// Not a word about the signature: the request's parameters echoed
		// back, or a key of the body's.
		{"400 query echoed", 400, "", `{"Code":"InvalidParameter","Msg":"The specified parameter \"vpc\" is not valid.","Url":"/openapi/nas?AccessKeyId=k&Signature=s%3D&SignatureNonce=1"}`, true, providers.InvalidArgument, 0, "", ""},
		{"400 signature key", 400, "", `{"Code":"InvalidParameter","Msg":"vpc","Signature" : "s"}`, true, providers.InvalidArgument, 0, "", ""},
		{"400 other code naming the signature", 400, "", `{"Code":"ProductConfigError","Msg":"x","Detail":"signature"}`, true, providers.InvalidArgument, 0, "", ""},
		// A reused nonce or an internal error, said outside Msg: the
		// request may have been acted on.
		{"400 nonce under another key, create", 400, "", `{"Code":"InvalidParameter","ErrorMessage":"Specified signature nonce was used already."}`, true, providers.Ambiguous, 0, "", ""},
		{"400 nonce as text, create", 400, "", `Specified signature nonce was used already.`, true, providers.Ambiguous, 0, "", ""},
		{"400 nonce as text, query", 400, "", `Specified signature nonce was used already.`, false, providers.Unavailable, 0, "", ""},
		{"400 internal error as XML, create", 400, "", `<Error><Code>InternalError</Code></Error>`, true, providers.Ambiguous, 0, "", ""},
		{"400 internal error nested, create", 400, "", `{"Error":{"Code":"INTERNAL_ERROR"}}`, true, providers.Ambiguous, 0, "", ""},
		// A wrong endpoint or path: refused before any order exists.
		{"404 JSON without a code, create", 404, "", `{"RequestId":"r","Msg":"not found"}`, true, providers.Unauthenticated, 0, "", ""},
		{"404 another server's JSON, create", 404, "", `{"timestamp":"2024-03-01T10:00:00.000+00:00","status":404,"error":"Not Found","path":"/openapi/nas"}`, true, providers.Unauthenticated, 0, "", ""},
		{"404 InvalidAction.NotFound, create", 404, "", `{"Code":"InvalidAction.NotFound","Msg":"Specified api is not found"}`, true, providers.Unauthenticated, 0, "", ""},
		{"400 InvalidVersion, query", 400, "", `{"Code":"InvalidVersion","Msg":"x"}`, false, providers.Unauthenticated, 0, "", ""},
		{"405 no body, query", 405, "", ``, false, providers.Unauthenticated, 0, "", ""},
		{"405 UnsupportedHTTPMethod, create", 405, "", `{"Code":"UnsupportedHTTPMethod"}`, true, providers.Unauthenticated, 0, "", ""},
		// A 404 the API itself wrote, with another code, may come after
		// the order was created.
		{"404 NotFound, create", 404, "", `{"Code":"NotFound","Msg":"x"}`, true, providers.Ambiguous, 0, "", ""},
		{"404 InvalidVpc.NotFound, create", 404, "", `{"Code":"InvalidVpc.NotFound","Msg":"x"}`, true, providers.Ambiguous, 0, "", ""},
		{"404 OrderNotExist, query", 404, "", `{"Code":"OrderNotExist"}`, false, providers.NotFound, 0, "", ""},
		// No code, and a status that does not say the request was refused
		// before it was acted on.
		{"409 not JSON, create", 409, "", `<html/>`, true, providers.Ambiguous, 0, "", ""},
		{"422 not JSON, create", 422, "", ``, true, providers.Ambiguous, 0, "", ""},
		{"409 not JSON, query", 409, "", `<html/>`, false, providers.InvalidArgument, 0, "", ""},
		{"409 undocumented code, create", 409, "", `{"Code":"CreateFailed","Msg":"x"}`, true, providers.Ambiguous, 0, "CreateFailed", ""},
		{"409 ProductConfigError, create", 409, "", `{"Code":"ProductConfigError","Msg":"x"}`, true, providers.InvalidArgument, 0, "", ""},
		// The documented refusal echoing the request's query names
		// the nonce as a parameter, not as reused: still a refusal.
		// Another code's message naming a nonce stays unsure.
		{"ProductConfigError echoing the query", 200, "", `{"Status":false,"Auth":true,"Code":"ProductConfigError","Msg":"bad spec in Action=CreateOrder&SignatureNonce=3f2a&specificationCode=x"}`, true, providers.InvalidArgument, 0, "ProductConfigError", ""},
		{"ProductConfigError naming a reused nonce", 200, "", `{"Status":false,"Auth":true,"Code":"ProductConfigError","Msg":"nonce already used"}`, true, providers.Ambiguous, 0, "", ""},
		{"other code echoing the query", 200, "", `{"Status":false,"Auth":true,"Code":"CreateFailed","Msg":"failed: SignatureNonce=3f2a"}`, true, providers.Ambiguous, 0, "", ""},
		{"500 create", 500, "", `{"Code":"InternalError","Msg":"x"}`, true, providers.Ambiguous, 0, "InternalError", ""},
		{"500 query", 500, "", `{"Code":"InternalError","Msg":"x"}`, false, providers.Unavailable, 0, "", ""},
		{"503 no body create", 503, "", ``, true, providers.Ambiguous, 0, "", ""},
		{"502 HTML query", 502, "", `<html>bad gateway</html>`, false, providers.Unavailable, 0, "", ""},
		{"200 InternalError create", 200, "", `{"Status":false,"Code":"InternalError","Msg":"x"}`, true, providers.Ambiguous, 0, "", ""},
		{"200 SystemBusy query", 200, "", `{"Status":false,"Code":"SystemBusy"}`, false, providers.Unavailable, 0, "", ""},
		// On CreateOrder, a refusal at 200 by an undocumented code may
		// come after the order was created.
		{"200 arrears, create", 200, "", `{"Status":false,"Code":"Account.Arrearage"}`, true, providers.Ambiguous, 0, "", ""},
		{"403 arrears, create", 403, "", `{"Code":"Account.Arrearage","Msg":"x"}`, true, providers.Ambiguous, 0, "", ""},
		{"400 insufficient balance, create", 400, "", `{"Code":"InsufficientBalance","Msg":"x"}`, true, providers.Ambiguous, 0, "", ""},
		{"403 arrears, query", 403, "", `{"Code":"Account.Arrearage","Msg":"x"}`, false, providers.Unauthenticated, 0, "", "refused the account"},
		{"200 arrears, query", 200, "", `{"Status":false,"Code":"Account.Arrearage"}`, false, providers.Unauthenticated, 0, "", "refused the account"},
		{"200 SYSTEM_ERROR, create", 200, "", `{"Status":false,"Auth":true,"Code":"SYSTEM_ERROR","Msg":"系统异常"}`, true, providers.Ambiguous, 0, "SYSTEM_ERROR", "系统异常"},
		{"200 CreateFailed, create", 200, "", `{"Status":false,"Auth":true,"Code":"CreateFailed"}`, true, providers.Ambiguous, 0, "", ""},
		{"200 MissingParameter, create", 200, "", `{"Status":false,"Auth":true,"Code":"MissingParameter"}`, true, providers.Ambiguous, 0, "", ""},
		{"200 order not found, query", 200, "", `{"Status":false,"Auth":true,"Code":"OrderNotExist","Msg":"订单不存在"}`, false, providers.NotFound, 0, "", ""},
		{"200 order not found, create", 200, "", `{"Status":false,"Auth":true,"Code":"OrderNotExist"}`, true, providers.Ambiguous, 0, "", ""},
		{"200 signature refused, create", 200, "", `{"Status":false,"Auth":true,"Code":"InvalidParameter","Msg":"The specified parameter \"Signature\" is not valid."}`, true, providers.Unauthenticated, 0, "", ""},
		// On a create answered 200 (or 409, 422), words alone tell no
		// refusal before acting: a numeric code or none names nothing, and
		// the order may have been made before the words' failure.
		{"200 numeric code, internal words, create", 200, "", `{"Status":false,"Code":"500","Msg":"系统内部错误: createTimestamp is null"}`, true, providers.Ambiguous, 0, "", ""},
		{"200 numeric code, signature words, create", 200, "", `{"Status":false,"Code":"10086","Msg":"订单已生成，资源开通失败：签名校验失败"}`, true, providers.Ambiguous, 0, "", ""},
		{"200 no code, access key words, create", 200, "", `{"Status":false,"Msg":"order 907 created; access key rejected by billing"}`, true, providers.Ambiguous, 0, "", ""},
		{"200 no code, timestamp words, create", 200, "", `{"Status":false,"Msg":"timestamp of the resource invalid"}`, true, providers.Ambiguous, 0, "", ""},
		{"409 no code, signature words, create", 409, "", `{"Msg":"signature check failed"}`, true, providers.Ambiguous, 0, "", ""},
		// Echoes of our own request's names are no refusal of them.
		{"400 escaped JSON echo of Signature", 400, "", `{"Code":"InvalidParameter","Msg":"x","Request":"{\"Signature\":\"s\"}"}`, true, providers.InvalidArgument, 0, "", ""},
		{"400 header echo of SignatureMethod", 400, "", `{"Code":"InvalidParameter","Msg":"x","Detail":"SignatureMethod: HMAC-SHA1"}`, true, providers.InvalidArgument, 0, "", ""},
		{"400 signature refused in the body", 400, "", `{"Code":"InvalidParameter","Msg":"x","Detail":"signature: mismatch"}`, true, providers.Unauthenticated, 0, "", ""},
		{"400 SignatureDoesNotMatch in the body", 400, "", `{"Code":"InvalidParameter","Msg":"x","Detail":"SignatureDoesNotMatch: computed differs"}`, true, providers.Unauthenticated, 0, "", ""},
		{"400 AccessKeyId refused in the body", 400, "", `{"Code":"InvalidParameter","Msg":"x","Detail":"AccessKeyId: not found"}`, true, providers.Unauthenticated, 0, "", ""},
		// A 404 whose code is a number was written by the API: not a wrong path.
		{"404 numeric code, query", 404, "", `{"Code":"404","Msg":"订单不存在"}`, false, providers.InvalidArgument, 0, "", ""},
		{"200 unreadable create", 200, "", `<html>`, true, providers.Ambiguous, 0, "", "unreadable"},
		{"200 unreadable query", 200, "", `{"Status":`, false, providers.Unavailable, 0, "", ""},
		{"200 code without Status", 200, "", `{"Code":"InvalidParameter","Msg":"x"}`, false, providers.InvalidArgument, 0, "", ""},
		{"302", 302, "", `{}`, true, providers.Ambiguous, 0, "", ""},
		// Codes are read whatever their case and separators.
		{"400 INTERNAL_ERROR, create", 400, "", `{"Code":"INTERNAL_ERROR","Msg":"x"}`, true, providers.Ambiguous, 0, "INTERNAL_ERROR", ""},
		{"400 Service.Unavailable, create", 400, "", `{"Code":"Service.Unavailable","Msg":"x"}`, true, providers.Ambiguous, 0, "", ""},
		{"403 SYSTEM-ERROR, create", 403, "", `{"Code":"SYSTEM-ERROR","Msg":"x"}`, true, providers.Ambiguous, 0, "", ""},
		{"200 SYSTEM_ERROR, query", 200, "", `{"Status":false,"Code":"SYSTEM_ERROR","Msg":"系统异常"}`, false, providers.Unavailable, 0, "", ""},
		{"400 System.Busy, query", 400, "", `{"Code":"System.Busy"}`, false, providers.Unavailable, 0, "", ""},
		{"400 INVALID_ACCESS_KEY_ID, create", 400, "", `{"Code":"INVALID_ACCESS_KEY_ID"}`, true, providers.Unauthenticated, 0, "", ""},
		{"200 ORDER_NOT_EXIST, query", 200, "", `{"Status":false,"Code":"ORDER_NOT_EXIST"}`, false, providers.NotFound, 0, "", ""},
		{"secret in message", 400, "", `{"Code":"InvalidParameter testsecret","Msg":"bad testsecret for 6oPiV0WMJXhxiT65, call 13912345678"}`, true, providers.InvalidArgument, 0, "InvalidParameter ***", "bad *** for ***, call 139****5678"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if tt.header != "" {
				h.Set("Retry-After", tt.header)
			}
			_, err := c.classify("unicloud Test", tt.create, &providers.Response{StatusCode: tt.status, Header: h, Body: []byte(tt.body)}, "")
			if tt.want == providers.Unknown {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			var pe *providers.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v (%T), want *providers.Error", err, err)
			}
			if pe.Code != tt.want {
				t.Errorf("code = %v (%v), want %v", pe.Code, err, tt.want)
			}
			// A throttle that may have acted spends no budget and is no
			// news of health (providers.ErrThrottled); no other answer is
			// taken for one.
			throttle := tt.status == 429 || strings.Contains(tt.body, `"Throttling`)
			if want := tt.want == providers.Ambiguous && throttle && tt.status < 500; providers.Throttled(err) != want {
				t.Errorf("Throttled = %v, want %v (%v)", providers.Throttled(err), want, err)
			}
			if pe.HTTPStatus != tt.status {
				t.Errorf("HTTPStatus = %d, want %d", pe.HTTPStatus, tt.status)
			}
			if pe.RetryAfter != tt.wantRetry {
				t.Errorf("RetryAfter = %v, want %v", pe.RetryAfter, tt.wantRetry)
			}
			if tt.wantPCode != "" && pe.ProviderCode != tt.wantPCode {
				t.Errorf("ProviderCode = %q, want %q", pe.ProviderCode, tt.wantPCode)
			}
			if !strings.Contains(err.Error(), tt.wantInText) {
				t.Errorf("text %q lacks %q", err, tt.wantInText)
			}
			// A refusal for the clock or the account says so by its
			// cause (the order waits for it), and only such a refusal.
			if clock := errors.Is(err, providers.ErrClock); clock != strings.Contains(tt.wantInText, "worker's clock") {
				t.Errorf("%v: the clock as its cause %v, want %v", err, clock, !clock)
			}
			if account := errors.Is(err, providers.ErrAccount); account != strings.Contains(tt.wantInText, "refused the account") {
				t.Errorf("%v: the account as its cause %v, want %v", err, account, !account)
			}
			for _, s := range []string{secret, keyID} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("text %q holds a credential", err)
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {" 2 ", 2 * time.Second}, {"0", 0}, {"-1", 0}, {"soon", 0},
		{"Fri, 01 Mar 2024 10:00:30 GMT", 30 * time.Second},
		{"Fri, 01 Mar 2024 09:00:00 GMT", 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestNewRequiresCredentials(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{}, {AccessKeyID: "id"}, {AccessKeySecret: "s"}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) = nil error", o)
		}
	}
	c, err := New(Options{AccessKeyID: "id", AccessKeySecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.endpoint != DefaultEndpoint || c.timeout != 30*time.Second || c.margin != 15*time.Minute || c.pageSize != 100 {
		t.Errorf("defaults: endpoint %s, timeout %v, margin %v, page size %d", c.endpoint, c.timeout, c.margin, c.pageSize)
	}
}

// A redirect is not followed: the create's fate is unknown.
func TestSubmitDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		mu.Unlock()
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, Options{Endpoint: srv.URL})
	_, err := c.Submit(context.Background(), providers.Order{Params: json.RawMessage(validParams)})
	if providers.CodeOf(err) != providers.Ambiguous {
		t.Errorf("Submit = %v, want ambiguous", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "POST "+NASPath {
		t.Errorf("requests %v, want one POST %s", paths, NASPath)
	}
}

// A CreateOrder answer that names an order, or says Status true, is never
// read as a refusal: at a 2xx it is the create's answer; at any other
// status, or with Auth false, the order may exist (Ambiguous: looked up
// before anything is sent again), and the OrderId it named is kept.
func TestSubmitAnswerNamingAnOrder(t *testing.T) {
	t.Parallel()
	const id = "907804353770394031"
	tests := []struct {
		name   string
		status int
		body   string
		want   providers.Code // Unknown: success
		keepID bool
	}{
		{"Auth false at 200", 200, `{"Status":true,"Auth":false,"Code":"Success","Res":{"OrderId":"` + id + `"}}`, providers.Ambiguous, true},
		{"at 429", 429, okAnswer, providers.Ambiguous, true},
		{"at 400", 400, okAnswer, providers.Ambiguous, true},
		{"at 403", 403, okAnswer, providers.Ambiguous, true},
		{"at 503", 503, okAnswer, providers.Ambiguous, true},
		{"a throttling code at 200", 200, `{"Status":true,"Auth":true,"Code":"Throttling","Res":{"OrderId":"` + id + `"}}`, providers.Unknown, true},
		{"Status false with an OrderId at 200", 200, `{"Status":false,"Auth":true,"Code":"ProductConfigError","Res":{"OrderId":"` + id + `"}}`, providers.Ambiguous, true},
		{"an OrderId without Status at 400", 400, `{"Code":"InvalidParameter","Res":{"OrderId":"` + id + `"}}`, providers.Ambiguous, true},
		{"Status true without an OrderId at 400", 400, `{"Status":true,"Code":"InvalidParameter"}`, providers.Ambiguous, false},
		{"Status true, unreadable OrderId at 400", 400, `{"Status":true,"Res":{"OrderId":9.07e17}}`, providers.Ambiguous, false},
		{"Status true, Auth false, no OrderId", 200, `{"Status":true,"Auth":false}`, providers.Ambiguous, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			c := newTestClient(t, Options{Endpoint: srv.URL})
			r, err := c.Submit(context.Background(), providers.Order{OrderNo: "o1", Params: json.RawMessage(validParams)})
			if tt.want == providers.Unknown {
				if err != nil || r.Status != providers.StatusPaid || r.ProviderOrderID != id {
					t.Fatalf("Submit = %+v, %v; want paid with %s", r, err, id)
				}
				return
			}
			if got := providers.CodeOf(err); got != tt.want {
				t.Fatalf("Submit = %+v, %v; want %v", r, err, tt.want)
			}
			if tt.keepID && (r.ProviderOrderID != id || !strings.Contains(err.Error(), id)) {
				t.Errorf("Submit = %+v, %v; want the OrderId %s kept in the result and the error", r, err, id)
			}
			if strings.Contains(err.Error(), "testsecret") || strings.Contains(err.Error(), "6oPiV0WMJXhxiT65") {
				t.Errorf("error %q holds a credential", err)
			}
		})
	}
	// The queries are not concerned: a throttled QueryOrders is throttled.
	c := newTestClient(t, Options{})
	if _, err := c.classify("unicloud QueryOrders", false, &providers.Response{StatusCode: 429, Header: http.Header{}, Body: []byte(okAnswer)}, ""); providers.CodeOf(err) != providers.RateLimited {
		t.Errorf("query answered 429 = %v, want rate_limited", err)
	}
}

// A placeholder OrderId (0, "0", "000", a negative number) on an answer
// names no order: a documented refusal keeps its meaning (ProductConfigError
// is permanent), and a success without a real OrderId is Ambiguous with no
// id to look up by, never one OrderDetail could not confirm.
func TestSubmitPlaceholderOrderID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   providers.Code
		wantID string
	}{
		{"ProductConfigError with OrderId 0", 200, `{"Status":false,"Auth":true,"Code":"ProductConfigError","Msg":"产品配置错误","Res":{"Ids":null,"OrderId":0}}`, providers.InvalidArgument, ""},
		{`ProductConfigError with OrderId "000"`, 200, `{"Status":false,"Auth":true,"Code":"ProductConfigError","Res":{"OrderId":"000"}}`, providers.InvalidArgument, ""},
		{"ProductConfigError with OrderId -1", 200, `{"Status":false,"Auth":true,"Code":"ProductConfigError","Res":{"OrderId":-1}}`, providers.InvalidArgument, ""},
		{"a bad parameter at 400 with OrderId 0", 400, `{"Code":"InvalidParameter","Msg":"The specified parameter \"vpc\" is not valid.","Res":{"OrderId":0}}`, providers.InvalidArgument, ""},
		{"Status true with OrderId 0", 200, `{"Status":true,"Auth":true,"Code":"Success","Res":{"Ids":["nas-1"],"OrderId":0}}`, providers.Ambiguous, ""},
		// A real id on a refusal still means the order may exist.
		{"ProductConfigError with a real OrderId", 200, `{"Status":false,"Auth":true,"Code":"ProductConfigError","Res":{"OrderId":"42"}}`, providers.Ambiguous, "42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			c := newTestClient(t, Options{Endpoint: srv.URL})
			r, err := c.Submit(context.Background(), providers.Order{OrderNo: "o1", Params: json.RawMessage(validParams)})
			if got := providers.CodeOf(err); got != tt.want {
				t.Fatalf("Submit = %+v, %v; want %v", r, err, tt.want)
			}
			if r.ProviderOrderID != tt.wantID {
				t.Errorf("ProviderOrderID = %q, want %q", r.ProviderOrderID, tt.wantID)
			}
		})
	}
}

// The documented example body, regionName and all, is accepted and sent as
// it is: regionName goes into the body only, which is not signed, so the
// query and its signature are those of KAT-U1's parameters.
func TestSubmitDocumentedExampleBody(t *testing.T) {
	t.Parallel()
	const example = `{ "azoneId": "cn-tianjin-yfb1", "componentCode": "nas.onestor", "dataEncryption": 0, "instanceName": "sdf", "orderCategory": "NEW", "payType": "DAY_MONTH_USAGE", "projectId": "rg-k0n2gf8ew1pd", "regionId": "cn-tianjin-yfb", "regionName":"天津研发-YFB区", "renewType": "manualrenew", "rentCount": 1, "rentUnit": "month", "specificationCode": "nas.capacity.nfs", "unit": "GB", "vpc": "vpc-g2gmswxtthml" }`
	if err := Validate(json.RawMessage(example)); err != nil {
		t.Fatalf("Validate(documented example) = %v", err)
	}
	endpoint, requests := capture(t, okAnswer)
	c := newTestClient(t, Options{Endpoint: endpoint})
	if _, err := c.Submit(context.Background(), providers.Order{OrderNo: "o1", Params: json.RawMessage(example)}); err != nil {
		t.Fatal(err)
	}
	req := requests()[0]
	var body map[string]any
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatal(err)
	}
	if body["regionName"] != "天津研发-YFB区" || body["regionId"] != "cn-tianjin-yfb" {
		t.Errorf("body %s does not carry regionName and regionId as given", req.body)
	}
	if req.query.Has("regionName") || strings.Contains(req.rawQuery, "regionName") {
		t.Errorf("query %s carries regionName", req.rawQuery)
	}
	params := map[string]string{}
	for k := range req.query {
		params[k] = req.query.Get(k)
	}
	if got := Sign(http.MethodPost, params, "testsecret"); got != req.query.Get("Signature") {
		t.Errorf("Signature %s does not verify over the query alone (want %s)", req.query.Get("Signature"), got)
	}
	for _, bad := range []string{`" 天津"`, `7`, `"` + strings.Repeat("区", 65) + `"`} {
		p := strings.Replace(example, `"天津研发-YFB区"`, bad, 1)
		if err := Validate(json.RawMessage(p)); providers.CodeOf(err) != providers.InvalidArgument || !strings.Contains(err.Error(), "regionName") {
			t.Errorf("Validate(regionName %s) = %v, want invalid_argument naming regionName", bad, err)
		}
	}
}

// A name that breaks the rule is told in words, not by the pattern (a
// review: `must match ^[^\s\pZ\pC](?:…)?$` told a producer nothing).
func TestInstanceNameRuleInWords(t *testing.T) {
	for _, name := range []string{" padded", "padded ", "tab\there"} {
		p := map[string]any{}
		if err := json.Unmarshal(Spec().Example, &p); err != nil {
			t.Fatal(err)
		}
		p["instanceName"] = name
		b, _ := json.Marshal(p)
		err := Validate(b)
		if err == nil || !strings.Contains(err.Error(), "params.instanceName: must not start or end with a space") || strings.Contains(err.Error(), `\pZ`) {
			t.Errorf("Validate(instanceName %q) = %v; want the rule in words", name, err)
		}
	}
}

// A create refused as making what exists already (an instance name in
// use) may have been made by an earlier create of the order (one answered
// throttled, or whose answer was lost): unsure, and never errored as not
// created (providers.ErrSaysExists). A refusal saying something is missing
// is not that.
func TestCreateRefusedAsExistingIsNeverFinal(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, Options{Endpoint: "http://127.0.0.1:1"})
	for _, tt := range []struct {
		body   string
		exists bool
	}{
		{`{"Status":false,"Auth":true,"Code":"InstanceNameExist","Msg":"instance name exists"}`, true},
		{`{"Code":"InvalidInstanceName.Duplicate","Msg":"x"}`, true},
		{`{"Code":"DuplicateInstanceName","Msg":"x"}`, true},
		{`{"Code":"InvalidParameter","Msg":"实例名称已存在"}`, true},
		{`{"Code":"InvalidVpc.NotExist","Msg":"vpc does not exist"}`, false},
		{`{"Code":"InvalidVpc.NotFound","Msg":"x"}`, false},
		{`{"Code":"ProductConfigError","Msg":"产品配置错误"}`, false},
		{`{"Status":false,"Auth":true,"Code":"ProductConfigError","Msg":"配置项重复"}`, false},
		{`{"Code":"UserNoExist","Msg":"x"}`, false},
		{`{"Code":"ProductUnexist","Msg":"x"}`, false},
		{`{"Code":"InvalidAccessKeyId.Inexistent","Msg":"x"}`, false},
		{`{"Code":"InvalidParameter","Msg":"参数重复"}`, false},
	} {
		_, err := c.classify("unicloud CreateOrder", true, &providers.Response{StatusCode: 400, Header: http.Header{}, Body: []byte(tt.body)}, "")
		if providers.SaysExists(err) != tt.exists || tt.exists && providers.CodeOf(err) != providers.Ambiguous {
			t.Errorf("%s: %v; want said to exist %v", tt.body, err, tt.exists)
		}
	}
}
