package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/leasehold-go/leasehold/elector"
)

// sidecarCmd campaigns and serves who leads, like the classic leader-elector
// sidecar: GET / answers {"name":"<leader>"}.
func sidecarCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, o := configCommand("sidecar", "leasehold sidecar --config FILE [flags]", stderr)
	httpAddr := fs.String("http", "127.0.0.1:4040", "serve /, /healthz and /metrics on this address")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := checkHTTPAddr(*httpAddr); err != nil {
		return err
	}
	ss, err := o.open(ctx, stderr, nil)
	if err != nil {
		return err
	}
	defer ss.close()
	e, err := elector.New(ss.cfg.Lease, ss.backend, elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) { <-ctx.Done() },
		OnStoppedLeading: func() {},
	}, elector.WithLogger(ss.base), elector.WithObserver(ss.srv.obs))
	if err != nil {
		return usagef("%v", err)
	}
	ss.srv.e.Store(e)
	if _, err := ss.srv.listen(ctx, *httpAddr); err != nil {
		return err
	}
	if err := e.Run(ctx); err != nil {
		return err
	}
	ss.log.Info("stopped on signal")
	return nil
}

// statusReport is what status prints with --json.
type statusReport struct {
	Lock            string    `json:"lock"`
	Backend         string    `json:"backend"`
	Store           string    `json:"store"`
	Holder          string    `json:"holder"`
	Term            int64     `json:"term"`
	AcquireTime     time.Time `json:"acquire_time"`
	RenewTime       time.Time `json:"renew_time"`
	LeaseDurationMS int64     `json:"lease_duration_ms"`
	Version         string    `json:"version"`
	Expired         bool      `json:"expired"`
	// Problem is what keeps the lock from working, with what to do about
	// it; empty (and left out) when there is none.
	Problem string `json:"problem,omitempty"`
}

// statusCmd reads the lock once and reports it; exit 1 when nobody holds it.
func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, o := configCommand("status", "leasehold status --config FILE [--json] [flags]", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	ss, err := o.open(ctx, stderr, nil)
	if errors.Is(err, errStopped) {
		return exitCode(1) // nothing was read: not "someone holds it" (0)
	}
	if err != nil {
		return err
	}
	defer ss.close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rec, ver, err := ss.backend.Get(cctx)
	r := statusReport{Lock: ss.cfg.Name, Backend: ss.cfg.Backend, Store: ss.backend.Describe()}
	switch {
	case err == nil:
		r.Holder, r.Term, r.AcquireTime, r.RenewTime = rec.Holder, rec.Term, rec.AcquireTime, rec.RenewTime
		r.LeaseDurationMS, r.Version = rec.LeaseDuration.Milliseconds(), string(ver)
		// Seen from here: by this machine's wall clock. Other machines'
		// clocks may differ; electors never rely on this.
		r.Expired = rec.Holder == "" || time.Since(rec.RenewTime) > rec.LeaseDuration
		if rec.TermExhausted() {
			r.Problem = termExhausted(ss.cfg.deleteHint(ss.backend), r)
		}
	case isNotFound(err):
		r.Expired = true
	case ctx.Err() != nil:
		ss.log.Info("stopped on signal before the lock was read")
		return exitCode(1)
	default:
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	} else {
		printStatus(stdout, r, err != nil)
	}
	if r.Holder == "" {
		return exitCode(1)
	}
	return nil
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

func printStatus(w io.Writer, r statusReport, missing bool) {
	fmt.Fprintf(w, "lock:     %s (%s)\n", r.Lock, r.Store)
	if missing {
		fmt.Fprintln(w, "holder:   none (no record yet)")
		return
	}
	holder := r.Holder
	if holder == "" {
		holder = "none (released)"
	}
	fmt.Fprintf(w, "holder:   %s\nterm:     %d\nacquired: %s\nrenewed:  %s (%s ago)\nlease:    %v\n",
		holder, r.Term, r.AcquireTime.Format(time.RFC3339Nano), r.RenewTime.Format(time.RFC3339Nano),
		time.Since(r.RenewTime).Round(time.Millisecond), time.Duration(r.LeaseDurationMS)*time.Millisecond)
	if r.Expired && r.Holder != "" {
		fmt.Fprintln(w, "expired:  yes, by this machine's clock (renewed longer than a lease ago)")
	}
	if r.Problem != "" {
		fmt.Fprintf(w, "problem:  %s\n", r.Problem)
	}
}
