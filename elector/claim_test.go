package elector_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/elector"
)

var slot0 = time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)

// Claims through Run: only the leader's claim is acknowledged, a slot is
// claimed once, Done closes it, and the next leader finds the entries with
// the slot still claimed.
func TestRunClaims(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 3, true)
		c.until(ld, "a leader", func() bool { return c.leader() != nil })
		l := c.leader()
		ctx := context.Background()

		var wg sync.WaitGroup
		terms := make([]int64, len(c.nodes))
		errs := make([]error, len(c.nodes))
		for i, nd := range c.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				terms[i], errs[i] = nd.e.Claim(ctx, "backup", slot0)
			}()
		}
		wg.Wait()
		for i, nd := range c.nodes {
			switch {
			case nd == l && (errs[i] != nil || terms[i] != l.e.Term()):
				t.Fatalf("leader's claim = %d, %v; want term %d", terms[i], errs[i], l.e.Term())
			case nd != l && !errors.Is(errs[i], elector.ErrNotLeader):
				t.Fatalf("follower %s's claim = %d, %v; want ErrNotLeader", nd.id, terms[i], errs[i])
			}
		}
		if _, err := l.e.Claim(ctx, "backup", slot0); !errors.Is(err, elector.ErrAlreadyClaimed) {
			t.Fatalf("the same slot again: %v, want ErrAlreadyClaimed", err)
		}
		if _, err := l.e.Claim(ctx, "backup", slot0.Add(-time.Minute)); !errors.Is(err, elector.ErrAlreadyClaimed) {
			t.Fatalf("an earlier slot: %v, want ErrAlreadyClaimed", err)
		}
		if err := l.e.Done(ctx, "backup", slot0.Add(time.Minute)); !errors.Is(err, elector.ErrNotClaimed) {
			t.Fatalf("done of a slot not claimed: %v, want ErrNotClaimed", err)
		}
		if _, err := l.e.Claim(ctx, "Backup", slot0); !errors.Is(err, elector.ErrInvalidClaim) {
			t.Fatalf("a bad job name: %v, want ErrInvalidClaim", err)
		}
		if err := l.e.Done(ctx, "backup", slot0); err != nil {
			t.Fatalf("done: %v", err)
		}
		want := elector.JobState{Started: slot0, StartedTerm: l.e.Term(), Done: slot0}
		if got := l.e.Jobs()["backup"]; got != want {
			t.Fatalf("leader's Jobs = %+v, want %+v", got, want)
		}
		c.advance(step) // followers see the write on their watch
		for _, nd := range c.nodes {
			if got := nd.e.Jobs()["backup"]; got != want {
				t.Fatalf("%s's Jobs = %+v, want %+v", nd.id, got, want)
			}
		}

		// A second slot, claimed and never marked done; the leader goes.
		next := slot0.Add(time.Minute)
		if _, err := l.e.Claim(ctx, "backup", next); err != nil {
			t.Fatal(err)
		}
		oldTerm := l.e.Term()
		l.cancel()
		c.until(ld, "a new leader", func() bool { n := c.leader(); return n != nil && n != l })
		n := c.leader()
		got := n.e.Jobs()["backup"]
		if !got.Started.Equal(next) || got.StartedTerm != oldTerm || !got.Done.Equal(slot0) {
			t.Fatalf("the new leader's Jobs = %+v, want started %v term %d done %v", got, next, oldTerm, slot0)
		}
		if _, err := n.e.Claim(ctx, "backup", next); !errors.Is(err, elector.ErrAlreadyClaimed) {
			t.Fatalf("the new leader claims its predecessor's slot: %v, want ErrAlreadyClaimed", err)
		}
		// It was cut short: the new leader may rerun it, once.
		if term, err := n.e.Reclaim(ctx, "backup", next); err != nil || term != n.e.Term() {
			t.Fatalf("the new leader reclaims its predecessor's slot: %d, %v; want its term %d", term, err, n.e.Term())
		}
		if _, err := n.e.Reclaim(ctx, "backup", next); !errors.Is(err, elector.ErrAlreadyClaimed) || !strings.Contains(err.Error(), "rerun already") {
			t.Fatalf("a second rerun: %v, want ErrAlreadyClaimed saying it was rerun already", err)
		}
		if got := n.e.Jobs()["backup"]; !got.Rerun || got.StartedTerm != n.e.Term() {
			t.Fatalf("after the rerun claim: %+v", got)
		}
		if err := n.e.Done(ctx, "backup", next); err != nil {
			t.Fatal(err)
		}
		if term, err := n.e.Claim(ctx, "backup", next.Add(time.Minute)); err != nil || term != n.e.Term() || term <= oldTerm {
			t.Fatalf("the new leader's claim = %d, %v; want its term %d (> %d)", term, err, n.e.Term(), oldTerm)
		}
	})
}

// Concurrent claims of one slot on the leader: one acknowledgement, the
// others refused as claimed; Run not running: not leading.
func TestRunConcurrentClaims(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 1, true)
		c.until(ld, "a leader", func() bool { return c.leader() != nil })
		l := c.leader()
		const n = 20
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = l.e.Claim(context.Background(), "report", slot0)
			}()
		}
		wg.Wait()
		acks := 0
		for _, err := range errs {
			switch {
			case err == nil:
				acks++
			case !errors.Is(err, elector.ErrAlreadyClaimed):
				t.Fatalf("claim: %v, want nil or ErrAlreadyClaimed", err)
			}
		}
		if acks != 1 {
			t.Fatalf("%d acknowledgements, want 1", acks)
		}
		l.cancel()
		<-l.done
		if _, err := l.e.Claim(context.Background(), "report", slot0.Add(time.Hour)); !errors.Is(err, elector.ErrNotLeader) {
			t.Fatalf("claim after Run returned: %v, want ErrNotLeader", err)
		}
	})
}

// A claim whose context has ended is not made: it fails, and nothing is
// written (the slot may be claimed afterwards).
func TestRunClaimContext(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 1, true)
		c.until(ld, "a leader", func() bool { return c.leader() != nil })
		l := c.leader()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for range 20 {
			if _, err := l.e.Claim(ctx, "x", slot0); !errors.Is(err, elector.ErrClaimFailed) || !errors.Is(err, context.Canceled) {
				t.Fatalf("claim with a cancelled context: %v, want ErrClaimFailed and context.Canceled", err)
			}
		}
		if _, ok := l.e.Jobs()["x"]; ok {
			t.Fatalf("a claim with a cancelled context was written: %+v", l.e.Jobs())
		}
		if _, err := l.e.Claim(context.Background(), "x", slot0); err != nil {
			t.Fatalf("the slot afterwards: %v", err)
		}
	})
}

// A claim whose run never started is abandoned: the entry is put back as
// it was (Jobs at once, the store with the next write), so the next leader
// does not take the slot for a run cut short, and it can be claimed again.
// The release after a stop carries the entry put back.
func TestRunAbandon(t *testing.T) {
	bubble(t, func(t *testing.T) {
		c := newCluster(t, 2, true)
		c.until(ld, "a leader", func() bool { return c.leader() != nil })
		l := c.leader()
		ctx := context.Background()
		if _, err := l.e.Claim(ctx, "backup", slot0); err != nil {
			t.Fatal(err)
		}
		if err := l.e.Done(ctx, "backup", slot0); err != nil {
			t.Fatal(err)
		}
		before := l.e.Jobs()["backup"]
		next := slot0.Add(time.Minute)
		if _, err := l.e.Claim(ctx, "backup", next); err != nil {
			t.Fatal(err)
		}
		if err := l.e.Abandon("backup", slot0); !errors.Is(err, elector.ErrNotClaimed) {
			t.Fatalf("abandon of an older slot: %v, want ErrNotClaimed", err)
		}
		if err := l.e.Abandon("backup", next); err != nil {
			t.Fatalf("abandon: %v", err)
		}
		if got := l.e.Jobs()["backup"]; got != before {
			t.Fatalf("after abandon: %+v, want %+v", got, before)
		}
		// Claimed again, abandoned again, and the leader stops: the
		// release puts the entry back, and the next leader finds the
		// slot never started.
		if _, err := l.e.Claim(ctx, "backup", next); err != nil {
			t.Fatalf("the abandoned slot again: %v", err)
		}
		if err := l.e.Abandon("backup", next); err != nil {
			t.Fatal(err)
		}
		l.cancel()
		<-l.done
		c.until(ld, "a new leader", func() bool { return c.leader() != nil })
		n := c.leader()
		if got := n.e.Jobs()["backup"]; got != before {
			t.Fatalf("the next leader finds %+v, want %+v", got, before)
		}
		if _, err := n.e.Claim(ctx, "backup", next); err != nil {
			t.Fatalf("the next leader's claim of the abandoned slot: %v", err)
		}
	})
}
