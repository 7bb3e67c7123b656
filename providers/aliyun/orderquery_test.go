package aliyun_test

import (
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
	"testing"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/aliyun/sandbox"
)

// raw is a canned order/query answer whose data is the given JSON, bytes
// as they are.
func raw(data string) sandbox.Reply {
	return sandbox.Reply{Code: 200, Data: json.RawMessage(data)}
}

var (
	nullData     = sandbox.Reply{Code: 200} // data null
	laterRefused = sandbox.Reply{Code: 460, Message: "request parameter error"}
)

// rawEntry is a listed order (not of testOrder's kind) as JSON.
func rawEntry(id string) string {
	return fmt.Sprintf(`{"orderId":%q,"commodityCode":"c","copies":9}`, id)
}

// dataOmitted answers the next order/query requests, as many as left
// says, with code 200 and no data member at all, and passes every other
// request on.
type dataOmitted struct {
	next http.Handler
	mu   sync.Mutex
	left int
}

func (h *dataOmitted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	hit := r.URL.Path == aliyun.PathQuery && h.left > 0
	if hit {
		h.left--
	}
	h.mu.Unlock()
	if !hit {
		h.next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"id":"1","code":200,"message":null}`)
}

// One order/query answer without data may be a fault. Read as a device
// without orders, it would make the snapshot empty for good: an older
// order of our commodity and copies, that no record owns, would then pass
// for ours after a create that failed ambiguously having made nothing
// (and be paid, with AutoPay). Prepare reads the first page again at once,
// and only a second answer without data makes the snapshot empty.
func TestPrepareReadsNoDataTwice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// omitted: answers served with no data member (before the
		// injected replies).
		omitted int
		replies []sandbox.Reply
		older   bool // the device holds an older unpaid order of our kind
		code    providers.Code
		calls   int // order/query calls Prepare makes
	}{
		{name: "null once, then the older order", replies: []sandbox.Reply{nullData}, older: true, calls: 5},
		{name: "omitted once, then the older order", omitted: 1, older: true, calls: 5},
		{name: "null once, then an empty page", replies: []sandbox.Reply{nullData}, calls: 4},
		// Then page 0, twice, which the sandbox refuses (it counts
		// from 1; a refusal counts only twice in a row).
		{name: "null twice", replies: []sandbox.Reply{nullData, nullData}, calls: 4},
		{name: "omitted, then null", omitted: 1, replies: []sandbox.Reply{nullData}, calls: 4},
		{name: "null, then a failure", replies: []sandbox.Reply{nullData, queryDown}, code: providers.Unavailable, calls: 2},
		// A refusal of the listing's params is the configuration's
		// problem, not the order's: the order waits.
		{name: "null, then a parameter refusal", replies: []sandbox.Reply{nullData, laterRefused}, code: providers.Unauthenticated, calls: 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sb := sandbox.New(appKey, appSecret, projectID)
			rec := &recorder{next: sb}
			srv := httptest.NewServer(&dataOmitted{next: rec, left: tt.omitted})
			t.Cleanup(srv.Close)
			c := newClient(t, srv.URL, appSecret, nil, nil)
			o := testOrder(3100 + i)
			var older string
			want := []string{}
			if tt.older {
				older = sb.AddOrder(sandbox.Order{IotID: iotID(3100 + i), CommodityCode: "streamingResource_20_10", Copies: 2}).OrderID
				want = []string{older}
			}
			sb.Inject(aliyun.PathQuery, tt.replies...)
			known, err := c.Prepare(ctx(t), o)
			if n := tt.omitted + sb.Calls(aliyun.PathQuery); n != tt.calls {
				t.Errorf("Prepare made %d order/query calls, want %d", n, tt.calls)
			}
			if tt.code != providers.OK {
				if providers.CodeOf(err) != tt.code || known != nil {
					t.Fatalf("Prepare = %#v, %v; want %v", known, err, tt.code)
				}
				return
			}
			if err != nil || known == nil || !slices.Equal(known, want) {
				t.Fatalf("Prepare = %#v, %v; want %v", known, err, want)
			}
			if !tt.older {
				return
			}
			// Our create fails ambiguously having made nothing: the
			// older order is in the snapshot, never taken for ours.
			sb.Inject(aliyun.PathCreate, sandbox.Reply{HTTPStatus: 503, GatewayMessage: "Service Unavailable"})
			if _, err := c.Submit(ctx(t), o); providers.CodeOf(err) != providers.Ambiguous {
				t.Fatalf("Submit = %v; want ambiguous", err)
			}
			o.Known = known
			o.Owned = func(context.Context, string) (bool, error) { return false, nil }
			r, err := c.Lookup(ctx(t), o)
			if providers.CodeOf(err) != providers.NotFound || r.ProviderOrderID == older {
				t.Fatalf("Lookup = %+v, %v; want not_found, never the older order %s", r, err, older)
			}
		})
	}
}

// order/query's answer shape is not documented. ParseOrderList reads the
// array under a known name, or under the one member that holds an array;
// a page wrapped in a one-element array (as a third-party client types the
// answer) is unwrapped; an entry with none of orderId, commodityCode or
// copies is never an order; a missing or null array, or an empty one under
// another name, is left to the listing (NoArray) when a total is given,
// and an error otherwise.
func TestParseOrderListShapes(t *testing.T) {
	t.Parallel()
	ord := rawEntry
	tests := []struct {
		name    string
		data    string
		ids     []string // nil: an error
		total   int64
		noArray bool
	}{
		{"bare array", `[` + ord("1") + `,` + ord("2") + `]`, []string{"1", "2"}, -1, false},
		{"bare empty array", `[]`, []string{}, -1, false},
		{"known key", `{"total":1,"orderList":[` + ord("1") + `]}`, []string{"1"}, 1, false},
		{"other key holds the array", `{"total":1,"orders":[` + ord("1") + `]}`, []string{"1"}, 1, false},
		{"other key, no total", `{"orders":[` + ord("1") + `]}`, []string{"1"}, -1, false},
		{"other key beside a null known one", `{"list":null,"orders":[` + ord("1") + `]}`, []string{"1"}, -1, false},
		{"other key empty, total 0", `{"total":0,"orders":[]}`, []string{}, 0, true},
		{"other key empty, no total", `{"orders":[]}`, nil, 0, false},
		{"two other keys hold arrays", `{"total":0,"orders":[],"tags":[]}`, nil, 0, false},
		{"two other keys, one with orders", `{"orders":[` + ord("1") + `],"tags":["a"]}`, nil, 0, false},
		{"known key beside another array", `{"list":[` + ord("1") + `],"tags":["a"]}`, []string{"1"}, -1, false},
		{"known key empty beside entries", `{"list":[],"orders":[` + ord("1") + `]}`, nil, 0, false},
		{"known key empty beside an empty array", `{"list":[],"tags":[]}`, []string{}, -1, false},
		{"array omitted, total 0", `{"total":0}`, []string{}, 0, true},
		{"array null, total 0", `{"total":0,"list":null}`, []string{}, 0, true},
		{"array null, totalCount 4", `{"totalCount":4,"list":null}`, []string{}, 4, true},
		{"array omitted, no total", `{"pageNo":3}`, nil, 0, false},
		{"empty object", `{}`, nil, 0, false},
		{"null", `null`, nil, 0, false},
		{"wrapped page, empty", `[{"pageNo":1,"pageSize":20,"pageCount":0,"total":0,"orderList":[]}]`, []string{}, 0, false},
		{"wrapped page with orders", `[{"pageNo":1,"total":2,"orderList":[` + ord("1") + `,` + ord("2") + `]}]`, []string{"1", "2"}, 2, false},
		{"wrapped page, null list", `[{"pageNo":2,"total":2,"orderList":null}]`, []string{}, 2, true},
		{"wrapped page under data", `[{"total":1,"data":[` + ord("1") + `]}]`, []string{"1"}, 1, false},
		{"wrapped page without a list key", `[{"pageNo":1,"pageSize":20,"total":0}]`, nil, 0, false},
		{"two wrapped pages", `[{"total":0,"orderList":[]},{"total":0,"orderList":[]}]`, nil, 0, false},
		{"wrapped page holding a wrapped page", `[{"total":0,"orderList":[{"total":0,"orderList":[]}]}]`, nil, 0, false},
		{"an order carrying a list key", `[{"orderId":"1","orderList":[]}]`, []string{"1"}, -1, false},
		{"entry without order fields", `[{"paymentStatus":0,"status":0}]`, nil, 0, false},
		{"entry with null order fields", `[{"orderId":null,"commodityCode":null,"copies":null}]`, nil, 0, false},
		{"null entry", `[null]`, nil, 0, false},
		{"one good entry, one without order fields", `{"data":[` + ord("1") + `,{"status":0}]}`, nil, 0, false},
		{"entry with only a commodity", `[{"commodityCode":"c"}]`, []string{""}, -1, false},
		{"entry with only copies", `[{"copies":2}]`, []string{""}, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := aliyun.ParseOrderList(json.RawMessage(tt.data))
			if tt.ids == nil {
				if err == nil {
					t.Fatalf("ParseOrderList(%s) = %+v; want an error", tt.data, l)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseOrderList(%s): %v", tt.data, err)
			}
			ids := []string{}
			for _, o := range l.Orders {
				ids = append(ids, o.OrderID)
			}
			if !slices.Equal(ids, tt.ids) || l.Total != tt.total || l.NoArray != tt.noArray {
				t.Fatalf("ParseOrderList(%s) = ids %v, total %d, no array %v; want %v, %d, %v", tt.data, ids, l.Total, l.NoArray, tt.ids, tt.total, tt.noArray)
			}
		})
	}
}

// A listing whose answers never show the order array in a known way must
// still be read, or every order on such a server waits until its deadline
// and is errored uncreated; but an answer without the array is an empty
// page only when a total confirms it: 0 on the first page, and on a later
// page the total every page gave, equal to the orders read. A lookup reads
// no other absence either.
func TestListingAnswersWithoutArray(t *testing.T) {
	t.Parallel()
	wrapped := func(pageNo, total int, ids ...string) sandbox.Reply {
		var orders []string
		for _, id := range ids {
			orders = append(orders, rawEntry(id))
		}
		return raw(fmt.Sprintf(`[{"pageNo":%d,"pageSize":2,"total":%d,"orderList":[%s]}]`, pageNo, total, strings.Join(orders, ",")))
	}
	emptyWrapped := raw(`[{"pageNo":1,"total":0,"orderList":[]}]`)
	tests := []struct {
		name    string
		replies []sandbox.Reply
		known   []string       // the snapshot; nil when code is set
		code    providers.Code // Prepare's and Lookup's failure
		calls   int            // order/query calls Prepare makes (page 0, refused by the sandbox, twice where it is judged)
	}{
		{"another key, empty, total 0", []sandbox.Reply{raw(`{"total":0,"orders":[]}`)}, []string{}, 0, 3},
		{"array omitted, total 0", []sandbox.Reply{raw(`{"total":0}`)}, []string{}, 0, 3},
		{"array null, total 0", []sandbox.Reply{raw(`{"total":0,"list":null}`)}, []string{}, 0, 3},
		{"another key, with orders", []sandbox.Reply{raw(`{"total":1,"orders":[{"orderId":"1","commodityCode":"c","copies":9}]}`), raw(`{"total":1,"orders":[]}`), raw(`{"total":1,"orders":[]}`)}, []string{"1"}, 0, 5},
		{"data null past the end", []sandbox.Reply{page(3, "1", "2"), page(3, "3"), nullData, nullData}, []string{"1", "2", "3"}, 0, 6},
		{"array omitted past the end", []sandbox.Reply{page(3, "1", "2"), page(3, "3"), raw(`{"total":3}`), raw(`{"total":3}`)}, []string{"1", "2", "3"}, 0, 6},
		{"array null past the end", []sandbox.Reply{page(3, "1", "2"), page(3, "3"), raw(`{"total":3,"data":null}`), raw(`{"total":3,"data":null}`)}, []string{"1", "2", "3"}, 0, 6},
		{"wrapped pages", []sandbox.Reply{wrapped(1, 3, "1", "2"), wrapped(2, 3, "3"), wrapped(3, 3)}, []string{"1", "2", "3"}, 0, 5},
		{"wrapped, empty device", []sandbox.Reply{emptyWrapped}, []string{}, 0, 3},
		{"wrapped, null list past the end", []sandbox.Reply{wrapped(1, 1, "1"), raw(`[{"pageNo":2,"total":1,"orderList":null}]`), raw(`[{"pageNo":2,"total":1,"orderList":null}]`)}, []string{"1"}, 0, 5},
		// Said once only, then a page with orders: not the end.
		{"data null past the end once", []sandbox.Reply{page(3, "1", "2"), page(3, "3"), nullData, page(4, "4")}, nil, providers.Unavailable, 4},
		// Not confirmed.
		{"first page, array omitted, total 2", []sandbox.Reply{raw(`{"total":2}`)}, nil, providers.Unavailable, 1},
		{"first page, array null, no total", []sandbox.Reply{raw(`{"list":null}`)}, nil, providers.Unavailable, 1},
		{"first page, another key, empty, no total", []sandbox.Reply{raw(`{"orders":[]}`)}, nil, providers.Unavailable, 1},
		{"data null past the end, no total", []sandbox.Reply{page(-1, "1", "2"), page(-1, "3"), nullData}, nil, providers.Unavailable, 3},
		{"data null past the end, total larger", []sandbox.Reply{page(4, "1", "2"), page(4, "3"), nullData}, nil, providers.Unavailable, 3},
		{"data null past the end, totals vary", []sandbox.Reply{page(3, "1", "2"), page(2, "3"), nullData}, nil, providers.Unavailable, 3},
		{"array omitted past the end, another total", []sandbox.Reply{page(3, "1", "2"), page(3, "3"), raw(`{"total":4}`)}, nil, providers.Unavailable, 3},
		{"wrapped page without a list key", []sandbox.Reply{raw(`[{"pageNo":1,"pageSize":20}]`)}, nil, providers.Unavailable, 1},
		// After a full page a total equal to the orders read may count
		// only that page: no end there.
		{"data null after a full page", []sandbox.Reply{page(2, "1", "2"), nullData}, nil, providers.Unavailable, 2},
		{"array omitted after a full page", []sandbox.Reply{page(2, "1", "2"), raw(`{"total":2}`)}, nil, providers.Unavailable, 2},
		{"entries without order fields", []sandbox.Reply{raw(`{"total":1,"list":[{"pageNo":1,"total":0}]}`)}, nil, providers.Unavailable, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prepareThenLookup(t, testOrder(3200+i), tt.replies, tt.known, tt.code, tt.code, tt.calls)
		})
	}
}

// A page after the first that order/query refuses (a server refusing a
// pageNo past the end, say) is no refusal of the order: the listing is
// unavailable, never invalid_argument, failed_precondition or
// permission_denied, which would error the order uncreated. When the
// totals confirm every order was read, a documented parameter refusal (460
// or 2000) of the page past the end ends the listing complete. The first
// page keeps its refusal in a lookup; in Prepare it is the configuration's
// (TestSnapshotRefusedWaitsForTheConfiguration).
func TestListingLaterPageRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		replies []sandbox.Reply
		known   []string       // the snapshot; nil when code is set
		code    providers.Code // Prepare's and Lookup's failure
	}{
		{"460 past the end, total confirms", []sandbox.Reply{page(1, "1"), laterRefused, laterRefused}, []string{"1"}, 0},
		{"460 past the end of three pages", []sandbox.Reply{page(5, "1", "2"), page(5, "3", "4"), page(5, "5"), laterRefused, laterRefused}, []string{"1", "2", "3", "4", "5"}, 0},
		{"2000 past the end, total confirms", []sandbox.Reply{page(1, "1"), {Code: 2000, Message: "param is invalid"}, {Code: 2000, Message: "param is invalid"}}, []string{"1"}, 0},
		{"460 past the end once, then orders", []sandbox.Reply{page(1, "1"), laterRefused, page(2, "2")}, nil, providers.Unavailable},
		{"460, no total", []sandbox.Reply{page(-1, "1"), laterRefused}, nil, providers.Unavailable},
		{"460 after a full page", []sandbox.Reply{page(2, "1", "2"), laterRefused}, nil, providers.Unavailable},
		{"460, total larger", []sandbox.Reply{page(2, "1"), laterRefused}, nil, providers.Unavailable},
		{"460, totals vary", []sandbox.Reply{page(3, "1", "2"), page(2, "3"), laterRefused}, nil, providers.Unavailable},
		{"400, total confirms", []sandbox.Reply{page(1, "1"), {Code: 400, Message: "request error"}}, nil, providers.Unavailable},
		{"403", []sandbox.Reply{page(1, "1"), {Code: 403, Message: "request forbidden"}}, nil, providers.Unavailable},
		{"404", []sandbox.Reply{page(1, "1"), {Code: 404, Message: "service not found"}}, nil, providers.Unavailable},
		{"2063", []sandbox.Reply{page(1, "1"), {Code: 2063, Message: "iotId not exist"}}, nil, providers.Unavailable},
		{"quota exhausted", []sandbox.Reply{page(1, "1"), {HTTPStatus: 403, GatewayMessage: "Quota Exhausted"}}, nil, providers.Unauthenticated},
		{"503", []sandbox.Reply{page(1, "1"), queryDown}, nil, providers.Unavailable},
		{"throttled", []sandbox.Reply{page(1, "1"), {HTTPStatus: 403, GatewayMessage: "Throttled by USER Flow Control"}}, nil, providers.RateLimited},
		{"first page refused, 460", []sandbox.Reply{laterRefused}, nil, providers.InvalidArgument},
		{"first page refused, 403", []sandbox.Reply{{Code: 403, Message: "request forbidden"}}, nil, providers.PermissionDenied},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prepare := tt.code
			if strings.HasPrefix(tt.name, "first page refused") {
				prepare = providers.Unauthenticated
			}
			calls := len(tt.replies)
			if tt.code == providers.OK {
				calls += 2 // and page 0, twice, which the sandbox refuses: it counts from 1 (a refusal counts only twice in a row)
			}
			prepareThenLookup(t, testOrder(3300+i), tt.replies, tt.known, prepare, tt.code, calls)
		})
	}
	// Found on the first page, with the page past the end refused: ours.
	t.Run("lookup finds ours before the refusal", func(t *testing.T) {
		t.Parallel()
		f := setup(t, nil)
		f.sb.Inject(aliyun.PathQuery, listed(2, entry("1"), ourEntry("2", nil)), laterRefused, laterRefused)
		o := testOrder(3399)
		o.Known = []string{"1"}
		o.Owned = func(context.Context, string) (bool, error) { return false, nil }
		if r, err := f.c.Lookup(ctx(t), o); err != nil || r.ProviderOrderID != "2" {
			t.Fatalf("Lookup = %+v, %v; want order 2", r, err)
		}
	})
}

// The page-wrapper answer a third-party client types (data: [{pageNo,
// pageSize, pageCount, total, orderList}]), served for every pageNo, on a
// device without orders: read as an order, every page held an order
// without an id and the listing ran past MaxPages (failed_precondition,
// the order errored). Unwrapped, one call shows the device empty (and one
// for page 0, the same empty page, which shows no base).
func TestListingWrappedPageEveryPage(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	wrapped := raw(`[{"pageNo":1,"pageSize":20,"pageCount":0,"total":0,"orderList":[]}]`)
	for range 60 {
		f.sb.Inject(aliyun.PathQuery, wrapped)
	}
	known, err := f.c.Prepare(ctx(t), testOrder(3400))
	if err != nil || known == nil || len(known) != 0 {
		t.Fatalf("Prepare = %#v, %v; want an empty snapshot", known, err)
	}
	if n := f.sb.Calls(aliyun.PathQuery); n != 2 {
		t.Errorf("Prepare made %d order/query calls, want 2", n)
	}
}

// cmpCode is c, or def when c is OK.
// prepareThenLookup serves replies to order/query (page size 2) for
// Prepare, which must make calls calls and answer known, or fail with
// code; then the same replies to a lookup of o, which must answer
// not_found where Prepare read a complete listing (it shows nothing new),
// else code.
// prepareThenLookup serves replies to Prepare, then again to a Lookup, and
// checks that Prepare fails with prepareCode (or, OK, gives wantKnown) and
// the Lookup with lookupCode (or, OK, NotFound).
func prepareThenLookup(t *testing.T, o providers.Order, replies []sandbox.Reply, wantKnown []string, prepareCode, lookupCode providers.Code, calls int) {
	t.Helper()
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
	f.sb.Inject(aliyun.PathQuery, replies...)
	known, err := f.c.Prepare(ctx(t), o)
	if n := f.sb.Calls(aliyun.PathQuery); n != calls {
		t.Errorf("Prepare made %d order/query calls, want %d", n, calls)
	}
	if prepareCode != providers.OK {
		if providers.CodeOf(err) != prepareCode || known != nil {
			t.Fatalf("Prepare = %#v, %v; want %v", known, err, prepareCode)
		}
	} else if err != nil || known == nil || !slices.Equal(known, wantKnown) {
		t.Fatalf("Prepare = %#v, %v; want %v", known, err, wantKnown)
	}
	f.sb.Inject(aliyun.PathQuery, replies...)
	o.Known = append([]string{}, wantKnown...)
	o.Owned = func(context.Context, string) (bool, error) { return false, nil }
	want := cmpCode(lookupCode, providers.NotFound)
	if r, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) != want {
		t.Fatalf("Lookup = %+v, %v; want %v", r, err, want)
	}
}

func cmpCode(c, def providers.Code) providers.Code {
	if c == providers.OK {
		return def
	}
	return c
}

// order/query refused before any create is no refusal of the order,
// unless it refuses the order's own identity (2062, 2063, 2065, 2066: an
// identityId or iotId not known, not bound, not the manager): forbidden
// (403), service not found (404), the request or its params refused (400,
// 460, 2000: the listing's params are the client's), quota or arrears
// (the account, held as the account anywhere: providers.ErrAccount) are
// the configuration's problem, and Prepare fails
// Unauthenticated, so that the order waits instead of being errored
// without ever being created. A lookup keeps the codes (it never errors
// an order on them).
func TestSnapshotRefusedWaitsForTheConfiguration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		reply  sandbox.Reply
		lookup providers.Code // the first page's code, as a lookup sees it
		own    bool           // the order's own identity refused
	}{
		{sandbox.Reply{Code: 403, Message: "request forbidden"}, providers.PermissionDenied, false},
		{sandbox.Reply{Code: 404, Message: "service not found"}, providers.FailedPrecondition, false},
		{sandbox.Reply{Code: 400, Message: "request error"}, providers.InvalidArgument, false},
		{sandbox.Reply{Code: 460, Message: "request parameter error"}, providers.InvalidArgument, false},
		{sandbox.Reply{Code: 2000, Message: "param is invalid"}, providers.InvalidArgument, false},
		{sandbox.Reply{HTTPStatus: 403, GatewayMessage: "Quota Exhausted"}, providers.Unauthenticated, false},
		{sandbox.Reply{HTTPStatus: 403, GatewayMessage: "User Arrears"}, providers.Unauthenticated, false},
		{sandbox.Reply{Code: 2062, Message: "identityId does not exist"}, providers.InvalidArgument, true},
		{sandbox.Reply{Code: 2063, Message: "iotId not exist"}, providers.InvalidArgument, true},
		{sandbox.Reply{Code: 2065, Message: "identityId and iotId not bound"}, providers.InvalidArgument, true},
		{sandbox.Reply{Code: 2066, Message: "identityId is not manager"}, providers.InvalidArgument, true},
	}
	for i, tt := range tests {
		name := fmt.Sprint(tt.reply.Code)
		if tt.reply.GatewayMessage != "" {
			name = tt.reply.GatewayMessage
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			prepare := providers.Unauthenticated
			if tt.own {
				prepare = providers.InvalidArgument
			}
			prepareThenLookup(t, testOrder(3500+i), []sandbox.Reply{tt.reply}, nil, prepare, tt.lookup, 1)
			f := setup(t, nil)
			f.sb.Inject(aliyun.PathQuery, tt.reply)
			_, err := f.c.Prepare(ctx(t), testOrder(3520+i))
			switch {
			case tt.reply.GatewayMessage != "":
				// The account, as anywhere: it says so.
				if !errors.Is(err, providers.ErrAccount) {
					t.Errorf("Prepare = %v; want the account as its cause", err)
				}
			case !tt.own && !strings.Contains(err.Error(), "not the order's identity"):
				t.Errorf("Prepare = %v; want the reason the order waits", err)
			}
		})
	}
}
