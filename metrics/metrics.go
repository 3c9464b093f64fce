// Package metrics exports what an Elector does as Prometheus metrics, on a
// registry the caller owns (no global registry).
package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/prometheus/client_golang/prometheus"
)

// Observer is an elector.Observer that records Prometheus metrics.
type Observer struct {
	isLeader    prometheus.Gauge
	term        prometheus.Gauge
	transitions *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	renewFails  prometheus.Counter
	stops       *prometheus.CounterVec
}

var _ elector.Observer = (*Observer)(nil)

// New registers the metrics of one lock on reg:
//
//	leasehold_is_leader                          1 while this candidate leads
//	leasehold_term                               fencing term of the current leadership (0 when not leading)
//	leasehold_transitions_total{direction}       started / stopped leading
//	leasehold_backend_request_duration_seconds{op,result}   get/create/update/release; ok, conflict, not_found, timeout, error
//	leasehold_renew_failures_total               renewals that did not succeed
//	leasehold_stops_total{reason}                ended leaderships: deadline, conflict, stopped
func New(reg prometheus.Registerer, lock string) (*Observer, error) {
	labels := prometheus.Labels{"lock": lock}
	o := &Observer{
		isLeader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "leasehold_is_leader", ConstLabels: labels,
			Help: "1 while this candidate leads the lock, else 0."}),
		term: prometheus.NewGauge(prometheus.GaugeOpts{Name: "leasehold_term", ConstLabels: labels,
			Help: "Fencing term of the current leadership; 0 when not leading."}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "leasehold_transitions_total", ConstLabels: labels,
			Help: "Leadership transitions of this candidate, by direction (started, stopped)."}, []string{"direction"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "leasehold_backend_request_duration_seconds",
			ConstLabels: labels, Help: "Backend request latency by operation and result.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"op", "result"}),
		renewFails: prometheus.NewCounter(prometheus.CounterOpts{Name: "leasehold_renew_failures_total", ConstLabels: labels,
			Help: "Renewals by the leader that did not succeed."}),
		stops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "leasehold_stops_total", ConstLabels: labels,
			Help: "Leaderships of this candidate that ended, by reason (deadline, conflict, stopped)."}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{o.isLeader, o.term, o.transitions, o.latency, o.renewFails, o.stops} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	o.transitions.WithLabelValues("started")
	o.transitions.WithLabelValues("stopped")
	for _, r := range stopLabels {
		o.stops.WithLabelValues(r)
	}
	return o, nil
}

// stopLabels are the reason label values of leasehold_stops_total.
var stopLabels = map[elector.StopReason]string{
	elector.ReasonDeadline: "deadline",
	elector.ReasonConflict: "conflict",
	elector.ReasonStopped:  "stopped",
}

// Call records a backend request.
func (o *Observer) Call(kind elector.Kind, op elector.Op, took time.Duration, err error) {
	name := op.String()
	if kind == elector.KindRelease {
		name = "release"
	}
	o.latency.WithLabelValues(name, result(err)).Observe(took.Seconds())
	if kind == elector.KindRenew && err != nil {
		o.renewFails.Inc()
	}
}

// Leading records a transition, and why a leadership ended.
func (o *Observer) Leading(leading bool, term int64, reason elector.StopReason) {
	if leading {
		o.isLeader.Set(1)
		o.term.Set(float64(term))
		o.transitions.WithLabelValues("started").Inc()
		return
	}
	o.isLeader.Set(0)
	o.term.Set(0)
	o.transitions.WithLabelValues("stopped").Inc()
	if l, ok := stopLabels[reason]; ok {
		o.stops.WithLabelValues(l).Inc()
	}
}

func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, elector.ErrConflict):
		return "conflict"
	case errors.Is(err, elector.ErrNotFound):
		return "not_found"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "error"
}
