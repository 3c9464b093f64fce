//go:build unix

package servers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// pauseProcess stops (SIGSTOP) or continues (SIGCONT) the server process.
// A stop returns once every thread of the process is stopped where the
// system shows it (Linux's /proc): kill(2) only queues the signal, and a
// thread running on another CPU may still answer a request meanwhile.
func pauseProcess(cmd *exec.Cmd, pause bool) error {
	if !pause {
		return cmd.Process.Signal(syscall.SIGCONT)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	tasks := filepath.Join("/proc", fmt.Sprint(cmd.Process.Pid), "task")
	if _, err := os.Stat(tasks); err != nil {
		return nil // no /proc: the signal is all there is to wait for
	}
	// A hang bound only: a stop takes effect within a scheduling tick.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if allStopped(tasks) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d not stopped 30s after SIGSTOP", cmd.Process.Pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// allStopped reports whether every thread under tasks (/proc/<pid>/task)
// is in the stopped state (T) or traced (t).
func allStopped(tasks string) bool {
	ents, err := os.ReadDir(tasks)
	if err != nil || len(ents) == 0 {
		return false
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(tasks, e.Name(), "stat"))
		if err != nil {
			return false
		}
		// "pid (comm) S ...": the state follows the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) || (s[i+2] != 'T' && s[i+2] != 't') {
			return false
		}
	}
	return true
}
