package aliyun_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/aliyun/sandbox"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/providertest"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

const (
	appKey    = "24881234"
	appSecret = "ConfAppSecret-7c1d9e"
	projectID = "a123ProjectX"
	// phone is a userName that must never appear in clear.
	phone = "15812348558"
)

type harness struct {
	sb     *sandbox.Server
	url    string
	tokens aliyun.TokenStore
}

func newClient(t testing.TB, url, secret string, tokens aliyun.TokenStore, mod func(*aliyun.Options)) *aliyun.Client {
	t.Helper()
	opts := aliyun.Options{Endpoint: url, AppKey: appKey, AppSecret: providers.Secret(secret),
		ProjectID: projectID, Tokens: tokens, AutoPay: true}
	if mod != nil {
		mod(&opts)
	}
	c, err := aliyun.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (h *harness) Provider() providers.Provider {
	c, err := aliyun.New(aliyun.Options{Endpoint: h.url, AppKey: appKey, AppSecret: appSecret,
		ProjectID: projectID, Tokens: h.tokens, AutoPay: true})
	if err != nil {
		panic(err)
	}
	return c
}

func (h *harness) BadSecretProvider() providers.Provider {
	c, err := aliyun.New(aliyun.Options{Endpoint: h.url, AppKey: appKey, AppSecret: "wrong-secret",
		ProjectID: projectID, AutoPay: true})
	if err != nil {
		panic(err)
	}
	return c
}

func (h *harness) Faults() *fault.Injector { return h.sb.Faults() }
func (h *harness) Secrets() []string {
	return append([]string{appKey, appSecret, "wrong-secret", phone}, h.sb.IssuedTokens()...)
}

func iotID(n int) string { return fmt.Sprintf("dev%06dFkEs000101", n) }

func (h *harness) Order(n int) providers.Order { return testOrder(n) }

// testOrder returns a valid order on its own device, iotID(n).
func testOrder(n int) providers.Order {
	return providers.Order{
		OrderNo: fmt.Sprintf("Order%06d", n),
		Params: json.RawMessage(fmt.Sprintf(`{"iotId":%q,"commodityCode":"streamingResource_20_10","copies":2,"userName":%q,"userId":"50e5op6412259c0f11","immediateUse":false}`,
			iotID(n), phone)),
	}
}

func (h *harness) Count(o providers.Order) int {
	var p struct{ IotID string }
	if err := json.Unmarshal(o.Params, &p); err != nil {
		panic(err)
	}
	return h.sb.Count(p.IotID)
}

func (h *harness) InvalidParams() map[string]json.RawMessage {
	return map[string]json.RawMessage{
		"iotId":         json.RawMessage(`{"commodityCode":"streamingResource_20_10","copies":1}`),
		"commodityCode": json.RawMessage(`{"iotId":"dev1","copies":1}`),
		"copies":        json.RawMessage(`{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":61}`),
		"integer":       json.RawMessage(`{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":"1"}`),
		"boolean":       json.RawMessage(`{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"immediateUse":"no"}`),
		"cloudToken":    json.RawMessage(`{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"cloudToken":"x"}`),
		"userName":      json.RawMessage(`{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userName":7}`),
		"object":        json.RawMessage(`["dev1"]`),
	}
}

func newSandbox(t *testing.T) (*sandbox.Server, string) {
	sb := sandbox.New(appKey, appSecret, projectID)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, srv.URL
}

// A 503 before creation maps to Ambiguous on create: a 5xx from the
// gateway does not say whether the backend acted (see the package doc),
// so the worker looks the order up (order/query) before creating again.
// Orders are created unpaid and paid with Pay (AutoPay is on); Prepare
// snapshots the device's orders.
var features = providertest.Features{SubmitPending: true, Prepares: true, FailBeforeCode: providers.Ambiguous}

func TestConformance(t *testing.T) {
	providertest.RunConformanceTests(t, func(t *testing.T) providertest.Harness {
		sb, url := newSandbox(t)
		return &harness{sb: sb, url: url, tokens: aliyun.NewMemoryTokenStore(nil)}
	}, features)
}

// The same suite with the token shared through a real Redis.
func TestConformanceRedisTokens(t *testing.T) {
	srv := taskstest.StartRedis(t, nil)
	rdb := srv.Client(t)
	providertest.RunConformanceTests(t, func(t *testing.T) providertest.Harness {
		sb, url := newSandbox(t)
		return &harness{sb: sb, url: url, tokens: redisStore(rdb, t.Name())}
	}, features)
}

func redisStore(rdb redis.UniversalClient, prefix string) *aliyun.RedisTokenStore {
	return aliyun.NewRedisTokenStore(rdb, &aliyun.RedisTokenOptions{Prefix: aliyun.DefaultTokenPrefix + prefix + ":"})
}

// An orderId is owned within its device (providers.IDScoper), the device
// compared without case, as a listing's rows are matched to it; the Spec
// says the same for a process that does not build the client.
func TestIDScopeIsTheDeviceWithoutCase(t *testing.T) {
	t.Parallel()
	c, err := aliyun.New(aliyun.Options{Endpoint: "http://127.0.0.1:1", AppKey: "k", AppSecret: providers.Secret("s"), ProjectID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := aliyun.Parse(json.RawMessage(`{"iotId":"DevA-01","commodityCode":"streamingResource_20_10","copies":1}`))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := aliyun.Parse(json.RawMessage(`{"iotId":"deva-01","commodityCode":"streamingResource_20_10","copies":1}`))
	if a, b, s := c.IDScope(p), c.IDScope(q), aliyun.Spec().IDScope(p); a != "deva-01" || b != a || s != a {
		t.Errorf("scopes %q, %q, spec %q; want deva-01 for both spellings", a, b, s)
	}
}
