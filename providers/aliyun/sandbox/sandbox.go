// Package sandbox is a fake of the Alibaba Cloud IoT Living Platform's
// cloud API, behind its API gateway, for tests and the worker's -dev mode.
//
// As the gateway, it checks each request's digest signature exactly as
// the gateway does: it recomputes the string to sign from the received
// headers listed in X-Ca-Signature-Headers (names as listed), checks
// Content-MD5 against the body, the X-Ca-Timestamp window (15 minutes) and
// X-Ca-Nonce reuse (15 minutes), and answers failures the gateway's way: a
// 4xx with the reason in X-Ca-Error-Message and no body ("Invalid AppKey",
// "Invalid Signature, Server StringToSign:…" with newlines removed, …).
//
// As the platform, it serves /cloud/token (a new token for a project
// invalidates the previous one; an expired or unknown cloudToken is
// answered code 401 in the body) and the streaming-order APIs create, pay,
// get and query, keeping orders per iotId. A new order is unpaid
// (paymentStatus 0); pay moves it to paying (2) and the next get shows it
// paid (1). Answers carry the documented fields only: no creation time,
// unless SetListCreateTime turns on gmtCreate (epoch ms), a field no
// public document shows (see docs/providers/aliyun.md).
//
// Like the real API, create takes no client order number and does not
// deduplicate: submitting an order twice makes two orders, which is what
// tests count to prove the worker never does that.
package sandbox

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/replay"
)

// Window is how far X-Ca-Timestamp may be from the sandbox's clock, and
// how long a nonce may not be reused.
const Window = 15 * time.Minute

// Order is an order the sandbox holds.
type Order struct {
	IotID         string
	OrderID       string
	OutOrderNo    string
	CommodityCode string
	Copies        int64
	UserName      string
	UserID        string
	ImmediateUse  bool
	// Status: 0 valid, 1 expired, 2 frozen.
	Status int
	// PaymentStatus: 0 unpaid, 1 paid, 2 paying.
	PaymentStatus int
	Created       time.Time
}

// Reply is a canned answer (see Inject): a gateway failure when
// GatewayMessage is set (sent in X-Ca-Error-Message, with no body), a
// platform answer with Code, Message and Data in the body when Code is
// set, and otherwise a bare HTTPStatus with no body at all.
type Reply struct {
	// HTTPStatus defaults to 200 for a platform answer and 400 for a
	// gateway one.
	HTTPStatus     int
	GatewayMessage string
	Code           int
	Message        string
	// Data is the body's data member of a platform answer.
	Data any
	// Header is added to the response (Retry-After, X-Ca-Error-Code, …).
	Header http.Header
}

// Server is the fake gateway and platform. Mount it with
// httptest.NewServer; it routes by path.
type Server struct {
	// Unlisted, when set, makes order/query leave out the orders it
	// returns true for (a listing that is not whole: one that lists only
	// paid orders, say, which no document rules out). Set it before use.
	Unlisted func(Order) bool

	faults fault.Injector

	mu        sync.Mutex
	tokenTTL  time.Duration
	withTime  bool
	maxPage   int64
	paging    Paging
	shuffles  int // pages shuffled so far (Paging.Shuffle)
	appKey    string
	appSecret string
	projectID string
	tokens    map[string]time.Time // live cloudToken -> expiry
	current   string               // the project's current token
	issued    int
	history   []string            // every token issued
	orders    map[string][]*Order // by iotId
	nonces    replay.Guard
	calls     map[string]int
	injected  map[string][]Reply
	seq       int
	throttles int
	failures  int
}

// New returns a sandbox that accepts one AppKey/AppSecret pair, whose
// cloudTokens are issued for projectID.
func New(appKey, appSecret, projectID string) *Server {
	return &Server{
		appKey:    appKey,
		appSecret: appSecret,
		projectID: projectID,
		tokens:    map[string]time.Time{},
		orders:    map[string][]*Order{},
		calls:     map[string]int{},
		injected:  map[string][]Reply{},
	}
}

// Faults returns the fault injector for the order APIs (create, pay, get,
// query; not /cloud/token).
func (s *Server) Faults() *fault.Injector { return &s.faults }

// Count returns how many orders the sandbox holds for a device.
func (s *Server) Count(iotID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.orders[iotID])
}

// Orders returns a copy of every order, by iotId, oldest first.
func (s *Server) Orders() map[string][]Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]Order, len(s.orders))
	for k, list := range s.orders {
		for _, o := range list {
			out[k] = append(out[k], *o)
		}
	}
	return out
}

// Calls returns how many requests reached path (before any check).
func (s *Server) Calls(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

// TokensIssued returns how many cloudTokens /cloud/token has issued.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// SetTokenTTL sets the lifetime of the cloudTokens issued from now on
// (default 7200000 ms, the documented one).
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenTTL = d
}

// SetListCreateTime makes every order in an answer (create, pay, get and
// query) carry gmtCreate, the creation time in epoch ms, which no public
// document shows. Off by default: the documented shape has none.
func (s *Server) SetListCreateTime(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.withTime = on
}

// SetMaxPageSize caps how many orders a query page holds, whatever
// pageSize asks for (default 100).
func (s *Server) SetMaxPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxPage = int64(n)
}

// Paging is how order/query numbers its pages, what it serves past the
// end and whether it lists a total; none of it is documented.
type Paging struct {
	// From0: pageNo counts from 0 (by default from 1, and a pageNo below 1
	// is a parameter error).
	From0 bool
	// NoTotal: answers carry no total.
	NoTotal bool
	// TotalPages: the total counts pages, not orders (what it counts is
	// not documented).
	TotalPages bool
	// Zero400: pageNo 0 (counting from 1) is refused with a generic 400
	// ("request error") instead of the parameter error 460.
	Zero400 bool
	// Alias0: pageNo 0 is served as page 1 (when counting from 1).
	Alias0 bool
	// Empty0: pageNo 0 is served as an empty page, with the total (when
	// counting from 1).
	Empty0 bool
	// RepeatLast: a pageNo past the last page serves the last page again
	// (a device without orders still gets an empty page).
	RepeatLast bool
	// Shuffle: each page's orders come in another order from one call to
	// the next (the order of a page's entries is not documented; the
	// listing is still newest first from page to page).
	Shuffle bool
}

// SetPaging changes how order/query pages (default: from 1, with a total).
func (s *Server) SetPaging(p Paging) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paging = p
}

// IssuedTokens returns every cloudToken issued so far, for tests that
// check none leaks.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.history)
}

// RevokeTokens invalidates every issued cloudToken, as when someone else
// asks /cloud/token for the project.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
	s.current = ""
}

// Inject queues canned replies for the next calls to path. They are given
// after the gateway's checks pass and before the platform acts (nothing
// is created).
func (s *Server) Inject(path string, replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.injected[path] = append(s.injected[path], replies...)
}

// AddOrder stores o as if it had been created, filling OrderID,
// OutOrderNo and Created when empty, and returns it.
func (s *Server) AddOrder(o Order) Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.Created.IsZero() {
		o.Created = time.Now()
	}
	s.fillIDs(&o)
	p := o
	s.orders[o.IotID] = append(s.orders[o.IotID], &p)
	return o
}

func (s *Server) fillIDs(o *Order) {
	s.seq++
	if o.OrderID == "" {
		o.OrderID = o.Created.In(time.FixedZone("UTC+8", 8*3600)).Format("20060102150405") + fmt.Sprintf("%06d", s.seq)
	}
	if o.OutOrderNo == "" {
		o.OutOrderNo = fmt.Sprintf("2073695%08d", s.seq)
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls[r.URL.Path]++
	s.mu.Unlock()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		gateway(w, Reply{HTTPStatus: http.StatusRequestEntityTooLarge, GatewayMessage: "Body Too Large"})
		return
	}
	if r.Method != http.MethodPost {
		gateway(w, Reply{HTTPStatus: http.StatusMethodNotAllowed, GatewayMessage: "Invalid Method"})
		return
	}
	handle, ok := map[string]func(*http.Request, envelope) reply{
		aliyun.PathToken:  s.token,
		aliyun.PathCreate: s.create,
		aliyun.PathPay:    s.pay,
		aliyun.PathGet:    s.get,
		aliyun.PathQuery:  s.query,
	}[r.URL.Path]
	if !ok {
		gateway(w, Reply{HTTPStatus: http.StatusNotFound, GatewayMessage: "Invalid Url"})
		return
	}
	if rep, ok := s.verify(r, body); !ok {
		gateway(w, rep)
		return
	}
	s.mu.Lock()
	if q := s.injected[r.URL.Path]; len(q) > 0 {
		s.injected[r.URL.Path] = q[1:]
		s.mu.Unlock()
		write(w, reply{canned: &q[0]})
		return
	}
	s.mu.Unlock()

	var env envelope
	if err := strictDecode(body, &env); err != nil || env.Version == "" || env.Request.APIVer == "" || env.Params == nil {
		write(w, fail(400, "request error", "请求错误"))
		return
	}
	if r.URL.Path != aliyun.PathToken && !s.tokenValid(env.Request.CloudToken) {
		write(w, fail(401, "request auth error", "请求鉴权错误"))
		return
	}
	write(w, handle(r, env))
}

type envelope struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	Request struct {
		APIVer     string `json:"apiVer"`
		CloudToken string `json:"cloudToken"`
		IoTToken   string `json:"iotToken"`
		Language   string `json:"language"`
	} `json:"request"`
	Params json.RawMessage `json:"params"`
}

// reply is a platform answer (or a canned one, or none at all when the
// handler hung).
type reply struct {
	status  int
	code    int
	message string
	local   string
	data    any
	canned  *Reply
	hung    bool
	gateway *Reply
}

func ok(data any) reply { return reply{status: 200, code: 200, data: data} }

func fail(code int, message, local string) reply {
	return reply{status: 200, code: code, message: message, local: local}
}

func gateway(w http.ResponseWriter, r Reply) {
	if r.HTTPStatus == 0 {
		r.HTTPStatus = http.StatusBadRequest
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set(aliyun.HeaderErrorMessage, r.GatewayMessage)
	w.Header().Set(aliyun.HeaderRequestID, uuid.NewString())
	w.WriteHeader(r.HTTPStatus)
}

func write(w http.ResponseWriter, rep reply) {
	switch {
	case rep.hung:
		return
	case rep.gateway != nil:
		gateway(w, *rep.gateway)
		return
	case rep.canned != nil:
		c := rep.canned
		if c.GatewayMessage != "" {
			gateway(w, *c)
			return
		}
		for k, vs := range c.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		rep = reply{status: c.HTTPStatus, code: c.Code, message: c.Message, data: c.Data}
		if rep.status == 0 {
			rep.status = 200
		}
		if c.Code == 0 {
			w.WriteHeader(rep.status)
			return
		}
	}
	body := map[string]any{"id": uuid.NewString(), "code": rep.code, "message": nil, "localizedMsg": nil, "data": rep.data}
	if rep.message != "" {
		body["message"] = rep.message
	}
	if rep.local != "" {
		body["localizedMsg"] = rep.local
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set(aliyun.HeaderRequestID, uuid.NewString())
	w.WriteHeader(rep.status)
	_ = json.NewEncoder(w).Encode(body)
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

// verify checks the request the way the API gateway does.
func (s *Server) verify(r *http.Request, body []byte) (Reply, bool) {
	h := r.Header
	bad := func(status int, msg string) (Reply, bool) {
		return Reply{HTTPStatus: status, GatewayMessage: msg}, false
	}
	key := h.Get(aliyun.HeaderKey)
	if key == "" {
		return bad(400, "Empty AppKey")
	}
	if key != s.appKey {
		return bad(400, "Invalid AppKey")
	}
	sig := h.Get(aliyun.HeaderSignature)
	if sig == "" {
		return bad(401, "Empty Signature")
	}
	method := h.Get(aliyun.HeaderSignatureMethod)
	if method == "" {
		method = "HmacSHA256"
	}
	if method != "HmacSHA256" && method != "HmacSHA1" {
		return bad(400, "Invalid Signature Method")
	}
	md5 := h.Get("Content-MD5")
	if md5 != "" && md5 != aliyun.ContentMD5(body) {
		return bad(400, "Invalid Content-MD5")
	}
	var signed []aliyun.Header
	for _, name := range strings.Split(h.Get(aliyun.HeaderSignatureHeaders), ",") {
		if name = strings.TrimSpace(name); name != "" {
			signed = append(signed, aliyun.Header{Name: name, Value: h.Get(name)})
		}
	}
	query := map[string]string{}
	for k, vs := range r.URL.Query() {
		query[k] = vs[0]
	}
	if strings.HasPrefix(strings.ToLower(h.Get("Content-Type")), "application/x-www-form-urlencoded") {
		form, _ := url.ParseQuery(string(body))
		for k, vs := range form {
			query[k] = vs[0]
		}
	}
	sts := aliyun.StringToSign(aliyun.Canonical{
		Method: r.Method, Accept: h.Get("Accept"), ContentMD5: md5, ContentType: h.Get("Content-Type"),
		Date: h.Get("Date"), Headers: signed, Path: r.URL.Path, Query: query,
	})
	if !hmac.Equal([]byte(sign(method, sts, s.appSecret)), []byte(sig)) {
		return bad(400, "Invalid Signature, Server StringToSign:"+strings.ReplaceAll(sts, "\n", ""))
	}
	now := time.Now()
	if ts := h.Get(aliyun.HeaderTimestamp); ts != "" {
		ms, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return bad(400, "Invalid Timestamp")
		}
		if now.Sub(time.UnixMilli(ms)).Abs() > Window {
			return bad(400, "Timestamp Expired")
		}
	}
	if nonce := h.Get(aliyun.HeaderNonce); nonce != "" {
		if s.nonces.Seen(key+"/"+nonce, now, Window) {
			return bad(400, "Nonce Used")
		}
	}
	return Reply{}, true
}

func sign(method, sts, secret string) string {
	if method == "HmacSHA1" {
		m := hmac.New(sha1.New, []byte(secret))
		m.Write([]byte(sts))
		return base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	return aliyun.Signature(sts, secret)
}

func (s *Server) tokenValid(tok string) bool {
	if tok == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tok]
	return ok && time.Now().Before(exp)
}

func (s *Server) token(_ *http.Request, env envelope) reply {
	var p struct {
		GrantType string `json:"grantType"`
		Res       string `json:"res"`
	}
	if strictDecode(env.Params, &p) != nil || p.GrantType != "project" || p.Res == "" {
		return fail(460, "request parameter error", "请求参数错误")
	}
	if p.Res != s.projectID {
		return fail(403, "request forbidden.", "请求被禁止")
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	s.mu.Lock()
	ttl := s.tokenTTL
	if ttl <= 0 {
		ttl = aliyun.DefaultTokenTTL
	}
	delete(s.tokens, s.current) // a new token invalidates the previous one
	s.current = tok
	s.tokens[tok] = time.Now().Add(ttl)
	s.history = append(s.history, tok)
	s.issued++
	n := s.issued
	s.mu.Unlock()
	// The documents spell the lifetime both ways; give each in turn.
	field := "expireIn"
	if n%2 == 0 {
		field = "expiresIn"
	}
	return ok(map[string]any{"cloudToken": tok, field: ttl.Milliseconds()})
}

type createParams struct {
	IotID         string      `json:"iotId"`
	CommodityCode string      `json:"commodityCode"`
	Copies        json.Number `json:"copies"`
	UserName      *string     `json:"userName"`
	UserID        *string     `json:"userId"`
	ImmediateUse  *bool       `json:"immediateUse"`
}

var paramError = fail(460, "request parameter error", "请求参数错误")

func (s *Server) create(r *http.Request, env envelope) reply {
	var p createParams
	if strictDecode(env.Params, &p) != nil || p.IotID == "" || p.CommodityCode == "" {
		return paramError
	}
	copies, err := p.Copies.Int64()
	if err != nil || copies < 1 || copies > 60 {
		return paramError
	}
	o := Order{IotID: p.IotID, CommodityCode: p.CommodityCode, Copies: copies, Created: time.Now()}
	if p.UserName != nil {
		o.UserName = *p.UserName
	}
	if p.UserID != nil {
		o.UserID = *p.UserID
	}
	if p.ImmediateUse != nil {
		o.ImmediateUse = *p.ImmediateUse
	}

	f := s.faults.Next(true)
	switch f {
	case fault.Throttle:
		return s.throttle()
	case fault.FailBefore:
		return reply{gateway: &Reply{HTTPStatus: http.StatusServiceUnavailable, GatewayMessage: "Service Unavailable"}}
	}
	s.mu.Lock()
	s.fillIDs(&o)
	stored := o
	s.orders[o.IotID] = append(s.orders[o.IotID], &stored)
	s.failures += btoi(f == fault.FailAfter)
	n := s.failures
	s.mu.Unlock()
	switch f {
	case fault.FailAfter:
		// Alternate the two ways a create fails after acting: the
		// platform's 500 and the gateway's backend timeout.
		if n%2 == 1 {
			return reply{status: http.StatusInternalServerError, code: 500, message: "service error", local: "服务端错误"}
		}
		return reply{gateway: &Reply{HTTPStatus: http.StatusGatewayTimeout, GatewayMessage: "Async Service"}}
	case fault.HangAfter:
		s.faults.Hang(r.Context())
		return reply{hung: true}
	}
	return ok(orderData(o, s.listTime()))
}

// throttle alternates the gateway's flow control and the platform's 429.
func (s *Server) throttle() reply {
	s.mu.Lock()
	s.throttles++
	n := s.throttles
	s.mu.Unlock()
	if n%2 == 1 {
		return reply{gateway: &Reply{HTTPStatus: http.StatusForbidden, GatewayMessage: "Throttled by APP Flow Control"}}
	}
	return fail(429, "too many requests", "请求过于频繁")
}

// lookupFault draws a fault for a call that creates nothing.
func (s *Server) lookupFault() (reply, bool) {
	switch s.faults.Next(false) {
	case fault.Throttle:
		return s.throttle(), true
	case fault.FailBefore:
		return reply{gateway: &Reply{HTTPStatus: http.StatusServiceUnavailable, GatewayMessage: "Service Unavailable"}}, true
	}
	return reply{}, false
}

type orderRef struct {
	IotID   string `json:"iotId"`
	OrderID string `json:"orderId"`
}

// find returns the stored order (caller holds s.mu).
func (s *Server) find(ref orderRef) *Order {
	for _, o := range s.orders[ref.IotID] {
		if o.OrderID == ref.OrderID {
			return o
		}
	}
	return nil
}

func (s *Server) pay(_ *http.Request, env envelope) reply {
	return s.withOrder(env, func(o *Order) {
		if o.PaymentStatus == 0 {
			o.PaymentStatus = 2
		}
	})
}

func (s *Server) get(_ *http.Request, env envelope) reply {
	return s.withOrder(env, func(o *Order) {
		if o.PaymentStatus == 2 {
			o.PaymentStatus = 1 // payment completes by the next look
		}
	})
}

// withOrder answers a call on one order ({iotId, orderId}): it checks the
// params, injects lookup faults, applies change to the order under the lock
// and answers with the order.
func (s *Server) withOrder(env envelope, change func(*Order)) reply {
	var ref orderRef
	if strictDecode(env.Params, &ref) != nil || ref.IotID == "" || ref.OrderID == "" {
		return paramError
	}
	if rep, hit := s.lookupFault(); hit {
		return rep
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.find(ref)
	if o == nil {
		return fail(460, "order not exist", "订单不存在")
	}
	change(o)
	return ok(orderData(*o, s.withTime))
}

func (s *Server) query(_ *http.Request, env envelope) reply {
	var p struct {
		IotID    string      `json:"iotId"`
		PageNo   json.Number `json:"pageNo"`
		PageSize json.Number `json:"pageSize"`
	}
	if strictDecode(env.Params, &p) != nil || p.IotID == "" {
		return paramError
	}
	pageNo, err1 := p.PageNo.Int64()
	pageSize, err2 := p.PageSize.Int64()
	s.mu.Lock()
	paging := s.paging
	s.mu.Unlock()
	switch {
	case paging.From0:
		pageNo++ // served as the page one higher from 1
	case paging.Alias0 && pageNo == 0:
		pageNo = 1
	}
	if paging.Zero400 && err1 == nil && pageNo == 0 {
		return fail(400, "request error", "请求错误")
	}
	if paging.Empty0 && err1 == nil && pageNo == 0 && err2 == nil && pageSize > 0 {
		s.mu.Lock()
		n := int64(len(s.orders[p.IotID]))
		s.mu.Unlock()
		if paging.NoTotal {
			return ok(map[string]any{"data": []any{}})
		}
		return ok(map[string]any{"total": n, "pageNo": 0, "pageSize": pageSize, "data": []any{}})
	}
	if err1 != nil || err2 != nil || pageNo < 1 || pageSize < 1 {
		return paramError
	}
	if rep, hit := s.lookupFault(); hit {
		return rep
	}
	s.mu.Lock()
	if limit := cmp.Or(s.maxPage, 100); pageSize > limit {
		pageSize = limit
	}
	list := make([]Order, 0, len(s.orders[p.IotID]))
	for _, o := range s.orders[p.IotID] {
		if s.Unlisted == nil || !s.Unlisted(*o) {
			list = append(list, *o)
		}
	}
	withTime := s.withTime
	s.mu.Unlock()
	// Newest first.
	slices.SortStableFunc(list, func(a, b Order) int { return b.Created.Compare(a.Created) })
	if last := (int64(len(list)) + pageSize - 1) / pageSize; paging.RepeatLast && last > 0 && pageNo > last {
		pageNo = last
	}
	items := []any{}
	for i := (pageNo - 1) * pageSize; i < int64(len(list)) && i < pageNo*pageSize; i++ {
		items = append(items, orderData(list[i], withTime))
	}
	if paging.Shuffle && len(items) > 1 {
		// Turned by one more place on every call: two calls in a row
		// never list a page alike.
		s.mu.Lock()
		s.shuffles++
		k := s.shuffles % len(items)
		s.mu.Unlock()
		items = slices.Concat(items[k:], items[:k])
	}
	if paging.NoTotal {
		return ok(map[string]any{"data": items})
	}
	total := int64(len(list))
	if paging.TotalPages {
		total = (total + pageSize - 1) / pageSize
	}
	return ok(map[string]any{"total": total, "pageNo": pageNo, "pageSize": pageSize, "data": items})
}

// listTime reports whether answers carry gmtCreate.
func (s *Server) listTime() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.withTime
}

// orderData renders an order the way the platform answers it; userName
// comes back masked, as in the documented example.
func orderData(o Order, withCreateTime bool) map[string]any {
	local := time.FixedZone("UTC+8", 8*3600)
	start := o.Created
	end := start.AddDate(0, int(o.Copies), 0)
	d := map[string]any{
		"identityId":    "50e5op6412259c0f11700000000cd9326da8409",
		"orderId":       o.OrderID,
		"outOrderNo":    o.OutOrderNo,
		"commodityName": "视频设备分享增值服务 月套餐",
		"commodityCode": o.CommodityCode,
		"copies":        o.Copies,
		"startTime":     start.In(local).Format(time.DateTime),
		"endTime":       end.In(local).Format(time.DateTime),
		"startTimeUTC":  start.UTC().Format(time.RFC3339),
		"endTimeUTC":    end.UTC().Format(time.RFC3339),
		"status":        o.Status,
		"paymentStatus": o.PaymentStatus,
		"price":         strconv.FormatInt(140*o.Copies, 10),
		"userName":      providers.MaskName(o.UserName),
		"userId":        o.UserID,
	}
	if withCreateTime {
		d["gmtCreate"] = o.Created.UnixMilli()
	}
	return d
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

var _ http.Handler = (*Server)(nil)
