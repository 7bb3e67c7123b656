package aliyun_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strconv"
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
	fallback := aliyun.SinceRule(p, since)
	snapshot := aliyun.SnapshotRule(p, []string{"7", "8"})
	tests := []struct {
		name string
		rule aliyun.Rule
		o    aliyun.OrderInfo
		want aliyun.Verdict
	}{
		{"all match", fallback, base, aliyun.Candidate},
		{"created at since", fallback, with(func(o *aliyun.OrderInfo) { o.Created = since }), aliyun.Candidate},
		{"created before", fallback, with(func(o *aliyun.OrderInfo) { o.Created = since.Add(-time.Second) }), aliyun.Excluded},
		{"other commodity", fallback, with(func(o *aliyun.OrderInfo) { o.CommodityCode = "streamingResource_10_5" }), aliyun.Excluded},
		{"other copies", fallback, with(func(o *aliyun.OrderInfo) { o.Copies = 3 }), aliyun.Excluded},
		// userId may be the platform identity or the vendor's own id, and
		// the listing need not give back what was sent.
		{"other user", fallback, with(func(o *aliyun.OrderInfo) { o.UserID = "u2" }), aliyun.Undecidable},
		{"other user, other copies", fallback, with(func(o *aliyun.OrderInfo) { o.UserID = "u2"; o.Copies = 3 }), aliyun.Excluded},
		{"other user, created before", fallback, with(func(o *aliyun.OrderInfo) { o.UserID = "u2"; o.Created = since.Add(-time.Hour) }), aliyun.Excluded},
		{"user not listed", fallback, with(func(o *aliyun.OrderInfo) { o.UserID = "" }), aliyun.Candidate},
		// Masked with asterisks (as the documents print one), it is
		// another's all the same: a mask may show only what every user's
		// id shares ("customer-0000****"), and taken for ours a stranger's
		// order on the device would be paid under ALIYUN_PAY_MATCHED.
		{"user masked", fallback, with(func(o *aliyun.OrderInfo) { o.UserID = "***" }), aliyun.Undecidable},
		{"user masked, ours around it", fallback, with(func(o *aliyun.OrderInfo) { o.UserID = "u*" }), aliyun.Undecidable},
		{"no creation time", fallback, with(func(o *aliyun.OrderInfo) { o.Created = time.Time{} }), aliyun.Undecidable},
		// Nothing documents that a listing gives the code back as sent.
		{"commodity in other case", fallback, with(func(o *aliyun.OrderInfo) { o.CommodityCode = "StreamingResource_20_10" }), aliyun.Undecidable},
		{"commodity rewritten", snapshot, with(func(o *aliyun.OrderInfo) { o.CommodityCode = "streamingresource-20-10" }), aliyun.Undecidable},
		{"commodity rewritten, other copies", snapshot, with(func(o *aliyun.OrderInfo) { o.CommodityCode = "STREAMINGRESOURCE_20_10"; o.Copies = 3 }), aliyun.Excluded},
		{"commodity with a digit more", fallback, with(func(o *aliyun.OrderInfo) { o.CommodityCode = "streamingResource_20_100" }), aliyun.Excluded},
		{"no commodity", fallback, with(func(o *aliyun.OrderInfo) { o.CommodityCode = "" }), aliyun.Undecidable},
		{"no copies", fallback, with(func(o *aliyun.OrderInfo) { o.Copies = 0 }), aliyun.Undecidable},
		{"no order id", fallback, with(func(o *aliyun.OrderInfo) { o.OrderID = "" }), aliyun.Undecidable},
		{"no time but excluded", fallback, with(func(o *aliyun.OrderInfo) { o.Created = time.Time{}; o.Copies = 9 }), aliyun.Excluded},
		// A time read without a zone may be off by a zone's offset.
		// Excluded only when before Since in every zone, a candidate only
		// when after it in every zone, undecidable in between.
		{"zone-less, 13 h before", fallback, with(func(o *aliyun.OrderInfo) { o.Created = since.Add(-13 * time.Hour); o.CreatedNoZone = true }), aliyun.Undecidable},
		{"zone-less, 14 h before", fallback, with(func(o *aliyun.OrderInfo) { o.Created = since.Add(-14 * time.Hour); o.CreatedNoZone = true }), aliyun.Undecidable},
		{"zone-less, 15 h before", fallback, with(func(o *aliyun.OrderInfo) { o.Created = since.Add(-15 * time.Hour); o.CreatedNoZone = true }), aliyun.Excluded},
		{"zone-less, at since", fallback, with(func(o *aliyun.OrderInfo) { o.Created = since; o.CreatedNoZone = true }), aliyun.Undecidable},
		{"zone-less, 13 h after", fallback, with(func(o *aliyun.OrderInfo) { o.Created = since.Add(13 * time.Hour); o.CreatedNoZone = true }), aliyun.Undecidable},
		{"zone-less, 14 h after", fallback, with(func(o *aliyun.OrderInfo) { o.Created = since.Add(14 * time.Hour); o.CreatedNoZone = true }), aliyun.Candidate},
		{"zone-less, 15 h after, other copies", fallback, with(func(o *aliyun.OrderInfo) { o.Created = since.Add(15 * time.Hour); o.CreatedNoZone = true; o.Copies = 3 }), aliyun.Excluded},
		// A time that cannot be right was misread: unknown.
		{"created in 1970", fallback, with(func(o *aliyun.OrderInfo) { o.Created = time.UnixMilli(1_714_564_800) }), aliyun.Undecidable},
		{"created in 2014", fallback, with(func(o *aliyun.OrderInfo) { o.Created = time.Date(2014, 12, 31, 0, 0, 0, 0, time.UTC) }), aliyun.Undecidable},
		{"created a day and more ahead", at(fallback, since), with(func(o *aliyun.OrderInfo) { o.Created = since.Add(25 * time.Hour) }), aliyun.Undecidable},
		{"created within a day ahead", at(fallback, since), with(func(o *aliyun.OrderInfo) { o.Created = since.Add(23 * time.Hour) }), aliyun.Candidate},

		// The snapshot rule never reads a creation time.
		{"snapshot: new", snapshot, base, aliyun.Candidate},
		{"snapshot: new without creation time", snapshot, with(func(o *aliyun.OrderInfo) { o.Created = time.Time{} }), aliyun.Candidate},
		{"snapshot: new, dated before since", snapshot, with(func(o *aliyun.OrderInfo) { o.Created = since.Add(-time.Hour) }), aliyun.Candidate},
		{"snapshot: known", snapshot, with(func(o *aliyun.OrderInfo) { o.OrderID = "7" }), aliyun.Excluded},
		{"snapshot: known without fields", snapshot, with(func(o *aliyun.OrderInfo) { o.OrderID = "8"; o.CommodityCode = ""; o.Copies = 0 }), aliyun.Excluded},
		{"snapshot: no order id", snapshot, with(func(o *aliyun.OrderInfo) { o.OrderID = "" }), aliyun.Undecidable},
		{"snapshot: other copies", snapshot, with(func(o *aliyun.OrderInfo) { o.Copies = 3 }), aliyun.Excluded},
		{"snapshot: other user", snapshot, with(func(o *aliyun.OrderInfo) { o.UserID = "u2" }), aliyun.Undecidable},
		{"snapshot: known, other user", snapshot, with(func(o *aliyun.OrderInfo) { o.OrderID = "7"; o.UserID = "u2" }), aliyun.Excluded},
		{"snapshot: no commodity", snapshot, with(func(o *aliyun.OrderInfo) { o.CommodityCode = "" }), aliyun.Undecidable},
		{"empty snapshot: new", aliyun.SnapshotRule(p, []string{}), with(func(o *aliyun.OrderInfo) { o.Created = time.Time{} }), aliyun.Candidate},
	}
	for _, tt := range tests {
		if got := tt.rule.Match(tt.o); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
	// No userId in the params: any user's order can be ours.
	if got := aliyun.SinceRule(aliyun.CreateParams{CommodityCode: p.CommodityCode, Copies: 2}, since).Match(base); got != aliyun.Candidate {
		t.Errorf("Match without userId = %v", got)
	}
}

// at returns r judging creation times as of now.
func at(r aliyun.Rule, now time.Time) aliyun.Rule { r.Now = now; return r }

// Creation times: epoch seconds or milliseconds, zone-less (UTC+8) or
// RFC 3339; anything else is no time at all, never an error.
func TestParseCreationTime(t *testing.T) {
	t.Parallel()
	want := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
	tests := []struct {
		raw    string
		want   time.Time
		noZone bool
	}{
		{`1700000000`, want, false},
		{`"1700000000"`, want, false},
		{`1700000000000`, want, false},
		{`"2023-11-15 06:13:20"`, want, true},
		{`"2023-11-14T22:13:20Z"`, want, false},
		{`"2023-11-15T06:13:20+08:00"`, want, false},
		{`"14/11/2023"`, time.Time{}, false},
		{`1.7e9`, time.Time{}, false},
		{`-5`, time.Time{}, false},
		{`{"s":1}`, time.Time{}, false},
		{`null`, time.Time{}, false},
	}
	for _, tt := range tests {
		for _, field := range []string{"gmtCreate", "createTime"} {
			o, err := aliyun.ParseOrder(json.RawMessage(`{"orderId":"1","` + field + `":` + tt.raw + `}`))
			if err != nil || !o.Created.Equal(tt.want) || o.CreatedNoZone != tt.noZone {
				t.Errorf("%s %s: Created %v (no zone %v), %v; want %v (%v)", field, tt.raw, o.Created, o.CreatedNoZone, err, tt.want, tt.noZone)
			}
		}
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
	recent := aliyun.OrderInfo{OrderID: "6", CommodityCode: "c", Copies: 1, Created: since.Add(time.Minute)}
	fallback := aliyun.SinceRule(p, since)
	// The snapshot holds the old, undated and recent orders: they existed
	// before the first create, whatever their dates say.
	snapshot := aliyun.SnapshotRule(p, []string{"3", "5", "6"})

	tests := []struct {
		name   string
		rule   aliyun.Rule
		orders []aliyun.OrderInfo
		found  string // order id, "" for none
		reason string // substring of the reason, "" for decided
	}{
		{"empty", fallback, nil, "", ""},
		{"only others", fallback, []aliyun.OrderInfo{old, other}, "", ""},
		{"one", fallback, []aliyun.OrderInfo{old, ours, other}, "1", ""},
		{"two candidates", fallback, []aliyun.OrderInfo{ours, twin}, "", "2 orders match"},
		{"two candidates named", fallback, []aliyun.OrderInfo{ours, twin}, "", `it may be order "1" or "2": 2 orders match`},
		{"undecidable blocks none", fallback, []aliyun.OrderInfo{undated}, "", "lack the fields"},
		{"undecidable blocks one", fallback, []aliyun.OrderInfo{ours, undated}, "", "lack the fields"},
		{"undecidable and candidate named", fallback, []aliyun.OrderInfo{ours, undated}, "", `it may be order "5" or "1": 1 listed order(s) lack`},
		{"many named", fallback, []aliyun.OrderInfo{ours, twin, {OrderID: "7", CommodityCode: "c", Copies: 1, Created: since.Add(3 * time.Minute)},
			{OrderID: "8", CommodityCode: "c", Copies: 1, Created: since.Add(4 * time.Minute)}, {OrderID: "9", CommodityCode: "c", Copies: 1, Created: since.Add(5 * time.Minute)},
			{OrderID: "10", CommodityCode: "c", Copies: 1, Created: since.Add(6 * time.Minute)}}, "", `"9" or 1 more: 6 orders match`},

		{"snapshot: empty", snapshot, nil, "", ""},
		{"snapshot: only known and others", snapshot, []aliyun.OrderInfo{old, undated, recent, other}, "", ""},
		{"snapshot: one new among known", snapshot, []aliyun.OrderInfo{old, undated, recent, ours, other}, "1", ""},
		{"snapshot: new without a date", snapshot, []aliyun.OrderInfo{old, {OrderID: "9", CommodityCode: "c", Copies: 1}}, "9", ""},
		{"snapshot: two new", snapshot, []aliyun.OrderInfo{ours, twin, old}, "", `it may be order "1" or "2": 2 orders of this commodity`},
		{"snapshot: new without an id", snapshot, []aliyun.OrderInfo{ours, {CommodityCode: "c", Copies: 1}}, "", "lack the fields"},
	}
	for _, tt := range tests {
		m, found, reason := tt.rule.Decide(tt.orders)
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
			sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, UserID: "someone-else", Created: first.Add(-time.Hour)})
			return sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, UserID: "50e5op6412259c0f11", Created: first.Add(time.Minute)}).OrderID
		}, nil, false, 0, ""},
		// The listing may give the platform identity where the params
		// sent the vendor's own id: a person decides, never not_found.
		{"another userId listed", func(sb *sandbox.Server, iot string) string {
			sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, UserID: "50e5op6412259c0f117000000cd9326da8409", Created: first.Add(time.Minute)})
			return ""
		}, nil, false, providers.Ambiguous, "another userId"},
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
			f.sb.SetListCreateTime(!tt.omit)
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
				if tt.name == "more than MaxPages" && !errors.Is(err, providers.ErrNoNews) {
					// Cut short by the page cap: no news of the provider's
					// health, neither a success nor a failure for the breaker.
					t.Errorf("Lookup past MaxPages = %v; want no news (providers.ErrNoNews)", err)
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

// Lookup without a provider order id after Prepare took a snapshot of the
// device's orders, and the fallback rule's refusal to adopt an order that
// belongs to another record.
func TestLookupBySnapshot(t *testing.T) {
	t.Parallel()
	const commodity = "streamingResource_20_10"
	same := func(iot string) sandbox.Order {
		return sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2}
	}
	tests := []struct {
		name     string
		fallback bool // no snapshot: Known stays nil
		omit     bool // listings carry no creation time
		// before seeds orders that exist before Prepare, after those
		// created after it; after returns the id Lookup must find ("" for
		// none) and the ids other records own.
		before func(sb *sandbox.Server, iot string)
		after  func(sb *sandbox.Server, iot string) (want string, owned []string)
		owned  error // what Owned answers with, when not nil
		code   providers.Code
		words  string
	}{
		{name: "the only order, no creation time listed", omit: true,
			after: func(sb *sandbox.Server, iot string) (string, []string) { return sb.AddOrder(same(iot)).OrderID, nil }},
		{name: "new among older ones of the same kind", omit: true,
			before: func(sb *sandbox.Server, iot string) {
				for range 3 {
					o := same(iot)
					o.PaymentStatus = 1
					sb.AddOrder(o)
				}
			},
			after: func(sb *sandbox.Server, iot string) (string, []string) { return sb.AddOrder(same(iot)).OrderID, nil }},
		{name: "older ones only", omit: true,
			before: func(sb *sandbox.Server, iot string) { sb.AddOrder(same(iot)); sb.AddOrder(same(iot)) },
			after:  func(sb *sandbox.Server, iot string) (string, []string) { return "", nil },
			code:   providers.NotFound, words: "new on the device since the snapshot"},
		{name: "only another record's order",
			after: func(sb *sandbox.Server, iot string) (string, []string) {
				return "", []string{sb.AddOrder(same(iot)).OrderID}
			},
			code: providers.NotFound, words: "1 belong to other orders"},
		{name: "ours and another record's",
			after: func(sb *sandbox.Server, iot string) (string, []string) {
				b := sb.AddOrder(same(iot)).OrderID
				return sb.AddOrder(same(iot)).OrderID, []string{b}
			}},
		{name: "two new, none owned", omit: true,
			after: func(sb *sandbox.Server, iot string) (string, []string) {
				sb.AddOrder(same(iot))
				sb.AddOrder(same(iot))
				return "", nil
			},
			code: providers.Ambiguous, words: "a person decides"},
		{name: "new of another kind only",
			after: func(sb *sandbox.Server, iot string) (string, []string) {
				o := same(iot)
				o.Copies = 3
				sb.AddOrder(o)
				return "", nil
			},
			code: providers.NotFound},
		{name: "ownership unknown",
			after: func(sb *sandbox.Server, iot string) (string, []string) { sb.AddOrder(same(iot)); return "", nil },
			owned: errors.New("ledger unreachable"), code: providers.Unavailable, words: "belongs to another order"},
		{name: "fallback: only another record's order", fallback: true,
			after: func(sb *sandbox.Server, iot string) (string, []string) {
				return "", []string{sb.AddOrder(same(iot)).OrderID}
			},
			code: providers.NotFound, words: "1 belong to other orders"},
		{name: "fallback: ours and another record's", fallback: true,
			after: func(sb *sandbox.Server, iot string) (string, []string) {
				b := sb.AddOrder(same(iot)).OrderID
				return sb.AddOrder(same(iot)).OrderID, []string{b}
			}},
		{name: "fallback: no creation time listed", fallback: true, omit: true,
			after: func(sb *sandbox.Server, iot string) (string, []string) { sb.AddOrder(same(iot)); return "", nil },
			code:  providers.Ambiguous, words: "lack the fields"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			f.sb.SetListCreateTime(!tt.omit)
			iot := iotID(i + 500)
			o := testOrder(i + 500)
			o.FirstAttempt = time.Now()
			if tt.before != nil {
				tt.before(f.sb, iot)
			}
			if !tt.fallback {
				known, err := f.c.Prepare(ctx(t), o)
				if err != nil {
					t.Fatalf("Prepare: %v", err)
				}
				if known == nil || len(known) != f.sb.Count(iot) {
					t.Fatalf("Prepare = %v, want the ids of the device's %d orders (never nil)", known, f.sb.Count(iot))
				}
				o.Known = known
			}
			want, owned := tt.after(f.sb, iot)
			o.Owned = func(_ context.Context, id string) (bool, error) {
				if tt.owned != nil {
					return false, tt.owned
				}
				return slices.Contains(owned, id), nil
			}
			r, err := f.c.Lookup(ctx(t), o)
			if tt.code != 0 {
				if c := providers.CodeOf(err); c != tt.code || !strings.Contains(fmt.Sprint(err), tt.words) {
					t.Fatalf("Lookup = %+v, %v; want %v %q", r, err, tt.code, tt.words)
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

// Prepare reads every page once, and refuses a device it cannot list in
// full rather than return a partial snapshot.
func TestPrepare(t *testing.T) {
	t.Parallel()
	t.Run("pages", func(t *testing.T) {
		t.Parallel()
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 20 })
		o := testOrder(600)
		var want []string
		for range 45 {
			want = append(want, f.sb.AddOrder(sandbox.Order{IotID: iotID(600), CommodityCode: "c", Copies: 1}).OrderID)
		}
		got, err := f.c.Prepare(ctx(t), o)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("Prepare = %v, want %v", got, want)
		}
		// Three pages and the empty fourth: the total never ends a
		// listing; and page 0, refused twice (the sandbox counts from 1).
		if n := f.sb.Calls(aliyun.PathQuery); n != 6 {
			t.Errorf("Prepare made %d order/query calls for 45 orders in pages of 20, want 6", n)
		}
	})
	t.Run("empty device", func(t *testing.T) {
		t.Parallel()
		f := setup(t, nil)
		got, err := f.c.Prepare(ctx(t), testOrder(601))
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("Prepare = %#v, %v; want an empty, non-nil snapshot", got, err)
		}
	})
	t.Run("past MaxPages", func(t *testing.T) {
		t.Parallel()
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 5; o.MaxPages = 2 })
		for range 11 {
			f.sb.AddOrder(sandbox.Order{IotID: iotID(602), CommodityCode: "c", Copies: 1})
		}
		got, err := f.c.Prepare(ctx(t), testOrder(602))
		if c := providers.CodeOf(err); c != providers.FailedPrecondition || !strings.Contains(err.Error(), "run past 2 pages") || got != nil {
			t.Errorf("Prepare = %v, %v; want failed_precondition naming the bound", got, err)
		}
	})
	t.Run("query fails", func(t *testing.T) {
		t.Parallel()
		f := setup(t, nil)
		f.sb.Inject(aliyun.PathQuery, sandbox.Reply{Code: 429, Message: "too many requests"})
		_, err := f.c.Prepare(ctx(t), testOrder(603))
		if c := providers.CodeOf(err); c != providers.RateLimited {
			t.Errorf("Prepare = %v, want rate_limited", err)
		}
	})
}

// A listing that cannot be complete never ends in NotFound, nor in a
// snapshot. The total never ends a listing; one that does not fit what
// was read costs a second read, which must give the same ids.
func TestListingGaps(t *testing.T) {
	t.Parallel()
	refused := sandbox.Reply{Code: 460, Message: "request parameter error"} // page 0: the server counts from 1
	tests := []struct {
		name            string
		pages           []sandbox.Reply // for Prepare; Lookup is served them again
		prepare, lookup providers.Code
		known           []string // Prepare's snapshot, when it succeeds
	}{
		{"complete", []sandbox.Reply{page(3, "1", "2"), page(3, "3"), page(3)}, providers.OK, providers.NotFound, []string{"1", "2", "3"}},
		{"same page again", []sandbox.Reply{page(4, "1", "2"), page(4, "1", "2")}, providers.Unavailable, providers.Ambiguous, nil},
		// The same total on every page, more than the orders read: orders
		// were not served, however often the listing is read.
		{"ends short of its total", []sandbox.Reply{
			page(3, "1", "2"), page(3), refused,
		}, providers.Unavailable, providers.Unavailable, nil},
		// A total smaller than the orders read: page 0, then the listing
		// again.
		{"total smaller than listed, the same twice", []sandbox.Reply{
			page(1, "1", "2"), page(1), refused, refused,
			page(1, "1", "2"), page(1),
		}, providers.OK, providers.NotFound, []string{"1", "2"}},
		{"total smaller than listed, then moves", []sandbox.Reply{
			page(1, "1", "2"), page(1), refused, refused,
			page(1, "1", "9"), page(1),
		}, providers.Unavailable, providers.Unavailable, nil},
		{"totals vary, the same twice", []sandbox.Reply{
			page(3, "1", "2"), page(2, "3"), page(2), refused, refused,
			page(3, "1", "2"), page(2, "3"), page(2),
		}, providers.OK, providers.NotFound, []string{"1", "2", "3"}},
		// A short page served again ends a listing only when the totals
		// confirm it.
		{"short page again, total confirms", []sandbox.Reply{
			page(3, "1", "2"), page(3, "3"), page(3, "3"),
		}, providers.OK, providers.NotFound, []string{"1", "2", "3"}},
		// A full page again proves nothing: a server that ignores
		// pageNo, with a total that counts only the page, answers so
		// with more orders past it.
		{"full page again, total confirms", []sandbox.Reply{
			page(4, "1", "2"), page(4, "3", "4"), page(4, "3", "4"),
		}, providers.Unavailable, providers.Ambiguous, nil},
		{"first page again, full, its total confirms", []sandbox.Reply{
			page(2, "1", "2"), page(2, "1", "2"),
		}, providers.Unavailable, providers.Ambiguous, nil},
		{"page longer than asked again, total confirms", []sandbox.Reply{
			page(3, "1", "2", "3"), page(3, "1", "2", "3"),
		}, providers.OK, providers.NotFound, []string{"1", "2", "3"}},
		{"short page again, total does not confirm", []sandbox.Reply{
			page(5, "1", "2"), page(5, "3"), page(5, "3"), refused,
		}, providers.Unavailable, providers.Ambiguous, nil},
		{"short page again, no total", []sandbox.Reply{
			page(-1, "1", "2"), page(-1, "3"), page(-1, "3"), refused,
		}, providers.Unavailable, providers.Ambiguous, nil},
		{"total shrinks, then moves", []sandbox.Reply{
			page(3, "1", "2"), page(2, "3"), page(2), refused,
			page(2, "1", "3"), page(2),
		}, providers.Unavailable, providers.Unavailable, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
			o := testOrder(700)
			f.sb.Inject(aliyun.PathQuery, tt.pages...)
			known, err := f.c.Prepare(ctx(t), o)
			if c := providers.CodeOf(err); c != tt.prepare || !slices.Equal(known, tt.known) {
				t.Errorf("Prepare = %v, %v; want %v %v", known, err, tt.prepare, tt.known)
			}
			// Pages answered that do not read as one listing tell nothing
			// of the provider's health: no circuit breaker counts them.
			if providers.CodeOf(err) == providers.Unavailable && !errors.Is(err, providers.ErrNoNews) {
				t.Errorf("Prepare = %v; want no news of the provider's health", err)
			}
			// The base is known now: page 0 is asked once a listing, to
			// see that the server still counts from 1.
			var again []sandbox.Reply
			kept := false
			for _, r := range tt.pages {
				if r.Code == 460 {
					if kept {
						continue
					}
					kept = true
				}
				again = append(again, r)
			}
			f.sb.Inject(aliyun.PathQuery, again...)
			o.Known = []string{}
			_, err = f.c.Lookup(ctx(t), o)
			if c := providers.CodeOf(err); c != tt.lookup {
				t.Errorf("Lookup = %v; want %v", err, tt.lookup)
			}
			if providers.CodeOf(err) == providers.Unavailable && !errors.Is(err, providers.ErrNoNews) {
				t.Errorf("Lookup = %v; want no news of the provider's health", err)
			}
		})
	}
}

// entry is one order of a canned order/query page: not ours (copies 9),
// paid.
func entry(id string) map[string]any {
	return map[string]any{"orderId": id, "commodityCode": "c", "copies": 9, "paymentStatus": 1}
}

// page is a canned order/query page of the given order ids, with a total
// unless total < 0.
func page(total int, ids ...string) sandbox.Reply {
	data := []any{}
	for _, id := range ids {
		data = append(data, entry(id))
	}
	if total < 0 {
		return sandbox.Reply{Code: 200, Data: map[string]any{"data": data}}
	}
	return sandbox.Reply{Code: 200, Data: map[string]any{"total": total, "data": data}}
}

// Where pageNo starts is not documented. Against a server counting from 0,
// with or without a total, the snapshot holds every older order and the
// lookup finds the new one, though it sits on page 0 (newest first); a
// server counting from 1 costs one more call per listing without a total
// until it refuses page 0 once.
func TestListingPagesFromZero(t *testing.T) {
	t.Parallel()
	const commodity = "streamingResource_20_10"
	for i, paging := range []sandbox.Paging{{From0: true}, {From0: true, NoTotal: true}, {NoTotal: true}, {}} {
		t.Run(fmt.Sprintf("%+v", paging), func(t *testing.T) {
			t.Parallel()
			f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
			f.sb.SetPaging(paging)
			iot := iotID(800 + i)
			o := testOrder(800 + i)
			o.FirstAttempt = time.Now()
			for range 3 {
				f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2, PaymentStatus: 1})
			}
			before := f.sb.Calls(aliyun.PathQuery)
			known, err := f.c.Prepare(ctx(t), o)
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			if len(known) != 3 {
				t.Fatalf("Prepare = %v, want the ids of the device's 3 orders", known)
			}
			// From 1: pages 1 and 2 (3 orders, 2 a page), and the empty
			// page 3. Page 0 until the server has shown where it counts
			// from (a total that fits does not show page 0 empty; a
			// refusal counts only twice in a row); a
			// server shown to count from 0 is then read again from 0
			// (pages 0 and 1, and the empty page 2).
			calls := f.sb.Calls(aliyun.PathQuery) - before
			want := map[sandbox.Paging]int{{From0: true}: 2 + 1 + 3, {From0: true, NoTotal: true}: 2 + 1 + 3, {NoTotal: true}: 3 + 2, {}: 3 + 2}[paging]
			if calls != want {
				t.Errorf("Prepare made %d order/query calls, want %d", calls, want)
			}
			o.Known = known
			ours := f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2}).OrderID
			o.Owned = func(context.Context, string) (bool, error) { return false, nil }
			before = f.sb.Calls(aliyun.PathQuery)
			r, err := f.c.Lookup(ctx(t), o)
			if err != nil || r.ProviderOrderID != ours {
				t.Fatalf("Lookup = %+v, %v; want order %s", r, err, ours)
			}
			// What the server showed is remembered: 4 orders now, read
			// from where it counts without judging page 0 again; a server
			// counting from 1 has page 0 read once, to see it still does.
			want = map[sandbox.Paging]int{{From0: true}: 3, {From0: true, NoTotal: true}: 3, {NoTotal: true}: 4, {}: 4}[paging]
			if calls := f.sb.Calls(aliyun.PathQuery) - before; calls != want {
				t.Errorf("Lookup made %d order/query calls, want %d", calls, want)
			}
		})
	}
}

// A total that fits the orders read from page 1 does not show that page 0
// is empty: against a server counting from 0 whose total counts pages, 4
// orders at 2 a page are 2 pages, and page 1 holds 2 orders. A process that
// has not yet seen where the server counts from reads page 0 all the same:
// the snapshot holds every older order (one of our commodity and copies
// among them, which must never pass for ours), and a lookup in a fresh
// process (a restart) finds ours on page 0 instead of answering not_found,
// after which the order would be created again.
func TestListingTotalOfPagesFromZero(t *testing.T) {
	t.Parallel()
	const commodity = "streamingResource_20_10"
	sb := sandbox.New(appKey, appSecret, projectID)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	sb.SetPaging(sandbox.Paging{From0: true, TotalPages: true})
	twoAPage := func(o *aliyun.Options) { o.PageSize = 2 }
	iot := iotID(870)
	o := testOrder(870)
	o.FirstAttempt = time.Now()
	older := sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2}).OrderID // unpaid, ours in kind
	for range 3 {
		sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: "other_plan", Copies: 1, PaymentStatus: 1})
	}
	known, err := newClient(t, srv.URL, appSecret, nil, twoAPage).Prepare(ctx(t), o)
	if err != nil || len(known) != 4 || !slices.Contains(known, older) {
		t.Fatalf("Prepare = %v, %v; want the ids of the device's 4 orders, %s among them", known, err, older)
	}
	o.Known = known
	o.Owned = func(context.Context, string) (bool, error) { return false, nil }
	// Ours and one more of another plan: 6 orders, 3 pages; from 1,
	// pages 1 and 2 hold 4, and ours, the newest, is on page 0.
	ours := sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2}).OrderID
	sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: "other_plan", Copies: 1, PaymentStatus: 1})
	r, err := newClient(t, srv.URL, appSecret, nil, twoAPage).Lookup(ctx(t), o)
	if err != nil || r.ProviderOrderID != ours {
		t.Fatalf("Lookup in a fresh process = %+v, %v; want order %s, never not_found", r, err, ours)
	}
}

// A lookup whose listing lacks orders the snapshot read shows no absence:
// it is not the whole listing (or the provider dropped orders from it,
// which nothing documents), and ours may be among what it did not show.
// The lookup is unavailable (tried again), never not_found, after which
// the order would be created again.
func TestLookupMissingSnapshotOrdersIsNoAbsence(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	iot := iotID(871)
	o := testOrder(871)
	var known []string
	for range 3 {
		known = append(known, f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: "other_plan", Copies: 1, PaymentStatus: 1}).OrderID)
	}
	o.Known = append(known, "gone-1")
	o.Owned = func(context.Context, string) (bool, error) { return false, nil }
	_, err := f.c.Lookup(ctx(t), o)
	if providers.CodeOf(err) != providers.Unavailable || !strings.Contains(err.Error(), "lacks 1 of the 4 orders the snapshot read") {
		t.Fatalf("Lookup = %v; want unavailable, naming the snapshot's missing order, never not_found", err)
	}
	o.Known = known
	if _, err := f.c.Lookup(ctx(t), o); providers.CodeOf(err) != providers.NotFound {
		t.Fatalf("Lookup with every snapshot order listed = %v; want not_found", err)
	}
}

// Orders that arrive while a listing is read never make it look complete
// without ours: page 0 of a server counting from 0, read last, brings a
// newcomer and none of page 1's orders, so the device is read again from
// page 0, where ours is found.
func TestListingFromZeroWhileOrdersArrive(t *testing.T) {
	t.Parallel()
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
	entry := func(id, commodity string) map[string]any {
		return map[string]any{"orderId": id, "commodityCode": commodity, "copies": 2, "paymentStatus": 0}
	}
	page := func(total int, orders ...map[string]any) sandbox.Reply {
		data := []any{}
		for _, o := range orders {
			data = append(data, o)
		}
		return sandbox.Reply{Code: 200, Data: map[string]any{"total": total, "data": data}}
	}
	const ours = "streamingResource_20_10"
	old, other, mine, newcomer := entry("1", ours), entry("2", "other_plan"), entry("3", ours), entry("4", "other_plan")
	f.sb.Inject(aliyun.PathQuery,
		page(3, old),             // page 1 of a server counting from 0: its second page
		page(3),                  // page 2: empty, short of the total
		page(4, newcomer, other), // page 0, read after a newcomer arrived: ours moved to page 1
		page(4, newcomer, other), // read again from 0
		page(4, mine, old),       // page 1
		page(4),                  // page 2: empty, the total reached
	)
	o := testOrder(900)
	o.FirstAttempt = time.Now()
	o.Known = []string{"1", "2"}
	o.Owned = func(context.Context, string) (bool, error) { return false, nil }
	r, err := f.c.Lookup(ctx(t), o)
	if err != nil || r.ProviderOrderID != "3" {
		t.Fatalf("Lookup = %+v, %v; want order 3 (never not_found)", r, err)
	}
}

// order/query's params come from a third-party client: a server that
// ignores the iotId filter lists every device's orders. Another device's
// order of the same commodity and copies is never taken for ours (it was
// matched, paid, and ours never created), nor does it let a not-found be
// believed (ours may be it, its device written in another form: created
// again, it would be made twice); with orders that do not name their
// device beside it, nothing in the listing is told apart. The device is
// compared without case or surrounding space.
func TestOrdersOfAnotherDeviceAreNeverOurs(t *testing.T) {
	t.Parallel()
	first := time.Now().Add(-time.Minute)
	entry := func(id, iot string) map[string]any {
		e := map[string]any{"orderId": id, "commodityCode": "streamingResource_20_10", "copies": 2, "paymentStatus": 0,
			"userId": "50e5op6412259c0f11", "gmtCreate": first.Add(10 * time.Second).UnixMilli()}
		if iot != "" {
			e["iotId"] = iot
		}
		return e
	}
	listed := func(total int, entries ...map[string]any) sandbox.Reply {
		data := []any{}
		for _, e := range entries {
			data = append(data, e)
		}
		return sandbox.Reply{Code: 200, Data: map[string]any{"total": total, "data": data}}
	}
	for i, c := range []struct {
		name    string
		entries []map[string]any
		want    providers.Code
		found   string
		owned   string // an order id another record owns
	}{
		{"another device's order alone", []map[string]any{entry("900", iotID(99))}, providers.Ambiguous, "", ""},
		{"another device's and ours", []map[string]any{entry("900", iotID(99)), entry("901", "ours")}, 0, "901", ""},
		{"ours, its device in upper case", []map[string]any{entry("903", "OURS")}, 0, "903", ""},
		{"ours, its device with spaces", []map[string]any{entry("904", " ours ")}, 0, "904", ""},
		{"another device's, and one that does not say", []map[string]any{entry("900", iotID(99)), entry("902", "")}, providers.Ambiguous, "", ""},
		// Made by our worker for another device: surely not this order.
		{"another device's, another record's", []map[string]any{entry("905", iotID(99))}, providers.NotFound, "", "905"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			o := testOrder(800 + i)
			for _, e := range c.entries {
				switch e["iotId"] {
				case "ours":
					e["iotId"] = iotID(800 + i)
				case "OURS":
					e["iotId"] = strings.ToUpper(iotID(800 + i))
				case " ours ":
					e["iotId"] = " " + iotID(800+i) + " "
				}
			}
			o.FirstAttempt = first
			if c.owned != "" {
				o.Owned = func(_ context.Context, id string) (bool, error) { return id == c.owned, nil }
			}
			o.Known = []string{}
			o.KnownAt = first
			f.sb.Inject(aliyun.PathQuery, listed(len(c.entries), c.entries...), listed(len(c.entries)))
			r, err := f.c.Lookup(ctx(t), o)
			if c.want != 0 {
				if code := providers.CodeOf(err); code != c.want {
					t.Errorf("Lookup = %+v, %v; want %v", r, err, c.want)
				}
				return
			}
			if err != nil || r.ProviderOrderID != c.found {
				t.Errorf("Lookup = %+v, %v; want %s", r, err, c.found)
			}
		})
	}
}

// Nothing documents that a server keeps counting pages as it did (a
// release, a gateway spreading its clients over two versions). A server
// shown to count from 1 that counts from 0 later holds its newest orders on
// page 0: read from 1, a snapshot would lack them, and a lookup would lack
// ours (a not_found: created again) or take one of them for ours. Page 0
// is read once a listing to see that it still counts from 1.
func TestServerThatCountsFromZeroLater(t *testing.T) {
	t.Parallel()
	const commodity = "streamingResource_20_10"
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
	f.sb.SetPaging(sandbox.Paging{NoTotal: true})
	f.sb.AddOrder(sandbox.Order{IotID: iotID(1651), CommodityCode: commodity, Copies: 2, PaymentStatus: 1})
	if _, err := f.c.Prepare(ctx(t), testOrder(1651)); err != nil {
		t.Fatal(err)
	}
	// Shown to count from 1; now it counts from 0.
	f.sb.SetPaging(sandbox.Paging{From0: true, NoTotal: true})
	iot := iotID(1650)
	var older []string
	for range 3 {
		older = append(older, f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2}).OrderID)
	}
	o := testOrder(1650)
	o.FirstAttempt = time.Now()
	known, err := f.c.Prepare(ctx(t), o)
	if err != nil || !slices.Equal(sortedIDs(known), older) {
		t.Fatalf("Prepare = %v, %v; want the ids of the device's 3 orders %v", known, err, older)
	}
	o.Known = known
	o.Owned = func(context.Context, string) (bool, error) { return false, nil }
	ours := f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2}).OrderID
	r, err := f.c.Lookup(ctx(t), o)
	if err != nil || r.ProviderOrderID != ours {
		t.Fatalf("Lookup = %+v, %v; want order %s, on page 0", r, err, ours)
	}
}

// order/query's iotId filter comes from a third-party client, and the
// documented order shape names no device. A server that ignores the filter
// lists every device's orders without saying whose: an order listed (or
// created) for one device, listed again for another, is never that other
// device's by matching (two records would claim one order, one of them
// never created), and from then on no order that names no device is taken
// by matching at all.
func TestListingOfAnotherDevicesOrdersIsNotMatched(t *testing.T) {
	t.Parallel()
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 10; o.PageBase = aliyun.PageBaseFrom1 })
	empty := listed(0)
	// Device A's snapshot: empty. Its create is answered with order X.
	a := testOrder(1710)
	f.sb.Inject(aliyun.PathQuery, empty)
	if known, err := f.c.Prepare(ctx(t), a); err != nil || len(known) != 0 {
		t.Fatalf("Prepare A = %v, %v", known, err)
	}
	ra, err := f.c.Submit(ctx(t), a)
	if err != nil {
		t.Fatal(err)
	}
	// Device B's create failed having made nothing; its lookup lists A's
	// order as new since B's empty snapshot.
	b := testOrder(1711)
	b.Known = []string{}
	b.Owned = func(context.Context, string) (bool, error) { return false, nil }
	f.sb.Inject(aliyun.PathQuery, listed(1, ourEntry(ra.ProviderOrderID, nil)), listed(1))
	if r, err := f.c.Lookup(ctx(t), b); providers.CodeOf(err) != providers.Ambiguous {
		t.Fatalf("Lookup B = %+v, %v; want ambiguous, A's order never B's", r, err)
	}
	// Shown unfiltered: a new order naming no device is not taken either.
	c := testOrder(1712)
	c.Known = []string{}
	c.Owned = b.Owned
	f.sb.Inject(aliyun.PathQuery, listed(2, ourEntry(ra.ProviderOrderID, nil), ourEntry("20261205000000000099", nil)), listed(2))
	if r, err := f.c.Lookup(ctx(t), c); providers.CodeOf(err) != providers.Ambiguous {
		t.Fatalf("Lookup C = %+v, %v; want ambiguous", r, err)
	}
	// An order that names its device is still found.
	f.sb.Inject(aliyun.PathQuery, listed(2, ourEntry(ra.ProviderOrderID, nil), ourEntry("20261205000000000099", map[string]any{"iotId": iotID(1712)})), listed(2))
	if r, err := f.c.Lookup(ctx(t), c); err != nil || r.ProviderOrderID != "20261205000000000099" {
		t.Fatalf("Lookup C, its order naming its device = %+v, %v; want order 20261205000000000099", r, err)
	}
}

// Page 0 read again on a server shown to count from 1: the same as page 1,
// though an order there lacks its id, it still counts from 1; throttled,
// the listing waits as throttled, and what was learnt stays.
func TestPageZeroReadAgainOnAServerCountingFrom1(t *testing.T) {
	t.Parallel()
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 10 })
	f.sb.SetPaging(sandbox.Paging{NoTotal: true})
	f.sb.AddOrder(sandbox.Order{IotID: iotID(1720), CommodityCode: "other_plan", Copies: 1, PaymentStatus: 1})
	if _, err := f.c.Prepare(ctx(t), testOrder(1720)); err != nil {
		t.Fatal(err)
	}
	noID := map[string]any{"commodityCode": "other_plan", "copies": 1, "paymentStatus": 1}
	aliased := sandbox.Reply{Code: 200, Data: map[string]any{"data": []any{noID, entry("k1")}}}
	f.sb.Inject(aliyun.PathQuery, aliased, sandbox.Reply{Code: 200, Data: map[string]any{"data": []any{}}}, aliased)
	if known, err := f.c.Prepare(ctx(t), testOrder(1721)); err != nil || !slices.Equal(known, []string{"k1"}) {
		t.Fatalf("Prepare, page 0 the same as page 1 with an order without its id = %v, %v; want [k1]", known, err)
	}
	f.sb.Inject(aliyun.PathQuery, listed(-1, entry("k2")), listed(-1), sandbox.Reply{Code: 429, Message: "too many requests"})
	if _, err := f.c.Prepare(ctx(t), testOrder(1722)); providers.CodeOf(err) != providers.RateLimited {
		t.Fatalf("Prepare, page 0 throttled = %v; want rate_limited", err)
	}
	// Still from 1: page 0 asked once, refused.
	before := f.sb.Calls(aliyun.PathQuery)
	if _, err := f.c.Prepare(ctx(t), testOrder(1723)); err != nil {
		t.Fatal(err)
	}
	if n := f.sb.Calls(aliyun.PathQuery) - before; n != 2 {
		t.Errorf("Prepare of an empty device made %d order/query calls; want 2 (page 1, page 0 once)", n)
	}
}

// A page read again only to confirm what a listing shows (page 0 empty
// beside a page 1 holding orders; a page past the end refused, or without
// an order array) that comes back throttled fails the listing as
// throttled: no news of the provider's health, never a page that could
// not be read, which the circuit breaker counts, lookups and snapshots
// alike.
func TestThrottledConfirmingReadIsThrottled(t *testing.T) {
	t.Parallel()
	throttled := sandbox.Reply{HTTPStatus: 429}
	for _, tc := range []struct {
		name    string
		base    aliyun.PageBase
		replies []sandbox.Reply
	}{
		{"page 0 empty beside page 1, read again", "", []sandbox.Reply{page(3, "3", "2"), page(3, "1"), page(3), page(3), throttled}},
		{"page past the end refused, asked again", aliyun.PageBaseFrom1, []sandbox.Reply{page(1, "1"), {Code: 460, Message: "request parameter error"}, throttled}},
		{"page past the end without an order array, asked again", aliyun.PageBaseFrom1, []sandbox.Reply{page(1, "1"), {Code: 200, Data: map[string]any{"total": 1}}, throttled}},
	} {
		for _, snapshot := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, snapshot %v", tc.name, snapshot), func(t *testing.T) {
				t.Parallel()
				f := setup(t, func(o *aliyun.Options) { o.PageSize = 2; o.PageBase = tc.base })
				f.sb.Inject(aliyun.PathQuery, tc.replies...)
				o := testOrder(1731)
				o.Known = []string{"1", "2", "3"}
				o.Owned = func(context.Context, string) (bool, error) { return false, nil }
				var err error
				if snapshot {
					_, err = f.c.Prepare(ctx(t), o)
				} else {
					_, err = f.c.Lookup(ctx(t), o)
				}
				if providers.CodeOf(err) != providers.RateLimited {
					t.Errorf("= %v, want rate_limited", err)
				}
			})
		}
	}
}

// The ids a person is to look at begin the reason and are whole however
// long they are: the recorded error text is cut to a few hundred
// characters (a review: the second of two 20-digit ids was cut mid-id).
func TestDecideNamesWholeIdsFirst(t *testing.T) {
	t.Parallel()
	since := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	rule := aliyun.SinceRule(aliyun.CreateParams{CommodityCode: "c", Copies: 1}, since)
	var orders []aliyun.OrderInfo
	for i := range 8 {
		orders = append(orders, aliyun.OrderInfo{OrderID: fmt.Sprintf("2024060108010000000%d", i), CommodityCode: "c", Copies: 1, Created: since.Add(time.Minute)})
	}
	_, found, reason := rule.Decide(orders)
	head, _, ok := strings.Cut(reason, ": ")
	if found || !ok || !strings.HasPrefix(reason, `it may be order "20240601080100000000", `) || len(head) > 160 {
		t.Fatalf("reason %q; want whole ids first, within 160 characters", reason)
	}
	for _, q := range strings.Split(strings.TrimPrefix(head, "it may be order "), ", ") {
		q, _, _ = strings.Cut(q, " or ")
		if id, err := strconv.Unquote(q); err != nil || len(id) != 20 {
			t.Errorf("%q in %q: want a whole quoted id", q, head)
		}
	}
	if !strings.Contains(head, " more") {
		t.Errorf("reason %q; want the ids left out counted", reason)
	}
}
