package unicloud

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode"

	"github.com/orderworker/orderworker/providers"
)

// FuzzParseResponse feeds arbitrary bodies to the parser and to the
// classifier under several statuses. Seeds live in
// testdata/fuzz/FuzzParseResponse.
func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(okAnswer))
	f.Add([]byte(`{"Status":true,"Res":{"OrderId":907804353770394031}}`))
	f.Add([]byte(`{"Status":false,"Auth":true,"Code":"ProductConfigError","Msg":"产品配置错误"}`))
	f.Add([]byte(`{"Status":true,"Auth":false,"Code":"Throttling","Res":{"OrderId":"FuzzKeyId9"}}`))
	const keyID, secret = "FuzzKeyId9", "FuzzSecret9"
	c, err := New(Options{AccessKeyID: keyID, AccessKeySecret: secret})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, perr := ParseResponse(body)
		if perr == nil {
			if len(r.OrderID) > maxIDLen || strings.IndexFunc(r.OrderID, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
				t.Fatalf("OrderID %q is too long or not printable", r.OrderID)
			}
		}
		for _, status := range []int{200, 302, 400, 401, 403, 404, 429, 500, 503} {
			for _, create := range []bool{true, false} {
				_, err := c.classify("unicloud Fuzz", create, &providers.Response{StatusCode: status, Header: http.Header{}, Body: body}, "")
				if err == nil {
					if status != 200 {
						t.Fatalf("status %d accepted", status)
					}
					continue
				}
				var pe *providers.Error
				if !errors.As(err, &pe) {
					t.Fatalf("status %d: %T is not *providers.Error", status, err)
				}
				text := err.Error()
				if strings.Contains(text, secret) || strings.Contains(text, keyID) {
					t.Fatalf("status %d: error %q holds a credential", status, text)
				}
				if create && pe.Code == providers.NotFound {
					t.Fatalf("status %d: a create call reported not_found", status)
				}
				if create && status >= 500 && pe.Code != providers.Ambiguous {
					t.Fatalf("status %d on create mapped to %v, want ambiguous", status, pe.Code)
				}
				if create && (r.OrderID != "" || r.Status != nil && *r.Status) && pe.Code != providers.Ambiguous {
					t.Fatalf("status %d: a create answer naming an order or saying Status true mapped to %v, want ambiguous", status, pe.Code)
				}
				if create && !notTaken(status) && (pe.Code == providers.InvalidArgument || pe.Code == providers.PermissionDenied) && !strings.EqualFold(r.Code, "ProductConfigError") {
					t.Fatalf("status %d: a create refused for good (%v) by an undocumented code %q", status, pe.Code, r.Code)
				}
				if status == 200 && create && perr != nil && pe.Code != providers.Ambiguous {
					t.Fatalf("unreadable 200 on create mapped to %v, want ambiguous", pe.Code)
				}
			}
		}
	})
}
