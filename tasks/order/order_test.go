package order

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func policy() Policy {
	return Policy{
		MaxAttempts: 3, Deadline: time.Hour, PendingWindow: 30 * time.Minute,
		PollInterval: 2 * time.Second, ConfigWait: 30 * time.Second,
		// Exact delays: the ceiling of each retry.
		Backoff: Backoff{Base: time.Second, Max: time.Minute, Rand: func(n int64) int64 { return n }},
	}
}

// Records in each situation an order can be in when a step begins.
func queuedMarked() *ledger.Record {
	return &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateSubmitting, Inflight: 1, InflightMarked: true, CreatedAt: t0}
}

func mayHaveExisted() *ledger.Record { // submitting again after a lookup found nothing
	r := queuedMarked()
	r.MayHaveExisted = true
	return r
}

func retryMarked() *ledger.Record { // submitting again after a failure that created nothing
	return &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateSubmitting, Attempts: 2, Failures: 1, Inflight: 3, InflightMarked: true, CreatedAt: t0}
}

func abandoned() *ledger.Record { // a run died with a create in flight
	return &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateSubmitting, Attempts: 0, Inflight: 1, CreatedAt: t0}
}

func unknown() *ledger.Record {
	return &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateUnknown, Attempts: 1, Failures: 1, Reason: "timeout", CreatedAt: t0}
}

func pending() *ledger.Record {
	return &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StatePending, Attempts: 1, ProviderOrderID: "P1", PendingSince: t0.Add(time.Minute), CreatedAt: t0}
}

func needsSnapshot() *ledger.Record {
	return &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateQueued, CreatedAt: t0}
}

func TestPlanStep(t *testing.T) {
	t.Parallel()
	p := policy()
	pk := policy()
	pk.NeedsKnown = true
	withKnown := needsSnapshot()
	withKnown.Known = []string{}
	broke := retryMarked()
	broke.Failures = 3
	// A first create marked with a snapshot taken at t0.
	snapped := func(mayHaveExisted bool) *ledger.Record {
		r := queuedMarked()
		r.Known, r.KnownAt, r.MarkedFrom, r.MayHaveExisted = []string{"A1"}, t0, ledger.StateQueued, mayHaveExisted
		return r
	}
	ageless := snapped(false)
	ageless.KnownAt = time.Time{}
	tests := []struct {
		name string
		rec  *ledger.Record
		p    Policy
		now  time.Time
		want Step
		to   ledger.State // for None
	}{
		{"queued, marked: submit", queuedMarked(), p, t0, Submit, ""},
		{"retry, marked: submit", retryMarked(), p, t0, Submit, ""},
		{"abandoned create: unknown, then looked up", abandoned(), p, t0, None, ledger.StateUnknown},
		{"abandoned create past the deadline: unknown, still looked up", abandoned(), p, t0.Add(2 * time.Hour), None, ledger.StateUnknown},
		{"unknown: look it up", unknown(), p, t0, Lookup, ""},
		{"unknown past the deadline: still looked up", unknown(), p, t0.Add(2 * time.Hour), Lookup, ""},
		{"pending: poll", pending(), p, t0, Poll, ""},
		{"pending past its window: poll (the answer decides)", pending(), p, t0.Add(time.Hour), Poll, ""},
		{"needs a snapshot: prepare", needsSnapshot(), pk, t0, Prepare, ""},
		{"snapshot taken but create not marked: wait", withKnown, pk, t0, None, ""},
		{"marked past the deadline: errored, nothing sent", queuedMarked(), p, t0.Add(time.Hour + time.Millisecond), None, ledger.StateErrored},
		{"marked exactly at the deadline: submit", queuedMarked(), p, t0.Add(time.Hour), Submit, ""},
		{"budget spent: errored, nothing sent", broke, p, t0, None, ledger.StateErrored},
		{"prepare past the deadline: errored", needsSnapshot(), pk, t0.Add(2 * time.Hour), None, ledger.StateErrored},
		{"first create, snapshot a minute old: submit", snapped(false), pk, t0.Add(DefaultSnapshotMaxAge), Submit, ""},
		{"first create, snapshot older than a minute: unmarked, taken again", snapped(false), pk, t0.Add(DefaultSnapshotMaxAge + time.Millisecond), None, ledger.StateQueued},
		{"first create, snapshot of unknown age: unmarked, taken again", ageless, pk, t0, None, ledger.StateQueued},
		{"a create may have been received: an old snapshot is kept", snapped(true), pk, t0.Add(time.Hour), Submit, ""},
	}
	for _, tc := range tests {
		got := PlanStep(tc.rec, tc.p, tc.now)
		if got.Step != tc.want {
			t.Errorf("%s: step = %s, want %s", tc.name, got.Step, tc.want)
			continue
		}
		if got.Step == None && got.Settle.To() != tc.to {
			t.Errorf("%s: settles to %q, want %q", tc.name, got.Settle.To(), tc.to)
		}
		if tc.want == None && tc.to == ledger.StateQueued {
			// A snapshot taken again: forgotten, and Prepare next.
			if !got.Settle.IsAfresh() || got.Then.Next != Continue || got.Then.Step != Prepare {
				t.Errorf("%s: afresh %v, then %v %v; want the snapshot forgotten, continue to prepare", tc.name, got.Settle.IsAfresh(), got.Then.Next, got.Then.Step)
			}
		}
		if tc.to == ledger.StateUnknown {
			if me, _ := got.Settle.MayExist(); !me || got.Then.Next != Continue || got.Then.Step != Lookup {
				t.Errorf("%s: may_exist %v, then %v %v; want may_exist, continue to a lookup", tc.name, me, got.Then.Next, got.Then.Step)
			}
			// The abandoned create is in the history, as its own call,
			// its answer unknown.
			if a := got.Settle.Attempt(); a == nil || a.N != tc.rec.Inflight || a.Call != "submit" || a.Result != AbandonedResult || !a.At.Equal(tc.now) {
				t.Errorf("%s: history entry %+v; want the create numbered %d, abandoned, at %v", tc.name, a, tc.rec.Inflight, tc.now)
			}
		}
	}
}

// errs is one error for every code a provider call can fail with.
var errs = map[providers.Code]error{
	providers.Unknown:            errors.New("connection reset"),
	providers.InvalidArgument:    providers.Errorf(providers.InvalidArgument, "op", "bad ItemId"),
	providers.Unauthenticated:    providers.Errorf(providers.Unauthenticated, "op", "Signature invalid"),
	providers.PermissionDenied:   providers.Errorf(providers.PermissionDenied, "op", "arrears"),
	providers.FailedPrecondition: providers.Errorf(providers.FailedPrecondition, "op", "not allowed"),
	providers.RateLimited:        &providers.Error{Code: providers.RateLimited, Op: "op", RetryAfter: 7 * time.Second},
	providers.Unavailable:        providers.Errorf(providers.Unavailable, "op", "503"),
	providers.Ambiguous:          providers.Errorf(providers.Ambiguous, "op", "timeout after write"),
	providers.NotFound:           providers.Errorf(providers.NotFound, "op", "no such order"),
}

type want struct {
	to   ledger.State // "" = unchanged
	next Next
}

// TestDecideFailures covers every step × every error code.
func TestDecideFailures(t *testing.T) {
	t.Parallel()
	type row map[providers.Code]want
	u, sub, errd := ledger.StateUnknown, ledger.StateSubmitting, ledger.StateErrored
	tests := []struct {
		step Step
		rec  func() *ledger.Record
		want row
	}{
		{Submit, queuedMarked, row{
			providers.Unknown:            {u, Retry},
			providers.Ambiguous:          {u, Retry},
			providers.InvalidArgument:    {errd, Stop},
			providers.PermissionDenied:   {errd, Stop},
			providers.FailedPrecondition: {errd, Stop},
			providers.NotFound:           {errd, Stop},
			providers.Unauthenticated:    {sub, ConfigWait},
			providers.RateLimited:        {sub, Wait},
			providers.Unavailable:        {sub, Retry},
		}},
		// A create after an earlier one that may have been received
		// (looked up, not found, created again): any refusal, one naming
		// the credentials included, proves nothing of the earlier one.
		{Submit, mayHaveExisted, row{
			providers.Unknown:            {u, Retry},
			providers.Ambiguous:          {u, Retry},
			providers.InvalidArgument:    {u, Retry},
			providers.PermissionDenied:   {u, Retry},
			providers.FailedPrecondition: {u, Retry},
			providers.NotFound:           {u, Retry},
			providers.Unauthenticated:    {u, Retry},
			providers.RateLimited:        {sub, Wait},
			providers.Unavailable:        {sub, Retry},
		}},
		{Lookup, unknown, row{
			providers.Unknown:            {u, Wait},
			providers.Ambiguous:          {u, Wait},
			providers.InvalidArgument:    {u, Wait},
			providers.PermissionDenied:   {u, Wait},
			providers.FailedPrecondition: {u, Wait},
			providers.Unauthenticated:    {u, ConfigWait},
			providers.RateLimited:        {u, Wait},
			providers.Unavailable:        {u, Wait},
			providers.NotFound:           {sub, Continue},
		}},
		{Lookup, abandoned, row{
			providers.Unknown:            {u, Wait},
			providers.Ambiguous:          {u, Wait},
			providers.InvalidArgument:    {u, Wait},
			providers.PermissionDenied:   {u, Wait},
			providers.FailedPrecondition: {u, Wait},
			providers.Unauthenticated:    {u, ConfigWait},
			providers.RateLimited:        {u, Wait},
			providers.Unavailable:        {u, Wait},
			providers.NotFound:           {sub, Continue},
		}},
		{Poll, pending, row{
			providers.Unknown:            {"", Wait},
			providers.Ambiguous:          {"", Wait},
			providers.InvalidArgument:    {"", Wait},
			providers.PermissionDenied:   {"", Wait},
			providers.FailedPrecondition: {"", Wait},
			providers.Unauthenticated:    {"", ConfigWait},
			providers.RateLimited:        {"", Wait},
			providers.Unavailable:        {"", Wait},
			providers.NotFound:           {errd, Stop},
		}},
		{Pay, pending, row{
			providers.Unknown:            {"", Wait},
			providers.Ambiguous:          {"", Wait},
			providers.InvalidArgument:    {"", Wait},
			providers.PermissionDenied:   {"", Wait},
			providers.FailedPrecondition: {"", Wait},
			providers.Unauthenticated:    {"", ConfigWait},
			providers.RateLimited:        {"", Wait},
			providers.Unavailable:        {"", Wait},
			providers.NotFound:           {errd, Stop},
		}},
		{Prepare, needsSnapshot, row{
			providers.Unknown:            {"", Wait},
			providers.Ambiguous:          {"", Wait},
			providers.InvalidArgument:    {errd, Stop},
			providers.PermissionDenied:   {errd, Stop},
			providers.FailedPrecondition: {errd, Stop},
			providers.Unauthenticated:    {"", ConfigWait},
			providers.RateLimited:        {"", Wait},
			providers.Unavailable:        {"", Wait},
			providers.NotFound:           {"", Wait},
		}},
	}
	for _, tc := range tests {
		for code, err := range errs {
			w, ok := tc.want[code]
			if !ok {
				t.Fatalf("%s: no expectation for %s", tc.step, code)
			}
			rec := tc.rec()
			a := &ledger.Attempt{N: rec.Attempts + 1, Call: tc.step.String(), Result: code.String()}
			d := Decide(rec, tc.step, Outcome{Err: err, Attempt: a}, policy(), t0.Add(2*time.Minute))
			name := fmt.Sprintf("%s from %s, %s", tc.step, rec.State, code)
			if d.Settle.To() != w.to || d.Then.Next != w.next {
				t.Errorf("%s: to %q then %v, want to %q then %v", name, d.Settle.To(), d.Then.Next, w.to, w.next)
			}
			if d.Settle.Attempt() != a {
				t.Errorf("%s: the attempt is not recorded", name)
			}
			// Where a create was refused before the provider acted and no
			// create of the order may ever have been received, its
			// identification starts anew (a fresh snapshot, lookups from
			// the next create on); nowhere else.
			if afresh := tc.step == Submit && w.to == sub && !rec.MayHaveExisted; d.Settle.IsAfresh() != afresh {
				t.Errorf("%s: afresh %v, want %v", name, d.Settle.IsAfresh(), afresh)
			}
			if tc.step == Submit {
				once := tc.rec()
				once.MayHaveExisted = true // an earlier create may have been received
				if d := Decide(once, tc.step, Outcome{Err: err, Attempt: a}, policy(), t0.Add(2*time.Minute)); d.Settle.IsAfresh() {
					t.Errorf("%s: afresh for an order an earlier create of which may have been received", name)
				}
			}
			if (d.Then.Next == Wait || d.Then.Next == Retry || d.Then.Next == ConfigWait) && d.Then.Delay <= 0 {
				t.Errorf("%s: %v with no delay", name, d.Then.Next)
			}
			if code == providers.RateLimited && d.Then.Next == Wait && tc.step != Poll && tc.step != Pay && d.Then.Delay != 7*time.Second {
				t.Errorf("%s: delay %s, want the provider's 7s", name, d.Then.Delay)
			}
		}
	}
}

// A refusal of the credentials while the same step went through for
// another order begun after it (Outcome.OthersWent) is the order's: no
// configuration wait; a create spends the failure budget (and is errored at
// its end), a create after one that may have been received is looked up as
// on any refusal, a pay so refused was refused before the provider acted.
// A refusal of the account stays a configuration wait.
func TestDecideRefusedForTheOrder(t *testing.T) {
	t.Parallel()
	u, sub, errd := ledger.StateUnknown, ledger.StateSubmitting, ledger.StateErrored
	refusedErr := providers.Errorf(providers.Unauthenticated, "op", "CustomerId not found for AppKey")
	account := &providers.Error{Code: providers.Unauthenticated, Op: "op", Message: "arrears", Err: providers.ErrAccount}
	clock := &providers.Error{Code: providers.Unauthenticated, Op: "op", Message: "Timestamp expired", Err: providers.ErrClock}
	spent := func() *ledger.Record {
		r := queuedMarked()
		r.Failures = policy().MaxAttempts - 1
		return r
	}
	for _, tc := range []struct {
		name string
		step Step
		rec  func() *ledger.Record
		err  error
		want want
	}{
		{"create", Submit, queuedMarked, refusedErr, want{sub, Retry}},
		{"create, budget spent", Submit, spent, refusedErr, want{errd, Stop}},
		{"create after one that may have been received", Submit, mayHaveExisted, refusedErr, want{u, Retry}},
		{"lookup", Lookup, unknown, refusedErr, want{u, Wait}},
		{"poll", Poll, pending, refusedErr, want{"", Wait}},
		{"pay", Pay, pending, refusedErr, want{"", Wait}},
		{"prepare", Prepare, needsSnapshot, refusedErr, want{"", Wait}},
		{"create, account refused", Submit, queuedMarked, account, want{sub, ConfigWait}},
		{"poll, account refused", Poll, pending, account, want{"", ConfigWait}},
		{"create, clock refused", Submit, queuedMarked, clock, want{sub, ConfigWait}},
	} {
		rec := tc.rec()
		d := Decide(rec, tc.step, Outcome{Err: tc.err, OthersWent: true}, policy(), t0.Add(2*time.Minute))
		if d.Settle.To() != tc.want.to || d.Then.Next != tc.want.next {
			t.Errorf("%s: to %q then %v, want to %q then %v", tc.name, d.Settle.To(), d.Then.Next, tc.want.to, tc.want.next)
		}
		if f := d.Settle.Failures(); tc.step == Submit && tc.want.to == sub && tc.want.next == Retry && f != rec.Failures+1 {
			t.Errorf("%s: failures %d, want %d", tc.name, f, rec.Failures+1)
		}
		if tc.want.next != ConfigWait && tc.want.to != u && !strings.Contains(d.Then.Reason, RefusedForTheOrder) {
			t.Errorf("%s: reason %q does not say the refusal is the order's", tc.name, d.Then.Reason)
		}
		if tc.step == Pay && !d.Settle.ClearsPaySent() {
			t.Errorf("%s: the pay's mark is kept; a pay refused before the provider acted takes it back", tc.name)
		}
		// Without another order's call gone through: the worker's.
		if d := Decide(tc.rec(), tc.step, Outcome{Err: tc.err}, policy(), t0.Add(2*time.Minute)); d.Then.Next != ConfigWait && !(tc.step == Submit && tc.rec().MayHaveExisted) {
			t.Errorf("%s, no other call gone through: %v, want ConfigWait", tc.name, d.Then.Next)
		}
	}
}

// The safety rules, checked over every situation × every outcome × a range
// of times (before and after the deadline and the pending window).
func TestDecideNeverRisksADoubleOrder(t *testing.T) {
	t.Parallel()
	recs := map[string]func() *ledger.Record{"queued": queuedMarked, "retry": retryMarked, "abandoned": abandoned, "unknown": unknown, "pending": pending, "snapshot": needsSnapshot}
	outcomes := map[string]Outcome{}
	for code, err := range errs {
		outcomes[code.String()] = Outcome{Err: err}
	}
	outcomes["paid"] = Outcome{Result: providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P9"}}
	outcomes["pending"] = Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P9"}}
	outcomes["payable"] = Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P9", Payable: true}}
	outcomes["no status"] = Outcome{Result: providers.Result{}}
	outcomes["held paid"] = Outcome{Result: providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P9", Matched: true, Held: true}}
	times := []time.Duration{0, 59 * time.Minute, 61 * time.Minute, 3 * time.Hour}
	for rn, mk := range recs {
		for _, step := range []Step{Prepare, Submit, Lookup, Poll, Pay} {
			for on, out := range outcomes {
				for _, dt := range times {
					rec := mk()
					d := Decide(rec, step, out, policy(), t0.Add(dt))
					name := fmt.Sprintf("%s/%s/%s/+%s", rn, step, on, dt)
					code := providers.CodeOf(out.Err)
					// A call that may have created the order never leads
					// to a state that allows a new create.
					if step == Submit && providers.MaybeCreated(code) && d.Settle.To() != ledger.StateUnknown {
						t.Errorf("%s: an ambiguous create went to %q, want unknown", name, d.Settle.To())
					}
					// A failed lookup of an order that may exist keeps it
					// unknown: never submitting (a create), never errored.
					if step == Lookup && out.Err != nil && code != providers.NotFound && d.Settle.To() != ledger.StateUnknown {
						t.Errorf("%s: a failed lookup went to %q, want unknown", name, d.Settle.To())
					}
					// A configuration problem never ends an order.
					if code == providers.Unauthenticated && (d.Settle.To() == ledger.StateErrored ||
						d.Then.Next != ConfigWait && !(step == Submit && rec.MayHaveExisted && d.Settle.To() == ledger.StateUnknown)) {
						t.Errorf("%s: rejected credentials gave %q / %v", name, d.Settle.To(), d.Then.Next)
					}
					// Only a create after a confirmed absence continues
					// to Submit.
					if d.Then.Next == Continue && d.Then.Step == Submit && !(step == Prepare || step == Lookup && code == providers.NotFound) {
						t.Errorf("%s: continues to submit", name)
					}
					// A success is never errored except a pending order past
					// its window.
					if out.Err == nil && step != Prepare && d.Settle.To() == ledger.StateErrored && out.Result.Status != providers.StatusPending {
						t.Errorf("%s: a successful call errored the order", name)
					}
					// What may exist at the provider is never forgotten:
					// only a lookup's "not found" clears it.
					if me, set := d.Settle.MayExist(); set && !me && !(step == Lookup && code == providers.NotFound) {
						t.Errorf("%s: clears may_exist", name)
					}
					if step == Submit && (providers.MaybeCreated(code) || out.Err == nil) {
						if me, _ := d.Settle.MayExist(); !me {
							t.Errorf("%s: a create that may have landed does not set may_exist", name)
						}
					}
					// A paid answer is always recorded paid with its id,
					// unless held for a person: found by matching and not
					// paid by the worker, it may be another's order.
					if out.Err == nil && out.Result.Status == providers.StatusPaid && !out.Result.Held && step != Prepare && (d.Settle.To() != ledger.StatePaid || d.Then.Next != Done) {
						t.Errorf("%s: paid answer gave %q / %v", name, d.Settle.To(), d.Then.Next)
					}
					// A held answer, paid or not, is never recorded paid
					// nor errored: it waits for a person.
					if out.Err == nil && out.Result.Held && step != Prepare && (d.Settle.To() != ledger.StatePending || d.Then.Next != Wait) {
						t.Errorf("%s: held answer gave %q / %v", name, d.Settle.To(), d.Then.Next)
					}
					// A pending order is errored by a check only when the
					// check answers: unpaid, or the order no longer found.
					if rn == "pending" && (step == Poll || step == Pay) && out.Err != nil && code != providers.NotFound && d.Settle.To() == ledger.StateErrored {
						t.Errorf("%s: a failed check errored the pending order (%q)", name, d.Then.Reason)
					}
				}
			}
		}
	}
}

func TestDecideBudgetDeadlineAndWindowEdges(t *testing.T) {
	t.Parallel()
	p := policy()
	unavailable := Outcome{Err: errs[providers.Unavailable]}
	notFound := Outcome{Err: errs[providers.NotFound]}

	// The budget: failures 1 of 3 → retry; 2 of 3 → the third failure errors.
	r := retryMarked() // failures 1
	if d := Decide(r, Submit, unavailable, p, t0); d.Settle.To() != ledger.StateSubmitting || d.Then.Next != Retry || d.Then.Delay != 2*time.Second {
		t.Errorf("second failure: %q %v %s, want submitting, retry after 2s", d.Settle.To(), d.Then.Next, d.Then.Delay)
	}
	r.Failures = 2
	if d := Decide(r, Submit, unavailable, p, t0); d.Settle.To() != ledger.StateErrored || !strings.Contains(d.Then.Reason, "gave up after 3 failed attempts") {
		t.Errorf("third failure: %q %q, want errored after 3", d.Settle.To(), d.Then.Reason)
	}
	// Not found after the budget was spent on ambiguous creates: errored.
	u := unknown()
	u.Failures = 3
	if d := Decide(u, Lookup, notFound, p, t0); d.Settle.To() != ledger.StateErrored || !strings.Contains(d.Then.Reason, "not created after 3 failed attempts") {
		t.Errorf("not found, budget spent: %q %q", d.Settle.To(), d.Then.Reason)
	}
	// Not found past the deadline: errored; just before: submit again.
	u = unknown()
	if d := Decide(u, Lookup, notFound, p, t0.Add(time.Hour+time.Millisecond)); d.Settle.To() != ledger.StateErrored {
		t.Errorf("not found past the deadline: %q, want errored", d.Settle.To())
	}
	if d := Decide(u, Lookup, notFound, p, t0.Add(time.Hour)); d.Settle.To() != ledger.StateSubmitting || d.Then.Next != Continue {
		t.Errorf("not found at the deadline: %q %v, want submitting, continue", d.Settle.To(), d.Then.Next)
	}
	// Re-driven by an operator: the deadline counts from the re-drive.
	rd := unknown()
	rd.RedrivenAt = t0.Add(2 * time.Hour)
	if d := Decide(rd, Lookup, notFound, p, t0.Add(2*time.Hour+30*time.Minute)); d.Settle.To() != ledger.StateSubmitting || d.Then.Next != Continue {
		t.Errorf("not found half an hour after a re-drive: %q %v, want submitting, continue", d.Settle.To(), d.Then.Next)
	}
	if d := Decide(rd, Lookup, notFound, p, t0.Add(3*time.Hour+time.Millisecond)); d.Settle.To() != ledger.StateErrored {
		t.Errorf("not found past the deadline after a re-drive: %q, want errored", d.Settle.To())
	}
	// A failed lookup past the deadline: left unknown for a person.
	if d := Decide(u, Lookup, unavailable, p, t0.Add(2*time.Hour)); d.Settle.To() != ledger.StateUnknown || d.Then.Next != Stop || !strings.Contains(d.Then.Reason, "left for an operator") {
		t.Errorf("failed lookup past the deadline: %q %v %q", d.Settle.To(), d.Then.Next, d.Then.Reason)
	}
	// The pending window: still pending just inside it, errored past it.
	pd := pending() // pending since t0+1m
	pendingOut := Outcome{Result: providers.Result{Status: providers.StatusPending}}
	if d := Decide(pd, Poll, pendingOut, p, t0.Add(31*time.Minute)); d.Settle.To() != ledger.StatePending || d.Then.Next != Wait {
		t.Errorf("pending at the window's end: %q %v", d.Settle.To(), d.Then.Next)
	}
	unpaidOut := Outcome{Result: providers.Result{Status: providers.StatusPending, Unpaid: true}}
	if d := Decide(pd, Poll, unpaidOut, p, t0.Add(31*time.Minute+time.Millisecond)); d.Settle.To() != ledger.StateErrored || !strings.Contains(d.Then.Reason, "pending window") {
		t.Errorf("unpaid past the window: %q %q", d.Settle.To(), d.Then.Reason)
	}
	// Pending but not said to be unpaid (being paid, by anyone, or a
	// status not known): it may yet be paid, so it is not errored unpaid.
	if d := Decide(pd, Poll, pendingOut, p, t0.Add(31*time.Minute+time.Millisecond)); d.Settle.To() != ledger.StatePending || !strings.Contains(d.Then.Reason, "does not say it is unpaid") {
		t.Errorf("being paid past the window: %q %q; want pending", d.Settle.To(), d.Then.Reason)
	}
	// A failed check says nothing of where the order stands: past the
	// window it is kept pending, checked until a check tells (errored only
	// on one that finds it unpaid).
	if d := Decide(pd, Poll, unavailable, p, t0.Add(32*time.Minute)); d.Settle.To() != "" || d.Then.Next != Wait || !strings.Contains(d.Then.Reason, "errored only on a check that finds it unpaid") {
		t.Errorf("failed poll past the window: %q %v %q, want it kept pending, checked again", d.Settle.To(), d.Then.Next, d.Then.Reason)
	}
	// An order held for a person (matched, not paid without one) stays
	// pending past the window, saying why; so does a matched order whose
	// check fails then.
	held := Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P8", Matched: true, Held: true}}
	if d := Decide(pd, Poll, held, p, t0.Add(3*time.Hour)); d.Settle.To() != ledger.StatePending || d.Then.Next != Wait || !strings.Contains(d.Then.Reason, "waits for a person") {
		t.Errorf("held order past the window: %q %v %q; want pending, waiting for a person", d.Settle.To(), d.Then.Next, d.Then.Reason)
	}
	// Held for another reason than a match (an order the provider will
	// not pay in its status): pending too, and the reason does not say
	// matched.
	heldOwn := Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1", Unpaid: true, Held: true}}
	if d := Decide(pd, Poll, heldOwn, p, t0.Add(3*time.Hour)); d.Settle.To() != ledger.StatePending || d.Then.Next != Wait || strings.Contains(d.Then.Reason, "matching") || !strings.Contains(d.Then.Reason, "waits for a person") {
		t.Errorf("held order, not matched, past the window: %q %v %q; want pending, waiting for a person, not said matched", d.Settle.To(), d.Then.Next, d.Then.Reason)
	}
	pm := pending()
	pm.Matched = true
	if d := Decide(pm, Poll, unavailable, p, t0.Add(3*time.Hour)); d.Settle.To() == ledger.StateErrored {
		t.Errorf("failed check of a matched order past the window: errored, want it kept for a person")
	}
	// A pay of unknown effect is no proof of "still unpaid": past the
	// window, a check within a listing lag of the pay mark, or a failed
	// check after a pay that was not refused before the provider acted,
	// keeps the order pending; a check that finds it unpaid a lag after
	// the pay errors it.
	lagged := p
	lagged.ListingLag = 2 * time.Minute
	late := t0.Add(31*time.Minute + time.Second) // past the window
	paid := pending()
	paid.PaySentAt, paid.PayMarked = late.Add(-2*time.Second), true
	ambiguous := Outcome{Err: errs[providers.Ambiguous]}
	for name, c := range map[string]struct {
		rec  *ledger.Record
		step Step
		out  Outcome
	}{
		"our pay answered pending":         {paid, Pay, pendingOut},
		"our pay answered payable":         {paid, Pay, payable(true)},
		"our pay timed out after it left":  {paid, Pay, ambiguous},
		"a check within the lag":           {paid, Poll, pendingOut},
		"a failed check within the lag":    {paid, Poll, unavailable},
		"a failed check after an old pay":  {withPaySent(pending(), t0.Add(5*time.Minute)), Poll, unavailable},
		"a failed lookup after an old pay": {withPaySent(pending(), t0.Add(5*time.Minute)), Lookup, ambiguous},
		"being paid after an old pay":      {withPaySent(pending(), t0.Add(5*time.Minute)), Poll, pendingOut},
	} {
		d := Decide(c.rec, c.step, c.out, lagged, late)
		if d.Settle.To() == ledger.StateErrored || d.Then.Next == Stop || d.Then.Next == Continue {
			t.Errorf("%s past the window: %q %v %q; want it kept pending and checked again, no pay", name, d.Settle.To(), d.Then.Next, d.Then.Reason)
		}
	}
	for _, payableNow := range []bool{true, false} {
		// Not payable: this worker no longer pays (auto-pay turned off
		// since); unpaid all the same.
		if d := Decide(withPaySent(pending(), late.Add(-lagged.ListingLag)), Poll, payable(payableNow), lagged, late); d.Settle.To() != ledger.StateErrored {
			t.Errorf("unpaid (payable %v) a listing lag after the pay, past the window: %q %v, want errored", payableNow, d.Settle.To(), d.Then.Next)
		}
	}
	// A pay the provider answered as accepted: the pay step records it;
	// a check that still finds the order unpaid and payable a lag or more
	// later, within the window or past it, neither pays again nor errors
	// the order: it waits for a person, checked no more often than the
	// poll delay.
	if d := Decide(paid, Pay, payable(true), lagged, late); !d.Settle.PayAccepted().Equal(paid.PaySentAt) {
		t.Errorf("our pay answered: the transition records no accepted pay (%v)", d.Settle.PayAccepted())
	}
	accepted := withPaySent(pending(), t0.Add(5*time.Minute))
	accepted.PayAcceptedAt = accepted.PaySentAt
	for _, now := range []time.Time{t0.Add(10 * time.Minute), late} {
		d := Decide(accepted, Poll, payable(true), lagged, now)
		if d.Settle.To() != ledger.StatePending || d.Then.Next != Wait || !strings.Contains(d.Then.Reason, "was accepted by the provider") || !strings.Contains(d.Then.Reason, "waits for a person") || d.Then.Delay < time.Minute/2 {
			t.Errorf("unpaid %s after an accepted pay: %q %v %v %q; want pending, no pay, waiting for a person", now.Sub(accepted.PaySentAt), d.Settle.To(), d.Then.Next, d.Then.Delay, d.Then.Reason)
		}
	}
	// An accepted pay of an earlier mark does not hold a later one back.
	older := withPaySent(pending(), t0.Add(5*time.Minute))
	older.PayAcceptedAt = t0.Add(4 * time.Minute)
	if d := Decide(older, Poll, payable(true), lagged, t0.Add(10*time.Minute)); d.Then.Next != Continue || d.Then.Step != Pay {
		t.Errorf("unpaid a lag after a pay of unknown effect (an earlier one accepted): %v %v, want it paid again", d.Then.Next, d.Then.Step)
	}
	// Payable without Unpaid (a provider that forgot to say it) is unpaid
	// all the same: errored, never paid again past the window.
	payableOnly := Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1", Payable: true}}
	if d := Decide(withPaySent(pending(), late.Add(-lagged.ListingLag)), Poll, payableOnly, lagged, late); d.Settle.To() != ledger.StateErrored {
		t.Errorf("payable, not said unpaid, past the window: %q %v, want errored", d.Settle.To(), d.Then.Next)
	}
	// A pay refused before the provider acted, past the window: no check
	// said unpaid, so it is kept pending, the pay mark cleared; the next
	// check that finds it unpaid errors it (no pay of the worker's may
	// show any more).
	refused := withPaySent(pending(), late)
	refused.PayMarked = true
	if d := Decide(refused, Pay, Outcome{Err: errs[providers.RateLimited]}, lagged, late); d.Settle.To() != "" || d.Then.Next != Wait || !d.Settle.ClearsPaySent() {
		t.Errorf("pay refused before acting, past the window: %q %v, clears the pay mark %v; want kept pending, the mark cleared", d.Settle.To(), d.Then.Next, d.Settle.ClearsPaySent())
	}
	if d := Decide(pending(), Poll, payable(true), lagged, late.Add(time.Second)); d.Settle.To() != ledger.StateErrored {
		t.Errorf("unpaid past the window, no pay marked: %q, want errored", d.Settle.To())
	}
	// Poll delays double with time pending, up to a minute.
	for _, c := range []struct {
		after time.Duration
		want  time.Duration
	}{{0, 2 * time.Second}, {9 * time.Second, 4 * time.Second}, {17 * time.Second, 8 * time.Second}, {20 * time.Minute, time.Minute}} {
		d := Decide(pd, Poll, pendingOut, p, pd.PendingSince.Add(c.after))
		if d.Then.Delay != c.want {
			t.Errorf("pending %s: next check in %s, want %s", c.after, d.Then.Delay, c.want)
		}
	}
	// The provider's own hint wins.
	if d := Decide(pd, Poll, Outcome{Result: providers.Result{Status: providers.StatusPending, NextCheck: 9 * time.Second}}, p, t0.Add(2*time.Minute)); d.Then.Delay != 9*time.Second {
		t.Errorf("next check = %s, want the provider's 9s", d.Then.Delay)
	}
	// Payable: pay next, in the same run; after a pay, never pay again at once.
	payable := Outcome{Result: providers.Result{Status: providers.StatusPending, Payable: true}}
	if d := Decide(pd, Poll, payable, p, t0.Add(2*time.Minute)); d.Then.Next != Continue || d.Then.Step != Pay {
		t.Errorf("payable poll: %v %s, want continue to pay", d.Then.Next, d.Then.Step)
	}
	if d := Decide(pd, Pay, payable, p, t0.Add(2*time.Minute)); d.Then.Next != Wait {
		t.Errorf("payable after a pay: %v, want wait", d.Then.Next)
	}
	// An order found by matching the listing is recorded matched, once,
	// whatever it is found to be; it is paid only when the provider says
	// Payable (which it does not for a matched order unless told to).
	for _, st := range []providers.Status{providers.StatusPending, providers.StatusPaid} {
		found := Outcome{Result: providers.Result{Status: st, ProviderOrderID: "P8", Matched: true}}
		d := Decide(pd, Lookup, found, p, t0.Add(2*time.Minute))
		if !d.Settle.Matched() || d.Settle.ProviderOrderID() != "P8" || d.Then.Step == Pay {
			t.Errorf("matched %s lookup: matched %v, id %q, then %v %s; want recorded matched with its id, no pay", st, d.Settle.Matched(), d.Settle.ProviderOrderID(), d.Then.Next, d.Then.Step)
		}
		again := *pd
		again.Matched = true
		if d := Decide(&again, Poll, found, p, t0.Add(2*time.Minute)); d.Settle.Matched() {
			t.Errorf("matched %s poll of a record already matched: recorded again", st)
		}
	}
	if d := Decide(pd, Poll, payable, p, t0.Add(2*time.Minute)); d.Settle.Matched() {
		t.Error("a result not matched is recorded matched")
	}
	// A successful first create that comes back pending starts the window.
	q := queuedMarked()
	d := Decide(q, Submit, Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P7"}}, p, t0)
	if d.Settle.To() != ledger.StatePending || d.Then.Delay != 2*time.Second {
		t.Errorf("pending create: %q %s", d.Settle.To(), d.Then.Delay)
	}
	// Prepare: records the snapshot and continues to the create.
	if d := Decide(needsSnapshot(), Prepare, Outcome{Known: []string{"A", "B"}}, p, t0); d.Then.Next != Continue || d.Then.Step != Submit || d.Settle.To() != "" {
		t.Errorf("prepare: %q %v %s", d.Settle.To(), d.Then.Next, d.Then.Step)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: time.Second, Max: 5 * time.Second}
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		if got := b.Ceiling(n); got != want {
			t.Errorf("Ceiling(%d) = %s, want %s", n, got, want)
		}
	}
	if got := b.Ceiling(1000); got != 5*time.Second {
		t.Errorf("Ceiling(1000) = %s, want the cap", got)
	}
	for range 1000 {
		if d := b.Delay(2); d < 0 || d > 4*time.Second {
			t.Fatalf("Delay(2) = %s, outside [0, 4s]", d)
		}
	}
}

// An id a failed create was answered with, which a lookup then found
// nowhere (believed once the listing lag passed), is forgotten with the
// not-found that sends a create again: kept, the next create's lookups
// would go by it, and that create's own answer would not be recorded (a
// review). A matched id is left to operators.
func TestNotFoundForgetsAFailedCreatesID(t *testing.T) {
	t.Parallel()
	notFound := Outcome{Err: errs[providers.NotFound]}
	rec := unknown()
	rec.ProviderOrderID = "X-1"
	d := Decide(rec, Lookup, notFound, policy(), t0.Add(time.Minute))
	if forgets, own := d.Settle.ForgetsID(); d.Settle.To() != ledger.StateSubmitting || !forgets || !own {
		t.Errorf("not found, id X-1 held: to %q, forgets the id %v (own %v); want submitting, the id forgotten as its own", d.Settle.To(), forgets, own)
	}
	rec.Matched = true
	d = Decide(rec, Lookup, notFound, policy(), t0.Add(time.Minute))
	if forgets, _ := d.Settle.ForgetsID(); forgets {
		t.Errorf("not found, a matched id held: the id forgotten; want it left to operators")
	}
	rec = unknown()
	d = Decide(rec, Lookup, notFound, policy(), t0.Add(time.Minute))
	if forgets, _ := d.Settle.ForgetsID(); forgets {
		t.Errorf("not found, no id held: forgets one")
	}
	// And the next create's own answer is recorded.
	next := mayHaveExisted()
	out := Outcome{Err: errs[providers.Ambiguous], Result: providers.Result{ProviderOrderID: "Y-own"}}
	if d := Decide(next, Submit, out, policy(), t0); d.Settle.ProviderOrderID() != "Y-own" {
		t.Errorf("an ambiguous create answered with Y-own records %q", d.Settle.ProviderOrderID())
	}
}

// A provider that answers a lookup without a status has the order looked
// up again; past the deadline, it is left for a person, its task ended,
// as any order still unknown then (a review: it went round until asynq's
// retries ran out).
func TestStatuslessAnswerPastTheDeadlineIsLeftForAPerson(t *testing.T) {
	t.Parallel()
	rec := unknown()
	p := policy()
	none := Outcome{Result: providers.Result{}}
	if d := Decide(rec, Lookup, none, p, t0.Add(time.Minute)); d.Settle.To() != ledger.StateUnknown || d.Then.Next != Retry {
		t.Errorf("within the deadline: to %q then %v; want unknown, retried", d.Settle.To(), d.Then.Next)
	}
	d := Decide(rec, Lookup, none, p, t0.Add(p.Deadline+time.Minute))
	if d.Settle.To() != ledger.StateUnknown || d.Then.Next != Stop || !LeftForAPerson(d.Settle.Reason()) {
		t.Errorf("past the deadline: to %q then %v, reason %q; want unknown, left for a person", d.Settle.To(), d.Then.Next, d.Settle.Reason())
	}
}

// A pending order lives past the deadline by design (polled through its
// pending window, or longer): a poll answered without a status past the
// deadline has it polled again, not left for a person (a review of the
// rule above).
func TestPendingPollWithoutStatusPastTheDeadlineIsRetried(t *testing.T) {
	t.Parallel()
	p := policy()
	p.PendingWindow = 48 * time.Hour
	d := Decide(pending(), Poll, Outcome{Result: providers.Result{}}, p, t0.Add(p.Deadline+time.Minute))
	if d.Then.Next == Stop || d.Then.Next == Rest || LeftForAPerson(d.Settle.Reason()) {
		t.Errorf("to %q then %v (%q); want it polled again", d.Settle.To(), d.Then.Next, d.Settle.Reason())
	}
}

// An order never sent whose params this worker rejects, past its deadline
// or its budget, is errored as its plan says, never marked as one a create
// of which may have been received (a review).
func TestParamsRejectedOfAnOrderNeverSentIsErrored(t *testing.T) {
	t.Parallel()
	p := policy()
	for name, c := range map[string]struct {
		rec *ledger.Record
		now time.Time
	}{
		"queued, past the deadline": {&ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateQueued, CreatedAt: t0}, t0.Add(p.Deadline + time.Minute)},
		"budget spent":              {&ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateSubmitting, CreatedAt: t0, Failures: 3, Attempts: 3}, t0.Add(time.Minute)},
		"queued, in time":           {&ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateQueued, CreatedAt: t0}, t0.Add(time.Minute)},
	} {
		d := ParamsRejected(c.rec, p, c.now, "bad")
		if v, set := d.Settle.MayExist(); set && v || d.Settle.To() != ledger.StateErrored || d.Then.Next != Stop {
			t.Errorf("%s: to %q then %v (%q); want errored, nothing said to exist", name, d.Settle.To(), d.Then.Next, d.Settle.Reason())
		}
	}
}

// A lookup's not-found within ListingLag of the last create is not
// believed: the order stays unknown (may exist) and is looked up again
// when the lag has passed; after it, the order is created again (or
// errored past its deadline or budget) as before.
func TestListingLag(t *testing.T) {
	t.Parallel()
	notFound := Outcome{Err: providers.Errorf(providers.NotFound, "op", "no such order")}
	p := policy()
	p.ListingLag = 2 * time.Minute
	off := policy()
	rec := func(mod func(r *ledger.Record)) *ledger.Record {
		r := unknown()
		mod(r)
		return r
	}
	created := t0.Add(10 * time.Minute)
	tests := []struct {
		name      string
		rec       *ledger.Record
		p         Policy
		now       time.Time
		wantNext  Next
		wantDelay time.Duration
		wantTo    ledger.State
	}{
		{"within the lag", rec(func(r *ledger.Record) { r.LastCreateAt = created }), p, created.Add(30 * time.Second), Wait, 31 * time.Second, ledger.StateUnknown}, // to half the lag (lookStep)
		{"lag over", rec(func(r *ledger.Record) { r.LastCreateAt = created }), p, created.Add(2*time.Minute + time.Millisecond), Continue, 0, ledger.StateSubmitting},
		{"lag off", rec(func(r *ledger.Record) { r.LastCreateAt = created }), off, created.Add(time.Second), Continue, 0, ledger.StateSubmitting},
		{"past the deadline, within the lag", rec(func(r *ledger.Record) { r.LastCreateAt = t0.Add(59*time.Minute + 30*time.Second) }), p, t0.Add(time.Hour + 10*time.Second), Wait, 21 * time.Second, ledger.StateUnknown},
		{"past the deadline, lag over", rec(func(r *ledger.Record) { r.LastCreateAt = t0.Add(59 * time.Minute) }), p, t0.Add(time.Hour + 2*time.Minute), Stop, 0, ledger.StateErrored},
		{"out of budget, within the lag", rec(func(r *ledger.Record) { r.LastCreateAt = created; r.Failures = 3 }), p, created.Add(time.Minute), Wait, time.Minute, ledger.StateUnknown},
		{"a record without the create's time: first attempt", rec(func(r *ledger.Record) { r.FirstAttemptAt = created }), p, created.Add(time.Minute), Wait, time.Minute, ledger.StateUnknown},
		{"recreated after Redis lost it", rec(func(r *ledger.Record) { r.Attempts, r.FirstAttemptAt, r.CreatedAt = 0, t0, created }), p, created.Add(time.Minute), Wait, time.Minute, ledger.StateUnknown},
		{"recreated, a lookup failed since", rec(func(r *ledger.Record) { r.Attempts, r.FirstAttemptAt, r.CreatedAt = 1, time.Time{}, created }), p, created.Add(time.Minute), Wait, time.Minute, ledger.StateUnknown},
		{"abandoned mid-flight", func() *ledger.Record { r := abandoned(); r.LastCreateAt = created; return r }(), p, created.Add(time.Second), Wait, 15 * time.Second, ledger.StateUnknown},
		// The create's time is Redis's; so is ReadAt: a worker whose clock
		// runs ahead (now) does not cut the lag short, nor does one behind
		// stretch it.
		{"worker clock ahead, within the lag on Redis's", rec(func(r *ledger.Record) { r.LastCreateAt = created; r.ReadAt = created.Add(time.Second) }), p, created.Add(10 * time.Minute), Wait, 15 * time.Second, ledger.StateUnknown},
		{"worker clock behind, lag over on Redis's", rec(func(r *ledger.Record) { r.LastCreateAt = created; r.ReadAt = created.Add(3 * time.Minute) }), p, created.Add(-time.Minute), Continue, 0, ledger.StateSubmitting},
		// Redis's clock stepped forward by a minute since the create was
		// stamped (a failover to a master whose clock is ahead): held, the
		// step lengthens the lag; once the hold is over, it does not.
		{"clock stepped a minute forward, lag over on the new clock only", rec(func(r *ledger.Record) {
			r.LastCreateAt, r.ReadAt, r.ClockHold = created, created.Add(2*time.Minute+30*time.Second), time.Minute
		}), p, created, Wait, 30 * time.Second, ledger.StateUnknown},
		{"clock stepped a minute forward, lag and step over", rec(func(r *ledger.Record) {
			r.LastCreateAt, r.ReadAt, r.ClockHold = created, created.Add(3*time.Minute), time.Minute
		}), p, created, Continue, 0, ledger.StateSubmitting},
		{"a hold with the lag off", rec(func(r *ledger.Record) { r.LastCreateAt, r.ClockHold = created, time.Minute }), off, created.Add(time.Second), Continue, 0, ledger.StateSubmitting},
		// The create was marked by a worker with a longer lag: this one
		// waits it out too, lag off or shorter; a shorter mark changes
		// nothing.
		{"marked with a longer lag, lag off here", rec(func(r *ledger.Record) { r.LastCreateAt, r.MarkLag = created, 5*time.Minute }), off, created.Add(3 * time.Minute), Wait, 2 * time.Minute, ledger.StateUnknown},
		{"marked with a longer lag, this one's over", rec(func(r *ledger.Record) { r.LastCreateAt, r.MarkLag = created, 5*time.Minute }), p, created.Add(3 * time.Minute), Wait, 2 * time.Minute, ledger.StateUnknown},
		{"marked with a longer lag, that one over too", rec(func(r *ledger.Record) { r.LastCreateAt, r.MarkLag = created, 5*time.Minute }), p, created.Add(5*time.Minute + time.Millisecond), Continue, 0, ledger.StateSubmitting},
		{"marked with a shorter lag", rec(func(r *ledger.Record) { r.LastCreateAt, r.MarkLag = created, time.Second }), p, created.Add(time.Minute), Wait, time.Minute, ledger.StateUnknown},
	}
	for _, tt := range tests {
		d := Decide(tt.rec, Lookup, notFound, tt.p, tt.now)
		if d.Then.Next != tt.wantNext || d.Then.Delay != tt.wantDelay || d.Settle.To() != tt.wantTo {
			t.Errorf("%s: next %v, delay %s, to %q; want %v, %s, %q (%s)", tt.name, d.Then.Next, d.Then.Delay, d.Settle.To(), tt.wantNext, tt.wantDelay, tt.wantTo, d.Then.Reason)
		}
		if d.Settle.IsAfresh() {
			t.Errorf("%s: a lookup's not-found drops the snapshot and first attempt of a create that may have been received", tt.name)
		}
		if tt.wantNext == Wait {
			if me, set := d.Settle.MayExist(); !set || !me {
				t.Errorf("%s: may_exist not kept while the listing may lag", tt.name)
			}
			if !strings.Contains(d.Then.Reason, "listing lag") {
				t.Errorf("%s: reason %q does not say why it waits", tt.name, d.Then.Reason)
			}
		}
	}
	// A create taken to end after the lookup (one lost with Redis's data
	// may leave until a call's time after the loss was found): said so,
	// not as a negative time before it (a black-box run found "the last
	// create left -59.992s before the lookup").
	ahead := rec(func(r *ledger.Record) { r.LastCreateAt = created.Add(time.Minute) })
	d := Decide(ahead, Lookup, notFound, p, created)
	if d.Then.Next != Wait || d.Then.Delay != 76*time.Second || strings.Contains(d.Then.Reason, "-") || !strings.Contains(d.Then.Reason, "a create may leave until 1m0s after the lookup") {
		t.Errorf("a create ahead: next %v, delay %s, reason %q", d.Then.Next, d.Then.Delay, d.Then.Reason)
	}
}

// Within a listing lag of 16 s or more, a lookup that did not find the
// order looks again at an eighth, a quarter and half of the lag after the
// last create (a second later: asynq runs a waiting task up to a second
// early), then at its end; a shorter lag is waited whole.
func TestLookStep(t *testing.T) {
	for _, c := range []struct {
		left, lag, want time.Duration
	}{
		{119 * time.Second, 2 * time.Minute, 15 * time.Second},                // 1s after the create: to 15s
		{105 * time.Second, 2 * time.Minute, 16 * time.Second},                // at 15s: to 30s
		{90 * time.Second, 2 * time.Minute, 31 * time.Second},                 // at 30s: to 60s
		{60 * time.Second, 2 * time.Minute, 60 * time.Second},                 // at 60s: to the end
		{10 * time.Second, 2 * time.Minute, 10 * time.Second},                 // near the end
		{3 * time.Minute, 2 * time.Minute, 76 * time.Second},                  // a create ahead
		{15 * time.Second, 15 * time.Second, 15 * time.Second},                // a short lag: whole
		{15900 * time.Millisecond, 16 * time.Second, 2900 * time.Millisecond}, // to 2s, and a second
	} {
		if got := lookStep(c.left, c.lag); got != c.want {
			t.Errorf("lookStep(%s left of %s) = %s, want %s", c.left, c.lag, got, c.want)
		}
	}
}

// A lookup that finds an order an earlier lookup did not find, half the
// listing lag or more after the last create, tells so (Decision.ListedLate,
// counted and logged by the handler); one not found sooner, or before the
// last create, or only under a step of Redis's clock held, does not. A
// not-found within the lag records when its lookup began.
func TestListedLate(t *testing.T) {
	p := policy()
	p.ListingLag = 2 * time.Minute
	created := t0.Add(time.Minute)
	found := Outcome{Result: providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P1"}, Attempt: &ledger.Attempt{Call: "lookup"}}
	unknown := func(f func(r *ledger.Record)) *ledger.Record {
		r := &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateUnknown, Attempts: 3, CreatedAt: t0, FirstAttemptAt: created, LastCreateAt: created, MayExist: true, ReadAt: created.Add(2 * time.Minute)}
		f(r)
		return r
	}
	for _, c := range []struct {
		name string
		rec  *ledger.Record
		want time.Duration
	}{
		{"unseen at half the lag", unknown(func(r *ledger.Record) { r.UnseenAt = created.Add(time.Minute) }), time.Minute},
		{"unseen later", unknown(func(r *ledger.Record) { r.UnseenAt = created.Add(90 * time.Second) }), 90 * time.Second},
		{"unseen sooner", unknown(func(r *ledger.Record) { r.UnseenAt = created.Add(59 * time.Second) }), 0},
		{"never unseen", unknown(func(*ledger.Record) {}), 0},
		{"unseen before the last create", unknown(func(r *ledger.Record) {
			r.UnseenAt, r.LastCreateAt = created.Add(time.Minute), created.Add(90*time.Second)
		}), 0},
		{"a clock step held", unknown(func(r *ledger.Record) { r.UnseenAt, r.ClockHold = created.Add(70*time.Second), 20*time.Second }), 0},
		{"a longer mark lag", unknown(func(r *ledger.Record) { r.UnseenAt, r.MarkLag = created.Add(70*time.Second), 4*time.Minute }), 0},
	} {
		d := Decide(c.rec, Lookup, found, p, c.rec.ReadAt)
		if d.Settle.To() != ledger.StatePaid || d.ListedLate != c.want {
			t.Errorf("%s: to %q, listed late %s; want paid, %s", c.name, d.Settle.To(), d.ListedLate, c.want)
		}
	}
	// Not for a not-found, whatever the record says.
	r := unknown(func(r *ledger.Record) { r.UnseenAt, r.ReadAt = created.Add(time.Minute), created.Add(100*time.Second) })
	d := Decide(r, Lookup, Outcome{Err: providers.Errorf(providers.NotFound, "op", "no such order")}, p, r.ReadAt)
	if d.ListedLate != 0 || d.Then.Next != Wait {
		t.Errorf("a not-found within the lag: listed late %s, next %v; want 0, Wait", d.ListedLate, d.Then.Next)
	}
	// Which records when it looked.
	if d.Settle.UnseenAt() != r.ReadAt {
		t.Errorf("a not-found within the lag records unseen at %v; want its Begin's %v", d.Settle.UnseenAt(), r.ReadAt)
	}
}

// A create refused for good after an earlier create that may have been
// received proves nothing about that one: the order is looked up, not
// errored. The first create's refusal still errors it.
func TestRefusalAfterAMaybeReceivedCreateLooksUp(t *testing.T) {
	t.Parallel()
	for _, code := range []providers.Code{providers.InvalidArgument, providers.PermissionDenied, providers.FailedPrecondition, providers.NotFound} {
		rec := retryMarked()
		rec.MayHaveExisted = true
		d := Decide(rec, Submit, Outcome{Err: errs[code]}, policy(), t0.Add(time.Minute))
		if d.Settle.To() != ledger.StateUnknown || d.Then.Next != Retry {
			t.Errorf("%s after a maybe-received create: to %q then %v, want unknown then retry", code, d.Settle.To(), d.Then.Next)
		}
		if me, set := d.Settle.MayExist(); !set || !me {
			t.Errorf("%s after a maybe-received create: may_exist not set", code)
		}
		if d.Settle.Failures() != rec.Failures+1 {
			t.Errorf("%s after a maybe-received create: failures %d, want %d (the budget bounds the lookups)", code, d.Settle.Failures(), rec.Failures+1)
		}
		first := retryMarked()
		if d := Decide(first, Submit, Outcome{Err: errs[code]}, policy(), t0.Add(time.Minute)); d.Settle.To() != ledger.StateErrored {
			t.Errorf("%s with no earlier create received: to %q, want errored", code, d.Settle.To())
		}
	}
}

// An ambiguous create whose answer carried the provider's id for the
// order keeps it, so the lookup asks for that order rather than search.
func TestAmbiguousCreateKeepsTheProvidersID(t *testing.T) {
	t.Parallel()
	out := Outcome{Err: errs[providers.Ambiguous], Result: providers.Result{ProviderOrderID: "P42"}}
	d := Decide(queuedMarked(), Submit, out, policy(), t0)
	if d.Settle.To() != ledger.StateUnknown || d.Settle.ProviderOrderID() != "P42" {
		t.Errorf("ambiguous create with an id: to %q, provider order id %q; want unknown, P42", d.Settle.To(), d.Settle.ProviderOrderID())
	}
	rec := queuedMarked()
	rec.ProviderOrderID = "P1"
	if d := Decide(rec, Submit, out, policy(), t0); d.Settle.ProviderOrderID() != "" {
		t.Errorf("an id already recorded was replaced by %q", d.Settle.ProviderOrderID())
	}
	if d := Decide(queuedMarked(), Submit, Outcome{Err: errs[providers.Ambiguous]}, policy(), t0); d.Settle.ProviderOrderID() != "" {
		t.Errorf("an id from nowhere: %q", d.Settle.ProviderOrderID())
	}
}

// A payable order is paid, and paid again only when a check a listing lag
// after the pay still finds it unpaid (the pay step's Begin marks the pay
// sent); a pay the provider refused before acting forgets the mark.
func TestPayAgainOnlyAfterTheListingLag(t *testing.T) {
	t.Parallel()
	p := policy()
	p.ListingLag = 2 * time.Minute
	payable := Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1", Payable: true}}
	now := t0.Add(2 * time.Minute)
	if d := Decide(pending(), Poll, payable, p, now); d.Then.Next != Continue || d.Then.Step != Pay {
		t.Fatalf("first payable check: %v %v; want continue to pay", d.Then.Next, d.Then.Step)
	}
	rec := pending()
	rec.PaySentAt = now
	for _, step := range []Step{Poll, Lookup, Submit, Pay} {
		if d := Decide(rec, step, payable, p, now.Add(p.ListingLag-time.Second)); d.Then.Next == Continue {
			t.Errorf("%s within the lag after a pay: %v %v; want a wait, no second pay", step, d.Then.Next, d.Then.Step)
		}
	}
	if d := Decide(rec, Poll, payable, p, now.Add(p.ListingLag)); d.Then.Next != Continue || d.Then.Step != Pay {
		t.Errorf("unpaid a listing lag after the pay: %v %v; want continue to pay", d.Then.Next, d.Then.Step)
	}
	// Under the hold of a step forward of Redis's clock, the lag is the
	// step longer.
	held := pending()
	held.PaySentAt, held.ClockHold = now, time.Minute
	if d := Decide(held, Poll, payable, p, now.Add(p.ListingLag+time.Minute-time.Second)); d.Then.Next == Continue {
		t.Errorf("within the lag and a held clock step after a pay: %v %v; want a wait, no second pay", d.Then.Next, d.Then.Step)
	}
	if d := Decide(held, Poll, payable, p, now.Add(p.ListingLag+time.Minute)); d.Then.Next != Continue || d.Then.Step != Pay {
		t.Errorf("unpaid a listing lag and a held clock step after the pay: %v %v; want continue to pay", d.Then.Next, d.Then.Step)
	}
	if d := Decide(rec, Pay, payable, p, now.Add(time.Hour)); d.Then.Next == Continue {
		t.Errorf("a pay answered payable continues to %v", d.Then.Step)
	}
	for code, err := range errs {
		d := Decide(rec, Pay, Outcome{Err: err}, p, now.Add(time.Second))
		if d.Then.Next == Continue {
			t.Errorf("pay failed with %s: continues to %v", code, d.Then.Step)
		}
		before := code == providers.RateLimited || code == providers.Unauthenticated
		if d.Settle.ClearsPaySent() != before {
			t.Errorf("pay failed with %s: clears the pay mark %v, want %v", code, d.Settle.ClearsPaySent(), before)
		}
		if d := Decide(rec, Poll, Outcome{Err: err}, p, now.Add(time.Second)); d.Settle.ClearsPaySent() {
			t.Errorf("a poll failed with %s clears the pay mark", code)
		}
	}
}

// An order found by matching and held for a person (ALIYUN_PAY_MATCHED
// off) past the pending window is paid, not errored, once the worker may
// pay matched orders: it was held by a person's part, and errored it would
// sit unpaid at the provider. The window judges it again once a pay was
// sent; an order not matched, found payable past the window without a pay
// (held by the provider until then), is errored as before.
func TestMatchedOrderPaidOnceAllowedPastTheWindow(t *testing.T) {
	t.Parallel()
	p := policy()
	p.ListingLag = 2 * time.Minute
	late := t0.Add(time.Minute + p.PendingWindow + time.Hour)
	payableMatched := Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1", Payable: true, Unpaid: true, Matched: true}}
	// Held as its check said while ALIYUN_PAY_MATCHED was off.
	held := pending()
	d := Decide(held, Poll, Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1", Held: true, Unpaid: true, Matched: true}}, p, t0.Add(2*time.Minute))
	if d.Then.Next != Wait {
		t.Fatalf("a matched order, unpaid, not paid automatically: %v (%s); want a wait for a person", d.Then.Next, d.Then.Reason)
	}
	rec := pending()
	rec.Matched, rec.Reason = true, d.Settle.Reason()
	first := Decide(rec, Poll, payableMatched, p, late)
	if first.Then.Next != Continue || first.Then.Step != Pay {
		t.Errorf("a matched order held past the window, payable now: %v %v (%s); want continue to pay", first.Then.Next, first.Then.Step, first.Then.Reason)
	}
	if got := first.Settle.PendingSince(); !got.Equal(late) {
		t.Errorf("a matched order paid first past the window: its window begins %s; want at its first pay, %s", got, late)
	}
	// Its window runs from that first pay: a pay whose answer was lost
	// (a 503) is sent again a listing lag later, not errored at once
	// (a black-box run); the window then judges it as any order's.
	paying := pending()
	paying.Matched, paying.Reason, paying.PendingSince, paying.PaySentAt = true, rec.Reason, late, late
	if d := Decide(paying, Poll, payableMatched, p, late.Add(p.ListingLag)); d.Then.Next != Continue || d.Then.Step != Pay {
		t.Errorf("a matched order whose first pay's answer was lost, unpaid a listing lag later: %q %v %v (%s); want paid again", d.Settle.To(), d.Then.Next, d.Then.Step, d.Then.Reason)
	}
	if d := Decide(paying, Poll, payableMatched, p, late.Add(p.PendingWindow+time.Second)); d.Settle.To() != ledger.StateErrored {
		t.Errorf("a matched order unpaid past the window run from its first pay: to %q (%s); want errored", d.Settle.To(), d.Then.Reason)
	}
	// Held for another reason (after a loss of the ledger's data; a pay
	// refused before acting since): errored at the window, as before.
	lost := pending()
	lost.Matched, lost.Reason, lost.LookedFirstAt = true, rec.Reason, t0
	if d := Decide(lost, Poll, payableMatched, p, late); d.Settle.To() != ledger.StateErrored {
		t.Errorf("a matched order held after a loss of the ledger's data, payable past the window: to %q (%s); want errored", d.Settle.To(), d.Then.Reason)
	}
	refusedPay := pending()
	refusedPay.Matched, refusedPay.Reason = true, "pending; the pay was refused before the provider acted"
	if d := Decide(refusedPay, Poll, payableMatched, p, late); d.Settle.To() != ledger.StateErrored {
		t.Errorf("a matched order whose pay was refused, payable past the window: to %q (%s); want errored", d.Settle.To(), d.Then.Reason)
	}
	paidOnce := pending()
	paidOnce.Matched, paidOnce.PaySentAt = true, late.Add(-p.ListingLag)
	if d := Decide(paidOnce, Poll, payableMatched, p, late); d.Settle.To() != ledger.StateErrored {
		t.Errorf("a matched order still unpaid a listing lag after the pay, past the window: to %q (%s); want errored", d.Settle.To(), d.Then.Reason)
	}
	notMatched := payable(true)
	if d := Decide(pending(), Poll, notMatched, p, late); d.Settle.To() != ledger.StateErrored {
		t.Errorf("an order not matched found payable past the window: to %q (%s); want errored", d.Settle.To(), d.Then.Reason)
	}
}

// payable is a pending check that says the order is unpaid, payable by
// this worker or not.
func payable(yes bool) Outcome {
	return Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1", Payable: yes, Unpaid: true}}
}

func withPaySent(rec *ledger.Record, at time.Time) *ledger.Record {
	rec.PaySentAt = at
	return rec
}

// An order found by matching and found paid, by a provider that would
// have paid it itself but did not (Result.Held on a paid result), was paid
// by someone else: perhaps the device's user, for an order of their own
// bought while our create made nothing. Recorded paid, that order would
// stand for ours. It stays pending, recorded matched, past the window
// too, saying why, until a person resolves it (paid or errored) or a later
// check settles it (the provider, told a match is ours, no longer holds
// it). A matched order the worker itself paid (its pay marked) is
// recorded paid; so is a matched paid order not held (a provider that
// never pays: the buyer pays every order, ours included).
func TestHeldPaidOrderWaitsForAPerson(t *testing.T) {
	t.Parallel()
	p := policy()
	heldPaid := Outcome{Result: providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P8", Matched: true, Held: true}}
	for _, tc := range []struct {
		name string
		rec  *ledger.Record
		step Step
		now  time.Time
	}{
		{"first lookup after an ambiguous create", unknown(), Lookup, t0.Add(2 * time.Minute)},
		{"poll of a matched pending order", func() *ledger.Record { r := pending(); r.Matched = true; return r }(), Poll, t0.Add(2 * time.Minute)},
		{"poll past the window", func() *ledger.Record { r := pending(); r.Matched = true; return r }(), Poll, t0.Add(3 * time.Hour)},
	} {
		d := Decide(tc.rec, tc.step, heldPaid, p, tc.now)
		if d.Settle.To() != ledger.StatePending || d.Then.Next != Wait || d.Then.Delay <= 0 || !strings.Contains(d.Then.Reason, "found paid") {
			t.Errorf("%s: %q %v %s %q; want pending, waiting for a person", tc.name, d.Settle.To(), d.Then.Next, d.Then.Delay, d.Then.Reason)
		}
		if d.Settle.ProviderOrderID() != "P8" || d.Settle.Matched() == tc.rec.Matched {
			t.Errorf("%s: id %q, matched %v; want P8, recorded matched (once)", tc.name, d.Settle.ProviderOrderID(), d.Settle.Matched())
		}
	}
	// The worker paid it (PayMatched then): paid.
	paidByUs := pending()
	paidByUs.Matched, paidByUs.PaySentAt = true, t0.Add(90*time.Second)
	if d := Decide(paidByUs, Poll, heldPaid, p, t0.Add(2*time.Minute)); d.Settle.To() != ledger.StatePaid || d.Then.Next != Done {
		t.Errorf("held paid, the worker's pay marked: %q %v; want paid", d.Settle.To(), d.Then.Next)
	}
	// Not held (the buyer pays every order): paid, and recorded matched.
	notHeld := heldPaid
	notHeld.Result.Held = false
	if d := Decide(unknown(), Lookup, notHeld, p, t0.Add(2*time.Minute)); d.Settle.To() != ledger.StatePaid || !d.Settle.Matched() || d.Settle.ProviderOrderID() != "P8" {
		t.Errorf("matched paid, not held: %q matched %v id %q; want paid, matched, P8", d.Settle.To(), d.Settle.Matched(), d.Settle.ProviderOrderID())
	}
	// Never paid by the worker, even if a provider said Payable too.
	both := heldPaid
	both.Result.Payable = true
	if d := Decide(unknown(), Lookup, both, p, t0.Add(2*time.Minute)); d.Then.Next == Continue {
		t.Errorf("held paid and payable: continues to %s", d.Then.Step)
	}
}

// Past the pending window an order whose create answered (its provider
// order id known), that no check has found unpaid since, is not errored
// by failed checks: it may have been paid (the buyer pays, without
// auto-pay) and errored it would sit paid at the provider with the order
// recorded a failure. It stays pending and is checked on.
func TestFailedChecksPastTheWindowKeepTheOrderPending(t *testing.T) {
	t.Parallel()
	p := policy()
	for code, err := range errs {
		if code == providers.NotFound {
			continue
		}
		for _, step := range []Step{Poll, Pay} {
			rec := pending() // P1, from the create's answer; not matched, no pay sent
			d := Decide(rec, step, Outcome{Err: err}, p, t0.Add(5*time.Hour))
			if d.Settle.To() == ledger.StateErrored || d.Then.Next == Stop {
				t.Errorf("%s failed with %s past the window: %q %v %q; want it kept pending", step, code, d.Settle.To(), d.Then.Next, d.Then.Reason)
			}
		}
	}
}

// An id in the answer to the order's own create is marked answered (it
// outweighs another order's match of it in the ledger); one found by
// matching, or by a lookup, is not.
func TestCreateAnswerIDIsAnswered(t *testing.T) {
	t.Parallel()
	p := Policy{MaxAttempts: 3, Deadline: time.Hour, ConfigWait: time.Second, Backoff: Backoff{Base: time.Second, Max: time.Minute}}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := &ledger.Record{Provider: "aliyun", OrderNo: "A", State: ledger.StateSubmitting, Inflight: 1, InflightMarked: true, CreatedAt: now.Add(-time.Minute)}
	for _, tt := range []struct {
		step Step
		r    providers.Result
		want bool
	}{
		{Submit, providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1", Payable: true, Unpaid: true}, true},
		{Submit, providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P1"}, true},
		{Submit, providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P1", Matched: true}, false},
		{Lookup, providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P1"}, false},
		{Lookup, providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P1", Matched: true}, false},
	} {
		d := Decide(rec, tt.step, Outcome{Result: tt.r}, p, now)
		if d.Settle.Answered() != tt.want {
			t.Errorf("%v %+v: answered %v, want %v", tt.step, tt.r, d.Settle.Answered(), tt.want)
		}
	}
	// A create that failed, its answer naming an id (undocumented): not
	// enough to take the id from another order's match.
	out := Outcome{Err: providers.Errorf(providers.Ambiguous, "unicloud CreateOrder", "http 500"), Result: providers.Result{ProviderOrderID: "P1"}}
	if d := Decide(rec, Submit, out, p, now); d.Settle.Answered() {
		t.Errorf("ambiguous create naming P1: answered")
	}
}

// An order left unknown says why in its record: what made it unknown
// while its lookups go on, with what the last failed lookup met (every
// lookup's answer is in its history), unless a lookup found orders at the
// provider it cannot be told from (held twice): then that, for the person
// who must decide; and at the deadline, where its task ends, that it is
// left for an operator.
func TestUnknownOrdersRecordWhyTheyWait(t *testing.T) {
	listing := providers.Errorf(providers.Ambiguous, "lookup", "two orders new since the snapshot match; left to a person")
	rec := unknown()
	for i, e := range []error{errs[providers.Unavailable], errs[providers.RateLimited]} {
		// A second failed lookup's message replaces the first's, nothing
		// piles up.
		d := Decide(rec, Lookup, Outcome{Err: e}, policy(), t0.Add(time.Minute))
		if want := "timeout; last lookup: " + e.Error(); d.Settle.To() != ledger.StateUnknown || d.Settle.Reason() != want || d.Then.Next != Wait {
			t.Errorf("lookup %d failed (%v): %q reason %q, %v; want unknown, reason %q, a wait", i, e, d.Settle.To(), d.Settle.Reason(), d.Then.Next, want)
		}
		rec.Reason = d.Settle.Reason()
	}
	want := AmbiguousLookup + "lookup: ambiguous: two orders new since the snapshot match; left to a person"
	rec = unknown()
	var d Decision
	for range 2 { // a second such answer replaces the first, nothing piles up
		d = Decide(rec, Lookup, Outcome{Err: listing}, policy(), t0.Add(time.Minute))
		if d.Settle.To() != ledger.StateUnknown || d.Settle.Reason() != want || d.Then.Next != Wait {
			t.Errorf("ambiguous lookup: %q reason %q, %v; want unknown, reason %q, a wait", d.Settle.To(), d.Settle.Reason(), d.Then.Next, want)
		}
		rec.Reason = d.Settle.Reason()
	}
	// A later lookup answered otherwise: the record no longer says the
	// order could not be singled out.
	for _, err := range []error{errs[providers.Unavailable], providers.Errorf(providers.NotFound, "lookup", "none")} {
		d = Decide(rec, Lookup, Outcome{Err: err}, policy(), t0.Add(time.Minute))
		if strings.HasPrefix(d.Settle.Reason(), AmbiguousLookup) {
			t.Errorf("lookup %v after an ambiguous one: reason %q; want it no longer told ambiguous", providers.CodeOf(err), d.Settle.Reason())
		}
	}
	late := t0.Add(policy().Deadline + time.Minute)
	for _, err := range []error{listing, errs[providers.Unavailable]} {
		d = Decide(unknown(), Lookup, Outcome{Err: err}, policy(), late)
		if d.Settle.To() != ledger.StateUnknown || d.Then.Next != Stop || !strings.HasPrefix(d.Settle.Reason(), "outcome unknown at the deadline; left for an operator") {
			t.Errorf("lookup %v past the deadline: %q reason %q, %v; want unknown, left for an operator, stopped", providers.CodeOf(err), d.Settle.To(), d.Settle.Reason(), d.Then.Next)
		}
	}
}

// An order recorded after Redis lost the ledger's data (Begin marked no
// create: Record.LookFirstSince) is recorded unknown and looked up first,
// from as early as a create before the loss could be (the deadline before
// it), and so even past its deadline: errored, it would say that nothing
// was created.
func TestPlanStepAfterALossLooksFirst(t *testing.T) {
	t.Parallel()
	lost := t0.Add(-time.Minute)
	for _, now := range []time.Time{t0, t0.Add(2 * time.Hour)} {
		rec := &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateQueued, CreatedAt: t0, LookFirstSince: lost}
		got := PlanStep(rec, policy(), now)
		if got.Step != None || got.Settle.To() != ledger.StateUnknown || got.Then.Next != Continue || got.Then.Step != Lookup {
			t.Fatalf("at %v: %+v; want unknown, then a lookup", now, got)
		}
		if me, _ := got.Settle.MayExist(); !me || !got.Settle.IsAfresh() || !strings.Contains(got.Then.Reason, "lost the ledger's data") || !got.Settle.LookedFirst().Equal(lost) {
			t.Errorf("at %v: may_exist %v, afresh %v, looked first for %v, reason %q", now, me, got.Settle.IsAfresh(), got.Settle.LookedFirst(), got.Then.Reason)
		}
	}
	// Found by matching after the loss: held for a person, never paid,
	// whatever the provider's settings say (what told our orders of one
	// kind apart went with the data).
	looked := unknown()
	looked.LookedFirstAt = lost
	d := Decide(looked, Lookup, Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P7", Matched: true, Payable: true, Unpaid: true}}, policy(), t0)
	if d.Settle.To() != ledger.StatePending || d.Then.Next != Wait || !strings.Contains(d.Settle.Reason(), "found by matching") {
		t.Errorf("matched after a loss: %+v; want pending, held for a person, not paid", d)
	}
	d = Decide(looked, Lookup, Outcome{Result: providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P7", Matched: true}}, policy(), t0)
	if d.Settle.To() != ledger.StatePending {
		t.Errorf("matched and paid after a loss: %+v; want pending, held for a person", d)
	}
	// Past the window after the loss, a match is taken as any is.
	if d := Decide(looked, Lookup, Outcome{Result: providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P7", Matched: true}}, policy(), lost.Add(policy().LookFirstWindow())); d.Settle.To() != ledger.StatePaid {
		t.Errorf("matched past the window after the loss: %+v; want paid", d)
	}
	// A restored record's lookup for the loss believes no not-found
	// within the listing lag after the loss was found holding it: a
	// create lost with the data may have left until then.
	pl := policy()
	pl.ListingLag = 2 * time.Minute
	restored := &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateSubmitting, CreatedAt: t0.Add(-30 * time.Minute),
		FirstAttemptAt: t0.Add(-29 * time.Minute), LastCreateAt: t0.Add(-28 * time.Minute), LookFirstSince: lost, ReadAt: t0}
	plan := PlanStep(restored, pl, t0)
	after := *restored
	after.State, after.LookFirstSince, after.LookedFirstAt, after.LastCreateAt = ledger.StateUnknown, time.Time{}, lost, t0
	if plan.Settle.LookedFirst().IsZero() {
		t.Fatalf("restored record: %+v; want it looked up first", plan)
	}
	nf := Outcome{Err: providers.Errorf(providers.NotFound, "op", "none")}
	if d := Decide(&after, Lookup, nf, pl, t0.Add(time.Second)); d.Settle.To() != ledger.StateUnknown || d.Then.Next != Wait {
		t.Errorf("not found a second after the loss was found: %+v; want unknown, looked up again after the lag", d)
	}
	if w := (Policy{}).LookFirstWindow(); w != DefaultLookFirstWindow {
		t.Errorf("window without a deadline = %v, want %v", w, DefaultLookFirstWindow)
	}
	if w := policy().LookFirstWindow(); w != time.Hour {
		t.Errorf("window = %v, want the deadline", w)
	}
}

// An order that waits for a person records why (its order.pending event
// carries it), without the time of its next check; one that only waits
// to be paid records no reason.
func TestPendingReasonIsRecorded(t *testing.T) {
	t.Parallel()
	held := Decide(pending(), Poll, Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1", Matched: true, Held: true}}, policy(), t0.Add(2*time.Minute))
	if r := held.Settle.Reason(); !strings.Contains(r, "found by matching") || strings.Contains(r, "next check") {
		t.Errorf("held order's recorded reason %q; want why it waits, without the next check", r)
	}
	plain := Decide(pending(), Poll, Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1", Unpaid: true}}, policy(), t0.Add(2*time.Minute))
	if r := plain.Settle.Reason(); r != "" {
		t.Errorf("pending order's recorded reason %q; want none", r)
	}
}

// An order found by matching within the listing lag of the last create is
// not taken yet: our own may be made and not listed, the one found
// another's made meanwhile. It is looked up again once the lag has passed,
// and taken then. One found by its own id is taken at once.
func TestMatchWithinTheListingLagWaits(t *testing.T) {
	t.Parallel()
	p := policy()
	p.ListingLag = time.Minute
	rec := unknown()
	rec.LastCreateAt = t0
	matched := Outcome{Result: providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P7", Matched: true}}
	d := Decide(rec, Lookup, matched, p, t0.Add(20*time.Second))
	if d.Settle.To() != ledger.StateUnknown || d.Then.Next != Wait || d.Then.Delay != 40*time.Second || !strings.Contains(d.Then.Reason, "ours may not be listed yet") || d.Settle.Reason() != rec.Reason {
		t.Errorf("matched within the lag: %+v; want unknown, its reason kept, looked up again in 40s", d)
	}
	// Its history entry, "ok" with the provider's answer, says it was not
	// taken (an operator would read "found" beside a state left unknown).
	matched.Attempt = &ledger.Attempt{N: 2, Call: "lookup", Result: "ok", Message: "found by QueryOrders"}
	d = Decide(rec, Lookup, matched, p, t0.Add(20*time.Second))
	if a := d.Settle.Attempt(); a == nil || a.Message != "found by QueryOrders; not taken yet: found within the listing lag of the last create; looked up again in 40s" {
		t.Errorf("history entry of a match not taken: %+v", a)
	}
	if matched.Attempt.Message != "found by QueryOrders" {
		t.Errorf("the call's own attempt was changed: %q", matched.Attempt.Message)
	}
	if d := Decide(rec, Lookup, matched, p, t0.Add(time.Minute)); d.Settle.To() != ledger.StatePaid {
		t.Errorf("matched after the lag: %+v; want paid", d)
	}
	own := Outcome{Result: providers.Result{Status: providers.StatusPaid, ProviderOrderID: "P7"}}
	if d := Decide(rec, Lookup, own, p, t0.Add(time.Second)); d.Settle.To() != ledger.StatePaid {
		t.Errorf("found by its own id within the lag: %+v; want paid", d)
	}
}

// An order a create of which was answered with another order's id
// (Record.OwnedAnswer) is never taken for one surely not created: a
// lookup's not-found once its budget or time is spent leaves it for a
// person, whatever its reason says by then (a review: an ambiguous lookup
// in between overwrote the reason the hold went by, and the order ended
// errored "not created", open to a re-drive); before that, created again,
// it stays one that may exist.
func TestOwnedAnswerIsNeverSurelyNotCreated(t *testing.T) {
	t.Parallel()
	notFound := Outcome{Err: providers.Errorf(providers.NotFound, "op", "no such order")}
	p := policy()
	owned := func(failures int, reason string) *ledger.Record {
		r := unknown()
		r.OwnedAnswer, r.Failures, r.Reason = true, failures, reason
		return r
	}
	for name, c := range map[string]struct {
		rec *ledger.Record
		now time.Time
	}{
		"budget spent, reason an ambiguous lookup's": {owned(p.MaxAttempts, AmbiguousLookup+"two orders"), t0.Add(time.Minute)},
		"budget spent, failures mixed":               {owned(p.MaxAttempts, "timeout"), t0.Add(time.Minute)},
		"past the deadline":                          {owned(1, "timeout"), t0.Add(p.Deadline + time.Minute)},
	} {
		d := Decide(c.rec, Lookup, notFound, p, c.now)
		if v, set := d.Settle.MayExist(); d.Settle.To() != ledger.StateUnknown || !set || !v || !LeftForAPerson(d.Settle.Reason()) || d.Then.Next != Stop {
			t.Errorf("%s: to %q (may exist %v), then %v, %q; want unknown, left for a person", name, d.Settle.To(), v, d.Then.Next, d.Settle.Reason())
		}
	}
	d := Decide(owned(1, "timeout"), Lookup, notFound, p, t0.Add(time.Minute))
	if v, set := d.Settle.MayExist(); d.Settle.To() != ledger.StateSubmitting || !set || !v || d.Then.Step != Submit {
		t.Errorf("within budget and time: to %q (may exist %v), step %v; want created again, still one that may exist", d.Settle.To(), v, d.Then.Step)
	}
}

// The first checks after a pay come soon, however long the order was
// pending before it (its pay held back by a configuration problem, say):
// a pay shows within seconds. Without a pay, a long pending order is
// checked a minute apart, as before.
func TestFirstCheckAfterAPayComesSoon(t *testing.T) {
	t.Parallel()
	p := policy()
	p.ListingLag = 2 * time.Minute
	now := t0.Add(20 * time.Minute) // pending since t0+1m: 19 minutes
	rec := pending()
	rec.PaySentAt = now
	unpaid := Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1", Payable: true}}
	being := Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1"}}
	for _, c := range []struct {
		step Step
		out  Outcome
		at   time.Duration // after the pay
		want time.Duration
	}{
		{Pay, being, 0, p.PollInterval},
		{Pay, unpaid, 0, p.PollInterval},
		{Poll, unpaid, 5 * time.Second, p.PollInterval},
		{Poll, being, 10 * time.Second, 2 * p.PollInterval},
		{Poll, being, 10 * time.Minute, time.Minute},
	} {
		d := Decide(rec, c.step, c.out, p, now.Add(c.at))
		if d.Then.Next != Wait || d.Then.Delay != c.want {
			t.Errorf("%s %v after a pay of an order pending 19 minutes: %v in %s; want a wait of %s", c.step, c.at, d.Then.Next, d.Then.Delay, c.want)
		}
	}
	if d := Decide(pending(), Poll, being, p, now); d.Then.Next != Wait || d.Then.Delay != time.Minute {
		t.Errorf("a check of an order pending 19 minutes, never paid by the worker: %v in %s; want a wait of a minute", d.Then.Next, d.Then.Delay)
	}
	// A pay recorded ahead of now (Redis's clock stepped back since)
	// does not make every check come at the poll interval.
	ahead := pending()
	ahead.PaySentAt = now.Add(time.Hour)
	if d := Decide(ahead, Poll, being, p, now); d.Then.Next != Wait || d.Then.Delay != time.Minute {
		t.Errorf("a check of an order pending 19 minutes whose pay is recorded an hour ahead: %v in %s; want a wait of a minute", d.Then.Next, d.Then.Delay)
	}
}

// A create refused as a used order number (providers.ErrSaysExists) may
// have made the order, however the lookups read the listing (a server
// that pads, cuts or case-folds numbers lists ours in a form taken for
// another's): the refusal spends the failure budget and is recorded, and
// the order is never errored as not created at the end of its budget or
// time, by a lookup or before a create: left for a person.
func TestCreateRefusedAsUsedIsNeverErroredAsNotCreated(t *testing.T) {
	t.Parallel()
	p := policy()
	used := Outcome{Err: &providers.Error{Code: providers.Ambiguous, Op: "create", ProviderCode: "InvalidParameterValue", Message: "OrderNo 已存在", Err: providers.ErrSaysExists}}
	d := Decide(retryMarked(), Submit, used, p, t0.Add(time.Minute))
	if d.Settle.To() != ledger.StateUnknown || !d.Settle.OwnedAnswer() || d.Settle.Failures() != 2 {
		t.Fatalf("create refused as used: to %q, owned answer %v, failures %d; want unknown, recorded, 2", d.Settle.To(), d.Settle.OwnedAnswer(), d.Settle.Failures())
	}
	plain := Outcome{Err: &providers.Error{Code: providers.Ambiguous, Op: "create", Message: "HTTP 502"}}
	if d := Decide(retryMarked(), Submit, plain, p, t0.Add(time.Minute)); d.Settle.OwnedAnswer() {
		t.Error("a 502 on a create recorded as a refusal as used")
	}
	notFound := Outcome{Err: providers.Errorf(providers.NotFound, "op", "no such order")}
	spent := unknown()
	spent.OwnedAnswer, spent.Failures = true, p.MaxAttempts
	if d := Decide(spent, Lookup, notFound, p, t0.Add(time.Minute)); d.Settle.To() != ledger.StateUnknown || !LeftForAPerson(d.Settle.Reason()) {
		t.Errorf("not found once the budget is spent: to %q, %q; want unknown, left for a person", d.Settle.To(), d.Settle.Reason())
	}
	// Created again within the budget, then past the deadline before
	// that create: looked up, not errored.
	again := retryMarked()
	again.InflightMarked, again.Inflight, again.OwnedAnswer, again.Failures = false, 0, true, 1
	for name, now := range map[string]time.Time{"past the deadline": t0.Add(p.Deadline + time.Minute)} {
		pl := PlanStep(again, p, now)
		if pl.Settle.To() != ledger.StateUnknown || pl.Then.Step != Lookup {
			t.Errorf("%s before a create of an order refused as used: to %q, step %v; want unknown, looked up", name, pl.Settle.To(), pl.Then.Step)
		}
	}
	spentAgain := *again
	spentAgain.Failures = p.MaxAttempts
	if pl := PlanStep(&spentAgain, p, t0.Add(time.Minute)); pl.Settle.To() != ledger.StateUnknown || pl.Then.Step != Lookup {
		t.Errorf("budget spent before a create of an order refused as used: to %q, step %v; want unknown, looked up", pl.Settle.To(), pl.Then.Step)
	}
	// The last create of its budget fails before reaching the provider:
	// an earlier one may have made it, so looked up, not errored.
	last := retryMarked()
	last.OwnedAnswer, last.Failures = true, p.MaxAttempts-1
	down := Outcome{Err: providers.Errorf(providers.Unavailable, "create", "dial tcp: connection refused")}
	if d := Decide(last, Submit, down, p, t0.Add(time.Minute)); d.Settle.To() != ledger.StateUnknown || d.Then.Step != Lookup {
		t.Errorf("the budget's last create failed unsent after a refusal as used: to %q, step %v; want unknown, looked up", d.Settle.To(), d.Then.Step)
	}
	plainLast := retryMarked()
	plainLast.Failures = p.MaxAttempts - 1
	if d := Decide(plainLast, Submit, down, p, t0.Add(time.Minute)); d.Settle.To() != ledger.StateErrored {
		t.Errorf("the budget's last create failed unsent, never refused as used: to %q; want errored, as before", d.Settle.To())
	}
	plainAgain := *again
	plainAgain.OwnedAnswer = false
	if pl := PlanStep(&plainAgain, p, t0.Add(p.Deadline+time.Minute)); pl.Settle.To() != ledger.StateErrored {
		t.Errorf("past the deadline before a create of an order never refused as used: to %q; want errored, as before", pl.Settle.To())
	}
}

// A create the provider answered as throttled where no document says a
// throttle comes before it acts (providers.ErrThrottled: Aliyun's platform
// 429) may have made the order: looked up, never sent again blind, and
// the throttle spends none of the failure budget, as no throttle does.
func TestThrottledCreateIsLookedUpWithoutSpendingTheBudget(t *testing.T) {
	t.Parallel()
	p := policy()
	throttled := Outcome{Err: &providers.Error{Code: providers.Ambiguous, Op: "create", ProviderCode: "429", Message: "too many requests", Err: providers.ErrThrottled}}
	rec := retryMarked()
	rec.Failures = p.MaxAttempts - 1
	d := Decide(rec, Submit, throttled, p, t0.Add(time.Minute))
	if d.Settle.To() != ledger.StateUnknown || d.Settle.Failures() != p.MaxAttempts-1 {
		t.Errorf("throttled create: to %q, failures %d; want unknown (looked up), failures %d", d.Settle.To(), d.Settle.Failures(), p.MaxAttempts-1)
	}
	unsure := Outcome{Err: &providers.Error{Code: providers.Ambiguous, Op: "create", Message: "HTTP 502"}}
	if d := Decide(retryMarked(), Submit, unsure, p, t0.Add(time.Minute)); d.Settle.Failures() != retryMarked().Failures+1 {
		t.Errorf("a 502 on a create: failures %d; want %d, spent as before", d.Settle.Failures(), retryMarked().Failures+1)
	}
}

// A provider that shows a pay's effect later than the listing lag would be
// paid again at every check a lag after the last pay (a black-box run: 10
// orders paid 4 times each before the fault was lifted): after MaxPays
// pays whose answers were lost or failed, an order still unpaid is not
// paid again; checked on, it is errored when its pending window closes.
func TestPaysPerOrderAreBounded(t *testing.T) {
	t.Parallel()
	p := policy()
	p.ListingLag = 2 * time.Minute
	payable := Outcome{Result: providers.Result{Status: providers.StatusPending, ProviderOrderID: "P1", Payable: true, Unpaid: true}}
	now := t0.Add(5 * time.Minute)
	rec := pending()
	rec.PaySentAt, rec.Pays = now.Add(-p.ListingLag), MaxPays-1
	if d := Decide(rec, Poll, payable, p, now); d.Then.Next != Continue || d.Then.Step != Pay {
		t.Fatalf("unpaid a lag after pay %d of %d: %v %v; want continue to pay", rec.Pays, MaxPays, d.Then.Next, d.Then.Step)
	}
	rec.Pays = MaxPays
	d := Decide(rec, Poll, payable, p, now)
	if d.Then.Next == Continue || d.Settle.To() != ledger.StatePending || !strings.Contains(d.Settle.Reason(), "not paid again automatically") {
		t.Fatalf("unpaid a lag after pay %d of %d: %v %v, %q; want pending, not paid again", rec.Pays, MaxPays, d.Then.Next, d.Then.Step, d.Settle.Reason())
	}
	if d := Decide(rec, Poll, payable, p, t0.Add(p.PendingWindow+2*time.Minute)); d.Settle.To() != ledger.StateErrored || !strings.Contains(d.Settle.Reason(), fmt.Sprintf("the worker sent it %d pay(s) that may have reached the provider", MaxPays)) {
		t.Errorf("unpaid past the pending window after pay %d of %d: to %q, %q; want errored, as after any pay, saying how often the worker paid it", rec.Pays, MaxPays, d.Settle.To(), d.Settle.Reason())
	}
	// No pay of the worker's reached the provider (each refused before it
	// acted): the reason says so, not only "still unpaid".
	rec.Pays, rec.PaySentAt = 0, time.Time{}
	if d := Decide(rec, Poll, payable, p, t0.Add(p.PendingWindow+2*time.Minute)); d.Settle.To() != ledger.StateErrored || !strings.Contains(d.Settle.Reason(), "no pay of the worker's reached the provider") {
		t.Errorf("unpaid past the pending window, no pay reached the provider: to %q, %q; want errored, saying no pay reached it", d.Settle.To(), d.Settle.Reason())
	}
}

// A lookup's not-found believed records how long after the last create it
// was seen (on Redis's clock as Begin read it, less a step of that clock
// held: the create looks that much older); a create Begin did not mark for
// a not-found seen sooner than the worker's lag (AbsentRecheck) is looked
// up again, before the deadline or the budget is judged.
func TestAbsentLag(t *testing.T) {
	t.Parallel()
	p := policy()
	p.ListingLag = time.Minute
	for _, tc := range []struct {
		mark, hold, want time.Duration
	}{
		{0, 0, 10 * time.Minute},
		{5 * time.Minute, 0, 10 * time.Minute},
		{time.Minute, 2 * time.Minute, 8 * time.Minute},
	} {
		u := unknown()
		u.LastCreateAt, u.ReadAt, u.MarkLag, u.ClockHold = t0, t0.Add(10*time.Minute), tc.mark, tc.hold
		d := Decide(u, Lookup, Outcome{Err: &providers.Error{Code: providers.NotFound}}, p, t0.Add(10*time.Minute))
		lag, set := d.Settle.AbsentLag()
		if d.Settle.To() != ledger.StateSubmitting || !set || lag != tc.want {
			t.Errorf("not-found believed 10m after the create, mark lag %s, clock hold %s: to %q, absent lag %s (%v); want submitting, %s", tc.mark, tc.hold, d.Settle.To(), lag, set, tc.want)
		}
	}
	for name, at := range map[string]time.Time{"in time": t0.Add(time.Second), "past the deadline": t0.Add(2 * time.Hour)} {
		r := mayHaveExisted()
		r.InflightMarked, r.Inflight, r.Attempts, r.Failures = false, 0, 2, 3
		r.AbsentRecheck, r.AbsentBelieved, r.LastCreateAt, r.ReadAt = true, true, t0, at
		got := PlanStep(r, p, at)
		if me, _ := got.Settle.MayExist(); got.Step != None || got.Settle.To() != ledger.StateUnknown || !me || got.Then.Next != Continue || got.Then.Step != Lookup {
			t.Errorf("%s: step %s, to %q (may exist %v), then %v %v; want unknown, may exist, continue to a lookup", name, got.Step, got.Settle.To(), me, got.Then.Next, got.Then.Step)
		}
	}
}

// An order errored at its deadline, never sent, says what last held it
// back (a black-box run: "deadline … passed before the order could be
// submitted", and nothing of the prepare step refused over and over), at
// the plan and at a failed prepare step alike.
func TestDeadlineReasonSaysWhatHeldTheOrder(t *testing.T) {
	t.Parallel()
	p := policy()
	p.NeedsKnown = true
	late := t0.Add(p.Deadline + time.Minute)
	const last = "the device's orders changed while they were listed"
	rec := needsSnapshot()
	rec.Reason = last
	plan := PlanStep(rec, p, late)
	if plan.Settle.To() != ledger.StateErrored || !strings.Contains(plan.Then.Reason, "passed before the order could be submitted (last: "+last+")") {
		t.Errorf("planned past the deadline: to %q, %q; want errored, saying what last held it", plan.Settle.To(), plan.Then.Reason)
	}
	d := prepareFailed(needsSnapshot(), providers.Unavailable, errors.New(last), last, p, late)
	if d.Settle.To() != ledger.StateErrored || !strings.Contains(d.Then.Reason, "(last: "+last+")") {
		t.Errorf("a prepare failed past the deadline: to %q, %q; want errored, saying what last held it", d.Settle.To(), d.Then.Reason)
	}
	rec.Reason = ""
	if plan := PlanStep(rec, p, late); plan.Then.Reason != p.deadlineReason() {
		t.Errorf("nothing known of what held it: %q; want %q", plan.Then.Reason, p.deadlineReason())
	}
}

// ShownFrom is the last create plus the listing lag as the record holds
// it (the longest a marking process judged it with, longer by a clock
// step held): when a lookup's not-found begins to be believed.
func TestShownFrom(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	p := Policy{ListingLag: time.Minute}
	for _, c := range []struct {
		name string
		rec  ledger.Record
		p    Policy
		want time.Time
	}{
		{"no create", ledger.Record{}, p, time.Time{}},
		{"no lag", ledger.Record{LastCreateAt: t0}, Policy{}, time.Time{}},
		{"the last create plus the lag", ledger.Record{FirstAttemptAt: t0.Add(-time.Hour), LastCreateAt: t0}, p, t0.Add(time.Minute)},
		{"a longer lag marked", ledger.Record{LastCreateAt: t0, MarkLag: 5 * time.Minute}, p, t0.Add(5 * time.Minute)},
		{"a clock step held", ledger.Record{LastCreateAt: t0, ClockHold: 10 * time.Second}, p, t0.Add(70 * time.Second)},
	} {
		if got := ShownFrom(&c.rec, c.p); !got.Equal(c.want) {
			t.Errorf("%s: %v; want %v", c.name, got, c.want)
		}
	}
}

// A throttle that names no delay waits no longer than the third retry's
// ceiling, however many calls the order made: the worker's own rate paces
// what is sent again, and a longer wait left a provider with room idle (a
// black-box run: the last orders of a burst waited up to a minute). Other
// failures keep the longer backoff; a Retry-After is kept as given.
func TestThrottleWithoutADelayWaitsLittle(t *testing.T) {
	t.Parallel()
	p := policy() // exact delays: each retry's ceiling
	throttle := &providers.Error{Code: providers.RateLimited, Op: "op", HTTPStatus: 429}
	down := &providers.Error{Code: providers.Unavailable, Op: "op", HTTPStatus: 503}
	asked := &providers.Error{Code: providers.RateLimited, Op: "op", HTTPStatus: 429, RetryAfter: 40 * time.Second}
	for _, c := range []struct {
		name string
		rec  *ledger.Record
		step Step
		err  error
		want time.Duration
	}{
		{"create throttled", retryMarked(), Submit, throttle, 8 * time.Second},
		{"create throttled with a Retry-After", retryMarked(), Submit, asked, 40 * time.Second},
		{"lookup throttled", unknown(), Lookup, throttle, 8 * time.Second},
		{"lookup failed, down", unknown(), Lookup, down, time.Minute},
		// A pending order's pay or check throttled: again soon, not at
		// the check schedule's minute of an order pending 10 minutes (a
		// black-box run: a pay throttled five times waited 13-61 s
		// each time while the worker's rate had room).
		{"pay throttled", pending(), Pay, throttle, 8 * time.Second},
		{"pay throttled where it may have acted", pending(), Pay, &providers.Error{Code: providers.Ambiguous, Op: "op", HTTPStatus: 429, Err: providers.ErrThrottled}, 8 * time.Second},
		{"check throttled", pending(), Poll, throttle, 8 * time.Second},
		{"check throttled with a Retry-After", pending(), Poll, asked, 40 * time.Second},
		{"check failed, down", pending(), Poll, down, time.Minute},
		{"check throttled past the pending window", pending(), Poll, throttle, time.Minute},
	} {
		c.rec.Attempts = 10
		now := t0.Add(time.Minute)
		if c.rec.State == ledger.StatePending {
			now = c.rec.PendingSince.Add(10 * time.Minute)
			if strings.Contains(c.name, "past the pending window") {
				now = c.rec.PendingSince.Add(p.PendingWindow + time.Minute)
			}
		}
		d := Decide(c.rec, c.step, Outcome{Err: c.err}, p, now)
		if d.Then.Next != Wait && d.Then.Next != Retry || d.Then.Delay != c.want {
			t.Errorf("%s after 10 calls: %v in %s; want a wait of %s", c.name, d.Then.Next, d.Then.Delay, c.want)
		}
	}
}
