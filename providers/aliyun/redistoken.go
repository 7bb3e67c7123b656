package aliyun

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
)

// DefaultTokenPrefix starts every key a RedisTokenStore writes.
const DefaultTokenPrefix = "orderworker:aliyun:token:"

// RedisTokenOptions configure a RedisTokenStore; nil means defaults.
type RedisTokenOptions struct {
	// Prefix starts every key. Default DefaultTokenPrefix.
	Prefix string
	// RefreshBefore: refresh a token this long before it expires (at most
	// half its lifetime). Default DefaultRefreshBefore.
	RefreshBefore time.Duration
	// LockTTL bounds how long one process may hold the refresh lock; it
	// must exceed a /cloud/token call's timeout. Default 15s.
	LockTTL time.Duration
	// PollInterval is how often a process waiting for another's refresh
	// looks for the new token. Default 25ms.
	PollInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Seal, when set (the AppSecret), keeps the token sealed in Redis
	// (AES-256-GCM under a key derived from it): a reader of Redis without
	// the AppSecret cannot use it. Every process sharing the token must
	// have the same Seal. A token stored in clear (by a process without
	// it) is still read.
	Seal providers.Secret
}

// RedisTokenStore keeps tokens in Redis, shared by every process that
// submits with the same credentials.
//
// For key k it writes a hash {token, exp, refresh} (epoch ms) at
// Prefix+"{k}", expiring with the token, and takes the refresh lock at
// Prefix+"{k}:lock" with SET NX PX and a random owner id; only the owner
// stores the new token and deletes the lock (compare-and-delete scripts).
// The braces keep both keys in one Redis Cluster slot. With
// RedisTokenOptions.Seal the token is stored sealed, else in clear.
type RedisTokenStore struct {
	rdb    redis.UniversalClient
	prefix string
	before time.Duration
	lock   time.Duration
	poll   time.Duration
	now    func() time.Time
	aead   cipher.AEAD // nil: tokens in clear
	nonces []byte      // the key of a token's nonce
}

var _ TokenStore = (*RedisTokenStore)(nil)

// NewRedisTokenStore returns a store on rdb.
func NewRedisTokenStore(rdb redis.UniversalClient, opts *RedisTokenOptions) *RedisTokenStore {
	s := &RedisTokenStore{rdb: rdb, prefix: DefaultTokenPrefix, before: DefaultRefreshBefore,
		lock: 15 * time.Second, poll: 25 * time.Millisecond, now: time.Now}
	if opts != nil {
		if opts.Prefix != "" {
			s.prefix = opts.Prefix
		}
		if opts.RefreshBefore > 0 {
			s.before = opts.RefreshBefore
		}
		if opts.LockTTL > 0 {
			s.lock = opts.LockTTL
		}
		if opts.PollInterval > 0 {
			s.poll = opts.PollInterval
		}
		if opts.Now != nil {
			s.now = opts.Now
		}
		if opts.Seal != "" {
			s.aead, s.nonces = tokenSealer(opts.Seal)
		}
	}
	return s
}

// sealedPrefix starts a token stored sealed.
const sealedPrefix = "sealed1:"

// tokenSealer derives from secret the AEAD that seals tokens and the key
// of their nonces.
func tokenSealer(secret providers.Secret) (cipher.AEAD, []byte) {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, []byte(secret.Reveal()))
		m.Write([]byte("orderworker aliyun cloudToken " + label))
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(derive("key"))
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead, derive("nonce")
}

// seal is the token as stored at tokenKey (bound to it: a sealed token
// copied under another key does not open). The nonce is derived from the
// token, so a token always seals the same (Invalidate compares what is
// stored), and two tokens never share a nonce: GCM's nonce rule holds, and
// what the stored form reveals is only whether two stored tokens are
// equal.
func (s *RedisTokenStore) seal(tokenKey string, tok providers.Secret) string {
	if s.aead == nil {
		return tok.Reveal()
	}
	m := hmac.New(sha256.New, s.nonces)
	m.Write([]byte(tok.Reveal()))
	nonce := m.Sum(nil)[:s.aead.NonceSize()]
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(tok.Reveal()), []byte(tokenKey)))
}

// unseal reads a stored token: "" when it is sealed and this store cannot
// open it (another Seal, or none).
func (s *RedisTokenStore) unseal(tokenKey, v string) providers.Secret {
	rest, sealed := strings.CutPrefix(v, sealedPrefix)
	if !sealed {
		return providers.Secret(v)
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if s.aead == nil || err != nil || len(b) < s.aead.NonceSize() {
		return ""
	}
	n := s.aead.NonceSize()
	tok, err := s.aead.Open(nil, b[:n], b[n:], []byte(tokenKey))
	if err != nil {
		return ""
	}
	return providers.Secret(tok)
}

func (s *RedisTokenStore) keys(key string) (tokenKey, lockKey string) {
	tokenKey = s.prefix + "{" + key + "}"
	return tokenKey, tokenKey + ":lock"
}

var (
	// storeIfOwner writes the token only while the caller still holds
	// the lock, so a refresher whose lock expired cannot overwrite a newer
	// token with the one it fetched.
	storeIfOwner = redis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'exp', ARGV[3], 'refresh', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`)
	releaseLock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
	// invalidateToken deletes the token when it is the one refused, as
	// stored: sealed (ARGV[1]) or in clear (ARGV[2], by a process
	// without a Seal).
	invalidateToken = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'token')
if cur and (cur == ARGV[1] or cur == ARGV[2]) then return redis.call('DEL', KEYS[1]) end
return 0`)
)

type stored struct {
	tok       providers.Secret
	exp       time.Time
	refreshAt time.Time
}

func (s *RedisTokenStore) load(ctx context.Context, tokenKey string) (stored, error) {
	vals, err := s.rdb.HMGet(ctx, tokenKey, "token", "exp", "refresh").Result()
	if err != nil {
		return stored{}, fmt.Errorf("read token: %w", err)
	}
	str := func(v any) string { x, _ := v.(string); return x }
	ms := func(v any) time.Time {
		n, err := strconv.ParseInt(str(v), 10, 64)
		if err != nil {
			return time.Time{}
		}
		return time.UnixMilli(n)
	}
	st := stored{tok: s.unseal(tokenKey, str(vals[0])), exp: ms(vals[1]), refreshAt: ms(vals[2])}
	if st.exp.IsZero() {
		st.tok = ""
	}
	return st, nil
}

func (st stored) valid(now time.Time) bool { return st.tok != "" && now.Before(st.exp) }
func (st stored) fresh(now time.Time) bool { return st.valid(now) && now.Before(st.refreshAt) }

// Get implements TokenStore.
func (s *RedisTokenStore) Get(ctx context.Context, key string, fetch FetchFunc) (providers.Secret, error) {
	tokenKey, lockKey := s.keys(key)
	var waitStart time.Time
	for {
		cur, err := s.load(ctx, tokenKey)
		if err != nil {
			return "", err
		}
		now := s.now()
		if cur.fresh(now) {
			return cur.tok, nil
		}
		owner := uuid.NewString()
		locked, err := s.rdb.SetNX(ctx, lockKey, owner, s.lock).Result()
		if err != nil {
			if cur.valid(now) {
				return cur.tok, nil
			}
			return "", fmt.Errorf("take token lock: %w", err)
		}
		if locked {
			return s.refresh(ctx, tokenKey, lockKey, owner, cur, fetch)
		}
		if cur.valid(now) {
			return cur.tok, nil // another process is refreshing it
		}
		// No usable token and another process is fetching one: wait for
		// it rather than fetch our own (which would invalidate theirs).
		if waitStart.IsZero() {
			waitStart = now
		} else if now.Sub(waitStart) > 2*s.lock {
			return "", errors.New("timed out waiting for another process's token refresh")
		}
		t := time.NewTimer(s.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-t.C:
		}
	}
}

// refresh runs while holding the lock: it fetches a token unless another
// process stored a new one since cur was read, and stores it.
func (s *RedisTokenStore) refresh(ctx context.Context, tokenKey, lockKey, owner string, cur stored, fetch FetchFunc) (providers.Secret, error) {
	defer func() {
		// Release even when ctx is done, so others need not wait for the
		// lock to expire.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = releaseLock.Run(rctx, s.rdb, []string{lockKey}, owner).Err()
	}()
	again, err := s.load(ctx, tokenKey)
	if err != nil {
		return "", err
	}
	now := s.now()
	if again.valid(now) && (again.tok != cur.tok || again.fresh(now)) {
		return again.tok, nil // refreshed by someone else meanwhile
	}
	tok, ferr := fetch(ctx)
	if ferr != nil || tok.Value == "" {
		if again.valid(s.now()) {
			return again.tok, nil // the refresh failed; the current token still works
		}
		if ferr == nil {
			ferr = providers.Errorf(providers.Unavailable, "aliyun token", "empty token")
		}
		return "", ferr
	}
	now = s.now()
	ttl := tok.ExpiresAt.Sub(now)
	if ttl < time.Millisecond {
		return tok.Value, nil // already expired on arrival: use it once, keep nothing
	}
	// A failure to store is not ours to report: the token is valid, and
	// others fetch their own when they find none.
	_ = storeIfOwner.Run(ctx, s.rdb, []string{tokenKey, lockKey}, owner, s.seal(tokenKey, tok.Value),
		tok.ExpiresAt.UnixMilli(), refreshAt(now, tok.ExpiresAt, s.before).UnixMilli(), ttl.Milliseconds()).Err()
	return tok.Value, nil
}

// Invalidate implements TokenStore.
func (s *RedisTokenStore) Invalidate(ctx context.Context, key string, token providers.Secret) error {
	if token == "" {
		return nil
	}
	tokenKey, _ := s.keys(key)
	if err := invalidateToken.Run(ctx, s.rdb, []string{tokenKey}, s.seal(tokenKey, token), token.Reveal()).Err(); err != nil {
		return fmt.Errorf("invalidate token: %w", err)
	}
	return nil
}
