package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/logmask"
	"github.com/orderworker/orderworker/tasks/api"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// nowhere is a Redis URL nothing answers at: a command that needs no Redis
// must not wait for it.
const nowhere = "redis://127.0.0.1:1/0"

// Every -h prints its command's usage and exits 0, before anything asks
// Redis.
func TestEveryHelpExitsZero(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-h"}, {"status", "-h"}, {"status", "tencent", "O1", "-h"}, {"serve", "-h"}, {"webhooks", "-h"},
		{"webhooks", "failed", "-h"}, {"webhooks", "resend", "-h"}, {"list", "-h"}, {"resolve", "-h"}, {"redrive", "-h"},
		{"status", "--help"},
	} {
		start := time.Now()
		code, out, errs := runCLI(t, nowhere, "", args...)
		took := time.Since(start)
		if args[0] != "-h" && args[0] != "serve" { // enqueue -dev serve is refused as such
			// -dev does not look for its Redis first either.
			if code, out, _ := runCLI(t, nowhere, "", append([]string{"-dev"}, args...)...); code != exitOK || !strings.Contains(out, "Usage") {
				t.Errorf("enqueue -dev %v: exit %d, stdout %q; want 0 and the usage", args, code, out)
			}
		}
		// Asked for, help goes to standard output (enqueue -h | grep).
		if code != exitOK || errs != "" || !strings.Contains(out, "Usage") {
			t.Errorf("enqueue %v: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout", args, code, out, errs)
		}
		if strings.Contains(out+errs, "help requested") {
			t.Errorf("enqueue %v: stderr %q shows the flag package's error", args, errs)
		}
		if took > 500*time.Millisecond {
			t.Errorf("enqueue %v took %s: it waited for Redis", args, took)
		}
	}
	// A wrong number of arguments is still a usage error.
	if code, _, errs := runCLI(t, nowhere, "", "status", "tencent"); code != exitError || !strings.Contains(errs, "usage: enqueue [flags] status PROVIDER ORDER_NO") {
		t.Errorf("enqueue status tencent: exit %d, stderr %q; want %d and the usage", code, errs, exitError)
	}
}

// A FILE that does not exist and is close to a subcommand's name was most
// likely meant for it: the error says so (and nothing asks Redis).
func TestMistypedSubcommandIsNamed(t *testing.T) {
	t.Parallel()
	for args, want := range map[string]string{
		"stauts":           "subcommand status?",
		"stauts tencent O": "subcommand status?",
		"lsit":             "subcommand list?",
		"redirve":          "subcommand redrive?",
		"webhook":          "subcommand webhooks?",
		"Serve":            "subcommand serve?",
		"orders.jsonl":     "",
		"stats.jsonl":      "",
		"elsewhere":        "",
	} {
		code, out, errs := runCLI(t, nowhere, "", strings.Fields(args)...)
		first := strings.Fields(args)[0]
		if code != exitError || out != "" || !strings.Contains(errs, "open "+first+": no such file or directory") {
			t.Errorf("enqueue %s: exit %d, stdout %q, stderr %q; want %d naming the missing file", args, code, out, errs, exitError)
		}
		if hint := strings.Contains(errs, "did you mean"); want == "" && hint || want != "" && !strings.Contains(errs, "(did you mean the "+want+")") {
			t.Errorf("enqueue %s: stderr %q; want the hint %q", args, errs, want)
		}
	}
}

// An error about a setting names where its value came from: the flag when
// the command line gave it, else the variable.
func TestServeErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	base := map[string]string{"REDIS_URL": nowhere, "ORDERWORKER_API_TOKENS": "t"}
	for _, c := range []struct {
		env      map[string]string
		args     []string
		want     string
		dontWant string
	}{
		{map[string]string{"ORDERWORKER_API_ADDR": "garbage"}, nil, `ORDERWORKER_API_ADDR="garbage"`, "-addr"},
		{nil, []string{"-addr", "garbage"}, `-addr "garbage"`, "ORDERWORKER_API_ADDR"},
		{map[string]string{"ORDERWORKER_API_ADDR": busy.Addr().String()}, nil, `ORDERWORKER_API_ADDR="` + busy.Addr().String() + `": listen tcp`, "-addr"},
		{map[string]string{"ORDERWORKER_LOG_FORMAT": "xml"}, nil, `ORDERWORKER_LOG_FORMAT="xml"`, "-log-format"},
		{map[string]string{"ORDERWORKER_LOG_FORMAT": "json"}, []string{"-log-format", "xml"}, `-log-format "xml"`, "ORDERWORKER_LOG_FORMAT"},
		{map[string]string{"ORDERWORKER_LOG_LEVEL": "loud"}, nil, `ORDERWORKER_LOG_LEVEL="loud"`, "-log-level"},
		{nil, []string{"-log-level", "loud"}, `-log-level "loud"`, "ORDERWORKER_LOG_LEVEL"},
	} {
		env := map[string]string{}
		for _, m := range []map[string]string{base, c.env} {
			for k, v := range m {
				env[k] = v
			}
		}
		code, _, errs := runCLIEnv(t, env, "", append([]string{"serve"}, c.args...)...)
		if code != exitError || !strings.Contains(errs, c.want) || strings.Contains(errs, c.dontWant) {
			t.Errorf("serve %v with %v: exit %d, stderr %q; want %d naming %s, not %s", c.args, c.env, code, errs, exitError, c.want, c.dontWant)
		}
	}
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"REDIS_URL": "garbage"}, []string{"status", "tencent", "O1"}, "enqueue: REDIS_URL: "},
		{map[string]string{"REDIS_URL": nowhere}, []string{"-redis-url", "garbage", "list"}, "enqueue: -redis-url: "},
	} {
		if code, _, errs := runCLIEnv(t, c.env, "", c.args...); code != exitError || !strings.HasPrefix(errs, c.want) {
			t.Errorf("enqueue %v with %v: exit %d, stderr %q; want %d starting %q", c.args, c.env, code, errs, exitError, c.want)
		}
	}
}

// A Redis that refuses this process's credentials (WRONGPASS, NOAUTH)
// refuses it before any order is sent: enqueue says that nothing was read
// or sent, prints no order line, and exits 2; it never says that the order
// may have been accepted.
func TestAuthFailureSaysNothingWasSent(t *testing.T) {
	t.Parallel()
	acl := taskstest.StartACLRedis(t)
	wrong := "redis://" + url.UserPassword(acl.Username, taskstest.Password(t)).String() + "@" + acl.Addr + "/0"
	for name, c := range map[string]struct{ url, reason string }{
		"wrong password": {wrong, "WRONGPASS"},
		"no password":    {"redis://" + acl.Addr + "/0", "NOAUTH"},
	} {
		for _, args := range [][]string{
			{"-timeout", "5s"}, // stdin
			{"-timeout", "5s", "-provider", "tencent", "-order-no", "A1", "-params", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`},
		} {
			code, out, errs := runCLI(t, c.url, good+"\n", args...)
			if code != exitError || out != "" || !strings.Contains(errs, "cannot use Redis (REDIS_URL): "+c.reason) ||
				!strings.Contains(errs, "nothing was read or sent") || strings.Contains(errs, "may or may not") {
				t.Errorf("%s, enqueue %v: exit %d, stdout %q, stderr %q; want %d, no order line, %s and nothing sent", name, args, code, out, errs, exitError, c.reason)
			}
		}
	}
	if n, err := acl.Client(t).DBSize(context.Background()).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE after the refused runs = %d, %v; want 0", n, err)
	}
}

// go-redis's own log lines ("redis: connection pool: failed to dial after
// 5 attempts") never reach the CLI's stderr, where enqueue reports the
// error itself; enqueue serve, once its log is set up, logs them there.
// Not parallel: it sets go-redis's logger for the process, as main does.
func TestGoRedisLogsOnlyInServe(t *testing.T) {
	redis.SetLogger(redisLogger{})
	var captured bytes.Buffer
	logmask.SetRedisLogger(slog.New(slog.NewJSONHandler(&captured, nil)))
	was := redisLogOn.Swap(false)
	defer func() { logmask.SetRedisLogger(nil); redisLogOn.Store(was) }()

	code, _, errs := runCLI(t, nowhere, good+"\n", "-timeout", "3s")
	if code != exitError {
		t.Fatalf("enqueue to an unreachable Redis: exit %d, stderr %q", code, errs)
	}
	if strings.Contains(errs, "connection pool") || captured.Len() > 0 {
		t.Errorf("go-redis's own lines were written: stderr %q, log %q", errs, captured.String())
	}
	logRedis(slog.New(slog.NewJSONHandler(&captured, nil)))
	redisLogger{}.Printf(context.Background(), "connection pool: failed to dial after %d attempts: %s", 5, "refused")
	var rec map[string]any
	if err := json.Unmarshal(captured.Bytes(), &rec); err != nil || rec["from"] != "go-redis" || rec["level"] != "WARN" {
		t.Errorf("after logRedis, go-redis's line logged as %q (%v); want a warning from go-redis", captured.String(), err)
	}
}

// enqueue webhooks with no endpoint prints nothing on stdout and says why
// on stderr.
func TestWebhooksWithoutEndpointsSaysSo(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	code, out, errs := runCLI(t, rs.URL(), "", "webhooks")
	if code != exitOK || out != "" || !strings.Contains(errs, "no webhook endpoints") {
		t.Errorf("enqueue webhooks with none: exit %d, stdout %q, stderr %q; want 0, nothing on stdout, a line on stderr", code, out, errs)
	}
}

// The OpenAPI document's Record schema names every field the API returns:
// every JSON field of ledger.Record, and of its history's entries every
// one but by (which the API leaves out).
func TestOpenAPIRecordListsEveryField(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for schema, typ := range map[string]reflect.Type{"Record": reflect.TypeFor[ledger.Record](), "Attempt": reflect.TypeFor[ledger.Attempt]()} {
		var fields []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.IsExported() && name != "-" && name != "" && !(schema == "Attempt" && name == "by") {
				fields = append(fields, name)
			}
		}
		props := doc.Components.Schemas[schema].Properties
		for _, name := range fields {
			if _, ok := props[name]; !ok {
				t.Errorf("openapi.json: %s lacks %s", schema, name)
			}
		}
		for name := range props {
			if !slices.Contains(fields, name) {
				t.Errorf("openapi.json: %s has %s, which %s does not return", schema, name, typ)
			}
		}
	}
}

// enqueue -dev never asks REDIS_URL's Redis: a command that only looks
// like a help request ("-h" as a flag's value) does not skip -dev's checks.
func TestDevHelpLookalikeNeverUsesREDIS_URL(t *testing.T) {
	t.Parallel()
	real := miniredis.RunT(t) // stands in for the Redis REDIS_URL names
	code, out, errs := runCLI(t, "redis://"+real.Addr()+"/0", "", "-dev", "-timeout", "2s", "webhooks", "-endpoint", "-h")
	if n := real.CommandCount(); n > 0 {
		t.Errorf("enqueue -dev webhooks -endpoint -h: exit %d, stdout %q, stderr %q; sent %d commands to REDIS_URL's Redis, which -dev never uses", code, out, errs, n)
	}
}

// A producer whose user may run everything enqueue sends but PING (the
// check before the first order asks PING) still enqueues: only a refusal
// of its credentials ends the run before it.
func TestProducerWithoutPingStillEnqueues(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	c := rs.Client(t)
	if err := c.Do(context.Background(), "ACL", "SETUSER", "producer", "on", ">pw", "~*", "&*", "+@all", "-ping").Err(); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("producer", "pw")
	code, out, errs := runCLI(t, u.String(), good+"\n")
	if code != exitOK || !strings.Contains(out, `"enqueued"`) {
		t.Errorf("enqueue as a user without PING: exit %d, stdout %q, stderr %q; want the order enqueued", code, out, errs)
	}
}

// -h shows REDIS_URL as the -redis-url default with its password hidden.
func TestHelpHidesTheRedisPassword(t *testing.T) {
	t.Parallel()
	code, out, errs := runCLI(t, "redis://:Pw-In-Help-7@127.0.0.1:1/0", "", "-h")
	if code != exitOK || strings.Contains(out+errs, "Pw-In-Help-7") || !strings.Contains(out, "redis://:xxxxx@127.0.0.1:1/0") {
		t.Errorf("enqueue -h: exit %d, stdout %q; want the URL with its password hidden", code, out)
	}
}

// A mistyped webhooks subcommand is named, and a -limit below 1 refused,
// before Redis is asked anything.
func TestWebhooksRefusesWhatItCannotRun(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"webhooks", "bogus"}, `enqueue webhooks: unknown subcommand "bogus"`},
		{[]string{"webhooks", "failed", "-limit", "-1"}, "enqueue webhooks failed: -limit -1: want a positive number"},
		{[]string{"webhooks", "failed", "-limit", "0"}, "-limit 0"},
	} {
		start := time.Now()
		code, out, errs := runCLI(t, nowhere, "", c.args...)
		if code != exitError || out != "" || !strings.Contains(errs, c.want) {
			t.Errorf("enqueue %v: exit %d, stdout %q, stderr %q; want %d saying %q", c.args, code, out, errs, exitError, c.want)
		}
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("enqueue %v took %s: it waited for Redis", c.args, took)
		}
	}
}

// enqueue -h lists every variable enqueue reads (each getenv of its
// source, and the providers' create overrun, which the registry names),
// with its default: the README's and the worker's help's are no help to
// one who runs only enqueue.
func TestHelpListsTheEnvironment(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(t, nowhere, "", "-h")
	_, env, ok := strings.Cut(out, "\nEnvironment (flags override it):\n")
	if code != exitOK || !ok {
		t.Fatalf("enqueue -h: exit %d, no Environment section:\n%s", code, out)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(env, "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			listed[f[0]] = true
		}
	}
	files, _ := filepath.Glob("*.go")
	read := []string{"UNICLOUD_CREATE_OVERRUN"}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`getenv\("([A-Z_]+)"\)`).FindAllStringSubmatch(string(src), -1) {
			if m[1] != "USER" { // resolve's and redrive's -by default, no setting
				read = append(read, m[1])
			}
		}
	}
	if len(read) < 10 {
		t.Fatalf("found only %v read", read)
	}
	for _, name := range append(read, "ORDERWORKER_API_ADDR") {
		if !listed[name] {
			t.Errorf("enqueue -h does not list %s", name)
		}
	}
	if !strings.Contains(env, "ORDERWORKER_LOG_FORMAT           json or text (default text)") {
		t.Errorf("enqueue -h: want serve's default log format, text:\n%s", env)
	}
}
