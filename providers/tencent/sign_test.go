package tencent

import (
	"strings"
	"testing"
	"time"
)

func parse(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, "&") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// Known-answer vectors from docs/providers/tencent.md ("Signing"): KAT-T1,
// KAT-T2, KAT-T3.
func TestSignKnownAnswers(t *testing.T) {
	tests := []struct {
		name, secret, toSign, want string
	}{
		{"KAT-T1", "ServiceAppSecret",
			"Action=ServiceDescribeDeviceData&AppKey=ServiceAppKey&DeviceName=Device001&Nonce=71087795&ProductId=ProductA&RequestId=476c990a-f5b7-1575-987c-4ef70e474932&Timestamp=1546315200",
			"P206d+JzP37FLKBDkD689wqnl4k="},
		{"KAT-T2", "NcbHqk****TCGbKnQH",
			"Action=AppCreateCellphoneUser&AppKey=ahPxdK****TGrejd&CountryCode=86&Nonce=71087795&Password=My!P@ssword&PhoneNumber=13900000000&RequestId=8b8d499bbba1ac28b6da21b4&Timestamp=1546315200&VerificationCode=123456",
			"Szxai9Qs7O3lBoOXahbFbseZ+uE="},
		{"KAT-T3", "ServiceAppSecret",
			"Action=ServiceCreateOrder&AppKey=ServiceAppKey&CustomerId=Customer100001&ItemId=D-FireInsurance2020&ItemNum=2&ItemVNO=FireBusiness&Nonce=170533123&OrderNo=Order100001&RequestId=f92406b3-0000-4fe8-bc43-45e3d794bb68&Timestamp=1599468019",
			"/WuG+/QTQv7zL78KOT9MK8G8s5E="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params := parse(tt.toSign)
			params["Signature"] = "ignored"
			params["Empty"] = ""
			if got := StringToSign(params); got != tt.toSign {
				t.Errorf("StringToSign =\n%s\nwant\n%s", got, tt.toSign)
			}
			if got := Sign(params, tt.secret); got != tt.want {
				t.Errorf("Sign = %s, want %s", got, tt.want)
			}
		})
	}
}

// KAT-T3 built the way the client builds it: from a request, not a string.
func TestRequestSignsLikeKATT3(t *testing.T) {
	c := &Client{appKey: "ServiceAppKey", appSecret: "ServiceAppSecret"}
	body, sig, err := c.body("ServiceCreateOrder", map[string]any{
		"CustomerId": "Customer100001", "OrderNo": "Order100001",
		"ItemId": "D-FireInsurance2020", "ItemVNO": "FireBusiness", "ItemNum": 2,
	}, stamp{RequestID: "f92406b3-0000-4fe8-bc43-45e3d794bb68", Timestamp: 1599468019, Nonce: 170533123})
	if err != nil {
		t.Fatal(err)
	}
	const want = `"Signature":"/WuG+/QTQv7zL78KOT9MK8G8s5E="`
	if sig != "/WuG+/QTQv7zL78KOT9MK8G8s5E=" {
		t.Errorf("signature %q", sig)
	}
	if !strings.Contains(string(body), want) {
		t.Errorf("body %s\nlacks %s", body, want)
	}
	if !strings.Contains(string(body), `"ItemNum":2,`) || !strings.Contains(string(body), `"Timestamp":1599468019`) {
		t.Errorf("body %s: ItemNum and Timestamp must be JSON numbers", body)
	}
}

func BenchmarkSign(b *testing.B) {
	params := parse("Action=ServiceCreateOrder&AppKey=ServiceAppKey&CustomerId=Customer100001&ItemId=D-FireInsurance2020&ItemNum=2&ItemVNO=FireBusiness&Nonce=170533123&OrderNo=Order100001&RequestId=f92406b3-0000-4fe8-bc43-45e3d794bb68&Timestamp=1599468019")
	b.ReportAllocs()
	for b.Loop() {
		Sign(params, "ServiceAppSecret")
	}
}

// Nonces are a random stride apart from a random start, so a process
// repeats none of its own until it has sent 2³¹−1 requests; they stay
// within 1..2³¹−1 whatever the stride, and every client of the process
// draws from one sequence.
func TestNoncesDoNotRepeat(t *testing.T) {
	for _, s := range []*nonceSeq{
		{start: maxNonce - 3, stride: 1},            // wraps from 2³¹−1 to 1
		{start: maxNonce - 1, stride: maxNonce - 1}, // the largest of both
		{start: 0, stride: 1 << 30},                 // wraps every other draw
		{start: 12345, stride: nonces.stride},       // the process's own stride
	} {
		seen := map[int64]bool{}
		for range 200_000 {
			n := s.next()
			if n < 1 || n > maxNonce {
				t.Fatalf("start %d stride %d: nonce %d outside 1..%d", s.start, s.stride, n, maxNonce)
			}
			if seen[n] {
				t.Fatalf("start %d stride %d: nonce %d drawn twice in %d draws", s.start, s.stride, n, len(seen))
			}
			seen[n] = true
		}
		if s.stride == 1 && (!seen[maxNonce] || !seen[1]) {
			t.Errorf("the sequence did not wrap from %d to 1", maxNonce)
		}
	}
	if nonces.stride < 1 || nonces.stride >= maxNonce || nonces.start >= maxNonce {
		t.Errorf("the process's sequence: start %d, stride %d", nonces.start, nonces.stride)
	}
	a, b := &Client{now: time.Now}, &Client{now: time.Now}
	k := nonces.k.Load()
	a.newStamp()
	b.newStamp()
	if got := nonces.k.Load(); got != k+2 {
		t.Errorf("two clients drew from %d to %d; want one sequence for the process", k, got)
	}
}
