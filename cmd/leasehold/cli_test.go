package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/internal/servers"
)

// silentEtcdConfig writes a config whose etcd endpoint is a loopback
// listener that accepts connections and never answers: a store that hangs.
// The channel gets a value each time a connection is accepted — the event
// that says a leasehold process has got as far as connecting.
func silentEtcdConfig(t *testing.T, extra string) (string, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 64)
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	path := filepath.Join(t.TempDir(), "f.yaml")
	cfg := fmt.Sprintf("backend: etcd\nname: x\netcd:\n  endpoints: [%q]\n  dial_timeout: 10s\n%s", ln.Addr().String(), extra)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, accepted
}

// deadEtcdConfig writes a config whose etcd endpoint is a loopback port
// nobody listens on, with a long dial timeout: anything that tries to
// connect hangs for 10s instead of failing fast.
func deadEtcdConfig(t *testing.T, extra string) string {
	t.Helper()
	port, err := servers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "f.yaml")
	cfg := fmt.Sprintf("backend: etcd\nname: x\netcd:\n  endpoints: [\"127.0.0.1:%d\"]\n  dial_timeout: 10s\n%s", port, extra)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runQuick calls run with a deadline; it fails the test if run does not
// return in time (so a hang shows as a failure, not a stuck test).
func runQuick(t *testing.T, limit time.Duration, args ...string) (code int, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		var out, errb strings.Builder
		c := run(ctx, args, &out, &errb)
		done <- result{c, errb.String()}
	}()
	select {
	case r := <-done:
		return r.code, r.stderr
	case <-time.After(limit + 2*time.Second):
		t.Fatalf("%v: still running %v after a %v deadline", args, 2*time.Second, limit)
		return 0, ""
	}
}

// Bad flags and config values are reported (exit 2, naming the flag or key)
// before anything is connected: the etcd here never answers, so a check
// made after connecting would only come after the deadline.
func TestBadInputBeforeConnecting(t *testing.T) {
	for _, tc := range []struct {
		extra string // config lines
		env   map[string]string
		args  []string // after the command's --config
		want  string
	}{
		{args: []string{"sidecar", "--retry-period", "0"}, want: "--retry-period must be positive, got 0s"},
		{args: []string{"status", "--retry-period", "1s"}, want: "unknown flag: --retry-period"},
		{args: []string{"run", "--retry-period", "0", "--", "true"}, want: "--retry-period must be positive"},
		{args: []string{"sidecar", "--retry-period", "0"}, want: "--retry-period must be positive"},
		{args: []string{"sidecar", "--lease-duration", "2000000h"}, want: "--lease-duration (2000000h0m0s) must be at most 168h0m0s"},
		{args: []string{"run", "--lease-duration", "2000000h", "--", "true"}, want: "--lease-duration (2000000h0m0s) must be at most 168h0m0s"},
		{args: []string{"sidecar", "--renew-deadline", "1s", "--retry-period", "1s"}, want: "--renew-deadline (1s) must be greater than 1.2 × --retry-period (1s) = 1.2s"},
		{args: []string{"sidecar", "--http", "notanaddr"}, want: `--http "notanaddr"`},
		{args: []string{"sidecar", "--http", "127.0.0.1:99999"}, want: `--http "127.0.0.1:99999"`},
		{args: []string{"sidecar", "--http", "127.0.0.1:http"}, want: `--http "127.0.0.1:http"`},
		{args: []string{"status", "--id", "x"}, want: "unknown flag: --id"},
		{args: []string{"run", "--id", "", "--", "true"}, want: "--id: empty"},
		{args: []string{"sidecar", "--id="}, want: "--id: empty"},
		{extra: "lease: {duration: 2000000h}\n", args: []string{"status"}, want: "f.yaml: line 6: lease.duration (2000000h0m0s) must be at most 168h0m0s"},
		{extra: "lease:\n  renew_deadline: 1s\n  retry_period: 1s\n", args: []string{"sidecar"},
			want: "f.yaml: line 7: lease.renew_deadline (1s) must be greater than 1.2 × lease.retry_period (1s) = 1.2s"},
		{extra: "lease:\n  duration: 3s\n  renew_deadline: 4s\n", args: []string{"status"},
			want: "f.yaml: line 7: lease.duration (3s) must be greater than lease.renew_deadline (4s)"},
		{extra: "lease: {retry_period: 2s}\n", args: []string{"sidecar", "--renew-deadline", "2s"},
			want: "f.yaml: line 6: --renew-deadline (2s) must be greater than 1.2 × lease.retry_period (2s) = 2.4s"},
		{env: map[string]string{"LEASEHOLD_RETRY_PERIOD": "0s"}, args: []string{"status"}, want: "LEASEHOLD_RETRY_PERIOD must be positive"},
		{extra: "  request_timeout: 2h\n", args: []string{"status"}, want: "f.yaml: line 6: etcd.request_timeout (2h0m0s) must be at most 1h0m0s"},
	} {
		t.Run(strings.Join(tc.args, " ")+" "+tc.extra, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg := deadEtcdConfig(t, tc.extra)
			args := append([]string{tc.args[0], "--config", cfg}, tc.args[1:]...)
			start := time.Now()
			code, stderr := runQuick(t, 3*time.Second, args...)
			took := time.Since(start)
			want := strings.ReplaceAll(tc.want, "f.yaml", cfg)
			if code != 2 || !strings.Contains(stderr, want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, want)
			}
			if took > time.Second {
				t.Fatalf("took %v: the input was checked only after trying to connect", took)
			}
		})
	}
}

// The etcd timeouts are at most an hour, lease.duration at most
// elector.MaxLeaseDuration; the bounds themselves are accepted.
func TestEtcdTimeoutBounds(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"name: x\netcd: {dial_timeout: 61m}\n", "line 2: etcd.dial_timeout (1h1m0s) must be at most 1h0m0s"},
		{"name: x\netcd:\n  request_timeout: 1000h\n", "line 3: etcd.request_timeout (1000h0m0s) must be at most 1h0m0s"},
		{"name: x\nlease: {duration: 169h}\n", "line 2: lease.duration (169h0m0s) must be at most 168h0m0s"},
	} {
		_, err := loadWith(t, tc.file, nil)
		if err == nil || !isUsage(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want a usage error containing %q", tc.file, err, tc.want)
		}
	}
	if _, err := loadWith(t, "name: x\netcd: {dial_timeout: 1h, request_timeout: 1h}\nlease: {duration: 168h}\n", nil); err != nil {
		t.Errorf("the bounds themselves are refused: %v", err)
	}
}

// An empty --id is a mistake and is refused; an empty identity in the file
// or in LEASEHOLD_IDENTITY means the default.
func TestEmptyIdentity(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	for _, tc := range []struct {
		file string
		env  map[string]string
	}{
		{file: "name: x\nidentity: \"\"\n"},
		{file: "name: x\n", env: map[string]string{"LEASEHOLD_IDENTITY": ""}},
	} {
		cfg, err := loadWith(t, tc.file, tc.env)
		if err != nil {
			t.Fatalf("%q %v: %v", tc.file, tc.env, err)
		}
		if !strings.HasPrefix(cfg.Lease.Identity, host+"_") || len(cfg.Lease.Identity) <= len(host)+1 {
			t.Errorf("%q %v: identity %q, want %s_<random>", tc.file, tc.env, cfg.Lease.Identity, host)
		}
	}
	_, err = loadWith(t, "name: x\nidentity: from-file\n", nil, "--id", "")
	if err == nil || !isUsage(err) || !strings.Contains(err.Error(), "--id") {
		t.Fatalf("--id \"\": err = %v, want a usage error naming --id", err)
	}
}

// Config and secret files are read only if they are regular files of at
// most 1 MiB; anything else is refused at once (no hang on a FIFO, no
// memory exhaustion on /dev/zero).
func TestFileLimits(t *testing.T) {
	// Every case ends by itself, before connecting to anything: the limit
	// only bounds a hang (the 1 MiB read took 3 s on a loaded CI machine).
	const noHang = time.Minute
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	// Valid YAML, so only the size can refuse it.
	pad := strings.Repeat("#", maxFileSize+1-len("name: x\n")-1) + "\n"
	if err := os.WriteFile(big, []byte("name: x\n"+pad), 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(big); fi.Size() != maxFileSize+1 {
		t.Fatalf("big file is %d bytes", fi.Size())
	}
	// If a FIFO open ever blocks, a writer unblocks it after the test.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	cases := []struct{ path, want string }{
		{"/dev/zero", "not a regular file"},
		{fifo, "not a regular file"},
		{dir, "not a regular file"},
		{big, "larger than 1 MiB"},
	}
	for _, tc := range cases {
		t.Run("config "+filepath.Base(tc.path), func(t *testing.T) {
			code, stderr := runQuick(t, noHang, "status", "--config", tc.path)
			want := "--config " + tc.path + ": " + tc.want
			if code != 2 || !strings.Contains(stderr, want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, want)
			}
		})
		t.Run("password_file "+filepath.Base(tc.path), func(t *testing.T) {
			cfg := deadEtcdConfig(t, fmt.Sprintf("  username: u\n  password_file: %q\n", tc.path))
			code, stderr := runQuick(t, noHang, "status", "--config", cfg)
			want := cfg + ": line 7: etcd.password_file " + tc.path + ": " + tc.want
			if code != 2 || !strings.Contains(stderr, want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, want)
			}
		})
	}
	t.Run("config of exactly 1 MiB", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "max.yaml")
		body := "backend: memory\nname: x\n"
		if err := os.WriteFile(p, []byte(body+strings.Repeat("#", maxFileSize-len(body)-1)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// Read and accepted: status on the memory backend finds nobody (3).
		if code, stderr := runQuick(t, noHang, "status", "--config", p); code != 3 {
			t.Fatalf("exit %d, stderr %q; want 3 (no holder)", code, stderr)
		}
	})
	t.Run("missing config", func(t *testing.T) {
		code, stderr := runQuick(t, noHang, "status", "--config", "/nonexistent.yaml")
		if want := "--config /nonexistent.yaml: no such file or directory"; code != 2 || !strings.Contains(stderr, want) {
			t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, want)
		}
	})
}

func TestCheckHTTPAddr(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:4040", ":4040", "127.0.0.1:0", "localhost:65535", "[::1]:80", "0.0.0.0:1"} {
		if err := checkHTTPAddr(ok); err != nil {
			t.Errorf("checkHTTPAddr(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "notanaddr", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
		"127.0.0.1:http", "::1:80", "a b:80", "127.0.0.1:80:80", "host/x:80"} {
		err := checkHTTPAddr(bad)
		if err == nil || !isUsage(err) || !strings.HasPrefix(err.Error(), "--http ") {
			t.Errorf("checkHTTPAddr(%q) = %v, want a usage error naming --http", bad, err)
		}
	}
}

// "problem" is left out of status --json when there is none.
func TestStatusJSONProblemOmitted(t *testing.T) {
	b, _ := json.Marshal(statusReport{Holder: "x"})
	if strings.Contains(string(b), "problem") {
		t.Fatalf("status JSON without a problem mentions one: %s", b)
	}
	b, _ = json.Marshal(statusReport{Problem: "term exhausted: x"})
	if !strings.Contains(string(b), `"problem":"term exhausted: x"`) {
		t.Fatalf("status JSON lacks the problem: %s", b)
	}
}
