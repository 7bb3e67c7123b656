//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/tencent"
	"github.com/orderworker/orderworker/providers/unicloud"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// Helpers for the tests that run the worker as real processes (chaos_test.go,
// load_test.go): build the binary, start, SIGKILL and restart workers, scan
// their JSON logs, and enqueue orders in bulk.
//
// Each worker runs in its own process group with a parent-death signal, so
// neither a failed test nor a test binary killed by its timeout leaves a
// worker behind.

// buildWorker builds this package's binary (with -race when race is set)
// into a scratch directory and returns its path.
func buildWorker(t *testing.T, race bool) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH (go test puts it there): %v", err)
	}
	out := filepath.Join(t.TempDir(), "worker")
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command(goBin, append(args, ".")...)
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build the worker: %v\n%s", err, b)
	}
	t.Logf("built the worker (race=%v) in %s", race, time.Since(start).Round(time.Millisecond))
	return out
}

// workerRace reports whether to build the workers with -race: yes unless
// ORDERWORKER_TEST_WORKER_RACE=0, so that a data race in the worker under
// kills, faults and load is reported (scanLogs finds the report in its
// log). On two cores it costs the chaos run nothing (it waits on asynq's
// lease recovery) and the load run about half again.
func workerRace() bool {
	return os.Getenv("ORDERWORKER_TEST_WORKER_RACE") != "0"
}

// redisOpt is the asynq connection to rs (its URL: with
// ORDERWORKER_TEST_REDIS_URL set, rs has no address of its own).
func redisOpt(t *testing.T, rs *taskstest.Server) asynq.RedisConnOpt {
	t.Helper()
	opt, err := tasks.ParseRedisURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// listenAddr returns a loopback address that was free a moment ago.
func listenAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// workerProc is one worker slot: a process, restarted in place after a
// kill, with one log file per incarnation.
type workerProc struct {
	name   string
	admin  string
	cmd    *exec.Cmd
	exited chan struct{}
	exit   error
	logs   []string
}

func (p *workerProc) alive() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// workerFleet runs worker processes from one binary with a common
// environment, and kills every one of them when the test ends.
type workerFleet struct {
	t     *testing.T
	bin   string
	env   []string
	dir   string
	procs []*workerProc
	kills atomic.Int64
}

// newWorkerFleet keeps the workers' logs in the test's artifact directory:
// go test -artifacts -outputdir DIR keeps them for a look after the run.
func newWorkerFleet(t *testing.T, bin string, env []string) *workerFleet {
	f := &workerFleet{t: t, bin: bin, env: env, dir: t.ArtifactDir()}
	t.Cleanup(func() {
		f.killAll()
		if t.Failed() {
			f.showLogs(40)
		}
	})
	return f
}

// showLogs logs each worker log's last n lines at WARN or above, or from
// the webhooks: on a failed run without -artifacts (CI), the logs go with
// the test's directory, and this is what is left to tell what happened.
func (f *workerFleet) showLogs(n int) {
	for _, path := range f.logFiles() {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var keep []string
		for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			if !strings.Contains(line, `"level":"INFO"`) && !strings.Contains(line, `"level":"DEBUG"`) || strings.Contains(line, "webhooks") {
				keep = append(keep, line)
			}
		}
		if len(keep) > n {
			keep = keep[len(keep)-n:]
		}
		f.t.Logf("%s (last %d lines at WARN or above, or from the webhooks):\n%s", filepath.Base(path), len(keep), strings.Join(keep, "\n"))
	}
}

// add starts a new worker and returns it without waiting for it.
func (f *workerFleet) add() *workerProc {
	p := &workerProc{name: fmt.Sprintf("w%d", len(f.procs)+1)}
	f.procs = append(f.procs, p)
	f.start(p)
	return p
}

// start runs p's next incarnation on a fresh admin port.
func (f *workerFleet) start(p *workerProc) {
	t := f.t
	t.Helper()
	p.admin = listenAddr(t)
	path := filepath.Join(f.dir, fmt.Sprintf("%s.%d.log", p.name, len(p.logs)))
	logf, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(f.bin)
	cmd.Env = append(slices.Clip(f.env), "ORDERWORKER_ADMIN_ADDR="+p.admin)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker %s: %v", p.name, err)
	}
	p.cmd, p.exited, p.exit = cmd, make(chan struct{}), nil
	p.logs = append(p.logs, path)
	exited := p.exited
	go func() {
		p.exit = cmd.Wait()
		close(exited)
	}()
}

// waitReady waits until every live worker answers /readyz with 200.
func (f *workerFleet) waitReady(timeout time.Duration) {
	t := f.t
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	for _, p := range f.procs {
		deadline := time.Now().Add(timeout)
		for {
			resp, err := client.Get("http://" + p.admin + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if !p.alive() {
				t.Fatalf("worker %s exited while starting (%v):\n%s", p.name, p.exit, tailFile(p.logs[len(p.logs)-1], 20))
			}
			if time.Now().After(deadline) {
				t.Fatalf("worker %s not ready after %s (last: %v):\n%s", p.name, timeout, err, tailFile(p.logs[len(p.logs)-1], 20))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// signal sends sig to p's process group.
func (p *workerProc) signal(sig syscall.Signal) {
	if p.alive() {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// kill SIGKILLs p and waits until it is gone.
func (f *workerFleet) kill(p *workerProc) {
	f.t.Helper()
	if !p.alive() {
		f.t.Fatalf("worker %s is not running (%v)", p.name, p.exit)
	}
	p.signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		f.t.Fatalf("worker %s did not die after SIGKILL", p.name)
	}
	f.kills.Add(1)
}

// stop sends SIGTERM to every live worker, as an orchestrator does, and
// returns each one's exit error once it stopped (or was killed after
// timeout).
func (f *workerFleet) stop(timeout time.Duration) map[string]error {
	out := map[string]error{}
	for _, p := range f.procs {
		p.signal(syscall.SIGTERM)
	}
	deadline := time.After(timeout)
	for _, p := range f.procs {
		if p.cmd == nil {
			continue
		}
		select {
		case <-p.exited:
			out[p.name] = p.exit
		case <-deadline:
			p.signal(syscall.SIGKILL)
			<-p.exited
			out[p.name] = fmt.Errorf("did not stop within %s after SIGTERM; killed", timeout)
		}
	}
	return out
}

// killAll SIGKILLs every live worker and waits for each.
func (f *workerFleet) killAll() {
	for _, p := range f.procs {
		if p.alive() {
			p.signal(syscall.SIGKILL)
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
			}
		}
	}
}

// logFiles lists every incarnation's log, in start order per worker.
func (f *workerFleet) logFiles() []string {
	var out []string
	for _, p := range f.procs {
		out = append(out, p.logs...)
	}
	return out
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logScan is what the workers' logs say.
type logScan struct {
	// Messages counts the JSON lines at WARN and above by message.
	Messages map[string]int
	// Paid counts "order paid" lines.
	Paid int
	// Alarms are lines that must never appear: a panic, a fatal runtime
	// error, a data race report, a plain-text line from the worker.
	Alarms []string
}

// scanLogs reads the workers' JSON logs. The last line of a SIGKILLed
// process may be cut off; such a line is not an alarm.
func scanLogs(t *testing.T, paths []string) logScan {
	t.Helper()
	s := logScan{Messages: map[string]int{}}
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		for i, line := range lines {
			var rec struct {
				Level string `json:"level"`
				Msg   string `json:"msg"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				if i == len(lines)-1 && !strings.Contains(line, "panic") && !strings.Contains(line, "DATA RACE") {
					continue
				}
				s.Alarms = append(s.Alarms, filepath.Base(path)+": "+providers.Truncate(line, 300))
				continue
			}
			switch {
			case rec.Msg == "order paid":
				s.Paid++
			case rec.Level == "WARN" || rec.Level == "ERROR":
				s.Messages[rec.Msg]++
			}
		}
	}
	return s
}

// enqueueValidators validates params as the enqueue CLI does, without
// credentials.
func enqueueValidators() *providers.Set {
	set := providers.NewSet()
	set.Disable(tencent.Name, "validation only", tencent.Validate)
	set.Disable(unicloud.Name, "validation only", unicloud.Validate)
	set.Disable(aliyun.Name, "validation only", aliyun.Validate, aliyun.Spec().Sensitive...)
	return set
}

// enqueueReport is what enqueueAll did.
type enqueueReport struct {
	Enqueued int
	// Retried counts orders whose Enqueue returned an error at least once
	// (Redis unreachable) before they were accepted.
	Retried int
	// Errors counts the Enqueue calls that returned an error.
	Errors int
	// NewDuplicates are orders answered "duplicate" on their first
	// Enqueue, with whether the Enqueuer repaired (queued) them: a number
	// nobody used before, whose claim went through on a call that failed
	// as far as the client could tell and was retried.
	NewDuplicates []string
	Rejected      []string
	Elapsed       time.Duration
}

// enqueueAll accepts every payload through enq with the given number of
// goroutines. Orders are handed out in order, no faster than spread allows
// (0: as fast as possible). An Enqueue that fails (Redis unreachable) is
// tried again until ctx ends; a duplicate after such a failure means the
// first try got through. Anything else is a rejection.
func enqueueAll(ctx context.Context, enq *tasks.Enqueuer, payloads []tasks.Payload, goroutines int, spread time.Duration) enqueueReport {
	start := time.Now()
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range payloads {
			if spread > 0 {
				if d := time.Until(start.Add(spread * time.Duration(i) / time.Duration(len(payloads)))); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
			}
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var mu sync.Mutex
	var rep enqueueReport
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := range next {
				p := payloads[i]
				failures := 0
				for {
					res, err := enq.EnqueuePayload(ctx, p)
					if err != nil {
						failures++
						if ctx.Err() != nil {
							mu.Lock()
							rep.Rejected = append(rep.Rejected, fmt.Sprintf("%s/%s: %v", p.Provider, p.OrderNo, err))
							mu.Unlock()
							break
						}
						time.Sleep(100 * time.Millisecond)
						continue
					}
					mu.Lock()
					rep.Errors += failures
					switch {
					case res.Status == tasks.Enqueued, res.Status == tasks.Duplicate && failures > 0:
						rep.Enqueued++
						if failures > 0 {
							rep.Retried++
						}
					case res.Status == tasks.Duplicate && res.State == tasks.StateQueued && res.Repaired:
						// Accepted and queued all the same.
						rep.Enqueued++
						rep.NewDuplicates = append(rep.NewDuplicates, fmt.Sprintf("%s/%s (repaired)", p.Provider, p.OrderNo))
					default:
						rep.Rejected = append(rep.Rejected, fmt.Sprintf("%s/%s: %s %s", p.Provider, p.OrderNo, res.Status, res.Reason))
					}
					mu.Unlock()
					break
				}
			}
		})
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	return rep
}

// workerEnv is the environment every worker of a test gets: Redis, the
// three sandboxes with their credentials, and fast retries.
func workerEnv(redisURL string, extra ...string) []string {
	env := []string{
		"REDIS_URL=" + redisURL,
		"ORDERWORKER_LOG_FORMAT=json",
		"ORDERWORKER_LOG_LEVEL=info",
		"ORDERWORKER_CONCURRENCY=20",
		"ORDERWORKER_RETRY_BASE=50ms",
		"ORDERWORKER_RETRY_MAX=1s",
		"ORDERWORKER_SHUTDOWN_TIMEOUT=3s",
		"ORDERWORKER_RECONCILE_INTERVAL=2s",
		// Short, so that lookups after ambiguous creates wait for it
		// and still end within a test.
		"ORDERWORKER_LISTING_LAG=300ms",
		// The sandboxes make an order before they answer, if at all:
		// none goes on after its create ended.
		"UNICLOUD_CREATE_OVERRUN=0s",
	}
	// The race detector's report goes to the worker's log, where
	// scanLogs finds it.
	if v, ok := os.LookupEnv("GORACE"); ok {
		env = append(env, "GORACE="+v)
	}
	env = append(env, extra...)
	// ORDERWORKER_TEST_WORKER_ENV adds settings (space-separated K=V) to
	// reproduce a run under other settings, e.g. with breakers off.
	return append(env, strings.Fields(os.Getenv("ORDERWORKER_TEST_WORKER_ENV"))...)
}
