// Package etcd implements the leasehold backend contract on etcd v3.
//
// Each lock is one key, <prefix><name>, whose value is the record encoded as
// the JSON document elector.RecordFormat (docs/backends.md). The version is
// the key's ModRevision. Create is a transaction "if CreateRevision == 0 then
// put", Update "if ModRevision == version and the value is the one this
// Backend read at that version then put"; a failed compare is
// elector.ErrConflict. Followers wait on one long-lived etcd watch per lock,
// so they send no request while nothing changes.
//
// An etcd restored from an older snapshot, or wiped, hands out revisions it
// handed out before, for other writes: a ModRevision alone does not name a
// record. Update compares the value too, and every response's revision is
// checked against the highest one this Client saw for the key: lower means
// the store went back in time, which is logged once and resets the key's
// watch (see Backend.Update and Backend.Watch).
package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/smallfile"
	"github.com/leasehold-go/leasehold/internal/tlsx"
	"github.com/leasehold-go/leasehold/internal/watchstate"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
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
	// Logger receives watch recoveries; nil discards them.
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

	keysMu sync.Mutex
	// What this Client knows of each key, shared by the key's Backends:
	// its watch and the revisions it saw.
	keys      map[string]*keyState
	connWatch bool // the connection's state is watched (watchConnection)

	connMu sync.Mutex
	// reconnected is closed (and replaced) when the connection is ready
	// again after it was lost: the server may have restarted with other
	// data, and a watch the client resumed by itself may be waiting for
	// revisions that store is far from.
	reconnected chan struct{}
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

// WithLogger sets the logger of watch recoveries (the default discards).
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
		log: slog.New(slog.DiscardHandler), ctx: ctx, cancel: cancel, keys: map[string]*keyState{},
		reconnected: make(chan struct{})}
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
	key := c.prefix + name
	c.keysMu.Lock()
	defer c.keysMu.Unlock()
	k := c.keys[key]
	if k == nil {
		k = &keyState{key: key}
		c.keys[key] = k
	}
	return &Backend{c: c, name: name, key: key, k: k}
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
	k    *keyState
	memo memo
}

// memoSize is how many versions of its key a Backend remembers the value
// of: the elector writes with the version of its last read or write.
const memoSize = 4

// memo holds the bytes a Backend last read, watched or wrote at its last
// few versions of the key, which Update compares: after a rollback the same
// revision can hold another record.
type memo struct {
	mu     sync.Mutex
	next   int
	revs   [memoSize]int64
	values [memoSize][]byte
}

// set remembers value at rev. A read or a write replaces what was
// remembered at rev (the caller now holds that); a watched state or the
// record a refused write found (replace false) only fills a gap: it may be
// one the caller never took.
func (m *memo) set(rev int64, value []byte, replace bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range m.revs {
		if r == rev {
			if replace {
				m.values[i] = value
			}
			return
		}
	}
	m.revs[m.next], m.values[m.next] = rev, value
	m.next = (m.next + 1) % memoSize
}

// get returns the value remembered at rev.
func (m *memo) get(rev int64) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range m.revs {
		if r == rev && r > 0 {
			return m.values[i], true
		}
	}
	return nil, false
}

// keyState is what a Client knows of one key. Its mutex orders everything
// that moves the key's watch state: the watch loop's publications and the
// resets after the store went back in time, whoever finds it.
type keyState struct {
	key string

	mu sync.Mutex
	// mark is the highest revision of the store this Client saw in an
	// answer about the key (headers of reads, writes and watch responses):
	// etcd had committed it, so a linearizable answer to a request sent
	// later is never below it, unless the store went back in time.
	mark int64
	// epoch counts the times the store was found to have gone back in
	// time. An answer to a request sent in an earlier epoch may come from
	// the forgotten history: it tells nothing about the present.
	epoch int64
	ws    *watchstate.State // nil until the first Watch
	// The last few states published to ws (or reset to) that carried a
	// record, with its bytes: Backend.Watch remembers the value of what it
	// hands out (only when it is that very record).
	pub  [memoSize]published
	pubN int
}

type published struct {
	rev   int64
	value []byte
	rec   elector.Record
}

// stamp is what a Client knew of a key when it sent a request.
type stamp struct{ epoch, mark int64 }

func (k *keyState) stamp() stamp {
	k.mu.Lock()
	defer k.mu.Unlock()
	return stamp{k.epoch, k.mark}
}

// state is the key's state in one answer of the store.
type state struct {
	rev   int64  // the key's ModRevision, or the store's revision where it was missing
	value []byte // the stored bytes; nil when missing
	rec   elector.Record
	ver   elector.Version
	err   error // ErrNotFound (wrapped) or why the value does not decode
}

// stateOf is the key's state in an answer at store revision rev listing
// kvs (the key, or nothing when it is missing).
func (b *Backend) stateOf(rev int64, kvs []*mvccpb.KeyValue) state {
	if len(kvs) == 0 {
		return state{rev: rev, err: fmt.Errorf("etcd: key %s: %w", b.key, elector.ErrNotFound)}
	}
	kv := kvs[0]
	r, _, err := b.decode(kv.Value, kv.ModRevision)
	return state{rev: kv.ModRevision, value: kv.Value, rec: r, ver: version(kv.ModRevision), err: err}
}

// remember keeps, for the Backend, the value of a state it read or wrote
// (replace) or watched.
func (b *Backend) remember(st state, replace bool) {
	if st.err == nil && st.value != nil {
		b.memo.set(st.rev, st.value, replace)
	}
}

// observe takes in a linearizable answer about the key to a request sent
// at st: the store's revision rev and the key's state now. A revision below
// the highest one seen before sending means the store went back in time
// (restored from an older snapshot, wiped): logged once (the first answer
// to show it), and the key's watch state is reset to now, so that waiters
// holding a forgotten version are handed the present and the watch loop
// reads and watches again. It reports whether the answer is of the
// present epoch (false: a rollback was found while the request was out,
// so it may predate it). k.mu is held.
func (c *Client) observe(k *keyState, st stamp, rev int64, now state) bool {
	if k.epoch != st.epoch {
		return false
	}
	if rev >= st.mark {
		k.mark = max(k.mark, rev)
		return true
	}
	k.epoch++
	k.mark = rev
	c.log.Warn(fmt.Sprintf("etcd: the store went back in time: revision %d after %d (restored from a snapshot or wiped?)", rev, st.mark),
		"key", k.key)
	if k.ws != nil {
		k.ws.Reset(now.rev, now.rec, now.ver, now.err)
		k.published(now)
	}
	return true
}

// observed is observe taking k.mu.
func (c *Client) observed(k *keyState, st stamp, rev int64, now state) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c.observe(k, st, rev, now)
}

// publish hands a state the watch loop read or watched to the key's
// waiters. k.mu is held.
func (k *keyState) publish(now state) {
	k.mark = max(k.mark, now.rev)
	k.ws.Publish(now.rev, now.rec, now.ver, now.err)
	k.published(now)
}

// published remembers the bytes of a state handed to waiters. k.mu is held.
func (k *keyState) published(now state) {
	if now.err != nil || now.value == nil {
		return
	}
	for i := range k.pub {
		if k.pub[i].rev == now.rev {
			k.pub[i] = published{now.rev, now.value, now.rec}
			return
		}
	}
	k.pub[k.pubN] = published{now.rev, now.value, now.rec}
	k.pubN = (k.pubN + 1) % memoSize
}

// valueOf returns the bytes of the record r published at rev, if that
// very record (not another one a reset put at the same revision) is still
// remembered.
func (k *keyState) valueOf(rev int64, r elector.Record) ([]byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.pub {
		if p.rev == rev && p.value != nil && reflect.DeepEqual(p.rec, r) {
			return p.value, true
		}
	}
	return nil, false
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
	st := b.k.stamp()
	resp, err := b.c.cli.Get(ctx, b.key)
	if err != nil {
		return elector.Record{}, "", fmt.Errorf("etcd: get %s: %w", b.key, friendly(err))
	}
	now := b.stateOf(resp.Header.Revision, resp.Kvs)
	b.c.observed(b.k, st, resp.Header.Revision, now)
	if now.err != nil {
		return elector.Record{}, "", now.err
	}
	b.remember(now, true)
	return now.rec, now.ver, nil
}

// Create writes the record if the key does not exist.
func (b *Backend) Create(ctx context.Context, r elector.Record) (elector.Version, error) {
	value, err := elector.MarshalRecord(r)
	if err != nil {
		return "", fmt.Errorf("etcd: create %s: %w", b.key, err)
	}
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	st := b.k.stamp()
	resp, err := b.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(b.key), "=", 0)).
		Then(clientv3.OpPut(b.key, string(value))).
		Else(clientv3.OpGet(b.key)).
		Commit()
	if err != nil {
		return "", fmt.Errorf("etcd: create %s: %w", b.key, friendly(err))
	}
	return b.written(st, resp, r, value, "create", 0)
}

// written takes in the answer to Create's or Update's transaction, whose
// Else reads the key: the write's version, or why it was refused.
func (b *Backend) written(st stamp, resp *clientv3.TxnResponse, r elector.Record, value []byte, op string, rev int64) (elector.Version, error) {
	h := resp.Header.Revision
	if resp.Succeeded {
		now := state{rev: h, value: value, rec: r, ver: version(h)}
		b.c.observed(b.k, st, h, now)
		b.remember(now, true)
		return now.ver, nil
	}
	var kvs []*mvccpb.KeyValue
	if len(resp.Responses) > 0 {
		if g := resp.Responses[0].GetResponseRange(); g != nil {
			kvs = g.Kvs
		}
	}
	now := b.stateOf(h, kvs)
	b.c.observed(b.k, st, h, now)
	// What the refusal shows the caller has not taken (it reads again):
	// it does not replace what the caller holds at that version.
	b.remember(now, false)
	switch {
	case op == "create":
		return "", fmt.Errorf("etcd: create %s: %w", b.key, elector.ErrConflict)
	case len(kvs) == 0:
		return "", fmt.Errorf("etcd: update %s: %w", b.key, elector.ErrNotFound)
	case kvs[0].ModRevision == rev:
		return "", fmt.Errorf("etcd: update %s at revision %d: the key holds another record at that revision than the one read (the store went back in time?): %w",
			b.key, rev, elector.ErrConflict)
	}
	return "", fmt.Errorf("etcd: update %s at revision %d: %w", b.key, rev, elector.ErrConflict)
}

// Update writes the record if the key's ModRevision is still v and, when
// this Backend read, watched or wrote the key at v (among its last few
// versions), if the key's value is still the very bytes it saw there: a
// store restored from an older snapshot hands revisions out again, and
// the same ModRevision can then hold another record, which a compare on
// the revision alone would overwrite. A version this Backend never saw
// (handed over from another client) can only be compared by revision.
func (b *Backend) Update(ctx context.Context, r elector.Record, v elector.Version) (elector.Version, error) {
	rev, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || rev <= 0 || version(rev) != v {
		return "", fmt.Errorf("etcd: update %s: version %q is not an etcd revision: %w", b.key, v, elector.ErrConflict)
	}
	value, err := elector.MarshalRecord(r)
	if err != nil {
		return "", fmt.Errorf("etcd: update %s: %w", b.key, err)
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(b.key), "=", rev)}
	if seen, ok := b.memo.get(rev); ok {
		cmps = append(cmps, clientv3.Compare(clientv3.Value(b.key), "=", string(seen)))
	}
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	st := b.k.stamp()
	resp, err := b.c.cli.Txn(ctx).
		If(cmps...).
		Then(clientv3.OpPut(b.key, string(value))).
		Else(clientv3.OpGet(b.key)).
		Commit()
	if err != nil {
		return "", fmt.Errorf("etcd: update %s: %w", b.key, friendly(err))
	}
	return b.written(st, resp, r, value, "update", rev)
}

// Watch returns once the key's state is newer than revision v. The first
// Watch on a key starts one etcd watch on it, shared by every Backend of
// the key on this Client and ended by Client.Close; a compacted revision
// or a broken stream is recovered by reading the key and watching again
// from there. When the store went back in time (a read or write of any
// Backend of the key on this Client, or the watch's own read after a
// reconnection, shows a revision below one seen before), a Watch holding a
// version from the forgotten history returns the present state.
func (b *Backend) Watch(ctx context.Context, v elector.Version) (elector.Record, elector.Version, error) {
	after, _ := strconv.ParseInt(string(v), 10, 64)
	r, ver, err := b.c.watchOf(b).Wait(ctx, after, b.c.ctx.Done())
	if err != nil && (errors.Is(err, watchstate.ErrClosed) || err == ctx.Err()) {
		err = fmt.Errorf("etcd: watch %s: %w", b.key, err)
	}
	if err == nil {
		if rev, perr := strconv.ParseInt(string(ver), 10, 64); perr == nil {
			if value, ok := b.k.valueOf(rev, r); ok {
				b.memo.set(rev, value, false)
			}
		}
	}
	return r, ver, err
}

// watchOf returns the key's watch state, starting its loop the first time
// (and the Client's watch on its connection, the first time of all).
func (c *Client) watchOf(b *Backend) *watchstate.State {
	c.keysMu.Lock()
	defer c.keysMu.Unlock()
	k := b.k
	k.mu.Lock()
	ws, start := k.ws, k.ws == nil
	if start {
		ws = watchstate.New()
		k.ws = ws
	}
	k.mu.Unlock()
	if start {
		c.wg.Add(1)
		go b.watchLoop(k)
	}
	if !c.connWatch {
		c.connWatch = true
		c.wg.Add(1)
		go c.watchConnection()
	}
	return ws
}

// reconnects returns a channel closed at the next reconnection.
func (c *Client) reconnects() <-chan struct{} {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	return c.reconnected
}

// watchConnection closes reconnected each time the connection is ready
// again after it was lost (not at the first connection). The etcd client
// resumes a broken watch by itself, from the revision after the last one
// it delivered; on a server that came back restored from an older
// snapshot, or wiped, that revision is in the future and the watch stays
// silent until unrelated writes reach it. The watch loops read the key
// again instead.
func (c *Client) watchConnection() {
	defer c.wg.Done()
	conn := c.cli.ActiveConnection()
	ready, lost := false, false
	for {
		s := conn.GetState()
		switch {
		case s == connectivity.Ready && lost:
			lost = false
			c.connMu.Lock()
			close(c.reconnected)
			c.reconnected = make(chan struct{})
			c.connMu.Unlock()
		case s == connectivity.Ready:
			ready = true
		case ready:
			lost = true
		}
		if !conn.WaitForStateChange(c.ctx, s) {
			return
		}
	}
}

// watchLoop keeps the key's watch state: it reads the key, publishes what
// it read and watches from there, until the stream breaks, the connection
// was re-established or the store was found to have gone back in time;
// then it reads again.
func (b *Backend) watchLoop(k *keyState) {
	defer b.c.wg.Done()
	ctx := b.c.ctx
	first := min(reconnectBaseDelay, b.c.maxDelay)
	wait := first
	for ctx.Err() == nil {
		// Taken before the read: a reconnection after it means the read
		// may have been answered by the server as it was before.
		reconnected := b.c.reconnects()
		st := k.stamp()
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
		h := resp.Header.Revision
		now := b.stateOf(h, resp.Kvs)
		k.mu.Lock()
		if !b.c.observe(k, st, h, now) {
			// The store was found to have gone back in time while the
			// read was out: it may describe the forgotten history.
			k.mu.Unlock()
			continue
		}
		k.publish(now)
		epoch, resets := k.epoch, k.ws.Resets()
		k.mu.Unlock()
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := b.c.cli.Watch(wctx, b.key, clientv3.WithRev(h+1), clientv3.WithProgressNotify())
		b.follow(k, ch, epoch, resets, reconnected)
		wcancel()
	}
}

// follow publishes the watch's events until the stream breaks or ends, the
// store went back in time (a reset, or a progress notification below what
// was published: a read tells), or the connection was re-established.
func (b *Backend) follow(k *keyState, ch clientv3.WatchChan, epoch int64, resets, reconnected <-chan struct{}) {
	ctx := b.c.ctx
	for {
		var wr clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return
		case <-resets:
			return
		case <-reconnected:
			return
		case wr, ok = <-ch:
			if !ok {
				return
			}
		}
		if err := wr.Err(); err != nil {
			if ctx.Err() == nil {
				b.c.log.Info("etcd: watch interrupted; reading the key and watching again", "key", b.key, "err", err)
			}
			return
		}
		k.mu.Lock()
		if k.epoch != epoch {
			// Reset meanwhile: these events may be from the forgotten history.
			k.mu.Unlock()
			return
		}
		if _, behind := k.ws.Behind(wr.Header.Revision); behind && wr.IsProgressNotify() {
			// The watched member says it is behind what was published:
			// rolled back, or a lagging member. A read tells.
			k.mu.Unlock()
			return
		}
		k.mark = max(k.mark, wr.Header.Revision)
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				k.publish(state{rev: ev.Kv.ModRevision, err: fmt.Errorf("etcd: key %s: %w", b.key, elector.ErrNotFound)})
				continue
			}
			k.publish(b.stateOf(ev.Kv.ModRevision, []*mvccpb.KeyValue{ev.Kv}))
		}
		k.mu.Unlock()
	}
}
