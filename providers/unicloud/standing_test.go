package unicloud

import "testing"

// UNICLOUD_STANDING_STATUSES takes values separated by commas, none empty,
// none naming a cancellation or a failure; an order found by matching is
// taken (with TakeMatched) when its status is none, a word, or a number
// the setting lists.
func TestStandingStatuses(t *testing.T) {
	for _, c := range []struct {
		v  string
		ok bool
	}{
		{"2", true}, {"1, 2", true}, {"PAID,2", true},
		{"2,", false}, {" ", false}, {"2,cancelled", false}, {"已取消", false},
	} {
		if err := checkStatuses(c.v); (err == nil) != c.ok {
			t.Errorf("checkStatuses(%q) = %v; want ok %v", c.v, err, c.ok)
		}
	}
	cl := &Client{standing: standingSet(statuses(" 2, 7"))}
	for s, want := range map[string]bool{"": true, "PAID": true, "正常": true, "2": true, "7": true, "5": false, "-1": false, "02": false} {
		if got := cl.standingStatus(s); got != want {
			t.Errorf("standingStatus(%q) = %v; want %v", s, got, want)
		}
	}
}
