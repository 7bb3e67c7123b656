package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

// read is one thing readOrders reported: an order submitted (data) or
// rejected (reason).
type read struct {
	source string
	data   string // compacted
	reason string
}

func (r read) String() string {
	if r.reason != "" {
		return r.source + " invalid: " + r.reason
	}
	return r.source + " " + r.data
}

// readAll runs readOrders over stdin and returns what it reported.
func readAll(t *testing.T, stdin io.Reader) ([]read, error) {
	t.Helper()
	var got []read
	err := readOrders("-", stdin, func(source string, data []byte) error {
		var b bytes.Buffer
		if err := json.Compact(&b, data); err != nil {
			t.Errorf("%s: submitted data is not one JSON value: %v", source, err)
		}
		got = append(got, read{source: source, data: b.String()})
		return nil
	}, func(source, reason string) error {
		got = append(got, read{source: source, reason: reason})
		return nil
	}, nil)
	return got, err
}

func order(n string) string {
	return `{"provider":"tencent","order_no":"` + n + `","params":{"CustomerId":"C1","ItemId":"D-1","ItemNum":1}}`
}

func TestReadOrdersShapes(t *testing.T) {
	t.Parallel()
	a, b, c := order("A"), order("B"), order("C")
	tests := []struct {
		name, in string
		want     []string
	}{
		{"one per line", a + "\n" + b + "\n\n" + c + "\n", []string{"stdin:1 " + a, "stdin:2 " + b, "stdin:4 " + c}},
		{"no final newline, CRLF", a + "\r\n" + b, []string{"stdin:1 " + a, "stdin:2 " + b}},
		{"empty", "", nil},
		{"blank", " \n\t\r\n", nil},
		{"byte order mark", "\xEF\xBB\xBF" + a + "\n", []string{"stdin:1 " + a}},
		{"pretty, params on a new line",
			"\n{\n  \"provider\": \"tencent\",\n  \"order_no\": \"A\",\n  \"params\":\n  {\n    \"CustomerId\": \"C1\",\n    \"ItemId\": \"D-1\",\n    \"ItemNum\": 1\n  }\n}\n",
			[]string{"stdin:2 " + a}},
		{"params on a new line", `{"provider":"tencent","order_no":"A","params":` + "\n" + `{"CustomerId":"C1","ItemId":"D-1","ItemNum":1}}`,
			[]string{"stdin:1 " + a}},
		{"several on one line", a + b + " " + c + "\n" + a, []string{"stdin:1 " + a, "stdin:#2 " + b, "stdin:#3 " + c, "stdin:2 " + a}},
		{"array on one line", "[" + a + "," + b + "]", []string{"stdin:1 " + a, "stdin:#2 " + b}},
		{"array, one per line", "[\n" + a + ",\n" + b + "\n]\n", []string{"stdin:2 " + a, "stdin:3 " + b}},
		{"empty array", "[ ]\n[]", nil},
		{"arrays and objects", "[" + a + "]\n" + b + "\n[\n" + c + "]", []string{"stdin:1 " + a, "stdin:2 " + b, "stdin:4 " + c}},
		// Well-formed values that are not orders go to the enqueuer,
		// which says why they are invalid.
		{"other values", `42 "x" null [[1]] {}`, []string{"stdin:1 42", `stdin:#2 "x"`, "stdin:#3 null", "stdin:#4 [1]", "stdin:#5 {}"}},
		{"escapes", `{"s":"a\"b\\c\/\u00e9\n"}`, []string{`stdin:1 {"s":"a\"b\\c\/\u00e9\n"}`}},
	}
	for _, tt := range tests {
		// Whole, and a byte at a time, as a pipe may bring it (a byte
		// order mark in pieces).
		for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
			got, err := readAll(t, r)
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("%s (%T):\n got %v\nwant %v", tt.name, r, got, tt.want)
			}
		}
	}
}

// A line over bufio.Scanner's 4 MiB used to end the file with "token too
// long" after the orders before it were enqueued. Now the oversized order
// is invalid, with its source, and the orders after it are read.
func TestReadOrdersOversizedOrderIsInvalidAndReadingGoesOn(t *testing.T) {
	t.Parallel()
	big := `{"provider":"tencent","order_no":"BIG","params":{"CustomerId":"` + strings.Repeat("x", 5<<20) + `"}}`
	in := order("A") + "\n" + big + "\n" + order("B") + "\n" + "[" + big + "," + order("C") + "]"
	got, err := readAll(t, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	limit := fmt.Sprintf("order is over the %d-byte limit", tasks.MaxPayloadBytes)
	want := []read{
		{source: "stdin:1", data: order("A")},
		{source: "stdin:2", reason: limit},
		{source: "stdin:3", data: order("B")},
		{source: "stdin:4", reason: limit},
		{source: "stdin:#5", data: order("C")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].source != want[i].source || got[i].data != want[i].data || !strings.HasPrefix(got[i].reason, want[i].reason) {
			t.Errorf("result %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// An order of exactly tasks.MaxPayloadBytes is submitted; one byte more
// is not.
func TestReadOrdersSizeLimit(t *testing.T) {
	t.Parallel()
	sized := func(n int) string {
		head, tail := `{"order_no":"`, `"}`
		return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
	}
	got, err := readAll(t, strings.NewReader(sized(tasks.MaxPayloadBytes)+"\n"+sized(tasks.MaxPayloadBytes+1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got[0].data) != tasks.MaxPayloadBytes || got[1].reason == "" {
		t.Fatalf("got %d results (%d bytes, reason %q), want one of %d bytes and one invalid",
			len(got), len(got[0].data), got[len(got)-1].reason, tasks.MaxPayloadBytes)
	}
}

func TestReadOrdersSyntaxErrorStopsTheFile(t *testing.T) {
	t.Parallel()
	a := order("A")
	tests := []struct {
		name, in   string
		submitted  int
		source     string
		wantReason string
	}{
		{"not json", a + "\nnot json\n" + a, 1, "stdin:2", "line 2, column 2: unexpected 'o', expected 'u' in null"},
		{"missing colon", `{"a" 1}` + "\n" + a, 0, "stdin:1", "line 1, column 6: unexpected '1', expected ':' after an object key"},
		{"missing comma", a + "\n" + `{"a":1 "b":2}`, 1, "stdin:2", "line 2, column 8: unexpected '\"', expected ',' or '}' in an object"},
		{"trailing comma", `{"a":1,}`, 0, "stdin:1", "line 1, column 8: unexpected '}', expected a string key"},
		{"comma between orders", a + ",\n" + a, 1, "stdin:1", "unexpected ',', expected a value"},
		{"cut short", a + "\n" + `{"provider":"tencent","params":{`, 1, "stdin:2", "line 2, column 33: unexpected end of input, expected a string key"},
		// An error inside an order is that order's: its source is the
		// line the order starts on.
		{"cut short over lines", a + "\n" + `{"provider":` + "\n\n", 1, "stdin:2", "line 4, column 1: unexpected end of input, expected a value"},
		{"missing comma over lines", "{\n" + `"a":1` + "\n" + `"b":2}`, 0, "stdin:1", "line 3, column 1: unexpected '\"', expected ',' or '}' in an object"},
		{"array not closed", "[" + a + ",\n" + a, 2, "stdin:2", "unexpected end of input, expected ',' or ']' after an order in the array"},
		{"line break in a string", `{"a":"x` + "\n" + `"}`, 0, "stdin:1", "line 1, column 8: line break inside a string"},
		{"string not closed", `{"a":"x`, 0, "stdin:1", "unexpected end of input, expected the end of the string"},
		{"bad escape", `{"a":"\x"}`, 0, "stdin:1", `line 1, column 8: unexpected 'x', expected an escape`},
		{"bad unicode escape", `{"a":"\u12g4"}`, 0, "stdin:1", `unexpected 'g', expected a hex digit`},
		{"number then letter", `{"a":1x}`, 0, "stdin:1", "unexpected 'x' after a number"},
		{"leading zero", `{"a":01}`, 0, "stdin:1", "unexpected '1' after a number"},
		{"bad fraction", `{"a":1.}`, 0, "stdin:1", "unexpected '}', expected a digit"},
		{"bare minus", `[-]`, 0, "stdin:1", "unexpected ']', expected a digit"},
		{"run-on literal", `truex`, 0, "stdin:1", "unexpected 'x' after true"},
		{"control byte", "\x00", 0, "stdin:1", "unexpected byte 0x00, expected a value"},
		{"too deep", strings.Repeat("[", maxDepth+2), 0, "stdin:1", "nested more than 10000 deep"},
		// The error is found even inside an order too big to keep.
		{"inside an oversized order", `{"a":"` + strings.Repeat("x", 100<<10) + `" "b":1}` + "\n" + a, 0, "stdin:1", "expected ',' or '}' in an object"},
	}
	for _, tt := range tests {
		got, err := readAll(t, strings.NewReader(tt.in))
		var stopped *stoppedError
		if !errors.As(err, &stopped) {
			t.Errorf("%s: error %v, want a *stoppedError", tt.name, err)
			continue
		}
		if len(got) != tt.submitted+1 {
			t.Errorf("%s: got %d results, want %d submitted then the error: %v", tt.name, len(got), tt.submitted, got)
			continue
		}
		for _, r := range got[:tt.submitted] {
			if r.reason != "" {
				t.Errorf("%s: %v, want submitted", tt.name, r)
			}
		}
		last := got[tt.submitted]
		if last.source != tt.source || !strings.HasPrefix(last.reason, "syntax error at ") ||
			!strings.Contains(last.reason, tt.wantReason) || !strings.HasSuffix(last.reason, "; the rest of stdin was not read") {
			t.Errorf("%s: last result %v, want at %s a syntax error with %q that says the rest was not read", tt.name, last, tt.source, tt.wantReason)
		}
	}
}

// failingReader returns data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadOrdersReadErrorIsReturned(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk on fire")
	got, err := readAll(t, &failingReader{data: []byte(order("A") + "\n{\"provider\""), err: boom})
	var stopped *stoppedError
	if !errors.Is(err, boom) || errors.As(err, &stopped) {
		t.Fatalf("error = %v, want the read error", err)
	}
	if len(got) != 1 || got[0].data != order("A") {
		t.Errorf("got %v, want the one complete order", got)
	}
}

// orderStream generates orders of every size the reader treats alike, as
// an endless producer would, without holding more than one order.
type orderStream struct {
	n, total int
	// Each order is padded to about size bytes but every oversizedEvery-th
	// one, which is four times the limit.
	size, oversizedEvery int
	cur                  []byte // rest of the current order's head or tail
	pad                  int    // pad bytes of the current order still to send
	tail                 bool   // whether the tail is still to send
	served               int64
	sample               func()
}

var pad = bytes.Repeat([]byte("x"), 64<<10)

func (s *orderStream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case len(s.cur) > 0:
			c := copy(p[n:], s.cur)
			s.cur = s.cur[c:]
			n += c
		case s.pad > 0:
			c := copy(p[n:], pad[:min(s.pad, len(pad))])
			s.pad -= c
			n += c
		case s.tail:
			s.cur, s.tail = []byte("\"}}\n"), false
		case s.n == s.total:
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		default:
			s.n++
			s.cur = fmt.Appendf(nil, `{"provider":"tencent","order_no":"N%d","params":{"CustomerId":"`, s.n)
			s.pad, s.tail = s.size, true
			if s.n%s.oversizedEvery == 0 {
				s.pad = 4 * tasks.MaxPayloadBytes
			}
		}
	}
	if s.served/(64<<20) != (s.served+int64(n))/(64<<20) {
		s.sample()
	}
	s.served += int64(n)
	return n, nil
}

// The old reader buffered its input and stopped at 1 GiB without a word.
// Now over 2 GiB of orders are all read, in bounded memory: every order is
// reported, and the heap never holds more than a small part of the input.
// (Not parallel, so that the heap is this test's alone.)
func TestReadOrdersStreamsGigabytes(t *testing.T) {
	// Every fourth order is oversized (256 KiB), read without being kept.
	const total, size, oversizedEvery = 20_000, 60 << 10, 4 // ≈ 2.1 GiB
	var peak uint64
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
	}
	s := &orderStream{total: total, size: size, oversizedEvery: oversizedEvery, sample: sample}
	var submitted, rejected int
	var last string
	err := readOrders("-", s, func(source string, data []byte) error {
		submitted++
		if len(data) < size {
			t.Fatalf("%s: %d bytes, want over %d", source, len(data), size)
		}
		last = source
		return nil
	}, func(source, reason string) error {
		rejected++
		if want := fmt.Sprintf("stdin:%d", rejected*oversizedEvery); source != want {
			t.Fatalf("rejected %s (%s), want %s", source, reason, want)
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.served < 2<<30 {
		t.Fatalf("the stream served %d bytes, want over 2 GiB", s.served)
	}
	wantRejected := total / oversizedEvery
	if submitted != total-wantRejected || rejected != wantRejected || last != fmt.Sprintf("stdin:%d", total-1) {
		t.Errorf("submitted %d (last %s), rejected %d; want %d (last stdin:%d), %d",
			submitted, last, rejected, total-wantRejected, total-1, wantRejected)
	}
	// A sanity bound, far above the reader's 128 KiB and far below the
	// input: the old reader held up to 1 GiB.
	t.Logf("heap peak %d KiB", peak>>10)
	if peak == 0 || peak > 64<<20 {
		t.Errorf("heap peaked at %d MiB while reading %d MiB", peak>>20, s.served>>20)
	}
}

func TestEnqueueStreamsInput(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	big := `{"provider":"tencent","order_no":"BIG","params":{"CustomerId":"` + strings.Repeat("x", 5<<20) + `"}}`
	in := good + "\n" + big + "\n" +
		`{"provider":"tencent","order_no":"S2","params":` + "\n" + `{"CustomerId":"C1","ItemId":"D-1","ItemNum":1}}` + "\n" +
		"[" + order("S3") + "," + order("S4") + "]\n"
	code, out, errs := runCLI(t, rs.URL(), in)
	if code != exitRejected {
		t.Fatalf("exit = %d, want %d (stderr %s)", code, exitRejected, errs)
	}
	got := lines(t, out)
	want := []struct{ status, source, orderNo string }{
		{tasks.Enqueued, "stdin:1", "E1"},
		{tasks.Invalid, "stdin:2", ""},
		{tasks.Enqueued, "stdin:3", "S2"},
		{tasks.Enqueued, "stdin:5", "S3"},
		{tasks.Enqueued, "stdin:#5", "S4"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d result lines, want %d:\n%s", len(got), len(want), out)
	}
	for i, w := range want {
		if got[i]["status"] != w.status || got[i]["source"] != w.source || w.orderNo != "" && got[i]["order_no"] != w.orderNo {
			t.Errorf("line %d = %v, want %+v", i+1, got[i], w)
		}
	}
}

// A syntax error ends its file, says so and exits 1; the next file is
// still read.
func TestEnqueueSyntaxErrorStopsTheFile(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	dir := t.TempDir()
	bad, next := filepath.Join(dir, "bad.jsonl"), filepath.Join(dir, "next.jsonl")
	if err := os.WriteFile(bad, []byte(order("F1")+"\n{\"provider\" \"tencent\"}\n"+order("F2")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(next, []byte(order("F3")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, rs.URL(), "", bad, next)
	if code != exitRejected {
		t.Fatalf("exit = %d, want %d (stderr %s)", code, exitRejected, errs)
	}
	got := lines(t, out)
	if len(got) != 3 || got[0]["order_no"] != "F1" || got[1]["status"] != tasks.Invalid || got[2]["order_no"] != "F3" {
		t.Fatalf("results:\n%s\nwant F1 enqueued, the syntax error, F3 enqueued", out)
	}
	if got[1]["source"] != bad+":2" || !strings.Contains(got[1]["reason"].(string), "syntax error at line 2, column 13") {
		t.Errorf("syntax error result = %v", got[1])
	}
	if !strings.Contains(errs, "the rest of "+bad+" was not read") {
		t.Errorf("stderr = %q, want it to say the rest of the file was not read", errs)
	}
}

// A file that cannot be read is found before any order is enqueued.
func TestEnqueueMissingFileWritesNothing(t *testing.T) {
	t.Parallel()
	rs := taskstest.StartRedis(t, nil)
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.jsonl")
	if err := os.WriteFile(ok, []byte(order("M1")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, missing := range []string{filepath.Join(dir, "missing.jsonl"), dir} {
		code, out, errs := runCLI(t, rs.URL(), "", ok, missing)
		if code != exitError || out != "" || !strings.Contains(errs, missing) {
			t.Errorf("with %s: exit %d, stdout %q, stderr %q; want exit 2, nothing enqueued, the file named", missing, code, out, errs)
		}
	}
	if code, _, _ := runCLI(t, rs.URL(), "", "status", "tencent", "M1"); code != exitRejected {
		t.Errorf("status of M1: exit %d, want %d (no such order)", code, exitRejected)
	}
}
