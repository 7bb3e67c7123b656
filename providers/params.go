package providers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/orderworker/orderworker/internal/jsonscan"
)

// Kind is the JSON type a param must have.
type Kind int

const (
	String Kind = iota
	Int
	Bool
)

func (k Kind) String() string {
	return [...]string{"a string", "an integer", "a boolean"}[k]
}

// Field describes one param a provider accepts.
type Field struct {
	Name     string
	Kind     Kind
	Required bool
	// Pattern, for strings, is the whole value's required shape.
	Pattern *regexp.Regexp
	// PatternText says Pattern in words, for the error a value that does
	// not match it gets ("" : the pattern itself is shown).
	PatternText string
	// MaxLen, for strings, bounds the length in runes (0: 256).
	MaxLen int
	// Min and Max bound integers when Min < Max.
	Min, Max int64
}

// Params are decoded, validated, normalized params: string, int64 or bool
// values. An optional field that was left out, null, or (for strings) ""
// is absent.
type Params map[string]any

// Str returns the string param name, "" when absent.
func (p Params) Str(name string) string { s, _ := p[name].(string); return s }

// Int returns the integer param name, 0 when absent.
func (p Params) Int(name string) int64 { n, _ := p[name].(int64); return n }

// Bool returns the boolean param name and whether it was given.
func (p Params) Bool(name string) (v, ok bool) { v, ok = p[name].(bool); return v, ok }

// Canonical returns p as deterministic JSON, the form to hash when asking
// whether two orders are the same: one object without whitespace, keys
// sorted by their bytes, strings as encoding/json writes them, integers in
// plain decimal (no sign for zero, no fraction, no exponent) and booleans as
// true or false. Two params that DecodeParams normalized to the same values
// have the same Canonical form, whatever their key order, spacing, number
// spelling (2, 2.0, 2e0) or way of leaving an optional field out. Params
// from DecodeParams hold only strings, int64s and bools; a value of any
// other type is written as encoding/json writes it (null if it cannot).
func (p Params) Canonical() []byte {
	keys := make([]string, 0, len(p))
	size := 2
	for k, v := range p {
		keys = append(keys, k)
		size += len(k) + 4
		if s, ok := v.(string); ok {
			size += len(s) + 2
		} else {
			size += 20
		}
	}
	slices.Sort(keys)
	b := make([]byte, 1, size)
	b[0] = '{'
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSON(b, k)
		b = append(b, ':')
		switch v := p[k].(type) {
		case string:
			b = appendJSON(b, v)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case bool:
			b = strconv.AppendBool(b, v)
		default:
			b = appendJSON(b, v)
		}
	}
	return append(b, '}')
}

func appendJSON(b []byte, v any) []byte {
	if s, ok := v.(string); ok {
		if out, ok := jsonscan.AppendString(b, s); ok {
			return out
		}
	}
	j, err := json.Marshal(v)
	if err != nil {
		j = []byte("null")
	}
	return append(b, j...)
}

// DecodeParams checks raw against fields and returns the values, normalized
// so that orders a provider cannot tell apart decode to equal Params (and so
// to equal Canonical forms):
//
//   - An optional field given as null, or a string field given as "", is
//     absent, as if left out. ("" for an integer or boolean field is the
//     wrong type and refused.) A required field that is absent or null is
//     refused as required; a required string "" as empty.
//   - An integer is a JSON number (not a string) whose exact decimal value
//     is an integer, judged on its text and never through float64: 2, 2.0,
//     2.000, 2e0, 20e-1 and 0.2E+1 are all 2, and -0 is 0; 2.5,
//     1.0000000000000001 and 999999.99999999999999 are refused. It must lie
//     within int64 and, when the field has bounds (Min < Max), within them.
//     The value is an int64.
//
// Its error is an InvalidArgument *Error naming the first bad field: not an
// object, unknown field, missing required field, wrong type, out of range,
// bad shape. Field order in fields decides which error is reported first.
func DecodeParams(op string, raw json.RawMessage, fields []Field) (Params, error) {
	bad := func(format string, args ...any) error {
		return &Error{Code: InvalidArgument, Op: op, Message: fmt.Sprintf(format, args...)}
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, bad("params must be a JSON object")
	}
	members, ok := jsonscan.Members(raw)
	if !ok {
		return nil, bad("params: malformed JSON")
	}
	var unknown []string
	for _, m := range members {
		if !slices.ContainsFunc(fields, func(f Field) bool { return f.Name == string(m.Key) }) {
			unknown = append(unknown, string(m.Key))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		names := make([]string, len(fields))
		for i, f := range fields {
			names[i] = f.Name
		}
		return nil, bad("params.%s: unknown field (accepted: %s)", SafeFieldName(unknown[0]), strings.Join(names, ", "))
	}
	out := make(Params, len(fields))
	for _, f := range fields {
		// The last member of a name counts, as when decoding.
		var v []byte
		ok := false
		for _, m := range members {
			if string(m.Key) == f.Name {
				v, ok = m.Value, true
			}
		}
		if !ok || string(v) == "null" {
			if f.Required {
				return nil, bad("params.%s: required", f.Name)
			}
			continue
		}
		switch f.Kind {
		case String:
			s, ok := plainString(v)
			if !ok && json.Unmarshal(v, &s) != nil {
				return nil, bad("params.%s: must be %s", f.Name, f.Kind)
			}
			max := f.MaxLen
			if max == 0 {
				max = 256
			}
			switch {
			case !utf8.ValidString(s):
				return nil, bad("params.%s: invalid UTF-8", f.Name)
			case s == "" && f.Required:
				return nil, bad("params.%s: must not be empty", f.Name)
			case s == "":
				continue // an optional string given as "" is not given
			case utf8.RuneCountInString(s) > max:
				return nil, bad("params.%s: longer than %d characters", f.Name, max)
			case f.Pattern != nil && !f.Pattern.MatchString(s):
				if f.PatternText != "" {
					return nil, bad("params.%s: %s", f.Name, f.PatternText)
				}
				return nil, bad("params.%s: must match %s", f.Name, f.Pattern)
			}
			out[f.Name] = s
		case Int:
			// v is one JSON value (the object decoded), so a number here
			// is well formed: json.Valid only tells numbers from the rest.
			if !isNumber(v) {
				return nil, bad("params.%s: must be %s", f.Name, f.Kind)
			}
			i, isInt, fits := exactInt(string(v))
			switch {
			case !isInt:
				return nil, bad("params.%s: must be %s", f.Name, f.Kind)
			case f.Min < f.Max && (!fits || i < f.Min || i > f.Max):
				return nil, bad("params.%s: must be between %d and %d", f.Name, f.Min, f.Max)
			case !fits:
				return nil, bad("params.%s: must be between %d and %d", f.Name, int64(math.MinInt64), int64(math.MaxInt64))
			}
			out[f.Name] = i
		case Bool:
			var b bool
			if json.Unmarshal(v, &b) != nil {
				return nil, bad("params.%s: must be %s", f.Name, f.Kind)
			}
			out[f.Name] = b
		}
	}
	return out, nil
}

// plainString returns the value of v, one well-formed JSON value, when it
// is a string without escapes (its bytes are then its value); ok is false
// for anything else, which json.Unmarshal decodes.
func plainString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		return "", false
	}
	return string(v[1 : len(v)-1]), true
}

// isNumber reports whether v, one well-formed JSON value, is a number.
func isNumber(v []byte) bool {
	return len(v) > 0 && (v[0] == '-' || '0' <= v[0] && v[0] <= '9')
}

// exactInt reads s, a well-formed JSON number, exactly. isInt reports
// whether its value is an integer; fits, whether that integer is within
// int64, and n is then its value. No float64 is involved: 1e2 and 100.0
// are 100, 1.0000000000000001 is not an integer, -0 is 0.
func exactInt(s string) (n int64, isInt, fits bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, expText, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	// The value is digits × 10^exp.
	exp := -int64(len(frac))
	if hasExp {
		exp += parseExp(expText)
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	for strings.HasSuffix(digits, "0") {
		digits = digits[:len(digits)-1]
		exp++
	}
	switch {
	case digits == "":
		return 0, true, true // any spelling of zero, -0 included
	case exp < 0:
		return 0, false, false // digits ends in a non-zero digit after the point
	case int64(len(digits))+exp > 19:
		return 0, true, false // more digits than int64 holds
	}
	text := digits + strings.Repeat("0", int(exp))
	if neg {
		text = "-" + text
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, true, false
	}
	return n, true, true
}

// maxExp bounds an exponent's magnitude: beyond it any non-zero value is
// out of int64's range or not an integer, whatever the digits (a number
// that long cannot be held in memory), so the exponent is clamped there.
const maxExp = 1 << 40

// parseExp reads an exponent's text ([+-]digits), clamped to ±maxExp.
func parseExp(s string) int64 {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	var e int64
	for i := 0; i < len(s) && e < maxExp; i++ {
		e = e*10 + int64(s[i]-'0')
	}
	e = min(e, maxExp)
	if neg {
		return -e
	}
	return e
}

// SafeFieldName is a field name a producer gave, fit for an error's text:
// as given when it is a plain name (ASCII letters, digits, '_', '.', '-',
// up to 40), phone numbers masked; else withheld, since the error text
// reaches Redis and the dashboard, and a "name" of spaces or other letters
// may be a person's (a producer that put a value where a key belongs).
func SafeFieldName(s string) string {
	if !PlainName(s) {
		return "(a field name withheld)"
	}
	return MaskPhones(s)
}

// PlainName reports whether s is a plain name: ASCII letters, digits, '_',
// '.' and '-', 1 to 40 of them.
func PlainName(s string) bool {
	if len(s) == 0 || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}
