//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	aliyunsandbox "github.com/orderworker/orderworker/providers/aliyun/sandbox"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/tencent"
	tencentsandbox "github.com/orderworker/orderworker/providers/tencent/sandbox"
	"github.com/orderworker/orderworker/providers/unicloud"
	unicloudsandbox "github.com/orderworker/orderworker/providers/unicloud/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/guard"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// The chaos run's shape. About 3,000 orders, a few minutes at most on two
// cores: the orders are enqueued over chaosSpread while workers are
// SIGKILLed and Redis restarts, then the run waits for every order to
// settle. asynq hands a SIGKILLed worker's active tasks to another worker
// only once their lease (30s) has been expired for 30s, on a recoverer
// sweep that runs once a minute, so settling may take two minutes after
// the last kill.
const (
	chaosPerProvider = 1000
	chaosWorkers     = 3
	chaosSpread      = 25 * time.Second
	chaosSettle      = 160 * time.Second // after the last chaos event
	chaosRate        = 0.03              // of each fault kind, per sandbox
)

// chaosProviders are the providers' names, as the ledger sorts them.
var chaosProviders = []string{"aliyun", "tencent", "unicloud"}

// chaosOrder is one order of the run and the key its sandbox keeps it by:
// Tencent's OrderNo, Aliyun's iotId (one device per order), UniCloud's
// instanceName.
type chaosOrder struct {
	p   tasks.Payload
	key string
}

// chaosDataKey seals the chaos orders' params (ORDERWORKER_DATA_KEY).
const chaosDataKey = "Y2hhb3MgdGVzdCBkYXRhIGtleTogMzIgYnl0ZXMgb2s="

func chaosOrders(run string) []chaosOrder {
	var out []chaosOrder
	for i := range chaosPerProvider {
		tNo := fmt.Sprintf("CT%s%04d", run, i)
		tParams, _ := json.Marshal(map[string]any{"CustomerId": "Cust" + run + strconv.Itoa(i%97), "ItemId": "D-FireInsurance2020", "ItemVNO": "FireBusiness", "ItemNum": 1 + i%3})
		out = append(out, chaosOrder{tasks.Payload{Provider: "tencent", OrderNo: tNo, Params: tParams}, tNo})

		iot := fmt.Sprintf("ChaosDev%s%04d", run, i)
		aParams, _ := json.Marshal(map[string]any{"iotId": iot, "commodityCode": "streamingResource_20_10", "copies": 1 + i%3, "userId": "chaos-user-" + strconv.Itoa(i%50), "immediateUse": i%2 == 0})
		out = append(out, chaosOrder{tasks.Payload{Provider: "aliyun", OrderNo: fmt.Sprintf("CA%s%04d", run, i), Params: aParams}, iot})

		name := fmt.Sprintf("chaos-nas-%s-%04d", run, i)
		uParams, _ := json.Marshal(map[string]any{"azoneId": "cn-tianjin-yfb1", "componentCode": "nas.onestor", "dataEncryption": i % 2,
			"instanceName": name, "orderCategory": "NEW", "payType": "DAY_MONTH_USAGE", "projectId": "rg-chaos", "regionId": "cn-tianjin-yfb",
			"renewType": "manualrenew", "rentCount": 1 + i%12, "rentUnit": "month", "specificationCode": "nas.capacity.nfs", "unit": "GB", "vpc": "vpc-chaos"})
		out = append(out, chaosOrder{tasks.Payload{Provider: "unicloud", OrderNo: fmt.Sprintf("CU%s%04d", run, i), Params: uParams}, name})
	}
	return out
}

// chaosSeed is the fault injectors' seed: ORDERWORKER_TEST_CHAOS_SEED when set,
// to replay a run's fault draws, else the clock.
func chaosSeed(t *testing.T) uint64 {
	if s := os.Getenv("ORDERWORKER_TEST_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ORDERWORKER_TEST_CHAOS_SEED=%q: %v", s, err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// TestChaos runs three worker processes against the three sandboxes with
// faults injected at random (throttling, a 5xx before the order is
// created, a 5xx or a hang after it is), SIGKILLs a worker four times
// while orders flow (each is restarted), and restarts Redis (AOF) once.
// Then every order must be paid, errored with a reason, or pending with a
// next check; no sandbox may hold two provider orders for one order; an
// errored order must hold none (else it was lost at the provider); and the
// ledger must agree with the sandboxes. It prints the accounting.
func TestChaos(t *testing.T) {
	began := time.Now()
	seed := chaosSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	run := strconv.FormatUint(seed%1_000_000, 36)
	t.Logf("seed %d (set ORDERWORKER_TEST_CHAOS_SEED to replay the fault draws)", seed)

	race := workerRace()
	bin := buildWorker(t, race)
	rs := taskstest.StartRedis(t, &taskstest.Options{AOF: true})

	// The sandboxes, with credentials made up for this run.
	secret := func() string { return strings.ReplaceAll(uuid.NewString(), "-", "") }
	tKey, tSecret := "T"+secret()[:16], secret()
	aKey, aSecret, aProject := "A"+secret()[:16], secret(), "chaos-project"
	uKey, uSecret := "U"+secret()[:16], secret()
	tsb := tencentsandbox.New(tKey, tSecret)
	asb := aliyunsandbox.New(aKey, aSecret, aProject)
	usb := unicloudsandbox.New(uKey, uSecret)
	rates := map[fault.Kind]float64{fault.Throttle: chaosRate, fault.FailBefore: chaosRate, fault.FailAfter: chaosRate, fault.HangAfter: chaosRate}
	injectors := map[string]*fault.Injector{"tencent": tsb.Faults(), "aliyun": asb.Faults(), "unicloud": usb.Faults()}
	// A hang answers after its limit (Tencent, Aliyun: an empty 200, which
	// the clients take for an ambiguous answer; UniCloud: a reset), each
	// before its client's own timeout (Aliyun's create: 8 s).
	hangs := map[string]time.Duration{"tencent": 2 * time.Second, "aliyun": 4 * time.Second, "unicloud": 2 * time.Second}
	for i, name := range chaosProviders {
		injectors[name].SetRates(seed+uint64(i), rates)
		injectors[name].SetHangLimit(hangs[name])
	}
	tSrv, aSrv, uSrv := httptest.NewServer(tsb), httptest.NewServer(asb), httptest.NewServer(usb)
	t.Cleanup(tSrv.Close)
	t.Cleanup(aSrv.Close)
	t.Cleanup(uSrv.Close)

	// ALIYUN_PAY_MATCHED, UNICLOUD_TAKE_MATCHED: nobody but the workers
	// buys on the sandboxes' devices and account, so an order found by
	// matching after a kill or a fault is ours, and is paid as one whose
	// create answered. UNICLOUD_RECREATE_UNLISTED, ALIYUN_RECREATE_UNLISTED:
	// the sandboxes list every order they made, so an order not listed was
	// not made.
	env := workerEnv(rs.URL(),
		"ORDERWORKER_MAX_ATTEMPTS=20",
		"TENCENT_ENDPOINT="+tSrv.URL, "TENCENT_APP_KEY="+tKey, "TENCENT_APP_SECRET="+tSecret,
		"ALIYUN_ENDPOINT="+aSrv.URL, "ALIYUN_APP_KEY="+aKey, "ALIYUN_APP_SECRET="+aSecret, "ALIYUN_PROJECT_ID="+aProject, "ALIYUN_AUTO_PAY=true", "ALIYUN_PAY_MATCHED=true", "ALIYUN_RECREATE_UNLISTED=true",
		"UNICLOUD_ENDPOINT="+uSrv.URL, "UNICLOUD_ACCESS_KEY_ID="+uKey, "UNICLOUD_ACCESS_KEY_SECRET="+uSecret, "UNICLOUD_TAKE_MATCHED=true", "UNICLOUD_RECREATE_UNLISTED=true",
		// The Aliyun orders carry a userId, personal data: sealed.
		"ORDERWORKER_DATA_KEY="+chaosDataKey,
	)
	sealer, err := tasks.NewSealer(chaosDataKey)
	if err != nil {
		t.Fatal(err)
	}
	fleet := newWorkerFleet(t, bin, env) // registered after the sandboxes: workers die first
	for range chaosWorkers {
		fleet.add()
	}
	fleet.waitReady(60 * time.Second)

	rdb := rs.Client(t)
	ledger := tasks.NewLedger(rdb)
	client := asynq.NewClient(redisOpt(t, rs))
	defer client.Close()
	enq := tasks.NewEnqueuer(client, ledger, enqueueValidators(), &tasks.EnqueuerOptions{Sealer: sealer})
	orders := chaosOrders(run)
	payloads := make([]tasks.Payload, len(orders))
	for i, o := range orders {
		payloads[i] = o.p
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	enqDone := make(chan enqueueReport, 1)
	go func() { enqDone <- enqueueAll(ctx, enq, payloads, 4, chaosSpread) }()

	// The chaos, at jittered times while the orders flow.
	type event struct {
		at   time.Duration
		what string
	}
	jitter := func(d time.Duration) time.Duration { return d + time.Duration(rng.Int64N(int64(2*time.Second))) }
	events := []event{
		{jitter(3 * time.Second), "kill"}, {jitter(8 * time.Second), "kill"}, {jitter(12 * time.Second), "redis"},
		{jitter(16 * time.Second), "kill"}, {jitter(21 * time.Second), "kill"},
	}
	var timeline []string
	redisRestarts := 0
	lastChaos := t0
	var lastKilled *workerProc
	for _, ev := range events {
		time.Sleep(time.Until(t0.Add(ev.at))) // pacing the chaos, not waiting for a result
		switch ev.what {
		case "kill":
			p := fleet.procs[rng.IntN(len(fleet.procs))]
			for p == lastKilled {
				p = fleet.procs[rng.IntN(len(fleet.procs))]
			}
			lastKilled = p
			fleet.kill(p)
			fleet.start(p)
			fleet.waitReady(60 * time.Second)
			timeline = append(timeline, fmt.Sprintf("%5.1fs SIGKILL %s, restarted", time.Since(t0).Seconds(), p.name))
		case "redis":
			rs.Restart(t)
			redisRestarts++
			timeline = append(timeline, fmt.Sprintf("%5.1fs Redis restarted (AOF)", time.Since(t0).Seconds()))
		}
		lastChaos = time.Now()
	}
	enqRep := <-enqDone
	accepted := time.Now()
	timeline = append(timeline, fmt.Sprintf("%5.1fs all %d orders accepted (%d retried after a Redis error)", enqRep.Elapsed.Seconds(), enqRep.Enqueued, enqRep.Retried))
	if len(enqRep.Rejected) > 0 {
		t.Fatalf("%d orders not accepted, e.g. %v", len(enqRep.Rejected), enqRep.Rejected[:min(5, len(enqRep.Rejected))])
	}

	// Wait for every order to settle: nothing queued, submitting or
	// unknown; then give pending orders a little time to be paid.
	settled, lastLog := time.Time{}, time.Now()
	deadline := lastChaos.Add(chaosSettle)
	if d := accepted.Add(chaosSettle / 2); d.After(deadline) {
		deadline = d // a machine so loaded that accepting the orders took long
	}
	var stats map[string]map[tasks.State]tasks.StateStats
	for {
		st, err := ledger.Stats(ctx, chaosProviders)
		if err == nil {
			stats = st
			open, pending, total := chaosCount(st)
			if open == 0 && total == len(orders) {
				if settled.IsZero() {
					settled = time.Now()
					timeline = append(timeline, fmt.Sprintf("%5.1fs no order queued, submitting or unknown", time.Since(t0).Seconds()))
				}
				if pending == 0 || time.Since(settled) > 30*time.Second {
					break
				}
			}
			if time.Since(lastLog) >= 10*time.Second {
				t.Logf("%5.1fs: %d open, %d pending of %d: %s", time.Since(t0).Seconds(), open, pending, total, chaosStatsLine(st))
				lastLog = time.Now()
			}
		}
		if time.Now().After(deadline) {
			timeline = append(timeline, fmt.Sprintf("%5.1fs gave up waiting (%s after the last chaos event)", time.Since(t0).Seconds(), time.Since(lastChaos).Round(time.Second)))
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	processed := time.Since(t0)

	// Stop the workers as an orchestrator would, so that what follows
	// reads a ledger and sandboxes nobody changes any more.
	for name, err := range fleet.stop(20 * time.Second) {
		if err != nil {
			t.Errorf("worker %s after SIGTERM: %v", name, err)
		}
	}

	vctx, vcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer vcancel()
	v := verifyChaos(vctx, t, ledger, orders, tsb, asb, usb)
	logs := scanLogs(t, fleet.logFiles())
	for _, a := range logs.Alarms {
		t.Errorf("worker log: %s", a)
	}

	// The accounting.
	var b strings.Builder
	fmt.Fprintf(&b, "chaos accounting (seed %d)\n", seed)
	fmt.Fprintf(&b, "  orders: %d (%d per provider), enqueued over %s by 4 goroutines; %d Enqueue errors (Redis restart), %d orders retried, new orders answered duplicate: %v\n",
		len(orders), chaosPerProvider, enqRep.Elapsed.Round(time.Millisecond), enqRep.Errors, enqRep.Retried, enqRep.NewDuplicates)
	for _, p := range chaosProviders {
		fmt.Fprintf(&b, "  %-8s", p)
		for _, s := range tasks.States {
			fmt.Fprintf(&b, " %s=%d", s, v.states[p][s])
		}
		fmt.Fprintf(&b, "  attempts=%d\n", v.attempts[p])
	}
	fmt.Fprintf(&b, "  attempts (sum of Record.Attempts): %d\n", v.attempts["all"])
	fmt.Fprintf(&b, "  provider calls: tencent create=%d list=%d; aliyun create=%d pay=%d get=%d query=%d token=%d; unicloud create=%d detail=%d query=%d\n",
		tsb.Calls("ServiceCreateOrder"), tsb.Calls("ServiceGetOrderList"),
		asb.Calls(aliyun.PathCreate), asb.Calls(aliyun.PathPay), asb.Calls(aliyun.PathGet), asb.Calls(aliyun.PathQuery), asb.Calls(aliyun.PathToken),
		usb.Calls("CreateOrder"), usb.Calls("OrderDetail"), usb.Calls("QueryOrders"))
	for _, p := range chaosProviders {
		c := injectors[p].Counts()
		fmt.Fprintf(&b, "  faults injected %-8s throttle=%d fail_before=%d fail_after=%d hang_after=%d (hang %s)\n",
			p, c[fault.Throttle], c[fault.FailBefore], c[fault.FailAfter], c[fault.HangAfter], hangs[p])
	}
	fmt.Fprintf(&b, "  SIGKILLs: %d (of %d workers built with race=%v; each killed worker restarted); Redis restarts: %d\n", fleet.kills.Load(), chaosWorkers, race, redisRestarts)
	fmt.Fprintf(&b, "  sandbox orders: %d; ledger paid+pending: %d\n", v.sandboxTotal, v.paidPending)
	fmt.Fprintf(&b, "  duplicates found: %d; lost (errored but held by the provider): %d; ledger/sandbox mismatches: %d; orphans at sandboxes: %d; not settled: %d\n",
		len(v.duplicates), len(v.lost), len(v.mismatches), len(v.orphans), len(v.stuck))
	fmt.Fprintf(&b, "  worker log: %d paid lines, %s\n", logs.Paid, chaosTopMessages(logs.Messages, 8))
	fmt.Fprintf(&b, "  timeline:\n")
	for _, line := range timeline {
		fmt.Fprintf(&b, "    %s\n", line)
	}
	fmt.Fprintf(&b, "  elapsed: %s in all (build and setup included), %s from the first enqueue to settled\n",
		time.Since(began).Round(time.Second), processed.Round(time.Second))
	t.Log("\n" + b.String())
	fmt.Print(b.String())

	v.report(t, stats)
}

// chaosCount sums the ledger's state counts.
func chaosCount(st map[string]map[tasks.State]tasks.StateStats) (open, pending, total int) {
	for _, byState := range st {
		for s, x := range byState {
			n := int(x.Count)
			total += n
			switch s {
			case tasks.StateQueued, tasks.StateSubmitting, tasks.StateUnknown:
				open += n
			case tasks.StatePending:
				pending += n
			}
		}
	}
	return open, pending, total
}

func chaosStatsLine(st map[string]map[tasks.State]tasks.StateStats) string {
	var parts []string
	for _, p := range chaosProviders {
		var s []string
		for _, state := range tasks.States {
			if n := st[p][state].Count; n > 0 {
				s = append(s, fmt.Sprintf("%s=%d", state, n))
			}
		}
		parts = append(parts, p+"{"+strings.Join(s, " ")+"}")
	}
	return strings.Join(parts, " ")
}

func chaosTopMessages(m map[string]int, n int) string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int { return b.v - a.v })
	var parts []string
	for _, x := range all[:min(n, len(all))] {
		parts = append(parts, fmt.Sprintf("%q=%d", x.k, x.v))
	}
	if len(parts) == 0 {
		return "no warnings"
	}
	return "warnings/errors: " + strings.Join(parts, ", ")
}

// chaosVerdict is what verifyChaos found.
type chaosVerdict struct {
	states       map[string]map[tasks.State]int
	attempts     map[string]int
	sandboxTotal int
	paidPending  int
	duplicates   []string
	lost         []string
	mismatches   []string
	orphans      []string
	stuck        []string
	// stuckCauses is each stuck order's state and last call result.
	stuckCauses []string
	// stuckHeld counts the unsettled orders their sandbox holds one order
	// for.
	stuckHeld int
}

// verifyChaos reads every order's record and compares it with what its
// sandbox holds.
func verifyChaos(ctx context.Context, t *testing.T, ledger *tasks.Ledger, orders []chaosOrder,
	tsb *tencentsandbox.Server, asb *aliyunsandbox.Server, usb *unicloudsandbox.Server) *chaosVerdict {
	t.Helper()
	recs := make([]*tasks.Record, len(orders))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var readErrs []string
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				rec, err := ledger.Get(ctx, tasks.OrderRef{Provider: orders[i].p.Provider, OrderNo: orders[i].p.OrderNo})
				if err != nil || rec == nil {
					mu.Lock()
					readErrs = append(readErrs, fmt.Sprintf("%s/%s: record %v, %v", orders[i].p.Provider, orders[i].p.OrderNo, rec, err))
					mu.Unlock()
					continue
				}
				recs[i] = rec
			}
		})
	}
	for i := range orders {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, e := range readErrs {
		t.Errorf("ledger: %s", e)
	}

	// What the sandboxes hold, by the key each keeps orders by.
	type held struct {
		n   int
		ids []string
		// paid is Aliyun's paymentStatus 1; other sandboxes' orders are
		// paid when created.
		paid []bool
	}
	sandbox := map[string]map[string]*held{"tencent": {}, "aliyun": {}, "unicloud": {}}
	add := func(p, key, id string, paid bool) {
		h := sandbox[p][key]
		if h == nil {
			h = &held{}
			sandbox[p][key] = h
		}
		h.n++
		h.ids = append(h.ids, id)
		h.paid = append(h.paid, paid)
	}
	for no, list := range tsb.Orders() {
		for range list {
			add("tencent", no, "", true)
		}
	}
	for iot, list := range asb.Orders() {
		for _, o := range list {
			add("aliyun", iot, o.OrderID, o.PaymentStatus == 1)
		}
	}
	for _, o := range usb.Orders() {
		add("unicloud", o.InstanceName, o.ID, true)
	}

	v := &chaosVerdict{states: map[string]map[tasks.State]int{}, attempts: map[string]int{}}
	ours := map[string]bool{}
	for i, o := range orders {
		p := o.p.Provider
		ref := p + "/" + o.p.OrderNo
		ours[p+"\x00"+o.key] = true
		h := sandbox[p][o.key]
		if h == nil {
			h = &held{}
		}
		v.sandboxTotal += h.n
		if h.n > 1 {
			v.duplicates = append(v.duplicates, fmt.Sprintf("%s: the sandbox holds %d provider orders for %s %v", ref, h.n, o.key, h.ids))
		}
		rec := recs[i]
		if rec == nil {
			continue
		}
		if v.states[p] == nil {
			v.states[p] = map[tasks.State]int{}
		}
		v.states[p][rec.State]++
		v.attempts[p] += rec.Attempts
		v.attempts["all"] += rec.Attempts
		switch rec.State {
		case tasks.StatePaid:
			v.paidPending++
			switch {
			case h.n == 0:
				v.mismatches = append(v.mismatches, ref+": paid in the ledger, but the sandbox holds no order")
			case rec.ProviderOrderID != "" && !slices.Contains(h.ids, rec.ProviderOrderID):
				v.mismatches = append(v.mismatches, fmt.Sprintf("%s: paid as provider order %s, the sandbox holds %v", ref, rec.ProviderOrderID, h.ids))
			case p != "tencent" && rec.ProviderOrderID == "":
				v.mismatches = append(v.mismatches, ref+": paid without a provider order id")
			case !slices.Contains(h.paid, true):
				v.mismatches = append(v.mismatches, fmt.Sprintf("%s: paid in the ledger, unpaid at the sandbox (%v)", ref, h.ids))
			}
		case tasks.StatePending:
			v.paidPending++
			switch {
			case rec.NextCheckAt.IsZero():
				v.mismatches = append(v.mismatches, ref+": pending without a next check")
			case h.n == 0:
				v.mismatches = append(v.mismatches, ref+": pending in the ledger, but the sandbox holds no order")
			}
		case tasks.StateErrored:
			if rec.Reason == "" {
				v.mismatches = append(v.mismatches, ref+": errored without a reason")
			}
			if h.n > 0 {
				v.lost = append(v.lost, fmt.Sprintf("%s: errored (%s) but the sandbox holds provider order(s) %v: created and never recorded",
					ref, rec.Reason, h.ids))
			}
		default:
			v.stuck = append(v.stuck, chaosDescribe(rec, h.n))
			cause := string(rec.State)
			if n := len(rec.History); n > 0 {
				cause += ", last " + rec.History[n-1].Call + " " + rec.History[n-1].Result
			}
			v.stuckCauses = append(v.stuckCauses, cause)
			if h.n == 1 {
				v.stuckHeld++
			}
		}
	}
	for p, byKey := range sandbox {
		for key, h := range byKey {
			if !ours[p+"\x00"+key] {
				v.orphans = append(v.orphans, fmt.Sprintf("%s: %d order(s) for %q, which no order of the run has", p, h.n, key))
			}
		}
	}
	return v
}

// chaosDescribe sums up an unsettled order for the failure message.
func chaosDescribe(rec *tasks.Record, held int) string {
	s := fmt.Sprintf("%s/%s: %s after %d attempts (%d failures, %d held by the sandbox), reason %q", rec.Provider, rec.OrderNo,
		rec.State, rec.Attempts, rec.Failures, held, rec.Reason)
	if n := len(rec.History); n > 0 {
		a := rec.History[n-1]
		s += fmt.Sprintf("; last call %s %s: %s", a.Call, a.Result, a.Message)
	}
	return s
}

// chaosStateOf returns a sort key for a chaosDescribe line: unknown
// orders, the common case, last.
func chaosStateOf(line string) string {
	if _, rest, ok := strings.Cut(line, ": "); ok && strings.HasPrefix(rest, string(tasks.StateUnknown)) {
		return "2"
	}
	return "1"
}

// report fails the test for each kind of finding.
func (v *chaosVerdict) report(t *testing.T, stats map[string]map[tasks.State]tasks.StateStats) {
	t.Helper()
	list := func(what string, items []string) {
		if len(items) == 0 {
			return
		}
		slices.Sort(items)
		shown := items[:min(25, len(items))]
		t.Errorf("%d %s:\n  %s", len(items), what, strings.Join(shown, "\n  "))
	}
	list("DUPLICATES (one order, several provider orders)", v.duplicates)
	list("LOST orders (errored, yet created at the provider)", v.lost)
	list("ledger/sandbox mismatches", v.mismatches)
	list("orders at the sandboxes that belong to no order of the run", v.orphans)
	if len(v.stuck) > 0 {
		t.Errorf("ledger at the deadline: %s", chaosStatsLine(stats))
		causes := map[string]int{}
		for _, c := range v.stuckCauses {
			causes[c]++
		}
		t.Errorf("stuck orders by state and last call: %v", causes)
		// The rarer states first, then by order number.
		slices.SortFunc(v.stuck, func(a, b string) int {
			return strings.Compare(chaosStateOf(a)+a, chaosStateOf(b)+b)
		})
		shown := v.stuck[:min(25, len(v.stuck))]
		t.Errorf("%d orders neither paid, errored nor pending (stuck):\n  %s", len(v.stuck), strings.Join(shown, "\n  "))
	}
	if want := v.paidPending + v.stuckHeld; v.sandboxTotal != want {
		t.Errorf("the sandboxes hold %d orders of the run; the ledger has %d paid or pending (and %d unsettled ones the sandbox holds)",
			v.sandboxTotal, v.paidPending, v.stuckHeld)
	}
}

// The two tests below pin down, in a second each and without processes,
// what TestChaos finds about UniCloud orders whose outcome is unknown.

// unicloudBench is a UniCloud sandbox already holding other orders the
// account placed in the last minutes, a handler with a real client on it,
// and an Enqueuer.
type unicloudBench struct {
	t      *testing.T
	usb    *unicloudsandbox.Server
	ledger *tasks.Ledger
	enq    *tasks.Enqueuer
	h      *tasks.Handler
	n      int
}

func newUnicloudBench(t *testing.T, others int, g tasks.Guard) *unicloudBench {
	t.Helper()
	rs := taskstest.StartRedis(t, nil)
	id, secret := "U"+strings.ReplaceAll(uuid.NewString(), "-", "")[:16], strings.ReplaceAll(uuid.NewString(), "-", "")
	usb := unicloudsandbox.New(id, secret)
	srv := httptest.NewServer(usb)
	t.Cleanup(srv.Close)
	// TakeMatched: only this bench creates orders on the sandbox's account;
	// RecreateUnlisted: the sandbox lists every order it made.
	uc, err := unicloud.New(unicloud.Options{Endpoint: srv.URL, AccessKeyID: id, AccessKeySecret: providers.Secret(secret), CreateOverrun: -1, TakeMatched: true, RecreateUnlisted: true})
	if err != nil {
		t.Fatal(err)
	}
	set := providers.NewSet()
	set.Add(uc)
	for i := range others {
		usb.Seed(unicloudsandbox.Order{InstanceName: fmt.Sprintf("other-nas-%04d", i), OrderCategory: "NEW", PayType: "DAY_MONTH_USAGE",
			RegionID: "cn-tianjin-yfb", AzoneID: "cn-tianjin-yfb1", ComponentCode: "nas.onestor", SpecificationCode: "nas.capacity.nfs",
			RentCount: 1, RentUnit: "month"})
	}
	ledger := tasks.NewLedger(rs.Client(t))
	client := asynq.NewClient(redisOpt(t, rs))
	t.Cleanup(func() { client.Close() })
	h := tasks.NewHandler(ledger, set, &tasks.HandlerOptions{
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}, Guard: g,
		Logger: slog.New(slog.DiscardHandler),
		// The sandbox lists an order as soon as it is made: no lag, so
		// an order found by matching is taken at once.
		ListingLag: -1,
	})
	return &unicloudBench{t: t, usb: usb, ledger: ledger, enq: tasks.NewEnqueuer(client, ledger, enqueueValidators(), nil), h: h}
}

// order enqueues a new order and returns its task.
func (b *unicloudBench) order() (tasks.Payload, *asynq.Task) {
	b.t.Helper()
	b.n++
	params, _ := json.Marshal(map[string]any{"azoneId": "cn-tianjin-yfb1", "componentCode": "nas.onestor", "dataEncryption": 0,
		"instanceName": fmt.Sprintf("bench-nas-%04d", b.n), "orderCategory": "NEW", "payType": "DAY_MONTH_USAGE", "projectId": "rg-bench",
		"regionId": "cn-tianjin-yfb", "renewType": "manualrenew", "rentCount": 1, "rentUnit": "month", "specificationCode": "nas.capacity.nfs",
		"unit": "GB", "vpc": "vpc-bench"})
	p := tasks.Payload{Provider: "unicloud", OrderNo: fmt.Sprintf("Bench%04d", b.n), Params: params}
	if res, err := b.enq.EnqueuePayload(context.Background(), p); err != nil || res.Status != tasks.Enqueued {
		b.t.Fatalf("enqueue %s: %+v %v", p.OrderNo, res, err)
	}
	task, err := tasks.NewOrderSubmitTask(p)
	if err != nil {
		b.t.Fatal(err)
	}
	return p, task
}

func (b *unicloudBench) record(p tasks.Payload) *tasks.Record {
	b.t.Helper()
	rec, err := b.ledger.Get(context.Background(), tasks.OrderRef{Provider: p.Provider, OrderNo: p.OrderNo})
	if err != nil || rec == nil {
		b.t.Fatalf("record %s: %v %v", p.OrderNo, rec, err)
	}
	return rec
}

// unknownOrder enqueues an order and runs its task once against a create
// that fails with a 500 after creating the order: the order is unknown and
// the sandbox holds it.
func (b *unicloudBench) unknownOrder() (tasks.Payload, *asynq.Task) {
	b.t.Helper()
	p, task := b.order()
	b.usb.Faults().Script(fault.FailAfter)
	_ = b.h.ProcessTask(context.Background(), task)
	var name struct {
		InstanceName string `json:"instanceName"`
	}
	_ = json.Unmarshal(p.Params, &name)
	if rec := b.record(p); rec.State != tasks.StateUnknown || b.usb.Count(name.InstanceName) != 1 {
		b.t.Fatalf("after a create that failed after acting: %s, %d held; want unknown, 1", rec.State, b.usb.Count(name.InstanceName))
	}
	return p, task
}

// An order whose create failed after acting is looked up before anything
// else. With more than unicloud.MaxDetails (100) other orders of the
// account in the lookup window (first attempt - 15m .. now + 15m), Lookup
// answers Ambiguous ("more than 100 candidate orders to identify") on
// every try, after 1 QueryOrders page per 100 orders and 100 OrderDetail
// calls, so the order stays unknown until its deadline (24h by default),
// then is left for an operator. TestChaos, with 1,000 UniCloud orders in a
// few minutes, ends with every UniCloud order that went unknown stuck
// there.
func TestChaosUnicloudUnknownOrderAtVolume(t *testing.T) {
	t.Parallel()
	b := newUnicloudBench(t, 150, nil)
	p, task := b.unknownOrder()
	calls := b.usb.Calls("QueryOrders") + b.usb.Calls("OrderDetail")
	for range 3 {
		_ = b.h.ProcessTask(context.Background(), task)
	}
	calls = b.usb.Calls("QueryOrders") + b.usb.Calls("OrderDetail") - calls
	if rec := b.record(p); rec.State != tasks.StatePaid {
		t.Errorf("unicloud order created by a create that failed after acting, with 150 other orders of the account in the last minutes: "+
			"still %s after 3 lookups (%d provider calls, none failed): %s", rec.State, calls, chaosDescribe(rec, 1))
	}
}

// The worker's circuit breaker (cmd/worker/run.go wires tasks/guard with
// its defaults: 5 failures, 30s cool-down) counts an Ambiguous Lookup as
// the provider being down, even when every call it made was answered 200
// and the lookup only could not tell the order apart. A handful of
// unknown orders retrying their lookups thus keeps UniCloud's breaker
// open, and new UniCloud orders are not submitted at all: TestChaos ends
// with UniCloud orders still queued that were never tried.
func TestChaosBreakerOpenedByUnidentifiableLookups(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	g := guard.New(nil, &guard.Options{Providers: []string{"unicloud"}, NowFunc: now, Logger: slog.New(slog.DiscardHandler)})
	b := newUnicloudBench(t, 150, g)

	// Five orders go unknown; a healthy order after each keeps the
	// breaker's count of consecutive failures at zero.
	var unknown []*asynq.Task
	for range 5 {
		_, task := b.unknownOrder()
		unknown = append(unknown, task)
		hp, ht := b.order()
		_ = b.h.ProcessTask(context.Background(), ht)
		if rec := b.record(hp); rec.State != tasks.StatePaid {
			t.Fatalf("healthy order %s: %s", hp.OrderNo, chaosDescribe(rec, 1))
		}
	}
	if st := g.State("unicloud"); st != guard.Closed {
		t.Fatalf("breaker %v before the lookups; want closed", st)
	}
	// Each unknown order is looked up once: every call is answered 200.
	before := b.usb.Calls("CreateOrder")
	for _, task := range unknown {
		_ = b.h.ProcessTask(context.Background(), task)
	}
	// A new order, and the same again after the cool-down once one of the
	// unknown orders has had its (trial) lookup.
	for round := range 2 {
		p, task := b.order()
		err := b.h.ProcessTask(context.Background(), task)
		if rec := b.record(p); rec.State != tasks.StatePaid {
			t.Errorf("round %d: a new unicloud order was not submitted (%s, %d create calls; breaker %v: %v) after lookups that were all answered 200 "+
				"but could not identify an order among 150", round, rec.State, b.usb.Calls("CreateOrder")-before, g.State("unicloud"), err)
		}
		advance(31 * time.Second)
		_ = b.h.ProcessTask(context.Background(), unknown[round])
	}
}

// replyDropper is a TCP proxy to Redis that, once armed with a marker,
// forwards the next command holding it and then cuts the connection
// instead of forwarding the reply: the command ran, and the client cannot
// know it (as when Redis goes away between executing a command and
// answering it, which TestChaos's Redis restart provokes).
type replyDropper struct {
	ln      net.Listener
	backend string
	mu      sync.Mutex
	marker  []byte
	dropped int
}

func newReplyDropper(t *testing.T, backend string) *replyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &replyDropper{ln: ln, backend: backend}
	t.Cleanup(func() { ln.Close() })
	go d.serve()
	return d
}

func (d *replyDropper) arm(marker string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.marker = []byte(marker)
}

func (d *replyDropper) serve() {
	for {
		c, err := d.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", d.backend)
		if err != nil {
			c.Close()
			continue
		}
		var drop atomic.Bool
		go func() { // client to server
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					d.mu.Lock()
					if d.marker != nil && bytes.Contains(buf[:n], d.marker) {
						d.marker = nil
						drop.Store(true)
					}
					d.mu.Unlock()
					if _, werr := s.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			s.Close()
		}()
		go func() { // server to client
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 && drop.Load() {
					d.mu.Lock()
					d.dropped++
					d.mu.Unlock()
					break
				}
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			c.Close()
			s.Close()
		}()
	}
}

// The README: "a new number: the record is created queued, then the asynq
// task is enqueued" and the answer is "enqueued". When the claim script
// runs but its reply is lost (Redis restarting, a connection reset),
// go-redis sends it again on its own (it retries commands that failed with
// EOF, MaxRetries 3 by default); the second run finds the record the first
// one made, and the Enqueuer answers "duplicate" (repaired) for a number
// nobody ever used before. The order is queued all the same, so nothing is
// lost or paid twice, but a producer that takes "duplicate" to mean the
// number is someone else's is misled. TestChaos saw it once in six runs,
// across its Redis restart.
func TestChaosEnqueueClaimReplyLost(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	opt, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := newReplyDropper(t, opt.Addr)
	opt.Addr = proxy.ln.Addr().String()
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	client := asynq.NewClient(redisOpt(t, rs))
	t.Cleanup(func() { client.Close() })
	ledger := tasks.NewLedger(rdb)
	enq := tasks.NewEnqueuer(client, ledger, enqueueValidators(), nil)
	ctx := context.Background()
	order := func(no string) tasks.Payload {
		return tasks.Payload{Provider: "tencent", OrderNo: no, Params: json.RawMessage(`{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`)}
	}
	// The first claim loads the script into Redis, so that the next one
	// runs it by EVALSHA in one round trip.
	if res, err := enq.EnqueuePayload(ctx, order("ReplyLostWarmup")); err != nil || res.Status != tasks.Enqueued {
		t.Fatalf("warm-up: %+v %v", res, err)
	}
	proxy.arm("ReplyLost0001")
	res, err := enq.EnqueuePayload(ctx, order("ReplyLost0001"))
	proxy.mu.Lock()
	dropped := proxy.dropped
	proxy.mu.Unlock()
	if dropped != 1 {
		t.Fatalf("the proxy dropped %d replies; want 1", dropped)
	}
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if res.Status != tasks.Enqueued {
		t.Errorf("a new order number whose claim's reply was lost (and retried by go-redis) is answered %q (repaired %v, state %s); want %q",
			res.Status, res.Repaired, res.State, tasks.Enqueued)
	}
	inspector := asynq.NewInspector(redisOpt(t, rs))
	defer inspector.Close()
	info, err := inspector.GetTaskInfo(tasks.DefaultQueue, tasks.TaskID("tencent", "ReplyLost0001"))
	if err != nil || info.State != asynq.TaskStatePending {
		t.Errorf("the order's task: %+v, %v; want it pending in the queue", info, err)
	}
}

// The same go-redis retry, on the worker's side: when the reply to the
// transition that makes an order paid is lost, go-redis runs the script
// again, which finds the order already paid and refuses
// (ErrStateChanged). The handler takes that for a Redis failure
// (handler.go, finish: "return wait(redisWait, err)"), so the outcome is
// never counted: orderworker_orders_total{outcome="paid"} and
// orderworker_enqueue_to_outcome_seconds miss the order and no "order paid"
// line is logged, although the provider holds it and the ledger says paid.
// TestChaos's accounting shows it as fewer "order paid" lines than paid
// orders after its Redis restart.
func TestChaosPaidTransitionReplyLost(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	opt, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := newReplyDropper(t, opt.Addr)
	opt.Addr = proxy.ln.Addr().String()
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	key, secret := "T"+strings.ReplaceAll(uuid.NewString(), "-", "")[:16], strings.ReplaceAll(uuid.NewString(), "-", "")
	tsb := tencentsandbox.New(key, secret)
	srv := httptest.NewServer(tsb)
	t.Cleanup(srv.Close)
	tc, err := tencent.New(tencent.Options{Endpoint: srv.URL, AppKey: key, AppSecret: providers.Secret(secret)})
	if err != nil {
		t.Fatal(err)
	}
	set := providers.NewSet()
	set.Add(tc)
	reg := prometheus.NewRegistry()
	ledger := tasks.NewLedger(rdb)
	h := tasks.NewHandler(ledger, set, &tasks.HandlerOptions{Metrics: tasks.NewMetrics(reg), Logger: slog.New(slog.DiscardHandler)})
	client := asynq.NewClient(redisOpt(t, rs))
	t.Cleanup(func() { client.Close() })
	enq := tasks.NewEnqueuer(client, ledger, enqueueValidators(), nil)
	ctx := context.Background()
	run := func(no string) error {
		p := tasks.Payload{Provider: "tencent", OrderNo: no, Params: json.RawMessage(`{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`)}
		if res, err := enq.EnqueuePayload(ctx, p); err != nil || res.Status != tasks.Enqueued {
			t.Fatalf("enqueue %s: %+v %v", no, res, err)
		}
		task, err := tasks.NewOrderSubmitTask(p)
		if err != nil {
			t.Fatal(err)
		}
		return h.ProcessTask(ctx, task)
	}
	paid := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "orderworker_orders_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["outcome"] == "paid" && labels["provider"] == "tencent" {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	// A first order loads the ledger's scripts into Redis.
	if err := run("PaidLostWarmup"); err != nil || paid() != 1 {
		t.Fatalf("warm-up order: %v, paid counter %v", err, paid())
	}
	// Only the transition to an outcome sets outcome_at.
	proxy.arm("outcome_at")
	err = run("PaidLost0001")
	rec, gerr := ledger.Get(ctx, tasks.OrderRef{Provider: "tencent", OrderNo: "PaidLost0001"})
	if gerr != nil || rec == nil || rec.State != tasks.StatePaid || tsb.Count("PaidLost0001") != 1 {
		t.Fatalf("record %+v %v, %d at the sandbox; want paid, 1", rec, gerr, tsb.Count("PaidLost0001"))
	}
	if got := paid(); got != 2 {
		t.Errorf("orderworker_orders_total{outcome=paid} = %v after two paid orders; want 2 (ProcessTask returned %v)", got, err)
	}
}
