package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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

// unmaskedPhone finds a mainland mobile number in clear (optionally +86
// prefixed) that is not part of a longer run of digits.
var unmaskedPhone = regexp.MustCompile(`(?:^|\D)((?:\+?86)?1[3-9]\d{9})(?:\D|$)`)

// dashboardTask is one task put in the orders queue: its ID, a string of
// its payload (or of its placeholder) that identifies it on a page, the
// phone numbers and other personal data its order holds, and what the
// dashboard must show instead (masked forms, or the sealed params).
type dashboardTask struct {
	id     string
	marker string
	phones []string
	shows  []string
}

// TestDashboardInChromium loads the embedded asynqmon dashboard in a
// headless Chromium with orders waiting in Redis, and checks that the
// queue and its pending tasks are shown with every phone number masked.
func TestDashboardInChromium(t *testing.T) {
	t.Parallel()

	t.Run("pages", func(t *testing.T) {
		t.Parallel()
		bin, err := exec.LookPath("chromium")
		if err != nil {
			t.Fatal("chromium not found on PATH: install Debian's chromium package (apt-get install chromium; .ci/run does)")
		}
		rs := taskstest.StartRedis(t, nil)
		dataKey := newDataKey(t)
		queued := fillOrdersQueue(t, rs, dataKey)
		base := startDashboardWorker(t, map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_DATA_KEY": dataKey})
		mon := base + "/monitoring"

		// The JSON the pages are built from.
		api := get(t, mon+"/api/queues/orders/pending_tasks?page=1&page_size=20")
		var pending struct {
			Tasks []struct {
				ID      string `json:"id"`
				Payload string `json:"payload"`
			} `json:"tasks"`
			Stats struct {
				Pending int `json:"pending"`
			} `json:"stats"`
		}
		if err := json.Unmarshal([]byte(api), &pending); err != nil {
			t.Fatalf("pending_tasks API: %v\n%s", err, api)
		}
		var payloads []string
		ids := map[string]bool{}
		for _, task := range pending.Tasks {
			payloads = append(payloads, task.Payload)
			ids[task.ID] = true
		}
		checkMasked(t, "pending_tasks API", api, strings.Join(payloads, "\n"), queued)
		for _, q := range queued {
			if !ids[q.id] {
				t.Errorf("pending_tasks API does not list task %s", q.id)
			}
		}
		if len(pending.Tasks) != len(queued) || pending.Stats.Pending != len(queued) {
			t.Errorf("pending_tasks API lists %d tasks, stats.pending %d; want %d", len(pending.Tasks), pending.Stats.Pending, len(queued))
		}
		for _, q := range []string{"/api/queues", "/api/queues/orders", "/api/queue_stats", "/api/servers"} {
			checkNoPhone(t, q+" API", get(t, mon+q))
		}
		detail := queued[3]
		api = get(t, mon+"/api/queues/orders/tasks/"+detail.id)
		var info struct {
			ID      string `json:"id"`
			Payload string `json:"payload"`
		}
		if err := json.Unmarshal([]byte(api), &info); err != nil || info.ID != detail.id {
			t.Fatalf("task API: %v\n%s", err, api)
		}
		checkMasked(t, "task API", api, info.Payload, []dashboardTask{detail})

		b := &browser{t: t, bin: bin}

		// The queue list.
		dom, text := b.dumpDOM(mon+"/", `href="/monitoring/queues/orders"`, ">orders<")
		checkMasked(t, "queue list page", dom, text, nil)
		if !regexp.MustCompile(`>orders</a></th><td[^>]*><span[^>]*>run</span></td><td[^>]*>` + fmt.Sprint(len(queued)) + `</td>`).MatchString(dom) {
			t.Errorf("queue list page: no row for queue orders (state run, size %d)\n%s", len(queued), excerpt(dom, ">orders<"))
		}

		// The queue's pending tasks, with their payloads.
		var markers []string
		for _, q := range queued {
			markers = append(markers, q.marker)
		}
		page := mon + "/queues/orders?status=pending"
		dom, text = b.dumpDOM(page, markers...)
		checkMasked(t, "pending tasks page", dom, text, queued)
		if !regexp.MustCompile(`Pending\s*<span[^>]*>` + fmt.Sprint(len(queued)) + `</span>`).MatchString(dom) {
			t.Errorf("pending tasks page: the Pending tab does not count %d tasks\n%s", len(queued), excerpt(dom, "Pending"))
		}
		if n := strings.Count(dom, ">order:submit<"); n != len(queued) {
			t.Errorf("pending tasks page: %d rows of type order:submit, want %d", n, len(queued))
		}

		// One task's detail page.
		dom, text = b.dumpDOM(mon+"/queues/orders/tasks/"+detail.id, detail.id, detail.marker)
		checkMasked(t, "task details page", dom, text, []dashboardTask{detail})

		// What an operator sees.
		dir := os.Getenv("ORDERWORKER_TEST_SCREENSHOT_DIR")
		if dir == "" {
			dir = t.TempDir()
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		shot := filepath.Join(dir, "dashboard-orders-pending.png")
		b.screenshot(page, shot)
		t.Logf("dashboard screenshot: %s", shot)
	})

	t.Run("token", func(t *testing.T) {
		t.Parallel()
		rs := taskstest.StartRedis(t, nil)
		const token = "dashboard-test-token"
		base := startDashboardWorker(t, map[string]string{"REDIS_URL": rs.URL(), "ORDERWORKER_MONITORING_TOKEN": token})
		for _, path := range []string{"/monitoring/", "/monitoring/queues/orders", "/monitoring/api/queues"} {
			url := base + path
			for _, tt := range []struct {
				name string
				auth func(*http.Request)
				want int
			}{
				{"no credentials", func(*http.Request) {}, http.StatusUnauthorized},
				{"wrong bearer token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, http.StatusUnauthorized},
				{"wrong basic-auth password", func(r *http.Request) { r.SetBasicAuth("ops", "nope") }, http.StatusUnauthorized},
				{"bearer token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }, http.StatusOK},
				{"basic auth", func(r *http.Request) { r.SetBasicAuth("ops", token) }, http.StatusOK},
			} {
				req, err := http.NewRequest(http.MethodGet, url, nil)
				if err != nil {
					t.Fatal(err)
				}
				tt.auth(req)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.want {
					t.Errorf("GET %s with %s = %d, want %d", path, tt.name, resp.StatusCode, tt.want)
				}
				if tt.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("GET %s with %s: WWW-Authenticate = %q, want a Basic challenge", path, tt.name, resp.Header.Get("WWW-Authenticate"))
				}
				if tt.want == http.StatusOK && path == "/monitoring/" && !bytes.Contains(body, []byte("<div id=\"root\">")) {
					t.Errorf("GET %s with %s: not the dashboard page:\n%s", path, tt.name, body)
				}
				if bytes.Contains(body, []byte(token)) {
					t.Errorf("GET %s with %s: the response shows the token", path, tt.name)
				}
			}
		}
		// The other admin endpoints stay open.
		waitHTTP(t, base+"/metrics", http.StatusOK)
	})
}

// newDataKey returns a fresh ORDERWORKER_DATA_KEY.
func newDataKey(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(key)
}

// fillOrdersQueue puts tasks carrying phone numbers in the orders queue
// while no worker consumes it, so they stay pending: orders accepted by
// Enqueuers, one without a data key (its params stay in clear) and one
// with dataKey (it seals them, as it must for Aliyun's userName), and
// tasks written directly with an asynq client, as a producer that bypasses
// the Enqueuer would, one of them not even JSON.
func fillOrdersQueue(t *testing.T, rs *taskstest.Server, dataKey string) []dashboardTask {
	t.Helper()
	ctx := context.Background()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: rs.Addr})
	defer client.Close()

	set := providers.NewSet()
	set.Disable(tencent.Name, "test", tencent.Validate)
	set.Disable(unicloud.Name, "test", unicloud.Validate)
	set.Disable(aliyun.Name, "test", aliyun.Validate, aliyun.Spec().Sensitive...)
	sealer, err := tasks.NewSealer(dataKey)
	if err != nil {
		t.Fatal(err)
	}
	ledger := tasks.NewLedger(rs.Client(t))
	clear := tasks.NewEnqueuer(client, ledger, set, nil)
	sealed := tasks.NewEnqueuer(client, ledger, set, &tasks.EnqueuerOptions{Sealer: sealer})

	var out []dashboardTask
	for _, o := range []struct {
		enq     *tasks.Enqueuer
		payload string
		task    dashboardTask
	}{
		{sealed, `{"provider":"aliyun","order_no":"Dash-A1","params":{"iotId":"dev-1","commodityCode":"streamingResource_20_10","copies":1,"userName":"15812348558"}}`,
			dashboardTask{"aliyun:Dash-A1", `"Dash-A1"`, []string{"15812348558"}, []string{`"sealed:v1:`}}},
		{clear, `{"provider":"tencent","order_no":"Dash-T2","params":{"CustomerId":"C2","ItemId":"D-FireInsurance2020","ItemNum":2}}`,
			dashboardTask{"tencent:Dash-T2", `"Dash-T2"`, nil, nil}},
	} {
		res, err := o.enq.Enqueue(ctx, []byte(o.payload))
		if err != nil || res.Status != tasks.Enqueued {
			t.Fatalf("Enqueue %s = %+v, %v", o.task.id, res, err)
		}
		out = append(out, o.task)
	}

	// Tasks a producer wrote by hand, which the Enqueuer would have
	// refused or sealed: the dashboard masks what it can still see.
	for _, d := range []struct {
		payload string
		task    dashboardTask
	}{
		// CustomerId is no declared personal-data param: masked where it
		// looks like a phone number.
		{`{"provider":"tencent","order_no":"Dash-T1","params":{"CustomerId":"13912345678","ItemId":"D-FireInsurance2020","ItemNum":1}}`,
			dashboardTask{"tencent:Dash-T1", `"Dash-T1"`, []string{"13912345678"}, []string{"139****5678"}}},
		{`{"provider":"aliyun","order_no":"Dash-Raw1","params":{"iotId":"dev-2","commodityCode":"streamingResource_20_10","copies":1,"userName":"Wang 13712345678","contact":{"tel":"+8613612345678"},"note":"call 15912345678"}}`,
			dashboardTask{"aliyun:Dash-Raw1", `"Dash-Raw1"`, []string{"13712345678", "Wang", "13612345678", "15912345678"}, []string{`"W****8"`, "861****5678", "159****5678"}}},
		// A name under a personal-data key, but not a string: masked all
		// the same.
		{`{"provider":"aliyun","order_no":"Dash-Raw2","params":{"iotId":"dev-3","commodityCode":"streamingResource_20_10","copies":1,"userName":["Li Si Guang"]}}`,
			dashboardTask{"aliyun:Dash-Raw2", `"Dash-Raw2"`, []string{"Li Si Guang"}, []string{`"***"`}}},
		// Payloads the dashboard cannot read are not shown, only their
		// size: there is no telling which of their bytes are personal.
		{`{"provider":"aliyun","order_no":"Dash-Raw3","params":{"iotId":"dev-4","commodityCode":"streamingResource_20_10","copies":1,"userName":"Wang Xiao Ming"}}` + "\x00",
			dashboardTask{"raw-trailing-nul", "(unreadable payload, 153 bytes)", []string{"Wang Xiao Ming", "Dash-Raw3"}, nil}},
		{`phone=18812345678; not json`,
			dashboardTask{"raw-not-json", "(unreadable payload, 27 bytes)", []string{"18812345678", "not json"}, nil}},
	} {
		_, err := client.EnqueueContext(ctx, asynq.NewTask(tasks.TypeOrderSubmit, []byte(d.payload)), asynq.Queue(tasks.DefaultQueue), asynq.TaskID(d.task.id))
		if err != nil {
			t.Fatalf("enqueue %s: %v", d.task.id, err)
		}
		out = append(out, d.task)
	}
	return out
}

// startDashboardWorker runs the worker in-process on a free admin address,
// consuming a queue nothing is put in, so the orders queue stays as
// fillOrdersQueue left it. It returns the admin base URL once /readyz
// answers and stops the worker when the test ends.
func startDashboardWorker(t *testing.T, env map[string]string) string {
	t.Helper()
	return startReadyWorker(t, env, "-queue", "dashboard-idle")
}

// startReadyWorker runs the worker in-process on a free admin address with
// args added, returns the admin base URL once /readyz answers, and stops
// the worker when the test ends.
func startReadyWorker(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args = append([]string{"-admin-addr", "127.0.0.1:0", "-reconcile-interval", "1h", "-shutdown-timeout", "3s", "-log-format", "text"}, args...)
	go func() { done <- run(ctx, args, envFunc(env), io.Discard, &stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker: %v\nlogs:\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("worker did not stop\nlogs:\n%s", stderr.String())
		}
	})
	base := "http://" + adminAddr(t, &stderr, done)
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case err := <-done:
			t.Fatalf("worker stopped before it was ready: %v\nlogs:\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker not ready after a minute (last: %v)\nlogs:\n%s", err, stderr.String())
		}
	}
}

// browser runs headless Chromium, a fresh profile for every page.
type browser struct {
	t   *testing.T
	bin string
}

// chromiumTimeout bounds one Chromium run; the page itself gets a virtual
// time budget, so this only catches a hung browser.
const chromiumTimeout = 2 * time.Minute

func (b *browser) run(args ...string) []byte {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	// A scratch profile, and a scratch home for what Chromium keeps outside
	// the profile (crash reports).
	scratch := b.t.TempDir()
	profile, home := filepath.Join(scratch, "profile"), filepath.Join(scratch, "home")
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", "--no-proxy-server",
		"--disable-dev-shm-usage", "--user-data-dir=" + profile}, args...)
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if cmd.Process != nil {
		// Helpers Chromium left behind (zygote, utility processes) are in
		// its process group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("no answer in %v", chromiumTimeout)
		}
		b.t.Fatalf("chromium %s: %v\nstderr:\n%s", strings.Join(args, " "), err, tail(stderr.String(), 40))
	}
	b.t.Logf("chromium %s: %v", args[len(args)-1], time.Since(start).Round(time.Millisecond))
	return stdout.Bytes()
}

// dumpDOM loads url and returns its DOM and text once the page shows every
// string in want, in its DOM or its text (asynqmon fetches its data after
// the page loads): it reloads with a longer virtual time budget until then.
func (b *browser) dumpDOM(url string, want ...string) (dom, text string) {
	b.t.Helper()
	var missing []string
	for _, budget := range []int{10_000, 20_000, 40_000} {
		dom = string(b.run(fmt.Sprintf("--virtual-time-budget=%d", budget), "--dump-dom", url))
		text = pageText(dom)
		missing = missing[:0]
		for _, w := range want {
			if !strings.Contains(dom, w) && !strings.Contains(text, w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return dom, text
		}
	}
	b.t.Fatalf("%s never showed %q; its text:\n%s", url, missing, text)
	return "", ""
}

var (
	inlineTag = regexp.MustCompile(`</?span[^>]*>`)
	otherTag  = regexp.MustCompile(`<[^>]*>`)
	styleElem = regexp.MustCompile(`(?s)<style[^>]*>.*?</style>|<svg.*?</svg>`)
)

// pageText is the text a reader sees in dom: the syntax highlighter's spans
// (which split a masked 139****5678 in three) are joined, other elements
// are separated by a newline.
func pageText(dom string) string {
	s := styleElem.ReplaceAllString(dom, "\n")
	s = inlineTag.ReplaceAllString(s, "")
	s = otherTag.ReplaceAllString(s, "\n")
	s = html.UnescapeString(s)
	var lines []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// screenshot saves url as a PNG at path and checks it is one.
func (b *browser) screenshot(url, path string) {
	b.t.Helper()
	_ = os.Remove(path)
	b.run("--virtual-time-budget=10000", "--window-size=1280,900", "--hide-scrollbars", "--screenshot="+path, url)
	png, err := os.ReadFile(path)
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if len(png) < 10_000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		b.t.Fatalf("screenshot %s: %d bytes, not a PNG of a rendered page", path, len(png))
	}
}

// checkMasked fails if raw (a response or a DOM) or text (what a reader
// sees of it) shows a phone number in clear, or if text lacks one of the
// queued tasks or the masked form of one of its phone numbers.
func checkMasked(t *testing.T, what, raw, text string, queued []dashboardTask) {
	t.Helper()
	checkNoPhone(t, what, raw)
	if text != raw {
		checkNoPhone(t, what+" (text)", text)
	}
	// A sealed value's ciphertext may spell a name by chance ("…wDzWangSa…"
	// once): what is looked for in clear is looked for outside it.
	bare := sealedValue.ReplaceAllString(raw+"\n"+text, "sealed:v1:(ciphertext)")
	for _, q := range queued {
		for _, p := range q.phones {
			if strings.Contains(bare, p) {
				t.Errorf("%s shows task %s's phone number %s in clear:\n%s", what, q.id, p, excerpt(bare, p))
			}
		}
		if !strings.Contains(text, q.marker) {
			t.Errorf("%s does not show task %s (%s)", what, q.id, q.marker)
		}
		for _, m := range q.shows {
			if !strings.Contains(text, m) {
				t.Errorf("%s does not show task %s's payload with %s as %s", what, q.id, q.phones, m)
			}
		}
	}
}

// sealedValue is a sealed value as the dashboard shows it: base64 (standard
// or URL alphabet) after its prefix.
var sealedValue = regexp.MustCompile(`sealed:v1:[A-Za-z0-9+/_=-]+`)

// checkNoPhone fails if s holds a phone number in clear.
func checkNoPhone(t *testing.T, what, s string) {
	t.Helper()
	for _, p := range phonesInClear(s) {
		t.Errorf("%s shows a phone number in clear: %s\n%s", what, p, excerpt(s, p))
	}
}

// phonesInClear lists the phone numbers s shows unmasked; digits inside a
// hex digest (params_hash) that happen to spell one do not count.
func phonesInClear(s string) []string {
	var out []string
	for _, m := range unmaskedPhone.FindAllStringSubmatchIndex(s, -1) {
		if !inHexDigest(s, m[2], m[3]) {
			out = append(out, s[m[2]:m[3]])
		}
	}
	return out
}

// inHexDigest reports whether s[i:j] lies inside a run of 32 or more
// lower-case hex digits: a digest such as params_hash, whose digits can
// happen to spell a phone number.
func inHexDigest(s string, i, j int) bool {
	hex := func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
	for i > 0 && hex(s[i-1]) {
		i--
	}
	for j < len(s) && hex(s[j]) {
		j++
	}
	return j-i >= 32
}

// excerpt is the text around the first sub in s.
func excerpt(s, sub string) string {
	i := strings.Index(s, sub)
	if i < 0 {
		return tail(s, 20)
	}
	return s[max(0, i-300):min(len(s), i+len(sub)+300)]
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
