//go:build linux

package main

import "golang.org/x/sys/unix"

// monoNow reads CLOCK_MONOTONIC: one clock for leasehold and its guard, so
// a deadline one computes means the same instant to the other.
func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}
