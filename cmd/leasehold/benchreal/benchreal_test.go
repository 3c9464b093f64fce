package benchreal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/backend/kube"
	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
)

// The servers every test of this package shares, each started once.
var (
	etcdSrv   *servers.Etcd
	etcdErr   error
	consulSrv *servers.Consul
	consulErr error
	kubeSrv   *servers.Kube
	kubeErr   error
)

func TestMain(m *testing.M) {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); etcdSrv, etcdErr = servers.StartEtcd() }()
	go func() { defer wg.Done(); consulSrv, consulErr = servers.StartConsul() }()
	go func() { defer wg.Done(); kubeSrv, kubeErr = servers.StartKube() }()
	wg.Wait()
	code := m.Run()
	if etcdSrv != nil {
		etcdSrv.Stop()
	}
	if consulSrv != nil {
		consulSrv.Stop()
	}
	if kubeSrv != nil {
		kubeSrv.Stop()
	}
	os.Exit(code)
}

// The brief timing of the tests: the shortest each API allows (etcd
// sessions and Consul session TTLs, whole seconds; a Lease, whole seconds).
const (
	testLease = 2 * time.Second
	testRenew = 1500 * time.Millisecond
	testRetry = 250 * time.Millisecond
)

var quiet = slog.New(slog.DiscardHandler)

// benchCase is one server's benchmark.
type benchCase struct {
	name   string
	native string
	err    error // the server's start
	opts   func(base Options) Options
}

func benchCases() []benchCase {
	// The natives are reached through the backends' own Configs, as the
	// CLI hands them over (FromEtcd, ...).
	etcdCfg := func() etcd.Config {
		c := etcd.DefaultConfig()
		if etcdSrv != nil {
			c.Endpoints = []string{etcdSrv.Endpoint}
		}
		return c
	}
	consulCfg := func() consul.Config {
		c := consul.DefaultConfig()
		if consulSrv != nil {
			c.Address = consulSrv.Address
		}
		return c
	}
	kubeCfg := func() kube.Config {
		c := kube.DefaultConfig()
		if kubeSrv != nil {
			c.Kubeconfig = kubeSrv.AdminKubeconfig
		}
		return c
	}
	return []benchCase{
		{"etcd", ImplEtcd, etcdErr, func(o Options) Options {
			o.Backend = "etcd"
			o.NewBackend = func(ctx context.Context, lock, _ string) (elector.Backend, func() error, error) {
				c := etcdCfg()
				c.MaxReconnectDelay = o.RetryPeriod
				return etcd.Open(ctx, c, lock, quiet)
			}
			c := etcdCfg()
			o.FromEtcd = &c
			return o
		}},
		{"consul", ImplConsul, consulErr, func(o Options) Options {
			o.Backend = "consul"
			o.NewBackend = func(ctx context.Context, lock, _ string) (elector.Backend, func() error, error) {
				return consul.Open(ctx, consulCfg(), lock, quiet)
			}
			c := consulCfg()
			o.FromConsul = &c
			return o
		}},
		{"kube", clientGoImpl, kubeErr, func(o Options) Options {
			o.Backend = "kube"
			o.NoNative = clientGoImpl == "" // built without the tag clientgo
			o.NewBackend = func(ctx context.Context, lock, _ string) (elector.Backend, func() error, error) {
				c := kubeCfg()
				c.LeaseDuration = o.LeaseDuration
				return kube.Open(ctx, c, lock, quiet)
			}
			c := kubeCfg()
			o.FromKube = &c
			return o
		}},
	}
}

type outcome struct {
	rep Report
	out bytes.Buffer // what Run wrote (o.Format)
	err error
}

// runAll runs the benchmark on every server that started, the servers at
// once (t.Parallel would run two at a time on two cores: each run mostly
// waits for leases to run out).
func runAll(ctx context.Context, base Options) []*outcome { return runCases(ctx, base, false) }

// runCases is runAll, the servers one after the other if sequential.
func runCases(ctx context.Context, base Options, sequential bool) []*outcome {
	cases := benchCases()
	res := make([]*outcome, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		res[i] = &outcome{}
		if c.err != nil {
			continue
		}
		wg.Add(1)
		run := func() {
			defer wg.Done()
			res[i].rep, res[i].err = Run(ctx, c.opts(base), &res[i].out)
		}
		if sequential {
			run()
		} else {
			go run()
		}
	}
	wg.Wait()
	return res
}

// TestBenchBackend runs the benchmark briefly on each real server, the
// three at once, and checks that the report is complete and plausible.
func TestBenchBackend(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := Options{
		Candidates:      3,
		Rounds:          2,
		LeaseDuration:   testLease,
		RenewDeadline:   testRenew,
		RetryPeriod:     testRetry,
		Window:          2500 * time.Millisecond, // one of api.Lock's 2s blocking queries at least
		ConsulLockDelay: time.Millisecond,
		Format:          FormatJSON,
	}
	outcomes := runAll(ctx, base)
	for i, c := range benchCases() {
		t.Run(c.name, func(t *testing.T) {
			servers.Require(t, c.err)
			check(t, c.opts(base), c.native, outcomes[i])
		})
	}
}

// TestBenchMemory runs the benchmark on one in-memory store shared by the
// candidates, leasehold alone: no server needed.
func TestBenchMemory(t *testing.T) {
	t.Parallel()
	store := memory.New()
	o := Options{
		Backend: "memory",
		NewBackend: func(_ context.Context, lock, id string) (elector.Backend, func() error, error) {
			return store.Backend(lock, id), func() error { return nil }, nil
		},
		Candidates: 3, Rounds: 2, LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry,
		Window: time.Second, Format: FormatJSON,
	}
	var oc outcome
	oc.rep, oc.err = Run(context.Background(), o, &oc.out)
	check(t, o, "", &oc)
}

// TestBenchFigures measures the figures of docs/timing-real.md, on every
// server at once; it runs only when asked:
//
//	BENCHREAL_FIGURES=1 go test -run TestBenchFigures -v -timeout 30m ./benchreal/
//
// BENCHREAL_TIMING (lease,renew,retry; default 4s,3s,1s), BENCHREAL_ROUNDS
// (default 5), BENCHREAL_CANDIDATES (default 5) and BENCHREAL_LOCK_DELAY
// (Consul's lock-delay, default 15s) change it; BENCHREAL_SEQUENTIAL=1
// measures the servers one after the other instead of at once.
func TestBenchFigures(t *testing.T) {
	if os.Getenv("BENCHREAL_FIGURES") == "" {
		t.Skip("set BENCHREAL_FIGURES=1 to measure the figures of docs/timing-real.md")
	}
	env := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	timing := strings.Split(env("BENCHREAL_TIMING", "4s,3s,1s"), ",")
	if len(timing) != 3 {
		t.Fatalf("BENCHREAL_TIMING %q: want lease,renew,retry", timing)
	}
	var d [3]time.Duration
	for i, s := range timing {
		var err error
		if d[i], err = time.ParseDuration(strings.TrimSpace(s)); err != nil {
			t.Fatal(err)
		}
	}
	rounds, err := strconv.Atoi(env("BENCHREAL_ROUNDS", "5"))
	if err != nil {
		t.Fatal(err)
	}
	cands, err := strconv.Atoi(env("BENCHREAL_CANDIDATES", "5"))
	if err != nil {
		t.Fatal(err)
	}
	delay, err := time.ParseDuration(env("BENCHREAL_LOCK_DELAY", "15s"))
	if err != nil {
		t.Fatal(err)
	}
	base := Options{Candidates: cands, Rounds: rounds, LeaseDuration: d[0], RenewDeadline: d[1], RetryPeriod: d[2],
		ConsulLockDelay: delay, Format: FormatText}
	for i, oc := range runCases(context.Background(), base, os.Getenv("BENCHREAL_SEQUENTIAL") != "") {
		c := benchCases()[i]
		if c.err != nil {
			t.Errorf("%s: %v", c.name, c.err)
			continue
		}
		t.Logf("%s (error: %v):\n%s", c.name, oc.err, oc.out.String())
	}
}

// check holds a run's report to what o asked for: complete and plausible,
// its JSON and CSV readable back. native "" means leasehold alone.
func check(t *testing.T, o Options, native string, oc *outcome) {
	t.Helper()
	rep, err, out := oc.rep, oc.err, &oc.out
	var text bytes.Buffer
	rep.Write(&text, FormatText)
	t.Logf("took %v\n%s", rep.Took, text.String())
	if err != nil {
		t.Fatal(err)
	}

	// Complete: every implementation, every figure, positive.
	want := []struct{ impl, mode string }{{ImplLeasehold, ModeWatch}, {ImplLeasehold, ModePoll}}
	if native != "" {
		want = append(want, struct{ impl, mode string }{native, ModeNative})
	}
	if len(rep.Results) != len(want) {
		t.Fatalf("results: %d, want %d", len(rep.Results), len(want))
	}
	for i, w := range want {
		res := rep.Results[i]
		if res.Implementation != w.impl || res.Mode != w.mode || res.Error != "" || res.Settings == "" {
			t.Errorf("result %d: %s %s (error %q, settings %q), want %s %s", i, res.Implementation, res.Mode, res.Error, res.Settings, w.impl, w.mode)
		}
		// A following watcher makes no request where its watch rides an
		// open stream (etcd, Kubernetes, memory); on Consul every watch
		// is a blocking query.
		silent := res.Implementation == ImplLeasehold && res.Mode == ModeWatch && o.Backend != "consul"
		for _, name := range FigureNames {
			f, ok := res.Figure(name)
			switch {
			case !ok:
				t.Errorf("%s %s: no %s", res.Implementation, res.Mode, name)
			case name == FigFollowerRPS && silent:
				if f.N == 0 || f.Max != 0 {
					t.Errorf("%s %s: %s: %+v: want samples, all 0 (a watch on a stream is no request)", res.Implementation, res.Mode, name, f)
				}
			case f.N == 0 || f.Min <= 0 || f.Min > f.P50 || f.P50 > f.P90 || f.P90 > f.Max:
				t.Errorf("%s %s: %s: %+v: want samples, 0 < min ≤ p50 ≤ p90 ≤ max", res.Implementation, res.Mode, name, f)
			}
		}
		if f, _ := res.Figure(FigFollowerRPS); f.N != o.Candidates-1 {
			t.Errorf("%s %s: follower rates of %d candidates, want %d", res.Implementation, res.Mode, f.N, o.Candidates-1)
		}
		for _, name := range []string{FigAcquire, FigHandoff, FigCrash} {
			if f, _ := res.Figure(name); f.N != o.Rounds {
				t.Errorf("%s %s: %s: %d samples, want %d", res.Implementation, res.Mode, name, f.N, o.Rounds)
			}
		}
		// Plausible: a release hands over faster than a lease runs out.
		h, _ := res.Figure(FigHandoff)
		c, _ := res.Figure(FigCrash)
		if h.Max >= c.Min {
			t.Errorf("%s %s: handoff max %vms ≥ crash failover min %vms", res.Implementation, res.Mode, h.Max, c.Min)
		}
		if res.Implementation == ImplLeasehold {
			// Counted from the crash: the followers' last observation of
			// the record was at most a RetryPeriod earlier (the leader's
			// last renewal), and the lease runs from it.
			lo, hi := ms(testLease-testRetry), ms(testLease+2*time.Second)
			if c.Min < lo || c.Max > hi {
				t.Errorf("%s %s: crash failover %v..%vms, want within [%v, %v]ms", res.Implementation, res.Mode, c.Min, c.Max, lo, hi)
			}
		}
	}
	if n := 2 * len(FigureNames); native == "" && len(rep.Ratios) != 0 || native != "" && len(rep.Ratios) != n {
		t.Errorf("ratios: %d, want %d: %+v", len(rep.Ratios), 2*len(FigureNames), rep.Ratios)
	}
	for _, q := range rep.Ratios {
		if q.Figure == FigFollowerRPS && q.Mode == ModeWatch && o.Backend != "consul" {
			if q.Native != native || q.P50 != 0 || q.Max != 0 {
				t.Errorf("ratio %+v: want 0 (a watch on a stream is no request)", q)
			}
			continue
		}
		if q.Native != native || q.P50 <= 0 || q.P90 <= 0 || q.Max <= 0 {
			t.Errorf("ratio %+v", q)
		}
	}

	// The JSON written parses back into the same report.
	var back Report
	if err := json.Unmarshal(out.Bytes(), &back); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out.String())
	}
	if !reflect.DeepEqual(back.Results, rep.Results) || !reflect.DeepEqual(back.Ratios, rep.Ratios) ||
		back.LeaseDuration != rep.LeaseDuration || back.Candidates != rep.Candidates || !back.Started.Equal(rep.Started) {
		t.Errorf("JSON read back differs:\n%+v\nwant\n%+v", back, rep)
	}
	// So does the CSV, figures and ratios.
	var csvOut bytes.Buffer
	if err := rep.Write(&csvOut, FormatCSV); err != nil {
		t.Fatal(err)
	}
	results, rs, err := ParseCSV(&csvOut)
	if err != nil {
		t.Fatal(err)
	}
	var wantRes []Result
	for _, r := range rep.Results {
		wantRes = append(wantRes, Result{Implementation: r.Implementation, Mode: r.Mode, Figures: r.Figures})
	}
	if !reflect.DeepEqual(results, wantRes) || !reflect.DeepEqual(rs, rep.Ratios) {
		t.Errorf("CSV read back differs:\n%+v %+v\nwant\n%+v %+v", results, rs, wantRes, rep.Ratios)
	}
	if s := text.String(); !strings.Contains(s, "crash failover (ms)") || !strings.Contains(s, native) {
		t.Errorf("text report:\n%s", s)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// TestOptions: bad options fail before anything is connected.
func TestOptions(t *testing.T) {
	open := func(context.Context, string, string) (elector.Backend, func() error, error) { return nil, nil, nil }
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no backend", Options{}, "NewBackend"},
		{"one candidate", Options{NewBackend: open, Candidates: 1}, "candidates 1"},
		{"rounds", Options{NewBackend: open, Rounds: -1}, "rounds -1"},
		{"format", Options{NewBackend: open, Format: "xml"}, `format "xml"`},
		{"timing", Options{NewBackend: open, LeaseDuration: time.Second, RenewDeadline: 2 * time.Second}, "RenewDeadline"},
		{"lock", Options{NewBackend: open, Lock: "Bad/Name"}, "lock prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.o, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// TestCSVRoundTrip: the CSV of a report made by hand reads back.
func TestCSVRoundTrip(t *testing.T) {
	rep := Report{Backend: "memory", Results: []Result{
		{Implementation: ImplLeasehold, Mode: ModeWatch, Figures: []Figure{
			msFigure(FigAcquire, []time.Duration{1234567, 2345678, 3456789}),
			rateFigure(FigLeaderRPS, []float64{4.0004}),
		}},
		{Implementation: ImplEtcd, Mode: ModeNative, Figures: []Figure{
			msFigure(FigAcquire, []time.Duration{7654321}),
			rateFigure(FigLeaderRPS, []float64{1.5}),
		}},
	}}
	rep.Ratios = ratios(rep.Results)
	if len(rep.Ratios) != 2 {
		t.Fatalf("ratios %+v", rep.Ratios)
	}
	var b bytes.Buffer
	if err := rep.Write(&b, FormatCSV); err != nil {
		t.Fatal(err)
	}
	results, rs, err := ParseCSV(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(results, rep.Results) || !reflect.DeepEqual(rs, rep.Ratios) {
		t.Fatalf("read back %+v %+v\nwant %+v %+v", results, rs, rep.Results, rep.Ratios)
	}
	if f := rep.Results[0].Figures[0]; f.Min != 1.235 || f.P50 != 2.346 || f.Max != 3.457 {
		t.Fatalf("acquire figure %+v", f)
	}
}

// TestStopAndFailures: a cancelled run returns soon with what it measured
// and still writes its report; a backend that cannot be opened is reported
// in the results and Run's error.
func TestStopAndFailures(t *testing.T) {
	t.Parallel()
	store := memory.New()
	o := Options{
		Backend: "memory",
		NewBackend: func(_ context.Context, lock, id string) (elector.Backend, func() error, error) {
			return store.Backend(lock, id), func() error { return nil }, nil
		},
		Candidates: 3, Rounds: 2, LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry,
		Window: time.Second, Format: FormatCSV,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	t0 := time.Now()
	rep, err := Run(ctx, o, &out)
	if took := time.Since(t0); err == nil || took > 10*time.Second {
		t.Fatalf("cancelled run: %v after %v", err, took)
	}
	if len(rep.Results) == 0 || rep.Results[0].Error == "" {
		t.Fatalf("cancelled run: results %+v", rep.Results)
	}
	if f, ok := rep.Results[0].Figure(FigAcquire); !ok || f.N != o.Rounds {
		t.Fatalf("cancelled run: acquire %+v, want the %d samples taken before the cancel", f, o.Rounds)
	}
	if out.Len() == 0 {
		t.Fatal("cancelled run: no report written")
	}
	if _, _, err := ParseCSV(&out); err != nil {
		t.Fatalf("cancelled run: its CSV: %v", err)
	}

	o.NewBackend = func(context.Context, string, string) (elector.Backend, func() error, error) {
		return nil, nil, errors.New("no such store")
	}
	rep, err = Run(context.Background(), o, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no such store") || len(rep.Results) != 2 || !strings.Contains(rep.Results[1].Error, "no such store") {
		t.Fatalf("failing backend: %v, %+v", err, rep.Results)
	}
}

// TestFromConfigs: the native clients are configured from the backends'
// Configs, the explicit fields over them; secrets come from their files.
func TestFromConfigs(t *testing.T) {
	dir := t.TempDir()
	secret := dir + "/secret"
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ec := etcd.DefaultConfig()
	ec.Endpoints, ec.Username, ec.PasswordFile = []string{"10.0.0.1:2379"}, "bench", secret
	eb, err := Options{FromEtcd: &ec}.etcdBase()
	if err != nil || eb.Password != "s3cret" || eb.Username != "bench" || eb.Endpoints[0] != "10.0.0.1:2379" || eb.TLS != nil {
		t.Fatalf("etcd from config: %+v, %v", eb, err)
	}
	eb, _ = Options{FromEtcd: &ec, EtcdEndpoints: []string{"127.0.0.1:1"}}.etcdBase()
	if !reflect.DeepEqual(eb.Endpoints, []string{"127.0.0.1:1"}) {
		t.Fatalf("EtcdEndpoints over FromEtcd: %v", eb.Endpoints)
	}
	ec.PasswordFile = dir + "/missing"
	if _, err := (Options{FromEtcd: &ec}).etcdBase(); err == nil || !strings.Contains(err.Error(), "etcd.password_file") {
		t.Fatalf("missing password file: %v", err)
	}

	cc := consul.DefaultConfig()
	cc.Address, cc.TokenFile, cc.Datacenter = "10.0.0.2:8500", secret, "dc2"
	cb, err := Options{FromConsul: &cc}.consulBase()
	if err != nil || cb.Token != "s3cret" || cb.Address != "10.0.0.2:8500" || cb.Datacenter != "dc2" {
		t.Fatalf("consul from config: %+v, %v", cb, err)
	}
	cb, _ = Options{FromConsul: &cc, ConsulAddress: "127.0.0.1:1", ConsulToken: "t"}.consulBase()
	if cb.Address != "127.0.0.1:1" || cb.Token != "t" {
		t.Fatalf("ConsulAddress and ConsulToken over FromConsul: %+v", cb)
	}

	kc := kube.Config{Kubeconfig: "/k", Context: "c", Namespace: "ns"}
	ko := Options{FromKube: &kc}.withDefaults()
	if ko.KubeConfig != "/k" || ko.KubeContext != "c" || ko.KubeNamespace != "ns" {
		t.Fatalf("kube from config: %q %q %q", ko.KubeConfig, ko.KubeContext, ko.KubeNamespace)
	}
	if ko := (Options{FromKube: &kube.Config{}}).withDefaults(); ko.KubeNamespace != DefaultNamespace {
		t.Fatalf("kube namespace default: %q", ko.KubeNamespace)
	}
}
