// Command leasehold is the command-line face of leasehold: leader election
// for any program (run, sidecar), who holds a lock (status), the failover
// simulator (sim) and a live demo. docs/cli.md describes every command,
// flag, environment variable and exit status.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/leasehold-go/leasehold/cmd/leasehold/internal/stopsignal"
)

// usageError is bad input (flags, files, configs): the command exits with
// status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// errStopped is what a command returns when a stop signal came while it
// was still starting (connecting to the store): a clean stop, exit 0, like
// a stop while running. The stop has been logged already.
var errStopped = errors.New("stopped by a signal while starting")

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// Exit statuses shared by the commands (docs/cli.md lists them all).
const (
	exitOK      = 0
	exitFailure = 1 // an operational failure
	exitUsage   = 2 // bad input, named in the message
	exitUnsafe  = 3 // sim: a safety violation
	// exitNothingRecommended is bench sweep --recommend: no combination
	// is safe and meets every constraint.
	exitNothingRecommended = 3
	exitNoLeader           = 3 // status: nobody holds a live lease
	exitNoStore            = 4 // status: the store cannot be read or the record not decoded
	// exitNotLeader is run --wait: this replica did not lead within the
	// wait. 75 is EX_TEMPFAIL of sysexits.h, "try again later": what a
	// cron job that lost the race is.
	exitNotLeader = 75
)

// The stop signals (stopsignal.Signals: SIGTERM, SIGINT, SIGHUP) stop
// leasehold cleanly: the command stopped, the lock released, exit 0.
// SIGHUP is one of them, so that a closed terminal or a supervisor that
// stops with SIGHUP does not kill leasehold with the lock still held
// (until the lease runs out). They are caught from the process's start, by
// package stopsignal's initialisation, so one that comes while leasehold
// is still starting has the same effect.

// stopSignal is the cause of the context a stop signal cancelled: commands
// whose answer the signal cut short (sim, a one-shot status) exit
// 128 + the signal's number, as a shell reports a command a signal ended.
type stopSignal struct{ sig os.Signal }

func (s stopSignal) Error() string { return s.sig.String() + " signal received" }

// code is 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
func (s stopSignal) code() int {
	if n, ok := s.sig.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return exitFailure
}

// notifyContext is signal.NotifyContext over the signals ch receives, whose
// cause says which signal came.
func notifyContext(parent context.Context, ch <-chan os.Signal) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	go func() {
		select {
		case s := <-ch:
			cancel(stopSignal{s})
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// interruptedCode is the exit status of a command a stop signal cut short.
func interruptedCode(ctx context.Context) int {
	var s stopSignal
	if errors.As(context.Cause(ctx), &s) {
		return s.code()
	}
	return exitFailure
}

func main() {
	// The guard is leasehold itself, started by run; it is not a command
	// for people, and it must not pay for building the command tree. It
	// handles the signals itself.
	if len(os.Args) > 1 && os.Args[1] == guardCommand {
		stopsignal.Release()
		os.Exit(guard(os.Args[2:]))
	}
	ctx, stop := notifyContext(context.Background(), stopsignal.C())
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(ctx, stdout, stderr)
	root.SetArgs(args)
	root.Annotations = map[string]string{firstWord: firstArg(args)}
	cmd, err := root.ExecuteC()
	name := "leasehold"
	if cmd != nil && cmd != root {
		name = "leasehold " + cmd.Name()
	}
	var c exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errStopped):
		return exitOK
	case errors.As(err, &c):
		return int(c)
	case isUsage(err):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUsage
	case errors.Is(err, errUnsafe):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUnsafe
	case errors.Is(err, errNothingRecommended):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitNothingRecommended
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitFailure
	}
}
