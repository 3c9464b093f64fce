package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// server is the etcd every test of this package shares, started once.
var (
	server    *servers.Etcd
	serverErr error
)

func TestMain(m *testing.M) {
	server, serverErr = servers.StartEtcd()
	code := m.Run()
	if server != nil {
		server.Stop()
	}
	os.Exit(code)
}

func need(t testing.TB) *servers.Etcd {
	t.Helper()
	servers.Require(t, serverErr)
	return server
}

// counter counts the unary requests (Range, Txn, ...) a client sends.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) interceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		c.mu.Lock()
		if c.n == nil {
			c.n = map[string]int{}
		}
		c.n[method[strings.LastIndex(method, "/")+1:]]++
		c.mu.Unlock()
		return invoker(ctx, method, req, reply, cc, opts...)
	}
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

// client connects to the shared etcd with etcd.New; with gRPC dial options
// (request counters) it builds its own clientv3 client with them and wraps
// it with etcd.NewFromClient, as a program that already has a client does.
func client(t testing.TB, opts ...grpc.DialOption) *etcd.Client {
	t.Helper()
	s := need(t)
	log := slog.New(slog.DiscardHandler)
	if len(opts) > 0 {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second,
			DialOptions: opts, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		c := etcd.NewFromClient(cli, "/leasehold-test/", 0, etcd.WithLogger(log))
		t.Cleanup(func() { c.Close(); cli.Close() })
		return c
	}
	c, err := etcd.New(context.Background(), etcd.Config{Endpoints: []string{s.Endpoint}, Prefix: "/leasehold-test/", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	raw := rawClient(t)
	key := func(lock string) string { return "/leasehold-test/" + lock } // the prefix of client()
	ctx := context.Background()
	// plant stores garbage at the lock's key past the backend.
	plant := func(garbage string) func(t testing.TB, lock string) func(t testing.TB) {
		return func(t testing.TB, lock string) func(t testing.TB) {
			put, err := raw.Put(ctx, key(lock), garbage)
			if err != nil {
				t.Fatal(err)
			}
			return func(t testing.TB) {
				resp, err := raw.Get(ctx, key(lock))
				if err != nil {
					t.Fatal(err)
				}
				if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != garbage || resp.Kvs[0].ModRevision != put.Header.Revision {
					t.Fatalf("the corrupt record (revision %d) was overwritten: %v", put.Header.Revision, resp.Kvs)
				}
			}
		}
	}
	backendtest.Run(t, backendtest.Harness{
		New:         func(t testing.TB, lock string) elector.Backend { return client(t).Lock(lock) },
		Corrupt:     plant("\x00not a leasehold record{"),
		CorruptJobs: plant(string(backendtest.BadJobsRecord)),
		Delete: func(t testing.TB, lock string) {
			resp, err := raw.Delete(ctx, key(lock))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Deleted != 1 {
				t.Fatalf("delete %s: %d keys deleted, want 1", key(lock), resp.Deleted)
			}
		},
	})
}

// rawClient is a plain etcd client of the shared server, with which the
// conformance harness acts past the backend.
func rawClient(t testing.TB) *clientv3.Client {
	t.Helper()
	s := need(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
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
	client  *etcd.Client
	count   *counter
	cancel  context.CancelFunc
	done    chan struct{}
	started chan int64
	stopped chan time.Time
}

func start(t *testing.T, lock, id string, cfg elector.Config, watch bool) *candidate {
	cnt := &counter{}
	c := &candidate{id: id, count: cnt, done: make(chan struct{}), started: make(chan int64, 8), stopped: make(chan time.Time, 8)}
	c.client = client(t, grpc.WithChainUnaryInterceptor(cnt.interceptor()))
	var b elector.Backend = c.client.Lock(lock)
	if !watch {
		b = backendtest.PollOnly(c.client.Lock(lock))
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

func lockName(t *testing.T) string {
	return fmt.Sprintf("%s-%d", strings.ToLower(t.Name()), time.Now().UnixNano())
}

func TestGarbageIsReportedNotOverwritten(t *testing.T) {
	c := client(t)
	lock := lockName(t)
	if err := c.PutRaw(context.Background(), lock, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Lock(lock).Get(context.Background())
	if !errors.Is(err, elector.ErrCorrupt) || !strings.Contains(err.Error(), "/leasehold-test/"+lock) {
		t.Fatalf("err = %v, want ErrCorrupt naming the key", err)
	}
	a := start(t, lock, "a", lease("a"), true)
	time.Sleep(time.Second)
	if raw, _ := c.Raw(context.Background(), lock); string(raw) != "garbage" {
		t.Fatalf("key overwritten with %q", raw)
	}
	if a.e.IsLeader() {
		t.Fatal("led over garbage")
	}
}

func TestBadCredentials(t *testing.T) {
	own, err := servers.StartEtcd()
	servers.Require(t, err)
	defer own.Stop()
	if err := enableAuth(own.Endpoint); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	cnt := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, o ...grpc.CallOption) error {
		calls.Add(1)
		return inv(ctx, method, req, reply, cc, o...)
	})
	// The requests etcd.New itself makes, counted through a test-only hook.
	_, err = etcd.NewWithDialOptions(context.Background(), etcd.Config{Endpoints: []string{own.Endpoint}, Username: "root", Password: "wrong"}, cnt)
	if err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("err = %v, want authentication failed", err)
	}
	if n := calls.Load(); n > 3 {
		t.Fatalf("%d requests for one failed login: a retry storm", n)
	}
	ok, err := etcd.New(context.Background(), etcd.Config{Endpoints: []string{own.Endpoint}, Username: "root", Password: "pw"})
	if err != nil {
		t.Fatalf("right credentials: %v", err)
	}
	ok.Close()
}

// enableAuth creates root with password "pw" and turns authentication on.
func enableAuth(endpoint string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.UserAdd(ctx, "root", "pw"); err != nil {
		return err
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		return err
	}
	_, err = cli.AuthEnable(ctx)
	return err
}

// A watch whose stream breaks (etcd restarted) recovers: the next change
// still reaches the waiting follower.
func TestWatchSurvivesServerRestart(t *testing.T) {
	own, err := servers.StartEtcd()
	servers.Require(t, err)
	defer own.Stop()
	mk := func() *etcd.Client {
		c, err := etcd.New(context.Background(), etcd.Config{Endpoints: []string{own.Endpoint}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	writer, watcher := mk().Lock("w"), mk().Lock("w")
	ctx := context.Background()
	v1, err := writer.Create(ctx, elector.Record{Holder: "a", LeaseDuration: time.Second, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Start the long-lived watch and let it settle at v1.
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	watcher.Watch(wctx, v1)
	cancel()

	if err := own.Restart(); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		r, _, err := watcher.Watch(wctx, v1)
		if err == nil && r.Holder != "b" {
			err = fmt.Errorf("watch returned holder %q, want b", r.Holder)
		}
		got <- err
	}()
	var v2 elector.Version
	for i := 0; ; i++ { // the writer's connection comes back too
		if v2, err = writer.Update(ctx, elector.Record{Holder: "b", LeaseDuration: time.Second, Term: 2}, v1); err == nil || i > 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("update after restart: %v", err)
	}
	if err := <-got; err != nil {
		t.Fatalf("watch after an etcd restart: %v (version %s)", err, v2)
	}
}

// A watch never answers with a state older than the version it was given,
// even when its loop has not yet caught up with a read the caller made.
func TestWatchNeverGoesBackwards(t *testing.T) {
	writer, reader := client(t), client(t)
	ctx := context.Background()
	for i := range 50 {
		lock := fmt.Sprintf("%s-%d", lockName(t), i)
		w, r := writer.Lock(lock), reader.Lock(lock)
		v1, err := w.Create(ctx, elector.Record{Holder: "a", LeaseDuration: time.Second, Term: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, got, err := r.Watch(ctx, ""); err != nil || got != v1 { // starts the loop at v1
			t.Fatalf("first watch: %v %v", got, err)
		}
		v2, err := w.Update(ctx, elector.Record{Holder: "b", LeaseDuration: time.Second, Term: 2}, v1)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		rec, got, err := r.Watch(wctx, v2)
		cancel()
		if err == nil {
			t.Fatalf("Watch(%s) returned %s (holder %q): nothing newer was written", v2, got, rec.Holder)
		}
	}
}
