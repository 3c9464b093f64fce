//go:build !linux

package main

import "os"

// guard is Linux-only: elsewhere run starts the command itself
// (runchild_other.go) and this hidden command refuses to run.
func guard(args []string) int {
	os.Stderr.WriteString("leasehold: the command guard runs on Linux only\n")
	return 2
}

// becomeSubreaper has no equivalent outside Linux.
func becomeSubreaper() {}
