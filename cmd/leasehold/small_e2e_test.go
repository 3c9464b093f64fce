package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Small things a careful user notices (issue 22): status against a store
// that cannot be reached names the lock without an empty "()", and sim
// --svg says where the timeline went (on stderr; stdout stays the report).
func TestSmallMessages(t *testing.T) {
	if binErr != nil {
		t.Fatal(binErr)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("backend: etcd\nname: x\netcd:\n  endpoints: [\"127.0.0.1:1\"]\n  dial_timeout: 500ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(binary, "status", "--config", cfg).Output()
	if !strings.HasPrefix(string(out), "lock:     x\n") || strings.Contains(string(out), "()") {
		t.Errorf("status on an unreachable store:\n%s", out)
	}
	svg := filepath.Join(dir, "t.svg")
	c := exec.Command(binary, "sim", "--svg", svg, "leader-crash")
	var stderr strings.Builder
	c.Stderr = &stderr
	stdout, err := c.Output()
	if err != nil {
		t.Fatalf("sim: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "wrote the timeline of the first run (seed 1) to "+svg) || strings.Contains(string(stdout), svg) {
		t.Errorf("sim --svg: stderr %q, stdout mentions the file: %v", stderr.String(), strings.Contains(string(stdout), svg))
	}
}
