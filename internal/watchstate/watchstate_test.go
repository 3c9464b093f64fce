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
