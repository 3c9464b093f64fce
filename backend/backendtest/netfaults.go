package backendtest

// The network cases of RunFaults: faults between the leader's client and
// the store (through internal/faultproxy), a watching follower's requests,
// and a client that cannot reach its store.

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/faultproxy"
	"github.com/leasehold-go/leasehold/internal/history"
)

// faultLeaderCutOff: the leader's proxies are closed for good.
func faultLeaderCutOff(t *testing.T, h FaultHooks) {
	faultNetwork(t, h, "c1's proxies closed (its connections reset, their ports refused)",
		func(s *faultproxy.Set) { s.Close() }, false)
}

// faultBlackhole: the leader's connections go silent; on heal what they
// held is delivered.
func faultBlackhole(t *testing.T, h FaultHooks) {
	faultNetwork(t, h, "c1's proxies blackholed", (*faultproxy.Set).Blackhole, true)
}

// faultLatency: every byte between the leader and the store is delayed a
// lease each way (2s with the default timing): beyond the renew deadline,
// every renewal times out, and lands when the leader has given up on it.
func faultLatency(t *testing.T, h FaultHooks) {
	d := h.Lease.LeaseDuration
	if d == 0 {
		d = 2 * time.Second
	}
	faultNetwork(t, h, "c1's proxies delay every byte "+d.String()+" each way",
		func(s *faultproxy.Set) { s.Delay(d) }, true)
}

// faultReset: the leader's connections are reset, and every new one.
func faultReset(t *testing.T, h FaultHooks) {
	faultNetwork(t, h, "c1's proxies reset every connection", (*faultproxy.Set).Reset, true)
}

// faultNetwork runs one network case: c1 leads through its proxies, inject
// cuts it off, it must step down before its lease runs out and another
// must lead; with heal the proxies pass again and c1 must follow.
func faultNetwork(t *testing.T, h FaultHooks, what string, inject func(*faultproxy.Set), heal bool) {
	r, set, c1 := newNetRun(t, h)
	mark := r.fault(what)
	inject(set)
	r.steppedDown("c1", mark)
	r.leaderOther("c1", mark)
	if heal {
		mark = r.fault("healed: the proxies pass traffic again")
		set.Pass()
		r.follows("c1", c1, mark)
	}
	r.settle()
}

// newNetRun starts a network case: c1 on a client through proxies, alone
// until it leads, then c2 and c3 on clients of their own; it returns once
// c1 leads and both follow it.
func newNetRun(t *testing.T, h FaultHooks) (*faultRun, *faultproxy.Set, *counted) {
	t.Helper()
	if h.NewVia == nil {
		t.Skip("no NewVia hook: no client through a proxy")
	}
	r := newRun(t, h)
	set := &faultproxy.Set{}
	// Registered before NewVia's cleanups: runs after them, once the
	// candidate stopped and its client closed.
	t.Cleanup(func() { set.Close() })
	b := h.NewVia(t, r.lock, func(addr string) string {
		a, err := set.Via(addr)
		if err != nil {
			t.Fatal(err)
		}
		return a
	})
	b, c1 := count(b)
	r.startOn("c1", b)
	r.await("c1 (through the proxies) leads", func() bool { return r.leading["c1"] != 0 })
	r.start("c2")
	r.start("c3")
	if l := r.steady(); l != "c1" {
		t.Fatalf("%s leads, not c1", l)
	}
	var to []string
	for _, p := range set.Proxies() {
		to = append(to, p.Addr()+"→"+p.Target())
	}
	r.note("c1's client goes through %s", strings.Join(to, ", "))
	return r, set, c1
}

// steppedDown waits until id's leadership has ended and checks that its
// work stopped before LeaseDuration had passed since the send time of its
// last acknowledged renewal: from then on another candidate may take over
// (it waits a lease from a later observation of that renewal).
func (r *faultRun) steppedDown(id string, mark time.Time) {
	r.t.Helper()
	r.await(id+" steps down", func() bool { return r.leading[id] == 0 })
	r.mu.Lock()
	var iv history.Interval
	for _, v := range r.ivs {
		if v.Replica == id {
			iv = v // the last one
		}
	}
	last := r.last[iv.Run]
	r.mu.Unlock()
	ran := iv.End.Sub(last)
	r.note("  %s stepped down %v after its last acknowledged renewal was sent (renew deadline %v, lease %v), %v after the fault",
		id, ran.Round(time.Millisecond), r.cfg.RenewDeadline, r.cfg.LeaseDuration, iv.End.Sub(mark).Round(time.Millisecond))
	if last.IsZero() || ran >= r.cfg.LeaseDuration {
		r.t.Errorf("%s's work stopped %v after its last renewal was sent (at %v), not before its lease (%v) ran out: another candidate may lead meanwhile",
			id, ran, last, r.cfg.LeaseDuration)
	}
}

// leaderOther waits until a candidate other than old leads with a write
// sent after mark.
func (r *faultRun) leaderOther(old string, mark time.Time) {
	r.t.Helper()
	var leader string
	r.await("a leader other than "+old, func() bool {
		for id := range r.leading {
			if id != old && !r.renewed[id].Before(mark) {
				leader = id
				return true
			}
		}
		return false
	})
	r.note("  %s leads (term %d), renewed %v after the fault", leader, r.term(leader), time.Since(mark).Round(time.Millisecond))
}

// follows waits until id, whose Backend is c, observes as the leader a
// candidate that renewed after mark, and the store answered one of id's
// calls after mark.
func (r *faultRun) follows(id string, c *counted, mark time.Time) {
	r.t.Helper()
	var leader string
	r.await(id+" follows the leader after the heal", func() bool {
		leader = r.sees[id]
		return leader != "" && leader != id && r.leading[leader] != 0 &&
			!r.renewed[leader].Before(mark) && !c.lastAnswer().Before(mark)
	})
	r.note("  %s follows %s, %v after the heal", id, leader, time.Since(mark).Round(time.Millisecond))
}

// faultIdleFollower: while the leader only renews, a watching follower
// (c2) sends no Get, Create or Update, and its transport no request
// beyond its blocking queries, where a polling follower's (c3) Gets show
// the counts work; a watching follower (c4) of another lock whose holder
// does not renew sends nothing at all but the one blocking query it has
// open.
func faultIdleFollower(t *testing.T, h FaultHooks) {
	const window = 8 // renewals of the leader
	r := newRun(t, h)
	r.start("c1")
	r.await("c1 leads", func() bool { return r.leading["c1"] != 0 })
	counted := func(lock string) (elector.Backend, *counted, func() int) {
		var (
			b        elector.Backend
			requests func() int
		)
		if h.NewCounted != nil {
			b, requests = h.NewCounted(t, lock)
		} else {
			b = h.New(t, lock)
		}
		if _, ok := b.(elector.Watcher); !ok {
			t.Skip("the backend has no watch: followers poll")
		}
		b, c := count(b)
		return b, c, requests
	}
	wb, w, wreq := counted(r.lock)
	pb, p := count(PollOnly(h.New(t, r.lock)))
	r.startOn("c2", wb)
	r.startOn("c3", pb)
	if l := r.steady(); l != "c1" {
		t.Fatalf("%s leads, not c1", l)
	}
	// The other lock: held by "gone", which renews once (so that c4's
	// watch is seen delivering: it is set up) and then never again, with
	// a lease far beyond the case.
	idle := r.lock + "-idle"
	gone := h.New(t, idle)
	now := time.Now().UTC().Truncate(time.Second)
	rec := elector.Record{Holder: "gone", LeaseDuration: time.Minute, AcquireTime: now, RenewTime: now, Term: elector.WallTerm(now)}
	v, err := gone.Create(ctxT(t), rec)
	if err != nil {
		t.Fatal(err)
	}
	ib, i, ireq := counted(idle)
	r.startOn("c4", ib)
	r.await("c4 follows gone", func() bool { return r.sees["c4"] == "gone" })
	rec.RenewTime = time.Now().UTC().Truncate(time.Millisecond) // another value: a change
	if _, err := gone.Update(ctxT(t), rec, v); err != nil {
		t.Fatal(err)
	}
	// The window opens once c2's and c4's watches have delivered a
	// change: their streams (or first blocking queries) are set up.
	r.await("c2's and c4's watches deliver a change", func() bool { return w.watchAnswers() > 0 && i.watchAnswers() > 0 })
	requests := func(f func() int) int {
		if f == nil {
			return 0
		}
		return f()
	}
	// The window counts only while c1 leads throughout with one term: a
	// store too slow to answer a renewal in time (a loaded machine) ends
	// the leadership, and the counts of that window say nothing about an
	// idle follower. Such a window is measured again, twice at most.
	var (
		w0, p0, i0, w1, p1, i1 map[string]int
		wq, iq, renewals       int
		took                   time.Duration
	)
	for attempt := 1; ; attempt++ {
		r.await("c1 leads, followed by c2", func() bool { return r.leading["c1"] != 0 && r.sees["c2"] == "c1" })
		r.mu.Lock()
		from, term := r.renews["c1"], r.leading["c1"]
		r.mu.Unlock()
		w0, p0, i0 = w.counts(), p.counts(), i.counts()
		wq0, iq0 := requests(wreq), requests(ireq)
		start := time.Now()
		r.await("c1 renews 8 times", func() bool { return r.renews["c1"] >= from+window || r.leading["c1"] != term })
		w1, p1, i1 = w.counts(), p.counts(), i.counts()
		wq, iq = requests(wreq)-wq0, requests(ireq)-iq0
		took = time.Since(start)
		r.mu.Lock()
		var still int64
		var c2sees, c4sees string
		renewals, still, c2sees, c4sees = r.renews["c1"]-from, r.leading["c1"], r.sees["c2"], r.sees["c4"]
		r.mu.Unlock()
		if still == term && c2sees == "c1" && c4sees == "gone" {
			break
		}
		if attempt == 3 {
			t.Fatalf("in 3 windows, c1 never led throughout: it no longer leads with term %d (now %d), or c2 follows %q, or c4 %q", term, still, c2sees, c4sees)
		}
		r.note("window %d: c1's leadership (term %d) ended (now %d): measuring again", attempt, term, still)
	}
	writes := func(a, b map[string]int) int {
		return b["Get"] - a["Get"] + b["Create"] - a["Create"] + b["Update"] - a["Update"]
	}
	sent := func(q int) string {
		if h.NewCounted == nil {
			return "not counted (no NewCounted hook)"
		}
		return strconv.Itoa(q)
	}
	r.note("during %d renewals of c1 (%v): the watching follower made %d Get/Create/Update and %d Watch calls, its transport sent %s requests; "+
		"the polling follower made %d Gets; the follower of the idle lock made %d calls, its transport sent %s requests",
		renewals, took.Round(time.Millisecond), writes(w0, w1), w1["Watch"]-w0["Watch"], sent(wq),
		p1["Get"]-p0["Get"], writes(i0, i1)+i1["Watch"]-i0["Watch"], sent(iq))
	if n := writes(w0, w1); n != 0 {
		t.Errorf("the watching follower made %d Get/Create/Update calls while the leader only renewed: it polls (%v)", n, w1)
	}
	if n := w1["Watch"] - w0["Watch"]; n > renewals+2 {
		t.Errorf("the watching follower called Watch %d times during %d renewals: more than once per change", n, renewals)
	}
	if limit := h.WatchRequests * (renewals + 2); wq > limit {
		t.Errorf("the watching follower's transport sent %d requests during %d renewals, more than %d per renewal (+2)", wq, renewals, h.WatchRequests)
	}
	if p1["Get"] == p0["Get"] {
		t.Errorf("the polling follower made no Get during %d renewals: the counts do not work (%v)", renewals, p1)
	}
	// c4 may have called Watch once after the last change (its blocking
	// query then sent as the window opened); nothing else.
	if n, m := writes(i0, i1), i1["Watch"]-i0["Watch"]; n != 0 || m > 1 {
		t.Errorf("the follower of a lock that did not change made %d Get/Create/Update and %d Watch calls (%v)", n, m, i1)
	}
	if iq > h.WatchRequests {
		t.Errorf("the follower of a lock that did not change sent %d requests, more than the %d of one wait", iq, h.WatchRequests)
	}
}

// faultUnreachable: a client whose store is behind a proxy that resets,
// or holds, every connection gives up with an error that names where it
// tried and its timeout.
func faultUnreachable(t *testing.T, h FaultHooks) {
	if h.Connect == nil {
		t.Skip("no Connect hook")
	}
	const timeout = 500 * time.Millisecond
	for _, c := range []struct {
		name string
		mode func(*faultproxy.Set)
		seen func(faultproxy.Stats) bool
	}{
		{"Reset", (*faultproxy.Set).Reset, func(s faultproxy.Stats) bool { return s.Refused > 0 }},
		{"Blackhole", (*faultproxy.Set).Blackhole, func(s faultproxy.Stats) bool { return s.Accepted > 0 && s.Dialed == 0 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			set := &faultproxy.Set{}
			defer set.Close()
			c.mode(set) // before Via: the proxies start in that mode
			via := func(addr string) string {
				a, err := set.Via(addr)
				if err != nil {
					t.Errorf("%v", err)
					return addr
				}
				return a
			}
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- h.Connect(via, timeout) }()
			var err error
			guard := time.NewTimer(timeout + 30*time.Second) // a hang guard
			defer guard.Stop()
			select {
			case err = <-done:
			case <-guard.C:
				t.Fatalf("the client did not give up (timeout %v)", timeout)
			}
			took := time.Since(start)
			if err == nil {
				t.Fatalf("connected through proxies in %s mode", c.name)
			}
			if len(set.Proxies()) == 0 {
				t.Fatalf("Connect did not pass its addresses through via: %v", err)
			}
			for _, p := range set.Proxies() {
				if !strings.Contains(err.Error(), p.Addr()) {
					t.Errorf("the error does not name the address it tried, %s: %v", p.Addr(), err)
				}
			}
			if !strings.Contains(err.Error(), timeout.String()) {
				t.Errorf("the error does not name the timeout %v: %v", timeout, err)
			}
			if st := set.Stats(); !c.seen(st) {
				t.Errorf("the proxies did not see the client as expected: %+v", st)
			}
			t.Logf("gave up after %v (timeout %v): %v", took.Round(time.Millisecond), timeout, err)
		})
	}
}

// counted counts the calls made on a Backend and notes when the store
// last answered one (a record, a version, or a conflict or not-found).
type counted struct {
	b       elector.Backend
	mu      sync.Mutex
	calls   map[string]int
	answer  time.Time
	watched int // Watch calls answered
}

// count wraps b; the Backend it returns is a Watcher when b is one.
func count(b elector.Backend) (elector.Backend, *counted) {
	c := &counted{b: b, calls: map[string]int{}}
	if _, ok := b.(elector.Watcher); ok {
		return countedWatcher{c}, c
	}
	return c, c
}

func (c *counted) begin(op string) {
	c.mu.Lock()
	c.calls[op]++
	c.mu.Unlock()
}

func (c *counted) end(op string, err error) {
	if err != nil && !errors.Is(err, elector.ErrConflict) && !errors.Is(err, elector.ErrNotFound) {
		return
	}
	c.mu.Lock()
	c.answer = time.Now()
	if op == "Watch" {
		c.watched++
	}
	c.mu.Unlock()
}

func (c *counted) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.calls))
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

func (c *counted) lastAnswer() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answer
}

func (c *counted) watchAnswers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.watched
}

func (c *counted) Get(ctx context.Context) (elector.Record, elector.Version, error) {
	c.begin("Get")
	r, v, err := c.b.Get(ctx)
	c.end("Get", err)
	return r, v, err
}

func (c *counted) Create(ctx context.Context, r elector.Record) (elector.Version, error) {
	c.begin("Create")
	v, err := c.b.Create(ctx, r)
	c.end("Create", err)
	return v, err
}

func (c *counted) Update(ctx context.Context, r elector.Record, v elector.Version) (elector.Version, error) {
	c.begin("Update")
	v, err := c.b.Update(ctx, r, v)
	c.end("Update", err)
	return v, err
}

func (c *counted) Describe() string { return c.b.Describe() }

// NeverForgets passes the wrapped backend's answer on.
func (c *counted) NeverForgets() bool {
	r, ok := c.b.(elector.Remembering)
	return ok && r.NeverForgets()
}

type countedWatcher struct{ *counted }

func (c countedWatcher) Watch(ctx context.Context, v elector.Version) (elector.Record, elector.Version, error) {
	c.begin("Watch")
	r, nv, err := c.b.(elector.Watcher).Watch(ctx, v)
	c.end("Watch", err)
	return r, nv, err
}
