//go:build !unix

package servers

import (
	"errors"
	"os/exec"
)

// pauseProcess: there is no SIGSTOP outside Unix.
func pauseProcess(cmd *exec.Cmd, pause bool) error {
	return errors.New("pausing a process needs SIGSTOP (Unix only)")
}
