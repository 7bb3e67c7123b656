package providers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// MaxCallTimeout bounds every provider call a client makes with its
// default timeouts (UniCloud's 30 s is the longest; Tencent's 10 s,
// Aliyun's create 8 s and pay 15 s): after it, a call that left has ended.
// The worker counts on it where it must know how long a call it cannot
// see (its run's record lost to Redis) may still have been under way.
const MaxCallTimeout = 30 * time.Second

// Status is where an order stands at the provider after a successful call.
type Status string

const (
	// StatusPaid means the provider holds the order and it is paid. Terminal.
	StatusPaid Status = "paid"
	// StatusPending means the provider holds the order but it is not paid
	// yet; Result.NextCheck says when to look again.
	StatusPending Status = "pending"
)

// Order is one order as the worker hands it to a provider.
type Order struct {
	// OrderNo is the producer's unique order number.
	OrderNo string
	// Params are the provider-specific parameters, already validated by
	// the provider's Validate.
	Params json.RawMessage
	// FirstAttempt is when the first attempt to submit this order started.
	// Providers without a client order number use it to bound the search
	// for an order that may have been created.
	FirstAttempt time.Time
	// Now is the present on the clock FirstAttempt is on (the ledger's:
	// Redis's), when the caller knows it; zero otherwise. A provider that
	// bounds a search by the present searches up to the later of it and
	// its own clock, so that a worker whose clock runs behind still finds
	// an order created a moment ago.
	Now time.Time
	// ShownFrom is when, on Now's clock, the caller begins to believe a
	// lookup's not-found: the order's last create plus the listing lag,
	// within which the provider is trusted to show an order as it is
	// (listed, under the names its create sent). Zero when no create is
	// known or no lag applies. A provider that remembers what it read of
	// other orders does not let what it read before ShownFrom (a name
	// shown while an order was being provisioned) rule this order out in
	// a lookup from ShownFrom on: it reads it again.
	ShownFrom time.Time
	// LastCreate is when the order's last create ended (or, for one whose
	// run never settled it, when that run's lease ran out), on Now's
	// clock; zero when no create is known.
	LastCreate time.Time
	// Throttled says a not-found from this lookup would be believed only
	// because every create of the order that may have been received was
	// answered throttled (the caller holds a not-found of any other
	// unsure create for a person: UnlistedNotAbsent): a throttle is taken
	// to have made nothing unless the listing shows the order. A provider
	// whose listing may show an order under another name than its create
	// sent does not answer not-found while its window holds an order that
	// may be this one renamed (of its kind, made while such a create may
	// have acted: from the first attempt until ShownFrom, or LastCreate
	// and the create overrun) that no order of the ledger owns (Owned),
	// unless the listing shows the characters of this order's name that a
	// store may rewrite as sent, in another order's name; it answers
	// Ambiguous.
	Throttled bool
	// ListingLag is the listing lag the caller judges orders by: how long
	// after its create the provider is trusted to show an order as it is.
	// A provider that remembers what it read of other orders takes what
	// it read of one a lag or more after it first read it as settled.
	// Zero: not known (nothing is taken as settled by it).
	ListingLag time.Duration
	// ProviderOrderID is the provider's id for this order when an earlier
	// call learned it; empty otherwise.
	ProviderOrderID string
	// Parsed is what the provider's Parse returned for Params, when the
	// caller has it: providers use it instead of decoding Params again.
	Parsed Params
	// Known lists the provider order ids a Preparer saw for this order's
	// target before the first create (nil when the provider is not a
	// Preparer or the snapshot was not taken). Lookup may treat an order
	// that is not in Known as new since then.
	Known []string
	// Matched says ProviderOrderID was not given by the provider for this
	// order's own create (nor found by a number the order itself carries):
	// an earlier Lookup took it for this order by matching the provider's
	// listing (Result.Matched). A provider that pays never pays such an
	// order unless told to (see providers/aliyun, Options.PayMatched).
	Matched bool
	// Owned, when set, reports whether a provider order id already belongs
	// to another order in the ledger. Lookup never answers with such an id:
	// it is another order's, not this one's.
	Owned func(ctx context.Context, providerOrderID string) (bool, error)
	// Rivals, when set, counts the other orders of the ledger with this
	// order's match key (Matcher) that may have been created and whose
	// provider order id is not recorded: an order of theirs in a listing
	// matches this one just as well. A Matcher's Lookup counts them after
	// it read the listing and never takes a listed order for this one
	// while there are any: a rival counts from before its create leaves
	// until its record holds its id (which Owned then reports) or its
	// outcome. since is the earliest creation time the lookup's own rule
	// lets it take an order from (its window's start; for a snapshot, when
	// it was read): a rival whose creates all ended before it, by more
	// than the listing lag, is not counted (zero: every rival counts).
	Rivals func(ctx context.Context, since time.Time) (int, error)
	// KnownAt is when the snapshot Known was read, on the ledger's clock
	// (zero: not known).
	KnownAt time.Time
	// Listed, when set (a ListingScoper), returns orders known to exist
	// in the order's listing scope (creates of this ledger answered with
	// them), created from from (on the ledger's clock) until a listing
	// lag ago: a listing whose window holds them and lacks any is not
	// whole (a filter, orders left out), so it shows no absence.
	Listed func(ctx context.Context, from time.Time) ([]ListedOrder, error)
}

// ListedOrder is an order Order.Listed says a listing must show.
type ListedOrder struct {
	// ID is the provider order id a create of the ledger was answered
	// with.
	ID string
	// Name is the name that create's params give it (Namer); "" when not
	// known (a provider without names, a note by an earlier version, a
	// name sealed with a data key this process lacks). A lookup that
	// finds the order listed under a name that cannot be this one learns
	// that the listing does not show the names sent (a name field that
	// shows another id, say): its names then tell no order apart, and a
	// listed order whose name is not ours is not shown not to be ours.
	Name string
}

// Namer is a Matcher whose listing shows each order under a name its
// params give (UniCloud's instance name). The name of an order a create
// was answered with is noted with its id (Order.Listed, ListedOrder.Name).
type Namer interface {
	ListedName(p Params) string
}

// ListingScoper is a provider whose Lookup matches a listing: the scope
// of that listing for an order with params p (beside the account, which
// the caller adds: "" for a listing of the whole account, the device for
// a listing per device). The ids its creates are answered with are noted
// under the scope, and a lookup checks that its listing shows those in
// its window (Order.Listed).
type ListingScoper interface {
	ListingScope(p Params) string
}

// IDScoper is a provider whose order ids are unique only within a scope
// of an order's params (Aliyun: the device, which every call on an order
// names beside its id), not across the account: two orders of the ledger
// may be answered with the same id for different scopes, and each is its
// own. The ledger's owner entries of such a provider's ids are kept by
// scope and id (Set.IDScope).
type IDScoper interface {
	IDScope(p Params) string
}

// Targeter is a provider that can say where its creates go: its endpoint
// and the account it signs for. A create sent to one target is not looked
// up at another (a worker configured for another endpoint or account would
// find nothing, and the order would be created twice). Target is
// stable for a configuration and holds no secret; the ledger stores a
// hash of it.
type Targeter interface {
	Target() string
}

// TargetOf is p's Target, or "" when p is not a Targeter.
func TargetOf(p Provider) string {
	if t, ok := p.(Targeter); ok {
		return t.Target()
	}
	return ""
}

// Matcher is a provider whose Lookup may identify an order by matching the
// provider's listing rather than by a number the order carries.
// MatchKey is what such a match goes by for an order's parsed params:
// two orders with the same key are told apart in a listing only by a
// provider order id already recorded (Order.Owned). "" when the order is
// never matched.
type Matcher interface {
	MatchKey(p Params) string
}

// Result is what a provider reports about an order.
type Result struct {
	Status Status
	// ProviderOrderID is the provider's own id for the order, kept as a
	// string (some are 64-bit numbers). Empty when the provider has none.
	ProviderOrderID string
	// HTTPStatus and Code are the last response's HTTP status and provider
	// code, recorded in the order's attempt history.
	HTTPStatus int
	Code       string
	// Message is a short human-readable note; it never holds secrets or
	// personal data.
	Message string
	// NextCheck is how long to wait before looking at a pending order again.
	// Zero lets the caller choose.
	NextCheck time.Duration
	// Payable is set on a pending result when the provider is a Payer
	// configured to pay: the caller pays the order as its next step,
	// unless it paid it less than a listing lag before.
	Payable bool
	// Unpaid is set on a pending result the provider says is not paid and
	// not being paid, whether or not this client would pay it (a Payable
	// result is Unpaid too). A pending order whose check does not say
	// Unpaid (being paid, by the worker or anyone, a status the client
	// does not know) may yet be paid: the pending window does not error it
	// on that check.
	Unpaid bool
	// Matched is set when Lookup identified the order by matching the
	// provider's listing (no client order number, no id of our create):
	// the best the provider allows, yet an order someone else made in
	// the meantime would match the same way. The caller records it and
	// passes it back as Order.Matched.
	Matched bool
	// Held is set on a pending result the provider would pay but will
	// not without a person (the order being Matched, or in a status the
	// provider does not pay), and on a paid result of a Matched order the
	// provider did not pay (someone else did: perhaps another's order;
	// held so whether or not the provider pays orders):
	// the caller keeps either pending for that person (its pending window
	// does not error it), checked as usual, until it is paid (pending) or
	// resolved.
	Held bool
}

// Provider submits orders to one provider's API.
//
// Implementations are safe for concurrent use. Every method honours ctx: it
// returns once ctx is done, with an error whose code tells whether the
// request may have reached the provider (Ambiguous) or surely did not
// (Unavailable).
//
// Errors are *Error values (see CodeOf); any other error is treated as
// Ambiguous by callers, the safe assumption for a create call.
//
// None of the create APIs is idempotent, so callers never submit an order
// again after an Ambiguous error before Lookup has reported NotFound.
type Provider interface {
	// Name is the provider's key in payloads, metrics and config
	// ("tencent", "aliyun", "unicloud").
	Name() string

	// Validate checks an order's params for this provider and returns an
	// InvalidArgument *Error naming the first bad field. It does no I/O.
	Validate(params json.RawMessage) error

	// Submit signs and sends a create-order request, at send time, with a
	// fresh timestamp and nonce. On success the order is paid or pending.
	Submit(ctx context.Context, o Order) (Result, error)

	// Lookup asks the provider about an order that may exist. It returns a
	// NotFound *Error when the provider surely does not hold the order, an
	// Ambiguous *Error when it cannot single the order out, and otherwise
	// the order's current status. It only reads: it never moves money.
	Lookup(ctx context.Context, o Order) (Result, error)
}

// UnlistedNotAbsent is implemented by providers whose lookups may not show
// an order whose create failed midway (the listing may leave out a status
// only such orders take, by default, as the documents leave open): when
// UnlistedNotAbsent is true, a lookup's NotFound after a create that may
// have been received does not prove the order absent, and the order is
// held for a person rather than created again.
type UnlistedNotAbsent interface {
	UnlistedNotAbsent() bool
}

// Preparer is implemented by providers whose lookups cannot find an order
// by the producer's order number. Before an order's first create, Prepare
// returns the provider order ids that already exist for the order's target
// (for example the device's orders), which the caller records and hands
// back in Order.Known, so that a later Lookup can tell the order it created
// from older ones. It only reads.
type Preparer interface {
	Prepare(ctx context.Context, o Order) ([]string, error)
}

// Payer is implemented by providers whose orders are created unpaid and
// paid with a separate call. Pay is the only method that moves money; the
// caller takes it as its own step, when a result says Payable, and records
// it as such.
type Payer interface {
	Pay(ctx context.Context, o Order) (Result, error)
}

// Sensitive is implemented by providers whose params carry personal data
// (names, phone numbers). The worker never stores or shows those fields in
// clear.
type Sensitive interface {
	SensitiveParams() []string
}

// ValidateFunc checks an order's params for one provider without I/O and
// without credentials.
type ValidateFunc func(params json.RawMessage) error

// Set is the providers the worker knows, by name. A name can be known but
// disabled (no credentials configured): its params can still be validated,
// and its orders fail with a clear error instead of vanishing.
type Set struct {
	enabled  map[string]Provider
	disabled map[string]disabled
	checkID  map[string]func(string) error  // Spec.CheckOrderID, by name
	overrun  map[string]time.Duration       // Spec.CreateOverrun, by name
	masked   map[string][]string            // Spec.Masked, by name
	idScope  map[string]func(Params) string // Spec.IDScope, by name
	scopeOf  map[string]string              // Spec.IDScopeField, by name
}

type disabled struct {
	reason     string
	validate   ValidateFunc
	parse      ParseFunc // set by DisableSpec
	sensitive  []string
	noOrderIDs bool // set by DisableSpec
}

// NewSet returns an empty Set.
func NewSet() *Set {
	return &Set{enabled: map[string]Provider{}, disabled: map[string]disabled{}, checkID: map[string]func(string) error{}, overrun: map[string]time.Duration{}, masked: map[string][]string{}, idScope: map[string]func(Params) string{}, scopeOf: map[string]string{}}
}

// Add enables p under p.Name().
func (s *Set) Add(p Provider) {
	delete(s.disabled, p.Name())
	s.enabled[p.Name()] = p
}

// Disable records that the named provider is known but not usable, and why;
// validate (which may be nil) still checks its orders' params, and
// sensitive names its personal-data params.
func (s *Set) Disable(name, reason string, validate ValidateFunc, sensitive ...string) {
	delete(s.enabled, name)
	s.disabled[name] = disabled{reason: reason, validate: validate, sensitive: sensitive}
}

// Get returns the named provider, or an *Error: FailedPrecondition when it is
// disabled, InvalidArgument when the name is unknown.
func (s *Set) Get(name string) (Provider, error) {
	if p, ok := s.enabled[name]; ok {
		return p, nil
	}
	if d, ok := s.disabled[name]; ok {
		return nil, &Error{Code: FailedPrecondition, Op: "provider " + name, Message: "disabled: " + d.reason}
	}
	return nil, s.unknown(name)
}

func (s *Set) unknown(name string) *Error {
	return &Error{Code: InvalidArgument, Op: "provider", Message: fmt.Sprintf("unknown provider %q (known: %s)", Truncate(MaskPhones(name), 32), strings.Join(s.Names(), ", "))}
}

// Validate checks params for the named provider, enabled or disabled. Its
// error is an InvalidArgument *Error.
func (s *Set) Validate(name string, params json.RawMessage) error {
	if p, ok := s.enabled[name]; ok {
		return p.Validate(params)
	}
	if d, ok := s.disabled[name]; ok {
		if d.validate == nil {
			return nil
		}
		return d.validate(params)
	}
	return s.unknown(name)
}

// Names lists every known provider, enabled or not, sorted.
func (s *Set) Names() []string {
	var names []string
	for n := range s.enabled {
		names = append(names, n)
	}
	for n := range s.disabled {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Enabled lists the enabled providers, sorted by name.
func (s *Set) Enabled() []Provider {
	var ps []Provider
	for _, p := range s.enabled {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b Provider) int { return strings.Compare(a.Name(), b.Name()) })
	return ps
}

// IDless is implemented by a provider whose orders have no id of their own
// (Spec.NoOrderIDs): NoOrderIDs returns true.
type IDless interface {
	NoOrderIDs() bool
}

// HasOrderIDs reports whether the named provider gives each order an id
// of its own (true for a provider it does not know).
func (s *Set) HasOrderIDs(name string) bool {
	if p, ok := s.enabled[name]; ok {
		il, ok := p.(IDless)
		return !ok || !il.NoOrderIDs()
	}
	if d, ok := s.disabled[name]; ok {
		return !d.noOrderIDs
	}
	return true
}

// Sensitive returns the named provider's personal-data params (nil when it
// has none or is disabled).
func (s *Set) Sensitive(name string) []string {
	if p, ok := s.enabled[name].(Sensitive); ok {
		return p.SensitiveParams()
	}
	return s.disabled[name].sensitive
}

// Masked returns the named provider's params to show masked wherever
// params are shown: its personal-data params (Sensitive) and the ones its
// Spec names Masked, which are not refused without a data key.
func (s *Set) Masked(name string) []string {
	sens, m := s.Sensitive(name), s.masked[name]
	if len(m) == 0 {
		return sens
	}
	return append(slices.Clip(sens), m...)
}

// MissingListed checks a listing against the orders o.Listed says it must
// show (created from from on): the first of them has does not find, with
// the orders checked; "" when none is missing, or o.Listed is unset.
func MissingListed(ctx context.Context, o Order, from time.Time, has func(id string) bool) (missing string, checked []ListedOrder, err error) {
	if o.Listed == nil || from.IsZero() {
		return "", nil, nil
	}
	listed, err := o.Listed(ctx, from)
	if err != nil {
		return "", nil, err
	}
	for _, l := range listed {
		if !has(l.ID) {
			return l.ID, listed, nil
		}
	}
	return "", listed, nil
}

// IncompleteListingMessage is the message of a lookup whose listing lacks
// an order MissingListed says it must show.
func IncompleteListingMessage(id string) string {
	return fmt.Sprintf("the listing lacks order %s, which a create of ours was answered with, inside the listing's window and a listing lag or more ago: it is not the whole listing (a filter, or orders left out, that the documents do not describe), so it shows neither that no order was created nor which one is ours", Truncate(id, 64))
}
