package taskstest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRestartKeepsDataWithAOF(t *testing.T) {
	s := StartRedis(t, &Options{AOF: true})
	c := s.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("after restart: Get(k) = %q, %v; want v", got, err)
	}
}

// ORDERWORKER_TEST_REDIS_URL gives the tests that dial by address the
// server it names, never go-redis's default (localhost:6379), and one that
// address alone cannot reach (another database, TLS, credentials) is
// refused, its password not shown.
func TestExternalServerURL(t *testing.T) {
	s, err := external("redis://127.0.0.1:7399/0")
	if err != nil || s.Addr != "127.0.0.1:7399" || s.URL() != "redis://127.0.0.1:7399/0" {
		t.Errorf("external = %+v, %v; want the address 127.0.0.1:7399", s, err)
	}
	if s, err := external("redis://127.0.0.1:7399"); err != nil || s.Addr != "127.0.0.1:7399" {
		t.Errorf("external without a database = %+v, %v; want database 0 at 127.0.0.1:7399", s, err)
	}
	for _, u := range []string{"redis://127.0.0.1:7399/3", "rediss://127.0.0.1:7399/0", "redis://:s3cret-pw@127.0.0.1:7399/0",
		"redis://user:s3cret-pw@127.0.0.1:7399/0", "unix:///tmp/redis.sock", "redis://:s3cret-pw%zz@127.0.0.1:7399/0"} {
		_, err := external(u)
		if err == nil {
			t.Errorf("external(%q): nil error; want it refused", u)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("external(%q): %v shows the password", u, err)
		}
	}
}

// A test binary that dies before its cleanups run (a panic on a goroutine
// of its own, a kill) takes its redis-servers with it, rather than leave
// them running on a developer's machine. The binary is run again as a
// child that starts one and panics.
func TestARedisDiesWithItsTestBinary(t *testing.T) {
	if out := os.Getenv("TASKSTEST_PANIC_AFTER_START"); out != "" {
		rs := StartRedis(t, nil)
		pid, err := rs.Client(t).InfoMap(context.Background(), "server").Result()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, []byte(pid["Server"]["process_id"]), 0o600); err != nil {
			t.Fatal(err)
		}
		go func() { panic("the child's planned panic") }()
		select {}
	}
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command(os.Args[0], "-test.run=^TestARedisDiesWithItsTestBinary$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TASKSTEST_PANIC_AFTER_START="+pidFile)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "the child's planned panic") {
		t.Fatalf("the child did not panic: %v\n%s", err, out)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatalf("the child wrote %q for the server's pid", b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return // gone
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the redis-server the child started (pid %d) still runs 10s after the child died", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
