//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	tencentsandbox "github.com/orderworker/orderworker/providers/tencent/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// The burst: loadOrders Tencent orders enqueued by loadProducers
// goroutines at once while loadWorkers worker processes run.
const (
	loadOrders    = 20_000
	loadProducers = 8
	loadWorkers   = 2
	loadDeadline  = 3 * time.Minute // from the first enqueue to the last order paid
)

// TestLoadBurst enqueues a burst of 20,000 orders while two workers run and
// checks that every one is paid, with exactly one order at the sandbox for
// each and none lost. It prints the counts and the rates.
func TestLoadBurst(t *testing.T) {
	began := time.Now()
	race := workerRace()
	bin := buildWorker(t, race)
	rs := taskstest.StartRedis(t, nil)

	key, secret := "T"+strings.ReplaceAll(uuid.NewString(), "-", "")[:16], strings.ReplaceAll(uuid.NewString(), "-", "")
	tsb := tencentsandbox.New(key, secret)
	srv := httptest.NewServer(tsb)
	t.Cleanup(srv.Close)
	fleet := newWorkerFleet(t, bin, workerEnv(rs.URL(),
		"ORDERWORKER_CONCURRENCY=40",
		"TENCENT_ENDPOINT="+srv.URL, "TENCENT_APP_KEY="+key, "TENCENT_APP_SECRET="+secret))
	for range loadWorkers {
		fleet.add()
	}
	fleet.waitReady(60 * time.Second)

	run := strconv.FormatInt(time.Now().UnixNano()%1_000_000, 36)
	payloads := make([]tasks.Payload, loadOrders)
	for i := range payloads {
		params, _ := json.Marshal(map[string]any{"CustomerId": "Load" + strconv.Itoa(i%500), "ItemId": "D-FireInsurance2020", "ItemVNO": "FireBusiness", "ItemNum": 1 + i%5})
		payloads[i] = tasks.Payload{Provider: "tencent", OrderNo: fmt.Sprintf("LB%s%05d", run, i), Params: params}
	}
	ledger := tasks.NewLedger(rs.Client(t))
	client := asynq.NewClient(redisOpt(t, rs))
	defer client.Close()
	enq := tasks.NewEnqueuer(client, ledger, enqueueValidators(), nil)

	ctx, cancel := context.WithTimeout(context.Background(), loadDeadline+time.Minute)
	defer cancel()
	t0 := time.Now()
	rep := enqueueAll(ctx, enq, payloads, loadProducers, 0)
	if len(rep.Rejected) > 0 {
		t.Fatalf("%d orders not accepted, e.g. %v", len(rep.Rejected), rep.Rejected[:min(5, len(rep.Rejected))])
	}
	paidAtEnqueued := loadPaid(ctx, ledger) // the workers kept up with the burst this far

	deadline := t0.Add(loadDeadline)
	lastLog := time.Now()
	var paid int64
	for {
		paid = loadPaid(ctx, ledger)
		if paid >= loadOrders {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		if time.Since(lastLog) >= 10*time.Second {
			t.Logf("%5.1fs: %d of %d paid", time.Since(t0).Seconds(), paid, loadOrders)
			lastLog = time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
	processed := time.Since(t0)
	for name, err := range fleet.stop(20 * time.Second) {
		if err != nil {
			t.Errorf("worker %s after SIGTERM: %v", name, err)
		}
	}

	// Every order: paid in the ledger, exactly one order at the sandbox.
	held := tsb.Orders()
	var mu sync.Mutex
	states := map[tasks.State]int{}
	var notPaid, dupes, missing []string
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				no := payloads[i].OrderNo
				rec, err := ledger.Get(ctx, tasks.OrderRef{Provider: "tencent", OrderNo: no})
				mu.Lock()
				switch {
				case err != nil || rec == nil:
					notPaid = append(notPaid, fmt.Sprintf("%s: no record (%v)", no, err))
				case rec.State != tasks.StatePaid:
					states[rec.State]++
					notPaid = append(notPaid, chaosDescribe(rec, len(held[no])))
				default:
					states[rec.State]++
				}
				switch n := len(held[no]); {
				case n > 1:
					dupes = append(dupes, fmt.Sprintf("%s: %d orders at the sandbox", no, n))
				case n == 0:
					missing = append(missing, no)
				}
				mu.Unlock()
			}
		})
	}
	for i := range payloads {
		next <- i
	}
	close(next)
	wg.Wait()
	total := 0
	for _, list := range held {
		total += len(list)
	}
	logs := scanLogs(t, fleet.logFiles())

	var b strings.Builder
	fmt.Fprintf(&b, "load burst accounting\n")
	fmt.Fprintf(&b, "  orders: %d tencent, enqueued by %d goroutines while %d workers (concurrency 40 each, built with race=%v) ran\n", loadOrders, loadProducers, loadWorkers, race)
	fmt.Fprintf(&b, "  enqueue: %s (%.0f orders/s); %d already paid when the last was accepted\n",
		rep.Elapsed.Round(time.Millisecond), float64(loadOrders)/rep.Elapsed.Seconds(), paidAtEnqueued)
	fmt.Fprintf(&b, "  processing: %d paid %s after the first enqueue (%.0f orders/s end to end)\n",
		paid, processed.Round(time.Millisecond), float64(paid)/processed.Seconds())
	fmt.Fprintf(&b, "  ledger states: %v\n", states)
	fmt.Fprintf(&b, "  sandbox: %d orders for %d order numbers (create calls %d, list calls %d); duplicates %d, missing %d\n",
		total, len(held), tsb.Calls("ServiceCreateOrder"), tsb.Calls("ServiceGetOrderList"), len(dupes), len(missing))
	fmt.Fprintf(&b, "  worker log: %d paid lines, %s\n", logs.Paid, chaosTopMessages(logs.Messages, 5))
	fmt.Fprintf(&b, "  elapsed: %s in all (build and setup included)\n", time.Since(began).Round(time.Second))
	t.Log("\n" + b.String())
	fmt.Print(b.String())

	for _, a := range logs.Alarms {
		t.Errorf("worker log: %s", a)
	}
	show := func(items []string) string { return strings.Join(items[:min(20, len(items))], "\n  ") }
	if len(notPaid) > 0 {
		t.Errorf("%d of %d orders not paid within %s:\n  %s", len(notPaid), loadOrders, loadDeadline, show(notPaid))
	}
	if len(dupes) > 0 {
		t.Errorf("%d DUPLICATES at the sandbox:\n  %s", len(dupes), show(dupes))
	}
	if len(missing) > 0 {
		t.Errorf("%d orders have no order at the sandbox:\n  %s", len(missing), show(missing))
	}
	if total != loadOrders || len(held) != loadOrders {
		t.Errorf("the sandbox holds %d orders for %d order numbers; want %d for %d", total, len(held), loadOrders, loadOrders)
	}
}

// loadPaid reads how many Tencent orders the ledger has paid.
func loadPaid(ctx context.Context, ledger *tasks.Ledger) int64 {
	st, err := ledger.Stats(ctx, []string{"tencent"})
	if err != nil {
		return 0
	}
	return st["tencent"][tasks.StatePaid].Count
}
