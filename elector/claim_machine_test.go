package elector

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

var slotAt = epoch.Add(time.Hour)

// The queue is bounded: past MaxQueuedClaims, requests fail at once; the
// queued ones are all answered, in order.
func TestClaimQueueBounded(t *testing.T) {
	m := newM(t, false)
	lead(t, m)
	out := m.Claim(at(time.Millisecond), ClaimRequest{ID: 1, Job: "j", Slot: slotAt})
	wantCall(t, out, OpUpdate)
	for i := range MaxQueuedClaims + 1 {
		out = m.Claim(at(2*time.Millisecond), ClaimRequest{ID: uint64(2 + i), Job: "j", Slot: slotAt.Add(time.Duration(i+1) * time.Second)})
		if !out.Pending {
			t.Fatalf("request %d while a call is in flight: %s, want pending", 2+i, show(out))
		}
		if i < MaxQueuedClaims && len(out.Claims) != 0 {
			t.Fatalf("request %d answered at once: %s", 2+i, show(out))
		}
	}
	if len(out.Claims) != 1 || out.Claims[0].Outcome != ClaimFailed || !errors.Is(out.Claims[0].Err, ErrClaimFailed) {
		t.Fatalf("the request past the bound: %s, want it failed", show(out))
	}
	var answered []uint64
	for n := 0; n < 2*MaxQueuedClaims && len(answered) < MaxQueuedClaims+1; n++ {
		out = m.Result(at(3*time.Millisecond), Record{}, Version(string(rune('a'+n%26))+"x"), nil)
		for _, c := range out.Claims {
			if c.Outcome != ClaimAcknowledged {
				t.Fatalf("claim %d: %s", c.Request.ID, c.Outcome)
			}
			answered = append(answered, c.Request.ID)
		}
	}
	for i, id := range answered {
		if id != uint64(i+1) {
			t.Fatalf("answered in the order %v", answered)
		}
	}
	if len(answered) != MaxQueuedClaims+1 {
		t.Fatalf("%d answered, want %d", len(answered), MaxQueuedClaims+1)
	}
	if got := m.Jobs()["j"].Started; !got.Equal(slotAt.Add(MaxQueuedClaims * time.Second)) {
		t.Fatalf("last started slot %v", got)
	}
}

// A claim of a new job when the record holds MaxJobs is refused; one of a
// job it holds is not.
func TestClaimMaxJobs(t *testing.T) {
	m := newM(t, false)
	lead(t, m)
	for i := range MaxJobs {
		out := m.Claim(at(time.Millisecond), ClaimRequest{ID: uint64(i), Job: fmt.Sprintf("j%02d", i), Slot: slotAt})
		wantCall(t, out, OpUpdate)
		out = m.Result(at(time.Millisecond), Record{}, Version(fmt.Sprint("v", i)), nil)
		if len(out.Claims) != 1 || out.Claims[0].Outcome != ClaimAcknowledged {
			t.Fatalf("claim %d: %s", i, show(out))
		}
	}
	out := m.Claim(at(2*time.Millisecond), ClaimRequest{ID: 99, Job: "one-more", Slot: slotAt})
	if len(out.Claims) != 1 || !errors.Is(out.Claims[0].Err, ErrInvalidClaim) || out.Call.Op != OpNone {
		t.Fatalf("a 33rd job: %s, want it refused without a write", show(out))
	}
	out = m.Claim(at(2*time.Millisecond), ClaimRequest{ID: 100, Job: "j00", Slot: slotAt.Add(time.Second)})
	wantCall(t, out, OpUpdate)
	if err := CheckRecord(out.Call.Record); err != nil {
		t.Fatal(err)
	}
}

// The Machine never changes a Jobs map it has handed out: records keep
// what they held.
func TestClaimDoesNotModifySharedJobs(t *testing.T) {
	m := newM(t, false)
	out := m.Start(at(0))
	held := map[string]JobState{"j": {Started: slotAt, StartedTerm: 1}}
	out = m.Result(at(time.Millisecond), Record{Holder: "", Term: 1, LeaseDuration: ld, Jobs: held}, "v1", nil)
	wantCall(t, out, OpUpdate)
	if out.Call.Record.Jobs["j"] != held["j"] || out.Call.Record.Term != 2 {
		t.Fatalf("the takeover does not carry the entries: %s", show(out))
	}
	out = m.Result(at(2*time.Millisecond), Record{}, "v2", nil)
	if !out.Started {
		t.Fatal(show(out))
	}
	out = m.Claim(at(3*time.Millisecond), ClaimRequest{ID: 1, Job: "j", Slot: slotAt.Add(time.Minute)})
	wantCall(t, out, OpUpdate)
	if held["j"].Started != slotAt || len(held) != 1 {
		t.Fatalf("the map read from the store was modified: %+v", held)
	}
	if got := out.Call.Record.Jobs["j"]; got.StartedTerm != 2 || !got.Started.Equal(slotAt.Add(time.Minute)) {
		t.Fatalf("claim writes %+v", got)
	}
}

// A deleted record: the record created next carries the entries last
// seen, so its slots stay claimed.
func TestClaimsSurviveDeletion(t *testing.T) {
	m := newM(t, false)
	lead(t, m)
	out := m.Claim(at(time.Millisecond), ClaimRequest{ID: 1, Job: "j", Slot: slotAt})
	out = m.Result(at(time.Millisecond), Record{}, "v2", nil)
	// The record is deleted: the renewal finds none, the leader stops
	// and reads.
	out = m.Tick(at(rp + time.Millisecond))
	wantCall(t, out, OpUpdate)
	out = m.Result(at(rp+2*time.Millisecond), Record{}, "", ErrNotFound)
	if !out.Stopped {
		t.Fatalf("%s, want stopped", show(out))
	}
	out = m.WorkDone(at(rp + 3*time.Millisecond))
	wantCall(t, out, OpGet)
	out = m.Result(at(rp+4*time.Millisecond), Record{}, "", ErrNotFound)
	// Its own record was deleted: it waits out its own lease before
	// creating it again.
	for out.Call.Op != OpCreate {
		out = m.Tick(at(out.Wait.Until))
		if out.Call.Op == OpGet {
			out = m.Result(at(m.sentAt), Record{}, "", ErrNotFound)
		}
	}
	if got := out.Call.Record.Jobs["j"]; !got.Started.Equal(slotAt) || got.StartedTerm != 1 || out.Call.Record.Term != 2 {
		t.Fatalf("the new record: %s", show(out))
	}
}
