//go:build unix

package stopsignal

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// A stop signal sent to the process is kept on C: the package caught it
// from its initialisation, before the test ran.
func TestCaughtFromStart(t *testing.T) {
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if s := <-C(); s != syscall.SIGHUP {
		t.Fatalf("got %v, want SIGHUP", s)
	}
}

// Release delivers a stop that came before it again, with the signal's
// default action: the process ends by the signal, as it would have
// without the package. Run in a child process, which that ends.
func TestReleaseDeliversAgain(t *testing.T) {
	if os.Getenv("STOPSIGNAL_CHILD") == "1" {
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		<-waitCaught() // the stop is caught, not fatal
		Release()
		select {} // Release ends the process
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReleaseDeliversAgain$")
	cmd.Env = append(os.Environ(), "STOPSIGNAL_CHILD=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v, want it ended by SIGTERM\n%s", err, out)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("child ended with %v, want ended by SIGTERM\n%s", ee, out)
	}
}

// waitCaught waits until a stop signal is in the channel and puts it back.
func waitCaught() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		s := <-caught
		caught <- s
		close(done)
	}()
	return done
}
