package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var seeds = []string{
	`{}`, ` { } `, `[]`, `{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":2}}`, `{"a":[{"x":1},{"x":1,"x":2}]}`,
	`{"a\u0062":1,"ab":2}`, `{"\ud800":1,"\ufffd":2}`, `{"a":"x\"y","b":"\\","c":"\/\b\f\n\r\t"}`,
	`{"n":-0.5e+10,"m":0,"o":1E5,"p":-12.25}`, `{"t":true,"f":false,"z":null}`,
	`{"a":1,}`, `{"a":1`, `{"a" 1}`, `{a:1}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":-}`,
	`{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}", `{"a":tru}`, `{"a":nul}`, `{"a":[1,]}`, `{"a":[1 2]}`,
	`{"a":1} x`, `{"a":1}{}`, `"s"`, `1`, `null`, ``, ` `, `{"a":"` + "\xff" + `"}`, "{\"\xff\":1,\"\xfe\":2}",
	`{"provider":"tencent","order_no":"A-1","params":{"CustomerId":"C1","ItemNum":2}}`,
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat(`}`, 200),
	`{"":1e700,"":0}`, `{"a":-1e999,"b":{"a":1,"a":1e-999}}`,
}

// refMembers is what encoding/json reads as the members of an object.
func refMembers(data []byte) ([]Member, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	var out []Member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, Member{Key: []byte(tok.(string)), Value: v})
	}
	return out, true
}

// refDuplicateKey is the token reader's answer to DuplicateKey (numbers
// read as json.Number: as float64, one beyond its range, 1e700, would end
// the walk there and hide a duplicate after it, as the token reader the
// scanner replaced did).
func refDuplicateKey(data []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{object: t == '{', keys: map[string]bool{}, key: t == '{'})
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.object && top.key {
				if top.keys[t] {
					return t, true
				}
				top.keys[t] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.object {
			top.key = true
		}
	}
}

func check(t *testing.T, data []byte) {
	got, ok := Members(data)
	want, wok := refMembers(data)
	if ok != wok {
		t.Fatalf("Members(%q) ok = %v, encoding/json %v", data, ok, wok)
	}
	if len(got) != len(want) {
		t.Fatalf("Members(%q) = %d members, encoding/json %d", data, len(got), len(want))
	}
	for i := range got {
		// encoding/json hands RawMessage values compacted of nothing:
		// as written, like ours.
		if !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Fatalf("Members(%q)[%d] = %q:%s, encoding/json %q:%s", data, i, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
		}
	}
	key, found, valid := DuplicateKey(data)
	if valid != json.Valid(data) {
		t.Fatalf("DuplicateKey(%q) valid = %v, json.Valid %v", data, valid, !valid)
	}
	if valid {
		wkey, wfound := refDuplicateKey(data)
		if key != wkey || found != wfound {
			t.Fatalf("DuplicateKey(%q) = %q, %v; the token reader %q, %v", data, key, found, wkey, wfound)
		}
	}
}

func TestAgainstEncodingJSON(t *testing.T) {
	for _, s := range seeds {
		check(t, []byte(s))
	}
}

func FuzzAgainstEncodingJSON(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { check(t, data) })
}

func BenchmarkDuplicateKey(b *testing.B) {
	data := []byte(`{"provider":"tencent","order_no":"A-1","params":{"CustomerId":"Customer100001","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":2}}`)
	b.Run("jsonscan", func(b *testing.B) {
		for b.Loop() {
			DuplicateKey(data)
		}
	})
	b.Run("token reader", func(b *testing.B) {
		for b.Loop() {
			refDuplicateKey(data)
		}
	})
}

// AppendString writes what json.Marshal writes, or nothing.
func FuzzAppendStringAsMarshal(f *testing.F) {
	for _, s := range []string{"", "a", `a"b\c<d>e&f'g~!`, "é", "\x7f", "tab\there", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := AppendString([]byte("x"), s)
		want, _ := json.Marshal(s)
		switch {
		case ok && string(got) != "x"+string(want):
			t.Fatalf("AppendString(%q) = %s, json.Marshal %s", s, got[1:], want)
		case !ok && string(got) != "x":
			t.Fatalf("AppendString(%q) refused but appended %q", s, got[1:])
		}
	})
}
