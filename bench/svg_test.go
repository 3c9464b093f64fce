package bench

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/sim"
)

// svgElem is an element of a written SVG, with its attributes.
type svgElem struct {
	name  string
	attrs map[string]string
}

// parseSVG reads every element of an SVG (it must be well-formed XML).
func parseSVG(t *testing.T, b []byte) []svgElem {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	var out []svgElem
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			e := svgElem{name: se.Name.Local, attrs: map[string]string{}}
			for _, a := range se.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			out = append(out, e)
		}
	}
}

func num(t *testing.T, e svgElem, a string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(e.attrs[a], 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", e.name, a, e.attrs[a], err)
	}
	return v
}

// checkScatter checks a laid-out scatter and its SVG: one point per
// combination, each marker and label inside the plot, none hiding
// another, the recommended and the unsafe marked, the shading where the
// constraints say.
//
// In a crowd (crowded), a leader line may cross other markers.
func checkScatter(t *testing.T, r *Result, rec *Recommendation, crowded bool) {
	t.Helper()
	l := layoutScatter(r, rec)
	if len(l.points) != len(r.Points) {
		t.Fatalf("%d points for %d combinations", len(l.points), len(r.Points))
	}
	var boxes []rect
	var what []string
	for _, p := range l.points {
		if !l.plot.contains(p.markerBox()) {
			t.Errorf("%v: marker %+v outside the plot %+v", p.Params, p.markerBox(), l.plot)
		}
		if !l.plot.contains(p.box) {
			t.Errorf("%v: label %q %+v outside the plot %+v", p.Params, p.label, p.box, l.plot)
		}
		// A marker stays near its data: in a grid of the markers at its
		// place (cells of at most 40px).
		near := 0
		for _, q := range l.points {
			if math.Hypot(q.x-p.x, q.y-p.y) < 2*(q.reach()+p.reach()) {
				near++
			}
		}
		if d := math.Hypot(p.cx-p.x, p.cy-p.y); d > (math.Ceil(math.Sqrt(float64(near)))+1)*40 {
			t.Errorf("%v: marker %.0fpx from its place", p.Params, d)
		}
		boxes = append(boxes, p.markerBox(), p.box)
		what = append(what, fmt.Sprintf("marker of %v", p.Params), fmt.Sprintf("label %q", p.label))
		// The recommended's label says what it is; the frontier's do,
		// but in a crowd, where some may be their numbers alone.
		if p.recommended || p.frontier && !crowded {
			want := fmt.Sprintf("%s/%s/%s", fmtDur(p.LeaseDuration), fmtDur(p.RenewDeadline.Round(time.Millisecond)), fmtDur(p.RetryPeriod.Round(time.Millisecond)))
			if !strings.Contains(p.label, want) {
				t.Errorf("%v: label %q does not say %s", p.Params, p.label, want)
			}
		}
	}
	boxes = append(boxes, l.notes...)
	for range l.notes {
		what = append(what, "a constraint's note")
	}
	for i := range boxes {
		for j := i + 1; j < len(boxes); j++ {
			if boxes[i].overlaps(boxes[j]) {
				// Two markers may not touch (one would hide the
				// other); a label covers nothing.
				t.Errorf("%s %+v overlaps %s %+v", what[i], boxes[i], what[j], boxes[j])
			}
		}
	}
	// The key's rows fit in the SVG.
	for _, p := range l.points {
		for _, c := range keyColumns {
			if c.anchor == "start" && l.plot.x+c.x+textW(c.cell(p), keySize) > l.width {
				t.Errorf("%v: the key's row runs off the SVG", p.Params)
			}
		}
	}
	// A leader line crosses no other marker, no label, no note.
	for i, p := range l.points {
		if !p.leader {
			continue
		}
		ln := p.leaderLine(p.box)
		for j, q := range l.points {
			if i != j && segmentCrosses(ln, q.box) {
				t.Errorf("the leader line of %q crosses the label of %v", p.label, q.Params)
			}
			if i != j && !crowded && segmentCrosses(ln, q.markerBox()) {
				t.Errorf("the leader line of %q crosses the marker of %v", p.label, q.Params)
			}
		}
		for _, n := range l.notes {
			if segmentCrosses(ln, n) {
				t.Errorf("the leader line of %q crosses a constraint's note", p.label)
			}
		}
	}
	// The shading: a point's data place is in the shaded region exactly
	// when it breaks --max-failover or --max-requests-per-sec.
	for _, p := range l.points {
		if !p.measured {
			continue
		}
		above := l.failLine > 0 && p.y < l.failLine
		right := l.reqLine > 0 && p.x > l.reqLine
		slow := l.c.MaxFailover > 0 && time.Duration(p.CrashFailover.P99*float64(time.Millisecond)).Round(time.Millisecond) > l.c.MaxFailover
		costly := l.c.MaxRequestsPerSec > 0 && p.RequestsPerSec > l.c.MaxRequestsPerSec
		if above != slow || right != costly {
			t.Errorf("%v: shaded above %v right %v; breaks max-failover %v, max-requests %v", p.Params, above, right, slow, costly)
		}
	}

	var b bytes.Buffer
	if err := l.write(&b); err != nil {
		t.Fatal(err)
	}
	es := parseSVG(t, b.Bytes())
	var area rect
	seen := map[string]int{}
	recommended := 0
	for _, e := range es {
		if e.attrs["class"] == "plot-area" {
			area = rect{num(t, e, "data-x"), num(t, e, "data-y"), num(t, e, "data-w"), num(t, e, "data-h")}
		}
	}
	if area.w == 0 {
		t.Fatal("the SVG names no plot area")
	}
	unsafe := map[string]bool{}
	for _, p := range r.Points {
		if slices.ContainsFunc(Constraints{}.Failures(p, r.Faults), func(x Reason) bool { return x.Constraint == ConstraintSafety }) {
			unsafe[p.Params.String()] = true
		}
	}
	for _, e := range es {
		cls := strings.Fields(e.attrs["class"])
		if !slices.Contains(cls, "point") {
			continue
		}
		c := e.attrs["data-combo"]
		seen[c]++
		cx, cy, rr := num(t, e, "data-cx"), num(t, e, "data-cy"), num(t, e, "data-r")
		if !area.contains(rect{cx - rr, cy - rr, 2 * rr, 2 * rr}) {
			t.Errorf("%s: drawn at %.1f,%.1f r %.1f, outside the plot %+v", c, cx, cy, rr, area)
		}
		if slices.Contains(cls, "recommended") {
			recommended++
			if rec == nil || rec.Recommended == nil || c != rec.Recommended.Params.String() {
				t.Errorf("%s is marked recommended", c)
			}
		}
		if slices.Contains(cls, "unsafe") != unsafe[c] {
			t.Errorf("%s: marked unsafe %v, unsafe %v", c, slices.Contains(cls, "unsafe"), unsafe[c])
		}
	}
	for _, p := range r.Points {
		if n := seen[p.Params.String()]; n != 1 {
			t.Errorf("%v: %d points in the SVG, want 1", p.Params, n)
		}
	}
	if len(seen) != len(r.Points) {
		t.Errorf("%d distinct points in the SVG for %d combinations", len(seen), len(r.Points))
	}
	if want := rec != nil && rec.Recommended != nil; (recommended == 1) != want || recommended > 1 {
		t.Errorf("%d points marked recommended (a recommendation: %v)", recommended, want)
	}
	if shaded := bytes.Contains(b.Bytes(), []byte(`class="outside"`)); shaded != (l.failLine > 0 || l.reqLine > 0) {
		t.Errorf("shaded %v; the constraints' lines at %.1f, %.1f", shaded, l.failLine, l.reqLine)
	}
}

// A sweep with combinations at the same place (two renew deadlines of one
// lease and retry period), watching and polling, some unsafe (short
// leases under pauses), with and without constraints.
func TestScatterPlot(t *testing.T) {
	o := quick()
	o.Grid.RenewDeadlines = []Frac{{Of: 0.5}, {Of: 2.0 / 3}}
	o.Grid.Watch = []bool{true, false}
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(r.Points, func(p Point) bool { return p.UnsafeSeeds > 0 }) {
		t.Fatal("the sweep found no combination unsafe: the test needs one")
	}
	for _, c := range []*Constraints{
		nil,
		{MaxFailover: 6 * time.Second, MaxRequestsPerSec: 1, ToleratePause: 2 * time.Second},
		{MaxFailover: time.Second},                      // nothing meets it: no recommendation, all shaded
		{MaxRequestsPerSec: 100, TolerateRateSkew: 1.6}, // the limit far right of every point
	} {
		var rec *Recommendation
		name := "no constraints"
		if c != nil {
			rc := Recommend(r, *c)
			rec, name = &rc, fmt.Sprintf("%+v", *c)
		}
		t.Run(name, func(t *testing.T) { checkScatter(t, r, rec, false) })
	}
}

// Many combinations at one place and a label each: still every marker
// and label in the plot, none on another.
func TestScatterCrowded(t *testing.T) {
	r := &Result{Faults: []string{FaultCrash}, Seeds: 1, Duration: Duration(time.Hour)}
	for i := range 14 {
		ld := 15 * time.Second
		p := Point{Params: Params{LeaseDuration: ld, RenewDeadline: ld/2 + time.Duration(i)*100*time.Millisecond, RetryPeriod: 2 * time.Second, Nodes: 3, Watch: i%2 == 0},
			CrashFailover: Stat{N: 10, P99: 15000}, RequestsPerSec: 0.5, Runs: 1,
			Tolerance: Tolerance{Pause: Duration(time.Duration(i+1) * 2 * time.Second), Outage: Duration(time.Duration(i) * time.Second), Skew: 1.5}}
		r.Points = append(r.Points, p)
	}
	// Two far apart, one without a crash failover measured.
	far := r.Points[0]
	far.LeaseDuration, far.RequestsPerSec, far.CrashFailover.P99 = 60*time.Second, 0.05, 60000
	none := r.Points[1]
	none.LeaseDuration, none.CrashFailover = 90*time.Second, Stat{}
	r.Points = append(r.Points, far, none)
	rec := Recommend(r, Constraints{MaxFailover: 20 * time.Second})
	checkScatter(t, r, &rec, true)
	checkScatter(t, r, nil, true)
}

// A handoff's phases add up to the simulator's own handoff, run after
// run (handoffOf checks each against the failover) and on average.
func TestHandoffPhases(t *testing.T) {
	const seeds = 20
	for _, store := range []string{"etcd", "kube", "memory"} {
		h, err := MeasureHandoffs(context.Background(), store, seeds, 1)
		if err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for i, v := range h.phases() {
			if v <= 0 {
				t.Errorf("%s: phase %s is %v ms", store, handoffPhaseNames[i].name, v)
			}
			sum += v
		}
		if math.Abs(sum-h.Total) > 0.001 {
			t.Errorf("%s: the phases add up to %.4f ms, the total is %.4f", store, sum, h.Total)
		}
		// The mean handoff, from the simulator without a trace.
		sc, err := parse(fmt.Sprintf(handoffScenario, store))
		if err != nil {
			t.Fatal(err)
		}
		var mean float64
		for s := range seeds {
			res, err := sim.Run(sc, sim.Options{Seed: 1 + uint64(s)})
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(res.Failovers, func(f sim.Failover) bool { return f.Cause == "stop" })
			if i < 0 {
				t.Fatalf("%s seed %d: no handoff", store, 1+s)
			}
			mean += res.Failovers[i].FailoverMS / seeds
		}
		if math.Abs(mean-h.Total) > 0.001 {
			t.Errorf("%s: the phases' total %.4f ms, the simulator's mean handoff %.4f", store, h.Total, mean)
		}
		// The work's stop is the profile's (a lognormal draw: its mean
		// near the median), the store's part at least a write.
		p := sim.Profiles[store]
		if ws := p.WorkStop.Seconds() * 1000; h.WorkStop < 0.7*ws || h.WorkStop > 1.5*ws {
			t.Errorf("%s: the work's stop %.2f ms, the profile's median %.2f", store, h.WorkStop, ws)
		}
		if rt := p.RoundTrip(true).Seconds() * 1000; h.StorePart() < rt {
			t.Errorf("%s: the store's part %.3f ms, less than a write's round trip %.3f", store, h.StorePart(), rt)
		}
	}
	if _, err := MeasureHandoffs(context.Background(), "zookeeper", 1, 1); err == nil {
		t.Error("an unknown store: no error")
	}
}

// The stacked bars: each bar's segments follow each other and their
// widths add up to the bar of the total; the numbers in the SVG add up.
func TestHandoffBars(t *testing.T) {
	var hs []HandoffPhases
	for _, s := range StoreNames() {
		h, err := MeasureHandoffs(context.Background(), s, 10, 1)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	l := layoutHandoff(hs)
	if len(l.bars) != len(hs) {
		t.Fatalf("%d bars for %d stores", len(l.bars), len(hs))
	}
	for _, bar := range l.bars {
		x := l.x.px(0)
		for i, s := range bar.segs {
			if math.Abs(s.x-x) > 1e-6 || s.w < 0 {
				t.Errorf("%s: segment %d at %.2f (width %.2f), want %.2f", bar.Store, i, s.x, s.w, x)
			}
			x = s.x + s.w
		}
		if want := l.x.px(bar.Total); math.Abs(x-want) > 0.01 {
			t.Errorf("%s: the segments end at %.2f, the total at %.2f", bar.Store, x, want)
		}
		if x+6+textW(bar.totalText(), 11) > l.width {
			t.Errorf("%s: the total's text runs off the plot", bar.Store)
		}
	}
	var b bytes.Buffer
	if err := l.write(&b); err != nil {
		t.Fatal(err)
	}
	total, sum := map[string]float64{}, map[string]float64{}
	store := ""
	for _, e := range parseSVG(t, b.Bytes()) {
		switch e.attrs["class"] {
		case "bar":
			store = e.attrs["data-store"]
			total[store] = num(t, e, "data-total")
		case "seg":
			sum[store] += num(t, e, "data-ms")
		}
	}
	for _, h := range hs {
		if math.Abs(sum[h.Store]-total[h.Store]) > 0.001 || math.Abs(total[h.Store]-h.Total) > 0.0001 {
			t.Errorf("%s: the SVG's segments add up to %.4f, its total %.4f, the handoff's %.4f", h.Store, sum[h.Store], total[h.Store], h.Total)
		}
	}
}

func TestSegmentCrosses(t *testing.T) {
	b := rect{10, 10, 10, 10}
	for _, c := range []struct {
		ln   [4]float64
		want bool
	}{
		{[4]float64{0, 15, 30, 15}, true},  // straight through
		{[4]float64{0, 0, 30, 30}, true},   // diagonally
		{[4]float64{0, 0, 9, 30}, false},   // beside it
		{[4]float64{0, 15, 10, 15}, false}, // ends at its edge
		{[4]float64{15, 15, 15, 15}, false},
		{[4]float64{12, 0, 12, 5}, false}, // short of it
		{[4]float64{12, 0, 12, 12}, true}, // ends inside
	} {
		if got := segmentCrosses(c.ln, b); got != c.want {
			t.Errorf("segmentCrosses(%v) = %v, want %v", c.ln, got, c.want)
		}
	}
}

func TestFmtDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "1m", time.Hour: "1h", 90 * time.Second: "1m30s", 3333 * time.Millisecond: "3.333s",
		500 * time.Millisecond: "500ms", 10 * time.Second: "10s", 0: "0s", time.Hour + time.Second: "1h0m1s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
	if got := fmtSeconds(20); got != "20s" {
		t.Errorf("fmtSeconds(20) = %q", got)
	}
}
