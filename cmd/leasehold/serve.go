package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// server answers who leads, whether this node is healthy, and metrics. The
// elector it reports on can change (run --restart builds a new one).
type server struct {
	e   atomic.Pointer[elector.Elector]
	reg *prometheus.Registry
	obs *metrics.Observer
	log *slog.Logger
	// now reads this replica's wall clock, to refuse claims of slots far
	// from it (time.Now; tests move it).
	now func() time.Time

	mu sync.Mutex
	// memos are the keyed claims in flight and the last keyed claim
	// granted of each job.
	memos map[memoKey]*claimMemo
	// claiming serializes the claims (the elector writes them one at a
	// time anyway), so that concurrent claims of new jobs cannot pass
	// maxHTTPJobs together, and a retry comes after the abandonment of
	// the claim whose client left.
	claiming sync.Mutex
}

// Bounds of the claim API (POST /claim).
const (
	// claimMaxBehind is how far before this replica's clock a claimed
	// slot may be: cron's longest catch-up. A slot older than that is a
	// mistake (or a replay), not a slot due.
	claimMaxBehind = maxCatchUp
	// claimMaxAhead is how far after this replica's clock a claimed slot
	// may be: a skew allowance between the app's clock and this one. A
	// slot further ahead would block every slot before it.
	claimMaxAhead = time.Hour
	// maxHTTPJobs: the claim API adds a job to the record only while the
	// record holds fewer jobs than this (half of what it may hold), so
	// that junk names cannot fill it: the other half stays for cron and
	// the library.
	maxHTTPJobs = elector.MaxJobs / 2
	// maxIdempotencyKey is the longest Idempotency-Key accepted.
	maxIdempotencyKey = 128
)

// memoKey names a keyed claim: the job and the Idempotency-Key.
type memoKey struct{ job, key string }

// claimMemo is a keyed claim (POST /claim with an Idempotency-Key): a
// retry of the same job, slot and key is answered as the claim was.
type claimMemo struct {
	e        *elector.Elector
	slot     time.Time
	answered chan struct{} // closed once term is set
	term     int64         // the granted claim's term; 0 if not granted
}

func newServer(lock string, log *slog.Logger) (*server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	obs, err := metrics.New(reg, lock)
	if err != nil {
		return nil, err
	}
	return &server{reg: reg, obs: obs, log: log, now: time.Now, memos: map[memoKey]*claimMemo{}}, nil
}

// leaderResponse is the classic leader-elector sidecar's answer.
type leaderResponse struct {
	Name string `json:"name"`
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	// GET / answers the leader, as the classic leader-elector did; other
	// paths are 404, and a path served with another method 405 (with an
	// Allow header), so that GET /claim claims nothing and says so.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		name := ""
		if e := s.e.Load(); e != nil {
			name = e.Leader()
		}
		body, _ := json.Marshal(leaderResponse{Name: name})
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	// 200 ok; 500 if this node believes it leads but has not renewed for
	// longer than RenewDeadline plus a RetryPeriod of slack: the elector
	// should have stepped down by then, so something is stuck.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		e := s.e.Load()
		tolerance := time.Duration(0)
		if e != nil {
			tolerance = e.Config().RetryPeriod
		}
		elector.HealthHandler(e, tolerance).ServeHTTP(w, r)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	// Slot claims for applications that schedule themselves (docs/cron.md).
	mux.HandleFunc("POST /claim", func(w http.ResponseWriter, r *http.Request) { s.claim(w, r, false) })
	mux.HandleFunc("POST /done", func(w http.ResponseWriter, r *http.Request) { s.claim(w, r, true) })
	mux.HandleFunc("POST /forget", s.forget)
	return mux
}

// claimResponse is the answer of POST /claim and POST /done.
type claimResponse struct {
	Job  string `json:"job,omitempty"`
	Slot string `json:"slot,omitempty"`
	Term int64  `json:"term,omitempty"`
	// Repeat: this answers a retry (same job, slot and Idempotency-Key)
	// of a claim granted before, whose answer the client may have lost.
	Repeat bool   `json:"repeat,omitempty"`
	Error  string `json:"error,omitempty"`
}

// claim answers POST /claim?job=NAME&slot=RFC3339 (done: POST /done): 200
// if this replica leads and has just claimed the slot (or marked it done),
// 409 if it was claimed before, by anyone (done: it is not the job's
// claimed slot), 503 if this replica does not lead or the claim's write
// failed (the job must not run), 400 for a bad job or slot, a slot far
// from this replica's clock, or a new job when the record holds
// maxHTTPJobs jobs already. The write is not cancelled when the client
// hangs up: a claim with an Idempotency-Key is kept, and its retry with
// the same key is answered 200 again (repeat) while this leadership holds
// it and it is not done; a claim without one is abandoned, as nobody got
// the answer, so that a retry can claim it again.
func (s *server) claim(w http.ResponseWriter, r *http.Request, done bool) {
	q := r.URL.Query()
	job, slotText := q.Get("job"), q.Get("slot")
	key := r.Header.Get("Idempotency-Key")
	answer := func(code int, resp claimResponse) {
		body, _ := json.Marshal(resp)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		w.Write(append(body, '\n'))
	}
	slot, err := time.Parse(time.RFC3339Nano, slotText)
	if err != nil {
		answer(http.StatusBadRequest, claimResponse{Error: fmt.Sprintf("slot %q: want an RFC 3339 time such as 2026-12-02T07:05:00Z", slotText)})
		return
	}
	resp := claimResponse{Job: job, Slot: slot.UTC().Format(time.RFC3339Nano)}
	refuse := func(format string, args ...any) {
		resp.Error = fmt.Sprintf(format, args...)
		s.log.Warn("claim API: refused", "path", r.URL.Path, "job", job, "slot", slotText, "reason", resp.Error)
		answer(http.StatusBadRequest, resp)
	}
	if y := slot.UTC().Year(); y < 1 || y > 9999 {
		// RFC 3339 spells years 0 to 9999, and an offset can move a slot
		// of either end out of the years the record stores (UTC).
		refuse("slot %s is outside the years 1 to 9999 (UTC)", slotText)
		return
	}
	if err := elector.ValidJobName(job); err != nil {
		refuse("%v", err)
		return
	}
	if len(key) > maxIdempotencyKey {
		refuse("the Idempotency-Key is %d bytes long, more than %d", len(key), maxIdempotencyKey)
		return
	}
	if !done {
		// Sub saturates, so no slot overflows this.
		now := s.now()
		switch d := slot.Sub(now); {
		case d > claimMaxAhead:
			refuse("slot %s is %v after this replica's clock (%s): a claim's slot may be at most %v ahead of it",
				resp.Slot, d.Round(time.Second), now.UTC().Format(time.RFC3339), claimMaxAhead)
			return
		case d < -claimMaxBehind:
			refuse("slot %s is %v before this replica's clock (%s): a claim's slot may be at most %v behind it (cron's longest catch-up)",
				resp.Slot, (-d).Round(time.Second), now.UTC().Format(time.RFC3339), claimMaxBehind)
			return
		}
	}
	e := s.e.Load()
	if e == nil {
		resp.Error = "not leading"
		answer(http.StatusServiceUnavailable, resp)
		return
	}
	// The write is not cancelled with the request: once sent it lands or
	// fails on its own, and the answer decides what is kept. The bound is
	// for a request that cannot even be sent.
	detached := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(r.Context()), e.Config().RenewDeadline)
	}
	if done {
		ctx, cancel := detached()
		defer cancel()
		err = e.Done(ctx, job, slot)
		s.respond(answer, resp, err)
		return
	}
	var memo *claimMemo
	if key != "" {
		var repeat bool
		if memo, repeat = s.keyed(r.Context(), e, job, slot, key); repeat {
			resp.Term, resp.Repeat = memo.term, true
			answer(http.StatusOK, resp)
			return
		}
		if memo == nil {
			return // the client left while waiting for the first try
		}
	}
	s.claiming.Lock()
	defer s.claiming.Unlock()
	if r.Context().Err() != nil {
		// The client left while waiting: claim nothing nobody will run.
		if memo != nil {
			s.settle(job, memo, 0, r.Context().Err())
		}
		return
	}
	ctx, cancel := detached()
	defer cancel()
	resp.Term, err = s.claimJob(ctx, e, job, slot, refuse)
	if memo != nil {
		s.settle(job, memo, resp.Term, err)
	}
	if errors.Is(err, errRefused) {
		return
	}
	if err == nil && r.Context().Err() != nil {
		// The client hung up before its answer: nobody runs the slot.
		if key != "" {
			s.log.Info("claim API: the client left before the answer; the claim is kept for its retry with the same Idempotency-Key", "job", job, "slot", resp.Slot, "term", resp.Term)
		} else if aerr := e.Abandon(job, slot); aerr == nil {
			s.log.Info("claim API: the client left before the answer; the claim is abandoned", "job", job, "slot", resp.Slot, "term", resp.Term)
			resp.Term, resp.Error = 0, "the client left before the answer: claim abandoned"
			answer(http.StatusServiceUnavailable, resp)
			return
		} else {
			s.log.Warn("claim API: the client left before the answer, and the claim could not be abandoned", "job", job, "slot", resp.Slot, "err", aerr)
		}
	}
	s.respond(answer, resp, err)
}

// forget answers POST /forget?job=NAME: the leader removes the job's entry
// from the record (a job that no longer runs, or a name written by
// mistake, frees its place): 200 once written, 409 if the record holds no
// such job, 503 if this replica does not lead or the write failed, 400
// for a bad name. A job that runs again starts as a new one.
func (s *server) forget(w http.ResponseWriter, r *http.Request) {
	job := r.URL.Query().Get("job")
	answer := func(code int, resp claimResponse) {
		body, _ := json.Marshal(resp)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		w.Write(append(body, '\n'))
	}
	resp := claimResponse{Job: job}
	if err := elector.ValidJobName(job); err != nil {
		resp.Error = err.Error()
		answer(http.StatusBadRequest, resp)
		return
	}
	e := s.e.Load()
	if e == nil {
		resp.Error = "not leading"
		answer(http.StatusServiceUnavailable, resp)
		return
	}
	s.claiming.Lock()
	defer s.claiming.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), e.Config().RenewDeadline)
	defer cancel()
	err := e.Forget(ctx, job)
	if err == nil {
		s.log.Info("claim API: forgot a job", "job", job)
	}
	s.respond(answer, resp, err)
}

// errRefused: claimJob has answered already.
var errRefused = errors.New("refused")

// claimJob claims slot of job on e, holding s.claiming. A job the record
// does not hold yet is claimed only while the record holds fewer than
// maxHTTPJobs jobs; otherwise refuse answers and errRefused is returned.
// A follower's claim goes to the elector, which answers "not leading".
func (s *server) claimJob(ctx context.Context, e *elector.Elector, job string, slot time.Time, refuse func(string, ...any)) (int64, error) {
	if jobs := e.Jobs(); e.IsLeader() && len(jobs) >= maxHTTPJobs {
		if _, known := jobs[job]; !known {
			refuse("the record holds %d jobs: the claim API adds no job to a record holding %d or more (half of the %d it may hold), and jobs are never removed; is %q a typo?",
				len(jobs), maxHTTPJobs, elector.MaxJobs, job)
			return 0, errRefused
		}
	}
	return e.Claim(ctx, job, slot)
}

// keyed finds the memo of a keyed claim. If a claim of the same job,
// slot and key was made on e, it waits for its answer; if that was a
// grant that still holds (e leads in its term, the slot is the job's
// claimed slot and not done), it returns the memo and true: answer it
// again. Otherwise it returns a new memo for this claim (settle it), or
// nil if ctx ended while waiting.
func (s *server) keyed(ctx context.Context, e *elector.Elector, job string, slot time.Time, key string) (*claimMemo, bool) {
	k := memoKey{job, key}
	for {
		s.mu.Lock()
		m := s.memos[k]
		if m != nil && m.e == e && m.slot.Equal(slot) {
			select {
			case <-m.answered:
			default:
				s.mu.Unlock()
				select {
				case <-m.answered:
					continue
				case <-ctx.Done():
					return nil, false
				}
			}
			if m.term != 0 && e.Term() == m.term {
				st := e.Jobs()[job]
				if st.Started.Equal(slot) && st.StartedTerm == m.term && !st.Done.Equal(slot) {
					s.mu.Unlock()
					return m, true
				}
			}
		}
		m = &claimMemo{e: e, slot: slot, answered: make(chan struct{})}
		s.memos[k] = m
		s.mu.Unlock()
		return m, false
	}
}

// settle records the answer of a keyed claim of job. A grant replaces
// the job's earlier ones; a claim not granted is forgotten (a retry
// claims again). So the memos hold at most one grant per job, and jobs
// are at most those of the record plus the claims in flight.
func (s *server) settle(job string, m *claimMemo, term int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		m.term = term
	}
	close(m.answered)
	for k, cur := range s.memos {
		if k.job != job {
			continue
		}
		granted := cur != m && cur.term != 0 // answered: term is set before
		if cur == m && err != nil || granted && err == nil {
			delete(s.memos, k)
		}
	}
}

// respond answers the outcome of a claim or done.
func (s *server) respond(answer func(int, claimResponse), resp claimResponse, err error) {
	switch {
	case err == nil:
		answer(http.StatusOK, resp)
		return
	case errors.Is(err, elector.ErrInvalidClaim):
		resp.Error = err.Error()
		answer(http.StatusBadRequest, resp)
		return
	case errors.Is(err, elector.ErrAlreadyClaimed), errors.Is(err, elector.ErrNotClaimed):
		resp.Error = err.Error()
		answer(http.StatusConflict, resp)
		return
	}
	resp.Term, resp.Error = 0, err.Error()
	answer(http.StatusServiceUnavailable, resp)
}

// checkHTTPFlags checks --http and --probe-http (either may be empty: not
// served) before anything is connected.
func checkHTTPFlags(httpAddr, probe string) error {
	if httpAddr != "" {
		if err := checkAddr("--http", httpAddr); err != nil {
			return err
		}
	}
	if probe != "" {
		if err := checkAddr("--probe-http", probe); err != nil {
			return err
		}
	}
	return nil
}

// checkHTTPAddr checks the syntax of an --http address.
func checkHTTPAddr(addr string) error { return checkAddr("--http", addr) }

// checkAddr checks the syntax of an address flag without listening:
// host:port with a numeric port from 0 to 65535; the host may be empty
// (every interface), an IP address (IPv6 in brackets) or a host name. So a
// typo is reported before anything is connected; listen reports what only
// listening can tell (the port is taken, the host does not resolve).
func checkAddr(flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return usagef("%s %q: want host:port, for example 127.0.0.1:4040 (%v)", flag, addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return usagef("%s %q: the port must be a number from 0 to 65535, got %q", flag, addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostName(host) {
		return usagef("%s %q: %q is neither an IP address nor a host name", flag, addr, host)
	}
	return nil
}

// serve serves the full API (who leads, health, metrics) on httpAddr and
// health and metrics alone on probe, until ctx is done; an empty address is
// not served. The probe address is for the kubelet and Prometheus, which
// reach the pod's IP, while the leader API can stay on localhost.
func (s *server) serve(ctx context.Context, httpAddr, probe string) error {
	if httpAddr != "" {
		if _, err := s.listen(ctx, "--http", httpAddr, s.handler()); err != nil {
			return err
		}
	}
	if probe != "" {
		if _, err := s.listen(ctx, "--probe-http", probe, s.probeHandler()); err != nil {
			return err
		}
	}
	return nil
}

// probeHandler serves /healthz and /metrics only; other paths are 404.
func (s *server) probeHandler() http.Handler {
	full := s.handler()
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", full)
	mux.Handle("GET /metrics", full)
	return mux
}

// listen serves h on addr until ctx is done; it returns once listening (or
// with the listen error, naming flag).
func (s *server) listen(ctx context.Context, flag, addr string, h http.Handler) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usagef("%s %s: %v", flag, addr, err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
	what := "serving leader, health and metrics"
	if flag == "--probe-http" {
		what = "serving health and metrics"
	}
	s.log.Info(what, "addr", l.Addr().String())
	return l.Addr(), nil
}
