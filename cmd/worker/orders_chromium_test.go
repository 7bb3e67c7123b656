package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// TestOrdersPagesInChromium drives the Orders pages in a headless Chromium
// (through the DevTools protocol over a pipe): the counts and lists match
// the ledger, an order's page shows its timeline and its task, a resolve
// sent from its form works with the token and is refused without it, from
// another site and on a read-only worker, and no page shows a phone number
// in clear. It saves screenshots (in ORDERWORKER_TEST_SCREENSHOT_DIR when set).
func TestOrdersPagesInChromium(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found on PATH: install Debian's chromium package (apt-get install chromium; .ci/run does)")
	}
	f := newOrdersFixture(t)
	f.seed()
	const token = "orders-chromium-token"
	env := map[string]string{"REDIS_URL": f.rs.URL(), "ORDERWORKER_DATA_KEY": f.dataKey,
		"ORDERWORKER_MONITORING_TOKEN": token, "ORDERWORKER_MONITORING_READONLY": "false"}
	base := startOrdersWorker(t, env)
	roEnv := map[string]string{"REDIS_URL": f.rs.URL(), "ORDERWORKER_DATA_KEY": f.dataKey, "ORDERWORKER_MONITORING_TOKEN": token}
	roBase := startOrdersWorker(t, roEnv)

	dir := os.Getenv("ORDERWORKER_TEST_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := startCDP(t, bin)
	shot := func(name string) {
		t.Helper()
		path := filepath.Join(dir, name)
		b.screenshot(path)
		t.Logf("orders screenshot: %s", path)
	}
	// page loads url and checks its status and that it shows no phone
	// number in clear; it returns the DOM.
	page := func(url string, want int) string {
		t.Helper()
		status := b.navigate(url)
		dom := b.dom()
		if status != want {
			t.Fatalf("GET %s: %d, want %d\n%s", url, status, want, pageText(dom))
		}
		checkNoPhone(t, url, dom)
		checkNoPhone(t, url+" (text)", b.text())
		return dom
	}

	// Without the token: 401.
	page(base+"/orders/", http.StatusUnauthorized)
	page(base+"/api/orders", http.StatusUnauthorized)

	// With it (a basic-auth user and password, as a browser sends after
	// its prompt).
	b.setAuth("ann", token)
	dom := page(base+"/orders/", http.StatusOK)
	counts := map[string]string{}
	for _, m := range regexp.MustCompile(`<td[^>]* data-provider="(\w+)" data-state="(\w+)"[^>]*>(?:<a[^>]*>)?(\d+)`).FindAllStringSubmatch(dom, -1) {
		counts[m[1]+"/"+m[2]] = m[3]
	}
	want := map[string]string{
		"tencent/queued": "2", "tencent/errored": "2", "tencent/submitting": "0", "tencent/unknown": "0", "tencent/total": "4",
		"aliyun/unknown": "2", "aliyun/pending": "1", "aliyun/paid": "1", "aliyun/queued": "0", "aliyun/total": "4",
		"unicloud/queued": "0", "unicloud/errored": "0", "unicloud/total": "0",
	}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("counts %s = %q, want %s (all: %v)", k, counts[k], v, counts)
		}
	}
	if len(counts) != 3*(len(ledger.States)+1) {
		t.Errorf("the counts table has %d cells, want %d: %v", len(counts), 3*(len(ledger.States)+1), counts)
	}
	// The list, newest first, every order once.
	if got := rowOrders(dom); fmt.Sprint(got) != "[A-PAID A-P1 A-U2 A-U1 T-E2 T-E1 T-Q2 T-Q1]" {
		t.Errorf("the list shows %v, want every order, newest first", got)
	}
	shot("orders-list.png")

	// Filtered by state and provider, and by age; paged.
	if got := rowOrders(page(base+"/orders/?state=unknown&provider=aliyun", http.StatusOK)); fmt.Sprint(got) != "[A-U2 A-U1]" {
		t.Errorf("state=unknown&provider=aliyun lists %v, want [A-U2 A-U1]", got)
	}
	if dom := page(base+"/orders/?older_than=1h", http.StatusOK); len(rowOrders(dom)) != 0 || !strings.Contains(dom, `id="empty"`) {
		t.Errorf("older_than=1h lists %v, want none", rowOrders(dom))
	}
	dom = page(base+"/orders/?limit=3", http.StatusOK)
	var listed []string
	for pages := 0; ; pages++ {
		listed = append(listed, rowOrders(dom)...)
		next := regexp.MustCompile(`<a href="([^"]+)" id="next">`).FindStringSubmatch(dom)
		if next == nil || pages > 5 {
			break
		}
		dom = page(base+htmlUnescape(next[1]), http.StatusOK)
	}
	if fmt.Sprint(listed) != "[A-PAID A-P1 A-U2 A-U1 T-E2 T-E1 T-Q2 T-Q1]" || len(rowOrders(dom)) != 2 {
		t.Errorf("paging by 3 lists %v, the last page %v", listed, rowOrders(dom))
	}
	page(base+"/orders/?state=stuck", http.StatusBadRequest)

	// An order's page: its timeline, masked params, its task.
	dom = page(base+"/orders/aliyun/A-U1", http.StatusOK)
	text := b.text()
	for _, w := range []string{"submit", "ambiguous", "10000 ms", "no answer in 10s for user " + fixtureMasked, fixtureMasked, "timeout after sending", "pending"} {
		if !strings.Contains(text, w) {
			t.Errorf("the order's page does not show %q:\n%s", w, text)
		}
	}
	if !strings.Contains(dom, `href="/monitoring/queues/orders/tasks/aliyun:A-U1"`) {
		t.Errorf("the order's page does not link to its task in the dashboard:\n%s", excerpt(dom, "task"))
	}
	if !strings.Contains(dom, `id="resolve"`) || strings.Contains(dom, `id="redrive"`) {
		t.Errorf("an unknown order's page should offer resolve, not re-drive")
	}
	shot("orders-order.png")
	// The dashboard's task page the link leads to.
	page(base+"/monitoring/queues/orders/tasks/aliyun:A-U1", http.StatusOK)

	// Resolve it from its form.
	page(base+"/orders/aliyun/A-U1", http.StatusOK)
	b.eval(`(() => {
		const f = document.getElementById('resolve');
		f.elements.as.value = 'paid';
		f.elements.provider_order_id.value = 'PO-U1';
		f.elements.note.value = 'paid in the console; customer called from 13912345678';
		return true; })()`)
	if status := b.submit("#resolve button"); status != http.StatusOK {
		t.Fatalf("resolve from the form: %d\n%s", status, b.text())
	}
	if url := b.eval(`location.pathname + location.search`); url != "/orders/aliyun/A-U1?done=paid" {
		t.Errorf("after the form the browser is at %v", url)
	}
	dom, text = b.dom(), b.text()
	checkNoPhone(t, "the resolved order's page", dom)
	if !strings.Contains(text, "Resolved as paid.") || !strings.Contains(text, "PO-U1") ||
		!strings.Contains(text, "by ann: paid in the console; customer called from 139****5678") {
		t.Errorf("the resolved order's page:\n%s", text)
	}
	if f.state("aliyun", "A-U1") != ledger.StatePaid {
		t.Errorf("A-U1 is %s after the form, want paid", f.state("aliyun", "A-U1"))
	}
	shot("orders-resolved.png")

	// Re-drive T-E1 from its page: its archived task is queued again.
	dom = page(base+"/orders/tencent/T-E1", http.StatusOK)
	if !strings.Contains(b.text(), "archived") || !strings.Contains(dom, `id="redrive"`) {
		t.Errorf("T-E1's page: want its archived task and the re-drive form:\n%s", b.text())
	}
	if status := b.submit("#redrive button"); status != http.StatusOK || !strings.Contains(b.text(), "Re-driven") {
		t.Errorf("re-drive from the form: %d\n%s", status, b.text())
	}
	if f.state("tencent", "T-E1") != ledger.StateSubmitting || f.taskState("tencent", "T-E1") != "pending" {
		t.Errorf("T-E1 after the re-drive: %s, task %s; want submitting, pending", f.state("tencent", "T-E1"), f.taskState("tencent", "T-E1"))
	}
	// T-E2 may exist: no re-drive form.
	if dom = page(base+"/orders/tencent/T-E2", http.StatusOK); strings.Contains(dom, `id="redrive"`) || !strings.Contains(dom, `id="no-action"`) {
		t.Errorf("T-E2 may exist at the provider but its page offers a re-drive")
	}

	// The form without the token: 401, nothing changes.
	page(base+"/orders/aliyun/A-U2", http.StatusOK)
	b.eval(`(() => { const f = document.getElementById('resolve'); f.elements.as.value = 'errored'; f.elements.note.value = 'n'; return true; })()`)
	b.setAuth("", "")
	if status := b.submit("#resolve button"); status != http.StatusUnauthorized {
		t.Errorf("resolve without the token: %d, want 401", status)
	}
	checkNoPhone(t, "401 page", b.dom())
	b.setAuth("ann", token)
	if f.state("aliyun", "A-U2") != ledger.StateUnknown {
		t.Fatalf("a form without the token changed A-U2")
	}

	// A form on another site posting to the worker, the browser holding the
	// credentials: refused.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/orders/aliyun/A-U2/resolve" id="evil">
<input name="as" value="errored"><input name="note" value="x"><input name="by" value="x"><input name="csrf_token" value="guess">
<button type="submit">win</button></form>`, base)
	}))
	defer evil.Close()
	_, port, _ := net.SplitHostPort(evil.Listener.Addr().String())
	b.navigate("http://localhost:" + port + "/")
	if status := b.submit("#evil button"); status != http.StatusForbidden {
		t.Errorf("a cross-site form: %d, want 403\n%s", status, b.text())
	}
	if f.state("aliyun", "A-U2") != ledger.StateUnknown {
		t.Fatalf("a cross-site form changed A-U2")
	}

	// A read-only worker shows no form, and refuses one sent all the same
	// (its session cookie and CSRF token valid: the same token on both).
	page(base+"/orders/aliyun/A-U2", http.StatusOK)
	csrf := b.eval(`document.querySelector('#resolve [name=csrf_token]').value`)
	dom = page(roBase+"/orders/aliyun/A-U2", http.StatusOK)
	if strings.Contains(dom, `<form method="post"`) || !strings.Contains(dom, `id="read-only"`) {
		t.Errorf("the read-only worker's page shows a form:\n%s", pageText(dom))
	}
	shot("orders-read-only.png")
	b.eval(fmt.Sprintf(`(() => {
		const f = document.createElement('form'); f.method = 'post'; f.action = '/orders/aliyun/A-U2/resolve'; f.id = 'forged';
		for (const [k, v] of Object.entries({as: 'errored', note: 'n', by: 'ann', csrf_token: %q})) {
			const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
		const s = document.createElement('button'); s.type = 'submit'; f.appendChild(s);
		document.body.appendChild(f); return true; })()`, csrf))
	if status := b.submit("#forged button"); status != http.StatusForbidden || !strings.Contains(b.text(), "read-only") {
		t.Errorf("a form sent to the read-only worker: %d, want 403\n%s", status, b.text())
	}
	if f.state("aliyun", "A-U2") != ledger.StateUnknown {
		t.Fatalf("the read-only worker changed A-U2")
	}

	// The counts after the actions.
	dom = page(base+"/orders/", http.StatusOK)
	for _, c := range []struct{ cell, want string }{
		{`data-provider="aliyun" data-state="paid"`, "2"}, {`data-provider="aliyun" data-state="unknown"`, "1"},
		{`data-provider="tencent" data-state="errored"`, "1"}, {`data-provider="tencent" data-state="submitting"`, "1"},
	} {
		if m := regexp.MustCompile(regexp.QuoteMeta(c.cell) + `[^>]*><a[^>]*>(\d+)`).FindStringSubmatch(dom); m == nil || m[1] != c.want {
			t.Errorf("after the actions, count %s = %v, want %s", c.cell, m, c.want)
		}
	}
}

// rowOrders lists the order numbers of a list page's rows.
func rowOrders(dom string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<tr data-order="([^"]+)">`).FindAllStringSubmatch(dom, -1) {
		out = append(out, htmlUnescape(m[1]))
	}
	return out
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`).Replace(s)
}

// startOrdersWorker runs the worker in-process on a free admin address with
// the orders queue (paused by the fixture, so nothing runs), and returns
// the admin base URL once /readyz answers.
func startOrdersWorker(t *testing.T, env map[string]string) string {
	t.Helper()
	return startReadyWorker(t, env)
}

// cdp drives one page of a headless Chromium through the DevTools protocol
// over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-separated JSON).
type cdp struct {
	t       *testing.T
	to      *os.File
	session string

	writeMu sync.Mutex // one message at a time on the pipe

	mu        sync.Mutex
	nextID    int
	replies   map[int]chan cdpMessage
	events    chan cdpMessage
	docStatus int // the status of the last document loaded
	readErr   error
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// cdpTimeout bounds one command or one page load.
const cdpTimeout = time.Minute

func startCDP(t *testing.T, bin string) *cdp {
	t.Helper()
	scratch := t.TempDir()
	profile, home := filepath.Join(scratch, "profile"), filepath.Join(scratch, "home")
	inR, inW, err := os.Pipe() // Chromium reads commands from fd 3
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe() // and writes answers to fd 4
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", "--no-proxy-server",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-pipe", "--user-data-dir="+profile, "about:blank")
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	cmd.ExtraFiles = []*os.File{inR, outW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	c := &cdp{t: t, to: inW, replies: map[int]chan cdpMessage{}, events: make(chan cdpMessage, 1024)}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		inW.Close()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		outR.Close()
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", tail(stderr.String(), 30))
		}
	})
	go c.read(bufio.NewReader(outR))

	var target struct {
		TargetID string `json:"targetId"`
	}
	c.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	c.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	c.session = attached.SessionID
	c.call(c.session, "Page.enable", nil, nil)
	c.call(c.session, "Network.enable", nil, nil)
	c.call(c.session, "Fetch.enable", map[string]any{"handleAuthRequests": true, "patterns": []map[string]any{{"urlPattern": "*"}}}, nil)
	c.call(c.session, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}, nil)
	return c
}

// read dispatches Chromium's messages: answers to their callers, the
// page's events to c.events; it records each document's HTTP status.
func (c *cdp) read(r *bufio.Reader) {
	for {
		b, err := r.ReadBytes(0)
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			for id, ch := range c.replies {
				close(ch)
				delete(c.replies, id)
			}
			c.mu.Unlock()
			return
		}
		var m cdpMessage
		if json.Unmarshal(b[:len(b)-1], &m) != nil {
			continue
		}
		if m.ID != 0 {
			c.mu.Lock()
			ch := c.replies[m.ID]
			delete(c.replies, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		// Requests pause for the Fetch domain, which is on only so that
		// an authentication challenge is answered: with no credentials,
		// as a person who cancels the browser's prompt, so that the 401
		// page shows.
		switch m.Method {
		case "Fetch.requestPaused", "Fetch.authRequired":
			var p struct {
				RequestID string `json:"requestId"`
			}
			if json.Unmarshal(m.Params, &p) == nil {
				if m.Method == "Fetch.requestPaused" {
					go c.send(m.SessionID, "Fetch.continueRequest", map[string]any{"requestId": p.RequestID})
				} else {
					go c.send(m.SessionID, "Fetch.continueWithAuth", map[string]any{"requestId": p.RequestID,
						"authChallengeResponse": map[string]any{"response": "CancelAuth"}})
				}
			}
			continue
		}
		if m.Method == "Network.responseReceived" {
			var p struct {
				Type     string `json:"type"`
				Response struct {
					Status int `json:"status"`
				} `json:"response"`
			}
			if json.Unmarshal(m.Params, &p) == nil && p.Type == "Document" {
				c.mu.Lock()
				c.docStatus = p.Response.Status
				c.mu.Unlock()
			}
		}
		select {
		case c.events <- m:
		default: // nobody waits for old events
		}
	}
}

// call sends a command and decodes its result into out (when not nil).
func (c *cdp) call(session, method string, params any, out any) {
	c.t.Helper()
	c.mu.Lock()
	if c.readErr != nil {
		c.mu.Unlock()
		c.t.Fatalf("chromium: %s: the pipe is closed: %v", method, c.readErr)
	}
	c.nextID++
	id := c.nextID
	ch := make(chan cdpMessage, 1)
	c.replies[id] = ch
	c.mu.Unlock()
	if err := c.write(id, session, method, params); err != nil {
		c.t.Fatalf("chromium: %s: %v", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			c.t.Fatalf("chromium: %s: the pipe closed", method)
		}
		if m.Error != nil {
			c.t.Fatalf("chromium: %s: %s", method, m.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(m.Result, out); err != nil {
				c.t.Fatalf("chromium: %s: %v", method, err)
			}
		}
	case <-time.After(cdpTimeout):
		c.t.Fatalf("chromium: %s: no answer in %v", method, cdpTimeout)
	}
}

// write sends one command.
func (c *cdp) write(id int, session, method string, params any) error {
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	b, _ := json.Marshal(msg)
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_, err := c.to.Write(append(b, 0))
	return err
}

// send sends a command whose answer nobody waits for.
func (c *cdp) send(session, method string, params any) {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.mu.Unlock()
	_ = c.write(id, session, method, params)
}

// drain forgets the events so far.
func (c *cdp) drain() {
	for {
		select {
		case <-c.events:
		default:
			c.mu.Lock()
			c.docStatus = 0
			c.mu.Unlock()
			return
		}
	}
}

// waitLoad waits for the page's load event and returns its document's
// HTTP status.
func (c *cdp) waitLoad(what string) int {
	c.t.Helper()
	deadline := time.After(cdpTimeout)
	for {
		select {
		case m := <-c.events:
			if m.Method == "Page.loadEventFired" && m.SessionID == c.session {
				c.mu.Lock()
				defer c.mu.Unlock()
				return c.docStatus
			}
		case <-deadline:
			c.t.Fatalf("chromium: %s: the page did not load in %v", what, cdpTimeout)
		}
	}
}

// navigate loads url and returns its HTTP status.
func (c *cdp) navigate(url string) int {
	c.t.Helper()
	c.drain()
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	c.call(c.session, "Page.navigate", map[string]any{"url": url}, &nav)
	if nav.ErrorText != "" {
		c.t.Fatalf("chromium: navigate %s: %s", url, nav.ErrorText)
	}
	return c.waitLoad(url)
}

// submit clicks a form's button, as an operator does, and returns the
// HTTP status of the page it leads to.
func (c *cdp) submit(button string) int {
	c.t.Helper()
	c.drain()
	if ok := c.eval(fmt.Sprintf(`(() => { const b = document.querySelector(%q); if (!b) return false; b.click(); return true; })()`, button)); ok != true {
		c.t.Fatalf("chromium: no %s on the page:\n%s", button, c.text())
	}
	return c.waitLoad("submit " + button)
}

// eval evaluates a JavaScript expression in the page (DevTools runs it
// whatever the page's Content-Security-Policy) and returns its value.
func (c *cdp) eval(expr string) any {
	c.t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	c.call(c.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	if res.ExceptionDetails != nil {
		c.t.Fatalf("chromium: %s: %s %s", expr, res.ExceptionDetails.Text, res.ExceptionDetails.Exception.Description)
	}
	return res.Result.Value
}

func (c *cdp) dom() string {
	c.t.Helper()
	s, _ := c.eval(`document.documentElement.outerHTML`).(string)
	return s
}

func (c *cdp) text() string {
	c.t.Helper()
	s, _ := c.eval(`document.body ? document.body.innerText : ''`).(string)
	return s
}

// setAuth sends basic-auth credentials with every request from now on;
// an empty user and password send none.
func (c *cdp) setAuth(user, password string) {
	c.t.Helper()
	headers := map[string]string{}
	if user != "" || password != "" {
		headers["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	}
	c.call(c.session, "Network.setExtraHTTPHeaders", map[string]any{"headers": headers}, nil)
}

// screenshot saves the whole page as a PNG and checks it is one.
func (c *cdp) screenshot(path string) {
	c.t.Helper()
	var shot struct {
		Data string `json:"data"`
	}
	c.call(c.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		c.t.Fatal(err)
	}
	if len(png) < 10_000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		c.t.Fatalf("screenshot %s: %d bytes, not a PNG of a rendered page", path, len(png))
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}
