// Package taskstest starts real Redis servers for tests.
//
// Each call to StartRedis runs its own redis-server on a free loopback
// port with a scratch directory, so tests are isolated without sharing
// database numbers, and stops it when the test ends. Set
// ORDERWORKER_TEST_REDIS_URL to use an existing server instead (a plain
// redis:// URL of database 0, without credentials; it is flushed first,
// and tests that restart Redis cannot run against it).
package taskstest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process.
type Server struct {
	Addr string
	// Username and Password are the credentials URL and Client use; empty
	// for a server without a password (set by StartACLRedis and
	// StartSentinel).
	Username, Password string
	// Socket is the path of the server's unix socket, if it has one
	// (StartACLRedis).
	Socket string
	dir    string
	aof    bool
	args   []string // more redis-server arguments
	cmd    *exec.Cmd
	ext    string // external URL, when ORDERWORKER_TEST_REDIS_URL is set
}

// Options for StartRedis.
type Options struct {
	// AOF turns on appendonly persistence with fsync every write, so a
	// restart keeps everything.
	AOF bool
	// Args are more redis-server arguments (such a server is always
	// started, never the one ORDERWORKER_TEST_REDIS_URL names).
	Args []string
}

// StartRedis starts a redis-server for t and stops it in t.Cleanup. It fails
// the test (never skips it) when no redis-server can be found.
func StartRedis(t testing.TB, opts *Options) *Server {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if u := os.Getenv("ORDERWORKER_TEST_REDIS_URL"); u != "" && !opts.AOF && len(opts.Args) == 0 {
		s, err := external(u)
		if err != nil {
			t.Fatal(err)
		}
		c := s.Client(t)
		if err := c.FlushDB(context.Background()).Err(); err != nil {
			t.Fatalf("flush %s: %v", u, err)
		}
		return s
	}
	s := &Server{aof: opts.AOF, args: opts.Args}
	startServer(t, s)
	return s
}

// external is the Server ORDERWORKER_TEST_REDIS_URL names. Tests reach
// it by its URL or by its address alone (asynq.RedisClientOpt{Addr:
// s.Addr}, say), which names no database, TLS or credentials: so the URL
// may name none, or those tests would write to database 0, or fail.
// Without an address they would dial go-redis's default, localhost:6379:
// another server than the one named.
func external(u string) (*Server, error) {
	opt, err := redis.ParseURL(u)
	if err != nil {
		// url.Error quotes the URL, password and all.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("ORDERWORKER_TEST_REDIS_URL does not parse as a Redis URL: %v", err)
	}
	if opt.DB != 0 || opt.TLSConfig != nil || opt.Network != "tcp" || opt.Username != "" || opt.Password != "" {
		shown := "it"
		if pu, err := url.Parse(u); err == nil {
			shown = pu.Redacted()
		}
		return nil, fmt.Errorf("ORDERWORKER_TEST_REDIS_URL: tests reach the server by host and port too, so it must name a plain TCP redis:// server without credentials, and database 0, not %s", shown)
	}
	return &Server{ext: u, Addr: opt.Addr}, nil
}

// freePort returns a loopback port free now and reserved for t's life
// against the other test processes of the run (reservePort): a server
// stopped and started again on it finds it still its own. It is drawn
// below the kernel's range of ephemeral ports (quietPorts), where no
// outgoing connection of any process takes it as its local port: in that
// range a server started again found its port taken now and then ("bind:
// Address already in use", a client's connection elsewhere holding it).
func freePort(t testing.TB) (int, error) {
	lo, hi := quietPorts()
	for range 200 {
		want := 0
		if hi > lo {
			want = lo + rand.IntN(hi-lo)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", want))
		if err != nil {
			if want == 0 {
				return 0, err
			}
			continue // taken: another
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if lock, ok := reservePort(port); ok {
			t.Cleanup(func() { lock.Close() })
			return port, nil
		}
	}
	return 0, errors.New("no free port that another test process has not reserved")
}

// quietPorts is the range of ports freePort draws from: from 20000 up to
// the first of the kernel's ephemeral ports (Linux's
// ip_local_port_range); an empty range (lo == hi) where that cannot be
// read or leaves too few, and freePort then takes any port the kernel
// gives.
func quietPorts() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, 0
	}
	first, err := strconv.Atoi(f[0])
	if err != nil || first < 21000 {
		return 0, 0
	}
	return 20000, first
}

func (s *Server) start(bin string) error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{"--port", port, "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--daemonize", "no", "--logfile", filepath.Join(s.dir, "redis.log"),
		"--maxmemory-policy", "noeviction"}
	if s.aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, s.args...)
	cmd := exec.Command(bin, args...)
	// Killed with the test binary, should it panic or be killed before
	// its cleanups run (Pdeathsig: when the thread that started it
	// ends, which in Go is the process, no goroutine here locking one).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	why := "did not answer"
	for time.Now().Before(deadline) {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, Username: s.Username, Password: s.Password, MaxRetries: -1})
		pid, err := serverPID(c)
		c.Close()
		if err == nil && pid != 0 && pid != cmd.Process.Pid {
			// The port was taken between freePort and the bind by a
			// server of a test running alongside: this one exited.
			why = fmt.Sprintf("was answered by another redis-server (pid %d)", pid)
			break
		}
		if err == nil {
			return nil
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	s.cmd = nil
	log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return fmt.Errorf("redis-server on %s %s: %s", s.Addr, why, lastLines(string(log), 5))
}

// serverPID asks the server at c for its process id (INFO server's
// process_id), which tells a server started by the caller from one that
// holds the port already. A user whose ACL refuses INFO reads as 0 once
// the server answers a PING.
func serverPID(c *redis.Client) (int, error) {
	ctx := context.Background()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		if perr := c.Ping(ctx).Err(); perr != nil {
			return 0, perr
		}
		return 0, nil
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("INFO server without process_id")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// URL is the server's redis:// URL (database 0).
func (s *Server) URL() string {
	if s.ext != "" {
		return s.ext
	}
	if s.Username != "" || s.Password != "" {
		return "redis://" + url.UserPassword(s.Username, s.Password).String() + "@" + s.Addr + "/0"
	}
	return "redis://" + s.Addr + "/0"
}

// Client returns a go-redis client for the server, closed when t ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// Stop stops the server and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// Restart stops the server and starts it again on the same port and
// directory; with AOF on, it comes back with its data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.Start(t)
}

// Start starts a stopped server again on the same port and directory.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if s.ext != "" {
		t.Fatal("restarting needs a redis-server started by the test, not ORDERWORKER_TEST_REDIS_URL")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.start(bin); err != nil {
		t.Fatalf("restart redis-server: %v", err)
	}
}

// Dump renders every key in the server with its value as text, for tests
// that scan Redis for what must not be there.
func (s *Server) Dump(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	c := s.Client(t)
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("dump redis: %v", err)
	}
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "\n")
		switch c.Type(ctx, k).Val() {
		case "string":
			b.WriteString(c.Get(ctx, k).Val())
		case "hash":
			for f, v := range c.HGetAll(ctx, k).Val() {
				b.WriteString(f + "=" + v + "\n")
			}
		case "list":
			b.WriteString(strings.Join(c.LRange(ctx, k, 0, -1).Val(), "\n"))
		case "zset":
			b.WriteString(strings.Join(c.ZRange(ctx, k, 0, -1).Val(), "\n"))
		case "set":
			b.WriteString(strings.Join(c.SMembers(ctx, k).Val(), "\n"))
		case "stream":
			for _, m := range c.XRange(ctx, k, "-", "+").Val() {
				fmt.Fprintf(&b, "%s %v\n", m.ID, m.Values)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// AttachReplica starts a redis-server, makes it a replica of s and waits
// until s reports it online and the replica's link is up.
func (s *Server) AttachReplica(t testing.TB) *Server {
	t.Helper()
	if s.ext != "" || s.Password != "" {
		t.Fatal("AttachReplica needs a server StartRedis started, without a password")
	}
	ctx := context.Background()
	master := s.Client(t)
	before := strings.Count(master.Info(ctx, "replication").Val(), "state=online")
	rep := StartRedis(t, nil)
	rc := rep.Client(t)
	host, port, _ := net.SplitHostPort(s.Addr)
	if err := rc.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mi := master.Info(ctx, "replication").Val()
		ri := rc.Info(ctx, "replication").Val()
		if strings.Count(mi, "state=online") > before && infoValue(ri, "master_link_status") == "up" {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica did not come up:\nmaster: %s\nreplica: %s", mi, ri)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
