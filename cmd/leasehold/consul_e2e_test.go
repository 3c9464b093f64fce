package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/internal/servers"
)

// The Consul end-to-end tests share one agent, started the first time a
// test needs it (e2e_test.go's TestMain starts etcd only); the agent dies
// with the test binary (servers start it with a parent-death signal).
var (
	consulOnce sync.Once
	consulSrv  *servers.Consul
	consulErr  error
)

func needBinaryAndConsul(t testing.TB) *servers.Consul {
	t.Helper()
	if binErr != nil {
		t.Fatal(binErr)
	}
	consulOnce.Do(func() { consulSrv, consulErr = servers.StartConsul() })
	servers.Require(t, consulErr)
	return consulSrv
}

// writeConsulConfig writes a consul config for a fresh lock with short
// leases. The address is left out: the tests pass it with the flag or the
// variable.
func writeConsulConfig(t testing.TB) (path, lock string) {
	t.Helper()
	lock = fmt.Sprintf("e2e-consul-%d", time.Now().UnixNano())
	path = filepath.Join(t.TempDir(), "leasehold.yaml")
	cfg := fmt.Sprintf(`backend: consul
name: %s
lease: {duration: 2s, renew_deadline: 1500ms, retry_period: 250ms, release_on_cancel: true}
consul:
  prefix: e2e/
  request_timeout: 1s
`, lock)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, lock
}

// consulStatus runs `leasehold status --json` on the lock.
func consulStatus(t *testing.T, cfg, addr string) (statusReport, int) {
	t.Helper()
	var out bytes.Buffer
	c := exec.Command(binary, "status", "--config", cfg, "--consul-address", addr, "--json")
	c.Stdout = &out
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep statusReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("status --json: %v: %q", err, out.String())
	}
	return rep, code
}

// Three `leasehold run` on Consul: the leader's leasehold is SIGKILLed (the
// next one writes after the lease), the next gets SIGTERM (it releases, the
// third takes over at once); `status` sees each holder and the term going
// up; two commands never write at the same time.
func TestConsulRunFailover(t *testing.T) {
	srv := needBinaryAndConsul(t)
	cfg, _ := writeConsulConfig(t)
	out := filepath.Join(t.TempDir(), "out.txt")
	procs := map[string]*proc{}
	for _, id := range []string{"a", "b", "c"} {
		procs[id] = startLeasehold(t, id, []string{"OUT=" + out, "LEASEHOLD_CONSUL_ADDRESS=" + srv.Address},
			"run", "--config", cfg, "--id", id, "--grace", "300ms", "--", "sh", "-c", writer)
	}
	ls := waitFor(t, out, 10*time.Second, "a first leader writing", func(ls []line) bool { return len(ls) >= 5 })
	first := lastID(ls)
	if rep, code := consulStatus(t, cfg, srv.Address); code != 0 || rep.Holder != first || rep.Backend != "consul" {
		t.Fatalf("status while %s leads: exit %d, %+v", first, code, rep)
	}

	killed := time.Now()
	procs[first].cmd.Process.Signal(syscall.SIGKILL)
	<-procs[first].done
	ls = waitFor(t, out, 10*time.Second, "a second leader writing", func(ls []line) bool { return lastID(ls) != first })
	second := lastID(ls)
	t.Logf("SIGKILL of %s: %s writing after %v (lease 2s)", first, second, time.Since(killed).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)

	termed := time.Now()
	procs[second].cmd.Process.Signal(syscall.SIGTERM)
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
	if handoff > 1500*time.Millisecond {
		t.Fatalf("handoff after SIGTERM took %v (lease 2s): the lock was not released", handoff)
	}
	time.Sleep(300 * time.Millisecond)
	ls = readLines(t, out)
	blocks := handovers(t, ls, 3)
	third := blocks[2][0]
	if rep, code := consulStatus(t, cfg, srv.Address); code != 0 || rep.Holder != third.id || rep.Term != third.term {
		t.Fatalf("status while %s leads (term %d): exit %d, %+v", third.id, third.term, code, rep)
	}
}

// `leasehold sidecar` on Consul answers who leads, and status agrees.
func TestConsulSidecar(t *testing.T) {
	srv := needBinaryAndConsul(t)
	cfg, _ := writeConsulConfig(t)
	port, err := servers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	startLeasehold(t, "s1", nil, "sidecar", "--config", cfg, "--consul-address", srv.Address, "--id", "s1", "--http", addr)
	var got string
	for deadline := time.Now().Add(10 * time.Second); got != `{"name":"s1"}` && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = string(b)
	}
	if got != `{"name":"s1"}` {
		t.Fatalf("sidecar GET / = %q, want s1 leading", got)
	}
	if rep, code := consulStatus(t, cfg, srv.Address); code != 0 || rep.Holder != "s1" {
		t.Fatalf("status: exit %d, %+v", code, rep)
	}
}
