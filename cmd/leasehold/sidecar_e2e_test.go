package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
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

// The claim API cannot be poisoned, on a real sidecar against etcd: only
// POST claims (GET and HEAD /claim used to answer the leader with 200), a
// slot far from the clock is refused (9999-12-31 used to block the job
// for good), junk names fill at most half the record (40 used to fill all
// of its 32 jobs), and a client whose answer was lost gets it again by
// retrying with its Idempotency-Key (it used to get 409: the slot lost).
func TestSidecarClaimGuards(t *testing.T) {
	needBinaryAndEtcd(t)
	cfg, _ := writeConfig(t, "")
	port, err := servers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	startLeasehold(t, "s1", nil, "sidecar", "--config", cfg, "--id", "s1", "--http", addr)
	waitAgreedLeader(t, []string{addr}, time.Minute)
	send := func(method, target, key string) (int, string, claimResponse) {
		req, err := http.NewRequest(method, "http://"+addr+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r claimResponse
		json.NewDecoder(resp.Body).Decode(&r)
		return resp.StatusCode, resp.Header.Get("Allow"), r
	}
	slot := time.Now().Truncate(time.Minute).UTC()
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete} {
		for _, path := range []string{"claim", "done"} {
			if code, allow, _ := send(m, claimPath(path, "report", slot), ""); code != 405 || allow != "POST" {
				t.Errorf("%s /%s: %d (Allow %q), want 405 with Allow: POST", m, path, code, allow)
			}
		}
	}
	if code, _, _ := send(http.MethodGet, "/leader", ""); code != 404 {
		t.Errorf("GET /leader: %d, want 404", code)
	}
	if askLeader(addr) != "s1" {
		t.Errorf("GET / names %q, want s1", askLeader(addr))
	}

	if code, _, r := send(http.MethodPost, "/claim?job=report&slot=9999-12-31T23:59:59Z", ""); code != 400 || !strings.Contains(r.Error, "ahead of it") {
		t.Fatalf("a claim of 9999-12-31: %d %q, want 400", code, r.Error)
	}
	if code, _, r := send(http.MethodPost, claimPath("claim", "report", slot), ""); code != 200 {
		t.Fatalf("a claim of now after the far one: %d %q, want 200", code, r.Error)
	}

	granted := 1 // report
	for i := range 40 {
		code, _, r := send(http.MethodPost, claimPath("claim", fmt.Sprintf("junk-%d", i), slot), "")
		switch {
		case code == 200:
			granted++
		case code != 400 || !strings.Contains(r.Error, "the record holds 16 jobs"):
			t.Fatalf("junk-%d: %d %q", i, code, r.Error)
		}
	}
	if granted != 16 {
		t.Fatalf("%d jobs granted, want 16 (half the record)", granted)
	}

	// A client sends its claim and never reads the answer.
	next := slot.Add(time.Minute)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nIdempotency-Key: k1\r\nContent-Length: 0\r\n\r\n", claimPath("claim", "report", next), addr)
	want := "report: last started " + next.Format(time.RFC3339)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if out, _ := statusOf(t, "status", "--config", cfg); strings.Contains(out, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the claim never landed")
		}
	}
	conn.Close()
	if code, _, r := send(http.MethodPost, claimPath("claim", "report", next), "k1"); code != 200 || !r.Repeat || r.Term < 1 {
		t.Fatalf("the retry with the same key: %d %+v, want 200 repeat", code, r)
	}
	if code, _, r := send(http.MethodPost, claimPath("claim", "report", next), "k2"); code != 409 {
		t.Fatalf("a claim with another key: %d %+v, want 409", code, r)
	}
}
