//go:build linux

package main

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the command these tests supervise: with
// treeRoleEnv set it runs one of the roles below instead of the tests.
const treeRoleEnv = "LEASEHOLD_TEST_TREE_ROLE"

func init() {
	switch os.Getenv(treeRoleEnv) {
	case "parent":
		treeParent()
	case "child":
		treeChild()
	default:
		return
	}
	os.Exit(0)
}

// treeParent is the command: it starts a child in a session of its own
// (setsid: it leaves the command's process group), writes its pid, and
// runs until killed; SIGTERM is noted in a file and otherwise ignored.
func treeParent() {
	dir := os.Getenv("TREE_DIR")
	noteTerm(filepath.Join(dir, "term-parent"))
	self, _ := os.Executable()
	c := exec.Command(self)
	c.Env = append(os.Environ(), treeRoleEnv+"=child")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		os.Exit(3)
	}
	writeAtomic(filepath.Join(dir, "parent.pid"), strconv.Itoa(os.Getpid()))
	c.Wait()
	select {}
}

// treeChild is what the command left behind in a session of its own: it
// writes its pid, then a heartbeat (CLOCK_MONOTONIC ns) every 2 ms, and
// notes and ignores SIGTERM.
func treeChild() {
	dir := os.Getenv("TREE_DIR")
	noteTerm(filepath.Join(dir, "term-child"))
	writeAtomic(filepath.Join(dir, "child.pid"), strconv.Itoa(os.Getpid()))
	hb := filepath.Join(dir, "heartbeat")
	for {
		writeAtomic(hb, strconv.FormatInt(monoNow(), 10))
		time.Sleep(2 * time.Millisecond)
	}
}

func noteTerm(path string) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	go func() {
		for range c {
			os.WriteFile(path, nil, 0o644)
		}
	}()
}

func writeAtomic(path, s string) {
	os.WriteFile(path+".tmp", []byte(s), 0o644)
	os.Rename(path+".tmp", path)
}

// tree is one run of the tree command, seen from the test.
type tree struct {
	dir string
	exe string
}

func newTree(t testing.TB) *tree {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &tree{dir: t.TempDir(), exe: exe}
}

// env is the command's environment, as run grants it.
func (tr *tree) env() []string {
	return append(os.Environ(), treeRoleEnv+"=parent", "TREE_DIR="+tr.dir,
		"LEASEHOLD_LEADER=1", "LEASEHOLD_TERM=42", "LEASEHOLD_LOCK=tree-test", "LEASEHOLD_IDENTITY="+tr.dir)
}

// pids waits until the command and its escaped child have written their
// pids (limit only bounds a hang).
func (tr *tree) pids(t testing.TB, limit time.Duration) (parent, child int) {
	t.Helper()
	end := time.Now().Add(limit)
	read := func(name string) int {
		b, err := os.ReadFile(filepath.Join(tr.dir, name))
		if err != nil {
			return 0
		}
		n, _ := strconv.Atoi(string(b))
		return n
	}
	for {
		parent, child = read("parent.pid"), read("child.pid")
		if parent > 0 && child > 0 {
			return parent, child
		}
		if time.Now().After(end) {
			t.Fatalf("the command did not start its escaping child within %v", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (tr *tree) noted(name string) bool {
	_, err := os.Stat(filepath.Join(tr.dir, name))
	return err == nil
}

// lastBeat is the escaped child's last heartbeat, CLOCK_MONOTONIC ns.
func (tr *tree) lastBeat(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tr.dir, "heartbeat"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// running reports whether pid runs (a zombie does not), and kills it if
// so: a failed test leaves nothing behind.
func running(pid int) bool {
	p, ok := readProc(pid)
	if ok && p.live() {
		syscall.Kill(pid, syscall.SIGKILL)
		return true
	}
	return false
}

// waitUntil waits until CLOCK_MONOTONIC reads at least t: the instant
// itself is the event the test needs (a lease's deadline having passed).
func waitUntil(t int64) {
	for monoNow() < t {
		time.Sleep(time.Duration(t-monoNow()) + time.Millisecond)
	}
}

// What the command starts in a session or process group of its own is
// stopped with it: on SIGTERM to the guard (leasehold stopping), when the
// watchdog fires, and when the command exits by itself.
func TestGuardKillsEscapedDescendants(t *testing.T) {
	for _, tc := range []struct {
		name string
		act  func(t *testing.T, g *startedGuard, parent int)
	}{
		{"SIGTERM", func(t *testing.T, g *startedGuard, parent int) { g.cmd.Process.Signal(syscall.SIGTERM) }},
		{"watchdog", func(t *testing.T, g *startedGuard, parent int) {}},
		{"command exits", func(t *testing.T, g *startedGuard, parent int) { syscall.Kill(parent, syscall.SIGKILL) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t)
			g := startGuardGrace(t, 100*time.Millisecond, tr.exe)
			g.line(t, "R", 30*time.Second)
			deadline := monoNow() + int64(time.Minute)
			if tc.name == "watchdog" {
				deadline = monoNow() + int64(2*time.Second)
			}
			g.grant(t, deadline, tr.env()...)
			g.line(t, "P ", 30*time.Second)
			parent, child := tr.pids(t, 30*time.Second)
			tc.act(t, g, parent)
			g.wait(t, 30*time.Second)
			if running(child) {
				t.Fatalf("the child that left the command's session (pid %d) outlived the guard; stderr:\n%s", child, g.stderr)
			}
			if running(parent) {
				t.Fatalf("the command (pid %d) outlived the guard", parent)
			}
			if tc.name != "command exits" && !tr.noted("term-child") {
				t.Errorf("the escaped child was killed without a SIGTERM first (the lease was not over)")
			}
		})
	}
}

// A guard that was frozen past its lease's deadline and the grace after it
// kills the command at once when it thaws: no SIGTERM, no grace — the
// lease the grace was part of is over.
func TestGuardOverdueKillsAtOnce(t *testing.T) {
	tr := newTree(t)
	grace := 100 * time.Millisecond
	g := startGuardGrace(t, grace, tr.exe)
	g.line(t, "R", 30*time.Second)
	deadline := monoNow() + int64(2*time.Second)
	g.grant(t, deadline, tr.env()...)
	g.line(t, "P ", 30*time.Second)
	parent, child := tr.pids(t, 30*time.Second)
	if err := g.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitUntil(deadline + int64(grace))
	g.cmd.Process.Signal(syscall.SIGCONT)
	g.wait(t, 30*time.Second)
	if running(child) || running(parent) {
		t.Fatalf("the command's processes outlived the guard; stderr:\n%s", g.stderr)
	}
	if tr.noted("term-parent") || tr.noted("term-child") {
		t.Fatalf("the command got SIGTERM (and a grace) after its lease's grace had run out; stderr:\n%s", g.stderr)
	}
	if !strings.Contains(g.stderr.String(), "killing the command at once") {
		t.Errorf("the guard's stderr does not say it killed at once:\n%s", g.stderr)
	}
	t.Logf("the escaped child's last heartbeat: %v after the deadline + grace (the guard thawed at it)",
		time.Duration(tr.lastBeat(t)-deadline-int64(grace)))
}

// syncLog collects what runChild logs.
type syncLog struct{ buf syncBuffer }

func (l *syncLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(&l.buf, nil)) }

// runChild, leadership over: every process the command started is gone
// when it returns, also one in a session of its own; and when the guard
// does not answer (SIGSTOP), leasehold kills them itself by the lease's
// deadline + grace — at once when that has passed — without waiting for
// the guard.
func TestRunChildEndsEveryDescendant(t *testing.T) {
	if binErr != nil {
		t.Fatal(binErr)
	}
	guardBinary = binary
	defer func() { guardBinary = "" }()
	grace := 100 * time.Millisecond
	for _, tc := range []struct {
		name        string
		stopGuard   bool
		cancelAfter bool // cancel once the deadline + grace has passed
		want        string
	}{
		{"graceful", false, false, ""},
		{"guard stopped", true, false, "did not stop the command by the lease's deadline"},
		{"guard stopped, lease over", true, true, "killed its processes at once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t)
			var logs syncLog
			g := &guards{command: []string{tr.exe}, grace: grace, log: logs.logger()}
			defer g.close()
			feed := newLeaseFeed()
			deadline := monoNow() + int64(5*time.Second) // a cold guard's start fits
			feed.deadline.Store(deadline)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type result struct {
				code    int
				how     childEnd
				started bool
			}
			res := make(chan result, 1)
			go func() {
				c, h, s := runChild(ctx, g, tr.env(), feed, logs.logger())
				res <- result{c, h, s}
			}()
			parent, child := tr.pids(t, 30*time.Second)
			p, ok := readProc(parent)
			if !ok {
				t.Fatal("the command is gone")
			}
			guardPid := p.ppid
			if tc.stopGuard {
				syscall.Kill(guardPid, syscall.SIGSTOP)
				defer syscall.Kill(guardPid, syscall.SIGKILL)
			}
			if tc.cancelAfter {
				waitUntil(deadline + int64(grace))
			}
			cancel()
			var r result
			select {
			case r = <-res:
			case <-time.After(60 * time.Second):
				t.Fatalf("runChild did not return; log:\n%s", logs.buf.String())
			}
			if running(child) || running(parent) {
				t.Fatalf("the command's processes outlived runChild (child %d, parent %d); log:\n%s", child, parent, logs.buf.String())
			}
			if r.how != endStopped || !r.started {
				t.Errorf("runChild ended %v (started %v), want stopped", r.how, r.started)
			}
			if tc.want != "" && !strings.Contains(logs.buf.String(), tc.want) {
				t.Errorf("leasehold's log does not say %q:\n%s", tc.want, logs.buf.String())
			}
			if tc.stopGuard {
				t.Logf("the escaped child's last heartbeat: %v after the deadline + grace",
					time.Duration(tr.lastBeat(t)-deadline-int64(grace)))
			}
		})
	}
}

// A guard frozen alone while leasehold kept renewing thaws with the
// renewals waiting on its socket, past the deadline it last read: it reads
// them before judging the lease, and leaves the command running.
func TestGuardThawsWithRenewals(t *testing.T) {
	tr := newTree(t)
	grace := 500 * time.Millisecond
	g := startGuardGrace(t, grace, tr.exe)
	g.line(t, "R", 30*time.Second)
	deadline := monoNow() + int64(2*time.Second)
	g.grant(t, deadline, tr.env()...)
	g.line(t, "P ", 30*time.Second)
	parent, child := tr.pids(t, 30*time.Second)
	if err := g.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	g.ctl.Write([]byte("D " + strconv.FormatInt(monoNow()+int64(time.Minute), 10) + "\n"))
	waitUntil(deadline + int64(grace))
	g.cmd.Process.Signal(syscall.SIGCONT)
	// Stopping it now must go the graceful way: SIGTERM first.
	g.cmd.Process.Signal(syscall.SIGTERM)
	g.wait(t, 30*time.Second)
	if running(child) || running(parent) {
		t.Fatalf("the command's processes outlived the guard; stderr:\n%s", g.stderr)
	}
	for l := range g.lines {
		if l == "W" {
			t.Fatalf("the watchdog fired although the lease was renewed; stderr:\n%s", g.stderr)
		}
	}
	if !tr.noted("term-parent") {
		t.Fatalf("the command was killed without SIGTERM although its lease was renewed; stderr:\n%s", g.stderr)
	}
}
