// Package watchstate holds the latest state of one watched record, for
// backends whose single watch loop per key serves every waiting follower
// (etcd, Kubernetes): the loop publishes, waiters wait for a state newer
// than the version they hold, and nothing older than that is ever handed
// out.
package watchstate

import (
	"context"
	"errors"
	"sync"

	"github.com/leasehold-go/leasehold/elector"
)

// ErrClosed is returned by Wait when the watch loop's client is closed.
var ErrClosed = errors.New("client closed")

// State is the latest state of one record as its watch loop saw it. The
// zero value is not ready: use New.
type State struct {
	mu   sync.Mutex
	seen bool  // the loop has published at least once
	rev  int64 // the store's revision of that state (also for "missing")
	rec  elector.Record
	ver  elector.Version
	err  error
	wake chan struct{}
}

// New returns a State nothing has been published to.
func New() *State { return &State{wake: make(chan struct{})} }

// Publish records the state at revision rev (rec and ver, or err such as
// elector.ErrNotFound) and wakes the waiters. A state not newer than the
// last one published is ignored.
func (s *State) Publish(rev int64, rec elector.Record, ver elector.Version, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen && rev <= s.rev {
		return
	}
	s.seen, s.rev, s.rec, s.ver, s.err = true, rev, rec, ver, err
	close(s.wake)
	s.wake = make(chan struct{})
}

// Wait returns the first published state newer than revision after, or
// ctx's error, or ErrClosed once closed is done.
func (s *State) Wait(ctx context.Context, after int64, closed <-chan struct{}) (elector.Record, elector.Version, error) {
	for {
		s.mu.Lock()
		if s.seen && s.rev > after {
			r, v, err := s.rec, s.ver, s.err
			s.mu.Unlock()
			return r, v, err
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return elector.Record{}, "", ctx.Err()
		case <-closed:
			return elector.Record{}, "", ErrClosed
		}
	}
}
