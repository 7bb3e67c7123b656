package tasks

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodePayload(t *testing.T) {
	t.Parallel()
	p, err := DecodePayload([]byte(` {"provider":"tencent","order_no":"Order100001","params":{"ItemNum":2}} `))
	if err != nil {
		t.Fatal(err)
	}
	if p.Provider != "tencent" || p.OrderNo != "Order100001" || string(p.Params) != `{"ItemNum":2}` {
		t.Errorf("DecodePayload = %+v", p)
	}
	tests := []struct{ in, reason string }{
		{`{"provider":"tencent","order_no":"A","params":{}} {}`, "trailing data"},
		{`{"provider":"Tencent","order_no":"A","params":{}}`, "lower-case name"},
		{`{"provider":"tencent","order_no":"A B","params":{}}`, "printable ASCII"},
		{`{"provider":"tencent","order_no":"A","params":[1]}`, "params: must be a JSON object"},
		{`{"provider":"tencent","order_no":"A","params":null}`, "params: required"},
		{`{"provider":1,"order_no":"A","params":{}}`, "provider: must be string"},
		{strings.Repeat(" ", MaxPayloadBytes+1), "over the"},
		{``, "must be a JSON object"},
		// Not JSON at all, as an NDJSON line may be: said so, and where.
		{`not json`, "payload is not JSON: syntax error at byte 2"},
		{`[1]`, "payload must be a JSON object"},
	}
	for _, tt := range tests {
		_, err := DecodePayload([]byte(tt.in))
		if !IsInvalid(err) || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("DecodePayload(%.40q) = %v, want invalid: %s", tt.in, err, tt.reason)
		}
	}
	if _, err := DecodePayload([]byte(`{"provider":"tencent","order_no":"A/B-1","params":{}}`)); err != nil {
		t.Errorf("DecodePayload with a slash in the order number: %v", err)
	}
}

// The Enqueuer refuses an order number a URL path would read otherwise.
func TestOrderPath(t *testing.T) {
	t.Parallel()
	for no, bad := range map[string]bool{"x/../y": true, "a//b": true, "..": true, "/a": true, "a/": true, "a/./b": true, "A/B-1": false, "a.b": false, "...": false} {
		if err := checkOrderPath(no); (err != nil) != bad {
			t.Errorf("checkOrderPath(%q) = %v, want refused: %v", no, err, bad)
		}
	}
}

// The Enqueuer refuses params with a key given twice in one object, at any
// depth; the same key in different objects is fine.
func TestDuplicateKeys(t *testing.T) {
	t.Parallel()
	for params, want := range map[string]string{
		`{"userName":"Zhang San","userName":""}`:          "userName",
		`{"x":{"a":1,"a":2}}`:                             "a",
		`{"l":[{"a":1,"b":2,"b":3}]}`:                     "b",
		`{"a":{"a":1},"l":[{"a":1},{"a":2}],"b":[1,"a"]}`: "",
		// A number beyond float64 hid what followed it from the token
		// reader this check used before.
		`{"ItemNum":1e700,"ItemNum":2}`: "ItemNum",
	} {
		key, dup := duplicateKey([]byte(params))
		if dup != (want != "") || key != want {
			t.Errorf("duplicateKey(%s) = %q, %v; want %q", params, key, dup, want)
		}
	}
}

// The refusal of a repeated key names it only when it reads as a field
// name: a key may be a person's name, and the reason is echoed to the
// producer and may be logged.
func TestDuplicateKeyReasonWithholdsANameLikeKey(t *testing.T) {
	t.Parallel()
	for params, want := range map[string]string{
		`{"x":{"张伟 Zhang Wei":1,"张伟 Zhang Wei":2}}`: `the key "(a field name withheld)" appears twice`,
		`{"x":{"Zhang Wei":1,"Zhang Wei":2}}`:       `the key "(a field name withheld)" appears twice`,
		`{"ItemNum":1,"ItemNum":2}`:                 `the key "ItemNum" appears twice`,
	} {
		err := checkDuplicateKeys([]byte(params))
		if !IsInvalid(err) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "Zhang") {
			t.Errorf("checkDuplicateKeys(%s) = %v; want invalid, %q", params, err, want)
		}
	}
}

// An order handed to the Enqueuer names each payload field once and
// exactly: decoding alone would take "Order_No", or the last of two
// order_no, silently. The worker decodes such tasks as before.
func TestPayloadKeysAreExact(t *testing.T) {
	t.Parallel()
	const params = `"params":{"CustomerId":"C1","ItemId":"I1","ItemNum":1}`
	for doc, want := range map[string]string{
		`{"provider":"tencent","order_no":"A",` + params + `}`:                  "",
		`{"provider":"tencent","Order_No":"A",` + params + `}`:                  `the payload field "Order_No": field names are case-sensitive`,
		`{"provider":"tencent","order_no":"A","order_no":"B",` + params + `}`:   `the payload field "order_no" appears twice`,
		`{"provider":"tencent","order_no":"A","ORDER_NO":"B",` + params + `}`:   `the payload field "ORDER_NO"`,
		`{"PROVIDER":"tencent","order_no":"A",` + params + `}`:                  `the payload field "PROVIDER"`,
		`{"provider":"tencent","order_no":"A",` + params + `,"params":{"a":1}}`: `the payload field "params" appears twice`,
	} {
		p, err := decodeProduced([]byte(doc))
		if want == "" {
			if err != nil || p.OrderNo != "A" {
				t.Errorf("decodeProduced(%s) = %+v, %v; want order A", doc, p, err)
			}
			continue
		}
		if !IsInvalid(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("decodeProduced(%s) = %v; want invalid, %q", doc, err, want)
		}
		if _, err := DecodePayload([]byte(doc)); err != nil {
			t.Errorf("DecodePayload(%s) = %v; the worker must still take it", doc, err)
		}
	}
}

func TestParamsHashIsCanonical(t *testing.T) {
	t.Parallel()
	a, _ := ParamsHash(json.RawMessage(`{"b":1,"a":"x"}`))
	b, _ := ParamsHash(json.RawMessage(`{ "a" : "x", "b" : 1 }`))
	c, _ := ParamsHash(json.RawMessage(`{"a":"x","b":2}`))
	if a != b {
		t.Errorf("hash differs for the same params in another order")
	}
	if a == c {
		t.Errorf("hash is equal for different params")
	}
	// Two documents, or one and more, are not one order's params.
	for _, bad := range []string{`{"a":1}}`, `{"a":1} {"a":2}`, `{"a":1} x`} {
		if h, err := ParamsHash(json.RawMessage(bad)); err == nil {
			t.Errorf("ParamsHash(%s) = %s; want an error", bad, h)
		}
	}
	if _, err := ParamsHash(json.RawMessage(" {\"a\":1} \n")); err != nil {
		t.Errorf("white space around params: %v", err)
	}
}

// FuzzDecodePayload: any input either decodes into a payload that passes
// its own checks and survives a round trip, or is rejected with an
// *InvalidError whose reason is valid UTF-8. It never panics.
func FuzzDecodePayload(f *testing.F) {
	f.Add([]byte(`{"provider":"tencent","order_no":"Order100001","params":{"CustomerId":"Customer100001","ItemId":"D-FireInsurance2020","ItemNum":2}}`))
	f.Add([]byte(`{"provider":"aliyun","order_no":"A-1","params":{"iotId":"x","commodityCode":"c","copies":1,"userName":"158****8558"}}`))
	f.Add([]byte(`{"provider":"tencent","order_no":"","params":{}}`))
	f.Add([]byte("{\"provider\":\"tencent\",\"order_no\":\"\xff\"}"))
	f.Add([]byte(`{"provider":"tencent","order_no":"A","params":{}}garbage`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePayload(data)
		if err != nil {
			if !IsInvalid(err) {
				t.Fatalf("error %v is not an *InvalidError", err)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("reason is not valid UTF-8: %q", err.Error())
			}
			return
		}
		if err := p.check(); err != nil {
			t.Fatalf("decoded payload fails its own check: %v", err)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := DecodePayload(again)
		if err != nil {
			t.Fatalf("round trip rejected: %v", err)
		}
		if q.Provider != p.Provider || q.OrderNo != p.OrderNo {
			t.Fatalf("round trip changed the payload: %+v vs %+v", p, q)
		}
		hp, err1 := ParamsHash(p.Params)
		hq, err2 := ParamsHash(q.Params)
		if err1 != nil || err2 != nil || hp != hq {
			t.Fatalf("round trip changed params: %s vs %s", p.Params, q.Params)
		}
		checkMarshalParams(t, p.Params)
	})
}

// checkMarshalParams checks marshalParams against json.Marshal: the same
// bytes, or both refuse.
func checkMarshalParams(t *testing.T, params json.RawMessage) {
	t.Helper()
	want, werr := json.Marshal(params)
	got, err := marshalParams(params)
	if (err != nil) != (werr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("marshalParams(%q) = %q, %v; json.Marshal %q, %v", params, got, err, want, werr)
	}
}

// Params are copied as json.Marshal would write them: compact, with HTML's
// characters and JavaScript's line separators escaped.
func TestMarshalParamsAsMarshal(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		`{}`, `{"CustomerId":"C1","ItemNum":2}`, `{ "a" : 1 }`, "{\n\t\"a\":\r\n1}",
		`{"a":"x y"}`, `{"a":"<"}`, `{"a":">"}`, `{"a":"&amp;"}`, `{"a":"\u003c"}`, "{\"a\":\"\u2028\u2029\"}",
		`{"a":"é中文"}`, `{"a":"\ud83d\ude00"}`, `"ow1:sealed"`, `{"a":[1,2,{"b":null}],"c":true}`,
		"{\"a\":\"\xff\"}",
		// Not JSON: refused, as json.Marshal refuses it.
		`{"a":1}}`, `{"a":1} {}`, `{"a":}`, `{"a":1`, ``,
	} {
		checkMarshalParams(t, json.RawMessage(s))
	}
}

// The one-pass reading of a payload decodes what encoding/json decodes,
// wherever it answers.
func FuzzDecodePlainAsEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"provider":"tencent","order_no":"A-1","params":{"CustomerId":"C1","ItemNum":2}}`,
		`{"provider":"tencent","provider":null,"order_no":"A\u002d1","params":null}`,
		`{"provider":"a","provider":"b","order_no":"x","params":"sealed"}`,
		`{"Provider":"a","order_no":"x","params":{}}`, `{"provider":1,"order_no":"x","params":{}}`,
		`{"provider":"a","order_no":"x","params":{}} {}`, `{"provider":"a","extra":1}`, `{}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok, once := decodePlain(data)
		if !ok {
			return
		}
		// decodeProduced skips checkPayloadKeys when decodePlain read
		// each key once: it would have found nothing.
		if keysOK := checkPayloadKeys(data) == nil; once != keysOK {
			t.Fatalf("decodePlain(%q) says each key once: %v; checkPayloadKeys finds nothing wrong: %v", data, once, keysOK)
		}
		var want Payload
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("decodePlain(%q) = %+v; encoding/json refuses it: %v", data, got, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("decodePlain(%q) = %+v; encoding/json finds trailing data", data, got)
		}
		if got.Provider != want.Provider || got.OrderNo != want.OrderNo || !bytes.Equal(got.Params, want.Params) {
			t.Fatalf("decodePlain(%q) = %+v, encoding/json %+v", data, got, want)
		}
	})
}

// A task's payload is written by hand as json.Marshal writes it.
func TestOrderTaskPayloadAsMarshal(t *testing.T) {
	t.Parallel()
	for _, p := range []Payload{
		{Provider: "tencent", OrderNo: "A-1", Params: json.RawMessage(`{"CustomerId":"C1","ItemNum":2}`)},
		{Provider: "unicloud", OrderNo: `a"b\c<d>e&f'g~!`, Params: json.RawMessage(`"ow1:sealed"`)},
		{Provider: "aliyun", OrderNo: "é", Params: json.RawMessage(`{}`)}, // not printable ASCII: json.Marshal's
	} {
		got, err := orderTaskPayload(p)
		want, werr := json.Marshal(p)
		if err != nil || werr != nil || string(got) != string(want) {
			t.Errorf("orderTaskPayload(%+v) = %s, %v; json.Marshal %s, %v", p, got, err, want, werr)
		}
	}
	for c := byte(' ' + 1); c <= '~'; c++ {
		p := Payload{Provider: "tencent", OrderNo: "x" + string(c), Params: json.RawMessage(`{}`)}
		got, _ := orderTaskPayload(p)
		if want, _ := json.Marshal(p); string(got) != string(want) {
			t.Errorf("order_no %q: %s, json.Marshal %s", p.OrderNo, got, want)
		}
	}
}

// A payload refused for a field in another case, or named twice, is
// answered with the order number of the exactly spelled order_no given
// once, or none: decoding matches "Order_No" too and takes the last, and
// the answer would name another order than the producer's.
func TestInvalidPayloadEchoesTheExactOrderNo(t *testing.T) {
	t.Parallel()
	const params = `"params":{"CustomerId":"C1","ItemId":"I1","ItemNum":1}`
	for doc, want := range map[string][2]string{
		`{"provider":"tencent","order_no":"A4","Order_No":"x",` + params + `}`:   {"tencent", "A4"},
		`{"provider":"tencent","Order_No":"x","order_no":"A4",` + params + `}`:   {"tencent", "A4"},
		`{"provider":"tencent","Order_No":"x",` + params + `}`:                   {"tencent", ""},
		`{"provider":"tencent","order_no":"A","order_no":"B",` + params + `}`:    {"tencent", ""},
		`{"Provider":"aliyun","provider":"tencent","order_no":7,` + params + `}`: {"tencent", ""},
	} {
		_, err := decodeProduced([]byte(doc))
		if err == nil {
			t.Fatalf("decodeProduced(%s) took it", doc)
		}
		res := invalidPayload([]byte(doc), err)
		if res.Status != Invalid || res.Provider != want[0] || res.OrderNo != want[1] {
			t.Errorf("invalidPayload(%s) = %+v; want provider %q, order_no %q", doc, res, want[0], want[1])
		}
	}
}

// SyntaxReason says what is wrong with a document that is not JSON, and
// where: cut short, a second value after the first, or another error.
func TestSyntaxReason(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`{"CustomerId":"C1"`: "unexpected end of input after byte 18",
		`{"a":1}{"b":2}`:     "extra data after the first value, at byte 8",
		"{\"a\":1,\n\"b\":}": "syntax error at byte 13 (line 2)",
		`not json`:           "syntax error at byte 2",
		"\xff":               "not valid UTF-8",
		" ":                  "empty",
	} {
		if got := SyntaxReason([]byte(in)); !strings.HasPrefix(got, want) {
			t.Errorf("SyntaxReason(%q) = %q, want %q", in, got, want)
		}
	}
}
