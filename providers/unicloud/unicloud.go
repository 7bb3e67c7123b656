package unicloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/orderworker/orderworker/providers"
)

// Name is the provider's key.
const Name = "unicloud"

// DefaultEndpoint is the production base URL.
const DefaultEndpoint = "https://api.unicloud.com"

// Paths of the two services under the endpoint.
const (
	NASPath         = "/openapi/nas"
	TransactionPath = "/transaction"
)

// Common parameter values.
const (
	APIVersion       = "2020-07-30"
	SignatureMethod  = "HMAC-SHA1"
	SignatureVersion = "2.0"
	// TimestampLayout is Timestamp's form, always in UTC.
	TimestampLayout = "2006-01-02T15:04:05Z"
	// QueryTimeLayout is QueryOrders' StartTime and EndTime form, in China
	// Standard Time (see ChinaTime).
	QueryTimeLayout = "2006-01-02 15:04:05"
)

// ChinaTime is UTC+8, the zone QueryOrders' zone-less times are read in.
func ChinaTime() *time.Location { return time.FixedZone("UTC+8", 8*60*60) }

// Options configure a Client. Only the credentials are required.
type Options struct {
	// Endpoint is the base URL (scheme://host[:port]). Default
	// DefaultEndpoint.
	Endpoint string
	// AccessKeyID and AccessKeySecret are the OpenAPI credentials.
	AccessKeyID     string
	AccessKeySecret providers.Secret
	// HTTPClient sends requests. Default: a client with no overall timeout
	// (each call is bounded by Timeout). Redirects are never followed (Go
	// would replay a redirected CreateOrder as a GET without its body):
	// the Client uses a copy of the one given whose CheckRedirect refuses
	// them.
	HTTPClient *http.Client
	// CreateOverrun is how long after a CreateOrder request ended the
	// server may still make the order (providers.CreateOverrunner). Zero:
	// the package's CreateOverrun (60 s); negative: none.
	CreateOverrun time.Duration
	// Timeout bounds each HTTP call. The API documents none; its Go SDK
	// uses 60s. Default 30s (a create the server goes on with after it
	// is allowed for: CreateOverrun).
	Timeout time.Duration
	// Now returns the time used for Timestamp and Lookup's window. Default
	// time.Now.
	Now func() time.Time
	// LookupMargin widens QueryOrders' window on both sides, to cover clock
	// skew between us and UniCloud. No UniCloud document states a clock
	// tolerance: 15 minutes is an assumption, the tolerance of the
	// Alibaba-style signing the API mirrors. A provider clock off by more
	// than the margin could put our order outside the searched window.
	// Default 15m.
	LookupMargin time.Duration
	// ProductCategory, when set, is the ProductCategory UniCloud's billing
	// records NAS orders under; Lookup then adopts no listed order with
	// our instance name and another category (it leaves such a lookup to
	// a person). The value is not documented. Default "": the category is
	// not compared.
	ProductCategory string
	// TakeMatched lets Lookup take an order it identified by matching the
	// listing (by instance name: CreateOrder takes no client order
	// number) for ours, paid. Without it such an order is Held: paid, but
	// left pending for a person to confirm, since an order someone else
	// made with the same instance name on the same account (in the
	// console, another system) after our first attempt matches the same
	// way, and taken for ours it would leave ours never created. Set it
	// only when nothing but the workers creates orders on the account.
	// Default false.
	TakeMatched bool
	// StandingStatuses are the OrderStatus values that mean an order
	// stands (UNICLOUD_STANDING_STATUSES). The values are not documented
	// (the request types the field as Integer): with TakeMatched, an
	// order found by matching whose status is a number is taken only if
	// its status is one of these, and Held otherwise, since a number may
	// mean cancelled or failed (a create that failed midway may leave
	// such an order). Default none.
	StandingStatuses []string
	// RecreateUnlisted lets the worker create again an order whose create
	// may have been received when the listing does not show it once the
	// listing lag has passed. Without it such an order is held for a
	// person: what QueryOrders leaves out by default is not documented
	// (it takes an OrderStatus filter whose values are not listed), so it
	// may leave out exactly an order whose create failed midway, and a
	// not-found proves nothing. Set it only once UniCloud confirms that
	// QueryOrders without OrderStatus lists every order. Default false.
	RecreateUnlisted bool
	// PageSize is QueryOrders' Size. Default 100. No maximum is
	// documented: a listing whose first page is refused as a bad parameter
	// asks again with 20 and keeps it for the rest of that listing.
	PageSize int
}

// Lookup's bounds.
const (
	// MaxPages bounds how many QueryOrders pages one Lookup reads.
	MaxPages = 50
	// MaxDetails bounds how many OrderDetail calls one Lookup makes to
	// identify candidates.
	MaxDetails = 100
)

// newHTTPClient returns a client on rt that does not follow redirects (Go
// would replay a redirected CreateOrder as a GET without its body).
func newHTTPClient(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Client is the UniCloud provider. It is safe for concurrent use.
type Client struct {
	endpoint        string
	accessKeyID     string
	accessKeySecret string
	hc              *http.Client
	timeout         time.Duration
	now             func() time.Time
	margin          time.Duration
	productCategory string
	takeMatched     bool
	standing        map[string]bool
	recreate        bool // Options.RecreateUnlisted
	overrun         time.Duration
	pageSize        int
	names           nameCache
	misses          missCache
	nameless        missCache                                      // detailed a moment ago, without names (see misnamed)
	lists           providers.Gather[listKey, window, []orderInfo] // see sharedList
	// pagesFrom1 and pagesFrom0 are set once QueryOrders has shown where
	// its Page starts (see listOrders).
	pagesFrom1, pagesFrom0 atomic.Bool
	// smallPages is set once a listing refused PageSize and was read
	// with fallbackPageSize (see listFrom).
	smallPages atomic.Bool
}

var _ providers.Provider = (*Client)(nil)

// New returns a Client.
func New(opts Options) (*Client, error) {
	if opts.AccessKeyID == "" || opts.AccessKeySecret == "" {
		return nil, errors.New("unicloud: access key id and secret are required")
	}
	c := &Client{
		endpoint:        strings.TrimRight(opts.Endpoint, "/"),
		accessKeyID:     opts.AccessKeyID,
		accessKeySecret: opts.AccessKeySecret.Reveal(),
		hc:              opts.HTTPClient,
		timeout:         opts.Timeout,
		overrun:         opts.CreateOverrun,
		now:             opts.Now,
		margin:          opts.LookupMargin,
		productCategory: opts.ProductCategory,
		takeMatched:     opts.TakeMatched,
		standing:        standingSet(opts.StandingStatuses),
		recreate:        opts.RecreateUnlisted,
		pageSize:        opts.PageSize,
	}
	if c.endpoint == "" {
		c.endpoint = DefaultEndpoint
	}
	if c.hc == nil {
		c.hc = newHTTPClient(providers.NewTransport())
	} else {
		// A caller's client too: a copy that refuses redirects.
		hc := *c.hc
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		c.hc = &hc
	}
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	switch {
	case c.overrun == 0:
		c.overrun = CreateOverrun
	case c.overrun < 0:
		c.overrun = 0
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.margin <= 0 {
		c.margin = 15 * time.Minute
	}
	if c.pageSize <= 0 {
		c.pageSize = 100
	}
	c.lists.Run = c.listShared
	return c, nil
}

// CreateOverrun is how long after a CreateOrder request ended UniCloud
// is assumed to go on making the order (Spec.CreateOverrun). The API
// documents no timeout; its Go SDK waits 60 s for an answer, so the server
// is taken to answer, and so to make the order, within 60 s of the
// request. Counted from the request's end, not its start, it also covers a
// request cut short (a gateway's 502 after a second) whose order the
// server went on making. A server that runs longer than its own SDK waits
// is not allowed for.
const CreateOverrun = 60 * time.Second

// CreateOverrun implements providers.CreateOverrunner (Options.CreateOverrun).
func (c *Client) CreateOverrun() time.Duration { return c.overrun }

// UnlistedNotAbsent implements providers.UnlistedNotAbsent: true unless
// Options.RecreateUnlisted.
func (c *Client) UnlistedNotAbsent() bool { return !c.recreate }

// Name implements providers.Provider.
func (c *Client) Name() string { return Name }

var (
	// codeRE is the shape of ids and codes: region, zone, project, VPC,
	// component, specification, and the enum-like strings. It keeps query
	// values free of spaces and '+'.
	codeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// nameRE is an instance name: printable, no leading or trailing space.
	nameRE = regexp.MustCompile(`^[^\s\pZ\pC](?:[^\pC]*[^\s\pZ\pC])?$`)
	// nameRule is nameRE in words.
	nameRule = "must not start or end with a space, nor hold a control or format character"
)

// Fields are CreateOrder's body fields (docs/providers/unicloud.md,
// "Endpoints and calls").
var Fields = []providers.Field{
	{Name: "azoneId", Kind: providers.String, Required: true, Pattern: codeRE, MaxLen: 64},
	{Name: "componentCode", Kind: providers.String, Required: true, Pattern: codeRE, MaxLen: 64},
	{Name: "dataEncryption", Kind: providers.Int, Required: true, Min: 0, Max: 1},
	{Name: "instanceName", Kind: providers.String, Required: true, Pattern: nameRE, PatternText: nameRule, MaxLen: 64},
	{Name: "orderCategory", Kind: providers.String, Required: true, Pattern: codeRE, MaxLen: 32},
	{Name: "payType", Kind: providers.String, Required: true, Pattern: codeRE, MaxLen: 32},
	{Name: "projectId", Kind: providers.String, Required: true, Pattern: codeRE, MaxLen: 64},
	{Name: "regionId", Kind: providers.String, Required: true, Pattern: codeRE, MaxLen: 64},
	// regionName is in the documented example body ("天津研发-YFB区"),
	// not in the parameter table: optional, a display name, passed
	// through in the body only (which is not signed).
	{Name: "regionName", Kind: providers.String, Pattern: nameRE, PatternText: nameRule, MaxLen: 64},
	{Name: "renewType", Kind: providers.String, Required: true, Pattern: codeRE, MaxLen: 32},
	{Name: "rentCount", Kind: providers.Int, Required: true, Min: 1, Max: 365},
	{Name: "rentUnit", Kind: providers.String, Required: true, Pattern: codeRE, MaxLen: 16},
	{Name: "specificationCode", Kind: providers.String, Required: true, Pattern: codeRE, MaxLen: 64},
	{Name: "unit", Kind: providers.String, Pattern: codeRE, MaxLen: 16},
	{Name: "vpc", Kind: providers.String, Required: true, Pattern: codeRE, MaxLen: 64},
}

const paramsOp = "unicloud params"

// Validate checks CreateOrder params; it needs no client.
func Validate(params json.RawMessage) error {
	_, err := Parse(params)
	return err
}

// Validate implements providers.Provider.
func (c *Client) Validate(params json.RawMessage) error { return Validate(params) }

// stamp is what changes on every attempt.
type stamp struct {
	Timestamp time.Time
	Nonce     string
}

func (c *Client) newStamp() stamp {
	return stamp{Timestamp: c.now(), Nonce: uuid.NewString()}
}

// query returns the signed query string for action: the common parameters,
// Action and extra, RFC 3986 encoded and sorted, then Signature.
func (c *Client) query(method, action string, extra map[string]string, s stamp) string {
	params := make(map[string]string, len(extra)+9)
	for k, v := range extra {
		if v != "" {
			params[k] = v
		}
	}
	params["Action"] = action
	params["Format"] = "json"
	params["Version"] = APIVersion
	params["AccessKeyId"] = c.accessKeyID
	params["SignatureMethod"] = SignatureMethod
	params["SignatureVersion"] = SignatureVersion
	params["Timestamp"] = s.Timestamp.UTC().Format(TimestampLayout)
	params["SignatureNonce"] = s.Nonce
	return CanonicalQuery(params) + "&Signature=" + PercentEncode(Sign(method, params, c.accessKeySecret))
}

// request builds one signed request. body, when not nil, is sent as JSON
// and is not signed.
func (c *Client) request(ctx context.Context, method, path, action string, extra map[string]string, body []byte, s stamp) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint+path+"?"+c.query(method, action, extra, s), rd)
	if err != nil {
		// Not err's text: it holds the URL, and with it the AccessKeyId.
		return nil, &providers.Error{Code: providers.FailedPrecondition, Op: Name + " " + action, Message: "bad endpoint"}
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	}
	return req, nil
}

// queryTries is how many times a read-only call (QueryOrders, OrderDetail)
// is tried when it fails transiently: one lookup makes many of them, and
// without a retry per call a single throttled page fails the whole lookup.
const queryTries = 3

// call signs and sends one action with a fresh stamp and classifies the
// answer. Read-only calls are retried on throttling or unavailability;
// CreateOrder never is (the handler decides, after a lookup).
func (c *Client) call(ctx context.Context, method, path, action string, extra map[string]string, body []byte, create bool) (Response, int, error) {
	for try := 1; ; try++ {
		r, status, err := c.callOnce(ctx, method, path, action, extra, body, create)
		code := providers.CodeOf(err)
		if create || try == queryTries || (code != providers.Unavailable && code != providers.RateLimited) {
			return r, status, err
		}
		d := min(max(providers.RetryAfterOf(err), time.Duration(try)*200*time.Millisecond), 2*time.Second)
		select {
		case <-ctx.Done():
			return r, status, err
		case <-time.After(d):
		}
	}
}

func (c *Client) callOnce(ctx context.Context, method, path, action string, extra map[string]string, body []byte, create bool) (Response, int, error) {
	op := Name + " " + action
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := c.request(ctx, method, path, action, extra, body, c.newStamp())
	if err != nil {
		return Response{}, 0, err
	}
	resp, err := providers.Send(ctx, c.hc, req, op, create)
	if err != nil {
		return Response{}, 0, err
	}
	sig := req.URL.Query().Get("Signature")
	r, err := c.classify(op, create, resp, sig)
	// The message goes on into callers' errors (a listing's refusal):
	// without the signature a provider may have echoed.
	r.Message = providers.Redact(r.Message, sig)
	return r, resp.StatusCode, err
}

// Submit implements providers.Provider with CreateOrder. The order's
// params are the JSON body; regionId also goes into the query.
func (c *Client) Submit(ctx context.Context, o providers.Order) (providers.Result, error) {
	p, err := orderParams(o)
	if err != nil {
		return providers.Result{}, err
	}
	body, err := json.Marshal(map[string]any(p))
	if err != nil {
		return providers.Result{}, &providers.Error{Code: providers.InvalidArgument, Op: Name + " CreateOrder", Message: "cannot encode request"}
	}
	r, status, err := c.call(ctx, http.MethodPost, NASPath, "CreateOrder", map[string]string{"regionId": p.Str("regionId")}, body, true)
	if err != nil {
		// An answer that named an order but is not a success (a non-2xx,
		// Auth false) is Ambiguous; the id it named is kept in the result
		// for a caller that can look it up by id.
		if r.OrderID != "" {
			return providers.Result{ProviderOrderID: r.OrderID, HTTPStatus: status}, err
		}
		return providers.Result{}, err
	}
	if r.Status == nil || !*r.Status || r.OrderID == "" {
		// Not a refusal, yet not the documented success: the order may
		// exist.
		msg := "answer without Status true and an OrderId"
		if r.OrderID != "" {
			msg = "answer with OrderId " + r.OrderID + " but without Status true"
		}
		return providers.Result{ProviderOrderID: r.OrderID, HTTPStatus: status}, &providers.Error{Code: providers.Ambiguous, Op: Name + " CreateOrder", HTTPStatus: status,
			ProviderCode: c.cleanCode(r.Code), Message: c.clean(msg, 200)}
	}
	msg := "created"
	if len(r.IDs) > 0 {
		msg += " " + strings.Join(r.IDs, ",")
	}
	return providers.Result{Status: providers.StatusPaid, ProviderOrderID: r.OrderID, HTTPStatus: status,
		Code: c.cleanCode(r.Code), Message: c.clean(msg, 200)}, nil
}

// Target implements providers.Targeter: the endpoint and the account's key.
func (c *Client) Target() string {
	return strings.TrimRight(c.endpoint, "/") + " " + c.accessKeyID
}
