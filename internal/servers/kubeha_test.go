package servers

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// haClient is an HTTPS client of a KubeHA's apiservers as the admin,
// trusting exactly the serving certificate of apiserver 0's kubeconfig.
type haClient struct {
	h     *KubeHA
	token string
	http  *http.Client
}

func newHAClient(t *testing.T, h *KubeHA) *haClient {
	t.Helper()
	pemCA, err := os.ReadFile(h.API(0).CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		t.Fatalf("no certificate in %s", h.API(0).CAFile)
	}
	return &haClient{h: h, token: h.API(0).AdminToken, http: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}},
	}}
}

const haLeases = "/apis/coordination.k8s.io/v1/namespaces/default/leases"

// do sends method path (with a JSON body when body is not nil) to
// apiserver i and returns the status code and the decoded answer.
func (c *haClient) do(t *testing.T, i int, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.h.API(i).URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s on apiserver %d: %v", method, path, i, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// holder is the holderIdentity of Lease name as apiserver i answers it; ""
// when the Lease is missing.
func (c *haClient) holder(t *testing.T, i int, name string) string {
	t.Helper()
	code, l := c.do(t, i, http.MethodGet, haLeases+"/"+name, nil)
	switch code {
	case http.StatusNotFound:
		return ""
	case http.StatusOK:
		spec, _ := l["spec"].(map[string]any)
		h, _ := spec["holderIdentity"].(string)
		return h
	}
	t.Fatalf("GET lease %s on apiserver %d: %d %v", name, i, code, l)
	return ""
}

func (c *haClient) create(t *testing.T, i int, name, holder string) {
	t.Helper()
	lease := map[string]any{"metadata": map[string]any{"name": name}, "spec": map[string]any{"holderIdentity": holder}}
	if code, out := c.do(t, i, http.MethodPost, haLeases, lease); code != http.StatusCreated {
		t.Fatalf("create lease %s on apiserver %d: %d %v", name, i, code, out)
	}
}

// A control plane of two apiservers on a 3-member etcd: a Lease written
// through one is read through the other, with the same token and the same
// trusted certificate; one apiserver down leaves the other serving; the
// etcd leader member killed, the apiservers serve again once the cluster
// elected; restored from a snapshot, both answer the snapshot's state.
func TestKubeHA(t *testing.T) {
	start := time.Now()
	h, err := StartKubeHA(2)
	Require(t, err)
	defer h.Stop()
	t.Logf("2 apiservers on 3 etcd members ready after %v", time.Since(start).Round(time.Millisecond))
	c := newHAClient(t, h)
	if h.API(0).URL == h.API(1).URL || h.API(0).CAFile != h.API(1).CAFile {
		t.Fatalf("apiservers %s (trusting %s) and %s (trusting %s): want two URLs, one certificate",
			h.API(0).URL, h.API(0).CAFile, h.API(1).URL, h.API(1).CAFile)
	}
	c.create(t, 0, "before", "a")
	if got := c.holder(t, 1, "before"); got != "a" {
		t.Fatalf("apiserver 1 reads holder %q of the Lease created through apiserver 0, want a", got)
	}
	snap := filepath.Join(t.TempDir(), "snapshot.db")
	if err := h.Etcd.Snapshot(snap); err != nil {
		t.Fatal(err)
	}
	c.create(t, 1, "after", "b")

	h.API(0).Kill()
	if h.API(0).Ready() {
		t.Fatal("killed apiserver 0 answers /readyz")
	}
	if got := c.holder(t, 1, "after"); got != "b" {
		t.Fatalf("with apiserver 0 down, apiserver 1 reads holder %q, want b", got)
	}
	if err := h.API(0).Start(); err != nil {
		t.Fatal(err)
	}
	if got := c.holder(t, 0, "after"); got != "b" {
		t.Fatalf("apiserver 0 started again reads holder %q, want b", got)
	}

	l, err := h.Etcd.WaitLeader(-1, clusterPatience)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Etcd.Kill(l); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Etcd.WaitLeader(l, clusterPatience); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitReady(clusterPatience); err != nil {
		t.Fatalf("etcd member m%d killed: %v\n%s", l, err, h.Logs())
	}
	for i := range h.Size() {
		c.create(t, i, fmt.Sprintf("member-down-%d", i), "c")
	}
	if err := h.Etcd.Start(l); err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	if err := h.Restore(snap); err != nil {
		t.Fatalf("%v\n%s", err, h.Logs())
	}
	t.Logf("restored, the apiservers ready again, after %v", time.Since(start).Round(time.Millisecond))
	for i := range h.Size() {
		if got := c.holder(t, i, "before"); got != "a" {
			t.Errorf("restored: apiserver %d reads holder %q of the Lease in the snapshot, want a", i, got)
		}
		for _, name := range []string{"after", "member-down-0", "member-down-1"} {
			if got := c.holder(t, i, name); got != "" {
				t.Errorf("restored: apiserver %d reads Lease %s (holder %q), created after the snapshot", i, name, got)
			}
		}
	}
}
