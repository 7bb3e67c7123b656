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

// freePort draws below the kernel's ephemeral ports, where no outgoing
// connection takes a port a test's server is to be started again on.
func TestFreePortIsBelowTheEphemeralPorts(t *testing.T) {
	lo, hi := quietPorts()
	if hi <= lo {
		t.Skip("no ephemeral port range to keep out of (not Linux, or an unusual one)")
	}
	for range 20 {
		p, err := freePort(t)
		if err != nil {
			t.Fatal(err)
		}
		if p < lo || p >= hi {
			t.Errorf("port %d outside [%d, %d)", p, lo, hi)
		}
	}
}
