// Package sandbox is a fake of UniCloud's OpenAPI for tests and the
// worker's -dev mode: NAS CreateOrder on /openapi/nas and the transaction
// API's OrderDetail and QueryOrders on /transaction.
//
// It checks requests the way the provider does: the common parameters, the
// signature recomputed from the received query with the request's method
// (a bad one is answered HTTP 400 InvalidParameter "Signature"), an unknown
// AccessKeyId (HTTP 200, Auth false), a Timestamp more than Skew away
// from its clock, and a SignatureNonce used before. It keeps orders, answers
// the documented shapes, and injects faults.
//
// Like the real API as far as it is documented, CreateOrder has no client
// token: submitting an order twice makes two orders, which is exactly what
// tests count to prove the worker never does that.
//
// Where the documentation is silent the sandbox decides: QueryOrders lists
// newest first and caps Size at MaxPageSize; StartTime and EndTime are read
// in UTC+8; OrderDetail's Items carry the file system's instanceId and
// instanceName (the documented example's item is cut off); an unknown
// OrderId is answered {"Status":false,"Code":"OrderNotExist"}; ProductCategory
// is "NAS"; OrderStatus is "PAID".
package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/replay"
	"github.com/orderworker/orderworker/providers/unicloud"
)

// Order is an order the sandbox holds.
type Order struct {
	// ID is the numeric OrderId, OrderNo the billing order number, and
	// FileSystemID the created nas-… id.
	ID, OrderNo, FileSystemID string

	AzoneID, ComponentCode       string
	DataEncryption               int64
	InstanceName, OrderCategory  string
	PayType, ProjectID, RegionID string
	RenewType                    string
	RentCount                    int64
	RentUnit, SpecificationCode  string
	Unit, VPC                    string
	ProductCategory, OrderStatus string
	Created                      time.Time
}

// Server is the fake API. Mount it with httptest.NewServer (it serves
// unicloud.NASPath and unicloud.TransactionPath). Set its exported fields
// before serving.
type Server struct {
	// Skew is how far Timestamp may be from the sandbox's clock. Default
	// 15 minutes.
	Skew time.Duration
	// ThrottleStatus is the HTTP status of a throttled call: 429 (the
	// default, with Retry-After: 1) or 200 with Status false and Code
	// Throttling.
	ThrottleStatus int
	// ThrottleAfterCreate makes a scripted throttle of CreateOrder come
	// after the order is made (by default before): no document says
	// which.
	ThrottleAfterCreate bool
	// NumericOrderID makes CreateOrder answer OrderId as a JSON number.
	NumericOrderID bool
	// MaxPageSize caps QueryOrders' Size. Default 100.
	MaxPageSize int
	// PagesFrom0 makes QueryOrders' Page count from 0 (by default from 1,
	// and a Page below 1 is InvalidParameter); neither is documented.
	PagesFrom0 bool
	// NoTotal makes QueryOrders answer without TotalCount.
	NoTotal bool
	// Now is the sandbox's clock. Default time.Now.
	Now func() time.Time
	// DetailLag makes OrderDetail answer OrderNotExist for an order
	// listed less than this long ago (a detail behind its listing).
	DetailLag time.Duration
	// ShownName, when set, is the instanceName OrderDetail shows for an
	// order (by default the one its create sent): a server that shows
	// another field there, the file system's id say.
	ShownName func(Order) string
	// Unlisted, when set, makes QueryOrders leave out the orders it
	// returns true for (a listing that is not whole: a category filter
	// whose default the documents do not give, say).
	Unlisted func(Order) bool

	faults fault.Injector

	mu      sync.Mutex
	secrets map[string]string // AccessKeyId -> secret
	orders  []Order
	byID    map[string]int
	nonces  replay.Guard
	calls   map[string]int
}

// New returns a sandbox that accepts the given credentials.
func New(accessKeyID, accessKeySecret string) *Server {
	return &Server{
		secrets: map[string]string{accessKeyID: accessKeySecret},
		byID:    map[string]int{},
		calls:   map[string]int{},
	}
}

// Faults returns the fault injector. CreateOrder asks it as a create call,
// OrderDetail and QueryOrders as lookups (see fault.Injector.Next).
func (s *Server) Faults() *fault.Injector { return &s.faults }

// Count returns how many orders the sandbox holds for instanceName.
func (s *Server) Count(instanceName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, o := range s.orders {
		if o.InstanceName == instanceName {
			n++
		}
	}
	return n
}

// Orders returns a copy of every order, oldest first.
func (s *Server) Orders() []Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.orders)
}

// Calls returns how many requests each Action received (signed or not).
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// Seed stores o as if someone had created it, filling in ID, OrderNo,
// FileSystemID, ProductCategory, OrderStatus and Created when empty, and
// returns it.
func (s *Server) Seed(o Order) Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.add(o)
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// add stores o; s.mu is held.
func (s *Server) add(o Order) Order {
	for o.ID == "" || s.byID[o.ID] != 0 {
		// 18 digits: past 2^53, so a float64 would corrupt it.
		o.ID = strconv.FormatUint(900_000_000_000_000_000+rand.Uint64N(99_999_999_999_999_999), 10)
	}
	if o.OrderNo == "" {
		o.OrderNo = fmt.Sprintf("P%014d", rand.Uint64N(1e14))
	}
	if o.FileSystemID == "" {
		const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
		b := []byte("nas-000000000000")
		for i := 4; i < len(b); i++ {
			b[i] = alphabet[rand.IntN(len(alphabet))]
		}
		o.FileSystemID = string(b)
	}
	if o.ProductCategory == "" {
		o.ProductCategory = "NAS"
	}
	if o.OrderStatus == "" {
		o.OrderStatus = "PAID"
	}
	if o.Created.IsZero() {
		o.Created = s.now()
	}
	s.orders = append(s.orders, o)
	s.byID[o.ID] = len(s.orders) // index+1, so 0 means absent
	return o
}

type reply struct {
	status int
	header map[string]string
	body   any
	abort  bool // drop the connection without answering
}

func errorReply(status int, code, msg, requestID string) reply {
	return reply{status: status, body: map[string]any{"Code": code, "Msg": msg, "RequestId": requestID}}
}

func failReply(code, msg, requestID string) reply {
	return reply{status: http.StatusOK, body: map[string]any{"Status": false, "Auth": true, "Code": code, "Msg": msg, "RequestId": requestID}}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := s.handle(w, r)
	if rep.abort {
		panic(http.ErrAbortHandler)
	}
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(rep.status)
	if rep.body != nil {
		_ = json.NewEncoder(w).Encode(rep.body)
	}
}

// required are the parameters every call carries besides Signature.
var required = []string{"Action", "Format", "Version", "AccessKeyId", "SignatureMethod", "SignatureVersion", "Timestamp", "SignatureNonce", "Signature"}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) reply {
	requestID := uuid.NewString()
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return errorReply(http.StatusBadRequest, "InvalidParameter", "The query string is malformed.", requestID)
	}
	params := make(map[string]string, len(values))
	for k, vs := range values {
		if len(vs) != 1 {
			return errorReply(http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("The specified parameter %q is given more than once.", k), requestID)
		}
		params[k] = vs[0]
	}
	action := params["Action"]
	s.mu.Lock()
	s.calls[action]++
	s.mu.Unlock()

	for _, k := range required {
		if params[k] == "" {
			return errorReply(http.StatusBadRequest, "MissingParameter",
				fmt.Sprintf("The input parameter %q that is mandatory for processing this request is not supplied.", k), requestID)
		}
	}
	if rep, ok := s.verify(r.Method, params, requestID); !ok {
		return rep
	}
	switch {
	case r.URL.Path == unicloud.NASPath && action == "CreateOrder":
		if r.Method != http.MethodPost {
			return errorReply(http.StatusMethodNotAllowed, "UnsupportedHTTPMethod", "CreateOrder takes POST.", requestID)
		}
		return s.create(w, r, params, requestID)
	case r.URL.Path == unicloud.TransactionPath && action == "OrderDetail":
		return s.detail(params, requestID)
	case r.URL.Path == unicloud.TransactionPath && action == "QueryOrders":
		return s.query(params, requestID)
	default:
		return errorReply(http.StatusNotFound, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.", requestID)
	}
}

// verify checks the common parameters, AccessKeyId, Signature, Timestamp
// and SignatureNonce, in that order.
func (s *Server) verify(method string, params map[string]string, requestID string) (reply, bool) {
	bad := func(name string) (reply, bool) {
		return errorReply(http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("The specified parameter %q is not valid.", name), requestID), false
	}
	switch {
	case !strings.EqualFold(params["Format"], "json"):
		return bad("Format")
	case params["Version"] != unicloud.APIVersion:
		return bad("Version")
	case params["SignatureMethod"] != unicloud.SignatureMethod:
		return bad("SignatureMethod")
	case params["SignatureVersion"] != "1.0" && params["SignatureVersion"] != "2.0":
		return bad("SignatureVersion")
	}
	s.mu.Lock()
	secret, ok := s.secrets[params["AccessKeyId"]]
	s.mu.Unlock()
	if !ok {
		return reply{status: http.StatusOK, body: map[string]any{"Status": false, "Auth": false, "Code": "InvalidAccessKeyId.NotFound",
			"Msg": "Specified access key is not found.", "RequestId": requestID}}, false
	}
	if unicloud.Sign(method, params, secret) != params["Signature"] {
		return bad("Signature")
	}
	skew := s.Skew
	if skew <= 0 {
		skew = 15 * time.Minute
	}
	now := s.now()
	ts, err := time.Parse(unicloud.TimestampLayout, params["Timestamp"])
	if err != nil {
		return errorReply(http.StatusBadRequest, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.", requestID), false
	}
	if now.Sub(ts).Abs() > skew {
		return errorReply(http.StatusBadRequest, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", requestID), false
	}
	key := params["AccessKeyId"] + "/" + params["SignatureNonce"]
	if s.nonces.Seen(key, now, 2*skew) {
		return errorReply(http.StatusBadRequest, "SignatureNonceUsed", "Specified signature nonce was used already.", requestID), false
	}
	return reply{}, true
}

// throttled is the answer to a throttled call.
func (s *Server) throttled(requestID string) reply {
	const msg = "Request was denied due to request throttling."
	if s.ThrottleStatus == http.StatusOK {
		return failReply("Throttling", msg, requestID)
	}
	rep := errorReply(http.StatusTooManyRequests, "Throttling", msg, requestID)
	rep.header = map[string]string{"Retry-After": "1"}
	return rep
}

func unavailable(requestID string) reply {
	return errorReply(http.StatusServiceUnavailable, "ServiceUnavailable", "The request has failed due to a temporary failure of the server.", requestID)
}

// stringFields are CreateOrder's string body fields; all but unit are
// required.
var stringFields = []string{"azoneId", "componentCode", "instanceName", "orderCategory", "payType", "projectId", "regionId", "renewType", "rentUnit", "specificationCode", "unit", "vpc"}

func (s *Server) create(w http.ResponseWriter, r *http.Request, params map[string]string, requestID string) reply {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errorReply(http.StatusBadRequest, "InvalidParameter", "The request body must be JSON.", requestID)
	}
	var raw bytes.Buffer
	if _, err := raw.ReadFrom(http.MaxBytesReader(w, r.Body, 1<<20)); err != nil {
		return errorReply(http.StatusBadRequest, "InvalidParameter", "The request body is unreadable.", requestID)
	}
	var body map[string]any
	dec := json.NewDecoder(&raw)
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil || body == nil {
		return errorReply(http.StatusBadRequest, "InvalidParameter", "The request body is not a JSON object.", requestID)
	}
	str := map[string]string{}
	for _, k := range stringFields {
		v, present := body[k]
		sv, isString := v.(string)
		switch {
		case !present || v == nil || sv == "" && isString:
			if k == "unit" {
				continue
			}
			return errorReply(http.StatusBadRequest, "MissingParameter",
				fmt.Sprintf("The input parameter %q that is mandatory for processing this request is not supplied.", k), requestID)
		case !isString:
			return errorReply(http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("The specified parameter %q is not valid.", k), requestID)
		}
		str[k] = sv
	}
	ints := map[string]int64{}
	for _, k := range []string{"dataEncryption", "rentCount"} {
		v, present := body[k]
		if !present || v == nil {
			return errorReply(http.StatusBadRequest, "MissingParameter",
				fmt.Sprintf("The input parameter %q that is mandatory for processing this request is not supplied.", k), requestID)
		}
		n, ok := v.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil || k == "dataEncryption" && i != 0 && i != 1 || k == "rentCount" && i < 1 {
			return errorReply(http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("The specified parameter %q is not valid.", k), requestID)
		}
		ints[k] = i
	}
	if params["regionId"] != str["regionId"] {
		return errorReply(http.StatusBadRequest, "InvalidParameter", `The specified parameter "regionId" is not valid.`, requestID)
	}
	if !strings.HasPrefix(str["componentCode"], "nas.") || !strings.HasPrefix(str["specificationCode"], "nas.") {
		return failReply("ProductConfigError", "产品配置错误", requestID)
	}
	o := Order{
		AzoneID: str["azoneId"], ComponentCode: str["componentCode"], DataEncryption: ints["dataEncryption"],
		InstanceName: str["instanceName"], OrderCategory: str["orderCategory"], PayType: str["payType"],
		ProjectID: str["projectId"], RegionID: str["regionId"], RenewType: str["renewType"],
		RentCount: ints["rentCount"], RentUnit: str["rentUnit"], SpecificationCode: str["specificationCode"],
		Unit: str["unit"], VPC: str["vpc"],
	}

	f := s.faults.Next(true)
	switch {
	case f == fault.Throttle && !s.ThrottleAfterCreate:
		return s.throttled(requestID)
	case f == fault.FailBefore:
		return unavailable(requestID)
	}
	s.mu.Lock()
	o = s.add(o)
	s.mu.Unlock()
	switch f {
	case fault.Throttle:
		return s.throttled(requestID)
	case fault.FailAfter:
		return errorReply(http.StatusInternalServerError, "InternalError", "The request processing has failed due to some unknown error.", requestID)
	case fault.HangAfter:
		s.faults.Hang(r.Context())
		return reply{abort: true}
	}
	var id any = o.ID
	if s.NumericOrderID {
		id = json.Number(o.ID)
	}
	return reply{status: http.StatusOK, body: map[string]any{
		"Status": true, "Auth": true, "Code": "Success", "RequestId": requestID,
		"Res": map[string]any{"Ids": []string{o.FileSystemID}, "OrderId": id},
	}}
}

func (s *Server) lookupFault(requestID string) (reply, bool) {
	switch s.faults.Next(false) {
	case fault.Throttle:
		return s.throttled(requestID), true
	case fault.FailBefore:
		return unavailable(requestID), true
	}
	return reply{}, false
}

func cst(t time.Time) string { return t.In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout) }

// listed is an order as QueryOrders shows it: the documented fields only.
func listed(o Order) map[string]any {
	return map[string]any{
		"Id": o.ID, "OrderNo": o.OrderNo, "UserId": "u-sandbox", "UserName": "sandbox",
		"AccountId": "a-sandbox", "AccountName": "sandbox", "OrderStatus": o.OrderStatus,
		"OrderCategory": o.OrderCategory, "PayType": o.PayType, "ChargeType": "POSTPAID",
		"IsOffine": false, "ProductCategory": o.ProductCategory, "IsInvoice": false,
		"PayTime": cst(o.Created), "TotalPrice": 0, "CouponAmount": 0, "PromotionAmount": 0,
		"PromotionRule": nil, "FinalPrice": 0, "PaidAmount": 0, "ProductRegionId": o.RegionID,
		"ProductRegionName": o.RegionID, "CreateTime": cst(o.Created), "UpdateTime": cst(o.Created),
		"InstanceId": "", "Note": nil,
	}
}

func (s *Server) detail(params map[string]string, requestID string) reply {
	if rep, ok := s.lookupFault(requestID); ok {
		return rep
	}
	id := params["OrderId"]
	if id == "" {
		return errorReply(http.StatusBadRequest, "MissingParameter", `The input parameter "OrderId" that is mandatory for processing this request is not supplied.`, requestID)
	}
	s.mu.Lock()
	i := s.byID[id]
	var o Order
	if i > 0 {
		o = s.orders[i-1]
	}
	s.mu.Unlock()
	if i == 0 || s.now().Sub(o.Created) < s.DetailLag {
		return failReply("OrderNotExist", "订单不存在", requestID)
	}
	name := o.InstanceName
	if s.ShownName != nil {
		name = s.ShownName(o)
	}
	desc, _ := json.Marshal(map[string]any{"conf": map[string]string{
		"地域": o.RegionID, "可用区": o.AzoneID, "存储类型": o.SpecificationCode, "计费模式": o.PayType}})
	item := map[string]any{
		"id": json.Number(o.ID + "1"), "orderId": json.Number(o.ID), "orderNo": o.OrderNo,
		"productId": 7489, "productSku": o.SpecificationCode,
		"instanceId": o.FileSystemID, "instanceName": name,
	}
	order := map[string]any{
		"Id": o.ID, "ItemCount": 1, "UserName": "sandbox", "PayType": o.PayType, "PayTypeName": o.PayType,
		"ProductRegionId": o.RegionID, "ProductRegionName": o.RegionID, "OrderStatus": o.OrderStatus,
		"TotalPrice": 0, "PaidAmount": 0, "FinalPrice": 0, "OrderCategory": o.OrderCategory,
		"ProductCategory": o.ProductCategory, "DueTime": nil, "CancelType": nil, "Note": nil,
		"OrderNo": o.OrderNo, "PayTime": cst(o.Created), "CreateTime": cst(o.Created), "UpdateTime": cst(o.Created),
		"ProductDescription": string(desc), "Quantity": 1, "ProductRentCount": o.RentCount,
		"ChargeType": "POSTPAID", "ProductRentUnit": o.RentUnit, "Items": []any{item},
	}
	return reply{status: http.StatusOK, body: map[string]any{"Order": order, "RequestId": requestID}}
}

func (s *Server) query(params map[string]string, requestID string) reply {
	if rep, ok := s.lookupFault(requestID); ok {
		return rep
	}
	num := func(name string) (int, reply, bool) {
		v := params[name]
		if name == "Page" && s.PagesFrom0 {
			if n, err := strconv.Atoi(v); err == nil {
				v = strconv.Itoa(n + 1) // served as the page one higher from 1
			}
		}
		if v == "" {
			return 0, errorReply(http.StatusBadRequest, "MissingParameter",
				fmt.Sprintf("The input parameter %q that is mandatory for processing this request is not supplied.", name), requestID), false
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, errorReply(http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("The specified parameter %q is not valid.", name), requestID), false
		}
		return n, reply{}, true
	}
	pageNum, rep, ok := num("Page")
	if !ok {
		return rep
	}
	size, rep, ok := num("Size")
	if !ok {
		return rep
	}
	maxSize := s.MaxPageSize
	if maxSize <= 0 {
		maxSize = 100
	}
	size = min(size, maxSize)
	var from, to time.Time
	for name, t := range map[string]*time.Time{"StartTime": &from, "EndTime": &to} {
		if v := params[name]; v != "" {
			parsed, err := time.ParseInLocation(unicloud.QueryTimeLayout, v, unicloud.ChinaTime())
			if err != nil {
				return errorReply(http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("The specified parameter %q is not valid.", name), requestID)
			}
			*t = parsed
		}
	}
	s.mu.Lock()
	var match []Order
	for _, o := range s.orders {
		created := o.Created.Truncate(time.Second)
		switch {
		case !from.IsZero() && created.Before(from), !to.IsZero() && created.After(to),
			params["PayType"] != "" && params["PayType"] != o.PayType,
			params["ProductCategory"] != "" && params["ProductCategory"] != o.ProductCategory,
			params["OrderCategory"] != "" && params["OrderCategory"] != o.OrderCategory,
			params["OrderStatus"] != "" && params["OrderStatus"] != o.OrderStatus,
			s.Unlisted != nil && s.Unlisted(o):
			continue
		}
		match = append(match, o)
	}
	s.mu.Unlock()
	// Newest first.
	slices.Reverse(match)
	slices.SortStableFunc(match, func(a, b Order) int { return b.Created.Compare(a.Created) })
	list := []any{}
	if pageNum-1 < (len(match)+size-1)/size {
		for _, o := range match[(pageNum-1)*size : min(pageNum*size, len(match))] {
			list = append(list, listed(o))
		}
	}
	body := map[string]any{
		"TotalCount": len(match), "PageNum": pageNum, "PageSize": size,
		"OrderList": map[string]any{"Order": list}, "RequestId": requestID,
	}
	if s.NoTotal {
		delete(body, "TotalCount")
	}
	return reply{status: http.StatusOK, body: body}
}
