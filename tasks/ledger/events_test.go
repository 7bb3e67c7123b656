package ledger

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// Trims are told on Redis 7 by the count of entries ever added, and on
// Redis 6.2, which has no such count (it reads 0), by a stream at its
// retention whose first entry comes after the position.
func TestStreamTrimmedAfter(t *testing.T) {
	t.Parallel()
	const retention = 1000
	at := func(s string) entryID { e, _ := parseEntry(s); return e }
	stream := func(added, length int64, first string) *redis.XInfoStream {
		return &redis.XInfoStream{EntriesAdded: added, Length: length, FirstEntry: redis.XMessage{ID: first}}
	}
	for _, tt := range []struct {
		name string
		info *redis.XInfoStream
		at   string
		want bool
	}{
		{"7: trimmed past the position", stream(5000, 1000, "500-0"), "100-0", true},
		{"7: trimmed, the position's next entry kept", stream(5000, 1000, "100-1"), "100-0", false},
		{"7: trimmed, the position still kept", stream(5000, 1000, "90-0"), "100-0", false},
		{"7: never trimmed, a position before the first entry", stream(10, 10, "500-0"), "0-0", false},
		{"7: empty", stream(0, 0, ""), "0-0", false},
		{"6.2: at its retention, trimmed past the position", stream(0, 1000, "500-0"), "100-0", true},
		{"6.2: over its retention (trimmed approximately)", stream(0, 1090, "500-0"), "100-0", true},
		{"6.2: at its retention, the position still kept", stream(0, 1000, "90-0"), "100-0", false},
		{"6.2: at its retention, the position's next entry kept", stream(0, 1000, "100-1"), "100-0", false},
		{"6.2: shorter than its retention: never trimmed", stream(0, 999, "500-0"), "0-0", false},
		{"6.2: empty", stream(0, 0, ""), "0-0", false},
	} {
		if got := streamTrimmedAfter(tt.info, at(tt.at), retention); got != tt.want {
			t.Errorf("%s: streamTrimmedAfter(added %d, length %d, first %q; after %s) = %v, want %v",
				tt.name, tt.info.EntriesAdded, tt.info.Length, tt.info.FirstEntry.ID, tt.at, got, tt.want)
		}
	}
}
