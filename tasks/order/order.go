// Package order is the order state machine as pure functions: given an
// order's record, the outcome of a provider call, the policy and the time,
// what the ledger records and what happens next. It does no I/O; the
// handler in package tasks reads the record, calls Plan, makes the call,
// calls Decide and writes what it returns.
//
//	queued ─▶ submitting ─┬─▶ paid                      (terminal)
//	                      ├─▶ pending ─poll/pay─▶ paid | errored
//	                      ├─▶ errored                   (terminal)
//	                      └─▶ unknown ─lookup─▶ paid | pending | submitting | errored
//
// Rules that hold in every path: a create is only sent when the record shows
// it in flight (ledger.Begin wrote the mark); after a call that may have
// created the order, the order is looked up before any new create; a
// configuration problem (missing credentials, a wrong key or secret) never
// changes where an order stands; an order that may exist at the provider is
// never errored by a deadline, only left unknown for a person.
package order

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// Step is one provider call an order can take.
type Step int

const (
	// None: no call; the plan's transition settles the step.
	None Step = iota
	// Prepare takes the snapshot of the target's existing provider orders
	// before the first create (providers.Preparer).
	Prepare
	// Submit sends the create.
	Submit
	// Lookup asks about an order whose create may have been received.
	Lookup
	// Poll asks about a pending order.
	Poll
	// Pay pays a pending order (providers.Payer).
	Pay
)

var stepNames = [...]string{None: "none", Prepare: "prepare", Submit: "submit", Lookup: "lookup", Poll: "poll", Pay: "pay"}

func (s Step) String() string { return stepNames[s] }

// Policy is what the state machine needs to know about the configuration.
type Policy struct {
	// MaxAttempts is the failure budget: after this many failed creates
	// that surely created nothing, the order is errored.
	MaxAttempts int
	// Backoff spaces retries after failures.
	Backoff Backoff
	// Deadline is how long after enqueue an order may still be submitted.
	Deadline time.Duration
	// PendingWindow is how long a pending order is polled before it is
	// errored as unpaid, on a check that says it is unpaid (never on a
	// failed check, nor for an order held for a person).
	PendingWindow time.Duration
	// PollInterval is the first wait between polls of a pending order; it
	// doubles up to a minute.
	PollInterval time.Duration
	// ConfigWait is how long an order held back by a configuration problem
	// waits before it is tried again.
	ConfigWait time.Duration
	// NeedsKnown says the provider is a Preparer: a snapshot of existing
	// orders is taken before the first create.
	NeedsKnown bool
	// SnapshotMaxAge is how old a snapshot (NeedsKnown) may be when the
	// order's first create is about to leave; an older one is taken again
	// (a snapshot kept while the order waited, for a breaker or a
	// replica, would let an order someone else made meanwhile pass for
	// ours). 0: DefaultSnapshotMaxAge.
	SnapshotMaxAge time.Duration
	// ListingLag is how long after a create a lookup that does not find
	// the order is not believed: no provider documents that its listings
	// show an order as soon as its create is answered, and a not-found
	// believed too early creates the order twice. Within it the order
	// stays unknown and is looked up again once it has passed. 0: a
	// not-found is believed at once.
	ListingLag time.Duration
	// HoldUnlisted says a lookup's NotFound, once the listing lag has
	// passed, does not prove absent an order whose own create may have
	// been received (providers.UnlistedNotAbsent): such an order is left
	// unknown for a person, never created again nor errored as absent;
	// unless every create of it that may have been received was answered
	// throttled (ledger.Record.ThrottledLast): a throttle is no document's
	// sign that the provider acted, so the not-found is believed.
	HoldUnlisted bool
	// Matches: the provider's lookups find an order without a provider
	// order id by matching its listing (providers.Matcher), and a match
	// within the listing lag is not taken: such a lookup does not look
	// again before the lag's end (lookStep), which could take nothing
	// sooner.
	Matches bool
}

// Backoff is capped exponential backoff with full jitter: retry n (from 0)
// waits a uniformly random time in [0, min(Max, Base·2ⁿ)].
type Backoff struct {
	Base time.Duration // default 1s
	Max  time.Duration // default 5m
	// Rand returns a uniform value in [0, n]; default math/rand/v2. Tests
	// set it to make delays exact.
	Rand func(n int64) int64
}

// Ceiling is the largest delay of retry n.
func (b Backoff) Ceiling(n int) time.Duration {
	base, max := b.Base, b.Max
	if base <= 0 {
		base = time.Second
	}
	if max <= 0 {
		max = 5 * time.Minute
	}
	if n < 0 {
		n = 0
	}
	if n < 40 {
		if d := base << n; d > 0 && d < max {
			return d
		}
	}
	return max
}

// Delay returns the wait before retry n.
func (b Backoff) Delay(n int) time.Duration {
	c := int64(b.Ceiling(n))
	if b.Rand != nil {
		return time.Duration(b.Rand(c))
	}
	return time.Duration(rand.Int64N(c + 1))
}

// Next is what the task does once the step is settled.
type Next int

const (
	// Done: the order is paid; the task completes.
	Done Next = iota
	// Stop: the task ends without a retry (the order errored, or its
	// outcome is left to a person); Reason says why.
	Stop
	// Continue: take Step now, in the same run.
	Continue
	// Wait: run again after Delay without spending a retry (throttling,
	// polling, lookups).
	Wait
	// Retry: run again after Delay, counted as a failed run.
	Retry
	// ConfigWait: a configuration problem (Reason) holds the order back;
	// nothing about the order changed. Run again after Delay.
	ConfigWait
	// Rest: the task ends, neither archived nor retried: an order already
	// left for a person (LeftForAPerson) was looked up again and stays
	// so. Its first Stop told the operators (an archived task, a
	// warning); the reconciler's later looks tell nothing new.
	Rest
)

// Plan is what to do with an order that Begin returned.
type Plan struct {
	// Step is the call to make; None when Settle ends the step without one.
	Step Step
	// Settle and Then apply when Step is None.
	Settle ledger.Transition
	Then   Then
}

// Then is what happens after a step.
type Then struct {
	Next   Next
	Step   Step          // for Continue (the next step); for ConfigWait, the step held (set by the caller)
	Delay  time.Duration // for Wait, Retry, ConfigWait
	Reason string        // for Stop and ConfigWait, and the error text of waits
	// Code is the error code behind a Wait or Retry, for metrics.
	Code providers.Code
	// Cause is, for ConfigWait, the refusal that holds the order (set by
	// the caller): what kind of configuration problem it is.
	Cause error
}

// Outcome is the result of a step's call.
type Outcome struct {
	Result providers.Result
	Err    error
	// Message is Err's text as it may be recorded (masked, short).
	Message string
	// Attempt is the call's history entry.
	Attempt *ledger.Attempt
	// Known is what Prepare returned.
	Known []string
	// OthersWent says calls of the same step for other orders of the
	// provider went through on this worker meanwhile, and refusals of the
	// credentials have been rare among them (tasks.Problems.OthersWent):
	// the provider takes the worker's credentials, so a refusal of them
	// (Unauthenticated, but for the clock or the account) is this order's
	// (its params, in words that name the key), and holds neither this
	// order nor the provider's others for a configuration wait (see
	// orderRefused).
	OthersWent bool
}

// Decision is what Decide returns: the transition to settle and what the
// task does next.
type Decision struct {
	Settle ledger.Transition
	Then   Then
	// ListedLate is, for a lookup that found the order by its number or
	// id after an earlier one had not, half the listing lag or more after the order's last
	// create (ledger.Record.UnseenAt), how long after it that earlier
	// lookup looked: the provider listed the order at least that late,
	// close to the lag (ListingLag here), past which a not-found is
	// believed and the order created again. Zero otherwise.
	ListedLate time.Duration
	ListingLag time.Duration
	// CreatedAgain is, for a lookup whose not-found is believed and a
	// create follows, how long after the order's last create (a create
	// that may have been received) the lookup looked: the order is made
	// twice if the provider listed that create's order later than this.
	// Zero otherwise.
	CreatedAgain time.Duration
	// note is added to the message of the call's history entry: what
	// was made of an answer that reads as a success but is not taken
	// (an order found, not taken yet).
	note string
}

// pastDeadline reports whether the order's deadline passed: Deadline after
// it was enqueued, or after an operator last re-drove it.
func pastDeadline(rec *ledger.Record, p Policy, now time.Time) bool {
	from := rec.CreatedAt
	if rec.RedrivenAt.After(from) {
		from = rec.RedrivenAt
	}
	return p.Deadline > 0 && now.After(from.Add(p.Deadline))
}

// DefaultLookFirstWindow is Policy.LookFirstWindow without a deadline.
const DefaultLookFirstWindow = 24 * time.Hour

// LookFirstWindow is how long after a loss of the ledger's data the orders
// recorded since are looked up before their first create, and how far
// before the loss such a lookup reaches (ledger.BeginArgs.LookFirst): the
// deadline, within which an order's creates are sent and its producer
// waits for its outcome; DefaultLookFirstWindow without one.
func (p Policy) LookFirstWindow() time.Duration {
	if p.Deadline > 0 {
		return p.Deadline
	}
	return DefaultLookFirstWindow
}

func (p Policy) deadlineReason() string {
	return fmt.Sprintf("deadline of %s passed before the order could be submitted", p.Deadline)
}

// deadlineReasonAfter is deadlineReason with what last held the order
// back, when known: errored so, the reason says why it was never sent.
func (p Policy) deadlineReasonAfter(last string) string {
	if last == "" {
		return p.deadlineReason()
	}
	return p.deadlineReason() + " (last: " + last + ")"
}

// DefaultSnapshotMaxAge is Policy.SnapshotMaxAge's default.
const DefaultSnapshotMaxAge = time.Minute

// snapshotStale reports whether rec's snapshot is older than p allows (or
// of unknown age).
func snapshotStale(rec *ledger.Record, p Policy, now time.Time) bool {
	maxAge := p.SnapshotMaxAge
	if maxAge <= 0 {
		maxAge = DefaultSnapshotMaxAge
	}
	return rec.KnownAt.IsZero() || now.Sub(rec.KnownAt) > maxAge
}

// AbandonedResult is the history's result for a create whose run stopped
// before it recorded an answer (PlanStep): the order may exist.
const AbandonedResult = "abandoned"

// PlanStep says which call an order takes next, or settles it without a
// call (deadline or failure budget spent before a create).
func PlanStep(rec *ledger.Record, p Policy, now time.Time) Plan {
	switch {
	case rec.State == ledger.StatePending:
		return Plan{Step: Poll}
	case rec.State == ledger.StateUnknown:
		return Plan{Step: Lookup}
	case rec.State == ledger.StateSubmitting && rec.Inflight > 0 && !rec.InflightMarked:
		// A run died, or was cut off, with a create in flight: the order
		// may exist. It is recorded unknown first (its order.unknown
		// event with it), then looked up. The create goes into the
		// history, as every call does, its answer unknown: the run that
		// sent it recorded nothing (its time is when the next run found
		// it abandoned, the lease it was sent under run out).
		r := "attempt abandoned mid-flight; looking the order up"
		a := &ledger.Attempt{N: rec.Inflight, At: now.UTC(), Call: Submit.String(), Result: AbandonedResult,
			Message: "no answer recorded: the run that sent this create stopped (killed, or cut off from Redis) before its answer; the order may exist"}
		return Plan{Settle: ledger.SetUnknown(r).WithMayExist(true).WithAttempt(a), Then: Then{Next: Continue, Step: Lookup, Reason: r}}
	}
	// queued or submitting with nothing in flight: the next call creates
	// the order (or takes the snapshot a create needs).
	if !rec.LookFirstSince.IsZero() {
		// Recorded after Redis lost the ledger's data: perhaps a resend
		// of an order created before the loss, under a record lost with
		// it. Looked up first (before the deadline is judged: errored,
		// it would say nothing was created), from as early as such a
		// create could be.
		r := fmt.Sprintf("Redis lost the ledger's data (at %s or later), and this record was made after it or restored with it: the order may have been created before the loss, or since in what was lost; looking it up before a create",
			rec.LookFirstSince.UTC().Format(time.RFC3339))
		since := rec.LookFirstSince.Add(-p.LookFirstWindow())
		if !rec.FirstAttemptAt.IsZero() && rec.FirstAttemptAt.Before(since) {
			since = rec.FirstAttemptAt
		}
		// A create lost with the data left before the loss was found:
		// the listing lag counts from then (a create this record knows
		// of, since, from its own end), so that an order recorded long
		// after a loss does not wait it. Without the time found, from
		// this step's Begin (or now).
		at := rec.LookFirstFound
		if at.IsZero() {
			at = rec.ReadAt
		}
		if at.IsZero() {
			at = now
		}
		if rec.LastCreateAt.After(at) {
			at = rec.LastCreateAt
		}
		return Plan{Settle: ledger.SetUnknownSince(r, since, nil).WithLookedFirst(rec.LookFirstSince, at), Then: Then{Next: Continue, Step: Lookup, Reason: r}}
	}
	if rec.AbsentRecheck {
		// A lookup's not-found let this create go, seen sooner after the
		// last create than this worker's listing lag (by another worker,
		// set apart): the order that create made may not have been listed
		// yet. Looked up again (before the deadline is judged: errored, it
		// would say nothing was created); the lookup waits out the rest
		// of the lag.
		r := fmt.Sprintf("a lookup's not-found was seen %s after the last create, within this worker's listing lag of %s: looking the order up again before a create",
			rec.AbsentLag.Round(time.Millisecond), p.ListingLag)
		return Plan{Settle: ledger.SetUnknown(r).WithMayExist(true), Then: Then{Next: Continue, Step: Lookup, Reason: r}}
	}
	if rec.OwnedAnswer && (pastDeadline(rec, p, now) || p.MaxAttempts > 0 && rec.Failures >= p.MaxAttempts) {
		// Its creates were answered with another's id or refused as a
		// used number: never errored as not created at its end (the
		// provider may hold an order made for it). A last lookup takes
		// it if it shows, and leaves it for a person if not (HeldOwned).
		r := "its failure budget or time is spent, and a create of it may have made an order: looking it up before it is left for a person"
		return Plan{Settle: ledger.SetUnknown(r).WithMayExist(true), Then: Then{Next: Continue, Step: Lookup, Reason: r}}
	}
	if pastDeadline(rec, p, now) {
		r := p.deadlineReasonAfter(rec.Reason)
		return Plan{Settle: ledger.SetErrored(r), Then: Then{Next: Stop, Reason: r}}
	}
	if p.MaxAttempts > 0 && rec.Failures >= p.MaxAttempts {
		r := fmt.Sprintf("gave up after %d failed attempts: %s", rec.Failures, rec.Reason)
		return Plan{Settle: ledger.SetErrored(r), Then: Then{Next: Stop, Reason: r}}
	}
	switch {
	case rec.InflightMarked && p.NeedsKnown && !rec.MayHaveExisted && snapshotStale(rec, p, now):
		// No create of the order may ever have been received: the
		// snapshot is taken again, right before the create.
		r := "the snapshot of the provider's orders is too old for a first create; taking it again"
		return Plan{Settle: ledger.Unmark(rec).Afresh(), Then: Then{Next: Continue, Step: Prepare, Reason: r}}
	case rec.InflightMarked:
		return Plan{Step: Submit}
	case p.NeedsKnown && rec.Known == nil:
		return Plan{Step: Prepare}
	}
	// Begin did not mark the create (its reply was for an earlier try):
	// come back rather than send a create the record does not show.
	return Plan{Settle: ledger.Release(), Then: Then{Next: Wait, Delay: 100 * time.Millisecond, Reason: "create not marked in flight"}}
}

// Decide is what follows a call of step for rec with outcome out.
func Decide(rec *ledger.Record, step Step, out Outcome, p Policy, now time.Time) Decision {
	d := decide(rec, step, out, p.held(rec), now)
	if out.Attempt != nil {
		a := out.Attempt
		if d.note != "" {
			// Told in the history entry too: an operator reading "ok,
			// found" beside a state left unknown sees why.
			c := *a
			c.Message = strings.TrimPrefix(c.Message+"; "+d.note, "; ")
			a = &c
		}
		d.Settle = d.Settle.WithAttempt(a)
	}
	if to := d.Settle.To(); step == Lookup && out.Err == nil && !out.Result.Matched && (to == ledger.StatePaid || to == ledger.StatePending) {
		// (Found by its number or id: an order found by matching may be
		// another's, made since.)
		d.ListedLate, d.ListingLag = listedLate(rec, p)
	}
	if step == Submit && out.Err == nil && out.Result.ProviderOrderID != "" && !out.Result.Matched {
		// The id is in our own create's answer, one that succeeded: it
		// outweighs another order's match of it
		// (ledger.Transition.WithAnswered). A failed create's answer
		// naming an id (undocumented) does not.
		d.Settle = d.Settle.WithAnswered()
	}
	return d
}

func decide(rec *ledger.Record, step Step, out Outcome, p Policy, now time.Time) Decision {
	if out.Err == nil {
		if step == Prepare {
			// Stamped as this step began (ReadAt): an order made while the
			// listing was read may be missing from it.
			return Decision{Settle: ledger.SetKnown(out.Known).WithKnownAt(rec.ReadAt), Then: Then{Next: Continue, Step: Submit}}
		}
		return succeeded(rec, step, out.Result, p, now)
	}
	code := providers.CodeOf(out.Err)
	msg := out.Message
	if msg == "" {
		msg = out.Err.Error()
	}
	if orderRefused(code, out) && !(step == Submit && rec.MayHaveExisted) {
		// (A create after an earlier one that may have been received is
		// looked up on any refusal: submitFailed.)
		// Not a configuration wait: the step goes on as for any call
		// that surely did nothing (a create spends its failure budget,
		// so the order is errored at its end rather than retried until
		// its deadline), and a pay refused so was refused before the
		// provider acted.
		msg += " (" + RefusedForTheOrder + ")"
		if step == Pay {
			return pendingFailed(rec, step, code, out.Err, msg, p, now, providers.Unavailable)
		}
		code = providers.Unavailable
	}
	switch step {
	case Submit:
		return submitFailed(rec, code, out, msg, p)
	case Lookup:
		return lookupFailed(rec, code, out.Err, msg, p, now)
	case Poll, Pay:
		return pendingFailed(rec, step, code, out.Err, msg, p, now, code)
	case Prepare:
		return prepareFailed(rec, code, out.Err, msg, p, now)
	}
	return Decision{Settle: ledger.Keep(""), Then: Then{Next: Wait, Delay: p.Backoff.Delay(0), Reason: msg, Code: code}}
}

// succeeded settles a call that told where the order stands.
func succeeded(rec *ledger.Record, step Step, r providers.Result, p Policy, now time.Time) Decision {
	if step == Lookup && r.Matched && !rec.Matched {
		if wait := listingLagLeft(rec, p, now); wait > 0 {
			// Found by matching within the listing lag of the last
			// create: our own order may be made and not listed yet, and
			// the one found another's made meanwhile (the device's user
			// buying the same plan). Not taken before the lag has passed:
			// then ours shows beside it (two: a person decides), or it is
			// the one.
			msg := fmt.Sprintf("an order found by matching the provider's orders %s after the last create ended, within the listing lag of %s: ours may not be listed yet; looking again in %s",
				(p.ListingLag - wait).Round(time.Millisecond), p.ListingLag, wait.Round(time.Millisecond))
			// The record keeps what made it unknown, as for a not-found
			// within the lag.
			return Decision{Settle: ledger.SetUnknown(rec.Reason).WithMayExist(true), Then: Then{Next: Wait, Delay: wait, Reason: msg},
				note: fmt.Sprintf("not taken yet: found within the listing lag of the last create; looked up again in %s", wait.Round(time.Second))}
		}
	}
	if r.Matched && !rec.LookedFirstAt.IsZero() && now.Sub(rec.LookedFirstAt) < p.LookFirstWindow() {
		// Found by matching after Redis lost the ledger's data: what told
		// the orders of the same kind apart (their ids, rivals and
		// snapshots) went with it, so the order matched may be another
		// of ours whose record was lost. A person decides, whatever
		// ALIYUN_PAY_MATCHED or UNICLOUD_TAKE_MATCHED say; nothing is paid.
		r.Held, r.Payable = true, false
	}
	poid := r.ProviderOrderID
	if poid == "" {
		poid = rec.ProviderOrderID
	}
	// An id found by matching stays recorded so: later checks pass it
	// back (providers.Order.Matched), and a provider that pays does not
	// pay such an order unless told to.
	matched := func(t ledger.Transition) ledger.Transition {
		if r.Matched && !rec.Matched {
			return t.WithMatched()
		}
		return t
	}
	paidHeld := false
	switch r.Status {
	case providers.StatusPaid:
		if !r.Held || !rec.PaySentAt.IsZero() {
			return Decision{Settle: matched(ledger.SetPaid(poid).WithMayExist(true)), Then: Then{Next: Done}}
		}
		// Found paid, but held: found by matching, and paid by someone
		// other than the worker, which would have paid it itself. It may
		// be another's order (the device's user bought the same plan
		// while our create made nothing): recorded paid, it would stand
		// for ours. It stays pending, as a held unpaid order does, for a
		// person to confirm it is ours (resolve it paid) or not (absent,
		// to create ours, or errored).
		paidHeld = true
		fallthrough
	case providers.StatusPending:
		since := rec.PendingSince
		if since.IsZero() {
			since = now
		}
		payShowing := payUnsettled(rec, r, p, now)
		// An order found by matching that the worker pays now but never
		// paid, held for a person as such until ALIYUN_PAY_MATCHED was
		// turned on (its standing reason says so): its time held was a
		// person's, not the provider's or the buyer's, and errored at the
		// window it would sit unpaid at the provider, as a held one would.
		// It is paid first, and its window runs from that first pay (a
		// pay refused before acting changes the reason: not again). Not
		// one held after a loss of the ledger's data (LookedFirstAt: the
		// match may be another of ours), nor one the provider held.
		payFirst := r.Payable && step != Pay && rec.PaySentAt.IsZero() && (r.Matched || rec.Matched) &&
			rec.LookedFirstAt.IsZero() && strings.Contains(rec.Reason, matchedHeld)
		if p.PendingWindow > 0 && now.Sub(since) > p.PendingWindow && !r.Held && !payShowing && !payFirst {
			reason := fmt.Sprintf("still unpaid after the pending window of %s", p.PendingWindow)
			switch {
			case r.Payable && rec.Pays == 0:
				// Said, so that an order errored unpaid for want of a
				// pay is not read as one its buyer did not pay (a
				// black-box run: every pay refused by a gateway's
				// throttle, the order errored with only this reason).
				reason += "; no pay of the worker's reached the provider in that time (each refused before the provider acted, a throttle or a refused key, or held back by a rate limit or an open breaker)"
			case rec.Pays > 0:
				reason += fmt.Sprintf("; the worker sent it %d pay(s) that may have reached the provider, the last at %s", rec.Pays, rec.PaySentAt.UTC().Format(time.RFC3339))
			}
			return Decision{Settle: matched(ledger.SetErrored(reason).WithProviderOrderID(poid).WithMayExist(true)), Then: Then{Next: Stop, Reason: reason}}
		}
		wait := r.NextCheck
		if wait <= 0 {
			// Checked often at first, then less often, from when it became
			// pending or from the worker's last pay, whichever is later: a
			// pay shows within seconds, whenever it was sent (an order
			// whose pay waited out a configuration problem, long pending,
			// was checked a minute after its pay, not two seconds).
			// A pay recorded ahead of now (Redis's clock stepped back
			// since) counts as none: checks every poll interval for as
			// long as the step lasts would be a busy loop.
			from := since
			if rec.PaySentAt.After(from) && !rec.PaySentAt.After(now) {
				from = rec.PaySentAt
			}
			wait = pollDelay(from, p, now)
		}
		// A pay the provider answered as accepted is never sent again
		// automatically: nothing documents that a pay is idempotent, and
		// its answer says it went through; an order that still shows
		// unpaid a listing lag after it waits for a person, checked as an
		// order held for one is.
		accepted := rec.PayAccepted() || step == Pay && !rec.PaySentAt.IsZero()
		acceptedUnseen := r.Payable && step != Pay && accepted && now.Sub(rec.PaySentAt) >= p.ListingLag
		// Paid MaxPays times already, each pay's answer lost or failed,
		// and still unpaid a listing lag after the last: a provider that
		// shows a pay later than the lag would be paid again and again
		// (each pay may move money). Not paid again automatically; it is
		// checked on, and errored when its pending window closes with
		// the provider still showing it unpaid, as after any pay.
		paysSpent := r.Payable && step != Pay && !accepted && !rec.PaySentAt.IsZero() &&
			now.Sub(rec.PaySentAt) >= p.ListingLag && rec.Pays >= MaxPays
		if acceptedUnseen {
			wait = max(wait, pollDelay(since, p, now))
		}
		if paidHeld || acceptedUnseen || r.Held && (r.Matched || rec.Matched) {
			// Waits for a person, and no check makes it pass by itself:
			// checked less often as it waits, not once a minute for as
			// long as it does (200 such orders: 3 calls a second to the
			// provider, and a history entry each). One the provider holds
			// (a status other than 0) may clear within the pending
			// window, and is polled as before: checked late, it would be
			// found payable past the window and errored.
			wait = max(wait, personDelay(since, now))
		}
		t := matched(ledger.SetPending(poid, since, now.Add(wait)).WithMayExist(true))
		if step == Pay && !rec.PaySentAt.IsZero() {
			t = t.WithPayAccepted(rec.PaySentAt)
		}
		reason := fmt.Sprintf("pending; next check in %s", wait.Round(time.Millisecond))
		switch {
		case paidHeld:
			reason = fmt.Sprintf("pending; found paid, but by matching the provider's orders and not paid by the worker: perhaps another's order; waits for a person to confirm it is ours (resolve it paid) or not (resolve it absent to create ours, or errored); next check in %s", wait.Round(time.Millisecond))
		case paysSpent:
			reason = fmt.Sprintf("pending; paid %d times by the worker, the last at %s, each pay's answer lost or failed, and the order still shows unpaid %s after it: not paid again automatically (the provider may show a pay later than ORDERWORKER_LISTING_LAG); errored if still unpaid when the pending window closes, or resolved by a person who checked it at the provider; next check in %s",
				rec.Pays, rec.PaySentAt.UTC().Format(time.RFC3339), now.Sub(rec.PaySentAt).Round(time.Second), wait.Round(time.Millisecond))
		case r.Payable && step != Pay && (rec.PaySentAt.IsZero() || now.Sub(rec.PaySentAt) >= p.ListingLag && !accepted):
			// The pay step's Begin marks the pay sent, and the pay leaves
			// only on that mark (ledger.BeginArgs.Pay). An order found
			// unpaid a listing lag after its last pay is paid again: the
			// provider is trusted to show a pay's effect in that time, as
			// it is trusted to list a create.
			if payFirst {
				// Its window runs from the worker's first pay: judged
				// from when it became pending, the time a person held it
				// would leave its pay one try (a black-box run: one
				// answer lost to a 503, and the order errored, unpaid,
				// "still unpaid after the pending window").
				t = matched(ledger.SetPending(poid, now, now.Add(wait)).WithMayExist(true))
			}
			return Decision{Settle: t, Then: Then{Next: Continue, Step: Pay}}
		case acceptedUnseen:
			reason = fmt.Sprintf("pending; the pay sent at %s was accepted by the provider, yet the order still shows unpaid %s after it: not paid again automatically (nothing documents that a pay is idempotent); waits for a person to check it at the provider and resolve it (paid, or errored); next check in %s",
				rec.PaySentAt.UTC().Format(time.RFC3339), now.Sub(rec.PaySentAt).Round(time.Second), wait.Round(time.Millisecond))
		case r.Held:
			// Errored at the window, it would sit unpaid at the provider
			// with nobody told: it stays pending, which the awaiting-a-person
			// alert shows, for a person to pay or resolve.
			what := matchedHeld
			if !r.Matched && !rec.Matched {
				what = "held by the provider (its last check says why), not paid automatically"
			}
			how := "(or resolve it errored)"
			if r.Matched || rec.Matched {
				how = "(or, when it is another's, resolve it absent to create ours, or errored)"
			}
			reason = fmt.Sprintf("pending; %s: waits for a person to confirm and pay it %s; next check in %s", what, how, wait.Round(time.Millisecond))
		case payShowing && p.PendingWindow > 0 && now.Sub(since) > p.PendingWindow && r.Unpaid:
			// Past the window, but the pay marked sent may not show yet:
			// "still unpaid" is not known until a check a listing lag
			// after it.
			reason = fmt.Sprintf("pending past the pending window of %s; a pay marked sent at %s may not show yet: checked until a check %s or more after it finds the order unpaid; next check in %s",
				p.PendingWindow, rec.PaySentAt.UTC().Format(time.RFC3339), p.ListingLag, wait.Round(time.Millisecond))
		case payShowing && p.PendingWindow > 0 && now.Sub(since) > p.PendingWindow:
			// Past the window, but the provider does not say the order is
			// unpaid (being paid, a status not known): it may yet be paid.
			reason = fmt.Sprintf("pending past the pending window of %s; the provider does not say it is unpaid (being paid, or a payment status not known): checked until it is paid or found unpaid; next check in %s",
				p.PendingWindow, wait.Round(time.Millisecond))
		case r.Payable && step != Pay:
			reason = fmt.Sprintf("pending; a pay was marked sent at %s (it may not have left); paid again only if still unpaid %s after it: next check in %s",
				rec.PaySentAt.UTC().Format(time.RFC3339), p.ListingLag, wait.Round(time.Millisecond))
		}
		if why := standingReason(reason); why != "pending" {
			// Why it waits, a person's part in it among others: on the
			// record too (and in its order.pending event), not only in
			// the task's log.
			t = t.WithReason(why)
		}
		return Decision{Settle: t, Then: Then{Next: Wait, Delay: wait, Reason: reason}}
	}
	// A provider that answers without a status: look it up; past the
	// deadline, left for a person as any order still unknown then
	// (otherwise its task would go round until asynq's retries ran out).
	if (step == Submit || step == Lookup) && rec.State != ledger.StatePending && pastDeadline(rec, p, now) {
		r := LeftAtDeadline + " (last answer: the provider answered without a status)"
		return leftFor(rec, r, providers.Unknown)
	}
	f := rec.Failures
	return Decision{Settle: ledger.SetUnknown("provider answered without a status").WithMayExist(true),
		Then: Then{Next: Retry, Delay: p.Backoff.Delay(f), Reason: "provider answered without a status", Code: providers.Unknown}}
}

// matchedHeld is in the standing reason of an order found by matching and
// held for a person, unpaid, because the worker does not pay such orders
// (ALIYUN_PAY_MATCHED off): the reason a later check that may pay it
// finds it was held for (payFirst).
const matchedHeld = "found by matching the provider's orders, not paid automatically"

// standingReason is a pending order's reason as recorded: without the time
// of its next check, which the record holds apart (next_check).
func standingReason(reason string) string {
	if i := strings.LastIndex(reason, "next check in"); i >= 0 {
		return strings.TrimRight(reason[:i], "; :")
	}
	return reason
}

// backoff is the wait before the order's next step after err (a failure
// of its rec.Attempts-th call, a throttle, a failed lookup), up to retry
// most's ceiling: the provider's Retry-After when it gave one. A throttle
// without one waits no more than throttleRetries' ceiling: the worker's
// own rate (tasks/guard) paces what is sent again, and a longer wait only
// leaves a provider with room idle (a black-box run: the last orders of a
// burst waited up to a minute, and one lookup three, while a 40/s flow
// control had room).
func backoff(err error, p Policy, rec *ledger.Record, most int) time.Duration {
	if providers.CodeOf(err) == providers.RateLimited {
		most = min(most, throttleRetries)
	}
	return retryAfter(err, p.Backoff.Delay(min(rec.Attempts, most)))
}

// throttleRetries bounds the backoff after a throttle (see backoff): 8 s
// at the default ORDERWORKER_RETRY_BASE.
const throttleRetries = 3

func retryAfter(err error, fallback time.Duration) time.Duration {
	if d := providers.RetryAfterOf(err); d > 0 {
		return d
	}
	return fallback
}

// afresh starts the order's identification anew (Transition.Afresh) when
// no create of it may ever have been received: a create refused before
// the provider acted (throttled, unauthenticated, unavailable) leaves
// nothing, so the next create takes a new snapshot and its lookups look
// from it on. Otherwise t is kept as it is: a snapshot or a window from
// after a create that may have been received could hide our order.
// rec is the record of the create that was refused (its own mark in
// flight).
func afresh(rec *ledger.Record, t ledger.Transition) ledger.Transition {
	if rec.MayHaveExisted || rec.MayExist || !rec.InflightMarked {
		return t
	}
	return t.Afresh()
}

func submitFailed(rec *ledger.Record, code providers.Code, out Outcome, msg string, p Policy) Decision {
	err := out.Err
	if rec.MayHaveExisted && refused(code) && throttledOnlyBefore(rec) {
		// Every earlier create was answered throttled and the order has
		// since been found absent: this refusal is most likely the
		// order's own, but a throttled create may yet have made it, later
		// listed than the lag allowed, and this refusal be the provider's
		// "number used" in words no document gives. One more lookup, a
		// listing lag after this create: found, it is the order; not
		// found, the order is errored with this refusal (lookupNotFound),
		// neither created again nor held for a person (a black-box run:
		// every bad UniCloud order whose first create was throttled was
		// held, bad Tencent ones took 34 attempts).
		// The refusal is kept in the record (WithRefusedCreate), not
		// only in the reason, which a lookup in between may rewrite (an
		// ambiguous one: a review).
		r := RefusedAfterThrottles + msg
		return Decision{Settle: keepThrottled(rec, ledger.SetUnknown(r).WithFailures(rec.Failures+1).WithMayExist(true).WithRefusedCreate(msg)),
			Then: Then{Next: Retry, Delay: p.Backoff.Delay(rec.Failures), Reason: r, Code: code}}
	}
	if rec.MayHaveExisted && (refused(code) || code == providers.Unauthenticated) {
		// A refusal of a create after an earlier one that may have been
		// received proves nothing about that one: a provider may refuse
		// an order number it already holds, in words nobody documented
		// (in words that name the credentials, too: "OrderNo submitted
		// under AppKey …"). Look the order up rather than end it, or send
		// the create again after a configuration wait: a lookup refused
		// for the credentials waits for them itself, and nothing is sent
		// blind.
		code, msg = providers.Ambiguous, msg+" (an earlier create of this order may have been received: looking it up)"
	}
	switch {
	case providers.MaybeCreated(code):
		// The order may exist: the next step looks it up first, by the
		// provider's id for it when the answer carried one.
		f := rec.Failures + 1
		spent := f
		if providers.Throttled(err) {
			// Throttled where it may have acted: looked up as any unsure
			// answer, but no failure, as no throttle is.
			spent = rec.Failures
		}
		t := ledger.SetUnknown(msg).WithFailures(spent).WithMayExist(true)
		if (providers.Throttled(err) || providers.RetryAnswer(err)) && (!rec.MayHaveExisted || rec.ThrottledLast()) && !rec.OwnedAnswer {
			// Every create of it that may have been received was
			// answered throttled (or with what the documents call
			// retryable as it stands: providers.ErrRetryAnswer): a
			// lookup's not-found believed after the listing lag has it
			// created again, even where listings are not trusted to
			// prove an order absent (HoldUnlisted).
			t = t.WithThrottledCreate()
		}
		if providers.SaysExists(err) {
			// Refused as a used number: it may exist however the lookups
			// read the listing (a server that pads, cuts or case-folds
			// numbers lists it in a form taken for another's). Never
			// errored as not created once the budget or time is spent:
			// left for a person, as an order answered with another's id.
			t = t.WithOwnedAnswer()
		}
		if id := out.Result.ProviderOrderID; id != "" && rec.ProviderOrderID == "" {
			t = t.WithProviderOrderID(id)
		}
		return Decision{Settle: t, Then: Then{Next: Retry, Delay: p.Backoff.Delay(f - 1), Reason: msg, Code: code}}
	case code == providers.RateLimited:
		return Decision{Settle: keepThrottled(rec, afresh(rec, ledger.SetRetry(msg))),
			Then: Then{Next: Wait, Delay: backoff(err, p, rec, 6), Reason: msg, Code: code}}
	case code == providers.Unauthenticated:
		// Refused before anything was created: the credentials are wrong
		// on this worker. The order waits for a worker that has them.
		return Decision{Settle: afresh(rec, ledger.SetRetry(msg)), Then: Then{Next: ConfigWait, Delay: p.ConfigWait, Reason: msg, Code: code}}
	case providers.Retryable(code):
		f := rec.Failures + 1
		if p.MaxAttempts > 0 && f >= p.MaxAttempts && rec.OwnedAnswer {
			// An earlier create was answered with another's id or refused
			// as a used number: this one made nothing, but that one may
			// have. Looked up, then left for a person if not found
			// (HeldOwned), never errored as not created.
			r := fmt.Sprintf("failure budget spent (%d failed attempts: %s), and an earlier create may have made the order: looking it up before it is left for a person", f, msg)
			return Decision{Settle: ledger.SetUnknown(r).WithFailures(f).WithMayExist(true), Then: Then{Next: Continue, Step: Lookup, Reason: r}}
		}
		if p.MaxAttempts > 0 && f >= p.MaxAttempts {
			r := fmt.Sprintf("gave up after %d failed attempts: %s", f, msg)
			return Decision{Settle: ledger.SetErrored(r).WithFailures(f), Then: Then{Next: Stop, Reason: r}}
		}
		return Decision{Settle: keepThrottled(rec, afresh(rec, ledger.SetRetry(msg).WithFailures(f))),
			Then: Then{Next: Retry, Delay: p.Backoff.Delay(f - 1), Reason: msg, Code: code}}
	}
	return Decision{Settle: ledger.SetErrored(msg), Then: Then{Next: Stop, Reason: msg}}
}

// RefusedAfterThrottles begins the reason of an order whose create was
// refused for its params after only throttled creates, the order since
// found absent (see submitFailed): looked up once more, and errored with
// the refusal when not found. The reason only tells it: the record holds
// it (ledger.Record.RefusedLast).
const RefusedAfterThrottles = "refused after creates answered only throttled, looked up once more before it is errored: "

// throttledOnlyBefore reports whether every create of rec before the one
// it has under way that may have been received was answered throttled (or
// with what the documents call retryable as it stands; ThrottledLast, as
// Begin carries it over to the create it marks), none was answered with
// another order's id or refused as a number used already, and the order
// has since been found absent (a lookup's not-found believed, as such
// creates have it): its earlier creates made nothing, as far as the
// ledger knows, so a refusal of this one is this one's.
func throttledOnlyBefore(rec *ledger.Record) bool {
	return rec.InflightMarked && rec.ThrottledLast() && !rec.MayExist && !rec.OwnedAnswer
}

// keepThrottled keeps, over a create answered with a refusal that made
// nothing (throttled as documented before acting, the provider
// unreachable) or refused for its params after throttles only
// (submitFailed), that every create of the order that may have been
// received was answered throttled (Record.ThrottledLast), as Unmark does
// for a create never sent: else the settle, which moves the last create
// to this one's end, would drop it, and a later unsure create's not-found
// would hold the order for a person where it is believed. (A credentials
// refusal after throttles is looked up as any unsure answer, and drops
// it.)
func keepThrottled(rec *ledger.Record, t ledger.Transition) ledger.Transition {
	if rec.InflightMarked && rec.ThrottledLast() {
		return t.WithThrottledCreate()
	}
	return t
}

// MaxPays is how many pays the worker sends one order, each after the one
// before it failed or went unanswered and the order still showed unpaid a
// listing lag after it. Past them it pays no more: the order is checked
// on, and errored when its pending window closes still unpaid.
const MaxPays = 3

// refusedBeforeActing reports whether a pay that failed with code was
// refused by the provider before it acted (throttled, unauthenticated).
// Unavailable is not: it may be a timeout of a request that left.
func refusedBeforeActing(code providers.Code) bool {
	return code == providers.RateLimited || code == providers.Unauthenticated
}

// refused reports whether a create failed with code is read as refused
// for good (the order errored), absent anything known before it.
func refused(code providers.Code) bool {
	return !providers.MaybeCreated(code) && !providers.Retryable(code) && code != providers.Unauthenticated
}

// HeldUnlisted, LeftAtDeadline and HeldParams begin the reasons of an
// unknown order whose task ended for a person to decide: held because the
// listing does not prove it absent (Policy.HoldUnlisted), still unknown at
// its deadline, or held because this worker rejects its recorded params
// (ParamsRejected). LeftForAPerson tells them.
const (
	HeldUnlisted   = "not listed, which does not prove the order absent: "
	LeftAtDeadline = "outcome unknown at the deadline; left for an operator"
	HeldParams     = "a create of it may have been received, and this worker rejects its recorded params (a worker of another version?); left for a person, or a worker that takes them: "
	// OwnedAnswer begins the reason of an order whose create the
	// provider answered with another order's provider order id.
	OwnedAnswer = "the provider answered a create of it with another order's id: "
	// HeldOwned begins the reason of an order a create of which was
	// answered so, or refused as a used number (Record.OwnedAnswer), not
	// found by its lookups once its failure budget or its time was spent:
	// left for a person, never errored as not created (the provider may
	// hold an order made for it) nor created again.
	HeldOwned = "its creates were answered with other orders' ids or refused as a number used already, and its failure budget or time is spent (a provider that takes these params for another order's, numbers orders in a way this worker does not know, or stores order numbers otherwise than sent: padded, cut or case-folded); it may exist: left for a person (last lookup: "
)

// ParamsRejected decides about an order whose recorded params this worker
// rejects (written by a version that took them): nothing is sent. An order
// about to be created is errored, nothing having been created; one the
// provider holds (pending) is left as it is, its task ended; one a create
// of which may have been received is unknown, left for a person (looked at
// again now and then by the reconciler, so that a worker that takes its
// params looks it up), never errored: a run that only ended its task left
// it submitting with its create in flight, re-queued and archived at every
// sweep, out of sight of the alerts on unknown orders (a review).
func ParamsRejected(rec *ledger.Record, p Policy, now time.Time, msg string) Decision {
	reason := "recorded params rejected: " + msg
	// A create of it may have been received: one said so, one a run left
	// in flight, one lost with Redis's data (a record to look up first),
	// or one a lookup's not-found, seen sooner after it than this
	// worker's lag, does not prove absent (AbsentRecheck). A create this
	// step's Begin marked has not left.
	mayExist := rec.MayExist || rec.State == ledger.StateUnknown || rec.Inflight > 0 && !rec.InflightMarked || !rec.LookFirstSince.IsZero() || rec.AbsentRecheck
	if !mayExist && rec.State != ledger.StatePending {
		if pl := PlanStep(rec, p, now); pl.Step == None && pl.Settle.To() == ledger.StateErrored {
			// Past its deadline or budget with nothing sent: errored as
			// the plan says, whatever the params.
			return Decision{Settle: pl.Settle, Then: pl.Then}
		}
		return Decision{Settle: ledger.SetErrored(reason), Then: Then{Next: Stop, Reason: reason}}
	}
	if rec.State == ledger.StatePending {
		return Decision{Settle: ledger.Unmark(rec), Then: Then{Next: Stop, Reason: reason}}
	}
	r := HeldParams + reason
	return leftFor(rec, r, providers.OK)
}

// LeftForAPerson reports whether reason is that of an unknown order left
// for a person (HeldUnlisted, LeftAtDeadline).
func LeftForAPerson(reason string) bool {
	return strings.HasPrefix(reason, HeldUnlisted) || strings.HasPrefix(reason, LeftAtDeadline) || strings.HasPrefix(reason, HeldParams) || strings.HasPrefix(reason, HeldOwned)
}

// leftFor leaves the order for a person with reason r, code being what
// the last answer was: its task ends (see leave), and a first stop records
// when it was held (Transition.WithHeld), from which the reconciler spaces
// its later looks.
func leftFor(rec *ledger.Record, r string, code providers.Code) Decision {
	next := leave(rec, r)
	t := ledger.SetUnknown(r).WithMayExist(true)
	if next == Stop {
		t = t.WithHeld()
	}
	return Decision{Settle: t, Then: Then{Next: next, Reason: r, Code: code}}
}

// leave is how the task of an order left for a person (with reason r)
// ends: Stop the first time, Rest when the order was left so already, for
// the same kind of reason (a later look by the reconciler that found
// nothing new): archived again, its task would count as a new one ended
// for good, and the OrderTasksArchived alert fire, every hour for every
// such order. Left for another kind of reason (held as not listed, and
// now found among orders it cannot be told from), it stops anew: what a
// person was told to do may no longer be right.
func leave(rec *ledger.Record, r string) Next {
	if k := leftKind(rec.Reason); rec.State == ledger.StateUnknown && k != "" && k == leftKind(r) {
		return Rest
	}
	return Stop
}

// leftKind is the kind of reason an order left for a person has: held as
// not listed, unknown at its deadline with an ambiguous last lookup, or
// otherwise; "" for any other reason.
func leftKind(reason string) string {
	switch {
	case strings.HasPrefix(reason, HeldUnlisted):
		return "held"
	case strings.HasPrefix(reason, HeldParams):
		return "params"
	case strings.HasPrefix(reason, HeldOwned):
		return "owned"
	case strings.HasPrefix(reason, LeftAtDeadline+" ("+AmbiguousLookup):
		return "deadline, ambiguous"
	case strings.HasPrefix(reason, LeftAtDeadline):
		return "deadline"
	}
	return ""
}

// AmbiguousLookup begins the reason of an unknown order whose last lookup
// could not single it out among the provider's orders (Ambiguous): held
// twice, one with other params under its number, orders not told apart
// (no snapshot, rivals not recorded yet), a listing too long to read. The
// lookups go on until the deadline; some of these pass, some need a
// person, as the provider's message says.
const AmbiguousLookup = "the last lookup could not single the order out among the provider's: "

func lookupFailed(rec *ledger.Record, code providers.Code, err error, msg string, p Policy, now time.Time) Decision {
	reason := rec.Reason
	if rec.State == ledger.StateSubmitting {
		reason = "attempt abandoned mid-flight; looking the order up"
	}
	switch {
	case strings.HasPrefix(reason, AmbiguousLookup) && code != providers.Ambiguous:
		// An earlier lookup's; this one answered otherwise.
		reason = "looked up: " + msg
	case code != providers.NotFound && code != providers.Ambiguous && leftKind(reason) == "":
		// The lookup failed: the record keeps what made the order unknown
		// and says what its last lookup met, so that a person reading it
		// sees why it is still unknown (the history keeps every lookup).
		reason = withLastLookup(reason, msg)
	}
	if code == providers.NotFound {
		// Whatever follows, the record keeps when the lookup began
		// (ledger.Record.UnseenAt): a lookup that finds the order later
		// tells how late the provider listed it (Decision.ListedLate).
		d := lookupNotFound(rec, reason, msg, code, p, now)
		seen := rec.ReadAt
		if seen.IsZero() {
			seen = now
		}
		d.Settle = d.Settle.WithUnseen(seen)
		return d
	}
	// The order may exist: it stays unknown. Lookups spend no budget.
	if code == providers.Ambiguous {
		// The provider answered, with orders this one cannot be told
		// from (see AmbiguousLookup): the record says so, for the person
		// who may have to decide, rather than what first made the order
		// unknown (the history keeps that).
		reason = AmbiguousLookup + msg
	}
	t := ledger.SetUnknown(reason).WithMayExist(true)
	if code == providers.Unauthenticated {
		return Decision{Settle: t, Then: Then{Next: ConfigWait, Delay: p.ConfigWait, Reason: msg, Code: code}}
	}
	if pastDeadline(rec, p, now) && listingLagLeft(rec, p, now) <= 0 {
		// (Within the listing lag no lookup could settle the order yet:
		// one that failed waits, as before the deadline, rather than end
		// the task and leave the order for a person on a failure of the
		// moment, the lookups within the lag being several.)
		if providers.Retryable(code) && code != providers.Ambiguous && rec.State == ledger.StateUnknown && leftKind(rec.Reason) != "" {
			// Left for a person already, and this lookup had no answer:
			// nothing new, and the reason it was left with (held as not
			// listed, say) stands.
			return Decision{Settle: ledger.SetUnknown(rec.Reason).WithMayExist(true), Then: Then{Next: Rest, Reason: rec.Reason, Code: code}}
		}
		// The task ends here: the record says why, for the operator the
		// OrdersStuckUnknown alert sends to it.
		r := LeftAtDeadline + " (last lookup: " + msg + ")"
		if code == providers.Ambiguous {
			r = LeftAtDeadline + " (" + AmbiguousLookup + msg + ")"
		}
		return leftFor(rec, r, code)
	}
	return Decision{Settle: t, Then: Then{Next: Wait, Delay: backoff(err, p, rec, 8), Reason: msg, Code: code}}
}

// lastLookup joins what made an order unknown to what its last failed
// lookup met (lookupFailed).
const lastLookup = "; last lookup: "

// withLastLookup says in reason what the last failed lookup met (msg), in
// place of what an earlier one met.
func withLastLookup(reason, msg string) string {
	if i := strings.Index(reason, lastLookup); i >= 0 {
		reason = reason[:i]
	}
	if rest, ok := strings.CutPrefix(reason, "looked up: "); ok && rest != "" {
		return "looked up: " + msg
	}
	if reason == "" {
		return "looked up: " + msg
	}
	return reason + lastLookup + msg
}

// lookupNotFound decides about a lookup that did not find the order: wait
// within the listing lag, hold it for a person where the listing does not
// prove it absent, error it when out of budget or time, or create it again.
func lookupNotFound(rec *ledger.Record, reason, msg string, code providers.Code, p Policy, now time.Time) Decision {
	if wait := listingLagLeft(rec, p, now); wait > 0 {
		// Not listed yet, perhaps: look again once the listing has
		// had time to catch up with the create.
		left := fmt.Sprintf("the last create left %s before the lookup", (p.ListingLag - wait).Round(time.Millisecond))
		if wait > p.ListingLag {
			// The create's end is taken to be still ahead (one
			// lost with Redis's data may leave until a call's
			// time after the loss was found).
			left = fmt.Sprintf("a create may leave until %s after the lookup", (wait - p.ListingLag).Round(time.Millisecond))
		}
		// Stepped on the lag itself: a step of Redis's clock held
		// (ClockHold, in p's lag) is waited over at the end, so that the
		// lookups at half of it come half the lag after the create.
		next := wait
		if !p.Matches || rec.ProviderOrderID != "" {
			next = lookStep(wait, p.ListingLag-max(rec.ClockHold, 0))
		}
		msg = fmt.Sprintf("%s; %s, within the listing lag of %s: looking again in %s",
			msg, left, p.ListingLag, next.Round(time.Millisecond))
		return Decision{Settle: ledger.SetUnknown(reason).WithMayExist(true), Then: Then{Next: Wait, Delay: next, Reason: msg, Code: code}}
	}
	refusal, refusedLast := rec.RefusedCreate, rec.RefusedLast()
	if rec.RefusedCreateAt.IsZero() && !refusedLast {
		// Refused under an earlier version, which kept it in the reason
		// only (a review: else such an order in flight across the
		// upgrade is created again).
		refusal, refusedLast = strings.CutPrefix(reason, RefusedAfterThrottles)
	}
	if refusedLast && rec.ThrottledLast() && !rec.OwnedAnswer {
		// Refused for its params after creates answered only throttled
		// (submitFailed), and not listed a listing lag after: the
		// refusal was the order's.
		r := "refused: " + refusal + " (not listed a listing lag after: " + msg + ")"
		return Decision{Settle: ledger.SetErrored(r).WithMayExist(false).WithAbsentLag(absentSeen(rec, now)), Then: Then{Next: Stop, Reason: r}}
	}
	if p.HoldUnlisted && (!rec.LookOnly || rec.Failures > 0) && !rec.ThrottledLast() {
		// A create of the order's own may have been received (one
		// looked up first for a loss of Redis's data, no create of it
		// marked since, is not held: after a loss every order would
		// be), and the listing may leave it out: a person decides.
		r := HeldUnlisted + "a create of it may have been received, and the provider's listing may leave out an order whose create failed midway (what it leaves out by default is not documented); left for a person: resolve it absent to have it created, or paid with the provider's order id (last lookup: " + msg + ")"
		return leftFor(rec, r, code)
	}
	if rec.OwnedAnswer && (p.MaxAttempts > 0 && rec.Failures >= p.MaxAttempts || pastDeadline(rec, p, now)) {
		// A create of it was answered with another order's id: it
		// may have made an order no lookup tells from that other's,
		// so it is not surely not created, and never errored so (an
		// operator could re-drive it) once its budget or time is
		// spent: left for a person.
		r := HeldOwned + msg + ")"
		return leftFor(rec, r, code)
	}
	// Surely not created: submit again, unless out of budget or time.
	// Errored so, it records how long after the last create the
	// not-found was seen, as a create that follows does: an
	// operator's re-drive keeps it, so that a worker with a longer
	// lag looks the order up again before it creates it.
	switch {
	case p.MaxAttempts > 0 && rec.Failures >= p.MaxAttempts:
		r := fmt.Sprintf("not created after %d failed attempts: %s", rec.Failures, reason)
		return Decision{Settle: ledger.SetErrored(r).WithMayExist(false).WithAbsentLag(absentSeen(rec, now)), Then: Then{Next: Stop, Reason: r}}
	case pastDeadline(rec, p, now):
		r := p.deadlineReason() + " (the provider holds no such order)"
		return Decision{Settle: ledger.SetErrored(r).WithMayExist(false).WithAbsentLag(absentSeen(rec, now)), Then: Then{Next: Stop, Reason: r}}
	}
	// Believed absent: a create follows. The order's identification
	// (snapshot, first attempt) is kept: a create may have been
	// received, and the listing may yet show it.
	// An id a failed create was answered with, which the lookup went
	// by, names no order: forgotten, so that the next create's own
	// answer is recorded and looked up by.
	// (One a create of which was answered with another order's id
	// may exist all the same, passed over as that other's: never
	// re-driven by an operator without a lookup.)
	// How long after the last create the not-found was seen is
	// recorded: a worker with a longer lag looks the order up again
	// before it creates it (ledger.Record.AbsentRecheck).
	seen := absentSeen(rec, now)
	d := Decision{Settle: ledger.SetRetry(reason).WithMayExist(rec.OwnedAnswer).WithoutOwnID(rec).WithAbsentLag(seen), Then: Then{Next: Continue, Step: Submit}}
	if !rec.LookOnly {
		// Created again after a create of its own (not one looked up
		// first for a loss of Redis's data with no create of it marked
		// since: every order recorded around a loss is, and the loss has
		// its own count and alert).
		d.CreatedAgain, d.ListingLag = max(seen, time.Millisecond), p.ListingLag
	}
	return d
}

// pendingFailed decides about a poll or a pay that failed with code; as is
// the code it is treated as (Unavailable for a refusal of the credentials
// that is the order's: orderRefused), while code says whether a pay was
// refused before the provider acted.
func pendingFailed(rec *ledger.Record, step Step, code providers.Code, err error, msg string, p Policy, now time.Time, as providers.Code) Decision {
	if code == providers.NotFound {
		r := "pending order no longer found: " + msg
		return Decision{Settle: ledger.SetErrored(r), Then: Then{Next: Stop, Reason: r}}
	}
	keep := ledger.Keep("")
	if step == Pay && refusedBeforeActing(code) {
		// The pay was refused before the provider acted: a later check
		// may pay.
		keep = keep.ClearPaySent(rec.PaySentBefore, rec.Pays)
	}
	if as == providers.Unauthenticated {
		return Decision{Settle: keep, Then: Then{Next: ConfigWait, Delay: p.ConfigWait, Reason: msg, Code: code}}
	}
	// Any other failure leaves the order pending: the provider holds it,
	// so it is checked on rather than forgotten.
	since := rec.PendingSince
	if since.IsZero() {
		since = now
	}
	// Past the window an order is errored only on a check that says it
	// is unpaid (succeeded): a failed check says nothing of where it
	// stands. The provider holds it (its create answered, or a check found
	// it), and it may have been paid since the last check that answered:
	// by a person, by its buyer, or by a pay of the worker's that went
	// through. Errored, it would sit at the provider, perhaps paid, with
	// the order recorded a failure. It stays pending, which the
	// stuck-pending alert shows (the awaiting-a-person one for an order
	// found by matching or paid by the worker), and is checked until a
	// check tells.
	if p.PendingWindow > 0 && now.Sub(since) > p.PendingWindow {
		// A pay marked sent and not refused before the provider acted may
		// have gone through.
		paySent := rec.PaySentAt
		if keep.ClearsPaySent() {
			paySent = rec.PaySentBefore // this step's pay did not leave
		}
		if !paySent.IsZero() {
			msg = fmt.Sprintf("pending past the pending window of %s; a pay marked sent at %s may have gone through, so the order is checked until a check tells (last %s failed: %s)",
				p.PendingWindow, paySent.UTC().Format(time.RFC3339), step, msg)
		} else {
			msg = fmt.Sprintf("pending past the pending window of %s; errored only on a check that finds it unpaid, so it is checked until one tells (last %s failed: %s)",
				p.PendingWindow, step, msg)
		}
	}
	wait := pollDelay(since, p, now)
	if (code == providers.RateLimited || providers.Throttled(err)) && (p.PendingWindow <= 0 || now.Sub(since) <= p.PendingWindow) {
		// Throttled: the check or pay said nothing and goes again soon
		// (a Retry-After, when given, still rules), paced by the
		// worker's own rate, as a
		// throttled create does (backoff), not at the checks' schedule
		// (a minute, for an order pending a while: a black-box run had
		// an auto-paid order's pay throttled five times, 13-61 s apart,
		// while the worker's rate had room). Past the pending window,
		// the schedule: an order checked for hours is not checked every
		// few seconds by a provider throttling every check.
		wait = min(wait, p.Backoff.Delay(throttleRetries))
	}
	wait = retryAfter(err, wait)
	return Decision{Settle: keep.WithNextCheck(now.Add(wait)), Then: Then{Next: Wait, Delay: wait, Reason: msg, Code: as}}
}

// RefusedForTheOrder is said of a refusal of the credentials or the clock
// that is the order's (orderRefused).
const RefusedForTheOrder = "refused as unauthenticated while this worker's calls for other orders went through: the refusal is this order's, not its credentials'"

// orderRefused reports whether a call that failed with code was refused
// for its credentials while the same step went through for other orders
// (Outcome.OthersWent): not the worker's configuration. Neither a refusal
// of the clock (every attempt is signed anew: one that lasts is the
// worker's clock, whatever the other calls met) nor one of the account (a
// provider may refuse an account one call while it takes others) is judged
// so.
func orderRefused(code providers.Code, out Outcome) bool {
	return code == providers.Unauthenticated && out.OthersWent && CredentialsRefused(out.Err)
}

// CredentialsRefused reports whether err refused a call for its
// credentials, neither its clock nor its account: the only refusal that
// may be judged an order's own (Outcome.OthersWent).
func CredentialsRefused(err error) bool {
	return providers.CodeOf(err) == providers.Unauthenticated &&
		!errors.Is(err, providers.ErrAccount) && !errors.Is(err, providers.ErrClock)
}

// payUnsettled reports whether an order the check r finds pending may yet
// be paid, so that the pending window does not error it as unpaid: the
// provider does not say it is unpaid (providers.Result.Unpaid: it may be
// being paid, by the worker or anyone, or in a status the client does not
// know), or the worker's pay was marked sent less than a listing lag ago
// (a check that finds it unpaid then is no proof that it is, as a
// lookup's not-found within the lag is no proof of absence). Only a check
// that finds the order unpaid, a lag or more after any pay of the
// worker's, tells that it is still unpaid.
func payUnsettled(rec *ledger.Record, r providers.Result, p Policy, now time.Time) bool {
	// A Payable result is unpaid whatever it says (providertest holds
	// providers to saying both): one taken for "may yet be paid" would be
	// paid again every listing lag past the window, never errored.
	unpaid := r.Unpaid || r.Payable
	// A pay the provider accepted went through as far as it said: the
	// order is not taken for unpaid (errored at the window) while it does
	// not show, nor paid again; it waits for a person.
	return !unpaid || !rec.PaySentAt.IsZero() && now.Sub(rec.PaySentAt) < p.ListingLag || rec.PayAccepted()
}

func prepareFailed(rec *ledger.Record, code providers.Code, err error, msg string, p Policy, now time.Time) Decision {
	switch {
	case code == providers.Unauthenticated:
		return Decision{Settle: ledger.Keep(msg), Then: Then{Next: ConfigWait, Delay: p.ConfigWait, Reason: msg, Code: code}}
	case providers.Retryable(code) || code == providers.NotFound:
		// Nothing was created; the deadline bounds the retries.
		if pastDeadline(rec, p, now) {
			r := p.deadlineReasonAfter(msg)
			return Decision{Settle: ledger.SetErrored(r), Then: Then{Next: Stop, Reason: r}}
		}
		return Decision{Settle: ledger.Keep(msg),
			Then: Then{Next: Wait, Delay: backoff(err, p, rec, 6), Reason: msg, Code: code}}
	}
	return Decision{Settle: ledger.SetErrored(msg), Then: Then{Next: Stop, Reason: msg}}
}

// lastCreate is when the order's latest create may last have been acted
// on (Record.LastCreateAt: when it ended, or, for one its run never
// settled, when that run's lease ran out; while it is in flight, when it
// was marked), or its first attempt for a record written before that was
// kept; for a record recreated after Redis lost it, no earlier than
// the recreation (its lost create may have left just before; ClaimLost
// records that as its last create too). A record never lost was created
// before any of its creates, so CreatedAt changes nothing there. Nor does
// it for a record looked up first after a loss (Record.LookedFirstAt):
// the look-first raised its last create to when the loss was found, when
// a create lost with the data had left, so that an order first recorded
// after that (a new one, or a resend) does not wait the lag from its own
// creation, as every order for a day after a loss would.
func lastCreate(rec *ledger.Record) time.Time {
	t := rec.LastCreateAt
	if rec.FirstAttemptAt.After(t) {
		t = rec.FirstAttemptAt
	}
	if rec.LookedFirstAt.IsZero() && rec.CreatedAt.After(t) {
		t = rec.CreatedAt
	}
	return t
}

// LastCreate is when rec's last create ended, as the listing lag counts
// from it (on Redis's clock; zero when no create is known):
// providers.Order.LastCreate.
func LastCreate(rec *ledger.Record) time.Time {
	if rec.LastCreateAt.IsZero() && rec.FirstAttemptAt.IsZero() {
		return time.Time{}
	}
	return lastCreate(rec)
}

// BelievedForThrottle reports whether a lookup's not-found of rec, past
// the listing lag, would be believed under p only because every create of
// it that may have been received was answered throttled: p holds the
// not-found of any other unsure create for a person (HoldUnlisted; see
// lookupNotFound). Such a lookup is told so (providers.Order.Throttled).
func BelievedForThrottle(rec *ledger.Record, p Policy) bool {
	return p.HoldUnlisted && (!rec.LookOnly || rec.Failures > 0) && rec.ThrottledLast()
}

// ShownFrom is when a lookup's not-found of rec begins to be believed
// under p: its last create plus the listing lag (as held for rec), on
// Redis's clock; zero when no create is known or p has no lag. What a
// provider read of its listing before it proves no absence from then on
// (providers.Order.ShownFrom).
func ShownFrom(rec *ledger.Record, p Policy) time.Time {
	p = p.held(rec)
	last := lastCreate(rec)
	if p.ListingLag <= 0 || last.IsZero() {
		return time.Time{}
	}
	return last.Add(p.ListingLag)
}

// held is p with its listing lag at least the longest a process that
// marked a create or a pay of rec judged it with (ledger.Record.MarkLag:
// a worker with a shorter setting waits as long as the one that sent the
// call), and longer by the hold of a step forward of Redis's clock rec was
// read under (ledger.Record.ClockHold): the creates' and pays' times
// stamped before the step look that much older than they are, and the lag
// is not to be cut short by it.
func (p Policy) held(rec *ledger.Record) Policy {
	p.ListingLag = max(p.ListingLag, rec.MarkLag)
	if p.ListingLag > 0 && rec.ClockHold > 0 {
		p.ListingLag += rec.ClockHold
	}
	return p
}

// absentSeen is how long after rec's last create a lookup's not-found was
// seen (from the Begin before the lookup, on Redis's clock as it read it;
// less a step of that clock held, ledger.Record.ClockHold, by which the
// create looks older than it is): the lag it is believed under, at the
// least. With no create known, MaxListingLag: nothing for a longer lag to
// wait for.
func absentSeen(rec *ledger.Record, now time.Time) time.Duration {
	last := lastCreate(rec)
	if last.IsZero() {
		return ledger.MaxListingLag
	}
	if !rec.ReadAt.IsZero() {
		now = rec.ReadAt
	}
	return max(now.Sub(last)-rec.ClockHold, 0)
}

// listingLagLeft is how long a lookup's not-found is still not believed.
// The creates' times are Redis's (the ledger stamps them), so the lag is
// judged on Redis's clock as Begin read it (Record.ReadAt), before the
// lookup left: a worker whose clock runs ahead cannot cut the lag short.
// now stands in only for a record read otherwise; the other times taken
// into lastCreate (first attempt, creation) are a worker's or producer's,
// and only ever lengthen the lag.
func listingLagLeft(rec *ledger.Record, p Policy, now time.Time) time.Duration {
	last := lastCreate(rec)
	if p.ListingLag <= 0 || last.IsZero() {
		return 0
	}
	if !rec.ReadAt.IsZero() {
		now = rec.ReadAt
	}
	return last.Add(p.ListingLag).Sub(now)
}

// listedLate is Decision.ListedLate for an order a lookup found, with the
// lag it is judged against (the longer of p's and the record's mark lag):
// how long after the last create an earlier lookup did not find it (less
// a step of Redis's clock held), when that is half the lag or more.
func listedLate(rec *ledger.Record, p Policy) (time.Duration, time.Duration) {
	lag := max(p.ListingLag, rec.MarkLag)
	last := lastCreate(rec)
	if lag <= 0 || rec.UnseenAt.IsZero() || last.IsZero() || !rec.UnseenAt.After(last) {
		return 0, lag
	}
	seen := rec.UnseenAt.Sub(last) - max(rec.ClockHold, 0)
	if 2*seen < lag {
		return 0, lag
	}
	return seen, lag
}

// minSteppedLag is the shortest listing lag within which a lookup that
// did not find the order looks again before the lag's end (lookStep).
const minSteppedLag = 16 * time.Second

// lookStep is how long a lookup that did not find the order, left before
// the end of the listing lag lag, waits before the next: until an eighth,
// a quarter or half of the lag has passed since the last create, the
// first of these still ahead, then until its end. An order the provider
// lists a little late is taken once it shows, not only at the lag's end;
// and one it lists later than half the lag is seen to be listed so late
// (Decision.ListedLate: a warning that the lag is short). A lag under
// minSteppedLag is waited whole.
func lookStep(left, lag time.Duration) time.Duration {
	if lag < minSteppedLag {
		return left
	}
	for _, at := range []time.Duration{lag / 8, lag / 4, lag / 2} {
		// The wait until the point at, from the lag's left part; a point
		// under a second ahead is passed over. A second more: asynq runs
		// a task set to wait up to a second early (it keeps the time a
		// task is due in whole seconds), and a look before the point
		// would not tell that the order was unlisted that late.
		if d := left - (lag - at); d >= time.Second {
			return min(d+time.Second, left)
		}
	}
	return left
}

// personDelay is the least wait between checks of a pending order that
// waits for a person: a quarter of how long it has been pending, at most
// an hour (a minute at first, as pollDelay's longest).
func personDelay(since, now time.Time) time.Duration {
	return min(max(now.Sub(since)/4, time.Minute), time.Hour)
}

// pollDelay doubles from PollInterval up to a minute with the time spent
// pending.
func pollDelay(since time.Time, p Policy, now time.Time) time.Duration {
	d := p.PollInterval
	if d <= 0 {
		d = 2 * time.Second
	}
	for elapsed := now.Sub(since); d < time.Minute && elapsed > 4*d; d *= 2 {
	}
	return min(d, time.Minute)
}
