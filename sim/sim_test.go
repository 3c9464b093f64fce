package sim

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.golden.json from the example scenarios")

func load(t testing.TB, name string) *Scenario {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "docs", "scenarios", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ParseScenario(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return sc
}

func examples(t testing.TB) []string {
	files, _ := filepath.Glob("../docs/scenarios/*.yaml")
	if len(files) < 9 {
		t.Fatalf("found %d example scenarios, want at least 9", len(files))
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".yaml"))
	}
	return names
}

// run validates sc (as every scenario built in code must be) and runs it.
func run(t testing.TB, sc *Scenario, seed uint64) *Result {
	t.Helper()
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	r, err := Run(sc, Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// outputs validates sc, runs it once and returns its JSON, trace and SVG.
func outputs(t testing.TB, sc *Scenario, seed uint64) (js, trace, svg []byte) {
	t.Helper()
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	var tr, sv bytes.Buffer
	r, err := Run(sc, Options{Seed: seed, Trace: &tr, Timeline: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteSVG(&sv); err != nil {
		t.Fatal(err)
	}
	js, err = json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return js, tr.Bytes(), sv.Bytes()
}

// Same scenario and seed: the same bytes; another seed: other bytes.
func TestDeterminism(t *testing.T) {
	for _, name := range examples(t) {
		t.Run(name, func(t *testing.T) {
			sc := load(t, name)
			j1, t1, s1 := outputs(t, sc, 7)
			j2, t2, s2 := outputs(t, sc, 7)
			if !bytes.Equal(j1, j2) || !bytes.Equal(t1, t2) || !bytes.Equal(s1, s2) {
				t.Fatal("two runs with seed 7 differ")
			}
			_, t3, _ := outputs(t, sc, 8)
			if bytes.Equal(t1, t3) {
				t.Fatal("seeds 7 and 8 gave the same trace")
			}
		})
	}
}

// The example scenarios' results, as JSON, against golden files.
func TestExamplesGolden(t *testing.T) {
	for _, name := range examples(t) {
		t.Run(name, func(t *testing.T) {
			sc := load(t, name)
			r := run(t, sc, sc.Seed)
			got, _ := json.MarshalIndent(r, "", "  ")
			path := filepath.Join("testdata", name+".golden.json")
			if *rewrite {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./sim -rewrite)", err)
			}
			if string(want) != string(got)+"\n" {
				t.Errorf("%s changed; diff testdata against `go test ./sim -rewrite` output if deliberate", path)
			}
		})
	}
}

// The outcomes written next to each example hold, over several seeds.
func TestExampleOutcomes(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		for _, name := range []string{"leader-crash", "graceful-stop", "partition-leader", "lossy-network",
			"wall-clock-jump", "rate-skew-within-bound", "random-chaos", "shared-identity", "etcd-profile", "store-outage"} {
			if r := run(t, load(t, name), seed); !r.Safe() || r.DualLeaderMS != 0 {
				t.Errorf("%s seed %d: violations %+v", name, seed, r.Violations)
			}
		}
		for _, name := range []string{"rate-skew-beyond-bound", "long-pause"} {
			r := run(t, load(t, name), seed)
			if r.DualLeaderMS == 0 || r.FencedWrites.Rejected == 0 {
				t.Errorf("%s seed %d: dual leadership %vms, fenced writes %+v; want split brain caught by fencing",
					name, seed, r.DualLeaderMS, r.FencedWrites)
			}
		}
		if r := run(t, load(t, "wall-clock-jump"), seed); len(r.Failovers) != 0 {
			t.Errorf("wall-clock-jump seed %d: %d failovers, want none", seed, len(r.Failovers))
		}
	}
}

// Crash failover with polling followers lands in [LD − RP, LD + 2.2·RP]
// after the crash.
func TestCrashFailoverBounds(t *testing.T) {
	for _, watch := range []bool{false, true} {
		sc := load(t, "leader-crash")
		sc.Watch = watch
		lo := float64(sc.LeaseDuration-sc.RetryPeriod) / 1e6
		hi := float64(sc.LeaseDuration+sc.RetryPeriod*22/10) / 1e6
		for seed := uint64(1); seed <= 100; seed++ {
			r := run(t, sc, seed)
			if len(r.Failovers) != 1 || r.Failovers[0].Cause != "crash" {
				t.Fatalf("watch=%v seed %d: failovers %+v, want one crash", watch, seed, r.Failovers)
			}
			if f := r.Failovers[0].FailoverMS; f < lo || f > hi {
				t.Errorf("watch=%v seed %d: crash failover %vms outside [%v, %v]", watch, seed, f, lo, hi)
			}
		}
	}
}

// A graceful stop hands over within a few network delays with watch on:
// the release, the notification, a Get (a write never follows a watch
// directly), the takeover write and its reply.
func TestGracefulStopIsFast(t *testing.T) {
	sc := load(t, "graceful-stop")
	limit := float64(7*(sc.Latency+sc.Jitter)) / 1e6
	for seed := uint64(1); seed <= 100; seed++ {
		r := run(t, sc, seed)
		if len(r.Failovers) != 1 || r.Failovers[0].Cause != "stop" || r.Failovers[0].FailoverMS > limit {
			t.Fatalf("seed %d: failovers %+v, want one stop handover within %vms", seed, r.Failovers, limit)
		}
	}
}

// A partitioned leader stops leading before anyone else starts.
func TestPartitionedLeaderStopsFirst(t *testing.T) {
	sc := load(t, "partition-leader")
	for seed := uint64(1); seed <= 100; seed++ {
		r := run(t, sc, seed)
		if r.DualLeaderMS != 0 || len(r.Failovers) != 1 || r.Failovers[0].LeaderlessMS <= 0 {
			t.Fatalf("seed %d: dual %vms, failovers %+v; want one failover with a leaderless gap", seed, r.DualLeaderMS, r.Failovers)
		}
	}
}

// Nodes sharing an identity never lead at once, and a crashed leader that
// comes back as a new process with its identity waits out its own lease.
func TestSharedIdentity(t *testing.T) {
	sc := load(t, "shared-identity")
	if sc.Identities[0] != "worker" || sc.Identities[1] != "worker" || sc.Identities[2] != "n3" {
		t.Fatalf("identities %q", sc.Identities)
	}
	lo := float64(sc.LeaseDuration-sc.RetryPeriod) / 1e6
	for seed := uint64(1); seed <= 50; seed++ {
		r := run(t, sc, seed)
		if r.DualLeaderMS != 0 || !r.Safe() {
			t.Fatalf("seed %d: dual leadership %vms, violations %+v", seed, r.DualLeaderMS, r.Violations)
		}
		if len(r.Failovers) == 0 || r.Failovers[0].Cause != "crash" || r.Failovers[0].FailoverMS < lo {
			t.Fatalf("seed %d: failovers %+v; want a crash failover of about the lease (at least %vms)", seed, r.Failovers, lo)
		}
	}
}

// Leader work that takes time to return once told to stop delays the
// release by that long; work that outlasts RenewDeadline is not waited for
// and the lock is not released: the next leader waits out the lease.
func TestWorkStop(t *testing.T) {
	sc := load(t, "graceful-stop")
	sc.WorkStop = 3 * time.Second
	r := run(t, sc, 1)
	if len(r.Failovers) != 1 || r.Failovers[0].Cause != "stop" || r.Failovers[0].FailoverMS < 3000 || r.Failovers[0].FailoverMS > 3100 {
		t.Fatalf("work_stop 3s: failovers %+v, want one stop handover after about 3s", r.Failovers)
	}
	sc.WorkStop = sc.RenewDeadline + time.Second
	r = run(t, sc, 1)
	lo := float64(sc.LeaseDuration-sc.RetryPeriod) / 1e6
	if len(r.Failovers) != 1 || r.Failovers[0].FailoverMS < lo || r.DualLeaderMS != 0 {
		t.Fatalf("work_stop past the renew deadline: failovers %+v, dual %vms; want a failover of about the lease", r.Failovers, r.DualLeaderMS)
	}
}

func TestRandomFaultsAreDrawnFromTheSeed(t *testing.T) {
	sc := load(t, "random-chaos")
	a, b := run(t, sc, 3), run(t, sc, 4)
	if len(a.Failovers) == 0 || a.Transitions == b.Transitions && a.Events == b.Events {
		t.Fatalf("random faults look absent or seed-independent: %d/%d transitions, %d/%d events",
			a.Transitions, b.Transitions, a.Events, b.Events)
	}
}

func TestStopWithoutRestartLeavesOthers(t *testing.T) {
	sc := load(t, "graceful-stop")
	sc.Faults = append(sc.Faults, Fault{At: 90 * time.Second, Kind: Stop, Targets: []string{Leader}})
	r := run(t, sc, 1)
	if len(r.Failovers) != 2 || r.Failovers[1].To == r.Failovers[1].From {
		t.Fatalf("failovers %+v, want two handovers to other nodes", r.Failovers)
	}
}

// Every seed samples the phase: nodes start at random instants within a
// RetryPeriod, so a crash at a fixed time meets the leader's renewal cycle
// anywhere and --runs gives the real spread of failover times (about
// [LD − RP, LD] with a watching follower). With start_spread: 0s every
// seed meets it at the same point.
func TestPhaseIsSampled(t *testing.T) {
	spread := func(sc *Scenario) (lo, hi float64) {
		lo, hi = 1e18, 0
		for seed := uint64(1); seed <= 50; seed++ {
			r := run(t, sc, seed)
			if len(r.Failovers) != 1 {
				t.Fatalf("seed %d: failovers %+v", seed, r.Failovers)
			}
			lo, hi = min(lo, r.Failovers[0].FailoverMS), max(hi, r.Failovers[0].FailoverMS)
		}
		return lo, hi
	}
	sc := load(t, "leader-crash")
	rp := float64(sc.RetryPeriod) / 1e6
	if lo, hi := spread(sc); hi-lo < rp/2 {
		t.Fatalf("crash failovers over 50 seeds span [%v, %v]ms: the phase is not sampled (RetryPeriod %vms)", lo, hi, rp)
	}
	// The phase is uniform: a watching follower takes over LD after the
	// last renewal it saw, so the failovers spread evenly over [LD − RP,
	// LD] (plus a few network delays): their quartiles sit at a quarter,
	// a half and three quarters of it.
	var fs []float64
	for seed := uint64(1); seed <= 400; seed++ {
		fs = append(fs, run(t, sc, seed).Failovers[0].FailoverMS)
	}
	slices.Sort(fs)
	ld := float64(sc.LeaseDuration) / 1e6
	for _, q := range []float64{0.25, 0.5, 0.75} {
		want := ld - rp + q*rp
		if got := fs[int(q*float64(len(fs)))]; math.Abs(got-want) > rp/10 {
			t.Errorf("crash failover quantile %v over 400 seeds: %vms, want about %vms (a uniform phase)", q, got, want)
		}
	}
	sc.StartSpread = 0
	if lo, hi := spread(sc); hi-lo > rp/10 {
		t.Fatalf("start_spread 0: failovers span [%v, %v]ms, want one point", lo, hi)
	}
	// fault_jitter moves the fault itself.
	sc = load(t, "leader-crash")
	sc.FaultJitter = 10 * time.Second
	first := run(t, sc, 1).Failovers[0].AtMS
	moved := false
	for seed := uint64(2); seed <= 10 && !moved; seed++ {
		moved = run(t, sc, seed).Failovers[0].AtMS != first
	}
	if !moved {
		t.Fatal("fault_jitter: the crash happened at the same instant in 10 seeds")
	}
}

// A crashed node comes back as a new pod (a new identity) by default, or
// as the same identity with restart_identity: same; either way it is a new
// process and waits out the lease it left behind.
func TestRestartIdentity(t *testing.T) {
	for _, tc := range []struct {
		mode, want string
	}{{"", "start as n1~1"}, {"new", "start as n1~1"}, {"same", "start as n1\n"}} {
		mod := ""
		if tc.mode != "" {
			mod = ", restart_identity: " + tc.mode
		}
		sc, err := ParseScenario([]byte("nodes: 2\nduration: 2m\nstart_spread: 0s\nlease: {duration: 15s, renew_deadline: 10s, retry_period: 2s}\n" +
			"faults:\n  - {at: 0s, pause: n2, for: 1s}\n  - {at: 30s, crash: n1, restart_after: 2s" + mod + "}\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, trace, _ := outputs(t, sc, 1)
		if !bytes.Contains(trace, []byte(tc.want)) {
			t.Errorf("restart_identity %q: the trace lacks %q", tc.mode, tc.want)
		}
		r := run(t, sc, 1)
		lo := float64(sc.LeaseDuration-sc.RetryPeriod) / 1e6
		if len(r.Failovers) != 1 || r.Failovers[0].FailoverMS < lo {
			t.Errorf("restart_identity %q: failovers %+v, want one of about the lease", tc.mode, r.Failovers)
		}
	}
	if _, err := ParseScenario([]byte("faults:\n  - {at: 1s, partition: n1, restart_identity: new}\n")); err == nil ||
		!strings.Contains(err.Error(), "only goes with crash or stop") {
		t.Errorf("restart_identity on a partition: %v", err)
	}
	if _, err := ParseScenario([]byte("faults:\n  - {at: 1s, crash: n1, restart_identity: other}\n")); err == nil ||
		!strings.Contains(err.Error(), "want same or new") {
		t.Errorf("restart_identity other: %v", err)
	}
}

// The summary of many runs splits failovers by cause and gives the
// distribution of dual-leadership windows; folding runs one at a time gives
// the same as summarising them all at once.
func TestSummaryByCause(t *testing.T) {
	var sum Summary
	var runs []*Result
	for seed := uint64(1); seed <= 20; seed++ {
		r := run(t, load(t, "random-chaos"), seed)
		runs = append(runs, r)
		sum.Add(r)
	}
	a := sum.Aggregate()
	n := 0
	for cause, st := range a.ByCause {
		n += st.Count
		if st.FailoverMS.N > st.Count || st.FailoverMS.P50 > st.FailoverMS.P90 || st.FailoverMS.P90 > st.FailoverMS.Max {
			t.Errorf("%s: %+v", cause, st)
		}
	}
	if n != a.Failovers || len(a.ByCause) < 3 {
		t.Fatalf("by cause %+v adds up to %d of %d failovers", a.ByCause, n, a.Failovers)
	}
	// Graceful stops hand over in milliseconds, crashes after about the
	// lease: one mixed percentile would hide both.
	if st, ct := a.ByCause["stop"], a.ByCause["crash"]; st.FailoverMS.P50 > 100 || ct.FailoverMS.P50 < 10_000 {
		t.Fatalf("stop p50 %vms, crash p50 %vms", st.FailoverMS.P50, ct.FailoverMS.P50)
	}
	if b := Summarize(runs); b.Failovers != a.Failovers || b.ByCause["crash"] != a.ByCause["crash"] {
		t.Fatalf("Summarize and Summary disagree: %+v vs %+v", b.ByCause, a.ByCause)
	}
	var dual Summary
	for seed := uint64(1); seed <= 5; seed++ {
		dual.Add(run(t, load(t, "long-pause"), seed))
	}
	if d := dual.Aggregate().DualWindowsMS; d.N == 0 || d.P50 <= 0 || d.Max < d.P50 {
		t.Fatalf("long-pause dual-leadership windows %+v", d)
	}
}

// The leader's work writes to the fenced resource on its own schedule, at
// random instants, not right after each renewal: a deposed leader's writes
// can land anywhere in its last lease, where the fence has to catch them.
// A write that lands after a graceful release but before the next leader
// wrote is late, not stale: no violation.
func TestFencedWritesOwnSchedule(t *testing.T) {
	sc := load(t, "leader-crash")
	_, trace, _ := outputs(t, sc, 1)
	rp := sc.RetryPeriod.Seconds()
	var phases []float64
	for _, l := range strings.Split(string(trace), "\n") {
		if !strings.Contains(l, "fenced write") {
			continue
		}
		var at float64
		// The first leadership only (the crash is at 60s).
		if _, err := fmt.Sscanf(strings.TrimSpace(l), "%fs", &at); err == nil && at < 60 {
			phases = append(phases, math.Mod(at, rp))
		}
	}
	if len(phases) < 15 {
		t.Fatalf("%d fenced writes in the trace", len(phases))
	}
	lo, hi := rp, 0.0
	for _, p := range phases {
		lo, hi = min(lo, p), max(hi, p)
	}
	if hi-lo < rp/2 {
		t.Fatalf("fenced writes fall within [%v, %v)s of every %vs retry period: in step with the renewals", lo, hi, rp)
	}
	sc = load(t, "graceful-stop")
	sc.Jitter = 3 * time.Second // writes overtaking each other
	late := int64(0)
	for seed := uint64(1); seed <= 30; seed++ {
		r := run(t, sc, seed)
		if !r.Safe() || r.FencedWrites.StaleAccepted != 0 {
			t.Fatalf("seed %d: violations %+v, fenced %+v", seed, r.Violations, r.FencedWrites)
		}
		late += r.FencedWrites.LateAccepted
	}
	t.Logf("late accepted writes over 30 seeds: %d", late)
}

// A stalled elector (leasehold stopped, its guard and command running):
// with the watchdog the work stops at the lease deadline and nobody else
// leads before; without it, the work goes on past the next leader's start.
func TestStallAndWatchdog(t *testing.T) {
	sc := load(t, "stalled-run")
	for seed := uint64(1); seed <= 30; seed++ {
		r := run(t, sc, seed)
		if !r.Safe() || r.DualLeaderMS != 0 || len(r.Failovers) != 1 || r.Failovers[0].Cause != "stall" {
			t.Fatalf("watchdog, seed %d: dual %vms, failovers %+v, violations %+v", seed, r.DualLeaderMS, r.Failovers, r.Violations)
		}
	}
	sc.Watchdog = false
	for seed := uint64(1); seed <= 10; seed++ {
		if r := run(t, sc, seed); r.DualLeaderMS == 0 {
			t.Fatalf("no watchdog, seed %d: no dual leadership from a 20s stall past a 15s lease", seed)
		}
	}
}
