// Package ops is what an operator does to orders, shared by enqueue's list,
// resolve and redrive commands and the worker's admin API and Orders pages:
// list and read orders with personal data masked, record a decision about
// an order the worker cannot settle (ledger.Ledger.Resolve), and re-drive
// errored orders that surely created nothing at the provider
// (ledger.Ledger.Redrive), queueing their tasks again (tasks.Requeue).
//
// The ledger decides what is legal; this package adds the selection, the
// masking and the task. Whatever it shows has params opened (when it holds
// the data key) and masked, and phone numbers masked in every message; an
// operator's note and name are stored with phone numbers masked.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// Action names an operator action, as counted by Options.Observe.
const (
	ActionResolvePaid    = "resolve_paid"
	ActionResolveAbsent  = "resolve_absent"
	ActionResolveErrored = "resolve_errored"
	ActionRedrive        = "redrive"
)

// Actions lists every action.
var Actions = []string{ActionResolvePaid, ActionResolveAbsent, ActionResolveErrored, ActionRedrive}

// Result of an action, as counted by Options.Observe.
const (
	ResultOK      = "ok"
	ResultRefused = "refused" // not legal for the order as it stands; nothing changed
	ResultError   = "error"   // Redis failed
)

// Results lists every result.
var Results = []string{ResultOK, ResultRefused, ResultError}

// Options configure Orders. nil means defaults.
type Options struct {
	// Queue is the asynq queue re-driven orders are queued on. Default
	// tasks.DefaultQueue.
	Queue string
	// Sealer opens sealed params for display (masked); nil shows them
	// sealed.
	Sealer *tasks.Sealer
	// Observe is called once per resolve or re-drive attempted (not for a
	// dry run), with one of Actions and one of Results; nil: none.
	Observe func(action, result string)
	// Now is the clock -older-than counts back from. Default Redis's (the
	// ledger's stamps are on it).
	Now func() time.Time
	// Secrets are removed from operators' notes and names before they are
	// stored (a key pasted into a note would be kept in Redis and sent
	// out with the order's event).
	Secrets []string
	// ListingLag is the workers' ORDERWORKER_LISTING_LAG: resolving an
	// order absent is refused while its last create ended less than it ago
	// (ledger.ResolveArgs.ListingLag). Zero: tasks.DefaultListingLag;
	// negative: none. The provider's create overrun (Set.CreateOverrun) is
	// added either way (tasks.ListingLagFor).
	ListingLag time.Duration
}

// Orders carries out operator actions. It is safe for concurrent use.
type Orders struct {
	ledger    *ledger.Ledger
	inspector *asynq.Inspector
	client    *asynq.Client
	set       *providers.Set
	opts      Options
}

// New returns Orders over the ledger; inspector and client queue the
// tasks of re-driven orders; set names the providers and their personal
// data.
func New(l *ledger.Ledger, inspector *asynq.Inspector, client *asynq.Client, set *providers.Set, opts *Options) *Orders {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Queue == "" {
		o.Queue = tasks.DefaultQueue
	}
	return &Orders{ledger: l, inspector: inspector, client: client, set: set, opts: o}
}

// Queue is the asynq queue orders are queued on (with a sharded ledger,
// the base of each shard's queue name: see tasks.Queues).
func (o *Orders) Queue() string { return o.opts.Queue }

// OrderQueue is the asynq queue of an order's task.
func (o *Orders) OrderQueue(ref ledger.Ref) string {
	return tasks.OrderQueue(o.opts.Queue, o.ledger, ref)
}

// known reports whether ref names a provider of the set: no other has
// orders. (The ledger's keys join the provider and the order number with a
// colon, which an order number may hold: "tencent:A" and "B" would name
// the record of "tencent" and "A:B".)
func (o *Orders) known(ref ledger.Ref) bool { return slices.Contains(o.set.Names(), ref.Provider) }

// Providers lists the provider names, in the registry's order.
func (o *Orders) Providers() []string { return o.set.Names() }

// HasOrderIDs reports whether the named provider gives each order an id
// of its own: an order of one that does not is resolved paid without one
// (Resolve refuses an id for it).
func (o *Orders) HasOrderIDs(provider string) bool { return o.set.HasOrderIDs(provider) }

// UsageError is a filter or an argument that cannot be used as given.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Filter selects orders.
type Filter struct {
	// State; "" for every state.
	State ledger.State
	// Provider; "" for every provider.
	Provider string
	// OlderThan lists orders that entered their state at least this long
	// ago; 0 for any.
	OlderThan time.Duration
	// Limit bounds a page; default 50, at most 1000.
	Limit int
	// Cursor continues a listing where the previous page ended.
	Cursor string
}

// ParseState reads a state name, "" for any; a *UsageError names the valid
// ones.
func ParseState(s string) (ledger.State, error) {
	st := ledger.State(strings.TrimSpace(s))
	if st == "" || st.Valid() {
		return st, nil
	}
	return "", &UsageError{fmt.Sprintf("state %q: want one of %s", s, joinStates(ledger.States))}
}

func joinStates(states []ledger.State) string {
	s := make([]string, len(states))
	for i, st := range states {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

// providerNames returns the providers a filter selects.
func (o *Orders) providerNames(p string) ([]string, error) {
	names := o.set.Names()
	if p == "" {
		return names, nil
	}
	if !slices.Contains(names, p) {
		return nil, &UsageError{fmt.Sprintf("provider %q: want one of %s", p, strings.Join(names, ", "))}
	}
	return []string{p}, nil
}

func (o *Orders) listArgs(ctx context.Context, f Filter) (ledger.ListArgs, error) {
	names, err := o.providerNames(f.Provider)
	if err != nil {
		return ledger.ListArgs{}, err
	}
	if f.State != "" && !f.State.Valid() {
		return ledger.ListArgs{}, &UsageError{fmt.Sprintf("state %q: want one of %s", f.State, joinStates(ledger.States))}
	}
	if f.OlderThan < 0 || f.Limit < 0 {
		return ledger.ListArgs{}, &UsageError{"older-than and limit cannot be negative"}
	}
	a := ledger.ListArgs{Providers: names, State: f.State, Limit: f.Limit, Cursor: f.Cursor}
	if f.OlderThan > 0 {
		// The indexes' scores are on Redis's clock (see ledger.Options.Now),
		// unless a clock was given.
		var now time.Time
		if o.opts.Now != nil {
			now = o.opts.Now()
		} else if now, err = o.ledger.NotAfterNow(ctx, ledger.Ref{}); err != nil {
			return ledger.ListArgs{}, err
		}
		a.Before = now.Add(-f.OlderThan)
	}
	return a, nil
}

// Page is one page of a listing.
type Page struct {
	Orders []*ledger.Record `json:"orders"` // newest first, without history, masked
	Next   string           `json:"next_cursor"`
}

// List returns a page of orders, newest first by when they entered their
// state, masked. A bad filter or cursor is a *UsageError.
func (o *Orders) List(ctx context.Context, f Filter) (Page, error) {
	a, err := o.listArgs(ctx, f)
	if err != nil {
		return Page{}, err
	}
	p, err := o.ledger.List(ctx, a)
	if errors.Is(err, ledger.ErrBadCursor) {
		return Page{}, &UsageError{"cursor: not one a listing gave"}
	}
	if err != nil {
		return Page{}, err
	}
	out := Page{Orders: make([]*ledger.Record, 0, len(p.Records)), Next: p.Next}
	for _, r := range p.Records {
		out.Orders = append(out.Orders, o.Show(r))
	}
	return out, nil
}

// Get returns the order's record with its history, masked, or
// ledger.ErrNotFound.
func (o *Orders) Get(ctx context.Context, ref ledger.Ref) (*ledger.Record, error) {
	if !o.known(ref) {
		return nil, ledger.ErrNotFound
	}
	rec, err := o.ledger.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, ledger.ErrNotFound
	}
	return o.Show(rec), nil
}

// Stats returns, for each provider and state, the count and oldest entry.
func (o *Orders) Stats(ctx context.Context) (map[string]map[ledger.State]ledger.StateStats, error) {
	return o.ledger.Stats(ctx, o.set.Names())
}

// Show returns a copy of rec fit to show: params opened when sealed and
// the data key is at hand (else left sealed, opaque) and masked, phone
// numbers masked in the reason and every message of the history.
func (o *Orders) Show(rec *ledger.Record) *ledger.Record {
	r := *rec
	// Sealed params this process cannot open stay sealed: opaque.
	if clear, err := o.opts.Sealer.Open(r.Params); err == nil && len(clear) > 0 {
		r.Params = providers.MaskParams(clear, o.set.Masked(r.Provider))
	}
	r.Reason = providers.MaskPhones(r.Reason)
	r.History = make([]ledger.Attempt, len(rec.History))
	for i, a := range rec.History {
		a.Message = providers.MaskPhones(a.Message)
		a.By = providers.MaskPhones(a.By)
		r.History[i] = a
	}
	if len(rec.History) == 0 {
		r.History = nil
	}
	return &r
}

func (o *Orders) observe(action, result string) {
	if o.opts.Observe != nil {
		o.opts.Observe(action, result)
	}
}

func resultOf(err error) string {
	var refused *ledger.RefusedError
	switch {
	case err == nil:
		return ResultOK
	case errors.As(err, &refused), errors.Is(err, ledger.ErrNotFound):
		return ResultRefused
	}
	return ResultError
}

// ResolveArgs are an operator's decision about an order; see
// ledger.ResolveArgs.
type ResolveArgs = ledger.ResolveArgs

// ParseResolution reads paid, absent or errored.
func ParseResolution(s string) (ledger.Resolution, error) {
	switch r := ledger.Resolution(strings.TrimSpace(s)); r {
	case ledger.ResolvePaid, ledger.ResolveAbsent, ledger.ResolveErrored:
		return r, nil
	}
	return "", &UsageError{fmt.Sprintf("decision %q: want paid, absent or errored", s)}
}

// Resolved is a resolved order: its record after, masked, and whether its
// task was queued (after absent, so that the order is submitted again).
type Resolved struct {
	*ledger.Record
	Requeued bool `json:"requeued,omitempty"`
	// RequeueError says why the task could not be queued or run now; the
	// order is resolved all the same: a task it has runs at its time (a
	// pending order's check, up to an hour away), and the reconciler
	// queues one for an order without.
	RequeueError string `json:"requeue_error,omitempty"`
	// Unacknowledged says the decision is recorded on the Redis master
	// but its replicas did not acknowledge it in time (NotAcknowledged).
	Unacknowledged string `json:"unacknowledged,omitempty"`
	// Warning says what failed after the decision was recorded (it
	// stands): ledger.RecordedError. Record is nil when it could not be
	// read back.
	Warning string `json:"warning,omitempty"`
}

// NotAcknowledged is what an operator is told of a decision or re-drive
// recorded on the Redis master that its replicas did not acknowledge in
// time.
const NotAcknowledged = "recorded on the Redis master, but its replicas did not acknowledge it in time: a failover now could undo it; read the order's status again before acting on it"

// Resolve records an operator's decision (ledger.Ledger.Resolve): the note
// and the name are stored with phone numbers masked and Options.Secrets
// removed. After absent the
// order's task is queued again. A decision that is not legal is a
// *ledger.RefusedError; an order with no record, ledger.ErrNotFound.
func (o *Orders) Resolve(ctx context.Context, ref ledger.Ref, a ResolveArgs) (Resolved, error) {
	if !o.known(ref) {
		return Resolved{}, ledger.ErrNotFound
	}
	action := "resolve_" + string(a.As)
	if !slices.Contains(Actions, action) {
		// Bad input, as a note too long is: no order's state refuses it.
		return Resolved{}, &UsageError{fmt.Sprintf("unknown decision %q: want paid, absent or errored", a.As)}
	}
	if err := checkText(a.Note, a.By); err != nil {
		return Resolved{}, err
	}
	note, err := o.noteOf(ctx, ref, nil, a.Note)
	if err != nil {
		o.observe(action, resultOf(err))
		return Resolved{}, err
	}
	a.Note = note
	a.By = providers.Redact(strings.TrimSpace(a.By), o.opts.Secrets...)
	a.ProviderOrderID = strings.TrimSpace(a.ProviderOrderID)
	switch {
	case a.Note == "" || a.By == "":
		return Resolved{}, &UsageError{"a note and a name (by) are required: say what you found at the provider, and who decides"}
	case a.As != ledger.ResolvePaid && a.ProviderOrderID != "":
		return Resolved{}, &UsageError{"a provider order id goes with paid only"}
	case a.As == ledger.ResolvePaid && a.ProviderOrderID != "":
		if err := o.set.CheckOrderID(ref.Provider, a.ProviderOrderID); err != nil {
			return Resolved{}, &UsageError{err.Error()}
		}
	}
	if a.As == ledger.ResolvePaid && a.ProviderOrderID == "" && o.set.HasOrderIDs(ref.Provider) {
		// The id makes the order its record's: without it, a lookup for
		// another order of the same kind could take it.
		err := &ledger.RefusedError{Reason: "paid needs the provider's order id: " + ref.Provider + " gives every order one"}
		o.observe(action, resultOf(err))
		return Resolved{}, err
	}
	// The scope the order's provider order ids are unique within
	// (providers.IDScoper: an Aliyun device), from its params: a record
	// no worker has stepped since ids were kept by scope does not note
	// it. An entry of the id written by id alone (by a version before
	// that) is moved under its own order's scope first, so that the
	// ledger judges it.
	if _, scoped := o.set.IDScope(ref.Provider, nil); scoped && a.ProviderOrderID != "" {
		cur, err := o.ledger.Get(ctx, ref)
		if err != nil {
			o.observe(action, resultOf(err))
			return Resolved{}, err
		}
		scope, ok := "", false
		if cur != nil {
			scope, ok = tasks.OwnerScope(o.set, o.opts.Sealer, cur)
		}
		if cur != nil && !ok {
			// Judged without its device, the id could be given to two
			// orders of one device.
			err := &ledger.RefusedError{Reason: "the order's device cannot be read here (its params are sealed: set ORDERWORKER_DATA_KEY to the producers' data key), and " + ref.Provider + " order ids are unique only on their device"}
			o.observe(action, resultOf(err))
			return Resolved{}, err
		}
		a.IDScope = scope
	}
	if a.IDScope != "" && a.ProviderOrderID != "" {
		owner, err := tasks.MoveLegacyOwner(ctx, o.ledger, o.set, o.opts.Sealer, ref.Provider, a.ProviderOrderID)
		if err == nil && owner != "" && owner != ref.OrderNo {
			err = &ledger.RefusedError{Reason: fmt.Sprintf("provider order id %s belongs to order %s (recorded by an earlier version, whose device cannot be read here)", a.ProviderOrderID, owner)}
		}
		if err != nil {
			o.observe(action, resultOf(err))
			return Resolved{}, err
		}
	}
	if err := o.nearlyOwned(ctx, ref, a.IDScope, a.ProviderOrderID); err != nil {
		o.observe(action, resultOf(err))
		return Resolved{}, err
	}
	a.ListingLag = o.opts.ListingLag
	if a.ListingLag == 0 {
		a.ListingLag = tasks.DefaultListingLag
	}
	a.ListingLag = tasks.ListingLagFor(a.ListingLag, o.set, ref.Provider)
	rec, err := o.ledger.Resolve(ctx, ref, a)
	unacked := errors.Is(err, ledger.ErrNotDurable) && rec != nil
	var recorded *ledger.RecordedError
	if errors.As(err, &recorded) {
		// The decision stands; what failed after it is told beside it.
		unacked = recorded.NotDurable
	} else if unacked {
		err = nil
	}
	if recorded != nil {
		o.observe(action, resultOf(nil))
	} else {
		o.observe(action, resultOf(err))
		if err != nil {
			return Resolved{}, err
		}
	}
	out := Resolved{}
	if recorded != nil {
		err = nil // the decision stands: its task is queued as after any
		out.Warning = recorded.Error()
		if recorded.Record == nil {
			// Not read back: the record before the decision stands in for
			// it, so that the task is still queued.
			rec = nil
		}
	}
	if rec != nil {
		out.Record = o.Show(rec)
	}
	if unacked {
		out.Unacknowledged = NotAcknowledged
	}
	if a.As == ledger.ResolveAbsent {
		// On a context of its own: the decision is recorded, and its
		// task, up to an hour away for an order that was pending, is to
		// run now even when the caller's time ran out on the decision.
		rc, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rec == nil {
			rec, err = o.ledger.Get(rc, ref)
			if err == nil && rec == nil {
				err = ledger.ErrNotFound
			}
		}
		if err == nil {
			out.Requeued, err = tasks.RequeueNow(rc, o.ledger, o.inspector, o.client, o.opts.Queue, rec)
		}
		if err != nil {
			out.RequeueError = err.Error()
		}
	}
	return out, nil
}

// nearlyOwned refuses an id (resolving ref paid) that another order owns
// with other leading zeros (0907… where 907… is owned, or 907… where
// 0907… is; up to two zeros): most likely the same order at the provider,
// typed or copied another way, and recorded under both it would be two
// records' one order. The ledger refuses the id itself when another order
// owns it as written.
func (o *Orders) nearlyOwned(ctx context.Context, ref ledger.Ref, scope, id string) error {
	bare := strings.TrimLeft(id, "0")
	if id == "" || bare == "" {
		return nil
	}
	for _, other := range []string{bare, "0" + bare, "00" + bare} {
		if other == id {
			continue
		}
		owner := ""
		if scope != "" {
			// An entry by the id alone (an earlier version's): moved
			// under its order's scope first; one whose order's scope
			// cannot be told counts here.
			var err error
			if owner, err = tasks.MoveLegacyOwner(ctx, o.ledger, o.set, o.opts.Sealer, ref.Provider, other); err != nil {
				return err
			}
		}
		if owner == "" {
			var err error
			if owner, err = o.ledger.OwnerIn(ctx, ref.Provider, scope, other); err != nil {
				return err
			}
		}
		if owner != "" && owner != ref.OrderNo {
			return &ledger.RefusedError{Reason: fmt.Sprintf("provider order id %s is %s, which order %s owns, but for leading zeros: most likely that order; check the id at the provider", id, other, owner)}
		}
	}
	return nil
}

// Status of an order in a re-drive.
const (
	StatusRedriven     = "redriven"      // moved back to submission, its task queued
	StatusWouldRedrive = "would_redrive" // a dry run: it would be re-driven
	StatusSkipped      = "skipped"       // it may exist at the provider: never re-driven
	StatusRefused      = "refused"       // the ledger refused (it changed meanwhile)
)

// Redriven is what a re-drive did to one order.
type Redriven struct {
	Status   string       `json:"status"`
	Provider string       `json:"provider"`
	OrderNo  string       `json:"order_no"`
	State    ledger.State `json:"state"`            // after
	Reason   string       `json:"reason,omitempty"` // the order's reason before, masked
	MayExist bool         `json:"may_exist"`        // the provider may hold the order
	Requeued bool         `json:"requeued,omitempty"`
	// Why an order was skipped or refused, or why its task could not be
	// queued (the reconciler queues it then).
	Why string `json:"why,omitempty"`
	// Unacknowledged: re-driven on the Redis master, but its replicas did
	// not acknowledge it in time (NotAcknowledged).
	Unacknowledged string `json:"unacknowledged,omitempty"`
}

// skipWhy is why an order that may exist is never re-driven.
const skipWhy = "the order may exist at the provider: look it up there; it is never re-driven"

// RedriveOne re-drives one errored order that surely created nothing at
// the provider and queues its task. An order that may exist, or is not
// errored, is refused (Status refused, Why says why); an order with no
// record is ledger.ErrNotFound.
func (o *Orders) RedriveOne(ctx context.Context, ref ledger.Ref, by, note string) (Redriven, error) {
	if !o.known(ref) {
		return Redriven{}, ledger.ErrNotFound
	}
	rec, err := o.ledger.Get(ctx, ref)
	if err != nil {
		return Redriven{}, err
	}
	if rec == nil {
		return Redriven{}, ledger.ErrNotFound
	}
	return o.redrive(ctx, rec, by, note)
}

// MaxNote and MaxBy bound an operator's note and name, in bytes.
const (
	MaxNote = 1000
	MaxBy   = 100
)

// noteOf is an operator's note about the order of ref (its record rec,
// nil to read it) as it is stored: trimmed, phone numbers masked, without
// the secrets this process holds nor the order's own personal data (the
// values of its params shown masked, Set.Masked: Aliyun's userName and
// userId, Tencent's CustomerId), when its params can be read here. The note
// becomes the order's reason and goes out in its event: a customer's name
// typed into it would reach every webhook endpoint.
// A record that cannot be read fails it: the note would go out unchecked.
func (o *Orders) noteOf(ctx context.Context, ref ledger.Ref, rec *ledger.Record, note string) (string, error) {
	hide := o.opts.Secrets
	if fields := o.set.Masked(ref.Provider); len(fields) > 0 {
		if rec == nil {
			var err error
			if rec, err = o.ledger.Get(ctx, ref); err != nil {
				return "", err
			}
		}
		if rec != nil {
			hide = append(slices.Clip(hide), personalValues(o.opts.Sealer, rec, fields)...)
		}
	}
	return providers.Redact(strings.TrimSpace(note), hide...), nil
}

// personalValues is the values of rec's params named in fields (a string's
// text, any other value as JSON writes it), none when its params cannot be
// opened.
func personalValues(sealer *tasks.Sealer, rec *ledger.Record, fields []string) []string {
	clear, err := sealer.Open(rec.Params)
	if err != nil {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(clear, &m) != nil {
		return nil
	}
	var out []string
	for _, f := range fields {
		raw, ok := m[f]
		if !ok {
			continue
		}
		var v string
		if json.Unmarshal(raw, &v) != nil {
			v = string(raw)
		}
		if v = strings.TrimSpace(v); v != "" && v != "null" {
			out = append(out, v)
		}
	}
	return out
}

func checkText(note, by string) error {
	if len(note) > MaxNote || len(by) > MaxBy {
		return &UsageError{fmt.Sprintf("a note has at most %d bytes, a name %d", MaxNote, MaxBy)}
	}
	return nil
}

func (o *Orders) redrive(ctx context.Context, rec *ledger.Record, by, note string) (Redriven, error) {
	if err := checkText(note, by); err != nil {
		return Redriven{}, err
	}
	out := Redriven{Provider: rec.Provider, OrderNo: rec.OrderNo, State: rec.State,
		Reason: providers.MaskPhones(rec.Reason), MayExist: rec.MayHaveBeenCreated()}
	note, _ = o.noteOf(ctx, rec.Ref(), rec, note) // rec given: nothing to read
	err := o.ledger.Redrive(ctx, rec.Ref(), providers.Redact(strings.TrimSpace(by), o.opts.Secrets...), note)
	unacked := errors.Is(err, ledger.ErrNotDurable)
	if unacked {
		err = nil
	}
	o.observe(ActionRedrive, resultOf(err))
	var refused *ledger.RefusedError
	switch {
	case errors.As(err, &refused):
		out.Status, out.Why = StatusRefused, refused.Reason
		return out, nil
	case err != nil:
		return out, err
	}
	out.Status, out.State = StatusRedriven, ledger.StateSubmitting
	if unacked {
		out.Unacknowledged = NotAcknowledged
	}
	out.Requeued, err = tasks.Requeue(ctx, o.ledger, o.inspector, o.client, o.opts.Queue, rec)
	if err != nil {
		out.Why = "task not queued (the reconciler will): " + err.Error()
	}
	return out, nil
}

// RedriveArgs select the orders of a re-drive.
type RedriveArgs struct {
	// Provider; "" for every provider.
	Provider string
	// ReasonMatch keeps the orders whose reason contains it (any case);
	// "" keeps all.
	ReasonMatch string
	// OlderThan keeps orders errored at least this long ago; 0 for any.
	OlderThan time.Duration
	// DryRun reports what would be re-driven and changes nothing.
	DryRun bool
	// By names who re-drives (required unless DryRun); Note says why.
	By, Note string
}

// Redrive goes through the errored orders that match, newest first: an
// order that surely created nothing at the provider is re-driven and its
// task queued (or, in a dry run, reported as would_redrive); one that may
// exist is reported as skipped and left alone. each is called for every
// matching order; its error stops the re-drive.
func (o *Orders) Redrive(ctx context.Context, a RedriveArgs, each func(Redriven) error) error {
	if !a.DryRun && strings.TrimSpace(a.By) == "" {
		return &UsageError{"a re-drive needs the name of who runs it (by)"}
	}
	if err := checkText(a.Note, a.By); err != nil {
		return err
	}
	match := strings.ToLower(a.ReasonMatch)
	f := Filter{State: ledger.StateErrored, Provider: a.Provider, OlderThan: a.OlderThan, Limit: 200}
	args, err := o.listArgs(ctx, f)
	if err != nil {
		return err
	}
	for {
		page, err := o.ledger.List(ctx, args)
		if err != nil {
			return err
		}
		for _, rec := range page.Records {
			if match != "" && !strings.Contains(strings.ToLower(rec.Reason), match) {
				continue
			}
			r := Redriven{Provider: rec.Provider, OrderNo: rec.OrderNo, State: rec.State,
				Reason: providers.MaskPhones(rec.Reason), MayExist: rec.MayHaveBeenCreated()}
			switch {
			case r.MayExist:
				r.Status, r.Why = StatusSkipped, skipWhy
			case a.DryRun:
				r.Status = StatusWouldRedrive
			default:
				if r, err = o.redrive(ctx, rec, a.By, a.Note); err != nil {
					return err
				}
			}
			if err := each(r); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		args.Cursor = page.Next
	}
}
