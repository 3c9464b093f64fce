package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/elector"
)

// SIGHUP is a stop like SIGTERM: the command is stopped, the lock released
// (the other replica takes over at once, well within the 2s lease) and
// leasehold exits 0.
func TestRunSIGHUP(t *testing.T) {
	needBinaryAndEtcd(t)
	cfg, lock := writeConfig(t, "")
	out := filepath.Join(t.TempDir(), "out.txt")
	procs := map[string]*proc{}
	for _, id := range []string{"a", "b"} {
		procs[id] = startLeasehold(t, id, []string{"OUT=" + out},
			"run", "--config", cfg, "--id", id, "--grace", "300ms", "--", "sh", "-c", writer)
	}
	ls := waitFor(t, out, 10*time.Second, "a leader writing", func(ls []line) bool { return len(ls) >= 3 })
	first := lastID(ls)
	procs[first].cmd.Process.Signal(syscall.SIGHUP)
	moved := watchHolder(t, lock, first, 10*time.Second)
	select {
	case <-procs[first].done:
	case <-time.After(5 * time.Second):
		t.Fatal("leasehold did not exit after SIGHUP")
	}
	if st := procs[first].cmd.ProcessState; st.ExitCode() != 0 {
		t.Fatalf("leasehold ended with %v after SIGHUP, want exit status 0", st)
	}
	if moved > time.Second {
		t.Fatalf("the lock changed hands %v after SIGHUP (lease 2s): it was not released", moved)
	}
	ls = waitFor(t, out, 10*time.Second, "the other replica writing", func(ls []line) bool { return lastID(ls) != first })
	// Every line of the first leader's command precedes the second's.
	var lastFirst, firstSecond time.Time
	for _, l := range ls {
		if l.id == first {
			lastFirst = l.at
		} else if firstSecond.IsZero() {
			firstSecond = l.at
		}
	}
	if !firstSecond.After(lastFirst) {
		t.Fatalf("%s's command wrote at %v, after the next leader started at %v", first, lastFirst, firstSecond)
	}
}

// A stop signal while connecting to a store that never answers ends
// leasehold at once, cleanly: run and sidecar exit 0 with a short "stopped"
// line, status exits 128 + the signal (it read nothing, as a shell says of a
// command a signal ended). With credentials the etcd client
// authenticates while connecting, which ignores the stop unless leasehold
// stops waiting for it.
func TestSignalDuringStartup(t *testing.T) {
	if binErr != nil {
		t.Fatal(binErr)
	}
	for _, tc := range []struct {
		name  string
		creds bool
		sig   syscall.Signal
		args  []string
		code  int
	}{
		{"run", false, syscall.SIGTERM, []string{"run", "--", "sleep", "60"}, 0},
		{"run with credentials", true, syscall.SIGTERM, []string{"run", "--", "sleep", "60"}, 0},
		{"run SIGINT", false, syscall.SIGINT, []string{"run", "--", "sleep", "60"}, 0},
		{"sidecar", false, syscall.SIGTERM, []string{"sidecar", "--http", "127.0.0.1:0"}, 0},
		{"sidecar with credentials", true, syscall.SIGTERM, []string{"sidecar", "--http", "127.0.0.1:0"}, 0},
		{"sidecar SIGHUP", false, syscall.SIGHUP, []string{"sidecar", "--http", "127.0.0.1:0"}, 0},
		{"status", false, syscall.SIGTERM, []string{"status"}, 143},
		{"status SIGINT", false, syscall.SIGINT, []string{"status"}, 130},
		{"status with credentials", true, syscall.SIGTERM, []string{"status"}, 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := ""
			if tc.creds {
				pw := filepath.Join(t.TempDir(), "pw")
				if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				extra = "  username: u\n  password_file: " + pw + "\n"
			}
			cfg, connecting := silentEtcdConfig(t, extra)
			p := startLeasehold(t, tc.name, nil, append([]string{tc.args[0], "--config", cfg}, tc.args[1:]...)...)
			// Signal once it is connecting to the store (which never
			// answers), however long a loaded machine takes to get there.
			select {
			case <-connecting:
			case <-p.done:
				t.Fatalf("exited before connecting: %v\n%s", p.cmd.ProcessState, p.logs.String())
			case <-time.After(time.Minute):
				t.Fatalf("no connection to the store within a minute\n%s", p.logs.String())
			}
			sent := time.Now()
			p.cmd.Process.Signal(tc.sig)
			// Before the 10s dial timeout: the signal ended it, not the
			// store's silence (a bound on a quiet machine is milliseconds;
			// a loaded one gets the rest).
			select {
			case <-p.done:
			case <-time.After(9 * time.Second):
				t.Fatalf("still running 9s after %v", tc.sig)
			}
			took := time.Since(sent)
			logs := p.logs.String()
			if st := p.cmd.ProcessState; st.ExitCode() != tc.code {
				t.Fatalf("ended with %v %v after %v, want exit status %d\n%s", st, took, tc.sig, tc.code, logs)
			}
			if !strings.Contains(logs, "stopped") || strings.Contains(logs, "context canceled") ||
				strings.Contains(logs, "no answer") || strings.Count(logs, "\n") > 1 {
				t.Fatalf("want one short line saying it stopped, got:\n%s", logs)
			}
		})
	}
}

// A record no candidate writes — a hundred-year lease, a renewal an hour
// ahead of this clock — is reported as corrupt, with what the candidates
// do about it and how to clear it, and status exits 4, not 0.
func TestStatusAbsurdRecord(t *testing.T) {
	needBinaryAndEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := etcd.New(ctx, etcd.Config{Endpoints: []string{etcdSrv.Endpoint}, Prefix: "/e2e/"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Now()
	for _, tc := range []struct {
		name  string
		rec   elector.Record
		wants []string
	}{
		{"hundred-year lease", elector.Record{Holder: "x", LeaseDuration: 100 * 365 * 24 * time.Hour, AcquireTime: now, RenewTime: now, Term: 3},
			[]string{"longer than any candidate writes", "wait out their own lease duration"}},
		{"renewed an hour ahead", elector.Record{Holder: "x", LeaseDuration: 2 * time.Second, AcquireTime: now, RenewTime: now.Add(time.Hour), Term: 3},
			[]string{"in the future by this machine's clock", "Candidates time leases on their own clocks"}},
	} {
		cfg, lock := writeConfig(t, "")
		if _, err := c.Lock(lock).Create(ctx, tc.rec); err != nil {
			t.Fatal(err)
		}
		text, code := statusOf(t, "status", "--config", cfg)
		for _, want := range append(tc.wants, "problem:", "etcdctl del /e2e/"+lock) {
			if !strings.Contains(text, want) {
				t.Errorf("%s: status lacks %q:\n%s", tc.name, want, text)
			}
		}
		js, jcode := statusOf(t, "status", "--config", cfg, "--json")
		var rep statusReport
		if err := json.Unmarshal([]byte(js), &rep); err != nil {
			t.Fatalf("status --json: %v: %q", err, js)
		}
		if code != exitNoStore || jcode != exitNoStore || rep.State != stateCorrupt || rep.Problem == "" {
			t.Errorf("%s: exit %d and %d, state %q, problem %q; want exit %d, state corrupt, a problem", tc.name, code, jcode, rep.State, rep.Problem, exitNoStore)
		}
	}
}

// A record whose term cannot grow any more: status says so, and what to do.
func TestStatusTermExhausted(t *testing.T) {
	needBinaryAndEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := etcd.New(ctx, etcd.Config{Endpoints: []string{etcdSrv.Endpoint}, Prefix: "/e2e/"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		holder string
		code   int // 0 while someone holds the lock, 3 when released
	}{{"x", 0}, {"", 3}} {
		cfg, lock := writeConfig(t, "")
		now := time.Now()
		if _, err := c.Lock(lock).Create(ctx, elector.Record{Holder: tc.holder, LeaseDuration: time.Second,
			AcquireTime: now, RenewTime: now, Term: elector.MaxTerm}); err != nil {
			t.Fatal(err)
		}
		key := "/e2e/" + lock
		text, code := statusOf(t, "status", "--config", cfg)
		for _, want := range []string{"problem:", "term exhausted", "no candidate can take the lock over",
			"delete the record (etcd key " + key, "etcdctl del " + key, "reset whatever is fenced with the term",
			"restart the candidates"} {
			if !strings.Contains(text, want) {
				t.Errorf("holder %q: status lacks %q:\n%s", tc.holder, want, text)
			}
		}
		if code != tc.code {
			t.Errorf("holder %q: status exit %d, want %d", tc.holder, code, tc.code)
		}
		js, code := statusOf(t, "status", "--config", cfg, "--json")
		var rep statusReport
		if err := json.Unmarshal([]byte(js), &rep); err != nil {
			t.Fatalf("status --json: %v: %q", err, js)
		}
		if !strings.HasPrefix(rep.Problem, "term exhausted: ") || !strings.Contains(rep.Problem, key) ||
			rep.Term != elector.MaxTerm || code != tc.code {
			t.Errorf("holder %q: status --json exit %d, %+v; want exit %d and a term exhausted problem naming %s",
				tc.holder, code, rep, tc.code, key)
		}
	}
}

// statusOf runs the binary and returns its stdout and exit status.
func statusOf(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out strings.Builder
	cmd := exec.Command(binary, args...)
	cmd.Stdout = &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	t.Fatal(err)
	return "", 0
}
