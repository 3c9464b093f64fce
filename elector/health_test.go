package elector

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
)

// stubBackend is never called: these tests set the Elector's state.
type stubBackend struct{}

func (stubBackend) Get(context.Context) (Record, Version, error)             { return Record{}, "", ErrNotFound }
func (stubBackend) Create(context.Context, Record) (Version, error)          { return "1", nil }
func (stubBackend) Update(context.Context, Record, Version) (Version, error) { return "2", nil }
func (stubBackend) Describe() string                                         { return "stub" }

func healthElector(t *testing.T) (*Elector, *clock.Mock) {
	t.Helper()
	mock := clock.NewMock()
	e, err := New(DefaultConfig("me"), stubBackend{}, Callbacks{
		OnStartedLeading: func(context.Context, int64) {},
		OnStoppedLeading: func() {},
	}, WithClock(mock))
	if err != nil {
		t.Fatal(err)
	}
	return e, mock
}

// leadSince makes e believe it leads, last renewed at at.
func leadSince(e *Elector, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.term, e.renewed = 3, at
}

func TestCheck(t *testing.T) {
	e, mock := healthElector(t)
	rd := e.Config().RenewDeadline // 10s
	if err := e.Check(0); err != nil {
		t.Fatalf("a candidate that never led: %v", err)
	}
	leadSince(e, mock.Now())
	if err := e.Check(0); err != nil {
		t.Fatalf("a fresh leader: %v", err)
	}
	mock.Add(rd + 2*time.Second)
	if err := e.Check(2 * time.Second); err != nil {
		t.Fatalf("renewed exactly RenewDeadline + tolerance ago: %v", err)
	}
	if err := e.Check(time.Second); err == nil || !strings.Contains(err.Error(), "last renewal was 12s ago (renew deadline 10s, tolerance 1s)") {
		t.Fatalf("renewed 12s ago, tolerance 1s: err = %v", err)
	}
	mock.Add(time.Millisecond)
	if err := e.Check(2 * time.Second); err == nil {
		t.Fatal("renewed just past RenewDeadline + tolerance ago: healthy")
	}
	if err := e.Check(-time.Hour); err == nil {
		t.Fatal("a negative tolerance hid a stale renewal")
	}
	// Stepped down: healthy again, however old the last renewal.
	e.mu.Lock()
	e.term = 0
	e.mu.Unlock()
	if err := e.Check(0); err != nil {
		t.Fatalf("a follower: %v", err)
	}
	var none *Elector
	if err := none.Check(0); err != nil {
		t.Fatalf("a nil Elector: %v", err)
	}
}

func TestHealthHandler(t *testing.T) {
	e, mock := healthElector(t)
	get := func(h http.Handler) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		return rec.Code, rec.Body.String()
	}
	h := HealthHandler(e, time.Second)
	leadSince(e, mock.Now())
	if code, body := get(h); code != 200 || body != "ok\n" {
		t.Fatalf("fresh leader: %d %q", code, body)
	}
	mock.Add(e.Config().RenewDeadline + 1001*time.Millisecond)
	if code, body := get(h); code != 500 || !strings.Contains(body, "last renewal was 11.001s ago") {
		t.Fatalf("stuck leader: %d %q, want 500 naming the last renewal", code, body)
	}
	if code, _ := get(HealthHandler(e, time.Minute)); code != 200 {
		t.Fatalf("a larger tolerance: %d", code)
	}
	if code, _ := get(HealthHandler(nil, 0)); code != 200 {
		t.Fatalf("a nil Elector: %d", code)
	}
}
