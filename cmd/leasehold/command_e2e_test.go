package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A command that cannot be started is refused before campaigning, with
// exit 2 and a hint for command strings; --shell runs a command string
// with sh -c (issue 22).
func TestCommandResolvedBeforeCampaign(t *testing.T) {
	needBinaryAndEtcd(t)
	cfg, _ := writeConfig(t, "")
	for _, sub := range []string{"run", "cron"} {
		args := []string{sub, "--config", cfg}
		if sub == "cron" {
			args = append(args, "--schedule", "@every 1s")
		}
		for _, c := range []struct {
			command []string
			want    []string
		}{
			{[]string{"echo hi && date"}, []string{`cannot start "echo hi && date"`, "--shell"}},
			{[]string{"/no/such/program", "x"}, []string{`cannot start "/no/such/program"`}},
		} {
			cmd := exec.Command(binary, append(append(args, "--"), c.command...)...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("%s -- %q: %v, want exit 2\n%s", sub, c.command, err, out)
				continue
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("%s -- %q: output lacks %q:\n%s", sub, c.command, w, out)
				}
			}
			if strings.Contains(string(out), "started leading") || strings.Contains(string(out), "scheduling") {
				t.Errorf("%s -- %q campaigned before refusing:\n%s", sub, c.command, out)
			}
		}
	}
	// --shell: a command string, run by sh -c.
	out := filepath.Join(t.TempDir(), "out.txt")
	cmd := exec.Command(binary, "run", "--config", cfg, "--shell", "--", `echo "$X" > "$OUT" && echo there >> "$OUT"`)
	cmd.Env = append(os.Environ(), "OUT="+out, "X=hi")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run --shell: %v\n%s", err, b)
	}
	if b, _ := os.ReadFile(out); string(b) != "hi\nthere\n" {
		t.Errorf("run --shell wrote %q, want \"hi\\nthere\\n\"", b)
	}
}
