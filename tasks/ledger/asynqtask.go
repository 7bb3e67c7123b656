package ledger

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file writes an order's asynq task in the same script as its claim
// (ClaimArgs.Task), so that a new order costs one round trip and the claim
// and its task are written together or not at all. It restates the part of
// asynq's Redis layout that its client writes for a pending task (asynq
// v0.26: the task hash "asynq:{queue}:t:<id>" with msg, state and
// pending_since, the id pushed on "asynq:{queue}:pending", the queue added
// to "asynq:queues") and its task message (asynq's TaskMessage protobuf).
// TestTaskAsAsynqWritesIt pins both to what asynq's own client writes, so
// an asynq upgrade that changes them fails the tests instead of orders.

// Task is an asynq task to queue with a claim, in asynq's layout.
type Task struct {
	Type    string
	Payload []byte
	Headers map[string]string
	ID      string // asynq's task id
	Queue   string
	Retry   int32 // asynq's MaxRetry
	Timeout int64 // seconds
	// AlsoQueue is another queue where a task with this id stands for
	// the order too ("" for none): with ledger shards, the queue as
	// named, where a producer that writes its tasks itself puts them. A
	// task there is left to do the order's work, as one in Queue is.
	AlsoQueue string
	// Mark is the time the task's headers give as no later than any
	// create of the order (the claim mark), zero for none. On Redis's
	// clock (Ledger.NotAfterNow), a claim refuses to queue a task whose
	// Mark is later than the clock of the master it writes to
	// (ErrMarkAhead): after a failover to a master whose clock is behind,
	// a mark read off the old one could fall after a create stamped on
	// the new one, and a lookup from it miss the order.
	Mark time.Time
}

// message encodes t as asynq's TaskMessage: its fields in field-number
// order, zero values left out (proto3), header entries sorted by key.
func (t Task) message() []byte {
	size := 32 + len(t.Type) + len(t.Payload) + len(t.ID) + len(t.Queue)
	for k, v := range t.Headers {
		size += 8 + len(k) + len(v)
	}
	b := make([]byte, 0, size)
	str := func(num protowire.Number, s string) {
		if s != "" {
			b = protowire.AppendTag(b, num, protowire.BytesType)
			b = protowire.AppendString(b, s)
		}
	}
	varint := func(num protowire.Number, v uint64) {
		if v != 0 {
			b = protowire.AppendTag(b, num, protowire.VarintType)
			b = protowire.AppendVarint(b, v)
		}
	}
	str(1, t.Type) // type
	if len(t.Payload) > 0 {
		b = protowire.AppendTag(b, 2, protowire.BytesType) // payload
		b = protowire.AppendBytes(b, t.Payload)
	}
	str(3, t.ID)                      // id
	str(4, t.Queue)                   // queue
	varint(5, uint64(int64(t.Retry))) // retry (int32: negative ones sign-extended)
	varint(8, uint64(t.Timeout))      // timeout
	// 9 deadline, 10 unique_key, 12 retention and 14 group_key are zero
	// for order tasks.
	keys := make([]string, 0, len(t.Headers))
	for k := range t.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys { // headers: map<string, string> = 15
		var e []byte
		e = protowire.AppendTag(e, 1, protowire.BytesType)
		e = protowire.AppendString(e, k)
		e = protowire.AppendTag(e, 2, protowire.BytesType)
		e = protowire.AppendString(e, t.Headers[k])
		b = protowire.AppendTag(b, 15, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	return b
}

// asynq's keys for a task of queue q.
func asynqTaskKey(q, id string) string { return "asynq:{" + q + "}:t:" + id }
func asynqPendingKey(q string) string  { return "asynq:{" + q + "}:pending" }

const asynqQueuesKey = "asynq:queues"

// QueuesTasks reports whether a claim can write its task in the same
// script (ClaimArgs.Task): not on Redis Cluster, where the record and
// asynq's keys live in different slots, nor once Redis refused such a
// script (ErrTaskNotInClaim).
func (l *Ledger) QueuesTasks() bool { return l.batch.cluster == nil && !l.noTasks.Load() }

// ranField is the field of asynq's task hash where a run that is about to
// send a create records it (MarkTaskRan): asynq's own scripts rewrite only
// the hash's msg, state and the like, and delete the hash when the task
// is done, so the field lasts as long as the task, through retries, waits,
// recoveries and requeues at shutdown alike.
const ranField = "orderworker_ran"

// ranClaimField holds, with the first mark, the claim of the record the
// run was about to create under (see MarkTaskRan).
const ranClaimField = "orderworker_ran_claim"

// markTaskRanScript sets ranField (KEYS[1], ARGV[1]) unless set, on a
// task hash that exists. A mark already there is written again (the same
// value), so that the WAIT after the script covers it: an earlier run's
// mark may not have reached the replicas (its WAIT timed out), and a WAIT
// after a script that wrote nothing would cover only this connection's
// own past writes.
var markTaskRanScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('HGET', KEYS[1], '` + ranField + `')
if v then
  redis.call('HSET', KEYS[1], '` + ranField + `', v)
  return 0
end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], '` + ranClaimField + `', ARGV[2]) end
return redis.call('HSET', KEYS[1], '` + ranField + `', ARGV[1])
`)

// MarkTaskRan records on asynq's task id in queue that a run of it is
// about to send a create, at at, under the record of claim (Record.Claim):
// the first mark's time and claim are kept. Should Redis lose the order's
// record, a later run knows that the order may exist, and from when
// (TaskRanBefore); one that finds a record of another claim knows that the
// first create was not under it. With durable writes on, it is
// ErrNotDurable until the replicas have the mark, as a create's in-flight
// mark is (a failover must not keep the record and lose the mark).
func (l *Ledger) MarkTaskRan(ctx context.Context, queue, id string, at time.Time, claim string) error {
	_, durable, err := l.run(ctx, markTaskRanScript, true, []string{asynqTaskKey(queue, id)}, at.UnixMilli(), claim)
	if err == nil && !durable {
		return ErrNotDurable
	}
	return err
}

// replaceTaskScript puts a pending task in place of an archived or
// completed one with the same id, in one step: the old one's hash and its
// place in the archived or completed set go, the new one is written as
// asynq's client writes a pending task (a unique lock the old one held
// goes, as asynq's delete removes it). It replies 0, changing nothing,
// when the task is live again, and 2 when it is gone.
//
// KEYS: the task hash, the archived and completed sets, the pending list.
// ARGV: the id, the message, the time in ns.
var replaceTaskScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 2 end
if st ~= 'archived' and st ~= 'completed' then return 0 end
local uk = redis.call('HGET', KEYS[1], 'unique_key')
if uk and uk ~= '' and redis.call('GET', uk) == ARGV[1] then redis.call('DEL', uk) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'msg', ARGV[2], 'state', 'pending', 'pending_since', ARGV[3])
redis.call('LPUSH', KEYS[4], ARGV[1])
return 1
`)

// ReplaceTask queues t in place of an archived or completed task with its
// id in its queue, atomically: what the old task's hash held (its marks)
// is gone only once t, which carries what it must hand on, is queued;
// there is no moment with neither. It reports ErrTaskLive, changing
// nothing, when that task is live again, and ErrTaskGone when it is gone
// (the caller queues t as a new task). The queue is already in asynq's
// set of queues (the old task was in it). A durable write (see
// Options.Durable): ErrNotDurable when the replicas did not acknowledge it.
func (l *Ledger) ReplaceTask(ctx context.Context, t Task) error {
	q := t.Queue
	v, durable, err := l.run(ctx, replaceTaskScript, true, []string{asynqTaskKey(q, t.ID), "asynq:{" + q + "}:archived", "asynq:{" + q + "}:completed", asynqPendingKey(q)},
		t.ID, t.message(), l.now().UnixNano())
	if err != nil {
		return err
	}
	switch n, _ := v.(int64); n {
	case 0:
		return ErrTaskLive
	case 2:
		return ErrTaskGone
	}
	if !durable {
		return ErrNotDurable
	}
	return nil
}

// ErrTaskLive and ErrTaskGone are ReplaceTask's answers for a task that is
// no longer archived or completed: live again, or gone.
var (
	ErrTaskLive = errors.New("the task is live again")
	ErrTaskGone = errors.New("the task is gone")
)

// TaskExists reports whether asynq holds a task with id in queue, in any
// state.
func (l *Ledger) TaskExists(ctx context.Context, queue, id string) (bool, error) {
	n, err := l.rdb.Exists(ctx, asynqTaskKey(queue, id)).Result()
	return n == 1, err
}

// Ping reports whether the ledger's Redis answers (every master, on Redis
// Cluster).
func (l *Ledger) Ping(ctx context.Context) error {
	if c, ok := l.rdb.(*redis.ClusterClient); ok {
		return c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return node.Ping(ctx).Err() })
	}
	return l.rdb.Ping(ctx).Err()
}

// StandQuery asks Stand about an order: its record, and its task (id
// TaskID) in any of Queues.
type StandQuery struct {
	Ref    Ref
	TaskID string
	Queues []string
}

// Stand reports, for each query, whether Redis holds the order's record
// or its task, in one round trip (a pipeline): whether an order whose
// write was refused before it was sent got in with an earlier send.
func (l *Ledger) Stand(ctx context.Context, qs []StandQuery) ([]bool, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([][]*redis.IntCmd, len(qs))
	for i, q := range qs {
		cmds[i] = append(cmds[i], pipe.Exists(ctx, l.shardOf(q.Ref).recordKey(q.Ref)))
		for _, queue := range q.Queues {
			cmds[i] = append(cmds[i], pipe.Exists(ctx, asynqTaskKey(queue, q.TaskID)))
		}
	}
	if len(qs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]bool, len(qs))
	for i, cs := range cmds {
		for _, c := range cs {
			out[i] = out[i] || c.Val() > 0
		}
	}
	return out, nil
}

// TaskRanBefore reports whether a run of asynq's task id in queue sent a
// create, or was about to (MarkTaskRan), when the first one did and under
// the record of which claim ("" when not known: a mark written before
// claims were kept, or without one). A task never marked, or one that does
// not exist, reports false.
func (l *Ledger) TaskRanBefore(ctx context.Context, queue, id string) (ran bool, at time.Time, claim string, err error) {
	v, err := l.rdb.HMGet(ctx, asynqTaskKey(queue, id), ranField, ranClaimField).Result()
	if err != nil {
		return false, time.Time{}, "", err
	}
	mark, _ := v[0].(string)
	claim, _ = v[1].(string)
	if mark == "" {
		return false, time.Time{}, "", nil
	}
	ms, err := strconv.ParseInt(mark, 10, 64)
	if err != nil || ms <= 0 {
		return true, time.Time{}, claim, nil // marked, time unreadable
	}
	return true, time.UnixMilli(ms), claim, nil
}
