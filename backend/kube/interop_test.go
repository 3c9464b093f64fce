package kube_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/kube"
	"github.com/leasehold-go/leasehold/elector"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// errCut is what a candidate whose network was cut gets from every request.
var errCut = errors.New("test: network cut")

// cutRT fails every request once cut is set: the candidate is partitioned
// from the apiserver, as a crashed or isolated process is for the others.
type cutRT struct {
	cut     *atomic.Bool
	n       *atomic.Int64 // requests sent
	renewed *atomic.Int64 // unix ns of the send of the last acknowledged PUT
	rt      http.RoundTripper
}

func (c cutRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	if c.cut.Load() {
		return nil, errCut
	}
	sent := time.Now()
	resp, err := c.rt.RoundTrip(r)
	if err == nil && r.Method == http.MethodPut && resp.StatusCode == http.StatusOK {
		c.renewed.Store(sent.UnixNano())
	}
	return resp, err
}

// cand is one candidate of either kind on one Lease.
type cand struct {
	id      string
	kind    string // "client-go" or "leasehold"
	leading atomic.Bool
	started chan time.Time // OnStartedLeading instants
	cut     atomic.Bool
	reqs    atomic.Int64 // requests sent
	renewed atomic.Int64 // unix ns of the send of its last acknowledged PUT (renewal)
	cancel  context.CancelFunc
	done    chan struct{}
}

// timing is the lease timing of candidates of both kinds.
type timing struct{ lease, renew, retry time.Duration }

func candConfig(t testing.TB, c *cand) *rest.Config {
	rc := restConfig(t, need(t).AdminKubeconfig)
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return cutRT{&c.cut, &c.reqs, &c.renewed, rt} }
	return rc
}

// onLead marks c leading until ctx (its leadership) ends.
func (c *cand) onLead(ctx context.Context) {
	c.leading.Store(true)
	select {
	case c.started <- time.Now():
	default:
	}
	go func() { <-ctx.Done(); c.leading.Store(false) }()
}

// startClientGo runs client-go's leader election (LeaseLock) on lock.
func startClientGo(t testing.TB, lock, id string, tm timing) *cand {
	c := &cand{id: id, kind: "client-go", started: make(chan time.Time, 16), done: make(chan struct{})}
	cs, err := kubernetes.NewForConfig(candConfig(t, c))
	if err != nil {
		t.Fatal(err)
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: lock, Namespace: "default"},
			Client:     cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		},
		LeaseDuration:   tm.lease,
		RenewDeadline:   tm.renew,
		RetryPeriod:     tm.retry,
		ReleaseOnCancel: true,
		Name:            lock,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: c.onLead,
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() { defer close(c.done); le.Run(ctx) }()
	t.Cleanup(c.stop)
	return c
}

// startLeasehold runs a leasehold elector on lock.
func startLeasehold(t testing.TB, lock, id string, tm timing) *cand {
	c := &cand{id: id, kind: "leasehold", started: make(chan time.Time, 16), done: make(chan struct{})}
	cfg := kube.DefaultConfig()
	cfg.REST = candConfig(t, c)
	cfg.LeaseDuration = tm.lease
	cfg.Logger = slog.New(slog.DiscardHandler)
	kc, err := kube.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ecfg := elector.Config{Identity: id, LeaseDuration: tm.lease, RenewDeadline: tm.renew, RetryPeriod: tm.retry, ReleaseOnCancel: true}
	e, err := elector.New(ecfg, kc.Lock(lock), elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) { c.onLead(ctx) },
		OnStoppedLeading: func() {},
	}, elector.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() { defer close(c.done); e.Run(ctx); kc.Close() }()
	t.Cleanup(c.stop)
	return c
}

// stop cancels c (a graceful stop: it releases if it leads) and waits.
func (c *cand) stop() {
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
	}
}

// sampler checks every millisecond that at most one candidate leads.
type sampler struct {
	mu     sync.Mutex
	cands  []*cand
	both   int // samples with two leaders
	who    string
	stopCh chan struct{}
	wg     sync.WaitGroup
}

func newSampler() *sampler {
	s := &sampler{stopCh: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stopCh:
				return
			case <-tick.C:
			}
			s.mu.Lock()
			n, who := 0, ""
			for _, c := range s.cands {
				if c.leading.Load() {
					n++
					who += c.id + " "
				}
			}
			if n > 1 {
				s.both++
				s.who = who
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *sampler) add(cs ...*cand) {
	s.mu.Lock()
	s.cands = append(s.cands, cs...)
	s.mu.Unlock()
}

func (s *sampler) stop() (int, string) {
	close(s.stopCh)
	s.wg.Wait()
	return s.both, s.who
}

// leaderAmong waits until one of cs leads and returns it.
func leaderAmong(t testing.TB, limit time.Duration, cs ...*cand) *cand {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		for _, c := range cs {
			if c.leading.Load() {
				return c
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("none of %v led within %v", names(cs), limit)
	return nil
}

func names(cs []*cand) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.id)
	}
	return out
}

// TestInteropClientGo: client-go leader election and leasehold on one
// Lease: exactly one leader at any time; graceful handoffs both ways; a
// crash (a cut network, no release) of either kind taken over by the
// other kind; leaseTransitions never goes backwards.
func TestInteropClientGo(t *testing.T) {
	need(t)
	// LeaseDuration − RenewDeadline is the margin between a cut-off
	// leader's step-down and the next one's takeover: 1.5s, so that a
	// starved test process (-race on two busy cores delayed a step-down by
	// about 0.5s once) does not show as two leaders.
	tm := timing{3 * time.Second, 1500 * time.Millisecond, 250 * time.Millisecond}
	lock := fmt.Sprintf("interop-%d", time.Now().UnixNano()%1e9)
	leases := admin(t).CoordinationV1().Leases("default")
	lastTerm := int32(-1)
	checkTerm := func(what string, wantHolder string) {
		t.Helper()
		l, err := leases.Get(ctxT(t), lock, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != wantHolder {
			t.Fatalf("%s: the Lease's holder is %v, want %s", what, l.Spec.HolderIdentity, wantHolder)
		}
		if l.Spec.LeaseTransitions == nil || *l.Spec.LeaseTransitions <= lastTerm {
			t.Fatalf("%s: leaseTransitions %v, was %d: want it higher", what, l.Spec.LeaseTransitions, lastTerm)
		}
		lastTerm = *l.Spec.LeaseTransitions
	}
	s := newSampler()
	defer func() {
		if n, who := s.stop(); n > 0 {
			t.Errorf("two leaders at once in %d samples (last: %s)", n, who)
		}
	}()

	// 1. A client-go leader, two leasehold followers.
	cg1 := startClientGo(t, lock, "cg1", tm)
	s.add(cg1)
	leaderAmong(t, 10*time.Second, cg1)
	checkTerm("client-go leads", "cg1")
	lh1, lh2 := startLeasehold(t, lock, "lh1", tm), startLeasehold(t, lock, "lh2", tm)
	s.add(lh1, lh2)
	time.Sleep(time.Second) // the followers see cg1 renew

	// 2. Graceful handoff client-go -> leasehold.
	t0 := time.Now()
	cg1.stop()
	next := leaderAmong(t, 5*time.Second, lh1, lh2)
	t.Logf("graceful handoff cg1 -> %s in %v", next.id, time.Since(t0))
	if d := time.Since(t0); d > tm.lease {
		t.Fatalf("handoff took %v: client-go's release was not seen", d)
	}
	checkTerm("after the handoff to leasehold", next.id)

	// 3. Graceful handoff leasehold -> client-go (the other leasehold
	// stops first, so only client-go candidates remain).
	cg2, cg3 := startClientGo(t, lock, "cg2", tm), startClientGo(t, lock, "cg3", tm)
	s.add(cg2, cg3)
	time.Sleep(time.Second)
	other := lh1
	if next == lh1 {
		other = lh2
	}
	other.stop()
	t0 = time.Now()
	next.stop()
	cgLeader := leaderAmong(t, 5*time.Second, cg2, cg3)
	t.Logf("graceful handoff %s -> %s in %v", next.id, cgLeader.id, time.Since(t0))
	checkTerm("after the handoff to client-go", cgLeader.id)

	// 4. A client-go leader crashes: leasehold takes over.
	for _, c := range []*cand{cg2, cg3} {
		if c != cgLeader {
			c.stop()
		}
	}
	lh3 := startLeasehold(t, lock, "lh3", tm)
	s.add(lh3)
	time.Sleep(time.Second)
	t0 = time.Now()
	cgLeader.cut.Store(true)
	leaderAmong(t, 3*tm.lease, lh3)
	t.Logf("crash of %s: lh3 leads after %v", cgLeader.id, time.Since(t0))
	checkTerm("after the client-go crash", "lh3")
	cgLeader.stop()

	// 5. A leasehold leader crashes: client-go takes over.
	cg4 := startClientGo(t, lock, "cg4", tm)
	s.add(cg4)
	time.Sleep(time.Second)
	t0 = time.Now()
	lh3.cut.Store(true)
	leaderAmong(t, 3*tm.lease, cg4)
	t.Logf("crash of lh3: cg4 leads after %v", time.Since(t0))
	checkTerm("after the leasehold crash", "cg4")
	lh3.stop()
}

// TestJobsSurviveClientGo: a client-go candidate writing the Lease keeps
// leasehold's job annotations, so slot claims outlive a mixed fleet.
func TestJobsSurviveClientGo(t *testing.T) {
	cs := admin(t)
	name := "jobs-client-go-" + fmtInt(int(time.Now().UnixNano()%1e6))
	slot := time.Date(2026, 12, 2, 7, 5, 0, 123456789, time.UTC)
	jobs := map[string]elector.JobState{"backup": {Started: slot, StartedTerm: 2, Done: slot}}
	b := client(t, nil).Lock(name)
	if _, err := b.Create(ctxT(t), elector.Record{Holder: "", LeaseDuration: 15 * time.Second, Term: 2, Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: "default"},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: "cg"},
	}
	ler, _, err := lock.Get(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.NewTime(time.Now())
	ler.HolderIdentity, ler.LeaseDurationSeconds, ler.AcquireTime, ler.RenewTime = "cg", 15, now, now
	ler.LeaderTransitions++
	if err := lock.Update(ctxT(t), *ler); err != nil {
		t.Fatal(err)
	}
	r, _, err := b.Get(ctxT(t))
	if err != nil || r.Holder != "cg" || r.Jobs["backup"] != jobs["backup"] {
		t.Fatalf("after client-go's write: %+v %v, want holder cg and the jobs %+v", r, err, jobs)
	}
}
