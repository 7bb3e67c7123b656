package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/rebind"
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// OpenAPI is the API's OpenAPI 3.1 document, served at /v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Defaults of Options.
const (
	DefaultMaxWait        = 60 * time.Second
	DefaultMaxBatchBytes  = 8 << 20
	DefaultMaxBatchOrders = 10_000
	DefaultTimeout        = 10 * time.Second
	DefaultEventsLimit    = 100
	MaxEventsLimit        = 1000
)

// Options configure a Handler. nil means defaults.
type Options struct {
	// Tokens are the bearer tokens a request may carry. Without any, New
	// refuses unless Open is set.
	Tokens []string
	// Open lets the API run without tokens: anyone who reaches it may
	// enqueue orders and read them.
	Open bool
	// Sealer opens sealed params to show them masked; nil shows sealed
	// params as the opaque value they are.
	Sealer *tasks.Sealer
	// MaxWait caps ?wait= on GET /v1/orders/…. Default 60s.
	MaxWait time.Duration
	// MaxBatchBytes and MaxBatchOrders bound one batch request. Defaults
	// 8 MiB and 10,000 orders.
	MaxBatchBytes  int64
	MaxBatchOrders int
	// Timeout bounds the Redis work of one request (of each chunk of 256
	// orders in a batch). Default 10s.
	Timeout time.Duration
	// Listen is the client the long polls' listeners read the events
	// streams with: a blocking read per ledger shard while anyone waits
	// on an order of it. Give it its own pool, a connection per shard, so
	// that the listeners never take the connections orders need. nil:
	// the Handler's client.
	Listen redis.UniversalClient
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Handler is the HTTP API for producers (see the OpenAPI document). It is
// safe for concurrent use.
type Handler struct {
	enq     *tasks.Enqueuer
	ledger  *ledger.Ledger
	rdb     redis.UniversalClient
	set     *providers.Set
	opts    Options
	tokens  [][sha256.Size]byte
	mux     *http.ServeMux
	hubs    []*hub // one per events stream (ledger shard)
	log     *slog.Logger
	closing chan struct{}
	once    sync.Once
	// sameSite tells a browser's cross-site request (Sec-Fetch-Site, or
	// an Origin not the address asked) from others, for an open API.
	sameSite *http.CrossOriginProtection
	// readyMu guards what /readyz last logged, and when (notReady).
	readyMu     sync.Mutex
	readyLast   string
	readyLastAt time.Time
}

// MinTokenLen is the length under which New warns of an API token.
const MinTokenLen = 16

// ErrNoTokens is returned by New without tokens and without Options.Open.
var ErrNoTokens = errors.New("no API token: set ORDERWORKER_API_TOKENS (comma-separated), or allow an open API explicitly")

// ParseTokens splits ORDERWORKER_API_TOKENS: comma-separated, spaces
// around each ignored, empty items dropped.
func ParseTokens(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// New returns the API on enq (to accept orders), l (to read them) and rdb
// (to watch the events stream for long polls); set masks personal data.
func New(enq *tasks.Enqueuer, l *ledger.Ledger, rdb redis.UniversalClient, set *providers.Set, opts *Options) (*Handler, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if len(o.Tokens) == 0 && !o.Open {
		return nil, ErrNoTokens
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.MaxBatchOrders <= 0 {
		o.MaxBatchOrders = DefaultMaxBatchOrders
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &Handler{enq: enq, ledger: l, rdb: rdb, set: set, opts: o, log: o.Logger, closing: make(chan struct{}), sameSite: http.NewCrossOriginProtection()}
	short := 0
	for _, t := range o.Tokens {
		h.tokens = append(h.tokens, sha256.Sum256([]byte(t)))
		if len(t) < MinTokenLen {
			short++
		}
	}
	if short > 0 {
		h.log.Warn(fmt.Sprintf("api: %d of the API tokens are shorter than %d characters, easy to guess: use long random ones (openssl rand -hex 32)", short, MinTokenLen))
	}
	listen := o.Listen
	if listen == nil {
		listen = rdb
	}
	for _, stream := range l.EventStreams() {
		h.hubs = append(h.hubs, newHub(listen, stream, h.closing))
	}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/orders", h.auth(h.createOrder))
	mux.Handle("POST /v1/orders/batch", h.auth(h.createBatch))
	// {order_no...}: an order number may hold a slash.
	mux.Handle("GET /v1/orders/{provider}/{order_no...}", h.auth(h.getOrder))
	mux.Handle("GET /v1/events", h.auth(h.events))
	// Probes carry no token: they say no more than whether orders would
	// be taken now.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", h.ready)
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(OpenAPI)
	})
	// Every other answer is problem details too: a path the API has with
	// another method (405, naming the allowed one), or none (404).
	for path, allow := range map[string]string{
		"/v1/orders": "POST", "/v1/orders/batch": "POST", "/v1/orders/{provider}/{order_no...}": "GET, HEAD",
		"/v1/events": "GET, HEAD", "/v1/openapi.json": "GET, HEAD", "/healthz": "GET, HEAD", "/readyz": "GET, HEAD",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			problem(w, http.StatusMethodNotAllowed, r.Method+" is not allowed here; use "+allow)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, notFoundDetail)
	})
	h.mux = mux
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The router answers a path not in canonical form, or a provider
	// without an order number (which a trailing slash would complete),
	// with a redirect: no API path is either (an order number holds no
	// empty, "." or ".." part), so they are no such path, as problem
	// details like every other answer.
	p := r.URL.EscapedPath()
	if rest, ok := strings.CutPrefix(p, "/v1/orders/"); p != path.Clean(p) || ok && rest != "batch" && !strings.Contains(rest, "/") {
		problem(w, http.StatusNotFound, notFoundDetail)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// notFoundDetail is the detail of a 404 for a path the API does not have.
const notFoundDetail = "no such path: the API serves /v1/orders, /v1/orders/batch, /v1/orders/{provider}/{order_no}, /v1/events and /v1/openapi.json, and /healthz and /readyz"

// Close ends long polls at once (they answer with the record as it
// stands); call it when the server shuts down.
func (h *Handler) Close() { h.once.Do(func() { close(h.closing) }) }

// auth lets a request through when it carries one of the tokens as
// "Authorization: Bearer TOKEN" (the scheme in any case), or when the API
// is open. Tokens are compared as SHA-256 digests in constant time, each
// of them, so neither a token's content nor its length shows in the
// timing.
func (h *Handler) auth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(h.tokens) == 0 {
			// Open, no token to stop it: a web page in a browser that
			// reaches this address could enqueue orders (a form's POST
			// needs no preflight).
			if err := h.sameSite.Check(r); err != nil {
				problem(w, http.StatusForbidden, "a browser's cross-site request: refused, since this API runs without tokens")
				return
			}
			if rebind.Refused(r) {
				// A page whose name was pointed at this address (DNS
				// rebinding) passes the check above as same-origin.
				problem(w, http.StatusForbidden, rebind.Reason("ORDERWORKER_API_TOKENS"))
				return
			}
			next(w, r)
			return
		}
		if len(r.Header.Values("Authorization")) > 1 {
			// Two credentials: a proxy or an audit log reading the other
			// one would see another caller than the one let in.
			w.Header().Set("WWW-Authenticate", `Bearer realm="orderworker", error="invalid_request"`)
			problem(w, http.StatusUnauthorized, "more than one Authorization header: send one bearer token")
			return
		}
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		token = strings.TrimSpace(token)
		got := sha256.Sum256([]byte(token))
		ok := 0
		for i := range h.tokens {
			ok |= subtle.ConstantTimeCompare(got[:], h.tokens[i][:])
		}
		if ok != 1 || !strings.EqualFold(scheme, "Bearer") || token == "" {
			challenge := `Bearer realm="orderworker"`
			if strings.EqualFold(scheme, "Bearer") && token != "" {
				challenge += `, error="invalid_token"` // RFC 6750: a token was given, and is not one
			}
			w.Header().Set("WWW-Authenticate", challenge)
			problem(w, http.StatusUnauthorized, "missing or unknown bearer token")
			return
		}
		next(w, r)
	})
}

// unknownParam answers 400 naming the first query parameter of r (by
// name) that is not one of known, or else one of known given more than
// once, and reports whether it did: a mistyped ?aftr= would otherwise
// replay every event from the first, a ?wat= answer at once instead of
// waiting, without a word.
func unknownParam(w http.ResponseWriter, r *http.Request, known ...string) bool {
	q := r.URL.Query()
	names := make([]string, 0, len(q))
	var twice []string
	for name, vs := range q {
		if !slices.Contains(known, name) {
			names = append(names, name)
		} else if len(vs) > 1 {
			twice = append(twice, name)
		}
	}
	if len(names) == 0 && len(twice) > 0 {
		// ?after=0&after=5 would be read as one of them without a word
		// (a replay of every event from the first, say).
		slices.Sort(twice)
		problem(w, http.StatusBadRequest, fmt.Sprintf("query parameter %q given more than once", twice[0]))
		return true
	}
	if len(names) == 0 {
		return false
	}
	slices.Sort(names)
	want := "none"
	if len(known) > 0 {
		want = strings.Join(known, ", ")
	}
	problem(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q (want %s)", providers.Truncate(providers.HidePhones(names[0]), 64), want))
	return true
}

// problem writes an RFC 9457 problem details answer.
func problem(w http.ResponseWriter, status int, detail string) {
	problemWith(w, status, detail, nil)
}

func problemWith(w http.ResponseWriter, status int, detail string, extra map[string]any) {
	body := map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail}
	for k, v := range extra {
		body[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ready answers /readyz: 200 while an order sent now would be taken
// (Redis answers, the ledger's shard count and data key are this
// process's, the master has the replicas durable writes need and room
// for a write), else 503
// with the reason in short; the detail goes to the log only, as for the
// worker's /readyz.
func (h *Handler) ready(w http.ResponseWriter, r *http.Request) {
	select {
	case <-h.closing:
		problem(w, http.StatusServiceUnavailable, "not ready: shutting down")
		return
	default:
	}
	ctx, cancel := context.WithTimeout(r.Context(), min(h.opts.Timeout, 5*time.Second))
	defer cancel()
	err := h.checkDataKey(ctx)
	if err == nil {
		err = h.ledger.CheckWritable(ctx)
	}
	if err == nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	why := "redis unreachable"
	switch {
	case errors.As(err, new(*ledger.TooFewReplicasError)):
		why = "too few redis replicas"
	case errors.As(err, new(*ledger.OutOfMemoryError)), redis.HasErrorPrefix(err, "OOM"):
		why = "redis out of memory"
	case errors.As(err, new(*ledger.DataKeyMismatchError)), errors.Is(err, tasks.ErrNoKeyToCompare):
		why = "data key"
	case errors.As(err, new(*ledger.ShardsMismatchError)):
		why = "ledger shards"
	case errors.As(err, new(*ledger.FormatError)):
		why = "ledger format"
	}
	h.notReady(why, err)
	problem(w, http.StatusServiceUnavailable, "not ready: "+why)
}

// notReady logs why /readyz answered 503, with the detail: when the reason
// first answers, and again every minute while it lasts (anyone may ask,
// as often as they like).
func (h *Handler) notReady(why string, err error) {
	h.readyMu.Lock()
	defer h.readyMu.Unlock()
	if why == h.readyLast && time.Since(h.readyLastAt) < time.Minute {
		return
	}
	h.readyLast, h.readyLastAt = why, time.Now()
	h.log.Warn("api: not ready", "reason", why, "error", err)
}

// checkDataKey checks that the ledger's shard count is this process's,
// and its data key (Enqueuer.CheckDataKey): checked before an order is
// read, so that a misconfigured server or a Redis outage is answered 503
// with the reason, and the next order tries again.
func (h *Handler) checkDataKey(ctx context.Context) error {
	if err := h.ledger.CheckShards(ctx); err != nil {
		return err
	}
	return h.enq.CheckDataKey(ctx)
}

// unavailable answers 503 for an infrastructure error and logs it, with
// what the answer says (Redis unreachable, too few replicas, a data key
// that does not match the ledger's, …).
func (h *Handler) unavailable(w http.ResponseWriter, r *http.Request, err error, detail string, extra map[string]any) {
	h.log.Warn("api: answered 503", "method", r.Method, "path", r.URL.Path, "error", err, "detail", detail)
	problemWith(w, http.StatusServiceUnavailable, detail, extra)
}

// readTimeout bounds reading a whole request, its body included: a body
// that has not arrived by then is answered 408. At 140 KB/s the largest
// batch (8 MiB) arrives in it.
const readTimeout = time.Minute

// Serve answers on ln until ctx ends, then shuts down gracefully: it
// stops accepting, long polls answer at once, and requests in flight get
// up to 10 seconds to finish.
func Serve(ctx context.Context, ln net.Listener, h *Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       readTimeout,
		WriteTimeout:      h.opts.MaxWait + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		h.Close()
		return err
	case <-ctx.Done():
	}
	h.Close()
	c, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(c)
	if errors.Is(err, context.DeadlineExceeded) {
		// A request still running (a batch still uploading): cut. Its
		// producer sees no answer and sends it again; what got in
		// answers duplicate. A stop on a signal is no failure.
		h.log.Warn("api: requests still in flight at the end of the shutdown grace were cut off; their producers send them again", "grace", shutdownGrace)
		err = srv.Close()
	}
	<-errc
	return err
}

// shutdownGrace is how long requests in flight get to finish when Serve
// stops.
const shutdownGrace = 10 * time.Second
