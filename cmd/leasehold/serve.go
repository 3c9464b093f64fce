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
}

func newServer(lock string, log *slog.Logger) (*server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	obs, err := metrics.New(reg, lock)
	if err != nil {
		return nil, err
	}
	return &server{reg: reg, obs: obs, log: log}, nil
}

// leaderResponse is the classic leader-elector sidecar's answer.
type leaderResponse struct {
	Name string `json:"name"`
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	// Any other path answers the leader, as the classic leader-elector did.
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
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
	return mux
}

// claimResponse is the answer of POST /claim and POST /done.
type claimResponse struct {
	Job   string `json:"job,omitempty"`
	Slot  string `json:"slot,omitempty"`
	Term  int64  `json:"term,omitempty"`
	Error string `json:"error,omitempty"`
}

// claim answers POST /claim?job=NAME&slot=RFC3339 (done: POST /done): 200
// if this replica leads and has just claimed the slot (or marked it done),
// 409 if it was claimed before, by anyone (done: it is not the job's
// claimed slot), 503 if this replica does not lead or the claim's write
// failed (the job must not run), 400 for a bad job or slot.
func (s *server) claim(w http.ResponseWriter, r *http.Request, done bool) {
	q := r.URL.Query()
	job, slotText := q.Get("job"), q.Get("slot")
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
	e := s.e.Load()
	if e == nil {
		resp.Error = "not leading"
		answer(http.StatusServiceUnavailable, resp)
		return
	}
	if done {
		err = e.Done(r.Context(), job, slot)
	} else {
		resp.Term, err = e.Claim(r.Context(), job, slot)
	}
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
