package providers

import "testing"

// An order number that is one phone number alone is told from one that
// merely holds such digits beside others (an id, a date and a number).
func TestIsPhoneNumber(t *testing.T) {
	for s, want := range map[string]bool{"13800138000": true, "138-0013-8000": true, "+8613800138000": true, "+86 138 0013 8000": true,
		"138_0013_8000": true, "138/0013/8000": true, "008613800138000": true, "(138)0013-8000": true, "+44 7700 900123": true,
		"Order13800138000": false, "20241130-13800138000": false, "001-13800138000": false, "12345678901": false, "A1": false, "2026-11-30": false} {
		if got := IsPhoneNumber(s); got != want {
			t.Errorf("%q: %v want %v (mask %q)", s, got, want, MaskPhones(s))
		}
	}
}
