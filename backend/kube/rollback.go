package kube

import (
	"context"
	"strconv"
	"sync"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/watchstate"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// leaseState is what a Client knows of one Lease, shared by the Backends of
// that Lease on the Client: its watch state (published by one watch loop,
// started by the first Watch) and the newest Lease it saw, by any path.
//
// It is how a store that went back in time is noticed. A Lease's
// resourceVersion only grows, and every revision the watch published (a
// Lease's, or the list's for "missing") was a state of that Lease in the
// store's history. So a quorum read (a Get, or the watch loop's List) that
// answers a resourceVersion below one seen before, or the same
// resourceVersion with another uid, comes from a store that forgot: etcd
// restored from an older snapshot, or the apiserver pointed at a new etcd
// where the Lease was created again. Then the watch state is Reset (waiters
// holding a forgotten version get the present state, the watch loop lists
// and watches again) and one WARN is logged.
//
// Once the store went back, a List is no longer taken on trust: the
// apiserver serves it from its watch cache, and an apiserver that kept
// running while etcd was restored under it keeps, in that cache, the Lease
// the store forgot (see checkList).
type leaseState struct {
	ws *watchstate.State

	mu       sync.Mutex // serializes the check against the state and the Reset: one WARN per occurrence
	started  bool       // the watch loop runs
	high     int64      // the highest resourceVersion seen (Lease or list), by any path
	known    *coordinationv1.Lease
	wentBack bool // the store went back in time at least once: lists are checked
	behind   bool // a list was found older than the store (logged once)
}

// state returns the Client's leaseState of the Lease name.
func (c *Client) state(name string) *leaseState {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	s := c.states[name]
	if s == nil {
		s = &leaseState{ws: watchstate.New()}
		c.states[name] = s
	}
	return s
}

func rvOf(l *coordinationv1.Lease) int64 {
	n, _ := strconv.ParseInt(l.ResourceVersion, 10, 64)
	return n
}

// floor is the highest revision this Client has seen of the Lease, read
// before a request: a quorum read sent afterwards answers at least that
// much unless the store went back in time. (Read before the request, since
// a write that lands while the read is in flight may raise it.)
func (s *leaseState) floor() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	published, _ := s.ws.Behind(0) // the highest revision published
	return max(s.high, published)
}

// at returns the Lease at resourceVersion v as this Client last saw it (its
// uid, labels and annotations), or nil.
func (s *leaseState) at(v string) *coordinationv1.Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known != nil && s.known.ResourceVersion == v {
		return s.known
	}
	return nil
}

// rememberLocked records l (read or written) as seen. s.mu is held.
func (s *leaseState) rememberLocked(l *coordinationv1.Lease) {
	if rv := rvOf(l); s.known == nil || rv >= rvOf(s.known) {
		s.known = l
	}
	s.high = max(s.high, rvOf(l))
}

// wentBack reports whether a Lease l answered by a quorum read (or a write,
// when written: its new resourceVersion must exceed everything seen before)
// shows the store went back in time, given floor, the revision seen before
// the request. s.mu is held.
func (s *leaseState) wentBackLocked(l *coordinationv1.Lease, floor int64, written bool) bool {
	rv := rvOf(l)
	if rv < floor || (written && rv <= floor) {
		return true
	}
	return s.known != nil && s.known.ResourceVersion == l.ResourceVersion && s.known.UID != l.UID
}

// observe checks a Lease answered by a Get (written: by a Create or an
// Update) against what was seen before the request (floor), records it, and
// when the store went back in time logs it once and resets the watch state
// to it.
func (b *Backend) observe(s *leaseState, l *coordinationv1.Lease, floor int64, written bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.wentBackLocked(l, floor, written) {
		s.rememberLocked(l)
		return
	}
	last, _ := s.ws.Behind(0)
	b.warnBack(rvOf(l), max(floor, s.high, last), l, s.known)
	s.high, s.known, s.wentBack = rvOf(l), l, true
	if s.started {
		// The watch loop stops waiting on Resets and lists again.
		r, err := b.decode(l)
		var ver elector.Version
		if err == nil {
			ver = elector.Version(l.ResourceVersion)
		}
		s.ws.Reset(rvOf(l), r, ver, err)
	}
}

// checkList returns list, the watch loop's List of the Lease, unless the
// store went back in time before and a quorum read taken after the List
// shows that the List answered a Lease the store forgot: then it returns
// the list with the quorum read's Lease in its place (and the list's
// resourceVersion, where the watch goes on from).
//
// An apiserver answers a List from its watch cache, which follows etcd's
// history by watching it. When etcd is restored from a snapshot under a
// running apiserver (the documented procedure restarts the apiservers;
// nothing enforces it), that cache keeps the Lease as it was before the
// restore, at a higher resourceVersion, until etcd's revision passes it
// and the Lease is written again; a Get without a resourceVersion reads
// etcd. Published, the cached Lease would contradict every Get: a follower
// would see the record change back and forth, each time restarting the
// lease it waits out, and no candidate would ever take over. In one
// history a Lease read after a List is never older than the List's: a
// quorum read with a lower resourceVersion (or the same one with another
// uid), or present at or below the revision of a List that did not have
// it, means the List came from a cache behind the store. A missing Lease
// is taken from the List as it is (a deletion since is indistinguishable).
func (b *Backend) checkList(ctx context.Context, s *leaseState, list *coordinationv1.LeaseList) (*coordinationv1.LeaseList, error) {
	s.mu.Lock()
	check := s.wentBack
	s.mu.Unlock()
	if !check {
		return list, nil
	}
	gctx, cancel := b.ctx(ctx)
	defer cancel()
	floor := s.floor()
	l, err := b.c.leases.Get(gctx, b.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return list, nil
	}
	if err != nil {
		return nil, b.c.friendly("get", b.name, err)
	}
	b.observe(s, l, floor, false)
	listRV, _ := strconv.ParseInt(list.ResourceVersion, 10, 64)
	var stale bool
	if len(list.Items) == 0 {
		stale = rvOf(l) <= listRV
	} else {
		listed := &list.Items[0]
		stale = rvOf(l) < rvOf(listed) || (l.ResourceVersion == listed.ResourceVersion && l.UID != listed.UID)
	}
	if !stale {
		return list, nil
	}
	s.mu.Lock()
	first := !s.behind
	s.behind = true
	s.mu.Unlock()
	if first {
		args := []any{"lease", b.c.namespace + "/" + b.name, "quorum_read", l.ResourceVersion, "list", list.ResourceVersion}
		if len(list.Items) > 0 {
			args = append(args, "listed", list.Items[0].ResourceVersion)
		}
		b.c.log.Warn("kube: the apiserver's watch cache is behind the store (etcd restored under a running apiserver?): following quorum reads until it catches up", args...)
	}
	out := list.DeepCopy()
	out.Items = []coordinationv1.Lease{*l}
	return out, nil
}

// warnBack logs one "went back in time" line.
func (b *Backend) warnBack(rv, after int64, l, was *coordinationv1.Lease) {
	args := []any{"lease", b.c.namespace + "/" + b.name}
	if l != nil && was != nil && l.UID != was.UID {
		args = append(args, "uid", string(l.UID), "was_uid", string(was.UID))
	}
	b.c.log.Warn("kube: the store went back in time: resourceVersion "+strconv.FormatInt(rv, 10)+
		" after "+strconv.FormatInt(after, 10)+" (etcd restored or replaced?)", args...)
}
