// Package sandbox is a fake of Tencent IoT Explorer's service API for tests
// and the worker's -dev mode. It speaks the same wire format and verifies
// signatures as the real API does (a bad one is answered
// InvalidParameterValue, "Signature 无效"), keeps orders by OrderNo, answers
// ServiceGetOrderList and injects faults.
//
// Like the real API as far as it is documented, it does not deduplicate by
// OrderNo: submitting an order twice makes two orders, which is exactly what
// tests count to prove the worker never does that.
package sandbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/replay"
	"github.com/orderworker/orderworker/providers/tencent"
)

// Order is an order the sandbox holds.
type Order struct {
	CustomerId, OrderNo, ItemId, ItemVNO string
	ItemNum                              int64
	Created                              time.Time
}

// Server is the fake API. Mount it with httptest.NewServer or any mux at
// tencent.Path (it answers every path the same way).
type Server struct {
	faults fault.Injector
	// Skew is how far Timestamp may be from the sandbox's clock (default
	// 5 minutes).
	Skew time.Duration
	// ListLag hides an order from ServiceGetOrderList until it is this
	// old: a provider whose listing lags behind its creates (set it
	// before serving).
	ListLag time.Duration

	mu      sync.Mutex
	secrets map[string]string // AppKey -> AppSecret
	orders  map[string][]Order
	nonces  replay.Guard
	calls   map[string]int
}

// New returns a sandbox that accepts the given AppKey/AppSecret pair.
func New(appKey, appSecret string) *Server {
	return &Server{
		secrets: map[string]string{appKey: appSecret},
		orders:  map[string][]Order{},
		calls:   map[string]int{},
	}
}

// Faults returns the fault injector for create and list calls.
func (s *Server) Faults() *fault.Injector { return &s.faults }

// Count returns how many orders the sandbox holds for orderNo.
func (s *Server) Count(orderNo string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.orders[orderNo])
}

// Orders returns a copy of every order, by OrderNo.
func (s *Server) Orders() map[string][]Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]Order, len(s.orders))
	for k, v := range s.orders {
		out[k] = append([]Order(nil), v...)
	}
	return out
}

// Calls returns how many requests each Action received (signed or not).
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

type reply struct {
	status int
	body   any
}

func errorReply(status int, code, msg, requestID string) reply {
	return reply{status, map[string]any{"Response": map[string]any{
		"Error": map[string]string{"Code": code, "Message": msg}, "RequestId": requestID}}}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := s.handle(w, r)
	if rep.status == 0 {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	if rep.body != nil {
		_ = json.NewEncoder(w).Encode(rep.body)
	}
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) reply {
	if r.Method != http.MethodPost {
		return reply{http.StatusMethodNotAllowed, nil}
	}
	var raw bytes.Buffer
	if _, err := raw.ReadFrom(http.MaxBytesReader(w, r.Body, 1<<20)); err != nil {
		return errorReply(200, "InvalidParameterValue.InvalidJSON", "请求格式不是 JSON", "")
	}
	var params map[string]any
	dec := json.NewDecoder(&raw)
	dec.UseNumber()
	if err := dec.Decode(&params); err != nil {
		return errorReply(200, "InvalidParameterValue.InvalidJSON", "请求格式不是 JSON", "")
	}
	requestID, _ := params["RequestId"].(string)
	action, _ := params["Action"].(string)
	s.mu.Lock()
	s.calls[action]++
	s.mu.Unlock()

	for _, k := range []string{"Action", "RequestId", "AppKey", "Signature", "Timestamp", "Nonce"} {
		if v, ok := params[k]; !ok || v == "" {
			return errorReply(200, "ErrorRequiredParamNotFound", "缺少参数 "+k, requestID)
		}
	}
	if rep, ok := s.verify(params, requestID); !ok {
		return rep
	}
	switch action {
	case "ServiceCreateOrder":
		return s.create(r, params, requestID)
	case "ServiceGetOrderList":
		return s.list(params, requestID)
	default:
		return errorReply(200, "InvalidAction", "Action 非法", requestID)
	}
}

// verify checks AppKey, Signature, Timestamp and Nonce like the real API.
func (s *Server) verify(params map[string]any, requestID string) (reply, bool) {
	appKey, _ := params["AppKey"].(string)
	sig, _ := params["Signature"].(string)
	rendered := make(map[string]string, len(params))
	for k, v := range params {
		switch v := v.(type) {
		case string:
			rendered[k] = v
		case json.Number:
			rendered[k] = v.String()
		case bool:
			rendered[k] = strconv.FormatBool(v)
		default:
			return errorReply(200, "InvalidParameterValue", "参数 "+k+" 类型非法", requestID), false
		}
	}
	s.mu.Lock()
	secret, ok := s.secrets[appKey]
	s.mu.Unlock()
	if !ok || tencent.Sign(rendered, secret) != sig {
		return errorReply(200, "InvalidParameterValue", "Signature 无效", requestID), false
	}
	ts, err := strconv.ParseInt(rendered["Timestamp"], 10, 64)
	skew := s.Skew
	if skew == 0 {
		skew = 5 * time.Minute
	}
	now := time.Now()
	if err != nil || now.Sub(time.Unix(ts, 0)).Abs() > skew {
		return errorReply(200, "InvalidParameterValue", "Timestamp 已过期", requestID), false
	}
	nonceKey := appKey + "/" + rendered["Nonce"] + "/" + rendered["Timestamp"]
	if s.nonces.Seen(nonceKey, now, 2*skew) {
		return errorReply(200, "InvalidParameterValue", "Nonce 重复", requestID), false
	}
	return reply{}, true
}

func (s *Server) create(r *http.Request, params map[string]any, requestID string) reply {
	var o Order
	var ok bool
	for _, k := range []string{"CustomerId", "OrderNo", "ItemId", "ItemNum"} {
		if _, ok = params[k]; !ok {
			return errorReply(200, "ErrorRequiredParamNotFound", "缺少参数 "+k, requestID)
		}
	}
	o.CustomerId, _ = params["CustomerId"].(string)
	o.OrderNo, _ = params["OrderNo"].(string)
	o.ItemId, _ = params["ItemId"].(string)
	o.ItemVNO, _ = params["ItemVNO"].(string)
	n, _ := params["ItemNum"].(json.Number)
	num, err := n.Int64()
	if err != nil || num < 1 || o.CustomerId == "" || o.OrderNo == "" || o.ItemId == "" {
		return errorReply(200, "InvalidParameterValue", "参数非法", requestID)
	}
	o.ItemNum = num
	o.Created = time.Now()

	f := s.faults.Next(true)
	switch f {
	case fault.Throttle:
		// No throttling answer is documented for this API: this is
		// Tencent Cloud's common code, which the client does not take
		// for a refusal (a create answered so is looked up).
		return errorReply(200, "RequestLimitExceeded", "请求频率超限", requestID)
	case fault.FailBefore:
		return reply{http.StatusServiceUnavailable, nil}
	}
	s.mu.Lock()
	s.orders[o.OrderNo] = append(s.orders[o.OrderNo], o)
	s.mu.Unlock()
	switch f {
	case fault.FailAfter:
		return errorReply(http.StatusInternalServerError, "InternalError", "内部错误", requestID)
	case fault.HangAfter:
		s.faults.Hang(r.Context())
		return reply{}
	}
	return reply{200, map[string]any{"Response": map[string]any{"RequestId": requestID, "Status": "OK"}}}
}

func (s *Server) list(params map[string]any, requestID string) reply {
	switch s.faults.Next(false) {
	case fault.Throttle:
		return errorReply(200, "RequestLimitExceeded", "请求频率超限", requestID)
	case fault.FailBefore:
		return reply{http.StatusServiceUnavailable, nil}
	}
	orderNo, _ := params["OrderNo"].(string)
	customer, _ := params["CustomerId"].(string)
	s.mu.Lock()
	out := []map[string]any{} // an empty list is [], never null
	for no, list := range s.orders {
		if orderNo != "" && no != orderNo {
			continue
		}
		for _, o := range list {
			if customer != "" && o.CustomerId != customer || time.Since(o.Created) < s.ListLag {
				continue
			}
			out = append(out, map[string]any{"CustomerId": o.CustomerId, "OrderNo": o.OrderNo,
				"ItemId": o.ItemId, "ItemNum": o.ItemNum, "ItemVNO": o.ItemVNO})
		}
	}
	s.mu.Unlock()
	return reply{200, map[string]any{"Response": map[string]any{
		"RequestId": requestID, "Orders": out, "Total": len(out)}}}
}
