package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/internal/devmode"
	"github.com/orderworker/orderworker/tasks/webhook"
)

func newWebhookSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// Webhook settings that cannot work are refused at start, naming the
// variable and never showing the secret.
func TestWebhookConfig(t *testing.T) {
	t.Parallel()
	secret := newWebhookSecret(t)
	for _, tt := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"ORDERWORKER_WEBHOOK_URLS": "https://hooks.example/a"}, []string{"ORDERWORKER_WEBHOOK_URLS needs ORDERWORKER_WEBHOOK_SECRET"}},
		{map[string]string{"ORDERWORKER_WEBHOOK_URLS": "https://hooks.example/a", "ORDERWORKER_WEBHOOK_SECRET": "whsec_c2hvcnRrZXk="}, []string{"ORDERWORKER_WEBHOOK_SECRET", "at least 24"}},
		{map[string]string{"ORDERWORKER_WEBHOOK_URLS": "https://hooks.example/a", "ORDERWORKER_WEBHOOK_SECRET": "plainsecretvalue0123456789abcdef"}, []string{"ORDERWORKER_WEBHOOK_SECRET", "whsec_"}},
		{map[string]string{"ORDERWORKER_WEBHOOK_URLS": "hooks.example/a", "ORDERWORKER_WEBHOOK_SECRET": secret}, []string{"ORDERWORKER_WEBHOOK_URLS", "absolute"}},
		{map[string]string{"ORDERWORKER_WEBHOOK_RETRY_BASE": "10s", "ORDERWORKER_WEBHOOK_RETRY_MAX": "1s"}, []string{"ORDERWORKER_WEBHOOK_RETRY_MAX"}},
		{map[string]string{"ORDERWORKER_WEBHOOK_MAX_AGE": "0"}, []string{"ORDERWORKER_WEBHOOK_MAX_AGE"}},
		{map[string]string{"ORDERWORKER_WEBHOOK_TIMEOUT": "soon"}, []string{"ORDERWORKER_WEBHOOK_TIMEOUT"}},
		{map[string]string{"ORDERWORKER_WEBHOOK_CONCURRENCY": "0"}, []string{"ORDERWORKER_WEBHOOK_CONCURRENCY", "positive"}},
		{map[string]string{"ORDERWORKER_WEBHOOK_CONCURRENCY": "many"}, []string{"ORDERWORKER_WEBHOOK_CONCURRENCY"}},
		{map[string]string{"ORDERWORKER_WEBHOOK_CONCURRENCY": "257"}, []string{"ORDERWORKER_WEBHOOK_CONCURRENCY", "at most 256"}},
	} {
		_, err := parseConfig(nil, envFunc(tt.env), io.Discard, io.Discard)
		if err == nil {
			t.Errorf("parseConfig(%v) = nil error", tt.env)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("parseConfig(%v) = %q, want it to say %q", tt.env, err, w)
			}
		}
		for _, v := range tt.env {
			if strings.Contains(v, "secret") || strings.HasPrefix(v, "whsec_") {
				if k := strings.TrimPrefix(v, "whsec_"); strings.Contains(err.Error(), k) {
					t.Errorf("parseConfig error %q shows the secret", err)
				}
			}
		}
	}
	cfg, err := parseConfig(nil, envFunc(map[string]string{
		"ORDERWORKER_WEBHOOK_URLS": "https://a.example/hook, https://b.example/hook?token=x", "ORDERWORKER_WEBHOOK_SECRET": secret,
	}), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.WebhookURLs) != 2 || cfg.WebhookMaxAge != 72*time.Hour || cfg.WebhookTimeout != 10*time.Second || cfg.WebhookConcurrency != webhook.DefaultSenders {
		t.Errorf("config %+v", cfg)
	}
}

// readmeBlock returns the fenced code block of the README whose first line
// starts with marker.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?ms)^```[a-z]*\n(.*?)^```")
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		if strings.HasPrefix(m[1], marker) {
			return m[1]
		}
	}
	t.Fatalf("README.md has no code block starting with %q", marker)
	return ""
}

// lockedBuffer collects a process's output.
type lockedBuffer = syncBuffer

// waitOutput waits until out holds want.
func waitOutput(t *testing.T, out *lockedBuffer, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q after %s; output:\n%s", want, timeout, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readmeReceiver is the README's Python webhook receiver, running.
type readmeReceiver struct {
	hook string        // its URL
	out  *lockedBuffer // what it printed
}

// post sends the receiver an event, signed by sign, and returns the answer's
// status.
func (r *readmeReceiver) post(sign func(h http.Header, body []byte)) (int, error) {
	body := []byte(`{"id":"1-0","type":"order.paid","timestamp":"2026-11-30T12:00:00Z","data":{"provider":"tencent","order_no":"Probe","state":"paid","provider_order_id":"","reason":"","attempts":1}}`)
	req, _ := http.NewRequest("POST", r.hook, bytes.NewReader(body))
	sign(req.Header, body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// startREADMEReceiver runs the receiver at path with
// ORDERWORKER_WEBHOOK_SECRET=secret until the test ends. It listens on a
// port found free, which a server of a test running alongside may take
// first: the receiver then exits, or the probe reaches the other server. So
// the receiver is ours once a probe signed by signer is answered 204 and
// printed by it; otherwise it is started again on another port.
func startREADMEReceiver(t *testing.T, path, secret string, signer *webhook.Signer) *readmeReceiver {
	t.Helper()
	errExited := errors.New("the receiver exited")
	for try := 1; ; try++ {
		r := &readmeReceiver{out: &lockedBuffer{}}
		port := strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
		r.hook = "http://127.0.0.1:" + port + "/hook"
		recv := exec.Command("python3", path)
		recv.Env = append(os.Environ(), "ORDERWORKER_WEBHOOK_SECRET="+secret, "PORT="+port)
		recv.Stdout, recv.Stderr = r.out, r.out
		if err := recv.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = recv.Wait(); close(exited) }()
		t.Cleanup(func() { _ = recv.Process.Kill(); <-exited })
		status, perr := 0, error(nil)
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			select {
			case <-exited:
				perr = errExited
			default:
				status, perr = r.post(func(h http.Header, body []byte) { signer.Header(h, "1-0", time.Now(), body) })
			}
			if perr == nil || errors.Is(perr, errExited) || time.Now().After(deadline) {
				break
			}
		}
		printed := func() bool { return strings.Contains(r.out.String(), "order.paid tencent Probe") }
		for wait := time.Now().Add(5 * time.Second); perr == nil && status == http.StatusNoContent && !printed() && time.Now().Before(wait); {
			time.Sleep(20 * time.Millisecond) // the print is copied from a pipe
		}
		if perr == nil && status == http.StatusNoContent && printed() {
			return r
		}
		if try == 5 {
			t.Fatalf("README receiver: a correctly signed request answered %d (%v), want 204 and the event printed; output:\n%s", status, perr, r.out.String())
		}
		t.Logf("README receiver on port %s: answered %d (%v), output %q; starting it on another port", port, status, perr, r.out.String())
		_ = recv.Process.Kill()
	}
}

// The README's receiver, given two secrets while they rotate (as the
// workers are), accepts a request signed by either or by both, and refuses
// one signed by neither.
func TestREADMEReceiverDuringARotation(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 is not installed (.ci/run installs it): %v", err)
	}
	recvPath := filepath.Join(t.TempDir(), "receiver.py")
	if err := os.WriteFile(recvPath, []byte(readmeBlock(t, "# receiver.py")), 0o600); err != nil {
		t.Fatal(err)
	}
	oldSecret, newSecret := newWebhookSecret(t), newWebhookSecret(t)
	both, err := webhook.NewSigner(newSecret + " " + oldSecret)
	if err != nil {
		t.Fatal(err)
	}
	recv := startREADMEReceiver(t, recvPath, newSecret+" "+oldSecret, both)
	for i, tt := range []struct {
		name, secret string
		want         int
	}{
		{"the old secret only", oldSecret, http.StatusNoContent},
		{"the new secret only", newSecret, http.StatusNoContent},
		{"the new and the old", newSecret + " " + oldSecret, http.StatusNoContent},
		{"the old and the new", oldSecret + " " + newSecret, http.StatusNoContent},
		{"another secret", newWebhookSecret(t), http.StatusUnauthorized},
	} {
		s, err := webhook.NewSigner(tt.secret)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%d-1", i+2)
		if got, err := recv.post(func(h http.Header, body []byte) { s.Header(h, id, time.Now(), body) }); got != tt.want {
			t.Errorf("README receiver with two secrets: a request signed with %s answered %d (%v), want %d", tt.name, got, err, tt.want)
		}
	}
}

// The README's curl commands, Python producer and Python webhook receiver
// work as printed, against worker -dev: the producer's orders are paid and
// the receiver verifies and prints their events. The receiver refuses a
// request whose signature is wrong.
func TestREADMEExamplesAgainstDev(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{"python3", "curl", "bash"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (.ci/run installs it): %v", bin, err)
		}
	}
	dir := t.TempDir()
	// -dev signs with its own secret, whatever ORDERWORKER_WEBHOOK_SECRET
	// says: the receiver is given that one, and -dev a real-looking one
	// it must not sign with.
	secret := devmode.WebhookSecret
	token := strings.TrimPrefix(newWebhookSecret(t), "whsec_")[:32]

	// The receiver, as printed.
	recvPath := filepath.Join(dir, "receiver.py")
	if err := os.WriteFile(recvPath, []byte(readmeBlock(t, "# receiver.py")), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	recv := startREADMEReceiver(t, recvPath, secret, signer)
	hook, recvOut := recv.hook, recv.out
	other, _ := webhook.NewSigner(newWebhookSecret(t))
	if got, err := recv.post(func(h http.Header, body []byte) { other.Header(h, "2-0", time.Now(), body) }); got != http.StatusUnauthorized {
		t.Errorf("README receiver: a request signed with another secret answered %d (%v), want 401", got, err)
	}
	if got, err := recv.post(func(h http.Header, body []byte) { signer.Header(h, "3-0", time.Now().Add(-time.Hour), body) }); got != http.StatusUnauthorized {
		t.Errorf("README receiver: an hour-old signature answered %d (%v), want 401", got, err)
	}

	// worker -dev, delivering to the receiver and serving the API.
	var stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-dev", "-admin-addr", "127.0.0.1:0", "-log-format", "json"}, envFunc(map[string]string{
			"REDIS_URL":                  "redis://" + freeAddr(t) + "/0",
			"ORDERWORKER_API_TOKENS":     token,
			"ORDERWORKER_WEBHOOK_URLS":   hook,
			"ORDERWORKER_WEBHOOK_SECRET": newWebhookSecret(t),
		}), io.Discard, &stderr)
	}()
	waitOutput(t, &stderr, `"msg":"dev: API listening"`, 60*time.Second)
	var apiAddr string
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	for sc.Scan() {
		var l struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "dev: API listening" {
			apiAddr = l.Addr
		}
	}
	env := append(os.Environ(), "API=http://"+apiAddr, "TOKEN="+token)

	// curl, as printed.
	curl := exec.Command("bash", "-euo", "pipefail", "-c", readmeBlock(t, "# curl.sh"))
	curl.Env = env
	out, err := curl.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's curl commands: %v\n%s", err, out)
	}
	for _, want := range []string{`"status":"enqueued"`, `"state":"paid"`, `"type":"order.paid"`, `"next_after"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the README's curl commands printed no %s:\n%s", want, out)
		}
	}

	// The Python producer, as printed; twice: the second is a duplicate.
	prodPath := filepath.Join(dir, "producer.py")
	if err := os.WriteFile(prodPath, []byte(readmeBlock(t, "# producer.py")), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"201 enqueued\npaid\n", "200 duplicate\npaid\n"} {
		prod := exec.Command("python3", prodPath)
		prod.Env = env
		out, err := prod.CombinedOutput()
		if err != nil || string(out) != want {
			t.Errorf("the README's producer printed %q (%v), want %q", out, err, want)
		}
	}

	// The receiver printed both orders' paid events.
	waitOutput(t, recvOut, "order.paid tencent Order100001\n", 30*time.Second)
	waitOutput(t, recvOut, "order.paid tencent Order100002\n", 30*time.Second)

	cancel()
	if err := <-done; err != nil {
		t.Errorf("worker -dev after cancel: %v", err)
	}
}
