package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Profile is the timing of one real store and of `leasehold run`'s work,
// as a scenario's `store:` key selects it. A round trip in the model is
// RequestLatency + Jitter draw + the store's service time (queueing behind
// Parallel requests in service) + ReplyLatency + another Jitter draw.
type Profile struct {
	RequestLatency time.Duration // node → store, one way
	ReplyLatency   time.Duration // store → node, one way
	Jitter         time.Duration // extra one-way delay, uniform in [0, Jitter)
	ReadService    time.Duration // the store's own time for a Get
	WriteService   time.Duration // the store's own time for a Create or Update
	Parallel       int           // requests the store serves at once; more wait in line
	WatchLag       time.Duration // from a write's commit to its watch notification leaving the store
	WatchIsRequest bool          // a watch is a request (Consul's blocking query), not a stream (etcd, Kubernetes)
	WorkStart      time.Duration // from Started until the leader's work runs
	WorkStop       time.Duration // from the stop until the leader's work has returned
	WorkSigma      float64       // lognormal spread of both (ln(p75/p25)/1.349)
}

// RoundTrip is the mean round trip of a write (or a read) on an idle
// store: both one-way latencies, their mean jitter and the service time.
func (p Profile) RoundTrip(write bool) time.Duration {
	svc := p.ReadService
	if write {
		svc = p.WriteService
	}
	return p.RequestLatency + p.ReplyLatency + p.Jitter + svc
}

// String renders p as the Go literal of the table below.
func (p Profile) String() string {
	return fmt.Sprintf("{RequestLatency: %s, ReplyLatency: %s, Jitter: %s, ReadService: %s, WriteService: %s, Parallel: %d, WatchLag: %s, WatchIsRequest: %v, WorkStart: %s, WorkStop: %s, WorkSigma: %.2f}",
		lit(p.RequestLatency), lit(p.ReplyLatency), lit(p.Jitter), lit(p.ReadService), lit(p.WriteService),
		p.Parallel, lit(p.WatchLag), p.WatchIsRequest, lit(p.WorkStart), lit(p.WorkStop), p.WorkSigma)
}

// lit renders d as a Go expression in microseconds.
func lit(d time.Duration) string {
	return fmt.Sprintf("%d * time.Microsecond", d.Round(time.Microsecond)/time.Microsecond)
}

// Profiles are the stores' timing profiles. The figures are medians
// measured on the real servers this project's tests start (loopback, the
// 2-core development machine); the commands that measured them are named
// by each entry. The cheapest round trip is the network: its p10–p90
// spread is the jitter, the rest split evenly between request and reply;
// the rest of a read or a write is the store's service time; Parallel is how
// many writes the store had in service at once when 8 writers saturated
// it (Little's law); WatchLag is the median time from the writer's reply
// to the watcher's event. With LEASEHOLD_PROFILE_CHECK=1 those tests fail
// when this table is more than 3× off what they measure (re-measure on a
// quiet machine, without -race, and update it). WorkStart and WorkStop are
// `leasehold run`'s own, the same on every store: from leading to the
// command's first line (the grant to the guard started ahead of time, its
// fork/exec of `sh -c`), and from stopping the command to the guard's
// report that it and its group are gone; WorkSigma their lognormal
// spread. Measured by `go test -run '^$' -bench RunHandoff -benchtime 15x
// ./cmd/leasehold` on etcd, Consul and a kube-apiserver, 2026-12-05: the
// start 12.1–14.9 ms p50, the stop 3.4–3.9 ms, σ 0.44.
var Profiles = map[string]Profile{
	// `cd backend/etcd && go test -run 'TestProfile$' -v .`, etcd 3.7.3 on
	// loopback, 2026-12-02, the middle of three runs by write round trip
	// (ping p50 892µs, read 1.17ms, write 1.41ms, saturated one write per
	// 232µs); the work's times are run's (above).
	"etcd": {RequestLatency: 0 * time.Microsecond, ReplyLatency: 0 * time.Microsecond, Jitter: 1095 * time.Microsecond,
		ReadService: 276 * time.Microsecond, WriteService: 513 * time.Microsecond, Parallel: 4,
		WatchLag: 30 * time.Microsecond, WorkStart: 13700 * time.Microsecond, WorkStop: 3500 * time.Microsecond, WorkSigma: 0.44},
	// `cd backend/consul && go test -run 'TestProfile$' -v .`, consul agent
	// -dev v1.20.1, 2026-12-02 (ping p50 862µs, read 1.24ms, write 1.43ms,
	// saturated one write per 432µs); the work's times are etcd's run's.
	"consul": {RequestLatency: 108 * time.Microsecond, ReplyLatency: 108 * time.Microsecond, Jitter: 646 * time.Microsecond,
		ReadService: 378 * time.Microsecond, WriteService: 573 * time.Microsecond, Parallel: 5,
		WatchLag: 57 * time.Microsecond, WatchIsRequest: true, WorkStart: 13700 * time.Microsecond, WorkStop: 3500 * time.Microsecond, WorkSigma: 0.44},
	// `cd backend/kube && go test -run 'TestProfile$' -v .`, kube-apiserver
	// v1.37.2 over its etcd, 2026-12-02, on a quiet machine (ping /healthz
	// p50 794µs, read 1.61ms, write 2.38ms, saturated one write per
	// 749µs; busy, the same test gave twice that); the work's times are
	// etcd's run's.
	"kube": {RequestLatency: 232 * time.Microsecond, ReplyLatency: 232 * time.Microsecond, Jitter: 330 * time.Microsecond,
		ReadService: 817 * time.Microsecond, WriteService: 1589 * time.Microsecond, Parallel: 7,
		WatchLag: 0 * time.Microsecond, WorkStart: 13700 * time.Microsecond, WorkStop: 3500 * time.Microsecond, WorkSigma: 0.44},
	// `cd backend/etcd && go test -run TestProfileMemory -v .`: the
	// in-process store of `--backend memory`, no network, 2026-12-02 (read
	// 0.5µs, write 5µs, watch event 11µs after the writer's return); the
	// work's times are etcd's run's.
	"memory": {RequestLatency: 0 * time.Microsecond, ReplyLatency: 0 * time.Microsecond, Jitter: 0 * time.Microsecond,
		ReadService: 0 * time.Microsecond, WriteService: 5 * time.Microsecond, Parallel: 1,
		WatchLag: 11 * time.Microsecond, WorkStart: 13700 * time.Microsecond, WorkStop: 3500 * time.Microsecond, WorkSigma: 0.44},
}

// profileNames lists the profiles, sorted, for messages.
func profileNames() string {
	var names []string
	for k := range Profiles {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// applyTo sets the scenario's timing from p, except the keys the file
// gives itself (given: "network.latency", "service.write", "work_stop",
// ...): explicit keys override the profile.
func (p Profile) applyTo(sc *Scenario, given map[string]bool) {
	set := func(keys ...string) bool {
		for _, k := range keys {
			if given[k] {
				return false
			}
		}
		return true
	}
	if set("network.latency", "network.request_latency") {
		sc.Latency = p.RequestLatency
	}
	if set("network.latency", "network.reply_latency") {
		sc.ReplyLatency = p.ReplyLatency
	}
	if set("network.jitter") {
		sc.Jitter = p.Jitter
	}
	if set("service.read") {
		sc.ReadService = p.ReadService
	}
	if set("service.write") {
		sc.WriteService = p.WriteService
	}
	if set("service.parallel") {
		sc.Parallel = max(p.Parallel, 1)
	}
	if set("service.watch_lag") {
		sc.WatchLag = p.WatchLag
	}
	if set("service.watch_is_request") {
		sc.WatchIsRequest = p.WatchIsRequest
	}
	if set("work_start") {
		sc.WorkStart = p.WorkStart
	}
	if set("work_stop") {
		sc.WorkStop = p.WorkStop
	}
	if set("work_sigma") {
		sc.WorkSigma = p.WorkSigma
	}
}

// UseProfile gives a scenario built in code the timing of the named
// profile, as `store: name` does in a file.
func (sc *Scenario) UseProfile(name string) error {
	p, ok := Profiles[name]
	if !ok {
		return &invalid{msg: fmt.Sprintf("Store: no timing profile %q (want one of %s)", name, profileNames())}
	}
	sc.Store = name
	p.applyTo(sc, nil)
	return nil
}
