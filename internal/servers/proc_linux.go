//go:build linux

package servers

import (
	"os/exec"
	"syscall"
)

// serverProcess puts a server in a process group of its own that dies with
// the test process (a parent-death signal), so no server outlives a test
// binary that crashed.
func serverProcess(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killServer kills the server's process group.
func killServer(cmd *exec.Cmd) { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
