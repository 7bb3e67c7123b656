package ledger

import (
	"time"

	"golang.org/x/sys/unix"
)

// bootClock is the time since the machine booted, suspensions included
// (CLOCK_BOOTTIME): unlike Go's monotonic clock (CLOCK_MONOTONIC), it
// keeps pace with a Redis server on another machine while this one is
// suspended, so a suspension is not taken for a step of Redis's clock.
// Where it cannot be read it is monoClock, from the start: readings of two
// clocks are never mixed.
func bootClock() time.Duration {
	if !bootOK {
		return monoClock()
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return monoClock() + bootOffset
	}
	return time.Duration(ts.Nano())
}

// bootOK says CLOCK_BOOTTIME could be read at start; bootOffset is how far
// ahead of monoClock it was then.
var bootOK, bootOffset = func() (bool, time.Duration) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return false, 0
	}
	return true, time.Duration(ts.Nano()) - monoClock()
}()
