package servers

import (
	"net/http"
	"testing"
)

// The Consul cluster survives its leader server's crash and pause: another
// server leads and takes writes, and the server comes back on its data (a
// key written before the crash is still there).
func TestConsulCluster(t *testing.T) {
	c, err := StartConsulCluster()
	Require(t, err)
	defer c.Stop()
	if got := len(c.Addresses()); got != 3 {
		t.Fatalf("%d addresses, want 3", got)
	}
	l, err := c.WaitLeader(-1, clusterPatience)
	if err != nil {
		t.Fatal(err)
	}
	if _, code := consulDo(c.Address(l), "PUT", "/v1/kv/kept", "before"); code != http.StatusOK {
		t.Fatalf("put: status %d", code)
	}
	if err := c.Kill(l); err != nil {
		t.Fatal(err)
	}
	if _, ok := consulLeader(c.Address(l)); ok {
		t.Fatalf("killed server %s answers", c.Name(l))
	}
	next, err := c.WaitLeader(l, clusterPatience)
	if err != nil {
		t.Fatalf("after killing leader %s: %v\n%s", c.Name(l), err, c.Logs())
	}
	if err := c.Start(l); err != nil {
		t.Fatal(err)
	}
	if body, code := consulDo(c.Address(l), "GET", "/v1/kv/kept?raw&consistent", ""); code != http.StatusOK || body != "before" {
		t.Fatalf("restarted server %s: kept = %q (status %d), want \"before\"", c.Name(l), body, code)
	}
	if err := c.Pause(next); err != nil {
		t.Fatal(err)
	}
	if _, ok := consulLeader(c.Address(next)); ok {
		t.Fatalf("paused server %s answers", c.Name(next))
	}
	if _, err := c.WaitLeader(next, clusterPatience); err != nil {
		t.Fatalf("after pausing leader %s: %v\n%s", c.Name(next), err, c.Logs())
	}
	if err := c.Resume(next); err != nil {
		t.Fatalf("resume %s: %v\n%s", c.Name(next), err, c.Logs())
	}
	for i := range c.Size() {
		if err := c.Restart(i); err != nil {
			t.Fatalf("rolling restart of %s: %v\n%s", c.Name(i), err, c.Logs())
		}
	}
	if _, err := c.WaitLeader(-1, clusterPatience); err != nil {
		t.Fatal(err)
	}
}
