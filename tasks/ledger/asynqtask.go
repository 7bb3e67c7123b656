package ledger

import (
	"context"
	"errors"
	"slices"

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

// TaskRanBefore reports whether asynq's task id in queue has ended a run
// before this one: asynq writes into a task's message, each time it puts
// the task back after a run (a counted failure or not), the run's error
// and time (error_msg, last_failed_at), and counts failures (retried). A
// task that never ran, or that does not exist, reports false. The message
// is the task's hash field "msg" (see Task.message for the layout).
func (l *Ledger) TaskRanBefore(ctx context.Context, queue, id string) (bool, error) {
	msg, err := l.rdb.HGet(ctx, asynqTaskKey(queue, id), "msg").Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return ranBefore(msg), nil
}

// ranBefore reads asynq's TaskMessage b for a sign of an earlier run:
// retried (6), error_msg (7) or last_failed_at (11) set. A message that
// cannot be read counts as one that ran: the caller then looks the order
// up before anything is submitted, the safe side.
func ranBefore(b []byte) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return true
		}
		b = b[n:]
		switch {
		case (num == 6 || num == 11) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return true
			}
			if v != 0 {
				return true
			}
			b = b[n:]
			continue
		case num == 7 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return true
			}
			if len(v) > 0 {
				return true
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return true
		}
		b = b[n:]
	}
	return false
}
