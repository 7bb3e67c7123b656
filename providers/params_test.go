package providers

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// orderFields mirror a provider's: required strings, an optional string,
// a bounded integer, an unbounded integer and an optional boolean.
var orderFields = []Field{
	{Name: "CustomerId", Kind: String, Required: true, Pattern: regexp.MustCompile(`^[A-Za-z0-9_]+$`), MaxLen: 32},
	{Name: "ItemId", Kind: String, Required: true},
	{Name: "ItemVNO", Kind: String, Pattern: regexp.MustCompile(`^[A-Za-z0-9_-]+$`)},
	{Name: "ItemNum", Kind: Int, Required: true, Min: 1, Max: 1_000_000},
	{Name: "Big", Kind: Int},
	{Name: "Now", Kind: Bool},
}

// withNum returns valid params but for field, spelled as num.
func withNum(field, num string) json.RawMessage {
	if field == "ItemNum" {
		return json.RawMessage(`{"CustomerId":"C1","ItemId":"I","ItemNum":` + num + `}`)
	}
	return json.RawMessage(`{"CustomerId":"C1","ItemId":"I","ItemNum":1,"` + field + `":` + num + `}`)
}

func TestDecodeParamsIntegersOnTheDecimalText(t *testing.T) {
	t.Parallel()
	accepted := []struct {
		field, num string
		want       int64
	}{
		{"ItemNum", "2", 2},
		{"ItemNum", "2.0", 2},
		{"ItemNum", "2.000", 2},
		{"ItemNum", "2e0", 2},
		{"ItemNum", "2E+0", 2},
		{"ItemNum", "20e-1", 2},
		{"ItemNum", "0.2e1", 2},
		{"ItemNum", "1e6", 1_000_000},
		{"ItemNum", "1000000.000000000000000000", 1_000_000},
		{"ItemNum", "0.000000000000000000000000000000000000001e39", 1},
		{"Big", "-0", 0},
		{"Big", "-0.0e-5", 0},
		{"Big", "0e999999999999999999999999", 0},
		{"Big", "9223372036854775807", 9223372036854775807},
		{"Big", "-9223372036854775808", -9223372036854775808},
		{"Big", "92233720368547758.07e2", 9223372036854775807},
		{"Big", "1e18", 1_000_000_000_000_000_000},
		{"Big", "-12345678901234567e1", -123456789012345670},
	}
	for _, tt := range accepted {
		p, err := DecodeParams("test", withNum(tt.field, tt.num), orderFields)
		if err != nil {
			t.Errorf("%s %s: %v, want %d", tt.field, tt.num, err, tt.want)
			continue
		}
		if got, ok := p[tt.field].(int64); !ok || got != tt.want {
			t.Errorf("%s %s: got %#v, want int64 %d", tt.field, tt.num, p[tt.field], tt.want)
		}
	}

	rejected := []struct{ field, num, want string }{
		// Not integers, however close: float64 would round these.
		{"ItemNum", "999999.99999999999999", "params.ItemNum: must be an integer"},
		{"ItemNum", "1.0000000000000001", "params.ItemNum: must be an integer"},
		{"ItemNum", "1000000.0000000001", "params.ItemNum: must be an integer"},
		{"ItemNum", "2.5", "params.ItemNum: must be an integer"},
		{"ItemNum", "25e-1", "params.ItemNum: must be an integer"},
		{"Big", "1e-400", "params.Big: must be an integer"},
		{"Big", "9223372036854775807.5", "params.Big: must be an integer"},
		{"Big", "123456789012345678901e-1", "params.Big: must be an integer"},
		// Not numbers.
		{"ItemNum", `"2"`, "params.ItemNum: must be an integer"},
		{"ItemNum", `""`, "params.ItemNum: must be an integer"},
		{"ItemNum", "true", "params.ItemNum: must be an integer"},
		{"ItemNum", "[2]", "params.ItemNum: must be an integer"},
		{"ItemNum", "{}", "params.ItemNum: must be an integer"},
		{"Big", `""`, "params.Big: must be an integer"},
		// Out of the field's bounds.
		{"ItemNum", "0", "params.ItemNum: must be between 1 and 1000000"},
		{"ItemNum", "-0", "params.ItemNum: must be between 1 and 1000000"},
		{"ItemNum", "1000001", "params.ItemNum: must be between 1 and 1000000"},
		{"ItemNum", "1e7", "params.ItemNum: must be between 1 and 1000000"},
		{"ItemNum", "1e400", "params.ItemNum: must be between 1 and 1000000"},
		{"ItemNum", "9223372036854775808", "params.ItemNum: must be between 1 and 1000000"},
		// Out of int64.
		{"Big", "9223372036854775808", "params.Big: must be between -9223372036854775808 and 9223372036854775807"},
		{"Big", "-9223372036854775809", "params.Big: must be between -9223372036854775808 and 9223372036854775807"},
		{"Big", "1e19", "params.Big: must be between -9223372036854775808 and 9223372036854775807"},
		{"Big", "-1e99999999999999999999999999", "params.Big: must be between -9223372036854775808 and 9223372036854775807"},
	}
	for _, tt := range rejected {
		p, err := DecodeParams("test", withNum(tt.field, tt.num), orderFields)
		var e *Error
		if !errors.As(err, &e) || e.Code != InvalidArgument || e.Message != tt.want {
			t.Errorf("%s %s: got %#v, %v; want InvalidArgument %q", tt.field, tt.num, p, err, tt.want)
		}
	}
}

func TestDecodeParamsNormalizesOptionalFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want Params
	}{
		{`{"CustomerId":"C1","ItemId":"I","ItemNum":2}`, Params{"CustomerId": "C1", "ItemId": "I", "ItemNum": int64(2)}},
		{`{"CustomerId":"C1","ItemId":"I","ItemNum":2,"ItemVNO":""}`, Params{"CustomerId": "C1", "ItemId": "I", "ItemNum": int64(2)}},
		{`{"CustomerId":"C1","ItemId":"I","ItemNum":2,"ItemVNO":null,"Big":null,"Now":null}`, Params{"CustomerId": "C1", "ItemId": "I", "ItemNum": int64(2)}},
		{`{"CustomerId":"C1","ItemId":"I","ItemNum":2,"ItemVNO":"V","Now":false}`, Params{"CustomerId": "C1", "ItemId": "I", "ItemNum": int64(2), "ItemVNO": "V", "Now": false}},
		// Escaped and plain spellings of a string decode alike.
		{`{"CustomerId":"C\u0031","ItemId":"\u6211","ItemNum":2}`, Params{"CustomerId": "C1", "ItemId": "我", "ItemNum": int64(2)}},
		{`{"CustomerId":"C1","ItemId":"我","ItemNum":2}`, Params{"CustomerId": "C1", "ItemId": "我", "ItemNum": int64(2)}},
		{`{"CustomerId":"C1","ItemId":"a\"b","ItemNum":2}`, Params{"CustomerId": "C1", "ItemId": `a"b`, "ItemNum": int64(2)}},
	}
	for _, tt := range tests {
		got, err := DecodeParams("test", json.RawMessage(tt.raw), orderFields)
		if err != nil {
			t.Errorf("%s: %v", tt.raw, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", tt.raw, got, tt.want)
		}
	}

	refused := []struct{ raw, want string }{
		{`{"CustomerId":"C1","ItemId":"","ItemNum":2}`, "params.ItemId: must not be empty"},
		{`{"CustomerId":"C1","ItemId":null,"ItemNum":2}`, "params.ItemId: required"},
		{`{"CustomerId":"C1","ItemId":"I","ItemNum":null}`, "params.ItemNum: required"},
		{`{"CustomerId":"C1","ItemId":"I","ItemNum":2,"Now":""}`, "params.Now: must be a boolean"},
		{`{"CustomerId":"C1","ItemId":"I","ItemNum":2,"ItemVNO":"a b"}`, "params.ItemVNO: must match"},
	}
	for _, tt := range refused {
		_, err := DecodeParams("test", json.RawMessage(tt.raw), orderFields)
		if CodeOf(err) != InvalidArgument || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want InvalidArgument %q", tt.raw, err, tt.want)
		}
	}
}

// Orders a provider cannot tell apart have one Canonical form; orders it
// can, different ones.
func TestCanonicalSameOrderSameBytes(t *testing.T) {
	t.Parallel()
	const want = `{"CustomerId":"C1","ItemId":"I","ItemNum":2}`
	same := []string{
		want,
		`{"ItemNum":2,"ItemId":"I","CustomerId":"C1"}`,
		`{"CustomerId":"C1","ItemId":"I","ItemNum":2.0}`,
		`{"CustomerId":"C1","ItemId":"I","ItemNum":2e0}`,
		`{"CustomerId":"C1","ItemId":"I","ItemNum":20E-1}`,
		`{"CustomerId":"C1","ItemId":"I","ItemNum":2,"ItemVNO":""}`,
		`{"CustomerId":"C1","ItemId":"I","ItemNum":2,"ItemVNO":null}`,
		`{"CustomerId":"C1","ItemId":"I","ItemNum":2,"Now":null,"Big":null}`,
		"{ \"CustomerId\" : \"C\\u0031\",\n\t\"ItemId\": \"I\", \"ItemNum\": 2 }",
	}
	for _, raw := range same {
		p, err := DecodeParams("test", json.RawMessage(raw), orderFields)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got := string(p.Canonical()); got != want {
			t.Errorf("Canonical of %s = %s, want %s", raw, got, want)
		}
	}
	different := []string{
		`{"CustomerId":"C1","ItemId":"I","ItemNum":3}`,
		`{"CustomerId":"C1","ItemId":"I","ItemNum":2,"ItemVNO":"V"}`,
		`{"CustomerId":"C1","ItemId":"I","ItemNum":2,"Now":false}`,
		`{"CustomerId":"C1","ItemId":"I","ItemNum":2,"Big":0}`,
	}
	for _, raw := range different {
		p, err := DecodeParams("test", json.RawMessage(raw), orderFields)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got := string(p.Canonical()); got == want {
			t.Errorf("Canonical of %s = %s, the same as another order's", raw, got)
		}
	}
}

func TestCanonicalFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    Params
		want string
	}{
		{nil, `{}`},
		{Params{}, `{}`},
		{Params{"b": int64(-5), "a": "x<y\"\n", "c": true, "B": int64(0), "é": false},
			`{"B":0,"a":"x\u003cy\"\n","b":-5,"c":true,"é":false}`},
		{Params{"k": `a&b>c\d'~`, "<": ""}, `{"\u003c":"","k":"a\u0026b\u003ec\\d'~"}`},
		{Params{"max": int64(9223372036854775807), "min": int64(-9223372036854775808)},
			`{"max":9223372036854775807,"min":-9223372036854775808}`},
	}
	for _, tt := range tests {
		if got := string(tt.p.Canonical()); got != tt.want {
			t.Errorf("Canonical(%#v) = %s, want %s", tt.p, got, tt.want)
		}
		if !json.Valid(tt.p.Canonical()) {
			t.Errorf("Canonical(%#v) is not valid JSON", tt.p)
		}
	}
}

// numberRE is the grammar of a JSON number.
var numberRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// FuzzDecodeParamsNumber checks integer params against exact rational
// arithmetic, and that Canonical is a fixed point of DecodeParams.
func FuzzDecodeParamsNumber(f *testing.F) {
	for _, s := range []string{
		"2", "2.0", "2e0", "-0", "1.0000000000000001", "999999.99999999999999",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"1e18", "1e19", "25e-1", "0.2E+1", "1e-400", "0e99999999999999999999",
		`"2"`, "true", "null", `""`,
	} {
		f.Add(s)
	}
	fields := []Field{{Name: "n", Kind: Int}, {Name: "s", Kind: String}}
	f.Fuzz(func(t *testing.T, num string) {
		p, err := DecodeParams("fuzz", json.RawMessage(`{"n":`+num+`,"s":"x"}`), fields)
		if err == nil {
			canon := p.Canonical()
			again, err := DecodeParams("fuzz", canon, fields)
			if err != nil {
				t.Fatalf("Canonical %s of %q does not decode: %v", canon, num, err)
			}
			if string(again.Canonical()) != string(canon) {
				t.Fatalf("Canonical %s of %q decodes to %s", canon, num, again.Canonical())
			}
		}
		text := strings.Trim(num, " \t\r\n")
		if !numberRE.MatchString(text) {
			return
		}
		if _, e, ok := strings.Cut(strings.ToLower(text), "e"); ok {
			if x, perr := strconv.ParseInt(e, 10, 32); perr != nil || x > 10000 || x < -10000 {
				return // big.Rat would take too long; exactInt clamps these
			}
		}
		r, ok := new(big.Rat).SetString(text)
		if !ok {
			t.Fatalf("big.Rat cannot read the JSON number %q", text)
		}
		wantOK := r.IsInt() && r.Num().IsInt64()
		if (err == nil) != wantOK {
			t.Fatalf("%q: DecodeParams error %v, want accepted=%v", num, err, wantOK)
		}
		if wantOK && p.Int("n") != r.Num().Int64() {
			t.Fatalf("%q: got %d, want %s", num, p.Int("n"), r.Num())
		}
	})
}

func TestSameIDs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b []string
		want bool
	}{
		{nil, nil, true},
		{[]string{}, nil, true},
		{[]string{"1", "2"}, []string{"1", "2"}, true},
		{[]string{"1", "2", "3"}, []string{"3", "1", "2"}, true},
		{[]string{"1", "1", "2"}, []string{"1", "2", "2"}, false},
		{[]string{"1", "2"}, []string{"1", "2", "3"}, false},
		{[]string{"1", "2"}, []string{"1", "3"}, false},
	} {
		a := slices.Clone(tt.a)
		if got := SameIDs(tt.a, tt.b); got != tt.want {
			t.Errorf("SameIDs(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if !slices.Equal(a, tt.a) {
			t.Errorf("SameIDs reordered its argument: %q, was %q", tt.a, a)
		}
	}
}

func TestJudgePageZero(t *testing.T) {
	t.Parallel()
	invalid := &Error{Code: InvalidArgument, Op: "list"}
	down := &Error{Code: Unavailable, Op: "list"}
	for _, tt := range []struct {
		name      string
		err       error
		zero, one []string
		want      PageBase
	}{
		{"refused as invalid", invalid, nil, []string{"1"}, BaseFrom1},
		{"failed", down, nil, []string{"1"}, BaseUnknown},
		{"both empty", nil, nil, nil, BaseUnknown},
		{"empty page 0", nil, nil, []string{"1"}, BaseFrom1},
		{"page 1 again", nil, []string{"1", "2"}, []string{"1", "2"}, BaseFrom1},
		{"page 1 again, in another order", nil, []string{"2", "3", "1"}, []string{"1", "2", "3"}, BaseFrom1},
		{"page 1's orders and one more", nil, []string{"2", "1", "0"}, []string{"1", "2"}, BaseMoved},
		{"page 1's orders, one twice", nil, []string{"2", "1", "1"}, []string{"1", "2", "2"}, BaseMoved},
		{"orders on page 0 only", nil, []string{"1"}, nil, BaseFrom0},
		{"a page of its own", nil, []string{"3", "4"}, []string{"1", "2"}, BaseFrom0},
		{"some of page 1", nil, []string{"0", "1"}, []string{"1", "2"}, BaseMoved},
		{"orders without ids", nil, []string{"", ""}, []string{"", ""}, BaseUnknown},
	} {
		if got := JudgePageZero(tt.err, tt.zero, tt.one); got != tt.want {
			t.Errorf("%s: JudgePageZero = %v, want %v", tt.name, got, tt.want)
		}
	}
}
