package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/leasehold-go/leasehold/docs/scenarios"
	"github.com/leasehold-go/leasehold/sim"
	"github.com/spf13/cobra"
	"golang.org/x/term"
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
	progress io.Writer // where progress goes; nil for none
}

func newSimCmd() *cobra.Command {
	var f simFlags
	cmd := &cobra.Command{
		Use:   "sim [flags] SCENARIO",
		Short: "Simulate a scenario in virtual time: failover, leaderless time, dual leadership, fenced writes",
		Long: `Run the election logic of N candidates against a simulated store and
network in virtual time, with the faults of a scenario file (or of a
built-in scenario named without .yaml: see docs/scenarios/), and report
failover and leaderless time per cause, dual leadership and fenced writes.
docs/simulator.md describes the scenario keys and the output.

--runs K runs seeds seed..seed+K-1 on all cores and prints the aggregate;
progress goes to stderr when it is a terminal. Exit status: 0 no violation,
3 a safety violation in some run (the seed is printed with the command that
replays it), 2 bad input; interrupted (Ctrl-C, SIGTERM), it prints what
finished and exits 130 or 143.`,
		Example: `  leasehold sim leader-crash
  leasehold sim --runs 1000 random-chaos
  leasehold sim --json --seed 42 --svg timeline.svg partition-leader`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch len(args) {
			case 0:
				return usagef("name a scenario file (see docs/scenarios/)")
			case 1:
				return nil
			}
			return usagef("one scenario file, got %q and %q", args[0], args[1])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f.scenario = args[0]
			f.seedSet = cmd.Flags().Changed("seed")
			if f.runs < 1 || f.runs > 1_000_000 {
				return usagef("--runs must be from 1 to 1000000, got %d", f.runs)
			}
			if f.runs > 1 && isTerminal(cmd.ErrOrStderr()) {
				f.progress = cmd.ErrOrStderr()
			}
			return simCmd(cmd.Context(), f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.Uint64Var(&f.seed, "seed", 0, "seed of the run (overrides the scenario's seed)")
	fs.IntVar(&f.runs, "runs", 1, "number of runs, with seeds seed..seed+runs-1, in parallel")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of text")
	fs.BoolVar(&f.perRun, "per-run", false, "with --json and --runs: also print every run (kept in memory until the end)")
	fs.StringVar(&f.svg, "svg", "", "write a timeline of the (first) run as SVG to this file")
	fs.StringVar(&f.trace, "trace", "", "write every event of the (first) run to this file")
	return cmd
}

// isTerminal reports whether w is a terminal (for progress lines).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// shownSeeds is how many unsafe seeds the text output lists; --json has
// them all.
const shownSeeds = 5

func simCmd(ctx context.Context, f simFlags, stdout, stderr io.Writer) error {
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
	first, agg, kept, err := runSims(ctx, sc, seed, f)
	if err != nil {
		return err
	}
	interrupted := ctx.Err() != nil
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
	if f.svg != "" {
		// On stderr: stdout stays the report (text or JSON).
		fmt.Fprintf(stderr, "leasehold sim: wrote the timeline of the first run (seed %d) to %s\n", seed, f.svg)
	}
	if interrupted {
		fmt.Fprintf(stderr, "leasehold sim: interrupted: %d of %d runs finished (reported above)\n", agg.Runs, f.runs)
		if len(agg.UnsafeSeeds) > 0 {
			fmt.Fprintf(stderr, "leasehold sim: %s\n", unsafeMessage(sc.Name, f.scenario, agg.UnsafeSeeds))
		}
		return exitCode(interruptedCode(ctx))
	}
	if len(agg.UnsafeSeeds) > 0 {
		return fmt.Errorf("%w %s", errUnsafe, unsafeMessage(sc.Name, f.scenario, agg.UnsafeSeeds))
	}
	return nil
}

// unsafeMessage names the unsafe seeds — the first few and how many — and
// the command that replays the first.
func unsafeMessage(name, file string, seeds []uint64) string {
	s := seeds[0]
	msg := fmt.Sprintf("in scenario %s with seed %d", name, s)
	if n := len(seeds); n > 1 {
		shown := make([]string, 0, shownSeeds)
		for _, x := range seeds[:min(n, shownSeeds)] {
			shown = append(shown, strconv.FormatUint(x, 10))
		}
		more := ""
		if n > shownSeeds {
			more = fmt.Sprintf(" and %d more; --json lists them all", n-shownSeeds)
		}
		msg = fmt.Sprintf("in scenario %s in %d runs, seeds %s%s", name, n, strings.Join(shown, ", "), more)
	}
	return fmt.Sprintf("%s (rerun: leasehold sim --seed %d --svg out.svg %s)", msg, s, file)
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
//
// A stop signal (ctx done) stops handing out seeds; the runs under way
// finish (a run takes milliseconds) and what finished is returned.
func runSims(ctx context.Context, sc *sim.Scenario, seed uint64, f simFlags) (first *sim.Result, agg sim.Aggregate, kept []*sim.Result, err error) {
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
		var errs []error
		finished := 1
		var said time.Time
		// Run 0 is the first, made above with its trace and timeline.
		sim.RunMany(ctx, f.runs-1, 0, func(i int) (*sim.Scenario, sim.Options) {
			return sc, sim.Options{Seed: seed + uint64(i+1)}
		}, func(i int, r *sim.Result, err error) {
			finished++
			if f.progress != nil && time.Since(said) > time.Second {
				said = time.Now()
				fmt.Fprintf(f.progress, "\r%d of %d runs", finished, f.runs)
			}
			if err != nil {
				errs = append(errs, err)
				return
			}
			sum.Add(r)
			if kept != nil {
				kept[i+1] = r
			}
		})
		if f.progress != nil {
			fmt.Fprintf(f.progress, "\r%d of %d runs\n", finished, f.runs)
		}
		if err := errors.Join(errs...); err != nil {
			return nil, agg, nil, err
		}
		if kept != nil && ctx.Err() != nil {
			kept = slices.DeleteFunc(kept, func(r *sim.Result) bool { return r == nil })
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
