package unicloud

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
)

// pagedServer plays QueryOrders with the page numbering under test, without
// checking signatures. Its orders are listed newest first, each with the
// instance name and creation time, so a lookup needs no OrderDetail.
type pagedServer struct {
	mu    sync.Mutex
	size  int
	total bool // answer with TotalCount
	alias bool // Page 0 is served as page 1 (the server counts from 1)
	from0 bool // Page counts from 0
	fail0 bool // Page 0 answers 500
	noID0 bool // Page 0 lists its orders without an Id
	lag   int  // the newest orders counted in TotalCount but not listed yet
	// ignorePage: every Page is answered with the first page.
	ignorePage bool
	// repeatLast: a Page past the end is answered with the last page.
	repeatLast bool
	ids        []string // newest first
	pages      []int    // the Page of every QueryOrders call, in order
	before     func(s *pagedServer, page int)
}

const pagedName = "实例 one" // validParams' instanceName

func (s *pagedServer) add(id string) { s.ids = slices.Insert(s.ids, 0, id) }

func (s *pagedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("Action") != "QueryOrders" {
		fmt.Fprint(w, `{"Status":false,"Auth":true,"Code":"OrderNotExist"}`)
		return
	}
	p, _ := strconv.Atoi(q.Get("Page"))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pages = append(s.pages, p)
	if s.before != nil {
		s.before(s, p)
	}
	idx := p - 1
	switch {
	case s.from0:
		idx = p
	case p == 0 && s.fail0:
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"Code":"InternalError","Msg":"x"}`)
		return
	case p == 0 && s.alias:
		idx = 0
	}
	switch {
	case s.ignorePage:
		idx = 0
	case s.repeatLast && idx*s.size >= len(s.ids)-s.lag && len(s.ids) > s.lag:
		idx = (len(s.ids) - s.lag - 1) / s.size
	}
	var entries []string
	if idx >= 0 {
		now := time.Now().In(ChinaTime()).Format(QueryTimeLayout)
		ids := s.ids[min(s.lag, len(s.ids)):]
		for _, id := range ids[min(idx*s.size, len(ids)):min((idx+1)*s.size, len(ids))] {
			idField := fmt.Sprintf(`"Id":%q,`, id)
			if p == 0 && s.noID0 {
				idField = ""
			}
			entries = append(entries, fmt.Sprintf(`{%s"OrderCategory":"NEW","CreateTime":%q,"InstanceName":%q}`, idField, now, pagedName+"-"+id))
		}
	}
	total := ""
	if s.total {
		total = fmt.Sprintf(`"TotalCount":%d,`, len(s.ids))
	}
	fmt.Fprintf(w, `{%s"OrderList":{"Order":[%s]}}`, total, strings.Join(entries, ","))
}

func (s *pagedServer) calls() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pages)
}

// pagedLookup looks up the order whose listed name is pagedName+"-"+id:
// the listed names carry the id, so only that order can be ours.
func pagedLookup(t *testing.T, s *pagedServer, c *Client, id string) (providers.Result, error) {
	t.Helper()
	var m map[string]any
	_ = json.Unmarshal([]byte(validParams), &m)
	m["instanceName"] = pagedName + "-" + id
	raw, _ := json.Marshal(m)
	o := providers.Order{OrderNo: "o-" + id, Params: raw, FirstAttempt: time.Now().Add(-time.Minute)}
	return c.Lookup(context.Background(), o)
}

func newPaged(t *testing.T, s *pagedServer) *Client {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return newTestClient(t, Options{Endpoint: srv.URL, PageSize: s.size})
}

// Page 1 came back empty without a TotalCount and page 0 could not be
// read: the server may count from 0 and hold the order there, so the
// listing is incomplete, never an empty window (not_found). When page 1
// held orders, the listing read from 1 stands.
func TestListingEmptyPageOneAndUnreadablePageZero(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    *pagedServer
		want providers.Code
	}{
		{"page 0 fails", &pagedServer{size: 10, fail0: true}, providers.Unavailable},
		{"page 0 lists orders without an Id", &pagedServer{size: 10, from0: true, noID0: true, ids: []string{"7"}}, providers.Unavailable},
		{"page 0 is empty too", &pagedServer{size: 10, alias: true}, providers.NotFound},
		{"page 1 held orders, page 0 fails", &pagedServer{size: 10, fail0: true, ids: []string{"7"}}, providers.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newPaged(t, tt.s)
			r, err := pagedLookup(t, tt.s, c, "42")
			if got := providers.CodeOf(err); got != tt.want {
				t.Errorf("Lookup = %+v, %v; want %v (pages read %v)", r, err, tt.want, tt.s.calls())
			}
		})
	}
}

// A server that serves page 0 as page 1: page 1 is read empty, then an
// order lands, and page 0 shows it. That is no proof the server counts
// from 0: page 1, read again, shows the same order, so the server counts
// from 1, the listing is read from 1 and "from 0" is never remembered.
func TestListingAliasedPageZeroRace(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		total  bool
		before func(s *pagedServer, page int)
	}{
		// Page 1 empty ends the list; the order lands before page 0 is read.
		{"without a total", false, func(s *pagedServer, page int) {
			if page == 0 && len(s.ids) == 0 {
				s.add("42")
			}
		}},
		// Page 1 is empty short of a TotalCount of 1 (the order is counted
		// before it is listed); it is listed from page 0's read on. Read
		// on from 0, the list ends at page 0 and never shows the aliasing.
		{"listed after it is counted", true, func(s *pagedServer, page int) {
			if len(s.ids) == 0 {
				s.add("42")
				s.lag = 1
			} else {
				s.lag = 0
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &pagedServer{size: 10, alias: true, total: tt.total, before: tt.before}
			c := newPaged(t, s)
			r, err := pagedLookup(t, s, c, "42")
			if err != nil || r.ProviderOrderID != "42" {
				t.Fatalf("Lookup = %+v, %v; want order 42 (pages read %v)", r, err, s.calls())
			}
			if c.pagesFrom0.Load() || !c.pagesFrom1.Load() {
				t.Fatalf("from0 %v, from1 %v after page 0 was judged against an empty page 1; want the server taken to count from 1 (pages read %v)",
					c.pagesFrom0.Load(), c.pagesFrom1.Load(), s.calls())
			}
			n := len(s.calls())
			if _, err := pagedLookup(t, s, c, "42"); err != nil {
				t.Fatal(err)
			}
			if later := s.calls()[n:]; slices.Contains(later, 0) {
				t.Errorf("a later lookup read pages %v, want none from 0", later)
			}
		})
	}
}

// Page 1, read again to confirm that the server counts from 0, holds other
// orders than page 0: orders moved, and nothing is remembered.
func TestListingPageZeroConfirmationMoved(t *testing.T) {
	t.Parallel()
	reads := 0
	s := &pagedServer{size: 10, before: func(s *pagedServer, page int) {
		if page == 1 {
			reads++
		}
		switch {
		case page == 0:
			s.from0 = true
			s.ids = []string{"9"}
		case page == 1 && reads == 2:
			s.from0 = false
			s.ids = []string{"8"}
		}
	}}
	c := newPaged(t, s)
	if r, err := pagedLookup(t, s, c, "42"); providers.CodeOf(err) != providers.Unavailable {
		t.Fatalf("Lookup = %+v, %v; want unavailable (pages read %v)", r, err, s.calls())
	}
	if c.pagesFrom0.Load() || c.pagesFrom1.Load() {
		t.Errorf("the client remembers where pages start after a listing that moved")
	}
}

// A client that took the server to count from 0 reads page 1 identical to
// page 0: the server serves page 0 as page 1. Read on from 0, its pages
// repeat, the TotalCount is reached a page early and the last page (our
// order, the oldest) goes unread: "from 0" is forgotten and the listing
// read from 1.
func TestListingFromZeroForgetsAliasedServer(t *testing.T) {
	t.Parallel()
	s := &pagedServer{size: 2, alias: true, total: true, ids: []string{"5", "4", "3", "2", "1"}}
	c := newPaged(t, s)
	c.pagesFrom0.Store(true)
	r, err := pagedLookup(t, s, c, "1")
	if err != nil || r.ProviderOrderID != "1" {
		t.Fatalf("Lookup = %+v, %v; want order 1 (pages read %v)", r, err, s.calls())
	}
	if c.pagesFrom0.Load() || !c.pagesFrom1.Load() {
		t.Errorf("from0 %v, from1 %v; want the server taken to count from 1", c.pagesFrom0.Load(), c.pagesFrom1.Load())
	}
}

// A page whose entries were all read before brings no order: its entries
// count toward TotalCount although none is new. A server that ignores Page
// (15 orders, 10 on every page) would reach 20 "received" at page 2 and
// the listing would be judged complete without the 5 oldest (ours among
// them): the listing is incomplete, never not_found. A server counting
// from 0 that repeats its last page past the end is read from 1 as its
// last page twice: page 0 is read then, shows the server counts from 0,
// and the listing read from 0 is complete.
func TestListingPageWithNoNewOrder(t *testing.T) {
	t.Parallel()
	ids := func(n int) []string {
		var out []string
		for i := n; i >= 1; i-- {
			out = append(out, fmt.Sprintf("%02d", i))
		}
		return out
	}
	tests := []struct {
		name  string
		s     *pagedServer
		find  string         // the order looked up: the oldest, or for a server counting from 0 the newest (on its page 0)
		want  providers.Code // Unknown: found
		from0 bool           // the client is left reading from 0
	}{
		{"page ignored, with a total", &pagedServer{size: 10, total: true, ignorePage: true, ids: ids(15)}, "01", providers.Unavailable, false},
		{"page ignored, without a total", &pagedServer{size: 10, ignorePage: true, ids: ids(15)}, "01", providers.Unavailable, false},
		{"from 0, last page repeated, with a total", &pagedServer{size: 10, total: true, from0: true, repeatLast: true, ids: ids(15)}, "15", providers.Unknown, true},
		{"from 0, last page repeated, without a total", &pagedServer{size: 10, from0: true, repeatLast: true, ids: ids(15)}, "15", providers.Unavailable, true},
		{"from 1, last page repeated, with a total", &pagedServer{size: 10, total: true, alias: true, repeatLast: true, ids: ids(15)}, "01", providers.Unknown, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newPaged(t, tt.s)
			r, err := pagedLookup(t, tt.s, c, tt.find)
			if tt.want == providers.Unknown {
				if err != nil || r.ProviderOrderID != tt.find {
					t.Fatalf("Lookup = %+v, %v; want order %s (pages read %v)", r, err, tt.find, tt.s.calls())
				}
			} else if got := providers.CodeOf(err); got != tt.want {
				t.Fatalf("Lookup = %+v, %v; want %v (pages read %v)", r, err, tt.want, tt.s.calls())
			}
			if tt.want == providers.Unavailable && !strings.Contains(err.Error(), "no new order") {
				t.Errorf("error %q does not say a page brought no new order", err)
			}
			if got := c.pagesFrom0.Load(); got != tt.from0 {
				t.Errorf("from0 = %v, want %v (pages read %v)", got, tt.from0, tt.s.calls())
			}
		})
	}
}

// Orders created while a newest-first list is read shift its pages by
// one entry each: a page that repeats some entries but brings new ones
// still counts them all toward TotalCount, and the listing completes.
func TestListingShiftedPagesStillComplete(t *testing.T) {
	t.Parallel()
	s := &pagedServer{size: 10, total: true}
	for i := 1; i <= 15; i++ {
		s.add(fmt.Sprintf("%02d", i))
	}
	s.before = func(s *pagedServer, page int) {
		if page == 2 && len(s.ids) == 15 {
			s.add("16")
			s.add("17")
		}
	}
	c := newPaged(t, s)
	r, err := pagedLookup(t, s, c, "01")
	if err != nil || r.ProviderOrderID != "01" {
		t.Fatalf("Lookup = %+v, %v; want order 01 (pages read %v)", r, err, s.calls())
	}
}

func TestMayBeOurs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		listed, ours string
		want         bool
	}{
		{"nas-prod-web", "nas-prod-web", true},
		{"NAS-PROD-WEB ", "nas-prod-web", true},
		{"nas-prod…", "nas-prod-web", true}, // 8 characters
		{"nas-pro…", "nas-prod-web", false}, // 7
		{"nas-prod-web-2", "nas-prod-web", true},
		{"…", "nas-prod-web", false},
		{"...", "nas-prod-web", false},
		{"", "nas-prod-web", false},
		{"ab…", "abc", false}, // 2 of ours' 3
		{"abc…", "abc", true}, // all of ours
		{"abcd", "abc", true}, // ours is all 3 characters of the shorter
		{"a", "a", true},
		{"ab", "a", true},
		{"实例名称…", "实例名称一二三四", false}, // 4 characters
		{"实例名称一二三四…", "实例名称一二三四五", true},
	} {
		if got := mayBeOurs(tt.listed, tt.ours); got != tt.want {
			t.Errorf("mayBeOurs(%q, %q) = %v, want %v", tt.listed, tt.ours, got, tt.want)
		}
	}
}
