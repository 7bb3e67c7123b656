package tasks_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// failScriptHook fails the next script (EVALSHA/EVAL) sent once armed: a
// Redis blip at that moment (a timeout, a reset connection).
type failScriptHook struct{ armed atomic.Bool }

var errBlip = errors.New("i/o timeout (injected)")

func isScript(cmd redis.Cmder) bool { n := cmd.Name(); return n == "evalsha" || n == "eval" }

func (h *failScriptHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *failScriptHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isScript(cmd) && h.armed.CompareAndSwap(true, false) {
			cmd.SetErr(errBlip)
			return errBlip
		}
		return next(ctx, cmd)
	}
}
func (h *failScriptHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if isScript(c) && h.armed.CompareAndSwap(true, false) {
				for _, c := range cmds {
					c.SetErr(errBlip)
				}
				return errBlip
			}
		}
		return next(ctx, cmds)
	}
}

// blipAfterPay is the in-memory provider whose pay, once answered, is
// followed by a Redis blip: the step's settle (the next script) fails.
type blipAfterPay struct {
	*memprov.Client
	hook *failScriptHook
	once atomic.Bool
	off  bool // control: no blip
}

func (p *blipAfterPay) Pay(ctx context.Context, o providers.Order) (providers.Result, error) {
	r, err := p.Client.Pay(ctx, o)
	if !p.off && p.once.CompareAndSwap(false, true) {
		p.hook.armed.Store(true) // the first pay's settle only
	}
	return r, err
}

// A pay the provider answered as accepted is never sent again, even when
// the settle that records the acceptance meets a Redis blip (a timeout, a
// reset connection): the settle is tried again. Here the provider shows
// the pay late (SetPayLags: the case the worker's acceptedUnseen branch
// exists for). Before, the run gave up at the first failure, and the next
// took the pay for one whose answer was lost and paid again a listing lag
// later (a review: 6 pays of one order when every such settle failed).
func TestAcceptedPayIsNotSentAgainAfterASettleBlip(t *testing.T) {
	t.Parallel()
	for _, blip := range []bool{false, true} {
		t.Run(map[bool]string{false: "control", true: "blip"}[blip], func(t *testing.T) { t.Parallel(); acceptedPayAfterBlip(t, blip) })
	}
}

func acceptedPayAfterBlip(t *testing.T, blip bool) {
	ctx := context.Background()
	const lag = 200 * time.Millisecond
	const ttl = 300 * time.Millisecond
	backend := memprov.NewBackend("s")
	backend.Pending = true
	backend.SetPayLags(true)
	srv := taskstest.StartRedis(t, nil)
	hook := &failScriptHook{}
	rdb := srv.Client(t)
	rdb.AddHook(hook)
	l := ledger.New(rdb, nil)
	set := providers.NewSet()
	set.Add(&blipAfterPay{Client: memprov.New(backend, memprov.Options{Secret: "s", AutoPay: true}), hook: hook, off: !blip})
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{LeaseTTL: ttl, ListingLag: lag, PollInterval: 10 * time.Millisecond,
		PendingWindow: time.Hour, Logger: quiet})
	ref, task := claimedMemOrder(t, l, "PayBlip-1")

	// Run 1: create (pending, payable), pay (accepted), settle fails.
	_ = h.ProcessTask(ctx, task)
	if n := backend.Calls("pay"); n != 1 {
		t.Fatalf("after the first run: %d pays, want 1", n)
	}
	// Later runs, as asynq would retry the task, for a few listing lags.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		_ = h.ProcessTask(ctx, task)
	}
	rec, _ := l.Get(ctx, ref)
	if n := backend.Calls("pay"); n != 1 {
		t.Errorf("%d pays of order %s, want 1: the provider accepted the first (state %s, pay accepted %v, reason %q)",
			n, ref.OrderNo, rec.State, rec.PayAccepted(), rec.Reason)
	}
}
