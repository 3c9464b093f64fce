package watchstate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/elector"
)

func TestWaitNeverOlder(t *testing.T) {
	s := New()
	s.Publish(5, elector.Record{Holder: "a"}, "5", nil)
	s.Publish(3, elector.Record{Holder: "old"}, "3", nil) // older: ignored
	r, v, err := s.Wait(context.Background(), 4, nil)
	if err != nil || v != "5" || r.Holder != "a" {
		t.Fatalf("Wait past 4 = %+v %q %v, want a at 5", r, v, err)
	}
	got := make(chan elector.Version, 1)
	go func() {
		_, v, _ := s.Wait(context.Background(), 5, nil)
		got <- v
	}()
	select {
	case v := <-got:
		t.Fatalf("Wait past 5 returned %q before anything newer", v)
	case <-time.After(20 * time.Millisecond):
	}
	s.Publish(7, elector.Record{}, "", elector.ErrNotFound)
	if v := <-got; v != "" {
		t.Fatalf("after a deletion at 7: version %q", v)
	}
	if _, _, err := s.Wait(context.Background(), 6, nil); !errors.Is(err, elector.ErrNotFound) {
		t.Fatalf("the deletion is not reported: %v", err)
	}
}

func TestWaitEnds(t *testing.T) {
	s := New()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Wait(ctx, 0, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	closed := make(chan struct{})
	close(closed)
	if _, _, err := s.Wait(context.Background(), 0, closed); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}

// After the store went back in time, a waiter holding a version from the
// forgotten history is handed the present state at once; one holding the
// present version waits for a newer one; later publishing goes on from the
// reset revision.
func TestReset(t *testing.T) {
	s := New()
	s.Publish(20, elector.Record{Holder: "old"}, "20", nil)
	if _, behind := s.Behind(25); behind {
		t.Fatal("a store ahead of the state is not behind")
	}
	last, behind := s.Behind(15)
	if !behind || last != 20 {
		t.Fatalf("Behind(15) = %d %v, want 20 true", last, behind)
	}
	resets := s.Resets()
	s.Reset(15, elector.Record{Holder: "restored"}, "15", nil)
	select {
	case <-resets:
	default:
		t.Fatal("Reset did not close the Resets channel")
	}
	r, v, err := s.Wait(context.Background(), 20, nil)
	if err != nil || v != "15" || r.Holder != "restored" {
		t.Fatalf("a waiter at 20 after a reset to 15 got %+v %q %v, want the restored state", r, v, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, v, err := s.Wait(ctx, 15, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a waiter holding the present version was handed %q (%v)", v, err)
	}
	s.Publish(16, elector.Record{Holder: "new"}, "16", nil)
	if r, v, _ := s.Wait(context.Background(), 15, nil); v != "16" || r.Holder != "new" {
		t.Fatalf("after the reset, publishing 16 gave %+v %q", r, v)
	}
}
