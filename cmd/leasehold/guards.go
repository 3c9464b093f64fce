package main

import (
	"log/slog"
	"sync"
	"time"
)

// guards starts the user's command for run and cron. On Linux the command
// runs under a guard process (guard_linux.go), and one guard is kept
// started ahead of time, waiting for its grant: leadership then costs one
// message and the command's own fork/exec, not a start of leasehold. That
// idle guard is one more process while following; it starts nothing
// without a grant and ends when leasehold does.
type guards struct {
	command []string
	grace   time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	next   *warmGuard // started ahead of time (Linux); nil: none yet
	closed bool
}

// newGuards returns the guards of command and starts the first one ahead
// of time. close ends it.
func newGuards(command []string, grace time.Duration, log *slog.Logger) *guards {
	g := &guards{command: command, grace: grace, log: log}
	g.refill()
	return g
}
