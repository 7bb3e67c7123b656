package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/devmode"
	"github.com/orderworker/orderworker/providers/registry"
	"github.com/orderworker/orderworker/tasks"
	ledgerpkg "github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// realOrder puts an order in rs as a producer would (ledger record and
// queued task) and returns a snapshot of everything rs holds.
func realOrder(t *testing.T, rs *taskstest.Server) map[string]string {
	t.Helper()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: rs.Addr})
	defer client.Close()
	enq := tasks.NewEnqueuer(client, tasks.NewLedger(rs.Client(t)), validatorsForTest(), nil)
	res, err := enq.Enqueue(context.Background(), []byte(`{"provider":"tencent","order_no":"RealOrder1","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`))
	if err != nil || res.Status != tasks.Enqueued {
		t.Fatalf("Enqueue = %+v, %v", res, err)
	}
	return snapshot(t, rs)
}

// snapshot returns every key in rs with its serialized value and TTL.
func snapshot(t *testing.T, rs *taskstest.Server) map[string]string {
	t.Helper()
	ctx := context.Background()
	c := rs.Client(t)
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		v, err := c.Dump(ctx, k).Result()
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		out[k] = v + " ttl:" + c.TTL(ctx, k).Val().Round(time.Hour).String()
	}
	return out
}

// -dev given a Redis that holds another's order refuses to start, says
// why, and leaves that Redis as it was.
func TestDevRefusesRedisWithOtherData(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	before := realOrder(t, rs)
	var stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, []string{"-dev", "-dev-redis", rs.URL(), "-admin-addr", "127.0.0.1:0"}, envFunc(nil), &syncBuffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "did not write") {
		t.Fatalf("worker -dev -dev-redis (a Redis holding an order) = %v, want a refusal with the reason\nlogs:\n%s", err, stderr.String())
	}
	if after := snapshot(t, rs); !maps.Equal(before, after) {
		t.Errorf("the refused Redis changed:\nbefore %v\nafter  %v", keysOf(before), keysOf(after))
	}
	rec, err := tasks.NewLedger(rs.Client(t)).Get(context.Background(), tasks.OrderRef{Provider: "tencent", OrderNo: "RealOrder1"})
	if err != nil || rec == nil || rec.State != tasks.StateQueued {
		t.Errorf("the real order after -dev: %+v, %v; want it still queued", rec, err)
	}
}

// REDIS_URL does not choose -dev's Redis: with it naming a Redis that holds
// an order, -dev runs its demo on an embedded Redis and never touches that
// one.
func TestDevIgnoresREDIS_URL(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	before := realOrder(t, rs)
	checkDemo(t, demoRecords(t, map[string]string{"REDIS_URL": rs.URL()}))
	if after := snapshot(t, rs); !maps.Equal(before, after) {
		t.Errorf("the Redis at REDIS_URL changed under -dev:\nbefore %v\nafter  %v", keysOf(before), keysOf(after))
	}
}

func keysOf(m map[string]string) []string {
	var ks []string
	for k := range maps.Keys(m) {
		ks = append(ks, k)
	}
	return ks
}

// On a cluster, -dev checks every master, not only the one that serves its
// marker: a key on another master is data -dev did not write.
func TestDevRefusesAClusterWithOtherData(t *testing.T) {
	t.Parallel()
	cl := taskstest.StartCluster(t, nil)
	c := cl.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := keyOffTheMarker(cl, "real-order-%d")
	if err := c.Set(ctx, key, "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	err := run(ctx, []string{"-dev", "-dev-redis", cl.URL(), "-admin-addr", "127.0.0.1:0"}, envFunc(nil), &syncBuffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "did not write") {
		t.Fatalf("worker -dev -dev-redis (a cluster holding a key on another master than the marker's) = %v, want a refusal\nlogs:\n%s", err, stderr.String())
	}
	if n, err := c.Exists(ctx, devMarkerKey).Result(); err != nil || n != 0 {
		t.Errorf("EXISTS %s after the refusal = %d, %v; want 0", devMarkerKey, n, err)
	}
}

// -dev's outcome events are a sandbox's: it refuses to deliver them to
// another machine, and never shows the URL's secrets in saying so.
func TestDevDeliversWebhooksOnlyLocally(t *testing.T) {
	t.Parallel()
	secret := newWebhookSecret(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr syncBuffer
	err := run(ctx, []string{"-dev", "-admin-addr", "127.0.0.1:0"}, envFunc(map[string]string{
		"REDIS_URL":                  "redis://" + freeAddr(t) + "/0",
		"ORDERWORKER_WEBHOOK_URLS":   "http://127.0.0.1:1/hook,https://app.example/hook?token=topsecret",
		"ORDERWORKER_WEBHOOK_SECRET": secret,
	}), &syncBuffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "-dev delivers webhooks only to this machine") || !strings.Contains(err.Error(), "app.example") {
		t.Fatalf("worker -dev with a remote webhook URL = %v, want a refusal naming it\nlogs:\n%s", err, stderr.String())
	}
	if strings.Contains(err.Error()+stderr.String(), "topsecret") || strings.Contains(err.Error()+stderr.String(), secret) {
		t.Errorf("the refusal or the logs show a secret: %v\n%s", err, stderr.String())
	}
}

// -dev never listens on REDIS_URL's address, even a free loopback one: a
// -dev worker started while the real Redis there is down would take its
// producers' real orders and pay them through the sandboxes. Its embedded
// Redis carries the -dev marker, which enqueue -dev looks for.
func TestDevEmbeddedRedisNeverTakesREDIS_URLsAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	real := freeAddr(t) // the real Redis's address, while it is down
	cfg := &config{RedisURL: "redis://" + real + "/3"}
	d := &devEnv{stop: make(chan struct{})}
	if err := d.startRedis(cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.mini.Addr() == real || strings.Contains(cfg.RedisURL, real) {
		t.Fatalf("the embedded Redis took REDIS_URL's address %s (%s)", real, cfg.RedisURL)
	}
	producer := redis.NewClient(&redis.Options{Addr: real, MaxRetries: -1})
	defer producer.Close()
	if err := producer.Ping(ctx).Err(); err == nil {
		t.Errorf("a producer with REDIS_URL reaches a Redis at %s: want nothing there", real)
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	worker := redis.NewClient(opt)
	defer worker.Close()
	if v, err := worker.Get(ctx, devMarkerKey).Result(); err != nil || v != devMarkerValue {
		t.Errorf("the embedded Redis's %s = %q, %v; want the -dev marker", devMarkerKey, v, err)
	}
	// Every database carries it: a producer given /1 refuses too; and
	// there are no others (miniredis would serve any number, unmarked).
	opt.DB = devDatabases - 1
	other := redis.NewClient(opt)
	defer other.Close()
	if v, err := other.Get(ctx, devMarkerKey).Result(); err != nil || v != devMarkerValue {
		t.Errorf("the embedded Redis's database %d: %s = %q, %v; want the -dev marker", opt.DB, devMarkerKey, v, err)
	}
	for _, db := range []int{devDatabases, 100} {
		opt.DB = db
		beyond := redis.NewClient(opt)
		err := beyond.Set(ctx, "real-order", "x", 0).Err()
		beyond.Close()
		if err == nil || !strings.Contains(err.Error(), "DB index is out of range") {
			t.Errorf("the embedded Redis's database %d took a write (%v); want it refused", db, err)
		}
	}
}

// -dev's own port is not taken either when REDIS_URL names it: the real
// Redis may be the one there, down.
func TestDevAvoidsItsOwnPortWhenREDIS_URLNamesIt(t *testing.T) {
	t.Parallel()
	cfg := &config{RedisURL: "redis://127.0.0.1:" + devmode.RedisPort + "/0"}
	d := &devEnv{stop: make(chan struct{})}
	if err := d.startRedis(cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.mini.Addr() == devmode.RedisAddr {
		t.Errorf("the embedded Redis listens on %s, which REDIS_URL names", devmode.RedisAddr)
	}
}

// A real worker refuses a Redis that holds the -dev marker: the sandbox
// orders there would go to the real providers.
// The marker is asked first: -dev records its own data key there, and a
// worker without it was told to set ORDERWORKER_DATA_KEY instead.
func TestWorkerRefusesADevRedis(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	if err := rdb.Set(context.Background(), devMarkerKey, devMarkerValue, 0).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, []string{"-admin-addr", "127.0.0.1:0"}, envFunc(map[string]string{"REDIS_URL": rs.URL()}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), devMarkerKey) {
		t.Errorf("a worker on -dev's Redis: %v; want a refusal naming the marker", err)
	}
	sealer, err := tasks.NewSealer(devmode.DataKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := tasks.NewLedger(rdb).CheckDataKey(ctx, sealer.KeyID()); err != nil {
		t.Fatal(err)
	}
	err = run(ctx, []string{"-admin-addr", "127.0.0.1:0"}, envFunc(map[string]string{"REDIS_URL": rs.URL()}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), devMarkerKey) || strings.Contains(err.Error(), "ORDERWORKER_DATA_KEY") {
		t.Errorf("a worker without a data key on -dev's Redis, which recorded -dev's key: %v; want a refusal naming the marker, not the data key", err)
	}
}

// The marker is watched while a worker runs, not only at its start: a real
// worker whose Redis worker -dev empties and marks meanwhile stops (it
// would send -dev's sandbox orders to the real providers), and a -dev
// worker whose Redis loses the marker (flushed, restarted empty) stops (it
// would pay real orders written there through its sandboxes).
func TestWorkersWatchTheDevMarker(t *testing.T) {
	t.Parallel()
	waitStop := func(t *testing.T, done chan error, logs *syncBuffer, want string) {
		t.Helper()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("worker stopped with %v; want an error saying %q\nlogs:\n%s", err, want, logs.String())
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("worker still running 15s after the marker changed\nlogs:\n%s", logs.String())
		}
	}
	t.Run("real worker, marker appears", func(t *testing.T) {
		t.Parallel()
		rs := taskstest.StartRedis(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done, logs := startWorker(t, ctx, rs.URL(), "127.0.0.1:0")
		waitStarted(t, logs)
		if err := rs.Client(t).Set(context.Background(), devMarkerKey, devMarkerValue, 0).Err(); err != nil {
			t.Fatal(err)
		}
		waitStop(t, done, logs, "now holds the -dev marker")
	})
	t.Run("-dev worker, marker vanishes", func(t *testing.T) {
		t.Parallel()
		rs := taskstest.StartRedis(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var logs syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"-dev", "-dev-redis", rs.URL(), "-admin-addr", "127.0.0.1:0", "-shutdown-timeout", "2s"}, envFunc(nil), &syncBuffer{}, &logs)
		}()
		waitStarted(t, &logs)
		if err := rs.Client(t).FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		waitStop(t, done, &logs, "vanished from -dev's Redis")
	})
}

// A Redis that was empty when -dev marked it, but that another process
// writes to within the watch (a worker or producer whose Redis was just
// flushed, writing again), is refused, and the marker taken back: -dev
// would pay that process's orders, and a worker there would send -dev's
// orders to the real providers.
func TestDevRefusesARedisAnotherProcessWrites(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { // a real worker's heartbeat, after the flush
		for ctx.Err() == nil {
			if n, _ := rdb.Exists(ctx, devMarkerKey).Result(); n == 1 {
				_ = rdb.Set(ctx, "asynq:servers:{host:1:real}", "x", time.Minute).Err()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var logs syncBuffer
	err := run(ctx, []string{"-dev", "-dev-redis", rs.URL(), "-admin-addr", "127.0.0.1:0"}, envFunc(nil), &syncBuffer{}, &logs)
	if err == nil || !strings.Contains(err.Error(), "another process wrote 1 keys") {
		t.Fatalf("worker -dev on a Redis another process writes = %v; want a refusal\nlogs:\n%s", err, logs.String())
	}
	if n, err := rdb.Exists(context.Background(), devMarkerKey).Result(); err != nil || n != 0 {
		t.Errorf("EXISTS %s after the refusal = %d, %v; want the marker taken back", devMarkerKey, n, err)
	}
}

// While -dev claims a Redis its marker is pending: real processes take it
// for marked (they refuse it), and another -dev refuses it too, naming the
// key to delete if no -dev is claiming it any more (one stopped while
// claiming it). The claim ends with the marker's final value.
func TestDevClaimIsPendingUntilChecked(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-dev", "-dev-redis", rs.URL(), "-admin-addr", "127.0.0.1:0", "-shutdown-timeout", "2s"}, envFunc(nil), &syncBuffer{}, &logs)
	}()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if v, _ := rdb.Get(ctx, devMarkerKey).Result(); strings.HasPrefix(v, devmode.PendingPrefix) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no pending marker while -dev claims its Redis:\n%s", logs.String())
		}
	}
	var other syncBuffer
	err := run(ctx, []string{"-dev", "-dev-redis", rs.URL(), "-admin-addr", "127.0.0.1:0"}, envFunc(nil), &syncBuffer{}, &other)
	if err == nil || !strings.Contains(err.Error(), "another worker -dev is claiming it") {
		t.Errorf("a second -dev during the claim = %v; want a refusal", err)
	}
	if err := run(ctx, []string{"-admin-addr", "127.0.0.1:0"}, envFunc(map[string]string{"REDIS_URL": rs.URL()}), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), devMarkerKey) {
		t.Errorf("a real worker during the claim = %v; want a refusal naming the marker", err)
	}
	waitStarted(t, &logs)
	if v, err := rdb.Get(ctx, devMarkerKey).Result(); err != nil || v != devMarkerValue {
		t.Errorf("marker after the claim = %q, %v; want its final value", v, err)
	}
	cancel()
	<-done
}

// waitStarted waits until a worker run logging to logs says it started.
func waitStarted(t *testing.T, logs *syncBuffer) {
	t.Helper()
	for end := time.Now().Add(15 * time.Second); !strings.Contains(logs.String(), "worker started"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the worker did not start:\n%s", logs.String())
		}
	}
}

// On a Redis Cluster, another process that writes to a master other than
// the marker's while -dev checks its claim gets -dev to refuse, and the
// marker taken back: left final, the next -dev would take the cluster,
// with that process's data, for its own.
func TestDevClusterClaimRefusedLeavesNoMarker(t *testing.T) {
	t.Parallel()
	cl := taskstest.StartCluster(t, nil)
	c := cl.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := keyOffTheMarker(cl, "asynq:{real}:%d")
	go func() { // a real process writes, on another master, during the claim
		for ctx.Err() == nil {
			if v, _ := c.Get(ctx, devMarkerKey).Result(); strings.HasPrefix(v, devmode.PendingPrefix) {
				_ = c.Set(ctx, key, "real order", 0).Err()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	log := slog.New(slog.DiscardHandler)
	if err := claimDevRedis(ctx, cl.URL(), log); err == nil || !strings.Contains(err.Error(), "another process wrote") {
		t.Fatalf("claim with another writer on another master = %v; want a refusal", err)
	}
	if n, err := c.Exists(ctx, devMarkerKey).Result(); err != nil || n != 0 {
		v, _ := c.Get(ctx, devMarkerKey).Result()
		t.Errorf("after the refused claim the marker is %q (%v): want it taken back", v, err)
	}
	if err := claimDevRedis(ctx, cl.URL(), log); err == nil || !strings.Contains(err.Error(), "no "+devMarkerKey+" marker") {
		t.Errorf("a second -dev claim of the cluster holding another process's key = %v; want a refusal", err)
	}
}

// -dev runs an order only while its Redis holds the -dev marker, checked
// before every order: one written just after a flush (the marker gone) may
// be a real one, which the sandboxes would pay.
func TestDevRunsOrdersOnlyWhileMarked(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	ctx := context.Background()
	ran := 0
	h := devOnly(rdb)(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { ran++; return nil }))
	// As an Enqueuer queues it: claimed first.
	task := asynq.NewTaskWithHeaders(tasks.TypeOrderSubmit, []byte(`{}`), map[string]string{"orderworker-claimed": "1700000000000:t"})
	if err := h.ProcessTask(ctx, task); err == nil || !strings.Contains(err.Error(), "marker is gone") || ran != 0 || tasks.IsFailure(err) {
		t.Errorf("without the marker: ProcessTask = %v (a failure: %v), ran %d times; want a wait, not run", err, err != nil && tasks.IsFailure(err), ran)
	}
	// Nor does the handler record an order whose record is missing.
	if devRecordCheck(false, rdb) != nil {
		t.Error("devRecordCheck without -dev: want none")
	}
	check := devRecordCheck(true, rdb)
	if err := check(ctx); err == nil || !strings.Contains(err.Error(), "marker is gone") {
		t.Errorf("devRecordCheck without the marker = %v; want a refusal", err)
	}
	if err := rdb.Set(ctx, devMarkerKey, devMarkerValue, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := h.ProcessTask(ctx, task); err != nil || ran != 1 {
		t.Errorf("with the marker: ProcessTask = %v, ran %d times; want run once", err, ran)
	}
	if err := check(ctx); err != nil {
		t.Errorf("devRecordCheck with the marker = %v; want nil", err)
	}
	// A task its producer wrote into asynq itself (no claim) may be a
	// real order sent to -dev's Redis: never run, archived at once.
	raw, err := tasks.NewOrderSubmitTask(tasks.Payload{Provider: "tencent", OrderNo: "Real-1", Params: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.ProcessTask(ctx, raw); err == nil || !errors.Is(err, asynq.SkipRetry) || ran != 1 {
		t.Errorf("a task written straight into asynq: ProcessTask = %v, ran %d times; want it archived (SkipRetry), not run", err, ran-1)
	}
}

// keyOffTheMarker returns the first key format makes (with 0, 1, ...) that
// a master other than the -dev marker's serves.
func keyOffTheMarker(cl *taskstest.Cluster, format string) string {
	markerMaster, _ := cl.MasterFor(devMarkerKey)
	for i := 0; ; i++ {
		key := fmt.Sprintf(format, i)
		if m, _ := cl.MasterFor(key); m != markerMaster {
			return key
		}
	}
}

// -demo interrupted (Ctrl-C) says so, naming the order it was waiting for;
// its two minutes run out, it says that instead.
func TestDemoWaitSaysWhyItStopped(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	ledger := tasks.NewLedger(rs.Client(t))
	ref := tasks.OrderRef{Provider: "tencent", OrderNo: "DemoWait-1"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := waitOutcome(ctx, ledger, ref); err == nil || !strings.Contains(err.Error(), "interrupted while order tencent/DemoWait-1 was no record") {
		t.Errorf("interrupted: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := waitOutcome(ctx, ledger, ref); err == nil || !strings.Contains(err.Error(), "no outcome in time") {
		t.Errorf("timed out: %v", err)
	}
}

// -demo interrupted prints the records of the orders that did end, those
// after the one it was waiting for included, and names every one that did
// not (a black-box run: only the orders before the first one under way
// were printed, and that one alone named).
func TestDemoInterruptedPrintsWhatEnded(t *testing.T) {
	t.Parallel()
	f := newOrdersFixture(t)
	f.seed()
	refs := []tasks.OrderRef{{Provider: "tencent", OrderNo: "T-E1"}, {Provider: "aliyun", OrderNo: "A-U1"},
		{Provider: "aliyun", OrderNo: "A-PAID"}, {Provider: "tencent", OrderNo: "T-Q1"}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	err := printOutcomes(ctx, f.ledger, refs, registry.Validators("test"), f.sealer, &out)
	var printed []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec struct {
			OrderNo string `json:"order_no"`
		}
		if json.Unmarshal([]byte(l), &rec) == nil {
			printed = append(printed, rec.OrderNo)
		}
	}
	if !slices.Equal(printed, []string{"T-E1", "A-PAID"}) {
		t.Errorf("printed %v; want the two that ended, T-E1 and A-PAID:\n%s", printed, out.String())
	}
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), "aliyun/A-U1 (unknown)") ||
		!strings.Contains(err.Error(), "tencent/T-Q1 (queued)") || !strings.Contains(err.Error(), "tencent/T-E1: errored") || strings.Contains(err.Error(), "A-PAID") {
		t.Errorf("error = %v; want interrupted, A-U1 and T-Q1 named under way, T-E1 as not paid, A-PAID not named", err)
	}
	if strings.Contains(out.String(), fixturePhone) {
		t.Errorf("a phone number in clear in the records printed:\n%s", out.String())
	}
}

// -dev given a database that holds only a ledger's epoch key (what a
// worker writes first once its database was emptied: -dev's own after a
// flush) refuses it as before, but says what the key is and how to reuse
// the database (a black-box run: "holds data that -dev did not write",
// though -dev wrote it).
func TestDevNamesAnEpochKeyLeftAfterAFlush(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	rdb := rs.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := "orderworker:{ledger}:epoch"
	if err := rdb.HSet(ctx, key, "id", "e1").Err(); err != nil {
		t.Fatal(err)
	}
	err := claimDevRedis(ctx, rs.URL(), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "epoch key ("+key+")") || !strings.Contains(err.Error(), "delete "+key) {
		t.Errorf("a database holding only an epoch key: %v; want a refusal naming the key", err)
	}
	if err := rdb.HSet(ctx, "orderworker:{ledger}:order:tencent:T1", "state", "queued").Err(); err != nil {
		t.Fatal(err)
	}
	if err := claimDevRedis(ctx, rs.URL(), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "did not write") {
		t.Errorf("a database holding an epoch key and an order: %v; want the refusal as before", err)
	}
	for k, want := range map[string]bool{key: true, "orderworker:{ledger-3.1}:epoch": true, "orderworker:{ledger}:events": false, "x:{ledger}:epoch": false, "orderworker:{}:epoch": false} {
		if got := ledgerpkg.IsEpochKey(k); got != want {
			t.Errorf("IsEpochKey(%q) = %v, want %v", k, got, want)
		}
	}
}

// A stop during a start-up wait is a clean stop, but -demo's exit says
// whether its orders were paid: stopped before it sent any, it fails.
func TestStopDuringStartUp(t *testing.T) {
	t.Parallel()
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	waited := errors.New("dial tcp: connection refused")
	log := slog.New(slog.DiscardHandler)
	if err := stoppedAtStart(stopped, &config{}, log, waited); err != nil {
		t.Errorf("worker stopped while it waited: %v; want a clean stop", err)
	}
	if err := stoppedAtStart(stopped, &config{Demo: true}, log, waited); err == nil || !strings.Contains(err.Error(), "interrupted before any demo order was sent") {
		t.Errorf("-demo stopped while it waited: %v; want an error", err)
	}
	if err := stoppedAtStart(context.Background(), &config{}, log, waited); err != waited {
		t.Errorf("a start-up wait that failed unstopped: %v; want its error", err)
	}
}
