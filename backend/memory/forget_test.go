package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
)

// watchAsync starts a watch past v and returns where its answer arrives,
// once the watch waits in the store.
func watchAsync(t *testing.T, s *memory.Store, b *memory.Backend, client string, v elector.Version) <-chan error {
	t.Helper()
	before := s.Counts(client).Watch
	got := make(chan error, 1)
	go func() {
		_, _, err := b.Watch(context.Background(), v)
		got <- err
	}()
	for i := 0; ; i++ {
		if q, _ := s.Quiet(); q && s.Counts(client).Watch == before+1 {
			return got
		}
		if i > 5000 {
			t.Fatal("the watch never settled")
		}
		time.Sleep(time.Millisecond)
	}
}

func wait(t *testing.T, got <-chan error) error {
	t.Helper()
	select {
	case err := <-got:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the watch was not woken")
	}
	return nil
}

// A wipe forgets every record and restarts the revision counter: the next
// record gets a version handed out before, and a watcher sees the record
// gone.
func TestWipe(t *testing.T) {
	s := memory.New()
	a, w := s.Backend("l", "a"), s.Backend("l", "w")
	ctx := context.Background()
	v1, err := a.Create(ctx, elector.Record{Holder: "a", Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := a.Update(ctx, elector.Record{Holder: "a", Term: 1}, v1)
	if err != nil {
		t.Fatal(err)
	}
	got := watchAsync(t, s, w, "w", v2)
	s.Wipe()
	if err := wait(t, got); !errors.Is(err, elector.ErrNotFound) {
		t.Fatalf("watch after a wipe: %v, want ErrNotFound", err)
	}
	if _, _, err := a.Get(ctx); !errors.Is(err, elector.ErrNotFound) {
		t.Fatalf("Get after a wipe: %v, want ErrNotFound", err)
	}
	if _, err := a.Update(ctx, elector.Record{Holder: "a", Term: 1}, v2); !errors.Is(err, elector.ErrNotFound) {
		t.Fatalf("Update after a wipe: %v, want ErrNotFound", err)
	}
	n1, err := w.Create(ctx, elector.Record{Holder: "w", Term: 1})
	if err != nil || n1 != v1 {
		t.Fatalf("Create after a wipe: version %s, %v; want %s again (the counter restarted)", n1, err, v1)
	}
	// A watcher waiting for a record to appear stays waiting through a
	// wipe of an empty store.
	s.Wipe()
	got = watchAsync(t, s, w, "w", "")
	s.Wipe()
	select {
	case err := <-got:
		t.Fatalf("a watch for a creation returned %v after a wipe of nothing", err)
	case <-time.After(20 * time.Millisecond):
	}
	if _, err := a.Create(ctx, elector.Record{Holder: "a", Term: 2}); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, got); err != nil {
		t.Fatalf("watch for a creation: %v", err)
	}
}

// A restore puts records and the counter back: the versions written since
// the snapshot are handed out again for other records, so an update with a
// version from the forgotten history can succeed against a record its
// writer never read (the ABA case). A watcher holding a forgotten version
// is woken with the restored record.
func TestRestore(t *testing.T) {
	s := memory.New()
	a, b, w := s.Backend("l", "a"), s.Backend("l", "b"), s.Backend("l", "w")
	ctx := context.Background()
	v1, err := a.Create(ctx, elector.Record{Holder: "a", Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	snap := s.Snapshot()
	if snap.Rev() != 1 {
		t.Fatalf("snapshot at revision %d, want 1", snap.Rev())
	}
	v2, err := a.Update(ctx, elector.Record{Holder: "a", Term: 1}, v1)
	if err != nil {
		t.Fatal(err)
	}
	got := watchAsync(t, s, w, "w", v2)
	s.Restore(snap)
	if err := wait(t, got); err != nil {
		t.Fatalf("watch holding a forgotten version: %v, want the restored record", err)
	}
	r, v, err := b.Get(ctx)
	if err != nil || v != v1 || r.Holder != "a" {
		t.Fatalf("Get after the restore: %+v %s %v, want a's record at %s", r, v, err, v1)
	}
	// b takes over: its write gets v2 again, for another record.
	bv, err := b.Update(ctx, elector.Record{Holder: "b", Term: 2}, v1)
	if err != nil || bv != v2 {
		t.Fatalf("b's update: %s %v, want version %s handed out again", bv, err, v2)
	}
	// a still holds v2 from the forgotten history: its compare-and-swap
	// succeeds against b's record, which it never read.
	if _, err := a.Update(ctx, elector.Record{Holder: "a", Term: 1}, v2); err != nil {
		t.Fatalf("a's update with the reused version: %v (the store compares versions only)", err)
	}
	// The snapshot is a copy: later writes do not change it.
	s.Restore(snap)
	if r, v, _ := b.Get(ctx); v != v1 || r.Holder != "a" {
		t.Fatalf("second restore: %+v %s, want a's record at %s", r, v, v1)
	}
	// Restoring nil is the empty store; the counter starts again.
	s.Restore(nil)
	if _, _, err := b.Get(ctx); !errors.Is(err, elector.ErrNotFound) {
		t.Fatalf("Get after restoring nil: %v", err)
	}
	if v, err := b.Create(ctx, elector.Record{Holder: "b", Term: 3}); err != nil || v != v1 {
		t.Fatalf("Create after restoring nil: %s %v, want %s", v, err, v1)
	}
}

// Delete keeps the counter going: a record created afterwards never reuses
// a version.
func TestDeleteKeepsCounting(t *testing.T) {
	s := memory.New()
	a, w := s.Backend("l", "a"), s.Backend("l", "w")
	ctx := context.Background()
	v1, err := a.Create(ctx, elector.Record{Holder: "a", Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := watchAsync(t, s, w, "w", v1)
	s.Delete("l")
	if err := wait(t, got); !errors.Is(err, elector.ErrNotFound) {
		t.Fatalf("watch after a delete: %v, want ErrNotFound", err)
	}
	v2, err := a.Create(ctx, elector.Record{Holder: "a", Term: 2})
	if err != nil || v2 == v1 {
		t.Fatalf("Create after a delete: %s %v, want a version other than %s", v2, err, v1)
	}
}
