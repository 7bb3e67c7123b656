package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// BenchmarkAPIvsEnqueuer accepts b.N new orders three times on one Redis:
// from 8 goroutines calling the Go Enqueuer, from 8 HTTP clients posting to
// POST /v1/orders over loopback (the API on the same Enqueuer) with Go's
// net/http client, and from 8 lean HTTP/1.1 clients (one keep-alive
// connection each, a request written as bytes, the answer read with
// http.ReadResponse). The clients share the machine's cores with the server
// and Redis; the lean client shows how much of the difference is the
// client's own cost, which a producer on another machine does not charge
// to the server. It reports the rates and the ratios to the Go rate. Run
// it with a fixed count:
// go test -run '^$' -bench APIvsEnqueuer -benchtime 5000x ./tasks/api
func BenchmarkAPIvsEnqueuer(b *testing.B) {
	enq, rdb, srv := benchAPI(b)
	const clients = 8
	order := benchOrder
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	// drive runs work(i) for i in (lo, hi] from the clients.
	drive := func(lo, hi int64, work func(i int64) error, cpu *cpuUse) time.Duration {
		before := readCPU(b, rdb)
		defer func() { cpu.add(readCPU(b, rdb), before) }()
		var next atomic.Int64
		next.Store(lo)
		var wg sync.WaitGroup
		start := time.Now()
		for range clients {
			wg.Go(func() {
				for i := next.Add(1); i <= hi; i = next.Add(1) {
					if err := work(i); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	postOne := func(i int64) error {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/orders", bytes.NewReader(order("H", i)))
		req.Header.Set("Authorization", "Bearer bench-token")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST /v1/orders: %d", resp.StatusCode)
		}
		return nil
	}
	enqueueOne := func(i int64) error {
		res, err := enq.Enqueue(context.Background(), order("G", i))
		if err == nil && res.Status != tasks.Enqueued {
			err = fmt.Errorf("Enqueue: %+v", res)
		}
		return err
	}
	// Lean clients: one connection each, handed out per goroutine.
	conns := make(chan *leanConn, clients)
	for range clients {
		c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns <- &leanConn{c: c, r: bufio.NewReader(c), host: strings.TrimPrefix(srv.URL, "http://")}
	}
	leanOne := func(i int64) error {
		c := <-conns
		defer func() { conns <- c }()
		return c.post(order("L", i))
	}
	// The three alternate in rounds, so that a change of load on a shared
	// machine weighs on both alike.
	const rounds = 5
	var direct, overHTTP, lean time.Duration
	var directCPU, httpCPU, leanCPU cpuUse
	b.ResetTimer()
	for r := range int64(rounds) {
		lo, hi := int64(b.N)*r/rounds, int64(b.N)*(r+1)/rounds
		direct += drive(lo, hi, enqueueOne, &directCPU)
		overHTTP += drive(lo, hi, postOne, &httpCPU)
		lean += drive(lo, hi, leanOne, &leanCPU)
	}
	b.StopTimer()
	goRate := float64(b.N) / direct.Seconds()
	httpRate := float64(b.N) / overHTTP.Seconds()
	leanRate := float64(b.N) / lean.Seconds()
	b.ReportMetric(goRate, "go-orders/s")
	b.ReportMetric(httpRate, "http-orders/s")
	b.ReportMetric(leanRate, "lean-orders/s")
	b.ReportMetric(httpRate/goRate, "http/go")
	b.ReportMetric(leanRate/goRate, "lean/go")
	n := float64(b.N)
	if b.N < 100 {
		return // the calibration run
	}
	b.Logf("CPU per order (this process, redis-server): Go Enqueuer %.0f + %.0f µs; net/http clients %.0f + %.0f µs; lean clients %.0f + %.0f µs",
		directCPU.proc.Seconds()*1e6/n, directCPU.redis.Seconds()*1e6/n,
		httpCPU.proc.Seconds()*1e6/n, httpCPU.redis.Seconds()*1e6/n,
		leanCPU.proc.Seconds()*1e6/n, leanCPU.redis.Seconds()*1e6/n)
}

// BenchmarkAPIBatchvsEnqueueBatch is BenchmarkAPIvsEnqueuer for producers
// that send orders in batches: 8 goroutines calling Enqueuer.EnqueueBatch
// against 8 net/http clients posting the same batches as NDJSON to
// POST /v1/orders/batch, alternating in rounds. b.N is the number of
// orders each way; apiBatchSize orders a batch. It also reports the batch
// API's rate over the Go Enqueuer's one call per order, measured in the
// same run: what a producer moving from one call per order in Go to
// batches over HTTP gets.
// go test -run '^$' -bench APIBatch -benchtime 20000x ./tasks/api
func BenchmarkAPIBatchvsEnqueueBatch(b *testing.B) {
	enq, _, srv := benchAPI(b)
	const clients = 8
	order := benchOrder
	batch := func(prefix string, lo, hi int64) [][]byte {
		out := make([][]byte, 0, hi-lo)
		for i := lo; i < hi; i++ {
			out = append(out, order(prefix, i))
		}
		return out
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	// drive runs work(lo', hi') over (lo, hi] in slices of size from the
	// clients, and returns the time it took.
	drive := func(lo, hi, size int64, work func(lo, hi int64) error) time.Duration {
		var next atomic.Int64
		next.Store(lo)
		var wg sync.WaitGroup
		start := time.Now()
		for range clients {
			wg.Go(func() {
				for {
					end := next.Add(size)
					from := end - size
					if from >= hi {
						return
					}
					if err := work(from, min(end, hi)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	goBatch := func(lo, hi int64) error {
		for i, r := range enq.EnqueueBatch(context.Background(), batch("G", lo, hi)) {
			if r.Err != nil || r.Status != tasks.Enqueued {
				return fmt.Errorf("EnqueueBatch, order %d: %+v", lo+int64(i), r)
			}
		}
		return nil
	}
	goOne := func(lo, hi int64) error {
		for i := lo; i < hi; i++ {
			res, err := enq.Enqueue(context.Background(), order("S", i))
			if err == nil && res.Status != tasks.Enqueued {
				err = fmt.Errorf("Enqueue: %+v", res)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	httpBatch := func(lo, hi int64) error {
		body := bytes.Join(batch("H", lo, hi), []byte("\n"))
		req, _ := http.NewRequest("POST", srv.URL+"/v1/orders/batch", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer bench-token")
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var results []tasks.EnqueueResult
		if err := json.NewDecoder(resp.Body).Decode(&results); err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST /v1/orders/batch: %d %v", resp.StatusCode, err)
		}
		if int64(len(results)) != hi-lo {
			return fmt.Errorf("POST /v1/orders/batch: %d results for %d orders", len(results), hi-lo)
		}
		for i, r := range results {
			if r.Status != tasks.Enqueued {
				return fmt.Errorf("POST /v1/orders/batch, order %d: %+v", lo+int64(i), r)
			}
		}
		return nil
	}
	const rounds = 5
	var direct, overHTTP, single time.Duration
	b.ResetTimer()
	for r := range int64(rounds) {
		lo, hi := int64(b.N)*r/rounds, int64(b.N)*(r+1)/rounds
		direct += drive(lo, hi, apiBatchSize, goBatch)
		overHTTP += drive(lo, hi, apiBatchSize, httpBatch)
		// The single-call Go rate over a fifth of the orders: it is
		// the slowest of the three.
		single += drive(lo, lo+(hi-lo)/5, 1, goOne)
	}
	b.StopTimer()
	goRate := float64(b.N) / direct.Seconds()
	httpRate := float64(b.N) / overHTTP.Seconds()
	singleRate := float64(b.N/5) / single.Seconds()
	b.ReportMetric(goRate, "go-batch-orders/s")
	b.ReportMetric(httpRate, "http-batch-orders/s")
	b.ReportMetric(singleRate, "go-single-orders/s")
	b.ReportMetric(httpRate/goRate, "http/go-batch")
	b.ReportMetric(httpRate/singleRate, "http-batch/go-single")
}

// apiBatchSize is how many orders one batch carries in
// BenchmarkAPIBatchvsEnqueueBatch.
const apiBatchSize = 100

// benchAPI starts a redis-server, an Enqueuer on it and the API over the
// Enqueuer, all stopped when the benchmark ends.
func benchAPI(b *testing.B) (*tasks.Enqueuer, *redis.Client, *httptest.Server) {
	rs := taskstest.StartRedis(b, nil)
	opt, err := tasks.ParseRedisURL(rs.URL())
	if err != nil {
		b.Fatal(err)
	}
	client := asynq.NewClient(opt)
	b.Cleanup(func() { client.Close() })
	rdb := rs.Client(b)
	l := ledger.New(rdb, nil)
	set := registry.Validators("bench")
	enq := tasks.NewEnqueuer(client, l, set, nil)
	h, err := api.New(enq, l, rdb, set, &api.Options{Tokens: []string{"bench-token"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return enq, rdb, srv
}

// benchOrder is a new Tencent order's payload, numbered prefix-i.
func benchOrder(prefix string, i int64) []byte {
	return fmt.Appendf(nil, `{"provider":"tencent","order_no":"%s-%d","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":1}}`, prefix, i)
}

// cpuUse is CPU time spent by this process (clients, server, Enqueuer)
// and by redis-server.
type cpuUse struct{ proc, redis time.Duration }

func (c *cpuUse) add(after, before cpuUse) {
	c.proc += after.proc - before.proc
	c.redis += after.redis - before.redis
}

// readCPU reads this process's CPU time and redis-server's (INFO cpu).
func readCPU(b *testing.B, rdb *redis.Client) cpuUse {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var red float64
	for _, line := range strings.Split(info, "\r\n") {
		for _, f := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(line, f); ok {
				x, _ := strconv.ParseFloat(v, 64)
				red += x
			}
		}
	}
	return cpuUse{
		proc:  time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)),
		redis: time.Duration(red * float64(time.Second)),
	}
}

// leanConn is a minimal HTTP/1.1 client on one keep-alive connection.
type leanConn struct {
	c    net.Conn
	r    *bufio.Reader
	host string
	buf  []byte
}

func (l *leanConn) post(body []byte) error {
	l.buf = fmt.Appendf(l.buf[:0], "POST /v1/orders HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer bench-token\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", l.host, len(body))
	l.buf = append(l.buf, body...)
	if _, err := l.c.Write(l.buf); err != nil {
		return err
	}
	resp, err := http.ReadResponse(l.r, nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /v1/orders: %d", resp.StatusCode)
	}
	return nil
}
