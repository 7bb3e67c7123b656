package api

import (
	"context"
	"net/http"
	"regexp"
	"strconv"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// eventID is what after= accepts: a stream entry id ("1700000000000-0"),
// its millisecond part alone, or 0 / empty for the oldest kept.
var eventID = regexp.MustCompile(`^[0-9]{1,20}(-[0-9]{1,20})?$`)

// eventsPage is the answer of GET /v1/events.
type eventsPage struct {
	Events []ledger.Event `json:"events"`
	// NextAfter is the after= of the next page: the last event's id, or
	// the after given when there was none.
	NextAfter string `json:"next_after"`
	// Missed is true when the given id is older than the oldest event
	// kept, after retention trimmed some: events after it may be gone
	// unread; read the orders' records again.
	Missed bool `json:"missed"`
}

// events is GET /v1/events?after=ID&limit=N: up to N events after ID,
// oldest first.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after := q.Get("after")
	if after != "" && !eventID.MatchString(after) {
		problem(w, http.StatusBadRequest, "after: want an event id like 1700000000000-0, or 0")
		return
	}
	limit := int64(DefaultEventsLimit)
	if s := q.Get("limit"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 || n > MaxEventsLimit {
			problem(w, http.StatusBadRequest, "limit: want a number from 1 to "+strconv.Itoa(MaxEventsLimit))
			return
		}
		limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	evs, err := h.ledger.Events(ctx, after, limit)
	if err != nil {
		h.unavailable(w, r, err, "cannot read events: Redis is unavailable", nil)
		return
	}
	page := eventsPage{Events: evs, NextAfter: after}
	if page.Events == nil {
		page.Events = []ledger.Event{}
	}
	if len(evs) > 0 {
		page.NextAfter = evs[len(evs)-1].ID
	}
	if page.NextAfter == "" {
		page.NextAfter = "0"
	}
	if after != "" && after != "0" {
		page.Missed = h.trimmedAfter(ctx, after)
	}
	writeJSON(w, http.StatusOK, page)
}

// trimmedAfter reports whether retention may have removed events after
// id: the stream was trimmed (it holds fewer entries than were ever
// added, Redis 7) and id is older than the oldest entry it keeps. It
// errs on the side of saying so when id was the very last entry trimmed.
func (h *Handler) trimmedAfter(ctx context.Context, id string) bool {
	info, err := h.rdb.XInfoStream(ctx, ledger.EventsKey()).Result()
	if err != nil || info.EntriesAdded <= info.Length || info.FirstEntry.ID == "" {
		return false
	}
	return compareIDs(id, info.FirstEntry.ID) < 0
}

// compareIDs orders stream ids; a bare millisecond part reads as ms-0.
func compareIDs(a, b string) int {
	split := func(s string) (uint64, uint64) {
		ms, seq := s, "0"
		for i := 0; i < len(s); i++ {
			if s[i] == '-' {
				ms, seq = s[:i], s[i+1:]
				break
			}
		}
		m, _ := strconv.ParseUint(ms, 10, 64)
		n, _ := strconv.ParseUint(seq, 10, 64)
		return m, n
	}
	am, as := split(a)
	bm, bs := split(b)
	switch {
	case am != bm && am < bm, am == bm && as < bs:
		return -1
	case am == bm && as == bs:
		return 0
	}
	return 1
}
