package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/sick", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "redis down", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// A port nothing listens on: open one, then close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/healthz"
	ln.Close()

	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"healthy", []string{srv.URL + "/healthz"}, ""},
		{"unhealthy, its answer said", []string{srv.URL + "/sick"}, "503 Service Unavailable: redis down"},
		{"timeout", []string{"-timeout", "100ms", srv.URL + "/slow"}, "deadline exceeded"},
		{"refused", []string{closed}, "refused"},
		{"two URLs", []string{srv.URL, srv.URL}, "at most one URL"},
		{"bad flag", []string{"-nope"}, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr strings.Builder
			err := run(context.Background(), tt.args, &stderr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("run(%q) = %v, want nil", tt.args, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run(%q) = %v, want error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestDefaultURLIsAdminHealthz(t *testing.T) {
	t.Parallel()
	if want := "http://127.0.0.1:9090/healthz"; defaultURL != want {
		t.Errorf("defaultURL = %q, want %q", defaultURL, want)
	}
}

// -h prints the usage and exits 0, as every command of orderworker's does;
// an unhealthy answer exits 1 with the reason.
func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "-help", "--help"} {
		var stderr strings.Builder
		if code := exitCode(run(context.Background(), []string{arg}, &stderr), &stderr); code != 0 || !strings.Contains(stderr.String(), "usage: healthcheck") || strings.Contains(stderr.String(), "help requested") {
			t.Errorf("healthcheck %s: exit %d, stderr %q; want 0 and the usage only", arg, code, stderr.String())
		}
	}
	var stderr strings.Builder
	if code := exitCode(run(context.Background(), []string{"-nope"}, &stderr), &stderr); code != 1 {
		t.Errorf("healthcheck -nope: exit %d, want 1", code)
	}
}
