package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// A claim that queues its task writes exactly what asynq's own client
// writes for the same task: the same keys, the same message bytes, the
// same state. This pins the restated layout to the asynq version in
// go.mod: an upgrade that changes it fails here.
func TestTaskAsAsynqWritesIt(t *testing.T) {
	t.Parallel()
	mine := taskstest.StartRedis(t, nil).Client(t)
	theirs := taskstest.StartRedis(t, nil).Client(t)
	task := ledger.Task{
		Type:    "order:submit",
		Payload: []byte(`{"provider":"tencent","order_no":"A1","params":{"n":1}}`),
		Headers: map[string]string{"orderworker-claimed": "1764550000000:3f1c"},
		ID:      "tencent:A1",
		Queue:   "orders-0.1",
		Retry:   1000,
		Timeout: 300,
	}
	client := asynq.NewClientFromRedisClient(theirs)
	t.Cleanup(func() { client.Close() })
	before := time.Now().UnixNano()
	if _, err := client.Enqueue(asynq.NewTaskWithHeaders(task.Type, task.Payload, task.Headers),
		asynq.TaskID(task.ID), asynq.Queue(task.Queue), asynq.MaxRetry(1000), asynq.Timeout(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	l := ledger.New(mine, nil)
	ref := ledger.Ref{Provider: "tencent", OrderNo: "A1"}
	res, err := l.ClaimQueue(ctx, ledger.ClaimArgs{Ref: ref, Params: []byte(`{"n":1}`), ParamsHash: "h", Token: "3f1c", Task: &task})
	if err != nil || !res.Created || res.Token != "3f1c" {
		t.Fatalf("ClaimQueue = %+v, %v", res, err)
	}
	after := time.Now().UnixNano()

	asynqKeys := func(rdb *redis.Client) []string {
		keys, err := rdb.Keys(ctx, "asynq:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		return keys
	}
	if a, b := asynqKeys(mine), asynqKeys(theirs); !slices.Equal(a, b) {
		t.Fatalf("asynq keys: claim wrote %v, asynq's client %v", a, b)
	}
	taskKey := "asynq:{" + task.Queue + "}:t:" + task.ID
	got, err := mine.HGetAll(ctx, taskKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	want, err := theirs.HGetAll(ctx, taskKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(got["msg"]), []byte(want["msg"])) {
		t.Errorf("task message:\n claim  %x\n asynq  %x", got["msg"], want["msg"])
	}
	if got["state"] != want["state"] || len(got) != len(want) {
		t.Errorf("task hash: claim %q, asynq %q", got, want)
	}
	if ns, err := strconv.ParseInt(got["pending_since"], 10, 64); err != nil || ns < before || ns > after {
		t.Errorf("pending_since = %q, want the enqueue's time in ns", got["pending_since"])
	}
	for _, key := range []string{"asynq:{" + task.Queue + "}:pending"} {
		a, _ := mine.LRange(ctx, key, 0, -1).Result()
		b, _ := theirs.LRange(ctx, key, 0, -1).Result()
		if !slices.Equal(a, b) {
			t.Errorf("%s: claim %v, asynq %v", key, a, b)
		}
	}
	a, _ := mine.SMembers(ctx, "asynq:queues").Result()
	b, _ := theirs.SMembers(ctx, "asynq:queues").Result()
	if !slices.Equal(a, b) {
		t.Errorf("asynq:queues: claim %v, asynq %v", a, b)
	}
	// asynq reads it back as its own.
	info, err := asynq.NewInspectorFromRedisClient(mine).GetTaskInfo(task.Queue, task.ID)
	if err != nil || info.State != asynq.TaskStatePending || info.Type != task.Type || !bytes.Equal(info.Payload, task.Payload) ||
		info.MaxRetry != 1000 || info.Timeout != 5*time.Minute || info.Headers["orderworker-claimed"] != task.Headers["orderworker-claimed"] {
		t.Errorf("asynq's inspector reads %+v, %v", info, err)
	}
}

// The claim queues a task only with the record it creates: a duplicate
// queues nothing, and a task already there under the id is left as it is.
func TestClaimQueuesOnlyWithANewRecord(t *testing.T) {
	t.Parallel()
	l, rdb, c := setup(t)
	task := func(payload string) *ledger.Task {
		return &ledger.Task{Type: "order:submit", Payload: []byte(payload), ID: "tencent:Q1", Queue: "orders", Retry: 1000, Timeout: 300}
	}
	ref := ledger.Ref{Provider: "tencent", OrderNo: "Q1"}
	// Load the script, so that the count below is of the claim alone.
	if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "warm"}, []byte(`{}`), "h"); err != nil {
		t.Fatal(err)
	}
	c.n.Store(0)
	res, err := l.ClaimQueue(ctx, ledger.ClaimArgs{Ref: ref, Params: []byte(`{}`), ParamsHash: "h", Task: task("first")})
	if err != nil || !res.Created || res.Token == "" {
		t.Fatalf("ClaimQueue = %+v, %v", res, err)
	}
	if n := c.n.Load(); n != 1 {
		t.Errorf("claim with its task took %d round trips, want 1", n)
	}
	res, err = l.ClaimQueue(ctx, ledger.ClaimArgs{Ref: ref, Params: []byte(`{}`), ParamsHash: "h", Task: task("second")})
	if err != nil || res.Created || res.State != ledger.StateQueued {
		t.Fatalf("second ClaimQueue = %+v, %v; want the duplicate", res, err)
	}
	if n, _ := rdb.LLen(ctx, "asynq:{orders}:pending").Result(); n != 1 {
		t.Errorf("pending tasks = %d, want 1", n)
	}
	// The record is lost, its task is not: a new claim keeps the task.
	if err := rdb.Del(ctx, "orderworker:{ledger}:order:tencent:Q1").Err(); err != nil {
		t.Fatal(err)
	}
	res, err = l.ClaimQueue(ctx, ledger.ClaimArgs{Ref: ref, Params: []byte(`{}`), ParamsHash: "h", Task: task("third")})
	if err != nil || !res.Created {
		t.Fatalf("ClaimQueue after the record was lost = %+v, %v", res, err)
	}
	info, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo("orders", "tencent:Q1")
	if err != nil || string(info.Payload) != "first" {
		t.Errorf("task = %+v, %v; want the first claim's, untouched", info, err)
	}
	if n, _ := rdb.LLen(ctx, "asynq:{orders}:pending").Result(); n != 1 {
		t.Errorf("pending tasks = %d, want 1", n)
	}
}

// A queue counts as added to asynq's set of queues only once a claim's
// script wrote a task to it: a first claim that is a duplicate (it writes
// no task) leaves the next new order to add the queue.
func TestQueueAddedWithTheFirstTaskWritten(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	task := func(no string) *ledger.Task {
		return &ledger.Task{Type: "order:submit", Payload: []byte(no), ID: "tencent:" + no, Queue: "q1", Retry: 1000, Timeout: 300}
	}
	claim(t, l, ledger.Ref{Provider: "tencent", OrderNo: "D1"})
	res, err := l.ClaimQueue(ctx, ledger.ClaimArgs{Ref: ledger.Ref{Provider: "tencent", OrderNo: "D1"}, Params: []byte(`{"a":1}`), ParamsHash: "h1", Task: task("D1")})
	if err != nil || res.Created {
		t.Fatalf("ClaimQueue of a claimed order = %+v, %v; want the duplicate", res, err)
	}
	if n, _ := rdb.SCard(ctx, "asynq:queues").Result(); n != 0 {
		t.Fatalf("asynq:queues has %d members after a duplicate, want none", n)
	}
	res, err = l.ClaimQueue(ctx, ledger.ClaimArgs{Ref: ledger.Ref{Provider: "tencent", OrderNo: "N1"}, Params: []byte(`{"a":1}`), ParamsHash: "h1", Task: task("N1")})
	if err != nil || !res.Created {
		t.Fatalf("ClaimQueue = %+v, %v", res, err)
	}
	if ok, _ := rdb.SIsMember(ctx, "asynq:queues", "q1").Result(); !ok {
		t.Errorf("q1 is not in asynq:queues after a task was queued on it: asynqmon and the backlog gauges would not see it")
	}
}

// TaskRanBefore reads the mark a run leaves on its task before a create
// (MarkTaskRan): false before any, true with the first mark's time after,
// through asynq's own retries of the task; a task that does not exist is
// not created by a mark.
func TestTaskRanBeforeReadsTheMark(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := taskstest.StartRedis(t, nil)
	rdb := srv.Client(t)
	l := ledger.New(rdb, nil)
	opt := asynq.RedisClientOpt{Addr: srv.Addr}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	if _, err := client.Enqueue(asynq.NewTask("t", []byte("x")), asynq.TaskID("wait-1"), asynq.Queue("q"), asynq.MaxRetry(5)); err != nil {
		t.Fatal(err)
	}
	if ran, _, _, err := l.TaskRanBefore(ctx, "q", "wait-1"); err != nil || ran {
		t.Fatalf("before any mark: %v, %v; want false", ran, err)
	}
	first := time.UnixMilli(1_700_000_000_000)
	for i, at := range []time.Time{first, first.Add(time.Hour)} {
		// The first mark's claim is kept with its time.
		if err := l.MarkTaskRan(ctx, "q", "wait-1", at, fmt.Sprintf("claim-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.MarkTaskRan(ctx, "q", "none", first, "claim-0"); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, "asynq:{q}:t:none").Result(); n != 0 {
		t.Errorf("a mark created the hash of a task that does not exist")
	}
	// A run that waits (asynq puts the task back, not counted as a
	// failure) keeps the mark.
	errWait := errors.New("waiting")
	done := make(chan struct{}, 1)
	s := asynq.NewServer(opt, asynq.Config{Concurrency: 1, Queues: map[string]int{"q": 1},
		IsFailure:      func(err error) bool { return !errors.Is(err, errWait) },
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour },
		Logger:         quietAsynq{}})
	if err := s.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		done <- struct{}{}
		return errWait
	})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the task did not run")
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, _ := rdb.HGet(ctx, "asynq:{q}:t:wait-1", "state").Result(); st == "retry" {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the task was not put back")
		}
	}
	ran, at, claim, err := l.TaskRanBefore(ctx, "q", "wait-1")
	if err != nil || !ran || !at.Equal(first) || claim != "claim-0" {
		t.Fatalf("after a mark and a retry: %v, %v, %q, %v; want true at the first mark's time %v, under claim-0", ran, at, claim, err, first)
	}
	if ran, _, _, err := l.TaskRanBefore(ctx, "q", "none"); err != nil || ran {
		t.Fatalf("no such task: %v, %v; want false", ran, err)
	}
}

// quietAsynq discards asynq's logs.
type quietAsynq struct{}

func (quietAsynq) Debug(...any) {}
func (quietAsynq) Info(...any)  {}
func (quietAsynq) Warn(...any)  {}
func (quietAsynq) Error(...any) {}
func (quietAsynq) Fatal(...any) {}

// UnclaimQueued takes back a claim with the task it queued, and only
// that: not a task queued before under the same id (which the claim left
// alone), not a record another claim has found since (answered duplicate:
// accepted), not a task a worker took.
func TestUnclaimQueuedTakesBackOnlyItsOwn(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	task := func(no, token string) *ledger.Task {
		return &ledger.Task{Type: "order:submit", Payload: []byte(no), ID: "tencent:" + no, Queue: "orders", Retry: 1000, Timeout: 300,
			Headers: map[string]string{"orderworker-claimed": "1700000000000:" + token}}
	}
	claim := func(no, token string, tk *ledger.Task) {
		t.Helper()
		if _, err := l.ClaimQueue(ctx, ledger.ClaimArgs{Ref: ledger.Ref{Provider: "tencent", OrderNo: no}, Params: []byte(`{}`), ParamsHash: "h", Token: token, Task: tk}); err != nil {
			t.Fatal(err)
		}
	}
	left := func(no string) (record, task bool) {
		r, _ := rdb.Exists(ctx, "orderworker:{ledger}:order:tencent:"+no).Result()
		k, _ := rdb.Exists(ctx, "asynq:{orders}:t:tencent:"+no).Result()
		return r == 1, k == 1
	}
	// Its own: taken back.
	claim("U1", "tok-1", task("U1", "tok-1"))
	if ok, err := l.UnclaimQueued(ctx, ledger.Ref{Provider: "tencent", OrderNo: "U1"}, "tok-1", task("U1", "tok-1")); err != nil || !ok {
		t.Fatalf("UnclaimQueued of its own = %v, %v; want true", ok, err)
	}
	if r, k := left("U1"); r || k {
		t.Errorf("U1: record %v, task %v left; want neither", r, k)
	}
	// The same take-back again (its reply lost, sent again): it answers
	// as the first did, so that its producer is told surely not accepted,
	// not maybe; and another claim's take-back does not pass for it.
	if ok, err := l.UnclaimQueued(ctx, ledger.Ref{Provider: "tencent", OrderNo: "U1"}, "tok-1", task("U1", "tok-1")); err != nil || !ok {
		t.Errorf("UnclaimQueued of its own again = %v, %v; want true, as the first", ok, err)
	}
	if ok, err := l.UnclaimTaken(ctx, ledger.Ref{Provider: "tencent", OrderNo: "U1"}, "tok-1", nil); err != nil || !ok {
		t.Errorf("UnclaimTaken of its own again = %v, %v; want true, as the first", ok, err)
	}
	if ok, err := l.UnclaimQueued(ctx, ledger.Ref{Provider: "tencent", OrderNo: "U1"}, "tok-other", task("U1", "tok-other")); err != nil || ok {
		t.Errorf("UnclaimQueued of another claim of a removed record = %v, %v; want false", ok, err)
	}
	// Another claim queued a task for the order since, and its record was
	// lost (the task stands, on another master): the take-back sent again
	// finds a task that runs the order, and does not answer removed.
	claim("U1", "tok-1b", task("U1", "tok-1b"))
	if err := rdb.Del(ctx, "orderworker:{ledger}:order:tencent:U1").Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.UnclaimQueued(ctx, ledger.Ref{Provider: "tencent", OrderNo: "U1"}, "tok-1", task("U1", "tok-1")); err != nil || ok {
		t.Errorf("UnclaimQueued again beside another claim's task = %v, %v; want false", ok, err)
	}
	if ok, err := l.UnclaimTaken(ctx, ledger.Ref{Provider: "tencent", OrderNo: "U1"}, "tok-1", task("U1", "tok-1")); err != nil || ok {
		t.Errorf("UnclaimTaken again beside another claim's task = %v, %v; want false", ok, err)
	}
	// A task queued before (the record was lost): left, with the record.
	claim("U2", "tok-old", task("U2", "tok-old"))
	if err := rdb.Del(ctx, "orderworker:{ledger}:order:tencent:U2").Err(); err != nil {
		t.Fatal(err)
	}
	claim("U2", "tok-2", task("U2", "tok-2"))
	if ok, err := l.UnclaimQueued(ctx, ledger.Ref{Provider: "tencent", OrderNo: "U2"}, "tok-2", task("U2", "tok-2")); err != nil || ok {
		t.Fatalf("UnclaimQueued over an earlier task = %v, %v; want false", ok, err)
	}
	if r, k := left("U2"); !r || !k {
		t.Errorf("U2: record %v, task %v; want both kept", r, k)
	}
	// Found by another claim since (a duplicate answer): kept.
	claim("U3", "tok-3", task("U3", "tok-3"))
	claim("U3", "tok-3b", task("U3", "tok-3b"))
	if ok, err := l.UnclaimQueued(ctx, ledger.Ref{Provider: "tencent", OrderNo: "U3"}, "tok-3", task("U3", "tok-3")); err != nil || ok {
		t.Fatalf("UnclaimQueued after a duplicate = %v, %v; want false", ok, err)
	}
	if r, k := left("U3"); !r || !k {
		t.Errorf("U3: record %v, task %v; want both kept", r, k)
	}
	// A task under its id in the other queue that stands for the order
	// (a producer's own, Task.AlsoQueue): it runs the order, so the
	// record stays.
	if err := rdb.HSet(ctx, "asynq:{orders-own}:t:tencent:U4", "state", "pending").Err(); err != nil {
		t.Fatal(err)
	}
	also := task("U4", "tok-4")
	also.AlsoQueue = "orders-own"
	claim("U4", "tok-4", also) // the task there: none queued
	if ok, err := l.UnclaimQueued(ctx, ledger.Ref{Provider: "tencent", OrderNo: "U4"}, "tok-4", also); err != nil || ok {
		t.Fatalf("UnclaimQueued beside a producer's task = %v, %v; want false", ok, err)
	}
	if r, _ := left("U4"); !r {
		t.Error("U4: record taken back while a producer's task runs the order")
	}
	// Confirmed (its producer's take-back timed out, the claim was
	// confirmed on another connection and answered enqueued), then the
	// take-back reaching Redis late: the order stands, with its task.
	claim("U5", "tok-5", task("U5", "tok-5"))
	if mine, err := l.ConfirmClaim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "U5"}, "tok-5"); err != nil || !mine {
		t.Fatalf("ConfirmClaim = %v, %v; want true", mine, err)
	}
	if ok, err := l.UnclaimQueued(ctx, ledger.Ref{Provider: "tencent", OrderNo: "U5"}, "tok-5", task("U5", "tok-5")); err != nil || ok {
		t.Fatalf("UnclaimQueued after ConfirmClaim = %v, %v; want false", ok, err)
	}
	if r, k := left("U5"); !r || !k {
		t.Errorf("U5: record %v, task %v after a late take-back of a confirmed claim; want both kept", r, k)
	}
}

// The same for a claim that did not queue its task (UnclaimTaken): once
// confirmed, a take-back that reaches Redis late removes nothing.
func TestUnclaimTakenLeavesAConfirmedClaim(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	ref := ledger.Ref{Provider: "tencent", OrderNo: "C1"}
	cr, err := l.Claim(ctx, ref, []byte(`{}`), "h")
	if err != nil {
		t.Fatal(err)
	}
	if mine, err := l.ConfirmClaim(ctx, ref, cr.Token); err != nil || !mine {
		t.Fatalf("ConfirmClaim = %v, %v; want true", mine, err)
	}
	if taken, err := l.UnclaimTaken(ctx, ref, cr.Token, nil); err != nil || taken {
		t.Fatalf("UnclaimTaken after ConfirmClaim = %v, %v; want false", taken, err)
	}
	if n, _ := rdb.Exists(ctx, "orderworker:{ledger}:order:tencent:C1").Result(); n != 1 {
		t.Error("a confirmed claim's record was taken back")
	}
	if undone, err := l.Unclaimed(ctx, ref, cr.Token); err != nil || undone {
		t.Errorf("Unclaimed = %v, %v; want false", undone, err)
	}
}

// A task's mark counts only once the replicas have it, as an in-flight
// mark does: with the replica hung, MarkTaskRan is ErrNotDurable (the
// create is then not sent).
func TestMarkTaskRanWaitsForTheReplicas(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	rep := rs.AttachReplica(t)
	l := ledger.New(rdb, &ledger.Options{WaitTimeout: 300 * time.Millisecond})
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: rs.Addr})
	t.Cleanup(func() { client.Close() })
	if _, err := client.Enqueue(asynq.NewTask("t", []byte("x")), asynq.TaskID("m-1"), asynq.Queue("q")); err != nil {
		t.Fatal(err)
	}
	rep.Pause(t)
	if err := l.MarkTaskRan(ctx, "q", "m-1", time.Now(), "c"); !errors.Is(err, ledger.ErrNotDurable) {
		t.Fatalf("MarkTaskRan with the replica hung = %v, want ErrNotDurable", err)
	}
	rep.Resume()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := l.MarkTaskRan(ctx, "q", "m-1", time.Now(), "c")
		if err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("MarkTaskRan once the replica is back: %v", err)
		}
	}
}

// ReplaceTask takes an archived task's place in one step, with what asynq
// reads back as a pending task (the old hash's marks gone with it), and
// tells a task live again or gone from one it replaced.
func TestReplaceTask(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	rdb := srv.Client(t)
	l := ledger.New(rdb, nil)
	opt := asynq.RedisClientOpt{Addr: srv.Addr}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	ins := asynq.NewInspector(opt)
	t.Cleanup(func() { ins.Close() })
	task := ledger.Task{Type: "order:submit", Payload: []byte(`{"n":2}`), Headers: map[string]string{"h": "new"},
		ID: "r-1", Queue: "q", Retry: 1000, Timeout: 300}
	if err := l.ReplaceTask(ctx, task); !errors.Is(err, ledger.ErrTaskGone) {
		t.Fatalf("ReplaceTask of no task = %v, want ErrTaskGone", err)
	}
	if _, err := client.Enqueue(asynq.NewTaskWithHeaders("order:submit", []byte(`{"n":1}`), map[string]string{"h": "old"}),
		asynq.TaskID("r-1"), asynq.Queue("q"), asynq.Unique(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := l.ReplaceTask(ctx, task); !errors.Is(err, ledger.ErrTaskLive) {
		t.Fatalf("ReplaceTask of a pending task = %v, want ErrTaskLive", err)
	}
	if err := l.MarkTaskRan(ctx, "q", "r-1", time.Now(), "c"); err != nil {
		t.Fatal(err)
	}
	if err := ins.ArchiveTask("q", "r-1"); err != nil {
		t.Fatal(err)
	}
	if err := l.ReplaceTask(ctx, task); err != nil {
		t.Fatalf("ReplaceTask of an archived task = %v", err)
	}
	info, err := ins.GetTaskInfo("q", "r-1")
	if err != nil || info.State != asynq.TaskStatePending || string(info.Payload) != `{"n":2}` || info.Headers["h"] != "new" ||
		info.MaxRetry != 1000 || info.Timeout != 300*time.Second {
		t.Fatalf("replaced task: %+v, %v", info, err)
	}
	if n := rdb.ZCard(ctx, "asynq:{q}:archived").Val(); n != 0 {
		t.Errorf("%d archived left", n)
	}
	if ran, _, _, _ := l.TaskRanBefore(ctx, "q", "r-1"); ran {
		t.Error("the old task's mark stayed on the new one")
	}
	if keys := rdb.Keys(ctx, "asynq:{q}:unique:*").Val(); len(keys) != 0 {
		t.Errorf("the old task's unique lock stayed: %v", keys)
	}
}

// A claim whose task carries a mark later than Redis's clock (Task.Mark:
// read off another master before a failover) writes nothing, neither the
// record nor the task, alone or in a batch; the result carries the
// record's creation time on Redis's clock.
func TestClaimRefusesAMarkAheadOfRedis(t *testing.T) {
	t.Parallel()
	l, rdb, _ := setup(t)
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	task := func(no string, mark time.Time) *ledger.Task {
		return &ledger.Task{Type: "order:submit", Payload: []byte(`{}`), ID: "tencent:" + no, Queue: "orders", Retry: 1000, Timeout: 300, Mark: mark}
	}
	ahead := now.Add(time.Hour)
	ref := ledger.Ref{Provider: "tencent", OrderNo: "AHEAD-1"}
	if res, err := l.ClaimQueue(ctx, ledger.ClaimArgs{Ref: ref, Params: []byte(`{}`), ParamsHash: "h", Task: task("AHEAD-1", ahead)}); !errors.Is(err, ledger.ErrMarkAhead) {
		t.Fatalf("ClaimQueue with a mark an hour ahead = %+v, %v; want ErrMarkAhead", res, err)
	}
	res, errs, err := l.ClaimMany(ctx, []ledger.ClaimArgs{
		{Ref: ledger.Ref{Provider: "tencent", OrderNo: "AHEAD-2"}, Params: []byte(`{}`), ParamsHash: "h", Task: task("AHEAD-2", ahead)},
		{Ref: ledger.Ref{Provider: "tencent", OrderNo: "BEHIND-3"}, Params: []byte(`{}`), ParamsHash: "h", Task: task("BEHIND-3", now)},
	})
	if err != nil || !errors.Is(errs[0], ledger.ErrMarkAhead) || errs[1] != nil || !res[1].Created {
		t.Fatalf("ClaimMany = %+v, %v, %v; want the first refused, the second created", res, errs, err)
	}
	if at := res[1].At; at.Before(now.Truncate(time.Millisecond)) || at.After(time.Now().Add(time.Minute)) {
		t.Errorf("created At = %v; want Redis's time at the claim (after %v)", at, now)
	}
	for _, key := range []string{"orderworker:{ledger}:order:tencent:AHEAD-1", "orderworker:{ledger}:order:tencent:AHEAD-2",
		"asynq:{orders}:t:tencent:AHEAD-1", "asynq:{orders}:t:tencent:AHEAD-2"} {
		if n, _ := rdb.Exists(ctx, key).Result(); n != 0 {
			t.Errorf("%s was written by a claim refused for its mark", key)
		}
	}
	if n, _ := rdb.LLen(ctx, "asynq:{orders}:pending").Result(); n != 1 {
		t.Errorf("pending tasks = %d, want 1 (BEHIND-3's)", n)
	}
	// Found again, the record's creation time comes with the duplicate.
	dup, err := l.ClaimQueue(ctx, ledger.ClaimArgs{Ref: ledger.Ref{Provider: "tencent", OrderNo: "BEHIND-3"}, Params: []byte(`{}`), ParamsHash: "h", Task: task("BEHIND-3", now)})
	if err != nil || dup.Created || !dup.At.Equal(res[1].At) {
		t.Errorf("duplicate ClaimQueue = %+v, %v; want At %v", dup, err, res[1].At)
	}
}
