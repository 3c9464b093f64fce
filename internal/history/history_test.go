package history

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1_750_000_000, 0)

// lines builds a history file: each entry is "replica term ms [run]", ms
// after t0.
func lines(entries ...string) string {
	var b strings.Builder
	for _, e := range entries {
		f := strings.Fields(e)
		var ms int64
		fmt.Sscan(f[2], &ms)
		fmt.Fprintf(&b, "%s %s %d", f[0], f[1], t0.Add(time.Duration(ms)*time.Millisecond).UnixNano())
		if len(f) > 3 {
			fmt.Fprintf(&b, " %s", f[3])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func check(t *testing.T, text string) Report {
	t.Helper()
	ws, skipped, err := Parse(strings.NewReader(text))
	if err != nil || skipped != 0 {
		t.Fatalf("parse: %v, %d skipped", err, skipped)
	}
	return Check(ws)
}

// every writes replica's lines from..to every 20ms.
func every(replica string, term int64, from, to int, run string) []string {
	var out []string
	for ms := from; ms <= to; ms += 20 {
		out = append(out, fmt.Sprintf("%s %d %d %s", replica, term, ms, run))
	}
	return out
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestCleanHistory(t *testing.T) {
	h := lines(concat(
		every("a", 10, 0, 1000, "101"),
		every("b", 11, 1100, 2000, "202"),
		every("a", 12, 2300, 3000, "103"), // a leads again, in a new run
	)...)
	r := check(t, h)
	if !r.OK() {
		t.Fatalf("a clean history reported violations:\n%v", r)
	}
	if len(r.Intervals) != 3 || fmt.Sprint(r.Terms()) != "[10 11 12]" {
		t.Fatalf("intervals %v", r.Intervals)
	}
	iv := r.Intervals[1]
	if iv.Replica != "b" || !iv.Start.Equal(t0.Add(1100*time.Millisecond)) || !iv.End.Equal(t0.Add(2000*time.Millisecond)) || iv.Writes != 46 {
		t.Fatalf("b's interval: %v", iv)
	}
	if r.MaxOverlap() != 0 || r.Writes != 51+46+36 {
		t.Fatalf("max overlap %v, %d writes", r.MaxOverlap(), r.Writes)
	}
}

func TestOverlap(t *testing.T) {
	// b starts at 950ms while a writes until 1000ms: 50ms of overlap. The
	// file is in append order, so a's last lines come after b's first.
	h := lines(concat(
		every("a", 10, 0, 940, "1"),
		[]string{"b 11 950 2", "a 10 960 1", "b 11 970 2", "a 10 980 1", "a 10 1000 1"},
		every("b", 11, 990, 2000, "2"),
	)...)
	r := check(t, h)
	if len(r.Overlaps) != 1 || r.Overlaps[0].Length != 50*time.Millisecond {
		t.Fatalf("want one overlap of 50ms, got %v", r.Overlaps)
	}
	// a's lines after b's first (term 11) have term 10: the fence refuses
	// them.
	if len(r.Stale) != 3 || r.Stale[0].Write.Term != 10 || r.Stale[0].Highest.Term != 11 {
		t.Fatalf("want a's 3 writes after b's first stale, got %v", r.Stale)
	}
	if r.OK() || !strings.Contains(r.String(), "overlap of 50ms") {
		t.Fatalf("report:\n%v", r)
	}
}

// Two intervals that share exactly one instant overlap (by 0).
func TestTouchingIntervalsOverlap(t *testing.T) {
	r := check(t, lines("a 1 0 1", "a 1 100 1", "b 2 100 2", "b 2 200 2"))
	if len(r.Overlaps) != 1 || r.Overlaps[0].Length != 0 {
		t.Fatalf("want an overlap of 0, got %v", r.Overlaps)
	}
	if r.OK() {
		t.Fatal("touching intervals reported clean")
	}
}

// An interval that contains another, and one starting inside the first
// that ends after it: both found, with the right lengths.
func TestNestedAndLaterOverlaps(t *testing.T) {
	r := check(t, lines(
		"a 1 0 1",
		"b 2 100 2", "b 2 200 2",
		"c 3 900 3",
		"a 1 1000 1",
		"c 3 1500 3",
	))
	got := map[string]time.Duration{}
	for _, o := range r.Overlaps {
		got[o.A.Replica+o.B.Replica] = o.Length
	}
	want := map[string]time.Duration{"ab": 100 * time.Millisecond, "ac": 100 * time.Millisecond}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("overlaps %v, want %v", got, want)
	}
}

// The writes of a stale leader after a newer one wrote: refused by the
// fence, reported, even when the intervals (by clock) do not overlap (the
// stale writer's clock is behind).
func TestStaleWrite(t *testing.T) {
	r := check(t, lines(
		"a 5 0 1", "a 5 100 1",
		"b 6 300 2", "b 6 400 2",
		"a 5 200 1", // appended after b's writes, stamped earlier
	))
	if len(r.Stale) != 1 || r.Stale[0].Write.Replica != "a" || r.Stale[0].Highest.Replica != "b" {
		t.Fatalf("want a's last write stale, got %v", r.Stale)
	}
	if len(r.Overlaps) != 0 || len(r.Repeats) != 0 {
		t.Fatalf("only a stale write expected: %v", r)
	}
	if r.OK() || !strings.Contains(r.String(), "stale write: a wrote with term 5") {
		t.Fatalf("report:\n%v", r)
	}
}

// A term handed out twice (the store was restored and a new process took
// the restored term + 1 again), in leaderships that do not overlap.
func TestRepeatedTerm(t *testing.T) {
	r := check(t, lines(concat(
		every("a", 1, 0, 500, "1"),
		every("b", 2, 600, 1000, "2"),
		every("c", 2, 1200, 1500, "3"),
	)...))
	if len(r.Repeats) != 1 || r.Repeats[0].Term != 2 || r.Repeats[0].A.Replica != "b" || r.Repeats[0].B.Replica != "c" {
		t.Fatalf("want term 2 repeated by b and c, got %v", r.Repeats)
	}
	// Equal terms pass the fence (≥): not stale.
	if len(r.Stale) != 0 || len(r.Overlaps) != 0 || r.OK() {
		t.Fatalf("report:\n%v", r)
	}
}

// One replica leading twice with the same term is a repeat too: two runs.
func TestRepeatedTermSameReplica(t *testing.T) {
	r := check(t, lines(concat(
		every("a", 7, 0, 200, "1"),
		every("b", 8, 300, 400, "2"),
		every("a", 7, 500, 600, "3"),
	)...))
	if len(r.Repeats) != 1 || len(r.Stale) != 6 {
		t.Fatalf("want a repeat of 7 and a's second run stale: %v", r)
	}
}

// Without run ids, consecutive lines of a replica with one term are one
// run; a replica's term changing starts another.
func TestIntervalsWithoutRun(t *testing.T) {
	r := check(t, lines(concat(
		every("a", 1, 0, 100, ""),
		every("a", 2, 200, 300, ""),
		every("b", 3, 400, 500, ""),
	)...))
	if !r.OK() || fmt.Sprint(r.Terms()) != "[1 2 3]" {
		t.Fatalf("%v", r)
	}
	// a writes with term 1 again after term 2: a new leadership (its
	// latest had term 2), which repeats term 1 and is stale.
	r = check(t, lines("a 1 0", "a 2 100", "a 1 200"))
	if len(r.Intervals) != 3 || len(r.Repeats) != 1 || len(r.Stale) != 1 {
		t.Fatalf("%v", r)
	}
}

func TestParseSkipsCutLines(t *testing.T) {
	text := lines("a 1 0 9", "a 1 20 9") + "a 1 17500\nb\nb x 12\n\nb 2 -5\n" + lines("b 2 40")
	ws, skipped, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	// "a 1 17500" parses (a time, very early): 4 writes; 4 lines skipped.
	if len(ws) != 4 || skipped != 4 {
		t.Fatalf("%d writes, %d skipped: %v", len(ws), skipped, ws)
	}
	if ws[0].Run != "9" || ws[3].Run != "" || ws[3].Replica != "b" {
		t.Fatalf("%v", ws)
	}
}

func TestFence(t *testing.T) {
	var f Fence
	for _, tc := range []struct {
		term int64
		ok   bool
	}{{5, true}, {5, true}, {4, false}, {9, true}, {6, false}, {9, true}} {
		if got := f.Write(Write{Term: tc.term}); got != tc.ok {
			t.Fatalf("term %d: accepted %v, want %v", tc.term, got, tc.ok)
		}
	}
	if h, ok := f.Highest(); !ok || h.Term != 9 {
		t.Fatalf("highest %v", h)
	}
}

// CheckIntervals takes intervals from another source (a guard's log)
// beside the writes.
func TestCheckIntervals(t *testing.T) {
	ivs := []Interval{
		{Replica: "b", Term: 2, Start: t0.Add(time.Second), End: t0.Add(3 * time.Second)},
		{Replica: "a", Term: 1, Start: t0, End: t0.Add(1500 * time.Millisecond)},
	}
	r := CheckIntervals(ivs, nil)
	if len(r.Overlaps) != 1 || r.Overlaps[0].Length != 500*time.Millisecond || r.Overlaps[0].A.Replica != "a" {
		t.Fatalf("%v", r.Overlaps)
	}
}
