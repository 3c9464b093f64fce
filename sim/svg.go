package sim

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

// Timeline is what the SVG shows: each node's state over true time, the
// faults, the leaderless spans, failed renewals and rejected fenced
// writes, and (from the Result) the dual leaderships.
type Timeline struct {
	Nodes      []string
	End        time.Duration
	Changes    []Change
	Faults     []Mark // Node -1: the store's (store_down)
	Leaderless []Span
	Dots       []Dot
	Runs       []CronRun // with cron: every slot's run, in slot order
}

// CronRun is one run of a cron slot on a node's lane.
type CronRun struct {
	Node     int
	From, To time.Duration // To is the end of the timeline for a run still going
	Slot     string
	CutShort bool // never marked done
	Rerun    bool
}

// Span is an interval of true time.
type Span struct{ From, To time.Duration }

// Dot is an instant on a node's lane.
type Dot struct {
	At   time.Duration
	Node int
	Kind string // DotRenewFailed or DotFenceRejected
}

// The kinds of dots.
const (
	DotRenewFailed   = "renew-failed"   // a leader's renewal failed or timed out
	DotFenceRejected = "fence-rejected" // the fenced resource rejected a write
)

// Change is a node entering a state; Cut tells whether it is partitioned.
type Change struct {
	At    time.Duration
	Node  int
	State string // following, leading, paused, crashed, stopped
	Cut   bool
}

// Mark is a fault on the timeline.
type Mark struct {
	At   time.Duration
	Node int
	Kind FaultKind
	For  time.Duration
	By   time.Duration // store_restore: how far back
}

// mark records the node's displayed state if it changed.
func (s *sim) mark(n *node) {
	if s.timeline == nil {
		return
	}
	st := "following"
	switch {
	case n.state == crashed:
		st = "crashed"
	case n.state == exited:
		st = "stopped"
	case n.paused:
		st = "paused"
	case n.leading:
		st = "leading"
	}
	t := s.timeline
	for i := len(t.Changes) - 1; i >= 0; i-- {
		if c := t.Changes[i]; c.Node == n.idx {
			if c.State == st && c.Cut == n.cut {
				return
			}
			break
		}
	}
	t.Changes = append(t.Changes, Change{At: s.now, Node: n.idx, State: st, Cut: n.cut})
}

var stateColor = map[string]string{
	"following": "#cfd8e3",
	"leading":   "#2e9d5b",
	"paused":    "#f0a830",
	"crashed":   "#3b3b3b",
	"stopped":   "#9a9a9a",
}

// WriteSVG draws the run's timeline: a lane per node, faults marked, dual
// leadership in red on the lanes of the nodes involved, leaderless time,
// failed renewals and rejected fenced writes, a time axis at round
// intervals and a legend. The run must have been made with
// Options.Timeline.
func (r *Result) WriteSVG(w io.Writer) error {
	if r.Timeline == nil {
		return fmt.Errorf("sim: the run kept no timeline (Options.Timeline)")
	}
	return r.WriteSVGWindow(w, 0, r.Timeline.End)
}

// WriteSVGWindow draws the part of the timeline from true instant from to
// to, as WriteSVG draws the whole: a zoomed view of one fault of an
// hour-long run, say.
func (r *Result) WriteSVGWindow(w io.Writer, from, to time.Duration) error {
	t := r.Timeline
	if t == nil {
		return fmt.Errorf("sim: the run kept no timeline (Options.Timeline)")
	}
	if from < 0 || to > t.End || from >= to {
		return fmt.Errorf("sim: the window [%v, %v] is not within the run [0, %v]", from, to, t.End)
	}
	// in clips an interval to the window; ok is false when nothing is left.
	in := func(a, b time.Duration) (time.Duration, time.Duration, bool) {
		a, b = max(a, from), min(b, to)
		return a, b, a < b || a == b && a >= from && a <= to
	}
	const (
		left, right, top = 70.0, 20.0, 74.0
		width            = 1200.0
		lane, gap        = 26.0, 16.0
	)
	plot := width - left - right
	height := top + float64(len(t.Nodes))*(lane+gap) + 110
	if len(t.Runs) > 0 {
		height += 22 // a third row of the legend
	}
	x := func(d time.Duration) float64 { return left + plot*float64(d-from)/float64(to-from) }
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }

	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	window := ""
	if from != 0 || to != t.End {
		window = fmt.Sprintf(", from %s to %s", fmtTick(from), fmtTick(to))
	}
	p(`<text x="%.0f" y="22" font-size="15" font-weight="bold">%s, seed %d%s</text>`+"\n", left, html.EscapeString(r.Scenario), r.Seed, window)
	plural := "s"
	if len(r.Failovers) == 1 {
		plural = ""
	}
	cron := ""
	if c := r.Cron; c != nil {
		cron = fmt.Sprintf("; cron: %d slots due, %d missed, %d run twice, %d overlapping", c.Due, c.Missed, c.Duplicated, c.OverlappingRuns)
	}
	p(`<text x="%.0f" y="40" fill="#555">%d failover%s, leaderless %s, dual leadership %s, fenced writes %d/%d/%d (accepted/rejected/stale)%s</text>`+"\n",
		left, len(r.Failovers), plural, fmtMS(r.LeaderlessMSTotal), fmtMS(r.DualLeaderMS),
		r.FencedWrites.Accepted, r.FencedWrites.Rejected, r.FencedWrites.StaleAccepted, html.EscapeString(cron))

	laneY := func(i int) float64 { return top + float64(i)*(lane+gap) }
	bottom := laneY(len(t.Nodes)) - gap
	lanes := map[string]int{}
	for i, id := range t.Nodes {
		lanes[id] = i
	}

	// The store's outages: grey bands over every lane, labelled above.
	storeLabel := -1e9
	for _, f := range t.Faults {
		a, b, ok := in(f.At, min(f.At+f.For, t.End))
		if f.Node >= 0 || !ok {
			continue
		}
		x0, x1 := x(a), x(b)
		label := string(f.Kind) + " " + f.For.String()
		if f.Kind != StoreDown { // an instant: the store forgot
			label = string(f.Kind)
			if f.Kind == StoreRestore {
				label += " back " + f.By.String()
			}
			p(`<rect x="%.2f" y="%.0f" width="2" height="%.1f" fill="#7030a0"><title>%s at %s</title></rect>`+"\n",
				x0-1, top-4, bottom-top+8, html.EscapeString(label), f.At.Round(time.Millisecond))
		} else {
			p(`<rect x="%.2f" y="%.0f" width="%.2f" height="%.1f" fill="#555" fill-opacity="0.18"><title>%s %s at %s</title></rect>`+"\n",
				x0, top-4, math.Max(x1-x0, 2), bottom-top+8, f.Kind, f.For, f.At.Round(time.Millisecond))
		}
		if x0-storeLabel >= 6*float64(len(label))+8 {
			p(`<text x="%.2f" y="%.0f" font-size="10" fill="#333">%s</text>`+"\n", x0+3, top-18, html.EscapeString(label))
			storeLabel = x0
		}
	}

	for i, id := range t.Nodes {
		y := laneY(i)
		p(`<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-8, y+lane/2+4, html.EscapeString(id))
		// Segments of this node.
		var cur *Change
		flush := func(until time.Duration) {
			if cur == nil || until <= cur.At {
				return
			}
			a, b, ok := in(cur.At, until)
			if !ok || a == b {
				return
			}
			x0, x1 := x(a), x(b)
			p(`<rect x="%.2f" y="%.1f" width="%.2f" height="%.0f" fill="%s"><title>%s %s from %s to %s</title></rect>`+"\n",
				x0, y, math.Max(x1-x0, 0.5), lane, stateColor[cur.State], id, cur.State, cur.At, until)
			if cur.Cut {
				p(`<rect x="%.2f" y="%.1f" width="%.2f" height="6" fill="#7b4fc9"><title>%s partitioned</title></rect>`+"\n",
					x0, y+lane-6, math.Max(x1-x0, 0.5), id)
			}
		}
		for j := range t.Changes {
			c := &t.Changes[j]
			if c.Node != i {
				continue
			}
			flush(c.At)
			cur = c
		}
		flush(t.End)
	}

	// Cron runs: a dark blue bar at the top of the lane, magenta if the
	// run was cut short (never marked done).
	for _, run := range t.Runs {
		a, b, ok := in(run.From, run.To)
		if !ok {
			continue
		}
		color, what := "#1d3f8f", "run"
		if run.CutShort {
			color, what = "#c2185b", "run cut short"
		}
		if run.Rerun {
			what = "re" + what
		}
		p(`<rect x="%.2f" y="%.1f" width="%.2f" height="5" fill="%s"><title>slot %s: %s from %s to %s</title></rect>`+"\n",
			x(a), laneY(run.Node)+1, math.Max(x(b)-x(a), 1), color, run.Slot, what, run.From, run.To)
	}

	// Dual leadership and two cron runs at once: red bands on the lanes of
	// the nodes involved; stale accepted writes and slots run twice: red
	// dots above the lanes.
	for _, v := range r.Violations {
		at, until := time.Duration(v.AtMS*1e6), time.Duration(v.UntilMS*1e6)
		a, b, ok := in(at, until)
		if !ok {
			continue
		}
		switch v.Kind {
		case "dual_leadership", "overlapping_runs":
		case "duplicated_slot":
			p(`<circle cx="%.2f" cy="%.0f" r="4" fill="#e02020"><title>slot %s started again at %s by %s</title></circle>`+"\n",
				x(at), top-8, v.Slot, at, v.Nodes[1])
			continue
		case "repeated_term":
			p(`<circle cx="%.2f" cy="%.0f" r="4" fill="#e02020"><title>%s leads with term %d at %s: %s led with term %d before</title></circle>`+"\n",
				x(at), top-8, v.Nodes[1], v.Term, at, v.Nodes[0], v.EarlierTerm)
			continue
		default:
			p(`<circle cx="%.2f" cy="%.0f" r="4" fill="#e02020"><title>stale write accepted at %s from %s</title></circle>`+"\n",
				x(at), top-8, at, v.Nodes[0])
			continue
		}
		what := "dual leadership"
		if v.Kind == "overlapping_runs" {
			what = "two runs at once (slot " + v.Slot + ")"
		}
		for _, id := range v.Nodes {
			i, ok := lanes[id]
			if !ok {
				continue
			}
			p(`<rect x="%.2f" y="%.1f" width="%.2f" height="%.0f" fill="#e02020" fill-opacity="0.35" stroke="#e02020"><title>%s %s to %s: %v</title></rect>`+"\n",
				x(a), laneY(i)-3, math.Max(x(b)-x(a), 2), lane+6, html.EscapeString(what), at, until, v.Nodes)
		}
	}

	// Failed renewals (an orange tick at the top of the lane) and rejected
	// fenced writes (a red cross under it).
	for _, d := range t.Dots {
		if d.At < from || d.At > to {
			continue
		}
		y, dx := laneY(d.Node), x(d.At)
		switch d.Kind {
		case DotRenewFailed:
			p(`<path d="M%.2f %.1f l-3 -5 h6 z" fill="#e07b00"><title>renewal failed at %s</title></path>`+"\n", dx, y, d.At.Round(time.Millisecond))
		case DotFenceRejected:
			p(`<path d="M%.2f %.1f l6 6 m0 -6 l-6 6" stroke="#c00000" stroke-width="1.5"><title>fenced write rejected at %s</title></path>`+"\n",
				dx-3, y+lane+1, d.At.Round(time.Millisecond))
		}
	}

	// Faults: a dark tick on the lane, a label where there is room (not
	// over the previous label of the lane), the details on hover.
	lastLabel := make([]float64, len(t.Nodes))
	for i := range lastLabel {
		lastLabel[i] = -1e9
	}
	for _, f := range t.Faults {
		if f.Node < 0 || f.At < from || f.At > to {
			continue
		}
		y := laneY(f.Node)
		label := string(f.Kind)
		if f.For > 0 {
			label += " " + f.For.Round(100*time.Millisecond).String()
		}
		fx := x(f.At)
		p(`<line x1="%.2f" y1="%.1f" x2="%.2f" y2="%.1f" stroke="#000" stroke-width="2"><title>%s at %s</title></line>`+"\n",
			fx, y-5, fx, y+lane, html.EscapeString(label), f.At.Round(time.Millisecond))
		if fx-lastLabel[f.Node] >= 6*float64(len(label))+8 {
			p(`<text x="%.2f" y="%.1f" font-size="10">%s</text>`+"\n", fx+3, y-3, html.EscapeString(label))
			lastLabel[f.Node] = fx
		}
	}

	// Leaderless time: an amber strip under the lanes.
	ly := bottom + 6
	for _, sp := range t.Leaderless {
		a, b, ok := in(sp.From, sp.To)
		if sp.To <= sp.From || !ok || a == b {
			continue
		}
		p(`<rect x="%.2f" y="%.1f" width="%.2f" height="6" fill="#f0c020"><title>nobody leads from %s to %s (%s)</title></rect>`+"\n",
			x(a), ly, math.Max(x(b)-x(a), 1), sp.From, sp.To, sp.To-sp.From)
	}

	// Time axis at round intervals.
	ay := bottom + 26
	p(`<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#000"/>`+"\n", left, ay, left+plot, ay)
	step := niceStep(to - from)
	for d := (from + step - 1) / step * step; d <= to; d += step {
		p(`<line x1="%.2f" y1="%.1f" x2="%.2f" y2="%.1f" stroke="#000"/>`+"\n", x(d), ay, x(d), ay+5)
		p(`<text x="%.2f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", x(d), ay+17, fmtTick(d))
	}

	// Legend, in two rows.
	type entry struct{ swatch, label string }
	box := func(color string) string {
		return fmt.Sprintf(`<rect x="%%.0f" y="%%.0f" width="14" height="14" fill="%s"/>`, color)
	}
	rows := [][]entry{{
		{box(stateColor["following"]), "following"}, {box(stateColor["leading"]), "leading"},
		{box(stateColor["paused"]), "paused"}, {box(stateColor["crashed"]), "crashed"},
		{box(stateColor["stopped"]), "stopped"}, {`<rect x="%.0f" y="%.0f" width="14" height="6" fill="#7b4fc9" transform="translate(0 8)"/>`, "partitioned"},
	}, {
		{`<rect x="%.0f" y="%.0f" width="14" height="14" fill="#e02020" fill-opacity="0.35" stroke="#e02020"/>`, "dual leadership"},
		{`<rect x="%.0f" y="%.0f" width="14" height="6" fill="#f0c020" transform="translate(0 4)"/>`, "leaderless"},
		{`<rect x="%.0f" y="%.0f" width="14" height="14" fill="#555" fill-opacity="0.18"/>`, "store down"},
		{`<rect x="%.0f" y="%.0f" width="2" height="14" fill="#000" transform="translate(6 0)"/>`, "fault"},
		{`<path d="M%.0f %.0f m7 12 l-4 -8 h8 z" fill="#e07b00"/>`, "renewal failed"},
		{`<path d="M%.0f %.0f m3 3 l8 8 m0 -8 l-8 8" stroke="#c00000" stroke-width="1.5"/>`, "fenced write rejected"},
	}}
	for _, f := range t.Faults {
		if f.Node < 0 && f.Kind != StoreDown {
			rows[1] = append(rows[1], entry{`<rect x="%.0f" y="%.0f" width="2" height="14" fill="#7030a0" transform="translate(6 0)"/>`, "store forgot"})
			break
		}
	}
	if len(t.Runs) > 0 {
		rows = append(rows, []entry{
			{`<rect x="%.0f" y="%.0f" width="14" height="5" fill="#1d3f8f" transform="translate(0 5)"/>`, "cron run"},
			{`<rect x="%.0f" y="%.0f" width="14" height="5" fill="#c2185b" transform="translate(0 5)"/>`, "cut short"},
		})
	}
	gy := ay + 40
	for _, row := range rows {
		gx := left
		for _, e := range row {
			p(e.swatch+`<text x="%.0f" y="%.0f">%s</text>`+"\n", gx, gy-11, gx+18, gy, e.label)
			gx += 30 + 7*float64(len(e.label))
		}
		gy += 22
	}
	p("</svg>\n")
	return nil
}

// niceStep picks an axis step of about a tenth of the run, at a round
// interval: 1, 2 or 5 × 10^k below a minute; 1, 2, 5, 10, 15 or 30 minutes;
// 1, 2, 3, 6 or 12 hours, then days.
func niceStep(end time.Duration) time.Duration {
	target := end / 10
	steps := []time.Duration{}
	for base := time.Millisecond; base < time.Minute; base *= 10 {
		for _, m := range []time.Duration{1, 2, 5} {
			if base*m < time.Minute {
				steps = append(steps, base*m)
			}
		}
	}
	for _, m := range []time.Duration{1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440} {
		steps = append(steps, m*time.Minute)
	}
	for _, s := range steps {
		if s >= target {
			return s
		}
	}
	d := 24 * time.Hour
	for d < target {
		d *= 2
	}
	return d
}

// fmtTick renders an axis instant without zero parts: 90s → "1m30s",
// 1h → "1h", 500ms → "500ms".
func fmtTick(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if s == "0s" {
		return "0"
	}
	return s
}
