package providers_test

import (
	"strings"
	"testing"

	"github.com/orderworker/orderworker/providers"
)

func TestMayBe(t *testing.T) {
	t.Parallel()
	long := func(i int) string { return "2024060108010000000" + string(rune('0'+i)) }
	for _, c := range []struct {
		ids  []string
		want string
	}{
		{nil, ""},
		{[]string{"", " "}, ""},
		{[]string{"1"}, `it may be order "1": `},
		{[]string{"1", "2", "1", ""}, `it may be order "1" or "2": `},
		{[]string{"1", "2", "3", "4", "5", "6", "7"}, `it may be order "1", "2", "3", "4", "5" or 2 more: `},
		{[]string{long(0), long(1), long(2), long(3), long(4), long(5)}, `it may be order "` + long(0) + `", "` + long(1) + `", "` + long(2) + `", "` + long(3) + `" or 2 more: `},
		{[]string{strings.Repeat("x", 200)}, "an order with a long id may be this one: "},
		{[]string{strings.Repeat("x", 200), strings.Repeat("y", 200)}, "2 orders with long ids may be this one: "},
	} {
		if got := providers.MayBe(c.ids); got != c.want {
			t.Errorf("MayBe(%q) = %q, want %q", c.ids, got, c.want)
		}
	}
}
