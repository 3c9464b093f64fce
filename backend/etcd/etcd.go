// Package etcd implements the leasehold backend contract on etcd v3.
//
// Each lock is one key, <prefix><name>, whose value is the record encoded as
// the JSON document elector.RecordFormat (docs/backends.md). The version is
// the key's ModRevision. Create is a transaction "if CreateRevision == 0 then
// put", Update "if ModRevision == version then put"; a failed compare is
// elector.ErrConflict. Followers wait on one long-lived etcd watch per lock,
// so they send no request while nothing changes.
package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/leasehold-go/leasehold/elector"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Defaults.
const (
	DefaultPrefix         = "/leasehold/"
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 2 * time.Second
	// DefaultMaxReconnectDelay caps the reconnect backoff when
	// Config.MaxReconnectDelay is zero.
	DefaultMaxReconnectDelay = time.Second
)

// Reconnect backoff: the first retry after a lost connection waits at most
// reconnectBaseDelay, each next one reconnectMultiplier times longer, up to
// the cap; every delay is randomised by ±reconnectJitter.
const (
	reconnectBaseDelay  = 100 * time.Millisecond
	reconnectMultiplier = 1.6
	reconnectJitter     = 0.2
)

// Config says how to reach etcd.
type Config struct {
	Endpoints []string // host:port or URLs; required
	Prefix    string   // key prefix; default DefaultPrefix
	// DialTimeout bounds connecting and the first round trip in New.
	DialTimeout time.Duration
	// RequestTimeout bounds every request (the elector's own, shorter
	// deadlines apply too). Keep it well under RenewDeadline.
	RequestTimeout time.Duration
	// TLS: file paths; all empty for plain TCP.
	CAFile, CertFile, KeyFile string
	Username, Password        string
	// MaxReconnectDelay caps the client's reconnect backoff: how long, at
	// most, the client waits between two attempts to reach etcd (jitter
	// included), however long etcd has been away, and so how long after
	// etcd answers again a request can go through. gRPC's own cap is 120s,
	// which kept leadership away for many seconds after a long outage.
	// The watch loops back off no longer either. Zero means
	// DefaultMaxReconnectDelay; the CLI sets the lease's RetryPeriod.
	MaxReconnectDelay time.Duration
	// DialOptions are passed to the gRPC dialer (tests count requests with
	// an interceptor). They come after the client's own, so a
	// grpc.WithConnectParams here replaces the MaxReconnectDelay backoff.
	DialOptions []grpc.DialOption
	// Logger receives watch recoveries; default slog.Default().
	Logger *slog.Logger
}

// Client is a connection to etcd from which locks are opened.
type Client struct {
	cli      *clientv3.Client
	owned    bool
	prefix   string
	timeout  time.Duration
	maxDelay time.Duration // cap of the watch loops' retry backoff
	log      *slog.Logger

	ctx    context.Context // cancelled by Close: ends the watch loops
	cancel context.CancelFunc
	wg     sync.WaitGroup

	watchMu sync.Mutex
	watches map[string]*watchState // one watch loop per key, shared by its Backends
}

// watchState is the latest state of one key as its watch loop saw it.
type watchState struct {
	mu   sync.Mutex
	seen bool  // the loop has read the key at least once
	rev  int64 // revision of that state: the ModRevision, or where the key was found missing or deleted
	rec  elector.Record
	ver  elector.Version
	err  error
	wake chan struct{}
}

// New connects to etcd and checks, within DialTimeout, that it answers (and
// that the credentials are accepted). It gives up as soon as ctx is done, so
// a process told to stop while its store is unreachable stops at once.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints configured")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.MaxReconnectDelay < 0 {
		return nil, fmt.Errorf("etcd: MaxReconnectDelay %v is negative", cfg.MaxReconnectDelay)
	}
	if cfg.MaxReconnectDelay == 0 {
		cfg.MaxReconnectDelay = DefaultMaxReconnectDelay
	}
	cc := clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Username:    cfg.Username,
		Password:    cfg.Password,
		DialOptions: append([]grpc.DialOption{reconnect(cfg.MaxReconnectDelay, cfg.DialTimeout)}, cfg.DialOptions...),
		Logger:      zap.NewNop(),
	}
	if cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "" {
		t, err := tlsConfig(cfg.CAFile, cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		cc.TLS = t
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd: connect to %s: %w", strings.Join(cfg.Endpoints, ","), friendly(err))
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := cli.Get(pctx, "/leasehold-ping", clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd: no answer from %s within %v: %w", strings.Join(cfg.Endpoints, ","), cfg.DialTimeout, friendly(err))
	}
	c := NewFromClient(cli, cfg.Prefix, cfg.RequestTimeout)
	c.owned = true
	c.maxDelay = cfg.MaxReconnectDelay
	if cfg.Logger != nil {
		c.log = cfg.Logger
	}
	return c, nil
}

// reconnect is the gRPC connection backoff capped at maxDelay. gRPC's
// default (1s, growing 1.6 times up to 120s) left a client whose etcd had been
// down for 25s waiting another 18s after etcd was back. Jitter is applied
// on top of gRPC's MaxDelay, so that is set below maxDelay to make maxDelay
// a true bound. One connection attempt (TCP, TLS and HTTP/2 handshake) may
// take dialTimeout, the time New gives the first one; gRPC's default of 20s
// would let an attempt stuck on a silent network hold the next one back.
func reconnect(maxDelay, dialTimeout time.Duration) grpc.DialOption {
	top := time.Duration(float64(maxDelay) / (1 + reconnectJitter))
	return grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: backoff.Config{
			BaseDelay:  min(reconnectBaseDelay, top),
			Multiplier: reconnectMultiplier,
			Jitter:     reconnectJitter,
			MaxDelay:   top,
		},
		MinConnectTimeout: dialTimeout,
	})
}

// NewFromClient uses a ready client; Close will not close it. Its watch
// loops back off at most DefaultMaxReconnectDelay; the client's own
// reconnect backoff is whatever cli was built with.
func NewFromClient(cli *clientv3.Client, prefix string, requestTimeout time.Duration) *Client {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if requestTimeout <= 0 {
		requestTimeout = DefaultRequestTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{cli: cli, prefix: prefix, timeout: requestTimeout, maxDelay: DefaultMaxReconnectDelay,
		log: slog.Default(), ctx: ctx, cancel: cancel, watches: map[string]*watchState{}}
}

func tlsConfig(ca, cert, key string) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("etcd: tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd: tls ca %s: no PEM certificate in it", ca)
		}
		t.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("etcd: tls cert and key go together: set both or neither")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("etcd: tls cert/key: %w", err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	return t, nil
}

// friendly names the authentication failures plainly.
func friendly(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrGRPCAuthFailed):
		return fmt.Errorf("authentication failed (check username and password): %w", err)
	case errors.Is(err, rpctypes.ErrPermissionDenied), errors.Is(err, rpctypes.ErrGRPCPermissionDenied):
		return fmt.Errorf("permission denied (the user needs read/write on the prefix): %w", err)
	}
	return err
}

// Close stops the watches and, if New made the connection, closes it.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	if c.owned {
		return c.cli.Close()
	}
	return nil
}

// Lock returns the Backend for the lock named name (key prefix + name).
func (c *Client) Lock(name string) *Backend {
	return &Backend{c: c, name: name, key: c.prefix + name}
}

// PutRaw stores raw bytes at the lock's key, bypassing the encoding (tests
// and repairs).
func (c *Client) PutRaw(ctx context.Context, name string, raw []byte) error {
	_, err := c.cli.Put(ctx, c.prefix+name, string(raw))
	return err
}

// Raw returns the bytes stored at the lock's key.
func (c *Client) Raw(ctx context.Context, name string) ([]byte, error) {
	resp, err := c.cli.Get(ctx, c.prefix+name)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, elector.ErrNotFound
	}
	return resp.Kvs[0].Value, nil
}

// Backend is one lock on etcd.
type Backend struct {
	c    *Client
	name string
	key  string
}

var (
	_ elector.Backend = (*Backend)(nil)
	_ elector.Watcher = (*Backend)(nil)
)

// Describe names the key.
func (b *Backend) Describe() string { return "etcd key " + b.key }

func (b *Backend) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.c.timeout)
}

func (b *Backend) decode(value []byte, modRev int64) (elector.Record, elector.Version, error) {
	r, err := elector.DecodeRecord(value)
	if err != nil {
		return elector.Record{}, "", fmt.Errorf("etcd: key %s: %w", b.key, err)
	}
	return r, version(modRev), nil
}

func version(rev int64) elector.Version { return elector.Version(strconv.FormatInt(rev, 10)) }

// Get reads the record.
func (b *Backend) Get(ctx context.Context) (elector.Record, elector.Version, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	resp, err := b.c.cli.Get(ctx, b.key)
	if err != nil {
		return elector.Record{}, "", fmt.Errorf("etcd: get %s: %w", b.key, friendly(err))
	}
	if len(resp.Kvs) == 0 {
		return elector.Record{}, "", fmt.Errorf("etcd: key %s: %w", b.key, elector.ErrNotFound)
	}
	kv := resp.Kvs[0]
	return b.decode(kv.Value, kv.ModRevision)
}

// Create writes the record if the key does not exist.
func (b *Backend) Create(ctx context.Context, r elector.Record) (elector.Version, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	resp, err := b.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(b.key), "=", 0)).
		Then(clientv3.OpPut(b.key, string(elector.EncodeRecord(r)))).
		Commit()
	if err != nil {
		return "", fmt.Errorf("etcd: create %s: %w", b.key, friendly(err))
	}
	if !resp.Succeeded {
		return "", fmt.Errorf("etcd: create %s: %w", b.key, elector.ErrConflict)
	}
	return version(resp.Header.Revision), nil
}

// Update writes the record if the key's ModRevision is still v.
func (b *Backend) Update(ctx context.Context, r elector.Record, v elector.Version) (elector.Version, error) {
	rev, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || rev <= 0 {
		return "", fmt.Errorf("etcd: update %s: version %q is not an etcd revision: %w", b.key, v, elector.ErrConflict)
	}
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	resp, err := b.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(b.key), "=", rev)).
		Then(clientv3.OpPut(b.key, string(elector.EncodeRecord(r)))).
		Else(clientv3.OpGet(b.key, clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return "", fmt.Errorf("etcd: update %s: %w", b.key, friendly(err))
	}
	if !resp.Succeeded {
		if g := resp.Responses[0].GetResponseRange(); g != nil && g.Count == 0 {
			return "", fmt.Errorf("etcd: update %s: %w", b.key, elector.ErrNotFound)
		}
		return "", fmt.Errorf("etcd: update %s at revision %d: %w", b.key, rev, elector.ErrConflict)
	}
	return version(resp.Header.Revision), nil
}

// Watch returns once the key's state is newer than revision v. The first
// Watch on a key starts one etcd watch on it, shared by every Backend of
// the key on this Client and ended by Client.Close; a compacted revision
// or a broken stream is recovered by reading the key and watching again
// from there.
func (b *Backend) Watch(ctx context.Context, v elector.Version) (elector.Record, elector.Version, error) {
	ws := b.c.watchOf(b)
	after, _ := strconv.ParseInt(string(v), 10, 64)
	for {
		ws.mu.Lock()
		if ws.seen && ws.rev > after {
			r, ver, err := ws.rec, ws.ver, ws.err
			ws.mu.Unlock()
			return r, ver, err
		}
		wake := ws.wake
		ws.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return elector.Record{}, "", fmt.Errorf("etcd: watch %s: %w", b.key, ctx.Err())
		case <-b.c.ctx.Done():
			return elector.Record{}, "", fmt.Errorf("etcd: watch %s: client closed", b.key)
		}
	}
}

// watchOf returns the key's watch state, starting its loop the first time.
func (c *Client) watchOf(b *Backend) *watchState {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	ws := c.watches[b.key]
	if ws == nil {
		ws = &watchState{wake: make(chan struct{})}
		c.watches[b.key] = ws
		c.wg.Add(1)
		go b.watchLoop(ws)
	}
	return ws
}

// publish records a newer state of the key and wakes the waiters.
func (ws *watchState) publish(rev int64, rec elector.Record, ver elector.Version, err error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.seen && rev <= ws.rev {
		return
	}
	ws.seen, ws.rev, ws.rec, ws.ver, ws.err = true, rev, rec, ver, err
	close(ws.wake)
	ws.wake = make(chan struct{})
}

func (b *Backend) watchLoop(ws *watchState) {
	defer b.c.wg.Done()
	ctx := b.c.ctx
	first := min(reconnectBaseDelay, b.c.maxDelay)
	wait := first
	missing := func() error { return fmt.Errorf("etcd: key %s: %w", b.key, elector.ErrNotFound) }
	for ctx.Err() == nil {
		rctx, cancel := b.ctx(ctx)
		resp, err := b.c.cli.Get(rctx, b.key)
		cancel()
		if err != nil {
			b.c.log.Warn("etcd: watch: cannot read the key; retrying", "key", b.key, "err", err, "in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, b.c.maxDelay)
			continue
		}
		wait = first
		if len(resp.Kvs) == 0 {
			ws.publish(resp.Header.Revision, elector.Record{}, "", missing())
		} else {
			kv := resp.Kvs[0]
			r, _, err := b.decode(kv.Value, kv.ModRevision)
			ws.publish(kv.ModRevision, r, version(kv.ModRevision), err)
		}
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := b.c.cli.Watch(wctx, b.key, clientv3.WithRev(resp.Header.Revision+1))
		for wr := range ch {
			if err := wr.Err(); err != nil {
				if ctx.Err() == nil {
					b.c.log.Info("etcd: watch interrupted; reading the key and watching again", "key", b.key, "err", err)
				}
				break
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					ws.publish(ev.Kv.ModRevision, elector.Record{}, "", missing())
					continue
				}
				r, _, err := b.decode(ev.Kv.Value, ev.Kv.ModRevision)
				ws.publish(ev.Kv.ModRevision, r, version(ev.Kv.ModRevision), err)
			}
		}
		wcancel()
	}
}
