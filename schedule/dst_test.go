package schedule

import (
	"archive/zip"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // zones load where the system has no tz database (CI images)

	"github.com/robfig/cron/v3"
)

// keyZones are swept even where no list of zone names is found: the ones
// the tester's sweep found broken, and both directions of shift.
var keyZones = []string{"UTC", "America/New_York", "Europe/London", "Europe/Berlin", "Pacific/Chatham",
	"Australia/Lord_Howe", "America/Santiago", "America/Havana", "Asia/Tehran", "Africa/Casablanca",
	"Antarctica/Troll", "Pacific/Apia", "Asia/Manila", "America/Sitka", "Pacific/Kwajalein"}

var (
	zoneOnce  sync.Once
	zoneCache []string
)

// zoneNames lists the zones of the tz database: the system's
// /usr/share/zoneinfo and Go's own zoneinfo.zip, whichever exist, plus
// keyZones; every name loads.
func zoneNames(tb testing.TB) []string {
	zoneOnce.Do(func() {
		seen := map[string]bool{}
		add := func(name string) {
			if seen[name] || name == "" || strings.ContainsAny(name, ".") || name[0] < 'A' || name[0] > 'Z' {
				return
			}
			if _, err := time.LoadLocation(name); err == nil {
				seen[name] = true
			}
		}
		root := "/usr/share/zoneinfo"
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			if d.IsDir() {
				if rel == "posix" || rel == "right" {
					return filepath.SkipDir
				}
				return nil
			}
			add(filepath.ToSlash(rel))
			return nil
		})
		if z, err := zip.OpenReader(filepath.Join(runtime.GOROOT(), "lib", "time", "zoneinfo.zip")); err == nil {
			for _, f := range z.File {
				add(f.Name)
			}
			z.Close()
		}
		for _, n := range keyZones {
			add(n)
		}
		zoneCache = make([]string, 0, len(seen))
		for n := range seen {
			zoneCache = append(zoneCache, n)
		}
		slices.Sort(zoneCache)
	})
	if len(zoneCache) < len(keyZones) {
		tb.Fatalf("only %d zones load (want at least %v)", len(zoneCache), keyZones)
	}
	return zoneCache
}

// sweepSpecs are the schedules of the sweep: hourly and daily ones at the
// minutes where zones shift (:00, :15, :30, :45), the hours they shift at,
// steps within an hour and a day, descriptors, and @every.
var sweepSpecs = []string{
	"0 * * * *", "15 * * * *", "30 * * * *", "45 * * * *",
	"30 0 * * *", "30 1 * * *", "30 2 * * *", "45 3 * * *", "0 0 * * *", "0 2 * * *", "0 3 * * *",
	"*/15 * * * *", "*/30 * * * *", "*/15 3 * * *", "*/5 1-3 * * *", "0,30 1 * * *", "0 */2 * * *",
	"@hourly", "@daily", "@weekly", "@every 2s", "@every 90m",
}

// zoneSegment is one period of a zone's offset, for the oracle.
type zoneSegment struct{ start, end, off int64 }

// zoneSegmentsOf lists the periods of loc covering instants [lo, hi].
func zoneSegmentsOf(loc *time.Location, lo, hi int64) []zoneSegment {
	var out []zoneSegment
	for u := lo; ; {
		t := time.Unix(u, 0).In(loc)
		_, off := t.Zone()
		a, b := t.ZoneBounds()
		g := zoneSegment{-1 << 62, 1 << 62, int64(off)}
		if !a.IsZero() {
			g.start = a.Unix()
		}
		if !b.IsZero() {
			g.end = b.Unix()
		}
		out = append(out, g)
		if b.IsZero() || g.end > hi {
			return out
		}
		u = g.end
	}
}

// oracleSlots computes the slots of a cron schedule in (lo, hi] by brute
// force from the package doc's policy: every matching wall time (minute
// by minute) is looked up in every period of the zone around it.
func oracleSlots(s *Schedule, lo, hi int64) []int64 {
	const margin = 56 * 3600
	segs := zoneSegmentsOf(s.loc, lo-margin, hi+margin)
	minOff, maxOff := segs[0].off, segs[0].off
	for _, g := range segs {
		minOff, maxOff = min(minOff, g.off), max(maxOff, g.off)
	}
	set := map[int64]bool{}
	wlo, whi := lo+minOff, hi+maxOff
	for day := time.Unix(wlo, 0).UTC().Truncate(24 * time.Hour); day.Unix() <= whi; day = day.AddDate(0, 0, 1) {
		if !matchDay(s.f, day) {
			continue
		}
		for h := range 24 {
			if s.f.hour&(1<<h) == 0 {
				continue
			}
			for m := range 60 {
				if s.f.min&(1<<m) == 0 {
					continue
				}
				w := day.Unix() + int64(h*3600+m*60)
				if w < wlo || w > whi {
					continue
				}
				var occ []int64
				for _, g := range segs {
					if u := w - g.off; u >= g.start && u < g.end {
						occ = append(occ, u)
					}
				}
				switch {
				case len(occ) > 0 && s.repeats:
					for _, u := range occ {
						set[u] = true
					}
				case len(occ) > 0:
					set[occ[0]] = true
				default:
					for k := 1; k < len(segs); k++ {
						if a, b := segs[k-1].off, segs[k].off; a < b && w >= segs[k].start+a && w < segs[k].start+b {
							set[segs[k].start] = true
							break
						}
					}
				}
			}
		}
	}
	var out []int64
	for u := range set {
		if u > lo && u <= hi {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// matchDay is crontab(5)'s day rule, written again for the oracle.
func matchDay(f fields, day time.Time) bool {
	if f.month&(1<<int(day.Month())) == 0 {
		return false
	}
	dom, dow := f.dom&(1<<day.Day()) != 0, f.dow&(1<<int(day.Weekday())) != 0
	if f.dom&(1<<63) != 0 || f.dow&(1<<63) != 0 {
		return dom && dow
	}
	return dom || dow
}

// checkWindow checks a schedule's slots in (lo, hi] against the policy:
// Next strictly advances and agrees with Prev, Period is positive, the
// slots are the oracle's, no wall time runs twice unless the schedule
// repeats within the hour, and no day with a matching wall time is
// without a run. It returns the number of slots.
func checkWindow(t testing.TB, s *Schedule, lo, hi int64) int {
	t.Helper()
	name := fmt.Sprintf("%q in %v, (%s, %s]", s.spec, s.loc, time.Unix(lo, 0).UTC().Format(time.RFC3339), time.Unix(hi, 0).UTC().Format(time.RFC3339))
	var got []int64
	prev := time.Unix(lo, 0)
	for {
		n := s.Next(prev)
		if n.IsZero() {
			break
		}
		if !n.After(prev) {
			t.Fatalf("%s: Next(%v) = %v does not advance", name, prev.UTC(), n.UTC())
		}
		if p := s.Prev(n); !p.Equal(n) {
			t.Fatalf("%s: Prev(%v) = %v, want the slot itself", name, n.UTC(), p.UTC())
		}
		if p := s.Prev(n.Add(-time.Second)); len(got) > 0 && !p.Equal(prev) {
			t.Fatalf("%s: Prev(%v - 1s) = %v, want the slot before, %v", name, n.UTC(), p.UTC(), prev.UTC())
		}
		if p := s.Period(prev); p < 0 || (p == 0 && !s.Next(n).IsZero()) {
			t.Fatalf("%s: Period(%v) = %v", name, prev.UTC(), p)
		}
		if n.Unix() > hi {
			break
		}
		got = append(got, n.Unix())
		prev = n
		if len(got) > 100000 {
			t.Fatalf("%s: runaway", name)
		}
	}
	if s.every > 0 {
		for _, u := range got {
			if u%s.every != 0 {
				t.Fatalf("%s: slot %d not a multiple of %ds", name, u, s.every)
			}
		}
		return len(got)
	}
	if want := oracleSlots(s, lo, hi); !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", name, fmtSlots(got, s.loc), fmtSlots(want, s.loc))
	}
	// No wall time twice, unless the schedule repeats within the hour.
	walls := map[string]int64{}
	days := map[string]bool{}
	for _, u := range got {
		tl := time.Unix(u, 0).In(s.loc)
		w := tl.Format("2006-01-02T15:04:05")
		if first, dup := walls[w]; dup && !s.repeats {
			t.Fatalf("%s: wall time %s runs twice (%v and %v)", name, w, time.Unix(first, 0).UTC(), tl.UTC())
		}
		walls[w] = u
		days[tl.Format("2006-01-02")] = true
	}
	// Every slot reads a wall time the schedule names, or is the instant
	// the clock jumped forward over one.
	for _, u := range got {
		tl := time.Unix(u, 0).In(s.loc)
		w := time.Date(tl.Year(), tl.Month(), tl.Day(), tl.Hour(), tl.Minute(), tl.Second(), 0, time.UTC)
		if matchDay(s.f, w) && s.f.hour&(1<<w.Hour()) != 0 && s.f.min&(1<<w.Minute()) != 0 && w.Second() == 0 {
			continue
		}
		_, after := tl.Zone()
		if _, before := time.Unix(u-1, 0).In(s.loc).Zone(); before < after {
			continue
		}
		t.Fatalf("%s: slot %v reads %v, not a time of the schedule nor a jump", name, tl.UTC(), tl)
	}
	return len(got)
}

func fmtSlots(us []int64, loc *time.Location) string {
	var b strings.Builder
	for _, u := range us {
		b.WriteString(time.Unix(u, 0).In(loc).Format("01-02T15:04:05-0700 "))
	}
	return b.String()
}

// TestZoneSweep sweeps every zone of the tz database through the
// transitions of 2026 (26 hours either side of each) with sweepSpecs.
func TestZoneSweep(t *testing.T) {
	var specs []*Schedule
	zones, transitions, slots := 0, 0, 0
	from, to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, name := range zoneNames(t) {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		zones++
		specs = specs[:0]
		for _, spec := range sweepSpecs {
			s, err := Parse(spec, loc)
			if err != nil {
				t.Fatal(err)
			}
			specs = append(specs, s)
		}
		for u := from; u.Before(to); {
			_, end := u.In(loc).ZoneBounds()
			if end.IsZero() || !end.Before(to) {
				break
			}
			transitions++
			T := end.Unix()
			for _, s := range specs {
				w := int64(26 * 3600)
				if s.every > 0 && s.every < 60 {
					w = 600 // zone-free slots: a few hundred around the shift are enough
				}
				slots += checkWindow(t, s, T-w, T+w)
			}
			u = end
		}
	}
	t.Logf("%d zones, %d transitions in 2026, %d schedules, %d slots checked", zones, transitions, len(sweepSpecs), slots)
	if transitions < 100 {
		t.Errorf("only %d transitions in 2026: is the tz database there?", transitions)
	}
}

// The cases the tester reported, and the package doc's examples.
func TestDSTPolicy(t *testing.T) {
	load := func(name string) *time.Location {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}
	ny, chatham, lordHowe, london := load("America/New_York"), load("Pacific/Chatham"), load("Australia/Lord_Howe"), load("Europe/London")
	for _, tc := range []struct {
		spec string
		loc  *time.Location
		from string
		want []string // the next slots, local time with offset
	}{
		// Chatham, clocks back 03:45 → 02:45 at 2026-04-04T14:00Z.
		{"*/15 3 * * *", chatham, "2026-04-04T14:00:00Z", []string{"2026-04-05T03:00:00+12:45", "2026-04-05T03:15:00+12:45", "2026-04-05T03:30:00+12:45", "2026-04-05T03:45:00+12:45", "2026-04-06T03:00:00+12:45"}},
		{"*/15 3 * * *", chatham, "2026-04-04T13:00:00Z", []string{"2026-04-05T03:00:00+13:45", "2026-04-05T03:15:00+13:45", "2026-04-05T03:30:00+13:45", "2026-04-05T03:00:00+12:45"}},
		{"45 3 * * *", chatham, "2026-04-04T14:00:00Z", []string{"2026-04-05T03:45:00+12:45", "2026-04-06T03:45:00+12:45"}},
		{"0 3 * * *", chatham, "2026-04-04T12:00:00Z", []string{"2026-04-05T03:00:00+13:45", "2026-04-06T03:00:00+12:45"}}, // first occurrence only
		// Chatham, clocks forward 02:45 → 03:45 on 2026-09-27.
		{"0 3 * * *", chatham, "2026-09-26T12:00:00Z", []string{"2026-09-27T03:45:00+13:45", "2026-09-28T03:00:00+13:45"}},
		// Lord Howe: 30-minute shifts (back 02:00 → 01:30 in April, forward 02:00 → 02:30 in October).
		{"45 1 * * *", lordHowe, "2026-04-04T12:00:00Z", []string{"2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"}},
		{"*/30 * * * *", lordHowe, "2026-04-04T14:10:00Z", []string{"2026-04-05T01:30:00+11:00", "2026-04-05T01:30:00+10:30", "2026-04-05T02:00:00+10:30"}},
		{"15 2 * * *", lordHowe, "2026-10-03T12:00:00Z", []string{"2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"}},
		// New York: 30 1 once on the fall-back day; 30 2 at 03:00 on the spring-forward day; hourly by elapsed time.
		{"30 1 * * *", ny, "2026-11-01T00:00:00Z", []string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
		{"30 2 * * *", ny, "2026-03-07T12:00:00Z", []string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"0 * * * *", ny, "2026-11-01T04:30:00Z", []string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"}},
		{"0 * * * *", ny, "2026-03-08T05:30:00Z", []string{"2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"}},
		{"0,30 1 * * *", ny, "2026-11-01T05:00:00Z", []string{"2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00"}},
		// London's fall-back day: 01:30 once.
		{"30 1 * * *", london, "2026-10-24T12:00:00Z", []string{"2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00Z"}},
	} {
		s, err := Parse(tc.spec, tc.loc)
		if err != nil {
			t.Fatal(err)
		}
		from := at(tc.from)
		for _, w := range tc.want {
			from = s.Next(from)
			if got := from.Format(time.RFC3339); got != strings.Replace(w, "+00:00", "Z", 1) {
				t.Errorf("%q in %v: got %s, want %s", tc.spec, tc.loc, got, w)
				break
			}
		}
	}
	// Period: positive near Chatham's shift, a day (25 h) on London's fall-back day.
	for _, tc := range []struct {
		spec string
		loc  *time.Location
		at   string
		want time.Duration
	}{
		{"*/15 3 * * *", chatham, "2026-04-04T14:00:00Z", 15 * time.Minute},
		{"45 3 * * *", chatham, "2026-04-04T13:59:00Z", 24 * time.Hour},
		{"30 1 * * *", london, "2026-10-24T12:00:00Z", 25 * time.Hour},
		{"30 1 * * *", london, "2026-10-25T00:31:00Z", 24 * time.Hour},
		{"0 * * * *", london, "2026-10-25T00:30:00Z", time.Hour},
	} {
		s, _ := Parse(tc.spec, tc.loc)
		if got := s.Period(at(tc.at)); got != tc.want {
			t.Errorf("%q in %v: Period(%s) = %v, want %v", tc.spec, tc.loc, tc.at, got, tc.want)
		}
	}
}

func TestRepeatsHourly(t *testing.T) {
	for spec, want := range map[string]bool{
		"*/15 * * * *": true, "*/15 3 * * *": true, "0,30 1 * * *": true, "0 * * * *": true, "@hourly": true, "0 0-23 * * *": true,
		"30 1 * * *": false, "0 */2 * * *": false, "@daily": false, "0 0-22 * * *": false, "@weekly": false,
	} {
		s, err := Parse(spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.repeats != want {
			t.Errorf("%q: repeats within the hour = %v, want %v", spec, s.repeats, want)
		}
	}
}

// In zones without transitions the slots are robfig/cron's, for any
// expression its parser accepts.
func TestAgainstRobfig(t *testing.T) {
	kolkata, err := time.LoadLocation("Asia/Kolkata") // no change of offset since 1945
	if err != nil {
		t.Fatal(err)
	}
	locs := []*time.Location{time.UTC, time.FixedZone("+0545", 5*3600+45*60), time.FixedZone("-0930", -(9*3600 + 30*60)), time.FixedZone("+14", 14*3600), kolkata}
	rng := rand.New(rand.NewPCG(1, 2))
	field := func(lo, hi int, names []string) string {
		pick := func() string {
			v := lo + rng.IntN(hi-lo+1)
			if names != nil && rng.IntN(3) == 0 {
				return names[v-lo]
			}
			return fmt.Sprint(v)
		}
		switch rng.IntN(7) {
		case 0:
			return "*"
		case 1:
			return fmt.Sprintf("*/%d", 1+rng.IntN(hi-lo+1))
		case 2:
			a, b := lo+rng.IntN(hi-lo+1), lo+rng.IntN(hi-lo+1)
			return fmt.Sprintf("%d-%d/%d", min(a, b), max(a, b), 1+rng.IntN(5))
		case 3:
			return pick() + "," + pick() + "," + pick()
		case 4:
			return "?"
		default:
			return pick()
		}
	}
	months := []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}
	dows := []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}
	specs := []string{"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly", "0 0 29 2 *", "0 0 31 * MON", "0 0 30 2 *"}
	for range 400 {
		specs = append(specs, strings.Join([]string{field(0, 59, nil), field(0, 23, nil), field(1, 31, nil), field(1, 12, months), field(0, 6, dows)}, " "))
	}
	compared := 0
	for _, spec := range specs {
		rc, err := parser.Parse(spec)
		if err != nil {
			if _, err2 := Parse(spec, nil); err2 == nil {
				t.Fatalf("%q: robfig refuses it (%v), Parse accepts it", spec, err)
			}
			continue
		}
		for _, loc := range locs {
			s, err := Parse(spec, loc)
			if err != nil {
				t.Fatal(err)
			}
			for range 20 {
				t0 := time.Unix(time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).Unix()+rng.Int64N(450*365*86400), int64(rng.IntN(3))*int64(rng.IntN(1e9))).In(loc)
				want := rc.(*cron.SpecSchedule).Next(t0.In(loc))
				got := s.Next(t0)
				if !want.IsZero() && want.Sub(t0) > 5*365*24*time.Hour {
					continue // past Next's five-year horizon
				}
				if !got.Equal(want) {
					t.Fatalf("%q in %v: Next(%v) = %v, robfig says %v", spec, loc, t0, got, want)
				}
				compared++
			}
		}
	}
	t.Logf("%d Next calls compared", compared)
}

// No arithmetic overflows, and Due's work is bounded by what it returns,
// at the ends of the representable years and far from the Unix epoch.
func TestFarSlots(t *testing.T) {
	every, err := Parse("@every 2s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := every.Next(at("2300-01-01T00:00:00Z")); !got.Equal(at("2300-01-01T00:00:02Z")) {
		t.Errorf("@every 2s: Next(2300-01-01) = %v", got)
	}
	if got := every.Next(at("1600-01-01T00:00:01Z")); !got.Equal(at("1600-01-01T00:00:02Z")) {
		t.Errorf("@every 2s: Next(1600-01-01T00:00:01) = %v", got)
	}
	now := at("2300-01-01T00:00:00Z")
	due := every.Due(at("1715-06-13T00:00:00Z"), now, 1<<63-1, 0)
	if len(due) != MaxDue || !due[len(due)-1].Equal(now) || !due[0].Equal(now.Add(-2*time.Second*(MaxDue-1))) {
		t.Errorf("Due over 292 years: %d slots, %v .. %v", len(due), due[0], due[len(due)-1])
	}
	daily, _ := Parse("30 1 * * *", nil)
	for _, tc := range []struct {
		s        *Schedule
		from     time.Time
		wantZero bool
	}{
		{every, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), true},
		{every, time.Date(10500, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{daily, time.Date(9999, 12, 31, 2, 0, 0, 0, time.UTC), true},
		{daily, time.Date(9999, 12, 30, 2, 0, 0, 0, time.UTC), false},
		{every, time.Time{}, false},
		{daily, time.Time{}.Add(-time.Hour), false},
		{daily, time.Unix(-1<<62, 0), false},
		{every, time.Unix(1<<62, 0), true},
	} {
		got := tc.s.Next(tc.from)
		if got.IsZero() != tc.wantZero || (!got.IsZero() && (!got.After(tc.from) || got.Year() > 9999)) {
			t.Errorf("%q: Next(%v) = %v", tc.s, tc.from, got)
		}
	}
	if got := daily.Prev(time.Time{}.Add(12 * time.Hour)); !got.Equal(time.Date(1, 1, 1, 1, 30, 0, 0, time.UTC)) {
		t.Errorf("Prev near year 1 = %v", got)
	}
	if got := daily.Due(time.Time{}, time.Date(9999, 12, 31, 12, 0, 0, 0, time.UTC), 1<<63-1, 3); len(got) != 3 || got[2].Format(time.DateTime) != "9999-12-31 01:30:00" {
		t.Errorf("Due at the end of 9999 = %v", got)
	}
	never, _ := Parse("0 0 30 2 *", nil)
	if got := never.Due(time.Time{}, now, 1<<63-1, 0); got != nil {
		t.Errorf("Due of a schedule with no slot = %v", got)
	}
}

// FuzzSchedule checks, for any schedule text, zone and instant (years
// 1..9999), what TestZoneSweep checks around 2026's transitions: Next
// strictly advances and agrees with Prev, Period is positive, and the
// slots of the day after the instant are the policy's. Due lists the same
// slots.
func FuzzSchedule(f *testing.F) {
	zones := zoneNames(f)
	index := func(name string) uint16 { return uint16(slices.Index(zones, name)) }
	for _, c := range []struct {
		spec, zone, at string
	}{
		{"*/15 3 * * *", "Pacific/Chatham", "2026-04-04T13:00:00Z"},
		{"45 3 * * *", "Pacific/Chatham", "2026-04-04T13:59:00Z"},
		{"*/15 3 * * *", "Pacific/Chatham", "2026-09-26T12:00:00Z"},
		{"*/30 * * * *", "Australia/Lord_Howe", "2026-04-04T13:00:00Z"},
		{"15 2 * * *", "Australia/Lord_Howe", "2026-10-03T14:00:00Z"},
		{"30 1 * * *", "America/New_York", "2026-11-01T04:00:00Z"},
		{"30 2 * * *", "America/New_York", "2026-03-08T06:00:00Z"},
		{"0 * * * *", "America/New_York", "2026-11-01T04:30:00Z"},
		{"@every 2s", "UTC", "2300-01-01T00:00:00Z"},
		{"@every 90m", "Europe/London", "9999-12-31T00:00:00Z"},
		{"0 0 * * *", "Pacific/Apia", "2011-12-29T00:00:00Z"},    // a day skipped
		{"30 12 * * *", "America/Sitka", "1867-10-17T00:00:00Z"}, // a day repeated
		{"0 0 31 12 *", "Asia/Manila", "1844-12-30T00:00:00Z"},   // a day skipped
		{"@hourly", "Pacific/Kwajalein", "1993-08-19T00:00:00Z"}, // a day skipped
		{"0 0 29 2 *", "UTC", "0001-01-01T00:00:00Z"},            // year 1
		{"1-5/2 3,4 * JAN-MAR MON", "Asia/Tehran", "2022-03-21T00:00:00Z"},
	} {
		f.Add(c.spec, index(c.zone), at(c.at).Unix(), int64(3600), uint16(10))
	}
	span := maxUnix - minUnix
	f.Fuzz(func(t *testing.T, spec string, zone uint16, unix, back int64, limit uint16) {
		loc, err := time.LoadLocation(zones[int(zone)%len(zones)])
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(spec, loc)
		if err != nil {
			return
		}
		u := unix
		if u <= minUnix || u > maxUnix-2*86400 {
			u = minUnix + 1 + (unix%span+span)%(span-2*86400)
		}
		if s.every == 0 && s.f.sec != 1 {
			t.Fatalf("%q: a seconds field", spec) // the oracle walks minutes
		}
		now := u + 26*3600
		n := checkWindow(t, s, u, now)
		t0 := time.Unix(u, 0)
		if p, nx := s.Prev(t0), s.Next(t0); !p.IsZero() {
			if p.After(t0) {
				t.Fatalf("%q: Prev(%v) = %v after it", spec, t0, p)
			}
			if n2 := s.Next(p); !n2.IsZero() && !n2.Equal(nx) {
				t.Fatalf("%q: Next(Prev(%v)) = %v, Next = %v", spec, t0, n2, nx)
			}
		}
		// Due over the window lists its slots (the latest limit of them).
		back %= 26 * 3600
		if back < 0 {
			back = -back
		}
		l := int(limit)%MaxDue + 1
		due := s.Due(t0, time.Unix(now, 0), time.Duration(back)*time.Second, l)
		var want []time.Time
		for x := s.Next(t0); !x.IsZero() && x.Unix() <= now; x = s.Next(x) {
			if x.Unix() >= now-back {
				want = append(want, x)
			}
		}
		if len(want) > l {
			want = want[len(want)-l:]
		}
		if len(due) != len(want) || (len(want) > 0 && (!due[0].Equal(want[0]) || !due[len(due)-1].Equal(want[len(want)-1]))) {
			t.Fatalf("%q: Due = %d slots %v, want %d %v (%d in the window)", spec, len(due), due, len(want), want, n)
		}
	})
}
