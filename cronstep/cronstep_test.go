package cronstep_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/cronstep"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/schedule"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at is t0 plus seconds.
func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func every(t *testing.T, spec string) *schedule.Schedule {
	t.Helper()
	s, err := schedule.Parse(spec, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// show writes an action the way the cases below spell it.
func show(a cronstep.Action) string {
	sec := func(t time.Time) string { return fmt.Sprint(t.Sub(t0).Seconds()) }
	switch a.Kind {
	case cronstep.Wait:
		return "wait " + sec(a.Until)
	case cronstep.Leave, cronstep.Rerun:
		return fmt.Sprintf("%v %s term %d", a.Kind, sec(a.Slot), a.Term)
	case cronstep.Run:
		return "run " + sec(a.Slot)
	case cronstep.Skip:
		var ss []string
		for _, s := range a.Skipped {
			ss = append(ss, sec(s))
		}
		return "skip " + strings.Join(ss, ",")
	}
	return a.Kind.String()
}

func TestStep(t *testing.T) {
	job := func(started, done float64, term int64) elector.JobState {
		j := elector.JobState{StartedTerm: term}
		if started >= 0 {
			j.Started = at(started)
		}
		if done >= 0 {
			j.Done = at(done)
		}
		return j
	}
	cases := []struct {
		name string
		o    cronstep.Options
		job  elector.JobState
		now  float64
		want []string // the actions of steps at now, the job unchanged
	}{
		// A job that never ran starts with its next slot, whatever the
		// catch-up window: it has no history to catch up on.
		{"first start", cronstep.Options{CatchUp: time.Minute}, elector.JobState{}, 25, []string{"wait 30"}},
		{"first start between slots", cronstep.Options{CatchUp: -1}, elector.JobState{}, 5, []string{"wait 10"}},
		{"first start on a slot", cronstep.Options{CatchUp: -1}, elector.JobState{}, 10, []string{"run 10"}},
		// Caught up: sleep until the next slot.
		{"caught up", cronstep.Options{CatchUp: -1}, job(20, 20, 7), 25, []string{"wait 30"}},
		// Catch-up runs the missed slots in order, within the window.
		{"catch up", cronstep.Options{CatchUp: 25 * time.Second}, job(10, 10, 3), 52, []string{"run 30"}},
		{"catch up default window", cronstep.Options{CatchUp: -1}, job(10, 10, 3), 52, []string{"run 50"}},
		{"no catch up", cronstep.Options{CatchUp: 0}, job(10, 10, 3), 52, []string{"wait 60"}},
		// A run cut short by an earlier leadership: left once, then the
		// loop goes on; or run again once.
		{"cut short, skip", cronstep.Options{CatchUp: -1}, job(20, 10, 3), 25, []string{"leave 20 term 3", "wait 30", "wait 30"}},
		{"cut short, rerun", cronstep.Options{CatchUp: -1, Rerun: true}, job(20, 10, 3), 25, []string{"rerun 20 term 3", "wait 30"}},
		// Cut short by this leadership: nothing to hand over.
		{"own claim", cronstep.Options{CatchUp: -1, Rerun: true}, job(20, 10, 9), 25, []string{"wait 30"}},
		// After a failover, --overlap skip runs the missed slots: no run
		// of this leadership was going when they came due.
		{"catch up with overlap skip", cronstep.Options{CatchUp: time.Minute, SkipOverlap: true}, job(10, 10, 3), 52, []string{"run 20"}},
		{"the latest slots", cronstep.Options{CatchUp: time.Hour, MaxSlots: 2}, job(10, 10, 3), 52, []string{"run 40"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := cronstep.New(every(t, "@every 10s"), c.o, 9)
			var got []string
			for range c.want {
				got = append(got, show(l.Step(c.job, at(c.now))))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// A job with no history waits for its next slot and then runs it (not
// only a slot due the very instant of a step).
func TestStepFirstStart(t *testing.T) {
	l := cronstep.New(every(t, "@every 10s"), cronstep.Options{CatchUp: time.Minute}, 9)
	var job elector.JobState
	for _, c := range []struct {
		now  float64
		want string
	}{{25, "wait 30"}, {30.004, "run 30"}} {
		if got := show(l.Step(job, at(c.now))); got != c.want {
			t.Fatalf("at %v: %s, want %s", c.now, got, c.want)
		}
	}
}

// --overlap skip skips exactly the slots that came due while this
// leadership's last run was going, and runs the next one on time; --overlap
// wait runs them, in order.
func TestStepOverlap(t *testing.T) {
	for _, skip := range []bool{true, false} {
		l := cronstep.New(every(t, "@every 10s"), cronstep.Options{CatchUp: time.Minute, SkipOverlap: skip}, 9)
		job := elector.JobState{Started: at(10), StartedTerm: 9}
		// The run of slot 10 went on from 10.2 until 35.
		l.Ran(at(10.2), at(35))
		job.Done = at(10)
		a := l.Step(job, at(35))
		if skip {
			if got := show(a); got != "skip 20,30" {
				t.Fatalf("skip: %s, want skip 20,30", got)
			}
			job.Started, job.Done = at(30), at(30)
			if got := show(l.Step(job, at(35.1))); got != "wait 40" {
				t.Fatalf("skip, after skipping: %s, want wait 40", got)
			}
			continue
		}
		if got := show(a); got != "run 20" {
			t.Fatalf("wait: %s, want run 20", got)
		}
	}
}

// The drivers call Step in a loop: whatever the job's state and the time,
// a step that does not wait moves the job forward or hands over a slot
// once, and never asks to run a slot at or before the last one claimed
// (but for the one rerun of a slot cut short).
func TestStepProgress(t *testing.T) {
	sched := every(t, "*/5 * * * *")
	for _, o := range []cronstep.Options{{CatchUp: -1}, {CatchUp: time.Hour, Rerun: true}, {CatchUp: 0, SkipOverlap: true}, {CatchUp: 10 * time.Minute, MaxSlots: 1}} {
		for started := -1; started < 40; started += 7 {
			for _, done := range []int{-1, started} {
				l := cronstep.New(sched, o, 5)
				job := elector.JobState{StartedTerm: 4}
				if started >= 0 {
					job.Started = t0.Add(time.Duration(started) * time.Minute)
				}
				if done >= 0 {
					job.Done = job.Started
				}
				now := t0.Add(42 * time.Minute)
				l.Ran(now.Add(-20*time.Minute), now.Add(-time.Minute))
				claimed := job.Started
				for step := 0; ; step++ {
					if step > 100 {
						t.Fatalf("%+v, job %+v: no wait after 100 steps", o, job)
					}
					a := l.Step(job, now)
					switch a.Kind {
					case cronstep.Wait:
						if !a.Until.After(now) {
							t.Fatalf("%+v: wait until %v, not after now %v", o, a.Until, now)
						}
					case cronstep.Run:
						if !a.Slot.After(claimed) || a.Slot.After(now) {
							t.Fatalf("%+v: run %v, last claimed %v, now %v", o, a.Slot, claimed, now)
						}
						claimed, job = a.Slot, elector.JobState{Started: a.Slot, StartedTerm: 5, Done: a.Slot}
						continue
					case cronstep.Rerun:
						if !o.Rerun || !a.Slot.Equal(job.Started) {
							t.Fatalf("%+v: rerun %v of %+v", o, a.Slot, job)
						}
						job = elector.JobState{Started: a.Slot, StartedTerm: 5, Done: a.Slot, Rerun: true}
						continue
					case cronstep.Skip:
						for _, s := range a.Skipped {
							if !s.After(claimed) {
								t.Fatalf("%+v: skip %v, last claimed %v", o, s, claimed)
							}
							claimed = s
						}
						job = elector.JobState{Started: claimed, StartedTerm: 5, Done: claimed}
						continue
					case cronstep.Leave:
						if o.Rerun {
							t.Fatalf("%+v: leave with rerun", o)
						}
						continue
					default:
						t.Fatalf("%+v: %v", o, a.Kind)
					}
					break
				}
			}
		}
	}
}
