package ledger

import (
	"time"

	"golang.org/x/sys/unix"
)

// bootClock is the time since the machine booted, suspensions included
// (CLOCK_BOOTTIME): unlike Go's monotonic clock (CLOCK_MONOTONIC), it
// keeps pace with a Redis server on another machine while this one is
// suspended, so a suspension is not taken for a step of Redis's clock.
func bootClock() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return monoClock()
	}
	return time.Duration(ts.Nano())
}
