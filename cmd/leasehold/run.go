package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// exitCode is an error that makes the process exit with a given status
// (run passes its command's status through).
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// runOptions are run's own flags.
type runOptions struct {
	http, probe string
	grace       time.Duration
	restart     bool
	shell       bool
	wait        time.Duration
}

func newRunCmd() *cobra.Command {
	var ro runOptions
	var o *overrides
	cmd := &cobra.Command{
		Use:   "run --config FILE [flags] -- COMMAND [ARGS...]",
		Short: "Run a long-lived command only while this replica leads",
		Long: `Campaign for the lock and run COMMAND only while this replica leads: the
long-running singleton (a controller, a scheduler, a queue consumer) that
must run on exactly one replica at a time. The command is stopped when
leadership is lost, before another replica may start its own, and the lock
is released when leasehold is stopped (SIGTERM, SIGINT, SIGHUP) or the
command exits.

run is not a scheduler: started from crontab on several hosts, each replica
waits for the lock and runs the job in turn. For scheduled jobs see
docs/scheduled-jobs.md; --wait makes a replica that does not lead give up.`,
		Example: `  leasehold run --config leasehold.yaml -- ./controller --flag
  leasehold run --config leasehold.yaml --wait 0 -- ./nightly-report.sh`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("name the command to run after --, for example: leasehold run --config f.yaml -- ./job.sh")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCmd(cmd.Context(), o, ro, cmd.Flags(), args, cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	// COMMAND's own flags are its own: flags end at COMMAND (or at --).
	fs.SetInterspersed(false)
	o = addConfigFlags(fs, candidate)
	fs.StringVar(&ro.http, "http", "", "serve /, /healthz and /metrics on this address (for example 127.0.0.1:4040)")
	fs.StringVar(&ro.probe, "probe-http", "", "also serve /healthz and /metrics alone on this address (for probes and Prometheus)")
	fs.DurationVar(&ro.grace, "grace", 0, "after SIGTERM, how long the command gets before SIGKILL (default: half of the smaller of lease.renew_deadline and lease.duration - lease.renew_deadline, at most 10s)")
	fs.BoolVar(&ro.restart, "restart", false, "when the command exits on its own, release and keep campaigning instead of exiting")
	fs.BoolVar(&ro.shell, "shell", false, "run the command as a shell command string (sh -c, the arguments joined with spaces), for pipes, && and $VARS")
	fs.DurationVar(&ro.wait, "wait", 0, "give up, with exit status 75, if this replica does not lead within this long, counted after the lease a process waits before its first acquisition; 0 tries once (default: wait for ever)")
	return cmd
}

func runCmd(ctx context.Context, o *overrides, ro runOptions, fs *pflag.FlagSet, command []string, stderr io.Writer) error {
	grace := &ro.grace
	if err := checkHTTPFlags(ro.http, ro.probe); err != nil {
		return err
	}
	command, err := resolveCommand(command, ro.shell)
	if err != nil {
		return err
	}
	graceSet := fs.Changed("grace")
	if graceSet && *grace <= 0 {
		return usagef("--grace (%v) must be positive: it is how long the command gets between SIGTERM and SIGKILL", *grace)
	}
	var gate *waitGate
	if fs.Changed("wait") {
		if ro.wait < 0 {
			return usagef("--wait (%v) must not be negative: 0 tries once", ro.wait)
		}
		gate = &waitGate{wait: ro.wait}
	}
	ss, err := o.open(ctx, stderr, graceRule(grace, graceSet))
	if err != nil {
		return err
	}
	defer ss.close()
	log := ss.log
	becomeSubreaper()
	if err := ss.srv.serve(ctx, ro.http, ro.probe); err != nil {
		return err
	}
	guards := newGuards(ctx, command, *grace, log)
	defer guards.close()

	// With --restart, a command that keeps exiting quickly is restarted
	// after a growing pause (RetryPeriod doubling up to LeaseDuration), so a
	// broken job does not hammer the store with acquire/release cycles.
	pause := time.Duration(0)
	for {
		began := time.Now()
		end, err := campaign(ctx, ss, guards, gate)
		gate = nil // --wait is for the first leadership only
		code := end.code
		switch {
		case err != nil:
			return err
		case end.gaveUp:
			log.Info("did not lead within --wait; giving up", "wait", ro.wait)
			return exitCode(exitNotLeader)
		case ctx.Err() != nil:
			log.Info("stopped on signal")
			return nil
		case end.watchdog:
			// Not the command's doing: campaign again, after a pause so a
			// starved process does not churn the lock.
			pause = ss.cfg.Lease.RetryPeriod
			log.Info("campaigning again after the watchdog stopped the command", "after", pause)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pause):
			}
			continue
		case !end.exited:
			return nil
		case !ro.restart:
			log.Info("command exited; lock released", "status", code)
			if code != 0 {
				return exitCode(code)
			}
			return nil
		}
		if time.Since(began) > ss.cfg.Lease.LeaseDuration {
			pause = 0
		} else {
			pause = min(max(2*pause, ss.cfg.Lease.RetryPeriod), ss.cfg.Lease.LeaseDuration)
		}
		log.Info("command exited; lock released; campaigning again", "status", code, "after", pause)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
	}
}

// graceRule checks --grace against the lease (and sets its default) once
// the config is loaded: after losing the lease the command must be gone
// before another replica may start one (the margin), and on shutdown
// before the elector gives up waiting to release (the renew deadline).
func graceRule(grace *time.Duration, set bool) func(config) error {
	return func(cfg config) error {
		margin := cfg.Lease.LeaseDuration - cfg.Lease.RenewDeadline
		limit := min(margin, cfg.Lease.RenewDeadline)
		if !set {
			*grace = max(min(limit/2, 10*time.Second), time.Millisecond)
		}
		switch {
		case *grace >= margin:
			return usagef("--grace (%v) must be shorter than lease.duration - lease.renew_deadline (%v): after losing the lease the command must be gone before another replica may start", *grace, margin)
		case *grace >= cfg.Lease.RenewDeadline:
			return usagef("--grace (%v) must be shorter than lease.renew_deadline (%v): on shutdown the lock is released only once the command has stopped, and only that long is waited for", *grace, cfg.Lease.RenewDeadline)
		}
		return nil
	}
}

// campaignEnd is how one campaign ended.
type campaignEnd struct {
	code     int  // the command's status, when it ended
	exited   bool // the command exited on its own (or its guard died)
	watchdog bool // the guard's watchdog stopped the command: campaign again
	gaveUp   bool // --wait: this replica did not lead in time
}

// campaign runs one Elector until ctx is cancelled, the command exits on its
// own while leading, or the guard's watchdog stops it (then the lock is
// released, if it is still held).
func campaign(ctx context.Context, ss *session, guards *guards, gate *waitGate) (campaignEnd, error) {
	cfg, log := ss.cfg, ss.log
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ended := make(chan campaignEnd, 1)
	feed := newLeaseFeed()
	var obs elector.Observer = ss.srv.obs
	if gate != nil {
		// A candidate on a store that may forget acquires nothing before
		// a lease after its first read (docs/architecture.md): the try
		// that --wait allows comes after that.
		hold := cfg.Lease.LeaseDuration
		if r, ok := ss.backend.(elector.Remembering); ok && r.NeverForgets() {
			hold = 0
		}
		gate.start(cfg.Identity, hold, cfg.Lease.RenewDeadline, func() {
			ended <- campaignEnd{gaveUp: true}
			stop()
		})
		defer gate.close()
		obs = teeObserver{ss.srv.obs, gate}
	}
	e, err := elector.New(cfg.Lease, ss.backend, elector.Callbacks{
		OnStartedLeading: func(lctx context.Context, term int64) {
			if gate != nil && !gate.lead() {
				return // gave up just before: the lock is released at once
			}
			env := append(os.Environ(), "LEASEHOLD_LEADER=1", "LEASEHOLD_TERM="+strconv.FormatInt(term, 10),
				"LEASEHOLD_IDENTITY="+cfg.Identity, "LEASEHOLD_LOCK="+cfg.Name)
			c, how, _ := runChild(lctx, guards, env, feed, log.With("term", term))
			switch how {
			case endExited, endGuardDied:
				ended <- campaignEnd{code: c, exited: true}
				stop()
			case endWatchdog:
				ended <- campaignEnd{code: c, watchdog: true}
				stop()
			}
		},
		OnStoppedLeading: func() {},
		OnNewLeader: func(id string) {
			if gate != nil {
				gate.newLeader(id)
			}
		},
		OnRenewed: func(_ int64, until time.Time) { feed.renewed(until) },
	}, elector.WithLogger(ss.base), elector.WithObserver(obs))
	if err != nil {
		return campaignEnd{}, usagef("%v", err)
	}
	ss.srv.e.Store(e)
	if err := e.Run(runCtx); err != nil {
		return campaignEnd{}, err
	}
	select {
	case c := <-ended:
		return c, nil
	default:
		return campaignEnd{}, nil
	}
}

// waitGate is run --wait: it gives up on leading once the wait is over and
// this replica has tried — when, after the wait, a finished call fails or
// another candidate is seen to hold the lock, or at the latest a lease (the
// hold before a first acquisition) plus a renew deadline (the longest a
// try can take) after the wait. So --wait 0 takes the lock only if the
// reads find it free (no record, or released) until the hold is over and
// the acquire that follows wins; a lock held by another candidate, even
// one whose lease has run out, is not waited for.
//
// Its methods are called on the elector's goroutine (newLeader, the
// observer's Call, OnStartedLeading) and on a timer's; a mutex orders them.
type waitGate struct {
	wait time.Duration

	mu      sync.Mutex
	self    string
	over    bool   // the wait is over
	leader  string // the leader last seen ("" none)
	leading bool   // this replica has started leading: the gate is open for good
	done    bool   // gave up
	giveUp  func()
	timers  []*time.Timer
}

func (g *waitGate) start(self string, hold, slack time.Duration, giveUp func()) {
	g.self, g.giveUp = self, giveUp
	g.timers = append(g.timers,
		time.AfterFunc(g.wait, func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.over = true
			if g.leader != "" && g.leader != g.self {
				g.quit()
			}
		}),
		time.AfterFunc(g.wait+hold+slack, func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.quit()
		}))
}

func (g *waitGate) close() {
	for _, t := range g.timers {
		t.Stop()
	}
}

// quit gives up, unless leading or given up already; g.mu is held.
func (g *waitGate) quit() {
	if g.leading || g.done {
		return
	}
	g.done = true
	g.giveUp()
}

// lead reports whether this replica may start leading: not if it gave up.
func (g *waitGate) lead() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return false
	}
	g.leading = true
	return true
}

func (g *waitGate) newLeader(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.leader = id
	if g.over && id != "" && id != g.self {
		g.quit()
	}
}

// Call is the elector.Observer method: a failed read or acquire after the
// wait ends the try (a read finding no record is not a failure).
func (g *waitGate) Call(kind elector.Kind, _ elector.Op, _ time.Duration, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.over && err != nil && !errors.Is(err, elector.ErrNotFound) && kind != elector.KindRelease {
		g.quit()
	}
}

// Leading is the elector.Observer method; lead already opened the gate.
func (g *waitGate) Leading(bool, int64, elector.StopReason) {}

// teeObserver reports to two observers.
type teeObserver [2]elector.Observer

func (t teeObserver) Call(kind elector.Kind, op elector.Op, took time.Duration, err error) {
	t[0].Call(kind, op, took, err)
	t[1].Call(kind, op, took, err)
}

func (t teeObserver) Leading(leading bool, term int64, reason elector.StopReason) {
	t[0].Leading(leading, term, reason)
	t[1].Leading(leading, term, reason)
}

// leaseFeed carries the lease deadlines of the elector to the guard: the
// latest deadline, in CLOCK_MONOTONIC nanoseconds, and a wake-up for the
// goroutine that writes it to the guard.
type leaseFeed struct {
	deadline atomic.Int64
	notify   chan struct{}
}

func newLeaseFeed() *leaseFeed { return &leaseFeed{notify: make(chan struct{}, 1)} }

// renewed records a new deadline; it never blocks (OnRenewed must not).
func (f *leaseFeed) renewed(until time.Time) {
	d := monoDeadline(until)
	for {
		old := f.deadline.Load()
		if d <= old || f.deadline.CompareAndSwap(old, d) {
			break
		}
	}
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

// childEnd says how runChild ended.
type childEnd int

const (
	endStopped   childEnd = iota // leadership ended: the command was stopped
	endExited                    // the command exited on its own
	endWatchdog                  // the guard stopped it: the lease ran out with no renewal
	endGuardDied                 // the guard itself died; the command's group was killed
)

// status turns a Wait error into an exit status (128+signal when killed).
func status(err error) int {
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 1
}

// guardCommand is the hidden command under which run starts the user's
// command on Linux (guard_linux.go).
const guardCommand = "__guard"

// monoDeadline turns an instant of the elector's clock into monoNow's
// nanoseconds. The raw clock is read before the remaining time is measured,
// so a pause between the two readings makes the deadline earlier, never
// later.
func monoDeadline(until time.Time) int64 {
	raw := monoNow()
	return raw + int64(time.Until(until))
}
