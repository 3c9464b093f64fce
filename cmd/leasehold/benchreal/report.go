package benchreal

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Names of the figures, in the order of the reports.
const (
	FigAcquire     = "acquire"
	FigRenew       = "renew"
	FigHandoff     = "handoff"
	FigCrash       = "crash_failover"
	FigLeaderRPS   = "leader_rps"
	FigFollowerRPS = "follower_rps"
)

// FigureNames lists every figure a Result has, in order.
var FigureNames = []string{FigAcquire, FigRenew, FigHandoff, FigCrash, FigLeaderRPS, FigFollowerRPS}

// Units of figures.
const (
	UnitMS  = "ms"
	UnitRPS = "req/s"
)

// Implementations and modes of Results.
const (
	ImplLeasehold = "leasehold"
	ImplClientGo  = "client-go"
	ImplEtcd      = "etcd-election"
	ImplConsul    = "consul-lock"

	ModeWatch  = "watch"  // leasehold, followers watching
	ModePoll   = "poll"   // leasehold, followers polling
	ModeNative = "native" // the native election as its library does it
)

// Report is what Run measured.
type Report struct {
	Backend       string    `json:"backend"`
	Candidates    int       `json:"candidates"`
	Rounds        int       `json:"rounds"`
	LeaseDuration Duration  `json:"lease_duration"`
	RenewDeadline Duration  `json:"renew_deadline"`
	RetryPeriod   Duration  `json:"retry_period"`
	Window        Duration  `json:"window"`
	Started       time.Time `json:"started"`
	Took          Duration  `json:"took"`
	Results       []Result  `json:"results"`
	Ratios        []Ratio   `json:"ratios"`
}

// Result is one implementation's figures.
type Result struct {
	// Implementation is ImplLeasehold or the native election's Impl*.
	Implementation string `json:"implementation"`
	// Mode is ModeWatch or ModePoll for leasehold, ModeNative otherwise.
	Mode string `json:"mode"`
	// Settings says how it was configured (durations, TTLs) and what its
	// requests are.
	Settings string `json:"settings"`
	// Figures in the order of FigureNames; a figure that could not be
	// measured is missing.
	Figures []Figure `json:"figures"`
	// Notes are irregularities of the run (a leadership change during the
	// request window).
	Notes []string `json:"notes,omitempty"`
	// Error is why the measurement stopped; empty when it completed.
	Error string `json:"error,omitempty"`
}

// Figure is one measured quantity, its least, median (nearest rank), 90th
// percentile and largest sample: milliseconds (UnitMS, rounded to the
// microsecond) or requests per second (UnitRPS, rounded to 0.001).
type Figure struct {
	Name string  `json:"name"`
	Unit string  `json:"unit"`
	N    int     `json:"n"` // samples (for rates: candidates)
	Min  float64 `json:"min"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	Max  float64 `json:"max"`
}

// Figure returns the figure named name, if r has it.
func (r Result) Figure(name string) (Figure, bool) {
	for _, f := range r.Figures {
		if f.Name == name {
			return f, true
		}
	}
	return Figure{}, false
}

// Ratio is leasehold's figure divided by the native election's, for p50,
// p90 and max (rounded to 0.001): below 1, leasehold is faster (or sends
// fewer requests).
type Ratio struct {
	Figure string  `json:"figure"`
	Mode   string  `json:"mode"`   // leasehold's: ModeWatch or ModePoll
	Native string  `json:"native"` // the native Implementation
	P50    float64 `json:"p50"`
	P90    float64 `json:"p90"`
	Max    float64 `json:"max"`
}

// Duration is a time.Duration written as text ("1.5s") in JSON.
type Duration time.Duration

// MarshalText writes d as time.Duration's String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (d *Duration) UnmarshalText(b []byte) error {
	x, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(x)
	return nil
}

// String is time.Duration's String.
func (d Duration) String() string { return time.Duration(d).String() }

// msFigure summarises durations in milliseconds.
func msFigure(name string, ds []time.Duration) Figure {
	f := Figure{Name: name, Unit: UnitMS, N: len(ds)}
	if len(ds) == 0 {
		return f
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d.Round(time.Microsecond)/time.Microsecond) / 1000 }
	f.Min, f.P50, f.P90, f.Max = ms(s[0]), ms(rank(s, 0.5)), ms(rank(s, 0.9)), ms(s[len(s)-1])
	return f
}

// rateFigure summarises rates in requests per second.
func rateFigure(name string, rs []float64) Figure {
	f := Figure{Name: name, Unit: UnitRPS, N: len(rs)}
	if len(rs) == 0 {
		return f
	}
	s := slices.Clone(rs)
	slices.Sort(s)
	f.Min, f.P50, f.P90, f.Max = round3(s[0]), round3(rank(s, 0.5)), round3(rank(s, 0.9)), round3(s[len(s)-1])
	return f
}

// rank is the nearest-rank quantile q of sorted s.
func rank[T any](s []T, q float64) T {
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// ratios divides every leasehold figure by the native one.
func ratios(results []Result) []Ratio {
	var out []Ratio
	for _, n := range results {
		if n.Mode != ModeNative {
			continue
		}
		for _, l := range results {
			if l.Implementation != ImplLeasehold {
				continue
			}
			for _, name := range FigureNames {
				lf, ok1 := l.Figure(name)
				nf, ok2 := n.Figure(name)
				if !ok1 || !ok2 || nf.P50 <= 0 || nf.P90 <= 0 || nf.Max <= 0 {
					continue
				}
				out = append(out, Ratio{Figure: name, Mode: l.Mode, Native: n.Implementation,
					P50: round3(lf.P50 / nf.P50), P90: round3(lf.P90 / nf.P90), Max: round3(lf.Max / nf.Max)})
			}
		}
	}
	return out
}

// Write prints r in format: FormatText, FormatJSON or FormatCSV.
func (r Report) Write(w io.Writer, format string) error {
	var err error
	switch format {
	case FormatText, "":
		err = r.writeText(w)
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	case FormatCSV:
		err = r.writeCSV(w)
	default:
		return fmt.Errorf("bench backend: format %q: want %s, %s or %s", format, FormatText, FormatJSON, FormatCSV)
	}
	if err != nil {
		return fmt.Errorf("bench backend: write %s report: %w", format, err)
	}
	return nil
}

// figureTitles are the figures' names in the text table.
var figureTitles = map[string]string{
	FigAcquire:     "acquire (ms)",
	FigRenew:       "renew (ms)",
	FigHandoff:     "graceful handoff (ms)",
	FigCrash:       "crash failover (ms)",
	FigLeaderRPS:   "leader (req/s)",
	FigFollowerRPS: "per follower (req/s)",
}

func num(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

// short prints x with at most 3 significant decimals for the text table.
func short(x float64) string {
	switch {
	case x >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	default:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
}

func (r Report) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "leasehold bench backend: %s, %d candidates, %d rounds, lease %v / renew %v / retry %v, request window %v (took %v)\n",
		r.Backend, r.Candidates, r.Rounds, r.LeaseDuration, r.RenewDeadline, r.RetryPeriod, r.Window, r.Took)
	b.WriteString("figures: p50 / p90 / max\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	head := []string{"figure"}
	for _, res := range r.Results {
		head = append(head, res.Implementation+" "+res.Mode)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, name := range FigureNames {
		row := []string{figureTitles[name]}
		for _, res := range r.Results {
			f, ok := res.Figure(name)
			if !ok || f.N == 0 {
				row = append(row, "-")
				continue
			}
			row = append(row, short(f.P50)+" / "+short(f.P90)+" / "+short(f.Max))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Ratios) > 0 {
		b.WriteString("\nleasehold / native (p50 / p90 / max; below 1: leasehold faster or fewer requests)\n\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		var cols []string
		for _, q := range r.Ratios {
			c := q.Mode + " / " + q.Native
			if !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
		}
		fmt.Fprintln(tw, "figure\t"+strings.Join(cols, "\t"))
		for _, name := range FigureNames {
			row := []string{figureTitles[name]}
			for _, c := range cols {
				cell := "-"
				for _, q := range r.Ratios {
					if q.Figure == name && q.Mode+" / "+q.Native == c {
						cell = short(q.P50) + " / " + short(q.P90) + " / " + short(q.Max)
					}
				}
				row = append(row, cell)
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	b.WriteString("\n")
	for _, res := range r.Results {
		fmt.Fprintf(&b, "%s %s: %s\n", res.Implementation, res.Mode, res.Settings)
		for _, n := range res.Notes {
			fmt.Fprintf(&b, "  note: %s\n", n)
		}
		if res.Error != "" {
			fmt.Fprintf(&b, "  error: %s\n", res.Error)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// CSVHeader is the first line of the CSV report. A row of kind "figure"
// is one Figure of one Result; a row of kind "ratio" is one Ratio (its
// implementation column is the native one, n is 0, unit "ratio").
var CSVHeader = []string{"kind", "backend", "implementation", "mode", "figure", "unit", "n", "min", "p50", "p90", "max"}

func (r Report) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	for _, res := range r.Results {
		for _, f := range res.Figures {
			cw.Write([]string{"figure", r.Backend, res.Implementation, res.Mode, f.Name, f.Unit,
				strconv.Itoa(f.N), num(f.Min), num(f.P50), num(f.P90), num(f.Max)})
		}
	}
	for _, q := range r.Ratios {
		cw.Write([]string{"ratio", r.Backend, q.Native, q.Mode, q.Figure, "ratio", "0", "", num(q.P50), num(q.P90), num(q.Max)})
	}
	cw.Flush()
	return cw.Error()
}

// ParseCSV reads a CSV report back: the Results (implementation, mode and
// figures only) and the Ratios, in the order written.
func ParseCSV(rd io.Reader) ([]Result, []Ratio, error) {
	cr := csv.NewReader(rd)
	cr.FieldsPerRecord = len(CSVHeader)
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("bench backend: read CSV: %w", err)
	}
	if len(rows) == 0 || !slices.Equal(rows[0], CSVHeader) {
		return nil, nil, errors.New("bench backend: read CSV: the first line is not the header " + strings.Join(CSVHeader, ","))
	}
	var results []Result
	var rs []Ratio
	for i, row := range rows[1:] {
		line := i + 2
		var v [4]float64
		for j := range v {
			if j == 0 && row[0] == "ratio" {
				continue // a ratio has no min
			}
			if v[j], err = strconv.ParseFloat(row[7+j], 64); err != nil {
				return nil, nil, fmt.Errorf("bench backend: read CSV: line %d: %s: %w", line, CSVHeader[7+j], err)
			}
		}
		n, err := strconv.Atoi(row[6])
		if err != nil {
			return nil, nil, fmt.Errorf("bench backend: read CSV: line %d: n: %w", line, err)
		}
		switch row[0] {
		case "figure":
			f := Figure{Name: row[4], Unit: row[5], N: n, Min: v[0], P50: v[1], P90: v[2], Max: v[3]}
			if k := len(results) - 1; k >= 0 && results[k].Implementation == row[2] && results[k].Mode == row[3] {
				results[k].Figures = append(results[k].Figures, f)
			} else {
				results = append(results, Result{Implementation: row[2], Mode: row[3], Figures: []Figure{f}})
			}
		case "ratio":
			rs = append(rs, Ratio{Figure: row[4], Mode: row[3], Native: row[2], P50: v[1], P90: v[2], Max: v[3]})
		default:
			return nil, nil, fmt.Errorf("bench backend: read CSV: line %d: kind %q: want figure or ratio", line, row[0])
		}
	}
	return results, rs, nil
}
