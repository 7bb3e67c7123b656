package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Event is an outcome event: an order's change to paid, pending, errored or
// unknown, appended by the same script that made the change. Its ID is the
// events stream's entry id: ordered, and the same however often it is read.
type Event struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"` // order.paid, order.pending, order.errored, order.unknown
	Timestamp time.Time `json:"timestamp"`
	Data      EventData `json:"data"`
}

// EventData is what an event says about its order.
type EventData struct {
	Provider        string `json:"provider"`
	OrderNo         string `json:"order_no"`
	State           State  `json:"state"`
	ProviderOrderID string `json:"provider_order_id"`
	Reason          string `json:"reason"`
	Attempts        int    `json:"attempts"`
}

// Body is the event as JSON, as webhooks and the events API send it.
func (e Event) Body() ([]byte, error) { return json.Marshal(e) }

func eventOf(m redis.XMessage) Event {
	s := func(k string) string { v, _ := m.Values[k].(string); return v }
	ms, _ := strconv.ParseInt(s("at"), 10, 64)
	return Event{
		ID: m.ID, Type: s("type"), Timestamp: time.UnixMilli(ms).UTC(),
		Data: EventData{Provider: s("provider"), OrderNo: s("order_no"), State: State(s("state")),
			ProviderOrderID: s("provider_order_id"), Reason: s("reason"), Attempts: atoi(s("attempts"))},
	}
}

// Events returns up to limit events after the event id after ("" or "0":
// from the oldest kept), oldest first.
func (l *Ledger) Events(ctx context.Context, after string, limit int64) ([]Event, error) {
	start := "-"
	if after != "" && after != "0" {
		start = "(" + after
	}
	msgs, err := l.rdb.XRangeN(ctx, eventsKey, start, "+", limit).Result()
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out := make([]Event, len(msgs))
	for i, m := range msgs {
		out[i] = eventOf(m)
	}
	return out, nil
}

// EventsKey is the Redis key of the events stream, for consumers that
// read it with consumer groups (XREADGROUP) to deliver webhooks.
func EventsKey() string { return eventsKey }

// EventFromStream decodes an entry of the events stream.
func EventFromStream(m redis.XMessage) Event { return eventOf(m) }
