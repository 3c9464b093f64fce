package elector

import (
	"fmt"
	"testing"
	"time"
)

// newForgetful is a Machine on a store that may forget (the default):
// every real store.
func newForgetful(t *testing.T, watch bool) *Machine {
	t.Helper()
	m, err := NewMachine(DefaultConfig("me"), fixedRand(0), watch)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// drive answers every Get with rec (or err) until the Machine asks for
// something else, ticking through its waits; it returns that call and
// the instant it was asked for.
func drive(t *testing.T, m *Machine, out Output, rec Record, ver Version, err error) (Output, time.Duration) {
	t.Helper()
	now := time.Duration(0)
	for i := 0; i < 1000; i++ {
		switch {
		case out.Call.Op == OpGet:
			out = m.Result(at(now), rec, ver, err)
		case out.Call.Op != OpNone:
			return out, now
		default:
			now = out.Wait.Until
			out = m.Tick(at(now))
		}
	}
	t.Fatalf("no write after 1000 steps: %s", show(out))
	return out, 0
}

// A fresh candidate cannot know whether a holder the store forgot still
// believes it leads: whatever its first read shows (no record, a released
// one), it acquires only a lease after it. On a store that never forgets
// it acquires at once.
func TestFirstReadHold(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  Record
		ver  Version
		err  error
		op   Op
	}{
		{"missing", Record{}, "", ErrNotFound, OpCreate},
		{"released", foreign("", 3), "v7", nil, OpUpdate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newForgetful(t, false)
			out, when := drive(t, m, m.Start(at(0)), tc.rec, tc.ver, tc.err)
			if out.Call.Op != tc.op || when < ld {
				t.Fatalf("first acquisition at %v: %s, want %s a lease (%v) after the first read", when, show(out), tc.op, ld)
			}
			if out.Anomaly != AnomalyNone {
				t.Fatalf("a first read is no anomaly: %s", show(out))
			}
			m = newM(t, false) // never forgets
			out, when = drive(t, m, m.Start(at(0)), tc.rec, tc.ver, tc.err)
			if out.Call.Op != tc.op || when != 0 {
				t.Fatalf("on a store that never forgets: at %v %s, want %s at once", when, show(out), tc.op)
			}
		})
	}
}

// Terms are a hybrid logical clock: at least the highest seen plus one,
// and at least the wall clock's seconds since TermEpoch, so a candidate
// that never saw the terms a forgetful store handed out still takes a
// larger one.
func TestWallTerm(t *testing.T) {
	if WallTerm(TermEpoch.Add(-time.Hour)) != 0 || WallTerm(TermEpoch.Add(90*time.Second+time.Millisecond)) != 90 {
		t.Fatal("WallTerm: want 0 before the epoch and whole seconds after it")
	}
	wall := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	want := WallTerm(wall)
	m := newForgetful(t, false)
	m.Start(Now{Wall: wall})
	m.Result(Now{Wall: wall}, foreign("", 3), "v7", nil)
	out := m.Tick(Now{Mono: ld, Wall: wall.Add(ld)})
	out = m.Result(Now{Mono: ld, Wall: wall.Add(ld)}, foreign("", 3), "v7", nil)
	if out.Call.Op != OpUpdate || out.Call.Record.Term != want+int64(ld/time.Second) {
		t.Fatalf("takeover: %s, want term %d (the wall clock's)", show(out), want+int64(ld/time.Second))
	}
	// A record whose term is ahead of the wall clock: one more than it.
	m = newM(t, false)
	ahead := want + 1000
	m.Start(Now{Wall: wall})
	out = m.Result(Now{Wall: wall}, foreign("", ahead), "v8", nil)
	if out.Call.Record.Term != ahead+1 {
		t.Fatalf("takeover of a term ahead of the clock: %s, want %d", show(out), ahead+1)
	}
}

// A leader whose store went back in time: its renewal is refused, the read
// shows an older term; it stops, says why, and acquires again only a lease
// later, with a term above every one it saw.
func TestLeaderSeesRollback(t *testing.T) {
	m := newM(t, false)
	lead(t, m) // term 1 at v1
	m.Tick(at(rp))
	out := m.Result(at(rp), Record{}, "v2", nil) // renewed: term 1 at v2
	m.Tick(at(2 * rp))
	out = m.Result(at(2*rp), Record{}, "", ErrConflict)
	if !out.Stopped {
		t.Fatalf("refused renewal: %s, want stopped", show(out))
	}
	out = m.WorkDone(at(2 * rp))
	wantCall(t, out, OpGet)
	old := foreign("", 0) // the state before the first leadership: term 0, released
	out = m.Result(at(2*rp), old, "v1", nil)
	if out.Anomaly != AnomalyWentBack || out.AnomalyTerm != 0 || out.AnomalySeen != 1 || out.Call.Op != OpNone {
		t.Fatalf("read after the rollback: %s, want the anomaly and a wait", show(out))
	}
	out, when := drive(t, m, out, old, "v1", nil)
	if out.Call.Op != OpUpdate || when < 2*rp+ld || out.Call.Record.Term != 2 {
		t.Fatalf("after the rollback at %v: %s, want a takeover with term 2 a lease after %v", when, show(out), 2*rp)
	}
}

// A watch (maybe a cache) that shows an older term is not believed, and a
// watch never leads straight to a write: a Get decides.
func TestWatchNeverWritesAlone(t *testing.T) {
	m := newM(t, true)
	m.Start(at(0))
	out := m.Result(at(0), foreign("other", 5), "v5", nil)
	out = m.Watched(at(time.Second), foreign("", 3), "v3", nil)
	wantCall(t, out, OpGet)
	if out.LeaderChanged {
		t.Fatalf("an older term from a watch changed the leader: %s", show(out))
	}
	out = m.Result(at(time.Second), foreign("other", 5), "v6", nil)
	if out.Call.Op != OpNone || !out.Wait.Watch {
		t.Fatalf("%s, want to follow on", show(out))
	}
}

// A stored lease longer than any candidate may write (edited by hand) is
// reported and not trusted: the holder is waited out for this candidate's
// own lease, not for a hundred years.
func TestAbsurdLease(t *testing.T) {
	m := newM(t, true)
	m.Start(at(0))
	r := foreign("other", 2)
	r.LeaseDuration = 100 * 365 * 24 * time.Hour
	out := m.Result(at(0), r, "v2", nil)
	if out.Anomaly != AnomalyCorrupt || out.Wait.Until != ld {
		t.Fatalf("%s, want the anomaly and a wait of the own lease %v", show(out), ld)
	}
	out, when := drive(t, m, m.Tick(at(ld)), r, "v2", nil)
	if out.Call.Op != OpUpdate || when != ld {
		t.Fatalf("at %v: %s, want a takeover at %v", when, show(out), ld)
	}
}

// A record created on a store that may forget is held on probation: the
// creator renews it but starts leading only with a renewal sent a readGap
// after the create, by which time every candidate polling the missing
// record has read it. If the store loses it meanwhile, the creator never
// started (nothing to stop), and a poller that saw it sees it deleted.
func TestCreateProbation(t *testing.T) {
	m := newForgetful(t, false)
	out, c := drive(t, m, m.Start(at(0)), Record{}, "", ErrNotFound)
	wantCall(t, out, OpCreate)
	gap := m.readGap()
	out = m.Result(at(c), Record{}, "v1", nil)
	if out.Started || out.Renewed {
		t.Fatalf("create acknowledged: %s, want no Started before the probation ends", show(out))
	}
	if _, ok := m.Leading(); ok {
		t.Fatal("Leading during the probation")
	}
	if o := m.Claim(at(c), ClaimRequest{ID: 1, Job: "j", Slot: epoch}); len(o.Claims) != 1 || o.Claims[0].Outcome != ClaimNotLeader {
		t.Fatalf("a claim during the probation: %s, want refused as not leading", show(o))
	}
	v := 1
	for now := c; ; {
		out = m.Tick(at(out.Wait.Until))
		now = out.Wait.Until
		if out.Call.Op == OpNone {
			continue
		}
		wantCall(t, out, OpUpdate)
		sent := m.sentAt
		v++
		out = m.Result(at(sent), Record{}, Version(fmt.Sprint("v", v)), nil)
		if sent < c+gap && out.Started {
			t.Fatalf("started with a renewal sent at %v, before %v", sent, c+gap)
		}
		if out.Started {
			if out.Term != 1 || !out.Renewed {
				t.Fatalf("start: %s", show(out))
			}
			break
		}
		if now > c+gap+2*rp {
			t.Fatalf("not started by %v", now)
		}
	}

	// The store loses the record during another probation: no Stopped,
	// and a hold before creating again.
	m = newForgetful(t, false)
	out, c = drive(t, m, m.Start(at(0)), Record{}, "", ErrNotFound)
	m.Result(at(c), Record{}, "v1", nil)
	out = m.Tick(at(c + rp))
	wantCall(t, out, OpUpdate)
	out = m.Result(at(c+rp), Record{}, "", ErrNotFound)
	if out.Stopped || out.Started {
		t.Fatalf("lost during the probation: %s, want neither Started nor Stopped", show(out))
	}
	out = m.Result(at(c+rp), Record{}, "", ErrNotFound)
	if out.Anomaly != AnomalyDeleted || out.Call.Op != OpNone {
		t.Fatalf("the read after: %s, want the deletion said and a hold", show(out))
	}
}

// Reads of a missing record further apart than readGap (a pause, an
// outage) may have missed a record that came and went: the hold starts
// again; closer reads do not.
func TestMissingReadsFarApart(t *testing.T) {
	m := newForgetful(t, false)
	out, c := drive(t, m, m.Start(at(0)), Record{}, "", ErrNotFound)
	wantCall(t, out, OpCreate) // the hold is over at c
	m.Result(at(c), Record{}, "", ErrConflict)
	// Someone created it and it is gone again by the next read, which
	// comes within the gap: it may create (the creator is on probation).
	out = m.Result(at(c+time.Millisecond), Record{}, "", ErrNotFound)
	for out.Call.Op == OpNone {
		out = m.Tick(at(out.Wait.Until))
	}
	wantCall(t, out, OpGet)
	now := m.sentAt + m.readGap() + time.Millisecond // paused
	out = m.Result(at(now), Record{}, "", ErrNotFound)
	if out.Call.Op != OpNone || out.Wait.Until < now {
		t.Fatalf("a read of a missing record %v after the last: %s, want a hold", now-c, show(out))
	}
	out, when := drive(t, m, m.Tick(at(out.Wait.Until)), Record{}, "", ErrNotFound)
	if out.Call.Op != OpCreate || when < now+ld {
		t.Fatalf("create at %v: %s, want one a lease after %v", when, show(out), now)
	}
}
