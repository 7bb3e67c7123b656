package aliyun

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/orderworker/orderworker/providers"
)

// Name is the provider's key.
const Name = "aliyun"

// DefaultEndpoint is the production gateway (region cn-shanghai).
const DefaultEndpoint = "https://api.link.aliyun.com"

// API paths under the endpoint.
const (
	PathToken  = "/cloud/token"
	PathCreate = "/vision/customer/streaming/order/create"
	PathPay    = "/vision/customer/streaming/order/pay"
	PathGet    = "/vision/customer/streaming/order/get"
	PathQuery  = "/vision/customer/streaming/order/query"
)

// APIVersion is the apiVer of every call this client makes.
const APIVersion = "1.0.0"

// The documented timeouts (超时时间): the gateway's own wait for the
// backend, as read here (the documents do not say), not a bound on the
// client's round trip.
const (
	DocumentedCreateTimeout = 3000 * time.Millisecond
	DocumentedPayTimeout    = 10000 * time.Millisecond
)

// The defaults of Options. A create or pay timeout is the documented one
// plus a margin for the way to and from the gateway (connection, TLS, the
// network): a call the backend finishes just within its documented time
// must not time out here, where it would be Ambiguous, looked up, and left
// to a person if the lookup cannot single it out. A cloudToken fetched
// first is bounded on its own (Timeout).
const (
	DefaultCreateTimeout = DocumentedCreateTimeout + 5*time.Second
	DefaultPayTimeout    = DocumentedPayTimeout + 5*time.Second
	DefaultTimeout       = 10 * time.Second
	DefaultPollInterval  = 5 * time.Second
	DefaultMatchMargin   = time.Minute
	DefaultPageSize      = 20
	DefaultMaxPages      = 50
)

// Options configure a Client. The credentials and ProjectID are required.
type Options struct {
	// Endpoint is the gateway base URL (scheme://host[:port]). Default
	// DefaultEndpoint.
	Endpoint string
	// AppKey and AppSecret are the project's cloud-API credentials
	// (项目设置 → 数据同步 → 云端接口调用), not the app-side keys.
	AppKey    string
	AppSecret providers.Secret
	// ProjectID is the project the cloudToken is issued for (the "res" of
	// /cloud/token).
	ProjectID string
	// Tokens holds the cloudToken. Use a RedisTokenStore whenever more than
	// one process submits with the same credentials: asking for a new
	// token invalidates the previous one for everybody. Default: a
	// MemoryTokenStore private to this Client.
	Tokens TokenStore
	// Stage, when set, is sent as X-Ca-Stage (TEST, PRE or RELEASE); the
	// gateway's default is RELEASE.
	Stage string
	// HTTPClient sends requests. Default: a client with no overall timeout
	// (each call is bounded by the timeouts below). Redirects are never
	// followed: the Client uses a copy of the one given whose
	// CheckRedirect refuses them (see refuseRedirect), and reads a 3xx as
	// it is.
	HTTPClient *http.Client
	// CreateTimeout bounds one order/create request. Default 8 s: the
	// API's documented timeout (3000 ms, the gateway's wait for the
	// backend) plus 5 s for the round trip.
	CreateTimeout time.Duration
	// PayTimeout bounds one order/pay request. Default 15 s: the API's
	// documented timeout (10000 ms) plus 5 s for the round trip.
	PayTimeout time.Duration
	// Timeout bounds every other request (cloud/token, order/get,
	// order/query). Default 10s.
	Timeout time.Duration
	// AutoPay lets this client pay: Submit and Lookup report an unpaid
	// order pending with Result.Payable set, and Pay pays it (order/pay).
	// Lookup itself never pays. Default false: paying spends money, so it
	// is opted into; without it an unpaid order stays pending until it is
	// paid some other way, and Pay refuses.
	AutoPay bool
	// PayMatched lets an AutoPay client pay an order it identified by
	// matching the device's listing (Result.Matched, Order.Matched)
	// rather than by the orderId its own create returned, and any client
	// record such an order as found: the operator says a match can only
	// be ours (the vendor's backend is the devices' only buyer). order/create
	// takes no client order number: an order the device's user bought in
	// the app meanwhile, with the same commodityCode and copies, while our
	// create failed, matches just as ours would, and paying it pays a
	// stranger's order while ours was never made. Default false: such an
	// order is reported Held, and never Payable (checked as an unpaid
	// order this client will not pay), for a person to confirm and pay;
	// found paid, it is reported paid and Held (this client did not pay
	// it, so someone else did), for a person to confirm it is ours. So
	// without AutoPay too: the device's user pays every order then, and
	// one they bought and paid for themselves while our create made
	// nothing matches just as ours, paid by them, would.
	PayMatched bool
	// RecreateUnlisted lets the worker create again an order whose create
	// may have been received (an answer of unknown effect, a worker killed
	// mid-create) when order/query does not show it once the listing lag
	// has passed. Without it such an order is held for a person: which
	// orders order/query lists is not documented (its path and params come
	// from a third-party client), and one that lists only paid orders, or
	// leaves out orders in a state only a create that failed midway
	// leaves, would have every such order made twice; the check that a
	// listing shows our own known orders (Order.Listed) catches that only
	// where the device has an unpaid order of ours with a known id. Set it
	// only once Aliyun confirms that order/query lists every order of the
	// device, unpaid ones included. Default false.
	RecreateUnlisted bool
	// PollInterval is the NextCheck hint for a Payable order. An unpaid
	// order that this client will not pay is checked ten times less
	// often; an order being paid, or in a payment status not known, gets
	// no hint (the worker's backoff). Default 5s.
	PollInterval time.Duration
	// MatchMargin applies to a Lookup without a provider order id and
	// without a snapshot (Order.Known nil): it then takes only orders
	// created from FirstAttempt-MatchMargin on, to absorb clock skew.
	// Default 1 minute.
	MatchMargin time.Duration
	// PageSize and MaxPages bound order/query paging, in Prepare and in
	// Lookup: a device with more than PageSize × MaxPages orders cannot
	// be listed in full. Defaults 20 and 50.
	PageSize, MaxPages int
	// PageBase is where order/query's pageNo starts (ALIYUN_PAGE_BASE):
	// PageBaseFrom0 or PageBaseFrom1 reads pages from there and never
	// probes page 0; PageBaseAuto (or "") judges it from what the server
	// answers (see the package doc). Set it for a server whose listing
	// cannot be judged: page 0 failing (other than refused as a parameter
	// error), or a page served again. Default auto.
	PageBase PageBase
	// Logger receives diagnostics (token refreshes, the gateway's
	// StringToSign on a signature mismatch), never a credential, token or
	// personal data. Default: discard.
	Logger *slog.Logger
	// Now returns the time used for X-Ca-Timestamp and order matching.
	// Default time.Now.
	Now func() time.Time
	// NewNonce returns each request's X-Ca-Nonce. Default uuid.NewString.
	NewNonce func() string
}

// PageBase is where order/query's pageNo starts, which is not documented.
type PageBase string

// The values of Options.PageBase and ALIYUN_PAGE_BASE.
const (
	// PageBaseAuto: judged from the server's answers (page 0 is read
	// until the server has shown where it counts from).
	PageBaseAuto PageBase = "auto"
	// PageBaseFrom0: pages are read from 0.
	PageBaseFrom0 PageBase = "0"
	// PageBaseFrom1: pages are read from 1.
	PageBaseFrom1 PageBase = "1"
)

// ParsePageBase reads a page base: auto, 0 or 1 ("" is auto).
func ParsePageBase(v string) (PageBase, error) {
	switch b := PageBase(strings.TrimSpace(v)); b {
	case "", PageBaseAuto:
		return PageBaseAuto, nil
	case PageBaseFrom0, PageBaseFrom1:
		return b, nil
	}
	return "", errors.New("aliyun: page base: want auto, 0 or 1")
}

// Client is the Aliyun provider. It is safe for concurrent use.
type Client struct {
	endpoint      string
	appKey        string
	appSecret     string
	projectID     string
	tokenKey      string
	tokens        TokenStore
	stage         string
	hc            *http.Client
	createTimeout time.Duration
	payTimeout    time.Duration
	timeout       time.Duration
	autoPay       bool
	payMatched    bool
	recreate      bool // Options.RecreateUnlisted
	poll          time.Duration
	margin        time.Duration
	pageSize      int
	maxPages      int
	pageBase      PageBase
	log           *slog.Logger
	now           func() time.Time
	nonce         func() string
	// pagesFrom1 and pagesFrom0 are set once order/query has shown where
	// its pageNo starts (see list).
	pagesFrom1, pagesFrom0 atomic.Bool
	// devices remembers which device the order ids seen were for;
	// unfiltered is set once order/query has listed one device's orders
	// for another without naming their device (see deviceOf).
	devices    deviceOf
	unfiltered atomic.Bool
}

var (
	_ providers.Provider  = (*Client)(nil)
	_ providers.Sensitive = (*Client)(nil)
	_ providers.Preparer  = (*Client)(nil)
	_ providers.Payer     = (*Client)(nil)
)

// New returns a Client.
func New(opts Options) (*Client, error) {
	if opts.AppKey == "" || opts.AppSecret == "" {
		return nil, errors.New("aliyun: app key and app secret are required")
	}
	if opts.ProjectID == "" {
		return nil, errors.New("aliyun: project id is required")
	}
	base, err := ParsePageBase(string(opts.PageBase))
	if err != nil {
		return nil, err
	}
	c := &Client{
		endpoint:      strings.TrimRight(opts.Endpoint, "/"),
		appKey:        opts.AppKey,
		appSecret:     opts.AppSecret.Reveal(),
		projectID:     opts.ProjectID,
		tokens:        opts.Tokens,
		stage:         opts.Stage,
		hc:            opts.HTTPClient,
		createTimeout: opts.CreateTimeout,
		payTimeout:    opts.PayTimeout,
		timeout:       opts.Timeout,
		autoPay:       opts.AutoPay,
		payMatched:    opts.PayMatched,
		recreate:      opts.RecreateUnlisted,
		poll:          opts.PollInterval,
		margin:        opts.MatchMargin,
		pageSize:      opts.PageSize,
		maxPages:      opts.MaxPages,
		pageBase:      base,
		log:           opts.Logger,
		now:           opts.Now,
		nonce:         opts.NewNonce,
	}
	if c.endpoint == "" {
		c.endpoint = DefaultEndpoint
	}
	if c.tokens == nil {
		c.tokens = NewMemoryTokenStore(nil)
	}
	if c.hc == nil {
		c.hc = newHTTPClient(providers.NewTransport())
	} else {
		hc := *c.hc
		hc.CheckRedirect = refuseRedirect
		c.hc = &hc
	}
	if c.createTimeout <= 0 {
		c.createTimeout = DefaultCreateTimeout
	}
	if c.payTimeout <= 0 {
		c.payTimeout = DefaultPayTimeout
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.poll <= 0 {
		c.poll = DefaultPollInterval
	}
	if c.margin <= 0 {
		c.margin = DefaultMatchMargin
	}
	if c.pageSize <= 0 {
		c.pageSize = DefaultPageSize
	}
	if c.maxPages <= 0 {
		c.maxPages = DefaultMaxPages
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.nonce == nil {
		c.nonce = uuid.NewString
	}
	c.tokenKey = TokenKey(c.appKey, c.projectID)
	return c, nil
}

// newHTTPClient returns a client on rt that does not follow redirects.
func newHTTPClient(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, CheckRedirect: refuseRedirect}
}

// refuseRedirect is the clients' CheckRedirect: no redirect is followed,
// and the 3xx itself is the answer (see classify). Go's default would send
// a call answered 307 or 308 again, signed headers, AppKey, cloudToken and
// params (userName included) with it, to whatever host the Location
// names, over http:// too; for a create, that second create is one the
// order's state never records.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// TokenKey is the name under which a TokenStore keeps the cloudToken of
// projectID as issued to appKey: the project id and a short hash of the
// AppKey, so the AppKey itself never appears in Redis key names.
func TokenKey(appKey, projectID string) string {
	sum := sha256.Sum256([]byte(appKey))
	return projectID + ":" + hex.EncodeToString(sum[:6])
}

// Name implements providers.Provider.
func (c *Client) Name() string { return Name }

// UnlistedNotAbsent implements providers.UnlistedNotAbsent: true unless
// Options.RecreateUnlisted.
func (c *Client) UnlistedNotAbsent() bool { return !c.recreate }

// SensitiveParams implements providers.Sensitive: userName and userId
// (see sensitiveParams).
func (c *Client) SensitiveParams() []string { return sensitiveParams() }

var (
	iotIDRE     = regexp.MustCompile(`^[A-Za-z0-9_.*=+/-]+$`)
	commodityRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// Fields are the params of order/create, in the documented order.
var Fields = []providers.Field{
	{Name: "iotId", Kind: providers.String, Required: true, Pattern: iotIDRE, MaxLen: 64},
	{Name: "commodityCode", Kind: providers.String, Required: true, Pattern: commodityRE, MaxLen: 64},
	{Name: "copies", Kind: providers.Int, Required: true, Min: 1, Max: 60},
	{Name: "userName", Kind: providers.String, MaxLen: 128},
	{Name: "userId", Kind: providers.String, MaxLen: 128},
	{Name: "immediateUse", Kind: providers.Bool},
}

const paramsOp = "aliyun params"

// Validate implements providers.Provider.
func (c *Client) Validate(params json.RawMessage) error { return Validate(params) }

// CreateParams are order/create's params, in the documented order.
type CreateParams struct {
	IotID         string `json:"iotId"`
	CommodityCode string `json:"commodityCode"`
	Copies        int64  `json:"copies"`
	UserName      string `json:"userName,omitempty"`
	UserID        string `json:"userId,omitempty"`
	ImmediateUse  *bool  `json:"immediateUse,omitempty"`
}

// ParseCreateParams validates raw and returns it as CreateParams.
func ParseCreateParams(raw json.RawMessage) (CreateParams, error) {
	p, err := Parse(raw)
	if err != nil {
		return CreateParams{}, err
	}
	return createParams(p), nil
}

// createParams reads decoded params as CreateParams.
func createParams(p providers.Params) CreateParams {
	cp := CreateParams{
		IotID:         p.Str("iotId"),
		CommodityCode: p.Str("commodityCode"),
		Copies:        p.Int("copies"),
		UserName:      p.Str("userName"),
		UserID:        p.Str("userId"),
	}
	if v, ok := p.Bool("immediateUse"); ok {
		cp.ImmediateUse = &v
	}
	return cp
}

// orderRef are the params of order/pay and order/get.
type orderRef struct {
	IotID   string `json:"iotId"`
	OrderID string `json:"orderId"`
}

type pageParams struct {
	IotID    string `json:"iotId"`
	PageNo   int    `json:"pageNo"`
	PageSize int    `json:"pageSize"`
}

type tokenParams struct {
	GrantType string `json:"grantType"`
	Res       string `json:"res"`
}

// Envelope is the JSON body of every cloud API call. The cloudToken goes
// in Request, never in Params.
type Envelope struct {
	ID      string      `json:"id"`
	Version string      `json:"version"`
	Request RequestInfo `json:"request"`
	Params  any         `json:"params"`
}

// RequestInfo is the envelope's "request" object.
type RequestInfo struct {
	APIVer     string `json:"apiVer"`
	CloudToken string `json:"cloudToken,omitempty"`
}

// NewEnvelope returns the body of one call: id, version "1.0", apiVer
// 1.0.0 and the cloudToken (none for /cloud/token itself).
func NewEnvelope(id, cloudToken string, params any) Envelope {
	return Envelope{ID: id, Version: "1.0", Request: RequestInfo{APIVer: APIVersion, CloudToken: cloudToken}, Params: params}
}

// Submit implements providers.Provider with order/create.
func (c *Client) Submit(ctx context.Context, o providers.Order) (providers.Result, error) {
	p, err := orderParams(o)
	if err != nil {
		return providers.Result{}, err
	}
	a, err := c.call(ctx, PathCreate, p, callOpts{acts: true, timeout: c.createTimeout, personal: p.UserName, userID: p.UserID})
	if err != nil {
		return providers.Result{}, err
	}
	// The orderId is read first and kept whatever else fails to read: an
	// answer naming an order is an order created (its payment status, if
	// unreadable, is unknown: pending).
	info, err := ParseCreated(a.data)
	if err != nil {
		// The platform said 200 but we cannot tell which order it made.
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: opName(PathCreate),
			HTTPStatus: a.status, ProviderCode: "200", Message: "no orderId in the answer"}
	}
	c.devices.note(info.OrderID, p.IotID)
	return c.result(a, info, "created", false), nil
}

// result reports info's payment status. paymentStatus 1 is paid; anything
// else (0 unpaid, 2 paying, or a value we do not know) is pending. An
// unpaid order is Payable when this client may pay it (Options.AutoPay,
// and Options.PayMatched for an order identified by matching: matched)
// and its status says it is valid (0, or not given).
//
// Held: an order this client will not settle without a person. A matched
// order is held without PayMatched (without AutoPay only when found paid:
// the device's user may have bought and paid an order of their own that
// matches as ours, paid by them, would): unpaid, it is not paid; being paid, it may be a
// person paying it in the console; paid, this client did not pay it (it
// never pays such an order), so someone else did, perhaps the device's
// user for an order of their own that matches just as ours would. That
// one is reported paid and Held, and the worker does not record it paid
// until a person has confirmed it is ours. An unpaid order this client
// would pay whose status is anything but 0 (1 expired, 2 frozen, 3 or any
// other value, or one that cannot be read) is held too, never paid: what
// paying it does is not documented (it may buy nothing).
//
// NextCheck is PollInterval for a Payable order, ten times that for an
// unpaid order this client will not pay, and 0 otherwise: an order being
// paid, or in a payment status we do not know, may stay so for hours, and
// is checked as the worker's backoff says (doubling up to a minute), not
// every PollInterval.
func (c *Client) result(a answer, info OrderInfo, what string, matched bool) providers.Result {
	r := providers.Result{ProviderOrderID: info.OrderID, HTTPStatus: a.status, Code: "200", Matched: matched}
	// Without AutoPay only one found paid: an unpaid one is neither paid
	// nor recorded paid here, and a stranger's, errored at the pending
	// window, stands for nothing of ours.
	held := matched && !c.payMatched && (c.autoPay || info.PaymentStatus == PaymentPaid)
	switch info.PaymentStatus {
	case PaymentPaid:
		r.Status = providers.StatusPaid
		r.Message = what + ", paid"
		switch {
		case held && c.autoPay:
			r.Message += "; found by matching the device's orders, and this worker did not pay it (ALIYUN_PAY_MATCHED): perhaps someone else's order; a person confirms it is ours"
		case held:
			r.Message += "; found by matching the device's orders, not by our create's answer (ALIYUN_PAY_MATCHED): perhaps an order the device's user bought and paid for themselves; a person confirms it is ours"
		}
	case PaymentPaying:
		r.Status = providers.StatusPending
		r.Message = what + ", paying"
	case PaymentUnpaid:
		r.Status = providers.StatusPending
		r.Message = what + ", unpaid"
		r.Unpaid = true
		payer := c.autoPay && (!matched || c.payMatched)
		switch {
		case payer && !validStatus(info):
			r.Held = true
			r.Message += "; order " + describeStatus(info) + ": not paid automatically, a person decides"
		case payer:
			r.Payable = true
		}
		r.NextCheck = c.poll
		if !r.Payable {
			r.NextCheck = 10 * c.poll
		}
	default:
		r.Status = providers.StatusPending
		r.Message = what + ", payment status unknown"
	}
	if held {
		r.Held = true
		switch {
		case r.Status != providers.StatusPending:
		case c.autoPay:
			r.Message += "; identified by matching the device's orders, not by our create's answer: not paid automatically (ALIYUN_PAY_MATCHED), a person confirms and pays it"
		default:
			r.Message += "; identified by matching the device's orders, not by our create's answer (ALIYUN_PAY_MATCHED): a person confirms it is ours"
		}
	}
	return r
}

// validStatus reports whether an order's status lets this client pay it:
// 0 (valid), or none given. An expired (1) or frozen (2) order, one in a
// status the documents do not give (3, "creating", is seen on the
// cloud-storage counterpart) or one whose status cannot be read is never
// paid automatically.
func validStatus(info OrderInfo) bool { return !info.StatusGiven || info.Status == 0 }

// describeStatus names an order's status for a message.
func describeStatus(info OrderInfo) string {
	switch {
	case !info.StatusGiven:
		return "status not given"
	case info.Status == OrderStatusUnreadable:
		return "status unreadable"
	case info.Status == 1:
		return "status 1 (expired)"
	case info.Status == 2:
		return "status 2 (frozen)"
	}
	return fmt.Sprintf("status %d (not documented)", info.Status)
}

// Lookup implements providers.Provider. With o.ProviderOrderID it reads the
// order with order/get; without it, it searches the device's orders with
// order/query (see find and the package doc for the rules). It only reads:
// an unpaid order is reported pending, Payable when Options.AutoPay is set.
func (c *Client) Lookup(ctx context.Context, o providers.Order) (providers.Result, error) {
	p, err := orderParams(o)
	if err != nil {
		return providers.Result{}, err
	}
	var a answer
	var info OrderInfo
	matched := o.Matched
	// An id is read without space around it; one recorded with it (by a
	// version that kept it so) is the same order.
	o.ProviderOrderID = strings.TrimSpace(o.ProviderOrderID)
	if o.ProviderOrderID != "" {
		a, err = c.call(ctx, PathGet, orderRef{IotID: p.IotID, OrderID: o.ProviderOrderID}, callOpts{timeout: c.timeout, personal: p.UserName, userID: p.UserID})
		if err != nil {
			return providers.Result{}, err
		}
		info, err = ParseOrder(a.data)
		if err != nil {
			// Answered, with nothing to read of this one order (no data:
			// an order the platform no longer shows, say): no news of the
			// provider's health. Counted as failing, a few such orders,
			// polled on, kept the circuit breaker open for every order.
			return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: opName(PathGet),
				HTTPStatus: a.status, ProviderCode: "200", Message: "malformed order", Err: providers.ErrNoNews}
		}
		switch info.OrderID {
		case "":
			info.OrderID = o.ProviderOrderID
		case o.ProviderOrderID:
		default:
			// Its payment status is another order's: taken for ours,
			// it could record ours paid.
			return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: opName(PathGet),
				HTTPStatus: a.status, ProviderCode: "200", Message: "order/get answered for another order", Err: providers.ErrNoNews}
		}
	} else {
		a, info, err = c.find(ctx, o, p)
		if err != nil {
			return providers.Result{}, err
		}
		matched = true
	}
	return c.result(a, info, "found", matched), nil
}

// Pay implements providers.Payer with order/pay on o.ProviderOrderID, and
// reports the order's status from pay's answer (usually paying, pending
// with NextCheck = PollInterval; Lookup then sees it paid). Its result is
// never Payable: the worker records the pay as sent before it leaves, and
// pays again only when a check a listing lag later still finds the order
// unpaid, or after a pay refused before the platform acted (RateLimited,
// only the gateway's own throttle; Unauthenticated).
//
// Pay is the only call that moves money. It refuses (FailedPrecondition)
// unless Options.AutoPay is set (and Options.PayMatched for an order
// identified by matching, Order.Matched), and needs the provider order id. A
// failure after the request was sent whose effect is unknown (timeout, 5xx)
// is Ambiguous: the order is looked up, and never paid again.
func (c *Client) Pay(ctx context.Context, o providers.Order) (providers.Result, error) {
	op := opName(PathPay)
	o.ProviderOrderID = strings.TrimSpace(o.ProviderOrderID)
	switch {
	case !c.autoPay:
		return providers.Result{}, &providers.Error{Code: providers.FailedPrecondition, Op: op, Message: "paying is not enabled (AutoPay)"}
	case o.ProviderOrderID == "":
		return providers.Result{}, &providers.Error{Code: providers.FailedPrecondition, Op: op, Message: "no provider order id to pay"}
	case o.Matched && !c.payMatched:
		return providers.Result{}, &providers.Error{Code: providers.FailedPrecondition, Op: op,
			Message: "the order was identified by matching the device's orders, not by our create's answer: paying it is not enabled (PayMatched)"}
	}
	p, err := orderParams(o)
	if err != nil {
		return providers.Result{}, err
	}
	a, err := c.call(ctx, PathPay, orderRef{IotID: p.IotID, OrderID: o.ProviderOrderID}, callOpts{acts: true, timeout: c.payTimeout, personal: p.UserName, userID: p.UserID})
	if err != nil {
		return providers.Result{}, err
	}
	paid, perr := ParseOrder(a.data)
	if perr != nil || (paid.OrderID != "" && paid.OrderID != o.ProviderOrderID) {
		// Pay answered 200 but its data is unreadable, or names another
		// order whose status says nothing about ours: look again later.
		paid = OrderInfo{PaymentStatus: PaymentUnknown}
	}
	paid.OrderID = o.ProviderOrderID
	r := c.result(a, paid, "pay requested", o.Matched)
	r.Payable = false
	return r, nil
}

// answer is a successful call's data.
type answer struct {
	status int
	data   json.RawMessage
}

type callOpts struct {
	acts     bool // create or pay: a failure of unknown effect is Ambiguous
	timeout  time.Duration
	personal string // personal data that might be echoed (userName)
	userID   string // the order's userId: a login name or an e-mail address, perhaps
}

// opName names a call in errors: "aliyun order/create", "aliyun cloud/token".
func opName(path string) string {
	if rest, ok := strings.CutPrefix(path, "/vision/customer/streaming/"); ok {
		return "aliyun " + rest
	}
	return "aliyun " + strings.TrimPrefix(path, "/")
}

// call sends one business call with the current cloudToken. When the
// platform answers that the token is not accepted (code 401), it
// invalidates that token, if it is still the current one, and tries once
// more with a fresh one: the request was refused, so nothing was created.
func (c *Client) call(ctx context.Context, path string, params any, co callOpts) (answer, error) {
	tok, err := c.token(ctx)
	if err != nil {
		return answer{}, err
	}
	a, err := c.send(ctx, path, params, tok, co)
	if !isTokenError(err) {
		return a, err
	}
	c.log.Info("aliyun cloudToken refused; refreshing", "api", path)
	ierr := c.tokens.Invalidate(ctx, c.tokenKey, tok)
	if ierr != nil {
		c.log.Warn("aliyun token store: invalidate failed", "err", ierr)
	}
	fresh, err := c.token(ctx)
	if err != nil {
		return answer{}, err
	}
	if fresh == tok {
		// The store could not drop the refused token (Redis down?): a
		// retry would be refused again and look permanent.
		e := &providers.Error{Code: providers.Unavailable, Op: opName(path), ProviderCode: "401",
			Message: "cloudToken refused and not yet replaced"}
		if ierr != nil {
			// What failed is this worker's own store, not the platform,
			// which answered: no news of its health, which the circuit
			// breaker must not count (a blip of the store's Redis would
			// open Aliyun's breaker, and hold its orders back for the
			// cool-down once Redis is back).
			e.Err = providers.Local(ierr)
		}
		return answer{}, e
	}
	return c.send(ctx, path, params, fresh, co)
}

// isTokenError reports whether err is the platform refusing the request's
// identity (code 401 in the body) rather than the gateway refusing its
// signature (which comes with X-Ca-Error-Message).
func isTokenError(err error) bool {
	var pe *providers.Error
	return errors.As(err, &pe) && pe.Code == providers.Unauthenticated && pe.ProviderCode == "401"
}

// token returns the current cloudToken, fetching one if needed.
func (c *Client) token(ctx context.Context) (providers.Secret, error) {
	tok, err := c.tokens.Get(ctx, c.tokenKey, c.fetchToken)
	if err != nil {
		var pe *providers.Error
		if errors.As(err, &pe) {
			return "", err // from /cloud/token itself
		}
		// Redis, or ctx while waiting for another process's refresh:
		// the order call was not sent.
		return "", &providers.Error{Code: providers.Unavailable, Op: "aliyun token store", Message: "cannot get a cloudToken", Err: providers.Local(err)}
	}
	return tok, nil
}

// fetchToken asks /cloud/token for a new token. Each success invalidates
// the project's previous token, for every process using it.
func (c *Client) fetchToken(ctx context.Context) (Token, error) {
	start := c.now()
	a, err := c.send(ctx, PathToken, tokenParams{GrantType: "project", Res: c.projectID}, "", callOpts{timeout: c.timeout})
	if err != nil {
		return Token{}, tokenRefused(err)
	}
	tok, err := ParseToken(a.data)
	if err != nil {
		return Token{}, &providers.Error{Code: providers.Unavailable, Op: opName(PathToken), HTTPStatus: a.status,
			ProviderCode: "200", Message: err.Error()}
	}
	tok.ExpiresAt = start.Add(tok.TTL)
	c.log.Info("aliyun cloudToken issued", "project", c.projectID, "ttl", tok.TTL)
	return tok, nil
}

// tokenRefused makes a /cloud/token refusal Unauthenticated: whatever the
// platform or gateway said (a parameter error, forbidden, quota, a bad
// signature), refusing the token is a problem of the configuration (the
// credentials, the project id, the account), not of the order, and no
// order call was sent. Failures that refuse nothing (a 5xx, a timeout, an
// undocumented answer: Unavailable) and throttling keep their codes.
func tokenRefused(err error) error {
	var pe *providers.Error
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case providers.Unauthenticated, providers.InvalidArgument, providers.PermissionDenied,
		providers.FailedPrecondition, providers.NotFound:
	default:
		return err
	}
	e := *pe
	e.Code = providers.Unauthenticated
	e.Message = "cloud/token refused (check the AppKey, AppSecret and project id)"
	if e.Err != nil {
		// The clock or the account, which its cause names.
		e.Message = "cloud/token refused"
	}
	if pe.Message != "" {
		e.Message += ": " + pe.Message
	}
	return &e
}

// send signs (now, with a fresh timestamp and nonce) and sends one call,
// then classifies the answer.
func (c *Client) send(ctx context.Context, path string, params any, tok providers.Secret, co callOpts) (answer, error) {
	op := opName(path)
	body, err := json.Marshal(NewEnvelope(uuid.NewString(), tok.Reveal(), params))
	if err != nil {
		return answer{}, &providers.Error{Code: providers.InvalidArgument, Op: op, Message: "cannot encode request"}
	}
	ctx, cancel := context.WithTimeout(ctx, co.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+path, bytes.NewReader(body))
	if err != nil {
		return answer{}, &providers.Error{Code: providers.FailedPrecondition, Op: op, Message: "bad endpoint"}
	}
	req.Header.Set("Accept", Accept)
	req.Header.Set("Content-Type", ContentType)
	if c.stage != "" {
		req.Header.Set(HeaderStage, c.stage)
	}
	sts := SignRequest(req, body, c.appKey, c.appSecret, c.now(), c.nonce())
	resp, err := providers.Send(ctx, c.hc, req, op, co.acts)
	if err != nil {
		return answer{}, err
	}
	// The request's signature too, should the gateway echo it: with the
	// signed string, it is a known answer to try guesses of the secret
	// against.
	secrets := []string{c.appKey, c.appSecret, tok.Reveal(), co.personal, co.userID, req.Header.Get(HeaderSignature)}
	a, err := classify(op, co.acts, resp, secrets)
	var pe *providers.Error
	if errors.As(err, &pe) && (providers.MayHoldName(pe.Message, co.personal) || providers.MayHoldIDPart(pe.Message, co.userID)) {
		// Redact hid the user's name as the order gives it; the provider
		// may echo it rewritten (spaced, reordered, cut, full-width): the
		// message is withheld whole.
		pe.Message = withheldMessage
	}
	if pe != nil && (providers.MayHoldID(pe.ProviderCode, co.personal) || providers.MayHoldID(pe.ProviderCode, co.userID)) {
		// The gateway's error code is a header a proxy or gateway may
		// fill from the request: withheld when it holds the user's name
		// or id whole (not word by word, as a message is judged: a code
		// such as InvalidParameter would hold the "Ali" of a name).
		pe.ProviderCode = withheldCode
	}
	if err != nil && strings.HasPrefix(resp.Header.Get(HeaderErrorMessage), "Invalid Signature") {
		server := providers.Redact(resp.Header.Get(HeaderErrorMessage), secrets...)
		if providers.MayHoldName(server, co.personal) || providers.MayHoldIDPart(server, co.userID) {
			server = withheldMessage
		}
		c.log.Warn("aliyun gateway signature mismatch",
			"server", server,
			"client", providers.Redact(strings.ReplaceAll(sts, "\n", ""), secrets...))
	}
	return a, err
}

// withheldCode replaces a provider's error code that may hold the order's
// user name or id.
const withheldCode = "(withheld)"

// withheldMessage replaces a provider's message that may hold the order's
// user name (providers.MayHoldName) or its user id (providers.MayHoldID).
const withheldMessage = "(the provider's message is withheld: it may hold the order's user name or id)"

// Target implements providers.Targeter: the endpoint and the account's key.
func (c *Client) Target() string {
	return strings.TrimRight(c.endpoint, "/") + " " + c.appKey + " " + c.projectID
}
