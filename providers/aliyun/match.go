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
	// Excluded: some field the listing gives differs, so it is not ours.
	Excluded Verdict = iota
	// Candidate: every field needed to recognise the order is given and
	// matches.
	Candidate
	// Undecidable: nothing excludes it, but the listing lacks a field
	// needed to recognise it (commodityCode, copies or the creation time)
	// or to refer to it (orderId).
	Undecidable
)

// Match judges one listed order against the params of the order being
// looked up and the earliest time it may have been created (FirstAttempt
// minus the margin). See the package doc for the rules.
func Match(p CreateParams, since time.Time, o OrderInfo) Verdict {
	v := Candidate
	if o.OrderID == "" {
		v = Undecidable // ours or not, it could not be looked at again
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
	switch {
	case o.Created.IsZero():
		v = Undecidable
	case o.Created.Before(since):
		return Excluded
	}
	return v
}

// Decide applies Match to every listed order: exactly one candidate and
// nothing undecidable is a match; no candidate and nothing undecidable is
// none; anything else is not decidable, and reason says why.
func Decide(p CreateParams, since time.Time, orders []OrderInfo) (match OrderInfo, found bool, reason string) {
	var cands []OrderInfo
	undecidable := 0
	for _, o := range orders {
		switch Match(p, since, o) {
		case Candidate:
			cands = append(cands, o)
		case Undecidable:
			undecidable++
		}
	}
	switch {
	case undecidable > 0:
		return OrderInfo{}, false, fmt.Sprintf("%d listed order(s) lack the fields to tell whether they are this one", undecidable)
	case len(cands) > 1:
		return OrderInfo{}, false, fmt.Sprintf("%d orders match (same device, commodity and copies since the first attempt); refusing to guess", len(cands))
	case len(cands) == 1:
		return cands[0], true, ""
	}
	return OrderInfo{}, false, ""
}

// find searches the device's orders (order/query, every page up to
// MaxPages) for the one o may have created.
func (c *Client) find(ctx context.Context, o providers.Order, p CreateParams) (answer, OrderInfo, error) {
	op := opName(PathQuery)
	if o.FirstAttempt.IsZero() {
		return answer{}, OrderInfo{}, &providers.Error{Code: providers.FailedPrecondition, Op: op,
			Message: "no first-attempt time to bound the search"}
	}
	since := o.FirstAttempt.Add(-c.margin)
	var all []OrderInfo
	seen := map[string]bool{}
	var last answer
	complete := false
	for page := 1; page <= c.maxPages; page++ {
		a, err := c.call(ctx, PathQuery, pageParams{IotID: p.IotID, PageNo: page, PageSize: c.pageSize}, callOpts{timeout: c.timeout, personal: p.UserName})
		if err != nil {
			return answer{}, OrderInfo{}, err
		}
		last = a
		list, err := ParseOrderList(a.data)
		if err != nil {
			return answer{}, OrderInfo{}, &providers.Error{Code: providers.Unavailable, Op: op,
				HTTPStatus: a.status, ProviderCode: "200", Message: "malformed order list"}
		}
		added := 0
		for _, o := range list.Orders {
			if o.OrderID != "" && seen[o.OrderID] {
				continue // listed again as the pages shifted
			}
			seen[o.OrderID] = true
			all = append(all, o)
			added++
		}
		if added == 0 && len(list.Orders) > 0 {
			break // the same page again: paging does not work, stop unsure
		}
		// The list ends at an empty page, or once the total is reached.
		// A short page alone does not end it: the server may serve
		// fewer than PageSize orders per page.
		if len(list.Orders) == 0 || (list.Total >= 0 && int64(len(all)) >= list.Total) {
			complete = true
			break
		}
	}
	ambiguous := func(msg string) error {
		return &providers.Error{Code: providers.Ambiguous, Op: op, HTTPStatus: last.status, ProviderCode: "200", Message: msg}
	}
	if !complete {
		return answer{}, OrderInfo{}, ambiguous(fmt.Sprintf("device has more than %d orders; cannot search them all", c.maxPages*c.pageSize))
	}
	m, found, reason := Decide(p, since, all)
	switch {
	case reason != "":
		return answer{}, OrderInfo{}, ambiguous(reason)
	case !found:
		return answer{}, OrderInfo{}, &providers.Error{Code: providers.NotFound, Op: op, HTTPStatus: last.status,
			ProviderCode: "200", Message: "no matching order since the first attempt"}
	}
	return last, m, nil
}
