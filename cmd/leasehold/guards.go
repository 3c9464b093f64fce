package main

import (
	"context"
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
// of time. close ends it; so does the end of ctx (a shutdown), so that a
// leader stopping its command on shutdown does not start the next guard:
// that start would take CPU from the next leader on the same machine.
func newGuards(ctx context.Context, command []string, grace time.Duration, log *slog.Logger) *guards {
	g := &guards{command: command, grace: grace, log: log}
	context.AfterFunc(ctx, g.close)
	g.refill()
	return g
}
