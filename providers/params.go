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
	// MaxLen, for strings, bounds the length in runes (0: 256).
	MaxLen int
	// Min and Max bound integers when Min < Max.
	Min, Max int64
}

// Params are decoded, validated params: string, int64 or bool values.
type Params map[string]any

// Str returns the string param name, "" when absent.
func (p Params) Str(name string) string { s, _ := p[name].(string); return s }

// Int returns the integer param name, 0 when absent.
func (p Params) Int(name string) int64 { n, _ := p[name].(int64); return n }

// Bool returns the boolean param name and whether it was given.
func (p Params) Bool(name string) (v, ok bool) { v, ok = p[name].(bool); return v, ok }

// DecodeParams checks raw against fields and returns the values. Its error
// is an InvalidArgument *Error naming the first bad field: not an object,
// unknown field, missing required field, wrong type, out of range, bad shape.
// Field order in fields decides which error is reported first.
func DecodeParams(op string, raw json.RawMessage, fields []Field) (Params, error) {
	bad := func(format string, args ...any) error {
		return &Error{Code: InvalidArgument, Op: op, Message: fmt.Sprintf(format, args...)}
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, bad("params must be a JSON object")
	}
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil {
		return nil, bad("params: malformed JSON")
	}
	known := make(map[string]bool, len(fields))
	for _, f := range fields {
		known[f.Name] = true
	}
	var unknown []string
	for k := range m {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		names := make([]string, len(fields))
		for i, f := range fields {
			names[i] = f.Name
		}
		return nil, bad("params.%s: unknown field (accepted: %s)", safeName(unknown[0]), strings.Join(names, ", "))
	}
	out := make(Params, len(m))
	for _, f := range fields {
		v, ok := m[f.Name]
		if !ok || string(v) == "null" {
			if f.Required {
				return nil, bad("params.%s: required", f.Name)
			}
			continue
		}
		switch f.Kind {
		case String:
			var s string
			if json.Unmarshal(v, &s) != nil {
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
			case utf8.RuneCountInString(s) > max:
				return nil, bad("params.%s: longer than %d characters", f.Name, max)
			case s != "" && f.Pattern != nil && !f.Pattern.MatchString(s):
				return nil, bad("params.%s: must match %s", f.Name, f.Pattern)
			}
			out[f.Name] = s
		case Int:
			var n json.Number
			d := json.NewDecoder(bytes.NewReader(v))
			d.UseNumber()
			if d.Decode(&n) != nil || v[0] == '"' {
				return nil, bad("params.%s: must be %s", f.Name, f.Kind)
			}
			i, err := n.Int64()
			if err != nil {
				fl, ferr := n.Float64()
				if ferr != nil || fl != math.Trunc(fl) || math.Abs(fl) > 1<<53 {
					return nil, bad("params.%s: must be %s", f.Name, f.Kind)
				}
				i = int64(fl)
			}
			if f.Min < f.Max && (i < f.Min || i > f.Max) {
				return nil, bad("params.%s: must be between %d and %d", f.Name, f.Min, f.Max)
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

// safeName keeps a producer-chosen field name printable, short and free of
// phone numbers in an error message.
func safeName(s string) string {
	q := strconv.Quote(Truncate(MaskPhones(strings.ToValidUTF8(s, "?")), 40))
	return q[1 : len(q)-1]
}
