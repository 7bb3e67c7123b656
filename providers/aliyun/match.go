package aliyun

import (
	"context"
	"fmt"
	"time"

	"github.com/orderworker/orderworker/providers"
)

// Verdict is what order matching concludes about one listed order.
type Verdict int

const (
	// Excluded: it is surely not the order looked up (a field the listing
	// gives differs, or it is in the snapshot, or it was created too
	// early).
	Excluded Verdict = iota
	// Candidate: every field needed to recognise the order is given and
	// matches.
	Candidate
	// Undecidable: nothing excludes it, but the listing lacks a field
	// needed to recognise it (commodityCode, copies, or under the fallback
	// rule the creation time) or to refer to it (orderId).
	Undecidable
)

// Rule is how Lookup recognises, among a device's listed orders, the one an
// order created. See the package doc and docs/providers/aliyun.md.
type Rule struct {
	// Params are the create params of the order looked up.
	Params CreateParams
	// Known is the snapshot Prepare took before the order's first create,
	// as a set of order ids. When it is not nil (the snapshot rule), an
	// order in it is Excluded and any other order is new; creation times
	// are not used.
	Known map[string]bool
	// Since is used only when Known is nil (the fallback rule, for orders
	// whose snapshot was never taken): an order created before Since is
	// Excluded, and one whose listing gives no creation time is
	// Undecidable.
	Since time.Time
}

// SnapshotRule returns the rule for an order whose snapshot is known (known
// may be empty, never nil, when the device had no orders).
func SnapshotRule(p CreateParams, known []string) Rule {
	set := make(map[string]bool, len(known))
	for _, id := range known {
		set[id] = true
	}
	return Rule{Params: p, Known: set}
}

// SinceRule returns the fallback rule: orders created from since on.
func SinceRule(p CreateParams, since time.Time) Rule {
	return Rule{Params: p, Since: since}
}

// Match judges one listed order.
func (r Rule) Match(o OrderInfo) Verdict {
	p := r.Params
	v := Candidate
	switch {
	case o.OrderID == "":
		// Ours or not, it could not be looked at again, nor checked
		// against the snapshot or the ledger.
		v = Undecidable
	case r.Known != nil && r.Known[o.OrderID]:
		return Excluded // it existed before the first create
	}
	switch {
	case o.CommodityCode == "":
		v = Undecidable
	case o.CommodityCode != p.CommodityCode:
		return Excluded
	}
	switch {
	case o.Copies == 0:
		v = Undecidable
	case o.Copies != p.Copies:
		return Excluded
	}
	if p.UserID != "" && o.UserID != "" && o.UserID != p.UserID {
		return Excluded
	}
	if r.Known == nil {
		switch {
		case o.Created.IsZero():
			v = Undecidable
		case o.Created.Before(r.Since):
			return Excluded
		}
	}
	return v
}

// Decide applies Match to every listed order: exactly one candidate and
// nothing undecidable is a match; no candidate and nothing undecidable is
// none; anything else is not decidable, and reason says why. Orders that
// belong to other records must be left out of orders beforehand.
func (r Rule) Decide(orders []OrderInfo) (match OrderInfo, found bool, reason string) {
	var cands []OrderInfo
	undecidable := 0
	for _, o := range orders {
		switch r.Match(o) {
		case Candidate:
			cands = append(cands, o)
		case Undecidable:
			undecidable++
		}
	}
	switch {
	case undecidable > 0:
		return OrderInfo{}, false, fmt.Sprintf("%d listed order(s) lack the fields to tell whether they are this one", undecidable)
	case len(cands) > 1 && r.Known != nil:
		return OrderInfo{}, false, fmt.Sprintf("%d orders of this commodity and copies are new on the device since the snapshot and belong to no other order; a person decides", len(cands))
	case len(cands) > 1:
		return OrderInfo{}, false, fmt.Sprintf("%d orders match (same device, commodity and copies since the first attempt); refusing to guess", len(cands))
	case len(cands) == 1:
		return cands[0], true, ""
	}
	return OrderInfo{}, false, ""
}

// gap says why a device's listing may miss orders.
type gap int

const (
	gapNone    gap = iota
	gapTooLong     // more orders than MaxPages pages hold
	gapRepeats     // a page brought no order not seen before: paging does not work
	gapShifted     // the total shrank, or the list ended short of it: orders moved while paging
)

// listing is every order of one device, as order/query pages them.
type listing struct {
	orders []OrderInfo
	last   answer
	gap    gap
}

// list reads the device's orders, every page up to MaxPages. The list is
// complete (gapNone) when it ends at an empty page, or once as many
// distinct orders as the listed total have been read, the total never
// having shrunk. A merely short page does not end it: the server may serve
// fewer than PageSize orders per page.
//
// Where pageNo starts is not documented; pages are read from 1. A server
// counting from 0 would hide its first page (the newest orders, if it lists
// newest first), so when the list ends at an empty page without a total,
// or short of its total, page 0 is read too (once more if that fails), and
// judged against page 1 (providers.JudgePageZero): a server shown to count
// from 0 is read again from page 0, and from then on always from 0; one
// shown to count from 1 is not asked for page 0 again; when page 0 shares
// some but not all of page 1's orders, orders moved between the reads and
// the list is incomplete (gapShifted); when nothing is shown (page 0
// failed twice, say), the list read from 1 stands.
func (c *Client) list(ctx context.Context, p CreateParams) (listing, error) {
	if c.pagesFrom0.Load() {
		l, _, _, err := c.listFrom(ctx, p, 0)
		return l, err
	}
	l, one, needZero, err := c.listFrom(ctx, p, 1)
	if err != nil || !needZero || c.pagesFrom1.Load() {
		return l, err
	}
	zero, _, zerr := c.queryPage(ctx, p, 0)
	if zerr != nil && providers.CodeOf(zerr) != providers.InvalidArgument {
		zero, _, zerr = c.queryPage(ctx, p, 0)
	}
	switch providers.JudgePageZero(zerr, idsOf(zero.Orders), one) {
	case providers.BaseFrom1:
		c.pagesFrom1.Store(true)
	case providers.BaseFrom0:
		c.pagesFrom0.Store(true)
		l, _, _, err = c.listFrom(ctx, p, 0)
	case providers.BaseMoved:
		l.gap = gapShifted
	}
	return l, err
}

// listFrom reads the device's orders from page first on. It returns the
// first page's order ids too, and whether the list ended at an empty page
// without a total or short of its total (where a server counting from 0
// would have hidden its page 0 from a reader starting at 1).
func (c *Client) listFrom(ctx context.Context, p CreateParams, first int) (l listing, firstIDs []string, needZero bool, err error) {
	seen := map[string]bool{}
	total := int64(-1)
	for page := first; ; page++ {
		if page-first >= c.maxPages {
			l.gap = gapTooLong
			return l, firstIDs, false, nil
		}
		got, a, err := c.queryPage(ctx, p, page)
		if err != nil {
			return listing{}, nil, false, err
		}
		l.last = a
		if got.Total >= 0 {
			if total >= 0 && got.Total < total {
				// An order left the list while we paged: another may
				// have moved onto a page already read.
				l.gap = gapShifted
				return l, firstIDs, false, nil
			}
			total = got.Total
		}
		added := l.add(got.Orders, seen)
		if page == first {
			firstIDs = idsOf(got.Orders)
		}
		switch {
		case len(got.Orders) == 0:
			if total >= 0 && int64(len(l.orders)) < total {
				l.gap = gapShifted
			}
			return l, firstIDs, total < 0 || l.gap == gapShifted, nil
		case total >= 0 && int64(len(l.orders)) >= total:
			return l, firstIDs, false, nil
		case added == 0:
			l.gap = gapRepeats
			return l, firstIDs, false, nil
		}
	}
}

// queryPage asks order/query for one page of the device's orders.
func (c *Client) queryPage(ctx context.Context, p CreateParams, page int) (OrderList, answer, error) {
	a, err := c.call(ctx, PathQuery, pageParams{IotID: p.IotID, PageNo: page, PageSize: c.pageSize}, callOpts{timeout: c.timeout, personal: p.UserName})
	if err != nil {
		return OrderList{}, answer{}, err
	}
	got, err := ParseOrderList(a.data)
	if err != nil {
		return OrderList{}, a, &providers.Error{Code: providers.Unavailable, Op: opName(PathQuery),
			HTTPStatus: a.status, ProviderCode: "200", Message: "malformed order list"}
	}
	return got, a, nil
}

// add appends the orders not seen before (by orderId; an order without one
// is always added) and reports how many it added.
func (l *listing) add(orders []OrderInfo, seen map[string]bool) int {
	added := 0
	for _, o := range orders {
		if o.OrderID != "" {
			if seen[o.OrderID] {
				continue // listed again as the pages shifted
			}
			seen[o.OrderID] = true
		}
		l.orders = append(l.orders, o)
		added++
	}
	return added
}

func idsOf(orders []OrderInfo) []string {
	ids := make([]string, len(orders))
	for i, o := range orders {
		ids[i] = o.OrderID
	}
	return ids
}

// Prepare implements providers.Preparer: before an order's first create it
// lists every order of the order's device (order/query, all pages) and
// returns their ids, never nil (empty when the device has none). Lookup
// later takes only an order that is not among them for this one.
//
// It costs one order/query call per PageSize orders on the device (at
// least one), plus a /cloud/token call when no token is held. Past
// MaxPages pages it fails with FailedPrecondition rather than return a
// partial snapshot, which could make an older order look new: an order
// created then could not be identified after an ambiguous create. A
// listing that changes while it is read is Unavailable (try again).
func (c *Client) Prepare(ctx context.Context, o providers.Order) ([]string, error) {
	p, err := orderParams(o)
	if err != nil {
		return nil, err
	}
	l, err := c.list(ctx, p)
	if err != nil {
		return nil, err
	}
	fail := func(code providers.Code, msg string) error {
		return &providers.Error{Code: code, Op: opName(PathQuery) + " (snapshot)", HTTPStatus: l.last.status, ProviderCode: "200", Message: msg}
	}
	switch l.gap {
	case gapTooLong:
		return nil, fail(providers.FailedPrecondition, fmt.Sprintf("device has more than %d orders (MaxPages × PageSize); without all of them an order created now could not be identified", c.maxPages*c.pageSize))
	case gapRepeats:
		return nil, fail(providers.Unavailable, "order/query served a page again; cannot list the device's orders")
	case gapShifted:
		return nil, fail(providers.Unavailable, "the device's orders changed while they were listed")
	}
	ids := make([]string, 0, len(l.orders))
	for _, x := range l.orders {
		if x.OrderID != "" {
			ids = append(ids, x.OrderID)
		}
	}
	return ids, nil
}

// find searches the device's orders for the one o may have created: under
// the snapshot rule when o.Known is set, else under the fallback rule (see
// Rule). An order that o.Owned says belongs to another record is never
// taken.
func (c *Client) find(ctx context.Context, o providers.Order, p CreateParams) (answer, OrderInfo, error) {
	op := opName(PathQuery)
	var rule Rule
	if o.Known != nil {
		rule = SnapshotRule(p, o.Known)
	} else {
		if o.FirstAttempt.IsZero() {
			return answer{}, OrderInfo{}, &providers.Error{Code: providers.FailedPrecondition, Op: op,
				Message: "no snapshot and no first-attempt time to bound the search"}
		}
		rule = SinceRule(p, o.FirstAttempt.Add(-c.margin))
	}
	l, err := c.list(ctx, p)
	if err != nil {
		return answer{}, OrderInfo{}, err
	}
	fail := func(code providers.Code, msg string, err error) error {
		return &providers.Error{Code: code, Op: op, HTTPStatus: l.last.status, ProviderCode: "200", Message: msg, Err: err}
	}
	switch l.gap {
	case gapTooLong:
		return answer{}, OrderInfo{}, fail(providers.Ambiguous, fmt.Sprintf("device has more than %d orders; cannot search them all", c.maxPages*c.pageSize), nil)
	case gapRepeats:
		return answer{}, OrderInfo{}, fail(providers.Ambiguous, "order/query served a page again; cannot search every order", nil)
	case gapShifted:
		return answer{}, OrderInfo{}, fail(providers.Unavailable, "the device's orders changed while they were listed", nil)
	}
	// Leave out orders that belong to other records. Only orders that could
	// be this one are checked, so excluded ones cost no ledger read.
	kept := make([]OrderInfo, 0, len(l.orders))
	others := 0
	for _, x := range l.orders {
		if o.Owned != nil && x.OrderID != "" && rule.Match(x) != Excluded {
			taken, err := o.Owned(ctx, x.OrderID)
			if err != nil {
				return answer{}, OrderInfo{}, fail(providers.Unavailable, "cannot tell whether a listed order belongs to another order", err)
			}
			if taken {
				others++
				continue
			}
		}
		kept = append(kept, x)
	}
	m, found, reason := rule.Decide(kept)
	switch {
	case reason != "":
		return answer{}, OrderInfo{}, fail(providers.Ambiguous, reason, nil)
	case !found:
		msg := "no matching order since the first attempt"
		if rule.Known != nil {
			msg = "no order of this commodity and copies is new on the device since the snapshot"
		}
		if others > 0 {
			msg += fmt.Sprintf(" (%d belong to other orders)", others)
		}
		return answer{}, OrderInfo{}, fail(providers.NotFound, msg, nil)
	}
	return l.last, m, nil
}
