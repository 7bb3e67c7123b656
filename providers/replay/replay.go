// Package replay is the sandboxes' replay guard: it remembers the nonces
// of signed requests for as long as a provider refuses one seen again.
package replay

import (
	"sync"
	"time"
)

// Guard remembers keys (an access key and a nonce) for a window. The
// zero value is ready to use; it is safe for concurrent use.
type Guard struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	swept time.Time
}

// Seen reports whether key was seen at most window before now, and
// remembers it as seen at now when it was not. Keys older than window are
// dropped together, at most once a quarter of the window, so that a
// request costs the same however many came before it.
func (g *Guard) Seen(key string, now time.Time, window time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[string]time.Time{}
	}
	if now.Sub(g.swept) >= window/4 {
		for k, at := range g.seen {
			if now.Sub(at) > window {
				delete(g.seen, k)
			}
		}
		g.swept = now
	}
	if at, ok := g.seen[key]; ok && now.Sub(at) <= window {
		return true
	}
	g.seen[key] = now
	return false
}

// Len is how many keys the guard holds.
func (g *Guard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}
