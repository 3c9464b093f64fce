package sim

import (
	"fmt"
	"io"
	"maps"
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
	Store             StoreStats   `json:"store,omitzero"`
	// Cron is what happened to the slots, with a cron: block.
	Cron *CronStats `json:"cron,omitempty"`

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
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// FencedWrites counts the writes leaders made to the fenced resource.
// Rejected are the stale ones: a higher term's write was accepted before
// them. StaleAccepted would be stale writes the resource accepted anyway: it
// checks the fence and stays 0.
type FencedWrites struct {
	Accepted      int64 `json:"accepted"`
	Rejected      int64 `json:"rejected"`
	StaleAccepted int64 `json:"stale_accepted"`
	// LateAccepted are accepted writes of a leader already replaced in the
	// store, landing before its successor's first write: harmless.
	LateAccepted int64 `json:"late_accepted"`
}

// StoreStats is what the store saw when it has a service time or stale
// reads: requests served, how many waited in line and how long, and how
// many Gets answered with a record older than the latest.
type StoreStats struct {
	Served      int64   `json:"served"`
	Queued      int64   `json:"queued"`
	WaitMSTotal float64 `json:"wait_ms_total"`
	MaxWaitMS   float64 `json:"max_wait_ms"`
	StaleReads  int64   `json:"stale_reads"`
}

// Requests counts backend calls, by kind (watch = registrations), and
// Total the requests the store serves among them: every Get, Create and
// Update, and a watch registration only where it is a request
// (Scenario.WatchIsRequest, Consul's blocking queries); on etcd and
// Kubernetes a watch rides a stream already open.
type Requests struct {
	Get    int64 `json:"get"`
	Create int64 `json:"create"`
	Update int64 `json:"update"`
	Watch  int64 `json:"watch"`
	Total  int64 `json:"total"`
}

// total is what the store serves as requests, given whether a watch
// registration is one.
func (r Requests) total(watchIsRequest bool) int64 {
	n := r.Get + r.Create + r.Update
	if watchIsRequest {
		n += r.Watch
	}
	return n
}

// Violation is a breach of safety: two nodes believing they lead at once
// (dual_leadership, from AtMS to UntilMS), a stale write the fenced
// resource accepted (stale_write_accepted: the writer, then the node of
// the later leadership that wrote before it with the same term), or a
// leadership that started with a term not higher than every earlier one
// (repeated_term: Term, and EarlierTerm the highest before it; the nodes
// that led with each) — a store that forgot, and clocks apart by more
// than the bound.
type Violation struct {
	Kind        string   `json:"kind"`
	AtMS        float64  `json:"at_ms"`
	UntilMS     float64  `json:"until_ms"`
	Nodes       []string `json:"nodes"`
	Term        int64    `json:"term,omitempty"`
	EarlierTerm int64    `json:"earlier_term,omitempty"` // repeated_term
	Slot        string   `json:"slot,omitempty"`         // duplicated_slot, overlapping_runs: the slot (of the later run)
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
	// A term is a fencing token: no leadership may start with a term an
	// earlier one had, nor with a lower one.
	s.leads++
	n.lseq = s.leads
	if s.leads > 1 && term <= s.topTerm {
		s.res.Violations = append(s.res.Violations, Violation{Kind: "repeated_term", AtMS: ms(s.now), UntilMS: ms(s.now),
			Nodes: []string{s.nodes[s.topBy].id, n.id}, Term: term, EarlierTerm: s.topTerm})
		if s.trace != nil {
			s.tracef(n, "TERM %d NOT NEW: %s led with term %d before", term, s.nodes[s.topBy].id, s.topTerm)
		}
	}
	if s.leads == 1 || term > s.topTerm {
		s.topTerm, s.topBy = term, n.idx
	}
	if s.timeline != nil && s.believers == 0 && s.anyLeader {
		s.timeline.Leaderless = append(s.timeline.Leaderless, Span{From: s.llStart, To: s.now})
	}
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
	n.fenceGen++
	s.mark(n)
	if s.trace != nil {
		s.tracef(n, "STARTED leading term=%d", term)
	}
	s.cronLeadStart(n)
	if s.sc.WorkStart > 0 {
		s.push(event{at: s.now + s.workTime(s.sc.WorkStart), kind: evWorkStarted, node: int32(n.idx), inc: n.inc, gen: n.fenceGen})
		return
	}
	s.workRunning(n)
}

// workRunning: the new leader's work runs. The failover pending ends here
// (its leaderless part counted until now), and the work starts writing to
// the fenced resource.
func (s *sim) workRunning(n *node) {
	if f := s.pending; f != nil {
		s.acct()
		f.To = n.id
		f.FailoverMS = ms(s.now - time.Duration(f.AtMS*1e6))
		f.LeaderlessMS = ms(s.leaderless - s.pendingLL)
		s.res.Failovers = append(s.res.Failovers, *f)
		s.pending = nil
	}
	s.fenceFirst(n)
}

func (s *sim) endLeadership(n *node, reason string) {
	s.acct()
	n.leading = false
	n.fenceGen++
	s.believers--
	if s.believers == 0 {
		s.llStart = s.now
	}
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
	if s.timeline != nil && s.believers == 0 && s.anyLeader {
		s.timeline.Leaderless = append(s.timeline.Leaderless, Span{From: s.llStart, To: s.now})
	}
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
	s.cronFinish()
	r := &s.res
	r.SimSeconds = s.sc.Duration.Seconds()
	r.LeaderlessMSTotal = ms(s.leaderless)
	r.DualLeaderMS = ms(s.dual)
	r.Requests.Total = r.Requests.total(s.sc.WatchIsRequest)
	r.RequestsPerSec = math.Round(float64(r.Requests.Total)/r.SimSeconds*1000) / 1000
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
	return Percentiles{N: len(v), P50: rank(0.5), P90: rank(0.9), P99: rank(0.99), Max: v[len(v)-1]}
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
	// ByCause splits failovers by their cause (crash, stop, partition,
	// pause, renew-failed, conflict): mixing them would hide each.
	ByCause map[string]CauseStats `json:"by_cause"`
	// DualWindowsMS is the distribution of dual-leadership windows.
	DualWindowsMS Percentiles `json:"dual_windows_ms"`
	// ViolationsByKind counts the violations of all runs by kind
	// (dual_leadership, stale_write_accepted, repeated_term, ...).
	ViolationsByKind map[string]int `json:"violations_by_kind,omitempty"`
	// Store sums the runs' store figures (MaxWaitMS: the longest wait).
	Store StoreStats `json:"store,omitzero"`
	// Cron sums the runs' slot figures, with the start delays' percentiles
	// over all of them.
	Cron *CronStats `json:"cron,omitempty"`
}

// CauseStats are the failovers of one cause.
type CauseStats struct {
	Count        int         `json:"count"`
	FailoverMS   Percentiles `json:"failover_ms"`
	LeaderlessMS Percentiles `json:"leaderless_ms"`
}

// Summary folds runs into an Aggregate one at a time, keeping only the
// numbers the percentiles need, so that many runs need no more memory than
// their failover counts (a run's Result can be dropped once added).
type Summary struct {
	a          Aggregate
	secs       float64
	all, duals []float64
	failover   map[string][]float64
	leaderless map[string][]float64
	count      map[string]int
	seen       bool
	cron       cronSummary
}

// Add folds one run in. Runs may come in any order.
func (m *Summary) Add(r *Result) {
	a := &m.a
	if !m.seen {
		m.seen = true
		a.Seeds = [2]uint64{r.Seed, r.Seed}
		m.failover, m.leaderless, m.count = map[string][]float64{}, map[string][]float64{}, map[string]int{}
	}
	a.Runs++
	a.Seeds[0], a.Seeds[1] = min(a.Seeds[0], r.Seed), max(a.Seeds[1], r.Seed)
	if !r.Safe() {
		a.UnsafeSeeds = append(a.UnsafeSeeds, r.Seed)
	}
	for _, f := range r.Failovers {
		a.Failovers++
		m.count[f.Cause]++
		if !f.Unfinished {
			m.all = append(m.all, f.FailoverMS)
			m.failover[f.Cause] = append(m.failover[f.Cause], f.FailoverMS)
			m.leaderless[f.Cause] = append(m.leaderless[f.Cause], f.LeaderlessMS)
		}
	}
	for _, v := range r.Violations {
		if a.ViolationsByKind == nil {
			a.ViolationsByKind = map[string]int{}
		}
		a.ViolationsByKind[v.Kind]++
		if v.Kind == "dual_leadership" {
			m.duals = append(m.duals, v.UntilMS-v.AtMS)
		}
	}
	a.LeaderlessMSTotal += r.LeaderlessMSTotal
	a.DualLeaderMS += r.DualLeaderMS
	a.FencedWrites.Accepted += r.FencedWrites.Accepted
	a.FencedWrites.Rejected += r.FencedWrites.Rejected
	a.FencedWrites.StaleAccepted += r.FencedWrites.StaleAccepted
	a.FencedWrites.LateAccepted += r.FencedWrites.LateAccepted
	a.Requests.Get += r.Requests.Get
	a.Requests.Create += r.Requests.Create
	a.Requests.Update += r.Requests.Update
	a.Requests.Watch += r.Requests.Watch
	a.Requests.Total += r.Requests.Total
	a.Events += r.Events
	a.Store.Served += r.Store.Served
	a.Store.Queued += r.Store.Queued
	a.Store.WaitMSTotal += r.Store.WaitMSTotal
	a.Store.MaxWaitMS = max(a.Store.MaxWaitMS, r.Store.MaxWaitMS)
	a.Store.StaleReads += r.Store.StaleReads
	if r.Cron != nil {
		m.cron.add(r.Cron)
	}
	m.secs += r.SimSeconds
}

// Aggregate returns the summary of the runs added so far.
func (m *Summary) Aggregate() Aggregate {
	a := m.a
	a.UnsafeSeeds = append([]uint64{}, a.UnsafeSeeds...)
	if m.a.ViolationsByKind != nil {
		a.ViolationsByKind = maps.Clone(m.a.ViolationsByKind)
	}
	slices.Sort(a.UnsafeSeeds)
	a.FailoverMS = percentilesOf(append([]float64(nil), m.all...))
	a.DualWindowsMS = percentilesOf(append([]float64(nil), m.duals...))
	a.ByCause = map[string]CauseStats{}
	for cause, n := range m.count {
		a.ByCause[cause] = CauseStats{Count: n,
			FailoverMS:   percentilesOf(append([]float64(nil), m.failover[cause]...)),
			LeaderlessMS: percentilesOf(append([]float64(nil), m.leaderless[cause]...))}
	}
	a.Cron = m.cron.stats()
	a.LeaderlessMSTotal = math.Round(a.LeaderlessMSTotal*1000) / 1000
	a.DualLeaderMS = math.Round(a.DualLeaderMS*1000) / 1000
	if m.secs > 0 {
		a.RequestsPerSec = math.Round(float64(a.Requests.Total)/m.secs*1000) / 1000
	}
	return a
}

// Summarize aggregates runs.
func Summarize(runs []*Result) Aggregate {
	var m Summary
	for _, r := range runs {
		m.Add(r)
	}
	return m.Aggregate()
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
	watch := "watch registrations on open streams, not requests"
	if q.Total > q.Get+q.Create+q.Update {
		watch = "watch, each a request"
	}
	fmt.Fprintf(w, "requests the store serves: %.3f/s (get %.3f/s, create %.3f/s, update %.3f/s; %s %.3f/s); %d transitions\n",
		r.RequestsPerSec, per(q.Get), per(q.Create), per(q.Update), watch, per(q.Watch), r.Transitions)
	if st := r.Store; st != (StoreStats{}) {
		fmt.Fprintf(w, "store: %d requests served, %d waited in line (max %s, %s in all), %d stale reads\n",
			st.Served, st.Queued, fmtMS(st.MaxWaitMS), fmtMS(st.WaitMSTotal), st.StaleReads)
	}
	if r.Cron != nil {
		r.Cron.writeText(w, "")
	}
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
		switch v.Kind {
		case "dual_leadership":
			fmt.Fprintf(w, "  %10s  two leaders until %s: %s\n", fmtMS(v.AtMS), fmtMS(v.UntilMS), strings.Join(v.Nodes, ", "))
		case "duplicated_slot":
			fmt.Fprintf(w, "  %10s  slot %s started again by %s (first run by %s)\n", fmtMS(v.AtMS), v.Slot, v.Nodes[1], v.Nodes[0])
		case "overlapping_runs":
			fmt.Fprintf(w, "  %10s  two runs at once until %s: slot %s on %s while %s still runs\n", fmtMS(v.AtMS), fmtMS(v.UntilMS),
				v.Slot, v.Nodes[1], v.Nodes[0])
		case "repeated_term":
			if v.Term == v.EarlierTerm {
				fmt.Fprintf(w, "  %10s  %s leads with term %d again: %s led with it before\n", fmtMS(v.AtMS), v.Nodes[1], v.Term, v.Nodes[0])
			} else {
				fmt.Fprintf(w, "  %10s  %s leads with term %d, lower than the term %d %s led with before\n", fmtMS(v.AtMS), v.Nodes[1], v.Term,
					v.EarlierTerm, v.Nodes[0])
			}
		default:
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
	causes := make([]string, 0, len(a.ByCause))
	for c := range a.ByCause {
		causes = append(causes, c)
	}
	slices.Sort(causes)
	for _, c := range causes {
		st := a.ByCause[c]
		fmt.Fprintf(w, "  %-12s %6d failovers: p50 %s, p90 %s, p99 %s, max %s; leaderless p50 %s, p99 %s\n", c, st.Count,
			fmtMS(st.FailoverMS.P50), fmtMS(st.FailoverMS.P90), fmtMS(st.FailoverMS.P99), fmtMS(st.FailoverMS.Max),
			fmtMS(st.LeaderlessMS.P50), fmtMS(st.LeaderlessMS.P99))
	}
	if d := a.DualWindowsMS; d.N > 0 {
		fmt.Fprintf(w, "dual-leadership windows: %d (p50 %s, p90 %s, p99 %s, max %s)\n", d.N,
			fmtMS(d.P50), fmtMS(d.P90), fmtMS(d.P99), fmtMS(d.Max))
	}
	if st := a.Store; st != (StoreStats{}) {
		fmt.Fprintf(w, "store, summed over the runs: %d requests served, %d waited in line (max %s, %s in all), %d stale reads\n",
			st.Served, st.Queued, fmtMS(st.MaxWaitMS), fmtMS(st.WaitMSTotal), st.StaleReads)
	}
	if a.Cron != nil {
		a.Cron.writeText(w, "summed over the runs: ")
	}
	if len(a.UnsafeSeeds) == 0 {
		fmt.Fprintln(w, "safety: no violation in any run")
	} else {
		kinds := slices.Sorted(maps.Keys(a.ViolationsByKind))
		var by []string
		for _, k := range kinds {
			by = append(by, fmt.Sprintf("%s %d", k, a.ViolationsByKind[k]))
		}
		fmt.Fprintf(w, "SAFETY VIOLATIONS in %d runs (%s), seeds %s\n", len(a.UnsafeSeeds), strings.Join(by, ", "),
			seedList(a.UnsafeSeeds, shownSeeds))
	}
}

// shownSeeds is how many unsafe seeds the text lists; JSON has them all.
const shownSeeds = 5

// seedList writes the first n seeds and how many more there are.
func seedList(seeds []uint64, n int) string {
	var b strings.Builder
	for i, s := range seeds[:min(n, len(seeds))] {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, s)
	}
	if len(seeds) > n {
		fmt.Fprintf(&b, " and %d more (--json lists them all)", len(seeds)-n)
	}
	return b.String()
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

// writeText writes the slot figures (prefix introduces the first line).
func (c *CronStats) writeText(w io.Writer, prefix string) {
	fmt.Fprintf(w, "cron %q, %s%d slots due: %d run, %d missed (%d claimed but never run), %d pending at the end, %d skipped (overlap)\n",
		c.Schedule, prefix, c.Due, c.Run, c.Missed, c.ClaimedNotRun, c.Pending, c.Skipped)
	fmt.Fprintf(w, "  %d runs started: %d duplicated, %d reruns, %d cut short; %d overlapping runs\n",
		c.Starts, c.Duplicated, c.Reruns, c.CutShort, c.OverlappingRuns)
	for _, d := range []struct {
		what string
		p    Percentiles
	}{{"slot start delay", c.StartDelayMS}, {"after a failover", c.FailoverDelayMS}} {
		if d.p.N == 0 {
			fmt.Fprintf(w, "  %s: none\n", d.what)
			continue
		}
		fmt.Fprintf(w, "  %s: %d slots, p50 %s, p90 %s, p99 %s, max %s\n", d.what, d.p.N,
			fmtMS(d.p.P50), fmtMS(d.p.P90), fmtMS(d.p.P99), fmtMS(d.p.Max))
	}
}
