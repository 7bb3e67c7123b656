package rebind

import (
	"net/http/httptest"
	"testing"
)

// A browser's request is refused when it names the server by a name
// other than localhost (what a rebound name looks like); by an IP address
// or localhost, and any request that is not a browser's, it passes.
func TestRefused(t *testing.T) {
	for _, tt := range []struct {
		host    string
		headers map[string]string
		want    bool
	}{
		{"evil.example:8080", map[string]string{"Origin": "http://evil.example:8080", "Sec-Fetch-Site": "same-origin"}, true},
		{"evil.example", map[string]string{"Sec-Fetch-Site": "same-origin"}, true},
		{"evil.example", map[string]string{"Sec-Fetch-Mode": "navigate"}, true},
		{"evil.example", map[string]string{"Origin": "http://evil.example"}, true},
		{"localhost.evil.example", map[string]string{"Origin": "http://localhost.evil.example"}, true},
		{"127.0.0.1.nip.io:8080", map[string]string{"Sec-Fetch-Site": "same-origin"}, true},
		{"127.0.0.1:8080", map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}, false},
		{"[::1]:8080", map[string]string{"Sec-Fetch-Site": "same-origin"}, false},
		{"10.0.0.7", map[string]string{"Sec-Fetch-Site": "none"}, false},
		{"localhost:8080", map[string]string{"Sec-Fetch-Site": "same-origin"}, false},
		{"LocalHost.", map[string]string{"Sec-Fetch-Site": "same-origin"}, false},
		{"app.localhost:3000", map[string]string{"Origin": "http://app.localhost:3000"}, false},
		// Not a browser: a producer calling the service by its name.
		{"api:8080", nil, false},
		{"orders.internal.example", map[string]string{"User-Agent": "python-requests/2.31"}, false},
	} {
		r := httptest.NewRequest("POST", "http://"+tt.host+"/v1/orders", nil)
		r.Host = tt.host
		for k, v := range tt.headers {
			r.Header.Set(k, v)
		}
		if got := Refused(r); got != tt.want {
			t.Errorf("Host %q, headers %v: Refused = %v, want %v", tt.host, tt.headers, got, tt.want)
		}
	}
}
