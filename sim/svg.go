package sim

import (
	"fmt"
	"html"
	"io"
	"math"
	"time"
)

// Timeline is what the SVG shows: each node's state over true time, the
// faults, and (from the Result) the dual leaderships.
type Timeline struct {
	Nodes   []string
	End     time.Duration
	Changes []Change
	Faults  []Mark
}

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
// leadership in red, a time axis. The run must have been made with
// Options.Timeline.
func (r *Result) WriteSVG(w io.Writer) error {
	t := r.Timeline
	if t == nil {
		return fmt.Errorf("sim: the run kept no timeline (Options.Timeline)")
	}
	const (
		left, right, top = 70.0, 20.0, 62.0
		width            = 1200.0
		lane, gap        = 26.0, 14.0
	)
	plot := width - left - right
	height := top + float64(len(t.Nodes))*(lane+gap) + 80
	x := func(d time.Duration) float64 { return left + plot*float64(d)/float64(t.End) }
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }

	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%.0f" y="22" font-size="15" font-weight="bold">%s, seed %d</text>`+"\n", left, html.EscapeString(r.Scenario), r.Seed)
	plural := "s"
	if len(r.Failovers) == 1 {
		plural = ""
	}
	p(`<text x="%.0f" y="40" fill="#555">%d failover%s, leaderless %s, dual leadership %s, fenced writes %d/%d/%d (accepted/rejected/stale)</text>`+"\n",
		left, len(r.Failovers), plural, fmtMS(r.LeaderlessMSTotal), fmtMS(r.DualLeaderMS),
		r.FencedWrites.Accepted, r.FencedWrites.Rejected, r.FencedWrites.StaleAccepted)

	laneY := func(i int) float64 { return top + float64(i)*(lane+gap) }
	for i, id := range t.Nodes {
		y := laneY(i)
		p(`<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-8, y+lane/2+4, html.EscapeString(id))
		// Segments of this node.
		var cur *Change
		flush := func(until time.Duration) {
			if cur == nil || until <= cur.At {
				return
			}
			x0, x1 := x(cur.At), x(until)
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

	// Dual leadership: red bands across every lane.
	bottom := laneY(len(t.Nodes)) - gap
	for _, v := range r.Violations {
		at, until := time.Duration(v.AtMS*1e6), time.Duration(v.UntilMS*1e6)
		if v.Kind == "dual_leadership" {
			p(`<rect x="%.2f" y="%.0f" width="%.2f" height="%.1f" fill="#e02020" fill-opacity="0.35" stroke="#e02020"><title>dual leadership %s to %s: %v</title></rect>`+"\n",
				x(at), top-4, math.Max(x(until)-x(at), 2), bottom-top+8, at, until, v.Nodes)
		} else {
			p(`<circle cx="%.2f" cy="%.0f" r="4" fill="#e02020"><title>stale write accepted at %s from %s</title></circle>`+"\n",
				x(at), top-8, at, v.Nodes[0])
		}
	}

	// Faults: a dark tick on the lane, a label where there is room, the
	// details on hover.
	lastLabel := make([]float64, len(t.Nodes))
	for i := range lastLabel {
		lastLabel[i] = -1e9
	}
	for _, f := range t.Faults {
		if f.Node < 0 { // the store's: a grey band over every lane
			x0, x1 := x(f.At), x(min(f.At+f.For, t.End))
			p(`<rect x="%.2f" y="%.0f" width="%.2f" height="%.1f" fill="#555" fill-opacity="0.18"><title>%s %s at %s</title></rect>`+"\n",
				x0, top-4, math.Max(x1-x0, 2), bottom-top+8, f.Kind, f.For, f.At.Round(time.Millisecond))
			p(`<text x="%.2f" y="%.0f" font-size="10" fill="#333">%s</text>`+"\n", x0+3, top-8, html.EscapeString(string(f.Kind)+" "+f.For.String()))
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
		if fx-lastLabel[f.Node] >= 7*float64(len(label))+6 {
			p(`<text x="%.2f" y="%.1f" font-size="10">%s</text>`+"\n", fx+3, y-2, html.EscapeString(label))
			lastLabel[f.Node] = fx
		}
	}

	// Time axis.
	ay := bottom + 20
	p(`<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#000"/>`+"\n", left, ay, left+plot, ay)
	step := niceStep(t.End)
	for d := time.Duration(0); d <= t.End; d += step {
		p(`<line x1="%.2f" y1="%.1f" x2="%.2f" y2="%.1f" stroke="#000"/>`+"\n", x(d), ay, x(d), ay+5)
		p(`<text x="%.2f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", x(d), ay+17, d)
	}

	// Legend.
	ly := ay + 40
	lx := left
	for _, st := range []string{"following", "leading", "paused", "crashed", "stopped"} {
		p(`<rect x="%.0f" y="%.0f" width="14" height="14" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n", lx, ly-11, stateColor[st], lx+18, ly, st)
		lx += 100
	}
	p(`<rect x="%.0f" y="%.0f" width="14" height="6" fill="#7b4fc9"/><text x="%.0f" y="%.0f">partitioned</text>`+"\n", lx, ly-5, lx+18, ly)
	lx += 100
	p(`<rect x="%.0f" y="%.0f" width="14" height="14" fill="#e02020" fill-opacity="0.35" stroke="#e02020"/><text x="%.0f" y="%.0f">dual leadership</text>`+"\n", lx, ly-11, lx+18, ly)
	p("</svg>\n")
	return nil
}

// niceStep picks an axis step of 1, 2 or 5 × 10^k seconds giving about ten
// ticks.
func niceStep(end time.Duration) time.Duration {
	target := end / 10
	for _, base := range []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond,
		time.Second, 10 * time.Second, 100 * time.Second, 1000 * time.Second, 10000 * time.Second} {
		for _, m := range []time.Duration{1, 2, 5} {
			if base*m >= target {
				return base * m
			}
		}
	}
	return end
}
