package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// guardCommand is the hidden command under which run starts the user's
// command. The guard leads the command's process group and receives SIGUSR1
// when leasehold dies (a parent-death signal); it then kills the whole
// group, so the command never outlives leasehold, even after a SIGKILL.
const guardCommand = "__guard"

// guard runs args and exits with its status. SIGTERM, SIGINT and SIGHUP sent
// to the group reach the command directly; the guard only waits for it.
func guard(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return 2
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if os.Getppid() == 1 {
		return 1 // leasehold died before the parent-death signal was armed
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		os.Stderr.WriteString("leasehold: cannot start " + args[0] + ": " + err.Error() + "\n")
		return 127
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 {
				syscall.Kill(-syscall.Getpgrp(), syscall.SIGKILL)
			}
		case err := <-done:
			// Anything the command left behind in the group goes too.
			syscall.Kill(-syscall.Getpgrp(), syscall.SIGTERM)
			return status(err)
		}
	}
}
