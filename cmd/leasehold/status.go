package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/spf13/cobra"
)

// statusReport is what status prints with --json (one object; with --watch
// one per line and change).
type statusReport struct {
	// Time is when the state was seen (--watch only).
	Time    string `json:"time,omitempty"`
	Lock    string `json:"lock"`
	Backend string `json:"backend"`
	Store   string `json:"store"`
	// State is leading (a holder with a live lease), released, expired (a
	// holder whose lease ran out, by this machine's clock), missing (no
	// record yet), corrupt (a record no candidate writes: a lease beyond
	// elector.MaxLeaseDuration, a renew time further ahead of this
	// machine's clock than a lease; Problem says which) or error (the store
	// could not be read: Error says why).
	State  string `json:"state"`
	Holder string `json:"holder"`
	Term   int64  `json:"term"`
	// The times are null when there is no record.
	AcquireTime     *time.Time `json:"acquire_time"`
	RenewTime       *time.Time `json:"renew_time"`
	LeaseDurationMS int64      `json:"lease_duration_ms"`
	Version         string     `json:"version"`
	Expired         bool       `json:"expired"`
	// Problem is what keeps the lock from working, with what to do about
	// it; empty (and left out) when there is none.
	Problem string `json:"problem,omitempty"`
	Error   string `json:"error,omitempty"`
	// Anomaly (--watch only) says the store did what a healthy store never
	// does since the last line: went back in time (a lower term than one
	// seen) or lost the record.
	Anomaly string `json:"anomaly,omitempty"`
	// Jobs are the record's slot claims (leasehold cron, POST /claim),
	// by job; Schedule the config's cron: schedule and its next slot.
	Jobs     map[string]jobReport `json:"jobs,omitempty"`
	Schedule *scheduleReport      `json:"schedule,omitempty"`
}

// jobReport is a job entry of the record.
type jobReport struct {
	Started     *time.Time `json:"started"`
	StartedTerm int64      `json:"started_term"`
	Done        *time.Time `json:"done"`
	Rerun       bool       `json:"rerun,omitempty"`
	// CutShort: Started is not Done — a run cut short, or still going.
	CutShort bool `json:"cut_short"`
}

// scheduleReport is the config's cron schedule and when it is due next.
type scheduleReport struct {
	Job      string     `json:"job"`
	Spec     string     `json:"spec"`
	Timezone string     `json:"timezone"`
	NextDue  *time.Time `json:"next_due"`
}

// Status states.
const (
	stateLeading  = "leading"
	stateReleased = "released"
	stateExpired  = "expired"
	stateMissing  = "missing"
	stateCorrupt  = "corrupt"
	stateError    = "error"
)

// exit is the status exit code of the state.
func (r statusReport) exit() int {
	switch r.State {
	case stateLeading:
		return exitOK
	case stateError, stateCorrupt:
		return exitNoStore
	}
	return exitNoLeader
}

func newStatusCmd() *cobra.Command {
	var asJSON, watch bool
	var o *overrides
	cmd := &cobra.Command{
		Use:   "status --config FILE [--json] [--watch]",
		Short: "Say who holds the lock (exit 0 a leader, 3 nobody, 4 the store cannot be read)",
		Long: `Read the lock once and say who holds it, its term and its lease.

Exit status: 0 a holder with a live lease; 3 nobody leads (no record yet,
released, or the holder's lease has run out by this machine's clock); 4 the
store cannot be read or the record cannot be decoded; 2 bad input. With
--json the report is a JSON object, with an "error" field when the store
cannot be read.

--watch prints one line (with --json, one JSON object per line) each time
the leader changes, from the backend's watch, until interrupted (exit 0).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if watch {
				return watchStatus(cmd.Context(), o, asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			return statusCmd(cmd.Context(), o, asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o = addConfigFlags(cmd.Flags(), reader)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print a line for every change of leader until interrupted")
	return cmd
}

// statusSession opens the lock for status. A store error is the report's
// (exit 4), not a bare failure; bad input stays bad input (exit 2).
func statusSession(ctx context.Context, o *overrides, stderr io.Writer) (*session, statusReport, error) {
	ss, err := o.open(ctx, stderr, nil)
	if err == nil {
		return ss, statusReport{Lock: ss.cfg.Name, Backend: ss.cfg.Backend, Store: ss.backend.Describe()}, nil
	}
	if isUsage(err) || errors.Is(err, errStopped) {
		return nil, statusReport{}, err
	}
	r := statusReport{State: stateError, Error: err.Error()}
	if cfg, lerr := o.load(os.Getenv); lerr == nil { // it loaded before failing
		r.Lock, r.Backend = cfg.Name, cfg.Backend
	}
	return nil, r, nil
}

// statusCmd reads the lock once and reports it.
func statusCmd(ctx context.Context, o *overrides, asJSON bool, stdout, stderr io.Writer) error {
	ss, r, err := statusSession(ctx, o, stderr)
	if errors.Is(err, errStopped) {
		return exitCode(interruptedCode(ctx)) // nothing was read
	}
	if err != nil {
		return err
	}
	if ss != nil {
		defer ss.close()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rec, ver, err := ss.backend.Get(cctx)
		if ctx.Err() != nil {
			ss.log.Info("stopped on signal before the lock was read")
			return exitCode(interruptedCode(ctx))
		}
		r = ss.report(r, rec, ver, err, time.Since(rec.RenewTime) > rec.LeaseDuration)
		if r.Schedule, err = ss.scheduleReport(rec, time.Now()); err != nil {
			return err
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	} else {
		printStatus(stdout, r)
	}
	if r.State == stateError && !asJSON {
		fmt.Fprintf(stderr, "leasehold status: %s\n", r.Error)
	}
	return exitCode(r.exit())
}

// report fills r in from a read of the lock; expired says whether the
// holder's lease has run out as the caller judges it.
func (ss *session) report(r statusReport, rec elector.Record, ver elector.Version, err error, expired bool) statusReport {
	r.State, r.Error, r.Problem = "", "", ""
	switch {
	case err == nil:
		r.Holder, r.Term = rec.Holder, rec.Term
		acq, ren := rec.AcquireTime, rec.RenewTime
		r.AcquireTime, r.RenewTime = nonZero(acq), nonZero(ren)
		r.LeaseDurationMS, r.Version = rec.LeaseDuration.Milliseconds(), string(ver)
		// Seen from here: by this machine's clock. Other machines' clocks
		// may differ; electors never rely on this.
		r.Expired = rec.Holder == "" || expired
		switch {
		case rec.Holder == "":
			r.State = stateReleased
		case expired:
			r.State = stateExpired
		default:
			r.State = stateLeading
		}
		if rec.TermExhausted() {
			r.Problem = termExhausted(ss.cfg.deleteHint(ss.backend), r)
		}
		if p := absurdRecord(rec, time.Now(), ss.cfg.deleteHint(ss.backend)); p != "" {
			r.State, r.Expired, r.Problem = stateCorrupt, true, p
		}
		r.Jobs = nil
		for name, st := range rec.Jobs {
			if r.Jobs == nil {
				r.Jobs = map[string]jobReport{}
			}
			r.Jobs[name] = jobReport{Started: nonZero(st.Started), StartedTerm: st.StartedTerm, Done: nonZero(st.Done),
				Rerun: st.Rerun, CutShort: st.Started.After(st.Done)}
		}
	case isNotFound(err):
		r.Jobs = nil
		r.Holder, r.Term, r.AcquireTime, r.RenewTime, r.LeaseDurationMS, r.Version = "", 0, nil, nil, 0, ""
		r.State, r.Expired = stateMissing, true
	default:
		r.State, r.Error = stateError, err.Error()
	}
	return r
}

// scheduleReport is the config's cron: schedule (nil without one) and its
// next slot after the job's last claimed one and now.
func (ss *session) scheduleReport(rec elector.Record, now time.Time) (*scheduleReport, error) {
	c := ss.cfg.Cron
	if c.Schedule == "" {
		return nil, nil
	}
	tz := c.Timezone
	if tz == "" {
		tz = "UTC"
	}
	sched, err := parseSchedule(c.Schedule, ss.cfg.at("cron.schedule")+"cron.schedule", tz, ss.cfg.at("cron.timezone")+"cron.timezone")
	if err != nil {
		return nil, err
	}
	job := c.Job
	if job == "" {
		job = ss.cfg.Name
	}
	next := sched.Next(laterOf(now, rec.Jobs[job].Started))
	return &scheduleReport{Job: job, Spec: sched.String(), Timezone: tz, NextDue: nonZero(next)}, nil
}

// absurdRecord says what makes rec a record no candidate writes (""
// when nothing does): a lease beyond elector.MaxLeaseDuration, which the
// electors do not trust (they wait out their own lease instead), or a
// renew time further ahead of now than a lease, by which this machine's
// clock would call the lease live for ever. where says how to delete it.
func absurdRecord(rec elector.Record, now time.Time, where string) string {
	switch {
	case rec.LeaseDuration > elector.MaxLeaseDuration:
		return fmt.Sprintf("the record's lease (%v) is longer than any candidate writes (at most %v): edited by hand? "+
			"Candidates treat it as corrupt and wait out their own lease duration; delete the record (%s) to clear it.",
			rec.LeaseDuration, elector.MaxLeaseDuration, where)
	case rec.Holder != "" && rec.RenewTime.Sub(now) > max(rec.LeaseDuration, time.Minute):
		return fmt.Sprintf("the record was renewed %v in the future by this machine's clock: a clock far ahead, or the record edited by hand. "+
			"Candidates time leases on their own clocks and do not use it; if no candidate renews it, delete the record (%s).",
			rec.RenewTime.Sub(now).Round(time.Second), where)
	}
	return ""
}

func nonZero(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// termExhausted explains a record whose term cannot grow (see
// elector.Record.TermExhausted) and what an operator has to do; where says
// where the record is and how to delete it.
func termExhausted(where string, r statusReport) string {
	return fmt.Sprintf("term exhausted: the term %d leaves no room for another, so no candidate can take the lock over "+
		"(the holder, if alive, can still renew). Stop every candidate, delete the record (%s) "+
		"and reset whatever is fenced with the term (it will accept only terms above the last one it saw), "+
		"then restart the candidates: they start again from term 1.", r.Term, where)
}

// printable is s for a terminal: as it is if every character is a printable
// one (spaces included), else quoted with Go's escapes, so that a holder
// written by anyone cannot move the cursor or recolour the terminal.
func printable(s string) string {
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return strconv.Quote(s)
		}
	}
	return s
}

func printStatus(w io.Writer, r statusReport) {
	if r.Store == "" { // the store could not be reached to say where
		fmt.Fprintf(w, "lock:     %s\n", r.Lock)
	} else {
		fmt.Fprintf(w, "lock:     %s (%s)\n", r.Lock, printable(r.Store))
	}
	switch r.State {
	case stateError:
		fmt.Fprintln(w, "holder:   unknown (the store cannot be read)")
		return
	case stateMissing:
		fmt.Fprintln(w, "holder:   none (no record yet)")
		return
	}
	holder := printable(r.Holder)
	if r.Holder == "" {
		holder = "none (released)"
	}
	fmt.Fprintf(w, "holder:   %s\nterm:     %d\n", holder, r.Term)
	if r.AcquireTime != nil {
		fmt.Fprintf(w, "acquired: %s\n", r.AcquireTime.Format(time.RFC3339Nano))
	}
	if r.RenewTime != nil {
		fmt.Fprintf(w, "renewed:  %s (%s ago)\n", r.RenewTime.Format(time.RFC3339Nano), time.Since(*r.RenewTime).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "lease:    %v\n", time.Duration(r.LeaseDurationMS)*time.Millisecond)
	if r.State == stateExpired {
		fmt.Fprintln(w, "expired:  yes, by this machine's clock (renewed longer than a lease ago)")
	}
	if r.Problem != "" {
		fmt.Fprintf(w, "problem:  %s\n", r.Problem)
	}
	names := slices.Sorted(maps.Keys(r.Jobs))
	for _, name := range names {
		j := r.Jobs[name]
		line := fmt.Sprintf("job:      %s: last started %s (term %d)", name, fmtSlotP(j.Started), j.StartedTerm)
		if j.Rerun {
			line += " (a rerun)"
		}
		line += ", last done " + fmtSlotP(j.Done)
		if j.CutShort {
			line += "; the last started is not done (cut short, or still running)"
		}
		fmt.Fprintln(w, line)
	}
	if sc := r.Schedule; sc != nil {
		fmt.Fprintf(w, "schedule: %s: %q (%s), next due %s\n", sc.Job, sc.Spec, sc.Timezone, fmtSlotP(sc.NextDue))
	}
}

func fmtSlotP(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// watchStatus prints the leader each time it changes until ctx is done. It
// waits on the backend's watch where there is one (polling every retry
// period otherwise, or while the watch fails), and judges a lease expired
// as an elector does: by this machine's monotonic clock, a lease duration
// after it saw the holder's last renewal — not by the record's timestamps.
func watchStatus(ctx context.Context, o *overrides, asJSON bool, stdout, stderr io.Writer) error {
	ss, r, err := statusSession(ctx, o, stderr)
	if errors.Is(err, errStopped) {
		return nil
	}
	if err != nil {
		return err
	}
	if ss == nil { // the store could not even be opened
		emitStatus(stdout, stderr, r, asJSON)
		return exitCode(exitNoStore)
	}
	defer ss.close()
	poll := ss.cfg.Lease.RetryPeriod
	watcher, _ := ss.backend.(elector.Watcher)
	// lease is how long a record's lease runs, as an elector judges it: a
	// lease no candidate writes is not trusted (its own instead).
	lease := func(rec elector.Record) time.Duration {
		if rec.LeaseDuration > elector.MaxLeaseDuration || rec.LeaseDuration <= 0 {
			return ss.cfg.Lease.LeaseDuration
		}
		return rec.LeaseDuration
	}
	var maxTerm int64 // the highest term seen, to tell a store gone back in time
	var present bool  // the last successful read found a record
	var (
		last    string // what was printed last: state, holder, term, error
		rec     elector.Record
		ver     elector.Version
		haveVer bool      // rec and ver are the latest state read
		seen    time.Time // when ver was first seen
		expired bool      // the lease seen at ver has run out
		first   = true
	)
	show := func(rep statusReport) {
		key := strings.Join([]string{rep.State, rep.Holder, strconv.FormatInt(rep.Term, 10), rep.Error, rep.Anomaly}, "\x00")
		if key == last {
			return
		}
		last = key
		rep.Time = time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
		emitStatus(stdout, stderr, rep, asJSON)
	}
	for {
		var (
			nrec     elector.Record
			nver     elector.Version
			err      error
			timedOut bool // the watch ran to the end of the observed lease
		)
		if watcher != nil && haveVer {
			// Wake when the observed lease would run out, to say so; and
			// at least once a lease duration, to check that the store
			// still answers: a watch on a store that went away may wait
			// in silence (etcd's client reconnects for ever).
			deadline, atExpiry := time.Now().Add(ss.cfg.Lease.LeaseDuration), false
			if rec.Holder != "" && !expired {
				if exp := seen.Add(lease(rec)); exp.Before(deadline) {
					deadline, atExpiry = exp, true
				}
			}
			wctx, cancel := context.WithDeadline(ctx, deadline)
			nrec, nver, err = watcher.Watch(wctx, ver)
			ranOut := err != nil && wctx.Err() != nil && ctx.Err() == nil
			cancel()
			if ranOut && !atExpiry {
				// A quiet watch: read, within a renew deadline.
				cctx, cancel := context.WithTimeout(ctx, ss.cfg.Lease.RenewDeadline)
				nrec, nver, err = ss.backend.Get(cctx)
				cancel()
				ranOut = false
			}
			timedOut = ranOut
		} else {
			if !first {
				sleep(ctx, poll)
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			nrec, nver, err = ss.backend.Get(cctx)
			cancel()
		}
		first = false
		if ctx.Err() != nil {
			return nil // Ctrl-C is how a watch ends
		}
		switch {
		case timedOut:
			expired = true
			show(ss.report(r, rec, ver, nil, true))
		case err == nil:
			if !haveVer || nver != ver {
				seen, expired = time.Now(), false
			}
			rec, ver, haveVer = nrec, nver, true
			if rec.Holder != "" && time.Since(seen) > lease(rec) {
				expired = true
			}
			rep := ss.report(r, rec, ver, nil, expired)
			if rec.Term < maxTerm {
				rep.Anomaly = fmt.Sprintf("the store went back in time: term %d after %d (restored from an older snapshot, wiped, or the record edited?)", rec.Term, maxTerm)
			}
			maxTerm, present = max(maxTerm, rec.Term), true
			show(rep)
		case isNotFound(err):
			rep := ss.report(r, elector.Record{}, "", err, false)
			if present {
				rep.Anomaly = fmt.Sprintf("the record is gone (term %d was seen): deleted, or the store lost its data", maxTerm)
			}
			rec, ver, haveVer, present = elector.Record{}, "", false, false
			show(rep)
		default:
			// Read again after a pause (a failed watch too).
			haveVer = false
			show(ss.report(r, elector.Record{}, "", err, false))
		}
	}
}

// emitStatus prints one watched state: a JSON object on a line, or a line
// of text.
func emitStatus(stdout, stderr io.Writer, r statusReport, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(r)
		fmt.Fprintf(stdout, "%s\n", b)
		return
	}
	at := r.Time
	if at == "" {
		at = time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	if r.Anomaly != "" {
		fmt.Fprintf(stdout, "%s  %s\n", at, r.Anomaly)
	}
	switch r.State {
	case stateLeading:
		fmt.Fprintf(stdout, "%s  leader %s (term %d)\n", at, printable(r.Holder), r.Term)
	case stateReleased:
		fmt.Fprintf(stdout, "%s  no leader: released (term %d)\n", at, r.Term)
	case stateExpired:
		fmt.Fprintf(stdout, "%s  no leader: the lease of %s (term %d) ran out\n", at, printable(r.Holder), r.Term)
	case stateMissing:
		fmt.Fprintf(stdout, "%s  no leader: no record yet\n", at)
	case stateCorrupt:
		fmt.Fprintf(stdout, "%s  unknown: the record is corrupt: %s\n", at, r.Problem)
	case stateError:
		fmt.Fprintf(stdout, "%s  unknown: the store cannot be read\n", at)
		fmt.Fprintf(stderr, "leasehold status: %s\n", r.Error)
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
