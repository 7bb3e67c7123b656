package main

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orderworker/orderworker/providers"
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
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/monitoring/", requireToken(token, monitoring))
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

// requireToken lets a request through when no token is configured, or when
// it carries the token as a bearer token or as a basic-auth password.
func requireToken(token providers.Secret, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte(token.Reveal())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
// masked: the provider's sensitive params by name, and phone numbers
// anywhere.
func maskPayload(payload []byte, set *providers.Set) string {
	var p struct {
		Provider string          `json:"provider"`
		OrderNo  string          `json:"order_no"`
		Params   json.RawMessage `json:"params"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return providers.MaskPhones(providers.Truncate(string(payload), 2000))
	}
	p.Params = providers.MaskParams(p.Params, set.Sensitive(p.Provider))
	out, err := json.Marshal(p)
	if err != nil {
		return ""
	}
	return providers.MaskPhones(string(out)) // order_no too
}
