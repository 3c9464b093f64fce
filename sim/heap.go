package sim

import (
	"time"

	"github.com/leasehold-go/leasehold/elector"
)

type eventKind uint8

const (
	evTimer      eventKind = iota // a node's wait ended
	evTimeout                     // a node's call reached its deadline
	evArrive                      // a request reached the store
	evReply                       // a reply reached a node
	evWatchReg                    // a watch registration reached the store
	evNotify                      // a watch notification reached a node
	evFenceTick                   // a leader's next write to the fenced resource
	evFenceWrite                  // a write reached the fenced resource
	evFault                       // a fault from the scenario's timeline
	evRandomFault                 // the next random fault
	evRecover                     // the end of a fault: restart, heal, resume
)

var eventNames = [...]string{"timer", "timeout", "arrive", "reply", "watch-reg", "notify",
	"fence-tick", "fence-write", "fault", "random-fault", "recover"}

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

	op   elector.Op
	call elector.Call // evArrive
	rec  elector.Record
	ver  elector.Version
	err  error
	term int64     // evFenceWrite
	idx  int       // evFault: index in Scenario.Faults
	what FaultKind // evRecover
}

// eventHeap is a binary min-heap ordered by (at, seq), on values (no
// allocation per event beyond the slice's growth).
type eventHeap []event

func (h eventHeap) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

func (h *eventHeap) push(e event) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *eventHeap) pop() event {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = event{}
	s = s[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s.less(l, m) {
			m = l
		}
		if r < len(s) && s.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
