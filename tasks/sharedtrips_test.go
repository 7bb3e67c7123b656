package tasks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/taskstest"
)

// pipeCounter counts the pipelines of scripts and the scripts sent alone
// by a client it is added to after the shared trips' hook, and can hold
// the first pipeline back until a condition holds.
type pipeCounter struct {
	pipelines, singles atomic.Int64
	sizes              sync.Map // pipeline number → commands in it
	holdFirst          func() bool
}

func (p *pipeCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (p *pipeCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isScript(cmd) {
			p.singles.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (p *pipeCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !slices.ContainsFunc(cmds, isScript) {
			return next(ctx, cmds) // a connection's handshake, say
		}
		n := p.pipelines.Add(1)
		p.sizes.Store(n, len(cmds))
		if n == 1 && p.holdFirst != nil {
			for deadline := time.Now().Add(10 * time.Second); !p.holdFirst() && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}
		return next(ctx, cmds)
	}
}

func tripClient(t *testing.T, readTimeout ...time.Duration) (redis.UniversalClient, *tripHook, *pipeCounter) {
	t.Helper()
	srv := taskstest.StartRedis(t, nil)
	opt, err := ParseRedisURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if len(readTimeout) > 0 {
		o := opt.(asynq.RedisClientOpt)
		o.ReadTimeout = readTimeout[0]
		opt = o
	}
	// The counter after the shared trips' hook: it sees the scripts that
	// hook sends on alone, and every pipeline.
	count := &pipeCounter{}
	c := RESP2(opt).MakeRedisClient().(redis.UniversalClient)
	h := addTrips(c)
	c.AddHook(count)
	t.Cleanup(func() { c.Close() })
	return c, h, count
}

// Scripts run at the same moment share a round trip, each with its own
// reply; a script that fails fails alone; a script Redis does not hold yet
// is loaded as go-redis's Script.Run loads it; other commands go alone.
func TestSharedTripsShareScriptsRoundTrips(t *testing.T) {
	t.Parallel()
	c, h, count := tripClient(t)
	ctx := context.Background()
	echo := redis.NewScript(`if ARGV[1] == 'fail' then return redis.error_reply('FAILED ' .. KEYS[1]) end
return {KEYS[1], redis.call('INCR', KEYS[1])}`)
	const n = 50
	// The first pipeline waits until every other caller has queued: the
	// rest go in one more.
	count.holdFirst = func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.queue) == n-1
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	replies := make([]any, n)
	for i := range n {
		wg.Go(func() {
			arg := "ok"
			if i == 7 {
				arg = "fail"
			}
			replies[i], errs[i] = echo.Run(ctx, c, []string{fmt.Sprintf("k%d", i)}, arg).Result()
		})
	}
	wg.Wait()
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		if i == 7 {
			if errs[i] == nil || !strings.Contains(errs[i].Error(), "FAILED "+key) {
				t.Errorf("script %d: %v, %v; want its own error", i, replies[i], errs[i])
			}
			continue
		}
		if errs[i] != nil || fmt.Sprint(replies[i]) != fmt.Sprintf("[%s 1]", key) {
			t.Errorf("script %d: %v, %v; want [%s 1]", i, replies[i], errs[i], key)
		}
	}
	// Script.Run sent EVALSHA first: NOSCRIPT, the script loaded by an
	// EVAL, so each caller may have gone twice; every trip was a pipeline.
	if s := count.singles.Load(); s != 0 {
		t.Errorf("%d scripts went alone; want every one in a pipeline", s)
	}
	if p := count.pipelines.Load(); p >= 2*n {
		t.Errorf("%d pipelines for %d callers: none shared", p, n)
	}
	// (The first caller's EVAL after its NOSCRIPT may join them.)
	size, _ := count.sizes.Load(int64(2))
	if got, _ := size.(int); got < n-1 {
		t.Errorf("second pipeline carried %v scripts, want the %d queued behind the first", size, n-1)
	}
	before := count.pipelines.Load()
	if err := c.Set(ctx, "plain", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := echo.Run(ctx, c, []string{"alone"}, "ok").Result(); err != nil || fmt.Sprint(v) != "[alone 1]" {
		t.Errorf("a script alone: %v, %v", v, err)
	}
	if got := count.pipelines.Load() - before; got != 1 {
		t.Errorf("a SET and a script alone took %d pipelines, want 1 (the script's; a SET goes as it is)", got)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sending || len(h.queue) != 0 {
		t.Errorf("after the calls: sending %v, %d queued; want neither", h.sending, len(h.queue))
	}
}

// A caller that gives up does not take the scripts that ride with it
// down: its context does not cut the pipeline short.
func TestSharedTripsSenderContextDoesNotCutOthers(t *testing.T) {
	t.Parallel()
	c, h, count := tripClient(t)
	script := redis.NewScript(`return redis.call('INCR', KEYS[1])`)
	if err := script.Load(context.Background(), c).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	count.holdFirst = func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.queue) == 1 {
			cancel() // the first sender's context ends while its pipeline is on its way
			return true
		}
		return false
	}
	first := make(chan error, 1)
	go func() { first <- script.Run(ctx, c, []string{"a"}).Err() }()
	for count.pipelines.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if v, err := script.Run(context.Background(), c, []string{"b"}).Int(); err != nil || v != 1 {
		t.Errorf("the script behind a sender whose context ended: %v, %v", v, err)
	}
	if err := <-first; err != nil {
		t.Errorf("the first sender's own script: %v (its pipeline had left)", err)
	}
	if v, err := c.Get(context.Background(), "a").Int(); err != nil || v != 1 {
		t.Errorf("a = %v, %v; want 1", v, err)
	}
}

// The dequeuers of a server share one client, closed when they shut down
// (not by a second Start), and process orders through it.
func TestServerClosesItsSharedClient(t *testing.T) {
	t.Parallel()
	srv := taskstest.StartRedis(t, nil)
	opt, err := ParseRedisURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{rdb: sharedTrips(opt).MakeRedisClient().(redis.UniversalClient)}
	for range 3 {
		s.servers = append(s.servers, asynq.NewServerFromRedisClient(s.rdb, asynq.Config{Concurrency: 2, LogLevel: asynq.FatalLevel}))
	}
	ran := make(chan string, 10)
	mux := asynq.NewServeMux()
	mux.HandleFunc("t", func(ctx context.Context, task *asynq.Task) error {
		ran <- string(task.Payload())
		return nil
	})
	if err := s.Start(mux); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(mux); err == nil {
		t.Error("a second Start answered no error")
	}
	if err := s.rdb.Ping(context.Background()).Err(); err != nil {
		t.Errorf("after a second Start the shared client answers %v; want it open for the running dequeuers", err)
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	for i := range 5 {
		if _, err := client.Enqueue(asynq.NewTask("t", []byte(fmt.Sprint(i)))); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		select {
		case <-ran:
		case <-time.After(30 * time.Second):
			t.Fatal("tasks not processed through the shared client")
		}
	}
	s.Shutdown()
	if err := s.rdb.Ping(context.Background()).Err(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("after Shutdown the shared client answers %v; want it closed", err)
	}
}

// busyScript runs for ARGV[1] microseconds; popScript moves one item from
// KEYS[1] to KEYS[2], as asynq's dequeue moves a task.
var (
	busyScript = redis.NewScript(`local t = redis.call('TIME'); local s = t[1]*1000000+t[2]
while true do local n = redis.call('TIME'); if n[1]*1000000+n[2] - s > tonumber(ARGV[1]) then break end end
return 1`)
	popScript = redis.NewScript(`return redis.call('RPOPLPUSH', KEYS[1], KEYS[2])`)
)

// waitQueued waits until n callers wait behind a pipeline in flight.
func waitQueued(t *testing.T, h *tripHook, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		h.mu.Lock()
		q, s := len(h.queue), h.sending
		h.mu.Unlock()
		if s && q == n {
			return
		}
	}
	t.Fatalf("%d callers never queued", n)
}

// A shared pipeline whose reply times out part-way is not sent again:
// go-redis would send the whole pipeline again, running again the scripts
// whose replies had come (a dequeue taking a second task that nobody runs).
func TestSharedTripsNeverSendAPipelineAgain(t *testing.T) {
	t.Parallel()
	c, h, _ := tripClient(t, 150*time.Millisecond)
	ctx := context.Background()
	for _, s := range []*redis.Script{busyScript, popScript} {
		if err := s.Load(ctx, c).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.RPush(ctx, "pending", "t1", "t2", "t3", "t4", "t5").Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { busyScript.Run(ctx, c, []string{"x"}, 50_000) }) // holds the pipeline while the others queue
	waitQueued(t, h, 0)
	wg.Go(func() { popScript.Run(ctx, c, []string{"pending", "active"}) })
	waitQueued(t, h, 1)
	var slowErr error
	wg.Go(func() { slowErr = busyScript.Run(ctx, c, []string{"y"}, 300_000).Err() }) // past the read timeout
	waitQueued(t, h, 2)
	wg.Wait()
	if n, err := c.LLen(ctx, "active").Result(); err != nil || n != 1 {
		t.Errorf("the dequeue-like script ran %d times (%v); want once", n, err)
	}
	if slowErr == nil {
		t.Error("the script whose reply timed out answered no error")
	}
	// Nothing is left waiting or sending.
	if v, err := popScript.Run(ctx, c, []string{"pending", "active"}).Result(); err != nil || v != "t4" {
		t.Errorf("a script after the failed pipeline: %v, %v", v, err)
	}
}

// A caller that gives up while it waits behind a pipeline returns at once,
// and its script is never sent; the callers behind it go on.
func TestSharedTripsCallerGivingUpIsNotSent(t *testing.T) {
	t.Parallel()
	c, h, _ := tripClient(t)
	ctx := context.Background()
	for _, s := range []*redis.Script{busyScript, popScript} {
		if err := s.Load(ctx, c).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.RPush(ctx, "pending", "t1", "t2").Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { busyScript.Run(ctx, c, []string{"x"}, 300_000) })
	waitQueued(t, h, 0)
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	wg.Go(func() { gaveUp <- popScript.Run(cctx, c, []string{"pending", "given-up"}).Err() })
	waitQueued(t, h, 1)
	var next any
	var nextErr error
	wg.Go(func() { next, nextErr = popScript.Run(ctx, c, []string{"pending", "active"}).Result() })
	waitQueued(t, h, 2)
	cancel()
	select {
	case err := <-gaveUp:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the caller that gave up: %v, want context.Canceled", err)
		}
	case <-time.After(200 * time.Millisecond):
		t.Error("the caller that gave up still waits for the pipeline ahead of it")
	}
	wg.Wait()
	if n, _ := c.LLen(ctx, "given-up").Result(); n != 0 {
		t.Errorf("the script of a caller that gave up ran")
	}
	if nextErr != nil || next != "t2" {
		t.Errorf("the caller behind it: %v, %v; want t2 (RPOPLPUSH takes the last)", next, nextErr)
	}
	if _, err := popScript.Run(cctx, c, []string{"pending", "given-up"}).Result(); !errors.Is(err, context.Canceled) {
		t.Errorf("a caller whose context had ended: %v, want context.Canceled", err)
	}
}

// A cluster client keeps its scripts alone: one pipeline in flight would
// hold every master's scripts behind the slowest.
func TestSharedTripsNotOnACluster(t *testing.T) {
	t.Parallel()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer c.Close()
	if h := addTrips(c); h != nil {
		t.Error("a cluster client got the shared trips")
	}
	s := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer s.Close()
	if h := addTrips(s); h == nil {
		t.Error("a single server's client got no shared trips")
	}
}

// panicker panics in the nth pipeline of scripts sent through it.
type panicker struct {
	n, seen atomic.Int64
}

func (p *panicker) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (p *panicker) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (p *panicker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if slices.ContainsFunc(cmds, isScript) && p.seen.Add(1) == p.n.Load() {
			panic("a hook's bug")
		}
		return next(ctx, cmds)
	}
}

// A pipeline that panics (a hook's bug) fails its other scripts and
// leaves the hook sending for the callers after it: a sender that
// recovers leaves nobody waiting for ever.
func TestSharedTripsPanicLeavesNoneWaiting(t *testing.T) {
	t.Parallel()
	c, h, _ := tripClient(t)
	p := &panicker{}
	p.n.Store(2)
	c.AddHook(p)
	ctx := context.Background()
	for _, s := range []*redis.Script{busyScript, popScript} {
		if err := s.Load(ctx, c).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.RPush(ctx, "pending", "t1", "t2", "t3").Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { busyScript.Run(ctx, c, []string{"x"}, 100_000) }) // the first pipeline
	waitQueued(t, h, 0)
	recovered := make(chan any, 1)
	wg.Go(func() { // sends the second pipeline, which panics
		defer func() { recovered <- recover() }()
		popScript.Run(ctx, c, []string{"pending", "a"})
	})
	waitQueued(t, h, 1)
	other := make(chan error, 1)
	wg.Go(func() { other <- popScript.Run(ctx, c, []string{"pending", "b"}).Err() })
	waitQueued(t, h, 2)
	select {
	case err := <-other:
		if err == nil || !strings.Contains(err.Error(), "panicked") {
			t.Errorf("the script beside the panic: %v; want the panic's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the script beside the panic still waits")
	}
	if r := <-recovered; r == nil {
		t.Error("the sender did not see the panic")
	}
	wg.Wait()
	if v, err := popScript.Run(ctx, c, []string{"pending", "c"}).Result(); err != nil || v != "t3" {
		t.Errorf("a script after the panic: %v, %v; want t3", v, err)
	}
}
