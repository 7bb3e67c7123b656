package ledger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// ListArgs select orders for List.
type ListArgs struct {
	// Providers to list; required (the ledger does not know the names).
	Providers []string
	// State to list; "" for every state.
	State State
	// Before lists orders that entered their state before it; zero: now.
	Before time.Time
	// Limit bounds the page; default 50, at most 1000.
	Limit int
	// Cursor continues a listing where the previous page ended ("" from
	// the newest).
	Cursor string
}

// ListPage is one page of List.
type ListPage struct {
	// Records, newest first (by when they entered their state), without
	// their history.
	Records []*Record
	// Next is the cursor of the next page, "" after the last.
	Next string
}

type listed struct {
	score    float64
	provider string
	orderNo  string
}

func (a listed) after(b listed) bool { // a comes after b in newest-first order
	if a.score != b.score {
		return a.score < b.score
	}
	if a.provider != b.provider {
		return a.provider < b.provider
	}
	return a.orderNo < b.orderNo
}

// scoreArg writes a sorted set score for a range.
func scoreArg(f float64) string {
	if math.IsInf(f, 1) {
		return "+inf"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// ErrBadCursor is List's error for a cursor it did not make.
var ErrBadCursor = errors.New("bad cursor")

// List returns a page of orders, newest first by when they entered their
// state, from the state indexes.
func (l *Ledger) List(ctx context.Context, a ListArgs) (ListPage, error) {
	if a.Limit <= 0 {
		a.Limit = 50
	}
	a.Limit = min(a.Limit, 1000)
	// From the newest on, whatever the clocks that stamped the indexes
	// (a worker's running ahead of this process's) say.
	top := listed{score: math.Inf(1), provider: "\xff"}
	if !a.Before.IsZero() {
		top.score = float64(a.Before.UnixMilli())
	}
	if a.Cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(a.Cursor)
		parts := strings.SplitN(string(raw), "\x00", 3)
		if err != nil || len(parts) != 3 {
			return ListPage{}, ErrBadCursor
		}
		sc, err := strconv.ParseFloat(parts[0], 64)
		if err != nil || math.IsNaN(sc) || math.IsInf(sc, 0) {
			return ListPage{}, ErrBadCursor
		}
		top = listed{score: sc, provider: parts[1], orderNo: parts[2]}
	}
	states := States
	if a.State != "" {
		if !a.State.Valid() {
			return ListPage{}, fmt.Errorf("state %q: want one of %v", a.State, States)
		}
		states = []State{a.State}
	}
	// Each index gives its newest entries from the top score on. Entries
	// tied at the top score that an earlier page showed are dropped, so an
	// index whose whole fetch was used up by them (a batch claimed in one
	// millisecond) is read on until it gives a full page or ends: the
	// merged page is then the newest of every index, and paging neither
	// stops early nor jumps past entries never read.
	type q struct {
		provider string
		key      string
		offset   int64
		kept     int
		done     bool
		cmd      *redis.ZSliceCmd
	}
	fetch := int64(a.Limit) + 64
	var qs []*q
	for _, p := range a.Providers {
		for _, s := range states {
			for i := range l.shards {
				qs = append(qs, &q{provider: p, key: l.shards[i].indexKey(p, s)})
			}
		}
	}
	var all []listed
	for {
		pipe := l.rdb.Pipeline()
		pending := 0
		for _, x := range qs {
			if x.done {
				continue
			}
			x.cmd = pipe.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
				Key: x.key, Start: scoreArg(top.score), Stop: "-inf",
				ByScore: true, Rev: true, Offset: x.offset, Count: fetch,
			})
			pending++
		}
		if pending == 0 {
			break
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return ListPage{}, fmt.Errorf("list orders: %w", err)
		}
		for _, x := range qs {
			if x.done {
				continue
			}
			got := x.cmd.Val()
			for _, z := range got {
				it := listed{score: z.Score, provider: x.provider, orderNo: z.Member.(string)}
				if a.Cursor != "" && !it.after(top) {
					continue
				}
				all = append(all, it)
				x.kept++
			}
			x.offset += int64(len(got))
			x.done = int64(len(got)) < fetch || x.kept > a.Limit
		}
		fetch = min(2*fetch, 10_000) // a long run of ties: read on in larger steps
	}
	slices.SortFunc(all, func(x, y listed) int {
		switch {
		case y.after(x):
			return -1
		case x.after(y):
			return 1
		}
		return 0
	})
	var page ListPage
	if len(all) > a.Limit {
		all = all[:a.Limit]
		last := all[len(all)-1]
		page.Next = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatFloat(last.score, 'f', -1, 64) + "\x00" + last.provider + "\x00" + last.orderNo))
	}
	if len(all) == 0 {
		return page, nil
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(all))
	for i, it := range all {
		ref := Ref{it.provider, it.orderNo}
		cmds[i] = pipe.HGetAll(ctx, l.shardOf(ref).recordKey(ref))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return ListPage{}, fmt.Errorf("list orders: %w", err)
	}
	for _, c := range cmds {
		if h := c.Val(); len(h) > 0 {
			page.Records = append(page.Records, decode(h))
		}
	}
	return page, nil
}

// Resolution is an operator's decision about an order the worker cannot
// settle.
type Resolution string

const (
	// ResolvePaid: the provider holds the order, paid, under the given id.
	ResolvePaid Resolution = "paid"
	// ResolveAbsent: the provider holds no such order; it goes back to
	// submission. From unknown; and from pending for an order whose
	// provider order id was found only by matching (Record.Matched) and
	// was never paid by a worker: the order matched is not this one, and
	// this one was never made. The matched id is forgotten and its owner
	// entry released, so that the order that made it can take it.
	ResolveAbsent Resolution = "absent"
	// ResolveErrored: end the order errored, the note as its reason.
	ResolveErrored Resolution = "errored"
)

// ResolveArgs are an operator's decision.
type ResolveArgs struct {
	As              Resolution
	ProviderOrderID string // required for ResolvePaid
	Note            string // why; required
	By              string // who; required
	// ListingLag refuses absent while the order's last create ended less
	// than it ago, on Redis's clock: the provider may not list (or show
	// in its console) an order it made that recently, and absent has it
	// created again. Zero or negative: not refused for it. Either way it
	// is at least the lag the order's last create or pay was marked with
	// (Record.MarkLag).
	ListingLag time.Duration `json:"-"`
	// IDScope is the scope the order's provider order ids are unique
	// within (Transition.WithIDScope), read from its params by the
	// caller; "" takes the record's (Record.IDScope).
	IDScope string `json:"-"`
}

// RefusedError is an operator action that is not legal for the order as it
// stands; nothing was changed.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "refused: " + e.Reason }

// Resolve records an operator's decision about an order in state unknown
// (any decision), pending (paid or errored), or queued or submitting
// (errored, while no create of it may have been received): atomically, with a history
// entry naming who and why, and its outcome event. It refuses, with a
// *RefusedError, a decision that is not legal in the order's state, a paid
// whose provider order id another order owns, a paid under another id than
// the one the order's own create was answered with (or whose matched id a
// worker paid), absent or errored within the listing lag (lagRefusal), and
// an order a worker is processing right now. A paid under another id than
// the one the order holds by matching (or by a failed create's answer)
// drops that one as absent does. An operator's paid decision that gives an
// order without an id one, or replaces its id, records the id as the
// operator's word (Transition.withOperatorID): another order's own create
// answered with the same id takes it over, as from a match. With ErrNotDurable it
// returns the record too: the decision was recorded on the master, but its
// replicas did not acknowledge it in time (a failover now could undo it);
// with *RecordedError, the decision stands but a step after it failed.
func (l *Ledger) Resolve(ctx context.Context, ref Ref, a ResolveArgs) (*Record, error) {
	switch {
	case a.Note == "" || a.By == "":
		return nil, &RefusedError{"a note and a name are required"}
	case a.As != ResolvePaid && a.As != ResolveAbsent && a.As != ResolveErrored:
		return nil, &RefusedError{fmt.Sprintf("unknown decision %q: want paid, absent or errored", a.As)}
	}
	// Judged first on a read, so that a decision refused for the order's
	// state writes nothing (a lease taken and released still changes the
	// record's update time, which a producer's undo of its claim
	// checks), then again under the lease, which never marks a create.
	cur, err := l.Get(ctx, ref)
	switch {
	case err != nil:
		return nil, err
	case cur == nil:
		return nil, ErrNotFound
	case cur.State == StatePaid || cur.State == StateErrored:
		return nil, &RefusedError{fmt.Sprintf("the order is %s already", cur.State)}
	case !resolvable(cur, a.As):
		return nil, &RefusedError{notResolvable(a.As, cur.State, cur.MayHaveBeenCreated())}
	case cur.State == StatePending && a.As == ResolveAbsent && matchedAbsentRefusal(cur) != "":
		return nil, &RefusedError{matchedAbsentRefusal(cur)}
	case otherIDRefusal(cur, a) != "":
		return nil, &RefusedError{otherIDRefusal(cur, a)}
	case lagRefusal(cur, a, l.readAt(cur)) != "":
		return nil, &RefusedError{lagRefusal(cur, a, l.readAt(cur))}
	}
	token := "operator:" + uuid.NewString()
	// A step of the clock this Begin finds is held at least as long as the
	// workers hold one (their listing lag, a lease and a call's timeout):
	// the lag given, and the default hold beside it.
	b, err := l.Begin(ctx, ref, BeginArgs{Token: token, LeaseTTL: 30 * time.Second, NoCreate: true, ClockHold: max(a.ListingLag, 0) + DefaultClockHold})
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, err
	case err != nil && !errors.Is(err, ErrNotDurable):
		return nil, err
	case b.Status == Busy:
		return nil, &RefusedError{"a worker is processing the order right now; try again in a few seconds"}
	case b.Status == Finished:
		return nil, &RefusedError{fmt.Sprintf("the order is %s already", b.Record.State)}
	}
	rec := b.Record
	scope := a.IDScope
	if scope == "" {
		scope = rec.IDScope
	}
	refuse := func(reason string) (*Record, error) {
		_ = l.Settle(context.WithoutCancel(ctx), ref, token, Unmark(rec))
		return nil, &RefusedError{reason}
	}
	if !resolvable(rec, a.As) {
		return refuse(notResolvable(a.As, stateBefore(rec), rec.MayHaveBeenCreated()))
	}
	// A pending order resolved absent was found by matching (checked
	// again under the lease): the id it holds is another's. So is the
	// matched id of one resolved paid under another id.
	dropped, own := "", false
	if rec.State == StatePending && a.As == ResolveAbsent {
		if why := matchedAbsentRefusal(rec); why != "" {
			return refuse(why)
		}
		dropped = rec.ProviderOrderID
	}
	if rec.State == StateUnknown && a.As == ResolveAbsent && rec.ProviderOrderID != "" {
		if rec.Matched {
			// Found by matching: another's, as for a pending order.
			dropped = rec.ProviderOrderID
		} else {
			// The id a failed create of its own was answered with: the
			// provider holds no such order, so it names none. Kept, the
			// next create's lookups would go by it, and that create's
			// own answer would not be recorded (a review). Its owner
			// entry stays this order's (withDropOwnID).
			own = true
		}
	}
	if why := otherIDRefusal(rec, a); why != "" {
		return refuse(why)
	}
	if a.As == ResolvePaid && a.ProviderOrderID != "" && rec.ProviderOrderID != "" && a.ProviderOrderID != rec.ProviderOrderID {
		dropped = rec.ProviderOrderID
	}
	// The id is the operator's word (revocable, as a match) only where
	// it is not the provider's own answer: an order that held no id, or
	// one whose id it replaces. One the operator confirms stays what it
	// was.
	operatorID := a.As == ResolvePaid && a.ProviderOrderID != "" && (rec.ProviderOrderID == "" || dropped != "")
	if why := lagRefusal(rec, a, l.readAt(rec)); why != "" {
		return refuse(why)
	}
	if dropped != "" && a.As == ResolvePaid && l.ownerShard(ref.Provider, OwnerField(scope, dropped)) != l.shardOf(ref) {
		// A paid order takes no further step that could release the
		// dropped id later (an absent one does): released now, before
		// the settle, or nothing is decided. Until the settle, the
		// record still names the id its owner entry no longer holds:
		// no worker steps on it (this lease), and a settle that fails
		// leaves a pending matched order whose next settle takes the id
		// again, unless the order that made it took it meanwhile.
		if err := l.ReleaseNotOurs(context.WithoutCancel(ctx), ref, scope, dropped); err != nil && !errors.Is(err, ErrNotDurable) {
			_ = l.Settle(context.WithoutCancel(ctx), ref, token, Unmark(rec))
			return nil, fmt.Errorf("nothing decided: the matched provider order id %s could not be released for the order that made it: %w", dropped, err)
		}
	}
	// Who decided is in the history entry only: the reason goes out in
	// the order's event, to every webhook endpoint and API reader.
	attempt := &Attempt{N: rec.Attempts + 1, At: l.readAt(rec), Call: "resolve", Result: string(a.As), Message: a.Note, By: a.By}
	var t Transition
	switch a.As {
	case ResolvePaid:
		t = SetPaid(a.ProviderOrderID).WithMayExist(true)
		if operatorID {
			t = t.withOperatorID()
		}
		if dropped != "" {
			t = t.withDropMatch(rec)
		}
	case ResolveAbsent:
		// The operator sends the order back to submission, as a re-drive
		// does: its deadline counts from now.
		t = SetRetry("an operator found no such order at the provider: " + a.Note).WithMayExist(false).WithFailures(0).withRedriven().withoutAbsentLag()
		switch {
		case own:
			t = t.withDropOwnID(rec)
		case dropped != "":
			t = t.withDropMatch(rec)
		}
	case ResolveErrored:
		t = SetErrored("operator: " + a.Note)
	}
	err = l.Settle(context.WithoutCancel(ctx), ref, token, t.WithAttempt(attempt).WithIDScope(scope))
	var owned *OwnedError
	if errors.As(err, &owned) {
		return refuse(owned.Error())
	}
	if err != nil && !errors.Is(err, ErrNotDurable) {
		return nil, err
	}
	notDurable := err
	// The decision stands from here: what fails after it is told with the
	// record (RecordedError), read on a context of its own, so that the
	// caller still queues the order's task.
	var after error
	if dropped != "" && a.As == ResolveAbsent && l.ownerShard(ref.Provider, OwnerField(scope, dropped)) != l.shardOf(ref) {
		// In another shard than the record: released after the settle,
		// which no longer names the id (released before it, another
		// order could take the id while this record still held it).
		switch err := l.ReleaseNotOurs(context.WithoutCancel(ctx), ref, scope, dropped); {
		case errors.Is(err, ErrNotDurable):
			// Released on the master, not yet on its replicas: as for
			// the settle, the decision stands, said unacknowledged.
			notDurable = ErrNotDurable
		case err != nil:
			after = fmt.Errorf("the matched provider order id %s is still recorded as this order's, so no other order can take it yet: the order's next step releases it: %w", dropped, err)
		}
	}
	gc, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	got, err := l.Get(gc, ref)
	if err != nil {
		after = errors.Join(after, fmt.Errorf("reading it back: %w", err))
	}
	if got != nil {
		rec = got
	}
	switch {
	case after != nil:
		return rec, &RecordedError{Record: got, Err: after, NotDurable: notDurable != nil}
	case notDurable != nil:
		return rec, notDurable
	}
	return rec, nil
}

// RecordedError is Resolve's error when the decision was recorded (it
// stands) but a step after it failed: releasing a dropped provider order
// id in another shard, or reading the record back.
type RecordedError struct {
	// Record is the record as read after the decision; nil when it
	// could not be read.
	Record *Record
	Err    error
	// NotDurable: besides, the replicas did not acknowledge the decision
	// in time (ErrNotDurable).
	NotDurable bool
}

func (e *RecordedError) Error() string { return "the decision is recorded, but " + e.Err.Error() }

func (e *RecordedError) Unwrap() error { return e.Err }

// otherIDRefusal is why an order may not be resolved paid under the
// provider order id a names, "" when it may: a pending order whose own
// create was answered with another id (or whose lookup by its own order
// number found it) holds that one (the provider named it); one whose
// matched id a worker paid, that one. An unknown order's id came with a
// create that failed: given up as a matched one is.
func otherIDRefusal(rec *Record, a ResolveArgs) string {
	if a.As != ResolvePaid || a.ProviderOrderID == "" || rec.ProviderOrderID == "" || a.ProviderOrderID == rec.ProviderOrderID {
		return ""
	}
	switch {
	case rec.State == StateUnknown:
		// Its id came with a create that failed (an answer that named
		// one, undocumented): no proof; the operator found the order.
		return ""
	case !rec.Matched:
		return fmt.Sprintf("the order's own create was answered with provider order %s: resolve it paid with that id, or errored", rec.ProviderOrderID)
	case !rec.PaySentAt.IsZero() || !rec.PayAcceptedAt.IsZero():
		return fmt.Sprintf("a worker sent a pay for the matched provider order %s: resolve it paid with that id (it is the order's) or errored (and settle that pay with the provider)", rec.ProviderOrderID)
	}
	return ""
}

// lagRefusal is why decision a may not be taken yet, judged at now on
// Redis's clock, "" when it may: absent, or errored for an unknown order,
// while the order's last create ended less than the listing lag ago (the
// provider may not list, or show in its console, an order it made that
// recently: absent would have it created again, errored would tell its
// producer it failed while it may exist); errored for a pending order
// while a worker's pay ended less than the listing lag ago (the pay may
// still show as taken).
func lagRefusal(rec *Record, a ResolveArgs, now time.Time) string {
	// At least the lag the worker that sent the last create or pay judged
	// it with (Record.MarkLag): an operator's shell with a shorter one, or
	// none, does not cut it short.
	lag := max(a.ListingLag, rec.MarkLag)
	if lag <= 0 {
		return ""
	}
	// A step forward of Redis's clock still held (Record.ClockHold) makes
	// a stamp look older than it is: the lag is that much longer.
	lag += rec.ClockHold
	switch {
	case a.As == ResolveAbsent || (a.As == ResolveErrored && rec.State == StateUnknown):
		// When its latest create may last have been acted on: the
		// latest of these (a record written before last_create was kept
		// has the first attempt; one recreated after Redis lost it, its
		// recreation).
		last := rec.LastCreateAt
		for _, t := range []time.Time{rec.FirstAttemptAt, rec.CreatedAt} {
			if t.After(last) {
				last = t
			}
		}
		if age := now.Sub(last); !last.IsZero() && age < lag {
			return fmt.Sprintf("the order's last create ended %s ago, within the listing lag (%s): the provider may not show an order it made that recently; look again after %s",
				max(age, 0).Round(time.Second), lag, last.Add(lag).UTC().Format(time.RFC3339))
		}
	case a.As == ResolveErrored && rec.State == StatePending && !rec.PaySentAt.IsZero():
		if age := now.Sub(rec.PaySentAt); age < lag {
			return fmt.Sprintf("a worker's pay of the order ended %s ago, within the listing lag (%s): the provider may not show it paid yet; look again after %s",
				max(age, 0).Round(time.Second), lag, rec.PaySentAt.Add(lag).UTC().Format(time.RFC3339))
		}
	}
	return ""
}

// resolvable reports whether decision as is legal for an order in state s
// (absent from pending: see matchedAbsentRefusal too).
func resolvable(rec *Record, as Resolution) bool {
	switch rec.State {
	case StateUnknown, StatePending:
		return true
	case StateQueued, StateSubmitting:
		// Errored only, and only while no create of it may have been
		// received or be in flight: an order the operator stops before
		// it is made (one whose params the provider refuses in words
		// that hold the provider's orders back, say), nothing created.
		return as == ResolveErrored && !rec.MayHaveBeenCreated()
	}
	return false
}

// Resolvable reports whether an operator may resolve the order as as, as
// it stands (Resolve judges it again under the order's lease).
func (r *Record) Resolvable(as Resolution) bool {
	if !resolvable(r, as) {
		return false
	}
	return r.State != StatePending || as != ResolveAbsent || matchedAbsentRefusal(r) == ""
}

// matchedAbsentRefusal is why a pending order may not be resolved absent,
// "" when it may: only an order whose provider order id was found by
// matching, and that no worker paid.
func matchedAbsentRefusal(rec *Record) string {
	switch {
	case !rec.Matched || rec.ProviderOrderID == "":
		return fmt.Sprintf("absent is not a decision for an order in state pending whose provider order %s came in the answer to its own create (pending: paid or errored; absent only for one found by matching)", rec.ProviderOrderID)
	case !rec.PaySentAt.IsZero() || !rec.PayAcceptedAt.IsZero():
		return fmt.Sprintf("a worker sent a pay for the matched provider order %s: resolve it paid (it is the order's) or errored (and settle that pay with the provider)", rec.ProviderOrderID)
	}
	return ""
}

// notResolvable is why as is no decision for an order in state s; created:
// a create of it may have been received (Record.MayHaveBeenCreated).
func notResolvable(as Resolution, s State, created bool) string {
	if created && as == ResolveErrored && (s == StateQueued || s == StateSubmitting) {
		return fmt.Sprintf("errored is refused for an order in state %s a create of which may have reached the provider (one is in flight, or an earlier one was never answered): ending it now could leave an order made at the provider with no record of it; the worker looks it up and moves it on by itself, and once it is unknown or pending a person may decide", s)
	}
	return fmt.Sprintf("%s is not a decision for an order in state %s (unknown: paid, absent or errored; pending: paid or errored, or absent for one found by matching; queued or submitting: errored, while no create of it may have been received)", as, s)
}

// releaseScript removes order ARGV[2]'s owner entry for provider order id
// ARGV[1] (KEYS[1] the owner index). It replies 1 when it removed one.
var releaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`)

// ReleaseNotOurs removes ref's owner entry for provider order id, one of
// its Record.NotOurs (an operator found it another's): the order that made
// it may take it. The id is in another shard than the record, or the
// settle that recorded it not ours would have released it (a release that
// failed after that settle is done again by the order's next step). The
// order never holds such an id again (its lookups pass it over), so it
// needs no check of the record. scope is the record's IDScope. ErrNotDurable
// (wrapped): released on the master, but its replicas did not acknowledge
// it in time.
func (l *Ledger) ReleaseNotOurs(ctx context.Context, ref Ref, scope, id string) error {
	fields := []string{OwnerField(scope, id)}
	if fields[0] != id {
		// And an entry by the id alone, written by a version before ids
		// were kept by scope, if it is this order's.
		fields = append(fields, id)
	}
	for _, f := range fields {
		sh := l.ownerShard(ref.Provider, f)
		_, acked, err := l.run(ctx, releaseScript, true, []string{sh.ownerKey(ref.Provider)}, f, ref.OrderNo)
		switch {
		case err != nil:
			return fmt.Errorf("release provider order id: %w", err)
		case !acked:
			return fmt.Errorf("release provider order id: %w", ErrNotDurable)
		}
	}
	return nil
}

func stateBefore(rec *Record) State {
	if rec.InflightMarked {
		return rec.MarkedFrom
	}
	return rec.State
}

// redriveScript moves an errored order that surely created nothing back to
// submitting, with its failure budget reset, its deadline counting from now
// (redriven), its identification started anew (Transition.Afresh) unless
// a create of it may ever have been received, and a history entry.
//
// KEYS: record, history, errored index, submitting index. ARGV: order_no,
// now (ms; "" for Redis's TIME), attempt JSON, reason, max history, a
// token unique to the call: the same call again (sent again by the
// client after a lost reply) answers ok, not refused for the state it
// left.
var redriveScript = redis.NewScript(luaAddHistory + `
local cur = redis.call('HMGET', KEYS[1], 'state', 'may_exist', 'inflight', 'redrive')
if not cur[1] then return {'missing'} end
if cur[4] == ARGV[6] then return {'ok'} end
if cur[1] ~= 'errored' then return {'refused', 'the order is ' .. cur[1] .. ', not errored'} end
if cur[2] == '1' or (cur[3] or '') ~= '' then return {'refused', 'the order may exist at the provider'} end
local now = ARGV[2]
if now == '' then
  local t = redis.call('TIME')
  now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
redis.call('HSET', KEYS[1], 'state', 'submitting', 'failures', '0', 'reason', ARGV[4], 'updated', now, 'outcome_at', '', 'redriven', now, 'redrive', ARGV[6], 'refused_create', '')
if not cur[2] then redis.call('HSET', KEYS[1], 'known', '', 'first_attempt', '') end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], now, ARGV[1])
addHistory(KEYS[2], ARGV[3], tonumber(ARGV[5]))
return {'ok'}
`)

// Redrive moves an errored order that surely created nothing at the
// provider back to submission, its failure budget reset, with a history
// entry naming who and why; the caller queues its task. An order that may
// exist at the provider (Record.MayHaveBeenCreated) is refused with a
// *RefusedError, as is any order not errored. ErrNotDurable: re-driven on
// the master, but its replicas did not acknowledge it in time (a failover
// now could undo it: read the order again before acting on it).
func (l *Ledger) Redrive(ctx context.Context, ref Ref, by, note string) error {
	if by == "" {
		return &RefusedError{"a name is required"}
	}
	if err := l.CheckShards(ctx); err != nil {
		return fmt.Errorf("redrive order: %w", err)
	}
	rec, err := l.Get(ctx, ref)
	if err != nil {
		return err
	}
	if rec == nil {
		return ErrNotFound
	}
	reason := "re-driven by an operator"
	if note != "" {
		reason += ": " + note
	}
	// Who re-drove is in the history entry only, as for Resolve.
	a, _ := json.Marshal(&Attempt{N: rec.Attempts, At: l.readAt(rec), Call: "redrive", Result: "ok", Message: note, By: by})
	sh := l.shardOf(ref)
	v, acked, err := l.run(ctx, redriveScript, true,
		[]string{sh.recordKey(ref), sh.historyKey(ref), sh.indexKey(ref.Provider, StateErrored), sh.indexKey(ref.Provider, StateSubmitting)},
		ref.OrderNo, l.claimTime(), a, reason, MaxHistory, uuid.NewString())
	if err != nil {
		return fmt.Errorf("redrive order: %w", err)
	}
	res, _ := v.([]any)
	if len(res) > 0 {
		switch k, _ := res[0].(string); k {
		case "ok":
			if !acked {
				// Applied on the master; a failover now could undo it
				// (or it ran on a master cut off from the promoted one).
				return ErrNotDurable
			}
			return nil
		case "missing":
			return ErrNotFound
		case "refused":
			reason, _ := res[1].(string)
			return &RefusedError{reason}
		}
	}
	return fmt.Errorf("redrive order: unexpected reply %v", v)
}

// readAt is the time an operator's history entry for rec is stamped with:
// Redis's clock when rec was read (Record.ReadAt), as the worker's entries
// are; this process's clock only when that is not known.
func (l *Ledger) readAt(rec *Record) time.Time {
	if l.redisTime && !rec.ReadAt.IsZero() {
		return rec.ReadAt.UTC()
	}
	return l.now().UTC()
}

// moveOwnerScript moves order ARGV[2]'s owner entry for provider order id
// ARGV[1] (written by id alone) to field ARGV[3] (the id in its scope), in
// one owner index KEYS[1]. It replies 'moved', 'gone' (the entry is not
// that order's any more) or 'taken' (another order owns the scoped field:
// the entry stays).
var moveOwnerScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 'gone' end
if redis.call('HSETNX', KEYS[1], ARGV[3], ARGV[2]) == 0 and redis.call('HGET', KEYS[1], ARGV[3]) ~= ARGV[2] then return 'taken' end
redis.call('HDEL', KEYS[1], ARGV[1])
return 'moved'
`)

// MoveOwner moves owner's entry for provider order id, written by id alone
// (by a version that kept ids so), under scope (Transition.WithIDScope),
// where the checks of a provider whose ids are unique only within a scope
// look: moved once, each order's by its own scope. It returns
// *OwnedError when another order owns id in scope (the entry stays as it
// was); nothing when the entry is not owner's.
func (l *Ledger) MoveOwner(ctx context.Context, provider, id, owner, scope string) error {
	f := OwnerField(scope, id)
	if f == id {
		return nil
	}
	src, dst := l.ownerShard(provider, id), l.ownerShard(provider, f)
	if src == dst {
		v, _, err := l.run(ctx, moveOwnerScript, true, []string{src.ownerKey(provider)}, id, owner, f)
		if err != nil {
			return fmt.Errorf("move provider order id: %w", err)
		}
		if s, _ := v.(string); s == "taken" {
			o, _ := l.OwnerIn(ctx, provider, scope, id)
			return &OwnedError{ProviderOrderID: id, Owner: o}
		}
		return nil
	}
	// Shards apart (Redis Cluster): reserved in scope first, acknowledged
	// by the replicas, then the entry by id alone released, so that the id
	// is never without its owner. (Not one atomic step: an operator's
	// release of the id between the check and the reservation leaves the
	// reservation standing; see the README, "Redis Cluster".)
	if cur, err := l.Owner(ctx, provider, id); err != nil || cur != owner {
		return err
	}
	v, acked, err := l.run(ctx, reserveScript, true, []string{dst.ownerKey(provider)}, f, owner)
	if err != nil {
		return fmt.Errorf("move provider order id: %w", err)
	}
	if o, _ := v.(string); o != owner {
		return &OwnedError{ProviderOrderID: id, Owner: o}
	}
	if !acked {
		return fmt.Errorf("move provider order id: %w", ErrNotDurable)
	}
	if _, _, err := l.run(ctx, releaseScript, true, []string{src.ownerKey(provider)}, id, owner); err != nil {
		return fmt.Errorf("move provider order id: %w", err)
	}
	return nil
}
