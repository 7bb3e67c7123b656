package aliyun_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/aliyun/sandbox"
)

const (
	unauthenticated = providers.Unauthenticated
	denied          = providers.PermissionDenied
	invalid         = providers.InvalidArgument
	precondition    = providers.FailedPrecondition
	limited         = providers.RateLimited
	unavailable     = providers.Unavailable
	ambiguous       = providers.Ambiguous
)

// errorCases is the mapping of docs/providers/aliyun.md ("Errors"), both
// layers, as the sandbox answers them: what a create call and a lookup
// (order/get) make of each answer. Pay, which also acts, maps every answer
// as create does. Only the documented codes and gateway messages keep their
// meaning; any other answer may have acted (ambiguous for create and pay)
// or says nothing (unavailable for a lookup).
// namedOrder is an answer's data naming an order, paid.
var namedOrder = map[string]any{"orderId": "20201104134310000196", "paymentStatus": 1}

// errorCauses are the causes of the cases that hold the order for
// something other than the credentials (see providers.ErrClock): for
// create and pay, then for a lookup. The gateway's own words say which,
// and a 5xx overrules them on a call that acts as it overrules the code
// (the call may have acted: looked up, never held and sent again).
var errorCauses = map[string][2]error{
	"gw timestamp expired":             {providers.ErrClock, providers.ErrClock},
	"gw invalid timestamp":             {providers.ErrClock, providers.ErrClock},
	"gw quota exhausted":               {providers.ErrAccount, providers.ErrAccount},
	"gw user arrears":                  {providers.ErrAccount, providers.ErrAccount},
	"gw timestamp expired at 503":      {nil, providers.ErrClock},
	"gw user arrears at http 500":      {nil, providers.ErrAccount},
	"gw quota exhausted at http 502":   {nil, providers.ErrAccount},
	"gw invalid signature":             {providers.ErrSignature, providers.ErrSignature},
	"gw invalid appkey":                {providers.ErrSignature, providers.ErrSignature},
	"gw empty signature":               {providers.ErrSignature, providers.ErrSignature},
	"gw invalid signature at http 500": {nil, providers.ErrSignature},
}

// checkCause fails t unless err has the case's cause (none: neither).
func checkCause(t *testing.T, what, name string, err error) {
	t.Helper()
	want := errorCauses[name][0]
	if what == "lookup" {
		want = errorCauses[name][1]
	}
	for _, cause := range []error{providers.ErrClock, providers.ErrAccount, providers.ErrSignature} {
		if errors.Is(err, cause) != (cause == want) {
			t.Errorf("%s: %v; want the cause %v", what, err, want)
		}
	}
}

var errorCases = []struct {
	name           string
	reply          sandbox.Reply
	create, lookup providers.Code
}{
	// Gateway: X-Ca-Error-Message, usually no body.
	{"gw invalid signature", sandbox.Reply{HTTPStatus: 400, GatewayMessage: "Invalid Signature, Server StringToSign:POSTX-Ca-Key:" + appKey + "X-Ca-Timestamp:1"}, unauthenticated, unauthenticated},
	{"gw invalid appkey", sandbox.Reply{HTTPStatus: 400, GatewayMessage: "Invalid AppKey"}, unauthenticated, unauthenticated},
	{"gw empty signature", sandbox.Reply{HTTPStatus: 401, GatewayMessage: "Empty Signature"}, unauthenticated, unauthenticated},
	{"gw content-md5 undocumented", sandbox.Reply{HTTPStatus: 400, GatewayMessage: "Invalid Content-MD5"}, ambiguous, unavailable},
	{"gw signature method undocumented", sandbox.Reply{HTTPStatus: 400, GatewayMessage: "Invalid Signature Method"}, ambiguous, unavailable},
	{"gw timestamp expired", sandbox.Reply{HTTPStatus: 400, GatewayMessage: "Timestamp Expired"}, unauthenticated, unauthenticated},
	{"gw invalid timestamp", sandbox.Reply{HTTPStatus: 400, GatewayMessage: "Invalid Timestamp"}, unauthenticated, unauthenticated},
	{"gw nonce used", sandbox.Reply{HTTPStatus: 400, GatewayMessage: "Nonce Used"}, ambiguous, unavailable},
	{"gw app throttled", sandbox.Reply{HTTPStatus: 403, GatewayMessage: "Throttled by APP Flow Control"}, limited, limited},
	{"gw api throttled", sandbox.Reply{HTTPStatus: 403, GatewayMessage: "Throttled by API Flow Control"}, limited, limited},
	{"gw quota exhausted", sandbox.Reply{HTTPStatus: 403, GatewayMessage: "Quota Exhausted"}, unauthenticated, unauthenticated},
	{"gw user arrears", sandbox.Reply{HTTPStatus: 403, GatewayMessage: "User Arrears"}, unauthenticated, unauthenticated},
	{"gw unknown 404", sandbox.Reply{HTTPStatus: 404, GatewayMessage: "Invalid Url"}, ambiguous, unavailable},
	{"gw unknown 400", sandbox.Reply{HTTPStatus: 400, GatewayMessage: "Something New"}, ambiguous, unavailable},
	{"gw unknown 403", sandbox.Reply{HTTPStatus: 403, GatewayMessage: "Forbidden"}, ambiguous, unavailable},
	{"gw unknown 401", sandbox.Reply{HTTPStatus: 401, GatewayMessage: "Something New"}, unauthenticated, unauthenticated},
	{"gw unknown 429", sandbox.Reply{HTTPStatus: 429, GatewayMessage: "Something New"}, ambiguous, limited},
	{"gw internal error", sandbox.Reply{HTTPStatus: 500, GatewayMessage: "Internal Error"}, ambiguous, unavailable},
	{"gw backend failed", sandbox.Reply{HTTPStatus: 500, GatewayMessage: "Failed To Call Backend Service"}, ambiguous, unavailable},
	{"gw service unavailable", sandbox.Reply{HTTPStatus: 503, GatewayMessage: "Service Unavailable"}, ambiguous, unavailable},
	{"gw async service", sandbox.Reply{HTTPStatus: 504, GatewayMessage: "Async Service"}, ambiguous, unavailable},
	// Platform: code in the JSON body.
	{"400 request error", sandbox.Reply{Code: 400, Message: "request error"}, invalid, invalid},
	// 400 is permanent "unless the message indicates something transient".
	{"400 system busy", sandbox.Reply{Code: 400, Message: "request error: system busy, please retry later"}, ambiguous, unavailable},
	{"400 timeout", sandbox.Reply{Code: 400, Message: "backend timeout"}, ambiguous, unavailable},
	{"400 繁忙", sandbox.Reply{Code: 400, Message: "系统繁忙，请稍后再试"}, ambiguous, unavailable},
	{"460 busy stays a parameter error", sandbox.Reply{Code: 460, Message: "request parameter error: busy"}, invalid, invalid},
	{"401 request auth error", sandbox.Reply{Code: 401, Message: "request auth error"}, unauthenticated, unauthenticated},
	{"403 request forbidden", sandbox.Reply{Code: 403, Message: "request forbidden."}, denied, denied},
	{"404 service not found", sandbox.Reply{Code: 404, Message: "service not found"}, precondition, precondition},
	// The platform's throttle: retryable, and nothing says it came before
	// the platform acted (a create or pay throttled after it acted, sent
	// again, would make or pay the order twice).
	{"429 too many requests", sandbox.Reply{Code: 429, Message: "too many requests"}, ambiguous, limited},
	{"460 parameter error", sandbox.Reply{Code: 460, Message: "request parameter error"}, invalid, invalid},
	{"500 service error", sandbox.Reply{Code: 500, Message: "service error"}, ambiguous, unavailable},
	{"500 service error http 500", sandbox.Reply{HTTPStatus: 500, Code: 500, Message: "service error"}, ambiguous, unavailable},
	{"503 not available", sandbox.Reply{Code: 503, Message: "service not available"}, ambiguous, unavailable},
	{"2000 param invalid", sandbox.Reply{Code: 2000, Message: "param is invalid"}, invalid, invalid},
	{"2062 identityId", sandbox.Reply{Code: 2062, Message: "identityId does not exist"}, invalid, invalid},
	{"2063 iotId", sandbox.Reply{Code: 2063, Message: "iotId not exist"}, invalid, invalid},
	{"2064 undocumented", sandbox.Reply{Code: 2064}, ambiguous, unavailable},
	{"2065 not bound", sandbox.Reply{Code: 2065, Message: "identityId and iotId not bound"}, invalid, invalid},
	{"2066 not manager", sandbox.Reply{Code: 2066, Message: "identityId is not manager"}, invalid, invalid},
	{"2099 undocumented", sandbox.Reply{Code: 2099, Message: "?"}, ambiguous, unavailable},
	{"418 undocumented", sandbox.Reply{Code: 418, Message: "?"}, ambiguous, unavailable},
	{"unknown code", sandbox.Reply{Code: 9999, Message: "?"}, ambiguous, unavailable},
	// A 5xx may come from a server that failed after acting: for create
	// and pay, no code or reason on it keeps its meaning.
	{"460 at http 500", sandbox.Reply{HTTPStatus: 500, Code: 460, Message: "request parameter error"}, ambiguous, invalid},
	{"401 at http 502", sandbox.Reply{HTTPStatus: 502, Code: 401, Message: "request auth error"}, ambiguous, unauthenticated},
	{"429 at http 503", sandbox.Reply{HTTPStatus: 503, Code: 429, Message: "too many requests"}, ambiguous, limited},
	{"gw throttled at http 503", sandbox.Reply{HTTPStatus: 503, GatewayMessage: "Throttled by API Flow Control"}, ambiguous, limited},
	{"gw invalid signature at http 500", sandbox.Reply{HTTPStatus: 500, GatewayMessage: "Invalid Signature"}, ambiguous, unauthenticated},
	{"gw timestamp expired at 503", sandbox.Reply{HTTPStatus: 503, GatewayMessage: "Timestamp Expired"}, ambiguous, unauthenticated},
	{"gw user arrears at http 500", sandbox.Reply{HTTPStatus: 500, GatewayMessage: "User Arrears"}, ambiguous, unauthenticated},
	{"gw quota exhausted at http 502", sandbox.Reply{HTTPStatus: 502, GatewayMessage: "Quota Exhausted"}, ambiguous, unauthenticated},
	// An answer that refuses and names an order contradicts itself.
	{"refusal naming an order", sandbox.Reply{Code: 460, Data: namedOrder}, ambiguous, invalid},
	{"http 400 naming an order", sandbox.Reply{HTTPStatus: 400, Code: 200, Data: namedOrder}, ambiguous, unavailable},
	{"http 429 naming an order", sandbox.Reply{HTTPStatus: 429, Code: 200, Data: namedOrder}, ambiguous, limited},
	// HTTP 429 throttles (RFC 6585): a listed code keeps its meaning on
	// it, any other answer is read as the status.
	{"unknown code at http 429", sandbox.Reply{HTTPStatus: 429, Code: 9999, Message: "?"}, ambiguous, limited},
	{"500 at http 429", sandbox.Reply{HTTPStatus: 429, Code: 500, Message: "service error"}, ambiguous, limited},
	{"400 system busy at http 429", sandbox.Reply{HTTPStatus: 429, Code: 400, Message: "system busy, please retry later"}, ambiguous, limited},
	{"gw internal error at http 429", sandbox.Reply{HTTPStatus: 429, GatewayMessage: "Internal Error"}, ambiguous, limited},
	{"460 at http 429", sandbox.Reply{HTTPStatus: 429, Code: 460, Message: "request parameter error"}, invalid, invalid},
	{"401 at http 429", sandbox.Reply{HTTPStatus: 429, Code: 401, Message: "request auth error"}, unauthenticated, unauthenticated},
	{"403 at http 429", sandbox.Reply{HTTPStatus: 429, Code: 403, Message: "request forbidden."}, denied, denied},
	{"gw throttled at http 429", sandbox.Reply{HTTPStatus: 429, GatewayMessage: "Throttled by API Flow Control"}, limited, limited},
	// Bare HTTP statuses, no header and no body.
	{"bare 429", sandbox.Reply{HTTPStatus: 429}, ambiguous, limited},
	{"bare 502", sandbox.Reply{HTTPStatus: 502}, ambiguous, unavailable},
	{"bare 401", sandbox.Reply{HTTPStatus: 401}, unauthenticated, unauthenticated},
	{"bare 403", sandbox.Reply{HTTPStatus: 403}, ambiguous, unavailable},
	{"bare 404", sandbox.Reply{HTTPStatus: 404}, ambiguous, unavailable},
	{"bare 400", sandbox.Reply{HTTPStatus: 400}, ambiguous, unavailable},
	{"bare 418", sandbox.Reply{HTTPStatus: 418}, ambiguous, unavailable},
	{"bare 200", sandbox.Reply{HTTPStatus: 200}, ambiguous, unavailable},
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			o := testOrder(10)
			// Twice: a platform 401 is retried once with a fresh token.
			f.sb.Inject(aliyun.PathCreate, tt.reply, tt.reply)
			_, err := f.c.Submit(ctx(t), o)
			if c := providers.CodeOf(err); c != tt.create {
				t.Errorf("create: code = %v (%v), want %v", c, err, tt.create)
			}
			checkCause(t, "create", tt.name, err)
			if n := f.sb.Count(iotID(10)); n != 0 {
				t.Errorf("create: sandbox holds %d orders, want 0", n)
			}
			checkClean(t, err, f.sb)

			o.ProviderOrderID = "20201104134310000196"
			f.sb.Inject(aliyun.PathGet, tt.reply, tt.reply)
			_, err = f.c.Lookup(ctx(t), o)
			if c := providers.CodeOf(err); c != tt.lookup {
				t.Errorf("lookup: code = %v (%v), want %v", c, err, tt.lookup)
			}
			checkCause(t, "lookup", tt.name, err)
			if c := providers.CodeOf(err); c == providers.NotFound {
				t.Errorf("lookup by id must never say not found")
			}
			checkClean(t, err, f.sb)

			f.sb.Inject(aliyun.PathPay, tt.reply, tt.reply)
			_, err = f.c.Pay(ctx(t), o)
			if c := providers.CodeOf(err); c != tt.create {
				t.Errorf("pay: code = %v (%v), want %v", c, err, tt.create)
			}
			checkCause(t, "pay", tt.name, err)
			checkClean(t, err, f.sb)
		})
	}
}

func checkClean(t *testing.T, err error, sb *sandbox.Server) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range append([]string{appKey, appSecret, phone}, sb.IssuedTokens()...) {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error text %q holds a secret", err)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	f.sb.Inject(aliyun.PathCreate, sandbox.Reply{HTTPStatus: 403, GatewayMessage: "Throttled by APP Flow Control",
		Header: http.Header{"Retry-After": {"3"}}})
	_, err := f.c.Submit(ctx(t), testOrder(11))
	if got := providers.RetryAfterOf(err); got != 3*time.Second {
		t.Errorf("RetryAfter = %v (%v), want 3s", got, err)
	}
	f.sb.Inject(aliyun.PathQuery, sandbox.Reply{Code: 429})
	_, err = f.c.Prepare(ctx(t), testOrder(11))
	if providers.CodeOf(err) != providers.RateLimited || providers.RetryAfterOf(err) != 0 {
		t.Errorf("body 429 without a delay: %v, RetryAfter %v", err, providers.RetryAfterOf(err))
	}
}

// The error carries what the attempt history records.
func TestErrorDetails(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	f.sb.Inject(aliyun.PathCreate, sandbox.Reply{Code: 2063, Message: "iotId not exist"})
	_, err := f.c.Submit(ctx(t), testOrder(12))
	want := "aliyun order/create: invalid_argument (http 200) 2063: iotId not exist"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
	f.sb.Inject(aliyun.PathCreate, sandbox.Reply{HTTPStatus: 403, GatewayMessage: "Quota Exhausted",
		Header: http.Header{"X-Ca-Error-Code": {"A403QE"}}})
	_, err = f.c.Submit(ctx(t), testOrder(12))
	want = "aliyun order/create: unauthenticated (http 403) A403QE: Quota Exhausted: " + providers.ErrAccount.Error()
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestCodeFunctions(t *testing.T) {
	t.Parallel()
	// The reason is read before the first comma: the echoed StringToSign
	// names X-Ca-Timestamp, which must not make it a clock problem.
	if c := aliyun.GatewayCode(400, "Invalid Signature, Server StringToSign:POSTX-Ca-Timestamp:1", true); c != unauthenticated {
		t.Errorf("GatewayCode(invalid signature) = %v", c)
	}
	for code, want := range map[int]providers.Code{401: unauthenticated, 460: invalid, 2063: invalid, 2064: ambiguous, 2999: ambiguous,
		418: ambiguous, 503: ambiguous, 0: ambiguous, 3000: ambiguous} {
		if c := aliyun.PlatformCode(code, true); c != want {
			t.Errorf("PlatformCode(%d, create) = %v, want %v", code, c, want)
		}
	}
	if c := aliyun.PlatformCode(503, false); c != unavailable {
		t.Errorf("PlatformCode(503, lookup) = %v", c)
	}
	// Gateway reasons keep their meaning only as documented.
	for _, tt := range []struct {
		status  int
		message string
		want    providers.Code
	}{
		{403, "Throttled by USER Flow Control", limited},
		{400, "timestamp expired", unauthenticated},
		{403, "User Arrears", unauthenticated},
		{400, "Invalid Timestamp Format", ambiguous},
		{403, "Unauthorized", ambiguous},
		{403, "Quota Exhausted For Today", ambiguous},
		{401, "Something New", unauthenticated},
		{404, "Invalid Url", ambiguous},
	} {
		if c := aliyun.GatewayCode(tt.status, tt.message, true); c != tt.want {
			t.Errorf("GatewayCode(%d, %q, create) = %v, want %v", tt.status, tt.message, c, tt.want)
		}
	}
	if c := aliyun.GatewayCode(404, "Invalid Url", false); c != unavailable {
		t.Errorf("GatewayCode(404, Invalid Url, lookup) = %v", c)
	}
}

// HTTP 429 is a throttle by HTTP's definition (RFC 6585), whatever code
// the body carries, unless it is a code listed with a meaning of its own
// (a parameter error, a refused token, forbidden), which keeps that
// meaning. A read so answered is throttled (rate_limited, after the
// Retry-After), a create or pay unsure but no news of the platform's
// health, as every throttle: read by its code, an unlisted one (or one
// that only says the server failed) was unavailable, and every read
// throttled so counted against the circuit breaker.
func TestUnlistedCodeAt429IsAThrottle(t *testing.T) {
	t.Parallel()
	retry := http.Header{"Retry-After": {"3"}}
	for _, tt := range []struct {
		name  string
		reply sandbox.Reply
	}{
		{"unknown code", sandbox.Reply{HTTPStatus: 429, Code: 9999, Message: "slow down", Header: retry}},
		{"2064 undocumented", sandbox.Reply{HTTPStatus: 429, Code: 2064, Header: retry}},
		{"500 service error", sandbox.Reply{HTTPStatus: 429, Code: 500, Message: "service error", Header: retry}},
		{"code 200", sandbox.Reply{HTTPStatus: 429, Code: 200, Header: retry}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			o := testOrder(14)
			f.sb.Inject(aliyun.PathQuery, tt.reply)
			_, err := f.c.Prepare(ctx(t), o)
			if providers.CodeOf(err) != providers.RateLimited || providers.RetryAfterOf(err) != 3*time.Second {
				t.Errorf("Prepare = %v (RetryAfter %v); want rate_limited after 3s", err, providers.RetryAfterOf(err))
			}
			o.ProviderOrderID = "20201104134310000196"
			f.sb.Inject(aliyun.PathGet, tt.reply)
			_, err = f.c.Lookup(ctx(t), o)
			if providers.CodeOf(err) != providers.RateLimited || providers.RetryAfterOf(err) != 3*time.Second {
				t.Errorf("Lookup = %v (RetryAfter %v); want rate_limited after 3s", err, providers.RetryAfterOf(err))
			}
			f.sb.Inject(aliyun.PathCreate, tt.reply)
			_, err = f.c.Submit(ctx(t), testOrder(15))
			if providers.CodeOf(err) != providers.Ambiguous || !providers.Throttled(err) || providers.RetryAfterOf(err) != 3*time.Second {
				t.Errorf("Submit = %v (throttled %v, RetryAfter %v); want ambiguous, throttled, after 3s",
					err, providers.Throttled(err), providers.RetryAfterOf(err))
			}
		})
	}
}

// A create or pay the platform throttled is unsure (it may have acted
// before answering so), yet the platform answered: no news of its health,
// which the circuit breaker does not count, as it counts no throttle. At
// HTTP 5xx it counts: the server may have failed.
func TestThrottledActingCallIsNoNewsOfHealth(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		reply  sandbox.Reply
		noNews bool
	}{
		{"body 429", sandbox.Reply{Code: 429, Message: "too many requests"}, true},
		{"bare 429", sandbox.Reply{HTTPStatus: 429}, true},
		{"429 at http 503", sandbox.Reply{HTTPStatus: 503, Code: 429, Message: "too many requests"}, false},
		{"500 service error", sandbox.Reply{Code: 500, Message: "service error"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			f.sb.Inject(aliyun.PathCreate, tt.reply)
			_, err := f.c.Submit(ctx(t), testOrder(13))
			if providers.CodeOf(err) != providers.Ambiguous || errors.Is(err, providers.ErrNoNews) != tt.noNews || providers.Throttled(err) != tt.noNews {
				t.Errorf("Submit = %v; want ambiguous, no news of health %v", err, tt.noNews)
			}
		})
	}
}

// A create answered the platform's "503 service not available" (code 503
// at HTTP 200 or 503), which the error table calls retryable as it
// stands, unlike 500 ("reconcile first"), is still Ambiguous, marked
// providers.ErrRetryAnswer: its lookup's not-found past the listing lag is
// believed. Any other answer (a redirect or another status carrying the
// code, the gateway's server errors), and a lookup so answered, are not
// marked.
func TestServiceUnavailableCreateIsMarkedRetryable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		reply sandbox.Reply
		want  bool
	}{
		{"gw service unavailable", sandbox.Reply{HTTPStatus: 503, GatewayMessage: "Service Unavailable"}, false},
		{"503 at http 302", sandbox.Reply{HTTPStatus: 302, Code: 503, Message: "service not available"}, false},
		{"503 at http 400", sandbox.Reply{HTTPStatus: 400, Code: 503, Message: "service not available"}, false},
		{"503 at http 503", sandbox.Reply{HTTPStatus: 503, Code: 503, Message: "service not available"}, true},
		{"503 at http 200", sandbox.Reply{Code: 503, Message: "service not available"}, true},
		{"500", sandbox.Reply{Code: 500, Message: "service error"}, false},
		{"503 at http 500", sandbox.Reply{HTTPStatus: 500, Code: 503, Message: "service not available"}, false},
		{"gw internal error", sandbox.Reply{HTTPStatus: 500, GatewayMessage: "Internal Error"}, false},
		{"gw async service", sandbox.Reply{HTTPStatus: 504, GatewayMessage: "Async Service"}, false},
		{"gw service unavailable at http 500", sandbox.Reply{HTTPStatus: 500, GatewayMessage: "Service Unavailable"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			o := testOrder(11)
			f.sb.Inject(aliyun.PathCreate, tt.reply, tt.reply)
			_, err := f.c.Submit(ctx(t), o)
			if providers.CodeOf(err) != providers.Ambiguous || providers.RetryAnswer(err) != tt.want {
				t.Errorf("create: %v (%v), retry answer %v; want ambiguous, retry answer %v", providers.CodeOf(err), err, providers.RetryAnswer(err), tt.want)
			}
			o.ProviderOrderID = "20201104134310000196"
			f.sb.Inject(aliyun.PathGet, tt.reply, tt.reply)
			if _, err := f.c.Lookup(ctx(t), o); providers.RetryAnswer(err) {
				t.Errorf("lookup answered so: %v, marked a retry answer", err)
			}
		})
	}
}
