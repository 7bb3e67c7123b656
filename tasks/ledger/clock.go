package ledger

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
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
}

type clockReading struct {
	redis time.Time // Redis's answer to TIME
	got   time.Time // when it arrived, with the monotonic reading
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
