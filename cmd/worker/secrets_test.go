package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers/aliyun"
	aliyunsandbox "github.com/orderworker/orderworker/providers/aliyun/sandbox"
	"github.com/orderworker/orderworker/providers/fault"
	tencentsandbox "github.com/orderworker/orderworker/providers/tencent/sandbox"
	"github.com/orderworker/orderworker/providers/unicloud"
	unicloudsandbox "github.com/orderworker/orderworker/providers/unicloud/sandbox"
	"github.com/orderworker/orderworker/tasks"
	ledgerpkg "github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// phoneInClear finds a mainland mobile number not inside a longer digit run.
var phoneInClear = regexp.MustCompile(`(?:^|[^0-9])(1[3-9][0-9]{9})(?:[^0-9]|$)`)

// randomToken is a UUID (claims, leases, event ids) or a long run of hex
// digits (hashes, nonces): random text whose digits may happen to read as
// a phone number (a claim aac22e2b-5a51-4c32-ae11-17014270004e failed a
// CI run). The scan for numbers of any shape leaves them out; the numbers
// the tests plant are looked for everywhere (plantedPhone).
var randomToken = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{16,}`)

// plantedPhone finds the phone numbers the tests' orders carry (139123456xx,
// 158123485xx).
var plantedPhone = regexp.MustCompile(`139123456[0-9]{2}|158123485[0-9]{2}`)

// TestNoSecretsOrPersonalDataLeak runs orders carrying phone numbers through
// a worker with faults injected, then scans every Redis key and value and
// the captured logs (at debug level) for each credential and for any
// unmasked phone number.
func TestNoSecretsOrPersonalDataLeak(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	creds := map[string]string{
		"TENCENT_APP_KEY": "LeakTestTencentKey", "TENCENT_APP_SECRET": "leak-test-tencent-secret",
		"ALIYUN_APP_KEY": "LeakTestAliyunKey", "ALIYUN_APP_SECRET": "leak-test-aliyun-secret",
		"UNICLOUD_ACCESS_KEY_ID": "LeakTestUnicloudId", "UNICLOUD_ACCESS_KEY_SECRET": "leak-test-unicloud-secret",
		"ORDERWORKER_DATA_KEY":         "bGVhay10ZXN0IGRhdGEga2V5OiAzMiBieXRlcyBvayE=",
		"ORDERWORKER_MONITORING_TOKEN": "leak-test-monitoring-token",
	}
	tsb := tencentsandbox.New(creds["TENCENT_APP_KEY"], creds["TENCENT_APP_SECRET"])
	asb := aliyunsandbox.New(creds["ALIYUN_APP_KEY"], creds["ALIYUN_APP_SECRET"], "leak-project")
	usb := unicloudsandbox.New(creds["UNICLOUD_ACCESS_KEY_ID"], creds["UNICLOUD_ACCESS_KEY_SECRET"])
	for _, f := range []*fault.Injector{tsb.Faults(), asb.Faults(), usb.Faults()} {
		f.Script(fault.FailAfter, fault.Throttle, fault.FailBefore)
		f.SetHangLimit(time.Second)
	}
	// ALIYUN_PAY_MATCHED, UNICLOUD_TAKE_MATCHED: nobody else buys on the
	// sandboxes' devices and account, so the order found after the failed
	// create is ours, and its pay is one more call whose output is
	// scanned.
	env := map[string]string{
		"REDIS_URL": rs.URL(), "ALIYUN_AUTO_PAY": "true", "ALIYUN_PAY_MATCHED": "true", "ALIYUN_RECREATE_UNLISTED": "true", "UNICLOUD_TAKE_MATCHED": "true", "UNICLOUD_RECREATE_UNLISTED": "true", "ALIYUN_PROJECT_ID": "leak-project",
		"ORDERWORKER_RETRY_BASE": "50ms", "ORDERWORKER_RETRY_MAX": "200ms", "ORDERWORKER_LISTING_LAG": "100ms", "UNICLOUD_CREATE_OVERRUN": "0s", "ORDERWORKER_LOG_LEVEL": "debug",
	}
	for k, v := range creds {
		env[k] = v
	}
	for name, h := range map[string]*httptest.Server{
		"TENCENT_ENDPOINT": httptest.NewServer(tsb), "ALIYUN_ENDPOINT": httptest.NewServer(asb), "UNICLOUD_ENDPOINT": httptest.NewServer(usb),
	} {
		t.Cleanup(h.Close)
		env[name] = h.URL
	}

	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-admin-addr", "127.0.0.1:0"}, envFunc(env), &logs, &logs) }()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case err := <-done:
		t.Fatalf("worker stopped at once: %v\n%s", err, logs.String())
	case <-time.After(100 * time.Millisecond):
	}
	admin := adminAddr(t, &logs, done)
	waitHTTP(t, "http://"+admin+"/readyz", 200)

	sealer, err := tasks.NewSealer(creds["ORDERWORKER_DATA_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	set := validatorsForTest()
	set.Disable(aliyun.Name, "test", aliyun.Validate, aliyun.Spec().Sensitive...)
	set.Disable(unicloud.Name, "test", unicloud.Validate)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: rs.Addr})
	defer client.Close()
	rdb := rs.Client(t)
	enq := tasks.NewEnqueuer(client, tasks.NewLedger(rdb), set, &tasks.EnqueuerOptions{Sealer: sealer})
	orders := []string{
		`{"provider":"tencent","order_no":"Leak-T1","params":{"CustomerId":"13912345671","ItemId":"D-FireInsurance2020","ItemNum":1}}`,
		`{"provider":"tencent","order_no":"Leak-T2","params":{"CustomerId":"13912345672","ItemId":"D-FireInsurance2020","ItemNum":1}}`,
		`{"provider":"aliyun","order_no":"Leak-A1","params":{"iotId":"leakdev1","commodityCode":"streamingResource_20_10","copies":1,"userName":"13912345673","userId":"u1"}}`,
		`{"provider":"aliyun","order_no":"Leak-A2","params":{"iotId":"leakdev2","commodityCode":"streamingResource_20_10","copies":1,"userName":"15812348558"}}`,
		`{"provider":"unicloud","order_no":"Leak-U1","params":{"azoneId":"cn-tianjin-yfb1","componentCode":"nas.onestor","dataEncryption":0,"instanceName":"leak-13912345674","orderCategory":"NEW","payType":"DAY_MONTH_USAGE","projectId":"rg-1","regionId":"cn-tianjin-yfb","renewType":"manualrenew","rentCount":1,"rentUnit":"month","specificationCode":"nas.capacity.nfs","vpc":"vpc-1"}}`,
		// Rejected orders: their reasons must not echo personal data.
		`{"provider":"aliyun","order_no":"Leak-X1","params":{"iotId":"x","commodityCode":"c","copies":99,"userName":"13912345675"}}`,
		`{"provider":"tencent","order_no":"Leak-X2","params":{"CustomerId":"13912345676","ItemId":"D-FireInsurance2020","ItemNum":1,"13912345677":1}}`,
	}
	var results strings.Builder
	for _, o := range orders {
		res, err := enq.Enqueue(context.Background(), []byte(o))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&results, "%+v\n", res)
	}
	ledger := tasks.NewLedger(rdb)
	for _, ref := range []string{"tencent/Leak-T1", "tencent/Leak-T2", "aliyun/Leak-A1", "aliyun/Leak-A2", "unicloud/Leak-U1"} {
		p, no, _ := strings.Cut(ref, "/")
		deadline := time.Now().Add(60 * time.Second)
		for {
			rec, err := ledger.Get(context.Background(), tasks.OrderRef{Provider: p, OrderNo: no})
			if err == nil && rec != nil && rec.State.Terminal() {
				if rec.State != tasks.StatePaid {
					t.Errorf("%s ended %s: %s", ref, rec.State, rec.Reason)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no outcome (%+v)\nlogs:\n%s", ref, rec, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The rivals set of Leak-U1's instance name (which holds a phone
	// number) is named by a keyed hash: the unkeyed one, which could be
	// brute-forced back to the number, is nowhere in Redis.
	var uc unicloud.Client
	params, err := unicloud.Parse(json.RawMessage(`{"azoneId":"a","componentCode":"c","dataEncryption":0,"instanceName":"leak-13912345674","orderCategory":"NEW","payType":"p","projectId":"p","regionId":"r","renewType":"r","rentCount":1,"rentUnit":"month","specificationCode":"s","vpc":"v"}`))
	if err != nil {
		t.Fatal(err)
	}
	unkeyed := ledgerpkg.New(rdb, nil).RivalKey(unicloud.Name, uc.MatchKey(params))
	if rec, err := ledger.Get(context.Background(), tasks.OrderRef{Provider: unicloud.Name, OrderNo: "Leak-U1"}); err != nil || rec == nil || rec.RivalKey == "" || rec.RivalKey == unkeyed {
		t.Errorf("Leak-U1's rival key %+v, %v: want one, keyed (not %s)", rec, err, unkeyed)
	}
	metrics := get(t, "http://"+admin+"/metrics")
	cancel()
	<-done
	done <- nil

	haystacks := map[string]string{
		"redis":           rs.Dump(t),
		"logs":            logs.String(),
		"enqueue results": results.String(),
		"metrics":         metrics,
	}
	secrets := []string{}
	for _, v := range creds {
		secrets = append(secrets, v)
	}
	scanForLeaks(t, haystacks, secrets)
	if strings.Contains(haystacks["redis"], unkeyed) {
		t.Errorf("Redis holds the unkeyed hash %s of an instance name holding a phone number", unkeyed)
	}
	// The cloudToken is cached in Redis by design (every worker shares it);
	// it must never reach logs.
	for _, tok := range asb.IssuedTokens() {
		if strings.Contains(logs.String(), tok) {
			t.Errorf("logs hold a cloudToken")
		}
	}
	if len(haystacks["redis"]) < 1000 || !strings.Contains(haystacks["logs"], "order paid") {
		t.Fatalf("the scan looked at too little: redis %d bytes, logs %d bytes", len(haystacks["redis"]), len(haystacks["logs"]))
	}
	if !t.Failed() {
		t.Logf("scanned %d bytes of Redis, %d bytes of logs: no credential, no unmasked phone number", len(haystacks["redis"]), len(haystacks["logs"]))
	}
}

// scanForLeaks fails t for each secret, and each phone number in clear,
// that one of haystacks holds.
func scanForLeaks(t *testing.T, haystacks map[string]string, secrets []string) {
	t.Helper()
	for _, l := range leaks(haystacks, secrets) {
		t.Error(l)
	}
}

// leaks says what scanForLeaks finds.
func leaks(haystacks map[string]string, secrets []string) []string {
	var out []string
	for where, text := range haystacks {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				out = append(out, fmt.Sprintf("%s holds the credential %q", where, s))
			}
		}
		if m := plantedPhone.FindString(text); m != "" {
			i := strings.Index(text, m)
			out = append(out, fmt.Sprintf("%s holds the order's phone number %s: …%s…", where, m, text[max(0, i-120):min(len(text), i+60)]))
		}
		if m := phoneInClear.FindStringSubmatch(randomToken.ReplaceAllString(text, "-")); m != nil {
			i := strings.Index(text, m[1])
			out = append(out, fmt.Sprintf("%s holds an unmasked phone number %s: …%s…", where, m[1], text[max(0, i-120):min(len(text), i+60)]))
		}
	}
	return out
}

// The scan finds a phone number in clear wherever it is, and one the
// tests planted even beside hex digits, but not digits of a random token
// that happen to read as one.
func TestScanForLeaks(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		text string
		want bool
	}{
		{"reason=call 13800138000 now", true},
		{"name=leak-13912345674", true},
		{"token=ab13912345674cdef0123456789", true}, // planted, inside hex
		{"note=the key is s3cret-value", true},
		{"claim=aac22e2b-5a51-4c32-ae11-17014270004e", false},
		{"hash=0123456789abcdef17014270004e", false},
		{"updated=1796606327556 13800138000123", false}, // longer digit runs
		{"masked=139****5674", false},
	} {
		got := leaks(map[string]string{"redis": tt.text}, []string{"s3cret-value"})
		if (len(got) > 0) != tt.want {
			t.Errorf("%q: %v, want a leak %v", tt.text, got, tt.want)
		}
	}
}

// A UniCloud order held for a person (its create may have been received,
// and the listing does not show it: the default, UNICLOUD_RECREATE_UNLISTED
// off) leaks nothing either: its reason, its warning, its record and
// event, with a phone number in its instance name and its params sealed.
// The other process tests run with the setting on.
func TestHeldUnicloudOrderLeaksNothing(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	creds := map[string]string{
		"UNICLOUD_ACCESS_KEY_ID": "HeldLeakUnicloudId", "UNICLOUD_ACCESS_KEY_SECRET": "held-leak-unicloud-secret",
		"ORDERWORKER_DATA_KEY":         "bGVhay10ZXN0IGRhdGEga2V5OiAzMiBieXRlcyBvayE=",
		"ORDERWORKER_MONITORING_TOKEN": "held-leak-monitoring-token",
	}
	usb := unicloudsandbox.New(creds["UNICLOUD_ACCESS_KEY_ID"], creds["UNICLOUD_ACCESS_KEY_SECRET"])
	usb.Unlisted = func(o unicloudsandbox.Order) bool { return strings.HasPrefix(o.InstanceName, "held-") }
	usb.Faults().Script(fault.FailAfter) // made, and the answer lost
	srv := httptest.NewServer(usb)
	t.Cleanup(srv.Close)
	env := map[string]string{"REDIS_URL": rs.URL(), "UNICLOUD_ENDPOINT": srv.URL,
		"ORDERWORKER_RETRY_BASE": "50ms", "ORDERWORKER_RETRY_MAX": "200ms", "ORDERWORKER_LISTING_LAG": "100ms", "UNICLOUD_CREATE_OVERRUN": "0s", "ORDERWORKER_LOG_LEVEL": "debug"}
	for k, v := range creds {
		env[k] = v
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-admin-addr", "127.0.0.1:0"}, envFunc(env), &logs, &logs) }()
	defer func() {
		cancel()
		<-done
	}()
	admin := adminAddr(t, &logs, done)
	waitHTTP(t, "http://"+admin+"/readyz", 200)

	sealer, err := tasks.NewSealer(creds["ORDERWORKER_DATA_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	set := validatorsForTest()
	set.Disable(unicloud.Name, "test", unicloud.Validate)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: rs.Addr})
	defer client.Close()
	l := tasks.NewLedger(rs.Client(t))
	enq := tasks.NewEnqueuer(client, l, set, &tasks.EnqueuerOptions{Sealer: sealer})
	order := `{"provider":"unicloud","order_no":"Held-U1","params":{"azoneId":"cn-tianjin-yfb1","componentCode":"nas.onestor","dataEncryption":0,"instanceName":"held-13912345679","orderCategory":"NEW","payType":"DAY_MONTH_USAGE","projectId":"rg-1","regionId":"cn-tianjin-yfb","renewType":"manualrenew","rentCount":1,"rentUnit":"month","specificationCode":"nas.capacity.nfs","vpc":"vpc-1"}}`
	if res, err := enq.Enqueue(context.Background(), []byte(order)); err != nil || res.Status != tasks.Enqueued {
		t.Fatalf("Enqueue = %+v, %v", res, err)
	}
	var rec *tasks.Record
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rec, err = l.Get(context.Background(), tasks.OrderRef{Provider: unicloud.Name, OrderNo: "Held-U1"})
		if err == nil && rec != nil && rec.State == tasks.StateUnknown && strings.HasPrefix(rec.Reason, "not listed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not held: %+v, %v\nlogs:\n%s", rec, err, logs.String())
		}
	}
	if n := len(usb.Orders()); n != 1 {
		t.Errorf("%d orders at the provider; want 1 (held, not created again)", n)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "left for an operator"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no warning that the order is left for an operator:\n%s", logs.String())
		}
	}
	metrics := get(t, "http://"+admin+"/metrics")
	req, _ := http.NewRequest("GET", "http://"+admin+"/orders/unicloud/Held-U1", nil)
	req.Header.Set("Authorization", "Bearer "+creds["ORDERWORKER_MONITORING_TOKEN"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "not listed") {
		t.Errorf("order page: %d; want 200 with the hold's reason\n%s", resp.StatusCode, page)
	}
	cancel()
	<-done
	done <- nil
	secrets := []string{}
	for _, v := range creds {
		secrets = append(secrets, v)
	}
	scanForLeaks(t, map[string]string{"redis": rs.Dump(t), "logs": logs.String(), "metrics": metrics, "order page": page}, secrets)
}
