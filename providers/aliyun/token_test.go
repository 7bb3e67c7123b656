package aliyun_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/aliyun/sandbox"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

var sandboxAuthError = sandbox.Reply{Code: 401, Message: "request auth error"}

// fetcher hands out tok-1, tok-2, … and counts calls.
type fetcher struct {
	calls atomic.Int64
	delay time.Duration
	ttl   time.Duration
	now   func() time.Time
	fail  atomic.Bool
}

func (f *fetcher) fetch(ctx context.Context) (aliyun.Token, error) {
	n := f.calls.Add(1)
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return aliyun.Token{}, ctx.Err()
		}
	}
	if f.fail.Load() {
		return aliyun.Token{}, providers.Errorf(providers.Unavailable, "fetch", "down")
	}
	now, ttl := time.Now, f.ttl
	if f.now != nil {
		now = f.now
	}
	if ttl == 0 {
		ttl = 2 * time.Hour
	}
	return aliyun.Token{Value: providers.Secret(fmt.Sprintf("tok-%d", n)), ExpiresAt: now().Add(ttl)}, nil
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// stores returns two stores of each kind that share state: two
// RedisTokenStores on separate connections to one real Redis (as two
// worker processes would be), and one MemoryTokenStore used twice.
func stores(t *testing.T, now func() time.Time) map[string][2]aliyun.TokenStore {
	srv := taskstest.StartRedis(t, nil)
	opts := &aliyun.RedisTokenOptions{Now: now, PollInterval: 5 * time.Millisecond}
	mem := aliyun.NewMemoryTokenStore(&aliyun.MemoryTokenOptions{Now: now})
	return map[string][2]aliyun.TokenStore{
		"redis":  {aliyun.NewRedisTokenStore(srv.Client(t), opts), aliyun.NewRedisTokenStore(srv.Client(t), opts)},
		"memory": {mem, mem},
	}
}

const key = "proj:abc"

func TestTokenStoreSharesAndInvalidatesByCAS(t *testing.T) {
	t.Parallel()
	for name, s := range stores(t, nil) {
		t.Run(name, func(t *testing.T) {
			c := ctx(t)
			f := &fetcher{}
			a, err := s[0].Get(c, key, f.fetch)
			if err != nil {
				t.Fatal(err)
			}
			b, err := s[1].Get(c, key, f.fetch)
			if err != nil || a != b || f.calls.Load() != 1 {
				t.Fatalf("second store got %v (%v) after %d fetches, want the same token from one fetch", b, err, f.calls.Load())
			}
			// Invalidating a token that is not current changes nothing.
			if err := s[1].Invalidate(c, key, "tok-old"); err != nil {
				t.Fatal(err)
			}
			if got, _ := s[0].Get(c, key, f.fetch); got != a || f.calls.Load() != 1 {
				t.Fatalf("a stale invalidation replaced the token")
			}
			// A stampede of invalidations of the current token: one
			// refresh, and everybody gets the new token.
			var wg sync.WaitGroup
			got := make([]providers.Secret, 16)
			for i := range got {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st := s[i%2]
					if err := st.Invalidate(c, key, a); err != nil {
						t.Error(err)
					}
					tok, err := st.Get(c, key, f.fetch)
					if err != nil {
						t.Error(err)
					}
					got[i] = tok
				}()
			}
			wg.Wait()
			if n := f.calls.Load(); n != 2 {
				t.Errorf("%d fetches after a stampede of invalidations, want 2", n)
			}
			for i, g := range got {
				if g != "tok-2" {
					t.Errorf("caller %d got %q, want tok-2", i, g.Reveal())
				}
			}
		})
	}
}

func TestTokenStoreConcurrentFirstFetchOnce(t *testing.T) {
	t.Parallel()
	for name, s := range stores(t, nil) {
		t.Run(name, func(t *testing.T) {
			c := ctx(t)
			f := &fetcher{delay: 100 * time.Millisecond}
			var wg sync.WaitGroup
			for i := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tok, err := s[i%2].Get(c, key, f.fetch)
					if err != nil || tok != "tok-1" {
						t.Errorf("Get = %q, %v; want tok-1", tok.Reveal(), err)
					}
				}()
			}
			wg.Wait()
			if n := f.calls.Load(); n != 1 {
				t.Errorf("%d fetches, want 1", n)
			}
		})
	}
}

func TestTokenStoreRefreshesBeforeExpiry(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	for name, s := range stores(t, clk.Now) {
		t.Run(name, func(t *testing.T) {
			c := ctx(t)
			f := &fetcher{now: clk.Now}
			if tok, _ := s[0].Get(c, key, f.fetch); tok != "tok-1" {
				t.Fatalf("first Get = %q", tok.Reveal())
			}
			clk.Add(time.Hour)
			if tok, _ := s[1].Get(c, key, f.fetch); tok != "tok-1" || f.calls.Load() != 1 {
				t.Fatalf("an hour in: %q after %d fetches, want tok-1 from 1", tok.Reveal(), f.calls.Load())
			}
			clk.Add(55 * time.Minute) // 5 minutes before expiry: due
			if tok, _ := s[1].Get(c, key, f.fetch); tok != "tok-2" {
				t.Fatalf("near expiry: %q, want a refreshed tok-2", tok.Reveal())
			}
			// A failed refresh keeps the still-valid token in use.
			clk.Add(2*time.Hour - 6*time.Minute)
			f.fail.Store(true)
			if tok, err := s[0].Get(c, key, f.fetch); tok != "tok-2" || err != nil {
				t.Fatalf("failed refresh: %q, %v; want tok-2 still", tok.Reveal(), err)
			}
			clk.Add(10 * time.Minute) // expired, and the provider is down
			if _, err := s[0].Get(c, key, f.fetch); providers.CodeOf(err) != providers.Unavailable {
				t.Fatalf("expired and refresh failing: %v, want the fetch error", err)
			}
		})
	}
}

// A process holding the lock dies: the others wait for the lock to
// expire, then one of them fetches.
func TestRedisTokenStoreLockExpiry(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	rdb := srv.Client(t)
	s := aliyun.NewRedisTokenStore(rdb, &aliyun.RedisTokenOptions{LockTTL: 300 * time.Millisecond, PollInterval: 5 * time.Millisecond})
	if err := rdb.Set(ctx(t), aliyun.DefaultTokenPrefix+"{"+key+"}:lock", "dead-owner", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	f := &fetcher{}
	start := time.Now()
	tok, err := s.Get(ctx(t), key, f.fetch)
	if err != nil || tok != "tok-1" {
		t.Fatalf("Get = %q, %v", tok.Reveal(), err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("fetched after %v while another process held the lock", took)
	}
	// The hash lives under the documented prefix and expires with the token.
	k := aliyun.DefaultTokenPrefix + "{" + key + "}"
	ttl, err := rdb.PTTL(ctx(t), k).Result()
	if err != nil || ttl <= time.Hour || ttl > 2*time.Hour {
		t.Errorf("PTTL(%s) = %v, %v; want about 2h", k, ttl, err)
	}
	if n, _ := rdb.Exists(ctx(t), k+":lock").Result(); n != 0 {
		t.Errorf("lock left behind")
	}
}

func TestRedisTokenStoreHonoursContext(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	rdb := srv.Client(t)
	s := aliyun.NewRedisTokenStore(rdb, nil)
	_ = rdb.Set(ctx(t), aliyun.DefaultTokenPrefix+"{"+key+"}:lock", "other", time.Minute)
	c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := s.Get(c, key, (&fetcher{}).fetch)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get while another holds the lock past the deadline: %v", err)
	}
}

// Two clients (two worker processes) on one Redis: one token for both.
func TestClientsShareTokenThroughRedis(t *testing.T) {
	t.Parallel()
	for _, sealed := range []bool{true, false} {
		t.Run(fmt.Sprintf("sealed=%v", sealed), func(t *testing.T) {
			t.Parallel()
			testClientsShareTokenThroughRedis(t, sealed)
		})
	}
}

func testClientsShareTokenThroughRedis(t *testing.T, sealed bool) {
	srv := taskstest.StartRedis(t, nil)
	f := setup(t, nil)
	var opts *aliyun.RedisTokenOptions
	if sealed {
		opts = &aliyun.RedisTokenOptions{Seal: appSecret}
	}
	a := newClient(t, f.url, appSecret, aliyun.NewRedisTokenStore(srv.Client(t), opts), nil)
	b := newClient(t, f.url, appSecret, aliyun.NewRedisTokenStore(srv.Client(t), opts), nil)

	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := a
			if i%2 == 1 {
				c = b
			}
			if _, err := c.Submit(ctx(t), testOrder(200+i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := f.sb.TokensIssued(); n != 1 {
		t.Errorf("%d tokens issued for two clients, want 1", n)
	}

	// Someone invalidates the token: every worker is refused at once, and
	// exactly one of them refreshes it; each call is retried once and
	// succeeds, creating its order once.
	f.sb.RevokeTokens()
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := a
			if i%2 == 1 {
				c = b
			}
			if _, err := c.Submit(ctx(t), testOrder(300+i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := f.sb.TokensIssued(); n != 2 {
		t.Errorf("%d tokens issued after a revocation, want 2", n)
	}
	for i := range 16 {
		if n := f.sb.Count(iotID(300 + i)); n != 1 {
			t.Errorf("order %d: %d created, want 1", i, n)
		}
	}
	keys, err := srv.Client(t).Keys(ctx(t), aliyun.DefaultTokenPrefix+"*").Result()
	if err != nil || len(keys) != 1 || strings.Contains(keys[0], appKey) {
		t.Fatalf("token keys = %v, %v; want one key, without the AppKey", keys, err)
	}
	stored, err := srv.Client(t).HGet(ctx(t), keys[0], "token").Result()
	if err != nil {
		t.Fatal(err)
	}
	issued := f.sb.IssuedTokens()
	current := issued[len(issued)-1]
	switch {
	case sealed && (stored == current || strings.Contains(stored, current) || !strings.HasPrefix(stored, "sealed1:")):
		t.Errorf("stored token %q with Seal; want it sealed, not the token %q", stored, current)
	case !sealed && stored != current:
		t.Errorf("stored token %q without Seal; want the token %q", stored, current)
	}
}

// A sealed token opens only with the same Seal: a store with another
// (or none) finds no token, and fetches its own rather than use what it
// cannot read; a token stored in clear (by a process without Seal) is
// read by one with it.
func TestSealedTokenOpensOnlyWithItsSeal(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	sealed := aliyun.NewRedisTokenStore(srv.Client(t), &aliyun.RedisTokenOptions{Seal: appSecret})
	other := aliyun.NewRedisTokenStore(srv.Client(t), &aliyun.RedisTokenOptions{Seal: "another secret"})
	clear := aliyun.NewRedisTokenStore(srv.Client(t), nil)
	fetches := 0
	fetch := func(n int) aliyun.FetchFunc {
		return func(context.Context) (aliyun.Token, error) {
			fetches++
			return aliyun.Token{Value: providers.Secret(fmt.Sprintf("tok-%d", n)), ExpiresAt: time.Now().Add(time.Hour)}, nil
		}
	}
	if tok, err := sealed.Get(ctx(t), "k1", fetch(1)); err != nil || tok != "tok-1" {
		t.Fatalf("sealed Get = %q, %v", tok, err)
	}
	if tok, err := sealed.Get(ctx(t), "k1", fetch(9)); err != nil || tok != "tok-1" || fetches != 1 {
		t.Fatalf("sealed Get again = %q, %v after %d fetches; want tok-1 from Redis", tok, err, fetches)
	}
	for name, s := range map[string]*aliyun.RedisTokenStore{"another Seal": other, "no Seal": clear} {
		before := fetches
		if tok, err := s.Get(ctx(t), "k1", fetch(2)); err != nil || tok != "tok-2" || fetches != before+1 {
			t.Errorf("%s: Get = %q, %v; want a token of its own (tok-2), fetched", name, tok, err)
		}
		// Its own token replaced the sealed one: put it back.
		if err := s.Invalidate(ctx(t), "k1", "tok-2"); err != nil {
			t.Fatal(err)
		}
		if _, err := sealed.Get(ctx(t), "k1", fetch(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sealed.Invalidate(ctx(t), "k1", "tok-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := clear.Get(ctx(t), "k2", fetch(3)); err != nil {
		t.Fatal(err)
	}
	before := fetches
	if tok, err := sealed.Get(ctx(t), "k2", fetch(4)); err != nil || tok != "tok-3" || fetches != before {
		t.Errorf("sealed Get of a token stored in clear = %q, %v; want tok-3, not fetched", tok, err)
	}
	// Refused, the token stored in clear is dropped by a store with a
	// Seal too: the next Get fetches a fresh one.
	if err := sealed.Invalidate(ctx(t), "k2", "tok-3"); err != nil {
		t.Fatal(err)
	}
	if tok, err := sealed.Get(ctx(t), "k2", fetch(5)); err != nil || tok != "tok-5" {
		t.Errorf("sealed Get after invalidating a token stored in clear = %q, %v; want tok-5, fetched", tok, err)
	}
	// A sealed token is bound to its key: copied under another, it does
	// not open.
	v, err := srv.Client(t).HGet(ctx(t), aliyun.DefaultTokenPrefix+"{k2}", "token").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Client(t).HSet(ctx(t), aliyun.DefaultTokenPrefix+"{k3}", "token", v, "exp", time.Now().Add(time.Hour).UnixMilli(), "refresh", time.Now().Add(time.Hour).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if tok, err := sealed.Get(ctx(t), "k3", fetch(6)); err != nil || tok != "tok-6" {
		t.Errorf("sealed Get of a token copied from another key = %q, %v; want tok-6, fetched", tok, err)
	}
}

// An auth refusal is retried once with a fresh token, never more.
func TestAuthErrorRetriedOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	if _, err := f.c.Submit(ctx(t), testOrder(20)); err != nil {
		t.Fatal(err)
	}
	f.sb.RevokeTokens()
	if _, err := f.c.Submit(ctx(t), testOrder(21)); err != nil {
		t.Fatalf("after revocation: %v", err)
	}
	if n := f.sb.TokensIssued(); n != 2 {
		t.Errorf("%d tokens issued, want 2", n)
	}
	if n := f.sb.Count(iotID(21)); n != 1 {
		t.Errorf("%d orders created, want 1", n)
	}
	creates := f.sb.Calls(aliyun.PathCreate)
	f.sb.Inject(aliyun.PathCreate, sandboxAuthError, sandboxAuthError, sandboxAuthError)
	_, err := f.c.Submit(ctx(t), testOrder(22))
	if c := providers.CodeOf(err); c != providers.Unauthenticated {
		t.Errorf("persistent auth error: %v, want unauthenticated", err)
	}
	if n := f.sb.Calls(aliyun.PathCreate) - creates; n != 2 {
		t.Errorf("%d create calls for a persistent auth error, want 2", n)
	}
}

// errStoreDown is what stuckStore's Redis answers.
var errStoreDown = errors.New("redis down")

// stuckStore cannot forget a token (its Redis is down, say).
type stuckStore struct{ aliyun.TokenStore }

func (stuckStore) Invalidate(context.Context, string, providers.Secret) error {
	return errStoreDown
}

// A refused token that cannot be replaced is not retried with itself (it
// would be refused again and look permanent): the call is Unavailable.
// What failed is this worker's own token store, not the platform, which
// answered: the failure is local (providers.Local), no news of the
// platform's health, which the circuit breaker does not count (a blip of
// the store's Redis would otherwise open Aliyun's breaker).
func TestAuthErrorWithStuckStore(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	c := newClient(t, f.url, appSecret, stuckStore{aliyun.NewMemoryTokenStore(nil)}, nil)
	f.sb.Inject(aliyun.PathCreate, sandboxAuthError)
	_, err := c.Submit(ctx(t), testOrder(23))
	if code := providers.CodeOf(err); code != providers.Unavailable {
		t.Errorf("code = %v (%v), want unavailable", code, err)
	}
	if !providers.IsLocal(err) || !errors.Is(err, providers.ErrNoNews) || !errors.Is(err, errStoreDown) {
		t.Errorf("Submit = %v (local %v, no news %v); want a local failure, no news, the store's error",
			err, providers.IsLocal(err), errors.Is(err, providers.ErrNoNews))
	}
	if n := f.sb.Calls(aliyun.PathCreate); n != 1 {
		t.Errorf("%d create calls, want 1", n)
	}
	// A read's refused token the same (the snapshot a create is judged by).
	f.sb.Inject(aliyun.PathQuery, sandboxAuthError)
	_, err = c.Prepare(ctx(t), testOrder(24))
	if providers.CodeOf(err) != providers.Unavailable || !providers.IsLocal(err) || !errors.Is(err, providers.ErrNoNews) {
		t.Errorf("Prepare = %v (local %v, no news %v); want unavailable, a local failure, no news",
			err, providers.IsLocal(err), errors.Is(err, providers.ErrNoNews))
	}
}

// A /cloud/token call the platform refuses is a configuration problem
// (credentials, project id, the API not enabled), never the order's: the
// order waits for the configuration (unauthenticated) and nothing is
// sent. A token call that fails otherwise stays retryable.
func TestTokenRefusedIsConfiguration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply sandbox.Reply
		code  providers.Code
	}{
		{"403", sandbox.Reply{Code: 403}, providers.Unauthenticated},
		{"460", sandbox.Reply{Code: 460, Message: "request parameter error"}, providers.Unauthenticated},
		{"2000", sandbox.Reply{Code: 2000, Message: "param is invalid"}, providers.Unauthenticated},
		{"gw quota", sandbox.Reply{HTTPStatus: 403, GatewayMessage: "Quota Exhausted"}, providers.Unauthenticated},
		{"gw invalid appkey", sandbox.Reply{HTTPStatus: 400, GatewayMessage: "Invalid AppKey"}, providers.Unauthenticated},
		{"503", sandbox.Reply{HTTPStatus: 503, GatewayMessage: "Service Unavailable"}, providers.Unavailable},
		{"500", sandbox.Reply{Code: 500, Message: "service error"}, providers.Unavailable},
		{"throttled", sandbox.Reply{Code: 429}, providers.RateLimited},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			o := testOrder(2400 + i)
			f.sb.Inject(aliyun.PathToken, tt.reply)
			_, err := f.c.Submit(ctx(t), o)
			if c := providers.CodeOf(err); c != tt.code {
				t.Fatalf("Submit = %v; want %v", err, tt.code)
			}
			if tt.code == providers.Unauthenticated && !strings.Contains(err.Error(), "cloud/token refused") {
				t.Errorf("Submit = %v; want a message saying the token call was refused", err)
			}
			if n := f.sb.Calls(aliyun.PathCreate); n != 0 {
				t.Errorf("%d create calls without a token, want 0", n)
			}
			f.sb.Inject(aliyun.PathToken, tt.reply)
			if _, err := f.c.Prepare(ctx(t), o); providers.CodeOf(err) != tt.code {
				t.Errorf("Prepare = %v; want %v", err, tt.code)
			}
		})
	}
}
