// Package memprov is an in-memory provider: a Backend that holds orders
// and a client that implements providers.Provider against it, with the
// same fault injection as the HTTP sandboxes. It passes the providertest
// conformance suite, so tests of the layers above (the handler, the state
// machine's shell) run without HTTP where HTTP is not the point.
//
// Its params are {"item": string, "qty": integer 1..100}. Orders are found
// by order number, like Tencent's.
package memprov

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/fault"
)

// Name is the provider key memprov uses unless told otherwise.
const Name = "mem"

// Fields are memprov's params.
var Fields = []providers.Field{
	{Name: "item", Kind: providers.String, Required: true, Pattern: regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)},
	{Name: "qty", Kind: providers.Int, Required: true, Min: 1, Max: 100},
}

// Parse validates params and returns them decoded.
func Parse(params json.RawMessage) (providers.Params, error) {
	return providers.DecodeParams(Name+" params", params, Fields)
}

// Backend is the provider's side: the orders it holds. It is safe for
// concurrent use.
type Backend struct {
	secret string
	// Pending makes new orders come back pending; Lookup then reports them
	// paid once Pay was called.
	Pending bool
	// Duplicates makes a second create of one order number create a
	// second order (as a provider without client order numbers would), so
	// that Count shows an order created twice. Lookup finds the first.
	Duplicates bool
	// Delay is how long each call takes.
	Delay time.Duration
	// NextCheck is when a pending order's answer says to look again:
	// 10ms when 0; negative: no suggestion (the worker's poll interval).
	NextCheck time.Duration
	// IDsPerItem numbers orders per item, as a provider whose ids are
	// unique only within a scope (the first order of every item is M1):
	// see NewScoped.
	IDsPerItem bool

	mu      sync.Mutex
	payLags bool               // see SetPayLags
	payLost bool               // see SetPayAnswerLost
	orders  map[string]*stored // by order number: the first
	extra   map[string]int     // more orders created for a number (Duplicates)
	nextID  int
	perItem map[string]int // the last id of each item (IDsPerItem)
	calls   map[string]int
	faults  fault.Injector
}

type stored struct {
	id   string
	paid bool
}

// NewBackend returns an empty Backend that accepts the given secret.
func NewBackend(secret string) *Backend {
	b := &Backend{secret: secret, orders: map[string]*stored{}, extra: map[string]int{}, calls: map[string]int{}}
	b.faults.SetHangLimit(5 * time.Second)
	return b
}

// SetPayLags has a pay answer as Pay does while lookups go on showing the
// order unpaid, as a provider whose listing catches up with a pay later
// (or never) would.
func (b *Backend) SetPayLags(v bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.payLags = v
}

// SetPayAnswerLost has every pay fail as one whose answer was lost (a
// 502 after the provider may have acted), while lookups go on showing the
// order unpaid: whether it went through is not known.
func (b *Backend) SetPayAnswerLost(v bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.payLost = v
}

// Faults is the backend's fault injector.
func (b *Backend) Faults() *fault.Injector { return &b.faults }

// Count is how many orders the backend holds for orderNo: 0 or 1, unless
// Duplicates lets a second create of the number make a second order.
func (b *Backend) Count(orderNo string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.orders[orderNo]; ok {
		return 1 + b.extra[orderNo]
	}
	return 0
}

func (b *Backend) wait(ctx context.Context) {
	if b.Delay <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(b.Delay):
	}
}

// Calls is how many calls of kind ("create", "lookup", "pay") arrived.
func (b *Backend) Calls(kind string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[kind]
}

// Client talks to a Backend. It implements providers.Provider and
// providers.Payer.
type Client struct {
	name    string
	backend *Backend
	secret  providers.Secret
	autoPay bool
}

// Options configure a Client.
type Options struct {
	// Name is the provider key. Default Name.
	Name string
	// Secret is the client's credential; a wrong one is Unauthenticated.
	Secret providers.Secret
	// AutoPay marks pending orders Payable, so the caller pays them.
	AutoPay bool
}

// New returns a client of b.
func New(b *Backend, o Options) *Client {
	if o.Name == "" {
		o.Name = Name
	}
	return &Client{name: o.Name, backend: b, secret: o.Secret, autoPay: o.AutoPay}
}

// Name implements providers.Provider.
func (c *Client) Name() string { return c.name }

// Scoped is a Client whose order ids are unique only within an item
// (providers.IDScoper), for a Backend with IDsPerItem.
type Scoped struct{ *Client }

// NewScoped returns a Scoped client of b.
func NewScoped(b *Backend, o Options) *Scoped { return &Scoped{New(b, o)} }

// IDScope implements providers.IDScoper: the item.
func (c *Scoped) IDScope(p providers.Params) string { return p.Str("item") }

// Validate implements providers.Provider.
func (c *Client) Validate(params json.RawMessage) error { _, err := Parse(params); return err }

// Parse validates params and returns them decoded.
func (c *Client) Parse(params json.RawMessage) (providers.Params, error) { return Parse(params) }

func (c *Client) auth(op string) error {
	if c.secret.Reveal() != c.backend.secret {
		return &providers.Error{Code: providers.Unauthenticated, Op: op, HTTPStatus: 401, Message: "signature does not verify"}
	}
	return nil
}

func (c *Client) result(s *stored) providers.Result {
	r := providers.Result{Status: providers.StatusPaid, ProviderOrderID: s.id, HTTPStatus: 200}
	if !s.paid {
		r.Status, r.Payable, r.Unpaid, r.NextCheck = providers.StatusPending, c.autoPay, true, 10*time.Millisecond
		if n := c.backend.NextCheck; n != 0 {
			r.NextCheck = max(n, 0)
		}
	}
	return r
}

// Submit implements providers.Provider.
func (c *Client) Submit(ctx context.Context, o providers.Order) (providers.Result, error) {
	const op = "mem create"
	if o.Parsed == nil {
		if _, err := Parse(o.Params); err != nil {
			return providers.Result{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, Err: err}
	}
	b := c.backend
	b.mu.Lock()
	b.calls["create"]++
	b.mu.Unlock()
	b.wait(ctx)
	if err := c.auth(op); err != nil {
		return providers.Result{}, err
	}
	switch k := b.faults.Next(true); k {
	case fault.Throttle:
		return providers.Result{}, &providers.Error{Code: providers.RateLimited, Op: op, HTTPStatus: 429, RetryAfter: 20 * time.Millisecond}
	case fault.FailBefore:
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: 503, Message: "service unavailable"}
	case fault.FailAfter, fault.HangAfter:
		b.create(o.OrderNo, o.Params)
		if k == fault.HangAfter {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: 503, Message: "no answer after the order was created"}
	}
	s, dup := b.create(o.OrderNo, o.Params)
	if dup {
		return providers.Result{}, &providers.Error{Code: providers.InvalidArgument, Op: op, HTTPStatus: 400, ProviderCode: "DuplicateOrderNo", Message: "order number already used"}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return c.result(s), nil
}

func (b *Backend) create(orderNo string, params json.RawMessage) (*stored, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.orders[orderNo]; ok {
		if !b.Duplicates {
			return s, true
		}
		b.extra[orderNo]++
		return &stored{id: b.newID(params), paid: !b.Pending}, false
	}
	s := &stored{id: b.newID(params), paid: !b.Pending}
	b.orders[orderNo] = s
	return s, false
}

// newID is a new order's id: numbered per item with IDsPerItem.
func (b *Backend) newID(params json.RawMessage) string {
	if !b.IDsPerItem {
		b.nextID++
		return "M" + strconv.Itoa(b.nextID)
	}
	p, _ := Parse(params)
	if b.perItem == nil {
		b.perItem = map[string]int{}
	}
	b.perItem[p.Str("item")]++
	return "M" + strconv.Itoa(b.perItem[p.Str("item")])
}

// Lookup implements providers.Provider: it finds the order by number.
func (c *Client) Lookup(ctx context.Context, o providers.Order) (providers.Result, error) {
	const op = "mem lookup"
	if err := ctx.Err(); err != nil {
		return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, Err: err}
	}
	b := c.backend
	b.mu.Lock()
	b.calls["lookup"]++
	b.mu.Unlock()
	b.wait(ctx)
	if err := c.auth(op); err != nil {
		return providers.Result{}, err
	}
	switch b.faults.Next(false) {
	case fault.Throttle:
		return providers.Result{}, &providers.Error{Code: providers.RateLimited, Op: op, HTTPStatus: 429, RetryAfter: 20 * time.Millisecond}
	case fault.FailBefore:
		return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: 503}
	}
	b.mu.Lock()
	s, ok := b.orders[o.OrderNo]
	var r providers.Result
	if ok {
		r = c.result(s)
	}
	b.mu.Unlock()
	if !ok {
		return providers.Result{}, &providers.Error{Code: providers.NotFound, Op: op, HTTPStatus: 200, Message: "no such order"}
	}
	if o.Owned != nil {
		owned, err := o.Owned(ctx, r.ProviderOrderID)
		if err != nil {
			return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, Message: "ownership check failed", Err: providers.Local(err)}
		}
		if owned {
			return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, Message: "the order found belongs to another order"}
		}
	}
	return r, nil
}

// Pay implements providers.Payer.
func (c *Client) Pay(ctx context.Context, o providers.Order) (providers.Result, error) {
	const op = "mem pay"
	if err := ctx.Err(); err != nil {
		return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, Err: err}
	}
	b := c.backend
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls["pay"]++
	if err := c.auth(op); err != nil {
		return providers.Result{}, err
	}
	s, ok := b.orders[o.OrderNo]
	if !ok {
		return providers.Result{}, &providers.Error{Code: providers.NotFound, Op: op, Message: "no such order"}
	}
	if b.payLost {
		return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: 502, Message: "bad gateway: the answer was lost"}
	}
	if b.payLags {
		r := c.result(s)
		r.Status, r.Payable, r.Unpaid = providers.StatusPending, c.autoPay, true
		return r, nil
	}
	s.paid = true
	return c.result(s), nil
}
