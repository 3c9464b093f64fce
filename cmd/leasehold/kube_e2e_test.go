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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/internal/servers"
)

// TestKube runs the leasehold binary against a real kube-apiserver (with
// its own etcd), started for this test only and stopped at its end.
func TestKube(t *testing.T) {
	if binErr != nil {
		t.Fatal(binErr)
	}
	k, err := servers.StartKube()
	servers.Require(t, err)
	t.Cleanup(k.Stop)

	config := func(t *testing.T, lease string) (path, lock string) {
		lock = fmt.Sprintf("e2e-%d", time.Now().UnixNano())
		path = filepath.Join(t.TempDir(), "leasehold.yaml")
		cfg := fmt.Sprintf("backend: kube\nname: %s\nlease: %s\nkube:\n  kubeconfig: %s\n  namespace: default\n", lock, lease, k.AdminKubeconfig)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return path, lock
	}
	const lease = "{duration: 2s, renew_deadline: 1500ms, retry_period: 250ms, release_on_cancel: true}"
	status := func(t *testing.T, cfg string) (statusReport, error) {
		var st bytes.Buffer
		c := exec.Command(binary, "status", "--config", cfg, "--json")
		c.Stdout = &st
		err := c.Run()
		var rep statusReport
		if jerr := json.Unmarshal(st.Bytes(), &rep); jerr != nil {
			t.Fatalf("status --json: %v: %q", jerr, st.String())
		}
		return rep, err
	}

	// Two `leasehold run`: the leader is SIGKILLed, the other takes over
	// with a higher term; it is SIGTERMed and releases; status sees it.
	t.Run("RunFailoverStatus", func(t *testing.T) {
		cfg, _ := config(t, lease)
		out := filepath.Join(t.TempDir(), "out.txt")
		procs := map[string]*proc{}
		for _, id := range []string{"a", "b"} {
			procs[id] = startLeasehold(t, id, []string{"OUT=" + out},
				"run", "--config", cfg, "--id", id, "--grace", "300ms", "--", "sh", "-c", writer)
		}
		ls := waitFor(t, out, 15*time.Second, "a first leader writing", func(ls []line) bool { return len(ls) >= 3 })
		first := lastID(ls)
		rep, err := status(t, cfg)
		if err != nil || rep.Holder != first || rep.Backend != "kube" {
			t.Fatalf("status while %s leads: %+v, %v", first, rep, err)
		}
		killed := time.Now()
		procs[first].cmd.Process.Signal(syscall.SIGKILL)
		<-procs[first].done
		ls = waitFor(t, out, 10*time.Second, "the second leader writing", func(ls []line) bool { return lastID(ls) != first })
		second := lastID(ls)
		t.Logf("SIGKILL of %s: %s writing after %v (lease 2s)", first, second, time.Since(killed).Round(time.Millisecond))
		if ls[len(ls)-1].term <= ls[0].term {
			t.Fatalf("term did not increase: %d then %d", ls[0].term, ls[len(ls)-1].term)
		}
		for _, l := range ls {
			if l.id == first && l.at.After(killed.Add(50*time.Millisecond)) {
				t.Fatalf("%s's child wrote after its leasehold was killed", first)
			}
		}
		procs[second].cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-procs[second].done:
		case <-time.After(10 * time.Second):
			t.Fatal("leasehold did not exit after SIGTERM")
		}
		rep, err = status(t, cfg)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || rep.Holder != "" || rep.Term != ls[len(ls)-1].term {
			t.Fatalf("after release: status exit %v, report %+v; want exit 3, no holder, term %d", err, rep, ls[len(ls)-1].term)
		}
	})

	t.Run("Sidecar", func(t *testing.T) {
		cfg, _ := config(t, lease)
		port, err := servers.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		startLeasehold(t, "s1", nil, "sidecar", "--config", cfg, "--id", "s1", "--http", addr)
		deadline := time.Now().Add(15 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + "/")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) == `{"name":"s1"}` {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the sidecar did not report itself as leader within 15s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if rep, err := status(t, cfg); err != nil || rep.Holder != "s1" {
			t.Fatalf("status: %+v, %v", rep, err)
		}
	})

	// The container args of a leader-elector pod work as they are
	// (--election, --election-namespace, --ttl, --http), and the probe
	// address serves health and metrics, not the leader API.
	t.Run("SidecarLeaderElectorArgs", func(t *testing.T) {
		lock := fmt.Sprintf("e2e-le-%d", time.Now().UnixNano())
		var addrs [2]string
		for i := range addrs {
			port, err := servers.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			addrs[i] = fmt.Sprintf("127.0.0.1:%d", port)
		}
		api, probe := addrs[0], addrs[1]
		startLeasehold(t, "le", []string{"LEASEHOLD_KUBE_KUBECONFIG=" + k.AdminKubeconfig}, "sidecar", "--backend", "kube",
			"--election", lock, "--election-namespace", "kube-public", "--ttl", "2s", "--renew-deadline", "1500ms",
			"--retry-period", "250ms", "--id", "le-1", "--http", api, "--probe-http", probe)
		get := func(url string) (int, string) {
			resp, err := http.Get(url)
			if err != nil {
				return 0, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			if _, body := get("http://" + api + "/"); body == `{"name":"le-1"}` {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the sidecar did not report itself as leader within 15s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		cfg := filepath.Join(t.TempDir(), "le.yaml")
		body := fmt.Sprintf("backend: kube\nname: %s\nkube: {kubeconfig: %s, namespace: kube-public}\n", lock, k.AdminKubeconfig)
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if rep, err := status(t, cfg); err != nil || rep.Holder != "le-1" || rep.LeaseDurationMS != 2000 {
			t.Fatalf("status of kube-public/%s: %+v, %v; want le-1 holding a 2s lease", lock, rep, err)
		}
		if code, body := get("http://" + probe + "/healthz"); code != 200 {
			t.Errorf("probe /healthz: %d %q", code, body)
		}
		if code, body := get("http://" + probe + "/metrics"); code != 200 || !strings.Contains(body, "leasehold_") {
			t.Errorf("probe /metrics: %d, %d bytes without leasehold_ metrics", code, len(body))
		}
		if code, _ := get("http://" + probe + "/"); code != 404 {
			t.Errorf("probe /: %d, want 404 (the leader API is on --http only)", code)
		}
	})

	// A sub-second lease duration is refused, not truncated.
	t.Run("SubSecondLease", func(t *testing.T) {
		cfg, _ := config(t, "{duration: 1500ms, renew_deadline: 1s, retry_period: 250ms}")
		out, err := exec.Command(binary, "run", "--config", cfg, "--id", "x", "--", "true").CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "whole seconds") {
			t.Fatalf("run with a 1.5s lease: %v\n%s\nwant exit 2 naming whole seconds", err, out)
		}
	})

	// The limited user, without any Role, gets a clear permission error.
	t.Run("Forbidden", func(t *testing.T) {
		cfg, _ := config(t, lease)
		b, _ := os.ReadFile(cfg)
		if err := os.WriteFile(cfg, bytes.ReplaceAll(b, []byte(k.AdminKubeconfig), []byte(k.UserKubeconfig)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(binary, "status", "--config", cfg).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "permission denied: cannot get lease") {
			t.Fatalf("status as a user without a Role: %v\n%s", err, out)
		}
	})
}
