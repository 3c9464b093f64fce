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
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// selfExe names the running executable whatever became of its file.
const selfExe = "/proc/self/exe"

// guardBinary, when set, is the executable started as the guard instead
// of this one (tests: the test binary is not leasehold).
var guardBinary string

// warmGuard is a guard process started ahead of time, waiting for its
// grant on its control socket (guardproto.go).
type warmGuard struct {
	cmd  *exec.Cmd
	ctl  *os.File
	done chan error // the guard's exit, once
}

// startGuard starts a guard for command: it pays for the process start and
// leasehold's package inits now, and starts nothing before its grant.
func (g *guards) startGuard() (*warmGuard, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find the leasehold executable to start the command under: %w", err)
	}
	// The guard is this very binary, started through /proc/self/exe: the
	// file on disk may have been replaced (an upgrade deletes and copies
	// it) or removed since leasehold started, and the guard must be the
	// leasehold that runs.
	path := self
	if _, err := os.Stat(selfExe); err == nil {
		path = selfExe
	}
	if guardBinary != "" {
		self, path = guardBinary, guardBinary
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot make the guard's control socket: %w", err)
	}
	ctl, theirs := os.NewFile(uintptr(fds[0]), "guard-control"), os.NewFile(uintptr(fds[1]), "guard-control")
	defer theirs.Close()
	cmd := exec.Command(path, append([]string{guardCommand, "--"}, g.command...)...)
	cmd.Args[0] = self
	cmd.Env = append(os.Environ(), guardParentEnv+"="+strconv.Itoa(os.Getpid()), guardGraceEnv+"="+g.grace.String())
	if _, ok := g.log.Handler().(*slog.JSONHandler); ok {
		cmd.Env = append(cmd.Env, guardLogJSONEnv+"=1")
	}
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
	if err := <-started; err != nil {
		ctl.Close()
		return nil, fmt.Errorf("cannot start the command's guard: %w", err)
	}
	return &warmGuard{cmd: cmd, ctl: ctl, done: done}, nil
}

// take returns a started guard: the one started ahead of time if there
// is one, else a new one. The next one is started when this one's command
// has ended (refill), not now: a guard's start is 100 ms and more of CPU,
// which would compete with the user's command starting.
func (g *guards) take() (*warmGuard, error) {
	g.mu.Lock()
	w := g.next
	g.next = nil
	g.mu.Unlock()
	if w != nil {
		select {
		case err := <-w.done: // it ended while waiting: start another
			g.log.Warn("the guard started ahead of time ended before its grant; starting another", "err", err)
			w.ctl.Close()
			w = nil
		default:
		}
	}
	if w == nil {
		var err error
		if w, err = g.startGuard(); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// refill starts a guard ahead of time unless one waits already; one that
// cannot start is logged, and the next take starts one itself.
func (g *guards) refill() {
	go func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.next != nil || g.closed {
			return
		}
		w, err := g.startGuard()
		if err != nil {
			g.log.Warn("cannot start a guard ahead of time; one starts when it is needed", "err", err)
			return
		}
		g.next = w
	}()
}

// close ends the guard waiting for a grant, if any: its control socket
// reaches end of file and it exits having started nothing.
func (g *guards) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if w := g.next; w != nil {
		g.next = nil
		w.ctl.Close()
		<-w.done
	}
}

// runChild runs the command while ctx lasts, under a guard process
// (leasehold itself, see guard_linux.go) that makes sure the command and
// its children never outlive this process nor the lease. When ctx is
// cancelled (leadership lost or shutdown) the guard is told to stop the
// command: SIGTERM, then SIGKILL after grace, to every process the command
// started. The command never runs past the lease's deadline + grace: if
// the guard has not stopped it by then (stopped, frozen, stuck), leasehold
// kills the command's processes itself, at once if that instant has
// passed. Whatever way the guard ends, runChild returns only once no
// process of the command runs any more — its group, what left the group,
// what lost its guard — so the lock is never released while one may.
func runChild(ctx context.Context, g *guards, env []string, feed *leaseFeed, log *slog.Logger) (code int, how childEnd, started bool) {
	command, grace := g.command, g.grace
	w, err := g.take()
	if err != nil {
		log.Error("cannot start the command", "command", command, "err", err)
		return 127, endExited, false
	}
	ctl, cmd, done := w.ctl, w.cmd, w.done
	defer ctl.Close()
	defer g.refill() // the next leadership's (or cron run's) guard
	if ctx.Err() != nil {
		// The leadership ended (or a stop was asked for) before the
		// grant: nothing starts. The guard reads end of file and exits.
		ctl.Close()
		<-done
		log.Info("the leadership ended before the command could start; nothing started")
		return 0, endStopped, false
	}
	if err := writeGrant(bufio.NewWriter(ctl), feed.deadline.Load(), env); err != nil {
		// The guard is gone (it ended by itself while waiting): its exit
		// is reported below like any other.
		log.Warn("the command's guard did not take its grant", "err", err)
	}
	log.Info("started the command", "guard", cmd.Process.Pid, "command", command)

	// What the guard says: the command's process group, and whether its
	// watchdog fired. It closes at the guard's exit.
	var group atomic.Int64
	var fired, late, failed, strayed atomic.Bool
	said := make(chan struct{})
	go func() {
		defer close(said)
		sc := bufio.NewScanner(ctl)
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == "W":
				fired.Store(true)
			case line == "L":
				late.Store(true)
			case line == "E":
				failed.Store(true)
			case line == "S":
				strayed.Store(true)
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
	// The guard is gone: make sure its command's group is too, and every
	// process the command started that outlived the guard (the guard, a
	// child subreaper, waits for all of them, unless it was killed, gave
	// up on them, or leasehold killed it: then they are leasehold's).
	var killed []int // processes leasehold killed itself, to reap
	finish := func(err error) int {
		<-said
		code := status(err)
		if pg := int(group.Load()); pg > 0 {
			if !groupGone(pg) {
				log.Warn("processes of the command's group outlived its guard; killing them", "group", pg)
			}
			awaitGroup(pg, log)
		}
		if guardKilled(err) || strayed.Load() || killed != nil {
			awaitStrays(commandMark(env), killed, log)
		}
		return code
	}
	select {
	case err := <-done:
		code := finish(err)
		switch {
		case late.Load():
			// Not the command's doing either: the lease ran out between
			// leading and the grant (a starved or paused process).
			log.Warn("the lease ran out before the guard could start the command; nothing started", "status", code)
			return code, endWatchdog, false
		case failed.Load():
			log.Error("the command could not be started; nothing started", "command", command, "status", code)
			return code, endExited, false
		case fired.Load():
			log.Warn("the guard stopped the command: the lease ran out with no renewal from leasehold (paused or starved?)", "status", code)
			return code, endWatchdog, true
		case guardKilled(err):
			log.Error("the command's guard was killed; killed the command's process group", "err", err)
			return code, endGuardDied, true
		}
		return code, endExited, true
	case <-ctx.Done():
	}
	// The command may run until the lease's deadline plus the grace and
	// not an instant longer: grace < lease duration − renew deadline, so
	// that is before any other replica may lead. The guard enforces it;
	// if the guard does not (stopped, frozen, starved), leasehold kills
	// the command's processes itself at that instant, without waiting for
	// the guard, and at once when it has passed already.
	guardPid := cmd.Process.Pid
	overrun := func(why string) {
		if pg := int(group.Load()); pg > 0 {
			syscall.Kill(-pg, syscall.SIGKILL) // the quickest first
		}
		killed = append(killed, killTree(guardPid, log)...)
		if n := len(killed); n > 0 {
			log.Warn(why, "killed", n, "guard_stopped", stoppedProc(guardPid))
		}
	}
	until := feed.deadline.Load() + int64(grace)
	if left := time.Duration(until - monoNow()); left <= 0 {
		overrun("the lease's deadline and the grace after it passed before the command was stopped; killed its processes at once")
		cmd.Process.Signal(syscall.SIGTERM)
	} else {
		log.Info("stopping the command", "grace", min(grace, left))
		cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(left)
		select {
		case err := <-done:
			t.Stop()
			code = finish(err)
			log.Info("the command stopped", "status", code)
			return code, endStopped, group.Load() > 0 || !failed.Load() && !late.Load()
		case <-t.C:
			overrun("the command's guard did not stop the command by the lease's deadline and grace (stopped or stuck?); killed its processes")
		}
	}
	// The command's processes are gone; a stopped guard will not exit by
	// itself, and a slow one only delays the lock's release: it gets a
	// second at most.
	if stoppedProc(guardPid) {
		cmd.Process.Kill()
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case err := <-done:
		code = finish(err)
	case <-t.C:
		log.Error("the command's guard did not finish; killing it")
		cmd.Process.Kill()
		code = finish(<-done)
	}
	log.Info("the command stopped", "status", code)
	return code, endStopped, group.Load() > 0 || !failed.Load() && !late.Load()
}

// commandMark is what tells the command's processes from leasehold's
// other children once they have lost their guard: the entries of the
// command's environment that name this leadership.
func commandMark(env []string) []string {
	var mark []string
	for _, e := range env {
		for _, k := range []string{"LEASEHOLD_TERM=", "LEASEHOLD_LOCK=", "LEASEHOLD_IDENTITY=", "LEASEHOLD_SLOT="} {
			if strings.HasPrefix(e, k) {
				mark = append(mark, e)
			}
		}
	}
	if !slices.ContainsFunc(mark, func(e string) bool { return strings.HasPrefix(e, "LEASEHOLD_TERM=") }) {
		return nil // not a leadership's command: nothing to tell it by
	}
	return mark
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
