package consul_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/elector"
)

// The benchmarks measure leasehold on the shared agent with the durations
// 4s / 3s / 1s, and api.Lock of the same client library with its defaults
// (session TTL 15s, lock-delay 15s) on the same agent, in the same run:
//
//	go test -run X -bench . -benchtime 5x ./backend/consul

var benchLease = elector.Config{LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: time.Second}

func benchCfg(id string, release bool) elector.Config {
	c := benchLease
	c.Identity, c.ReleaseOnCancel = id, release
	return c
}

type half struct{}

func (half) Float64() float64 { return 0.5 }

func now(start time.Time) elector.Now {
	t := time.Now()
	return elector.Now{Mono: t.Sub(start), Wall: t}
}

// drive performs the Machine's calls on be until it waits or leads.
func drive(b *testing.B, m *elector.Machine, be elector.Backend, start time.Time, out elector.Output) elector.Output {
	ctx := context.Background()
	for out.Call.Op != elector.OpNone {
		var (
			rec elector.Record
			ver elector.Version
			err error
		)
		switch out.Call.Op {
		case elector.OpGet:
			rec, ver, err = be.Get(ctx)
		case elector.OpCreate:
			ver, err = be.Create(ctx, out.Call.Record)
		case elector.OpUpdate:
			ver, err = be.Update(ctx, out.Call.Record, out.Call.Version)
		}
		out = m.Result(now(start), rec, ver, err)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkAcquire: a fresh lock taken from nothing (a consistent Get, then
// the Create transaction); and api.Lock's Lock on a free key (session
// create, acquire, read back) in the same run.
func BenchmarkAcquire(b *testing.B) {
	c := client(b, nil)
	cli := apiClient(b, need(b).Address, "", nil)
	start := time.Now()
	var ours, theirs []time.Duration
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		m, _ := elector.NewMachine(benchCfg("bench", true), half{}, true)
		out := drive(b, m, c.Lock(fmt.Sprintf("acquire-%d-%d", start.UnixNano(), i)), start, m.Start(now(start)))
		if _, ok := m.Leading(); !ok {
			b.Fatalf("not leading: %+v", out)
		}
		ours = append(ours, time.Since(t0))
		l, err := cli.LockKey(fmt.Sprintf("%slock-acquire-%d-%d", testPrefix, start.UnixNano(), i))
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if _, err := l.Lock(nil); err != nil {
			b.Fatal(err)
		}
		theirs = append(theirs, time.Since(t0))
		l.Unlock()
	}
	b.ReportMetric(ms(median(ours)), "leasehold-ms")
	b.ReportMetric(ms(median(theirs)), "api.Lock-ms")
}

// BenchmarkRenew: one renewal round trip (the CAS transaction on the
// ModifyIndex).
func BenchmarkRenew(b *testing.B) {
	c := client(b, nil)
	start := time.Now()
	be := c.Lock(fmt.Sprintf("renew-%d", start.UnixNano()))
	cfg := benchCfg("bench", true)
	m, _ := elector.NewMachine(cfg, half{}, true)
	drive(b, m, be, start, m.Start(now(start)))
	for b.Loop() {
		n := now(start)
		n.Mono += cfg.RetryPeriod
		start = start.Add(-cfg.RetryPeriod)
		out := drive(b, m, be, start, m.Tick(n))
		if out.Stopped {
			b.Fatal("lost leadership")
		}
	}
}

// runElector starts an elector whose leader work calls started and then
// waits for its context; the returned stop cancels Run and waits for it.
func runElector(tb testing.TB, cfg elector.Config, be elector.Backend, started func()) (stop func()) {
	e, err := elector.New(cfg, be, elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, _ int64) { started(); <-ctx.Done() },
		OnStoppedLeading: func() {},
	}, elector.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	return func() { cancel(); <-done }
}

// BenchmarkHandoff measures a graceful handoff, from the leader's cancel to
// the next leader's OnStartedLeading (watching and polling follower), and
// api.Lock's Unlock → the waiting Lock returning, in the same run. Goal for
// the watching follower: median ≤ 20ms.
func BenchmarkHandoff(b *testing.B) {
	need(b)
	var watch, poll, lock []time.Duration
	for b.Loop() {
		watch = append(watch, handoff(b, true))
		poll = append(poll, handoff(b, false))
		lock = append(lock, lockHandoff(b))
	}
	b.ReportMetric(ms(median(watch)), "watch-ms")
	b.ReportMetric(ms(slices.Max(watch)), "max-watch-ms")
	b.ReportMetric(ms(median(poll)), "poll-ms")
	b.ReportMetric(ms(median(lock)), "api.Lock-ms")
}

func handoff(b *testing.B, watch bool) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	lock := fmt.Sprintf("handoff-%d", time.Now().UnixNano())
	leaderUp, followerUp := make(chan struct{}), make(chan time.Time, 1)
	stopA := runElector(b, benchCfg("a", true), client(b, nil).Lock(lock), func() { close(leaderUp) })
	<-leaderUp
	var fb elector.Backend = client(b, nil).Lock(lock)
	if !watch {
		fb = backendtest.PollOnly(fb)
	}
	stopB := runElector(b, benchCfg("b", true), fb, func() { followerUp <- time.Now() })
	defer stopB()
	time.Sleep(300 * time.Millisecond) // b has read the record and sent its blocking query
	t0 := time.Now()
	stopA() // releases on the way out
	return (<-followerUp).Sub(t0)
}

func lockHandoff(b *testing.B) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	addr := need(b).Address
	key := fmt.Sprintf("%slock-handoff-%d", testPrefix, time.Now().UnixNano())
	la, err := apiClient(b, addr, "", nil).LockKey(key)
	if err != nil {
		b.Fatal(err)
	}
	lb, err := apiClient(b, addr, "", nil).LockKey(key)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := la.Lock(nil); err != nil {
		b.Fatal(err)
	}
	won := make(chan time.Time, 1)
	go func() {
		if _, err := lb.Lock(nil); err != nil {
			b.Error(err)
		}
		won <- time.Now()
	}()
	time.Sleep(300 * time.Millisecond) // b waits on the key
	t0 := time.Now()
	if err := la.Unlock(); err != nil {
		b.Fatal(err)
	}
	t1 := <-won
	lb.Unlock()
	return t1.Sub(t0)
}

// gate is an http.RoundTripper that can be cut: a crashed or partitioned
// client. It also counts requests.
type gate struct {
	next http.RoundTripper
	cut  atomic.Bool
	n    atomic.Int64
}

var errCut = errors.New("cut off (benchmark crash)")

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	if g.cut.Load() {
		return nil, errCut
	}
	g.n.Add(1)
	return g.next.RoundTrip(r)
}

func gatedClient(tb testing.TB) (*api.Client, *gate) {
	cnt := &counter{}
	cli := apiClient(tb, need(tb).Address, "", cnt)
	g := &gate{next: cnt.next}
	cnt.next = g
	return cli, g
}

// BenchmarkCrashFailover: the leader stops renewing without releasing (a
// crash): reported is how far past LeaseDuration, counted from the leader's
// last successful renewal (its RenewTime: one clock on one machine), the
// follower started leading (goal ≤ 50ms); and the requests per second the
// watching follower sent while the leader renewed (one per renewal: each
// ends its blocking query).
func BenchmarkCrashFailover(b *testing.B) {
	need(b)
	var over []time.Duration
	var rps []float64
	for b.Loop() {
		o, r := crashFailover(b)
		over, rps = append(over, o), append(rps, r)
	}
	b.ReportMetric(ms(median(over)), "over-lease-ms")
	b.ReportMetric(ms(slices.Max(over)), "max-over-lease-ms")
	b.ReportMetric(slices.Max(rps), "follower-req/s")
}

func crashFailover(b *testing.B) (time.Duration, float64) {
	lock := fmt.Sprintf("crash-%d", time.Now().UnixNano())
	ca := client(b, nil)
	cnt := &counter{}
	cb := client(b, cnt)
	up := make(chan struct{})
	stopA := runElector(b, benchCfg("a", false), ca.Lock(lock), func() { close(up) })
	<-up
	won := make(chan time.Time, 1)
	defer runElector(b, benchCfg("b", true), cb.Lock(lock), func() { won <- time.Now() })()
	time.Sleep(1500 * time.Millisecond)
	before, t0 := cnt.total(), time.Now()
	time.Sleep(3 * time.Second)
	rps := float64(cnt.total()-before) / time.Since(t0).Seconds()
	stopA() // no release: the lease must run out
	rec, _, err := ca.Lock(lock).Get(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	t1 := <-won
	return t1.Sub(rec.RenewTime) - benchLease.LeaseDuration, rps
}

// BenchmarkLockCrashFailover: api.Lock with its defaults; the holder's
// client is cut off (its session is neither renewed nor destroyed): how
// long until a waiting Lock on another client returns, counted from the
// cut (the last session renewal was at most TTL/2 earlier). Bounded at 60s.
// The iterations run at once, each on its own key. Also reported: the
// requests per second the waiting client sent while the holder renewed.
func BenchmarkLockCrashFailover(b *testing.B) {
	need(b)
	const limit = 60 * time.Second
	var (
		mu  sync.Mutex
		res []lockCrashResult
		wg  sync.WaitGroup
	)
	n := 0
	for b.Loop() {
		n++
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := lockCrash(b, i, limit)
			mu.Lock()
			res = append(res, r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	var ds []time.Duration
	var rps []float64
	for _, r := range res {
		if r.err != nil {
			b.Fatal(r.err)
		}
		ds, rps = append(ds, r.d), append(rps, r.rps)
	}
	b.ReportMetric(ms(median(ds))/1000, "api.Lock-failover-s")
	b.ReportMetric(ms(slices.Max(ds))/1000, "max-api.Lock-failover-s")
	b.ReportMetric(slices.Max(rps), "api.Lock-waiter-req/s")
}

type lockCrashResult struct {
	d   time.Duration
	rps float64
	err error
}

func lockCrash(b *testing.B, i int, limit time.Duration) lockCrashResult {
	key := fmt.Sprintf("%slock-crash-%d-%d", testPrefix, time.Now().UnixNano(), i)
	ca, ga := gatedClient(b)
	cb, gb := gatedClient(b)
	la, err := ca.LockKey(key)
	if err != nil {
		return lockCrashResult{err: err}
	}
	lb, err := cb.LockKey(key)
	if err != nil {
		return lockCrashResult{err: err}
	}
	if _, err := la.Lock(nil); err != nil {
		return lockCrashResult{err: err}
	}
	stop := make(chan struct{})
	won := make(chan error, 1)
	go func() {
		_, err := lb.Lock(stop)
		won <- err
	}()
	time.Sleep(time.Second)
	before, t0 := gb.n.Load(), time.Now()
	time.Sleep(3 * time.Second)
	rps := float64(gb.n.Load()-before) / time.Since(t0).Seconds()
	ga.cut.Store(true) // the holder is gone: no renewal, no destroy
	cut := time.Now()
	select {
	case err := <-won:
		if err != nil {
			return lockCrashResult{err: err}
		}
		d := time.Since(cut)
		lb.Unlock()
		return lockCrashResult{d: d, rps: rps}
	case <-time.After(limit):
		close(stop)
		<-won
		return lockCrashResult{d: limit, rps: rps}
	}
}

// BenchmarkFollowerRequests reports the requests per second one follower
// sends, watching and polling: while the leader renews every RetryPeriod
// (1s), and while the record does not change (a holder gone with a long
// lease: idle).
func BenchmarkFollowerRequests(b *testing.B) {
	need(b)
	for _, tc := range []struct {
		name        string
		watch, idle bool
	}{{"renewing/watch", true, false}, {"renewing/poll", false, false}, {"idle/watch", true, true}, {"idle/poll", false, true}} {
		b.Run(tc.name, func(b *testing.B) {
			var rates []float64
			for b.Loop() {
				rates = append(rates, followerRate(b, tc.watch, tc.idle))
			}
			b.ReportMetric(slices.Max(rates), "req/s")
		})
	}
}

func followerRate(b *testing.B, watch, idle bool) float64 {
	lock := fmt.Sprintf("rate-%d", time.Now().UnixNano())
	if idle {
		t := time.Now()
		if _, err := client(b, nil).Lock(lock).Create(context.Background(), elector.Record{
			Holder: "gone", LeaseDuration: time.Minute, AcquireTime: t, RenewTime: t, Term: 1}); err != nil {
			b.Fatal(err)
		}
	} else {
		up := make(chan struct{})
		var once sync.Once
		stopA := runElector(b, benchCfg("a", true), client(b, nil).Lock(lock), func() { once.Do(func() { close(up) }) })
		defer stopA()
		<-up
	}
	cnt := &counter{}
	var be elector.Backend = client(b, cnt).Lock(lock)
	if !watch {
		be = backendtest.PollOnly(be)
	}
	stopB := runElector(b, benchCfg("b", true), be, func() {})
	defer stopB()
	time.Sleep(time.Second)
	before, t0 := cnt.total(), time.Now()
	time.Sleep(3 * time.Second)
	return float64(cnt.total()-before) / time.Since(t0).Seconds()
}
