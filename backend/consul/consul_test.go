package consul_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"
	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
)

// agent is the Consul agent every test of this package shares, started
// once.
var (
	agent    *servers.Consul
	agentErr error
)

func TestMain(m *testing.M) {
	agent, agentErr = servers.StartConsul()
	code := m.Run()
	if agent != nil {
		agent.Stop()
	}
	os.Exit(code)
}

func need(t testing.TB) *servers.Consul {
	t.Helper()
	servers.Require(t, agentErr)
	return agent
}

const testPrefix = "leasehold-test/"

// counter is an http.RoundTripper counting the requests a client sends.
type counter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int // by method and path
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

func (c *counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.n)
}

// apiClient is an *api.Client of addr whose requests cnt counts (nil: not
// counted).
func apiClient(t testing.TB, addr, token string, cnt *counter) *api.Client {
	t.Helper()
	tr := cleanhttp.DefaultPooledTransport()
	var rt http.RoundTripper = tr
	if cnt != nil {
		cnt.next = tr
		rt = cnt
	}
	cli, err := api.NewClient(&api.Config{Address: addr, Scheme: "http", Token: token, Transport: tr, HttpClient: &http.Client{Transport: rt}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return cli
}

// client connects to the shared agent with consul.New; with a counter, it
// builds its own api.Client and wraps it with consul.NewFromClient, as a
// program that already has a client does.
func client(t testing.TB, cnt *counter) *consul.Client {
	t.Helper()
	a := need(t)
	log := slog.New(slog.DiscardHandler)
	if cnt != nil {
		return consul.NewFromClient(apiClient(t, a.Address, "", cnt), testPrefix, 0, consul.WithLogger(log))
	}
	c, err := consul.New(context.Background(), consul.Config{Address: a.Address, Prefix: testPrefix, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	raw := apiClient(t, need(t).Address, "", nil).KV()
	key := func(lock string) string { return testPrefix + lock }
	// plant stores garbage at the lock's key past the backend.
	plant := func(garbage []byte) func(t testing.TB, lock string) func(t testing.TB) {
		return func(t testing.TB, lock string) func(t testing.TB) {
			if _, err := raw.Put(&api.KVPair{Key: key(lock), Value: garbage}, nil); err != nil {
				t.Fatal(err)
			}
			p, _, err := raw.Get(key(lock), &api.QueryOptions{RequireConsistent: true})
			if err != nil || p == nil {
				t.Fatalf("read back the corrupt record: %v %v", p, err)
			}
			at := p.ModifyIndex
			return func(t testing.TB) {
				p, _, err := raw.Get(key(lock), &api.QueryOptions{RequireConsistent: true})
				if err != nil {
					t.Fatal(err)
				}
				if p == nil || !bytes.Equal(p.Value, garbage) || p.ModifyIndex != at {
					t.Fatalf("the corrupt record (index %d) was overwritten: %+v", at, p)
				}
			}
		}
	}
	backendtest.Run(t, backendtest.Harness{
		New:         func(t testing.TB, lock string) elector.Backend { return client(t, nil).Lock(lock) },
		Corrupt:     plant([]byte("\x00not a leasehold record{")),
		CorruptJobs: plant(backendtest.BadJobsRecord),
		Delete: func(t testing.TB, lock string) {
			p, _, err := raw.Get(key(lock), &api.QueryOptions{RequireConsistent: true})
			if err != nil || p == nil {
				t.Fatalf("delete %s: not there: %v", key(lock), err)
			}
			if _, err := raw.Delete(key(lock), nil); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// Short leases for the end-to-end tests.
func lease(id string) elector.Config {
	return elector.Config{Identity: id, LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond,
		RetryPeriod: 250 * time.Millisecond, ReleaseOnCancel: true}
}

// candidate is an elector on its own client, recording its leaderships.
type candidate struct {
	id      string
	e       *elector.Elector
	count   *counter
	cancel  context.CancelFunc
	done    chan struct{}
	started chan int64
	stopped chan time.Time
}

func startOn(t *testing.T, cli *consul.Client, cnt *counter, lock, id string, cfg elector.Config, watch bool) *candidate {
	t.Helper()
	c := &candidate{id: id, count: cnt, done: make(chan struct{}), started: make(chan int64, 8), stopped: make(chan time.Time, 8)}
	var b elector.Backend = cli.Lock(lock)
	if !watch {
		b = backendtest.PollOnly(b)
	}
	e, err := elector.New(cfg, b, elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) { c.started <- term },
		OnStoppedLeading: func() { c.stopped <- time.Now() },
	}, elector.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	c.e = e
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		defer close(c.done)
		e.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

func start(t *testing.T, lock, id string, cfg elector.Config, watch bool) *candidate {
	cnt := &counter{}
	return startOn(t, client(t, cnt), cnt, lock, id, cfg, watch)
}

func lockName(t *testing.T) string {
	return fmt.Sprintf("%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano())
}

func TestGarbageIsReportedNotOverwritten(t *testing.T) {
	c := client(t, nil)
	lock := lockName(t)
	if err := c.PutRaw(context.Background(), lock, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Lock(lock).Get(context.Background())
	if !errors.Is(err, elector.ErrCorrupt) || !strings.Contains(err.Error(), testPrefix+lock) {
		t.Fatalf("err = %v, want ErrCorrupt naming the key", err)
	}
	a := start(t, lock, "a", lease("a"), true)
	time.Sleep(time.Second)
	if raw, _, _ := c.Raw(context.Background(), lock); string(raw) != "garbage" {
		t.Fatalf("key overwritten with %q", raw)
	}
	if a.e.IsLeader() {
		t.Fatal("led over garbage")
	}
}

// Versions Consul never returned are conflicts, without a request.
func TestMalformedVersionSendsNothing(t *testing.T) {
	cnt := &counter{}
	b := client(t, cnt).Lock(lockName(t))
	for _, v := range []elector.Version{"", "0", "+5", "05", "5 ", "-1", "x", "18446744073709551616"} {
		if _, err := b.Update(context.Background(), elector.Record{Holder: "x", Term: 1}, v); !errors.Is(err, elector.ErrConflict) {
			t.Errorf("Update(%q): err = %v, want ErrConflict", v, err)
		}
	}
	if n := cnt.total(); n != 0 {
		t.Fatalf("%d requests for malformed versions: %v", n, cnt)
	}
}

// A watch never answers with a state older than the version it was given.
func TestWatchNeverGoesBackwards(t *testing.T) {
	writer, reader := client(t, nil), client(t, nil)
	ctx := context.Background()
	for i := range 20 {
		lock := fmt.Sprintf("%s-%d", lockName(t), i)
		w, r := writer.Lock(lock), reader.Lock(lock)
		v1, err := w.Create(ctx, elector.Record{Holder: "a", LeaseDuration: time.Second, Term: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, got, err := r.Watch(ctx, ""); err != nil || got != v1 {
			t.Fatalf("first watch: %v %v", got, err)
		}
		v2, err := w.Update(ctx, elector.Record{Holder: "b", LeaseDuration: time.Second, Term: 2}, v1)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		rec, got, err := r.Watch(wctx, v2)
		cancel()
		if err == nil {
			t.Fatalf("Watch(%s) returned %s (holder %q): nothing newer was written", v2, got, rec.Holder)
		}
	}
}
