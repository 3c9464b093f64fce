package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Duration is a time.Duration written as text ("15s") in JSON and CSV.
type Duration time.Duration

// MarshalText writes d like 15s.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func fmtMS(v float64) string {
	d := time.Duration(v * float64(time.Millisecond))
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// WriteText writes the sweep as a table, a line per combination.
func (r *Result) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "sweep: faults %s, %d seeds × %v each per combination%s\n\n", strings.Join(r.Faults, ","), r.Seeds, time.Duration(r.Duration), storeNote(r.Store))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "lease\trenew\tretry\tnodes\tfollow\tcrash p50\tcrash p99\tcrash max\thandoff p50\thandoff p99\tleaderless\tdual\tunsafe\treq/s\treq/s/follower\tskew≤\tpause≤\toutage≤\tchecked\t")
	for _, p := range r.Points {
		follow := "watch"
		if !p.Watch {
			follow = "poll"
		}
		checked := "yes"
		if !p.Tolerance.Confirmed {
			checked = "NO"
		}
		fmt.Fprintf(tw, "%v\t%v\t%v\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f%%\t%s\t%d/%d\t%.3g\t%.3g\t%.3g\t%v\t%v\t%s\t\n",
			p.LeaseDuration, p.RenewDeadline.Round(time.Millisecond), p.RetryPeriod.Round(time.Millisecond), p.Nodes, follow,
			fmtMS(p.CrashFailover.P50), fmtMS(p.CrashFailover.P99), fmtMS(p.CrashFailover.Max),
			fmtMS(p.Handoff.P50), fmtMS(p.Handoff.P99),
			100*p.LeaderlessShare, fmtMS(p.DualLeaderMS), p.UnsafeSeeds, p.Runs,
			p.RequestsPerSec, p.FollowerRequestsPerSec,
			p.Tolerance.Skew, time.Duration(p.Tolerance.Pause).Round(time.Millisecond), time.Duration(p.Tolerance.Outage).Round(time.Millisecond), checked)
	}
	fmt.Fprintln(tw)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "crash and handoff: from the fault to the next leader's start; leaderless: share of the time; dual: time two believed they lead, summed over the seeds;\n"+
		"unsafe: seeds with dual leadership or a stale write; skew/pause/outage: what the timing rule tolerates, checked by simulating inside and beyond each bound")
	return err
}

func storeNote(s string) string {
	if s == "" {
		return ""
	}
	return ", store profile " + s
}

// csvHeader is the CSV's first line; ReadCSV reads it back.
var csvHeader = []string{"lease_duration", "renew_deadline", "retry_period", "nodes", "watch",
	"crash_failover_n", "crash_failover_p50_ms", "crash_failover_p90_ms", "crash_failover_p99_ms", "crash_failover_max_ms",
	"crash_leaderless_p50_ms", "crash_leaderless_p99_ms",
	"handoff_n", "handoff_p50_ms", "handoff_p99_ms", "handoff_max_ms",
	"leaderless_share", "dual_leader_ms", "unsafe_seeds", "runs",
	"requests_per_sec", "leader_requests_per_sec", "follower_requests_per_sec",
	"tolerated_skew", "tolerated_pause", "tolerated_outage", "tolerance_confirmed"}

// WriteCSV writes a line per combination (csvHeader's columns).
func (r *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, p := range r.Points {
		cw.Write([]string{p.LeaseDuration.String(), p.RenewDeadline.String(), p.RetryPeriod.String(), strconv.Itoa(p.Nodes), strconv.FormatBool(p.Watch),
			strconv.Itoa(p.CrashFailover.N), f(p.CrashFailover.P50), f(p.CrashFailover.P90), f(p.CrashFailover.P99), f(p.CrashFailover.Max),
			f(p.CrashLeaderless.P50), f(p.CrashLeaderless.P99),
			strconv.Itoa(p.Handoff.N), f(p.Handoff.P50), f(p.Handoff.P99), f(p.Handoff.Max),
			f(p.LeaderlessShare), f(p.DualLeaderMS), strconv.Itoa(p.UnsafeSeeds), strconv.Itoa(p.Runs),
			f(p.RequestsPerSec), f(p.LeaderRequestsPerSec), f(p.FollowerRequestsPerSec),
			f(p.Tolerance.Skew), time.Duration(p.Tolerance.Pause).String(), time.Duration(p.Tolerance.Outage).String(), strconv.FormatBool(p.Tolerance.Confirmed)})
	}
	cw.Flush()
	return cw.Error()
}

// ReadCSV reads what WriteCSV wrote: the points' CSV columns (the by-cause
// figures and the checks' counts are JSON-only).
func ReadCSV(rd io.Reader) ([]Point, error) {
	rows, err := csv.NewReader(rd).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 || !slices.Equal(rows[0], csvHeader) {
		return nil, fmt.Errorf("csv: the header is not the sweep's")
	}
	var out []Point
	for i, row := range rows[1:] {
		var p Point
		var errs []error
		d := func(s string) time.Duration {
			v, err := time.ParseDuration(s)
			errs = append(errs, err)
			return v
		}
		n := func(s string) int {
			v, err := strconv.Atoi(s)
			errs = append(errs, err)
			return v
		}
		f := func(s string) float64 {
			v, err := strconv.ParseFloat(s, 64)
			errs = append(errs, err)
			return v
		}
		b := func(s string) bool {
			v, err := strconv.ParseBool(s)
			errs = append(errs, err)
			return v
		}
		p.LeaseDuration, p.RenewDeadline, p.RetryPeriod, p.Nodes, p.Watch = d(row[0]), d(row[1]), d(row[2]), n(row[3]), b(row[4])
		p.LeaseDurationText, p.RenewDeadlineText, p.RetryPeriodText = Duration(p.LeaseDuration), Duration(p.RenewDeadline), Duration(p.RetryPeriod)
		p.CrashFailover = Stat{N: n(row[5]), P50: f(row[6]), P90: f(row[7]), P99: f(row[8]), Max: f(row[9])}
		p.CrashLeaderless.P50, p.CrashLeaderless.P99 = f(row[10]), f(row[11])
		p.Handoff = Stat{N: n(row[12]), P50: f(row[13]), P99: f(row[14]), Max: f(row[15])}
		p.LeaderlessShare, p.DualLeaderMS, p.UnsafeSeeds, p.Runs = f(row[16]), f(row[17]), n(row[18]), n(row[19])
		p.RequestsPerSec, p.LeaderRequestsPerSec, p.FollowerRequestsPerSec = f(row[20]), f(row[21]), f(row[22])
		p.Tolerance.Skew, p.Tolerance.Pause, p.Tolerance.Outage, p.Tolerance.Confirmed = f(row[23]), Duration(d(row[24])), Duration(d(row[25])), b(row[26])
		for _, err := range errs {
			if err != nil {
				return nil, fmt.Errorf("csv: line %d: %w", i+2, err)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// WriteJSON writes the whole sweep (and the recommendation, if any).
func (r *Result) WriteJSON(w io.Writer, rec *Recommendation) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		*Result
		Recommendation *Recommendation `json:"recommendation,omitempty"`
	}{r, rec})
}
