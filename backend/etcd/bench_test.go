package etcd_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/elector"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

type half struct{}

func (half) Float64() float64 { return 0.5 }

func now(start time.Time) elector.Now {
	t := time.Now()
	return elector.Now{Mono: t.Sub(start), Wall: t}
}

// drive performs the Machine's calls on b until it waits or leads.
func drive(b *testing.B, m *elector.Machine, be *etcd.Backend, start time.Time, out elector.Output) elector.Output {
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

// BenchmarkAcquire: a fresh lock taken from nothing (Get, then Create).
func BenchmarkAcquire(b *testing.B) {
	c := client(b)
	start := time.Now()
	i := 0
	for b.Loop() {
		i++
		m, _ := elector.NewMachine(elector.DefaultConfig("bench"), half{}, true)
		out := drive(b, m, c.Lock(fmt.Sprintf("acquire-%d-%d", start.UnixNano(), i)), start, m.Start(now(start)))
		if _, ok := m.Leading(); !ok {
			b.Fatalf("not leading: %+v", out)
		}
	}
}

// BenchmarkRenew: one renewal round trip (Txn on ModRevision).
func BenchmarkRenew(b *testing.B) {
	c := client(b)
	start := time.Now()
	be := c.Lock(fmt.Sprintf("renew-%d", start.UnixNano()))
	m, _ := elector.NewMachine(elector.DefaultConfig("bench"), half{}, true)
	drive(b, m, be, start, m.Start(now(start)))
	cfg := elector.DefaultConfig("bench")
	for b.Loop() {
		// Present the renewal as due: RetryPeriod after the last one.
		n := now(start)
		n.Mono += cfg.RetryPeriod
		start = start.Add(-cfg.RetryPeriod)
		out := drive(b, m, be, start, m.Tick(n))
		if out.Stopped {
			b.Fatal("lost leadership")
		}
	}
}

// BenchmarkHandoff measures a graceful handoff, from the leader's cancel to
// the next leader's OnStartedLeading, with a watching and with a polling
// follower, and etcd's own concurrency.Election Resign → Campaign handoff
// in the same run. Reported: medians in ms and the ratio watch / election.
func BenchmarkHandoff(b *testing.B) {
	need(b)
	var watch, poll, elect []time.Duration
	for b.Loop() {
		watch = append(watch, handoff(b, true))
		poll = append(poll, handoff(b, false))
		elect = append(elect, electionHandoff(b))
	}
	mw, mp, me := median(watch), median(poll), median(elect)
	b.ReportMetric(ms(mw), "watch-ms")
	b.ReportMetric(ms(mp), "poll-ms")
	b.ReportMetric(ms(me), "election-ms")
	b.ReportMetric(float64(mw)/float64(me), "watch/election")
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// handoff runs a leader and a follower on separate clients and times one
// release handoff.
func handoff(b *testing.B, watch bool) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	lock := fmt.Sprintf("handoff-%d", time.Now().UnixNano())
	leaderUp, followerUp := make(chan struct{}), make(chan time.Time, 1)
	lease := func(id string) elector.Config {
		return elector.Config{Identity: id, LeaseDuration: 10 * time.Second, RenewDeadline: 8 * time.Second,
			RetryPeriod: time.Second, ReleaseOnCancel: true}
	}
	ca, cb := client(b), client(b)
	stopA := runElector(b, lease("a"), ca.Lock(lock), func() { close(leaderUp) })
	<-leaderUp
	var fb elector.Backend = cb.Lock(lock)
	if !watch {
		fb = backendtest.PollOnly(cb.Lock(lock))
	}
	stopB := runElector(b, lease("b"), fb, func() { followerUp <- time.Now() })
	defer stopB()
	time.Sleep(300 * time.Millisecond) // b has read the record and set up its watch
	b.StartTimer()
	t0 := time.Now()
	stopA() // releases on the way out
	t1 := <-followerUp
	b.StopTimer()
	return t1.Sub(t0)
}

// electionHandoff times etcd's concurrency.Election: one session resigns,
// the campaign of another returns.
func electionHandoff(b *testing.B) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	s := need(b)
	mk := func() (*clientv3.Client, *concurrency.Session) {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		sess, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
		if err != nil {
			b.Fatal(err)
		}
		return cli, sess
	}
	c1, s1 := mk()
	c2, s2 := mk()
	defer func() { s1.Close(); s2.Close(); c1.Close(); c2.Close() }()
	pfx := fmt.Sprintf("/election-%d", time.Now().UnixNano())
	e1, e2 := concurrency.NewElection(s1, pfx), concurrency.NewElection(s2, pfx)
	ctx := context.Background()
	if err := e1.Campaign(ctx, "a"); err != nil {
		b.Fatal(err)
	}
	won := make(chan time.Time, 1)
	go func() {
		if err := e2.Campaign(ctx, "b"); err != nil {
			b.Error(err)
		}
		won <- time.Now()
	}()
	time.Sleep(300 * time.Millisecond) // e2 waits on e1's key
	t0 := time.Now()
	if err := e1.Resign(ctx); err != nil {
		b.Fatal(err)
	}
	return (<-won).Sub(t0)
}

// BenchmarkCrashFailover: the leader stops renewing without releasing (a
// crash); reported is how far past LeaseDuration, counted from the leader's
// last successful renewal (its RenewTime: one clock on one machine), the
// follower started leading. Goal: ≤ 50ms. It also reports the requests per
// second the watching follower sent while following.
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
	cfg := elector.Config{LeaseDuration: time.Second, RenewDeadline: 800 * time.Millisecond, RetryPeriod: 200 * time.Millisecond}
	ca := client(b)
	cnt := &counter{}
	cb := client(b, grpcCounter(cnt))
	up := make(chan struct{})
	cfgA, cfgB := cfg, cfg
	cfgA.Identity, cfgB.Identity = "a", "b"
	stopA := runElector(b, cfgA, ca.Lock(lock), func() { close(up) })
	<-up
	won := make(chan time.Time, 1)
	defer runElector(b, cfgB, cb.Lock(lock), func() { won <- time.Now() })()
	time.Sleep(600 * time.Millisecond)
	before := cnt.total()
	t0 := time.Now()
	time.Sleep(time.Second)
	rps := float64(cnt.total()-before) / time.Since(t0).Seconds()
	stopA() // no release: the lease must run out
	rec, _, err := ca.Lock(lock).Get(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	t1 := <-won
	return t1.Sub(rec.RenewTime) - cfg.LeaseDuration, rps
}

func grpcCounter(c *counter) grpc.DialOption { return grpc.WithChainUnaryInterceptor(c.interceptor()) }

// BenchmarkFollowerRequests reports the requests per second one follower
// sends while the leader only renews (RetryPeriod 250ms), watching and
// polling.
func BenchmarkFollowerRequests(b *testing.B) {
	need(b)
	for _, watch := range []bool{true, false} {
		b.Run(fmt.Sprintf("watch=%v", watch), func(b *testing.B) {
			var rates []float64
			for b.Loop() {
				rates = append(rates, followerRate(b, watch))
			}
			b.ReportMetric(slices.Max(rates), "req/s")
		})
	}
}

func followerRate(b *testing.B, watch bool) float64 {
	lock := fmt.Sprintf("rate-%d", time.Now().UnixNano())
	cfg := elector.Config{LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 250 * time.Millisecond}
	up := make(chan struct{})
	cfgA, cfgB := cfg, cfg
	cfgA.Identity, cfgB.Identity = "a", "b"
	var once sync.Once
	stopA := runElector(b, cfgA, client(b).Lock(lock), func() { once.Do(func() { close(up) }) })
	defer stopA()
	<-up
	cnt := &counter{}
	var be elector.Backend = client(b, grpcCounter(cnt)).Lock(lock)
	if !watch {
		be = backendtest.PollOnly(be)
	}
	stopB := runElector(b, cfgB, be, func() {})
	defer stopB()
	time.Sleep(500 * time.Millisecond)
	before, t0 := cnt.total(), time.Now()
	time.Sleep(2 * time.Second)
	return float64(cnt.total()-before) / time.Since(t0).Seconds()
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
