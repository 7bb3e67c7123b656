package tencent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/orderworker/orderworker/providers"
)

// Name is the provider's key.
const Name = "tencent"

// Path is the service API's path under the endpoint.
const Path = "/api/exploreropen/serviceapi"

// DefaultEndpoint is the production base URL.
const DefaultEndpoint = "https://iot.cloud.tencent.com"

// Options configure a Client. Only the credentials are required.
type Options struct {
	// Endpoint is the base URL (scheme://host[:port]). Default
	// DefaultEndpoint.
	Endpoint string
	// AppKey and AppSecret are the service API credentials.
	AppKey    string
	AppSecret providers.Secret
	// HTTPClient sends requests. Default: a client with no overall timeout
	// (each call is bounded by Timeout). Redirects are never followed:
	// the Client uses a copy of the one given whose CheckRedirect refuses
	// them (see refuseRedirect), and reads a 3xx as it is.
	HTTPClient *http.Client
	// Timeout bounds each call. The API documents none. Default 10s.
	Timeout time.Duration
	// Now returns the time used for Timestamp. Default time.Now.
	Now func() time.Time
}

// Client is the Tencent provider. It is safe for concurrent use.
type Client struct {
	endpoint  string
	appKey    string
	appSecret string
	hc        *http.Client
	timeout   time.Duration
	now       func() time.Time
	// limitFrom is where a lookup's listing starts in listLimits: past
	// every Limit this server refused while a smaller one (or none) was
	// then taken (see list), so that each lookup does not send a refused
	// request first.
	limitFrom atomic.Int32
}

var _ providers.Provider = (*Client)(nil)

// New returns a Client.
func New(opts Options) (*Client, error) {
	if opts.AppKey == "" || opts.AppSecret == "" {
		return nil, errors.New("tencent: app key and app secret are required")
	}
	c := &Client{
		endpoint:  strings.TrimRight(opts.Endpoint, "/"),
		appKey:    opts.AppKey,
		appSecret: opts.AppSecret.Reveal(),
		hc:        opts.HTTPClient,
		timeout:   opts.Timeout,
		now:       opts.Now,
	}
	if c.endpoint == "" {
		c.endpoint = DefaultEndpoint
	}
	if c.hc == nil {
		c.hc = newHTTPClient(providers.NewTransport())
	} else {
		hc := *c.hc
		hc.CheckRedirect = refuseRedirect
		c.hc = &hc
	}
	if c.timeout <= 0 {
		c.timeout = 10 * time.Second
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// newHTTPClient returns a client on rt that does not follow redirects.
func newHTTPClient(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, CheckRedirect: refuseRedirect}
}

// refuseRedirect is the clients' CheckRedirect: no redirect is followed,
// and the 3xx itself is the answer (see classify). Go's default would send
// a create answered 307 or 308 again, signed body and AppKey included, to
// whatever host the Location names, over http:// too, and that second
// create is one the order's state never records.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Name implements providers.Provider.
func (c *Client) Name() string { return Name }

// NoOrderIDs implements providers.IDless: an order is known by its OrderNo.
func (c *Client) NoOrderIDs() bool { return true }

var (
	customerIDRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	itemRE       = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// signedEchoRE matches three or more key=value pairs joined by '&':
	// the signed string (or a request's query) a refusal may echo back.
	signedEchoRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9_.]*=[^&\s]*(?:&[A-Za-z][A-Za-z0-9_.]*=[^&\s]*){2,}`)
)

// Fields are the params ServiceCreateOrder takes besides OrderNo, which
// comes from the order's order_no.
var Fields = []providers.Field{
	{Name: "CustomerId", Kind: providers.String, Required: true, Pattern: customerIDRE, MaxLen: 32},
	{Name: "ItemId", Kind: providers.String, Required: true, Pattern: itemRE, MaxLen: 64},
	{Name: "ItemVNO", Kind: providers.String, Pattern: itemRE, MaxLen: 64},
	{Name: "ItemNum", Kind: providers.Int, Required: true, Min: 1, Max: 1_000_000},
}

// Validate checks ServiceCreateOrder params; it needs no client.
func Validate(params json.RawMessage) error {
	_, err := Parse(params)
	return err
}

// Validate implements providers.Provider.
func (c *Client) Validate(params json.RawMessage) error { return Validate(params) }

// stamp is what changes on every attempt.
type stamp struct {
	RequestID string
	Timestamp int64
	Nonce     int64
}

func (c *Client) newStamp() stamp {
	return stamp{RequestID: uuid.NewString(), Timestamp: c.now().Unix(), Nonce: nonces.next()}
}

// maxNonce is the largest Nonce sent: the documents type it Int, and a
// positive 32-bit integer is what every example fits.
const maxNonce = 1<<31 - 1

// A nonceSeq hands out Nonces in 1..maxNonce, a random stride apart from a
// random start, wrapping (maxNonce is prime, so every stride visits every
// number once): a process repeats none of its own until it has sent 2³¹−1
// requests. Drawn at random instead, two requests of one process at 100 a
// second would share a Nonce about once every 12 minutes were the API to
// remember Nonces for 5 (how long it does is not documented; the birthday
// bound on 2³¹), and a Nonce refused as seen again is what this client
// must read as a replay of the same request (ambiguous): the order waits
// the listing lag for a lookup. Two processes' Nonces meet as seldom as
// random ones would, one at a time: with a stride of 1 each, two
// processes sending at about the same rate whose runs of numbers met
// would share every Nonce for as long as the API remembers them. The
// Nonce is no secret: the signature covers it, and the API asks only that
// it be unique.
type nonceSeq struct {
	start, stride uint64 // in 0..maxNonce−1; stride not 0
	k             atomic.Uint64
}

// nonces is the process's sequence, shared by every client.
var nonces = newNonceSeq()

func newNonceSeq() *nonceSeq {
	start, err := rand.Int(rand.Reader, big.NewInt(maxNonce))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	stride, err := rand.Int(rand.Reader, big.NewInt(maxNonce-1))
	if err != nil {
		panic(err)
	}
	return &nonceSeq{start: start.Uint64(), stride: stride.Uint64() + 1}
}

// next is start + k·stride (mod maxNonce), plus 1, for the k-th call:
// below 2⁶² before the modulo.
func (s *nonceSeq) next() int64 {
	k := s.k.Add(1) % maxNonce
	return int64((s.start+k*s.stride%maxNonce)%maxNonce) + 1
}

// body builds the signed JSON body for action with the business params
// (string or integer values), and returns its signature too.
func (c *Client) body(action string, params map[string]any, s stamp) ([]byte, string, error) {
	all := make(map[string]any, len(params)+6)
	for k, v := range params {
		if str, ok := v.(string); ok && str == "" {
			continue // empty strings are neither signed nor sent
		}
		all[k] = v
	}
	all["Action"] = action
	all["RequestId"] = s.RequestID
	all["AppKey"] = c.appKey
	all["Timestamp"] = s.Timestamp
	all["Nonce"] = s.Nonce
	rendered := make(map[string]string, len(all))
	for k, v := range all {
		rendered[k] = render(v)
	}
	sig := Sign(rendered, c.appSecret)
	all["Signature"] = sig
	b, err := json.Marshal(all)
	return b, sig, err
}

// render gives a value's text in the string to sign: raw strings, decimal
// integers, true/false.
func render(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		return v.String()
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// Submit implements providers.Provider with ServiceCreateOrder.
func (c *Client) Submit(ctx context.Context, o providers.Order) (providers.Result, error) {
	p, err := orderParams(o)
	if err != nil {
		return providers.Result{}, err
	}
	business := map[string]any{
		"CustomerId": p.Str("CustomerId"),
		"OrderNo":    o.OrderNo,
		"ItemId":     p.Str("ItemId"),
		"ItemVNO":    p.Str("ItemVNO"),
		"ItemNum":    p.Int("ItemNum"),
	}
	resp, err := c.call(ctx, "ServiceCreateOrder", business, true, p.Str("CustomerId"))
	if err != nil {
		return providers.Result{}, err
	}
	return providers.Result{Status: providers.StatusPaid, HTTPStatus: resp.status, Code: "OK", Message: "created"}, nil
}

// maxListPages is the most ServiceGetOrderList pages one Lookup reads.
const maxListPages = 10

// listLimits are the Limits a listing asks for, largest first: the next
// one once a request carrying one is refused for its parameters (see
// list), then none.
var listLimits = []int{100, 50, 20, 10}

// listedOrder is one entry of ServiceGetOrderList's Orders. ItemNum is kept
// as its text, number or string.
type listedOrder struct {
	CustomerId, OrderNo, ItemId, ItemVNO looseString
	ItemNum                              json.RawMessage
}

// looseString is a listed field the document gives as a string, read from a
// JSON string or, from a loosely typed server, a number (kept as the
// number's text, num set); null or absent is "".
type looseString struct {
	s   string
	num bool
}

func (l *looseString) UnmarshalJSON(b []byte) error {
	t := bytes.TrimSpace(b)
	switch {
	case string(t) == "null":
		*l = looseString{}
		return nil
	case len(t) > 0 && t[0] == '"':
		l.num = false
		return json.Unmarshal(t, &l.s)
	}
	var n json.Number
	if err := json.Unmarshal(t, &n); err != nil {
		return err
	}
	*l = looseString{s: n.String(), num: true}
	return nil
}

// repeatKey and sameRow tell a row read on an earlier page of the same
// listing when a later page lists it again. Pages of a listing read as far
// as its Total hold every order only if no row was read twice (Lookup), so
// a repeat must never pass for a new row, and a server may write any field
// otherwise on each request: ItemNum 2 one time and "2.0" the next,
// ItemVNO there or left out, OrderNo in another case, padded, or a number
// written 1.2e3 or as a string. Judged by the rows' text, an order missed
// by overlapping pages went unnoticed and was taken for absent (a
// black-box run: orders created twice). So a row is a repeat of one read
// before with the same OrderNo, in any such form (repeatKey), whose every
// field both give may be the same value (sameRow): rows that surely differ
// (our OrderNo with another ItemNum: another system's order) are two.
func (l listedOrder) repeatKey() string {
	return strings.ToLower(looseText(l.OrderNo))
}

// sameRow reports whether rows a and b, of the same repeatKey, may be one
// order written otherwise: no field that both give differs in value.
func sameRow(a, b listedOrder) bool {
	same := func(x, y string) bool {
		if x == "" || y == "" || strings.EqualFold(x, y) {
			return true
		}
		fx, errx := strconv.ParseFloat(x, 64)
		fy, erry := strconv.ParseFloat(y, 64)
		return errx == nil && erry == nil && fx == fy
	}
	num := func(raw json.RawMessage) string {
		t := strings.Trim(strings.TrimSpace(string(raw)), `"`)
		if t == "null" {
			return ""
		}
		return strings.TrimSpace(t)
	}
	return same(looseText(a.CustomerId), looseText(b.CustomerId)) && same(looseText(a.ItemId), looseText(b.ItemId)) &&
		same(looseText(a.ItemVNO), looseText(b.ItemVNO)) && same(num(a.ItemNum), num(b.ItemNum))
}

// looseText is a listed field's text as sameRow and repeatKey compare it:
// trimmed, and a number written otherwise than as a plain integer (1.2e3,
// 2.0) in its shortest form.
func looseText(l looseString) string {
	t := strings.TrimSpace(l.s)
	if l.num && strings.Trim(t, "0123456789") != "" {
		if f, err := strconv.ParseFloat(t, 64); err == nil {
			return strconv.FormatFloat(f, 'f', -1, 64)
		}
	}
	return t
}

// repeats reports whether got was read before in this listing (seen, by
// repeatKey).
func repeats(seen map[string][]listedOrder, got listedOrder) bool {
	for _, r := range seen[got.repeatKey()] {
		if sameRow(r, got) {
			return true
		}
	}
	return false
}

// differs reports whether a listed order carries a field that differs from
// the params; a field the listing leaves empty rules nothing out.
func (l listedOrder) differs(p providers.Params) bool {
	diff := func(listed looseString, ours string) bool { return listed.s != "" && ours != "" && listed.s != ours }
	num := strings.Trim(strings.TrimSpace(string(l.ItemNum)), `"`)
	return diff(l.CustomerId, p.Str("CustomerId")) || diff(l.ItemId, p.Str("ItemId")) ||
		diff(l.ItemVNO, p.Str("ItemVNO")) || (num != "null" && numDiffers(num, p.Int("ItemNum")))
}

// numberMayBe reports whether a listed OrderNo given as a JSON number
// (listed, its text) that does not read as ours may still be ours written
// as a number. Ours in a form other than plain digits (1e3, 0x10) may be
// any number. Ours in plain digits may be listed with a leading zero
// dropped or in another form (123 for 0123, 1e3 or 1000.0 for 1000: the
// same value), as a double keeps it (more than 15 digits: the nearest
// double, 9007199254740996 for 9007199254740995), or rounded to fewer
// digits than it has, as an encoder of doubles with a set precision prints
// it (9.007199254741e+15): listed's value within half a unit of its own
// last digit of ours, trailing zeros of a whole number not counted as
// digits, when ours has more than 15 or listed is no whole number in
// plain digits. Any other number is another order's (123458 is no form of
// 9007199254740995: a black-box run had such orders left for a person).
func numberMayBe(listed, ours string) bool {
	_, ferr := strconv.ParseFloat(ours, 64)
	_, ierr := strconv.ParseInt(ours, 0, 64) // 0x10, 0b10, 0o10: numbers to a JavaScript server
	if ferr != nil && ierr != nil {
		return false // "CI-001" is no number's text
	}
	if ours == "" || strings.Trim(ours, "0123456789") != "" || len(ours) > 1 && ours[0] == '0' {
		// Another form of number (1e3, 0x10), or one with a leading
		// zero, which a server may read as octal (0123 as 83): any
		// number may be it.
		return true
	}
	if len(listed) > 64 {
		return true // no order number's form: not worth the arithmetic
	}
	if _, e, ok := strings.Cut(strings.ToLower(listed), "e"); ok {
		if n, err := strconv.Atoi(e); err != nil || n > 400 || n < -400 {
			return true // no order number's form: not worth the arithmetic
		}
	}
	l, ok := new(big.Rat).SetString(listed)
	if !ok {
		return true
	}
	o, _ := new(big.Rat).SetString(ours)
	if l.Cmp(o) == 0 {
		return true
	}
	lf, _ := strconv.ParseFloat(listed, 64)
	of, _ := strconv.ParseFloat(ours, 64)
	if lf == of {
		return true
	}
	if plain := listed != "" && strings.Trim(listed, "0123456789") == ""; plain && len(strings.TrimLeft(ours, "0")) <= 15 {
		// Whole numbers of at most 15 digits: a double keeps ours, and
		// an encoder prints it whole (one of fewer digits prints a
		// fraction or an exponent, judged below).
		return false
	}
	// Rounded to the listed text's digits from ours, or from the double
	// nearest ours (a server keeping it as a double, printing it to 14 or
	// 15 digits: the two roundings add up).
	half := halfUnit(listed)
	for _, from := range []*big.Rat{o, new(big.Rat).SetFloat64(of)} {
		if from == nil {
			continue
		}
		diff := new(big.Rat).Sub(l, from)
		if diff.Abs(diff).Cmp(half) <= 0 {
			return true
		}
	}
	return false
}

// halfUnit is half a unit of the last digit a number's text gives (for
// 9.007199254741e+15, 500; for 1.5, 0.05; for 1200, 50: a whole number's
// trailing zeros may stand for digits rounded away).
func halfUnit(text string) *big.Rat {
	mant, exp := strings.ToLower(strings.TrimLeft(text, "+-")), 0
	if m, e, ok := strings.Cut(mant, "e"); ok {
		mant = m
		exp, _ = strconv.Atoi(e)
	}
	if whole, frac, ok := strings.Cut(mant, "."); ok {
		exp -= len(frac)
		if strings.Trim(frac, "0") == "" && frac != "" {
			mant = whole
			exp += len(frac)
		} else {
			mant = whole + frac
		}
	}
	for len(mant) > 1 && strings.HasSuffix(mant, "0") {
		mant = mant[:len(mant)-1]
		exp++
	}
	unit := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(max(exp, -exp))), nil))
	if exp < 0 {
		unit.Inv(unit)
	}
	return unit.Mul(unit, big.NewRat(1, 2))
}

// numDiffers reports whether a listed ItemNum differs from ours: by value
// when it reads as a number (2, 2.0 and 2e0 are the same count), else by
// its text; an empty one rules nothing out.
func numDiffers(listed string, ours int64) bool {
	if listed == "" {
		return false
	}
	if f, err := strconv.ParseFloat(listed, 64); err == nil {
		return f != float64(ours)
	}
	return listed != strconv.FormatInt(ours, 10)
}

// Lookup implements providers.Provider with ServiceGetOrderList filtered by
// OrderNo alone, every page (at most maxListPages); the CustomerId is
// checked on what is listed, not asked for.
//
// The order is identified by its OrderNo, the producer's order number,
// which only this record can hold (the ledger keys records by it), so no
// other record's order can match and Order.Owned does not apply; a listed
// order with this OrderNo must also carry the params' CustomerId, ItemId,
// ItemNum and ItemVNO where the listing gives them. Exactly one such order
// is paid (the listing has no payment status; ServiceCreateOrder answers
// only OK); none, in a complete listing, is NotFound. Anything else is
// Ambiguous for a person: an order with this OrderNo but other params
// (another system using the same number), the same order twice, or a
// listing too long to read. A listing that cannot be shown complete is
// Unavailable, and so is a page that fails: the order is looked up again
// later. Either, once the part read holds our order once and nothing like
// it, leaves the order found (see foundInPart).
//
// The document names Offset, Limit and Total and defines none of them, so
// the first request sends no Offset (the server's own start), later ones
// Offset = the orders read so far, and each one Limit 100, stepped down
// to 50, 20 and 10, then left out, as listings are refused for their
// parameters (see list). The listing is complete only at an empty page
// that does not stop short of its Total (and, once no Limit is sent, or
// once it listed orders of other numbers, ignoring the OrderNo filter,
// one whose Total counts the list), or once the orders read reach its
// Total.
// A later page that lists an order number already read (the server counts
// Offset otherwise, or ignores it, or the listing moved) is Unavailable, and
// so is a listing that ignored the filter whose Total changed between its
// pages (pages from copies of different lengths skip rows, none read
// twice); a
// Total below the orders read cannot be counting this listing, so from
// then on only an empty page ends it.
func (c *Client) Lookup(ctx context.Context, o providers.Order) (providers.Result, error) {
	const op = "tencent ServiceGetOrderList"
	p, err := orderParams(o)
	if err != nil {
		return providers.Result{}, err
	}
	// others: rows of other order numbers, which a server that applies
	// the OrderNo filter never lists.
	mine, foreign, read, others := 0, 0, 0, 0
	cut := 0 // rows that may be ours cut short (cutShort)
	status := 0
	var total *int                     // the listing's Total, as last given
	moved := false                     // a page gave another Total than the page before
	trustTotal := true                 // false once more orders were read than it counts
	seen := map[string][]listedOrder{} // the rows read, by repeatKey
	limit := int(c.limitFrom.Load())   // the index in listLimits of the Limit sent; none past its end
	for page := 0; ; page++ {
		if page == maxListPages && !(others > 0 && total != nil && trustTotal && read == *total) {
			// (One page more for a listing that ignored the filter and
			// reached its Total: only the empty page after it ends it.)
			msg := fmt.Sprintf("more than %d pages listed (%d orders read); cannot read them all", maxListPages, read)
			if r, ok := foundInPart(mine, foreign, status, msg); ok {
				return r, nil
			}
			return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: status, Message: msg}
		}
		// By OrderNo alone: a listing filtered by CustomerId too would be
		// refused wherever the create was refused for its CustomerId (an
		// unknown customer), and would hide an order with our number under
		// another customer; differs checks the CustomerId of what is
		// listed.
		q := map[string]any{"OrderNo": o.OrderNo}
		if page > 0 {
			q["Offset"] = read
		}
		resp, err := c.list(ctx, q, &limit, p.Str("CustomerId"))
		if err != nil {
			// A page that fails after ours was read leaves it found.
			msg := fmt.Sprintf("the page at Offset %d could not be read (%s)", read, providers.CodeOf(err))
			if r, ok := foundInPart(mine, foreign, status, msg); ok {
				return r, nil
			}
			return providers.Result{}, err
		}
		status = resp.status
		list, err := parseOrderList(resp.response, page == 0)
		if err != nil {
			msg := fmt.Sprintf("the page at Offset %d could not be read (%s)", read, err)
			if r, ok := foundInPart(mine, foreign, status, msg); ok {
				return r, nil
			}
			return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op,
				HTTPStatus: resp.status, Message: err.Error()}
		}
		for _, got := range list.Orders {
			if repeats(seen, got) {
				// Pages of one listing never share a row: this one
				// repeats what was read (Offset counted otherwise, or
				// ignored, or the listing moved), and proves nothing.
				msg := fmt.Sprintf("the page at Offset %d lists orders already read; the list cannot be read in full", read)
				if r, ok := foundInPart(mine, foreign, status, msg); ok {
					return r, nil
				}
				return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status, Message: msg}
			}
		}
		for _, got := range list.Orders {
			seen[got.repeatKey()] = append(seen[got.repeatKey()], got)
			switch {
			case got.OrderNo.s == "":
				// The row cannot be told apart from ours.
				foreign++
			case got.OrderNo.num && got.OrderNo.s != o.OrderNo && numberMayBe(got.OrderNo.s, o.OrderNo):
				// A number that may be ours written otherwise (a leading
				// zero dropped, another form): it cannot be ruled out.
				foreign++
			case got.OrderNo.s != o.OrderNo && strings.EqualFold(got.OrderNo.s, o.OrderNo):
				// Ours in another case: a server whose order numbers
				// are unique regardless of case (a case-insensitive
				// collation) holds this row under the number ours
				// would take. Neither ours nor surely another's.
				foreign++
			case got.OrderNo.s != o.OrderNo && paddedForm(got.OrderNo.s, o.OrderNo):
				// Ours as a server may store it (padded with spaces):
				// neither ours nor surely another's.
				foreign++
			case got.OrderNo.s != o.OrderNo && cutShort(got.OrderNo.s, o.OrderNo):
				// Ours cut to a column's length, or another order's
				// number that ours begins with on a listing that ignored
				// the filter: it stands against not found only (ours
				// listed whole is ours).
				cut++
			case got.OrderNo.s != o.OrderNo:
				// The filter was not applied: another order number.
				others++
			case got.differs(p):
				foreign++
			default:
				mine++
			}
		}
		read += len(list.Orders)
		if list.Total != nil {
			if total != nil && *list.Total != *total {
				moved = true
			}
			total = list.Total
		}
		if total != nil && read > *total {
			trustTotal = false
		}
		if len(list.Orders) == 0 {
			if total != nil && read < *total {
				// A listing that stops short of its Total was not
				// read in full, and proves no absence.
				msg := fmt.Sprintf("the list stopped after %d of %d orders", read, *total)
				if r, ok := foundInPart(mine, foreign, status, msg); ok {
					return r, nil
				}
				return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status, Message: msg}
			}
			if others > 0 && (total == nil || !trustTotal || read != *total || moved) {
				// The server ignored the OrderNo filter: this is a listing
				// of every order, paged in a way the document does not
				// define (an Offset read as a page number ends it early
				// with an empty page). Only a Total that counts what was
				// read shows it complete.
				msg := fmt.Sprintf("the list ignored the OrderNo filter (%d orders of other numbers among %d read), and no Total shows this empty page to be its end", others, read)
				if moved && total != nil && trustTotal && read == *total {
					// The rows read reach the last Total, but an earlier
					// page gave another: the pages came from listings of
					// different lengths (a copy behind another, orders made
					// meanwhile), and rows may have been skipped with none
					// read twice.
					msg = fmt.Sprintf("the list ignored the OrderNo filter (%d orders of other numbers among %d read), and its Total changed between pages (now %d): rows may have been skipped", others, read, *total)
				}
				if r, ok := foundInPart(mine, foreign, status, msg); ok {
					return r, nil
				}
				return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status, Message: msg}
			}
			if limit == len(listLimits) && (total == nil || !trustTotal) {
				// Every Limit was refused, and what a server lists to a
				// request without one is not documented: one whose
				// default page size is 0 answers an empty page
				// whatever it holds. Only a Total that counts the
				// listing shows this empty page to be its end.
				msg := fmt.Sprintf("an empty page without a Total that counts the list, after %d orders, to a request without Limit (every Limit refused), shows no end of the list", read)
				if r, ok := foundInPart(mine, foreign, status, msg); ok {
					return r, nil
				}
				return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status, Message: msg}
			}
			break
		}
		if total != nil && trustTotal && read >= *total && others == 0 {
			// A listing of this OrderNo alone, read as far as its Total.
			// One that ignored the filter ends only at an empty page its
			// Total confirms (above): what Total counts is not
			// documented, and one counting this page's rows, or those
			// left from Offset, would end it early, ours unread.
			break
		}
	}
	switch {
	case foreign > 0:
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: status,
			Message: fmt.Sprintf("%d order(s) listed under this OrderNo with other params, or under a form of it (padded, in another case, a number written otherwise), cannot be told from ours; a person decides", foreign)}
	case mine == 0 && cut > 0:
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: status,
			Message: fmt.Sprintf("%d order(s) listed under a number ours begins with (ours cut to a column's length?); a person decides", cut)}
	case mine > 1:
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: status,
			Message: fmt.Sprintf("%d orders carry this OrderNo; a person decides", mine)}
	case mine == 1:
		return providers.Result{Status: providers.StatusPaid, HTTPStatus: status, Code: "OK", Message: "found by ServiceGetOrderList"}, nil
	}
	return providers.Result{}, &providers.Error{Code: providers.NotFound, Op: op,
		HTTPStatus: status, Message: "no order with this OrderNo"}
}

// foundInPart is a lookup's answer when the list could not be read in full
// (why) but the part read holds our order, once, and nothing that could be
// mistaken for it: the order exists, which is what the lookup asks. What
// the unread part may hold is a second order with this number (one
// created twice), which only a person could sort out; the answer says so.
func foundInPart(mine, foreign, status int, why string) (providers.Result, bool) {
	if mine != 1 || foreign != 0 {
		return providers.Result{}, false
	}
	return providers.Result{Status: providers.StatusPaid, HTTPStatus: status, Code: "OK",
		Message: "found by ServiceGetOrderList; " + why + ", so a second order with this OrderNo is not ruled out"}, true
}

// list asks ServiceGetOrderList for one page, with Limit
// listLimits[*limit] while *limit is within listLimits. The largest Limit
// is not documented: a request carrying one that is refused as a bad
// parameter (InvalidParameterValue* or InvalidParameter*, whatever the
// message names) is
// sent again with the next smaller one, and the rest of the lookup keeps
// it (*limit moves on). Once every one is refused, the request is sent
// without Limit, and the rest of the lookup pages by the server's default
// page size, which is not documented either: Lookup then reads no empty
// page as the end of the list but by a Total.
//
// A Limit refused while a smaller one (or none) was then taken is this
// server's: later lookups of this Client start past it (limitFrom). A
// request refused at every size, none included, is refused for something
// else, and teaches nothing.
func (c *Client) list(ctx context.Context, q map[string]any, limit *int, customer string) (answer, error) {
	from := *limit
	learn := func(err error) {
		if err == nil && *limit > from {
			for cur := c.limitFrom.Load(); int(cur) < *limit && !c.limitFrom.CompareAndSwap(cur, int32(*limit)); cur = c.limitFrom.Load() {
			}
		}
	}
	for ; *limit < len(listLimits); *limit++ {
		q["Limit"] = listLimits[*limit]
		resp, err := c.call(ctx, "ServiceGetOrderList", q, false, customer)
		// InvalidParameter too (Tencent Cloud's common code, which a
		// server may give a Limit out of its range): a refusal of
		// anything else is refused again at every size, and is the
		// answer then.
		var e *providers.Error
		if !errors.As(err, &e) || !strings.HasPrefix(e.ProviderCode, "InvalidParameter") ||
			e.Code == providers.Unauthenticated || e.HTTPStatus >= 500 {
			learn(err)
			return resp, err
		}
	}
	delete(q, "Limit")
	resp, err := c.call(ctx, "ServiceGetOrderList", q, false, customer)
	learn(err)
	return resp, err
}

// orderList is ServiceGetOrderList's answer: Orders and Total, directly
// in the Response or under Data (the SDK's shape, see "Responses").
type orderList struct {
	Orders []listedOrder
	Total  *int
}

// parseOrderList reads an order list (keys matched without regard to
// case, as encoding/json does). A key whose value is null counts as
// absent. The document gives the answer as Orders and Total: one without
// an Orders array shows no list, so it proves no absence, and is an
// error, but on a listing's first page (first): there an answer that
// gives a Total of 0 counts the list (an empty list written as null or
// left out, as Go's encoder writes a nil slice or drops an omitempty one).
// One naming neither Orders nor Total (RequestId alone) shows no list: a
// degraded reply from a server that holds the order, taken for an empty
// list, would have it created again. On a later page, after orders were
// read, an answer without Orders proves nothing. Total is a
// count: a non-negative integer, as a JSON number or a quoted one ("1");
// anything else is malformed.
func parseOrderList(raw json.RawMessage, first bool) (orderList, error) {
	bad := errors.New("malformed order list")
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return orderList{}, bad
	}
	if _, ok := present(m, "Orders"); !ok {
		if data, ok := present(m, "Data"); ok {
			if json.Unmarshal(data, &m) != nil || m == nil {
				return orderList{}, bad
			}
		}
	}
	// A name given in two spellings, one of them set ("Orders": null
	// beside "orders": [...]), is no answer to read: which one the server
	// means is not documented, and reading the null one would prove an
	// absence.
	for _, name := range []string{"Orders", "Total"} {
		spellings, set := 0, false
		for k, v := range m {
			if strings.EqualFold(k, name) {
				spellings++
				set = set || string(bytes.TrimSpace(v)) != "null"
			}
		}
		if spellings > 1 && set {
			return orderList{}, fmt.Errorf("malformed order list: %s given in more than one spelling", name)
		}
	}
	var list orderList
	if t, ok := present(m, "Total"); ok {
		n, ok := count(t)
		if !ok {
			return orderList{}, errors.New("malformed order list: Total is not a count")
		}
		list.Total = &n
	}
	orders, ok := present(m, "Orders")
	if !ok {
		// A first page that says it holds none. One that names neither
		// Orders nor Total ({"RequestId": "…"} alone) is no answer to
		// read: taken for an empty list, a degraded reply from a server
		// that holds the order would have it created again.
		if first && list.Total != nil && *list.Total == 0 {
			return list, nil
		}
		return orderList{}, errors.New("answer lists no Orders")
	}
	if json.Unmarshal(orders, &list.Orders) != nil {
		return orderList{}, bad
	}
	return list, nil
}

// count reads a non-negative integer given as a JSON number or as a
// quoted one.
func count(raw json.RawMessage) (int, bool) {
	s := strings.TrimSpace(string(raw))
	if strings.HasPrefix(s, `"`) && json.Unmarshal(raw, &s) != nil {
		return 0, false
	}
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// present returns m's value for name (see key) unless it is missing or
// null.
func present(m map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	v, ok := key(m, name)
	if !ok || strings.TrimSpace(string(v)) == "null" {
		return nil, false
	}
	return v, true
}

// key returns m's value for name, its key matched without regard to case.
func key(m map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

type answer struct {
	status   int
	response json.RawMessage // the Response object, without Error
}

// call signs and sends one action and classifies the answer.
// customer is the order's CustomerId, redacted from the server's text.
func (c *Client) call(ctx context.Context, action string, params map[string]any, create bool, customer string) (answer, error) {
	op := "tencent " + action
	body, sig, err := c.body(action, params, c.newStamp())
	if err != nil {
		return answer{}, &providers.Error{Code: providers.InvalidArgument, Op: op, Message: "cannot encode request"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+Path, bytes.NewReader(body))
	if err != nil {
		return answer{}, &providers.Error{Code: providers.FailedPrecondition, Op: op, Message: "bad endpoint"}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := providers.Send(ctx, c.hc, req, op, create)
	if err != nil {
		return answer{}, err
	}
	// CustomerId is the vendor's user id, perhaps a login name: the
	// server's text echoing it is personal data. The request's signature,
	// echoed (a bad signature's message may), is hidden too: with the
	// signed request's other parts, it is a known answer to try guesses
	// of the secret against.
	return c.classify(op, create, resp, customer, sig)
}

// ParseResponse reads a service API answer in any accepted shape and
// returns the Response object and its error code and message, if any:
// {"Response": {…}} as documented; {code, msg, data} as the Node SDK
// parses; and, when neither Response nor code is there, a top-level
// object that carries a non-null Error, Orders, Total or Data (the
// Response without its wrapper, as the SDK's README shows one), which is
// then read as the Response itself. A body holding anything after its
// JSON value (but space) is no answer the document shows, and is an error.
func ParseResponse(body []byte) (response json.RawMessage, code, message string, err error) {
	response, code, message, _, err = parseResponse(body)
	return response, code, message, err
}

// shape is the shape an answer came in.
type shape int

const (
	// shapeBare: neither the Response wrapper nor the SDK's code and
	// data (a Response without its wrapper).
	shapeBare shape = iota
	// shapeData: the SDK's {code, msg, data}, whose data the document
	// says to read as the Response.
	shapeData
	// shapeWrapper: {"Response": {…}}, as the document shows.
	shapeWrapper
)

// parseResponse is ParseResponse, and reports the shape the answer came
// in. An error code is read for its documented meaning only in a shape
// the document gives for it (the Response wrapper, or the SDK's data,
// which the document says to read as the Response).
func parseResponse(body []byte) (response json.RawMessage, code, message string, sh shape, err error) {
	var top json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, "", "", shapeBare, err
	}
	var env struct {
		Response *json.RawMessage `json:"Response"`
		Code     *json.Number     `json:"code"`
		Msg      string           `json:"msg"`
		Data     *json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(top, &env); err != nil {
		return nil, "", "", shapeBare, err
	}
	var r json.RawMessage
	switch {
	case env.Response != nil:
		r, sh = *env.Response, shapeWrapper
	case env.Code != nil:
		if env.Code.String() != "0" {
			return nil, "InternalError", "code " + env.Code.String() + ": " + env.Msg, shapeBare, nil
		}
		if env.Data == nil {
			return nil, "", "", shapeBare, errors.New("no data")
		}
		r, sh = *env.Data, shapeData
	case bare(top):
		r = top
	default:
		return nil, "", "", shapeBare, errors.New("neither Response nor code")
	}
	var inner struct {
		Error *struct{ Code, Message string }
	}
	if err := json.Unmarshal(r, &inner); err != nil {
		return nil, "", "", shapeBare, err
	}
	if inner.Error != nil {
		if inner.Error.Code == "" {
			inner.Error.Code = "InternalError"
		}
		return r, inner.Error.Code, inner.Error.Message, sh, nil
	}
	return r, "", "", sh, nil
}

// bare reports whether an answer with neither Response nor code is a
// Response object without its wrapper: one carrying a non-null Error,
// Orders, Total or Data (keys matched without regard to case).
func bare(top json.RawMessage) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(top, &m) != nil {
		return false
	}
	for _, name := range []string{"Error", "Orders", "Total", "Data"} {
		if _, ok := present(m, name); ok {
			return true
		}
	}
	return false
}

// classify maps an answer (docs/providers/tencent.md, "Errors"). The
// document defines no HTTP status and no throttling, and lists five error
// codes, shown in the Response wrapper. A create is taken as refused only
// by a listed code in a shape the document shows, at a status below 500
// and not a 3xx; every other failed answer (a 5xx or a 3xx whatever its
// code, another status without such a code, another code, a code outside
// the wrapper, a body that cannot be read) may come after the order was
// created, and is Ambiguous: the order is looked up. A listing answered a
// 3xx is Unavailable whatever its body holds. A listing's failure is
// never NotFound.
// codeMayHold reports whether an error code may hold the CustomerId
// customer: judged on its sub-code alone when it begins with one of
// Tencent Cloud's common code families (InvalidParameterValue.X), whose
// words a short CustomerId ("para", "value") would match, withholding a
// code the client reads (the Limit fallback of a listing).
func codeMayHold(pcode, customer string) bool {
	head, sub, _ := strings.Cut(pcode, ".")
	switch head {
	case "InvalidParameter", "InvalidParameterValue", "MissingParameter", "UnknownParameter", "InvalidAction",
		"UnauthorizedOperation", "UnsupportedOperation", "OperationDenied", "InvalidFilter", "InternalError",
		"ResourceUnavailable", "ResourceNotFound", "ResourceInUse", "LimitExceeded", "RequestLimitExceeded",
		"FailedOperation", "AuthFailure", "ResourceInsufficient":
		return providers.MayHoldID(sub, customer)
	}
	return providers.MayHoldID(pcode, customer)
}

// withheldMessage replaces a server's message that may hold the order's
// CustomerId rewritten.
const withheldMessage = "(the provider's message is withheld: it may hold the order's CustomerId)"

func (c *Client) classify(op string, create bool, resp *providers.Response, customer, sig string) (answer, error) {
	fail := func(code providers.Code, pcode, msg string) error {
		// The code is the server's text as much as the message is.
		e := &providers.Error{Code: code, Op: op, HTTPStatus: resp.StatusCode,
			ProviderCode: providers.Truncate(providers.RedactCode(pcode, c.appSecret, c.appKey, customer, sig), 64),
			Message:      providers.Truncate(providers.Redact(msg, c.appSecret, c.appKey, customer, sig), 200)}
		// Redact hid the CustomerId (perhaps a login name) as the order
		// gives it; the server may echo it rewritten (spaced, cased,
		// punctuated otherwise): such a text is withheld whole.
		if providers.MayHoldIDPart(e.Message, customer) {
			e.Message = withheldMessage
		}
		if codeMayHold(e.ProviderCode, customer) {
			e.ProviderCode = "(withheld)"
		}
		return e
	}
	refusal := func(pcode, msg string, create bool) error {
		code, cause := codeFor(pcode, msg, create)
		e := fail(code, pcode, msg).(*providers.Error)
		if errors.Is(cause, providers.ErrSaysExists) {
			// Refused as a used number: the order may exist, whatever
			// the lookups find.
			e.Err = cause
		} else if cause != nil {
			providers.Held(e, cause)
		} else if !create && code == providers.Unavailable && refusedRead(pcode) {
			// A listing refused by a server that works (a permission
			// the key lacks, a parameter it takes otherwise): it proves
			// nothing of the order, and nothing of the provider's
			// health. Counted as failing, one order's refused lookups
			// would open the circuit breaker, and keep it open with
			// their trials, for every order's create.
			e.Err = providers.ErrNoNews
		}
		return e
	}
	r, pcode, msg, sh, perr := parseResponse(resp.Body)
	shown := sh != shapeBare
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if redirect(resp.StatusCode) {
		// A redirect is not followed (refuseRedirect), and says nothing
		// of what the server that sent it did with the request, whatever
		// its body holds: a create may have made the order (Ambiguous:
		// it is looked up), a listing proves nothing (Unavailable).
		code := providers.Unavailable
		if create {
			code = providers.Ambiguous
		}
		return answer{}, fail(code, "", fmt.Sprintf("HTTP %d %s not followed", resp.StatusCode, http.StatusText(resp.StatusCode)))
	}
	if create {
		switch {
		case resp.StatusCode == http.StatusTooManyRequests || shown && throttleCode(pcode) && resp.StatusCode < 500:
			// HTTP 429, or Tencent Cloud's common throttle code: no
			// throttle answer is documented for this API, nor that one
			// comes before the service acts, so the create may have made
			// the order (Ambiguous: looked up before it is sent again),
			// but the service answered: no news of its health (the
			// circuit breaker does not count it), no failure spent, and
			// the worker slows down (providers.ErrThrottled). A code of
			// the wrapper that means something of its own (the order
			// exists, a bad signature, the clock, a bad parameter) keeps
			// that meaning at 429: only an unsure one (InternalError, a
			// code the document does not list) is read as the status.
			if pcode != "" && shown && !throttleCode(pcode) {
				if e := refusal(pcode, msg, true).(*providers.Error); e.Code != providers.Ambiguous || e.Err != nil {
					return answer{}, e
				}
			}
			if msg == "" {
				msg = "throttled"
			}
			e := fail(providers.Ambiguous, pcode, msg+": the order may exist").(*providers.Error)
			e.Err = providers.ErrThrottled
			e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"))
			return answer{}, e
		case perr != nil:
			if !ok {
				return answer{}, fail(providers.Ambiguous, "", http.StatusText(resp.StatusCode))
			}
			return answer{}, fail(providers.Ambiguous, "", "unreadable response")
		case resp.StatusCode >= 500:
			// A server error may come from a server that failed after
			// creating the order, whatever code it puts on the answer.
			if msg == "" {
				msg = http.StatusText(resp.StatusCode)
			}
			return answer{}, fail(providers.Ambiguous, pcode, msg)
		case pcode != "" && shown:
			return answer{}, refusal(pcode, msg, true)
		case pcode != "":
			// A code outside the wrapper (a bare Error, the SDK's
			// non-zero code): not a refusal the document shows.
			return answer{}, fail(providers.Ambiguous, pcode, msg)
		case !ok:
			return answer{}, fail(providers.Ambiguous, "", http.StatusText(resp.StatusCode))
		}
		var created struct{ Status string }
		if json.Unmarshal(r, &created) != nil || created.Status != "OK" {
			return answer{}, fail(providers.Ambiguous, "", "no Status OK in the answer")
		}
		return answer{status: resp.StatusCode, response: r}, nil
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || shown && throttleCode(pcode) && resp.StatusCode < 500:
		e := fail(providers.RateLimited, pcode, msg).(*providers.Error)
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"))
		return answer{}, e
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusRequestTimeout:
		// A server error, or a server that gave up reading the
		// request: the listing may answer later.
		return answer{}, fail(providers.Unavailable, pcode, msg)
	case perr != nil:
		if resp.StatusCode >= 400 {
			return answer{}, fail(statusCode(resp.StatusCode), "", http.StatusText(resp.StatusCode))
		}
		return answer{}, fail(providers.Unavailable, "", "unreadable response")
	case pcode != "":
		return answer{}, refusal(pcode, msg, false)
	case resp.StatusCode >= 400:
		return answer{}, fail(statusCode(resp.StatusCode), "", http.StatusText(resp.StatusCode))
	case !ok:
		// A status the listing is not given at (below 200): whatever its
		// body holds proves nothing.
		return answer{}, fail(providers.Unavailable, "", http.StatusText(resp.StatusCode))
	}
	return answer{status: resp.StatusCode, response: r}, nil
}

// redirect reports whether status is a 3xx.
func redirect(status int) bool { return status >= 300 && status < 400 }

// statusCode maps a 4xx answered to a listing without an error code (an
// unreadable body, or a Response without Error): 401 and 403 are a
// credentials or access problem (the order waits for the configuration to
// be fixed); 409 Conflict, like any status the document does not define,
// tells nothing; any other 4xx refuses the request. None of them is
// NotFound: a lookup concludes absence only from an order list.
func statusCode(status int) providers.Code {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return providers.Unauthenticated
	case http.StatusConflict:
		return providers.Unavailable
	}
	return providers.InvalidArgument
}

// codeFor maps an error code given in a shape the document shows
// (docs/providers/tencent.md, "Errors"). The document lists InternalError,
// ErrorRequiredParamNotFound, InvalidAction, InvalidParameterValue and
// InvalidParameterValue.InvalidJSON, and shows a bad signature as
// InvalidParameterValue "Signature 无效" (read so in other words too, and
// for any refusal naming the AppKey); InvalidParameterValue.* sub-codes
// are taken for
// that class. Any other code (Tencent Cloud's common ones
// such as RequestLimitExceeded, LimitExceeded, AuthFailure*,
// UnauthorizedOperation* or InvalidParameter* included) is not documented
// for this API, so it says nothing of what a create did: Ambiguous for a
// create, Unavailable for a listing, but for AuthFailure*, which a listing
// reads as Unauthenticated, as it reads a 401 without a code.
func codeFor(pcode, msg string, create bool) (providers.Code, error) {
	unsure := providers.Unavailable
	if create {
		unsure = providers.Ambiguous
	}
	value := pcode == "InvalidParameterValue" || strings.HasPrefix(pcode, "InvalidParameterValue.")
	// A refusal that echoes the signed string names every signed
	// parameter (Nonce, Timestamp, AppKey) whatever it refuses: its words
	// are read without it, or a bad signature would read as a replay and
	// the credentials' fault would never reach /readyz.
	msg = signedEchoRE.ReplaceAllString(msg, "…")
	lmsg, lcode := strings.ToLower(msg), strings.ToLower(pcode)
	stamp := strings.Contains(lmsg, "timestamp") || strings.Contains(lcode, "timestamp") || strings.Contains(msg, "时间戳")
	switch {
	case value && (strings.Contains(lmsg, "nonce") || strings.Contains(lcode, "nonce") ||
		!stamp && (strings.Contains(lmsg, "replay") || strings.Contains(lcode, "replay") || strings.Contains(msg, "重放"))):
		// Every attempt draws a fresh Nonce: one refused as already
		// used, or the request refused as a replay (its words are not
		// documented: 请求重放, "replay attack detected"), means this
		// request reached the service before (a replay on the way), and
		// that copy may have created the order.
		return unsure, nil
	case create && value && mayExist(pcode, msg):
		// Whether a used OrderNo is refused is not documented: a refusal
		// saying the order exists, is used or repeats may mean the order
		// exists already, so it is looked up, never taken as permanent,
		// whatever else it names ("OrderNo already exists for this
		// AppKey", "请求重复: Timestamp 已使用"). (After a create that may
		// have reached the provider, the order state machine reads every
		// refusal it would otherwise take as final so.) One that names
		// the order or the request, or nothing else, says the number is
		// used: the order may exist whatever the lookups find
		// (providers.ErrSaysExists).
		if namesTheOrder(pcode, msg) {
			return providers.Ambiguous, providers.ErrSaysExists
		}
		return providers.Ambiguous, nil
	case value && stamp && mayExist(pcode, msg):
		// A timestamp refused as used or repeated ("请求重复: Timestamp
		// 已使用") is a replay, not the clock: on a listing (a create is
		// looked up, above) it refuses nothing of the configuration.
		return unsure, nil
	case value && stamp:
		// Clock skew: nothing was created. Every attempt re-signs with
		// a fresh Timestamp, so a refusal that lasts is this worker's
		// clock, which no order can fix: the order waits for it
		// (providers.ErrClock) rather than spending its failure budget
		// and being errored while the clock is off. Before the AppKey:
		// "Timestamp expired for AppKey …" is a clock refusal.
		return providers.Unauthenticated, providers.ErrClock
	case create && value && refusesOwnParam(pcode, msg):
		// A refusal of one of the order's own params that names the
		// AppKey only where it echoes the request ("ItemId D-X 非法
		// (CustomerId=…, AppKey=…)"): the order's, errored below, not
		// the credentials' (a black-box run: ten such orders held every
		// Tencent order of the worker for minutes, their probes refused
		// for their params, and were never errored).
		return providers.InvalidArgument, nil
	case value && (strings.Contains(lmsg, "signature") || strings.Contains(lcode, "signature") ||
		strings.Contains(msg, "签名") || namesAppKey(pcode, msg)):
		// The documented bad signature ("Signature 无效"), in whatever
		// words or sub-code, or a refusal naming the AppKey (invalid,
		// unknown, disabled, out of licences, in any words): the
		// credentials or the account are the operator's to fix, which no
		// order can; the order waits for them. A refusal of this kind
		// comes before the service acted (those saying the order exists
		// or the nonce was used are read above), so the create sent again
		// once the configuration is fixed risks no second order. The
		// cost: a refusal of the order's own params that also names the
		// AppKey other than in an echo of the request ("ItemId invalid
		// for AppKey …", "ItemId=D-X 非法 (AppKey=…)": which of the two
		// it refuses cannot be told) waits, until its deadline, instead
		// of being errored at once (refusesOwnParam).
		return providers.Unauthenticated, nil
	case !create && (pcode == "AuthFailure" || strings.HasPrefix(pcode, "AuthFailure.")):
		// A listing creates nothing whatever the refusal means: a
		// credentials problem holds the order for the configuration
		// rather than until its deadline.
		return providers.Unauthenticated, nil
	case pcode == "ErrorRequiredParamNotFound", pcode == "InvalidAction", value:
		return providers.InvalidArgument, nil
	}
	// InternalError (documented: the order may exist), and every code the
	// document does not list.
	return unsure, nil
}

// throttleCode reports whether pcode is Tencent Cloud's common throttle
// code, RequestLimitExceeded, or one of its sub-codes (per account, per IP,
// …). Not LimitExceeded, which may be a quota. None is documented for this
// API: a create answered so is still looked up (see classify).
func throttleCode(pcode string) bool {
	return pcode == "RequestLimitExceeded" || strings.HasPrefix(pcode, "RequestLimitExceeded.")
}

// refusedRead reports whether a listing's error code is one of Tencent
// Cloud's common codes for a request refused as it stands (its parameters,
// an operation the key may not call), which a working server gives; not a
// failure (InternalError, ResourceUnavailable), a limit (LimitExceeded,
// RequestLimitExceeded) or a code outside those families.
func refusedRead(pcode string) bool {
	for _, p := range []string{"InvalidParameter", "MissingParameter", "UnknownParameter", "InvalidAction",
		"UnauthorizedOperation", "UnsupportedOperation", "OperationDenied", "InvalidFilter"} {
		if pcode == p || strings.HasPrefix(pcode, p+".") || p == "InvalidParameter" && strings.HasPrefix(pcode, "InvalidParameterValue") {
			return true
		}
	}
	return false
}

// refusesOwnParam reports whether an InvalidParameterValue* refusal of a
// create refuses one of the order's own params (CustomerId, OrderNo,
// ItemId, ItemVNO, ItemNum) and names the credentials only in an echo of
// the request: its sub-code, if any, names one of those params, and its
// message, with the request's echoed "Name=value" pairs of the signed
// parameters taken out (echoPairRE), names one of them and nothing of the
// credentials, the account or the request's signing (credentialWords).
// A param named only in such a pair says nothing either way ("AppKey 无效
// (ItemId=…)"), nor does one beside a credential in the message's own
// words ("ItemId invalid for AppKey …", "AppKey: … 已停用 (ItemId …)"):
// the credentials' as before.
func refusesOwnParam(pcode, msg string) bool {
	if sub, ok := strings.CutPrefix(pcode, "InvalidParameterValue."); ok && !ownParam(strings.ToLower(sub)) {
		return false
	}
	rest := strings.ToLower(echoPairRE.ReplaceAllString(msg, " "))
	for _, w := range credentialWords {
		if strings.Contains(rest, w) {
			return false
		}
	}
	for _, w := range paramWordRE.FindAllString(rest, -1) {
		if ownParam(w) {
			return true
		}
	}
	return false
}

// ownParam reports whether w, lower case, is one of the order's params.
func ownParam(w string) bool {
	switch w {
	case "customerid", "orderno", "itemid", "itemvno", "itemnum":
		return true
	}
	return false
}

var (
	// echoPairRE matches a signed parameter echoed as "Name=value", as a
	// refusal that quotes the request writes it: only "=" (a "Name:"
	// may be a label of the message's own, "AppKey: 授权数不足"), only
	// with a value.
	echoPairRE = regexp.MustCompile(`(?i)\b(?:AppKey|CustomerId|OrderNo|ItemId|ItemVNO|ItemNum|Action|RequestId|Nonce|Timestamp|Signature)\s*[=＝]\s*[^\s,;，；、()（）\[\]{}=＝]+`)
	// paramWordRE matches a word of letters and digits.
	paramWordRE = regexp.MustCompile(`[a-z][a-z0-9]*`)
	// credentialWords, in lower case, mark a message as one that may be
	// about the credentials, the account or the request's signing rather
	// than the order's params, wherever they stand.
	credentialWords = []string{"appkey", "app key", "signature", "签名", "timestamp", "时间戳", "nonce", "secret", "密钥",
		"auth", "授权", "鉴权", "权限", "licen", "permission", "account", "账号", "账户", "forbidden", "denied", "禁止",
		"disabled", "停用", "禁用", "expired", "过期", "校验", "verif", "quota", "配额", "arrear", "欠费", "余额"}
)

// namesAppKey reports whether an InvalidParameterValue* refusal names
// the AppKey, in its message or sub-code (the code's own
// InvalidParameterValue aside: it says nothing of the AppKey).
func namesAppKey(pcode, msg string) bool {
	for _, text := range []string{pcode, msg} {
		if strings.Contains(strings.ReplaceAll(strings.ToLower(text), "invalidparametervalue", ""), "appkey") {
			return true
		}
	}
	return false
}

// existWords, matched without regard to case, mark a refusal of a create
// that may mean the order exists already: one saying something exists
// already, repeats or is used (English or Chinese).
var existWords = []string{"exist", "duplicat", "repeat", "already", "used", "in use", "conflict",
	"已存在", "重复", "已使用", "已被使用", "占用", "冲突", "已创建"}

// orderWords name the order or the request in a refusal (namesTheOrder).
var orderWords = []string{"order", "订单", "request", "请求"}

// namesTheOrder reports whether a refusal that mayExist reads as "exists"
// says so of the order number: it names the order or the request
// ("OrderNo 已存在", "Duplicate request", "请求重复: Timestamp 已使用",
// InvalidParameterValue.OrderExists), or nothing but the refusal itself
// ("已存在"). One naming something else ("ItemId already offline",
// "签名已使用") is looked up all the same, but says nothing of the number.
func namesTheOrder(pcode, msg string) bool {
	t := strings.ToLower(pcode + " " + msg)
	for _, w := range orderWords {
		if strings.Contains(t, w) {
			return true
		}
	}
	rest := strings.ToLower(msg)
	for _, w := range existWords {
		rest = strings.ReplaceAll(rest, w, "")
	}
	return strings.IndexFunc(rest, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) < 0
}

// absentWords say that something does not exist ("CustomerId does not
// exist"): a refusal of what the request names, not a sign of our order.
var absentWords = []string{"not exist", "n't exist", "nonexist", "non-exist", "no such", "不存在"}

// minCut is the shortest listed order number taken for ours cut to a
// column's length (cutShort): a shorter prefix of ours is more likely
// another order's number (Order1 beside our Order10) on a listing that
// ignored the filter.
const minCut = 16

// paddedForm reports whether a listed order number may be ours as a
// server stored it, which nothing documents: padded or trimmed with spaces
// (a fixed-width column), or so and in another case. Read as another
// order's, ours would be created again on a server that takes a used
// number.
func paddedForm(listed, ours string) bool {
	return strings.EqualFold(strings.TrimSpace(listed), strings.TrimSpace(ours))
}

// cutShort reports whether a listed order number may be ours cut short
// by a column shorter than ours: a prefix of ours (case and surrounding
// space aside) at least minCut long.
func cutShort(listed, ours string) bool {
	l, o := strings.ToLower(strings.TrimSpace(listed)), strings.ToLower(strings.TrimSpace(ours))
	return len(l) >= minCut && len(l) < len(o) && strings.HasPrefix(o, l)
}

// mayExist reports whether an InvalidParameterValue* refusal of a create may
// mean the order exists already: its message or sub-code carries one of
// existWords (InvalidParameterValue.OrderExists), and neither says that
// something does not exist. A refusal that only names the order number
// ("OrderNo 长度超限", "invalid OrderNo") refuses its value: looked up, it
// would be refused again by the listing, and the order would wait in
// unknown until its deadline.
func mayExist(pcode, msg string) bool {
	m, c := strings.ToLower(msg), strings.ToLower(pcode)
	for _, w := range absentWords {
		if strings.Contains(m, w) || strings.Contains(c, w) {
			return false
		}
	}
	for _, w := range existWords {
		if strings.Contains(m, w) || strings.Contains(c, w) {
			return true
		}
	}
	return false
}

func retryAfter(h string) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// Target implements providers.Targeter: the endpoint and the account's key.
func (c *Client) Target() string {
	return strings.TrimRight(c.endpoint, "/") + " " + c.appKey
}
