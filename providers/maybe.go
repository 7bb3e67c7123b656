package providers

import (
	"fmt"
	"strconv"
	"strings"
)

// MayBe names the provider's ids of the listed orders that may be the
// order, for the person who decides, as the beginning of an ambiguous
// lookup's message (in the order's reason, right after what names the
// call); "" when none has one. They come first, and whole, since an error's
// text is cut to a few hundred characters where it is recorded (an id cut
// short, copied into a resolve, would name another order): at most five,
// and about 120 characters of them; the rest are counted. Empty ids and
// repeats are left out.
func MayBe(ids []string) string {
	const most, chars = 5, 120
	var shown []string
	seen := map[string]bool{}
	n, more := 0, 0
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		q := strconv.Quote(id)
		if len(shown) == most || n+len(q) > chars {
			more++
			continue
		}
		shown, n = append(shown, q), n+len(q)+4
	}
	switch {
	case len(shown) == 0 && more == 0:
		return ""
	case len(shown) == 0 && more == 1:
		return "an order with a long id may be this one: "
	case len(shown) == 0:
		return fmt.Sprintf("%d orders with long ids may be this one: ", more)
	case more > 0:
		return fmt.Sprintf("it may be order %s or %d more: ", strings.Join(shown, ", "), more)
	}
	return "it may be order " + strings.Join(shown, " or ") + ": "
}
