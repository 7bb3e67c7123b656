package tencent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/tencent"
)

func lookupCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func order(no, params string) providers.Order {
	return providers.Order{OrderNo: no, Params: json.RawMessage(params)}
}

const ours = `{"CustomerId":"Customer7","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":2}`

// Lookup takes an order with this OrderNo for ours only when its listed
// fields agree with the params, and only when it is the one such order.
func TestLookupIdentifiesByOrderNoAndParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		seed   []string // params of orders created with the same OrderNo
		other  []string // params of orders created with another OrderNo
		code   providers.Code
		phrase string
	}{
		{name: "ours", seed: []string{ours}},
		{name: "none", other: []string{ours}, code: providers.NotFound},
		{name: "same number, other quantity",
			seed: []string{`{"CustomerId":"Customer7","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":3}`},
			code: providers.Ambiguous, phrase: "other params"},
		{name: "same number, other item",
			seed: []string{`{"CustomerId":"Customer7","ItemId":"D-CarInsurance2021","ItemVNO":"AutoBase","ItemNum":2}`},
			code: providers.Ambiguous, phrase: "other params"},
		{name: "same number, no version", seed: []string{`{"CustomerId":"Customer7","ItemId":"D-FireInsurance2020","ItemNum":2}`}},
		{name: "twice", seed: []string{ours, ours}, code: providers.Ambiguous, phrase: "2 orders"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).(*harness)
			p := h.Provider()
			no := fmt.Sprintf("Lookup%03d", i)
			for _, params := range tt.seed {
				if _, err := p.Submit(lookupCtx(t), order(no, params)); err != nil {
					t.Fatal(err)
				}
			}
			for _, params := range tt.other {
				if _, err := p.Submit(lookupCtx(t), order(no+"x", params)); err != nil {
					t.Fatal(err)
				}
			}
			r, err := p.Lookup(lookupCtx(t), order(no, ours))
			if tt.code == providers.OK {
				if err != nil || r.Status != providers.StatusPaid {
					t.Errorf("Lookup = %+v, %v; want paid", r, err)
				}
				return
			}
			if c := providers.CodeOf(err); c != tt.code || !strings.Contains(fmt.Sprint(err), tt.phrase) {
				t.Errorf("Lookup = %+v, %v; want %v %q", r, err, tt.code, tt.phrase)
			}
		})
	}
}

// listServer answers ServiceGetOrderList from a fixed list, ignoring the
// OrderNo filter, with pages of at most max entries; total, when false,
// leaves Total out.
func listServer(t *testing.T, orders []map[string]any, max int, total bool) (*tencent.Client, func() int) {
	t.Helper()
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q struct{ Offset, Limit int }
		_ = json.NewDecoder(r.Body).Decode(&q)
		mu.Lock()
		calls++
		mu.Unlock()
		end := min(q.Offset+min(q.Limit, max), len(orders))
		page := []map[string]any{}
		if q.Offset < end {
			page = orders[q.Offset:end]
		}
		resp := map[string]any{"RequestId": "r", "Orders": page}
		if total {
			resp["Total"] = len(orders)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"Response": resp})
	}))
	t.Cleanup(srv.Close)
	c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	return c, func() int { mu.Lock(); defer mu.Unlock(); return calls }
}

func listed(n int, no string) []map[string]any {
	var out []map[string]any
	for i := range n {
		out = append(out, map[string]any{"CustomerId": "Customer7", "OrderNo": fmt.Sprintf("Other%04d", i), "ItemId": "D-FireInsurance2020", "ItemNum": 2})
	}
	if no != "" {
		out = append(out, map[string]any{"CustomerId": "Customer7", "OrderNo": no, "ItemId": "D-FireInsurance2020", "ItemVNO": "FireBusiness", "ItemNum": "2"})
	}
	return out
}

// A server that ignores the filter or pages is read in full before
// NotFound; a listing too long to read is Ambiguous, never NotFound.
func TestLookupReadsEveryPage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		list  []map[string]any
		max   int
		total bool
		code  providers.Code
		calls int
	}{
		{"ours on the third page", listed(250, "Mine"), 100, true, providers.OK, 3},
		{"absent from three pages", listed(250, ""), 100, true, providers.NotFound, 3},
		{"no total: read to an empty page", listed(150, ""), 100, false, providers.NotFound, 3},
		{"server pages by 40", listed(90, "Mine"), 40, true, providers.OK, 3},
		{"too long to read", listed(1001, ""), 100, true, providers.Ambiguous, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, calls := listServer(t, tt.list, tt.max, tt.total)
			r, err := c.Lookup(lookupCtx(t), order("Mine", ours))
			if got := providers.CodeOf(err); got != tt.code || (err == nil && r.Status != providers.StatusPaid) {
				t.Errorf("Lookup = %+v, %v; want %v", r, err, tt.code)
			}
			if n := calls(); n != tt.calls {
				t.Errorf("%d ServiceGetOrderList calls, want %d", n, tt.calls)
			}
		})
	}
}

// A listing that stops short of its Total was not read in full (here a
// server that takes Offset for a page number, which the document does not
// rule out): it proves no absence.
func TestLookupListingShortOfItsTotal(t *testing.T) {
	t.Parallel()
	orders := listed(250, "Mine") // ours is the last
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q struct{ Offset, Limit int }
		_ = json.NewDecoder(r.Body).Decode(&q)
		start := min(q.Offset*q.Limit, len(orders)) // Offset read as a page index
		page := orders[start:min(start+q.Limit, len(orders))]
		_ = json.NewEncoder(w).Encode(map[string]any{"Response": map[string]any{"RequestId": "r", "Orders": page, "Total": len(orders)}})
	}))
	t.Cleanup(srv.Close)
	c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.Lookup(lookupCtx(t), order("Mine", ours)); providers.CodeOf(err) != providers.Unavailable {
		t.Errorf("Lookup over a listing short of its Total = %+v, %v; want unavailable, never not found", r, err)
	}
}

// Every attempt signs with a fresh Nonce, so one refused as used means the
// same request reached the service before: a create may have happened.
func TestNonceRefusedIsAmbiguousForACreate(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"Response": map[string]any{"RequestId": "r",
			"Error": map[string]any{"Code": "InvalidParameterValue", "Message": "Nonce 重复"}}})
	}))
	t.Cleanup(srv.Close)
	c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(lookupCtx(t), order("N1", ours)); providers.CodeOf(err) != providers.Ambiguous {
		t.Errorf("Submit answered a used Nonce = %v, want ambiguous", err)
	}
	if _, err := c.Lookup(lookupCtx(t), order("N1", ours)); providers.CodeOf(err) != providers.Unavailable {
		t.Errorf("Lookup answered a used Nonce = %v, want unavailable", err)
	}
}

// Answers the document does not show exactly: the list under Data (the
// SDK's shape) is read; an answer naming no Orders, or a row without an
// OrderNo, proves no absence.
func TestLookupAnswerShapes(t *testing.T) {
	t.Parallel()
	row := map[string]any{"OrderNo": "S1", "CustomerId": "Customer7", "ItemId": "D-FireInsurance2020", "ItemVNO": "FireBusiness", "ItemNum": 2}
	for _, tt := range []struct {
		name     string
		response map[string]any
		want     providers.Code // Unknown: found
	}{
		{"under Data", map[string]any{"Data": map[string]any{"Orders": []any{row}, "Total": 1}}, providers.Unknown},
		{"no Orders", map[string]any{}, providers.Unavailable},
		{"other names", map[string]any{"OrderList": []any{row}, "TotalCount": 1}, providers.Unavailable},
		{"no Orders, Total 0", map[string]any{"Total": 0}, providers.NotFound},
		{"a row without OrderNo", map[string]any{"Orders": []any{map[string]any{"CustomerId": "Customer7", "ItemId": "D-FireInsurance2020", "ItemNum": 2}}, "Total": 1}, providers.Ambiguous},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				resp := map[string]any{"RequestId": "r"}
				for k, v := range tt.response {
					resp[k] = v
				}
				_ = json.NewEncoder(w).Encode(map[string]any{"Response": resp})
			}))
			t.Cleanup(srv.Close)
			c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Lookup(lookupCtx(t), order("S1", ours))
			if tt.want == providers.Unknown {
				if err != nil || r.Status != providers.StatusPaid {
					t.Errorf("Lookup = %+v, %v; want found", r, err)
				}
			} else if providers.CodeOf(err) != tt.want {
				t.Errorf("Lookup = %+v, %v; want %v", r, err, tt.want)
			}
		})
	}
}

// A create refused with a parameter error naming the OrderNo, or a Nonce
// sub-code, may mean the order exists already: it is looked up.
func TestCreateRefusalsThatMayMeanItExists(t *testing.T) {
	t.Parallel()
	for _, e := range []map[string]any{
		{"Code": "InvalidParameterValue", "Message": "OrderNo 已存在"},
		{"Code": "InvalidParameterValue.NonceUsed", "Message": "used"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]any{"Response": map[string]any{"RequestId": "r", "Error": e}})
		}))
		t.Cleanup(srv.Close)
		c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Submit(lookupCtx(t), order("E1", ours)); providers.CodeOf(err) != providers.Ambiguous {
			t.Errorf("Submit refused with %v = %v, want ambiguous", e, err)
		}
	}
}

// A 408 is no refusal of the order: a create is looked up, a lookup tried
// again.
func TestRequestTimeoutIsNoRefusal(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestTimeout)
	}))
	t.Cleanup(srv.Close)
	c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(lookupCtx(t), order("T408", ours)); providers.CodeOf(err) != providers.Ambiguous {
		t.Errorf("Submit answered 408 = %v, want ambiguous", err)
	}
	if _, err := c.Lookup(lookupCtx(t), order("T408", ours)); providers.CodeOf(err) != providers.Unavailable {
		t.Errorf("Lookup answered 408 = %v, want unavailable", err)
	}
}
