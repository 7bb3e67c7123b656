package aliyun

import "testing"

// A listed userId is ours masked when it holds asterisks and shows at
// least eight characters, only ours around them, in place, each run hiding
// at least one character.
func TestMaskedLike(t *testing.T) {
	t.Parallel()
	const ours = "50e5op6412259c0f11demo0f57cd9326da8409"
	for _, c := range []struct {
		listed string
		want   bool
	}{
		{"50e5op6412259c0f11*****0f57cd9326da8409", true}, // as the documents show it
		{"50e5op6412259c0f11********cd9326da8409", true},
		{"50e5op6412259c0f117********7cd9326da8409", false}, // the documents' other example: not ours
		{"***", false}, // shows nothing: anyone's
		{"50e5*", false},
		{"50e5op64*", true},
		{"*26da8409", true},
		{"50e5*demo*8409", true},
		{"50e5*8409", true},
		{"50e5*840", false}, // too little shown
		{ours, false},       // no asterisk: compared as it is
		{"50e5op6412259c0f11*****0f57cd9326da8408", false},
		{"60e5*", false},
		{"*8408", false},
		{"50e5*omed*8409", false}, // parts out of order
		{"50e5op6412259c0f11demo0f57cd9326da8409*", false}, // a run that hides nothing
		{"*50e5op6412259c0f11demo0f57cd9326da8409", false},
		{"50e5op6412259c0f11demo*0f57cd9326da8409", false},
	} {
		if got := maskedLike(c.listed, ours); got != c.want {
			t.Errorf("maskedLike(%q) = %v, want %v", c.listed, got, c.want)
		}
	}
	if maskedLike("abcdefgh*", "abcdefgh") {
		t.Error(`maskedLike("abcdefgh*", "abcdefgh") = true: an asterisk stands for a character`)
	}
}
