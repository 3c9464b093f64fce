package consul_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
)

// The agent is killed while a candidate leads and stays down longer than
// the RenewDeadline: the leader steps down within the RenewDeadline; once
// the agent answers again (same ports; with -dev its data is gone, so the
// record is gone too and is created afresh) a leader is back within about
// one lease: a candidate that saw the record go missing waits a lease before
// creating it, as the holder it last saw may still believe it leads. Three
// candidates on clients of their own; never two leaders at once.
func TestAgentRestartWhileLeading(t *testing.T) {
	own, err := servers.StartConsul()
	servers.Require(t, err)
	defer own.Stop()
	cfg0 := lease("a")
	ids := []string{"a", "b", "c"}
	var (
		es      []*elector.Elector
		mu      sync.Mutex
		stopped []time.Time
	)
	for _, id := range ids {
		c, err := consul.New(context.Background(), consul.Config{Address: own.Address, RequestTimeout: time.Second, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		e, err := elector.New(lease(id), c.Lock("restart"), elector.Callbacks{
			OnStartedLeading: func(context.Context, int64) {},
			OnStoppedLeading: func() { mu.Lock(); stopped = append(stopped, time.Now()); mu.Unlock() },
		}, elector.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); e.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done; c.Close() })
		es = append(es, e)
	}
	leaders := func() []string {
		var l []string
		for i, e := range es {
			if e.IsLeader() {
				l = append(l, ids[i])
			}
		}
		return l
	}
	waitLeading := func(limit time.Duration) (string, time.Time) {
		for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if l := leaders(); len(l) > 0 {
				return l[0], time.Now()
			}
		}
		return "", time.Time{}
	}
	var split []string
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if l := leaders(); len(l) > 1 {
				split = append(split, time.Now().Format("15:04:05.000")+" "+strings.Join(l, "+"))
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	defer func() {
		close(stop)
		<-sampled
		if len(split) > 0 {
			t.Errorf("two candidates led at once %d times, first: %s", len(split), split[0])
		}
	}()

	first, _ := waitLeading(5 * time.Second)
	if first == "" {
		t.Fatal("no leader within 5s of starting")
	}
	mu.Lock()
	nStopped := len(stopped)
	mu.Unlock()
	own.Kill()
	killed := time.Now()
	time.Sleep(cfg0.RenewDeadline + time.Second) // down longer than the renew deadline
	if l := leaders(); len(l) > 0 {
		t.Fatalf("%v still lead %v after the agent died (RenewDeadline %v)", l, time.Since(killed), cfg0.RenewDeadline)
	}
	mu.Lock()
	if len(stopped) == nStopped {
		mu.Unlock()
		t.Fatal("the leader never reported stopping")
	}
	down := stopped[nStopped].Sub(killed)
	mu.Unlock()
	if down > cfg0.RenewDeadline+200*time.Millisecond {
		t.Errorf("the leader stepped down %v after the agent died, later than RenewDeadline %v", down, cfg0.RenewDeadline)
	}
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	next, at := waitLeading(30 * time.Second)
	if next == "" {
		t.Fatal("no leader within 30s of the agent answering again")
	}
	took := at.Sub(back)
	t.Logf("leader %s stepped down %v after the kill; %s (before: %s) leads %v after the agent answered again",
		first, down.Round(time.Millisecond), next, first, took.Round(time.Millisecond))
	// At most a lease (the wait for a holder the store forgot), the
	// create's probation and a jittered RetryPeriod or two
	// (backendtest.RunFaults counts LeaseDuration + 4 RetryPeriods), and a
	// request or two on a busy machine.
	if bound := cfg0.LeaseDuration + 4*cfg0.RetryPeriod + time.Second; took > bound {
		t.Errorf("leadership came back %v after the agent answered again, more than %v", took, bound)
	}
}
