package aliyun

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Gateway header names and the values this client sends.
const (
	HeaderKey              = "X-Ca-Key"
	HeaderSignature        = "X-Ca-Signature"
	HeaderSignatureMethod  = "X-Ca-Signature-Method"
	HeaderSignatureHeaders = "X-Ca-Signature-Headers"
	HeaderTimestamp        = "X-Ca-Timestamp"
	HeaderNonce            = "X-Ca-Nonce"
	HeaderStage            = "X-Ca-Stage"
	HeaderErrorMessage     = "X-Ca-Error-Message"
	HeaderErrorCode        = "X-Ca-Error-Code"
	HeaderRequestID        = "X-Ca-Request-Id"

	// SignatureMethod is the HMAC every official SDK uses.
	SignatureMethod = "HmacSHA256"
	// Accept is set explicitly: clients that default to */* break
	// signatures.
	Accept = "application/json; charset=utf-8"
	// ContentType is what the official iotx client sends for a raw JSON
	// body (sdk-core "POST_BODY").
	ContentType = "application/octet-stream; charset=utf-8"
)

// Header is one signed header, with its name exactly as listed in
// X-Ca-Signature-Headers (the case matters).
type Header struct {
	Name, Value string
}

// Canonical holds the parts of a request the API gateway signs.
type Canonical struct {
	Method      string // upper case, "POST"
	Accept      string
	ContentMD5  string
	ContentType string
	Date        string
	// Headers are the signed headers in any order; StringToSign sorts them
	// by name in byte order.
	Headers []Header
	// Path is the request path. A JSON or stream body is not part of the
	// Url block (only Content-MD5 covers it).
	Path string
	// Query holds query and form parameters, if any; the gateway sorts
	// them by name and writes a parameter with an empty value as the name
	// alone.
	Query map[string]string
}

// StringToSign renders c the way the gateway does:
//
//	Method \n Accept \n Content-MD5 \n Content-Type \n Date \n
//	name:value \n   (each signed header, sorted by name)
//	Url             (path, then "?" and the sorted query if any)
func StringToSign(c Canonical) string {
	var b strings.Builder
	for _, s := range []string{strings.ToUpper(c.Method), c.Accept, c.ContentMD5, c.ContentType, c.Date} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	hs := slices.Clone(c.Headers)
	slices.SortStableFunc(hs, func(a, b Header) int { return strings.Compare(a.Name, b.Name) })
	for _, h := range hs {
		b.WriteString(h.Name)
		b.WriteByte(':')
		b.WriteString(h.Value)
		b.WriteByte('\n')
	}
	b.WriteString(c.Path)
	if len(c.Query) > 0 {
		keys := make([]string, 0, len(c.Query))
		for k := range c.Query {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('?')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte('&')
			}
			b.WriteString(k)
			if v := c.Query[k]; v != "" {
				b.WriteByte('=')
				b.WriteString(v)
			}
		}
	}
	return b.String()
}

// Signature returns Base64(HMAC-SHA256(secret, stringToSign)).
func Signature(stringToSign, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// ContentMD5 returns Base64(MD5(body)) over the exact bytes sent.
func ContentMD5(body []byte) string {
	sum := md5.Sum(body)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// SignRequest signs req, whose body is body, for the API gateway. It is a
// pure function of its arguments: it sets X-Ca-Key, X-Ca-Timestamp (t in
// epoch milliseconds), X-Ca-Nonce, X-Ca-Signature-Method, Content-MD5,
// X-Ca-Signature-Headers and X-Ca-Signature, and fills Accept and
// Content-Type with this package's values when req has none. Every X-Ca-*
// header already on req (X-Ca-Stage, say) is signed too. Header names are
// signed in Go's canonical form (X-Ca-Key), as the Java and Python demos
// do. It returns the string it signed.
func SignRequest(req *http.Request, body []byte, appKey, appSecret string, t time.Time, nonce string) string {
	h := req.Header
	if h.Get("Accept") == "" {
		h.Set("Accept", Accept)
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", ContentType)
	}
	h.Set("Content-MD5", ContentMD5(body))
	h.Set(HeaderKey, appKey)
	h.Set(HeaderTimestamp, strconv.FormatInt(t.UnixMilli(), 10))
	h.Set(HeaderNonce, nonce)
	h.Set(HeaderSignatureMethod, SignatureMethod)
	h.Del(HeaderSignature)
	h.Del(HeaderSignatureHeaders)

	var signed []Header
	for name, vs := range h {
		if !strings.HasPrefix(strings.ToLower(name), "x-ca-") || len(vs) == 0 {
			continue
		}
		signed = append(signed, Header{Name: name, Value: vs[0]})
	}
	slices.SortFunc(signed, func(a, b Header) int { return strings.Compare(a.Name, b.Name) })
	names := make([]string, len(signed))
	for i, s := range signed {
		names[i] = s.Name
	}
	sts := StringToSign(Canonical{
		Method:      req.Method,
		Accept:      h.Get("Accept"),
		ContentMD5:  h.Get("Content-MD5"),
		ContentType: h.Get("Content-Type"),
		Date:        h.Get("Date"),
		Headers:     signed,
		Path:        req.URL.Path,
		Query:       firstValues(req.URL.Query()),
	})
	h.Set(HeaderSignatureHeaders, strings.Join(names, ","))
	h.Set(HeaderSignature, Signature(sts, appSecret))
	return sts
}

func firstValues(q map[string][]string) map[string]string {
	if len(q) == 0 {
		return nil
	}
	out := make(map[string]string, len(q))
	for k, vs := range q {
		if len(vs) > 0 {
			out[k] = vs[0]
		} else {
			out[k] = ""
		}
	}
	return out
}
