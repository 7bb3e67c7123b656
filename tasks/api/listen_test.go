package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers/registry"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/api"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// countHook counts the commands a client sends, by name.
type countHook struct{ xread, hgetall atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count(cmd)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.count(c)
		}
		return next(ctx, cmds)
	}
}

func (h *countHook) count(c redis.Cmder) {
	switch c.Name() {
	case "xread":
		h.xread.Add(1)
	case "hgetall":
		h.hgetall.Add(1)
	}
}

// Long polls on a ledger of many shards block a connection per shard
// (XREAD BLOCK) while anyone waits on an order of it: they read with a
// client of their own (Options.Listen), never the one orders are
// accepted with, whose pool they would otherwise take (a POST waited
// seconds, or answered 503, behind hundreds of polls on 64 shards). And
// while the events stream is read, a waiting poll reads its order only
// when an event names it, not every fallbackPoll: hundreds of waiting
// clients would otherwise read hundreds of records a second.
func TestLongPollsKeepOffTheOrdersConnections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := taskstest.StartRedis(t, nil)
	orders, listens := &countHook{}, &countHook{}
	rdb, listen := rs.Client(t), rs.Client(t)
	rdb.AddHook(orders)
	listen.AddHook(listens)
	l := ledger.New(rdb, &ledger.Options{Shards: 16})
	if err := l.CheckShards(ctx); err != nil {
		t.Fatal(err)
	}
	opt, err := tasks.ParseRedisURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	set := registry.Validators("test")
	sealer := testSealer(t)
	h, err := api.New(tasks.NewEnqueuer(client, l, set, &tasks.EnqueuerOptions{Sealer: sealer}), l, rdb, set,
		&api.Options{Tokens: []string{token}, Sealer: sealer, Listen: listen, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	e := &env{t: t, rs: rs, ledger: l, h: h, url: srv.URL, seen: &seenSet{m: map[string]bool{}}}

	const n = 40
	shards := map[int]bool{}
	for i := range n {
		no := fmt.Sprintf("LP%d", i)
		if code, b, _ := e.do("POST", "/v1/orders", bearer, tencentOrder(no, 1)); code != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", no, code, b)
		}
		shards[l.ShardOf(ledger.Ref{Provider: "tencent", OrderNo: no})] = true
	}
	// The orders stay queued (no worker): every poll waits its whole wait.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, DialContext: (&net.Dialer{}).DialContext}}
	t.Cleanup(hc.CloseIdleConnections)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/orders/tencent/LP%d?wait=8s", srv.URL, i), nil)
			req.Header.Set("Authorization", bearer)
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	time.Sleep(1500 * time.Millisecond) // the polls are waiting, their first reads done
	before := orders.hgetall.Load()
	time.Sleep(5 * time.Second)
	reads := orders.hgetall.Load() - before
	wg.Wait()
	if x := orders.xread.Load(); x != 0 {
		t.Errorf("the orders' client sent %d XREADs; want none (the listeners read with Options.Listen)", x)
	}
	if x := listens.xread.Load(); x < int64(len(shards)) {
		t.Errorf("the listeners' client sent %d XREADs for polls on %d shards; want one or more a shard", x, len(shards))
	}
	if reads >= n {
		t.Errorf("%d polls waiting 5 s on a stream read without fault read their orders %d times; want fewer than one each (an event wakes them)", n, reads)
	}
}
