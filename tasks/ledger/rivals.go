package ledger

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Rivals are orders that one listing match could take for each other.
//
// A provider without a client order number (providers.Matcher) identifies
// an order whose create's answer was lost by matching its listing: for
// one order, the orders of its device and commodity, or of its instance
// name, created since its first attempt. Two orders of this ledger with
// the same match key, both created (or being created) and neither with
// its provider order id recorded yet, are indistinguishable there: the
// order one of them made would match the other as well. Each such order
// is entered in its shard's rivals set of the key (MarkRival, before each
// create leaves); Settle takes it out once its record holds a provider
// order id or its outcome; the owner index then tells its order apart. A
// lookup counts the others (Rivals) after it read the listing, and,
// finding any, does not take a listed order for its own: a rival whose
// order was listed had marked itself before its create left, so before
// the listing was read, and still counts unless it has recorded its id,
// which the owner index shows.
//
// The key is hashed, keyed with Options.RivalSecret: instance names may be
// personal data. Rivals also counts the set of the unkeyed hash, under
// which versions before the keyed one marked their orders.

// RivalKey is the hash of a provider's match key that names its rivals
// set, as the record keeps it (Record.RivalKey): keyed with
// Options.RivalSecret when set.
func (l *Ledger) RivalKey(provider, key string) string {
	if len(l.opts.RivalSecret) == 0 {
		return legacyRivalKey(provider, key)
	}
	m := hmac.New(sha256.New, l.opts.RivalSecret)
	m.Write([]byte("orderworker rivals\x00" + provider + "\x00" + key))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// RivalsKeyed reports whether the ledger names rivals sets by a keyed
// hash (Options.RivalSecret).
func (l *Ledger) RivalsKeyed() bool { return len(l.opts.RivalSecret) > 0 }

// legacyRivalKey is the unkeyed hash of a match key, which versions
// before Options.RivalSecret marked rivals under (and which a ledger
// without it still uses).
func legacyRivalKey(provider, key string) string {
	sum := sha256.Sum256([]byte("orderworker rivals\x00" + provider + "\x00" + key))
	return hex.EncodeToString(sum[:16])
}

func (s *shard) rivalsKey(provider, hash string) string {
	return s.prefix + "rivals:" + provider + ":" + hash
}

// markRivalScript records the order's rival key and enters it in its
// rivals set, if the lease is still the caller's.
// KEYS: record, rivals set. ARGV: token, rival key, order_no.
var markRivalScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'rival_key', ARGV[2])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], 'NX', t[1], ARGV[3])
return 1
`)

// MarkRival enters the order, whose lease token holds, in the rivals set of
// its provider's match key (see Rivals), before a create of it leaves. It
// returns ErrLeaseLost when the lease is no longer token's, and
// ErrNotDurable when durable writes are on and the replicas did not
// acknowledge it: then the create must not leave.
func (l *Ledger) MarkRival(ctx context.Context, ref Ref, token, matchKey string) error {
	sh := l.shardOf(ref)
	hash := l.RivalKey(ref.Provider, matchKey)
	v, durable, err := l.run(ctx, markRivalScript, true, []string{sh.recordKey(ref), sh.rivalsKey(ref.Provider, hash)},
		token, hash, ref.OrderNo)
	if err != nil {
		return fmt.Errorf("mark the order's rivals: %w", err)
	}
	if n, _ := v.(int64); n != 1 {
		return ErrLeaseLost
	}
	if !durable {
		return ErrNotDurable
	}
	return nil
}

// maxRivalsRead bounds the members of one rivals set Rivals reads; any
// beyond it count as rivals unread.
const maxRivalsRead = 1000

// rivalsScript counts the members of a rivals set other than ARGV[2] that
// are rivals still: a record of the same rival key, not paid or errored,
// without a provider order id, with a create in flight or one that may
// have been received (or unknown). It removes the others (a member that is a rival
// again enters again before its next create).
// Of those, only one with a create in flight, or whose last create ended
// (or whose first attempt, or its record's creation, came) at or after
// ARGV[5] (ms; "" for any), counts: an order made before that
// is none a lookup bounded by it could take (see Ledger.Rivals).
// KEYS: rivals set. ARGV: the record keys' prefix (up to the order number),
// order_no, rival key, limit, since. Replies {rivals, members left unread}.
var rivalsScript = redis.NewScript(`
local m = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)
local since = tonumber(ARGV[5] or '')
local n = 0
for _, no in ipairs(m) do
  if no ~= ARGV[2] then
    local o = redis.call('HMGET', ARGV[1] .. no, 'state', 'provider_order_id', 'may_exist', 'inflight', 'rival_key',
      'last_create', 'first_attempt', 'created')
    if o[1] and o[1] ~= 'paid' and o[1] ~= 'errored' and (o[2] or '') == '' and o[5] == ARGV[3]
        and ((o[3] or '') == '1' or (o[4] or '') ~= '' or o[1] == 'unknown') then
      -- When its latest create may last have been acted on: the latest
      -- of these (a record recreated after Redis lost it counts from
      -- its recreation, its lost create may have left just before).
      local last = nil
      for i = 6, 8 do
        local v = tonumber(o[i] or '')
        if v and (last == nil or v > last) then last = v end
      end
      if since == nil or (o[4] or '') ~= '' or last == nil or last >= since then n = n + 1 end
    else
      redis.call('ZREM', KEYS[1], no)
    end
  end
end
local left = redis.call('ZCARD', KEYS[1]) - #m
if left < 0 then left = 0 end
return {n, left}
`)

// Rivals counts the orders other than ref whose match key is matchKey and
// that may have been created without their provider order id recorded
// (see MarkRival): orders a listing match cannot tell from ref's. Only
// those with a create in flight, or whose last create ended at or after
// since (on Redis's clock; zero: any), count: the caller's lookup rules out
// orders made before since (by their creation time, or as present in a
// snapshot taken a listing lag later), so a rival that waits for a person
// holds up only the orders whose lookups could take its order.
func (l *Ledger) Rivals(ctx context.Context, ref Ref, matchKey string, since time.Time) (int, error) {
	bound := ""
	if !since.IsZero() {
		bound = strconv.FormatInt(since.UnixMilli(), 10)
	}
	hashes := []string{l.RivalKey(ref.Provider, matchKey)}
	if legacy := legacyRivalKey(ref.Provider, matchKey); legacy != hashes[0] {
		// Orders an older version marked, under the unkeyed hash.
		hashes = append(hashes, legacy)
	}
	total := 0
	for _, hash := range hashes {
		for i := range l.shards {
			sh := &l.shards[i]
			v, err := rivalsScript.Run(ctx, l.rdb, []string{sh.rivalsKey(ref.Provider, hash)},
				sh.prefix+"order:"+ref.Provider+":", ref.OrderNo, hash, maxRivalsRead, bound).Slice()
			if err != nil {
				return 0, fmt.Errorf("count the order's rivals: %w", err)
			}
			for _, x := range v {
				n, _ := x.(int64)
				total += int(n)
			}
		}
	}
	return total, nil
}
