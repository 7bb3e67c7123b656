package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// The slot function is Redis Cluster's (CRC16/XMODEM mod 16384), and the
// shard tags fall where they are chosen to: shard i of n in the middle of
// the i-th n-th of the slots, so that n masters with even slot ranges
// serve one shard each.
func TestShardTags(t *testing.T) {
	t.Parallel()
	// Redis's cluster specification: CRC16 of "123456789" is 0x31C3; the
	// README states {ledger}'s slot as 2466 and {orders}' as 105.
	if got := ledger.Slot("123456789"); got != 0x31C3%16384 {
		t.Errorf(`Slot("123456789") = %d, want %d`, got, 0x31C3%16384)
	}
	for tag, want := range map[string]int{"ledger": 2466, "orders": 105} {
		if got := ledger.Slot(tag); got != want {
			t.Errorf("Slot(%q) = %d, want %d", tag, got, want)
		}
	}
	if got := ledger.ShardTag("ledger", 0, 1); got != "ledger" {
		t.Errorf("one shard's tag = %q, want ledger (the one-slot layout)", got)
	}
	for _, base := range []string{"ledger", "orders"} {
		for _, n := range []int{2, 3, 4, 6, 16, 64} {
			seen := map[string]bool{}
			for i := range n {
				tag := ledger.ShardTag(base, i, n)
				if tag != ledger.ShardTag(base, i, n) {
					t.Fatalf("ShardTag(%s, %d, %d) is not deterministic", base, i, n)
				}
				w := 16384 / n
				if s := ledger.Slot(tag); s < i*w+w/4 || s >= i*w+w-w/4 {
					t.Errorf("ShardTag(%s, %d, %d) = %q at slot %d, outside [%d, %d)", base, i, n, tag, s, i*w+w/4, i*w+w-w/4)
				}
				if !strings.HasPrefix(tag, fmt.Sprintf("%s-%d", base, i)) || seen[tag] {
					t.Errorf("ShardTag(%s, %d, %d) = %q", base, i, n, tag)
				}
				seen[tag] = true
			}
		}
	}
}

func shardedSetup(t *testing.T, n int) (*ledger.Ledger, *redis.Client) {
	t.Helper()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	return ledger.New(rdb, &ledger.Options{Shards: n}), rdb
}

// A ledger of three shards (on one server: the layout does not need a
// cluster) keeps each order's keys under its shard's tag, spreads the
// orders over every shard, and answers Stats, List, InState and the
// events over all of them: every order once, every event once.
func TestShardedLedgerSpreadsAndMerges(t *testing.T) {
	t.Parallel()
	l, rdb := shardedSetup(t, 3)
	const orders = 300
	perShard := make([]int, 3)
	var refs []ledger.Ref
	for i := range orders {
		ref := ledger.Ref{Provider: "tencent", OrderNo: fmt.Sprintf("S%04d", i)}
		refs = append(refs, ref)
		claim(t, l, ref)
		sh := l.ShardOf(ref)
		perShard[sh]++
		key := "orderworker:{" + ledger.ShardTag("ledger", sh, 3) + "}:order:tencent:" + ref.OrderNo
		if n, err := rdb.Exists(ctx, key).Result(); err != nil || n != 1 {
			t.Fatalf("order %s: %s does not exist (%v)", ref.OrderNo, key, err)
		}
	}
	for i, n := range perShard {
		if n < orders/6 {
			t.Errorf("shard %d holds %d of %d orders: %v", i, n, orders, perShard)
		}
	}
	if n, _ := rdb.Exists(ctx, "orderworker:{ledger}:order:tencent:S0000").Result(); n != 0 {
		t.Error("an order's record is under the one-shard tag {ledger}")
	}
	// The first 200 to paid (each with its event), the rest stay queued.
	for i, ref := range refs[:200] {
		tok := fmt.Sprintf("t%d", i)
		if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: tok}); err != nil || b.Status != ledger.Began {
			t.Fatalf("Begin %s = %+v, %v", ref.OrderNo, b, err)
		}
		if err := l.Settle(ctx, ref, tok, ledger.SetPaid("P-"+ref.OrderNo)); err != nil {
			t.Fatalf("Settle %s: %v", ref.OrderNo, err)
		}
	}
	st, err := l.Stats(ctx, []string{"tencent"})
	if err != nil {
		t.Fatal(err)
	}
	if st["tencent"][ledger.StatePaid].Count != 200 || st["tencent"][ledger.StateQueued].Count != 100 || st["tencent"][ledger.StateSubmitting].Count != 0 {
		t.Errorf("Stats = %+v, want 200 paid, 100 queued", st["tencent"])
	}
	if st["tencent"][ledger.StatePaid].Oldest.IsZero() {
		t.Error("Stats: no oldest paid")
	}

	// List pages through all 300 once, newest first.
	var listed []string
	cursor := ""
	for pages := 0; ; pages++ {
		p, err := l.List(ctx, ledger.ListArgs{Providers: []string{"tencent"}, Limit: 37, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			listed = append(listed, r.OrderNo)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
		if pages > 20 {
			t.Fatal("List does not end")
		}
	}
	sorted := slices.Clone(listed)
	slices.Sort(sorted)
	if len(listed) != orders || len(slices.Compact(sorted)) != orders {
		t.Errorf("List returned %d orders (%d distinct), want each of %d once", len(listed), len(slices.Compact(sorted)), orders)
	}

	// InState: the oldest queued across the shards, oldest first.
	q, err := l.InState(ctx, "tencent", ledger.StateQueued, time.Now().Add(time.Minute), 1000)
	if err != nil || len(q) != 100 {
		t.Fatalf("InState(queued) = %d refs, %v; want 100", len(q), err)
	}
	q5, _ := l.InState(ctx, "tencent", ledger.StateQueued, time.Now().Add(time.Minute), 5)
	if len(q5) != 5 {
		t.Errorf("InState(limit 5) = %d refs", len(q5))
	}

	// Events: 200 paid events, read 7 at a time with next, each once.
	seen := map[string]bool{}
	after := ""
	for pages := 0; ; pages++ {
		p, err := l.ReadEvents(ctx, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) == 0 {
			break
		}
		for _, ev := range p.Events {
			if seen[ev.ID] {
				t.Fatalf("event %s read twice", ev.ID)
			}
			seen[ev.ID] = true
			ref := ledger.Ref{Provider: ev.Data.Provider, OrderNo: ev.Data.OrderNo}
			if !strings.HasSuffix(ev.ID, fmt.Sprintf("-%d", l.ShardOf(ref))) || strings.Count(ev.ID, "-") != 2 {
				t.Errorf("event %s of %s: want its shard %d after its entry id", ev.ID, ref.OrderNo, l.ShardOf(ref))
			}
		}
		if strings.Count(p.Next, ",") != 2 {
			t.Fatalf("Next = %q, want one position per shard", p.Next)
		}
		after = p.Next
		if pages > 100 {
			t.Fatal("ReadEvents does not end")
		}
	}
	if len(seen) != 200 {
		t.Errorf("read %d distinct events, want 200", len(seen))
	}
	// An event id is no position in a ledger of several shards: refused,
	// as are cursors of another shape.
	all, err := l.Events(ctx, "", 1000)
	if err != nil || len(all) != 200 {
		t.Fatalf("Events = %d, %v", len(all), err)
	}
	for _, bad := range []string{all[99].ID, "1700000000000", "1700000000000-0", "1-2-3-4", "1,2", "x", "1-0,2-0,3-0-1"} {
		if _, err := l.ReadEvents(ctx, bad, 10); !errors.Is(err, ledger.ErrBadEventCursor) {
			t.Errorf("ReadEvents(after %q) = %v, want ErrBadEventCursor", bad, err)
		}
	}
}

// With more than one shard a provider order id's owner lives in the id's
// shard, reserved before the order's own settle: an id another order owns
// is refused there too, and nothing of the transition is applied.
func TestShardedOwnerIndex(t *testing.T) {
	t.Parallel()
	l, _ := shardedSetup(t, 3)
	a := ledger.Ref{Provider: "tencent", OrderNo: "A"}
	b := ledger.Ref{Provider: "tencent", OrderNo: "B0"}
	for i := 1; l.ShardOf(b) == l.ShardOf(a); i++ {
		b.OrderNo = fmt.Sprintf("B%d", i) // an order in another shard
	}
	claim(t, l, a)
	claim(t, l, b)
	if _, err := l.Begin(ctx, a, ledger.BeginArgs{Token: "ta"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, a, "ta", ledger.SetPaid("P1")); err != nil {
		t.Fatal(err)
	}
	if owner, err := l.Owner(ctx, "tencent", "P1"); err != nil || owner != "A" {
		t.Errorf("Owner(P1) = %q, %v; want A", owner, err)
	}
	if _, err := l.Begin(ctx, b, ledger.BeginArgs{Token: "tb"}); err != nil {
		t.Fatal(err)
	}
	var owned *ledger.OwnedError
	if err := l.Settle(ctx, b, "tb", ledger.SetPaid("P1")); !errors.As(err, &owned) || owned.Owner != "A" {
		t.Fatalf("Settle B with A's provider order id = %v, want OwnedError naming A", err)
	}
	rec, _ := l.Get(ctx, b)
	if rec.State == ledger.StatePaid || rec.ProviderOrderID != "" {
		t.Errorf("B after the refused settle: %s with %q; want it unchanged", rec.State, rec.ProviderOrderID)
	}
	// A retry of A's own settle (a lost reply) still succeeds.
	if err := l.Settle(ctx, a, "ta", ledger.SetPaid("P1")); err != nil {
		t.Errorf("Settle A again = %v", err)
	}
}

// Every process of a ledger uses one shard count: the first write records
// it, and a process with another is refused before it writes anything;
// a ledger written by the one-shard layout before the count was recorded
// counts as one shard.
func TestShardCountIsCheckedBeforeWrites(t *testing.T) {
	t.Parallel()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	three := ledger.New(rdb, &ledger.Options{Shards: 3})
	claim(t, three, ledger.Ref{Provider: "tencent", OrderNo: "X1"})
	one := ledger.New(rdb, nil)
	var mm *ledger.ShardsMismatchError
	_, err := one.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "X2"}, []byte(`{}`), "h")
	if !errors.As(err, &mm) || mm.Ledger != 3 || mm.Process != 1 || !strings.Contains(err.Error(), "ORDERWORKER_LEDGER_SHARDS=3") {
		t.Fatalf("Claim with 1 shard on a 3-shard ledger = %v, want a mismatch naming ORDERWORKER_LEDGER_SHARDS=3", err)
	}
	if _, err := one.Begin(ctx, ledger.Ref{Provider: "tencent", OrderNo: "X1"}, ledger.BeginArgs{Token: "t"}); !errors.As(err, &mm) {
		t.Errorf("Begin with 1 shard on a 3-shard ledger = %v, want a mismatch", err)
	}
	if keys, _ := rdb.Keys(ctx, "orderworker:{ledger}:order:*").Result(); len(keys) != 0 {
		t.Errorf("the refused process wrote %v", keys)
	}

	// A ledger of the one-shard layout with no recorded count.
	old := taskstest.StartRedis(t, nil).Client(t)
	if err := old.XAdd(ctx, &redis.XAddArgs{Stream: "orderworker:{ledger}:events", Values: []string{"type", "order.paid"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := ledger.New(old, &ledger.Options{Shards: 3}).CheckShards(ctx); !errors.As(err, &mm) || mm.Ledger != 1 {
		t.Errorf("3 shards on an unrecorded one-shard ledger = %v, want a mismatch with 1", err)
	}
	if err := ledger.New(old, nil).CheckShards(ctx); err != nil {
		t.Errorf("1 shard on it = %v", err)
	}

	// One holding only queued orders (no event yet): found by the
	// providers' state indexes.
	queued := taskstest.StartRedis(t, nil).Client(t)
	claim(t, ledger.New(queued, nil), ledger.Ref{Provider: "aliyun", OrderNo: "Q1"})
	if err := queued.Del(ctx, "orderworker:{ledger}:shards").Err(); err != nil { // as written before counts were recorded
		t.Fatal(err)
	}
	if err := ledger.New(queued, &ledger.Options{Shards: 3, Providers: []string{"tencent", "aliyun"}}).CheckShards(ctx); !errors.As(err, &mm) || mm.Ledger != 1 {
		t.Errorf("3 shards on an unrecorded ledger of queued orders = %v, want a mismatch with 1", err)
	}
	// A reader does not record a count.
	fresh := taskstest.StartRedis(t, nil).Client(t)
	if err := ledger.New(fresh, &ledger.Options{Shards: 3}).VerifyShards(ctx); err != nil {
		t.Errorf("VerifyShards on an empty ledger = %v", err)
	}
	if n, _ := fresh.Exists(ctx, "orderworker:{ledger}:shards").Result(); n != 0 {
		t.Error("VerifyShards recorded a shard count")
	}
	if err := ledger.New(rdb, nil).VerifyShards(ctx); !errors.As(err, &mm) || mm.Ledger != 3 {
		t.Errorf("VerifyShards with 1 shard on the 3-shard ledger = %v, want a mismatch", err)
	}
}

// A shard read from its start whose events all come after the page's
// (another shard is older) keeps a position just before its first: events
// of it that retention trims before the next read are reported missed,
// never skipped in silence.
func TestShardedEventsReportTrimsOfAShardNotYetRead(t *testing.T) {
	t.Parallel()
	l, rdb, streams := twoShardEvents(t, 100)
	page, err := l.ReadEvents(ctx, "", 3)
	if err != nil || len(page.Events) != 3 {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	if err := rdb.XTrimMaxLen(ctx, streams[1].Key, 3).Err(); err != nil { // 100..107 trimmed unread
		t.Fatal(err)
	}
	next, err := l.ReadEvents(ctx, page.Next, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !next.Missed {
		t.Errorf("after %q: %d events, missed false; want missed (100..107 were trimmed unread)", page.Next, len(next.Events))
	}
}

// A page whose check for trimmed events cannot be made (XINFO STREAM
// failed: a hiccup, a proxy that does not pass it) is an error, never a
// page that says nothing was missed.
func TestEventsTrimCheckFailedIsAnError(t *testing.T) {
	t.Parallel()
	l, rdb, streams := twoShardEvents(t, 100)
	page, err := l.ReadEvents(ctx, "", 3)
	if err != nil || len(page.Events) != 3 {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	if err := rdb.XTrimMaxLen(ctx, streams[1].Key, 3).Err(); err != nil { // 100..107 trimmed unread
		t.Fatal(err)
	}
	rdb.AddHook(failCommand("xinfo"))
	if next, err := l.ReadEvents(ctx, page.Next, 100); err == nil {
		t.Errorf("after %q with XINFO failing: %d events, missed %v, no error; want an error", page.Next, len(next.Events), next.Missed)
	}
}

// A cursor into a stream that is gone since (Redis lost the ledger's
// data) reports the events after it missed, never a page that says
// nothing was.
func TestEventsOfAStreamGoneAreMissed(t *testing.T) {
	t.Parallel()
	l, rdb, streams := twoShardEvents(t, 100)
	page, err := l.ReadEvents(ctx, "", 3)
	if err != nil || len(page.Events) != 3 {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	if err := rdb.Del(ctx, streams[0].Key, streams[1].Key).Err(); err != nil {
		t.Fatal(err)
	}
	next, err := l.ReadEvents(ctx, page.Next, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !next.Missed || len(next.Events) != 0 {
		t.Errorf("after %q with the streams gone: %d events, missed %v; want none, missed", page.Next, len(next.Events), next.Missed)
	}
	if first, err := l.ReadEvents(ctx, "", 100); err != nil || first.Missed {
		t.Errorf("from the start with the streams gone: %+v, %v; want nothing missed", first, err)
	}
}

// A position past every entry its stream ever gave (its events after it
// lost with a failover onto a replica behind, or with Redis's data, and
// the stream written again since) reports missed, and the shard's next
// page starts again from its oldest entry: read on from that position, the
// reader would see nothing until the stream's ids caught up with it. With
// one shard, a bare millisecond time to come is no such position: events
// are read from then on.
func TestEventsAfterAPositionTheStreamNeverGaveAreMissed(t *testing.T) {
	t.Parallel()
	l, _, _ := twoShardEvents(t, 100)
	page, err := l.ReadEvents(ctx, "3-0,9999999999999-0", 100)
	if err != nil {
		t.Fatal(err)
	}
	if !page.Missed || len(page.Events) != 2 || page.Next != "5-0,0-0" {
		t.Fatalf("after a position past shard 1's last entry: %d events, missed %v, next %q; want shard 0's two, missed, next 5-0,0-0", len(page.Events), page.Missed, page.Next)
	}
	again, err := l.ReadEvents(ctx, page.Next, 100)
	if err != nil || again.Missed || len(again.Events) != 11 {
		t.Errorf("from the next position: %d events, missed %v, %v; want shard 1's 11 from its oldest, nothing missed", len(again.Events), again.Missed, err)
	}

	// A bare time to come for a shard is passed on as it was, never
	// taken for an id the stream gave.
	for range 2 {
		p, err := l.ReadEvents(ctx, "5-0,9999999999999", 100)
		if err != nil || p.Missed || len(p.Events) != 0 || p.Next != "5-0,9999999999999" {
			t.Errorf("after a time to come on shard 1: %+v, %v; want nothing, nothing missed, the same position", p, err)
		}
	}

	one := taskstest.StartRedis(t, nil).Client(t)
	l1 := ledger.New(one, nil)
	if err := one.XAdd(ctx, &redis.XAddArgs{Stream: l1.EventStreams()[0].Key, ID: "7-0",
		Values: []any{"type", "order.paid", "provider", "p", "order_no", "7", "state", "paid"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if p, err := l1.ReadEvents(ctx, "9999999999999-0", 10); err != nil || !p.Missed || p.Next != "0-0" {
		t.Errorf("one shard, after an id past the last: %+v, %v; want missed, next 0-0", p, err)
	}
	if p, err := l1.ReadEvents(ctx, "9999999999999", 10); err != nil || p.Missed || p.Next != "9999999999999" {
		t.Errorf("one shard, after a time to come: %+v, %v; want nothing missed, the same position", p, err)
	}
	if p, err := l1.ReadEvents(ctx, "7-0", 10); err != nil || p.Missed || p.Next != "7-0" {
		t.Errorf("one shard, after the last id: %+v, %v; want nothing missed, the same position", p, err)
	}
}

// failCommand is a client hook that fails every command named name.
type failCommand string

func (f failCommand) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f failCommand) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == string(f) {
			err := errors.New("ERR injected failure")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (f failCommand) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// The position kept before a shard's first event reports nothing missed
// while that event is still there, however much was trimmed before it.
func TestShardedEventsNoMissedWhileTheFirstIsKept(t *testing.T) {
	t.Parallel()
	l, rdb, streams := twoShardEvents(t, 90)
	if err := rdb.XTrimMaxLen(ctx, streams[1].Key, 11).Err(); err != nil { // 90..99 trimmed before any read
		t.Fatal(err)
	}
	page, err := l.ReadEvents(ctx, "", 3)
	if err != nil || len(page.Events) != 3 {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	next, err := l.ReadEvents(ctx, page.Next, 100)
	if err != nil {
		t.Fatal(err)
	}
	if next.Missed || len(next.Events) != 2+11 {
		t.Errorf("after %q: %d events, missed %v; want 13, nothing missed", page.Next, len(next.Events), next.Missed)
	}
}

// twoShardEvents returns a ledger of two shards whose first events stream
// holds events at ids 1-0..5-0 and the second at from-0..110-0.
func twoShardEvents(t *testing.T, from int) (*ledger.Ledger, *redis.Client, []ledger.EventStream) {
	t.Helper()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	l := ledger.New(rdb, &ledger.Options{Shards: 2})
	streams := l.EventStreams()
	add := func(stream string, ms int) {
		t.Helper()
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: fmt.Sprintf("%d-0", ms),
			Values: []any{"type", "order.paid", "provider", "p", "order_no", fmt.Sprint(ms), "state", "paid"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for ms := 1; ms <= 5; ms++ {
		add(streams[0].Key, ms)
	}
	for ms := from; ms <= 110; ms++ {
		add(streams[1].Key, ms)
	}
	return l, rdb, streams
}

// A later version's format recorded on the ledger refuses an earlier
// one's writes, with nothing written; a higher format is recorded over a
// lower one with a drain mark for the earlier version's processes to see
// it (none over a ledger that had no format recorded: no process of
// that version watches it); a running worker's watch sees it.
func TestLaterFormatRefusesEarlierWriters(t *testing.T) {
	t.Parallel()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	cur := ledger.New(rdb, &ledger.Options{FormatDrain: time.Minute})
	claim(t, cur, ledger.Ref{Provider: "tencent", OrderNo: "F1"})
	if d, err := cur.FormatDrain(ctx); err != nil || d != 0 {
		t.Errorf("FormatDrain after the first format recorded on a ledger = %s, %v; want none", d, err)
	}
	if _, err := cur.Watched(ctx); err != nil {
		t.Errorf("Watched by the ledger's own format = %v", err)
	}
	later := ledger.New(rdb, &ledger.Options{Format: ledger.Format + 1, FormatDrain: time.Minute})
	claim(t, later, ledger.Ref{Provider: "tencent", OrderNo: "F2"})
	if d, err := later.FormatDrain(ctx); err != nil || d <= 50*time.Second || d > time.Minute {
		t.Errorf("FormatDrain after a later format recorded over an earlier one = %s, %v; want about a minute", d, err)
	}
	var fe *ledger.FormatError
	if _, err := cur.Watched(ctx); !errors.As(err, &fe) || fe.Ledger != ledger.Format+1 || fe.Process != ledger.Format {
		t.Errorf("Watched by the earlier format after a later one wrote = %v; want a FormatError", err)
	}
	// A new process of the earlier version (cur has checked already).
	earlier := ledger.New(rdb, nil)
	_, err := earlier.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "F3"}, []byte(`{}`), "h")
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "later orderworker") {
		t.Fatalf("Claim by the earlier format on a later one's ledger = %v; want a FormatError", err)
	}
	if _, err := earlier.Begin(ctx, ledger.Ref{Provider: "tencent", OrderNo: "F1"}, ledger.BeginArgs{Token: "t"}); !errors.As(err, &fe) {
		t.Errorf("Begin by the earlier format = %v; want a FormatError", err)
	}
	if n, _ := rdb.Exists(ctx, "orderworker:{ledger}:order:tencent:F3").Result(); n != 0 {
		t.Error("the refused claim wrote its record")
	}
	if rec, err := earlier.Get(ctx, ledger.Ref{Provider: "tencent", OrderNo: "F1"}); err != nil || rec.State != ledger.StateQueued || rec.Inflight != 0 {
		t.Errorf("F1 after a refused Begin = %+v, %v; want queued, untouched", rec, err)
	}
	// The later format stays recorded: an earlier writer does not lower it.
	if v, _ := rdb.Get(ctx, "orderworker:{ledger}:format").Int(); v != ledger.Format+1 {
		t.Errorf("format recorded = %d, want %d", v, ledger.Format+1)
	}
}

// An earlier format's process that read the ledger first (an operator's
// tool: VerifyShards) still has its writes checked; and one that wrote
// before the later format was recorded (a running producer) is refused
// within the recheck interval after it.
func TestEarlierFormatsWritesAreCheckedAfterAReadAndAgainLater(t *testing.T) {
	t.Parallel()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	running := ledger.New(rdb, nil)
	claim(t, running, ledger.Ref{Provider: "tencent", OrderNo: "R1"})
	later := ledger.New(rdb, &ledger.Options{Format: ledger.Format + 1})
	claim(t, later, ledger.Ref{Provider: "tencent", OrderNo: "R2"})

	tool := ledger.New(rdb, nil)
	if err := tool.VerifyShards(ctx); err != nil {
		t.Fatal(err)
	}
	var fe *ledger.FormatError
	if _, err := tool.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "R3"}, []byte(`{}`), "h"); !errors.As(err, &fe) {
		t.Errorf("Claim by an earlier format after a read = %v; want a FormatError", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := running.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "R4"}, []byte(`{}`), "h")
		if errors.As(err, &fe) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a running process of the earlier format still writes 15 s after a later format was recorded")
		}
		if err := rdb.Del(ctx, "orderworker:{ledger}:order:tencent:R4").Err(); err != nil { // let the next claim write again
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// A master that refuses writes for want of replicas refuses the layout
// check a first write makes: the error says why, not only that the shard
// count could not be read.
func TestLayoutCheckRefusedForReplicasSaysWhy(t *testing.T) {
	t.Parallel()
	s := taskstest.StartRedis(t, &taskstest.Options{Args: []string{"--min-replicas-to-write", "1"}})
	l := ledger.New(s.Client(t), nil)
	_, err := l.Claim(context.Background(), ledger.Ref{Provider: "tencent", OrderNo: "NR1"}, []byte(`{}`), "h")
	if err == nil || !strings.Contains(err.Error(), "min-replicas-to-write") || !strings.Contains(err.Error(), "NOREPLICAS") {
		t.Errorf("claim on a master short of replicas: %v; want the NOREPLICAS refusal, explained", err)
	}
}
