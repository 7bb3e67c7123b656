package aliyun

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Inputs common to KAT-A1 and KAT-A2 (docs/providers/aliyun.md, "Signing").
const (
	katKey    = "testAppKey"
	katSecret = "testAppSecret"
	katNonce  = "c9f15cbf-f4ac-4a6c-b54d-f51abf4b5b44"
	katTime   = int64(1600000000000)
	katBody   = `{"id":"1509086454180","version":"1.0","request":{"apiVer":"1.0.0"},"params":{"iotId":"bZGD54swRg******FkEs000101","commodityCode":"streamingResource_20_10","copies":1,"immediateUse":false}}`
	katMD5    = "oy9Hyymx9f7EFXh84oDJDA=="
)

func katCanonical(key, nonce, method, ts string) Canonical {
	return Canonical{
		Method:      "POST",
		Accept:      "application/json; charset=utf-8",
		ContentMD5:  katMD5,
		ContentType: "application/octet-stream; charset=utf-8",
		// Deliberately out of order: StringToSign sorts.
		Headers: []Header{
			{ts, "1600000000000"},
			{key, katKey},
			{method, "HmacSHA256"},
			{nonce, katNonce},
		},
		Path: "/vision/customer/streaming/order/create",
	}
}

func TestKnownAnswers(t *testing.T) {
	tests := []struct {
		name   string
		c      Canonical
		toSign string
		want   string
	}{
		{"KAT-A1 mixed case", katCanonical("X-Ca-Key", "X-Ca-Nonce", "X-Ca-Signature-Method", "X-Ca-Timestamp"),
			"POST\napplication/json; charset=utf-8\noy9Hyymx9f7EFXh84oDJDA==\napplication/octet-stream; charset=utf-8\n\nX-Ca-Key:testAppKey\nX-Ca-Nonce:c9f15cbf-f4ac-4a6c-b54d-f51abf4b5b44\nX-Ca-Signature-Method:HmacSHA256\nX-Ca-Timestamp:1600000000000\n/vision/customer/streaming/order/create",
			"0V+0/eopaYlVrgNG+rKapycoUtVDRiZONPlVI9RcyhA="},
		{"KAT-A2 lower case", katCanonical("x-ca-key", "x-ca-nonce", "x-ca-signature-method", "x-ca-timestamp"),
			"POST\napplication/json; charset=utf-8\noy9Hyymx9f7EFXh84oDJDA==\napplication/octet-stream; charset=utf-8\n\nx-ca-key:testAppKey\nx-ca-nonce:c9f15cbf-f4ac-4a6c-b54d-f51abf4b5b44\nx-ca-signature-method:HmacSHA256\nx-ca-timestamp:1600000000000\n/vision/customer/streaming/order/create",
			"5Ml0nM4yExHiFHfc197MKT+fSqq4cqPXvTrKaHkTnZc="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := StringToSign(tt.c)
			if got != tt.toSign {
				t.Errorf("StringToSign =\n%q\nwant\n%q", got, tt.toSign)
			}
			if sig := Signature(got, katSecret); sig != tt.want {
				t.Errorf("Signature = %s, want %s", sig, tt.want)
			}
		})
	}
}

func TestContentMD5KAT(t *testing.T) {
	if got := ContentMD5([]byte(katBody)); got != katMD5 {
		t.Errorf("ContentMD5 = %s, want %s", got, katMD5)
	}
}

// KAT-A1 end to end: the client's own envelope for the KAT params, signed
// by SignRequest, gives the KAT body, Content-MD5 and signature.
func TestSignRequestKATA1(t *testing.T) {
	f := false
	body, err := json.Marshal(NewEnvelope("1509086454180", "", CreateParams{
		IotID: "bZGD54swRg******FkEs000101", CommodityCode: "streamingResource_20_10", Copies: 1, ImmediateUse: &f,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != katBody {
		t.Fatalf("envelope =\n%s\nwant\n%s", body, katBody)
	}
	req, err := http.NewRequest(http.MethodPost, "https://api.link.aliyun.com"+PathCreate, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	sts := SignRequest(req, body, katKey, katSecret, time.UnixMilli(katTime), katNonce)
	want := map[string]string{
		"Accept":                 Accept,
		"Content-Type":           ContentType,
		"Content-MD5":            katMD5,
		"X-Ca-Key":               katKey,
		"X-Ca-Nonce":             katNonce,
		"X-Ca-Timestamp":         "1600000000000",
		"X-Ca-Signature-Method":  "HmacSHA256",
		"X-Ca-Signature-Headers": "X-Ca-Key,X-Ca-Nonce,X-Ca-Signature-Method,X-Ca-Timestamp",
		"X-Ca-Signature":         "0V+0/eopaYlVrgNG+rKapycoUtVDRiZONPlVI9RcyhA=",
	}
	for k, v := range want {
		if got := req.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if !strings.HasSuffix(sts, "\n"+PathCreate) || strings.Contains(sts, "?") {
		t.Errorf("StringToSign must end with the bare path: %q", sts)
	}
}

func TestSignRequestSignsStageAndQuery(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "https://h/p?b=2&a=&c=3", nil)
	req.Header.Set(HeaderStage, "TEST")
	sts := SignRequest(req, nil, "k", "s", time.UnixMilli(1), "n")
	if got := req.Header.Get(HeaderSignatureHeaders); got != "X-Ca-Key,X-Ca-Nonce,X-Ca-Signature-Method,X-Ca-Stage,X-Ca-Timestamp" {
		t.Errorf("signed headers = %q", got)
	}
	if !strings.Contains(sts, "\nX-Ca-Stage:TEST\n") || !strings.HasSuffix(sts, "\n/p?a&b=2&c=3") {
		t.Errorf("StringToSign = %q", sts)
	}
	// Re-signing (a new attempt) replaces, never accumulates, the headers.
	first := req.Header.Get(HeaderSignature)
	SignRequest(req, nil, "k", "s", time.UnixMilli(2), "n2")
	if req.Header.Get(HeaderSignature) == first || len(req.Header.Values(HeaderSignature)) != 1 {
		t.Errorf("re-signing did not replace the signature")
	}
}

func BenchmarkSignRequest(b *testing.B) {
	body := []byte(`{"id":"1509086454180","version":"1.0","request":{"apiVer":"1.0.0"},"params":{"iotId":"bZGD54swRg******FkEs000101","commodityCode":"streamingResource_20_10","copies":1,"immediateUse":false}}`)
	t := time.UnixMilli(1600000000000)
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, "http://gw.example/vision/customer/streaming/order/create", nil)
		SignRequest(req, body, "testAppKey", "testAppSecret", t, "c9f15cbf-f4ac-4a6c-b54d-f51abf4b5b44")
	}
}
