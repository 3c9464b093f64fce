package sim

import (
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nodes: 3\nbogus: 1\n", "line 2: bogus: unknown key"},
		{"lease: {duration: 15x}\n", `line 1: lease.duration: "15x" is not a duration`},
		{"lease:\n  duration: 15s\n  renew_deadline: 15s\n", "line 3: lease.renew_deadline (15s) must be less than lease.duration (15s)"},
		{"lease: {duration: 15s, renew_deadline: 2s, retry_period: 2s}\n", "must be greater than 1.2 × lease.retry_period"},
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

func FuzzParseScenario(f *testing.F) {
	f.Add([]byte("nodes: 3\nfaults:\n  - {at: 5s, crash: leader, restart_after: 1s}\n"))
	f.Add([]byte("clocks:\n  n1: {rate: 2}\nrandom_faults: {every: 1s, kinds: [pause], max_down: 1s}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := ParseScenario(data)
		if err != nil || sc.Duration > 0 && sc.Duration <= 0 {
			return
		}
	})
}
