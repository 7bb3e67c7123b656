package tasks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// State is where an order stands in the ledger.
type State string

const (
	StateQueued     State = "queued"
	StateSubmitting State = "submitting"
	StateUnknown    State = "unknown"
	StatePending    State = "pending"
	StatePaid       State = "paid"
	StateErrored    State = "errored"
)

// States lists every state, in lifecycle order.
var States = []State{StateQueued, StateSubmitting, StateUnknown, StatePending, StatePaid, StateErrored}

// Terminal reports whether no further attempt is ever made.
func (s State) Terminal() bool { return s == StatePaid || s == StateErrored }

// KeyPrefix starts every ledger key. The hash tag keeps all ledger keys in
// one slot, so the ledger's scripts also run on Redis Cluster.
const KeyPrefix = "orderworker:{ledger}:"

// MaxHistory bounds the attempts kept per order (the oldest are dropped).
const MaxHistory = 50

// Attempt is one call to a provider, as recorded in the order's history.
type Attempt struct {
	N          int       `json:"n"`
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`
	Call       string    `json:"call"` // submit or lookup
	HTTPStatus int       `json:"http_status,omitempty"`
	Code       string    `json:"code,omitempty"`    // the provider's own code
	Result     string    `json:"result"`            // ok or an error code name
	Message    string    `json:"message,omitempty"` // masked
}

// Record is an order's ledger entry.
type Record struct {
	Provider        string          `json:"provider"`
	OrderNo         string          `json:"order_no"`
	State           State           `json:"state"`
	Params          json.RawMessage `json:"params,omitempty"`
	ParamsHash      string          `json:"params_hash"`
	Enqueued        bool            `json:"enqueued"`
	Attempts        int             `json:"attempts"`
	Failures        int             `json:"failures"`
	Inflight        bool            `json:"inflight,omitempty"`
	ProviderOrderID string          `json:"provider_order_id,omitempty"`
	Reason          string          `json:"reason,omitempty"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
	FirstAttemptAt  time.Time       `json:"first_attempt_at,omitzero"`
	PendingSince    time.Time       `json:"pending_since,omitzero"`
	NextCheckAt     time.Time       `json:"next_check_at,omitzero"`
	OutcomeAt       time.Time       `json:"outcome_at,omitzero"`
	History         []Attempt       `json:"history,omitempty"`
}

// Ledger is the order records in Redis. It is safe for concurrent use.
type Ledger struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewLedger returns a Ledger on rdb.
func NewLedger(rdb redis.UniversalClient) *Ledger {
	return &Ledger{rdb: rdb, now: time.Now}
}

func recordKey(provider, orderNo string) string {
	return KeyPrefix + "order:" + provider + ":" + orderNo
}

func historyKey(provider, orderNo string) string {
	return KeyPrefix + "history:" + provider + ":" + orderNo
}

func lockKey(provider, orderNo string) string {
	return KeyPrefix + "lock:" + provider + ":" + orderNo
}

// indexKey is the sorted set of a provider's orders in a state, scored by
// when they entered it (unix ms).
func indexKey(provider string, s State) string {
	return KeyPrefix + "state:" + provider + ":" + string(s)
}

// ParamsHash is the hash that decides whether two orders with one number
// are the same order: SHA-256 of the params in canonical JSON (keys sorted,
// numbers as written).
func ParamsHash(params json.RawMessage) (string, error) {
	canon, err := canonicalJSON(params)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), nil
}

func canonicalJSON(raw json.RawMessage) ([]byte, error) {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v) // map keys come out sorted
}

// claimScript creates the record if absent. It returns {1} when it created
// it, else {0, state, params_hash, enqueued}. ARGV[6] is a token unique to
// the call, so that a client's automatic retry of a claim whose reply was
// lost still answers "created".
var claimScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'state', 'params_hash', 'enqueued', 'claim')
if cur[1] then
  if cur[4] == ARGV[6] then
    -- This very claim, run again by a client retry after a lost reply.
    return {1}
  end
  return {0, cur[1], cur[2], cur[3]}
end
redis.call('HSET', KEYS[1], 'provider', ARGV[1], 'order_no', ARGV[2], 'params', ARGV[3],
  'params_hash', ARGV[4], 'state', 'queued', 'enqueued', '0', 'attempts', '0', 'failures', '0',
  'created', ARGV[5], 'updated', ARGV[5], 'claim', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
return {1}
`)

// ClaimResult is what Claim found.
type ClaimResult struct {
	Created    bool
	State      State
	ParamsHash string
	Enqueued   bool
}

// Claim atomically creates the (provider, order_no) record in state queued
// with params and their hash, unless it exists; then it reports the
// existing record's state, hash and whether its task was enqueued.
func (l *Ledger) Claim(ctx context.Context, p Payload, hash string) (ClaimResult, error) {
	now := l.now().UnixMilli()
	res, err := claimScript.Run(ctx, l.rdb,
		[]string{recordKey(p.Provider, p.OrderNo), indexKey(p.Provider, StateQueued)},
		p.Provider, p.OrderNo, string(p.Params), hash, now, uuid.NewString()).Slice()
	if err != nil {
		return ClaimResult{}, fmt.Errorf("claim order: %w", err)
	}
	if n, _ := res[0].(int64); n == 1 {
		return ClaimResult{Created: true, State: StateQueued, ParamsHash: hash}, nil
	}
	cr := ClaimResult{}
	if s, ok := res[1].(string); ok {
		cr.State = State(s)
	}
	if len(res) > 2 {
		cr.ParamsHash, _ = res[2].(string)
	}
	if len(res) > 3 {
		e, _ := res[3].(string)
		cr.Enqueued = e == "1"
	}
	return cr, nil
}

// unclaimScript deletes a record that is still queued and not enqueued,
// created at ARGV[1]: the undo of a Claim whose enqueue failed.
var unclaimScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'state', 'enqueued', 'created')
if cur[1] == 'queued' and cur[2] == '0' and cur[3] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0
`)

// MarkEnqueued records that the order's task is in the queue.
func (l *Ledger) MarkEnqueued(ctx context.Context, provider, orderNo string) error {
	_, err := l.rdb.HSet(ctx, recordKey(provider, orderNo), "enqueued", "1").Result()
	return err
}

// Get returns the order's record with its attempt history, or nil when there
// is none.
func (l *Ledger) Get(ctx context.Context, provider, orderNo string) (*Record, error) {
	pipe := l.rdb.Pipeline()
	hc := pipe.HGetAll(ctx, recordKey(provider, orderNo))
	lc := pipe.LRange(ctx, historyKey(provider, orderNo), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read order: %w", err)
	}
	h := hc.Val()
	if len(h) == 0 {
		return nil, nil
	}
	r := &Record{
		Provider:        h["provider"],
		OrderNo:         h["order_no"],
		State:           State(h["state"]),
		Params:          json.RawMessage(h["params"]),
		ParamsHash:      h["params_hash"],
		Enqueued:        h["enqueued"] == "1",
		Attempts:        atoi(h["attempts"]),
		Failures:        atoi(h["failures"]),
		Inflight:        h["inflight"] != "" && h["inflight"] != "0",
		ProviderOrderID: h["provider_order_id"],
		Reason:          h["reason"],
		CreatedAt:       msTime(h["created"]),
		UpdatedAt:       msTime(h["updated"]),
		FirstAttemptAt:  msTime(h["first_attempt"]),
		PendingSince:    msTime(h["pending_since"]),
		NextCheckAt:     msTime(h["next_check"]),
		OutcomeAt:       msTime(h["outcome_at"]),
	}
	if len(r.Params) == 0 {
		r.Params = nil
	}
	for _, s := range lc.Val() {
		var a Attempt
		if json.Unmarshal([]byte(s), &a) == nil {
			r.History = append(r.History, a)
		}
	}
	return r, nil
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func msTime(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// transitionScript moves a record from one of the allowed states to a new
// one, setting fields and appending an attempt, all at once.
//
// KEYS: record, history. ARGV: prefix, provider, order_no, allowed states
// (comma separated, empty = any non-terminal), new state, now (ms),
// attempt JSON (or empty), max history, then field/value pairs.
// Returns {1, new} on success or {0, current} when the state was not allowed.
var transitionScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return {0, ''} end
local allowed = ARGV[4]
if allowed == '' then
  if cur == 'paid' or cur == 'errored' then return {0, cur} end
elseif not string.find(',' .. allowed .. ',', ',' .. cur .. ',', 1, true) then
  return {0, cur}
end
local new = ARGV[5]
local now = ARGV[6]
redis.call('HSET', KEYS[1], 'state', new, 'updated', now)
for i = 9, #ARGV, 2 do
  if ARGV[i+1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1])
  end
end
if cur ~= new then
  redis.call('ZREM', ARGV[1] .. 'state:' .. ARGV[2] .. ':' .. cur, ARGV[3])
  redis.call('ZADD', ARGV[1] .. 'state:' .. ARGV[2] .. ':' .. new, now, ARGV[3])
end
if ARGV[7] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[7])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[8]), -1)
end
return {1, new}
`)

// ErrStateChanged is returned by Transition when the record was not in an
// allowed state.
var ErrStateChanged = errors.New("order state changed")

// Change is one state transition.
type Change struct {
	From    []State // allowed current states; nil: any non-terminal
	To      State
	Set     map[string]string // fields to set; "" deletes the field
	Attempt *Attempt          // appended to the history when non-nil
}

// Transition applies c atomically to the order's record.
func (l *Ledger) Transition(ctx context.Context, provider, orderNo string, c Change) error {
	from := make([]string, len(c.From))
	for i, s := range c.From {
		from[i] = string(s)
	}
	var attempt string
	if c.Attempt != nil {
		b, err := json.Marshal(c.Attempt)
		if err != nil {
			return err
		}
		attempt = string(b)
	}
	args := []any{KeyPrefix, provider, orderNo, strings.Join(from, ","), string(c.To),
		l.now().UnixMilli(), attempt, MaxHistory}
	for k, v := range c.Set {
		args = append(args, k, v)
	}
	res, err := transitionScript.Run(ctx, l.rdb,
		[]string{recordKey(provider, orderNo), historyKey(provider, orderNo)}, args...).Slice()
	if err != nil {
		return fmt.Errorf("update order: %w", err)
	}
	if ok, _ := res[0].(int64); ok != 1 {
		cur, _ := res[1].(string)
		return &StateChangedError{Current: State(cur)}
	}
	return nil
}

// StateChangedError is Transition's error when the record was not in an
// allowed state; errors.Is(err, ErrStateChanged) holds for it.
type StateChangedError struct {
	Current State // "" when the record is missing
}

func (e *StateChangedError) Error() string {
	if e.Current == "" {
		return ErrStateChanged.Error() + ": record missing"
	}
	return ErrStateChanged.Error() + ": now " + string(e.Current)
}

func (e *StateChangedError) Unwrap() error { return ErrStateChanged }

// CurrentState returns the state a refused Transition found.
func CurrentState(err error) (State, bool) {
	var sc *StateChangedError
	if errors.As(err, &sc) {
		return sc.Current, true
	}
	return "", false
}

var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Lock takes the order's processing lock for ttl. It returns a release
// function, or ok=false when another attempt holds it.
func (l *Ledger) Lock(ctx context.Context, provider, orderNo, token string, ttl time.Duration) (release func(), ok bool, err error) {
	key := lockKey(provider, orderNo)
	ok, err = l.rdb.SetNX(ctx, key, token, ttl).Result()
	if err != nil {
		return nil, false, err
	}
	if !ok {
		// A client retry of a SET whose reply was lost finds our own lock.
		cur, err := l.rdb.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, false, err
		}
		if cur != token {
			return nil, false, nil
		}
	}
	return func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = unlockScript.Run(c, l.rdb, []string{key}, token).Err()
	}, true, nil
}

// OrderRef names an order.
type OrderRef struct{ Provider, OrderNo string }

// InState lists up to limit orders of provider in state s that entered it
// before the given time, oldest first.
func (l *Ledger) InState(ctx context.Context, provider string, s State, before time.Time, limit int64) ([]OrderRef, error) {
	ids, err := l.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: indexKey(provider, s), Start: "-inf", Stop: strconv.FormatInt(before.UnixMilli(), 10),
		ByScore: true, Count: limit,
	}).Result()
	if err != nil {
		return nil, err
	}
	out := make([]OrderRef, len(ids))
	for i, id := range ids {
		out[i] = OrderRef{Provider: provider, OrderNo: id}
	}
	return out, nil
}

// StateStats is the number of orders in a state and the age of the oldest.
type StateStats struct {
	Count  int64
	Oldest time.Time // zero when Count is 0
}

// Stats returns, for each provider and state, the count and oldest entry.
func (l *Ledger) Stats(ctx context.Context, providerNames []string) (map[string]map[State]StateStats, error) {
	pipe := l.rdb.Pipeline()
	type q struct {
		p      string
		s      State
		card   *redis.IntCmd
		oldest *redis.ZSliceCmd
	}
	var qs []q
	for _, p := range providerNames {
		for _, s := range States {
			qs = append(qs, q{p, s, pipe.ZCard(ctx, indexKey(p, s)), pipe.ZRangeWithScores(ctx, indexKey(p, s), 0, 0)})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := map[string]map[State]StateStats{}
	for _, x := range qs {
		if out[x.p] == nil {
			out[x.p] = map[State]StateStats{}
		}
		st := StateStats{Count: x.card.Val()}
		if z := x.oldest.Val(); len(z) > 0 {
			st.Oldest = time.UnixMilli(int64(z[0].Score))
		}
		out[x.p][x.s] = st
	}
	return out, nil
}
