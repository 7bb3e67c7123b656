package ledger

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The times that bound an order's life are on Redis's clock, one clock for
// every process whatever their own say: leases, creates and pays (Begin,
// Settle), and, unless Options.Now is set, the record's creation (the
// claim), which the deadline counts from. A producer whose clock is off (a
// server set to local time, an RTC that drifted) moves neither.

// clockReread is how long one reading of Redis's clock serves NotAfterNow.
const clockReread = 30 * time.Second

// redisClock is what this process knows of Redis's clock: per shard (the
// master that holds its records), the time Redis answered to TIME and
// when, on this process's clock, the answer arrived.
type redisClock struct {
	wall     func() time.Time // this process's clock; nil: time.Now
	mu       sync.Mutex
	readings map[int]clockReading
	bases    map[int]clockBase // for finding steps (see clockExpect)
}

type clockReading struct {
	redis time.Time // Redis's answer to TIME
	got   time.Time // when it arrived, with the monotonic reading
}

// A step of Redis's clock. Leases, creates and pays are stamped on the
// clock of the master that holds the order and judged on the clock of the
// master that holds it when they are judged. Should that clock step
// forward by some J between the two (a failover to a master whose clock
// is ahead of the old one's; the clock of one master stepped), every time
// stamped before the step would look J older than it is: a lease would
// run out J early, and the listing lag after a create or a pay would be
// cut short by J, long enough, with J near the lag, for a lookup's
// not-found to be believed while the provider does not list an order it
// holds, and the order created twice.
//
// Each process keeps, per shard, its latest reading of the master's clock
// (what TIME answered, and when, on bootClock, the request was written;
// clockBase). Every Begin carries the latest the master's clock can read
// as it runs had it kept pace with bootClock since (clockExpect). A Begin
// whose master reads later than that by more than clockTolerance judges
// its own order as if the difference were held; the process then records
// the step in the shard (recordStep: the hold, its size, for as long as a
// time stamped before it may still be judged, BeginArgs.ClockHold past
// it), unless the reply took long enough to account for it (a request
// that reached Redis late, after a network stall or a stall of this
// process as it sent it, is not a step). While the hold lasts every
// Begin judges leases and pays on the clock less the hold, and the
// records Begin and Get return carry it (Record.ClockHold) for the
// listing lags the step is judged against. Only a process that read the
// master's clock before the step can find it: one started after a
// failover finds nothing, and until one that ran across it records the
// hold, judges on the stepped clock; and a clock that stepped back needs
// no hold (times stamped before look younger than they are: leases and
// lags last longer).

// clockTolerance is how much later than expected a master's clock may
// read before it counts as stepped: the time the request spends on the
// network and in Redis's queue, a stall of this process between writing
// the expectation and sending it, or of Redis before it runs the script
// (a fork on a large dataset), and the rate at which two clocks kept by
// NTP may drift apart (clockDrift of the time since the reading). A false
// step only holds leases and lags longer, but it is logged and alerted
// as a clock to fix; a step within the tolerance is a few seconds off a
// listing lag of minutes.
const (
	clockTolerance = 5 * time.Second
	clockDrift     = 1000 // 1/1000: 0.1 %, twice what NTP slews at most
)

// clockBase is a reading of a master's clock: what TIME answered, and
// when the request that read it was written, on bootClock. Redis read
// its clock after the write, so the clock can read at most base.redis +
// (then - base.sent) at any later time then, if it kept pace.
type clockBase struct {
	redis time.Time
	sent  time.Duration
}

// monoStart anchors monoClock.
var monoStart = time.Now()

// monoClock is this process's monotonic clock, as a duration.
func monoClock() time.Duration { return time.Since(monoStart) }

// based notes a reading of shard i's clock, r, read by a request written
// at sent (bootClock): the newest reading is the base of the next
// expectations (a clock that stepped back, say, is then expected as it
// reads now).
func (c *redisClock) based(i int, r time.Time, sent time.Duration) {
	if r.IsZero() || sent <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.bases[i]; ok && b.sent > sent {
		return
	}
	if c.bases == nil {
		c.bases = map[int]clockBase{}
	}
	c.bases[i] = clockBase{redis: r, sent: sent}
}

// expect is clockExpect's argument at now (bootClock) for shard i, and
// the reading it is based on (zero with "" when the process has no
// reading of the shard's clock).
func (c *redisClock) expect(i int, now time.Duration) (string, time.Time) {
	c.mu.Lock()
	b, ok := c.bases[i]
	c.mu.Unlock()
	if !ok {
		return "", time.Time{}
	}
	since := max(now-b.sent, 0)
	tol := clockTolerance + since/clockDrift
	return strconv.FormatInt(b.redis.Add(since).UnixMilli(), 10) + " " + strconv.FormatInt(tol.Milliseconds(), 10), b.redis
}

// clockExpect is Begin's argument for finding a step of the master's
// clock: 'expect tolerance' (ms), computed when go-redis writes the
// request (MarshalBinary), so that no time the call waited before it
// counts; sent keeps when, on bootClock, and base the reading it was
// based on, for what its reply brings (Ledger.begunAt).
type clockExpect struct {
	c     *redisClock
	shard int
	sent  atomic.Int64
	base  atomic.Int64 // ms
}

func (e *clockExpect) MarshalBinary() ([]byte, error) {
	now := bootClock()
	arg, base := e.c.expect(e.shard, now)
	e.sent.Store(int64(now))
	e.base.Store(base.UnixMilli())
	return []byte(arg), nil
}

// String keeps the argument readable where a command is printed.
func (e *clockExpect) String() string { return "clock-expect" }

// recordStepScript records a step forward of the master's clock (KEYS[1],
// the shard's clockKey): ARGV[1] ms, found by a Begin whose expectation
// was based on a reading of ARGV[2] (ms, on the clock it was read on),
// held ARGV[3] ms past its size. A step held already whose record is
// older than that reading is another step: the two add up. One recorded
// after the reading was taken (another process found the same step
// first, or this one, found by two Begins) is in the step found: the
// larger stands. The hold lasts at least as long as any call marked
// before the step may be judged by the listing lag of the process that
// marked it (the shard's epoch, KEYS[2]: u:<process>, when on the old
// clock that lag ends after its last mark; on this clock by later), plus
// ARGV[4] ms for how long such a call may stay open after its mark: a
// worker with a longer lag than the one that finds the step, whose
// orders' records keep that lag (mark_lag), would otherwise see it cut
// short by the step once the hold ran out. Replies the hold now recorded
// (ms).
var recordStepScript = redis.NewScript(`
local t = redis.call('TIME')
local snow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ck = redis.call('HMGET', KEYS[1], 'by', 'until', 'at')
local cur, u = 0, tonumber(ck[2] or '') or 0
if ck[1] and snow < u then cur = tonumber(ck[1]) or 0 else u = 0 end
local by = tonumber(ARGV[1])
if cur > 0 then
  if tonumber(ARGV[2]) >= (tonumber(ck[3] or '') or 0) then
    by = cur + by
  elseif by < cur then
    by = cur
  end
end
u = math.max(u, snow + by + tonumber(ARGV[3]))
local ep = redis.call('HGETALL', KEYS[2])
for i = 1, #ep, 2 do
  if string.sub(ep[i], 1, 2) == 'u:' then
    u = math.max(u, (tonumber(ep[i + 1]) or 0) + by + tonumber(ARGV[4]))
  end
end
redis.call('HSET', KEYS[1], 'by', string.format('%.0f', by), 'until', string.format('%.0f', u), 'at', string.format('%.0f', snow))
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', u))
return by
`)

// recordStep records a step forward of shard i's master's clock found by
// a Begin whose expectation was based on a reading base: held for hold
// past its size, and past the listing lag of every call marked before it
// plus tail (DefaultClockHold when not given): see recordStepScript. It
// returns the hold recorded.
func (l *Ledger) recordStep(ctx context.Context, i int, step time.Duration, base time.Time, hold, tail time.Duration) (time.Duration, error) {
	if hold <= 0 {
		hold = DefaultClockHold
	}
	if tail <= 0 {
		tail = DefaultClockHold
	}
	v, err := recordStepScript.Run(ctx, l.rdb, []string{l.shards[i].clockKey(), l.shards[i].epochKey()}, step.Milliseconds(), base.UnixMilli(), hold.Milliseconds(), tail.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("record a step of Redis's clock: %w", err)
	}
	return time.Duration(v) * time.Millisecond, nil
}

func (c *redisClock) now() time.Time {
	if c.wall != nil {
		return c.wall()
	}
	return time.Now()
}

// claimTime is a claim's time argument: "" for Redis's own (the script
// reads TIME), or Options.Now's.
func (l *Ledger) claimTime() string {
	if l.redisTime {
		return ""
	}
	return strconv.FormatInt(l.now().UnixMilli(), 10)
}

// NotAfterNow returns a time no later than Redis's clock now, on the master
// that holds ref's record: a bound, on the clock lookups are judged on, for
// anything that happens to the order from now on (a task's claim mark: no
// create leaves before it). It reads that master's TIME when its last
// reading of it is older than clockReread (one round trip every 30 s per
// process and shard) and otherwise adds the time elapsed since, on this
// process's monotonic clock, which errs early by up to a round trip. A
// failover to a master whose clock is behind the old one's can make it
// late by their difference until the next reading: a claim refuses a task
// whose mark is later than its master's clock (ErrMarkAhead) and drops the
// reading. With Options.Now set it returns Now's time.
func (l *Ledger) NotAfterNow(ctx context.Context, ref Ref) (time.Time, error) {
	if !l.redisTime {
		return l.now(), nil
	}
	sh := l.shardOf(ref)
	c := &l.clock
	c.mu.Lock()
	rd, ok := c.readings[sh.i]
	c.mu.Unlock()
	// Elapsed on the monotonic clock: a step of this process's wall clock
	// (NTP correcting it) moves nothing.
	if since := c.now().Sub(rd.got); ok && since >= 0 && since < clockReread {
		return rd.redis.Add(since), nil
	}
	sent := bootClock()
	v, err := l.rdb.Eval(ctx, "return redis.call('TIME')", []string{sh.recordKey(ref)}).Result()
	got := c.now()
	if err != nil {
		return time.Time{}, fmt.Errorf("read Redis's clock: %w", err)
	}
	r, ok := redisTimeOf(v)
	if !ok {
		return time.Time{}, fmt.Errorf("read Redis's clock: unexpected reply %v", v)
	}
	// Redis read its clock before its reply arrived: r plus the time
	// since the arrival is no later than Redis's clock.
	c.mu.Lock()
	if c.readings == nil {
		c.readings = map[int]clockReading{}
	}
	c.readings[sh.i] = clockReading{redis: r, got: got}
	c.mu.Unlock()
	c.based(sh.i, r, sent)
	return r, nil
}

// forget drops the reading of shard i's clock: the next NotAfterNow
// reads it again.
func (c *redisClock) forget(i int) {
	c.mu.Lock()
	delete(c.readings, i)
	c.mu.Unlock()
}

// redisTimeOf reads a TIME reply, to the millisecond.
func redisTimeOf(v any) (time.Time, bool) {
	t, ok := v.([]any)
	if !ok || len(t) != 2 {
		return time.Time{}, false
	}
	sec, _ := t[0].(string)
	usec, _ := t[1].(string)
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	u, err := strconv.ParseInt(usec, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(s*1000 + u/1000).UTC(), true
}
