package ledger_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// An order counts as a rival of another with the same match key from the
// moment it marks itself (before its create leaves) until its record holds
// a provider order id or its outcome; one that is surely not created (sent
// back to submission) stops counting until it marks itself again; and an
// order whose match is taken back by another's own answer counts again.
func TestRivals(t *testing.T) {
	for _, shards := range []int{1, 3} {
		t.Run(fmt.Sprint(shards, " shards"), func(t *testing.T) {
			t.Parallel()
			var l *ledger.Ledger
			var rdb *redis.Client
			if shards == 1 {
				l, rdb, _ = setup(t)
			} else {
				l, rdb = shardedSetup(t, shards)
			}
			// members counts the entries of every rivals set, read
			// directly: what Settle removes, no lazy count does.
			members := func() int64 {
				t.Helper()
				keys, err := rdb.Keys(ctx, "*rivals:*").Result()
				if err != nil {
					t.Fatal(err)
				}
				n := int64(0)
				for _, k := range keys {
					n += rdb.ZCard(ctx, k).Val()
				}
				return n
			}
			x, y, z := ledger.Ref{Provider: "unicloud", OrderNo: "X"}, ledger.Ref{Provider: "unicloud", OrderNo: "Y"}, ledger.Ref{Provider: "unicloud", OrderNo: "Z"}
			for _, r := range []ledger.Ref{x, y, z} {
				claim(t, l, r)
			}
			rivals := func(r ledger.Ref, key string, since ...time.Time) int {
				t.Helper()
				var from time.Time
				if len(since) > 0 {
					from = since[0]
				}
				n, err := l.Rivals(ctx, r, key, from)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			begin := func(r ledger.Ref, token string) {
				t.Helper()
				if b, err := l.Begin(ctx, r, ledger.BeginArgs{Token: token}); err != nil || b.Status != ledger.Began {
					t.Fatalf("Begin %s = %+v, %v", r, b, err)
				}
			}
			settle := func(r ledger.Ref, token string, tr ledger.Transition) {
				t.Helper()
				if err := l.Settle(ctx, r, token, tr); err != nil {
					t.Fatalf("Settle %s: %v", r, err)
				}
			}

			if err := l.MarkRival(ctx, x, "no lease", "nas-1"); !errors.Is(err, ledger.ErrLeaseLost) {
				t.Fatalf("MarkRival without the lease = %v; want ErrLeaseLost", err)
			}
			begin(x, "x1")
			begin(y, "y1")
			begin(z, "z1")
			for _, m := range []struct {
				r     ledger.Ref
				token string
				key   string
			}{{x, "x1", "nas-1"}, {y, "y1", "nas-1"}, {z, "z1", "nas-2"}} {
				if err := l.MarkRival(ctx, m.r, m.token, m.key); err != nil {
					t.Fatal(err)
				}
			}
			if got := rivals(x, "nas-1"); got != 1 {
				t.Fatalf("X's rivals with both creates in flight = %d; want 1 (Y; not itself, not Z of another name)", got)
			}
			if got := rivals(x, "nas-1", time.Now().Add(time.Hour)); got != 1 {
				t.Fatalf("X's rivals since an hour ahead with Y's create in flight = %d; want 1: one in flight counts whenever", got)
			}
			if got := rivals(z, "nas-2"); got != 0 {
				t.Fatalf("Z's rivals = %d; want 0", got)
			}
			// Y's create times out: it may exist, its id unknown.
			settle(y, "y1", ledger.SetUnknown("create timed out").WithMayExist(true))
			if got := rivals(x, "nas-1"); got != 1 {
				t.Fatalf("X's rivals with Y unknown = %d; want 1", got)
			}
			if got := rivals(x, "nas-1", time.Now().Add(-time.Hour)); got != 1 {
				t.Fatalf("X's rivals since an hour ago with Y unknown = %d; want 1", got)
			}
			if got := rivals(x, "nas-1", time.Now().Add(time.Hour)); got != 0 {
				t.Fatalf("X's rivals since an hour ahead with Y unknown = %d; want 0: Y's create ended before, and a lookup so bounded cannot take its order", got)
			}
			// X's create was surely refused: sent back to submission, it
			// is no rival of Y's until it marks itself again.
			settle(x, "x1", ledger.SetRetry("refused before anything was made"))
			if got := rivals(y, "nas-1"); got != 0 {
				t.Fatalf("Y's rivals with X surely not created = %d; want 0", got)
			}
			begin(x, "x2")
			if err := l.MarkRival(ctx, x, "x2", "nas-1"); err != nil {
				t.Fatal(err)
			}
			if got := rivals(y, "nas-1"); got != 1 {
				t.Fatalf("Y's rivals with X's second create in flight = %d; want 1", got)
			}
			// X's second create is answered: its id recorded, it is told
			// apart and leaves the set.
			settle(x, "x2", ledger.SetPaid("PO-X").WithAnswered())
			if got := members(); got != 2 {
				t.Fatalf("rivals sets hold %d entries after X was paid; want 2 (Y, Z): a settle that records the id takes the order out", got)
			}
			if got := rivals(y, "nas-1"); got != 0 {
				t.Fatalf("Y's rivals with X paid under its id = %d; want 0", got)
			}
			// Y's lookup takes a listed order by matching (its match key's
			// rivals were not marked: an older worker's create, say); W's
			// own answer then names it: Y's match is taken back, and Y, which
			// may exist again without an id, is a rival again.
			begin(y, "y2")
			settle(y, "y2", ledger.SetPaid("PO-Y").WithMatched())
			if got := rivals(x, "nas-1"); got != 0 {
				t.Fatalf("rivals with Y matched = %d; want 0", got)
			}
			if shards > 1 {
				// With more than one shard an answer does not take a match
				// back (ledger.Transition.WithAnswered): the rest is for one.
				return
			}
			w := ledger.Ref{Provider: "unicloud", OrderNo: "W"}
			claim(t, l, w)
			begin(w, "w1")
			if err := l.MarkRival(ctx, w, "w1", "nas-1"); err != nil {
				t.Fatal(err)
			}
			settle(w, "w1", ledger.SetPaid("PO-Y").WithAnswered())
			if yr, _ := l.Get(ctx, y); yr.State != ledger.StateUnknown || yr.ProviderOrderID != "" {
				t.Fatalf("Y after W's answer named its match: %+v; want unknown without an id", yr)
			}
			if got := rivals(w, "nas-1"); got != 1 {
				t.Fatalf("W's rivals with Y's match taken back = %d; want 1 (Y)", got)
			}
			// Y errored by an operator: no rival, and gone from the set.
			begin(y, "y3")
			settle(y, "y3", ledger.SetErrored("resolved by a person"))
			if got := rivals(w, "nas-1"); got != 0 {
				t.Fatalf("W's rivals with Y errored = %d; want 0", got)
			}
		})
	}
}

// Begin records where a create it marks goes; an order found to have had a
// create this record does not know of (SetUnknownSince) forgets it: that
// create may have gone anywhere.
func TestCreateTarget(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "tencent", OrderNo: "T1"}
	claim(t, l, ref)
	if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t1", Target: "00112233aabbccdd"}); err != nil || !b.Record.InflightMarked {
		t.Fatalf("Begin = %+v, %v", b, err)
	}
	if rec, _ := l.Get(ctx, ref); rec.CreateTarget != "00112233aabbccdd" {
		t.Fatalf("create target %q after the marked create; want it recorded", rec.CreateTarget)
	}
	if err := l.Settle(ctx, ref, "t1", ledger.SetUnknownSince("an earlier run may have created it", time.Time{}, nil)); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, ref); rec.CreateTarget != "" {
		t.Errorf("create target %q after SetUnknownSince; want none", rec.CreateTarget)
	}
}

// A snapshot records where it was read, when that step began (KnownFrom:
// orders made before it are in it) and, for its age, when it was recorded
// (KnownAt): a listing read more slowly than the snapshot's maximum age is
// not taken for stale the moment it is recorded.
func TestSnapshotTimes(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "aliyun", OrderNo: "S1"}
	claim(t, l, ref)
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "p", NeedsKnown: true}); err != nil {
		t.Fatal(err)
	}
	began := time.Now().Add(-2 * time.Minute) // a slow listing
	if err := l.Settle(ctx, ref, "p", ledger.SetKnown([]string{"K1"}).WithKnownAt(began).WithKnownTarget("00112233aabbccdd")); err != nil {
		t.Fatal(err)
	}
	rec, _ := l.Get(ctx, ref)
	if rec.KnownFrom.UnixMilli() != began.UnixMilli() || time.Since(rec.KnownAt) > 10*time.Second || rec.KnownTarget != "00112233aabbccdd" {
		t.Errorf("snapshot from %v, at %v, target %q; want from %v, at the settle, the target recorded", rec.KnownFrom, rec.KnownAt, rec.KnownTarget, began)
	}
}

// With a rival secret, the hash that names an order's rivals set (a match
// key may hold a phone number) is keyed: neither the record nor a key
// name holds the unkeyed hash of the match key, which could be brute-forced
// back. An order an older version marked under the unkeyed hash still
// counts as a rival, and is taken out of that set once it is marked again
// under the keyed one.
func TestRivalKeyIsKeyed(t *testing.T) {
	t.Parallel()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	old := ledger.New(rdb, nil)
	l := ledger.New(rdb, &ledger.Options{RivalSecret: []byte("a secret the workers derive")})
	const name = "nas 13912345678"
	unkeyed := old.RivalKey("unicloud", name)
	keyed := l.RivalKey("unicloud", name)
	if keyed == unkeyed || len(keyed) != len(unkeyed) {
		t.Fatalf("keyed %q, unkeyed %q: want another hash of the same length", keyed, unkeyed)
	}
	if other := ledger.New(rdb, &ledger.Options{RivalSecret: []byte("another")}).RivalKey("unicloud", name); other == keyed {
		t.Fatalf("two secrets give the same hash %q", keyed)
	}
	x, y := ledger.Ref{Provider: "unicloud", OrderNo: "X"}, ledger.Ref{Provider: "unicloud", OrderNo: "Y"}
	for _, r := range []ledger.Ref{x, y} {
		claim(t, l, r)
	}
	if b, err := old.Begin(ctx, y, ledger.BeginArgs{Token: "y1"}); err != nil || b.Status != ledger.Began {
		t.Fatalf("Begin Y = %+v, %v", b, err)
	}
	// Y marked by an older version, under the unkeyed hash.
	if err := old.MarkRival(ctx, y, "y1", name); err != nil {
		t.Fatal(err)
	}
	if b, err := l.Begin(ctx, x, ledger.BeginArgs{Token: "x1"}); err != nil || b.Status != ledger.Began {
		t.Fatalf("Begin X = %+v, %v", b, err)
	}
	if err := l.MarkRival(ctx, x, "x1", name); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Rivals(ctx, x, name, time.Time{}); err != nil || n != 1 {
		t.Fatalf("X's rivals = %d, %v; want 1: Y, marked under the unkeyed hash", n, err)
	}
	if got := rdb.HGet(ctx, rdb.Keys(ctx, "*order:unicloud:X").Val()[0], "rival_key").Val(); got != keyed {
		t.Errorf("X's rival_key = %q, want the keyed hash %q", got, keyed)
	}
	// Y is run by a new worker: marked again under the keyed hash.
	if err := l.Settle(ctx, y, "y1", ledger.SetUnknown("create timed out").WithMayExist(true)); err != nil {
		t.Fatal(err)
	}
	if b, err := l.Begin(ctx, y, ledger.BeginArgs{Token: "y2"}); err != nil || b.Status != ledger.Began {
		t.Fatalf("Begin Y again = %+v, %v", b, err)
	}
	if err := l.MarkRival(ctx, y, "y2", name); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Rivals(ctx, x, name, time.Time{}); err != nil || n != 1 {
		t.Fatalf("X's rivals once Y is marked again = %d, %v; want 1, counted once", n, err)
	}
	for _, k := range rdb.Keys(ctx, "*").Val() {
		if strings.Contains(k, unkeyed) {
			t.Errorf("key %s still names the unkeyed hash", k)
		}
		if rdb.Type(ctx, k).Val() == "hash" {
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				if strings.Contains(v, unkeyed) {
					t.Errorf("%s %s holds the unkeyed hash", k, f)
				}
			}
		}
	}
}
