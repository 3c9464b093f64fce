package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/leasehold-go/leasehold/cronstep"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/schedule"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// cronOptions are cron's own flags.
type cronOptions struct {
	schedule, timezone, job string
	interrupted, overlap    string
	catchUp, grace          time.Duration
	http, probe             string
	clockOffset             time.Duration // a test hook: this replica's wall clock is off by this much
	shell                   bool
}

// The longest catch-up window, and the most slots one catch-up runs.
const (
	maxCatchUp      = 7 * 24 * time.Hour
	maxCatchUpSlots = 1000
)

func newCronCmd() *cobra.Command {
	var co cronOptions
	var o *overrides
	cmd := &cobra.Command{
		Use:   "cron --config FILE --schedule SPEC [flags] -- COMMAND [ARGS...]",
		Short: "Run COMMAND on a schedule, each slot once across replicas and failovers",
		Long: `Run on every replica, long-lived. The replica that leads runs COMMAND at
every slot of the schedule; before each run it claims the slot in the lock's
record with a compare-and-swap, so a slot that is claimed is never run again,
by anyone — whatever the replicas' clocks say. A new leader runs the slots
due since the last one claimed, within --catch-up (default: one period of
the schedule), in order.

A run cut short (its leader died or lost the lock mid-run) is "interrupted":
--interrupted skip (the default) leaves it (at most once), rerun runs it
again on the next leader (at least once) with LEASEHOLD_SLOT_RERUN=1.

A run still going when the next slot is due: the slot waits (the default),
or is skipped with --overlap skip; runs never overlap. Each run is held to
the lease like leasehold run's command (the guard's watchdog, --grace): it
never outlives this replica's leadership.

The schedule is standard cron syntax ("*/5 * * * *"), a descriptor
(@hourly, @daily) or "@every 30s" (slots at multiples of 30s since the
epoch); --timezone says where it is read (default UTC). The command gets
LEASEHOLD_SLOT (RFC 3339), LEASEHOLD_JOB, LEASEHOLD_TERM, LEASEHOLD_IDENTITY,
LEASEHOLD_LOCK and LEASEHOLD_LEADER=1. See docs/cron.md.`,
		Example: `  leasehold cron --config leasehold.yaml --schedule "*/5 * * * *" -- ./report.sh
  leasehold cron --config leasehold.yaml --schedule "@every 30s" --catch-up 10m --interrupted rerun -- ./sync`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("name the command to run after --, for example: leasehold cron --config f.yaml --schedule \"@hourly\" -- ./job.sh")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return cronCmd(cmd.Context(), o, co, cmd.Flags(), args, cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false)
	o = addConfigFlags(fs, candidate)
	fs.StringVar(&co.schedule, "schedule", "", `the schedule: "*/5 * * * *", "@hourly" or "@every 30s" (required here or as cron.schedule in the config file)`)
	fs.StringVar(&co.timezone, "timezone", "UTC", "the time zone the schedule is read in, for example Europe/Berlin")
	// The defaults of these are said in their help: the config file's
	// cron: block fills in what no flag gives.
	fs.StringVar(&co.job, "job", "", "the job's name in the lock's record (default: the lock's name)")
	fs.DurationVar(&co.catchUp, "catch-up", 0, "a new leader runs the slots missed within this long (default: one period of the schedule; 0s with --catch-up=0s: none)")
	fs.StringVar(&co.interrupted, "interrupted", "skip", "a run cut short by a failover: skip it (at most once) or rerun it (at least once)")
	fs.StringVar(&co.overlap, "overlap", "wait", "a slot due while a run is still going: wait for the run, or skip the slot")
	fs.BoolVar(&co.shell, "shell", false, "run the command as a shell command string (sh -c, the arguments joined with spaces)")
	fs.DurationVar(&co.grace, "grace", 0, "on a stop signal, how long a run going may take to finish; after SIGTERM, how long it gets before SIGKILL (as for leasehold run)")
	fs.StringVar(&co.http, "http", "", "serve /, /healthz and /metrics on this address")
	fs.StringVar(&co.probe, "probe-http", "", "also serve /healthz and /metrics alone on this address")
	fs.DurationVar(&co.clockOffset, "clock-offset", 0, "for tests: read the schedule on a wall clock off by this much")
	fs.MarkHidden("clock-offset")
	return cmd
}

// cronJob is what a leader's scheduling loop needs.
type cronJob struct {
	sched       *schedule.Schedule
	job         string
	catchUp     time.Duration
	rerun       bool
	skipOverlap bool
	command     []string
	grace       time.Duration
	guards      *guards          // started once the config is checked
	now         func() time.Time // the wall clock, with the test offset
	cfg         config
	log         *slog.Logger
	drain       drain // a shutdown lets the run going finish
}

// drain is how a shutdown treats a run: a run going when the stop is asked
// for gets --grace to finish on its own while the lease is still renewed
// (so it is marked done and its slot is not lost); no run starts after
// the stop was asked for. Then the elector stops and releases the lock.
type drain struct {
	mu       sync.Mutex
	stopping bool          // a shutdown was asked for
	running  chan struct{} // closed when the run going ends; nil: none
}

// begin reports whether a run may start (no shutdown asked for) and, if
// so, marks it going.
func (d *drain) begin() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping {
		return false
	}
	d.running = make(chan struct{})
	return true
}

// end marks the run ended (and done, if it could be).
func (d *drain) end() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running != nil {
		close(d.running)
		d.running = nil
	}
}

// asked reports whether a shutdown was asked for.
func (d *drain) asked() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopping
}

// stop is the shutdown: it calls cancel at once if no run is going, else
// once the run has ended or grace has passed, whichever comes first.
func (d *drain) stop(grace time.Duration, cancel func(), log *slog.Logger) {
	d.mu.Lock()
	d.stopping = true
	running := d.running
	d.mu.Unlock()
	if running == nil {
		cancel()
		return
	}
	log.Info("stopping: the run going gets --grace to finish", "grace", grace)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-running:
	case <-t.C:
		log.Warn("the run did not finish within --grace; stopping it", "grace", grace)
	}
	cancel()
}

func cronCmd(ctx context.Context, o *overrides, co cronOptions, fs *pflag.FlagSet, command []string, stderr io.Writer) error {
	if err := checkHTTPFlags(co.http, co.probe); err != nil {
		return err
	}
	command, err := resolveCommand(command, co.shell)
	if err != nil {
		return err
	}
	if fs.Changed("grace") && co.grace <= 0 {
		return usagef("--grace (%v) must be positive: it is how long a run gets between SIGTERM and SIGKILL", co.grace)
	}
	job := &cronJob{command: command, grace: co.grace, now: func() time.Time { return time.Now().Add(co.clockOffset) }}
	ss, err := o.open(ctx, stderr, func(cfg config) error {
		if err := job.resolve(cfg, co, fs); err != nil {
			return err
		}
		return graceRule(&job.grace, fs.Changed("grace"))(cfg)
	})
	if err != nil {
		return err
	}
	defer ss.close()
	job.cfg, job.log = ss.cfg, ss.log.With("job", job.job)
	becomeSubreaper()
	if err := ss.srv.serve(ctx, co.http, co.probe); err != nil {
		return err
	}
	job.guards = newGuards(ctx, command, job.grace, job.log)
	defer job.guards.close()
	job.log.Info("scheduling", "schedule", job.sched.String(), "timezone", job.sched.Location().String(),
		"next", job.sched.Next(job.now()).Format(time.RFC3339))
	for ctx.Err() == nil {
		if err := job.campaign(ctx, ss); err != nil {
			return err
		}
	}
	job.log.Info("stopped on signal")
	return nil
}

// resolve sets the job from the config file's cron: block and the flags
// (which win); errors name the flag, or the key and its line.
func (c *cronJob) resolve(cfg config, co cronOptions, fs *pflag.FlagSet) error {
	fc := cfg.Cron
	pick := func(flag, key, fromFlag, fromFile, def string) (value, name string) {
		switch {
		case fs.Changed(flag):
			return fromFlag, "--" + flag
		case fromFile != "":
			return fromFile, cfg.at(key) + key
		}
		return def, "--" + flag
	}
	spec, specName := pick("schedule", "cron.schedule", co.schedule, fc.Schedule, "")
	if spec == "" {
		return usagef("--schedule: missing: say when to run, for example --schedule \"*/5 * * * *\" or --schedule \"@every 30s\" (or cron.schedule in the config file)")
	}
	tz, tzName := pick("timezone", "cron.timezone", co.timezone, fc.Timezone, "UTC")
	sched, err := parseSchedule(spec, specName, tz, tzName)
	if err != nil {
		return err
	}
	c.sched = sched
	var name string
	c.job, name = pick("job", "cron.job", co.job, fc.Job, cfg.Name)
	if err := elector.ValidJobName(c.job); err != nil {
		return usagef("%s %q: %v", name, c.job, err)
	}
	switch v, name := pick("interrupted", "cron.interrupted", co.interrupted, fc.Interrupted, "skip"); v {
	case "skip":
	case "rerun":
		c.rerun = true
	default:
		return usagef("%s %q: want skip or rerun", name, v)
	}
	switch v, name := pick("overlap", "cron.overlap", co.overlap, fc.Overlap, "wait"); v {
	case "wait":
	case "skip":
		c.skipOverlap = true
	default:
		return usagef("%s %q: want wait or skip", name, v)
	}
	c.catchUp = -1 // one period of the schedule, read at each catch-up
	catchName := "--catch-up"
	switch {
	case fs.Changed("catch-up"):
		c.catchUp = co.catchUp
	case fc.CatchUpSet:
		c.catchUp, catchName = fc.CatchUp, cfg.at("cron.catch_up")+"cron.catch_up"
	}
	if c.catchUp != -1 && (c.catchUp < 0 || c.catchUp > maxCatchUp) {
		return usagef("%s (%v) must be from 0s to %v", catchName, c.catchUp, maxCatchUp)
	}
	return nil
}

// parseSchedule reads a schedule and its time zone; errors name where each
// came from.
func parseSchedule(spec, specName, tz, tzName string) (*schedule.Schedule, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "" || tz == "Local" {
		return nil, usagef("%s %q: not a time zone name such as UTC or Europe/Berlin", tzName, tz)
	}
	sched, err := schedule.Parse(spec, loc)
	if err != nil {
		return nil, usagef("%s: %v", specName, err)
	}
	if sched.Next(time.Now()).IsZero() {
		return nil, usagef("%s %q: it never comes due", specName, spec)
	}
	return sched, nil
}

// campaign runs one Elector until ctx is done: while it leads, the
// scheduling loop runs the due slots.
func (c *cronJob) campaign(ctx context.Context, ss *session) error {
	feed := newLeaseFeed()
	// The elector runs until the shutdown has let the run going finish
	// (drain), not until the signal.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopDrain := context.AfterFunc(ctx, func() { c.drain.stop(c.grace, cancel, c.log) })
	defer stopDrain()
	var e *elector.Elector
	e, err := elector.New(c.cfg.Lease, ss.backend, elector.Callbacks{
		OnStartedLeading: func(lctx context.Context, term int64) { c.lead(lctx, e, term, feed) },
		OnStoppedLeading: func() {},
		OnRenewed:        func(_ int64, until time.Time) { feed.renewed(until) },
	}, elector.WithLogger(ss.base), elector.WithObserver(ss.srv.obs))
	if err != nil {
		return usagef("%v", err)
	}
	ss.srv.e.Store(e)
	return e.Run(runCtx)
}

// lead is the leader's scheduling loop: until ctx is done (leadership lost
// or shutdown), it does what the pure step (cronstep) decides: run every
// due slot, claimed first, in order; then sleep until the next slot.
func (c *cronJob) lead(ctx context.Context, e *elector.Elector, term int64, feed *leaseFeed) {
	log := c.log.With("term", term)
	loop := cronstep.New(c.sched, cronstep.Options{CatchUp: c.catchUp, Rerun: c.rerun, SkipOverlap: c.skipOverlap, MaxSlots: maxCatchUpSlots}, term)
	for first := true; ctx.Err() == nil && !c.drain.asked(); first = false {
		now := c.now()
		st := e.Jobs()[c.job]
		a := loop.Step(st, now)
		if first && st.Started.IsZero() && a.Kind == cronstep.Wait {
			log.Info("the job has no history in the record: it starts with its next slot (nothing to catch up on)", "next", a.Until.Format(time.RFC3339))
		}
		switch a.Kind {
		case cronstep.Idle:
			log.Warn("the schedule has no slot in the next five years")
			<-ctx.Done()
			return
		case cronstep.Wait:
			sleep(ctx, a.Until.Sub(now))
		case cronstep.Leave:
			log.Warn("a run was cut short by a failover and is not run again (--interrupted skip)", "slot", a.Slot.Format(time.RFC3339), "its_term", a.Term)
		case cronstep.Skip:
			// Slots that came due while this leadership's last run was
			// going are claimed as done without running, so that no
			// later leader runs them.
			for _, s := range a.Skipped {
				_, err := e.Claim(ctx, c.job, s)
				if err == nil {
					err = e.Done(ctx, c.job, s)
				}
				if err == nil {
					log.Info("skipped a slot: a run was still going when it came due (--overlap skip)", "slot", s.Format(time.RFC3339))
					continue
				}
				if !errors.Is(err, elector.ErrAlreadyClaimed) {
					// Leadership may be lost (then ctx ends); try again
					// after a retry period rather than spin.
					sleep(ctx, c.cfg.Lease.RetryPeriod)
					break
				}
			}
		case cronstep.Rerun, cronstep.Run:
			rerun := a.Kind == cronstep.Rerun
			if rerun {
				log.Info("running again a slot cut short by a failover (--interrupted rerun)", "slot", a.Slot.Format(time.RFC3339), "its_term", a.Term)
			}
			began, ended, ok := c.runSlot(ctx, e, term, feed, a.Slot, rerun, log)
			if !ended.IsZero() {
				loop.Ran(began, ended)
			}
			if !ok {
				// Cut short, most likely by the end of this leadership
				// (then ctx ends): the slot counts as interrupted.
				sleep(ctx, c.cfg.Lease.RetryPeriod)
			}
		}
	}
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// runSlot claims slot (rerun: claims it again, as the rerun of a run cut
// short) and runs the command for it; it reports when the command began
// and ended on the schedule's clock (zero if it did not run), and ok false
// if the run was cut short or the claim failed.
func (c *cronJob) runSlot(ctx context.Context, e *elector.Elector, term int64, feed *leaseFeed, slot time.Time, rerun bool, log *slog.Logger) (began, ended time.Time, ok bool) {
	log = log.With("slot", slot.Format(time.RFC3339))
	if c.drain.asked() {
		return began, ended, false // no claim after a stop was asked for
	}
	var err error
	if rerun {
		_, err = e.Reclaim(ctx, c.job, slot)
	} else {
		_, err = e.Claim(ctx, c.job, slot)
	}
	switch {
	case errors.Is(err, elector.ErrAlreadyClaimed):
		log.Info("the slot was claimed before; not running it")
		return began, ended, true
	case err != nil:
		if ctx.Err() == nil {
			// A write that may have landed all the same is put back by
			// the elector (its run does not start): the slot is tried
			// again while it is due.
			log.Warn("could not claim the slot; not running it now", "err", err)
		}
		// Leadership may be lost: the elector says so by ending ctx.
		return began, ended, false
	}
	env := append(os.Environ(), "LEASEHOLD_LEADER=1", "LEASEHOLD_TERM="+strconv.FormatInt(term, 10),
		"LEASEHOLD_IDENTITY="+c.cfg.Identity, "LEASEHOLD_LOCK="+c.cfg.Name, "LEASEHOLD_JOB="+c.job,
		"LEASEHOLD_SLOT="+slot.In(c.sched.Location()).Format(time.RFC3339))
	if rerun {
		env = append(env, "LEASEHOLD_SLOT_RERUN=1")
	}
	var code int
	var how childEnd
	started := c.drain.begin()
	if started {
		began = c.now()
		code, how, started = runChild(ctx, c.guards, env, feed, log)
		ended = c.now()
	}
	defer c.drain.end() // after the done below: a shutdown waits for it
	if !started {
		// Certain that nothing ran (the guard said so, or the leadership
		// ended before the grant): the claim is put back, so that the
		// slot is not taken for a run cut short and may run again.
		if err := e.Abandon(c.job, slot); err != nil {
			log.Warn("the command did not start, and its claim could not be put back: the slot counts as cut short", "status", code, "err", err)
		} else {
			log.Warn("the command did not start; its claim is put back, the slot may run again", "status", code)
		}
		return time.Time{}, time.Time{}, false
	}
	switch how {
	case endStopped, endWatchdog, endGuardDied:
		log.Warn("the run was cut short", "status", code, "after", c.now().Sub(began).Round(time.Millisecond))
		return began, ended, false
	}
	if err := e.Done(ctx, c.job, slot); err != nil {
		log.Warn("the run finished but could not be marked done: it counts as cut short", "status", code, "err", err)
		return began, ended, false
	}
	log.Info("run done", "status", code, "took", ended.Sub(began).Round(time.Millisecond))
	return began, ended, true
}
