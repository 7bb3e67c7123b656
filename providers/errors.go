package providers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Code classifies a provider error by what the caller should do about it.
type Code int

const (
	// OK is the code of a nil error: the call succeeded.
	OK Code = iota
	// Unknown is the code of an error that is not an *Error. Callers treat
	// it like Ambiguous: the request may have reached the provider.
	Unknown
	// InvalidArgument: the provider rejected the order's content, or it
	// failed validation. Permanent.
	InvalidArgument
	// Unauthenticated: bad credentials or signature, refused before
	// anything was created. A problem of the worker's configuration, not
	// of the order: the order waits, unchanged, for a worker whose
	// credentials the provider takes. The same holds an order refused for
	// the request's time (the worker's clock: Error.Err is ErrClock) or
	// for the account as a whole (arrears, an exhausted quota, a missing
	// permission of the account's user: ErrAccount).
	Unauthenticated
	// PermissionDenied: the account may not do this for this order (a
	// platform's own forbidden answer). Permanent. A refusal of the
	// account as a whole is Unauthenticated with ErrAccount.
	PermissionDenied
	// FailedPrecondition: the worker cannot submit this order as
	// configured (for example the provider is disabled). Permanent.
	FailedPrecondition
	// RateLimited: the provider throttled the request, or the worker's
	// own rate limiter held it back before it was sent; nothing was
	// created. Retry after Error.RetryAfter (or a backoff when zero); it
	// does not count against the order's retry budget.
	RateLimited
	// Unavailable: the request surely did not create anything (connection
	// refused, a 5xx the provider answers before acting, a failed lookup).
	// Safe to retry.
	Unavailable
	// Ambiguous: the request may have created the order (timeout or
	// connection reset after the request was written, a 5xx from a create
	// call). Look the order up before submitting again.
	Ambiguous
	// NotFound: the provider does not hold the order (from Lookup).
	NotFound
)

var codeNames = [...]string{
	OK:                 "ok",
	Unknown:            "unknown",
	InvalidArgument:    "invalid_argument",
	Unauthenticated:    "unauthenticated",
	PermissionDenied:   "permission_denied",
	FailedPrecondition: "failed_precondition",
	RateLimited:        "rate_limited",
	Unavailable:        "unavailable",
	Ambiguous:          "ambiguous",
	NotFound:           "not_found",
}

func (c Code) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", int(c))
}

// Error is the one error type providers return.
//
// Its text never holds a credential or personal data: asynq stores error
// text in Redis and the dashboard shows it.
type Error struct {
	Code Code
	// Op names the call, for example "tencent ServiceCreateOrder".
	Op string
	// HTTPStatus is the response's HTTP status, 0 when there was none.
	HTTPStatus int
	// ProviderCode is the provider's own error code, if any.
	ProviderCode string
	// Message is the provider's message or our reason, already masked.
	Message string
	// RetryAfter is the provider's requested delay for RateLimited.
	RetryAfter time.Duration
	// Err is the underlying error, if any. Its text is included in Error(),
	// so it must be free of secrets too (transport errors are).
	Err error
}

func (e *Error) Error() string {
	s := e.Op
	if s != "" {
		s += ": "
	}
	s += e.Code.String()
	if e.HTTPStatus != 0 {
		s += fmt.Sprintf(" (http %d)", e.HTTPStatus)
	}
	if e.ProviderCode != "" {
		s += " " + e.ProviderCode
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, op, format string, args ...any) *Error {
	return &Error{Code: code, Op: op, Message: fmt.Sprintf(format, args...)}
}

// Causes of an Unauthenticated error (Error.Err) other than the
// credentials: what the refusal asks an operator to fix. Neither is the
// order's fault, and neither created anything, so the order waits for the
// fix instead of being errored (bounded by its deadline).
var (
	// ErrClock: the provider refused the request's timestamp. The
	// request was re-signed at every attempt, so the worker's clock (or
	// the provider's) is off.
	ErrClock = errors.New("the provider refused the request's time: check this worker's clock (NTP)")
	// ErrSignature: the provider's gateway refused the request's
	// signature or key, as it refuses every call signed so, whatever the
	// API: the credentials, not one API's permissions.
	ErrSignature = errors.New("the provider refused this worker's signature or key: check its credentials")
	// ErrAccount: the provider refused the account itself (arrears, an
	// exhausted call quota, a permission its user lacks).
	ErrAccount = errors.New("the provider refused the account (arrears, quota or permissions): check it in the provider's console")
)

// ErrNoNews is what a caller reports to a circuit breaker for a call that
// tells nothing of the provider's health: a read the provider answered in
// a way that could not be used (see tasks/guard). It counts neither as a
// failure nor as a success.
var ErrNoNews = errors.New("the provider answered, but not in a way that tells of its health")

// Local wraps err, a failure of this worker's own store (its Redis: the
// ledger a lookup asks which orders are whose, a shared token) met by a
// provider call, as an *Error's Err: the provider was not asked, or its
// answer not judged, so it is no news of the provider's health
// (ErrNoNews), which a circuit breaker must not count (a blip of Redis
// would open every provider's breaker, and hold orders back for its
// cool-down once Redis is back). errors.Is and As reach err through it.
func Local(err error) error { return local{err} }

// Unsent reports whether err is a read's throttling (by the provider or
// this worker's own rate limits), its credentials' refusal, or a failure of
// this worker's own Redis on the way (Local): it says nothing of the
// provider's health nor of what the provider holds. A listing of several
// pages whose page read to judge where the pages start, or read again to
// confirm an end, fails so fails with that error, never as a page that
// could not be read (Unavailable, which counts against the circuit
// breaker: against a throttling gateway, snapshots failing so opened it
// for half a minute at a time, and one shared listing failing so is every
// waiting lookup's failure).
func Unsent(err error) bool {
	c := CodeOf(err)
	return err != nil && (c == RateLimited || c == Unauthenticated || IsLocal(err))
}

// IsLocal reports whether err is (or wraps) a failure Local marked.
func IsLocal(err error) bool {
	var l local
	return errors.As(err, &l)
}

type local struct{ err error }

func (l local) Error() string      { return l.err.Error() }
func (l local) Unwrap() error      { return l.err }
func (local) Is(target error) bool { return target == ErrNoNews }

// ErrSaysExists is an *Error's Err for a create the provider refused saying
// an order of its number exists already (or that the request was used
// before): the order may exist, whatever a lookup later finds (a server
// that stores numbers otherwise than it was sent them, padded, cut or
// case-folded, lists it in a form a lookup takes for another's). The
// order state machine never errors such an order as not created. It is
// no news of the provider's health either (ErrNoNews): a server that
// answers so works.
var ErrSaysExists error = saysExists{}

type saysExists struct{}

func (saysExists) Error() string        { return "said to exist" }
func (saysExists) Is(target error) bool { return target == ErrNoNews }

// ErrThrottled is an *Error's Err for a create or pay the provider
// answered as throttled where no document says a throttle comes before it
// acts: the call is Ambiguous (it may have acted: looked up, never sent
// again blind), yet the provider answered, so it is no news of its health
// (ErrNoNews), and the order state machine spends none of the order's
// failure budget on it, as on no throttle.
var ErrThrottled error = throttled{}

type throttled struct{}

func (throttled) Error() string        { return "throttled" }
func (throttled) Is(target error) bool { return target == ErrNoNews }

// Throttled reports whether err is a call throttled so (ErrThrottled).
func Throttled(err error) bool { return errors.Is(err, ErrThrottled) }

// ErrRetryAnswer is an *Error's Err for a create answered with what the
// provider's documents call retryable as it stands, unlike the other
// server errors they say to reconcile first (Aliyun's "503 service not
// available"): still Ambiguous, as no document says it comes before the
// provider acts, but, as for a throttle (ErrThrottled), a lookup's
// not-found past the listing lag is believed where listings are not
// trusted to prove an order absent, so that the order is created again
// rather than left for a person. It is news of the provider's health
// (the circuit breaker counts it) and spends the order's failure budget.
var ErrRetryAnswer = errors.New("answered retryable")

// RetryAnswer reports whether err is a create answered so (ErrRetryAnswer).
func RetryAnswer(err error) bool { return errors.Is(err, ErrRetryAnswer) }

// SaysExists reports whether err is a create refused so (ErrSaysExists).
func SaysExists(err error) bool { return errors.Is(err, ErrSaysExists) }

// Held returns an Unauthenticated *Error that holds the order for cause
// (ErrClock, ErrAccount): e with that code and cause (and e.Err, if any,
// kept after it).
func Held(e *Error, cause error) *Error {
	e.Code = Unauthenticated
	if e.Err != nil {
		e.Err = fmt.Errorf("%w: %w", cause, e.Err)
	} else {
		e.Err = cause
	}
	return e
}

// CodeOf returns the code of the first *Error in err's chain; nil is OK.
// A bare context error is Ambiguous: whether the request was already on
// its way is not knowable here (providers classify their own transport
// errors through Send, which does know).
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return Ambiguous
	}
	return Unknown
}

// RetryAfterOf returns the provider's requested delay, if err carries one.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// Retryable reports whether an order whose call failed with code c may be
// tried again. It is the one place this is decided.
func Retryable(c Code) bool {
	switch c {
	case RateLimited, Unavailable, Ambiguous, Unknown:
		return true
	default:
		return false
	}
}

// MaybeCreated reports whether a call that failed with code c may have
// created the order, so the next attempt must look it up first.
func MaybeCreated(c Code) bool {
	return c == Ambiguous || c == Unknown
}

// PageBase is what reading page 0 of a listing shows about where the
// server's page numbers start, when the documents do not say.
type PageBase int

const (
	// BaseUnknown: nothing shown (page 0 could not be read, or both pages
	// are empty, or an order lacks its id): the listing read from 1 stands.
	BaseUnknown PageBase = iota
	// BaseFrom1: page 0 was refused as invalid, repeats page 1 (the same
	// orders, in any order: see SameIDs), or is empty while page 1 is not.
	BaseFrom1
	// BaseFrom0: page 0 holds orders and page 1 none, or none of page 1's.
	BaseFrom0
	// BaseMoved: page 0 shares some of page 1's orders but not all: orders
	// moved between the reads, and the listing cannot be trusted.
	BaseMoved
)

// SameIDs reports whether a and b hold the same order ids, each as many
// times, in any order: the same page read twice, where the order of a
// page's entries is not documented (a server may answer them in another
// order on every call, and one page served as another is still the same
// orders).
func SameIDs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	if slices.Equal(a, b) {
		return true
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// JudgePageZero judges page 0 of a listing (its order ids, or err from
// reading it) against page 1 (its ids, as read before).
func JudgePageZero(err error, zero, one []string) PageBase {
	switch {
	case err != nil && CodeOf(err) == InvalidArgument:
		return BaseFrom1
	case err != nil, slices.Contains(zero, ""), slices.Contains(one, ""):
		return BaseUnknown
	case len(zero) == 0 && len(one) == 0:
		return BaseUnknown
	case len(zero) == 0:
		return BaseFrom1
	case len(one) == 0:
		return BaseFrom0
	case SameIDs(zero, one):
		return BaseFrom1
	}
	for _, id := range zero {
		if slices.Contains(one, id) {
			return BaseMoved
		}
	}
	return BaseFrom0
}
