//go:build unix

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/internal/servers"
)

// The controller binary, built once into a directory TestMain removes.
var (
	buildOnce sync.Once
	buildDir  string
	binary    string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "controller-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// controller builds the controller (once) and returns its path.
func controller(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binary = filepath.Join(buildDir, "controller")
		if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// leadWriteStop runs the controller with args: it must lead, write with
// its term, and on SIGTERM release the lock and exit 0, without logging an
// error. Every wait is on its output, bounded by one deadline.
func leadWriteStop(t *testing.T, args ...string) {
	cmd := exec.Command(controller(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var seen []string
	const limit = 30 * time.Second
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	// next returns the next output line that matches re, or fails the test
	// at the deadline or when the output ends first. With a nil re it waits
	// for the end of the output.
	next := func(what string, re *regexp.Regexp) []string {
		t.Helper()
		for {
			select {
			case l, open := <-lines:
				if !open && re == nil {
					return nil
				}
				if !open {
					t.Fatalf("the output ended before %s:\n%s", what, strings.Join(seen, "\n"))
				}
				seen = append(seen, l)
				if re == nil {
					continue
				}
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			case <-deadline.C:
				cmd.Process.Kill()
				t.Fatalf("no %s within %v:\n%s", what, limit, strings.Join(seen, "\n"))
			}
		}
	}

	term := next("leading", regexp.MustCompile(`level=INFO msg=leading term=(\d+)$`))[1]
	next("a write with term "+term, regexp.MustCompile(`level=INFO msg=wrote term=`+term+` value="reconciled 0"$`))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	next("the release", regexp.MustCompile(`msg="released the lock" .*term=`+term+`$`))
	next("the stop", regexp.MustCompile(`level=INFO msg=stopped$`))
	next("the end of the output", nil) // the process exits
	if err := cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("exit status %d after SIGTERM, want 0:\n%s", exit.ExitCode(), strings.Join(seen, "\n"))
		}
		t.Fatal(err)
	}
	for _, l := range seen {
		if strings.Contains(l, "level=ERROR") {
			t.Errorf("an error was logged: %s", l)
		}
	}
}

// TestMemory: the default backend, which needs no server.
func TestMemory(t *testing.T) {
	leadWriteStop(t)
}

// TestEtcd, TestConsul and TestKube run the controller on a real store
// (the servers scripts/test builds into .cache/bin; skipped outside CI when
// they are missing), so the -backend flags are known to plug in.
func TestEtcd(t *testing.T) {
	s, err := servers.StartEtcd()
	servers.Require(t, err)
	defer s.Stop()
	leadWriteStop(t, "-backend", "etcd", "-etcd-endpoints", s.Endpoint)
}

func TestConsul(t *testing.T) {
	s, err := servers.StartConsul()
	servers.Require(t, err)
	defer s.Stop()
	leadWriteStop(t, "-backend", "consul", "-consul-address", s.Address)
}

func TestKube(t *testing.T) {
	s, err := servers.StartKube()
	servers.Require(t, err)
	defer s.Stop()
	leadWriteStop(t, "-backend", "kube", "-kubeconfig", s.AdminKubeconfig, "-kube-namespace", "default")
}
