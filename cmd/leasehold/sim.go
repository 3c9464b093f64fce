package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/leasehold-go/leasehold/docs/scenarios"
	"github.com/leasehold-go/leasehold/sim"
)

// errUnsafe marks a simulation that found a safety violation: exit 3.
var errUnsafe = errors.New("safety violation")

type simFlags struct {
	seed     uint64
	seedSet  bool
	runs     int
	json     bool
	perRun   bool
	svg      string
	trace    string
	scenario string
}

func parseSimFlags(args []string, stderr io.Writer) (simFlags, error) {
	var f simFlags
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: leasehold sim [--seed N] [--runs K] [--json [--per-run]] [--svg FILE] [--trace FILE] SCENARIO.yaml")
		fs.PrintDefaults()
	}
	fs.Func("seed", "seed of the run (overrides the scenario's seed)", func(s string) error {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want a whole number")
		}
		f.seed, f.seedSet = n, true
		return nil
	})
	fs.IntVar(&f.runs, "runs", 1, "number of runs, with seeds seed..seed+runs-1, in parallel")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of text")
	fs.BoolVar(&f.perRun, "per-run", false, "with --json and --runs: also print every run (kept in memory until the end)")
	fs.StringVar(&f.svg, "svg", "", "write a timeline of the (first) run as SVG to this file")
	fs.StringVar(&f.trace, "trace", "", "write every event of the (first) run to this file")
	// Flags may come before or after the scenario file.
	rest := args
	for {
		if err := parseFlags(fs, rest); err != nil {
			return f, err
		}
		if fs.NArg() == 0 {
			break
		}
		if f.scenario != "" {
			return f, usagef("one scenario file, got %q and %q", f.scenario, fs.Arg(0))
		}
		f.scenario = fs.Arg(0)
		rest = fs.Args()[1:]
	}
	switch {
	case f.scenario == "":
		return f, usagef("name a scenario file (see docs/scenarios/)")
	case f.runs < 1 || f.runs > 1_000_000:
		return f, usagef("--runs must be from 1 to 1000000, got %d", f.runs)
	}
	return f, nil
}

func simCmd(args []string, stdout, stderr io.Writer) error {
	f, err := parseSimFlags(args, stderr)
	if err != nil {
		return err
	}
	data, err := readScenario(f.scenario)
	if err != nil {
		return usagef("%v", err)
	}
	sc, err := sim.ParseScenario(data)
	if err != nil {
		return usagef("%s: %v", f.scenario, err)
	}
	seed := sc.Seed
	if f.seedSet {
		seed = f.seed
	}
	first, agg, kept, err := runSims(sc, seed, f)
	if err != nil {
		return err
	}
	if f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		switch {
		case f.runs == 1:
			err = enc.Encode(first)
		case f.perRun:
			err = enc.Encode(struct {
				Runs      []*sim.Result `json:"runs"`
				Aggregate sim.Aggregate `json:"aggregate"`
			}{kept, agg})
		default:
			err = enc.Encode(struct {
				Aggregate sim.Aggregate `json:"aggregate"`
			}{agg})
		}
		if err != nil {
			return err
		}
	} else if f.runs == 1 {
		first.WriteText(stdout)
	} else {
		agg.WriteText(stdout)
	}
	if len(agg.UnsafeSeeds) > 0 {
		s := agg.UnsafeSeeds[0]
		return fmt.Errorf("%w in scenario %s with seed %d (rerun: leasehold sim --seed %d --svg out.svg %s)",
			errUnsafe, sc.Name, s, s, f.scenario)
	}
	return nil
}

// readScenario reads a scenario file or, if there is no such file, one of
// the examples built in by name ("leader-crash").
func readScenario(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return data, err
	}
	if b, berr := scenarios.FS.ReadFile(strings.TrimSuffix(name, ".yaml") + ".yaml"); berr == nil {
		return b, nil
	}
	var names []string
	entries, _ := scenarios.FS.ReadDir(".")
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return nil, fmt.Errorf("%v (built-in scenarios: %s)", err, strings.Join(names, ", "))
}

// runSims runs seeds seed..seed+runs-1 on all cores; the first run gets the
// trace and the timeline. Each run is folded into the aggregate as it
// finishes and dropped, unless --per-run keeps them (then in seed order):
// memory does not grow with --runs.
func runSims(sc *sim.Scenario, seed uint64, f simFlags) (first *sim.Result, agg sim.Aggregate, kept []*sim.Result, err error) {
	opts := sim.Options{Seed: seed, Timeline: f.svg != ""}
	var traceFile *os.File
	if f.trace != "" {
		t, err := os.Create(f.trace)
		if err != nil {
			return nil, agg, nil, usagef("%v", err)
		}
		defer t.Close()
		traceFile, opts.Trace = t, t
	}
	if first, err = sim.Run(sc, opts); err != nil {
		return nil, agg, nil, err
	}
	var sum sim.Summary
	sum.Add(first)
	if f.perRun {
		kept = make([]*sim.Result, f.runs)
		kept[0] = first
	}
	if f.runs > 1 {
		type done struct {
			i   int
			r   *sim.Result
			err error
		}
		next, results := make(chan int), make(chan done)
		var wg sync.WaitGroup
		for range runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					r, err := sim.Run(sc, sim.Options{Seed: seed + uint64(i)})
					results <- done{i, r, err}
				}
			}()
		}
		go func() {
			for i := 1; i < f.runs; i++ {
				next <- i
			}
			close(next)
			wg.Wait()
			close(results)
		}()
		var errs []error
		for d := range results {
			if d.err != nil {
				errs = append(errs, d.err)
				continue
			}
			sum.Add(d.r)
			if kept != nil {
				kept[d.i] = d.r
			}
		}
		if err := errors.Join(errs...); err != nil {
			return nil, agg, nil, err
		}
	}
	if traceFile != nil {
		if err := traceFile.Close(); err != nil {
			return nil, agg, nil, err
		}
	}
	if f.svg != "" {
		out, err := os.Create(f.svg)
		if err != nil {
			return nil, agg, nil, usagef("%v", err)
		}
		if err := first.WriteSVG(out); err != nil {
			out.Close()
			return nil, agg, nil, err
		}
		if err := out.Close(); err != nil {
			return nil, agg, nil, err
		}
	}
	return first, sum.Aggregate(), kept, nil
}
