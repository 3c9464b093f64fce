package sim

import (
	"bytes"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The store-wipe example over 20 seeds: a wipe and a deletion each cost a
// failover of about a lease (nobody creates the record before a lease has
// passed since they saw it gone) and the create's probation, never two
// leaders, never a term twice.
func TestStoreWipeScenario(t *testing.T) {
	sc := load(t, "store-wipe")
	ld := float64(sc.LeaseDuration) / 1e6
	rp := float64(sc.RetryPeriod) / 1e6
	for seed := uint64(1); seed <= 20; seed++ {
		r := run(t, sc, seed)
		if !r.Safe() || r.DualLeaderMS != 0 {
			t.Fatalf("seed %d: violations %+v", seed, r.Violations)
		}
		var causes []string
		for _, f := range r.Failovers {
			causes = append(causes, f.Cause)
			// A lease of hold, then the create's probation: a read gap
			// (two retry periods and a jittered one) and a renewal.
			if f.Unfinished || f.FailoverMS < ld-rp || f.FailoverMS > ld+(4.2+2)*rp {
				t.Errorf("seed %d: failover %+v, want one of about a lease and the create's probation (%vms + %vms)", seed, f, ld, 4.2*rp)
			}
		}
		if !slices.Equal(causes, []string{"store_wipe", "record_delete", "crash"}) {
			t.Errorf("seed %d: failovers caused by %v, want store_wipe, record_delete, crash", seed, causes)
		}
	}
	// The wipe restarts the revision counter: the record is created again
	// at version 1; a deletion keeps counting.
	_, trace, _ := outputs(t, sc, 1)
	created := regexp.MustCompile(`store: create by n\d -> holder="[^"]*" term=\d+ version=(\d+)`).FindAllSubmatch(trace, -1)
	var vers []int
	for _, m := range created {
		v, _ := strconv.Atoi(string(m[1]))
		vers = append(vers, v)
	}
	if len(vers) != 4 || vers[0] != 1 || vers[1] != 1 || vers[2] <= 1 || vers[3] != 1 {
		t.Errorf("versions of the records created: %v; want 1 at the start and after each wipe, more after the deletion", vers)
	}
	for _, want := range []string{"FAULT store_wipe", "FAULT record_delete", "the record was deleted"} {
		if !bytes.Contains(trace, []byte(want)) {
			t.Errorf("the trace lacks %q", want)
		}
	}
}

// The store-restore example over 20 seeds: a restore within the leader's
// own leadership costs about a retry period; one to before the last
// takeover costs about a lease (everyone saw the term go back), with a
// term higher than every one before.
func TestStoreRestoreScenario(t *testing.T) {
	sc := load(t, "store-restore")
	ld := float64(sc.LeaseDuration) / 1e6
	rp := float64(sc.RetryPeriod) / 1e6
	for seed := uint64(1); seed <= 20; seed++ {
		r := run(t, sc, seed)
		if !r.Safe() || r.DualLeaderMS != 0 {
			t.Fatalf("seed %d: violations %+v", seed, r.Violations)
		}
		if len(r.Failovers) != 3 {
			t.Fatalf("seed %d: failovers %+v, want three", seed, r.Failovers)
		}
		f := r.Failovers
		if f[0].Cause != "store_restore" || f[0].FailoverMS > 2*rp {
			t.Errorf("seed %d: first failover %+v, want a store_restore of at most two retry periods", seed, f[0])
		}
		if f[1].Cause != "crash" || f[2].Cause != "store_restore" || f[2].FailoverMS < ld-rp || f[2].FailoverMS > ld+3*rp {
			t.Errorf("seed %d: failovers %+v, want a crash, then a store_restore of about the lease", seed, f)
		}
	}
	_, trace, _ := outputs(t, sc, 1)
	if !bytes.Contains(trace, []byte("the store went back in time")) {
		t.Error("nobody noticed the store went back in time")
	}
	// The followers' watches see the restored record at once.
	if !regexp.MustCompile(`(?m)^ +200\.00\d+s n\d +watch: holder=`).Match(trace) {
		t.Error("no watcher was told of the restore at 200s")
	}
	// The store hands versions out again: a version written before the
	// restore names another record after it.
	seen := map[string]string{}
	reused := false
	for _, m := range regexp.MustCompile(`store: (?:update|create) by n\d -> holder="([^"]*)" term=(\d+) version=(\d+)`).FindAllSubmatch(trace, -1) {
		rec := string(m[1]) + "/" + string(m[2])
		if prev, ok := seen[string(m[3])]; ok && prev != rec {
			reused = true
		}
		seen[string(m[3])] = rec
	}
	if !reused {
		t.Error("no version was handed out twice after the restore")
	}
}

// A deleted record, and a wipe, while the followers poll instead of
// watching: the same lease-long failover, no violation.
func TestForgetWhilePolling(t *testing.T) {
	for _, name := range []string{"store-wipe", "store-restore"} {
		sc := load(t, name)
		sc.Watch = false
		for seed := uint64(1); seed <= 10; seed++ {
			r := run(t, sc, seed)
			if !r.Safe() || len(r.Failovers) != 3 {
				t.Fatalf("%s, polling, seed %d: failovers %+v, violations %+v", name, seed, r.Failovers, r.Violations)
			}
		}
	}
}

func TestForgetParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"faults:\n  - {at: 5s, store_restore: true}\n", "line 2: faults[0].by: store_restore needs by (how far back in time the store goes)"},
		{"faults:\n  - {at: 5s, store_restore: true, by: -3s}\n", "line 2: faults[0].by: must be positive"},
		{"faults:\n  - {at: 5s, store_wipe: true, by: 3s}\n", "line 2: faults[0].by: only goes with clock_jump or store_restore"},
		{"faults:\n  - {at: 5s, crash: n1, by: 3s}\n", "faults[0].by: only goes with clock_jump or store_restore"},
		{"faults:\n  - {at: 5s, record_delete: true, for: 3s}\n", "line 2: faults[0].for: does not go with record_delete"},
		{"faults:\n  - {at: 5s, store_wipe: n1}\n", `line 2: faults[0].store_wipe: want true or false, got "n1"`},
		{"faults:\n  - {at: 5s, store_wipe: false}\n", "line 2: faults[0].store_wipe: want true (it happens to the store"},
		{"faults:\n  - {at: 5s, store_wipe: true, record_delete: true}\n", "faults[0].record_delete: a fault does one thing"},
		{"faults:\n  - {at: 5s, store_restore: true, by: 2000h}\n", "faults[0].by: must be within"},
		{"random_faults: {every: 1m, kinds: [crash], max_down: 5s, max_back: 30s}\n", "line 1: random_faults.max_back: only goes with store_restore among the kinds"},
		{"random_faults: {every: 1m, kinds: [store_restore], max_down: 5s, max_back: 0s}\n", "random_faults.max_back: must be between 0 and"},
		{"random_faults: {every: 1m, kinds: [store_forget], max_down: 5s}\n", "store_wipe, store_restore, record_delete"},
	} {
		_, err := ParseScenario([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseScenario(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
	sc, err := ParseScenario([]byte("faults:\n  - {at: 5s, store_restore: true, by: 30s}\n  - {at: 6s, store_wipe: true}\n  - {at: 7s, record_delete: true}\n" +
		"random_faults: {every: 1m, kinds: [store_restore, store_wipe, record_delete], max_down: 5s, max_back: 30s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f := sc.Faults; f[0].Kind != StoreRestore || f[0].By != 30*time.Second || f[1].Kind != StoreWipe || f[2].Kind != RecordDelete || len(f[2].Targets) != 0 {
		t.Fatalf("faults %+v", f)
	}
	if sc.Random.MaxBack != 30*time.Second {
		t.Fatalf("random faults %+v", sc.Random)
	}
	for _, tc := range []struct {
		f    Fault
		want string
	}{
		{Fault{At: 1, Kind: StoreRestore}, "Faults[0].By (0s) must be from 0 to"},
		{Fault{At: 1, Kind: StoreWipe, Targets: []string{"n1"}}, "Faults[0].Targets: store_wipe takes none"},
		{Fault{At: 1, Kind: RecordDelete, For: time.Second}, "Faults[0].For does not go with record_delete"},
		{Fault{At: 1, Kind: StoreWipe, By: time.Second}, "Faults[0].By only goes with clock_jump or store_restore"},
	} {
		sc := DefaultScenario()
		sc.Clocks = make([]Clock, sc.Nodes)
		for i := range sc.Clocks {
			sc.Clocks[i].Rate = 1
		}
		sc.Faults = []Fault{tc.f}
		if err := sc.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.f, err, tc.want)
		}
	}
}
