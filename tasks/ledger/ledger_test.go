package ledger_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// counter counts the commands (round trips) a client sends.
type counter struct{ n atomic.Int64 }

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

func setup(t *testing.T) (*ledger.Ledger, *redis.Client, *counter) {
	t.Helper()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	c := &counter{}
	rdb.AddHook(c)
	return ledger.New(rdb, nil), rdb, c
}

var ctx = context.Background()

// settled claims order no (provider p), begins a step of it and settles
// the step with tr.
func settled(t *testing.T, l *ledger.Ledger, no string, tr ledger.Transition) ledger.Ref {
	t.Helper()
	ref := ledger.Ref{Provider: "p", OrderNo: no}
	claim(t, l, ref)
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t-" + no}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, ref, "t-"+no, tr); err != nil {
		t.Fatal(err)
	}
	return ref
}

func claim(t *testing.T, l *ledger.Ledger, ref ledger.Ref) {
	t.Helper()
	res, err := l.Claim(ctx, ref, []byte(`{"a":1}`), "h1")
	if err != nil || !res.Created {
		t.Fatalf("Claim = %+v, %v", res, err)
	}
}

// The happy path of an order costs one round trip to claim it, one to begin
// its step and one to settle it, each atomic.
func TestHappyPathRoundTrips(t *testing.T) {
	t.Parallel()
	l, _, c := setup(t)
	ref := ledger.Ref{Provider: "tencent", OrderNo: "O1"}
	// Load the scripts first so EVALSHA does not fall back to EVAL.
	claim(t, l, ledger.Ref{Provider: "tencent", OrderNo: "warm"})
	b, _ := l.Begin(ctx, ledger.Ref{Provider: "tencent", OrderNo: "warm"}, ledger.BeginArgs{Token: "w"})
	_ = b
	_ = l.Settle(ctx, ledger.Ref{Provider: "tencent", OrderNo: "warm"}, "w", ledger.SetPaid("W"))

	c.n.Store(0)
	claim(t, l, ref)
	if n := c.n.Load(); n != 1 {
		t.Errorf("Claim took %d round trips, want 1", n)
	}
	c.n.Store(0)
	b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t1"})
	if err != nil || b.Status != ledger.Began || !b.Record.InflightMarked || b.Record.State != ledger.StateSubmitting || b.Record.Inflight != 1 {
		t.Fatalf("Begin = %+v (%+v), %v; want began with the create marked in flight", b, b.Record, err)
	}
	if n := c.n.Load(); n != 1 {
		t.Errorf("Begin took %d round trips, want 1", n)
	}
	c.n.Store(0)
	a := &ledger.Attempt{N: 1, Call: "submit", Result: "ok"}
	if err := l.Settle(ctx, ref, "t1", ledger.SetPaid("P1").WithAttempt(a)); err != nil {
		t.Fatal(err)
	}
	if n := c.n.Load(); n != 1 {
		t.Errorf("Settle took %d round trips, want 1", n)
	}
	rec, err := l.Get(ctx, ref)
	if err != nil || rec.State != ledger.StatePaid || rec.ProviderOrderID != "P1" || rec.Attempts != 1 || rec.Inflight != 0 || len(rec.History) != 1 || rec.OutcomeAt.IsZero() {
		t.Fatalf("record = %+v, %v", rec, err)
	}
	// The two are taken in the same script, last_create on Redis's clock
	// and first_attempt on the caller's (here the same machine's): a
	// millisecond boundary may fall between them.
	if d := rec.LastCreateAt.Sub(rec.FirstAttemptAt); rec.LastCreateAt.IsZero() || d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("last create at %v, first attempt at %v: the mark records when the create left", rec.LastCreateAt, rec.FirstAttemptAt)
	}
	st, err := l.Stats(ctx, []string{"tencent"})
	if err != nil || st["tencent"][ledger.StatePaid].Count != 2 || st["tencent"][ledger.StateQueued].Count != 0 || st["tencent"][ledger.StateSubmitting].Count != 0 {
		t.Errorf("stats = %+v, %v; want both orders indexed as paid only", st["tencent"], err)
	}
	if owner, _ := l.Owner(ctx, "tencent", "P1"); owner != "O1" {
		t.Errorf("owner of P1 = %q, want O1", owner)
	}
}

func TestBeginRefusesFinishedAndLeased(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "p", OrderNo: "O2"}
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "x"}); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Begin on no record: %v, want ErrNotFound", err)
	}
	claim(t, l, ref)
	if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "a", LeaseTTL: 200 * time.Millisecond}); err != nil || b.Status != ledger.Began {
		t.Fatalf("first Begin = %+v, %v", b, err)
	}
	b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "b"})
	if err != nil || b.Status != ledger.Busy || b.LeaseUntil.IsZero() {
		t.Fatalf("second Begin = %+v, %v; want busy", b, err)
	}
	// A client retry of the same Begin (lost reply) finds its own lease and
	// its own mark, unchanged.
	if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "a"}); err != nil || b.Status != ledger.Began || !b.Record.InflightMarked || b.Record.Inflight != 1 {
		t.Fatalf("retried Begin = %+v, %v", b, err)
	}
	// The lease expires: the next run takes it, and sees the create still
	// in flight (not marked by it): it must look the order up.
	time.Sleep(250 * time.Millisecond)
	b, err = l.Begin(ctx, ref, ledger.BeginArgs{Token: "c"})
	if err != nil || b.Status != ledger.Began || b.Record.InflightMarked || b.Record.Inflight != 1 {
		t.Fatalf("Begin after expiry = %+v (%+v), %v; want began, in flight from before", b, b.Record, err)
	}
	// The first run comes back: its lease is gone.
	if err := l.Settle(ctx, ref, "a", ledger.SetPaid("X")); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("Settle with a lost lease: %v, want ErrLeaseLost", err)
	}
	if err := l.Settle(ctx, ref, "c", ledger.SetErrored("no")); err != nil {
		t.Fatal(err)
	}
	// A client retry of a Settle whose reply was lost: success, applied once.
	if err := l.Settle(ctx, ref, "c", ledger.SetErrored("no")); err != nil {
		t.Fatalf("retried Settle: %v", err)
	}
	if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "d"}); err != nil || b.Status != ledger.Finished || b.Record.State != ledger.StateErrored {
		t.Fatalf("Begin on an errored order = %+v, %v; want finished", b, err)
	}
}

// A settle tried again after its first try applied (its reply lost) is
// told apart from one whose lease another run took, even when another run
// took the order and settled it in between: it is not a call made after
// the lease was lost.
func TestRetriedSettleAfterAnotherRunsSettleIsOK(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "p", OrderNo: "O-retried"}
	claim(t, l, ref)
	tokens := []string{"a", "b", "c"}
	for i, tok := range tokens {
		if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: tok}); err != nil || b.Status != ledger.Began {
			t.Fatalf("Begin %s = %+v, %v", tok, b, err)
		}
		a := &ledger.Attempt{N: i + 1, Call: "query", Result: "not_found"}
		if err := l.Settle(ctx, ref, tok, ledger.SetUnknown("looking").WithAttempt(a)); err != nil {
			t.Fatalf("Settle %s: %v", tok, err)
		}
	}
	// The first run's settle again, two settles later: applied once, ok.
	if err := l.Settle(ctx, ref, "a", ledger.SetUnknown("looking")); err != nil {
		t.Fatalf("retried Settle after two others: %v, want ok", err)
	}
	rec, err := l.Get(ctx, ref)
	if err != nil || rec.Attempts != 3 || len(rec.History) != 3 {
		t.Fatalf("record = %+v, %v; want the three settles applied once each", rec, err)
	}
	// A fourth settle: the first token is no longer kept, and a settle with
	// it is taken for one whose lease was lost, as is a token never seen.
	if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "d"}); err != nil || b.Status != ledger.Began {
		t.Fatalf("Begin d = %+v, %v", b, err)
	}
	if err := l.Settle(ctx, ref, "d", ledger.SetUnknown("looking")); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"a", "zz", ""} {
		if err := l.Settle(ctx, ref, tok, ledger.SetPaid("X")); !errors.Is(err, ledger.ErrLeaseLost) {
			t.Errorf("Settle with token %q: %v, want ErrLeaseLost", tok, err)
		}
	}
	for _, tok := range []string{"b", "c", "d"} {
		if err := l.Settle(ctx, ref, tok, ledger.SetPaid("X")); err != nil {
			t.Errorf("retried Settle %s: %v, want ok", tok, err)
		}
	}
	if rec, err := l.Get(ctx, ref); err != nil || rec.State != ledger.StateUnknown || rec.ProviderOrderID != "" {
		t.Fatalf("record = %+v, %v; a retried settle applied again", rec, err)
	}
}

// Ids unique only within a scope (Transition.WithIDScope) are owned by
// scope and id: the same id in two scopes is two orders', in one scope it
// is refused to the second order as ever; the record notes its scope.
func TestProviderIDsOwnedWithinTheirScope(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	settle := func(no, scope, id string) error {
		ref := ledger.Ref{Provider: "aliyun", OrderNo: no}
		claim(t, l, ref)
		if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t-" + no}); err != nil || b.Status != ledger.Began {
			t.Fatalf("Begin %s = %+v, %v", no, b, err)
		}
		return l.Settle(ctx, ref, "t-"+no, ledger.SetPaid(id).WithIDScope(scope))
	}
	if err := settle("A", "dev-1", "7"); err != nil {
		t.Fatal(err)
	}
	if err := settle("B", "dev-2", "7"); err != nil {
		t.Fatalf("the same id on another device: %v, want it recorded", err)
	}
	var owned *ledger.OwnedError
	if err := settle("C", "dev-1", "7"); !errors.As(err, &owned) || owned.Owner != "A" || owned.ProviderOrderID != "7" {
		t.Fatalf("the same id on the same device: %v, want owned by A", err)
	}
	for scope, want := range map[string]string{"dev-1": "A", "dev-2": "B", "dev-3": ""} {
		if owner, err := l.OwnerIn(ctx, "aliyun", scope, "7"); err != nil || owner != want {
			t.Errorf("owner of 7 on %s = %q, %v; want %q", scope, owner, err, want)
		}
	}
	if owner, _ := l.Owner(ctx, "aliyun", "7"); owner != "" {
		t.Errorf("owner of 7 unscoped = %q, want none", owner)
	}
	rec, err := l.Get(ctx, ledger.Ref{Provider: "aliyun", OrderNo: "B"})
	if err != nil || rec.IDScope != "dev-2" || rec.ProviderOrderID != "7" {
		t.Fatalf("record B = %+v, %v; want id 7 in scope dev-2", rec, err)
	}
	// Released in its scope.
	if err := l.ReleaseNotOurs(ctx, ledger.Ref{Provider: "aliyun", OrderNo: "B"}, "dev-2", "7"); err != nil {
		t.Fatal(err)
	}
	if owner, _ := l.OwnerIn(ctx, "aliyun", "dev-2", "7"); owner != "" {
		t.Errorf("owner of 7 on dev-2 after its release = %q", owner)
	}
	if owner, _ := l.OwnerIn(ctx, "aliyun", "dev-1", "7"); owner != "A" {
		t.Errorf("owner of 7 on dev-1 after another's release = %q, want A", owner)
	}
}

func TestSettleNeverAdoptsAnotherOrdersProviderID(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	a, b := ledger.Ref{Provider: "aliyun", OrderNo: "A"}, ledger.Ref{Provider: "aliyun", OrderNo: "B"}
	claim(t, l, a)
	claim(t, l, b)
	if _, err := l.Begin(ctx, b, ledger.BeginArgs{Token: "tb"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, b, "tb", ledger.SetPaid("PO-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Begin(ctx, a, ledger.BeginArgs{Token: "ta"}); err != nil {
		t.Fatal(err)
	}
	err := l.Settle(ctx, a, "ta", ledger.SetPaid("PO-1"))
	var owned *ledger.OwnedError
	if !errors.As(err, &owned) || owned.Owner != "B" {
		t.Fatalf("Settle A with B's id: %v, want OwnedError naming B", err)
	}
	rec, _ := l.Get(ctx, a)
	if rec.State != ledger.StateSubmitting || rec.ProviderOrderID != "" {
		t.Errorf("A after the refused settle: %+v, want unchanged", rec)
	}
	// The same id settles again for its owner (a poll of B).
	if _, err := l.Begin(ctx, b, ledger.BeginArgs{Token: "tb2"}); err != nil {
		t.Fatal(err)
	}
}

// An id that an order's own create answered outweighs another order's
// match of it: the settle takes it over, and the order that held it by
// matching loses it (and its lease, and any pay it sent, which becomes the
// answering order's) and is looked up again as unknown, with its event.
// Refused (OwnedError) it would leave the answering order to be looked up
// with the id dropped as another's, and created a second time. An id
// held by another order's own answer, or claimed by a match, is still
// never taken.
func TestAnsweredIDTakesOverAMatch(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		xMatched  bool // X holds PO-1 by matching
		yAnswered bool // Y's settle carries its create's own answer
		xState    ledger.State
		takesOver bool
	}{
		{"matched paid, answered", true, true, ledger.StatePaid, true},
		{"matched pending, answered", true, true, ledger.StatePending, true},
		{"answered, answered", false, true, ledger.StatePaid, false},
		{"matched, matched", true, false, ledger.StatePaid, false},
		// With shards the two records may be in different shards, and
		// no one script revokes the one and settles the other: refused,
		// as before (README, "Redis Cluster").
		{"sharded: matched pending, answered", true, true, ledger.StatePending, false},
		{"sharded: answered, answered", false, true, ledger.StatePaid, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var l *ledger.Ledger
			x, y := ledger.Ref{Provider: "aliyun", OrderNo: "X"}, ledger.Ref{Provider: "aliyun", OrderNo: "Y"}
			if strings.HasPrefix(tt.name, "sharded") {
				// X and Y in different shards.
				l, _ = shardedSetup(t, 3)
				for i := 0; l.ShardOf(x) == l.ShardOf(y); i++ {
					y.OrderNo = fmt.Sprintf("Y%d", i)
				}
			} else {
				l, _, _ = setup(t)
			}
			claim(t, l, x)
			claim(t, l, y)
			if _, err := l.Begin(ctx, x, ledger.BeginArgs{Token: "tx"}); err != nil {
				t.Fatal(err)
			}
			tx := ledger.SetPaid("PO-1")
			if tt.xState == ledger.StatePending {
				tx = ledger.SetPending("PO-1", time.Now(), time.Now().Add(time.Minute))
			}
			if tt.xMatched {
				tx = tx.WithMatched()
			}
			if err := l.Settle(ctx, x, "tx", tx); err != nil {
				t.Fatal(err)
			}
			paySent := time.Time{}
			if tt.xState == ledger.StatePending {
				// X's pay of PO-1 goes out; X holds the lease meanwhile.
				b, err := l.Begin(ctx, x, ledger.BeginArgs{Token: "tx2", Pay: true})
				if err != nil || !b.Record.PayMarked {
					t.Fatalf("Begin X's pay = %+v, %v", b.Record, err)
				}
				got, _ := l.Get(ctx, x)
				paySent = got.PaySentAt
			}
			before, _ := l.Events(ctx, "", 100)
			if _, err := l.Begin(ctx, y, ledger.BeginArgs{Token: "ty"}); err != nil {
				t.Fatal(err)
			}
			ty := ledger.SetPending("PO-1", time.Now(), time.Now().Add(time.Minute))
			if tt.yAnswered {
				ty = ty.WithAnswered()
			}
			err := l.Settle(ctx, y, "ty", ty)
			owner, _ := l.Owner(ctx, "aliyun", "PO-1")
			xr, _ := l.Get(ctx, x)
			yr, _ := l.Get(ctx, y)
			if !tt.takesOver {
				var owned *ledger.OwnedError
				if !errors.As(err, &owned) || owned.Owner != x.OrderNo || owner != x.OrderNo || xr.ProviderOrderID != "PO-1" || yr.ProviderOrderID != "" {
					t.Fatalf("Settle Y = %v; owner %q, X %+v, Y %+v; want OwnedError, X keeping PO-1", err, owner, xr, yr)
				}
				return
			}
			if err != nil || owner != y.OrderNo || yr.ProviderOrderID != "PO-1" || yr.State != ledger.StatePending {
				t.Fatalf("Settle Y = %v; owner %q, Y %+v; want PO-1 Y's", err, owner, yr)
			}
			if xr.State != ledger.StateUnknown || xr.ProviderOrderID != "" || xr.Matched || !xr.MayExist || !xr.PaySentAt.IsZero() {
				t.Errorf("X after the take-over: %+v; want unknown, no id, not matched, may exist, no pay sent", xr)
			}
			if !strings.Contains(xr.Reason, "order "+y.OrderNo+"'s") {
				t.Errorf("X's reason %q does not say why", xr.Reason)
			}
			// X's pay of PO-1 is open: it may land until X's lease (30s)
			// runs out, and Y pays PO-1 no sooner than a lag after that
			// (TestTakeOverDuringAnOpenPay).
			if tt.xState == ledger.StatePending && yr.PaySentAt.Sub(paySent) != 30*time.Second || tt.xState != ledger.StatePending && !yr.PaySentAt.IsZero() {
				t.Errorf("Y's pay sent at %v, want the end of the lease of X's pay of PO-1, marked at %v", yr.PaySentAt, paySent)
			}
			// X's run in flight has lost its lease: its settle changes
			// nothing.
			if tt.xState == ledger.StatePending {
				err := l.Settle(ctx, x, "tx2", ledger.SetPaid("PO-1"))
				if !errors.Is(err, ledger.ErrLeaseLost) {
					t.Errorf("X's settle after the take-over = %v, want ErrLeaseLost", err)
				}
				if xr, _ := l.Get(ctx, x); xr.State != ledger.StateUnknown || xr.ProviderOrderID != "" {
					t.Errorf("X after its settle was refused: %+v; want unknown, no id", xr)
				}
			}
			after, _ := l.Events(ctx, "", 100)
			var xUnknown bool
			for _, ev := range after[len(before):] {
				if ev.Data.OrderNo == x.OrderNo && ev.Type == "order.unknown" {
					xUnknown = true
				}
			}
			if !xUnknown {
				t.Errorf("no order.unknown event for X among %+v", after[len(before):])
			}
			if page, err := l.List(ctx, ledger.ListArgs{Providers: []string{"aliyun"}, State: ledger.StateUnknown}); err != nil || len(page.Records) != 1 || page.Records[0].OrderNo != x.OrderNo {
				t.Errorf("unknown orders = %+v, %v; want X", page, err)
			}
		})
	}
}

// A provider may make the order at any time while the create request is
// open (late in a slow request): the listing lag counts from when the
// create ended, so its settle moves LastCreateAt to then, on Redis's
// clock. A settle of a step that marked no create leaves it.
func TestLastCreateIsWhenTheCreateEnded(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "tencent", OrderNo: "Slow"}
	claim(t, l, ref)
	b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t1"})
	if err != nil || !b.Record.InflightMarked {
		t.Fatalf("Begin = %+v, %v; want the create marked", b.Record, err)
	}
	marked := b.Record.LastCreateAt
	time.Sleep(300 * time.Millisecond) // the create is open
	if err := l.Settle(ctx, ref, "t1", ledger.SetUnknown("timeout after the request was sent").WithMayExist(true)); err != nil {
		t.Fatal(err)
	}
	rec, _ := l.Get(ctx, ref)
	if d := rec.LastCreateAt.Sub(marked); d < 250*time.Millisecond {
		t.Errorf("last create %v after the mark, want the create's end (about 300ms)", d)
	}
	// A lookup's settle (no create marked) leaves it.
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t2"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := l.Settle(ctx, ref, "t2", ledger.SetUnknown("looked up").WithMayExist(true)); err != nil {
		t.Fatal(err)
	}
	if again, _ := l.Get(ctx, ref); !again.LastCreateAt.Equal(rec.LastCreateAt) {
		t.Errorf("a lookup's settle moved last create from %v to %v", rec.LastCreateAt, again.LastCreateAt)
	}
}

// A create marked by a run that never settled it (killed, its lease lost)
// may have been open until that run's lease ran out: the next run counts
// the listing lag from then at the earliest, and sees so in its record.
func TestAbandonedCreateCountsUntilItsLeaseRanOut(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "tencent", OrderNo: "Killed"}
	claim(t, l, ref)
	b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t1", LeaseTTL: 300 * time.Millisecond})
	if err != nil || !b.Record.InflightMarked {
		t.Fatalf("Begin = %+v, %v; want the create marked", b.Record, err)
	}
	marked := b.Record.LastCreateAt
	time.Sleep(400 * time.Millisecond) // the run died; its lease ran out
	b2, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t2"})
	if err != nil || b2.Status != ledger.Began || b2.Record.Inflight == 0 {
		t.Fatalf("Begin after the lease ran out = %+v, %v; want the abandoned create seen", b2.Record, err)
	}
	if d := b2.Record.LastCreateAt.Sub(marked); d < 250*time.Millisecond || d > 350*time.Millisecond {
		t.Errorf("last create %v after the mark, want the lease's end (300ms)", d)
	}
	if rec, err := l.Get(ctx, ref); err != nil || !rec.LastCreateAt.Equal(b2.Record.LastCreateAt) {
		t.Errorf("record's last create %v, %v; want %v written", rec.LastCreateAt, err, b2.Record.LastCreateAt)
	}
}

func TestKnownSnapshotGatesTheCreate(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "aliyun", OrderNo: "K"}
	claim(t, l, ref)
	b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t1", NeedsKnown: true})
	if err != nil || b.Record.InflightMarked || b.Record.Known != nil || b.Record.State != ledger.StateQueued {
		t.Fatalf("Begin without a snapshot = %+v, %v; want no mark", b.Record, err)
	}
	if err := l.Settle(ctx, ref, "t1", ledger.SetKnown(nil)); err != nil {
		t.Fatal(err)
	}
	b, err = l.Begin(ctx, ref, ledger.BeginArgs{Token: "t2", NeedsKnown: true})
	if err != nil || !b.Record.InflightMarked || b.Record.Known == nil || len(b.Record.Known) != 0 {
		t.Fatalf("Begin with an empty snapshot = %+v, %v; want the create marked", b.Record, err)
	}
}

func TestKeepAliveHoldsTheLease(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "p", OrderNo: "KA"}
	claim(t, l, ref)
	ttl := 300 * time.Millisecond
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "k", LeaseTTL: ttl}); err != nil {
		t.Fatal(err)
	}
	cctx, stop := l.KeepAlive(ctx, ref, "k", ttl)
	time.Sleep(3 * ttl)
	if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "other"}); err != nil || b.Status != ledger.Busy {
		t.Fatalf("Begin while kept alive = %+v, %v; want busy", b, err)
	}
	if cctx.Err() != nil {
		t.Fatalf("keepalive context ended: %v", context.Cause(cctx))
	}
	stop()
	if err := l.Settle(ctx, ref, "k", ledger.Release()); err != nil {
		t.Fatal(err)
	}
	// A lease taken over: the keepalive cancels its context.
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "k2", LeaseTTL: 60 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	cctx, stop = l.KeepAlive(ctx, ref, "k-wrong", 60*time.Millisecond)
	defer stop()
	select {
	case <-cctx.Done():
		if !errors.Is(context.Cause(cctx), ledger.ErrLeaseLost) {
			t.Errorf("cause = %v, want ErrLeaseLost", context.Cause(cctx))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("keepalive of a lease not held did not cancel")
	}
}

// failScripts fails the next n scripts sent (a Redis blip: a timeout, a
// reset connection).
type failScripts struct{ n atomic.Int32 }

func (f *failScripts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f *failScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); (n == "evalsha" || n == "eval") && f.n.Add(-1) >= 0 {
			err := errors.New("i/o timeout (injected)")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}
func (f *failScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// One or two failed extensions (a Redis blip) do not end the keepalive
// while the lease has time left: before, the first one cancelled the call
// under way, leaving a create or a pay unsure (a review). And a keepalive
// counts from its Begin: a lease already two thirds old when the call
// starts is extended at once, not a third of its time later, when it
// would have run out.
func TestKeepAliveRidesOutABlipAndCountsFromItsBegin(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	blip := &failScripts{}
	rdb.AddHook(blip)
	ttl := 600 * time.Millisecond
	ref := ledger.Ref{Provider: "p", OrderNo: "KA-blip"}
	claim(t, l, ref)
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "k", LeaseTTL: ttl}); err != nil {
		t.Fatal(err)
	}
	blip.n.Store(2)
	cctx, stop := l.KeepAlive(ctx, ref, "k", ttl)
	time.Sleep(2 * ttl)
	if cctx.Err() != nil {
		t.Fatalf("keepalive ended at a blip with time left: %v", context.Cause(cctx))
	}
	if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "other"}); err != nil || b.Status != ledger.Busy {
		t.Fatalf("Begin after the blip = %+v, %v; want busy (the lease kept)", b, err)
	}
	stop()
	if err := l.Settle(ctx, ref, "k", ledger.Release()); err != nil {
		t.Fatal(err)
	}

	// Redis failing for good: the keepalive ends before the lease can.
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "k3", LeaseTTL: ttl}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	blip.n.Store(1 << 20)
	cctx, stop = l.KeepAliveFrom(ctx, ref, "k3", ttl, began)
	select {
	case <-cctx.Done():
		if held := time.Since(began); held > ttl-ttl/12 {
			t.Errorf("keepalive ended %v after its Begin; want before the lease's %v, with a margin", held, ttl)
		}
	case <-time.After(2 * ttl):
		t.Fatal("keepalive went on while every extension failed")
	}
	stop()
	blip.n.Store(0)
	if err := l.Settle(ctx, ref, "k3", ledger.Release()); err != nil {
		t.Fatal(err)
	}

	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "k2", LeaseTTL: ttl}); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	leaseUntil := func() int64 {
		v, err := rdb.HGet(ctx, "orderworker:{ledger}:order:p:KA-blip", "lease_until").Int64()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := leaseUntil()
	time.Sleep(ttl * 3 / 10) // the call starts late, a third of the lease gone
	_, stop = l.KeepAliveFrom(ctx, ref, "k2", ttl, began)
	defer stop()
	time.Sleep(ttl / 6)
	// Counted from the call's start, the first extension would be due a
	// third of ttl from now: counted from the Begin, it is done.
	if got := leaseUntil(); got <= first {
		t.Errorf("lease_until %d, as the Begin set it; want it extended a third of the lease after the Begin", got)
	}
}

func TestClaimDedupesAndUnclaim(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "p", OrderNo: "C"}
	first, err := l.Claim(ctx, ref, []byte(`{}`), "h1")
	if err != nil || !first.Created {
		t.Fatal(first, err)
	}
	again, err := l.Claim(ctx, ref, []byte(`{}`), "h2")
	if err != nil || again.Created || again.ParamsHash != "h1" || again.State != ledger.StateQueued {
		t.Fatalf("second Claim = %+v, %v", again, err)
	}
	if err := l.Unclaim(ctx, ref, "not-the-token"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, ref); rec == nil {
		t.Fatal("Unclaim with another token removed the record")
	}
	// A run taking a step of the order (the task did get queued; the
	// producer only lost its answer) keeps the record, still queued
	// while it takes a snapshot.
	if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "run", NeedsKnown: true}); err != nil || b.Record.InflightMarked {
		t.Fatalf("Begin = %+v, %v", b, err)
	}
	if err := l.Unclaim(ctx, ref, first.Token); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, ref); rec == nil {
		t.Fatal("Unclaim removed a record a run holds the lease of")
	}
	if err := l.Settle(ctx, ref, "run", ledger.SetKnown([]string{"K1"})); err != nil {
		t.Fatal(err)
	}
	// Released, with the snapshot the step took: still kept.
	if err := l.Unclaim(ctx, ref, first.Token); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, ref); rec == nil {
		t.Fatal("Unclaim removed a record a step changed")
	}
	ref = ledger.Ref{Provider: "p", OrderNo: "C2"}
	if first, err = l.Claim(ctx, ref, []byte(`{}`), "h1"); err != nil || !first.Created {
		t.Fatal(first, err)
	}
	if err := l.Unclaim(ctx, ref, first.Token); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, ref); rec != nil {
		t.Fatalf("record after Unclaim: %+v", rec)
	}
	// The undo is remembered (a task queued after all is a new order);
	// a record missing otherwise was lost.
	if undone, err := l.Unclaimed(ctx, ref, first.Token); err != nil || !undone {
		t.Errorf("Unclaimed after Unclaim = %v, %v; want true", undone, err)
	}
	for _, c := range []struct {
		ref   ledger.Ref
		token string
	}{
		{ledger.Ref{Provider: "p", OrderNo: "C"}, first.Token}, // its claim was kept
		{ref, "another claim"},                                 // a later claim of the same order
		{ref, ""},
	} {
		if undone, err := l.Unclaimed(ctx, c.ref, c.token); err != nil || undone {
			t.Errorf("Unclaimed(%v, %q) = %v, %v; want false", c.ref, c.token, undone, err)
		}
	}
	lost, err := l.ClaimLost(ctx, ref, []byte(`{}`), "h1", "record lost", ledger.Lost{})
	if err != nil || !lost.Created || lost.State != ledger.StateUnknown {
		t.Fatalf("ClaimLost = %+v, %v", lost, err)
	}
}

// A record recreated after it was lost mid-step keeps what bounds the
// lookup: the first create's time and the snapshot.
func TestClaimLostKeepsTheLookupBounds(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "p", OrderNo: "LostBounds"}
	first := time.UnixMilli(time.Now().Add(-time.Minute).UnixMilli()).UTC()
	if _, err := l.ClaimLost(ctx, ref, []byte(`{}`), "h", "record lost mid-step", ledger.Lost{FirstAttempt: first, Known: []string{"A", "B"}}); err != nil {
		t.Fatal(err)
	}
	rec, err := l.Get(ctx, ref)
	if err != nil || rec == nil {
		t.Fatalf("Get = %+v, %v", rec, err)
	}
	if rec.State != ledger.StateUnknown || !rec.FirstAttemptAt.Equal(first) || !slices.Equal(rec.Known, []string{"A", "B"}) || !rec.MayExist {
		t.Errorf("recreated record: state %s, first attempt %v, known %v, may exist %v; want unknown, %v, [A B], true",
			rec.State, rec.FirstAttemptAt, rec.Known, rec.MayExist, first)
	}
}

func TestCheckDataKey(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	if err := l.CheckDataKey(ctx, ""); err != nil {
		t.Fatalf("CheckDataKey without a key, on a ledger not sealed = %v", err)
	}
	if err := l.CheckDataKey(ctx, "aaaa"); err != nil {
		t.Fatal(err)
	}
	if err := l.CheckDataKey(ctx, "aaaa"); err != nil {
		t.Fatal(err)
	}
	var mm *ledger.DataKeyMismatchError
	if err := l.CheckDataKey(ctx, "bbbb"); !errors.As(err, &mm) || mm.Want != "aaaa" {
		t.Fatalf("CheckDataKey(other) = %v, want a mismatch", err)
	}
	// Sealed now: a process without a key is refused too.
	if err := l.CheckDataKey(ctx, ""); !errors.As(err, &mm) || mm.Want != "aaaa" || mm.Have != "" || !strings.Contains(err.Error(), "has no data key") {
		t.Fatalf("CheckDataKey without a key, on a sealed ledger = %v, want a mismatch", err)
	}
}

// A producer with a data key on a ledger whose workers run without one is
// refused, writing nothing: it would seal params they cannot open, and the
// next of them to start would refuse to. Once a worker with the key
// records it, producers with it are taken; a producer with a key on a
// ledger nothing has touched records it, as before.
func TestProducerKeyOnAKeylessLedger(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	if err := l.CheckDataKey(ctx, ""); err != nil { // a worker without a key
		t.Fatal(err)
	}
	var mm *ledger.DataKeyMismatchError
	err := l.CheckProducerKey(ctx, "aaaa")
	if !errors.As(err, &mm) || mm.Want != "" || mm.Have != "aaaa" || !strings.Contains(err.Error(), "workers run without a data key") {
		t.Fatalf("CheckProducerKey on a keyless workers' ledger = %v; want a refusal saying the workers have no key", err)
	}
	if err := l.CheckDataKey(ctx, ""); err != nil {
		t.Fatalf("a keyless worker after the refused producer = %v; want nothing recorded by the refusal", err)
	}
	// The workers are given the key: the first records it.
	if err := l.CheckDataKey(ctx, "aaaa"); err != nil {
		t.Fatal(err)
	}
	if err := l.CheckProducerKey(ctx, "aaaa"); err != nil {
		t.Fatalf("CheckProducerKey after a worker recorded the key = %v", err)
	}
	if err := l.CheckProducerKey(ctx, "bbbb"); !errors.As(err, &mm) || mm.Want != "aaaa" || mm.Have != "bbbb" {
		t.Fatalf("CheckProducerKey(other) = %v; want a mismatch", err)
	}
	if err := l.CheckDataKey(ctx, ""); !errors.As(err, &mm) || mm.Want != "aaaa" {
		t.Fatalf("a keyless worker on the sealed ledger = %v; want a mismatch", err)
	}
	// A fresh ledger: the producer's key is recorded.
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := l.CheckProducerKey(ctx, "cccc"); err != nil {
		t.Fatal(err)
	}
	if err := l.CheckDataKey(ctx, "cccc"); err != nil {
		t.Fatal(err)
	}
}

// A create marked by Begin but never sent is undone: the order is back
// where it was, in its index too.
func TestUnmarkRestoresTheState(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "p", OrderNo: "U"}
	claim(t, l, ref)
	b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t"})
	if err != nil || !b.Record.InflightMarked || b.Record.MarkedFrom != ledger.StateQueued {
		t.Fatalf("Begin = %+v, %v", b.Record, err)
	}
	if err := l.Settle(ctx, ref, "t", ledger.Unmark(b.Record)); err != nil {
		t.Fatal(err)
	}
	rec, _ := l.Get(ctx, ref)
	st, _ := l.Stats(ctx, []string{"p"})
	if rec.State != ledger.StateQueued || rec.Inflight != 0 || st["p"][ledger.StateQueued].Count != 1 || st["p"][ledger.StateSubmitting].Count != 0 {
		t.Fatalf("after Unmark: %+v, stats %+v; want queued, nothing in flight", rec, st["p"])
	}
}

// Every change to paid, pending, errored or unknown appends its event in
// the same script, and nothing else does; an event reads the same every time.
func TestEventsComeWithTheirTransitions(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	a := ledger.Ref{Provider: "p", OrderNo: "EV1"}
	claim(t, l, a)
	step := func(token string, tr ledger.Transition) {
		t.Helper()
		if _, err := l.Begin(ctx, a, ledger.BeginArgs{Token: token}); err != nil {
			t.Fatal(err)
		}
		if err := l.Settle(ctx, a, token, tr); err != nil {
			t.Fatal(err)
		}
	}
	step("1", ledger.SetUnknown("timeout").WithMayExist(true))
	step("2", ledger.SetUnknown("still unknown")) // no change of state: no event
	step("3", ledger.SetPending("P1", time.Now(), time.Now().Add(time.Second)))
	step("4", ledger.Keep(""))
	step("5", ledger.SetPaid("P1").WithAttempt(&ledger.Attempt{N: 4, Call: "poll", Result: "ok"}))
	lost := ledger.Ref{Provider: "p", OrderNo: "EV2"}
	if _, err := l.ClaimLost(ctx, lost, []byte(`{}`), "h", "record lost", ledger.Lost{}); err != nil {
		t.Fatal(err)
	}
	evs, err := l.Events(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Data.OrderNo+":"+e.Type)
	}
	if want := "[EV1:order.unknown EV1:order.pending EV1:order.paid EV2:order.unknown]"; fmt.Sprint(got) != want {
		t.Fatalf("events = %v, want %s", got, want)
	}
	paid := evs[2]
	if paid.Data.ProviderOrderID != "P1" || paid.Data.Attempts != 4 || paid.Data.State != ledger.StatePaid || paid.Timestamp.IsZero() {
		t.Errorf("paid event = %+v", paid)
	}
	again, _ := l.Events(ctx, evs[0].ID, 2)
	if len(again) != 2 || again[0].ID != evs[1].ID || again[1].ID != evs[2].ID {
		t.Errorf("Events after %s = %+v, want the next two, same ids", evs[0].ID, again)
	}
	if u := evs[0]; u.Data.Reason != "timeout" || u.Data.Attempts != 0 || u.Data.ProviderOrderID != "" {
		t.Errorf("unknown event = %+v", u)
	}
	// An event carries the record's values where the transition sets none.
	kept := ledger.Ref{Provider: "p", OrderNo: "EV3"}
	claim(t, l, kept)
	for i, tr := range []ledger.Transition{
		ledger.SetPending("P3", time.Now(), time.Now().Add(time.Second)).WithAttempt(&ledger.Attempt{N: 1, Call: "submit", Result: "ok"}).WithMatched(),
		ledger.SetErrored("unpaid in time"),
	} {
		token := "k" + strconv.Itoa(i)
		if _, err := l.Begin(ctx, kept, ledger.BeginArgs{Token: token}); err != nil {
			t.Fatal(err)
		}
		if err := l.Settle(ctx, kept, token, tr); err != nil {
			t.Fatal(err)
		}
	}
	evs3, _ := l.Events(ctx, evs[len(evs)-1].ID, 10)
	if len(evs3) != 2 || evs3[1].Type != "order.errored" || evs3[1].Data.ProviderOrderID != "P3" || evs3[1].Data.Attempts != 1 || evs3[1].Data.Reason != "unpaid in time" {
		t.Errorf("events after the pending and errored steps = %+v", evs3)
	}
	// A provider order id recorded as matched stays so through later
	// transitions that say nothing of it.
	if rec, err := l.Get(ctx, kept); err != nil || !rec.Matched {
		t.Errorf("record after a matched pending step = %+v, %v; want Matched", rec, err)
	}
	if rec, _ := l.Get(ctx, a); rec.Matched {
		t.Errorf("record never matched reads Matched: %+v", rec)
	}
	body, _ := paid.Body()
	if !strings.Contains(string(body), `"type":"order.paid"`) || !strings.Contains(string(body), `"data":{"provider":"p","order_no":"EV1","state":"paid"`) {
		t.Errorf("body = %s", body)
	}
	rec, _ := l.Get(ctx, a)
	if !rec.MayExist || !rec.MayHaveBeenCreated() {
		t.Errorf("may_exist lost: %+v", rec)
	}
}

// An order stamped by a clock running ahead of the lister's (a worker's,
// a producer's) is listed: the list starts from the newest, not from the
// lister's now.
func TestListShowsOrdersStampedAhead(t *testing.T) {
	t.Parallel()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	ahead := ledger.New(rdb, &ledger.Options{Now: func() time.Time { return time.Now().Add(20 * time.Minute) }})
	claim(t, ahead, ledger.Ref{Provider: "a", OrderNo: "Ahead1"})
	page, err := ledger.New(rdb, nil).List(ctx, ledger.ListArgs{Providers: []string{"a"}, State: ledger.StateQueued})
	if err != nil || len(page.Records) != 1 || page.Records[0].OrderNo != "Ahead1" {
		t.Fatalf("List = %+v, %v; want the order stamped 20 minutes ahead", page.Records, err)
	}
}

func TestListNewestFirstWithCursor(t *testing.T) {
	t.Parallel()
	now := time.Now()
	clock := now
	rdb := taskstest.StartRedis(t, nil).Client(t)
	l := ledger.New(rdb, &ledger.Options{Now: func() time.Time { return clock }})
	for i := range 7 {
		clock = now.Add(time.Duration(i) * time.Second)
		p := "a"
		if i%2 == 1 {
			p = "b"
		}
		if _, err := l.Claim(ctx, ledger.Ref{Provider: p, OrderNo: fmt.Sprintf("L%d", i)}, []byte(`{}`), "h"); err != nil {
			t.Fatal(err)
		}
	}
	clock = now.Add(time.Minute)
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := l.List(ctx, ledger.ListArgs{Providers: []string{"a", "b"}, State: ledger.StateQueued, Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			got = append(got, r.OrderNo)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
		if pages > 5 {
			t.Fatal("cursor does not advance")
		}
	}
	if want := "[L6 L5 L4 L3 L2 L1 L0]"; fmt.Sprint(got) != want {
		t.Errorf("listed %v, want %s", got, want)
	}
	old, err := l.List(ctx, ledger.ListArgs{Providers: []string{"a", "b"}, Before: now.Add(2500 * time.Millisecond)})
	if err != nil || len(old.Records) != 3 || old.Records[0].OrderNo != "L2" {
		t.Errorf("older than 2.5s: %+v, %v; want L2 L1 L0", old.Records, err)
	}
	if _, err := l.List(ctx, ledger.ListArgs{Providers: []string{"a"}, Cursor: "garbage!"}); !errors.Is(err, ledger.ErrBadCursor) {
		t.Errorf("bad cursor: %v", err)
	}
	for _, score := range []string{"NaN", "Inf", "-Inf"} {
		c := base64.RawURLEncoding.EncodeToString([]byte(score + "\x00a\x00X"))
		if _, err := l.List(ctx, ledger.ListArgs{Providers: []string{"a"}, Cursor: c}); !errors.Is(err, ledger.ErrBadCursor) {
			t.Errorf("List with a cursor at %s = %v, want ErrBadCursor", score, err)
		}
	}
}

// Orders claimed in the same millisecond (a batch) are all listed, page
// after page, across providers, none twice and none skipped.
func TestListPagesThroughTies(t *testing.T) {
	t.Parallel()
	now := time.Now()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	l := ledger.New(rdb, &ledger.Options{Now: func() time.Time { return now }})
	var claims []ledger.ClaimArgs
	want := map[string]bool{}
	for i := range 300 {
		p := []string{"a", "b"}[i%2]
		no := fmt.Sprintf("T%03d", i)
		claims = append(claims, ledger.ClaimArgs{Ref: ledger.Ref{Provider: p, OrderNo: no}, Params: []byte(`{}`), ParamsHash: "h"})
		want[p+"/"+no] = true
	}
	if _, errs, err := l.ClaimMany(ctx, claims); err != nil || slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
		t.Fatalf("ClaimMany: %v %v", err, errs)
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := l.List(ctx, ledger.ListArgs{Providers: []string{"a", "b"}, Limit: 50, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			k := r.Provider + "/" + r.OrderNo
			if seen[k] {
				t.Errorf("%s listed twice", k)
			}
			seen[k] = true
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
		if pages > 10 {
			t.Fatal("cursor does not advance")
		}
	}
	if len(seen) != len(want) {
		t.Errorf("listed %d of %d orders claimed in one millisecond", len(seen), len(want))
	}
}

// A decision refused for the order's state writes nothing: a queued
// order's record is as it was (so its producer can still take its claim
// back), and an order about to be created is not marked in flight.
func TestRefusedResolveWritesNothing(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	key := func(ref ledger.Ref) string {
		keys, err := rdb.Keys(ctx, "*"+ref.OrderNo).Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("keys of %s = %v, %v", ref.OrderNo, keys, err)
		}
		return keys[0]
	}
	var refused *ledger.RefusedError
	q := ledger.Ref{Provider: "p", OrderNo: "RQ1"}
	res, err := l.Claim(ctx, q, []byte(`{"a":1}`), "h1")
	if err != nil || !res.Created {
		t.Fatal(res, err)
	}
	k := key(q)
	before := rdb.HGetAll(ctx, k).Val()
	for _, as := range []ledger.Resolution{ledger.ResolvePaid, ledger.ResolveAbsent} {
		if _, err := l.Resolve(ctx, q, ledger.ResolveArgs{As: as, ProviderOrderID: "PO-1", Note: "n", By: "op"}); !errors.As(err, &refused) {
			t.Fatalf("resolve %s of a queued order = %v, want refused", as, err)
		}
	}
	if after := rdb.HGetAll(ctx, k).Val(); !maps.Equal(before, after) {
		t.Errorf("a refused resolve changed the queued record:\nbefore %v\nafter  %v", before, after)
	}
	if err := l.Unclaim(ctx, q, res.Token); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, q); rec != nil {
		t.Errorf("the producer's claim could not be taken back after a refused resolve: %+v", rec)
	}

	// Submitting with nothing in flight (a retry scheduled): a refused
	// decision marks no create, even if the state changed between the
	// read and the lease (Begin with NoCreate).
	s := ledger.Ref{Provider: "p", OrderNo: "RS1"}
	claim(t, l, s)
	if _, err := l.Begin(ctx, s, ledger.BeginArgs{Token: "t1", NoCreate: true}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, s); rec.Inflight != 0 || rec.State != ledger.StateQueued || !rec.FirstAttemptAt.IsZero() {
		t.Fatalf("Begin with NoCreate marked a create: %+v", rec)
	}
	if err := l.Settle(ctx, s, "t1", ledger.SetRetry("throttled")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Resolve(ctx, s, ledger.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "PO-2", Note: "n", By: "op"}); !errors.As(err, &refused) {
		t.Fatalf("resolve paid of a submitting order = %v, want refused", err)
	}
	if rec, _ := l.Get(ctx, s); rec.Inflight != 0 || !rec.LastCreateAt.IsZero() || rec.State != ledger.StateSubmitting {
		t.Errorf("a refused resolve marked a create: %+v", rec)
	}
}

func TestResolveAndRedrive(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	mk := func(no string, tr ledger.Transition) ledger.Ref { return settled(t, l, no, tr) }
	var refused *ledger.RefusedError
	owner := mk("OWNER", ledger.SetPaid("PO-9").WithMayExist(true))
	u1 := mk("U1", ledger.SetUnknown("timeout").WithMayExist(true))
	if _, err := l.Resolve(ctx, u1, ledger.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "PO-9", Note: "found it", By: "ann"}); !errors.As(err, &refused) {
		t.Fatalf("paid with %s's id: %v, want refused", owner.OrderNo, err)
	}
	rec, err := l.Resolve(ctx, u1, ledger.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "PO-10", Note: "console shows it paid", By: "ann"})
	if err != nil || rec.State != ledger.StatePaid || rec.ProviderOrderID != "PO-10" {
		t.Fatalf("resolve paid: %+v, %v", rec, err)
	}
	last := rec.History[len(rec.History)-1]
	if last.Call != "resolve" || last.Result != "paid" || last.By != "ann" || last.Message != "console shows it paid" {
		t.Errorf("history entry = %+v", last)
	}
	if strings.Contains(rec.Reason, "ann") {
		t.Errorf("reason %q names the operator: it goes out in the order's event", rec.Reason)
	}
	if _, err := l.Resolve(ctx, u1, ledger.ResolveArgs{As: ledger.ResolveErrored, Note: "x", By: "ann"}); !errors.As(err, &refused) {
		t.Errorf("resolving a paid order: %v, want refused", err)
	}
	u2 := mk("U2", ledger.SetUnknown("timeout").WithMayExist(true).WithFailures(8))
	if err := l.Settle(ctx, u2, "none", ledger.SetKnown([]string{"K1"})); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("settle without the lease: %v", err)
	}
	if _, err := l.Begin(ctx, u2, ledger.BeginArgs{Token: "k-U2"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, u2, "k-U2", ledger.SetKnown([]string{"K1"})); err != nil {
		t.Fatal(err)
	}
	// Not absent within the listing lag of its last create: the provider
	// (its console too) may not show an order it made that recently.
	if _, err := l.Resolve(ctx, u2, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "not in the console", By: "bob", ListingLag: time.Hour}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "listing lag") {
		t.Fatalf("resolve absent a moment after its create, with an hour's listing lag: %v; want refused for the lag", err)
	}
	// Resolved absent, the order goes back to submission as a re-drive
	// sends it: its budget and deadline anew. Its identification stays:
	// a create of it may have been received, and may yet be listed.
	if rec, err := l.Resolve(ctx, u2, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "not in the console", By: "bob"}); err != nil || rec.State != ledger.StateSubmitting || rec.MayExist ||
		time.Since(rec.RedrivenAt) > time.Minute || rec.Failures != 0 || !rec.MayHaveExisted || !slices.Equal(rec.Known, []string{"K1"}) || rec.FirstAttemptAt.IsZero() {
		t.Fatalf("resolve absent: %+v, %v; want submitting, not may exist (but may have existed), no failures, the snapshot and first attempt kept, its deadline counting from now", rec, err)
	}
	pend := mk("P1", ledger.SetPending("PO-11", time.Now(), time.Now()).WithMayExist(true))
	if _, err := l.Resolve(ctx, pend, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "n", By: "bob"}); !errors.As(err, &refused) {
		t.Errorf("absent for a pending order: %v, want refused", err)
	}
	q := ledger.Ref{Provider: "p", OrderNo: "Q1"}
	claim(t, l, q)
	if _, err := l.Resolve(ctx, q, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "n", By: "bob"}); !errors.As(err, &refused) {
		t.Errorf("resolving a queued order absent: %v, want refused", err)
	}
	if rec, _ := l.Get(ctx, q); rec.State != ledger.StateQueued || rec.Inflight != 0 {
		t.Errorf("a refused resolve changed the order: %+v", rec)
	}
	// Redrive: only errored orders that surely created nothing. One no
	// create of which was ever received starts its identification anew.
	sure := mk("E1", ledger.SetErrored("invalid ItemId"))
	maybe := mk("E2", ledger.SetErrored("still unpaid after the pending window").WithMayExist(true))
	if err := l.Redrive(ctx, maybe, "carol", ""); !errors.As(err, &refused) {
		t.Errorf("redrive of an order that may exist: %v, want refused", err)
	}
	if err := l.Redrive(ctx, sure, "carol", "ItemId fixed upstream"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, sure); rec.State != ledger.StateSubmitting || rec.Failures != 0 || rec.History[len(rec.History)-1].Call != "redrive" ||
		!rec.FirstAttemptAt.IsZero() || rec.MayHaveExisted {
		t.Errorf("after redrive: %+v", rec)
	}
	// Errored after a lookup found it absent: a create may have been
	// received; its first attempt stays.
	gone := mk("E3", ledger.SetErrored("not created after 8 failed attempts").WithMayExist(false))
	if err := l.Redrive(ctx, gone, "carol", "budget raised"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, gone); rec.State != ledger.StateSubmitting || rec.FirstAttemptAt.IsZero() || !rec.MayHaveExisted {
		t.Errorf("after redrive of an order that may have existed: %+v", rec)
	}
	evs, _ := l.Events(ctx, "", 100)
	n := 0
	for _, e := range evs {
		if e.Data.OrderNo == "U1" && e.Type == "order.paid" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("resolve paid emitted %d order.paid events, want 1", n)
	}
}

// Durable writes need the master's replica count: a user that may not
// read it (no INFO) gets an error that says so, not writes taken for
// durable on a guess; with durable writes off the same user writes.
func TestDurableWritesNeedTheReplicaCount(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	admin := rs.Client(t)
	if err := admin.Do(ctx, "ACL", "SETUSER", "noinfo", "on", ">pw-noinfo", "~*", "&*", "+@all", "-info").Err(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, Username: "noinfo", Password: "pw-noinfo"})
	t.Cleanup(func() { rdb.Close() })
	_, err := ledger.New(rdb, nil).Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "N1"}, []byte(`{}`), "h")
	if err == nil || !strings.Contains(err.Error(), "INFO replication") || !strings.Contains(err.Error(), "ORDERWORKER_DURABLE_WRITES=off") {
		t.Errorf("Claim without INFO = %v, want an error naming INFO replication and the way out", err)
	}
	if n, _ := admin.Exists(ctx, "orderworker:{ledger}:order:tencent:N1").Result(); n != 0 {
		t.Error("the claim was written though its durability could not be known")
	}
	if _, err := ledger.New(rdb, &ledger.Options{Durable: ledger.DurableOff}).Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "N2"}, []byte(`{}`), "h"); err != nil {
		t.Errorf("Claim with durable writes off = %v", err)
	}
}

// With MinReplicas, a master that reports fewer replicas refuses durable
// writes before they are sent: no claim, no in-flight mark, nothing
// written; once it has them, the same writes go and wait for them.
func TestMinReplicasRefusesWritesUnsent(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	ref := ledger.Ref{Provider: "tencent", OrderNo: "MR1"}
	if _, err := ledger.New(rdb, nil).Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		keys, _ := rdb.Keys(ctx, "*").Result()
		slices.Sort(keys)
		rec := rdb.HGetAll(ctx, "orderworker:{ledger}:order:tencent:MR1").Val()
		return fmt.Sprint(keys, rec) // fmt prints a map's keys sorted
	}
	before := snapshot()
	floor := ledger.New(rdb, &ledger.Options{MinReplicas: 1})
	var few *ledger.TooFewReplicasError
	if _, err := floor.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "MR2"}, []byte(`{}`), "h"); !errors.As(err, &few) || few.Have != 0 || few.Want != 1 {
		t.Errorf("Claim on a master without replicas = %v, want TooFewReplicasError 0 < 1", err)
	} else if !strings.Contains(err.Error(), "ORDERWORKER_MIN_REPLICAS") || !strings.Contains(err.Error(), "was not sent") {
		t.Errorf("error %q does not say what to check and that the write was not sent", err)
	}
	if _, err := floor.Begin(ctx, ref, ledger.BeginArgs{Token: "t1", LeaseTTL: time.Minute}); !errors.As(err, &few) {
		t.Errorf("Begin on a master without replicas = %v, want TooFewReplicasError", err)
	}
	if after := snapshot(); after != before {
		t.Errorf("refused writes changed Redis:\nbefore %s\nafter  %s", before, after)
	}
	// Reads and non-durable writes are not refused.
	if rec, err := floor.Get(ctx, ref); err != nil || rec.State != ledger.StateQueued {
		t.Errorf("Get = %+v, %v", rec, err)
	}

	// The same ledger, at once: a count read under 5s ago is read again
	// before a write is refused.
	rep := rs.AttachReplica(t)
	fresh := floor
	if _, err := fresh.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "MR3"}, []byte(`{}`), "h"); err != nil {
		t.Fatalf("Claim with a replica = %v", err)
	}
	if n, _ := rep.Client(t).Exists(ctx, "orderworker:{ledger}:order:tencent:MR3").Result(); n != 1 {
		t.Error("the claim was acknowledged before the replica had it")
	}
	b, err := fresh.Begin(ctx, ref, ledger.BeginArgs{Token: "t2", LeaseTTL: time.Minute})
	if err != nil || b.Status != ledger.Began {
		t.Errorf("Begin with a replica = %+v, %v", b, err)
	}
	// Two required, one reported: refused again.
	two := ledger.New(rdb, &ledger.Options{MinReplicas: 2})
	if _, err := two.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "MR4"}, []byte(`{}`), "h"); !errors.As(err, &few) || few.Have != 1 || few.Want != 2 {
		t.Errorf("Claim needing 2 replicas of 1 = %v, want TooFewReplicasError 1 < 2", err)
	}
}

// A master this ledger saw with a replica that now reports none (cut off
// from it while it was promoted: a split brain) takes no durable write,
// with the default MinReplicas of 0: a create marked there would be one
// the promoted master never sees, and sent again. The promoted master,
// with no replica of its own yet, takes them.
func TestMasterThatLostItsReplicasRefusesDurableWrites(t *testing.T) {
	t.Parallel()
	old := taskstest.StartRedis(t, nil)
	rep := old.AttachReplica(t)
	l := ledger.New(old.Client(t), nil)
	ref := ledger.Ref{Provider: "tencent", OrderNo: "SB1"}
	if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
		t.Fatalf("Claim with a replica = %v", err)
	}
	// Recorded for other processes (in the background).
	for end := time.Now().Add(5 * time.Second); old.Client(t).Exists(ctx, "orderworker:{ledger}:replicated").Val() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the master was not recorded as seen with replicas")
		}
	}
	// The replica is promoted; the old master loses it.
	if err := rep.Client(t).Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info := old.Client(t).Info(ctx, "replication").Val()
		if strings.Contains(info, "connected_slaves:0") {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the old master still reports its replica:\n%s", info)
		}
	}
	// A count read before the loss may still stand for a few seconds:
	// meanwhile a write waits for the replica in vain (ErrNotDurable, on
	// which no create is sent); then it is refused unsent.
	var few *ledger.TooFewReplicasError
	err := beginUntilRefused(l, ref)
	if !errors.As(err, &few) || !few.HadReplicas || few.Want != 1 || few.Have != 0 {
		t.Fatalf("Begin on the cut-off master = %v, want TooFewReplicasError having had replicas", err)
	}
	if !strings.Contains(err.Error(), "re-attach") || !strings.Contains(err.Error(), "was not sent") {
		t.Errorf("error %q does not say that nothing was sent and when writes resume", err)
	}
	if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "SB2"}, []byte(`{}`), "h"); !errors.As(err, &few) {
		t.Errorf("Claim on the cut-off master = %v, want TooFewReplicasError", err)
	}
	// So does a process started after the cut (a producer run once, a
	// worker restarted): the master was recorded as seen with replicas.
	if _, err := ledger.New(old.Client(t), nil).Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "SB2"}, []byte(`{}`), "h"); !errors.As(err, &few) || !few.HadReplicas {
		t.Errorf("Claim on the cut-off master from a new process = %v, want TooFewReplicasError having had replicas", err)
	}
	// Held only to the most each master was seen with (NoAutoFloor; by
	// default it waits for a replica of its own), the promoted master
	// takes writes (its own id was never seen with replicas), for a new
	// process too.
	promoted := ledger.New(rep.Client(t), seenOnly())
	if b, err := promoted.Begin(ctx, ref, ledger.BeginArgs{Token: "t2", LeaseTTL: time.Minute}); err != nil || b.Status != ledger.Began {
		t.Errorf("Begin on the promoted master = %+v, %v", b, err)
	}
	// A replica attached again: the old master takes writes again.
	old.AttachReplica(t)
	if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "SB3"}, []byte(`{}`), "h"); err != nil {
		t.Errorf("Claim once a replica re-attached = %v", err)
	}
}

// A master seen with two replicas that now reports one is held to two: the
// one it lost may be promoted without the writes it would take (a replica
// stopped or lagging that a failover then promotes, or one promoted on the
// other side of a split brain while this master keeps the other). A
// process started after the loss is held too, by what was recorded; with
// ORDERWORKER_MIN_REPLICAS=0 (NoReplicaFloor) the writes go on.
func TestMasterHeldToTheMostReplicasSeen(t *testing.T) {
	t.Parallel()
	m := taskstest.StartRedis(t, nil)
	m.AttachReplica(t)
	lost := m.AttachReplica(t)
	l := ledger.New(m.Client(t), nil)
	ref := ledger.Ref{Provider: "tencent", OrderNo: "H1"}
	if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
		t.Fatalf("Claim with two replicas = %v", err)
	}
	for end := time.Now().Add(5 * time.Second); m.Client(t).HGet(ctx, "orderworker:{ledger}:replicated", masterReplid(t, m)).Val() != "2"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the master was not recorded as seen with two replicas: %v", m.Client(t).HGetAll(ctx, "orderworker:{ledger}:replicated").Val())
		}
	}
	if err := lost.Client(t).Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); !strings.Contains(m.Client(t).Info(ctx, "replication").Val(), "connected_slaves:1"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the master still reports two replicas")
		}
	}
	var few *ledger.TooFewReplicasError
	err := beginUntilRefused(l, ref)
	if !errors.As(err, &few) || !few.HadReplicas || few.Want != 2 || few.Have != 1 {
		t.Fatalf("Begin on a master that lost one of two replicas = %v, want TooFewReplicasError (have 1, want 2)", err)
	}
	for _, o := range []*ledger.Options{nil, {MinReplicas: 1}} {
		if _, err := ledger.New(m.Client(t), o).Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "H2"}, []byte(`{}`), "h"); !errors.As(err, &few) || few.Want != 2 {
			t.Errorf("Claim from a new process (%+v) = %v, want TooFewReplicasError (want 2)", o, err)
		}
	}
	if _, err := ledger.New(m.Client(t), &ledger.Options{MinReplicas: ledger.NoReplicaFloor}).Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "H3"}, []byte(`{}`), "h"); err != nil {
		t.Errorf("Claim with no floor = %v, want it accepted", err)
	}
	// An earlier version recorded a time: seen with replicas, held to one.
	if err := m.Client(t).HSet(ctx, "orderworker:{ledger}:replicated", masterReplid(t, m), time.Now().UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.New(m.Client(t), nil).Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "H4"}, []byte(`{}`), "h"); err != nil {
		t.Errorf("Claim with one replica, recorded by an earlier version = %v, want it accepted", err)
	}
	// Both replicas again: writes go on.
	m.AttachReplica(t)
	if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "H5"}, []byte(`{}`), "h"); err != nil {
		t.Errorf("Claim once two replicas are attached again = %v", err)
	}
}

// A replica that attached while no write was made, and left before the
// next, still holds its master: WatchReplicas (a worker runs it every
// second) counts it as seen, so the writes after it are refused while it is
// gone, not taken on the one replica left, which a failover to the stale one
// would lose (a black-box run: 60 accepted orders lost, then created twice
// when their producer sent them again).
func TestReplicaSeenBetweenWritesHoldsTheMaster(t *testing.T) {
	t.Parallel()
	m := taskstest.StartRedis(t, nil)
	m.AttachReplica(t)
	l := ledger.New(m.Client(t), nil)
	if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "S1"}, []byte(`{}`), "h"); err != nil {
		t.Fatalf("Claim with one replica = %v", err)
	}
	late := m.AttachReplica(t) // no write while it is attached
	for end := time.Now().Add(5 * time.Second); m.Client(t).HGet(ctx, "orderworker:{ledger}:replicated", masterReplid(t, m)).Val() != "2"; time.Sleep(100 * time.Millisecond) {
		// As a worker does, every second (here more often).
		if err := l.WatchReplicas(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(end) {
			t.Fatalf("the master was not recorded as seen with two replicas: %v", m.Client(t).HGetAll(ctx, "orderworker:{ledger}:replicated").Val())
		}
	}
	if err := late.Client(t).Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); !strings.Contains(m.Client(t).Info(ctx, "replication").Val(), "connected_slaves:1"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the master still reports two replicas")
		}
	}
	var few *ledger.TooFewReplicasError
	if _, err := ledger.New(m.Client(t), nil).Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "S2"}, []byte(`{}`), "h"); !errors.As(err, &few) || few.Want != 2 || few.Have != 1 {
		t.Fatalf("Claim after the replica seen between writes left = %v, want TooFewReplicasError (have 1, want 2)", err)
	}
}

// beginUntilRefused begins a step of ref until the answer is other than
// ErrNotDurable (a replica count read before a loss may stand for a few
// seconds, and meanwhile a write waits for the replica in vain), for at
// most 15 s, and returns that answer.
func beginUntilRefused(l *ledger.Ledger, ref ledger.Ref) error {
	var err error
	for end := time.Now().Add(15 * time.Second); ; {
		_, err = l.Begin(ctx, ref, ledger.BeginArgs{Token: "t1", LeaseTTL: time.Minute})
		if !errors.Is(err, ledger.ErrNotDurable) || time.Now().After(end) {
			return err
		}
	}
}

func masterReplid(t *testing.T, s *taskstest.Server) string {
	t.Helper()
	return infoOf(t, s, "replication", "master_replid")
}

// infoOf is field's value in section of s's INFO.
func infoOf(t *testing.T, s *taskstest.Server, section, field string) string {
	t.Helper()
	for line := range strings.SplitSeq(s.Client(t).Info(ctx, section).Val(), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	t.Fatalf("no %s in INFO %s", field, section)
	return ""
}

// The replica counts read after writes are paired with the replication
// id of the server they came from: after a failover under load (every
// write's pipeline reads the count, so the ledger reads no INFO of its
// own), the new master's replicas are credited to it, and a cut-off new
// master is held to them.
func TestFloorFollowsTheMasterAcrossAFailoverUnderLoad(t *testing.T) {
	t.Parallel()
	a := taskstest.StartRedis(t, nil)
	a.AttachReplica(t)
	b := taskstest.StartRedis(t, nil)
	repB := b.AttachReplica(t)
	var target atomic.Value
	target.Store(a.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: "master:0", ConnMaxLifetime: 50 * time.Millisecond,
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, target.Load().(string))
		}})
	t.Cleanup(func() { rdb.Close() })
	l := ledger.New(rdb, seenOnly())
	claim := func(no string) error {
		_, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: no}, []byte(`{}`), "h")
		return err
	}
	if err := claim("F0"); err != nil {
		t.Fatal(err)
	}
	target.Store(b.Addr) // the failover: the client now reaches B
	for i := range 30 {
		if err := claim(fmt.Sprintf("F%d", i+1)); err != nil {
			t.Fatalf("claim on B with its replica: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// B is cut off from its replica, which is promoted.
	if err := repB.Client(t).Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); !strings.Contains(b.Client(t).Info(ctx, "replication").Val(), "connected_slaves:0"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("B still reports its replica")
		}
	}
	var err error
	for end := time.Now().Add(15 * time.Second); ; {
		if err = claim("F-cut"); !errors.Is(err, ledger.ErrNotDurable) || time.Now().After(end) {
			break
		}
	}
	var few *ledger.TooFewReplicasError
	if !errors.As(err, &few) || !few.HadReplicas {
		t.Errorf("claim on B cut off from the replica it was seen with = %v; want TooFewReplicasError having had replicas", err)
	}
}

func TestParseDurable(t *testing.T) {
	for _, c := range []struct {
		durable, min string
		d            ledger.Durability
		n            int64
		err          string
	}{
		{"", "", ledger.DurableAuto, 0, ""},
		{"auto", "1", ledger.DurableAuto, 1, ""},
		{" OFF ", "0", ledger.DurableOff, ledger.NoReplicaFloor, ""},
		{"auto", "0", ledger.DurableAuto, ledger.NoReplicaFloor, ""},
		{"auto", "00", ledger.DurableAuto, ledger.NoReplicaFloor, ""},
		{"auto", " Auto ", ledger.DurableAuto, 0, ""},
		{"off", "", ledger.DurableOff, 0, ""},
		{"off", "1", 0, 0, "needs ORDERWORKER_DURABLE_WRITES=auto"},
		{"auto", "-1", 0, 0, "ORDERWORKER_MIN_REPLICAS"},
		{"auto", "one", 0, 0, "ORDERWORKER_MIN_REPLICAS"},
		{"auto", "1.5", 0, 0, "ORDERWORKER_MIN_REPLICAS"},
		{"sometimes", "", 0, 0, "ORDERWORKER_DURABLE_WRITES"},
	} {
		d, n, err := ledger.ParseDurable(c.durable, c.min)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseDurable(%q, %q) = %v, want an error naming %s", c.durable, c.min, err, c.err)
			}
			continue
		}
		if err != nil || d != c.d || n != c.n {
			t.Errorf("ParseDurable(%q, %q) = %v, %d, %v; want %v, %d", c.durable, c.min, d, n, err, c.d, c.n)
		}
	}
}

// Leases are judged on Redis's clock: a worker whose clock runs an hour
// ahead does not take an order another worker holds, and one whose clock
// runs an hour behind takes it as soon as the lease has run out.
func TestLeasesUseRedisClock(t *testing.T) {
	t.Parallel()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	l := ledger.New(rdb, nil)
	ahead := ledger.New(rdb, &ledger.Options{Now: func() time.Time { return time.Now().Add(time.Hour) }})
	behind := ledger.New(rdb, &ledger.Options{Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	ref := ledger.Ref{Provider: "tencent", OrderNo: "Clock1"}
	if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "holder", LeaseTTL: 400 * time.Millisecond}); err != nil || b.Status != ledger.Began {
		t.Fatal(b, err)
	}
	if b, err := ahead.Begin(ctx, ref, ledger.BeginArgs{Token: "ahead", LeaseTTL: time.Second}); err != nil || b.Status != ledger.Busy {
		t.Errorf("Begin from a clock an hour ahead = %+v, %v; want busy", b, err)
	}
	time.Sleep(500 * time.Millisecond)
	b, err := behind.Begin(ctx, ref, ledger.BeginArgs{Token: "behind", LeaseTTL: time.Second})
	if err != nil || b.Status != ledger.Began {
		t.Errorf("Begin from a clock an hour behind, after the lease ran out = %+v, %v; want began", b, err)
	}
	// Its keepalive extends the lease on Redis's clock too.
	kctx, stop := behind.KeepAlive(ctx, ref, "behind", 300*time.Millisecond)
	time.Sleep(700 * time.Millisecond)
	if b, err := ahead.Begin(ctx, ref, ledger.BeginArgs{Token: "ahead2", LeaseTTL: time.Second}); err != nil || b.Status != ledger.Busy || kctx.Err() != nil {
		t.Errorf("Begin while a keepalive holds the lease = %+v, %v (keepalive %v); want busy", b, err, kctx.Err())
	}
	stop()
}

// A duplicate answer is as durable as a created one: with the replica
// hung, a claim of an order already on the master answers ErrNotDurable,
// not duplicate (a failover now could lose the record it reports).
func TestDuplicateClaimWaitsForTheReplicas(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	rep := rs.AttachReplica(t)
	l := ledger.New(rdb, &ledger.Options{WaitTimeout: 300 * time.Millisecond})
	ref := ledger.Ref{Provider: "tencent", OrderNo: "Dup1"}
	many := []ledger.ClaimArgs{{Ref: ledger.Ref{Provider: "tencent", OrderNo: "Dup2"}, Params: []byte(`{}`), ParamsHash: "h"}}
	rep.Pause(t)
	if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); !errors.Is(err, ledger.ErrNotDurable) {
		t.Fatalf("Claim with the replica hung = %v, want ErrNotDurable", err)
	}
	if cr, err := l.Claim(ctx, ref, []byte(`{}`), "h"); cr.Created || !errors.Is(err, ledger.ErrNotDurable) {
		t.Errorf("the same claim again with the replica hung = %+v, %v; want a duplicate and ErrNotDurable", cr, err)
	}
	if _, errs, err := l.ClaimMany(ctx, many); err != nil || !errors.Is(errs[0], ledger.ErrNotDurable) {
		t.Fatalf("ClaimMany with the replica hung = %v, %v", errs, err)
	}
	if res, errs, err := l.ClaimMany(ctx, many); err != nil || res[0].Created || !errors.Is(errs[0], ledger.ErrNotDurable) {
		t.Errorf("ClaimMany again with the replica hung = %+v, %v, %v; want a duplicate and ErrNotDurable", res, errs, err)
	}
	rep.Resume()
	cr := claimOnceDurable(t, l, ref)
	if cr.Created || cr.State != ledger.StateQueued {
		t.Errorf("Claim once the replica is back = %+v; want a duplicate, queued", cr)
	}
}

// claimOnceDurable claims ref until the claim is acknowledged (replicas
// catching up), for up to 10 seconds.
func claimOnceDurable(t *testing.T, l *ledger.Ledger, ref ledger.Ref) ledger.ClaimResult {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cr, err := l.Claim(ctx, ref, []byte(`{}`), "h")
		if err == nil {
			return cr
		}
		if time.Now().After(deadline) {
			t.Fatalf("Claim of %s once the replicas are back = %v", ref.OrderNo, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The replica count a durable write waits for is read at most every few
// seconds; a replica that attached since must be reached too (a failover
// could promote it): the INFO after the WAIT tells, and the write does
// not count until every replica has it.
func TestDurableWriteNeedsAReplicaThatJustAttached(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	rs.AttachReplica(t)
	late := taskstest.StartRedis(t, nil) // started now, attached below
	l := ledger.New(rdb, &ledger.Options{WaitTimeout: 300 * time.Millisecond})
	if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "Att1"}, []byte(`{}`), "h"); err != nil {
		t.Fatal(err) // the count, one replica, is read and kept
	}
	host, port, _ := net.SplitHostPort(rs.Addr)
	if err := late.Client(t).Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		t.Fatal(err)
	}
	for strings.Count(rdb.Info(ctx, "replication").Val(), "state=online") < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	late.Pause(t)
	if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "Att2"}, []byte(`{}`), "h"); !errors.Is(err, ledger.ErrNotDurable) {
		t.Errorf("Claim with a second replica attached and hung = %v, want ErrNotDurable", err)
	}
	many := []ledger.ClaimArgs{{Ref: ledger.Ref{Provider: "tencent", OrderNo: "Att3"}, Params: []byte(`{}`), ParamsHash: "h"}}
	if _, errs, err := l.ClaimMany(ctx, many); err != nil || !errors.Is(errs[0], ledger.ErrNotDurable) {
		t.Errorf("ClaimMany with a second replica attached and hung = %v, %v; want ErrNotDurable", errs, err)
	}
	late.Resume()
	claimOnceDurable(t, l, ledger.Ref{Provider: "tencent", OrderNo: "Att2"})
}

// When a create left is stamped on Redis's clock, and Begin tells the
// caller Redis's time (ReadAt): a worker whose clock is minutes off still
// judges the listing lag against the create's real age.
func TestCreateTimesOnRedisClock(t *testing.T) {
	t.Parallel()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	for _, skew := range []time.Duration{-3 * time.Minute, 3 * time.Minute} {
		l := ledger.New(rdb, &ledger.Options{Now: func() time.Time { return time.Now().Add(skew) }})
		ref := ledger.Ref{Provider: "p", OrderNo: "Skew" + skew.String()}
		claim(t, l, ref)
		b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t"})
		if err != nil || !b.Record.InflightMarked {
			t.Fatalf("Begin = %+v, %v", b, err)
		}
		near := func(at time.Time) bool { d := time.Since(at); return d > -5*time.Second && d < 5*time.Second }
		if !near(b.Record.ReadAt) || !near(b.Record.LastCreateAt) {
			t.Errorf("skew %s: ReadAt %s, LastCreateAt %s; want Redis's time, now", skew, b.Record.ReadAt, b.Record.LastCreateAt)
		}
		if err := l.Settle(ctx, ref, "t", ledger.SetUnknown("timeout").WithMayExist(true)); err != nil {
			t.Fatal(err)
		}
		rec, _ := l.Get(ctx, ref)
		if !near(rec.LastCreateAt) {
			t.Errorf("skew %s: recorded last_create %s, want Redis's time, now", skew, rec.LastCreateAt)
		}
		if !near(rec.ReadAt) {
			t.Errorf("skew %s: Get's ReadAt %s, want Redis's time, now", skew, rec.ReadAt)
		}
		// A record recreated after Redis lost it counts its lost create
		// from its recreation, on Redis's clock too.
		lost := ledger.Ref{Provider: "p", OrderNo: "Lost" + skew.String()}
		if _, err := l.ClaimLost(ctx, lost, []byte(`{}`), "h", "lost", ledger.Lost{}); err != nil {
			t.Fatal(err)
		}
		if rec, _ := l.Get(ctx, lost); !near(rec.LastCreateAt) {
			t.Errorf("skew %s: a lost record's last_create %s, want Redis's time, now", skew, rec.LastCreateAt)
		}
	}
}

// Afresh forgets the snapshot and the first attempt's time, so the next
// create takes a new snapshot (Begin does not mark it before one).
func TestAfreshForgetsTheSnapshot(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "aliyun", OrderNo: "A1"}
	claim(t, l, ref)
	need := ledger.BeginArgs{Token: "t1", NeedsKnown: true}
	if b, err := l.Begin(ctx, ref, need); err != nil || b.Record.InflightMarked {
		t.Fatalf("Begin without a snapshot = %+v, %v; want no mark", b, err)
	}
	if err := l.Settle(ctx, ref, "t1", ledger.SetKnown([]string{"K1"})); err != nil {
		t.Fatal(err)
	}
	need.Token = "t2"
	b, err := l.Begin(ctx, ref, need)
	if err != nil || !b.Record.InflightMarked {
		t.Fatalf("Begin with a snapshot = %+v, %v; want the create marked", b, err)
	}
	if err := l.Settle(ctx, ref, "t2", ledger.SetRetry("throttled").Afresh()); err != nil {
		t.Fatal(err)
	}
	rec, _ := l.Get(ctx, ref)
	if rec.State != ledger.StateSubmitting || rec.Known != nil || !rec.FirstAttemptAt.IsZero() || rec.Inflight != 0 {
		t.Fatalf("after Afresh: state %s, known %v, first attempt %s, inflight %d; want submitting with neither", rec.State, rec.Known, rec.FirstAttemptAt, rec.Inflight)
	}
	need.Token = "t3"
	if b, err := l.Begin(ctx, ref, need); err != nil || b.Record.InflightMarked {
		t.Fatalf("Begin after Afresh = %+v, %v; want no mark before a new snapshot", b, err)
	}
}

// The listing lag after a pay counts from when the pay ended, as a
// create's does: the provider may take it at any time while the request
// is open. A pay whose run never settled it counts from when that run's
// lease ran out. A pay the provider accepted stays accepted when its mark
// moves.
func TestPayLagCountsFromThePaysEnd(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ctx := context.Background()
	const lag = 300 * time.Millisecond
	pending := func(ref ledger.Ref) {
		t.Helper()
		if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "c"}); err != nil {
			t.Fatal(err)
		}
		if err := l.Settle(ctx, ref, "c", ledger.SetPending("P1", time.Now(), time.Now().Add(time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	pay := func(ref ledger.Ref, token string, ttl time.Duration) ledger.BeginResult {
		t.Helper()
		b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: token, Pay: true, PayAgainAfter: lag, LeaseTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ref := ledger.Ref{Provider: "tencent", OrderNo: "PayEnd"}
	pending(ref)
	b := pay(ref, "p1", 0)
	mark := b.Record.PaySentAt
	time.Sleep(lag + 100*time.Millisecond) // the pay open longer than the lag
	if err := l.Settle(ctx, ref, "p1", ledger.SetPending("P1", time.Now(), time.Now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if b = pay(ref, "p2", 0); b.Record.PayMarked || b.Record.PaySentAt.Sub(mark) < lag+100*time.Millisecond {
		t.Fatalf("a pay step right after a pay that took longer than the lag ended: marked %v, pay sent %v (marked %v); want no pay, the mark moved to the end", b.Record.PayMarked, b.Record.PaySentAt, mark)
	}
	if err := l.Settle(ctx, ref, "p2", ledger.Keep("")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(lag + 50*time.Millisecond)
	if b = pay(ref, "p3", 0); !b.Record.PayMarked {
		t.Fatalf("a pay step a lag after the pay ended: %+v; want the pay marked", b.Record)
	}
	time.Sleep(20 * time.Millisecond)
	if err := l.Settle(ctx, ref, "p3", ledger.SetPending("P1", time.Now(), time.Now().Add(time.Minute)).WithPayAccepted(b.Record.PaySentAt)); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, ref); !rec.PayAccepted() || !rec.PaySentAt.After(b.Record.PaySentAt) {
		t.Errorf("an accepted pay: accepted %v, pay sent %v (marked %v); want it accepted, its mark moved to the end", rec.PayAccepted(), rec.PaySentAt, b.Record.PaySentAt)
	}

	killed := ledger.Ref{Provider: "unicloud", OrderNo: "PayKilled"}
	pending(killed)
	b = pay(killed, "k1", 200*time.Millisecond) // never settled
	mark = b.Record.PaySentAt
	time.Sleep(250 * time.Millisecond)
	if b = pay(killed, "k2", 0); b.Record.PayMarked || b.Record.PaySentAt.Sub(mark) < 200*time.Millisecond {
		t.Fatalf("a pay step after a pay whose run never settled: marked %v, pay sent %v (marked %v); want no pay, the mark moved to when its lease ran out", b.Record.PayMarked, b.Record.PaySentAt, mark)
	}
	if err := l.Settle(ctx, killed, "k2", ledger.Keep("")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(lag + 50*time.Millisecond)
	if b = pay(killed, "k3", 0); !b.Record.PayMarked {
		t.Fatalf("a pay step a lag after the unsettled pay's lease ran out: %+v; want the pay marked", b.Record)
	}
}

// A pay step's Begin marks the pay sent once: the same Begin asked again
// (its reply lost) still reports its mark, a later step finds the mark and
// marks nothing, and Unmark or ClearPaySent (a pay that did not leave)
// puts back the mark of an earlier pay that did, or forgets it.
func TestBeginMarksAPayOnce(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ctx := context.Background()
	ref := ledger.Ref{Provider: "tencent", OrderNo: "PAY1"}
	if _, err := l.Claim(ctx, ref, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t0"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, ref, "t0", ledger.SetPending("P1", time.Now(), time.Now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t1"}); err != nil || b.Record.PayMarked {
		t.Fatalf("a step not told to pay: %+v, %v; want no pay marked", b.Record, err)
	}
	if err := l.Settle(ctx, ref, "t1", ledger.Keep("")); err != nil {
		t.Fatal(err)
	}
	b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t2", Pay: true, PayAgainAfter: time.Hour})
	if err != nil || !b.Record.PayMarked || b.Record.PaySentAt.IsZero() {
		t.Fatalf("pay step: %+v, %v; want the pay marked", b.Record, err)
	}
	if again, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t2", Pay: true, PayAgainAfter: time.Hour}); err != nil || !again.Record.PayMarked {
		t.Fatalf("the same Begin again: %+v, %v; want its mark reported", again.Record, err)
	}
	if err := l.Settle(ctx, ref, "t2", ledger.Keep("")); err != nil {
		t.Fatal(err)
	}
	b, err = l.Begin(ctx, ref, ledger.BeginArgs{Token: "t3", Pay: true, PayAgainAfter: time.Hour})
	if err != nil || b.Record.PayMarked || b.Record.PaySentAt.IsZero() {
		t.Fatalf("a pay step within an hour of a pay: %+v, %v; want the earlier mark seen, none made", b.Record, err)
	}
	if err := l.Settle(ctx, ref, "t3", ledger.Keep("")); err != nil {
		t.Fatal(err)
	}
	if b, err = l.Begin(ctx, ref, ledger.BeginArgs{Token: "t3b", Pay: true}); err != nil || b.Record.PayMarked {
		t.Fatalf("a pay step never to pay again: %+v, %v; want none made", b.Record, err)
	}
	if err := l.Settle(ctx, ref, "t3b", ledger.Keep("")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	first := b.Record.PaySentAt
	b, err = l.Begin(ctx, ref, ledger.BeginArgs{Token: "t3c", Pay: true, PayAgainAfter: time.Millisecond})
	if err != nil || !b.Record.PayMarked || !b.Record.PaySentAt.After(first) {
		t.Fatalf("a pay step past PayAgainAfter: %+v, %v; want the pay marked anew", b.Record, err)
	}
	if !b.Record.PaySentBefore.Equal(first) {
		t.Fatalf("a pay marked anew: the mark it replaced %v, want the earlier pay's %v", b.Record.PaySentBefore, first)
	}
	// That pay refused before the provider acted: the mark goes back to
	// the earlier pay's, which did leave.
	if b.Record.Pays != 2 {
		t.Fatalf("a pay marked anew: %d pays counted, want 2", b.Record.Pays)
	}
	if err := l.Settle(ctx, ref, "t3c", ledger.Keep("").ClearPaySent(b.Record.PaySentBefore, b.Record.Pays)); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, ref); !rec.PaySentAt.Equal(first) || rec.Pays != 1 {
		t.Fatalf("after a refused pay: pay sent %v, %d pays counted; want the earlier pay's %v, 1 (the refused one not counted)", rec.PaySentAt, rec.Pays, first)
	}
	b, err = l.Begin(ctx, ref, ledger.BeginArgs{Token: "t3d", Pay: true, PayAgainAfter: time.Millisecond})
	if err != nil || !b.Record.PayMarked {
		t.Fatalf("a pay step past PayAgainAfter: %+v, %v; want the pay marked anew", b.Record, err)
	}
	// The same Begin again (its reply lost) reports the same marks: its
	// own, and the earlier pay's it replaced.
	mark := b.Record.PaySentAt
	if b, err = l.Begin(ctx, ref, ledger.BeginArgs{Token: "t3d", Pay: true, PayAgainAfter: time.Millisecond}); err != nil ||
		!b.Record.PayMarked || !b.Record.PaySentAt.Equal(mark) || !b.Record.PaySentBefore.Equal(first) {
		t.Fatalf("the same Begin again: %+v, %v; want its mark %v and the earlier pay's %v", b.Record, err, mark, first)
	}
	if err := l.Settle(ctx, ref, "t3d", ledger.Unmark(b.Record)); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, ref); !rec.PaySentAt.Equal(first) || rec.State != ledger.StatePending {
		t.Errorf("after Unmark of a second pay: pay sent %v, state %s; want the earlier pay's %v, pending", rec.PaySentAt, rec.State, first)
	}
	// A pay the provider accepted is never marked again, however long ago.
	b, err = l.Begin(ctx, ref, ledger.BeginArgs{Token: "t3e", Pay: true, PayAgainAfter: time.Millisecond})
	if err != nil || !b.Record.PayMarked {
		t.Fatalf("a pay step past PayAgainAfter: %+v, %v; want the pay marked anew", b.Record, err)
	}
	if err := l.Settle(ctx, ref, "t3e", ledger.SetPending("P1", time.Now(), time.Now().Add(time.Minute)).WithPayAccepted(b.Record.PaySentAt)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	b, err = l.Begin(ctx, ref, ledger.BeginArgs{Token: "t3f", Pay: true, PayAgainAfter: time.Millisecond})
	if err != nil || b.Record.PayMarked || !b.Record.PayAccepted() {
		t.Fatalf("a pay step after an accepted pay: %+v, %v; want none marked, the pay accepted", b.Record, err)
	}
	if err := l.Settle(ctx, ref, "t3f", ledger.Keep("")); err != nil {
		t.Fatal(err)
	}

	// An order never paid before: the mark of a pay not sent is forgotten.
	ref2 := ledger.Ref{Provider: "tencent", OrderNo: "PAY2"}
	if _, err := l.Claim(ctx, ref2, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Begin(ctx, ref2, ledger.BeginArgs{Token: "u0"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, ref2, "u0", ledger.SetPending("P2", time.Now(), time.Now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	for i, unmark := range []func(*ledger.Record) ledger.Transition{
		ledger.Unmark,
		func(r *ledger.Record) ledger.Transition { return ledger.Keep("").ClearPaySent(r.PaySentBefore, r.Pays) },
	} {
		tok := fmt.Sprintf("u%d", i+1)
		b, err = l.Begin(ctx, ref2, ledger.BeginArgs{Token: tok, Pay: true})
		if err != nil || !b.Record.PayMarked || !b.Record.PaySentBefore.IsZero() {
			t.Fatalf("first pay step of PAY2: %+v, %v; want the pay marked, no earlier one", b.Record, err)
		}
		if b, err = l.Begin(ctx, ref2, ledger.BeginArgs{Token: tok, Pay: true}); err != nil || !b.Record.PayMarked || !b.Record.PaySentBefore.IsZero() {
			t.Fatalf("the same Begin again: %+v, %v; want its mark, no earlier one", b.Record, err)
		}
		if err := l.Settle(ctx, ref2, tok, unmark(b.Record)); err != nil {
			t.Fatal(err)
		}
		if rec, _ := l.Get(ctx, ref2); !rec.PaySentAt.IsZero() || rec.State != ledger.StatePending {
			t.Errorf("after giving back the only pay's mark (%d): pay sent %v, state %s; want no mark, pending", i, rec.PaySentAt, rec.State)
		}
	}
}

// A Begin asked again with its token (a client's retry after its reply was
// lost) reports the marks the first one wrote, so it must be as durable:
// with the replica hung it answers ErrNotDurable, not a mark the replica
// may never have had (a pay would then leave on it, and a failover could
// let a second one go).
func TestRetriedBeginWaitsForTheReplicas(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	rep := rs.AttachReplica(t)
	l := ledger.New(rdb, &ledger.Options{WaitTimeout: 300 * time.Millisecond})
	ref := ledger.Ref{Provider: "tencent", OrderNo: "Retry1"}
	claimOnceDurable(t, l, ref)
	rep.Pause(t)
	if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t1"}); !errors.Is(err, ledger.ErrNotDurable) || !b.Record.InflightMarked {
		t.Fatalf("Begin with the replica hung = %+v, %v; want the create marked and ErrNotDurable", b.Record, err)
	}
	other := ledger.New(rs.Client(t), &ledger.Options{WaitTimeout: 300 * time.Millisecond})
	if b, err := other.Begin(ctx, ref, ledger.BeginArgs{Token: "t1"}); !errors.Is(err, ledger.ErrNotDurable) || !b.Record.InflightMarked {
		t.Errorf("the same Begin again, on another connection, with the replica hung = %+v, %v; want the mark and ErrNotDurable", b.Record, err)
	}
	rep.Resume()
}

// EventsOnReplicas confirms a page of events with a durable write made
// after them on the master that still holds them: nil once the replica
// acknowledged it, ErrNotDurable when the master no longer holds the last
// event read (as after a failover to a replica it had not reached).
func TestEventsOnReplicas(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rs.AttachReplica(t)
	rdb := rs.Client(t)
	l := ledger.New(rdb, nil)
	ref := ledger.Ref{Provider: "p", OrderNo: "EOR1"}
	claim(t, l, ref)
	if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, ref, "t", ledger.SetPaid("P1")); err != nil {
		t.Fatal(err)
	}
	p, err := l.ReadEvents(ctx, "", 10)
	if err != nil || len(p.Events) != 1 {
		t.Fatalf("ReadEvents = %+v, %v", p, err)
	}
	if err := l.EventsOnReplicas(ctx, p); err != nil {
		t.Errorf("EventsOnReplicas with the replica attached = %v", err)
	}
	if err := l.EventsOnReplicas(ctx, ledger.EventsPage{}); err != nil {
		t.Errorf("EventsOnReplicas of an empty page = %v", err)
	}
	if err := rdb.XDel(ctx, l.EventStreams()[0].Key, p.Events[0].ID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := l.EventsOnReplicas(ctx, p); !errors.Is(err, ledger.ErrNotDurable) {
		t.Errorf("EventsOnReplicas of an event the master no longer holds = %v, want ErrNotDurable", err)
	}
}

// PendingStats tells pending orders that wait for the provider from those
// that wait for a person (found by matching; paid, the pay maybe through),
// each with its oldest; beyond the orders it reads, a kind not seen among
// them is taken to be no younger than the last one read.
func TestPendingStats(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	pend := func(no string, matched, pay bool) {
		t.Helper()
		ref := ledger.Ref{Provider: "aliyun", OrderNo: no}
		claim(t, l, ref)
		if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: no + "-1"}); err != nil {
			t.Fatal(err)
		}
		tr := ledger.SetPending("P-"+no, time.Now(), time.Now().Add(time.Minute))
		if matched {
			tr = tr.WithMatched()
		}
		if err := l.Settle(ctx, ref, no+"-1", tr); err != nil {
			t.Fatal(err)
		}
		if pay {
			if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: no + "-2", Pay: true}); err != nil || !b.Record.PayMarked {
				t.Fatalf("Begin of the pay = %+v, %v", b, err)
			}
			if err := l.Settle(ctx, ref, no+"-2", ledger.Keep("pay requested")); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(3 * time.Millisecond) // each its own entry time
	}
	pend("M1", true, false)
	pend("S1", false, true)
	pend("P1", false, false)
	pend("P2", false, false)
	pend("MS1", true, true) // matched, and paid by the worker: no longer one to pay by hand
	all, err := l.PendingStats(ctx, []string{"aliyun", "tencent"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := all["aliyun"]; got[ledger.PendingMatched].Count != 1 || got[ledger.PendingPaySent].Count != 2 || got[ledger.PendingPlain].Count != 2 ||
		!got[ledger.PendingMatched].Oldest.Before(got[ledger.PendingPaySent].Oldest) || !got[ledger.PendingPaySent].Oldest.Before(got[ledger.PendingPlain].Oldest) {
		t.Errorf("aliyun = %+v; want 1 matched (oldest), 2 pay sent, 2 plain", got)
	}
	if got := all["tencent"]; len(got) != 0 {
		t.Errorf("tencent = %+v, want nothing", got)
	}
	// Reading only the two oldest: no plain one among them, but two more
	// beyond: the oldest plain one is taken to be no younger than the last
	// read (the pay-sent one).
	two, err := l.PendingStats(ctx, []string{"aliyun"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := two["aliyun"]; got[ledger.PendingPlain].Count != 0 || !got[ledger.PendingPlain].Oldest.Equal(all["aliyun"][ledger.PendingPaySent].Oldest) {
		t.Errorf("two read = %+v; want plain bounded by the pay-sent one's time", got)
	}
}

// A pending order whose provider order id was found only by matching, and
// that no worker paid, may be resolved absent: the order matched is
// another's. It goes back to submission without the id, which its owner
// entry no longer reserves for it, so the order that made it can take it.
// One its own create was answered with, or one a worker paid, may not.
func TestResolveMatchedOrderAbsent(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	var refused *ledger.RefusedError
	mk := func(no string, tr ledger.Transition) ledger.Ref { return settled(t, l, no, tr) }
	since := time.Now().Add(-time.Hour)
	m := mk("M1", ledger.SetPending("PO-OTHER", since, time.Now().Add(time.Minute)).WithMayExist(true).WithMatched())
	if rec, _ := l.Get(ctx, m); !rec.Resolvable(ledger.ResolveAbsent) {
		t.Fatalf("a matched pending order is not resolvable absent: %+v", rec)
	}
	rec, err := l.Resolve(ctx, m, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "PO-OTHER is a console order of another team", By: "ann"})
	if err != nil || rec.State != ledger.StateSubmitting || rec.ProviderOrderID != "" || rec.Matched || rec.MayExist ||
		!rec.PendingSince.IsZero() || !rec.NextCheckAt.IsZero() || time.Since(rec.RedrivenAt) > time.Minute {
		t.Fatalf("resolve absent of a matched order: %+v, %v; want submitting, without the id, matched or pending times", rec, err)
	}
	if last := rec.History[len(rec.History)-1]; last.Call != "resolve" || last.Result != "absent" || last.By != "ann" {
		t.Errorf("history entry = %+v", last)
	}
	if !slices.Equal(rec.NotOurs, []string{"PO-OTHER"}) {
		t.Errorf("not ours = %v; want the matched id, which the order's lookups pass over", rec.NotOurs)
	}
	if owner, _ := l.Owner(ctx, "p", "PO-OTHER"); owner != "" {
		t.Errorf("PO-OTHER still owned by %q", owner)
	}
	// The id is no longer M1's: the order that made it takes it.
	other := mk("O1", ledger.SetUnknown("timeout").WithMayExist(true))
	if _, err := l.Begin(ctx, other, ledger.BeginArgs{Token: "o2"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, other, "o2", ledger.SetPaid("PO-OTHER").WithMayExist(true)); err != nil {
		t.Fatalf("the id's maker after M1 gave it up: %v", err)
	}
	// M1 is created again, and settled with its own order's id.
	if _, err := l.Begin(ctx, m, ledger.BeginArgs{Token: "t-M1b"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, m, "t-M1b", ledger.SetPaid("PO-M1").WithMayExist(true).WithAnswered()); err != nil {
		t.Fatal(err)
	}

	// Refused: an id its own create was answered with (not matched) ...
	own := mk("A1", ledger.SetPending("PO-A1", since, time.Now()).WithMayExist(true))
	if rec, _ := l.Get(ctx, own); rec.Resolvable(ledger.ResolveAbsent) {
		t.Errorf("a pending order with its own create's id is resolvable absent")
	}
	if _, err := l.Resolve(ctx, own, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "n", By: "bob"}); !errors.As(err, &refused) {
		t.Errorf("absent for a pending order with its own create's id: %v, want refused", err)
	}
	// ... and a matched one a worker sent a pay for.
	paid := matchedAndPaid(t, l, "M2", "PO-M2", since)
	if _, err := l.Resolve(ctx, paid, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "n", By: "bob"}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "pay") {
		t.Errorf("absent for a matched order a worker paid: %v, want refused for the pay", err)
	}
	if rec, _ := l.Get(ctx, paid); rec.ProviderOrderID != "PO-M2" || !rec.Matched || rec.State != ledger.StatePending {
		t.Errorf("a refused absent changed the order: %+v", rec)
	}
}

// A pending order that holds a provider order id by matching, resolved
// paid under another id an operator found, gives the matched id up as
// absent does (into NotOurs, its owner entry released), so that the order
// that made it can take it; and the id the operator gave stands as the
// operator's word, not a match: another order's own create answered with
// it takes it over (the order is looked up again) rather than be refused
// it and look its own order up with the id passed over. Paid under another
// id than the one its own create was answered with, or than a matched one
// a worker paid, is refused.
func TestResolvePaidUnderAnotherID(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	var refused *ledger.RefusedError
	since := time.Now().Add(-time.Hour)
	a := settled(t, l, "RA", ledger.SetPending("PO-X", since, time.Now().Add(time.Hour)).WithMayExist(true).WithMatched())
	rec, err := l.Resolve(ctx, a, ledger.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "PO-Y", Note: "ours is PO-Y in the console", By: "ann"})
	if err != nil || rec.State != ledger.StatePaid || rec.ProviderOrderID != "PO-Y" || rec.Matched {
		t.Fatalf("resolve paid under another id: %+v, %v; want paid with PO-Y, not matched", rec, err)
	}
	if !slices.Equal(rec.NotOurs, []string{"PO-X"}) {
		t.Errorf("not ours = %v; want the matched id", rec.NotOurs)
	}
	if owner, _ := l.Owner(ctx, "p", "PO-X"); owner != "" {
		t.Errorf("the matched id is still owned by %q: the order that made it cannot take it, and is created again", owner)
	}
	if owner, _ := l.Owner(ctx, "p", "PO-Y"); owner != "RA" {
		t.Errorf("PO-Y owned by %q, want RA", owner)
	}
	// The order that made PO-X takes it.
	b := settled(t, l, "RB", ledger.SetUnknown("timeout").WithMayExist(true))
	if _, err := l.Begin(ctx, b, ledger.BeginArgs{Token: "b2"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, b, "b2", ledger.SetPaid("PO-X").WithMayExist(true).WithAnswered()); err != nil {
		t.Fatalf("PO-X's maker: %v", err)
	}
	// Another order's own create answered with PO-Y: the answer outweighs
	// the operator's word.
	c := settled(t, l, "RC", ledger.SetUnknown("timeout").WithMayExist(true))
	if _, err := l.Begin(ctx, c, ledger.BeginArgs{Token: "c2"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, c, "c2", ledger.SetPaid("PO-Y").WithMayExist(true).WithAnswered()); err != nil {
		t.Fatalf("a create answered with the id an operator recorded: %v; want it taken over", err)
	}
	if rec, _ := l.Get(ctx, a); rec.State != ledger.StateUnknown || rec.ProviderOrderID != "" || !rec.MayExist ||
		!strings.Contains(rec.Reason, "an operator recorded") {
		t.Errorf("RA after RC's create answered PO-Y: %s %q %q; want unknown, looked up again, saying an operator recorded it", rec.State, rec.ProviderOrderID, rec.Reason)
	}
	// An order whose own create was answered with PO-Z: paid with PO-Z
	// only.
	own := settled(t, l, "RD", ledger.SetPending("PO-Z", since, time.Now().Add(time.Hour)).WithMayExist(true))
	if _, err := l.Resolve(ctx, own, ledger.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "PO-W", Note: "n", By: "bob"}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "own create") {
		t.Errorf("paid under another id than its own create's: %v; want refused", err)
	}
	if rec, err := l.Resolve(ctx, own, ledger.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "PO-Z", Note: "n", By: "bob"}); err != nil || rec.State != ledger.StatePaid || rec.ProviderOrderID != "PO-Z" {
		t.Errorf("paid with its own create's id: %+v, %v", rec, err)
	}
	// Confirmed by an operator, the provider's own answer stays what it
	// was: another order's create answered with it is refused it, as
	// before the decision, and takes nothing back.
	other := settled(t, l, "RF", ledger.SetUnknown("timeout").WithMayExist(true))
	if _, err := l.Begin(ctx, other, ledger.BeginArgs{Token: "f2"}); err != nil {
		t.Fatal(err)
	}
	var owned *ledger.OwnedError
	if err := l.Settle(ctx, other, "f2", ledger.SetPaid("PO-Z").WithMayExist(true).WithAnswered()); !errors.As(err, &owned) {
		t.Errorf("another create answered with an id its own create's answer gave RD, which an operator confirmed: %v; want refused, owned", err)
	}
	if rec, _ := l.Get(ctx, own); rec.State != ledger.StatePaid || rec.ProviderOrderID != "PO-Z" {
		t.Errorf("RD after another create named its id: %s %q; want paid with PO-Z", rec.State, rec.ProviderOrderID)
	}
	// An unknown order's id came with a create that failed: paid under
	// the id the operator found, that one is given up.
	failed := settled(t, l, "RG", ledger.SetUnknown("502 naming an id").WithMayExist(true).WithProviderOrderID("PO-G1"))
	if rec, err := l.Resolve(ctx, failed, ledger.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "PO-G2", Note: "n", By: "bob"}); err != nil || rec.ProviderOrderID != "PO-G2" || !slices.Equal(rec.NotOurs, []string{"PO-G1"}) {
		t.Errorf("paid under another id than a failed create's answer gave: %+v, %v; want paid with PO-G2, PO-G1 not ours", rec, err)
	}
	if owner, _ := l.Owner(ctx, "p", "PO-G1"); owner != "" {
		t.Errorf("PO-G1 still owned by %q", owner)
	}
	// A matched order a worker sent a pay for: paid with that id only.
	m := matchedAndPaid(t, l, "RE", "PO-M", since)
	if _, err := l.Resolve(ctx, m, ledger.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "PO-N", Note: "n", By: "bob"}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "pay") {
		t.Errorf("paid under another id than a matched one a worker paid: %v; want refused", err)
	}
	if rec, _ := l.Get(ctx, m); rec.ProviderOrderID != "PO-M" || !rec.Matched || rec.State != ledger.StatePending {
		t.Errorf("a refused paid changed the order: %+v", rec)
	}
}

// An order queued, or submitting with no create of it that may have been
// received, may be resolved errored: stopped before it is made (one whose
// params the provider refuses in words that hold the provider's orders
// back, say), nothing created. One with a create in flight may not: its
// run may have sent it.
func TestResolveErroredBeforeItIsMade(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	var refused *ledger.RefusedError
	q := ledger.Ref{Provider: "p", OrderNo: "EQ1"}
	claim(t, l, q)
	if rec, err := l.Resolve(ctx, q, ledger.ResolveArgs{As: ledger.ResolveErrored, Note: "cancelled by the shop", By: "ann", ListingLag: time.Hour}); err != nil ||
		rec.State != ledger.StateErrored || rec.MayExist || rec.Reason != "operator: cancelled by the shop" {
		t.Fatalf("errored, queued: %+v, %v; want errored, nothing created", rec, err)
	}
	s := settled(t, l, "ES1", ledger.SetRetry("refused for the AppKey"))
	if rec, err := l.Resolve(ctx, s, ledger.ResolveArgs{As: ledger.ResolveErrored, Note: "the provider refuses its customer", By: "ann", ListingLag: time.Hour}); err != nil || rec.State != ledger.StateErrored {
		t.Fatalf("errored, submitting with nothing sent: %+v, %v", rec, err)
	}
	// A create in flight (its run holds the lease): a worker is on it.
	f := ledger.Ref{Provider: "p", OrderNo: "EF1"}
	claim(t, l, f)
	if b, err := l.Begin(ctx, f, ledger.BeginArgs{Token: "run"}); err != nil || !b.Record.InflightMarked {
		t.Fatalf("Begin a create: %+v, %v", b, err)
	}
	if _, err := l.Resolve(ctx, f, ledger.ResolveArgs{As: ledger.ResolveErrored, Note: "n", By: "ann"}); !errors.As(err, &refused) ||
		!strings.Contains(err.Error(), "a create of which may have reached the provider") {
		t.Errorf("errored with a create in flight: %v, want refused, saying a create may have reached the provider", err)
	}
	// Its create ended in doubt: unknown, looked up first; errored is
	// then a decision about what the provider holds, after the listing lag.
	if err := l.Settle(ctx, f, "run", ledger.SetUnknown("timeout").WithMayExist(true)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Resolve(ctx, f, ledger.ResolveArgs{As: ledger.ResolveErrored, Note: "n", By: "ann", ListingLag: time.Hour}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "listing lag") {
		t.Errorf("errored just after a create in doubt: %v, want refused for the listing lag", err)
	}
}

// Errored is refused, as absent is, while the order's last create ended
// less than the listing lag ago (the console may not show the order yet,
// and an order reported errored that exists has its producer send it
// again under another number), and for a pending order while a worker's
// pay ended less than the lag ago; a refusal on the record as read
// writes nothing.
func TestResolveErroredWithinTheListingLag(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	var refused *ledger.RefusedError
	u := settled(t, l, "EU", ledger.SetUnknown("timeout").WithMayExist(true))
	before, _ := l.Get(ctx, u)
	for _, as := range []ledger.Resolution{ledger.ResolveAbsent, ledger.ResolveErrored} {
		if _, err := l.Resolve(ctx, u, ledger.ResolveArgs{As: as, Note: "not in the console", By: "ann", ListingLag: time.Hour}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "listing lag") {
			t.Errorf("%s just after the create: %v; want refused for the listing lag", as, err)
		}
	}
	if after, _ := l.Get(ctx, u); !after.UpdatedAt.Equal(before.UpdatedAt) || after.State != ledger.StateUnknown {
		t.Errorf("refused decisions changed the record: updated %v → %v, %s", before.UpdatedAt, after.UpdatedAt, after.State)
	}
	// Past a lag of 1 ms on Redis's clock (within the same millisecond
	// on a quiet machine, the lag has not passed yet).
	time.Sleep(10 * time.Millisecond)
	if rec, err := l.Resolve(ctx, u, ledger.ResolveArgs{As: ledger.ResolveErrored, Note: "not in the console", By: "ann", ListingLag: time.Millisecond}); err != nil || rec.State != ledger.StateErrored {
		t.Errorf("errored past the listing lag: %+v, %v", rec, err)
	}
	since := time.Now().Add(-time.Hour)
	p := settled(t, l, "EP", ledger.SetPending("PO-EP", since, time.Now().Add(time.Hour)).WithMayExist(true))
	if rec, err := l.Resolve(ctx, p, ledger.ResolveArgs{As: ledger.ResolveErrored, Note: "unpaid", By: "ann", ListingLag: time.Hour}); err != nil || rec.State != ledger.StateErrored {
		t.Errorf("errored for a pending order never paid: %+v, %v; want taken (no pay to wait for)", rec, err)
	}
	q := settled(t, l, "EQ", ledger.SetPending("PO-EQ", since, time.Now().Add(time.Hour)).WithMayExist(true))
	if _, err := l.Begin(ctx, q, ledger.BeginArgs{Token: "pay", Pay: true}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, q, "pay", ledger.SetPending("PO-EQ", since, time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Resolve(ctx, q, ledger.ResolveArgs{As: ledger.ResolveErrored, Note: "unpaid", By: "ann", ListingLag: time.Hour}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "pay") {
		t.Errorf("errored just after a pay: %v; want refused for the listing lag after it", err)
	}
}

// matchedAndPaid settles order no pending since since on provider order
// id, found by matching, then a step of it that sent a pay (its mark
// kept): a matched order a worker paid.
func matchedAndPaid(t *testing.T, l *ledger.Ledger, no, id string, since time.Time) ledger.Ref {
	t.Helper()
	ref := settled(t, l, no, ledger.SetPending(id, since, time.Now().Add(time.Hour)).WithMayExist(true).WithMatched())
	b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "pay", Pay: true})
	if err != nil || !b.Record.PayMarked {
		t.Fatalf("Begin a pay: %+v, %v", b, err)
	}
	if err := l.Settle(ctx, ref, "pay", ledger.SetPending(id, since, time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	return ref
}

// Past MaxHistory entries an order keeps its first HistoryHead and its
// latest: the calls that made it unknown, or pending, are what a person
// deciding on it needs, and a held order looked up for days, or a pending
// one polled for weeks, dropped them first.
func TestHistoryKeepsItsFirstEntries(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "p", OrderNo: "H"}
	claim(t, l, ref)
	const n = ledger.MaxHistory + 25
	for i := 1; i <= n; i++ {
		tok := fmt.Sprint("t", i)
		if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: tok}); err != nil || b.Status != ledger.Began {
			t.Fatalf("Begin %d = %+v, %v", i, b, err)
		}
		if err := l.Settle(ctx, ref, tok, ledger.SetUnknown("x").WithMayExist(true).WithAttempt(&ledger.Attempt{N: i, Call: "lookup"})); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := l.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, a := range rec.History {
		got = append(got, a.N)
	}
	var want []int
	for i := 1; i <= ledger.HistoryHead; i++ {
		want = append(want, i)
	}
	for i := n - (ledger.MaxHistory - ledger.HistoryHead) + 1; i <= n; i++ {
		want = append(want, i)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("history after %d calls: %v; want the first %d and the last %d: %v", n, got, ledger.HistoryHead, ledger.MaxHistory-ledger.HistoryHead, want)
	}
}

// A worker that records its data key over a ledger whose workers ran
// without one leaves them Options.KeylessDrain to stop (KeylessDrain
// counts it down); over a ledger no keyless worker touched, and for a
// producer, there is none.
func TestKeylessDrain(t *testing.T) {
	t.Parallel()
	rdb := taskstest.StartRedis(t, nil).Client(t)
	l := ledger.New(rdb, &ledger.Options{KeylessDrain: time.Minute})
	if err := l.CheckDataKey(ctx, "aaaa"); err != nil {
		t.Fatal(err)
	}
	if d, err := l.KeylessDrain(ctx); err != nil || d != 0 {
		t.Fatalf("KeylessDrain on a ledger no keyless worker touched = %s, %v; want none", d, err)
	}
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := l.CheckDataKey(ctx, ""); err != nil { // a worker without a key
		t.Fatal(err)
	}
	if err := l.CheckDataKey(ctx, "aaaa"); err != nil {
		t.Fatal(err)
	}
	if d, err := l.KeylessDrain(ctx); err != nil || d <= 50*time.Second || d > time.Minute {
		t.Fatalf("KeylessDrain after a worker recorded its key over keyless ones = %s, %v; want about a minute", d, err)
	}
	if err := l.CheckDataKey(ctx, "aaaa"); err != nil {
		t.Fatal(err)
	}
	if d, _ := l.KeylessDrain(ctx); d > time.Minute {
		t.Fatalf("a second worker with the key extended the drain: %s", d)
	}
}

// A failover that leaves the old master reachable (a managed endpoint
// moved to the promoted replica while the client's connections made
// before still reach the old master, which keeps running): the replica
// count a write waits for may be read on a connection to the new master
// while the write runs on the old one. A write that ran on the old
// master, held to the replicas it was seen with, is never acknowledged as
// durable: every claim answered without error is on the new master (a
// black-box run lost 31 of 650 accepted orders so). Two cases: the old
// master left without replicas (defaults); and, with
// ORDERWORKER_MIN_REPLICAS=1, the old master keeping one of its two
// replicas while the new one has a replica of its own (so that this
// process has since seen the new master with replicas, and only what the
// old master records tells what it is held to).
func TestWriteOnAHeldOldMasterIsNotDurable(t *testing.T) {
	for _, kept := range []bool{false, true} {
		t.Run(fmt.Sprint("old master keeps a replica: ", kept), func(t *testing.T) {
			t.Parallel()
			m := taskstest.StartRedis(t, nil)
			r := m.AttachReplica(t)
			opts := &ledger.Options{NoAutoFloor: true, WaitTimeout: 200 * time.Millisecond}
			if kept {
				m.AttachReplica(t)
				opts.MinReplicas = 1
			}
			var dials atomic.Int64
			var promoted, gone atomic.Bool
			rdb := redis.NewClient(&redis.Options{Addr: "endpoint:0", ConnMaxIdleTime: time.Nanosecond, PoolSize: 4,
				Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
					addr := m.Addr
					if gone.Load() || promoted.Load() && dials.Add(1)%2 == 0 {
						addr = r.Addr // every other new connection reaches the promoted replica
					}
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				}})
			t.Cleanup(func() { rdb.Close() })
			l := ledger.New(rdb, opts)
			ref := func(no string) ledger.Ref { return ledger.Ref{Provider: "tencent", OrderNo: no} }
			for i := range 3 { // the master is seen with its replicas
				// On a busy machine a fresh replica may miss a WAIT of
				// 200 ms: the claim is sent again, as a producer would.
				for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
					_, err := l.Claim(ctx, ref(fmt.Sprintf("Before%d", i)), []byte(`{}`), "h")
					if err == nil {
						break
					}
					if !errors.Is(err, ledger.ErrNotDurable) || time.Now().After(end) {
						t.Fatal(err)
					}
				}
			}
			time.Sleep(200 * time.Millisecond) // the count seen is recorded in the background
			if err := r.Client(t).Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
				t.Fatal(err)
			}
			want := "connected_slaves:0"
			if kept {
				want = "connected_slaves:1"
				r.AttachReplica(t)
			}
			for end := time.Now().Add(10 * time.Second); !strings.Contains(m.Client(t).Info(ctx, "replication").Val(), want); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(end) {
					t.Fatal("the old master still reports the promoted replica")
				}
			}
			onNew := r.Client(t)
			if kept {
				// This process sees the new master with its replica
				// first: the old one's hold is then only in what the old
				// one records.
				gone.Store(true)
				time.Sleep(1500 * time.Millisecond)
				var err error
				for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
					if _, err = l.Claim(ctx, ref("OnNew"), []byte(`{}`), "h"); err == nil {
						break
					}
				}
				if err != nil {
					t.Fatalf("claim on the new master alone: %v", err)
				}
				gone.Store(false)
			}
			promoted.Store(true)
			accepted, refused := 0, 0
			for i := range 120 {
				no := fmt.Sprintf("Split%d", i)
				_, err := l.Claim(ctx, ref(no), []byte(`{}`), "h")
				if err != nil {
					refused++
					continue
				}
				accepted++
				if n, _ := onNew.Exists(ctx, "orderworker:{ledger}:order:tencent:"+no).Result(); n != 1 {
					t.Errorf("claim %s answered durable, but its record is not on the promoted master (it ran on the old one)", no)
				}
			}
			if refused == 0 {
				t.Errorf("%d claims accepted, none refused: the test did not reach the old master", accepted)
			}
			t.Logf("during the split: %d claims accepted on the promoted master, %d refused", accepted, refused)
			// The old master is out of reach (its connections expire):
			// claims are taken, on the promoted master.
			gone.Store(true)
			time.Sleep(1500 * time.Millisecond)
			var err error
			for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				if _, err = l.Claim(ctx, ref("After"), []byte(`{}`), "h"); err == nil {
					break
				}
			}
			if n, _ := onNew.Exists(ctx, "orderworker:{ledger}:order:tencent:After").Result(); err != nil || n != 1 {
				t.Errorf("claim once only the promoted master is reached = %v (on it: %d); want it taken there", err, n)
			}
		})
	}
}

// An owner entry written by the id alone (an earlier version's) moves under
// its order's scope: gone by the id alone, its order's in the scope; onto
// a scope where another order owns the id it does not move. With one shard
// and with three (on one server), where the two entries' shards differ.
func TestMoveOwnerUnderItsScope(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{1, 3} {
		rdb := taskstest.StartRedis(t, nil).Client(t)
		l := ledger.New(rdb, &ledger.Options{Shards: shards})
		for i := range 6 {
			id := fmt.Sprintf("X%d", i)
			old := fmt.Sprintf("Old%d", i)
			ref := ledger.Ref{Provider: "aliyun", OrderNo: old}
			claim(t, l, ref)
			if _, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t-" + old}); err != nil {
				t.Fatal(err)
			}
			if err := l.Settle(ctx, ref, "t-"+old, ledger.SetPaid(id)); err != nil {
				t.Fatal(err)
			}
			if err := l.MoveOwner(ctx, "aliyun", id, old, "dev-1"); err != nil {
				t.Fatalf("%d shards, %s: %v", shards, id, err)
			}
			if o, _ := l.OwnerIn(ctx, "aliyun", "dev-1", id); o != old {
				t.Errorf("%d shards: owner of %s on dev-1 = %q, want %s", shards, id, o, old)
			}
			if o, _ := l.Owner(ctx, "aliyun", id); o != "" {
				t.Errorf("%d shards: owner of %s by the id alone = %q, want it moved", shards, id, o)
			}
			// Moved again (another worker met it too): nothing to do.
			if err := l.MoveOwner(ctx, "aliyun", id, old, "dev-1"); err != nil {
				t.Errorf("%d shards: a second move of %s: %v", shards, id, err)
			}
		}
		// A scope where another order owns the id: the entry stays.
		taker := ledger.Ref{Provider: "aliyun", OrderNo: "Taker"}
		claim(t, l, taker)
		if _, err := l.Begin(ctx, taker, ledger.BeginArgs{Token: "tk"}); err != nil {
			t.Fatal(err)
		}
		if err := l.Settle(ctx, taker, "tk", ledger.SetPaid("Y").WithIDScope("dev-2")); err != nil {
			t.Fatal(err)
		}
		stale := ledger.Ref{Provider: "aliyun", OrderNo: "Stale"}
		claim(t, l, stale)
		if _, err := l.Begin(ctx, stale, ledger.BeginArgs{Token: "st"}); err != nil {
			t.Fatal(err)
		}
		if err := l.Settle(ctx, stale, "st", ledger.SetPaid("Y")); err != nil {
			t.Fatal(err)
		}
		var owned *ledger.OwnedError
		if err := l.MoveOwner(ctx, "aliyun", "Y", "Stale", "dev-2"); !errors.As(err, &owned) || owned.Owner != "Taker" {
			t.Errorf("%d shards: a move onto Taker's id: %v, want owned by Taker", shards, err)
		}
		if o, _ := l.OwnerIn(ctx, "aliyun", "dev-2", "Y"); o != "Taker" {
			t.Errorf("%d shards: owner of Y on dev-2 = %q, want Taker", shards, o)
		}
		if o, _ := l.Owner(ctx, "aliyun", "Y"); o != "Stale" {
			t.Errorf("%d shards: owner of Y by the id alone = %q, want it kept", shards, o)
		}
	}
}

// A create answered throttled is recorded with its end
// (Transition.WithThrottledCreate), and stands for the order's latest
// create while no create has ended since (a lookup's settle leaves it) and
// none was abandoned since (Begin moves the last create to the lease's end).
func TestThrottledCreateNamesTheLatestCreate(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "unicloud", OrderNo: "Throttled"}
	claim(t, l, ref)
	step := func(token string, marks bool, tr ledger.Transition, lease time.Duration) {
		t.Helper()
		b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: token, LeaseTTL: lease})
		if err != nil || b.Record.InflightMarked != marks {
			t.Fatalf("Begin %s = %+v, %v; want the create marked: %v", token, b.Record, err, marks)
		}
		if err := l.Settle(ctx, ref, token, tr); err != nil {
			t.Fatal(err)
		}
	}
	get := func() *ledger.Record {
		t.Helper()
		rec, err := l.Get(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	step("t1", true, ledger.SetUnknown("throttled").WithMayExist(true).WithThrottledCreate(), 0)
	rec := get()
	if rec.ThrottledCreateAt.IsZero() || !rec.ThrottledCreateAt.Equal(rec.LastCreateAt) || !rec.ThrottledLast() {
		t.Fatalf("after a throttled create: throttled %v, last create %v; want the same, ThrottledLast", rec.ThrottledCreateAt, rec.LastCreateAt)
	}
	step("t2", false, ledger.SetUnknown("looked up").WithMayExist(true), 0)
	if again := get(); !again.ThrottledLast() {
		t.Errorf("a lookup's settle: throttled %v, last create %v; want it standing", again.ThrottledCreateAt, again.LastCreateAt)
	}
	// Not found: created again, and that create times out.
	step("t3", false, ledger.SetRetry("not found").WithMayExist(false), 0)
	step("t4", true, ledger.SetUnknown("timeout").WithMayExist(true), 0)
	if again := get(); again.ThrottledLast() || !again.ThrottledCreateAt.IsZero() {
		t.Errorf("a create that timed out after it: throttled %v, last create %v; want it cleared", again.ThrottledCreateAt, again.LastCreateAt)
	}
	// Throttled again, then a create whose run never settled it.
	step("t5", false, ledger.SetRetry("not found").WithMayExist(false), 0)
	step("t6", true, ledger.SetUnknown("throttled").WithMayExist(true).WithThrottledCreate(), 0)
	if again := get(); !again.ThrottledLast() {
		t.Fatalf("throttled again: throttled %v, last create %v; want it standing", again.ThrottledCreateAt, again.LastCreateAt)
	}
	step("t7", false, ledger.SetRetry("not found").WithMayExist(false), 0)
	// A create marked and not sent (Unmark): still only throttles.
	b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t8"})
	if err != nil || !b.Record.InflightMarked || !b.Record.ThrottledLast() {
		t.Fatalf("Begin t8 = %+v, %v; want the create marked, ThrottledLast", b.Record, err)
	}
	if r := get(); !r.ThrottledCreateAt.Equal(r.LastCreateAt) {
		// As stored (a Begin sent again after its reply was lost reads it).
		t.Errorf("stored with the mark: throttled %v, last create %v; want them moved together", r.ThrottledCreateAt, r.LastCreateAt)
	}
	if err := l.Settle(ctx, ref, "t8", ledger.Unmark(b.Record)); err != nil {
		t.Fatal(err)
	}
	if again := get(); !again.ThrottledLast() {
		t.Errorf("a create marked and not sent: throttled %v, last create %v; want it standing", again.ThrottledCreateAt, again.LastCreateAt)
	}
	// A create whose run never settled it: the next run's record says
	// so, and so does the record once that run settles (a lookup, say).
	if b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: "t9", LeaseTTL: 200 * time.Millisecond}); err != nil || !b.Record.InflightMarked {
		t.Fatalf("Begin t9 = %+v, %v; want the create marked", b.Record, err)
	}
	time.Sleep(300 * time.Millisecond) // the run died; its lease ran out
	b, err = l.Begin(ctx, ref, ledger.BeginArgs{Token: "t10"})
	if err != nil || b.Record.ThrottledLast() {
		t.Errorf("after an abandoned create: throttled %v, last create %v, inflight %d, %v; want ThrottledLast false",
			b.Record.ThrottledCreateAt, b.Record.LastCreateAt, b.Record.Inflight, err)
	}
	if err := l.Settle(ctx, ref, "t10", ledger.SetUnknown("looked up").WithMayExist(true)); err != nil {
		t.Fatal(err)
	}
	if again := get(); again.ThrottledLast() {
		t.Errorf("settled after an abandoned create: throttled %v, last create %v; want ThrottledLast false", again.ThrottledCreateAt, again.LastCreateAt)
	}
}

// A create refused as the order's own unless a lookup finds it
// (Transition.WithRefusedCreate) is recorded with its end and its refusal,
// outlives lookups that rewrite the reason, and stands no more once a
// later create ends or an operator re-drives the order.
func TestRefusedCreateOutlivesTheReason(t *testing.T) {
	t.Parallel()
	l, _, _ := setup(t)
	ref := ledger.Ref{Provider: "unicloud", OrderNo: "Refused"}
	claim(t, l, ref)
	step := func(token string, marks bool, tr ledger.Transition) *ledger.Record {
		t.Helper()
		b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: token})
		if err != nil || b.Record.InflightMarked != marks {
			t.Fatalf("Begin %s = %+v, %v; want the create marked: %v", token, b.Record, err, marks)
		}
		if err := l.Settle(ctx, ref, token, tr); err != nil {
			t.Fatal(err)
		}
		rec, err := l.Get(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	const refusal = "create: invalid_argument: no such plan"
	step("t1", true, ledger.SetUnknown("throttled").WithMayExist(true).WithThrottledCreate())
	step("t2", false, ledger.SetRetry("not found").WithMayExist(false))
	rec := step("t3", true, ledger.SetUnknown("refused after throttles: "+refusal).WithMayExist(true).WithThrottledCreate().WithRefusedCreate(refusal))
	if !rec.RefusedLast() || rec.RefusedCreate != refusal || !rec.RefusedCreateAt.Equal(rec.LastCreateAt) {
		t.Fatalf("after the refused create: at %v (last create %v), %q; want its end and the refusal", rec.RefusedCreateAt, rec.LastCreateAt, rec.RefusedCreate)
	}
	if rec = step("t4", false, ledger.SetUnknown("ambiguous: looking again").WithMayExist(true)); !rec.RefusedLast() || rec.RefusedCreate != refusal {
		t.Errorf("a lookup that rewrote the reason: %v %q; want the refusal standing", rec.RefusedLast(), rec.RefusedCreate)
	}
	// Found absent all the same, created again: that create's answer is
	// the latest (the refusal names an earlier create).
	step("t5", false, ledger.SetRetry("not found").WithMayExist(false))
	if rec = step("t6", true, ledger.SetUnknown("timeout").WithMayExist(true)); rec.RefusedLast() || rec.RefusedCreateAt.Equal(rec.LastCreateAt) {
		t.Errorf("a later create: %v, refused at %v, last create %v; want the refusal no longer standing", rec.RefusedLast(), rec.RefusedCreateAt, rec.LastCreateAt)
	}
	// Refused again; a lookup's settle that names a refusal (a run that
	// marked no create) leaves the recorded one as it is.
	rec = step("t7", false, ledger.SetRetry("not found").WithMayExist(false))
	rec = step("t8", true, ledger.SetUnknown("refused").WithMayExist(true).WithRefusedCreate(refusal))
	if !rec.RefusedLast() {
		t.Fatalf("refused again: %v %q; want it standing", rec.RefusedLast(), rec.RefusedCreate)
	}
	if rec = step("t9", false, ledger.SetUnknown("looked").WithMayExist(true).WithRefusedCreate("another")); !rec.RefusedLast() || rec.RefusedCreate != refusal {
		t.Errorf("a lookup's settle with a refusal: %v %q; want the recorded one kept", rec.RefusedLast(), rec.RefusedCreate)
	}
	// An operator resolves it absent: it goes back to submission, and the
	// refusal is no longer its answer.
	if _, err := l.Resolve(ctx, ref, ledger.ResolveArgs{As: ledger.ResolveAbsent, Note: "not in the console", By: "ops"}); err != nil {
		t.Fatal(err)
	}
	if rec, err := l.Get(ctx, ref); err != nil || rec.RefusedLast() || rec.RefusedCreate != "" {
		t.Errorf("resolved absent: %+v, %v; want the refusal gone", rec, err)
	}
	// Refused again, errored, re-driven: the same.
	rec = step("t10", true, ledger.SetUnknown("refused").WithMayExist(true).WithRefusedCreate(refusal))
	if !rec.RefusedLast() {
		t.Fatalf("refused once more: %v %q; want it standing", rec.RefusedLast(), rec.RefusedCreate)
	}
	step("t11", false, ledger.SetErrored("refused: "+refusal).WithMayExist(false))
	if err := l.Redrive(ctx, ref, "ops", "plan fixed"); err != nil {
		t.Fatal(err)
	}
	if rec, err := l.Get(ctx, ref); err != nil || rec.RefusedLast() || rec.RefusedCreate != "" {
		t.Errorf("re-driven: %+v, %v; want the refusal gone", rec, err)
	}
}
