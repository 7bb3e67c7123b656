package unicloud

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/orderworker/orderworker/providers"
)

// The environment variables the provider reads.
const (
	EnvEndpoint        = "UNICLOUD_ENDPOINT"
	EnvAccessKeyID     = "UNICLOUD_ACCESS_KEY_ID"
	EnvAccessKeySecret = "UNICLOUD_ACCESS_KEY_SECRET"
	EnvTakeMatched     = "UNICLOUD_TAKE_MATCHED"
	EnvRecreate        = "UNICLOUD_RECREATE_UNLISTED"
	EnvCreateOverrun   = "UNICLOUD_CREATE_OVERRUN"
	EnvStanding        = "UNICLOUD_STANDING_STATUSES"
)

// Spec returns what the binaries know about the provider: its params, its
// settings and how to build it from them. Package sandbox's Dev is its
// sandbox.
func Spec() providers.Spec {
	return providers.Spec{
		Name:    Name,
		Fields:  Fields,
		Example: json.RawMessage(`{"azoneId":"cn-tianjin-yfb1","componentCode":"nas.onestor","dataEncryption":0,"instanceName":"demo-nas","orderCategory":"NEW","payType":"DAY_MONTH_USAGE","projectId":"rg-k0n2gf8ew1pd","regionId":"cn-tianjin-yfb","renewType":"manualrenew","rentCount":1,"rentUnit":"month","specificationCode":"nas.capacity.nfs","unit":"GB","vpc":"vpc-g2gmswxtthml"}`),
		Settings: []providers.Setting{
			{Name: EnvEndpoint, Default: DefaultEndpoint, Help: "UniCloud OpenAPI base URL", Check: providers.CheckBaseURL},
			{Name: EnvAccessKeyID, Required: true, Help: "UniCloud AccessKeyId (with UNICLOUD_ACCESS_KEY_SECRET: the provider is disabled without both)"},
			{Name: EnvAccessKeySecret, Required: true, Secret: true, Help: "UniCloud AccessKeySecret"},
			{Name: EnvTakeMatched, Default: "false", Help: "take an order found only by matching the listing's instance names after an uncertain create for ours, paid, instead of holding it for a person (only when nothing but the workers creates orders on the account)", Check: providers.CheckBool},
			{Name: EnvCreateOverrun, Default: "60s", Help: "how long after a create request ended UniCloud may still make the order (the API documents no timeout; its Go SDK waits 60s): a lookup's not-found is believed only once ORDERWORKER_LISTING_LAG has passed after that; 0s when UniCloud confirms it makes no order after answering", Check: providers.CheckDuration},
			{Name: EnvStanding, Help: "OrderStatus values (comma-separated, as QueryOrders answers them) that mean an order stands, as UniCloud documents or confirms: with UNICLOUD_TAKE_MATCHED, an order found by matching whose status is a number is taken only if listed here (the values are not documented: a number may mean cancelled)", Check: checkStatuses},
			{Name: EnvRecreate, Default: "false", Help: "create again an order whose uncertain create the listing does not show after the listing lag, instead of holding it for a person (only once UniCloud confirms that QueryOrders lists every order whatever its OrderStatus)", Check: providers.CheckBool},
		},
		Parse:                Parse,
		CheckOrderID:         CheckOrderID,
		CreateOverrun:        CreateOverrun,
		CreateOverrunSetting: EnvCreateOverrun,
		New: func(cfg providers.Config, deps providers.Deps) (providers.Provider, error) {
			c, err := New(Options{Endpoint: cfg.Get(EnvEndpoint), AccessKeyID: cfg.Get(EnvAccessKeyID), AccessKeySecret: cfg.Secret(EnvAccessKeySecret),
				TakeMatched: cfg.Bool(EnvTakeMatched), StandingStatuses: statuses(cfg.Get(EnvStanding)), RecreateUnlisted: cfg.Bool(EnvRecreate), HTTPClient: newHTTPClient(deps.Transport()),
				CreateOverrun: cmp.Or(cfg.Duration(EnvCreateOverrun), -1)})
			if err != nil {
				return nil, err
			}
			return c, nil
		},
	}
}

// statuses reads UNICLOUD_STANDING_STATUSES: its comma-separated values,
// each trimmed.
func statuses(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// checkStatuses is UNICLOUD_STANDING_STATUSES' Setting.Check: one value
// or more, none empty, none naming a cancellation or a failure.
func checkStatuses(v string) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return fmt.Errorf("want OrderStatus values separated by commas, none empty")
		}
		if why := (orderInfo{OrderStatus: f}).closed(); why != "" {
			return fmt.Errorf("%s names a cancellation or a failure: it cannot mean an order stands", f)
		}
	}
	return nil
}

// CheckOrderID checks an order id an operator names (Spec.CheckOrderID):
// UniCloud's OrderId is a 64-bit number (a Java long), written as
// CreateOrder's answer and the listings write it (907804353770394046), a
// JSON number or its digits: without a sign or leading zeros, so that one
// order is never recorded under a spelling its listings never show, which
// a lookup for another order would not find owned.
func CheckOrderID(id string) error {
	if id == "" || id[0] == '0' || strings.ContainsFunc(id, func(r rune) bool { return r < '0' || r > '9' }) {
		return fmt.Errorf("%q: a UniCloud order id is a positive number without leading zeros, as CreateOrder's OrderId (907804353770394046)", providers.Truncate(id, 64))
	}
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		return fmt.Errorf("%q: a UniCloud order id is a 64-bit number: this one is larger", providers.Truncate(id, 64))
	}
	return nil
}

// Parse validates CreateOrder params and decodes them; it needs no client.
// Its error is an InvalidArgument *Error naming the first bad field.
func Parse(params json.RawMessage) (providers.Params, error) {
	return providers.DecodeParams(paramsOp, params, Fields)
}

// Parse implements providers.Parser.
func (c *Client) Parse(params json.RawMessage) (providers.Params, error) { return Parse(params) }

// MatchKey implements providers.Matcher: a lookup matches the listing by
// instance name, and the provider may store a name normalised (Unicode
// form, accents, case, spacing, full-width forms, punctuation): two names
// the same by the letters and digits of their base letters are one key,
// so that a rival whose name the provider stored as ours counts. (A name cut short is not covered: its order is
// only possibly ours, which no match takes.)
func (c *Client) MatchKey(p providers.Params) string {
	name := p.Str("instanceName")
	if k := alnum(baseName(name)); k != "" {
		return k
	}
	return name
}

// ListedName implements providers.Namer: QueryOrders and OrderDetail show
// an order under its instance name.
func (c *Client) ListedName(p providers.Params) string { return p.Str("instanceName") }

// ListingScope implements providers.ListingScoper: QueryOrders lists the
// whole account's orders.
func (c *Client) ListingScope(providers.Params) string { return "" }

// orderParams returns the order's decoded params: o.Parsed when the caller
// has them, else Params decoded now.
func orderParams(o providers.Order) (providers.Params, error) {
	if o.Parsed != nil {
		return o.Parsed, nil
	}
	return Parse(o.Params)
}
