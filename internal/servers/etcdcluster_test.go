package servers

import "testing"

// The cluster survives its leader member's crash and pause: another
// member leads, and the member comes back.
func TestEtcdCluster(t *testing.T) {
	c, err := StartEtcdCluster(3)
	Require(t, err)
	defer c.Stop()
	if got := len(c.Endpoints()); got != 3 {
		t.Fatalf("%d endpoints, want 3", got)
	}
	l, err := c.WaitLeader(-1, clusterPatience)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(l); err != nil {
		t.Fatal(err)
	}
	next, err := c.WaitLeader(l, clusterPatience)
	if err != nil {
		t.Fatalf("after killing leader m%d: %v\n%s", l, err, c.Logs())
	}
	if err := c.Start(l); err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(next); err != nil {
		t.Fatal(err)
	}
	if memberHealthy(c.Endpoint(next)) {
		t.Fatalf("paused member m%d answers its health check", next)
	}
	if _, err := c.WaitLeader(next, clusterPatience); err != nil {
		t.Fatalf("after pausing leader m%d: %v\n%s", next, err, c.Logs())
	}
	if err := c.Resume(next); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(next, clusterPatience); err != nil {
		t.Fatalf("resumed: %v", err)
	}
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	if err := c.Wipe(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitLeader(-1, clusterPatience); err != nil {
		t.Fatal(err)
	}
}
