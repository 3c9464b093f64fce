package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/sim"
)

// pt makes a point as a sweep would: lease ld with RenewDeadline 2/3 and
// RetryPeriod rp, a crash failover p99 (ms) known within [lo, hi], req
// requests/s ± 2 × se, its tolerances from the timing rule, all confirmed.
func pt(ld, rp time.Duration, p99, lo, hi, req, se float64) Point {
	rd := ld * 2 / 3
	p := Point{Params: Params{LeaseDuration: ld, RenewDeadline: rd, RetryPeriod: rp, Nodes: 3, Watch: true}, Runs: 20}
	p.LeaseDurationText, p.RenewDeadlineText, p.RetryPeriodText = Duration(ld), Duration(rd), Duration(rp)
	p.CrashFailover = Stat{N: 100, P50: p99 * 0.95, P90: p99 * 0.98, P99: p99, Max: hi}
	p.CrashFailoverP99CI = Range{Low: lo, High: hi}
	p.RequestsPerSec, p.RequestsPerSecSE = req, se
	p.Tolerance = Tolerance{Skew: round(float64(ld)/float64(rd), 3), Pause: Duration(ld - rd), Outage: Duration(max(0, rd-2*rp)), CheckSeeds: 20, Confirmed: true}
	return p
}

var faults = []string{FaultCrash, FaultStop, FaultPartition, FaultPause}

func names(cs []Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Params.String())
	}
	return out
}

// The fastest combination is unsafe: it is rejected, with the share of
// unsafe seeds, the faults and the cause, even with no constraint at all,
// and the next is recommended. A violation its own pause check found
// inside its bound rejects it too.
func TestRecommendRejectsUnsafeEvenIfFastest(t *testing.T) {
	fast := pt(5*time.Second, time.Second, 5000, 4990, 5010, 2.9, 0.01)
	fast.UnsafeSeeds, fast.DualLeaderMS = 20, 1234
	fast.UnsafeCauses = []UnsafeCause{{Kind: "dual_leadership", Fault: "pause", Seeds: 20}, {Kind: "stale_write_accepted", Fault: "pause", Seeds: 2}}
	safe := pt(15*time.Second, 2*time.Second, 15000, 14950, 15000, 1.46, 0.01)
	checkFailed := pt(10*time.Second, time.Second, 10000, 9990, 10000, 2.9, 0.01)
	checkFailed.Tolerance.PauseInside, checkFailed.Tolerance.Confirmed = 3, false
	r := &Result{Faults: faults, Seeds: 20, Points: []Point{fast, safe, checkFailed}}

	for _, c := range []Constraints{{}, {MaxFailover: 20 * time.Second}} {
		rec := Recommend(r, c)
		if rec.Recommended == nil || rec.Recommended.Params != safe.Params || len(rec.Meet) != 1 {
			t.Fatalf("%+v: recommended %v, meet %v; want only %v", c, rec.Recommended, names(rec.Meet), safe.Params)
		}
		if len(rec.Rejected) != 2 || rec.Rejected[0].Params != fast.Params || rec.Rejected[1].Params != checkFailed.Params {
			t.Fatalf("%+v: rejected %+v", c, rec.Rejected)
		}
		got := rec.Rejected[0].Reasons
		want := Reason{Constraint: ConstraintSafety, Measured: "20/20 seeds unsafe",
			Text: "20/20 seeds unsafe under crash,stop,partition,pause: dual leadership after a pause (20 seeds), a stale write accepted after a pause (2 seeds)"}
		if len(got) != 1 || got[0].Constraint != want.Constraint || got[0].Measured != want.Measured || got[0].Text != want.Text {
			t.Errorf("%+v: reasons %+v\nwant %+v", c, got, want)
		}
		if got := rec.Rejected[1].Reasons; len(got) != 1 || got[0].Constraint != ConstraintSafety ||
			got[0].Text != "its own checks found violations inside the bounds it claims: pause 3/20 seeds" {
			t.Errorf("%+v: the failed check's reasons %+v", c, got)
		}
		var text bytes.Buffer
		rec.WriteText(&text)
		for _, want := range []string{
			"recommended: 15s/10s/2s n=3 watch\n",
			"rejected:\n  5s/3.333333333s/1s n=3 watch: safety: 20/20 seeds unsafe under crash,stop,partition,pause: dual leadership after a pause (20 seeds)",
		} {
			if !strings.Contains(text.String(), want) {
				t.Errorf("%+v: the text lacks %q:\n%s", c, want, text.String())
			}
		}
	}
	// An unsafe combination that also breaks a constraint: safety first,
	// then the constraint with the measured value.
	rec := Recommend(r, Constraints{MaxFailover: 4 * time.Second})
	if got := rec.Rejected[0].Reasons; len(got) != 2 || got[0].Constraint != ConstraintSafety ||
		got[1] != (Reason{Constraint: ConstraintMaxFailover, Measured: "5s", Limit: "4s", Text: "crash failover p99 5s > 4s", miss: 0.25}) {
		t.Errorf("reasons %+v", got)
	}
}

// Crash failover p99s within the noise are a tie, broken by fewer
// requests; requests within the noise are a tie, broken by the larger
// safety margins. A p99 beyond the noise is a later tier whatever its
// requests.
func TestRecommendTiesWithinTheNoise(t *testing.T) {
	// Tier 1: a (p99 29.9s, in [29.8s, 30s]) ties with b (30s, in [29.9s,
	// 30s]), c (30s) and e; b and c make fewer requests than a, and tie
	// with each other on them (0.73 ± 0.004 against 0.726 ± 0.004): c's
	// longer pause tolerance (its renew deadline is shorter) puts it
	// first.
	a := pt(30*time.Second, 3*time.Second, 29900, 29800, 30000, 0.96, 0.002)
	b := pt(30*time.Second, 4*time.Second, 30000, 29900, 30000, 0.73, 0.002)
	c := pt(30*time.Second, 4*time.Second, 30000, 29900, 30000, 0.726, 0.002)
	c.RenewDeadline, c.RenewDeadlineText, c.Tolerance.Pause = 15*time.Second, Duration(15*time.Second), Duration(15*time.Second)
	// d is slower beyond the noise (its interval starts after a's ends)
	// though it makes the fewest requests: tier 2.
	d := pt(30*time.Second, 6*time.Second, 30100, 30050, 30200, 0.49, 0.002)
	// e's p99 is higher than b's and c's, but within the noise of a's
	// (the intervals overlap): it makes the fewest requests of tier 1.
	e := pt(30*time.Second, 5*time.Second, 30040, 29950, 30100, 0.6, 0.002)
	r := &Result{Faults: faults, Seeds: 20, Points: []Point{a, b, c, d, e}}
	rec := Recommend(r, Constraints{MaxFailover: time.Minute})
	want := []string{e.Params.String(), c.Params.String(), b.Params.String(), a.Params.String(), d.Params.String()}
	if got := names(rec.Meet); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("ranked %q\nwant %q", got, want)
	}
	for i, tier := range []int{1, 1, 1, 1, 2} {
		if rec.Meet[i].Tier != tier {
			t.Errorf("%v: tier %d, want %d", rec.Meet[i].Params, rec.Meet[i].Tier, tier)
		}
	}
	// Without the noise (points read from CSV have none) the lowest p99
	// wins outright.
	for i := range r.Points {
		r.Points[i].CrashFailoverP99CI, r.Points[i].RequestsPerSecSE = Range{}, 0
	}
	if got := Recommend(r, Constraints{}).Recommended; got == nil || got.Params != a.Params {
		t.Errorf("without noise: recommended %v, want %v", got, a.Params)
	}
}

// When no combination meets every constraint the recommendation says so,
// names the closest (safe before unsafe, then the fewest constraints
// broken, then the smallest misses) and what it misses; the JSON has no
// recommended combination, the closest and every rejected one with its
// reasons.
func TestRecommendNothingMeets(t *testing.T) {
	unsafe := pt(5*time.Second, time.Second, 5000, 4990, 5010, 2.9, 0.01)
	unsafe.UnsafeSeeds = 20
	unsafe.UnsafeCauses = []UnsafeCause{{Kind: "dual_leadership", Fault: "pause", Seeds: 20}}
	near := pt(15*time.Second, 2*time.Second, 14985, 14950, 15000, 1.46, 0.01)
	far := pt(30*time.Second, 4*time.Second, 29932, 29900, 30000, 0.73, 0.01)
	twice := pt(10*time.Second, 500*time.Millisecond, 10500, 10400, 10600, 6, 0.01)
	r := &Result{Faults: faults, Seeds: 20, Points: []Point{unsafe, far, twice, near}}
	rec := Recommend(r, Constraints{MaxFailover: 10 * time.Second, MaxRequestsPerSec: 5})
	if rec.Recommended != nil || len(rec.Meet) != 0 || len(rec.Rejected) != 4 {
		t.Fatalf("recommended %v, %d meet, %d rejected", rec.Recommended, len(rec.Meet), len(rec.Rejected))
	}
	if rec.Closest == nil || rec.Closest.Params != near.Params {
		t.Fatalf("closest %+v, want %v", rec.Closest, near.Params)
	}
	var text bytes.Buffer
	rec.WriteText(&text)
	want := "nothing recommended: no combination is safe and meets every constraint\n" +
		"closest: 15s/10s/2s n=3 watch, which misses max-failover: crash failover p99 14.985s > 10s\n"
	if !strings.HasPrefix(text.String(), want) ||
		!strings.Contains(text.String(), "\n  10s/6.666666666s/500ms n=3 watch: max-failover: crash failover p99 10.5s > 10s; max-requests-per-sec: 6 requests/s > 5\n") {
		t.Errorf("text:\n%s\nwant it to start with\n%s", text.String(), want)
	}
	var jsonb bytes.Buffer
	if err := r.WriteJSON(&jsonb, &rec); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Recommendation struct {
			Constraints map[string]any    `json:"constraints"`
			Recommended *json.RawMessage  `json:"recommended"`
			Closest     map[string]any    `json:"closest"`
			Rejected    []json.RawMessage `json:"rejected"`
		} `json:"recommendation"`
	}
	if err := json.Unmarshal(jsonb.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	br := back.Recommendation
	if br.Recommended != nil || br.Closest["lease_duration"] != "15s" || len(br.Rejected) != 4 ||
		br.Constraints["max_failover"] != "10s" || br.Constraints["max_requests_per_sec"] != 5.0 || len(br.Constraints) != 2 {
		t.Errorf("JSON: %s", jsonb.String())
	}
	var first Rejected
	if err := json.Unmarshal(br.Rejected[0], &first); err != nil || len(first.Reasons) != 1 || first.Reasons[0].Constraint != ConstraintSafety ||
		first.Reasons[0].Text != "20/20 seeds unsafe under crash,stop,partition,pause: dual leadership after a pause (20 seeds)" {
		t.Errorf("JSON's first rejected: %v, %+v", err, first.Reasons)
	}
	// When every one is unsafe, the closest is the least unsafe.
	other := unsafe
	other.LeaseDuration, other.UnsafeSeeds = 6*time.Second, 3
	rec = Recommend(&Result{Faults: faults, Points: []Point{unsafe, other}}, Constraints{})
	if rec.Recommended != nil || rec.Closest == nil || rec.Closest.LeaseDuration != 6*time.Second {
		t.Errorf("all unsafe: recommended %v, closest %v", rec.Recommended, rec.Closest)
	}
}

// A constraint on the failover cannot be judged without a crash measured:
// it is broken, saying so.
func TestRecommendNoCrashMeasured(t *testing.T) {
	p := pt(15*time.Second, 2*time.Second, 0, 0, 0, 1.46, 0.01)
	p.CrashFailover = Stat{}
	rec := Recommend(&Result{Faults: []string{FaultStop}, Points: []Point{p}}, Constraints{MaxFailover: time.Minute})
	if rec.Recommended != nil || len(rec.Rejected) != 1 || rec.Rejected[0].Reasons[0].Constraint != ConstraintMaxFailover ||
		!strings.Contains(rec.Rejected[0].Reasons[0].Text, "no crash failover measured") {
		t.Errorf("%+v", rec)
	}
	if rec := Recommend(&Result{Points: []Point{p}}, Constraints{}); rec.Recommended == nil {
		t.Error("no constraint on the failover: not recommended")
	}
}

// The p99's interval holds the p99 and widens as the samples thin out.
func TestQuantileCI(t *testing.T) {
	var v []float64
	for i := range 1000 {
		v = append(v, float64(i+1))
	}
	got := quantileCI(v, 0.99)
	// n·p = 990, 1.96·√9.9 = 6.17: ranks 983 and 997.
	if got != (Range{983, 997}) {
		t.Errorf("1000 samples: %+v, want [983, 997]", got)
	}
	if got := quantileCI(v[:10], 0.99); got != (Range{9, 10}) {
		t.Errorf("10 samples: %+v, want [9, 10]", got)
	}
	if got := quantileCI(nil, 0.99); got != (Range{}) {
		t.Errorf("no sample: %+v", got)
	}
}

// A violation is put down to the fault of the failover from its earlier
// leader to its later one that began at or before it.
func TestAttributeViolation(t *testing.T) {
	r := &sim.Result{Failovers: []sim.Failover{
		{Cause: "crash", From: "n3", To: "n1", AtMS: 1000},
		{Cause: "partition", From: "n1", To: "n2", AtMS: 2000},
		{Cause: "pause", From: "n1", To: "n2", AtMS: 50000},
		{Cause: "stop", From: "n2", To: "n1", AtMS: 90000},
	}}
	for _, tc := range []struct {
		v    sim.Violation
		want string
	}{
		{sim.Violation{Kind: "dual_leadership", AtMS: 55000, Nodes: []string{"n1", "n2"}}, "pause"},
		{sim.Violation{Kind: "dual_leadership", AtMS: 20000, Nodes: []string{"n1", "n2"}}, "partition"},
		{sim.Violation{Kind: "stale_write_accepted", AtMS: 95000, Nodes: []string{"n2", "n1"}}, "stop"},
		{sim.Violation{Kind: "dual_leadership", AtMS: 500, Nodes: []string{"n1", "n2"}}, ""},
		{sim.Violation{Kind: "dual_leadership", AtMS: 60000, Nodes: []string{"n3", "n2"}}, ""},
	} {
		if got := AttributeViolation(r, tc.v); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.v, got, tc.want)
		}
	}
}
