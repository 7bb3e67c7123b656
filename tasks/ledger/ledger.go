package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/devmode"
)

// State is where an order stands in the ledger.
type State string

const (
	StateQueued     State = "queued"
	StateSubmitting State = "submitting"
	StateUnknown    State = "unknown"
	StatePending    State = "pending"
	StatePaid       State = "paid"
	StateErrored    State = "errored"
)

// States lists every state, in lifecycle order.
var States = []State{StateQueued, StateSubmitting, StateUnknown, StatePending, StatePaid, StateErrored}

// Terminal reports whether no further attempt is ever made.
func (s State) Terminal() bool { return s == StatePaid || s == StateErrored }

// Valid reports whether s is one of States.
func (s State) Valid() bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}

// MaxHistory bounds the attempts kept per order: past it, the oldest after
// the first HistoryHead are dropped.
const MaxHistory = 50

// Ref names an order.
type Ref struct{ Provider, OrderNo string }

func (r Ref) String() string { return r.Provider + "/" + r.OrderNo }

// Attempt is one call to a provider, as recorded in the order's history.
type Attempt struct {
	N          int       `json:"n"`
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`
	Call       string    `json:"call"` // prepare, submit, lookup, poll or pay
	HTTPStatus int       `json:"http_status,omitempty"`
	Code       string    `json:"code,omitempty"`    // the provider's own code
	Result     string    `json:"result"`            // ok or an error code name
	Message    string    `json:"message,omitempty"` // masked
	// By is who took an operator's step (resolve, redrive): for operators
	// only; the API leaves it out, and no reason or event carries it.
	By string `json:"by,omitempty"`
}

// Record is an order's ledger entry.
type Record struct {
	Provider   string          `json:"provider"`
	OrderNo    string          `json:"order_no"`
	State      State           `json:"state"`
	Params     json.RawMessage `json:"params,omitempty"`
	ParamsHash string          `json:"params_hash"`
	// Attempts counts provider calls; Failures the ones that spent the
	// order's failure budget.
	Attempts int `json:"attempts"`
	Failures int `json:"failures"`
	// Inflight is the number of the create attempt that may be on its way
	// to the provider (0: none). It is written before the request leaves,
	// so an attempt cut off by a crash is looked up, never resubmitted.
	Inflight       int  `json:"inflight,omitempty"`
	InflightMarked bool `json:"-"` // this Begin wrote the mark
	PayMarked      bool `json:"-"` // this Begin marked a pay sent (BeginArgs.Pay)
	// PaySentBefore is, with PayMarked, the mark of an earlier pay that
	// this Begin's mark replaced (zero: none): what the mark goes back to when
	// this step's pay is not sent (Unmark, Transition.ClearPaySent).
	PaySentBefore time.Time `json:"-"`
	payBefore     time.Time // pay_before: the mark the last pay's mark replaced
	MarkedFrom    State     `json:"-"` // the state before the mark, when marked
	// LookFirstSince is, when Begin marked no first create because the
	// shard lost its data after the record's claim may have been a
	// resend (BeginArgs.LookFirst), the time since which records may
	// stand for orders created before the loss; zero otherwise.
	LookFirstSince time.Time `json:"-"`
	// LookFirstFound is, with LookFirstSince, when that loss was found
	// (Redis's clock) plus BeginArgs.LostCallTail: a create or pay lost
	// with the data, or under way when it was found, had ended by then.
	LookFirstFound time.Time `json:"-"`
	// LookedFirstAt is the loss of the ledger's data (its lost time) the
	// order was last looked up for before a create (Transition.WithLookedFirst);
	// zero when never.
	LookedFirstAt time.Time `json:"looked_first_at,omitzero"`
	// LookOnly: the order was last looked up first for a loss before a
	// create (Transition.WithLookedFirst) and no create of it has been
	// marked since: whatever create the provider may hold of it left in
	// what Redis lost, none under this record.
	LookOnly bool `json:"-"`
	// ReadAt is Redis's clock when Begin or Get read the record (zero
	// for a record read otherwise): the listing lag is judged on it, as
	// LastCreateAt is written on it, whatever the workers' clocks say.
	ReadAt time.Time `json:"-"`
	// ClockHold is a step forward of Redis's clock recorded within its
	// hold (see clockExpect) when Begin or Get read the record: times
	// stamped before the step look that much older than they are, so
	// every listing lag is judged that much longer (Begin has judged
	// leases and pays so). Zero: none.
	ClockHold time.Duration `json:"-"`
	// ClockStep is a step of the clock this Begin found (in ClockHold for
	// its own judgments; recorded for every process unless its reply took
	// as long: see clockExpect), zero when none.
	ClockStep time.Duration `json:"-"`
	// MarkLag is the longest listing lag a process judged the order with
	// when it marked a create or a pay of it (BeginArgs.ListingLag): every
	// lookup's not-found, pay again and operator's decision waits at least
	// that long after the last create or pay, whatever lag the process
	// judging it has, so that a worker or an operator with a shorter
	// setting does not cut short the wait of the one that sent the call.
	// Zero: none recorded. At most MaxListingLag.
	MarkLag time.Duration `json:"-"`
	// AbsentLag is how long after the last create the last believed
	// lookup's not-found was seen (Transition.WithAbsentLag: at least the
	// listing lag it was believed under), AbsentBelieved whether one is
	// recorded: a process with a longer lag does not create the order on
	// that belief (Begin marks nothing and sets AbsentRecheck: the order
	// is looked up again).
	AbsentLag      time.Duration `json:"-"`
	AbsentBelieved bool          `json:"-"`
	// AbsentRecheck is set when Begin did not mark the create the record
	// asked for because of AbsentLag: the order is looked up again under
	// this process's lag before a create.
	AbsentRecheck bool `json:"-"`
	// CreateTarget is where the last create marked went (BeginArgs.Target):
	// "" when not recorded.
	CreateTarget string `json:"-"`
	// KnownTarget is where the snapshot Known was read (BeginArgs.Target's
	// fingerprint), "" when not recorded.
	KnownTarget string `json:"-"`
	// RivalKey is the hash of the match key under which the order counts
	// among its rivals (MarkRival); "" when never marked.
	RivalKey string `json:"-"`
	// OwnedAnswer says a create of the order was answered with another
	// order's provider order id, or refused as a number used already
	// (Transition.WithOwnedAnswer): an order made for it may exist that no
	// lookup tells from another's, so it is never taken for one surely not
	// created.
	OwnedAnswer bool `json:"-"`
	// ThrottledCreateAt is the end of a create that was answered throttled
	// (Transition.WithThrottledCreate), zero when none was. It names the
	// create by its end: it stands for the order's latest create only
	// while it equals LastCreateAt (ThrottledLast).
	ThrottledCreateAt time.Time `json:"-"`
	// RefusedCreateAt is the end of a create refused with RefusedCreate
	// where that refusal is the order's own unless a lookup a listing lag
	// after it finds the order (Transition.WithRefusedCreate), zero when
	// none was. As ThrottledCreateAt, it stands for the latest create only
	// while it equals LastCreateAt (RefusedLast).
	RefusedCreateAt time.Time `json:"-"`
	// RefusedCreate is that create's refusal, "" when none.
	RefusedCreate string `json:"-"`
	// IDScope is the scope its provider's order ids are unique within
	// (providers.IDScoper; Transition.WithIDScope), "" when they are
	// unique across the account or it was never recorded.
	IDScope string `json:"-"`
	// MayExist says a create may have been received by the provider (and
	// not since confirmed absent): such an order is never re-driven.
	MayExist bool `json:"may_exist,omitempty"`
	// MayHaveExisted says some create of the order may have been received
	// at some time, whatever MayExist says now (the record has recorded
	// may_exist at all: only a call or a person that found out does).
	// Such an order's identification is never started anew (see
	// Transition.Afresh): a not-found believed after the listing lag is
	// not proof.
	MayHaveExisted bool `json:"-"`
	// Claim is the token of the claim that created the record (a task
	// queued with it carries it; see ClaimArgs.Token).
	Claim           string `json:"-"`
	ProviderOrderID string `json:"provider_order_id,omitempty"`
	// Matched says ProviderOrderID was found by matching the provider's
	// listing, not given for this order's own create (providers.Result
	// Matched): an order someone else made meanwhile could have matched.
	Matched bool `json:"matched,omitempty"`
	// NotOurs are provider order ids an operator found were another's
	// after the order held them by matching (Resolve absent): its lookups
	// never take them again, and it owns none of them.
	NotOurs []string `json:"not_ours,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	// Known are the provider order ids that existed for the order's target
	// before its first create (see providers.Preparer); nil: not taken.
	Known []string `json:"known,omitempty"`
	// KnownAt is when Known was recorded (zero: not known, as for a
	// record older than the field).
	KnownAt time.Time `json:"known_at,omitzero"`
	// KnownFrom is when the step that read Known began (zero: not
	// recorded): orders made before it, a listing lag before, are in it.
	KnownFrom time.Time `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// FirstAttemptAt is when the first create was marked in flight: the
	// earliest the provider may hold the order, so every lookup reaches
	// back to it. A record made again after Redis lost the order's (see
	// SetUnknownSince) holds the earliest a lost create could have left,
	// which may be before CreatedAt.
	FirstAttemptAt time.Time `json:"first_attempt_at,omitzero"`
	// LastCreateAt is when the latest create ended (its step settled; for
	// one its run never settled, when that run's lease ran out, as the
	// next Begin found it), or, until then, when it was marked in flight,
	// just before it left; on Redis's clock. A provider may make the order at any time while the
	// request is open, so the listing lag counts from its end.
	LastCreateAt time.Time `json:"last_create_at,omitzero"`
	PendingSince time.Time `json:"pending_since,omitzero"`
	NextCheckAt  time.Time `json:"next_check_at,omitzero"`
	OutcomeAt    time.Time `json:"outcome_at,omitzero"`
	// PaySentAt is when the order's last pay may last have reached the
	// provider, on Redis's clock: marked right before the pay left,
	// moved to when it ended by its settle (or, for a pay whose run never
	// settled it, to when that run's lease ran out); the listing lag
	// after a pay counts from it (see BeginArgs.Pay).
	PaySentAt time.Time `json:"pay_sent_at,omitzero"`
	// PayAcceptedAt is the PaySentAt of a pay the provider answered as
	// accepted: equal to PaySentAt, the last pay went through as far as
	// the provider said, and the order is never paid again automatically
	// (see BeginArgs.Pay).
	PayAcceptedAt time.Time `json:"pay_accepted_at,omitzero"`
	// Pays counts the pays the worker marked sent (less those refused
	// before the provider acted): past order.MaxPays, an order still
	// unpaid is not paid again automatically.
	Pays int `json:"pays,omitempty"`
	// RedrivenAt is when an operator last re-drove the order: its deadline
	// counts from then.
	RedrivenAt time.Time `json:"redriven_at,omitzero"`
	// HeldAt is when the order was last left for a person
	// (Transition.WithHeld); zero when never, or for a record held before
	// the field. It stays after the order moves on: it is read only while
	// the order is held.
	HeldAt time.Time `json:"held_at,omitzero"`
	// UnseenAt is when the last lookup that did not find the order began
	// (Transition.WithUnseen, Redis's clock), zero when none did.
	UnseenAt time.Time `json:"-"`
	History  []Attempt `json:"history,omitempty"`
}

// MayHaveBeenCreated reports whether the provider may hold the order: a
// create may have been received, or one is (or was, for a run that died)
// in flight.
func (r *Record) MayHaveBeenCreated() bool { return r.MayExist || r.Inflight > 0 }

// ThrottledLast reports whether the order's latest create was answered
// throttled (Transition.WithThrottledCreate): no create has ended since,
// and none is marked in flight but the one this run marked (InflightMarked:
// the create now under way, whose answer is not in the record yet).
func (r *Record) ThrottledLast() bool {
	return !r.ThrottledCreateAt.IsZero() && r.ThrottledCreateAt.Equal(r.LastCreateAt) && (r.Inflight == 0 || r.InflightMarked)
}

// RefusedLast reports whether the order's latest create was refused as
// Transition.WithRefusedCreate records (RefusedCreate): no create has
// ended since, and none is marked in flight but the one this run marked.
func (r *Record) RefusedLast() bool {
	return !r.RefusedCreateAt.IsZero() && r.RefusedCreateAt.Equal(r.LastCreateAt) && (r.Inflight == 0 || r.InflightMarked)
}

// Ref returns the record's order reference.
func (r *Record) Ref() Ref { return Ref{r.Provider, r.OrderNo} }

// Options configure a Ledger. nil means defaults.
type Options struct {
	// Durable makes claims, in-flight marks and outcomes wait for every
	// replica the master reports (Redis WAIT) before they count as done,
	// so an acknowledged write survives a failover. DurableAuto (the
	// default) waits whenever the master has replicas; DurableOff never
	// waits.
	Durable Durability
	// MinReplicas is the fewest replicas a durable write must reach
	// (DurableAuto only): while the master reports fewer, the write is
	// refused before it is sent (TooFewReplicasError), and every write
	// waits for at least this many. A master that lost its replicas, or
	// was cut off from them while one of them was promoted, so takes no
	// durable write no other server holds: until it notices the loss
	// (repl-timeout) its writes wait for the replica in vain and come back
	// ErrNotDurable; after, they are refused unsent. Default 0: the
	// replicas the master reports, none when it reports none; and, for
	// this and any other number, a master seen with more replicas (by
	// this process, or by any other on the ledger: they record the most
	// each master was seen with in Redis) is held to that many
	// (HadReplicas in the error) until they re-attach; under 0, once a
	// master of the ledger was seen with replicas, every master is held
	// to at least one (a replica promoted when its master died included:
	// see autoFloor and NoAutoFloor). Each replica the
	// master no longer reports may be promoted without the writes it
	// takes: one stopped or lagging that a failover then promotes, or
	// one promoted on the other side of a split brain while this master
	// keeps the others; either would lose those writes, creates marked
	// in flight among them. Masters are told apart by their
	// master_replid, which a promotion or a restart changes. Not on Redis
	// Cluster, where only MinReplicas counts. NoReplicaFloor: the
	// replicas the master reports, never held to more.
	MinReplicas int64
	// NoAutoFloor turns off the default's floor of one replica once a
	// master of the ledger was seen with replicas (see autoFloor): under
	// MinReplicas 0 a master is then held only to the most it was seen
	// with, and a replica promoted when its master died takes writes
	// before any replica attaches to it, which a second failure in that
	// window loses. For tests of that per-master hold; no setting of the
	// worker's turns it on.
	NoAutoFloor bool
	// WaitTimeout bounds one WAIT. Default 2s.
	WaitTimeout time.Duration
	// EventRetention is about how many outcome events the events stream
	// keeps (Redis trims it approximately). Default DefaultEventRetention.
	EventRetention int64
	// Shards is how many shards the ledger spreads its orders over (see
	// ShardTag); default 1. Every process on one ledger must use the same
	// count: the first write records it, and CheckShards refuses another.
	Shards int
	// Providers are the provider names, for CheckShards: with more than one
	// shard, it refuses to record the count over a ledger that holds
	// orders of these providers in the one-shard layout.
	Providers []string
	// RivalSecret keys the hash that names an order's rivals set (see
	// MarkRival): a match key may be personal data (an instance name
	// holding a phone number), and an unkeyed hash of it in Redis could
	// be brute-forced back. Workers sharing a data key derive the same
	// secret from it (tasks.Sealer.RivalSecret); nil hashes unkeyed, as
	// versions before it did (without a data key, params holding
	// personal data are refused, so no match key is personal).
	RivalSecret []byte
	// KeylessDrain is how long a worker that records its data key over a
	// ledger whose workers ran without one leaves them to stop (see
	// Ledger.KeylessDrain): the time a running worker takes to see the
	// key, plus its shutdown drain. Zero leaves none.
	KeylessDrain time.Duration
	// FormatDrain is how long a process that records a higher Format over
	// the ledger's leaves the processes of the earlier one to stop (see
	// Ledger.FormatDrain): as KeylessDrain. Zero: DefaultFormatDrain (a
	// producer or an operator's tool may be the first process of a later
	// version to write).
	FormatDrain time.Duration
	// Format, when set, is the format this Ledger writes in place of
	// Format (tests).
	Format int
	// OnClockStep, when set, is told of each step forward of a shard's
	// master's clock a Begin of this process found (see clockExpect): the
	// shard, the step, and the hold now in force (as large as the step or
	// larger). Called on the Begin's goroutine.
	OnClockStep func(shard int, step, hold time.Duration)
	// Now is the clock. Default time.Now, and then the times a claim
	// records (the record's creation, its index score, its event) are
	// Redis's (TIME), as are the ones Begin and Settle record: a
	// producer's own clock (a server set to local time, say) never moves
	// an order's deadline. A clock set here is used instead (tests).
	Now func() time.Time
}

// Durability says when writes wait for replicas.
type Durability int

const (
	// DurableAuto waits for the replicas the master reports, if any.
	DurableAuto Durability = iota
	// DurableOff never waits: a failover may lose the last writes.
	DurableOff
)

// ParseDurability reads "auto" or "off".
func ParseDurability(s string) (Durability, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return DurableAuto, nil
	case "off":
		return DurableOff, nil
	}
	return 0, fmt.Errorf("durability %q: want auto or off", s)
}

// ParseDurable reads the durable-writes settings: durability ("auto" or
// "off", ORDERWORKER_DURABLE_WRITES) and the fewest replicas a durable
// write must reach (ORDERWORKER_MIN_REPLICAS: "auto" or "" for
// Options.MinReplicas 0, "0" for NoReplicaFloor, else a whole number),
// which needs durability auto.
func ParseDurable(durability, minReplicas string) (Durability, int64, error) {
	d, err := ParseDurability(durability)
	if err != nil {
		return 0, 0, fmt.Errorf("ORDERWORKER_DURABLE_WRITES=%q: want auto or off", durability)
	}
	n := int64(0)
	switch s := strings.ToLower(strings.TrimSpace(minReplicas)); s {
	case "", "auto":
	default:
		if n, err = strconv.ParseInt(s, 10, 64); err != nil || n < 0 || n > 1000 {
			return 0, 0, fmt.Errorf("ORDERWORKER_MIN_REPLICAS=%q: want auto, or a whole number of replicas (0 to 1000)", minReplicas)
		}
		if n == 0 {
			n = NoReplicaFloor
		}
	}
	if n > 0 && d == DurableOff {
		return 0, 0, fmt.Errorf("ORDERWORKER_MIN_REPLICAS=%d needs ORDERWORKER_DURABLE_WRITES=auto: with off, writes wait for no replica", n)
	}
	return d, n, nil
}

// Ledger is the order records in Redis. It is safe for concurrent use.
type Ledger struct {
	rdb redis.UniversalClient
	// pid names this process's own count in each shard's epoch (see
	// epoch.go): another process's count cannot hide a roll-back of
	// this one's.
	pid  string
	opts Options
	now  func() time.Time
	// redisTime: no Options.Now was given, so claims stamp Redis's TIME
	// and NotAfterNow reads Redis's clock.
	redisTime bool
	clock     redisClock
	went      wentState // MarkWent, WentElsewhere

	replicasMu sync.Mutex
	replicasAt time.Time
	replicas   atomic.Int64
	// replid is the server's master_replid at the last read, replid2 its
	// master_replid2 (the replication id it had before it was promoted;
	// zeros after a restart); hadReplicas the master_replid of a master
	// read with replicas, and hadCount the most it was read with, here or
	// by another process (see Options.MinReplicas). All under replicasMu.
	replid      string
	replid2     string
	hadReplicas string
	hadCount    int64
	// named: the promoted master namePromoted last recorded. Under
	// replicasMu.
	named string
	// confirmed: the master and count (replid/count) replicatedKey was
	// last found, read or written, to hold this process's hold at:
	// found lower since, it was lowered by someone (readRecorded).
	// Under replicasMu.
	confirmed string
	// keySeen: replicatedKey was read with fields, or written, since
	// the process started or last found it gone. Under replicasMu.
	keySeen bool
	// anyHold: replicatedKey, as last read, records a master of this
	// ledger seen with replicas (see verifyRan). Under replicasMu.
	anyHold bool
	// replicated: replicatedKey, as last read, records a master of this
	// ledger seen with replicas; unlike anyHold, read afresh each time
	// (an operator who deleted the key frees the floor even when another
	// process wrote it again before this one read it gone; see
	// autoFloor). Under replicasMu.
	replicated bool
	// recorded is the replid and count (replid/count) last written to
	// replicatedKey; recording, a write of it under way; recordReadAt,
	// when it was last read for the master replid (see readRecorded).
	// Under replicasMu.
	recorded     string
	recordReadAt time.Time
	recording    bool
	isReplica    atomic.Bool // the server said role:slave at the last read
	replicasWarn atomic.Bool
	claimLoaded  atomic.Bool // the claim script was loaded (ClaimMany)
	// queuesPublished holds the asynq queues a claim's task was queued on
	// (and the queue added to asynq's set of queues).
	queuesPublished sync.Map
	noTasks         atomic.Bool  // Redis refused a claim with its task (CROSSSLOT)
	layoutAt        atomic.Int64 // when CheckShards last succeeded (unix ns; 0: never): see layoutRecheck
	shardsOK        atomic.Bool  // VerifyShards succeeded
	batch           *batcher
	shards          []shard
	epochs          epochs
}

// New returns a Ledger on rdb.
func New(rdb redis.UniversalClient, opts *Options) *Ledger {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = 2 * time.Second
	}
	if o.FormatDrain <= 0 {
		o.FormatDrain = DefaultFormatDrain
	}
	if o.EventRetention <= 0 {
		o.EventRetention = DefaultEventRetention
	}
	redisTime := o.Now == nil
	if redisTime {
		o.Now = time.Now
	}
	o.Shards = min(max(o.Shards, 1), MaxShards)
	o.MinReplicas = max(o.MinReplicas, NoReplicaFloor)
	b := &batcher{rdb: rdb, wait: o.WaitTimeout.Milliseconds(), minReplicas: max(o.MinReplicas, 0)}
	b.cluster, _ = rdb.(*redis.ClusterClient)
	l := &Ledger{rdb: rdb, pid: uuid.NewString(), opts: o, now: o.Now, redisTime: redisTime, batch: b, shards: newShards(o.Shards)}
	l.epochs.watching = make([]sync.Mutex, len(l.shards))
	b.onReplicas = l.setReplicas
	b.checkRan = l.checkRan
	b.verifyRan = l.verifyRan
	return l
}

// DefaultFormatDrain is Options.FormatDrain's default: a worker's check
// every 10 s, its default shutdown drain of 25 s, and a margin.
const DefaultFormatDrain = 45 * time.Second

// metaPrefix starts the ledger-wide keys (shard count, data key id,
// locks); with one shard, every ledger key (see shard).
const metaPrefix = "orderworker:{ledger}:"

func lockKey(name string) string { return metaPrefix + "lock:" + name }

// DefaultEventRetention is how many outcome events are kept by default.
const DefaultEventRetention = 100_000

// ErrNotFound is returned when an order has no record.
var ErrNotFound = errors.New("no such order")

// ErrLeaseLost is Settle's error when the order's lease is no longer the
// caller's (it expired and another run took the order).
var ErrLeaseLost = errors.New("order lease lost")

// OwnedError is Settle's error when the provider order id it was to record
// belongs to another order: the transition was not applied.
type OwnedError struct {
	ProviderOrderID string
	Owner           string // the order number that owns it
}

func (e *OwnedError) Error() string {
	return "provider order " + e.ProviderOrderID + " belongs to order " + e.Owner
}

// decodeReply builds a Record from an HGETALL reply passed through a
// script (a flat field, value list), without an intermediate map.
func decodeReply(v any) *Record {
	list, _ := v.([]any)
	r := &Record{}
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		s, _ := list[i+1].(string)
		r.set(k, s)
	}
	return r
}

// decode builds a Record from its hash fields.
func decode(h map[string]string) *Record {
	r := &Record{}
	for k, v := range h {
		r.set(k, v)
	}
	return r
}

// set reads one hash field into r.
func (r *Record) set(k, v string) {
	switch k {
	case "provider":
		r.Provider = v
	case "order_no":
		r.OrderNo = v
	case "state":
		r.State = State(v)
	case "params":
		if v != "" {
			r.Params = json.RawMessage(v)
		}
	case "params_hash":
		r.ParamsHash = v
	case "attempts":
		r.Attempts = atoi(v)
	case "failures":
		r.Failures = atoi(v)
	case "inflight":
		r.Inflight = atoi(v)
	case "may_exist":
		r.MayExist = v == "1"
		r.MayHaveExisted = true
	case "provider_order_id":
		r.ProviderOrderID = v
	case "matched":
		r.Matched = v == "1"
	case "claim":
		r.Claim = v
	case "reason":
		r.Reason = v
	case "created":
		r.CreatedAt = msTime(v)
	case "clock_hold": // not a field: Begin's and Get's reading of clockKey
		r.ClockHold = msDuration(v)
	case "mark_lag":
		r.MarkLag = min(msDuration(v), MaxListingLag)
	case "absent_lag":
		if v != "" {
			r.AbsentLag, r.AbsentBelieved = min(msDuration(v), MaxListingLag), true
		}
	case "clock_step": // not a field: a step Begin found
		r.ClockStep = msDuration(v)
	case "redriven":
		r.RedrivenAt = msTime(v)
	case "held_at":
		r.HeldAt = msTime(v)
	case "unseen_at":
		r.UnseenAt = msTime(v)
	case "updated":
		r.UpdatedAt = msTime(v)
	case "create_target":
		r.CreateTarget = v
	case "rival_key":
		r.RivalKey = v
	case "id_scope":
		r.IDScope = v
	case "owned_answer":
		r.OwnedAnswer = v == "1"
	case "throttled_create":
		r.ThrottledCreateAt = msTime(v)
	case "refused_create":
		// "<end of the create, ms> <refusal>"
		at, refusal, _ := strings.Cut(v, " ")
		r.RefusedCreateAt, r.RefusedCreate = msTime(at), refusal
		if r.RefusedCreateAt.IsZero() {
			r.RefusedCreate = ""
		}
	case "known_target":
		r.KnownTarget = v
	case "first_attempt":
		r.FirstAttemptAt = msTime(v)
	case "last_create":
		r.LastCreateAt = msTime(v)
	case "pending_since":
		r.PendingSince = msTime(v)
	case "next_check":
		r.NextCheckAt = msTime(v)
	case "outcome_at":
		r.OutcomeAt = msTime(v)
	case "pay_sent":
		r.PaySentAt = msTime(v)
	case "pay_accepted":
		r.PayAcceptedAt = msTime(v)
	case "pay_before":
		r.payBefore = msTime(v)
	case "pays":
		r.Pays, _ = strconv.Atoi(v)
	case "known_at":
		r.KnownAt = msTime(v)
	case "known_from":
		r.KnownFrom = msTime(v)
	case "known":
		if v != "" && (json.Unmarshal([]byte(v), &r.Known) != nil || r.Known == nil) {
			r.Known = []string{}
		}
	case "looked_first":
		r.LookedFirstAt = msTime(v)
	case "look_only":
		r.LookOnly = v == "1"
	case "not_ours":
		_ = json.Unmarshal([]byte(v), &r.NotOurs)
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func ms(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

func msTime(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// msDuration reads a duration in ms; zero when s is none.
func msDuration(s string) time.Duration {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Millisecond
}

// run executes script, and when durable writes are on and the master has
// replicas, a WAIT for them on the same connection in the same round trip.
// It returns the script's reply and whether the write is durable (always
// true when there is nothing to wait for).
func (l *Ledger) run(ctx context.Context, s *redis.Script, durable bool, keys []string, args ...any) (any, bool, error) {
	want, err := l.want(ctx, durable)
	if err != nil {
		return nil, false, err
	}
	verify := durable && l.verifyRan()
	if want == 0 && !verify {
		v, err := s.Run(ctx, l.rdb, keys, args...).Result()
		return v, true, err
	}
	c := &call{ctx: ctx, script: s, keys: keys, args: args, want: want, verify: verify, durable: durable}
	l.batch.send(ctx, []*call{c}, true)
	return c.val, c.ack, c.err
}

// verifyRan reports whether durable writes are checked against the server
// that ran them (checkRan): with durable writes on, on one master (not
// Redis Cluster), once a master of the ledger was seen with replicas (by
// this process, or as the ledger's record says) or replicas are
// required. The replica count a write waits for is read apart from the
// write, on any of the client's connections: after a failover that left
// the old master reachable (a managed endpoint that moved, while
// connections made before still reach the old one), it may be the new
// master's while the write runs on the old one, held to more.
func (l *Ledger) verifyRan() bool {
	if l.opts.Durable != DurableAuto || l.opts.MinReplicas < 0 || l.batch.cluster != nil {
		return false
	}
	if l.opts.MinReplicas > 0 {
		return true
	}
	l.replicasMu.Lock()
	defer l.replicasMu.Unlock()
	return l.hadReplicas != "" && l.hadCount > 0 || l.anyHold
}

// ErrReplicaNow is a durable write's error, with nothing sent, when the
// Redis server the client reads is a replica now (a failover demoted it):
// an outage until the client reaches the new master.
var ErrReplicaNow = errors.New("the Redis server is a replica now (failover in progress?): the write was not sent")

// errHeldMaster is a durable write's acknowledgement error when the server
// that ran it is a master held to more replicas than acknowledged it.
type errHeldMaster struct {
	replid      string
	acked, want int64
}

func (e *errHeldMaster) Error() string {
	return fmt.Sprintf("the write ran on a Redis master (replication id %.8s…) held to %d replicas, and %d acknowledged it: a master cut off after a failover while the client's other connections reach the promoted one?", e.replid, e.want, e.acked)
}

// checkRan judges a durable write by what the connection that ran it read
// after its WAIT (acked replicas acknowledged it): the server's INFO
// replication, and the masters recorded there as seen with replicas
// (replicatedKey's fields). An error when that server is a replica now, or
// a master held to more replicas than acknowledged: Options.MinReplicas,
// or the most it was seen with, as that server records it or as this
// process saw it.
func (l *Ledger) checkRan(infoCmd *redis.StringCmd, recordedCmd *redis.MapStringStringCmd, acked int64) error {
	if !l.verifyRan() {
		return nil
	}
	info, err := infoCmd.Result()
	if err == nil {
		err = replicationKnown(info)
	}
	if err != nil {
		return err
	}
	recorded, err := recordedCmd.Result()
	if err != nil {
		return err
	}
	if strings.Contains(info, "role:slave") {
		return errors.New("the write ran on a Redis server that is a replica now (failover in progress?)")
	}
	replid := infoField(info, "master_replid")
	least := max(l.opts.MinReplicas, 0, recordedCount(recorded[replid]), restartedFrom(recorded, replid, infoField(info, "master_replid2")))
	l.replicasMu.Lock()
	least = max(least, l.autoFloor())
	if l.hadReplicas != "" && l.hadReplicas == replid && l.hadCount > least {
		least = l.hadCount
	}
	l.replicasMu.Unlock()
	if acked < least {
		return &errHeldMaster{replid: replid, acked: acked, want: least}
	}
	return nil
}

// RunDurable runs s on l's Redis client as a durable write (see
// Options.Durable): it returns the script's reply, and acked false when
// the replicas did not acknowledge it in time (it ran on the master, and a
// failover now could undo it), or a TooFewReplicasError when the master
// has fewer replicas than the floor (then it did not run). The replication
// stream is ordered, so an acknowledged write also covers every write the
// master applied before it, other clients' included: a process that reads
// what others wrote (the outcome events, say) and writes after it knows
// by an acknowledged write that what it read is on the replicas too.
func (l *Ledger) RunDurable(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, bool, error) {
	return l.run(ctx, s, true, keys, args...)
}

// runShared is run for the scripts of the order path (Begin, Settle):
// those that goroutines run at the same moment share a round trip (see
// batcher). Many orders in flight at once make those batches; a few
// producers each waiting on a claim would only wait longer, so claims use
// run.
func (l *Ledger) runShared(ctx context.Context, s *redis.Script, durable bool, keys []string, args ...any) (any, bool, error) {
	want, err := l.want(ctx, durable)
	if err != nil {
		return nil, false, err
	}
	c := &call{ctx: ctx, script: s, keys: keys, args: args, want: want, verify: durable && l.verifyRan(), durable: durable}
	l.batch.do(c)
	return c.val, c.ack, c.err
}

// want is how many replicas a write waits for; a TooFewReplicasError
// when the master reports fewer than Options.MinReplicas (on Redis
// Cluster the batcher checks each master).
func (l *Ledger) want(ctx context.Context, durable bool) (int64, error) {
	if !durable || l.opts.Durable != DurableAuto {
		return 0, nil
	}
	n, err := l.wantReplicas(ctx, false)
	least, had := l.floor()
	if err == nil && n >= 0 && n < least {
		// About to refuse: not on a count up to 5s old.
		n, err = l.wantReplicas(ctx, true)
		least, had = l.floor()
	}
	if err != nil || n == wantNodes {
		return n, err
	}
	if n < least {
		if l.isReplica.Load() {
			// Not the master now (a failover demoted it): an outage
			// until the client finds the new one, not a short master.
			return 0, ErrReplicaNow
		}
		return 0, &TooFewReplicasError{Have: n, Want: least, HadReplicas: had, AutoFloor: !had && least > max(l.opts.MinReplicas, 0)}
	}
	return n, nil
}

// CheckWritable reports whether a durable write would be sent now: Redis
// answers, and with durable writes on, the master has the replicas they
// must reach (a *TooFewReplicasError when it has fewer). Nothing is
// written.
//
// On Redis Cluster it asks every master, as the writes of the shards it
// serves would go there: each answers, and has the replicas durable writes
// need (as a write's batch checks its master).
func (l *Ledger) CheckWritable(ctx context.Context) error {
	if b := l.batch; b.cluster != nil {
		return b.cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			if err := checkMemory(ctx, node, node.Options().Addr); err != nil {
				return err
			}
			if l.opts.Durable != DurableAuto || b.minReplicas <= 0 {
				return nil
			}
			n, master, err := b.replicasOf(ctx, node, false)
			if err == nil && n < b.minReplicas {
				n, master, err = b.replicasOf(ctx, node, true) // not on a count up to 5s old
			}
			switch {
			case err != nil:
				return err
			case !master:
				return fmt.Errorf("%s is no master now (failover in progress?)", node.Options().Addr)
			case n < b.minReplicas:
				return &TooFewReplicasError{Master: node.Options().Addr, Have: n, Want: b.minReplicas}
			}
			return nil
		})
	}
	if err := checkMemory(ctx, l.rdb, ""); err != nil {
		return err
	}
	_, err := l.want(ctx, true)
	return err
}

// OutOfMemoryError is CheckWritable's error when Redis would refuse writes
// for its memory: it holds more than its maxmemory and, with the policy
// noeviction (what the ledger needs: every other policy may evict a record
// or a task), evicts nothing to make room, so every write is answered
// "OOM command not allowed".
type OutOfMemoryError struct {
	Master    string // the master's address, on Redis Cluster
	Used, Max int64  // bytes: what counts against maxmemory, and maxmemory
}

func (e *OutOfMemoryError) Error() string {
	who := "the Redis master"
	if e.Master != "" {
		who += " " + e.Master
	}
	return fmt.Sprintf("%s holds %d bytes, over its maxmemory of %d with the policy noeviction: it refuses every write (OOM) until memory is freed or maxmemory raised", who, e.Used, e.Max)
}

// checkMemory asks c (INFO memory) whether it answers and has room for a
// write: an *OutOfMemoryError when it holds more than its maxmemory under
// noeviction, counted as Redis counts it (used_memory without
// mem_not_counted_for_evict, the replication and AOF buffers). A server
// that refuses INFO (a user denied it, a proxy without it) is asked PING
// instead and taken to have room: a write will tell.
func checkMemory(ctx context.Context, c redis.Cmdable, addr string) error {
	info, err := c.Info(ctx, "memory").Result()
	if reply := redis.Error(nil); errors.As(err, &reply) {
		return c.Ping(ctx).Err()
	}
	if err != nil {
		return err
	}
	field := func(name string) int64 {
		n, _ := strconv.ParseInt(infoField(info, name), 10, 64)
		return n
	}
	maxMem, used := field("maxmemory"), field("used_memory")-field("mem_not_counted_for_evict")
	if maxMem > 0 && used > maxMem && infoField(info, "maxmemory_policy") == "noeviction" {
		return &OutOfMemoryError{Master: addr, Used: used, Max: maxMem}
	}
	return nil
}

// floor is the fewest replicas a durable write must reach on the master
// last read: Options.MinReplicas, or the most the master was read with
// before when that is more (had).
func (l *Ledger) floor() (least int64, had bool) {
	l.replicasMu.Lock()
	defer l.replicasMu.Unlock()
	least = l.autoFloor()
	// (Seen with as many as the default's floor, the master is held for
	// having had them: the error says so.)
	if l.opts.MinReplicas >= 0 && l.hadReplicas != "" && l.hadReplicas == l.replid &&
		(l.hadCount > least || l.opts.MinReplicas == 0 && l.hadCount > 0 && l.hadCount == least) {
		return l.hadCount, true
	}
	return least, false
}

// NoReplicaFloor is Options.MinReplicas for writes that wait for the
// replicas the master reports, none when it reports none, whether or not
// it was seen with replicas (ORDERWORKER_MIN_REPLICAS=0).
const NoReplicaFloor = -1

// TooFewReplicasError is a durable write's error, with nothing written,
// when the master reports fewer replicas than Options.MinReplicas: a
// failover could lose what such a master takes.
type TooFewReplicasError struct {
	Master     string // the master's address, on Redis Cluster
	Have, Want int64
	// HadReplicas: the master was read with replicas before, and Want
	// comes from that (see Options.MinReplicas).
	HadReplicas bool
	// AutoFloor: Want is the default's floor of one replica, once a
	// master of the ledger was seen with replicas (see autoFloor).
	AutoFloor bool
}

func (e *TooFewReplicasError) Error() string {
	who := "the Redis master"
	if e.Master != "" {
		who += " " + e.Master
	}
	if e.HadReplicas {
		return fmt.Sprintf("%s reports %d connected replicas, having reported %d before (a replica stopped, lagging or cut off could be promoted without the writes it missed; or this master was cut off while one was promoted): the write was not sent; writes resume once the replicas re-attach (after removing a replica for good, or a failover that lost one for good, delete the key %s: running workers and producers drop the hold within seconds; or set ORDERWORKER_MIN_REPLICAS=0)", who, e.Have, e.Want, replicatedKey)
	}
	if e.AutoFloor {
		return fmt.Sprintf("%s reports %d connected replicas, and a master of this ledger was seen with replicas: each is held to at least %d (a replica promoted when its master died waits for one of its own: a second failure before one attached would lose its writes): the write was not sent; writes resume once a replica attaches (for a deployment without replicas from now on, delete the key %s; or set ORDERWORKER_MIN_REPLICAS=0)", who, e.Have, e.Want, replicatedKey)
	}
	return fmt.Sprintf("%s reports %d connected replicas, fewer than the %d required (ORDERWORKER_MIN_REPLICAS): the write was not sent", who, e.Have, e.Want)
}

// wantReplicas is how many replicas the master reports, read at most every
// few seconds; on Redis Cluster, wantNodes: each write waits for the
// replicas of the master that took it. When the count cannot be read and
// none was read before, it is an error: a write is not taken for durable
// on a guess (a user without the INFO permission sees why).
func (l *Ledger) wantReplicas(ctx context.Context, fresh bool) (int64, error) {
	if l.batch.cluster != nil {
		return wantNodes, nil
	}
	l.replicasMu.Lock()
	defer l.replicasMu.Unlock()
	if !fresh && time.Since(l.replicasAt) < 5*time.Second {
		if err := l.readRecorded(ctx); err != nil {
			return 0, err
		}
		return l.replicas.Load(), nil
	}
	info, err := readReplication(ctx, l.rdb)
	if err != nil {
		if !l.replicasAt.IsZero() {
			return l.replicas.Load(), nil // the last count read
		}
		return 0, err
	}
	l.replicasAt = time.Now()
	l.isReplica.Store(strings.Contains(info, "role:slave"))
	n := connectedReplicas(info)
	l.replicas.Store(n)
	l.noteMaster(infoField(info, "master_replid"), infoField(info, "master_replid2"))
	// A count INFO lists is not recorded: a replica whose link is dead
	// but not yet dropped (repl-timeout) is listed beside the one that
	// replaced it, and a hold raised to it would never lift. Only what a
	// WAIT acknowledged is (setReplicas).
	l.recordReadAt = time.Time{}
	if err := l.readRecorded(ctx); err != nil {
		l.replicasAt = time.Time{}
		return 0, err
	}
	return n, nil
}

// readRecorded reads how many replicas the master last read (replid) was
// seen with by any process, at most every few seconds whatever the load
// (a busy process's own counts come from its writes' pipelines, which
// never read it): the most another process saw holds this one too. Unread,
// nothing counts as durable. replicasMu is held.
func (l *Ledger) readRecorded(ctx context.Context) error {
	if l.opts.MinReplicas < 0 || l.replid == "" || l.isReplica.Load() || time.Since(l.recordReadAt) < 5*time.Second {
		return nil
	}
	all, err := l.rdb.HGetAll(ctx, replicatedKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read how many replicas the master was seen with (%s): %w", replicatedKey, err)
	}
	l.recordReadAt = time.Now()
	if len(all) > 0 {
		l.keySeen = true
	} else if l.keySeen {
		// The record was there and is gone: an operator deleted it
		// (a replica removed for good, a failover that lost one), or
		// Redis lost its data. This process's hold goes with it, as
		// every other's does, without a restart; what the master is
		// seen with from now on is recorded afresh. Writes are still
		// judged by the server that ran them (verifyRan: anyHold kept,
		// and set when this process held one), so that during a split
		// one that reached the cut-off old master is not taken for
		// durable for want of a hold.
		l.keySeen = false
		l.replicated = false
		l.anyHold = l.anyHold || l.hadReplicas != "" && l.hadCount > 0
		l.hadReplicas, l.hadCount, l.recorded, l.confirmed = "", 0, "", ""
	}
	held := l.replid + "/" + strconv.FormatInt(l.hadCount, 10)
	if l.hadReplicas == l.replid && l.hadCount > 0 && l.confirmed == held && recordedCount(all[l.replid]) < l.hadCount {
		// The record held this process's count for the master and now
		// holds less: someone lowered it (an operator deleted the key,
		// and another process recorded the master afresh before this
		// one read it gone), as a record is never lowered otherwise.
		// This process's hold goes with it.
		l.hadReplicas, l.hadCount, l.recorded, l.confirmed = "", 0, "", ""
	}
	if c := recordedCount(all[l.replid]); c > 0 {
		l.saw(l.replid, c)
		if c >= l.hadCount {
			l.confirmed = l.replid + "/" + strconv.FormatInt(l.hadCount, 10)
		}
	} else if all[l.replid] == "" {
		c := restartedFrom(all, l.replid, l.replid2)
		if last := all[lastMasterField]; c > 0 || last != "" && last != l.replid {
			// Recorded for every process: held to what it was
			// before (restarted), or named the last master even
			// with no replica (a replica promoted, say), so that
			// when it is restarted or its backlog freed, it is held
			// to its own count, not to that of the master it
			// replaced.
			l.sawReplicas(l.replid, c)
		}
	}
	// Any master of this ledger seen with replicas: writes are judged by
	// the server that ran them (verifyRan), also in a process that never
	// saw that master itself (started during a split, its count read on
	// the new master, which holds the old one's record).
	l.replicated = false
	for _, v := range all {
		if recordedCount(v) > 0 {
			l.anyHold = true
			l.replicated = true
		}
	}
	return nil
}

// autoFloor is the fewest replicas a durable write must reach whatever
// its master was seen with: Options.MinReplicas, and under the default
// (0, auto) one once a master of this ledger was seen with replicas, by
// this process or any other (the record says so, on a promoted replica
// too). A replica promoted when its master died is a master never seen
// with replicas: held to none, it took writes no other server held until
// a replica attached to it, and a second failure in that window (the old
// master restarted beside it and promoted in turn, after 10 s or more of
// Sentinel's) lost them (a black-box run: 238 and 262 orders answered
// enqueued, in two runs of two). So it waits for a replica, as with
// ORDERWORKER_MIN_REPLICAS=1: the price is availability, not orders.
// replicasMu is held.
func (l *Ledger) autoFloor() int64 {
	least := max(l.opts.MinReplicas, 0)
	if l.opts.MinReplicas == 0 && !l.opts.NoAutoFloor && l.batch.cluster == nil && (l.replicated || l.hadReplicas != "" && l.hadReplicas == l.replid && l.hadCount > 0) {
		least = 1
	}
	return least
}

// restartedFrom is the most replicas a master whose replication id is
// replid (replid2 its master_replid2) inherits from the master before it,
// as recorded (replicatedKey as read: all): a master not recorded yet that
// was never promoted (replid2 zeros) holding data recorded by another
// master (lastMasterField, the last recorded). That is a master
// restarted: a restart gives Redis a new replication id, and held afresh,
// a master restarted while a replica was down took writes that replica
// lacked, and a failover that then promoted it (by replica-priority, say)
// lost them (a black-box run: 66 to 80 orders answered enqueued lost in
// each of three runs). A replica promoted (its replid2 the id it shared
// with its master) starts afresh, as before: the master it replaces is
// down, and would hold it to a replica it cannot have. 0 for none.
func restartedFrom(all map[string]string, replid, replid2 string) int64 {
	last := all[lastMasterField]
	if replid == "" || !zeroID(replid2) || last == "" || last == replid || all[replid] != "" {
		return 0
	}
	return recordedCount(all[last])
}

// zeroID reports whether a replication id names none (a master's
// master_replid2 before any promotion, or after a restart). An id not
// given at all (a server or proxy that leaves the field out) is not known
// to be none: such a master is judged as before, afresh under a new id.
func zeroID(id string) bool { return id != "" && strings.Trim(id, "0") == "" }

// lastMasterField is replicatedKey's field naming the master (its
// master_replid) last recorded: the master whose data this is, for a
// master restarted with it (restartedFrom).
const lastMasterField = "last"

// recordedCount is the replica count a replicatedKey field holds: a
// count, or a time in ms as an earlier version wrote it (seen with
// replicas: 1); 0 for none.
func recordedCount(v string) int64 {
	c, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err != nil || c <= 0:
		return 0
	case c > 1_000_000:
		return 1
	}
	return c
}

// noteMaster sets the master last read: replid, replid2 its
// master_replid and master_replid2. A new id is held to what the record
// holds for it (readRecorded, read again before the next durable write),
// which a restarted master inherits from the master last recorded
// (restartedFrom, recordReplicasScript), not to what this process saw of
// the master before: the process may have missed a promotion (no write,
// and the promoted master without replicas), and carried the lost
// master's hold to the promoted one when its id changed again (a
// black-box run: writes refused until an operator acted). replicasMu is
// held.
func (l *Ledger) noteMaster(replid, replid2 string) {
	if replid != l.replid {
		l.recordReadAt = time.Time{}
	}
	l.replid, l.replid2 = replid, replid2
}

// saw notes that the master replid was seen with n replicas. replicasMu
// is held.
func (l *Ledger) saw(replid string, n int64) {
	if l.hadReplicas != replid {
		l.hadReplicas, l.hadCount = replid, 0
	}
	l.hadCount = max(l.hadCount, n)
}

// recordReplicasScript raises the count of master ARGV[1] in
// replicatedKey to ARGV[2], never lowers it (an earlier version's time in
// ms reads as 1), and names it the master last recorded
// (lastMasterField). A master not recorded yet whose master_replid2
// (ARGV[3]) is zeros, never promoted, inherits the count of the master
// last recorded, as restartedFrom does: whichever process records a
// restarted master first, and with whatever count, it is held to what it
// was before (a process recording it from its own sight alone, one
// replica in sync, freed the hold for all). Only the server's own
// master_replid, as its INFO gives it inside the script, is named the
// last master or inherits: the process read ARGV[1] on another
// connection, which during a split may reach another server (the old
// master, cut off), and a last master naming that one would have this
// server, restarted, inherit the old master's count rather than its own.
// Another id's count is still raised (it is what that master was seen
// with). Where INFO is refused in scripts, ARGV[1] is taken for the
// server's. It returns the count recorded.
var recordReplicasScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local own = true
local ok, info = pcall(redis.call, 'INFO', 'replication')
if ok and type(info) == 'string' then
  local id = string.match(info, 'master_replid:(%x+)')
  if id and id ~= ARGV[1] then own = false end
end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local function count(s)
  local c = tonumber(s or '0') or 0
  if c > 1000000 then c = 1 end
  if c < 0 then c = 0 end
  return c
end
local v = count(cur)
local want = tonumber(ARGV[2])
local last = redis.call('HGET', KEYS[1], 'last')
if own and not cur and string.match(ARGV[3] or '', '^0+$') and last and last ~= ARGV[1] then
  want = math.max(want, count(redis.call('HGET', KEYS[1], last)))
end
if not cur or v < want then
  v = math.max(v, want)
  redis.call('HSET', KEYS[1], ARGV[1], v)
end
if own and last ~= ARGV[1] then redis.call('HSET', KEYS[1], 'last', ARGV[1]) end
return v
`)

// replicatedKey records the masters (by master_replid) seen with
// replicas, and the most each was seen with, for every process on the
// ledger (see Options.MinReplicas), and which was recorded last
// (lastMasterField). A master restarted is held to what it was before
// (restartedFrom); a replica promoted, or a master once this key is
// deleted (its replicas removed for good), starts afresh.
const replicatedKey = metaPrefix + "replicated"

// sawReplicas notes that the master replid had n replicas, recording the
// most it was seen with in replicatedKey (in the background) until a
// write of it succeeds, so that a write refused during a failover is made
// again at a later sight. replicasMu is held.
func (l *Ledger) sawReplicas(replid string, n int64) {
	l.saw(replid, n)
	count := l.hadCount
	rec := replid + "/" + strconv.FormatInt(count, 10)
	if l.recorded == rec || l.recording {
		return
	}
	replid2 := ""
	if replid == l.replid {
		replid2 = l.replid2
	}
	l.recording = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := recordReplicasScript.Run(ctx, l.rdb, []string{replicatedKey}, replid, count, replid2).Int64()
		l.replicasMu.Lock()
		defer l.replicasMu.Unlock()
		l.recording = false
		if err == nil {
			l.recorded, l.keySeen = rec, true
			if l.hadReplicas == replid && l.hadCount <= max(count, got) {
				l.confirmed = replid + "/" + strconv.FormatInt(l.hadCount, 10)
			}
			if got > count && l.hadReplicas == replid {
				// Inherited (a master restarted): held to it here
				// too at once, not at the next read of the record.
				l.hadCount = max(l.hadCount, got)
			}
			if l.hadReplicas == replid && l.hadCount > count {
				// Seen with more while this was recorded (that sight
				// was not recorded: this one was under way).
				l.sawReplicas(replid, l.hadCount)
			}
		}
	}()
}

// setReplicas records a replica count the master reported after writes,
// with its master_replid from the same reply (a count is never paired with
// another server's id: after a failover under load, the next master's
// replicas would be credited to the old one, or the other way round), and
// how many of them the WAIT before it acknowledged (acked; -1: unknown):
// only that many are recorded as seen.
func (l *Ledger) setReplicas(n, acked int64, replid, replid2 string) {
	l.replicasMu.Lock()
	defer l.replicasMu.Unlock()
	l.replicas.Store(n)
	l.replicasAt = time.Now()
	l.noteMaster(replid, replid2)
	switch {
	case n > 0 && replid != "":
		if seen := min(n, acked); seen > 0 {
			// Recorded whatever this process's own setting: others
			// may hold the master to it.
			l.sawReplicas(replid, seen)
		}
		if n < l.hadCount {
			// Fewer than seen: read again (with what others saw)
			// before the next durable write.
			l.replicasAt = time.Time{}
		}
	case n == 0 && replid != "" && l.opts.MinReplicas >= 0:
		// No replica: how many this master was seen with, here or by
		// another process (the client may have moved to another
		// master), is read before the next durable write, not taken
		// from this count.
		l.replicasAt = time.Time{}
	}
}

// WatchReplicas reads the master's replicas once and counts as seen those
// in sync and acknowledging (online, their lag 0 or 1 s: a live replica
// acknowledges every second), one per address,
// toward the most the master is held to (see Options.MinReplicas). Run it
// every second: the writes' own WAITs count only the replicas they reached,
// so a replica that attached while no write was made, and stopped or fell
// behind before the next, was never counted, and a failover could promote
// it without the writes the master took after (a black-box run: 60 orders
// lost, then created twice on their resend). A replica whose last
// acknowledgement is older (a dead link still listed beside the one that
// replaced it) does not count, nor one listed twice under one address. A
// no-op without durable writes, with no floor (NoReplicaFloor) and on
// Redis Cluster (only MinReplicas counts there).
func (l *Ledger) WatchReplicas(ctx context.Context) error {
	if l.opts.Durable != DurableAuto || l.opts.MinReplicas < 0 || l.batch.cluster != nil {
		return nil
	}
	info, err := readReplication(ctx, l.rdb)
	if err != nil {
		return err
	}
	if strings.Contains(info, "role:slave") {
		return nil
	}
	replid, replid2 := infoField(info, "master_replid"), infoField(info, "master_replid2")
	n := syncedReplicas(info)
	if replid == "" {
		return nil
	}
	if n == 0 {
		return l.namePromoted(ctx, replid, replid2)
	}
	l.replicasMu.Lock()
	if replid == l.replid {
		l.sawReplicas(replid, n)
		l.replicasMu.Unlock()
		return nil
	}
	l.replicasMu.Unlock()
	// Another master than this process's writes last read (the client
	// moving to a promoted one, a proxy): recorded for every process,
	// this process's own hold on the master it writes to left as it is;
	// its writes read the record when they come to this master.
	if err := recordReplicasScript.Run(ctx, l.rdb, []string{replicatedKey}, replid, n, replid2).Err(); err != nil {
		return fmt.Errorf("record the master's replicas: %w", err)
	}
	return nil
}

// namePromoted records a promoted master (replid2, the id it had before,
// not zeros) that has no replica, once per id and process: named the
// master last recorded, with none seen, so that when its id changes again
// without a promotion (its backlog freed after repl-backlog-ttl, a
// restart) it is held to what it is seen with, not to what the master it
// replaced was. Unrecorded (no write reached it: an idle hour, or
// min-replicas-to-write refusing every write), it was taken for a restart
// of that master and held to a replica it cannot have (a black-box run:
// writes refused until an operator acted). A master never promoted
// (replid2 zeros, a single Redis) is not written to.
func (l *Ledger) namePromoted(ctx context.Context, replid, replid2 string) error {
	if replid2 == "" || zeroID(replid2) {
		return nil
	}
	l.replicasMu.Lock()
	done := l.named == replid
	l.replicasMu.Unlock()
	if done {
		return nil
	}
	if err := recordReplicasScript.Run(ctx, l.rdb, []string{replicatedKey}, replid, 0, replid2).Err(); err != nil {
		return fmt.Errorf("record the promoted master: %w", err)
	}
	l.replicasMu.Lock()
	l.named = replid
	l.replicasMu.Unlock()
	return nil
}

// syncedReplicas counts the replicas INFO replication lists online (the
// initial sync done; with disk-based sync, listed at offset 0 until their
// first acknowledgement) whose lag (whole seconds since their last
// acknowledgement, or since the sync) is 0 or 1, one per ip:port. A
// replica on a Unix socket only (port 0, an offset) is counted each time:
// such a link cannot be dead yet open.
func syncedReplicas(info string) int64 {
	seen := map[string]bool{}
	unix := int64(0)
	for line := range strings.SplitSeq(info, "\n") {
		f, ok := replicaLine(line)
		if !ok || !isReplica(f) || f["state"] != "online" {
			continue
		}
		if lag, err := strconv.ParseInt(f["lag"], 10, 64); err != nil || lag < 0 || lag > 1 {
			continue
		}
		if f["port"] == "0" || f["port"] == "" {
			unix++
			continue
		}
		seen[f["ip"]+":"+f["port"]] = true
	}
	return int64(len(seen)) + unix
}

// readReplication reads the server's INFO replication. An error, the
// count unknown, when the server refuses it (NOPERM, a renamed or
// disabled INFO, a proxy that does not pass it on) or answers without the
// server's role (a section it does not keep): a durable write is never
// taken for one on a server whose replicas cannot be read.
func readReplication(ctx context.Context, c redis.Cmdable) (string, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err == nil {
		err = replicationKnown(info)
	}
	if err != nil {
		return "", fmt.Errorf("read the master's replica count (INFO replication; ORDERWORKER_DURABLE_WRITES=off does without): %w", err)
	}
	return info, nil
}

// replicationKnown is an error when an INFO replication answer names no
// role: it says nothing of the server's replicas.
func replicationKnown(info string) error {
	if infoField(info, "role") == "" {
		return errors.New("the answer names no role: the server keeps no replication section")
	}
	return nil
}

// liveReplicas is connectedReplicas without the replicas whose last
// acknowledgement is over maxLag seconds old (lag=, in INFO): a link
// whose replica died without closing it stays listed, online, until the
// master's repl-timeout drops it, and acknowledges nothing; a live
// replica acknowledges every second.
func liveReplicas(info string, maxLag int64) int64 {
	n := int64(0)
	for line := range strings.SplitSeq(info, "\n") {
		f, ok := replicaLine(line)
		if !ok || !isReplica(f) {
			continue
		}
		if lag, err := strconv.ParseInt(f["lag"], 10, 64); err == nil && lag <= maxLag {
			n++
		}
	}
	return n
}

// replicaLine reads a slaveN line of INFO replication into its fields.
func replicaLine(line string) (map[string]string, bool) {
	k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
	if !ok || !strings.HasPrefix(k, "slave") || strings.HasPrefix(k, "slave_") {
		return nil, false
	}
	if _, err := strconv.Atoi(k[len("slave"):]); err != nil {
		return nil, false
	}
	f := map[string]string{}
	for kv := range strings.SplitSeq(v, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			f[k] = v
		}
	}
	return f, true
}

// isReplica tells a replica from a client that syncs only to take a copy
// (see connectedReplicas). A replica without a TCP port (a Unix socket
// only) acknowledges all the same: online with an offset, it is one.
func isReplica(f map[string]string) bool {
	return f["port"] != "0" && f["port"] != "" || f["state"] == "online" && f["offset"] != "" && f["offset"] != "0"
}

// connectedReplicas counts the replicas INFO replication lists: each
// slaveN line with a port, or online with an offset. A client that syncs
// only to take a copy (redis-cli --rdb, redis-cli --replica, a backup
// agent) is listed too, with port 0 (it gives no listening port, and no
// failover can promote it) and no offset (it acknowledges nothing);
// counted, it would make every write wait for an acknowledgement it never
// sends, and hold the master to one replica more than it has. A server
// that lists no slaveN lines gives its connected_slaves.
func connectedReplicas(info string) int64 {
	n, listed := int64(0), false
	for line := range strings.SplitSeq(info, "\n") {
		f, ok := replicaLine(line)
		if !ok {
			continue
		}
		listed = true
		if isReplica(f) {
			n++
		}
	}
	if !listed {
		n, _ = strconv.ParseInt(infoField(info, "connected_slaves"), 10, 64)
	}
	return n
}

// Replicas counts the replicas an INFO replication answer lists, as
// durable writes count them (copy clients left out: connectedReplicas).
func Replicas(info string) int64 { return connectedReplicas(info) }

// infoField is the value of field in an INFO answer ("" when absent).
func infoField(info, field string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// ErrNotDurable is returned when a write was applied on the master but not
// acknowledged by its replicas in time: a failover now could lose it.
var ErrNotDurable = errors.New("write not acknowledged by the replicas in time")

// DevMarked reports whether the ledger's Redis holds worker -dev's marker
// (devmode.MarkerKey): its orders are paid by -dev's sandboxes and created
// nowhere, so a real producer must not write there.
func (l *Ledger) DevMarked(ctx context.Context) (bool, error) {
	return devmode.Marked(ctx, l.rdb)
}
