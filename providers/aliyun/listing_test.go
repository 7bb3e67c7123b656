package aliyun_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/aliyun/sandbox"
)

// ourEntry is a listed order of testOrder's commodity and copies.
func ourEntry(id string, extra map[string]any) map[string]any {
	o := map[string]any{"orderId": id, "commodityCode": "streamingResource_20_10", "copies": 2, "paymentStatus": 0}
	for k, v := range extra {
		o[k] = v
	}
	return o
}

// listed is a canned order/query page holding orders, with a total unless
// total < 0.
func listed(total int, orders ...map[string]any) sandbox.Reply {
	data := []any{}
	for _, o := range orders {
		data = append(data, o)
	}
	if total < 0 {
		return sandbox.Reply{Code: 200, Data: map[string]any{"data": data}}
	}
	return sandbox.Reply{Code: 200, Data: map[string]any{"total": total, "data": data}}
}

var (
	pageZeroRefused = sandbox.Reply{Code: 460, Message: "request parameter error"}
	queryDown       = sandbox.Reply{HTTPStatus: 503, GatewayMessage: "Service Unavailable"}
)

func sortedIDs(ids []string) []string { ids = slices.Clone(ids); slices.Sort(ids); return ids }

// F1: what order/query's total counts is not documented. A smaller one no
// longer hides the later pages; a bigger one, the same on every page,
// means orders were not served: unavailable, even when a second read would
// be the same.
func TestListingTotalCountsSomethingElse(t *testing.T) {
	t.Parallel()
	t.Run("bigger than listed", func(t *testing.T) {
		t.Parallel()
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
		listing := []sandbox.Reply{page(5, "1", "2"), page(5, "3"), page(5)}
		// Page 0 is refused (the server counts from 1); reading the
		// listing again would give the same.
		f.sb.Inject(aliyun.PathQuery, append(append(slices.Clone(listing), pageZeroRefused, pageZeroRefused), listing...)...)
		known, err := f.c.Prepare(ctx(t), testOrder(1100))
		if providers.CodeOf(err) != providers.Unavailable || known != nil || !strings.Contains(err.Error(), "fewer orders than its total (5)") {
			t.Fatalf("Prepare = %v, %v; want unavailable naming the total", known, err)
		}
		if n := f.sb.Calls(aliyun.PathQuery); n != 5 {
			t.Errorf("Prepare made %d order/query calls, want 5 (the listing and page 0 twice)", n)
		}
		f.sb.Inject(aliyun.PathQuery, listing...)
		o := testOrder(1100)
		o.Known = []string{}
		if _, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.Unavailable {
			t.Fatalf("Lookup = %v; want unavailable, never not_found", err)
		}
	})
	t.Run("smaller than listed", func(t *testing.T) {
		t.Parallel()
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
		// total 1 (this page's new orders, say): ours sits on page 2.
		listing := []sandbox.Reply{listed(1, entry("1"), entry("2")), listed(1, ourEntry("3", nil)), listed(1)}
		f.sb.Inject(aliyun.PathQuery, append(append(slices.Clone(listing), pageZeroRefused, pageZeroRefused), listing...)...)
		o := testOrder(1101)
		o.Known = []string{"1", "2"}
		o.Owned = func(context.Context, string) (bool, error) { return false, nil }
		r, err := f.c.Lookup(ctx(t), o)
		if err != nil || r.ProviderOrderID != "3" {
			t.Fatalf("Lookup = %+v, %v; want order 3 (never not_found)", r, err)
		}
	})
	t.Run("totals agree and fit: read once, and page 0", func(t *testing.T) {
		t.Parallel()
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
		f.sb.Inject(aliyun.PathQuery, page(3, "1", "2"), page(3, "3"), page(3))
		// Page 0 too, twice (the sandbox refuses it: it counts from 1;
		// a refusal counts only twice in a row): a total that fits does
		// not show page 0 empty.
		known, err := f.c.Prepare(ctx(t), testOrder(1102))
		if err != nil || !slices.Equal(known, []string{"1", "2", "3"}) || f.sb.Calls(aliyun.PathQuery) != 5 {
			t.Fatalf("Prepare = %v, %v after %d calls; want [1 2 3] after 5", known, err, f.sb.Calls(aliyun.PathQuery))
		}
	})
}

// F5: a server that serves its last page again for any pageNo past the
// end. A short page served again ends the listing when the totals confirm
// it (every page gave the same total, equal to the orders read); a full
// one, or one without a total, means paging does not work.
func TestListingRepeatsLastPage(t *testing.T) {
	t.Parallel()
	const commodity = "streamingResource_20_10"
	for i, paging := range []sandbox.Paging{{RepeatLast: true}, {RepeatLast: true, From0: true}} {
		t.Run(fmt.Sprintf("%+v", paging), func(t *testing.T) {
			t.Parallel()
			f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
			f.sb.SetPaging(paging)
			iot := iotID(1200 + i)
			o := testOrder(1200 + i)
			o.FirstAttempt = time.Now()
			var want []string
			for range 3 {
				want = append(want, f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, PaymentStatus: 1}).OrderID)
			}
			known, err := f.c.Prepare(ctx(t), o)
			if err != nil || !slices.Equal(sortedIDs(known), want) {
				t.Fatalf("Prepare = %v, %v; want %v", known, err, want)
			}
			o.Known = known
			o.Owned = func(context.Context, string) (bool, error) { return false, nil }
			// One more fills both pages: a full page served again, as a
			// server that ignores pageNo would serve its first page, so
			// it proves nothing.
			ours := f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2}).OrderID
			if r, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.Ambiguous {
				t.Fatalf("Lookup with a full last page = %+v, %v; want ambiguous, never not_found", r, err)
			}
			// Another order (not one ours could be) makes the last page
			// short again: complete, and ours is found.
			f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: "other", Copies: 1, PaymentStatus: 1})
			if r, err := f.c.Lookup(ctx(t), o); err != nil || r.ProviderOrderID != ours {
				t.Fatalf("Lookup = %+v, %v; want %s", r, err, ours)
			}
		})
	}
	for i, paging := range []sandbox.Paging{{RepeatLast: true, NoTotal: true}, {RepeatLast: true, NoTotal: true, From0: true}} {
		t.Run(fmt.Sprintf("%+v", paging), func(t *testing.T) {
			t.Parallel()
			f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
			f.sb.SetPaging(paging)
			iot := iotID(1210 + i)
			for range 3 {
				f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, PaymentStatus: 1})
			}
			known, err := f.c.Prepare(ctx(t), testOrder(1210+i))
			if providers.CodeOf(err) != providers.Unavailable || !strings.Contains(err.Error(), "ALIYUN_PAGE_BASE") {
				t.Fatalf("Prepare = %v, %v; want unavailable naming ALIYUN_PAGE_BASE", known, err)
			}
			o := testOrder(1210 + i)
			o.Known = []string{}
			if _, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.Ambiguous {
				t.Fatalf("Lookup = %v; want ambiguous, never not_found", err)
			}
		})
	}
	// Counting from 0 and repeating the last page: a device with one
	// page of orders shows page 1 the same as page 0, which proves nothing
	// about the base; later, with more orders, page 0 must still be read.
	t.Run("from 0, base never learnt from a repeat", func(t *testing.T) {
		t.Parallel()
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
		f.sb.SetPaging(sandbox.Paging{From0: true, RepeatLast: true})
		iot := iotID(1203)
		want := []string{f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, Created: time.Now().Add(-time.Hour)}).OrderID}
		known, err := f.c.Prepare(ctx(t), testOrder(1203))
		if err != nil || !slices.Equal(known, want) {
			t.Fatalf("Prepare = %v, %v; want %v", known, err, want)
		}
		for range 2 {
			want = append(want, f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2}).OrderID)
		}
		for i := range 2 {
			before := f.sb.Calls(aliyun.PathQuery)
			known, err = f.c.Prepare(ctx(t), testOrder(1203))
			if err != nil || !slices.Equal(sortedIDs(known), sortedIDs(want)) {
				t.Fatalf("Prepare %d with 3 orders = %v, %v; want %v", i, known, err, want)
			}
			// Pages 1 and 2 (a repeat), page 0, then pages 0 to 2
			// from 0 (a repeat the total confirms): every time, as a
			// listing ending in a repeat never teaches the base.
			if n := f.sb.Calls(aliyun.PathQuery) - before; n != 6 {
				t.Errorf("Prepare %d made %d order/query calls, want 6", i, n)
			}
		}
	})
}

// F6(a): a server that serves pageNo 0 as page 1. Page 1 is read empty, an
// order lands, page 0 shows it: that is not taken for a server counting
// from 0 until page 1 is read again. Page 1 read again showing page 0's
// orders is not taken for a server counting from 1 either (a page of
// orders landing on a server counting from 0 shows the same): that
// listing is unavailable, nothing is learnt, and the next one lists them.
func TestListingPageZeroRace(t *testing.T) {
	t.Parallel()
	const commodity = "streamingResource_20_10"
	t.Run("page 0 is page 1", func(t *testing.T) {
		t.Parallel()
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
		f.sb.SetPaging(sandbox.Paging{Alias0: true, NoTotal: true})
		iot := iotID(1300)
		// Page 1 as read before the orders landed.
		f.sb.Inject(aliyun.PathQuery, listed(-1))
		var want []string
		for range 3 {
			want = append(want, f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2}).OrderID)
		}
		if known, err := f.c.Prepare(ctx(t), testOrder(1300)); providers.CodeOf(err) != providers.Unavailable {
			t.Fatalf("Prepare = %v, %v; want unavailable (orders landed while page 0 was judged)", known, err)
		}
		for i := range 2 {
			known, err := f.c.Prepare(ctx(t), testOrder(1300))
			if err != nil || !slices.Equal(sortedIDs(known), want) {
				t.Fatalf("Prepare %d after = %v, %v; want %v", i, known, err, want)
			}
		}
	})
	t.Run("counts from 0", func(t *testing.T) {
		t.Parallel()
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
		f.sb.SetPaging(sandbox.Paging{From0: true, NoTotal: true})
		iot := iotID(1301)
		o := testOrder(1301)
		want := []string{f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, PaymentStatus: 1, Created: time.Now().Add(-time.Hour)}).OrderID}
		known, err := f.c.Prepare(ctx(t), o)
		if err != nil || !slices.Equal(known, want) {
			t.Fatalf("Prepare = %v, %v; want %v", known, err, want)
		}
		// Page 1 (empty), page 0, page 1 again (still empty), then
		// pages 0 and 1 from 0.
		if n := f.sb.Calls(aliyun.PathQuery); n != 5 {
			t.Errorf("Prepare made %d order/query calls, want 5", n)
		}
		o.Known = known
		o.Owned = func(context.Context, string) (bool, error) { return false, nil }
		ours := f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2}).OrderID
		if r, err := f.c.Lookup(ctx(t), o); err != nil || r.ProviderOrderID != ours {
			t.Fatalf("Lookup = %+v, %v; want %s", r, err, ours)
		}
	})
	t.Run("page 1 changes again", func(t *testing.T) {
		t.Parallel()
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
		f.sb.Inject(aliyun.PathQuery, listed(-1), page(-1, "1"), page(-1, "2", "1"))
		if known, err := f.c.Prepare(ctx(t), testOrder(1302)); providers.CodeOf(err) != providers.Unavailable {
			t.Fatalf("Prepare = %v, %v; want unavailable", known, err)
		}
	})
}

// F6(b): a client that took the server for counting from 0 finds page 1
// serving page 0 again in full: it reads the listing again from 1, and
// from 1 later on.
func TestListingForgetsPagesFrom0(t *testing.T) {
	t.Parallel()
	const commodity = "streamingResource_20_10"
	f := learnedFromZero(t, 1400)
	f.sb.SetPaging(sandbox.Paging{Alias0: true, NoTotal: true})
	iot := iotID(1401)
	var want []string
	for range 3 {
		want = append(want, f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2}).OrderID)
	}
	for i := range 2 {
		before := f.sb.Calls(aliyun.PathQuery)
		known, err := f.c.Prepare(ctx(t), testOrder(1401))
		if err != nil || !slices.Equal(sortedIDs(known), want) {
			t.Fatalf("Prepare %d = %v, %v; want %v", i, known, err, want)
		}
		// First: pages 0 and 1 (the same), pages 1 to 3, page 0 again
		// (the same as page 1) and page 1 again to confirm it; then
		// pages 1 to 3, and page 0 to see it still is page 1.
		if n, wantN := f.sb.Calls(aliyun.PathQuery)-before, []int{7, 4}[i]; n != wantN {
			t.Errorf("Prepare %d made %d order/query calls, want %d", i, n, wantN)
		}
	}
}

// F6(c): where pageNo starts is not documented, so while the server has
// not shown it, a page 0 that cannot be read may hold orders the listing
// from 1 lacks (the newest, on a server counting from 0): the listing is
// unavailable, never a snapshot or a not_found, whatever page 1 held. Only
// a documented parameter refusal (460 or 2000) of page 0 shows the server
// counts from 1.
func TestListingEmptyPageOneZeroUnreadable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		pages []sandbox.Reply
		code  providers.Code
		known []string
	}{
		{"page 0 fails twice", []sandbox.Reply{listed(-1), queryDown, queryDown}, providers.Unavailable, nil},
		{"page 0 without ids", []sandbox.Reply{listed(-1), listed(-1, map[string]any{"commodityCode": "c", "copies": 1})}, providers.Unavailable, nil},
		{"page 1 has orders", []sandbox.Reply{page(-1, "1"), page(-1), queryDown, queryDown}, providers.Unavailable, nil},
		{"page 1 has orders, page 0 without ids", []sandbox.Reply{page(-1, "1"), page(-1), listed(-1, map[string]any{"commodityCode": "c", "copies": 1})}, providers.Unavailable, nil},
		{"page 0 refused, 460", []sandbox.Reply{page(-1, "1"), page(-1), pageZeroRefused}, providers.OK, []string{"1"}},
		{"page 0 refused, 2000", []sandbox.Reply{page(-1, "1"), page(-1), {Code: 2000, Message: "param is invalid"}}, providers.OK, []string{"1"}},
		// A refusal with an answer is asked again once, as any failure.
		{"page 0 refused, 400", []sandbox.Reply{page(-1, "1"), page(-1), {Code: 400}, {Code: 400}}, providers.Unavailable, nil},
		{"page 0 refused, 2063", []sandbox.Reply{page(-1, "1"), page(-1), {Code: 2063}, {Code: 2063}}, providers.Unavailable, nil},
		{"page 0 refused, 2064", []sandbox.Reply{page(-1, "1"), page(-1), {Code: 2064}, {Code: 2064}}, providers.Unavailable, nil},
		{"page 0 refused, bare 400", []sandbox.Reply{page(-1, "1"), page(-1), {HTTPStatus: 400}, {HTTPStatus: 400}}, providers.Unavailable, nil},
		{"both empty", []sandbox.Reply{listed(-1), listed(-1)}, providers.OK, []string{}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			f.sb.Inject(aliyun.PathQuery, tt.pages...)
			o := testOrder(1500 + i)
			known, err := f.c.Prepare(ctx(t), o)
			if c := providers.CodeOf(err); c != tt.code || (err == nil && !slices.Equal(known, tt.known)) {
				t.Fatalf("Prepare = %#v, %v; want %v %v", known, err, tt.code, tt.known)
			}
			if tt.code == providers.OK {
				return
			}
			// A page 0 that failed may be the provider failing: it counts
			// for the circuit breaker, as no news would not.
			if errors.Is(err, providers.ErrNoNews) {
				t.Errorf("Prepare = %v; want a failure the circuit breaker counts", err)
			}
			f.sb.Inject(aliyun.PathQuery, tt.pages...)
			o.Known = []string{}
			if _, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.Unavailable || errors.Is(err, providers.ErrNoNews) {
				t.Errorf("Lookup = %v; want unavailable, never not_found, counted", err)
			}
		})
	}
}

// F4: an explicit empty array is an empty page; an answer that does not
// show the order array (data missing or null, a null array) is one only
// when a total of 0 confirms it on the first page, and otherwise a
// malformed order list, never "no orders". A creation time in a format
// the client cannot read fails nothing.
func TestListingTolerates(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"data", "list", "items", "orderList", "records"} {
		t.Run("null "+key+", total 0", func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			f.sb.Inject(aliyun.PathQuery, sandbox.Reply{Code: 200, Data: map[string]any{"total": 0, key: nil}})
			known, err := f.c.Prepare(ctx(t), testOrder(1600))
			if err != nil || known == nil || len(known) != 0 {
				t.Fatalf("Prepare = %#v, %v; want an empty snapshot", known, err)
			}
		})
		t.Run("null "+key+", no total", func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			f.sb.Inject(aliyun.PathQuery, sandbox.Reply{Code: 200, Data: map[string]any{key: nil}})
			known, err := f.c.Prepare(ctx(t), testOrder(1604))
			if providers.CodeOf(err) != providers.Unavailable || !strings.Contains(err.Error(), "malformed order list") {
				t.Fatalf("Prepare = %#v, %v; want unavailable, malformed order list", known, err)
			}
		})
		t.Run("empty "+key, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			f.sb.Inject(aliyun.PathQuery, sandbox.Reply{Code: 200, Data: map[string]any{"total": 0, key: []any{}}})
			known, err := f.c.Prepare(ctx(t), testOrder(1603))
			if err != nil || known == nil || len(known) != 0 {
				t.Fatalf("Prepare = %#v, %v; want an empty snapshot", known, err)
			}
		})
	}
	for _, data := range []string{``, `null`, `{}`, `{"data":null}`, `{"list":null,"pageNo":1}`, `{"data":[],"list":[{"orderId":"1"}]}`} {
		t.Run("no order array: "+data, func(t *testing.T) {
			t.Parallel()
			if l, err := aliyun.ParseOrderList(json.RawMessage(data)); err == nil {
				t.Fatalf("ParseOrderList(%s) = %+v; want an error", data, l)
			}
		})
	}
	for _, data := range []string{`[]`, `{"data":[]}`, `{"total":0,"records":[]}`} {
		if l, err := aliyun.ParseOrderList(json.RawMessage(data)); err != nil || len(l.Orders) != 0 {
			t.Errorf("ParseOrderList(%s) = %+v, %v; want an empty page", data, l, err)
		}
	}
	for _, key := range []string{"total", "totalCount"} {
		t.Run("null array, positive "+key, func(t *testing.T) {
			t.Parallel()
			// No array, a total: left to the listing to judge, which
			// reads a first page so only with a total of 0.
			if l, err := aliyun.ParseOrderList(json.RawMessage(`{"data":null,"` + key + `":3}`)); err != nil || !l.NoArray || l.Total != 3 || len(l.Orders) != 0 {
				t.Fatalf("ParseOrderList = %+v, %v; want no array, total 3", l, err)
			}
			f := setup(t, nil)
			f.sb.Inject(aliyun.PathQuery, sandbox.Reply{Code: 200, Data: map[string]any{key: 3, "list": nil}})
			known, err := f.c.Prepare(ctx(t), testOrder(1602))
			if providers.CodeOf(err) != providers.Unavailable || !strings.Contains(err.Error(), "malformed order list") {
				t.Fatalf("Prepare = %#v, %v; want unavailable, malformed order list", known, err)
			}
		})
	}
	t.Run("null array, no total", func(t *testing.T) {
		t.Parallel()
		if l, err := aliyun.ParseOrderList(json.RawMessage(`{"data":null}`)); err == nil {
			t.Fatalf("ParseOrderList = %+v; want an error, not an empty page", l)
		}
	})
	t.Run("null member beside the array", func(t *testing.T) {
		t.Parallel()
		l, err := aliyun.ParseOrderList(json.RawMessage(`{"data":null,"list":[{"orderId":"1"}],"total":1}`))
		if err != nil || len(l.Orders) != 1 || l.Orders[0].OrderID != "1" {
			t.Fatalf("ParseOrderList = %+v, %v; want order 1", l, err)
		}
	})
	t.Run("orderId with space around it", func(t *testing.T) {
		t.Parallel()
		// A padded id is the id create, get and pay name the order by:
		// kept padded, a matched order could never be paid or looked up.
		l, err := aliyun.ParseOrderList(json.RawMessage(`{"data":[{"orderId":" 20261205203342001346 ","commodityCode":"c","copies":1}],"total":1}`))
		if err != nil || len(l.Orders) != 1 || l.Orders[0].OrderID != "20261205203342001346" {
			t.Fatalf("ParseOrderList = %+v, %v; want order 20261205203342001346", l, err)
		}
		f := setup(t, nil)
		f.sb.Inject(aliyun.PathCreate, sandbox.Reply{Code: 200, Data: map[string]any{"orderId": "20201104134310000196\t", "paymentStatus": 0}})
		if r, err := f.c.Submit(ctx(t), testOrder(1605)); err != nil || r.ProviderOrderID != "20201104134310000196" {
			t.Fatalf("Submit = %+v, %v; want order 20201104134310000196", r, err)
		}
	})
	t.Run("whole numbers written as floats", func(t *testing.T) {
		t.Parallel()
		// copies 1.0, paymentStatus 1.0: a server whose serializer writes
		// numbers as floats. Unread, the page was a malformed list and
		// every listing of the device failed.
		l, err := aliyun.ParseOrderList(json.RawMessage(`{"data":[{"orderId":"7","commodityCode":"c","copies":2.0,"paymentStatus":1.0,"status":0e0}],"total":1}`))
		if err != nil || len(l.Orders) != 1 || l.Orders[0].Copies != 2 || l.Orders[0].PaymentStatus != aliyun.PaymentPaid {
			t.Fatalf("ParseOrderList = %+v, %v; want order 7, 2 copies, paid", l, err)
		}
		for _, odd := range []string{`1.5`, `"2.5"`, `1e300`} {
			if l, err := aliyun.ParseOrderList(json.RawMessage(`{"data":[{"orderId":"7","commodityCode":"c","copies":` + odd + `}],"total":1}`)); err == nil {
				t.Errorf("copies %s: %+v; want an error (no whole number)", odd, l)
			}
		}
	})
	t.Run("a malformed list is no news", func(t *testing.T) {
		t.Parallel()
		// The platform answered: one device's unreadable listing is no
		// failure of the platform for the circuit breaker to count.
		f := setup(t, nil)
		f.sb.Inject(aliyun.PathQuery, sandbox.Reply{Code: 200, Data: map[string]any{"data": []any{map[string]any{"orderId": "1", "commodityCode": "c", "copies": "many"}}}})
		known, err := f.c.Prepare(ctx(t), testOrder(1606))
		if providers.CodeOf(err) != providers.Unavailable || !strings.Contains(err.Error(), "malformed order list") || !errors.Is(err, providers.ErrNoNews) {
			t.Fatalf("Prepare = %#v, %v (no news %v); want unavailable, malformed order list, no news", known, err, errors.Is(err, providers.ErrNoNews))
		}
	})
	t.Run("unreadable createTime", func(t *testing.T) {
		t.Parallel()
		f := setup(t, nil)
		odd := listed(2, ourEntry("1", map[string]any{"createTime": "04/11/2020 9:01"}), entry("2"))
		f.sb.Inject(aliyun.PathQuery, odd, listed(2))
		known, err := f.c.Prepare(ctx(t), testOrder(1601))
		if err != nil || !slices.Equal(known, []string{"1", "2"}) {
			t.Fatalf("Prepare = %v, %v; want [1 2]", known, err)
		}
		// Without a snapshot, an order of our kind with no readable
		// creation time is undecidable: a person decides.
		f.sb.Inject(aliyun.PathQuery, odd, listed(2))
		o := testOrder(1601)
		o.FirstAttempt = time.Now()
		if _, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.Ambiguous || !strings.Contains(err.Error(), "lack the fields") {
			t.Fatalf("Lookup = %v; want ambiguous", err)
		}
	})
}

// F4: create's answer names the order; whatever else in it cannot be read,
// the order id is kept.
func TestCreateAnswerKeepsOrderID(t *testing.T) {
	t.Parallel()
	for name, data := range map[string]map[string]any{
		"unreadable gmtCreate":     {"orderId": "20201104134310000196", "paymentStatus": 0, "gmtCreate": "yesterday"},
		"unreadable createTime":    {"orderId": "20201104134310000196", "paymentStatus": 0, "createTime": map[string]any{"t": 1}},
		"unreadable paymentStatus": {"orderId": "20201104134310000196", "paymentStatus": "unpaid"},
		"unreadable copies":        {"orderId": "20201104134310000196", "paymentStatus": 0, "copies": "two", "status": 0.5, "userId": true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			f.sb.Inject(aliyun.PathCreate, sandbox.Reply{Code: 200, Data: data})
			r, err := f.c.Submit(ctx(t), testOrder(1700))
			if err != nil || r.ProviderOrderID != "20201104134310000196" || r.Status != providers.StatusPending {
				t.Fatalf("Submit = %+v, %v; want pending order 20201104134310000196", r, err)
			}
		})
	}
}

// F3: creation times under the fallback rule (no snapshot).
func TestLookupCreationTimes(t *testing.T) {
	t.Parallel()
	first := time.Now().Add(-10 * time.Minute)
	after := first.Add(time.Minute)
	utc := time.FixedZone("", 0)
	cst := time.FixedZone("", 8*60*60)
	tests := []struct {
		name    string
		created any
		code    providers.Code // 0: found
	}{
		{"epoch seconds", after.Unix(), 0},
		{"epoch seconds as digits", fmt.Sprint(after.Unix()), 0},
		{"epoch milliseconds", after.UnixMilli(), 0},
		// Written in UTC without a zone, read as UTC+8: 8 hours early,
		// within what a zone may be off by either way: it may be an
		// older order (another's), so a person decides.
		{"zone-less, written in UTC", after.In(utc).Format(time.DateTime), providers.Ambiguous},
		// Written in China time (as it is read): 13 hours before the
		// bound is within a zone's offset of it, 15 hours after is after
		// it in every zone.
		{"zone-less, 13 h early", first.Add(-13 * time.Hour).In(cst).Format(time.DateTime), providers.Ambiguous},
		{"zone-less, after in every zone", first.Add(15 * time.Hour).In(cst).Format(time.DateTime), 0},
		{"zone-less, a day early", first.Add(-24 * time.Hour).In(utc).Format(time.DateTime), providers.NotFound},
		{"RFC 3339, an hour early", first.Add(-time.Hour).Format(time.RFC3339), providers.NotFound},
		{"before 2015", 1000, providers.Ambiguous},
		{"two days ahead", time.Now().Add(48 * time.Hour).UnixMilli(), providers.Ambiguous},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			f.sb.Inject(aliyun.PathQuery, listed(1, ourEntry("5", map[string]any{"gmtCreate": tt.created})), listed(1))
			o := testOrder(1800 + i)
			o.FirstAttempt = first
			r, err := f.c.Lookup(ctx(t), o)
			if tt.code != 0 {
				if providers.CodeOf(err) != tt.code {
					t.Fatalf("Lookup = %+v, %v; want %v", r, err, tt.code)
				}
				return
			}
			if err != nil || r.ProviderOrderID != "5" {
				t.Fatalf("Lookup = %+v, %v; want order 5", r, err)
			}
		})
	}
}

// F4: a listing answer that does not show the order array is not a device
// without orders: a lookup is unavailable, never not_found (which would
// create the order again).
func TestLookupUnreadableListing(t *testing.T) {
	t.Parallel()
	for name, reply := range map[string]sandbox.Reply{
		"null array":               {Code: 200, Data: map[string]any{"data": nil}},
		"empty object":             {Code: 200, Data: map[string]any{}},
		"missing array, total 3":   {Code: 200, Data: map[string]any{"total": 3}},
		"empty unknown array only": {Code: 200, Data: map[string]any{"orders": []any{}}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			o := testOrder(2500)
			o.Known = []string{}
			// Served for every page asked (1, then 0).
			f.sb.Inject(aliyun.PathQuery, reply, reply, reply)
			if _, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.Unavailable {
				t.Fatalf("Lookup = %v; want unavailable, never not_found", err)
			}
			f.sb.Inject(aliyun.PathQuery, reply, reply, reply)
			if known, err := f.c.Prepare(ctx(t), o); providers.CodeOf(err) != providers.Unavailable {
				t.Fatalf("Prepare = %#v, %v; want unavailable", known, err)
			}
		})
	}
}

// pageZeroDown answers the next order/query requests for pageNo 0 with the
// gateway's 503, as many as fail says, and passes every other request on.
type pageZeroDown struct {
	next http.Handler
	mu   sync.Mutex
	left int
}

func (h *pageZeroDown) fail(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.left = n
}

func (h *pageZeroDown) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == aliyun.PathQuery {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var env struct {
			Params struct {
				PageNo *int `json:"pageNo"`
			} `json:"params"`
		}
		if json.Unmarshal(body, &env) == nil && env.Params.PageNo != nil && *env.Params.PageNo == 0 {
			h.mu.Lock()
			hit := h.left > 0
			if hit {
				h.left--
			}
			h.mu.Unlock()
			if hit {
				w.Header().Set(aliyun.HeaderErrorMessage, "Service Unavailable")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
	}
	h.next.ServeHTTP(w, r)
}

// A server counting from 0, without a total, whose page 0 (the newest
// orders, ours among them) cannot be read: the listing from 1 holds only
// older orders and must not pass for the device's orders.
func TestListingPageZeroUnreadable(t *testing.T) {
	t.Parallel()
	const commodity = "streamingResource_20_10"
	sb := sandbox.New(appKey, appSecret, projectID)
	sb.SetPaging(sandbox.Paging{From0: true, NoTotal: true})
	down := &pageZeroDown{next: sb}
	srv := httptest.NewServer(down)
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, appSecret, nil, nil)
	iot := iotID(2510)
	start := time.Now().Add(-time.Hour)
	var older []string
	for i := range 24 {
		older = append(older, sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, PaymentStatus: 1,
			Created: start.Add(time.Duration(i) * time.Minute)}).OrderID)
	}
	ours := sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2}).OrderID
	o := testOrder(2510)
	down.fail(2)
	if known, err := c.Prepare(ctx(t), o); providers.CodeOf(err) != providers.Unavailable {
		t.Fatalf("Prepare = %v, %v; want unavailable", known, err)
	}
	o.Known = older
	o.Owned = func(context.Context, string) (bool, error) { return false, nil }
	down.fail(2)
	if r, err := c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.Unavailable {
		t.Fatalf("Lookup = %+v, %v; want unavailable, never not_found", r, err)
	}
	// Page 0 readable again: ours is on it.
	if r, err := c.Lookup(ctx(t), o); err != nil || r.ProviderOrderID != ours {
		t.Fatalf("Lookup = %+v, %v; want %s", r, err, ours)
	}
}

// noData answers every order/query request with code 200 and no data
// (omitted, or null when null is set), and passes every other request on.
type noData struct {
	next http.Handler
	null bool
}

func (h noData) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != aliyun.PathQuery {
		h.next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if h.null {
		_, _ = io.WriteString(w, `{"id":"1","code":200,"message":null,"data":null}`)
		return
	}
	_, _ = io.WriteString(w, `{"id":"1","code":200,"message":null}`)
}

// order/query's answer is not documented, and a server may answer a device
// that holds no orders with code 200 and no data. Prepare's snapshot reads
// such a first page, answered so twice in a row, as a device without
// orders: read as a malformed list, it would keep every first create on
// the device waiting until its deadline. A lookup never reads it as
// absence: that would create the order twice.
func TestPrepareReadsNoDataAsNoOrders(t *testing.T) {
	t.Parallel()
	for _, null := range []bool{true, false} {
		for _, base := range []aliyun.PageBase{aliyun.PageBaseAuto, aliyun.PageBaseFrom1, aliyun.PageBaseFrom0} {
			t.Run(fmt.Sprintf("null %v, base %s", null, base), func(t *testing.T) {
				t.Parallel()
				sb := sandbox.New(appKey, appSecret, projectID)
				rec := &recorder{next: noData{next: sb, null: null}}
				srv := httptest.NewServer(rec)
				t.Cleanup(srv.Close)
				c := newClient(t, srv.URL, appSecret, nil, func(o *aliyun.Options) { o.PageBase = base })
				o := testOrder(2600)
				known, err := c.Prepare(ctx(t), o)
				if err != nil || known == nil || len(known) != 0 {
					t.Fatalf("Prepare = %#v, %v; want an empty, non-nil snapshot", known, err)
				}
				// Each page read twice, as one answer without data may
				// be a fault. Auto: page 1, then page 0, both without
				// data: nothing missing, and nothing learnt about the
				// base.
				want := []int{1, 1, 0, 0}
				switch base {
				case aliyun.PageBaseFrom1:
					want = []int{1, 1}
				case aliyun.PageBaseFrom0:
					want = []int{0, 0}
				}
				if got := pageNos(t, rec); !slices.Equal(got, want) {
					t.Errorf("Prepare read pages %v, want %v", got, want)
				}
				o.Known = known
				o.Owned = func(context.Context, string) (bool, error) { return false, nil }
				if r, err := c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.Unavailable {
					t.Fatalf("Lookup = %+v, %v; want unavailable, never not_found", r, err)
				}
			})
		}
	}
	t.Run("page 0 refused", func(t *testing.T) {
		t.Parallel()
		f := setup(t, nil)
		none := sandbox.Reply{Code: 200}
		f.sb.Inject(aliyun.PathQuery, none, none, pageZeroRefused)
		if known, err := f.c.Prepare(ctx(t), testOrder(2601)); err != nil || known == nil || len(known) != 0 {
			t.Fatalf("Prepare = %#v, %v; want an empty, non-nil snapshot", known, err)
		}
		// The server counts from 1 (page 0 refused): the lookup reads
		// page 1 only, and does not take its missing data for absence.
		f.sb.Inject(aliyun.PathQuery, none)
		o := testOrder(2601)
		o.Known = []string{}
		if r, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.Unavailable {
			t.Fatalf("Lookup = %+v, %v; want unavailable, never not_found", r, err)
		}
	})
	// Only the first page: a device whose page 1 holds orders is not
	// empty, and a page 0 without data beside it teaches nothing (read as
	// empty, it would make every later listing skip page 0).
	t.Run("page 1 holds orders, page 0 without data", func(t *testing.T) {
		t.Parallel()
		f := setup(t, nil)
		none := sandbox.Reply{Code: 200}
		f.sb.Inject(aliyun.PathQuery, listed(-1, entry("1")), listed(-1), none, none)
		if known, err := f.c.Prepare(ctx(t), testOrder(2602)); providers.CodeOf(err) != providers.Unavailable {
			t.Fatalf("Prepare = %v, %v; want unavailable", known, err)
		}
		f.sb.Inject(aliyun.PathQuery, listed(-1, entry("1")), none)
		if known, err := f.c.Prepare(ctx(t), testOrder(2602)); providers.CodeOf(err) != providers.Unavailable {
			t.Fatalf("Prepare = %v, %v; want unavailable (a later page without data is no end)", known, err)
		}
	})
}

// Only the documented parameter errors (460, 2000) refusing page 0 show
// the server counts from 1. 400 is documented as a generic request error:
// a page 0 refused with it is page 0 not read, and a listing the totals do
// not confirm is unavailable, naming ALIYUN_PAGE_BASE.
func TestPageZeroRefusedWith400(t *testing.T) {
	t.Parallel()
	for name, refusal := range map[string]sandbox.Reply{
		"code 400": {Code: 400, Message: "request error"},
		"bare 400": {HTTPStatus: 400},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			f.sb.Inject(aliyun.PathQuery, listed(-1, entry("1")), listed(-1), refusal, refusal)
			known, err := f.c.Prepare(ctx(t), testOrder(2700))
			if providers.CodeOf(err) != providers.Unavailable || !strings.Contains(err.Error(), aliyun.EnvPageBase) {
				t.Fatalf("Prepare = %v, %v; want unavailable naming %s", known, err, aliyun.EnvPageBase)
			}
		})
	}
}

// A server counting from 1 that refuses page 0 otherwise than with the
// documented parameter refusal (a generic or bare 400), twice running (a
// single refusal may be a passing one of a server counting from 0), keeps
// working where
// the total confirms the listing from 1: a server counting from 0 serves
// page 0 as it serves page 1, and does not refuse it. Without a confirming
// total such a listing stays unavailable (TestListingEmptyPageOneZeroUnreadable).
func TestPageZeroRefusedWithTotalsConfirming(t *testing.T) {
	t.Parallel()
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
	f.sb.SetPaging(sandbox.Paging{Zero400: true})
	iot := iotID(1620)
	var known []string
	for range 3 {
		known = append(known, f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: "other_plan", Copies: 1, PaymentStatus: 1}).OrderID)
	}
	o := testOrder(1620)
	got, err := f.c.Prepare(ctx(t), o)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, known) || f.sb.Calls(aliyun.PathQuery) != 5 {
		t.Fatalf("Prepare = %v, %v after %d calls; want %v after 5 (pages 1 to 3, and page 0 refused twice running)", got, err, f.sb.Calls(aliyun.PathQuery), known)
	}
	// Nothing is learnt: page 0 is asked again.
	o.Known = known
	o.Owned = func(context.Context, string) (bool, error) { return false, nil }
	ours := f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: "streamingResource_20_10", Copies: 2}).OrderID
	r, err := f.c.Lookup(ctx(t), o)
	if err != nil || r.ProviderOrderID != ours || f.sb.Calls(aliyun.PathQuery) != 10 {
		t.Fatalf("Lookup = %+v, %v after %d calls; want order %s after 10", r, err, f.sb.Calls(aliyun.PathQuery), ours)
	}
}

// A server counting from 1 that serves its last page again past the end
// shows where it counts from by refusing page 0 with the documented
// parameter refusal, or by an empty page 0: learnt, later listings do not
// ask page 0 again.
func TestRepeatingServerLearnsItsBase(t *testing.T) {
	t.Parallel()
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
	f.sb.SetPaging(sandbox.Paging{RepeatLast: true})
	iot := iotID(1630)
	for range 3 {
		f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: "other_plan", Copies: 1, PaymentStatus: 1})
	}
	o := testOrder(1630)
	if _, err := f.c.Prepare(ctx(t), o); err != nil {
		t.Fatal(err)
	}
	first := f.sb.Calls(aliyun.PathQuery)
	if _, err := f.c.Prepare(ctx(t), o); err != nil {
		t.Fatal(err)
	}
	if again := f.sb.Calls(aliyun.PathQuery) - first; again != first-1 {
		t.Errorf("second Prepare made %d order/query calls, the first %d; want one fewer (page 0, refused twice, asked once to see the server still counts from 1)", again, first)
	}
}

// One empty answer for page 0 beside a page 1 holding orders does not
// teach that the server counts from 1: page 0 is read again. On a server
// counting from 0 (its page 0 the newest orders) that one faulty answer
// would otherwise make this snapshot, and every later listing of the
// process, skip the newest orders: a lookup's not_found, and a second
// create.
func TestEmptyPageZeroOnceTeachesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
	f.sb.Inject(aliyun.PathQuery,
		page(-1, "1"), page(-1), // pages 1 and 2 of a server counting from 0
		page(-1),                                    // page 0, empty once (a fault)
		page(-1, "3", "2"),                          // page 0 again: the newest orders
		page(-1, "3", "2"), page(-1, "1"), page(-1), // read from 0
	)
	known, err := f.c.Prepare(ctx(t), testOrder(1640))
	slices.Sort(known)
	if err != nil || !slices.Equal(known, []string{"1", "2", "3"}) {
		t.Fatalf("Prepare = %v, %v; want [1 2 3]: page 0 read again, its orders in the snapshot", known, err)
	}
}

// A server counting from 0 whose total counts pages (equal, here, to the
// orders read from 1) refuses page 0 once, with an answer (a platform 400,
// a bare 403 or 404: a gateway's, a replayed nonce): that one refusal is
// asked again, and the lookup finds ours on page 0, never not_found (the
// order would be created again).
func TestPassingPageZeroRefusalIsAskedAgain(t *testing.T) {
	t.Parallel()
	for _, refusal := range []sandbox.Reply{
		{Code: 400, Message: "request error"},
		{HTTPStatus: 403},
		{HTTPStatus: 404},
	} {
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
		ours := map[string]any{"orderId": "5", "commodityCode": "streamingResource_20_10", "copies": 2, "paymentStatus": 0}
		zero := sandbox.Reply{Code: 200, Data: map[string]any{"total": 3, "data": []any{ours, entry("4")}}}
		f.sb.Inject(aliyun.PathQuery,
			page(3, "3", "2"), page(3, "1"), page(3), // pages 1 to 3: 3 orders, total 3 (pages)
			refusal, zero, // page 0: refused once, then served
			zero, page(3, "3", "2"), page(3, "1"), page(3), // read from 0
			zero, page(3, "3", "2"), page(3, "1"), page(3), // and again (the total counts no orders)
		)
		o := testOrder(1700)
		o.Known = []string{"1", "2", "3"}
		o.Owned = func(context.Context, string) (bool, error) { return false, nil }
		r, err := f.c.Lookup(ctx(t), o)
		if err != nil || r.ProviderOrderID != "5" {
			t.Errorf("page 0 refused once with %+v: Lookup = %+v, %v; want order 5, found on page 0", refusal, r, err)
		}
	}
}

// The same passing refusal at the snapshot: the snapshot still holds page
// 0's orders, so a later lookup does not take the device user's older
// order of our plan (o4, on page 0) for ours.
func TestPassingPageZeroRefusalAtTheSnapshot(t *testing.T) {
	t.Parallel()
	sb := sandbox.New(appKey, appSecret, projectID)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	sb.SetPaging(sandbox.Paging{From0: true, TotalPages: true})
	twoAPage := func(o *aliyun.Options) { o.PageSize = 2 }
	iot := iotID(1710)
	base := time.Now().Add(-time.Hour)
	for i, x := range []struct {
		id, plan string
		copies   int64
		paid     int
	}{{"o1", "other_plan", 1, 1}, {"o2", "other_plan", 1, 1}, {"o3", "other_plan", 1, 1}, {"o4", "streamingResource_20_10", 2, 0}, {"o5", "other_plan", 1, 1}} {
		sb.AddOrder(sandbox.Order{OrderID: x.id, IotID: iot, CommodityCode: x.plan, Copies: x.copies, PaymentStatus: x.paid, Created: base.Add(time.Duration(i+1) * time.Minute)})
	}
	other := func(id string) map[string]any {
		return map[string]any{"orderId": id, "commodityCode": "other_plan", "copies": 1, "paymentStatus": 1}
	}
	// Pages 1 to 3 as served, then page 0 refused once.
	sb.Inject(aliyun.PathQuery,
		sandbox.Reply{Code: 200, Data: map[string]any{"total": 3, "data": []any{other("o3"), other("o2")}}},
		sandbox.Reply{Code: 200, Data: map[string]any{"total": 3, "data": []any{other("o1")}}},
		sandbox.Reply{Code: 200, Data: map[string]any{"total": 3, "data": []any{}}},
		sandbox.Reply{Code: 400, Message: "request error"},
	)
	o := testOrder(1710)
	known, err := newClient(t, srv.URL, appSecret, nil, twoAPage).Prepare(ctx(t), o)
	if err != nil || !slices.Contains(known, "o4") || !slices.Contains(known, "o5") {
		t.Fatalf("Prepare = %v, %v; want a snapshot holding page 0's o4 and o5", known, err)
	}
	// The create fails ambiguously, creating nothing; a restarted worker
	// looks it up.
	o.Known = known
	o.FirstAttempt = time.Now()
	o.Owned = func(context.Context, string) (bool, error) { return false, nil }
	r, err := newClient(t, srv.URL, appSecret, nil, twoAPage).Lookup(ctx(t), o)
	if providers.CodeOf(err) != providers.NotFound {
		t.Errorf("Lookup = %+v, %v; want not_found (o4 is the device user's, from before the snapshot)", r, err)
	}
}

// A listing that lacks orders the snapshot read shows no more which new
// order is ours than that none is: one new order of our plan in it may be
// the device user's, with ours among what it did not show. Unavailable,
// looked up again; never matched.
func TestLookupLackingSnapshotOrdersMatchesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 2; o.PageBase = aliyun.PageBaseFrom1 })
	theirs := map[string]any{"orderId": "u1", "commodityCode": "streamingResource_20_10", "copies": 2, "paymentStatus": 0}
	f.sb.Inject(aliyun.PathQuery,
		sandbox.Reply{Code: 200, Data: map[string]any{"data": []any{theirs, entry("k3")}}},
		sandbox.Reply{Code: 200, Data: map[string]any{"data": []any{}}},
	)
	o := testOrder(1720)
	o.Known = []string{"k1", "k2", "k3"}
	o.Owned = func(context.Context, string) (bool, error) { return false, nil }
	r, err := f.c.Lookup(ctx(t), o)
	if providers.CodeOf(err) != providers.Unavailable || !strings.Contains(err.Error(), "lacks 2 of the 3") {
		t.Errorf("Lookup = %+v, %v; want unavailable: the listing lacks 2 of the 3 snapshot orders", r, err)
	}
}

// Only two refusals with an answer in a row let a confirming total stand
// for page 0: a failure to answer (a 5xx) and then a passing 400 leave
// page 0 unread, the listing unavailable (rate_limited when page 0 was
// throttled; never not_found: ours may sit on page 0 of a server counting
// from 0).
func TestPageZeroFailureThenRefusalIsNoRefusal(t *testing.T) {
	t.Parallel()
	for _, first := range []sandbox.Reply{{HTTPStatus: 503}, {HTTPStatus: 502}, {HTTPStatus: 429}} {
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
		f.sb.Inject(aliyun.PathQuery,
			page(3, "3", "2"), page(3, "1"), page(3), // pages 1 to 3: total 3 confirms 3 orders
			first, sandbox.Reply{Code: 400, Message: "request error"}, // page 0
		)
		o := testOrder(1730)
		o.Known = []string{"1", "2", "3"}
		o.Owned = func(context.Context, string) (bool, error) { return false, nil }
		r, err := f.c.Lookup(ctx(t), o)
		want := providers.Unavailable
		if first.HTTPStatus == 429 {
			// Throttled: the listing fails as throttled, which the
			// circuit breaker does not count against the provider.
			want = providers.RateLimited
		}
		if providers.CodeOf(err) != want {
			t.Errorf("page 0: %+v, then a 400: Lookup = %+v, %v; want %s (page 0 unread)", first, r, err, want)
		}
	}
}

// A server taken to count from 0 that refuses page 0 as a parameter error
// (it counts from 1 now, or the refusal passes) has its base judged afresh
// at the next listing, as at a worker's start: left learnt, every order of
// every device would wait on a refused snapshot until a restart (a
// black-box run: 60 orders held). Not in the listing that forgot it: a
// burst of faulty refusals would teach "from 1" at once, and that listing
// lack page 0's orders. Judged afresh, "from 1" is learnt only on two
// refusals in a row, and a server that counts from 1 has page 0 read once
// a listing after, so a wrong "from 1" never skips page 0 for good.
func TestPageZeroRefusedAfterFromZeroIsJudgedAfresh(t *testing.T) {
	t.Parallel()
	const commodity = "streamingResource_20_10"
	f := learnedFromZero(t, 1430)
	f.sb.SetPaging(sandbox.Paging{NoTotal: true}) // counts from 1, refuses pageNo 0 (460), no total
	var want []string
	for range 3 {
		want = append(want, f.sb.AddOrder(sandbox.Order{IotID: iotID(1431), CommodityCode: commodity, Copies: 2}).OrderID)
	}
	if known, err := f.c.Prepare(ctx(t), testOrder(1431)); providers.CodeOf(err) != providers.Unavailable {
		t.Fatalf("Prepare that forgot from 0 = %v, %v; want unavailable (judged at the next listing)", known, err)
	}
	for i := range 2 {
		if known, err := f.c.Prepare(ctx(t), testOrder(1431)); err != nil || !slices.Equal(sortedIDs(known), want) {
			t.Fatalf("Prepare %d = %v, %v; want the device's orders %v", i, known, err, want)
		}
	}
}

// A client that learned order/query counts pages from 0 reads page 0 first;
// an empty page 0 would end the listing at once. A server that counts from
// 1 now, serving page 0 empty (here without a total), would make every
// listing empty: a snapshot without the device's orders, a lookup
// not_found. Page 1 is read too, and holding orders, "from 0" is forgotten
// and the listing read from 1, its page 0 judged afresh. A device without
// orders still lists empty.
func TestLearnedFromZeroReadsPageOneAfterAnEmptyPageZero(t *testing.T) {
	t.Parallel()
	const commodity = "streamingResource_20_10"
	f := learnedFromZero(t, 1440)
	if known, err := f.c.Prepare(ctx(t), testOrder(1442)); err != nil || len(known) != 0 {
		t.Fatalf("Prepare of a device without orders = %v, %v; want an empty snapshot", known, err)
	}
	f.sb.SetPaging(sandbox.Paging{Empty0: true, NoTotal: true})
	for range 3 {
		f.sb.AddOrder(sandbox.Order{IotID: iotID(1441), CommodityCode: commodity, Copies: 2})
	}
	if known, err := f.c.Prepare(ctx(t), testOrder(1441)); providers.CodeOf(err) != providers.Unavailable {
		t.Fatalf("Prepare that forgot from 0 = %v, %v; want unavailable (judged at the next listing), never an empty snapshot", known, err)
	}
	known, err := f.c.Prepare(ctx(t), testOrder(1441))
	if err != nil || len(known) != 3 {
		t.Fatalf("Prepare after the server changed = %v, %v; want the device's 3 orders, never an empty snapshot", known, err)
	}
	o := testOrder(1441)
	o.Known = []string{}
	if r, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) == providers.NotFound || err == nil && r.ProviderOrderID == "" {
		t.Fatalf("Lookup after the server changed = %+v, %v; want no not_found", r, err)
	}
}

// Judging where pages start (page 1 held an order, page 0 another, none of
// page 1's: the server counts from 0), the listing is read again from 0;
// page 0 now empty, without a total, would read as a complete empty
// listing though both orders were just seen: not_found for ours. Page 0
// holding orders a moment ago and none now is orders moving: unavailable.
func TestPageZeroEmptiedWhileJudged(t *testing.T) {
	t.Parallel()
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
	f.sb.Inject(aliyun.PathQuery, listed(-1, entry("B")), listed(-1), listed(-1, ourEntry("A", nil)), listed(-1))
	o := testOrder(1490)
	o.Known = []string{}
	o.FirstAttempt = time.Now().Add(-time.Minute)
	if r, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.Unavailable {
		t.Fatalf("Lookup = %+v, %v; want unavailable, never not_found (order/query calls %d)", r, err, f.sb.Calls(aliyun.PathQuery))
	}
}

// Judging where pages start, page 0 the same as page 1 read earlier is what
// a server serving page 0 as page 1 shows, and also what a server counting
// from 0 shows when a page of orders left the front of the listing between
// the two reads. Taken for "from 1" and remembered, every later listing
// would skip page 0, where the newest orders are: it is trusted only while
// page 1, read again, is still page 0.
func TestPageZeroEqualToAnEarlierPageOneIsConfirmed(t *testing.T) {
	t.Parallel()
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
	// Page 1 [C D], page 2 empty (no total); page 0 [C D] (A and B, the
	// page that held them, gone meanwhile); page 1 read again [E F].
	f.sb.Inject(aliyun.PathQuery, listed(-1, entry("C"), entry("D")), listed(-1), listed(-1, entry("C"), entry("D")), listed(-1, entry("E"), entry("F")))
	o := testOrder(1450)
	o.Known = []string{}
	o.FirstAttempt = time.Now().Add(-time.Minute)
	if r, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.Unavailable {
		t.Fatalf("Lookup = %+v, %v; want unavailable (orders moved), never not_found", r, err)
	}
	// Nothing was learnt: the next listing judges page 0 again.
	before := f.sb.Calls(aliyun.PathQuery)
	f.sb.Inject(aliyun.PathQuery, listed(-1, entry("C"), entry("D")), listed(-1), listed(-1, ourEntry("A", nil), entry("B")), listed(-1, ourEntry("A", nil), entry("B")), listed(-1, entry("C"), entry("D")), listed(-1))
	if r, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) == providers.NotFound {
		t.Fatalf("second Lookup = %+v, %v; ours is on page 0, never not_found (calls %d)", r, err, f.sb.Calls(aliyun.PathQuery)-before)
	}
}

// A documented parameter refusal of page 0 (460, 2000) counts only twice
// in a row: a single one that passes, on a server counting from 0, would
// teach "from 1" for the process's life and skip page 0, where the newest
// orders are (a wrong not_found, a second create). Here page 0, read
// again, holds ours.
func TestSinglePageZeroRefusalTeachesNothing(t *testing.T) {
	t.Parallel()
	for _, refusal := range []sandbox.Reply{pageZeroRefused, {Code: 2000, Message: "param is invalid"}} {
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
		f.sb.Inject(aliyun.PathQuery,
			listed(-1, entry("C"), entry("D")), listed(-1, entry("E")), listed(-1), // pages 1 to 3
			refusal, listed(-1, ourEntry("A", nil), entry("B")), // page 0, refused once, then read
			listed(-1, ourEntry("A", nil), entry("B")), listed(-1, entry("C"), entry("D")), listed(-1, entry("E")), listed(-1)) // read again from 0
		o := testOrder(1460)
		o.Known = []string{}
		o.FirstAttempt = time.Now().Add(-time.Minute)
		r, err := f.c.Lookup(ctx(t), o)
		if providers.CodeOf(err) == providers.NotFound || err == nil && r.ProviderOrderID == "" {
			t.Fatalf("Lookup after one %d refusal of page 0 = %+v, %v; ours is on page 0", refusal.Code, r, err)
		}
	}
}

// An empty page 0 beside a page 1 holding orders, then a refusal of page 0
// (or a refusal, an empty page 0, a refusal): answers that differ, neither
// said twice in a row, teach nothing; the next listing, with ours on page
// 0, finds it.
func TestMixedPageZeroAnswersTeachNothing(t *testing.T) {
	t.Parallel()
	for name, zero := range map[string][]sandbox.Reply{
		"empty, then refused":          {listed(-1), pageZeroRefused},
		"refused, empty, then refused": {pageZeroRefused, listed(-1), pageZeroRefused},
	} {
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
		f.sb.Inject(aliyun.PathQuery, append([]sandbox.Reply{listed(-1, entry("C"), entry("D")), listed(-1, entry("E")), listed(-1)}, zero...)...)
		o := testOrder(1470)
		o.Known = []string{}
		o.FirstAttempt = time.Now().Add(-time.Minute)
		if r, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.Unavailable {
			t.Fatalf("%s: first Lookup = %+v, %v; want unavailable", name, r, err)
		}
		// Ours on page 0 now: pages 1 to 3, page 0 holding it (none of
		// page 1's: from 0), then read again from 0.
		f.sb.Inject(aliyun.PathQuery, listed(-1, entry("C"), entry("D")), listed(-1, entry("E")), listed(-1),
			listed(-1, ourEntry("A", nil)), listed(-1, ourEntry("A", nil)), listed(-1, entry("C"), entry("D")), listed(-1, entry("E")), listed(-1))
		if r, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) == providers.NotFound || err == nil && r.ProviderOrderID == "" {
			t.Errorf("%s: second Lookup = %+v, %v; ours is on page 0", name, r, err)
		}
	}
}

// Page 0 equal to page 1 after another answer for page 0 (refused, or
// empty) was not said twice in a row: even with page 1, read again, the
// same, nothing is learnt and the listing is unavailable (taken for "from
// 1", every later listing would skip page 0).
func TestMixedThenEqualPageZeroTeachesNothing(t *testing.T) {
	t.Parallel()
	for name, zero := range map[string][]sandbox.Reply{
		"refused, then page 1":        {pageZeroRefused, listed(-1, entry("C"), entry("D"))},
		"empty, then page 1":          {listed(-1), listed(-1, entry("C"), entry("D"))},
		"refused, empty, then page 1": {pageZeroRefused, listed(-1), listed(-1, entry("C"), entry("D"))},
	} {
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
		f.sb.Inject(aliyun.PathQuery, append(append([]sandbox.Reply{listed(-1, entry("C"), entry("D")), listed(-1, entry("E")), listed(-1)}, zero...),
			listed(-1, entry("C"), entry("D")))...) // page 1 again, the same
		o := testOrder(1480)
		o.Known = []string{}
		o.FirstAttempt = time.Now().Add(-time.Minute)
		if r, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.Unavailable {
			t.Errorf("%s: Lookup = %+v, %v; want unavailable (nothing learnt from a mix)", name, r, err)
		}
	}
}

// learnedFromZero returns a fixture (pages of 2) whose client has learnt
// that order/query counts pages from 0: a snapshot of device n, three
// orders, read from a server counting from 0.
func learnedFromZero(t *testing.T, n int) *fixture {
	t.Helper()
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
	f.sb.SetPaging(sandbox.Paging{From0: true})
	for range 3 {
		f.sb.AddOrder(sandbox.Order{IotID: iotID(n), CommodityCode: "streamingResource_20_10", Copies: 2})
	}
	if _, err := f.c.Prepare(ctx(t), testOrder(n)); err != nil {
		t.Fatal(err)
	}
	return f
}

// The order of a page's entries is not documented: a server that serves
// page 0 as page 1 and lists a page's orders in another order on every
// call shows page 0 as page 1 all the same (the same orders), and a
// listing read twice for a total that does not count its orders is alike
// when it holds the same orders. Compared entry by entry, every listing
// of such a server was "orders moved", and its devices' orders waited,
// never created, until their deadline (a black-box run: a device with 4
// orders stayed queued for the whole run).
func TestListingInAnotherOrderEveryCall(t *testing.T) {
	t.Parallel()
	const commodity = "streamingResource_20_10"
	for i, tc := range []struct {
		name     string
		pageSize int
		paging   sandbox.Paging
	}{
		{"one page", 0, sandbox.Paging{Alias0: true, Shuffle: true}},
		{"two pages", 2, sandbox.Paging{Alias0: true, Shuffle: true}},
		{"one page, a total of pages", 0, sandbox.Paging{Alias0: true, Shuffle: true, TotalPages: true}},
		{"one page, no total", 0, sandbox.Paging{Alias0: true, Shuffle: true, NoTotal: true}},
		// Read twice (the total does not count the orders) over pages
		// whose entries come in another order each time: the same orders
		// on each page. Compared as one sequence, every listing of the
		// device was "orders moved", and its orders waited, never
		// created (a black-box run: 18 of 30 orders queued for good once
		// the device held more than a page).
		{"two pages, a total of pages", 2, sandbox.Paging{Alias0: true, Shuffle: true, TotalPages: true}},
		{"two pages, no total", 2, sandbox.Paging{Alias0: true, Shuffle: true, NoTotal: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, func(o *aliyun.Options) {
				if tc.pageSize > 0 {
					o.PageSize = tc.pageSize
				}
			})
			f.sb.SetPaging(tc.paging)
			n := 1500 + i
			var want []string
			for range 3 {
				want = append(want, f.sb.AddOrder(sandbox.Order{IotID: iotID(n), CommodityCode: commodity, Copies: 2}).OrderID)
			}
			slices.Sort(want)
			o := testOrder(n)
			for try := range 2 {
				known, err := f.c.Prepare(ctx(t), o)
				if err != nil || !slices.Equal(sortedIDs(known), want) {
					t.Fatalf("Prepare %d = %v, %v; want %v", try, known, err, want)
				}
				o.Known = known
			}
			o.FirstAttempt = time.Now().Add(-time.Minute)
			r, err := f.c.Submit(ctx(t), o)
			if err != nil {
				t.Fatalf("Submit = %+v, %v", r, err)
			}
			for try := range 2 {
				got, err := f.c.Lookup(ctx(t), o)
				if err != nil || got.ProviderOrderID != r.ProviderOrderID {
					t.Fatalf("Lookup %d = %+v, %v; want the order created, %s", try, got, err, r.ProviderOrderID)
				}
			}
		})
	}
}

// A lookup that cannot read the worker's own ledger (which listed orders
// are other records', which rivals are being created) fails unavailable,
// as no news of the provider's health: the circuit breaker does not count
// a blip of Redis against Aliyun.
func TestLedgerFailureInALookupIsNoNews(t *testing.T) {
	t.Parallel()
	down := errors.New("redis: connection refused")
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
	// As in TestListingTotalCountsSomethingElse's "smaller than listed": ours,
	// order 3, on page 2.
	listing := []sandbox.Reply{listed(1, entry("1"), entry("2")), listed(1, ourEntry("3", nil)), listed(1)}
	f.sb.Inject(aliyun.PathQuery, append(append(slices.Clone(listing), pageZeroRefused, pageZeroRefused), listing...)...)
	o := testOrder(1901)
	o.Known = []string{"1", "2"}
	o.Owned = func(context.Context, string) (bool, error) { return false, down }
	_, err := f.c.Lookup(ctx(t), o)
	if providers.CodeOf(err) != providers.Unavailable || !errors.Is(err, providers.ErrNoNews) || !errors.Is(err, down) {
		t.Errorf("Lookup = %v (no news %v); want unavailable, no news, the ledger's failure", err, errors.Is(err, providers.ErrNoNews))
	}
}

// flakyStore is a token store whose Redis fails from its from-th Get on.
type flakyStore struct {
	aliyun.TokenStore
	n, from int64
	down    error
}

func (s *flakyStore) Get(ctx context.Context, key string, fetch aliyun.FetchFunc) (providers.Secret, error) {
	if atomic.AddInt64(&s.n, 1) >= s.from {
		return "", s.down
	}
	return s.TokenStore.Get(ctx, key, fetch)
}

// The token store's Redis failing at whichever page read of a lookup
// (page 0 read to judge where the pages start included) fails the lookup
// as that failure, no news of the provider's health, never as a page that
// could not be read.
func TestTokenStoreFailingMidListingIsNoNews(t *testing.T) {
	t.Parallel()
	down := errors.New("redis: connection refused")
	for from := int64(1); from <= 8; from++ {
		t.Run(fmt.Sprint("from get ", from), func(t *testing.T) {
			t.Parallel()
			st := &flakyStore{TokenStore: aliyun.NewMemoryTokenStore(nil), from: from, down: down}
			f := setup(t, func(o *aliyun.Options) { o.PageSize = 2; o.Tokens = st })
			f.sb.Inject(aliyun.PathQuery, listed(3, entry("1"), entry("2")), listed(3, entry("3")), listed(3), listed(3), listed(3), listed(3))
			o := testOrder(1950 + int(from))
			o.FirstAttempt = time.Now().Add(-time.Minute)
			_, err := f.c.Lookup(ctx(t), o)
			if atomic.LoadInt64(&st.n) < from {
				// The lookup was over before the store failed.
				if providers.CodeOf(err) != providers.NotFound {
					t.Errorf("Lookup = %v; want not_found", err)
				}
				return
			}
			if !errors.Is(err, providers.ErrNoNews) || !errors.Is(err, down) {
				t.Errorf("Lookup = %v; want the token store's failure, no news", err)
			}
		})
	}
}

// An order served on two pages of one read, beside new ones, shows orders
// moving between pages while they were read: the order it pushed out is
// missing from the read. Without a total to check it against, such a
// read was taken as the whole listing, and a lookup answered not_found
// for an order the server held (a black-box run: a server listing a
// device's orders in another order on every call, two a page, without a
// total, had an order created twice). It is unavailable, for the lookup
// and the snapshot alike; the same pages without the repeat are a
// complete listing.
func TestListingWithAnOrderOnTwoPagesIsNotComplete(t *testing.T) {
	t.Parallel()
	moved := []sandbox.Reply{listed(-1, entry("1"), entry("2")), listed(-1, entry("2"), entry("5")), listed(-1)}
	for _, tc := range []struct {
		name    string
		listing []sandbox.Reply
		want    providers.Code // Unknown: not found
	}{
		{"an order on two pages", moved, providers.Unavailable},
		{"each order once", []sandbox.Reply{listed(-1, entry("1"), entry("2")), listed(-1, entry("5")), listed(-1)}, providers.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, func(o *aliyun.Options) { o.PageSize = 2; o.PageBase = aliyun.PageBaseFrom1 })
			f.sb.Inject(aliyun.PathQuery, tc.listing...)
			o := testOrder(1950)
			o.Known = []string{"1", "2"}
			o.FirstAttempt = time.Now().Add(-time.Minute)
			o.Owned = func(context.Context, string) (bool, error) { return false, nil }
			r, err := f.c.Lookup(ctx(t), o)
			if got := providers.CodeOf(err); got != tc.want {
				t.Fatalf("Lookup = %+v, %v; want %v", r, err, tc.want)
			}
			if tc.want != providers.Unavailable {
				return
			}
			f = setup(t, func(o *aliyun.Options) { o.PageSize = 2; o.PageBase = aliyun.PageBaseFrom1 })
			f.sb.Inject(aliyun.PathQuery, tc.listing...)
			if known, err := f.c.Prepare(ctx(t), testOrder(1950)); providers.CodeOf(err) != providers.Unavailable {
				t.Fatalf("Prepare = %v, %v; want unavailable", known, err)
			}
		})
	}
}
