package unicloud_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/providertest"
	"github.com/orderworker/orderworker/providers/unicloud"
	"github.com/orderworker/orderworker/providers/unicloud/sandbox"
)

const accessKeyID, accessKeySecret = "ConfAccessKeyId", "ConfAccessKeySecret-4c2b"

type harness struct {
	sb  *sandbox.Server
	url string
}

func newHarness(t *testing.T) providertest.Harness {
	sb := sandbox.New(accessKeyID, accessKeySecret)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return &harness{sb: sb, url: srv.URL}
}

func (h *harness) client(secret string) providers.Provider {
	c, err := unicloud.New(unicloud.Options{Endpoint: h.url, AccessKeyID: accessKeyID, AccessKeySecret: providers.Secret(secret)})
	if err != nil {
		panic(err)
	}
	return c
}

func (h *harness) Provider() providers.Provider          { return h.client(accessKeySecret) }
func (h *harness) BadSecretProvider() providers.Provider { return h.client("wrong-secret") }
func (h *harness) Faults() *fault.Injector               { return h.sb.Faults() }
func (h *harness) Secrets() []string {
	return []string{accessKeyID, accessKeySecret, "wrong-secret"}
}

func (h *harness) Count(o providers.Order) int {
	var p struct{ InstanceName string }
	if err := json.Unmarshal(o.Params, &p); err != nil {
		panic(err)
	}
	return h.sb.Count(p.InstanceName)
}

// params returns valid CreateOrder params for instance name.
func params(name string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"azoneId":"cn-tianjin-yfb1","componentCode":"nas.onestor","dataEncryption":0,
		"instanceName":%q,"orderCategory":"NEW","payType":"DAY_MONTH_USAGE","projectId":"rg-k0n2gf8ew1pd",
		"regionId":"cn-tianjin-yfb","renewType":"manualrenew","rentCount":1,"rentUnit":"month",
		"specificationCode":"nas.capacity.nfs","unit":"GB","vpc":"vpc-g2gmswxtthml"}`, name))
}

func (h *harness) Order(n int) providers.Order {
	return providers.Order{OrderNo: fmt.Sprintf("Order%06d", n), Params: params(fmt.Sprintf("conf-nas-%d", n))}
}

func (h *harness) InvalidParams() map[string]json.RawMessage {
	with := func(field, value string) json.RawMessage {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(params("bad"), &m); err != nil {
			panic(err)
		}
		if value == "" {
			delete(m, field)
		} else {
			m[field] = json.RawMessage(value)
		}
		b, _ := json.Marshal(m)
		return b
	}
	return map[string]json.RawMessage{
		"azoneId":        with("azoneId", ""),
		"dataEncryption": with("dataEncryption", "2"),
		"rentCount":      with("rentCount", "0"),
		"integer":        with("rentCount", `"1"`),
		"a string":       with("vpc", "7"),
		"regionName":     with("regionName", "7"),
		"regionNom":      with("regionNom", `"天津研发-YFB区"`),
		"instanceName":   with("instanceName", `" padded"`),
		"must match":     with("regionId", `"cn tianjin"`),
		"object":         json.RawMessage(`["not","an","object"]`),
	}
}

func TestConformance(t *testing.T) {
	providertest.RunConformanceTests(t, newHarness, providertest.Features{
		// A 503 from CreateOrder cannot be told from one after creation.
		FailBeforeCode: providers.Ambiguous,
		// Nor can a throttle (none is documented): looked up first.
		ThrottleCode: providers.Ambiguous,
	})
}
