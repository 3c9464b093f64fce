package elector

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// Check is a liveness check, as client-go's HealthzAdaptor: it returns nil
// unless this candidate believes it leads and its last renewal
// (LastRenewal) is older than RenewDeadline + maxTolerableExpiry, measured
// on the Elector's clock. Such a leader should have stepped down by then,
// so something is stuck (a hung callback, a starved process): let the
// liveness probe restart it. A follower, a candidate that never led and a
// nil Elector are healthy; a negative maxTolerableExpiry counts as zero.
func (e *Elector) Check(maxTolerableExpiry time.Duration) error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	leading, last := e.term != 0, e.renewed
	e.mu.Unlock()
	if !leading || last.IsZero() {
		return nil
	}
	return stale(e.clk.Now(), last, e.cfg.RenewDeadline, maxTolerableExpiry)
}

// stale is Check's rule: an error if the renewal at last is older, at now,
// than renewDeadline + tolerance.
func stale(now, last time.Time, renewDeadline, tolerance time.Duration) error {
	tolerance = max(tolerance, 0)
	if age := now.Sub(last); age > renewDeadline+tolerance {
		return fmt.Errorf("leading, but the last renewal was %v ago (renew deadline %v, tolerance %v)",
			age.Round(time.Millisecond), renewDeadline, tolerance)
	}
	return nil
}

// HealthHandler serves e.Check(maxTolerableExpiry) for a liveness probe:
// 200 "ok" when it passes, 500 with the reason when it fails.
func HealthHandler(e *Elector, maxTolerableExpiry time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := e.Check(maxTolerableExpiry); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
}
