package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/internal/jsonscan"
	"github.com/orderworker/orderworker/providers"
)

// TypeOrderSubmit is the asynq task type of an order.
const TypeOrderSubmit = "order:submit"

// DefaultQueue is the asynq queue orders go to.
const DefaultQueue = "orders"

// MaxPayloadBytes bounds a payload's size.
const MaxPayloadBytes = 64 << 10

// MaxOrderNoLen bounds order_no.
const MaxOrderNoLen = 64

// Payload is the wire contract producers send:
//
//	{"provider": "tencent", "order_no": "Order100001",
//	 "params": {"CustomerId": "Customer100001", "ItemId": "D-FireInsurance2020", "ItemNum": 2}}
//
// params uses the provider's own field names. Secrets never travel in it.
// Where the producer shares the workers' data key, params may instead be a
// sealed string (see Sealer): the Enqueuer seals them before they reach
// Redis.
type Payload struct {
	Provider string          `json:"provider"`
	OrderNo  string          `json:"order_no"`
	Params   json.RawMessage `json:"params"`
}

// InvalidError is a payload or params that cannot be accepted. Reason says
// why, naming the field.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "invalid order: " + e.Reason }

func invalid(format string, args ...any) error {
	return &InvalidError{Reason: fmt.Sprintf(format, args...)}
}

// IsInvalid reports whether err is an *InvalidError.
func IsInvalid(err error) bool {
	var e *InvalidError
	return errors.As(err, &e)
}

// DecodePayload parses a payload strictly: one JSON object of at most
// MaxPayloadBytes, valid UTF-8, no unknown fields, no trailing data,
// provider and order_no well formed and params a JSON object. It does not
// check params against the provider (see Validate).
func DecodePayload(data []byte) (Payload, error) {
	p, _, err := decodePayload(data)
	return p, err
}

// decodePayload is DecodePayload, also reporting whether the payload was
// read in one pass with each of its keys given once, spelled exactly as
// the contract's (what checkPayloadKeys asks).
func decodePayload(data []byte) (Payload, bool, error) {
	var p Payload
	if len(data) > MaxPayloadBytes {
		return p, false, invalid("payload is %d bytes, over the %d-byte limit", len(data), MaxPayloadBytes)
	}
	if !utf8.Valid(data) {
		return p, false, invalid("payload is not valid UTF-8")
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		if len(data) > 0 && !json.Valid(data) {
			return p, false, invalid("payload is not JSON: %s", SyntaxReason(data))
		}
		return p, false, invalid("payload must be a JSON object")
	}
	p, ok, once := decodePlain(data)
	if !ok {
		// What the plain reading does not cover, and every error, as
		// encoding/json reads it.
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return Payload{}, false, invalid("malformed payload: %s", jsonReason(err))
		}
		if _, err := dec.Token(); err != io.EOF {
			return Payload{}, false, invalid("trailing data after the payload object")
		}
	}
	if err := p.check(); err != nil {
		return Payload{}, false, err
	}
	p.Params = bytes.TrimSpace(p.Params)
	return p, ok && once, nil
}

// decodePlain reads a well-formed payload object whose keys are spelled
// exactly as the contract's, whose provider and order_no are strings or
// null, in one pass, to the same Payload encoding/json decodes (the last
// of a repeated key counts; null leaves a string as it was). It reports
// false for anything else, which the decoder then reads.
func decodePlain(data []byte) (p Payload, ok, once bool) {
	members, ok := jsonscan.Members(data)
	if !ok {
		return p, false, false
	}
	var seen [3]bool
	once = true
	for _, m := range members {
		var i int
		switch string(m.Key) {
		case "provider":
			if ok = jsonString(m.Value, &p.Provider); !ok {
				return p, false, false
			}
		case "order_no":
			if ok = jsonString(m.Value, &p.OrderNo); !ok {
				return p, false, false
			}
			i = 1
		case "params":
			p.Params = bytes.Clone(m.Value) // not the caller's buffer
			i = 2
		default:
			return p, false, false
		}
		once = once && !seen[i]
		seen[i] = true
	}
	return p, true, once
}

// jsonString decodes v, one well-formed JSON value, into s when it is a
// string, leaves s when it is null, and reports false for anything else.
func jsonString(v []byte, s *string) bool {
	switch {
	case string(v) == "null":
		return true
	case len(v) < 2 || v[0] != '"':
		return false
	case bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v):
		*s = string(v[1 : len(v)-1])
		return true
	}
	return json.Unmarshal(v, s) == nil
}

// check validates the payload's own fields (not params against a provider).
func (p Payload) check() error {
	if err := checkOrderNo(p.OrderNo); err != nil {
		return err
	}
	if p.Provider == "" {
		return invalid("provider: required")
	}
	if len(p.Provider) > 32 || !isName(p.Provider) {
		return invalid("provider: must be a lower-case name like tencent")
	}
	pr := bytes.TrimSpace(p.Params)
	if len(pr) == 0 || string(pr) == "null" {
		return invalid("params: required")
	}
	if pr[0] != '{' && !IsSealed(pr) {
		return invalid("params: must be a JSON object")
	}
	return nil
}

func checkOrderNo(s string) error {
	switch {
	case s == "":
		return invalid("order_no: required")
	case len(s) > MaxOrderNoLen:
		return invalid("order_no: longer than %d characters", MaxOrderNoLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return invalid("order_no: only printable ASCII without spaces is allowed")
		}
	}
	return nil
}

// decodeProduced is DecodePayload for an order a producer hands to the
// Enqueuer: it also refuses a payload that names one of its fields twice,
// or in another case than the contract's ("Order_No"). Decoding would
// take one of the values silently, and the producer's order number or
// provider could be another than the one it logged. The worker decodes
// what it was given (DecodePayload).
func decodeProduced(data []byte) (Payload, error) {
	p, checked, err := decodePayload(data)
	if err != nil || checked {
		return p, err
	}
	if err := checkPayloadKeys(data); err != nil {
		return Payload{}, err
	}
	return p, nil
}

// checkPayloadKeys refuses a payload object (already decoded without
// error) whose keys are not provider, order_no and params, each at most
// once and spelled exactly so.
func checkPayloadKeys(data []byte) error {
	members, ok := jsonscan.Members(data)
	if !ok {
		return nil // DecodePayload judged the document
	}
	var seen [3]bool
	for _, m := range members {
		var i int
		switch string(m.Key) {
		case "provider":
			i = 0
		case "order_no":
			i = 1
		case "params":
			i = 2
		default:
			return invalid("the payload field %q: field names are case-sensitive (provider, order_no, params)", providers.Truncate(providers.MaskPhones(string(m.Key)), 64))
		}
		if seen[i] {
			return invalid("the payload field %q appears twice", m.Key)
		}
		seen[i] = true
	}
	return nil
}

// checkOrderNoPersonal refuses an order number that is, or holds, what
// looks like a phone number (13800138000, Order13800138000,
// 20241130-138-0013-8000): an order number is stored and shown in clear
// wherever it names the order (Redis keys, asynq's task id and its error
// text, the dashboard's task lists, events), whatever ORDERWORKER_DATA_KEY
// seals, and nothing can tell a phone number in it from an id that looks
// like one. The Enqueuer checks, and the worker for a task a producer wrote
// itself, on its first run.
func checkOrderNoPersonal(s string) error {
	if providers.IsPhoneNumber(s) {
		return invalid("order_no: a phone number is personal data and an order number is stored and shown in clear, even with ORDERWORKER_DATA_KEY set: use an order number of your own")
	}
	if providers.MaskPhones(s) != s {
		return invalid("order_no: holds what looks like a phone number (%s), personal data, and an order number is stored and shown in clear, even with ORDERWORKER_DATA_KEY set: use an order number without it", providers.MaskPhones(s))
	}
	return nil
}

// checkOrderPath refuses an order number that a URL path would read
// otherwise (a/../b, a//b): it is a path segment of GET
// /v1/orders/{provider}/{order_no} and could never be asked for. The
// Enqueuer checks; the worker takes the tasks queued before this rule.
func checkOrderPath(s string) error {
	for seg := range strings.SplitSeq(s, "/") {
		if seg == "" || seg == "." || seg == ".." {
			// It names the order in URL paths (the API, the dashboard).
			return invalid("order_no: '.' and '..' may not be the order number or a part of it between '/'s, and a '/' may not start or end it or come twice in a row")
		}
	}
	return nil
}

// checkDuplicateKeys refuses params in which a key appears twice in one
// object: decoding keeps the last of two values, so the checks (personal
// data without a data key, the provider's validation) would judge one
// value while the params stored, as sent, hold both. The Enqueuer checks;
// the worker takes what it was given.
func checkDuplicateKeys(params []byte) error {
	if key, ok := duplicateKey(params); ok {
		// A key may be a person's name (providers.SafeFieldName).
		return invalid("params: the key %q appears twice in one object", providers.SafeFieldName(key))
	}
	return nil
}

// duplicateKey reports the first key that appears twice in one object of
// the JSON document data (which is valid JSON).
func duplicateKey(data []byte) (string, bool) {
	key, found, _ := jsonscan.DuplicateKey(data)
	return key, found
}

func isName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return s != ""
}

// jsonReason turns a decoder error into a short reason without echoing
// the payload (which may hold personal data).
// SyntaxReason says why data, which json.Valid refuses, is not JSON, and
// where: a document cut short ("unexpected end of input"), a second value
// after the first ("extra data after the first value": two objects sent
// as one), or a syntax error, each at its byte (counting from 1, as
// encoding/json does), and its line when data has several.
func SyntaxReason(data []byte) string {
	if !utf8.Valid(data) {
		return "not valid UTF-8"
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return "empty"
	}
	var v any
	var se *json.SyntaxError
	if err := json.Unmarshal(data, &v); !errors.As(err, &se) {
		return "unexpected end of input"
	}
	at := fmt.Sprintf("byte %d", se.Offset)
	if bytes.Contains(data, []byte("\n")) {
		at += fmt.Sprintf(" (line %d)", 1+bytes.Count(data[:min(se.Offset, int64(len(data)))], []byte("\n")))
	}
	switch {
	case strings.HasPrefix(se.Error(), "unexpected end"):
		return "unexpected end of input after " + at + ": an object, array or string is not closed"
	case strings.Contains(se.Error(), "after top-level value"):
		return "extra data after the first value, at " + at
	}
	return "syntax error at " + at
}

func jsonReason(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s: must be %s", te.Field, te.Type)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of input"
	}
	msg := err.Error()
	if after, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name, err := strconv.Unquote(after)
		if err != nil {
			name = "\x00" // withheld
		}
		return "unknown field " + strconv.Quote(providers.SafeFieldName(name))
	}
	return "not a valid order object"
}

// Validate checks the payload's params (in clear) against its provider,
// enabled or disabled: a disabled provider's orders are accepted and
// recorded, and fail with a clear reason in the worker rather than vanish.
func Validate(p Payload, set *providers.Set) error {
	if err := set.Validate(p.Provider, p.Params); err != nil {
		return invalid("%s", msgOf(err))
	}
	return nil
}

// personalError is a refusal of what may not be stored in clear: a
// personal-data param without a data key (openAndValidate returns the
// params with it), a phone number in the params without one, an order
// number that is a phone number. It is answered only for an order not
// recorded yet: one accepted before the rule (an older version, or a
// producer's own task that ran) stands, and is answered, or run, as such.
type personalError struct{ error }

func (e personalError) Unwrap() error { return e.error }

// openAndValidate returns the payload's params in clear and parsed
// (validated), and refuses personal data when there is no key to seal it
// with. A sealed value this process cannot open is an error wrapping
// ErrSealed or errConfig.
func openAndValidate(p Payload, set *providers.Set, sealer *Sealer) (json.RawMessage, providers.Params, error) {
	clear, err := sealer.Open(p.Params)
	if err != nil {
		if errors.Is(err, ErrSealed) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: %s", errConfig, err.Error())
	}
	parsed, err := set.Parse(p.Provider, clear)
	if err != nil {
		return nil, nil, invalid("%s", msgOf(err))
	}
	if sealer == nil {
		if name := sensitiveField(set, p.Provider, clear); name != "" {
			return clear, parsed, personalError{invalid("params.%s is personal data: set ORDERWORKER_DATA_KEY so it is stored encrypted, or leave it out", name)}
		}
	}
	// The scope a provider's order ids are kept by (Aliyun's device) is
	// stored in clear, on the record and in the owner index's fields,
	// whatever the data key seals: as an order number is, it may not
	// hold a phone number.
	if scope, scoped := set.IDScope(p.Provider, parsed); scoped && providers.MaskPhones(scope) != scope {
		return clear, parsed, personalError{invalid("params.%s: holds what looks like a phone number (%s), personal data, and it is stored and shown in clear as the scope of the provider's order ids, even with ORDERWORKER_DATA_KEY set", set.IDScopeField(p.Provider), providers.MaskPhones(scope))}
	}
	return clear, parsed, nil
}

// sensitiveField names the first of the provider's personal-data params
// that clear holds a value for, "" when it holds none.
func sensitiveField(set *providers.Set, provider string, clear json.RawMessage) string {
	names := set.Sensitive(provider)
	if len(names) == 0 {
		return ""
	}
	members, _ := jsonscan.Members(clear)
	for _, name := range names {
		for _, m := range members {
			if string(m.Key) == name && string(m.Value) != `""` && string(m.Value) != "null" {
				return name
			}
		}
	}
	return ""
}

// phoneField names the param whose value holds what looks like a phone
// number (providers.MaskPhones would mask it), "" when none does. Without
// a data key, such params are refused at enqueue whatever field holds
// them: a provider's id field (Tencent's CustomerId) may hold a phone
// number as well as a name field may. Orders already queued are not
// judged again.
func phoneField(clear json.RawMessage) string {
	// Judged on the text as given, and value by value as decoded, as the
	// masks of the answers judge it: an escaped digit (\u0031) is a
	// digit, a value that is itself escaped text (the characters
	// \u0031…) is read as MaskPhones reads it, and a key given twice
	// keeps only its last value once decoded. Text without a backslash
	// has no escape: it decodes to what it says, and the text as given
	// shows every value.
	asGiven := providers.MaskPhones(string(clear)) != string(clear)
	if !asGiven && !bytes.Contains(clear, []byte{'\\'}) {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(clear))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) == nil {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if providers.MaskPhones(k) != k || holdsPhone(m[k]) {
				return "params." + providers.Truncate(providers.MaskPhones(k), 64)
			}
		}
	}
	if asGiven {
		return "params"
	}
	return ""
}

// holdsPhone reports whether a decoded JSON value holds what MaskPhones
// masks, in a string, a number, a key or an element.
func holdsPhone(v any) bool {
	switch x := v.(type) {
	case string:
		return providers.MaskPhones(x) != x
	case json.Number:
		return providers.MaskPhones(string(x)) != string(x)
	case []any:
		return slices.ContainsFunc(x, holdsPhone)
	case map[string]any:
		for k, e := range x {
			if providers.MaskPhones(k) != k || holdsPhone(e) {
				return true
			}
		}
	}
	return false
}

func msgOf(err error) string {
	var e *providers.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// NewOrderSubmitTask returns the asynq task for p. Its TaskID is the
// order's key, a first filter against double enqueueing.
func NewOrderSubmitTask(p Payload, opts ...asynq.Option) (*asynq.Task, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	opts = append([]asynq.Option{asynq.TaskID(TaskID(p.Provider, p.OrderNo))}, opts...)
	return asynq.NewTask(TypeOrderSubmit, data, opts...), nil
}

// claimedHeader marks a task queued for an order the ledger had claimed
// first (by the Enqueuer or the reconciler), as "MS:TOKEN": a time no
// later than any create of the order (ms since the epoch) and the claim's
// token ("" when not known). Its record exists unless that very claim was
// undone (Ledger.Unclaimed) or Redis lost it; a lost one is recorded
// unknown and looked up from that time on, never taken for a new order,
// however many times the task waited before. Tasks a producer writes
// itself carry no such header: the worker claims those on first sight.
const claimedHeader = "orderworker-claimed"

// orderTaskPayload is json.Marshal(p) for an order whose params are
// compact JSON as the Enqueuer leaves them (json.Marshal's own output, or a
// sealed string): the same bytes, without reflection.
func orderTaskPayload(p Payload) ([]byte, error) {
	b := make([]byte, 0, 48+len(p.Provider)+len(p.OrderNo)+len(p.Params))
	b = append(b, `{"provider":`...)
	b, ok := jsonscan.AppendString(b, p.Provider)
	b = append(b, `,"order_no":`...)
	b, ok2 := jsonscan.AppendString(b, p.OrderNo)
	if !ok || !ok2 {
		return json.Marshal(p)
	}
	b = append(b, `,"params":`...)
	b = append(b, p.Params...)
	return append(b, '}'), nil
}

// newClaimedTask is NewOrderSubmitTask for an order claimed in the ledger
// with token, no create of which left before at.
func newClaimedTask(p Payload, at time.Time, token string) (*asynq.Task, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTaskWithHeaders(TypeOrderSubmit, data, map[string]string{claimedHeader: claimMark(at, token)},
		asynq.TaskID(TaskID(p.Provider, p.OrderNo))), nil
}

// QueuedWithClaim reports whether t was queued for an order the ledger had
// claimed first (by an Enqueuer, or a worker re-queueing its order), not
// written into asynq by a producer itself.
func QueuedWithClaim(t *asynq.Task) bool {
	ok, _, _ := claimedMark(t)
	return ok
}

// claimMark is the claimedHeader of a task claimed at at with token.
func claimMark(at time.Time, token string) string {
	return strconv.FormatInt(at.UnixMilli(), 10) + ":" + token
}

// claimedMark reads a task's claimedHeader: whether it has one, the time
// (zero when unreadable) and the claim's token.
func claimedMark(t *asynq.Task) (ok bool, at time.Time, token string) {
	v, ok := t.Headers()[claimedHeader]
	if !ok {
		return false, time.Time{}, ""
	}
	ms, token, _ := strings.Cut(v, ":")
	if n, err := strconv.ParseInt(ms, 10, 64); err == nil && n > 0 {
		at = time.UnixMilli(n).UTC()
	}
	return true, at, token
}

// TaskID is the asynq task id of an order.
func TaskID(provider, orderNo string) string { return provider + ":" + orderNo }
