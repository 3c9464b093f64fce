package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserver(t *testing.T) {
	reg := prometheus.NewRegistry()
	o, err := metrics.New(reg, "job")
	if err != nil {
		t.Fatal(err)
	}
	o.Leading(true, 7, elector.ReasonNone)
	o.Call(elector.KindRenew, elector.OpUpdate, 2*time.Millisecond, nil)
	o.Call(elector.KindRenew, elector.OpUpdate, time.Second, context.DeadlineExceeded)
	o.Call(elector.KindRead, elector.OpGet, time.Millisecond, errors.New("boom"))
	want := `
# HELP leasehold_is_leader 1 while this candidate leads the lock, else 0.
# TYPE leasehold_is_leader gauge
leasehold_is_leader{lock="job"} 1
# HELP leasehold_renew_failures_total Renewals by the leader that did not succeed.
# TYPE leasehold_renew_failures_total counter
leasehold_renew_failures_total{lock="job"} 1
# HELP leasehold_term Fencing term of the current leadership; 0 when not leading.
# TYPE leasehold_term gauge
leasehold_term{lock="job"} 7
# HELP leasehold_transitions_total Leadership transitions of this candidate, by direction (started, stopped).
# TYPE leasehold_transitions_total counter
leasehold_transitions_total{direction="started",lock="job"} 1
leasehold_transitions_total{direction="stopped",lock="job"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "leasehold_is_leader", "leasehold_renew_failures_total",
		"leasehold_term", "leasehold_transitions_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "leasehold_backend_request_duration_seconds"); n != 3 {
		t.Fatalf("%d latency series, want 3 (update ok, update timeout, get error)", n)
	}
	o.Leading(false, 0, elector.ReasonDeadline)
	if v := testutil.ToFloat64(o2(t, reg)); v != 0 {
		t.Fatalf("is_leader after stop = %v", v)
	}
	if n, err := testutil.GatherAndCount(reg, "leasehold_stops_total"); err != nil || n != 3 {
		t.Fatalf("%d stop series (%v), want one per reason", n, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP leasehold_stops_total Leaderships of this candidate that ended, by reason (deadline, conflict, stopped).
# TYPE leasehold_stops_total counter
leasehold_stops_total{lock="job",reason="conflict"} 0
leasehold_stops_total{lock="job",reason="deadline"} 1
leasehold_stops_total{lock="job",reason="stopped"} 0
`), "leasehold_stops_total"); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg, "job"); err == nil {
		t.Fatal("registering the same lock twice on one registry should fail")
	}
}

func o2(t *testing.T, reg *prometheus.Registry) prometheus.Collector {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "leasehold_is_leader" {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return mf.GetMetric()[0].GetGauge().GetValue() })
		}
	}
	t.Fatal("no leasehold_is_leader")
	return nil
}
