package sim

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/leasehold-go/leasehold/elector"
)

// Result is what one run measured. Times are true (simulated) time in
// milliseconds.
type Result struct {
	Scenario          string       `json:"scenario"`
	Seed              uint64       `json:"seed"`
	SimSeconds        float64      `json:"sim_seconds"`
	Events            int64        `json:"events"`
	Failovers         []Failover   `json:"failovers"`
	FailoverMS        Percentiles  `json:"failover_ms"`
	LeaderlessMSTotal float64      `json:"leaderless_ms_total"`
	DualLeaderMS      float64      `json:"dual_leader_ms"`
	FencedWrites      FencedWrites `json:"fenced_writes"`
	Requests          Requests     `json:"requests"`
	RequestsPerSec    float64      `json:"requests_per_sec"`
	Transitions       int          `json:"transitions"`
	Violations        []Violation  `json:"violations"`

	Timeline *Timeline `json:"-"`
}

// Failover is one loss of leadership and what followed. Cause is the fault
// that hit the leader (crash, stop, partition, pause) or, without one, why
// it stepped down (renew-failed, conflict). AtMS is the fault instant (or
// the step-down), FailoverMS the time from there until a leader started,
// LeaderlessMS the part of it during which nobody believed it led.
type Failover struct {
	Cause        string  `json:"cause"`
	From         string  `json:"from"`
	To           string  `json:"to"`
	AtMS         float64 `json:"at_ms"`
	FailoverMS   float64 `json:"failover_ms"`
	LeaderlessMS float64 `json:"leaderless_ms"`
	Unfinished   bool    `json:"unfinished,omitempty"` // no leader by the end of the run
}

// Percentiles summarise failover times (nearest rank).
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// FencedWrites counts the writes leaders made to the fenced resource.
// StaleAccepted are accepted writes from a node other than the record's
// holder at that instant: safety violations.
type FencedWrites struct {
	Accepted      int64 `json:"accepted"`
	Rejected      int64 `json:"rejected"`
	StaleAccepted int64 `json:"stale_accepted"`
}

// Requests counts backend requests sent, by kind (watch = registrations).
type Requests struct {
	Get    int64 `json:"get"`
	Create int64 `json:"create"`
	Update int64 `json:"update"`
	Watch  int64 `json:"watch"`
}

func (r Requests) total() int64 { return r.Get + r.Create + r.Update + r.Watch }

// Violation is a breach of safety: two nodes believing they lead at once
// (dual_leadership, from AtMS to UntilMS) or a stale write the fenced
// resource accepted (stale_write_accepted: the writer, then the holder).
type Violation struct {
	Kind    string   `json:"kind"`
	AtMS    float64  `json:"at_ms"`
	UntilMS float64  `json:"until_ms"`
	Nodes   []string `json:"nodes"`
	Term    int64    `json:"term,omitempty"`
}

// Safe reports whether the run had no violation.
func (r *Result) Safe() bool { return len(r.Violations) == 0 }

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// acct adds the time since the last change to the leaderless and dual
// totals.
func (s *sim) acct() {
	d := s.now - s.lastAcct
	if s.anyLeader && s.believers == 0 {
		s.leaderless += d
	}
	if s.believers >= 2 {
		s.dual += d
	}
	s.lastAcct = s.now
}

func (s *sim) startLeadership(n *node, term int64) {
	s.acct()
	n.leading, n.term, n.leadStart, n.fault = true, term, s.now, ""
	s.believers++
	s.anyLeader = true
	s.res.Transitions++
	if s.believers >= 2 {
		if s.believers == 2 {
			s.dualStart, s.dualNodes = s.now, nil
			for _, o := range s.nodes {
				if o.leading && o != n {
					s.dualNodes = append(s.dualNodes, o.id)
				}
			}
		}
		s.dualNodes = append(s.dualNodes, n.id)
	}
	if f := s.pending; f != nil {
		f.To = n.id
		f.FailoverMS = ms(s.now - time.Duration(f.AtMS*1e6))
		f.LeaderlessMS = ms(s.leaderless - s.pendingLL)
		s.res.Failovers = append(s.res.Failovers, *f)
		s.pending = nil
	}
	n.fenceGen++
	s.mark(n)
	if s.trace != nil {
		s.tracef(n, "STARTED leading term=%d", term)
	}
	s.fenceSend(n)
}

func (s *sim) endLeadership(n *node, reason string) {
	s.acct()
	n.leading = false
	n.fenceGen++
	s.believers--
	s.res.Transitions++
	if s.believers == 1 {
		s.closeDual()
	}
	s.mark(n)
	if s.trace != nil {
		s.tracef(n, "STOPPED leading: %s", reason)
	}
	cause, at := string(n.fault), n.faultAt
	if cause == "" {
		at = s.now
		switch reason {
		case elector.ReasonConflict.String():
			cause = "conflict"
		default:
			cause = "renew-failed"
		}
	}
	n.fault = ""
	if s.pending != nil {
		return
	}
	f := Failover{Cause: cause, From: n.id, AtMS: ms(at)}
	// Someone already leads (they took over while this one still believed):
	// the failover is over, with no leaderless time.
	for _, o := range s.nodes {
		if o.leading {
			f.To = o.id
			f.FailoverMS = ms(max(0, o.leadStart-at))
			s.res.Failovers = append(s.res.Failovers, f)
			return
		}
	}
	s.pending, s.pendingLL = &f, s.leaderless
}

func (s *sim) closeDual() {
	s.res.Violations = append(s.res.Violations, Violation{Kind: "dual_leadership", AtMS: ms(s.dualStart), UntilMS: ms(s.now),
		Nodes: slices.Clone(s.dualNodes)})
	s.dualNodes = nil
}

// finish closes what is still open at the end of the run and computes the
// summary figures.
func (s *sim) finish() {
	s.acct()
	if s.believers >= 2 {
		s.closeDual()
	}
	// A faulted leader that still believes it leads at the end (a long
	// pause) was replaced if another node started leading after the fault.
	for _, n := range s.nodes {
		if !n.leading || n.fault == "" || s.pending != nil {
			continue
		}
		for _, o := range s.nodes {
			if o != n && o.leading && o.leadStart >= n.faultAt {
				s.res.Failovers = append(s.res.Failovers, Failover{Cause: string(n.fault), From: n.id, To: o.id,
					AtMS: ms(n.faultAt), FailoverMS: ms(o.leadStart - n.faultAt)})
				break
			}
		}
	}
	if f := s.pending; f != nil {
		f.Unfinished = true
		f.FailoverMS = ms(s.now - time.Duration(f.AtMS*1e6))
		f.LeaderlessMS = ms(s.leaderless - s.pendingLL)
		s.res.Failovers = append(s.res.Failovers, *f)
	}
	r := &s.res
	r.SimSeconds = s.sc.Duration.Seconds()
	r.LeaderlessMSTotal = ms(s.leaderless)
	r.DualLeaderMS = ms(s.dual)
	r.RequestsPerSec = math.Round(float64(r.Requests.total())/r.SimSeconds*1000) / 1000
	r.FailoverMS = percentiles(r.Failovers)
	if r.Failovers == nil {
		r.Failovers = []Failover{}
	}
	if r.Violations == nil {
		r.Violations = []Violation{}
	}
	slices.SortStableFunc(r.Violations, func(a, b Violation) int {
		switch {
		case a.AtMS < b.AtMS:
			return -1
		case a.AtMS > b.AtMS:
			return 1
		}
		return 0
	})
	r.Timeline = s.timeline
}

func percentiles(fs []Failover) Percentiles {
	var v []float64
	for _, f := range fs {
		if !f.Unfinished {
			v = append(v, f.FailoverMS)
		}
	}
	return percentilesOf(v)
}

func percentilesOf(v []float64) Percentiles {
	if len(v) == 0 {
		return Percentiles{}
	}
	slices.Sort(v)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(v)))) - 1
		return v[max(0, min(i, len(v)-1))]
	}
	return Percentiles{N: len(v), P50: rank(0.5), P99: rank(0.99), Max: v[len(v)-1]}
}

// Aggregate summarises runs over several seeds.
type Aggregate struct {
	Runs              int          `json:"runs"`
	Seeds             [2]uint64    `json:"seeds"` // first and last
	UnsafeSeeds       []uint64     `json:"unsafe_seeds"`
	Failovers         int          `json:"failovers"`
	FailoverMS        Percentiles  `json:"failover_ms"`
	LeaderlessMSTotal float64      `json:"leaderless_ms_total"`
	DualLeaderMS      float64      `json:"dual_leader_ms"`
	FencedWrites      FencedWrites `json:"fenced_writes"`
	Requests          Requests     `json:"requests"`
	RequestsPerSec    float64      `json:"requests_per_sec"`
	Events            int64        `json:"events"`
}

// Summarize aggregates runs (in seed order).
func Summarize(runs []*Result) Aggregate {
	a := Aggregate{Runs: len(runs), UnsafeSeeds: []uint64{}}
	if len(runs) == 0 {
		return a
	}
	a.Seeds = [2]uint64{runs[0].Seed, runs[len(runs)-1].Seed}
	var all []float64
	var secs float64
	for _, r := range runs {
		if !r.Safe() {
			a.UnsafeSeeds = append(a.UnsafeSeeds, r.Seed)
		}
		for _, f := range r.Failovers {
			a.Failovers++
			if !f.Unfinished {
				all = append(all, f.FailoverMS)
			}
		}
		a.LeaderlessMSTotal += r.LeaderlessMSTotal
		a.DualLeaderMS += r.DualLeaderMS
		a.FencedWrites.Accepted += r.FencedWrites.Accepted
		a.FencedWrites.Rejected += r.FencedWrites.Rejected
		a.FencedWrites.StaleAccepted += r.FencedWrites.StaleAccepted
		a.Requests.Get += r.Requests.Get
		a.Requests.Create += r.Requests.Create
		a.Requests.Update += r.Requests.Update
		a.Requests.Watch += r.Requests.Watch
		a.Events += r.Events
		secs += r.SimSeconds
	}
	a.FailoverMS = percentilesOf(all)
	a.LeaderlessMSTotal = math.Round(a.LeaderlessMSTotal*1000) / 1000
	a.DualLeaderMS = math.Round(a.DualLeaderMS*1000) / 1000
	a.RequestsPerSec = math.Round(float64(a.Requests.total())/secs*1000) / 1000
	return a
}

// WriteText writes a human summary of one run.
func (r *Result) WriteText(w io.Writer) {
	fmt.Fprintf(w, "scenario %s, seed %d: %.0fs simulated, %d events\n", r.Scenario, r.Seed, r.SimSeconds, r.Events)
	if len(r.Failovers) == 0 {
		fmt.Fprintln(w, "failovers: none")
	} else {
		fmt.Fprintf(w, "failovers: %d (p50 %s, p99 %s, max %s)\n", len(r.Failovers),
			fmtMS(r.FailoverMS.P50), fmtMS(r.FailoverMS.P99), fmtMS(r.FailoverMS.Max))
		for _, f := range r.Failovers {
			to := f.To
			if f.Unfinished {
				to = "nobody by the end"
			}
			fmt.Fprintf(w, "  %10s  %-12s %s -> %s in %s (leaderless %s)\n", fmtMS(f.AtMS), f.Cause, f.From, to,
				fmtMS(f.FailoverMS), fmtMS(f.LeaderlessMS))
		}
	}
	fmt.Fprintf(w, "leaderless: %s in total; dual leadership: %s\n", fmtMS(r.LeaderlessMSTotal), fmtMS(r.DualLeaderMS))
	fmt.Fprintf(w, "fenced writes: %d accepted, %d rejected, %d stale accepted\n",
		r.FencedWrites.Accepted, r.FencedWrites.Rejected, r.FencedWrites.StaleAccepted)
	q := r.Requests
	per := func(n int64) float64 { return float64(n) / r.SimSeconds }
	fmt.Fprintf(w, "requests: %.3f/s (get %.3f/s, create %.3f/s, update %.3f/s, watch %.3f/s); %d transitions\n",
		r.RequestsPerSec, per(q.Get), per(q.Create), per(q.Update), per(q.Watch), r.Transitions)
	if r.Safe() {
		fmt.Fprintln(w, "safety: no violation")
		return
	}
	fmt.Fprintf(w, "SAFETY VIOLATIONS: %d (seed %d)\n", len(r.Violations), r.Seed)
	for i, v := range r.Violations {
		if i == 10 {
			fmt.Fprintf(w, "  ... %d more\n", len(r.Violations)-10)
			break
		}
		if v.Kind == "dual_leadership" {
			fmt.Fprintf(w, "  %10s  two leaders until %s: %s\n", fmtMS(v.AtMS), fmtMS(v.UntilMS), strings.Join(v.Nodes, ", "))
		} else {
			fmt.Fprintf(w, "  %10s  stale write accepted from %s (term %d) while %s holds the lock\n", fmtMS(v.AtMS), v.Nodes[0], v.Term, v.Nodes[1])
		}
	}
}

// WriteText writes a human summary of an aggregate.
func (a Aggregate) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%d runs, seeds %d..%d: %d failovers (p50 %s, p99 %s, max %s)\n", a.Runs, a.Seeds[0], a.Seeds[1],
		a.Failovers, fmtMS(a.FailoverMS.P50), fmtMS(a.FailoverMS.P99), fmtMS(a.FailoverMS.Max))
	fmt.Fprintf(w, "summed over the runs: leaderless %s, dual leadership %s, fenced writes %d accepted / %d rejected / %d stale accepted; %.3f requests/s on average\n",
		fmtMS(a.LeaderlessMSTotal), fmtMS(a.DualLeaderMS), a.FencedWrites.Accepted, a.FencedWrites.Rejected,
		a.FencedWrites.StaleAccepted, a.RequestsPerSec)
	if len(a.UnsafeSeeds) == 0 {
		fmt.Fprintln(w, "safety: no violation in any run")
	} else {
		fmt.Fprintf(w, "SAFETY VIOLATIONS in %d runs, seeds %v\n", len(a.UnsafeSeeds), a.UnsafeSeeds)
	}
}

func fmtMS(v float64) string {
	d := time.Duration(v * 1e6)
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}
