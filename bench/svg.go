package bench

import (
	"cmp"
	"context"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The plots of a sweep (WriteSVG): a scatter of each combination's crash
// failover against the requests it costs, its safety margins drawn in its
// marker, and a stacked bar per store of where a graceful handoff's time
// goes. Both are laid out first (the tests check the layouts: every point
// inside the plot, no marker or label hiding another), then drawn.

// rect is a box in SVG pixels.
type rect struct{ x, y, w, h float64 }

func (a rect) overlaps(b rect) bool {
	return a.x < b.x+b.w && b.x < a.x+a.w && a.y < b.y+b.h && b.y < a.y+a.h
}

func (a rect) contains(b rect) bool {
	return b.x >= a.x-1e-9 && b.y >= a.y-1e-9 && b.x+b.w <= a.x+a.w+1e-9 && b.y+b.h <= a.y+a.h+1e-9
}

// textW is the width a text takes at a font size (sans-serif, a little
// generous: labels are kept apart by it).
func textW(s string, size float64) float64 {
	return float64(len([]rune(s))) * size * 0.6
}

// axis maps data values to pixels, linearly or on a log scale.
type axis struct {
	lo, hi   float64 // data range
	p0, p1   float64 // pixels of lo and hi
	log      bool
	unit     string // appended to tick labels
	duration bool   // tick labels as durations (seconds given)
}

func (a axis) px(v float64) float64 {
	f := (v - a.lo) / (a.hi - a.lo)
	if a.log {
		f = math.Log(v/a.lo) / math.Log(a.hi/a.lo)
	}
	return a.p0 + f*(a.p1-a.p0)
}

// newAxis spans vs (and the extra values, constraints to show), on a log
// scale when they span a factor of 5 or more: 1-2-5 decade ticks.
func newAxis(vs []float64, p0, p1 float64) axis {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if v > 0 {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 0.1, 1
	}
	if hi/lo >= 5 {
		// A margin of 12% of a decade-ish each side.
		return axis{lo: lo / 1.25, hi: hi * 1.25, p0: p0, p1: p1, log: true}
	}
	pad := (hi - lo) * 0.1
	if pad == 0 {
		pad = hi * 0.1
	}
	return axis{lo: max(lo-pad, 0), hi: hi + pad, p0: p0, p1: p1}
}

// ticks are round values inside the axis: 1-2-5 per decade on a log
// scale, about six on a linear one.
func (a axis) ticks() []float64 {
	var out []float64
	if a.log {
		for e := math.Floor(math.Log10(a.lo)); e <= math.Ceil(math.Log10(a.hi)); e++ {
			for _, m := range []float64{1, 2, 5} {
				v := m * math.Pow(10, e)
				v = math.Round(v/math.Pow(10, e-2)) * math.Pow(10, e-2)
				if v >= a.lo && v <= a.hi {
					out = append(out, v)
				}
			}
		}
		return out
	}
	return linTicks(a.lo, a.hi)
}

// linTicks are about six round values covering [lo, hi].
func linTicks(lo, hi float64) []float64 {
	step := math.Pow(10, math.Floor(math.Log10((hi-lo)/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if (hi-lo)/(step*m) <= 7 {
			step *= m
			break
		}
	}
	var out []float64
	for t := math.Ceil(lo/step) * step; t <= hi+step*1e-9; t += step {
		out = append(out, math.Round(t/step)*step)
	}
	return out
}

func (a axis) label(v float64) string {
	if a.duration {
		return fmtSeconds(v)
	}
	return strings.TrimSuffix(fmt.Sprintf("%.4g", v), ".0") + a.unit
}

// fmtSeconds says seconds as a duration: 500ms, 5s, 1m, 1m30s.
func fmtSeconds(v float64) string {
	return fmtDur(time.Duration(v * float64(time.Second)).Round(time.Millisecond))
}

// fmtDur says d as time.Duration does, without its zero minutes and
// seconds: 1m, 1h, 1m30s, 3.333s.
func fmtDur(d time.Duration) string { return trimZeros(d.String()) }

// trimZeros drops a duration text's zero minutes and seconds (1m0s: 1m).
func trimZeros(s string) string {
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Marker classes of the scatter: the tolerated store outage, as a
// fill colour (light: little, dark: much).
var outageClasses = []struct {
	below float64 // seconds
	label string
	color string
}{
	{1, "< 1s", "#fde725"},
	{3, "1–3s", "#7ad151"},
	{10, "3–10s", "#22a884"},
	{30, "10–30s", "#2a788e"},
	{math.Inf(1), "≥ 30s", "#414487"},
}

func outageColor(d Duration) string {
	s := time.Duration(d).Seconds()
	for _, c := range outageClasses {
		if s < c.below {
			return c.color
		}
	}
	return outageClasses[len(outageClasses)-1].color
}

// pauseRadius is a marker's radius for the pause it tolerates: its area
// grows with the pause.
func pauseRadius(d Duration) float64 {
	return math.Min(3.5+2*math.Sqrt(time.Duration(d).Seconds()), 15)
}

// scatterPoint is a combination as the scatter draws it.
type scatterPoint struct {
	Point
	num         int     // 1-based, the sweep's order: the key's row
	x, y        float64 // the data's place (px), before side-by-side
	cx, cy, r   float64
	measured    bool // a crash failover was measured (else: the bottom band)
	unsafe      bool // the sweep's runs or its own checks found it unsafe
	short       bool // it tolerates less than a --tolerate-* constraint asks
	outside     bool // it breaks --max-failover or --max-requests-per-sec
	recommended bool
	frontier    bool // safe, and no safe combination is as fast and cheaper
	label       string
	box         rect // the label's
	leader      bool // the label is away from the marker: a line joins them
}

// markerBox is the box of the marker as drawn (with the recommended's
// ring).
func (s scatterPoint) markerBox() rect {
	r := s.reach()
	return rect{s.cx - r, s.cy - r, 2 * r, 2 * r}
}

// reach is how far the marker reaches from its centre, the
// recommended's ring included.
func (s scatterPoint) reach() float64 {
	if s.recommended {
		return s.r + 4.5
	}
	return s.r
}

// pad is a box grown by d on every side: labels keep that far apart.
func (a rect) pad(d float64) rect { return rect{a.x - d, a.y - d, a.w + 2*d, a.h + 2*d} }

// scatterLayout is the whole scatter, laid out.
type scatterLayout struct {
	width, height float64
	title, sub    string
	plot          rect // the plot area: every marker is inside
	band          rect // inside plot: combinations with no crash failover (h 0: none)
	x, y          axis
	points        []scatterPoint
	frontier      []int // indexes into points, by requests
	c             Constraints
	keyTop        float64
	// The constraints' lines (0: none) and their notes' boxes, which
	// labels keep clear of.
	failLine, reqLine float64
	notes             []rect // in the plot
	reqNoteBox        rect   // above it
}

const (
	labelSize = 11.0
	labelPad  = 2.5 // the least room around a label
	keySize   = 11.0
)

// layoutScatter lays out the scatter of crash failover p99 against the
// requests per second, one point per combination.
func layoutScatter(r *Result, rec *Recommendation) scatterLayout {
	var l scatterLayout
	var c Constraints
	if rec != nil {
		c = rec.Constraints
	}
	l.c = c
	l.width = 1000
	l.plot = rect{80, 64, 600, 440}
	store := r.Store
	if store == "" {
		store = "the default network"
	} else {
		store = "store profile " + store
	}
	l.title = fmt.Sprintf("Crash failover p99 against requests to the store, %s", store)
	l.sub = fmt.Sprintf("%d combinations, %d seeds × %v each, faults %s", len(r.Points), r.Seeds, fmtDur(time.Duration(r.Duration)), strings.Join(r.Faults, ","))
	var xs, ys []float64
	anyUnmeasured := false
	for _, p := range r.Points {
		xs = append(xs, p.RequestsPerSec)
		if p.CrashFailover.N > 0 {
			ys = append(ys, p.CrashFailover.P99/1000)
		} else {
			anyUnmeasured = true
		}
	}
	// Show a constraint's line when it is near the data (within a
	// factor of 3 of its range).
	near := func(vs []float64, v float64) bool {
		if v <= 0 || len(vs) == 0 {
			return false
		}
		return v >= slices.Min(vs)/3 && v <= slices.Max(vs)*3
	}
	if near(xs, c.MaxRequestsPerSec) {
		xs = append(xs, c.MaxRequestsPerSec)
	}
	if mf := c.MaxFailover.Seconds(); near(ys, mf) {
		ys = append(ys, mf)
	}
	plotBottom := l.plot.y + l.plot.h
	if anyUnmeasured {
		l.band = rect{l.plot.x, plotBottom - 30, l.plot.w, 30}
		plotBottom -= 30
	}
	l.x = newAxis(xs, l.plot.x+8, l.plot.x+l.plot.w-8)
	l.x.unit = "/s"
	l.y = newAxis(ys, plotBottom-8, l.plot.y+8)
	l.y.duration = true
	var reasons map[string][]Reason
	if rec != nil {
		reasons = map[string][]Reason{}
		for _, rj := range rec.Rejected {
			reasons[rj.Params.String()] = rj.Reasons
		}
	}
	for i, p := range r.Points {
		sp := scatterPoint{Point: p, num: i + 1, r: pauseRadius(p.Tolerance.Pause), measured: p.CrashFailover.N > 0}
		sp.x = l.x.px(p.RequestsPerSec)
		if sp.measured {
			sp.y = l.y.px(p.CrashFailover.P99 / 1000)
		} else {
			sp.y = l.band.y + l.band.h/2
		}
		rs := reasons[p.Params.String()]
		if rec == nil {
			rs = Constraints{}.Failures(p, r.Faults)
		}
		for _, x := range rs {
			switch x.Constraint {
			case ConstraintSafety:
				sp.unsafe = true
			case ConstraintTolerateRateSkew, ConstraintToleratePause, ConstraintTolerateStoreOutage:
				sp.short = true
			case ConstraintMaxFailover, ConstraintMaxRequestsPerSec:
				sp.outside = true
			}
		}
		if rec != nil && rec.Recommended != nil && rec.Recommended.Params == p.Params {
			sp.recommended = true
		}
		sp.cx, sp.cy = sp.x, sp.y
		l.points = append(l.points, sp)
	}
	// The frontier: safe points no other safe point beats on both
	// failover and requests.
	for i, a := range l.points {
		if a.unsafe || !a.measured {
			continue
		}
		beaten := false
		for j, b := range l.points {
			if i == j || b.unsafe || !b.measured {
				continue
			}
			fa, fb := a.CrashFailover.P99, b.CrashFailover.P99
			if fb <= fa && b.RequestsPerSec <= a.RequestsPerSec && (fb < fa || b.RequestsPerSec < a.RequestsPerSec) {
				beaten = true
				break
			}
		}
		if !beaten {
			l.points[i].frontier = true
			l.frontier = append(l.frontier, i)
		}
	}
	slices.SortStableFunc(l.frontier, func(a, b int) int {
		return cmpF(l.points[a].RequestsPerSec, l.points[b].RequestsPerSec)
	})
	l.constraintLines()
	l.sideBySide()
	l.placeNotes()
	l.placeLabels()
	rows := len(l.points) + 1
	l.keyTop = l.plot.y + l.plot.h + 64
	l.height = l.keyTop + float64(rows)*16 + 40
	// Wide enough for the key's longest row.
	last := keyColumns[len(keyColumns)-1]
	for _, p := range l.points {
		l.width = max(l.width, l.plot.x+last.x+textW(last.cell(p), keySize)+16)
	}
	return l
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// The notes on the constraints' lines.
func (l scatterLayout) failNote() string {
	return "above: crash failover p99 > --max-failover " + fmtDur(l.c.MaxFailover)
}

func (l scatterLayout) reqNote() string {
	return fmt.Sprintf("right of the line: > --max-requests-per-sec %g", l.c.MaxRequestsPerSec)
}

// constraintLines places the lines beyond which a combination breaks
// --max-failover (above) or --max-requests-per-sec (right), when they
// fall inside the plot.
func (l *scatterLayout) constraintLines() {
	p := l.plot
	bottom := p.y + p.h - l.band.h
	if mf := l.c.MaxFailover.Seconds(); mf > 0 && mf < l.y.hi {
		l.failLine = min(l.y.px(mf), bottom)
	}
	if mr := l.c.MaxRequestsPerSec; mr > 0 && mr < l.x.hi {
		l.reqLine = max(l.x.px(mr), p.x)
	}
}

// placeNotes places the lines' notes where no marker is: the failover's
// above its line (below if it must), the requests' along its line.
func (l *scatterLayout) placeNotes() {
	p := l.plot
	top, bottom := p.y, p.y+p.h-l.band.h
	area := rect{p.x, top, p.w, bottom - top}
	var taken []rect
	for _, s := range l.points {
		taken = append(taken, s.markerBox())
	}
	place := func(cands []rect) {
		for _, c := range cands {
			if area.contains(c) && free(c, taken) {
				l.notes = append(l.notes, c)
				taken = append(taken, c)
				return
			}
		}
		if len(cands) > 0 { // nowhere free (the tests find it)
			l.notes = append(l.notes, cands[0])
		}
	}
	if yb := l.failLine; yb > 0 {
		w := textW(l.failNote(), 11)
		var cands []rect
		for _, y := range []float64{yb - 17, yb + 3} {
			for x := p.x + 6; x+w <= p.x+p.w-4; x += 10 {
				cands = append(cands, rect{x, y, w, 14})
			}
		}
		place(cands)
	}
	// The requests' note above the plot, beside its line.
	if xb := l.reqLine; xb > 0 {
		w := textW(l.reqNote(), 11)
		x := xb + 4
		if x+w > l.width-8 {
			x = xb - 4 - w
		}
		l.reqNoteBox = rect{x, p.y - 17, w, 14}
	}
}

// sideBySide moves markers that would overlap (combinations at about the
// same place: often two renew deadlines of one lease and retry period)
// into a row centred on their place, in the sweep's order.
func (l *scatterLayout) sideBySide() {
	n := len(l.points)
	// Groups of markers overlapping, transitively; once together, always
	// (a group laid out anew must not fall on a part of itself).
	parent := make([]int, n)
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		if parent[i] != i {
			parent[i] = find(parent[i])
		}
		return parent[i]
	}
	for range n {
		merged := false
		for i := range n {
			for j := i + 1; j < n; j++ {
				a, b := l.points[i], l.points[j]
				// The band's markers and the plot's never share a group.
				if a.measured != b.measured || find(i) == find(j) {
					continue
				}
				if d := a.reach() + b.reach() + 2; math.Abs(a.cx-b.cx) < d && math.Abs(a.cy-b.cy) < d {
					parent[find(j)] = find(i)
					merged = true
				}
			}
		}
		if !merged {
			return
		}
		groups := map[int][]int{}
		for i := range n {
			groups[find(i)] = append(groups[find(i)], i)
		}
		for _, g := range groups {
			if len(g) < 2 {
				continue
			}
			// A grid of cells as wide as the largest marker, as square
			// as may be, centred on the members' places.
			slices.Sort(g)
			var cx, cy, rmax float64
			for _, i := range g {
				cx += l.points[i].x
				cy += l.points[i].y
				rmax = max(rmax, l.points[i].reach())
			}
			cx /= float64(len(g))
			cy /= float64(len(g))
			cols := int(math.Ceil(math.Sqrt(float64(len(g)))))
			rows := (len(g) + cols - 1) / cols
			cell := 2*rmax + 3
			w, h := float64(cols)*cell-3, float64(rows)*cell-3
			// Keep the grid inside its area: the plot above the band, or
			// the band.
			area := rect{l.plot.x, l.plot.y, l.plot.w, l.plot.h - l.band.h}
			if !l.points[g[0]].measured {
				area = l.band
			}
			x0 := min(max(cx-w/2, area.x+1), area.x+area.w-1-w)
			y0 := min(max(cy-h/2, area.y+1), area.y+area.h-1-h)
			for k, i := range g {
				p := &l.points[i]
				row, col := k/cols, k%cols
				inRow := min(cols, len(g)-row*cols) // the last row, centred
				off := (float64(cols-inRow) * cell) / 2
				p.cx, p.cy = x0+off+float64(col)*cell+rmax, y0+float64(row)*cell+rmax
			}
		}
	}
}

// placeLabels gives every point a label (its key number; the recommended
// and the frontier's also their lease/renew/retry), each at the first of
// a few places around the marker, then farther, where it overlaps no
// marker, no other label and no leader line, inside the plot; a label
// away from its marker has a leader line, which crosses no other marker
// or label.
func (l *scatterLayout) placeLabels() {
	order := make([]int, len(l.points))
	for i := range order {
		order[i] = i
	}
	prio := func(p scatterPoint) int {
		switch {
		case p.recommended:
			return 0
		case p.frontier:
			return 1
		}
		return 2
	}
	// Within a priority, the most crowded first: a marker amid others
	// needs its way out before their labels close it.
	crowd := make([]int, len(l.points))
	for i, p := range l.points {
		for _, q := range l.points {
			if math.Hypot(p.cx-q.cx, p.cy-q.cy) < 60 {
				crowd[i]++
			}
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(prio(l.points[a])-prio(l.points[b]), crowd[b]-crowd[a])
	})
	marks := make([]rect, len(l.points))
	for i, p := range l.points {
		marks[i] = p.markerBox()
	}
	labels := slices.Clone(l.notes)
	var lines [][4]float64
	inner := rect{l.plot.x + 2, l.plot.y + 2, l.plot.w - 4, l.plot.h - 4}
	if l.band.h > 0 {
		inner.h -= l.band.h
	}
	// ok reports whether point i's label may be at b, with a leader line
	// or not; crossing other markers with it when cross says so.
	ok := func(i int, b rect, leader, cross bool) bool {
		pb := b.pad(labelPad)
		if !free(pb, marks) || !free(pb, labels) {
			return false
		}
		for _, ln := range lines {
			if segmentCrosses(ln, pb) {
				return false
			}
		}
		if !leader {
			return true
		}
		ln := l.points[i].leaderLine(b)
		for j, m := range marks {
			if j != i && !cross && segmentCrosses(ln, m) {
				return false
			}
		}
		for _, t := range labels {
			if segmentCrosses(ln, t) {
				return false
			}
		}
		return true
	}
	for _, i := range order {
		p := &l.points[i]
		p.label = fmt.Sprint(p.num)
		if p.recommended || p.frontier {
			p.label = fmt.Sprintf("%d: %s/%s/%s %s", p.num, fmtDur(p.LeaseDuration), fmtDur(p.RenewDeadline.Round(time.Millisecond)), fmtDur(p.RetryPeriod.Round(time.Millisecond)), follow(p.Watch))
		}
		if p.recommended {
			p.label = "recommended " + p.label
		}
		// A label that finds no room in full is its number alone (the
		// key has the rest).
		texts := []string{p.label}
		if p.label != fmt.Sprint(p.num) {
			texts = append(texts, fmt.Sprint(p.num))
		}
		placed := false
		for _, text := range texts {
			p.label = text
			placed = l.placeLabel(i, inner, ok)
			if placed {
				break
			}
		}
		if !placed {
			// The plot is full: at the right of the marker (the tests
			// find it).
			h := labelSize + 3
			p.box = rect{p.cx + p.reach() + 3, p.cy - h/2, textW(p.label, labelSize), h}
		}
		labels = append(labels, p.box)
		if p.leader {
			lines = append(lines, p.leaderLine(p.box))
		}
	}
}

// placeLabel places point i's label (p.label) where ok allows, in inner
// (the band for a point without a crash failover): around the marker,
// nearest first, then anywhere with a leader line. It reports whether it
// found room.
func (l *scatterLayout) placeLabel(i int, inner rect, ok func(i int, b rect, leader, cross bool) bool) bool {
	p := &l.points[i]
	placed := false
	w, h := textW(p.label, labelSize), labelSize+3
	area := inner
	if !p.measured {
		area = l.band
	}
	for _, d := range []float64{3, 10, 20, 34, 50, 70, 95, 125, 160} {
		gap := p.reach() + d
		cands := []rect{
			{p.cx + gap, p.cy - h/2, w, h},     // right
			{p.cx - gap - w, p.cy - h/2, w, h}, // left
			{p.cx - w/2, p.cy - gap - h, w, h}, // above
			{p.cx - w/2, p.cy + gap, w, h},     // below
		}
		// And at the corners: above or below, the label's end or
		// start at the marker.
		for _, dy := range []float64{-gap*0.7 - h, gap * 0.7} {
			cands = append(cands, rect{p.cx + gap*0.7, p.cy + dy, w, h}, rect{p.cx - gap*0.7 - w, p.cy + dy, w, h},
				rect{p.cx - w/4, p.cy + dy, w, h}, rect{p.cx - 3*w/4, p.cy + dy, w, h})
		}
		for _, b := range cands {
			if area.contains(b) && ok(i, b, d > 10, false) {
				p.box, p.leader, placed = b, d > 10, true
				break
			}
		}
		if placed {
			break
		}
	}
	// Nowhere around it: the free place nearest to it (within 220px),
	// joined to it by a line — over other markers only when it must (one
	// amid a crowd).
	for _, cross := range []bool{false, true} {
		best := math.Inf(1)
		for y := area.y; !placed && y+h <= area.y+area.h; y += 4 {
			for x := area.x; x+w <= area.x+area.w; x += 4 {
				b := rect{x, y, w, h}
				d := math.Hypot(x+w/2-p.cx, y+h/2-p.cy)
				if d >= best || d > 220 || !ok(i, b, true, cross) {
					continue
				}
				best, p.box, p.leader = d, b, true
			}
		}
		if !math.IsInf(best, 1) {
			placed = true
		}
		if placed {
			break
		}
	}
	return placed
}

// leaderLine is the line from the marker's edge to the nearest point of
// its label's box b.
func (s scatterPoint) leaderLine(b rect) [4]float64 {
	x := min(max(s.cx, b.x), b.x+b.w)
	y := min(max(s.cy, b.y), b.y+b.h)
	d := math.Hypot(x-s.cx, y-s.cy)
	if d == 0 {
		return [4]float64{x, y, x, y}
	}
	r := s.reach() + 1
	return [4]float64{s.cx + (x-s.cx)*r/d, s.cy + (y-s.cy)*r/d, x, y}
}

// segmentCrosses reports whether the segment ln (x1, y1, x2, y2) passes
// through the inside of b (clipping it to b, Liang–Barsky).
func segmentCrosses(ln [4]float64, b rect) bool {
	x1, y1, dx, dy := ln[0], ln[1], ln[2]-ln[0], ln[3]-ln[1]
	if dx == 0 && dy == 0 {
		return false
	}
	t0, t1 := 0.0, 1.0
	for _, e := range [][2]float64{{-dx, x1 - b.x}, {dx, b.x + b.w - x1}, {-dy, y1 - b.y}, {dy, b.y + b.h - y1}} {
		p, q := e[0], e[1]
		if p == 0 {
			if q <= 0 {
				return false
			}
			continue
		}
		t := q / p
		if p < 0 {
			t0 = max(t0, t)
		} else {
			t1 = min(t1, t)
		}
	}
	// Touching the box's edge at the line's end is not crossing it.
	return t1-t0 > 1e-6
}

// free reports whether b overlaps none of taken.
func free(b rect, taken []rect) bool {
	for _, t := range taken {
		if b.overlaps(t) {
			return false
		}
	}
	return true
}

func follow(watch bool) string {
	if watch {
		return "watch"
	}
	return "poll"
}

// svgWriter collects an SVG's elements.
type svgWriter struct{ strings.Builder }

func (b *svgWriter) f(format string, args ...any) { fmt.Fprintf(b, format, args...); b.WriteByte('\n') }

func esc(s string) string { return html.EscapeString(s) }

// text writes a text element; anchor "start", "middle" or "end".
func (b *svgWriter) text(x, y float64, size float64, anchor, s string, extra string) {
	b.f(`<text x="%.1f" y="%.1f" font-size="%.0f" text-anchor="%s"%s>%s</text>`, x, y, size, anchor, extra, esc(s))
}

// marker draws a combination's marker: a circle (watch) or a square
// (poll), filled by the outage class, hollow when short of a tolerance.
func (b *svgWriter) marker(cx, cy, r float64, watch bool, color string, hollow bool, attrs string) {
	fill, stroke, sw := color, "#333", 1.0
	if hollow {
		fill, stroke, sw = "white", color, 2.5
		if color == outageClasses[0].color {
			stroke = "#c9b400" // the lightest class, visible as an outline
		}
	}
	if watch {
		b.f(`<circle%s cx="%.1f" cy="%.1f" r="%.1f" fill="%s" stroke="%s" stroke-width="%.1f" fill-opacity="0.9"/>`, attrs, cx, cy, r, fill, stroke, sw)
		return
	}
	s := r * 0.89 // a square of about the circle's area
	b.f(`<rect%s x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" stroke="%s" stroke-width="%.1f" fill-opacity="0.9"/>`, attrs, cx-s, cy-s, 2*s, 2*s, fill, stroke, sw)
}

// writeScatter draws the laid-out scatter.
func (l scatterLayout) write(w io.Writer) error {
	var b svgWriter
	b.f(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`, l.width, l.height, l.width, l.height)
	b.f(`<rect width="100%%" height="100%%" fill="white"/>`)
	b.text(l.plot.x, 24, 16, "start", l.title, ` font-weight="bold"`)
	b.text(l.plot.x, 44, 12, "start", l.sub, ` fill="#444"`)
	p := l.plot
	b.f(`<g class="plot-area" data-x="%.1f" data-y="%.1f" data-w="%.1f" data-h="%.1f">`, p.x, p.y, p.w, p.h)
	b.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`, p.x, p.y, p.w, p.h)
	b.f(`</g>`)
	// The region outside the constraints, shaded.
	top, bottom := p.y, p.y+p.h-l.band.h
	if yb := l.failLine; yb > 0 {
		b.f(`<rect class="outside" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#e8e8e8"/>`, p.x, top, p.w, yb-top)
		b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#777" stroke-dasharray="6 4"/>`, p.x, yb, p.x+p.w, yb)
		n := l.notes[0]
		b.text(n.x, n.y+n.h-3, 11, "start", l.failNote(), ` fill="#555" stroke="#e8e8e8" stroke-width="3" paint-order="stroke"`)
	}
	if xb := l.reqLine; xb > 0 {
		b.f(`<rect class="outside" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#e8e8e8"/>`, xb, top, p.x+p.w-xb, bottom-top)
		b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#777" stroke-dasharray="6 4"/>`, xb, top, xb, bottom)
		b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#777" stroke-dasharray="6 4"/>`, xb, top-16, xb, top)
		n := l.reqNoteBox
		b.text(n.x, n.y+n.h-3, 11, "start", l.reqNote(), ` fill="#555"`)
	}
	if l.band.h > 0 {
		b.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#f4f4f4" stroke="#999"/>`, l.band.x, l.band.y, l.band.w, l.band.h)
		b.text(l.band.x+l.band.w-4, l.band.y+l.band.h-4, 10, "end", "no crash failover measured", ` fill="#666"`)
	}
	// Grid and ticks.
	for _, t := range l.x.ticks() {
		x := l.x.px(t)
		b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" stroke-opacity="0.08"/>`, x, p.y, x, bottom)
		b.text(x, p.y+p.h+16, 11, "middle", l.x.label(t), "")
	}
	for _, t := range l.y.ticks() {
		y := l.y.px(t)
		b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" stroke-opacity="0.08"/>`, p.x, y, p.x+p.w, y)
		b.text(p.x-6, y+4, 11, "end", l.y.label(t), "")
	}
	scale := func(a axis) string {
		if a.log {
			return ", log scale"
		}
		return ""
	}
	b.text(p.x+p.w/2, p.y+p.h+36, 12, "middle", "requests per second the store serves, all candidates together"+scale(l.x), "")
	b.f(`<text transform="translate(20 %.1f) rotate(-90)" text-anchor="middle">%s</text>`, p.y+p.h/2, esc("crash failover p99 (seconds"+scale(l.y)+")"))
	// The frontier, a dashed line through its points (their data places).
	if len(l.frontier) > 1 {
		var d strings.Builder
		for k, i := range l.frontier {
			cmd := "L"
			if k == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, l.points[i].x, l.points[i].y)
		}
		b.f(`<path class="frontier" d="%s" stroke="#555" stroke-width="1.5" stroke-dasharray="3 3" fill="none"/>`, strings.TrimSpace(d.String()))
	}
	// Leader lines, then markers, then labels on top.
	for _, s := range l.points {
		if s.leader {
			ln := s.leaderLine(s.box)
			b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#666" stroke-width="0.8"/>`, ln[0], ln[1], ln[2], ln[3])
		}
	}
	for _, s := range l.points {
		class := "point"
		if s.unsafe {
			class += " unsafe"
		}
		if s.recommended {
			class += " recommended"
		}
		if s.frontier {
			class += " frontier"
		}
		b.f(`<g class="%s" data-combo="%s" data-cx="%.1f" data-cy="%.1f" data-r="%.1f">`, class, esc(s.Params.String()), s.cx, s.cy, s.r)
		b.f(`<title>%s</title>`, esc(pointTip(s)))
		if s.recommended {
			b.f(`<circle cx="%.1f" cy="%.1f" r="%.1f" fill="none" stroke="black" stroke-width="2.5"/>`, s.cx, s.cy, s.r+3)
		}
		b.marker(s.cx, s.cy, s.r, s.Watch, outageColor(s.Tolerance.Outage), s.short, "")
		if s.unsafe {
			k := s.r * 0.85
			b.f(`<path d="M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f" stroke="#d62728" stroke-width="3" stroke-linecap="round"/>`,
				s.cx-k, s.cy-k, s.cx+k, s.cy+k, s.cx-k, s.cy+k, s.cx+k, s.cy-k)
		}
		b.f(`</g>`)
	}
	for _, s := range l.points {
		weight := ""
		if s.recommended || s.frontier {
			weight = ` font-weight="bold"`
		}
		b.f(`<text class="label" x="%.1f" y="%.1f" font-size="%.0f" data-w="%.1f"%s stroke="white" stroke-width="3" stroke-opacity="0.8" paint-order="stroke">%s</text>`, s.box.x, s.box.y+s.box.h-4, labelSize, s.box.w, weight, esc(s.label))
	}
	l.writeLegend(&b)
	l.writeKey(&b)
	b.f(`</svg>`)
	_, err := io.WriteString(w, b.String())
	return err
}

func pointTip(s scatterPoint) string {
	return fmt.Sprintf("%d: %s: crash failover p99 %s, %.3g requests/s; tolerates a pause of %v, a store outage of %v, a clock-rate skew of %.3g",
		s.num, s.Params, fmtMS(s.CrashFailover.P99), s.RequestsPerSec,
		time.Duration(s.Tolerance.Pause).Round(time.Millisecond), time.Duration(s.Tolerance.Outage).Round(time.Millisecond), s.Tolerance.Skew)
}

// writeLegend draws the legend at the right of the plot.
func (l scatterLayout) writeLegend(b *svgWriter) {
	x := l.plot.x + l.plot.w + 24
	y := l.plot.y + 4
	line := func(s string, extra string) {
		b.text(x, y, 11, "start", s, extra)
		y += 16
	}
	line("how to read a point", ` font-weight="bold"`)
	b.marker(x+8, y-4, 6, true, "#bbb", false, "")
	b.text(x+22, y, 11, "start", "followers watch", "")
	y += 18
	b.marker(x+8, y-4, 6, false, "#bbb", false, "")
	b.text(x+22, y, 11, "start", "followers poll", "")
	y += 24
	line("size: pause tolerated", ` font-weight="bold"`)
	px := x + 8
	for _, s := range []float64{1, 5, 20} {
		r := pauseRadius(Duration(time.Duration(s * float64(time.Second))))
		b.f(`<circle cx="%.1f" cy="%.1f" r="%.1f" fill="#bbb" stroke="#333"/>`, px+r, y+12, r)
		b.text(px+r, y+12+r+13, 11, "middle", fmtSeconds(s), "")
		px += 2*r + 26
	}
	y += 62
	line("colour: store outage tolerated", ` font-weight="bold"`)
	for _, c := range outageClasses {
		b.f(`<rect x="%.1f" y="%.1f" width="14" height="12" fill="%s" stroke="#333"/>`, x+1, y-10, c.color)
		b.text(x+22, y, 11, "start", c.label, "")
		y += 16
	}
	y += 8
	line("clock-rate skew tolerated", ` font-weight="bold"`)
	if len(l.points) > 0 {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, s := range l.points {
			lo, hi = min(lo, s.Tolerance.Skew), max(hi, s.Tolerance.Skew)
		}
		span := fmt.Sprintf("%.3g", lo)
		if hi > lo {
			span = fmt.Sprintf("from %.3g to %.3g", lo, hi)
		}
		line("(fastest/slowest clock): "+span+";", "")
	}
	line("each point's in the key (skew≤)", "")
	y += 8
	b.f(`<circle cx="%.1f" cy="%.1f" r="9" fill="none" stroke="black" stroke-width="2.5"/>`, x+8, y-4)
	b.f(`<circle cx="%.1f" cy="%.1f" r="6" fill="#bbb" stroke="#333"/>`, x+8, y-4)
	b.text(x+24, y, 11, "start", "recommended (--recommend)", "")
	y += 22
	k := 5.0
	b.f(`<circle cx="%.1f" cy="%.1f" r="6" fill="#bbb" stroke="#333"/>`, x+8, y-4)
	b.f(`<path d="M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f" stroke="#d62728" stroke-width="3" stroke-linecap="round"/>`, x+8-k, y-4-k, x+8+k, y-4+k, x+8-k, y-4+k, x+8+k, y-4-k)
	b.text(x+24, y, 11, "start", "unsafe in the sweep's runs", "")
	y += 20
	b.marker(x+8, y-4, 6, true, outageClasses[2].color, true, "")
	b.text(x+24, y, 11, "start", "hollow: tolerates less than", "")
	y += 14
	b.text(x+24, y, 11, "start", "a --tolerate-* constraint asks", "")
	y += 20
	b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-width="1.5" stroke-dasharray="3 3"/>`, x, y-4, x+18, y-4)
	b.text(x+24, y, 11, "start", "frontier: no safe combination", "")
	y += 14
	b.text(x+24, y, 11, "start", "is both faster and cheaper", "")
	y += 20
	b.f(`<rect x="%.1f" y="%.1f" width="18" height="12" fill="#e8e8e8" stroke="#777" stroke-dasharray="3 2"/>`, x, y-10)
	b.text(x+24, y, 11, "start", "grey: outside --max-failover", "")
	y += 14
	b.text(x+24, y, 11, "start", "or --max-requests-per-sec", "")
	y += 22
	line("Combinations at one place are", ` fill="#444"`)
	line("drawn side by side. Numbers:", ` fill="#444"`)
	line("the key's rows.", ` fill="#444"`)
}

// keyColumns are the key's columns: header, anchor, and the cell.
var keyColumns = []struct {
	head   string
	x      float64 // offset from the key's left
	anchor string
	cell   func(s scatterPoint) string
}{
	{"#", 18, "end", func(s scatterPoint) string { return fmt.Sprint(s.num) }},
	{"lease", 70, "end", func(s scatterPoint) string { return fmtDur(s.LeaseDuration) }},
	{"renew", 125, "end", func(s scatterPoint) string { return fmtDur(s.RenewDeadline.Round(time.Millisecond)) }},
	{"retry", 180, "end", func(s scatterPoint) string { return fmtDur(s.RetryPeriod.Round(time.Millisecond)) }},
	{"nodes", 225, "end", func(s scatterPoint) string { return fmt.Sprint(s.Nodes) }},
	{"follow", 275, "end", func(s scatterPoint) string { return follow(s.Watch) }},
	{"crash p99", 350, "end", func(s scatterPoint) string {
		if !s.measured {
			return "—"
		}
		return trimZeros(fmtMS(s.CrashFailover.P99))
	}},
	{"req/s", 405, "end", func(s scatterPoint) string { return fmt.Sprintf("%.3g", s.RequestsPerSec) }},
	{"pause≤", 465, "end", func(s scatterPoint) string {
		return fmtDur(time.Duration(s.Tolerance.Pause).Round(time.Millisecond))
	}},
	{"outage≤", 530, "end", func(s scatterPoint) string {
		return fmtDur(time.Duration(s.Tolerance.Outage).Round(time.Millisecond))
	}},
	{"skew≤", 580, "end", func(s scatterPoint) string { return fmt.Sprintf("%.3g", s.Tolerance.Skew) }},
	{"", 600, "start", func(s scatterPoint) string {
		var parts []string
		switch {
		case s.recommended:
			parts = append(parts, "recommended")
		case s.unsafe:
			parts = append(parts, "UNSAFE")
		}
		if s.frontier {
			parts = append(parts, "frontier")
		}
		if s.short {
			parts = append(parts, "tolerates less than asked")
		}
		if s.outside {
			parts = append(parts, "outside the limits")
		}
		return strings.Join(parts, ", ")
	}},
}

// writeKey draws the key: a row per combination, numbered as the points.
func (l scatterLayout) writeKey(b *svgWriter) {
	x0, y := l.plot.x, l.keyTop
	b.text(x0, y-14, 12, "start", "key: the points' numbers", ` font-weight="bold"`)
	for _, c := range keyColumns {
		b.text(x0+c.x, y, keySize, c.anchor, c.head, ` font-weight="bold"`)
	}
	for i, s := range l.points {
		y += 16
		if i%2 == 0 {
			b.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="16" fill="#f3f3f3"/>`, x0-4, y-12, l.width-x0-16)
		}
		extra := ""
		if s.unsafe {
			extra = ` fill="#b00"`
		}
		for _, c := range keyColumns {
			b.text(x0+c.x, y, keySize, c.anchor, c.cell(s), extra)
		}
	}
}

// layoutHandoff lays out the stacked bars of the handoffs' phases.
type handoffLayout struct {
	width, height float64
	plot          rect
	x             axis
	bars          []handoffBar
	seeds         int
}

// handoffBar is one store's bar: its segments' boxes, in phase order.
type handoffBar struct {
	HandoffPhases
	y, h float64
	segs []rect
}

var handoffPhaseNames = []struct{ name, color string }{
	{"the work stops", "#e6550d"},
	{"release written", "#08519c"},
	{"next leader hears of it", "#3182bd"},
	{"takeover (read, write)", "#9ecae1"},
	{"the new work starts", "#fdae6b"},
}

func layoutHandoff(hs []HandoffPhases) handoffLayout {
	l := handoffLayout{width: 900}
	const barH, gap = 30.0, 36.0
	// The plot leaves room at its right for the longest total's text.
	maxT, textMax := 1.0, 0.0
	for _, h := range hs {
		maxT = max(maxT, h.Total)
		l.seeds = h.Handoffs
		textMax = max(textMax, textW(handoffBar{HandoffPhases: h}.totalText(), 11))
	}
	l.plot = rect{110, 100, l.width - 110 - textMax - 20, float64(len(hs))*(barH+gap) + gap}
	hi := linTicks(0, maxT*1.05)
	l.x = axis{lo: 0, hi: math.Max(hi[len(hi)-1], maxT*1.05), p0: l.plot.x, p1: l.plot.x + l.plot.w, unit: ""}
	y := l.plot.y + gap
	for _, h := range hs {
		bar := handoffBar{HandoffPhases: h, y: y, h: barH}
		at := 0.0
		for _, v := range h.phases() {
			x0, x1 := l.x.px(at), l.x.px(at+v)
			bar.segs = append(bar.segs, rect{x0, y, x1 - x0, barH})
			at += v
		}
		l.bars = append(l.bars, bar)
		y += barH + gap
	}
	l.height = l.plot.y + l.plot.h + 100
	return l
}

// totalText is what the bar's end says.
func (bar handoffBar) totalText() string {
	return fmt.Sprintf("%.1f ms: store %s, work %s", bar.Total, fmtPhase(bar.StorePart()), fmtPhase(bar.WorkStop+bar.WorkStart))
}

// fmtPhase says a phase's milliseconds: 11 µs, 0.45 ms, 4.3 ms.
func fmtPhase(v float64) string {
	if v < 0.1 {
		return fmt.Sprintf("%.0f µs", v*1000)
	}
	if v < 1 {
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}

func (l handoffLayout) write(w io.Writer) error {
	var b svgWriter
	b.f(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`, l.width, l.height, l.width, l.height)
	b.f(`<rect width="100%%" height="100%%" fill="white"/>`)
	b.text(l.plot.x, 24, 16, "start", "Where a graceful handoff's time goes, per store profile", ` font-weight="bold"`)
	b.text(l.plot.x, 44, 12, "start", fmt.Sprintf("from the leader's stop to the next leader's work running; the mean of %d simulated handoffs each", l.seeds), ` fill="#444"`)
	// The legend: a row of swatches, in the phases' order.
	x, y := l.plot.x, 72.0
	for _, p := range handoffPhaseNames {
		if x+18+textW(p.name, 11) > l.width-10 {
			x, y = l.plot.x, y+18
		}
		b.f(`<rect x="%.1f" y="%.1f" width="14" height="12" fill="%s"/>`, x, y-10, p.color)
		b.text(x+18, y, 11, "start", p.name, "")
		x += 18 + textW(p.name, 11) + 14
	}
	p := l.plot
	for _, t := range l.x.ticks() {
		xx := l.x.px(t)
		b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" stroke-opacity="0.1"/>`, xx, p.y, xx, p.y+p.h)
		b.text(xx, p.y+p.h+16, 11, "middle", l.x.label(t), "")
	}
	b.f(`<path d="M%.1f %.1f V%.1f H%.1f" stroke="#333" fill="none"/>`, p.x, p.y, p.y+p.h, p.x+p.w)
	b.text(p.x+p.w/2, p.y+p.h+36, 12, "middle", "milliseconds (mean)", "")
	for _, bar := range l.bars {
		b.text(p.x-8, bar.y+bar.h/2+4, 12, "end", bar.Store, ` font-weight="bold"`)
		b.f(`<g class="bar" data-store="%s" data-total="%.4f">`, esc(bar.Store), bar.Total)
		var narrow []string
		for i, s := range bar.segs {
			v := bar.phases()[i]
			b.f(`<rect class="seg" x="%.2f" y="%.1f" width="%.2f" height="%.1f" fill="%s" data-ms="%.4f"><title>%s</title></rect>`,
				s.x, s.y, s.w, s.h, handoffPhaseNames[i].color, v, esc(fmt.Sprintf("%s: %s: %.2f ms", bar.Store, handoffPhaseNames[i].name, v)))
			lbl := fmt.Sprintf("%.1f", v)
			if textW(lbl, 10)+4 <= s.w {
				fill := "white"
				if i >= 3 {
					fill = "black"
				}
				b.text(s.x+s.w/2, s.y+s.h/2+4, 10, "middle", lbl, fmt.Sprintf(` fill="%s"`, fill))
			} else {
				narrow = append(narrow, fmt.Sprintf("%s %s", handoffPhaseNames[i].name, fmtPhase(v)))
			}
		}
		b.f(`</g>`)
		if len(narrow) > 0 {
			b.text(p.x+4, bar.y+bar.h+13, 10, "start", "too narrow to number: "+strings.Join(narrow, ", "), ` fill="#444"`)
		}
		end := bar.segs[len(bar.segs)-1]
		b.text(end.x+end.w+6, bar.y+bar.h/2+4, 11, "start",
			bar.totalText(), "")
	}
	note := p.y + p.h + 62
	b.text(p.x, note, 11, "start", "Three candidates watching the lock; the store's part (blue) is the profile's network, service and watch times; the work's", ` fill="#444"`)
	b.text(p.x, note+15, 11, "start", "stop and start (orange) are leasehold run's guard and command, the same on every store.", ` fill="#444"`)
	b.f(`</svg>`)
	_, err := io.WriteString(w, b.String())
	return err
}

// SVGFiles names the files WriteSVG writes for a sweep on store ("": the
// default network).
func SVGFiles(store string) []string {
	name := "tradeoff.svg"
	if store != "" {
		name = "tradeoff-" + store + ".svg"
	}
	return []string{name, "handoff.svg"}
}

// WriteSVG writes the sweep's plots into dir (SVGFiles): tradeoff-STORE.svg,
// each combination's crash failover p99 against the requests per second
// it costs, its safety margins in its marker, the region outside rec's
// constraints shaded and its recommended combination ringed (rec may be
// nil); and handoff.svg, where a graceful handoff's time goes on each
// store profile, simulated with the sweep's seeds. It returns the files
// written.
func (r *Result) WriteSVG(ctx context.Context, dir string, rec *Recommendation) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var hs []HandoffPhases
	for _, s := range StoreNames() {
		h, err := MeasureHandoffs(ctx, s, r.Seeds, r.Seed)
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
	}
	names := SVGFiles(r.Store)
	var files []string
	for i, write := range []func(io.Writer) error{layoutScatter(r, rec).write, layoutHandoff(hs).write} {
		path := filepath.Join(dir, names[i])
		out, err := os.Create(path)
		if err != nil {
			return files, err
		}
		if err := write(out); err != nil {
			out.Close()
			return files, err
		}
		if err := out.Close(); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}
