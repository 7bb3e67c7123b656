package aliyun_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/aliyun/sandbox"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	since := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	p := aliyun.CreateParams{IotID: "d", CommodityCode: "streamingResource_20_10", Copies: 2, UserID: "u1"}
	base := aliyun.OrderInfo{OrderID: "1", CommodityCode: "streamingResource_20_10", Copies: 2, UserID: "u1", Created: since.Add(time.Second)}
	with := func(f func(*aliyun.OrderInfo)) aliyun.OrderInfo { o := base; f(&o); return o }
	tests := []struct {
		name string
		o    aliyun.OrderInfo
		want aliyun.Verdict
	}{
		{"all match", base, aliyun.Candidate},
		{"created at since", with(func(o *aliyun.OrderInfo) { o.Created = since }), aliyun.Candidate},
		{"created before", with(func(o *aliyun.OrderInfo) { o.Created = since.Add(-time.Second) }), aliyun.Excluded},
		{"other commodity", with(func(o *aliyun.OrderInfo) { o.CommodityCode = "streamingResource_10_5" }), aliyun.Excluded},
		{"other copies", with(func(o *aliyun.OrderInfo) { o.Copies = 3 }), aliyun.Excluded},
		{"other user", with(func(o *aliyun.OrderInfo) { o.UserID = "u2" }), aliyun.Excluded},
		{"user not listed", with(func(o *aliyun.OrderInfo) { o.UserID = "" }), aliyun.Candidate},
		{"no creation time", with(func(o *aliyun.OrderInfo) { o.Created = time.Time{} }), aliyun.Undecidable},
		{"no commodity", with(func(o *aliyun.OrderInfo) { o.CommodityCode = "" }), aliyun.Undecidable},
		{"no copies", with(func(o *aliyun.OrderInfo) { o.Copies = 0 }), aliyun.Undecidable},
		{"no order id", with(func(o *aliyun.OrderInfo) { o.OrderID = "" }), aliyun.Undecidable},
		{"no time but excluded", with(func(o *aliyun.OrderInfo) { o.Created = time.Time{}; o.Copies = 9 }), aliyun.Excluded},
	}
	for _, tt := range tests {
		if got := aliyun.Match(p, since, tt.o); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
	// No userId in the params: any user's order can be ours.
	if got := aliyun.Match(aliyun.CreateParams{CommodityCode: p.CommodityCode, Copies: 2}, since, base); got != aliyun.Candidate {
		t.Errorf("Match without userId = %v", got)
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	since := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	p := aliyun.CreateParams{CommodityCode: "c", Copies: 1}
	ours := aliyun.OrderInfo{OrderID: "1", CommodityCode: "c", Copies: 1, Created: since.Add(time.Minute)}
	twin := aliyun.OrderInfo{OrderID: "2", CommodityCode: "c", Copies: 1, Created: since.Add(2 * time.Minute)}
	old := aliyun.OrderInfo{OrderID: "3", CommodityCode: "c", Copies: 1, Created: since.Add(-time.Hour)}
	other := aliyun.OrderInfo{OrderID: "4", CommodityCode: "x", Copies: 1, Created: since.Add(time.Minute)}
	undated := aliyun.OrderInfo{OrderID: "5", CommodityCode: "c", Copies: 1}

	tests := []struct {
		name   string
		orders []aliyun.OrderInfo
		found  string // order id, "" for none
		reason string // substring of the reason, "" for decided
	}{
		{"empty", nil, "", ""},
		{"only others", []aliyun.OrderInfo{old, other}, "", ""},
		{"one", []aliyun.OrderInfo{old, ours, other}, "1", ""},
		{"two candidates", []aliyun.OrderInfo{ours, twin}, "", "2 orders match"},
		{"undecidable blocks none", []aliyun.OrderInfo{undated}, "", "lack the fields"},
		{"undecidable blocks one", []aliyun.OrderInfo{ours, undated}, "", "lack the fields"},
	}
	for _, tt := range tests {
		m, found, reason := aliyun.Decide(p, since, tt.orders)
		switch {
		case tt.reason != "":
			if found || !strings.Contains(reason, tt.reason) {
				t.Errorf("%s: found %v, reason %q; want undecided %q", tt.name, found, reason, tt.reason)
			}
		case tt.found == "":
			if found || reason != "" {
				t.Errorf("%s: found %v (%s), reason %q; want none", tt.name, found, m.OrderID, reason)
			}
		default:
			if !found || m.OrderID != tt.found || reason != "" {
				t.Errorf("%s: found %v (%s), reason %q; want %s", tt.name, found, m.OrderID, reason, tt.found)
			}
		}
	}
}

// Lookup without a provider order id, against the sandbox's listing.
func TestLookupByQuery(t *testing.T) {
	t.Parallel()
	first := time.Now().Add(-10 * time.Minute)
	const commodity = "streamingResource_20_10"
	tests := []struct {
		name  string
		seed  func(sb *sandbox.Server, iot string) string // returns the expected order id
		mod   func(*aliyun.Options)
		omit  bool
		code  providers.Code // 0: found
		words string
	}{
		{"none", func(sb *sandbox.Server, iot string) string { return "" }, nil, false, providers.NotFound, "no matching order"},
		{"old order of the same kind", func(sb *sandbox.Server, iot string) string {
			sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, PaymentStatus: 1, Created: first.Add(-2 * time.Minute)})
			return ""
		}, nil, false, providers.NotFound, ""},
		{"within the margin", func(sb *sandbox.Server, iot string) string {
			return sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, Created: first.Add(-30 * time.Second)}).OrderID
		}, nil, false, 0, ""},
		{"one among others", func(sb *sandbox.Server, iot string) string {
			sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, PaymentStatus: 1, Created: first.Add(-time.Hour)})
			sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: "streamingResource_10_5", Copies: 2, Created: first.Add(time.Minute)})
			sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 3, Created: first.Add(time.Minute)})
			sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, UserID: "someone-else", Created: first.Add(time.Minute)})
			return sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, UserID: "50e5op6412259c0f11", Created: first.Add(time.Minute)}).OrderID
		}, nil, false, 0, ""},
		{"two candidates", func(sb *sandbox.Server, iot string) string {
			sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, Created: first.Add(time.Minute)})
			sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, Created: first.Add(2 * time.Minute)})
			return ""
		}, nil, false, providers.Ambiguous, "2 orders match"},
		{"no creation time listed", func(sb *sandbox.Server, iot string) string {
			sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, PaymentStatus: 1, Created: first.Add(-time.Hour)})
			return ""
		}, nil, true, providers.Ambiguous, "lack the fields"},
		{"found on the third page", func(sb *sandbox.Server, iot string) string {
			// Newest first: 44 newer orders of another kind fill two
			// pages before ours.
			id := sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, Created: first.Add(time.Second)}).OrderID
			for i := range 44 {
				sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: "streamingResource_10_5", Copies: 2,
					Created: first.Add(time.Duration(i+1) * time.Second)})
			}
			return id
		}, func(o *aliyun.Options) { o.PageSize = 20 }, false, 0, ""},
		{"paged, one candidate", func(sb *sandbox.Server, iot string) string {
			for i := range 45 {
				sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, PaymentStatus: 1,
					Created: first.Add(-time.Duration(i+1) * time.Hour)})
			}
			return sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, Created: first.Add(time.Second)}).OrderID
		}, func(o *aliyun.Options) { o.PageSize = 20 }, false, 0, ""},
		{"server caps the page size", func(sb *sandbox.Server, iot string) string {
			sb.SetMaxPageSize(10)
			id := sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, Created: first.Add(time.Second)}).OrderID
			for i := range 24 {
				sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: "streamingResource_10_5", Copies: 2,
					Created: first.Add(time.Duration(i+1) * time.Second)})
			}
			return id
		}, func(o *aliyun.Options) { o.PageSize = 20 }, false, 0, ""},
		{"more than MaxPages", func(sb *sandbox.Server, iot string) string {
			for i := range 11 {
				sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, PaymentStatus: 1,
					Created: first.Add(-time.Duration(i+1) * time.Hour)})
			}
			return ""
		}, func(o *aliyun.Options) { o.PageSize = 5; o.MaxPages = 2 }, false, providers.Ambiguous, "more than 10 orders"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, tt.mod)
			f.sb.SetOmitCreateTime(tt.omit)
			o := testOrder(i + 400)
			o.FirstAttempt = first
			want := tt.seed(f.sb, iotID(i+400))
			r, err := f.c.Lookup(ctx(t), o)
			if tt.code != 0 {
				if c := providers.CodeOf(err); c != tt.code || !strings.Contains(fmt.Sprint(err), tt.words) {
					t.Fatalf("Lookup = %+v, %v; want %v %q", r, err, tt.code, tt.words)
				}
				if providers.CodeOf(err) == providers.Ambiguous && f.sb.Calls(aliyun.PathPay) != 0 {
					t.Errorf("paid an order it could not identify")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.ProviderOrderID != want {
				t.Errorf("Lookup found %q, want %q", r.ProviderOrderID, want)
			}
		})
	}
}

func TestLookupByQueryNeedsFirstAttempt(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	_, err := f.c.Lookup(ctx(t), testOrder(1))
	if c := providers.CodeOf(err); c != providers.FailedPrecondition {
		t.Errorf("Lookup without FirstAttempt: %v, want failed_precondition", err)
	}
}
