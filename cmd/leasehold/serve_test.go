package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
)

// shiftedClock is the real clock whose readings can be moved forward:
// timers still fire in real time, so an elector on it is left believing it
// leads while its last renewal looks old.
type shiftedClock struct {
	clock.Clock
	shift atomic.Int64
}

func (c *shiftedClock) Now() time.Time                  { return c.Clock.Now().Add(time.Duration(c.shift.Load())) }
func (c *shiftedClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *shiftedClock) Until(t time.Time) time.Duration { return t.Sub(c.Now()) }

// /healthz fails when the node believes it leads but its last renewal is
// older than the renew deadline (plus a retry period): a stuck process.
func TestHealthz(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	srv, err := newServer("h", log)
	if err != nil {
		t.Fatal(err)
	}
	h := srv.handler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	if code, body := get("/"); code != 200 || body != `{"name":""}` {
		t.Fatalf("GET / before any elector = %d %q", code, body)
	}
	cfg := elector.DefaultConfig("me")
	clk := &shiftedClock{Clock: clock.New()}
	leading := make(chan struct{})
	e, err := elector.New(cfg, memory.New().Backend("h", "me"), elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, _ int64) { close(leading); <-ctx.Done() },
		OnStoppedLeading: func() {},
	}, elector.WithLogger(log), elector.WithObserver(srv.obs), elector.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	srv.e.Store(e)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-leading
	if code, body := get("/"); code != 200 || body != `{"name":"me"}` {
		t.Fatalf("GET / = %d %q", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz of a fresh leader = %d", code)
	}
	// Just within renew deadline + retry period: still healthy.
	clk.shift.Store(int64(cfg.RenewDeadline + cfg.RetryPeriod - time.Second))
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz of a leader within its deadline and tolerance = %d %q", code, body)
	}
	// The next renewal is due in real time (RetryPeriod, 2s), so until then
	// the elector believes it leads with a renewal that now looks old.
	clk.shift.Store(int64(cfg.RenewDeadline + cfg.RetryPeriod + time.Second))
	if code, body := get("/healthz"); code != 500 || !strings.Contains(body, "last renewal") {
		t.Fatalf("healthz of a leader past its deadline = %d %q, want 500", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `leasehold_is_leader{lock="h"} 1`) {
		t.Fatalf("metrics = %d, lacks is_leader 1", code)
	}
}
