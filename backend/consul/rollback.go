package consul

import (
	"bytes"
	"strconv"
	"sync"

	"github.com/hashicorp/consul/api"
)

// keyState is what a Client knows of one key, shared by the Backends of
// that key on the Client. It is how a store that went back in time is
// noticed: an agent restarted without its data (-dev), servers restored from
// an older snapshot.
//
// Consul's transactions compare a key's ModifyIndex only (check-index, cas;
// check-session compares a session, which leasehold does not use): nothing
// compares a value. After the store forgot, its indexes are handed out
// again, and a record created afresh can reach the ModifyIndex of the one a
// candidate read. So the backend watches the indexes instead. For one key,
// the index Consul answers (X-Consul-Index: the key's ModifyIndex, or the
// KV table's index while the key is missing) and the ModifyIndex of a write
// only grow in a store that remembers. A read answering an index below one
// seen before, or the same ModifyIndex with another CreateIndex or value,
// or a write answering an index not above everything seen before, shows the
// store went back in time. Then one WARN is logged, and the versions handed
// out before it are void: an Update with one is refused without a request
// (elector.ErrConflict), and a Watch from one answers the present state at
// once. A Backend's versions are its own: a version another Backend read
// after the store forgot does not make the same number valid for a Backend
// that read it before.
type keyState struct {
	mu   sync.Mutex
	high uint64 // the highest index seen for the key
	seen struct {
		modify, create uint64 // the record at modify as read or written
		value          []byte
	}
	// forgot is high before the last time the store went back in time (0:
	// never); gen counts those times.
	forgot uint64
	gen    uint64
	// fails is the Client's failure count when a watch of the key last
	// started blocking: a request that failed since may mean the agent
	// restarted, so the next watch starts with a read that does not block.
	fails uint64
}

// maxIssued bounds the versions a Backend remembers handing out since the
// store last went back in time; past it the oldest are forgotten (an Update
// with one of those is refused, and the elector reads again).
const maxIssued = 64

// issued is what a Backend handed out since its key's store last went back
// in time: the versions at or below keyState.forgot.
type issued struct {
	mu       sync.Mutex
	gen      uint64 // keyState.gen when the set was started
	versions map[uint64]bool
}

func (c *Client) state(key string) *keyState {
	c.statesMu.Lock()
	defer c.statesMu.Unlock()
	s := c.states[key]
	if s == nil {
		s = &keyState{}
		c.states[key] = s
	}
	return s
}

// floor is the highest index seen, read before a request: a consistent
// read answers at least that much unless the store went back in time.
func (s *keyState) floor() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.high
}

// observe checks an answer against floor, the index seen before the
// request: index is X-Consul-Index of a read (p the key, nil when missing),
// or the new ModifyIndex of a write (written; p then holds the CreateIndex
// and the value written). It records what was seen, and when the store went
// back in time logs it once and voids the versions handed out before.
func (b *Backend) observe(s *keyState, floor, index uint64, p *api.KVPair, written bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	back := index < floor || (written && index <= floor)
	if !back && p != nil && p.ModifyIndex == s.seen.modify && s.seen.modify != 0 &&
		((p.CreateIndex != 0 && s.seen.create != 0 && p.CreateIndex != s.seen.create) ||
			(!written && s.seen.value != nil && !bytes.Equal(p.Value, s.seen.value))) {
		back = true
	}
	if back {
		was := max(floor, s.high)
		b.c.log.Warn("consul: the store went back in time: index "+strconv.FormatUint(index, 10)+
			" after "+strconv.FormatUint(was, 10)+" (agent restarted without its data?)", "key", b.key)
		s.forgot = max(s.forgot, was)
		s.gen++
		s.high = index
		s.seen.modify, s.seen.create, s.seen.value = 0, 0, nil
	} else {
		s.high = max(s.high, index)
	}
	if p != nil && (back || p.ModifyIndex >= s.seen.modify) {
		s.seen.modify, s.seen.create, s.seen.value = p.ModifyIndex, p.CreateIndex, bytes.Clone(p.Value)
	}
}

// raise records index, a ModifyIndex of the key the store handed out, as
// seen.
func (s *keyState) raise(index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.high = max(s.high, index)
}

// handOutVersion records that b handed out the version index (by Get, Watch,
// Create or Update).
func (b *Backend) handOutVersion(s *keyState, index uint64) {
	s.mu.Lock()
	forgot, gen := s.forgot, s.gen
	s.mu.Unlock()
	if forgot == 0 || index > forgot {
		return
	}
	b.issued.mu.Lock()
	defer b.issued.mu.Unlock()
	if b.issued.gen != gen || b.issued.versions == nil {
		b.issued.gen, b.issued.versions = gen, map[uint64]bool{}
	}
	if len(b.issued.versions) >= maxIssued {
		low := index
		for i := range b.issued.versions {
			low = min(low, i)
		}
		delete(b.issued.versions, low)
	}
	b.issued.versions[index] = true
}

// void reports whether the version index names a record the store forgot:
// at or below what this Client had seen when the store last went back in
// time, and not handed out by b since.
func (b *Backend) void(s *keyState, index uint64) bool {
	s.mu.Lock()
	forgot, gen := s.forgot, s.gen
	s.mu.Unlock()
	if forgot == 0 || index > forgot {
		return false
	}
	b.issued.mu.Lock()
	defer b.issued.mu.Unlock()
	return b.issued.gen != gen || !b.issued.versions[index]
}
