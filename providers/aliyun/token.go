package aliyun

import (
	"context"
	"sync"
	"time"

	"github.com/orderworker/orderworker/providers"
)

// FetchFunc asks the provider for a new cloudToken. Every successful call
// invalidates the previous token of the same project, for everybody.
type FetchFunc func(ctx context.Context) (Token, error)

// TokenStore keeps the current cloudToken under a key (see TokenKey),
// shared by every client that uses the store. Implementations are safe for
// concurrent use and never log a token or put one in error text.
type TokenStore interface {
	// Get returns a token for key that is valid now. When there is none,
	// or the current one is due for refresh, one caller at a time calls
	// fetch and stores its result; the others wait for that token (or,
	// while the current one is still valid, keep using it) instead of
	// fetching their own.
	Get(ctx context.Context, key string, fetch FetchFunc) (providers.Secret, error)
	// Invalidate forgets token if it is still key's current token, so the
	// next Get fetches a new one. A token already replaced is left alone
	// (compare-and-delete): many callers refused with the same stale token
	// cause one refresh, not one each.
	Invalidate(ctx context.Context, key string, token providers.Secret) error
}

// DefaultRefreshBefore is how long before expiry a token is refreshed.
const DefaultRefreshBefore = 10 * time.Minute

// refreshAt is when a token issued at now and expiring at exp is due for
// refresh: the given duration before expiry, but never in the first half of
// its life (a short-lived token must not be refreshed on every call).
func refreshAt(now, exp time.Time, before time.Duration) time.Time {
	life := exp.Sub(now)
	return exp.Add(-min(before, life/2))
}

// MemoryTokenOptions configure a MemoryTokenStore; nil means defaults.
type MemoryTokenOptions struct {
	// RefreshBefore: refresh a token this long before it expires (at most
	// half its lifetime). Default DefaultRefreshBefore.
	RefreshBefore time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// MemoryTokenStore keeps tokens in this process. It suits one process
// holding the credentials (and tests); with several processes on the same
// credentials use a RedisTokenStore, or they will invalidate each other's
// tokens.
type MemoryTokenStore struct {
	before time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]*memEntry
}

type memEntry struct {
	tok       Token
	refreshAt time.Time
	fetching  chan struct{} // closed when the fetch in flight ends
}

var _ TokenStore = (*MemoryTokenStore)(nil)

// NewMemoryTokenStore returns an empty in-process store.
func NewMemoryTokenStore(opts *MemoryTokenOptions) *MemoryTokenStore {
	s := &MemoryTokenStore{before: DefaultRefreshBefore, now: time.Now, entries: map[string]*memEntry{}}
	if opts != nil {
		if opts.RefreshBefore > 0 {
			s.before = opts.RefreshBefore
		}
		if opts.Now != nil {
			s.now = opts.Now
		}
	}
	return s
}

// Get implements TokenStore.
func (s *MemoryTokenStore) Get(ctx context.Context, key string, fetch FetchFunc) (providers.Secret, error) {
	for {
		s.mu.Lock()
		e := s.entries[key]
		if e == nil {
			e = &memEntry{}
			s.entries[key] = e
		}
		now := s.now()
		old := e.tok.Value
		valid := old != "" && now.Before(e.tok.ExpiresAt)
		if valid && (now.Before(e.refreshAt) || e.fetching != nil) {
			s.mu.Unlock()
			return old, nil
		}
		if ch := e.fetching; ch != nil {
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		ch := make(chan struct{})
		e.fetching = ch
		s.mu.Unlock()

		tok, err := fetch(ctx)

		s.mu.Lock()
		e.fetching = nil
		close(ch)
		if err == nil && tok.Value != "" {
			e.tok = tok
			e.refreshAt = refreshAt(s.now(), tok.ExpiresAt, s.before)
		}
		s.mu.Unlock()
		switch {
		case err == nil && tok.Value != "":
			return tok.Value, nil
		case valid:
			return old, nil // the refresh failed; the current token still works
		case err == nil:
			return "", providers.Errorf(providers.Unavailable, "aliyun token", "empty token")
		}
		return "", err
	}
}

// Invalidate implements TokenStore.
func (s *MemoryTokenStore) Invalidate(_ context.Context, key string, token providers.Secret) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[key]; e != nil && token != "" && e.tok.Value == token {
		e.tok = Token{}
	}
	return nil
}
