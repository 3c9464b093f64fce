//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startedGuard is a guard process started by the test as leasehold starts
// one ahead of time: the test is its parent and holds its control socket.
type startedGuard struct {
	cmd    *exec.Cmd
	ctl    *os.File
	stderr *bytes.Buffer
	lines  chan string // what the guard writes on its socket
	exited chan struct{}
	code   int
}

func startGuardProcess(t testing.TB, command ...string) *startedGuard {
	t.Helper()
	return startGuardGrace(t, 200*time.Millisecond, command...)
}

// startGuardGrace is startGuardProcess with the given grace.
func startGuardGrace(t testing.TB, grace time.Duration, command ...string) *startedGuard {
	t.Helper()
	if binErr != nil {
		t.Fatal(binErr)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctl, theirs := os.NewFile(uintptr(fds[0]), "ctl"), os.NewFile(uintptr(fds[1]), "theirs")
	g := &startedGuard{ctl: ctl, stderr: &bytes.Buffer{}, lines: make(chan string, 16), exited: make(chan struct{})}
	g.cmd = exec.Command(binary, append([]string{guardCommand, "--"}, command...)...)
	g.cmd.Env = append(os.Environ(), guardParentEnv+"="+strconv.Itoa(os.Getpid()), guardGraceEnv+"="+grace.String())
	g.cmd.Stderr = g.stderr
	g.cmd.ExtraFiles = []*os.File{theirs}
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	theirs.Close()
	go func() {
		defer close(g.lines)
		sc := bufio.NewScanner(ctl)
		for sc.Scan() {
			g.lines <- sc.Text()
		}
	}()
	go func() {
		g.cmd.Wait()
		g.code = g.cmd.ProcessState.ExitCode()
		close(g.exited)
	}()
	t.Cleanup(func() {
		g.cmd.Process.Kill()
		<-g.exited
		ctl.Close()
	})
	return g
}

func (g *startedGuard) grant(t testing.TB, deadline int64, env ...string) {
	t.Helper()
	if err := writeGrant(bufio.NewWriter(g.ctl), deadline, env); err != nil {
		t.Fatal(err)
	}
}

// wait returns the guard's exit status; limit only bounds a hang.
func (g *startedGuard) wait(t testing.TB, limit time.Duration) int {
	t.Helper()
	select {
	case <-g.exited:
		return g.code
	case <-time.After(limit):
		t.Fatalf("the guard did not exit within %v; stderr:\n%s", limit, g.stderr)
		return 0
	}
}

// line waits for the guard's next control line starting with prefix.
func (g *startedGuard) line(t testing.TB, prefix string, limit time.Duration) string {
	t.Helper()
	timeout := time.After(limit)
	for {
		select {
		case l, ok := <-g.lines:
			if !ok {
				g.wait(t, limit)
				t.Fatalf("the guard's socket ended (exit %d) before a %q line; stderr:\n%s", g.code, prefix, g.stderr)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("no %q line from the guard within %v; stderr:\n%s", prefix, limit, g.stderr)
		}
	}
}

// A guard waiting for its grant starts nothing when leasehold goes away
// (its socket ends), when it is told to stop, or when the grant's deadline
// has passed by the time it reads it.
func TestGuardStartsNothingWithoutAValidGrant(t *testing.T) {
	for _, tc := range []struct {
		name string
		act  func(t *testing.T, g *startedGuard)
		want string // on stderr
		said string // on the control socket, when the guard must say why
	}{
		{"socket closed", func(t *testing.T, g *startedGuard) { g.ctl.Close() }, "", ""},
		{"SIGTERM", func(t *testing.T, g *startedGuard) { g.cmd.Process.Signal(syscall.SIGTERM) }, "", ""},
		{"parent died (SIGUSR1)", func(t *testing.T, g *startedGuard) { g.cmd.Process.Signal(syscall.SIGUSR1) }, "", ""},
		{"deadline passed", func(t *testing.T, g *startedGuard) { g.grant(t, monoNow()-1, "A=1") }, "the lease ran out before the command could start", "L"},
		{"malformed grant", func(t *testing.T, g *startedGuard) { g.ctl.Write([]byte("G 5 1\nA=1\n")) }, "is not a quoted NAME=value", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "ran")
			g := startGuardProcess(t, "sh", "-c", "touch "+marker)
			tc.act(t, g)
			if code := g.wait(t, 30*time.Second); code == 0 {
				t.Errorf("the guard exited 0, want a failure")
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the command ran")
			}
			if !strings.Contains(g.stderr.String(), tc.want) {
				t.Errorf("stderr %q, want it to say %q", g.stderr, tc.want)
			}
			if tc.said != "" {
				var said []string
				for l := range g.lines {
					said = append(said, l)
				}
				if !slices.Contains(said, tc.said) {
					t.Errorf("the guard said %q on its socket, want a %q line", said, tc.said)
				}
			}
		})
	}
}

// Granted, the guard starts the command with the granted environment (and
// not its own variables), says its pid, and passes its status on.
func TestGuardRunsGrantedCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "env")
	g := startGuardProcess(t, "sh", "-c", `env > "$OUT"; exit 7`)
	g.line(t, "R", 30*time.Second)
	g.grant(t, monoNow()+int64(time.Minute), "OUT="+out, "LEASEHOLD_TERM=99", "PATH="+os.Getenv("PATH"))
	g.line(t, "P ", 30*time.Second)
	if code := g.wait(t, 30*time.Second); code != 7 {
		t.Fatalf("the guard exited %d, want the command's 7; stderr:\n%s", code, g.stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := string(b)
	if !strings.Contains(env, "LEASEHOLD_TERM=99\n") || strings.Contains(env, "LEASEHOLD_GUARD_") {
		t.Fatalf("the command's environment:\n%s\nwant LEASEHOLD_TERM=99 and none of the guard's variables", env)
	}
}

// With no renewal after the grant, the watchdog stops the command at the
// deadline and says so; a guard renewed before its deadline keeps its
// command running past it.
func TestGuardWatchdog(t *testing.T) {
	renewed := startGuardProcess(t, "sh", "-c", "while :; do sleep 0.05; done")
	renewed.line(t, "R", 30*time.Second) // warm: the deadline is not spent on its start
	renewed.grant(t, monoNow()+int64(500*time.Millisecond))
	renewed.line(t, "P ", 30*time.Second)
	now := monoNow()
	renewed.ctl.Write([]byte("D " + strconv.FormatInt(now+int64(2*time.Minute), 10) + "\n"))
	renewed.ctl.Write([]byte("D " + strconv.FormatInt(now+int64(100*time.Millisecond), 10) + "\n")) // earlier: ignored

	// Granted later and for longer than the renewed guard's first
	// deadline, never renewed; leasehold logs JSON, and so does it.
	t.Setenv(guardLogJSONEnv, "1")
	alone := startGuardProcess(t, "sh", "-c", "while :; do sleep 0.05; done")
	alone.line(t, "R", 30*time.Second)
	alone.grant(t, monoNow()+int64(1500*time.Millisecond))
	alone.line(t, "P ", 30*time.Second)
	alone.line(t, "W", 30*time.Second)
	if code := alone.wait(t, 30*time.Second); code == 0 {
		t.Fatalf("the stopped command's status passed on as 0")
	}
	var said struct {
		Level, Msg, Grace string
		Guard             bool
	}
	first, _, _ := strings.Cut(alone.stderr.String(), "\n")
	if err := json.Unmarshal([]byte(first), &said); err != nil || said.Level != "WARN" || !said.Guard || said.Grace != "200ms" ||
		!strings.Contains(said.Msg, "no renewal acknowledged by the store") {
		t.Fatalf("the guard's stderr does not say why it stopped the command, in JSON with the grace as text (%v):\n%s", err, alone.stderr)
	}
	// By now the renewed guard's first deadline has passed too.
	select {
	case l := <-renewed.lines:
		t.Fatalf("the renewed guard said %q:\n%s", l, renewed.stderr)
	case <-renewed.exited:
		t.Fatalf("the renewed guard exited with %d:\n%s", renewed.code, renewed.stderr)
	default:
	}
}

// BenchmarkGuardGrant: from the grant sent to a warm guard to the command's
// first line, against the same command started directly by the benchmark,
// in one run (what leading costs beyond the command's own start).
//
//	go test -run '^$' -bench GuardGrant -benchtime 30x ./cmd/leasehold
func BenchmarkGuardGrant(b *testing.B) {
	out := filepath.Join(b.TempDir(), "first")
	script := `date +%s%N > "$OUT"`
	firstAt := func() time.Time {
		body, err := os.ReadFile(out)
		if err != nil {
			b.Fatal(err)
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
		if err != nil {
			b.Fatalf("first line %q: %v", body, err)
		}
		return time.Unix(0, ns)
	}
	var granted, direct []time.Duration
	for range b.N {
		g := startGuardProcess(b, "sh", "-c", script)
		g.line(b, "R", 30*time.Second)
		sent := time.Now()
		g.grant(b, monoNow()+int64(time.Minute), "OUT="+out, "PATH="+os.Getenv("PATH"))
		if code := g.wait(b, 30*time.Second); code != 0 {
			b.Fatalf("the guard exited %d:\n%s", code, g.stderr)
		}
		granted = append(granted, firstAt().Sub(sent))

		c := exec.Command("sh", "-c", script)
		c.Env = []string{"OUT=" + out, "PATH=" + os.Getenv("PATH")}
		sent = time.Now()
		if err := c.Run(); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, firstAt().Sub(sent))
	}
	ms := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2]) / 1e6
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(granted), "grant-to-first-line-p50-ms")
	b.ReportMetric(ms(direct), "command-alone-p50-ms")
}
