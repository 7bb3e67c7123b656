package ledger

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// A worker whose own configuration holds a provider's orders back (a key
// the provider refuses, a clock it refuses, no credentials) takes its
// share of the queue all the same: each order it takes waits a
// configuration wait (30 s) before any worker runs it again, though a
// worker configured right stands idle beside it. So every process whose
// calls of a provider go through says so in Redis (MarkWent), and one
// holding that provider's orders for its own configuration hands them
// back at once while another's calls go through (WentElsewhere).

// wentTTL is how long a process's word that a provider's calls go through
// counts after it last said so.
const wentTTL = 30 * time.Second

// wentEvery is how often a process says so at most, per provider.
const wentEvery = 5 * time.Second

// wentState is a Ledger's memory of MarkWent and WentElsewhere.
type wentState struct {
	mu     sync.Mutex
	marked map[string]time.Time // provider → when this process last said so
	read   map[string]wentRead  // provider → WentElsewhere's last reading
}

type wentRead struct {
	at        time.Time
	elsewhere bool
}

func (s *shard) wentKey(provider string) string { return s.prefix + "went:" + provider }

// MarkWent records that a call of provider went through in this process,
// at most once every wentEvery (a SET with an expiry; Redis errors are
// ignored: the word is a hint for other processes, nothing depends on it).
func (l *Ledger) MarkWent(ctx context.Context, provider string) {
	l.went.mu.Lock()
	now := time.Now()
	if last, ok := l.went.marked[provider]; ok && now.Sub(last) < wentEvery {
		l.went.mu.Unlock()
		return
	}
	if l.went.marked == nil {
		l.went.marked = map[string]time.Time{}
	}
	l.went.marked[provider] = now
	l.went.mu.Unlock()
	c, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = l.rdb.Set(c, l.shards[0].wentKey(provider), l.pid, wentTTL).Err()
}

// WentElsewhere reports whether another process said in the last wentTTL
// that its calls of provider go through (MarkWent): a worker configured
// right is running. Read at most once a second per provider; false when
// Redis cannot be read.
func (l *Ledger) WentElsewhere(ctx context.Context, provider string) bool {
	l.went.mu.Lock()
	if r, ok := l.went.read[provider]; ok && time.Since(r.at) < time.Second {
		l.went.mu.Unlock()
		return r.elsewhere
	}
	l.went.mu.Unlock()
	c, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	who, err := l.rdb.Get(c, l.shards[0].wentKey(provider)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false
	}
	elsewhere := who != "" && who != l.pid
	l.went.mu.Lock()
	defer l.went.mu.Unlock()
	if l.went.read == nil {
		l.went.read = map[string]wentRead{}
	}
	l.went.read[provider] = wentRead{at: time.Now(), elsewhere: elsewhere}
	return elsewhere
}
