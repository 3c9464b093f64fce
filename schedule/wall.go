package schedule

import (
	"math"
	"math/bits"
	"time"
)

// Times here are whole seconds in int64: an instant is Unix seconds; a
// wall time (a reading of a zone's clock) is the Unix seconds of the same
// reading in UTC, so that instant + offset = wall time. Nothing leaves the
// range of years 1..9999 by more than a few years, so nothing overflows.

const (
	// maxOffset bounds a zone's UTC offset (every zone of the tz database
	// stays within ±16 h): all instants whose wall clock reads W lie
	// within W ± maxOffset.
	maxOffset = 26 * 3600
	// horizon is how far Next and Prev look for a slot: five years.
	horizon = 5 * 366 * 86400
	// maxSegments bounds the zone periods one search walks through.
	maxSegments = 4096
	// starBit marks a field written "*" (or "?") in robfig/cron's parser.
	starBit = 1 << 63
)

var (
	// Slots lie in (minUnix, maxUnix]: after the zero time, in year 9999
	// at the latest.
	minUnix = time.Time{}.Unix()
	maxUnix = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	minTime = time.Unix(minUnix+1, 0)
	maxTime = time.Unix(maxUnix, 0)
)

// fields are the bit sets of a parsed cron expression (bit i: value i
// matches), as robfig/cron's parser computes them.
type fields struct {
	sec, min, hour, dom, month, dow uint64
}

// dayMatches follows crontab(5), as robfig/cron does: if either day field
// is "*", a day must match both; otherwise either.
func (f *fields) dayMatches(day int, wd time.Weekday) bool {
	domOK := f.dom&(1<<uint(day)) != 0
	dowOK := f.dow&(1<<uint(wd)) != 0
	if f.dom&starBit != 0 || f.dow&starBit != 0 {
		return domOK && dowOK
	}
	return domOK || dowOK
}

// repeatsHourly says whether the schedule fires more than once an hour or
// every hour: such a schedule follows elapsed time where a zone's clock
// goes back (see the package doc).
func (f *fields) repeatsHourly() bool {
	const sixty, day = 1<<60 - 1, 1<<24 - 1
	return bits.OnesCount64(f.sec&sixty) > 1 || bits.OnesCount64(f.min&sixty) > 1 || f.hour&day == day
}

// nextBit is the smallest value >= from in mask (values 0..63 except the
// star bit), if any.
func nextBit(mask uint64, from int) (int, bool) {
	m := mask &^ starBit &^ (1<<uint(from) - 1)
	if m == 0 {
		return 0, false
	}
	return bits.TrailingZeros64(m), true
}

// prevBit is the largest value <= from in mask, if any.
func prevBit(mask uint64, from int) (int, bool) {
	m := mask &^ starBit & (1<<uint(from+1) - 1)
	if m == 0 {
		return 0, false
	}
	return bits.Len64(m) - 1, true
}

// civil is the wall time of a calendar reading (normalized as time.Date
// does: hour 24 is the next day's 0).
func civil(y int, mo time.Month, d, h, mi, s int) int64 {
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC).Unix()
}

// nextWall is the first wall time in [x, limit) that the fields match.
// Its work is a few steps per day of the range (months that do not match
// are skipped whole).
func (f *fields) nextWall(x, limit int64) (int64, bool) {
	for x < limit {
		t := time.Unix(x, 0).UTC()
		y, mo, d := t.Date()
		if f.month&(1<<uint(mo)) == 0 {
			x = civil(y, mo+1, 1, 0, 0, 0)
			continue
		}
		if !f.dayMatches(d, t.Weekday()) {
			x = civil(y, mo, d+1, 0, 0, 0)
			continue
		}
		h, mi, s := t.Clock()
		nh, ok := nextBit(f.hour, h)
		if !ok || nh > 23 {
			x = civil(y, mo, d+1, 0, 0, 0)
			continue
		}
		if nh > h {
			h, mi, s = nh, 0, 0
		}
		nm, ok := nextBit(f.min, mi)
		if !ok || nm > 59 {
			x = civil(y, mo, d, h+1, 0, 0)
			continue
		}
		if nm > mi {
			mi, s = nm, 0
		}
		ns, ok := nextBit(f.sec, s)
		if !ok || ns > 59 {
			x = civil(y, mo, d, h, mi+1, 0)
			continue
		}
		if w := civil(y, mo, d, h, mi, ns); w < limit {
			return w, true
		}
		return 0, false
	}
	return 0, false
}

// prevWall is the last wall time in [lower, x] that the fields match.
func (f *fields) prevWall(x, lower int64) (int64, bool) {
	for x >= lower {
		t := time.Unix(x, 0).UTC()
		y, mo, d := t.Date()
		if f.month&(1<<uint(mo)) == 0 {
			x = civil(y, mo, 1, 0, 0, 0) - 1
			continue
		}
		if !f.dayMatches(d, t.Weekday()) {
			x = civil(y, mo, d, 0, 0, 0) - 1
			continue
		}
		h, mi, s := t.Clock()
		ph, ok := prevBit(f.hour, h)
		if !ok {
			x = civil(y, mo, d, 0, 0, 0) - 1
			continue
		}
		if ph < h {
			h, mi, s = ph, 59, 59
		}
		pm, ok := prevBit(f.min, mi)
		if !ok {
			x = civil(y, mo, d, h, 0, 0) - 1
			continue
		}
		if pm < mi {
			mi, s = pm, 59
		}
		ps, ok := prevBit(f.sec, s)
		if !ok {
			x = civil(y, mo, d, h, mi, 0) - 1
			continue
		}
		if w := civil(y, mo, d, h, mi, ps); w >= lower {
			return w, true
		}
		return 0, false
	}
	return 0, false
}

// segment is a period of a zone with one UTC offset: instants [start,
// end) (math.MinInt64 / math.MaxInt64 where unbounded).
type segment struct {
	start, end, off int64
}

// segmentAt is the zone period holding instant u.
func segmentAt(loc *time.Location, u int64) segment {
	t := time.Unix(u, 0).In(loc)
	_, off := t.Zone()
	a, b := t.ZoneBounds()
	g := segment{math.MinInt64, math.MaxInt64, int64(off)}
	if !a.IsZero() {
		g.start = a.Unix()
	}
	if !b.IsZero() {
		g.end = b.Unix()
	}
	return g
}

// wallInfo is how a zone shows a wall time W: the instants its clock
// reads W (in order; none if W is skipped), and, if there are none, the
// first forward jump of the clock over W.
type wallInfo struct {
	occ  []int64
	jump int64
	ok   bool // jump is set
}

func readWall(loc *time.Location, w int64) wallInfo {
	var (
		info  wallInfo
		prev  segment
		first = true
	)
	for u, i := w-maxOffset, 0; u <= w+maxOffset && i < maxSegments; i++ {
		g := segmentAt(loc, u)
		if c := w - g.off; c >= g.start && c < g.end {
			info.occ = append(info.occ, c)
		}
		if !first && !info.ok && prev.off < g.off && w >= g.start+prev.off && w < g.start+g.off {
			info.jump, info.ok = g.start, true
		}
		prev, first = g, false
		if g.end == math.MaxInt64 {
			break
		}
		u = g.end
	}
	return info
}
