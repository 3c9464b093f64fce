package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
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
	ss, err := o.open(ctx, stderr, func(cfg config) error {
		// After losing the lease the command must be gone before another
		// replica may start one (the margin), and on shutdown before the
		// elector gives up waiting to release (the renew deadline).
		margin := cfg.Lease.LeaseDuration - cfg.Lease.RenewDeadline
		limit := min(margin, cfg.Lease.RenewDeadline)
		if *grace == 0 {
			*grace = min(limit/2, 10*time.Second)
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
		code, exited, err := campaign(ctx, ss, command, *grace)
		switch {
		case err != nil:
			return err
		case ctx.Err() != nil:
			log.Info("stopped on signal")
			return nil
		case !exited:
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

// campaign runs one Elector until ctx is cancelled or the command exits on
// its own while leading (then the lock is released).
func campaign(ctx context.Context, ss *session, command []string, grace time.Duration) (code int, exited bool, err error) {
	cfg, log := ss.cfg, ss.log
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	childExit := make(chan int, 1)
	e, err := elector.New(cfg.Lease, ss.backend, elector.Callbacks{
		OnStartedLeading: func(lctx context.Context, term int64) {
			env := append(os.Environ(), "LEASEHOLD_LEADER=1", "LEASEHOLD_TERM="+strconv.FormatInt(term, 10),
				"LEASEHOLD_IDENTITY="+cfg.Identity, "LEASEHOLD_LOCK="+cfg.Name)
			c, onItsOwn := runChild(lctx, command, env, grace, log.With("term", term))
			if onItsOwn {
				childExit <- c
				stop()
			}
		},
		OnStoppedLeading: func() {},
		OnNewLeader:      func(string) {},
	}, elector.WithLogger(ss.base), elector.WithObserver(ss.srv.obs))
	if err != nil {
		return 0, false, usagef("%v", err)
	}
	ss.srv.e.Store(e)
	if err := e.Run(runCtx); err != nil {
		return 0, false, err
	}
	select {
	case c := <-childExit:
		return c, true, nil
	default:
		return 0, false, nil
	}
}

// runChild runs the command while ctx lasts, under a guard process
// (leasehold itself, see guard.go) that makes sure the command and its
// children never outlive this process. When ctx is cancelled (leadership
// lost or shutdown) the guard is told to stop the command: SIGTERM, then
// SIGKILL after grace. onItsOwn reports that the command exited by itself.
func runChild(ctx context.Context, command, env []string, grace time.Duration, log *slog.Logger) (code int, onItsOwn bool) {
	self, err := os.Executable()
	if err != nil {
		log.Error("cannot find the leasehold executable to start the command under", "err", err)
		return 127, true
	}
	cmd := exec.Command(self, append([]string{guardCommand, "--"}, command...)...)
	cmd.Env = append(env, guardParentEnv+"="+strconv.Itoa(os.Getpid()), guardGraceEnv+"="+grace.String())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGUSR1}

	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that started the
		// guard exits: keep this goroutine on its thread until it is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		log.Error("cannot start the command", "command", command, "err", err)
		return 127, true
	}
	log.Info("started the command", "guard", cmd.Process.Pid, "command", command)
	select {
	case err := <-done:
		return status(err), true
	case <-ctx.Done():
	}
	log.Info("stopping the command", "grace", grace)
	cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace + 5*time.Second)
	defer t.Stop()
	select {
	case err := <-done:
		code = status(err)
	case <-t.C:
		log.Error("the command's guard did not finish; killing it", "waited", grace+5*time.Second)
		cmd.Process.Kill()
		code = status(<-done)
	}
	log.Info("the command stopped", "status", code)
	return code, false
}

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
