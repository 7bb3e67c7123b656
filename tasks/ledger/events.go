package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
)

// Event is an outcome event: an order's change to paid, pending, errored or
// unknown, appended by the same script that made the change. Its ID is the
// events stream's entry id, and with more than one shard the shard's index
// after it ("1700000000000-0-2"): ordered within a shard (so within an
// order), unique, and the same however often it is read.
type Event struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"` // order.paid, order.pending, order.errored, order.unknown
	Timestamp time.Time `json:"timestamp"`
	Data      EventData `json:"data"`
}

// EventData is what an event says about its order.
type EventData struct {
	Provider        string `json:"provider"`
	OrderNo         string `json:"order_no"`
	State           State  `json:"state"`
	ProviderOrderID string `json:"provider_order_id"`
	// Reason is the record's reason with every phone number hidden whole
	// (providers.HidePhones): events go to whoever holds an API token or
	// runs a webhook endpoint, not to an operator.
	Reason   string `json:"reason"`
	Attempts int    `json:"attempts"`
}

// Body is the event as JSON, as webhooks and the events API send it.
func (e Event) Body() ([]byte, error) { return json.Marshal(e) }

// EventStream is one shard's events stream, for consumers that read it
// with consumer groups (XREADGROUP) to deliver webhooks.
type EventStream struct {
	// Key is the stream's Redis key.
	Key string
	// Tag is its hash tag's content: keys that scripts touch together with
	// the stream must carry it ("…{" + Tag + "}…").
	Tag string
	// Shard is the shard's index, of Shards.
	Shard, Shards int
}

// EventStreams lists the ledger's events streams, one per shard.
func (l *Ledger) EventStreams() []EventStream {
	out := make([]EventStream, len(l.shards))
	for i, sh := range l.shards {
		out[i] = EventStream{Key: sh.events, Tag: ShardTag("ledger", i, len(l.shards)), Shard: i, Shards: len(l.shards)}
	}
	return out
}

// EventID is the public id of the stream's entry id.
func (s EventStream) EventID(entry string) string {
	if s.Shards <= 1 {
		return entry
	}
	return entry + "-" + strconv.Itoa(s.Shard)
}

// Entry is the stream entry id of a public event id of this stream's
// ledger, and whether the id names an entry of this stream.
func (s EventStream) Entry(id string) (string, bool) {
	e, shard, ok := parseEventID(id, s.Shards)
	return e, ok && shard == s.Shard
}

// Event decodes an entry of the stream. Every event that leaves the
// process (a webhook, GET /v1/events) is built here, so this is where the
// reason's phone numbers are hidden: the stream keeps the record's reason,
// masked as an operator sees it, with seven digits of a number.
func (s EventStream) Event(m redis.XMessage) Event {
	v := func(k string) string { x, _ := m.Values[k].(string); return x }
	ms, _ := strconv.ParseInt(v("at"), 10, 64)
	return Event{
		ID: s.EventID(m.ID), Type: v("type"), Timestamp: time.UnixMilli(ms).UTC(),
		Data: EventData{Provider: v("provider"), OrderNo: v("order_no"), State: State(v("state")),
			ProviderOrderID: v("provider_order_id"), Reason: providers.HidePhones(v("reason")), Attempts: atoi(v("attempts"))},
	}
}

// entryID is a stream entry id, ms-seq.
type entryID struct{ ms, seq uint64 }

func parseEntry(s string) (entryID, bool) {
	ms, seq, found := strings.Cut(s, "-")
	m, err := strconv.ParseUint(ms, 10, 64)
	if err != nil {
		return entryID{}, false
	}
	var n uint64
	if found {
		if n, err = strconv.ParseUint(seq, 10, 64); err != nil {
			return entryID{}, false
		}
	}
	return entryID{m, n}, true
}

func (e entryID) String() string {
	return strconv.FormatUint(e.ms, 10) + "-" + strconv.FormatUint(e.seq, 10)
}

func (e entryID) less(o entryID) bool { return e.ms < o.ms || e.ms == o.ms && e.seq < o.seq }

// next is the id just after e.
func (e entryID) next() entryID {
	if e.seq < math.MaxUint64 {
		return entryID{e.ms, e.seq + 1}
	}
	return entryID{e.ms + 1, 0}
}

// before is the id just before e (0-0 for 0-0 and 0-1).
func (e entryID) before() entryID {
	switch {
	case e.seq > 0:
		return entryID{e.ms, e.seq - 1}
	case e.ms > 0:
		return entryID{e.ms - 1, math.MaxUint64}
	}
	return e
}

// parseEventID splits a public event id of a ledger of n shards into its
// stream entry id and shard.
func parseEventID(id string, n int) (string, int, bool) {
	if n <= 1 {
		_, ok := parseEntry(id)
		return id, 0, ok && strings.Count(id, "-") <= 1
	}
	i := strings.LastIndexByte(id, '-')
	if i < 0 || strings.Count(id, "-") != 2 {
		return "", 0, false
	}
	shard, err := strconv.Atoi(id[i+1:])
	if _, ok := parseEntry(id[:i]); !ok || err != nil || shard < 0 || shard >= n {
		return "", 0, false
	}
	return id[:i], shard, true
}

// ErrBadEventCursor is ReadEvents' error for an after it cannot read.
var ErrBadEventCursor = errors.New("bad event cursor")

// EventsPage is a page of ReadEvents.
type EventsPage struct {
	Events []Event
	// Next is the after of the next page. With one shard it is the last
	// event's id (or the after given); with more, one position per shard,
	// comma-separated: a reader that passes Next back misses no event,
	// whatever the order in which the shards' events were written.
	Next string
	// Missed is true when retention trimmed events after the given
	// position: events after it may be gone unread.
	Missed bool
	// lastRead is, per shard, the entry of the last event on the page
	// (ID "": none), for EventsOnReplicas.
	lastRead []redis.XMessage
}

// ReadEvents returns up to limit events after the position after, oldest
// first (by entry id, then shard). An empty stream read from its start
// gives the position 0-0, so that events written and trimmed away before
// the next read are reported missed. after is "" or "0" (from the oldest
// kept) or the Next of an earlier page; with one shard, also an event id
// or a bare millisecond time. With more than one, an event id is refused
// (ErrBadEventCursor): the shards write their events independently, so an
// event written later on one shard can carry an earlier id than one
// already read from another, and only a position per shard (Next) misses
// nothing.
func (l *Ledger) ReadEvents(ctx context.Context, after string, limit int64) (EventsPage, error) {
	n := len(l.shards)
	type pos struct {
		at  entryID
		set bool // a position was given for the shard
		// id: the position is an entry id (a bare millisecond time may
		// name a time to come; an id, only one the stream gave)
		id bool
		// raw is the position as given, which a page that reads nothing
		// after it passes on as it was
		raw string
	}
	ps := make([]pos, n)
	switch {
	case after == "" || after == "0":
	case n == 1:
		e, ok := parseEntry(after)
		if !ok || strings.Count(after, "-") > 1 {
			return EventsPage{}, ErrBadEventCursor
		}
		ps[0] = pos{at: e, set: true, id: strings.Contains(after, "-")}
	default:
		parts := strings.Split(after, ",")
		if len(parts) != n {
			return EventsPage{}, fmt.Errorf("%w: want next_after of an earlier page, one position for each of %d shards", ErrBadEventCursor, n)
		}
		for i, p := range parts {
			e, ok := parseEntry(p)
			if !ok || strings.Count(p, "-") > 1 {
				return EventsPage{}, ErrBadEventCursor
			}
			ps[i] = pos{at: e, set: p != "0", id: strings.Contains(p, "-"), raw: p}
		}
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, n)
	for i, sh := range l.shards {
		start := "-"
		if ps[i].set {
			if ps[i].at == (entryID{math.MaxUint64, math.MaxUint64}) {
				// Nothing comes after the largest id (and Redis refuses
				// an exclusive range from it).
				cmds[i] = redis.NewXMessageSliceCmd(ctx)
				continue
			}
			start = "(" + ps[i].at.String()
		}
		cmds[i] = pipe.XRangeN(ctx, sh.events, start, "+", limit)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return EventsPage{}, fmt.Errorf("read events: %w", err)
	}
	streams := l.EventStreams()
	// Merge: the shards' lists are each sorted; take the least head.
	heads := make([]int, n)
	var page EventsPage
	last := make([]string, n)
	for int64(len(page.Events)) < limit {
		best, bestID := -1, entryID{}
		for i, c := range cmds {
			msgs := c.Val()
			if heads[i] >= len(msgs) {
				continue
			}
			id, _ := parseEntry(msgs[heads[i]].ID)
			if best < 0 || id.less(bestID) {
				best, bestID = i, id
			}
		}
		if best < 0 {
			break
		}
		m := cmds[best].Val()[heads[best]]
		heads[best]++
		last[best] = m.ID
		if page.lastRead == nil {
			page.lastRead = make([]redis.XMessage, n)
		}
		page.lastRead[best] = m
		page.Events = append(page.Events, streams[best].Event(m))
	}
	// Whether retention trimmed events after a position given, or the
	// position is past every entry its stream ever had (the stream never
	// gave it: its events after it were lost with a failover onto a
	// replica behind, or with Redis's data): that shard's next page starts
	// again from the oldest entry kept.
	beyond := make([]bool, n)
	for i := range ps {
		if !ps[i].set {
			continue
		}
		missed, past, err := l.trimmedAfter(ctx, l.shards[i].events, ps[i].at)
		if err != nil {
			return EventsPage{}, err
		}
		if past && ps[i].id && last[i] == "" {
			beyond[i], missed = true, true
		}
		page.Missed = page.Missed || missed
	}
	// A shard read from its start whose stream is empty goes on from
	// 0-0, a position: retention that trims events written before the next
	// read is then reported (Missed) like any other.
	if n == 1 {
		page.Next = after
		switch {
		case len(page.Events) > 0:
			page.Next = page.Events[len(page.Events)-1].ID
		case !ps[0].set, beyond[0]:
			page.Next = "0-0"
		}
	} else {
		next := make([]string, n)
		for i := range next {
			switch {
			case last[i] != "":
				next[i] = last[i]
			case beyond[i]:
				next[i] = "0-0"
			case !ps[i].set && len(cmds[i].Val()) == 0:
				next[i] = "0-0"
			case !ps[i].set:
				// Read from its start, none of its events on this
				// page: a position just before the first of them, so
				// that retention trimming it before the next read is
				// reported (Missed), not skipped.
				first, _ := parseEntry(cmds[i].Val()[0].ID)
				next[i] = first.before().String()
			default:
				next[i] = ps[i].raw
			}
		}
		page.Next = strings.Join(next, ",")
	}
	return page, nil
}

// trimmedAfter reports whether retention may have removed entries after
// at (see streamTrimmedAfter), and whether at is past the last entry id
// the stream ever gave (past). A stream that does not exist lost what
// came after a position past its start (nothing before its first entry);
// one that cannot be read is an error, not a page that says it missed
// nothing.
func (l *Ledger) trimmedAfter(ctx context.Context, key string, at entryID) (missed, past bool, err error) {
	info, err := l.rdb.XInfoStream(ctx, key).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			// Gone: a position past its start had events, lost with it
			// (Redis lost the ledger's data).
			return at != (entryID{}), false, nil
		}
		return false, false, fmt.Errorf("read events: whether the stream was trimmed: %w", err)
	}
	lastGiven, ok := parseEntry(info.LastGeneratedID)
	return streamTrimmedAfter(info, at, l.opts.EventRetention), ok && lastGiven.less(at), nil
}

// streamTrimmedAfter reports whether retention may have removed entries
// of the stream info describes after at: the stream may have been trimmed,
// and the oldest entry it keeps comes after the id just after at (an entry
// kept right after at shows nothing after at is gone: so for a shard's
// position just before its first entry, see ReadEvents). It errs on the
// side of saying so when at was the very last entry trimmed.
//
// Redis 7 counts the entries ever added: the stream was trimmed when it
// holds fewer. Redis 6.2 does not (entries-added reads 0): there the
// stream may have been trimmed once it holds retention entries, since the
// events' XADD MAXLEN ~ retention never trims it below that; a shorter
// stream's first entry is the first ever written, and a position before
// it (0-0, read while the stream was empty) misses nothing. The reader's
// retention is taken for the writers' (every process uses the default).
func streamTrimmedAfter(info *redis.XInfoStream, at entryID, retention int64) bool {
	if info == nil || info.FirstEntry.ID == "" {
		return false
	}
	switch {
	case info.EntriesAdded > 0:
		if info.EntriesAdded <= info.Length {
			return false
		}
	case info.Length < retention:
		return false
	}
	first, ok := parseEntry(info.FirstEntry.ID)
	return ok && at.next().less(first)
}

// Events returns up to limit events after the position after (see
// ReadEvents), oldest first.
// syncScript is a write in an events stream's hash slot (KEYS[1], a key
// of its own beside the stream KEYS[2]) whose purpose is the WAIT after
// it. It writes only when the stream holds the event read last: entry
// ARGV[2], of type ARGV[3] for order ARGV[4] (read from a master a
// failover has replaced since, it may not have reached the new one, whose
// clock may have given its id to another event). Replies 1 when it wrote,
// 0 when the event is not there.
var syncScript = redis.NewScript(`
local e = redis.call('XRANGE', KEYS[2], ARGV[2], ARGV[2])
if #e == 0 then return 0 end
local f, t, o = e[1][2], nil, nil
for i = 1, #f, 2 do
  if f[i] == 'type' then t = f[i + 1] elseif f[i] == 'order_no' then o = f[i + 1] end
end
if t ~= ARGV[3] or o ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000)
return 1
`)

// EventsOnReplicas returns nil once the events of p (a ReadEvents page)
// are on the replicas Options.Durable asks for: ErrNotDurable when the
// replicas did not acknowledge them in time, or the master no longer holds
// them (a failover now, or since the read, could take back their changes,
// and the orders' redone changes would come with events of other ids); a
// TooFewReplicasError when the master has fewer replicas than the floor.
// For each shard with events on the page it makes a durable write after
// them, on the master that holds the last of them (the replication stream
// is ordered, so acknowledging the write acknowledges them); none when no
// replica is to be waited for.
func (l *Ledger) EventsOnReplicas(ctx context.Context, p EventsPage) error {
	want, err := l.want(ctx, true)
	if err != nil || want == 0 && !l.verifyRan() {
		// (With no replica to wait for, the events read are judged by
		// the server they were read on all the same once a master was
		// seen with replicas: after a failover that left the old master
		// reachable, they may have been read there.)
		return err
	}
	for i, m := range p.lastRead {
		if m.ID == "" || i >= len(l.shards) {
			continue
		}
		sh := l.shards[i]
		typ, _ := m.Values["type"].(string)
		no, _ := m.Values["order_no"].(string)
		v, acked, err := l.run(ctx, syncScript, true, []string{sh.events + ":sync", sh.events}, l.now().UnixMilli(), m.ID, typ, no)
		if err != nil {
			return fmt.Errorf("confirm events on the replicas: %w", err)
		}
		if n, _ := v.(int64); n != 1 || !acked {
			return ErrNotDurable
		}
	}
	return nil
}

// Events is ReadEvents' events alone.
func (l *Ledger) Events(ctx context.Context, after string, limit int64) ([]Event, error) {
	p, err := l.ReadEvents(ctx, after, limit)
	return p.Events, err
}
