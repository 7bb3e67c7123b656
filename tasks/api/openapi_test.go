package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks/api"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// openAPI is the document, parsed.
type openAPI struct {
	root map[string]any
}

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	var root map[string]any
	if err := json.Unmarshal(api.OpenAPI, &root); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return &openAPI{root: root}
}

// resolve follows a local $ref ("#/components/schemas/Result").
func (d *openAPI) resolve(t *testing.T, node map[string]any) map[string]any {
	t.Helper()
	for {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		var cur any = d.root
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("$ref %s does not resolve", ref)
			}
			cur = m[part]
		}
		next, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("$ref %s does not resolve", ref)
		}
		node = next
	}
}

// operations returns "path METHOD status" for every documented answer.
func (d *openAPI) operations(t *testing.T) []string {
	t.Helper()
	var out []string
	paths, _ := d.root["paths"].(map[string]any)
	for p, item := range paths {
		for method, op := range item.(map[string]any) {
			responses, _ := op.(map[string]any)["responses"].(map[string]any)
			for status := range responses {
				out = append(out, p+" "+strings.ToUpper(method)+" "+status)
			}
		}
	}
	sort.Strings(out)
	return out
}

// response returns the documented schema for an answer with the given
// content type (nil when the document gives none).
func (d *openAPI) response(t *testing.T, path, method string, status int, contentType string) (map[string]any, bool) {
	t.Helper()
	paths, _ := d.root["paths"].(map[string]any)
	item, _ := paths[path].(map[string]any)
	op, _ := item[strings.ToLower(method)].(map[string]any)
	responses, _ := op["responses"].(map[string]any)
	r, ok := responses[fmt.Sprint(status)].(map[string]any)
	if !ok {
		return nil, false
	}
	r = d.resolve(t, r)
	content, _ := r["content"].(map[string]any)
	mt, ok := content[contentType].(map[string]any)
	if !ok {
		return nil, false
	}
	schema, _ := mt["schema"].(map[string]any)
	return schema, true
}

// validate checks v against a JSON Schema subset (type, enum, required,
// properties, additionalProperties false, items, allOf, oneOf, $ref).
func (d *openAPI) validate(t *testing.T, schema map[string]any, v any, at string) []string {
	t.Helper()
	schema = d.resolve(t, schema)
	var errs []string
	if all, ok := schema["allOf"].([]any); ok {
		for _, s := range all {
			errs = append(errs, d.validate(t, s.(map[string]any), v, at)...)
		}
	}
	if one, ok := schema["oneOf"].([]any); ok {
		n := 0
		for _, s := range one {
			if len(d.validate(t, s.(map[string]any), v, at)) == 0 {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Sprintf("%s: matches %d of oneOf's schemas, want 1", at, n))
		}
	}
	if typ, ok := schema["type"].(string); ok {
		good := false
		switch typ {
		case "object":
			_, good = v.(map[string]any)
		case "array":
			_, good = v.([]any)
		case "string":
			_, good = v.(string)
		case "boolean":
			_, good = v.(bool)
		case "integer":
			f, isNum := v.(float64)
			good = isNum && f == math.Trunc(f)
		}
		if !good {
			return append(errs, fmt.Sprintf("%s: %v is not %s", at, v, typ))
		}
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, v) {
		errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", at, v, enum))
	}
	if m, ok := v.(map[string]any); ok {
		for _, r := range asStrings(schema["required"]) {
			if _, ok := m[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required property %q missing", at, r))
			}
		}
		props, _ := schema["properties"].(map[string]any)
		for k, pv := range m {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if schema["additionalProperties"] == false {
					errs = append(errs, fmt.Sprintf("%s: property %q is not in the schema", at, k))
				}
				continue
			}
			errs = append(errs, d.validate(t, ps, pv, at+"."+k)...)
		}
	}
	if a, ok := v.([]any); ok {
		if items, ok := schema["items"].(map[string]any); ok {
			for i, x := range a {
				errs = append(errs, d.validate(t, items, x, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return errs
}

func asStrings(v any) []string {
	var out []string
	for _, x := range asSlice(v) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// The document is OpenAPI 3.1 and every $ref in it resolves; the copy
// served is the file in the repository.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	d := loadOpenAPI(t)
	if v, _ := d.root["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", v)
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["$ref"]; ok {
				d.resolve(t, x)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(d.root)
	file, err := os.ReadFile("openapi.json")
	if err != nil || string(file) != string(api.OpenAPI) {
		t.Errorf("the embedded document differs from openapi.json (%v)", err)
	}
}

// The running server answers exactly what the document says: every
// documented (path, method, status) is produced by a real request, every
// answer the requests got is documented, and every JSON answer matches its
// documented schema.
func TestOpenAPIMatchesServer(t *testing.T) {
	e := setup(t, &api.Options{Tokens: []string{token}, MaxBatchOrders: 3, Timeout: 2 * time.Second})
	d := loadOpenAPI(t)
	check := func(method, path, auth, body string) {
		t.Helper()
		req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := ownClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d.checkAnswer(t, method, req.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	order := string(tencentOrder("OA1", 1))
	check("GET", "/v1/openapi.json", "", "")
	check("POST", "/v1/orders", bearer, order)                               // 201
	check("POST", "/v1/orders", bearer, order)                               // 200
	check("POST", "/v1/orders", bearer, string(tencentOrder("OA1", 2)))      // 409
	check("POST", "/v1/orders", bearer, string(tencentOrder("OA2", 0)))      // 422
	check("POST", "/v1/orders", bearer, `{"provider":`)                      // 400
	check("POST", "/v1/orders", "", order)                                   // 401
	check("POST", "/v1/orders", bearer, strings.Repeat(" ", 70<<10))         // 413
	check("POST", "/v1/orders/batch", bearer, order+"\n"+`{"x":1}`)          // 200
	check("POST", "/v1/orders/batch", bearer, `[{"provider":`)               // 400
	check("POST", "/v1/orders/batch", "", order)                             // 401
	check("POST", "/v1/orders/batch", bearer, strings.Repeat(order+"\n", 4)) // 413
	for _, path := range []string{"/v1/orders", "/v1/orders/batch"} {
		// A body cut off by the server's read timeout (a minute: asked of
		// the handler directly, with a body that times out): 408.
		r := httptest.NewRequest("POST", path, &timingOutBody{})
		r.Header.Set("Authorization", bearer)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Code != http.StatusRequestTimeout || !strings.Contains(w.Body.String(), "send it again") {
			t.Errorf("POST %s, the body cut off by the read timeout: %d %s; want 408 saying to send it again", path, w.Code, w.Body)
		}
		d.checkAnswer(t, "POST", path, w.Code, w.Header().Get("Content-Type"), w.Body.Bytes())
		e.seen.add(templateOf(path) + " POST " + fmt.Sprint(w.Code))
	}
	// Run open, a browser's cross-site request: 403.
	open := setup(t, &api.Options{Open: true, Timeout: 2 * time.Second})
	for _, mp := range [][2]string{{"POST", "/v1/orders"}, {"POST", "/v1/orders/batch"}} {
		r := httptest.NewRequest(mp[0], mp[1], strings.NewReader(order))
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		w := httptest.NewRecorder()
		open.h.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden {
			t.Errorf("%s %s cross-site to an open API: %d %s; want 403", mp[0], mp[1], w.Code, w.Body)
		}
		d.checkAnswer(t, mp[0], mp[1], w.Code, w.Header().Get("Content-Type"), w.Body.Bytes())
		e.seen.add(templateOf(mp[1]) + " " + mp[0] + " 403")
	}
	// Run open, a browser's request that names the server by a host name
	// (DNS rebinding: same-origin to the browser): 403, reads too.
	for _, path := range []string{"/v1/orders/tencent/OA1", "/v1/events"} {
		r := httptest.NewRequest("GET", path, nil)
		r.Host = "rebound.example"
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		w := httptest.NewRecorder()
		open.h.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden {
			t.Errorf("GET %s by a rebound name from a browser, to an open API: %d %s; want 403", path, w.Code, w.Body)
		}
		d.checkAnswer(t, "GET", path, w.Code, w.Header().Get("Content-Type"), w.Body.Bytes())
		e.seen.add(templateOf(path) + " GET 403")
	}
	check("GET", "/v1/orders/tencent/OA1", bearer, "")          // 200
	check("GET", "/v1/orders/tencent/OA1?wait=0.1", bearer, "") // 200
	check("GET", "/v1/orders/tencent/OA1?wait=x", bearer, "")   // 400
	check("GET", "/v1/orders/tencent/OA1", "", "")              // 401
	check("GET", "/v1/orders/tencent/none", bearer, "")         // 404
	settle(t, e.ledger, ledger.Ref{Provider: "tencent", OrderNo: "OA1"}, ledger.SetPaid("P1"))
	check("GET", "/v1/events", bearer, "")                 // 200
	check("GET", "/v1/events?after=0&limit=1", bearer, "") // 200
	check("GET", "/v1/events?limit=0", bearer, "")         // 400
	check("GET", "/v1/events", "Bearer wrong", "")         // 401
	check("GET", "/healthz", "", "")                       // 200
	check("GET", "/readyz", "", "")                        // 200
	e.rs.Stop()
	check("GET", "/readyz", "", "")                                           // 503
	check("POST", "/v1/orders", bearer, string(tencentOrder("OA3", 1)))       // 503
	check("POST", "/v1/orders/batch", bearer, string(tencentOrder("OA3", 1))) // 503
	check("GET", "/v1/orders/tencent/OA1", bearer, "")                        // 503
	check("GET", "/v1/events", bearer, "")                                    // 503

	documented := d.operations(t)
	var served []string
	for k := range e.seen.m {
		served = append(served, k)
	}
	sort.Strings(served)
	for _, op := range documented {
		if !slices.Contains(served, op) {
			t.Errorf("documented but not served by any request: %s", op)
		}
	}
	for _, op := range served {
		if !slices.Contains(documented, op) {
			t.Errorf("served but not documented: %s", op)
		}
	}

	// What the document leaves out is refused: other methods, other paths.
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"DELETE", "/v1/orders", http.StatusMethodNotAllowed},
		{"PUT", "/v1/orders/tencent/OA1", http.StatusMethodNotAllowed},
		{"POST", "/v1/events", http.StatusMethodNotAllowed},
		{"GET", "/v1/nothing", http.StatusNotFound},
		// Paths the router would answer with a redirect (a provider
		// without an order number, one not in canonical form): no such
		// path, as problem details, never a 307 the document lacks.
		{"GET", "/v1/orders/tencent", http.StatusNotFound},
		{"GET", "/v1/orders/tencent/", http.StatusNotFound},
		{"GET", "/v1/orders/tencent/..", http.StatusNotFound},
		{"GET", "/v1/orders/tencent/a/../OA1", http.StatusNotFound},
		{"GET", "/v1//events", http.StatusNotFound},
		{"POST", "/v1/orders/", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tt.method, e.url+tt.path, nil)
		req.Header.Set("Authorization", bearer)
		resp, err := ownClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s = %d %s, want %d as problem details", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.want)
		}
	}
}

// checkAnswer checks an answer of the server against the document: its
// status and content type described for the operation, its body valid.
func (d *openAPI) checkAnswer(t *testing.T, method, path string, status int, ct string, b []byte) {
	t.Helper()
	schema, ok := d.response(t, templateOf(path), method, status, ct)
	if !ok {
		t.Errorf("%s %s answered %d %s, which the document does not describe", method, path, status, ct)
		return
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Errorf("%s %s: %d answer is not JSON: %s", method, path, status, b)
		return
	}
	for _, p := range d.validate(t, schema, v, "body") {
		t.Errorf("%s %s %d: %s", method, path, status, p)
	}
}

// timingOutBody is a request body that stops arriving: its first read
// gives a few bytes, the next one the error a server's read timeout makes.
type timingOutBody struct{ sent bool }

func (b *timingOutBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, `{"provider":`), nil
	}
	return 0, timeoutErr{}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "read tcp: i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
