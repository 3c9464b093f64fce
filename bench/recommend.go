package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Constraints are what a user needs of the parameters; zero means no
// constraint. Safety is not one of them: a combination the sweep found
// unsafe is never recommended.
type Constraints struct {
	// MaxFailover bounds the crash failover's p99.
	MaxFailover time.Duration
	// MaxRequestsPerSec bounds the requests of all candidates together.
	MaxRequestsPerSec float64
	// TolerateRateSkew, ToleratePause and TolerateStoreOutage are the
	// smallest tolerances wanted (Point.Tolerance).
	TolerateRateSkew    float64
	ToleratePause       time.Duration
	TolerateStoreOutage time.Duration
}

// constraintsJSON is Constraints in JSON: durations as text, zeros left
// out.
type constraintsJSON struct {
	MaxFailover         Duration `json:"max_failover,omitzero"`
	MaxRequestsPerSec   float64  `json:"max_requests_per_sec,omitzero"`
	TolerateRateSkew    float64  `json:"tolerate_rate_skew,omitzero"`
	ToleratePause       Duration `json:"tolerate_pause,omitzero"`
	TolerateStoreOutage Duration `json:"tolerate_store_outage,omitzero"`
}

// MarshalJSON writes the constraints set, durations as text (10s).
func (c Constraints) MarshalJSON() ([]byte, error) {
	return json.Marshal(constraintsJSON{Duration(c.MaxFailover), c.MaxRequestsPerSec, c.TolerateRateSkew,
		Duration(c.ToleratePause), Duration(c.TolerateStoreOutage)})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (c *Constraints) UnmarshalJSON(b []byte) error {
	var j constraintsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = Constraints{time.Duration(j.MaxFailover), j.MaxRequestsPerSec, j.TolerateRateSkew,
		time.Duration(j.ToleratePause), time.Duration(j.TolerateStoreOutage)}
	return nil
}

// The constraints a Reason names: the safety of the sweep's own runs, and
// one per field of Constraints, named as leasehold bench sweep's flags.
const (
	ConstraintSafety              = "safety"
	ConstraintMaxFailover         = "max-failover"
	ConstraintMaxRequestsPerSec   = "max-requests-per-sec"
	ConstraintTolerateRateSkew    = "tolerate-rate-skew"
	ConstraintToleratePause       = "tolerate-pause"
	ConstraintTolerateStoreOutage = "tolerate-store-outage"
)

// Reason is one constraint a combination breaks: which, what the sweep
// measured, the limit asked for, and all of it as a sentence.
type Reason struct {
	Constraint string `json:"constraint"`
	Measured   string `json:"measured"`
	Limit      string `json:"limit,omitempty"`
	Text       string `json:"text"`
	// miss is how far off the limit, relative to it (0.5: 50 % beyond);
	// for safety the share of unsafe seeds. It picks the closest
	// combination when none meets every constraint.
	miss float64
}

// String is the reason as the text output writes it: "constraint: text".
func (r Reason) String() string { return r.Constraint + ": " + r.Text }

// Failures lists why p may not be recommended, under the sweep's faults
// (Result.Faults, named in the safety reason): first safety — any seed
// with a violation (dual leadership, a stale write accepted, a repeated
// term), or a violation its own clock-skew or pause check found inside the
// bound it claims — then each constraint it breaks, with the measured
// value. None means p may be recommended.
func (c Constraints) Failures(p Point, faults []string) []Reason {
	var out []Reason
	if p.UnsafeSeeds > 0 {
		under := ""
		if len(faults) > 0 {
			under = " under " + strings.Join(faults, ",")
		}
		text := fmt.Sprintf("%d/%d seeds unsafe%s", p.UnsafeSeeds, p.Runs, under)
		var causes []string
		for i, uc := range p.UnsafeCauses {
			if i == 3 {
				causes = append(causes, fmt.Sprintf("and %d more", len(p.UnsafeCauses)-i))
				break
			}
			causes = append(causes, fmt.Sprintf("%s (%d seed%s)", causeText(uc), uc.Seeds, plural(uc.Seeds)))
		}
		if len(causes) > 0 {
			text += ": " + strings.Join(causes, ", ")
		}
		out = append(out, Reason{Constraint: ConstraintSafety, Measured: fmt.Sprintf("%d/%d seeds unsafe", p.UnsafeSeeds, p.Runs),
			Text: text, miss: float64(p.UnsafeSeeds) / float64(max(p.Runs, 1))})
	}
	t := p.Tolerance
	if t.SkewInside+t.PauseInside > 0 {
		var found []string
		if t.SkewInside > 0 {
			found = append(found, fmt.Sprintf("clock-rate skew %d/%d seeds", t.SkewInside, t.CheckSeeds))
		}
		if t.PauseInside > 0 {
			found = append(found, fmt.Sprintf("pause %d/%d seeds", t.PauseInside, t.CheckSeeds))
		}
		m := strings.Join(found, ", ")
		out = append(out, Reason{Constraint: ConstraintSafety, Measured: m,
			Text: "its own checks found violations inside the bounds it claims: " + m,
			miss: float64(t.SkewInside+t.PauseInside) / float64(max(2*t.CheckSeeds, 1))})
	}
	ms := func(v float64) time.Duration {
		return time.Duration(v * float64(time.Millisecond)).Round(time.Millisecond)
	}
	if c.MaxFailover > 0 {
		switch v := ms(p.CrashFailover.P99); {
		case p.CrashFailover.N == 0:
			out = append(out, Reason{Constraint: ConstraintMaxFailover, Measured: "none", Limit: c.MaxFailover.String(),
				Text: "no crash failover measured to compare with " + c.MaxFailover.String() + " (the faults need crash)", miss: 1})
		case v > c.MaxFailover:
			out = append(out, Reason{Constraint: ConstraintMaxFailover, Measured: v.String(), Limit: c.MaxFailover.String(),
				Text: fmt.Sprintf("crash failover p99 %v > %v", v, c.MaxFailover), miss: float64(v)/float64(c.MaxFailover) - 1})
		}
	}
	if c.MaxRequestsPerSec > 0 && p.RequestsPerSec > c.MaxRequestsPerSec {
		out = append(out, Reason{Constraint: ConstraintMaxRequestsPerSec, Measured: fmt.Sprintf("%.3g", p.RequestsPerSec), Limit: fmt.Sprintf("%g", c.MaxRequestsPerSec),
			Text: fmt.Sprintf("%.3g requests/s > %g", p.RequestsPerSec, c.MaxRequestsPerSec), miss: p.RequestsPerSec/c.MaxRequestsPerSec - 1})
	}
	// below is how far a tolerance v falls short of the limit, relatively.
	below := func(v, limit float64) float64 {
		if v <= 0 {
			return 1e9
		}
		return limit/v - 1
	}
	if c.TolerateRateSkew > 0 && t.Skew < c.TolerateRateSkew {
		out = append(out, Reason{Constraint: ConstraintTolerateRateSkew, Measured: fmt.Sprintf("%.3g", t.Skew), Limit: fmt.Sprintf("%g", c.TolerateRateSkew),
			Text: fmt.Sprintf("tolerates a rate skew of %.3g < %g", t.Skew, c.TolerateRateSkew), miss: below(t.Skew-1, c.TolerateRateSkew-1)})
	}
	if d := time.Duration(t.Pause).Round(time.Millisecond); c.ToleratePause > 0 && time.Duration(t.Pause) < c.ToleratePause {
		out = append(out, Reason{Constraint: ConstraintToleratePause, Measured: d.String(), Limit: c.ToleratePause.String(),
			Text: fmt.Sprintf("tolerates a pause of %v < %v", d, c.ToleratePause), miss: below(float64(t.Pause), float64(c.ToleratePause))})
	}
	if c.TolerateStoreOutage > 0 {
		d := time.Duration(t.Outage).Round(time.Millisecond)
		if time.Duration(t.Outage) < c.TolerateStoreOutage {
			out = append(out, Reason{Constraint: ConstraintTolerateStoreOutage, Measured: d.String(), Limit: c.TolerateStoreOutage.String(),
				Text: fmt.Sprintf("tolerates a store outage of %v < %v", d, c.TolerateStoreOutage), miss: below(float64(t.Outage), float64(c.TolerateStoreOutage))})
		} else if t.OutageInside > 0 {
			m := fmt.Sprintf("%d/%d seeds lost the leadership", t.OutageInside, t.CheckSeeds)
			out = append(out, Reason{Constraint: ConstraintTolerateStoreOutage, Measured: m, Limit: c.TolerateStoreOutage.String(),
				Text: "its store outage check inside the bound it claims (" + d.String() + "): " + m, miss: 1})
		}
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// causeText says an UnsafeCause in words: "dual leadership after a pause".
func causeText(c UnsafeCause) string {
	kind := strings.ReplaceAll(c.Kind, "_", " ")
	switch c.Kind {
	case "stale_write_accepted":
		kind = "a stale write accepted"
	case "repeated_term":
		kind = "a repeated term"
	}
	switch c.Fault {
	case "":
		return kind
	case "renew-failed", "conflict":
		return kind + " with no fault on the leader (" + c.Fault + ")"
	case "store_down":
		return kind + " after a store outage"
	case "stop":
		return kind + " after a graceful stop"
	}
	return kind + " after a " + strings.ReplaceAll(c.Fault, "_", " ")
}

// Rejected is a combination that may not be recommended, and why.
type Rejected struct {
	Point
	Reasons []Reason `json:"reasons"`
}

// Candidate is a combination that meets every constraint, with its tier:
// the combinations of one tier have crash failover p99s within the noise
// of each other (see Recommend).
type Candidate struct {
	Point
	Tier int `json:"tier"`
}

// Recommendation is the outcome of Recommend.
type Recommendation struct {
	Constraints Constraints `json:"constraints"`
	// Recommended is Meet's first, nil when no combination meets every
	// constraint.
	Recommended *Candidate `json:"recommended"`
	// Meet are the combinations that are safe and meet every constraint,
	// best first (Recommend says how they are ranked).
	Meet []Candidate `json:"meet"`
	// Rejected are the others, in the sweep's order, each with its
	// reasons.
	Rejected []Rejected `json:"rejected"`
	// Closest is, when none meets every constraint, the rejected
	// combination closest to it: safe if any is, then the fewest
	// constraints broken, then the smallest misses (relative to the
	// limits) added up.
	Closest *Rejected `json:"closest,omitempty"`
}

// Recommend splits a sweep's points by c: a combination is rejected when
// any seed of the sweep found it unsafe under the sweep's faults, when its
// own clock-skew or pause check found a violation inside the bound it
// claims, or when it breaks a constraint (Constraints.Failures says why).
//
// The others are ranked in tiers. Noise: the crash failover p99 of each is
// known within its 95% confidence interval (Point.CrashFailoverP99CI), its
// requests per second within ± 2 standard errors (Point.RequestsPerSecSE);
// two values whose intervals overlap are equal within the noise. A tier is
// the lowest crash failover p99 left and every combination left whose p99
// is within the noise of it; tiers come fastest first. In a tier, the
// fewest requests per second come first, and among requests within the
// noise of the fewest left, the largest safety margins: the longest pause
// tolerated, then the largest clock-rate skew, then the longest store
// outage. Remaining ties keep the sweep's order. A combination without a
// crash failover measured comes last.
func Recommend(r *Result, c Constraints) Recommendation {
	rec := Recommendation{Constraints: c, Meet: []Candidate{}, Rejected: []Rejected{}}
	var meet []Point
	for _, p := range r.Points {
		if rs := c.Failures(p, r.Faults); len(rs) > 0 {
			rec.Rejected = append(rec.Rejected, Rejected{p, rs})
		} else {
			meet = append(meet, p)
		}
	}
	rec.Meet = rank(meet)
	if len(rec.Meet) > 0 {
		rec.Recommended = &rec.Meet[0]
		return rec
	}
	if len(rec.Rejected) > 0 {
		closest := slices.MinFunc(rec.Rejected, func(a, b Rejected) int {
			return cmp.Or(
				cmpBool(unsafe(a), unsafe(b)),
				cmp.Compare(len(a.Reasons), len(b.Reasons)),
				cmp.Compare(misses(a), misses(b)))
		})
		rec.Closest = &closest
	}
	return rec
}

func unsafe(r Rejected) bool {
	return slices.ContainsFunc(r.Reasons, func(x Reason) bool { return x.Constraint == ConstraintSafety })
}

func misses(r Rejected) float64 {
	var s float64
	for _, x := range r.Reasons {
		s += x.miss
	}
	return s
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// noisy is a measured value and the interval the noise allows.
type noisy struct{ v, lo, hi float64 }

func (a noisy) overlaps(b noisy) bool { return a.lo <= b.hi && b.lo <= a.hi }

func failoverP99(p Point) noisy {
	if p.CrashFailover.N == 0 {
		inf := math.Inf(1)
		return noisy{inf, inf, inf}
	}
	v, ci := p.CrashFailover.P99, p.CrashFailoverP99CI
	if ci == (Range{}) { // not measured (points read from CSV)
		return noisy{v, v, v}
	}
	return noisy{v, min(ci.Low, v), max(ci.High, v)}
}

func requests(p Point) noisy {
	return noisy{p.RequestsPerSec, p.RequestsPerSec - 2*p.RequestsPerSecSE, p.RequestsPerSec + 2*p.RequestsPerSecSE}
}

// groups orders ps by key, lowest first, and splits them into groups:
// the lowest left and every one left whose value is within its noise.
func groups(ps []Point, key func(Point) noisy) [][]Point {
	left := slices.Clone(ps)
	slices.SortStableFunc(left, func(a, b Point) int { return cmp.Compare(key(a).v, key(b).v) })
	var out [][]Point
	for len(left) > 0 {
		lead := key(left[0])
		var in, rest []Point
		for _, p := range left {
			if key(p).overlaps(lead) {
				in = append(in, p)
			} else {
				rest = append(rest, p)
			}
		}
		out = append(out, in)
		left = rest
	}
	return out
}

// rank orders the combinations that meet every constraint (Recommend says
// how).
func rank(ps []Point) []Candidate {
	out := []Candidate{}
	for tier, g := range groups(ps, failoverP99) {
		for _, rg := range groups(g, requests) {
			slices.SortStableFunc(rg, func(a, b Point) int {
				return cmp.Or(
					cmp.Compare(b.Tolerance.Pause, a.Tolerance.Pause),
					cmp.Compare(b.Tolerance.Skew, a.Tolerance.Skew),
					cmp.Compare(b.Tolerance.Outage, a.Tolerance.Outage))
			})
			for _, p := range rg {
				out = append(out, Candidate{p, tier + 1})
			}
		}
	}
	return out
}

// WriteText writes a recommendation: the one recommended (or that none
// meets every constraint, and the closest), the ranking by tiers, then
// every rejected combination with its reasons.
func (rec Recommendation) WriteText(w io.Writer) {
	if rec.Recommended != nil {
		fmt.Fprintf(w, "recommended: %s\n\n", rec.Recommended.Params)
		fmt.Fprintln(w, "safe and meet every constraint, best first (a tier: crash failover p99 within the noise of the tier's fastest;")
		fmt.Fprintln(w, "in a tier: fewest requests, then longest pause, largest skew, longest outage tolerated):")
		tier := 0
		for i, p := range rec.Meet {
			if p.Tier != tier {
				tier = p.Tier
				fmt.Fprintf(w, "  tier %d:\n", tier)
			}
			ci := p.CrashFailoverP99CI
			fmt.Fprintf(w, "    %d. %s: crash failover p99 %s (%s–%s), %.3g ± %.2g requests/s, tolerates skew %.3g, pause %v, outage %v\n", i+1, p.Params,
				fmtMS(p.CrashFailover.P99), fmtMS(ci.Low), fmtMS(ci.High), p.RequestsPerSec, 2*p.RequestsPerSecSE, p.Tolerance.Skew,
				time.Duration(p.Tolerance.Pause).Round(time.Millisecond), time.Duration(p.Tolerance.Outage).Round(time.Millisecond))
		}
	} else {
		fmt.Fprintln(w, "nothing recommended: no combination is safe and meets every constraint")
		if c := rec.Closest; c != nil {
			var rs []string
			for _, r := range c.Reasons {
				rs = append(rs, r.String())
			}
			fmt.Fprintf(w, "closest: %s, which misses %s\n", c.Params, strings.Join(rs, "; "))
		}
	}
	if len(rec.Rejected) > 0 {
		fmt.Fprintln(w, "\nrejected:")
	}
	for _, f := range rec.Rejected {
		var rs []string
		for _, r := range f.Reasons {
			rs = append(rs, r.String())
		}
		fmt.Fprintf(w, "  %s: %s\n", f.Params, strings.Join(rs, "; "))
	}
}
