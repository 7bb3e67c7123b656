//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	aliyunsandbox "github.com/orderworker/orderworker/providers/aliyun/sandbox"
	"github.com/orderworker/orderworker/providers/fault"
	tencentsandbox "github.com/orderworker/orderworker/providers/tencent/sandbox"
	unicloudsandbox "github.com/orderworker/orderworker/providers/unicloud/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
	"github.com/orderworker/orderworker/tasks/webhook"
)

// Tests of outcome events end to end with real processes: worker processes
// built from this package deliver webhooks to real HTTP receivers, and an
// enqueue serve process takes orders from real HTTP clients.

// buildEnqueue builds cmd/enqueue into a scratch directory.
func buildEnqueue(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH (go test puts it there): %v", err)
	}
	out := filepath.Join(t.TempDir(), "enqueue")
	if b, err := exec.Command(goBin, "build", "-o", out, "../enqueue").CombinedOutput(); err != nil {
		t.Fatalf("go build enqueue: %v\n%s", err, b)
	}
	return out
}

// startAPI runs enqueue serve on a free loopback port and returns its base
// URL; the process is killed when the test ends.
func startAPI(t *testing.T, bin string, env []string) string {
	t.Helper()
	cmd := exec.Command(bin, "serve", "-addr", "127.0.0.1:0", "-log-format", "json")
	cmd.Env = env
	var stderr syncBuffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	addr := regexp.MustCompile(`"msg":"api listening","addr":"([0-9.:]+)"`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := addr.FindStringSubmatch(stderr.String()); m != nil {
			return "http://" + m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("enqueue serve did not start:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hookDelivery is one request a receiver got.
type hookDelivery struct {
	at                   time.Time
	id, order, typ, body string
	ok                   bool // answered 2xx
	verified             bool // signature and id check out
}

// outageListener resets every connection it accepts until up: to its
// clients, an endpoint that is down.
type outageListener struct {
	net.Listener
	up atomic.Bool
}

func (l *outageListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.up.Load() {
			return c, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // closed with a reset
		}
		_ = c.Close()
	}
}

// hookReceiver is a webhook endpoint that records every request. fail
// decides per request (the id and how many requests for it came before)
// whether to answer 500; while hold is set, requests wait for it.
type hookReceiver struct {
	signer *webhook.Signer
	mu     sync.Mutex
	log    []hookDelivery
	fail   func(id string, nth int) bool
	hold   chan struct{}
	held   chan string // the ids of requests that started waiting
	heldAt map[string]time.Time
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get(webhook.HeaderID)
	r.mu.Lock()
	hold := r.hold
	r.mu.Unlock()
	if hold != nil {
		r.mu.Lock()
		if r.heldAt == nil {
			r.heldAt = map[string]time.Time{}
		}
		if _, ok := r.heldAt[id]; !ok {
			r.heldAt[id] = time.Now()
		}
		r.mu.Unlock()
		select {
		case r.held <- id:
		default:
		}
		<-hold
		// The worker that sent it may be gone: this one is not
		// counted as delivered.
		http.Error(w, "held", http.StatusServiceUnavailable)
		r.record(hookDelivery{at: time.Now(), id: id, body: string(body)}, false)
		return
	}
	var ev ledger.Event
	_ = json.Unmarshal(body, &ev)
	d := hookDelivery{at: time.Now(), id: id, order: ev.Data.Provider + "/" + ev.Data.OrderNo, typ: ev.Type, body: string(body),
		verified: r.signer.Verify(body, req.Header) == nil && ev.ID == id}
	r.mu.Lock()
	nth := 0
	for _, x := range r.log {
		if x.id == id {
			nth++
		}
	}
	d.ok = r.fail == nil || !r.fail(id, nth)
	r.log = append(r.log, d)
	r.mu.Unlock()
	if !d.ok {
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *hookReceiver) record(d hookDelivery, ok bool) {
	d.ok = ok
	r.mu.Lock()
	r.log = append(r.log, d)
	r.mu.Unlock()
}

func (r *hookReceiver) deliveries() []hookDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

func (r *hookReceiver) delivered() map[string]bool {
	out := map[string]bool{}
	for _, d := range r.deliveries() {
		if d.ok {
			out[d.id] = true
		}
	}
	return out
}

// checkDeliveries checks a receiver's log against the events: every event
// delivered, nothing else; every request signed, with the event's id and
// the same body each time; one order's events in order (none sent before
// the order's earlier one was delivered); and exactly one terminal event id
// per order. It returns how many requests failed.
func checkDeliveries(t *testing.T, name string, log []hookDelivery, events []ledger.Event, orders []string) (failed int) {
	t.Helper()
	want := map[string]ledger.Event{}
	for _, e := range events {
		want[e.ID] = e
	}
	bodies := map[string]string{}
	deliveredIDs := map[string]bool{}
	lastDelivered := map[string]string{} // order -> its last delivered event id
	terminal := map[string]map[string]bool{}
	for i, d := range log {
		if !d.verified {
			t.Errorf("%s: request %d (%s) does not verify", name, i, d.id)
		}
		if _, ok := want[d.id]; !ok {
			t.Errorf("%s: request %d carries %s, not an event of the stream", name, i, d.id)
			continue
		}
		if b, seen := bodies[d.id]; seen && b != d.body {
			t.Errorf("%s: event %s: the body changed between deliveries", name, d.id)
		}
		bodies[d.id] = d.body
		// Every earlier event of the order must be delivered already.
		for _, e := range events {
			if e.Data.Provider+"/"+e.Data.OrderNo == d.order && streamIDLess(e.ID, d.id) && !deliveredIDs[e.ID] {
				t.Errorf("%s: order %s: event %s (%s) sent while its earlier event %s (%s) was not delivered", name, d.order, d.id, d.typ, e.ID, e.Type)
			}
		}
		if !d.ok {
			failed++
			continue
		}
		deliveredIDs[d.id] = true
		lastDelivered[d.order] = d.id
		if d.typ == "order.paid" || d.typ == "order.errored" {
			if terminal[d.order] == nil {
				terminal[d.order] = map[string]bool{}
			}
			terminal[d.order][d.id] = true
		}
	}
	for id, e := range want {
		if !deliveredIDs[id] {
			t.Errorf("%s: event %s (%s %s/%s) never delivered", name, id, e.Type, e.Data.Provider, e.Data.OrderNo)
		}
	}
	for _, o := range orders {
		if n := len(terminal[o]); n != 1 {
			t.Errorf("%s: order %s: %d terminal event ids delivered, want exactly 1", name, o, n)
		}
	}
	return failed
}

// streamIDLess orders Redis stream ids ("1700000000000-3").
func streamIDLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	an, _ := strconv.ParseUint(am, 10, 64)
	bn, _ := strconv.ParseUint(bm, 10, 64)
	if an != bn {
		return an < bn
	}
	asq, _ := strconv.ParseUint(as, 10, 64)
	bsq, _ := strconv.ParseUint(bs, 10, 64)
	return asq < bsq
}

// allEvents pages through GET /v1/events.
func allEvents(t *testing.T, api, token string) []ledger.Event {
	t.Helper()
	var out []ledger.Event
	after := "0"
	for {
		req, _ := http.NewRequest("GET", api+"/v1/events?limit=1000&after="+after, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Events    []ledger.Event `json:"events"`
			NextAfter string         `json:"next_after"`
			Missed    bool           `json:"missed"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /v1/events: %d %v", resp.StatusCode, err)
		}
		if page.Missed {
			t.Error("GET /v1/events: missed = true")
		}
		if len(page.Events) == 0 {
			return out
		}
		out = append(out, page.Events...)
		after = page.NextAfter
	}
}

// scrapeSum adds up a metric's samples whose labels include match, over
// the workers' /metrics.
func scrapeSum(t *testing.T, fleet *workerFleet, name, match string) float64 {
	t.Helper()
	sum := 0.0
	for _, p := range fleet.procs {
		if !p.alive() {
			continue
		}
		resp, err := http.Get("http://" + p.admin + "/metrics")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, name+"{") && strings.Contains(line, match) {
				f := strings.Fields(line)
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				sum += v
			}
		}
		resp.Body.Close()
	}
	return sum
}

// postOrder sends one order to POST /v1/orders and returns the status.
func postOrder(client *http.Client, api, token string, body []byte) (int, error) {
	req, _ := http.NewRequest("POST", api+"/v1/orders", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// firstFailures fails 30 % of first deliveries, chosen by a hash of the
// event id and the run.
func firstFailures(run string) func(string, int) bool {
	return func(id string, nth int) bool {
		h := fnv.New32a()
		h.Write([]byte(run + id))
		return nth == 0 && h.Sum32()%100 < 30
	}
}

// Orders sent by real HTTP clients to enqueue serve, processed by two worker
// processes against the sandboxes (with a few faults, so that some orders
// go unknown before paid, and Aliyun's go pending): each of two receivers
// ends with every event delivered, in order per order, signed, and exactly
// one terminal event id per order. One receiver fails 30 % of first
// deliveries; the other is down (connections refused) for the first
// minute, retried with the test's backoff (50 ms doubling to 1 s).
func TestWebhooksDeliverEveryOutcome(t *testing.T) {
	const outage = time.Minute
	run := strconv.FormatInt(time.Now().UnixNano()%1_000_000, 36)
	workerBin := buildWorker(t, workerRace())
	enqueueBin := buildEnqueue(t)
	rs := taskstest.StartRedis(t, nil)

	tsb := tencentsandbox.New("TKey"+run, "tsecret"+run)
	asb := aliyunsandbox.New("AKey"+run, "asecret"+run, "hooks-project")
	usb := unicloudsandbox.New("UKey"+run, "usecret"+run)
	rates := map[fault.Kind]float64{fault.Throttle: 0.03, fault.FailBefore: 0.03, fault.FailAfter: 0.05}
	for i, inj := range []*fault.Injector{tsb.Faults(), asb.Faults(), usb.Faults()} {
		inj.SetRates(uint64(time.Now().UnixNano())+uint64(i), rates)
	}
	tSrv, aSrv, uSrv := httptest.NewServer(tsb), httptest.NewServer(asb), httptest.NewServer(usb)
	t.Cleanup(tSrv.Close)
	t.Cleanup(aSrv.Close)
	t.Cleanup(uSrv.Close)

	secret := newWebhookSecret(t)
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	flaky := &hookReceiver{signer: signer, fail: firstFailures(run)}
	flakySrv := httptest.NewServer(flaky)
	t.Cleanup(flakySrv.Close)
	down := &hookReceiver{signer: signer}
	// The down receiver's port is held from the start, its connections
	// reset until the outage ends: a port left free for the outage could
	// be taken by another process's listener meanwhile.
	downLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downL := &outageListener{Listener: downLn}
	downSrv := &http.Server{Handler: down}
	go func() { _ = downSrv.Serve(downL) }()
	t.Cleanup(func() { _ = downSrv.Close() })
	downAddr := downLn.Addr().String()

	env := workerEnv(rs.URL(),
		"ORDERWORKER_MAX_ATTEMPTS=20",
		"TENCENT_ENDPOINT="+tSrv.URL, "TENCENT_APP_KEY=TKey"+run, "TENCENT_APP_SECRET=tsecret"+run,
		"ALIYUN_ENDPOINT="+aSrv.URL, "ALIYUN_APP_KEY=AKey"+run, "ALIYUN_APP_SECRET=asecret"+run, "ALIYUN_PROJECT_ID=hooks-project", "ALIYUN_AUTO_PAY=true", "ALIYUN_PAY_MATCHED=true", "ALIYUN_RECREATE_UNLISTED=true",
		"UNICLOUD_ENDPOINT="+uSrv.URL, "UNICLOUD_ACCESS_KEY_ID=UKey"+run, "UNICLOUD_ACCESS_KEY_SECRET=usecret"+run, "UNICLOUD_TAKE_MATCHED=true", "UNICLOUD_RECREATE_UNLISTED=true",
		"ORDERWORKER_WEBHOOK_URLS="+flakySrv.URL+"/hook,http://"+downAddr+"/hook",
		"ORDERWORKER_WEBHOOK_SECRET="+secret,
		"ORDERWORKER_WEBHOOK_RETRY_BASE=50ms", "ORDERWORKER_WEBHOOK_RETRY_MAX=1s", "ORDERWORKER_WEBHOOK_TIMEOUT=2s",
		"ORDERWORKER_DATA_KEY="+chaosDataKey, // the Aliyun orders' userId is personal data
	)
	fleet := newWorkerFleet(t, workerBin, env)
	fleet.add()
	fleet.add()
	fleet.waitReady(60 * time.Second)

	token := uuid.NewString()
	api := startAPI(t, enqueueBin, []string{"REDIS_URL=" + rs.URL(), "ORDERWORKER_API_TOKENS=" + token, "ORDERWORKER_DATA_KEY=" + chaosDataKey})

	// 150 orders from 8 concurrent HTTP clients, 30 more in one batch.
	var payloads [][]byte
	var orders []string
	for _, o := range chaosOrders(run)[:180] {
		b, _ := json.Marshal(o.p)
		payloads = append(payloads, b)
		orders = append(orders, o.p.Provider+"/"+o.p.OrderNo)
	}
	start := time.Now()
	downUp := make(chan struct{})
	go func() {
		time.Sleep(outage) // the outage, measured from the first order
		downL.up.Store(true)
		close(downUp)
	}()
	next := make(chan []byte)
	go func() {
		for _, p := range payloads[:150] {
			next <- p
		}
		close(next)
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 8 {
		wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			for p := range next {
				status, err := postOrder(client, api, token, p)
				if err != nil {
					t.Errorf("POST /v1/orders: %v", err)
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if statuses[http.StatusCreated] != 150 {
		t.Fatalf("POST /v1/orders answers %v, want 150 × 201", statuses)
	}
	req, _ := http.NewRequest("POST", api+"/v1/orders/batch", bytes.NewReader(bytes.Join(payloads[150:], []byte("\n"))))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var results []tasks.EnqueueResult
	err = json.NewDecoder(resp.Body).Decode(&results)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(results) != 30 {
		t.Fatalf("POST /v1/orders/batch: %d, %d results, %v", resp.StatusCode, len(results), err)
	}
	for i, r := range results {
		if r.Status != tasks.Enqueued {
			t.Fatalf("batch result %d: %+v", i, r)
		}
	}
	t.Logf("180 orders accepted over HTTP in %s", time.Since(start).Round(time.Millisecond))

	// Wait until every order is paid or errored and both receivers hold
	// every event.
	led := tasks.NewLedger(rs.Client(t))
	deadline := time.Now().Add(3 * time.Minute)
	var events []ledger.Event
	for {
		open := 0
		for _, o := range orders {
			p, no, _ := strings.Cut(o, "/")
			rec, err := led.Get(context.Background(), tasks.OrderRef{Provider: p, OrderNo: no})
			if err != nil || rec == nil || !rec.State.Terminal() {
				open++
			}
		}
		events = allEvents(t, api, token)
		a, b := flaky.delivered(), down.delivered()
		if open == 0 && len(a) == len(events) && len(b) == len(events) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d orders not paid or errored; %d events, %d delivered to the flaky receiver, %d to the down one",
				time.Since(start).Round(time.Second), open, len(events), len(a), len(b))
		}
		time.Sleep(500 * time.Millisecond)
	}
	<-downUp
	settled := time.Since(start)

	failedFirst := checkDeliveries(t, "flaky receiver", flaky.deliveries(), events, orders)
	checkDeliveries(t, "down receiver", down.deliveries(), events, orders)
	if failedFirst == 0 {
		t.Error("the flaky receiver failed no delivery: the test proves nothing")
	}
	refused := scrapeSum(t, fleet, "orderworker_webhook_deliveries_total", `endpoint="1",result="network_error"`)
	if refused == 0 {
		t.Error("no delivery to the down receiver failed (network_error): the outage proves nothing")
	}
	var firstDown time.Time
	if ds := down.deliveries(); len(ds) > 0 {
		firstDown = ds[0].at
	}
	if firstDown.Before(start.Add(outage)) {
		t.Errorf("the down receiver got a request at %s, inside its outage", firstDown.Sub(start))
	}
	for _, m := range []string{"orderworker_webhook_backlog_events", "orderworker_webhook_failed_events"} {
		if v := scrapeSum(t, fleet, m, `endpoint=`); v != 0 {
			t.Errorf("%s = %v after everything was delivered, want 0", m, v)
		}
	}
	types := map[string]int{}
	for _, e := range events {
		types[e.Type]++
	}
	t.Logf("%d orders, %d events %v; everything delivered %s after the first order; flaky receiver: %d requests (%d answered 500); down receiver: %d network errors during its %s outage, then %d requests",
		len(orders), len(events), types, settled.Round(100*time.Millisecond), len(flaky.deliveries()), failedFirst, int(refused), outage, len(down.deliveries()))

	for name, err := range fleet.stop(20 * time.Second) {
		if err != nil {
			t.Errorf("worker %s after SIGTERM: %v", name, err)
		}
	}
	if s := scanLogs(t, fleet.logFiles()); len(s.Alarms) > 0 {
		t.Errorf("worker logs: %v", s.Alarms)
	}
}

// A worker SIGKILLed while it delivers an event, and one SIGKILLed the
// moment an order's transition is written, lose no event: another worker
// process delivers both.
func TestWebhookSurvivesWorkerKill(t *testing.T) {
	run := strconv.FormatInt(time.Now().UnixNano()%1_000_000, 36)
	workerBin := buildWorker(t, workerRace())
	rs := taskstest.StartRedis(t, nil)
	tsb := tencentsandbox.New("TKey"+run, "tsecret"+run)
	tSrv := httptest.NewServer(tsb)
	t.Cleanup(tSrv.Close)
	secret := newWebhookSecret(t)
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	recv := &hookReceiver{signer: signer, hold: make(chan struct{}), held: make(chan string, 16)}
	recvSrv := httptest.NewServer(recv)
	t.Cleanup(recvSrv.Close)
	t.Cleanup(func() {
		recv.mu.Lock()
		if recv.hold != nil {
			close(recv.hold)
			recv.hold = nil
		}
		recv.mu.Unlock()
	})
	env := workerEnv(rs.URL(),
		"TENCENT_ENDPOINT="+tSrv.URL, "TENCENT_APP_KEY=TKey"+run, "TENCENT_APP_SECRET=tsecret"+run,
		"ORDERWORKER_WEBHOOK_URLS="+recvSrv.URL+"/hook", "ORDERWORKER_WEBHOOK_SECRET="+secret,
		"ORDERWORKER_WEBHOOK_RETRY_BASE=50ms", "ORDERWORKER_WEBHOOK_RETRY_MAX=500ms", "ORDERWORKER_WEBHOOK_TIMEOUT=1s",
	)
	fleet := newWorkerFleet(t, workerBin, env)
	w := fleet.add()
	fleet.waitReady(60 * time.Second)

	client := asynq.NewClient(redisOpt(t, rs))
	defer client.Close()
	led := tasks.NewLedger(rs.Client(t))
	enq := tasks.NewEnqueuer(client, led, enqueueValidators(), nil)
	order := func(no string) tasks.OrderRef {
		t.Helper()
		res, err := enq.Enqueue(context.Background(), fmt.Appendf(nil, `{"provider":"tencent","order_no":%q,"params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`, no))
		if err != nil || res.Status != tasks.Enqueued {
			t.Fatalf("enqueue %s: %+v, %v", no, res, err)
		}
		return tasks.OrderRef{Provider: "tencent", OrderNo: no}
	}

	// 1. Killed mid-delivery: the receiver holds the request.
	k1 := order("Kill1-" + run)
	select {
	case <-recv.held:
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery of the first order's event reached the receiver")
	}
	fleet.kill(w)

	// 2. Killed the moment the order is paid: wherever the worker was
	// (event not yet read, read but not admitted, leased), it is gone.
	fleet.start(w)
	fleet.waitReady(60 * time.Second)
	k2 := order("Kill2-" + run)
	deadline := time.Now().Add(30 * time.Second)
	var secondKill time.Time
	for {
		rec, err := led.Get(context.Background(), k2)
		if err == nil && rec != nil && rec.State == tasks.StatePaid {
			secondKill = time.Now()
			fleet.kill(w)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s not paid: %+v, %v", k2, rec, err)
		}
		time.Sleep(2 * time.Millisecond)
	}

	// Another worker, and a receiver that answers.
	recv.mu.Lock()
	close(recv.hold)
	recv.hold = nil
	recv.mu.Unlock()
	killedAt := time.Now()
	fleet.start(w)
	fleet.waitReady(60 * time.Second)
	var events []ledger.Event
	deadline = time.Now().Add(60 * time.Second)
	for {
		evs, err := led.Events(context.Background(), "", 100)
		if err != nil {
			t.Fatal(err)
		}
		events = evs
		if len(events) == 2 && recv.delivered()[events[0].ID] && recv.delivered()[events[1].ID] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events %v; delivered %v", events, recv.delivered())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var ok []hookDelivery
	for _, d := range recv.deliveries() {
		if d.ok {
			ok = append(ok, d)
		}
	}
	checkDeliveries(t, "receiver", ok, events, []string{k1.String(), k2.String()})
	recv.mu.Lock()
	at, sent := recv.heldAt[events[1].ID]
	recv.mu.Unlock()
	when := "before the killed worker sent it"
	if sent && at.Before(secondKill) {
		when = "while the killed worker was sending it"
	}
	t.Logf("both events delivered %s after the second kill, by a new worker; the second kill came %s",
		time.Since(killedAt).Round(100*time.Millisecond), when)
	if s := scanLogs(t, fleet.logFiles()); len(s.Alarms) > 0 {
		t.Errorf("worker logs: %v", s.Alarms)
	}
}
