package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"regexp"
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
	return mux
}

// checkHTTPAddr checks the syntax of an --http address without listening:
// host:port with a numeric port from 0 to 65535; the host may be empty
// (every interface), an IP address (IPv6 in brackets) or a host name. So a
// typo is reported before anything is connected; listen reports what only
// listening can tell (the port is taken, the host does not resolve).
func checkHTTPAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return usagef("--http %q: want host:port, for example 127.0.0.1:4040 (%v)", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return usagef("--http %q: the port must be a number from 0 to 65535, got %q", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && !hostName.MatchString(host) {
		return usagef("--http %q: %q is neither an IP address nor a host name", addr, host)
	}
	return nil
}

// hostName is a DNS name: dot-separated labels of letters, digits and '-'.
var hostName = regexp.MustCompile(`^([a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?\.?$`)

// listen serves on addr until ctx is done; it returns once listening (or
// with the listen error).
func (s *server) listen(ctx context.Context, addr string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usagef("--http %s: %v", addr, err)
	}
	hs := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
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
	s.log.Info("serving leader, health and metrics", "addr", l.Addr().String())
	return l.Addr(), nil
}
