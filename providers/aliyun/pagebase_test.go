package aliyun_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/aliyun/sandbox"
)

// pageNos returns the pageNo of every order/query request recorded.
func pageNos(t *testing.T, rec *recorder) []int {
	t.Helper()
	var out []int
	for _, q := range rec.requests(aliyun.PathQuery) {
		var env struct {
			Params struct {
				PageNo int `json:"pageNo"`
			} `json:"params"`
		}
		if err := json.Unmarshal(q.body, &env); err != nil {
			t.Fatal(err)
		}
		out = append(out, env.Params.PageNo)
	}
	return out
}

// ALIYUN_PAGE_BASE is a setting of the provider: auto by default, 0 or 1
// read pages from there and never probe page 0, anything else is refused.
func TestPageBaseSetting(t *testing.T) {
	t.Parallel()
	spec := aliyun.Spec()
	i := slices.IndexFunc(spec.Settings, func(s providers.Setting) bool { return s.Name == aliyun.EnvPageBase })
	if i < 0 || spec.Settings[i].Default != "auto" || spec.Settings[i].Required || spec.Settings[i].Secret {
		t.Fatalf("Spec settings lack %s (default auto, optional)", aliyun.EnvPageBase)
	}
	sb := sandbox.New(appKey, appSecret, projectID)
	rec := &recorder{next: sb}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	env := func(base string) func(string) string {
		m := map[string]string{aliyun.EnvEndpoint: srv.URL, aliyun.EnvAppKey: appKey, aliyun.EnvAppSecret: appSecret,
			aliyun.EnvProjectID: projectID, aliyun.EnvPageBase: base}
		return func(k string) string { return m[k] }
	}
	for _, bad := range []string{"2", "one", "-1"} {
		if _, err := spec.ReadConfig(env(bad)); err == nil || !strings.Contains(err.Error(), aliyun.EnvPageBase) {
			t.Errorf("ReadConfig with %s=%s = %v; want an error naming it", aliyun.EnvPageBase, bad, err)
		}
	}
	cfg, err := spec.ReadConfig(env("1"))
	if err != nil {
		t.Fatal(err)
	}
	p, reason, err := spec.Build(cfg, providers.Deps{HTTPTransport: http.DefaultTransport})
	if p == nil || reason != "" || err != nil {
		t.Fatalf("Build = %v, %q, %v", p, reason, err)
	}
	// Page 1 empty, page 0 would fail: with the base set, page 0 is never
	// asked and the device has no order.
	sb.Inject(aliyun.PathQuery, listed(-1), queryDown, queryDown)
	known, err := p.(providers.Preparer).Prepare(ctx(t), testOrder(1900))
	if err != nil || known == nil || len(known) != 0 {
		t.Fatalf("Prepare = %#v, %v; want an empty snapshot", known, err)
	}
	if got := pageNos(t, rec); !slices.Equal(got, []int{1}) {
		t.Errorf("pages read = %v, want [1]", got)
	}
	if _, err := aliyun.New(aliyun.Options{AppKey: appKey, AppSecret: appSecret, ProjectID: projectID, PageBase: "2"}); err == nil {
		t.Error("New with PageBase 2 succeeded")
	}
}

// A device whose listing can never be judged names the way out, and the
// setting gets it listed.
func TestPageBaseWayOut(t *testing.T) {
	t.Parallel()
	const commodity = "streamingResource_20_10"
	t.Run("page 0 unreadable, page 1 empty", func(t *testing.T) {
		t.Parallel()
		f := setup(t, nil)
		f.sb.Inject(aliyun.PathQuery, listed(-1), queryDown, queryDown)
		_, err := f.c.Prepare(ctx(t), testOrder(1910))
		if providers.CodeOf(err) != providers.Unavailable || !strings.Contains(err.Error(), "set ALIYUN_PAGE_BASE=1 if the server counts pages from 1") {
			t.Fatalf("Prepare = %v; want unavailable naming ALIYUN_PAGE_BASE", err)
		}
		f = setup(t, func(o *aliyun.Options) { o.PageBase = aliyun.PageBaseFrom1 })
		f.sb.Inject(aliyun.PathQuery, listed(-1), queryDown, queryDown)
		if known, err := f.c.Prepare(ctx(t), testOrder(1910)); err != nil || len(known) != 0 {
			t.Fatalf("Prepare with base 1 = %v, %v; want an empty snapshot", known, err)
		}
	})
	t.Run("page 1 serves page 0 again", func(t *testing.T) {
		t.Parallel()
		// A server counting from 1 that serves pageNo 0 as page 1 and
		// repeats its last page, with no total: read from 0, page 1
		// repeats page 0 and nothing tells where the listing ends.
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2; o.PageBase = aliyun.PageBaseFrom0 })
		f.sb.SetPaging(sandbox.Paging{Alias0: true, RepeatLast: true, NoTotal: true})
		iot := iotID(1911)
		f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2})
		o := testOrder(1911)
		o.Known = []string{}
		_, err := f.c.Lookup(ctx(t), o)
		if providers.CodeOf(err) != providers.Ambiguous || !strings.Contains(err.Error(), "ALIYUN_PAGE_BASE=0") {
			t.Fatalf("Lookup = %v; want ambiguous naming the base in use", err)
		}
		if got := pageNos(t, f.rec); !slices.Equal(got, []int{0, 1}) {
			t.Errorf("pages read = %v, want [0 1] (page 0 never judged)", got)
		}
	})
	t.Run("base 0 reads from 0 only", func(t *testing.T) {
		t.Parallel()
		f := setup(t, func(o *aliyun.Options) { o.PageSize = 2; o.PageBase = aliyun.PageBaseFrom0 })
		f.sb.SetPaging(sandbox.Paging{From0: true, NoTotal: true})
		iot := iotID(1912)
		var want []string
		for range 3 {
			want = append(want, f.sb.AddOrder(sandbox.Order{IotID: iot, CommodityCode: commodity, Copies: 2}).OrderID)
		}
		for range 2 {
			known, err := f.c.Prepare(ctx(t), testOrder(1912))
			if err != nil || !slices.Equal(sortedIDs(known), want) {
				t.Fatalf("Prepare = %v, %v; want %v", known, err, want)
			}
		}
		if got := pageNos(t, f.rec); !slices.Equal(got, []int{0, 1, 2, 0, 1, 2}) {
			t.Errorf("pages read = %v, want [0 1 2] twice", got)
		}
	})
}

// A listing that ends at a page served again shows nothing about where
// pageNo starts: judging page 0 against it is never remembered.
func TestRepeatNeverTeachesTheBase(t *testing.T) {
	t.Parallel()
	f := setup(t, func(o *aliyun.Options) { o.PageSize = 2 })
	f.sb.SetPaging(sandbox.Paging{From0: true, RepeatLast: true, NoTotal: true})
	f.sb.AddOrder(sandbox.Order{IotID: iotID(1920), CommodityCode: "c", Copies: 1})
	for i := range 2 {
		before := f.sb.Calls(aliyun.PathQuery)
		// Page 1 repeats in page 2, and page 0 equals page 1.
		if _, err := f.c.Prepare(ctx(t), testOrder(1920)); providers.CodeOf(err) != providers.Unavailable {
			t.Fatalf("Prepare %d = %v; want unavailable", i, err)
		}
		if n := f.sb.Calls(aliyun.PathQuery) - before; n != 4 {
			t.Errorf("Prepare %d made %d order/query calls, want 4 (pages 1, 2 and 0, then page 1 again to confirm page 0's equal)", i, n)
		}
	}
}
