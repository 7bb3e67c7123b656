// Package rebind refuses a browser's request to a server that needs no
// token when the request names the server by a host name other than
// localhost.
//
// A server that answers without a token (enqueue serve -open, the worker's
// admin pages without ORDERWORKER_MONITORING_TOKEN) trusts whoever reaches
// its address, typically a loopback one, and refuses a browser's
// cross-site request (http.CrossOriginProtection). DNS rebinding gets past
// that check: a web page at a name its owner then points at the server's
// address makes the browser send requests to the server as the page's own
// origin (Origin and Host both that name, Sec-Fetch-Site same-origin), and
// read the answers. A browser that reaches the server by an IP address or
// by localhost names it so; one sent by a rebound name names that name.
// Clients that are not browsers send no Origin or Sec-Fetch-* header and
// are not judged: a producer calling the server by its service name still
// reaches it.
package rebind

import (
	"net"
	"net/http"
	"strings"
)

// Refused reports whether r is a browser's request (it carries Origin or a
// Sec-Fetch-* header) whose Host is a name other than localhost (or a name
// under .localhost): an IP address, v4 or v6, is never refused.
func Refused(r *http.Request) bool {
	if r.Header.Get("Origin") == "" && r.Header.Get("Sec-Fetch-Site") == "" && r.Header.Get("Sec-Fetch-Mode") == "" {
		return false
	}
	return !local(r.Host)
}

// local reports whether host (a Host header, with or without a port) is an
// IP address or localhost.
func local(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if net.ParseIP(host) != nil {
		return true
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// Reason is what a refusal says, naming the setting that lifts it.
func Reason(setting string) string {
	return "a browser's request naming this server by a host name other than localhost: refused, since this server runs without a token (a web page can point its own name at this address, DNS rebinding, and act as this site); open it by its IP address or localhost, or set " + setting
}
