package webhook

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// clockRefresh is how often a redisClock measures its offset again.
const clockRefresh = 10 * time.Second

// redisClock tells time on Redis's clock: the local clock plus an offset
// measured with TIME (half the round trip taken off), measured again every
// clockRefresh. Leases, backoff, MAX_AGE and re-sends are written as times
// that every worker and enqueue compare, so they must all read one clock:
// a worker whose own clock ran behind would write leases already over for
// the others, and one running ahead would give up on events early. When
// TIME cannot be read, the last offset stands (the local clock at first).
type redisClock struct {
	rdb   redis.UniversalClient
	local func() time.Time // this host's clock: time.Now

	mu      sync.Mutex
	offset  time.Duration
	checked time.Time // local time of the last measure, zero before the first
}

func newRedisClock(rdb redis.UniversalClient) *redisClock {
	return &redisClock{rdb: rdb, local: time.Now}
}

// Now returns the time on Redis's clock.
func (c *redisClock) Now() time.Time {
	local := c.local()
	c.mu.Lock()
	stale := c.checked.IsZero() || local.Sub(c.checked) >= clockRefresh
	if stale {
		c.checked = local // one measure at a time; others use the old offset
	}
	off := c.offset
	c.mu.Unlock()
	if stale {
		if o, ok := c.measure(); ok {
			c.mu.Lock()
			c.offset = o
			c.mu.Unlock()
			off = o
		}
	}
	return c.local().Add(off)
}

func (c *redisClock) measure() (time.Duration, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	before := c.local()
	t, err := c.rdb.Time(ctx).Result()
	if err != nil {
		return 0, false
	}
	after := c.local()
	mid := before.Add(after.Sub(before) / 2)
	return t.Sub(mid), true
}
