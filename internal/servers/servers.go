// Package servers finds and starts the real servers backend tests talk to:
// built by scripts/test into the repository's .cache/bin, started on free
// loopback ports in a temporary directory, stopped at the end.
//
// When a server cannot be found, tests skip on a developer machine and fail
// when CI=true.
package servers

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ErrMissing means the server binary was not found.
var ErrMissing = errors.New("server binary not found")

// Root returns the module root (the directory holding go.mod), searching up
// from the working directory.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "tools")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("servers: no module root above the working directory")
		}
		dir = parent
	}
}

// Find returns the path of a server binary: .cache/bin/<name> under the
// module root, else <name> on PATH (for example Debian's etcd-server).
func Find(name string) (string, error) {
	if root, err := Root(); err == nil {
		p := filepath.Join(root, ".cache", "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: %s (run scripts/test to build it into .cache/bin)", ErrMissing, name)
}

// MissingOK reports whether a missing server may skip tests: not in CI.
func MissingOK() bool { return os.Getenv("CI") != "true" }

// Require ends the test when the server could not be started: a skip on a
// developer machine when the binary is missing, a failure otherwise.
func Require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrMissing) && MissingOK() {
		t.Skip(err)
	}
	t.Fatal(err)
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
