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
// them in one Redis Cluster slot.
const keyPrefix = "orderworker:{guard}:"

// rateKey is the Redis key of the provider's limit.
func rateKey(provider string) string { return keyPrefix + "rate:" + provider }

// limit is a Limit ready for the script.
type limit struct {
	redisKey string
	interval string // emission interval, microseconds
	burst    string
}

func compileLimits(in map[string]Limit) map[string]limit {
	out := make(map[string]limit, len(in))
	for p, l := range in {
		if !(l.Rate > 0) || math.IsInf(l.Rate, 1) {
			continue
		}
		interval := max(int64(math.Round(1e6/l.Rate)), 1)
		out[p] = limit{
			redisKey: rateKey(p),
			interval: strconv.FormatInt(interval, 10),
			burst:    strconv.Itoa(max(l.Burst, 1)),
		}
	}
	return out
}

// gcraScript applies the generic cell rate algorithm to KEYS[1], which
// holds the theoretical arrival time (TAT) in microseconds, and reserves a
// place for one request.
//
// ARGV[1] is the time in microseconds, or "" to read Redis's clock.
// ARGV[2] and ARGV[3] are the emission interval (microseconds) and the
// burst. ARGV[4] is how long, in microseconds, the caller is willing to
// wait.
//
// The request may go once the TAT it would leave is at most burst
// intervals ahead of the time; wait is how long until then (0: now). When
// wait is at most ARGV[4] the place is reserved (the TAT advances by one
// interval) and the script returns {1, wait}: the caller sends after wait.
// Otherwise nothing changes and it returns {0, wait}.
var gcraScript = redis.NewScript(`
local now
if ARGV[1] == '' then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or now
if tat < now then tat = now end
local nxt = tat + interval
local wait = nxt - burst * interval - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[4]) then return {0, wait} end
local ttl = math.ceil((nxt - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', string.format('%.0f', ttl))
return {1, wait}
`)

// reserve asks the provider's limiter for a place for one request, willing
// to wait up to maxWait for it. It returns how long the request must wait
// (0: it may go now) and whether the place was reserved; when it was not,
// wait is how long until one would be free (nothing was counted). A
// provider without a limit always has a place at once, with no Redis round
// trip.
func (g *Guard) reserve(ctx context.Context, provider string, maxWait time.Duration) (wait time.Duration, ok bool, err error) {
	l, limited := g.limits[provider]
	if !limited {
		return 0, true, nil
	}
	now := ""
	if g.scriptNow != nil {
		now = strconv.FormatInt(g.scriptNow().UnixMicro(), 10)
	}
	res, err := gcraScript.Run(ctx, g.rdb, []string{l.redisKey}, now, l.interval, l.burst, strconv.FormatInt(max(maxWait.Microseconds(), 0), 10)).Int64Slice()
	if err != nil {
		return 0, false, fmt.Errorf("rate limit %s: %w", provider, err)
	}
	if len(res) != 2 {
		return 0, false, fmt.Errorf("rate limit %s: unexpected reply %v", provider, res)
	}
	return time.Duration(res[1]) * time.Microsecond, res[0] == 1, nil
}
