package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// Orders a listing must show. A lookup that finds no order of ours in a
// provider's listing can believe the absence only if the listing is
// whole: one that leaves out orders (a filter whose default the documents
// do not give, unpaid orders not listed) would have the order created
// again. The orders this ledger's creates were answered with are the
// check: each is noted under its listing's scope (a provider's account
// and, for a listing per device, the device), and a lookup in that scope
// asks which of them were created in its window a listing lag ago or
// more, and holds the listing incomplete when it lacks any.

// maxListed is how many orders a scope keeps (the newest), and
// maxListedRead how many a lookup checks.
const (
	maxListed     = 64
	maxListedRead = 16
	listedTTL     = 7 * 24 * time.Hour
)

// listedKey names the scope's set of known orders (hashed: a scope may
// name a device).
func (l *Ledger) listedKey(provider, scope string) string {
	sum := sha256.Sum256([]byte("orderworker listed\x00" + provider + "\x00" + scope))
	return l.shards[0].prefix + "listed:" + provider + ":" + hex.EncodeToString(sum[:16])
}

// listedNamesKey names the scope's names of its known orders (NoteListed).
// Kept beside the set, whose members stay bare ids: a version that knows
// no names reads the set as it always did.
func listedNamesKey(key string) string { return key + ":names" }

// noteListedScript notes an order: KEYS the set and its names; ARGV the
// time (ms), the id, its name ("" for none), the most kept, the TTL (ms).
// The orders trimmed off the set lose their names too (and, past twice the
// most kept, so do those an older version trimmed, which knew no names).
var noteListedScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
local max = tonumber(ARGV[4])
if redis.call('ZCARD', KEYS[1]) > max then
  local old = redis.call('ZRANGE', KEYS[1], 0, -max - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -max - 1)
  if #old > 0 then redis.call('HDEL', KEYS[2], unpack(old)) end
end
if redis.call('HLEN', KEYS[2]) > 2 * max then
  -- Names of ids another version trimmed off the set without them.
  for _, id in ipairs(redis.call('HKEYS', KEYS[2])) do
    if not redis.call('ZSCORE', KEYS[1], id) then redis.call('HDEL', KEYS[2], id) end
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
return 1
`)

// NoteListed notes that the provider order id exists in scope, created
// at (on Redis's clock): a listing of that scope whose window holds at,
// read a listing lag after it or later, shows it (Listed). name, when not
// "", is what the listing shows it under as its create sent it, stored
// as given (the caller seals it where params are sealed).
func (l *Ledger) NoteListed(ctx context.Context, provider, scope, id, name string, at time.Time) error {
	if id == "" {
		return nil
	}
	key := l.listedKey(provider, scope)
	err := noteListedScript.Run(ctx, l.rdb, []string{key, listedNamesKey(key)},
		at.UnixMilli(), id, name, maxListed, listedTTL.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("note a listed order: %w", err)
	}
	return nil
}

// Noted is an order NoteListed noted.
type Noted struct {
	ID string
	// Name is the name noted with it; "" when none was.
	Name string
}

// listedScript reads the noted orders: KEYS the set and its names; ARGV
// from and to (ms), how many from each end. Replies the oldest and the
// newest (newest first), each a list of id and name pairs.
var listedScript = redis.NewScript(`
local function named(ids)
  local out = {}
  for _, id in ipairs(ids) do
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
  end
  return out
end
return {named(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])),
  named(redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[1], 'LIMIT', 0, ARGV[3]))}
`)

// Listed returns up to maxListedRead orders noted in scope (NoteListed)
// as created from from to to: the oldest half and the newest half, oldest
// first (a listing cut short loses its oldest orders, one that lags its
// newest), each once.
func (l *Ledger) Listed(ctx context.Context, provider, scope string, from, to time.Time) ([]Noted, error) {
	if to.Before(from) {
		return nil, nil
	}
	key := l.listedKey(provider, scope)
	v, err := listedScript.Run(ctx, l.rdb, []string{key, listedNamesKey(key)},
		from.UnixMilli(), to.UnixMilli(), maxListedRead/2).Slice()
	if err != nil {
		return nil, fmt.Errorf("read the listed orders: %w", err)
	}
	halves := make([][]Noted, 2)
	for h := range halves {
		if h >= len(v) {
			break
		}
		pairs, _ := v[h].([]any)
		for i := 0; i+1 < len(pairs); i += 2 {
			id, _ := pairs[i].(string)
			name, _ := pairs[i+1].(string)
			halves[h] = append(halves[h], Noted{ID: id, Name: name})
		}
	}
	out, newest := halves[0], halves[1]
	for i := len(newest) - 1; i >= 0; i-- {
		if !slices.ContainsFunc(out, func(n Noted) bool { return n.ID == newest[i].ID }) {
			out = append(out, newest[i])
		}
	}
	return out, nil
}
