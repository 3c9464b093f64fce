package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
)

// The end-to-end tests run the leasehold binary as real processes against a
// real etcd, both started once for the package.
var (
	binary  string
	binErr  error
	etcdSrv *servers.Etcd
	etcdErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "leasehold-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "leasehold")
	// With its VCS revision, as the README's build does (go does not
	// stamp it by default in this workspace).
	build := exec.Command("go", "build", "-buildvcs=true", "-o", binary, ".")
	if out, err := build.CombinedOutput(); err != nil {
		binErr = fmt.Errorf("building leasehold: %v\n%s", err, out)
	}
	etcdSrv, etcdErr = servers.StartEtcd()
	code := m.Run()
	if etcdSrv != nil {
		etcdSrv.Stop()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func needBinaryAndEtcd(t testing.TB) {
	t.Helper()
	if binErr != nil {
		t.Fatal(binErr)
	}
	servers.Require(t, etcdErr)
}

// writeConfig writes an etcd config for a fresh lock with short leases.
func writeConfig(t testing.TB, extra string) (path, lock string) {
	t.Helper()
	lock = fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	path = filepath.Join(t.TempDir(), "leasehold.yaml")
	cfg := fmt.Sprintf(`backend: etcd
name: %s
lease: {duration: 2s, renew_deadline: 1500ms, retry_period: 250ms, release_on_cancel: true}
etcd:
  endpoints: [%q]
  prefix: /e2e/
%s`, lock, strings.TrimPrefix(etcdSrv.Endpoint, "http://"), extra)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, lock
}

type proc struct {
	id   string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

func startLeasehold(t testing.TB, id string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{id: id, logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	// A command that outlived leasehold would hold its output open: do
	// not let that hang the test.
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("--- %s logs:\n%s", id, p.logs.String())
		}
	})
	return p
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// line is one line the children wrote: term, identity, unix nanoseconds.
type line struct {
	term int64
	id   string
	at   time.Time
}

func readLines(t testing.TB, path string) []line {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l line
		var ns int64
		if _, err := fmt.Sscan(sc.Text(), &l.term, &l.id, &ns); err != nil {
			continue // a line cut by a kill
		}
		l.at = time.Unix(0, ns)
		out = append(out, l)
	}
	return out
}

// writer is the child: it appends "term identity unix-ns" every 100ms.
const writer = `while :; do echo "$LEASEHOLD_TERM $LEASEHOLD_IDENTITY $(date +%s%N)" >> "$OUT"; sleep 0.1; done`

// waitFor polls the output file until cond holds.
func waitFor(t testing.TB, path string, limit time.Duration, what string, cond func([]line) bool) []line {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ls := readLines(t, path)
		if cond(ls) {
			return ls
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %v; %d lines", what, limit, len(ls))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lastID(ls []line) string {
	if len(ls) == 0 {
		return ""
	}
	return ls[len(ls)-1].id
}

// Three `leasehold run` processes; the leader's leasehold is SIGKILLed (its
// child must die with it), then the next one gets SIGTERM (release). Terms
// never go backwards, and two children never write at the same time.
func TestRunFailover(t *testing.T) {
	needBinaryAndEtcd(t)
	cfg, lock := writeConfig(t, "")
	out := filepath.Join(t.TempDir(), "out.txt")
	procs := map[string]*proc{}
	for _, id := range []string{"a", "b", "c"} {
		procs[id] = startLeasehold(t, id, []string{"OUT=" + out},
			"run", "--config", cfg, "--id", id, "--grace", "300ms", "--", "sh", "-c", writer)
	}
	ls := waitFor(t, out, 10*time.Second, "a first leader writing", func(ls []line) bool { return len(ls) >= 5 })
	first := lastID(ls)

	// SIGKILL the leader's leasehold: no release; its child must die with it.
	killed := time.Now()
	procs[first].cmd.Process.Signal(syscall.SIGKILL)
	<-procs[first].done
	ls = waitFor(t, out, 10*time.Second, "a second leader writing", func(ls []line) bool { return lastID(ls) != first })
	second := lastID(ls)
	took := time.Since(killed)
	t.Logf("SIGKILL of %s: %s writing after %v (lease 2s)", first, second, took.Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)

	// SIGTERM the second: it stops its child, releases, the third takes over.
	termed := time.Now()
	procs[second].cmd.Process.Signal(syscall.SIGTERM)
	// The lock changes hands in the store: the command stopped, the lock
	// released, the watching follower took it.
	moved := watchHolder(t, lock, second, 10*time.Second)
	t.Logf("SIGTERM of %s: the lock changed hands after %v", second, moved.Round(100*time.Microsecond))
	ls = waitFor(t, out, 10*time.Second, "a third leader writing", func(ls []line) bool {
		id := lastID(ls)
		return id != first && id != second
	})
	handoff := time.Since(termed)
	select {
	case <-procs[second].done:
	case <-time.After(5 * time.Second):
		t.Fatal("leasehold did not exit after SIGTERM")
	}
	if code := procs[second].cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("leasehold exited %d after SIGTERM, want 0", code)
	}
	t.Logf("SIGTERM of %s: %s's command writing after %v", second, lastID(ls), handoff.Round(time.Millisecond))
	if moved > time.Second {
		t.Fatalf("handoff after SIGTERM took %v (lease 2s): the lock was not released", moved)
	}
	time.Sleep(300 * time.Millisecond)
	ls = readLines(t, out)

	blocks := handovers(t, ls, 3)
	// After the SIGKILL, the first child wrote nothing.
	for _, l := range blocks[0] {
		if l.at.After(killed.Add(50 * time.Millisecond)) {
			t.Fatalf("%s's child wrote at %v, after its leasehold was killed at %v", first, l.at, killed)
		}
	}
}

// handovers splits the children's lines into blocks of one writer each and
// checks that there are want of them, that terms go strictly up from block
// to block, and that each block starts after the previous one's last write:
// two commands never ran at once.
func handovers(t *testing.T, ls []line, want int) [][]line {
	t.Helper()
	var blocks [][]line
	for i, l := range ls {
		if i == 0 || l.id != ls[i-1].id {
			blocks = append(blocks, nil)
		}
		blocks[len(blocks)-1] = append(blocks[len(blocks)-1], l)
	}
	if len(blocks) != want {
		t.Fatalf("writers interleaved or missing: %d blocks: %v", len(blocks), ids(blocks))
	}
	for i := 1; i < len(blocks); i++ {
		prev, cur := blocks[i-1], blocks[i]
		if cur[0].term <= prev[0].term {
			t.Fatalf("term went from %d (%s) to %d (%s)", prev[0].term, prev[0].id, cur[0].term, cur[0].id)
		}
		if !cur[0].at.After(prev[len(prev)-1].at) {
			t.Fatalf("%s started writing before %s stopped", cur[0].id, prev[0].id)
		}
	}
	return blocks
}

func ids(blocks [][]line) []string {
	var out []string
	for _, b := range blocks {
		out = append(out, fmt.Sprintf("%s(term %d, %d lines)", b[0].id, b[0].term, len(b)))
	}
	return out
}

// When the command exits on its own, leasehold releases and exits with the
// command's status; another replica takes over at once.
func TestRunChildExit(t *testing.T) {
	needBinaryAndEtcd(t)
	cfg, _ := writeConfig(t, "")
	p := startLeasehold(t, "x", nil, "run", "--config", cfg, "--id", "x", "--", "sh", "-c", "sleep 0.3; exit 7")
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("leasehold did not exit after its command did")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 7 {
		t.Fatalf("exit status %d, want the command's 7\n%s", code, p.logs.String())
	}
	var st bytes.Buffer
	c := exec.Command(binary, "status", "--config", cfg, "--json")
	c.Stdout = &st
	err := c.Run()
	var rep statusReport
	if jerr := json.Unmarshal(st.Bytes(), &rep); jerr != nil {
		t.Fatalf("status --json: %v: %q", jerr, st.String())
	}
	// The term is the one the command ran with: a hybrid logical clock,
	// at least the wall clock's seconds since 2025.
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || rep.Holder != "" || rep.Term < elector.WallTerm(time.Now())-60 || rep.State != "released" {
		t.Fatalf("after release: status exit %v, report %+v; want exit 3, state released, no holder, a term from the wall clock", err, rep)
	}
}

// The sidecar answers exactly like the classic leader-elector.
func TestSidecar(t *testing.T) {
	needBinaryAndEtcd(t)
	cfg, lock := writeConfig(t, "")
	addrs := map[string]string{}
	for _, id := range []string{"s1", "s2"} {
		port, err := servers.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addrs[id] = fmt.Sprintf("127.0.0.1:%d", port)
		startLeasehold(t, id, nil, "sidecar", "--config", cfg, "--id", id, "--http", addrs[id])
	}
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Followers name the holder as soon as they read its record; the holder
	// names itself once it has started leading (after a create's
	// probation), so wait until all of them agree.
	leader := waitAgreedLeader(t, []string{addrs["s1"], addrs["s2"]}, time.Minute)
	if leader != "s1" && leader != "s2" {
		t.Fatalf("the sidecars agree on %q, want s1 or s2", leader)
	}
	want := `{"name":"` + leader + `"}`
	for id, a := range addrs {
		code, body := get("http://" + a + "/")
		if code != 200 || body != want {
			t.Errorf("%s: GET / = %d %q, want 200 %q", id, code, body, want)
		}
		if code, body := get("http://" + a + "/healthz"); code != 200 {
			t.Errorf("%s: /healthz = %d %q", id, code, body)
		}
		_, metrics := get("http://" + a + "/metrics")
		wantLeader := "0"
		if id == leader {
			wantLeader = "1"
		}
		if !strings.Contains(metrics, `leasehold_is_leader{lock="`+lock+`"} `+wantLeader) {
			t.Errorf("%s: /metrics lacks leasehold_is_leader %s", id, wantLeader)
		}
	}
	// status sees the same holder.
	out, err := exec.Command(binary, "status", "--config", cfg).Output()
	if err != nil || !strings.Contains(string(out), "holder:   "+leader) {
		t.Fatalf("status: %v\n%s", err, out)
	}
}

func TestStatusJSONFields(t *testing.T) {
	var r statusReport
	b, _ := json.Marshal(r)
	for _, k := range []string{"holder", "term", "acquire_time", "renew_time", "lease_duration_ms", "expired"} {
		if !strings.Contains(string(b), strconv.Quote(k)) {
			t.Errorf("status JSON lacks %q: %s", k, b)
		}
	}
}

// What the command leaves behind, even a process that ignores SIGTERM, is
// gone once leasehold has stopped; also after leasehold is SIGKILLed.
func TestRunLeavesNothingBehind(t *testing.T) {
	needBinaryAndEtcd(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			cfg, _ := writeConfig(t, "")
			out := filepath.Join(t.TempDir(), "out.txt")
			stubborn := `(trap "" TERM; while :; do echo x >> "$OUT"; sleep 0.05; done) & wait`
			p := startLeasehold(t, "x", []string{"OUT=" + out}, "run", "--config", cfg, "--id", "x", "--grace", "200ms",
				"--", "sh", "-c", stubborn)
			deadline := time.Now().Add(10 * time.Second)
			for b, _ := os.ReadFile(out); strings.Count(string(b), "\n") < 3; b, _ = os.ReadFile(out) {
				if time.Now().After(deadline) {
					t.Fatal("the command never wrote")
				}
				time.Sleep(20 * time.Millisecond)
			}
			p.cmd.Process.Signal(sig)
			<-p.done
			time.Sleep(600 * time.Millisecond) // grace, then SIGKILL to the group
			n := len(readRaw(t, out))
			time.Sleep(300 * time.Millisecond)
			if m := len(readRaw(t, out)); m != n {
				t.Fatalf("after %v to leasehold, something still writes: %d -> %d lines", sig, n, m)
			}
		})
	}
}

func readRaw(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// watchHolder polls the lock in etcd until its holder is neither from nor
// empty, and returns how long that took.
func watchHolder(t *testing.T, lock, from string, limit time.Duration) time.Duration {
	t.Helper()
	c, err := etcd.New(context.Background(), etcd.Config{Endpoints: []string{etcdSrv.Endpoint}, Prefix: "/e2e/"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := c.Lock(lock)
	start := time.Now()
	for time.Since(start) < limit {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, _, err := b.Get(ctx)
		cancel()
		if err == nil && r.Holder != from && r.Holder != "" {
			return time.Since(start)
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("the lock did not leave %s within %v", from, limit)
	return 0
}
