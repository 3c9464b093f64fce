//go:build !linux

package main

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"time"
)

// warmGuard does not exist outside Linux: there is no guard process.
type warmGuard struct{}

func (g *guards) refill() {}
func (g *guards) close()  {}

// runChild is run's weaker fallback outside Linux: there is no guard
// process, no parent-death signal and no subreaper. leasehold starts the
// command itself (in a process group of its own where the system has them),
// holds it to the lease with a watchdog timer in its own process — which a
// pause of leasehold pauses too — and stops it on a lost leadership or
// shutdown: SIGTERM to the group and SIGKILL after grace (on Windows, the
// process is killed at once). If leasehold itself is killed, the command
// may outlive it. docs/cli.md says so.
func runChild(ctx context.Context, g *guards, env []string, feed *leaseFeed, log *slog.Logger) (code int, how childEnd, started bool) {
	command, grace := g.command, g.grace
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	ownGroup(cmd)
	if err := cmd.Start(); err != nil {
		log.Error("cannot start the command", "command", command, "err", err)
		return 127, endExited, false
	}
	log.Info("started the command", "pid", cmd.Process.Pid, "command", command)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	watchdog := time.NewTimer(time.Duration(feed.deadline.Load() - monoNow()))
	defer watchdog.Stop()
	how = endStopped
wait:
	for {
		select {
		case err := <-done:
			return status(err), endExited, true
		case <-ctx.Done():
			break wait
		case <-feed.notify:
			watchdog.Reset(time.Duration(feed.deadline.Load() - monoNow()))
		case <-watchdog.C:
			if monoNow() < feed.deadline.Load() {
				watchdog.Reset(time.Duration(feed.deadline.Load() - monoNow()))
				continue
			}
			log.Warn("the lease ran out with no renewal; stopping the command")
			how = endWatchdog
			break wait
		}
	}
	log.Info("stopping the command", "grace", grace)
	terminate(cmd)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-done:
		code = status(err)
	case <-t.C:
		kill(cmd)
		code = status(<-done)
	}
	log.Info("the command stopped", "status", code)
	return code, how, true
}
