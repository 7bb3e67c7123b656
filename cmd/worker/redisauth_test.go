package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// startWorker runs the worker (no -dev) against redisURL and returns a
// channel with run's result and its logs.
func startWorker(t *testing.T, ctx context.Context, redisURL, admin string) (chan error, *syncBuffer) {
	t.Helper()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-admin-addr", admin, "-shutdown-timeout", "2s"},
			envFunc(map[string]string{"REDIS_URL": redisURL}), &stdout, &stderr)
	}()
	return done, &stderr
}

// A worker pointed at a Redis that refuses it for good exits at once with
// the reason, never showing a password, instead of waiting forever.
func TestWorkerExitsOnPermanentRedisError(t *testing.T) {
	t.Parallel()
	acl := taskstest.StartACLRedis(t)
	plain := taskstest.StartRedis(t, nil)
	wrong := taskstest.Password(t)
	for _, c := range []struct {
		name, url, reason string
	}{
		{"wrong password", "redis://" + url.UserPassword(acl.Username, wrong).String() + "@" + acl.Addr + "/0", "WRONGPASS"},
		{"no credentials", "redis://" + acl.Addr + "/0", "NOAUTH"},
		{"database out of range", "redis://" + plain.Addr + "/99", "DB index is out of range"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done, logs := startWorker(t, ctx, c.url, "127.0.0.1:0")
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), c.reason) || !strings.Contains(err.Error(), "REDIS_URL") {
					t.Fatalf("worker returned %v, want an error naming REDIS_URL and saying %s", err, c.reason)
				}
				for _, pw := range []string{wrong, acl.Password} {
					if strings.Contains(err.Error(), pw) || strings.Contains(logs.String(), pw) {
						t.Errorf("a password shows in the error or the logs:\n%v\n%s", err, logs)
					}
				}
			case <-time.After(20 * time.Second):
				cancel()
				<-done
				t.Fatalf("worker still running 20s after start, waiting on a permanent error; logs:\n%s", logs)
			}
		})
	}
}

// A worker reaches ready through the ACL user (default user off) and
// through the sentinels to a password-protected master, then drains.
func TestWorkerReadyWithACLUserAndSentinel(t *testing.T) {
	t.Parallel()
	acl := taskstest.StartACLRedis(t)
	sen := taskstest.StartSentinel(t, &taskstest.SentinelOptions{SentinelAuth: true})
	for _, c := range []struct{ name, url string }{
		{"acl user", acl.URL()},
		{"sentinel", sen.URL()},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done, logs := startWorker(t, ctx, c.url, "127.0.0.1:0")
			admin := adminAddr(t, logs, done)
			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, err := http.Get("http://" + admin + "/readyz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						break
					}
				}
				select {
				case err := <-done:
					t.Fatalf("worker returned %v before it was ready; logs:\n%s", err, logs)
				default:
				}
				if time.Now().After(deadline) {
					cancel()
					<-done
					t.Fatalf("/readyz not 200 within 30s; logs:\n%s", logs)
				}
				time.Sleep(100 * time.Millisecond)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("worker returned %v after SIGTERM", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("worker did not stop within 20s")
			}
		})
	}
}

// A plain redis:// URL naming one node of a Redis Cluster would half work
// (MOVED for every key on the other nodes): the worker refuses it at start
// and names the form to use.
func TestWorkerRefusesOneClusterNode(t *testing.T) {
	t.Parallel()
	cl := taskstest.StartCluster(t, &taskstest.ClusterOptions{Masters: 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done, logs := startWorker(t, ctx, "redis://"+cl.MasterAddrs()[1]+"/0", "127.0.0.1:0")
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "redis-cluster://") {
			t.Fatalf("worker returned %v, want a refusal naming redis-cluster://", err)
		}
	case <-time.After(20 * time.Second):
		cancel()
		<-done
		t.Fatalf("worker still running 20s after start on one cluster node; logs:\n%s", logs)
	}
}

// A worker whose ORDERWORKER_DATA_KEY is not the one the producers sealed
// the ledger's params with refuses to start and says so; with the right key
// it starts.
func TestWorkerRefusesAnotherDataKey(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	producers, err := tasks.NewSealer("UFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFA=")
	if err != nil {
		t.Fatal(err)
	}
	if err := tasks.NewLedger(rs.Client(t)).CheckDataKey(context.Background(), producers.KeyID()); err != nil {
		t.Fatal(err)
	}
	start := func(key string) (<-chan error, *syncBuffer, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		var stdout, stderr syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"-admin-addr", "127.0.0.1:0", "-shutdown-timeout", "2s"},
				envFunc(map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_DATA_KEY": key}), &stdout, &stderr)
		}()
		return done, &stderr, cancel
	}
	for _, key := range []string{"", "V1dXV1dXV1dXV1dXV1dXV1dXV1dXV1dXV1dXV1dXV1c="} { // none, another
		done, logs, cancel := start(key)
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "ORDERWORKER_DATA_KEY") || !strings.Contains(err.Error(), producers.KeyID()) {
				t.Errorf("worker with data key %q returned %v, want a refusal naming the variable and the ledger's key id", key, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("worker with data key %q still running; logs:\n%s", key, logs)
		}
		cancel()
	}
	done, logs, cancel := start("V1dXV1dXV1dXV1dXV1dXV1dXV1dXV1dXV1dXV1dXV1c=")
	defer cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "ORDERWORKER_DATA_KEY") || !strings.Contains(err.Error(), producers.KeyID()) {
			t.Fatalf("worker with another key returned %v, want a refusal naming the variable and the ledger's key id", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("worker with another data key still running; logs:\n%s", logs)
	}
	done, logs, cancel = start("UFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFA=")
	select {
	case err := <-done:
		t.Fatalf("worker with the producers' key stopped: %v\n%s", err, logs)
	case <-time.After(2 * time.Second):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("worker with the producers' key: %v", err)
	}
}

// Turning sealing on while workers without a key run: the first worker
// started with the key records it and waits for them to stop before it
// takes an order (their lookups would not count the rivals it marks under
// its keyed hash); a running worker without the key stops once it sees
// the key recorded, saying why.
func TestKeylessWorkerStopsWhenTheLedgerGetsAKey(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	start := func(key string) (<-chan error, *syncBuffer, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		var logs syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"-admin-addr", "127.0.0.1:0", "-shutdown-timeout", "2s"},
				envFunc(map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_DATA_KEY": key}), &syncBuffer{}, &logs)
		}()
		return done, &logs, cancel
	}
	keyless, keylessLogs, cancelKeyless := start("")
	defer cancelKeyless()
	waitStarted(t, keylessLogs)
	const key = "UFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFA="
	keyed, keyedLogs, cancelKeyed := start(key)
	defer cancelKeyed()
	began := time.Now()
	select {
	case err := <-keyless:
		if err == nil || !strings.Contains(err.Error(), "ORDERWORKER_DATA_KEY") || !strings.Contains(err.Error(), "stopping") {
			t.Errorf("the worker without a key stopped with %v; want an error naming ORDERWORKER_DATA_KEY", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the worker without a key still runs 30s after a key was recorded; logs:\n%s", keylessLogs)
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(keyedLogs.String(), "worker started") {
		if time.Now().After(deadline) {
			t.Fatalf("the worker with the key did not start; logs:\n%s", keyedLogs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if waited := time.Since(began); waited < dataKeyWatch+2*time.Second || !strings.Contains(keyedLogs.String(), "waiting for them to stop") {
		t.Errorf("the worker with the key started after %s (want at least the watch and the others' drain), logs:\n%s", waited, keyedLogs)
	}
	select {
	case err := <-keyed:
		t.Fatalf("the worker with the key stopped: %v", err)
	default:
	}
}

// The worker logs which Redis it uses, and where that comes from, before
// it waits for it, and each wait names it beside the dial error: a
// mistyped REDIS_URL leaves it on the default, which only the log can
// tell. The password never shows.
func TestWorkerNamesItsRedis(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithCancel(context.Background())
	done, logs := startWorker(t, ctx, "redis://:Pw-Named-9@"+addr+"/0", "127.0.0.1:0")
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), `"waiting for redis"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no wait for redis logged; logs:\n%s", logs)
		}
	}
	cancel()
	// Stopped while it waits: a stop, as once running, not a failure (a
	// black-box run: exit 1, "context canceled").
	if err := <-done; err != nil || !strings.Contains(logs.String(), "worker stopped before taking orders") {
		t.Errorf("stopped while waiting for redis: %v; want no error, the stop logged; logs:\n%s", err, logs)
	}
	var using, waiting map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			switch m["msg"] {
			case "using redis":
				using = m
			case "waiting for redis":
				waiting = m
			}
		}
	}
	shown := "redis://:xxxxx@" + addr + "/0"
	if using["redis"] != shown || using["redis_setting"] != "REDIS_URL" {
		t.Errorf("using redis = %v, want redis %s from REDIS_URL", using, shown)
	}
	if waiting["redis"] != shown || waiting["redis_setting"] != "REDIS_URL" || !strings.Contains(fmt.Sprint(waiting["error"]), "connection refused") {
		t.Errorf("waiting for redis = %v, want it to name %s, REDIS_URL and the dial error", waiting, shown)
	}
	if strings.Contains(logs.String(), "Pw-Named-9") {
		t.Error("the password reached the log")
	}
	// Neither the flag nor the variable: the default, said to be one
	// (parsed only: nothing dials it).
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "redis://127.0.0.1:6379/0 (the default: REDIS_URL is not set)"},
		{[]string{"-redis-url", "redis://:pw@127.0.0.1:1/0"}, map[string]string{"REDIS_URL": "redis://127.0.0.1:2/0"}, "redis://:xxxxx@127.0.0.1:1/0 (-redis-url)"},
	} {
		cfg, err := parseConfig(c.args, envFunc(c.env), io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.redisWhere(); got != c.want {
			t.Errorf("redisWhere = %q, want %q", got, c.want)
		}
	}
}
