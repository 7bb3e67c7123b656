package unicloud

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

// parseKAT turns "k=v&k=v" (raw values) into a parameter map.
func parseKAT(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, "&") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

const (
	katU0 = "AccessKeyId=testid&Action=DescribeRegions&Format=XML&SignatureMethod=HMAC-SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf&SignatureVersion=1.0&Timestamp=2016-02-23T12:46:24Z&Version=2014-05-26"
	katU1 = "AccessKeyId=6oPiV0WMJXhxiT65&Action=CreateOrder&Format=json&SignatureMethod=HMAC-SHA1&SignatureNonce=16343456325226&SignatureVersion=2.0&Timestamp=2020-07-30T12:00:00Z&Version=2020-07-30&regionId=cn-tianjin-yfb"
)

// Known-answer vectors from docs/providers/unicloud.md ("Signing").
func TestSignKnownAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, params, secret string
		wantToSign, wantCQS          string // checked when set
		want                         string
	}{
		{
			name: "KAT-U0", method: "GET", params: katU0, secret: "testsecret",
			wantToSign: "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26",
			want:       "OLeaidS1JvxuMvnyHOwuJ+uX5qY=",
		},
		{
			name: "KAT-U0 TimeStamp", method: "GET", params: strings.Replace(katU0, "Timestamp=", "TimeStamp=", 1), secret: "testsecret",
			want: "CT9X0VtwR86fNWSnsc6v8YGOjuE=",
		},
		{
			name: "KAT-U1 POST", method: "POST", params: katU1, secret: "testsecret",
			wantCQS: "AccessKeyId=6oPiV0WMJXhxiT65&Action=CreateOrder&Format=json&SignatureMethod=HMAC-SHA1&SignatureNonce=16343456325226&SignatureVersion=2.0&Timestamp=2020-07-30T12%3A00%3A00Z&Version=2020-07-30&regionId=cn-tianjin-yfb",
			want:    "U+7ziGlauZIuvzhyZTi84Yat9Oc=",
		},
		{
			name: "KAT-U1 GET", method: "GET", params: katU1, secret: "testsecret",
			want: "KWaE5eUcvMcBFYosS00YG+Lpci0=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			params := parseKAT(tt.params)
			params["Signature"] = "ignored" // never signed
			if tt.wantCQS != "" {
				if got := CanonicalQuery(params); got != tt.wantCQS {
					t.Errorf("CanonicalQuery =\n%s\nwant\n%s", got, tt.wantCQS)
				}
			}
			if tt.wantToSign != "" {
				if got := StringToSign(tt.method, params); got != tt.wantToSign {
					t.Errorf("StringToSign =\n%s\nwant\n%s", got, tt.wantToSign)
				}
			}
			if got := Sign(tt.method, params, tt.secret); got != tt.want {
				t.Errorf("Sign = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPercentEncode(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"AZaz09-_.~", "AZaz09-_.~"},
		{"a b:c", "a%20b%3Ac"}, // the SDK would give a%20b:c
		{"a+b", "a%2Bb"},
		{"2020-07-30T12:00:00Z", "2020-07-30T12%3A00%3A00Z"},
		{"2024-01-02 08:00:00", "2024-01-02%2008%3A00%3A00"},
		{"/", "%2F"},
		{"*", "%2A"},
		{"=&%", "%3D%26%25"},
		{"天津", "%E5%A4%A9%E6%B4%A5"},
		{"U+7ziGlauZIuvzhyZTi84Yat9Oc=", "U%2B7ziGlauZIuvzhyZTi84Yat9Oc%3D"},
	}
	for _, tt := range tests {
		if got := PercentEncode(tt.in); got != tt.want {
			t.Errorf("PercentEncode(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := url.PathUnescape(PercentEncode(tt.in)); err != nil || back != tt.in {
			t.Errorf("PercentEncode(%q) does not round-trip: %q, %v", tt.in, back, err)
		}
	}
}

// sdkPercentEncode is the UniCloud Go SDK's encoder, kept here only to show
// that Sign does not copy its quirk: a value holding a space or '+' has
// only those replaced, so ':' stays literal.
func sdkPercentEncode(v string) string {
	if strings.ContainsAny(v, "+ ") {
		return strings.NewReplacer("+", "%20", " ", "%20").Replace(v)
	}
	return url.QueryEscape(v)
}

// The quirk case A="a b:c" (docs/providers/unicloud.md, "Signing"): RFC
// 3986 escapes the ':' that the SDK leaves alone, so the two strings to
// sign differ.
func TestSignQuirkCase(t *testing.T) {
	t.Parallel()
	params := parseKAT(katU1)
	params["A"] = "a b:c"
	toSign := StringToSign("POST", params)
	if !strings.HasPrefix(toSign, "POST&%2F&A%3Da%2520b%253Ac%26AccessKeyId%3D") {
		t.Errorf("StringToSign %s\nlacks the RFC 3986 form of A=a b:c", toSign)
	}
	quirky := "A=" + sdkPercentEncode("a b:c")
	if strings.Contains(CanonicalQuery(params), quirky) {
		t.Errorf("CanonicalQuery %s holds the SDK's quirky %s", CanonicalQuery(params), quirky)
	}
	// Byte order: "A" sorts before "AccessKeyId".
	if got := CanonicalQuery(params); !strings.HasPrefix(got, "A=a%20b%3Ac&AccessKeyId=") {
		t.Errorf("CanonicalQuery = %s, want A first", got)
	}
}

// The provider notes' quirk case with its full inputs: GET, secret
// testsecret, one parameter A = "a b:c". RFC 3986 encoding gives
// al0LonK5QFLab1wtGwNDFm0CuBo=; the SDK's encoding (":" left as it is)
// gives WbJZyAsXheYcD7AmVa3GGwTIoA4=, which Sign must not.
func TestSignQuirkVector(t *testing.T) {
	t.Parallel()
	params := map[string]string{"A": "a b:c"}
	if got, want := StringToSign("GET", params), "GET&%2F&A%3Da%2520b%253Ac"; got != want {
		t.Errorf("StringToSign = %s, want %s", got, want)
	}
	if got, want := Sign("GET", params, "testsecret"), "al0LonK5QFLab1wtGwNDFm0CuBo="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	// The SDK's string to sign, signed the same way, gives the SDK's
	// value: the vector tells the two encodings apart.
	sdk := "GET&%2F&" + url.QueryEscape("A="+sdkPercentEncode("a b:c"))
	mac := hmac.New(sha1.New, []byte("testsecret&"))
	mac.Write([]byte(sdk))
	if got, want := base64.StdEncoding.EncodeToString(mac.Sum(nil)), "WbJZyAsXheYcD7AmVa3GGwTIoA4="; got != want {
		t.Errorf("the SDK's encoding signs as %s, want %s (string to sign %s)", got, want, sdk)
	}
}

// Byte order puts every upper-case name before any lower-case one.
func TestCanonicalQueryByteOrder(t *testing.T) {
	t.Parallel()
	got := CanonicalQuery(map[string]string{"regionId": "r", "Version": "v", "a": "1", "B": "2", "Signature": "x"})
	if want := "B=2&Version=v&a=1&regionId=r"; got != want {
		t.Errorf("CanonicalQuery = %s, want %s", got, want)
	}
}

func BenchmarkSign(b *testing.B) {
	params := map[string]string{"AccessKeyId": "6oPiV0WMJXhxiT65", "Action": "CreateOrder", "Format": "json",
		"SignatureMethod": "HMAC-SHA1", "SignatureNonce": "16343456325226", "SignatureVersion": "2.0",
		"Timestamp": "2020-07-30T12:00:00Z", "Version": "2020-07-30", "regionId": "cn-tianjin-yfb"}
	b.ReportAllocs()
	for b.Loop() {
		Sign("POST", params, "testsecret")
	}
}
