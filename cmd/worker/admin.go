package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/rebind"
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks"
	ledgerpkg "github.com/orderworker/orderworker/tasks/ledger"
)

// adminHandler serves /metrics, /healthz, /readyz, the dashboard at
// /monitoring/ and, when orders is not nil, the Orders pages at /orders/
// and their API at /api/orders, these two behind the same token as the
// dashboard.
func adminHandler(reg *prometheus.Registry, ready func() error, monitoring, orders http.Handler, token providers.Secret) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			// Anyone who reaches the port may ask: the answer names the
			// problem, the log has the detail.
			http.Error(w, "not ready: "+publicReason(err), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	// The dashboard's actions (pause a queue, archive or delete tasks,
	// when not read-only) are POSTs and DELETEs its own page sends: a
	// request another site's page makes a browser send, with the
	// operator's credentials, is refused.
	sameSite := http.NewCrossOriginProtection()
	sameSite.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
	}))
	mux.Handle("/monitoring/", requireToken(token, sameSite.Handler(monitoring)))
	if orders != nil {
		orders = requireToken(token, orders)
		mux.Handle("/orders/", orders)
		mux.Handle("/api/orders", orders)
		mux.Handle("/api/orders/", orders)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "orderworker admin: /metrics /healthz /readyz /monitoring/ /orders/ /api/orders")
	})
	return mux
}

// notReadyError is why the worker is not ready: public is what /readyz
// answers, a short phrase of a fixed vocabulary naming at most a provider
// ("redis unreachable", "tencent: credentials rejected"); detail, which
// may quote Redis or a provider, is for the log only.
type notReadyError struct {
	public string
	detail error
}

func (e *notReadyError) Error() string {
	if e.detail == nil {
		return e.public
	}
	return e.public + ": " + e.detail.Error()
}

func (e *notReadyError) Unwrap() error { return e.detail }

// publicReason is what /readyz may say of err: its public phrase, never
// the text of an error of another kind.
func publicReason(err error) string {
	var nr *notReadyError
	if errors.As(err, &nr) {
		return nr.public
	}
	return "unavailable"
}

// openAdmin reports whether the admin server listening on addr serves the
// dashboard and the orders API to anyone who reaches it: no token, and an
// address other than loopback.
func openAdmin(addr net.Addr, token providers.Secret) bool {
	if token.Reveal() != "" {
		return false
	}
	ta, ok := addr.(*net.TCPAddr)
	return !ok || !ta.IP.IsLoopback()
}

// readinessCheck returns /readyz's check: not ready while the worker
// starts, while Redis does not answer or would not take the ledger's
// writes now (the ledger's client, checkRedis: a master short of the
// replicas durable writes need, or over its maxmemory; or the task
// server's client, pingServer), and while a configuration problem holds
// orders back (problems, but for the replicas' hold, which checkRedis
// reads as it stands: the problem's gauge lasts two minutes past the last
// write refused, and comes only with a write; a provider not in known is
// not named). Each reason is logged with its detail when it first
// answers, and again every minute while it lasts.
func readinessCheck(started func() bool, checkRedis func() error, problems *tasks.Problems, pingServer func() error, known []string, log *slog.Logger) func() error {
	var mu sync.Mutex
	var last string
	var lastAt time.Time
	report := func(err *notReadyError) error {
		mu.Lock()
		defer mu.Unlock()
		if msg := err.Error(); msg != last || time.Since(lastAt) >= time.Minute {
			last, lastAt = msg, time.Now()
			log.Warn("not ready", "reason", err.public, "detail", err.detail)
		}
		return err
	}
	return func() error {
		// Redis first: a worker that cannot start because Redis has been
		// down since it began says so, not "starting".
		if err := checkRedis(); err != nil {
			why := "redis unreachable"
			switch {
			case errors.As(err, new(*ledgerpkg.TooFewReplicasError)):
				why = "too few redis replicas"
			case errors.As(err, new(*ledgerpkg.OutOfMemoryError)):
				why = "redis out of memory"
			case errors.Is(err, ledgerpkg.ErrReplicaNow):
				why = "redis is a replica now"
			case errors.As(err, new(redis.Error)):
				// Redis answers, but refuses the check (a user denied
				// INFO, which durable writes need): the log says how.
				why = "redis refuses the ledger's check"
			}
			return report(&notReadyError{why, tasks.RedisErrorReason(err)})
		}
		if !started() {
			return &notReadyError{public: "starting"}
		}
		if err := problems.Err(tasks.ProblemReplicas); err != nil {
			return report(&notReadyError{problemSummary(problems, known), err})
		}
		if err := pingServer(); err != nil {
			return report(&notReadyError{"redis unreachable", tasks.RedisErrorReason(err)})
		}
		mu.Lock()
		last = ""
		mu.Unlock()
		return nil
	}
}

// problemPhrases are the words /readyz uses for each kind of
// configuration problem.
var problemPhrases = map[string]string{
	tasks.ProblemProviderDisabled: "provider disabled (no credentials)",
	tasks.ProblemCredentials:      "credentials rejected",
	tasks.ProblemDataKey:          "cannot open sealed params (data key)",
	tasks.ProblemPrepare:          "prepare refused (the snapshot before a create)",
	tasks.ProblemClock:            "request time refused (this worker's clock is off)",
	tasks.ProblemAccount:          "account refused (arrears, quota or permission)",
	tasks.ProblemTarget:           "orders created at another endpoint or account than this worker's",
}

// problemSummary names the provider and the kind of each configuration
// problem p holds, sorted: "aliyun: provider disabled (no credentials);
// tencent: credentials rejected". The reasons are left out.
func problemSummary(p *tasks.Problems, known []string) string {
	ch := make(chan prometheus.Metric)
	go func() {
		p.Collect(ch) // one gauge per current problem, labelled provider and kind
		close(ch)
	}()
	var parts []string
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		var provider, kind string
		for _, l := range d.GetLabel() {
			switch l.GetName() {
			case "provider":
				provider = l.GetValue()
			case "kind":
				kind = l.GetValue()
			}
		}
		if !slices.Contains(known, provider) {
			provider = "a provider"
		}
		if kind == tasks.ProblemReplicas {
			continue // read as it stands (readinessCheck)
		}
		phrase, ok := problemPhrases[kind]
		if !ok {
			phrase = "configuration problem"
		}
		parts = append(parts, provider+": "+phrase)
	}
	if len(parts) == 0 {
		return "configuration problem" // it ended meanwhile
	}
	slices.Sort(parts)
	return strings.Join(slices.Compact(parts), "; ")
}

// requireToken lets a request through when no token is configured, or when
// it carries the token as a bearer token or as a basic-auth password.
func requireToken(token providers.Secret, next http.Handler) http.Handler {
	if token == "" {
		// Anyone who reaches the address may: not a web page whose name
		// was pointed at it (rebind).
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rebind.Refused(r) {
				http.Error(w, rebind.Reason("ORDERWORKER_MONITORING_TOKEN"), http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	want := []byte(token.Reveal())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Values("Authorization")) > 1 {
			// Two credentials: a proxy or an audit log reading the other
			// would see another operator than the one let in.
			w.Header().Set("WWW-Authenticate", `Basic realm="orderworker"`)
			http.Error(w, "unauthorized: more than one Authorization header", http.StatusUnauthorized)
			return
		}
		var got string
		if b, ok := bearerToken(r.Header.Get("Authorization")); ok {
			got = b
		} else if _, p, ok := r.BasicAuth(); ok {
			got = p
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="orderworker"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerToken returns the token of an "Authorization: Bearer TOKEN"
// header. The scheme is case-insensitive (RFC 9110 §11.1): "bearer" and
// "BEARER" are Bearer too.
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}

// newMonitoring returns the embedded asynqmon dashboard.
func newMonitoring(opt asynq.RedisConnOpt, readOnly bool, set *providers.Set) *asynqmon.HTTPHandler {
	return asynqmon.New(asynqmon.Options{
		RootPath:         "/monitoring",
		RedisConnOpt:     opt,
		ReadOnly:         readOnly,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(func(_ string, payload []byte) string { return maskPayload(payload, set) }),
		ResultFormatter:  asynqmon.ResultFormatterFunc(func(_ string, result []byte) string { return providers.MaskPhones(string(result)) }),
	})
}

// maskPayload renders a task payload for the dashboard with personal data
// masked: the provider's sensitive params by name (whatever their value,
// and at any depth), and phone numbers anywhere. A payload it cannot read
// (not a JSON object with string provider and order_no, say one a producer
// wrote by hand with a trailing byte) is shown as a placeholder with its
// size, never as it is: there is no telling which of its bytes are
// personal data.
func maskPayload(payload []byte, set *providers.Set) string {
	var p struct {
		Provider string          `json:"provider"`
		OrderNo  string          `json:"order_no"`
		Params   json.RawMessage `json:"params"`
	}
	unreadable := fmt.Sprintf("(unreadable payload, %d bytes)", len(payload))
	if json.Unmarshal(payload, &p) != nil {
		return unreadable
	}
	if len(p.Params) > 0 {
		sensitive := set.Masked(p.Provider)
		params, err := maskSensitiveValues(p.Params, sensitive)
		if err != nil {
			return unreadable
		}
		p.Params = providers.MaskParams(params, sensitive)
	}
	out, err := json.Marshal(p)
	if err != nil {
		return unreadable
	}
	return string(providers.MaskPhonesJSON(out)) // order_no too
}

// maskSensitiveValues prepares params for providers.MaskParams, which
// masks a string under a personal-data key of the params object and
// leaves any other value as it is: here every non-string value under such
// a key (["Li Si"], {"first": "Li"}, a number) becomes "***", and below the
// top level, where MaskParams does not look, a string under such a key is
// masked as MaskParams would mask it. Other numbers are kept digit for
// digit.
func maskSensitiveValues(params json.RawMessage, sensitive []string) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("params: trailing data")
	}
	isSensitive := sensitiveKeys(sensitive)
	var walk func(v any, top bool) any
	walk = func(v any, top bool) any {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				s, isString := x.(string)
				switch {
				case !isSensitive(k):
					v[k] = walk(x, false)
				case !isString:
					v[k] = "***"
				case !top:
					v[k] = providers.MaskName(s)
				}
			}
		case []any:
			for i, x := range v {
				v[i] = walk(x, false)
			}
		}
		return v
	}
	return json.Marshal(walk(v, true))
}

// sensitiveKeys returns whether providers.MaskParams masks the string
// under a key, with the provider's sensitive params: MaskParams alone
// knows its list of personal-data names, so it is asked.
func sensitiveKeys(sensitive []string) func(key string) bool {
	seen := map[string]bool{}
	return func(key string) bool {
		if masked, ok := seen[key]; ok {
			return masked
		}
		probe, err := json.Marshal(map[string]string{key: "ab"})
		if err != nil {
			return true
		}
		var out map[string]string
		masked := json.Unmarshal(providers.MaskParams(probe, sensitive), &out) != nil || len(out) != 1
		for _, v := range out {
			masked = masked || v != "ab"
		}
		seen[key] = masked
		return masked
	}
}
