package sim

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, src string) *Scenario {
	t.Helper()
	sc, err := ParseScenario([]byte(src))
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	return sc
}

func traceOf(t *testing.T, sc *Scenario, seed uint64) string {
	t.Helper()
	_, tr, _ := outputs(t, sc, seed)
	return string(tr)
}

func TestParseTimingErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"store: mysql\n", `line 1: store: no timing profile "mysql" (want one of consul, etcd, kube, memory)`},
		{"nodes: 2\nstore: [etcd]\n", "line 2: store:"},
		{"network:\n  tail: {dist: weibull}\n", `line 2: network.tail.dist: want lognormal or pareto, got "weibull"`},
		{"network:\n  tail: {p: 0.1}\n", "line 2: network.tail.dist: missing"},
		{"network:\n  tail: {dist: lognormal, median: 1ms}\n", "line 2: network.tail.sigma: missing (a lognormal tail needs median and sigma)"},
		{"network:\n  tail:\n    dist: pareto\n    min: 1ms\n    alpha: 2\n    sigma: 1\n", "line 6: network.tail.sigma: does not go with a pareto tail"},
		{"network: {tail: {dist: pareto, min: 1ms, alpha: 0}}\n", "network.tail.alpha: want a number from 0.1 to 100"},
		{"network: {tail: {dist: pareto, min: 0s, alpha: 1}}\n", "network.tail.min: must be between 0 and 24h0m0s, got 0s"},
		{"network: {tail: {dist: pareto, min: 1ms, alpha: 1, p: 2}}\n", "network.tail.p: want a number from"},
		{"network: {tail: {dist: pareto, min: 1ms, alpha: 1, bogus: 2}}\n", "network.tail.bogus: unknown key"},
		{"network: {request_latency: -1ms}\n", "line 1: network.request_latency: must not be negative"},
		{"network: {reply_latency: 25h}\n", "line 1: network.reply_latency: must be at most 24h0m0s"},
		{"service: {parallel: 0}\n", "line 1: service.parallel: want a whole number from 1 to 1000"},
		{"service:\n  write: -1ms\n", "line 2: service.write: must not be negative"},
		{"service: {read: 25h}\n", "service.read: must be at most 24h0m0s"},
		{"service: {watch_lag: x}\n", `service.watch_lag: "x" is not a duration`},
		{"service: {stale_reads: -1s}\n", "service.stale_reads: must not be negative"},
		{"service: {bogus: 1}\n", "line 1: service.bogus: unknown key"},
		{"service: 5ms\n", "line 1: service:"},
		{"work_start: 25h\n", "line 1: work_start: must be at most 24h0m0s"},
		{"work_sigma: 4\n", "line 1: work_sigma: want a number from 0 to 3"},
		{"faults:\n  - {at: 5s, latency_spike: all, for: 5s}\n", "line 2: faults[0].latency: latency_spike needs latency"},
		{"faults:\n  - {at: 5s, latency_spike: all, latency: 1s}\n", "line 2: faults[0].for: latency_spike needs for"},
		{"faults:\n  - {at: 5s, latency_spike: n7, latency: 1s, for: 1s}\n", `faults[0].latency_spike: no node "n7"`},
		{"faults:\n  - {at: 5s, crash: n1, latency: 1s}\n", "faults[0].latency: only goes with latency_spike"},
		{"faults:\n  - {at: 5s, crash: n1, lose: replies}\n", "line 2: faults[0].lose: only goes with partition"},
		{"faults:\n  - {at: 5s, partition: n1, lose: sideways}\n", "line 2: faults[0].lose: want requests, replies or both"},
		{"faults:\n  - {at: 5s, store_down: false, for: 1s}\n", "line 2: faults[0].store_down: want true"},
		{"faults:\n  - {at: 5s, store_down: true}\n", "faults[0].for: store_down needs for"},
		{"faults:\n  - {at: 5s, store_down: true, heal_after: 1s}\n", "faults[0].for: store_down needs for"},
		{"faults:\n  - {at: 5s, store_down: true, for: 1s, crash: n1}\n", "faults[0].crash: a fault does one thing"},
		{"random_faults: {every: 1m, kinds: [latency_spike], max_down: 5s}\n", "random_faults.kinds: latency_spike is not drawn at random"},
	} {
		_, err := ParseScenario([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseScenario(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestValidateTiming(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Scenario)
		want string
	}{
		{func(s *Scenario) { s.ReplyLatency = 25 * time.Hour }, "ReplyLatency (25h0m0s)"},
		{func(s *Scenario) { s.ReadService = -1 }, "ReadService (-1ns)"},
		{func(s *Scenario) { s.WriteService = -1 }, "WriteService (-1ns)"},
		{func(s *Scenario) { s.WatchLag = -1 }, "WatchLag (-1ns)"},
		{func(s *Scenario) { s.StaleReads = -1 }, "StaleReads (-1ns)"},
		{func(s *Scenario) { s.WorkStart = -1 }, "WorkStart (-1ns)"},
		{func(s *Scenario) { s.Parallel = -1 }, "Parallel (-1)"},
		{func(s *Scenario) { s.WorkSigma = math.NaN() }, "WorkSigma (NaN)"},
		{func(s *Scenario) { s.Store = "mysql" }, `Store: no timing profile "mysql"`},
		{func(s *Scenario) { s.Tail = &Tail{Dist: "cauchy"} }, `Tail.Dist "cauchy"`},
		{func(s *Scenario) { s.Tail = &Tail{Dist: "lognormal", Median: time.Millisecond} }, "Sigma from 0.01 to 10"},
		{func(s *Scenario) { s.Tail = &Tail{Dist: "pareto", Min: time.Millisecond, Alpha: 1, P: 1.5} }, "Tail.P (1.5)"},
		{func(s *Scenario) { s.Tail = &Tail{Dist: "pareto", Min: time.Millisecond, Alpha: 1, Max: -1} }, "Tail.Max (-1ns)"},
		{func(s *Scenario) {
			s.Faults = []Fault{{At: time.Second, Kind: StoreDown, Targets: []string{"n1"}, For: time.Second}}
		}, "Faults[0].Targets: store_down takes none"},
		{func(s *Scenario) { s.Faults = []Fault{{At: time.Second, Kind: StoreDown}} }, "Faults[0].For: a store_down needs a length"},
		{func(s *Scenario) {
			s.Faults = []Fault{{At: time.Second, Kind: Crash, Targets: []string{"n1"}, Latency: time.Second}}
		}, "Faults[0].Latency only goes with latency_spike"},
		{func(s *Scenario) {
			s.Faults = []Fault{{At: time.Second, Kind: Crash, Targets: []string{"n1"}, Lose: LoseReplies}}
		}, "Faults[0].Lose only goes with partition"},
		{func(s *Scenario) {
			s.Faults = []Fault{{At: time.Second, Kind: Partition, Targets: []string{"n1"}, Lose: "up"}}
		}, `Faults[0].Lose "up"`},
		{func(s *Scenario) {
			s.Faults = []Fault{{At: time.Second, Kind: Crash, Targets: []string{All}}}
		}, `Faults[0].Targets[0]: no node "all"`},
		{func(s *Scenario) {
			s.Random = &RandomFaults{Every: time.Minute, MaxDown: time.Second, Kinds: []FaultKind{LatencySpike}}
		}, "Random.Kinds[0]: latency_spike cannot be drawn at random"},
	} {
		sc := DefaultScenario()
		sc.Clocks = make([]Clock, sc.Nodes)
		for i := range sc.Clocks {
			sc.Clocks[i].Rate = 1
		}
		tc.mod(&sc)
		err := sc.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error saying %q", err, tc.want)
		}
	}
	// What Validate accepts runs.
	sc := DefaultScenario()
	sc.Clocks = make([]Clock, sc.Nodes)
	for i := range sc.Clocks {
		sc.Clocks[i].Rate = 1
	}
	sc.Duration = time.Minute
	sc.Tail = &Tail{Dist: "pareto", Min: time.Millisecond, Alpha: 1.5, P: 0.1}
	sc.Faults = []Fault{{At: 20 * time.Second, Kind: StoreDown, For: time.Second},
		{At: 30 * time.Second, Kind: LatencySpike, Targets: []string{All}, For: time.Second, Latency: 100 * time.Millisecond}}
	run(t, &sc, 1)
}

// store: selects a profile; the keys the file gives override it, each
// direction of the network on its own.
func TestProfileOverride(t *testing.T) {
	etcd := Profiles["etcd"]
	sc := parse(t, "store: etcd\nwork_stop: 1s\nnetwork: {reply_latency: 3ms}\nservice: {parallel: 7}\n")
	if sc.Store != "etcd" || sc.Latency != etcd.RequestLatency || sc.ReplyLatency != 3*time.Millisecond ||
		sc.Jitter != etcd.Jitter || sc.ReadService != etcd.ReadService || sc.WriteService != etcd.WriteService ||
		sc.Parallel != 7 || sc.WatchLag != etcd.WatchLag || sc.WorkStart != etcd.WorkStart || sc.WorkStop != time.Second || sc.WorkSigma != etcd.WorkSigma {
		t.Errorf("store: etcd with overrides: %+v, profile %+v", sc, etcd)
	}
	// The order of the keys does not matter.
	sc2 := parse(t, "network: {reply_latency: 3ms}\nwork_stop: 1s\nservice: {parallel: 7}\nstore: etcd\n")
	if !equalJSON(t, sc, sc2) {
		t.Errorf("the key order changed the scenario:\n%+v\n%+v", sc, sc2)
	}
	// network.latency sets both directions, the profile neither.
	sc = parse(t, "store: kube\nnetwork: {latency: 2ms, request_latency: 5ms}\n")
	if sc.Latency != 5*time.Millisecond || sc.ReplyLatency != 2*time.Millisecond || sc.WriteService != Profiles["kube"].WriteService {
		t.Errorf("latency + request_latency over kube: request %v reply %v", sc.Latency, sc.ReplyLatency)
	}
	// Without a profile, request_latency alone leaves the reply at the default.
	sc = parse(t, "network: {request_latency: 5ms}\n")
	if sc.Latency != 5*time.Millisecond || sc.ReplyLatency != time.Millisecond {
		t.Errorf("request_latency alone: request %v reply %v", sc.Latency, sc.ReplyLatency)
	}
	// UseProfile does for a scenario built in code what store: does.
	code := DefaultScenario()
	if err := code.UseProfile("etcd"); err != nil {
		t.Fatal(err)
	}
	file := parse(t, "store: etcd\n")
	file.Clocks, file.Identities = nil, nil
	if !equalJSON(t, &code, file) {
		t.Errorf("UseProfile(etcd) %+v differs from store: etcd %+v", code, *file)
	}
	if err := code.UseProfile("mysql"); err == nil {
		t.Error("UseProfile(mysql) succeeded")
	}
	for name, p := range Profiles {
		if p.Parallel < 1 || p.WorkStart <= 0 || p.WorkStop <= 0 {
			t.Errorf("profile %s: %s", name, p)
		}
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// One node, no jitter: every instant of the acquisition follows from the
// request and reply latency and the service times.
func TestRequestReplyAndServiceTime(t *testing.T) {
	base := "nodes: 1\nduration: 20s\nstart_spread: 0s\nwatch: false\n"
	// Get: sent 0, arrives 1ms, served by 3ms, reply at 7ms. A fresh
	// candidate then waits a lease (15s) from that first read before it
	// acquires: Get sent 15.007s, arrives 15.008s, served by 15.010s, reply
	// at 15.014s. Create: sent 15.014s, arrives 15.015s, served by 15.020s
	// (committed), reply at 15.024s (it leads after the create's
	// probation, past the end of this run).
	tr := traceOf(t, parse(t, base+"network: {request_latency: 1ms, reply_latency: 4ms}\nservice: {read: 2ms, write: 5ms}\n"), 1)
	for _, want := range []string{"0.003000s --   store: get by n1", "15.010000s --   store: get by n1", "15.020000s --   store: create by n1",
		"15.024000s n1   reply version=1"} {
		if !strings.Contains(tr, want) {
			t.Errorf("request 1ms, reply 4ms: the trace lacks %q:\n%s", want, head(tr, 12))
		}
	}
	// The other way round: the same round trips, the commit 3ms later.
	tr = traceOf(t, parse(t, base+"network: {request_latency: 4ms, reply_latency: 1ms}\nservice: {read: 2ms, write: 5ms}\n"), 1)
	for _, want := range []string{"0.006000s --   store: get by n1", "15.013000s --   store: get by n1", "15.023000s --   store: create by n1",
		"15.024000s n1   reply version=1"} {
		if !strings.Contains(tr, want) {
			t.Errorf("request 4ms, reply 1ms: the trace lacks %q:\n%s", want, head(tr, 12))
		}
	}
}

func head(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// The store serves Parallel requests at once: two Gets that arrive
// together are served one after the other with parallel 1, side by side
// with 2; and a store too slow for its load makes the leader's renewals
// time out.
func TestServiceQueue(t *testing.T) {
	base := "nodes: 2\nduration: 10s\nstart_spread: 0s\nwatch: false\nnetwork: {latency: 1ms}\n"
	sc := parse(t, base+"service: {read: 2ms, write: 2ms, parallel: 1}\n")
	tr := traceOf(t, sc, 1)
	for _, want := range []string{"0.003000s --   store: get by n1", "0.005000s --   store: get by n2"} {
		if !strings.Contains(tr, want) {
			t.Errorf("parallel 1: the trace lacks %q:\n%s", want, head(tr, 12))
		}
	}
	r := run(t, sc, 1)
	if r.Store.Queued == 0 || r.Store.MaxWaitMS < 2 || r.Store.Served == 0 {
		t.Errorf("parallel 1: store %+v, want queued requests waiting 2ms", r.Store)
	}
	tr = traceOf(t, parse(t, base+"service: {read: 2ms, write: 2ms, parallel: 2}\n"), 1)
	if !strings.Contains(tr, "0.003000s --   store: get by n2") {
		t.Errorf("parallel 2: n2's Get was not served with n1's:\n%s", head(tr, 12))
	}

	// 40 polling nodes, RetryPeriod 1s: 40 Gets a second. At 10ms each the
	// store keeps up; at 100ms (4 s of work a second) its line grows until
	// the leader's renewals, waiting behind the Gets, miss their deadline;
	// 8 at a time it keeps up again.
	load := func(read string, parallel int) *Result {
		src := "nodes: 40\nduration: 2m\nwatch: false\nnetwork: {latency: 1ms}\n" +
			"lease: {duration: 4s, renew_deadline: 3s, retry_period: 1s}\n" +
			"service: {read: " + read + ", write: 1ms, parallel: " + strconv.Itoa(parallel) + "}\n"
		return run(t, parse(t, src), 1)
	}
	if r := load("10ms", 1); len(r.Failovers) != 0 || r.Store.Queued == 0 {
		t.Errorf("10ms reads: %d failovers, store %+v; want queueing and no failover", len(r.Failovers), r.Store)
	}
	// (Since a fresh candidate waits a lease after its first read, the
	// line may grow before anyone leads: then nobody ever does.)
	if r := load("100ms", 1); len(r.Failovers) == 0 && r.Transitions > 0 || r.Store.MaxWaitMS < 3000 {
		t.Errorf("100ms reads, one at a time: %d failovers, %d transitions, store %+v; want an overloaded store and failovers (or no leader at all)",
			len(r.Failovers), r.Transitions, r.Store)
	}
	if r := load("100ms", 8); len(r.Failovers) != 0 {
		t.Errorf("100ms reads, 8 at a time: %d failovers, want none", len(r.Failovers))
	}
}

// The heavy tails have the shape they claim.
func TestTailDraws(t *testing.T) {
	s := &sim{sc: &Scenario{}, rng: rand.New(rand.NewPCG(1, 2))}
	draws := func(tl *Tail, n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = s.tailDraw(tl)
		}
		slices.Sort(out)
		return out
	}
	ln := draws(&Tail{Dist: "lognormal", Median: 10 * time.Millisecond, Sigma: 1}, 20000)
	if m := ln[len(ln)/2]; m < 9500*time.Microsecond || m > 10500*time.Microsecond {
		t.Errorf("lognormal median 10ms, sigma 1: sample median %v", m)
	}
	// e^(1.2816) ≈ 3.6: the p90 of a lognormal with sigma 1 is 3.6 × the median.
	if p90 := ln[len(ln)*9/10]; p90 < 33*time.Millisecond || p90 > 39*time.Millisecond {
		t.Errorf("lognormal p90 %v, want about 36ms", p90)
	}
	pa := draws(&Tail{Dist: "pareto", Min: time.Millisecond, Alpha: 1.5}, 20000)
	if pa[0] < time.Millisecond {
		t.Errorf("pareto below its minimum: %v", pa[0])
	}
	// P(X > 10·min) = 10^-1.5 ≈ 3.2%.
	over := 0
	for _, d := range pa {
		if d > 10*time.Millisecond {
			over++
		}
	}
	if f := float64(over) / float64(len(pa)); math.Abs(f-0.0316) > 0.006 {
		t.Errorf("pareto alpha 1.5: %.4f of draws above 10 × min, want about 0.0316", f)
	}
	capped := draws(&Tail{Dist: "pareto", Min: time.Millisecond, Alpha: 0.2, Max: 50 * time.Millisecond}, 2000)
	if capped[len(capped)-1] != 50*time.Millisecond {
		t.Errorf("pareto with max 50ms: largest draw %v", capped[len(capped)-1])
	}
	// With p, only that share of messages get a tail.
	sc := parse(t, "nodes: 3\nduration: 1m\nnetwork: {latency: 1ms, tail: {dist: pareto, min: 100ms, alpha: 3, p: 0.1}}\n")
	s = &sim{sc: sc, rng: rand.New(rand.NewPCG(1, 2))}
	slow := 0
	for range 10000 {
		if s.reqDelay(&node{}) >= 100*time.Millisecond {
			slow++
		}
	}
	if slow < 900 || slow > 1100 {
		t.Errorf("tail p 0.1: %d of 10000 messages delayed, want about 1000", slow)
	}
	// A run with a tail is slower than one without, and deterministic.
	a := run(t, load(t, "graceful-stop"), 1)
	tailed := load(t, "graceful-stop")
	tailed.Tail = &Tail{Dist: "lognormal", Median: 50 * time.Millisecond, Sigma: 0.5}
	b := run(t, tailed, 1)
	if b.Failovers[0].FailoverMS < a.Failovers[0].FailoverMS+100 {
		t.Errorf("a 50ms lognormal tail: handoff %vms, without %vms", b.Failovers[0].FailoverMS, a.Failovers[0].FailoverMS)
	}
}

// For the spike's length every message of its targets takes its latency:
// a graceful handoff under a 300ms spike takes six one-way trips of it
// (release, notification, a Get and its reply, takeover write, reply).
func TestLatencySpike(t *testing.T) {
	sc := load(t, "graceful-stop")
	sc.Faults = append(sc.Faults, Fault{At: 59 * time.Second, Kind: LatencySpike, Targets: []string{All}, For: 10 * time.Second, Latency: 300 * time.Millisecond})
	for seed := uint64(1); seed <= 10; seed++ {
		r := run(t, sc, seed)
		// (Plus, at worst, a renewal in flight at the stop: 600ms.)
		if len(r.Failovers) != 1 || r.Failovers[0].FailoverMS < 1800 || r.Failovers[0].FailoverMS > 2410 {
			t.Fatalf("seed %d: failovers %+v, want one handoff of 1.8s to 2.4s", seed, r.Failovers)
		}
	}
	// A spike on one follower only: the other takes over as fast as ever.
	sc = parse(t, "nodes: 3\nduration: 2m\nstart_spread: 0s\nnetwork: {latency: 2ms}\nfaults:\n"+
		"  - {at: 50s, latency_spike: [n2, n3], latency: 500ms, for: 30s}\n  - {at: 60s, stop: leader}\n")
	// The followers of the leader stopped at 60s (who leads first depends
	// on the race after the fresh candidates' first lease).
	leader := run(t, sc, 1).Failovers[0].From
	sc.Faults[0].Targets = slices.DeleteFunc([]string{"n1", "n2", "n3"}, func(id string) bool { return id == leader })
	r := run(t, sc, 1)
	if len(r.Failovers) != 1 || r.Failovers[0].FailoverMS < 1500 {
		t.Errorf("spike on both followers: %+v, want a slow handoff", r.Failovers)
	}
	sc.Faults[0].Targets = []string{r.Failovers[0].To}
	r2 := run(t, sc, 1)
	if len(r2.Failovers) != 1 || r2.Failovers[0].FailoverMS > 20 || r2.Failovers[0].To == r.Failovers[0].To {
		t.Errorf("spike on one follower: %+v, want the other to take over in a few ms", r2.Failovers)
	}
}

// One-way partitions. Losing only the replies, the leader's first renewal
// still lands, but it never learns the new version: its next renewals
// fail their compare-and-swap, so the others wait out the lease from that
// one landed renewal, up to a RetryPeriod longer than after a partition
// both ways. Losing only the requests is a partition as far as the store
// can tell. Neither gives dual leadership.
func TestOneWayPartition(t *testing.T) {
	failover := func(lose string, seed uint64) Failover {
		sc := load(t, "partition-leader")
		sc.Faults[0].Lose = lose
		r := run(t, sc, seed)
		if r.DualLeaderMS != 0 || !r.Safe() || len(r.Failovers) != 1 || r.Failovers[0].Cause != "partition" {
			t.Fatalf("lose %q seed %d: dual %vms, failovers %+v", lose, seed, r.DualLeaderMS, r.Failovers)
		}
		return r.Failovers[0]
	}
	sc := load(t, "partition-leader")
	ld, rp := float64(sc.LeaseDuration)/1e6, float64(sc.RetryPeriod)/1e6
	for seed := uint64(1); seed <= 10; seed++ {
		both, req, rep := failover("", seed), failover(LoseRequests, seed), failover(LoseReplies, seed)
		if both.FailoverMS < ld-2500 || both.FailoverMS > ld+100 {
			t.Errorf("seed %d: both ways: %vms, want about the lease", seed, both.FailoverMS)
		}
		if math.Abs(req.FailoverMS-both.FailoverMS) > 100 {
			t.Errorf("seed %d: losing requests %vms, both ways %vms: want the same", seed, req.FailoverMS, both.FailoverMS)
		}
		if rep.FailoverMS <= both.FailoverMS || rep.FailoverMS > ld+rp+100 {
			t.Errorf("seed %d: losing replies %vms, both ways %vms: want longer, at most lease + retry period", seed, rep.FailoverMS, both.FailoverMS)
		}
	}
	tr := traceOf(t, func() *Scenario { s := load(t, "partition-leader"); s.Faults[0].Lose = LoseReplies; return s }(), 1)
	if !strings.Contains(tr, "reply lost") || !strings.Contains(tr, "version conflict") {
		t.Error("losing replies: the trace shows no lost reply and no failed compare-and-swap after it")
	}
}

// The store down for less than the renew deadline: the leader keeps its
// lease and the followers' watches come back. For longer: the leader steps
// down at its deadline; the others take over once the store is back and
// the lease they last saw renewed has run out.
func TestStoreDown(t *testing.T) {
	base := "nodes: 3\nduration: 2m\nnetwork: {latency: 2ms}\nlease: {duration: 15s, renew_deadline: 10s, retry_period: 2s}\n"
	sc := parse(t, base+"faults:\n  - {at: 60s, store_down: true, for: 5s}\n  - {at: 90s, stop: leader}\n")
	for seed := uint64(1); seed <= 10; seed++ {
		r := run(t, sc, seed)
		// The handoff after the outage is still fast: the watches are back.
		if len(r.Failovers) != 1 || r.Failovers[0].Cause != "stop" || r.Failovers[0].FailoverMS > 20 {
			t.Fatalf("5s outage, seed %d: failovers %+v; want only the later stop, handed over at once", seed, r.Failovers)
		}
	}
	tr := traceOf(t, sc, 1)
	if !strings.Contains(tr, "request lost: the store is down") || !strings.Contains(tr, "watch lost; registering again") {
		t.Errorf("5s outage: the trace shows no lost request or watch re-registration")
	}
	// Drawn at random, too.
	rnd := parse(t, "nodes: 3\nduration: 30m\nrandom_faults: {every: 2m, kinds: [store_down], max_down: 30s}\n")
	if r := run(t, rnd, 1); !r.Safe() || len(r.Failovers) == 0 || r.Failovers[0].Cause != "store_down" {
		t.Errorf("random store_down: failovers %+v, violations %+v", r.Failovers, r.Violations)
	}
	// A request the store was serving when it went down is lost, even if
	// its service would end after the store is back.
	tr = traceOf(t, parse(t, "nodes: 1\nduration: 5s\nstart_spread: 0s\nnetwork: {latency: 1ms}\nservice: {read: 500ms}\n"+
		"faults:\n  - {at: 100ms, store_down: true, for: 100ms}\n"), 1)
	if !strings.Contains(tr, "0.501000s n1   request lost: the store went down") || strings.Contains(tr, "0.501000s --   store: get") {
		t.Errorf("a Get in service across an outage was not lost:\n%s", head(tr, 8))
	}
	for _, tc := range []struct {
		down   string
		lo, hi float64
	}{
		// Not before the store is back (the former leader, still the
		// record's holder, may retake it then); then once the lease the
		// others last saw renewed has run out, at their next attempt: a
		// lost call times out after a retry period, and the next is a
		// jittered retry period later.
		{"12s", 12000, 15000 + 3*2000 + 100},
		{"20s", 20000, 20000 + 3*2000 + 100},
	} {
		sc = parse(t, base+"faults:\n  - {at: 60s, store_down: true, for: "+tc.down+"}\n")
		for seed := uint64(1); seed <= 10; seed++ {
			r := run(t, sc, seed)
			if len(r.Failovers) != 1 || r.Failovers[0].Cause != "store_down" || !r.Safe() {
				t.Fatalf("%s outage, seed %d: failovers %+v, violations %+v", tc.down, seed, r.Failovers, r.Violations)
			}
			f := r.Failovers[0]
			if f.AtMS != 60000 || f.FailoverMS < tc.lo || f.FailoverMS > tc.hi || f.LeaderlessMS <= 0 {
				t.Errorf("%s outage, seed %d: %+v; want a failover in [%v, %v]ms", tc.down, seed, f, tc.lo, tc.hi)
			}
		}
	}
}

// Stale reads: a Get may see the record as it was up to stale_reads ago.
// Takeovers based on an old record fail their compare-and-swap, so the
// lease still holds: no dual leadership, and a crash failover is no
// shorter than with fresh reads.
func TestStaleReads(t *testing.T) {
	sc := load(t, "leader-crash")
	sc.Watch = false
	lo := float64(sc.LeaseDuration-sc.RetryPeriod) / 1e6
	sc.StaleReads = 6 * time.Second
	stale := int64(0)
	for seed := uint64(1); seed <= 20; seed++ {
		r := run(t, sc, seed)
		stale += r.Store.StaleReads
		if !r.Safe() || r.DualLeaderMS != 0 || len(r.Failovers) != 1 || r.Failovers[0].FailoverMS < lo {
			t.Fatalf("seed %d: violations %+v, failovers %+v", seed, r.Violations, r.Failovers)
		}
	}
	if stale == 0 {
		t.Fatal("stale_reads 6s: no Get returned an old record")
	}
	// Every stale answer is a version the store really had.
	tr := traceOf(t, sc, 1)
	if !strings.Contains(tr, "stale read: version") {
		t.Error("the trace shows no stale read")
	}
	// Stale reads and a shared-identity crash (the case reads matter most for).
	sh := load(t, "shared-identity")
	sh.StaleReads = 3 * time.Second
	for seed := uint64(1); seed <= 20; seed++ {
		if r := run(t, sh, seed); !r.Safe() || r.DualLeaderMS != 0 {
			t.Fatalf("shared-identity with stale reads, seed %d: %+v", seed, r.Violations)
		}
	}
}

// Watch lag and the work's start time add to a graceful handoff exactly
// what they say: the notification leaves the store later, and the
// failover ends when the new leader's work runs.
func TestWatchLagAndWorkStart(t *testing.T) {
	sc := parse(t, "nodes: 2\nduration: 2m\nstart_spread: 0s\nnetwork: {latency: 2ms}\nfaults:\n  - {at: 60s, stop: leader}\n")
	base := run(t, sc, 1).Failovers[0].FailoverMS
	sc.WatchLag = 50 * time.Millisecond
	lag := run(t, sc, 1).Failovers[0].FailoverMS
	sc.WorkStart, sc.WorkStop = 20*time.Millisecond, 7*time.Millisecond
	r := run(t, sc, 1)
	work := r.Failovers[0].FailoverMS
	if math.Abs(lag-base-50) > 0.01 || math.Abs(work-lag-27) > 0.01 {
		t.Errorf("handoff %vms; with watch_lag 50ms %vms; with work 20ms + 7ms %vms", base, lag, work)
	}
	if r.FencedWrites.Accepted == 0 {
		t.Error("no fenced writes once the work runs")
	}
	// A leader that loses the lock before its work ran ends no failover.
	tr := traceOf(t, sc, 1)
	if !strings.Contains(tr, "leader work running") {
		t.Error("the trace does not say when the work runs")
	}
}

// The etcd profile's graceful handoff is the work's stop, a release, a
// notification, a Get, a takeover write and the work's start.
func TestEtcdProfileHandoff(t *testing.T) {
	p := Profiles["etcd"]
	sc := parse(t, "store: etcd\nwork_sigma: 0\nnodes: 3\nduration: 2m\nfaults:\n  - {at: 60s, stop: leader}\n")
	rt := p.RequestLatency + p.WriteService + p.ReplyLatency
	get := p.RequestLatency + p.ReadService + p.ReplyLatency
	want := p.WorkStop + p.RequestLatency + p.WriteService + p.WatchLag + p.ReplyLatency + get + rt + p.WorkStart
	for seed := uint64(1); seed <= 10; seed++ {
		r := run(t, sc, seed)
		got := time.Duration(r.Failovers[0].FailoverMS * 1e6)
		if got < want || got > want+6*p.Jitter+time.Microsecond {
			t.Errorf("seed %d: etcd handoff %v, want %v plus up to 6 jitters", seed, got, want)
		}
	}
	// With the profile's work_sigma the work's times spread, lognormally
	// around the same medians: the handoffs spread, their median barely
	// moves.
	handoffs := func(sigma float64) []float64 {
		sc.WorkSigma = sigma
		var hs []float64
		for seed := uint64(1); seed <= 200; seed++ {
			hs = append(hs, run(t, sc, seed).Failovers[0].FailoverMS)
		}
		slices.Sort(hs)
		return hs
	}
	flat, hs := handoffs(0), handoffs(p.WorkSigma)
	w := flat[len(flat)/2]
	if med := hs[len(hs)/2]; med < w*0.9 || med > w*1.1 || hs[len(hs)-1]-hs[0] < 2*(flat[len(flat)-1]-flat[0]) {
		t.Errorf("work_sigma %v: handoffs median %vms over [%v, %v]; without: %vms over [%v, %v]; want the same median, a wider spread",
			p.WorkSigma, med, hs[0], hs[len(hs)-1], w, flat[0], flat[len(flat)-1])
	}
}

// The two timing examples do what their files say, over 20 seeds.
func TestTimingExamples(t *testing.T) {
	var stale int64
	for seed := uint64(1); seed <= 20; seed++ {
		r := run(t, load(t, "etcd-profile"), seed)
		if len(r.Failovers) != 2 || r.Failovers[0].Cause != "stop" || r.Failovers[1].Cause != "crash" {
			t.Fatalf("etcd-profile seed %d: failovers %+v", seed, r.Failovers)
		}
		if f := r.Failovers[0].FailoverMS; f < 8 || f > 50 {
			t.Errorf("etcd-profile seed %d: handoff %vms, want about 21ms (8 to 50)", seed, f)
		}
		if f := r.Failovers[1].FailoverMS; f < 750 || f > 1060 {
			t.Errorf("etcd-profile seed %d: crash failover %vms, want 0.76s to 1.06s", seed, f)
		}
		r = run(t, load(t, "store-outage"), seed)
		var causes []string
		for _, f := range r.Failovers {
			causes = append(causes, f.Cause)
		}
		if !slices.Equal(causes, []string{"store_down", "partition"}) || !r.Safe() || r.DualLeaderMS != 0 {
			t.Errorf("store-outage seed %d: failovers %v, violations %+v, store %+v", seed, causes, r.Violations, r.Store)
		}
		stale += r.Store.StaleReads
	}
	if stale == 0 {
		t.Error("store-outage: no stale read in 20 seeds")
	}
}

// The SVG marks what happened where it happened: dual leadership on the
// lanes of the nodes involved only, leaderless time, failed renewals,
// rejected fenced writes, the store's outages, round axis ticks and a
// legend.
func TestSVGMarks(t *testing.T) {
	svgOf := func(sc *Scenario) string {
		_, _, sv := outputs(t, sc, 1)
		return string(sv)
	}
	lp := load(t, "long-pause")
	r := run(t, lp, 1)
	svg := svgOf(lp)
	bands, involved := strings.Count(svg, "<title>dual leadership "), 0
	for _, v := range r.Violations {
		if v.Kind == "dual_leadership" {
			involved += len(v.Nodes)
		}
	}
	if involved == 0 || bands != involved {
		t.Errorf("long-pause: %d dual-leadership bands, want one per node involved (%d)", bands, involved)
	}
	if r.FencedWrites.Rejected == 0 || strings.Count(svg, "<title>fenced write rejected") != int(r.FencedWrites.Rejected) {
		t.Errorf("long-pause: %d rejected writes drawn, %d rejected", strings.Count(svg, "<title>fenced write rejected"), r.FencedWrites.Rejected)
	}
	if lc := svgOf(load(t, "leader-crash")); !strings.Contains(lc, "<title>nobody leads from") {
		t.Error("leader-crash: no leaderless span drawn")
	}
	for _, want := range []string{">leaderless<", ">dual leadership<", ">renewal failed<", ">fenced write rejected<", ">store down<", ">partitioned<"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the legend lacks %s", want)
		}
	}
	if svg := svgOf(load(t, "lossy-network")); !strings.Contains(svg, "<title>renewal failed at") {
		t.Error("lossy-network: no failed renewal drawn")
	}
	so := svgOf(load(t, "store-outage"))
	if strings.Count(so, "<title>store_down ") != 2 {
		t.Errorf("store-outage: %d store outages drawn, want 2", strings.Count(so, "<title>store_down "))
	}
	// One hour: ticks every 10 minutes, written as such.
	rc := svgOf(load(t, "random-chaos"))
	for _, want := range []string{`font-size="10">10m<`, `font-size="10">50m<`, `font-size="10">1h<`} {
		if !strings.Contains(rc, want) {
			t.Errorf("random-chaos: the axis lacks %s", want)
		}
	}
	for d, want := range map[time.Duration]time.Duration{time.Hour: 10 * time.Minute, 2 * time.Minute: 20 * time.Second,
		10 * time.Second: time.Second, 30 * time.Minute: 5 * time.Minute, 5 * time.Hour: 30 * time.Minute, 90 * time.Second: 10 * time.Second, 1000 * time.Hour: 192 * time.Hour} {
		if got := niceStep(d); got != want {
			t.Errorf("niceStep(%v) = %v, want %v", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "0", 90 * time.Second: "1m30s", time.Hour: "1h", 90 * time.Minute: "1h30m",
		500 * time.Millisecond: "500ms", 20 * time.Second: "20s", 10 * time.Minute: "10m"} {
		if got := fmtTick(d); got != want {
			t.Errorf("fmtTick(%v) = %q, want %q", d, got, want)
		}
	}
}

// The scenario file documented in docs/simulator.md parses, with every
// key it shows.
func TestDocumentedScenarioParses(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "simulator.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## Scenario files\n\n```yaml\n")
	if !ok {
		t.Fatal("docs/simulator.md has no yaml block under ## Scenario files")
	}
	src, _, _ := strings.Cut(rest, "```")
	sc, err := ParseScenario([]byte(src))
	if err != nil {
		t.Fatalf("the documented scenario: %v", err)
	}
	if sc.Store != "etcd" || sc.Tail == nil || sc.ReplyLatency != 2*time.Millisecond || sc.Parallel != 1 {
		t.Errorf("the documented scenario: store %q, tail %+v, reply latency %v, parallel %d", sc.Store, sc.Tail, sc.ReplyLatency, sc.Parallel)
	}
	var kinds []FaultKind
	for _, f := range sc.Faults {
		kinds = append(kinds, f.Kind)
	}
	for _, k := range faultKinds {
		if !slices.Contains(kinds, k) {
			t.Errorf("the documented scenario shows no %s fault", k)
		}
	}
	// Every key at once, with the profile's spread of the work and stale
	// reads: the same seed gives the same bytes, another seed others.
	sc.WorkSigma, sc.StaleReads, sc.ReadService, sc.WriteService = 0.3, time.Second, time.Millisecond, 2*time.Millisecond
	j1, t1, s1 := outputs(t, sc, 3)
	j2, t2, s2 := outputs(t, sc, 3)
	if !bytes.Equal(j1, j2) || !bytes.Equal(t1, t2) || !bytes.Equal(s1, s2) {
		t.Fatal("the documented scenario: two runs with seed 3 differ")
	}
	if _, t3, _ := outputs(t, sc, 4); bytes.Equal(t1, t3) {
		t.Fatal("the documented scenario: seeds 3 and 4 gave the same trace")
	}
}

// WriteSVGWindow zooms in: only what happens in the window is drawn, on
// an axis of its own.
func TestSVGWindow(t *testing.T) {
	sc := load(t, "random-chaos")
	r, err := Run(sc, Options{Seed: 1, Timeline: true})
	if err != nil {
		t.Fatal(err)
	}
	var full, win bytes.Buffer
	if err := r.WriteSVG(&full); err != nil {
		t.Fatal(err)
	}
	from, to := 10*time.Minute, 12*time.Minute
	if err := r.WriteSVGWindow(&win, from, to); err != nil {
		t.Fatal(err)
	}
	in := 0
	for _, f := range r.Timeline.Faults {
		if f.Node >= 0 && f.At >= from && f.At <= to {
			in++
		}
	}
	w := win.String()
	if got := strings.Count(w, `stroke="#000" stroke-width="2"><title>`); got != in || in == 0 {
		t.Errorf("window [10m, 12m]: %d fault ticks drawn, %d faults in it", got, in)
	}
	if strings.Count(full.String(), `stroke="#000" stroke-width="2"><title>`) <= in {
		t.Error("the full timeline has no more faults than the window")
	}
	for _, want := range []string{"seed 1, from 10m to 12m<", `font-size="10">10m20s<`, `font-size="10">12m<`} {
		if !strings.Contains(w, want) {
			t.Errorf("window [10m, 12m] lacks %s", want)
		}
	}
	if strings.Contains(w, `font-size="10">9m`) {
		t.Error("window [10m, 12m] has a tick before it")
	}
	for _, bad := range [][2]time.Duration{{-time.Second, time.Minute}, {time.Minute, time.Minute}, {0, 2 * time.Hour}} {
		if err := r.WriteSVGWindow(io.Discard, bad[0], bad[1]); err == nil {
			t.Errorf("window %v accepted", bad)
		}
	}
}

// The summary of many runs adds up their store figures.
func TestSummaryStore(t *testing.T) {
	var sum Summary
	var want StoreStats
	for seed := uint64(1); seed <= 5; seed++ {
		r := run(t, load(t, "store-outage"), seed)
		sum.Add(r)
		want.Served += r.Store.Served
		want.Queued += r.Store.Queued
		want.StaleReads += r.Store.StaleReads
		want.MaxWaitMS = max(want.MaxWaitMS, r.Store.MaxWaitMS)
	}
	a := sum.Aggregate()
	if a.Store.Served != want.Served || a.Store.Queued != want.Queued || a.Store.StaleReads != want.StaleReads ||
		a.Store.MaxWaitMS != want.MaxWaitMS || want.Served == 0 || want.StaleReads == 0 {
		t.Errorf("aggregate store %+v, want %+v", a.Store, want)
	}
	var buf bytes.Buffer
	a.WriteText(&buf)
	if !strings.Contains(buf.String(), "store, summed over the runs: ") {
		t.Errorf("the aggregate text lacks the store line:\n%s", buf.String())
	}
}

// Requests are counted as the store serves them: with followers watching,
// etcd and Kubernetes serve the leader's renewals and no request for a
// watch (it rides an open stream), Consul a blocking query per watch too.
func TestRequestsAsTheStoreServesThem(t *testing.T) {
	const body = "nodes: 3\nduration: 10m\nlease: {duration: 2s, renew_deadline: 1333ms, retry_period: 250ms}\nwatch: true\n"
	renewals := 1 / 0.25 // the leader's, per second
	for _, tc := range []struct {
		store   string
		watches bool // counted as requests
	}{{"etcd", false}, {"kube", false}, {"consul", true}, {"memory", false}} {
		r := run(t, parse(t, "store: "+tc.store+"\n"+body), 1)
		q := r.Requests
		if q.Watch == 0 {
			t.Fatalf("%s: no watch registrations: %+v", tc.store, q)
		}
		want := q.Get + q.Create + q.Update
		if tc.watches {
			want += q.Watch
		}
		if q.Total != want {
			t.Errorf("%s: total %d, want %d (%+v)", tc.store, q.Total, want, q)
		}
		rate := r.RequestsPerSec
		switch {
		case !tc.watches && (rate < renewals || rate > renewals*1.05):
			t.Errorf("%s: %.3f requests/s, want the leader's %.0f renewals/s and little more", tc.store, rate, renewals)
		case tc.watches && rate < renewals*2.5:
			t.Errorf("%s: %.3f requests/s, want the renewals and the two followers' blocking queries (about %.0f/s)", tc.store, rate, 3*renewals)
		}
		t.Logf("%s: %.3f requests/s (%+v)", tc.store, rate, q)
	}
}
