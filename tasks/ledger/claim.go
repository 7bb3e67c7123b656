package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// claimScript creates the record if absent. It returns {1, queued, created}
// when it created it (queued 1 when it queued its task too, created the
// record's time), else {0, state, params_hash, created}; {2} when it
// wrote nothing because the task's claim mark (ARGV[16], ms; "" for none)
// is later than the record's time (Task.Mark). ARGV[17] and ARGV[18], for a
// record claimed unknown (ClaimLost), are where its last create went and
// where its snapshot was read.
// ARGV[6] is the time (ms) the record is created at, "" for Redis's own
// (TIME). KEYS: record, state index, events stream, dedupe counts (see
// shard.dedupeKey), then optionally asynq's keys (KEYS[5..7]). Given them it
// also queues the order's task (ARGV[12] its message, ARGV[13] the time in
// ns, ARGV[14] its id, ARGV[15] its queue, to add to asynq's set of queues,
// empty when it is known there) as asynq's client does, unless a task with
// its id exists, in its queue or in Task.AlsoQueue's (KEYS[8]). ARGV[5] is
// a token unique to the call,
// so that a client's automatic retry of a claim whose reply was lost still
// answers "created". A duplicate counts the claim on the record (resent),
// and in the shard's dedupe counts (duplicate or conflict, by its hash):
// that write makes the WAIT after it cover the record as the master holds
// it, so a duplicate answer is as durable as a created one (a WAIT after a
// script that wrote nothing would cover only this connection's own past
// writes, not the record another connection wrote).
var claimScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'state', 'params_hash', 'claim', 'created')
if cur[1] then
  if cur[3] == ARGV[5] then
    -- This claim again (its reply was lost): a write (of the same value),
    -- so that the WAIT after it covers what the first one wrote.
    redis.call('HSET', KEYS[1], 'claim', ARGV[5])
    return {1, 0, cur[4] or ''}
  end
  redis.call('HINCRBY', KEYS[1], 'resent', 1)
  local kind = ':conflict'
  if cur[2] == ARGV[4] then kind = ':duplicate' end
  redis.call('HINCRBY', KEYS[4], ARGV[1] .. kind, 1)
  return {0, cur[1], cur[2], cur[4] or ''}
end
local now = ARGV[6]
if now == '' then
  local t = redis.call('TIME')
  now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
if (ARGV[16] or '') ~= '' and tonumber(ARGV[16]) > tonumber(now) then return {2} end
redis.call('HSET', KEYS[1], 'provider', ARGV[1], 'order_no', ARGV[2], 'params', ARGV[3],
  'params_hash', ARGV[4], 'state', ARGV[7], 'attempts', '0', 'failures', '0',
  'created', now, 'updated', now, 'claim', ARGV[5], 'reason', ARGV[8])
redis.call('ZADD', KEYS[2], now, ARGV[2])
if ARGV[7] == 'unknown' then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'may_exist', '1', 'last_create', string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
  if (ARGV[10] or '') ~= '' then redis.call('HSET', KEYS[1], 'first_attempt', ARGV[10]) end
  if (ARGV[11] or '') ~= '' then redis.call('HSET', KEYS[1], 'known', ARGV[11]) end
  if (ARGV[17] or '') ~= '' then redis.call('HSET', KEYS[1], 'create_target', ARGV[17]) end
  if (ARGV[18] or '') ~= '' then redis.call('HSET', KEYS[1], 'known_target', ARGV[18]) end
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', 'type', 'order.unknown', 'provider', ARGV[1],
    'order_no', ARGV[2], 'state', 'unknown', 'provider_order_id', '', 'reason', ARGV[8], 'attempts', '0', 'at', now)
end
if #KEYS > 4 and redis.call('EXISTS', KEYS[5]) == 0 and (#KEYS < 8 or redis.call('EXISTS', KEYS[8]) == 0) then
  redis.call('HSET', KEYS[5], 'msg', ARGV[12], 'state', 'pending', 'pending_since', ARGV[13])
  redis.call('LPUSH', KEYS[6], ARGV[14])
  if ARGV[15] ~= '' then redis.call('SADD', KEYS[7], ARGV[15]) end
  return {1, 1, now}
end
return {1, 0, now}
`)

// ClaimResult is what Claim found.
type ClaimResult struct {
	// Created is true when this call created the record.
	Created bool
	// State and ParamsHash are the existing record's when Created is false.
	State      State
	ParamsHash string
	// Token identifies this claim, for Unclaim.
	Token string
	// At is the record's creation time as recorded, zero when the reply
	// did not carry it. For a record this claim created it is the
	// master's clock at the claim (Options.Now's, when set): no create of
	// the order left before it. A record found was stamped by whatever
	// wrote it (another master, before a failover; an older producer, on
	// its own clock): not a bound on this master's clock.
	At time.Time
}

// ErrMarkAhead is a claim's error when its task's claim mark (Task.Mark)
// is later than the clock of the master it was sent to: nothing was
// written. The Ledger has dropped its reading of that clock, so a mark
// read again (NotAfterNow) is no later than it; send the claim again with
// it.
var ErrMarkAhead = errors.New("claim order: the task's claim mark is later than Redis's clock (a failover to a master whose clock is behind?): nothing was written")

// claimReply reads a claim script's reply (created, found, or refused for
// its mark: ErrMarkAhead) into the result of a, claimed in state s.
func claimReply(v any, a ClaimArgs, s State) ([]any, ClaimResult, error) {
	res, _ := v.([]any)
	if len(res) == 0 {
		return nil, ClaimResult{}, fmt.Errorf("claim order: unexpected reply %v", v)
	}
	n, _ := res[0].(int64)
	at := func(i int) time.Time {
		if len(res) <= i {
			return time.Time{}
		}
		ms, err := strconv.ParseInt(fmt.Sprint(res[i]), 10, 64)
		if err != nil || ms <= 0 {
			return time.Time{}
		}
		return time.UnixMilli(ms).UTC()
	}
	switch n {
	case 1:
		return res, ClaimResult{Created: true, State: s, ParamsHash: a.ParamsHash, Token: a.Token, At: at(2)}, nil
	case 2:
		return res, ClaimResult{}, ErrMarkAhead
	}
	cr := ClaimResult{At: at(3)}
	if len(res) > 2 {
		st, _ := res[1].(string)
		cr.State = State(st)
		cr.ParamsHash, _ = res[2].(string)
	}
	return res, cr, nil
}

// Claim atomically creates the order's record in state queued with its
// params (as they are to be stored: sealed or in clear) and their hash,
// unless a record exists; then it reports that record's state and hash.
// With durable writes on, it returns ErrNotDurable (with the result) when
// the replicas did not acknowledge the record, new or found, in time.
func (l *Ledger) Claim(ctx context.Context, ref Ref, params []byte, hash string) (ClaimResult, error) {
	return l.claim(ctx, ref, params, hash, StateQueued, "")
}

// ClaimLost records an order whose task runs but whose record is gone (a
// Redis failover or restart lost it): in state unknown, so that the order is
// looked up at the provider before anything is submitted. what is what the
// run still knew of the record (its first attempt's time and its snapshot,
// which bound the lookup), zero when nothing.
func (l *Ledger) ClaimLost(ctx context.Context, ref Ref, params []byte, hash, reason string, what Lost) (ClaimResult, error) {
	return l.claim(ctx, ref, params, hash, StateUnknown, reason, what)
}

// Lost is what a run still knew of an order whose record was lost.
type Lost struct {
	FirstAttempt time.Time // zero: unknown
	Known        []string  // the snapshot (providers.Preparer); nil: none
	// CreateTarget and KnownTarget are where its last create went and
	// where its snapshot was read (Record.CreateTarget, KnownTarget); "":
	// unknown.
	CreateTarget, KnownTarget string
}

// lostArgs are a lost record's fields as claimScript takes them.
type lostArgs struct{ first, known, target, knownTarget string }

func (l *Ledger) claim(ctx context.Context, ref Ref, params []byte, hash string, s State, reason string, what ...Lost) (ClaimResult, error) {
	var la lostArgs
	if len(what) > 0 {
		if !what[0].FirstAttempt.IsZero() {
			la.first = strconv.FormatInt(what[0].FirstAttempt.UnixMilli(), 10)
		}
		if what[0].Known != nil {
			b, _ := json.Marshal(what[0].Known)
			la.known = string(b)
		}
		la.target, la.knownTarget = what[0].CreateTarget, what[0].KnownTarget
	}
	return l.claimRun(ctx, ClaimArgs{Ref: ref, Params: params, ParamsHash: hash}, s, reason, la)
}

// ClaimQueue is Claim for a.Ref with a's params, hash and token, queueing
// a.Task in the same script when it creates the record: one round trip,
// and the record and its task are written together or not at all. A task
// already there with a.Task's id is left as it is (the result still says
// Created). a.Task needs QueuesTasks.
func (l *Ledger) ClaimQueue(ctx context.Context, a ClaimArgs) (ClaimResult, error) {
	if a.Task != nil && !l.QueuesTasks() {
		return ClaimResult{}, l.noTaskError()
	}
	return l.claimRun(ctx, a, StateQueued, "", lostArgs{})
}

// wroteTask notes, from a claim's reply, that its task's queue is in
// asynq's set of queues: the script added it with the task it wrote, and
// the write counts as durable (it reached the replicas WAIT asked for, or
// there was nothing to wait for).
func (l *Ledger) wroteTask(a ClaimArgs, res []any, durable bool) {
	if a.Task == nil || !durable || len(res) < 2 {
		return
	}
	if n, _ := res[1].(int64); n != 1 {
		return
	}
	if _, ok := l.queuesPublished.Load(a.Task.Queue); !ok {
		l.queuesPublished.Store(a.Task.Queue, true)
	}
}

// ErrTaskNotInClaim is a claim's error when Redis refused a script that
// writes keys of several hash slots (CROSSSLOT: a proxy in front of a
// sharded Redis that is not a Redis Cluster client): nothing was written,
// and QueuesTasks answers false from then on, so the claim is to be sent
// again without its task.
var ErrTaskNotInClaim = errors.New("claim order: Redis refuses a script across hash slots: the task is to be queued after the claim")

// noTaskError is the error of a claim given a task where the claim cannot
// queue it: ErrTaskNotInClaim once Redis refused one (another goroutine's
// claim may have switched this Ledger over since the caller asked
// QueuesTasks), else the Redis Cluster client's.
func (l *Ledger) noTaskError() error {
	if l.noTasks.Load() {
		return ErrTaskNotInClaim
	}
	return errors.New("claim order: cannot queue its task in the claim on Redis Cluster")
}

// claimError wraps a claim's error; a CROSSSLOT refusal of a claim with its
// task turns the task off for this Ledger (ErrTaskNotInClaim).
func (l *Ledger) claimError(a ClaimArgs, err error) error {
	if a.Task != nil && redis.HasErrorPrefix(err, "CROSSSLOT") {
		l.noTasks.Store(true)
		return fmt.Errorf("%w (%v)", ErrTaskNotInClaim, err)
	}
	return fmt.Errorf("claim order: %w", err)
}

// NewToken returns a claim token (ClaimArgs.Token).
func NewToken() string { return uuid.NewString() }

// claimCall is claimScript's keys and arguments for a (its token set).
func (l *Ledger) claimCall(a ClaimArgs, s State, reason string, la lostArgs, now string) ([]string, []any) {
	sh := l.shardOf(a.Ref)
	keys := []string{sh.recordKey(a.Ref), sh.indexKey(a.Ref.Provider, s), sh.events, sh.dedupeKey()}
	args := []any{a.Ref.Provider, a.Ref.OrderNo, a.Params, a.ParamsHash, a.Token, now, string(s), reason, l.opts.EventRetention, la.first, la.known}
	if t := a.Task; t != nil {
		publish := t.Queue
		if _, ok := l.queuesPublished.Load(t.Queue); ok {
			publish = "" // as asynq's client: once per process and queue
		}
		keys = append(keys, asynqTaskKey(t.Queue, t.ID), asynqPendingKey(t.Queue), asynqQueuesKey)
		if t.AlsoQueue != "" && t.AlsoQueue != t.Queue {
			keys = append(keys, asynqTaskKey(t.AlsoQueue, t.ID))
		}
		mark := ""
		if l.redisTime && !t.Mark.IsZero() {
			mark = strconv.FormatInt(t.Mark.UnixMilli(), 10)
		}
		args = append(args, t.message(), l.now().UnixNano(), t.ID, publish, mark)
	}
	if la.target != "" || la.knownTarget != "" {
		// ARGV[17], ARGV[18]: a lost record's targets (never with a task).
		for len(args) < 16 {
			args = append(args, "")
		}
		args = append(args, la.target, la.knownTarget)
	}
	return keys, args
}

func (l *Ledger) claimRun(ctx context.Context, a ClaimArgs, s State, reason string, la lostArgs) (ClaimResult, error) {
	if err := l.CheckShards(ctx); err != nil {
		return ClaimResult{}, fmt.Errorf("claim order: %w", err)
	}
	if a.Token == "" {
		a.Token = NewToken()
	}
	keys, args := l.claimCall(a, s, reason, la, l.claimTime())
	v, durable, err := l.run(ctx, claimScript, true, keys, args...)
	if err != nil {
		return ClaimResult{}, l.claimError(a, err)
	}
	l.claimLoaded.Store(true) // Redis knows the script now
	res, cr, err := claimReply(v, a, s)
	if errors.Is(err, ErrMarkAhead) {
		l.clock.forget(l.shardOf(a.Ref).i)
	}
	if err != nil {
		return ClaimResult{}, err
	}
	l.wroteTask(a, res, durable)
	if !durable {
		// The record is on the master, not yet on every replica: a
		// failover now could lose it, so it is no answer yet.
		return cr, ErrNotDurable
	}
	return cr, nil
}

// luaTakenBackAgain answers a take-back (unclaimScript, unqueueScript)
// that finds no record and no task for the order (under its id in its
// queue or the other, which would run it: another claim's, its record
// lost): when the claim undone last was its own (KEYS[3] holds ARGV[1],
// its token), it is this take-back again (its reply was lost, and the
// client sent it again), and it answers 1 as the first did, with a write
// (the same value) so that the WAIT after it covers the first one's
// removal; else 0.
const luaTakenBackAgain = `
local function takenBackAgain()
  if redis.call('GET', KEYS[3]) == ARGV[1] then
    redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[3])
    return 1
  end
  return 0
end
`

// unclaimScript deletes a record still queued under the claim ARGV[1],
// and remembers for ARGV[3] seconds that it undid that claim (KEYS[3]). A
// record another claim of the order found since (resent: answered
// duplicate, that is accepted) is kept, so is one confirmed
// (confirmClaimScript), and so is one for which a task
// exists under any of KEYS[4..] (asynq task hashes: a task that runs the
// order whatever becomes of the record).
var unclaimScript = redis.NewScript(luaTakenBackAgain + `
local cur = redis.call('HMGET', KEYS[1], 'state', 'claim', 'lease', 'lease_until', 'updated', 'created', 'resent', 'confirmed')
if not cur[1] then
  for i = 4, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
  end
  return takenBackAgain()
end
if cur[5] ~= cur[6] or (cur[7] or '') ~= '' or cur[8] then return 0 end
for i = 4, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
if (cur[3] or '') ~= '' then
  local t = redis.call('TIME')
  if (tonumber(cur[4] or '0') or 0) > tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
    return 0
  end
end
if cur[1] == 'queued' and cur[2] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[3])
  return 1
end
return 0
`)

// unclaimedTTL is how long an undone claim is remembered (Unclaimed): a
// task whose enqueue answered an error may still have been queued, and
// runs within it unless every worker is down that long.
const unclaimedTTL = 7 * 24 * time.Hour

// Unclaimed reports whether the order's claim with token was undone
// (Unclaim) in the last unclaimedTTL: a task queued for it after all may
// be taken for a new order. A claimed task whose record is missing
// otherwise lost it (a later claim of the same order has another token).
func (l *Ledger) Unclaimed(ctx context.Context, ref Ref, token string) (bool, error) {
	if token == "" {
		return false, nil
	}
	v, err := l.rdb.Get(ctx, l.shardOf(ref).unclaimedKey(ref)).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return v == token, err
}

// Unclaim removes a record created by the claim with token, if nothing has
// happened to it since: the undo of a claim whose task could not be queued.
// A record a run holds the lease of, or that a step changed (a snapshot
// taken, a create marked), is kept: the task did get queued (its answer
// was lost), and a worker is on the order.
func (l *Ledger) Unclaim(ctx context.Context, ref Ref, token string) error {
	_, err := l.unclaim(ctx, ref, token, false)
	return err
}

// UnclaimTaken is Unclaim as a durable write (see Options.Durable),
// reporting whether the record was removed: the take-back of a claim the
// replicas did not acknowledge. ErrNotDurable, with true, when it was
// removed on the master but the replicas did not acknowledge that in
// time: a failover now could bring the record back. t, when given, names
// the order's task (its ID, Queue and AlsoQueue): while a task exists
// under it the record is kept, checked in the same script where the
// record and asynq's keys can be (QueuesTasks; on Redis Cluster the
// caller asks first, TaskExists).
func (l *Ledger) UnclaimTaken(ctx context.Context, ref Ref, token string, t *Task) (bool, error) {
	var tasks []string
	if t != nil && l.QueuesTasks() {
		tasks = append(tasks, asynqTaskKey(t.Queue, t.ID))
		if t.AlsoQueue != "" && t.AlsoQueue != t.Queue {
			tasks = append(tasks, asynqTaskKey(t.AlsoQueue, t.ID))
		}
	}
	return l.unclaim(ctx, ref, token, true, tasks...)
}

func (l *Ledger) unclaim(ctx context.Context, ref Ref, token string, durable bool, tasks ...string) (bool, error) {
	sh := l.shardOf(ref)
	keys := append([]string{sh.recordKey(ref), sh.indexKey(ref.Provider, StateQueued), sh.unclaimedKey(ref)}, tasks...)
	return l.runDone(ctx, unclaimScript, durable, keys, token, ref.OrderNo, int64(unclaimedTTL/time.Second))
}

// runDone runs a script that answers 1 when it did what it was asked to
// (a take-back removed the claim, a confirmation rewrote it): true then,
// with ErrNotDurable when durable and the replicas did not acknowledge it
// in time.
func (l *Ledger) runDone(ctx context.Context, s *redis.Script, durable bool, keys []string, args ...any) (bool, error) {
	v, acked, err := l.run(ctx, s, durable, keys, args...)
	if err != nil {
		return false, err
	}
	if n, _ := v.(int64); n != 1 {
		return false, nil
	}
	if !acked {
		return true, ErrNotDurable
	}
	return true, nil
}

// confirmClaimScript marks the record confirmed when its claim is still
// ARGV[1]'s: a write, so that the WAIT after it covers the record as the
// master holds it, and one that every take-back (unclaimScript,
// unqueueScript) refuses to undo: a take-back whose answer timed out
// before the confirmation was sent may reach Redis after it (a stalled
// connection), and must not remove an order its producer was then told
// was accepted. It returns 1 when the claim was ARGV[1]'s.
var confirmClaimScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'claim') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'confirmed', '1')
  return 1
end
return 0
`)

// ConfirmClaim asks again that the replicas acknowledge the order's record
// created by the claim with token, after the claim's own write was not
// acknowledged in time (ErrNotDurable) and could not be taken back (a
// worker took the order, or another claim found it): the order stands, and
// is accepted once the replicas hold it. It reports whether the record is
// still that claim's; ErrNotDurable when it is, but the replicas did not
// acknowledge it this time either.
func (l *Ledger) ConfirmClaim(ctx context.Context, ref Ref, token string) (bool, error) {
	return l.runDone(ctx, confirmClaimScript, true, []string{l.shardOf(ref).recordKey(ref)}, token)
}

// unqueueScript is unclaimScript for a claim that queued its task (ARGV[4]
// its id; KEYS[4] its hash, KEYS[5] the pending list): it deletes the
// record only together with the task, only while the task is still
// pending (no worker took it) and is this claim's (its message carries
// the claim's token: a task queued before, which the claim left alone, is
// another's), only while no other claim found the record (resent) and it
// was not confirmed (confirmClaimScript), and
// only while no task with its id stands for the order in Task.AlsoQueue
// (KEYS[6], when given: a task a producer wrote itself runs the order);
// otherwise it changes nothing.
var unqueueScript = redis.NewScript(luaTakenBackAgain + `
local cur = redis.call('HMGET', KEYS[1], 'state', 'claim', 'lease', 'lease_until', 'updated', 'created', 'resent', 'confirmed')
if not cur[1] then
  if redis.call('EXISTS', KEYS[4]) == 1 or (#KEYS > 5 and redis.call('EXISTS', KEYS[6]) == 1) then return 0 end
  return takenBackAgain()
end
if cur[5] ~= cur[6] or cur[1] ~= 'queued' or cur[2] ~= ARGV[1] or (cur[7] or '') ~= '' or cur[8] then return 0 end
if #KEYS > 5 and redis.call('EXISTS', KEYS[6]) == 1 then return 0 end
if (cur[3] or '') ~= '' then
  local t = redis.call('TIME')
  if (tonumber(cur[4] or '0') or 0) > tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
    return 0
  end
end
local task = redis.call('HMGET', KEYS[4], 'state', 'msg')
local st = task[1]
if st and (st ~= 'pending' or not string.find(task[2] or '', ARGV[1], 1, true)) then return 0 end
if st then
  redis.call('LREM', KEYS[5], 0, ARGV[4])
  redis.call('DEL', KEYS[4])
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[3])
return 1
`)

// UnclaimQueued is Unclaim for a claim that queued its task (ClaimQueue):
// the record and the task are removed together, while nothing has
// happened to the record and no worker has taken the task; otherwise
// nothing changes. It reports whether they were removed; a durable write,
// as UnclaimTaken (ErrNotDurable with true: removed on the master only).
func (l *Ledger) UnclaimQueued(ctx context.Context, ref Ref, token string, t *Task) (bool, error) {
	sh := l.shardOf(ref)
	keys := []string{sh.recordKey(ref), sh.indexKey(ref.Provider, StateQueued), sh.unclaimedKey(ref),
		asynqTaskKey(t.Queue, t.ID), asynqPendingKey(t.Queue)}
	if t.AlsoQueue != "" && t.AlsoQueue != t.Queue {
		keys = append(keys, asynqTaskKey(t.AlsoQueue, t.ID))
	}
	return l.runDone(ctx, unqueueScript, true, keys, token, ref.OrderNo, int64(unclaimedTTL/time.Second), t.ID)
}

// noteWaitingScript sets the reason of a record still queued (ARGV[1])
// when it differs; it touches nothing else.
var noteWaitingScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'state', 'reason')
if (cur[1] == 'queued' or (cur[1] == 'submitting' and (cur[2] or '') == '')) and cur[2] ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'reason', ARGV[1])
  return 1
end
return 0
`)

// NoteWaiting records why a queued order waits (a configuration problem
// holds it back before any step: its provider disabled on the worker) as
// its reason, so that its record shows it; so for a submitting order with
// no reason (a create a killed run left in flight: its next step settles
// one). An order past queued keeps the reason of its last step; nothing
// else changes.
func (l *Ledger) NoteWaiting(ctx context.Context, ref Ref, reason string) error {
	return noteWaitingScript.Run(ctx, l.rdb, []string{l.shardOf(ref).recordKey(ref)}, reason).Err()
}

// ClaimArgs is one order to claim (ClaimMany, ClaimQueue).
type ClaimArgs struct {
	Ref        Ref
	Params     []byte
	ParamsHash string
	// Token identifies the claim (NewToken); empty: one is made.
	Token string
	// Task, when set, is the order's asynq task, queued by the claim
	// that creates the record (see ClaimQueue). It needs QueuesTasks.
	Task *Task
}

// ClaimMany claims several orders in one round trip (a pipeline of claim
// scripts, each atomic on its own); results are in the order of claims. A
// per-order error is in errs[i]; the error returned is for the round trip
// (nothing is known of any claim then). With durable writes on, a claim,
// created or found, counts only when the replicas acknowledged the record:
// otherwise its errs[i] is ErrNotDurable.
func (l *Ledger) ClaimMany(ctx context.Context, claims []ClaimArgs) ([]ClaimResult, []error, error) {
	if err := l.CheckShards(ctx); err != nil {
		return nil, nil, fmt.Errorf("claim orders: %w", err)
	}
	if !l.QueuesTasks() && slices.ContainsFunc(claims, func(a ClaimArgs) bool { return a.Task != nil }) {
		return nil, nil, l.noTaskError()
	}
	want, err := l.want(ctx, true)
	if err != nil {
		return nil, nil, fmt.Errorf("claim orders: %w", err)
	}
	now := l.claimTime()
	out := make([]ClaimResult, len(claims))
	errs := make([]error, len(claims))
	if !l.claimLoaded.Load() {
		// Load the script once up front: a pipeline of EVALSHAs for a
		// script Redis does not know fails entry by entry.
		if err := claimScript.Load(ctx, l.rdb).Err(); err == nil {
			l.claimLoaded.Store(true)
		}
	}
	vals := make([]any, len(claims))
	durable := make([]bool, len(claims))
	keyss := make([][]string, len(claims))
	argss := make([][]any, len(claims))
	for i, a := range claims {
		if a.Token == "" {
			a.Token = NewToken()
		}
		out[i].Token = a.Token
		keyss[i], argss[i] = l.claimCall(a, StateQueued, "", lostArgs{}, now)
	}
	keys := func(i int) []string { return keyss[i] }
	args := func(i int) []any { return argss[i] }
	if want == wantNodes {
		// Redis Cluster: a WAIT per master, on the master's connection.
		calls := make([]*call, len(claims))
		for i := range claims {
			calls[i] = &call{ctx: ctx, script: claimScript, keys: keys(i), args: args(i), want: wantNodes, durable: true}
		}
		l.batch.send(ctx, calls, true)
		for i, c := range calls {
			vals[i], errs[i], durable[i] = c.val, c.err, c.ack
		}
	} else {
		for try := 0; ; try++ {
			pipe := l.rdb.Pipeline()
			cmds := make([]*redis.Cmd, len(claims))
			for i := range claims {
				if try == 0 {
					cmds[i] = claimScript.EvalSha(ctx, pipe, keys(i), args(i)...)
				} else {
					// After NOSCRIPT: in full, which any server runs
					// (see batcher.sendOn).
					cmds[i] = claimScript.Eval(ctx, pipe, keys(i), args(i)...)
				}
			}
			var wait *redis.Cmd
			var info *redis.StringCmd
			var recorded *redis.MapStringStringCmd
			verify := l.verifyRan()
			if want > 0 || verify {
				wait = pipe.Do(ctx, "WAIT", want, l.opts.WaitTimeout.Milliseconds())
				info = pipe.Info(ctx, "replication") // see batcher.sendOn
			}
			if verify {
				recorded = pipe.HGetAll(ctx, replicatedKey)
			}
			_, err := pipe.Exec(ctx)
			if err != nil && try == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
				// The whole pipeline again, in full: a claim that ran
				// the first time answers created again (the record
				// holds its own token), nothing written twice.
				if err := claimScript.Load(ctx, l.rdb).Err(); err != nil {
					return nil, nil, fmt.Errorf("claim orders: %w", err)
				}
				continue
			}
			acked := true
			if wait != nil {
				n, werr := wait.Int64()
				acked = werr == nil && n >= want
				seen := n
				if werr != nil {
					seen = -1
				}
				// (sawReplicas counts only replicas that acknowledged
				// lately.)
				if now, ok := l.batch.sawReplicas(l.rdb, info, seen); ok && now > n {
					acked = false // a replica attached that the writes did not reach
				}
				if recorded != nil && acked && l.checkRan(info, recorded, n) != nil {
					acked = false // ran on a master held to more (see verifyRan)
				}
			}
			for i, cmd := range cmds {
				vals[i], errs[i] = cmd.Result()
				durable[i] = acked
			}
			break
		}
	}
	for i := range claims {
		if errs[i] != nil {
			errs[i] = l.claimError(claims[i], errs[i])
			continue
		}
		a := claims[i]
		a.Token = out[i].Token
		res, cr, err := claimReply(vals[i], a, StateQueued)
		if errors.Is(err, ErrMarkAhead) {
			l.clock.forget(l.shardOf(a.Ref).i)
		}
		if err != nil {
			out[i], errs[i] = ClaimResult{Token: out[i].Token}, err
			continue
		}
		l.wroteTask(a, res, durable[i])
		out[i] = cr
		if !durable[i] {
			errs[i] = ErrNotDurable // for a duplicate: a record not yet on the replicas
		}
	}
	return out, errs, nil
}
