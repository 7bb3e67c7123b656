package providers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Secret is a credential. It formats and logs as "***", so it cannot leak
// through fmt or log/slog by accident; Reveal returns the value for signing.
type Secret string

func (s Secret) String() string { return "***" }

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return `"***"` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue("***") }

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// digitRun matches a maximal run of digits, with an optional leading '+'.
var digitRun = regexp.MustCompile(`\+?\d+`)

// groupedMobileLen is the length of the mainland mobile number written in
// groups at the start of s, 0 if there is none, the way people write
// them: 138-0013-8000, 138 0013 8000, 1380013 8000, 138 - 0013 - 8000,
// (138)0013-8000, and, standing alone (see standsAlone), 138/0013/8000,
// 138_0013_8000 and 138.0013.8000; with an optional +86, 86 or 0086 in
// front (+86 138 0013 8000). Dashes of every kind come here as '-'
// (narrow). The caller tries it where no digit precedes, and checks that
// no digit follows. strict reports a group separated by '/', '_' or '.',
// which ids and versions use too (SKU_150_2024_1130, v150.2024.1130).
func groupedMobileLen(s string) (n int, strict bool) {
	if n, strict := mobileLen(s); n > 0 {
		return n, strict
	}
	i := 0
	switch {
	case strings.HasPrefix(s, "+86"):
		i = 3
	case strings.HasPrefix(s, "0086"):
		i = 4
	case strings.HasPrefix(s, "86"):
		i = 2
	default:
		return 0, false
	}
	var sep byte
	if i < len(s) && (s[i] == ' ' || s[i] == '-' || isStrictSep(s[i])) {
		sep = s[i]
		i++
	}
	if n, strict := mobileLen(s[i:]); n > 0 {
		if !isStrictSep(sep) {
			return i + n, strict
		}
		// +86.138.0013.8000: a '/', '_' or '.' after the country code
		// counts only where the number's own groups are split by the
		// same character (never +86.13800138000, a version's tail).
		if strict && strings.IndexByte(s[i:i+n], sep) >= 0 {
			return i + n, true
		}
	}
	return 0, false
}

// mobileLen is groupedMobileLen without the country code. Groups split by
// '/', '_' or '.' (strict) count only when both splits are that same
// character: 138.0013.8000, never 138.00138000 or 138_0013-8000 (a
// version, a date, an amount).
func mobileLen(s string) (n int, strict bool) {
	i := 0
	paren := i < len(s) && s[i] == '('
	if paren {
		i++
	}
	if i+3 > len(s) || s[i] != '1' || s[i+1] < '3' || s[i+1] > '9' || !isDigit(s[i+2]) {
		return 0, false
	}
	i += 3
	if paren {
		if i == len(s) || s[i] != ')' {
			return 0, false
		}
		i++
	}
	var seps [2]byte
	for g := range 2 {
		k, sep := mobileSepLen(s[i:])
		seps[g] = sep
		i += k
		if i+4 > len(s) || !allDigits(s[i:i+4]) {
			return 0, false
		}
		i += 4
	}
	strict = isStrictSep(seps[0]) || isStrictSep(seps[1])
	if strict && seps[0] != seps[1] {
		return 0, false
	}
	return i, strict
}

func isStrictSep(c byte) bool {
	return c == '/' || c == '_' || c == '.' || c == ',' || c == '~' || c == '*'
}

// mobileSepLen is the length of what separates two groups of a mobile
// number at the start of s, and the separator: one of - / _ . , ~ * (a
// dash perhaps doubled: 138 -- 0013 -- 8000) with up to four spaces on
// either side, or one to four spaces (sep ' '), or nothing (sep 0). A tab
// or a line break counts as a space (a provider's message may be laid out
// so: 139\t8765\t4321; a black-box review found 138   0013   8000).
func mobileSepLen(s string) (n int, sep byte) {
	i := 0
	for i < len(s) && i < maxSpaces && isSpaceByte(s[i]) {
		i++
	}
	if i < len(s) && strings.IndexByte("-/_.,~*", s[i]) >= 0 {
		sep = s[i]
		i++
		if sep == '-' && i < len(s) && s[i] == '-' {
			i++
		}
		for j := 0; i < len(s) && j < maxSpaces && isSpaceByte(s[i]); j++ {
			i++
		}
		return i, sep
	}
	if i > 0 {
		sep = ' '
	}
	return i, sep
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// standsAlone reports whether s[i:j], a number whose groups a '/', '_' or
// '.' separates, stands alone: before it, no letter, digit or one of
// _ / . - \\ (a JSON escape such as \n before it counts as a space); after
// it, no letter, digit or one of _ / - + (a '.' only where no letter or
// digit follows it: it may end a sentence). In an id, a version or a file
// name (SKU_150_2024_1130, v150.2024.1130, 150.2024.1130-beta,
// 150_2024_1130.tar.gz) the groups are not a phone number.
func standsAlone(s string, i, j int) bool {
	if i > 0 {
		c := s[i-1]
		escape := i > 1 && s[i-2] == '\\' && strings.IndexByte("nrtbf", c) >= 0
		if !escape && (isAlnumByte(c) || strings.IndexByte("_/.-\\", c) >= 0) {
			return false // (a '\\' right before: a path, C:\\150.2024.1130)
		}
	}
	if j == len(s) {
		return true
	}
	c := s[j]
	if c == '.' {
		return j+1 == len(s) || !isAlnumByte(s[j+1])
	}
	return !isAlnumByte(c) && strings.IndexByte("_/-+", c) < 0
}

// groupSeps are the bytes that may separate the groups of a phone number
// (see groupedMobileLen and intlGroupedLen).
const groupSeps = " -/_.(),~*\t\n\r"

// isGroupSep tells the bytes of groupSeps.
var isGroupSep = func() (t [256]bool) {
	for i := 0; i < len(groupSeps); i++ {
		t[groupSeps[i]] = true
	}
	return t
}()

// maxSpaces is the most spaces mobileSepLen takes on either side of a
// separator, or alone.
const maxSpaces = 4

// maxSepRun is the most separator bytes between two groups (mobileSepLen:
// a doubled dash with maxSpaces spaces on either side).
const maxSepRun = 2*maxSpaces + 2

// isPhone reports whether a whole digit run is a phone number: a mainland
// mobile number (11 digits, 1[3-9]…), optionally prefixed 86 or +86, or an
// international +number of 8 to 15 digits. Longer or shorter runs (ids,
// millisecond timestamps) are not phone numbers.
func isPhone(run string) bool {
	plus := strings.HasPrefix(run, "+")
	d := strings.TrimPrefix(run, "+")
	if len(d) == 13 && strings.HasPrefix(d, "86") {
		d = d[2:]
	} else if len(d) == 15 && strings.HasPrefix(d, "0086") {
		d = d[4:]
	}
	if len(d) == 11 && d[0] == '1' && d[1] >= '3' && d[1] <= '9' {
		return true
	}
	return plus && len(d) >= 8 && len(d) <= 15
}

// MaskPhones replaces every phone number in s by its first three and last
// four digits around "****", the way providers show them (158****8558):
// a run of digits that is a phone number (isPhone), and a mainland mobile
// number written in groups (138-0013-8000 and +86 138 0013 8000 come out
// 138****8000 and 861****8000).
//
// Full-width digits (１３８…, as Chinese input methods type them, with
// their plus and hyphen) and no-break and ideographic spaces count as
// digits and spaces: a string with a phone number
// so written comes back in ASCII digits, masked; one without comes back as
// it is.
//
// A number whose characters are written as escapes is found too: JSON's
// \u0031, HTML's &#49; and &#x31;, percent-encoding (%31, and %EF%BC%91
// for a full-width digit) and JavaScript's %u0031, as a provider may quote
// a request it was sent. Such escapes of digits, plus signs, separators
// and spaces are then given decoded, the number masked; escapes of other
// characters stay as they are, so JSON, a URL or HTML stays well-formed.
func MaskPhones(s string) string {
	m := maskPhonesAsWritten(s)
	if d, ok := unescape(m, isPhoneRune); ok {
		if dm := maskPhonesAsWritten(d); dm != d {
			return dm
		}
	}
	return m
}

// maskPhonesAsWritten is MaskPhones without decoding escapes.
func maskPhonesAsWritten(s string) string {
	if n, ok := narrowDigits(s); ok {
		if m := maskPhones(n); m != n {
			return asWritten(s, n, m, false)
		}
		// Zero-width characters read as spaces keep two numbers apart;
		// dropped, they may join the digits of one (1\u200b3800138000,
		// as anti-copy text writes them).
		if strings.ContainsFunc(s, isZeroWidth) {
			d := strings.Map(func(r rune) rune {
				if isZeroWidth(r) {
					return -1
				}
				return narrow(r)
			}, s)
			if m := maskPhones(d); m != d {
				return asWritten(s, d, m, true)
			}
		}
		return s
	}
	return maskPhones(s)
}

// maxAligned bounds the runes asWritten aligns (its table grows with the
// square of the text's length).
const maxAligned = 1024

// asWritten returns masked, the masking of narrowed (s with its digits,
// dashes and dots narrowed, and its zero-width characters dropped when
// dropped is set), with the text it left alone as s wrote it: a note's
// "コーヒー" stays so, not "コ-ヒ-". It aligns narrowed with masked (a
// longest common subsequence of runes): a rune they share is s's own
// (except digits and zero-width characters, written as masked writes
// them: ASCII digits, spaces), a rune only masked holds is masked's, a
// rune only narrowed holds is dropped; so the result, narrowed, is masked
// itself, and reveals nothing masked does not. A text too long to align
// is masked as narrowed.
func asWritten(s, narrowed, masked string, dropped bool) string {
	orig, n, m := []rune(s), []rune(narrowed), []rune(masked)
	if len(n) > maxAligned || len(m) > maxAligned {
		return masked
	}
	// at[i] is the rune of s that n[i] stands for.
	at := make([]int, 0, len(n))
	for i, r := range orig {
		if !dropped || !isZeroWidth(r) {
			at = append(at, i)
		}
	}
	if len(at) != len(n) {
		return masked
	}
	// lcs[i][j]: the longest common subsequence of n[i:] and m[j:].
	w := len(m) + 1
	lcs := make([]uint16, (len(n)+1)*w)
	for i := len(n) - 1; i >= 0; i-- {
		for j := len(m) - 1; j >= 0; j-- {
			switch {
			case n[i] == m[j]:
				lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
			case lcs[(i+1)*w+j] >= lcs[i*w+j+1]:
				lcs[i*w+j] = lcs[(i+1)*w+j]
			default:
				lcs[i*w+j] = lcs[i*w+j+1]
			}
		}
	}
	var b strings.Builder
	b.Grow(len(s))
	i, j := 0, 0
	for i < len(n) && j < len(m) {
		switch {
		case n[i] == m[j]:
			// s's own rune, but digits (the parts of a number left
			// visible) and zero-width characters (read as spaces) as
			// masked writes them.
			if r := orig[at[i]]; isZeroWidth(r) || m[j] >= '0' && m[j] <= '9' {
				b.WriteRune(m[j])
			} else {
				b.WriteRune(r)
			}
			i++
			j++
		case lcs[(i+1)*w+j] >= lcs[i*w+j+1]:
			i++ // only narrowed holds it: dropped
		default:
			b.WriteRune(m[j]) // only masked holds it
			j++
		}
	}
	for ; j < len(m); j++ {
		b.WriteRune(m[j])
	}
	return b.String()
}

func isZeroWidth(r rune) bool {
	// Zero-width spaces and joiners, the word joiner and the invisible
	// operators after it, the byte-order mark, the soft hyphen (shown only
	// at a line break) and the Mongolian vowel separator.
	return r >= '\u200b' && r <= '\u200d' || r >= '\u2060' && r <= '\u2064' || r == '\ufeff' || r == '\u00ad' || r == '\u180e'
}

// narrowDigits returns s with the digits of every script (full-width
// U+FF10–U+FF19, Arabic-Indic, mathematical bold, …), full-width and
// small plus signs, and every dash (Unicode's dash punctuation, the minus
// sign, the swung dash, the Japanese long vowel mark written as a dash),
// as ASCII ones, middle dots as dots, no-break, ideographic and zero-width
// spaces as spaces, and whether it held any.
func narrowDigits(s string) (string, bool) {
	if isASCII(s) {
		return s, false
	}
	digits, changed := 0, false
	for _, r := range s {
		n := narrow(r)
		changed = changed || n != r
		if n >= '0' && n <= '9' {
			digits++
		}
	}
	if !changed || digits < 8 {
		// Nothing narrowed, or too few digits for a phone number: the
		// text as it is says as much.
		return s, false
	}
	return strings.Map(narrow, s), true
}

func narrow(r rune) rune {
	switch {
	case plainRune(r):
		return r
	case r >= '\uff10' && r <= '\uff19':
		return '0' + (r - '\uff10')
	case r == '\uff0b' || r == '\ufe62':
		return '+' // full-width and small plus
	case unicode.Is(unicode.Pd, r) || r == '\u2212' || r == '\u2053' || r == '\u30fc' || r == '\uff70':
		return '-' // hyphens and dashes (full-width, wave, small, …), minus, swung dash, long vowel marks
	case r == '\u00b7' || r == '\u30fb' || r == '\uff65' || r == '\u2027':
		return '.' // middle dots, hyphenation point
	case r == '\uff0c' || r == '\u3001':
		return ',' // full-width and ideographic commas
	case r == '\uff5e':
		return '~' // full-width tilde
	case r == '\uff0a':
		return '*' // full-width asterisk
	case r == '\u00a0' || r == '\u3000' || r >= '\u2000' && r <= '\u200a' || r == '\u202f' || r == '\u205f':
		return ' ' // no-break, ideographic, thin and other spaces
	case isZeroWidth(r):
		return ' ' // zero-width: a space, which never joins two numbers into one
	case unicode.Is(unicode.Nd, r):
		return '0' + digitValue(r)
	}
	return r
}

// plainRune reports the common characters narrow leaves as they are,
// without a look into Unicode's tables: ASCII, the rest of the alphabets
// before the first non-ASCII decimal digit (U+0660) but for the few
// narrow reads, kana but for their dashes and middle dot, CJK ideographs
// and Hangul syllables.
func plainRune(r rune) bool {
	switch {
	case r < utf8.RuneSelf:
		return true
	case r < '\u0660':
		return r != '\u00a0' && r != '\u00ad' && r != '\u00b7' && r != '\u058a' && r != '\u05be'
	case r >= '\u3040' && r <= '\u30ff':
		return r != '\u30a0' && r != '\u30fb' && r != '\u30fc'
	}
	return r >= '\u4e00' && r <= '\u9fff' || r >= '\uac00' && r <= '\ud7a3'
}

// digitValue is the value of r, a decimal digit (unicode.Nd) outside
// ASCII: each range of Unicode's decimal digits runs from a zero in sets
// of ten (TestDigitRangesStartAtZero).
func digitValue(r rune) rune {
	for _, g := range unicode.Nd.R16 {
		if rune(g.Lo) <= r && r <= rune(g.Hi) {
			return (r - rune(g.Lo)) % 10
		}
	}
	for _, g := range unicode.Nd.R32 {
		if rune(g.Lo) <= r && r <= rune(g.Hi) {
			return (r - rune(g.Lo)) % 10
		}
	}
	return 0
}

func maskPhones(s string) string {
	if !hasDigitRun(s, 8) {
		return s // no run long enough to be a phone number: most strings
	}
	if hasPlainRun(s, 8) {
		s = digitRun.ReplaceAllStringFunc(s, func(m string) string {
			if !isPhone(m) {
				return m
			}
			return maskDigits(m)
		})
	}
	if !strings.ContainsAny(s, groupSeps) {
		return s
	}
	// Tried at every place a number starts, not only after the last
	// match: in "586 138 0013 8000" the match "86 138 0013 8000" touches a
	// digit and is no phone number, but "138 0013 8000" is.
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); i++ {
		if i > 0 && isDigit(s[i-1]) || !isDigit(s[i]) && s[i] != '+' && s[i] != '(' {
			continue
		}
		if c := s[i]; c != '1' && c != '8' && c != '0' && c != '+' && c != '(' {
			continue // no phone number starts so: skip the matchers
		}
		j := i
		if n, strict := groupedMobileLen(s[i:]); n > 0 && (!strict || standsAlone(s, i, i+n)) &&
			(i+n == len(s) || !isDigit(s[i+n])) {
			j = i + n
		} else if n, dotted := intlGroupedLen(s[i:]); n > 0 && (i+n == len(s) || !isDigit(s[i+n])) && (!dotted || standsAlone(s, i, i+n)) {
			j = i + n
		} else {
			continue // none, or part of a longer number
		}
		b.WriteString(s[last:i])
		b.WriteString(maskDigits(strings.Map(func(r rune) rune {
			if r == '+' || '0' <= r && r <= '9' {
				return r
			}
			return -1
		}, s[i:j])))
		last = j
		i = j - 1
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// intlGroupedLen is the length of the international phone number written
// in groups at the start of s, 0 if there is none: a '+', then 8 to 15
// digits in groups a single space or hyphen apart, or a dot apart
// (+1.415.555.2671, +1 415.555.2671: dotted, which the caller takes only
// standing alone, see standsAlone), a group (an area code, a trunk prefix) perhaps in
// parentheses, which the next may follow directly: +44 7700 900123,
// +1 (415) 555-0100, +1 (415)555-0100, +44 (0)20 7946 0958,
// +49-151-1234-5678. Ungrouped +numbers are isPhone's; without the '+' a
// run of groups is as likely a date or an id.
func intlGroupedLen(s string) (n int, dotted bool) {
	if len(s) < 2 || s[0] != '+' || !isDigit(s[1]) {
		return 0, false
	}
	digits, end := 0, 0
	var lens []int  // each group's digits
	var seps []byte // what follows each group but the last
	var paren bool  // a group in parentheses met
	for i := 1; i < len(s); {
		j, p := i, false
		if s[j] == '(' {
			p = true
			j++
		}
		k := j
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		if k == j || p && (k == len(s) || s[k] != ')') {
			break
		}
		digits += k - j
		lens = append(lens, k-j)
		if p {
			paren = true
			k++
		}
		end = k
		switch {
		case k+1 < len(s) && (s[k] == ' ' || s[k] == '-' || s[k] == '.') && (isDigit(s[k+1]) || s[k+1] == '(' && s[k] != '.'):
			seps = append(seps, s[k])
			i = k + 1
		case p && k < len(s) && isDigit(s[k]):
			seps = append(seps, 0)
			i = k // +1 (415)555-0100, +44 (0)20 7946 0958
		default:
			i = len(s) // the number ends here
		}
	}
	if len(lens) < 2 || digits < 8 || digits > 15 {
		return 0, false
	}
	if k := bytes.IndexByte(seps, '.'); k >= 0 {
		// Dotted (+1.415.555.2671, +1 415.555.2671): every split a dot but
		// perhaps a space after the country code; three groups or more,
		// the first of 1 to 3 digits, the others of 2 to 4; no
		// parentheses. A signed decimal (+37.7749295, +0.000012345) is not
		// one.
		if paren || len(lens) < 3 || lens[0] > 3 {
			return 0, false
		}
		for g, c := range seps {
			if c != '.' && !(g == 0 && c == ' ') {
				return 0, false
			}
		}
		for _, l := range lens[1:] {
			if l < 2 || l > 4 {
				return 0, false
			}
		}
		return end, true
	}
	return end, false
}

// maskedPhone is a phone number as MaskPhones shows it.
var maskedPhone = regexp.MustCompile(`[0-9]{3}\*{4}[0-9]{4}`)

// HidePhones is MaskPhones with nothing of a number kept: each phone
// number, and each one already masked (158****8558), becomes "***". For
// text shown to whoever holds an API token rather than to an operator: the
// seven digits a mask keeps leave a number to guess in ten thousand tries.
func HidePhones(s string) string {
	return maskedPhone.ReplaceAllString(MaskPhones(s), "***")
}

// HideParams is MaskParams with nothing of a personal value kept: each
// personal-data field not empty is "***", and phone numbers anywhere are
// hidden (HidePhones).
func HideParams(params json.RawMessage, sensitive []string) json.RawMessage {
	params = Canonical(params)
	var m map[string]json.RawMessage
	if json.Unmarshal(params, &m) != nil {
		return maskJSON(params, HidePhones)
	}
	names := map[string]bool{}
	for _, n := range sensitive {
		names[strings.ToLower(n)] = true
	}
	for k, raw := range m {
		lk := strings.ToLower(k)
		if (names[lk] || personalKey(k)) && string(raw) != "null" && string(raw) != `""` {
			m[k] = json.RawMessage(`"***"`)
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return maskJSON(out, HidePhones)
}

func maskDigits(run string) string {
	d := strings.TrimPrefix(run, "+")
	return d[:3] + "****" + d[len(d)-4:]
}

// hasDigitRun reports whether s holds n ASCII digits in a row, counting
// digits that up to maxSepRun of groupSeps split into groups (138 - 0013,
// (415) 555) as in a row.
func hasDigitRun(s string, n int) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			if run++; run >= n {
				return true
			}
			continue
		}
		j := i
		for j < len(s) && j-i <= maxSepRun && isGroupSep[s[j]] {
			j++
		}
		if j > i && j-i <= maxSepRun && j < len(s) && isDigit(s[j]) {
			i = j - 1 // a separator between groups (or before the first)
			continue
		}
		run = 0
	}
	return false
}

// hasPlainRun reports whether s holds n ASCII digits in a row, nothing
// between them.
func hasPlainRun(s string, n int) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			run = 0
		} else if run++; run >= n {
			return true
		}
	}
	return false
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// IsPhoneNumber reports whether s is one phone number written alone, as
// MaskPhones finds one: digits and separators (space + - ( ) . _ /) only,
// and either a mainland mobile number (11 digits, with 86 or 0086 before
// them or not: 13800138000, 138_0013_8000, +86 138 0013 8000) or an
// international number written with its + (+44 7700 900123). Digits
// beside a number (20241130-13800138000) are not one number alone.
func IsPhoneNumber(s string) bool {
	var d []byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			d = append(d, c)
		case !strings.ContainsRune(" +-()._/", rune(c)):
			return false
		}
	}
	if len(d) == 0 || MaskPhones(s) == s {
		return false
	}
	if strings.HasPrefix(strings.TrimLeft(s, " ("), "+") {
		return true
	}
	mobile := string(d)
	for _, cc := range []string{"0086", "86"} {
		if len(mobile) == 11+len(cc) && strings.HasPrefix(mobile, cc) {
			mobile = mobile[len(cc):]
		}
	}
	return len(mobile) == 11 && mobile[0] == '1' && '3' <= mobile[1] && mobile[1] <= '9'
}

// phoneOnly reports whether s holds nothing but what a written phone
// number does: digits, spaces and + - ( ) . separators.
func phoneOnly(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9') && !strings.ContainsRune(" +-().", c) {
			return false
		}
	}
	return true
}

// MaskName masks a personal name or nickname: it keeps the first and last
// rune and hides the rest (of two runes it keeps the first, of one none:
// "李" would be the whole name); a name that is a phone number alone keeps the
// usual phone mask. A name beside a phone number ("王小明 13912345678") is
// masked as a name: the number's mask alone would leave the name in clear.
func MaskName(s string) string {
	if m := MaskPhones(s); m != s && phoneOnly(s) {
		return m
	}
	r := []rune(s)
	switch {
	case len(r) == 0:
		return ""
	case len(r) == 1:
		return "*"
	case len(r) == 2:
		return string(r[0]) + "*"
	default:
		return string(r[0]) + strings.Repeat("*", min(len(r)-2, 4)) + string(r[len(r)-1])
	}
}

// Redact returns s with every non-empty secret replaced by "***" and phone
// numbers masked. Providers run every message from a response or an error
// through it before it reaches an *Error or a log. A secret of fewer than
// four bytes (a short user name) is replaced only where it stands as a word
// of its own when it is ASCII, so that "Bob" is hidden but "a" does not
// eat every "a"; a short non-ASCII one (a one-character Chinese name)
// everywhere.
//
// A secret is also replaced as it appears inside JSON or a URL: a
// provider may quote the request in its answer, and the request wrote the
// value escaped (encoding/json writes "&" as \u0026; a server may write
// every non-ASCII character as \uXXXX, or percent-encode it).
//
// A secret of at least foldMin bytes is replaced with its ASCII letters in
// any case too (a provider may quote a name upper- or lower-cased); a
// shorter one only as written, so that a short name does not eat the
// words it hides in another case ("Test" in "latest").
func Redact(s string, secrets ...string) string {
	return redact(s, true, secrets)
}

// RedactCode is Redact for a provider's error code, which callers compare
// with documented codes: secrets only as written (a customer id "value"
// must not make InvalidParameterValue into InvalidParameter***).
func RedactCode(s string, secrets ...string) string {
	return redact(s, false, secrets)
}

func redact(s string, fold bool, secrets []string) string {
	out := redactSecrets(s, fold, secrets)
	// MaskPhones writes full-width digits as ASCII where the text holds a
	// phone number, so a secret quoted in full-width characters would
	// come out whole: what it gives is searched again.
	masked := func(s string) string { return redactSecrets(MaskPhones(s), fold, secrets) }
	// A secret quoted in full-width characters (ＴｃＳｅｃｒｅｔ８８, as
	// a CJK input method types it) is searched in the text with them
	// narrowed, given narrowed when it held one.
	if n, ok := narrowWidth(out); ok {
		if nr := redactSecrets(n, fold, secrets); nr != n {
			out = nr
		}
	}
	// A secret may be quoted with every character escaped (\u0054\u006f…,
	// &#84;&#111;…, %54%6F…), or in a mix of escapes that none of
	// escapedForms writes: the text with its escapes decoded is searched
	// too, and given decoded when it held one.
	if d, ok := unescape(out, anyRune); ok || strings.IndexByte(out, '&') >= 0 {
		if strings.IndexByte(d, '&') >= 0 {
			d = html.UnescapeString(d)
		}
		if n, ok := narrowWidth(d); ok {
			d = n
		}
		if d != out {
			if dr := redactSecrets(d, fold, secrets); dr != d {
				return masked(dr)
			}
		}
	}
	return masked(out)
}

// narrowWidth is s with its full-width forms of ASCII characters (U+FF01 to
// U+FF5E) and the ideographic space written as ASCII; false when it held
// none.
func narrowWidth(s string) (string, bool) {
	if !strings.ContainsFunc(s, func(r rune) bool { return r == '\u3000' || r >= '\uff01' && r <= '\uff5e' }) {
		return s, false
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\u3000':
			return ' '
		case r >= '\uff01' && r <= '\uff5e':
			return r - 0xff01 + '!'
		}
		return r
	}, s), true
}

// redactSecrets replaces the secrets in s, as written and in their
// escapedForms.
func redactSecrets(s string, fold bool, secrets []string) string {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		f := fold && len(sec) >= foldMin
		for _, v := range escapedForms(sec) {
			s = redactOne(s, v, f)
		}
		s = redactOne(s, sec, f)
	}
	return s
}

// foldMin is the shortest secret Redact replaces in any case.
const foldMin = 8

// redactOne replaces sec in s (fold: its ASCII letters in any case):
// everywhere when sec is long or not ASCII, else where it stands as a
// word.
func redactOne(s, sec string, fold bool) string {
	word := len(sec) < 4 && isASCII(sec)
	if !fold {
		if !word {
			return strings.ReplaceAll(s, sec, "***")
		}
		return replaceFold(s, sec, "***", true, false)
	}
	return replaceFold(s, sec, "***", word, true)
}

// escapedForms is sec as JSON, URLs and HTML may write it, each form
// other than sec itself: JSON with and without HTML escaping, each also
// with every non-ASCII character escaped (lower- and upper-case hex) and
// with "/" escaped (as PHP writes it); percent-encoded for a query and for
// a path, in upper- and lower-case hex; as JavaScript's escape() writes
// it (%E9, %u5F20); and HTML-escaped (&amp;), every non-ASCII character as
// a numeric character reference, decimal and hex (&#24352;, &#x5f20;); and
// inside base64 (a secret of base64Min bytes or more). A legacy encoding
// (GBK percent-encoded) is not among them.
func escapedForms(sec string) []string {
	var forms []string
	add := func(f string) {
		if f != "" && f != sec && !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	var b bytes.Buffer
	for _, html := range []bool{true, false} {
		b.Reset()
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(sec) != nil {
			continue
		}
		q := strings.TrimSuffix(b.String(), "\n")
		q = strings.TrimSuffix(strings.TrimPrefix(q, `"`), `"`)
		for _, f := range []string{q, asciiEscaped(q, `\u%04x`), asciiEscaped(q, `\u%04X`)} {
			add(f)
			add(strings.ReplaceAll(f, "/", `\/`))
		}
	}
	for _, f := range []string{url.QueryEscape(sec), url.PathEscape(sec)} {
		add(f)
		add(lowerPercent(f))
	}
	for _, lower := range []bool{false, true} {
		add(jsEscape(sec, lower))
	}
	for _, format := range []string{`&#%d;`, `&#x%x;`, `&#x%X;`} {
		add(runesEscaped(html.EscapeString(sec), format))
	}
	if len(sec) >= base64Min {
		// Inside base64 (a provider that echoes the request so, a black-
		// box review found): the characters only sec's bytes make, at
		// each of the three places it may start within a 3-byte group,
		// in the standard and the URL alphabet.
		for o := range 3 {
			b := []byte(sec[o:])
			b = b[:len(b)/3*3]
			add(base64.StdEncoding.EncodeToString(b))
			add(base64.URLEncoding.EncodeToString(b))
		}
	}
	return forms
}

// base64Min is the shortest secret escapedForms looks for inside base64:
// a shorter one leaves too few characters of its own to tell.
const base64Min = 8

// jsEscape is s as JavaScript's escape() writes it: A-Z a-z 0-9 @ * _ + -
// . / as they are, other characters below U+0100 as %XX (their Latin-1
// byte), the others as %uXXXX (UTF-16 units); lower: hex in lower case.
func jsEscape(s string, lower bool) string {
	f1, f2 := "%%%02X", "%%u%04X"
	if lower {
		f1, f2 = "%%%02x", "%%u%04x"
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x80 && (isAlnumByte(byte(r)) || strings.ContainsRune("@*_+-./", r)):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, f1, r)
		default:
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, f2, u)
			}
		}
	}
	return b.String()
}

// runesEscaped is s with every non-ASCII character written in format,
// given the character's code point.
func runesEscaped(s, format string) string { return nonASCIIEscaped(s, format, false) }

// asciiEscaped is s with every non-ASCII character written as JSON's
// \uXXXX escapes (UTF-16), in format.
func asciiEscaped(s, format string) string { return nonASCIIEscaped(s, format, true) }

// nonASCIIEscaped is s with every non-ASCII character written in format,
// given its code point, or each of its UTF-16 units (units).
func nonASCIIEscaped(s, format string, units bool) string {
	if isASCII(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x80:
			b.WriteRune(r)
		case units:
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, format, u)
			}
		default:
			fmt.Fprintf(&b, format, r)
		}
	}
	return b.String()
}

// lowerPercent is s with its percent escapes in lower-case hex.
func lowerPercent(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = toLowerHex(b[i+1]), toLowerHex(b[i+2])
		}
	}
	return string(b)
}

func toLowerHex(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// replaceFold replaces each occurrence of w in s (fold: ASCII letters
// matched in any case) by with; word: only where no ASCII letter or digit
// touches it on either side.
func replaceFold(s, w, with string, word, fold bool) string {
	index := strings.Index
	if fold {
		index = indexFold
	}
	var b strings.Builder
	for {
		i := index(s, w)
		if i < 0 {
			if b.Len() == 0 {
				return s
			}
			b.WriteString(s)
			return b.String()
		}
		end := i + len(w)
		if !word || (i == 0 || !isAlnumByte(s[i-1])) && (end == len(s) || !isAlnumByte(s[end])) {
			b.WriteString(s[:i])
			b.WriteString(with)
		} else {
			b.WriteString(s[:end])
		}
		s = s[end:]
	}
}

// indexFold is strings.Index with ASCII letters matched in any case (the
// other bytes exactly, so that a match is as long as sub).
func indexFold(s, sub string) int {
	if sub == "" {
		return -1
	}
	if !strings.ContainsFunc(sub, func(r rune) bool { return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' }) {
		return strings.Index(s, sub) // no letter to fold
	}
	lo, up := lowerASCII(sub[0]), upperASCII(sub[0])
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i] != lo && s[i] != up {
			continue
		}
		j := 1
		for j < len(sub) && lowerASCII(s[i+j]) == lowerASCII(sub[j]) {
			j++
		}
		if j == len(sub) {
			return i
		}
	}
	return -1
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

func isAlnumByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// Truncate shortens s to at most n bytes on a rune boundary, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// personalKeys are param names masked whatever the provider declares,
// compared as personalKey normalises them.
var personalKeys = map[string]bool{"name": true, "username": true, "nickname": true, "realname": true, "fullname": true,
	"firstname": true, "lastname": true, "middlename": true, "surname": true, "givenname": true, "familyname": true,
	"displayname": true, "customername": true, "contactname": true, "phone": true, "phonenumber": true, "mobile": true,
	"mobilephone": true, "cellphone": true, "tel": true, "telephone": true, "email": true}

// personalSuffixes end param names that hold a person's name or number
// whatever comes before (contactPhone, buyer_mobile, ownerUserName).
var personalSuffixes = []string{"username", "realname", "fullname", "nickname", "phone", "phonenumber", "mobile", "telephone"}

// personalKey reports whether a param named k holds personal data by its
// name alone: k without case, '_', '-', '.' and spaces is one of
// personalKeys or ends with one of personalSuffixes. (Not any name ending
// in "name": instanceName or hostName names no person.)
func personalKey(k string) bool {
	n := strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.', ' ':
			return -1
		}
		return unicode.ToLower(r)
	}, k)
	if personalKeys[n] {
		return true
	}
	for _, suf := range personalSuffixes {
		if strings.HasSuffix(n, suf) {
			return true
		}
	}
	return false
}

// Canonical returns the JSON value b re-encoded from its decoded form, so
// that a mask sees what a reader would: escapes come out as the
// characters they stand for (`"\u0031\u0033\u0038…"` as `"138…"`), object
// keys sorted. b comes back as it is when it is not one JSON value.
func Canonical(b []byte) []byte {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil || d.More() {
		return b
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return b
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n"))
}

// MaskParams returns params with the named personal-data fields (and
// fields whose names say they hold a name or phone number) masked with
// MaskName, a value of any other kind than a string there as "***", and
// phone numbers masked anywhere, in the decoded text (Canonical): an
// escaped digit hides nothing. Params that are not a JSON object come back
// with phone numbers masked.
func MaskParams(params json.RawMessage, sensitive []string) json.RawMessage {
	params = Canonical(params)
	var m map[string]json.RawMessage
	if json.Unmarshal(params, &m) != nil {
		return maskJSON(params, MaskPhones)
	}
	names := map[string]bool{}
	for _, n := range sensitive {
		names[strings.ToLower(n)] = true
	}
	for k, raw := range m {
		var v string
		lk := strings.ToLower(k)
		switch {
		case !names[lk] && !personalKey(k), string(raw) == "null":
		case json.Unmarshal(raw, &v) == nil:
			m[k], _ = json.Marshal(MaskName(v))
		default:
			// A list, an object or a number where a name or a phone
			// number belongs: shown as nothing of it.
			m[k] = json.RawMessage(`"***"`)
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return maskJSON(out, MaskPhones)
}

// MaskPhonesJSON is MaskPhones for JSON text: every string in it (object
// keys too) and every number is masked as a value of its own, and the
// text re-encoded without HTML escaping, so that it stays JSON (a number
// that is a phone number comes back a string, masked) and an escape the
// encoding wrote (& as \u0026) hides nothing. Text that is not JSON is
// masked as text.
func MaskPhonesJSON(b []byte) []byte { return maskJSON(b, MaskPhones) }

// maskJSON applies mask to every string and number in the JSON text b,
// as MaskPhonesJSON describes.
func maskJSON(b []byte, mask func(string) string) []byte {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return []byte(mask(string(b)))
	}
	if _, err := dec.Token(); err != io.EOF {
		return []byte(mask(string(b))) // more after the value
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			return mask(x)
		case json.Number:
			if m := mask(string(x)); m != string(x) {
				return m
			}
			return x
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		case map[string]any:
			out := make(map[string]any, len(x))
			for _, k := range slices.Sorted(maps.Keys(x)) {
				mk := mask(k)
				for n := 2; ; n++ {
					// Two keys masked alike (two phone numbers): both
					// kept, told apart.
					if _, dup := out[mk]; !dup {
						break
					}
					mk = mask(k) + "#" + strconv.Itoa(n)
				}
				out[mk] = walk(x[k])
			}
			return out
		}
		return v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(walk(v)) != nil {
		return []byte(mask(string(b)))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// isPhoneRune reports the characters a phone number is written with:
// digits, plus signs, the separators of its groups and spaces, in ASCII
// and in the full-width and other forms MaskPhones reads (narrow).
func isPhoneRune(r rune) bool {
	return r < utf8.RuneSelf && (isDigit(byte(r)) || strings.IndexByte("+ "+groupSeps, byte(r)) >= 0) ||
		narrow(r) != r
}

func anyRune(rune) bool { return true }

// unescape decodes, in s, the escapes whose character keep accepts: JSON's
// \uXXXX (a UTF-16 surrogate pair as one character), HTML's numeric
// character references (&#49; &#x31;), JavaScript's %uXXXX, and
// percent-encoded UTF-8 (%31, %EF%BC%91). Other escapes, and malformed
// ones, stay as written. ok reports that something was decoded.
func unescape(s string, keep func(rune) bool) (string, bool) {
	if !strings.Contains(s, `\u`) && !strings.Contains(s, "&#") && strings.IndexByte(s, '%') < 0 {
		return s, false
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == '\\' {
			i += 2 // an escaped backslash: what follows it is text
			continue
		}
		r, n := escapeAt(s, i)
		if n == 0 || !keep(r) {
			i++
			continue
		}
		b.WriteString(s[last:i])
		b.WriteRune(r)
		i += n
		last = i
	}
	if last == 0 {
		return s, false
	}
	b.WriteString(s[last:])
	return b.String(), true
}

// escapeAt decodes the escape at s[i:], if there is one: its character and
// its length in s (0 for none).
func escapeAt(s string, i int) (rune, int) {
	switch s[i] {
	case '\\':
		r, ok := hexAt(s, i+2, 4, i+1 < len(s) && s[i+1] == 'u')
		if !ok {
			return 0, 0
		}
		if utf16.IsSurrogate(r) {
			r2, ok := hexAt(s, i+8, 4, i+7 < len(s) && s[i+6] == '\\' && s[i+7] == 'u')
			if c := utf16.DecodeRune(r, r2); ok && c != utf8.RuneError {
				return c, 12
			}
			return 0, 0
		}
		return r, 6
	case '&':
		if i+3 >= len(s) || s[i+1] != '#' {
			return 0, 0
		}
		j, base := i+2, 10
		if s[j] == 'x' || s[j] == 'X' {
			j, base = j+1, 16
		}
		k := j
		var r rune
		for k < len(s) && k-j < 8 {
			d := hexVal(s[k])
			if d < 0 || d >= base {
				break
			}
			r = r*rune(base) + rune(d)
			k++
		}
		if k == j || k == len(s) || s[k] != ';' || r == 0 || r > unicode.MaxRune || utf16.IsSurrogate(r) {
			return 0, 0
		}
		return r, k + 1 - i
	case '%':
		if i+1 < len(s) && s[i+1] == 'u' {
			if r, ok := hexAt(s, i+2, 4, true); ok && !utf16.IsSurrogate(r) {
				return r, 6
			}
			return 0, 0
		}
		// Percent-encoded UTF-8: one to four bytes that decode to one
		// character.
		var buf [utf8.UTFMax]byte
		n := 0
		for j := i; n < len(buf) && j+2 < len(s) && s[j] == '%'; j += 3 {
			hi, lo := hexVal(s[j+1]), hexVal(s[j+2])
			if hi < 0 || lo < 0 {
				break
			}
			buf[n] = byte(hi<<4 | lo)
			n++
			if utf8.FullRune(buf[:n]) {
				break
			}
		}
		if n == 0 {
			return 0, 0
		}
		r, size := utf8.DecodeRune(buf[:n])
		if r == utf8.RuneError || size != n {
			return 0, 0
		}
		return r, 3 * n
	}
	return 0, 0
}

// hexAt reads n hex digits at s[i:] as a character, when ok.
func hexAt(s string, i, n int, ok bool) (rune, bool) {
	if !ok || i+n > len(s) {
		return 0, false
	}
	var r rune
	for k := i; k < i+n; k++ {
		d := hexVal(s[k])
		if d < 0 {
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// MayHoldName reports whether s may hold name (a user's name) as a provider
// could have rewritten it: both are compared by their letters and digits
// alone (spaces, hyphens and other punctuation dropped or changed), case
// folded, full-width forms read as ASCII and combining marks dropped; s may
// hold name whole, or any of its words of three letters or digits or more
// (reordered, or the name cut short), or any of its runs of two Han, Kana
// or Hangul characters or more. Redact hides a secret as it is written;
// a name a provider echoes may not be: the caller withholds the text
// instead.
func MayHoldName(s, name string) bool {
	if name == "" {
		return false
	}
	text := nameForm(s)
	if whole := nameForm(name); whole != "" && strings.Contains(text, whole) {
		return true
	}
	for _, w := range nameWords(name) {
		if strings.Contains(text, w) {
			return true
		}
	}
	return false
}

// MayHoldID reports whether s may hold id (a user's id, perhaps a login
// name or an e-mail address) whole, compared as MayHoldName compares a
// name: by letters and digits alone. An id under four of them is not
// looked for (it would match too much).
func MayHoldID(s, id string) bool {
	f := nameForm(id)
	return utf8.RuneCountInString(f) >= 4 && strings.Contains(nameForm(s), f)
}

// MayHoldIDPart reports whether a provider's message s may hold id (a
// user's id, perhaps a login name or an e-mail address) whole or in part:
// MayHoldID, or, compared by letters and digits alone and word by word
// (words split where neither a letter nor a digit stands, and where
// digits, Chinese, Japanese or Korean characters and other letters meet),
// a word of s that is one of id's words of five or more (zhangwei of
// zhangwei_1990, zhang of zhang.wei@example.com), one of six or more that
// begins id (an id cut short), or a short id (under four) whole; or any
// two Chinese, Japanese or Korean characters of id in a row anywhere in s.
// A message is judged so, not a code: an id echoed cut or in part is as
// personal as one echoed whole, and withholding a message that only looks
// like one costs the operator its words, never the order (a black-box
// review found "customer zhangwei" echoed for the CustomerId
// zhangwei_1990, and a userId echoed cut to ten characters). Word by word,
// "CustomerId does not exist" is not taken for Customer100001.
func MayHoldIDPart(s, id string) bool {
	f := nameForm(id)
	n := utf8.RuneCountInString(f)
	if n == 0 {
		return false
	}
	if MayHoldID(s, id) {
		return true
	}
	ids := idWords(id)
	var text string
	for _, w := range ids {
		if r := []rune(w); len(r) >= 2 && isIdeographic(w) {
			if text == "" {
				text = nameForm(s)
			}
			for i := 0; i+2 <= len(r); i++ {
				if strings.Contains(text, string(r[i:i+2])) {
					return true
				}
			}
		}
	}
	for _, mw := range idWords(s) {
		k := utf8.RuneCountInString(mw)
		if mw == f || k >= 6 && k < n && strings.HasPrefix(f, mw) {
			return true
		}
		if k >= 5 && slices.Contains(ids, mw) {
			return true
		}
	}
	return false
}

// idWords are s's words in nameForm: split where neither a letter nor a
// digit stands, and where digits, ideographs (Han, Kana, Hangul) and other
// letters meet (zhangwei1990: zhangwei, 1990; 用户zhangwei: 用户, zhangwei).
func idWords(s string) []string {
	var out []string
	class := func(r rune) int {
		switch {
		case unicode.IsDigit(r):
			return 0
		case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul):
			return 1
		}
		return 2
	}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsDigit(r) || r >= '\uFF01' && r <= '\uFF5E')
	}) {
		w := []rune(nameForm(f))
		start := 0
		for i := 1; i <= len(w); i++ {
			if i == len(w) || class(w[i]) != class(w[i-1]) {
				out = append(out, string(w[start:i]))
				start = i
			}
		}
	}
	return out
}

// nameForm is s by its letters and digits only, case folded, full-width
// forms narrowed and combining marks dropped.
func nameForm(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '\uFF01' && r <= '\uFF5E' {
			r -= 0xFEE0
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			r = unicode.ToLower(r)
			if base, ok := latinBase[r]; ok {
				r = base // what dropping its combining mark leaves of it decomposed
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// latinBase maps accented Latin letters (lower case) to their base letter.
var latinBase = func() map[rune]rune {
	m := map[rune]rune{}
	for base, accented := range map[rune]string{
		'a': "àáâãäåāăą", 'c': "çćĉċč", 'd': "ď", 'e': "èéêëēĕėęě", 'g': "ĝğġģ", 'h': "ĥ",
		'i': "ìíîïĩīĭįı", 'j': "ĵ", 'k': "ķ", 'l': "ĺļľ", 'n': "ñńņňǹ", 'o': "òóôõöōŏőǒ",
		'r': "ŕŗř", 's': "śŝşš", 't': "ţť", 'u': "ùúûüũūŭůűųǔǖǘǚǜ", 'w': "ŵ", 'y': "ýÿŷ", 'z': "źżž",
	} {
		for _, r := range accented {
			m[r] = base
		}
	}
	return m
}()

// nameWords are name's words worth looking for alone (see MayHoldName), in
// nameForm.
func nameWords(name string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(name, func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || r >= '\uFF01' && r <= '\uFF5E')
	}) {
		w := nameForm(f)
		n := utf8.RuneCountInString(w)
		if n >= 3 || n >= 2 && isIdeographic(w) {
			out = append(out, w)
		}
	}
	return out
}

// isIdeographic reports whether w is all Han, Kana or Hangul.
func isIdeographic(w string) bool {
	for _, r := range w {
		if !unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) {
			return false
		}
	}
	return true
}
