package tencent_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/providertest"
	"github.com/orderworker/orderworker/providers/tencent"
	"github.com/orderworker/orderworker/providers/tencent/sandbox"
)

const appKey, appSecret = "ConfAppKey", "ConfAppSecret-9f8e7d"

type harness struct {
	sb  *sandbox.Server
	url string
}

func newHarness(t *testing.T) providertest.Harness {
	sb := sandbox.New(appKey, appSecret)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return &harness{sb: sb, url: srv.URL}
}

func (h *harness) client(secret string) providers.Provider {
	c, err := tencent.New(tencent.Options{Endpoint: h.url, AppKey: appKey, AppSecret: providers.Secret(secret)})
	if err != nil {
		panic(err)
	}
	return c
}

func (h *harness) Provider() providers.Provider          { return h.client(appSecret) }
func (h *harness) BadSecretProvider() providers.Provider { return h.client("wrong-secret") }
func (h *harness) Faults() *fault.Injector               { return h.sb.Faults() }
func (h *harness) Count(o providers.Order) int           { return h.sb.Count(o.OrderNo) }
func (h *harness) Secrets() []string                     { return []string{appSecret, "wrong-secret"} }

func (h *harness) Order(n int) providers.Order {
	return providers.Order{
		OrderNo: fmt.Sprintf("Order%06d", n),
		Params:  json.RawMessage(fmt.Sprintf(`{"CustomerId":"Customer%d","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":2}`, n)),
	}
}

func (h *harness) InvalidParams() map[string]json.RawMessage {
	return map[string]json.RawMessage{
		"CustomerId": json.RawMessage(`{"ItemId":"D-FireInsurance2020","ItemNum":1}`),
		"ItemNum":    json.RawMessage(`{"CustomerId":"c1","ItemId":"D-FireInsurance2020","ItemNum":0}`),
		"integer":    json.RawMessage(`{"CustomerId":"c1","ItemId":"D-FireInsurance2020","ItemNum":"2"}`),
		"OrderNo":    json.RawMessage(`{"CustomerId":"c1","ItemId":"D-FireInsurance2020","ItemNum":1,"OrderNo":"x"}`),
		"must match": json.RawMessage(`{"CustomerId":"has space","ItemId":"D-FireInsurance2020","ItemNum":1}`),
		"object":     json.RawMessage(`[1,2]`),
	}
}

func TestConformance(t *testing.T) {
	// The documents describe no throttling answer: the sandbox's own
	// (RequestLimitExceeded) is read as a throttle that may have acted:
	// ambiguous.
	providertest.RunConformanceTests(t, newHarness, providertest.Features{ThrottleCode: providers.Ambiguous})
}
