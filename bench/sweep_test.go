package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func quick() Options {
	o := DefaultOptions()
	o.Grid.LeaseDurations = []time.Duration{4 * time.Second, 10 * time.Second}
	o.Grid.RetryPeriods = []Frac{{Of: 0.1}, {Of: 0.2}}
	o.Seeds = 6
	o.Duration = 20 * time.Minute
	return o
}

// With followers polling, a crashed leader's successor starts between
// LeaseDuration − RetryPeriod and LeaseDuration + 2.2 × RetryPeriod after
// the crash: the last renewal it saw is at most a retry period old, and it
// sees it and later the lease's end at most a jittered retry period late.
func TestCrashFailoverWithinTheBound(t *testing.T) {
	o := quick()
	o.Faults = []string{FaultCrash}
	o.Grid.Watch = []bool{false}
	o.Seeds = 20
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Points {
		ld, rp := p.LeaseDuration, p.RetryPeriod
		lo, hi := float64((ld - rp).Milliseconds()), float64((ld + 22*rp/10).Milliseconds())
		f := p.CrashFailover
		if f.N < 20 {
			t.Errorf("%v: %d crash failovers, want many", p.Params, f.N)
		}
		// A few ms of network on top of the bound.
		if f.P50 < lo || f.Max > hi+20 {
			t.Errorf("%v: crash failover p50 %.0fms max %.0fms, want within [%.0f, %.0f]ms", p.Params, f.P50, f.Max, lo, hi)
		}
		if p.Handoff.N != 0 {
			t.Errorf("%v: handoffs without graceful stops", p.Params)
		}
	}
}

// A graceful stop hands over in milliseconds; the tolerances are the
// timing rule's and the simulation confirms them.
func TestHandoffAndTolerances(t *testing.T) {
	r, err := Run(context.Background(), quick())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Points) != 4 {
		t.Fatalf("%d points, want 4 (2 lease durations × 2 retry periods)", len(r.Points))
	}
	for _, p := range r.Points {
		if p.Handoff.N == 0 || p.Handoff.P99 > 100 {
			t.Errorf("%v: handoff %+v, want some, p99 under 100ms", p.Params, p.Handoff)
		}
		if p.Handoff.P99 >= p.CrashFailover.P50 {
			t.Errorf("%v: handoff p99 %.0fms not below crash failover p50 %.0fms", p.Params, p.Handoff.P99, p.CrashFailover.P50)
		}
		tl := p.Tolerance
		if tl.Skew != round(float64(p.LeaseDuration)/float64(p.RenewDeadline), 3) || time.Duration(tl.Pause) != p.LeaseDuration-p.RenewDeadline {
			t.Errorf("%v: tolerance %+v does not follow the timing rule", p.Params, tl)
		}
		if !tl.Confirmed || tl.SkewInside+tl.PauseInside+tl.OutageInside != 0 {
			t.Errorf("%v: inside the bounds the simulation found violations: %+v", p.Params, tl)
		}
		if tl.SkewBeyond == 0 || tl.PauseBeyond == 0 || tl.OutageBeyond == 0 {
			t.Errorf("%v: beyond the bounds the simulation found nothing: %+v (the checks cannot fail)", p.Params, tl)
		}
		if p.RequestsPerSec <= 0 || p.FollowerRequestsPerSec <= 0 || p.LeaderRequestsPerSec != round(1/p.RetryPeriod.Seconds(), 3) {
			t.Errorf("%v: requests %v total, %v leader, %v per follower", p.Params, p.RequestsPerSec, p.LeaderRequestsPerSec, p.FollowerRequestsPerSec)
		}
	}
	// Watching, a follower sees each renewal as it happens, so it takes a
	// crashed leader over no later than a lease after its last renewal;
	// polling adds up to a jittered retry period. (In requests the two cost
	// about the same in the simulator: a watch is registered again after
	// each renewal, as Consul's blocking queries are.)
	o := quick()
	o.Grid.LeaseDurations = o.Grid.LeaseDurations[:1]
	o.Grid.RetryPeriods = o.Grid.RetryPeriods[:1]
	o.Grid.Watch = []bool{true, false}
	r, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	w, p := r.Points[0], r.Points[1]
	if !w.Watch || p.Watch || w.CrashFailover.Max > float64(w.LeaseDuration.Milliseconds())+20 || p.CrashFailover.Max <= w.CrashFailover.Max {
		t.Errorf("crash failover max: watching %.0fms, polling %.0fms (lease %v); want watching within the lease and below polling",
			w.CrashFailover.Max, p.CrashFailover.Max, w.LeaseDuration)
	}
	t.Logf("per follower: watching %v requests/s, polling %v", w.FollowerRequestsPerSec, p.FollowerRequestsPerSec)
}

// The same options give the same numbers, on one worker or many.
func TestSweepDeterministic(t *testing.T) {
	o := quick()
	o.Seeds = 3
	var outs []string
	for _, workers := range []int{1, 2, 4} {
		o.Workers = workers
		r, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := r.WriteJSON(&b, nil); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, b.String())
	}
	if outs[0] != outs[1] || outs[1] != outs[2] {
		t.Fatal("the sweep's JSON differs between runs")
	}
}

// CSV and JSON read back into the same numbers; the text and the SVGs
// name every combination.
func TestOutputsParseBack(t *testing.T) {
	r, err := Run(context.Background(), quick())
	if err != nil {
		t.Fatal(err)
	}
	var csvb, jsonb, text bytes.Buffer
	if err := r.WriteCSV(&csvb); err != nil {
		t.Fatal(err)
	}
	pts, err := ReadCSV(&csvb)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != len(r.Points) {
		t.Fatalf("CSV: %d points, want %d", len(pts), len(r.Points))
	}
	for i, p := range pts {
		want := r.Points[i]
		// The CSV has the headline figures, not the by-cause ones.
		want.ByCause = nil
		want.CrashLeaderless = Stat{P50: want.CrashLeaderless.P50, P99: want.CrashLeaderless.P99}
		want.Handoff.P90 = 0
		want.Tolerance = Tolerance{Skew: want.Tolerance.Skew, Pause: want.Tolerance.Pause, Outage: want.Tolerance.Outage, Confirmed: want.Tolerance.Confirmed}
		want.UnsafeCauses, want.CrashFailoverP99CI, want.RequestsPerSecSE = nil, Range{}, 0
		if !reflect.DeepEqual(p, want) {
			t.Errorf("CSV line %d:\n got %+v\nwant %+v", i+2, p, want)
		}
	}
	rec := Recommend(r, Constraints{MaxFailover: 8 * time.Second})
	if err := r.WriteJSON(&jsonb, &rec); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Result
		Recommendation *Recommendation `json:"recommendation"`
	}
	if err := json.Unmarshal(jsonb.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for i := range back.Points {
		p := &back.Points[i]
		p.LeaseDuration, p.RenewDeadline, p.RetryPeriod = time.Duration(p.LeaseDurationText), time.Duration(p.RenewDeadlineText), time.Duration(p.RetryPeriodText)
	}
	if !reflect.DeepEqual(back.Points, r.Points) || back.Recommendation == nil || len(back.Recommendation.Meet) != len(rec.Meet) ||
		len(back.Recommendation.Rejected) != len(rec.Rejected) || back.Recommendation.Constraints != rec.Constraints {
		t.Errorf("JSON does not read back into the same points and recommendation")
	}
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(text.String(), "\n"); n != len(r.Points)+6 {
		t.Errorf("text: %d lines for %d points:\n%s", n, len(r.Points), text.String())
	}
	dir := t.TempDir()
	files, err := r.WriteSVG(context.Background(), dir, &rec)
	if err != nil || len(files) != 2 || filepath.Base(files[0]) != SVGFiles(r.Store)[0] || filepath.Base(files[1]) != "handoff.svg" {
		t.Fatalf("SVG: %v, %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.HasPrefix(b, []byte("<svg")) || !bytes.HasSuffix(b, []byte("</svg>\n")) || !bytes.Contains(b, []byte("<rect")) {
			t.Errorf("%s: not a plot (%v)", filepath.Base(f), err)
		}
	}
}

// Every recommended combination meets every constraint, the rest fail at
// least one, and the recommended come best first — for random constraints.
func TestRecommendHonoursConstraints(t *testing.T) {
	o := quick()
	o.Grid.RenewDeadlines = []Frac{{Of: 0.5}, {Of: 0.8}}
	o.Grid.Watch = []bool{true, false}
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	unsafe := 0
	for _, p := range r.Points {
		if p.UnsafeSeeds > 0 {
			unsafe++
			if len(p.UnsafeCauses) == 0 {
				t.Errorf("%v: %d unsafe seeds and no cause", p.Params, p.UnsafeSeeds)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	met := 0
	for i := range 500 {
		var c Constraints
		if rng.IntN(2) == 0 {
			c.MaxFailover = time.Duration(rng.Float64() * float64(15*time.Second))
		}
		if rng.IntN(2) == 0 {
			c.MaxRequestsPerSec = rng.Float64() * 10
		}
		if rng.IntN(2) == 0 {
			c.TolerateRateSkew = 1 + rng.Float64()
		}
		if rng.IntN(2) == 0 {
			c.ToleratePause = time.Duration(rng.Float64() * float64(6*time.Second))
		}
		if rng.IntN(2) == 0 {
			c.TolerateStoreOutage = time.Duration(rng.Float64() * float64(8*time.Second))
		}
		rec := Recommend(r, c)
		if len(rec.Meet)+len(rec.Rejected) != len(r.Points) {
			t.Fatalf("case %d: %d + %d points, want %d", i, len(rec.Meet), len(rec.Rejected), len(r.Points))
		}
		if (rec.Recommended == nil) != (len(rec.Meet) == 0) || (rec.Closest != nil) != (len(rec.Meet) == 0) {
			t.Fatalf("case %d: recommended %v, closest %v with %d meeting", i, rec.Recommended, rec.Closest, len(rec.Meet))
		}
		for j, p := range rec.Meet {
			ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
			switch {
			case p.UnsafeSeeds > 0, !p.Tolerance.Confirmed && c.TolerateStoreOutage > 0,
				c.MaxFailover > 0 && ms(p.CrashFailover.P99) > c.MaxFailover+time.Millisecond,
				c.MaxRequestsPerSec > 0 && p.RequestsPerSec > c.MaxRequestsPerSec,
				c.TolerateRateSkew > 0 && p.Tolerance.Skew < c.TolerateRateSkew,
				c.ToleratePause > 0 && time.Duration(p.Tolerance.Pause) < c.ToleratePause,
				c.TolerateStoreOutage > 0 && time.Duration(p.Tolerance.Outage) < c.TolerateStoreOutage:
				t.Fatalf("case %d: %+v recommended %v, which fails it", i, c, p.Params)
			}
			// Tiers 1, 2, ... in order; a tier's first has the lowest p99
			// of its tier and the later ones, and every one of its tier
			// is within the noise of it.
			if j == 0 && p.Tier != 1 || j > 0 && p.Tier != rec.Meet[j-1].Tier && p.Tier != rec.Meet[j-1].Tier+1 {
				t.Fatalf("case %d: tier %d at %d", i, p.Tier, j)
			}
			lead := slices.IndexFunc(rec.Meet, func(q Candidate) bool { return q.Tier == p.Tier })
			l := rec.Meet[lead]
			if l.CrashFailover.P99 > p.CrashFailover.P99 || p.Tier == l.Tier && (p.CrashFailoverP99CI.Low > l.CrashFailoverP99CI.High || p.CrashFailoverP99CI.High < l.CrashFailoverP99CI.Low) {
				t.Fatalf("case %d: %v (p99 %v %+v) in tier %d led by %v (p99 %v %+v)", i, p.Params, p.CrashFailover.P99, p.CrashFailoverP99CI, p.Tier, l.Params, l.CrashFailover.P99, l.CrashFailoverP99CI)
			}
			for _, q := range rec.Meet[j:] {
				if q.CrashFailover.P99 < l.CrashFailover.P99 {
					t.Fatalf("case %d: %v (p99 %v) comes after the tier %d it would lead", i, q.Params, q.CrashFailover.P99, l.Tier)
				}
			}
			met++
		}
		for _, f := range rec.Rejected {
			if len(f.Reasons) == 0 {
				t.Fatalf("case %d: %v rejected with no reason", i, f.Params)
			}
			if f.UnsafeSeeds > 0 && f.Reasons[0].Constraint != ConstraintSafety {
				t.Fatalf("case %d: %v, unsafe in %d seeds, rejected first for %v", i, f.Params, f.UnsafeSeeds, f.Reasons[0])
			}
		}
	}
	if met == 0 {
		t.Fatal("no random constraint was met by any combination: the test checks nothing")
	}
	if unsafe == 0 {
		t.Fatal("no combination of the grid is unsafe: the test does not check that unsafe ones are rejected")
	}
}

// A done context stops the sweep.
func TestSweepStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, DefaultOptions()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// Bad options are refused before anything runs, naming what is wrong.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.Seeds = 0 }, "seeds"},
		{func(o *Options) { o.Faults = []string{"meteor"} }, `unknown fault "meteor"`},
		{func(o *Options) { o.Grid.RenewDeadlines = []Frac{{Of: 1.5}} }, "no valid combination"},
		{func(o *Options) { o.Grid.Nodes = nil }, "at least one value"},
		{func(o *Options) { o.Faults = []string{FaultSkew}; o.Skew = 0.5 }, "skew"},
		{func(o *Options) { o.Base = []byte("- a list") }, "base scenario"},
		{func(o *Options) { o.Base = []byte("nodes: 3\nbogus: 1\n") }, "bogus"},
	} {
		o := quick()
		tc.edit(&o)
		if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want it to say %q", err, tc.want)
		}
	}
}

// The yardstick: 12 combinations × 200 seeds × 1h on every core.
func BenchmarkSweep12x200x1h(b *testing.B) {
	o := DefaultOptions()
	o.Grid.LeaseDurations = []time.Duration{5 * time.Second, 15 * time.Second, 30 * time.Second}
	o.Grid.RenewDeadlines = []Frac{{Of: 0.5}, {Of: 0.66}}
	o.Grid.RetryPeriods = []Frac{{Of: 0.1}, {Of: 0.2}}
	for b.Loop() {
		if _, err := Run(context.Background(), o); err != nil {
			b.Fatal(err)
		}
	}
}
