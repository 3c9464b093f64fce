package etcd_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
)

// After a long etcd outage a leader is back within about one RetryPeriod of
// etcd answering again. With gRPC's default reconnect backoff (growing to
// 120s) the clients next tried to connect many seconds after etcd was back.
// Three candidates, each on its own client, on an etcd of the test's own,
// since it is killed for 30s. Two candidates never lead at once.
func TestLeaderBackSoonAfterLongOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a 30s etcd outage")
	}
	const (
		outage = 30 * time.Second
		// Measured on a 2-core machine: 5ms with the capped backoff
		// (270ms with both cores busy and -race), 11.5s and 12.5s with
		// gRPC's default.
		bound = 3 * time.Second
	)
	own, err := servers.StartEtcd()
	servers.Require(t, err)
	defer own.Stop()

	var es []*elector.Elector
	for _, id := range []string{"a", "b", "c"} {
		cfg := lease(id)
		c, err := etcd.New(context.Background(), etcd.Config{Endpoints: []string{own.Endpoint},
			MaxReconnectDelay: cfg.RetryPeriod, // as the CLI sets it
			Logger:            slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		e, err := elector.New(cfg, c.Lock("outage"), elector.Callbacks{
			OnStartedLeading: func(context.Context, int64) {},
			OnStoppedLeading: func() {},
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
	ids := []string{"a", "b", "c"}
	leaders := func() []string {
		var l []string
		for i, e := range es {
			if e.IsLeader() {
				l = append(l, ids[i])
			}
		}
		return l
	}
	// waitLeading polls every few ms for a leader; it returns whom and
	// when, or "" once limit has passed.
	waitLeading := func(limit time.Duration) (string, time.Time) {
		for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if l := leaders(); len(l) > 0 {
				return l[0], time.Now()
			}
		}
		return "", time.Time{}
	}

	// Sample all three for the whole test: never two leaders.
	var (
		mu    sync.Mutex
		split []string
	)
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if l := leaders(); len(l) > 1 {
				mu.Lock()
				split = append(split, time.Now().Format("15:04:05.000")+" "+strings.Join(l, "+"))
				mu.Unlock()
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
		mu.Lock()
		defer mu.Unlock()
		if len(split) > 0 {
			t.Errorf("two candidates led at once %d times, first: %s", len(split), split[0])
		}
	}()

	first, _ := waitLeading(5 * time.Second)
	if first == "" {
		t.Fatal("no leader within 5s of starting")
	}
	own.Kill()
	killed := time.Now()
	time.Sleep(outage) // the scenario: etcd is down this long
	if l := leaders(); len(l) > 0 {
		t.Fatalf("%v still lead %v after etcd died (RenewDeadline %v)", l, time.Since(killed), lease("a").RenewDeadline)
	}
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now() // etcd has just answered its health check
	next, at := waitLeading(60 * time.Second)
	if next == "" {
		t.Fatalf("no leader within 60s of etcd answering again after a %v outage", outage)
	}
	took := at.Sub(back)
	t.Logf("leader %s (before the outage: %s) back %v after etcd answered again; outage %v, etcd down %v",
		next, first, took.Round(time.Millisecond), outage, back.Sub(killed).Round(time.Millisecond))
	if took > bound {
		t.Errorf("leadership came back %v after etcd answered again, more than %v: the reconnect backoff is not capped", took, bound)
	}
}
