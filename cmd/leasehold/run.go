package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/leasehold-go/leasehold/elector"
)

// exitCode is an error that makes the process exit with a given status
// (run passes its command's status through).
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, o := configCommand("run", "leasehold run --config FILE [flags] -- COMMAND [ARGS...]", stderr)
	httpAddr := fs.String("http", "", "serve /, /healthz and /metrics on this address (for example 127.0.0.1:4040)")
	grace := fs.Duration("grace", 0, "after SIGTERM, how long the command gets before SIGKILL (default: half of the smaller of lease.renew_deadline and lease.duration - lease.renew_deadline, at most 10s)")
	restart := fs.Bool("restart", false, "when the command exits on its own, release and keep campaigning instead of exiting")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	command := fs.Args()
	if len(command) == 0 {
		return usagef("name the command to run after --, for example: leasehold run --config f.yaml -- ./job.sh")
	}
	if *httpAddr != "" {
		if err := checkHTTPAddr(*httpAddr); err != nil {
			return err
		}
	}
	graceSet := false
	fs.Visit(func(f *flag.Flag) { graceSet = graceSet || f.Name == "grace" })
	if graceSet && *grace <= 0 {
		return usagef("--grace (%v) must be positive: it is how long the command gets between SIGTERM and SIGKILL", *grace)
	}
	ss, err := o.open(ctx, stderr, func(cfg config) error {
		// After losing the lease the command must be gone before another
		// replica may start one (the margin), and on shutdown before the
		// elector gives up waiting to release (the renew deadline).
		margin := cfg.Lease.LeaseDuration - cfg.Lease.RenewDeadline
		limit := min(margin, cfg.Lease.RenewDeadline)
		if !graceSet {
			*grace = max(min(limit/2, 10*time.Second), time.Millisecond)
		}
		switch {
		case *grace >= margin:
			return usagef("--grace (%v) must be shorter than lease.duration - lease.renew_deadline (%v): after losing the lease the command must be gone before another replica may start", *grace, margin)
		case *grace >= cfg.Lease.RenewDeadline:
			return usagef("--grace (%v) must be shorter than lease.renew_deadline (%v): on shutdown the lock is released only once the command has stopped, and only that long is waited for", *grace, cfg.Lease.RenewDeadline)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer ss.close()
	log := ss.log
	becomeSubreaper()
	if *httpAddr != "" {
		if _, err := ss.srv.listen(ctx, *httpAddr); err != nil {
			return err
		}
	}

	// With --restart, a command that keeps exiting quickly is restarted
	// after a growing pause (RetryPeriod doubling up to LeaseDuration), so a
	// broken job does not hammer the store with acquire/release cycles.
	pause := time.Duration(0)
	for {
		began := time.Now()
		end, err := campaign(ctx, ss, command, *grace)
		code := end.code
		switch {
		case err != nil:
			return err
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
		case !*restart:
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

// campaignEnd is how one campaign ended.
type campaignEnd struct {
	code     int  // the command's status, when it ended
	exited   bool // the command exited on its own (or its guard died)
	watchdog bool // the guard's watchdog stopped the command: campaign again
}

// campaign runs one Elector until ctx is cancelled, the command exits on its
// own while leading, or the guard's watchdog stops it (then the lock is
// released, if it is still held).
func campaign(ctx context.Context, ss *session, command []string, grace time.Duration) (campaignEnd, error) {
	cfg, log := ss.cfg, ss.log
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ended := make(chan campaignEnd, 1)
	feed := newLeaseFeed()
	e, err := elector.New(cfg.Lease, ss.backend, elector.Callbacks{
		OnStartedLeading: func(lctx context.Context, term int64) {
			env := append(os.Environ(), "LEASEHOLD_LEADER=1", "LEASEHOLD_TERM="+strconv.FormatInt(term, 10),
				"LEASEHOLD_IDENTITY="+cfg.Identity, "LEASEHOLD_LOCK="+cfg.Name)
			c, how := runChild(lctx, command, env, grace, feed, log.With("term", term))
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
		OnNewLeader:      func(string) {},
		OnRenewed:        func(_ int64, until time.Time) { feed.renewed(until) },
	}, elector.WithLogger(ss.base), elector.WithObserver(ss.srv.obs))
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
