// Package schedule evaluates the schedules of leasehold cron: which slots
// (scheduled instants) are due, so that every replica names a slot the
// same way and a claim in the lock's record can say "slot S started".
//
// A schedule is standard cron syntax (five fields, as Kubernetes' CronJob
// and crontab(5) write them), a descriptor (@hourly, @daily, ...) or
// "@every D". Slots of "@every D" are the multiples of D since the Unix
// epoch, not D after whenever a replica started: replicas that start at
// different times must agree on the slots. The text is read by the parser
// the CronJob controller uses (github.com/robfig/cron/v3), so the accepted
// syntax is the same; the slots are computed here, not by that package,
// whose Next can go backwards or stand still where a zone's clock changes.
//
// # Daylight saving time
//
// A cron schedule names wall-clock times in its zone; a slot is an
// instant. Where the zone's clock jumps or goes back (daylight saving
// time, a change of offset), the slots follow Vixie cron's policy:
//
//   - A wall time that does not exist that day (the clock jumped over
//     it) runs once, at the instant of the jump: "30 2 * * *" in New York
//     runs at 03:00 EDT on the day clocks spring forward. Several skipped
//     wall times make one slot, and that slot is also the one of the wall
//     time the clock jumped to, if it matches.
//   - A wall time that occurs twice (the clock went back over it) runs
//     once, at its first occurrence: "30 1 * * *" in New York runs at
//     01:30 EDT, not again at 01:30 EST.
//   - Except that a schedule that repeats within the hour — its minute
//     field lists more than one minute ("*/15 * * * *", "0,30 1 * * *"), or
//     its hour field is every hour ("0 * * * *", @hourly) — follows
//     elapsed time where the clock goes back: it runs at both occurrences
//     ("0 * * * *" runs at 01:00 EDT and 01:00 EST).
//   - "@every D" ignores the zone: multiples of D since the epoch.
//
// So every slot is strictly after the one before it, no wall time runs
// twice except under the third rule, and every day that has a matching
// wall time runs. Slots lie between year 1 and the end of year 9999; a
// search looks five years ahead (or back) and then gives up.
//
// Nothing here reads the clock: the caller passes "now".
package schedule

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed schedule in a time zone.
type Schedule struct {
	spec    string
	loc     *time.Location
	every   int64 // seconds, > 0 for @every
	f       fields
	repeats bool // f repeats within the hour: elapsed time where the clock goes back
}

// MaxSpec bounds the length of a schedule's text.
const MaxSpec = 256

// MaxDue bounds the slots Due returns, whatever limit it is given, so that
// its work is bounded for any window.
const MaxDue = 10000

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse reads a schedule; loc is its time zone (nil: UTC). Errors say
// what is wrong with the text.
func Parse(spec string, loc *time.Location) (*Schedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "":
		return nil, errors.New("empty schedule (write it like \"*/5 * * * *\" or \"@every 30s\")")
	case len(spec) > MaxSpec:
		return nil, fmt.Errorf("schedule longer than %d characters", MaxSpec)
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		return nil, errors.New("give the time zone with --timezone, not in the schedule")
	}
	s := &Schedule{spec: spec, loc: loc}
	if rest, ok := strings.CutPrefix(spec, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("@every: %q is not a duration (write it like 30s or 5m)", strings.TrimSpace(rest))
		}
		if d < time.Second || d%time.Second != 0 {
			return nil, fmt.Errorf("@every %v: want a whole number of seconds, at least 1s", d)
		}
		s.every = int64(d / time.Second)
		return s, nil
	}
	c, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", spec, err)
	}
	spec2, ok := c.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("%q: not a cron expression", spec)
	}
	s.f = fields{sec: spec2.Second, min: spec2.Minute, hour: spec2.Hour, dom: spec2.Dom, month: spec2.Month, dow: spec2.Dow}
	s.repeats = s.f.repeatsHourly()
	return s, nil
}

// String is the schedule as written.
func (s *Schedule) String() string { return s.spec }

// Location is the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// Next returns the first slot strictly after t, or the zero time if there
// is none within five years (a schedule such as "0 0 30 2 *") or before
// the end of year 9999.
func (s *Schedule) Next(t time.Time) time.Time {
	if !t.Before(maxTime) {
		return time.Time{}
	}
	from := minUnix + 1
	if !t.Before(minTime) {
		from = t.Unix() + 1 // t.Unix() rounds down: the first whole second after t
	}
	return s.instant(s.next(from))
}

// Prev returns the last slot at or before t, or the zero time if there is
// none within five years before t (or after year 1).
func (s *Schedule) Prev(t time.Time) time.Time {
	if t.Before(minTime) {
		return time.Time{}
	}
	to := maxUnix
	if t.Before(maxTime) {
		to = t.Unix()
	}
	return s.instant(s.prev(to))
}

func (s *Schedule) instant(u int64, ok bool) time.Time {
	if !ok {
		return time.Time{}
	}
	return time.Unix(u, 0).In(s.loc)
}

// Period is the gap between the first two slots after t: the default
// catch-up window of leasehold cron. It is positive (slots strictly
// advance), and zero only when there are no two slots within five years.
func (s *Schedule) Period(t time.Time) time.Duration {
	if s.every > 0 {
		return time.Duration(s.every) * time.Second
	}
	a := s.Next(t)
	if a.IsZero() {
		return 0
	}
	b := s.Next(a)
	if b.IsZero() {
		return 0
	}
	return b.Sub(a)
}

// Due returns the slots to run at now, in order: those after last (the
// last slot claimed; zero if none) and at or before now, but none older
// than now − catchUp (missed slots past the window are dropped; a
// negative catchUp is 0), at most limit of them (the latest ones; limit
// <= 0 or above MaxDue means MaxDue). A slot exactly at now is due. Its
// work is bounded by the slots it returns, whatever the window.
func (s *Schedule) Due(last, now time.Time, catchUp time.Duration, limit int) []time.Time {
	if catchUp < 0 {
		catchUp = 0
	}
	if limit <= 0 || limit > MaxDue {
		limit = MaxDue
	}
	from := now.Add(-catchUp)
	var rev []time.Time
	// Walk back from now: the latest slots are the ones kept.
	for t := s.Prev(now); !t.IsZero() && len(rev) < limit; t = s.Prev(t.Add(-time.Second)) {
		if t.Before(from) || !t.After(last) {
			break
		}
		rev = append(rev, t)
	}
	out := make([]time.Time, 0, len(rev))
	for i := len(rev) - 1; i >= 0; i-- {
		out = append(out, rev[i])
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// next is the first slot at or after instant from.
func (s *Schedule) next(from int64) (int64, bool) {
	if from <= minUnix {
		from = minUnix + 1
	}
	if s.every > 0 {
		k := from / s.every
		if k*s.every < from {
			k++
		}
		u := k * s.every
		return u, u <= maxUnix
	}
	end := from + horizon
	if end > maxUnix+1 {
		end = maxUnix + 1
	}
	u := from
	for i := 0; u < end && i < maxSegments; i++ {
		g := segmentAt(s.loc, u)
		// A segment that begins at or after from begins with a change of
		// offset: a jump forward may carry the slots of skipped times.
		if g.start >= from && g.start != math.MinInt64 {
			if p := segmentAt(s.loc, g.start-1); p.off < g.off && s.jumpSlot(g.start, p.off, g.off) {
				return g.start, true
			}
		}
		lo, hi := max(g.start, from), min(g.end, end)
		for x := lo + g.off; ; {
			w, ok := s.f.nextWall(x, hi+g.off)
			if !ok {
				break
			}
			if c := w - g.off; s.isSlot(c, w, g) {
				return c, true
			}
			x = w + 1
		}
		if g.end >= end {
			break
		}
		u = g.end
	}
	return 0, false
}

// prev is the last slot at or before instant to.
func (s *Schedule) prev(to int64) (int64, bool) {
	if to > maxUnix {
		to = maxUnix
	}
	if to <= minUnix {
		return 0, false
	}
	if s.every > 0 {
		k := to / s.every
		if k*s.every > to {
			k--
		}
		u := k * s.every
		return u, u > minUnix
	}
	lower := max(to-horizon, minUnix+1)
	u := to
	for i := 0; u >= lower && i < maxSegments; i++ {
		g := segmentAt(s.loc, u)
		lo, hi := max(g.start, lower), min(g.end-1, to)
		for x := hi + g.off; ; {
			w, ok := s.f.prevWall(x, lo+g.off)
			if !ok {
				break
			}
			if c := w - g.off; s.isSlot(c, w, g) {
				return c, true
			}
			x = w - 1
		}
		if g.start == math.MinInt64 || g.start < lower {
			break
		}
		if p := segmentAt(s.loc, g.start-1); p.off < g.off && s.jumpSlot(g.start, p.off, g.off) {
			return g.start, true
		}
		u = g.start - 1
	}
	return 0, false
}

// isSlot says whether instant c, whose wall time in segment g is w (and
// which the fields match), is a slot: unless the schedule repeats within
// the hour, only the first instant showing w is.
func (s *Schedule) isSlot(c, w int64, g segment) bool {
	if s.repeats || (w-maxOffset-maxOffset >= g.start && w+maxOffset+maxOffset < g.end) {
		// Elapsed time, or no other period of the zone can show w.
		return true
	}
	info := readWall(s.loc, w)
	return len(info.occ) > 0 && info.occ[0] == c
}

// jumpSlot says whether the jump of the clock at instant at, from offset
// before to after, carries a slot: a skipped wall time that the fields
// match, that the clock never shows, and that this is the first jump over.
func (s *Schedule) jumpSlot(at, before, after int64) bool {
	limit := at + after
	for x := at + before; ; {
		w, ok := s.f.nextWall(x, limit)
		if !ok {
			return false
		}
		if info := readWall(s.loc, w); len(info.occ) == 0 && info.ok && info.jump == at {
			return true
		}
		x = w + 1
	}
}
