package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/internal/servers"
)

// leader-elector's usual --ttl alone works (renew deadline and retry
// period derived from it), a ttl that derives a bad value names --ttl, and
// without --id the sidecar answers its hostname (issue 22).
func TestSidecarTTLAndHostname(t *testing.T) {
	needBinaryAndEtcd(t)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := writeConfig(t, "")
	port, err := servers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// The config file's identity is left unset: the default applies.
	p := startLeasehold(t, "s1", nil, "sidecar", "--config", cfg, "--election", "ttl-test", "--ttl", "10s", "--http", addr)
	if got := waitAgreedLeader(t, []string{addr}, time.Minute); got != host {
		t.Errorf("GET / names %q, want the hostname %q", got, host)
	}
	if !strings.Contains(p.logs.String(), "the identity is the hostname") {
		t.Errorf("no warning about the hostname identity:\n%s", p.logs)
	}
	for _, c := range []struct{ ttl, want string }{{"1ns", "--ttl"}, {"0s", "--ttl"}} {
		out, err := exec.Command(binary, "sidecar", "--config", cfg, "--ttl", c.ttl, "--http", "127.0.0.1:0").CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), c.want) {
			t.Errorf("--ttl %s: %v, want exit 2 naming %s:\n%s", c.ttl, err, c.want, out)
		}
	}
}
