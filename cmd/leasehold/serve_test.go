package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
)

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
	leading := make(chan struct{})
	e, err := elector.New(cfg, memory.New().Backend("h", "me"), elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, _ int64) { close(leading); <-ctx.Done() },
		OnStoppedLeading: func() {},
	}, elector.WithLogger(log), elector.WithObserver(srv.obs))
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
	srv.now = func() time.Time { return time.Now().Add(cfg.RenewDeadline + cfg.RetryPeriod + time.Second) }
	if code, body := get("/healthz"); code != 500 || !strings.Contains(body, "last renewal") {
		t.Fatalf("healthz of a leader past its deadline = %d %q, want 500", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `leasehold_is_leader{lock="h"} 1`) {
		t.Fatalf("metrics = %d, lacks is_leader 1", code)
	}
}
