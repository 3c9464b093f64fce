package elector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

const (
	ld = 15 * time.Second
	rd = 10 * time.Second
	rp = 2 * time.Second
)

type fixedRand float64

func (f fixedRand) Float64() float64 { return float64(f) }

// epoch is before TermEpoch: WallTerm adds nothing to the terms of these tests
// (TestWallTerm tests it).
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) Now { return Now{Mono: d, Wall: epoch.Add(d)} }

func newM(t *testing.T, watch bool) *Machine {
	t.Helper()
	cfg := DefaultConfig("me")
	m, err := NewMachine(cfg, fixedRand(0), watch)
	if err != nil {
		t.Fatal(err)
	}
	m.StoreNeverForgets() // the tests of forgetting stores say so
	return m
}

func foreign(holder string, term int64) Record {
	return Record{Holder: holder, LeaseDuration: ld, AcquireTime: epoch, RenewTime: epoch, Term: term}
}

// lead brings a fresh machine to leadership at t=0 with version "v1".
func lead(t *testing.T, m *Machine) {
	t.Helper()
	out := m.Start(at(0))
	wantCall(t, out, OpGet)
	out = m.Result(at(0), Record{}, "", ErrNotFound)
	wantCall(t, out, OpCreate)
	out = m.Result(at(0), Record{}, "v1", nil)
	if !out.Started || out.Term != 1 {
		t.Fatalf("after a successful create: %s, want Started term 1", show(out))
	}
}

func wantCall(t *testing.T, out Output, op Op) {
	t.Helper()
	if out.Call.Op != op {
		t.Fatalf("got %s, want call %s", show(out), op)
	}
}

func wantWait(t *testing.T, out Output, until time.Duration) {
	t.Helper()
	if out.Call.Op != OpNone || out.Done || out.Wait.Until != until {
		t.Fatalf("got %s, want wait until %v", show(out), until)
	}
}

// show renders an Output on one line; it is also the golden transcript format.
func show(o Output) string {
	var b strings.Builder
	if o.Stopped {
		fmt.Fprintf(&b, "stopped(%s) ", o.Reason)
	}
	if o.Started {
		fmt.Fprintf(&b, "started(term=%d) ", o.Term)
	}
	if o.LeaderChanged {
		fmt.Fprintf(&b, "leader=%q ", o.Leader)
	}
	if o.Renewed {
		fmt.Fprintf(&b, "valid<%v ", o.ValidUntil)
	}
	if o.Problem != ProblemNone {
		fmt.Fprintf(&b, "problem(%d) ", o.Problem)
	}
	if o.Anomaly != AnomalyNone {
		fmt.Fprintf(&b, "anomaly(%d term=%d seen=%d) ", o.Anomaly, o.AnomalyTerm, o.AnomalySeen)
	}
	for _, c := range o.Claims {
		verb := "claim"
		switch {
		case c.Request.Done:
			verb = "done"
		case c.Request.Rerun:
			verb = "rerun"
		case c.Request.Abandon:
			verb = "abandon"
		}
		if c.Request.Forget {
			fmt.Fprintf(&b, "forget#%d(%s)=%s", c.Request.ID, c.Request.Job, c.Outcome)
		} else {
			fmt.Fprintf(&b, "%s#%d(%s %s)=%s", verb, c.Request.ID, c.Request.Job, c.Request.Slot.Sub(epoch), c.Outcome)
		}
		switch {
		case c.Outcome == ClaimAcknowledged:
			fmt.Fprintf(&b, "(term=%d)", c.Term)
		case c.Outcome != ClaimFailed:
		case errors.Is(c.Err, ErrNotLeader):
			b.WriteString("(not leading)")
		case errors.Is(c.Err, ErrConflict):
			b.WriteString("(conflict)")
		case errors.Is(c.Err, context.DeadlineExceeded):
			b.WriteString("(timeout)")
		default:
			b.WriteString("(store error)")
		}
		b.WriteString(" ")
	}
	switch {
	case o.Call.Op != OpNone:
		c := o.Call
		fmt.Fprintf(&b, "%s", c.Op)
		if c.Op != OpGet {
			fmt.Fprintf(&b, " holder=%q term=%d acquired=%s renewed=%s", c.Record.Holder, c.Record.Term,
				c.Record.AcquireTime.Sub(epoch), c.Record.RenewTime.Sub(epoch))
			if c.Record.Instance != "" {
				fmt.Fprintf(&b, " instance=%s", c.Record.Instance)
			}
		}
		if len(c.Record.Jobs) > 0 {
			fmt.Fprintf(&b, " jobs=%s", showJobs(c.Record.Jobs))
		}
		if c.Op == OpUpdate {
			fmt.Fprintf(&b, " expect=%s", c.Version)
		}
		if c.Kind == KindRelease {
			b.WriteString(" release")
		}
		fmt.Fprintf(&b, " deadline=%v", c.Deadline)
	case o.Done:
		b.WriteString("done")
	case o.Pending:
		b.WriteString("pending")
	default:
		fmt.Fprintf(&b, "wait until=%v", o.Wait.Until)
		if o.Wait.Watch {
			fmt.Fprintf(&b, " watch>%s", o.Wait.Version)
		}
		if o.Wait.Work {
			b.WriteString(" work")
		}
	}
	return b.String()
}

func TestCreateWhenMissing(t *testing.T) {
	m := newM(t, false)
	out := m.Start(at(0))
	wantCall(t, out, OpGet)
	out = m.Result(at(time.Millisecond), Record{}, "", fmt.Errorf("x: %w", ErrNotFound))
	wantCall(t, out, OpCreate)
	if r := out.Call.Record; r.Holder != "me" || r.Term != 1 || r.LeaseDuration != ld {
		t.Fatalf("create record %+v", r)
	}
	out = m.Result(at(2*time.Millisecond), Record{}, "v1", nil)
	if !out.Started || out.Term != 1 || !out.LeaderChanged || out.Leader != "me" {
		t.Fatalf("got %s", show(out))
	}
	// The next renewal is RetryPeriod after the write was sent.
	wantWait(t, out, time.Millisecond+rp)
	if term, ok := m.Leading(); !ok || term != 1 {
		t.Fatalf("Leading() = %d, %v", term, ok)
	}
}

func TestRenewKeepsAcquireTimeAndTerm(t *testing.T) {
	m := newM(t, false)
	lead(t, m)
	out := m.Tick(at(rp))
	wantCall(t, out, OpUpdate)
	c := out.Call
	if c.Version != "v1" || c.Record.Term != 1 || !c.Record.AcquireTime.Equal(epoch) ||
		!c.Record.RenewTime.Equal(epoch.Add(rp)) || c.Record.Holder != "me" {
		t.Fatalf("renewal %s", show(out))
	}
	if c.Deadline > rd {
		t.Fatalf("renewal deadline %v is past the lease validity %v", c.Deadline, rd)
	}
	out = m.Result(at(rp+time.Millisecond), Record{}, "v2", nil)
	if out.Started || out.Stopped {
		t.Fatalf("a renewal reported a transition: %s", show(out))
	}
	wantWait(t, out, 2*rp)
	// The next renewal expects the version the last one returned.
	out = m.Tick(at(2 * rp))
	if out.Call.Version != "v2" {
		t.Fatalf("second renewal expects %q, want v2", out.Call.Version)
	}
}

func TestTakeoverBumpsTerm(t *testing.T) {
	m := newM(t, false)
	m.Start(at(0))
	out := m.Result(at(0), foreign("other", 5), "v7", nil)
	if !out.LeaderChanged || out.Leader != "other" {
		t.Fatalf("got %s, want leader other", show(out))
	}
	if out.Call.Op != OpNone {
		t.Fatalf("wrote over a live lease: %s", show(out))
	}
	out = m.Tick(at(ld))
	wantCall(t, out, OpGet)
	out = m.Result(at(ld), foreign("other", 5), "v7", nil)
	wantCall(t, out, OpUpdate)
	c := out.Call
	if c.Record.Term != 6 || c.Version != "v7" || c.Record.Holder != "me" || !c.Record.AcquireTime.Equal(epoch.Add(ld)) {
		t.Fatalf("takeover %s, want term 6 expecting v7 acquired now", show(out))
	}
	out = m.Result(at(ld), Record{}, "v8", nil)
	if !out.Started || out.Term != 6 {
		t.Fatalf("got %s, want started term 6", show(out))
	}
}

func TestReleasedRecordIsTakenAtOnce(t *testing.T) {
	m := newM(t, false)
	m.Start(at(0))
	r := foreign("", 9)
	out := m.Result(at(0), r, "v3", nil)
	wantCall(t, out, OpUpdate)
	if out.Call.Record.Term != 10 {
		t.Fatalf("took a released lock with term %d, want 10", out.Call.Record.Term)
	}
}

// An unchanged record read again and again does not move the instant the
// lease is measured from; a changed one does.
func TestObservationTime(t *testing.T) {
	m := newM(t, false)
	m.Start(at(0))
	m.Result(at(0), foreign("other", 1), "v1", nil)
	for _, s := range []time.Duration{4, 8, 12} {
		now := at(s * time.Second)
		wantCall(t, m.Tick(now), OpGet)
		out := m.Result(now, foreign("other", 1), "v1", nil)
		if out.Call.Op != OpNone {
			t.Fatalf("at %v: %s", now.Mono, show(out))
		}
		if out.Wait.Until > ld {
			t.Fatalf("at %v the unchanged record pushed the expiry to %v", now.Mono, out.Wait.Until)
		}
	}
	wantCall(t, m.Tick(at(ld)), OpGet)
	wantCall(t, m.Result(at(ld), foreign("other", 1), "v1", nil), OpUpdate)

	// Now a renewed record (new version, same holder) restarts the clock.
	m = newM(t, false)
	m.Start(at(0))
	m.Result(at(0), foreign("other", 1), "v1", nil)
	m.Tick(at(10 * time.Second))
	out := m.Result(at(10*time.Second), foreign("other", 1), "v2", nil)
	if out.LeaderChanged {
		t.Fatalf("a renewal by the same holder reported a new leader: %s", show(out))
	}
	m.Tick(at(ld))
	out = m.Result(at(ld), foreign("other", 1), "v2", nil)
	if out.Call.Op != OpNone {
		t.Fatalf("took over at %v, 5s after observing a renewal: %s", ld, show(out))
	}
	m.Tick(at(10*time.Second + ld))
	wantCall(t, m.Result(at(10*time.Second+ld), foreign("other", 1), "v2", nil), OpUpdate)
}

// The lease is measured with the duration written in the record.
func TestRecordLeaseDuration(t *testing.T) {
	m := newM(t, false)
	m.Start(at(0))
	r := foreign("other", 1)
	r.LeaseDuration = 40 * time.Second
	m.Result(at(0), r, "v1", nil)
	m.Tick(at(ld))
	if out := m.Result(at(ld), r, "v1", nil); out.Call.Op != OpNone {
		t.Fatalf("took over at 15s a lease of 40s: %s", show(out))
	}
}

func TestConflictFollows(t *testing.T) {
	m := newM(t, false)
	m.Start(at(0))
	out := m.Result(at(0), Record{}, "", ErrNotFound)
	wantCall(t, out, OpCreate)
	out = m.Result(at(0), Record{}, "", fmt.Errorf("create: %w", ErrConflict))
	wantCall(t, out, OpGet)
	if out.Started {
		t.Fatal("started after a conflict")
	}
	out = m.Result(at(time.Millisecond), foreign("other", 1), "v1", nil)
	if out.Call.Op != OpNone || out.Leader != "other" {
		t.Fatalf("after the conflict: %s, want follow other", show(out))
	}

	// Conflict on a takeover.
	m = newM(t, false)
	m.Start(at(0))
	m.Result(at(0), foreign("", 1), "v1", nil)
	out = m.Result(at(0), Record{}, "", ErrConflict)
	wantCall(t, out, OpGet)
	if _, ok := m.Leading(); ok {
		t.Fatal("leading after a conflict")
	}
}

func TestRenewConflictStops(t *testing.T) {
	m := newM(t, false)
	lead(t, m)
	m.Tick(at(rp))
	// No earlier renewal is unanswered: someone else wrote.
	out := m.Result(at(rp), Record{}, "", ErrConflict)
	if !out.Stopped || out.Reason != ReasonConflict {
		t.Fatalf("got %s, want stopped on conflict", show(out))
	}
	if !out.Wait.Work {
		t.Fatalf("got %s, want a wait for the leader's work", show(out))
	}
	out = m.WorkDone(at(rp))
	wantCall(t, out, OpGet)
	out = m.Result(at(rp+time.Millisecond), foreign("other", 2), "v9", nil)
	if out.Call.Op != OpNone || out.Leader != "other" {
		t.Fatalf("got %s, want following other", show(out))
	}
}

// unanswered brings a leader (lease valid until 10s) to a renewal sent at
// 4s that conflicts after an earlier one, sent at 2s, timed out: the
// verification read is pending.
func unanswered(t *testing.T) *Machine {
	t.Helper()
	m := newM(t, false)
	lead(t, m)
	wantCall(t, m.Tick(at(2*time.Second)), OpUpdate)
	wantCall(t, m.Result(at(4*time.Second), Record{}, "", context.DeadlineExceeded), OpUpdate)
	out := m.Result(at(4*time.Second+time.Millisecond), Record{}, "", ErrConflict)
	if out.Stopped {
		t.Fatalf("stopped although an earlier renewal may have landed: %s", show(out))
	}
	wantCall(t, out, OpGet)
	if out.Call.Deadline > rd {
		t.Fatalf("verification read may run until %v, past the lease %v", out.Call.Deadline, rd)
	}
	return m
}

func TestRenewConflictWithOwnWriteKeepsLeading(t *testing.T) {
	m := unanswered(t)
	out := m.Result(at(4*time.Second+2*time.Millisecond), foreign("me", 1), "v2", nil)
	if out.Stopped {
		t.Fatalf("stopped although the record is its own: %s", show(out))
	}
	if out.Call.Op != OpUpdate || out.Call.Version != "v2" || out.Call.Record.Term != 1 {
		t.Fatalf("after reading its own write: %s, want a renewal expecting v2, term 1", show(out))
	}
	if term, ok := m.Leading(); !ok || term != 1 {
		t.Fatalf("Leading() = %d, %v", term, ok)
	}
	// Acknowledged: the lease now runs from this renewal.
	out = m.Result(at(4*time.Second+3*time.Millisecond), Record{}, "v3", nil)
	if out.Stopped || out.Wait.Until != 4*time.Second+2*time.Millisecond+rp {
		t.Fatalf("after the acknowledged renewal: %s", show(out))
	}
}

// A verification read showing the version the store just refused is stale:
// no lease is gained from it, it reads again later, and it never spins.
func TestVerificationIgnoresStaleRead(t *testing.T) {
	m := unanswered(t)
	now := 4*time.Second + 2*time.Millisecond
	for i := 0; i < 10; i++ {
		out := m.Result(at(now), foreign("me", 1), "v1", nil) // stale: v1 was refused
		if out.Stopped {
			if now < rd {
				t.Fatalf("stopped at %v, before its lease ended", now)
			}
			return
		}
		if out.Call.Op != OpNone || out.Wait.Until <= now || out.Wait.Until > rd {
			t.Fatalf("after a stale verification read at %v: %s, want a wait within the lease", now, show(out))
		}
		now = out.Wait.Until
		out = m.Tick(at(now))
		if out.Stopped {
			if now != rd {
				t.Fatalf("stopped at %v, want at the lease end %v", now, rd)
			}
			return
		}
		wantCall(t, out, OpGet)
	}
	t.Fatal("a stale read kept the leader past its lease")
}

func TestVerificationFindsAnotherWriter(t *testing.T) {
	m := unanswered(t)
	out := m.Result(at(4*time.Second+2*time.Millisecond), foreign("other", 2), "v5", nil)
	if !out.Stopped || out.Reason != ReasonConflict || out.Leader != "other" || out.Call.Op != OpNone {
		t.Fatalf("got %s, want stopped and following other", show(out))
	}
}

// A leader whose renewals fail stops leading RenewDeadline after its last
// successful write was sent, before LeaseDuration, and never waits past it.
func TestLeaderStepsDownAtRenewDeadline(t *testing.T) {
	m := newM(t, false)
	lead(t, m) // last successful write sent at 0
	now := time.Duration(0)
	out := m.Tick(at(now))
	for i := 0; i < 20; i++ {
		if out.Stopped {
			if now != rd {
				t.Fatalf("stopped at %v, want exactly at RenewDeadline %v", now, rd)
			}
			if out.Reason != ReasonDeadline {
				t.Fatalf("reason %q", out.Reason)
			}
			if !out.Wait.Work || out.Call.Op != OpNone {
				t.Fatalf("got %s, want a wait for the leader's work", show(out))
			}
			return
		}
		if out.Call.Op == OpUpdate {
			if out.Call.Deadline > rd {
				t.Fatalf("renewal at %v may run until %v, past the lease validity %v", now, out.Call.Deadline, rd)
			}
			// The store times out: the reply arrives at the deadline.
			now = min(now+3*time.Second, out.Call.Deadline)
			out = m.Result(at(now), Record{}, "", errors.New("timeout"))
			continue
		}
		if out.Wait.Until > rd {
			t.Fatalf("leader waits until %v, past its lease validity %v", out.Wait.Until, rd)
		}
		now = out.Wait.Until
		out = m.Tick(at(now))
	}
	t.Fatal("never stepped down")
}

// A successful write whose answer comes back after the lease it bought ran
// out does not start leadership.
func TestLateAcquireDoesNotStart(t *testing.T) {
	m := newM(t, false)
	m.Start(at(0))
	m.Result(at(0), Record{}, "", ErrNotFound)
	out := m.Result(at(rd), Record{}, "v1", nil)
	if out.Started {
		t.Fatalf("started on an answer %v late: %s", rd, show(out))
	}
	wantCall(t, out, OpGet)
}

func TestStopReleases(t *testing.T) {
	m := newM(t, false)
	lead(t, m)
	out := m.Stop(at(time.Second))
	if !out.Stopped || out.Reason != ReasonStopped || !out.Wait.Work || out.Wait.Until != time.Second+rd {
		t.Fatalf("got %s, want stopped and a wait for the leader's work until %v", show(out), time.Second+rd)
	}
	// The release goes out once the work has returned, with a full
	// RenewDeadline from then.
	out = m.WorkDone(at(1500 * time.Millisecond))
	c := out.Call
	if c.Op != OpUpdate || c.Kind != KindRelease || c.Record.Holder != "" || c.Record.Term != 1 || c.Version != "v1" ||
		c.Deadline != 1500*time.Millisecond+rd {
		t.Fatalf("release %s, want update holder \"\" term 1 expecting v1", show(out))
	}
	if out := m.Result(at(time.Second), Record{}, "v2", nil); !out.Done {
		t.Fatalf("after release: %s", show(out))
	}

	// Without ReleaseOnCancel: done once the work has returned.
	cfg := DefaultConfig("me")
	cfg.ReleaseOnCancel = false
	m, _ = NewMachine(cfg, fixedRand(0), false)
	m.StoreNeverForgets()
	lead(t, m)
	if out := m.Stop(at(time.Second)); !out.Stopped || !out.Wait.Work {
		t.Fatalf("stop without release: %s", show(out))
	}
	if out := m.WorkDone(at(time.Second)); !out.Done {
		t.Fatalf("stop without release, work done: %s", show(out))
	}
	m = newM(t, false)
	m.Start(at(0))
	m.Result(at(0), foreign("x", 1), "v1", nil)
	if out := m.Stop(at(time.Second)); out.Stopped || !out.Done {
		t.Fatalf("follower stop: %s", show(out))
	}
}

// Stop may come while a call is in flight: the leader stops leading at
// once, and the Machine goes on when the result arrives.
func TestStopDuringCall(t *testing.T) {
	// During a renewal that then succeeds: release with the new version.
	m := newM(t, false)
	lead(t, m)
	out := m.Tick(at(rp))
	wantCall(t, out, OpUpdate)
	if out.Call.Kind != KindRenew {
		t.Fatalf("renewal of kind %s", out.Call.Kind)
	}
	out = m.Stop(at(rp + time.Millisecond))
	if !out.Stopped || !out.Pending {
		t.Fatalf("stop during a renewal: %s, want stopped and pending", show(out))
	}
	out = m.Result(at(rp+2*time.Millisecond), Record{}, "v2", nil)
	if out.Started || out.Renewed || !out.Wait.Work {
		t.Fatalf("renewal answered after the stop: %s, want a wait for the work", show(out))
	}
	out = m.WorkDone(at(rp + 3*time.Millisecond))
	if out.Call.Kind != KindRelease || out.Call.Version != "v2" {
		t.Fatalf("got %s, want the release expecting v2", show(out))
	}

	// During an acquiring write that then succeeds: never Started, and
	// what it took is given back.
	m = newM(t, false)
	m.Start(at(0))
	out = m.Result(at(0), Record{}, "", ErrNotFound)
	if out.Call.Op != OpCreate || out.Call.Kind != KindAcquire {
		t.Fatalf("got %s, want an acquiring create", show(out))
	}
	if out = m.Stop(at(time.Millisecond)); out.Stopped || !out.Pending {
		t.Fatalf("stop during an acquire: %s", show(out))
	}
	out = m.Result(at(2*time.Millisecond), Record{}, "v1", nil)
	if out.Started || out.Call.Kind != KindRelease || out.Call.Version != "v1" {
		t.Fatalf("acquire answered after the stop: %s, want no start and the release", show(out))
	}
	if out = m.Result(at(3*time.Millisecond), Record{}, "v2", nil); !out.Done {
		t.Fatalf("got %s", show(out))
	}

	// During a renewal someone else's write refused: nothing to release.
	m = newM(t, false)
	lead(t, m)
	m.Tick(at(rp))
	m.Stop(at(rp))
	if out = m.Result(at(rp+time.Millisecond), Record{}, "", ErrConflict); out.Call.Op != OpNone || !out.Wait.Work {
		t.Fatalf("got %s", show(out))
	}
	if out = m.WorkDone(at(rp + 2*time.Millisecond)); !out.Done {
		t.Fatalf("got %s, want done without a release", show(out))
	}
}

// Leader work that does not return: after a Stop, the lock is not released
// (the next leader waits out the lease); after a lost leadership, the
// Machine does not campaign again while it runs, and says so every
// RenewDeadline.
func TestLingeringWork(t *testing.T) {
	m := newM(t, false)
	lead(t, m)
	out := m.Stop(at(time.Second))
	out = m.Tick(at(out.Wait.Until))
	if !out.Done || out.Call.Op != OpNone || out.Problem != ProblemWorkLingers {
		t.Fatalf("work still running at the stop's deadline: %s, want done, no release, a problem", show(out))
	}

	m = newM(t, false)
	lead(t, m)
	out = m.Tick(at(rp))
	out = m.Result(at(rp), Record{}, "", ErrConflict) // someone else wrote
	if !out.Stopped || !out.Wait.Work || out.Call.Op != OpNone {
		t.Fatalf("lost the lock with the work running: %s, want a wait for it and no call", show(out))
	}
	until := out.Wait.Until
	out = m.Tick(at(until))
	if out.Problem != ProblemWorkLingers || !out.Wait.Work || out.Call.Op != OpNone {
		t.Fatalf("still running after RenewDeadline: %s, want the problem and another wait", show(out))
	}
	out = m.WorkDone(at(until + time.Second))
	wantCall(t, out, OpGet)
}

func TestWatchFollower(t *testing.T) {
	m := newM(t, true)
	m.Start(at(0))
	out := m.Result(at(0), foreign("other", 1), "v1", nil)
	if !out.Wait.Watch || out.Wait.Version != "v1" || out.Wait.Until != ld {
		t.Fatalf("got %s, want watch past v1 until %v", show(out), ld)
	}
	// A renewal seen on the watch moves the expiry without a Get.
	out = m.Watched(at(2*time.Second), foreign("other", 1), "v2", nil)
	if out.Call.Op != OpNone || out.Wait.Until != 2*time.Second+ld || out.Wait.Version != "v2" {
		t.Fatalf("got %s", show(out))
	}
	// A release seen on the watch is taken at once, with a version a
	// Get confirmed (a watch may be a cache that missed a rollback).
	out = m.Watched(at(3*time.Second), foreign("", 1), "v3", nil)
	wantCall(t, out, OpGet)
	out = m.Result(at(3*time.Second), foreign("", 1), "v3", nil)
	wantCall(t, out, OpUpdate)
	if out.Call.Version != "v3" || out.Call.Record.Term != 2 {
		t.Fatalf("got %s", show(out))
	}
	// A broken watch falls back to polling until a Get succeeds.
	m = newM(t, true)
	m.Start(at(0))
	m.Result(at(0), foreign("other", 1), "v1", nil)
	out = m.Watched(at(time.Second), Record{}, "", errors.New("stream broken"))
	if out.Wait.Watch || out.Call.Op != OpNone {
		t.Fatalf("after a broken watch: %s, want a poll", show(out))
	}
	m.Tick(at(out.Wait.Until))
	out = m.Result(at(out.Wait.Until), foreign("other", 1), "v1", nil)
	if !out.Wait.Watch {
		t.Fatalf("a successful Get did not restore the watch: %s", show(out))
	}
}

func TestPollJitter(t *testing.T) {
	for _, f := range []float64{0, 0.5, 0.999} {
		m, _ := NewMachine(DefaultConfig("me"), fixedRand(f), false)
		m.Start(at(0))
		out := m.Result(at(0), Record{}, "", errors.New("unreachable"))
		want := rp + time.Duration(f*DefaultJitterFactor*float64(rp))
		wantWait(t, out, want)
		if want < rp || want >= rp+time.Duration(2.2*float64(rp)) {
			t.Fatalf("jittered poll %v outside [RP, 2.2 RP)", want)
		}
	}
}

func TestErrorsNeverWrite(t *testing.T) {
	m := newM(t, false)
	m.Start(at(0))
	out := m.Result(at(0), Record{}, "", fmt.Errorf("lock x: %w: bad json", ErrCorrupt))
	if out.Call.Op != OpNone {
		t.Fatalf("wrote after an undecodable record: %s", show(out))
	}
}

func TestValidate(t *testing.T) {
	base := DefaultConfig("me")
	cases := []struct {
		mod    func(*Config)
		want   string
		fields []string
	}{
		{func(c *Config) { c.Identity = "" }, "Identity", []string{"Identity"}},
		{func(c *Config) { c.LeaseDuration = 2000000 * time.Hour }, "LeaseDuration (2000000h0m0s) must be at most 168h0m0s", []string{"LeaseDuration"}},
		{func(c *Config) { c.RetryPeriod = 0 }, "RetryPeriod must be positive, got 0s", []string{"RetryPeriod"}},
		{func(c *Config) { c.LeaseDuration = 10 * time.Second }, "LeaseDuration (10s) must be greater than RenewDeadline (10s)", []string{"LeaseDuration", "RenewDeadline"}},
		{func(c *Config) { c.RenewDeadline = 2 * time.Second }, "RenewDeadline (2s) must be greater than 1.2 × RetryPeriod (2s) = 2.4s", []string{"RenewDeadline", "RetryPeriod"}},
		{func(c *Config) { c.RenewDeadline, c.JitterFactor = 3*time.Second, 2 }, "RenewDeadline (3s) must be greater than 2 × RetryPeriod (2s) = 4s", []string{"RenewDeadline", "RetryPeriod"}},
		{func(c *Config) { c.JitterFactor = -1 }, "JitterFactor", []string{"JitterFactor"}},
	}
	for _, tc := range cases {
		c := base
		tc.mod(&c)
		err := c.Validate()
		var ce *ConfigError
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ce) ||
			strings.Join(ce.Fields, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("Validate() = %v, want ErrInvalidConfig mentioning %q about %v", err, tc.want, tc.fields)
		}
	}
	c := base
	c.LeaseDuration, c.RenewDeadline = MaxLeaseDuration, MaxLeaseDuration-time.Hour
	if err := c.Validate(); err != nil {
		t.Errorf("the longest lease allowed is refused: %v", err)
	}
	// It round-trips through the stored record.
	r, err := DecodeRecord(EncodeRecord(Record{Holder: "me", LeaseDuration: MaxLeaseDuration, Term: MaxTerm - 1}))
	if err != nil || r.LeaseDuration != MaxLeaseDuration {
		t.Errorf("the longest lease does not round-trip: %v %v", r.LeaseDuration, err)
	}
	if err := base.Validate(); err != nil {
		t.Errorf("DefaultConfig invalid: %v", err)
	}
}

// Adopting a version from a read never extends the lease by itself: only
// an acknowledged renewal does. If every renewal fails, the lease ends
// RenewDeadline after the last acknowledged write.
func TestAdoptionAloneDoesNotExtendLease(t *testing.T) {
	m := unanswered(t) // acknowledged write sent at 0
	out := m.Result(at(4*time.Second+2*time.Millisecond), foreign("me", 1), "v2", nil)
	now := 4*time.Second + 2*time.Millisecond
	for i := 0; i < 50; i++ {
		switch {
		case out.Stopped:
			if now != rd {
				t.Fatalf("stopped at %v, want %v (last acknowledged write + RenewDeadline)", now, rd)
			}
			return
		case out.Call.Op != OpNone:
			now = out.Call.Deadline
			out = m.Result(at(now), Record{}, "", context.DeadlineExceeded)
		default:
			now = out.Wait.Until
			out = m.Tick(at(now))
		}
	}
	t.Fatal("never stopped")
}

// A stale read after a conflict (the store refused a write against the
// version the read shows again) must not make it write again at once.
func TestStaleReadAfterConflictDoesNotSpin(t *testing.T) {
	m := newM(t, false)
	m.Start(at(0))
	wantCall(t, m.Result(at(0), foreign("", 1), "v1", nil), OpUpdate)
	wantCall(t, m.Result(at(time.Millisecond), Record{}, "", ErrConflict), OpGet)
	out := m.Result(at(2*time.Millisecond), foreign("", 1), "v1", nil) // stale
	if out.Call.Op != OpNone || out.Wait.Until < time.Millisecond+rp {
		t.Fatalf("after a stale read: %s, want a wait of at least RetryPeriod", show(out))
	}
	// Fresh data again: it may write.
	m.Tick(at(out.Wait.Until))
	wantCall(t, m.Result(at(out.Wait.Until), foreign("", 1), "v2", nil), OpUpdate)

	// The same for a create refused while reads still say "not found".
	m = newM(t, false)
	m.Start(at(0))
	wantCall(t, m.Result(at(0), Record{}, "", ErrNotFound), OpCreate)
	m.Result(at(time.Millisecond), Record{}, "", ErrConflict)
	if out := m.Result(at(2*time.Millisecond), Record{}, "", ErrNotFound); out.Call.Op != OpNone {
		t.Fatalf("after a stale not-found: %s, want a wait", show(out))
	}
}

func TestWatchReturningSameVersionFallsBackToPolling(t *testing.T) {
	m := newM(t, true)
	m.Start(at(0))
	m.Result(at(0), foreign("other", 1), "v1", nil)
	out := m.Watched(at(time.Millisecond), foreign("other", 1), "v1", nil)
	if out.Call.Op != OpNone || out.Wait.Watch || out.Wait.Until < rp {
		t.Fatalf("watch gave back its own version: %s, want a poll", show(out))
	}
}

// A leader whose renewals keep failing never waits past its lease.
func TestLeaderWaitCappedAtLease(t *testing.T) {
	m := newM(t, false)
	lead(t, m) // valid until 10s
	wantCall(t, m.Tick(at(2*time.Second)), OpUpdate)
	m.Result(at(4500*time.Millisecond), Record{}, "", errors.New("x")) // retried at once
	m.Result(at(8500*time.Millisecond), Record{}, "", errors.New("x")) // retried at once
	out := m.Result(at(9*time.Second), Record{}, "", errors.New("x"))  // fast failure
	if out.Call.Op != OpNone || out.Wait.Until != rd {
		t.Fatalf("got %s, want a wait until exactly %v (the lease end), not the next retry", show(out), rd)
	}
	if out := m.Tick(at(rd)); !out.Stopped {
		t.Fatalf("at the lease end: %s", show(out))
	}
}

// Terms keep rising when the record disappears and comes back lower; a
// deleted record is created again only once its holder's lease, counted
// from when the deletion was seen, has run out.
func TestTermsSurviveDeletion(t *testing.T) {
	m := newM(t, false)
	m.Start(at(0))
	m.Result(at(0), foreign("other", 5), "v1", nil)
	m.Tick(at(time.Second))
	out := m.Result(at(time.Second), Record{}, "", ErrNotFound)
	if out.Anomaly != AnomalyDeleted || out.Call.Op != OpNone || out.Wait.Until > time.Second+ld {
		t.Fatalf("deletion seen: %s, want it reported and a wait within the lease", show(out))
	}
	for out.Call.Op == OpNone {
		out = m.Tick(at(out.Wait.Until))
		if out.Call.Op == OpGet {
			out = m.Result(at(m.sentAt), Record{}, "", ErrNotFound)
		}
	}
	if out.Call.Op != OpCreate || out.Call.Record.Term != 6 || m.sentAt < time.Second+ld {
		t.Fatalf("create after deletion at %v: %s, want term 6 once the lease seen at 1s has run out", m.sentAt, show(out))
	}
	now := m.sentAt
	m.Result(at(now), Record{}, "", ErrConflict)
	out = m.Result(at(now), foreign("", 2), "v9", nil) // recreated with a lower term
	if out.Anomaly != AnomalyWentBack || out.AnomalyTerm != 2 || out.AnomalySeen != 5 {
		t.Fatalf("a record with a lower term: %s, want the store reported as gone back in time", show(out))
	}
	for out.Call.Op == OpNone {
		out = m.Tick(at(out.Wait.Until))
		if out.Call.Op == OpGet {
			out = m.Result(at(m.sentAt), foreign("", 2), "v9", nil)
		}
	}
	if out.Call.Op != OpUpdate || out.Call.Record.Term != 6 || m.sentAt < now+ld {
		t.Fatalf("takeover of a recreated record at %v: %s, want term 6 a lease after %v", m.sentAt, show(out), now)
	}
}

// spins counts consecutive calls answered with another call at the same
// instant; a Machine must wait somewhere.
func noSpin(t *testing.T, steps func(i int) Output) {
	t.Helper()
	calls := 0
	for i := 0; i < 200; i++ {
		out := steps(i)
		if out.Call.Op == OpNone {
			return
		}
		if calls++; calls > 6 {
			t.Fatalf("call after call without a wait: %s", show(out))
		}
	}
}

// A conflict answered after the lease ended stops the leader then and there.
func TestConflictPastLeaseStops(t *testing.T) {
	m := newM(t, false)
	lead(t, m)
	m.Tick(at(2 * time.Second))
	m.Result(at(4*time.Second), Record{}, "", context.DeadlineExceeded)
	m.Result(at(6*time.Second), Record{}, "", context.DeadlineExceeded)
	m.Result(at(8*time.Second), Record{}, "", context.DeadlineExceeded)
	out := m.Result(at(15*time.Second), Record{}, "", ErrConflict)
	if !out.Stopped {
		t.Fatalf("still leading at 15s with a lease until 10s: %s", show(out))
	}
}

// Verification reads alternating between old versions of its own record
// do not make the leader renew again and again.
func TestVerificationWithAlternatingStaleReadsDoesNotSpin(t *testing.T) {
	m := unanswered(t)
	now := at(4*time.Second + 2*time.Millisecond)
	vers := []Version{"v7", "v8"}
	var out Output
	noSpin(t, func(i int) Output {
		if i == 0 || out.Call.Op == OpGet {
			out = m.Result(now, foreign("me", 1), vers[i%2], nil)
		} else {
			out = m.Result(now, Record{}, "", ErrConflict)
		}
		return out
	})
}

// A follower whose reads alternate between released states that the store
// keeps refusing writes against waits between attempts.
func TestFollowerWithAlternatingStaleReadsDoesNotSpin(t *testing.T) {
	m := newM(t, false)
	out := m.Start(at(0))
	vers := []Version{"v1", "v2"}
	noSpin(t, func(i int) Output {
		switch out.Call.Op {
		case OpGet, OpNone:
			out = m.Result(at(0), foreign("", 1), vers[i%2], nil)
		default:
			out = m.Result(at(0), Record{}, "", ErrConflict)
		}
		return out
	})
}

// No term that cannot grow (or would not decode) is ever written.
func TestNoTermOverflow(t *testing.T) {
	m := newM(t, false)
	m.Start(at(0))
	out := m.Result(at(0), foreign("", math.MaxInt64-1), "v1", nil)
	if out.Call.Op != OpNone {
		t.Fatalf("wrote past the largest term: %s", show(out))
	}
}
