package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
)

// runBinary runs the built leasehold with args and returns its stdout,
// stderr and exit status; it fails the test if it runs longer than limit.
func runBinary(t *testing.T, limit time.Duration, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	if binErr != nil {
		t.Fatal(binErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%v: still running after %v", args, limit)
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// Help is on stdout, once, for `help CMD`, `CMD --help` and `CMD -h` alike,
// and lists only the command's own flags; a bad flag is one line on stderr.
func TestHelpConventions(t *testing.T) {
	for _, cmd := range []string{"run", "sidecar", "status", "sim", "demo", "version"} {
		viaHelp, errs, code := runBinary(t, 10*time.Second, "help", cmd)
		if code != 0 || errs != "" {
			t.Fatalf("help %s: exit %d, stderr %q", cmd, code, errs)
		}
		for _, flag := range []string{"--help", "-h"} {
			out, errs, code := runBinary(t, 10*time.Second, cmd, flag)
			if code != 0 || errs != "" || out != viaHelp {
				t.Errorf("%s %s: exit %d, stderr %q, stdout differs from `help %s`:\n%s", cmd, flag, code, errs, cmd, out)
			}
		}
		if n := strings.Count(viaHelp, "Usage:"); n != 1 {
			t.Errorf("help %s: %d Usage: lines, want 1:\n%s", cmd, n, viaHelp)
		}
		if !strings.Contains(viaHelp, "leasehold "+cmd) {
			t.Errorf("help %s does not show its usage:\n%s", cmd, viaHelp)
		}
	}
	status, _, _ := runBinary(t, 10*time.Second, "status", "--help")
	for _, foreign := range []string{"--id", "--release-on-cancel", "--lease-duration", "--grace"} {
		if strings.Contains(status, foreign) {
			t.Errorf("status --help lists %s, which means nothing to status", foreign)
		}
	}
	demo, _, _ := runBinary(t, 10*time.Second, "demo", "--help")
	if !strings.Contains(demo, "--lease-duration") || strings.Contains(demo, "--lease ") {
		t.Errorf("demo --help: want --lease-duration and not --lease:\n%s", demo)
	}
	out, errs, code := runBinary(t, 10*time.Second, "status", "--nope")
	if code != 2 || out != "" || strings.Count(errs, "\n") != 1 || strings.Contains(errs, "Usage") {
		t.Errorf("a bad flag: exit %d, stdout %q, stderr %q; want 2 and one line on stderr", code, out, errs)
	}
	out, errs, code = runBinary(t, 10*time.Second, "nope")
	if code != 2 || out != "" || !strings.Contains(errs, `unknown command "nope"`) {
		t.Errorf("an unknown command: exit %d, stdout %q, stderr %q; want 2", code, out, errs)
	}
}

// version and --version name the VCS revision the binary was built from.
func TestVersion(t *testing.T) {
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err) // the build has no revision to show
	}
	want := strings.TrimSpace(string(rev))
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, errs, code := runBinary(t, 10*time.Second, args...)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "leasehold ") || !strings.Contains(out, "revision "+want) {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want the revision %s", args, code, errs, out, want)
		}
	}
}

// completion prints a script for each shell that completes leasehold's
// commands.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		out, errs, code := runBinary(t, 10*time.Second, "completion", shell)
		if code != 0 || errs != "" || !strings.Contains(out, "leasehold") || len(out) < 500 {
			t.Errorf("completion %s: exit %d, stderr %q, %d bytes", shell, code, errs, len(out))
		}
	}
	// What the scripts ask the binary: the commands, then a command's flags.
	out, _, _ := runBinary(t, 10*time.Second, "__complete", "")
	for _, c := range []string{"run", "sidecar", "status", "sim", "demo"} {
		if !strings.Contains(out, c) {
			t.Errorf("completing a command lacks %s:\n%s", c, out)
		}
	}
	out, _, _ = runBinary(t, 10*time.Second, "__complete", "run", "--lease-")
	if !strings.Contains(out, "--lease-duration") {
		t.Errorf("completing run --lease- lacks --lease-duration:\n%s", out)
	}
}

// Ctrl-C is a normal way to stop the demo: exit 0, no error.
func TestDemoInterrupt(t *testing.T) {
	if binErr != nil {
		t.Fatal(binErr)
	}
	cmd := exec.Command(binary, "demo")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var out strings.Builder
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "leads (term 1)") {
			break
		}
	}
	cmd.Process.Signal(os.Interrupt)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	if err != nil || strings.Contains(out.String()+errb.String(), "context canceled") || !strings.Contains(out.String(), "stopped") {
		t.Fatalf("demo after Ctrl-C: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
}

// status says "nobody leads" (3) and "cannot read the store" (4) apart,
// in JSON too, with null times for a missing record.
func TestStatusExitCodes(t *testing.T) {
	needBinaryAndEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := etcd.New(ctx, etcd.Config{Endpoints: []string{etcdSrv.Endpoint}, Prefix: "/e2e/"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	report := func(t *testing.T, cfg string) (statusReport, int, string) {
		t.Helper()
		out, errs, code := runBinary(t, 15*time.Second, "status", "--config", cfg, "--json")
		var r statusReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("status --json: %v: %q (stderr %q)", err, out, errs)
		}
		return r, code, out
	}
	t.Run("missing", func(t *testing.T) {
		cfg, _ := writeConfig(t, "")
		r, code, out := report(t, cfg)
		if code != 3 || r.State != "missing" || !strings.Contains(out, `"acquire_time": null`) || strings.Contains(out, "0001-01-01") {
			t.Fatalf("exit %d, %s; want 3, state missing, null times", code, out)
		}
	})
	t.Run("live and expired", func(t *testing.T) {
		cfg, lock := writeConfig(t, "")
		now := time.Now()
		if _, err := c.Lock(lock).Create(ctx, elector.Record{Holder: "x", LeaseDuration: time.Hour, AcquireTime: now, RenewTime: now, Term: 4}); err != nil {
			t.Fatal(err)
		}
		if r, code, out := report(t, cfg); code != 0 || r.State != "leading" || r.Holder != "x" || r.Term != 4 {
			t.Fatalf("exit %d, %s; want 0, leading x term 4", code, out)
		}
		cfg2, lock2 := writeConfig(t, "")
		old := now.Add(-time.Minute)
		if _, err := c.Lock(lock2).Create(ctx, elector.Record{Holder: "x", LeaseDuration: time.Second, AcquireTime: old, RenewTime: old, Term: 4}); err != nil {
			t.Fatal(err)
		}
		if r, code, out := report(t, cfg2); code != 3 || r.State != "expired" {
			t.Fatalf("exit %d, %s; want 3, expired", code, out)
		}
	})
	t.Run("undecodable", func(t *testing.T) {
		cfg, lock := writeConfig(t, "")
		if err := c.PutRaw(ctx, lock, []byte("{not json")); err != nil {
			t.Fatal(err)
		}
		r, code, out := report(t, cfg)
		if code != 4 || r.State != "error" || r.Error == "" || r.Lock != lock {
			t.Fatalf("exit %d, %s; want 4, state error with an error naming the lock", code, out)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		port, err := servers.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(t.TempDir(), "dead.yaml")
		body := fmt.Sprintf("name: x\netcd: {endpoints: [\"127.0.0.1:%d\"], dial_timeout: 1s, request_timeout: 1s}\n", port)
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errs, code := runBinary(t, 30*time.Second, "status", "--config", cfg, "--json")
		var r statusReport
		if err := json.Unmarshal([]byte(out), &r); err != nil || code != 4 || r.Error == "" || r.Lock != "x" {
			t.Fatalf("exit %d, stdout %q (%v), stderr %q; want 4 and a JSON error", code, out, err, errs)
		}
		txt, errs, code := runBinary(t, 30*time.Second, "status", "--config", cfg)
		if code != 4 || !strings.Contains(errs, "leasehold status:") || !strings.Contains(txt, "cannot be read") {
			t.Fatalf("text: exit %d, stdout %q, stderr %q; want 4 and the error on stderr", code, txt, errs)
		}
	})
	t.Run("control bytes", func(t *testing.T) {
		cfg, lock := writeConfig(t, "")
		now := time.Now()
		evil := "x\x1b[2J\x1b]0;owned\x07\r\nfake: line"
		if _, err := c.Lock(lock).Create(ctx, elector.Record{Holder: evil, LeaseDuration: time.Hour, AcquireTime: now, RenewTime: now, Term: 1}); err != nil {
			t.Fatal(err)
		}
		out, _, code := runBinary(t, 15*time.Second, "status", "--config", cfg)
		if code != 0 || strings.ContainsAny(out, "\x1b\x07\r") || !strings.Contains(out, `"x\x1b[2J`) || strings.Contains(out, "\nfake: line") {
			t.Fatalf("exit %d, stdout %q: the holder reached the terminal unescaped", code, out)
		}
		if r, _, _ := report(t, cfg); r.Holder != evil {
			t.Fatalf("JSON holder %q, want %q", r.Holder, evil)
		}
	})
}

// status --watch prints a line per change of leader, from the watch, and
// says when a lease runs out with nobody renewing it; Ctrl-C ends it with 0.
func TestStatusWatch(t *testing.T) {
	needBinaryAndEtcd(t)
	cfg, lock := writeConfig(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := etcd.New(ctx, etcd.Config{Endpoints: []string{etcdSrv.Endpoint}, Prefix: "/e2e/"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := c.Lock(lock)

	w := exec.Command(binary, "status", "--config", cfg, "--watch", "--json")
	stdout, err := w.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb syncBuffer
	w.Stderr = &errb
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Process.Kill()
	lines := make(chan statusReport, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r statusReport
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r.State = "unparsable: " + sc.Text()
			}
			lines <- r
		}
		close(lines)
	}()
	next := func(want string) statusReport {
		t.Helper()
		select {
		case r := <-lines:
			if r.State+" "+r.Holder != want || r.Time == "" {
				t.Fatalf("watch printed %+v, want %q", r, want)
			}
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("watch printed nothing for 10s, want %q\nstderr: %s", want, errb.String())
		}
		return statusReport{}
	}
	next("missing ")
	now := time.Now()
	v, err := b.Create(ctx, elector.Record{Holder: "a", LeaseDuration: time.Hour, AcquireTime: now, RenewTime: now, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	next("leading a")
	// A renewal is no change of leader: nothing printed for it.
	if v, err = b.Update(ctx, elector.Record{Holder: "a", LeaseDuration: time.Second, AcquireTime: now, RenewTime: time.Now(), Term: 1}, v); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	r := next("expired a") // a second after the renewal was seen, by this machine's clock
	if took := time.Since(changed); took < 900*time.Millisecond || took > 3*time.Second {
		t.Fatalf("the lease of 1s was said to run out after %v", took)
	}
	if r.Term != 1 {
		t.Fatalf("expired report %+v, want term 1", r)
	}
	if _, err = b.Update(ctx, elector.Record{Holder: "b", LeaseDuration: time.Hour, AcquireTime: time.Now(), RenewTime: time.Now(), Term: 2}, v); err != nil {
		t.Fatal(err)
	}
	if r := next("leading b"); r.Term != 2 {
		t.Fatalf("report %+v, want term 2", r)
	}
	w.Process.Signal(os.Interrupt)
	for r := range lines {
		t.Fatalf("printed %+v after the last change", r)
	}
	if err := w.Wait(); err != nil {
		t.Fatalf("status --watch after Ctrl-C: %v, want exit 0\n%s", err, errb.String())
	}
}

// run --wait gives up with exit 75 when another replica holds the lock:
// at once with --wait 0, after the wait otherwise; a free lock is taken.
func TestRunWait(t *testing.T) {
	needBinaryAndEtcd(t)
	cfg, _ := writeConfig(t, "")
	holder := startLeasehold(t, "holder", nil, "run", "--config", cfg, "--id", "holder", "--", "sleep", "60")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, code := runBinary(t, 10*time.Second, "status", "--config", cfg); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the holder did not lead\n%s", holder.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, tc := range []struct {
		wait     string
		min, max time.Duration
	}{{"0", 0, 1500 * time.Millisecond}, {"1s", time.Second, 2500 * time.Millisecond}} {
		start := time.Now()
		out, errs, code := runBinary(t, 15*time.Second, "run", "--config", cfg, "--id", "late", "--wait", tc.wait, "--", "echo", "ran")
		took := time.Since(start)
		if code != 75 || strings.Contains(out, "ran") || !strings.Contains(errs, "did not lead within --wait") {
			t.Fatalf("--wait %s: exit %d, stdout %q, stderr %q; want 75 without running", tc.wait, code, out, errs)
		}
		if took < tc.min || took > tc.max {
			t.Fatalf("--wait %s gave up after %v, want %v to %v", tc.wait, took, tc.min, tc.max)
		}
	}
	free, _ := writeConfig(t, "")
	out, errs, code := runBinary(t, 15*time.Second, "run", "--config", free, "--wait", "0", "--", "echo", "ran")
	if code != 0 || strings.TrimSpace(out) != "ran" {
		t.Fatalf("--wait 0 on a free lock: exit %d, stdout %q, stderr %q; want the command run", code, out, errs)
	}
	if _, errs, code := runBinary(t, 10*time.Second, "run", "--config", free, "--wait", "-1s", "--", "true"); code != 2 || !strings.Contains(errs, "--wait") {
		t.Fatalf("--wait -1s: exit %d, stderr %q; want 2 naming --wait", code, errs)
	}
}

// sim stops promptly on a signal, prints what finished, and exits 128 +
// the signal; a long list of unsafe seeds is cut short in the text.
func TestSimInterruptAndSeeds(t *testing.T) {
	if binErr != nil {
		t.Fatal(binErr)
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		cmd := exec.Command(binary, "sim", "--runs", "1000000", "random-chaos")
		var out, errb syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // some runs finish
		sent := time.Now()
		cmd.Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("sim still running 10s after %v", sig)
		}
		if took := time.Since(sent); took > 3*time.Second {
			t.Errorf("sim took %v to stop after %v", took, sig)
		}
		if code := cmd.ProcessState.ExitCode(); code != 128+int(sig) {
			t.Errorf("sim after %v: exit %d, want %d\n%s", sig, code, 128+int(sig), errb.String())
		}
		if !strings.Contains(out.String(), " runs, seeds ") || !strings.Contains(errb.String(), "interrupted:") ||
			!strings.Contains(errb.String(), "of 1000000 runs finished") {
			t.Errorf("sim after %v: stdout %q, stderr %q; want the finished runs' aggregate", sig, out.String(), errb.String())
		}
	}
	out, errs, code := runBinary(t, 60*time.Second, "sim", "--runs", "40", "long-pause")
	if code != 3 || !regexp.MustCompile(`in 40 runs( \([^)]*\))?, seeds `).MatchString(errs) || !strings.Contains(errs, "and 35 more; --json lists them all") {
		t.Fatalf("sim --runs 40 long-pause: exit %d, stderr %q; want 3, five seeds and the count", code, errs)
	}
	if !regexp.MustCompile(`SAFETY VIOLATIONS in 40 runs \(dual_leadership \d+\), seeds \d+, \d+, \d+, \d+, \d+ and 35 more \(--json lists them all\)\n`).MatchString(out) {
		t.Fatalf("sim --runs 40 long-pause: the text lists the seeds as %q", out)
	}
}
