package aliyun

import (
	"net/http"
	"testing"

	"github.com/orderworker/orderworker/providers"
)

// FuzzParseResponse feeds arbitrary bodies to every parser of outside
// input: the envelope, order, order list and token parsers and the answer
// classifier. None may panic, and their results keep their invariants.
// Seeds live in testdata/fuzz/FuzzParseResponse.
func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(`{"id":"4de2c367","code":200,"message":null,"localizedMsg":null,"data":{"orderId":"2020110413431****0196","outOrderNo":"20736951****674","commodityCode":"streamingResource_20_10","copies":1,"status":0,"paymentStatus":0,"price":"140"}}`))
	f.Add([]byte(`{"id":"37f7e5fa","code":403,"message":"request forbidden.","localizedMsg":"请求被禁止","data":null}`))
	f.Add([]byte(`{"code":"200","data":{"cloudToken":"abc","expiresIn":"7200000"}}`))
	f.Add([]byte(`{"code":200,"data":{"total":1,"data":[{"orderId":20201104134310000196,"gmtCreate":1600000000000}]}}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, status := range []int{200, 400, 503} {
			resp := &providers.Response{StatusCode: status, Header: http.Header{}, Body: body}
			for _, create := range []bool{true, false} {
				a, err := classify("aliyun fuzz", create, resp, []string{"secret"})
				if err != nil {
					c := providers.CodeOf(err)
					if c == providers.Unknown || c == providers.NotFound || (c == providers.Ambiguous && !create) {
						t.Fatalf("classify(create=%v) code %v: %v", create, c, err)
					}
					continue
				}
				if status != 200 {
					t.Fatalf("classify accepted http %d", status)
				}
				r, perr := ParseResponse(body)
				if perr != nil || r.Code != 200 || string(r.Data) != string(a.data) {
					t.Fatalf("classify accepted a body ParseResponse reads as %+v, %v", r, perr)
				}
			}
		}
		r, err := ParseResponse(body)
		if err != nil {
			return
		}
		if o, err := ParseOrder(r.Data); err == nil {
			checkOrder(t, o)
		}
		if l, err := ParseOrderList(r.Data); err == nil {
			for _, o := range l.Orders {
				checkOrder(t, o)
			}
		}
		if tok, err := ParseToken(r.Data); err == nil && (tok.Value == "" || tok.TTL <= 0) {
			t.Fatalf("ParseToken accepted an empty or expired token: ttl %v", tok.TTL)
		}
	})
}

func checkOrder(t *testing.T, o OrderInfo) {
	t.Helper()
	switch o.PaymentStatus {
	case PaymentUnknown, PaymentUnpaid, PaymentPaid, PaymentPaying:
	default:
		t.Fatalf("payment status %d out of range", o.PaymentStatus)
	}
}
