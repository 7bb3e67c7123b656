package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// A ledger of more than one shard spreads its orders over several hash
// tags, so that on Redis Cluster they spread over several masters. An
// order's shard is a fixed function of (provider, order_no) and the shard
// count; every key of an order (record, history) and every index entry
// for it lives in its shard, so each script of the order path still
// touches one slot. What a shard holds:
//
//   - the records and histories of its orders;
//   - its state indexes (orders of a provider in a state);
//   - its events stream: the outcome events of its orders, appended by the
//     same scripts that change their state;
//   - the owner index entries of the provider order ids that hash to it
//     (with one shard, checked in the settle script; with more, reserved
//     in a round trip before it).
//
// Ledger-wide keys (the shard count, the data key id, locks) keep the
// hash tag {ledger}. With one shard the layout is exactly the one-slot
// layout of earlier versions: the shard's tag is {ledger} too.
//
// The shard count is recorded in the ledger by the first process that
// writes to it; a process configured with another count refuses to write
// (ShardsMismatchError), since it would look for orders where they are
// not. Changing it needs an empty ledger.

// slotCount is Redis Cluster's number of hash slots.
const slotCount = 16384

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster maps keys to slots
// with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// Slot is the Redis Cluster hash slot of a hash tag's content (or of a
// key without a tag).
func Slot(tag string) int { return int(crc16(tag)) % slotCount }

// ShardTag is the hash tag content of shard i of n, made from base: base
// itself when n is 1, else base-i with, where needed, a suffix (base-i.k)
// chosen so that its slot falls in the middle half of the i-th n-th of the
// slot range. A cluster whose masters hold equal contiguous slot ranges,
// as redis-cli --cluster create makes them, then serves shard i of n
// masters from the i-th master: n shards over n masters use them all. The
// tag is a pure function of (base, i, n): every process agrees on it.
func ShardTag(base string, i, n int) string {
	if n <= 1 {
		return base
	}
	w := slotCount / n
	lo, hi := i*w+w/4, i*w+w-w/4
	name := base + "-" + strconv.Itoa(i)
	if w < 4 {
		return name // more shards than a spread can be chosen for
	}
	for k := 0; ; k++ {
		tag := name
		if k > 0 {
			tag = name + "." + strconv.Itoa(k)
		}
		if s := Slot(tag); s >= lo && s < hi {
			return tag
		}
	}
}

// MaxShards bounds the shard count.
const MaxShards = 256

// shard is one shard's key prefix ("orderworker:{tag}:") and its index.
type shard struct {
	i      int
	prefix string
	events string
}

func newShards(n int) []shard {
	out := make([]shard, n)
	for i := range out {
		p := "orderworker:{" + ShardTag("ledger", i, n) + "}:"
		out[i] = shard{i: i, prefix: p, events: p + "events"}
	}
	return out
}

// fnv32a is FNV-1a over provider, a zero byte and order_no: the order's
// shard is fnv32a mod the shard count. It must never change.
func fnv32a(parts ...string) uint32 {
	h := uint32(2166136261)
	for j, p := range parts {
		if j > 0 {
			h *= 16777619 // the zero byte: h ^= 0
		}
		for i := 0; i < len(p); i++ {
			h ^= uint32(p[i])
			h *= 16777619
		}
	}
	return h
}

// Shards is the ledger's shard count.
func (l *Ledger) Shards() int { return len(l.shards) }

// WaitTimeout is how long one durable write waits for the replicas
// (Options.WaitTimeout).
func (l *Ledger) WaitTimeout() time.Duration { return l.opts.WaitTimeout }

// ShardOf is the index of the shard that holds the order.
func (l *Ledger) ShardOf(r Ref) int {
	if len(l.shards) == 1 {
		return 0
	}
	return int(fnv32a(r.Provider, r.OrderNo) % uint32(len(l.shards)))
}

func (l *Ledger) shardOf(r Ref) *shard { return &l.shards[l.ShardOf(r)] }

// ownerShard is the shard holding the owner entry of a provider order id.
func (l *Ledger) ownerShard(provider, id string) *shard {
	if len(l.shards) == 1 {
		return &l.shards[0]
	}
	return &l.shards[fnv32a(provider, id)%uint32(len(l.shards))]
}

func (s *shard) recordKey(r Ref) string { return s.prefix + "order:" + r.Provider + ":" + r.OrderNo }
func (s *shard) unclaimedKey(r Ref) string {
	return s.prefix + "unclaimed:" + r.Provider + ":" + r.OrderNo
}

func (s *shard) historyKey(r Ref) string { return s.prefix + "history:" + r.Provider + ":" + r.OrderNo }

// indexKey is the sorted set of a provider's orders in a state, scored by
// when they entered it (unix ms).
func (s *shard) indexKey(provider string, st State) string {
	return s.prefix + "state:" + provider + ":" + string(st)
}

// dedupeKey counts, per provider, the claims that found a record: field
// "<provider>:duplicate" (same params) and "<provider>:conflict" (others).
func (s *shard) dedupeKey() string { return s.prefix + "dedupe" }

// clockKey records a step forward of the shard's master's clock while it
// holds (see clockExpect): fields by (ms), until and at (the clock's ms).
func (s *shard) clockKey() string { return s.prefix + "clock" }

// ownerKey maps a provider's order ids to the order numbers that own them.
func (s *shard) ownerKey(provider string) string { return s.prefix + "owner:" + provider }

// ShardsMismatchError is the error of a write by a process configured
// with another shard count than the ledger's.
type ShardsMismatchError struct{ Ledger, Process int }

func (e *ShardsMismatchError) Error() string {
	if e.Ledger == 1 && e.Process > 1 {
		return fmt.Sprintf("the ledger is kept in 1 shard but this process is configured with %d: "+
			"set ORDERWORKER_LEDGER_SHARDS=1 (a ledger that holds orders keeps its shard count)", e.Process)
	}
	return fmt.Sprintf("the ledger is kept in %d shards but this process is configured with %d: "+
		"give every process ORDERWORKER_LEDGER_SHARDS=%d", e.Ledger, e.Process, e.Ledger)
}

// Format is the format of what this version writes to the ledger. It
// goes up when a version writes something an earlier one would misread
// in a way that risks an order (format 2: a provider order id that is
// unique only within a scope, an Aliyun device, is owned by scope and id;
// format 1, never recorded, owned it by the id alone, and an earlier
// worker beside a later one could give one id to two orders). The first
// write of each process records its format when it is the highest yet,
// and a process whose format is lower than the ledger's refuses to write
// (FormatError); a running worker checks again every few seconds and
// stops.
const Format = 2

// FormatError is the error of a write by a process whose Format is lower
// than the ledger's: a later version has written it.
type FormatError struct{ Ledger, Process int }

func (e *FormatError) Error() string {
	return fmt.Sprintf("this ledger was written by a later orderworker (ledger format %d; this version writes format %d, which would misread it): run the later version (see the README's \"Upgrading\")",
		e.Ledger, e.Process)
}

// layoutScript refuses a process of a format lower than the ledger's
// (answering the ledger's), records the shard count unless one is
// recorded, and answers the recorded one. A ledger written by a version
// that knew one shard only has no count: when any of its one-shard keys
// exist (the events stream, a provider's state indexes or owner index), it
// counts as 1. With the count matching, it records the process's format
// when it is higher than the ledger's, and where the ledger had one
// recorded (a process of that format may be running, and stops once it
// sees this one), the format's drain mark for ARGV[3] ms (see
// Ledger.FormatDrain).
//
// KEYS: the count, the format, its drain mark, then the one-shard keys to
// look for. ARGV: the count, the format, the drain in ms.
var layoutScript = redis.NewScript(`
local had = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local mine = tonumber(ARGV[2])
if had > mine then return {'', had} end
local cur = redis.call('GET', KEYS[1])
if not cur then
  if ARGV[1] ~= '1' and #KEYS > 3 and redis.call('EXISTS', unpack(KEYS, 4)) > 0 then
    cur = '1'
  else
    redis.call('SET', KEYS[1], ARGV[1])
    cur = ARGV[1]
  end
end
if cur == ARGV[1] and had < mine then
  redis.call('SET', KEYS[2], ARGV[2])
  if had > 0 and (tonumber(ARGV[3]) or 0) > 0 then
    redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
  end
end
return {cur, mine}
`)

// layoutRecheck is how long a CheckShards that succeeded holds: writes
// check again after it, so that a producer or an operator's tool of an
// earlier format stops writing within it once a later one is recorded
// (as a running worker's watch does), and a format that a failover lost
// is recorded again by the later version's next write.
const layoutRecheck = 10 * time.Second

// CheckShards compares the ledger's recorded shard count with this
// Ledger's, recording it when none is, and its format with Format,
// recording this one when it is higher. Writes call it, again once
// layoutRecheck has passed since it last succeeded; a mismatch is a
// *ShardsMismatchError, a later version's ledger a *FormatError.
func (l *Ledger) CheckShards(ctx context.Context) error {
	if at := l.layoutAt.Load(); at != 0 && time.Since(time.Unix(0, at)) < layoutRecheck {
		return nil
	}
	n := len(l.shards)
	keys := []string{metaPrefix + "shards", metaPrefix + "format", metaPrefix + "format:drain", metaPrefix + "events"}
	if n > 1 {
		one := &shard{prefix: metaPrefix}
		for _, p := range l.opts.Providers {
			for _, st := range States {
				keys = append(keys, one.indexKey(p, st))
			}
			keys = append(keys, one.ownerKey(p))
		}
	}
	v, err := layoutScript.Run(ctx, l.rdb, keys, n, l.format(), l.opts.FormatDrain.Milliseconds()).Slice()
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOREPLICAS") {
			// The check writes (it records the layout where none is): a
			// master short of replicas refuses it before any order.
			return fmt.Errorf("check the ledger's shard count and format: the Redis master refuses writes while fewer replicas are in sync than its min-replicas-to-write (a replica still syncing, or lagging): %w", err)
		}
		return fmt.Errorf("check the ledger's shard count and format: %w", err)
	}
	if len(v) != 2 {
		return fmt.Errorf("read the ledger's shard count: unexpected reply %v", v)
	}
	if cur, _ := v[0].(string); cur == "" {
		had, _ := v[1].(int64)
		return &FormatError{Ledger: int(had), Process: l.format()}
	} else if have, _ := strconv.Atoi(cur); have != n {
		return &ShardsMismatchError{Ledger: have, Process: n}
	}
	l.layoutAt.Store(time.Now().UnixNano())
	return nil
}

// format is the format this Ledger writes: Format, or Options.Format (tests).
func (l *Ledger) format() int {
	if l.opts.Format > 0 {
		return l.opts.Format
	}
	return Format
}

// FormatDrain is how long from now processes of an earlier format may
// still be running on the ledger: a process that recorded a higher format
// over theirs left that much (Options.FormatDrain) for them to see it and
// stop. Zero when there is none. A worker waits it out before it takes an
// order.
func (l *Ledger) FormatDrain(ctx context.Context) (time.Duration, error) {
	return l.drainLeft(ctx, metaPrefix+"format:drain")
}

// Watched is what a running worker checks every few seconds: the public id
// of the data key the ledger's params are sealed with ("" when none; see
// SealedWith), and a *FormatError when a later version has written the
// ledger. One read.
func (l *Ledger) Watched(ctx context.Context) (keyID string, err error) {
	v, err := l.rdb.MGet(ctx, metaPrefix+"datakey", metaPrefix+"format").Result()
	if err != nil {
		return "", err
	}
	if len(v) != 2 {
		return "", fmt.Errorf("read the ledger's data key: unexpected reply %v", v)
	}
	keyID, _ = v[0].(string)
	f, _ := v[1].(string)
	if had, _ := strconv.Atoi(f); had > l.format() {
		return keyID, &FormatError{Ledger: had, Process: l.format()}
	}
	return keyID, nil
}

// VerifyShards is CheckShards for readers: it compares the recorded
// shard count with this Ledger's and records nothing (a ledger with no
// count recorded passes). It stands for no write's check: an operator's
// tool that reads first still has its writes checked (their format too).
func (l *Ledger) VerifyShards(ctx context.Context) error {
	if l.shardsOK.Load() || l.layoutAt.Load() != 0 {
		return nil
	}
	v, err := l.rdb.Get(ctx, metaPrefix+"shards").Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the ledger's shard count: %w", err)
	}
	if have, _ := strconv.Atoi(v); have != len(l.shards) {
		return &ShardsMismatchError{Ledger: have, Process: len(l.shards)}
	}
	l.shardsOK.Store(true)
	return nil
}
