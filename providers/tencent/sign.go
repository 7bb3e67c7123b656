package tencent

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"slices"
	"strings"
)

// StringToSign renders params the way the service API signs them: every
// parameter but Signature, empty values left out, sorted by name in byte
// order, as name=value joined by '&', values raw (not URL-encoded).
// Underscores in a name become '.', as the signing rules say.
func StringToSign(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k == "Signature" || v == "" {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(strings.ReplaceAll(k, "_", "."))
		b.WriteByte('=')
		b.WriteString(params[k])
	}
	return b.String()
}

// Sign returns Base64(HMAC-SHA1(secret, StringToSign(params))).
func Sign(params map[string]string, secret string) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(StringToSign(params)))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
