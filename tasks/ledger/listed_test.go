package ledger_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// The orders a listing must show: noted per provider and scope, read back
// newest first within their bounds, the newest kept.
func TestListed(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	ctx := context.Background()
	base := time.UnixMilli(1_800_000_000_000)
	for i := range 70 {
		if err := l.NoteListed(ctx, "unicloud", "acct", fmt.Sprint(100+i), fmt.Sprint("name-", 100+i), base.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.NoteListed(ctx, "unicloud", "other", "9", "k9", base.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := l.NoteListed(ctx, "aliyun", "acct", "8", "", base.Add(65*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := ids(l.Listed(ctx, "unicloud", "acct", base.Add(60*time.Second), base.Add(62*time.Second)))
	if err != nil || !slices.Equal(got, []string{"160", "161", "162"}) {
		t.Errorf("Listed 60s..62s = %v, %v; want 160, 161, 162", got, err)
	}
	// 64 kept: the 6 oldest are gone.
	if got, _ := l.Listed(ctx, "unicloud", "acct", base, base.Add(7*time.Second)); !slices.Equal(got, []ledger.Noted{{ID: "106", Name: "name-106"}, {ID: "107", Name: "name-107"}}) {
		t.Errorf("Listed 0s..7s = %v; want 106, 107 with their names (the older ones trimmed)", got)
	}
	// The names of the orders trimmed went with them.
	keys, _ := rdb.Keys(ctx, "*listed:unicloud:*:names").Result()
	var names int64
	for _, k := range keys {
		n, _ := rdb.HLen(ctx, k).Result()
		names += n
	}
	if names != 64+1 {
		t.Errorf("%d names kept; want 65 (64 in one scope, 1 in another)", names)
	}
	// At most 16 a read: the 8 oldest and the 8 newest, oldest first.
	want := []string{"106", "107", "108", "109", "110", "111", "112", "113", "162", "163", "164", "165", "166", "167", "168", "169"}
	if got, _ := ids(l.Listed(ctx, "unicloud", "acct", base, base.Add(time.Hour))); !slices.Equal(got, want) {
		t.Errorf("Listed all = %v; want %v", got, want)
	}
	if got, _ := l.Listed(ctx, "unicloud", "acct", base.Add(time.Hour), base); got != nil {
		t.Errorf("Listed with to before from = %v; want none", got)
	}
	if got, _ := l.Listed(ctx, "unicloud", "other", base, base.Add(time.Hour)); !slices.Equal(got, []ledger.Noted{{ID: "9", Name: "k9"}}) {
		t.Errorf("Listed of another scope = %v; want 9 with its name", got)
	}
	// An order noted without a name is read without one.
	if err := l.NoteListed(ctx, "unicloud", "acct", "170", "", base.Add(70*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Listed(ctx, "unicloud", "acct", base.Add(69*time.Second), base.Add(time.Hour)); !slices.Equal(got, []ledger.Noted{{ID: "169", Name: "name-169"}, {ID: "170"}}) {
		t.Errorf("Listed with an order noted without a name = %v; want 169 with its name, 170 without", got)
	}
}

func ids(noted []ledger.Noted, err error) ([]string, error) {
	var out []string
	for _, n := range noted {
		out = append(out, n.ID)
	}
	return out, err
}

// Names whose ids a version without names trimmed off the set (it wrote
// only the set) go once they outnumber what the set keeps twice over.
func TestListedNamesOfIdsTrimmedElsewhere(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	base := time.UnixMilli(1_800_000_000_000)
	if err := l.NoteListed(ctx, "unicloud", "acct", "1", "one", base); err != nil {
		t.Fatal(err)
	}
	keys, _ := rdb.Keys(ctx, "*listed:unicloud:*").Result()
	var set, names string
	for _, k := range keys {
		if strings.HasSuffix(k, ":names") {
			names = k
		} else {
			set = k
		}
	}
	// An older worker's notes and trims: the set only.
	for i := range 200 {
		id := fmt.Sprint(1000 + i)
		rdb.HSet(ctx, names, id, "stale")
		rdb.ZAdd(ctx, set, redis.Z{Score: float64(base.UnixMilli() + int64(i)), Member: id})
		rdb.ZRemRangeByRank(ctx, set, 0, -65)
	}
	if err := l.NoteListed(ctx, "unicloud", "acct", "2", "two", base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	n, _ := rdb.HLen(ctx, names).Result()
	m, _ := rdb.ZCard(ctx, set).Result()
	if n > m {
		t.Errorf("%d names kept for %d ids in the set; want none of ids no longer in it", n, m)
	}
}
