package benchreal

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// kind is one implementation under test: leasehold (watching or polling)
// or a native election.
type kind interface {
	name() string     // Impl*
	mode() string     // Mode*
	settings() string // for Result.Settings
	// lockName is the name of a lock of this kind for purpose (main,
	// acq3) in this run.
	lockName(purpose string) string
	// start makes a candidate named id campaign on lock, each on its own
	// connection, reporting to h. It returns once the campaign is started.
	start(ctx context.Context, lock, id string, h *hooks) (contender, error)
}

// contender is one campaigning candidate.
type contender interface {
	// began is when its campaign began (the start of acquire).
	began() time.Time
	// requests is how many requests it sent so far.
	requests() int64
	// stop is a graceful stop: a leader releases. It returns when the
	// candidate is gone.
	stop()
	// crash drops the candidate at once without a release: it neither
	// renews nor releases any more. It returns when the candidate is gone.
	crash()
}

// hooks is how candidates tell a trial what they do. Safe for concurrent
// use.
type hooks struct {
	events chan leadEvent

	mu      sync.Mutex
	renews  []time.Duration
	leading map[string]bool
	failed  error
	failedC chan struct{}
	once    sync.Once
}

type leadEvent struct {
	id string
	at time.Time
}

// maxRenewSamples bounds the renewal latencies kept.
const maxRenewSamples = 100000

func newHooks() *hooks {
	return &hooks{events: make(chan leadEvent, 4*MaxCandidates), leading: map[string]bool{}, failedC: make(chan struct{})}
}

// started reports that id started leading, now.
func (h *hooks) started(id string) {
	at := time.Now()
	h.mu.Lock()
	h.leading[id] = true
	h.mu.Unlock()
	select {
	case h.events <- leadEvent{id, at}:
	default: // never full: one event per leadership, read every round
	}
}

// stopped reports that id no longer leads.
func (h *hooks) stopped(id string) {
	h.mu.Lock()
	delete(h.leading, id)
	h.mu.Unlock()
}

// renewed reports one renewal round trip of a leader.
func (h *hooks) renewed(d time.Duration) {
	h.mu.Lock()
	if len(h.renews) < maxRenewSamples {
		h.renews = append(h.renews, d)
	}
	h.mu.Unlock()
}

// fail reports that a candidate cannot go on: the trial stops with err.
func (h *hooks) fail(err error) {
	h.once.Do(func() {
		h.mu.Lock()
		h.failed = err
		h.mu.Unlock()
		close(h.failedC)
	})
}

func (h *hooks) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failed
}

func (h *hooks) leaders() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []string
	for id := range h.leading {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (h *hooks) renewals() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.renews)
}

// drain forgets the leadership events so far.
func (h *hooks) drain() {
	for {
		select {
		case <-h.events:
		default:
			return
		}
	}
}

// waitLeader waits up to limit for a leadership event of a candidate other
// than not.
func (h *hooks) waitLeader(ctx context.Context, not string, limit time.Duration, what string) (leadEvent, error) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case ev := <-h.events:
			if ev.id != not {
				return ev, nil
			}
		case <-h.failedC:
			return leadEvent{}, h.err()
		case <-timer.C:
			return leadEvent{}, fmt.Errorf("%s: no leader within %v", what, limit)
		case <-ctx.Done():
			return leadEvent{}, ctx.Err()
		}
	}
}

// sleep waits d or until ctx is done or a candidate failed.
func (h *hooks) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-h.failedC:
		return h.err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pool is the candidates campaigning on one lock.
type pool struct {
	k     kind
	lock  string
	h     *hooks
	next  int
	cands map[string]contender
}

func (p *pool) add(ctx context.Context) error {
	p.next++
	id := fmt.Sprintf("c%d", p.next)
	c, err := p.k.start(ctx, p.lock, id, p.h)
	if err != nil {
		return err
	}
	p.cands[id] = c
	return nil
}

// stopAll stops every candidate gracefully, at once.
func (p *pool) stopAll() {
	var wg sync.WaitGroup
	for id, c := range p.cands {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop() }()
		delete(p.cands, id)
	}
	wg.Wait()
}

// leader is the one candidate leading, or an error.
func (p *pool) leader() (string, contender, error) {
	ls := p.h.leaders()
	if len(ls) != 1 {
		return "", nil, fmt.Errorf("want one leader, have %d (%v)", len(ls), ls)
	}
	c, ok := p.cands[ls[0]]
	if !ok {
		return "", nil, fmt.Errorf("leader %s is not a running candidate", ls[0])
	}
	return ls[0], c, nil
}

// stopWithin bounds the graceful stops and crashes of candidates: a
// candidate that does not stop in this time is left behind.
const stopWithin = 30 * time.Second

func bounded(f func()) {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	t := time.NewTimer(stopWithin)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// runTrial measures one kind: acquisitions of fresh locks, then on one
// lock with o.Candidates candidates the request rates, the handoffs and
// the crash failovers. A candidate that is stopped or crashed is replaced
// by a new one.
func runTrial(ctx context.Context, o Options, run string, k kind) (res Result, err error) {
	res = Result{Implementation: k.name(), Mode: k.mode()}
	// The longest a new leader may take: a crash failover waits for the
	// lease (Consul: up to twice the session TTL, then the lock-delay and
	// api.Lock's 5s retry).
	limit := 3*o.LeaseDuration + o.ConsulLockDelay + 30*time.Second
	// settle lets every follower observe the current record (and a new
	// candidate its first one) before the next measurement.
	settle := max(2*o.RetryPeriod+o.RetryPeriod/2, 300*time.Millisecond)

	var acquire, handoffs, crashes []time.Duration
	var h *hooks // the main lock's
	defer func() {
		res.Settings = k.settings() // known once a candidate ran
		// Whatever was measured is reported, also when a later phase failed.
		figs := []Figure{msFigure(FigAcquire, acquire)}
		res.Figures = append(figs, res.Figures...)
		if len(handoffs) > 0 || len(crashes) > 0 {
			res.Figures = append(res.Figures, msFigure(FigHandoff, handoffs), msFigure(FigCrash, crashes))
		}
		if h != nil {
			res.Figures = append(res.Figures, msFigure(FigRenew, h.renewals()))
		}
		res.Figures = orderFigures(res.Figures)
	}()

	// Acquire: one candidate alone on a fresh lock.
	for i := range o.Rounds {
		h := newHooks()
		c, err := k.start(ctx, k.lockName(fmt.Sprintf("acq%d", i)), "a", h)
		if err != nil {
			return res, fmt.Errorf("acquire %d: %w", i+1, err)
		}
		ev, err := h.waitLeader(ctx, "", limit, fmt.Sprintf("acquire %d", i+1))
		if err == nil {
			acquire = append(acquire, ev.at.Sub(c.began()))
		}
		bounded(c.stop)
		if err != nil {
			return res, err
		}
	}
	o.Log.Info("bench backend: acquired", "implementation", k.name(), "mode", k.mode(), "rounds", o.Rounds)

	h = newHooks()
	p := &pool{k: k, lock: k.lockName("main"), h: h, cands: map[string]contender{}}
	defer func() { bounded(p.stopAll) }()
	for range o.Candidates {
		if err := p.add(ctx); err != nil {
			return res, fmt.Errorf("start candidates: %w", err)
		}
	}
	if _, err := h.waitLeader(ctx, "", limit, "first leader"); err != nil {
		return res, err
	}

	// Requests while nothing changes: the leader renews, followers follow.
	if err := h.sleep(ctx, settle); err != nil {
		return res, err
	}
	leadID, _, err := p.leader()
	if err != nil {
		return res, fmt.Errorf("request window: %w", err)
	}
	before := map[string]int64{}
	for id, c := range p.cands {
		before[id] = c.requests()
	}
	t0 := time.Now()
	if err := h.sleep(ctx, o.Window); err != nil {
		return res, err
	}
	secs := time.Since(t0).Seconds()
	if id, _, err := p.leader(); err != nil || id != leadID {
		res.Notes = append(res.Notes, fmt.Sprintf("the leadership changed during the request window (%s, then %v)", leadID, h.leaders()))
	}
	var followers []float64
	var leaderRate float64
	for id, c := range p.cands {
		r := float64(c.requests()-before[id]) / secs
		if id == leadID {
			leaderRate = r
		} else {
			followers = append(followers, r)
		}
	}
	res.Figures = append(res.Figures, rateFigure(FigLeaderRPS, []float64{leaderRate}), rateFigure(FigFollowerRPS, followers))
	o.Log.Info("bench backend: requests counted", "implementation", k.name(), "mode", k.mode(), "window", o.Window)

	// Handoffs, then crash failovers: the leader goes, the time until
	// another candidate leads; a new candidate replaces it.
	for _, crash := range []bool{false, true} {
		what := "handoff"
		if crash {
			what = "crash failover"
		}
		for i := range o.Rounds {
			// A random phase against the leader's renewals, so that the
			// samples spread over it.
			phase := time.Duration(rand.Int64N(int64(o.RetryPeriod)))
			if err := h.sleep(ctx, settle+phase); err != nil {
				return res, err
			}
			id, c, err := p.leader()
			if err != nil {
				return res, fmt.Errorf("%s %d: %w", what, i+1, err)
			}
			h.drain()
			delete(p.cands, id)
			var t0 time.Time
			gone := make(chan struct{})
			go func() {
				defer close(gone)
				if crash {
					t0 = time.Now()
					bounded(c.crash)
				} else {
					t0 = time.Now()
					bounded(c.stop)
				}
			}()
			ev, err := h.waitLeader(ctx, id, limit, fmt.Sprintf("%s %d", what, i+1))
			<-gone
			if err != nil {
				return res, err
			}
			if crash {
				crashes = append(crashes, ev.at.Sub(t0))
			} else {
				handoffs = append(handoffs, ev.at.Sub(t0))
			}
			if err := p.add(ctx); err != nil {
				return res, fmt.Errorf("%s %d: replace %s: %w", what, i+1, id, err)
			}
		}
		o.Log.Info("bench backend: measured", "implementation", k.name(), "mode", k.mode(), "figure", what, "rounds", o.Rounds)
	}
	if err := h.err(); err != nil {
		return res, err
	}
	return res, nil
}

// orderFigures sorts figures as FigureNames.
func orderFigures(fs []Figure) []Figure {
	slices.SortStableFunc(fs, func(a, b Figure) int {
		return slices.Index(FigureNames, a.Name) - slices.Index(FigureNames, b.Name)
	})
	return fs
}

// gate cuts a candidate off: a crashed process sends nothing more. It
// also counts requests.
type gate struct {
	cut atomic.Bool
	n   atomic.Int64
}

// errCrashed is what a crashed candidate's calls get.
var errCrashed = errors.New("bench backend: candidate crashed (cut off by the benchmark)")

// pass counts a request and reports whether it may be sent.
func (g *gate) pass() error {
	if g.cut.Load() {
		return errCrashed
	}
	g.n.Add(1)
	return nil
}

// open reports whether a call that is no request of its own (a watch on
// a stream already open) may be made; it counts nothing.
func (g *gate) open() error {
	if g.cut.Load() {
		return errCrashed
	}
	return nil
}

// stopOnDone calls stop when ctx ends before done is closed: the caller's
// cancellation stops a candidate gracefully.
func stopOnDone(ctx context.Context, done <-chan struct{}, stop func()) {
	go func() {
		select {
		case <-ctx.Done():
			stop()
		case <-done:
		}
	}()
}
