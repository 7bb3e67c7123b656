package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// pausingProv answers every create paid, after pausing the replica: the
// create's in-flight mark reached the replica (Begin waited for it), the
// outcome will not.
// pausingProv creates and pays every order, after pause.
type pausingProv struct {
	creates atomic.Int64
	pause   func()
}

func (p *pausingProv) Name() string                          { return "mem" }
func (p *pausingProv) Validate(params json.RawMessage) error { return nil }
func (p *pausingProv) Submit(ctx context.Context, o providers.Order) (providers.Result, error) {
	p.pause()
	p.creates.Add(1)
	return providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P-" + o.OrderNo}, nil
}
func (p *pausingProv) Lookup(ctx context.Context, o providers.Order) (providers.Result, error) {
	if p.creates.Load() == 0 {
		return providers.Result{}, &providers.Error{Code: providers.NotFound, Op: "lookup"}
	}
	return providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P-" + o.OrderNo}, nil
}

// An outcome the replicas did not acknowledge keeps the task (finish returns
// a wait, "the task comes back to confirm it"). But the next run's Begin
// reads the terminal state on the master and ends the task (nil) without
// that state ever having been acknowledged: the read-only 'terminal' reply
// of beginScript writes nothing for its WAIT to cover, and Begin ignores
// the durability of a terminal reply anyway. A failover now takes the
// outcome back, and the order sits "submitting" with its create in flight
// and no task, as before afb47f0.
// A run that finds the order final ends its task only once the replicas
// hold the outcome: the first run's paid outcome was not acknowledged (its
// run kept the task, to end it later), and a second run that found it
// paid on the master and ended the task would leave the order, after a
// failover onto the replica that never got the outcome, in submitting with
// a create in flight and no task to look it up (until the reconciler's
// next sweep). It waits instead.
func TestAnOutcomeNotOnTheReplicasKeepsTheTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := taskstest.StartRedis(t, nil)
	fp := newFreezeProxy(t, rs.Addr)
	rep := taskstest.StartRedis(t, nil)
	host, port, _ := net.SplitHostPort(fp.ln.Addr().String())
	if err := rep.Client(t).Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mi := rs.Client(t).Info(ctx, "replication").Val()
		ri := rep.Client(t).Info(ctx, "replication").Val()
		if strings.Contains(mi, "state=online") && strings.Contains(ri, "master_link_status:up") {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("replica not up: %s / %s", mi, ri)
		}
	}
	l := ledger.New(rs.Client(t), &ledger.Options{WaitTimeout: 300 * time.Millisecond})
	paused := false
	prov := &pausingProv{}
	prov.pause = func() {
		if !paused {
			paused = true
			// The replica's link stalls: nothing more reaches it, and it
			// acknowledges nothing (the master still lists it).
			fp.frozen.Store(true)
		}
	}
	set := providers.NewSet()
	set.Add(prov)
	h := tasks.NewHandler(l, set, &tasks.HandlerOptions{Logger: quiet, ListingLag: -1, LeaseTTL: 2 * time.Second})
	params := json.RawMessage(`{"item":"x","qty":1}`)
	ref := ledger.Ref{Provider: "mem", OrderNo: "Durable-1"}
	cr, err := l.Claim(ctx, ref, params, "h")
	if errors.Is(err, ledger.ErrNotDurable) {
		// A loaded machine: the replica, not frozen yet, took longer than
		// the ledger's 300 ms. The claim is on the master: wait for the
		// replica to hold it (a later write acknowledged holds it too).
		c := rs.Client(t)
		if err = c.Set(ctx, "test:sync", 1, 0).Err(); err == nil {
			var n int64
			if n, err = c.Do(ctx, "WAIT", 1, 20000).Int64(); err == nil && n < 1 {
				err = fmt.Errorf("WAIT: %d replicas", n)
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(tasks.Payload{Provider: "mem", OrderNo: ref.OrderNo, Params: params})
	task := asynq.NewTaskWithHeaders(tasks.TypeOrderSubmit, data,
		map[string]string{"orderworker-claimed": fmt.Sprintf("%d:%s", time.Now().Add(-time.Second).UnixMilli(), cr.Token)})

	if err := h.ProcessTask(ctx, task); err == nil {
		t.Fatal("first run: nil; want a wait (the paid outcome is on the master only)")
	} else {
		t.Logf("first run: %v", err)
	}
	// The link is still frozen: the outcome is still on the master only.
	secondErr := h.ProcessTask(ctx, task)
	t.Logf("second run, replica link still frozen: %v", secondErr)
	// So does a worker that cannot send the order (its provider disabled
	// there), without taking it for a configuration problem.
	off := providers.NewSet()
	off.Disable("mem", "no credentials configured", nil)
	heldErr := tasks.NewHandler(l, off, &tasks.HandlerOptions{Logger: quiet, ListingLag: -1, LeaseTTL: 2 * time.Second}).ProcessTask(ctx, task)
	if heldErr == nil || !strings.Contains(heldErr.Error(), "its outcome") {
		t.Errorf("a run on a worker without the provider, replica link still frozen: %v; want a wait for the outcome's acknowledgement", heldErr)
	}

	// Failover: the master dies, the replica (which never got the outcome)
	// is promoted.
	rs.Stop()
	rc := rep.Client(t)
	if err := rc.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	rec, err := ledger.New(rc, nil).Get(ctx, ref)
	if err != nil || rec == nil {
		t.Fatalf("record on the promoted replica: %+v, %v", rec, err)
	}
	t.Logf("after the failover: state %s, inflight %d, creates at the provider %d", rec.State, rec.Inflight, prov.creates.Load())
	if secondErr == nil {
		t.Errorf("second run: nil (the task ended) on an outcome the replicas had not acknowledged")
	}
	if secondErr == nil && !rec.State.Terminal() {
		t.Errorf("the task ended (ProcessTask returned nil) on an outcome the replicas never acknowledged; after the failover the order is %s with create %d in flight and no task to move it", rec.State, rec.Inflight)
	}
	// The task it kept, run on the new master, looks the order up (its
	// create may have gone through) and ends it paid: created once.
	// (Held only to the most each master was seen with: the promoted
	// replica has none of its own, which the default floor would wait
	// for; this test is of the kept task.)
	l2 := ledger.New(rc, &ledger.Options{WaitTimeout: 300 * time.Millisecond, NoAutoFloor: true})
	h2 := tasks.NewHandler(l2, set, &tasks.HandlerOptions{Logger: quiet, ListingLag: -1, LeaseTTL: 2 * time.Second})
	var runErr error
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		// (Busy until the first run's lease, which the replica holds,
		// runs out.)
		if runErr = h2.ProcessTask(ctx, task); runErr == nil {
			break
		}
	}
	if rec, err = l2.Get(ctx, ref); err != nil || rec == nil || rec.State != ledger.StatePaid || runErr != nil {
		t.Errorf("the kept task on the new master: %v; record %+v, %v; want paid", runErr, rec, err)
	}
	if n := prov.creates.Load(); n != 1 {
		t.Errorf("creates at the provider = %d, want 1", n)
	}
}

// freezeProxy passes bytes between a client and target, holding them
// while frozen (a replica link that stalls, still listed by its master).
type freezeProxy struct {
	ln     net.Listener
	frozen atomic.Bool
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			for p.frozen.Load() {
				time.Sleep(10 * time.Millisecond)
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				dst.Close()
				return
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); up.Close() })
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	return p
}
