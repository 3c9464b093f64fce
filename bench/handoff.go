package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/leasehold-go/leasehold/sim"
)

// HandoffPhases is where a graceful handoff's time goes on one store
// profile: the means, in milliseconds, over the handoffs simulated, of
// each phase from the leader's stop to the next leader's work running.
// The phases follow each other, so they add up to Total, the mean
// handoff (the simulator's failover of cause stop).
type HandoffPhases struct {
	Store    string `json:"store"`
	Handoffs int    `json:"handoffs"`
	// WorkStop: the stop until the leader's work has returned (it then
	// releases the lock).
	WorkStop float64 `json:"work_stop_ms"`
	// Release: the release's write, until the store has committed it.
	Release float64 `json:"release_ms"`
	// Notice: the commit until the next leader learns the lock is free
	// (its watch event, or its poll).
	Notice float64 `json:"notice_ms"`
	// Takeover: its read and write that take the lock, until it leads.
	Takeover float64 `json:"takeover_ms"`
	// WorkStart: it leads until its work runs.
	WorkStart float64 `json:"work_start_ms"`
	Total     float64 `json:"total_ms"`
}

// StorePart is the store's and the electors' part of a handoff: the
// release, the notice and the takeover.
func (h HandoffPhases) StorePart() float64 { return h.Release + h.Notice + h.Takeover }

// phases lists the phases in order, with their names as plots give them.
func (h HandoffPhases) phases() []float64 {
	return []float64{h.WorkStop, h.Release, h.Notice, h.Takeover, h.WorkStart}
}

// handoffScenario is the graceful handoff MeasureHandoffs simulates on a
// store: three candidates watching the lock (as leasehold run's do), the
// leader stopped once, at a phase of its renewals drawn from the seed;
// the short lease of backend/etcd's calibration test (a handoff does not
// depend on the lease's durations: the followers watch).
const handoffScenario = `name: handoff
store: %s
nodes: 3
duration: 12s
seed: 1
lease: {duration: 1s, renew_deadline: 750ms, retry_period: 250ms, release_on_cancel: true}
watch: true
fault_jitter: 250ms
faults:
  - {at: 10s, stop: leader, restart_after: 10ms}
`

// MeasureHandoffs simulates a graceful handoff on the named store profile
// (sim.Profiles) with seeds seed..seed+seeds-1 and splits each into its
// phases, read from the simulator's trace; it returns their means.
func MeasureHandoffs(ctx context.Context, store string, seeds int, seed uint64) (HandoffPhases, error) {
	if _, ok := sim.Profiles[store]; !ok {
		return HandoffPhases{}, fmt.Errorf("handoff: no store profile %q", store)
	}
	if seeds < 1 {
		return HandoffPhases{}, fmt.Errorf("handoff: seeds (%d) must be at least 1", seeds)
	}
	sc, err := parse(fmt.Sprintf(handoffScenario, store))
	if err != nil {
		return HandoffPhases{}, err
	}
	traces := make([]bytes.Buffer, seeds)
	got := make([][]float64, seeds)
	var errs []error
	sim.RunMany(ctx, seeds, 0, func(i int) (*sim.Scenario, sim.Options) {
		return sc, sim.Options{Seed: seed + uint64(i), Trace: &traces[i]}
	}, func(i int, r *sim.Result, err error) {
		if err == nil {
			got[i], err = handoffOf(r, traces[i].Bytes())
		}
		traces[i] = bytes.Buffer{}
		if err != nil {
			errs = append(errs, fmt.Errorf("handoff on %s, seed %d: %w", store, seed+uint64(i), err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return HandoffPhases{}, err
	}
	if err := ctx.Err(); err != nil {
		return HandoffPhases{}, err
	}
	sum := make([]float64, 6)
	for _, g := range got {
		for k, v := range g {
			sum[k] += v
		}
	}
	n := float64(seeds)
	h := HandoffPhases{Store: store, Handoffs: seeds,
		WorkStop: round(sum[0]/n, 4), Release: round(sum[1]/n, 4), Notice: round(sum[2]/n, 4),
		Takeover: round(sum[3]/n, 4), WorkStart: round(sum[4]/n, 4)}
	// The total is the parts' sum (rounded like them): the mean of the
	// handoffs, which handoffOf checked against the simulator's own.
	for _, v := range h.phases() {
		h.Total += v
	}
	h.Total = round(h.Total, 4)
	return h, nil
}

// handoffOf splits the run's one graceful handoff into its phases (ms):
// work stop, release, notice, takeover, work start, and the whole. The
// instants come from the trace: the leader's stop, its work returned, the
// store's commit of its release, the next leader seeing the lock free,
// starting to lead, and its work running. Their sum must be the
// simulator's failover.
func handoffOf(r *sim.Result, trace []byte) ([]float64, error) {
	var fo *sim.Failover
	for i, f := range r.Failovers {
		if f.Cause == "stop" && !f.Unfinished {
			fo = &r.Failovers[i]
			break
		}
	}
	if fo == nil {
		return nil, errors.New("no graceful handoff in the run")
	}
	from, to := fo.From, fo.To
	// Each step: who ("--": the store) and how its trace line begins.
	steps := []struct{ who, text string }{
		{from, "FAULT stop"},
		{from, "leader work returned"},
		{"--", "store: update by " + from + ` -> holder=""`},
		{to, `sees leader ""`},
		{to, "STARTED leading"},
		{to, "leader work running"},
	}
	at := make([]float64, 0, len(steps))
	sc := bufio.NewScanner(bytes.NewReader(trace))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() && len(at) < len(steps) {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		st := steps[len(at)]
		rest := strings.TrimSpace(strings.SplitN(strings.TrimSpace(sc.Text()), f[1], 2)[1])
		if f[1] != st.who || !strings.HasPrefix(rest, st.text) {
			continue
		}
		sec, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "s"), 64)
		if err != nil {
			return nil, fmt.Errorf("trace: %q: %w", sc.Text(), err)
		}
		if ms := sec * 1000; len(at) > 0 || ms >= fo.AtMS-0.001 {
			at = append(at, ms)
		}
	}
	if len(at) < len(steps) {
		return nil, fmt.Errorf("trace: no %q of %s after the handoff's start", steps[len(at)].text, steps[len(at)].who)
	}
	out := make([]float64, 0, 6)
	for i := 1; i < len(at); i++ {
		out = append(out, at[i]-at[i-1])
	}
	total := at[len(at)-1] - at[0]
	if d := total - fo.FailoverMS; d > 0.002 || d < -0.002 {
		return nil, fmt.Errorf("the phases add up to %.3fms, the simulator's handoff is %.3fms", total, fo.FailoverMS)
	}
	return append(out, total), nil
}

// StoreNames lists the simulator's store profiles, sorted.
func StoreNames() []string {
	var names []string
	for k := range sim.Profiles {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}
