package tasks

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/order"
)

// A refused prepare (Aliyun's snapshot listing) is a problem of its own,
// which only a prepare that succeeds clears: polls and creates of other
// orders may succeed while every prepare is refused, and clearing it on
// them would make the problem, and its alert, flicker. A refusal of the
// credentials elsewhere is cleared by any call that succeeds.
func TestRefusedPrepareIsClearedOnlyByAPrepare(t *testing.T) {
	t.Parallel()
	has := func(p *Problems, kind string) bool {
		err := p.Err()
		return err != nil && strings.Contains(err.Error(), kind)
	}
	p := NewProblems()
	refused := providers.Errorf(providers.Unauthenticated, "aliyun order/query", "refused")
	p.Report("aliyun", heldBy(order.Then{Next: order.ConfigWait, Step: order.Prepare}), "order/query refused the snapshot")
	clearProblems(p, "aliyun", order.Prepare, refused)
	if !has(p, ProblemPrepare) || has(p, ProblemCredentials) {
		t.Fatalf("after a refused prepare: %v; want %s only", p.Err(), ProblemPrepare)
	}
	for _, step := range []order.Step{order.Submit, order.Poll, order.Pay, order.Lookup} {
		clearProblems(p, "aliyun", step, nil)
		if !has(p, ProblemPrepare) {
			t.Fatalf("a %v that succeeded cleared %s: %v", step, ProblemPrepare, p.Err())
		}
	}
	clearProblems(p, "aliyun", order.Prepare, nil)
	if p.Err() != nil {
		t.Fatalf("after a prepare that succeeded: %v; want none", p.Err())
	}
	for _, step := range []order.Step{order.Submit, order.Lookup, order.Poll, order.Pay} {
		if k := heldBy(order.Then{Next: order.ConfigWait, Step: step}); k != ProblemCredentials {
			t.Errorf("a %v held for the configuration reports %s, want %s", step, k, ProblemCredentials)
		}
	}
	p.Report("aliyun", ProblemCredentials, "bad signature")
	clearProblems(p, "aliyun", order.Poll, nil)
	if p.Err() != nil {
		t.Fatalf("after a poll that succeeded: %v; want none", p.Err())
	}
}

// A refusal for the worker's clock or for the account is its own kind at
// any step, the prepare step included. Any call that succeeds clears a
// refused clock as it clears refused credentials; a refused account only
// ends once nothing was held for it for problemTTL (a provider may refuse
// one of the account's calls while others succeed).
func TestClockAndAccountRefusalsAreTheirOwnKinds(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cause error
		kind  string
	}{
		{providers.Held(providers.Errorf(providers.Unavailable, "tencent ServiceCreateOrder", "Timestamp 已过期"), providers.ErrClock), ProblemClock},
		{providers.Held(providers.Errorf(providers.PermissionDenied, "aliyun order/create", "User Arrears"), providers.ErrAccount), ProblemAccount},
		{providers.Errorf(providers.Unauthenticated, "tencent ServiceCreateOrder", "Signature 无效"), ProblemCredentials},
		// A gateway's refusal of the signature or key is the credentials'
		// at the prepare step too (a black-box run with a wrong AppSecret
		// was told "prepare refused").
		{providers.Held(providers.Errorf(providers.Unauthenticated, "aliyun order/query", "Invalid Signature"), providers.ErrSignature), ProblemCredentials},
	} {
		for _, step := range []order.Step{order.Prepare, order.Submit, order.Lookup, order.Poll, order.Pay} {
			want := tt.kind
			if want == ProblemCredentials && step == order.Prepare && !errors.Is(tt.cause, providers.ErrSignature) {
				want = ProblemPrepare
			}
			if k := heldBy(order.Then{Next: order.ConfigWait, Step: step, Cause: tt.cause}); k != want {
				t.Errorf("%v held at %v reports %s, want %s", tt.cause, step, k, want)
			}
		}
		now := time.Now()
		p := NewProblems()
		p.now = func() time.Time { return now }
		p.Report("tencent", tt.kind, tt.cause.Error())
		for _, step := range []order.Step{order.Prepare, order.Submit, order.Lookup, order.Poll, order.Pay} {
			clearProblems(p, "tencent", step, nil)
		}
		if cleared := p.Err() == nil; cleared != (tt.kind != ProblemAccount) {
			t.Errorf("after calls that succeeded: %v; want %s cleared: %v", p.Err(), tt.kind, !cleared)
		}
		now = now.Add(problemTTL + time.Second)
		if p.Err() != nil {
			t.Errorf("%s after problemTTL with nothing held: %v; want none", tt.kind, p.Err())
		}
	}
}

// While the provider refuses this worker's credentials or clock, one step
// an interval goes as a probe and the others are held without a call; a
// probe that succeeds (Clear) lets every step go; other kinds hold
// nothing.
func TestProbeHoldsCallsWhileTheCredentialsAreRefused(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	p := NewProblems()
	p.now = func() time.Time { return now }
	goes := func(what string, want bool) { // want: the step goes
		t.Helper()
		held, kind, reason := p.Probe("tencent", 30*time.Second, ProblemCredentials, ProblemClock)
		if held == want {
			t.Errorf("%s: held %v (%s: %s); want held %v", what, held, kind, reason, !want)
		}
	}
	goes("no problem", true)
	goes("no problem, again", true)
	p.Report("tencent", ProblemAccount, "account refused")
	goes("a refused account", true)
	p.Report("tencent", ProblemCredentials, "bad signature")
	goes("the first step after a refusal: the probe", true)
	goes("the next one", false)
	if held, kind, reason := p.Probe("tencent", 30*time.Second, ProblemCredentials, ProblemClock); !held || kind != ProblemCredentials || reason != "bad signature" {
		t.Errorf("held = %v, %q, %q; want held for %s, with its reason", held, kind, reason, ProblemCredentials)
	}
	if held, _, _ := p.Probe("aliyun", 30*time.Second, ProblemCredentials, ProblemClock); held {
		t.Error("another provider's step held")
	}
	now = now.Add(30 * time.Second)
	goes("an interval later: the next probe", true)
	goes("after it", false)
	p.Clear("tencent", ProblemCredentials, ProblemClock)
	goes("once a probe succeeded", true)
	goes("once a probe succeeded, again", true)
	p.Report("tencent", ProblemClock, "timestamp out of range")
	now = now.Add(time.Minute)
	goes("a refused clock: the probe", true)
	goes("a refused clock: the next one", false)
	now = now.Add(problemTTL + time.Second)
	goes("the refusal older than problemTTL", true)
}

// OthersWent over a key revoked at T: among many orders, the refusals of
// calls begun in the 5 s after T may be judged the orders' own; from then
// on none is, and no order's earlier judgment carries over while other
// orders are refused too. One order refused alone among calls that go
// through is its own, on every attempt.
func TestOthersWentOverARevokedKey(t *testing.T) {
	t.Parallel()
	p := NewProblems()
	t0 := time.Unix(1_800_000_000, 0)
	now := t0
	p.now = func() time.Time { return now }
	// Before T: 100 calls a second go through.
	for i := range 3000 {
		now = t0.Add(time.Duration(i) * 10 * time.Millisecond)
		p.Went("mem", order.Submit, now)
	}
	revoked := now
	owned := map[int]bool{}
	for i := range 2000 { // after T, every call refused: 20 orders in turn
		now = revoked.Add(time.Duration(i+1) * 10 * time.Millisecond)
		if p.OthersWent("mem", order.Submit, "O-"+string(rune('a'+i%20)), now) {
			owned[i] = true
			if now.Sub(revoked) > 5*time.Second {
				t.Fatalf("a refusal %s after the revocation judged the order's own", now.Sub(revoked))
			}
		}
	}
	if len(owned) == 0 {
		t.Errorf("no refusal within the slack judged the order's: the test shows nothing of the slack's bound")
	}
	// A quiet worker: one order's calls refused after the key was revoked,
	// a call having gone through just before: its first refusal may be
	// judged its own, no later one (no call went through since).
	r := NewProblems()
	r.now = func() time.Time { return now }
	now = now.Add(time.Hour)
	r.Went("mem", order.Submit, now)
	judged := 0
	for range 8 {
		now = now.Add(500 * time.Millisecond)
		if r.OthersWent("mem", order.Submit, "A", now) {
			judged++
		}
	}
	if judged > 1 {
		t.Errorf("a quiet worker's order refused after a revocation: %d of 8 refusals judged its own, want one at most", judged)
	}
	// One order refused alone, calls of others going through between.
	q := NewProblems()
	q.now = func() time.Time { return now }
	for i := range 200 {
		now = now.Add(10 * time.Millisecond)
		q.Went("mem", order.Submit, now)
		if i%50 == 49 && !q.OthersWent("mem", order.Submit, "BAD", now) {
			t.Errorf("a lone order's refusal among calls that go through (call %d) judged the worker's", i)
		}
	}
}
