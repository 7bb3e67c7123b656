package tasks

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestParseRedisURL(t *testing.T) {
	t.Parallel()
	tls12 := func(name string) *tls.Config { return &tls.Config{ServerName: name, MinVersion: tls.VersionTLS12} }
	for _, c := range []struct {
		url  string
		want asynq.RedisConnOpt
	}{
		{"redis://127.0.0.1:6379/0", asynq.RedisClientOpt{Addr: "127.0.0.1:6379"}},
		{"redis://host", asynq.RedisClientOpt{Addr: "host:6379"}},
		{"redis://host/", asynq.RedisClientOpt{Addr: "host:6379"}},
		{"REDIS://host:1/2", asynq.RedisClientOpt{Addr: "host:1", DB: 2}},
		{"redis://alice:pw@host:6379/3", asynq.RedisClientOpt{Addr: "host:6379", Username: "alice", Password: "pw", DB: 3}},
		{"redis://:pw@host", asynq.RedisClientOpt{Addr: "host:6379", Password: "pw"}},
		{"redis://alice@host", asynq.RedisClientOpt{Addr: "host:6379", Username: "alice"}},
		{"redis://al%40ice:p%40ss%2Fw%3Ard%23%3F@host:6380/1", asynq.RedisClientOpt{Addr: "host:6380", Username: "al@ice", Password: "p@ss/w:rd#?", DB: 1}},
		{"redis://u:a+b:c@host", asynq.RedisClientOpt{Addr: "host:6379", Username: "u", Password: "a+b:c"}},
		{"redis://[::1]:7000/4", asynq.RedisClientOpt{Addr: "[::1]:7000", DB: 4}},
		{"redis://[::1]", asynq.RedisClientOpt{Addr: "[::1]:6379"}},
		{"rediss://alice:pw@redis.example.com:6380/2", asynq.RedisClientOpt{Addr: "redis.example.com:6380", Username: "alice", Password: "pw", DB: 2, TLSConfig: tls12("redis.example.com")}},
		{"rediss://[::1]:6380", asynq.RedisClientOpt{Addr: "[::1]:6380", TLSConfig: tls12("::1")}},
		{"redis-socket://alice:pw@/run/redis/redis.sock?db=4", asynq.RedisClientOpt{Network: "unix", Addr: "/run/redis/redis.sock", Username: "alice", Password: "pw", DB: 4}},
		{"redis-socket:///tmp/redis.sock", asynq.RedisClientOpt{Network: "unix", Addr: "/tmp/redis.sock"}},
		{"redis-sentinel://:spw@s1:26379,s2,s3:26381/2?master=mymaster&username=alice&password=mpw",
			asynq.RedisFailoverClientOpt{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379", "s3:26381"},
				SentinelPassword: "spw", Username: "alice", Password: "mpw", DB: 2}},
		{"redis-sentinel://suser:spw@s1?master=m",
			asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"s1:26379"}, SentinelUsername: "suser", SentinelPassword: "spw"}},
		{"redis-sentinel://s1:1,s2:2/?password=p%26w%3D+x&master=m",
			asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"s1:1", "s2:2"}, Password: "p&w=+x"}},
		{"rediss-sentinel://s1,[::1]:2?master=m",
			asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"s1:26379", "[::1]:2"}, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}},
		{"redis-cluster://alice:pw@n1:7000,n2:7001",
			ClusterOpt{asynq.RedisClusterClientOpt{Addrs: []string{"n1:7000", "n2:7001"}, Username: "alice", Password: "pw"}}},
		{"redis-cluster://n1/0", ClusterOpt{asynq.RedisClusterClientOpt{Addrs: []string{"n1:6379"}}}},
		{"rediss-cluster://:pw@n1:7000,[::1]:7001",
			ClusterOpt{asynq.RedisClusterClientOpt{Addrs: []string{"n1:7000", "[::1]:7001"}, Password: "pw", TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}}},
	} {
		got, err := ParseRedisURL(c.url)
		if err != nil {
			t.Errorf("ParseRedisURL(%q): %v", c.url, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseRedisURL(%q)\n got %#v\nwant %#v", c.url, got, c.want)
		}
	}
}

func TestParseRedisURLErrors(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3tPW"
	for _, c := range []struct{ url, want string }{
		{"", "want scheme://"},
		{"127.0.0.1:6379", "want scheme://"},
		{"http://u:" + secret + "@h", `unknown scheme "http"`},
		{"redis://u:" + secret + "@", "no host"},
		{"redis://u:" + secret + "@h:port/0", `bad port in (not shown`},
		{"redis://:" + secret, `bad host in (not shown`},
		{"redis://u:" + secret + ":6379/0", `bad address (not shown`},
		{"redis://u:s3c?r3tPW@h:6379/0", `"/" and "?" in a user name or password must be percent-encoded`},
		{"redis://:s3c?r3tPW@h:6379/0", `"/" and "?" in a user name or password must be percent-encoded`},
		{"redis://u:" + secret + "@h:0/0", `bad port in "h:0"`},
		{"redis://u:" + secret + "@h:65536", `bad port`},
		{"redis://u:" + secret + "@::1:6379/0", "IPv6 address in brackets"},
		{"redis://u:" + secret + "@[::1/0", "no closing bracket"},
		{"redis://u:" + secret + "@[::1]x/0", "want [v6]:port"},
		{"redis://u:" + secret + "@h1,h2/0", "takes one host"},
		{"redis://u:" + secret + "@h/abc", `database "abc"`},
		{"redis://u:" + secret + "@h/-1", `database "-1"`},
		{"redis://u:" + secret + "@h/0/1", "database number only"},
		{"redis://u:" + secret + "@h/0?db=1", `takes no query parameters, got "db"`},
		{"rediss://u:" + secret + "@h/0?insecure=true", `takes no query parameters, got "insecure"`},
		{"redis://u:s3c/r3tPW@h/0", `"/" and "?" in a user name or password must be percent-encoded`},
		{"redis://u:s3c#r3tPW@h", `"#" must be percent-encoded`},
		{"redis://u:s3c%zzr3tPW@h", "bad percent-encoding in the password"},
		{"redis-socket://u:" + secret + "@host/x.sock", "takes a path, not a host"},
		{"redis-socket://u:" + secret + "@", "needs the socket's path"},
		{"redis-socket://u:" + secret + "@/x.sock?db=x", `database "x"`},
		{"redis-socket://u:" + secret + "@/x.sock?master=m", `unknown query parameter "master" (want db)`},
		{"redis-sentinel://:" + secret + "@h1,h2", "needs the master's name: ?master=NAME"},
		{"redis-sentinel://h1?master=m&password=" + secret + "&passwrd=" + secret, `unknown query parameter "passwrd"`},
		{"redis-sentinel://h1?master=m&password=" + secret + "&password=" + secret, `"password" given twice`},
		{"redis-sentinel://h1?master=m&password=%zz" + secret, `bad percent-encoding in query parameter "password"`},
		{"redis-sentinel://h1,,h2?master=m&password=" + secret, `bad host in ""`},
		{"redis-cluster://u:" + secret + "@h1,h2/1", "database 0 only"},
		{"redis-cluster://u:" + secret + "@h1?password=" + secret, "takes no query parameters"},
	} {
		_, err := ParseRedisURL(c.url)
		if err == nil {
			t.Errorf("ParseRedisURL(%q) = nil error, want %q", c.url, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseRedisURL(%q) = %q, want it to say %q", c.url, err, c.want)
		}
		for _, part := range []string{secret, "s3c", "r3tPW"} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("ParseRedisURL(%q) error %q shows the password", c.url, err)
			}
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ url, want string }{
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://alice:pw@h:6379/0", "redis://alice:xxxxx@h:6379/0"},
		{"redis://:pw@h", "redis://:xxxxx@h"},
		{"redis://S3cretPw@h:6379/0", "redis://xxxxx@h:6379/0"}, // a password without its colon
		{"redis://alice@h", "redis://xxxxx@h"},
		{"rediss://al%40ice:p%40w@h/1", "rediss://al@ice:xxxxx@h/1"},
		{"redis-socket://:pw@/run/redis.sock?db=1", "redis-socket://:xxxxx@/run/redis.sock?db=1"},
		{"redis-sentinel://:spw@a:1,b:2/0?master=m&password=mpw&username=alice&pasword=typo",
			"redis-sentinel://:xxxxx@a:1,b:2/0?master=m&password=xxxxx&username=alice&pasword=xxxxx"},
		{"redis-cluster://u:pw@a:1,[::1]:2", "redis-cluster://u:xxxxx@a:1,[::1]:2"},
		{"redis://u:p#w@h", "(unparsable)"},
		{"redis://u:p/w@h", "(unparsable)"},
		{"no scheme", "(unparsable)"},
	} {
		if got := RedactURL(c.url); got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.url, got, c.want)
		}
	}
}

// FuzzParseRedisURL: whatever the rest of the URL, neither ParseRedisURL's
// error nor RedactURL shows the password, in the user info or in the
// sentinel's password parameter.
func FuzzParseRedisURL(f *testing.F) {
	f.Add("alice", "pw", "host:6379/0", false)
	f.Add("", "p@ss", "h1,h2/1?x=y", true)
	f.Add("u", "", "[::1]:1/", false)
	f.Add("u", "a:b", "h:notaport", true)
	f.Add("u", "x", "h@i/0", false)
	f.Fuzz(func(t *testing.T, user, pass, rest string, sentinel bool) {
		const marker = "SECRET"
		if strings.Contains(strings.ToUpper(rest+user), marker) {
			return
		}
		pw := marker + pass + marker
		var raw string
		if sentinel {
			raw = "redis-sentinel://" + rest + "&password=" + url.QueryEscape(pw)
		} else {
			raw = "redis://" + url.UserPassword(user, pw).String() + "@" + rest
		}
		_, err := ParseRedisURL(raw)
		if err != nil && strings.Contains(strings.ToUpper(err.Error()), marker) {
			t.Errorf("ParseRedisURL(%q) error shows the password: %v", raw, err)
		}
		if r := RedactURL(raw); strings.Contains(strings.ToUpper(r), marker) {
			t.Errorf("RedactURL(%q) = %q shows the password", raw, r)
		}
	})
}

// fakeRedis is a RESP server that answers every PING with reply (a RESP
// error line, or "" to never answer) and the handshake as a Redis 5 would.
func fakeRedis(t *testing.T, reply string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go serveFake(conn, reply)
		}
	}()
	return l.Addr().String()
}

func serveFake(conn net.Conn, reply string) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		args, err := readCommand(r)
		if err != nil {
			// As Redis does, for example to a TLS handshake.
			_, _ = io.WriteString(conn, "-ERR Protocol error: invalid multibulk length\r\n")
			return
		}
		var out string
		switch strings.ToUpper(args[0]) {
		case "HELLO":
			out = "-ERR unknown command 'HELLO'\r\n"
		case "PING":
			if reply == "" {
				continue
			}
			out = reply + "\r\n"
		default:
			out = "+OK\r\n"
		}
		if _, err := io.WriteString(conn, out); err != nil {
			return
		}
	}
}

func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad command header %q", line)
	}
	args := make([]string, n)
	for i := range args {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

// PermanentRedisError, through the real client: error replies from a fake
// server, network failures and TLS failures. The replies from real servers
// (WRONGPASS, NOAUTH, DB out of range, NOPERM, unknown master) are in
// redisurl_integration_test.go.
func TestPermanentRedisError(t *testing.T) {
	t.Parallel()
	// Port 1 (tcpmux), where nothing listens: a free port closed again
	// could be taken meanwhile by a redis-server another test starts.
	closed := "127.0.0.1:1"
	tlsSrv := httptest.NewTLSServer(nil) // a certificate no system root trusts
	t.Cleanup(tlsSrv.Close)
	for _, c := range []struct {
		name, url string
		want      bool
	}{
		{"WRONGPASS", "redis://" + fakeRedis(t, "-WRONGPASS invalid username-password pair or user is disabled."), true},
		{"NOAUTH", "redis://" + fakeRedis(t, "-NOAUTH Authentication required."), true},
		{"NOPERM", "redis://" + fakeRedis(t, "-NOPERM User orders has no permissions to run the 'ping' command"), true},
		{"DB out of range", "redis://" + fakeRedis(t, "-ERR DB index is out of range"), true},
		{"AUTH without a password configured", "redis://" + fakeRedis(t, "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"), true},
		{"SELECT on a cluster", "redis://" + fakeRedis(t, "-ERR SELECT is not allowed in cluster mode"), true},
		{"LOADING", "redis://" + fakeRedis(t, "-LOADING Redis is loading the dataset in memory"), false},
		{"MASTERDOWN", "redis://" + fakeRedis(t, "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), false},
		{"max clients", "redis://" + fakeRedis(t, "-ERR max number of clients reached"), false},
		{"BUSY", "redis://" + fakeRedis(t, "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT."), false},
		{"MISCONF", "redis://" + fakeRedis(t, "-MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk."), false},
		{"no answer (timeout)", "redis://" + fakeRedis(t, ""), false},
		{"connection refused", "redis://" + closed, false},
		{"untrusted certificate", "rediss://" + strings.TrimPrefix(tlsSrv.URL, "https://"), true},
		{"TLS to a plain server", "rediss://" + fakeRedis(t, "+PONG"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opt, err := ParseRedisURL(c.url)
			if err != nil {
				t.Fatal(err)
			}
			rdb := opt.MakeRedisClient().(redis.UniversalClient)
			defer rdb.Close()
			// The worker's own ping timeout: long enough for go-redis's
			// dial retries to end with the dial's error.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err = rdb.Ping(ctx).Err()
			if err == nil {
				t.Fatal("PING succeeded")
			}
			if got := PermanentRedisError(err); got != c.want {
				t.Errorf("PermanentRedisError(%v) = %v, want %v", err, got, c.want)
			}
		})
	}
	for _, err := range []error{nil, context.Canceled, context.DeadlineExceeded, io.EOF, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")} {
		if PermanentRedisError(err) {
			t.Errorf("PermanentRedisError(%v) = true, want false", err)
		}
	}
}

// An "@" in a query value is no password cut short.
func TestParseRedisURLAtInQuery(t *testing.T) {
	t.Parallel()
	got, err := ParseRedisURL("redis-sentinel://s1:26379?master=m&password=p@ss")
	if err != nil {
		t.Fatalf("ParseRedisURL with an @ in the password: %v", err)
	}
	if fo, ok := got.(asynq.RedisFailoverClientOpt); !ok || fo.Password != "p@ss" {
		t.Errorf("ParseRedisURL = %#v, want the password p@ss", got)
	}
}

// Only a dial error whose every sentinel answered nil is an unknown master:
// one with a sentinel unreachable stays go-redis's error.
func TestEverySentinelNil(t *testing.T) {
	all := fmt.Errorf("redis: all sentinels specified in configuration are unreachable: %w", errors.Join(redis.Nil, redis.Nil))
	mixed := fmt.Errorf("redis: all sentinels specified in configuration are unreachable: %w", errors.Join(redis.Nil, errors.New("dial tcp 127.0.0.1:26380: connect: connection refused")))
	if !everySentinelNil(all) {
		t.Errorf("everySentinelNil(%v) = false, want true", all)
	}
	if everySentinelNil(mixed) {
		t.Errorf("everySentinelNil(%v) = true, want false", mixed)
	}
	if everySentinelNil(errors.New("dial tcp: connection refused")) {
		t.Error("everySentinelNil(a refused dial) = true, want false")
	}
	// Through the dial hook: all nil is an unknown master; some nil and
	// some unreachable keeps go-redis's text, but without redis.Nil
	// inside, which every reader would take for "no such key" (an order
	// absent, a ledger without its shard count).
	dial := func(err error) error {
		_, got := unknownMasterHook{name: "m"}.DialHook(func(context.Context, string, string) (net.Conn, error) { return nil, err })(context.Background(), "tcp", "x")
		return got
	}
	var um *UnknownMasterError
	if got := dial(all); !errors.As(got, &um) || errors.Is(got, redis.Nil) {
		t.Errorf("dial hook(%v) = %v; want an UnknownMasterError, not redis.Nil", all, got)
	}
	if got := dial(mixed); got == nil || errors.Is(got, redis.Nil) || errors.As(got, &um) || got.Error() != mixed.Error() {
		t.Errorf("dial hook(%v) = %v; want the same text, not redis.Nil, not an unknown master", mixed, got)
	}
	// The unreachable sentinel's network error is still inside: a
	// transient failure, waited out at start.
	var opErr *net.OpError
	netMixed := fmt.Errorf("redis: all sentinels specified in configuration are unreachable: %w", errors.Join(redis.Nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}))
	if got := dial(netMixed); errors.Is(got, redis.Nil) || !errors.As(got, &opErr) {
		t.Errorf("dial hook(%v) = %v; want its network error kept, redis.Nil dropped", netMixed, got)
	}
	refused := errors.New("dial tcp: connection refused")
	if got := dial(refused); got != refused {
		t.Errorf("dial hook(%v) = %v; want it unchanged", refused, got)
	}
}
