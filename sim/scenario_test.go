package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/elector"
)

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nodes: 3\nbogus: 1\n", "line 2: bogus: unknown key"},
		{"lease: {duration: 15x}\n", `line 1: lease.duration: "15x" is not a duration`},
		{"lease:\n  duration: 15s\n  renew_deadline: 15s\n", "line 2: lease.duration (15s) must be greater than lease.renew_deadline (15s)"},
		{"lease: {duration: 15s, renew_deadline: 2s, retry_period: 2s}\n", "line 1: lease.renew_deadline (2s) must be greater than 1.2 × lease.retry_period (2s) = 2.4s"},
		// The line is that of the first key of the rule the file sets.
		{"nodes: 2\nlease:\n  renew_deadline: 20s\n", "line 3: lease.duration (15s) must be greater than lease.renew_deadline (20s)"},
		{"nodes: 2\nlease:\n  duration: 5s\n", "line 3: lease.duration (5s) must be greater than lease.renew_deadline (10s)"},
		{"lease:\n  retry_period: 9s\n", "line 2: lease.renew_deadline (10s) must be greater than 1.2 × lease.retry_period (9s) = 10.8s"},
		{"lease: {retry_period: 0s}\n", "line 1: lease.retry_period: must be between 0 and 24h0m0s, got 0s"},
		{"work_stop: -1s\n", "line 1: work_stop: must not be negative"},
		{"work_stop: 25h\n", "line 1: work_stop: must be at most 24h0m0s"},
		{"network: {jitter: 25h}\n", "line 1: network.jitter: must be at most 24h0m0s"},
		{"faults:\n  - {at: 5s, crash: n01}\n", `line 2: faults[0].crash: no node "n01"`},
		{"nodes: 2\nclocks:\n  n3: {rate: 2}\n", `line 3: clocks: no node "n3" (the scenario has n1..n2)`},
		{"clocks:\n  n1: {rate: 0}\n", "line 2: clocks.n1.rate: want a number from 0.01 to 100"},
		{"faults:\n  - {at: 5s, crash: n9}\n", `line 2: faults[0].crash: no node "n9"`},
		{"faults:\n  - {at: 5s}\n", "line 2: faults[0]: say what happens"},
		{"faults:\n  - {crash: leader}\n", "line 2: faults[0].at: missing"},
		{"faults:\n  - {at: 5s, crash: leader, stop: n1}\n", "faults[0].stop: a fault does one thing"},
		{"faults:\n  - {at: 5s, pause: n1}\n", "faults[0].for: pause needs for"},
		{"faults:\n  - {at: 5s, crash: n1, heal_after: 3s}\n", "line 2: faults[0].heal_after: does not go with crash"},
		{"faults:\n  - {at: 5s, clock_jump: n1}\n", "clock_jump needs by"},
		{"duration: 1m\nfaults:\n  - {at: 2m, crash: n1}\n", "faults[0].at: 2m0s is after the end of the run"},
		{"network: {loss: 1.5}\n", "network.loss: want a number from 0 to 0.99"},
		{"network: {latency: -1ms}\n", "network.latency: must not be negative"},
		{"random_faults: {every: 1m, kinds: [crash, meteor], max_down: 5s}\n", `unknown fault kind "meteor"`},
		{"random_faults: {every: 1m, max_down: 5s}\n", "random_faults.kinds: missing"},
		{"watch: maybe\n", `line 1: watch: want true or false, got "maybe"`},
		{"nodes: 0\n", "nodes: want a whole number from 1 to 1000"},
		{"- 1\n- 2\n", "the scenario must be a mapping"},
		{"nodes: 3\nnodes: 4\n", "line 2: nodes: given twice"},
		{"", "the scenario is empty"},
		{"---", "the scenario is empty"}, // found by the fuzzer: was "line 2: ..." of a one-line file
		{"# nothing\n~\n", "the scenario is empty"},
		{"nodes: [\n", "not valid YAML"},
		{"duration: 30000h\n", "duration: at most 1000h0m0s"},
		{"lease: {duration: 30000h}\n", "lease.duration: must be between 0 and 24h0m0s"},
		{"clocks:\n  n1: {offset: 5000h}\n", "clocks.n1.offset: must be within"},
	} {
		_, err := ParseScenario([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseScenario(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestParseDefaultsAndFull(t *testing.T) {
	sc, err := ParseScenario([]byte(`
name: full
nodes: 4
duration: 10m
seed: 9
lease: {duration: 20s, renew_deadline: 12s, retry_period: 3s, release_on_cancel: false}
watch: false
network: {latency: 2ms, jitter: 1ms, loss: 0.01}
clocks:
  n2: {offset: 300ms, rate: 1.01}
faults:
  - {at: 60s,  crash: leader, restart_after: 30s}
  - {at: 180s, partition: [leader, n3], heal_after: 40s}
  - {at: 300s, pause: n2, for: 20s}
  - {at: 420s, clock_jump: n1, by: -10s}
  - {at: 480s, stop: leader}
random_faults: {every: 90s, kinds: [crash, partition, pause], max_down: 30s}
`))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Nodes != 4 || sc.Seed != 9 || !sc.HasSeed || sc.Watch || sc.ReleaseOnCancel || sc.Loss != 0.01 ||
		sc.Clocks[1].Rate != 1.01 || sc.Clocks[0].Rate != 1 || len(sc.Faults) != 5 ||
		len(sc.Faults[1].Targets) != 2 || sc.Faults[3].By >= 0 || sc.Random == nil || len(sc.Random.Kinds) != 3 {
		t.Fatalf("parsed %+v", sc)
	}
	if _, err := Run(sc, Options{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	def, err := ParseScenario([]byte("name: d\n"))
	if err != nil || def.Nodes != 3 || def.LeaseDuration != DefaultScenario().LeaseDuration || !def.Watch {
		t.Fatalf("defaults: %+v %v", def, err)
	}
}

// Every example scenario and every scenario built in code by the tests
// passes Validate; a scenario built in code with a broken rule does not.
func TestValidate(t *testing.T) {
	for _, name := range examples(t) {
		if err := load(t, name).Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := (&Scenario{}).Validate(); !errors.Is(err, ErrInvalidScenario) {
		t.Errorf("the zero Scenario: %v, want ErrInvalidScenario", err)
	}
	good := func() *Scenario {
		sc, err := ParseScenario([]byte("nodes: 3\nfaults:\n  - {at: 5s, crash: leader, restart_after: 1s}\n" +
			"  - {at: 6s, partition: [n1, n2]}\n  - {at: 7s, pause: n3, for: 2s}\n  - {at: 8s, clock_jump: n1, by: -1h}\n" +
			"random_faults: {every: 1m, kinds: [stop], max_down: 5s}\n"))
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("a parsed scenario: %v", err)
	}
	for _, tc := range []struct {
		mod  func(*Scenario)
		want string
	}{
		{func(s *Scenario) { s.Nodes = 0 }, "Nodes (0) must be from 1 to 1000"},
		{func(s *Scenario) { s.Duration = 0 }, "Duration (0s) must be from 1ns to 1000h0m0s"},
		{func(s *Scenario) { s.RetryPeriod = -time.Second }, "RetryPeriod (-1s) must be from 1ns to 24h0m0s"},
		{func(s *Scenario) { s.WorkStop = -1 }, "WorkStop (-1ns)"},
		{func(s *Scenario) { s.Latency = 25 * time.Hour }, "Latency (25h0m0s)"},
		{func(s *Scenario) { s.Jitter = -1 }, "Jitter (-1ns)"},
		// The timing rule is the elector's, in the Scenario's field names.
		{func(s *Scenario) { s.RenewDeadline = s.LeaseDuration }, "LeaseDuration (15s) must be greater than RenewDeadline (15s)"},
		{func(s *Scenario) { s.RetryPeriod = 9 * time.Second }, "RenewDeadline (10s) must be greater than 1.2 × RetryPeriod (9s) = 10.8s"},
		{func(s *Scenario) { s.Loss = math.NaN() }, "Loss (NaN) must be from 0 to 0.99"},
		{func(s *Scenario) { s.Loss = 1 }, "Loss (1)"},
		{func(s *Scenario) { s.Clocks = nil }, "Clocks has 0 entries, want one per node (3)"},
		{func(s *Scenario) { s.Clocks[1].Rate = 0 }, "Clocks[1].Rate (0) must be from 0.01 to 100"},
		{func(s *Scenario) { s.Clocks[2].Offset = 2000 * time.Hour }, "Clocks[2].Offset (2000h0m0s)"},
		{func(s *Scenario) { s.Identities = []string{"a"} }, "Identities has 1 entries, want none or one per node (3)"},
		{func(s *Scenario) { s.Identities[1] = "" }, "Identities[1] must not be empty"},
		{func(s *Scenario) { s.Faults[0].At = 11 * time.Minute }, "Faults[0].At (11m0s) must be from 0 to the end of the run (Duration 10m0s)"},
		{func(s *Scenario) { s.Faults[0].At = -1 }, "Faults[0].At (-1ns)"},
		{func(s *Scenario) { s.Faults[0].Kind = "meteor" }, `Faults[0].Kind: unknown fault kind "meteor"`},
		{func(s *Scenario) { s.Faults[0].Targets = nil }, "Faults[0].Targets is empty"},
		{func(s *Scenario) { s.Faults[0].Targets = []string{"n1", "n2"} }, "Faults[0].Targets: crash takes one target, got 2"},
		{func(s *Scenario) { s.Faults[1].Targets[1] = "n4" }, `Faults[1].Targets[1]: no node "n4" (the scenario has n1..n3)`},
		{func(s *Scenario) { s.Faults[1].Targets[1] = "n02" }, `Faults[1].Targets[1]: no node "n02"`},
		{func(s *Scenario) { s.Faults[2].For = 0 }, "Faults[2].For: a pause needs a length"},
		{func(s *Scenario) { s.Faults[1].For = -1 }, "Faults[1].For (-1ns)"},
		{func(s *Scenario) { s.Faults[3].For = time.Second }, "Faults[3].For does not go with clock_jump"},
		{func(s *Scenario) { s.Faults[3].By = 0 }, "Faults[3].By (0s) must be nonzero"},
		{func(s *Scenario) { s.Faults[0].By = time.Second }, "Faults[0].By only goes with clock_jump"},
		{func(s *Scenario) { s.Random.Every = 0 }, "Random.Every (0s)"},
		{func(s *Scenario) { s.Random.MaxDown = 0 }, "Random.MaxDown (0s)"},
		{func(s *Scenario) { s.Random.Kinds = nil }, "Random.Kinds is empty"},
		{func(s *Scenario) { s.Random.Kinds = []FaultKind{"x"} }, `Random.Kinds[0]: unknown fault kind "x"`},
	} {
		sc := good()
		tc.mod(sc)
		err := sc.Validate()
		if !errors.Is(err, ErrInvalidScenario) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want ErrInvalidScenario saying %q", err, tc.want)
		}
	}
	sc := good()
	sc.RenewDeadline = sc.LeaseDuration
	var ce *elector.ConfigError
	if err := sc.Validate(); !errors.As(err, &ce) || !errors.Is(err, elector.ErrInvalidConfig) {
		t.Errorf("the timing error %v does not carry the elector's ConfigError", err)
	}
}

// work_stop may be zero, as the docs' example writes it.
func TestParseWorkStopZero(t *testing.T) {
	sc, err := ParseScenario([]byte("work_stop: 0s\n"))
	if err != nil || sc.WorkStop != 0 {
		t.Fatalf("work_stop: 0s: %v", err)
	}
}

var (
	lineErr = regexp.MustCompile(`^line ([1-9][0-9]*): `)
	startRe = regexp.MustCompile(`^ *[0-9.]+s (n[0-9]+) +STARTED leading term=(-?[0-9]+)$`)
	writeRe = regexp.MustCompile(`^ *[0-9.]+s -- +store: (?:create|update) by (n[0-9]+) -> holder=(".*") term=(-?[0-9]+) version=[0-9]+$`)
)

const fuzzSeed = 3

// FuzzParseScenario feeds the parser anything. What it rejects names a
// line (or is YAML's own complaint); what it accepts passes Validate and,
// shortened to a few simulated minutes and a handful of nodes, runs: twice
// with the same seed to the same bytes, with terms that only go up, and
// with no dual leadership when no clock is skewed and no process paused.
func FuzzParseScenario(f *testing.F) {
	for _, name := range examples(f) {
		data, err := os.ReadFile(filepath.Join("..", "docs", "scenarios", name+".yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("nodes: 3\nfaults:\n  - {at: 5s, crash: leader, restart_after: 1s}\n"))
	f.Add([]byte("clocks:\n  n1: {rate: 2}\nrandom_faults: {every: 1s, kinds: [pause], max_down: 1s}\n"))
	f.Add([]byte("nodes: 2\nidentities: {n1: w, n2: w}\nwork_stop: 12s\nfaults:\n  - {at: 20s, stop: leader, restart_after: 1s}\n"))
	f.Add([]byte("lease: {duration: 3ns, renew_deadline: 2ns, retry_period: 1ns}\nnetwork: {latency: 0s}\n"))
	f.Add([]byte("lease:\n  duration: 15s\n  renew_deadline: 15s\n"))
	f.Add([]byte("\r0")) // a line YAML counts (the fuzzer's first find was this test's line count)
	f.Add([]byte("---")) // was "line 2: the scenario must be a mapping of keys"
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := ParseScenario(data)
		if err != nil {
			msg := err.Error()
			if m := lineErr.FindStringSubmatch(msg); m != nil {
				if n, _ := strconv.Atoi(m[1]); n > lines(data) {
					t.Fatalf("error %q names a line past the end of %q", msg, data)
				}
			} else if !strings.HasPrefix(msg, "not valid YAML: ") && msg != "the scenario is empty" {
				t.Fatalf("error %q names no line", msg)
			}
			return
		}
		if err := sc.Validate(); err != nil {
			t.Fatalf("ParseScenario accepted %q, Validate refuses it: %v", data, err)
		}
		checkRun(t, sc, fuzzSeed)
	})
}

// FuzzRun builds scenarios in code from numbers: what Validate accepts
// runs, with the checks of FuzzParseScenario. It reaches far more of the
// simulator than mutated YAML, most of which does not parse.
func FuzzRun(f *testing.F) {
	f.Add(uint64(1), uint8(3), uint32(15000), uint32(10000), uint32(2000), uint16(2), uint16(1), uint8(0), true, true, uint16(0),
		[]byte{}, []byte{0, 0, 60, 30})
	f.Add(uint64(2), uint8(5), uint32(2000), uint32(1500), uint32(250), uint16(30), uint16(40), uint8(25), false, true, uint16(3000),
		[]byte{0, 200, 0, 140}, []byte{1, 0, 20, 10, 2, 1, 30, 20, 3, 2, 40, 5, 4, 0, 50, 0})
	f.Add(uint64(3), uint8(2), uint32(15000), uint32(10000), uint32(2000), uint16(2), uint16(1), uint8(0), true, false, uint16(12000),
		[]byte{129, 255}, []byte{2, 0, 60, 20})
	f.Fuzz(func(t *testing.T, seed uint64, nodes uint8, ld, rd, rp uint32, lat, jit uint16, loss uint8, watch, release bool,
		workStop uint16, rates, faults []byte) {
		ms := func(v uint32) time.Duration { return time.Duration(v) * time.Millisecond }
		sc := DefaultScenario()
		sc.Nodes = int(nodes % 6)
		sc.Duration = 3 * time.Minute
		sc.LeaseDuration, sc.RenewDeadline, sc.RetryPeriod = ms(ld), ms(rd), ms(rp)
		sc.Latency, sc.Jitter, sc.Loss = ms(uint32(lat)), ms(uint32(jit)), float64(loss%100)/100
		sc.Watch, sc.ReleaseOnCancel, sc.WorkStop = watch, release, ms(uint32(workStop))
		sc.Clocks = make([]Clock, sc.Nodes)
		for i := range sc.Clocks {
			sc.Clocks[i].Rate = 1
			if i < len(rates) && rates[i] >= 128 {
				// 0.25 to 4.2: skewed either way, past LD/RD too.
				sc.Clocks[i] = Clock{Rate: 0.25 + float64(rates[i]-128)/32, Offset: ms(uint32(rates[i])) * 1000}
			}
		}
		for i := 0; i+3 < len(faults) && sc.Nodes > 0; i += 4 {
			k, target, at, d := faultKinds[int(faults[i])%len(faultKinds)], int(faults[i+1])%(sc.Nodes+1), faults[i+2], faults[i+3]
			fl := Fault{At: time.Duration(at) * 700 * time.Millisecond, Kind: k, Targets: []string{Leader}} // within the 3 minutes
			if target > 0 {
				fl.Targets = []string{NodeID(target - 1)}
			}
			switch k {
			case ClockJump:
				fl.By = time.Duration(int(d)-128) * time.Minute
			case Pause:
				fl.For = time.Duration(d)*100*time.Millisecond + time.Millisecond
			default:
				fl.For = time.Duration(d) * 100 * time.Millisecond
			}
			sc.Faults = append(sc.Faults, fl)
		}
		if err := sc.Validate(); err != nil {
			if !errors.Is(err, ErrInvalidScenario) {
				t.Fatalf("Validate: %v does not wrap ErrInvalidScenario", err)
			}
			return
		}
		checkRun(t, &sc, seed)
	})
}

// checkRun runs sc, shortened, twice with one seed and checks the runs:
// the same bytes (JSON, trace, SVG), terms that only go up, and no dual
// leadership when every clock runs true and no process pauses.
func checkRun(t *testing.T, sc *Scenario, seed uint64) {
	t.Helper()
	shorten(sc)
	if err := sc.Validate(); err != nil {
		t.Fatalf("shortened: %v", err)
	}
	j1, t1, s1 := outputs(t, sc, seed)
	j2, t2, s2 := outputs(t, sc, seed)
	if !bytes.Equal(j1, j2) || !bytes.Equal(t1, t2) || !bytes.Equal(s1, s2) {
		t.Fatalf("two runs with seed %d differ", seed)
	}
	checkTerms(t, sc, t1)
	var r Result
	if err := json.Unmarshal(j1, &r); err != nil {
		t.Fatal(err)
	}
	if trueClocks(sc) && !pauses(sc) {
		for _, v := range r.Violations {
			if v.Kind == "dual_leadership" {
				t.Fatalf("dual leadership %+v with true clocks and no pause", v)
			}
		}
	}
}

// lines bounds the number of lines in data as YAML counts them: it breaks
// lines at \n, \r\n, \r and, in UTF-8, NEL, LS and PS.
func lines(data []byte) int {
	n := 1
	for _, b := range [][]byte{[]byte("\n"), []byte("\r"), []byte("\u0085"), []byte("\u2028"), []byte("\u2029")} {
		n += bytes.Count(data, b)
	}
	return n
}

// shorten cuts sc to at most 5 nodes and a run of a few hundred retry
// periods (of the fastest clock) and random faults, at most 3 minutes, so
// that it runs in milliseconds; faults that no longer fit are dropped.
func shorten(sc *Scenario) {
	const nodes = 5
	if sc.Nodes > nodes {
		sc.Nodes = nodes
		sc.Clocks = sc.Clocks[:nodes]
		if len(sc.Identities) > nodes {
			sc.Identities = sc.Identities[:nodes]
		}
	}
	rate := 1.0
	for _, c := range sc.Clocks {
		rate = max(rate, c.Rate)
	}
	limit := min(3*time.Minute, time.Duration(300*float64(sc.RetryPeriod)/rate))
	if sc.Random != nil {
		limit = min(limit, 300*sc.Random.Every)
	}
	sc.Duration = max(1, min(sc.Duration, limit))
	var faults []Fault
	for _, f := range sc.Faults {
		var targets []string
		for _, t := range f.Targets {
			if t == Leader || nodeIndex(t, sc.Nodes) >= 0 {
				targets = append(targets, t)
			}
		}
		if f.At <= sc.Duration && len(targets) > 0 {
			f.Targets = targets
			faults = append(faults, f)
		}
	}
	sc.Faults = faults
}

func trueClocks(sc *Scenario) bool {
	for _, c := range sc.Clocks {
		if c.Rate != 1 {
			return false
		}
	}
	return true
}

func pauses(sc *Scenario) bool {
	for _, f := range sc.Faults {
		if f.Kind == Pause {
			return true
		}
	}
	return sc.Random != nil && slices.Contains(sc.Random.Kinds, Pause)
}

// checkTerms reads a run's trace: the terms written to the store never go
// down and go up whenever another node (or anyone after a release) writes
// a holder; every leadership starts with a term its node wrote, one no
// other leadership had, above its node's earlier ones; and with clocks
// running at one rate, leaderships start in the order of their terms.
func checkTerms(t *testing.T, sc *Scenario, trace []byte) {
	t.Helper()
	type write struct {
		node, holder string
		term         int64
	}
	var last *write
	written := map[string]map[int64]bool{} // node -> terms it wrote
	started := map[int64]string{}
	lastOf := map[string]int64{}
	var prevStart int64
	sameRate := true
	for _, c := range sc.Clocks {
		sameRate = sameRate && c.Rate == sc.Clocks[0].Rate
	}
	for i, line := range strings.Split(string(trace), "\n") {
		if m := writeRe.FindStringSubmatch(line); m != nil {
			holder, err := strconv.Unquote(m[2])
			if err != nil {
				t.Fatalf("trace line %d: %q: %v", i+1, line, err)
			}
			term, _ := strconv.ParseInt(m[3], 10, 64)
			w := write{node: m[1], holder: holder, term: term}
			switch {
			case term < 1:
				t.Fatalf("trace line %d: term %d written: %s", i+1, term, line)
			case last != nil && term < last.term:
				t.Fatalf("trace line %d: the store's term went down from %d: %s", i+1, last.term, line)
			case last != nil && holder != "" && (last.node != w.node || last.holder == "") && term == last.term:
				t.Fatalf("trace line %d: %s took the lock over with the term %d of the last write (by %s, holder %q): %s",
					i+1, w.node, term, last.node, last.holder, line)
			}
			if written[w.node] == nil {
				written[w.node] = map[int64]bool{}
			}
			written[w.node][term] = true
			last = &w
			continue
		}
		m := startRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		node := m[1]
		term, _ := strconv.ParseInt(m[2], 10, 64)
		switch {
		case !written[node][term]:
			t.Fatalf("trace line %d: %s started leading with term %d, which it never wrote: %s", i+1, node, term, line)
		case started[term] != "":
			t.Fatalf("trace line %d: term %d started twice (%s, then %s)", i+1, term, started[term], node)
		case term <= lastOf[node]:
			t.Fatalf("trace line %d: %s started with term %d after leading with %d", i+1, node, term, lastOf[node])
		case sameRate && term <= prevStart:
			t.Fatalf("trace line %d: with one clock rate, %s started with term %d after a leadership of term %d", i+1, node, term, prevStart)
		}
		started[term], lastOf[node] = node, term
		prevStart = max(prevStart, term)
	}
}
