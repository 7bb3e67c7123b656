package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/order"
)

// These tests came from a review: each failed before its fix.

// epochHook tampers with the next run of the watch script (EVALSHA with
// one key, the shard's epoch hash):
//
//	1: it runs twice, the caller getting the second reply (go-redis's own
//	   retry of a command whose first reply was lost: a read timeout, a
//	   reset connection; EVALSHA is retried on those by default);
//	2: it runs, and its reply is lost (the caller gets an error);
//	3: it fails unsent.
type epochHook struct{ mode atomic.Int32 }

func (h *epochHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *epochHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *epochHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		a := cmd.Args()
		watch := cmd.Name() == "evalsha" && len(a) > 5 && fmt.Sprint(a[2]) == "1" && strings.HasSuffix(fmt.Sprint(a[3]), "epoch")
		if !watch {
			return next(ctx, cmd)
		}
		switch h.mode.Load() {
		case 1:
			h.mode.Store(0)
			if err := next(ctx, cmd); err != nil {
				return err
			}
			return next(ctx, cmd)
		case 2:
			h.mode.Store(0)
			_ = next(ctx, cmd)
			err := errors.New("read tcp: i/o timeout")
			cmd.SetErr(err)
			return err
		case 3:
			h.mode.Store(0)
			err := errors.New("read tcp: i/o timeout")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// markThenRollBack: one Watch, X claimed, X's create marked (counting
// the process's own count up past what the last Watch read), then a
// roll-back to before that mark (an AOF everysec restart losing the last
// second): X's record queued again, the epoch as the Watch left it.
func markThenRollBack(t *testing.T) (*ledger.Ledger, *epochHook, ledger.Ref) {
	t.Helper()
	l, rdb, _ := setup(t)
	h := &epochHook{}
	rdb.AddHook(h)
	pol := lossPolicy()
	if _, err := l.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	x := ledger.Ref{Provider: "p", OrderNo: "X"}
	claim(t, l, x)
	keys, _ := rdb.Keys(ctx, "*epoch").Result()
	snap := map[string]map[string]string{}
	for _, k := range []string{keys[0], recKey("X")} {
		snap[k], _ = rdb.HGetAll(ctx, k).Result()
	}
	if b, err := l.Begin(ctx, x, ledger.BeginArgs{Token: "x1", LookFirst: pol.LookFirstWindow()}); err != nil || !b.Record.InflightMarked {
		t.Fatalf("X's create: %+v, %v", b.Record, err)
	}
	for k, v := range snap {
		rdb.Del(ctx, k)
		if err := rdb.HSet(ctx, k, v).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return l, h, x
}

func checkNoticed(t *testing.T, l *ledger.Ledger, x ledger.Ref, first []ledger.Loss) {
	t.Helper()
	pol := lossPolicy()
	losses, err := l.Watch(ctx)
	if len(first)+len(losses) == 0 {
		t.Errorf("the roll-back that took X's create mark back was never reported (Watch = %v, %v)", losses, err)
	}
	b, err := l.Begin(ctx, x, ledger.BeginArgs{Token: "x2", LookFirst: pol.LookFirstWindow()})
	if err != nil {
		t.Fatal(err)
	}
	if b.Record.InflightMarked {
		t.Errorf("X's create, taken back by the roll-back, is marked again: created twice")
	}
}

// A watch script run twice (a client's retry after a lost reply) counts
// this process's count up twice: the roll-back that took back one mark is
// found by the first run, in the script, and reported all the same.
func TestRetriedWatchStillReportsARollBack(t *testing.T) {
	t.Parallel()
	l, h, x := markThenRollBack(t)
	h.mode.Store(1)
	first, err := l.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkNoticed(t, l, x, first)
}

// A watch whose reply is lost found the loss in Redis: the next one
// reports it (the l:PID record), and the mark is not sent again.
func TestLostWatchReplyStillReportsARollBack(t *testing.T) {
	t.Parallel()
	l, h, x := markThenRollBack(t)
	h.mode.Store(2)
	first, err := l.Watch(ctx)
	if err == nil {
		t.Fatal("want the lost reply's error")
	}
	checkNoticed(t, l, x, first)
}

// A watch that fails is no loss forgotten: detection and recording are one
// script, so the next watch finds and reports it.
func TestLossFoundByAFailedWatchIsNotForgotten(t *testing.T) {
	t.Parallel()
	l, h, x := markThenRollBack(t)
	h.mode.Store(3)
	first, err := l.Watch(ctx)
	if err == nil {
		t.Fatal("want the failed recording's error")
	}
	checkNoticed(t, l, x, first)
}

// The same Begin again (its reply lost) after a look-first answers the
// look-first again: without it, an order past its deadline would be
// errored without the lookup a loss owes it.
func TestBeginAgainKeepsTheLookFirst(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	if _, err := l.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	ref := ledger.Ref{Provider: "p", OrderNo: "W"}
	claim(t, l, ref)
	args := ledger.BeginArgs{Token: "w", LookFirst: time.Hour}
	b, err := l.Begin(ctx, ref, args)
	if err != nil || b.Record.LookFirstSince.IsZero() {
		t.Fatalf("first Begin: %+v, %v; want the look-first", b.Record, err)
	}
	b2, err := l.Begin(ctx, ref, args) // the same Begin again (its reply lost)
	if err != nil {
		t.Fatal(err)
	}
	if b2.Record.LookFirstSince.IsZero() {
		pol := lossPolicy()
		p := order.PlanStep(b2.Record, pol, time.Now().Add(2*time.Hour))
		t.Errorf("the same Begin again: LookFirstSince lost; PlanStep past the deadline = settle to %q, then %+v (want a lookup)", p.Settle.To(), p.Then)
	}
}

// After a loss, a pending order found by matching and held for a person is
// not taken as paid by a worker: no pay mark is raised for it, so a poll
// that finds it paid (by its owner) does not record it paid as ours, and
// it may still be resolved absent.
func TestLossDoesNotMakeAHeldMatchedOrderOurs(t *testing.T) {
	t.Parallel()
	for _, loss := range []bool{false, true} {
		t.Run(fmt.Sprint("loss=", loss), func(t *testing.T) {
			l, rdb, _ := setup(t)
			pol := lossPolicy()
			if _, err := l.Watch(ctx); err != nil {
				t.Fatal(err)
			}
			ref := ledger.Ref{Provider: "p", OrderNo: "M"}
			claim(t, l, ref)
			args := func(tok string) ledger.BeginArgs {
				return ledger.BeginArgs{Token: tok, PayAgainAfter: pol.ListingLag, LookFirst: pol.LookFirstWindow()}
			}
			if _, err := l.Begin(ctx, ref, args("c")); err != nil {
				t.Fatal(err)
			}
			if err := l.Settle(ctx, ref, "c", ledger.SetPending("PO-M", time.Now(), time.Now()).WithMatched()); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Watch(ctx); err != nil {
				t.Fatal(err)
			}
			if loss {
				keys, _ := rdb.Keys(ctx, "*epoch").Result()
				countsBack(t, rdb, keys[0]) // a roll-back of the epoch only: the record is as it was
				if ls, err := l.Watch(ctx); err != nil || len(ls) != 1 {
					t.Fatalf("Watch = %v, %v; want the loss", ls, err)
				}
			}
			b, err := l.Begin(ctx, ref, args("poll"))
			if err != nil || b.Status != ledger.Began {
				t.Fatal(b, err)
			}
			if !b.Record.Matched {
				t.Fatal("not recorded matched")
			}
			resolvable := b.Record.Resolvable(ledger.ResolveAbsent)
			d := order.Decide(b.Record, order.Poll, order.Outcome{Result: providers.Result{Status: providers.StatusPaid,
				ProviderOrderID: "PO-M", Matched: true, Held: true}}, pol, time.Now())
			if d.Settle.To() == ledger.StatePaid {
				t.Errorf("a matched order found paid by someone else (Held), never paid by a worker, is recorded paid as ours (pay_sent %v)", b.Record.PaySentAt)
			}
			if !resolvable {
				t.Errorf("resolve -as absent refused for a matched order no worker paid (pay_sent %v)", b.Record.PaySentAt)
			}
		})
	}
}

// The watch a Begin runs on finding its count gone back, run twice: the
// loss is reported, and the order looked up first.
func TestRetriedBeginWatchStillReportsARollBack(t *testing.T) {
	t.Parallel()
	l, h, x := markThenRollBack(t)
	pol := lossPolicy()
	y := ledger.Ref{Provider: "p", OrderNo: "Y"}
	claim(t, l, y)
	h.mode.Store(1)
	b, err := l.Begin(ctx, y, ledger.BeginArgs{Token: "y1", LookFirst: pol.LookFirstWindow()})
	if err != nil {
		t.Fatal(err)
	}
	if b.Record.LookFirstSince.IsZero() {
		t.Errorf("the first create after the roll-back is marked (InflightMarked %v) with no loss noticed", b.Record.InflightMarked)
	}
	checkNoticed(t, l, x, nil)
}
