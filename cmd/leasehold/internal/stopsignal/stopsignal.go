// Package stopsignal catches leasehold's stop signals (SIGTERM, SIGINT,
// SIGHUP) from the first moments of the process, before the other
// packages' initialisation and main run: a stop that comes while leasehold
// is still starting is kept until the command looks at it, instead of
// killing the process with the signal's default action before its handlers
// exist (docs/cli.md: a stop while starting is a clean stop).
//
// Go initialises a program's packages in dependency order, and among the
// packages ready, in the order of their import paths; this package imports
// only the standard library's signal handling, so it comes before the
// store clients (go.etcd.io, google.golang.org, k8s.io, ...) and main. The
// runtime's own start and a few packages remain before it.
package stopsignal

import (
	"os"
	"os/signal"
	"syscall"
)

// Signals are the stop signals: all alike, a clean stop.
var Signals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// caught receives the first stop signal; one is enough to stop.
var caught = make(chan os.Signal, 1)

func init() { signal.Notify(caught, Signals...) }

// C is the channel the stop signals arrive on, from the process's start.
func C() <-chan os.Signal { return caught }

// Release gives the stop signals back their default action (ending the
// process) for a program that handles them itself, such as leasehold's
// guard. A stop signal that came before is delivered again, so that it has
// the effect it would have had without this package.
func Release() {
	signal.Stop(caught)
	select {
	case s := <-caught:
		signal.Reset(s)
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			p.Signal(s)
		}
	default:
	}
}
