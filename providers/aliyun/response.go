package aliyun

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderworker/orderworker/providers"
)

// Response is the platform's answer envelope: {id, code, message,
// localizedMsg, data}.
type Response struct {
	ID string
	// Code is the platform code; 200 is success.
	Code int
	// Message is message, or localizedMsg when message is empty.
	Message string
	// Data is the data member, nil when absent or null.
	Data json.RawMessage
}

// ParseResponse reads the platform's answer envelope. Code may come as a
// number or a numeric string; a body without a code is an error.
func ParseResponse(body []byte) (Response, error) {
	var env struct {
		ID           flexString      `json:"id"`
		Code         *flexInt        `json:"code"`
		Message      flexString      `json:"message"`
		LocalizedMsg flexString      `json:"localizedMsg"`
		Data         json.RawMessage `json:"data"`
	}
	if err := decodeJSON(body, &env); err != nil {
		return Response{}, err
	}
	if env.Code == nil {
		return Response{}, errors.New("no code")
	}
	if int64(*env.Code) != int64(int(*env.Code)) {
		return Response{}, errors.New("code out of range")
	}
	r := Response{ID: string(env.ID), Code: int(*env.Code), Message: string(env.Message), Data: env.Data}
	if r.Message == "" {
		r.Message = string(env.LocalizedMsg)
	}
	if string(bytes.TrimSpace(r.Data)) == "null" || len(bytes.TrimSpace(r.Data)) == 0 {
		r.Data = nil
	}
	return r, nil
}

// decodeJSON decodes exactly one JSON value from body into v.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

// PaymentStatus is an order's paymentStatus.
type PaymentStatus int

const (
	// PaymentUnknown: the answer did not say.
	PaymentUnknown PaymentStatus = -1
	PaymentUnpaid  PaymentStatus = 0
	PaymentPaid    PaymentStatus = 1
	PaymentPaying  PaymentStatus = 2
)

// OrderInfo is the part of an order (create, pay and get data, or one
// entry of query) this client uses. Ids are kept as strings.
type OrderInfo struct {
	OrderID       string
	OutOrderNo    string
	CommodityCode string
	// Copies is 0 when the answer does not say.
	Copies int64
	// Status: 0 valid, 1 expired, 2 frozen (3 "creating" is seen on the
	// cloud-storage counterpart); OrderStatusUnreadable when given but not
	// an integer. StatusGiven says the answer carried a status (not null):
	// without one, Status is 0 and means nothing.
	Status        int64
	StatusGiven   bool
	PaymentStatus PaymentStatus
	UserID        string
	// IotID is the device the answer says the order is for, "" when it
	// does not say (no document shows a listing entry's members).
	IotID string
	// Created is when the order was created, zero when the answer carries
	// no creation time or one in a format this client cannot read (see
	// the package doc).
	Created time.Time
	// CreatedNoZone says Created was read from a time without a zone
	// ("2006-01-02 15:04:05"), taken as UTC+8: the instant it means may be
	// off by as much as a zone can be, and the fallback rule allows for
	// that (see Rule).
	CreatedNoZone bool
}

// OrderStatusUnreadable is OrderInfo.Status for a status member that is
// not an integer.
const OrderStatusUnreadable = math.MinInt64

// shanghai is UTC+8, the zone assumed for local-time strings without one.
var shanghai = time.FixedZone("UTC+8", 8*60*60)

// rawOrder holds an order's members undecoded, so that each is read on its
// own: an unreadable member the caller does not need never fails the
// answer.
type rawOrder struct {
	OrderID       json.RawMessage `json:"orderId"`
	OutOrderNo    json.RawMessage `json:"outOrderNo"`
	CommodityCode json.RawMessage `json:"commodityCode"`
	Copies        json.RawMessage `json:"copies"`
	Status        json.RawMessage `json:"status"`
	PaymentStatus json.RawMessage `json:"paymentStatus"`
	UserID        json.RawMessage `json:"userId"`
	IotID         json.RawMessage `json:"iotId"`
	GmtCreate     json.RawMessage `json:"gmtCreate"`
	CreateTime    json.RawMessage `json:"createTime"`
}

// anyGiven reports whether any member of an order is present and not
// null.
func (r rawOrder) anyGiven() bool {
	for _, v := range []json.RawMessage{r.OrderID, r.OutOrderNo, r.CommodityCode, r.Copies, r.Status,
		r.PaymentStatus, r.UserID, r.GmtCreate, r.CreateTime} {
		if given(v) {
			return true
		}
	}
	return false
}

// given reports whether a member is present and not null.
func given(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && string(raw) != "null"
}

// readString reads a string-or-number member; absent or null is "".
func readString(raw json.RawMessage) (string, error) {
	if !given(raw) {
		return "", nil
	}
	var f flexString
	if err := json.Unmarshal(raw, &f); err != nil {
		return "", err
	}
	return string(f), nil
}

// readInt reads an integer member; ok is false when it is absent or null.
func readInt(raw json.RawMessage) (n int64, ok bool, err error) {
	if !given(raw) {
		return 0, false, nil
	}
	var f flexInt
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, false, err
	}
	return int64(f), true, nil
}

// info reads the order. The members order matching reads (orderId,
// commodityCode, copies, userId) fail it when unreadable, unless idOnly,
// where only orderId does. The others (outOrderNo, status, paymentStatus
// and the creation time) never do: one that cannot be read is left
// unknown.
func (r rawOrder) info(idOnly bool) (OrderInfo, error) {
	o := OrderInfo{PaymentStatus: PaymentUnknown}
	var err error
	if o.OrderID, err = readString(r.OrderID); err != nil {
		return OrderInfo{}, fmt.Errorf("orderId: %w", err)
	}
	// An id written with space around it (a padded column, a template)
	// is the id without it: create, get and pay name the order so, and
	// one kept padded could never be paid or looked up by its id.
	o.OrderID = strings.TrimSpace(o.OrderID)
	needed := func(name string, err error) error {
		if err != nil && !idOnly {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	cc, err := readString(r.CommodityCode)
	if err := needed("commodityCode", err); err != nil {
		return OrderInfo{}, err
	}
	o.CommodityCode = cc
	uid, err := readString(r.UserID)
	if err := needed("userId", err); err != nil {
		return OrderInfo{}, err
	}
	o.UserID = uid
	copies, _, err := readInt(r.Copies)
	if err := needed("copies", err); err != nil {
		return OrderInfo{}, err
	}
	o.Copies = copies
	if s, err := readString(r.OutOrderNo); err == nil {
		o.OutOrderNo = s
	}
	if s, err := readString(r.IotID); err == nil {
		o.IotID = s
	}
	switch n, ok, err := readInt(r.Status); {
	case err != nil:
		o.Status, o.StatusGiven = OrderStatusUnreadable, true
	case ok:
		o.Status, o.StatusGiven = n, true
	}
	if ps, ok, err := readInt(r.PaymentStatus); ok && err == nil {
		switch ps {
		case 0, 1, 2:
			o.PaymentStatus = PaymentStatus(ps)
		}
	}
	for _, raw := range []json.RawMessage{r.GmtCreate, r.CreateTime} {
		if t, noZone := parseTime(raw); !t.IsZero() {
			o.Created, o.CreatedNoZone = t, noZone
			break
		}
	}
	return o, nil
}

// ParseOrder reads one order from pay or get data. An unreadable orderId,
// commodityCode, copies or userId fails it; any other member that cannot
// be read is left unknown.
func ParseOrder(data json.RawMessage) (OrderInfo, error) {
	if len(data) == 0 {
		return OrderInfo{}, errors.New("no data")
	}
	var r rawOrder
	if err := decodeJSON(data, &r); err != nil {
		return OrderInfo{}, err
	}
	return r.info(false)
}

// ParseCreated reads create's answer: the orderId first, which it needs,
// then whatever else it can. Once the orderId is read nothing else fails
// it: an answer naming an order is an order created, and a member that
// cannot be read (paymentStatus included) is left unknown.
func ParseCreated(data json.RawMessage) (OrderInfo, error) {
	if len(data) == 0 {
		return OrderInfo{}, errors.New("no data")
	}
	var r rawOrder
	if err := decodeJSON(data, &r); err != nil {
		return OrderInfo{}, err
	}
	o, err := r.info(true)
	if err != nil {
		return OrderInfo{}, err
	}
	if o.OrderID == "" {
		return OrderInfo{}, errors.New("no orderId")
	}
	return o, nil
}

// OrderList is one page of order/query.
type OrderList struct {
	Orders []OrderInfo
	// Total is the listed total, -1 when not given. What it counts is
	// not documented (see list).
	Total int64
	// NoArray says the answer gave a total but showed no order array (the
	// array null or missing, or an empty one under a name not known to
	// hold orders). Such a page shows no orders only when its total
	// confirms the orders read before it (see list); otherwise it shows
	// nothing.
	NoArray bool
}

// listKeys are the members order/query's array is looked for under.
var listKeys = []string{"data", "list", "items", "orderList", "records"}

// ParseOrderList reads order/query data. Its shape is not documented, so
// it accepts the order array itself; an object (the page) holding it
// under data, list, items, orderList or records or, when none of those
// holds an array, under the one member that does; or an array holding
// nothing but one page that carries one of those known names and none of
// an order's members (the page wrapped in an array, as a third-party
// client types the answer). The total is read from the page, under total
// or totalCount.
//
// Every entry of the order array must carry orderId, commodityCode or
// copies: an entry with none of them is not known to be an order, and is
// never read as one (the answer is an error).
//
// The bare array, or an array under a known name, is a page, and an empty
// one an empty page. A page that shows no array (null or missing) but
// gives a total, or shows an empty one under a name not known to hold
// orders, is returned with NoArray set: it is an empty page only when that
// total fits the listing (see list). Data that is missing or null, or a
// page that shows no array and gives no total, does not show the device's
// orders and is an error, never "no orders"; so is a page where two
// members hold an array, or where the known one is empty while another
// holds entries (which is the list is not known).
func ParseOrderList(data json.RawMessage) (OrderList, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return OrderList{}, errors.New("no order list in the answer")
	}
	if data[0] != '[' {
		var page map[string]json.RawMessage
		if err := decodeJSON(data, &page); err != nil {
			return OrderList{}, err
		}
		return parsePage(page)
	}
	var items []json.RawMessage
	if err := decodeJSON(data, &items); err != nil {
		return OrderList{}, err
	}
	if len(items) == 1 {
		if page, ok := pageWrapper(items[0]); ok {
			return parsePage(page)
		}
	}
	orders, err := parseOrders(items)
	if err != nil {
		return OrderList{}, err
	}
	return OrderList{Orders: orders, Total: -1}, nil
}

// pageWrapper reports whether item is a page rather than an order: an
// object carrying a known list member (null or not) and none of an order's
// members. A third-party client types order/query's data as an array of
// such pages ({pageNo, pageSize, pageCount, total, orderList}); read as an
// order, it would be an order without an id on every page, and the listing
// would never end.
func pageWrapper(item json.RawMessage) (map[string]json.RawMessage, bool) {
	item = bytes.TrimSpace(item)
	if len(item) == 0 || item[0] != '{' {
		return nil, false
	}
	var page map[string]json.RawMessage
	if decodeJSON(item, &page) != nil {
		return nil, false
	}
	var r rawOrder
	if decodeJSON(item, &r) != nil || r.anyGiven() {
		return nil, false
	}
	for _, k := range listKeys {
		if _, ok := page[k]; ok {
			return page, true
		}
	}
	return nil, false
}

// parsePage reads an order/query page given as an object (see
// ParseOrderList).
func parsePage(page map[string]json.RawMessage) (OrderList, error) {
	out := OrderList{Total: -1}
	totalGiven := false
	for _, k := range []string{"total", "totalCount"} {
		v, ok := page[k]
		if !ok || !given(v) {
			continue
		}
		var n flexInt
		if err := decodeJSON(v, &n); err != nil {
			return OrderList{}, fmt.Errorf("%s: %w", k, err)
		}
		out.Total, totalGiven = int64(n), n >= 0
		break
	}
	found := ""
	for _, k := range listKeys {
		v, ok := page[k]
		if !ok || !given(v) {
			continue // a null member shows no array
		}
		if found != "" {
			return OrderList{}, fmt.Errorf("both %s and %s given: which holds the orders is not known", found, k)
		}
		found = k
	}
	// Members that hold an array under a name not known to hold orders.
	var others []string
	for k, v := range page {
		v = bytes.TrimSpace(v)
		if len(v) > 0 && v[0] == '[' && !slices.Contains(listKeys, k) {
			others = append(others, k)
		}
	}
	slices.Sort(others)
	known := found != ""
	switch {
	case !known && len(others) > 1:
		return OrderList{}, fmt.Errorf("%s all hold an array: which holds the orders is not known", strings.Join(others, ", "))
	case !known && len(others) == 1:
		found = others[0]
	}
	if found == "" {
		// No array: a page only if its total can confirm it (see list).
		if !totalGiven {
			return OrderList{}, errors.New("no order array in the answer")
		}
		out.NoArray = true
		return out, nil
	}
	var items []json.RawMessage
	if err := decodeJSON(page[found], &items); err != nil {
		return OrderList{}, fmt.Errorf("%s: %w", found, err)
	}
	switch {
	case len(items) > 0:
	case known:
		for _, k := range others {
			if !emptyArray(page[k]) {
				// An empty list beside entries elsewhere: "no orders"
				// would be read from an answer that may hold them.
				return OrderList{}, fmt.Errorf("%s is empty while %s holds entries: which holds the orders is not known", found, k)
			}
		}
	case !totalGiven:
		return OrderList{}, fmt.Errorf("only %s holds an array, and it is empty: not known to be the order list", found)
	default:
		// An empty array under a name not known to hold orders shows
		// no more than a missing one.
		out.NoArray = true
		return out, nil
	}
	orders, err := parseOrders(items)
	if err != nil {
		return OrderList{}, fmt.Errorf("%s: %w", found, err)
	}
	out.Orders = orders
	return out, nil
}

// emptyArray reports whether v is an array without entries.
func emptyArray(v json.RawMessage) bool {
	var items []json.RawMessage
	return decodeJSON(v, &items) == nil && len(items) == 0
}

// parseOrders reads the entries of an order array.
func parseOrders(items []json.RawMessage) ([]OrderInfo, error) {
	var orders []OrderInfo
	for i, item := range items {
		var r rawOrder
		if err := decodeJSON(item, &r); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if !given(r.OrderID) && !given(r.CommodityCode) && !given(r.Copies) {
			// Nothing shows it is an order: read as one, it would be
			// an order without an id (a page, say, or an error entry).
			return nil, fmt.Errorf("entry %d has no orderId, commodityCode or copies", i)
		}
		o, err := r.info(false)
		if err != nil {
			return nil, err
		}
		orders = append(orders, o)
	}
	return orders, nil
}

// Token is a cloudToken and when it stops being valid.
type Token struct {
	Value     providers.Secret
	ExpiresAt time.Time
	// TTL is the lifetime the answer gave (ParseToken sets it; stores go by
	// ExpiresAt).
	TTL time.Duration
}

// DefaultTokenTTL is a cloudToken's documented default lifetime, assumed
// when the answer gives none.
const DefaultTokenTTL = 7_200_000 * time.Millisecond

// ParseToken reads /cloud/token data: cloudToken, and its lifetime in
// milliseconds spelt either expireIn or expiresIn (the documents use both).
func ParseToken(data json.RawMessage) (Token, error) {
	if len(data) == 0 {
		return Token{}, errors.New("no token in the answer")
	}
	var r struct {
		CloudToken flexString `json:"cloudToken"`
		ExpireIn   *flexInt   `json:"expireIn"`
		ExpiresIn  *flexInt   `json:"expiresIn"`
	}
	if err := decodeJSON(data, &r); err != nil {
		return Token{}, errors.New("malformed token answer")
	}
	if r.CloudToken == "" {
		return Token{}, errors.New("no token in the answer")
	}
	t := Token{Value: providers.Secret(r.CloudToken), TTL: DefaultTokenTTL}
	for _, ms := range []*flexInt{r.ExpireIn, r.ExpiresIn} {
		if ms != nil && *ms > 0 && *ms < flexInt(100*365*24*time.Hour/time.Millisecond) {
			t.TTL = time.Duration(*ms) * time.Millisecond
			break
		}
	}
	return t, nil
}

// epochSecondsBelow: an epoch creation time below it is in seconds, from
// it on in milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
const epochSecondsBelow = 1e11

// parseTime reads a creation time: epoch seconds or milliseconds (number
// or digits, told apart by epochSecondsBelow), "2006-01-02 15:04:05"
// (taken as UTC+8, and reported noZone), or RFC 3339. Absent, null and
// anything it cannot read are zero: a creation time is never worth failing
// an answer over. Whether the time is plausible is for the rule to judge.
func parseTime(raw json.RawMessage) (t time.Time, noZone bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, false
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, false
		}
	} else {
		s = string(raw)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n <= 0 || n > 1e15:
			return time.Time{}, false
		case n < epochSecondsBelow:
			return time.Unix(n, 0), false
		}
		return time.UnixMilli(n), false
	}
	if t, err := time.ParseInLocation(time.DateTime, s, shanghai); err == nil {
		return t, true
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, false
	}
	return time.Time{}, false
}

// flexString accepts a JSON string or number (kept as its digits); null is
// "".
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return errors.New("want a string or a number")
		}
		*f = flexString(n.String())
	}
	return nil
}

// flexInt accepts a JSON integer or a string of one, written as an
// integer or as a number with a whole value (1.0, 1e0: a server whose
// column or serializer is a float writes one so).
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(strings.TrimSpace(s))
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		// A whole number written otherwise, within float64's exact
		// integers; 1.5, or one too large to be exact, is none.
		v, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil || v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return errors.New("want an integer")
		}
		n = int64(v)
	}
	*f = flexInt(n)
	return nil
}

// classify turns an HTTP answer into the call's data or an *Error. Gateway
// failures carry X-Ca-Error-Message (and often no body); platform failures
// carry a code other than 200 in the JSON body. Only the documented codes
// and gateway messages keep their meaning, and only outside HTTP 3xx
// (a redirect, never followed) and, for a call that acts (create or pay),
// below HTTP 500: any other failure is unsure (Ambiguous for a call that
// acts; Unavailable for the others), except at HTTP 429, which throttles
// (see below). secrets are redacted from every message.
func classify(op string, acts bool, resp *providers.Response, secrets []string) (answer, error) {
	a, err := classifyAnswer(op, acts, resp, secrets)
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Err != nil {
		return a, err
	}
	switch {
	case acts && pe.Code == providers.Ambiguous && throttleAnswer(resp):
		// A create or pay throttled by the platform is unsure (it may
		// have acted first), but the platform answered: no news of its
		// health, which the circuit breaker does not count, and no spend
		// of the order's failure budget, as for any throttle.
		pe.Err = providers.ErrThrottled
		pe.RetryAfter = retryAfter(resp.Header)
	case op == opName(PathCreate) && pe.Code == providers.Ambiguous && serviceUnavailable(resp):
		// The platform's "503 service not available", the one server
		// error its table calls retryable without "reconcile first":
		// still looked up, as nothing documents that it comes before
		// the platform acts, but its lookup's not-found past the listing
		// lag is believed, as a throttle's is (a black-box fake
		// answering it before it created anything left 9 to 13 orders
		// in 150 to 200 unknown for a person, never created).
		pe.Err = providers.ErrRetryAnswer
	case !acts && pe.Code == providers.Unavailable && resp.StatusCode == http.StatusTooManyRequests:
		// HTTP 429 throttles, by HTTP's definition (RFC 6585), whatever
		// the body carries unless it is a code listed with a meaning of
		// its own (a parameter error, a refused token, forbidden: those
		// are not Unavailable, and keep it). Read as what the code alone
		// says (an undocumented code, a server error, code 200 under the
		// status), a read throttled so was Unavailable, which the circuit
		// breaker counts: a platform throttling its reads would have
		// opened Aliyun's breaker, and held every order back for its
		// cool-down, where a throttle only slows the worker down.
		pe.Code = providers.RateLimited
		pe.RetryAfter = retryAfter(resp.Header)
	}
	return a, err
}

// serviceUnavailable reports whether resp is the platform's documented
// "503 service not available": the body's code 503 at HTTP 200 or 503.
// Not a redirect or another error status carrying it (a redirect proves
// nothing of what the server that sent it did), nor the gateway's Service
// Unavailable, which its table lists as unsure beside its other server
// errors.
func serviceUnavailable(resp *providers.Response) bool {
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return false
	}
	if resp.Header.Get(HeaderErrorMessage) != "" {
		return false
	}
	r, err := ParseResponse(resp.Body)
	return err == nil && r.Code == 503
}

// throttleAnswer reports whether resp throttles: HTTP 429, or the
// platform's code 429 below HTTP 500 (a 5xx may come from a server that
// failed, whatever code it carries).
func throttleAnswer(resp *providers.Response) bool {
	if resp.StatusCode == http.StatusTooManyRequests {
		return true
	}
	if resp.StatusCode >= 500 {
		return false
	}
	r, err := ParseResponse(resp.Body)
	return err == nil && r.Code == 429
}

// classifyAnswer is classify before a throttle is marked as no news.
func classifyAnswer(op string, acts bool, resp *providers.Response, secrets []string) (answer, error) {
	unsure := providers.Unavailable
	if acts {
		unsure = providers.Ambiguous
	}
	fail := func(code providers.Code, pcode, msg string) error {
		e := &providers.Error{Code: code, Op: op, HTTPStatus: resp.StatusCode,
			ProviderCode: providers.Truncate(providers.RedactCode(pcode, secrets...), 64),
			Message:      providers.Truncate(providers.Redact(msg, secrets...), 300)}
		if code == providers.RateLimited {
			e.RetryAfter = retryAfter(resp.Header)
		}
		return e
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// A redirect is not followed (refuseRedirect), and says nothing
		// of what the server that sent it did with the request, whatever
		// gateway reason or body code it carries: unsure. Read as a
		// refused token, it would even be sent again.
		return answer{}, fail(unsure, "", fmt.Sprintf("HTTP %d %s not followed", resp.StatusCode, http.StatusText(resp.StatusCode)))
	}
	r, perr := ParseResponse(resp.Body)
	// A failure whose body names an order contradicts itself, and a 5xx
	// may come from a server that failed after acting, whatever code or
	// reason it carries (a refusal read as throttled or as a bad token
	// would even be sent again without a lookup): for a call that acts,
	// the order may exist whatever the failure says.
	overruled := acts && (resp.StatusCode >= 500 || perr == nil && namesOrder(r.Data))
	if gw := resp.Header.Get(HeaderErrorMessage); gw != "" {
		code := GatewayCode(resp.StatusCode, gw, acts)
		if overruled {
			code = unsure
		}
		err := fail(code, resp.Header.Get(HeaderErrorCode), gw)
		switch cause := GatewayCause(gw); {
		case code == providers.Unauthenticated && cause != nil:
			providers.Held(err.(*providers.Error), cause)
		case code == providers.Unauthenticated && GatewaySignature(gw):
			// The signature or the AppKey: every call is refused so.
			providers.Held(err.(*providers.Error), providers.ErrSignature)
		}
		return answer{}, err
	}
	switch {
	case perr == nil && r.Code != 200:
		code := PlatformCode(r.Code, acts)
		if overruled || r.Code == 400 && TransientMessage(r.Message) {
			// (400 is documented as permanent "unless the message
			// indicates something transient": then it may have acted,
			// or may pass, as any unsure answer.)
			code = unsure
		}
		return answer{}, fail(code, strconv.Itoa(r.Code), r.Message)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		if perr == nil {
			// Code 200 under an error status: nothing documents which
			// of the two holds.
			return answer{}, fail(unsure, "200", fmt.Sprintf("http %d with code 200", resp.StatusCode))
		}
		return answer{}, fail(statusCode(resp.StatusCode, unsure), "", http.StatusText(resp.StatusCode))
	case perr != nil:
		// A 2xx we cannot read: the call may have worked.
		return answer{}, fail(unsure, "", "unreadable response")
	}
	return answer{status: resp.StatusCode, data: r.Data}, nil
}

// namesOrder reports whether data holds an orderId.
func namesOrder(data json.RawMessage) bool {
	var d struct {
		OrderID json.RawMessage `json:"orderId"`
	}
	return len(data) > 0 && json.Unmarshal(data, &d) == nil && given(d.OrderID)
}

// transientWords are what a message says of a failure that may pass
// (lower case; Chinese as the platform writes it).
var transientWords = []string{"busy", "retry", "try again", "later", "timeout", "timed out", "temporar", "unavailable", "overload",
	"繁忙", "稍后", "重试", "超时", "暂时"}

// TransientMessage reports whether a platform message indicates something
// transient (a busy system, a retry, a timeout), which the error table
// makes of a 400 ("permanent, unless the message indicates something
// transient"): then the answer is unsure, never a refusal for good.
func TransientMessage(msg string) bool {
	m := strings.ToLower(msg)
	for _, w := range transientWords {
		if strings.Contains(m, w) {
			return true
		}
	}
	return false
}

// GatewayCode maps an API-gateway failure (its X-Ca-Error-Message and HTTP
// status) to a code. acts says whether the call was create or pay, where a
// failure whose effect is unknown is Ambiguous rather than Unavailable.
// Only the reasons the gateway's error table documents keep their meaning;
// any other reason goes by the HTTP status as a bare one does (see
// statusCode): nothing says where the gateway stopped the request.
func GatewayCode(status int, message string, acts bool) providers.Code {
	unsure := providers.Unavailable
	if acts {
		unsure = providers.Ambiguous
	}
	if GatewayCause(message) != nil {
		// Refused before anything happened, for this worker's clock
		// (every attempt re-signs with a fresh timestamp, so a refusal
		// that lasts is the clock) or for the account: neither is the
		// order's, so the order waits for the fix (GatewayCause).
		return providers.Unauthenticated
	}
	// Only the reason before the first comma: "Invalid Signature, Server
	// StringToSign:…" echoes header names such as X-Ca-Timestamp.
	head, _, _ := strings.Cut(message, ",")
	h := strings.ToLower(strings.TrimSpace(head))
	switch h {
	case "invalid signature", "invalid appkey", "empty signature":
		return providers.Unauthenticated
	case "internal error", "failed to call backend service", "service unavailable", "async service":
		return unsure
	}
	if strings.HasPrefix(h, "throttled by ") && strings.HasSuffix(h, " flow control") {
		return providers.RateLimited
	}
	// Any other reason, a nonce refused as used included (its wording is
	// not documented): every attempt draws a fresh nonce, so a used one
	// means this very request reached the gateway before (a replay on the
	// way), and that copy may have acted.
	return statusCode(status, unsure)
}

// GatewaySignature reports whether a gateway refusal (its
// X-Ca-Error-Message) is of the request's signature or AppKey, as the
// gateway refuses every call signed so: the credentials, whatever the API
// (providers.ErrSignature).
func GatewaySignature(message string) bool {
	head, _, _ := strings.Cut(message, ",")
	switch strings.ToLower(strings.TrimSpace(head)) {
	case "invalid signature", "invalid appkey", "empty signature":
		return true
	}
	return false
}

// GatewayCause is why a gateway refusal (its X-Ca-Error-Message, read
// before the first comma) that GatewayCode reads as Unauthenticated holds
// the order: providers.ErrClock
// for a refused timestamp, providers.ErrAccount for an exhausted quota or
// arrears, nil for the credentials.
func GatewayCause(message string) error {
	head, _, _ := strings.Cut(message, ",")
	switch strings.ToLower(strings.TrimSpace(head)) {
	case "timestamp expired", "invalid timestamp":
		return providers.ErrClock
	case "quota exhausted", "user arrears":
		return providers.ErrAccount
	}
	return nil
}

// PlatformCode maps the platform's code (from the JSON body) to a code.
// acts says whether the call was create or pay. The documented codes keep
// their meaning; any other (2064 included, which no public page shows) is
// unsure: Ambiguous when the call acts, else Unavailable.
func PlatformCode(code int, acts bool) providers.Code {
	switch code {
	case 401:
		return providers.Unauthenticated
	case 403:
		return providers.PermissionDenied
	case 404:
		return providers.FailedPrecondition
	case 429:
		if acts {
			// The platform's own throttle answer: nothing documents
			// that it comes before the platform acted (the error table
			// calls it retryable, no more), and a create or pay sent
			// again on it would make or pay the order twice.
			return providers.Ambiguous
		}
		return providers.RateLimited
	case 400, 460, 2000, 2062, 2063, 2065, 2066:
		return providers.InvalidArgument
	}
	if acts {
		return providers.Ambiguous
	}
	return providers.Unavailable
}

// statusCode maps a bare HTTP status (no gateway reason, no body code).
// 401 (a failed signature check, documented) refuses before acting; 429
// throttles, which for a call that acts says nothing documented about
// whether it acted first (unsure: Ambiguous), and for a read is
// RateLimited; any other status says nothing documented about what was
// done: unsure.
func statusCode(status int, unsure providers.Code) providers.Code {
	switch status {
	case http.StatusTooManyRequests:
		if unsure == providers.Ambiguous {
			return unsure
		}
		return providers.RateLimited
	case http.StatusUnauthorized:
		return providers.Unauthenticated
	}
	return unsure
}

func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
