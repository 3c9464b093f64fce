// Package history checks what a set of replicas did while they competed for
// a lock: the leadership intervals their commands ran in, and the writes
// those commands made to a term-fenced resource.
//
// It asserts the two promises of leader election over the whole history,
// not at a few sampled instants:
//
//   - no two leaderships overlap in real time (an overlap is reported with
//     its length: two commands ran at once);
//   - the fencing term never repeats (two leaderships with one term) and a
//     write with a term lower than one written before it (stale: a fenced
//     resource refuses it, one without a fence would have taken it) never
//     happens.
//
// The input is what the commands themselves recorded: each writes a line
// "<replica> <term> <unix-nanos> [<run>]" every few milliseconds while it
// runs to one shared file (appends are atomic, so the file's order is the
// order the resource received the writes). The first and the last line of
// one run bound its leadership interval; each line is also one write to
// the fenced resource. The optional run field tells apart two runs of one
// replica (the shell's $$); without it, consecutive lines of a replica with
// the same term are one run.
package history

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Write is one write to the fenced resource: who wrote it, under which
// term, when (by the writer's clock) and from which run.
type Write struct {
	Replica string
	Run     string // tells apart runs of one replica; may be empty
	Term    int64
	At      time.Time
}

// Parse reads lines "<replica> <term> <unix-nanos> [<run>]". Lines that do
// not parse (one cut short by a kill) are skipped and counted.
func Parse(r io.Reader) (ws []Write, skipped int, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		w, ok := parseLine(sc.Text())
		if !ok {
			skipped++
			continue
		}
		ws = append(ws, w)
	}
	return ws, skipped, sc.Err()
}

func parseLine(s string) (Write, bool) {
	f := strings.Fields(s)
	if len(f) < 3 || len(f) > 4 {
		return Write{}, false
	}
	term, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return Write{}, false
	}
	ns, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || ns <= 0 {
		return Write{}, false
	}
	w := Write{Replica: f[0], Term: term, At: time.Unix(0, ns)}
	if len(f) == 4 {
		w.Run = f[3]
	}
	return w, true
}

// Interval is one leadership as its command saw it: the first and the last
// write of one run.
type Interval struct {
	Replica    string
	Run        string
	Term       int64
	Start, End time.Time
	Writes     int
}

func (iv Interval) String() string {
	run := ""
	if iv.Run != "" {
		run = "/" + iv.Run
	}
	return fmt.Sprintf("%s%s term %d [%s .. %s] (%d writes, %v)", iv.Replica, run, iv.Term,
		iv.Start.Format("15:04:05.000000"), iv.End.Format("15:04:05.000000"), iv.Writes, iv.End.Sub(iv.Start).Round(time.Millisecond))
}

// Intervals groups writes into leaderships: by replica and run when the
// writes carry a run, else by runs of consecutive writes of a replica with
// one term. They are returned in order of their start.
func Intervals(ws []Write) []Interval {
	type key struct {
		replica, run string
		term         int64
	}
	var out []Interval
	open := map[key]int{}       // leadership → index in out
	current := map[string]int{} // replica → index of its latest interval (runless writes)
	for _, w := range ws {
		k := key{w.Replica, w.Run, w.Term}
		i, ok := open[k]
		if w.Run == "" {
			// Without a run, a write continues the replica's latest
			// interval only if that one has the same term.
			j, seen := current[w.Replica]
			ok = seen && out[j].Term == w.Term && out[j].Run == ""
			i = j
		}
		if !ok {
			out = append(out, Interval{Replica: w.Replica, Run: w.Run, Term: w.Term, Start: w.At, End: w.At})
			i = len(out) - 1
			open[k] = i
		}
		current[w.Replica] = i
		iv := &out[i]
		if w.At.Before(iv.Start) {
			iv.Start = w.At
		}
		if w.At.After(iv.End) {
			iv.End = w.At
		}
		iv.Writes++
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Start.Before(out[b].Start) })
	return out
}

// Overlap is two leaderships that ran at once, for Length (zero when one
// ended at the very nanosecond the other started).
type Overlap struct {
	A, B   Interval
	Length time.Duration
}

func (o Overlap) String() string {
	return fmt.Sprintf("overlap of %v: %v and %v", o.Length, o.A, o.B)
}

// Stale is a write whose term is lower than one the resource accepted
// before it: a fenced resource refuses it; that the writer tried means it
// still acted after a newer leader had written.
type Stale struct {
	Write   Write
	Highest Write // the write that set the highest term so far
}

func (s Stale) String() string {
	return fmt.Sprintf("stale write: %s wrote with term %d at %s, after %s had written with term %d at %s",
		s.Write.Replica, s.Write.Term, s.Write.At.Format("15:04:05.000000"),
		s.Highest.Replica, s.Highest.Term, s.Highest.At.Format("15:04:05.000000"))
}

// Repeat is one term used by two leaderships.
type Repeat struct {
	Term int64
	A, B Interval
}

func (r Repeat) String() string {
	return fmt.Sprintf("term %d used twice: %v and %v", r.Term, r.A, r.B)
}

// Fence is a term-fenced resource: it accepts a write whose term is at
// least the highest it accepted so far and refuses a lower one. The zero
// value accepts anything first.
type Fence struct {
	highest Write
	any     bool
}

// Write offers w to the resource and says whether it was accepted.
func (f *Fence) Write(w Write) bool {
	if f.any && w.Term < f.highest.Term {
		return false
	}
	f.highest, f.any = w, true
	return true
}

// Highest is the write that set the highest term accepted so far.
func (f *Fence) Highest() (Write, bool) { return f.highest, f.any }

// Report is what Check found. It is clean when it found no violation.
type Report struct {
	Intervals []Interval
	Overlaps  []Overlap
	Stale     []Stale
	Repeats   []Repeat
	Writes    int
}

// OK reports whether the history has no overlap, no stale write and no
// repeated term.
func (r Report) OK() bool {
	return len(r.Overlaps) == 0 && len(r.Stale) == 0 && len(r.Repeats) == 0
}

// MaxOverlap is the longest overlap found (0 when none).
func (r Report) MaxOverlap() time.Duration {
	var m time.Duration
	for _, o := range r.Overlaps {
		m = max(m, o.Length)
	}
	return m
}

// Terms lists the leaderships' terms in order of their start.
func (r Report) Terms() []int64 {
	out := make([]int64, len(r.Intervals))
	for i, iv := range r.Intervals {
		out[i] = iv.Term
	}
	return out
}

// Violations lists every violation found, one per line.
func (r Report) Violations() []string {
	var out []string
	for _, o := range r.Overlaps {
		out = append(out, o.String())
	}
	for _, s := range r.Stale {
		out = append(out, s.String())
	}
	for _, p := range r.Repeats {
		out = append(out, p.String())
	}
	return out
}

// String is the leaderships in order, then the violations.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d writes, %d leaderships:\n", r.Writes, len(r.Intervals))
	for _, iv := range r.Intervals {
		fmt.Fprintf(&b, "  %v\n", iv)
	}
	if v := r.Violations(); len(v) > 0 {
		fmt.Fprintf(&b, "%d violations:\n", len(v))
		for _, s := range v {
			fmt.Fprintf(&b, "  %s\n", s)
		}
	} else {
		b.WriteString("no overlap, no stale write, no repeated term\n")
	}
	return b.String()
}

// Check checks a history: ws are the writes in the order the resource
// received them, which also give the leadership intervals (Intervals).
func Check(ws []Write) Report {
	return CheckIntervals(Intervals(ws), ws)
}

// CheckIntervals checks leadership intervals (from any source, for example
// the commands' output and the guard's log) and the writes to the fenced
// resource in the order it received them:
//
//   - every two intervals of different leaderships (different replicas, or
//     different runs of one) that share an instant overlap;
//   - every write the fence refuses is stale;
//   - every two leaderships with one term repeat it.
func CheckIntervals(ivs []Interval, ws []Write) Report {
	r := Report{Intervals: ivs, Writes: len(ws)}
	sorted := append([]Interval(nil), ivs...)
	sort.SliceStable(sorted, func(a, b int) bool { return sorted[a].Start.Before(sorted[b].Start) })
	for i := range sorted {
		for j := i + 1; j < len(sorted); j++ {
			a, b := sorted[i], sorted[j]
			if b.Start.After(a.End) {
				break // sorted by start: no later interval reaches back into a
			}
			if a.Replica == b.Replica && a.Run == b.Run && a.Term == b.Term {
				continue
			}
			end := a.End
			if b.End.Before(end) {
				end = b.End
			}
			r.Overlaps = append(r.Overlaps, Overlap{A: a, B: b, Length: end.Sub(b.Start)})
		}
	}
	var f Fence
	for _, w := range ws {
		if !f.Write(w) {
			h, _ := f.Highest()
			r.Stale = append(r.Stale, Stale{Write: w, Highest: h})
		}
	}
	byTerm := map[int64]Interval{}
	for _, iv := range sorted {
		if first, ok := byTerm[iv.Term]; ok {
			r.Repeats = append(r.Repeats, Repeat{Term: iv.Term, A: first, B: iv})
			continue
		}
		byTerm[iv.Term] = iv
	}
	return r
}
