package memprov_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/memprov"
	"github.com/orderworker/orderworker/providers/providertest"
)

const secret = "mem-secret-4f1e"

type harness struct{ b *memprov.Backend }

func (h harness) Provider() providers.Provider {
	return memprov.New(h.b, memprov.Options{Secret: secret, AutoPay: true})
}
func (h harness) BadSecretProvider() providers.Provider {
	return memprov.New(h.b, memprov.Options{Secret: "wrong-secret"})
}
func (h harness) Faults() *fault.Injector { return h.b.Faults() }
func (h harness) Order(n int) providers.Order {
	return providers.Order{OrderNo: fmt.Sprintf("MemOrder%04d", n), Params: json.RawMessage(fmt.Sprintf(`{"item":"sku-%d","qty":2}`, n))}
}
func (h harness) InvalidParams() map[string]json.RawMessage {
	return map[string]json.RawMessage{
		"item": json.RawMessage(`{"qty":1}`),
		"qty":  json.RawMessage(`{"item":"a","qty":0}`),
	}
}
func (h harness) Count(o providers.Order) int { return h.b.Count(o.OrderNo) }
func (h harness) Secrets() []string           { return []string{secret} }

func TestConformance(t *testing.T) {
	providertest.RunConformanceTests(t, func(t *testing.T) providertest.Harness {
		return harness{memprov.NewBackend(secret)}
	}, providertest.Features{})
}

func TestConformancePending(t *testing.T) {
	providertest.RunConformanceTests(t, func(t *testing.T) providertest.Harness {
		b := memprov.NewBackend(secret)
		b.Pending = true
		return harness{b}
	}, providertest.Features{SubmitPending: true})
}
