package providers

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// narrow reads a digit of any script by its place in Unicode's ranges of
// decimal digits, which holds only while each range runs from a zero in
// sets of ten.
func TestDigitRangesStartAtZero(t *testing.T) {
	t.Parallel()
	check := func(lo, hi, stride uint32) {
		if stride != 1 || (hi-lo+1)%10 != 0 {
			t.Errorf("decimal digits %U–%U (stride %d): not sets of ten from a zero", lo, hi, stride)
		}
	}
	for _, g := range unicode.Nd.R16 {
		check(uint32(g.Lo), uint32(g.Hi), uint32(g.Stride))
	}
	for _, g := range unicode.Nd.R32 {
		check(g.Lo, g.Hi, g.Stride)
	}
	if got := MaskPhones("\u0967\u0969\u096e\u0966\u0966\u0967\u0969\u096e\u0966\u0966\u0966"); got != "138****8000" { // Devanagari
		t.Errorf("Devanagari digits: %q", got)
	}
}

// plainRune is narrow's shortcut: every rune it passes is one narrow
// would leave as it is.
func TestPlainRunesAreLeftAsTheyAre(t *testing.T) {
	t.Parallel()
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !plainRune(r) || r < utf8.RuneSelf {
			continue
		}
		if unicode.Is(unicode.Pd, r) || unicode.Is(unicode.Nd, r) || isZeroWidth(r) || unicode.Is(unicode.Zs, r) ||
			strings.ContainsRune("\u2212\u2053\u30fc\uff70\u00b7\u30fb\uff65\u2027\uff0b\ufe62", r) {
			t.Errorf("plainRune(%U) is true, but narrow reads it", r)
		}
	}
}

func TestMaskPhones(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"call 15812348558 now", "call 158****8558 now"},
		{"13912345678,13912345679", "139****5678,139****5679"},
		{"+8613912345678", "861****5678"},
		{"8613912345678", "861****5678"},
		{"+4915112345678", "491****5678"},
		{"X-Ca-Timestamp:1799123844038", "X-Ca-Timestamp:1799123844038"}, // 13 digits: a timestamp
		{"order 907804353770394046", "order 907804353770394046"},
		{"12345678901", "12345678901"}, // 1[2]: not a mobile number
		{"no digits", "no digits"},
		{"call 138-0013-8000 now", "call 138****8000 now"},
		// Tabs, line breaks, commas, tildes and asterisks between the
		// groups (a black-box run: a provider's message laid out so kept
		// the number in clear); a list of amounts stays.
		{"联系电话 139\t8765\t4321；备用 139，8765，4321", "联系电话 139****4321；备用 139****4321"},
		{"139\n8765\r\n4321", "139****4321"},
		{"139,8765,4321 139~8765~4321 139*8765*4321 139、8765、4321", "139****4321 139****4321 139****4321 139****4321"},
		{"price 1,399,876 and 54,321; SKU,139,8765,4321x", "price 1,399,876 and 54,321; SKU,139,8765,4321x"},
		// Every dash, other scripts' digits, middle dots, invisible
		// characters between digits.
		{"138\u301c0013\u301c8000", "138****8000"},                                            // wave dash
		{"138\ufe630013\ufe638000", "138****8000"},                                            // small hyphen-minus
		{"138\u2e3a0013\u2e3a8000", "138****8000"},                                            // two-em dash
		{"138\u30a00013\u30a08000", "138****8000"},                                            // double hyphen
		{"138\u30fc0013\u30fc8000", "138****8000"},                                            // long vowel mark, written as a dash
		{"138\u00b70013\u00b78000", "138****8000"},                                            // middle dot
		{"13800\u00ad138000", "138****8000"},                                                  // soft hyphen
		{"\u0661\u0663\u0668\u0660\u0660\u0661\u0663\u0668\u0660\u0660\u0660", "138****8000"}, // Arabic-Indic
		{"\U0001d7cf\U0001d7d1\U0001d7d6\U0001d7ce\U0001d7ce\U0001d7cf\U0001d7d1\U0001d7d6\U0001d7ce\U0001d7ce\U0001d7ce", "138****8000"}, // mathematical bold
		{"call 138 0013 8000", "call 138****8000"},
		{"+86 138 0013 8000.", "861****8000."},
		{"+86-138-0013-8000", "861****8000"},
		{"008613800138000", "008****8000"},
		{"ids 13800138000 12345", "ids 138****8000 12345"},               // grouped, not one number: each judged
		{"at 2026-11-30 13:00:05", "at 2026-11-30 13:00:05"},             // a date is no phone number
		{"order 9078-0435-3770-3940-46", "order 9078-0435-3770-3940-46"}, // 18 digits
		{"call 138 0013 8000 2 times", "call 138****8000 2 times"},
		{"row 1 138 0013 8000", "row 1 138****8000"},
		{"qty 2 138-0013-8000", "qty 2 138****8000"},
		{"+86 138 0013 8000 12345", "861****8000 12345"},
		{"138 0013 8000, 139-1234-5678", "138****8000, 139****5678"},
		{"ts 1712345678 2 retries", "ts 1712345678 2 retries"}, // a number next to another is no phone number
		{"order 1712345678-1", "order 1712345678-1"},
		{"id 21380013800012", "id 21380013800012"},
		// A match that touches a digit is no phone number, but the
		// number inside it may be.
		{"586 138 0013 8000", "586 138****8000"},
		{"tel 5 86-138-0013-8000", "tel 5 861****8000"},
		// Full-width digits and no-break spaces, as input methods type
		// them; without a phone number the text is left as it is.
		{"call １３８００１３８０００", "call 138****8000"},
		{"138\u00a00013\u00a08000", "138****8000"},
		{"＋８６ １３８ ００１３ ８０００", "861****8000"},
		{"数量 １２ 个", "数量 １２ 个"},
		{"a\u00a0b 12", "a\u00a0b 12"},
		// International numbers in groups, with their '+'.
		{"+44 7700 900123", "447****0123"},
		{"tel: +1 415-555-0100.", "tel: 141****0100."},
		{"+1 (415) 555-0100", "141****0100"},
		{"+1 (415)555-0100", "141****0100"},
		{"+44 (0)20 7946 0958", "440****0958"},
		{"+49-151-1234-5678 x", "491****5678 x"},
		{"+44 7700 900123 2", "447****1232"},                         // a group that follows is taken for part of it
		{"v +1 2", "v +1 2"},                                         // too few digits
		{"+1 234 567 890 123 456 789", "+1 234 567 890 123 456 789"}, // too many
		{"build 1.2 +3 45", "build 1.2 +3 45"},
		// Mainland mobile numbers in other groupings: separators with
		// spaces around them, slashes, underscores, dots, dashes of
		// every kind, the first group in parentheses, zero-width
		// characters between digits.
		{"tel 139 - 1234 - 5678.", "tel 139****5678."},
		{"139/1234/5678", "139****5678"},
		{"id 139_1234_5678.", "id 139****5678."},
		{"139  -  1234  -  5678", "139****5678"},
		{"139\u2009-\u20091234\u2009-\u20095678", "139****5678"},
		{"139.1234.5678", "139****5678"},
		{"139\u20131234\u20135678", "139****5678"},
		{"139\u20141234\u20145678", "139****5678"},
		{"(139)1234-5678", "139****5678"},
		{"(139) 1234 5678", "139****5678"},
		{"139\u200b1234\u200b5678", "139****5678"},
		{"+86 (139) 1234-5678", "861****5678"},
		// Wider gaps and a doubled dash (a black-box review).
		{"138   0013   8000", "138****8000"},
		{"138\t\t\t\t0013 \t 8000", "138****8000"},
		{"138 -- 0013 -- 8000", "138****8000"},
		{"138--0013--8000", "138****8000"},
		{"+1.415.555.2671", "141****2671"},
		{"+1.415 555.2671", "+1.415 555.2671"},                                                 // dots mixed with spaces: as a version or an amount
		{"tel +1 415.555.2671.", "tel 141****2671."},                                           // a space after the country code
		{"lat +37.7749295 +0.000012345 +12345.678", "lat +37.7749295 +0.000012345 +12345.678"}, // signed decimals
		{"vm+192.168.100.200 abc+1234.5678", "vm+192.168.100.200 abc+1234.5678"},               // not standing alone
		{"+1.415.555.2671.5", "+1.415.555.2671.5"},                                             // a version goes on
		{"138     0013 8000", "138     0013 8000"},                                             // five spaces: apart
		// What only looks like one: dates, versions, addresses, ids.
		{"2026.11.30 13:00", "2026.11.30 13:00"},
		{"v1.13.1234", "v1.13.1234"},
		{"192.168.100.200", "192.168.100.200"},
		{"order_2026_1130_1234", "order_2026_1130_1234"},
		// Groups a '/', '_' or '.' separates, in an id or a version, are
		// not a phone number: only standing alone.
		{"SKU_150_2024_1130", "SKU_150_2024_1130"},
		{"v150.2024.1130", "v150.2024.1130"},
		{"dev/131/2025/1130", "dev/131/2025/1130"},
		{"ORD/150/2024/1130", "ORD/150/2024/1130"},
		{"id_139_1234_5678", "id_139_1234_5678"},
		{"139_1234_5678_x", "139_1234_5678_x"},
		{"1.2.3.4 1.2.3.4", "1.2.3.4 1.2.3.4"},
		// Inside JSON text, next to an escape.
		{`{"note":"he said \"138_0013_8000\""}`, `{"note":"he said \"138****8000\""}`},
		{`{"note":"tel 138.0013.8000\nbye"}`, `{"note":"tel 138****8000\nbye"}`},
		{`{"note":"tel:\n138/0013/8000"}`, `{"note":"tel:\n138****8000"}`},
		// Mixed or missing splits, versions and file names: not numbers.
		{"150_20241130", "150_20241130"},
		{"138.20240101", "138.20240101"},
		{"backup 150.20241130", "backup 150.20241130"},
		{"150.2024.1130.1", "150.2024.1130.1"},
		{"150.2024.1130-beta", "150.2024.1130-beta"},
		{"150.2024.1130+build", "150.2024.1130+build"},
		{"150_2024_1130.tar.gz", "150_2024_1130.tar.gz"},
		{"1500000.0000", "1500000.0000"},
		{"lon 131.12345678", "lon 131.12345678"},
		// Dash-grouped numbers right after a letter are masked, as ever:
		// a JSON or URL escape's last hex digit may sit there.
		{`\uff1a138-5729-4006`, `\uff1a138****4006`},
		{"%EF%BC%9A138 5729 4006", "%EF%BC%9A138****4006"},
		{"Tel138-5729-4006", "Tel138****4006"},
		{`C:\releases\150.2024.1130\app.exe`, `C:\releases\150.2024.1130\app.exe`},
		// Zero-width characters never join two numbers into one.
		{"13800138000\u200b13900139000", "138****8000 139****9000"},
		{"1\u200b13800138000", "1 138****8000"},
		{"13857\u200b294006", "138****4006"},
		{"1\u200b3\u200b8\u200b5\u200b7\u200b2\u200b9\u200b4\u200b0\u200b0\u200b6", "138****4006"},
		// A mobile-looking match a digit follows leaves the '+' number.
		{"+86 1380086 - 13831388", "861****0086 - 13831388"},
		{"139/1234/56789", "139/1234/56789"},
		{"12 - 1234 - 5678", "12 - 1234 - 5678"},
		{"a\u2013b 12", "a\u2013b 12"},
		// +86 with the groups' own '/', '_' or '.' after it.
		{"+86.139.1234.0007", "861****0007"},
		{"call +86/138/0013/8000 now", "call 861****8000 now"},
		{"+86_138_0013_8000", "861****8000"},
		{"+86.138_0013_8000", "+86.138_0013_8000"}, // mixed splits: as 138.20240101
		// A number written as escapes (JSON, HTML, percent-encoding,
		// JavaScript's escape()): given decoded, masked; other escapes
		// stay, so that JSON stays JSON.
		{`json \u0031\u0033\u0039\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038`, "json 139****5678"},
		{`{"a":"\u0022x\u0022 \u0031\u0033\u0039\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038"}`, `{"a":"\u0022x\u0022 139****5678"}`},
		{"html &#49;&#51;&#57;&#49;&#50;&#51;&#52;&#53;&#54;&#55;&#56;.", "html 139****5678."},
		{"&#x31;&#x33;&#x39;-&#x31;&#x32;&#x33;&#x34;-&#x35;&#x36;&#x37;&#x38;", "139****5678"},
		{"q=%31%33%39%31%32%33%34%35%36%37%38&x=%22", "q=139****5678&x=%22"},
		{"%EF%BC%91%EF%BC%93%EF%BC%99%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%90%EF%BC%90%EF%BC%90%EF%BC%97", "139****0007"},
		{"%u0031%u0033%u0039%u0031%u0032%u0033%u0034%u0035%u0036%u0037%u0038", "139****5678"},
		{"1%33800138000", "138****8000"},
		{"100% sure: %31%32 and &#49; alone", "100% sure: %31%32 and &#49; alone"},
		{`{"a":"\\u0031\\u0033\\u0039\\u0031\\u0032\\u0033\\u0034\\u0035\\u0036\\u0037\\u0038"}`, `{"a":"\\u0031\\u0033\\u0039\\u0031\\u0032\\u0033\\u0034\\u0035\\u0036\\u0037\\u0038"}`}, // an escaped backslash, then text
	}
	for _, tt := range tests {
		if got := MaskPhones(tt.in); got != tt.want {
			t.Errorf("MaskPhones(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMaskName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"13912345678": "139****5678", "张三": "张*", "李": "*", "A": "*", "Alice": "A***e", "": "",
		"王小明 13912345678": "王****8", "Alice 13912345678": "A****8"} {
		if got := MaskName(in); got != want {
			t.Errorf("MaskName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaskParams(t *testing.T) {
	t.Parallel()
	got := string(MaskParams(json.RawMessage(`{"userName":"Alice","nick":"13912345678","iotId":"dev1","copies":2}`), []string{"userName"}))
	if strings.Contains(got, "Alice") || strings.Contains(got, "13912345678") || !strings.Contains(got, `"iotId":"dev1"`) {
		t.Errorf("MaskParams = %s", got)
	}
}

// A field whose name says it holds a person's name or number is masked
// whatever the provider declares, however the name is written; one that
// names no person (instanceName) is shown. (Found by a black-box run: name,
// user_name, customerName and fullName were shown in clear.)
func TestMaskParamsByFieldName(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"name", "user_name", "customerName", "fullName", "UserName", "nick-name", "contactPhone", "buyer_mobile", "Tel", "e.mail"} {
		got := string(MaskParams(json.RawMessage(`{"`+k+`":"Zhang Wei 张伟","instanceName":"nas-01"}`), nil))
		if strings.Contains(got, "Zhang Wei") || strings.Contains(got, "张伟") || !strings.Contains(got, `"instanceName":"nas-01"`) {
			t.Errorf("MaskParams with %q = %s; want it masked, instanceName shown", k, got)
		}
		if got := string(HideParams(json.RawMessage(`{"`+k+`":"Zhang Wei 张伟"}`), nil)); strings.Contains(got, "Zhang") || strings.Contains(got, "张伟") {
			t.Errorf("HideParams with %q = %s; want it hidden", k, got)
		}
	}
}

// Escaped digits and names given as something other than a string are
// masked too.
func TestMaskParamsDecodesFirst(t *testing.T) {
	t.Parallel()
	got := string(MaskParams(json.RawMessage(`{"nick":"\u0031\u0033\u0039\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038","userName":["Li Si"],"realName":{"first":"Wang"},"phone":13912345678,"iotId":"dev1"}`), []string{"userName"}))
	for _, leak := range []string{"1234", "Li Si", "Wang", "u0031"} {
		if strings.Contains(got, leak) {
			t.Errorf("MaskParams = %s, shows %q", got, leak)
		}
	}
	if !strings.Contains(got, `"iotId":"dev1"`) || !strings.Contains(got, `"userName":"***"`) {
		t.Errorf("MaskParams = %s", got)
	}
	if c := string(Canonical([]byte(`not json`))); c != "not json" {
		t.Errorf("Canonical(not json) = %q", c)
	}
}

func TestHidePhonesAndParams(t *testing.T) {
	t.Parallel()
	if got := HidePhones("call 13912345678 or 158****8558, order 12345"); got != "call *** or ***, order 12345" {
		t.Errorf("HidePhones = %q", got)
	}
	got := string(HideParams(json.RawMessage(`{"userName":"Zhang San","userId":"13912345678","note":"+86 139 1234 5678","iotId":"dev1","empty":""}`), []string{"userName"}))
	if got != `{"empty":"","iotId":"dev1","note":"***","userId":"***","userName":"***"}` {
		t.Errorf("HideParams = %s", got)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	s := Secret("hunter2-secret")
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "secret", s)
	out := fmt.Sprint(s) + fmt.Sprintf("%v %+v %#v %s", s, s, s, s) + b.String()
	if strings.Contains(out, "hunter2") {
		t.Errorf("secret leaked: %s", out)
	}
	if s.Reveal() != "hunter2-secret" {
		t.Error("Reveal")
	}
}

// A secret echoed inside base64 (a provider that quotes the request so: a
// black-box review found a cloud token and an AccessKeyId so) is replaced
// whatever its place in the encoded text.
func TestRedactFindsASecretInBase64(t *testing.T) {
	t.Parallel()
	const tok = "tok-5e4e9a1c0b7d4f2e8a6b"
	for _, prefix := range []string{`{"cloudToken":"`, `{"cloudToken": "`, `{"cloudToken":  "`} {
		body := prefix + tok + `","x":1}`
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			echoed := "echo=" + enc.EncodeToString([]byte(body))
			out := Redact(echoed, tok)
			if out == echoed || !strings.Contains(out, "***") {
				t.Errorf("Redact(%q) = %q; want the token's characters replaced", echoed, out)
			}
			// What is left decodes to none of the token's middle.
			rest := strings.TrimPrefix(out, "echo=")
			for _, part := range strings.Split(rest, "***") {
				for cut := range 4 {
					if len(part) <= cut {
						break
					}
					p := part[cut:]
					p = p[:len(p)/4*4]
					if d, err := enc.DecodeString(p); err == nil && strings.Contains(string(d), tok[2:len(tok)-2]) {
						t.Errorf("Redact(%q) left %q, which decodes to the token", echoed, part)
					}
				}
			}
		}
	}
	// A short secret is not looked for in base64; text without it stays.
	if got := Redact("data=aGVsbG8gd29ybGQ=", "hello", "tok-5e4e9a1c0b7d4f2e8a6b"); got != "data=aGVsbG8gd29ybGQ=" {
		t.Errorf("Redact = %q; want it unchanged", got)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	if got := Redact("key AKID1234 secret s3cr3t phone 13912345678", "AKID1234", "s3cr3t", ""); got != "key *** secret *** phone 139****5678" {
		t.Errorf("Redact = %q", got)
	}
	// A secret quoted in full-width characters, beside a phone number
	// (whose mask writes full-width digits as ASCII) or not.
	for _, in := range []string{
		"１３８００１３８０００ | TcSecretReal８８zz | x",
		"call 13800138000; key TcSecretReal８８zz",
		"key TcSecretReal８８zz",
		"key ＴｃＳｅｃｒｅｔＲｅａｌ８８ｚｚ．",
		`{"k":"TcSecretReal\uff18\uff18zz"}`,
	} {
		if got := Redact(in, "TcSecretReal88zz"); strings.Contains(got, "88zz") || strings.Contains(got, "８８zz") || strings.Contains(got, "８８ｚｚ") || !strings.Contains(got, "***") {
			t.Errorf("Redact(%q) = %q: the secret shows", in, got)
		}
	}
	// Short personal values: an ASCII one where it stands alone, another
	// everywhere.
	for _, tt := range []struct{ in, sec, want string }{
		{"bad userName Bob.", "Bob", "bad userName ***."},
		{"Bobby and Bob", "Bob", "Bobby and ***"},
		{"a user named a", "a", "*** user named ***"},
		{"用户张不存在", "张", "用户***不存在"},
		// The value as a quoted request writes it: JSON-escaped (HTML
		// characters, quotes, every non-ASCII character) or
		// percent-encoded.
		{`BODY:{"userName":"Tom\u0026Jerry"}`, "Tom&Jerry", `BODY:{"userName":"***"}`},
		{`BODY:{"userName":"O\"Brien\u0026Co\u003cx\u003e"}`, `O"Brien&Co<x>`, `BODY:{"userName":"***"}`},
		{`{"userName":"O\"Brien&Co<x>"}`, `O"Brien&Co<x>`, `{"userName":"***"}`},
		{`{"userName":"\u5f20\u4e09\u4e30"}`, "张三丰", `{"userName":"***"}`},
		{`{"userName":"\u5F20\u4E09\u4E30"}`, "张三丰", `{"userName":"***"}`},
		{`{"userName":"\ud83d\ude00x"}`, "😀x", `{"userName":"***"}`},
		{"userName=%E5%BC%A0%E4%B8%89%E4%B8%B0&x=1", "张三丰", "userName=***&x=1"},
		{"userName=Tom+Jerry&x=1", "Tom Jerry", "userName=***&x=1"},
		{"path /u/Tom%20Jerry/", "Tom Jerry", "path /u/***/"},
		{`{"userName":"a\\b"}`, `a\b`, `{"userName":"***"}`},
		{`{"userName":"A\/B"}`, "A/B", `{"userName":"***"}`},
		{`{"userName":"Tom\u0026\u5f20"}`, "Tom&张", `{"userName":"***"}`},
		{"userName=%e5%bc%a0%e4%b8%89&x=1", "张三", "userName=***&x=1"},
		// In another case, as HTML character references, as
		// JavaScript's escape() writes it.
		{"no user ZHANG SAN PII here", "Zhang San PII", "no user *** here"},
		{"no user zhang san pii", "Zhang San PII", "no user ***"},
		// A short one only as written: it would eat words.
		{"user BOB.", "Bob", "user BOB."},
		{"the latest contest", "Test", "the latest contest"},
		{"<p>&#24352;&#19977;&#20016;</p>", "张三丰", "<p>***</p>"},
		{"<p>&#x5f20;&#x4e09;&#x4e30;</p>", "张三丰", "<p>***</p>"},
		{"<p>&#x5F20;&#x4E09;&#x4E30;</p>", "张三丰", "<p>***</p>"},
		{"Jos&#233; M&#252;ller", "José Müller", "***"},
		{"userName=%u5F20%u4E09%u4E30&x=1", "张三丰", "userName=***&x=1"},
		{"userName=%u5f20%u4e09&x=1", "张三", "userName=***&x=1"},
		{"userName=Jos%E9%20M%FCller&x=1", "José Müller", "userName=***&x=1"},
		{"userName=%u5F20%20%u4E09&x=1", "张 三", "userName=***&x=1"},
		{"<b>Tom &amp; Jerry</b>", "Tom & Jerry", "<b>***</b>"},
		// Every character escaped, or escapes mixed: the text is
		// searched decoded too, and given decoded when it held one.
		{`user \u0054\u006f\u006d\u0026\u004a\u0065\u0072\u0072\u0079\u0020\u0053\u006d\u0069\u0074\u0068 unknown`, "Tom&Jerry Smith", "user *** unknown"},
		{"user &#84;&#111;&#109;&#38;&#74;&#101;&#114;&#114;&#121;&#32;&#83;&#109;&#105;&#116;&#104;!", "Tom&Jerry Smith", "user ***!"},
		{"user %54om%26Jerry%20Smith", "Tom&Jerry Smith", "user ***"},
		{`user \u0031\u0033\u0039\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038`, "13912345678", "user ***"},
		{`user &#49;&#51;&#57;&#49;&#50;&#51;&#52;&#53;&#54;&#55;&#56;`, "13912345678", "user ***"},
		{`nothing here \u0041 &#66; %43`, "Tom&Jerry Smith", `nothing here \u0041 &#66; %43`},
	} {
		if got := Redact(tt.in, tt.sec); got != tt.want {
			t.Errorf("Redact(%q, %q) = %q, want %q", tt.in, tt.sec, got, tt.want)
		}
	}
	// An error code keeps its documented spelling: secrets only as
	// written.
	for _, tt := range []struct{ in, sec, want string }{
		{"InvalidParameterValue.Limit", "value", "InvalidParameterValue.Limit"},
		{"InvalidParameterValue.Limit", "parametervalue", "InvalidParameterValue.Limit"},
		{"Denied.AKID1234", "AKID1234", "Denied.***"},
	} {
		if got := RedactCode(tt.in, tt.sec); got != tt.want {
			t.Errorf("RedactCode(%q, %q) = %q, want %q", tt.in, tt.sec, got, tt.want)
		}
	}
}

// BenchmarkMaskPhones measures the mask every log line and error text
// passes through, on text without a phone number but full of numbers in
// groups (addresses, dates, versions), which reach the group matchers.
func BenchmarkMaskPhones(b *testing.B) {
	for _, c := range []struct{ name, s string }{
		{"addresses 3KB", strings.Repeat("1.2.3.4 ", 400)},
		{"dates 20KB", strings.Repeat("12.34.56.78 90/12/34 ", 1000)},
		{"log line", `level=INFO msg="order settled" provider=tencent order_no=Order100001 state=paid attempts=1 took=103.2ms`},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.s)))
			for b.Loop() {
				if MaskPhones(c.s) != c.s {
					b.Fatal("masked a text without a phone number")
				}
			}
		})
	}
}

// The JSON masks keep JSON JSON (a number that is a phone number comes
// back a string), and no mask panics, whatever the input.
func FuzzMaskPhonesKeepsJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":"\u0031\u0033\u0039\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038"}`,
		`{"a":"\\u0031\u0033","b":"%22&#34;\u0022"}`,
		`{"q":"%31%33%39%31%32%33%34%35%36%37%38","h":"&#49;&#51;&#57;&#49;&#50;&#51;&#52;&#53;&#54;&#55;&#56;"}`,
		`{"f":"%EF%BC%91%EF%BC%93%EF%BC%99%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%90%EF%BC%90%EF%BC%90%EF%BC%97"}`,
		`["+86.138.0013.8000","\ud83d\ude00 %u0031","&#x31;&#0;&#1114112;"]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		MaskPhones(s)
		Redact(s, "Tom&Jerry", "13912345678")
		if !json.Valid([]byte(s)) {
			return
		}
		if m := MaskPhonesJSON([]byte(s)); !json.Valid(m) {
			t.Fatalf("MaskPhonesJSON(%q) = %q: no longer JSON", s, m)
		}
		for _, out := range []json.RawMessage{MaskParams(json.RawMessage(s), []string{"userName"}), HideParams(json.RawMessage(s), nil)} {
			if out != nil && !json.Valid(out) {
				t.Fatalf("params %q masked to %q: no longer JSON", s, out)
			}
		}
	})
}

// Params and payloads are masked value by value: a phone number written as
// HTML entities (which encoding/json escapes as \u0026#49;) or given as a
// JSON number is masked, and the result is JSON.
func TestMaskJSONValueByValue(t *testing.T) {
	t.Parallel()
	in := json.RawMessage(`{"note":"&#49;&#51;&#57;&#49;&#50;&#51;&#52;&#53;&#54;&#55;&#56;","n":13800138000,"list":["+86 138 0013 8000",7],"a&b":"<x>"}`)
	for name, out := range map[string]json.RawMessage{
		"MaskParams":     MaskParams(in, nil),
		"HideParams":     HideParams(in, nil),
		"MaskPhonesJSON": MaskPhonesJSON(in),
	} {
		if !json.Valid(out) {
			t.Errorf("%s = %s: not JSON", name, out)
		}
		for _, clear := range []string{"13800138000", "&#49;&#51;&#57;", "0013"} {
			if strings.Contains(string(out), clear) {
				t.Errorf("%s = %s: %s in clear", name, out, clear)
			}
		}
		if !strings.Contains(string(out), `"a&b":"<x>"`) || !strings.Contains(string(out), `7]`) {
			t.Errorf("%s = %s: other values changed", name, out)
		}
	}
	// Two keys masked alike are both kept; text after the JSON value is
	// masked as text, not dropped.
	if out := string(HideParams(json.RawMessage(`{"13800138000":1,"13900139000":2}`), nil)); !strings.Contains(out, `"***":1`) || !strings.Contains(out, `"***#2":2`) {
		t.Errorf("two phone-number keys: %s, want both kept", out)
	}
	if out := string(MaskPhonesJSON([]byte(`{"a":1}] 13800138000`))); out != `{"a":1}] 138****8000` {
		t.Errorf("JSON with more after it: %s", out)
	}
}

// The text around a masked number stays as it was written: a note's
// "コーヒー" is not rewritten "コ-ヒ-", nor "a·b" "a.b"; the number itself is
// masked as before (digits ASCII, separators dropped). Whatever the text,
// the result read with its digits and dashes narrowed is the narrowed
// text's masking itself: keeping the text as written reveals nothing.
func TestMaskKeepsTheTextAsWritten(t *testing.T) {
	for in, want := range map[string]string{
		"コーヒー 13800138000":              "コーヒー 138****8000",
		"コーヒー １３８００１３８０００":              "コーヒー 138****8000",
		"a·b 138·0013·8000":             "a·b 138****8000",
		"電話—１３８ー００１３ー８０００—ありがとう":        "電話—138****8000—ありがとう",
		"ｎｏｔｅ：１３８００１３８０００，ｔｈａｎｋｓ":       "ｎｏｔｅ：138****8000，ｔｈａｎｋｓ",
		"見本 12345 (no phone here) — ok": "見本 12345 (no phone here) — ok",
	} {
		if got := MaskPhones(in); got != want {
			t.Errorf("MaskPhones(%q) = %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{
		"コーヒー 13800138000", "a·b 138·0013·8000 and ＋８６ １３８ ００１３ ８０００",
		"13800138000\u200b13900139000 ー · －", "1\u200b13800138000", "電話—１３８ー００１３ー８０００—ありがとう",
	} {
		got := MaskPhones(in)
		n := strings.Map(narrow, got)
		want := maskPhones(strings.Map(narrow, in))
		if n != want {
			t.Errorf("MaskPhones(%q) = %q, narrowed %q; want the narrowed text's masking %q", in, got, n, want)
		}
		if strings.Contains(got, "0013") || strings.Contains(got, "００１３") {
			t.Errorf("MaskPhones(%q) = %q: shows the masked digits", in, got)
		}
	}
}

// Keeping the text as written (asWritten) reveals nothing the narrowed
// masking would not: whatever the input, the masked text read with its
// digits, dashes and dots narrowed is the masking of the narrowed input.
func FuzzMaskKeepsTheTextAsWritten(f *testing.F) {
	for _, s := range []string{
		"コーヒー 13800138000", "コーヒー １３８００１３８０００", "a·b 138·0013·8000 and ＋８６ １３８ ００１３ ８０００",
		"13800138000\u200b13900139000 ー · －", "電話—１３８ー００１３ー８０００—ありがとう", "١٣٨٠٠١٣٨٠٠٠ x ٠١٢",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		n, ok := narrowDigits(s)
		if !ok {
			return
		}
		m := maskPhones(n)
		if m == n {
			return
		}
		got := asWritten(s, n, m, false)
		if len([]rune(n)) <= maxAligned && len([]rune(m)) <= maxAligned && strings.Map(narrow, got) != m {
			t.Fatalf("asWritten(%q) = %q: narrowed %q, want the narrowed masking %q", s, got, strings.Map(narrow, got), m)
		}
	})
}

func TestMayHoldName(t *testing.T) {
	for _, tt := range []struct {
		s, name string
		want    bool
	}{
		{"identityId does not exist for user Zhang San", "Zhang San", true},
		{"user ＺＨＡＮＧ　ＳＡＮ unknown", "Zhang San", true},
		{"user Mary Jane Watson unknown", "Mary-Jane Watson", true},
		{"user LiXiaoLong unknown", "Li Xiao Long", true},
		{"user Jielun Zhou unknown", "Zhou Jielun", true},
		{"user Wang Xiaomi", "Wang Xiaoming", true},
		{"user Jose\u0301 Mu\u0308ller", "José Müller", true},
		{"user 王小明 不存在", "王小明", true},
		{"user 王 小 明", "王小明", true},
		{"identityId does not exist", "Zhang San", false},
		{"iotId not bound", "Li", false},
		{"anything", "", false},
	} {
		if got := MayHoldName(tt.s, tt.name); got != tt.want {
			t.Errorf("MayHoldName(%q, %q) = %v; want %v", tt.s, tt.name, got, tt.want)
		}
	}
}

// A message that echoes a user's id cut, in part or short is judged to
// hold it (a black-box review found each of these reach the record, the
// API and the webhooks).
func TestMayHoldIDPart(t *testing.T) {
	for _, tt := range []struct {
		s, id string
		want  bool
	}{
		{"customer zhangwei is not registered", "zhangwei_1990", true},
		{"customer ZhangWei1990 is not registered", "zhangwei_1990", true},
		{"identityId zhang.wei@... does not exist", "zhang.wei@example.com", true},
		{"identityId bob does not exist", "bob", true},
		{"identityId 王五 does not exist", "王五", true},
		{"用户王五不存在", "王五", true},
		{"user abcdefg... unknown", "abcdefghijk", true},
		{"用户张伟不存在", "张伟明", true},
		{"用户张伟不存在", "张伟明001", true},
		{"user zhangwei1990x unknown", "zhang_wei_1990", true}, // whole, glued to more
		{"user zhangweiabc unknown", "zhang_wei_1990", false},  // no word of it alone
		{"CustomerId does not exist", "Customer100001", false},
		{"customer 100001 does not exist", "Customer100001", true},
		{"identityId does not exist", "bob", false},
		{"the bobcat is not a user", "bob", false},
		{"code 1234 failed", "12", false},
		{"customer is not registered", "zhangwei_1990", false},
		{"identityId does not exist", "zhang.wei@example.com", false},
		{"anything", "", false},
	} {
		if got := MayHoldIDPart(tt.s, tt.id); got != tt.want {
			t.Errorf("MayHoldIDPart(%q, %q) = %v; want %v", tt.s, tt.id, got, tt.want)
		}
	}
}

func TestMayHoldID(t *testing.T) {
	for _, tt := range []struct {
		s, id string
		want  bool
	}{
		{"userId=Huang.FeiHong@example.com not bound", "huang.feihong@example.com", true},
		{"user 50e5op6412259c0f11 not bound", "50E5OP6412259C0F11", true},
		{"code 1234 failed", "12", false},
		{"not bound", "zs@example.com", false},
	} {
		if got := MayHoldID(tt.s, tt.id); got != tt.want {
			t.Errorf("MayHoldID(%q, %q) = %v; want %v", tt.s, tt.id, got, tt.want)
		}
	}
}
