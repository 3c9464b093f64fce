// Command leasehold is the command-line face of leasehold: leader election
// for any program, its failover demo, and (as they land) the simulator, the
// run and sidecar modes, status and the benchmark.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
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

const usage = `leasehold: leader election over etcd, Consul, Kubernetes Leases or an
in-memory store

Usage:
  leasehold run --config FILE [flags] -- COMMAND [ARGS...]
                            run COMMAND only while this replica leads
  leasehold sidecar --config FILE [--http ADDR]
                            campaign and serve {"name":"<leader>"} on HTTP
  leasehold status --config FILE [--json]
                            who holds the lock (exit 1 if nobody)
  leasehold sim [flags] SCENARIO.yaml
                            simulate a scenario in virtual time: failover times,
                            leaderless time, dual leadership, fenced writes
  leasehold demo [flags]    three candidates on the in-memory store in real time:
                            a graceful handoff and a partitioned leader
  leasehold help            this text

Run "leasehold <command> -h" for a command's flags.
`

// stopSignals stop leasehold cleanly: the command stopped, the lock
// released, exit 0. SIGHUP is one of them, so that a closed terminal or a
// supervisor that stops with SIGHUP does not kill leasehold with the lock
// still held (until the lease runs out).
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = runCmd(ctx, args[1:], stdout, stderr)
	case "sidecar":
		err = sidecarCmd(ctx, args[1:], stdout, stderr)
	case "status":
		err = statusCmd(ctx, args[1:], stdout, stderr)
	case guardCommand:
		return guard(args[1:])
	case "sim":
		err = simCmd(args[1:], stdout, stderr)
	case "demo":
		err = demoCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "leasehold: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errStopped):
		return 0
	case errors.As(err, new(exitCode)):
		var c exitCode
		errors.As(err, &c)
		return int(c)
	case isUsage(err):
		fmt.Fprintf(stderr, "leasehold %s: %v\n", args[0], err)
		return 2
	case errors.Is(err, errUnsafe):
		fmt.Fprintf(stderr, "leasehold %s: %v\n", args[0], err)
		return 3
	default:
		fmt.Fprintf(stderr, "leasehold %s: %v\n", args[0], err)
		return 1
	}
}

// parseFlags parses a command's flags; a bad flag is a usage error (exit 2).
// The flag package's own message is printed once, with a hint, instead of
// the message and the whole usage; -h prints the usage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	}
	msg := err.Error()
	if strings.Contains(msg, "parse error") && strings.Contains(msg, "invalid value") {
		msg = strings.Replace(msg, ": parse error", ": not a duration (write it like 15s, 500ms or 2m)", 1)
	}
	return usagef("%s (leasehold %s -h lists the flags)", msg, fs.Name())
}

// usageOf prints "Usage: line" and the flags.
func usageOf(fs *flag.FlagSet, w io.Writer, line string) func() {
	return func() {
		fmt.Fprintf(w, "Usage: %s\n", line)
		fs.PrintDefaults()
	}
}

// configCommand makes the flag set of a command that reads the config: the
// shared flags and a usage line.
func configCommand(name, usage string, stderr io.Writer) (*flag.FlagSet, *overrides) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := addConfigFlags(fs)
	fs.Usage = usageOf(fs, stderr, usage)
	return fs, o
}

// parseNoArgs parses flags for a command that takes no arguments.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}
