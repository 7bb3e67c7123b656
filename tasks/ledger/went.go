package ledger

import (
	"context"
	"sync"
	"time"
)

// A worker whose own configuration holds a provider's orders back (a key
// the provider refuses, a clock it refuses, no credentials) takes its
// share of the queue all the same: each order it takes waits a
// configuration wait (30 s) before any worker runs it again, though a
// worker configured right stands idle beside it. So every process whose
// calls of a provider go through says so in Redis, per provider and queue
// (MarkWent), and one holding that provider's orders of the queue for its
// own configuration hands them back after about a second while another's
// calls go through (WentElsewhere).

// wentTTL is how long a process's word that a provider's calls go through
// counts after it last said so.
const wentTTL = 30 * time.Second

// wentEvery is how often a process says so at most, per provider and
// queue.
const wentEvery = 5 * time.Second

// wentState is a Ledger's memory of MarkWent and WentElsewhere.
type wentState struct {
	mu     sync.Mutex
	marked map[string]time.Time // provider and queue → when this process last said so
	read   map[string]wentRead  // provider and queue → WentElsewhere's last reading
}

type wentRead struct {
	at        time.Time
	elsewhere bool
}

func (s *shard) wentKey(provider, queue string) string {
	return s.prefix + "went:" + provider + ":" + queue
}

// MarkWent records that a call of provider went through in this process,
// for an order of queue, at most once every wentEvery (a SET with an
// expiry; Redis errors are ignored: the word is a hint for other
// processes, nothing depends on it).
func (l *Ledger) MarkWent(ctx context.Context, provider, queue string) {
	k := provider + "\x00" + queue
	l.went.mu.Lock()
	now := time.Now()
	if last, ok := l.went.marked[k]; ok && now.Sub(last) < wentEvery {
		l.went.mu.Unlock()
		return
	}
	if l.went.marked == nil {
		l.went.marked = map[string]time.Time{}
	}
	l.went.marked[k] = now
	l.went.mu.Unlock()
	c, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = l.rdb.Set(c, l.shards[0].wentKey(provider, queue), l.pid, wentTTL).Err()
}

// WentElsewhere reports whether another process said in the last wentTTL
// that its calls of provider, for orders of queue, go through (MarkWent):
// a worker configured right takes that queue's orders. Read at most once
// a second per provider and queue (calls meanwhile, and while a read is
// under way, answer the last reading); false when Redis cannot be read.
func (l *Ledger) WentElsewhere(ctx context.Context, provider, queue string) bool {
	k := provider + "\x00" + queue
	l.went.mu.Lock()
	r, ok := l.went.read[k]
	if ok && time.Since(r.at) < time.Second {
		l.went.mu.Unlock()
		return r.elsewhere
	}
	if l.went.read == nil {
		l.went.read = map[string]wentRead{}
	}
	l.went.read[k] = wentRead{at: time.Now(), elsewhere: r.elsewhere}
	l.went.mu.Unlock()
	c, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	who, err := l.rdb.Get(c, l.shards[0].wentKey(provider, queue)).Result()
	elsewhere := err == nil && who != l.pid // redis.Nil (nobody said so) or unreadable: false
	l.went.mu.Lock()
	defer l.went.mu.Unlock()
	l.went.read[k] = wentRead{at: time.Now(), elsewhere: elsewhere}
	return elsewhere
}
