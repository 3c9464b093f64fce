// Package schedule evaluates the schedules of leasehold cron: which slots
// (scheduled instants) are due, so that every replica names a slot the
// same way and a claim in the lock's record can say "slot S started".
//
// A schedule is standard cron syntax (five fields, as Kubernetes' CronJob
// and crontab(5) write them), a descriptor (@hourly, @daily, ...) or
// "@every D". Slots of "@every D" are the multiples of D since the Unix
// epoch, not D after whenever a replica started: replicas that start at
// different times must agree on the slots. The parser is the one the
// CronJob controller uses (github.com/robfig/cron/v3).
//
// Nothing here reads the clock: the caller passes "now".
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed schedule in a time zone.
type Schedule struct {
	spec  string
	loc   *time.Location
	every time.Duration // > 0 for @every
	cron  cron.Schedule
}

// MaxSpec bounds the length of a schedule's text.
const MaxSpec = 256

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
		s.every = d
		return s, nil
	}
	c, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", spec, err)
	}
	s.cron = c
	return s, nil
}

// String is the schedule as written.
func (s *Schedule) String() string { return s.spec }

// Location is the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// Next returns the first slot strictly after t, or the zero time if there
// is none within five years (a schedule such as "0 0 30 2 *").
func (s *Schedule) Next(t time.Time) time.Time {
	if s.every > 0 {
		d := int64(s.every)
		n := t.UnixNano()
		next := (n/d + 1) * d
		if n < 0 && n%d != 0 {
			next = (n / d) * d
		}
		return time.Unix(0, next).In(s.loc)
	}
	return s.cron.Next(t.In(s.loc))
}

// Period is the gap between the first two slots after t: the default
// catch-up window of leasehold cron.
func (s *Schedule) Period(t time.Time) time.Duration {
	if s.every > 0 {
		return s.every
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
// than now − catchUp (missed slots past the window are dropped), at most
// limit of them (the latest ones). A slot exactly at now is due.
func (s *Schedule) Due(last, now time.Time, catchUp time.Duration, limit int) []time.Time {
	from := now.Add(-catchUp)
	if !last.Before(from) {
		from = last // last itself was claimed: not due again
	} else {
		// from itself may be a slot inside the window: start just before.
		from = from.Add(-time.Nanosecond)
	}
	var out []time.Time
	for t := s.Next(from); !t.IsZero() && !t.After(now); t = s.Next(t) {
		out = append(out, t)
		if len(out) > limit && limit > 0 {
			out = out[1:]
		}
	}
	return out
}
