// Package cronstep is the decision of leasehold cron's leader loop, pure:
// given the job's entry in the lock's record, the time now and what this
// leadership has done so far, it says what to do next — run a slot, run
// one again, leave a slot cut short, skip slots, or sleep until the next.
//
// Two drivers use it, so they cannot drift apart: the leader loop of
// `leasehold cron` (cmd/leasehold) does the claims, runs and sleeps on a
// real elector; the simulator (sim) does them in virtual time. Neither
// decides which slot runs next; a fix of that decision lands here once and
// the simulator measures it.
//
// Nothing here reads a clock or keeps a goroutine: the driver passes now
// and reports what happened (Ran).
package cronstep

import (
	"time"

	"github.com/leasehold-go/leasehold/elector"
)

// Schedule is what the step needs of a schedule (schedule.Schedule has
// it): the first slot after an instant, the gap between slots (the default
// catch-up window) and the slots due at an instant.
type Schedule interface {
	Next(t time.Time) time.Time
	Period(t time.Time) time.Duration
	Due(last, now time.Time, catchUp time.Duration, limit int) []time.Time
}

// Options are the job's rules, as `leasehold cron`'s flags give them.
type Options struct {
	// CatchUp is how far back a new leader runs missed slots; below 0:
	// one period of the schedule, read at each step.
	CatchUp time.Duration
	// Rerun: a run cut short by a failover runs again on the next leader
	// (--interrupted rerun); otherwise it is left (at most once).
	Rerun bool
	// SkipOverlap: a slot that came due while this leadership's run was
	// going is claimed as done without running (--overlap skip);
	// otherwise it runs once the run ends.
	SkipOverlap bool
	// MaxSlots bounds how many missed slots one catch-up runs (the
	// latest); 0: no bound beyond the window.
	MaxSlots int
}

// Kind is what to do next.
type Kind uint8

const (
	// Wait: sleep until Action.Until (wall clock), then step again.
	Wait Kind = iota
	// Idle: the schedule has no slot in the next five years; wait for the
	// leadership to end.
	Idle
	// Leave: Action.Slot was cut short by a failover (its leadership's
	// term is Action.Term) and is not run again (at most once). Say so,
	// then step again.
	Leave
	// Rerun: claim Action.Slot again (Elector.Reclaim) and run it, as the
	// one rerun of a run cut short.
	Rerun
	// Run: claim Action.Slot (Elector.Claim) and run it.
	Run
	// Skip: claim each of Action.Skipped and mark it done without running
	// it (they came due while a run was going); then step again.
	Skip
)

var kindNames = [...]string{Wait: "wait", Idle: "idle", Leave: "leave", Rerun: "rerun", Run: "run", Skip: "skip"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(?)"
}

// Action is one decision.
type Action struct {
	Kind    Kind
	Slot    time.Time   // Leave, Rerun, Run
	Term    int64       // Leave: the term of the leadership whose run was cut short
	Skipped []time.Time // Skip, in order
	Until   time.Time   // Wait
}

// Loop is the state of one leadership's loop; start a new one (New) at
// each leadership.
type Loop struct {
	sched Schedule
	o     Options
	term  int64
	// handled is the slot cut short by an earlier leadership that this
	// one has dealt with (left or rerun).
	handled time.Time
	// ranFrom and ranTo are when this leadership's last run started and
	// ended (zero: no run yet): a slot after the start and at or before
	// the end came due while that run was going.
	ranFrom, ranTo time.Time
	// fresh is when this loop first stepped on a job with no history:
	// its first slot is the first at or after it.
	fresh time.Time
}

// New returns the loop of a leadership with term.
func New(sched Schedule, o Options, term int64) *Loop {
	return &Loop{sched: sched, o: o, term: term}
}

// Ran tells the loop that a run of this leadership went from start to end
// (wall clock; whether it finished or was cut short).
func (l *Loop) Ran(start, end time.Time) {
	l.ranFrom, l.ranTo = start, end
}

// Step decides what to do at now, given the job's entry in the record as
// the elector last saw it.
func (l *Loop) Step(job elector.JobState, now time.Time) Action {
	if job.Started.After(job.Done) && job.StartedTerm != l.term && !job.Started.Equal(l.handled) {
		// An earlier leadership claimed a slot and never marked it done:
		// its run was cut short (or its claim's answer was lost).
		l.handled = job.Started
		if !l.o.Rerun {
			return Action{Kind: Leave, Slot: job.Started, Term: job.StartedTerm}
		}
		return Action{Kind: Rerun, Slot: job.Started, Term: job.StartedTerm}
	}
	window := l.o.CatchUp
	switch {
	case job.Started.IsZero():
		// A job that never ran has no history to catch up on: it starts
		// with its next slot, one due at or after this loop first saw it
		// (as Kubernetes' CronJob does). Catch-up applies to slots missed
		// after its first claim.
		if l.fresh.IsZero() || now.Before(l.fresh) {
			l.fresh = now
		}
		window = now.Sub(l.fresh)
	case window < 0:
		window = l.sched.Period(now) // one period by default
	}
	due := l.sched.Due(job.Started, now, window, l.o.MaxSlots)
	if len(due) == 0 {
		next := l.sched.Next(laterOf(now, job.Started))
		if next.IsZero() {
			return Action{Kind: Idle}
		}
		return Action{Kind: Wait, Until: next}
	}
	if l.o.SkipOverlap {
		n := 0
		for n < len(due) && due[n].After(l.ranFrom) && !due[n].After(l.ranTo) {
			n++
		}
		if n > 0 {
			return Action{Kind: Skip, Skipped: due[:n]}
		}
	}
	return Action{Kind: Run, Slot: due[0]}
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
