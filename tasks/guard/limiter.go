package guard

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyPrefix starts every key the guard writes. The {guard} hash tag puts
// them in one Redis Cluster slot, so one script may touch several.
const keyPrefix = "orderworker:{guard}:"

// rateKey is the Redis key of the limit on key ("provider[/account]").
func rateKey(key string) string { return keyPrefix + "rate:" + key }

// limit is a Limit ready for the script.
type limit struct {
	redisKey string
	interval string // emission interval, microseconds
	burst    string
}

func compileLimits(in map[string]Limit) map[string]limit {
	out := make(map[string]limit, len(in))
	for k, l := range in {
		if !(l.Rate > 0) || math.IsInf(l.Rate, 1) {
			continue
		}
		interval := max(int64(math.Round(1e6/l.Rate)), 1)
		out[k] = limit{
			redisKey: rateKey(k),
			interval: strconv.FormatInt(interval, 10),
			burst:    strconv.Itoa(max(l.Burst, 1)),
		}
	}
	return out
}

// gcraScript applies the generic cell rate algorithm to every key in KEYS
// at once. Each key holds its theoretical arrival time (TAT) in
// microseconds.
//
// ARGV[1] is the time in microseconds, or "" to read Redis's clock.
// ARGV[2i] and ARGV[2i+1] are KEYS[i]'s emission interval (microseconds)
// and burst.
//
// A call is admitted when, for every key, the TAT it would leave is at most
// burst intervals ahead of now; then every TAT advances by one interval and
// the script returns 0. Otherwise nothing changes and the script returns
// the microseconds until the call would be admitted.
var gcraScript = redis.NewScript(`
local now
if ARGV[1] == '' then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local wait = 0
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or '') or now
  if tat < now then tat = now end
  local nxt = tat + interval
  local w = nxt - burst * interval - now
  if w > wait then wait = w end
  tats[i] = nxt
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  local ttl = math.ceil((tats[i] - now) / 1000) + 1
  redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', string.format('%.0f', ttl))
end
return 0
`)

// limit asks the limiter whether a call under key may go now.
func (g *Guard) limit(ctx context.Context, key string) (time.Duration, error) {
	own, ownOK := g.limits[key]
	prov, provOK := limit{}, false
	if p := providerOf(key); p != key {
		prov, provOK = g.limits[p]
	}
	if !ownOK && !provOK {
		return 0, nil
	}
	keys := make([]string, 0, 2)
	args := make([]any, 1, 5)
	if g.scriptNow != nil {
		args[0] = strconv.FormatInt(g.scriptNow().UnixMicro(), 10)
	} else {
		args[0] = ""
	}
	for _, l := range []struct {
		limit
		ok bool
	}{{own, ownOK}, {prov, provOK}} {
		if l.ok {
			keys = append(keys, l.redisKey)
			args = append(args, l.interval, l.burst)
		}
	}
	us, err := gcraScript.Run(ctx, g.rdb, keys, args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("rate limit %s: %w", key, err)
	}
	return time.Duration(us) * time.Microsecond, nil
}
