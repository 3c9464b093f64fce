package sim

import (
	"cmp"
	"slices"
	"time"

	"github.com/leasehold-go/leasehold/backend/memory"
)

// resolve turns fault targets into node indexes; "leader" is the node that
// holds the record at this instant (none if nobody does).
func (s *sim) resolve(targets []string) []int {
	var out []int
	for _, t := range targets {
		if t == All {
			for i := range s.nodes {
				out = append(out, i)
			}
			continue
		}
		i := s.holder
		if t != Leader {
			i = s.nodeIndex(t)
		}
		if i >= 0 {
			out = append(out, i)
		}
	}
	return out
}

// timelineFault applies fault f of the scenario's timeline.
func (s *sim) timelineFault(f Fault) {
	switch f.Kind {
	case StoreDown:
		s.storeDown(f.For)
	case StoreWipe, StoreRestore, RecordDelete:
		s.storeForget(f.Kind, f.By)
	case LatencySpike:
		s.spike(s.resolve(f.Targets), f.For, f.Latency)
	case Partition:
		s.partition(s.resolve(f.Targets), f.For, f.Lose)
	default:
		s.fault(f.Kind, s.resolve(f.Targets), f.For, f.By, f.NewIdentity)
	}
}

// storeDown takes the store down for d: requests and registrations that
// reach it meanwhile, and requests it was serving, are lost; every watch
// stream breaks.
func (s *sim) storeDown(d time.Duration) {
	if s.timeline != nil {
		s.timeline.Faults = append(s.timeline.Faults, Mark{At: s.now, Node: -1, Kind: StoreDown, For: d})
	}
	if s.trace != nil {
		s.tracef(nil, "FAULT store_down for=%v", d)
	}
	s.downUntil = max(s.downUntil, s.now+d)
	s.push(event{at: s.now + d, kind: evRecover, node: -1, what: StoreDown})
	if s.down {
		return
	}
	s.down = true
	s.downs++
	for _, n := range s.nodes {
		s.markFault(n, StoreDown)
		if s.regs[n.idx].active {
			s.regs[n.idx].active = false
			if n.state == up && s.regs[n.idx].inc == n.inc && s.regs[n.idx].gen == n.waitGen {
				s.watchLost(n)
			}
		}
	}
}

// storeForget makes the store forget: every record and the revision
// counter (a wipe), its state back from an instant `back` ago (a restore),
// or the lock's record (a deletion). Requests in flight are served against
// what is left; watchers see the result, as real watches would: a record
// gone, or the restored one (a watcher holding a version from the forgotten
// history is woken at once). A notification already on its way still
// arrives with what it carried.
func (s *sim) storeForget(kind FaultKind, back time.Duration) {
	if s.timeline != nil {
		s.timeline.Faults = append(s.timeline.Faults, Mark{At: s.now, Node: -1, Kind: kind, By: back})
	}
	switch kind {
	case StoreWipe:
		if s.trace != nil {
			s.tracef(nil, "FAULT store_wipe: every record gone, the revision counter restarts")
		}
		s.store.Wipe()
	case StoreRestore:
		snap := s.snapshotAt(s.now - back)
		if s.trace != nil {
			rev := int64(0)
			if snap != nil {
				rev = snap.Rev()
			}
			s.tracef(nil, "FAULT store_restore by=%v: back to the state of %s (revision %d)", back, fmtTime(max(s.now-back, 0)), rev)
		}
		s.store.Restore(snap)
	case RecordDelete:
		if s.trace != nil {
			s.tracef(nil, "FAULT record_delete")
		}
		s.store.Delete(lockName)
	}
	for _, n := range s.nodes {
		s.markFault(n, kind)
	}
	rec, ver, err := s.nodes[0].backend.Get(s.ctx)
	s.holder, s.version = -1, ver
	if err == nil {
		s.holder = s.holderIndex(rec.Holder)
	}
	if s.trace != nil {
		if err == nil {
			s.tracef(nil, "store: now holder=%q term=%d version=%s", rec.Holder, rec.Term, ver)
		} else {
			s.tracef(nil, "store: now no record")
		}
	}
	s.snapshot()
	if s.sc.StaleReads > 0 {
		if kind != RecordDelete {
			// No replica keeps the history the store forgot.
			s.history = append(s.history[:0], committed{at: 0, rec: rec, ver: ver, exists: err == nil})
		} else {
			s.commit()
		}
	}
	for i := range s.regs {
		if s.regs[i].active && s.regs[i].ver != ver {
			s.notify(i, rec, ver, err)
		}
	}
}

// holderIndex is the node whose identity is holder (the first, for a
// shared one), -1 if none.
func (s *sim) holderIndex(holder string) int {
	if holder == "" {
		return -1
	}
	for i, n := range s.nodes {
		if s.identity(n) == holder {
			return i
		}
	}
	return -1
}

// snapshot remembers the store's state at this instant for the restores
// to come, keeping what the longest of them can go back to.
func (s *sim) snapshot() {
	if s.keepBack == 0 {
		return
	}
	s.snaps = append(s.snaps, snapAt{at: s.now, snap: s.store.Snapshot()})
	cut := s.now - s.keepBack
	k := 0
	for k+1 < len(s.snaps) && s.snaps[k+1].at <= cut {
		k++
	}
	if k > 0 {
		s.snaps = append(s.snaps[:0], s.snaps[k:]...)
	}
}

// snapshotAt is the store's state at true instant t (nil: the empty store
// it started as).
func (s *sim) snapshotAt(t time.Duration) *memory.Snapshot {
	for i := len(s.snaps) - 1; i >= 0; i-- {
		if s.snaps[i].at <= t {
			return s.snaps[i].snap
		}
	}
	return nil
}

// recoverStore ends a store-wide fault.
func (s *sim) recoverStore(e event) {
	if e.what == StoreDown && s.down && s.now >= s.downUntil {
		s.down = false
		for i := range s.free {
			s.free[i] = s.now // it comes back with nothing in line
		}
		if s.trace != nil {
			s.tracef(nil, "store up")
		}
	}
}

// spike sets the one-way latency of the targets' messages to lat for d
// (overlapping spikes: the latest one's latency, until the last one ends).
func (s *sim) spike(targets []int, d, lat time.Duration) {
	for _, i := range targets {
		n := s.nodes[i]
		if s.timeline != nil {
			s.timeline.Faults = append(s.timeline.Faults, Mark{At: s.now, Node: i, Kind: LatencySpike, For: d})
		}
		if s.trace != nil {
			s.tracef(n, "FAULT latency_spike for=%v latency=%v", d, lat)
		}
		n.spike, n.spikeLat = true, lat
		n.spikeUntil = max(n.spikeUntil, s.now+d)
		s.push(event{at: s.now + d, kind: evRecover, node: int32(i), inc: n.inc, what: LatencySpike})
	}
}

// partition cuts the targets from the store for d (0 = forever): both
// ways, or only their requests or only the replies (lose).
func (s *sim) partition(targets []int, d time.Duration, lose string) {
	if len(targets) == 0 {
		if s.trace != nil {
			s.tracef(nil, "fault partition: no target (nobody holds the lock)")
		}
		return
	}
	for _, i := range targets {
		n := s.nodes[i]
		if n.state != up {
			if s.trace != nil {
				s.tracef(n, "fault partition skipped: node is not running")
			}
			continue
		}
		if s.timeline != nil {
			s.timeline.Faults = append(s.timeline.Faults, Mark{At: s.now, Node: i, Kind: Partition, For: d})
		}
		if s.trace != nil {
			if lose == "" {
				s.tracef(n, "FAULT %s for=%v by=%v", Partition, d, time.Duration(0))
			} else {
				s.tracef(n, "FAULT partition for=%v losing %s", d, lose)
			}
		}
		s.cut(n, d, lose != LoseReplies, lose != LoseRequests)
	}
}

// cut loses n's requests (req) and replies (rep) for d (0 = forever).
// Overlapping partitions: each direction heals when its last one does.
func (s *sim) cut(n *node, d time.Duration, req, rep bool) {
	if d > 0 {
		s.push(event{at: s.now + d, kind: evRecover, node: int32(n.idx), what: Partition})
	}
	if req {
		n.reqForever = n.reqForever || d == 0
		n.reqUntil = max(n.reqUntil, s.now+d)
	}
	if rep {
		n.repForever = n.repForever || d == 0
		n.repUntil = max(n.repUntil, s.now+d)
	}
	was := n.cut
	n.reqCut, n.repCut = n.reqCut || req, n.repCut || rep
	n.cut = true
	if !was {
		s.markFault(n, Partition)
	}
	// Its watch stream breaks when notifications can no longer reach it.
	if rep && s.regs[n.idx].active {
		s.regs[n.idx].active = false
		s.watchLost(n)
	}
	if !was {
		s.mark(n)
	}
}

// fault applies one fault to its targets. d is how long it lasts (0 =
// forever); by is the clock jump; newID says whether a crashed or stopped
// node comes back under a new identity.
func (s *sim) fault(kind FaultKind, targets []int, d, by time.Duration, newID bool) {
	switch kind {
	case StoreDown:
		s.storeDown(d)
		return
	case StoreWipe, StoreRestore, RecordDelete:
		s.storeForget(kind, d)
		return
	case Partition:
		s.partition(targets, d, "")
		return
	}
	if len(targets) == 0 {
		if s.trace != nil {
			s.tracef(nil, "fault %s: no target (nobody holds the lock)", kind)
		}
		return
	}
	for _, i := range targets {
		n := s.nodes[i]
		if n.state != up {
			if s.trace != nil {
				s.tracef(n, "fault %s skipped: node is not running", kind)
			}
			continue
		}
		if s.timeline != nil {
			s.timeline.Faults = append(s.timeline.Faults, Mark{At: s.now, Node: i, Kind: kind, For: d})
		}
		if s.trace != nil {
			s.tracef(n, "FAULT %s for=%v by=%v", kind, d, by)
		}
		switch kind {
		case Crash:
			n.newIdentity = newID
			s.crash(n, d)
		case Stop:
			n.newIdentity = newID
			s.markFault(n, Stop)
			n.restartAfter = d
			// The Machine takes a stop at any time, also during a call; a
			// paused process takes it when it resumes.
			n.stopReq = true
			if !n.paused {
				s.stopNow(n)
			}
		case Pause, Stall:
			// Overlapping pauses: it resumes when the last one ends. A
			// stall leaves the work and the guard running, unless a whole
			// pause overlaps it.
			n.pauseUntil = max(n.pauseUntil, s.now+d)
			s.push(event{at: s.now + d, kind: evRecover, node: int32(i), inc: n.inc, what: Pause})
			if n.paused {
				n.stall = n.stall && kind == Stall
				s.cronFreeze(n)
				continue
			}
			s.markFault(n, kind)
			n.paused, n.stall = true, kind == Stall
			s.cronFreeze(n)
			s.mark(n)
		case ClockJump:
			n.jump += by
		}
	}
}

// stopNow cancels the node's wait and asks its Machine to stop.
func (s *sim) stopNow(n *node) {
	n.stopReq = false
	n.waitGen++
	n.workWait = false
	s.regs[n.idx].active = false
	s.apply(n, n.m.Stop(s.nowAt(n)))
}

func (s *sim) crash(n *node, restart time.Duration) {
	s.markFault(n, Crash)
	s.cronStopRun(n, s.now, "crash")
	if n.leading {
		s.endLeadership(n, "crash")
	}
	s.cronLeadEnd(n)
	n.cron.frozen = false
	n.inc++
	n.state = crashed
	n.m = nil
	n.paused, n.stall, n.deferred, n.inCall, n.stopReq = false, false, nil, false, false
	n.pauseUntil, n.watching = 0, false
	s.regs[n.idx].active = false
	s.mark(n)
	s.cronAlive()
	if restart > 0 {
		s.push(event{at: s.now + restart, kind: evRecover, node: int32(n.idx), inc: n.inc, what: Crash})
	}
}

// markFault remembers the first fault that hit a leader, for the failover
// it may cause.
func (s *sim) markFault(n *node, k FaultKind) {
	if n.leading && n.fault == "" {
		n.fault, n.faultAt = k, s.now
	}
}

// recover ends a fault: restart after a crash or stop, heal, resume.
func (s *sim) recover(n *node, e event) {
	switch e.what {
	case Crash, Stop:
		if n.state == up {
			return
		}
		if n.newIdentity {
			n.renamed++
			n.newIdentity = false
		}
		if s.trace != nil {
			s.tracef(n, "start as %s", s.identity(n))
		}
		n.inc++
		if !n.recampaign {
			n.proc = n.inc // a new process: a new instance
		}
		n.recampaign = false
		if err := s.boot(n); err != nil && s.err == nil {
			s.err = err
		}
	case Partition:
		if n.reqCut && !n.reqForever && s.now >= n.reqUntil {
			n.reqCut = false
		}
		if n.repCut && !n.repForever && s.now >= n.repUntil {
			n.repCut = false
		}
		if n.cut && !n.reqCut && !n.repCut {
			n.cut = false
			s.mark(n)
			if s.trace != nil {
				s.tracef(n, "healed")
			}
		}
	case LatencySpike:
		if n.spike && s.now >= n.spikeUntil {
			n.spike = false
			if s.trace != nil {
				s.tracef(n, "latency back to normal")
			}
		}
	case Pause:
		if e.inc != n.inc || !n.paused || s.now < n.pauseUntil {
			return
		}
		n.paused, n.stall = false, false
		s.mark(n)
		if s.trace != nil {
			s.tracef(n, "resumed with %d held events", len(n.deferred))
		}
		s.cronThaw(n)
		// A paused leader resumes mid-write: the write to the fenced
		// resource it was about to make goes out before it looks at its
		// lease again (the classic GC-pause case fencing exists for).
		held := n.deferred
		n.deferred = nil
		slices.SortStableFunc(held, func(a, b event) int {
			return cmp.Compare(b2i(a.kind != evFenceTick), b2i(b.kind != evFenceTick))
		})
		for _, d := range held {
			if n.state != up || n.paused {
				break
			}
			d.at = s.now
			s.dispatch(d)
		}
		if n.state == up && n.stopReq {
			s.stopNow(n)
		}
	}
}

// randomGap draws the time to the next random fault.
func (s *sim) randomGap() time.Duration {
	r := s.sc.Random
	return s.now + r.Every/2 + time.Duration(s.rng.Float64()*float64(r.Every))
}

// randomFault draws a kind, a target (the leader half of the time) and a
// length, applies it and schedules the next one.
func (s *sim) randomFault() {
	r := s.sc.Random
	kind := r.Kinds[s.rng.IntN(len(r.Kinds))]
	target := s.rng.IntN(len(s.nodes))
	if s.rng.Float64() < 0.5 && s.holder >= 0 {
		target = s.holder
	}
	hi := r.MaxDown
	if kind == StoreRestore && r.MaxBack > 0 {
		hi = r.MaxBack // how far back the store goes
	}
	lo := min(time.Second, hi)
	d := lo + time.Duration(s.rng.Float64()*float64(hi-lo))
	by := d
	if s.rng.Float64() < 0.5 {
		by = -d
	}
	s.fault(kind, []int{target}, d, by, true)
	s.push(event{at: s.randomGap(), kind: evRandomFault, node: -1})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
