//go:build linux

package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// guardCommand is the hidden command under which run starts the user's
// command. The guard keeps the command from outliving its leadership:
//
//   - it is started ahead of time, while leasehold follows, and waits for
//     the grant (guardproto.go): the deadline until which the lease is
//     valid and the command's environment. Until then it starts nothing;
//     it refuses a grant whose deadline has passed; leasehold's death or a
//     stop signal while it waits ends it;
//   - it is a watchdog: leasehold tells it, after every acknowledged
//     renewal, the instant on the machine's monotonic clock until which the
//     lease is valid; when that instant passes with no newer word (leasehold
//     paused, stuck or starved), the guard stops the command by itself:
//     SIGTERM, SIGKILL after the grace. Since grace < lease duration − renew
//     deadline, the command is gone before any other replica may start. The
//     command never runs past the deadline + grace: a guard that was itself
//     frozen past it kills at once, with no SIGTERM;
//   - it gets SIGUSR1 when leasehold dies, even by SIGKILL (a parent-death
//     signal), and its control socket reaches end of file; either way it
//     kills the command's process group at once;
//   - the command gets SIGKILL when the guard dies (its own parent-death
//     signal), and leasehold, told the command's process group, kills that
//     group and waits for it to be empty before it releases the lock;
//   - it is a child subreaper, so the command's own children that lose
//     their parent are reparented to it and waited for, not to init: every
//     process the command started stays below the guard in the process
//     tree, also one that moved to a process group or session of its own
//     (setsid, setpgid), and the guard finds them all in /proc;
//   - on SIGTERM it forwards SIGTERM to the command's group and to every
//     other process below it, and sends SIGKILL to all of them after the
//     grace; when the command exits on its own it does the same to
//     whatever the command left behind;
//   - it exits only when every process it waits for is gone, with the
//     command's status.
//
// The command runs in a process group of its own, so the guard can signal
// the group without signalling itself. guardCommand names it (run.go).

// Environment of the guard, set by run and removed before the command runs.
const (
	guardParentEnv = "LEASEHOLD_GUARD_PARENT" // pid of the leasehold that started it
	guardGraceEnv  = "LEASEHOLD_GUARD_GRACE"  // SIGTERM → SIGKILL delay
	// guardLogJSONEnv is "1" when leasehold logs JSON (--log-format
	// json): the guard's lines follow.
	guardLogJSONEnv = "LEASEHOLD_GUARD_LOG_JSON"
)

// The guard's control socket is its file descriptor 3; guardproto.go has
// the messages.
const guardControlFD = 3

const prSetChildSubreaper = 36 // prctl(2) PR_SET_CHILD_SUBREAPER

type reaped struct {
	pid int
	ws  syscall.WaitStatus
}

func guardFail(format string, args ...any) int {
	guardLog().Error(fmt.Sprintf(format, args...))
	return 1
}

// guardLog is the guard's logger: on stderr, in leasehold's --log-format
// (guardLogJSONEnv says JSON), its lines marked guard=true.
var guardLog = sync.OnceValue(func() *slog.Logger {
	opts := &slog.HandlerOptions{ReplaceAttr: durationText}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if os.Getenv(guardLogJSONEnv) == "1" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(h).With("guard", true)
})

func guard(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return 2
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	// leasehold may have died before the parent-death signal was armed.
	if parent, err := strconv.Atoi(os.Getenv(guardParentEnv)); err != nil || os.Getppid() != parent {
		return 1
	}
	// Never compute a wait from an unchecked value: run checked these.
	grace, err := time.ParseDuration(os.Getenv(guardGraceEnv))
	if err != nil || grace <= 0 {
		return guardFail("%s=%q is not a positive duration", guardGraceEnv, os.Getenv(guardGraceEnv))
	}
	os.Unsetenv(guardParentEnv)
	os.Unsetenv(guardGraceEnv)
	ctl := os.NewFile(guardControlFD, "control")
	if ctl == nil {
		return guardFail("no control socket on fd %d", guardControlFD)
	}
	syscall.CloseOnExec(guardControlFD) // the command does not get it
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)

	// The control socket's lines; end of file means leasehold is gone.
	// Only this goroutine reads the socket, so what it has not read is
	// still on the socket, where it can always be read at once.
	in := newControlLines(guardControlFD)

	fmt.Fprintf(ctl, "R\n")
	// Warm: wait for the grant. Until it comes nothing may start, and a
	// word that leasehold is gone or stopping ends the guard.
	var lease guardLease
	var env []string
	first, ok := in.wait(sigs)
	if !ok {
		return 1
	}
	var deadline int64
	deadline, env, err = readGrant(first, func() (string, bool) { return in.wait(nil) })
	if err != nil {
		return guardFail("%v", err)
	}
	if err := lease.grant(deadline, monoNow()); err != nil {
		ctl.Write([]byte("L\n"))
		return guardFail("%v", err)
	}

	path, err := exec.LookPath(args[0])
	if err != nil {
		guardLog().Error("cannot start the command", "command", args[0], "err", err)
		ctl.Write([]byte("E\n"))
		return 127
	}
	if lease.left(monoNow()) <= 0 {
		ctl.Write([]byte("L\n"))
		return guardFail("%v", errLeaseOver)
	}
	// The command's parent-death signal fires when the thread that forked
	// it exits: keep this goroutine on its thread for good.
	runtime.LockOSThread()
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		// ForkExec reports a failed exec: the command never ran.
		guardLog().Error("cannot start the command", "command", args[0], "err", err)
		ctl.Write([]byte("E\n"))
		return 127
	}
	group := -pid // the command leads its own group
	fmt.Fprintf(ctl, "P %d\n", pid)

	reaps := make(chan reaped, 16)
	go func() { // reap every child, the command and adopted orphans alike
		defer close(reaps)
		for {
			var ws syscall.WaitStatus
			p, err := syscall.Wait4(-1, &ws, 0, nil)
			if err == syscall.EINTR {
				continue
			}
			if err != nil { // ECHILD: nothing left to wait for
				return
			}
			reaps <- reaped{p, ws}
		}
	}()

	code := -1
	self := os.Getpid()
	// signalAll sends sig to the command's group and to every other process
	// below the guard: those that moved to a group or session of their
	// own (setsid, setpgid) too, each once. The group is signalled at
	// once; finding the others means reading /proc, which a SIGTERM does
	// not wait for: that is done a millisecond later, unless by then the
	// guard has reaped everything (then there are none). SIGKILL finds
	// them at once.
	sent := map[int]syscall.Signal{}
	signalOthers := func(sig syscall.Signal) {
		for _, p := range liveDescendants(self) {
			if p.pgrp != pid && (sig == syscall.SIGKILL || sent[p.pid] != sig) {
				syscall.Kill(p.pid, sig)
				sent[p.pid] = sig
			}
		}
	}
	var others syscall.Signal
	var scan <-chan time.Time // signal the others when it fires
	signalAll := func(sig syscall.Signal) {
		syscall.Kill(group, sig)
		if sig == syscall.SIGKILL {
			scan = nil
			signalOthers(sig)
			return
		}
		others = sig
		if scan == nil {
			scan = time.After(time.Millisecond)
		}
	}
	var kill <-chan time.Time   // SIGKILL to all of them when it fires
	var sweep <-chan time.Time  // SIGKILL again to any forked meanwhile
	var giveUp <-chan time.Time // stop waiting for survivors of SIGKILL
	var sweeper *time.Ticker
	defer func() {
		if sweeper != nil {
			sweeper.Stop()
		}
	}()
	killNow := func() {
		signalAll(syscall.SIGKILL)
		lease.stopping, kill = true, nil
		if sweep == nil {
			sweeper = time.NewTicker(10 * time.Millisecond)
			sweep = sweeper.C
		}
		if giveUp == nil {
			giveUp = time.After(time.Second)
		}
	}
	// stop asks the command and all it started to stop: first, then
	// SIGKILL after the grace — but never later than the grace after the
	// lease's deadline, the latest instant the command may run (grace <
	// lease duration − renew deadline: before any other replica may lead).
	// A deadline that passed longer ago than that (the guard was frozen or
	// starved past it) leaves no grace: SIGKILL at once.
	// renewal applies a control line: "D <deadline>" moves the deadline.
	renewal := func(line string) bool {
		if v, isD := strings.CutPrefix(line, "D "); isD {
			if d, err := strconv.ParseInt(v, 10, 64); err == nil {
				return lease.renewed(d)
			}
		}
		return false
	}
	// catchUp reads the renewals already sent before the deadline is
	// judged: a guard frozen alone (SIGSTOP, its cgroup) thaws with them
	// waiting on its socket. It reports whether the deadline moved.
	gone := false
	catchUp := func() (moved bool) {
		in.pull()
		for {
			line, ok := in.pop()
			if !ok {
				break
			}
			moved = renewal(line) || moved
		}
		if in.eof && !gone {
			gone = true
			killNow() // leasehold is gone: no grace
		}
		return moved
	}
	stop := func(first syscall.Signal) {
		if lease.stopping {
			if kill != nil {
				signalAll(first)
			}
			return
		}
		catchUp()
		if lease.stopping { // leasehold went away meanwhile
			return
		}
		wait := min(grace, lease.left(monoNow())+grace)
		if wait <= 0 {
			guardLog().Warn("the lease's deadline and the grace after it have passed: killing the command at once")
			killNow()
			return
		}
		signalAll(first)
		lease.stopping = true
		kill = time.After(wait)
	}
	watchdog := time.NewTimer(lease.left(monoNow()))
	defer watchdog.Stop()
	for {
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGUSR1: // leasehold died: no grace
				killNow()
			default:
				stop(sig.(syscall.Signal))
			}
		case <-in.readable:
			if catchUp() {
				watchdog.Reset(lease.left(monoNow()))
			}
			in.rearm()
		case <-watchdog.C:
			catchUp()
			if expired, rearm := lease.fired(monoNow()); !expired {
				watchdog.Reset(rearm) // a renewal raced with the firing
				continue
			}
			if !lease.stopping {
				guardLog().Warn("the lease's deadline passed with no renewal acknowledged by the store (the store unreachable or slow, or leasehold paused): stopping the command", "grace", grace)
				ctl.Write([]byte("W\n"))
				stop(syscall.SIGTERM)
			}
		case r, ok := <-reaps:
			if !ok {
				if code < 0 {
					code = 1
				}
				return code
			}
			if r.pid == pid {
				code = waitCode(r.ws)
				// Whatever the command left behind goes too.
				stop(syscall.SIGTERM)
			}
		case <-kill:
			killNow()
		case <-scan:
			scan = nil
			signalOthers(others)
		case <-sweep:
			if len(liveDescendants(self)) > 0 {
				signalAll(syscall.SIGKILL)
			}
		case <-giveUp:
			// Something outlived SIGKILL (stuck in the kernel); do not
			// wait for it forever, and tell leasehold, which inherits it
			// and kills it again.
			guardLog().Error("processes the command started are still running after SIGKILL")
			ctl.Write([]byte("S\n"))
			if code < 0 {
				code = 137
			}
			return code
		}
	}
}

// controlLines reads the guard's control socket in the guard's main
// goroutine only: a helper goroutine merely waits until the socket is
// readable. Bytes not yet read stay on the socket, so pull always finds
// every line leasehold has sent, also right after the guard was frozen.
type controlLines struct {
	fd       int
	partial  []byte
	queue    []string
	eof      bool          // the socket ended (or sent garbage): leasehold is gone
	readable chan struct{} // the socket may have bytes: pull, then rearm
	again    chan struct{}
}

func newControlLines(fd int) *controlLines {
	c := &controlLines{fd: fd, readable: make(chan struct{}, 1), again: make(chan struct{}, 1)}
	go func() {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(p, -1); err != nil && err != unix.EINTR {
				return
			}
			c.readable <- struct{}{}
			<-c.again
		}
	}()
	return c
}

// rearm lets the helper wait for the socket again, once pulled.
func (c *controlLines) rearm() {
	if c.eof {
		return // a closed socket is readable for ever
	}
	select {
	case c.again <- struct{}{}:
	default:
	}
}

// pull reads what the socket holds now, without blocking, into lines.
func (c *controlLines) pull() {
	var buf [16 << 10]byte
	for !c.eof {
		n, _, err := unix.Recvfrom(c.fd, buf[:], unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil || n == 0 {
			c.eof = true
			return
		}
		c.partial = append(c.partial, buf[:n]...)
		for {
			i := bytes.IndexByte(c.partial, '\n')
			if i < 0 {
				break
			}
			c.queue = append(c.queue, string(c.partial[:i]))
			c.partial = c.partial[i+1:]
		}
		if len(c.partial) > 1<<20 { // no message is that long
			c.eof = true
		}
	}
}

// pop returns the next line read, if any.
func (c *controlLines) pop() (string, bool) {
	if len(c.queue) == 0 {
		return "", false
	}
	l := c.queue[0]
	c.queue = c.queue[1:]
	return l, true
}

// wait returns the next line, waiting for it; false at the socket's end
// or on a signal from sigs (nil: signals wait).
func (c *controlLines) wait(sigs <-chan os.Signal) (string, bool) {
	for {
		if l, ok := c.pop(); ok {
			return l, true
		}
		if c.eof {
			return "", false
		}
		select {
		case <-sigs:
			return "", false
		case <-c.readable:
			c.pull()
			c.rearm()
		}
	}
}

// waitCode turns a wait status into an exit status (128+signal if killed).
func waitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
