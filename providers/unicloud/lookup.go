package unicloud

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/orderworker/orderworker/providers"
)

// Lookup implements providers.Provider.
//
// With o.ProviderOrderID it asks OrderDetail. Without it, it lists the
// orders QueryOrders holds in a window around the order's first attempt
// and matches them against the order's params; see the package doc for the
// rules. An order o.Owned says belongs to another record is never taken.
// It never guesses: when more than one listed order could be this one, or
// one could be and cannot be identified, it returns Ambiguous.
func (c *Client) Lookup(ctx context.Context, o providers.Order) (providers.Result, error) {
	// A placeholder id (0, "000", a negative number) names no order: a
	// record may hold one from a refusal read before placeholders were
	// recognised, and OrderDetail could never confirm it.
	if o.ProviderOrderID != "" && !placeholderID(o.ProviderOrderID) {
		ours := ""
		if p, err := orderParams(o); err == nil && p != nil {
			ours = p.Str("instanceName")
		}
		return c.lookupByID(ctx, o.ProviderOrderID, ours, o.Matched)
	}
	p, err := orderParams(o)
	if err != nil {
		return providers.Result{}, err
	}
	return c.lookupByParams(ctx, o, p)
}

// lookupByID asks OrderDetail for id; matched says the id was found by
// matching the listing (Order.Matched): the order, found paid, is then
// held for a person unless Options.TakeMatched. ours is the order's
// instance name ("" when its params cannot be read here): an order that
// names only other instances is not ours, whatever id it was asked by.
func (c *Client) lookupByID(ctx context.Context, id, ours string, matched bool) (providers.Result, error) {
	const op = Name + " OrderDetail"
	d, status, err := c.orderDetail(ctx, id)
	switch {
	case providers.CodeOf(err) == providers.NotFound:
		// The id came from CreateOrder's own answer, so the order exists:
		// a billing system lagging behind is no reason to submit again.
		return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status,
			Message: "OrderDetail does not know an id CreateOrder returned", Err: err}
	case err != nil:
		return providers.Result{}, err
	case d.ID == "" && d.OrderNo == id && d.OrderStatus != "":
		// No Id, but the order's other number is the one asked (which of
		// the two CreateOrder's OrderId is, is not documented) and it
		// carries a status: the server answered for this order. The
		// number alone could be the question echoed back.
	case d.ID == "", d.IDFromOrderID && d.OrderStatus == "":
		// An order without an Id (an empty record, or a placeholder Id)
		// may be what a server answers for an id it does not know: it
		// shows no order is ours. So may one whose only id is an
		// OrderId, the question echoed back, unless it carries a status.
		return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status,
			Message: "OrderDetail answered an order without an Id"}
	case d.ID != id:
		return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status,
			Message: "OrderDetail answered for another order"}
	}
	if why := d.closed(); why != "" {
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: status,
			Message: c.clean(notPaidMessage(why), 200)}
	}
	if !d.ownFields() {
		// The id asked (with a status, perhaps), and nothing of an order
		// of its own: what a server may answer for an id it does not
		// know, the question echoed back with its fields empty or a
		// default status (a create answered with an id, then rolled
		// back). Taken for the order, it would be recorded paid.
		return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status,
			Message: "OrderDetail answered the id asked with nothing of an order of its own (no product or order category, creation or pay time, nor instance name): it may be the question echoed back"}
	}
	if names := keepNames(d.Names, ours); ours != "" && len(names) > 0 && matchNames(names, ours) == nameOther {
		// CreateOrder answered with another order's id (one made at the
		// same moment for another record), or the id names another
		// instance's order: never ours, nor recorded paid as ours.
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: status,
			Message: "OrderDetail's order for the id names other instances than this order's: not taken for ours"}
	}
	msg := d.describe("found by OrderDetail")
	held := matched && !c.takeMatched
	if matched && c.takeMatched && !c.standingStatus(d.OrderStatus) {
		held, msg = true, msg+"; "+unreadStatusMessage(d.OrderStatus)
	}
	return providers.Result{Status: providers.StatusPaid, ProviderOrderID: id, HTTPStatus: status,
		Message: c.clean(msg, 200), Matched: matched, Held: held}, nil
}

// ownFields reports whether d carries something of an order of its own
// beyond its ids and status: a product or order category (the documented
// example of OrderDetail's answer carries ProductCategory), a creation or
// pay time, or an instance name.
func (d orderInfo) ownFields() bool {
	return d.ProductCategory != "" || d.OrderCategory != "" || d.CreateTime != "" || d.PayTime != "" || len(d.Names) > 0
}

// describe returns msg with the order's OrderStatus and PayTime, when it
// carries them.
func (d orderInfo) describe(msg string) string {
	var parts []string
	if d.OrderStatus != "" {
		parts = append(parts, "OrderStatus "+d.OrderStatus)
	}
	if d.PayTime != "" {
		parts = append(parts, "PayTime "+d.PayTime)
	}
	if len(parts) > 0 {
		msg += " (" + strings.Join(parts, ", ") + ")"
	}
	return msg
}

// closedWords are the words (matched case-insensitively, anywhere in the
// value) of an OrderStatus that says the order did not go through, or no
// longer stands: its values are not documented, so any status naming a
// cancellation, a failure, a closing, invalidity, a refund, an expiry, a
// rejection, a revocation, a voiding, a termination, an abort, a
// deletion, a reversal or a stop counts, in English or in Chinese. The
// list errs wide: an order it names is left to a person, never taken for
// paid.
var closedWords = []string{"cancel", "fail", "close", "invalid", "refund", "expire", "reject", "revoke",
	"void", "terminat", "abort", "delete", "revers", "stop",
	"取消", "失败", "关闭", "作废", "无效", "退款", "退订", "过期", "撤", "终止", "删除", "冲正", "停"}

// closed returns why a found order is not taken for paid: it carries a
// CancelType (any value: its values are not documented, so none is known
// to mean "not cancelled"), or its OrderStatus names a cancellation or a
// failure (closedWords). "" when neither.
func (d orderInfo) closed() string {
	if ct := strings.TrimSpace(d.CancelType); ct != "" {
		return "CancelType " + d.CancelType
	}
	ls := strings.ToLower(d.OrderStatus)
	for _, w := range closedWords {
		if strings.Contains(ls, w) {
			return "OrderStatus " + d.OrderStatus
		}
	}
	return ""
}

// standingSet is Options.StandingStatuses as a set.
func standingSet(v []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range v {
		m[strings.TrimSpace(s)] = true
	}
	return m
}

// standingStatus reports whether an order found by matching, with
// OrderStatus s, may be taken for ours (Options.TakeMatched): none, a word
// (closed() has passed over those naming a cancellation or a failure), or
// one of Options.StandingStatuses; not a number that is not one of them,
// whose meaning is not documented.
func (c *Client) standingStatus(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" || c.standing[s] {
		return true
	}
	for _, r := range s {
		if (r < '0' || r > '9') && r != '-' && r != '+' {
			return true
		}
	}
	return false
}

// unreadStatusMessage says why an order found by matching is held though
// UNICLOUD_TAKE_MATCHED is set.
func unreadStatusMessage(s string) string {
	return "its OrderStatus " + s + " is a number UNICLOUD_STANDING_STATUSES does not list (the values are not documented: it may mean cancelled or failed), so it is held for a person, not taken"
}

// notPaidMessage says why a found order is left to a person.
func notPaidMessage(why string) string {
	return "the order is found with " + why + ": it may have been cancelled or have failed, so it is not taken for paid; left to a person"
}

// orderInfo is what Lookup reads from a listed or detailed order.
type orderInfo struct {
	// ID is the order's Id, or, when it carries none, its OrderId
	// (IDFromOrderID).
	ID            string
	IDFromOrderID bool
	// OrderNo is the order's other number. Which of Id and OrderNo equals
	// CreateOrder's OrderId is not documented: ownership is asked under
	// both.
	OrderNo         string
	OrderCategory   string
	ProductCategory string
	OrderStatus     string
	// CancelType and PayTime are as the order carries them ("" when it
	// does not): documented on Order, their values are not.
	CancelType string
	PayTime    string
	CreateTime string
	// Names are the instance names the order carries (an InstanceName
	// field on the order or on any of its Items); nil when it carries none.
	Names []string
}

// parseOrder reads one order object. Keys match case-insensitively, ids
// may be strings or numbers, and unknown fields are ignored.
func parseOrder(raw json.RawMessage) (orderInfo, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return orderInfo{}, errors.New("order is not an object")
	}
	id, err := idField(field(m, "Id"))
	if err != nil {
		return orderInfo{}, err
	}
	d := orderInfo{ID: id}
	if raw := bytes.TrimSpace(field(m, "Id")); len(raw) == 0 || string(raw) == "null" {
		// No Id at all (a blank or zero one is the server's word that
		// there is none): the order's OrderId, if it carries one.
		if d.ID, err = idField(field(m, "OrderId")); err != nil {
			return orderInfo{}, err
		}
		d.IDFromOrderID = d.ID != ""
	}
	if d.OrderNo, err = idField(field(m, "OrderNo")); err != nil {
		return orderInfo{}, err
	}
	d.OrderCategory, _ = scalar(field(m, "OrderCategory"))
	d.ProductCategory, _ = scalar(field(m, "ProductCategory"))
	d.OrderStatus, _ = scalar(field(m, "OrderStatus"))
	d.CancelType, _ = scalar(field(m, "CancelType"))
	d.PayTime, _ = scalar(field(m, "PayTime"))
	d.CreateTime, _ = scalar(field(m, "CreateTime"))
	if n, ok := scalar(field(m, "InstanceName")); ok && n != "" {
		d.Names = append(d.Names, n)
	}
	for _, it := range itemsOf(field(m, "Items")) {
		if n, ok := scalar(field(it, "InstanceName")); ok && n != "" {
			d.Names = append(d.Names, n)
		}
	}
	return d, nil
}

// itemsOf reads an order's Items: documented as a list; read also in the
// forms a list takes in an answer converted from XML, as OrderList is
// ({"Item": [...]}, one item as an object), and as one item alone.
func itemsOf(raw json.RawMessage) []map[string]json.RawMessage {
	var items []map[string]json.RawMessage
	if json.Unmarshal(raw, &items) == nil {
		return items
	}
	var one map[string]json.RawMessage
	if json.Unmarshal(raw, &one) != nil {
		return nil
	}
	if inner := bytes.TrimSpace(field(one, "Item")); len(inner) > 0 && len(one) == 1 {
		return itemsOf(inner)
	}
	return []map[string]json.RawMessage{one}
}

// orderDetail calls OrderDetail for id.
func (c *Client) orderDetail(ctx context.Context, id string) (orderInfo, int, error) {
	r, status, err := c.call(ctx, http.MethodGet, TransactionPath, "OrderDetail", map[string]string{"OrderId": id}, nil, false)
	if err != nil {
		return orderInfo{}, status, err
	}
	var env map[string]json.RawMessage
	_ = json.Unmarshal(r.Payload, &env)
	raw := bytes.TrimSpace(field(env, "Order"))
	if len(raw) == 0 || string(raw) == "null" {
		return orderInfo{}, status, &providers.Error{Code: providers.Unavailable, Op: Name + " OrderDetail", HTTPStatus: status,
			Message: "answer without Order"}
	}
	d, err := parseOrder(raw)
	if err != nil {
		return orderInfo{}, status, &providers.Error{Code: providers.Unavailable, Op: Name + " OrderDetail", HTTPStatus: status,
			Message: "malformed Order"}
	}
	return d, status, nil
}

// page is one QueryOrders answer.
type page struct {
	Total    int
	HasTotal bool
	Orders   []json.RawMessage
}

// errNoList is a QueryOrders answer that shows no order list: read as an
// empty page, it would make a lookup answer not_found and the order be
// created again.
var errNoList = errors.New("answer without an order list")

// parsePage reads a QueryOrders answer. It is a page (perhaps empty) only
// when it shows its list: an OrderList whose Order key is present (a list,
// or null or "" for none; a bare list as OrderList is read too) or, with
// a TotalCount of 0, no OrderList at all or an empty OrderList object
// ({}); an Order that is one object is a list of it). Anything else (no OrderList and no TotalCount, as in an error
// envelope answered at HTTP 200; an OrderList object with other keys but
// no Order key, or {} without a TotalCount of 0; a TotalCount above 0
// without a list) is errNoList: documented is "TotalCount, PageNum,
// PageSize, OrderList.Order[]", and nothing says what else an empty page
// may look like.
func parsePage(payload json.RawMessage) (page, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil || m == nil {
		return page{}, errors.New("not an object")
	}
	var pg page
	if s, ok := scalar(field(m, "TotalCount")); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return page{}, errors.New("bad TotalCount")
		}
		pg.Total, pg.HasTotal = n, true
	}
	list := bytes.TrimSpace(field(m, "OrderList"))
	switch {
	case len(list) == 0 || string(list) == "null":
		if pg.HasTotal && pg.Total == 0 {
			return pg, nil
		}
		return page{}, errNoList
	case list[0] == '{':
		// Documented: OrderList is Map<"Order", List>.
		var inner map[string]json.RawMessage
		if json.Unmarshal(list, &inner) != nil {
			return page{}, errors.New("bad OrderList")
		}
		if !hasField(inner, "Order") {
			if len(inner) == 0 && pg.HasTotal && pg.Total == 0 {
				// {} with a TotalCount of 0: an empty list left out, as
				// an encoder omitting empty fields writes it. Without
				// that total, {} says nothing of the window.
				return pg, nil
			}
			return page{}, errNoList
		}
		list = bytes.TrimSpace(field(inner, "Order"))
		if string(list) == "null" || string(list) == `""` {
			return pg, nil
		}
		if len(list) > 0 && list[0] == '{' {
			// One order as an object, not a list of one: how a JSON
			// answer converted from XML writes a list of one element.
			list = slices.Concat([]byte("["), list, []byte("]"))
		}
	}
	if len(list) == 0 || list[0] != '[' || json.Unmarshal(list, &pg.Orders) != nil {
		return page{}, errors.New("bad OrderList")
	}
	return pg, nil
}

// hasField reports whether m holds name (under case folding).
func hasField(m map[string]json.RawMessage, name string) bool {
	if _, ok := m[name]; ok {
		return true
	}
	for k := range m {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// listOrders reads every QueryOrders page for [start, end], the times
// written in zone loc.
//
// Where Page starts is not documented; pages are read from 1. A server
// counting from 0 would hide its first page (the newest orders, if it lists
// newest first), so when the list ends at an empty page without a
// TotalCount, short of it, or at a page that brought no new order (a
// server counting from 0 repeats its last page past the end), page 0 is
// read too (see pageZero: once more if that fails; a refusal or an empty
// page 0 that would teach "from 1" only when said twice in a row),
// and judged against page 1 (providers.JudgePageZero):
//
//   - shown to count from 1: page 0 is read once (stillFrom1) whenever
//     the list would ask for it, since a server may count from 0 later;
//   - shown to count from 0: read again from page 0, and from then on
//     always from 0. When page 1 was empty, that is first confirmed by
//     reading page 1 again: a server that serves page 0 as page 1 shows
//     an order that landed between the reads on page 0 too. Page 1 now
//     holding all of page 0's orders may show that, or a page of orders
//     landing on a server counting from 0: Unavailable, nothing
//     remembered; page 1 holding some other order is Unavailable (orders
//     moved), and nothing is remembered;
//   - page 0 sharing some but not all of page 1's orders: orders moved
//     between the reads (Unavailable);
//   - nothing shown (page 0 failed twice, or an order lacks its id): page
//     0 failing, or holding orders that cannot be told from page 1's,
//     leaves the list incomplete (Unavailable) whatever page 1 held; a
//     page 0 read empty leaves the list read from 1 standing.
//
// A list read from 0 whose page 1 repeats page 0 exactly comes from a
// server serving page 0 as page 1, or from a page of orders landing
// between the reads: "from 0" is forgotten and judged again, as at first.
func (c *Client) listOrders(ctx context.Context, start, end time.Time, loc *time.Location) ([]orderInfo, error) {
	const op = Name + " QueryOrders"
	q := map[string]string{
		"StartTime": start.In(loc).Format(QueryTimeLayout),
		"EndTime":   end.In(loc).Format(QueryTimeLayout),
		"Size":      strconv.Itoa(c.listSize()),
	}
	if c.pagesFrom0.Load() {
		out, aliased, err := c.listFromZero(ctx, q)
		if !aliased {
			return out, err
		}
		// Page 1 repeated page 0: a server serving page 0 as page 1, or
		// one page of orders landing between the two reads of a server
		// counting from 0. "From 0" is forgotten and judged again, as at
		// first (never taken for "from 1" on this alone: a burst would
		// teach the client to skip page 0 for good).
		c.pagesFrom0.Store(false)
	}
	r := c.listFrom(ctx, q, 1)
	if r.fail != nil || !r.needZero {
		return r.out, r.err()
	}
	if c.pagesFrom1.Load() {
		if still, err := c.stillFrom1(ctx, q, r.firstIDs); err != nil || still {
			if err != nil {
				return nil, err
			}
			return r.out, r.err()
		}
	}
	zero, zerr := c.pageZero(ctx, q, len(r.firstIDs) > 0)
	if providers.Unsent(zerr) {
		return nil, zerr
	}
	zeroIDs := idsOf(zero)
	switch providers.JudgePageZero(zerr, zeroIDs, r.firstIDs) {
	case providers.BaseFrom1:
		if zerr == nil && len(zeroIDs) > 0 {
			// Page 0 the same as page 1, read earlier: also what a
			// server counting from 0 shows when a page of orders left
			// the front of the list between the reads. Page 1, read
			// again, must still be page 0.
			_, again, _, aerr := c.queryPage(ctx, q, 1)
			if providers.Unsent(aerr) {
				return nil, aerr
			}
			if aerr != nil || !providers.SameIDs(idsOf(again), zeroIDs) {
				return nil, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: http.StatusOK,
					Message: "orders moved while the list was read (page 0 was page 1, and page 1 read again is not)", Err: aerr}
			}
		}
		c.pagesFrom1.Store(true)
	case providers.BaseFrom0:
		if len(r.firstIDs) == 0 {
			// Judged on an empty page 1: confirm before remembering it.
			_, again, _, aerr := c.queryPage(ctx, q, 1)
			switch ids := idsOf(again); {
			case providers.Unsent(aerr):
				return nil, aerr
			case aerr != nil:
				return nil, &providers.Error{Code: providers.Unavailable, Op: op,
					Message: "page 0 holds orders and page 1 did not; page 1 could not be read again to confirm", Err: aerr}
			case len(ids) > 0 && containsAll(ids, zeroIDs):
				// Page 0 is page 1 and orders landed between the reads,
				// or a page of orders landed on a server counting from
				// 0 (its newest now on page 0, unread): nothing is
				// learnt, and the list is read again next time.
				return nil, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: http.StatusOK,
					Message: "orders landed while the list was read (page 1, empty before page 0 was read, holds page 0's orders now)"}
			case len(ids) > 0:
				return nil, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: http.StatusOK,
					Message: "orders moved while the list was read (page 1, empty before page 0 was read, holds other orders now)"}
			}
		}
		c.pagesFrom0.Store(true)
		out, aliased, err := c.listFromZero(ctx, q)
		switch {
		case aliased:
			c.pagesFrom0.Store(false)
			return nil, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: http.StatusOK,
				Message: "orders moved while the list was read (page 1 repeats page 0 right after page 0 was judged the first page)"}
		case err == nil && len(out) == 0:
			// Page 0 held orders a moment ago and holds none now.
			return nil, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: http.StatusOK,
				Message: "orders moved while the list was read (page 0, read again from 0, holds none of the orders it held)"}
		}
		return out, err
	case providers.BaseMoved:
		return nil, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: http.StatusOK,
			Message: "orders moved while the list was read (page 0 shares some of page 1's orders)"}
	case providers.BaseUnknown:
		if zerr != nil {
			// Page 0 could not be read, and where the server counts
			// from is not known: counting from 0, it holds the newest
			// orders there, whatever page 1 held.
			return nil, &providers.Error{Code: providers.Unavailable, Op: op,
				Message: "page 0 could not be read and the server may count pages from 0: the list may be incomplete", Err: zerr}
		}
		if len(zero) > 0 {
			// Page 0 holds orders that cannot be told from page 1's (an
			// order without an Id): the server may count from 0 and
			// hold our order there, whatever page 1 held.
			return nil, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: http.StatusOK,
				Message: "page 0 holds orders that cannot be told from page 1's (an order without an Id): the list may be incomplete"}
		}
	}
	return r.out, r.err()
}

// listBucket is how the windows of lookups are grouped to share
// listings (sharedList): by their start, rounded down to it.
const listBucket = 5 * time.Minute

// listKey names the lookups that may share a listing: its zone and the
// start of their windows, rounded down to listBucket.
type listKey struct {
	zone  string
	start time.Time
}

// window is a lookup's listing window.
type window struct{ start, end time.Time }

// sharedList is listOrders for a lookup's window, read once for the
// lookups made at the same time whose windows start in the same
// listBucket (providers.Gather): from the earliest start to the latest
// end asked for. A lookup's listing is read after its call, as a listing
// of its own would be; it may hold a little more (up to listBucket
// earlier, and the other lookups' ends), which the lookup leaves out by
// its own window as it does any order outside it. After an outage,
// hundreds of unknown orders looked up at once each read the same pages
// (a black-box run: 59,000 QueryOrders for 830 creates).
func (c *Client) sharedList(ctx context.Context, start, end time.Time, loc *time.Location) ([]orderInfo, error) {
	k := listKey{zone: loc.String(), start: start.Truncate(listBucket)}
	out, err := c.lists.Do(ctx, k, window{start, end})
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		// Waited for a listing past the lookup's own time: no answer,
		// as a request of its own cut off would have been.
		cause := err
		if providers.Queued(err) {
			// Its listing had not started: the lookup only queued
			// behind a listing under way for other lookups, and every
			// waiter's time running out behind one slow listing would
			// otherwise be a failure of its own for the circuit
			// breaker. No news of the provider's health (waitedOut).
			// A lookup whose own listing was under way is counted, as
			// a request of its own cut off would be: were it not, a
			// provider whose listings hang past every lookup's
			// deadline would never be counted (none is left waiting
			// for the listing's own failure).
			cause = waitedOut{err}
		}
		return nil, &providers.Error{Code: providers.Unavailable, Op: Name + " QueryOrders", Message: "the listing did not come in time", Err: cause}
	}
	return out, err
}

// waitedOut is the error of a lookup whose own context ended while it
// waited, queued, for a shared listing that had not started (sharedList,
// providers.Queued): the context's error, which
// errors.Is and As reach through it, and no news of the provider's health
// (providers.ErrNoNews), which a circuit breaker does not count.
type waitedOut struct{ err error }

func (w waitedOut) Error() string      { return w.err.Error() }
func (w waitedOut) Unwrap() error      { return w.err }
func (waitedOut) Is(target error) bool { return target == providers.ErrNoNews }

// listShared is the run of sharedList for the lookups of one listKey.
func (c *Client) listShared(ctx context.Context, k listKey, ws []window) ([]orderInfo, error) {
	w := ws[0]
	for _, x := range ws[1:] {
		if x.start.Before(w.start) {
			w.start = x.start
		}
		if x.end.After(w.end) {
			w.end = x.end
		}
	}
	loc := time.UTC
	if k.zone != loc.String() {
		loc = ChinaTime()
	}
	out, err := c.listOrders(ctx, w.start, w.end, loc)
	// Shared: a caller appending to it gets a copy.
	return slices.Clip(out), err
}

// pageZero reads page 0 to judge where the server counts pages from
// (providers.JudgePageZero), beside a page 1 that held orders (oneHeld) or
// not. What would teach "from 1" for the process's life must say so twice
// in a row: a refusal only as a parameter error naming Page (any other
// InvalidArgument, which covers unknown codes and unreadable 4xx answers
// that may pass, is a failure to read page 0), and an empty page 0 beside
// a page 1 holding orders. Any other failure is asked once more. On a
// server counting from 0, page 0 holds the newest orders: taken for "from
// 1" on an answer that passes, every later listing would skip them.
func (c *Client) pageZero(ctx context.Context, q map[string]string, oneHeld bool) ([]orderInfo, error) {
	const op = Name + " QueryOrders"
	read := func() ([]orderInfo, error) {
		_, zero, status, err := c.queryPage(ctx, q, 0)
		if err != nil && providers.CodeOf(err) == providers.InvalidArgument && !pageRefusal(err) {
			err = &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status,
				Message: "page 0 unreadable (refused, but not as a bad Page)", Err: err}
		}
		return zero, err
	}
	zero, err := read()
	if err == nil && !(len(zero) == 0 && oneHeld) || providers.Unsent(err) {
		return zero, err
	}
	again, aerr := read()
	if providers.Unsent(aerr) {
		return nil, aerr
	}
	switch {
	case pageRefusal(err) && pageRefusal(aerr):
		return nil, aerr
	case err == nil && aerr == nil && len(zero) == 0 && len(again) == 0:
		return again, nil // empty twice beside a page 1 holding orders
	case pageRefusal(err), pageRefusal(aerr), err == nil, aerr == nil && len(again) == 0 && oneHeld:
		// Answers that differ, or one alone that would teach "from 1":
		// nothing is shown.
		return nil, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: http.StatusOK,
			Message: "page 0 answered differently when read again: where the server counts pages from is not shown"}
	}
	return again, aerr
}

// stillFrom1 reads page 0 once beside a list read from 1 (page 1's ids
// oneIDs) on a server that has shown it counts pages from 1. Nothing
// documents that a server keeps counting as it did (a release, a gateway
// spreading its clients over two versions), and one that counts from 0
// now holds its newest orders on page 0, which the list lacks: a lookup
// would answer not_found with ours among them, and the order would be
// created again. Page 0 refused as a bad Page, empty, or page 1 again:
// still from 1 (true). Throttled or refused for the credentials: that
// error. Failing otherwise, or holding orders that cannot be compared with
// page 1's (an order without its id): nothing is shown, and the list is
// incomplete for now (Unavailable; what was learnt is kept, so that a
// fault passes). Holding orders other than page 1's: what was learnt is
// forgotten (false), and page 0 is judged afresh. One answer is enough
// here, where judging the base at first wants two alike: what was learnt
// is only kept, never learnt anew, on it.
func (c *Client) stillFrom1(ctx context.Context, q map[string]string, oneIDs []string) (bool, error) {
	const op = Name + " QueryOrders"
	_, zero, status, err := c.queryPage(ctx, q, 0)
	zeroIDs := idsOf(zero)
	switch {
	case pageRefusal(err):
		return true, nil
	case providers.Unsent(err):
		return false, err
	case err != nil:
		return false, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status,
			Message: "page 0 unreadable beside a list read from page 1: the list may lack the newest orders, should the server count pages from 0 now", Err: err}
	case len(zeroIDs) == 0, providers.SameIDs(zeroIDs, oneIDs):
		return true, nil
	}
	switch providers.JudgePageZero(nil, zeroIDs, oneIDs) {
	case providers.BaseFrom1:
		return true, nil
	case providers.BaseUnknown:
		return false, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status,
			Message: "page 0 holds orders that cannot be told from page 1's (an order without its id): the list may lack the newest orders, should the server count pages from 0 now"}
	}
	c.pagesFrom1.Store(false)
	return false, nil
}

// pageRefusal reports whether err is QueryOrders refusing its Page as a
// bad parameter (InvalidArgument whose code or message names the page, in
// any case), as a server counting from 1 may refuse page 0.
func pageRefusal(err error) bool {
	var pe *providers.Error
	return errors.As(err, &pe) && pe.Code == providers.InvalidArgument &&
		strings.Contains(strings.ToLower(pe.Message+" "+pe.ProviderCode), "page")
}

// listFromZero reads the list from page 0, for a server taken to count
// from 0. aliased: its page 1 repeated page 0 (a server serving page 0 as
// page 1, or a page of orders landing between the reads); nothing is
// returned then, and the caller judges again.
func (c *Client) listFromZero(ctx context.Context, q map[string]string) (out []orderInfo, aliased bool, err error) {
	const op = Name + " QueryOrders"
	r := c.listFrom(ctx, q, 0)
	if r.fail == nil && r.short == nil && len(r.firstIDs) == 0 {
		// Page 0, the first page of a server counting from 0, is empty:
		// no order in the window, unless the server counts from 1 now
		// (a release, a balancer between versions) and serves page 0
		// empty. Page 1 tells: holding orders, the server does not count
		// from 0 (its first page would hold them), and "from 0" is
		// forgotten and judged afresh (reported as aliased). A wrong
		// "from 1" learnt then never skips page 0 for good: page 0 is
		// read once a list on a server that counts from 1 (stillFrom1).
		_, one, status, err := c.queryPage(ctx, q, 1)
		switch {
		case err != nil:
			return nil, false, err
		case len(one) > 0:
			c.pagesFrom0.Store(false)
			return nil, false, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status,
				Message: "page 0 is empty and page 1 holds orders, on a server that counted pages from 0: where it counts from is judged again at the next listing"}
		}
		return r.out, false, nil
	}
	if r.aliased {
		return nil, true, nil
	}
	if pageRefusal(r.fail) {
		// Page 0 refused as a bad Page (a server that counts from 1
		// now, or a fault): forgotten, and judged afresh at the next
		// listing, not this one (a burst of faulty refusals would teach
		// "from 1" at once, and this list lack page 0's orders). Left
		// learnt, a refusal would fail every lookup until a restart.
		c.pagesFrom0.Store(false)
		return nil, false, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: http.StatusOK,
			Message: "page 0 refused as a bad Page, on a server that counted pages from 0: where it counts from is judged again at the next listing", Err: r.fail}
	}
	return r.out, false, r.err()
}

// containsAll reports whether have holds every id of want.
func containsAll(have, want []string) bool {
	for _, id := range want {
		if !slices.Contains(have, id) {
			return false
		}
	}
	return true
}

// listed is what listFrom read.
type listed struct {
	out      []orderInfo
	firstIDs []string // the first page's order ids
	// needZero: the list ended at an empty page without a TotalCount, or
	// short of it, or at a page that brought no new order (short), where a
	// server counting from 0 would have hidden its page 0 from a reader
	// starting at 1.
	needZero bool
	// aliased: read from 0, page 1 repeated page 0 (the same ids, all
	// present, in the same order): the server serves page 0 as page 1.
	aliased bool
	short   error // the list ended short of its TotalCount
	fail    error // any other failure
}

func (r listed) err() error {
	if r.fail != nil {
		return r.fail
	}
	return r.short
}

// listFrom reads QueryOrders pages from first on.
func (c *Client) listFrom(ctx context.Context, q map[string]string, first int) listed {
	const op = Name + " QueryOrders"
	var r listed
	l := orderList{seen: map[string]bool{}}
	total := -1
	// stale: a TotalCount smaller than the entries read (a count kept
	// apart from the rows, behind them): no count of this listing is
	// trusted after it, and only an empty page ends it.
	stale := false
	counted := -1 // the latest TotalCount given, stale or not
	for n := first; ; n++ {
		if n-first >= MaxPages {
			r.fail = &providers.Error{Code: providers.Ambiguous, Op: op,
				Message: fmt.Sprintf("more orders in the window than %d pages hold; cannot rule any out", MaxPages)}
			return r
		}
		pg, orders, status, err := c.queryPage(ctx, q, n)
		if first0 := err; err != nil && n == first && providers.CodeOf(err) == providers.InvalidArgument && smallerSize(q) {
			// No maximum Size is documented: a server refusing ours as a
			// bad parameter is asked once more with a smaller one, kept
			// for the rest of the listing.
			pg, orders, status, err = c.queryPage(ctx, q, n)
			if err == nil && strings.Contains(strings.ToLower(first0.Error()), "size") {
				// Taken, after a refusal that named Size: later listings
				// ask for it at once (a refusal that did not name it may
				// have been about something else, once).
				c.smallPages.Store(true)
			}
		}
		if err != nil {
			r.fail = err
			return r
		}
		if first == 0 && n == 1 && len(orders) > 0 && !slices.Contains(r.firstIDs, "") && providers.SameIDs(idsOf(orders), r.firstIDs) {
			r.aliased = true
			return r
		}
		if pg.HasTotal {
			if counted >= 0 && pg.Total < counted {
				// An order left the list while we paged: one may have
				// moved onto a page already read. (Compared count to
				// count, a stale one too.)
				r.fail = &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status, Message: "order list shrank while paging"}
				return r
			}
			counted = pg.Total
			if !stale {
				total = pg.Total
			}
		}
		fresh := l.add(orders, n > first)
		if n == first {
			r.firstIDs = idsOf(orders)
		}
		r.out = l.out
		if total >= 0 && l.received > total {
			// More entries than the count says: the count lags the rows
			// (a black-box run: a page of 20 with a TotalCount of 16 of
			// 136, taken for the end, and orders created twice).
			stale, total = true, -1
		}
		switch {
		case n > first && len(orders) > 0 && fresh == 0:
			// Every entry was read before (or has no Id to tell): the
			// server ignores Page, repeats its last page past the end, or
			// the list moved by a whole page. Its entries would count
			// toward TotalCount though none is new, so the list is
			// incomplete, never complete; read as ending short, page 0
			// is tried for a server counting from 0.
			r.needZero = true
			r.short = &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status,
				Message: fmt.Sprintf("a page brought no new order (page %d repeats orders already read): the list may be incomplete", n)}
			return r
		case len(orders) == 0 && total > l.received:
			r.needZero = true
			r.short = &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status,
				Message: fmt.Sprintf("page %d is empty but %d of %d orders are unread", n, total-l.received, total)}
			return r
		case len(orders) == 0 && total < 0:
			// Only an empty page ends a list without a TotalCount: after a
			// repeat, nothing shows that every order was read.
			r.needZero = true
			if l.repeats > 0 {
				r.short = &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status,
					Message: fmt.Sprintf("%d entries were, or may have been, read twice and the list carries no TotalCount: an order may have gone unshown", l.repeats)}
			}
			return r
		case len(orders) == 0, total >= 0 && l.received >= total:
			// The end, a TotalCount known: complete when no entry was
			// read twice, or when the orders read, told apart by Id, are
			// as many as the TotalCount.
			if l.repeats > 0 && len(l.seen) < total {
				r.fail, r.short = c.reread(ctx, q, first, &l, total)
				r.out = l.out
			}
			return r
		}
	}
}

// extraReadings bounds how many more times reread reads a list.
const extraReadings = 2

// reread reads the list again from page first, adding to l, for a listing
// that reached its TotalCount (or an empty page) only by counting entries
// read twice: a repeat stands for an order no page showed, and which one
// cannot be told. In a newest-first list read while orders are created,
// it is a new order at the front; where the sort is unstable (orders
// created in the same second, ordered by CreateTime under LIMIT/OFFSET,
// come back in another order on every request), an older order that fell
// between the pages, which may be ours. So a repeat never counts: the list
// is complete once the orders read, told apart by Id, are as many as the
// latest TotalCount (the list only grows, and one that shrinks is
// refused), which the new orders at the front of a list read again from
// its first page usually make it. Otherwise, after extraReadings more
// readings, it is Unavailable (fail is a call that failed, short the list
// left incomplete).
func (c *Client) reread(ctx context.Context, q map[string]string, first int, l *orderList, total int) (fail, short error) {
	const op = Name + " QueryOrders"
	status := 0
	for range extraReadings {
		read := 0
		for n := first; n-first < MaxPages; n++ {
			pg, orders, st, err := c.queryPage(ctx, q, n)
			if err != nil {
				return err, nil
			}
			status = st
			switch {
			case !pg.HasTotal:
				return &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: st,
					Message: "the list, read again, carries no TotalCount"}, nil
			case pg.Total < total:
				return &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: st, Message: "order list shrank while paging"}, nil
			}
			total = pg.Total
			l.add(orders, true)
			read += len(orders)
			if len(l.seen) >= total {
				return nil, nil
			}
			if len(orders) == 0 || read >= total {
				break
			}
		}
	}
	return nil, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status,
		Message: fmt.Sprintf("entries were, or may have been, read twice, and %d readings of the list showed %d of its %d orders by Id: an order may have gone unshown, so the list may be incomplete",
			1+extraReadings, len(l.seen), total)}
}

// fallbackPageSize is the Size asked for when a first page is refused as
// a bad parameter: small enough for any server we can imagine, at the cost
// of MaxPages covering fewer orders.
const fallbackPageSize = 20

// listSize is the Size a listing asks for: PageSize, or fallbackPageSize
// once a listing was refused the larger and read with it.
func (c *Client) listSize() int {
	if c.smallPages.Load() {
		return min(c.pageSize, fallbackPageSize)
	}
	return c.pageSize
}

// smallerSize lowers q's Size to fallbackPageSize and reports whether it
// was above it.
func smallerSize(q map[string]string) bool {
	if n, err := strconv.Atoi(q["Size"]); err != nil || n <= fallbackPageSize {
		return false
	}
	q["Size"] = strconv.Itoa(fallbackPageSize)
	return true
}

// orderList is what listOrders has read so far.
type orderList struct {
	out  []orderInfo
	seen map[string]bool
	// received counts the entries listed, repeats included: it says
	// when to stop reading; a listing that saw a repeat is complete only
	// by the orders it read told apart by Id (see reread).
	received int
	// repeats counts the entries that are, or may be, repeats: an Id
	// listed before, or no Id on a page after the first (nothing shows it
	// is not one).
	repeats int
}

// add appends the orders whose Id was not listed before (an order without
// one is always added) and reports how many of them carry an Id not listed
// before: an order without one is never known to be new. later says the
// orders come from a page after the first.
func (l *orderList) add(orders []orderInfo, later bool) int {
	fresh := 0
	for _, d := range orders {
		l.received++
		if d.ID != "" {
			if l.seen[d.ID] {
				l.repeats++
				continue
			}
			l.seen[d.ID] = true
			fresh++
		} else if later {
			l.repeats++
		}
		l.out = append(l.out, d)
	}
	return fresh
}

func idsOf(orders []orderInfo) []string {
	ids := make([]string, len(orders))
	for i, d := range orders {
		ids[i] = d.ID
	}
	return ids
}

// queryPage asks QueryOrders for page n.
func (c *Client) queryPage(ctx context.Context, q map[string]string, n int) (page, []orderInfo, int, error) {
	const op = Name + " QueryOrders"
	q["Page"] = strconv.Itoa(n)
	r, status, err := c.call(ctx, http.MethodGet, TransactionPath, "QueryOrders", q, nil, false)
	var pe *providers.Error
	if errors.As(err, &pe) && pe.Code == providers.NotFound {
		// An order-not-found code shows no order list: a page is read only
		// from an answer that shows one. Passed up as NotFound it would be
		// the lookup's answer, and the order would be created again.
		msg := errNoList.Error()
		if pe.Message != "" {
			msg += " (" + pe.Message + ")"
		}
		return page{}, nil, status, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: pe.HTTPStatus,
			ProviderCode: pe.ProviderCode, Message: c.clean(msg, 200)}
	}
	if err != nil {
		return page{}, nil, status, err
	}
	pg, err := parsePage(r.Payload)
	if err != nil {
		msg := "malformed order list: " + err.Error()
		if errors.Is(err, errNoList) {
			msg = err.Error()
		}
		if r.Message != "" {
			msg += " (" + r.Message + ")"
		}
		return page{}, nil, status, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status,
			ProviderCode: c.cleanCode(r.Code), Message: c.clean(msg, 200)}
	}
	orders := make([]orderInfo, 0, len(pg.Orders))
	for _, raw := range pg.Orders {
		d, err := parseOrder(raw)
		if err != nil {
			return page{}, nil, status, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: status, Message: "malformed order in list"}
		}
		orders = append(orders, d)
	}
	return pg, orders, status, nil
}

// excludes reports whether listed order d is surely not the one p
// describes, judged on the fields the list carries. Only its creation
// time counts: the values of OrderCategory and ProductCategory in an
// answer are not documented (the request types them otherwise), so they
// rule nothing out; an order of another category is told apart by its
// instance name like any other.
func (c *Client) excludes(d orderInfo, p providers.Params, start, end time.Time) bool {
	// The server already filtered by time; this only guards against one
	// that ignores the window, so it is widened by the time's slack: a
	// CreateTime in another zone than we assume must not rule our own
	// order out.
	if t, slack, ok := parseOrderTime(d.CreateTime); ok && (t.Before(start.Add(-slack)) || t.After(end.Add(slack))) {
		return true
	}
	return false
}

// uncertain reports whether listed order d, which carries our instance
// name, may still be another order than ours: neither adopted nor ruled
// out, it leaves the lookup to a person. So is an order created before
// the window by the UTC+8 reading of a zone-less CreateTime (and not by
// the UTC one, else excludes ruled it out): the zone is not documented, so
// it may predate our first attempt (a CreateTime with a zone names its
// instant: before the window, excludes ruled it out); one whose CreateTime
// cannot be read (the window written in UTC returns, from a server in
// UTC+8, the orders of eight hours earlier); and one whose OrderCategory
// is another word than ours (a renewal, or a word for a new purchase the
// documents do not give) or whose ProductCategory is not the one
// configured.
func (c *Client) uncertain(d orderInfo, p providers.Params, start time.Time) bool {
	if t, ok := earliestOrderTime(d.CreateTime); !ok || t.Before(start) {
		return true
	}
	if want := p.Str("orderCategory"); asciiWordRE.MatchString(d.OrderCategory) && asciiWordRE.MatchString(want) && !strings.EqualFold(d.OrderCategory, want) {
		return true
	}
	return c.productCategory != "" && d.ProductCategory != "" && !strings.EqualFold(d.ProductCategory, c.productCategory)
}

// asciiWordRE is a value from an English code list (NEW, RENEW, …); a
// number says nothing we could compare.
var asciiWordRE = regexp.MustCompile(`^[A-Za-z_]+$`)

// zoneSlack is the widest offset between UTC and UTC+8 readings of a
// zone-less time.
const zoneSlack = 8 * time.Hour

// parseOrderTime reads CreateTime, and says how far off the instant read
// may be (the slack):
//
//   - with a zone (RFC 3339, fractions allowed: "2026-01-02T10:03:00Z",
//     "2026-01-02T18:03:00.5+08:00", or the same with a space for the T):
//     the instant it names, slack zoneSlack all the same: a server may
//     write its UTC+8 wall clock with a Z (UniCloud's own SDK writes its
//     request times so), and a time read eight hours off must not rule
//     our own order out;
//   - without one ("yyyy-MM-dd HH:mm:ss", or with a T for the space,
//     fractions allowed): read in UTC+8, slack zoneSlack, since it may be
//     written in UTC;
//   - epoch seconds or milliseconds within 2001-2286: slack zoneSlack,
//     since nothing documents how the number was reckoned (a UTC+8 wall
//     clock taken for UTC would be eight hours off).
//
// Anything else is not read (and so rules nothing out).
func parseOrderTime(s string) (time.Time, time.Duration, bool) {
	if t, ok := parseZoned(s); ok {
		return t, zoneSlack, true
	}
	// Parsing accepts a fraction after the seconds though the layouts
	// show none.
	for _, layout := range []string{QueryTimeLayout, "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, ChinaTime()); err == nil {
			return t, zoneSlack, true
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case err != nil:
		return time.Time{}, 0, false
	case 1e9 <= n && n < 1e10:
		return time.Unix(n, 0), zoneSlack, true
	case 1e12 <= n && n < 1e13:
		return time.UnixMilli(n), zoneSlack, true
	}
	return time.Time{}, 0, false
}

// parseZoned reads a CreateTime with a zone (see parseOrderTime).
func parseZoned(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// earliestOrderTime is the earliest instant CreateTime s may name: the
// instant parseOrderTime reads, or, for a time with a zone, its wall clock
// read in UTC+8 when that is earlier (a Z written after a UTC+8 wall
// clock). An order is certain to be new only when even that instant is in
// the window: a time that names the instant truly in UTC is then certain
// only from eight hours on, and otherwise left to a person, as a
// zone-less time written in UTC is; trusted as written, a mislabelled one
// would let an older order with our name be adopted.
func earliestOrderTime(s string) (time.Time, bool) {
	t, _, ok := parseOrderTime(s)
	if !ok {
		return t, false
	}
	if z, ok := parseZoned(s); ok {
		w := time.Date(z.Year(), z.Month(), z.Day(), z.Hour(), z.Minute(), z.Second(), z.Nanosecond(), ChinaTime())
		if w.Before(t) {
			return w, true
		}
	}
	return t, true
}

func (c *Client) lookupByParams(ctx context.Context, o providers.Order, p providers.Params) (providers.Result, error) {
	const op = Name + " QueryOrders"
	if o.FirstAttempt.IsZero() {
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op,
			Message: "no first-attempt time to bound the search"}
	}
	// The window is second-granular (start rounds down when formatted);
	// the margin absorbs clock skew on both sides. The times carry no
	// zone, so the window is asked for twice: written in UTC+8, as the
	// provider's console shows times, and written in UTC, so that a server
	// reading them as UTC returns our order too (a server in UTC+8 answers
	// that one with the orders of eight hours earlier).
	start := o.FirstAttempt.Add(-c.margin)
	// When this lookup began: on the ledger's clock when the caller gives
	// it (the clock o.ShownFrom is on), names read from now on may rule
	// an order out in a lookup whose not-found is believed (nameCache).
	began := o.Now
	if began.IsZero() {
		began = c.now()
	}
	end := c.now()
	if o.Now.After(end) {
		// This worker's clock runs behind the ledger's, on which the
		// first attempt was stamped: the window ends at the later.
		end = o.Now
	}
	end = end.Add(c.margin)
	listed, err := c.sharedList(ctx, start, end, ChinaTime())
	if err != nil {
		return providers.Result{}, err
	}
	inUTC, err := c.sharedList(ctx, start, end, time.UTC)
	if err != nil {
		return providers.Result{}, err
	}
	listed = mergeOrders(slices.Clone(listed), inUTC)
	// Orders of ours the window must hold, created a listing lag ago or
	// more: one missing shows the listing is not whole. From half the
	// margin before the first attempt: inside the window with the
	// provider's clock off by up to that much (one off by more at worst
	// holds a lookup up, never lets one believe an absence).
	missing, checked, err := providers.MissingListed(ctx, o, o.FirstAttempt.Add(-c.margin/2), func(id string) bool {
		return slices.ContainsFunc(listed, func(d orderInfo) bool { return d.ID == id || d.OrderNo == id })
	})
	if err != nil {
		return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op,
			Message: "cannot tell which orders of ours the listing must show", Err: providers.Local(err)}
	}
	if missing != "" {
		return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: http.StatusOK,
			Message: providers.IncompleteListingMessage(missing), Err: providers.ErrNoNews}
	}
	if misnamed := c.misnamed(ctx, checked, listed, began); misnamed != "" {
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: http.StatusOK,
			Message: misnamedMessage(misnamed)}
	}
	// Counted after the listing was read: a rival whose order it shows
	// marked itself before its create left (see providers.Order.Rivals).
	rivals, err := countRivals(ctx, o, start.Truncate(time.Second).Add(-c.margin))
	if err != nil {
		return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op,
			Message: "cannot tell whether other orders with this instance name are being created", Err: providers.Local(err)}
	}
	name := p.Str("instanceName")
	// Orders another name shows, made while a throttled create of ours
	// may have acted, that no order of the ledger owns: counted only
	// where a not-found would be believed for a throttle
	// (providers.Order.Throttled), from when it would be.
	strangers := c.newStrangers(o, p, began)
	if strangers.on && c.shownAsSent(checked, listed, name) {
		// The listing shows the characters of our name that a store
		// may rewrite as sent: an order under another name is
		// another's.
		strangers.on = false
	}
	var ours []orderInfo
	unknown := 0
	uncertain := 0 // of unknown: our name, but maybe older than our first attempt, or of another category
	possible := 0  // of unknown: a name that may be ours shortened or normalised
	details := 0
	others := 0
	heldNos := 0 // of unknown: an OrderNo another record holds as its id
	// maybe are the ids of the unknown ones, for a person (providers.MayBe).
	var maybe []string
	for _, d := range listed {
		if c.excludes(d, p, start.Truncate(time.Second), end) {
			continue
		}
		d.Names = keepNames(d.Names, name)
		if d.Names == nil && d.ID != "" {
			if e, ok := c.names.get(d.ID); ok && e.usable(o, began, c.lag(o)) {
				d.Names = keepNames(e.names, name)
			}
		}
		if d.Names != nil && matchNames(d.Names, name) == nameOther {
			strangers.note(d) // another instance's order, or ours renamed
			continue
		}
		// An order that could be ours but belongs to another record under
		// its Id is that record's, whatever its name: never adopted, and
		// not detailed either. One held under its OrderNo only is not
		// ruled out (see owner).
		own, err := owner(ctx, o, d.ID, d.OrderNo)
		if err != nil {
			return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: http.StatusOK,
				Message: "cannot tell whether a listed order belongs to another order", Err: providers.Local(err)}
		}
		if own == ownedByID {
			others++
			continue
		}
		heldNo := own == ownedByOrderNo
		// Detailed: an order without names in the list, or one with our
		// name but no CreateTime there (which the detail may carry).
		detail := d.ID != "" && (d.Names == nil || d.CreateTime == "")
		if detail && c.misses.recent(d.ID, c.now()) {
			// OrderDetail did not know it a moment ago (its detail behind
			// the listing): left unidentified without asking again, as
			// the answer would leave it.
			detail = false
		}
		if detail {
			if details == MaxDetails {
				return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op,
					Message: fmt.Sprintf("more than %d candidate orders to identify", MaxDetails)}
			}
			details++
			dd, status, err := c.orderDetail(ctx, d.ID)
			switch {
			case providers.CodeOf(err) == providers.NotFound:
				// Listed but not detailed: leave it unidentified, and
				// do not ask again for a while.
				c.misses.put(d.ID, c.now())
			case err != nil:
				return providers.Result{}, err
			case dd.ID != d.ID:
				// Its names would be another order's (or, without an Id,
				// any order's): ours could be ruled out by them.
				msg := "OrderDetail answered for another order"
				if dd.ID == "" {
					msg = "OrderDetail answered an order without an Id"
				}
				return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: Name + " OrderDetail", HTTPStatus: status,
					Message: msg}
			case c.excludes(dd, p, start.Truncate(time.Second), end):
				continue
			default:
				if d.OrderNo == "" && dd.OrderNo != "" && dd.OrderNo != d.ID {
					// The list did not show the order's other number: ask
					// under the one the detail shows.
					d.OrderNo = dd.OrderNo
					own, err := owner(ctx, o, "", d.OrderNo)
					if err != nil {
						return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: http.StatusOK,
							Message: "cannot tell whether a listed order belongs to another order", Err: providers.Local(err)}
					}
					heldNo = own == ownedByOrderNo
				}
				if d.Names == nil {
					d.Names = keepNames(dd.Names, name)
					c.names.put(d.ID, dd.Names, began, c.now())
				}
				d.CreateTime = cmp.Or(d.CreateTime, dd.CreateTime)
				d.OrderCategory = cmp.Or(d.OrderCategory, dd.OrderCategory)
				d.ProductCategory = cmp.Or(d.ProductCategory, dd.ProductCategory)
				d.PayTime = cmp.Or(d.PayTime, dd.PayTime)
				if dd.closed() != "" && d.closed() == "" {
					// The detail says cancelled or failed where the list
					// did not: it counts.
					d.OrderStatus, d.CancelType = dd.OrderStatus, dd.CancelType
				} else {
					d.OrderStatus = cmp.Or(d.OrderStatus, dd.OrderStatus)
					d.CancelType = cmp.Or(d.CancelType, dd.CancelType)
				}
			}
		}
		if heldNo && (d.Names == nil || matchNames(d.Names, name) != nameOther) {
			// Not another instance's, and its OrderNo is another record's
			// provider order id: that record's order if OrderId is the
			// OrderNo, or ours if the two are numbered apart and ours
			// happens to carry that number. Neither adopted nor ruled
			// out: ruled out, ours would be created twice.
			unknown++
			maybe = append(maybe, d.ID)
			heldNos++
			continue
		}
		switch match := matchNames(d.Names, name); {
		case d.Names == nil:
			unknown++
			maybe = append(maybe, d.ID)
		case match == nameOther:
			if !heldNo {
				strangers.noteUnowned(d)
			}
		case match == namePossible:
			// A name ours may have been shortened or normalised to (or
			// from): neither ours nor another's.
			unknown++
			maybe = append(maybe, d.ID)
			possible++
		case d.ID == "":
			// Ours by name, but without an id no ledger can own it:
			// another record could adopt the same order.
			unknown++
			maybe = append(maybe, d.ID)
		case c.uncertain(d, p, start.Truncate(time.Second)):
			unknown++
			maybe = append(maybe, d.ID)
			uncertain++
		default:
			ours = append(ours, d)
		}
	}
	switch {
	case len(ours) == 1 && unknown == 0 && rivals > 0:
		// The order listed may be a rival's, whose id is not recorded
		// yet: not ours to take, nor to rule out.
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: http.StatusOK,
			Message: fmt.Sprintf("one order in the window carries this instance name, and %d other orders with it may have been created whose ids are not recorded yet; not guessing", rivals)}
	case len(ours) == 1 && unknown == 0 && ours[0].closed() != "":
		// Ours, but not paid: neither paid nor absent (created again, it
		// could be created twice).
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: http.StatusOK,
			Message: c.clean(notPaidMessage(ours[0].closed()), 200)}
	case len(ours) == 1 && unknown == 0:
		// Identified by matching the listing (CreateOrder takes no client
		// order number): Matched, which the caller records with the id,
		// and Held for a person (Options.TakeMatched): an order someone
		// else made with this name since our first attempt matches the
		// same way.
		msg := ours[0].describe("found by QueryOrders")
		held := !c.takeMatched
		if c.takeMatched && !c.standingStatus(ours[0].OrderStatus) {
			held, msg = true, msg+"; "+unreadStatusMessage(ours[0].OrderStatus)
		}
		return providers.Result{Status: providers.StatusPaid, ProviderOrderID: ours[0].ID, HTTPStatus: http.StatusOK,
			Message: c.clean(msg, 200), Matched: true, Held: held}, nil
	case len(ours) == 0 && unknown == 0 && strangers.on:
		found, more, err := strangers.find(ctx, o)
		if err != nil {
			return providers.Result{}, &providers.Error{Code: providers.Unavailable, Op: op, HTTPStatus: http.StatusOK,
				Message: "cannot tell whether a listed order belongs to another order", Err: providers.Local(err)}
		}
		if len(found) > 0 {
			return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: http.StatusOK,
				Message: c.clean(strangersMessage(len(listed), found, more), 600)}
		}
		fallthrough
	case len(ours) == 0 && unknown == 0:
		msg := fmt.Sprintf("none of %d orders in the window is this one", len(listed))
		if others > 0 {
			msg += fmt.Sprintf(" (%d belong to other orders)", others)
		}
		return providers.Result{}, &providers.Error{Code: providers.NotFound, Op: op, HTTPStatus: http.StatusOK, Message: msg}
	default:
		ids := make([]string, 0, len(ours)+len(maybe))
		for _, d := range ours {
			ids = append(ids, d.ID)
		}
		msg := providers.MayBe(append(ids, maybe...)) + fmt.Sprintf("%d orders in the window carry this instance name and %d cannot be identified; not guessing", len(ours), unknown)
		if uncertain > 0 {
			msg += fmt.Sprintf(" (%d carry it but may predate the first attempt, by a CreateTime whose zone is not documented, or are of another category)", uncertain)
		}
		if possible > 0 {
			msg += fmt.Sprintf(" (%d carry a name that may be this instance name shortened or normalised)", possible)
		}
		if heldNos > 0 {
			msg += fmt.Sprintf(" (%d carry an OrderNo another order holds as its provider order id)", heldNos)
		}
		return providers.Result{}, &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: http.StatusOK, Message: c.clean(msg, 600)}
	}
}

// strangerMargin widens the span in which an order made may be ours
// (strangers) on either side, for the provider's clock against the
// ledger's: far less than the search's margin, since every order it takes
// in holds a throttled order back.
const strangerMargin = 2 * time.Minute

// strangersNamed is how many of the orders that hold a lookup back
// (strangers) its message names.
const strangersNamed = 5

// strangers gathers, for a lookup whose not-found would be believed only
// because every create of the order that may have been received was
// answered throttled (providers.Order.Throttled), the listed orders that
// show another name than ours, of our category and product (a rename
// keeps those), and were made while such a create may have acted: from
// the first attempt until the not-found would be believed
// (providers.Order.ShownFrom: the last create's end, the listing lag and
// the longest create overrun any worker marked a create of it with),
// each widened by strangerMargin, by either reading of a CreateTime whose
// zone is not documented (one that cannot be read counts). No document
// says the listing shows an order under the name its create sent, nor
// that a throttle comes before the order is made: such an order that no
// order of the ledger owns may be ours, renamed (a black-box run's server
// listed the file system's id, or the name's UTF-8 read as another code
// page, and every order whose create it throttled after making it was
// made twice). The lookup then answers Ambiguous, and the order is looked
// up again until such orders are owned or a person decides; unless the
// listing shows the characters of our name a store may rewrite as sent
// (shownAsSent).
type strangers struct {
	on                bool
	from, to          time.Time
	category, product string      // ours, and the configured product
	unasked           []orderInfo // owner not asked yet
	unowned           []orderInfo // owned by no order
}

func (c *Client) newStrangers(o providers.Order, p providers.Params, began time.Time) *strangers {
	s := &strangers{on: o.Throttled && (o.ShownFrom.IsZero() || !began.Before(o.ShownFrom))}
	if !s.on {
		return s
	}
	end := o.ShownFrom
	if end.IsZero() {
		end = o.LastCreate
		if end.IsZero() {
			end = began
		}
		end = end.Add(max(c.overrun, 0))
	}
	s.from, s.to = o.FirstAttempt.Add(-strangerMargin), end.Add(strangerMargin)
	s.category, s.product = p.Str("orderCategory"), c.productCategory
	return s
}

// mayBe reports whether d may be ours renamed: of our order category and
// product (when both sides name them in words), and made within the span
// by a reading of its CreateTime (createReadings).
func (s *strangers) mayBe(d orderInfo) bool {
	if asciiWordRE.MatchString(d.OrderCategory) && asciiWordRE.MatchString(s.category) && !strings.EqualFold(d.OrderCategory, s.category) {
		return false
	}
	if s.product != "" && d.ProductCategory != "" && !strings.EqualFold(d.ProductCategory, s.product) {
		return false
	}
	readings, ok := createReadings(d.CreateTime)
	if !ok {
		return true
	}
	for _, at := range readings {
		if !at.Before(s.from) && !at.After(s.to) {
			return true
		}
	}
	return false
}

// shownAsSent reports whether listed shows an order of ours (checked: one
// a create was answered with, with the name it sent) under exactly that
// name, a name that holds every character of ours that a store or a page
// may rewrite (one outside ASCII; &, <, >, " and '): those characters are
// then shown as sent, and an order under another name is not ours
// renamed. A name shown as sent proves nothing of characters it does not
// hold: a black-box run's server showed ASCII names as sent and Chinese
// ones as their UTF-8 read byte by byte; another showed accented Latin
// letters as sent and Chinese ones as HTML entities.
func (c *Client) shownAsSent(checked []providers.ListedOrder, listed []orderInfo, ours string) bool {
	need := rewritable(ours)
	for _, e := range checked {
		if e.Name == "" || !holdsAll(e.Name, need) {
			continue
		}
		for _, d := range listed {
			if d.ID != e.ID && d.OrderNo != e.ID {
				continue
			}
			names := d.Names
			if names == nil && d.ID != "" {
				cached, _ := c.names.get(d.ID)
				names = cached.names
			}
			if slices.Contains(names, e.Name) {
				return true
			}
		}
	}
	return false
}

// rewritable is the characters of name that a store or a page may rewrite:
// those outside ASCII, and &, <, >, " and '.
func rewritable(name string) []rune {
	var rs []rune
	for _, r := range name {
		if (r >= utf8.RuneSelf || strings.ContainsRune(`&<>"'`, r)) && !slices.Contains(rs, r) {
			rs = append(rs, r)
		}
	}
	return rs
}

// holdsAll reports whether name holds every one of rs.
func holdsAll(name string, rs []rune) bool {
	for _, r := range rs {
		if !strings.ContainsRune(name, r) {
			return false
		}
	}
	return true
}

// createReadings are the instants a CreateTime may name (see
// parseOrderTime): without a zone, its wall clock in UTC+8 or in UTC; with
// one, the instant it names or its wall clock in UTC+8 (a Z written after
// a UTC+8 wall clock); a number, the instant it counts or eight hours
// before (a UTC+8 wall clock counted as UTC). False when it cannot be read.
func createReadings(v string) ([]time.Time, bool) {
	t, _, ok := parseOrderTime(v)
	switch {
	case !ok:
		return nil, false
	case isZoned(v):
		w, _ := earliestOrderTime(v)
		return []time.Time{t, w}, true
	case isNumber(v):
		return []time.Time{t, t.Add(-zoneSlack)}, true
	}
	return []time.Time{t, t.Add(zoneSlack)}, true
}

// isZoned reports whether CreateTime v names its zone.
func isZoned(v string) bool { _, ok := parseZoned(v); return ok }

// isNumber reports whether CreateTime v is a count of seconds or
// milliseconds.
func isNumber(v string) bool { _, err := strconv.ParseInt(v, 10, 64); return err == nil }

// note takes d, listed under another name, whose owner is not asked yet.
func (s *strangers) note(d orderInfo) {
	if s.on && s.mayBe(d) {
		s.unasked = append(s.unasked, d)
	}
}

// noteUnowned takes d, listed under another name, owned by no order.
func (s *strangers) noteUnowned(d orderInfo) {
	if s.on && s.mayBe(d) {
		s.unowned = append(s.unowned, d)
	}
}

// find returns the orders taken that no order of the ledger owns, up to
// strangersNamed of them (asking the ledger about each until it has as
// many), and whether there are more.
func (s *strangers) find(ctx context.Context, o providers.Order) (found []orderInfo, more bool, err error) {
	found = s.unowned
	for _, d := range s.unasked {
		if len(found) == strangersNamed {
			return found, true, nil
		}
		own, err := owner(ctx, o, d.ID, d.OrderNo)
		if err != nil {
			return nil, false, err
		}
		if own == notOwned {
			found = append(found, d)
		}
	}
	if len(found) > strangersNamed {
		return found[:strangersNamed], true, nil
	}
	return found, false, nil
}

// strangersMessage is a lookup's answer when found (and more, when
// more) of the listed orders may be ours renamed (see strangers).
func strangersMessage(listed int, found []orderInfo, more bool) string {
	ids := make([]string, 0, len(found))
	unnamed := 0
	for _, d := range found {
		if id := cmp.Or(d.ID, d.OrderNo); id != "" {
			ids = append(ids, id)
		} else {
			unnamed++
		}
	}
	which := ""
	switch {
	case more:
		which = " (and more)"
	case unnamed > 0:
		which = fmt.Sprintf(" (%d without an id)", unnamed)
	}
	// The ids first, whole (providers.MayBe): the recorded reason is cut
	// to a few hundred characters (a review: the last of five ids after
	// this text was cut).
	// Short after them: what a person needs first stays within the cut.
	return providers.MayBe(ids) + fmt.Sprintf("may be this order renamed: none of %d listed carries its name, and orders of its category made while a create of it may have acted belong to no order here%s (a throttled create proves nothing unmade); not guessing", listed, which)
}

// misnamed returns the id of an order in checked (Order.Listed: one a
// create of ours was answered with) that listed shows under names none of
// which can be the name that create sent (as the lookup judges names:
// matchNames, which allows for a name stored normalised, cut short or
// lossily); "" when none does. The listing's names are then not the names
// sent (a field that shows the file system's id, names changed since),
// so a listed order's name shows neither that it is ours nor that it is
// another's: a lookup that went by them could take another's order, or
// believe ours absent and have it created again. An order listed without
// names is judged by the names OrderDetail gives it (asked within
// MaxDetails, and remembered, names or none), or not at all when its
// detail is not there yet or cannot be read: the check is one more
// reason not to believe a listing, never a reason for a lookup to fail.
func (c *Client) misnamed(ctx context.Context, checked []providers.ListedOrder, listed []orderInfo, began time.Time) string {
	details := 0
	// detail reads an order's names, remembered (a detail without names
	// is not asked again for a while: it may come to carry them); nil
	// when it could not (not known yet, a failure, the details spent).
	detail := func(id, name string) []string {
		if details == MaxDetails || c.misses.recent(id, c.now()) || c.nameless.recent(id, c.now()) {
			return nil
		}
		details++
		switch dd, _, err := c.orderDetail(ctx, id); {
		case providers.CodeOf(err) == providers.NotFound:
			c.misses.put(id, c.now())
		case err == nil && dd.ID == id:
			names := keepNames(dd.Names, name)
			if names == nil {
				// No names (yet): not asked again for a while, and what
				// was read before stands meanwhile.
				c.nameless.put(id, c.now())
				return nil
			}
			c.names.put(id, dd.Names, began, c.now())
			return names
		}
		return nil
	}
	for _, e := range checked {
		if e.Name == "" {
			continue
		}
		// The orders that may be it: by its Id, or by its OrderNo (which
		// of the two CreateOrder's OrderId is, is not documented). Judged
		// misnamed only when each of them has names and none shows it.
		candidates, judged, named := 0, 0, false
		for _, d := range listed {
			if d.ID != e.ID && d.OrderNo != e.ID {
				continue
			}
			candidates++
			// Names as the main loop reads them: a blank one, or only a
			// cut mark, is none, and the detail is asked.
			names := keepNames(d.Names, e.Name)
			if names == nil && d.ID != "" {
				cached, _ := c.names.get(d.ID)
				names = keepNames(cached.names, e.Name)
				if names != nil && matchNames(names, e.Name) == nameOther && !cached.fresh(c.now()) {
					// Names read a while ago that are not the ones sent:
					// read again before they judge (the order may have
					// been read while it was being provisioned, under
					// another name for a moment); kept if that fails.
					if again := detail(d.ID, e.Name); again != nil {
						names = again
					}
				}
				if names == nil {
					names = detail(d.ID, e.Name)
				}
			}
			if len(names) > 0 {
				judged++
				named = named || matchNames(names, e.Name) != nameOther
			}
		}
		if judged > 0 && judged == candidates && !named {
			return e.ID
		}
	}
	return ""
}

// misnamedMessage is the message of a lookup whose listing shows an order
// of ours under another name (see misnamed).
func misnamedMessage(id string) string {
	return fmt.Sprintf("the listing shows order %s, which a create of ours was answered with, under an instance name that is not the one that create sent: its names are not the names sent (another field shown as the name, or names changed), so they tell no order apart; not guessing", providers.Truncate(id, 64))
}

// countRivals is o.Rivals's count since since, 0 without it. The caller
// passes the window's start (as the listing is judged: to the second) less
// the clock margin once more: an order a rival's create made before that,
// on our clock, is out of the window whatever the provider's clock says
// within the margin, or uncertain (its CreateTime may be in another zone),
// which no listing match takes.
func countRivals(ctx context.Context, o providers.Order, start time.Time) (int, error) {
	if o.Rivals == nil {
		return 0, nil
	}
	return o.Rivals(ctx, start)
}

// ownership is what o.Owned says of a listed order.
type ownership int

const (
	notOwned       ownership = iota
	ownedByID                // another record holds its Id: that record's order
	ownedByOrderNo           // another record holds its OrderNo, not its Id
)

// owner asks o.Owned about a listed order under its Id, then under its
// OrderNo (each when not empty, OrderNo only when it differs from Id).
// The documents list both on Order and do not say which one CreateOrder's
// OrderId is, so a ledger may hold either. The client takes OrderId for
// the Id: an order whose Id another record holds is that record's. One
// whose OrderNo only is held may be that record's (were OrderId the
// OrderNo), or ours (were the two numbered apart, ours could carry an
// OrderNo equal to another order's Id): the caller leaves it undecided.
func owner(ctx context.Context, o providers.Order, id, orderNo string) (ownership, error) {
	if o.Owned == nil {
		return notOwned, nil
	}
	if id != "" {
		if taken, err := o.Owned(ctx, id); err != nil || taken {
			return ownedByID, err
		}
	}
	if orderNo != "" && orderNo != id {
		if taken, err := o.Owned(ctx, orderNo); err != nil || taken {
			return ownedByOrderNo, err
		}
	}
	return notOwned, nil
}

// nameMatch is how the instance names a listed order carries compare with
// ours.
type nameMatch int

const (
	// nameOther: none of them can be ours.
	nameOther nameMatch = iota
	// namePossible: none equals ours, but one may be ours as the provider
	// stored or shows it (see mayBeOurs).
	namePossible
	// nameOurs: one equals ours byte for byte.
	nameOurs
)

func matchNames(names []string, ours string) nameMatch {
	m := nameOther
	for _, n := range names {
		switch {
		case n == ours:
			return nameOurs
		case mayBeOurs(n, ours):
			m = namePossible
		}
	}
	return m
}

// minPrefix is how many characters the shorter of two names must have for
// one being a prefix of the other to make it possibly ours (or all of ours,
// when ours is shorter).
const minPrefix = 8

// mayBeOurs reports whether listed, a name other than ours, may still be
// ours as the provider stored or shows it. The documents give instanceName
// no length, character set or promise to echo it unchanged, so a name is
// another instance's only when it cannot be ours shortened or normalised:
// both are compared with surrounding space trimmed, inner space collapsed,
// case folded and full-width ASCII read as ASCII; two names whose letters
// and digits are the same, in the same order, may be the same name with
// its punctuation rewritten (ise-fs_prod.01 stored as ise-fs-prod-01, or
// without it); a listed name that was
// cut (a trailing replacement character, "…" or "...") is compared without
// the mark; and one that is a prefix of ours, or ours of it, may be ours
// when the shorter of the two has at least min(minPrefix, length of ours)
// characters: a short stub (or nothing) is a prefix of too many names.
// Each rule is tried on the names as sent and listed, then in Unicode's
// composed form (NFKC) and as their base letters (NFKD without combining
// marks): a name sent decomposed and listed composed, or cut next to an
// accent, may be ours in one form and not in another. A listed name in
// ASCII is also compared with what is left of ours without its characters
// outside ASCII, as a store that drops them would keep it.
func mayBeOurs(listed, ours string) bool {
	lf, of := nameForms(listed), nameForms(ours)
	for i := range lf {
		if mayBeOursAs(lf[i], of[i]) {
			return true
		}
	}
	// Through a store that drops the characters it cannot hold: ours as
	// the rest of it, its characters outside ASCII taken out (a
	// black-box run had orders named 测试盘-r5-0070 listed as r5-0070,
	// taken for others', and created twice). Only a listed name all in
	// ASCII, with no '?' (a store that shows what it cannot hold as '?'
	// keeps their place: lossy), and a rest with a letter or digit (one
	// of punctuation alone would be a prefix of too many names).
	if strings.ContainsRune(listed, '?') || !isASCII(listed) {
		return false
	}
	for i := range lf {
		if rest := normName(asciiOnly(of[i])); rest != of[i] && alnum(rest) != "" && mayBeOursAs(lf[i], rest) {
			return true
		}
	}
	return false
}

// asciiOnly is s without its characters outside ASCII.
func asciiOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= utf8.RuneSelf {
			return -1
		}
		return r
	}, s)
}

// isASCII reports whether s holds only ASCII characters.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// mayBeOursAs is mayBeOurs on two names normalised alike (normName).
func mayBeOursAs(l, o string) bool {
	if l == o {
		return true
	}
	if a := alnum(o); a != "" && alnum(l) == a {
		return true
	}
	if strings.ContainsAny(l, "?\uFFFD") && lossy(l) == lossy(o) {
		// Stored through a column that cannot hold its characters (a
		// latin1 one shows each as '?'): a black-box run had orders
		// named 测试盘-… listed as ???-…, taken for others' and created
		// four times.
		return true
	}
	l = cutName(l)
	// As they are, then by their letters and digits (punctuation
	// rewritten, and cut).
	return prefixed(l, o) || alnum(o) != "" && prefixed(alnum(l), alnum(o))
}

// lossy is s with each run of characters outside ASCII, of '?' and of
// replacement characters made one '?': the shape a name keeps through a
// store that cannot hold its characters.
func lossy(s string) string {
	var b strings.Builder
	mark := false
	for _, r := range s {
		if r >= utf8.RuneSelf || r == '?' {
			if !mark {
				b.WriteByte('?')
			}
			mark = true
			continue
		}
		mark = false
		b.WriteRune(r)
	}
	return b.String()
}

// nameForms is s normalised (normName) as written, in Unicode's composed
// form (NFKC) and as its base letters (NFKD without combining marks).
func nameForms(s string) [3]string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return [3]string{normName(s), normName(norm.NFKC.String(s)), baseName(s)}
}

// baseName is s by its base letters (NFKD, combining marks dropped),
// normalised (normName): café, cafe\u0301 and CAFE are one name.
func baseName(s string) string {
	return normName(strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, norm.NFKD.String(strings.ToValidUTF8(s, "\uFFFD"))))
}

// prefixed reports whether one of l and o is a prefix of the other, the
// shorter having at least min(minPrefix, length of o) characters.
func prefixed(l, o string) bool {
	if !strings.HasPrefix(o, l) && !strings.HasPrefix(l, o) {
		return false
	}
	shorter := min(utf8.RuneCountInString(l), utf8.RuneCountInString(o))
	return shorter >= min(minPrefix, utf8.RuneCountInString(o))
}

// cutName strips the cut marks (a trailing replacement character, "…" or
// "...") from the end of normalised name s.
func cutName(s string) string {
	for {
		t := strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "\uFFFD"), "…"), "..."))
		if t == s {
			return s
		}
		s = t
	}
}

// keepNames returns names without those that are empty once normalised
// and stripped of cut marks (unless equal to ours): such a name names
// nothing, and the order is judged by its other names, or, with none
// left, as one that carries no name (nil).
func keepNames(names []string, ours string) []string {
	var kept []string
	for _, n := range names {
		if n == ours || cutName(normName(n)) != "" {
			kept = append(kept, n)
		}
	}
	return kept
}

// alnum is normalised name s with only its letters and digits.
func alnum(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, s)
}

// normName trims and collapses white space, folds case and reads
// full-width ASCII forms as ASCII (nameForms adds Unicode's other forms
// of the same text).
func normName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\u3000':
			return ' '
		case '\uFF01' <= r && r <= '\uFF5E':
			r -= 0xFEE0
		}
		f := r
		for g := unicode.SimpleFold(r); g != r; g = unicode.SimpleFold(g) {
			f = min(f, g)
		}
		return f
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return strings.Join(strings.Fields(s), " ")
}

// mergeOrders appends to a the orders of b it does not hold (by id: Id, or
// OrderId for an order without one). An order without either is always
// appended: nothing shows it is one already held.
func mergeOrders(a, b []orderInfo) []orderInfo {
	seen := make(map[string]bool, len(a))
	for _, d := range a {
		if d.ID != "" {
			seen[d.ID] = true
		}
	}
	for _, d := range b {
		if d.ID == "" || !seen[d.ID] {
			a = append(a, d)
		}
	}
	return a
}

// nameCache remembers the instance names of orders already detailed, and
// when they were read: at volume this is what lets lookups finish, each
// one detailing only orders no earlier lookup has seen. An order's names
// are taken to be as sent once the listing lag has passed since its create
// (as its listing is); before that a server may show another (the file
// system's id while the order is provisioned, say). Names read a listing
// lag or more after the client first read the order's (settled) stand for
// every lookup. Names read before are used by lookups whose not-found is
// not believed yet, and not by one at or after its Order.ShownFrom, which
// reads them again (usable); and a verdict that our own order is listed
// under another name (misnamed) rests only on names read a moment ago
// (fresh).
type nameCache struct {
	mu sync.Mutex
	m  map[string]cachedNames
}

// cachedNames is a nameCache entry.
type cachedNames struct {
	names []string
	// read is the Order.Now of the lookup that read them (the ledger's
	// clock, when the lookup was given it: when it began, before the
	// read), or the client's clock at its start otherwise; first is the
	// read of the first names cached for the order.
	read, first time.Time
	// at is when they were read, on the client's clock.
	at time.Time
}

// usable reports whether the names may rule an order out in o's lookup,
// beginning at now, with lag the listing lag: when settled, or while o's
// not-found is not believed (now before o.ShownFrom), or read since then.
func (e cachedNames) usable(o providers.Order, now time.Time, lag time.Duration) bool {
	settled := lag > 0 && !e.read.Before(e.first.Add(lag))
	return settled || o.ShownFrom.IsZero() || now.Before(o.ShownFrom) || !e.read.Before(o.ShownFrom)
}

// missCache remembers, for detailMissTTL, the listed orders OrderDetail
// did not know (its detail behind the listing): lookups meanwhile leave
// them unidentified without asking again. Without it, every lookup of
// every order whose window holds such orders asked for each of them (a
// black-box run: 75,174 OrderDetail calls in 9 minutes for 150 orders,
// against a detail 90 s behind the listing). An order of ours among them
// stays unidentified a little longer: its lookup waits, as it would.
type missCache struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// detailMissTTL is how long a missCache entry stands.
const detailMissTTL = 15 * time.Second

func (n *missCache) recent(id string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	at, ok := n.m[id]
	return ok && now.Sub(at) >= 0 && now.Sub(at) < detailMissTTL
}

func (n *missCache) put(id string, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil || len(n.m) >= maxCachedNames {
		n.m = make(map[string]time.Time)
	}
	n.m[id] = now
}

// maxCachedNames bounds the cache; past it, it starts over.
const maxCachedNames = 100_000

// fresh reports whether the names were read less than detailMissTTL
// before now (the client's clock).
func (e cachedNames) fresh(now time.Time) bool {
	return now.Sub(e.at) >= 0 && now.Sub(e.at) < detailMissTTL
}

func (n *nameCache) get(id string) (cachedNames, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	v, ok := n.m[id]
	return v, ok
}

func (n *nameCache) put(id string, names []string, read, at time.Time) {
	if names == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil || len(n.m) >= maxCachedNames {
		n.m = make(map[string]cachedNames)
	}
	first := read
	if e, ok := n.m[id]; ok && e.first.Before(read) {
		first = e.first
	}
	n.m[id] = cachedNames{names: names, read: read, first: first, at: at}
}

// lag is the listing lag names settle within: the caller's
// (Order.ListingLag).
func (c *Client) lag(o providers.Order) time.Duration { return o.ListingLag }
