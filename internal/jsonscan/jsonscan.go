// Package jsonscan reads the keys and members of JSON documents in one
// pass, without decoding their values: the order path checks every payload
// for duplicate keys and reads its params' members, and encoding/json's
// token reader costs several times as much for that. It judges a document
// well formed exactly as encoding/json does (json.Valid), which its tests
// check against encoding/json on fuzzed input. AppendString writes the
// common strings as json.Marshal does, without reflection.
package jsonscan

import (
	"encoding/json"
	"unicode/utf8"
)

// maxDepth is encoding/json's nesting limit: deeper documents are invalid.
const maxDepth = 10000

// Member is one member of an object: its key (unescaped) and its value as
// written. Both may share the document's memory.
type Member struct {
	Key   []byte
	Value []byte
}

// Members returns the members of the JSON object data in order, and false
// when data is not one well-formed JSON object (white space around it
// allowed).
func Members(data []byte) ([]Member, bool) {
	s := scanner{data: data, members: true, top: make([]Member, 0, 8)}
	s.ws()
	if s.i >= len(data) || data[s.i] != '{' {
		return nil, false
	}
	if !s.document() {
		return nil, false
	}
	return s.top, true
}

// DuplicateKey returns the first key, in document order, that appears a
// second time in one object of the JSON document data; found is false
// when no key does, valid when data is not well formed (found is then
// false too).
func DuplicateKey(data []byte) (key string, found, valid bool) {
	s := scanner{data: data, dups: true}
	if !s.document() {
		return "", false, false
	}
	return s.dup, s.found, true
}

type scanner struct {
	data    []byte
	i       int
	members bool     // collect the outermost object's members in top
	top     []Member // the outermost object's members
	dups    bool     // look for a duplicate key
	dup     string
	found   bool
}

func (s *scanner) document() bool {
	s.ws()
	if !s.value(1) {
		return false
	}
	s.ws()
	return s.i == len(s.data)
}

func (s *scanner) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value(depth int) bool {
	if s.i >= len(s.data) {
		return false
	}
	switch c := s.data[s.i]; {
	case c == '{':
		return s.object(depth)
	case c == '[':
		return s.array(depth)
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *scanner) object(depth int) bool {
	if depth > maxDepth {
		return false
	}
	s.i++ // {
	var keys [][]byte
	var seen map[string]bool
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		return true
	}
	for {
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return false
		}
		start, end, ok := s.str()
		if !ok {
			return false
		}
		key := s.data[start:end]
		if escaped(key) || !utf8.Valid(key) {
			// As encoding/json reads it: escapes decoded, invalid
			// UTF-8 replaced.
			var k string
			if json.Unmarshal(s.data[start-1:end+1], &k) != nil {
				return false
			}
			key = []byte(k)
		}
		if s.dups && !s.found {
			if seen != nil {
				if seen[string(key)] {
					s.dup, s.found = string(key), true
				}
				seen[string(key)] = true
			} else {
				for _, k := range keys {
					if string(k) == string(key) {
						s.dup, s.found = string(key), true
						break
					}
				}
				keys = append(keys, key)
				if len(keys) > 16 {
					seen = make(map[string]bool, 2*len(keys))
					for _, k := range keys {
						seen[string(k)] = true
					}
				}
			}
		}
		s.ws()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		vstart := s.i
		if !s.value(depth + 1) {
			return false
		}
		if s.members && depth == 1 {
			s.top = append(s.top, Member{Key: key, Value: s.data[vstart:s.i]})
		}
		if done, ok := s.next('}'); done || !ok {
			return ok
		}
	}
}

func (s *scanner) array(depth int) bool {
	if depth > maxDepth {
		return false
	}
	s.i++ // [
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == ']' {
		s.i++
		return true
	}
	for {
		if !s.value(depth + 1) {
			return false
		}
		if done, ok := s.next(']'); done || !ok {
			return ok
		}
	}
}

// next reads what follows a member or an element, up to close: a comma
// (and the white space after it: more to come), or close (done); ok is
// false for anything else.
func (s *scanner) next(close byte) (done, ok bool) {
	s.ws()
	if s.i >= len(s.data) {
		return false, false
	}
	switch s.data[s.i] {
	case ',':
		s.i++
		s.ws()
		return false, true
	case close:
		s.i++
		return true, true
	}
	return false, false
}

// str reads the string at s.i (its opening quote): its contents are
// data[start:end].
func (s *scanner) str() (start, end int, ok bool) {
	s.i++
	start = s.i
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			end = s.i
			s.i++
			return start, end, true
		case c == '\\':
			s.i++
			if s.i >= len(s.data) {
				return 0, 0, false
			}
			switch s.data[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for range 4 {
					if s.i >= len(s.data) || !isHex(s.data[s.i]) {
						return 0, 0, false
					}
					s.i++
				}
			default:
				return 0, 0, false
			}
		case c < 0x20:
			return 0, 0, false
		default:
			s.i++
		}
	}
	return 0, 0, false
}

func (s *scanner) number() bool {
	d := s.data
	if d[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i >= len(d):
		return false
	case d[s.i] == '0':
		s.i++
	case '1' <= d[s.i] && d[s.i] <= '9':
		s.digits()
	default:
		return false
	}
	if s.i < len(d) && d[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return false
		}
	}
	if s.i < len(d) && (d[s.i] == 'e' || d[s.i] == 'E') {
		s.i++
		if s.i < len(d) && (d[s.i] == '+' || d[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.data) && '0' <= s.data[s.i] && s.data[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) literal(lit string) bool {
	if len(s.data)-s.i < len(lit) || string(s.data[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func escaped(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// AppendString appends s as json.Marshal writes it (quoted, with <, > and
// & escaped) when s is printable ASCII, and reports false, having appended
// nothing, for anything else.
func AppendString(b []byte, s string) ([]byte, bool) {
	n := len(b)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < ' ' || c > '~':
			return b[:n], false
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '<' || c == '>' || c == '&':
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xF])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"'), true
}
