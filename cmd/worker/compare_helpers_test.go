//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	tencentsandbox "github.com/orderworker/orderworker/providers/tencent/sandbox"
)

// Helpers for BenchmarkCompare (compare_bench_test.go). They drive the
// project only through its binaries, the README's environment variables
// and its documented wire formats (the task payload, the enqueue CLI), so
// the benchmark keeps compiling while the Go APIs under tasks/ change.
// Every name here starts with cmp to stay clear of the package's other
// test helpers.

// cmpBinaries are the three programs the comparison runs.
type cmpBinaries struct {
	worker, enqueue, naive string
}

// cmpBuild builds the worker, the enqueue CLI and the naive worker
// (without -race) into dir with one go build.
func cmpBuild(b *testing.B, dir string) cmpBinaries {
	b.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Fatalf("the go command is not on PATH (go test puts it there): %v", err)
	}
	const mod = "github.com/orderworker/orderworker/cmd/"
	cmd := exec.Command(goBin, "build", "-o", dir+string(filepath.Separator),
		mod+"worker", mod+"enqueue", mod+"worker/internal/naiveworker")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	b.Logf("built worker, enqueue and naiveworker in %s", time.Since(start).Round(time.Millisecond))
	return cmpBinaries{
		worker:  filepath.Join(dir, "worker"),
		enqueue: filepath.Join(dir, "enqueue"),
		naive:   filepath.Join(dir, "naiveworker"),
	}
}

// cmpFreeAddr returns a loopback address that was free a moment ago.
func cmpFreeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// cmpBaseEnv is what every child process inherits from the benchmark's
// environment: nothing that configures orderworker, only what runs a
// process and tunes the Go runtime.
func cmpBaseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG", "NAIVEWORKER_IDLE_CONNS"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// cmpSandbox serves the Tencent sandbox on loopback for the whole
// comparison. reset gives each measured run a fresh sandbox behind the same
// address (as each run gets a flushed Redis), so one run's orders and
// nonces never slow the next: the sandbox scans its nonces on every
// request. It adds a fixed latency before each request reaches the
// sandbox, records when the first request of a run arrived and when the
// run's target count of create calls was reached, and, when tracking,
// when each order's create call arrived.
type cmpSandbox struct {
	key, secret string

	cur     atomic.Pointer[tencentsandbox.Server]
	latency atomic.Int64 // nanoseconds
	target  atomic.Int64 // create calls that end a run; 0: none
	first   atomic.Int64 // unix nanoseconds of the first request since reset
	doneAt  atomic.Int64 // unix nanoseconds when target was reached
	track   atomic.Bool

	mu       sync.Mutex
	arrivals map[string]time.Time // order number → first create call
}

func newCmpSandbox(key, secret string) *cmpSandbox {
	s := &cmpSandbox{key: key, secret: secret}
	s.reset(0, 0, false)
	return s
}

// reset installs a fresh sandbox with the given latency, target and
// tracking. Call it only while no worker runs.
func (s *cmpSandbox) reset(latency time.Duration, target int, track bool) {
	s.cur.Store(tencentsandbox.New(s.key, s.secret))
	s.latency.Store(int64(latency))
	s.target.Store(int64(target))
	s.first.Store(0)
	s.doneAt.Store(0)
	s.track.Store(track)
	s.mu.Lock()
	s.arrivals = map[string]time.Time{}
	s.mu.Unlock()
}

// current is the sandbox of the run in progress.
func (s *cmpSandbox) current() *tencentsandbox.Server { return s.cur.Load() }

func (s *cmpSandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	s.first.CompareAndSwap(0, now.UnixNano())
	if s.track.Load() {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			var req struct{ Action, OrderNo string }
			if json.Unmarshal(body, &req) == nil && req.Action == "ServiceCreateOrder" {
				s.mu.Lock()
				if _, seen := s.arrivals[req.OrderNo]; !seen {
					s.arrivals[req.OrderNo] = now
				}
				s.mu.Unlock()
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if d := time.Duration(s.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	sb := s.cur.Load()
	sb.ServeHTTP(w, r)
	if target := s.target.Load(); target > 0 && s.doneAt.Load() == 0 && int64(sb.Calls("ServiceCreateOrder")) >= target {
		s.doneAt.CompareAndSwap(0, time.Now().UnixNano())
	}
}

// arrival returns when the order's create call arrived, if it did.
func (s *cmpSandbox) arrival(orderNo string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.arrivals[orderNo]
	return at, ok
}

// cmpCheckOrders counts what the current sandbox holds for the order
// numbers: how many have no order and how many have more than one.
func cmpCheckOrders(sb *tencentsandbox.Server, orderNos []string) (missing, dupes, total int) {
	held := sb.Orders()
	for _, list := range held {
		total += len(list)
	}
	for _, no := range orderNos {
		switch n := len(held[no]); {
		case n == 0:
			missing++
		case n > 1:
			dupes++
		}
	}
	return missing, dupes, total
}

func cmpUnix(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// cmpProc is one child process, its output in a log file.
type cmpProc struct {
	name    string
	cmd     *exec.Cmd
	log     string
	started time.Time
	exited  chan struct{}
	err     error
}

// cmpStart starts bin with env (and nothing else of the benchmark's
// environment) in its own process group with a parent-death signal, and
// kills it when the benchmark ends if it still runs.
func cmpStart(b *testing.B, name, bin, logPath string, env []string, args ...string) *cmpProc {
	b.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &cmpProc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	b.Cleanup(func() { p.stop(5 * time.Second) })
	return p
}

func (p *cmpProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, waits up to timeout, then SIGKILLs. It returns the
// exit error, or an error saying it had to kill.
func (p *cmpProc) stop(timeout time.Duration) error {
	if !p.alive() {
		return p.err
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.name, timeout)
	}
}

// tail is the end of the process's log, after its first n lines that are
// not at level INFO (what went wrong is rarely at the end).
func (p *cmpProc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var notable []string
	for i, l := range lines {
		if len(notable) == n || i >= len(lines)-n {
			break
		}
		if !strings.Contains(l, `"level":"INFO"`) && !strings.Contains(l, "level=INFO") {
			notable = append(notable, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(notable) > 0 {
		lines = append(append(notable, "…"), lines...)
	}
	return strings.Join(lines, "\n")
}

// cpuTime is the CPU time (user + system) the process used so far.
func (p *cmpProc) cpuTime() (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start at ")".
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc stat")
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil // USER_HZ = 100
}

// cmpRedisCPU is the redis-server's CPU time so far (INFO cpu).
func cmpRedisCPU(rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		for _, k := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(line, k); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				total += f
			}
		}
	}
	return time.Duration(total * float64(time.Second))
}

// cmpRedisReads is redis-server's total_reads_processed (INFO stats): the
// reads of client sockets it has made, one per round trip a client waits
// on (a pipeline's commands arrive in one), whatever the commands.
func cmpRedisReads(rdb *redis.Client) int64 {
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_reads_processed:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// peakRSS is the process's peak resident set (VmHWM), in bytes.
func (p *cmpProc) peakRSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", p.cmd.Process.Pid)
}

// waitUntil polls ready every 20ms until it holds, the process exits or
// timeout passes.
func (p *cmpProc) waitUntil(timeout time.Duration, what string, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ready() {
		if !p.alive() {
			return fmt.Errorf("%s exited before %s (%v):\n%s", p.name, what, p.err, p.tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not %s after %s:\n%s", p.name, what, timeout, p.tail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// cmpReadyz reports whether the worker's admin server answers /readyz
// with 200.
func cmpReadyz(admin string) func() bool {
	client := &http.Client{Timeout: 2 * time.Second}
	return func() bool {
		resp, err := client.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// cmpLogSays reports whether the process's log holds line.
func (p *cmpProc) logSays(line string) func() bool {
	return func() bool {
		b, err := os.ReadFile(p.log)
		return err == nil && bytes.Contains(b, []byte(line))
	}
}

// cmpStats is one INFO commandstats reading: calls by command.
type cmpStats map[string]int64

// cmpCommandUsec reads INFO commandstats' microseconds per command (a
// script's own time includes the calls it makes).
func cmpCommandUsec(ctx context.Context, rdb *redis.Client) (cmpStats, error) {
	return cmpReadCommandStats(ctx, rdb, "usec=")
}

// cmpCommandStats reads INFO commandstats. Calls made by Lua scripts
// count too: each is a command Redis executed.
func cmpCommandStats(ctx context.Context, rdb *redis.Client) (cmpStats, error) {
	return cmpReadCommandStats(ctx, rdb, "calls=")
}

// cmpReadCommandStats reads one field of INFO commandstats per command.
func cmpReadCommandStats(ctx context.Context, rdb *redis.Client, field string) (cmpStats, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := cmpStats{}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(kv, field); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("commandstats %q: %w", line, err)
				}
				out[name] = n
			}
		}
	}
	return out, nil
}

// cmpDelta is after minus before, less the one INFO call that took the
// before reading (Redis counts a command after it ran, so the after
// reading does not count itself).
func cmpDelta(before, after cmpStats) cmpStats {
	d := cmpStats{}
	for k, v := range after {
		if n := v - before[k]; n != 0 {
			d[k] = n
		}
	}
	d["info"]--
	if d["info"] == 0 {
		delete(d, "info")
	}
	return d
}

func (s cmpStats) total() int64 {
	var n int64
	for _, v := range s {
		n += v
	}
	return n
}

// perUnit renders every command's calls divided by per, most first,
// leaving out those under 0.005 per unit (connection set-up and the like).
func (s cmpStats) perUnit(per float64) string {
	names := make([]string, 0, len(s))
	for k, v := range s {
		if float64(v)/per >= 0.005 {
			names = append(names, k)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		if s[names[i]] != s[names[j]] {
			return s[names[i]] > s[names[j]]
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %.2f", k, float64(s[k])/per)
	}
	return strings.Join(parts, ", ")
}

// cmpPercentile is the nearest-rank percentile of sorted durations.
func cmpPercentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// cmpMachine describes the machine, the toolchain and the Redis server.
func cmpMachine(ctx context.Context, rdb *redis.Client) string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	redisVer := "?"
	if info, err := rdb.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				redisVer = v
			}
		}
	}
	if v, err := rdb.ConfigGet(ctx, "hash-max-listpack-value").Result(); err == nil && v["hash-max-listpack-value"] != "" {
		redisVer += " (hash-max-listpack-value " + v["hash-max-listpack-value"] + ")"
	}
	return fmt.Sprintf("%d × %s%s%s, GOMAXPROCS %d, %s, redis-server %s on loopback",
		runtime.NumCPU(), model, mem, kernel, runtime.GOMAXPROCS(0), runtime.Version(), redisVer)
}

// cmpLoadAvg is the 1, 5 and 15 minute load averages: other work on the
// machine skews every figure.
func cmpLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cmpNum renders n with thousands separators and the given decimals.
func cmpNum(n float64, decimals int) string {
	s := strconv.FormatFloat(math.Abs(n), 'f', decimals, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if n < 0 {
		b.WriteByte('-')
	}
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return b.String()
}

// cmpWorkerExtraEnv is ORDERWORKER_TEST_WORKER_ENV (space-separated K=V),
// appended to the project worker's environment as the process tests do, to
// compare under other settings.
func cmpWorkerExtraEnv() []string {
	return slices.Clip(strings.Fields(os.Getenv("ORDERWORKER_TEST_WORKER_ENV")))
}
