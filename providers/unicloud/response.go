package unicloud

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/orderworker/orderworker/providers"
)

// Response is one UniCloud answer as far as the client reads it. NAS calls
// answer {Status, Auth, Code, Msg, RequestId, Res}; the transaction API's
// pages show their data at the top level ({"Order":…}, {"OrderList":…});
// errors come as {Code, Msg, RequestId} with a 4xx or 5xx.
type Response struct {
	// Status and Auth are nil when the answer does not carry them.
	Status *bool
	Auth   *bool
	// Code is the provider's code ("Success", "ProductConfigError", …).
	Code string
	// Message is Msg (or Message), unmasked: run it through providers.Redact
	// before it goes anywhere.
	Message   string
	RequestID string
	// OrderID is Res.OrderId, as a string whether the JSON holds a string
	// or a number (it is a 64-bit number: a float64 would corrupt it).
	OrderID string
	// IDs is Res.Ids, the created file systems' ids.
	IDs []string
	// Payload is the answer's data: Res when present, else the whole body.
	Payload json.RawMessage
}

// maxIDLen bounds an id the client keeps and sends back.
const maxIDLen = 64

var intLiteralRE = regexp.MustCompile(`^-?[0-9]+$`)

// ParseResponse reads a UniCloud answer. It fails when the body is not a
// JSON object, when Status or Auth is not a boolean, or when Res.OrderId is
// neither a string nor an integer literal or is implausibly long.
func ParseResponse(body []byte) (Response, error) {
	var r Response
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return r, errors.New("not a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return r, errors.New("malformed JSON")
	}
	var err error
	if r.Status, err = boolField(m, "Status"); err != nil {
		return r, err
	}
	if r.Auth, err = boolField(m, "Auth"); err != nil {
		return r, err
	}
	r.Code, _ = scalar(field(m, "Code"))
	if r.Message, _ = scalar(field(m, "Msg")); r.Message == "" {
		r.Message, _ = scalar(field(m, "Message"))
	}
	r.RequestID, _ = scalar(field(m, "RequestId"))
	r.Payload = json.RawMessage(body)
	res := bytes.TrimSpace(field(m, "Res"))
	if len(res) == 0 || string(res) == "null" {
		return r, nil
	}
	r.Payload = json.RawMessage(res)
	// The documented table types Res as a List and its example shows an
	// object: read both (docs/providers/unicloud.md).
	var objs []map[string]json.RawMessage
	switch res[0] {
	case '{':
		var o map[string]json.RawMessage
		if json.Unmarshal(res, &o) != nil {
			return r, errors.New("malformed Res")
		}
		objs = append(objs, o)
	case '[':
		var list []json.RawMessage
		if json.Unmarshal(res, &list) != nil {
			return r, errors.New("malformed Res")
		}
		for _, item := range list {
			var o map[string]json.RawMessage
			if json.Unmarshal(item, &o) == nil && o != nil {
				objs = append(objs, o)
			}
		}
	}
	for _, o := range objs {
		id, err := idField(field(o, "OrderId"))
		if err != nil {
			return r, err
		}
		if r.OrderID == "" {
			r.OrderID = id
		}
		var ids []json.RawMessage
		if json.Unmarshal(field(o, "Ids"), &ids) == nil {
			for _, raw := range ids {
				if s, ok := scalar(raw); ok && s != "" {
					r.IDs = append(r.IDs, s)
				}
			}
		}
	}
	return r, nil
}

// field returns m[name], or the first key equal to name under case folding.
func field(m map[string]json.RawMessage, name string) json.RawMessage {
	if v, ok := m[name]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// scalar returns a JSON string's value or a number's literal text.
func scalar(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&n) != nil {
		return "", false
	}
	return n.String(), true
}

func boolField(m map[string]json.RawMessage, name string) (*bool, error) {
	raw := bytes.TrimSpace(field(m, name))
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return &b, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if v, err := strconv.ParseBool(s); err == nil {
			return &v, nil
		}
	}
	return nil, errors.New(name + " is not a boolean")
}

// idField reads a provider id that may be a string or an integer literal.
// A placeholder is no id ("" is returned): 0, a negative number, or a
// string that is blank, zeros only or a negative number, as a refusal may
// carry in "OrderId":0. Taken for an id, it would turn a documented
// refusal into an order that may exist, asked of OrderDetail forever.
func idField(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	s, ok := scalar(raw)
	// An id written with spaces around it names the order without them: a
	// server that pads an id on one request and not on the next would
	// otherwise show one order as two, and a listing read as far as its
	// TotalCount with a repeat taken for a new order can leave an order
	// unread (as Tencent's rows did in a black-box run).
	s = strings.TrimSpace(s)
	switch {
	case !ok:
		return "", errors.New("id is neither a string nor a number")
	case raw[0] != '"' && !intLiteralRE.MatchString(s):
		return "", errors.New("id is not an integer")
	case len(s) > maxIDLen || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return "", errors.New("id is not printable or too long")
	case placeholderID(s):
		return "", nil
	}
	return s, nil
}

// placeholderIDRE is an id (trimmed) that names no order: nothing, zeros
// only (0, "000", "-0"), or a negative integer.
var placeholderIDRE = regexp.MustCompile(`^(?:[-+]?0*|-[0-9]+)$`)

// placeholderID reports whether id is a placeholder that names no order.
func placeholderID(id string) bool { return placeholderIDRE.MatchString(strings.TrimSpace(id)) }

// failed reports whether the answer says the call failed.
func (r Response) failed() bool {
	if r.Status != nil {
		return !*r.Status
	}
	switch strings.ToLower(r.Code) {
	case "", "success", "ok", "200", "0":
		return false
	}
	return true
}

// classify maps an HTTP answer to the Response or an *Error, in this order:
// for CreateOrder, an answer carrying an OrderId or Status true (the
// Response at a 2xx without Auth false, else Ambiguous), then a 5xx
// (Ambiguous, whatever its code); then throttling, 5xx, unreadable body,
// Auth:false, 4xx, other non-2xx, a 200 whose Status or Code says failure.
// create decides what an answer of unknown effect is: Ambiguous for
// CreateOrder, Unavailable for a query.
//
// sig is the request's Signature: a provider that echoes the request in
// its text must not carry it into an error.
func (c *Client) classify(op string, create bool, resp *providers.Response, sig string) (Response, error) {
	r, perr := ParseResponse(resp.Body)
	st := resp.StatusCode
	unsure := providers.Unavailable
	if create {
		unsure = providers.Ambiguous
	}
	fail := func(code providers.Code, msg string) (Response, error) {
		e := &providers.Error{Code: code, Op: op, HTTPStatus: st,
			ProviderCode: c.cleanCode(r.Code, sig), Message: c.clean(msg, 200, sig)}
		if code == providers.RateLimited {
			e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), c.now())
		}
		return r, e
	}
	refusal := func(st int, msg string) (Response, error) {
		code, cause := codeFor(st, r.Code, r.Message, resp.Body, create)
		if create && cause == nil && (code == providers.InvalidArgument || code == providers.Ambiguous) && saysExists(r.Code, r.Message) {
			// Refused as an instance (a name, an order) that exists
			// already: an earlier create of this order may have made it
			// (one answered throttled, or whose answer was lost). Never
			// errored as not created (providers.ErrSaysExists): looked
			// up, and left for a person if the lookups cannot tell. (A
			// refusal of the credentials, the clock or the account keeps
			// its meaning.)
			r, err := fail(providers.Ambiguous, msg+": the order may exist")
			err.(*providers.Error).Err = providers.ErrSaysExists
			return r, err
		}
		r, err := fail(code, msg)
		if cause != nil {
			providers.Held(err.(*providers.Error), cause)
		}
		return r, err
	}
	or := func(msg, dflt string) string {
		if msg != "" {
			return msg
		}
		return dflt
	}
	if create && (r.OrderID != "" || r.Status != nil && *r.Status) {
		// A CreateOrder answer that names an order, or says it succeeded,
		// is never read as a refusal, whatever else it says: at a 2xx it
		// is the create's answer (Submit then wants both Status true and
		// the OrderId); at any other status, with Auth false, or with a
		// part that cannot be read, the order may exist and is looked up
		// before anything is sent again. The OrderId stays in r.
		ok2xx := st >= 200 && st < 300
		if perr == nil && ok2xx && (r.Auth == nil || *r.Auth) {
			return r, nil
		}
		msg := "answer with Status true"
		if r.OrderID != "" {
			msg = "answer with OrderId " + r.OrderID
		}
		switch {
		case !ok2xx:
			msg += " at HTTP " + strconv.Itoa(st)
		case r.Auth != nil && !*r.Auth:
			msg += " and Auth false"
		default:
			msg += " but an unreadable part"
		}
		return fail(providers.Ambiguous, msg+": the order may exist")
	}
	switch {
	case create && st >= 500:
		// Before the throttling check: a 5xx may come from a server that
		// failed after creating the order, whatever code it puts on the
		// answer, and a create read as throttled goes out again without a
		// lookup.
		return fail(providers.Ambiguous, or(r.Message, http.StatusText(st)))
	case st == http.StatusTooManyRequests || perr == nil && isThrottle(r.Code):
		if create {
			// No throttle answer is documented, nor that one comes
			// before the order is made: a throttled create may have
			// made it, and is looked up before it is sent again
			// (providers.ErrThrottled: no failure spent, no news of
			// health). Its lookup's not-found, past the listing lag, is
			// believed while every create of the order that may have
			// been received was answered so (order.Policy.HoldUnlisted):
			// a throttle is taken to have made nothing unless the
			// listing shows otherwise.
			r, err := fail(providers.Ambiguous, or(r.Message, "throttled")+": the order may exist")
			err.(*providers.Error).Err = providers.ErrThrottled
			return r, err
		}
		return fail(providers.RateLimited, or(r.Message, "throttled"))
	case st >= 500:
		return fail(unsure, or(r.Message, http.StatusText(st)))
	case perr != nil:
		r = Response{}
		switch {
		case create && st >= 400 && !notTaken(st):
			// No code to read, and a status that does not say the request
			// was refused before it was acted on (409, 422, …).
			return fail(providers.Ambiguous, "unreadable response: "+http.StatusText(st))
		case st >= 400 && (mentions(resp.Body, "nonce") || internalText(resp.Body)):
			// A text that speaks of a reused nonce or an internal error,
			// in a form we cannot read: the request may have been acted on.
			return fail(unsure, "unreadable response: "+http.StatusText(st))
		case st == http.StatusUnauthorized || notTaken(st):
			// The API answers JSON (Format=json): a refusal it cannot
			// have written comes from in front of it (a wrong endpoint or
			// path, a proxy, a credentials check), before any order
			// exists. A configuration problem: the order waits.
			return fail(providers.Unauthenticated, http.StatusText(st)+
				": an answer that is not the API's (wrong endpoint or path, or refused in front of the API): a configuration problem")
		case st >= 400:
			return fail(providers.InvalidArgument, http.StatusText(st))
		}
		return fail(unsure, "unreadable response")
	case r.Auth != nil && !*r.Auth:
		return fail(providers.Unauthenticated, or(r.Message, "not authenticated"))
	case st >= 400:
		return refusal(st, or(r.Message, http.StatusText(st)))
	case st < 200 || st >= 300:
		return fail(unsure, "unexpected HTTP status")
	case r.failed():
		return refusal(st, or(r.Message, "failed"))
	}
	return r, nil
}

// clean makes provider text safe for an error: credentials, the request's
// signature (when given) and phone numbers masked, length bounded.
func (c *Client) clean(s string, n int, sig ...string) string {
	return providers.Truncate(providers.Redact(s, append([]string{c.accessKeySecret, c.accessKeyID}, sig...)...), n)
}

// cleanCode is clean for an error code, which is compared with documented
// ones (providers.RedactCode).
func (c *Client) cleanCode(s string, sig ...string) string {
	return providers.Truncate(providers.RedactCode(s, append([]string{c.accessKeySecret, c.accessKeyID}, sig...)...), 64)
}

// codeFor maps a refusal (a 4xx, or a 200 with Status false) by its code,
// its message and, where the code says nothing, its whole body. Nothing
// documented lists UniCloud's codes beyond ProductConfigError and the
// signature error (HTTP 400 InvalidParameter, "The specified parameter
// "Signature" is not valid.", in a body whose shape is not documented);
// the rest follows the Alibaba-style RPC codes the API mirrors.
//
// A configuration problem is Unauthenticated, the one code on which the
// order waits unchanged: a code about the request's signing or access key
// (isAuthCode); HTTP 401; at HTTP 400, 401 or 403 with no code (or a
// number) or an InvalidParameter code, a body that speaks of the
// signature or the access key anywhere (not only in Msg or Message:
// mentions); and a wrong endpoint or path: a code about the action, API
// or version (isRouting), or HTTP 404 or 405 without a code. The API
// always writes a Code, so a 404 without one comes from a server that
// does not know the path, before any order exists. A 404 or 405 with
// another code came from the API itself: on CreateOrder it is Ambiguous
// (nothing says it came before the order was created).
//
// On CreateOrder a refusal is otherwise believed only when something says
// the request was not acted on: a documented code, a code about the
// request's signing (signature, access key, timestamp), or an HTTP status
// that refuses the request itself (see notTaken). Any other code
// (SYSTEM_ERROR, CreateFailed, arrears, an order-not-found code, …) at a
// 200 or another 4xx may come after the order was created: Ambiguous, so
// that it is looked up, never recorded errored while it exists. Codes are
// compared as normCode spells them.
func codeFor(status int, code, msg string, body []byte, create bool) (providers.Code, error) {
	lc, lm := normCode(code), strings.ToLower(msg)
	// noCode: no code, or a number, which names nothing we can read.
	noCode := strings.TrimLeft(lc, "0123456789") == ""
	paramCode := noCode || strings.HasPrefix(lc, "invalidparameter")
	// The whole body is searched only where the code leaves the refusal
	// open, at a status that refuses the request itself.
	searchBody := paramCode && (status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden)
	// words: a message's words may tell a refusal before acting (a
	// clock or a signature refused) only off a create, or at a status
	// that refuses the request itself. On a create answered otherwise (a
	// 200 with Status false, a 409, a 422) the same words may come after
	// the order was made ("order created, provisioning failed: signature
	// check failed"): such a refusal is believed by its code alone, and
	// a parameter error's code (InvalidParameter…: the request's own
	// parameters refused, the documented signature error's) lets its
	// words tell which.
	words := !create || notTaken(status) || strings.HasPrefix(lc, "invalidparameter")
	// A message that names a nonce speaks of a reused one; but the
	// documented business refusal (ProductConfigError) that echoes the
	// request's query (SignatureNonce=…) says nothing of a nonce: a
	// black-box run had such refusals held unknown, looked up and sent
	// again until the circuit breaker opened for every UniCloud order.
	nonceText := strings.Contains(lm, "nonce")
	if lc == "productconfigerror" {
		nonceText = mentions([]byte(msg), "nonce")
	}
	switch {
	case strings.Contains(lc, "nonce") || nonceText || searchBody && mentions(body, "nonce"):
		// Our nonces are fresh per attempt: a reused one means this very
		// request arrived twice, and the first delivery may have acted.
		// Before the signature: "signature nonce" names the signature.
		if create {
			return providers.Ambiguous, nil
		}
		return providers.Unavailable, nil
	case isInternal(lc) || noCode && internalText(body):
		// Before the timestamp check: an internal error's message may
		// name a timestamp field (createTimestamp) without being a clock
		// refusal. Without a code, the body's words count.
		if create {
			return providers.Ambiguous, nil
		}
		return providers.Unavailable, nil
	case strings.Contains(lc, "timestamp") ||
		words && paramCode && (strings.Contains(lm, "timestamp") || strings.Contains(lm, "time stamp")):
		// Clock skew: refused before acting. Every attempt re-signs with
		// a fresh Timestamp, so a refusal that lasts is this worker's
		// clock: the order waits for it (providers.ErrClock) rather
		// than spending its failure budget. The message counts only
		// without a code or with a parameter error's, as for the
		// signature: another code's text may name a timestamp for
		// another reason.
		return providers.Unauthenticated, providers.ErrClock
	case isAuthCode(lc), status == http.StatusUnauthorized,
		words && paramCode && (strings.Contains(lm, "signature") || strings.Contains(lm, "accesskey") || strings.Contains(lm, "access key") || strings.Contains(lm, "签名")),
		searchBody && mentions(body, "signature", "accesskey", "access key", "签名"):
		return providers.Unauthenticated, nil
	case isRouting(lc), lc == "" && (status == http.StatusNotFound || status == http.StatusMethodNotAllowed):
		return providers.Unauthenticated, nil
	case !create && isOrderNotFound(lc):
		return providers.NotFound, nil
	case create && (status == http.StatusNotFound || status == http.StatusMethodNotAllowed):
		return providers.Ambiguous, nil
	case create && lc != "productconfigerror" && !notTaken(status):
		return providers.Ambiguous, nil
	case create && isArrears(lc):
		// Arrears or a balance too low may be found when the order is
		// charged, after it was made: looked up before it is sent again
		// (ambiguous), as at any other status.
		return providers.Ambiguous, nil
	case create && (status == http.StatusForbidden || isPermission(lc)) && !noCode && !namesPermission(lc):
		// A refusal that names no permission (Forbidden.RiskControl,
		// a quota, a business rule) is not documented to come before
		// the order was made: a risk check may run on the order once
		// it exists. Believed, the order would wait for the account and
		// its probe create it again every 30 s (a black-box run: 12 of
		// 18 orders so answered made two to five times).
		return providers.Ambiguous, nil
	case status == http.StatusForbidden || isPermission(lc):
		// The account may not do this (a permission its user lacks; on
		// the queries, arrears or a balance too low): refused before
		// acting, and the account's to fix, not the order's. The order
		// waits for it (providers.ErrAccount) rather than being errored
		// while the account is being put right.
		return providers.Unauthenticated, providers.ErrAccount
	default:
		return providers.InvalidArgument, nil
	}
}

// mentions reports whether body names one of words (lower case), in any
// case, other than as a parameter echoed back: an occurrence followed,
// after any letters and digits (SignatureNonce, AccessKeyId), by '=' or
// "%3d" (a query echoed) or by '"' and ':' (a JSON key, escaped or not),
// or our SignatureMethod or SignatureVersion followed by ':' (echoed as a
// header: SignatureMethod: HMAC-SHA1) does not count. Any other name
// followed by ':' is a refusal's own words ("SignatureDoesNotMatch: …",
// "AccessKeyId: not found").
func mentions(body []byte, words ...string) bool {
	lb := strings.ReplaceAll(strings.ToLower(string(body)), `\"`, `"`)
	for _, w := range words {
		for i := 0; ; {
			j := strings.Index(lb[i:], w)
			if j < 0 {
				break
			}
			i += j + len(w)
			rest := strings.TrimLeftFunc(lb[i:], func(r rune) bool { return r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) })
			switch {
			case strings.HasPrefix(rest, "="), strings.HasPrefix(rest, "%3d"):
			case strings.HasPrefix(rest, `"`) && strings.HasPrefix(strings.TrimSpace(rest[1:]), ":"):
			case w == "signature" && strings.HasPrefix(rest, ":") && (strings.HasPrefix(lb[i:], "method") || strings.HasPrefix(lb[i:], "version")):
			default:
				return true
			}
		}
	}
	return false
}

// notTaken reports whether HTTP status st says the server refused the
// request itself, before acting on it: a malformed request (400), missing
// or refused credentials (401, 403), no such resource or method (404,
// 405), a body, URI or headers too large (413, 414, 431), a body of
// another media type (415). On CreateOrder no other 4xx is read as a
// refusal unless its code is documented: 409, 422 and the like may answer
// a request that was acted on.
func notTaken(st int) bool {
	switch st {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusRequestURITooLong,
		http.StatusUnsupportedMediaType, http.StatusRequestHeaderFieldsTooLarge:
		return true
	}
	return false
}

// normCode is a provider code lower-cased, without the separators codes
// are spelt with ('_', '.', '-', space): INTERNAL_ERROR, InternalError
// and Internal.Error all read internalerror. No document lists UniCloud's
// codes or their spelling.
// saysExists reports whether a refusal's code or message says what it
// would create exists already (InstanceNameExist, InstanceAlreadyExists,
// DuplicateInstanceName, "already exists", 已存在, 重复), not that
// something is missing (OrderNotExist, InvalidVpc.NotExists).
func saysExists(code, msg string) bool {
	lc, lm := normCode(code), strings.ToLower(msg)
	for _, missing := range []string{"notexist", "nonexist", "noexist", "unexist", "inexist", "notfound"} {
		if strings.Contains(lc, missing) {
			return false
		}
	}
	if lc == "productconfigerror" {
		return false // documented: refused for its configuration
	}
	return strings.Contains(lc, "exist") || strings.Contains(lc, "duplicate") || strings.Contains(lc, "alreadyused") ||
		strings.Contains(lm, "already exist") || strings.Contains(lm, "已存在") ||
		strings.Contains(lm, "实例重复") || strings.Contains(lm, "名称重复") || strings.Contains(lm, "订单重复")
}

func normCode(code string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '_', '.', '-', ' ':
			return -1
		}
		return unicode.ToLower(r)
	}, code)
}

func isThrottle(code string) bool {
	lc := normCode(code)
	return strings.Contains(lc, "throttl") || strings.HasPrefix(lc, "requestlimitexceeded") || lc == "toomanyrequests"
}

// isAuthCode reports whether normalised code lc is about the request's
// signing or credentials: one naming the signature or the access key
// (InvalidAccessKeyId.NotFound, SignatureDoesNotMatch, MissingSignature,
// Forbidden.AccessKeyDisabled; a reused nonce is read before), or an
// authentication failure.
func isAuthCode(lc string) bool {
	if strings.Contains(lc, "signature") || strings.Contains(lc, "accesskey") {
		return true
	}
	for _, p := range []string{"authfail", "authenticat", "unauthori", "unauthenti", "invalidauth"} {
		if strings.HasPrefix(lc, p) {
			return true
		}
	}
	return false
}

// isRouting reports whether normalised code lc says the request's action,
// API, version or HTTP method is not one the server knows: a wrong
// endpoint or path, refused before any order exists. A bare NotFound is
// not one: it may name a resource the request names.
func isRouting(lc string) bool {
	for _, p := range []string{"invalidaction", "unsupportedaction", "unknownaction", "actionnotfound", "invalidapi", "apinotfound",
		"invalidversion", "unsupportedversion", "methodnotallowed", "unsupportedhttpmethod", "invalidhttpmethod", "unsupportedmethod"} {
		if strings.HasPrefix(lc, p) {
			return true
		}
	}
	return false
}

func isOrderNotFound(lc string) bool {
	return strings.Contains(lc, "order") && (strings.Contains(lc, "notfound") || strings.Contains(lc, "notexist"))
}

func isInternal(lc string) bool {
	for _, s := range []string{"internalerror", "serviceunavailable", "systemerror", "systembusy", "servicebusy", "unknownerror", "timeout"} {
		if strings.Contains(lc, s) {
			return true
		}
	}
	return false
}

// internalText reports whether a body names an internal error's code
// (spaces, case and separators aside: "System Error", "INTERNAL_ERROR"),
// a timeout aside: a page's script may well say setTimeout.
func internalText(body []byte) bool {
	lb := normCode(string(body))
	for _, s := range []string{"internalerror", "serviceunavailable", "systemerror", "systembusy", "servicebusy", "unknownerror"} {
		if strings.Contains(lb, s) {
			return true
		}
	}
	return false
}

func isPermission(lc string) bool {
	return strings.HasPrefix(lc, "forbidden") || strings.HasPrefix(lc, "nopermission") || isArrears(lc)
}

// namesPermission reports whether normalised code lc names a permission
// the caller lacks, which an API checks before it acts: Forbidden alone,
// Forbidden.RAM, NoPermission*, or a code speaking of a permission, of
// access denied or of authorization (Forbidden.NotAuthorized). On
// CreateOrder only such a refusal (or one with no code: a gateway's) is
// believed to come before the order was made.
func namesPermission(lc string) bool {
	if lc == "forbidden" || strings.HasPrefix(lc, "forbiddenram") || strings.HasPrefix(lc, "nopermission") {
		return true
	}
	for _, w := range []string{"permission", "accessdenied", "authoriz", "unauthori"} {
		if strings.Contains(lc, w) {
			return true
		}
	}
	return false
}

// isArrears reports whether normalised code lc says the account is in
// arrears or its balance too low.
func isArrears(lc string) bool {
	return strings.Contains(lc, "arrear") || strings.Contains(lc, "insufficientbalance")
}

// retryAfter reads Retry-After as seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil {
		if s > 0 {
			return time.Duration(s) * time.Second
		}
		return 0
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
