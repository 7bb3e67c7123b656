package replay

import (
	"fmt"
	"testing"
	"time"
)

// A key is refused again within the window, taken again after it; old
// keys are dropped in sweeps, not one by one at every request.
func TestSeen(t *testing.T) {
	var g Guard
	const window = time.Minute
	t0 := time.Unix(1_800_000_000, 0)
	if g.Seen("k/1", t0, window) {
		t.Fatal("a new key was seen")
	}
	if !g.Seen("k/1", t0.Add(window), window) {
		t.Error("the same key a window later (at its edge) was not seen")
	}
	if g.Seen("k/1", t0.Add(window+time.Millisecond), window) {
		t.Error("the same key past the window was seen")
	}
	for i := range 100 {
		g.Seen(fmt.Sprint("n/", i), t0.Add(2*window), window)
	}
	// Within a quarter window of the last sweep: nothing swept yet.
	if n := g.Len(); n != 101 {
		t.Errorf("%d keys held; want 101", n)
	}
	// A sweep past the window drops the old keys, keeps the new one.
	if g.Seen("k/2", t0.Add(4*window), window) {
		t.Error("a new key was seen")
	}
	if n := g.Len(); n != 1 {
		t.Errorf("%d keys held after a sweep; want 1", n)
	}
}

// BenchmarkSeen is the cost of a request's check with a window's worth of
// keys held: constant, not growing with them.
func BenchmarkSeen(b *testing.B) {
	var g Guard
	now := time.Now()
	for i := range 100_000 {
		g.Seen(fmt.Sprint("warm/", i), now, time.Hour)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		g.Seen(fmt.Sprint("k/", i), now, time.Hour)
	}
}
