//go:build windows

package main

import "os/exec"

// ownGroup does nothing on Windows: processes have no groups to signal.
func ownGroup(cmd *exec.Cmd) {}

// terminate kills the process: Windows has no SIGTERM to send.
func terminate(cmd *exec.Cmd) { cmd.Process.Kill() }

// kill kills the process.
func kill(cmd *exec.Cmd) { cmd.Process.Kill() }
