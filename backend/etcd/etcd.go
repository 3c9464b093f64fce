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
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/smallfile"
	"github.com/leasehold-go/leasehold/internal/tlsx"
	"github.com/leasehold-go/leasehold/internal/watchstate"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Defaults.
const (
	DefaultPrefix         = "/leasehold/"
	DefaultEndpoint       = "127.0.0.1:2379"
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 2 * time.Second
	// DefaultMaxReconnectDelay caps the reconnect backoff when
	// Config.MaxReconnectDelay is zero.
	DefaultMaxReconnectDelay = time.Second
	// MaxTimeout bounds DialTimeout and RequestTimeout: longer is a unit
	// typo, and would keep a stop or a failover waiting that long.
	MaxTimeout = time.Hour
)

// Reconnect backoff: the first retry after a lost connection waits at most
// reconnectBaseDelay, each next one reconnectMultiplier times longer, up to
// the cap; every delay is randomised by ±reconnectJitter.
const (
	reconnectBaseDelay  = 100 * time.Millisecond
	reconnectMultiplier = 1.6
	reconnectJitter     = 0.2
)

// TLSFiles names the PEM files of the TLS connection (ca, cert, key); all
// empty means plain TCP. It is the `tls:` block every backend's
// configuration shares.
type TLSFiles = tlsx.Files

// Config says how to reach etcd. It is also the `etcd:` block of the
// leasehold config file: the fields with a yaml tag are its keys
// (docs/config.md), and Validate's errors name those keys (etcd.endpoints),
// so the CLI can point at their lines. Start from DefaultConfig; zero
// durations and an empty Prefix mean the defaults.
type Config struct {
	// Endpoints are host:port or URLs; at least one.
	Endpoints []string `yaml:"endpoints"`
	// Prefix of the keys: a lock's key is Prefix + its name. Empty means
	// DefaultPrefix.
	Prefix string `yaml:"prefix"`
	// DialTimeout bounds connecting and the first round trip in New; at
	// most MaxTimeout, zero means DefaultDialTimeout.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// RequestTimeout bounds every request (the elector's own, shorter
	// deadlines apply too); at most MaxTimeout, zero means
	// DefaultRequestTimeout. Keep it well under RenewDeadline.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// TLS names the CA, client certificate and key files.
	TLS TLSFiles `yaml:"tls"`
	// Username for etcd authentication; empty when auth is off.
	Username string `yaml:"username"`
	// PasswordFile names the file whose content (trimmed) is the password:
	// secrets never appear in the config file itself.
	PasswordFile string `yaml:"password_file"`
	// Password is the password itself, for programs that have it in
	// memory; set it or PasswordFile, not both. Not a config file key.
	Password string `yaml:"-"`
	// MaxReconnectDelay caps the client's reconnect backoff: how long, at
	// most, the client waits between two attempts to reach etcd (jitter
	// included), however long etcd has been away, and so how long after
	// etcd answers again a request can go through. gRPC's own cap is 120s,
	// which kept leadership away for many seconds after a long outage.
	// The watch loops back off no longer either. Zero means
	// DefaultMaxReconnectDelay; the CLI sets the lease's RetryPeriod. Not a
	// config file key. (With NewFromClient, see WithMaxReconnectDelay.)
	MaxReconnectDelay time.Duration `yaml:"-"`
	// Logger receives watch recoveries; default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// DefaultConfig is the configuration of an etcd on this machine: endpoint
// 127.0.0.1:2379, DefaultPrefix, DefaultDialTimeout, DefaultRequestTimeout.
func DefaultConfig() Config {
	return Config{Endpoints: []string{DefaultEndpoint}, Prefix: DefaultPrefix,
		DialTimeout: DefaultDialTimeout, RequestTimeout: DefaultRequestTimeout}
}

// Validate checks c without reading a file or connecting. Every error is an
// *elector.ConfigError whose Fields are the config file keys involved
// (etcd.endpoints, etcd.tls.cert, ...) and whose message names them.
func (c Config) Validate() error {
	bad := func(fields []string, format string, args ...any) error {
		return &elector.ConfigError{Fields: fields, Msg: fmt.Sprintf(format, args...)}
	}
	if len(c.Endpoints) == 0 {
		return bad([]string{"etcd.endpoints"}, "etcd.endpoints: empty: list at least one endpoint")
	}
	for i, e := range c.Endpoints {
		if strings.TrimSpace(e) == "" {
			return bad([]string{"etcd.endpoints"}, "etcd.endpoints: item %d of %d is empty", i+1, len(c.Endpoints))
		}
	}
	if err := c.TLS.Validate("etcd.tls"); err != nil {
		return err
	}
	for _, t := range []struct {
		key string
		d   time.Duration
	}{{"etcd.dial_timeout", c.DialTimeout}, {"etcd.request_timeout", c.RequestTimeout}} {
		switch {
		case t.d < 0:
			return bad([]string{t.key}, "%s (%v) must not be negative (leave it out for the default)", t.key, t.d)
		case t.d > MaxTimeout:
			return bad([]string{t.key}, "%s (%v) must be at most %v", t.key, t.d, MaxTimeout)
		}
	}
	if c.Password != "" && c.PasswordFile != "" {
		return bad([]string{"etcd.password_file"}, "etcd.password_file: set it or Config.Password, not both")
	}
	if c.MaxReconnectDelay < 0 {
		return bad([]string{"MaxReconnectDelay"}, "MaxReconnectDelay (%v) must not be negative", c.MaxReconnectDelay)
	}
	return nil
}

// withDefaults fills in the defaults of zero values.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxReconnectDelay == 0 {
		c.MaxReconnectDelay = DefaultMaxReconnectDelay
	}
	return c
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
	// One watch loop per key, shared by its Backends; the revision of a
	// state is the key's ModRevision, or where it was found missing.
	watches map[string]*watchstate.State
}

// Open connects as New does and returns the Backend of the lock named lock
// and the function that closes the connection: the shape every backend's
// Open has, so that the leasehold CLI opens any backend from its Config
// alone. log receives watch recoveries unless cfg.Logger is set.
func Open(ctx context.Context, cfg Config, lock string, log *slog.Logger) (elector.Backend, func() error, error) {
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	c, err := New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return c.Lock(lock), c.Close, nil
}

// New connects to etcd and checks, within DialTimeout, that it answers (and
// that the credentials are accepted). It gives up as soon as ctx is done, so
// a process told to stop while its store is unreachable stops at once.
// Before connecting it validates cfg and reads the password and TLS files:
// those errors are *elector.ConfigError naming the key (etcd.tls.ca) and the
// path.
func New(ctx context.Context, cfg Config) (*Client, error) {
	return newClient(ctx, cfg)
}

// newClient is New; tests add gRPC dial options (export_test.go) to count
// requests, which the public API does not offer.
func newClient(ctx context.Context, cfg Config, extra ...grpc.DialOption) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	password := cfg.Password
	if cfg.PasswordFile != "" {
		b, err := smallfile.Read(cfg.PasswordFile)
		if err != nil {
			return nil, &elector.ConfigError{Fields: []string{"etcd.password_file"},
				Msg: fmt.Sprintf("etcd.password_file %s: %v", cfg.PasswordFile, err)}
		}
		password = strings.TrimSpace(string(b))
	}
	t, err := cfg.TLS.Load("etcd.tls")
	if err != nil {
		return nil, err
	}
	cc := clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Username:    cfg.Username,
		Password:    password,
		TLS:         t,
		DialOptions: append([]grpc.DialOption{reconnect(cfg.MaxReconnectDelay, cfg.DialTimeout)}, extra...),
		Logger:      zap.NewNop(),
	}
	cli, err := dial(ctx, cc)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("etcd: connect to %s: %w", strings.Join(cfg.Endpoints, ","), friendly(err))
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := cli.Get(pctx, "/leasehold-ping", clientv3.WithCountOnly()); err != nil {
		cli.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("etcd: no answer from %s within %v: %w", strings.Join(cfg.Endpoints, ","), cfg.DialTimeout, friendly(err))
	}
	c := NewFromClient(cli, cfg.Prefix, cfg.RequestTimeout, WithMaxReconnectDelay(cfg.MaxReconnectDelay), WithLogger(cfg.Logger))
	c.owned = true
	return c, nil
}

// dial is clientv3.New that returns as soon as ctx is done. With a username
// and password the etcd client authenticates inside clientv3.New under its
// own dial timeout, which ctx does not reach; a client that connects after
// all is closed.
func dial(ctx context.Context, cc clientv3.Config) (*clientv3.Client, error) {
	type result struct {
		cli *clientv3.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		cli, err := clientv3.New(cc)
		done <- result{cli, err}
	}()
	select {
	case r := <-done:
		return r.cli, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.cli != nil {
				r.cli.Close()
			}
		}()
		return nil, ctx.Err()
	}
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

// ClientOption adjusts a Client made by NewFromClient.
type ClientOption func(*Client)

// WithMaxReconnectDelay caps the retry backoff of the Client's watch loops
// at d (zero or less: DefaultMaxReconnectDelay), as Config.MaxReconnectDelay
// does for New. The connection's own reconnect backoff is what cli was
// built with: gRPC's default grows to 120s, so pass a
// grpc.WithConnectParams backoff with that cap in clientv3.Config's
// DialOptions too (New does both).
func WithMaxReconnectDelay(d time.Duration) ClientOption {
	return func(c *Client) {
		if d > 0 {
			c.maxDelay = d
		}
	}
}

// WithLogger sets the logger of watch recoveries (nil: slog.Default()).
func WithLogger(l *slog.Logger) ClientOption {
	return func(c *Client) {
		if l != nil {
			c.log = l
		}
	}
}

// NewFromClient uses a ready client; Close will not close it. An empty
// prefix means DefaultPrefix, a requestTimeout of zero or less
// DefaultRequestTimeout. The client's reconnect backoff, TLS and
// credentials are whatever cli was built with (see WithMaxReconnectDelay).
func NewFromClient(cli *clientv3.Client, prefix string, requestTimeout time.Duration, opts ...ClientOption) *Client {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if requestTimeout <= 0 {
		requestTimeout = DefaultRequestTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{cli: cli, prefix: prefix, timeout: requestTimeout, maxDelay: DefaultMaxReconnectDelay,
		log: slog.Default(), ctx: ctx, cancel: cancel, watches: map[string]*watchstate.State{}}
	for _, o := range opts {
		o(c)
	}
	return c
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

// Key is the lock's etcd key: prefix + name (to inspect or delete it with
// etcdctl).
func (b *Backend) Key() string { return b.key }

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
	value, err := elector.MarshalRecord(r)
	if err != nil {
		return "", fmt.Errorf("etcd: create %s: %w", b.key, err)
	}
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	resp, err := b.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(b.key), "=", 0)).
		Then(clientv3.OpPut(b.key, string(value))).
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
	if err != nil || rev <= 0 || version(rev) != v {
		return "", fmt.Errorf("etcd: update %s: version %q is not an etcd revision: %w", b.key, v, elector.ErrConflict)
	}
	value, err := elector.MarshalRecord(r)
	if err != nil {
		return "", fmt.Errorf("etcd: update %s: %w", b.key, err)
	}
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	resp, err := b.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(b.key), "=", rev)).
		Then(clientv3.OpPut(b.key, string(value))).
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
	after, _ := strconv.ParseInt(string(v), 10, 64)
	r, ver, err := b.c.watchOf(b).Wait(ctx, after, b.c.ctx.Done())
	if err != nil && (errors.Is(err, watchstate.ErrClosed) || err == ctx.Err()) {
		err = fmt.Errorf("etcd: watch %s: %w", b.key, err)
	}
	return r, ver, err
}

// watchOf returns the key's watch state, starting its loop the first time.
func (c *Client) watchOf(b *Backend) *watchstate.State {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	ws := c.watches[b.key]
	if ws == nil {
		ws = watchstate.New()
		c.watches[b.key] = ws
		c.wg.Add(1)
		go b.watchLoop(ws)
	}
	return ws
}

func (b *Backend) watchLoop(ws *watchstate.State) {
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
			ws.Publish(resp.Header.Revision, elector.Record{}, "", missing())
		} else {
			kv := resp.Kvs[0]
			r, _, err := b.decode(kv.Value, kv.ModRevision)
			ws.Publish(kv.ModRevision, r, version(kv.ModRevision), err)
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
					ws.Publish(ev.Kv.ModRevision, elector.Record{}, "", missing())
					continue
				}
				r, _, err := b.decode(ev.Kv.Value, ev.Kv.ModRevision)
				ws.Publish(ev.Kv.ModRevision, r, version(ev.Kv.ModRevision), err)
			}
		}
		wcancel()
	}
}
