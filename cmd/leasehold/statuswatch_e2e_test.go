package main

import (
	"bufio"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/internal/servers"
)

// status --watch prints the state at start (also with no holder), says
// when the store cannot be read, and again what it holds once it answers
// (issue 22): a watch on a store that went away must not wait in silence.
func TestStatusWatchStoreDown(t *testing.T) {
	if binErr != nil {
		t.Fatal(binErr)
	}
	srv, err := servers.StartEtcd() // its own: the test kills it
	servers.Require(t, err)
	t.Cleanup(srv.Stop)
	cfg, _ := etcdStoreFaultConfig(t, srv)
	// A record, released: status --watch then waits on the store's watch.
	if out, err := exec.Command(binary, "run", "--config", cfg, "--", "true").CombinedOutput(); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	for _, asJSON := range []bool{false, true} {
		args := []string{"status", "--config", cfg, "--watch"}
		want := []string{"no leader: released", "unknown: the store cannot be read", "no leader: released"}
		if asJSON {
			args = append(args, "--json")
			want = []string{`"state":"released"`, `"state":"error"`, `"state":"released"`}
		}
		w := exec.Command(binary, args...)
		stdout, err := w.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var lines []string
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				mu.Lock()
				lines = append(lines, sc.Text())
				mu.Unlock()
			}
		}()
		// await waits (bounded) for the n-th line to say what.
		await := func(n int, what string) {
			t.Helper()
			deadline := time.Now().Add(time.Minute)
			for {
				mu.Lock()
				got := append([]string(nil), lines...)
				mu.Unlock()
				if len(got) > n {
					if !strings.Contains(got[n], what) {
						t.Fatalf("json %v: line %d is %q, want %q; all: %q", asJSON, n, got[n], what, got)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("json %v: no line %d (%q) within a minute; lines: %q", asJSON, n, what, got)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		await(0, want[0])
		srv.Kill()
		await(1, want[1])
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		await(2, want[2])
		w.Process.Kill()
		w.Wait()
	}
}
