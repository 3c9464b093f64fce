package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseCronErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"cron:\n  schedule: \"@every 10s\"\n  bogus: 1\n", "line 3: cron.bogus: unknown key"},
		{"cron:\n  run_time: 2s\n", "line 2: cron.schedule: missing"},
		{"cron:\n  schedule: \"@every 0s\"\n", "line 2: cron.schedule: @every 0s: want a whole number of seconds"},
		{"cron:\n  schedule: \"61 * * * *\"\n", "line 2: cron.schedule: \"61 * * * *\": "},
		{"cron:\n  schedule: \"0 0 30 2 *\"\n", "line 2: cron.schedule: it never comes due"},
		{"cron:\n  schedule: \"@hourly\"\n  timezone: Mars/Base\n", `line 3: cron.timezone: "Mars/Base": not a time zone name`},
		{"cron:\n  schedule: \"@hourly\"\n  timezone: Local\n", `line 3: cron.timezone: "Local": not a time zone name`},
		{"cron:\n  schedule: \"@hourly\"\n  interrupted: twice\n", "line 3: cron.interrupted: want skip or rerun"},
		{"cron:\n  schedule: \"@hourly\"\n  overlap: parallel\n", "line 3: cron.overlap: want wait or skip"},
		{"cron:\n  schedule: \"@hourly\"\n  catch_up: -1s\n", "line 3: cron.catch_up: must not be negative"},
		{"cron:\n  schedule: \"@hourly\"\n  catch_up: 200h\n", "line 3: cron.catch_up: must be at most 168h0m0s"},
		{"cron:\n  schedule: \"@hourly\"\n  run_time: 25h\n", "line 3: cron.run_time: must be at most 24h0m0s"},
		{"cron:\n  schedule: \"@hourly\"\n  schedule: \"@daily\"\n", "line 3: cron.schedule: given twice"},
		{"cron: \"@hourly\"\n", "line 1: cron: want a mapping of keys"},
	} {
		_, err := ParseScenario([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseScenario(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
	sc, err := ParseScenario([]byte("cron:\n  schedule: \"*/5 * * * *\"\n  timezone: Europe/Berlin\n  catch_up: 0s\n" +
		"  interrupted: rerun\n  overlap: skip\n  run_time: 3s\n  run_spread: 1s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c := sc.Cron; c == nil || c.Schedule != "*/5 * * * *" || c.Timezone != "Europe/Berlin" || c.CatchUp != 0 || !c.Rerun ||
		!c.SkipOverlap || c.RunTime != 3*time.Second || c.RunSpread != time.Second {
		t.Fatalf("parsed %+v", sc.Cron)
	}
	def, err := ParseScenario([]byte("cron: {schedule: \"@every 10s\"}\n"))
	if err != nil || def.Cron.CatchUp >= 0 || def.Cron.Rerun || def.Cron.SkipOverlap || def.Cron.RunTime != time.Second {
		t.Fatalf("defaults: %+v %v", def.Cron, err)
	}
	bad := *def
	bad.Cron = &Cron{Schedule: "@every 10s", RunTime: -time.Second}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "Cron.RunTime") {
		t.Errorf("Validate with a negative run time: %v", err)
	}
	bad.Cron = &Cron{Schedule: "nonsense"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "Cron: schedule") {
		t.Errorf("Validate with a bad schedule: %v", err)
	}
}

// cronScenario is three nodes starting at once, a job @every 10s of 5s,
// and the leader crashed at 41s (mid-run of the slot at 40s; the first leader starts after its first-read hold and create probation, at about 23s), back 30s
// later.
func cronScenario(t *testing.T, extra string) *Scenario {
	t.Helper()
	return parse(t, `
name: cron-scripted
nodes: 3
duration: 2m
start_spread: 0s
network: {latency: 2ms}
cron: {schedule: "@every 10s", catch_up: 1m, run_time: 5s`+extra+`}
faults:
  - {at: 41s, crash: leader, restart_after: 30s}
`)
}

// A crash mid-run: with interrupted: skip the slot is cut short and not
// run again; with rerun it runs once more on the next leader.
func TestCronCrashMidRun(t *testing.T) {
	r := run(t, cronScenario(t, ""), 1)
	c := r.Cron
	if c == nil || c.CutShort != 1 || c.Reruns != 0 || c.Duplicated != 0 || c.OverlappingRuns != 0 || c.Missed != 0 || !r.Safe() {
		t.Fatalf("skip: %+v, violations %+v", c, r.Violations)
	}
	if c.Starts != c.Run || c.Run+c.Pending != c.Due || c.Run < 9 { // slots 30s to 1m50s
		t.Errorf("skip: %+v", c)
	}
	trace := traceOf(t, cronScenario(t, ""), 1)
	// (Terms are a hybrid logical clock: the leader's wall-clock seconds.)
	for _, want := range []string{`cron: run of slot 2026-01-01T00:00:40Z cut short \(crash\)`,
		`cron: slot 2026-01-01T00:00:40Z was cut short \(term \d+\): not run again \(interrupted: skip\)`} {
		if !regexp.MustCompile(want).MatchString(trace) {
			t.Errorf("skip: the trace has no %q", want)
		}
	}

	sc := cronScenario(t, ", interrupted: rerun")
	r = run(t, sc, 1)
	c = r.Cron
	if c.CutShort != 1 || c.Reruns != 1 || c.Duplicated != 0 || c.OverlappingRuns != 0 || c.Missed != 0 || c.Starts != c.Run+1 || !r.Safe() {
		t.Fatalf("rerun: %+v, violations %+v", c, r.Violations)
	}
	if trace := traceOf(t, sc, 1); !regexp.MustCompile(`cron: rerun of slot 2026-01-01T00:00:40Z starts \(term \d+\)`).MatchString(trace) {
		t.Errorf("rerun: the trace has no rerun of the slot at 40s")
	}
	// The failover: the slot at 50s came due before the next leader led,
	// and starts about a lease after the crash (41s + 15s).
	if p := c.FailoverDelayMS; p.N == 0 || p.Max > float64(sc.LeaseDuration+time.Second)/1e6 {
		t.Errorf("rerun: failover delays %+v, want some, all within LeaseDuration + 1s", p)
	}
}

// Clocks three minutes apart either way never give a slot twice nor two
// runs at once, whoever leads: only the slots' start times move.
func TestCronClocksApartNeverDuplicate(t *testing.T) {
	sc := parse(t, `
name: cron-apart
nodes: 3
duration: 30m
lease: {duration: 15s, renew_deadline: 10s, retry_period: 2s}
network: {latency: 2ms, jitter: 2ms}
clocks:
  n1: {offset: -3m}
  n3: {offset: 3m}
cron: {schedule: "@every 10s", catch_up: 10m, run_time: 2s, run_spread: 6s}
random_faults: {every: 60s, kinds: [crash, stop, pause], max_down: 10s}
`)
	early, late := false, false
	for seed := uint64(1); seed <= 30; seed++ {
		r := run(t, sc, seed)
		c := r.Cron
		if c.Duplicated != 0 || c.OverlappingRuns != 0 || !r.Safe() || c.Starts != c.Run {
			t.Fatalf("seed %d: %+v, violations %+v", seed, c, r.Violations)
		}
		if c.Missed != c.ClaimedNotRun {
			t.Errorf("seed %d: %d missed, %d of them claimed: %v", seed, c.Missed, c.ClaimedNotRun, c.MissedSlots)
		}
		for _, d := range c.delays {
			early = early || d < -170e3
			late = late || d > 170e3
		}
	}
	if !early || !late {
		t.Errorf("no run led by a clock ahead (early %v) or behind (late %v)", early, late)
	}
}

// --overlap skip skips only slots that came due while a run was going: a
// new leader's catch-up after a failover runs the missed slots, as with
// wait (issue: it skipped all but the latest).
func TestCronOverlapSkipCatchesUp(t *testing.T) {
	sc := parse(t, `
name: cron-skip-catch-up
nodes: 3
duration: 2m
network: {latency: 2ms, jitter: 1ms}
cron: {schedule: "@every 2s", catch_up: 1m, overlap: skip, run_time: 200ms}
faults:
  - {at: 30s, crash: leader, restart_after: 1m}
`)
	for seed := uint64(1); seed <= 5; seed++ {
		r := run(t, sc, seed)
		if c := r.Cron; c.Skipped != 0 || c.Missed != c.ClaimedNotRun || c.Duplicated != 0 || !r.Safe() {
			t.Errorf("seed %d: %+v, want no slot skipped or missed", seed, c)
		}
	}
}

// A catch-up window shorter than the failover drops the slots due during
// it; one longer drops none.
func TestCronCatchUpAgainstFailover(t *testing.T) {
	scenario := func(catchUp string) *Scenario {
		return parse(t, `
name: cron-catch-up
nodes: 3
duration: 2m
network: {latency: 2ms, jitter: 1ms}
cron: {schedule: "@every 2s", catch_up: `+catchUp+`, run_time: 200ms}
faults:
  - {at: 30s, crash: leader, restart_after: 1m}
`)
	}
	for seed := uint64(1); seed <= 10; seed++ {
		short := run(t, scenario("5s"), seed)
		long := run(t, scenario("1m"), seed)
		if len(short.Failovers) != 1 || short.Failovers[0].FailoverMS < 10e3 {
			t.Fatalf("seed %d: failovers %+v, want one of more than 10s", seed, short.Failovers)
		}
		// A failover of about 15s with slots every 2s: 5s of catch-up runs
		// the last two or three, the others (at least 3) are dropped.
		if c := short.Cron; c.Missed-c.ClaimedNotRun < 3 || c.Duplicated != 0 {
			t.Errorf("seed %d, catch_up 5s: %+v, want 3 or more missed", seed, c)
		}
		if c := long.Cron; c.Missed != c.ClaimedNotRun || c.Duplicated != 0 || !long.Safe() {
			t.Errorf("seed %d, catch_up 1m: %+v, want none missed (but a claim whose answer was lost)", seed, c)
		}
	}
}

// overlap: skip: a run longer than the period skips the slots that come
// due meanwhile, recorded as such; none runs twice, none overlaps.
func TestCronOverlapSkip(t *testing.T) {
	sc := parse(t, `
name: cron-overlap
nodes: 3
duration: 5m
cron: {schedule: "@every 10s", catch_up: 1m, overlap: skip, run_time: 25s}
`)
	r := run(t, sc, 1)
	c := r.Cron
	if c.Skipped < 10 || c.Run < 5 || c.Missed != 0 || c.Duplicated != 0 || c.OverlappingRuns != 0 || !r.Safe() {
		t.Fatalf("%+v", c)
	}
	sc.Cron.SkipOverlap = false // wait: every slot runs, late, and falls behind
	c = run(t, sc, 1).Cron
	if c.Skipped != 0 || c.OverlappingRuns != 0 || c.Duplicated != 0 || c.StartDelayMS.Max < 30e3 {
		t.Fatalf("wait: %+v", c)
	}
}

// A leader paused past its lease with no watchdog keeps its run going
// (frozen) while the next leader starts the next slot: two runs at once,
// a safety violation. The watchdog does not help against a whole-process
// pause (it is paused too), but it does against a stall.
func TestCronOverlappingRunsAreViolations(t *testing.T) {
	src := `
name: cron-paused
nodes: 3
duration: 3m
start_spread: 0s
network: {latency: 2ms}
cron: {schedule: "@every 10s", run_time: 8s}
faults:
  - {at: 31s, %s: leader, for: 25s}
`
	r := run(t, parse(t, fmt.Sprintf(src, "pause")), 1)
	if r.Safe() || r.Cron.OverlappingRuns == 0 {
		t.Fatalf("pause: %+v, violations %+v: want overlapping runs", r.Cron, r.Violations)
	}
	found := false
	for _, v := range r.Violations {
		found = found || v.Kind == "overlapping_runs" && v.UntilMS > v.AtMS && len(v.Nodes) == 2 && v.Slot != ""
	}
	if !found {
		t.Errorf("pause: violations %+v, want an overlapping_runs one", r.Violations)
	}
	var text bytes.Buffer
	r.WriteText(&text)
	if !strings.Contains(text.String(), "two runs at once until") {
		t.Errorf("the text does not say so:\n%s", text.String())
	}
	stall := parse(t, "watchdog: true\n"+fmt.Sprintf(src, "stall"))
	if r := run(t, stall, 1); !r.Safe() || r.Cron.OverlappingRuns != 0 || r.Cron.CutShort != 1 {
		t.Fatalf("stall with the watchdog: %+v, violations %+v", r.Cron, r.Violations)
	}
}

// The aggregate of the cron figures is the same whatever the order the
// runs are added in, byte for byte, and its text shows them.
func TestCronAggregate(t *testing.T) {
	sc := load(t, "cron-rerun")
	sc.Duration = 10 * time.Minute
	var runs []*Result
	for seed := uint64(1); seed <= 6; seed++ {
		runs = append(runs, run(t, sc, seed))
	}
	var fwd, back Summary
	due, reruns := 0, 0
	for i := range runs {
		fwd.Add(runs[i])
		back.Add(runs[len(runs)-1-i])
		due += runs[i].Cron.Due
		reruns += runs[i].Cron.Reruns
	}
	a, _ := json.Marshal(fwd.Aggregate())
	b, _ := json.Marshal(back.Aggregate())
	if !bytes.Equal(a, b) {
		t.Fatalf("the order of the runs changes the aggregate:\n%s\n%s", a, b)
	}
	agg := fwd.Aggregate()
	if agg.Cron == nil || agg.Cron.Due != due || agg.Cron.Reruns != reruns || agg.Cron.StartDelayMS.N != agg.Cron.Run {
		t.Fatalf("aggregate %+v, want %d due, %d reruns", agg.Cron, due, reruns)
	}
	var text bytes.Buffer
	agg.WriteText(&text)
	for _, want := range []string{`cron "@every 10s", summed over the runs: `, " slots due: ", " reruns, ", "slot start delay: ", "after a failover: "} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the aggregate's text has no %q:\n%s", want, text.String())
		}
	}
	// Without a cron: block, neither a run nor the aggregate has a cron
	// figure (the JSON of other scenarios is unchanged).
	plain := run(t, load(t, "leader-crash"), 1)
	js, _ := json.Marshal(plain)
	if plain.Cron != nil || bytes.Contains(js, []byte(`"cron"`)) || Summarize([]*Result{plain}).Cron != nil {
		t.Errorf("a scenario without cron: has cron figures")
	}
}

// The outcomes written in the cron example scenarios hold over 20 seeds.
func TestCronExampleOutcomes(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		for _, name := range []string{"cron-crashes", "cron-rerun", "cron-skewed-clocks", "cron-fast-lease"} {
			r := run(t, load(t, name), seed)
			c := r.Cron
			if !r.Safe() || c.Duplicated != 0 || c.OverlappingRuns != 0 {
				t.Errorf("%s seed %d: %+v, violations %+v", name, seed, c, r.Violations)
			}
			// None missed, but (with interrupted: skip) a slot whose
			// claim landed while its answer was lost.
			if c.Missed != c.ClaimedNotRun || name == "cron-rerun" && c.Missed != 0 {
				t.Errorf("%s seed %d: %d missed (%d claimed but never run): %v", name, seed, c.Missed, c.ClaimedNotRun, c.MissedSlots)
			}
			if c.Run+c.Missed+c.Pending+c.Skipped != c.Due || c.Pending > 2 || c.Starts != c.Run+c.Reruns {
				t.Errorf("%s seed %d: the slots do not add up: %+v", name, seed, c)
			}
			if name != "cron-rerun" && c.Reruns != 0 || name == "cron-rerun" && c.Reruns > c.CutShort {
				t.Errorf("%s seed %d: %d reruns, %d cut short", name, seed, c.Reruns, c.CutShort)
			}
		}
	}
}

// leasehold stopped between a claim's answer and its command's start: the
// guard refuses to start the command once the lease it is given has run
// out, so the next leader's run does not overlap it. Without the guard
// (watchdog: false) the command starts on resume, beside the next
// leader's run.
func TestCronGuardRefusesALateStart(t *testing.T) {
	src := `
name: cron-late-start
nodes: 3
duration: 1m
start_spread: 0s
network: {latency: 1ms}
lease: {duration: 2s, renew_deadline: 1500ms, retry_period: 250ms}
work_start: 100ms
watchdog: %v
cron: {schedule: "@every 2s", run_time: 1500ms}
faults:
  - {at: 20050ms, stall: leader, for: 5s}
`
	guarded := parse(t, fmt.Sprintf(src, true))
	r := run(t, guarded, 1)
	if !r.Safe() || r.Cron.OverlappingRuns != 0 || r.Cron.Duplicated != 0 || r.Cron.ClaimedNotRun != 1 {
		t.Fatalf("with the guard: %+v, violations %+v", r.Cron, r.Violations)
	}
	if tr := traceOf(t, guarded, 1); !strings.Contains(tr, "cron: the lease ran out before the command of slot 2026-01-01T00:00:20Z could start") {
		t.Error("with the guard: the trace does not say the command was not started")
	}
	r = run(t, parse(t, fmt.Sprintf(src, false)), 1)
	if r.Safe() || r.Cron.OverlappingRuns == 0 {
		t.Fatalf("without the guard: %+v, violations %+v: want the late command to overlap the next leader's", r.Cron, r.Violations)
	}
}

// FuzzCron builds cron scenarios in code from numbers: schedules, windows,
// run times, both interrupted and overlap modes, clocks apart and faults.
// Whatever happens, no slot starts twice beyond its rerun and no two runs
// overlap while every clock runs true, nothing pauses and the guard is on
// (and a run is deterministic, with slots that add up).
func FuzzCron(f *testing.F) {
	f.Add(uint64(1), uint8(10), uint16(60), uint16(2000), uint16(3000), uint8(0), []byte{0, 0, 30, 10})
	f.Add(uint64(2), uint8(2), uint16(0), uint16(800), uint16(0), uint8(3), []byte{1, 0, 20, 30, 5, 1, 40, 200})
	f.Add(uint64(3), uint8(60), uint16(900), uint16(20000), uint16(15000), uint8(12), []byte{4, 2, 10, 90, 0, 0, 50, 5})
	f.Fuzz(func(t *testing.T, seed uint64, every uint8, catchUp, runMS, spreadMS uint16, mode uint8, faults []byte) {
		sc := DefaultScenario()
		sc.Duration = 3 * time.Minute
		sc.Watchdog = mode&4 == 0
		sc.Clocks = make([]Clock, sc.Nodes)
		for i := range sc.Clocks {
			sc.Clocks[i].Rate = 1
		}
		if mode&8 != 0 {
			sc.Clocks[0].Offset, sc.Clocks[2].Offset = -3*time.Minute, 2*time.Minute
		}
		sc.Cron = &Cron{Schedule: fmt.Sprintf("@every %ds", 1+int(every)%120), CatchUp: time.Duration(catchUp)*time.Second - time.Second,
			Rerun: mode&1 != 0, SkipOverlap: mode&2 != 0,
			RunTime: time.Duration(runMS) * time.Millisecond, RunSpread: time.Duration(spreadMS) * time.Millisecond}
		if sc.Cron.CatchUp > maxCatchUp {
			sc.Cron.CatchUp = maxCatchUp
		}
		kinds := []FaultKind{Crash, Stop, Stall, Partition, ClockJump, StoreDown, Pause}
		paused := false
		for i := 0; i+3 < len(faults); i += 4 {
			k := kinds[int(faults[i])%len(kinds)]
			fl := Fault{At: time.Duration(faults[i+2]) * 700 * time.Millisecond, Kind: k, Targets: []string{Leader},
				For: time.Duration(faults[i+3])*100*time.Millisecond + time.Millisecond}
			switch k {
			case ClockJump:
				fl.For, fl.By = 0, time.Duration(int(faults[i+3])-128)*time.Second
				if fl.By == 0 {
					fl.By = time.Second
				}
			case StoreDown:
				fl.Targets = nil
			case Pause:
				paused = true
			}
			if faults[i+1]%4 > 0 && k != StoreDown {
				fl.Targets = []string{NodeID(int(faults[i+1])%4 - 1)}
			}
			sc.Faults = append(sc.Faults, fl)
		}
		if err := sc.Validate(); err != nil {
			t.Fatal(err)
		}
		j1, t1, _ := outputs(t, &sc, seed)
		j2, t2, _ := outputs(t, &sc, seed)
		if !bytes.Equal(j1, j2) || !bytes.Equal(t1, t2) {
			t.Fatalf("two runs with seed %d differ", seed)
		}
		var r Result
		if err := json.Unmarshal(j1, &r); err != nil {
			t.Fatal(err)
		}
		c := r.Cron
		if c.Run+c.Missed+c.Pending+c.Skipped != c.Due || c.Starts != c.Run+c.Reruns+c.Duplicated {
			t.Fatalf("the slots do not add up: %+v", c)
		}
		if !paused && sc.Watchdog && (c.Duplicated != 0 || c.OverlappingRuns != 0) {
			t.Fatalf("%+v, violations %+v", c, r.Violations)
		}
	})
}

// The SVG draws every cron run on its node's lane, runs cut short in
// their own colour, and two runs at once as a violation on both lanes.
func TestCronSVG(t *testing.T) {
	sc := cronScenario(t, ", interrupted: rerun")
	r, err := Run(sc, Options{Seed: 1, Timeline: true})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	if got := strings.Count(svg, "<title>slot "); got != r.Cron.Starts {
		t.Errorf("%d runs drawn, want %d", got, r.Cron.Starts)
	}
	for _, want := range []string{"slot 2026-01-01T00:00:40Z: run cut short from", "slot 2026-01-01T00:00:40Z: rerun from",
		">cron run<", ">cut short<", "cron: "} {
		if !strings.Contains(svg, want) {
			t.Errorf("the SVG has no %q", want)
		}
	}
	paused := parse(t, fmt.Sprintf(`
name: cron-paused
nodes: 3
duration: 3m
start_spread: 0s
cron: {schedule: "@every 10s", run_time: 8s}
faults:
  - {at: 31s, %s: leader, for: 25s}
`, "pause"))
	r, err = Run(paused, Options{Seed: 1, Timeline: true})
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(b.String(), "<title>two runs at once (slot "); got != 2*r.Cron.OverlappingRuns || got == 0 {
		t.Errorf("%d overlap bands drawn, want two per overlapping pair (%d)", got, r.Cron.OverlappingRuns)
	}
	if strings.Contains(b.String(), "stale write accepted") {
		t.Error("a cron violation is drawn as a stale write")
	}
}
