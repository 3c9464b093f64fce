// Package bench turns lease parameters into failover, load and safety
// figures: a sweep runs the simulator over a grid of LeaseDuration,
// RenewDeadline, RetryPeriod, candidate count and watch/poll, under a mix
// of faults and many seeds, and reports per combination what a user
// choosing the parameters needs; Recommend ranks the combinations that
// meet the user's constraints, and never one the sweep found unsafe. The
// same options and seeds give the same numbers.
package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/leasehold-go/leasehold/sim"
	"gopkg.in/yaml.v3"
)

// Frac is a duration given either absolutely or as a fraction of the
// lease duration (0.66 means 0.66 × LeaseDuration).
type Frac struct {
	Abs time.Duration
	Of  float64 // > 0: a fraction of the lease duration
}

// For returns the duration for lease duration ld (a fraction rounded to
// the millisecond).
func (f Frac) For(ld time.Duration) time.Duration {
	if f.Of > 0 {
		return time.Duration(math.Round(f.Of*float64(ld)/float64(time.Millisecond))) * time.Millisecond
	}
	return f.Abs
}

func (f Frac) String() string {
	if f.Of > 0 {
		return fmt.Sprintf("%g", f.Of)
	}
	return f.Abs.String()
}

// Grid is the parameter grid of a sweep: every combination of its values.
type Grid struct {
	LeaseDurations []time.Duration
	RenewDeadlines []Frac
	RetryPeriods   []Frac
	Nodes          []int
	Watch          []bool
}

// Faults a sweep can mix in.
const (
	FaultCrash     = "crash"     // a node dies without releasing and comes back (as a new identity)
	FaultStop      = "stop"      // a graceful stop: the leader releases
	FaultPartition = "partition" // a node is cut off from the store
	FaultPause     = "pause"     // a process pause (GC, SIGSTOP, a frozen VM)
	FaultOutage    = "outage"    // the store answers nobody
	FaultSkew      = "skew"      // clocks run at different rates (Options.Skew)
	FaultLoss      = "loss"      // messages are lost (Options.Loss)
)

// AllFaults lists the fault names Options.Faults accepts.
var AllFaults = []string{FaultCrash, FaultStop, FaultPartition, FaultPause, FaultOutage, FaultSkew, FaultLoss}

// randomKind maps a fault to the simulator's random fault kind.
var randomKind = map[string]string{
	FaultCrash: "crash", FaultStop: "stop", FaultPartition: "partition", FaultPause: "pause", FaultOutage: "store_down",
}

// Options says what to sweep.
type Options struct {
	Grid Grid
	// Faults is the mix (AllFaults); the random ones are drawn about every
	// Every, each lasting up to MaxDown, half of them aimed at the leader.
	Faults  []string
	Every   time.Duration
	MaxDown time.Duration
	// Skew is the ratio of the fastest to the slowest clock with "skew";
	// Loss the probability a message is lost with "loss".
	Skew float64
	Loss float64
	// Store is a store profile of the simulator (etcd, kube, consul,
	// memory), or "" for its default network.
	Store string
	// Base is an optional base scenario (YAML); the sweep sets its name,
	// nodes, duration, seed, lease, watch, store and random_faults.
	Base []byte
	// Seeds runs seeds Seed..Seed+Seeds-1 of Duration each per
	// combination.
	Seeds    int
	Seed     uint64
	Duration time.Duration
	// Workers runs that many simulations at once (0: GOMAXPROCS).
	Workers int
	// Progress, if set, is called after each finished run.
	Progress func(done, total int)
}

// DefaultOptions sweeps client-go's defaults and two neighbours under
// crashes, graceful stops, partitions and pauses.
func DefaultOptions() Options {
	return Options{
		Grid: Grid{
			LeaseDurations: []time.Duration{5 * time.Second, 15 * time.Second, 30 * time.Second},
			RenewDeadlines: []Frac{{Of: 2.0 / 3}},
			RetryPeriods:   []Frac{{Of: 2.0 / 15}},
			Nodes:          []int{3},
			Watch:          []bool{true},
		},
		Faults:   []string{FaultCrash, FaultStop, FaultPartition, FaultPause},
		Every:    90 * time.Second,
		MaxDown:  10 * time.Second,
		Skew:     1.05,
		Loss:     0.05,
		Seeds:    200,
		Seed:     1,
		Duration: time.Hour,
	}
}

// Params is one combination of the grid.
type Params struct {
	LeaseDuration time.Duration `json:"-"`
	RenewDeadline time.Duration `json:"-"`
	RetryPeriod   time.Duration `json:"-"`
	Nodes         int           `json:"nodes"`
	Watch         bool          `json:"watch"`
	// The durations as text (15s), for JSON.
	LeaseDurationText Duration `json:"lease_duration"`
	RenewDeadlineText Duration `json:"renew_deadline"`
	RetryPeriodText   Duration `json:"retry_period"`
}

func (p Params) String() string {
	w := "watch"
	if !p.Watch {
		w = "poll"
	}
	return fmt.Sprintf("%v/%v/%v n=%d %s", p.LeaseDuration, p.RenewDeadline, p.RetryPeriod, p.Nodes, w)
}

// Stat is a distribution in milliseconds (nearest rank).
type Stat struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func statOf(p sim.Percentiles) Stat {
	return Stat{N: p.N, P50: p.P50, P90: p.P90, P99: p.P99, Max: p.Max}
}

// Point is what a sweep measured for one combination.
type Point struct {
	Params
	// CrashFailover is from a leader's crash to the next leader's start;
	// CrashLeaderless the part of it with nobody believing it leads.
	CrashFailover   Stat `json:"crash_failover"`
	CrashLeaderless Stat `json:"crash_leaderless"`
	// Handoff is a graceful stop of the leader to the next leader's start.
	Handoff Stat `json:"handoff"`
	// ByCause has every cause's failover distribution (crash, stop,
	// partition, pause, store_down, renew-failed, ...).
	ByCause map[string]Stat `json:"by_cause"`
	// LeaderlessShare is the share of the simulated time with no leader.
	LeaderlessShare float64 `json:"leaderless_share"`
	// DualLeaderMS is the true time with two nodes believing they lead,
	// summed over the seeds; UnsafeSeeds how many seeds had any, or a
	// stale write accepted.
	DualLeaderMS float64 `json:"dual_leader_ms"`
	UnsafeSeeds  int     `json:"unsafe_seeds"`
	// UnsafeCauses splits the unsafe seeds by the kind of violation and
	// the fault that hit the older leader before it (AttributeViolation):
	// what a recommendation names when it rejects the combination.
	UnsafeCauses []UnsafeCause `json:"unsafe_causes,omitempty"`
	// CrashFailoverP99CI is the 95% confidence interval of the crash
	// failover's p99 (order statistics of the failovers of all seeds): two
	// combinations whose intervals overlap are equally fast within the
	// noise.
	CrashFailoverP99CI Range `json:"crash_failover_p99_ci_ms"`
	// RequestsPerSec is every candidate's requests to the store together;
	// LeaderRequestsPerSec the leader's renewals (one per retry period);
	// FollowerRequestsPerSec the rest, per follower.
	RequestsPerSec         float64 `json:"requests_per_sec"`
	LeaderRequestsPerSec   float64 `json:"leader_requests_per_sec"`
	FollowerRequestsPerSec float64 `json:"follower_requests_per_sec"`
	// RequestsPerSecSE is the standard error of RequestsPerSec (the spread
	// of the seeds' own rates over √seeds).
	RequestsPerSecSE float64 `json:"requests_per_sec_se"`
	// The tolerances, from the timing rule, and what simulating just
	// inside and just beyond each found (unsafe seeds; for the outage, seeds
	// whose leader lost its leadership).
	Tolerance Tolerance `json:"tolerance"`
	Runs      int       `json:"runs"`
}

// UnsafeCause is how many seeds of a combination had a violation of one
// kind (dual_leadership, stale_write_accepted, repeated_term, ...) after
// one fault (crash, partition, pause, store_down, ...; renew-failed or
// conflict when no fault hit the leader; "" when no failover explains it).
type UnsafeCause struct {
	Kind  string `json:"kind"`
	Fault string `json:"fault"`
	Seeds int    `json:"seeds"`
}

// Range is an interval in milliseconds.
type Range struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// Tolerance is how much clock-rate skew, process pause and store outage a
// combination tolerates: the timing rule's bound, confirmed by simulation.
type Tolerance struct {
	// Skew is LeaseDuration / RenewDeadline: a leader whose clock runs
	// slower than a follower's by less than that stops before the
	// follower may take over.
	Skew float64 `json:"skew"`
	// Pause is LeaseDuration - RenewDeadline: a leader paused for less
	// (even right after renewals started failing) never overlaps the next.
	Pause Duration `json:"pause"`
	// Outage is RenewDeadline - 2 × RetryPeriod: a store outage shorter
	// than that ends before the leader's lease does, at any phase of its
	// renewals, so it keeps leading.
	Outage Duration `json:"outage"`
	// The simulated checks: seeds with a violation (skew, pause) or a lost
	// leadership (outage) at 0.95 × and 1.1 × the bound (pause beyond:
	// 1.1 × (LeaseDuration - RetryPeriod), the bound with renewals going
	// well). Inside must be 0.
	SkewInside   int  `json:"skew_inside_unsafe"`
	SkewBeyond   int  `json:"skew_beyond_unsafe"`
	PauseInside  int  `json:"pause_inside_unsafe"`
	PauseBeyond  int  `json:"pause_beyond_unsafe"`
	OutageInside int  `json:"outage_inside_lost"`
	OutageBeyond int  `json:"outage_beyond_lost"`
	CheckSeeds   int  `json:"check_seeds"`
	Confirmed    bool `json:"confirmed"`
}

// Result is a whole sweep.
type Result struct {
	Faults   []string `json:"faults"`
	Store    string   `json:"store,omitempty"`
	Seeds    int      `json:"seeds"`
	Seed     uint64   `json:"seed"`
	Duration Duration `json:"duration"`
	Points   []Point  `json:"points"`
}

// combos lists the grid's combinations in a fixed order; invalid ones (the
// timing rule refuses them) are skipped and named in skipped.
func (g Grid) combos() (out []Params, skipped []string) {
	for _, ld := range g.LeaseDurations {
		for _, rd := range g.RenewDeadlines {
			for _, rp := range g.RetryPeriods {
				for _, n := range g.Nodes {
					for _, w := range g.Watch {
						p := Params{LeaseDuration: ld, RenewDeadline: rd.For(ld), RetryPeriod: rp.For(ld), Nodes: n, Watch: w}
						p.LeaseDurationText, p.RenewDeadlineText, p.RetryPeriodText = Duration(p.LeaseDuration), Duration(p.RenewDeadline), Duration(p.RetryPeriod)
						if err := p.check(); err != nil {
							skipped = append(skipped, fmt.Sprintf("%v: %v", p, err))
							continue
						}
						out = append(out, p)
					}
				}
			}
		}
	}
	return out, skipped
}

// check applies the elector's timing rule (as the simulator's parser does).
func (p Params) check() error {
	switch {
	case p.Nodes < 2:
		return fmt.Errorf("nodes (%d) must be at least 2", p.Nodes)
	case p.RetryPeriod <= 0:
		return fmt.Errorf("retry period (%v) must be positive", p.RetryPeriod)
	case float64(p.RenewDeadline) <= 1.2*float64(p.RetryPeriod):
		return fmt.Errorf("renew deadline (%v) must be greater than 1.2 × retry period (%v)", p.RenewDeadline, p.RetryPeriod)
	case p.LeaseDuration <= p.RenewDeadline:
		return fmt.Errorf("lease duration (%v) must be greater than renew deadline (%v)", p.LeaseDuration, p.RenewDeadline)
	}
	return nil
}

// ErrNoCombination means the grid has no valid combination.
var ErrNoCombination = errors.New("no valid combination in the grid")

// Validate checks the options before anything runs; errors name the option.
func (o Options) Validate() error {
	g := o.Grid
	switch {
	case len(g.LeaseDurations) == 0 || len(g.RenewDeadlines) == 0 || len(g.RetryPeriods) == 0 || len(g.Nodes) == 0 || len(g.Watch) == 0:
		return errors.New("the grid needs at least one value of each parameter")
	case o.Seeds < 1:
		return fmt.Errorf("seeds (%d) must be at least 1", o.Seeds)
	case o.Duration <= 0:
		return fmt.Errorf("duration (%v) must be positive", o.Duration)
	case len(o.Faults) == 0:
		return errors.New("faults: name at least one")
	}
	random := 0
	for _, f := range o.Faults {
		if !slices.Contains(AllFaults, f) {
			return fmt.Errorf("faults: unknown fault %q (want %s)", f, strings.Join(AllFaults, ", "))
		}
		if randomKind[f] != "" {
			random++
		}
	}
	if random > 0 && (o.Every <= 0 || o.MaxDown <= 0) {
		return fmt.Errorf("every (%v) and max down (%v) must be positive", o.Every, o.MaxDown)
	}
	if slices.Contains(o.Faults, FaultSkew) && !(o.Skew >= 1 && o.Skew < 10) {
		return fmt.Errorf("skew (%g) must be from 1 to 10", o.Skew)
	}
	if slices.Contains(o.Faults, FaultLoss) && !(o.Loss >= 0 && o.Loss < 1) {
		return fmt.Errorf("loss (%g) must be from 0 to 1", o.Loss)
	}
	for _, ld := range g.LeaseDurations {
		if ld <= 0 {
			return fmt.Errorf("lease duration (%v) must be positive", ld)
		}
	}
	if combos, skipped := g.combos(); len(combos) == 0 {
		return fmt.Errorf("%w: %s", ErrNoCombination, strings.Join(skipped, "; "))
	}
	return nil
}

// Skipped lists the grid's combinations the timing rule refuses, with why.
func (o Options) Skipped() []string {
	_, s := o.Grid.combos()
	return s
}

// job is one simulation of a sweep: a run of a combination's main
// scenario, or of one of its tolerance checks.
type job struct {
	point int
	kind  string // "main", or a check: skew-inside, ...
	sc    *sim.Scenario
	seed  uint64
}

// Run sweeps: every combination × every seed, on Workers goroutines. When
// ctx is done no more runs start, and Run returns ctx's error once the
// runs under way are over (a run takes milliseconds).
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	combos, _ := o.Grid.combos()
	checkSeeds := min(o.Seeds, 20)
	var jobs []job
	for i, p := range combos {
		main, err := o.scenario(p)
		if err != nil {
			return nil, err
		}
		for s := range o.Seeds {
			jobs = append(jobs, job{i, "main", main, o.Seed + uint64(s)})
		}
		for _, c := range checks(p) {
			sc, err := parse(c.yaml)
			if err != nil {
				return nil, fmt.Errorf("%v: %s check: %w", p, c.kind, err)
			}
			for s := range checkSeeds {
				jobs = append(jobs, job{i, c.kind, sc, o.Seed + uint64(s)})
			}
		}
	}
	sums := make([]sim.Summary, len(combos))
	// What the ranking's noise and the reasons need, by point and seed
	// (kept by seed so that the order the runs finish in changes nothing).
	seeds := make([][]seedFigures, len(combos))
	for i := range seeds {
		seeds[i] = make([]seedFigures, o.Seeds)
	}
	counts := make([]map[string]int, len(combos))
	for i := range counts {
		counts[i] = map[string]int{}
	}
	var errs []error
	finished := 0
	sim.RunMany(ctx, len(jobs), o.Workers, func(i int) (*sim.Scenario, sim.Options) {
		return jobs[i].sc, sim.Options{Seed: jobs[i].seed}
	}, func(i int, r *sim.Result, err error) {
		j := jobs[i]
		finished++
		if o.Progress != nil {
			o.Progress(finished, len(jobs))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%v seed %d (%s): %w", combos[j.point], j.seed, j.kind, err))
			return
		}
		if j.kind == "main" {
			sums[j.point].Add(r)
			seeds[j.point][j.seed-o.Seed] = figuresOf(r)
			return
		}
		bad := !r.Safe()
		if strings.HasPrefix(j.kind, "outage") {
			bad = len(r.Failovers) > 0
		}
		if bad {
			counts[j.point][j.kind]++
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &Result{Faults: o.Faults, Store: o.Store, Seeds: o.Seeds, Seed: o.Seed, Duration: Duration(o.Duration)}
	for i, p := range combos {
		pt := point(p, sums[i].Aggregate(), counts[i], checkSeeds, o.Duration)
		pt.addSeedFigures(seeds[i])
		res.Points = append(res.Points, pt)
	}
	return res, nil
}

// point makes a Point from a combination's aggregate and checks.
func point(p Params, a sim.Aggregate, bad map[string]int, checkSeeds int, d time.Duration) Point {
	pt := Point{Params: p, ByCause: map[string]Stat{}, Runs: a.Runs}
	for c, st := range a.ByCause {
		pt.ByCause[c] = statOf(st.FailoverMS)
	}
	if c, ok := a.ByCause["crash"]; ok {
		pt.CrashFailover, pt.CrashLeaderless = statOf(c.FailoverMS), statOf(c.LeaderlessMS)
	}
	if c, ok := a.ByCause["stop"]; ok {
		pt.Handoff = statOf(c.FailoverMS)
	}
	total := float64(a.Runs) * float64(d.Milliseconds())
	if total > 0 {
		pt.LeaderlessShare = round(a.LeaderlessMSTotal/total, 6)
	}
	pt.DualLeaderMS = a.DualLeaderMS
	pt.UnsafeSeeds = len(a.UnsafeSeeds)
	pt.RequestsPerSec = a.RequestsPerSec
	pt.LeaderRequestsPerSec = round(1/p.RetryPeriod.Seconds(), 3)
	pt.FollowerRequestsPerSec = round(max(0, a.RequestsPerSec-pt.LeaderRequestsPerSec)/float64(p.Nodes-1), 3)
	t := Tolerance{
		Skew:       round(float64(p.LeaseDuration)/float64(p.RenewDeadline), 3),
		Pause:      Duration(p.LeaseDuration - p.RenewDeadline),
		Outage:     Duration(max(0, p.RenewDeadline-2*p.RetryPeriod)),
		SkewInside: bad["skew-inside"], SkewBeyond: bad["skew-beyond"],
		PauseInside: bad["pause-inside"], PauseBeyond: bad["pause-beyond"],
		OutageInside: bad["outage-inside"], OutageBeyond: bad["outage-beyond"],
		CheckSeeds: checkSeeds,
	}
	t.Confirmed = t.SkewInside == 0 && t.PauseInside == 0 && t.OutageInside == 0
	pt.Tolerance = t
	return pt
}

// seedFigures is what one seed's main run adds beyond the aggregate.
type seedFigures struct {
	crash       []float64 // crash failovers (ms), finished ones
	requestsSec float64
	causes      []UnsafeCause // one per (kind, fault), Seeds 1
}

func figuresOf(r *sim.Result) seedFigures {
	var f seedFigures
	for _, fo := range r.Failovers {
		if fo.Cause == "crash" && !fo.Unfinished {
			f.crash = append(f.crash, fo.FailoverMS)
		}
	}
	if r.SimSeconds > 0 {
		q := r.Requests
		f.requestsSec = float64(q.Get+q.Create+q.Update+q.Watch) / r.SimSeconds
	}
	for _, v := range r.Violations {
		c := UnsafeCause{Kind: v.Kind, Fault: AttributeViolation(r, v), Seeds: 1}
		if !slices.Contains(f.causes, c) {
			f.causes = append(f.causes, c)
		}
	}
	return f
}

// AttributeViolation names the fault behind a violation: the cause of the
// failover from one of the violation's earlier leaders (every node it
// names but the last: the overlapped leader, the stale writer, the earlier
// term's holder) to one of its nodes that began at or before it, the
// latest such. Failover causes are the faults that hit the leader (crash,
// partition, pause, stop, store_down, ...) or, without one, why it stepped
// down (renew-failed, conflict). "" when no failover matches.
func AttributeViolation(r *sim.Result, v sim.Violation) string {
	earlier := v.Nodes
	if len(earlier) > 1 {
		earlier = earlier[:len(earlier)-1]
	}
	cause, at := "", math.Inf(-1)
	for _, f := range r.Failovers {
		if f.AtMS <= v.AtMS && f.AtMS > at && slices.Contains(earlier, f.From) && slices.Contains(v.Nodes, f.To) {
			cause, at = f.Cause, f.AtMS
		}
	}
	return cause
}

// addSeedFigures sets the figures made of every seed's own: the crash
// failover p99's confidence interval, the requests' standard error, the
// unsafe seeds by cause.
func (pt *Point) addSeedFigures(seeds []seedFigures) {
	var crash, rates []float64
	causes := map[UnsafeCause]int{}
	for _, f := range seeds {
		crash = append(crash, f.crash...)
		rates = append(rates, f.requestsSec)
		for _, c := range f.causes {
			causes[c]++
		}
	}
	slices.Sort(crash)
	pt.CrashFailoverP99CI = quantileCI(crash, 0.99)
	pt.RequestsPerSecSE = round(standardError(rates), 6)
	for c, n := range causes {
		c.Seeds = n
		pt.UnsafeCauses = append(pt.UnsafeCauses, c)
	}
	slices.SortFunc(pt.UnsafeCauses, func(a, b UnsafeCause) int {
		if a.Seeds != b.Seeds {
			return b.Seeds - a.Seeds
		}
		if a.Kind != b.Kind {
			return strings.Compare(a.Kind, b.Kind)
		}
		return strings.Compare(a.Fault, b.Fault)
	})
}

// quantileCI is the 95% confidence interval of the p-quantile of sorted
// samples, free of any assumption on their distribution: the order
// statistics at ranks n·p ∓ 1.96·√(n·p·(1−p)), clamped to the samples.
// With no samples it is [0, 0].
func quantileCI(sorted []float64, p float64) Range {
	n := float64(len(sorted))
	if n == 0 {
		return Range{}
	}
	h := 1.96 * math.Sqrt(n*p*(1-p))
	lo := int(math.Max(1, math.Floor(n*p-h)))
	hi := int(math.Min(n, math.Ceil(n*p+h)))
	return Range{Low: sorted[lo-1], High: sorted[max(hi, lo)-1]}
}

// standardError is the standard error of the mean of vs (0 for fewer than
// two).
func standardError(vs []float64) float64 {
	if len(vs) < 2 {
		return 0
	}
	var sum float64
	for _, v := range vs {
		sum += v
	}
	mean := sum / float64(len(vs))
	var ss float64
	for _, v := range vs {
		ss += (v - mean) * (v - mean)
	}
	return math.Sqrt(ss/float64(len(vs)-1)) / math.Sqrt(float64(len(vs)))
}

func round(v float64, digits int) float64 {
	s := math.Pow(10, float64(digits))
	return math.Round(v*s) / s
}

// scenario is a combination's main scenario: the base (if any) with the
// sweep's keys set.
func (o Options) scenario(p Params) (*sim.Scenario, error) {
	doc := &yaml.Node{Kind: yaml.MappingNode}
	if len(o.Base) > 0 {
		var root yaml.Node
		if err := yaml.Unmarshal(o.Base, &root); err != nil {
			return nil, fmt.Errorf("base scenario: %w", err)
		}
		if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
			return nil, errors.New("base scenario: want a mapping of keys")
		}
		doc = root.Content[0]
	}
	var setErr error
	set := func(key, value string) {
		var v yaml.Node
		if err := yaml.Unmarshal([]byte(value), &v); err != nil || len(v.Content) != 1 {
			setErr = errors.Join(setErr, fmt.Errorf("%s: %q: %v", key, value, err))
			return
		}
		for i := 0; i+1 < len(doc.Content); i += 2 {
			if doc.Content[i].Value == key {
				doc.Content[i+1] = v.Content[0]
				return
			}
		}
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v.Content[0])
	}
	set("name", "sweep")
	set("nodes", fmt.Sprint(p.Nodes))
	set("duration", o.Duration.String())
	set("seed", "1")
	set("lease", leaseYAML(p))
	set("watch", fmt.Sprint(p.Watch))
	if o.Store != "" {
		set("store", o.Store)
	}
	var kinds []string
	for _, f := range o.Faults {
		if k := randomKind[f]; k != "" {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) > 0 {
		set("random_faults", fmt.Sprintf("{every: %v, max_down: %v, kinds: [%s]}", o.Every, o.MaxDown, strings.Join(kinds, ", ")))
	}
	if slices.Contains(o.Faults, FaultLoss) {
		set("network", fmt.Sprintf("{loss: %g}", o.Loss))
	}
	if slices.Contains(o.Faults, FaultSkew) {
		// The slowest and the fastest clock Skew apart, the others true.
		slow, fast := 1/math.Sqrt(o.Skew), math.Sqrt(o.Skew)
		set("clocks", fmt.Sprintf("{n1: {rate: %.6f}, n2: {rate: %.6f}}", slow, fast))
	}
	if setErr != nil {
		return nil, setErr
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return parse(string(out))
}

func leaseYAML(p Params) string {
	return fmt.Sprintf("{duration: %v, renew_deadline: %v, retry_period: %v, release_on_cancel: true}", p.LeaseDuration, p.RenewDeadline, p.RetryPeriod)
}

func parse(text string) (*sim.Scenario, error) {
	sc, err := sim.ParseScenario([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("scenario %q: %w", text, err)
	}
	return sc, nil
}

// check is a short scenario that tests one tolerance of a combination.
type check struct {
	kind string
	yaml string
}

// checks are a combination's tolerance checks: a clock-rate skew, a pause
// of the leader and a store outage, just inside and just beyond the bound.
// The phase of the fault against the leader's renewals is sampled
// (fault_jitter of a retry period).
func checks(p Params) []check {
	ld, rd, rp := p.LeaseDuration, p.RenewDeadline, p.RetryPeriod
	at := max(3*ld, 10*time.Second)
	dur := at + 4*ld + 10*time.Second
	head := func(name string) string {
		return fmt.Sprintf("name: %s\nnodes: %d\nduration: %v\nlease: %s\nwatch: %v\nnetwork: {latency: 2ms, jitter: 1ms}\nfault_jitter: %v\n",
			name, p.Nodes, dur, leaseYAML(p), p.Watch, rp)
	}
	skew := func(name string, ratio float64) check {
		// n1 (the slow clock) leads: the others wait at the start, two
		// leases (past n1's first-read hold and create probation, which
		// the fast clock would otherwise finish first); then it is cut
		// off, and the fast n2 takes over as early as it may.
		slow, fast := 1/math.Sqrt(ratio), math.Sqrt(ratio)
		var b strings.Builder
		b.WriteString(head(name))
		fmt.Fprintf(&b, "start_spread: 0s\nclocks: {n1: {rate: %.6f}, n2: {rate: %.6f}}\nfaults:\n", slow, fast)
		for n := 2; n <= p.Nodes; n++ {
			fmt.Fprintf(&b, "  - {at: 0s, pause: n%d, for: %v}\n", n, 2*ld)
		}
		fmt.Fprintf(&b, "  - {at: %v, partition: [n1], heal_after: %v}\n", at, 3*ld)
		return check{name, b.String()}
	}
	pause := func(name string, d time.Duration) check {
		return check{name, head(name) + fmt.Sprintf("faults:\n  - {at: %v, pause: leader, for: %v}\n", at, d)}
	}
	outage := func(name string, d time.Duration) check {
		return check{name, head(name) + fmt.Sprintf("faults:\n  - {at: %v, store_down: true, for: %v}\n", at, d)}
	}
	bound := float64(ld) / float64(rd)
	out := []check{
		skew("skew-inside", 1+0.95*(bound-1)),
		skew("skew-beyond", 1.1*bound),
		pause("pause-inside", time.Duration(0.95*float64(ld-rd))),
		pause("pause-beyond", time.Duration(1.1*float64(ld-rp))),
	}
	if o := rd - 2*rp; o > 0 {
		out = append(out, outage("outage-inside", time.Duration(0.95*float64(o))), outage("outage-beyond", time.Duration(1.1*float64(rd))))
	}
	return out
}
