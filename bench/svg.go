package bench

import (
	"cmp"
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

// series is one line of a chart.
type series struct {
	label string
	x, y  []float64
}

// marker is a dot on a chart, green (ok) or red.
type marker struct {
	x, y float64
	ok   bool
	tip  string
}

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d62728"}

// chart writes a line chart: axes from the data's range, ticks, a legend
// below the plot (one line per series, so long labels never overlap).
func chart(w io.Writer, title, xlabel, ylabel string, ss []series, ms []marker, yFrom0 bool) error {
	const width, plotH, left, right, top = 760.0, 360.0, 70.0, 20.0, 40.0
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for i := range s.x {
			xmin, xmax = min(xmin, s.x[i]), max(xmax, s.x[i])
			ymin, ymax = min(ymin, s.y[i]), max(ymax, s.y[i])
		}
	}
	for _, m := range ms {
		xmin, xmax, ymin, ymax = min(xmin, m.x), max(xmax, m.x), min(ymin, m.y), max(ymax, m.y)
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax, ymin, ymax = 0, 1, 0, 1
	}
	if yFrom0 {
		ymin = min(ymin, 0)
	}
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	if ymax == ymin {
		ymax = ymin + 1
	}
	ymax += (ymax - ymin) * 0.05
	plotW := width - left - right
	legendH := 18.0*float64(len(ss)) + 10
	if len(ms) > 0 {
		legendH += 18
	}
	height := top + plotH + 50 + legendH
	px := func(x float64) float64 { return left + (x-xmin)/(xmax-xmin)*plotW }
	py := func(y float64) float64 { return top + plotH - (y-ymin)/(ymax-ymin)*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	// Axes and ticks.
	fmt.Fprintf(&b, `<path d="M%.1f %.1f V%.1f H%.1f" stroke="black" fill="none"/>`+"\n", left, top, top+plotH, left+plotW)
	for _, t := range ticks(xmin, xmax) {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n",
			px(t), top, px(t), top+plotH, px(t), top+plotH+16, tickLabel(t))
	}
	for _, t := range ticks(ymin, ymax) {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n",
			left, py(t), left+plotW, py(t), left-6, py(t)+4, tickLabel(t))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", left+plotW/2, top+plotH+34, html.EscapeString(xlabel))
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", top+plotH/2, html.EscapeString(ylabel))
	ly := top + plotH + 56
	for i, s := range ss {
		c := palette[i%len(palette)]
		var d strings.Builder
		for j := range s.x {
			cmd := "L"
			if j == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, px(s.x[j]), py(s.y[j]))
		}
		fmt.Fprintf(&b, `<path d="%s" stroke="%s" stroke-width="2" fill="none"/>`+"\n", strings.TrimSpace(d.String()), c)
		for j := range s.x {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s: %s, %s</title></circle>`+"\n",
				px(s.x[j]), py(s.y[j]), c, html.EscapeString(s.label), tickLabel(s.x[j]), tickLabel(s.y[j]))
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/><text x="%.1f" y="%.1f">%s</text>`+"\n",
			left, ly-4, left+24, ly-4, c, left+30, ly, html.EscapeString(s.label))
		ly += 18
	}
	for _, m := range ms {
		c := "#d62728"
		if m.ok {
			c = "#2ca02c"
		}
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="5" fill="%s" stroke="black"><title>%s</title></circle>`+"\n", px(m.x), py(m.y), c, html.EscapeString(m.tip))
	}
	if len(ms) > 0 {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="5" fill="#2ca02c" stroke="black"/><text x="%.1f" y="%.1f">simulated: no violation</text>`+"\n", left+12, ly-4, left+30, ly)
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="5" fill="#d62728" stroke="black"/><text x="%.1f" y="%.1f">simulated: violations</text>`+"\n", left+212, ly-4, left+230, ly)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// ticks are about six round values covering [lo, hi].
func ticks(lo, hi float64) []float64 {
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

func tickLabel(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%.4g", v), ".0") }

// WriteSVG writes the sweep's plots into dir: failover.svg (crash
// failover p99 against lease duration, a line per retry period and the
// other parameters), requests.svg (requests per second against retry
// period) and safety.svg (the safety margin left against clock-rate skew,
// with the simulated checks as dots). It returns the files written.
func (r *Result) WriteSVG(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	group := func(key func(Point) string, x func(Point) float64, y func(Point) float64) []series {
		var keys []string
		by := map[string]*series{}
		for _, p := range r.Points {
			k := key(p)
			s := by[k]
			if s == nil {
				s = &series{label: k}
				by[k] = s
				keys = append(keys, k)
			}
			s.x, s.y = append(s.x, x(p)), append(s.y, y(p))
		}
		var out []series
		for _, k := range keys {
			s := by[k]
			idx := make([]int, len(s.x))
			for i := range idx {
				idx[i] = i
			}
			slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(s.x[a], s.x[b]) })
			ns := series{label: s.label}
			for _, i := range idx {
				ns.x, ns.y = append(ns.x, s.x[i]), append(ns.y, s.y[i])
			}
			out = append(out, ns)
		}
		return out
	}
	follow := func(p Point) string {
		if p.Watch {
			return "watch"
		}
		return "poll"
	}
	var files []string
	write := func(name string, f func(io.Writer) error) error {
		path := filepath.Join(dir, name)
		out, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := f(out); err != nil {
			out.Close()
			return err
		}
		files = append(files, path)
		return out.Close()
	}
	secs := func(d time.Duration) float64 { return d.Seconds() }
	err := write("failover.svg", func(w io.Writer) error {
		ss := group(func(p Point) string {
			return fmt.Sprintf("retry %s, renew %s, %d nodes, %s", fracOf(p.RetryPeriod, p.LeaseDuration), fracOf(p.RenewDeadline, p.LeaseDuration), p.Nodes, follow(p))
		}, func(p Point) float64 { return secs(p.LeaseDuration) }, func(p Point) float64 { return p.CrashFailover.P99 / 1000 })
		return chart(w, "Crash failover p99 against lease duration", "lease duration (s)", "crash failover p99 (s)", ss, nil, true)
	})
	if err == nil {
		err = write("requests.svg", func(w io.Writer) error {
			ss := group(func(p Point) string {
				return fmt.Sprintf("lease %v, renew %s, %d nodes, %s", p.LeaseDuration, fracOf(p.RenewDeadline, p.LeaseDuration), p.Nodes, follow(p))
			}, func(p Point) float64 { return secs(p.RetryPeriod) }, func(p Point) float64 { return p.RequestsPerSec })
			return chart(w, "Requests to the store against retry period (all candidates)", "retry period (s)", "requests per second", ss, nil, true)
		})
	}
	if err == nil {
		err = write("safety.svg", func(w io.Writer) error {
			var ss []series
			var ms []marker
			seen := map[string]bool{}
			for _, p := range r.Points {
				k := fmt.Sprintf("lease %v, renew %v", p.LeaseDuration, p.RenewDeadline.Round(time.Millisecond))
				if seen[k] {
					continue
				}
				seen[k] = true
				bound := float64(p.LeaseDuration) / float64(p.RenewDeadline)
				margin := func(skew float64) float64 { return 100 * (1 - skew*float64(p.RenewDeadline)/float64(p.LeaseDuration)) }
				s := series{label: k + fmt.Sprintf(" (safe below a skew of %.3g)", bound)}
				for skew := 1.0; skew <= 1.25*bound; skew += (1.25*bound - 1) / 24 {
					s.x, s.y = append(s.x, skew), append(s.y, margin(skew))
				}
				ss = append(ss, s)
				t := p.Tolerance
				in, out := 1+0.95*(bound-1), 1.1*bound
				ms = append(ms,
					marker{in, margin(in), t.SkewInside == 0, fmt.Sprintf("%s: skew %.3g, %d of %d seeds unsafe", k, in, t.SkewInside, t.CheckSeeds)},
					marker{out, margin(out), t.SkewBeyond == 0, fmt.Sprintf("%s: skew %.3g, %d of %d seeds unsafe", k, out, t.SkewBeyond, t.CheckSeeds)})
			}
			return chart(w, "Safety margin against clock-rate skew", "rate of the fastest clock / the slowest", "margin: % of the lease left (below 0: two leaders possible)", ss, ms, false)
		})
	}
	return files, err
}

// fracOf says d as a fraction of ld ("0.133×lease").
func fracOf(d, ld time.Duration) string {
	return fmt.Sprintf("%.3g×lease", float64(d)/float64(ld))
}
