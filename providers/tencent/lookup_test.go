package tencent_test

import (
	"context"
	"encoding/json"
	"errors"
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

// listing is a ServiceGetOrderList server's behaviour, for what the
// document leaves open: which orders it lists, whether it applies the
// OrderNo filter, how it reads Offset, its default and largest page size,
// and how it gives Total.
type listing struct {
	orders []map[string]any
	// later are listed from the second request on, before orders (an
	// order created between two pages, newest first).
	later []map[string]any
	// filter applies the OrderNo filter.
	filter bool
	// page is the page size when no Limit is sent (default 100).
	page int
	// maxLimit refuses a Limit above it with InvalidParameterValue and
	// refusal as its message (default "Limit 超出范围").
	maxLimit int
	refusal  string
	// refusalCode is the refusal's code (default InvalidParameterValue).
	refusalCode string
	// refuseAll refuses every request with InvalidParameterValue.
	refuseAll bool
	// bareEmpty answers an empty page to a request without Limit (a
	// server whose default page size is 0).
	bareEmpty bool
	// offset is how Offset is read: "" counts orders from 0, "page0"
	// counts pages from 0, "page1" pages from 1 (0 is an empty page),
	// "ignore" always lists the first page. An absent Offset is the
	// first page.
	offset string
	// total: "" the listed orders' count, "none" left out, "null",
	// "text" the count as a string, "ours" the count of orders with the
	// asked OrderNo whatever is listed.
	total string
	// restyle, when set, rewrites the listing on each request (n counts
	// them from 1): rows in another order, fields written otherwise.
	restyle func(n int, rows []map[string]any) []map[string]any
}

// listServer answers ServiceGetOrderList from a fixed list, ignoring the
// OrderNo filter, with pages of at most max entries; total, when false,
// leaves Total out.
func listServer(t *testing.T, orders []map[string]any, max int, total bool) (*tencent.Client, func() int) {
	t.Helper()
	l := listing{orders: orders, page: max}
	if !total {
		l.total = "none"
	}
	c, reqs := l.serve(t)
	return c, func() int { return len(reqs()) }
}

// serve starts the server; it returns a client of it and the requests it
// received (each as the JSON object sent).
func (l listing) serve(t *testing.T) (*tencent.Client, func() []map[string]any) {
	t.Helper()
	var mu sync.Mutex
	var reqs []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q map[string]any
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		_ = dec.Decode(&q)
		mu.Lock()
		reqs = append(reqs, q)
		n := len(reqs)
		mu.Unlock()
		num := func(name string) (int, bool) {
			v, ok := q[name].(json.Number)
			i, err := v.Int64()
			return int(i), ok && err == nil
		}
		reply := func(resp map[string]any) {
			resp["RequestId"] = "r"
			_ = json.NewEncoder(w).Encode(map[string]any{"Response": resp})
		}
		size := l.page
		if size == 0 {
			size = 100
		}
		if limit, ok := num("Limit"); ok || l.refuseAll {
			if l.refuseAll || l.maxLimit > 0 && limit > l.maxLimit {
				msg := l.refusal
				if msg == "" {
					msg = "Limit 超出范围"
				}
				code := l.refusalCode
				if code == "" {
					code = "InvalidParameterValue"
				}
				reply(map[string]any{"Error": map[string]any{"Code": code, "Message": msg}})
				return
			}
			size = min(limit, size)
		} else if l.bareEmpty {
			size = 0
		}
		all := l.orders
		if n > 1 {
			all = append(append([]map[string]any{}, l.later...), l.orders...)
		}
		if l.restyle != nil {
			all = l.restyle(n, all)
		}
		var sel []map[string]any
		ours := 0
		for _, o := range all {
			if o["OrderNo"] == q["OrderNo"] {
				ours++
			}
			if !l.filter || o["OrderNo"] == q["OrderNo"] {
				sel = append(sel, o)
			}
		}
		start, given := num("Offset")
		switch {
		case !given || l.offset == "ignore":
			start = 0
		case l.offset == "page0":
			start *= size
		case l.offset == "page1" && start == 0:
			start = len(sel)
		case l.offset == "page1":
			start = (start - 1) * size
		}
		start = min(start, len(sel))
		resp := map[string]any{"Orders": append([]map[string]any{}, sel[start:min(start+size, len(sel))]...)}
		switch l.total {
		case "":
			resp["Total"] = len(sel)
		case "null":
			resp["Total"] = nil
		case "text":
			resp["Total"] = fmt.Sprint(len(sel))
		case "ours":
			resp["Total"] = ours
		case "page":
			resp["Total"] = len(resp["Orders"].([]map[string]any))
		}
		reply(resp)
	}))
	t.Cleanup(srv.Close)
	c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	return c, func() []map[string]any { mu.Lock(); defer mu.Unlock(); return append([]map[string]any(nil), reqs...) }
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
// NotFound; a listing too long to read is Ambiguous, never NotFound, unless
// the part read holds our order.
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
		// The filter ignored: read to an empty page its Total confirms
		// (one more call than the orders need).
		{"ours on the third page", listed(250, "Mine"), 100, true, providers.OK, 4},
		{"absent from three pages", listed(250, ""), 100, true, providers.NotFound, 4},
		// Orders of other numbers: the filter was ignored, and without a
		// Total nothing shows the empty page to be the end of them all.
		{"no total: read to an empty page", listed(150, ""), 100, false, providers.Unavailable, 3},
		{"server pages by 40", listed(90, "Mine"), 40, true, providers.OK, 4},
		{"too long to read", listed(1001, ""), 100, true, providers.Ambiguous, 10},
		// Ten full pages reaching the Total: the empty page that ends
		// them is read past the page cap.
		{"absent from ten pages", listed(950, ""), 100, true, providers.NotFound, 11},
		// Ours read, and nothing like it: it exists (a second order with
		// our number in the unread rest is not ruled out; the message says so).
		{"too long to read, ours on the first page", append(listed(0, "Mine"), listed(1001, "")...), 100, true, providers.OK, 10},
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

// A server that ignores the OrderNo filter and gives as Total the rows of
// the page (or those left from Offset: what it counts is not documented)
// would end a listing read as far as its Total at the first page, ours
// unread past it: never not_found then (a black-box run: 13 to 32 of 100
// to 200 orders created twice).
func TestLookupIgnoringTheFilterEndsOnlyAtAConfirmedEmptyPage(t *testing.T) {
	t.Parallel()
	for _, total := range []string{"page", ""} {
		l := listing{orders: append(listed(150, ""), listed(0, "Mine")...), page: 20, total: total}
		c, reqs := l.serve(t)
		r, err := c.Lookup(lookupCtx(t), order("Mine", ours))
		if err != nil || r.Status != providers.StatusPaid {
			t.Errorf("Total %q: Lookup = %+v, %v (%d calls); want ours found past the first page", total, r, err, len(reqs()))
		}
	}
	l := listing{orders: listed(150, ""), page: 20, total: "page"}
	c, _ := l.serve(t)
	if r, err := c.Lookup(lookupCtx(t), order("Mine", ours)); providers.CodeOf(err) == providers.NotFound || err == nil {
		t.Errorf("Total of the page, ours absent: Lookup = %+v, %v; want no not_found (the Total does not confirm the end)", r, err)
	}
}

// A server that ignores the filter, lists its rows in another order on
// every request, and writes a row's fields otherwise each time (ItemNum 2,
// "2", 2.0, "2.0"; ItemVNO left out or not; OrderNo in another case,
// padded, a number as a string): its pages overlap, so a listing read as
// far as its Total holds some orders twice and misses others. A row read
// again, however written, is a repeat (the listing cannot be read in
// full), never a new order counted toward the Total: ours, missed so, was
// taken for absent and created again (a black-box run: 4 of 60 orders
// made twice).
func TestLookupListingThatRewritesItsRowsOnEveryCall(t *testing.T) {
	t.Parallel()
	forms := []func(v int) any{
		func(v int) any { return v },
		func(v int) any { return fmt.Sprint(v) },
		func(v int) any { return json.Number(fmt.Sprintf("%d.0", v)) },
		func(v int) any { return fmt.Sprintf("%d.00", v) },
	}
	restyle := func(n int, rows []map[string]any) []map[string]any {
		out := make([]map[string]any, len(rows))
		for i := range rows {
			// Each request rotates the list a third of a page further
			// on: its pages overlap the last request's.
			src := rows[(i+7*(n-1))%len(rows)]
			row := map[string]any{}
			for k, v := range src {
				row[k] = v
			}
			row["ItemNum"] = forms[(n+i)%len(forms)](2)
			if n%2 == 0 {
				delete(row, "ItemVNO")
				no := row["OrderNo"].(string)
				switch n % 3 {
				case 0:
					row["OrderNo"] = strings.ToUpper(no)
				case 1:
					row["OrderNo"] = " " + no
				}
			}
			out[i] = row
		}
		return out
	}
	for _, no := range []string{"Mine", "Other0003", "Other0050"} {
		// (Ours first in the list, then among the others: where the
		// overlapping pages miss it.)
		rows := listed(60, "")
		mine := map[string]any{"CustomerId": "Customer7", "OrderNo": "Mine", "ItemId": "D-FireInsurance2020", "ItemVNO": "FireBusiness", "ItemNum": 2}
		at := 0
		for i, r := range rows {
			if r["OrderNo"] == no {
				at = i
			}
		}
		rows = append(rows[:at], append([]map[string]any{mine}, rows[at:]...)...)
		c, reqs := listing{orders: rows, page: 20, restyle: restyle}.serve(t)
		r, err := c.Lookup(lookupCtx(t), order("Mine", ours))
		if providers.CodeOf(err) == providers.NotFound || err == nil && r.Status != providers.StatusPaid {
			t.Errorf("ours at %d: Lookup = %+v, %v (%d calls); want ours found, or unavailable: never not found", at, r, err, len(reqs()))
		}
	}
}

// A server that ignores the filter, lists newest first, and answers from
// a fresh copy or from one a few seconds behind (a read replica), at
// random: a first page from the fresh copy and the rest from the stale
// one, which lacks the newest orders, skips as many rows with no repeat,
// and the rows read reach the stale copy's Total. Its Total moved between
// the pages: the listing cannot be shown complete (a black-box run: orders
// missed so and created again).
func TestLookupListingWhoseTotalMovesBetweenPages(t *testing.T) {
	t.Parallel()
	rows := listed(60, "")
	mine := map[string]any{"CustomerId": "Customer7", "OrderNo": "Mine", "ItemId": "D-FireInsurance2020", "ItemVNO": "FireBusiness", "ItemNum": 2}
	rows = append(rows[:25], append([]map[string]any{mine}, rows[25:]...)...)
	stale := func(n int, rows []map[string]any) []map[string]any {
		if n == 1 {
			return rows
		}
		return rows[10:] // the ten newest not there yet
	}
	c, reqs := listing{orders: rows, page: 20, restyle: stale}.serve(t)
	r, err := c.Lookup(lookupCtx(t), order("Mine", ours))
	if providers.CodeOf(err) != providers.Unavailable {
		t.Errorf("Lookup = %+v, %v (%d calls); want unavailable: never not found", r, err, len(reqs()))
	}
}

// A listing that stops short of its Total was not read in full (here a
// server that takes Offset for a page number, which the document does not
// rule out): it proves no absence.
func TestLookupListingShortOfItsTotal(t *testing.T) {
	t.Parallel()
	c, _ := listing{orders: listed(250, "Mine"), offset: "page0"}.serve(t) // ours is the last
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
// SDK's shape) is read; an answer without an Orders array proves no
// absence, unless it counts the list empty (Total 0) or holds nothing but
// the documented names (an empty list left out); a row without an OrderNo
// proves no absence either.
func TestLookupAnswerShapes(t *testing.T) {
	t.Parallel()
	row := map[string]any{"OrderNo": "S1", "CustomerId": "Customer7", "ItemId": "D-FireInsurance2020", "ItemVNO": "FireBusiness", "ItemNum": 2}
	for _, tt := range []struct {
		name     string
		response map[string]any
		want     providers.Code // Unknown: found
	}{
		{"under Data", map[string]any{"Data": map[string]any{"Orders": []any{row}, "Total": 1}}, providers.Unknown},
		// Nothing but RequestId: no list shown (see
		// TestLookupResponseWithoutAList).
		{"no Orders", map[string]any{}, providers.Unavailable},
		{"other names", map[string]any{"OrderList": []any{row}, "TotalCount": 1}, providers.Unavailable},
		{"no Orders, Total 0", map[string]any{"Total": 0}, providers.NotFound},
		{"Orders an object, Total 0", map[string]any{"Orders": map[string]any{}, "Total": 0}, providers.Unavailable},
		{"Orders a string, Total 0", map[string]any{"Orders": "", "Total": 0}, providers.Unavailable},
		{"no Orders under Data, Total 0", map[string]any{"Data": map[string]any{"Total": 0}}, providers.NotFound},
		{"no Orders, Total 1", map[string]any{"Total": 1}, providers.Unavailable},
		{"Orders null, no Total", map[string]any{"Orders": nil}, providers.Unavailable},
		{"Orders null, no Total, other key", map[string]any{"Orders": nil, "Status": "OK"}, providers.Unavailable},
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

// A create refused with a parameter error saying the order exists, is used
// or the request repeats (in English or Chinese, in the message or a
// sub-code), or a Nonce sub-code, may mean the order exists already: it is
// looked up. The same refusal of a listing stays what it
// was (an undocumented code, InvalidParameter.*, tells nothing), and other
// InvalidParameterValue refusals stay permanent.
func TestCreateRefusalsThatMayMeanItExists(t *testing.T) {
	t.Parallel()
	// clock: Unauthenticated for the worker's clock (providers.ErrClock).
	const clock = providers.Code(-1)
	check := func(t *testing.T, what string, err error, want providers.Code) {
		t.Helper()
		isClock := errors.Is(err, providers.ErrClock)
		if want == clock {
			if providers.CodeOf(err) != providers.Unauthenticated || !isClock {
				t.Errorf("%s refused = %v, want unauthenticated for the clock", what, err)
			}
			return
		}
		if providers.CodeOf(err) != want || isClock {
			t.Errorf("%s refused = %v, want %v", what, err, want)
		}
	}
	for _, tt := range []struct {
		code, msg    string
		create, list providers.Code
	}{
		{"InvalidParameterValue", "OrderNo 已存在", providers.Ambiguous, providers.InvalidArgument},
		{"InvalidParameterValue.NonceUsed", "used", providers.Ambiguous, providers.Unavailable},
		{"InvalidParameterValue", "订单号已存在", providers.Ambiguous, providers.InvalidArgument},
		{"InvalidParameterValue", "已存在", providers.Ambiguous, providers.InvalidArgument},
		{"InvalidParameterValue", "重复请求", providers.Ambiguous, providers.InvalidArgument},
		{"InvalidParameterValue.OrderExists", "order exists", providers.Ambiguous, providers.InvalidArgument},
		{"InvalidParameter.DuplicateOrder", "x", providers.Ambiguous, providers.Unavailable},
		{"InvalidParameterValue", "The order already exists", providers.Ambiguous, providers.InvalidArgument},
		{"InvalidParameterValue", "Duplicate request", providers.Ambiguous, providers.InvalidArgument},
		{"InvalidParameterValue", "ItemNum 非法", providers.InvalidArgument, providers.InvalidArgument},
		{"InvalidParameterValue", "Signature 无效", providers.Unauthenticated, providers.Unauthenticated},
		// A refusal that echoes the signed string is read without it:
		// its Nonce and Timestamp pairs are not what it refuses.
		{"InvalidParameterValue", "Signature 无效 (Action=ServiceCreateOrder&AppKey=k&Nonce=17&OrderNo=o1&RequestId=r&Timestamp=1599468019)", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue", "signature mismatch, string to sign: Action=ServiceDescribeOrders&AppKey=k&Nonce=17&Timestamp=1599468019", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue", "Nonce 重复: Action=ServiceCreateOrder&Nonce=17&Timestamp=1599468019", providers.Ambiguous, providers.Unavailable},
		// A request refused as a replay, in words the document does not
		// give: this request reached the service before, and that copy
		// may have made the order.
		{"InvalidParameterValue", "请求重放", providers.Ambiguous, providers.Unavailable},
		{"InvalidParameterValue", "replay attack detected", providers.Ambiguous, providers.Unavailable},
		// A clock refusal that speaks of replays stays the clock's.
		{"InvalidParameterValue", "Timestamp expired (anti-replay window 300s)", clock, clock},
		{"InvalidParameterValue", "Timestamp 已过期 (Action=ServiceCreateOrder&Nonce=17&Timestamp=1599468019)", clock, clock},
		{"InvalidParameterValue", "Timestamp 已过期", clock, clock},
		// Naming the OrderNo, or saying that something does not exist,
		// refuses a value: looked up, the listing would refuse it again.
		{"InvalidParameterValue", "OrderNo 长度超限", providers.InvalidArgument, providers.InvalidArgument},
		{"InvalidParameterValue", "invalid OrderNo", providers.InvalidArgument, providers.InvalidArgument},
		{"InvalidParameterValue.OrderNoInvalid", "x", providers.InvalidArgument, providers.InvalidArgument},
		{"InvalidParameterValue", "CustomerId does not exist", providers.InvalidArgument, providers.InvalidArgument},
		{"InvalidParameterValue", "CustomerId 不存在", providers.InvalidArgument, providers.InvalidArgument},
		{"InvalidParameterValue.OrderNoUsed", "x", providers.Ambiguous, providers.InvalidArgument},
		// A bad signature or AppKey in other words: the credentials.
		{"InvalidParameterValue.SignatureFailure", "x", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue", "invalid signature", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue", "签名无效", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue", "AppKey 无效", providers.Unauthenticated, providers.Unauthenticated},
		// Clock skew in other words: the worker's clock, which the
		// order waits for (clock: Unauthenticated, cause ErrClock).
		{"InvalidParameterValue", "时间戳已过期", clock, clock},
		{"InvalidParameterValue", "timestamp expired", clock, clock},
		{"InvalidParameterValue.AppKeyInvalid", "x", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue", "AppKey 不存在", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue", "unknown AppKey", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue.AppKeyNotFound", "x", providers.Unauthenticated, providers.Unauthenticated},
		// A key no longer in force is the operator's to fix, as a wrong one.
		{"InvalidParameterValue", "AppKey 已过期", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue", "AppKey 已被禁用", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue", "AppKey disabled", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue.AppKeyExpired", "x", providers.Unauthenticated, providers.Unauthenticated},
		// Any AppKey refusal (its licences used up, say) is the operator's
		// to fix, and came before the service acted: the order waits.
		{"InvalidParameterValue", "AppKey 授权数不足", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue", "AppKey license quota exceeded", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue.AppKeyQuotaExceeded", "x", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue.AppKeyQuota", "InvalidParameterValue: AppKey 授权数不足", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue", "AppKey 不正确", providers.Unauthenticated, providers.Unauthenticated},
		{"InvalidParameterValue", "AppKey unauthorized", providers.Unauthenticated, providers.Unauthenticated},
		// A clock refusal naming the AppKey is a clock refusal.
		{"InvalidParameterValue", "Timestamp expired for AppKey ak-1", clock, clock},
		// Saying the order exists or repeats wins over anything else it
		// names: such a refusal may mean the order exists.
		{"InvalidParameterValue", "OrderNo already exists for this AppKey", providers.Ambiguous, providers.Unauthenticated},
		{"InvalidParameterValue", "请求重复: Timestamp 已使用", providers.Ambiguous, providers.Unavailable},
		{"InvalidParameterValue", "签名已使用", providers.Ambiguous, providers.Unauthenticated},
		{"InvalidParameterValue", "订单号已被使用", providers.Ambiguous, providers.InvalidArgument},
		{"InvalidParameterValue", "订单号冲突", providers.Ambiguous, providers.InvalidArgument},
		{"InvalidParameterValue", "ItemId already offline", providers.Ambiguous, providers.InvalidArgument},
	} {
		t.Run(tt.code+" "+tt.msg, func(t *testing.T) {
			t.Parallel()
			body, _ := json.Marshal(map[string]any{"Response": map[string]any{"RequestId": "r",
				"Error": map[string]any{"Code": tt.code, "Message": tt.msg}}})
			c := bodyServer(t, http.StatusOK, string(body))
			_, err := c.Submit(lookupCtx(t), order("E1", ours))
			check(t, "Submit", err, tt.create)
			// Saying the number is used (not a used nonce): the order
			// may exist whatever a lookup finds, and the server works.
			// (Not one that names something else as used.)
			value := strings.HasPrefix(tt.code, "InvalidParameterValue")
			nonce := strings.Contains(strings.ToLower(tt.code+tt.msg), "nonce") || strings.Contains(tt.msg, "replay") || strings.Contains(tt.msg, "重放")
			other := tt.msg == "签名已使用" || tt.msg == "ItemId already offline"
			if want := tt.create == providers.Ambiguous && value && !nonce && !other; providers.SaysExists(err) != want || want && !errors.Is(err, providers.ErrNoNews) {
				t.Errorf("Submit = %v: says the order exists %v, want %v (and no news of the provider's health)", err, providers.SaysExists(err), want)
			}
			_, err = c.Lookup(lookupCtx(t), order("E1", ours))
			if providers.SaysExists(err) {
				t.Errorf("Lookup = %v: says the order exists", err)
			}
			check(t, "Lookup", err, tt.list)
		})
	}
}

// Only the codes the document lists have a meaning of their own. Every
// other code (Tencent Cloud's common ones included: LimitExceeded may be a
// quota, not throttling) tells nothing of what a create did, so the order
// is looked up, and a listing refused with one proves nothing either.
func TestUndocumentedCodes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		code         string
		create, list providers.Code
	}{
		{"LimitExceeded", providers.Ambiguous, providers.Unavailable},
		{"RequestLimitExceededX", providers.Ambiguous, providers.Unavailable},
		// A listing refused for its credentials created nothing either
		// way: the order waits for the configuration.
		{"AuthFailure", providers.Ambiguous, providers.Unauthenticated},
		{"AuthFailure.SignatureFailure", providers.Ambiguous, providers.Unauthenticated},
		{"AuthFailureX", providers.Ambiguous, providers.Unavailable},
		{"UnauthorizedOperation", providers.Ambiguous, providers.Unavailable},
		{"UnauthorizedOperation.NoPermission", providers.Ambiguous, providers.Unavailable},
		{"InvalidParameter", providers.Ambiguous, providers.Unavailable},
		{"InvalidParameter.Limit", providers.Ambiguous, providers.Unavailable},
		{"ResourceNotFound", providers.Ambiguous, providers.Unavailable},
		{"InvalidAction.Sub", providers.Ambiguous, providers.Unavailable},
		// The documented ones.
		{"InternalError", providers.Ambiguous, providers.Unavailable},
		{"ErrorRequiredParamNotFound", providers.InvalidArgument, providers.InvalidArgument},
		{"InvalidAction", providers.InvalidArgument, providers.InvalidArgument},
		{"InvalidParameterValue", providers.InvalidArgument, providers.InvalidArgument},
		{"InvalidParameterValue.InvalidJSON", providers.InvalidArgument, providers.InvalidArgument},
	} {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			c := bodyServer(t, http.StatusOK, `{"Response":{"Error":{"Code":"`+tt.code+`","Message":"x"},"RequestId":"r"}}`)
			if _, err := c.Submit(lookupCtx(t), order("U1", ours)); providers.CodeOf(err) != tt.create {
				t.Errorf("Submit refused %s = %v, want %v", tt.code, err, tt.create)
			}
			if _, err := c.Lookup(lookupCtx(t), order("U1", ours)); providers.CodeOf(err) != tt.list {
				t.Errorf("Lookup refused %s = %v, want %v", tt.code, err, tt.list)
			}
		})
	}
}

// HTTP 429, and Tencent Cloud's common throttle code RequestLimitExceeded
// (with a sub-code or none) below 500, are throttles: a create answered so
// may still have made the order (Ambiguous, looked up), but the service
// answered (providers.ErrThrottled: no failure spent, no news for the
// circuit breaker, and the worker's rate is cut); a listing is RateLimited.
// LimitExceeded (maybe a quota), and a throttle code at 5xx, are not.
func TestThrottleAnswers(t *testing.T) {
	t.Parallel()
	wrapped := func(code string) string {
		return `{"Response":{"Error":{"Code":"` + code + `","Message":"请求频率超限"},"RequestId":"r"}}`
	}
	for _, tt := range []struct {
		name      string
		status    int
		body      string
		throttled bool
	}{
		{"RequestLimitExceeded", 200, wrapped("RequestLimitExceeded"), true},
		{"RequestLimitExceeded.UinLimitExceeded", 200, wrapped("RequestLimitExceeded.UinLimitExceeded"), true},
		{"RequestLimitExceeded at 400", 400, wrapped("RequestLimitExceeded"), true},
		{"429 empty", 429, ``, true},
		{"429 InternalError", 429, wrapped("InternalError"), true},
		{"429 an undocumented code", 429, wrapped("LimitExceeded"), true},
		{"LimitExceeded", 200, wrapped("LimitExceeded"), false},
		{"RequestLimitExceeded at 503", 503, wrapped("RequestLimitExceeded"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "3")
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Submit(lookupCtx(t), order("T1", ours))
			var pe *providers.Error
			if providers.CodeOf(err) != providers.Ambiguous || providers.Throttled(err) != tt.throttled || !errors.As(err, &pe) {
				t.Fatalf("Submit = %v (throttled %v), want ambiguous, throttled %v", err, providers.Throttled(err), tt.throttled)
			}
			if tt.throttled && pe.RetryAfter != 3*time.Second {
				t.Errorf("Submit's Retry-After = %v, want 3s", pe.RetryAfter)
			}
			_, err = c.Lookup(lookupCtx(t), order("T1", ours))
			want := providers.RateLimited
			if !tt.throttled {
				want = providers.Unavailable
			}
			if providers.CodeOf(err) != want {
				t.Errorf("Lookup = %v, want %v", err, want)
			}
		})
	}
}

// A code of the wrapper that means something of its own keeps it at HTTP
// 429: a create refused as a used number may exist whatever the lookups
// find, a bad signature waits for the credentials, a bad parameter is
// refused; none is read as a throttle.
func TestListedCodesKeepTheirMeaningAt429(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, code, msg string
		want            providers.Code
		says            bool
	}{
		{"used number", "InvalidParameterValue", "OrderNo already exists", providers.Ambiguous, true},
		{"bad signature", "InvalidParameterValue", "Signature 无效", providers.Unauthenticated, false},
		{"clock", "InvalidParameterValue", "Timestamp expired", providers.Unauthenticated, false},
		{"missing parameter", "ErrorRequiredParamNotFound", "x", providers.InvalidArgument, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := bodyServer(t, http.StatusTooManyRequests, `{"Response":{"Error":{"Code":"`+tt.code+`","Message":"`+tt.msg+`"},"RequestId":"r"}}`)
			_, err := c.Submit(lookupCtx(t), order("L1", ours))
			if providers.CodeOf(err) != tt.want || providers.SaysExists(err) != tt.says || providers.Throttled(err) {
				t.Errorf("Submit = %v (says exists %v, throttled %v); want %v, says exists %v, not throttled",
					err, providers.SaysExists(err), providers.Throttled(err), tt.want, tt.says)
			}
		})
	}
}

// bodyServer answers every request with status and body.
func bodyServer(t *testing.T, status int, body string) *tencent.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// oursListed is the order ours creates, as ServiceGetOrderList lists it.
const oursListed = `{"CustomerId":"Customer7","OrderNo":"Mine","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":2}`

// oursRow is oursListed as a listing server's row.
func oursRow() map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(oursListed), &m); err != nil {
		panic(err)
	}
	return m
}

// Total is a count: null is no Total, a quoted count is read, and anything
// else (negative, fractional, other text) makes the answer unreadable,
// never absence. Orders null is no Orders, and an answer without Orders
// proves nothing but on a first page where it counts the list empty.
func TestLookupReadsTotal(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, response string
		want           providers.Code // OK: found
	}{
		{"Total null, no Orders", `"Total":null`, providers.Unavailable},
		{"Orders null, no Total", `"Orders":null`, providers.Unavailable},
		{"Orders null, Total 0", `"Orders":null,"Total":0`, providers.NotFound},
		{"no Orders, Total 0", `"Total":0`, providers.NotFound},
		{"Total as text 0", `"Orders":[],"Total":"0"`, providers.NotFound},
		{"Total as text 1", `"Orders":[` + oursListed + `],"Total":"1"`, providers.OK},
		// No Total: the next page is asked for, and it repeats this one.
		// Ours was read, and nothing like it: found (the unread rest
		// could only hold a second order with our number).
		{"Total null, every page ours", `"Orders":[` + oursListed + `],"Total":null`, providers.OK},
		{"Total negative", `"Orders":[],"Total":-1`, providers.Unavailable},
		{"Total negative text", `"Orders":[],"Total":"-1"`, providers.Unavailable},
		{"Total fractional", `"Orders":[],"Total":0.5`, providers.Unavailable},
		{"Total other text", `"Orders":[],"Total":"none"`, providers.Unavailable},
		{"Total spaced text", `"Orders":[],"Total":" 0"`, providers.Unavailable},
		{"Total a boolean", `"Orders":[],"Total":false`, providers.Unavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := bodyServer(t, http.StatusOK, `{"Response":{"RequestId":"r",`+tt.response+`}}`)
			r, err := c.Lookup(lookupCtx(t), order("Mine", ours))
			if got := providers.CodeOf(err); got != tt.want || (err == nil && r.Status != providers.StatusPaid) {
				t.Errorf("Lookup = %+v, %v; want %v", r, err, tt.want)
			}
		})
	}
}

// Where the document leaves paging open (what Offset counts and where it
// starts, the largest Limit, what Total counts), a listing proves absence
// only when it was surely read in full.
func TestLookupPagingReadings(t *testing.T) {
	t.Parallel()
	var mine map[string]any
	if err := json.Unmarshal([]byte(oursListed), &mine); err != nil {
		t.Fatal(err)
	}
	justOurs := []map[string]any{mine}
	other := map[string]any{}
	for k, v := range mine {
		other[k] = v
	}
	other["ItemNum"] = 3 // our OrderNo with other params: another system's order
	tests := []struct {
		name  string
		l     listing
		want  providers.Code // OK: found
		calls int            // 0: not checked
	}{
		{"filtered", listing{orders: append(listed(3, ""), mine), filter: true}, providers.OK, 1},
		{"filtered, no Total", listing{orders: append(listed(3, ""), mine), filter: true, total: "none"}, providers.OK, 2},
		{"filtered, absent", listing{orders: listed(3, ""), filter: true}, providers.NotFound, 1},
		{"Limit at most 50", listing{orders: justOurs, filter: true, maxLimit: 50}, providers.OK, 2},
		{"Limit at most 50, absent", listing{orders: listed(3, ""), filter: true, maxLimit: 50}, providers.NotFound, 2},
		{"Limit at most 50, pages of 40", listing{orders: listed(90, "Mine"), maxLimit: 50, page: 40}, providers.OK, 5},
		{"no page without a Limit, no Total", listing{orders: justOurs, filter: true, total: "none", bareEmpty: true}, providers.OK, 2},
		// Every Limit refused: an empty page without a Total ends nothing,
		// but ours read before it is found.
		{"every Limit refused, ours, no Total", listing{orders: justOurs, filter: true, maxLimit: 5, total: "none"}, providers.OK, 6},
		{"every Limit refused, ours on the second page", listing{orders: listed(150, "Mine"), maxLimit: 5}, providers.OK, 7},
		{"every Limit refused, absent, Total 0", listing{orders: listed(3, ""), filter: true, maxLimit: 5}, providers.NotFound, 5},
		{"every Limit refused, absent, no Total", listing{orders: listed(150, ""), maxLimit: 5, total: "none"}, providers.Unavailable, 7},
		{"Offset a page from 1, no Total (ours read, then a page served again)", listing{orders: justOurs, filter: true, offset: "page1", total: "none"}, providers.OK, 2},
		{"Offset a page from 1", listing{orders: justOurs, filter: true, offset: "page1"}, providers.OK, 1},
		{"Offset a page from 1, absent, no Total", listing{orders: listed(3, ""), filter: true, offset: "page1", total: "none"}, providers.NotFound, 1},
		{"Offset a page from 0, short of Total", listing{orders: listed(150, "Mine"), offset: "page0"}, providers.Unavailable, 2},
		{"Offset ignored, ours past the first page", listing{orders: listed(150, "Mine"), offset: "ignore"}, providers.Unavailable, 2},
		{"Offset ignored, no Total", listing{orders: listed(150, "Mine"), offset: "ignore", total: "none"}, providers.Unavailable, 2},
		{"Offset ignored, filtered, no Total (ours read, then a page served again)", listing{orders: justOurs, filter: true, offset: "ignore", total: "none"}, providers.OK, 2},
		{"an order listed between pages", listing{orders: listed(150, ""), later: justOurs}, providers.Unavailable, 2},
		{"Total null, ours on the second page", listing{orders: listed(100, "Mine"), total: "null"}, providers.OK, 3},
		// A listing that ignores the OrderNo filter lists every order: an
		// empty page ends it only under a Total that counts what was
		// read (its Offset may be read as a page number, which ends it
		// early with an empty page), and only an empty page does (a
		// Total may count a page's rows, which the rows read reach at the
		// first page).
		{"Total null, absent", listing{orders: listed(150, ""), total: "null"}, providers.Unavailable, 3},
		{"filter ignored, Offset a page from 0, no Total, absent", listing{orders: listed(150, ""), offset: "page0", total: "none"}, providers.Unavailable, 2},
		{"filter ignored, Total counts it, absent", listing{orders: listed(150, "")}, providers.NotFound, 3},
		{"Total as text, ours on the third page", listing{orders: listed(250, "Mine"), total: "text"}, providers.OK, 4},
		{"Total counts our OrderNo only, ours on the second page", listing{orders: listed(150, "Mine"), total: "ours"}, providers.OK, 3},
		{"Total counts our OrderNo only, absent", listing{orders: listed(150, ""), total: "ours"}, providers.Unavailable, 3},
		// Rows sharing our OrderNo on different pages are different rows,
		// not a page served again: left to a person, as on one page.
		{"our OrderNo twice, a page each", listing{orders: []map[string]any{mine, other}, filter: true, maxLimit: 1, page: 1}, providers.Ambiguous, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, reqs := tt.l.serve(t)
			r, err := c.Lookup(lookupCtx(t), order("Mine", ours))
			if got := providers.CodeOf(err); got != tt.want || (err == nil && r.Status != providers.StatusPaid) {
				t.Errorf("Lookup = %+v, %v; want %v", r, err, tt.want)
			}
			if n := len(reqs()); tt.calls != 0 && n != tt.calls {
				t.Errorf("%d ServiceGetOrderList calls, want %d", n, tt.calls)
			}
		})
	}
}

// The first request names no Offset (the server's own start); later ones
// send Offset = the orders read so far. Each one carries Limit 100 until
// a listing is refused InvalidParameterValue*, whatever the refusal names:
// that request is sent again with Limit 50, then 20, then 10, then
// without Limit, and the later ones keep the Limit last sent. Every
// request filters by OrderNo alone.
func TestLookupRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		l       listing
		offsets []any // nil: no Offset
		limits  []any // nil: no Limit
		want    providers.Code
	}{
		{"pages of 60", listing{orders: listed(150, "Mine"), page: 60},
			[]any{nil, json.Number("60"), json.Number("120"), json.Number("151")},
			[]any{json.Number("100"), json.Number("100"), json.Number("100"), json.Number("100")}, providers.OK},
		{"Limit at most 50, pages of 60", listing{orders: listed(150, "Mine"), page: 60, maxLimit: 50},
			[]any{nil, nil, json.Number("50"), json.Number("100"), json.Number("150"), json.Number("151")},
			[]any{json.Number("100"), json.Number("50"), json.Number("50"), json.Number("50"), json.Number("50"), json.Number("50")}, providers.OK},
		// Tencent Cloud's common code for a parameter out of range.
		{"Limit at most 50 refused InvalidParameter", listing{orders: listed(150, "Mine"), page: 60, maxLimit: 50, refusalCode: "InvalidParameter", refusal: "Limit 取值范围为 1-50"},
			[]any{nil, nil, json.Number("50"), json.Number("100"), json.Number("150"), json.Number("151")},
			[]any{json.Number("100"), json.Number("50"), json.Number("50"), json.Number("50"), json.Number("50"), json.Number("50")}, providers.OK},
		{"Limit refused, unnamed", listing{orders: listed(3, ""), filter: true, maxLimit: 50, refusal: "参数非法"},
			[]any{nil, nil}, []any{json.Number("100"), json.Number("50")}, providers.NotFound},
		{"every request refused", listing{orders: listed(3, ""), refuseAll: true, refusal: "参数非法"},
			[]any{nil, nil, nil, nil, nil}, []any{json.Number("100"), json.Number("50"), json.Number("20"), json.Number("10"), nil}, providers.InvalidArgument},
		// A server that caps Limit and lists nothing without one (its
		// default page size 0, no Total): the Limit is stepped down rather
		// than dropped, and an empty page to a request without Limit, with
		// no Total, never reads as absence.
		{"Limit at most 50, no page without a Limit, no Total", listing{orders: []map[string]any{oursRow()}, filter: true, maxLimit: 50, bareEmpty: true, total: "none"},
			[]any{nil, nil, json.Number("1")}, []any{json.Number("100"), json.Number("50"), json.Number("50")}, providers.OK},
		{"Limit at most 20, pages of 20", listing{orders: listed(30, "Mine"), maxLimit: 20, page: 20},
			[]any{nil, nil, nil, json.Number("20"), json.Number("31")}, []any{json.Number("100"), json.Number("50"), json.Number("20"), json.Number("20"), json.Number("20")}, providers.OK},
		{"Limit at most 5, no page without a Limit, no Total", listing{orders: []map[string]any{oursRow()}, filter: true, maxLimit: 5, bareEmpty: true, total: "none"},
			[]any{nil, nil, nil, nil, nil}, []any{json.Number("100"), json.Number("50"), json.Number("20"), json.Number("10"), nil}, providers.Unavailable},
		{"Limit at most 5, absent, no Total", listing{orders: listed(3, ""), filter: true, maxLimit: 5, total: "none"},
			[]any{nil, nil, nil, nil, nil}, []any{json.Number("100"), json.Number("50"), json.Number("20"), json.Number("10"), nil}, providers.Unavailable},
		{"Limit at most 5, absent, Total 0", listing{orders: listed(3, ""), filter: true, maxLimit: 5},
			[]any{nil, nil, nil, nil, nil}, []any{json.Number("100"), json.Number("50"), json.Number("20"), json.Number("10"), nil}, providers.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, reqs := tt.l.serve(t)
			r, err := c.Lookup(lookupCtx(t), order("Mine", ours))
			if got := providers.CodeOf(err); got != tt.want || (err == nil && r.Status != providers.StatusPaid) {
				t.Errorf("Lookup = %+v, %v; want %v", r, err, tt.want)
			}
			got := reqs()
			if len(got) != len(tt.offsets) {
				t.Fatalf("%d requests, want %d: %v", len(got), len(tt.offsets), got)
			}
			for i, q := range got {
				if q["Offset"] != tt.offsets[i] || q["Limit"] != tt.limits[i] {
					t.Errorf("request %d: Offset %v Limit %v, want %v and %v", i+1, q["Offset"], q["Limit"], tt.offsets[i], tt.limits[i])
				}
				if q["OrderNo"] != "Mine" || q["CustomerId"] != nil {
					t.Errorf("request %d: OrderNo %v, CustomerId %v", i+1, q["OrderNo"], q["CustomerId"])
				}
			}
		})
	}
}

// Answers outside the documented {"Response": …} wrapper, or at a status
// other than 2xx. The document defines no HTTP status, and shows an error
// code only in the wrapper: on a create, an answer that is not 2xx, or
// carries its code outside the wrapper (or the SDK's data), may come after
// the order was created, so it is looked up (a documented code in the
// wrapper keeps its meaning at any status). A listing read outside the
// wrapper is read (a top-level object carrying Orders or Data); a lookup
// answered at another status is never not found.
func TestAnswersWithoutTheWrapper(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		status int
		body   string
		create bool
		want   providers.Code // OK: created or found
	}{
		{"400 InternalError, create", 400, `{"Error":{"Code":"InternalError","Message":"内部错误"},"RequestId":"r"}`, true, providers.Ambiguous},
		{"400 InternalError, list", 400, `{"Error":{"Code":"InternalError","Message":"内部错误"},"RequestId":"r"}`, false, providers.Unavailable},
		{"bad signature, create", 200, `{"Error":{"Code":"InvalidParameterValue","Message":"Signature 无效"},"RequestId":"r"}`, true, providers.Ambiguous},
		{"bad signature in the wrapper, create", 200, `{"Response":{"Error":{"Code":"InvalidParameterValue","Message":"Signature 无效"},"RequestId":"r"}}`, true, providers.Unauthenticated},
		{"bad signature under data, create", 200, `{"code":0,"data":{"Error":{"Code":"InvalidParameterValue","Message":"Signature 无效"},"RequestId":"r"}}`, true, providers.Unauthenticated},
		{"400 bad value, create", 400, `{"Error":{"Code":"InvalidParameterValue","Message":"ItemNum 非法"},"RequestId":"r"}`, true, providers.Ambiguous},
		{"400 bad value in the wrapper, create", 400, `{"Response":{"Error":{"Code":"InvalidParameterValue","Message":"ItemNum 非法"},"RequestId":"r"}}`, true, providers.InvalidArgument},
		// A 5xx may come after the order was created, whatever its code.
		{"500 bad value in the wrapper, create", 500, `{"Response":{"Error":{"Code":"InvalidParameterValue","Message":"ItemNum 非法"},"RequestId":"r"}}`, true, providers.Ambiguous},
		{"502 bad signature in the wrapper, create", 502, `{"Response":{"Error":{"Code":"InvalidParameterValue","Message":"Signature 无效"},"RequestId":"r"}}`, true, providers.Ambiguous},
		{"503 missing param under data, create", 503, `{"code":0,"data":{"Error":{"Code":"ErrorRequiredParamNotFound","Message":"x"},"RequestId":"r"}}`, true, providers.Ambiguous},
		{"500 bad value in the wrapper, list", 500, `{"Response":{"Error":{"Code":"InvalidParameterValue","Message":"ItemNum 非法"},"RequestId":"r"}}`, false, providers.Unavailable},
		{"401 AuthFailure in the wrapper, list", 401, `{"Response":{"Error":{"Code":"AuthFailure.SecretIdNotFound","Message":"x"},"RequestId":"r"}}`, false, providers.Unauthenticated},
		{"200 bad signature in the wrapper, list", 200, `{"Response":{"Error":{"Code":"InvalidParameterValue","Message":"Signature 无效"},"RequestId":"r"}}`, false, providers.Unauthenticated},
		{"429 throttled", 429, `{"Error":{"Code":"RequestLimitExceeded","Message":"x"}}`, true, providers.Ambiguous},
		{"429 throttled, list", 429, `{"Error":{"Code":"RequestLimitExceeded","Message":"x"}}`, false, providers.RateLimited},
		{"429 InternalError, create", 429, `{"Response":{"Error":{"Code":"InternalError","Message":"x"},"RequestId":"r"}}`, true, providers.Ambiguous},
		{"429 empty, create", 429, ``, true, providers.Ambiguous},
		{"list, empty", 200, `{"Orders":[],"Total":0,"RequestId":"r"}`, false, providers.NotFound},
		{"list, Total 0 only", 200, `{"Total":0,"RequestId":"r"}`, false, providers.NotFound},
		{"list under Data", 200, `{"RequestId":"r","Data":{"Orders":[` + oursListed + `],"Total":1}}`, false, providers.OK},
		{"list, nothing", 200, `{"RequestId":"r"}`, false, providers.Unavailable},
		{"list, Error null", 200, `{"RequestId":"r","Error":null}`, false, providers.Unavailable},
		{"create, Error null", 200, `{"RequestId":"r","Error":null}`, true, providers.Ambiguous},
		{"409 empty, create", 409, ``, true, providers.Ambiguous},
		{"409 empty, list", 409, ``, false, providers.Unavailable},
		{"409 no code, create", 409, `{"Response":{"RequestId":"r"}}`, true, providers.Ambiguous},
		{"401 empty, create", 401, ``, true, providers.Ambiguous},
		{"401 empty, list", 401, ``, false, providers.Unauthenticated},
		{"403 page, create", 403, `<html>forbidden</html>`, true, providers.Ambiguous},
		{"403 no code, create", 403, `{"Response":{"RequestId":"r"}}`, true, providers.Ambiguous},
		{"403 UnauthorizedOperation, create", 403, `{"Error":{"Code":"UnauthorizedOperation","Message":"x"}}`, true, providers.Ambiguous},
		{"400 page, create", 400, `<html>bad request</html>`, true, providers.Ambiguous},
		{"404 empty, create", 404, ``, true, providers.Ambiguous},
		{"400 empty list, list", 400, `{"Response":{"RequestId":"r","Orders":[],"Total":0}}`, false, providers.InvalidArgument},
		{"300 Status OK, create", 300, `{"Response":{"RequestId":"r","Status":"OK"}}`, true, providers.Ambiguous},
		{"300 empty list, list", 300, `{"Response":{"RequestId":"r","Orders":[],"Total":0}}`, false, providers.Unavailable},
		{"trailing data, create", 200, `{"Response":{"RequestId":"r","Status":"OK"}} {}`, true, providers.Ambiguous},
		{"trailing data, list", 200, `{"Response":{"RequestId":"r","Orders":[],"Total":0}}{"Response":{}}`, false, providers.Unavailable},
		{"a trailing newline, create", 200, "{\"Response\":{\"RequestId\":\"r\",\"Status\":\"OK\"}}\n", true, providers.OK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := bodyServer(t, tt.status, tt.body)
			var r providers.Result
			var err error
			if tt.create {
				r, err = c.Submit(lookupCtx(t), order("Mine", ours))
			} else {
				r, err = c.Lookup(lookupCtx(t), order("Mine", ours))
			}
			if got := providers.CodeOf(err); got != tt.want || (err == nil && r.Status != providers.StatusPaid) {
				t.Errorf("answer %d %s = %+v, %v; want %v", tt.status, tt.body, r, err, tt.want)
			}
		})
	}
}

// No credential, no phone number and no CustomerId (the vendor's user id,
// perhaps a login name) the server echoes reaches an error's text, in any
// envelope, on a create or a listing.
func TestErrorTextHidesSecretsAndPhones(t *testing.T) {
	t.Parallel()
	echo := "AppSecret " + appSecret + " AppKey " + appKey + " 手机号 13900000000 / +86 139 0000 0000 用户 Customer7"
	for _, tt := range []struct {
		name   string
		status int
		body   string
	}{
		{"Response", 200, `{"Response":{"RequestId":"r","Error":{"Code":"InvalidParameterValue","Message":"` + echo + `"}}}`},
		{"sub-code", 200, `{"Response":{"RequestId":"r","Error":{"Code":"InvalidParameterValue.` + appSecret + `","Message":"x"}}}`},
		{"CustomerId sub-code", 200, `{"Response":{"RequestId":"r","Error":{"Code":"InvalidParameterValue.Customer7","Message":"x"}}}`},
		{"no wrapper", 400, `{"Error":{"Code":"InternalError","Message":"` + echo + `"},"RequestId":"r"}`},
		{"code and msg", 200, `{"code":7,"msg":"` + echo + `"}`},
		{"unreadable", 409, echo},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := bodyServer(t, tt.status, tt.body)
			_, serr := c.Submit(lookupCtx(t), order("Mine", ours))
			_, lerr := c.Lookup(lookupCtx(t), order("Mine", ours))
			for _, err := range []error{serr, lerr} {
				if err == nil {
					t.Fatal("no error")
				}
				for _, leak := range []string{appSecret, appKey, "13900000000", "139 0000 0000", "Customer7"} {
					if strings.Contains(err.Error(), leak) {
						t.Errorf("error text %q holds %q", err, leak)
					}
				}
			}
		})
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

// A later page that shows no Orders array proves nothing, whatever its
// Total: only a listing's first page may show an empty list as a Total of
// 0 without the array (an encoder leaving out an empty one). Here the
// first page lists two orders of other numbers (the filter not applied)
// under a Total of 3, and the next answers {"Total":0}.
func TestLaterPageWithoutOrdersProvesNothing(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q map[string]any
		_ = json.NewDecoder(r.Body).Decode(&q)
		resp := `{"RequestId":"r","Total":3,"Orders":[{"CustomerId":"Customer7","OrderNo":"A"},{"CustomerId":"Customer7","OrderNo":"B"}]}`
		if _, ok := q["Offset"]; ok {
			resp = `{"RequestId":"r","Total":0}`
		}
		_, _ = w.Write([]byte(`{"Response":` + resp + `}`))
	}))
	t.Cleanup(srv.Close)
	c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.Lookup(lookupCtx(t), order("Mine", ours)); providers.CodeOf(err) != providers.Unavailable {
		t.Errorf("Lookup = %+v, %v; want unavailable, never not found", r, err)
	}
}

// A 2xx answer without Error that shows no list (Orders null or left out)
// is an empty first page only when it says so with a Total of 0. One that
// names neither ({"RequestId": "r"} alone, a degraded reply from a server
// that may hold the order) shows nothing: taken for an empty list, the
// order would be created again. Any other key, a Total above 0, another
// shape, a status other than 2xx, or a later page makes it no list either:
// never not found.
func TestLookupResponseWithoutAList(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, body string
		status     int
		want       providers.Code
	}{
		{"RequestId only", `{"Response":{"RequestId":"r"}}`, 200, providers.Unavailable},
		{"Orders null, no RequestId", `{"Response":{"Orders":null}}`, 200, providers.Unavailable},
		{"empty", `{"Response":{}}`, 200, providers.Unavailable},
		{"RequestId empty", `{"Response":{"RequestId":""}}`, 200, providers.Unavailable},
		{"Orders null", `{"Response":{"RequestId":"r","Orders":null}}`, 200, providers.Unavailable},
		{"Orders and Total null", `{"Response":{"RequestId":"r","Orders":null,"Total":null}}`, 200, providers.Unavailable},
		{"Total null", `{"Response":{"RequestId":"r","Total":null}}`, 200, providers.Unavailable},
		{"keys in other case", `{"Response":{"requestId":"r","orders":null}}`, 200, providers.Unavailable},
		{"Orders null, orders listed", `{"Response":{"RequestId":"r","Orders":null,"orders":[{"CustomerId":"Customer7","OrderNo":"Mine"}]}}`, 200, providers.Unavailable},
		{"Total null, TOTAL 1", `{"Response":{"RequestId":"r","Total":null,"TOTAL":1}}`, 200, providers.Unavailable},
		{"Orders null, orders listed, Total 0", `{"Response":{"RequestId":"r","Orders":null,"orders":[{"CustomerId":"Customer7","OrderNo":"Mine"}],"Total":0}}`, 200, providers.Unavailable},
		{"Total 0, TOTAL 1", `{"Response":{"RequestId":"r","Total":0,"TOTAL":1}}`, 200, providers.Unavailable},
		{"Total 1", `{"Response":{"RequestId":"r","Total":1}}`, 200, providers.Unavailable},
		{"Orders null, Total 1", `{"Response":{"RequestId":"r","Orders":null,"Total":1}}`, 200, providers.Unavailable},
		{"Orders empty, Total 1", `{"Response":{"RequestId":"r","Orders":[],"Total":1}}`, 200, providers.Unavailable},
		{"Status OK", `{"Response":{"RequestId":"r","Status":"OK"}}`, 200, providers.Unavailable},
		{"Error null", `{"Response":{"RequestId":"r","Error":null}}`, 200, providers.Unavailable},
		{"Data null", `{"Response":{"RequestId":"r","Data":null}}`, 200, providers.Unavailable},
		{"Data empty", `{"Response":{"RequestId":"r","Data":{}}}`, 200, providers.Unavailable},
		{"other names", `{"Response":{"RequestId":"r","OrderList":null}}`, 200, providers.Unavailable},
		{"the SDK's data", `{"code":0,"data":{"RequestId":"r"}}`, 200, providers.Unavailable},
		{"no wrapper", `{"RequestId":"r"}`, 200, providers.Unavailable},
		{"no wrapper, Orders null", `{"RequestId":"r","Orders":null}`, 200, providers.Unavailable},
		{"Response null", `{"Response":null}`, 200, providers.Unavailable},
		{"at 400", `{"Response":{"RequestId":"r"}}`, 400, providers.InvalidArgument},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := bodyServer(t, tt.status, tt.body)
			if r, err := c.Lookup(lookupCtx(t), order("Mine", ours)); providers.CodeOf(err) != tt.want {
				t.Errorf("Lookup answered %d %s = %+v, %v; want %v", tt.status, tt.body, r, err, tt.want)
			}
		})
	}
	// A later page so is no list: orders were read under no Total, and
	// the page after them proves nothing.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q map[string]any
		_ = json.NewDecoder(r.Body).Decode(&q)
		resp := `{"RequestId":"r","Orders":[{"CustomerId":"Customer7","OrderNo":"A"},{"CustomerId":"Customer7","OrderNo":"B"}]}`
		if _, ok := q["Offset"]; ok {
			resp = `{"RequestId":"r"}`
		}
		_, _ = w.Write([]byte(`{"Response":` + resp + `}`))
	}))
	t.Cleanup(srv.Close)
	c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.Lookup(lookupCtx(t), order("Mine", ours)); providers.CodeOf(err) != providers.Unavailable {
		t.Errorf("Lookup with a later page {\"RequestId\":\"r\"} = %+v, %v; want unavailable", r, err)
	}

	// Nor is it, to a request without Limit (every Limit refused): a
	// server whose default page size is 0 may answer so.
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q map[string]any
		_ = json.NewDecoder(r.Body).Decode(&q)
		resp := `{"RequestId":"r"}`
		if _, ok := q["Limit"]; ok {
			resp = `{"RequestId":"r","Error":{"Code":"InvalidParameterValue","Message":"Limit 超出范围"}}`
		}
		_, _ = w.Write([]byte(`{"Response":` + resp + `}`))
	}))
	t.Cleanup(srv.Close)
	if c, err = tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret}); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Lookup(lookupCtx(t), order("Mine", ours)); providers.CodeOf(err) != providers.Unavailable {
		t.Errorf("Lookup answered {\"RequestId\":\"r\"} without Limit = %+v, %v; want unavailable", r, err)
	}
}

// A loosely typed server may list an all-digit OrderNo (or another field)
// as a JSON number. The list stays readable; a number that is ours is
// ours, one that may be ours written otherwise (a leading zero dropped,
// another form, a double's rounding) is never ruled out, and one surely
// another number is another order.
func TestLookupReadsNumbersAsListedStrings(t *testing.T) {
	t.Parallel()
	row := func(no string) string {
		return `{"Response":{"RequestId":"r","Total":1,"Orders":[{"OrderNo":` + no + `,"CustomerId":"Customer7","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":2}]}}`
	}
	for _, tt := range []struct {
		name, ours, listed string
		want               providers.Code // OK: found
	}{
		{"ours as a number", "2026120200000", "2026120200000", providers.OK},
		{"ours as a string", "2026120200000", `"2026120200000"`, providers.OK},
		{"ours with its leading zero dropped", "0123", "123", providers.Ambiguous},
		{"ours in another form", "1000", "1e3", providers.Ambiguous},
		{"ours in hexadecimal", "0x10", "16", providers.Ambiguous},
		{"ours past a double's digits", "20261202000000001", "20261202000000000", providers.Ambiguous},
		{"ours past a double's digits, the double's text", "9007199254740995", "9007199254740996", providers.Ambiguous},
		{"ours printed to 13 digits", "9007199254740995", "9.007199254741e+15", providers.Ambiguous},
		{"ours rounded to thousands", "9007199254740995", "9007199254741000", providers.Ambiguous},
		{"ours long, its leading zeros dropped", "009007199254740995", "9007199254740995", providers.Ambiguous},
		// A number of more than 15 digits is no form of every other.
		{"a long number, surely another", "9007199254740995", "123458", providers.NotFound},
		{"a long number, another near it", "9007199254740995", "9007199254740999", providers.NotFound},
		{"a huge exponent", "9007199254740995", "1e999999999", providers.Ambiguous},
		// Printed to 15 digits from the double nearest ours (the two
		// roundings add up), as %.15g and %.14g encoders do.
		{"ours as a double printed to 15 digits", "61829822385548851", "6.18298223855488e+16", providers.Ambiguous},
		{"ours as a double printed to 16 digits", "20261202000000014", "2.026120200000002e+16", providers.Ambiguous},
		// A leading zero: a server may read ours as octal.
		{"ours with a leading zero read as octal", "0123", "83", providers.Ambiguous},
		{"a number too long to be a form of ours", "9007199254740995", strings.Repeat("9", 80), providers.Ambiguous},
		// (An empty page after it, its Total counting the rows read,
		// shows the listing complete.)
		{"surely another number", "2026120200001", "2026120200000", providers.NotFound},
		{"a number, ours no number", "CI-001", "1", providers.NotFound},
		// Ours in another case: a server that takes order numbers as one
		// regardless of case refuses ours as used, and lists this one.
		{"ours in another case", "CI-aB000", `"CI-Ab000"`, providers.Ambiguous},
		// Ours as a server may store it: padded (a fixed-width column),
		// cut to a column's length. A short prefix of ours is another's.
		{"ours padded", "CI-pad-1", `"CI-pad-1                        "`, providers.Ambiguous},
		{"ours padded in another case", "CI-pad-1", `"  ci-PAD-1"`, providers.Ambiguous},
		{"ours cut to 32", "CI-0123456789-0123456789-0123456789-0123", `"CI-0123456789-0123456789-0123456"`, providers.Ambiguous},
		{"a short prefix of ours", "Order10", `"Order1"`, providers.NotFound},
		{"ours a prefix of it", "CI-0123456789-0123456789", `"CI-0123456789-0123456789-X"`, providers.NotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var q map[string]any
				_ = json.NewDecoder(r.Body).Decode(&q)
				if off, _ := q["Offset"].(float64); off > 0 {
					_, _ = w.Write([]byte(`{"Response":{"RequestId":"r","Total":1,"Orders":[]}}`))
					return
				}
				_, _ = w.Write([]byte(row(tt.listed)))
			}))
			t.Cleanup(srv.Close)
			c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Lookup(lookupCtx(t), order(tt.ours, ours))
			if got := providers.CodeOf(err); got != tt.want || (err == nil && r.Status != providers.StatusPaid) {
				t.Errorf("Lookup of %s listed as %s = %+v, %v; want %v", tt.ours, tt.listed, r, err, tt.want)
			}
		})
	}
}

// A listing refused by a working server (a permission the key lacks, a
// parameter) tells nothing of the provider's health: its error says so
// (providers.ErrNoNews), so that one order's refused lookups cannot open
// the circuit breaker for every order's create. A failure (InternalError)
// or a limit still counts.
func TestRefusedListingIsNoNewsOfHealth(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		code   string
		noNews bool
	}{{"UnauthorizedOperation", true}, {"UnauthorizedOperation.NoPermission", true}, {"InvalidParameter", true},
		{"UnsupportedOperation", true}, {"InternalError", false}, {"ResourceUnavailable", false}, {"LimitExceeded", false}, {"SomethingElse", false}} {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			c := bodyServer(t, 200, `{"Response":{"RequestId":"r","Error":{"Code":"`+tt.code+`","Message":"无权限调用 ServiceGetOrderList"}}}`)
			_, err := c.Lookup(lookupCtx(t), order("Mine", ours))
			if providers.CodeOf(err) != providers.Unavailable {
				t.Fatalf("Lookup refused %s: %v; want unavailable", tt.code, err)
			}
			if got := errors.Is(err, providers.ErrNoNews); got != tt.noNews {
				t.Errorf("Lookup refused %s: no news %v, want %v (%v)", tt.code, got, tt.noNews, err)
			}
		})
	}
}

// A later page that fails (refused, a server error, an answer that is no
// list) after an earlier one listed our order, once and nothing like it,
// leaves the order found: it exists, which is what the lookup asks. With
// our order not read, the failure is the lookup's answer.
func TestLaterPageFailsAfterOursWasRead(t *testing.T) {
	t.Parallel()
	first := `{"Response":{"RequestId":"r","Total":3,"Orders":[` + oursListed + `,{"CustomerId":"Customer7","OrderNo":"A"}]}}`
	firstNotOurs := `{"Response":{"RequestId":"r","Total":3,"Orders":[{"CustomerId":"Customer7","OrderNo":"A"},{"CustomerId":"Customer7","OrderNo":"B"}]}}`
	for _, tt := range []struct {
		name, first string
		status      int
		later       string
		want        providers.Code // OK: found
	}{
		{"server error", first, 500, `{"Response":{"RequestId":"r","Error":{"Code":"InternalError","Message":"x"}}}`, providers.OK},
		{"refused", first, 200, `{"Response":{"RequestId":"r","Error":{"Code":"InvalidParameterValue","Message":"Offset 非法"}}}`, providers.OK},
		{"credentials", first, 200, `{"Response":{"RequestId":"r","Error":{"Code":"InvalidParameterValue","Message":"Signature 无效"}}}`, providers.OK},
		{"throttled", first, 429, ``, providers.OK},
		{"unreadable", first, 200, `<html>`, providers.OK},
		{"no list", first, 200, `{"Response":{"RequestId":"r","Orders":{}}}`, providers.OK},
		{"Total not a count", first, 200, `{"Response":{"RequestId":"r","Orders":[],"Total":-1}}`, providers.OK},
		{"server error, ours not read", firstNotOurs, 500, `{"Response":{"RequestId":"r","Error":{"Code":"InternalError","Message":"x"}}}`, providers.Unavailable},
		{"no list, ours not read", firstNotOurs, 200, `{"Response":{"RequestId":"r","Orders":{}}}`, providers.Unavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var q map[string]any
				_ = json.NewDecoder(r.Body).Decode(&q)
				if _, ok := q["Offset"]; !ok {
					_, _ = w.Write([]byte(tt.first))
					return
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.later))
			}))
			t.Cleanup(srv.Close)
			c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Lookup(lookupCtx(t), order("Mine", ours))
			if got := providers.CodeOf(err); got != tt.want || (err == nil && r.Status != providers.StatusPaid) {
				t.Errorf("Lookup = %+v, %v; want %v", r, err, tt.want)
			}
			if err == nil && !strings.Contains(r.Message, "not ruled out") {
				t.Errorf("Lookup message %q does not say a second order is not ruled out", r.Message)
			}
		})
	}
}

// A listed ItemNum is compared by value: 2.0 and 2e0 are the 2 we sent
// (the same JSON number), a string of them too; 3 is another order.
func TestListedItemNumByValue(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		num  string
		want providers.Code
	}{
		{`2`, providers.OK}, {`2.0`, providers.OK}, {`2e0`, providers.OK}, {`"2.0"`, providers.OK}, {`"2"`, providers.OK},
		{`3`, providers.Ambiguous}, {`2.5`, providers.Ambiguous}, {`"two"`, providers.Ambiguous},
	} {
		t.Run(tt.num, func(t *testing.T) {
			t.Parallel()
			body := `{"Response":{"RequestId":"r","Total":1,"Orders":[{"CustomerId":"Customer7","OrderNo":"N1","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":` + tt.num + `}]}}`
			c := bodyServer(t, http.StatusOK, body)
			r, err := c.Lookup(lookupCtx(t), order("N1", ours))
			if got := providers.CodeOf(err); got != tt.want || (tt.want == providers.OK && r.Status != providers.StatusPaid) {
				t.Errorf("Lookup with ItemNum %s = %+v, %v; want %v", tt.num, r, err, tt.want)
			}
		})
	}
}

// A refusal that echoes the request's signature does not get it into the
// error: with the signed request's other parts, a signature is a known
// answer to try guesses of the secret against.
func TestEchoedSignatureIsHidden(t *testing.T) {
	t.Parallel()
	var sig string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Signature string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		sig = req.Signature
		_ = json.NewEncoder(w).Encode(map[string]any{"Response": map[string]any{"RequestId": "r",
			"Error": map[string]any{"Code": "InvalidParameterValue", "Message": "Signature 无效: got " + req.Signature}}})
	}))
	t.Cleanup(srv.Close)
	c, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: appKey, AppSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Submit(lookupCtx(t), order("Sig1", ours))
	if err == nil || sig == "" || strings.Contains(err.Error(), sig) || !strings.Contains(err.Error(), "Signature") {
		t.Errorf("Submit refused with the signature %q echoed = %v; want the refusal without it", sig, err)
	}
}

// A Limit the server refused, where a smaller one was then taken, is not
// sent again by the same client: the next lookup starts at the Limit
// taken. A request refused at every size teaches nothing.
func TestLookupRemembersTheLimitTaken(t *testing.T) {
	t.Parallel()
	var mine map[string]any
	if err := json.Unmarshal([]byte(oursListed), &mine); err != nil {
		t.Fatal(err)
	}
	c, reqs := listing{orders: []map[string]any{mine}, filter: true, maxLimit: 50}.serve(t)
	for i, want := range []int{2, 3} {
		if r, err := c.Lookup(lookupCtx(t), order("Mine", ours)); err != nil || r.Status != providers.StatusPaid {
			t.Fatalf("lookup %d = %+v, %v", i+1, r, err)
		}
		if n := len(reqs()); n != want {
			t.Errorf("after lookup %d: %d ServiceGetOrderList calls, want %d (the refused Limit sent once)", i+1, n, want)
		}
	}
	if got := reqs()[2]["Limit"]; fmt.Sprint(got) != "50" {
		t.Errorf("the second lookup sent Limit %v, want 50", got)
	}
}

// A row that may be ours cut short stands against not found only: ours
// listed whole beside it (a listing that ignored the filter, with another
// order's number that ours begins with) is ours.
func TestCutNumberBesideOursWholeIsNotAmbiguous(t *testing.T) {
	t.Parallel()
	const no = "ORD-2026120500-10"
	rowOf := func(n string) string {
		return `{"OrderNo":"` + n + `","CustomerId":"Customer7","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":2}`
	}
	body := `{"Response":{"RequestId":"r","Total":2,"Orders":[` + rowOf("ORD-2026120500-1") + `,` + rowOf(no) + `]}}`
	c := bodyServer(t, 200, body)
	if r, err := c.Lookup(lookupCtx(t), order(no, ours)); err != nil || r.Status != providers.StatusPaid {
		t.Errorf("Lookup with ours listed whole beside a prefix of it = %+v, %v; want found", r, err)
	}
	c = bodyServer(t, 200, `{"Response":{"RequestId":"r","Total":1,"Orders":[`+rowOf("ORD-2026120500-1")+`]}}`)
	if _, err := c.Lookup(lookupCtx(t), order(no, ours)); providers.CodeOf(err) != providers.Ambiguous {
		t.Errorf("Lookup with only a prefix of ours listed = %v; want ambiguous (ours cut short?)", err)
	}
}
