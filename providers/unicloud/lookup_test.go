package unicloud_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/unicloud"
	"github.com/orderworker/orderworker/providers/unicloud/sandbox"
	"github.com/orderworker/orderworker/tasks/guard"
)

// seeded is an order someone else created, for instance name at t.
func seeded(name string, at time.Time) sandbox.Order {
	return sandbox.Order{InstanceName: name, OrderCategory: "NEW", PayType: "DAY_MONTH_USAGE",
		RegionID: "cn-tianjin-yfb", ComponentCode: "nas.onestor", SpecificationCode: "nas.capacity.nfs",
		RentCount: 1, RentUnit: "month", Created: at}
}

func TestLookupMatching(t *testing.T) {
	t.Parallel()
	now := time.Now()
	first := now.Add(-2 * time.Minute)
	tests := []struct {
		name string
		opts unicloud.Options
		seed []sandbox.Order
		want providers.Code // Unknown: found
		// wantID is the index in seed of the order Lookup must report.
		wantID int
	}{
		{name: "empty window", want: providers.NotFound},
		{name: "only other instances", seed: []sandbox.Order{seeded("other-1", now), seeded("other-2", first)},
			want: providers.NotFound},
		{name: "ours among others", seed: []sandbox.Order{seeded("other-1", now), seeded("ours", first.Add(time.Second)), seeded("other-2", now)},
			wantID: 1},
		{name: "two with our name", seed: []sandbox.Order{seeded("ours", first), seeded("ours", now)},
			want: providers.Ambiguous},
		{name: "ours before the window", seed: []sandbox.Order{seeded("ours", first.Add(-time.Hour))},
			want: providers.NotFound},
		{name: "ours before the window and ours inside", seed: []sandbox.Order{seeded("ours", first.Add(-time.Hour)), seeded("ours", now)},
			wantID: 1},
		// Listed by the window written in UTC, which this server reads in
		// UTC+8: eight hours before the window by its UTC+8 reading, inside
		// it by its UTC one. Neither ours nor ruled out.
		{name: "our name eight hours before the window", seed: []sandbox.Order{seeded("ours", first.Add(-8*time.Hour))},
			want: providers.Ambiguous},
		{name: "our name eight hours before the window and ours inside", seed: []sandbox.Order{seeded("ours", first.Add(-8*time.Hour)), seeded("ours", now)},
			want: providers.Ambiguous},
		{name: "inside the margin", seed: []sandbox.Order{seeded("ours", first.Add(-10*time.Minute))},
			wantID: 0},
		// The answer's OrderCategory words are not documented: another
		// word is neither ours nor ruled out.
		{name: "a RENEW of the same name leaves it to a person",
			seed: []sandbox.Order{func() sandbox.Order { o := seeded("ours", now); o.OrderCategory = "RENEW"; return o }()},
			want: providers.Ambiguous},
		{name: "a RENEW of another name is not ours",
			seed: []sandbox.Order{func() sandbox.Order { o := seeded("other", now); o.OrderCategory = "RENEW"; return o }()},
			want: providers.NotFound},
		{name: "a numeric OrderCategory rules nothing out",
			seed:   []sandbox.Order{func() sandbox.Order { o := seeded("ours", now); o.OrderCategory = "1"; return o }()},
			wantID: 0},
		{name: "other product category counts without the option",
			seed: []sandbox.Order{seeded("ours", now), func() sandbox.Order { o := seeded("ours", now); o.ProductCategory = "EBS"; return o }()},
			want: providers.Ambiguous},
		{name: "other product category with the option leaves it to a person", opts: unicloud.Options{ProductCategory: "nas"},
			seed: []sandbox.Order{seeded("ours", now), func() sandbox.Order { o := seeded("ours", now); o.ProductCategory = "EBS"; return o }()},
			want: providers.Ambiguous},
		{name: "the configured product category", opts: unicloud.Options{ProductCategory: "nas"},
			seed:   []sandbox.Order{seeded("ours", now)},
			wantID: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sb, c := setup(t, tt.opts)
			var ids []string
			for _, o := range tt.seed {
				ids = append(ids, sb.Seed(o).ID)
			}
			o := order("ours")
			o.FirstAttempt = first
			r, err := c.Lookup(context.Background(), o)
			if tt.want != providers.Unknown {
				if c := providers.CodeOf(err); c != tt.want {
					t.Fatalf("Lookup = %+v, %v; want %v", r, err, tt.want)
				}
				checkSecretFree(t, err)
				return
			}
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			if r.Status != providers.StatusPaid || r.ProviderOrderID != ids[tt.wantID] {
				t.Errorf("Lookup = %+v, want paid with id %s", r, ids[tt.wantID])
			}
		})
	}
}

func TestLookupAmbiguousSaysSo(t *testing.T) {
	t.Parallel()
	sb, c := setup(t, unicloud.Options{})
	sb.Seed(seeded("twice", time.Now()))
	sb.Seed(seeded("twice", time.Now()))
	o := order("twice")
	o.FirstAttempt = time.Now()
	_, err := c.Lookup(context.Background(), o)
	if providers.CodeOf(err) != providers.Ambiguous || !strings.Contains(err.Error(), "2 orders") {
		t.Errorf("Lookup = %v, want ambiguous naming 2 orders", err)
	}
}

func TestLookupWithoutFirstAttempt(t *testing.T) {
	t.Parallel()
	_, c := setup(t, unicloud.Options{})
	o := order("nofirst")
	o.FirstAttempt = time.Time{}
	if _, err := c.Lookup(context.Background(), o); providers.CodeOf(err) != providers.Ambiguous {
		t.Errorf("Lookup without FirstAttempt = %v, want ambiguous", err)
	}
}

// The window is asked for in UTC+8 and again in UTC, so that a server
// reading zone-less times as UTC still lists our order: an order created
// at 09:59Z must be found with windows of 17:43 to 18:15 and 09:43 to
// 10:15, and one at 09:30Z must not be in them.
func TestLookupWindowIsChinaStandardTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	sb := sandbox.New(accessKeyID, accessKeySecret)
	sb.Now = clock
	var mu sync.Mutex
	var queries []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); q.Get("Action") == "QueryOrders" {
			mu.Lock()
			queries = append(queries, q)
			mu.Unlock()
		}
		sb.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := client(t, srv.URL, unicloud.Options{Now: clock})
	early := sb.Seed(seeded("cst", time.Date(2024, 3, 1, 9, 30, 0, 0, time.UTC)))
	ours := sb.Seed(seeded("cst", time.Date(2024, 3, 1, 9, 59, 0, 0, time.UTC)))
	o := order("cst")
	o.FirstAttempt = time.Date(2024, 3, 1, 9, 58, 0, 500e6, time.UTC)
	r, err := c.Lookup(context.Background(), o)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if r.ProviderOrderID != ours.ID || r.ProviderOrderID == early.ID {
		t.Errorf("Lookup found %s, want %s", r.ProviderOrderID, ours.ID)
	}
	if len(queries) != 2 {
		t.Fatalf("%d QueryOrders calls, want 2", len(queries))
	}
	q := queries[0]
	if q.Get("StartTime") != "2024-03-01 17:43:00" || q.Get("EndTime") != "2024-03-01 18:15:00" {
		t.Errorf("window %q to %q, want 2024-03-01 17:43:00 to 2024-03-01 18:15:00", q.Get("StartTime"), q.Get("EndTime"))
	}
	if q := queries[1]; q.Get("StartTime") != "2024-03-01 09:43:00" || q.Get("EndTime") != "2024-03-01 10:15:00" {
		t.Errorf("second window %q to %q, want 2024-03-01 09:43:00 to 2024-03-01 10:15:00 (UTC)", q.Get("StartTime"), q.Get("EndTime"))
	}
	if q.Get("Page") != "1" || q.Get("Size") != "100" {
		t.Errorf("Page %q Size %q, want 1 and 100", q.Get("Page"), q.Get("Size"))
	}
}

// A worker whose clock runs behind the ledger's by more than the margin
// still searches up to the present: the window ends at the later of its
// own clock and the ledger's (Order.Now), on which the first attempt was
// stamped. Without it, the order created a minute ago is outside the
// window, and its lookup would say not_found.
func TestLookupWindowEndsAtTheLedgersNow(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	sb := sandbox.New(accessKeyID, accessKeySecret)
	sb.Now = func() time.Time { return now }
	sb.Skew = time.Hour // the provider takes this worker's timestamps (the tester's fake did)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	behind := func() time.Time { return now.Add(-20 * time.Minute) }
	c := client(t, srv.URL, unicloud.Options{Now: behind})
	ours := sb.Seed(seeded("late", now.Add(-time.Minute)))
	o := order("late")
	o.FirstAttempt = now.Add(-2 * time.Minute)
	o.Now = now
	r, err := c.Lookup(context.Background(), o)
	if err != nil || r.ProviderOrderID != ours.ID {
		t.Fatalf("Lookup with this clock 20 minutes behind the ledger's = %+v, %v; want %s", r, err, ours.ID)
	}
}

// Paging reads every page, even when the provider caps Size below what
// was asked for.
func TestLookupPages(t *testing.T) {
	t.Parallel()
	sb, c := setup(t, unicloud.Options{PageSize: 10}, func(sb *sandbox.Server) { sb.MaxPageSize = 7 })
	now := time.Now()
	var ours sandbox.Order
	for i := range 60 {
		if i == 3 { // an early one, so it sits on the last page (newest first)
			ours = sb.Seed(seeded("paged", now.Add(-time.Minute)))
		}
		renewal := seeded(fmt.Sprintf("other-%d", i), now)
		renewal.OrderCategory = "RENEW" // another instance's: told apart by its name
		sb.Seed(renewal)
	}
	o := order("paged")
	o.FirstAttempt = now.Add(-2 * time.Minute)
	r, err := c.Lookup(context.Background(), o)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if r.ProviderOrderID != ours.ID {
		t.Errorf("Lookup found %s, want %s", r.ProviderOrderID, ours.ID)
	}
	if n := sb.Calls("QueryOrders"); n != 10 { // ceil(61/7), then the window in UTC: eight hours earlier here, empty
		t.Errorf("%d QueryOrders calls, want 10", n)
	}
	if n := sb.Calls("OrderDetail"); n != 61 { // the list carries no names
		t.Errorf("%d OrderDetail calls, want 61", n)
	}
}

func TestLookupBoundsPages(t *testing.T) {
	t.Parallel()
	sb, c := setup(t, unicloud.Options{PageSize: 1})
	for i := range unicloud.MaxPages + 1 {
		sb.Seed(seeded(fmt.Sprintf("other-%d", i), time.Now()))
	}
	o := order("bounded")
	o.FirstAttempt = time.Now()
	_, err := c.Lookup(context.Background(), o)
	if providers.CodeOf(err) != providers.Ambiguous {
		t.Errorf("Lookup over %d pages = %v, want ambiguous", unicloud.MaxPages, err)
	}
	if n := sb.Calls("QueryOrders"); n != unicloud.MaxPages {
		t.Errorf("%d QueryOrders calls, want %d", n, unicloud.MaxPages)
	}
}

// fakeTransaction answers QueryOrders with pages[Page-1] and OrderDetail
// with details[OrderId], without checking signatures: it plays answers
// the sandbox does not give.
func fakeTransaction(t *testing.T, pages []string, details map[string]string) (string, func() int) {
	t.Helper()
	var mu sync.Mutex
	detailCalls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch q.Get("Action") {
		case "QueryOrders":
			var n int
			fmt.Sscan(q.Get("Page"), &n)
			if n < 1 || n > len(pages) {
				fmt.Fprint(w, `{"TotalCount":0,"OrderList":{"Order":[]}}`)
				return
			}
			fmt.Fprint(w, pages[n-1])
		case "OrderDetail":
			mu.Lock()
			detailCalls++
			mu.Unlock()
			d, ok := details[q.Get("OrderId")]
			if !ok {
				d = `{"Status":false,"Auth":true,"Code":"OrderNotExist"}`
			}
			fmt.Fprint(w, d)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() int { mu.Lock(); defer mu.Unlock(); return detailCalls }
}

func listing(total int, orders ...string) string {
	return fmt.Sprintf(`{"TotalCount":%d,"PageNum":1,"PageSize":100,"OrderList":{"Order":[%s]}}`, total, strings.Join(orders, ","))
}

func listed(id, category string) string {
	return fmt.Sprintf(`{"Id":%q,"OrderCategory":%q,"ProductCategory":"NAS","PayType":"DAY_MONTH_USAGE","CreateTime":%q}`,
		id, category, time.Now().In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout))
}

func TestLookupUnidentifiable(t *testing.T) {
	t.Parallel()
	ours := `{"Order":{"Id":"11","Items":[{"id":1144119593787195392,"instanceName":"ours"}]}}`
	nameless := `{"Order":{"Id":"12","Items":[{"id":1,"productSku":"nas.capacity.nfs"}]}}`
	other := `{"Order":{"Id":"13","InstanceName":"someone-else"}}`
	tests := []struct {
		name    string
		pages   []string
		want    providers.Code // Unknown: found "11"
		details int            // OrderDetail calls expected
	}{
		{name: "ours and a nameless one", pages: []string{listing(2, listed("11", "NEW"), listed("12", "NEW"))},
			details: 2, want: providers.Ambiguous},
		{name: "ours and another", pages: []string{listing(2, listed("11", "NEW"), listed("13", "NEW"))},
			details: 2},
		{name: "nameless only", pages: []string{listing(1, listed("12", "NEW"))},
			details: 1, want: providers.Ambiguous},
		{name: "listed but not detailed", pages: []string{listing(1, listed("99", "NEW"))},
			details: 1, want: providers.Ambiguous},
		{name: "names and times in the list spare the detail call",
			pages: []string{listing(2, fmt.Sprintf(`{"Id":"11","InstanceName":"ours","CreateTime":%q}`, time.Now().In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout)),
				`{"Id":"13","InstanceName":"x"}`)},
			details: 0},
		{name: "our name on a listed order without an id",
			pages:   []string{listing(1, fmt.Sprintf(`{"InstanceName":"ours","CreateTime":%q}`, time.Now().In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout)))},
			details: 0, want: providers.Ambiguous},
		{name: "our name without a time in the list, nor in the detail",
			pages:   []string{listing(1, `{"Id":"11","InstanceName":"ours"}`)},
			details: 1, want: providers.Ambiguous},
		{name: "a RENEW is detailed like any order", pages: []string{listing(2, listed("11", "NEW"), listed("12", "RENEW"))},
			details: 2, want: providers.Ambiguous},
		{name: "list shrank while paging",
			pages:   []string{listing(3, listed("13", "NEW"), listed("11", "NEW")), listing(2)},
			details: 0, want: providers.Unavailable},
		{name: "empty page before the total",
			pages:   []string{listing(3, listed("13", "NEW"), listed("11", "NEW")), listing(3)},
			details: 0, want: providers.Unavailable},
		{name: "malformed list", pages: []string{`{"TotalCount":"many"}`}, want: providers.Unavailable},
		// A count kept apart from the rows, behind them: more rows than
		// it says are read, so it is not the end; only an empty page is.
		{name: "a TotalCount behind the rows is not the end",
			pages:   []string{listing(0, listed("13", "NEW")), listing(1, listed("11", "NEW")), listing(1)},
			details: 2},
		{name: "list without TotalCount stops at an empty page",
			pages:   []string{`{"OrderList":[` + listed("11", "NEW") + `]}`, `{"OrderList":[]}`},
			details: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			endpoint, detailCalls := fakeTransaction(t, tt.pages, map[string]string{"11": ours, "12": nameless, "13": other})
			c := client(t, endpoint, unicloud.Options{})
			o := order("ours")
			o.FirstAttempt = time.Now().Add(-time.Minute)
			r, err := c.Lookup(context.Background(), o)
			if tt.want != providers.Unknown {
				if got := providers.CodeOf(err); got != tt.want {
					t.Errorf("Lookup = %+v, %v; want %v", r, err, tt.want)
				}
			} else if err != nil || r.ProviderOrderID != "11" {
				t.Errorf("Lookup = %+v, %v; want order 11", r, err)
			}
			if n := detailCalls(); n != tt.details {
				t.Errorf("%d OrderDetail calls, want %d", n, tt.details)
			}
		})
	}
}

func TestLookupBoundsDetails(t *testing.T) {
	t.Parallel()
	var orders []string
	for i := range unicloud.MaxDetails + 5 {
		orders = append(orders, listed(fmt.Sprint(100+i), "NEW"))
	}
	endpoint, detailCalls := fakeTransaction(t, []string{listing(len(orders), orders...)}, nil)
	c := client(t, endpoint, unicloud.Options{})
	o := order("ours")
	o.FirstAttempt = time.Now()
	if _, err := c.Lookup(context.Background(), o); providers.CodeOf(err) != providers.Ambiguous {
		t.Errorf("Lookup = %v, want ambiguous", err)
	}
	if n := detailCalls(); n != unicloud.MaxDetails {
		t.Errorf("%d OrderDetail calls, want %d", n, unicloud.MaxDetails)
	}
}

// OrderDetail by id reads the documented example's shape, numbers and all.
func TestLookupByIDDocumentedShape(t *testing.T) {
	t.Parallel()
	const doc = `{"Order":{"Id":"1144119593783001088","ItemCount":1,"UserName":"haha","ProductCategory":"DATA_HARD_DISK",
		"ProductRentCount":0,"ProductRentUnit":"HOURS","Items":[{"id":1144119593787195392,"orderId":1144119593783001088,
		"orderNo":"P21784954245923","productId":7489}]}}`
	endpoint, _ := fakeTransaction(t, nil, map[string]string{"1144119593783001088": doc, "1": `{"Order":{"Id":"2"}}`, "3": `{"Order":null}`})
	c := client(t, endpoint, unicloud.Options{})
	r, err := c.Lookup(context.Background(), providers.Order{ProviderOrderID: "1144119593783001088"})
	if err != nil || r.Status != providers.StatusPaid || r.ProviderOrderID != "1144119593783001088" {
		t.Errorf("Lookup = %+v, %v", r, err)
	}
	for _, id := range []string{"1", "3", "404"} {
		_, err := c.Lookup(context.Background(), providers.Order{ProviderOrderID: id})
		if providers.CodeOf(err) != providers.Unavailable {
			t.Errorf("Lookup(%s) = %v, want unavailable (never not_found for an id CreateOrder gave)", id, err)
		}
	}
}

// The sandbox's documented shapes, as the client reads them.
func TestSandboxShapes(t *testing.T) {
	t.Parallel()
	sb, c := setup(t, unicloud.Options{})
	o := order("shape")
	r, err := c.Submit(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	got := sb.Orders()[0]
	if got.InstanceName != "shape" || got.VPC != "vpc-g2gmswxtthml" || got.RentCount != 1 || got.Unit != "GB" || got.DataEncryption != 0 {
		t.Errorf("sandbox order %+v does not hold the params", got)
	}
	if got.ID != r.ProviderOrderID {
		t.Errorf("ids %s and %s differ", got.ID, r.ProviderOrderID)
	}
	if _, err := json.Marshal(got); err != nil {
		t.Error(err)
	}
}

// A listed order is ruled out by CreateTime only when the time is surely
// outside the window, whatever zone it was written in, and adopted only
// when it is surely inside: one in between, or unreadable, leaves the
// lookup to a person.
func TestLookupCreateTimeSlack(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ours := `{"Order":{"Id":"11","Items":[{"instanceName":"ours"}]}}`
	at := func(t time.Time) string {
		return fmt.Sprintf(`{"Id":"11","OrderCategory":"NEW","CreateTime":%q}`, t.In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout))
	}
	raw := func(v string) string { return `{"Id":"11","OrderCategory":"NEW","CreateTime":` + v + `}` }
	tests := []struct {
		name  string
		entry string
		found bool
	}{
		{"inside", at(now), true},
		// Read as UTC+8 it predates the first attempt, as UTC it does
		// not: neither ours nor ruled out.
		{"written in UTC, read as UTC+8", fmt.Sprintf(`{"Id":"11","CreateTime":%q}`, now.UTC().Format(unicloud.QueryTimeLayout)), false},
		{"a day early", at(now.Add(-24 * time.Hour)), false},
		{"epoch milliseconds inside", raw(fmt.Sprint(now.UnixMilli())), true},
		{"epoch seconds a day early", raw(fmt.Sprint(now.Add(-24 * time.Hour).Unix())), false},
		{"compact digits are not read", raw(`"` + now.Format("20060102150405") + `"`), false},
		{"a small number is not read", raw("1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			endpoint, _ := fakeTransaction(t, []string{listing(1, tt.entry)}, map[string]string{"11": ours})
			c := client(t, endpoint, unicloud.Options{})
			o := order("ours")
			o.FirstAttempt = now.Add(-time.Minute)
			r, err := c.Lookup(context.Background(), o)
			if tt.found && (err != nil || r.ProviderOrderID != "11") {
				t.Errorf("Lookup = %+v, %v; want order 11", r, err)
			}
			if !tt.found && err == nil {
				t.Errorf("Lookup = %+v; want no order adopted", r)
			}
		})
	}
}

// An order that belongs to another record under its Id is never adopted,
// and is not even detailed. One whose OrderNo only another record holds is
// neither adopted nor ruled out: it may be ours, should Id and OrderNo be
// numbered apart and ours carry an OrderNo equal to another order's Id, and
// ruled out it would be created twice. Only its name can still show it is
// another instance's.
func TestLookupSkipsOwnedOrders(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name    string
		seed    []sandbox.Order
		owned   []int // indexes in seed of orders other records own
		ownedNo []int // the same, owned under their OrderNo
		ownErr  error
		want    providers.Code // Unknown: found
		wantID  int
		details int // OrderDetail calls
		checked int // Owned calls
	}{
		{name: "only another record's", seed: []sandbox.Order{seeded("same", now)}, owned: []int{0},
			want: providers.NotFound, details: 0, checked: 1},
		// Each order not owned under its Id is asked for under its
		// OrderNo too.
		{name: "ours and another record's", seed: []sandbox.Order{seeded("same", now), seeded("same", now)}, owned: []int{0},
			wantID: 1, details: 1, checked: 3},
		{name: "ours, its OrderNo another record's", seed: []sandbox.Order{seeded("same", now)}, ownedNo: []int{0},
			want: providers.Ambiguous, details: 1, checked: 2},
		{name: "ours and another with its OrderNo another record's", seed: []sandbox.Order{seeded("same", now), seeded("same", now)}, ownedNo: []int{0},
			want: providers.Ambiguous, details: 2, checked: 4},
		{name: "another instance's, its OrderNo another record's", seed: []sandbox.Order{seeded("other", now)}, ownedNo: []int{0},
			want: providers.NotFound, details: 1, checked: 2},
		{name: "owned under its Id and its OrderNo", seed: []sandbox.Order{seeded("same", now)}, owned: []int{0}, ownedNo: []int{0},
			want: providers.NotFound, details: 0, checked: 1},
		{name: "two, both others'", seed: []sandbox.Order{seeded("same", now), seeded("same", now)}, owned: []int{0, 1},
			want: providers.NotFound, details: 0, checked: 2},
		{name: "ownership unknown", seed: []sandbox.Order{seeded("same", now)}, ownErr: errors.New("ledger unreachable"),
			want: providers.Unavailable, details: 0, checked: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sb, c := setup(t, unicloud.Options{})
			var ids, nos, owned []string
			for _, o := range tt.seed {
				s := sb.Seed(o)
				ids, nos = append(ids, s.ID), append(nos, s.OrderNo)
			}
			for _, i := range tt.owned {
				owned = append(owned, ids[i])
			}
			for _, i := range tt.ownedNo {
				owned = append(owned, nos[i])
			}
			o := order("same")
			o.FirstAttempt = now.Add(-time.Minute)
			var mu sync.Mutex
			checked := 0
			o.Owned = func(_ context.Context, id string) (bool, error) {
				mu.Lock()
				checked++
				mu.Unlock()
				return slices.Contains(owned, id), tt.ownErr
			}
			r, err := c.Lookup(context.Background(), o)
			switch {
			case tt.want != providers.Unknown:
				if c := providers.CodeOf(err); c != tt.want {
					t.Fatalf("Lookup = %+v, %v; want %v", r, err, tt.want)
				}
				checkSecretFree(t, err)
			case err != nil:
				t.Fatalf("Lookup: %v", err)
			case r.ProviderOrderID != ids[tt.wantID]:
				t.Errorf("Lookup found %s, want %s", r.ProviderOrderID, ids[tt.wantID])
			}
			if n := sb.Calls("OrderDetail"); n != tt.details {
				t.Errorf("%d OrderDetail calls, want %d", n, tt.details)
			}
			if checked != tt.checked {
				t.Errorf("%d ownership checks, want %d", checked, tt.checked)
			}
		})
	}
}

// A listed order without an OrderNo is asked for under the one its detail
// shows. Another record holding that OrderNo (but not the Id) does not
// make the order that record's: it may be ours, and a person decides.
func TestLookupOwnedUnderDetailedOrderNo(t *testing.T) {
	t.Parallel()
	endpoint, _ := fakeTransaction(t, []string{listing(1, listed("11", "NEW"))},
		map[string]string{"11": `{"Order":{"Id":"11","OrderNo":"P0001","InstanceName":"ours"}}`})
	c := client(t, endpoint, unicloud.Options{})
	o := order("ours")
	o.FirstAttempt = time.Now().Add(-time.Minute)
	var asked []string
	o.Owned = func(_ context.Context, id string) (bool, error) {
		asked = append(asked, id)
		return id == "P0001", nil
	}
	r, err := c.Lookup(context.Background(), o)
	if providers.CodeOf(err) != providers.Ambiguous {
		t.Errorf("Lookup = %+v, %v; want ambiguous (the order may be ours), never not_found", r, err)
	}
	if !slices.Equal(asked, []string{"11", "P0001"}) {
		t.Errorf("ownership asked for %v, want [11 P0001]", asked)
	}
}

// An order already known (by its detailed name) to be another instance's
// costs no ownership check.
func TestLookupChecksOwnershipOnlyOfPossibleMatches(t *testing.T) {
	t.Parallel()
	sb, c := setup(t, unicloud.Options{})
	sb.Seed(seeded("other", time.Now()))
	o := order("mine")
	o.FirstAttempt = time.Now().Add(-time.Minute)
	if _, err := c.Lookup(context.Background(), o); providers.CodeOf(err) != providers.NotFound {
		t.Fatalf("first Lookup = %v, want not_found", err)
	}
	o.Owned = func(_ context.Context, id string) (bool, error) {
		t.Errorf("ownership of %s checked, though its name is known to be another's", id)
		return false, nil
	}
	if _, err := c.Lookup(context.Background(), o); providers.CodeOf(err) != providers.NotFound {
		t.Fatalf("second Lookup = %v, want not_found", err)
	}
}

// A server that reads the zone-less window as UTC and writes CreateTime in
// UTC: the window written in UTC+8 misses our order, the one written in
// UTC lists it. Its time cannot be placed, so it is left to a person:
// never not_found, which would create the order a second time. Nor is a
// window the server answers with a "no such order" code (in either zone)
// an empty one: it shows no order list.
func TestLookupOnAServerInUTC(t *testing.T) {
	t.Parallel()
	const emptyList = `{"TotalCount":0,"OrderList":{"Order":[]}}`
	const noSuchOrder = `{"Status":false,"Auth":true,"Code":"OrderNotExist","Msg":"订单不存在"}`
	tests := []struct {
		name  string
		zone  *time.Location // the zone the server reads windows and writes CreateTime in
		empty string         // its answer to a window without our order
		want  providers.Code // Unknown: found
	}{
		{"in UTC", time.UTC, emptyList, providers.Ambiguous},
		{"in UTC, not-found code", time.UTC, noSuchOrder, providers.Unavailable},
		{"in UTC+8", unicloud.ChinaTime(), emptyList, providers.Unknown},
		{"in UTC+8, not-found code for the UTC window", unicloud.ChinaTime(), noSuchOrder, providers.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			created := time.Now().Add(-30 * time.Second)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				q := r.URL.Query()
				switch q.Get("Action") {
				case "QueryOrders":
					from, err1 := time.ParseInLocation(unicloud.QueryTimeLayout, q.Get("StartTime"), tt.zone)
					to, err2 := time.ParseInLocation(unicloud.QueryTimeLayout, q.Get("EndTime"), tt.zone)
					if err1 != nil || err2 != nil || q.Get("Page") != "1" || created.Before(from) || created.After(to) {
						fmt.Fprint(w, tt.empty)
						return
					}
					fmt.Fprint(w, listing(1, fmt.Sprintf(`{"Id":"11","OrderCategory":"NEW","CreateTime":%q}`, created.In(tt.zone).Format(unicloud.QueryTimeLayout))))
				case "OrderDetail":
					fmt.Fprint(w, `{"Order":{"Id":"11","Items":[{"instanceName":"ours"}]}}`)
				}
			}))
			t.Cleanup(srv.Close)
			c := client(t, srv.URL, unicloud.Options{})
			o := order("ours")
			o.FirstAttempt = time.Now().Add(-time.Minute)
			r, err := c.Lookup(context.Background(), o)
			switch {
			case tt.want == providers.Unknown:
				if err != nil || r.ProviderOrderID != "11" {
					t.Errorf("Lookup = %+v, %v; want order 11", r, err)
				}
			case providers.CodeOf(err) != tt.want:
				t.Errorf("Lookup = %+v, %v; want %v (never not_found)", r, err, tt.want)
			case tt.want == providers.Unavailable && !strings.Contains(err.Error(), "order list"):
				t.Errorf("error %q does not say the answer had no order list", err)
			}
		})
	}
}

// Where Page starts is not documented. Against a server counting from 0,
// with or without a TotalCount, the lookup finds our order though it sits
// on page 0 (newest first); a server counting from 1 without a total costs
// one more call per listing until it refuses page 0 once.
func TestLookupPagesFromZero(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		from0, noTotal bool
		queries        int // QueryOrders calls: both windows, the UTC one empty
	}{
		{from0: true, queries: 4 + 2},                // the empty page 1 (short of the total), page 0, page 1 again (still empty: confirmed), then page 0 again (the server counts from 0); the UTC window's page 0, empty with a total of 0, and its page 1 (an empty page 0 is checked)
		{from0: true, noTotal: true, queries: 5 + 2}, // the empty page 1 ends the list, page 0, page 1 again (confirmed), then pages 0 and 1 again; the UTC window's empty page 0 and its page 1
		{noTotal: true, queries: 4 + 2},              // pages 1, 2 (empty), 0 (refused), 0 again (refused again: remembered); the UTC window's empty page 1, and its page 0 once (refused: the server still counts from 1)
		{queries: 1 + 1},                             // page 1 holds the total; the UTC window's page 1, empty with a total of 0
	} {
		t.Run(fmt.Sprintf("from0=%v,noTotal=%v", tt.from0, tt.noTotal), func(t *testing.T) {
			t.Parallel()
			sb, c := setup(t, unicloud.Options{PageSize: 20}, func(sb *sandbox.Server) {
				sb.PagesFrom0, sb.NoTotal = tt.from0, tt.noTotal
			})
			now := time.Now()
			for i := range 10 {
				sb.Seed(seeded(fmt.Sprintf("other-%d", i), now.Add(-time.Minute)))
			}
			ours := sb.Seed(seeded("zero", now)) // the newest: first on page 0 of a server counting from 0
			o := order("zero")
			o.FirstAttempt = now.Add(-2 * time.Minute)
			r, err := c.Lookup(context.Background(), o)
			if err != nil || r.ProviderOrderID != ours.ID {
				t.Fatalf("Lookup = %+v, %v; want order %s", r, err, ours.ID)
			}
			if n := sb.Calls("QueryOrders"); n != tt.queries {
				t.Errorf("%d QueryOrders calls, want %d", n, tt.queries)
			}
		})
	}
}

// Nothing documents that a server keeps counting pages as it did (a
// release, a gateway spreading its clients over two versions). A server
// shown to count from 1 that counts from 0 later holds its newest orders,
// ours among them, on page 0: the lookup still finds ours, never a
// not_found that would create it again.
func TestLookupServerThatCountsFromZeroLater(t *testing.T) {
	t.Parallel()
	now := time.Now()
	from1 := sandbox.New(accessKeyID, accessKeySecret)
	from1.NoTotal = true
	from0 := sandbox.New(accessKeyID, accessKeySecret)
	from0.PagesFrom0, from0.NoTotal = true, true
	var serving atomic.Pointer[sandbox.Server]
	serving.Store(from1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serving.Load().ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	c := client(t, srv.URL, unicloud.Options{PageSize: 20})
	for i := range 10 {
		from1.Seed(seeded(fmt.Sprintf("other-%d", i), now.Add(-time.Minute)))
		from0.Seed(seeded(fmt.Sprintf("other-%d", i), now.Add(-time.Minute)))
	}
	o := order("zero")
	o.FirstAttempt = now.Add(-2 * time.Minute)
	if _, err := c.Lookup(context.Background(), o); providers.CodeOf(err) != providers.NotFound {
		t.Fatalf("Lookup before the order = %v; want not_found (and the server shown to count from 1)", err)
	}
	serving.Store(from0)
	ours := from0.Seed(seeded("zero", now)) // the newest: first on page 0
	r, err := c.Lookup(context.Background(), o)
	if err != nil || r.ProviderOrderID != ours.ID {
		t.Fatalf("Lookup = %+v, %v; want order %s, on page 0 now", r, err, ours.ID)
	}
}

// A QueryOrders answer is a page only when it shows its list: an answer
// without one (an error envelope at HTTP 200, an empty object, a list
// under an undocumented key) is Unavailable, never an empty window and
// not_found, which would create the order a second time.
func TestLookupAnswerWithoutOrderList(t *testing.T) {
	t.Parallel()
	entry := listed("11", "NEW")
	tests := []struct {
		name string
		page string
		want providers.Code
	}{
		{"error envelope at 200", `{"RequestId":"r","Msg":"系统繁忙，请稍后重试"}`, providers.Unavailable},
		{"empty object", `{}`, providers.Unavailable},
		{"list under another key", `{"OrderList":{"Orders":[` + entry + `]}}`, providers.Unavailable},
		{"list under another key, with a total", `{"TotalCount":1,"OrderList":{"Orders":[` + entry + `]}}`, providers.Unavailable},
		{"empty list under another key", `{"TotalCount":0,"OrderList":{"Orders":[]}}`, providers.Unavailable},
		{"OrderList null without a total", `{"OrderList":null}`, providers.Unavailable},
		{"a total without a list", `{"TotalCount":2}`, providers.Unavailable},
		{"OrderList of another type", `{"TotalCount":0,"OrderList":"none"}`, providers.Unavailable},
		// A "no such order" code says nothing of the window's orders.
		{"order-not-found code", `{"Status":false,"Auth":true,"Code":"OrderNotExist","Msg":"订单不存在"}`, providers.Unavailable},
		// Pages that do show an empty list.
		{"a total of 0 without a list", `{"TotalCount":0}`, providers.NotFound},
		{"Order null", `{"TotalCount":0,"OrderList":{"Order":null}}`, providers.NotFound},
		{"Order null without a total", `{"OrderList":{"Order":null}}`, providers.NotFound},
		{"Order empty", `{"TotalCount":0,"OrderList":{"Order":[]}}`, providers.NotFound},
		// An empty list left out of an OrderList object (an encoder's
		// omitempty) is an empty page only with a TotalCount of 0.
		{"OrderList {} with a total of 0", `{"TotalCount":0,"OrderList":{}}`, providers.NotFound},
		{"OrderList {} with a total of \"0\"", `{"TotalCount":"0","OrderList":{}}`, providers.NotFound},
		{"OrderList {} without a total", `{"OrderList":{}}`, providers.Unavailable},
		{"OrderList {} with a total above 0", `{"TotalCount":3,"OrderList":{}}`, providers.Unavailable},
		{"OrderList with another key, a total of 0", `{"TotalCount":0,"OrderList":{"Orders":null}}`, providers.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			endpoint, _ := fakeTransaction(t, []string{tt.page}, map[string]string{"11": `{"Order":{"Id":"11","InstanceName":"ours"}}`})
			c := client(t, endpoint, unicloud.Options{})
			o := order("ours")
			o.FirstAttempt = time.Now().Add(-time.Minute)
			r, err := c.Lookup(context.Background(), o)
			if got := providers.CodeOf(err); got != tt.want {
				t.Fatalf("Lookup = %+v, %v; want %v", r, err, tt.want)
			}
			if tt.want == providers.Unavailable && !strings.Contains(err.Error(), "order list") {
				t.Errorf("error %q does not say the answer had no order list", err)
			}
			checkSecretFree(t, err)
		})
	}
}

// One order as an object rather than a list of one (as a JSON answer
// converted from XML writes a list of one element) is read as that list.
func TestLookupOneOrderAsAnObject(t *testing.T) {
	t.Parallel()
	page := `{"TotalCount":1,"OrderList":{"Order":` + listed("11", "NEW") + `}}`
	endpoint, _ := fakeTransaction(t, []string{page}, map[string]string{"11": `{"Order":{"Id":"11","InstanceName":"ours"}}`})
	c := client(t, endpoint, unicloud.Options{})
	o := order("ours")
	o.FirstAttempt = time.Now().Add(-time.Minute)
	r, err := c.Lookup(context.Background(), o)
	if err != nil || r.ProviderOrderID != "11" || r.Status != providers.StatusPaid {
		t.Fatalf("Lookup = %+v, %v; want order 11 found", r, err)
	}
}

// An OrderDetail that answers for another order than the listed one asked
// about, or an order without an Id (an empty record, a placeholder Id),
// cannot tell whose names it shows: ours must not be ruled out by another
// order's name.
func TestLookupDetailForAnotherOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		detail string
		want   providers.Code
	}{
		{"another Id", `{"Order":{"Id":"13","InstanceName":"someone-else"}}`, providers.Unavailable},
		{"no Id", `{"Order":{"InstanceName":"someone-else"}}`, providers.Unavailable},
		{"Id 0", `{"Order":{"Id":0,"InstanceName":"someone-else"}}`, providers.Unavailable},
		{"an empty record", `{"Order":{}}`, providers.Unavailable},
		{"its Id", `{"Order":{"Id":"11","InstanceName":"someone-else"}}`, providers.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			endpoint, _ := fakeTransaction(t, []string{listing(1, listed("11", "NEW"))}, map[string]string{"11": tt.detail})
			c := client(t, endpoint, unicloud.Options{})
			o := order("ours")
			o.FirstAttempt = time.Now().Add(-time.Minute)
			if r, err := c.Lookup(context.Background(), o); providers.CodeOf(err) != tt.want {
				t.Errorf("Lookup = %+v, %v; want %v", r, err, tt.want)
			}
		})
	}
}

// Lookup by id takes only an OrderDetail that answers for the very Id
// asked: an empty record (what a fake may answer for an id it does not
// know), a placeholder Id, or only a matching OrderNo is Unavailable, never
// paid. A placeholder provider order id (0, "000", a negative number, as a
// record may hold from a refusal read before placeholders were
// recognised) names no order: the order is looked up by its params.
func TestLookupByIDRequiresItsID(t *testing.T) {
	t.Parallel()
	details := map[string]string{
		"8":  `{"Order":{"Id":"8","OrderStatus":"PAID","CreateTime":"2024-03-01 18:00:00"}}`,
		"9":  `{"Order":{"Id":9,"PayTime":"2024-03-01 18:00:00"}}`,
		"7":  `{"Order":{"Id":"7","OrderStatus":"0","CreateTime":null}}`,
		"13": `{"Order":{"Id":"13","OrderStatus":"PAID","ProductCategory":"NAS","Items":[{"InstanceName":"theirs-volume-01"}]}}`,
		"14": `{"Order":{"Id":"14","OrderStatus":"PAID","ProductCategory":"NAS","Items":[{"InstanceName":"ours"}]}}`,
		"15": `{"Order":{"Id":"15","OrderStatus":"PAID","ProductCategory":"NAS","Items":[{"InstanceName":"…"}]}}`,
		"1":  `{"Order":{}}`,
		"2":  `{"Order":{"Id":0,"OrderStatus":"PAID"}}`,
		"3":  `{"Order":{"Id":"","OrderNo":"3"}}`,
		"4":  `{"Order":{"OrderNo":"4","OrderStatus":"PAID","CreateTime":"2024-03-01 18:00:00"}}`,
		"5":  `{"Order":{"Id":"6"}}`,
		"0":  `{"Order":{}}`,
	}
	tests := []struct {
		id      string
		want    providers.Code // Unknown: paid with id
		details int            // OrderDetail calls expected
	}{
		{"8", providers.Unknown, 1},
		{"9", providers.Unknown, 1},
		// The id asked, a default status and nothing of an order's own
		// (no creation or pay time, no instance name): the question
		// echoed back, perhaps, for an id the server does not know.
		{"7", providers.Unavailable, 1},
		// An order that names another instance is not ours, whatever id
		// CreateOrder answered (one made at the same moment for another
		// record): a person decides.
		{"13", providers.Ambiguous, 1},
		{"14", providers.Unknown, 1},
		// A name cut to nothing names no instance, as in the listing.
		{"15", providers.Unknown, 1},
		{"1", providers.Unavailable, 1},
		{"2", providers.Unavailable, 1},
		{"3", providers.Unavailable, 1},
		{"4", providers.Unknown, 1}, // its OrderNo, with a status: answered for it
		{"5", providers.Unavailable, 1},
		// Placeholders: looked up by params, in an empty window.
		{"0", providers.NotFound, 0},
		{"000", providers.NotFound, 0},
		{"-1", providers.NotFound, 0},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			t.Parallel()
			endpoint, detailCalls := fakeTransaction(t, nil, details)
			c := client(t, endpoint, unicloud.Options{})
			o := order("ours")
			o.FirstAttempt = time.Now().Add(-time.Minute)
			o.ProviderOrderID = tt.id
			r, err := c.Lookup(context.Background(), o)
			if tt.want == providers.Unknown {
				if err != nil || r.Status != providers.StatusPaid || r.ProviderOrderID != tt.id {
					t.Fatalf("Lookup = %+v, %v; want paid with %s", r, err, tt.id)
				}
			} else if got := providers.CodeOf(err); got != tt.want {
				t.Fatalf("Lookup = %+v, %v; want %v", r, err, tt.want)
			}
			if n := detailCalls(); n != tt.details {
				t.Errorf("%d OrderDetail calls, want %d", n, tt.details)
			}
		})
	}
}

// A CreateTime with a zone (RFC 3339, fractions allowed) names its instant:
// ours inside the window is found, and one outside it is ruled out, where
// the same time without a zone could be eight hours off and leaves the
// lookup to a person. A zone-less time with a T is read like one with a
// space: in UTC+8, and uncertain when that reading predates the window.
func TestLookupCreateTimeWithZone(t *testing.T) {
	t.Parallel()
	now := time.Now()
	first := now.Add(-time.Minute)
	entry := func(createTime string) string {
		return fmt.Sprintf(`{"Id":"11","OrderCategory":"NEW","CreateTime":%q}`, createTime)
	}
	cst := func(t time.Time, layout string) string { return t.In(unicloud.ChinaTime()).Format(layout) }
	tests := []struct {
		name  string
		entry string
		want  providers.Code // Unknown: found "11"
	}{
		// A zone is not trusted to make an order new: its wall clock may
		// be UTC+8's with a Z. At +08:00 (or east of it) the wall clock
		// read in UTC+8 is the instant itself.
		{"RFC 3339 at +08:00", entry(cst(now, time.RFC3339)), providers.Unknown},
		{"RFC 3339 at +08:00 with a space and a fraction", entry(cst(now, "2006-01-02 15:04:05.000Z07:00")), providers.Unknown},
		{"RFC 3339 in UTC with nanoseconds", entry(now.UTC().Format(time.RFC3339Nano)), providers.Ambiguous},
		{"RFC 3339 at -05:00 with a fraction", entry(now.In(time.FixedZone("", -5*3600)).Format("2006-01-02T15:04:05.000Z07:00")), providers.Ambiguous},
		// Nor to rule our own order out: a UTC+8 wall clock written with
		// a Z reads eight hours late, past the window's end; its wall
		// clock read in UTC+8 is the instant, in the window.
		{"a UTC+8 wall clock written with a Z", entry(cst(now, "2006-01-02T15:04:05") + "Z"), providers.Unknown},
		{"RFC 3339 a day before the first attempt", entry(first.Add(-24 * time.Hour).UTC().Format(time.RFC3339Nano)), providers.NotFound},
		{"zone-less, an hour before the first attempt", entry(cst(first.Add(-time.Hour), unicloud.QueryTimeLayout)), providers.Ambiguous},
		{"zone-less with a T, in UTC+8", entry(cst(now, "2006-01-02T15:04:05")), providers.Unknown},
		{"zone-less with a T and a fraction, in UTC+8", entry(cst(now, "2006-01-02T15:04:05.000")), providers.Unknown},
		{"zone-less with a T, written in UTC", entry(now.UTC().Format("2006-01-02T15:04:05")), providers.Ambiguous},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			endpoint, _ := fakeTransaction(t, []string{listing(1, tt.entry)}, map[string]string{"11": `{"Order":{"Id":"11","Items":[{"instanceName":"ours"}]}}`})
			c := client(t, endpoint, unicloud.Options{})
			o := order("ours")
			o.FirstAttempt = first
			r, err := c.Lookup(context.Background(), o)
			if tt.want == providers.Unknown {
				if err != nil || r.ProviderOrderID != "11" {
					t.Fatalf("Lookup = %+v, %v; want order 11", r, err)
				}
			} else if got := providers.CodeOf(err); got != tt.want {
				t.Fatalf("Lookup = %+v, %v; want %v", r, err, tt.want)
			}
		})
	}
}

// A listed name that is empty once normalised and stripped of cut marks
// names nothing: a prefix of every name, it would make every lookup in the
// window ambiguous. The order is judged by its other names, or, with none,
// like an order without a name: detailed, and unidentified if the detail
// names nothing either.
func TestLookupEmptyLookingName(t *testing.T) {
	t.Parallel()
	const ours = "nas-prod-0123456789"
	now := time.Now().In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout)
	entry := func(name string) string {
		b, _ := json.Marshal(name)
		return fmt.Sprintf(`{"Id":"11","OrderCategory":"NEW","CreateTime":%q,"InstanceName":%s}`, now, b)
	}
	tests := []struct {
		name    string
		entry   string
		details map[string]string
		want    providers.Code // Unknown: found "11"
		calls   int            // OrderDetail calls expected
	}{
		{name: "an ellipsis, detailed to another's name", entry: entry("…"),
			details: map[string]string{"11": `{"Order":{"Id":"11","InstanceName":"someone-else"}}`}, want: providers.NotFound, calls: 1},
		{name: "three dots, detailed to ours", entry: entry(" ... "),
			details: map[string]string{"11": `{"Order":{"Id":"11","InstanceName":"nas-prod-0123456789"}}`}, calls: 1},
		{name: "spaces, detailed to nothing", entry: entry("\u3000 "), want: providers.Ambiguous, calls: 1},
		{name: "an ellipsis on the order, another's name on an item",
			entry: fmt.Sprintf(`{"Id":"11","CreateTime":%q,"InstanceName":"…","Items":[{"InstanceName":"someone-else"}]}`, now),
			want:  providers.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			endpoint, detailCalls := fakeTransaction(t, []string{listing(1, tt.entry)}, tt.details)
			lookupWants(t, endpoint, ours, tt.want)
			if n := detailCalls(); n != tt.calls {
				t.Errorf("%d OrderDetail calls, want %d", n, tt.calls)
			}
		})
	}
}

// The documents give instanceName no length, character set or promise to
// be echoed unchanged: a listed name that may be ours shortened or
// normalised is neither ours nor another's, and the lookup is left to a
// person, never not_found.
func TestLookupNameMayBeShortenedOrNormalised(t *testing.T) {
	t.Parallel()
	const ours = "nas-Prod  web 实例名称-0123456789-abcdefghijklmnopqrstuvwxyz"
	now := time.Now().In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout)
	entry := func(id, name string) string {
		return fmt.Sprintf(`{"Id":%q,"OrderCategory":"NEW","CreateTime":%q,"InstanceName":%s}`, id, now, name)
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	tests := []struct {
		name   string
		listed []string // raw JSON names, one order each
		want   providers.Code
	}{
		{"exact", []string{q(ours)}, providers.Unknown},
		{"another name", []string{q("nas-test")}, providers.NotFound},
		{"cut to 32 bytes", []string{q(ours[:32])}, providers.Ambiguous},
		{"cut inside a character", []string{`"nas-Prod  web 实例名\ufffd"`}, providers.Ambiguous},
		{"cut with an ellipsis", []string{q("nas-Prod  web 实例…")}, providers.Ambiguous},
		{"upper case", []string{q(strings.ToUpper(ours))}, providers.Ambiguous},
		{"spaces collapsed", []string{q(strings.Replace(ours, "  ", " ", 1))}, providers.Ambiguous},
		{"spaces around", []string{q(" " + ours + " ")}, providers.Ambiguous},
		{"full-width", []string{q("ｎａｓ-Prod  web 实例名称-0123456789-abcdefghijklmnopqrstuvwxyz")}, providers.Ambiguous},
		{"ours with a suffix", []string{q(ours + "-2")}, providers.Ambiguous},
		{"exact and a shortened one", []string{q(ours), q(ours[:20])}, providers.Ambiguous},
		{"cut to 8 characters", []string{q("nas-prod…")}, providers.Ambiguous},
		// A stub shorter than 8 characters is a prefix of too many names.
		{"cut to 7 characters", []string{q("nas-Pro…")}, providers.NotFound},
		{"a stub and another name", []string{q("nas…"), q("nas-test")}, providers.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var entries []string
			for i, n := range tt.listed {
				entries = append(entries, entry(fmt.Sprint(11+i), n))
			}
			endpoint, detailCalls := fakeTransaction(t, []string{listing(len(entries), entries...)}, nil)
			err := lookupWants(t, endpoint, ours, tt.want)
			if tt.want == providers.Ambiguous && !strings.Contains(err.Error(), "shortened or normalised") {
				t.Errorf("error %q does not say a name may be ours shortened or normalised", err)
			}
			if n := detailCalls(); n != 0 {
				t.Errorf("%d OrderDetail calls, want 0 (the list carries names and times)", n)
			}
		})
	}
}

// A name the provider lists in another of Unicode's forms for the same
// text (accents composed where ours decomposed them, or the other way
// round; Hangul syllables or their letters; compatibility forms) may be
// ours: the lookup takes no order and shows no absence (a not-found would
// have the order created again). Orders whose names differ only so are
// rivals too (one match key).
func TestLookupNameInAnotherUnicodeForm(t *testing.T) {
	t.Parallel()
	now := time.Now().In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout)
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	tests := []struct {
		name, ours, listed string
		cut                bool
	}{
		{"composed listed, ours decomposed", "cafe\u0301-prod", "caf\u00e9-prod", false},
		{"decomposed listed, ours composed", "caf\u00e9-prod", "cafe\u0301-prod", false},
		{"Hangul letters listed, syllables ours", "\ud55c\uad6d-nas", "\u1112\u1161\u11ab\u1100\u116e\u11a8-nas", false},
		{"ligature listed", "office-nas", "o\ufb03ce-nas", false},
		{"accent dropped", "prod-caf\u00e9-01", "prod-cafe-01", false},
		// Cut next to an accent: a prefix in one form only (a name cut
		// short is not its own match key: see MatchKey).
		{"decomposed ours, listed cut before the mark", "prod-cafe\u0301-01", "prod-cafe", true},
		{"decomposed ours, listed cut before the mark, marked cut", "prod-cafe\u0301-01", "prod-cafe\u2026", true},
		{"composed ours, listed decomposed and cut", "prod-caf\u00e9-01", "prod-cafe", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			entry := fmt.Sprintf(`{"Id":"11","OrderCategory":"NEW","CreateTime":%q,"InstanceName":%s}`, now, q(tt.listed))
			endpoint, _ := fakeTransaction(t, []string{listing(1, entry)}, nil)
			lookupWants(t, endpoint, tt.ours, providers.Ambiguous)
			c := client(t, endpoint, unicloud.Options{})
			a, errA := c.Parse(order(tt.ours).Params)
			b, errB := c.Parse(order(tt.listed).Params)
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			if ka, kb := c.MatchKey(a), c.MatchKey(b); ka != kb && !tt.cut {
				t.Errorf("match keys %q and %q; want one key for one text", ka, kb)
			}
		})
	}
}

// lookupWants looks the order named ours up (first attempt a minute ago)
// at endpoint and fails the test unless the answer is want, or order 11
// found for want providers.Unknown. It returns the lookup's error.
func lookupWants(t *testing.T, endpoint, ours string, want providers.Code) error {
	t.Helper()
	c := client(t, endpoint, unicloud.Options{})
	o := order(ours)
	o.FirstAttempt = time.Now().Add(-time.Minute)
	r, err := c.Lookup(context.Background(), o)
	if want == providers.Unknown {
		if err != nil || r.ProviderOrderID != "11" {
			t.Fatalf("Lookup = %+v, %v; want order 11", r, err)
		}
	} else if got := providers.CodeOf(err); got != want {
		t.Fatalf("Lookup = %+v, %v; want %v", r, err, want)
	}
	return err
}

// A found order that carries a CancelType, or whose OrderStatus names a
// cancellation or a failure, is not paid: the lookup is Ambiguous (left to
// a person), never paid and never not_found, by id and by listing.
func TestLookupCancelledIsNotPaid(t *testing.T) {
	t.Parallel()
	now := time.Now().In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout)
	tests := []struct {
		name  string
		extra string // fields added to the order
		paid  bool
	}{
		{"cancelled", `"OrderStatus":"CANCELLED"`, false},
		{"cancel type", `"OrderStatus":"PAID","CancelType":"USER_CANCEL"`, false},
		{"numeric cancel type", `"OrderStatus":"PAID","CancelType":1`, false},
		{"pay failed", `"OrderStatus":"pay_failed"`, false},
		{"closed", `"OrderStatus":"Closed"`, false},
		{"invalid", `"OrderStatus":"INVALID"`, false},
		{"refunded", `"OrderStatus":"REFUNDED"`, false},
		{"expired", `"OrderStatus":"EXPIRED"`, false},
		{"in Chinese", `"OrderStatus":"已取消"`, false},
		{"withdrawn, in Chinese", `"OrderStatus":"已撤单"`, false},
		{"void", `"OrderStatus":"VOID"`, false},
		{"terminated", `"OrderStatus":"TERMINATED"`, false},
		{"paid", `"OrderStatus":"PAID","PayTime":"2024-03-01 18:00:00"`, true},
		{"null cancel type", `"OrderStatus":"PAID","CancelType":null`, true},
		{"empty cancel type", `"OrderStatus":"PAID","CancelType":""`, true},
		{"no status", ``, true},
	}
	check := func(t *testing.T, how string, r providers.Result, err error, paid bool) {
		t.Helper()
		if paid {
			if err != nil || r.Status != providers.StatusPaid || r.ProviderOrderID != "11" {
				t.Errorf("%s: Lookup = %+v, %v; want paid with 11", how, r, err)
			}
			return
		}
		if providers.CodeOf(err) != providers.Ambiguous || r.Status != "" {
			t.Errorf("%s: Lookup = %+v, %v; want ambiguous", how, r, err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			extra := ""
			if tt.extra != "" {
				extra = "," + tt.extra
			}
			// By id.
			endpoint, _ := fakeTransaction(t, nil, map[string]string{"11": `{"Order":{"Id":"11","CreateTime":"2024-03-01 17:00:00"` + extra + `}}`})
			c := client(t, endpoint, unicloud.Options{})
			o := order("ours")
			o.FirstAttempt = time.Now().Add(-time.Minute)
			o.ProviderOrderID = "11"
			r, err := c.Lookup(context.Background(), o)
			check(t, "by id", r, err, tt.paid)

			// By listing, the status in the list.
			entry := fmt.Sprintf(`{"Id":"11","InstanceName":"ours","OrderCategory":"NEW","CreateTime":%q%s}`, now, extra)
			endpoint, _ = fakeTransaction(t, []string{listing(1, entry)}, nil)
			c = client(t, endpoint, unicloud.Options{})
			o.ProviderOrderID = ""
			r, err = c.Lookup(context.Background(), o)
			check(t, "listed", r, err, tt.paid)

			// By listing, the status only in the detail.
			endpoint, _ = fakeTransaction(t, []string{listing(1, listed("11", "NEW"))},
				map[string]string{"11": `{"Order":{"Id":"11","InstanceName":"ours"` + extra + `}}`})
			c = client(t, endpoint, unicloud.Options{})
			r, err = c.Lookup(context.Background(), o)
			check(t, "detailed", r, err, tt.paid)
		})
	}
}

// The same through the sandbox: an order of ours it shows cancelled.
func TestLookupCancelledInSandbox(t *testing.T) {
	t.Parallel()
	sb, c := setup(t, unicloud.Options{})
	o := seeded("cancelled", time.Now())
	o.OrderStatus = "CANCELLED"
	id := sb.Seed(o).ID
	lo := order("cancelled")
	lo.FirstAttempt = time.Now().Add(-time.Minute)
	if r, err := c.Lookup(context.Background(), lo); providers.CodeOf(err) != providers.Ambiguous {
		t.Errorf("Lookup by listing = %+v, %v; want ambiguous", r, err)
	}
	lo.ProviderOrderID = id
	if r, err := c.Lookup(context.Background(), lo); providers.CodeOf(err) != providers.Ambiguous {
		t.Errorf("Lookup by id = %+v, %v; want ambiguous", r, err)
	}
}

// A listed order that carries no Id but an OrderId is identified by it:
// found, and the two listings (the window in UTC+8 and in UTC) that both
// show it count it once. By id, an OrderDetail whose only id is the
// OrderId asked counts only with a status (else it may be the question
// echoed back).
func TestLookupByOrderIDWithoutID(t *testing.T) {
	t.Parallel()
	now := time.Now().In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout)
	entry := func(key, id, name string) string {
		return fmt.Sprintf(`{%q:%q,"InstanceName":%q,"OrderCategory":"NEW","CreateTime":%q}`, key, id, name, now)
	}
	tests := []struct {
		name  string
		page  string
		want  providers.Code // Unknown: found 11
		owned string         // an id another record holds
	}{
		{name: "OrderId", page: listing(1, entry("OrderId", "11", "ours"))},
		{name: "orderID in another case", page: listing(1, entry("orderID", "11", "ours"))},
		{name: "numeric OrderId", page: listing(1, fmt.Sprintf(`{"OrderId":11,"InstanceName":"ours","CreateTime":%q}`, now))},
		{name: "among others", page: listing(2, entry("OrderId", "12", "other"), entry("OrderId", "11", "ours"))},
		{name: "two of ours", page: listing(2, entry("OrderId", "12", "ours"), entry("OrderId", "11", "ours")), want: providers.Ambiguous},
		{name: "owned by another record", page: listing(1, entry("OrderId", "11", "ours")), owned: "11", want: providers.NotFound},
		// A blank Id is the server's word that the order has none.
		{name: "a blank Id", page: listing(1, fmt.Sprintf(`{"Id":"","OrderId":"11","InstanceName":"ours","CreateTime":%q}`, now)), want: providers.Ambiguous},
		{name: "the Id first", page: listing(1, fmt.Sprintf(`{"Id":"11","OrderId":"99","InstanceName":"ours","CreateTime":%q}`, now))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			endpoint, _ := fakeTransaction(t, []string{tt.page}, nil)
			c := client(t, endpoint, unicloud.Options{})
			o := order("ours")
			o.FirstAttempt = time.Now().Add(-time.Minute)
			o.Owned = func(_ context.Context, id string) (bool, error) { return id == tt.owned, nil }
			r, err := c.Lookup(context.Background(), o)
			if tt.want == providers.Unknown {
				if err != nil || r.Status != providers.StatusPaid || r.ProviderOrderID != "11" {
					t.Errorf("Lookup = %+v, %v; want paid with 11", r, err)
				}
			} else if got := providers.CodeOf(err); got != tt.want {
				t.Errorf("Lookup = %+v, %v; want %v", r, err, tt.want)
			}
		})
	}

	details := map[string]string{
		"11": `{"Order":{"OrderId":"11","OrderStatus":"PAID","CreateTime":"2024-03-01 18:00:00"}}`,
		"12": `{"Order":{"OrderId":"12"}}`,
	}
	endpoint, _ := fakeTransaction(t, nil, details)
	c := client(t, endpoint, unicloud.Options{})
	if r, err := c.Lookup(context.Background(), providers.Order{ProviderOrderID: "11"}); err != nil || r.Status != providers.StatusPaid || r.ProviderOrderID != "11" {
		t.Errorf("Lookup(11) = %+v, %v; want paid", r, err)
	}
	if r, err := c.Lookup(context.Background(), providers.Order{ProviderOrderID: "12"}); providers.CodeOf(err) != providers.Unavailable {
		t.Errorf("Lookup(12) = %+v, %v; want unavailable (an OrderId alone may echo the question)", r, err)
	}
}

// An order identified by matching the listing is Matched (the caller
// records that its id was found so); one found by the id of our own create
// is not.
func TestLookupMatchedOnlyByListing(t *testing.T) {
	t.Parallel()
	sb, c := setup(t, unicloud.Options{})
	id := sb.Seed(seeded("matched", time.Now())).ID
	o := order("matched")
	o.FirstAttempt = time.Now().Add(-time.Minute)
	r, err := c.Lookup(context.Background(), o)
	if err != nil || r.Status != providers.StatusPaid || r.ProviderOrderID != id || !r.Matched {
		t.Errorf("Lookup by listing = %+v, %v; want paid with %s, Matched", r, err, id)
	}
	o.ProviderOrderID = id
	r, err = c.Lookup(context.Background(), o)
	if err != nil || r.Status != providers.StatusPaid || r.ProviderOrderID != id || r.Matched {
		t.Errorf("Lookup by id = %+v, %v; want paid with %s, not Matched", r, err, id)
	}
}

// A listed order that matches is not taken while other orders with the
// same instance name may have been created without their ids recorded
// (Order.Rivals): it may be theirs. The rivals are counted after the
// listing was read; a failure to count them is no answer.
func TestLookupWithRivalsTakesNoOrder(t *testing.T) {
	t.Parallel()
	sb, c := setup(t, unicloud.Options{})
	id := sb.Seed(seeded("shared-name", time.Now())).ID
	o := order("shared-name")
	o.FirstAttempt = time.Now().Add(-time.Minute)
	listed := 0
	var since time.Time
	o.Rivals = func(_ context.Context, s time.Time) (int, error) {
		since = s
		listed = sb.Calls("QueryOrders")
		return 1, nil
	}
	r, err := c.Lookup(context.Background(), o)
	if providers.CodeOf(err) != providers.Ambiguous || r.ProviderOrderID != "" {
		t.Fatalf("Lookup with a rival = %+v, %v; want ambiguous, no order taken", r, err)
	}
	if listed == 0 || listed != sb.Calls("QueryOrders") {
		t.Errorf("rivals counted after %d of %d QueryOrders calls; want after the listing was read", listed, sb.Calls("QueryOrders"))
	}
	if since.IsZero() || since.After(o.FirstAttempt) {
		t.Errorf("rivals counted since %v; want the window's start, before the first attempt %v", since, o.FirstAttempt)
	}
	o.Rivals = func(context.Context, time.Time) (int, error) { return 0, errors.New("redis down") }
	if r, err := c.Lookup(context.Background(), o); providers.CodeOf(err) != providers.Unavailable {
		t.Errorf("Lookup whose rivals cannot be counted = %+v, %v; want unavailable", r, err)
	}
	o.Rivals = func(context.Context, time.Time) (int, error) { return 0, nil }
	if r, err := c.Lookup(context.Background(), o); err != nil || r.ProviderOrderID != id || !r.Matched {
		t.Errorf("Lookup without rivals = %+v, %v; want paid with %s, Matched", r, err, id)
	}
	// No order of the name listed: not found, rivals or not.
	none := order("other-name")
	none.FirstAttempt = o.FirstAttempt
	none.Rivals = func(context.Context, time.Time) (int, error) { return 2, nil }
	if r, err := c.Lookup(context.Background(), none); providers.CodeOf(err) != providers.NotFound {
		t.Errorf("Lookup of a name nothing listed carries, with rivals = %+v, %v; want not found", r, err)
	}
}

// A listing that lacks an order Order.Listed says it must show (one a
// create of ours was answered with, in the window) is not whole: the
// lookup is Unavailable, never NotFound; one that shows it is judged as
// usual.
func TestLookupListingLackingOurOrder(t *testing.T) {
	t.Parallel()
	now := time.Now().In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout)
	entry := fmt.Sprintf(`{"Id":"21","OrderCategory":"NEW","CreateTime":%q,"InstanceName":"another-nas"}`, now)
	for _, tt := range []struct {
		name string
		ids  []string
		want providers.Code
	}{
		{"listed", []string{"21"}, providers.NotFound},
		{"not listed", []string{"21", "22"}, providers.Unavailable},
		{"none to check", nil, providers.NotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			endpoint, _ := fakeTransaction(t, []string{listing(1, entry)}, nil)
			c := client(t, endpoint, unicloud.Options{})
			o := order("nas-prod-01")
			o.FirstAttempt = time.Now().Add(-time.Minute)
			var from time.Time
			o.Listed = func(_ context.Context, f time.Time) ([]providers.ListedOrder, error) {
				from = f
				var out []providers.ListedOrder
				for _, id := range tt.ids {
					out = append(out, providers.ListedOrder{ID: id})
				}
				return out, nil
			}
			_, err := c.Lookup(context.Background(), o)
			if got := providers.CodeOf(err); got != tt.want {
				t.Fatalf("Lookup: %v; want %v", err, tt.want)
			}
			if tt.want == providers.Unavailable && (!strings.Contains(err.Error(), "22") || !errors.Is(err, providers.ErrNoNews)) {
				t.Errorf("error %v; want the missing order named, as no news of the provider's health", err)
			}
			if d := o.FirstAttempt.Sub(from); d <= 0 || d > 15*time.Minute {
				t.Errorf("checked from %v before the first attempt; want within the window's margin", d)
			}
		})
	}
}

// An order of ours (Order.Listed: a create's answer) that the listing
// shows under a name that cannot be the one its create sent tells that
// the listing's names are not the names sent: the lookup is Ambiguous,
// never NotFound, nor a match. A name the provider stored normalised, cut
// short or lossily (as a black-box run saw CJK stored as "?") may be the
// one sent, as the lookup judges names: no verdict, and the lookup goes on
// as without the check; so for an order noted without a name, listed
// under no name, or one whose detail cannot be read.
func TestLookupListingShowsOurOrderUnderAnotherName(t *testing.T) {
	t.Parallel()
	now := time.Now().In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout)
	entry := func(id, no, name string) string {
		e := fmt.Sprintf(`{"Id":%q,"OrderCategory":"NEW","ProductCategory":"NAS","CreateTime":%q,"OrderStatus":"PAID"`, id, now)
		if no != "" {
			e += fmt.Sprintf(`,"OrderNo":%q`, no)
		}
		if name != "" {
			e += fmt.Sprintf(`,"InstanceName":%q`, name)
		}
		return e + "}"
	}
	detail := func(id, name string) string {
		return fmt.Sprintf(`{"Order":{"Id":%q,"OrderCategory":"NEW","ProductCategory":"NAS","CreateTime":%q,"OrderStatus":"PAID","InstanceName":%q}}`, id, now, name)
	}
	for _, tt := range []struct {
		name    string
		orders  []string          // the listing; 21 is an order of ours, another record's
		details map[string]string // OrderDetail answers
		sent    string            // the name 21's create sent, as noted
		want    providers.Code    // Unknown: ours (22) found
	}{
		{"under its own name", []string{entry("21", "", "nas-other-02")}, nil, "nas-other-02", providers.NotFound},
		{"under its own name, ours listed", []string{entry("21", "", "nas-other-02"), entry("22", "", "nas-prod-01")}, nil, "nas-other-02", providers.Unknown},
		{"under another name", []string{entry("21", "", "nas-3f9a1c")}, nil, "nas-other-02", providers.Ambiguous},
		{"under another name, ours listed", []string{entry("21", "", "nas-3f9a1c"), entry("22", "", "nas-prod-01")}, nil, "nas-other-02", providers.Ambiguous},
		{"under another name in its detail", []string{entry("21", "", "")}, map[string]string{"21": detail("21", "nas-3f9a1c")}, "nas-other-02", providers.Ambiguous},
		{"noted without a name", []string{entry("21", "", "nas-3f9a1c")}, nil, "", providers.NotFound},
		{"stored lossily", []string{entry("21", "", "???-u5-00040"), entry("22", "", "nas-prod-01")}, nil, "测试盘-u5-00040", providers.Unknown},
		{"cut short", []string{entry("21", "", "nas-archive-vol")}, nil, "nas-archive-volume-0001", providers.NotFound},
		{"cut short with a mark", []string{entry("21", "", "nas-archive-vol…"), entry("22", "", "nas-prod-01")}, nil, "nas-archive-volume-0001", providers.Unknown},
		{"only a cut mark", []string{entry("21", "", "…")}, map[string]string{"21": detail("21", "nas-other-02")}, "nas-other-02", providers.NotFound},
		{"only a cut mark, another name in its detail", []string{entry("21", "", "…")}, map[string]string{"21": detail("21", "nas-3f9a1c")}, "nas-other-02", providers.Ambiguous},
		{"blank, another name in its detail", []string{entry("21", "", "   ")}, map[string]string{"21": detail("21", "nas-3f9a1c")}, "nas-other-02", providers.Ambiguous},
		{"dots, another name in its detail", []string{entry("21", "", "...")}, map[string]string{"21": detail("21", "nas-3f9a1c")}, "nas-other-02", providers.Ambiguous},
		{"detail failing", []string{entry("21", "", "")}, map[string]string{"21": `{"Status":false,"Auth":true,"Code":"InternalError","Message":"busy"}`}, "nas-other-02", providers.NotFound},
		{"its id another's OrderNo too", []string{entry("21", "77", "someone-else"), entry("900", "21", "nas-other-02")}, nil, "nas-other-02", providers.NotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			endpoint, _ := fakeTransaction(t, []string{listing(len(tt.orders), tt.orders...)}, tt.details)
			c := client(t, endpoint, unicloud.Options{TakeMatched: true})
			o := order("nas-prod-01")
			o.FirstAttempt = time.Now().Add(-time.Minute)
			o.Owned = func(_ context.Context, id string) (bool, error) { return id == "21" || id == "900", nil }
			o.Listed = func(context.Context, time.Time) ([]providers.ListedOrder, error) {
				return []providers.ListedOrder{{ID: "21", Name: tt.sent}}, nil
			}
			r, err := c.Lookup(context.Background(), o)
			if tt.want == providers.Unknown {
				if err != nil || r.ProviderOrderID != "22" {
					t.Fatalf("Lookup = %+v, %v; want ours (22) found", r, err)
				}
				return
			}
			if got := providers.CodeOf(err); got != tt.want {
				t.Fatalf("Lookup: %v; want %v", err, tt.want)
			}
			if tt.want == providers.Ambiguous && !strings.Contains(err.Error(), "order 21, which a create of ours was answered with, under an instance name that is not the one") {
				t.Errorf("error %v; want the order named and why the names are not believed", err)
			}
		})
	}
}

// An order of ours whose detail carries no names yet is asked again a
// while later, not taken as nameless for good: its detail may come to
// name it (here, under another name than its create sent).
func TestMisnamedCheckAsksANamelessDetailAgain(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var mu sync.Mutex
	clock := now
	c, show, _ := provisioning(t, func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })
	show("")
	lookup := func() error {
		o := order("nas-prod-01")
		o.FirstAttempt = now.Add(-time.Minute)
		o.Owned = func(_ context.Context, id string) (bool, error) { return id == "21", nil }
		o.Listed = func(context.Context, time.Time) ([]providers.ListedOrder, error) {
			return []providers.ListedOrder{{ID: "21", Name: "nas-other-02"}}, nil
		}
		_, err := c.Lookup(context.Background(), o)
		return err
	}
	if err := lookup(); providers.CodeOf(err) != providers.NotFound {
		t.Fatalf("its detail without names: %v; want NotFound (nothing to judge)", err)
	}
	show("nas-3f9a1c")
	mu.Lock()
	clock = clock.Add(time.Minute)
	mu.Unlock()
	if err := lookup(); providers.CodeOf(err) != providers.Ambiguous {
		t.Errorf("a minute later, its detail naming it otherwise: %v; want Ambiguous", err)
	}
}

// The check asks OrderDetail about an order of ours listed without names
// once, whatever it answers: 16 such orders, three lookups, at most 16
// calls (48 when a detail without names was not remembered).
func TestMisnamedCheckAsksEachDetailOnce(t *testing.T) {
	t.Parallel()
	now := time.Now().In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout)
	var entries []string
	details := map[string]string{}
	var noted []providers.ListedOrder
	for i := range 16 {
		id := fmt.Sprint(100 + i)
		entries = append(entries, fmt.Sprintf(`{"Id":%q,"OrderCategory":"NEW","CreateTime":%q}`, id, now))
		details[id] = fmt.Sprintf(`{"Order":{"Id":%q,"OrderCategory":"NEW","ProductCategory":"NAS","CreateTime":%q,"OrderStatus":"PAID"}}`, id, now)
		noted = append(noted, providers.ListedOrder{ID: id, Name: "nas-other-" + id})
	}
	endpoint, calls := fakeTransaction(t, []string{listing(len(entries), entries...)}, details)
	c := client(t, endpoint, unicloud.Options{})
	for range 3 {
		o := order("nas-prod-01")
		o.FirstAttempt = time.Now().Add(-time.Minute)
		o.Owned = func(context.Context, string) (bool, error) { return true, nil }
		o.Listed = func(context.Context, time.Time) ([]providers.ListedOrder, error) { return noted, nil }
		if _, err := c.Lookup(context.Background(), o); providers.CodeOf(err) != providers.NotFound {
			t.Fatalf("Lookup: %v; want NotFound", err)
		}
	}
	if n := calls(); n > 16 {
		t.Errorf("%d OrderDetail calls for 3 lookups of one window; want each of the 16 orders asked at most once", n)
	}
}

// provisioning is a server whose OrderDetail shows order 21 under the file
// system's id for a while (being provisioned), then under the name show
// last set ("" for none; "nas-prod-01" is the name its create sent). It
// returns the client (on clock) and the count of OrderDetail calls.
func provisioning(t *testing.T, clock func() time.Time) (c *unicloud.Client, show func(string), details func() int) {
	t.Helper()
	var mu sync.Mutex
	shown, calls := "nas-3f9a1c07", 0
	created := time.Now().In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("Action") {
		case "QueryOrders":
			fmt.Fprint(w, listing(1, fmt.Sprintf(`{"Id":"21","OrderCategory":"NEW","ProductCategory":"NAS","CreateTime":%q}`, created)))
		case "OrderDetail":
			mu.Lock()
			defer mu.Unlock()
			calls++
			name := ""
			if shown != "" {
				name = fmt.Sprintf(`,"InstanceName":%q`, shown)
			}
			fmt.Fprintf(w, `{"Order":{"Id":"21","OrderCategory":"NEW","ProductCategory":"NAS","CreateTime":%q,"OrderStatus":"PAID"%s}}`, created, name)
		}
	}))
	t.Cleanup(srv.Close)
	c = client(t, srv.URL, unicloud.Options{Now: clock})
	return c, func(name string) { mu.Lock(); shown = name; mu.Unlock() }, func() int { mu.Lock(); defer mu.Unlock(); return calls }
}

// Names an order's detail showed before the listing lag had passed since
// its create (the file system's id while it was provisioned) do not rule
// it out in a lookup whose not-found would be believed: read again, they
// show it ours. Earlier lookups (whose not-found is not believed) keep
// using what was read, asking nothing more. (Remembered for good, the
// first names had the order created twice: a black-box run.)
func TestNamesReadBeforeTheLagAreReadAgain(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var mu sync.Mutex
	clock := now
	at := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	c, show, details := provisioning(t, at)
	shownFrom := now.Add(30 * time.Second) // the last create plus the lag
	lookup := func() (providers.Result, error) {
		o := order("nas-prod-01")
		o.FirstAttempt = now.Add(-time.Minute)
		o.Now = at()
		o.ShownFrom = shownFrom
		o.ListingLag = 30 * time.Second
		return c.Lookup(context.Background(), o)
	}
	if _, err := lookup(); providers.CodeOf(err) != providers.NotFound {
		t.Fatalf("within the lag, its detail naming the file system: %v; want NotFound (not believed)", err)
	}
	show("nas-prod-01")
	mu.Lock()
	clock = now.Add(10 * time.Second)
	mu.Unlock()
	if _, err := lookup(); providers.CodeOf(err) != providers.NotFound || details() != 1 {
		t.Fatalf("within the lag again: %v after %d OrderDetail calls; want NotFound from the names read, after 1", err, details())
	}
	mu.Lock()
	clock = now.Add(time.Minute)
	mu.Unlock()
	r, err := lookup()
	if err != nil || r.ProviderOrderID != "21" {
		t.Fatalf("past the lag, its detail naming it as sent: %+v, %v; want order 21 (read again)", r, err)
	}
	if n := details(); n != 2 {
		t.Errorf("%d OrderDetail calls; want 2", n)
	}
	// Read past the lag, the names stand for the lookups after.
	if r, err := lookup(); err != nil || r.ProviderOrderID != "21" || details() != 2 {
		t.Errorf("again: %+v, %v after %d OrderDetail calls; want order 21, no call more", r, err, details())
	}
	// Read a lag or more after they were first read, they are settled:
	// they stand for a lookup whose not-found is believed from later
	// still (another order's, say), with no call more.
	mu.Lock()
	clock, shownFrom = now.Add(10*time.Minute), now.Add(9*time.Minute)
	mu.Unlock()
	if r, err := lookup(); err != nil || r.ProviderOrderID != "21" || details() != 2 {
		t.Errorf("a lookup believed from later: %+v, %v after %d OrderDetail calls; want order 21, no call more", r, err, details())
	}
}

// An order of ours whose names were read while it was being provisioned
// is not judged listed under another name for good: a lookup reads the
// names again before it says so, once they are older than a moment. (A
// black-box run had every lookup of two workers answered ambiguous, and
// no order created, until the workers were restarted.)
func TestMisnamedCheckReadsOldNamesAgain(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var mu sync.Mutex
	clock := now
	at := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	c, show, details := provisioning(t, at)
	lookup := func() error {
		o := order("nas-other-02")
		o.FirstAttempt = now.Add(-time.Minute)
		o.Listed = func(context.Context, time.Time) ([]providers.ListedOrder, error) {
			return []providers.ListedOrder{{ID: "21", Name: "nas-prod-01"}}, nil
		}
		o.Owned = func(_ context.Context, id string) (bool, error) { return id == "21", nil }
		_, err := c.Lookup(context.Background(), o)
		return err
	}
	if err := lookup(); providers.CodeOf(err) != providers.Ambiguous {
		t.Fatalf("our order 21 detailed under the file system's id: %v; want Ambiguous", err)
	}
	if err := lookup(); providers.CodeOf(err) != providers.Ambiguous || details() != 1 {
		t.Fatalf("a moment later: %v after %d OrderDetail calls; want Ambiguous from the names just read, after 1", err, details())
	}
	// A detail without names (a blank one) a minute later changes
	// nothing: the names read stand, and it is not asked again for a
	// while.
	show(" ")
	for _, after := range []time.Duration{time.Minute, time.Minute + time.Second} {
		mu.Lock()
		clock = now.Add(after)
		mu.Unlock()
		if err := lookup(); providers.CodeOf(err) != providers.Ambiguous || details() != 2 {
			t.Fatalf("%s later, its detail without names: %v after %d OrderDetail calls; want Ambiguous, after 2", after, err, details())
		}
	}
	show("nas-prod-01")
	mu.Lock()
	clock = now.Add(2 * time.Minute)
	mu.Unlock()
	if err := lookup(); providers.CodeOf(err) != providers.NotFound || details() != 3 {
		t.Errorf("later, its detail naming it as sent: %v after %d OrderDetail calls; want NotFound (order 21 is another record's), after 3", err, details())
	}
}

// An order's Items in the forms a list takes in an answer converted from
// XML (as OrderList is read in them) still name its instance.
func TestLookupItemsInXMLForms(t *testing.T) {
	t.Parallel()
	for name, detail := range map[string]string{
		"Item list":   `{"Order":{"Id":"11","Items":{"Item":[{"instanceName":"ours"}]}}}`,
		"Item object": `{"Order":{"Id":"11","Items":{"Item":{"instanceName":"ours"}}}}`,
		"one item":    `{"Order":{"Id":"11","Items":{"instanceName":"ours"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			endpoint, _ := fakeTransaction(t, []string{listing(1, listed("11", "NEW"))}, map[string]string{"11": detail})
			c := client(t, endpoint, unicloud.Options{})
			o := order("ours")
			o.FirstAttempt = time.Now().Add(-time.Minute)
			if r, err := c.Lookup(context.Background(), o); err != nil || r.ProviderOrderID != "11" {
				t.Errorf("Lookup = %+v, %v; want order 11", r, err)
			}
		})
	}
}

// A refusal that echoes the request's signature, decoded from its query,
// does not get it into the error, whether it refuses a create, the
// credentials or a listing: with the signed request's other parts, a
// signature is a known answer to try guesses of the secret against.
func TestEchoedSignatureIsHidden(t *testing.T) {
	t.Parallel()
	for _, answer := range []string{
		`{"Status":false,"Auth":true,"Code":"InvalidParameter","Msg":"bad value; request Signature=%s"}`,
		`{"Status":false,"Auth":false,"Code":"SignatureDoesNotMatch","Msg":"expected another than %s"}`,
		`{"Status":false,"Auth":true,"Code":"InternalError","Msg":"failed: Signature=%s"}`,
		`{"Status":true,"Auth":true,"Code":"Success","Msg":"ok for Signature=%s"}`, // no order list
	} {
		var mu sync.Mutex
		var sigs []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sig := r.URL.Query().Get("Signature")
			mu.Lock()
			sigs = append(sigs, sig)
			mu.Unlock()
			fmt.Fprintf(w, answer, sig)
		}))
		c := client(t, srv.URL, unicloud.Options{})
		o := order("echo")
		o.FirstAttempt = time.Now().Add(-time.Minute)
		_, serr := c.Submit(context.Background(), o)
		_, lerr := c.Lookup(context.Background(), o)
		srv.Close()
		mu.Lock()
		for i, err := range []error{serr, lerr} {
			if err == nil || len(sigs) == 0 {
				t.Errorf("%s: call %d answered %v after %d requests; want a refusal", answer, i, err, len(sigs))
				continue
			}
			for _, sig := range sigs {
				if strings.Contains(err.Error(), sig) || strings.Contains(err.Error(), url.QueryEscape(sig)) {
					t.Errorf("%s: call %d: the signature %q is in the error %q", answer, i, sig, err)
				}
			}
		}
		mu.Unlock()
	}
}

// Lookups made at the same time share their listings: each reads a
// listing started after its call (never one already under way), finds its
// own order in it, and the pages are read once for all of them, not once
// each (a black-box run after an outage: 59,000 QueryOrders for 830
// creates).
func TestConcurrentLookupsShareTheListing(t *testing.T) {
	t.Parallel()
	now := time.Now()
	sb := sandbox.New(accessKeyID, accessKeySecret)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("Action") == "QueryOrders" {
			time.Sleep(10 * time.Millisecond) // a listing takes a while
		}
		sb.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := client(t, srv.URL, unicloud.Options{PageSize: 20})
	for i := range 60 {
		sb.Seed(seeded(fmt.Sprintf("other-%d", i), now.Add(-time.Duration(i)*time.Second)))
	}
	const n = 24
	ids := make([]string, n)
	for i := range n {
		ids[i] = sb.Seed(seeded(fmt.Sprintf("ours-%02d", i), now.Add(-30*time.Second))).ID
	}
	var wg sync.WaitGroup
	got := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := order(fmt.Sprintf("ours-%02d", i))
			o.FirstAttempt = now.Add(-time.Minute)
			r, err := c.Lookup(context.Background(), o)
			got[i], errs[i] = r.ProviderOrderID, err
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] != ids[i] {
			t.Errorf("lookup %d found %q, %v; want its own order %s", i, got[i], errs[i], ids[i])
		}
	}
	// Alone, each lookup reads 5 pages in each zone (and page 0 the first
	// time): 24 lookups, 240 calls or more.
	calls := sb.Calls("QueryOrders")
	t.Logf("%d concurrent lookups: %d QueryOrders calls", n, calls)
	if calls > 60 {
		t.Errorf("%d concurrent lookups made %d QueryOrders calls; want the listing shared", n, calls)
	}
}

// A listed order OrderDetail does not know yet (its detail behind the
// listing) is left unidentified, and not asked about again for 15 s: every
// lookup asked for every such order in its window (a black-box run: 75,174
// OrderDetail calls in 9 minutes for 150 orders).
func TestLookupDoesNotAskAgainForAnUnknownDetail(t *testing.T) {
	t.Parallel()
	now := time.Now()
	clock := now
	sb, c := setup(t, unicloud.Options{Now: func() time.Time { return clock }}, func(sb *sandbox.Server) { sb.DetailLag = time.Hour })
	stranger := sb.Seed(seeded("a-stranger", now))
	o := order("ours")
	o.FirstAttempt = now.Add(-time.Minute)
	lookup := func() {
		t.Helper()
		_, err := c.Lookup(context.Background(), o)
		if providers.CodeOf(err) != providers.Ambiguous {
			t.Fatalf("Lookup = %v; want ambiguous: a listed order cannot be identified", err)
		}
		// The person who decides is told which order to look at.
		if want := `it may be order "` + stranger.ID + `": `; stranger.ID == "" || !strings.Contains(err.Error(), want) {
			t.Errorf("Lookup = %v; want it to name %s", err, want)
		}
	}
	lookup()
	lookup()
	if n := sb.Calls("OrderDetail"); n != 1 {
		t.Errorf("OrderDetail called %d times by two lookups a moment apart; want 1", n)
	}
	clock = clock.Add(16 * time.Second)
	lookup()
	if n := sb.Calls("OrderDetail"); n != 2 {
		t.Errorf("OrderDetail called %d times once 16 s passed; want 2: asked again", n)
	}
}

// A lookup whose own deadline ends while it waits for a listing another
// lookup's run is reading (providers.Gather) fails unavailable, with its
// context's error, as no news of the provider's health: the provider was
// not slow to this lookup, which only queued behind a listing under way
// (and the next run, which serves it, starts when that one ends). Counted,
// every waiter whose time ran out behind one slow listing was a failure of
// its own, and a burst of lookups after an outage could open the circuit
// breaker on a provider that answered every request it was sent.
func TestWaitForASharedListingPastTheDeadlineIsNoNews(t *testing.T) {
	t.Parallel()
	now := time.Now()
	sb, url, listing, release := slowListing(t)
	c := client(t, url, unicloud.Options{})
	id := sb.Seed(seeded("ours-a", now.Add(-30*time.Second))).ID

	first := make(chan error, 1)
	go func() {
		o := order("ours-a")
		o.FirstAttempt = now.Add(-time.Minute)
		r, err := c.Lookup(context.Background(), o)
		if err == nil && r.ProviderOrderID != id {
			err = fmt.Errorf("found %q, want %s", r.ProviderOrderID, id)
		}
		first <- err
	}()
	<-listing // the first lookup's listing is under way

	wctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	o := order("ours-b")
	o.FirstAttempt = now.Add(-time.Minute)
	_, err := c.Lookup(wctx, o)
	release()
	if providers.CodeOf(err) != providers.Unavailable || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, providers.ErrNoNews) {
		t.Errorf("Lookup past its deadline behind a shared listing = %v (deadline %v, no news %v); want unavailable, the context's error, no news",
			err, errors.Is(err, context.DeadlineExceeded), errors.Is(err, providers.ErrNoNews))
	}
	if err := <-first; err != nil {
		t.Errorf("the lookup whose run read the listing: %v; want its order", err)
	}
}

// A lookup whose own listing (a run started for it at once, queued behind
// no other) does not come in before the lookup's deadline is a request of
// its own cut off: the provider was slow to it, and the circuit breaker
// counts it (unavailable, not no news). Read as no news, as a wait behind
// another lookup's listing is, a provider whose listings hang past every
// lookup's deadline was never counted: every lookup timed out, none was
// left waiting for the listing's own failure, and the breaker stayed
// closed while every order's lookups hung.
func TestOwnListingPastTheDeadlineIsCounted(t *testing.T) {
	t.Parallel()
	now := time.Now()
	_, url, _, _ := slowListing(t) // a listing that hangs
	c := client(t, url, unicloud.Options{})

	wctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	o := order("ours-a")
	o.FirstAttempt = now.Add(-time.Minute)
	_, err := c.Lookup(wctx, o)
	if providers.CodeOf(err) != providers.Unavailable || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, providers.ErrNoNews) {
		t.Errorf("Lookup past its deadline on a listing of its own = %v (deadline %v, no news %v); want unavailable, the context's error, counted (not no news)",
			err, errors.Is(err, context.DeadlineExceeded), errors.Is(err, providers.ErrNoNews))
	}
	// The circuit breaker counts it: at a threshold of one, it opens.
	g := guard.New(nil, &guard.Options{FailureThreshold: 1, Logger: slog.New(slog.DiscardHandler)})
	g.Done(unicloud.Name, err)
	if st := g.State(unicloud.Name); st != guard.Open {
		t.Errorf("breaker after a lookup whose own listing hung past its deadline: %v; want open", st)
	}
}

// A name listed with the characters the store could not hold dropped
// (ours, 测试盘-r5-0070, listed as r5-0070) may be ours: the lookup is
// Ambiguous, never NotFound. Taken for another instance's, such orders
// were created twice in a black-box run (their creates answered
// throttled, whose not-found the worker believes by default).
func TestLookupNameListedWithoutItsCharactersOutsideASCII(t *testing.T) {
	t.Parallel()
	now := time.Now().In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout)
	e := fmt.Sprintf(`{"Id":"31","OrderCategory":"NEW","ProductCategory":"NAS","CreateTime":%q,"OrderStatus":"PAID","InstanceName":"r5-0070"}`, now)
	endpoint, _ := fakeTransaction(t, []string{listing(1, e)}, nil)
	c := client(t, endpoint, unicloud.Options{})
	o := order("测试盘-r5-0070")
	o.FirstAttempt = time.Now().Add(-time.Minute)
	if r, err := c.Lookup(context.Background(), o); providers.CodeOf(err) != providers.Ambiguous {
		t.Fatalf("Lookup = %+v, %v; want ambiguous (the listed name may be ours), never not_found", r, err)
	}
}

// slowListing serves a sandbox whose QueryOrders answers only once
// released (or once its request ends): started is closed when the first
// one arrives. The listing is released at the test's end at the latest.
func slowListing(t *testing.T) (sb *sandbox.Server, url string, started <-chan struct{}, release func()) {
	t.Helper()
	sb = sandbox.New(accessKeyID, accessKeySecret)
	released, first := make(chan struct{}), make(chan struct{})
	var arrived, once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("Action") == "QueryOrders" {
			arrived.Do(func() { close(first) })
			select {
			case <-released:
			case <-r.Context().Done():
			}
		}
		sb.ServeHTTP(w, r)
	}))
	release = func() { once.Do(func() { close(released) }) }
	t.Cleanup(srv.Close)
	t.Cleanup(release) // before the server closes: cleanups run last first
	return sb, srv.URL, first, release
}

// A lookup whose not-found would be believed only because every create of
// the order that may have been received was answered throttled
// (providers.Order.Throttled) answers Ambiguous while the window holds an
// order made while such a create may have acted, under another name, of
// our category and product, that no order of the ledger owns: no document
// says the listing shows an order under the name its create sent, nor
// that a throttle comes before the order is made, and that order may be
// ours renamed (a black-box run's server listed the file system's id, or
// the name's UTF-8 read as cp1252, and every order whose create it
// throttled after making it was made twice). Owned orders (however many),
// renewals and other products, orders made well after the not-found would
// be believed or long before the first attempt, and lookups not believed
// for a throttle are as before.
func TestThrottledLookupDoesNotBelieveAWindowWithOrdersNoOneOwns(t *testing.T) {
	t.Parallel()
	now := time.Now()
	at := func(t time.Time) string { return t.In(unicloud.ChinaTime()).Format(unicloud.QueryTimeLayout) }
	type ord struct{ id, name, created, category, product string }
	entry := func(o ord) string {
		e := fmt.Sprintf(`{"Id":%q,"OrderCategory":%q,"ProductCategory":%q,"OrderStatus":"PAID"`, o.id, cmp.Or(o.category, "NEW"), cmp.Or(o.product, "NAS"))
		if o.name != "" {
			e += fmt.Sprintf(`,"InstanceName":%q`, o.name)
		}
		if o.created != "" {
			e += fmt.Sprintf(`,"CreateTime":%q`, o.created)
		}
		return e + "}"
	}
	first, last := now.Add(-3*time.Minute), now.Add(-150*time.Second)
	meanwhile := at(now.Add(-160 * time.Second))
	var many []string
	var manyIDs []string
	for i := range 60 {
		many = append(many, entry(ord{id: fmt.Sprint(100 + i), name: fmt.Sprintf("nas-%04x", i), created: meanwhile}))
		manyIDs = append(manyIDs, fmt.Sprint(100+i))
	}
	renamed := ord{id: "31", name: "nas-3f9a1c", created: meanwhile}
	with := func(o ord, f func(*ord)) ord { f(&o); return o }
	for _, tt := range []struct {
		name      string
		orders    []string
		details   map[string]string
		owned     []string
		ours      []providers.ListedOrder // orders of ours the listing must show (Order.Listed)
		throttled bool
		shownFrom time.Time
		last      time.Time
		want      providers.Code
	}{
		{"renamed, made meanwhile", []string{entry(with(renamed, func(o *ord) { o.name = "æµ‹è¯•ç›˜-0001" }))}, nil, nil, nil, true, now.Add(-time.Second), last, providers.Ambiguous},
		{"the file system's id, made meanwhile", []string{entry(renamed)}, nil, nil, nil, true, now.Add(-time.Second), last, providers.Ambiguous},
		{"named in its detail only", []string{entry(with(renamed, func(o *ord) { o.name = "" }))},
			map[string]string{"31": `{"Order":{"Id":"31","OrderCategory":"NEW","ProductCategory":"NAS","OrderStatus":"PAID","InstanceName":"nas-3f9a1c","CreateTime":"` + meanwhile + `"}}`},
			nil, nil, true, now.Add(-time.Second), last, providers.Ambiguous},
		{"no creation time", []string{entry(with(renamed, func(o *ord) { o.created = "" }))}, nil, nil, nil, true, now.Add(-time.Second), last, providers.Ambiguous},
		{"owned by another order", []string{entry(renamed)}, nil, []string{"31"}, nil, true, now.Add(-time.Second), last, providers.NotFound},
		{"sixty, all owned", many, nil, manyIDs, nil, true, now.Add(-time.Second), last, providers.NotFound},
		{"sixty, the last one not owned", many, nil, manyIDs[:59], nil, true, now.Add(-time.Second), last, providers.Ambiguous},
		{"a renewal", []string{entry(with(renamed, func(o *ord) { o.category = "RENEW" }))}, nil, nil, nil, true, now.Add(-time.Second), last, providers.NotFound},
		{"another product", []string{entry(with(renamed, func(o *ord) { o.product = "ECS" }))}, nil, nil, nil, true, now.Add(-time.Second), last, providers.NotFound},
		{"not believed for a throttle", []string{entry(renamed)}, nil, nil, nil, false, now.Add(-time.Second), last, providers.NotFound},
		{"within the listing lag", []string{entry(renamed)}, nil, nil, nil, true, now.Add(time.Minute), last, providers.NotFound},
		{"made after the not-found would be believed", []string{entry(with(renamed, func(o *ord) { o.created = at(now) }))}, nil, nil, nil, true, now.Add(-5 * time.Minute), now.Add(-10 * time.Minute), providers.NotFound},
		// Its wall clock read in UTC+8 is the instant it names: eight
		// hours before the first attempt, by any reading.
		{"eight hours before, its zone given", []string{entry(with(renamed, func(o *ord) {
			o.created = first.Add(-8*time.Hour - 2*time.Minute).In(unicloud.ChinaTime()).Format(time.RFC3339)
		}))}, nil, nil, nil, true, now.Add(-time.Second), last, providers.NotFound},
		// Without a zone, written in UTC, read in UTC+8: eight hours
		// before the window as read, inside it as written.
		{"a UTC wall clock without its zone", []string{entry(with(renamed, func(o *ord) {
			o.created = now.Add(-160 * time.Second).UTC().Format(unicloud.QueryTimeLayout)
		}))}, nil, nil, nil, true, now.Add(-time.Second), last, providers.Ambiguous},
		// An order of ours, owned, listed under the name its create sent:
		// with every character of ours outside ASCII in its name, those
		// are shown as sent, and the order under another name is
		// another's; with a name in ASCII, accented Latin letters (a
		// cp1252 store holds them and not ours), or all of ours but one,
		// that proves nothing of ours.
		{"beside ours listed as sent, a name like ours", []string{entry(renamed), entry(ord{id: "41", name: "测试盘-0041", created: meanwhile})}, nil, []string{"41"},
			[]providers.ListedOrder{{ID: "41", Name: "测试盘-0041"}}, true, now.Add(-time.Second), last, providers.NotFound},
		{"beside ours listed as sent, accented Latin letters", []string{entry(renamed), entry(ord{id: "41", name: "café-0041", created: meanwhile})}, nil, []string{"41"},
			[]providers.ListedOrder{{ID: "41", Name: "café-0041"}}, true, now.Add(-time.Second), last, providers.Ambiguous},
		{"beside ours listed as sent, our characters but one", []string{entry(renamed), entry(ord{id: "41", name: "测试-0041", created: meanwhile})}, nil, []string{"41"},
			[]providers.ListedOrder{{ID: "41", Name: "测试-0041"}}, true, now.Add(-time.Second), last, providers.Ambiguous},
		{"beside ours listed as sent, a name in ASCII", []string{entry(renamed), entry(ord{id: "41", name: "nas-ascii-0041", created: meanwhile})}, nil, []string{"41"},
			[]providers.ListedOrder{{ID: "41", Name: "nas-ascii-0041"}}, true, now.Add(-time.Second), last, providers.Ambiguous},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			endpoint, _ := fakeTransaction(t, []string{listing(len(tt.orders), tt.orders...)}, tt.details)
			c := client(t, endpoint, unicloud.Options{CreateOverrun: time.Minute, ProductCategory: "NAS"})
			o := order("测试盘-0001")
			o.FirstAttempt, o.LastCreate, o.Now = first, tt.last, now
			if tt.last.Before(first) {
				o.FirstAttempt = tt.last.Add(-time.Minute)
			}
			o.ShownFrom, o.Throttled = tt.shownFrom, tt.throttled
			o.Owned = func(_ context.Context, id string) (bool, error) { return slices.Contains(tt.owned, id), nil }
			if tt.ours != nil {
				o.Listed = func(context.Context, time.Time) ([]providers.ListedOrder, error) { return tt.ours, nil }
			}
			_, err := c.Lookup(context.Background(), o)
			if got := providers.CodeOf(err); got != tt.want {
				t.Fatalf("Lookup: %v (%v); want %v", got, err, tt.want)
			}
			if tt.want == providers.Ambiguous && !strings.Contains(err.Error(), "may be this order renamed") {
				t.Errorf("error %v; want it to say the order may be listed under another name", err)
			}
			// The order to look at is named first, whole (a review).
			if tt.want == providers.Ambiguous && !regexp.MustCompile(`: it may be order "[0-9]+"`).MatchString(err.Error()) {
				t.Errorf("error %v; want it to name the order first", err)
			}
		})
	}
}
