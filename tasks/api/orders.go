package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// readBody reads at most limit bytes of the request body; over the limit
// it answers 413 and returns false. A UTF-8 byte order mark in front, as
// some editors and Windows tools write, is dropped, as the CLI drops it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	if r.ContentLength > limit {
		// Said before it is sent: answered now, not once it has come (or
		// the read timeout is over). The connection is closed after, the
		// body unread.
		w.Header().Set("Connection", "close")
		problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over the %d-byte limit", limit))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	var nerr net.Error
	switch {
	case errors.As(err, &tooBig):
		problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over the %d-byte limit", limit))
		return nil, false
	case errors.As(err, &nerr) && nerr.Timeout():
		problem(w, http.StatusRequestTimeout, fmt.Sprintf("the body did not arrive within the server's read timeout (%s); nothing was written: send it again", readTimeout))
		return nil, false
	case err != nil:
		problem(w, http.StatusBadRequest, "cannot read the body")
		return nil, false
	}
	return bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")), true
}

// statusOf is the HTTP status of one order's answer.
func statusOf(res tasks.EnqueueResult) int {
	switch res.Status {
	case tasks.Enqueued:
		return http.StatusCreated
	case tasks.Duplicate:
		return http.StatusOK
	case tasks.Conflict:
		return http.StatusConflict
	}
	return http.StatusUnprocessableEntity
}

// createOrder is POST /v1/orders: one task payload.
func (h *Handler) createOrder(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, tasks.MaxPayloadBytes)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	if err := h.checkDataKey(ctx); err != nil {
		if res, bad := h.enq.Check(body); bad {
			h.answerInvalid(w, body, res) // no resend would fix it
			return
		}
		if detail, ok := keyDetail(err); ok {
			// Nothing of this request was written, but an earlier send
			// of the order through a server configured rightly may be
			// in: not "the order was not accepted".
			h.unavailable(w, r, err, "this request wrote nothing: "+detail+"; an earlier send of the order through another server may have been accepted: send it again, with the same order number, once this server is fixed (an order that got in answers duplicate)", nil)
			return
		}
		// Redis did not answer the check: nothing of this request was
		// written, but an earlier send of the order, whose answer was
		// lost, may have been: never "not accepted" (sent under another
		// number, it would be made twice). As the batch's answer says it.
		h.unavailable(w, r, err, "Redis is unavailable: nothing of this request was written, but an earlier send of the order may have been accepted; send it again (an order that got in answers duplicate)", nil)
		return
	}
	res, err := h.enq.Enqueue(ctx, body)
	if ue := new(tasks.UnconfirmedError); errors.As(err, &ue) {
		// Refused before anything was written, but an earlier send
		// of the order is in Redis: not "not accepted".
		h.unavailable(w, r, err, ue.ReasonWith(publicCause), nil)
		return
	}
	if errors.As(err, new(*ledger.TooFewReplicasError)) {
		h.unavailable(w, r, err, "the order was not accepted: the Redis master has fewer replicas than durable writes require (ORDERWORKER_MIN_REPLICAS); nothing was written; send it again", nil)
		return
	}
	if errors.Is(err, ledger.ErrReplicaNow) {
		// What a replica holds says nothing of what the master took.
		h.unavailable(w, r, err, "the Redis server is a replica now (a failover in progress): this request wrote nothing, and an earlier send of the order may have reached the master: the order may or may not have been accepted; send it again (an order that got in answers duplicate)", nil)
		return
	}
	if errors.Is(err, tasks.ErrNoKeyToCompare) {
		h.unavailable(w, r, err, "this server cannot answer for the order: "+tasks.ErrNoKeyToCompare.Error(), nil)
		return
	}
	switch {
	case errors.Is(err, tasks.ErrNotAccepted):
		h.unavailable(w, r, err, tasks.ErrNotAccepted.Error(), nil)
		return
	case errors.Is(err, tasks.ErrMaybeAccepted):
		h.unavailable(w, r, err, tasks.ErrMaybeAccepted.Error(), nil)
		return
	case errors.As(err, new(*tasks.LostRefusalError)):
		h.unavailable(w, r, err, providers.HidePhones(err.Error()), nil)
		return
	case err != nil:
		h.unavailable(w, r, err, "Redis is unavailable: the order may or may not have been accepted; send it again (an order that got in answers duplicate)", nil)
		return
	}
	if res.Status == tasks.Invalid {
		h.answerInvalid(w, body, res)
		return
	}
	if res.Status == tasks.Enqueued {
		w.Header().Set("Location", OrderPath(res.Provider, res.OrderNo))
	}
	writeJSON(w, statusOf(res), hidden(res))
}

// OrderPath is the path of GET /v1/orders/{provider}/{order_no} for an
// order, each segment escaped (a '/' in an order number as %2F).
func OrderPath(provider, orderNo string) string {
	return "/v1/orders/" + url.PathEscape(provider) + "/" + url.PathEscape(orderNo)
}

// answerInvalid answers an order the Enqueuer found invalid: 400 for a
// body that is not JSON at all, 422 naming the field otherwise.
func (h *Handler) answerInvalid(w http.ResponseWriter, body []byte, res tasks.EnqueueResult) {
	if !utf8.Valid(body) || !json.Valid(body) {
		problem(w, http.StatusBadRequest, "the body is not valid JSON: "+syntaxReason(body))
		return
	}
	writeJSON(w, statusOf(res), hidden(res))
}

// hidden is an order's answer with nothing of a phone number kept in its
// provider, order number and reason (the Enqueuer masks them as for an
// operator: 138****8000), as every API answer shows them.
func hidden(res tasks.EnqueueResult) tasks.EnqueueResult {
	if res.Status == tasks.Enqueued {
		// The hot path: an accepted order number holds no phone number
		// (refused in any order number), and it has no reason.
		return res
	}
	res.Provider, res.OrderNo, res.Reason = providers.HidePhones(res.Provider), providers.HidePhones(res.OrderNo), providers.HidePhones(res.Reason)
	return res
}

// keyDetail explains a failed data key check that refuses every order of
// this server whatever Redis holds (a configuration or version mismatch);
// ok is false when it failed for Redis not answering.
func keyDetail(err error) (detail string, ok bool) {
	var mismatch *ledger.DataKeyMismatchError
	if errors.As(err, &mismatch) {
		return "this server's ORDERWORKER_DATA_KEY is not the one the ledger's orders are sealed with", true
	}
	var shards *ledger.ShardsMismatchError
	if errors.As(err, &shards) {
		return "this server is misconfigured: " + shards.Error(), true
	}
	var format *ledger.FormatError
	if errors.As(err, &format) {
		return "this server is an earlier version than the ledger's: " + format.Error(), true
	}
	return "", false
}

// syntaxReason says where JSON breaks, without echoing it.
func syntaxReason(body []byte) string {
	if len(bytes.TrimSpace(body)) == 0 {
		return "empty body"
	}
	return tasks.SyntaxReason(body)
}

// batchChunk is how many orders go to Redis together (their claims in one
// round trip), as the enqueue CLI sends them.
const batchChunk = 256

// createBatch is POST /v1/orders/batch: a JSON array of payloads, or NDJSON
// (one payload per line). It answers 200 with a JSON array of one result
// per order, in order.
func (h *Handler) createBatch(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, h.opts.MaxBatchBytes)
	if !ok {
		return
	}
	items, err := splitBatch(body)
	if err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(items) > h.opts.MaxBatchOrders {
		problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%d orders: over the %d-order limit of one batch", len(items), h.opts.MaxBatchOrders))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	err = h.checkDataKey(ctx)
	cancel()
	if err != nil {
		if detail, ok := keyDetail(err); ok {
			h.unavailable(w, r, err, "this request wrote nothing: "+detail+"; an earlier send of any of its orders through another server may have been accepted: send them again, with the same order numbers, once this server is fixed (an order that got in answers duplicate)", map[string]any{"results": []tasks.EnqueueResult{}})
			return
		}
		h.unavailable(w, r, err, "Redis is unavailable: nothing of this request was written, but an earlier send of any of its orders may have been accepted; send them again (an order that got in answers duplicate)", map[string]any{"results": []tasks.EnqueueResult{}})
		return
	}
	results := make([]tasks.EnqueueResult, 0, len(items))
	for start := 0; start < len(items); start += batchChunk {
		chunk := items[start:min(start+batchChunk, len(items))]
		ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
		out := h.enq.EnqueueBatch(ctx, chunk)
		cancel()
		for i, br := range out {
			if br.Err != nil {
				// Like the enqueue CLI, stop at the first order Redis
				// did not answer; those before stand.
				why := "Redis became unavailable"
				switch {
				case errors.As(br.Err, new(*tasks.UnconfirmedError)):
					why = "an earlier send of the order is in Redis, and it cannot be confirmed on the replicas now (a master short of the replicas durable writes require, or a server that is a replica now)"
				case errors.As(br.Err, new(*ledger.TooFewReplicasError)):
					why = "the Redis master has fewer replicas than durable writes require (ORDERWORKER_MIN_REPLICAS)"
				case errors.Is(br.Err, ledger.ErrReplicaNow):
					why = "the Redis server is a replica now (a failover in progress)"
				case errors.Is(br.Err, tasks.ErrNoKeyToCompare):
					why = tasks.ErrNoKeyToCompare.Error()
				case errors.Is(br.Err, ledger.ErrNotDurable):
					why = "the Redis master's replicas did not acknowledge the order in time"
				case errors.As(br.Err, new(*tasks.LostRefusalError)):
					why = providers.HidePhones(br.Err.Error())
				}
				rest := "the rest may or may not have been accepted: send them again (an order that got in answers duplicate)"
				if nothingWritten(out[i:]) && h.noneIn(r.Context(), items[start+len(chunk):]) {
					// Later chunks were never sent, and Redis holds none
					// of their orders (an earlier send of one may have
					// got in).
					rest = "nothing was written for it nor for the orders after it: send them again"
				}
				h.unavailable(w, r, br.Err, fmt.Sprintf("%s at order %d of %d; the orders before it were answered (results); %s", why, len(results)+1, len(items), rest),
					map[string]any{"results": results})
				return
			}
			results = append(results, hidden(br.EnqueueResult))
		}
	}
	writeJSON(w, http.StatusOK, results)
}

// publicCause names in short what kept Redis from taking or reading an
// order, for a producer's answer: never the Redis addresses, URL or key
// names the error carries (the server's log has them, as unavailable
// writes it).
func publicCause(err error) string {
	switch {
	case errors.As(err, new(*ledger.TooFewReplicasError)):
		return "the Redis master has fewer replicas than durable writes require"
	case errors.Is(err, ledger.ErrReplicaNow):
		return "the Redis server is a replica now: a failover in progress"
	case errors.As(err, new(*ledger.OutOfMemoryError)), redis.HasErrorPrefix(err, "OOM"):
		return "Redis is out of memory"
	case errors.Is(err, ledger.ErrNotDurable):
		return "the Redis master's replicas did not acknowledge in time"
	}
	return "Redis unavailable"
}

// noneIn reports whether Redis holds none of the orders items (never
// sent): false when it cannot be read.
func (h *Handler) noneIn(ctx context.Context, items [][]byte) bool {
	if len(items) == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	none, err := h.enq.NoneIn(ctx, items)
	return err == nil && none
}

// nothingWritten reports whether every answer of out is an error that
// wrote nothing for its order (a master short of replicas, a record this
// producer cannot compare): a batch stopped there was not accepted from
// that order on. An order answered otherwise (accepted by another master
// on Redis Cluster, or an error that may have written) makes it unsure.
func nothingWritten(out []tasks.BatchResult) bool {
	for _, br := range out {
		if br.Err == nil || !errors.As(br.Err, new(*ledger.TooFewReplicasError)) && !errors.Is(br.Err, tasks.ErrNoKeyToCompare) && !errors.Is(br.Err, ledger.ErrReplicaNow) {
			return false
		}
	}
	return true
}

// splitBatch returns the orders of a batch body: the elements of a JSON
// array, or else the non-blank lines (NDJSON). A malformed array is an
// error; a malformed line is that order's answer (invalid).
func splitBatch(body []byte) ([][]byte, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var raw []json.RawMessage
		if !utf8.Valid(trimmed) || !json.Valid(trimmed) {
			return nil, errors.New("the body is not a valid JSON array: " + syntaxReason(trimmed))
		}
		if err := json.Unmarshal(trimmed, &raw); err != nil {
			return nil, errors.New("the body is not a valid JSON array")
		}
		out := make([][]byte, len(raw))
		for i, m := range raw {
			out[i] = m
		}
		return out, nil
	}
	var out [][]byte
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			out = append(out, line)
		}
	}
	return out, nil
}

// getOrder is GET /v1/orders/{provider}/{order_no}[?wait=30s]: the record,
// params masked; with wait, once the order is paid or errored or when wait
// is over, whichever comes first.
func (h *Handler) getOrder(w http.ResponseWriter, r *http.Request) {
	if unknownParam(w, r, "wait") {
		return
	}
	ref := ledger.Ref{Provider: r.PathValue("provider"), OrderNo: r.PathValue("order_no")}
	wait := time.Duration(0)
	if s := r.URL.Query().Get("wait"); s != "" {
		d, err := parseWait(s)
		if err != nil {
			problem(w, http.StatusBadRequest, "wait: "+err.Error())
			return
		}
		wait = min(d, h.opts.MaxWait)
	}
	if !slices.Contains(h.set.Names(), ref.Provider) {
		// No order of another provider exists (and the ledger's key of
		// "tencent:A" and "B" is the one of "tencent" and "A:B").
		problem(w, http.StatusNotFound, "no order "+providers.HidePhones(ref.Provider)+"/"+providers.HidePhones(ref.OrderNo)+": no such provider (want one of "+strings.Join(h.set.Names(), ", ")+")")
		return
	}
	rec, err := h.get(r.Context(), ref)
	if err != nil {
		h.unavailable(w, r, err, "cannot read the order: Redis is unavailable", nil)
		return
	}
	if rec == nil {
		problem(w, http.StatusNotFound, "no order "+ref.Provider+"/"+providers.HidePhones(ref.OrderNo))
		return
	}
	deadline := time.Now().Add(wait)
	if wait > 0 && !rec.State.Terminal() {
		if rec, err = h.waitOutcome(r.Context(), ref, rec, wait); err != nil {
			h.unavailable(w, r, err, "cannot read the order: Redis is unavailable", nil)
			return
		}
		if rec == nil { // the client went away
			return
		}
	}
	if rec.State.Terminal() {
		if rec, err = h.outcomeOnReplicas(r.Context(), ref, rec, deadline); err != nil {
			detail := "the order's outcome is not on the Redis replicas yet (a failover now could take it back): ask again"
			if errors.As(err, new(*ledger.TooFewReplicasError)) {
				detail = "the Redis master has fewer replicas than durable writes require (ORDERWORKER_MIN_REPLICAS, or fewer than it was seen with): the order's outcome cannot be confirmed on them until they are back: ask again"
			}
			h.unavailable(w, r, err, detail, nil)
			return
		}
		if rec == nil { // the client went away
			return
		}
	}
	h.mask(rec)
	writeJSON(w, http.StatusOK, rec)
}

// parseWait reads a duration ("30s", "1m") or a number of seconds ("30").
func parseWait(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if !(n >= 0 && n <= 1e6) { // NaN too
			return 0, errors.New("want a duration like 30s, at least 0")
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("want a duration like 30s, at least 0")
	}
	return d, nil
}

func (h *Handler) get(ctx context.Context, ref ledger.Ref) (*ledger.Record, error) {
	c, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	return h.ledger.Get(c, ref)
}

// fallbackPoll is how often a long poll reads the record when the events
// stream cannot be watched; healthyPoll, while it is (an event wakes the
// poll: this only bounds what an event missed would cost, a failover to a
// master whose stream is behind, say). Every waiting client reads its
// order that often: hundreds of them at fallbackPoll would take Redis
// connections orders need.
const (
	fallbackPoll = 2 * time.Second
	healthyPoll  = 15 * time.Second
)

// waitOutcome waits until the order is terminal, wait is over, the client
// leaves (nil, nil) or the server shuts down, and returns the record as it
// then stands. It wakes on the order's events (every change to paid or
// errored appends one), and reads the record every fallbackPoll anyway.
func (h *Handler) waitOutcome(ctx context.Context, ref ledger.Ref, rec *ledger.Record, wait time.Duration) (*ledger.Record, error) {
	deadline := time.Now().Add(wait)
	hub := h.hubs[h.ledger.ShardOf(ref)]
	ch, stop, watching := hub.watch(ctx, ref.String())
	defer stop()
	// Read again now that the watch is in place: an event between the
	// first read and the watch is reflected here. Should that read fail,
	// the watch may have missed what it would have shown: read again as
	// often as without a watch.
	if r2, err := h.get(ctx, ref); err == nil && r2 != nil {
		rec = r2
	} else {
		watching = false
	}
	for !rec.State.Terminal() {
		left := time.Until(deadline)
		if left <= 0 {
			return rec, nil
		}
		t := time.NewTimer(min(left, hub.pollEvery(watching)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-h.closing:
			t.Stop()
			return rec, nil
		case <-ch:
		case <-t.C:
		}
		t.Stop()
		r2, err := h.get(ctx, ref)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, err
		}
		if r2 != nil {
			rec = r2
		}
	}
	return rec, nil
}

// outcomeOnReplicas returns rec, a paid or errored order, once the Redis
// replicas hold that outcome (ledger.RecordOnReplicas): a producer told
// paid or errored acts on it (delivers, refunds), and an outcome only
// the master holds, a failover could take back. Until the deadline (a
// long poll's) it reads the record again and checks again; past it, the
// error (ledger.ErrNotDurable, a TooFewReplicasError, Redis's). nil, nil
// when the client went away.
func (h *Handler) outcomeOnReplicas(ctx context.Context, ref ledger.Ref, rec *ledger.Record, deadline time.Time) (*ledger.Record, error) {
	for changed := 0; ; {
		c, cancel := context.WithTimeout(ctx, h.opts.Timeout)
		err := h.ledger.RecordOnReplicas(c, rec)
		cancel()
		if err == nil {
			return rec, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if errors.Is(err, ledger.ErrRecordChanged) {
			changed++ // read again (a few times past the deadline: it changed under the check)
		}
		if time.Until(deadline) < outcomeRecheck && (!errors.Is(err, ledger.ErrRecordChanged) || changed > 3) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-h.closing:
			return nil, err
		case <-time.After(outcomeRecheck):
		}
		r2, err := h.get(ctx, ref)
		if err != nil || r2 == nil {
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, cmp.Or(err, ledger.ErrNotFound)
		}
		if !r2.State.Terminal() {
			return r2, nil // taken back (a failover, an operator's redrive): nothing to hold
		}
		rec = r2
	}
}

// outcomeRecheck is how long a long poll waits before it reads an outcome
// again that the replicas did not hold yet.
const outcomeRecheck = 250 * time.Millisecond

// mask shows the record's params as enqueue status does, with personal
// data hidden whole rather than masked as for an operator (every token
// holder can read any order, and a phone number with seven of its digits
// shown, tried against the answers duplicate and conflict, would be found
// in ten thousand sends): sealed params opened (when the data key is
// known) and hidden, params in clear hidden.
func (h *Handler) mask(rec *ledger.Record) {
	// History messages and reasons are masked when recorded; hide phone
	// numbers, masked or not, in them too.
	for i := range rec.History {
		rec.History[i].Message = providers.HidePhones(rec.History[i].Message)
		// Who took an operator's step is for operators, not producers.
		rec.History[i].By = ""
	}
	rec.Reason = providers.HidePhones(rec.Reason)
	if tasks.IsSealed(rec.Params) && h.opts.Sealer == nil {
		return // opaque: nothing readable to mask
	}
	clear, err := h.opts.Sealer.Open(rec.Params)
	if err != nil {
		return // sealed with another key: stays opaque
	}
	rec.Params = providers.HideParams(clear, h.set.Masked(rec.Provider))
}
