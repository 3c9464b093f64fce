// Package storeprofile is for the backends' profile tests (TestProfile in
// backend/etcd, backend/consul and backend/kube, TestProfileMemory in
// backend/etcd) and for backend/etcd's calibration: it measures a store's
// read, write and watch latency as the simulator's store profiles
// (sim.Profiles, sim/profile.go) use them, and `leasehold run`'s work's
// start and stop with real processes, and checks the table against the
// figures. Each backend passes what differs: how to open a lock on its
// store, its cheapest request, its name and the profile it is compared
// with.
//
// A test binary that imports this package acts as the work's guard when
// StartWork re-executes it (see the package's init).
package storeprofile

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/sim"
)

// Stats are the figures of a sample.
type Stats struct{ P10, P25, P50, P75, P90, Min, Max time.Duration }

// StatsOf returns the figures of d (nearest rank); d must not be empty.
func StatsOf(d []time.Duration) Stats {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[int(q*float64(len(s)-1)+0.5)] }
	return Stats{P10: at(0.1), P25: at(0.25), P50: at(0.5), P75: at(0.75), P90: at(0.9), Min: s[0], Max: s[len(s)-1]}
}

func (s Stats) String() string {
	return fmt.Sprintf("p10 %v  p50 %v  p90 %v  (min %v, max %v)", s.P10, s.P50, s.P90, s.Min, s.Max)
}

// Store is what a backend's profile test measures.
type Store struct {
	// Name is the store's, for the log ("etcd", "consul", "kube",
	// "memory").
	Name string
	// Table is the profile of sim/profile.go the figures are checked
	// against (sim.Profiles[Name]).
	Table sim.Profile
	// N requests of each kind are timed, one at a time with Gap between
	// them (a client rate limit must not show up as service time).
	N   int
	Gap time.Duration
	// NewLock opens a lock of the given name on the store; the writer's,
	// and each of the saturating writers', is a call of its own.
	NewLock func(name string) elector.Backend
	// Watcher opens the follower's view of the lock (on a client of its
	// own).
	Watcher func(name string) elector.Watcher
	// Ping is the store's cheapest request: its round trip is the network.
	Ping func(context.Context) error
	// Work: also time the start and stop of run's work (a guard and its
	// command, StartWork), and check them against the table. They do not
	// depend on the store: without Work, the profile takes them from the
	// etcd profile's (the etcd module measures them).
	Work bool
}

// Test measures s's figures, logs them and the profile they give, and
// fails when a figure of s.Table is off by more than a factor of 3 from
// the one measured (a shared machine moves figures by tens of percent).
func Test(t *testing.T, s Store) {
	t.Helper()
	m := measure(t, s.N, s.Gap, s.NewLock, s.Watcher, s.Ping)
	if s.Work {
		measureWork(t, &m)
	}
	logMeasured(t, s.Name, m)
	check(t, s.Table, m)
}

// measured is what measure found.
type measured struct {
	ping, read, write, watchAfterReply Stats
	parallel                           float64 // writes in service at once at saturation (Little's law)
	saturatedWrite                     time.Duration
	work                               bool // workStart and workStop are measured
	workStart, workStop                Stats
}

// profile turns the figures into the simulator's terms: the cheapest
// round trip is the network (both stacks and loopback): its spread is
// uniform one-way jitter, the rest split evenly between request and
// reply; the rest of a read or a write is the store's service time.
func (m measured) profile() sim.Profile {
	// Two uniform one-way draws: the round trip's p10–p90 span is 1.1 J.
	jitter := (m.ping.P90 - m.ping.P10) * 10 / 11
	oneWay := max((m.ping.P50-jitter)/2, 0)
	p := sim.Profile{
		RequestLatency: oneWay, ReplyLatency: oneWay, Jitter: jitter,
		ReadService: max(m.read.P50-m.ping.P50, 0), WriteService: max(m.write.P50-m.ping.P50, 0),
		Parallel: max(int(m.parallel+0.5), 1), WatchLag: max(m.watchAfterReply.P50, 0),
	}
	// The work's start and stop do not depend on the store, and are
	// measured on the shipped binary's own path (BenchmarkRunHandoff in
	// cmd/leasehold), not here: the table's figures are kept.
	etcd := sim.Profiles["etcd"]
	p.WorkStart, p.WorkStop, p.WorkSigma = etcd.WorkStart, etcd.WorkStop, etcd.WorkSigma
	return p
}

// WorkSigma fits the simulator's lognormal spread of the work's times
// from their interquartile range, which a few very late process starts
// on a busy machine do not move: ln(p75/p25)/1.349 (the interquartile
// range of N(0,1)), the mean of both.
func WorkSigma(ss ...Stats) float64 {
	sum := 0.0
	for _, s := range ss {
		if s.P25 > 0 {
			sum += math.Log(float64(s.P75)/float64(s.P25)) / 1.349
		}
	}
	return math.Round(sum/float64(len(ss))*100) / 100
}

// rec is a record as a renewal writes it: each a little different.
func rec() elector.Record {
	now := time.Now()
	return elector.Record{Holder: "p", Instance: "i", LeaseDuration: time.Second, AcquireTime: now, RenewTime: now, Term: 1}
}

// measure times reads, writes and watch notifications on the store, n of
// each, one at a time with gap between them (a client rate limit must not
// show up as service time); ping is the store's cheapest request.
func measure(t *testing.T, n int, gap time.Duration, newLock func(name string) elector.Backend, watcher func(name string) elector.Watcher, ping func(context.Context) error) measured {
	t.Helper()
	ctx := context.Background()
	var m measured
	timed := func(f func() error) time.Duration {
		t.Helper()
		t0 := time.Now()
		if err := f(); err != nil {
			t.Fatal(err)
		}
		return time.Since(t0)
	}
	var pings []time.Duration
	for range n {
		pings = append(pings, timed(func() error { return ping(ctx) }))
		time.Sleep(gap)
	}
	m.ping = StatsOf(pings)

	name := fmt.Sprintf("profile-%d", time.Now().UnixNano())
	b, w := newLock(name), watcher(name)
	ver, err := b.Create(ctx, rec())
	if err != nil {
		t.Fatal(err)
	}
	// Writes, with a follower watching on a client of its own.
	type seen struct {
		ver elector.Version
		at  time.Time
	}
	events := make(chan seen, n+1)
	wctx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		v := ver
		for wctx.Err() == nil {
			_, nv, err := w.Watch(wctx, v)
			if err != nil {
				if wctx.Err() == nil {
					t.Logf("watch: %v", err)
					time.Sleep(10 * time.Millisecond)
				}
				continue
			}
			events <- seen{nv, time.Now()}
			v = nv
		}
	}()
	time.Sleep(200 * time.Millisecond) // the watch is established
	var writes []time.Duration
	replied := map[elector.Version]time.Time{}
	for range n {
		t0 := time.Now()
		nv, err := b.Update(ctx, rec(), ver)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		writes = append(writes, now.Sub(t0))
		replied[nv], ver = now, nv
		time.Sleep(gap) // one write at a time reaches the watcher
	}
	time.Sleep(200 * time.Millisecond)
	stopWatch()
	wg.Wait()
	close(events)
	var lags []time.Duration
	for e := range events {
		if r, ok := replied[e.ver]; ok {
			lags = append(lags, e.at.Sub(r))
		}
	}
	if len(lags) < n/2 {
		t.Fatalf("the watcher saw %d of %d writes", len(lags), n)
	}
	m.write, m.watchAfterReply = StatsOf(writes), StatsOf(lags)
	var reads []time.Duration
	for range n {
		reads = append(reads, timed(func() error { _, _, err := b.Get(ctx); return err }))
		time.Sleep(gap)
	}
	m.read = StatsOf(reads)

	// Saturation: 8 writers on locks of their own; Little's law gives how
	// many writes the store serves at once.
	const writers, each = 8, 50
	var mu sync.Mutex
	var busy time.Duration
	t0 := time.Now()
	var sat sync.WaitGroup
	for i := range writers {
		bb := newLock(fmt.Sprintf("%s-sat-%d", name, i))
		sat.Add(1)
		go func() {
			defer sat.Done()
			v, err := bb.Create(ctx, rec())
			if err != nil {
				t.Error(err)
				return
			}
			var sum time.Duration
			for range each {
				s := time.Now()
				if v, err = bb.Update(ctx, rec(), v); err != nil {
					t.Error(err)
					return
				}
				sum += time.Since(s)
			}
			mu.Lock()
			busy += sum
			mu.Unlock()
		}()
	}
	sat.Wait()
	elapsed := time.Since(t0)
	m.saturatedWrite = elapsed / (writers * each)
	// At saturation, each write's time in the store is its round trip
	// less the network; writes in service = that time × throughput.
	inStore := busy/(writers*each) - m.ping.P50
	m.parallel = float64(inStore) / float64(m.saturatedWrite)
	return m
}

// measureWork times the start and stop of run's work, 25 times.
func measureWork(t *testing.T, m *measured) {
	t.Helper()
	var starts, stops []time.Duration
	for range 25 {
		t0 := time.Now()
		wk, err := StartWork()
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, time.Since(t0))
		t1 := time.Now()
		wk.Stop()
		stops = append(stops, time.Since(t1))
	}
	m.work, m.workStart, m.workStop = true, StatsOf(starts), StatsOf(stops)
}

func logMeasured(t *testing.T, store string, m measured) {
	t.Helper()
	t.Logf("%s, measured on %s:", store, time.Now().UTC().Format("2006-01-02"))
	t.Logf("  ping (cheapest round trip) %v", m.ping)
	t.Logf("  read  (Get)                %v", m.read)
	t.Logf("  write (CAS Update)         %v", m.write)
	t.Logf("  watch event after the writer's reply %v", m.watchAfterReply)
	t.Logf("  saturated writes: one per %v, %.2f in service at once", m.saturatedWrite, m.parallel)
	if m.work {
		t.Logf("  work start (a test binary's guard + command; not the table's source) %v", m.workStart)
		t.Logf("  work stop (SIGTERM → exit; likewise)                               %v", m.workStop)
	}
	p := m.profile()
	// Whether a watch is a request is the backend's design, not a timing.
	p.WatchIsRequest = sim.Profiles[store].WatchIsRequest
	t.Logf("  profile: %s", p)
}

// CheckEnv turns the comparison with the table on: with
// LEASEHOLD_PROFILE_CHECK=1 a figure off by more than 3× fails the test.
// Off by default, because the figures are timings of a machine — a busy
// one, or a -race build (whose guard process starts five times slower),
// measures other figures than the quiet one that made the table — and
// timing goals belong in measurements, not in the tests every run makes.
// The measuring itself (every request answered, every watch event seen)
// is always checked.
const CheckEnv = "LEASEHOLD_PROFILE_CHECK"

// check fails when a figure of the table is off by more than a factor of
// 3 from the one measured, and by more than 50µs (tiny figures, the
// memory store's, may be off by any factor). The work's start and stop
// are not: the table's come from the shipped binary (BenchmarkRunHandoff),
// these from a test binary's guard. Only with CheckEnv set; otherwise it
// logs the figures that are off.
func check(t *testing.T, table sim.Profile, m measured) {
	t.Helper()
	report := t.Logf
	if os.Getenv(CheckEnv) == "1" {
		report = t.Errorf
	}
	got := m.profile()
	type figure struct {
		name      string
		want, got time.Duration
	}
	figures := []figure{
		{"write round trip", table.RoundTrip(true), got.RoundTrip(true)},
		{"read round trip", table.RoundTrip(false), got.RoundTrip(false)},
	}
	for _, f := range figures {
		lo, hi := f.want/3, f.want*3
		if (f.got < lo || f.got > hi) && (f.got-f.want > 50*time.Microsecond || f.want-f.got > 50*time.Microsecond) {
			report("%s: the profile says %v, measured %v (more than 3× apart): re-measure and update sim/profile.go", f.name, f.want, f.got)
		}
	}
}
