//go:build !linux

package servers

import "os/exec"

// serverProcess: outside Linux there is no parent-death signal; the servers
// are killed by Stop (the tests run on Linux; this keeps the package
// building elsewhere).
func serverProcess(cmd *exec.Cmd) {}

// killServer kills the server process.
func killServer(cmd *exec.Cmd) { cmd.Process.Kill() }
