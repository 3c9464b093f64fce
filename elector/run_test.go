package elector_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
)

// Short leases: 2s / 1.5s / 0.5s; checks every 25ms of virtual time.
const (
	ld   = 2 * time.Second
	rd   = 1500 * time.Millisecond
	rp   = 500 * time.Millisecond
	step = 25 * time.Millisecond
)

// cluster runs candidates on one memory store inside a synctest bubble
// (see bubble): the electors, the store and the test sleep on the real
// clock, which is virtual there. Time moves only when every goroutine of
// the bubble waits (on a timer, a watch, or a call the store holds back),
// so each step of the test sees every driver at rest, exactly.
type cluster struct {
	t     *testing.T
	store *memory.Store
	start time.Time
	nodes []*node
	// identity of a node added next, when it is not the node's name.
	identity map[string]string

	mu      sync.Mutex
	spans   []span // leaderships, in start order
	active  map[string]int
	renewed []renewal
}

// renewal is one OnRenewed call, in virtual time since the start.
type renewal struct {
	id        string
	at, until time.Duration
}

type node struct {
	id     string
	e      *elector.Elector
	cancel context.CancelFunc
	done   chan struct{}
}

// span is one leadership, in virtual time since the start; stop is -1
// while it lasts.
type span struct {
	id          string
	term        int64
	start, stop time.Duration
}

// bubble runs a cluster test in a synctest bubble: everything it starts,
// and the clock they read, belong to it.
func bubble(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	synctest.Test(t, f)
}

// newCluster starts n candidates; it must be called inside a bubble.
func newCluster(t *testing.T, n int, watch bool) *cluster {
	c := &cluster{t: t, start: time.Now(), active: map[string]int{}, identity: map[string]string{}}
	c.store = memory.New()
	for i := range n {
		c.add(fmt.Sprintf("n%d", i+1), watch, uint64(i))
	}
	t.Cleanup(c.stopAll)
	return c
}

func (c *cluster) now() time.Duration { return time.Since(c.start) }

func (c *cluster) add(id string, watch bool, seed uint64) *node {
	var b elector.Backend = c.store.Backend("lock", id)
	if !watch {
		b = backendtest.PollOnly(c.store.Backend("lock", id))
	}
	return c.addWith(id, b, seed, nil)
}

// addWith starts a candidate on backend b. With hold set, its leader work
// keeps running after its context is cancelled until hold is closed.
func (c *cluster) addWith(id string, b elector.Backend, seed uint64, hold <-chan struct{}) *node {
	identity := id
	if x, ok := c.identity[id]; ok {
		identity = x
	}
	cfg := elector.Config{Identity: identity, LeaseDuration: ld, RenewDeadline: rd, RetryPeriod: rp, ReleaseOnCancel: true}
	nd := &node{id: id, done: make(chan struct{})}
	e, err := elector.New(cfg, b, elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) {
			c.mu.Lock()
			c.spans = append(c.spans, span{id: id, term: term, start: c.now(), stop: -1})
			i := len(c.spans) - 1
			c.mu.Unlock()
			<-ctx.Done()
			if hold != nil {
				<-hold
			}
			c.mu.Lock()
			c.spans[i].stop = c.now()
			c.mu.Unlock()
		},
		OnStoppedLeading: func() {},
		OnRenewed: func(term int64, until time.Time) {
			c.mu.Lock()
			c.renewed = append(c.renewed, renewal{id: id, at: c.now(), until: until.Sub(c.start)})
			c.mu.Unlock()
		},
	}, elector.WithRand(rand.New(rand.NewPCG(seed, 1))), elector.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nd.e, nd.cancel = e, cancel
	c.nodes = append(c.nodes, nd)
	go func() {
		defer close(nd.done)
		if err := e.Run(ctx); err != nil {
			c.t.Error(err)
		}
	}()
	return nd
}

// returned reports whether the node's Run has returned.
func (nd *node) returned() bool {
	select {
	case <-nd.done:
		return true
	default:
		return false
	}
}

// advance lets d of virtual time pass in small steps, checking after each
// step, once every goroutine waits again, that no two candidates lead at
// once.
func (c *cluster) advance(d time.Duration) {
	c.t.Helper()
	for end := c.now() + d; c.now() < end; {
		time.Sleep(step)
		synctest.Wait()
		c.checkOneLeader()
	}
}

// until advances until cond holds, failing after limit.
func (c *cluster) until(limit time.Duration, what string, cond func() bool) {
	c.t.Helper()
	for end := c.now() + limit; !cond(); {
		if c.now() >= end {
			c.t.Fatalf("at %v: %s did not happen within %v", c.now(), what, limit)
		}
		c.advance(step)
	}
}

func (c *cluster) checkOneLeader() {
	c.t.Helper()
	n := 0
	for _, nd := range c.nodes {
		if nd.e.IsLeader() {
			n++
		}
	}
	if n > 1 {
		c.t.Fatalf("at %v: %d candidates lead at once", c.now(), n)
	}
}

func (c *cluster) leader() *node {
	for _, nd := range c.nodes {
		if nd.e.IsLeader() {
			return nd
		}
	}
	return nil
}

func (c *cluster) leaderships() []span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]span(nil), c.spans...)
}

// stopAll cancels every candidate and waits for its Run to return (time
// moves on while they release and their work returns).
func (c *cluster) stopAll() {
	for _, nd := range c.nodes {
		nd.cancel()
	}
	for _, nd := range c.nodes {
		<-nd.done
	}
}

func TestRunOneLeaderAmongMany(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 5, true)
		c.until(ld, "a leader", func() bool { return c.leader() != nil })
		first := c.leader()
		c.advance(30 * time.Second)
		if l := c.leader(); l != first {
			t.Fatalf("leadership moved from %s to %v without a fault", first.id, l)
		}
		if s := c.leaderships(); len(s) != 1 {
			t.Fatalf("leaderships %+v, want exactly one", s)
		}
		for _, nd := range c.nodes {
			if got := nd.e.Leader(); got != first.id {
				t.Errorf("%s sees leader %q, want %q", nd.id, got, first.id)
			}
		}
	})
}

func TestRunGracefulHandoff(t *testing.T) {
	for _, watch := range []bool{true, false} {
		t.Run(fmt.Sprintf("watch=%v", watch), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				c := newCluster(t, 3, watch)
				c.until(ld, "a leader", func() bool { return c.leader() != nil })
				c.advance(3 * time.Second)
				old := c.leader()
				oldTerm := old.e.Term()
				stopAt := c.now()
				old.cancel()
				// With watch, the release wakes a follower at once; polling
				// followers see it at their next poll (at most 2.2 RP).
				limit := step
				if !watch {
					limit = rp + time.Duration(elector.DefaultJitterFactor*float64(rp)) + step
				}
				c.until(limit, "a new leader", func() bool { l := c.leader(); return l != nil && l != old })
				<-old.done
				spans := c.leaderships()
				last := spans[len(spans)-1]
				if last.term <= oldTerm {
					t.Fatalf("new term %d not above the old %d", last.term, oldTerm)
				}
				t.Logf("handoff took %v of virtual time", last.start-stopAt)
			})
		})
	}
}

// A leader cut off from the store stops leading before RenewDeadline after
// its last renewal; another takes over only after LeaseDuration.
func TestRunPartitionedLeaderStepsDown(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 3, true)
		c.until(ld, "a leader", func() bool { return c.leader() != nil })
		c.advance(3 * time.Second)
		old := c.leader()
		cutAt := c.now()
		c.store.Partition(old.id)
		c.until(ld+3*rp, "a new leader", func() bool { l := c.leader(); return l != nil && l != old })
		spans := c.leaderships()
		if len(spans) != 2 {
			t.Fatalf("leaderships %+v, want 2", spans)
		}
		was, now := spans[0], spans[1]
		if was.stop < 0 || was.stop > cutAt+rd+step {
			t.Fatalf("cut at %v, the old leader stopped at %v: later than RenewDeadline", cutAt, was.stop)
		}
		// The last renewal that got through was sent at most RP before the cut.
		if now.start < cutAt-rp+ld-step {
			t.Fatalf("cut at %v, new leader started at %v: before LeaseDuration after the last renewal", cutAt, now.start)
		}
		if now.start <= was.stop {
			t.Fatalf("new leader started at %v before the old one stopped at %v", now.start, was.stop)
		}
		t.Logf("cut at %v, old leader stopped at %v, new started at %v", cutAt, was.stop, now.start)

		// Healed, the old leader follows the new one.
		c.store.Heal(old.id)
		c.advance(2 * ld)
		if l := c.leader(); l != c.nodes[indexOf(c, now.id)] {
			t.Fatalf("after healing, leader is %v, want %s", l, now.id)
		}
		if got := old.e.Leader(); got != now.id {
			t.Fatalf("the healed node sees leader %q, want %q", got, now.id)
		}
	})
}

// OnRenewed tells, after every acknowledged write, until when the
// leadership is valid: the write's send time + RenewDeadline. A leader cut
// off from the store stops leading at the last instant it was told, so a
// watchdog holding the leader's work to it never stops the work late.
func TestRunOnRenewedBoundsLeadership(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 2, true)
		c.until(ld, "a leader", func() bool { return c.leader() != nil })
		c.advance(5 * time.Second)
		old := c.leader()
		c.store.Partition(old.id)
		c.until(ld+3*rp, "a new leader", func() bool { l := c.leader(); return l != nil && l != old })
		spans := c.leaderships()
		c.mu.Lock()
		var mine []renewal
		for _, r := range c.renewed {
			if r.id == old.id {
				mine = append(mine, r)
			}
		}
		c.mu.Unlock()
		// One acquisition plus a renewal every RetryPeriod over 5s.
		if len(mine) < int(5*time.Second/rp) {
			t.Fatalf("%d OnRenewed calls in 5s of leading (RetryPeriod %v)", len(mine), rp)
		}
		for i, r := range mine {
			if r.until > r.at+rd || r.until < r.at+rd-step {
				t.Fatalf("renewal %d at %v: valid until %v, want its send time + %v", i, r.at, r.until, rd)
			}
			if i > 0 && r.until <= mine[i-1].until {
				t.Fatalf("renewal %d: valid until %v, not after the previous %v", i, r.until, mine[i-1].until)
			}
		}
		last := mine[len(mine)-1].until
		if spans[0].stop < 0 || spans[0].stop > last+step {
			t.Fatalf("told valid until %v, the old leader stopped at %v", last, spans[0].stop)
		}
		if spans[1].start <= last {
			t.Fatalf("the new leader started at %v, while the old one was told it led until %v", spans[1].start, last)
		}
	})
}

// Two processes with one identity: the second waits out the first's lease
// instead of taking the record naming "its" identity at once. Before
// instances, they took the lock from each other every RetryPeriod.
func TestRunSharedIdentityOneLeader(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 0, true)
		c.identity["p1"], c.identity["p2"] = "same", "same"
		c.add("p1", true, 1)
		c.until(ld, "a leader", func() bool { return c.leader() != nil })
		c.add("p2", true, 2)
		c.advance(20 * time.Second) // checks one leader at every step
		if s := c.leaderships(); len(s) != 1 || s[0].id != "p1" {
			t.Fatalf("leaderships %+v, want p1's alone", s)
		}
		// p1 stops without releasing: p2 takes over once the lease has run out.
		c.store.Partition("p1")
		c.until(ld+3*rp, "p2 leading", func() bool { return c.leader() == c.nodes[1] })
		if s := c.leaderships(); len(s) != 2 || s[1].term <= s[0].term {
			t.Fatalf("leaderships %+v, want p1 then p2 with a higher term", s)
		}
	})
}

func indexOf(c *cluster, id string) int {
	for i, nd := range c.nodes {
		if nd.id == id {
			return i
		}
	}
	return -1
}

// Followers waiting on the watch make no Get calls while the leader only
// renews; polling followers do.
func TestRunWatchFollowersDoNotPoll(t *testing.T) {
	for _, watch := range []bool{true, false} {
		t.Run(fmt.Sprintf("watch=%v", watch), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				c := newCluster(t, 3, watch)
				c.until(ld, "a leader", func() bool { return c.leader() != nil })
				c.advance(ld)
				before := map[string]memory.Counts{}
				for _, nd := range c.nodes {
					before[nd.id] = c.store.Counts(nd.id)
				}
				const span = 60 * time.Second
				c.advance(span)
				leader := c.leader()
				for _, nd := range c.nodes {
					if nd == leader {
						continue
					}
					gets := c.store.Counts(nd.id).Get - before[nd.id].Get
					if watch && gets != 0 {
						t.Errorf("follower %s made %d Get calls in %v with watch on", nd.id, gets, span)
					}
					// Polling: one Get per jittered RetryPeriod, in [RP, 2.2 RP).
					if lo, hi := int64(span/(rp*22/10)), int64(span/rp)+1; !watch && (gets < lo || gets > hi) {
						t.Errorf("polling follower %s made %d Get calls in %v, want %d..%d", nd.id, gets, span, lo, hi)
					}
				}
			})
		})
	}
}

func TestRunRetriesBackendErrors(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 0, true)
		c.store.FailNext(7, nil)
		c.add("n1", true, 1)
		c.until(10*time.Second, "a leader despite failing calls", func() bool { return c.leader() != nil })
	})
}

func TestNewRejectsBadInput(t *testing.T) {
	good := elector.DefaultConfig("me")
	cb := elector.Callbacks{OnStartedLeading: func(context.Context, int64) {}, OnStoppedLeading: func() {}}
	b := memory.New().Backend("l", "me")
	bad := good
	bad.RenewDeadline = bad.LeaseDuration
	cases := map[string]func() error{
		"nil backend": func() error { _, err := elector.New(good, nil, cb); return err },
		"no started": func() error {
			_, err := elector.New(good, b, elector.Callbacks{OnStoppedLeading: func() {}})
			return err
		},
		"no stopped": func() error {
			_, err := elector.New(good, b, elector.Callbacks{OnStartedLeading: func(context.Context, int64) {}})
			return err
		},
		"bad config": func() error { _, err := elector.New(bad, b, cb); return err },
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, elector.ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
}

// The lock is released only after the leader's work has returned; if it
// does not return within RenewDeadline, it is not released at all.
func TestRunReleaseWaitsForLeaderWork(t *testing.T) {
	for _, returns := range []bool{true, false} {
		t.Run(fmt.Sprintf("returns=%v", returns), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				c := newCluster(t, 0, true)
				hold := make(chan struct{})
				defer func() {
					select {
					case <-hold:
					default:
						close(hold)
					}
				}()
				n := c.addWith("n1", c.store.Backend("lock", "n1"), 1, hold)
				c.until(ld, "a leader", func() bool { return n.e.IsLeader() })
				n.cancel()
				c.advance(rd / 2)
				if holder(t, c) != "n1" {
					t.Fatal("released while the leader's work was still running")
				}
				if returns {
					close(hold)
				}
				c.until(2*rd, "Run returning", n.returned)
				want := ""
				if !returns {
					want = "n1"
				}
				if got := holder(t, c); got != want {
					t.Fatalf("holder after Run returned = %q, want %q", got, want)
				}
			})
		})
	}
}

func holder(t *testing.T, c *cluster) string {
	t.Helper()
	r, _, err := c.store.Backend("lock", "reader").Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r.Holder
}

// A renewal whose reply is lost is retried; the conflict with its own
// write is recognised and the leader keeps leading, same term.
func TestRunLostRenewalReplyKeepsLeadership(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 3, true)
		c.until(ld, "a leader", func() bool { return c.leader() != nil })
		l := c.leader()
		term := l.e.Term()
		c.store.LoseReplies(l.id, 1)
		c.advance(3 * ld)
		if c.leader() != l || l.e.Term() != term || len(c.leaderships()) != 1 {
			t.Fatalf("after lost replies: leader %v term %d, leaderships %+v; want %s still, term %d",
				c.leader(), l.e.Term(), c.leaderships(), l.id, term)
		}
	})
}

// Cancelling Run while a call is in flight does not start a leadership.
func TestRunCancelDuringCallDoesNotLead(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 0, true)
		c.store.SetLatency(200 * time.Millisecond)
		n := c.add("n1", true, 1)
		synctest.Wait() // its first call is held by the store's latency
		n.cancel()
		c.advance(2 * ld)
		<-n.done
		if s := c.leaderships(); len(s) != 0 {
			t.Fatalf("led after its context was cancelled: %+v", s)
		}
	})
}

// Run returns after cancel even when leadership was lost and the leader's
// work ignores its context.
func TestRunReturnsWhenWorkIgnoresContext(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 0, true)
		hold := make(chan struct{})
		defer close(hold)
		n := c.addWith("n1", c.store.Backend("lock", "n1"), 1, hold)
		c.until(ld, "a leader", func() bool { return n.e.IsLeader() })
		c.store.Partition("n1")
		c.advance(rd + rp) // lost; waiting for its work
		if n.e.IsLeader() {
			t.Fatal("still leading past the renew deadline")
		}
		n.cancel()
		c.until(2*rd, "Run returning", n.returned)
	})
}

// stuckBackend ignores contexts: its Update blocks until released.
type stuckBackend struct {
	*memory.Backend
	stuck   atomic.Bool
	release chan struct{}
}

func (s *stuckBackend) Update(ctx context.Context, r elector.Record, v elector.Version) (elector.Version, error) {
	if s.stuck.Load() {
		<-s.release
	}
	return s.Backend.Update(ctx, r, v)
}

// A leader stops at its renew deadline even when its backend hangs and
// ignores the call's context.
func TestRunLeaderStopsOnTimeWithHungBackend(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 0, true)
		sb := &stuckBackend{Backend: c.store.Backend("lock", "n1"), release: make(chan struct{})}
		defer close(sb.release)
		n := c.addWith("n1", sb, 1, nil)
		c.until(ld, "a leader", func() bool { return n.e.IsLeader() })
		sb.stuck.Store(true)
		c.until(rd+2*step, "stepping down", func() bool { return !n.e.IsLeader() })
	})
}

// staleReads serves Gets from a frozen snapshot once frozen (a lagging
// replica or cache) while writes go to the store.
type staleReads struct {
	*memory.Backend
	frozen atomic.Bool
	rec    elector.Record
	ver    elector.Version
	gets   atomic.Int64
}

func (s *staleReads) Get(ctx context.Context) (elector.Record, elector.Version, error) {
	if s.frozen.Load() {
		s.gets.Add(1)
		return s.rec, s.ver, nil
	}
	return s.Backend.Get(ctx)
}

func (s *staleReads) freeze(t *testing.T) {
	r, v, err := s.Backend.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.rec, s.ver = r, v
	s.frozen.Store(true)
}

// A leader whose reads are stale and whose renewal reply is lost must not
// keep leading on the strength of a stale read: it steps down by its lease
// and never spins; another takes over; never two at once.
func TestRunStaleReadsDoNotExtendLeadership(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 0, true)
		sr := &staleReads{Backend: c.store.Backend("lock", "a")}
		a := c.addWith("a", sr, 1, nil)
		c.until(ld, "a leading", func() bool { return a.e.IsLeader() })
		c.add("b", true, 2)
		c.advance(rp)
		sr.freeze(t)
		c.store.LoseReplies("a", 1)
		c.advance(3 * ld) // advance checks that no two lead at once
		if a.e.IsLeader() {
			t.Fatal("a still leads on stale reads")
		}
		if c.leader() == nil || c.leader().id != "b" {
			t.Fatalf("leader %v, want b", c.leader())
		}
		if n := sr.gets.Load(); n > int64(3*ld/rp)*3 {
			t.Fatalf("%d stale reads in %v: spinning", n, 3*ld)
		}
	})
}

// A library logs only where its program asks: an Elector built without
// WithLogger writes nothing to slog.Default, however much it has to say.
func TestRunLogsNothingUnasked(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(old)
	bubble(t, func(t *testing.T) {
		store := memory.New()
		ctx, cancel := context.WithCancel(context.Background())
		led := make(chan struct{})
		e, err := elector.New(elector.Config{Identity: "quiet", LeaseDuration: ld, RenewDeadline: rd, RetryPeriod: rp, ReleaseOnCancel: true},
			store.Backend("lock", "quiet"), elector.Callbacks{
				OnStartedLeading: func(ctx context.Context, _ int64) { close(led); <-ctx.Done() },
				OnStoppedLeading: func() {},
			})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		<-led
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	if buf.Len() != 0 {
		t.Errorf("logged to slog.Default unasked:\n%s", buf.String())
	}
	// And with a logger it does log (the test can fail).
	var mine bytes.Buffer
	bubble(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		led := make(chan struct{})
		e, _ := elector.New(elector.Config{Identity: "loud", LeaseDuration: ld, RenewDeadline: rd, RetryPeriod: rp},
			memory.New().Backend("lock", "loud"), elector.Callbacks{
				OnStartedLeading: func(ctx context.Context, _ int64) { close(led); <-ctx.Done() },
				OnStoppedLeading: func() {},
			}, elector.WithLogger(slog.New(slog.NewTextHandler(&mine, nil))))
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		<-led
		cancel()
		<-done
	})
	if !strings.Contains(mine.String(), "started leading") {
		t.Errorf("WithLogger: %q, want a started leading line", mine.String())
	}
}
