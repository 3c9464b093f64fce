package etcd_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/sim"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The leader's work as `leasehold run` has it: leasehold starts its guard
// (a Go binary: here this test binary, re-executed), the guard starts the
// command (sh), and the work runs once the command does; told to stop, the
// guard sends SIGTERM to the command and both exit. workStart and workStop
// time that with real processes. The re-executed binary acts as the guard
// from init, before TestMain starts etcd.
const guardEnv = "LEASEHOLD_PROFILE_GUARD"

func init() {
	if os.Getenv(guardEnv) != "1" {
		return
	}
	cmd := exec.Command("sh", "-c", "echo ready; exec sleep 3600")
	out, _ := cmd.StdoutPipe()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		os.Exit(1)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	fmt.Print(line)
	// Told to stop, or orphaned (the test's end of stdin closed: it died):
	// the command goes too.
	gone := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(gone)
	}()
	select {
	case <-term:
	case <-gone:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	os.Exit(0)
}

// work is a running guard and command.
type work struct {
	cmd   *exec.Cmd
	stdin io.Closer // closed when this process dies: the guard goes then
}

// startWork starts the guard and its command and returns once the command
// runs.
func startWork() (*work, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	// A -race binary sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), guardEnv+"=1", "GORACE=atexit_sleep_ms=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the guard did not start its command: %q %v", line, err)
	}
	go io.Copy(io.Discard, out)
	return &work{cmd: cmd, stdin: stdin}, nil
}

// stop sends SIGTERM to the guard and waits for it to exit.
func (w *work) stop() {
	w.cmd.Process.Signal(syscall.SIGTERM)
	w.cmd.Wait()
	w.stdin.Close()
}

// kill is a crash of `leasehold run`: its end of the guard's stdin goes,
// and the guard, orphaned, stops the command and exits, as run's guard
// does when its parent dies.
func (w *work) kill() {
	w.stdin.Close()
	w.cmd.Wait()
}

// stats are the figures of a sample.
type stats struct{ p10, p25, p50, p75, p90, min, max time.Duration }

func statsOf(d []time.Duration) stats {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[int(q*float64(len(s)-1)+0.5)] }
	return stats{p10: at(0.1), p25: at(0.25), p50: at(0.5), p75: at(0.75), p90: at(0.9), min: s[0], max: s[len(s)-1]}
}

func (s stats) String() string {
	return fmt.Sprintf("p10 %v  p50 %v  p90 %v  (min %v, max %v)", s.p10, s.p50, s.p90, s.min, s.max)
}

// measured is what measureProfile found.
type measured struct {
	ping, read, write, watchAfterReply stats
	parallel                           float64 // writes in service at once at saturation (Little's law)
	saturatedWrite                     time.Duration
	workStart, workStop                stats
}

// profile turns the figures into the simulator's terms: the cheapest
// round trip is the network (both stacks and loopback): its spread is
// uniform one-way jitter, the rest split evenly between request and
// reply; the rest of a read or a write is the store's service time.
func (m measured) profile() sim.Profile {
	// Two uniform one-way draws: the round trip's p10–p90 span is 1.1 J.
	jitter := (m.ping.p90 - m.ping.p10) * 10 / 11
	oneWay := max((m.ping.p50-jitter)/2, 0)
	return sim.Profile{
		RequestLatency: oneWay, ReplyLatency: oneWay, Jitter: jitter,
		ReadService: max(m.read.p50-m.ping.p50, 0), WriteService: max(m.write.p50-m.ping.p50, 0),
		Parallel: max(int(m.parallel+0.5), 1), WatchLag: max(m.watchAfterReply.p50, 0),
		WorkStart: m.workStart.p50, WorkStop: m.workStop.p50, WorkSigma: workSigma(m.workStart, m.workStop),
	}
}

// workSigma fits the simulator's lognormal spread of the work's times
// from their interquartile range, which a few very late process starts
// on a busy machine do not move: ln(p75/p25)/1.349 (the interquartile
// range of N(0,1)), the mean of both.
func workSigma(ss ...stats) float64 {
	sum := 0.0
	for _, s := range ss {
		if s.p25 > 0 {
			sum += math.Log(float64(s.p75)/float64(s.p25)) / 1.349
		}
	}
	return math.Round(sum/float64(len(ss))*100) / 100
}

// rec is a record as a renewal writes it: each a little different.
func rec() elector.Record {
	now := time.Now()
	return elector.Record{Holder: "p", Instance: "i", LeaseDuration: time.Second, AcquireTime: now, RenewTime: now, Term: 1}
}

// measureProfile times reads, writes, watch notifications and the work's
// on the store, n of each, one at a time with gap between them (a client
// rate limit must not show up as service time); ping is the store's
// cheapest request.
func measureProfile(t *testing.T, n int, gap time.Duration, newLock func(name string) elector.Backend, watcher func(name string) elector.Watcher, ping func(context.Context) error) measured {
	ctx := context.Background()
	var m measured
	timed := func(f func() error) time.Duration {
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
	m.ping = statsOf(pings)

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
	m.write, m.watchAfterReply = statsOf(writes), statsOf(lags)
	var reads []time.Duration
	for range n {
		reads = append(reads, timed(func() error { _, _, err := b.Get(ctx); return err }))
		time.Sleep(gap)
	}
	m.read = statsOf(reads)

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
	inStore := busy/(writers*each) - m.ping.p50
	m.parallel = float64(inStore) / float64(m.saturatedWrite)
	return m
}

// measureWork times the start and stop of run's work, 25 times.
func measureWork(t *testing.T, m *measured) {
	var starts, stops []time.Duration
	for range 25 {
		t0 := time.Now()
		wk, err := startWork()
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, time.Since(t0))
		t1 := time.Now()
		wk.stop()
		stops = append(stops, time.Since(t1))
	}
	m.workStart, m.workStop = statsOf(starts), statsOf(stops)
}

func logMeasured(t *testing.T, store string, m measured) {
	t.Logf("%s, measured on %s:", store, time.Now().UTC().Format("2006-01-02"))
	t.Logf("  ping (cheapest round trip) %v", m.ping)
	t.Logf("  read  (Get)                %v", m.read)
	t.Logf("  write (CAS Update)         %v", m.write)
	t.Logf("  watch event after the writer's reply %v", m.watchAfterReply)
	t.Logf("  saturated writes: one per %v, %.2f in service at once", m.saturatedWrite, m.parallel)
	t.Logf("  work start (guard + command) %v", m.workStart)
	t.Logf("  work stop (SIGTERM → exit)   %v", m.workStop)
	p := m.profile()
	t.Logf("  profile: %s", p)
}

// TestProfile measures the figures of the simulator's etcd profile
// (sim.Profiles["etcd"]) on the real etcd and checks that the table still
// describes it, within a factor of 3 (a shared machine moves figures by
// tens of percent). Print them with
//
//	cd backend/etcd && go test -run TestProfile -v .
func TestProfile(t *testing.T) {
	c, raw := client(t), rawClient(t)
	w := client(t) // the follower watches on a client of its own
	m := measureProfile(t, 80, 25*time.Millisecond, func(name string) elector.Backend { return c.Lock(name) },
		func(name string) elector.Watcher { return w.Lock(name) }, func(ctx context.Context) error {
			_, err := raw.Get(ctx, "/leasehold-profile-ping", clientv3.WithSerializable())
			return err
		})
	measureWork(t, &m)
	logMeasured(t, "etcd", m)
	checkProfile(t, sim.Profiles["etcd"], m.profile())
}

// checkProfile fails when a figure of the table is off by more than a
// factor of 3 from the one measured, and by more than 50µs (tiny figures,
// the memory store's, may be off by any factor).
func checkProfile(t *testing.T, table, got sim.Profile) {
	t.Helper()
	for _, f := range []struct {
		name      string
		want, got time.Duration
	}{
		{"write round trip", table.RoundTrip(true), got.RoundTrip(true)},
		{"read round trip", table.RoundTrip(false), got.RoundTrip(false)},
		{"work start", table.WorkStart, got.WorkStart},
		{"work stop", table.WorkStop, got.WorkStop},
	} {
		lo, hi := f.want/3, f.want*3
		if (f.got < lo || f.got > hi) && (f.got-f.want > 50*time.Microsecond || f.want-f.got > 50*time.Microsecond) {
			t.Errorf("%s: the profile says %v, measured %v (more than 3× apart): re-measure and update sim/profile.go", f.name, f.want, f.got)
		}
	}
}

// TestProfileMemory measures the memory profile (sim.Profiles["memory"]):
// the in-process store of `leasehold run --backend memory`, no network.
//
//	cd backend/etcd && go test -run TestProfileMemory -v .
func TestProfileMemory(t *testing.T) {
	st := memory.New()
	m := measureProfile(t, 200, 200*time.Microsecond, func(name string) elector.Backend { return st.Backend(name, "writer") },
		func(name string) elector.Watcher { return st.Backend(name, "watcher") },
		func(context.Context) error { return nil })
	measureWork(t, &m)
	logMeasured(t, "memory", m)
	checkProfile(t, sim.Profiles["memory"], m.profile())
}
