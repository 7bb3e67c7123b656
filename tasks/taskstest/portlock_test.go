package taskstest

import (
	"runtime"
	"testing"
)

// A port freePort hands out is reserved until the test ends: reserving it
// again (as another test process's freePort would) fails meanwhile, and
// succeeds once it is released.
func TestFreePortIsReservedUntilTheTestEnds(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ports are reserved on Linux only")
	}
	var port int
	t.Run("holder", func(t *testing.T) {
		p, err := freePort(t)
		if err != nil {
			t.Fatal(err)
		}
		port = p
		if lock, ok := reservePort(port); ok {
			lock.Close()
			t.Errorf("port %d reserved twice", port)
		}
	})
	lock, ok := reservePort(port)
	if !ok {
		t.Fatalf("port %d still reserved after the test that took it ended", port)
	}
	lock.Close()
}
