package storeprofile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// The leader's work as `leasehold run` has it: leasehold starts its guard
// (a Go binary: here the test binary, re-executed), the guard starts the
// command (sh), and the work runs once the command does; told to stop, the
// guard sends SIGTERM to the command and both exit. StartWork and
// Work.Stop time that with real processes. The re-executed binary acts as
// the guard from this package's init, before the test's TestMain starts
// any server.
const guardEnv = "LEASEHOLD_PROFILE_GUARD"

func init() {
	if os.Getenv(guardEnv) != "1" {
		return
	}
	cmd := exec.Command("sh", "-c", "echo ready; exec sleep 3600")
	out, _ := cmd.StdoutPipe()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		os.Exit(1)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	fmt.Print(line)
	// Told to stop, or orphaned (the test's end of stdin closed: it died):
	// the command goes too.
	gone := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(gone)
	}()
	select {
	case <-term:
	case <-gone:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	os.Exit(0)
}

// Work is a running guard and command.
type Work struct {
	cmd   *exec.Cmd
	stdin io.Closer // closed when this process dies: the guard goes then
}

// StartWork starts the guard (this binary, re-executed) and its command
// and returns once the command runs.
func StartWork() (*Work, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	// A -race binary sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), guardEnv+"=1", "GORACE=atexit_sleep_ms=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the guard did not start its command: %q %v", line, err)
	}
	go io.Copy(io.Discard, out)
	return &Work{cmd: cmd, stdin: stdin}, nil
}

// Stop sends SIGTERM to the guard and waits for it to exit.
func (w *Work) Stop() {
	w.cmd.Process.Signal(syscall.SIGTERM)
	w.cmd.Wait()
	w.stdin.Close()
}

// Kill is a crash of `leasehold run`: its end of the guard's stdin goes,
// and the guard, orphaned, stops the command and exits, as run's guard
// does when its parent dies.
func (w *Work) Kill() {
	w.stdin.Close()
	w.cmd.Wait()
}
