//go:build unix

package servers

import (
	"os/exec"
	"syscall"
)

// pauseProcess stops (SIGSTOP) or continues (SIGCONT) the server process.
func pauseProcess(cmd *exec.Cmd, pause bool) error {
	if pause {
		return cmd.Process.Signal(syscall.SIGSTOP)
	}
	return cmd.Process.Signal(syscall.SIGCONT)
}
