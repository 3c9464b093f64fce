package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/spf13/cobra"
)

// demoOptions are the demo's timings.
type demoOptions struct {
	nodes int
	cfg   elector.Config
	hold  time.Duration // how long a leader leads before each fault
	seed  uint64
}

// demoResult is what the demo measured.
type demoResult struct {
	terms      []int64
	handoff    time.Duration // graceful: stop of the leader → next started
	stepDown   time.Duration // partition: cut → old leader stopped
	failover   time.Duration // partition: cut → next leader started
	overlap    bool          // two candidates led at once
	leaderless time.Duration
}

func newDemoCmd() *cobra.Command {
	o := demoOptions{cfg: elector.Config{ReleaseOnCancel: true}}
	cmd := &cobra.Command{
		Use:   "demo [flags]",
		Short: "Three candidates on the in-memory store in real time: a graceful handoff and a partitioned leader",
		Long: `Start candidates on one in-memory store, in this process and in real time;
stop the first leader gracefully (it releases the lock: the handoff takes
milliseconds), then cut the next leader off from the store (it steps down at
its renew deadline; another leads once the lease runs out), and print what
happened and how long each step took. Ctrl-C stops it (exit 0).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return demoCmd(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&o.nodes, "nodes", 3, "number of candidates (at least 2)")
	fs.DurationVar(&o.cfg.LeaseDuration, "lease-duration", 2*time.Second, "LeaseDuration")
	fs.DurationVar(&o.cfg.RenewDeadline, "renew-deadline", 1500*time.Millisecond, "RenewDeadline")
	fs.DurationVar(&o.cfg.RetryPeriod, "retry-period", 500*time.Millisecond, "RetryPeriod")
	fs.DurationVar(&o.hold, "hold", 3*time.Second, "how long each leader leads before the next fault")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the poll jitter")
	// The demo's first spelling; one name per concept now.
	fs.DurationVar(&o.cfg.LeaseDuration, "lease", 2*time.Second, "LeaseDuration")
	fs.MarkDeprecated("lease", "use --lease-duration")
	return cmd
}

func demoCmd(ctx context.Context, o demoOptions, stdout io.Writer) error {
	if o.nodes < 2 {
		return usagef("--nodes must be at least 2, got %d", o.nodes)
	}
	o.cfg.Identity = "n1"
	if err := o.cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	res, err := runDemo(ctx, stdout, o)
	if ctx.Err() != nil {
		// Ctrl-C is a normal way to end the demo.
		fmt.Fprintln(stdout, "\nstopped")
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nsummary: graceful handoff %v; partitioned leader stepped down %v after the cut, next leader started %v after the cut (leaderless %v); terms %v; two leaders at once: %v\n",
		round(res.handoff), round(res.stepDown), round(res.failover), round(res.leaderless), res.terms, res.overlap)
	if res.overlap {
		return fmt.Errorf("two candidates led at once")
	}
	return nil
}

func round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Microsecond)
}

// runDemo runs the candidates on one memory store, stops the first leader
// gracefully, then cuts the next one off, and reports what it saw.
func runDemo(ctx context.Context, w io.Writer, o demoOptions) (demoResult, error) {
	store := memory.New()
	start := time.Now()
	var (
		mu       sync.Mutex
		res      demoResult
		leading  = map[string]bool{}
		started  = make(chan string, 16)
		stopped  = make(chan string, 16)
		lastStop time.Time
	)
	var (
		sayMu    sync.Mutex
		finished bool
	)
	finish := func() {
		sayMu.Lock()
		finished = true
		sayMu.Unlock()
	}
	defer finish()
	say := func(format string, args ...any) {
		sayMu.Lock()
		defer sayMu.Unlock()
		if finished {
			return
		}
		fmt.Fprintf(w, "%8.3fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "leasehold demo: %d candidates on the in-memory store; lease %v, renew deadline %v, retry period %v\n\n",
		o.nodes, o.cfg.LeaseDuration, o.cfg.RenewDeadline, o.cfg.RetryPeriod)

	cancels := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
	}()
	for i := range o.nodes {
		id := fmt.Sprintf("n%d", i+1)
		cfg := o.cfg
		cfg.Identity = id
		e, err := elector.New(cfg, store.Backend("demo", id), elector.Callbacks{
			OnStartedLeading: func(ctx context.Context, term int64) {
				mu.Lock()
				for other, l := range leading {
					if l && other != id {
						res.overlap = true
					}
				}
				leading[id] = true
				res.terms = append(res.terms, term)
				if !lastStop.IsZero() {
					res.leaderless += time.Since(lastStop)
				}
				mu.Unlock()
				say("%s leads (term %d)", id, term)
				started <- id
				<-ctx.Done()
				mu.Lock()
				leading[id] = false
				lastStop = time.Now()
				mu.Unlock()
			},
			OnStoppedLeading: func() {
				say("%s stopped leading", id)
				stopped <- id
			},
		}, elector.WithRand(rand.New(rand.NewPCG(o.seed, uint64(i)))),
			elector.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			return res, err
		}
		cctx, cancel := context.WithCancel(ctx)
		cancels[id] = cancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Run(cctx)
		}()
	}

	wait := func(ch chan string, what string) (string, time.Time, error) {
		limit := 3*o.cfg.LeaseDuration + time.Second
		select {
		case id := <-ch:
			return id, time.Now(), nil
		case <-ctx.Done():
			return "", time.Time{}, ctx.Err()
		case <-time.After(limit):
			return "", time.Time{}, fmt.Errorf("%s did not happen within %v", what, limit)
		}
	}
	pause := func() error {
		select {
		case <-time.After(o.hold):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	first, _, err := wait(started, "a first leadership")
	if err != nil {
		return res, err
	}
	if err := pause(); err != nil {
		return res, err
	}
	say("stopping %s gracefully: it releases the lock", first)
	t0 := time.Now()
	cancels[first]()
	delete(cancels, first)
	second, t1, err := wait(started, "a handoff")
	if err != nil {
		return res, err
	}
	res.handoff = t1.Sub(t0)
	say("handoff from %s to %s took %v", first, second, round(res.handoff))

	if err := pause(); err != nil {
		return res, err
	}
	say("cutting %s off from the store", second)
	t0 = time.Now()
	store.Partition(second)
	for {
		id, t, err := wait(stopped, "the partitioned leader stepping down")
		if err != nil {
			return res, err
		}
		if id == second {
			res.stepDown = t.Sub(t0)
			break
		}
	}
	say("%s stepped down %v after the cut: its renew deadline passed", second, round(res.stepDown))
	third, t2, err := wait(started, "a failover")
	if err != nil {
		return res, err
	}
	res.failover = t2.Sub(t0)
	say("failover from %s to %s took %v after the cut (its last renewal is at most a retry period older)", second, third, round(res.failover))
	finish()
	mu.Lock()
	defer mu.Unlock()
	return res, nil
}
