package sim

import (
	"time"

	"github.com/leasehold-go/leasehold/elector"
)

type eventKind uint8

const (
	evTimer        eventKind = iota // a node's wait ended
	evTimeout                       // a node's call reached its deadline
	evArrive                        // a request reached the store
	evReply                         // a reply reached a node
	evWatchReg                      // a watch registration reached the store
	evNotify                        // a watch notification reached a node
	evFenceTick                     // a leader's next write to the fenced resource
	evFenceWrite                    // a write reached the fenced resource
	evFault                         // a fault from the scenario's timeline
	evRandomFault                   // the next random fault
	evRecover                       // the end of a fault: restart, heal, resume
	evWatchRetry                    // a node re-registers a watch that was lost
	evWorkDone                      // a former leader's work has returned
	evWatchdog                      // a leader's lease deadline, as its guard sees it
	evServe                         // the store finished serving a request
	evWorkStarted                   // a new leader's work runs
	evCronStep                      // the cron loop's next turn (idx 1: mark the run just ended done)
	evCronWake                      // the cron loop's sleep ends (idx: which sleep)
	evCronRunStart                  // a claimed slot's command starts (after work_start)
	evCronRunEnd                    // a run's command finishes by itself (gen: the run)
)

var eventNames = [...]string{"timer", "timeout", "arrive", "reply", "watch-reg", "notify",
	"fence-tick", "fence-write", "fault", "random-fault", "recover", "watch-retry", "work-done", "watchdog", "serve", "work-started",
	"cron-step", "cron-wake", "cron-run-start", "cron-run-end"}

// event is one thing that happens at a true instant. Node-bound events carry
// the node's incarnation (inc) and a generation or call id (gen) so that
// events made stale by a crash, a newer wait or a newer call are dropped.
type event struct {
	at   time.Duration
	seq  uint64
	kind eventKind
	node int32
	inc  uint32
	gen  uint64

	op      elector.Op      // evArrive: the request
	release bool            // evArrive: the request is a release
	rec     elector.Record  // evArrive: what to write; evReply, evNotify: what was read
	ver     elector.Version // evArrive: the expected version; evReply, evNotify: the version
	err     error
	term    int64     // evFenceWrite
	idx     int       // evFault: index in Scenario.Faults; evServe: the store's outages when it arrived
	what    FaultKind // evRecover
}

// queue is a binary min-heap of small keys ordered by (at, seq); the
// events themselves sit in a slab of reusable slots, so heap moves are cheap
// and a run allocates in proportion to the events in flight, not to its
// length.
type queue struct {
	keys  []key
	slots []event
	free  []int32
}

type key struct {
	at   time.Duration
	seq  uint64
	slot int32
}

func (q *queue) len() int { return len(q.keys) }

func less(a, b key) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

func (q *queue) push(e event) {
	var i int32
	if n := len(q.free); n > 0 {
		i = q.free[n-1]
		q.free = q.free[:n-1]
		q.slots[i] = e
	} else {
		i = int32(len(q.slots))
		q.slots = append(q.slots, e)
	}
	q.keys = append(q.keys, key{at: e.at, seq: e.seq, slot: i})
	k := q.keys
	for j := len(k) - 1; j > 0; {
		p := (j - 1) / 2
		if !less(k[j], k[p]) {
			break
		}
		k[j], k[p] = k[p], k[j]
		j = p
	}
}

func (q *queue) pop() event {
	k := q.keys
	top := k[0]
	last := len(k) - 1
	k[0] = k[last]
	k = k[:last]
	for j := 0; ; {
		l, r, m := 2*j+1, 2*j+2, j
		if l < len(k) && less(k[l], k[m]) {
			m = l
		}
		if r < len(k) && less(k[r], k[m]) {
			m = r
		}
		if m == j {
			break
		}
		k[j], k[m] = k[m], k[j]
		j = m
	}
	q.keys = k
	e := q.slots[top.slot]
	q.slots[top.slot] = event{}
	q.free = append(q.free, top.slot)
	return e
}
