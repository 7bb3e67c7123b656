package ledger

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Get returns the order's record with its attempt history, or nil when
// there is none.
func (l *Ledger) Get(ctx context.Context, ref Ref) (*Record, error) {
	sh := l.shardOf(ref)
	pipe := l.rdb.Pipeline()
	hc := pipe.HGetAll(ctx, sh.recordKey(ref))
	lc := pipe.LRange(ctx, sh.historyKey(ref), 0, -1)
	// Redis's time, from the record's own master (a keyless TIME would
	// go to any master of a cluster).
	tc := pipe.Eval(ctx, "return redis.call('TIME')", []string{sh.recordKey(ref)})
	// And the clock hold in force, if any (see clockExpect).
	cc := pipe.HMGet(ctx, sh.clockKey(), "by", "until")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read order: %w", err)
	}
	h := hc.Val()
	if len(h) == 0 {
		return nil, nil
	}
	r := decode(h)
	if t, ok := redisTimeOf(tc.Val()); ok {
		r.ReadAt = t
		if v := cc.Val(); len(v) == 2 {
			by, _ := v[0].(string)
			until, _ := v[1].(string)
			if u := msTime(until); u.After(t) {
				r.ClockHold = msDuration(by)
			}
		}
	}
	for _, s := range lc.Val() {
		var a Attempt
		if json.Unmarshal([]byte(s), &a) == nil {
			r.History = append(r.History, a)
		}
	}
	return r, nil
}

// recordSyncScript writes the record's state again (the same value) when
// the record is as read (ARGV[1] its state, ARGV[2] its updated time), so
// that the WAIT after it covers the record as read (the replication
// stream is ordered): 1, or 0 when it changed or is gone.
var recordSyncScript = redis.NewScript(`
local s = redis.call('HMGET', KEYS[1], 'state', 'updated')
if not s[1] or s[1] ~= ARGV[1] or (s[2] or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
return 1
`)

// ErrRecordChanged is RecordOnReplicas' error when the record is no longer
// as read: read it again.
var ErrRecordChanged = errors.New("the order's record changed since it was read")

// RecordOnReplicas confirms that the replicas hold rec as Get read it (so
// that a failover cannot take it back): nil when they do or there are no
// replicas to wait for (durable writes off, a master without replicas
// and never seen with any); ErrNotDurable when they did not acknowledge
// it in time; a TooFewReplicasError when the master has fewer replicas
// than the floor; ErrRecordChanged when the record changed since. Get
// reads what the master holds, which its replicas may not yet: an
// outcome told to a producer from it alone could be taken back.
func (l *Ledger) RecordOnReplicas(ctx context.Context, rec *Record) error {
	want, err := l.want(ctx, true)
	if err != nil || want == 0 && !l.verifyRan() {
		return err
	}
	updated := ""
	if !rec.UpdatedAt.IsZero() {
		updated = strconv.FormatInt(rec.UpdatedAt.UnixMilli(), 10)
	}
	ref := rec.Ref()
	v, acked, err := l.run(ctx, recordSyncScript, true, []string{l.shardOf(ref).recordKey(ref)}, string(rec.State), updated)
	if err != nil {
		return fmt.Errorf("confirm the order on the replicas: %w", err)
	}
	if n, _ := v.(int64); n != 1 {
		return ErrRecordChanged
	}
	if !acked {
		return ErrNotDurable
	}
	return nil
}

// Owner returns the order number that owns a provider order id, "" when
// none does.
func (l *Ledger) Owner(ctx context.Context, provider, providerOrderID string) (string, error) {
	return l.OwnerIn(ctx, provider, "", providerOrderID)
}

// OwnerIn is Owner for a provider whose ids are unique only within scope
// (Transition.WithIDScope): the order that owns id in scope.
func (l *Ledger) OwnerIn(ctx context.Context, provider, scope, providerOrderID string) (string, error) {
	f := OwnerField(scope, providerOrderID)
	s, err := l.rdb.HGet(ctx, l.ownerShard(provider, f).ownerKey(provider), f).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return s, err
}

// InState lists up to limit orders of provider in state s that entered it
// before the given time, oldest first.
func (l *Ledger) InState(ctx context.Context, provider string, s State, before time.Time, limit int64) ([]Ref, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.ZSliceCmd, len(l.shards))
	for i := range l.shards {
		cmds[i] = pipe.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: l.shards[i].indexKey(provider, s), Start: "-inf", Stop: strconv.FormatInt(before.UnixMilli(), 10),
			ByScore: true, Count: limit,
		})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var all []redis.Z
	for _, c := range cmds {
		all = append(all, c.Val()...)
	}
	if len(cmds) > 1 {
		slices.SortStableFunc(all, func(a, b redis.Z) int { return cmp.Compare(a.Score, b.Score) })
	}
	if limit > 0 && int64(len(all)) > limit {
		all = all[:limit]
	}
	out := make([]Ref, len(all))
	for i, z := range all {
		out[i] = Ref{Provider: provider, OrderNo: z.Member.(string)}
	}
	return out, nil
}

// InStatePage lists up to limit orders of provider in state s that entered
// it before the given time, in one shard (0 ≤ shard < Shards()), skipping
// the offset oldest: a page of a walk through every such order.
func (l *Ledger) InStatePage(ctx context.Context, provider string, s State, before time.Time, shard int, offset, limit int64) ([]Ref, error) {
	if shard < 0 || shard >= len(l.shards) {
		return nil, fmt.Errorf("ledger: shard %d of %d", shard, len(l.shards))
	}
	members, err := l.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: l.shards[shard].indexKey(provider, s), Start: "-inf", Stop: strconv.FormatInt(before.UnixMilli(), 10),
		ByScore: true, Offset: offset, Count: limit,
	}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]Ref, len(members))
	for i, m := range members {
		out[i] = Ref{Provider: provider, OrderNo: m}
	}
	return out, nil
}

// DedupeCounts returns, for each provider, how many claims found a record
// already there since the ledger began: "duplicate" (same params, the
// existing order answered) and "conflict" (other params, refused). Every
// producer's claims count, whatever process made them.
func (l *Ledger) DedupeCounts(ctx context.Context) (map[string]map[string]int64, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(l.shards))
	for i := range l.shards {
		cmds[i] = pipe.HGetAll(ctx, l.shards[i].dedupeKey())
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := map[string]map[string]int64{}
	for _, c := range cmds {
		for field, v := range c.Val() {
			i := strings.LastIndexByte(field, ':')
			n, err := strconv.ParseInt(v, 10, 64)
			if i <= 0 || err != nil {
				continue
			}
			p, kind := field[:i], field[i+1:]
			if out[p] == nil {
				out[p] = map[string]int64{}
			}
			out[p][kind] += n
		}
	}
	return out, nil
}

// CountRepeats adds to the dedupe counts (DedupeCounts) orders a producer
// answered without a claim: an order given again in one batch, answered
// from its first occurrence, duplicate (conflict false) or conflict. One
// round trip; the counts are a metric's, so a failure only loses them.
func (l *Ledger) CountRepeats(ctx context.Context, refs []Ref, conflict []bool) error {
	if len(refs) == 0 {
		return nil
	}
	pipe := l.rdb.Pipeline()
	for i, r := range refs {
		kind := ":duplicate"
		if conflict[i] {
			kind = ":conflict"
		}
		pipe.HIncrBy(ctx, l.shardOf(r).dedupeKey(), r.Provider+kind, 1)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// StateStats is the number of orders in a state and when the oldest
// entered it.
type StateStats struct {
	Count  int64
	Oldest time.Time // zero when Count is 0
}

// Stats returns, for each provider and state, the count and oldest entry.
func (l *Ledger) Stats(ctx context.Context, providerNames []string) (map[string]map[State]StateStats, error) {
	pipe := l.rdb.Pipeline()
	type q struct {
		p      string
		s      State
		card   *redis.IntCmd
		oldest *redis.ZSliceCmd
	}
	var qs []q
	for _, p := range providerNames {
		for _, s := range States {
			for i := range l.shards {
				k := l.shards[i].indexKey(p, s)
				qs = append(qs, q{p, s, pipe.ZCard(ctx, k), pipe.ZRangeWithScores(ctx, k, 0, 0)})
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := map[string]map[State]StateStats{}
	for _, x := range qs {
		if out[x.p] == nil {
			out[x.p] = map[State]StateStats{}
		}
		st := out[x.p][x.s]
		st.Count += x.card.Val()
		if z := x.oldest.Val(); len(z) > 0 {
			if o := time.UnixMilli(int64(z[0].Score)); st.Oldest.IsZero() || o.Before(st.Oldest) {
				st.Oldest = o
			}
		}
		out[x.p][x.s] = st
	}
	return out, nil
}

// Why a pending order waits (PendingStats): nothing but the provider
// (polled until paid, errored at the pending window), or for a person.
const (
	// PendingPlain: polled until paid or the pending window ends.
	PendingPlain = "plain"
	// PendingMatched: found by matching the provider's orders
	// (Record.Matched); where the worker would pay it but may not, held
	// for a person to confirm and pay it.
	PendingMatched = "matched"
	// PendingPaySent: the worker paid it (Record.PaySentAt) and the pay may
	// have gone through: not errored as unpaid until a check says unpaid.
	PendingPaySent = "pay_sent"
)

// PendingKinds are the kinds PendingStats tells apart.
var PendingKinds = []string{PendingPlain, PendingMatched, PendingPaySent}

// PendingStats returns, for each provider and kind (PendingKinds), the
// pending orders among the limit (at least 1) oldest of each shard and when the oldest
// became pending: alerts on orders stuck for want of the provider are not
// masked by orders that wait for a person. Beyond the limit, orders are
// not read: where a shard holds more and none of the limit read is of a
// kind, that kind's oldest is taken to be no younger than the last one
// read (an age too high, never too low).
func (l *Ledger) PendingStats(ctx context.Context, providerNames []string, limit int) (map[string]map[string]StateStats, error) {
	limit = max(limit, 1)
	type idx struct {
		p    string
		sh   *shard
		card *redis.IntCmd
		rng  *redis.ZSliceCmd
	}
	pipe := l.rdb.Pipeline()
	var idxs []idx
	for _, p := range providerNames {
		for i := range l.shards {
			sh := &l.shards[i]
			k := sh.indexKey(p, StatePending)
			idxs = append(idxs, idx{p, sh, pipe.ZCard(ctx, k), pipe.ZRangeWithScores(ctx, k, 0, int64(limit-1))})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	type rec struct {
		x   int // in idxs
		at  time.Time
		cmd *redis.SliceCmd
	}
	var recs []rec
	pipe = l.rdb.Pipeline()
	for i, x := range idxs {
		for _, z := range x.rng.Val() {
			no, _ := z.Member.(string)
			recs = append(recs, rec{i, time.UnixMilli(int64(z.Score)), pipe.HMGet(ctx, x.sh.recordKey(Ref{Provider: x.p, OrderNo: no}), "state", "matched", "pay_sent")})
		}
	}
	if len(recs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
	}
	out := map[string]map[string]StateStats{}
	for _, p := range providerNames {
		out[p] = map[string]StateStats{}
	}
	older := func(p, kind string, at time.Time, count int64) {
		st := out[p][kind]
		st.Count += count
		if st.Oldest.IsZero() || at.Before(st.Oldest) {
			st.Oldest = at
		}
		out[p][kind] = st
	}
	seen := make([]map[string]bool, len(idxs)) // kinds read, per shard's index
	for _, r := range recs {
		v := r.cmd.Val()
		if len(v) < 3 || v[0] != string(StatePending) {
			continue // moved on since the index was read
		}
		// A pay the worker sent first: a matched order it paid is no
		// longer one to pay by hand.
		kind := PendingPlain
		switch {
		case v[2] != nil && v[2] != "":
			kind = PendingPaySent
		case v[1] == "1":
			kind = PendingMatched
		}
		older(idxs[r.x].p, kind, r.at, 1)
		if seen[r.x] == nil {
			seen[r.x] = map[string]bool{}
		}
		seen[r.x][kind] = true
	}
	for i, x := range idxs {
		z := x.rng.Val()
		if x.card.Val() <= int64(len(z)) || len(z) == 0 {
			continue
		}
		last := time.UnixMilli(int64(z[len(z)-1].Score))
		for _, kind := range PendingKinds {
			if !seen[i][kind] {
				// None of this kind among those read: beyond them there
				// may be one, no older than the last one read.
				older(x.p, kind, last, 0)
			}
		}
	}
	return out, nil
}

var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// TryLock takes the named ledger-wide lock (for example the reconciler's
// sweep) for ttl. It returns a release function, or ok=false when another
// holder has it.
func (l *Ledger) TryLock(ctx context.Context, name, token string, ttl time.Duration) (release func(), ok bool, err error) {
	key := lockKey(name)
	ok, err = l.rdb.SetNX(ctx, key, token, ttl).Result()
	if err != nil {
		return nil, false, err
	}
	if !ok {
		// A client retry of a SET whose reply was lost finds our own lock.
		cur, err := l.rdb.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, false, err
		}
		if cur != token {
			return nil, false, nil
		}
	}
	return func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = unlockScript.Run(c, l.rdb, []string{key}, token).Err()
	}, true, nil
}

// SealedWith returns the public id of the data key the ledger's params are
// sealed with ("" when no process has sealed any).
func (l *Ledger) SealedWith(ctx context.Context) (string, error) {
	id, err := l.rdb.Get(ctx, metaPrefix+"datakey").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return id, err
}

// KeylessDrain is how long from now workers that ran without a data key
// may still be running on the ledger: a worker that recorded its key over
// their keyless mark left that much (Options.KeylessDrain) for them to
// see the key and stop (a running worker whose ledger gets a key it does
// not have stops: see the worker), their orders in flight drained. Zero
// when there is none. A worker with the key waits it out before it takes
// an order: until then a keyless worker's lookup would not count the
// rivals it marks (see Ledger.RivalKey).
func (l *Ledger) KeylessDrain(ctx context.Context) (time.Duration, error) {
	return l.drainLeft(ctx, metaPrefix+"datakey:drain")
}

// drainLeft is the time left on the drain mark at key: zero when there is
// none.
func (l *Ledger) drainLeft(ctx context.Context, key string) (time.Duration, error) {
	d, err := l.rdb.PTTL(ctx, key).Result()
	if err != nil || d < 0 {
		return 0, err
	}
	return d, nil
}

// DataKeyMismatchError is CheckDataKey's error when the ledger's params
// were sealed with another data key (Want), or with one where this process
// has none (Have ""); and CheckProducerKey's when the ledger's workers run
// without a key (Want "").
type DataKeyMismatchError struct{ Want, Have string }

func (e *DataKeyMismatchError) Error() string {
	switch {
	case e.Want == "":
		return fmt.Sprintf("this ledger's workers run without a data key, so they could not open params sealed with this process's (key id %s): give the workers ORDERWORKER_DATA_KEY first (a worker started with it records it), then the producers", e.Have)
	case e.Have == "":
		return fmt.Sprintf("this ledger's order params are sealed with data key id %s, but this process has no data key: give it the producers' ORDERWORKER_DATA_KEY", e.Want)
	}
	return fmt.Sprintf("this ledger's order params are sealed with data key id %s, but this process has key id %s: give it the producers' ORDERWORKER_DATA_KEY", e.Want, e.Have)
}

// dataKeyScript records a data key's id (ARGV[1]) for the ledger
// (KEYS[1]), or, for a worker without a key (ARGV[1] ""), that the
// ledger's workers run without one (KEYS[2]), and replies what the ledger
// holds: the recorded id, "" when there is none, with 'keyless' after it
// when its workers run without a key. A worker with a key records it
// unless another is recorded, and clears the keyless mark (the workers
// are being given the key), leaving in its place, for ARGV[3] ms when
// given, the drain mark (KEYS[3]: see KeylessDrain); a producer's (ARGV[2]
// '1') records it only on a ledger that holds neither. The keyless mark
// is a key of its own, which a version that knows nothing of it leaves
// alone.
var dataKeyScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then return {cur} end
if ARGV[1] == '' then
  redis.call('SET', KEYS[2], '1')
  return {'', 'keyless'}
end
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return {'', 'keyless'} end
redis.call('SET', KEYS[1], ARGV[1])
if redis.call('DEL', KEYS[2]) == 1 and (tonumber(ARGV[3] or '') or 0) > 0 then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
end
return {ARGV[1]}
`)

// CheckDataKey is a worker's check of its data key's public id (id; ""
// for none) against the one recorded in the ledger by the first process
// that sealed params, recording it when none is; a worker without a key
// records that the ledger's workers run without one (see
// CheckProducerKey). A mismatch is a *DataKeyMismatchError: a ledger
// sealed with another key, or sealed at all where id is "" (a process
// without a key would leave sealed orders waiting).
func (l *Ledger) CheckDataKey(ctx context.Context, id string) error {
	return l.checkDataKey(ctx, id, false)
}

// CheckProducerKey is a producer's check of its data key's public id
// (not ""): as CheckDataKey, except that a ledger whose workers run
// without a key (recorded by CheckDataKey) refuses it, with a
// *DataKeyMismatchError whose Want is "": they could not open what it
// would seal, and the next of them to start would refuse to.
func (l *Ledger) CheckProducerKey(ctx context.Context, id string) error {
	return l.checkDataKey(ctx, id, true)
}

func (l *Ledger) checkDataKey(ctx context.Context, id string, producer bool) error {
	p := "0"
	if producer {
		p = "1"
	}
	v, err := dataKeyScript.Run(ctx, l.rdb, []string{metaPrefix + "datakey", metaPrefix + "datakey:keyless", metaPrefix + "datakey:drain"},
		id, p, l.opts.KeylessDrain.Milliseconds()).Result()
	if err != nil {
		return err
	}
	res, _ := v.([]any)
	if len(res) == 0 {
		return fmt.Errorf("check data key: unexpected reply %v", v)
	}
	cur, _ := res[0].(string)
	if cur != id {
		return &DataKeyMismatchError{Want: cur, Have: id}
	}
	return nil
}
