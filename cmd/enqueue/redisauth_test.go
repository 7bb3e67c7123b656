package main

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/orderworker/orderworker/tasks/taskstest"
)

// enqueue reaches Redis through the ACL user (default user off) and
// through the sentinels to a password-protected master; with a wrong
// password it exits 2 with the reason and shows no password.
func TestEnqueueRedisAuth(t *testing.T) {
	t.Parallel()
	acl := taskstest.StartACLRedis(t)
	sen := taskstest.StartSentinel(t, &taskstest.SentinelOptions{SentinelAuth: true})
	wrong := taskstest.Password(t)
	secrets := []string{acl.Password, sen.Password, sen.SentinelPassword, wrong}
	for _, c := range []struct {
		name, url string
		code      int
		reason    string // on stderr
	}{
		{"acl user", acl.URL(), exitOK, ""},
		{"sentinel", sen.URL(), exitOK, ""},
		{"wrong password", "redis://" + url.UserPassword(acl.Username, wrong).String() + "@" + acl.Addr + "/0", exitError, "WRONGPASS"},
		{"sentinel, wrong master password", strings.Replace(sen.URL(), "password="+sen.Password, "password="+wrong, 1), exitError, "WRONGPASS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			env := func(k string) string {
				if k == "REDIS_URL" {
					return c.url
				}
				return ""
			}
			code := run(context.Background(), []string{"-timeout", "5s", "-provider", "tencent", "-order-no", "Auth-" + strings.ReplaceAll(c.name, " ", "-"),
				"-params", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`}, env, strings.NewReader(""), &out, &errb)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stdout %s; stderr %s", code, c.code, out.String(), errb.String())
			}
			if c.code == exitOK && !strings.Contains(out.String(), `"status":"enqueued"`) {
				t.Errorf("stdout %s, want the order enqueued", out.String())
			}
			if !strings.Contains(errb.String(), c.reason) {
				t.Errorf("stderr %q does not say %q", errb.String(), c.reason)
			}
			for _, s := range secrets {
				if strings.Contains(out.String()+errb.String(), s) {
					t.Errorf("a password shows in the output:\n%s%s", out.String(), errb.String())
				}
			}
		})
	}
}

// A sentinel URL naming a master no sentinel knows is an error for every
// command, never "no such order": go-redis reports it wrapping redis.Nil,
// which readers take for a missing key (status answered "no order", list
// nothing, exit 0, while the orders were there under the right name).
func TestUnknownSentinelMasterIsNoMissingOrder(t *testing.T) {
	t.Parallel()
	sen := taskstest.StartSentinel(t, nil)
	good := sen.URL()
	bad := strings.Replace(good, "?master="+url.QueryEscape(sen.MasterName), "?master=no-such-master", 1)
	runWith := func(u string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		env := func(k string) string {
			if k == "REDIS_URL" {
				return u
			}
			return ""
		}
		code := run(context.Background(), append([]string{"-timeout", "5s"}, args...), env, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errs := runWith(good, "-provider", "tencent", "-order-no", "M1", "-params", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`); code != exitOK {
		t.Fatalf("enqueue through the right master: exit %d, stdout %s, stderr %s", code, out, errs)
	}
	for _, args := range [][]string{{"status", "tencent", "M1"}, {"list"}, {"-provider", "tencent", "-order-no", "M2", "-params", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`}} {
		code, out, errs := runWith(bad, args...)
		if code != exitError || !strings.Contains(errs, `no master named "no-such-master"`) || strings.Contains(out+errs, "no order") {
			t.Errorf("enqueue %v with an unknown master: exit %d, stdout %q, stderr %q; want exit 2 naming the master", args, code, out, errs)
		}
	}
}

// enqueue serve with a Redis that refuses it for good (a wrong password)
// exits 2 with the reason at start, as the worker and enqueue do, rather
// than serve 503 "send it again" to producers for ever; the password shows
// nowhere.
func TestServeRefusesARedisThatRefusesIt(t *testing.T) {
	t.Parallel()
	acl := taskstest.StartACLRedis(t)
	wrong := taskstest.Password(t)
	u := "redis://" + url.UserPassword(acl.Username, wrong).String() + "@" + acl.Addr + "/0"
	env := map[string]string{"REDIS_URL": u, "ORDERWORKER_API_TOKENS": "t"}
	code, out, errs := runCLIEnv(t, env, "", "serve", "-addr", "127.0.0.1:0")
	if code != exitError || !strings.Contains(errs, "WRONGPASS") {
		t.Fatalf("serve on a wrong password: exit %d, stderr %q; want %d saying WRONGPASS", code, errs, exitError)
	}
	if strings.Contains(out+errs, wrong) || strings.Contains(out+errs, acl.Password) {
		t.Errorf("a password shows: %s%s", out, errs)
	}
}
