package api

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// hub watches one events stream (one ledger shard's) for long polls: one
// XREAD BLOCK loop per process, while anyone waits, wakes the waiters of
// each order an event names.
type hub struct {
	rdb     redis.UniversalClient
	stream  ledger.EventStream
	closing <-chan struct{}

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
	running bool
	last    string // the last stream id seen
	// failing: the last read of the stream failed (waiters then read
	// their orders every fallbackPoll, not healthyPoll).
	failing atomic.Bool
}

// pollEvery is how often a waiter on this hub reads its order even
// without an event for it: often while the stream cannot be read (the
// watch did not start, watching is false, or the last read failed),
// seldom otherwise (an event wakes it).
func (h *hub) pollEvery(watching bool) time.Duration {
	if !watching || h.failing.Load() {
		return fallbackPoll
	}
	return healthyPoll
}

func newHub(rdb redis.UniversalClient, stream ledger.EventStream, closing <-chan struct{}) *hub {
	return &hub{rdb: rdb, stream: stream, closing: closing, waiters: map[string]map[chan struct{}]struct{}{}}
}

// watch returns a channel that receives when an event for the order key
// (provider/order_no) is appended after the call, and a func to stop
// watching. When the stream cannot be read, the channel stays quiet (the
// caller polls anyway).
func (h *hub) watch(ctx context.Context, key string) (<-chan struct{}, func(), bool) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if !h.running {
		h.mu.Unlock()
		// Where the stream ends now: events from here on wake the
		// waiter, events before are in the record it reads next.
		tail := "0-0"
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		msgs, err := h.rdb.XRevRangeN(c, h.stream.Key, "+", "-", 1).Result()
		cancel()
		if err != nil {
			return ch, func() {}, false
		}
		if len(msgs) > 0 {
			tail = msgs[0].ID
		}
		h.mu.Lock()
		if !h.running {
			h.running, h.last = true, tail
			go h.run()
		}
	}
	set := h.waiters[key]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		h.waiters[key] = set
	}
	set[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.waiters[key], ch)
		if len(h.waiters[key]) == 0 {
			delete(h.waiters, key)
		}
		h.mu.Unlock()
	}, true
}

// run reads the stream while anyone waits.
func (h *hub) run() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-h.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		h.mu.Lock()
		if len(h.waiters) == 0 || ctx.Err() != nil {
			h.running = false
			h.mu.Unlock()
			return
		}
		last := h.last
		h.mu.Unlock()
		res, err := h.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{h.stream.Key, last}, Count: 500, Block: time.Second}).Result()
		if errors.Is(err, redis.Nil) {
			h.failing.Store(false) // read, nothing new
		}
		if err != nil {
			if !errors.Is(err, redis.Nil) && ctx.Err() == nil {
				// Waiters poll meanwhile.
				h.failing.Store(true)
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
			continue
		}
		h.failing.Store(false)
		h.mu.Lock()
		for _, s := range res {
			for _, m := range s.Messages {
				h.last = m.ID
				e := h.stream.Event(m)
				for ch := range h.waiters[e.Data.Provider+"/"+e.Data.OrderNo] {
					select {
					case ch <- struct{}{}:
					default:
					}
				}
			}
		}
		h.mu.Unlock()
	}
}
