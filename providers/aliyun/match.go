package aliyun

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"

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
	// rule a creation time that tells) or to refer to it (orderId).
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
	// Excluded, and one whose listing gives no creation time, or one that
	// cannot be right (see Plausible), is Undecidable. A time read without
	// a zone is Excluded only when it falls before Since by more than
	// ZoneSlack, a Candidate only when it falls ZoneSlack or more after
	// Since, and Undecidable in between.
	Since time.Time
	// Now is the time a creation time may not be more than a day after
	// (see Plausible); zero means time.Now().
	Now time.Time
}

// ZoneSlack is how far, either way, a creation time read without a zone
// is taken to be from the instant it means: the largest offset a zone has
// from UTC. Read as UTC+8, a time written in any zone from UTC−6 to UTC+14
// (UTC and China time included) is within it.
const ZoneSlack = 14 * time.Hour

// earliestCreation is before any order of this API: a creation time
// before it was misread.
var earliestCreation = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)

// Plausible reports whether a listed creation time can be right: from
// 2015 on and no more than a day after now. Anything else (a time in
// seconds read as milliseconds, say) was misread and counts as unknown.
func Plausible(t, now time.Time) bool {
	return !t.IsZero() && !t.Before(earliestCreation) && !t.After(now.Add(24*time.Hour))
}

// SnapshotRule returns the rule for an order whose snapshot is known (known
// may be empty, never nil, when the device had no orders).
func SnapshotRule(p CreateParams, known []string) Rule {
	set := make(map[string]bool, len(known))
	for _, id := range known {
		// As listings are read (an id with space around it is the id
		// without it), a snapshot recorded before they were too.
		set[strings.TrimSpace(id)] = true
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
		if codeForm(o.CommodityCode) != codeForm(p.CommodityCode) {
			return Excluded
		}
		// The same code by its letters and digits: nothing documents
		// that a listing gives the code back as it was sent, so this may
		// be ours with its case or punctuation rewritten.
		v = Undecidable
	}
	switch {
	case o.Copies == 0:
		v = Undecidable
	case o.Copies != p.Copies:
		return Excluded
	}
	if p.UserID != "" && o.UserID != "" && o.UserID != p.UserID {
		// userId may be the platform identity or the vendor's own
		// account id, and nothing says the listing gives back what was
		// sent (the documented answer shows the identityId): a
		// different one does not prove the order is not ours.
		v = Undecidable
	}
	if r.Known == nil {
		now := r.Now
		if now.IsZero() {
			now = time.Now()
		}
		switch {
		case !Plausible(o.Created, now):
			v = Undecidable
		case !o.CreatedNoZone:
			if o.Created.Before(r.Since) {
				return Excluded
			}
		case o.Created.Add(ZoneSlack).Before(r.Since):
			// Before Since in whatever zone it was written.
			return Excluded
		case o.Created.Add(-ZoneSlack).Before(r.Since):
			// Before or after Since, depending on the zone it was
			// written in: it may be an older order.
			v = Undecidable
		}
	}
	return v
}

// Decide applies Match to every listed order: exactly one candidate and
// nothing undecidable is a match; no candidate and nothing undecidable is
// none; anything else is not decidable, and reason says why. Orders that
// belong to other records must be left out of orders beforehand.
func (r Rule) Decide(orders []OrderInfo) (match OrderInfo, found bool, reason string) {
	var cands, undecided []OrderInfo
	for _, o := range orders {
		switch r.Match(o) {
		case Candidate:
			cands = append(cands, o)
		case Undecidable:
			undecided = append(undecided, o)
		}
	}
	// A person who decides is told which orders to look at: the provider's
	// ids of every order that may be this one (a masked userId, say, is
	// one such: nothing tells it from another's, a person may).
	switch {
	case len(undecided) > 0:
		return OrderInfo{}, false, fmt.Sprintf("%s%d listed order(s) lack the fields to tell whether they are this one, or give another userId, or no creation time that tells (none, implausible, or without a zone and too close to the first attempt)", mayBe(append(undecided, cands...)), len(undecided))
	case len(cands) > 1 && r.Known != nil:
		return OrderInfo{}, false, fmt.Sprintf("%s%d orders of this commodity and copies are new on the device since the snapshot and belong to no other order; a person decides", mayBe(cands), len(cands))
	case len(cands) > 1:
		return OrderInfo{}, false, fmt.Sprintf("%s%d orders match (same device, commodity and copies since the first attempt); refusing to guess", mayBe(cands), len(cands))
	case len(cands) == 1:
		return cands[0], true, ""
	}
	return OrderInfo{}, false, ""
}

// mayBe names the ids of the listed orders that may be the order
// (providers.MayBe).
func mayBe(orders []OrderInfo) string {
	ids := make([]string, len(orders))
	for i, o := range orders {
		ids[i] = o.OrderID
	}
	return providers.MayBe(ids)
}

// gap says why a device's listing may miss orders.
type gap int

const (
	gapNone       gap = iota
	gapTooLong        // more orders than MaxPages pages hold
	gapRepeats        // a page brought no order not seen before, and the totals do not confirm the end: paging does not work
	gapShifted        // orders moved while the listing was read, or fewer were listed than the total says
	gapZeroUnread     // page 0 could not be read or judged while the base is not known: the device may hold orders there
)

// listing is every order of one device, as order/query pages them.
type listing struct {
	orders []OrderInfo
	last   answer
	gap    gap
	// first is the page it was read from (0 or 1); firstIDs are that
	// page's order ids.
	first    int
	firstIDs []string
	// pages are the order ids of each page that brought orders, as served
	// (firstIDs the first of them).
	pages [][]string
	// total is the first page's total (-1 when not given); totalsAgree
	// says every page read gave the same one (or none gave any).
	total       int64
	totalsAgree bool
	// repeated: the listing ended at a page that brought no new order
	// (complete when the totals confirm it, else gapRepeats). Such a
	// listing shows nothing about where pageNo starts.
	repeated bool
	// zeroIsOne: read from 0, page 1 served page 0 again.
	zeroIsOne bool
	// shortOfTotal: every page gave the same total, and it is more than
	// the orders read (gapShifted).
	shortOfTotal bool
	// zeroEmpty: read from 0 (as learnt), page 0 was empty and page 1
	// held orders (gapShifted).
	zeroEmpty bool
}

// totalFits reports whether the totals confirm the listing: none given,
// or the same on every page and equal to the orders read.
func (l listing) totalFits() bool {
	return l.totalsAgree && (l.total < 0 || l.total == int64(len(l.orders)))
}

// totalConfirms reports whether a total was given, the same on every page,
// and equal to the orders read.
func (l listing) totalConfirms() bool {
	return l.total >= 0 && l.totalFits()
}

// totalExceeds reports whether every page gave the same total and it is
// more than the orders read: orders the listing did not serve.
func (l listing) totalExceeds() bool {
	return l.totalsAgree && l.total > int64(len(l.orders))
}

// list reads the device's orders, every page up to MaxPages.
//
// A listing ends at an empty page, never at a merely short one (the server
// may serve fewer than PageSize orders a page), and never on the listed
// total: what order/query's total counts is not documented. A page that
// brings no order not read before ends it only when it is not a full
// page and the totals confirm it (every page gave the same total, equal
// to the orders read: a server that serves its last page again past the
// end); otherwise paging does not work (gapRepeats). The same confirmation lets a later page that
// shows no order array (null or missing, see OrderList.NoArray) end it as
// an empty page, and a later page refused with a documented parameter
// error (460 or 2000: a server refusing a pageNo past the end) end it
// complete. Without it, such a page is a malformed list, and any refusal
// of a later page Unavailable (see laterPageFailed; an Unauthenticated
// one holds the order as anywhere): the order is never
// errored for a page it did not ask for.
//
// The total is a consistency check only. When no page gives one, or every
// page gives the same one and it equals the orders read, the listing is
// complete. When every page gives the same one and it is more than the
// orders read, orders were not served: the listing is incomplete
// (gapShifted), however often it is read. Otherwise (a total smaller than
// the orders read, or totals that vary) the listing is read once more,
// from the same page: the same orders on each page, in whatever order
// within a page (samePages: the order of a page's entries is not
// documented, and a server may change it on every call), make it complete
// (the total counts something else); anything else means orders moved
// from one page to another (gapShifted).
//
// Where pageNo starts is not documented: see listBase. snapshot says the
// listing is Prepare's (see queryPage).
func (c *Client) list(ctx context.Context, p CreateParams, snapshot bool) (listing, error) {
	l, err := c.listBase(ctx, p, snapshot)
	if err != nil || l.gap != gapNone || l.totalFits() {
		return l, err
	}
	if l.totalExceeds() {
		l.gap, l.shortOfTotal = gapShifted, true
		return l, nil
	}
	again, err := c.listFrom(ctx, p, l.first, snapshot)
	if err != nil {
		return listing{}, err
	}
	if again.gap != gapNone {
		return again, nil
	}
	if !slices.Equal(idsOf(l.orders), idsOf(again.orders)) && !samePages(l.pages, again.pages) {
		again.gap = gapShifted
		return again, nil
	}
	if again.totalExceeds() {
		again.gap, again.shortOfTotal = gapShifted, true
		return again, nil
	}
	c.log.Info("aliyun order/query: the listed total does not count the orders listed; the listing read twice alike is taken as complete",
		"total", l.total, "totals_agree", l.totalsAgree, "orders", len(l.orders))
	return again, nil
}

// listBase reads the listing from where the server's page numbers start.
// With Options.PageBase 0 or 1 (ALIYUN_PAGE_BASE), pages are read from
// there and page 0 is never judged. Otherwise pages are read from 1. A
// server counting from 0 would hide its first page (the newest orders, if
// it lists newest first), so when the totals do not confirm a listing
// read from 1 (see list), or it ends at a page served again (gapRepeats),
// page 0 is read too (once more if that fails) and judged against page 1
// (providers.JudgePageZero):
//
//   - refused as a parameter error (460 or 2000, from order/query
//     itself) twice in a row, empty while page 1 is not (read twice), or
//     the same as page 1 while page 1, read again, still is: the server
//     counts from 1 and is not asked for page 0 again.
//   - holding orders, none of page 1's: the server counts from 0, and the
//     listing is read again from 0 (where a server that repeats its last
//     page past the end may give a listing its totals confirm), as every
//     later one is. When page 1 was
//     empty this is not trusted at once: an order may have landed between
//     the two reads on a server that serves page 0 as page 1. Page 1 is
//     read again: still empty, the server counts from 0; now holding page
//     0's orders, nothing is learnt (that, or a page of orders landing on
//     a server counting from 0) and the listing is gapShifted; anything
//     else, orders moved (gapShifted). Read again from 0, page 0 found
//     empty (it held orders a moment ago) is orders moving (gapShifted).
//   - sharing some of page 1's orders, not all: orders moved (gapShifted).
//   - nothing shown (page 0 failed twice, in any way but a documented
//     parameter refusal, or holds orders that cannot be compared with page
//     1's, an order on either page lacking its id): on a server counting
//     from 0 page 0 holds the newest orders, which the listing read from 1
//     lacks whatever page 1 held, so the listing is incomplete
//     (gapZeroUnread, like gapShifted: try again, or set the base). Only a
//     page 0 read empty shows that nothing is missing.
//
// Where the server counts from is remembered only from a listing that did
// not end at a page served again: such a page shows nothing about the
// base. A listing read from 0 whose page 1 serves page 0 again shows the
// server reads pageNo 0 as 1 after all: counting from 0 is forgotten and
// the listing is read again from 1, judging page 0 afresh.
func (c *Client) listBase(ctx context.Context, p CreateParams, snapshot bool) (listing, error) {
	switch c.pageBase {
	case PageBaseFrom0:
		return c.listFrom(ctx, p, 0, snapshot)
	case PageBaseFrom1:
		return c.listFrom(ctx, p, 1, snapshot)
	}
	if c.pagesFrom0.Load() {
		l, err := c.listFrom(ctx, p, 0, snapshot)
		switch {
		case err == nil && l.gap == gapNone && len(l.firstIDs) == 0:
			// Page 0, the first page of a server counting from 0, is
			// empty: the device has no order, unless the server counts
			// from 1 now (a release, a gateway between versions) and
			// serves page 0 empty. Page 1 tells: holding orders, the
			// server does not count from 0 (its first page would hold
			// them): what was learnt is forgotten, and the listing read
			// from 1, judging page 0 afresh. (Taken back so, a wrong
			// "from 1" learnt later would not skip page 0 for good: page
			// 0 is read once a listing on a server that counts from 1.)
			one, _, err := c.queryPage(ctx, p, 1, false, snapshot)
			if err != nil {
				if pageRefused(err) && l.totalConfirms() {
					same, uerr := c.sameAgain(ctx, p, 1, snapshot, func(_ OrderList, err error) bool { return pageRefused(err) })
					if uerr != nil {
						return listing{}, uerr
					}
					if same {
						// Page 1 past the end refused as a parameter
						// error twice in a row, the total confirming
						// the empty page 0 (as listFrom ends a listing).
						return l, nil
					}
				}
				return listing{}, laterPageFailed(err, 1)
			}
			if len(one.Orders) == 0 {
				return l, nil
			}
			c.pagesFrom0.Store(false)
			c.log.Warn("aliyun order/query: page 0 is empty and page 1 holds orders, on a server that counted pages from 0; judging again where it counts from at the next listing (ALIYUN_PAGE_BASE fixes it)")
			// Not judged in this listing: a burst of faulty answers
			// would teach "from 1" at once, and this listing lack page
			// 0's orders. The next one judges afresh, as at a start.
			return listing{gap: gapZeroUnread}, nil
		case pageRefused(err):
			// Page 0 refused as a parameter error by a server that
			// counted from 0: it may count from 1 now. Forgotten, and
			// judged afresh at the next listing, not this one (left
			// learnt, every order of every device would wait on a
			// refused snapshot until a restart).
			c.pagesFrom0.Store(false)
			c.log.Warn("aliyun order/query: page 0 refused as a parameter error, on a server that counted pages from 0; judging again where it counts from at the next listing (ALIYUN_PAGE_BASE fixes it)")
			return listing{gap: gapZeroUnread}, nil
		case err != nil || !l.zeroIsOne:
			return l, err
		default:
			c.pagesFrom0.Store(false)
			c.log.Info("aliyun order/query: page 1 repeats page 0; reading pages from 1 again")
		}
	}
	l, err := c.listFrom(ctx, p, 1, snapshot)
	// A total that fits the orders read from 1 does not show that page 0
	// is empty: what the total counts is not documented, and a count of
	// pages can equal the orders read from 1 (a server counting from 0
	// with 22 orders at 20 a page: 2 pages, 2 orders on page 1). Until
	// the server has shown where it counts from, page 0 is judged.
	if err != nil || (l.gap != gapNone && l.gap != gapRepeats) {
		return l, err
	}
	if c.pagesFrom1.Load() {
		still, err := c.stillFrom1(ctx, p, &l, snapshot)
		if err != nil {
			return listing{}, err
		}
		if still {
			return l, nil
		}
	}
	// Page 0 is the first page on a server counting from 0: a snapshot
	// reads it without data (twice in a row) as empty only while page 1
	// was empty too. It then judges nothing (two empty pages show no
	// base); beside a page 1 holding orders it would teach every later
	// listing, lookups included, to skip page 0.
	emptyDevice := snapshot && len(l.firstIDs) == 0
	// Any failure but the documented parameter refusal is asked again:
	// one passing refusal (a gateway's, a replayed nonce) of a server
	// counting from 0 must not pass for a refusal of pageNo 0.
	zero, _, zerr := c.queryPage(ctx, p, 0, true, emptyDevice)
	if providers.Unsent(zerr) {
		return listing{}, zerr
	}
	firstErr := zerr
	// differed: page 0 was answered one way (refused, or empty) and then
	// another: what follows was not said twice in a row.
	differed := false
	if zerr != nil {
		// The documented parameter refusal too: one that passes must
		// not teach "from 1" for the process's life; it counts only
		// twice in a row.
		zero, _, zerr = c.queryPage(ctx, p, 0, true, emptyDevice)
		if providers.Unsent(zerr) {
			return listing{}, zerr
		}
		if pageRefused(zerr) && !pageRefused(firstErr) {
			zerr = &providers.Error{Code: providers.Unavailable, Op: opName(PathQuery), Message: "page 0 unreadable (answered differently when read again)", Err: zerr}
		}
		differed = pageRefused(firstErr) && zerr == nil
	}
	if zerr != nil && !pageRefused(zerr) {
		if answeredRefusal(firstErr) && answeredRefusal(zerr) && l.totalConfirms() {
			// Page 0 refused twice in a row otherwise than with the
			// documented parameter refusal (a bare or generic 400): a
			// server counting from 0 serves page 0 as it serves page 1,
			// and does not refuse it. With the total confirming the
			// listing from 1, that listing stands (a server counting
			// from 0 whose total counts pages, equal to the orders read
			// from 1, refusing its page 0 twice running, would defeat
			// this: assumed not to be); nothing is learnt, so page 0 is
			// asked again next time.
			return l, nil
		}
		// Only order/query's documented parameter refusal shows the
		// server counts from 1; any other failure (a token refused, an
		// undocumented code) shows nothing.
		zerr = &providers.Error{Code: providers.Unavailable, Op: opName(PathQuery), Message: "page 0 unreadable", Err: zerr}
	}
	zeroIDs := idsOf(zero.Orders)
	if zerr == nil && len(zeroIDs) == 0 && len(l.firstIDs) > 0 {
		// An empty page 0 beside a page 1 holding orders shows a server
		// counting from 1, kept for the process's life: read twice, so
		// that one faulty empty answer of a server counting from 0, whose
		// page 0 holds its newest orders, does not teach every later
		// listing, lookups included, to skip them.
		zero, _, zerr = c.queryPage(ctx, p, 0, true, emptyDevice)
		if providers.Unsent(zerr) {
			return listing{}, zerr
		}
		if zerr != nil {
			// A refusal too: empty, then refused, is two answers that
			// differ, neither said twice.
			zerr = &providers.Error{Code: providers.Unavailable, Op: opName(PathQuery), Message: "page 0 unreadable (answered differently when read again)", Err: zerr}
		}
		zeroIDs = idsOf(zero.Orders)
		differed = differed || len(zeroIDs) > 0
	}
	switch providers.JudgePageZero(zerr, zeroIDs, l.firstIDs) {
	case providers.BaseFrom1:
		if zerr == nil && len(zeroIDs) > 0 && differed {
			// Page 0 the same as page 1, but after another answer for
			// page 0 (refused, or empty): not said twice in a row.
			l.gap = gapShifted
			return l, nil
		}
		if zerr == nil && len(zeroIDs) > 0 {
			// Page 0 the same as page 1, read earlier: also what a
			// server counting from 0 shows when a page of orders left
			// the front of the listing between the reads. Page 1, read
			// again, must still be page 0.
			again, _, err := c.queryPage(ctx, p, 1, false, snapshot)
			if providers.Unsent(err) {
				return listing{}, err
			}
			if err != nil || !providers.SameIDs(idsOf(again.Orders), zeroIDs) {
				l.gap = gapShifted
				return l, nil
			}
		}
		// A listing that ended at a page served again shows nothing by
		// page 0 holding page 1's orders (a server counting from 0 whose
		// orders fit one page repeats it as page 1); a documented
		// parameter refusal of page 0, or an empty page 0 beside a page
		// 1 holding orders, still shows it counts from 1.
		if !l.repeated || pageRefused(zerr) || (zerr == nil && len(zeroIDs) == 0 && len(l.firstIDs) > 0) {
			c.learnBase(1)
		}
	case providers.BaseFrom0:
		if len(l.firstIDs) == 0 {
			again, _, err := c.queryPage(ctx, p, 1, true, false)
			if err != nil {
				return listing{}, err
			}
			oneIDs := idsOf(again.Orders)
			switch {
			case len(oneIDs) == 0:
				// Still empty while page 0 holds orders: from 0.
			case providers.SameIDs(oneIDs, zeroIDs):
				// Page 0 was page 1 and an order landed between the
				// reads, or a page of orders landed on a server
				// counting from 0 (its newest now on page 0, unread):
				// nothing is learnt, and the listing is read again
				// next time.
				l.gap = gapShifted
				return l, nil
			default:
				l.gap = gapShifted
				return l, nil
			}
		}
		z, err := c.listFrom(ctx, p, 0, snapshot)
		switch {
		case err != nil:
			return listing{}, err
		case z.gap == gapNone && len(z.firstIDs) == 0:
			// Page 0 held orders a moment ago and holds none now.
			z.gap = gapShifted
		case z.zeroIsOne:
			// Page 1 now repeats page 0: what was seen did not hold.
			z.gap = gapShifted
		case !z.repeated:
			c.learnBase(0)
		}
		return z, nil
	case providers.BaseMoved:
		l.gap = gapShifted
	case providers.BaseUnknown:
		// Page 0 failed, or holds orders that cannot be compared with
		// page 1's: on a server counting from 0 it holds the newest
		// orders, which the listing from 1 lacks, whatever page 1 held.
		// Only a page 0 read empty shows that nothing is missing.
		if zerr != nil || len(zeroIDs) > 0 {
			l.gap = gapZeroUnread
		}
	}
	return l, nil
}

// stillFrom1 reads page 0 once beside listing l, read from 1 on a server
// that has shown it counts pages from 1. Nothing documents that a server
// keeps counting as it did (a release, a gateway spreading its clients
// over two versions), and one that counts from 0 now holds its newest
// orders on page 0, which l lacks: a lookup would answer not_found with
// ours among them, and the order would be created again. Page 0 refused
// as a parameter error, empty, or page 1 again: the server still counts
// from 1 (true, l stands). Throttled or refused for the credentials, the
// clock or the account: that error (the listing waits as for any call so
// answered). Failing otherwise, or holding orders that cannot be compared
// with page 1's (an order without its id): nothing is shown, and l is
// incomplete for now (true, gapZeroUnread; what was learnt is kept, so
// that a fault passes). Holding orders other than page 1's: what was
// learnt is forgotten (false), and page 0 is judged afresh. One answer is
// enough here, where judging the base at first wants two alike: what was
// learnt is only kept, never learnt anew, on it.
func (c *Client) stillFrom1(ctx context.Context, p CreateParams, l *listing, snapshot bool) (bool, error) {
	zero, _, err := c.queryPage(ctx, p, 0, true, snapshot && len(l.firstIDs) == 0)
	zeroIDs := idsOf(zero.Orders)
	switch {
	case pageRefused(err):
		return true, nil
	case providers.Unsent(err):
		return false, err
	case err != nil:
		l.gap = gapZeroUnread
		return true, nil
	case len(zeroIDs) == 0, providers.SameIDs(zeroIDs, l.firstIDs):
		return true, nil
	}
	switch providers.JudgePageZero(nil, zeroIDs, l.firstIDs) {
	case providers.BaseFrom1:
		return true, nil
	case providers.BaseUnknown:
		l.gap = gapZeroUnread
		return true, nil
	}
	if c.pagesFrom1.Swap(false) {
		c.log.Warn("aliyun order/query: page 0 holds orders page 1 does not, on a server that counted pages from 1; judging again where it counts from (ALIYUN_PAGE_BASE fixes it)")
	}
	return false, nil
}

// learnBase keeps, for the process's life, that order/query counts pages
// from base (0 or 1), and says so once.
func (c *Client) learnBase(base int) {
	learnt := &c.pagesFrom1
	if base == 0 {
		learnt = &c.pagesFrom0
	}
	if !learnt.Swap(true) {
		c.log.Info("aliyun order/query: the server counts pages from " + strconv.Itoa(base) + " (judged from its answers; ALIYUN_PAGE_BASE fixes it)")
	}
}

// answeredRefusal reports whether err is order/query's refusal with an
// answer: a platform code in the body (InvalidArgument), or a bare HTTP 4xx
// other than 401 and 429 (those say the token or the rate): not a failure
// to answer (5xx, a timeout, the network), which may pass.
func answeredRefusal(err error) bool {
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Op != opName(PathQuery) {
		return false
	}
	return pe.Code == providers.InvalidArgument ||
		pe.HTTPStatus >= 400 && pe.HTTPStatus < 500 && pe.HTTPStatus != 401 && pe.HTTPStatus != 429 && pe.Code == providers.Unavailable
}

// pageRefused reports whether err is order/query refusing its params with
// a documented parameter error (460 request parameter error, 2000 param is
// invalid): for page 0, the server counting from 1. 400 is documented only
// as a generic request error, and a bare or gateway 400 as no parameter
// refusal either (a signature, an AppKey, a timestamp): taken for one, a
// page 0 refused for another reason on a server counting from 0 would make
// every later listing skip the newest orders, and a lookup create ours
// again.
func pageRefused(err error) bool {
	var pe *providers.Error
	return errors.As(err, &pe) && pe.Op == opName(PathQuery) && pe.Code == providers.InvalidArgument &&
		(pe.ProviderCode == "460" || pe.ProviderCode == "2000")
}

// listFrom reads the device's orders from page first on (see list for
// where it ends).
func (c *Client) listFrom(ctx context.Context, p CreateParams, first int, snapshot bool) (listing, error) {
	l := listing{first: first, total: -1, totalsAgree: true}
	seen := map[string]bool{}
	// prevShort: the page before this one held fewer orders than asked
	// for. Only then may a faulty-looking page after it end the listing:
	// a total that counts only the page's entries equals the orders read
	// after any full page, and proves nothing there.
	prevShort := false
	for page := first; ; page++ {
		got, a, err := c.queryPage(ctx, p, page, page == first, snapshot)
		if err != nil {
			if page == first {
				return listing{}, err
			}
			if pageRefused(err) && l.totalConfirms() && prevShort {
				same, uerr := c.sameAgain(ctx, p, page, snapshot, func(_ OrderList, err error) bool { return pageRefused(err) })
				if uerr != nil {
					return listing{}, uerr
				}
				if same {
					// The page past the end refused as a parameter
					// error twice in a row, after a short page, when
					// every order the totals count was read: a server
					// that refuses a pageNo past the end.
					c.log.Info("aliyun order/query: the page past the end was refused as a parameter error; the totals confirm every order was read",
						"page", page, "total", l.total, "orders", len(l.orders))
					return l, nil
				}
			}
			return listing{}, laterPageFailed(err, page)
		}
		if got.NoArray {
			// No order array on a later page: the end only after a
			// short page, when the totals confirm every order was
			// read, and the page gives no other total.
			if !prevShort || !l.totalConfirms() || (got.Total >= 0 && got.Total != l.total) {
				return listing{}, malformed(a)
			}
			same, uerr := c.sameAgain(ctx, p, page, snapshot, func(g OrderList, err error) bool {
				return err == nil && g.NoArray && (g.Total < 0 || g.Total == l.total)
			})
			if uerr != nil {
				return listing{}, uerr
			}
			if !same {
				return listing{}, malformed(a)
			}
			l.last = a
			return l, nil
		}
		l.last = a
		if page == first {
			l.total = got.Total
		} else if got.Total != l.total {
			l.totalsAgree = false
		}
		ids := idsOf(got.Orders)
		if page == first {
			l.firstIDs = ids
		}
		prevShort = len(got.Orders) < c.pageSize
		if len(ids) == 0 {
			return l, nil
		}
		if fresh(got.Orders, seen) == 0 {
			// Nothing new: the last page served again past the end
			// when the totals say every order was read and the page is
			// not a full one; otherwise paging does not work. A full
			// page served again could as well be a server that ignores
			// pageNo, whose total counts only that page: more orders
			// may lie past it, so it proves nothing (a page longer than
			// asked for is a server that ignores paging altogether and
			// served them all).
			l.repeated = true
			if l.totalConfirms() && len(got.Orders) != c.pageSize {
				return l, nil
			}
			l.gap = gapRepeats
			l.zeroIsOne = first == 0 && page == 1 && providers.SameIDs(ids, l.firstIDs)
			return l, nil
		}
		if page-first >= c.maxPages {
			// A page past MaxPages that brings orders: more orders
			// than the bound.
			l.gap = gapTooLong
			return l, nil
		}
		if fresh(got.Orders, seen) < len(got.Orders) {
			// An order of an earlier page served again on this one,
			// beside new ones: orders moved between pages while they
			// were read (reordered, and one pushed out is missing from
			// the read; or an order landed ahead of them, which the
			// read lacks), whatever the totals say (none, here, would
			// contradict it: a black-box run's server listing a
			// device's orders in another order on every call, two a
			// page, without a total, had a lookup miss an order and
			// create it again). Read again, it may be whole.
			l.gap = gapShifted
			return l, nil
		}
		l.pages = append(l.pages, ids)
		l.add(got.Orders, seen)
	}
}

// samePages reports whether two reads of a listing served the same orders
// on each page, in whatever order within a page: no order moved from one
// page to another between them (one that did would be missing from, or
// doubled in, the read made while it moved, and found on another page in
// the other read). The order of a page's entries is not documented, and a
// server may serve them in another order on every call.
func samePages(a, b [][]string) bool {
	return slices.EqualFunc(a, b, providers.SameIDs)
}

// sameAgain reads page again and reports whether its answer is still one
// that ends the listing (same): a page that ends a listing without showing
// an empty order array (refused, or without one) must say so twice in a
// row. Once could be a fault on a server whose page is shorter than asked
// and whose total counts only that page, which the totals would confirm.
// A page read again throttled or refused for the credentials says neither:
// that error (providers.Unsent), for the listing to fail with.
func (c *Client) sameAgain(ctx context.Context, p CreateParams, page int, snapshot bool, same func(OrderList, error) bool) (bool, error) {
	got, _, err := c.queryPage(ctx, p, page, false, snapshot)
	if providers.Unsent(err) {
		return false, err
	}
	return same(got, err), nil
}

// laterPageFailed is the error of a page after the first that failed. A
// refusal there (a parameter error, say) is not a refusal of the order:
// the first page was read with the same params, so it is a pageNo the
// server will not serve (past the end, perhaps) or a fault, and the
// listing is Unavailable, to be read again, never a permanent failure that
// would error the order without creating it. Other failures keep their
// code (retried, or held for the credentials).
func laterPageFailed(err error, page int) error {
	var pe *providers.Error
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case providers.InvalidArgument, providers.FailedPrecondition, providers.PermissionDenied, providers.NotFound:
		return &providers.Error{Code: providers.Unavailable, Op: pe.Op, HTTPStatus: pe.HTTPStatus, ProviderCode: pe.ProviderCode,
			Message: fmt.Sprintf("page %d refused (%s: %s) after the first page was read; the listing is not complete", page, pe.Code, pe.Message)}
	}
	return err
}

// fresh counts the orders not seen before (an order without an id is
// always new).
func fresh(orders []OrderInfo, seen map[string]bool) int {
	n := 0
	for _, o := range orders {
		if o.OrderID == "" || !seen[o.OrderID] {
			n++
		}
	}
	return n
}

const (
	zeroUnread = "page 0 of the device's orders could not be read, or not told from page 1, and where order/query counts pages from is not known; the listing may lack orders"
	// baseHint is the way out of a listing that can never be judged.
	baseHint = "set " + EnvPageBase + "=1 if the server counts pages from 1, or 0 if from 0"
)

// gapMessage says why a listing with gap g cannot be used; what says what
// could not be done ("list", "search").
func (c *Client) gapMessage(l listing, what string) string {
	switch l.gap {
	case gapTooLong:
		return fmt.Sprintf("device has more than %d orders; cannot %s them all", c.maxPages*c.pageSize, what)
	case gapRepeats:
		msg := "order/query served a page again; cannot " + what + " every order"
		if c.pageBase == PageBaseAuto {
			return msg + " (" + baseHint + ")"
		}
		return msg + " (pages read from " + EnvPageBase + "=" + string(c.pageBase) + ")"
	case gapShifted:
		if l.zeroEmpty {
			return "order/query's page 0 is empty and page 1 holds orders, though it was seen to count pages from 0: it may count from 1 now (" +
				EnvPageBase + "=1 if it does, or restart the worker to judge again); the device's orders may not all have been listed"
		}
		if l.shortOfTotal {
			return fmt.Sprintf("order/query listed fewer orders than its total (%d); the device's orders may not all have been listed", l.total)
		}
		return "the device's orders changed while they were listed"
	case gapZeroUnread:
		if c.pagesFrom1.Load() {
			return "page 0 of the device's orders could not be read, or not told from page 1, on a server that has counted pages from 1: should it count from 0 now, the listing may lack its newest orders (" + baseHint + ")"
		}
		return zeroUnread + " (" + baseHint + ")"
	}
	return ""
}

// queryPage asks order/query for one page of the device's orders.
//
// first says the page is the first of a listing, or one read alone (page
// 0, or page 1 read again, beside a listing). An answer that shows no
// order array but gives a total (OrderList.NoArray) is then an empty page
// only when that total is 0, the orders read before it; otherwise it is a
// malformed order list. On a later page it is returned as it is, for the
// listing to judge against the totals it has read (see listFrom).
//
// snapshot says the first page is taken for Prepare's snapshot. An answer
// there whose data is missing or null (code 200, and so no total) is read
// again at once, and is an empty page, the device holding no orders, only
// when the second answer has no data either. order/query's answer is not
// documented, and a server may answer so for a device without orders;
// read as a malformed list, it would keep Prepare Unavailable, and every
// first create on such a device waiting until its deadline and errored,
// never created. Once is not enough: a wrong empty snapshot is kept for
// good, and makes any older order of our commodity and copies that no
// record owns look new, so a later lookup after an ambiguous create that
// made nothing takes that order for ours (and may pay it). A lookup never
// reads such an answer as an empty page: a wrong absence there creates the
// order twice.
func (c *Client) queryPage(ctx context.Context, p CreateParams, page int, first, snapshot bool) (OrderList, answer, error) {
	ask := func() (answer, error) {
		return c.call(ctx, PathQuery, pageParams{IotID: p.IotID, PageNo: page, PageSize: c.pageSize}, callOpts{timeout: c.timeout, personal: p.UserName, userID: p.UserID})
	}
	a, err := ask()
	if err != nil {
		return OrderList{}, answer{}, err
	}
	if first && snapshot && len(a.data) == 0 {
		if a, err = ask(); err != nil {
			return OrderList{}, answer{}, err
		}
		if len(a.data) == 0 {
			return OrderList{Total: -1}, a, nil
		}
	}
	got := OrderList{Total: -1, NoArray: true}
	if len(a.data) > 0 {
		if got, err = ParseOrderList(a.data); err != nil {
			return OrderList{}, a, malformed(a)
		}
	}
	if first && got.NoArray {
		if got.Total != 0 {
			return OrderList{}, a, malformed(a)
		}
		got.NoArray = false
	}
	return got, a, nil
}

// malformed is the error of an order/query answer that does not show the
// device's orders: answered, at a 2xx, in a way the client cannot read, so
// no news of the platform's health (providers.ErrNoNews). Counted, one
// device's unreadable listing opened the circuit breaker for every
// device's orders, again and again (a black-box run's server wrote copies
// as 1.0).
func malformed(a answer) error {
	return &providers.Error{Code: providers.Unavailable, Op: opName(PathQuery),
		HTTPStatus: a.status, ProviderCode: "200", Message: "malformed order list", Err: providers.ErrNoNews}
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
// It costs one order/query call per PageSize orders on the device, plus
// the empty page that ends the listing (see list: page 0 too until the
// server has shown where it counts from, unless Options.PageBase says,
// and the whole listing twice when the listed total is smaller than the
// orders read or varies), plus a /cloud/token call when no token is held.
// Past MaxPages pages it fails with FailedPrecondition rather than return
// a partial snapshot, which could make an older order look new: an order
// created then could not be identified after an ambiguous create. A
// listing that changes while it is read, that lists fewer orders than its
// total, whose page 0 cannot be read (or judged) while where the pages
// start is not known, or one of whose pages does not show its order array,
// is Unavailable (try again); one that serves a page again without totals
// confirming the end is Unavailable too, and so is one whose later page is
// refused (see list). A first page whose data is missing or null on two
// reads in a row is a device without orders (see queryPage), which a
// lookup never concludes from it.
func (c *Client) Prepare(ctx context.Context, o providers.Order) ([]string, error) {
	p, err := orderParams(o)
	if err != nil {
		return nil, err
	}
	l, err := c.list(ctx, p, true)
	if err != nil {
		return nil, snapshotRefused(err)
	}
	if l.gap == gapNone {
		c.noteListing(p.IotID, l.orders)
	}
	fail := func(code providers.Code, msg string, err error) error {
		return &providers.Error{Code: code, Op: opName(PathQuery) + " (snapshot)", HTTPStatus: l.last.status, ProviderCode: "200", Message: msg, Err: err}
	}
	switch l.gap {
	case gapTooLong:
		return nil, fail(providers.FailedPrecondition, fmt.Sprintf("the device's orders run past %d pages (MaxPages; %d orders asked for a page, %d read); without all of them an order created now could not be identified", c.maxPages, c.pageSize, len(l.orders)), nil)
	case gapRepeats, gapShifted:
		// Pages the server answered, which could not be read as one
		// listing: no news of its health (see find).
		return nil, fail(providers.Unavailable, c.gapMessage(l, "list"), providers.ErrNoNews)
	case gapZeroUnread:
		return nil, fail(providers.Unavailable, c.gapMessage(l, "list"), nil)
	}
	ids := make([]string, 0, len(l.orders))
	for _, x := range l.orders {
		if x.OrderID != "" {
			ids = append(ids, x.OrderID)
		}
	}
	return ids, nil
}

// otherDevice reports whether listed order x says it is of another device
// than iotID. order/query's params come from a third-party client, not a
// document: a server that ignores or misnames the iotId filter lists every
// device's orders, and another device's order of the same commodity and
// copies would be taken for ours (and paid). How a listing writes a
// device's id is not documented either: compared without case or
// surrounding space.
func otherDevice(x OrderInfo, iotID string) bool {
	id := strings.TrimSpace(x.IotID)
	return id != "" && !strings.EqualFold(id, strings.TrimSpace(iotID))
}

// orderIdentityCodes are the platform codes that refuse the order's own
// identity (error table): 2062 identityId does not exist, 2063 iotId does
// not exist, 2065 identityId and iotId not bound, 2066 identityId is not
// manager.
var orderIdentityCodes = []string{"2062", "2063", "2065", "2066"}

// snapshotRefused is the error of a snapshot whose listing was refused.
// order/query is not documented, and its params (the order's iotId, and a
// pageNo and pageSize of the client's) come from a third-party client: a
// refusal of it before any create, other than of the order's own identity
// (orderIdentityCodes), says nothing against the order. 403 (forbidden:
// the AppKey may not call it, or the API is not enabled), 404 (service not
// found: the path, the region), 400, 460 and 2000 (the request or its
// params: the client's own) are a problem of the configuration, the
// account or the client (the gateway's Quota Exhausted and User Arrears,
// the account's, are Unauthenticated already: GatewayCause):
// Unauthenticated, as a refused cloud/token is, so that the
// order waits, unchanged, rather than be errored without ever being
// created. The order's identity refused stays InvalidArgument (errored:
// no create of it can succeed). Failures that refuse nothing keep their
// codes.
func snapshotRefused(err error) error {
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Op != opName(PathQuery) {
		return err
	}
	switch pe.Code {
	case providers.InvalidArgument:
		if slices.Contains(orderIdentityCodes, pe.ProviderCode) {
			return err
		}
	case providers.PermissionDenied, providers.FailedPrecondition:
	default:
		return err
	}
	e := *pe
	e.Code = providers.Unauthenticated
	e.Message = fmt.Sprintf("order/query refused the snapshot of the device's orders (%s), before any create: not the order's identity; check the account's access to the API, the endpoint and %s", pe.Code, EnvPageBase)
	if pe.Message != "" {
		e.Message += ": " + pe.Message
	}
	return &e
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
		rule.Now = c.now()
	}
	l, err := c.list(ctx, p, false)
	if err != nil {
		return answer{}, OrderInfo{}, err
	}
	fail := func(code providers.Code, msg string, err error) error {
		return &providers.Error{Code: code, Op: op, HTTPStatus: l.last.status, ProviderCode: "200", Message: msg, Err: err}
	}
	switch l.gap {
	case gapTooLong:
		// Cut short by the page cap: no news of the provider's health.
		return answer{}, OrderInfo{}, fail(providers.Ambiguous, c.gapMessage(l, "search"), providers.ErrNoNews)
	case gapRepeats:
		// Pages that repeat: the paging does not work, and the listing
		// cannot be read whole. No news of the provider's health, as for
		// the snapshot's listing: neither a success nor a failure.
		return answer{}, OrderInfo{}, fail(providers.Ambiguous, c.gapMessage(l, "search"), providers.ErrNoNews)
	case gapShifted:
		// Orders moved while the pages, all answered, were read: no news
		// of the provider's health. Counted as failing, one device's
		// listing would open the circuit breaker for every order.
		return answer{}, OrderInfo{}, fail(providers.Unavailable, c.gapMessage(l, "search"), providers.ErrNoNews)
	case gapZeroUnread:
		// Page 0 failed (or could not be judged): that may be the
		// provider failing, and counts.
		return answer{}, OrderInfo{}, fail(providers.Unavailable, c.gapMessage(l, "search"), nil)
	}
	c.noteListing(p.IotID, l.orders)
	// elsewhere: an order that names no device, listed or created for
	// another device before: another device's on a server that does not
	// filter its listing (or one of ids that repeat across devices).
	elsewhere := func(x OrderInfo) bool {
		return strings.TrimSpace(x.IotID) == "" && c.devices.elsewhere(x.OrderID, p.IotID)
	}
	foreign, unsaid := 0, 0
	for _, x := range l.orders {
		switch {
		case strings.TrimSpace(x.IotID) == "":
			unsaid++
		case otherDevice(x, p.IotID):
			foreign++
		}
	}
	if foreign > 0 && unsaid > 0 {
		// The listing does not hold the device's orders alone, and some
		// of its orders do not say whose they are: any of them may be
		// another device's.
		return answer{}, OrderInfo{}, fail(providers.Ambiguous, fmt.Sprintf(
			"order/query listed %d orders of other devices (it does not filter by the iotId asked) and %d that do not name their device, which cannot be told from them; not guessing", foreign, unsaid), nil)
	}
	// Orders of ours on the device, created within the hour before the
	// first attempt or since (a listing lag ago or more), are listed: one
	// missing shows the listing is not whole (unpaid orders left out, a
	// filter the documents do not describe).
	from := o.FirstAttempt
	if !from.IsZero() {
		from = from.Add(-time.Hour)
	}
	missing, _, err := providers.MissingListed(ctx, o, from, func(id string) bool {
		return slices.ContainsFunc(l.orders, func(x OrderInfo) bool { return x.OrderID == id || x.OutOrderNo == id })
	})
	if err != nil {
		return answer{}, OrderInfo{}, fail(providers.Unavailable, "cannot tell which orders of ours the listing must show", providers.Local(err))
	}
	if missing != "" {
		return answer{}, OrderInfo{}, fail(providers.Unavailable, providers.IncompleteListingMessage(missing), providers.ErrNoNews)
	}
	// Counted after the listing was read: a rival whose order it shows
	// marked itself before its create left (see providers.Order.Rivals).
	rivals := 0
	if o.Rivals != nil {
		// The rule takes no order made before its snapshot was read (it
		// is in the snapshot, a listing lag later: the caller allows for
		// the lag), or before its window, by the provider's clock: less
		// the clock margin once more for ours.
		since := rule.Since.Add(-c.margin)
		if rule.Known != nil {
			since = o.KnownAt
		}
		if rivals, err = o.Rivals(ctx, since); err != nil {
			return answer{}, OrderInfo{}, fail(providers.Unavailable, "cannot tell whether other orders of this device and commodity are being created", providers.Local(err))
		}
	}
	// Leave out orders that belong to other records. Only orders that could
	// be this one are checked, so excluded ones cost no ledger read.
	kept := make([]OrderInfo, 0, len(l.orders))
	others := 0
	foreignMatches := 0 // orders of other devices that could be this one but for their device
	for _, x := range l.orders {
		if otherDevice(x, p.IotID) || elsewhere(x) {
			// Never ours; but one that could be, but for the device it
			// names, keeps a not-found from being believed (below),
			// unless another record owns it.
			if rule.Match(x) != Excluded {
				taken := false
				if o.Owned != nil && x.OrderID != "" {
					var err error
					if taken, err = o.Owned(ctx, x.OrderID); err != nil {
						return answer{}, OrderInfo{}, fail(providers.Unavailable, "cannot tell whether a listed order belongs to another order", providers.Local(err))
					}
				}
				if !taken {
					foreignMatches++
				}
			}
			continue
		}
		if o.Owned != nil && x.OrderID != "" && rule.Match(x) != Excluded {
			taken, err := o.Owned(ctx, x.OrderID)
			if err != nil {
				return answer{}, OrderInfo{}, fail(providers.Unavailable, "cannot tell whether a listed order belongs to another order", providers.Local(err))
			}
			if taken {
				others++
				continue
			}
		}
		kept = append(kept, x)
	}
	if rule.Known != nil {
		// A listing that lacks orders the snapshot read is not the whole
		// listing (or the provider dropped orders from it, which nothing
		// documents): ours may be among what it did not show, so it
		// shows no absence; nor does one new order in it show that it
		// is ours, since another (ours, or the device user's) may be
		// among what it did not show. The order stays unknown, looked
		// up again.
		if n := missingKnown(rule.Known, l.orders); n > 0 {
			return answer{}, OrderInfo{}, fail(providers.Unavailable, fmt.Sprintf(
				"the listing lacks %d of the %d orders the snapshot read before the first create: it is not the whole listing, so it can show neither that no order was created nor which one is ours", n, len(rule.Known)), providers.ErrNoNews)
		}
	}
	m, found, reason := rule.Decide(kept)
	switch {
	case reason != "":
		return answer{}, OrderInfo{}, fail(providers.Ambiguous, reason, nil)
	case found && strings.TrimSpace(m.IotID) == "" && c.unfiltered.Load():
		// The server lists other devices' orders without naming them:
		// the one new order of our kind may be another device's.
		return answer{}, OrderInfo{}, fail(providers.Ambiguous,
			"an order of this commodity and copies is new in the listing, but order/query lists other devices' orders without naming their device (orders listed for one device were listed for another), so it may be another device's; not guessing", nil)
	case found && rivals > 0:
		// The order listed may be a rival's, whose id is not recorded
		// yet: not ours to take, nor to rule out.
		return answer{}, OrderInfo{}, fail(providers.Ambiguous, fmt.Sprintf(
			"an order of this commodity and copies is new on the device, and %d other orders of this device, commodity and copies may have been created whose ids are not recorded yet; not guessing", rivals), nil)
	case !found && foreignMatches > 0:
		// Ours may be among them, its device written otherwise than
		// this client compares (the listing's form of an iotId is not
		// documented): believed absent, it would be created twice.
		return answer{}, OrderInfo{}, fail(providers.Ambiguous, fmt.Sprintf(
			"no order of this device matches, and order/query listed %d orders naming other devices (it does not filter by the iotId asked, or writes it otherwise) that would match but for their device; not guessing", foreignMatches), nil)
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

// missingKnown counts the snapshot's orders (known) that orders lacks.
func missingKnown(known map[string]bool, orders []OrderInfo) int {
	seen := make(map[string]bool, len(orders))
	for _, o := range orders {
		seen[o.OrderID] = true
	}
	n := 0
	for id := range known {
		if !seen[id] {
			n++
		}
	}
	return n
}

// codeForm is a commodity code by its letters and digits only, in one of
// Unicode's forms for the same text (NFKC) and case folded: two codes the
// same so may be one code a listing rewrote.
func codeForm(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return unicode.ToLower(r)
		}
		return -1
	}, norm.NFKC.String(s))
}
