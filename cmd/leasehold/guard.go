package main

import (
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// guardCommand is the hidden command under which run starts the user's
// command. The guard keeps the command from outliving leasehold:
//
//   - it gets SIGUSR1 when leasehold dies, even by SIGKILL (a parent-death
//     signal), and then kills the command's process group;
//   - it is a child subreaper, so the command's own children that lose
//     their parent are reparented to it and waited for, not to init;
//   - on SIGTERM it forwards SIGTERM to the command's group and sends
//     SIGKILL after the grace; when the command exits on its own it does
//     the same to whatever the command left behind;
//   - it exits only when every process it waits for is gone, with the
//     command's status.
//
// The command runs in a process group of its own, so the guard can signal
// the group without signalling itself.
const guardCommand = "__guard"

// Environment of the guard, set by run and removed before the command runs.
const (
	guardParentEnv = "LEASEHOLD_GUARD_PARENT" // pid of the leasehold that started it
	guardGraceEnv  = "LEASEHOLD_GUARD_GRACE"  // SIGTERM → SIGKILL delay
)

const prSetChildSubreaper = 36 // prctl(2) PR_SET_CHILD_SUBREAPER

type reaped struct {
	pid int
	ws  syscall.WaitStatus
}

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
	grace, err := time.ParseDuration(os.Getenv(guardGraceEnv))
	if err != nil || grace <= 0 {
		grace = 5 * time.Second
	}
	os.Unsetenv(guardParentEnv)
	os.Unsetenv(guardGraceEnv)
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)

	path, err := exec.LookPath(args[0])
	if err != nil {
		os.Stderr.WriteString("leasehold: cannot start " + args[0] + ": " + err.Error() + "\n")
		return 127
	}
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		os.Stderr.WriteString("leasehold: cannot start " + args[0] + ": " + err.Error() + "\n")
		return 127
	}
	group := -pid // the command leads its own group

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
	var kill <-chan time.Time // SIGKILL to the group when it fires
	var giveUp <-chan time.Time
	stopping := false
	stop := func(first syscall.Signal) {
		syscall.Kill(group, first)
		if !stopping {
			stopping = true
			kill = time.After(grace)
		}
	}
	for {
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGUSR1: // leasehold died: no grace
				syscall.Kill(group, syscall.SIGKILL)
				stopping, kill = true, nil
				giveUp = time.After(time.Second)
			default:
				stop(sig.(syscall.Signal))
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
			syscall.Kill(group, syscall.SIGKILL)
			kill = nil
			giveUp = time.After(time.Second)
		case <-giveUp:
			// Something left the command's process group and outlived
			// SIGKILL to it; do not wait for it forever.
			os.Stderr.WriteString("leasehold: processes that left the command's process group are still running\n")
			if code < 0 {
				code = 137
			}
			return code
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
