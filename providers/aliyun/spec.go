package aliyun

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/orderworker/orderworker/providers"
)

// The environment variables the provider reads.
const (
	EnvEndpoint   = "ALIYUN_ENDPOINT"
	EnvAppKey     = "ALIYUN_APP_KEY"
	EnvAppSecret  = "ALIYUN_APP_SECRET"
	EnvProjectID  = "ALIYUN_PROJECT_ID"
	EnvAutoPay    = "ALIYUN_AUTO_PAY"
	EnvPayMatched = "ALIYUN_PAY_MATCHED"
	EnvPageBase   = "ALIYUN_PAGE_BASE"
	EnvRecreate   = "ALIYUN_RECREATE_UNLISTED"
)

// checkPageBase is the Setting.Check of ALIYUN_PAGE_BASE.
func checkPageBase(v string) error {
	if _, err := ParsePageBase(v); err != nil {
		return errors.New("want auto, 0 or 1")
	}
	return nil
}

// Spec returns what the binaries know about the provider: its params (with
// userName, personal data), its settings and how to build it from them.
// Built by Spec, the cloudToken lives in Redis (deps.Redis), shared by
// every worker: a new token invalidates the old one for all of them.
// Package sandbox's Dev is its sandbox.
func Spec() providers.Spec {
	return providers.Spec{
		Name:      Name,
		Fields:    Fields,
		Example:   json.RawMessage(`{"iotId":"bZGD54swRgDemoFkEs000101","commodityCode":"streamingResource_20_10","copies":1,"userId":"50e5op6412259c0f11demo0f57cd9326da8409","immediateUse":false}`),
		Sensitive: sensitiveParams(),
		Settings: []providers.Setting{
			{Name: EnvEndpoint, Default: DefaultEndpoint, Help: "Aliyun IoT Living API gateway base URL", Check: providers.CheckBaseURL},
			{Name: EnvAppKey, Required: true, Help: "Aliyun cloud AppKey (with ALIYUN_APP_SECRET and ALIYUN_PROJECT_ID: the provider is disabled without all three)"},
			{Name: EnvAppSecret, Required: true, Secret: true, Help: "Aliyun cloud AppSecret"},
			{Name: EnvProjectID, Required: true, Help: "Aliyun project for cloudToken"},
			{Name: EnvAutoPay, Default: "false", Help: "pay pending Aliyun orders with /order/pay", Check: providers.CheckBool},
			{Name: EnvPayMatched, Default: "false", Help: "with ALIYUN_AUTO_PAY, also pay an order found by matching the device's orders after an uncertain create (one the device's user bought meanwhile would match too)", Check: providers.CheckBool},
			{Name: EnvRecreate, Default: "false", Help: "create again an order whose uncertain create order/query does not show after the listing lag, instead of holding it for a person (only once Aliyun confirms that order/query lists every order of the device, unpaid ones included)", Check: providers.CheckBool},
			{Name: EnvPageBase, Default: string(PageBaseAuto), Help: "where Aliyun order/query counts pages from: auto, 0 or 1 (set it when a device's listing stays unavailable naming it)", Check: checkPageBase},
		},
		Parse: Parse,
		// An orderId is unique only on its device (see Client.IDScope).
		IDScope:      idScope,
		IDScopeField: "iotId",
		New: func(cfg providers.Config, deps providers.Deps) (providers.Provider, error) {
			opts := Options{
				Endpoint: cfg.Get(EnvEndpoint), AppKey: cfg.Get(EnvAppKey), AppSecret: cfg.Secret(EnvAppSecret),
				ProjectID: cfg.Get(EnvProjectID), AutoPay: cfg.Bool(EnvAutoPay), PayMatched: cfg.Bool(EnvPayMatched), PageBase: PageBase(cfg.Get(EnvPageBase)),
				RecreateUnlisted: cfg.Bool(EnvRecreate),
				Logger:           deps.Logger,
				HTTPClient:       newHTTPClient(deps.Transport()),
			}
			if deps.Redis != nil {
				opts.Tokens = NewRedisTokenStore(deps.Redis, &RedisTokenOptions{Seal: cfg.Secret(EnvAppSecret)})
			}
			c, err := New(opts)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
	}
}

// sensitiveParams are the params that carry personal data: userName is a
// nickname, often a phone number; userId the platform's identity of the
// user or the vendor's own account id (a login name or an e-mail address,
// perhaps), which the document's own examples mask as they mask userName.
func sensitiveParams() []string { return []string{"userName", "userId"} }

// Parse validates order/create params and decodes them; it needs no client.
// Its error is an InvalidArgument *Error naming the first bad field.
func Parse(params json.RawMessage) (providers.Params, error) {
	return providers.DecodeParams(paramsOp, params, Fields)
}

// Parse implements providers.Parser.
func (c *Client) Parse(params json.RawMessage) (providers.Params, error) { return Parse(params) }

// MatchKey implements providers.Matcher: a lookup matches the device's
// orders of the order's commodity and copies (see Rule).
func (c *Client) MatchKey(p providers.Params) string {
	cp := createParams(p)
	return cp.IotID + "\x00" + cp.CommodityCode + "\x00" + strconv.FormatInt(cp.Copies, 10)
}

// ListingScope implements providers.ListingScoper: order/query lists one
// device's orders.
func (c *Client) ListingScope(p providers.Params) string { return createParams(p).IotID }

// IDScope implements providers.IDScoper: the documents name no scope for
// an orderId (a String) and every call on an order (order/get, order/pay)
// gives the device beside it, so an id is taken as unique only on its
// device: two devices' orders may be answered with the same orderId (a
// black-box run with a platform numbering orders per device had every
// order after the first on a number created again and again, each taken
// for another order's).
//
// The device is compared without case, as the listing's rows are matched to
// it (otherDevice): two spellings of one device are one scope, never two.
func (c *Client) IDScope(p providers.Params) string { return idScope(p) }

// idScope is an order's device as IDScope gives it.
func idScope(p providers.Params) string { return strings.ToLower(createParams(p).IotID) }

// orderParams returns the order's params: from o.Parsed when the caller has
// them, else decoded from o.Params now.
func orderParams(o providers.Order) (CreateParams, error) {
	if o.Parsed != nil {
		return createParams(o.Parsed), nil
	}
	return ParseCreateParams(o.Params)
}
