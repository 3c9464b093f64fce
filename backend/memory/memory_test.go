package memory_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
)

func TestConformance(t *testing.T) {
	s := memory.New()
	clients := 0
	backendtest.Run(t, backendtest.Harness{
		New: func(t testing.TB, lock string) elector.Backend {
			clients++
			return s.Backend(lock, "client"+string(rune('a'+clients%26)))
		},
		Corrupt: func(t testing.TB, lock string) func(t testing.TB) {
			garbage := []byte("\x00not a leasehold record{")
			s.PlantRaw(lock, garbage)
			return func(t testing.TB) {
				if raw, ok := s.Raw(lock); !ok || !bytes.Equal(raw, garbage) {
					t.Fatalf("the corrupt record was overwritten with %q (exists: %v)", raw, ok)
				}
			}
		},
		Delete: func(t testing.TB, lock string) { s.Delete(lock) },
		CorruptJobs: func(t testing.TB, lock string) func(t testing.TB) {
			s.PlantRaw(lock, backendtest.BadJobsRecord)
			return func(t testing.TB) {
				if raw, ok := s.Raw(lock); !ok || !bytes.Equal(raw, backendtest.BadJobsRecord) {
					t.Fatalf("the corrupt record was overwritten with %q (exists: %v)", raw, ok)
				}
			}
		},
	})
}

// A watching client that gets cut off sees nothing; healing makes the
// watch look again.
func TestHealWakesWatch(t *testing.T) {
	s := memory.New()
	w, other := s.Backend("l", "w"), s.Backend("l", "o")
	ctx := context.Background()
	v1, err := other.Create(ctx, elector.Record{Holder: "a", Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan elector.Version, 1)
	go func() {
		_, v, _ := w.Watch(ctx, v1)
		got <- v
	}()
	for i := 0; ; i++ { // the watch is registered once the store is quiet
		if q, _ := s.Quiet(); q && s.Counts("w").Watch == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	s.Partition("w")
	v2, err := other.Update(ctx, elector.Record{Holder: "b", Term: 2}, v1)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		t.Fatalf("a cut-off watch saw version %s", v)
	case <-time.After(50 * time.Millisecond):
	}
	s.Heal("w")
	select {
	case v := <-got:
		if v != v2 {
			t.Fatalf("healed watch returned %s, want %s", v, v2)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("healing did not wake the watch")
	}
}

// A call made with a context already done fails without touching the store.
func TestCancelledContextIsRefused(t *testing.T) {
	s := memory.New()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Backend("l", "c").Create(ctx, elector.Record{Holder: "a"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, ok := s.Raw("l"); ok {
		t.Fatal("a cancelled create was applied")
	}
}

// The store keeps its own copy of the job entries: a caller changing the
// map it wrote, or the one it read, changes nothing stored.
func TestJobsAreCopied(t *testing.T) {
	s := memory.New()
	b := s.Backend("l", "c")
	ctx := context.Background()
	slot := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	jobs := map[string]elector.JobState{"j": {Started: slot, StartedTerm: 1}}
	if _, err := b.Create(ctx, elector.Record{Holder: "a", Term: 1, Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	jobs["j"] = elector.JobState{}
	r, _, err := b.Get(ctx)
	if err != nil || !r.Jobs["j"].Started.Equal(slot) {
		t.Fatalf("Get = %+v %v after the writer changed its map", r, err)
	}
	delete(r.Jobs, "j")
	if r, _, _ := b.Get(ctx); len(r.Jobs) != 1 {
		t.Fatalf("Get = %+v after a reader changed its map", r)
	}
}
