package unicloud

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"slices"
	"strings"
)

// PercentEncode encodes s the RFC 3986 way the signature needs: every byte
// of its UTF-8 form except A-Z a-z 0-9 - _ . ~ becomes %XX with upper-case
// hex, so a space is %20 (never '+') and '~' stays literal.
func PercentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0x0F])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// CanonicalQuery renders params as the CanonicalizedQueryString: every
// parameter but Signature, name and value percent-encoded, sorted by encoded
// name in byte order (so upper case sorts before lower case), joined as
// name=value pairs with '&'. It is also the query string the client sends.
func CanonicalQuery(params map[string]string) string {
	type pair struct{ k, v string }
	pairs := make([]pair, 0, len(params))
	for k, v := range params {
		if k == "Signature" {
			continue
		}
		pairs = append(pairs, pair{PercentEncode(k), PercentEncode(v)})
	}
	slices.SortFunc(pairs, func(a, b pair) int { return strings.Compare(a.k, b.k) })
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// StringToSign is METHOD&%2F&percentEncode(CanonicalQuery(params)), with
// METHOD the request's actual HTTP method.
func StringToSign(method string, params map[string]string) string {
	return method + "&" + PercentEncode("/") + "&" + PercentEncode(CanonicalQuery(params))
}

// Sign returns Base64(HMAC-SHA1(secret+"&", StringToSign(method, params))).
// The request body is not signed.
func Sign(method string, params map[string]string, secret string) string {
	m := hmac.New(sha1.New, []byte(secret+"&"))
	m.Write([]byte(StringToSign(method, params)))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
