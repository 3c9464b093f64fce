package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/internal/servers"
)

// askLeader asks a sidecar who leads; "?" when it does not answer.
func askLeader(addr string) string {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r leaderResponse
	if json.Unmarshal(b, &r) != nil {
		return "?"
	}
	return r.Name
}

// During a store outage the sidecars stop naming a leader once the lease
// they last observed has run out: the leader has stepped down by then (its
// renew deadline passed), so naming it would be a lie. When the store is
// back, a leader is named again within moments.
func TestSidecarStoreOutage(t *testing.T) {
	if binErr != nil {
		t.Fatal(binErr)
	}
	own, err := servers.StartEtcd()
	servers.Require(t, err)
	defer own.Stop()
	cfg := filepath.Join(t.TempDir(), "leasehold.yaml")
	body := fmt.Sprintf("backend: etcd\nname: outage\nlease: {duration: 2s, renew_deadline: 1500ms, retry_period: 250ms}\netcd:\n  endpoints: [%q]\n",
		strings.TrimPrefix(own.Endpoint, "http://"))
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{}
	for _, id := range []string{"s1", "s2"} {
		port, err := servers.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addrs[id] = fmt.Sprintf("127.0.0.1:%d", port)
		startLeasehold(t, id, nil, "sidecar", "--config", cfg, "--id", id, "--http", addrs[id])
	}
	both := func(limit time.Duration, what string, ok func(a, b string) bool) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			a, b := askLeader(addrs["s1"]), askLeader(addrs["s2"])
			if ok(a, b) {
				return time.Since(start)
			}
			if time.Since(start) > limit {
				t.Fatalf("%s did not happen within %v: s1 says %q, s2 says %q", what, limit, a, b)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	named := func(a, b string) bool { return a == b && (a == "s1" || a == "s2") }
	both(10*time.Second, "a leader named by both", named)

	own.Kill()
	// The follower saw the last renewal at most a RetryPeriod before the
	// outage; its lease runs out 2s after that; one more failed read (up to
	// a RetryPeriod) and it names nobody.
	took := both(2*time.Second+time.Second, "both naming nobody", func(a, b string) bool { return a == "" && b == "" })
	t.Logf("store down: both sidecars name nobody after %v (lease 2s)", took.Round(time.Millisecond))

	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	back := both(5*time.Second, "a leader named again", named)
	t.Logf("store back: a leader named by both after %v", back.Round(time.Millisecond))
}
