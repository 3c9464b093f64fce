package backendtest

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/history"
)

// FaultHooks are what RunFaults needs from a backend's test: clients on a
// running store, and injectors of faults of the store itself. An injector
// left nil is a fault that store cannot be given (or the test cannot give
// it yet): its case is skipped, saying so.
type FaultHooks struct {
	// New returns a new client's Backend for lock (its own connection, to
	// every member of the store). Required.
	New func(t testing.TB, lock string) elector.Backend
	// KillLeaderMember SIGKILLs the member leading the store's cluster
	// and returns once the others answer (they elected another); restart
	// starts it again on its data and returns once it answers.
	KillLeaderMember func(t testing.TB) (restart func(t testing.TB))
	// PauseMember SIGSTOPs the member leading the store's cluster (it
	// keeps its connections and answers nothing) and returns once the
	// others answer; resume SIGCONTs it and returns once it answers.
	PauseMember func(t testing.TB) (resume func(t testing.TB))
	// RollingRestart restarts the store's members one at a time, as an
	// upgrade does, calling restarted with the member's name once it
	// answers again and before the next one goes down.
	RollingRestart func(t testing.TB, restarted func(member string))
	// DeleteRecord deletes the record of lock past the backend, as an
	// operator would. Required.
	DeleteRecord func(t testing.TB, lock string)
	// TamperRecord replaces the record of lock with rec (encoded as the
	// backend encodes records), past the backend. Required.
	TamperRecord func(t testing.TB, lock string, rec elector.Record)
	// Wipe makes the store lose all its data and answer again, empty
	// (volumes lost; a store restarted without its data). Optional.
	Wipe func(t testing.TB)
	// Snapshot saves the store's state now; restore brings the whole
	// store back to it (an operator's restore from a backup): records,
	// and versions handed out again. Optional.
	Snapshot func(t testing.TB) (restore func(t testing.TB))
	// Lease is the candidates' timing; zero means 2s / 1.5s / 250ms.
	Lease elector.Config

	// NewVia is New for a client whose every connection to the store goes
	// through via: the client is given via(addr) in place of each address
	// addr it would dial (host:port, or a URL, as the backend's
	// configuration spells it; every member's of a cluster), and via
	// returns the address of a fault proxy on 127.0.0.1 the suite
	// switches. Optional: without it the network cases (LeaderCutOff,
	// Blackhole, Latency, Reset) are skipped.
	NewVia func(t testing.TB, lock string, via func(addr string) string) elector.Backend
	// Connect makes a client as New does, its addresses passed through
	// via, with timeout as its bound on connecting and on its first
	// request; it closes the client if it connected and returns the
	// constructor's error. A clear error names the addresses it tried and
	// the timeout. It is called on a goroutine of its own (a hang guard
	// watches it): it reports through its error only. Optional: without it
	// Unreachable is skipped.
	Connect func(via func(addr string) string, timeout time.Duration) error
	// NewCounted is New for a client whose transport counts the requests
	// it sends; requests returns the count so far (etcd: unary RPCs, the
	// watch stream not counted; HTTP: round trips, a watch stream counted
	// when it opens). Optional: without it IdleFollower counts the calls
	// the elector makes on the Backend only.
	NewCounted func(t testing.TB, lock string) (b elector.Backend, requests func() int)
	// WatchRequests is how many requests a watching follower's transport
	// sends per change it is woken by: 0 where the watch is a stream (etcd,
	// Kubernetes), 1 where each wait is a request (a Consul blocking
	// query). Used with NewCounted.
	WatchRequests int
}

// RunFaults is the fault suite: each case runs three candidates
// (elector.Run, each on its own client, releasing on cancel; IdleFollower
// a fourth) on a lock of its own, waits until one leads and the others
// follow it, injects a fault, and waits for a leader again. Every leader's work writes its term
// to a term-fenced resource every 20ms and records its leadership interval
// on the monotonic clock. At the end of a case internal/history checks
// the whole history: no two leaderships overlap, no write with a term
// below one written before, no term used by two leaderships; and after
// every fault a leader was back within LeaseDuration + 4×RetryPeriod (the
// first-read hold or the wait after a deleted record, and the create's
// probation) plus a slack that only a hang exceeds: a bound on liveness,
// not a timing assertion.
//
// Faults of the store itself: the member leading the store's cluster
// killed or paused, a rolling restart, the record deleted or tampered with
// by hand, the store wiped, the store restored from a snapshot.
//
// Faults of the network between the leader and the store, the other
// candidates' clients untouched: the leader's client (NewVia) dials
// through internal/faultproxy, one proxy per store address, and is made
// the leader before the fault. LeaderCutOff closes its proxies for good
// (its connections reset, their ports refused); Blackhole holds its
// connections silent; Latency delays every byte a lease each way (2s by
// default; beyond the renew deadline: every renewal times out, and lands
// late); Reset resets
// its connections and every new one. In each, the old leader's work must
// have stopped before LeaseDuration had passed since its last acknowledged
// renewal was sent (no one else may take over before that, on anyone's
// clock; the machine stops it at RenewDeadline, the case logs when), and
// another candidate must lead. Then, except in LeaderCutOff, the fault
// heals and the old leader must follow the new one, with an answer from
// the store after the heal.
//
// IdleFollower: while the leader only renews, a watching follower makes no
// Get, Create or Update (and its transport no request, or one per wake of
// a blocking query: NewCounted, WatchRequests) over a window of 8
// renewals, where a polling follower's Gets show the count works; a
// follower of a lock whose holder does not renew makes no call at all but
// the wait it has open. Unreachable: a client whose store address goes to
// a proxy that resets or holds every connection gives up with an error
// naming the address and its timeout (Connect).
//
// The store's faults change the whole store: the cases run one after the
// other, never in parallel with other tests of that store.
func RunFaults(t *testing.T, h FaultHooks) {
	if h.New == nil || h.DeleteRecord == nil || h.TamperRecord == nil {
		t.Fatal("backendtest: the FaultHooks need New, DeleteRecord and TamperRecord")
	}
	t.Run("KillLeaderMember", func(t *testing.T) { faultKillLeaderMember(t, h) })
	t.Run("PauseMember", func(t *testing.T) { faultPauseMember(t, h) })
	t.Run("RollingRestart", func(t *testing.T) { faultRollingRestart(t, h) })
	t.Run("DeleteRecord", func(t *testing.T) { faultDeleteRecord(t, h) })
	t.Run("TamperRecord", func(t *testing.T) { faultTamperRecord(t, h) })
	t.Run("Wipe", func(t *testing.T) { faultWipe(t, h) })
	t.Run("Restore", func(t *testing.T) { faultRestore(t, h) })
	t.Run("LeaderCutOff", func(t *testing.T) { faultLeaderCutOff(t, h) })
	t.Run("Blackhole", func(t *testing.T) { faultBlackhole(t, h) })
	t.Run("Latency", func(t *testing.T) { faultLatency(t, h) })
	t.Run("Reset", func(t *testing.T) { faultReset(t, h) })
	t.Run("IdleFollower", func(t *testing.T) { faultIdleFollower(t, h) })
	t.Run("Unreachable", func(t *testing.T) { faultUnreachable(t, h) })
}

func faultKillLeaderMember(t *testing.T, h FaultHooks) {
	if h.KillLeaderMember == nil {
		t.Skip("no KillLeaderMember hook: the store is a single server")
	}
	r := newFaultRun(t, h)
	r.steady()
	mark := r.fault("leader member killed")
	restart := h.KillLeaderMember(t)
	r.leaderBack(mark, true)
	mark = r.fault("member restarted")
	restart(t)
	r.leaderBack(mark, true)
	r.settle()
}

func faultPauseMember(t *testing.T, h FaultHooks) {
	if h.PauseMember == nil {
		t.Skip("no PauseMember hook: the store is a single server")
	}
	r := newFaultRun(t, h)
	r.steady()
	mark := r.fault("leader member paused")
	resume := h.PauseMember(t)
	r.leaderBack(mark, true)
	mark = r.fault("member resumed")
	resume(t)
	r.leaderBack(mark, true)
	r.settle()
}

func faultRollingRestart(t *testing.T, h FaultHooks) {
	if h.RollingRestart == nil {
		t.Skip("no RollingRestart hook: the store is a single server")
	}
	r := newFaultRun(t, h)
	r.steady()
	r.fault("rolling restart")
	h.RollingRestart(t, func(member string) {
		r.note("  %s restarted", member)
		r.leaderAfter(time.Now()) // a renewal the store took after the member came back
	})
	r.settle()
}

func faultDeleteRecord(t *testing.T, h FaultHooks) {
	r := newFaultRun(t, h)
	r.steady()
	mark := r.fault("record deleted")
	h.DeleteRecord(t, r.lock)
	r.leaderAfter(mark)
	r.settle()
}

// faultTamperRecord: the record replaced by hand with one no candidate
// writes: another holder, a 100-year lease, a renew time an hour ahead, and
// term 1 (below every term handed out). Nobody may trust that lease
// forever, and the term must not go back.
func faultTamperRecord(t *testing.T, h FaultHooks) {
	r := newFaultRun(t, h)
	r.steady()
	now := time.Now().UTC().Truncate(time.Millisecond)
	tampered := elector.Record{Holder: "intruder", LeaseDuration: 100 * 365 * 24 * time.Hour,
		AcquireTime: now, RenewTime: now.Add(time.Hour), Term: 1}
	mark := r.fault("record tampered (holder intruder, 100-year lease, term 1)")
	h.TamperRecord(t, r.lock, tampered)
	r.leaderAfter(mark)
	r.settle()
}

func faultWipe(t *testing.T, h FaultHooks) {
	if h.Wipe == nil {
		t.Skip("no Wipe hook")
	}
	r := newFaultRun(t, h)
	r.steady()
	mark := r.fault("store wiped")
	h.Wipe(t)
	r.leaderBack(mark, true)
	r.settle()
}

// faultRestore: a snapshot taken under one leader; that leader releases
// and another leads with a higher term, renewing past the snapshot's
// versions; then the store is restored: the first leader's record (a
// lower term) is back, and its versions are handed out again.
func faultRestore(t *testing.T, h FaultHooks) {
	if h.Snapshot == nil {
		t.Skip("no Snapshot hook")
	}
	r := newFaultRun(t, h)
	first := r.steady()
	restore := h.Snapshot(t)
	r.fault(first + " released after the snapshot")
	r.stop(first)
	r.start(first + "-new")
	second := r.steady()
	if second == first {
		t.Fatalf("%s led again after it stopped", first)
	}
	mark := r.fault("store restored to the snapshot")
	restore(t)
	r.leaderBack(mark, true)
	r.settle()
}

// faultRun is one case: its candidates and everything they recorded.
type faultRun struct {
	t     *testing.T
	h     FaultHooks
	cfg   elector.Config
	lock  string
	bound time.Duration
	t0    time.Time

	mu      sync.Mutex
	cands   map[string]*faultCandidate
	writes  []history.Write    // to the fenced resource, in the order it got them
	ivs     []history.Interval // finished leaderships
	leading map[string]int64   // candidate → term of its running leadership
	renewed map[string]time.Time
	renews  map[string]int       // candidate → renewals acknowledged
	last    map[string]time.Time // run → its last renewal's send time, once it ended
	sees    map[string]string    // candidate → the leader it observes
	runs    int
	notes   []string
	logs    []string
	kick    chan struct{}
	stopped bool
}

type faultCandidate struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}
}

// newFaultRun starts three candidates c1, c2, c3 on a new lock; the
// history is checked when the test ends, after they stopped.
func newFaultRun(t *testing.T, h FaultHooks) *faultRun {
	r := newRun(t, h)
	for _, id := range []string{"c1", "c2", "c3"} {
		r.start(id)
	}
	return r
}

// newRun is a case on a new lock with no candidate yet.
func newRun(t *testing.T, h FaultHooks) *faultRun {
	cfg := h.Lease
	if cfg.LeaseDuration == 0 {
		cfg = elector.Config{LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 250 * time.Millisecond}
	}
	cfg.ReleaseOnCancel = true
	r := &faultRun{
		t: t, h: h, cfg: cfg, lock: lockName(t), t0: time.Now(),
		// A hold of one lease (first read, deleted record, term gone
		// back), the create's probation (2×RetryPeriod and a jittered
		// one), and slack for a loaded machine: only a hang exceeds it.
		bound:   2*cfg.LeaseDuration + 4*cfg.RetryPeriod + 15*time.Second,
		cands:   map[string]*faultCandidate{},
		leading: map[string]int64{},
		renewed: map[string]time.Time{},
		renews:  map[string]int{},
		last:    map[string]time.Time{},
		sees:    map[string]string{},
		kick:    make(chan struct{}, 1),
	}
	t.Cleanup(r.check) // registered first: runs last, once every candidate stopped
	return r
}

func (r *faultRun) since() string {
	return fmt.Sprintf("+%.3fs", time.Since(r.t0).Seconds())
}

func (r *faultRun) notify() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// start starts candidate id on a client of its own.
func (r *faultRun) start(id string) { r.startOn(id, r.h.New(r.t, r.lock)) }

// startOn starts candidate id on b, a client of its own.
func (r *faultRun) startOn(id string, b elector.Backend) {
	cfg := r.cfg
	cfg.Identity = id
	c := &faultCandidate{id: id, done: make(chan struct{})}
	e, err := elector.New(cfg, b, elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) { r.lead(ctx, id, term) },
		OnStoppedLeading: func() { r.notify() },
		OnNewLeader: func(leader string) {
			r.mu.Lock()
			r.sees[id] = leader
			r.mu.Unlock()
			r.notify()
		},
		OnRenewed: func(term int64, validUntil time.Time) {
			r.mu.Lock()
			r.renewed[id] = validUntil.Add(-cfg.RenewDeadline) // the write's send time
			r.renews[id]++
			r.mu.Unlock()
			r.notify()
		},
	}, elector.WithLogger(slog.New(&faultLog{r: r, id: id})))
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	r.mu.Lock()
	r.cands[id] = c
	r.mu.Unlock()
	go func() {
		defer close(c.done)
		if err := e.Run(ctx); err != nil {
			r.t.Errorf("%s: Run: %v", id, err)
		}
	}()
	// Registered after New's own cleanups, so it runs before them: the
	// candidates stop (and release) while their clients are open.
	r.t.Cleanup(r.stopAll)
}

// lead is a leader's work: it writes its term to the fenced resource
// every 20ms until its context ends, and records its interval: from the
// moment the work starts to the moment it sees its context end (so never
// shorter than the leadership the elector believed in, as far as this
// process can tell).
func (r *faultRun) lead(ctx context.Context, id string, term int64) {
	r.mu.Lock()
	r.runs++
	iv := history.Interval{Replica: id, Run: strconv.Itoa(r.runs), Term: term, Start: time.Now()}
	r.leading[id] = term
	r.mu.Unlock()
	r.notify()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		r.mu.Lock()
		r.writes = append(r.writes, history.Write{Replica: id, Run: iv.Run, Term: term, At: time.Now()})
		r.mu.Unlock()
		iv.Writes++
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	r.mu.Lock()
	iv.End = time.Now()
	r.ivs = append(r.ivs, iv)
	r.last[iv.Run] = r.renewed[id]
	delete(r.leading, id)
	r.mu.Unlock()
	r.notify()
}

// stop cancels candidate id (it releases the lock if it leads) and waits
// for its Run to return.
func (r *faultRun) stop(id string) {
	r.mu.Lock()
	c := r.cands[id]
	r.mu.Unlock()
	c.cancel()
	<-c.done
}

// stopAll cancels every candidate at once, then waits for each.
func (r *faultRun) stopAll() {
	r.mu.Lock()
	cs := make([]*faultCandidate, 0, len(r.cands))
	for _, c := range r.cands {
		cs = append(cs, c)
	}
	r.stopped = true
	r.mu.Unlock()
	for _, c := range cs {
		c.cancel()
	}
	for _, c := range cs {
		<-c.done
	}
}

// await waits until cond (called with r.mu held) holds, waking on every
// callback of a candidate, for at most r.bound; it returns how long it
// took.
func (r *faultRun) await(what string, cond func() bool) time.Duration {
	r.t.Helper()
	start := time.Now()
	timer := time.NewTimer(r.bound)
	defer timer.Stop()
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return time.Since(start)
		}
		select {
		case <-r.kick:
		case <-timer.C:
			r.t.Fatalf("%s: not within %v (lease %v, retry %v)", what, r.bound, r.cfg.LeaseDuration, r.cfg.RetryPeriod)
		}
	}
}

// leaderNow is a candidate whose work runs; "" when none. r.mu is held.
func (r *faultRun) leaderNow() string {
	for id := range r.leading {
		return id
	}
	return ""
}

// steady waits until one candidate leads, every other one observes it as
// the leader, and it renewed after they all did; it returns the leader.
func (r *faultRun) steady() string {
	r.t.Helper()
	var leader string
	took := r.await("a leader every candidate follows", func() bool {
		leader = r.leaderNow()
		if leader == "" {
			return false
		}
		for id, c := range r.cands {
			select {
			case <-c.done:
				continue
			default:
			}
			if id != leader && r.sees[id] != leader {
				return false
			}
		}
		return true
	})
	mark := time.Now()
	r.await(leader+" renews once all follow it", func() bool {
		return r.leading[leader] != 0 && !r.renewed[leader].Before(mark)
	})
	r.note("%s leads (term %d), followed by all, after %v", leader, r.term(leader), took.Round(time.Millisecond))
	return leader
}

func (r *faultRun) term(id string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leading[id]
}

// fault notes that a fault is about to be injected and returns the
// instant.
func (r *faultRun) fault(what string) time.Time {
	r.note("fault: %s", what)
	return time.Now()
}

// leaderAfter waits until a candidate leads with a write sent after mark
// (the store answered it after the fault) and notes how long that took.
func (r *faultRun) leaderAfter(mark time.Time) { r.leaderBack(mark, false) }

// leaderBack is leaderAfter for a fault whose injector returns once the
// store answers again (outage): it also notes how long the leader took
// from then.
func (r *faultRun) leaderBack(mark time.Time, outage bool) {
	r.t.Helper()
	back := time.Now()
	var leader string
	r.await("a leader renewing after the fault", func() bool {
		leader = r.leaderSince(mark)
		return leader != ""
	})
	again := ""
	if outage {
		again = fmt.Sprintf(", %v after the store answered again", time.Since(back).Round(time.Millisecond))
	}
	r.note("  leader %s (term %d) renewed %v after it%s", leader, r.term(leader), time.Since(mark).Round(time.Millisecond), again)
}

// leaderSince is a candidate whose work runs and whose last acknowledged
// write was sent at or after mark; "" when none. r.mu is held.
func (r *faultRun) leaderSince(mark time.Time) string {
	for id := range r.leading {
		if !r.renewed[id].Before(mark) {
			return id
		}
	}
	return ""
}

// settle keeps the case running until a leader renewed one lease and a
// retry period after the recovery, so that anyone acting late on what it
// saw during the fault (a stale takeover, a leader that missed its step
// down) does so while the checker still records.
func (r *faultRun) settle() {
	r.t.Helper()
	mark := time.Now().Add(r.cfg.LeaseDuration + r.cfg.RetryPeriod)
	r.await("a leader renewing a lease after the recovery", func() bool {
		return r.leaderSince(mark) != ""
	})
}

func (r *faultRun) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, r.since()+" "+fmt.Sprintf(format, args...))
}

// check runs the checker over the whole history, once every candidate
// stopped, and reports what the case measured.
func (r *faultRun) check() {
	r.stopAll()
	r.mu.Lock()
	defer r.mu.Unlock()
	ivs := append([]history.Interval(nil), r.ivs...)
	rep := history.CheckIntervals(ivs, r.writes)
	sort.Slice(ivs, func(a, b int) bool { return ivs[a].Start.Before(ivs[b].Start) })
	var b strings.Builder
	for _, n := range r.notes {
		fmt.Fprintf(&b, "\n  %s", n)
	}
	fmt.Fprintf(&b, "\n  %d leaderships, %d fenced writes:", len(ivs), len(r.writes))
	for _, iv := range ivs {
		fmt.Fprintf(&b, "\n    %s term %d [+%.3fs .. +%.3fs] %d writes", iv.Replica, iv.Term,
			iv.Start.Sub(r.t0).Seconds(), iv.End.Sub(r.t0).Seconds(), iv.Writes)
	}
	fmt.Fprintf(&b, "\n  longest time without a leader after the first: %v; max overlap %v",
		leaderless(ivs).Round(time.Millisecond), rep.MaxOverlap())
	if len(r.logs) > 0 {
		b.WriteString("\n  warnings:")
		for i, l := range r.logs {
			if i == 20 {
				fmt.Fprintf(&b, "\n    (%d more)", len(r.logs)-i)
				break
			}
			fmt.Fprintf(&b, "\n    %s", l)
		}
	}
	r.t.Logf("lock %s:%s", r.lock, b.String())
	for _, v := range rep.Violations() {
		r.t.Errorf("%s", v)
	}
	if len(ivs) == 0 {
		r.t.Errorf("nobody led")
	}
}

// leaderless is the longest time between the first leadership's start and
// the last one's end that no leadership covers.
func leaderless(ivs []history.Interval) time.Duration {
	var longest time.Duration
	var end time.Time
	for i, iv := range ivs { // sorted by start
		if i > 0 && iv.Start.After(end) {
			longest = max(longest, iv.Start.Sub(end))
		}
		if i == 0 || iv.End.After(end) {
			end = iv.End
		}
	}
	return longest
}

// faultLog keeps a candidate's warnings and errors for the case's report.
type faultLog struct {
	r     *faultRun
	id    string
	attrs []slog.Attr
}

func (l *faultLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }

func (l *faultLog) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s: %s", l.r.since(), l.id, rec.Level, rec.Message)
	for _, a := range l.attrs {
		fmt.Fprintf(&b, " %s", a)
	}
	rec.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s", a); return true })
	l.r.mu.Lock()
	l.r.logs = append(l.r.logs, b.String())
	l.r.mu.Unlock()
	return nil
}

func (l *faultLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &faultLog{r: l.r, id: l.id, attrs: append(append([]slog.Attr(nil), l.attrs...), as...)}
}

func (l *faultLog) WithGroup(string) slog.Handler { return l }
