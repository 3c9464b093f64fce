//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// runChild runs the command while ctx lasts, under a guard process
// (leasehold itself, see guard.go) that makes sure the command and its
// children never outlive this process nor the lease. When ctx is cancelled
// (leadership lost or shutdown) the guard is told to stop the command:
// SIGTERM, then SIGKILL after grace. Whatever way the guard ends, runChild
// returns only once no process of the command's group runs any more, so the
// lock is never released while one may.
func runChild(ctx context.Context, command, env []string, grace time.Duration, feed *leaseFeed, log *slog.Logger) (code int, how childEnd) {
	self, err := os.Executable()
	if err != nil {
		log.Error("cannot find the leasehold executable to start the command under", "err", err)
		return 127, endExited
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Error("cannot make the guard's control socket", "err", err)
		return 127, endExited
	}
	ctl, theirs := os.NewFile(uintptr(fds[0]), "guard-control"), os.NewFile(uintptr(fds[1]), "guard-control")
	defer ctl.Close()
	cmd := exec.Command(self, append([]string{guardCommand, "--"}, command...)...)
	cmd.Env = append(env, guardParentEnv+"="+strconv.Itoa(os.Getpid()), guardGraceEnv+"="+grace.String(),
		guardDeadlineEnv+"="+strconv.FormatInt(feed.deadline.Load(), 10))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{theirs} // fd 3 of the guard
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGUSR1}

	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that started the
		// guard exits: keep this goroutine on its thread until it is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	err = <-started
	theirs.Close()
	if err != nil {
		log.Error("cannot start the command", "command", command, "err", err)
		return 127, endExited
	}
	log.Info("started the command", "guard", cmd.Process.Pid, "command", command)

	// What the guard says: the command's process group, and whether its
	// watchdog fired. It closes at the guard's exit.
	var group atomic.Int64
	var fired atomic.Bool
	said := make(chan struct{})
	go func() {
		defer close(said)
		sc := bufio.NewScanner(ctl)
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == "W":
				fired.Store(true)
			case strings.HasPrefix(line, "P "):
				if p, err := strconv.Atoi(line[2:]); err == nil && p > 0 {
					group.Store(int64(p))
				}
			}
		}
	}()
	// Every new deadline goes to the guard.
	feeding := make(chan struct{})
	defer close(feeding)
	go func() {
		for {
			select {
			case <-feeding:
				return
			case <-feed.notify:
				fmt.Fprintf(ctl, "D %d\n", feed.deadline.Load())
			}
		}
	}()
	// The guard is gone: make sure its command's group is too.
	finish := func(err error) int {
		<-said
		code := status(err)
		if pg := int(group.Load()); pg > 0 {
			if !groupGone(pg) {
				log.Warn("processes of the command's group outlived its guard; killing them", "group", pg)
			}
			awaitGroup(pg, log)
		}
		return code
	}
	select {
	case err := <-done:
		code := finish(err)
		switch {
		case fired.Load():
			log.Warn("the guard stopped the command: the lease ran out with no renewal from leasehold (paused or starved?)", "status", code)
			return code, endWatchdog
		case guardKilled(err):
			log.Error("the command's guard was killed; killed the command's process group", "err", err)
			return code, endGuardDied
		}
		return code, endExited
	case <-ctx.Done():
	}
	log.Info("stopping the command", "grace", grace)
	cmd.Process.Signal(syscall.SIGTERM)
	wait := grace + 5*time.Second
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-done:
		code = finish(err)
	case <-t.C:
		log.Error("the command's guard did not finish; killing it", "waited", wait)
		cmd.Process.Kill()
		code = finish(<-done)
	}
	log.Info("the command stopped", "status", code)
	return code, endStopped
}

// guardKilled reports whether the guard ended by a signal rather than by
// passing its command's status on.
func guardKilled(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return true
		}
	}
	return false
}
