package main

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The guard's control protocol, on its control socket (one message a line):
//
//	leasehold → guard   "G <deadline> <n>" and n lines, each an environment
//	                    entry quoted by strconv.Quote: the grant — start the
//	                    command with this environment; the lease is valid
//	                    until deadline (CLOCK_MONOTONIC nanoseconds)
//	leasehold → guard   "D <deadline>": a renewal moved the deadline
//	guard → leasehold   "R": started, waiting for the grant
//	guard → leasehold   "P <pid>": the command's pid (its process group)
//	guard → leasehold   "W": the watchdog stopped the command
//	guard → leasehold   "L": the grant's deadline had passed; nothing started
//	guard → leasehold   "E": the command could not be executed; nothing started
//	guard → leasehold   "S": processes the command started survived SIGKILL;
//	                    the guard exits without them (leasehold inherits
//	                    them and kills them again)
//
// A guard is started ahead of time, while its leasehold follows: it pays
// for the process start and leasehold's package inits then, and waits for
// the grant with no deadline granted, so it can start nothing. Leading
// costs one message and one fork/exec of the user's command.

// maxGrantEnv bounds the entries of a grant: a guard never allocates on
// the word of a count it has not checked.
const maxGrantEnv = 1 << 16

// errLeaseOver is a grant whose deadline has passed when the guard reads
// it: the command must not start.
var errLeaseOver = errors.New("the lease ran out before the command could start")

// writeGrant writes the grant message for deadline and env to w.
func writeGrant(w *bufio.Writer, deadline int64, env []string) error {
	fmt.Fprintf(w, "G %d %d\n", deadline, len(env))
	for _, e := range env {
		w.WriteString(strconv.Quote(e))
		w.WriteByte('\n')
	}
	return w.Flush()
}

// readGrant reads a grant from lines (the next lines of the control
// socket): the deadline and the environment. A malformed grant is an
// error that says what was wrong; nothing is started on it.
func readGrant(first string, next func() (string, bool)) (deadline int64, env []string, err error) {
	f := strings.Fields(first)
	if len(f) != 3 || f[0] != "G" {
		return 0, nil, fmt.Errorf("control message %q is not a grant (G <deadline> <entries>)", first)
	}
	deadline, err = strconv.ParseInt(f[1], 10, 64)
	if err != nil || deadline <= 0 {
		return 0, nil, fmt.Errorf("grant: deadline %q is not a positive monotonic time", f[1])
	}
	n, err := strconv.Atoi(f[2])
	if err != nil || n < 0 || n > maxGrantEnv {
		return 0, nil, fmt.Errorf("grant: %q is not a number of environment entries (0 to %d)", f[2], maxGrantEnv)
	}
	env = make([]string, 0, min(n, 256))
	for i := range n {
		line, ok := next()
		if !ok {
			return 0, nil, fmt.Errorf("grant: the control socket ended after %d of %d environment entries", i, n)
		}
		e, err := strconv.Unquote(line)
		if err != nil || !strings.Contains(e, "=") || strings.IndexByte(e, 0) >= 0 {
			return 0, nil, fmt.Errorf("grant: environment entry %d (%q) is not a quoted NAME=value", i+1, line)
		}
		env = append(env, e)
	}
	return deadline, env, nil
}

// guardLease is the guard's view of the lease, on the monotonic clock:
// the deadline granted, moved later by renewals. Its rules are the guard's
// safety: nothing starts on a deadline that has passed, a deadline never
// moves earlier than one already known nor later once the command is being
// stopped, and the watchdog stops the command only when the deadline has
// really passed (a renewal that raced with the timer's firing re-arms it).
type guardLease struct {
	deadline int64
	stopping bool
}

// grant checks a granted deadline at now: the command may start only
// before it.
func (l *guardLease) grant(deadline, now int64) error {
	if now >= deadline {
		return errLeaseOver
	}
	l.deadline = deadline
	return nil
}

// renewed takes a renewal's deadline d and reports whether the watchdog
// must be re-armed: only a later deadline counts, and none once stopping.
func (l *guardLease) renewed(d int64) bool {
	if d <= l.deadline || l.stopping {
		return false
	}
	l.deadline = d
	return true
}

// fired is the watchdog's timer firing at now: expired when the deadline
// has passed (stop the command), else the wait until it (re-arm).
func (l *guardLease) fired(now int64) (expired bool, rearm time.Duration) {
	if now < l.deadline {
		return false, time.Duration(l.deadline - now)
	}
	return true, 0
}

// left is the wait from now until the deadline (≤ 0: passed).
func (l *guardLease) left(now int64) time.Duration { return time.Duration(l.deadline - now) }
