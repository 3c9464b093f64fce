// Package watchstate holds the latest state of one watched record, for
// backends whose single watch loop per key serves every waiting follower
// (etcd, Kubernetes): the loop publishes, waiters wait for a state newer
// than the version they hold, and nothing older than that is ever handed
// out — unless the store itself went back in time (restored from a
// snapshot, wiped), which a backend reports with Reset.
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
	mu     sync.Mutex
	seen   bool  // the loop has published at least once
	rev    int64 // the store's revision of that state (also for "missing")
	before int64 // the highest revision published before the last Reset (0: none)
	rec    elector.Record
	ver    elector.Version
	err    error
	wake   chan struct{}
	resets chan struct{} // closed (and replaced) by Reset
}

// New returns a State nothing has been published to.
func New() *State { return &State{wake: make(chan struct{}), resets: make(chan struct{})} }

// Publish records the state at revision rev (rec and ver, or err such as
// elector.ErrNotFound) and wakes the waiters. A state not newer than the
// last one published is ignored.
func (s *State) Publish(rev int64, rec elector.Record, ver elector.Version, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen && rev <= s.rev {
		return
	}
	s.set(rev, rec, ver, err)
}

func (s *State) set(rev int64, rec elector.Record, ver elector.Version, err error) {
	s.seen, s.rev, s.rec, s.ver, s.err = true, rev, rec, ver, err
	close(s.wake)
	s.wake = make(chan struct{})
}

// Behind reports whether a store whose current revision is storeRev (read
// linearizably: a quorum read's header) is behind the state published: it
// went back in time, and what was published (and is still being watched
// for) describes a history the store no longer has. It returns the
// highest revision published, for the log line.
func (s *State) Behind(storeRev int64) (last int64, behind bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev, s.seen && storeRev < s.rev
}

// Reset replaces the state with one read from a store that went back in
// time (see Behind): waiters holding a version from before it are handed
// the new state, and the channel Resets returned is closed, so that the
// watch loop can stop waiting for revisions the store will hand out again
// for other writes.
func (s *State) Reset(rev int64, rec elector.Record, ver elector.Version, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before = max(s.before, s.rev)
	s.set(rev, rec, ver, err)
	close(s.resets)
	s.resets = make(chan struct{})
}

// Resets returns a channel closed by the next Reset.
func (s *State) Resets() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resets
}

// ready reports whether a waiter holding revision after is to be handed
// the state: it is newer, or the waiter's revision is from before a Reset
// (ahead of the store's present, within the history it forgot).
func (s *State) ready(after int64) bool {
	return s.seen && (s.rev > after || (after > s.rev && after <= s.before))
}

// Wait returns the first published state newer than revision after (or
// any state, when after is from before a Reset), or ctx's error, or
// ErrClosed once closed is done.
func (s *State) Wait(ctx context.Context, after int64, closed <-chan struct{}) (elector.Record, elector.Version, error) {
	for {
		s.mu.Lock()
		if s.ready(after) {
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
