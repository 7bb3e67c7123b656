package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// eventCursor is what after= accepts: 0 (as an empty or no after) for the oldest kept, a
// next_after of an earlier page (with more than one ledger shard, one
// position per shard, comma-separated), or with one shard an event id
// ("1700000000000-0") or its millisecond part alone. The ledger checks the
// rest (ledger.ReadEvents).
var eventCursor = regexp.MustCompile(`^[0-9]{1,20}(-[0-9]{1,20})?(,[0-9]{1,20}(-[0-9]{1,20})?)*$`)

// shardEventID is the form of an event's id on a ledger of several
// shards: its entry id, then its shard.
var shardEventID = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}-[0-9]{1,6}$`)

// eventsPage is the answer of GET /v1/events.
type eventsPage struct {
	// Events carry no phone number: ledger.EventStream.Event hides them
	// in the reason, for webhooks alike.
	Events []ledger.Event `json:"events"`
	// NextAfter is the after= of the next page: with one ledger shard the
	// last event's id (or the after given when there was none); with
	// more, a position per shard, so that no event is skipped whatever
	// order the shards wrote them in.
	NextAfter string `json:"next_after"`
	// Missed is true when the given position is older than the oldest
	// event kept, after retention trimmed some: events after it may be
	// gone unread; read the orders' records again.
	Missed bool `json:"missed"`
}

// events is GET /v1/events?after=ID&limit=N: up to N (at most
// MaxEventsLimit) events after ID, oldest first.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	if unknownParam(w, r, "after", "limit") {
		return
	}
	q := r.URL.Query()
	after := q.Get("after")
	if after != "" && !eventCursor.MatchString(after) {
		msg := "after: want an event id like 1700000000000-0, a next_after, or 0"
		if shardEventID.MatchString(after) {
			// An event's id on a ledger of several shards (its webhook-id
			// too): a position in one shard's events only.
			msg = "after: " + after + " is the id of one shard's event, no position in the other shards' events: give the next_after of an earlier page (or 0, from the oldest event kept)"
		}
		problem(w, http.StatusBadRequest, msg)
		return
	}
	limit := int64(DefaultEventsLimit)
	if s := q.Get("limit"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(s, "-") {
			n, err = MaxEventsLimit, nil // past int64: more than a page holds
		}
		if err != nil || n < 1 {
			problem(w, http.StatusBadRequest, "limit: want a positive number (at most "+strconv.Itoa(MaxEventsLimit)+" events are answered)")
			return
		}
		// More than a page holds is answered with a full page, as a long
		// ?wait= is cut to the longest: the reader goes on from next_after.
		limit = min(n, MaxEventsLimit)
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	p, err := h.ledger.ReadEvents(ctx, after, limit)
	if errors.Is(err, ledger.ErrBadEventCursor) {
		problem(w, http.StatusBadRequest, "after: "+err.Error())
		return
	}
	if err == nil && len(p.Events) > 0 {
		// An event goes out only once the replicas hold it, as a
		// webhook does.
		if err := h.ledger.EventsOnReplicas(ctx, p); errors.Is(err, ledger.ErrNotDurable) || errors.As(err, new(*ledger.TooFewReplicasError)) {
			h.unavailable(w, r, err, "the events are not on the Redis replicas yet (a failover now could take their changes back): ask again", nil)
			return
		} else if err != nil {
			h.unavailable(w, r, err, "cannot read events: Redis is unavailable", nil)
			return
		}
	}
	if err != nil {
		h.unavailable(w, r, err, "cannot read events: Redis is unavailable", nil)
		return
	}
	page := eventsPage{Events: p.Events, NextAfter: p.Next, Missed: p.Missed}
	if page.Events == nil {
		page.Events = []ledger.Event{}
	}
	writeJSON(w, http.StatusOK, page)
}
