//go:build !linux

package main

import "time"

// base is this process's origin of monoNow: without a guard process the
// deadlines never leave leasehold, so its own monotonic clock will do.
var base = time.Now()

// monoNow reads the process's monotonic clock, in nanoseconds since base.
func monoNow() int64 { return int64(time.Since(base)) }
