// Package webhook delivers outcome events (package ledger's events stream)
// to webhook endpoints, signed per the Standard Webhooks spec.
//
// Delivery is at least once, and one order's events reach an endpoint in
// order. Each endpoint has a consumer group on the events stream; a
// Dispatcher reads it and admits what it read with one Lua script that
// first counts the events the stream's retention trimmed before the group
// read them, then reads (XREADGROUP), then takes every pending entry of
// the group (XAUTOCLAIM, so also those a dead process read), copies each
// event into the endpoint's own keys, queues it behind its order's
// undelivered events and acknowledges it. Events lost to retention are
// counted in Redis, once, whichever process finds them. Only an order's oldest undelivered event is ever due. Due events are
// leased, POSTed, and then recorded as delivered (making the order's next
// event due) or scheduled again with capped exponential backoff and
// jitter, until they are older than Options.MaxAge: then they are kept as
// failed, with the order's events behind them, for Store.Resend or
// Store.Discard. A process that dies mid-delivery leaves its lease to run
// out; any process sends the event again then. With Options.Durable the
// lease is a durable write: an event is sent only once the replicas hold
// it, so a failover never takes back a change whose event went out.
//
// Each endpoint runs on goroutines, HTTP clients and Redis keys of its own,
// so a slow or dead endpoint holds up neither order processing (which only
// appends events) nor the other endpoints. Several processes share the work
// of every endpoint through Redis.
package webhook
