package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/orderworker/orderworker/internal/settings"
	"github.com/orderworker/orderworker/tasks"
)

// Input format. A file (or stdin) is a stream of JSON values read one
// after another, so one object per line, pretty-printed objects spanning
// lines, and several objects on one line all work; a top-level array's
// elements are orders, one each. Memory stays bounded whatever the input's
// size: an order is held only up to tasks.MaxPayloadBytes, and a longer one
// is read to its end without being kept and reported invalid.
//
// An order's source is "NAME:LINE", the line it starts on, or "NAME:#N",
// its place among the file's orders, when an earlier order starts on the
// same line. NAME is the file name as given, or "stdin".
//
// A syntax error ends the file, since the values after it cannot be told
// apart: it is reported as an invalid order at its line and column, the
// rest of the file is not read, and readOrders returns a *stoppedError.
// Within a string, only the quote, backslash and line break are looked for
// while framing values; any other control character or invalid UTF-8 is
// caught when the order itself is decoded, and the order is invalid.

// maxDepth bounds how deeply arrays and objects may nest, as encoding/json
// does, so that the reader's memory stays bounded.
const maxDepth = 10000

// readBufSize is how much of the input is read at a time.
const readBufSize = 64 << 10

// checkInputs makes sure every named file can be opened and is not a
// directory, so that a mistyped name fails before any order is enqueued.
func checkInputs(names []string) error {
	for _, name := range names {
		if name == "-" {
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			if sub := subcommandLike(name); sub != "" && errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w (did you mean the subcommand %s?)", err, sub)
			}
			return err
		}
		st, err := f.Stat()
		f.Close()
		if err != nil {
			return err
		}
		if st.IsDir() {
			return fmt.Errorf("%s is a directory", name)
		}
	}
	return nil
}

// subcommands are enqueue's subcommands: a FILE argument that does not
// exist and is close to one of them was most likely meant for it.
var subcommands = []string{"status", "serve", "webhooks", "list", "resolve", "redrive"}

// subcommandLike returns the subcommand name is at most two edits from
// (any case; one edit for a name of four letters or fewer), "" when none
// is, or when name looks like a path (it has a "/" or a ".").
func subcommandLike(name string) string {
	if strings.ContainsAny(name, "/.") {
		return ""
	}
	best, bestD := "", 3
	for _, sub := range subcommands {
		limit := 2
		if len(sub) <= 4 {
			limit = 1
		}
		if d := settings.Distance(strings.ToLower(name), sub); d <= limit && d < bestD {
			best, bestD = sub, d
		}
	}
	return best
}

// readOrders reads the named file ("-" is stdin) as a stream of orders:
// it calls submit with each order's source and bytes (valid only during
// the call), and reject with the source and reason of each one that cannot
// be submitted: one over tasks.MaxPayloadBytes (processing goes on), or a
// syntax error (the rest of the file is not read and readOrders returns a
// *stoppedError). An error from submit or reject, or from reading the
// input, is returned as it is.
//
// idle, when set, is called before each read that may block, so that a
// caller batching orders can send what it has instead of waiting on more
// input.
func readOrders(name string, stdin io.Reader, submit func(source string, data []byte) error, reject func(source, reason string) error, idle func() error) error {
	r, label := stdin, "stdin"
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r, label = f, name
	}
	in := &input{r: r, name: label, buf: make([]byte, readBufSize), val: make([]byte, 0, tasks.MaxPayloadBytes+1),
		line: 1, nextQuote: -1, nextSlash: -1, nextNL: -1, idle: idle}
	err := in.orders(submit, reject)
	var se *syntaxError
	if errors.As(err, &se) {
		reason := fmt.Sprintf("%s; the rest of %s was not read", se, label)
		// Inside an order, the error is that order's (its source the
		// line it starts on); between orders, it is where it was found.
		source := cmp.Or(in.reading, fmt.Sprintf("%s:%d", label, se.line))
		if err := reject(source, reason); err != nil {
			return err
		}
		return &stoppedError{name: label, err: se}
	}
	return err
}

// stoppedError says a file was abandoned at a syntax error, which was
// reported as an invalid order.
type stoppedError struct {
	name string
	err  *syntaxError
}

func (e *stoppedError) Error() string {
	return fmt.Sprintf("%s: %s; the rest of %s was not read", e.name, e.err, e.name)
}

// syntaxError is malformed input at a line and column (in bytes, from 1).
type syntaxError struct {
	line, col int64
	msg       string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("syntax error at line %d, column %d: %s", e.line, e.col, e.msg)
}

// input is a JSON stream reader that keeps at most one order's bytes.
type input struct {
	r    io.Reader
	name string
	buf  []byte
	pos  int // next byte to read in buf
	end  int // end of the bytes read into buf
	eof  bool

	off       int64 // input offset of buf[pos]
	line      int64 // line of buf[pos], from 1
	lineStart int64 // input offset where that line starts

	// Positions in buf of the next quote, backslash and line break at or
	// after pos (-1: none before end), remembered so that scanning strings
	// stays linear. Valid while >= pos.
	nextQuote, nextSlash, nextNL int

	capturing bool   // the bytes consumed belong to the order being read
	val       []byte // the order so far, while not over the limit
	over      bool   // the order is over tasks.MaxPayloadBytes

	orderCount int   // orders started in this file
	lastLine   int64 // the line the last order started on
	// reading is the source of the order being read ("" between
	// orders): a syntax error inside it is that order's.
	reading string

	idle func() error // called before a read that may block
}

// fill makes at least one byte available at buf[pos] unless the input is
// done; it reports false at the end of the input.
func (in *input) fill() (bool, error) {
	for in.pos == in.end {
		if in.eof {
			return false, nil
		}
		if in.idle != nil {
			if err := in.idle(); err != nil {
				return false, err
			}
		}
		n, err := in.r.Read(in.buf)
		in.pos, in.end = 0, n
		in.nextQuote, in.nextSlash, in.nextNL = -1, -1, -1
		switch {
		case err == io.EOF:
			in.eof = true
		case err != nil:
			return false, fmt.Errorf("read %s: %w", in.name, err)
		case n == 0:
			// A reader may return 0, nil; try again.
		}
	}
	return true, nil
}

// atLeast reads on until n bytes are buffered from pos or the input ends.
// Only at the start of the input, where buf holds what was read first.
func (in *input) atLeast(n int) error {
	for in.end-in.pos < n && !in.eof && in.end < len(in.buf) {
		m, err := in.r.Read(in.buf[in.end:])
		in.end += m
		switch {
		case err == io.EOF:
			in.eof = true
		case err != nil:
			return fmt.Errorf("read %s: %w", in.name, err)
		}
	}
	return nil
}

// peek returns the next byte without consuming it; ok is false at the end.
func (in *input) peek() (c byte, ok bool, err error) {
	if ok, err := in.fill(); !ok || err != nil {
		return 0, false, err
	}
	return in.buf[in.pos], true, nil
}

// take consumes n bytes of buf from pos, none of them a line break.
func (in *input) take(n int) {
	if in.capturing && !in.over {
		if len(in.val)+n > tasks.MaxPayloadBytes {
			in.over = true
			in.val = in.val[:0]
		} else {
			in.val = append(in.val, in.buf[in.pos:in.pos+n]...)
		}
	}
	in.pos += n
	in.off += int64(n)
}

// next consumes the byte peek returned.
func (in *input) next() {
	nl := in.buf[in.pos] == '\n'
	in.take(1)
	if nl {
		in.line++
		in.lineStart = in.off
	}
}

// errorHere returns a syntax error at the next byte.
func (in *input) errorHere(format string, args ...any) error {
	return &syntaxError{line: in.line, col: in.off - in.lineStart + 1, msg: fmt.Sprintf(format, args...)}
}

// unexpected describes the next byte (or the end of input) as a syntax
// error, saying what was expected instead.
func (in *input) unexpected(expected string) error {
	c, ok, err := in.peek()
	switch {
	case err != nil:
		return err
	case !ok:
		return in.errorHere("unexpected end of input, expected %s", expected)
	}
	return in.errorHere("unexpected %s, expected %s", describe(c), expected)
}

// describe names a byte for an error message without echoing more of the
// input than that byte.
func describe(c byte) string {
	switch {
	case c == '\n':
		return "line break"
	case c == '\'':
		return `"'"`
	case c > ' ' && c < 0x7f:
		return fmt.Sprintf("'%c'", c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace consumes whitespace.
func (in *input) skipSpace() error {
	for {
		c, ok, err := in.peek()
		if err != nil || !ok || !isSpace(c) {
			return err
		}
		in.next()
	}
}

// orders reads the whole input: a stream of values, each an order, or an
// array of orders.
func (in *input) orders(submit func(string, []byte) error, reject func(string, string) error) error {
	// A UTF-8 byte order mark, as some editors write, is not an order
	// (read whole, though a pipe may bring it in pieces).
	c, ok, err := in.peek()
	if err != nil {
		return err
	}
	if ok && c == 0xEF {
		if err := in.atLeast(3); err != nil {
			return err
		}
		if in.end-in.pos >= 3 && bytes.Equal(in.buf[in.pos:in.pos+3], []byte{0xEF, 0xBB, 0xBF}) {
			in.pos += 3
			in.off += 3
			in.lineStart = in.off
		}
	}
	for {
		if err := in.skipSpace(); err != nil {
			return err
		}
		c, ok, err := in.peek()
		if err != nil || !ok {
			return err
		}
		if c != '[' {
			if err := in.order(submit, reject); err != nil {
				return err
			}
			continue
		}
		// An array of orders.
		in.next()
		if err := in.skipSpace(); err != nil {
			return err
		}
		if c, ok, err := in.peek(); err != nil {
			return err
		} else if ok && c == ']' {
			in.next()
			continue
		}
		for {
			if err := in.skipSpace(); err != nil {
				return err
			}
			if err := in.order(submit, reject); err != nil {
				return err
			}
			if err := in.skipSpace(); err != nil {
				return err
			}
			c, ok, err := in.peek()
			if err != nil {
				return err
			}
			if ok && c == ',' {
				in.next()
				continue
			}
			if ok && c == ']' {
				in.next()
				break
			}
			return in.unexpected("',' or ']' after an order in the array")
		}
	}
}

// order reads one value as an order and hands it to submit, or to reject
// when it is over the size limit.
func (in *input) order(submit func(string, []byte) error, reject func(string, string) error) error {
	in.orderCount++
	source := fmt.Sprintf("%s:%d", in.name, in.line)
	if in.orderCount > 1 && in.line == in.lastLine {
		source = fmt.Sprintf("%s:#%d", in.name, in.orderCount)
	}
	in.lastLine = in.line
	in.capturing, in.over, in.val = true, false, in.val[:0]
	if c, ok, _ := in.peek(); ok && c == '{' {
		// An order begun: an error inside it is its own. (A stray byte
		// where an order would start is reported where it is.)
		in.reading = source
	}
	err := in.value(1)
	in.capturing = false
	if err != nil {
		return err // in.reading names the order
	}
	in.reading = ""
	if in.over {
		return reject(source, fmt.Sprintf("order is over the %d-byte limit (not read)", tasks.MaxPayloadBytes))
	}
	return submit(source, in.val)
}

// value reads one JSON value nested depth deep.
func (in *input) value(depth int) error {
	if depth > maxDepth {
		return in.errorHere("nested more than %d deep", maxDepth)
	}
	c, ok, err := in.peek()
	switch {
	case err != nil:
		return err
	case !ok:
		return in.unexpected("a value")
	}
	switch {
	case c == '{':
		return in.object(depth)
	case c == '[':
		return in.array(depth)
	case c == '"':
		return in.str()
	case c == '-' || '0' <= c && c <= '9':
		return in.number()
	case c == 't':
		return in.literal("true")
	case c == 'f':
		return in.literal("false")
	case c == 'n':
		return in.literal("null")
	}
	return in.unexpected("a value")
}

// expect consumes the byte want, or fails saying what was expected.
func (in *input) expect(want byte, expected string) error {
	c, ok, err := in.peek()
	if err != nil {
		return err
	}
	if !ok || c != want {
		return in.unexpected(expected)
	}
	in.next()
	return nil
}

func (in *input) object(depth int) error {
	in.next() // {
	if err := in.skipSpace(); err != nil {
		return err
	}
	if c, ok, err := in.peek(); err != nil {
		return err
	} else if ok && c == '}' {
		in.next()
		return nil
	}
	for {
		if err := in.skipSpace(); err != nil {
			return err
		}
		if c, ok, err := in.peek(); err != nil {
			return err
		} else if !ok || c != '"' {
			return in.unexpected("a string key")
		}
		if err := in.str(); err != nil {
			return err
		}
		if err := in.skipSpace(); err != nil {
			return err
		}
		if err := in.expect(':', "':' after an object key"); err != nil {
			return err
		}
		if err := in.skipSpace(); err != nil {
			return err
		}
		if err := in.value(depth + 1); err != nil {
			return err
		}
		if err := in.skipSpace(); err != nil {
			return err
		}
		c, ok, err := in.peek()
		if err != nil {
			return err
		}
		if ok && c == ',' {
			in.next()
			continue
		}
		if ok && c == '}' {
			in.next()
			return nil
		}
		return in.unexpected("',' or '}' in an object")
	}
}

func (in *input) array(depth int) error {
	in.next() // [
	if err := in.skipSpace(); err != nil {
		return err
	}
	if c, ok, err := in.peek(); err != nil {
		return err
	} else if ok && c == ']' {
		in.next()
		return nil
	}
	for {
		if err := in.skipSpace(); err != nil {
			return err
		}
		if err := in.value(depth + 1); err != nil {
			return err
		}
		if err := in.skipSpace(); err != nil {
			return err
		}
		c, ok, err := in.peek()
		if err != nil {
			return err
		}
		if ok && c == ',' {
			in.next()
			continue
		}
		if ok && c == ']' {
			in.next()
			return nil
		}
		return in.unexpected("',' or ']' in an array")
	}
}

// str reads a string. Runs of plain bytes are found with bytes.IndexByte,
// so that even a string of gigabytes is read at memory speed.
func (in *input) str() error {
	in.next() // "
	for {
		if ok, err := in.fill(); err != nil {
			return err
		} else if !ok {
			return in.unexpected("the end of the string")
		}
		stop := min(in.nextIndex(&in.nextQuote, '"'), in.nextIndex(&in.nextSlash, '\\'), in.nextIndex(&in.nextNL, '\n'))
		in.take(stop - in.pos)
		if in.pos == in.end {
			continue
		}
		switch in.buf[in.pos] {
		case '"':
			in.next()
			return nil
		case '\n':
			return in.errorHere("line break inside a string")
		}
		in.next() // backslash
		if err := in.escape(); err != nil {
			return err
		}
	}
}

// nextIndex returns the position in buf of the next c at or after pos, or
// end when there is none, remembering it in *at.
func (in *input) nextIndex(at *int, c byte) int {
	if *at < in.pos {
		if i := bytes.IndexByte(in.buf[in.pos:in.end], c); i >= 0 {
			*at = in.pos + i
		} else {
			*at = in.end
		}
	}
	return *at
}

// escape reads what follows a backslash in a string.
func (in *input) escape() error {
	c, ok, err := in.peek()
	switch {
	case err != nil:
		return err
	case !ok:
		return in.unexpected("an escape")
	case c == 'u':
		in.next()
		for range 4 {
			c, ok, err := in.peek()
			if err != nil {
				return err
			}
			if !ok || !isHex(c) {
				return in.unexpected(`a hex digit in a \u escape`)
			}
			in.next()
		}
		return nil
	case bytes.IndexByte([]byte(`"\/bfnrt`), c) >= 0:
		in.next()
		return nil
	}
	return in.unexpected(`an escape (one of "\/bfnrtu)`)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// number reads a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (in *input) number() error {
	c, _, _ := in.peek()
	if c == '-' {
		in.next()
	}
	c, ok, err := in.peek()
	switch {
	case err != nil:
		return err
	case ok && c == '0':
		in.next()
	case ok && '1' <= c && c <= '9':
		if err := in.digits(); err != nil {
			return err
		}
	default:
		return in.unexpected("a digit")
	}
	if c, ok, err := in.peek(); err != nil {
		return err
	} else if ok && c == '.' {
		in.next()
		if err := in.digits(); err != nil {
			return err
		}
	}
	if c, ok, err := in.peek(); err != nil {
		return err
	} else if ok && (c == 'e' || c == 'E') {
		in.next()
		if c, ok, err := in.peek(); err != nil {
			return err
		} else if ok && (c == '+' || c == '-') {
			in.next()
		}
		if err := in.digits(); err != nil {
			return err
		}
	}
	return in.delimiter("a number")
}

// digits reads one or more decimal digits.
func (in *input) digits() error {
	for n := 0; ; n++ {
		c, ok, err := in.peek()
		if err != nil {
			return err
		}
		if !ok || c < '0' || c > '9' {
			if n == 0 {
				return in.unexpected("a digit")
			}
			return nil
		}
		in.next()
	}
}

// literal reads true, false or null.
func (in *input) literal(word string) error {
	for i := range len(word) {
		c, ok, err := in.peek()
		if err != nil {
			return err
		}
		if !ok || c != word[i] {
			return in.unexpected(fmt.Sprintf("%q in %s", word[i], word))
		}
		in.next()
	}
	return in.delimiter(word)
}

// delimiter checks that what follows a number or literal ends it: the end
// of input, whitespace, ',', ']' or '}'.
func (in *input) delimiter(what string) error {
	c, ok, err := in.peek()
	if err != nil || !ok || isSpace(c) || c == ',' || c == ']' || c == '}' {
		return err
	}
	return in.errorHere("unexpected %s after %s", describe(c), what)
}
