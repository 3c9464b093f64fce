package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// gatedBackend holds the writes that carry a given slot until released,
// so that a test can hang up a client while its claim's write is in
// flight.
type gatedBackend struct {
	*memory.Backend
	slot    atomic.Pointer[time.Time]
	entered chan struct{} // a held write has started
	release chan struct{} // closed: let it through
}

func (b *gatedBackend) Update(ctx context.Context, r elector.Record, v elector.Version) (elector.Version, error) {
	if s := b.slot.Load(); s != nil {
		for _, st := range r.Jobs {
			if st.Started.Equal(*s) {
				b.slot.Store(nil)
				close(b.entered)
				select {
				case <-b.release:
				case <-ctx.Done():
					return "", ctx.Err()
				}
			}
		}
	}
	return b.Backend.Update(ctx, r, v)
}

// hold makes the next write carrying slot wait for the returned release.
func (b *gatedBackend) hold(slot time.Time) (entered <-chan struct{}, release func()) {
	b.entered, b.release = make(chan struct{}), make(chan struct{})
	b.slot.Store(&slot)
	return b.entered, func() { close(b.release) }
}

// claimServer is a server whose elector leads on a memory store, as the
// sidecar's.
func claimServer(t *testing.T) (*server, *elector.Elector, *gatedBackend) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	srv, err := newServer("c", log)
	if err != nil {
		t.Fatal(err)
	}
	b := &gatedBackend{Backend: memory.New().Backend("c", "me")}
	leading := make(chan struct{})
	e, err := elector.New(elector.DefaultConfig("me"), b, elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, _ int64) { close(leading); <-ctx.Done() },
		OnStoppedLeading: func() {},
	}, elector.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	srv.e.Store(e)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-leading
	return srv, e, b
}

// do sends one request to h and returns the code, the Allow header and
// the answer.
func do(h http.Handler, method, target string, header ...string) (int, string, claimResponse) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	h.ServeHTTP(rec, req)
	var r claimResponse
	json.Unmarshal(rec.Body.Bytes(), &r)
	return rec.Code, rec.Header().Get("Allow"), r
}

func claimPath(path, job string, slot time.Time) string {
	return "/" + path + "?job=" + job + "&slot=" + slot.UTC().Format(time.RFC3339)
}

// Only POST claims: GET and HEAD /claim used to fall to the GET /
// catch-all and answer the leader with 200. Every method on every path
// of the API, and GET / still answers the leader.
func TestClaimMethods(t *testing.T) {
	srv, e, _ := claimServer(t)
	h := srv.handler()
	slot := time.Now().Truncate(time.Minute)
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}
	for _, path := range []string{"claim", "done"} {
		for _, m := range methods {
			if m == http.MethodPost {
				continue
			}
			if code, allow, _ := do(h, m, claimPath(path, "report", slot)); code != 405 || allow != "POST" {
				t.Errorf("%s /%s = %d (Allow %q), want 405 with Allow: POST", m, path, code, allow)
			}
		}
	}
	if jobs := e.Jobs(); len(jobs) != 0 {
		t.Fatalf("the other methods claimed: %v", jobs)
	}
	for _, m := range methods {
		code, allow, _ := do(h, m, "/")
		switch m {
		case http.MethodGet, http.MethodHead:
			if code != 200 {
				t.Errorf("%s / = %d, want 200", m, code)
			}
		default:
			if code != 405 || allow != "GET, HEAD" {
				t.Errorf("%s / = %d (Allow %q), want 405 with Allow: GET, HEAD", m, code, allow)
			}
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Body.String() != `{"name":"me"}` {
		t.Errorf("GET / = %q", rec.Body.String())
	}
	for _, path := range []string{"/leader", "/claim/x", "/claims", "/healthz/x"} {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			if code, _, _ := do(h, m, path); code != 404 {
				t.Errorf("%s %s = %d, want 404", m, path, code)
			}
		}
	}
	if code, _, _ := do(h, http.MethodPost, claimPath("claim", "report", slot)); code != 200 {
		t.Fatalf("POST /claim = %d", code)
	}
	if code, _, _ := do(h, http.MethodPost, claimPath("done", "report", slot)); code != 200 {
		t.Fatalf("POST /done = %d", code)
	}
}

// A slot far from this replica's clock is refused with a reason, so it
// cannot block the job's every later slot: 9999-12-31 used to be granted.
func TestClaimSlotBounds(t *testing.T) {
	srv, e, _ := claimServer(t)
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	srv.now = func() time.Time { return now }
	h := srv.handler()
	post := func(slot string) (int, claimResponse) {
		code, _, r := do(h, http.MethodPost, "/claim?job=report&slot="+url.QueryEscape(slot))
		return code, r
	}
	for slot, why := range map[string]string{
		"9999-12-31T23:59:59Z":      "after this replica's clock",
		"2026-12-05T13:00:01Z":      "at most 1h0m0s ahead",
		"2026-11-28T11:59:59Z":      "at most 168h0m0s behind",
		"0001-01-01T00:00:00Z":      "behind",
		"0000-01-01T00:00:00Z":      "outside the years 1 to 9999",
		"0001-01-01T00:00:00+01:00": "outside the years 1 to 9999",
		"9999-12-31T23:59:59-01:00": "outside the years 1 to 9999",
	} {
		if code, r := post(slot); code != 400 || !strings.Contains(r.Error, why) {
			t.Errorf("claim of %s = %d %q, want 400 saying %q", slot, code, r.Error, why)
		}
	}
	if jobs := e.Jobs(); len(jobs) != 0 {
		t.Fatalf("refused slots were claimed: %v", jobs)
	}
	for _, slot := range []string{"2026-11-28T12:00:00Z", "2026-12-05T12:00:00Z", "2026-12-05T13:00:00Z"} {
		if code, r := post(slot); code != 200 {
			t.Errorf("claim of %s = %d %q, want 200 (within the bounds)", slot, code, r.Error)
		}
	}
	// done is not bounded by the clock: a run may last longer than a week.
	now = now.Add(30 * 24 * time.Hour)
	if code, _, r := do(h, http.MethodPost, "/done?job=report&slot=2026-12-05T13:00:00Z"); code != 200 {
		t.Errorf("done of a slot a month old = %d %q, want 200", code, r.Error)
	}
}

// Junk job names cannot fill the record: the claim API adds jobs only
// while the record holds fewer than half of MaxJobs; the jobs it holds
// go on claiming, and the other half stays for cron and the library.
func TestClaimNewJobs(t *testing.T) {
	srv, e, _ := claimServer(t)
	h := srv.handler()
	slot := time.Now().Truncate(time.Minute)
	granted := 0
	for i := range 40 {
		code, _, r := do(h, http.MethodPost, claimPath("claim", fmt.Sprintf("junk-%d", i), slot))
		switch {
		case code == 200:
			granted++
		case code != 400 || !strings.Contains(r.Error, "the record holds 16 jobs"):
			t.Fatalf("junk-%d: %d %q, want 200 or 400 saying the record holds 16 jobs", i, code, r.Error)
		}
	}
	if granted != maxHTTPJobs || len(e.Jobs()) != maxHTTPJobs {
		t.Fatalf("%d junk jobs granted, %d in the record; want %d", granted, len(e.Jobs()), maxHTTPJobs)
	}
	if code, _, r := do(h, http.MethodPost, claimPath("claim", "junk-3", slot.Add(time.Minute))); code != 200 {
		t.Fatalf("a job the record holds: %d %q, want 200", code, r.Error)
	}
	for i := range elector.MaxJobs - maxHTTPJobs {
		if _, err := e.Claim(context.Background(), fmt.Sprintf("cron-%d", i), slot); err != nil {
			t.Fatalf("the library's job %d: %v", i, err)
		}
	}
}

// A claim survives its client hanging up while its write is in flight.
// Without a key it is abandoned, as nobody got the answer, so a retry
// claims the slot again (it used to get 409: the slot was lost). With an
// Idempotency-Key it is kept, and the retry with that key is answered 200
// again, as a repeat, until the slot is done; another key gets 409.
func TestClaimHangUp(t *testing.T) {
	for _, key := range []string{"", "k1"} {
		t.Run("key="+key, func(t *testing.T) {
			srv, e, b := claimServer(t)
			reqs := make(chan *http.Request, 10)
			served := make(chan struct{}, 10)
			full := srv.handler()
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reqs <- r
				full.ServeHTTP(w, r)
				served <- struct{}{}
			}))
			defer hs.Close()
			slot := time.Now().Truncate(time.Minute)
			entered, release := b.hold(slot)
			ctx, hangUp := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+claimPath("claim", "report", slot), nil)
			if key != "" {
				req.Header.Set("Idempotency-Key", key)
			}
			gone := make(chan error, 1)
			go func() {
				resp, err := hs.Client().Do(req)
				if err == nil {
					resp.Body.Close()
				}
				gone <- err
			}()
			first := <-reqs
			<-entered // the claim's write is in flight
			hangUp()
			if err := <-gone; err == nil {
				t.Fatal("the client got an answer after hanging up")
			}
			<-first.Context().Done() // the server saw it go
			h := []string{}
			if key != "" {
				h = []string{"Idempotency-Key", key}
			}
			// A keyed retry sent while the first try is in flight waits for
			// its answer (or, if it comes after, finds it).
			early := make(chan claimResponse, 1)
			if key != "" {
				go func() {
					code, _, r := do(full, http.MethodPost, claimPath("claim", "report", slot), h...)
					if code != 200 {
						r.Error = fmt.Sprintf("code %d: %s", code, r.Error)
					}
					early <- r
				}()
			}
			release()
			<-served // the first claim is answered (and, without a key, abandoned)
			if key != "" {
				if r := <-early; r.Error != "" || !r.Repeat {
					t.Fatalf("a retry sent while the first try was in flight: %+v, want 200 repeat", r)
				}
			}
			code, _, r := do(full, http.MethodPost, claimPath("claim", "report", slot), h...)
			if code != 200 || r.Term < 1 || r.Repeat != (key != "") {
				t.Fatalf("retry after hanging up: %d %+v, want 200 (repeat: %v)", code, r, key != "")
			}
			if st := e.Jobs()["report"]; !st.Started.Equal(slot) || st.StartedTerm != r.Term {
				t.Fatalf("record: %+v, want slot %v claimed in term %d", st, slot, r.Term)
			}
			if code, _, r := do(full, http.MethodPost, claimPath("claim", "report", slot), "Idempotency-Key", "other"); code != 409 {
				t.Fatalf("claim with another key: %d %+v, want 409", code, r)
			}
			if code, _, r := do(full, http.MethodPost, claimPath("claim", "report", slot)); code != 409 {
				t.Fatalf("claim without a key: %d %+v, want 409", code, r)
			}
			if key == "" {
				return
			}
			if code, _, r := do(full, http.MethodPost, claimPath("claim", "report", slot), h...); code != 200 || !r.Repeat {
				t.Fatalf("a second retry: %d %+v, want 200 repeat", code, r)
			}
			if code, _, _ := do(full, http.MethodPost, claimPath("done", "report", slot)); code != 200 {
				t.Fatalf("done: %d", code)
			}
			if code, _, r := do(full, http.MethodPost, claimPath("claim", "report", slot), h...); code != 409 {
				t.Fatalf("a retry after done: %d %+v, want 409", code, r)
			}
		})
	}
}

// POST /forget removes a job's entry, freeing its place: junk names can
// be cleared; a job the record does not hold is 409; a bad name 400; and
// a forgotten job claims again as a new one.
func TestClaimForget(t *testing.T) {
	srv, e, _ := claimServer(t)
	h := srv.handler()
	slot := time.Now().Truncate(time.Minute)
	for _, job := range []string{"junk", "report"} {
		if code, _, r := do(h, http.MethodPost, claimPath("claim", job, slot)); code != 200 {
			t.Fatalf("claim %s: %d %+v", job, code, r)
		}
	}
	if code, _, r := do(h, http.MethodPost, "/forget?job=junk"); code != 200 {
		t.Fatalf("forget junk: %d %+v", code, r)
	}
	if _, ok := e.Jobs()["junk"]; ok || len(e.Jobs()) != 1 {
		t.Fatalf("after forget: %+v", e.Jobs())
	}
	if code, _, r := do(h, http.MethodPost, "/forget?job=junk"); code != 409 {
		t.Errorf("forget of a job not held: %d %+v, want 409", code, r)
	}
	if code, _, r := do(h, http.MethodPost, "/forget?job=Bad_Name"); code != 400 {
		t.Errorf("forget of a bad name: %d %+v, want 400", code, r)
	}
	if code, allow, _ := do(h, http.MethodGet, "/forget?job=report"); code != 405 || allow != "POST" {
		t.Errorf("GET /forget: %d allow %q, want 405 POST", code, allow)
	}
	if code, _, r := do(h, http.MethodPost, claimPath("claim", "junk", slot)); code != 200 {
		t.Errorf("the forgotten job claims again: %d %+v", code, r)
	}
}
