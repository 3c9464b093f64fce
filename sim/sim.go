// Package sim is a deterministic discrete-event simulator of leader election.
//
// It runs the same elector.Machine that elector.Run drives, one per node,
// against a memory.Store over a simulated network, in virtual time: one
// goroutine, an event heap keyed by (time, sequence), every random choice
// from one seeded generator. It injects crashes, graceful stops, partitions,
// process pauses and clock faults, and measures failover time, leaderless
// time, dual leadership and writes to a fenced resource. The same scenario
// and seed always give the same bytes of output.
package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
)

// Options are the per-run settings.
type Options struct {
	Seed     uint64
	Trace    io.Writer // every event, one per line; nil for none
	Timeline bool      // keep node state changes for the SVG
}

// epoch is true time 0 on every wall clock (before offsets and jumps).
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type nodeState uint8

const (
	up nodeState = iota
	crashed
	exited
)

type node struct {
	idx   int
	id    string
	clock Clock
	jump  time.Duration // wall-clock jumps so far

	m     *elector.Machine
	state nodeState
	inc   uint32 // incarnation: bumped by a crash, drops the old life's events

	paused     bool
	pauseUntil time.Duration
	deferred   []event // node-bound events held while paused
	cut        bool    // partitioned from the store, one way or both
	reqCut     bool    // its requests (and watch registrations) are lost
	repCut     bool    // replies and notifications to it are lost
	reqUntil   time.Duration
	repUntil   time.Duration
	reqForever bool
	repForever bool
	spike      bool          // a latency spike holds its messages
	spikeLat   time.Duration // their one-way latency meanwhile
	spikeUntil time.Duration

	waitGen  uint64 // current wait; timers and notifications of older waits are stale
	watching bool   // the current wait includes a watch past watchVer
	watchVer elector.Version
	callGen  uint64 // current call
	inCall   bool
	fenceGen uint64

	stopReq      bool // a stop came while paused: carried out on resume
	restartAfter time.Duration
	// proc numbers the node's process (its Instance); recampaign: the
	// restart to come is the same process campaigning again (run after
	// its watchdog fired), not a new one.
	proc        uint32
	recampaign  bool
	renamed     int           // how many times it came back under a new identity
	newIdentity bool          // the pending restart comes under a new identity
	workDone    bool          // the leader's work has returned since the last leadership
	workWait    bool          // the current wait waits for that work
	workGen     uint64        // current leadership's work
	stall       bool          // the pause is the elector's only: work and guard go on
	wdGen       uint64        // the current lease deadline of the guard
	validUntil  time.Duration // that deadline (monotonic): the last Renewed's ValidUntil
	cron        cronLoop

	leading   bool // believes it leads (the Machine says so and the process is alive)
	term      int64
	lseq      uint64 // which leadership this is, in the order they started (1, 2, ...)
	leadStart time.Duration
	fault     FaultKind // the first fault that hit it during this leadership
	faultAt   time.Duration

	backend *memory.Backend
}

// watchReg is a node's watch as registered at the store.
type watchReg struct {
	active bool
	inc    uint32
	gen    uint64
	ver    elector.Version
}

type sim struct {
	sc  *Scenario
	rng *rand.Rand
	ctx context.Context

	now    time.Duration
	seq    uint64
	events queue
	nodes  []*node
	store  *memory.Store
	regs   []watchReg

	holder     int // node index of the store's current holder, -1 if none
	version    elector.Version
	fenceTerm  int64
	fenceSeq   uint64 // the latest leadership (lseq) whose write the fence accepted
	fenceBy    int    // its node
	leads      uint64 // leaderships started so far
	topTerm    int64  // the highest term a leadership started with
	topBy      int    // the node that led with it
	res        Result
	trace      *bufio.Writer
	timeline   *Timeline
	lastAcct   time.Duration
	believers  int
	anyLeader  bool
	leaderless time.Duration
	dual       time.Duration
	dualStart  time.Duration
	dualNodes  []string
	pending    *Failover
	pendingLL  time.Duration // leaderless total when the pending failover opened
	err        error

	llStart   time.Duration   // when the current leaderless time began
	down      bool            // the store answers nobody
	downUntil time.Duration   // until then
	downs     int             // outages so far: a request in line during one is lost
	free      []time.Duration // when each of the store's Parallel servers is free
	history   []committed     // recent writes, for stale reads
	keepBack  time.Duration   // how far back a restore may go: snapshots kept that long
	snaps     []snapAt        // the store's states over the last keepBack, for restores
	cron      *cronSim        // the job's slots, with a cron: block
}

// committed is the record from a true instant on, for stale reads.
type committed struct {
	at     time.Duration
	rec    elector.Record
	ver    elector.Version
	exists bool
}

// snapAt is the store's state from a true instant on, for restores.
type snapAt struct {
	at   time.Duration
	snap *memory.Snapshot
}

// lockName is the lock every node campaigns for.
const lockName = "lock"

// rngAdapter gives each Machine its jitter from the simulation's generator.
type rngAdapter struct{ r *rand.Rand }

func (a rngAdapter) Float64() float64 { return a.r.Float64() }

// Run simulates sc with opts and returns what it measured.
func Run(sc *Scenario, opts Options) (*Result, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	s := &sim{
		sc:     sc,
		rng:    rand.New(rand.NewPCG(opts.Seed, 0x6c65617365f686f)),
		ctx:    context.Background(),
		store:  memory.New(),
		regs:   make([]watchReg, sc.Nodes),
		holder: -1,
	}
	s.res.Scenario, s.res.Seed = sc.Name, opts.Seed
	if err := s.cronInit(); err != nil {
		return nil, err
	}
	if opts.Trace != nil {
		s.trace = bufio.NewWriterSize(opts.Trace, 64<<10)
	}
	if opts.Timeline {
		s.timeline = &Timeline{Nodes: make([]string, sc.Nodes), End: sc.Duration}
	}
	for i := range sc.Nodes {
		n := &node{idx: i, id: NodeID(i), clock: sc.Clocks[i]}
		n.backend = s.store.Backend(lockName, n.id)
		s.nodes = append(s.nodes, n)
		if s.timeline != nil {
			s.timeline.Nodes[i] = n.id
		}
	}
	// The phase: every node starts at its own instant drawn from the seed,
	// every fault of the timeline a little late if fault_jitter says so.
	// The starts are a common offset, uniform in one RetryPeriod, plus each
	// node's own draw in [0, spread): the first leader is the earliest of
	// the nodes, and the earliest of N uniform draws is not uniform, but
	// with the offset the leader's renewal cycle meets a fixed fault at a
	// uniform phase.
	spread := sc.StartSpread
	if spread < 0 {
		spread = sc.RetryPeriod
	}
	if spread > 0 {
		base := time.Duration(s.rng.Float64() * float64(sc.RetryPeriod))
		for _, n := range s.nodes {
			n.state = crashed // not started yet: faults skip it
			s.push(event{at: base + time.Duration(s.rng.Float64()*float64(spread)), kind: evRecover, node: int32(n.idx), what: Crash})
		}
	}
	for _, f := range sc.Faults {
		if f.Kind == StoreRestore {
			s.keepBack = max(s.keepBack, f.By)
		}
	}
	if r := sc.Random; r != nil && slices.Contains(r.Kinds, StoreRestore) {
		s.keepBack = max(s.keepBack, r.MaxDown, r.MaxBack)
	}
	for i := range sc.Faults {
		at := sc.Faults[i].At
		if sc.FaultJitter > 0 {
			at += time.Duration(s.rng.Float64() * float64(sc.FaultJitter))
		}
		s.push(event{at: at, kind: evFault, node: -1, idx: i})
	}
	if sc.Random != nil {
		s.push(event{at: s.randomGap(), kind: evRandomFault, node: -1})
	}
	if spread == 0 {
		for _, n := range s.nodes {
			if err := s.boot(n); err != nil {
				return nil, err
			}
		}
	}
	for s.events.len() > 0 && s.err == nil {
		e := s.events.pop()
		if e.at > sc.Duration {
			break
		}
		s.now = e.at
		s.res.Events++
		s.dispatch(e)
	}
	if s.err != nil {
		return nil, s.err
	}
	s.now = sc.Duration
	s.finish()
	if s.trace != nil {
		if err := s.trace.Flush(); err != nil {
			return nil, fmt.Errorf("sim: writing the trace: %w", err)
		}
	}
	return &s.res, nil
}

func (s *sim) push(e event) {
	s.seq++
	e.seq = s.seq
	if e.at < s.now {
		e.at = s.now
	}
	s.events.push(e)
}

// boot starts a node's elector (at the beginning or on restart).
func (s *sim) boot(n *node) error {
	cfg := elector.Config{
		Identity: s.identity(n), Instance: fmt.Sprintf("%s.%d", n.id, n.proc),
		LeaseDuration: s.sc.LeaseDuration, RenewDeadline: s.sc.RenewDeadline,
		RetryPeriod: s.sc.RetryPeriod, ReleaseOnCancel: s.sc.ReleaseOnCancel,
	}
	m, err := elector.NewMachine(cfg, rngAdapter{s.rng}, s.sc.Watch)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	n.m, n.state = m, up
	n.stopReq, n.inCall = false, false
	s.mark(n)
	s.cronAlive()
	if s.trace != nil {
		s.tracef(n, "boot")
	}
	s.apply(n, m.Start(s.nowAt(n)))
	return nil
}

// mono is the node's monotonic clock at the current true instant.
func (s *sim) mono(n *node) time.Duration {
	return time.Duration(float64(s.now) * n.clock.Rate)
}

func (s *sim) nowAt(n *node) elector.Now {
	m := s.mono(n)
	return elector.Now{Mono: m, Wall: epoch.Add(n.clock.Offset + m + n.jump)}
}

// trueAt is the first true instant at which the node's monotonic clock reads
// at least m.
func (s *sim) trueAt(n *node, m time.Duration) time.Duration {
	f := math.Ceil(float64(m) / n.clock.Rate)
	if f > float64(s.sc.Duration) {
		return s.sc.Duration + 1 // after the end of the run: never happens
	}
	t := time.Duration(f)
	for time.Duration(float64(t)*n.clock.Rate) < m {
		t++
	}
	return max(t, s.now)
}

// delay draws a one-way delay to the fenced resource.
func (s *sim) delay() time.Duration {
	d := s.sc.Latency
	if s.sc.Jitter > 0 {
		d += time.Duration(s.rng.Float64() * float64(s.sc.Jitter))
	}
	return d
}

// reqDelay draws the one-way delay of a message from n to the store.
func (s *sim) reqDelay(n *node) time.Duration { return s.oneWay(n, s.sc.Latency) }

// repDelay draws the one-way delay of a message from the store to n.
func (s *sim) repDelay(n *node) time.Duration {
	base := s.sc.ReplyLatency
	if base < 0 {
		base = s.sc.Latency
	}
	return s.oneWay(n, base)
}

// oneWay is base (or a spike's latency), plus jitter, plus the tail.
func (s *sim) oneWay(n *node, base time.Duration) time.Duration {
	d := base
	if n.spike {
		d = n.spikeLat
	}
	if s.sc.Jitter > 0 {
		d += time.Duration(s.rng.Float64() * float64(s.sc.Jitter))
	}
	if t := s.sc.Tail; t != nil && (t.P == 0 || t.P == 1 || s.rng.Float64() < t.P) {
		d += s.tailDraw(t)
	}
	return d
}

// tailDraw draws one heavy-tailed extra delay.
func (s *sim) tailDraw(t *Tail) time.Duration {
	var x float64
	switch t.Dist {
	case "lognormal":
		x = float64(t.Median) * math.Exp(t.Sigma*s.rng.NormFloat64())
	default: // pareto
		x = float64(t.Min) / math.Pow(1-s.rng.Float64(), 1/t.Alpha)
	}
	hi := t.Max
	if hi <= 0 {
		hi = maxLease
	}
	if !(x < float64(hi)) { // also +Inf and NaN
		return hi
	}
	return time.Duration(x)
}

// workTime draws a work start or stop time of median d: d itself, or
// with work_sigma d·e^(σ·N(0,1)), at most maxLease.
func (s *sim) workTime(d time.Duration) time.Duration {
	if s.sc.WorkSigma == 0 {
		return d
	}
	x := float64(d) * math.Exp(s.sc.WorkSigma*s.rng.NormFloat64())
	if !(x < float64(maxLease)) {
		return maxLease
	}
	return time.Duration(x)
}

// lostReq decides whether a message from n to the store is lost.
func (s *sim) lostReq(n *node) bool {
	return n.reqCut || (s.sc.Loss > 0 && s.rng.Float64() < s.sc.Loss)
}

// lostRep decides whether a message from the store to n is lost.
func (s *sim) lostRep(n *node) bool {
	return n.repCut || (s.sc.Loss > 0 && s.rng.Float64() < s.sc.Loss)
}

// apply carries out what a node's Machine answered.
func (s *sim) apply(n *node, out elector.Output) {
	s.transitions(n, out)
	switch {
	case out.Done:
		s.exit(n)
	case out.Call.Op != elector.OpNone:
		s.send(n, out.Call)
	case out.Pending:
		// A stop during a call: the reply (or the timeout) goes on.
	case out.Wait.Work && n.workDone:
		s.apply(n, n.m.WorkDone(s.nowAt(n)))
	default:
		s.wait(n, out.Wait)
	}
	if len(out.Claims) > 0 && s.cron != nil {
		s.cronAnswers(n, out.Claims)
	}
}

func (s *sim) transitions(n *node, out elector.Output) {
	if out.Stopped && n.leading {
		s.endLeadership(n, out.Reason.String())
	}
	if out.Renewed {
		n.validUntil = out.ValidUntil
	}
	if out.Renewed && s.sc.Watchdog {
		n.wdGen++
		s.push(event{at: s.trueAt(n, out.ValidUntil), kind: evWatchdog, node: int32(n.idx), inc: n.inc, gen: n.wdGen})
	}
	if out.Stopped {
		n.wdGen++
		// Told to stop, the leader's work returns after work_stop.
		n.workGen++
		stopAt := s.now
		if s.sc.WorkStop == 0 {
			n.workDone = true
		} else {
			stopAt += s.workTime(s.sc.WorkStop)
			s.push(event{at: stopAt, kind: evWorkDone, node: int32(n.idx), inc: n.inc, gen: n.workGen})
		}
		// A cron run is the leader's work: it has stopped when the work
		// has; the loop ends with the leadership's context.
		s.cronStopRun(n, stopAt, "leadership lost")
		s.cronLeadEnd(n)
	}
	if out.Started {
		n.workDone = false
		s.startLeadership(n, out.Term)
	}
	if out.Anomaly != elector.AnomalyNone && s.trace != nil {
		s.tracef(n, "store anomaly (term %d, highest seen %d): %s", out.AnomalyTerm, out.AnomalySeen, out.Anomaly)
	}
	if out.LeaderChanged && s.trace != nil {
		if s.trace != nil {
			s.tracef(n, "sees leader %q", out.Leader)
		}
	}
}

func (s *sim) send(n *node, c elector.Call) {
	n.callGen++
	n.inCall = true
	switch c.Op {
	case elector.OpGet:
		s.res.Requests.Get++
	case elector.OpCreate:
		s.res.Requests.Create++
	case elector.OpUpdate:
		s.res.Requests.Update++
	}
	if s.trace != nil {
		s.tracef(n, "send %s (%s) term=%d expect=%s", c.Op, c.Kind, c.Record.Term, c.Version)
	}
	if !s.lostReq(n) {
		s.push(event{at: s.now + s.reqDelay(n), kind: evArrive, node: int32(n.idx), inc: n.inc, gen: n.callGen,
			op: c.Op, release: c.Kind == elector.KindRelease, rec: c.Record, ver: c.Version})
	}
	s.push(event{at: s.trueAt(n, c.Deadline), kind: evTimeout, node: int32(n.idx), inc: n.inc, gen: n.callGen})
}

func (s *sim) wait(n *node, w elector.Wait) {
	n.waitGen++
	n.watching = false
	n.workWait = w.Work
	s.push(event{at: s.trueAt(n, w.Until), kind: evTimer, node: int32(n.idx), inc: n.inc, gen: n.waitGen})
	if w.Watch {
		n.watching, n.watchVer = true, w.Version
		s.registerWatch(n)
	}
}

// registerWatch sends the node's watch registration to the store.
func (s *sim) registerWatch(n *node) {
	s.res.Requests.Watch++
	if s.lostReq(n) {
		s.watchLost(n)
		return
	}
	s.push(event{at: s.now + s.reqDelay(n), kind: evWatchReg, node: int32(n.idx), inc: n.inc, gen: n.waitGen, ver: n.watchVer})
}

// watchLost: a registration or a notification was lost. Like a watch
// client that notices its stream is gone, the node registers again one
// RetryPeriod later (on its own clock) if it is still waiting.
func (s *sim) watchLost(n *node) {
	if n.watching {
		s.push(event{at: s.trueAt(n, s.mono(n)+s.sc.RetryPeriod), kind: evWatchRetry, node: int32(n.idx), inc: n.inc, gen: n.waitGen})
	}
}

// exit: the node's Run returned (after a graceful stop).
func (s *sim) exit(n *node) {
	n.state = exited
	n.m = nil
	s.regs[n.idx].active = false
	s.mark(n)
	s.cronAlive()
	if s.trace != nil {
		s.tracef(n, "exited")
	}
	if n.restartAfter > 0 {
		s.push(event{at: s.now + n.restartAfter, kind: evRecover, node: int32(n.idx), inc: n.inc, what: Stop})
		n.restartAfter = 0
	}
}

// dispatch handles one event.
func (s *sim) dispatch(e event) {
	switch e.kind {
	case evFault:
		s.timelineFault(s.sc.Faults[e.idx])
		return
	case evRandomFault:
		s.randomFault()
		return
	case evArrive:
		s.arrive(e)
		return
	case evWatchReg:
		s.register(e)
		return
	case evServe:
		s.serve(e)
		return
	case evFenceWrite:
		s.fenceWrite(e)
		return
	}
	if e.kind == evRecover && e.node < 0 {
		s.recoverStore(e)
		return
	}
	n := s.nodes[e.node]
	if e.kind == evRecover {
		s.recover(n, e)
		return
	}
	if n.state != up || e.inc != n.inc {
		if s.trace != nil {
			s.tracef(n, "drop %s of a past life", eventNames[e.kind])
		}
		return
	}
	if n.paused && !(n.stall && (e.kind == evFenceTick || e.kind == evWatchdog || e.kind == evWorkStarted || e.kind == evCronRunEnd)) {
		if s.trace != nil {
			s.tracef(n, "paused: hold %s", eventNames[e.kind])
		}
		n.deferred = append(n.deferred, e)
		return
	}
	switch e.kind {
	case evTimer:
		if e.gen != n.waitGen || n.inCall {
			if s.trace != nil {
				s.tracef(n, "drop stale timer")
			}
			return
		}
		n.waitGen++
		n.watching = false
		s.regs[n.idx].active = false
		if s.trace != nil {
			s.tracef(n, "tick")
		}
		s.afterInput(n, n.m.Tick(s.nowAt(n)))
	case evNotify:
		if e.gen != n.waitGen || n.inCall {
			if s.trace != nil {
				s.tracef(n, "drop stale watch notification")
			}
			return
		}
		n.waitGen++
		n.watching = false
		if s.trace != nil {
			s.tracef(n, "watch: holder=%q term=%d version=%s", e.rec.Holder, e.rec.Term, e.ver)
		}
		s.afterInput(n, n.m.Watched(s.nowAt(n), e.rec, e.ver, e.err))
	case evReply, evTimeout:
		if e.gen != n.callGen || !n.inCall {
			if s.trace != nil {
				s.tracef(n, "drop stale %s", eventNames[e.kind])
			}
			return
		}
		n.inCall = false
		err := e.err
		if e.kind == evTimeout {
			err = context.DeadlineExceeded
			if s.trace != nil {
				s.tracef(n, "call timed out")
			}
		} else if s.trace != nil {
			s.tracef(n, "reply version=%s err=%v", e.ver, e.err)
		}
		wasLeading := n.leading
		if wasLeading && err != nil && s.timeline != nil {
			s.timeline.Dots = append(s.timeline.Dots, Dot{At: s.now, Node: n.idx, Kind: DotRenewFailed})
		}
		out := n.m.Result(s.nowAt(n), e.rec, e.ver, err)
		if wasLeading && err == nil && !n.cut && !out.Stopped {
			n.fault = "" // renewed: whatever hit it is over
		}
		s.afterInput(n, out)
	case evWatchRetry:
		if e.gen != n.waitGen || !n.watching || n.inCall {
			return
		}
		if s.trace != nil {
			s.tracef(n, "watch lost; registering again")
		}
		s.registerWatch(n)
	case evWorkDone:
		if e.gen != n.workGen {
			return
		}
		n.workDone = true
		if s.trace != nil {
			s.tracef(n, "leader work returned")
		}
		if n.workWait && !n.inCall {
			n.waitGen++
			n.workWait = false
			s.apply(n, n.m.WorkDone(s.nowAt(n)))
		}
	case evWorkStarted:
		if e.gen != n.fenceGen || !n.leading {
			return
		}
		if s.trace != nil {
			s.tracef(n, "leader work running")
		}
		s.workRunning(n)
	case evWatchdog:
		if e.gen == n.wdGen {
			s.cronWatchdog(n)
		}
		if e.gen != n.wdGen || !n.leading {
			return
		}
		if s.trace != nil {
			s.tracef(n, "watchdog: the lease ran out with no renewal; the leader's work is stopped")
		}
		s.endLeadership(n, "watchdog")
		// leasehold run, once its guard's watchdog has stopped the command,
		// stops its elector (releasing the lock if it still holds it) and
		// campaigns again a retry period later, as the same process: a
		// stalled elector that resumes must not go on renewing a lease
		// whose work is gone. A stalled node takes the stop when it
		// resumes.
		if n.state == up && n.restartAfter == 0 {
			n.restartAfter, n.recampaign = s.sc.RetryPeriod, true
			n.stopReq = true
			if !n.paused {
				s.stopNow(n)
			}
		}
	case evFenceTick:
		if e.gen != n.fenceGen || !n.leading {
			if s.trace != nil {
				s.tracef(n, "drop stale fence tick")
			}
			return
		}
		s.fenceSend(n)
	case evCronStep, evCronWake, evCronRunStart, evCronRunEnd:
		s.cronDispatch(n, e)
	}
}

// afterInput applies a Machine output.
func (s *sim) afterInput(n *node, out elector.Output) { s.apply(n, out) }

// arrive: a request reached the store. It is served at once, or after
// its service time behind the requests ahead of it.
func (s *sim) arrive(e event) {
	n := s.nodes[e.node]
	if n.reqCut {
		if s.trace != nil {
			s.tracef(n, "request lost: partitioned")
		}
		return
	}
	if s.down {
		if s.trace != nil {
			s.tracef(n, "request lost: the store is down")
		}
		return
	}
	svc := s.sc.WriteService
	if e.op == elector.OpGet {
		svc = s.sc.ReadService
	}
	if svc == 0 {
		s.serve(e)
		return
	}
	if s.free == nil {
		s.free = make([]time.Duration, max(s.sc.Parallel, 1))
	}
	k := 0
	for i, f := range s.free {
		if f < s.free[k] {
			k = i
		}
	}
	start := max(s.now, s.free[k])
	s.free[k] = start + svc
	s.res.Store.Served++
	if w := start - s.now; w > 0 {
		s.res.Store.Queued++
		s.res.Store.WaitMSTotal += ms(w)
		s.res.Store.MaxWaitMS = max(s.res.Store.MaxWaitMS, ms(w))
	}
	e.kind = evServe
	e.at = start + svc
	e.idx = s.downs
	s.push(e)
}

// serve carries out a request at the store and sends the reply.
func (s *sim) serve(e event) {
	n := s.nodes[e.node]
	if s.down || e.kind == evServe && e.idx != s.downs {
		if s.trace != nil {
			s.tracef(n, "request lost: the store went down")
		}
		return
	}
	var (
		rec elector.Record
		ver elector.Version
		err error
	)
	switch e.op {
	case elector.OpGet:
		rec, ver, err = s.read(n)
	case elector.OpCreate:
		ver, err = n.backend.Create(s.ctx, e.rec)
	case elector.OpUpdate:
		ver, err = n.backend.Update(s.ctx, e.rec, e.ver)
	}
	switch {
	case e.op != elector.OpGet && err == nil:
		// A write names its writer, or nobody (a release).
		s.holder, s.version = -1, ver
		if e.rec.Holder != "" {
			s.holder = n.idx
		}
		if s.trace != nil {
			s.tracef(nil, "store: %s by %s -> holder=%q term=%d version=%s", e.op, n.id, e.rec.Holder, e.rec.Term, ver)
		}
		s.commit()
		s.snapshot()
		s.cronCommitted(e.rec)
		s.notifyAll(e.rec, ver)
	case s.trace != nil:
		if s.trace != nil {
			s.tracef(nil, "store: %s by %s -> version=%s err=%v", e.op, n.id, ver, err)
		}
	}
	if s.lostRep(n) {
		if s.trace != nil {
			s.tracef(n, "reply lost")
		}
		return
	}
	s.push(event{at: s.now + s.repDelay(n), kind: evReply, node: e.node, inc: e.inc, gen: e.gen, rec: rec, ver: ver, err: err})
}

// identity is the identity node n campaigns with: its own, or the one the
// scenario gives it, with a suffix for each time it came back as a new
// pod (restart_identity: new).
func (s *sim) identity(n *node) string {
	id := n.id
	if n.idx < len(s.sc.Identities) && s.sc.Identities[n.idx] != "" {
		id = s.sc.Identities[n.idx]
	}
	if n.renamed > 0 {
		id += "~" + strconv.Itoa(n.renamed)
	}
	return id
}

func (s *sim) nodeIndex(id string) int {
	for i, n := range s.nodes {
		if n.id == id {
			return i
		}
	}
	return -1
}

// register records a node's watch at the store, answering at once if the
// record has already moved past the version it knows.
func (s *sim) register(e event) {
	n := s.nodes[e.node]
	if n.reqCut || s.down {
		if s.trace != nil {
			s.tracef(n, "watch registration lost: partitioned or the store is down")
		}
		if e.inc == n.inc && e.gen == n.waitGen {
			s.watchLost(n)
		}
		return
	}
	if s.trace != nil {
		s.tracef(nil, "store: watch by %s past version %s", n.id, e.ver)
	}
	s.regs[e.node] = watchReg{active: true, inc: e.inc, gen: e.gen, ver: e.ver}
	if s.version != e.ver {
		rec, ver, err := n.backend.Get(s.ctx)
		s.notify(int(e.node), rec, ver, err)
	}
}

func (s *sim) notifyAll(rec elector.Record, ver elector.Version) {
	for i := range s.regs {
		if s.regs[i].active && s.regs[i].ver != ver {
			s.notify(i, rec, ver, nil)
		}
	}
}

func (s *sim) notify(i int, rec elector.Record, ver elector.Version, err error) {
	r := s.regs[i]
	s.regs[i].active = false
	n := s.nodes[i]
	if s.lostRep(n) {
		if r.inc == n.inc && r.gen == n.waitGen {
			s.watchLost(n)
		}
		return
	}
	s.push(event{at: s.now + s.sc.WatchLag + s.repDelay(n), kind: evNotify, node: int32(i), inc: r.inc, gen: r.gen, rec: rec, ver: ver, err: err})
}

// fenceEvery is the mean interval of a leader's writes to the fenced
// resource: fence_every, or one RetryPeriod.
func (s *sim) fenceEvery() time.Duration {
	if s.sc.FenceEvery > 0 {
		return s.sc.FenceEvery
	}
	return s.sc.RetryPeriod
}

// fenceFirst schedules a new leader's first write to the fenced resource
// at a random instant within one interval: the leader's work writes on its
// own schedule, not in step with its renewals.
func (s *sim) fenceFirst(n *node) {
	d := time.Duration(s.rng.Float64() * float64(s.fenceEvery()))
	s.push(event{at: s.trueAt(n, s.mono(n)+d), kind: evFenceTick, node: int32(n.idx), inc: n.inc, gen: n.fenceGen})
}

// fenceSend writes to the fenced resource with the node's term and schedules
// the next write one RetryPeriod later on the node's clock.
func (s *sim) fenceSend(n *node) {
	if s.sc.Loss == 0 || s.rng.Float64() >= s.sc.Loss {
		s.push(event{at: s.now + s.delay(), kind: evFenceWrite, node: int32(n.idx), term: n.term, gen: n.lseq})
	}
	// The next write after a uniform [0.5, 1.5) intervals, on its clock.
	d := time.Duration((0.5 + s.rng.Float64()) * float64(s.fenceEvery()))
	s.push(event{at: s.trueAt(n, s.mono(n)+d), kind: evFenceTick, node: int32(n.idx), inc: n.inc, gen: n.fenceGen})
}

// fenceWrite: the resource accepts a term at least as high as any it has
// accepted and rejects lower ones. A write is stale if a later
// leadership's write was accepted before it; while terms grow with every
// leadership that is a higher term's write — exactly what the fence
// rejects. Only a term handed out again lets a stale write through (the
// same term as the later leadership's): that one is counted and is a
// violation. A write from a leader that has been replaced but lands before
// its successor wrote anything is accepted and harmless: it is counted as
// late, not stale.
func (s *sim) fenceWrite(e event) {
	n := s.nodes[e.node]
	if e.term < s.fenceTerm {
		s.res.FencedWrites.Rejected++
		if s.timeline != nil {
			s.timeline.Dots = append(s.timeline.Dots, Dot{At: s.now, Node: n.idx, Kind: DotFenceRejected})
		}
		if s.trace != nil {
			s.tracef(n, "fenced write term=%d rejected (highest %d)", e.term, s.fenceTerm)
		}
		return
	}
	s.fenceTerm = e.term
	s.res.FencedWrites.Accepted++
	if e.gen < s.fenceSeq {
		s.res.FencedWrites.StaleAccepted++
		s.res.Violations = append(s.res.Violations, Violation{Kind: "stale_write_accepted", AtMS: ms(s.now), UntilMS: ms(s.now),
			Nodes: []string{n.id, s.nodes[s.fenceBy].id}, Term: e.term})
		if s.trace != nil {
			s.tracef(n, "fenced write term=%d ACCEPTED STALE: %s, a later leadership, wrote with term %d before", e.term, s.nodes[s.fenceBy].id, e.term)
		}
		return
	}
	s.fenceSeq, s.fenceBy = e.gen, int(e.node)
	if s.holder >= 0 && s.holder != int(e.node) {
		s.res.FencedWrites.LateAccepted++
		if s.trace != nil {
			s.tracef(n, "fenced write term=%d accepted late: %s holds the lock but has not written yet", e.term, s.nodes[s.holder].id)
		}
		return
	}
	if s.trace != nil {
		s.tracef(n, "fenced write term=%d accepted", e.term)
	}
}

func (s *sim) tracef(n *node, format string, args ...any) {
	if s.trace == nil {
		return
	}
	who := "--"
	if n != nil {
		who = n.id
	}
	fmt.Fprintf(s.trace, "%s %-4s %s\n", fmtTime(s.now), who, fmt.Sprintf(format, args...))
}

// fmtTime renders a true instant as seconds with microseconds.
func fmtTime(d time.Duration) string {
	return fmt.Sprintf("%12.6fs", d.Seconds())
}

// commit remembers the record just written, for stale reads.
func (s *sim) commit() {
	if s.sc.StaleReads == 0 {
		return
	}
	rec, ver, err := s.nodes[0].backend.Get(s.ctx)
	s.history = append(s.history, committed{at: s.now, rec: rec, ver: ver, exists: err == nil})
	// Keep the newest write at or before the oldest instant a read may see.
	cut := s.now - s.sc.StaleReads
	k := 0
	for k+1 < len(s.history) && s.history[k+1].at <= cut {
		k++
	}
	if k > 0 {
		s.history = append(s.history[:0], s.history[k:]...)
	}
}

// read answers a Get: the latest record, or with stale_reads the one of a
// random instant up to StaleReads ago.
func (s *sim) read(n *node) (elector.Record, elector.Version, error) {
	if s.sc.StaleReads == 0 {
		return n.backend.Get(s.ctx)
	}
	at := s.now - time.Duration(s.rng.Float64()*float64(s.sc.StaleReads))
	for i := len(s.history) - 1; i >= 0; i-- {
		h := s.history[i]
		if h.at > at {
			continue
		}
		if i < len(s.history)-1 {
			s.res.Store.StaleReads++
			if s.trace != nil {
				s.tracef(n, "stale read: version %s as of %s", h.ver, fmtTime(h.at))
			}
		}
		if !h.exists {
			return elector.Record{}, "", fmt.Errorf("sim: stale read: %w", elector.ErrNotFound)
		}
		return h.rec, h.ver, nil
	}
	if len(s.history) > 0 {
		s.res.Store.StaleReads++
	}
	// Before the first write: no record yet.
	return elector.Record{}, "", fmt.Errorf("sim: stale read: %w", elector.ErrNotFound)
}
