package sim

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/leasehold-go/leasehold/cronstep"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/schedule"
)

// cronJob is the job's name in the lock's record.
const cronJob = "job"

// cronWait is what a node's scheduling loop waits for the Machine to answer.
type cronWait uint8

const (
	cwNone      cronWait = iota
	cwClaim              // the claim of the slot to run
	cwRerun              // the claim again of a run cut short (--interrupted rerun)
	cwSkipClaim          // --overlap skip: the claim of a slot to skip
	cwSkipDone           // and its done
	cwDone               // the done of the slot just run
	cwAbandon            // the claim put back: its run never started
)

// cronLoop is a node's driver of leasehold cron's leader loop (cronJob.lead
// in cmd/leasehold/cron.go drives the same cronstep.Loop), one leadership
// at a time.
type cronLoop struct {
	active   bool   // the loop runs: this node leads (its leadership's context is live)
	gen      uint64 // bumped at each start and end of a leadership: older loop events are dropped
	term     int64
	loop     *cronstep.Loop // the pure step's state for this leadership
	runFrom  time.Time      // the node's wall clock when its run started
	req      uint64         // the claim request in flight (0: none)
	wait     cronWait
	reqSlot  time.Time
	slot     time.Time   // the slot claimed to run, running or just run
	rerun    bool        // that run is a rerun
	skips    []time.Time // --overlap skip: the slots left to skip
	starting bool        // claimed; the command starts after work_start
	run      *cronRun    // the run going
	frozen   bool        // a whole-process pause froze it
	frozenAt time.Duration
	last     *cronRun // the run that just ended (its done in flight)
	sleep    int      // the current sleep: wake-ups of others are stale
	stepAt   time.Duration
	steps    int // loop steps at stepAt: a guard against a loop that spins
}

// cronRun is one run of a slot's command, in true time.
type cronRun struct {
	id         uint64
	node       int
	gen        uint64 // the leadership (cronLoop.gen) that started it
	slot       time.Time
	start, end time.Duration // end -1 while it runs
	due        time.Duration // when it ends by itself (later by the pauses that froze it)
	endGen     int           // its end event's (bumped when a pause moves the end)
	rerun      bool
	killed     bool // stopped before its end: leadership lost, crash, watchdog
	done       bool // its slot was marked done in the store after it ran
	doneFailed bool // its done was answered with a failure
}

// cronSlot is what happened to one slot.
type cronSlot struct {
	runs    []*cronRun
	skipped bool // claimed and marked done without running (--overlap skip)
	claimed bool // the store's record named it as started
}

// cronSim is the simulation's view of the job across nodes.
type cronSim struct {
	sched     *schedule.Schedule
	ids       uint64
	runIDs    uint64
	slots     map[int64]*cronSlot // by slot, UnixNano
	open      []*cronRun          // runs that may still be going
	overlaps  [][2]*cronRun
	stored    elector.JobState // the job's entry in the store's record
	first     time.Duration    // the first leadership's start; -1 before
	firstOwed time.Duration    // the later of that and the first slot claimed, in true time
	down      []Span           // true time with no node running
	isDown    bool
	downFrom  time.Duration
	delays    []float64 // first start of each slot − its time, ms
	afterFO   []float64 // the same, of slots due before their runner led
	dups      int
	reruns    int
}

func (s *sim) cronInit() error {
	if s.sc.Cron == nil {
		return nil
	}
	sched, err := s.sc.Cron.parse()
	if err != nil {
		return fmt.Errorf("sim: cron: %w", err)
	}
	s.cron = &cronSim{sched: sched, slots: map[int64]*cronSlot{}, first: -1, isDown: true}
	return nil
}

// trueOf is the true instant of a wall-clock time on a true clock.
func trueOf(t time.Time) time.Duration { return t.Sub(epoch) }

func slotString(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (s *sim) cronTrace(n *node, format string, args ...any) {
	if s.trace != nil {
		s.tracef(n, "cron: "+format, args...)
	}
}

// cronAlive keeps the spans of true time with no node running.
func (s *sim) cronAlive() {
	cs := s.cron
	if cs == nil {
		return
	}
	alive := false
	for _, n := range s.nodes {
		alive = alive || n.state == up
	}
	switch {
	case alive && cs.isDown:
		cs.isDown = false
		if s.now > cs.downFrom {
			cs.down = append(cs.down, Span{From: cs.downFrom, To: s.now})
		}
	case !alive && !cs.isDown:
		cs.isDown, cs.downFrom = true, s.now
	}
}

// cronLeadStart: the node's Machine started leading; cron's
// OnStartedLeading starts the loop. It lives until the Machine stops
// leading or the process dies (not when the guard's watchdog stops a
// run: the elector may still lead).
func (s *sim) cronLeadStart(n *node) {
	if s.cron == nil {
		return
	}
	if s.cron.first < 0 {
		s.cron.first = s.now
	}
	c := &n.cron
	gen := c.gen + 1
	cr := s.sc.Cron
	loop := cronstep.New(s.cron.sched, cronstep.Options{CatchUp: cr.CatchUp, Rerun: cr.Rerun, SkipOverlap: cr.SkipOverlap, MaxSlots: 1000}, n.term)
	*c = cronLoop{active: true, gen: gen, term: n.term, loop: loop, sleep: c.sleep, run: c.run, last: c.last}
	s.push(event{at: s.now, kind: evCronStep, node: int32(n.idx), inc: n.inc, gen: gen})
}

// cronLeadEnd: the leadership's context ends (the Machine stopped leading,
// or a crash); the loop with it (the run is stopped by cronStopRun).
func (s *sim) cronLeadEnd(n *node) {
	if s.cron == nil {
		return
	}
	c := &n.cron
	c.active, c.req, c.wait, c.skips, c.starting = false, 0, cwNone, nil, false
	c.gen++
}

// cronStopRun stops the node's run, if one is going, at true instant at
// (now, or when the work has stopped).
func (s *sim) cronStopRun(n *node, at time.Duration, why string) {
	if s.cron == nil {
		return
	}
	c := &n.cron
	if r := c.run; r != nil {
		r.end, r.killed = at, true
		c.run = nil
		s.cronTrace(n, "run of slot %s cut short (%s), ends at %s", slotString(r.slot), why, fmtTime(at))
	}
}

// cronWatchdog: the lease the guard was last told of ran out. It stops
// the run; the loop, which lives as long as the elector leads, goes on
// after a retry period (runSlot returns false).
func (s *sim) cronWatchdog(n *node) {
	if s.cron == nil || n.cron.run == nil {
		return
	}
	ours := n.cron.run.gen == n.cron.gen
	s.cronStopRun(n, s.now, "watchdog")
	if n.cron.active {
		if ours {
			n.cron.loop.Ran(n.cron.runFrom, s.nowAt(n).Wall)
		}
		s.cronSleep(n, s.sc.RetryPeriod)
	}
}

// cronStep is one turn of cron's leader loop: the pure step decides.
func (s *sim) cronStep(n *node) {
	c := &n.cron
	if !c.active || c.req != 0 || c.run != nil || c.starting || n.m == nil {
		return
	}
	if c.stepAt != s.now {
		c.stepAt, c.steps = s.now, 0
	}
	if c.steps++; c.steps > 10000 {
		if s.err == nil {
			s.err = fmt.Errorf("sim: internal error: the cron loop of %s spins at %s", n.id, fmtTime(s.now))
		}
		return
	}
	now := s.nowAt(n).Wall
	a := c.loop.Step(n.m.Jobs()[cronJob], now)
	switch a.Kind {
	case cronstep.Leave:
		s.cronTrace(n, "slot %s was cut short (term %d): not run again (interrupted: skip)", slotString(a.Slot), a.Term)
		s.cronStep(n)
	case cronstep.Rerun:
		s.cronRequest(n, cwRerun, a.Slot)
	case cronstep.Idle:
		s.cronTrace(n, "no slot in the next five years")
	case cronstep.Wait:
		s.cronSleep(n, a.Until.Sub(now))
	case cronstep.Skip:
		c.skips = slices.Clone(a.Skipped)
		s.cronSkipNext(n)
	case cronstep.Run:
		s.cronRequest(n, cwClaim, a.Slot)
	}
}

// cronSkipNext claims (and marks done) the next slot to skip, or steps
// again once none is left.
func (s *sim) cronSkipNext(n *node) {
	c := &n.cron
	if len(c.skips) == 0 {
		s.cronStep(n)
		return
	}
	slot := c.skips[0]
	c.skips = c.skips[1:]
	s.cronRequest(n, cwSkipClaim, slot)
}

// cronSleep sleeps d on the node's monotonic clock (cron's sleep(ctx, d)).
func (s *sim) cronSleep(n *node, d time.Duration) {
	c := &n.cron
	c.sleep++
	s.push(event{at: s.trueAt(n, s.mono(n)+d), kind: evCronWake, node: int32(n.idx), inc: n.inc, gen: c.gen, idx: c.sleep})
}

// cronRequest hands a claim request to the node's Machine, as
// Elector.Claim, Reclaim and Done do.
func (s *sim) cronRequest(n *node, w cronWait, slot time.Time) {
	c := &n.cron
	s.cron.ids++
	req := elector.ClaimRequest{ID: s.cron.ids, Job: cronJob, Slot: slot, Done: w == cwDone || w == cwSkipDone, Rerun: w == cwRerun, Abandon: w == cwAbandon}
	c.req, c.wait, c.reqSlot = req.ID, w, slot
	s.cronTrace(n, "%s slot %s", cronVerb(w), slotString(slot))
	s.apply(n, n.m.Claim(s.nowAt(n), req))
}

func cronVerb(w cronWait) string {
	switch w {
	case cwRerun:
		return "reclaim (rerun)"
	case cwSkipClaim:
		return "claim to skip"
	case cwSkipDone, cwDone:
		return "done"
	case cwAbandon:
		return "abandon"
	}
	return "claim"
}

// cronAnswers routes the Machine's answers to the loop's request.
func (s *sim) cronAnswers(n *node, results []elector.ClaimResult) {
	c := &n.cron
	for _, r := range results {
		if !c.active || r.Request.ID != c.req {
			continue
		}
		w := c.wait
		c.req, c.wait = 0, cwNone
		s.cronTrace(n, "%s slot %s: %s", cronVerb(w), slotString(r.Request.Slot), r.Outcome)
		ok := r.Outcome == elector.ClaimAcknowledged
		switch w {
		case cwClaim, cwRerun:
			switch {
			case ok:
				c.slot, c.rerun = r.Request.Slot, w == cwRerun
				if s.sc.WorkStart > 0 {
					c.starting = true
					s.push(event{at: s.now + s.workTime(s.sc.WorkStart), kind: evCronRunStart, node: int32(n.idx), inc: n.inc, gen: c.gen})
				} else {
					s.cronRunStart(n)
				}
			case r.Outcome == elector.ClaimAlreadyClaimed:
				// The loop goes on at once; its turn (a round trip to
				// the elector's goroutine) takes a microsecond, so that
				// the next one reads another now: schedule.Due(last, now,
				// w) includes last itself when last is exactly now − w,
				// which virtual time hits, real time hardly ever.
				s.push(event{at: s.trueAt(n, s.mono(n)+time.Microsecond), kind: evCronStep, node: int32(n.idx), inc: n.inc, gen: c.gen})
			default:
				s.cronSleep(n, s.sc.RetryPeriod)
			}
		case cwSkipClaim:
			switch {
			case ok:
				s.cronSlot(r.Request.Slot).skipped = true
				s.cronRequest(n, cwSkipDone, r.Request.Slot)
			case r.Outcome == elector.ClaimAlreadyClaimed:
				s.cronSkipNext(n)
			default:
				// As cron does: try again after a retry period.
				c.skips = nil
				s.cronSleep(n, s.sc.RetryPeriod)
			}
		case cwSkipDone:
			if ok {
				s.cronSkipNext(n)
				break
			}
			c.skips = nil
			s.cronSleep(n, s.sc.RetryPeriod)
		case cwAbandon:
			s.cronSleep(n, s.sc.RetryPeriod)
		case cwDone:
			if ok {
				s.cronStep(n)
				break
			}
			if c.last != nil {
				c.last.doneFailed = true
			}
			s.cronSleep(n, s.sc.RetryPeriod)
		}
	}
}

func (s *sim) cronSlot(t time.Time) *cronSlot {
	k := t.UnixNano()
	sl := s.cron.slots[k]
	if sl == nil {
		sl = &cronSlot{}
		s.cron.slots[k] = sl
	}
	return sl
}

// cronRunStart: the claimed slot's command starts.
func (s *sim) cronRunStart(n *node) {
	c, cs, cr := &n.cron, s.cron, s.sc.Cron
	c.starting = false
	if s.sc.Watchdog && s.mono(n) >= n.validUntil {
		// The guard refuses to start the command once the lease it is
		// given has run out (the process stopped between the claim and
		// the command's start); runSlot then abandons the claim (it is
		// put back) and tries again after a retry period.
		s.cronTrace(n, "the lease ran out before the command of slot %s could start", slotString(c.slot))
		c.last = nil
		s.cronRequest(n, cwAbandon, c.slot)
		return
	}
	cs.runIDs++
	r := &cronRun{id: cs.runIDs, node: n.idx, gen: c.gen, slot: c.slot, start: s.now, end: -1, rerun: c.rerun}
	c.run, c.runFrom = r, s.nowAt(n).Wall
	k := 0
	for _, o := range cs.open {
		if o.end >= 0 && o.end <= s.now {
			continue
		}
		cs.open[k] = o
		k++
		cs.overlaps = append(cs.overlaps, [2]*cronRun{o, r})
		s.cronTrace(n, "OVERLAP: the run of slot %s by %s is still going", slotString(o.slot), s.nodes[o.node].id)
	}
	cs.open = append(cs.open[:k], r)
	sl := s.cronSlot(r.slot)
	switch {
	case len(sl.runs) == 0:
		d := s.now - trueOf(r.slot)
		cs.delays = append(cs.delays, ms(d))
		if trueOf(r.slot) >= cs.first && n.leadStart > trueOf(r.slot) {
			cs.afterFO = append(cs.afterFO, ms(d))
		}
	case r.rerun && len(sl.runs) == 1 && !sl.runs[0].done:
		cs.reruns++
	default:
		cs.dups++
		s.res.Violations = append(s.res.Violations, Violation{Kind: "duplicated_slot", AtMS: ms(s.now), UntilMS: ms(s.now),
			Nodes: []string{s.nodes[sl.runs[0].node].id, n.id}, Slot: slotString(r.slot)})
		s.cronTrace(n, "DUPLICATE: slot %s starts again (run %d)", slotString(r.slot), len(sl.runs)+1)
	}
	sl.runs = append(sl.runs, r)
	d := cr.RunTime
	if cr.RunSpread > 0 {
		d += time.Duration(s.rng.Float64() * float64(cr.RunSpread))
	}
	what := "run"
	if r.rerun {
		what = "rerun"
	}
	s.cronTrace(n, "%s of slot %s starts (term %d), takes %v", what, slotString(r.slot), c.term, d)
	r.due = s.now + d
	s.push(event{at: r.due, kind: evCronRunEnd, node: int32(n.idx), inc: n.inc, gen: r.id})
}

// cronFreeze: a whole-process pause (not a stall) freezes the run too.
func (s *sim) cronFreeze(n *node) {
	if s.cron == nil {
		return
	}
	if c := &n.cron; n.paused && !n.stall && !c.frozen && c.run != nil {
		c.frozen, c.frozenAt = true, s.now
	}
}

// cronThaw: the process resumes, and its run with it: it ends later by
// the time it was frozen.
func (s *sim) cronThaw(n *node) {
	c := &n.cron
	if s.cron == nil || !c.frozen {
		return
	}
	c.frozen = false
	if r := c.run; r != nil {
		r.due += s.now - c.frozenAt
		r.endGen++
		s.push(event{at: r.due, kind: evCronRunEnd, node: int32(n.idx), inc: n.inc, gen: r.id, idx: r.endGen})
	}
}

// cronRunEnded: the run's command finished by itself; the loop marks the
// slot done (once the process runs: a stalled leasehold does it on resume).
func (s *sim) cronRunEnded(n *node) {
	c := &n.cron
	r := c.run
	r.end = s.now
	c.run, c.last = nil, r
	if c.active && r.gen == c.gen {
		c.loop.Ran(c.runFrom, s.nowAt(n).Wall)
	}
	s.cronTrace(n, "run of slot %s ended", slotString(r.slot))
	if !c.active {
		return
	}
	if n.paused {
		n.deferred = append(n.deferred, event{at: s.now, kind: evCronStep, node: int32(n.idx), inc: n.inc, gen: c.gen, idx: 1})
		return
	}
	s.cronRequest(n, cwDone, c.slot)
}

// cronDispatch handles the loop's own events.
func (s *sim) cronDispatch(n *node, e event) {
	c := &n.cron
	switch e.kind {
	case evCronStep:
		if !c.active || e.gen != c.gen {
			return
		}
		if e.idx == 1 {
			s.cronRequest(n, cwDone, c.slot)
			return
		}
		s.cronStep(n)
	case evCronWake:
		if !c.active || e.gen != c.gen || e.idx != c.sleep {
			return
		}
		s.cronStep(n)
	case evCronRunStart:
		if !c.active || e.gen != c.gen || !c.starting {
			return
		}
		s.cronRunStart(n)
	case evCronRunEnd:
		if c.run == nil || c.run.id != e.gen || c.run.endGen != e.idx {
			return
		}
		s.cronRunEnded(n)
	}
}

// cronCommitted follows the job's entry in the store's record, written
// by rec.
func (s *sim) cronCommitted(rec elector.Record) {
	cs := s.cron
	if cs == nil {
		return
	}
	st, ok := rec.Jobs[cronJob]
	if !ok {
		return
	}
	if !st.Done.IsZero() && !st.Done.Equal(cs.stored.Done) {
		if sl := cs.slots[st.Done.UnixNano()]; sl != nil && len(sl.runs) > 0 {
			if r := sl.runs[len(sl.runs)-1]; r.end >= 0 && !r.killed {
				r.done = true
			}
		}
	}
	if !st.Started.Equal(cs.stored.Started) && !st.Started.IsZero() {
		s.cronSlot(st.Started).claimed = true
	}
	if cs.stored.Started.IsZero() && !st.Started.IsZero() {
		// A job that never ran owes no slot before its first one.
		cs.firstOwed = max(cs.first, trueOf(st.Started))
	}
	cs.stored = st
}

// CronStats is what happened to the slots of the schedule (docs/simulator.md).
type CronStats struct {
	Schedule string `json:"schedule"`
	// Due are the slots of the schedule in true time from the first
	// leadership (or the first slot claimed, if later: a job that never
	// ran owes no earlier slot) until the end (a slot at the very end
	// cannot start within the run) while some node was running, and any
	// other slot that was started or skipped.
	Due    int `json:"due"`
	Run    int `json:"run"`    // started at least once
	Missed int `json:"missed"` // due, never started, and no longer can be (it or a later slot was claimed)
	// ClaimedNotRun are the missed slots that were claimed in the record
	// but whose run never started: the claim landed but its answer was
	// lost or came too late, or the leadership ended before the command
	// started. interrupted: skip does not run them (at most once).
	ClaimedNotRun int `json:"claimed_not_run"`
	Skipped       int `json:"skipped"` // claimed and marked done without running (overlap: skip)
	Pending       int `json:"pending"` // due, not started by the end, still runnable (a failover under way at the end)
	Starts        int `json:"starts"`  // runs started
	// Duplicated are starts of a slot that had started before, other than
	// its one allowed rerun (a safety violation); Reruns are those
	// allowed: interrupted: rerun of a slot whose first run was cut short.
	Duplicated int `json:"duplicated"`
	Reruns     int `json:"reruns"`
	// CutShort are runs never marked done: stopped mid-run (leadership
	// lost, crash, watchdog) or finished just as their leadership ended.
	CutShort int `json:"cut_short"`
	// OverlappingRuns are pairs of runs going at once in true time (a
	// safety violation).
	OverlappingRuns int `json:"overlapping_runs"`
	// StartDelayMS is each slot's first start, true time, minus the
	// slot's time; FailoverDelayMS the same for slots that came due
	// before the leadership that ran them began (a failover).
	StartDelayMS    Percentiles `json:"start_delay_ms"`
	FailoverDelayMS Percentiles `json:"failover_delay_ms"`
	// MissedSlots are the first ten missed slots of a run (RFC 3339);
	// not in the aggregate.
	MissedSlots []string `json:"missed_slots,omitempty"`

	delays, afterFO []float64
}

// cronFinish counts what happened to the slots.
func (s *sim) cronFinish() {
	cs := s.cron
	if cs == nil {
		return
	}
	if cs.isDown {
		cs.down = append(cs.down, Span{From: cs.downFrom, To: s.now})
	}
	st := &CronStats{Schedule: s.sc.Cron.Schedule, OverlappingRuns: len(cs.overlaps), Duplicated: cs.dups, Reruns: cs.reruns}
	due := map[int64]bool{}
	for k := range cs.slots {
		due[k] = true
	}
	if cs.first >= 0 {
		from := cs.first
		if !cs.stored.Started.IsZero() {
			from = cs.firstOwed
		}
		d := 0
		end := epoch.Add(s.sc.Duration)
		for t := cs.sched.Next(epoch.Add(from - 1)); !t.IsZero() && t.Before(end); t = cs.sched.Next(t) {
			at := trueOf(t)
			for d < len(cs.down) && cs.down[d].To < at {
				d++
			}
			if d < len(cs.down) && cs.down[d].From <= at {
				continue
			}
			due[t.UnixNano()] = true
		}
	}
	keys := make([]int64, 0, len(due))
	for k := range due {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	st.Due = len(keys)
	for _, k := range keys {
		sl := cs.slots[k]
		switch {
		case sl != nil && len(sl.runs) > 0:
			st.Run++
			st.Starts += len(sl.runs)
			for _, r := range sl.runs {
				cut := r.killed || r.end >= 0 && !r.done && (r.doneFailed || !s.nodes[r.node].cron.active || s.nodes[r.node].cron.gen != r.gen)
				if cut {
					st.CutShort++
				}
				if s.timeline != nil {
					end := r.end
					if end < 0 || end > s.now {
						end = s.now
					}
					s.timeline.Runs = append(s.timeline.Runs, CronRun{Node: r.node, From: r.start, To: end, Slot: slotString(r.slot), CutShort: cut, Rerun: r.rerun})
				}
			}
		case sl != nil && sl.skipped:
			st.Skipped++
		case !time.Unix(0, k).After(cs.stored.Started):
			st.Missed++
			if sl != nil && sl.claimed {
				st.ClaimedNotRun++
			}
			if len(st.MissedSlots) < 10 {
				st.MissedSlots = append(st.MissedSlots, slotString(time.Unix(0, k)))
			}
		default:
			st.Pending++
		}
	}
	for _, o := range cs.overlaps {
		until := s.now
		for _, r := range o {
			if r.end >= 0 {
				until = min(until, r.end)
			}
		}
		s.res.Violations = append(s.res.Violations, Violation{Kind: "overlapping_runs", AtMS: ms(o[1].start), UntilMS: ms(until),
			Nodes: []string{s.nodes[o[0].node].id, s.nodes[o[1].node].id}, Slot: slotString(o[1].slot)})
	}
	st.delays, st.afterFO = cs.delays, cs.afterFO
	st.StartDelayMS = percentilesOf(slices.Clone(cs.delays))
	st.FailoverDelayMS = percentilesOf(slices.Clone(cs.afterFO))
	s.res.Cron = st
}

// hist counts values rounded to the microsecond, so that the aggregate of
// many runs keeps exact nearest-rank percentiles in memory that grows with
// the distinct values, not with the runs.
type hist map[int64]int

func (h hist) add(vs []float64) {
	for _, v := range vs {
		h[int64(math.Round(v*1000))]++
	}
}

func (h hist) percentiles() Percentiles {
	n := 0
	keys := make([]int64, 0, len(h))
	for k, c := range h {
		keys = append(keys, k)
		n += c
	}
	if n == 0 {
		return Percentiles{}
	}
	slices.Sort(keys)
	at := func(p float64) float64 {
		rank := max(0, min(int(math.Ceil(p*float64(n)))-1, n-1))
		for _, k := range keys {
			if rank < h[k] {
				return float64(k) / 1000
			}
			rank -= h[k]
		}
		return float64(keys[len(keys)-1]) / 1000
	}
	return Percentiles{N: n, P50: at(0.5), P90: at(0.9), P99: at(0.99), Max: float64(keys[len(keys)-1]) / 1000}
}

// cronSummary folds the runs' cron figures.
type cronSummary struct {
	st             CronStats
	delays, failFO hist
}

func (m *cronSummary) add(c *CronStats) {
	if m.delays == nil {
		m.delays, m.failFO = hist{}, hist{}
		m.st.Schedule = c.Schedule
	}
	a := &m.st
	a.Due += c.Due
	a.Run += c.Run
	a.Missed += c.Missed
	a.ClaimedNotRun += c.ClaimedNotRun
	a.Skipped += c.Skipped
	a.Pending += c.Pending
	a.Starts += c.Starts
	a.Duplicated += c.Duplicated
	a.Reruns += c.Reruns
	a.CutShort += c.CutShort
	a.OverlappingRuns += c.OverlappingRuns
	m.delays.add(c.delays)
	m.failFO.add(c.afterFO)
}

func (m *cronSummary) stats() *CronStats {
	if m.delays == nil {
		return nil
	}
	st := m.st
	st.StartDelayMS, st.FailoverDelayMS = m.delays.percentiles(), m.failFO.percentiles()
	return &st
}
