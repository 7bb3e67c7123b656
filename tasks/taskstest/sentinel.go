package taskstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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

// The servers below always run their own redis-server processes, also when
// ORDERWORKER_TEST_REDIS_URL is set: they need a configuration of their own.

// ACLUser is the user StartACLRedis creates.
const ACLUser = "orders"

// StartACLRedis starts a redis-server whose default user is off, so the
// only way in is the ACL user ACLUser, with a password generated for the
// test (Server.Password) and every permission. It listens on a loopback
// port and on a unix socket (Server.Socket). URL and Client authenticate as
// that user. It is stopped in t.Cleanup.
func StartACLRedis(t testing.TB) *Server {
	t.Helper()
	s := aclServer(t)
	startServer(t, s)
	return s
}

func aclServer(t testing.TB) *Server {
	pw := Password(t)
	dir := t.TempDir()
	s := &Server{Username: ACLUser, Password: pw, dir: dir, Socket: filepath.Join(dir, "redis.sock")}
	s.args = []string{
		"--user", ACLUser, "on", ">" + pw, "~*", "&*", "+@all",
		"--user", "default", "off",
		"--unixsocket", s.Socket, "--unixsocketperm", "700",
	}
	return s
}

// Password returns a random password for a test server.
func Password(t testing.TB) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pw" + hex.EncodeToString(b)
}

// startServer starts s (its Username, Password and args set) on a free
// loopback port in a scratch directory and stops it in t.Cleanup. It fails
// the test when redis-server is missing.
func startServer(t testing.TB, s *Server) {
	t.Helper()
	bin := redisServer(t)
	if s.dir == "" {
		s.dir = t.TempDir()
	}
	var lastErr error
	for range 5 {
		port, err := freePort(t)
		if err != nil {
			t.Fatal(err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.start(bin); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("start redis-server: %v", lastErr)
	}
	t.Cleanup(s.Stop)
}

func redisServer(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found on PATH: install it (apt-get install redis-server; .ci/run does)")
	}
	return bin
}

// Kill SIGKILLs the server, as a crash would, and waits for it to exit.
// Start brings it back on the same port and directory.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// SentinelOptions for StartSentinel. The zero value is a master, two
// replicas and three sentinels without a sentinel password.
type SentinelOptions struct {
	// Replicas of the master; default 2.
	Replicas int
	// Sentinels watching the master; default 3. The quorum is a majority.
	Sentinels int
	// SentinelAuth gives the sentinels a password of their own
	// (Sentinel.SentinelPassword).
	SentinelAuth bool
	// AOF turns on appendonly persistence, fsync every write, on the
	// master and the replicas.
	AOF bool
	// DownAfter is how long the master may not answer before a sentinel
	// thinks it down (down-after-milliseconds); default 1s.
	DownAfter time.Duration
}

// Sentinel is a Redis deployment under Sentinel on loopback: a master and
// its replicas, all with requirepass and masterauth set to Password, and
// the sentinels that watch them under MasterName.
type Sentinel struct {
	MasterName string
	// Password is every data server's requirepass and masterauth, so any
	// of them can be master or replica.
	Password string
	// SentinelPassword is the sentinels' requirepass; empty without
	// SentinelOptions.SentinelAuth.
	SentinelPassword string
	// Servers are the master it started with, then the replicas. Which
	// one is master changes with failovers: ask MasterAddr.
	Servers []*Server
	// SentinelAddrs are the sentinels' host:port addresses.
	SentinelAddrs []string

	sentinels []*sentinelProc
}

// FailoverTimeout is the sentinels' failover-timeout: a failover not done
// within it is given up, and an automatic one is not retried for twice
// as long.
const FailoverTimeout = 4 * time.Second

// StartSentinel starts a master, its replicas and the sentinels on free
// loopback ports, waits until the replicas are in sync and every sentinel
// knows every replica and every other sentinel (so a failover can happen),
// and stops everything in t.Cleanup. It fails the test when redis-server is
// missing.
func StartSentinel(t testing.TB, opts *SentinelOptions) *Sentinel {
	t.Helper()
	o := SentinelOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Replicas == 0 {
		o.Replicas = 2
	}
	if o.Sentinels == 0 {
		o.Sentinels = 3
	}
	if o.DownAfter == 0 {
		o.DownAfter = time.Second
	}
	s := &Sentinel{MasterName: "orders-master", Password: Password(t)}
	if o.SentinelAuth {
		s.SentinelPassword = Password(t)
	}
	auth := []string{"--requirepass", s.Password, "--masterauth", s.Password}
	master := &Server{Password: s.Password, aof: o.AOF, args: auth}
	startServer(t, master)
	s.Servers = append(s.Servers, master)
	for range o.Replicas {
		host, port, _ := net.SplitHostPort(master.Addr)
		r := &Server{Password: s.Password, aof: o.AOF, args: append([]string{"--replicaof", host, port}, auth...)}
		startServer(t, r)
		s.Servers = append(s.Servers, r)
	}
	bin := redisServer(t)
	for range o.Sentinels {
		p := &sentinelProc{dir: t.TempDir(), password: s.SentinelPassword}
		var lastErr error
		for range 5 {
			port, err := freePort(t)
			if err != nil {
				t.Fatal(err)
			}
			p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			conf := s.sentinelConf(port, p.dir, master.Addr, o)
			if err := os.WriteFile(filepath.Join(p.dir, "sentinel.conf"), []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			if lastErr = p.start(bin); lastErr == nil {
				break
			}
		}
		if lastErr != nil {
			t.Fatalf("start redis-server --sentinel: %v", lastErr)
		}
		t.Cleanup(p.stop) // after the data servers' cleanups: sentinels stop first
		s.sentinels = append(s.sentinels, p)
		s.SentinelAddrs = append(s.SentinelAddrs, p.addr)
	}
	if err := s.waitReady(30*time.Second, o); err != nil {
		t.Fatalf("sentinel deployment not ready: %v\n%s", err, s.logs())
	}
	return s
}

func (s *Sentinel) sentinelConf(port int, dir, masterAddr string, o SentinelOptions) string {
	host, mport, _ := net.SplitHostPort(masterAddr)
	quorum := o.Sentinels/2 + 1
	lines := []string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"daemonize no",
		"dir " + dir,
		"logfile " + filepath.Join(dir, "sentinel.log"),
		fmt.Sprintf("sentinel monitor %s %s %s %d", s.MasterName, host, mport, quorum),
		fmt.Sprintf("sentinel auth-pass %s %s", s.MasterName, s.Password),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", s.MasterName, o.DownAfter.Milliseconds()),
		fmt.Sprintf("sentinel failover-timeout %s %d", s.MasterName, FailoverTimeout.Milliseconds()),
		fmt.Sprintf("sentinel parallel-syncs %s 1", s.MasterName),
	}
	if s.SentinelPassword != "" {
		lines = append(lines, "requirepass "+s.SentinelPassword, "sentinel sentinel-pass "+s.SentinelPassword)
	}
	return strings.Join(lines, "\n") + "\n"
}

// URL is the redis-sentinel:// URL of the deployment, database 0, with
// the sentinel password (when there is one) and the master's password.
func (s *Sentinel) URL() string {
	u := "redis-sentinel://"
	if s.SentinelPassword != "" {
		u += url.UserPassword("", s.SentinelPassword).String() + "@"
	}
	return u + strings.Join(s.SentinelAddrs, ",") + "/0?master=" + url.QueryEscape(s.MasterName) +
		"&password=" + url.QueryEscape(s.Password)
}

// MasterAddr is the master's address as most of the sentinels that answer
// report it. It fails the test when no sentinel answers.
func (s *Sentinel) MasterAddr(t testing.TB) string {
	t.Helper()
	addr, _, err := s.masterAddr()
	if err != nil {
		t.Fatalf("master address: %v", err)
	}
	return addr
}

// Master is the Server that is master now (MasterAddr).
func (s *Sentinel) Master(t testing.TB) *Server {
	t.Helper()
	return s.server(t, s.MasterAddr(t))
}

func (s *Sentinel) server(t testing.TB, addr string) *Server {
	t.Helper()
	for _, srv := range s.Servers {
		if srv.Addr == addr {
			return srv
		}
	}
	t.Fatalf("the sentinels name %s as master, which is none of the servers started", addr)
	return nil
}

// masterAddr asks every sentinel and returns the address most of them
// report, and whether all that answered agree.
func (s *Sentinel) masterAddr() (string, bool, error) {
	votes := map[string]int{}
	var best string
	var lastErr error
	answered := 0
	for _, p := range s.sentinels {
		addr, err := p.masterAddr(s.MasterName)
		if err != nil {
			lastErr = err
			continue
		}
		answered++
		votes[addr]++
		if votes[addr] > votes[best] {
			best = addr
		}
	}
	if answered == 0 {
		return "", false, fmt.Errorf("no sentinel answers: %v", lastErr)
	}
	return best, votes[best] == answered, nil
}

// Failover forces a failover (SENTINEL FAILOVER), as an operator would,
// and returns the address of the master before it; it does not wait for
// the new master (WaitNewMaster does). A failover still in progress or
// replicas not yet in sync are waited out for up to 30s.
func (s *Sentinel) Failover(t testing.TB) string {
	t.Helper()
	old := s.MasterAddr(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		for _, p := range s.sentinels {
			if err = p.do("SENTINEL", "FAILOVER", s.MasterName); err == nil {
				return old
			}
			if !isRedisReply(err) {
				continue // this sentinel is down: ask another
			}
			break // INPROG, NOGOODSLAVE: wait and ask again
		}
		if time.Now().After(deadline) {
			t.Fatalf("SENTINEL FAILOVER: %v\n%s", err, s.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// KillMaster SIGKILLs the current master and returns it, stopped: the
// sentinels notice after DownAfter and promote a replica (WaitNewMaster).
// Start on the returned server brings it back, and the sentinels then make
// it a replica of the new master.
func (s *Sentinel) KillMaster(t testing.TB) *Server {
	t.Helper()
	m := s.Master(t)
	m.Kill()
	return m
}

// WaitNewMaster waits until every sentinel that answers reports the same
// master, other than old, and that server answers ROLE as a master; it
// returns the new master's address. It fails the test after timeout.
func (s *Sentinel) WaitNewMaster(t testing.TB, old string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		addr, agree, err := s.masterAddr()
		if err == nil && agree && addr != old {
			if role, err := s.server(t, addr).role(); err == nil && role == "master" {
				return addr
			} else {
				last = fmt.Sprintf("sentinels name %s, whose role is %q (%v)", addr, role, err)
			}
		} else {
			last = fmt.Sprintf("sentinels name %s (all agree: %v, %v)", addr, agree, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new master within %s: %s\n%s", timeout, last, s.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitReplicas waits until the current master has n replicas online (after
// a failover the sentinels point the others at the new master one by one,
// and a demoted master follows once they notice it). It fails the test
// after timeout.
func (s *Sentinel) WaitReplicas(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		online, err := s.replicasOnline()
		if err == nil && online >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("master has %d replicas online (%v) after %s, want %d\n%s", online, err, timeout, n, s.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Sentinel) replicasOnline() (int, error) {
	addr, _, err := s.masterAddr()
	if err != nil {
		return 0, err
	}
	var m *Server
	for _, srv := range s.Servers {
		if srv.Addr == addr {
			m = srv
		}
	}
	if m == nil {
		return 0, fmt.Errorf("master %s is none of the servers started", addr)
	}
	c := redis.NewClient(&redis.Options{Addr: m.Addr, Password: m.Password, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	return strings.Count(info, "state=online"), nil
}

// role is the server's ROLE: master or slave.
func (srv *Server) role() (string, error) {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: srv.Username, Password: srv.Password, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", err
	}
	if len(v) == 0 {
		return "", errors.New("empty ROLE reply")
	}
	role, _ := v[0].(string)
	return role, nil
}

// waitReady waits until the replicas are in sync and every sentinel
// knows the master, every replica (with a fresh link) and every other
// sentinel.
func (s *Sentinel) waitReady(timeout time.Duration, o SentinelOptions) error {
	deadline := time.Now().Add(timeout)
	for {
		err := s.ready(o)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Sentinel) ready(o SentinelOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, r := range s.Servers[1:] {
		c := redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.Password, MaxRetries: -1})
		info, err := c.Info(ctx, "replication").Result()
		c.Close()
		if err != nil {
			return fmt.Errorf("replica %s: %w", r.Addr, err)
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica %s not in sync yet", r.Addr)
		}
	}
	for _, p := range s.sentinels {
		c := p.client()
		m, err := c.Master(ctx, s.MasterName).Result()
		if err != nil {
			c.Close()
			return fmt.Errorf("sentinel %s: %w", p.addr, err)
		}
		if m["num-slaves"] != strconv.Itoa(o.Replicas) || m["num-other-sentinels"] != strconv.Itoa(o.Sentinels-1) || m["flags"] != "master" {
			c.Close()
			return fmt.Errorf("sentinel %s sees flags %s, %s replicas, %s other sentinels", p.addr, m["flags"], m["num-slaves"], m["num-other-sentinels"])
		}
		replicas, err := c.Replicas(ctx, s.MasterName).Result()
		c.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", p.addr, err)
		}
		for _, r := range replicas {
			if r["flags"] != "slave" || r["master-link-status"] != "ok" {
				return fmt.Errorf("sentinel %s sees replica %s:%s flags %s, link %s", p.addr, r["ip"], r["port"], r["flags"], r["master-link-status"])
			}
		}
	}
	return nil
}

// logs is the tail of every sentinel's log, for a failure message.
func (s *Sentinel) logs() string {
	var b strings.Builder
	for _, p := range s.sentinels {
		log, _ := os.ReadFile(filepath.Join(p.dir, "sentinel.log"))
		fmt.Fprintf(&b, "sentinel %s: %s\n", p.addr, lastLines(string(log), 8))
	}
	return b.String()
}

// sentinelProc is one redis-server --sentinel process.
type sentinelProc struct {
	addr, dir, password string
	cmd                 *exec.Cmd
	exited              chan struct{} // closed when cmd has exited
}

func (p *sentinelProc) start(bin string) error {
	cmd := exec.Command(bin, filepath.Join(p.dir, "sentinel.conf"), "--sentinel")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c := p.client()
		err := c.Ping(context.Background()).Err()
		c.Close()
		if err == nil {
			p.cmd, p.exited = cmd, exited
			return nil
		}
		select {
		case <-exited:
			deadline = time.Now()
		case <-time.After(20 * time.Millisecond):
		}
	}
	_ = cmd.Process.Kill()
	<-exited
	log, _ := os.ReadFile(filepath.Join(p.dir, "sentinel.log"))
	return fmt.Errorf("sentinel on %s did not answer: %s", p.addr, lastLines(string(log), 5))
}

func (p *sentinelProc) client() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: p.addr, Password: p.password, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
}

func (p *sentinelProc) masterAddr(name string) (string, error) {
	c := p.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := c.GetMasterAddrByName(ctx, name).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(v[0], v[1]), nil
}

func (p *sentinelProc) do(args ...any) error {
	c := p.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cmd := redis.NewCmd(ctx, args...)
	_ = c.Process(ctx, cmd)
	return cmd.Err()
}

func (p *sentinelProc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// isRedisReply reports whether err is an error reply from a server (it
// answered), not a network failure.
func isRedisReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// Pause stops the server (SIGSTOP) until Resume: it keeps its connections
// but answers nothing, as a hung or partitioned server would. A paused
// server is resumed when the test ends, so that its cleanup can stop it.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		t.Fatal("Pause: the server is not running")
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Resume)
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
}
