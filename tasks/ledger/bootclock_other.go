//go:build !linux

package ledger

import "time"

// bootClock is this process's monotonic clock where CLOCK_BOOTTIME is not
// read (see bootclock_linux.go): a suspension of this machine may then be
// taken for a step of Redis's clock, which only holds leases and listing
// lags longer (see clockExpect).
func bootClock() time.Duration { return monoClock() }
