package tencent

import (
	"encoding/json"

	"github.com/orderworker/orderworker/providers"
)

// The environment variables the provider reads.
const (
	EnvEndpoint  = "TENCENT_ENDPOINT"
	EnvAppKey    = "TENCENT_APP_KEY"
	EnvAppSecret = "TENCENT_APP_SECRET"
)

// Spec returns what the binaries know about the provider: its params, its
// settings and how to build it from them. Package sandbox's Dev is its
// sandbox.
func Spec() providers.Spec {
	return providers.Spec{
		Name:       Name,
		Fields:     Fields,
		NoOrderIDs: true, // an order is known by its OrderNo
		// CustomerId is the vendor's user id, perhaps a login name:
		// shown masked. Not Sensitive: it is required, so refusing it
		// without a data key would refuse every order.
		Masked:  []string{"CustomerId"},
		Example: json.RawMessage(`{"CustomerId":"Customer100001","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":2}`),
		Settings: []providers.Setting{
			{Name: EnvEndpoint, Default: DefaultEndpoint, Help: "Tencent IoT Explorer base URL", Check: providers.CheckBaseURL},
			{Name: EnvAppKey, Required: true, Help: "Tencent AppKey (with TENCENT_APP_SECRET: the provider is disabled without both)"},
			{Name: EnvAppSecret, Required: true, Secret: true, Help: "Tencent AppSecret"},
		},
		Parse: Parse,
		New: func(cfg providers.Config, deps providers.Deps) (providers.Provider, error) {
			c, err := New(Options{Endpoint: cfg.Get(EnvEndpoint), AppKey: cfg.Get(EnvAppKey), AppSecret: cfg.Secret(EnvAppSecret),
				HTTPClient: newHTTPClient(deps.Transport())})
			if err != nil {
				return nil, err
			}
			return c, nil
		},
	}
}

// Parse validates ServiceCreateOrder params and decodes them; it needs no
// client. Its error is an InvalidArgument *Error naming the first bad field.
func Parse(params json.RawMessage) (providers.Params, error) {
	return providers.DecodeParams("tencent params", params, Fields)
}

// Parse implements providers.Parser.
func (c *Client) Parse(params json.RawMessage) (providers.Params, error) { return Parse(params) }

// orderParams returns the order's decoded params: o.Parsed when the caller has
// them, else Params decoded now.
func orderParams(o providers.Order) (providers.Params, error) {
	if o.Parsed != nil {
		return o.Parsed, nil
	}
	return Parse(o.Params)
}
