package main

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The monitoring token is accepted as a bearer token or a basic-auth
// password, with the auth scheme in any case (RFC 9110 §11.1).
func TestRequireTokenSchemes(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	h := requireToken(token, ok)
	basic := func(user, pass string) string {
		return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	}
	tests := []struct {
		auth string
		want int
	}{
		{"Bearer " + token, http.StatusOK},
		{"bearer " + token, http.StatusOK},
		{"BEARER " + token, http.StatusOK},
		{"bEaReR " + token, http.StatusOK},
		{"Bearer   " + token, http.StatusOK},
		{"Basic " + basic("admin", token), http.StatusOK},
		{"basic " + basic("", token), http.StatusOK},
		{"", http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
		{"Bearer ", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"Bearer" + token, http.StatusUnauthorized},
		{"Token " + token, http.StatusUnauthorized},
		{"bearer " + token + "x", http.StatusUnauthorized},
		{"Basic " + basic("admin", "wrong"), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/monitoring/", nil)
		if tt.auth != "" {
			r.Header.Set("Authorization", tt.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("Authorization %q: status %d, want %d", tt.auth, w.Code, tt.want)
		}
	}
}
