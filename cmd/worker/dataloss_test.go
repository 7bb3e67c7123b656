package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	tencentsandbox "github.com/orderworker/orderworker/providers/tencent/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// A worker process runs while Redis loses every key (restarted without
// persistence: here flushed). The producer sends its orders again, those
// created before the loss among them, and new ones: the worker notices the
// loss, logs it, and looks the orders recorded since up before their first
// create, so every order number is created once at the provider.
func TestWorkerNoticesRedisLosingItsData(t *testing.T) {
	t.Parallel()
	bin := buildWorker(t, workerRace())
	rs := taskstest.StartRedis(t, nil)
	key, secret := "T"+strings.ReplaceAll(uuid.NewString(), "-", "")[:16], strings.ReplaceAll(uuid.NewString(), "-", "")
	tsb := tencentsandbox.New(key, secret)
	srv := httptest.NewServer(tsb)
	t.Cleanup(srv.Close)
	fleet := newWorkerFleet(t, bin, workerEnv(rs.URL(),
		"TENCENT_ENDPOINT="+srv.URL, "TENCENT_APP_KEY="+key, "TENCENT_APP_SECRET="+secret))
	fleet.add()
	fleet.waitReady(60 * time.Second)

	rdb := rs.Client(t)
	ledger := tasks.NewLedger(rdb)
	client := asynq.NewClient(redisOpt(t, rs))
	defer client.Close()
	enq := tasks.NewEnqueuer(client, ledger, enqueueValidators(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	payload := func(no string) []byte {
		b, _ := json.Marshal(map[string]any{"provider": "tencent", "order_no": no,
			"params": map[string]any{"CustomerId": "C1", "ItemId": "D-FireInsurance2020", "ItemVNO": "FireBusiness", "ItemNum": 1}})
		return b
	}
	nos := func(tag string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s%02d", tag, i)
		}
		return out
	}
	send := func(list []string) {
		t.Helper()
		for _, no := range list {
			if res, err := enq.Enqueue(ctx, payload(no)); err != nil || res.Status != tasks.Enqueued {
				t.Fatalf("enqueue %s: %+v, %v", no, res, err)
			}
		}
	}
	waitPaid := func(list []string) {
		t.Helper()
		for _, no := range list {
			for {
				rec, err := ledger.Get(ctx, tasks.OrderRef{Provider: "tencent", OrderNo: no})
				if err == nil && rec != nil && rec.State == tasks.StatePaid {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("order %s not paid: %+v, %v", no, rec, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	before := nos("DL-A", 10)
	send(before)
	waitPaid(before)
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	after := nos("DL-B", 10)
	send(append(before, after...)) // the earlier ones again, and new ones
	waitPaid(append(before, after...))
	for name, err := range fleet.stop(20 * time.Second) {
		if err != nil {
			t.Errorf("worker %s after SIGTERM: %v", name, err)
		}
	}
	for _, no := range append(before, after...) {
		if n := tsb.Count(no); n != 1 {
			t.Errorf("order %s created %d times at the provider; want once", no, n)
		}
	}
	logs := scanLogs(t, fleet.logFiles())
	lost := 0
	for msg, n := range logs.Messages {
		if strings.HasPrefix(msg, "Redis lost the ledger's data") {
			lost += n
		}
	}
	if lost != 1 {
		t.Errorf("the worker logged the loss %d times; want once: %v", lost, logs.Messages)
	}
}
