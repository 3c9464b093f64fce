package main

import (
	"errors"
	"os/exec"
	"strings"
)

// shellPath is the shell --shell runs a command string with.
const shellPath = "/bin/sh"

// resolveCommand checks the command of run and cron before they campaign:
// a replica that would lead only to find its command missing must say so
// at once, with exit status 2, not after winning the lock (and its
// followers only when they lead). With shell, the arguments are one
// command string for sh -c (joined with spaces, as consul lock does).
// The guard resolves the executable again when it starts it.
func resolveCommand(command []string, shell bool) ([]string, error) {
	if len(command) == 0 {
		return nil, usagef("name the command to run after --")
	}
	if shell {
		return []string{shellPath, "-c", strings.Join(command, " ")}, nil
	}
	if _, err := exec.LookPath(command[0]); err != nil {
		hint := ""
		if strings.ContainsAny(command[0], " \t;&|<>$`()") {
			hint = " (a command string for a shell? give --shell, or write -- sh -c '...')"
		}
		var ee *exec.Error
		if errors.As(err, &ee) {
			err = ee.Err
		}
		return nil, usagef("cannot start %q: %v%s", command[0], err, hint)
	}
	return command, nil
}
