package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/backend/kube"
	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/bench"
	"github.com/leasehold-go/leasehold/cmd/leasehold/benchreal"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Turn lease parameters into failover, load and safety figures",
		Long: `Measure what lease parameters give: "sweep" on the simulator, for a grid
of parameters, fault mixes and many seeds; "backend" on a real store, side
by side with the store's own election API. docs/timing.md explains the
figures and the timing rules behind them.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newSweepCmd(), newBackendBenchCmd())
	return cmd
}

// backendBenchFlags are bench backend's own flags.
type backendBenchFlags struct {
	candidates, rounds int
	window, lockDelay  time.Duration
	noNative           bool
	json, csv          bool
}

func newBackendBenchCmd() *cobra.Command {
	var f backendBenchFlags
	var o *overrides
	cmd := &cobra.Command{
		Use:   "backend --config FILE [--candidates 5] [--rounds 20] [flags]",
		Short: "Measure election on the configured real store, side by side with the store's own election API",
		Long: `Against the store of the config (etcd, Consul, a Kubernetes apiserver, or
memory), measure leasehold's acquire and renew latency, graceful handoff,
crash failover (a leader dropped without a release) and the requests per
second of the leader and of each follower while nothing changes — with
followers watching and again polling — and in the same run the store's own
election with the same durations where its API has them: client-go's
leaderelection with a LeaseLock (kube), etcd's concurrency.Election, Consul's
api.Lock; then the ratios.

Every lock it creates is named after the config's lock with a random
suffix, and deleted at the end: the config's own lock is not touched. A
crash-failover round takes about a lease duration: use short leases (the
config's lease: block or the flags). Ctrl-C stops it and prints what was
measured. docs/timing.md has figures.`,
		Example: `  leasehold bench backend --config etcd.yaml --lease-duration 4s --renew-deadline 3s --retry-period 500ms
  leasehold bench backend --config kube.yaml --candidates 3 --rounds 10 --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return backendBenchCmd(cmd.Context(), o, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	o = addConfigFlags(fs, candidate)
	fs.IntVar(&f.candidates, "candidates", benchreal.DefaultCandidates, "candidates campaigning on each lock")
	fs.IntVar(&f.rounds, "rounds", benchreal.DefaultRounds, "acquisitions, handoffs and crash failovers sampled")
	fs.DurationVar(&f.window, "window", 0, "how long requests are counted while nothing changes (default: the longest of 10s, 2 lease durations, 5 retry periods)")
	fs.DurationVar(&f.lockDelay, "consul-lock-delay", 0, "Consul's api.Lock: the lock-delay of its sessions (default Consul's 15s)")
	fs.BoolVar(&f.noNative, "no-native", false, "measure leasehold alone, without the store's own election")
	fs.BoolVar(&f.json, "json", false, "print JSON")
	fs.BoolVar(&f.csv, "csv", false, "print CSV")
	return cmd
}

func backendBenchCmd(ctx context.Context, o *overrides, f backendBenchFlags, stdout, stderr io.Writer) error {
	if f.csv && f.json {
		return usagef("--csv and --json: choose one")
	}
	ss, err := o.open(ctx, stderr, nil)
	if err != nil {
		return err
	}
	defer ss.close()
	cfg := ss.cfg
	opts := benchreal.Options{
		Backend:       cfg.Backend,
		Lock:          cfg.Name,
		Candidates:    f.candidates,
		Rounds:        f.rounds,
		Window:        f.window,
		LeaseDuration: cfg.Lease.LeaseDuration,
		RenewDeadline: cfg.Lease.RenewDeadline,
		RetryPeriod:   cfg.Lease.RetryPeriod,
		NoNative:      f.noNative,
		Log:           ss.log,
	}
	if f.lockDelay > 0 {
		opts.ConsulLockDelay = f.lockDelay
	}
	switch {
	case f.json:
		opts.Format = benchreal.FormatJSON
	case f.csv:
		opts.Format = benchreal.FormatCSV
	}
	// Each candidate gets its own connection, as separate processes would;
	// the memory backend's candidates share one store.
	var store *memory.Store
	if cfg.Backend == "memory" {
		store = memory.New()
	}
	opts.NewBackend = func(ctx context.Context, lock, identity string) (elector.Backend, func() error, error) {
		if store != nil {
			return store.Backend(lock, identity), func() error { return nil }, nil
		}
		c := cfg
		c.Name, c.Identity, c.Lease.Identity = lock, identity, identity
		return c.openBackend(ctx, ss.base)
	}
	// The native election reaches the store as the config says: endpoints,
	// credentials, TLS, token, kubeconfig, namespace.
	switch cfg.Backend {
	case "etcd":
		opts.FromEtcd = cfg.backendConfigs["etcd"].(*etcd.Config)
	case "consul":
		opts.FromConsul = cfg.backendConfigs["consul"].(*consul.Config)
	case "kube":
		opts.FromKube = cfg.backendConfigs["kube"].(*kube.Config)
	}
	if err := opts.Validate(); err != nil {
		return usagef("%v", err)
	}
	_, err = benchreal.Run(ctx, opts, stdout)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "leasehold bench backend: interrupted")
		return exitCode(interruptedCode(ctx))
	}
	return err
}

// sweepFlags are bench sweep's flags, as given.
type sweepFlags struct {
	scenario, store, svg               string
	faults, lease, renew, retry, nodes string
	watch                              string
	seeds                              int
	seed                               uint64
	duration, every, maxDown           time.Duration
	skew, loss                         float64
	csv, json, recommend               bool
	maxFailover, tolPause, tolOutage   time.Duration
	maxRequests, tolSkew               float64
	progress                           io.Writer
}

func newSweepCmd() *cobra.Command {
	var f sweepFlags
	d := bench.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "sweep [flags]",
		Short: "Sweep lease parameters on the simulator: failover, load, safety per combination",
		Long: `Run the simulator for every combination of the parameter lists — lease
duration, renew deadline and retry period (as durations, or as plain numbers:
fractions of the lease duration), candidates, watching or polling — under a
mix of random faults, --seeds seeds of --duration each, on every core, and
print per combination: crash failover and leaderless time, graceful
handoff, the share of time without a leader, dual leadership and unsafe
seeds, requests per second in all and per follower, and the clock-rate
skew, pause and store outage it tolerates (the timing rule's bounds,
checked by simulating just inside and just beyond each).

--recommend (or any constraint flag) names the combination to use, then
every safe one that meets every constraint, best first, and under
"rejected" the others with why: unsafe in the sweep's own runs (any seed
with dual leadership, a stale write accepted or a repeated term, under the
faults asked for: never recommended, whatever the constraints), or a
constraint broken, with the measured value. Crash failover p99s within the
noise of each other tie, and the fewer requests, then the larger safety
margins, win (docs/timing.md). When no combination is safe and meets every
constraint it says so, names the closest and what it misses, and exits 3.
--json has the recommendation too. The same flags give the same numbers.`,
		Example: `  leasehold bench sweep --lease-duration 5s,15s,30s --renew-deadline 0.5,0.66 --retry-period 0.1,0.2
  leasehold bench sweep --nodes 3,5 --watch on,off --seeds 200 --svg plots/
  leasehold bench sweep --recommend --max-failover 10s --max-requests-per-sec 5 \
      --tolerate-rate-skew 1.05 --tolerate-pause 2s --tolerate-store-outage 8s`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if isTerminal(cmd.ErrOrStderr()) {
				f.progress = cmd.ErrOrStderr()
			}
			for _, c := range []string{"max-failover", "max-requests-per-sec", "tolerate-rate-skew", "tolerate-pause", "tolerate-store-outage"} {
				f.recommend = f.recommend || cmd.Flags().Changed(c)
			}
			return sweepCmd(cmd.Context(), f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.scenario, "scenario", "", "base scenario (a file or a built-in name); the sweep sets its lease, nodes, watch, duration and random faults")
	fs.StringVar(&f.faults, "faults", "crash,stop,partition,pause", "fault mix: any of "+strings.Join(bench.AllFaults, ","))
	fs.StringVar(&f.store, "store", "", "store profile of the simulator: etcd, kube, consul or memory (default: its plain network)")
	fs.StringVar(&f.lease, "lease-duration", "5s,15s,30s", "lease durations")
	fs.StringVar(&f.renew, "renew-deadline", "2/3", "renew deadlines: durations, or fractions of the lease duration (0.5, 2/3)")
	fs.StringVar(&f.retry, "retry-period", "2/15", "retry periods: durations, or fractions of the lease duration")
	fs.StringVar(&f.nodes, "nodes", "3", "numbers of candidates")
	fs.StringVar(&f.watch, "watch", "on", "followers watch (on) or poll (off): on, off or on,off")
	fs.IntVar(&f.seeds, "seeds", d.Seeds, "seeds per combination")
	fs.Uint64Var(&f.seed, "seed", d.Seed, "first seed")
	fs.DurationVar(&f.duration, "duration", d.Duration, "simulated time per seed")
	fs.DurationVar(&f.every, "every", d.Every, "mean time between random faults")
	fs.DurationVar(&f.maxDown, "max-down", d.MaxDown, "longest random fault")
	fs.Float64Var(&f.skew, "skew", d.Skew, "with the skew fault: the fastest clock's rate over the slowest's")
	fs.Float64Var(&f.loss, "loss", d.Loss, "with the loss fault: the probability a message is lost")
	fs.BoolVar(&f.csv, "csv", false, "print CSV")
	fs.BoolVar(&f.json, "json", false, "print JSON")
	fs.StringVar(&f.svg, "svg", "", "also write tradeoff-STORE.svg (crash failover against requests, a point per combination) and handoff.svg (a handoff's phases per store) into this directory")
	fs.BoolVar(&f.recommend, "recommend", false, "recommend the best safe combination meeting the constraints below, and say why each other is rejected (exit 3 if none)")
	fs.DurationVar(&f.maxFailover, "max-failover", 0, "constraint: crash failover p99 at most this")
	fs.Float64Var(&f.maxRequests, "max-requests-per-sec", 0, "constraint: requests per second of all candidates at most this")
	fs.Float64Var(&f.tolSkew, "tolerate-rate-skew", 0, "constraint: tolerate clocks whose rates differ by this ratio")
	fs.DurationVar(&f.tolPause, "tolerate-pause", 0, "constraint: tolerate a leader's process pause this long")
	fs.DurationVar(&f.tolOutage, "tolerate-store-outage", 0, "constraint: keep the leader through a store outage this long")
	return cmd
}

// list splits a comma-separated flag value.
func list(flag, s string) ([]string, error) {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, usagef("--%s: empty: give at least one value", flag)
	}
	return out, nil
}

// fracs reads durations or fractions of the lease duration.
func fracs(flag, s string) ([]bench.Frac, error) {
	vs, err := list(flag, s)
	if err != nil {
		return nil, err
	}
	var out []bench.Frac
	for _, v := range vs {
		x, err := strconv.ParseFloat(v, 64)
		if a, b, ok := strings.Cut(v, "/"); ok {
			n, err1 := strconv.ParseFloat(a, 64)
			m, err2 := strconv.ParseFloat(b, 64)
			if err, x = errors.Join(err1, err2), n/m; m == 0 {
				err = errors.New("division by zero")
			}
		}
		if err == nil {
			if !(x > 0 && x < 1) {
				return nil, usagef("--%s: %s: a fraction of the lease duration must be between 0 and 1", flag, v)
			}
			out = append(out, bench.Frac{Of: x})
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, usagef("--%s: %q is neither a positive duration (2s) nor a fraction of the lease duration (0.1, 2/15)", flag, v)
		}
		out = append(out, bench.Frac{Abs: d})
	}
	return out, nil
}

// sweepOptions turns the flags into bench.Options; errors name the flag.
func sweepOptions(f sweepFlags) (bench.Options, error) {
	o := bench.DefaultOptions()
	var err error
	lds, err := list("lease-duration", f.lease)
	if err != nil {
		return o, err
	}
	o.Grid.LeaseDurations = nil
	for _, v := range lds {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return o, usagef("--lease-duration: %q is not a positive duration (write it like 15s)", v)
		}
		o.Grid.LeaseDurations = append(o.Grid.LeaseDurations, d)
	}
	if o.Grid.RenewDeadlines, err = fracs("renew-deadline", f.renew); err != nil {
		return o, err
	}
	if o.Grid.RetryPeriods, err = fracs("retry-period", f.retry); err != nil {
		return o, err
	}
	ns, err := list("nodes", f.nodes)
	if err != nil {
		return o, err
	}
	o.Grid.Nodes = nil
	for _, v := range ns {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 || n > 100 {
			return o, usagef("--nodes: %q: want a whole number from 2 to 100", v)
		}
		o.Grid.Nodes = append(o.Grid.Nodes, n)
	}
	ws, err := list("watch", f.watch)
	if err != nil {
		return o, err
	}
	o.Grid.Watch = nil
	for _, v := range ws {
		switch v {
		case "on", "true":
			o.Grid.Watch = append(o.Grid.Watch, true)
		case "off", "false":
			o.Grid.Watch = append(o.Grid.Watch, false)
		default:
			return o, usagef("--watch: %q: want on or off", v)
		}
	}
	if o.Faults, err = list("faults", f.faults); err != nil {
		return o, err
	}
	if f.scenario != "" {
		if o.Base, err = readScenario(f.scenario); err != nil {
			return o, usagef("--scenario: %v", err)
		}
	}
	o.Store, o.Seeds, o.Seed, o.Duration = f.store, f.seeds, f.seed, f.duration
	o.Every, o.MaxDown, o.Skew, o.Loss = f.every, f.maxDown, f.skew, f.loss
	if err := o.Validate(); err != nil {
		return o, usagef("%v", err)
	}
	return o, nil
}

func sweepCmd(ctx context.Context, f sweepFlags, stdout, stderr io.Writer) error {
	if f.csv && f.json {
		return usagef("--csv and --json: choose one")
	}
	if f.csv && f.recommend {
		return usagef("--csv has no room for the recommendation: use --json, or the table")
	}
	o, err := sweepOptions(f)
	if err != nil {
		return err
	}
	for _, s := range o.Skipped() {
		fmt.Fprintf(stderr, "leasehold bench sweep: skipped %s\n", s)
	}
	if f.progress != nil {
		var last time.Time
		o.Progress = func(done, total int) {
			if done == total || time.Since(last) > time.Second {
				last = time.Now()
				fmt.Fprintf(f.progress, "\r%d of %d runs", done, total)
				if done == total {
					fmt.Fprintln(f.progress)
				}
			}
		}
	}
	res, err := bench.Run(ctx, o)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "leasehold bench sweep: interrupted")
		return exitCode(interruptedCode(ctx))
	}
	if err != nil {
		return usagef("%v", err) // the scenario the sweep made is refused: the base scenario or the flags
	}
	var rec *bench.Recommendation
	if f.recommend {
		r := bench.Recommend(res, bench.Constraints{
			MaxFailover: f.maxFailover, MaxRequestsPerSec: f.maxRequests,
			TolerateRateSkew: f.tolSkew, ToleratePause: f.tolPause, TolerateStoreOutage: f.tolOutage,
		})
		rec = &r
	}
	switch {
	case f.json:
		err = res.WriteJSON(stdout, rec)
	case f.csv:
		err = res.WriteCSV(stdout)
	default:
		if err = res.WriteText(stdout); err == nil && rec != nil {
			fmt.Fprintln(stdout)
			rec.WriteText(stdout)
		}
	}
	if err != nil {
		return err
	}
	if f.svg != "" {
		files, err := res.WriteSVG(ctx, f.svg, rec)
		if err != nil {
			return fmt.Errorf("--svg: %w", err)
		}
		fmt.Fprintf(stderr, "leasehold bench sweep: wrote %s\n", strings.Join(files, ", "))
	}
	if rec != nil && rec.Recommended == nil {
		msg := "no combination is safe and meets every constraint"
		if c := rec.Closest; c != nil {
			msg += fmt.Sprintf(" (closest: %s, which misses %s)", c.Params, c.Reasons[0])
		}
		return fmt.Errorf("%w: %s", errNothingRecommended, msg)
	}
	return nil
}

// errNothingRecommended marks a bench sweep --recommend that found no
// combination to recommend: exit 3, so that scripts notice.
var errNothingRecommended = errors.New("nothing recommended")
