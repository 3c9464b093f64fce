// Package consul implements the leasehold backend contract on Consul KV.
//
// Each lock is one key, <prefix><name>, whose value is the record encoded as
// the JSON document elector.RecordFormat (docs/backends.md), the same as the
// etcd backend's. The version is the key's ModifyIndex. Create is a
// transaction "CAS with index 0" (only if the key does not exist), Update
// "CAS with the ModifyIndex read"; a refused CAS is elector.ErrConflict.
// Consul compares nothing but indexes, which a store that forgot hands out
// again: the backend notices an index going backwards, logs it once and
// refuses the versions read before (see keyState).
// Reads that decide are consistent reads. Followers wait on a blocking query
// on the key, so they send one request per change of the record and none
// while it does not change.
//
// No Consul session is used: the timing is the elector's own lease, so
// Consul's session TTL reaping and lock-delay do not slow failover.
package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/smallfile"
	"github.com/leasehold-go/leasehold/internal/tlsx"
)

// Defaults and bounds.
const (
	DefaultAddress        = "127.0.0.1:8500"
	DefaultPrefix         = "leasehold/"
	DefaultRequestTimeout = 2 * time.Second
	// MaxTimeout bounds RequestTimeout: longer is a unit typo, and would
	// keep a stop or a failover waiting that long.
	MaxTimeout = time.Hour
	// DefaultWatchWait is the WaitTime of a blocking query when the lease
	// of the record is not known yet.
	DefaultWatchWait = 30 * time.Second
	// MaxWatchWait caps the WaitTime of a blocking query (Consul's own
	// maximum is 10 minutes).
	MaxWatchWait = 5 * time.Minute
)

// TLSFiles names the PEM files of the TLS connection (ca, cert, key); all
// empty means plain HTTP. It is the `tls:` block every backend's
// configuration shares.
type TLSFiles = tlsx.Files

// Config says how to reach the Consul agent. It is also the `consul:` block
// of the leasehold config file: the fields with a yaml tag are its keys
// (docs/config.md), and Validate's errors name those keys (consul.address),
// so the CLI can point at their lines. Start from DefaultConfig; empty
// values mean the defaults.
type Config struct {
	// Address of the agent's HTTP API, host:port. Empty means
	// DefaultAddress.
	Address string `yaml:"address"`
	// Scheme is http or https; empty means https when TLS names a file,
	// http otherwise.
	Scheme string `yaml:"scheme"`
	// Datacenter to use; empty means the agent's own.
	Datacenter string `yaml:"datacenter"`
	// Prefix of the keys: a lock's key is Prefix + its name. Empty means
	// DefaultPrefix. It must not start with "/".
	Prefix string `yaml:"prefix"`
	// TokenFile names the file whose content (trimmed) is the ACL token:
	// secrets never appear in the config file itself. Empty: no token of
	// leasehold's (the client library then falls back to
	// CONSUL_HTTP_TOKEN, as the consul CLI does).
	TokenFile string `yaml:"token_file"`
	// Token is the ACL token itself, for programs that have it in memory;
	// set it or TokenFile, not both. Not a config file key.
	Token string `yaml:"-"`
	// TLS names the CA, client certificate and key files.
	TLS TLSFiles `yaml:"tls"`
	// RequestTimeout bounds every request but the blocking queries of
	// followers (the elector's own, shorter deadlines apply too); at most
	// MaxTimeout, zero means DefaultRequestTimeout. Keep it well under
	// RenewDeadline.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Logger receives notes about watches; nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// DefaultConfig is the configuration of an agent on this machine: address
// 127.0.0.1:8500, plain HTTP, DefaultPrefix, DefaultRequestTimeout.
func DefaultConfig() Config {
	return Config{Address: DefaultAddress, Prefix: DefaultPrefix, RequestTimeout: DefaultRequestTimeout}
}

// Validate checks c without reading a file or connecting. Every error is an
// *elector.ConfigError whose Fields are the config file keys involved
// (consul.address, consul.tls.cert, ...) and whose message names them.
func (c Config) Validate() error {
	bad := func(field string, format string, args ...any) error {
		return &elector.ConfigError{Fields: []string{field}, Msg: fmt.Sprintf(format, args...)}
	}
	if strings.Contains(c.Address, "://") {
		return bad("consul.address", "consul.address: %q: write host:port (the scheme goes in consul.scheme)", c.Address)
	}
	if strings.ContainsAny(c.Address, " /\t\n") {
		return bad("consul.address", "consul.address: %q is not host:port", c.Address)
	}
	switch c.Scheme {
	case "", "http", "https":
	default:
		return bad("consul.scheme", "consul.scheme: %q: want http or https", c.Scheme)
	}
	if c.Scheme == "http" && !c.TLS.IsZero() {
		return bad("consul.scheme", "consul.scheme: http with consul.tls files: use https, or leave consul.scheme out")
	}
	if strings.HasPrefix(c.Prefix, "/") {
		return bad("consul.prefix", "consul.prefix: %q must not start with / (Consul keys have no leading slash)", c.Prefix)
	}
	if err := c.TLS.Validate("consul.tls"); err != nil {
		return err
	}
	switch {
	case c.RequestTimeout < 0:
		return bad("consul.request_timeout", "consul.request_timeout (%v) must not be negative (leave it out for the default)", c.RequestTimeout)
	case c.RequestTimeout > MaxTimeout:
		return bad("consul.request_timeout", "consul.request_timeout (%v) must be at most %v", c.RequestTimeout, MaxTimeout)
	}
	if c.Token != "" && c.TokenFile != "" {
		return bad("consul.token_file", "consul.token_file: set it or Config.Token, not both")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Scheme == "" {
		c.Scheme = "http"
		if !c.TLS.IsZero() {
			c.Scheme = "https"
		}
	}
	return c
}

// Client is a Consul API client from which locks are opened.
type Client struct {
	api       *api.Client
	transport *http.Transport // New's own, closed by Close; nil with NewFromClient
	prefix    string
	timeout   time.Duration
	log       *slog.Logger

	fails    atomic.Uint64 // requests that failed (the agent may have restarted since)
	statesMu sync.Mutex
	states   map[string]*keyState // by key
}

// Open connects as New does and returns the Backend of the lock named lock
// and the function that closes the connection: the shape every backend's
// Open has, so that the leasehold CLI opens any backend from its Config
// alone. It reads the lock's key once, so a token without read permission
// is reported here, naming the key. log receives watch notes unless
// cfg.Logger is set.
func Open(ctx context.Context, cfg Config, lock string, log *slog.Logger) (elector.Backend, func() error, error) {
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	c, err := New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	b := c.Lock(lock)
	if _, _, err := b.Get(ctx); err != nil && !errors.Is(err, elector.ErrNotFound) && !errors.Is(err, elector.ErrCorrupt) {
		c.Close()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, err
	}
	return b, c.Close, nil
}

// New makes a client of the agent and checks, within RequestTimeout, that
// it answers and has a leader. It gives up as soon as ctx is done. Before
// connecting it validates cfg and reads the token and TLS files: those
// errors are *elector.ConfigError naming the key (consul.token_file) and the
// path.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	token := cfg.Token
	if cfg.TokenFile != "" {
		b, err := smallfile.Read(cfg.TokenFile)
		if err != nil {
			return nil, &elector.ConfigError{Fields: []string{"consul.token_file"},
				Msg: fmt.Sprintf("consul.token_file %s: %v", cfg.TokenFile, err)}
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return nil, &elector.ConfigError{Fields: []string{"consul.token_file"},
				Msg: fmt.Sprintf("consul.token_file %s: the file is empty", cfg.TokenFile)}
		}
	}
	t, err := cfg.TLS.Load("consul.tls")
	if err != nil {
		return nil, err
	}
	tr := cleanhttp.DefaultPooledTransport()
	tr.Proxy = nil // the agent is reached directly
	if t != nil {
		tr.TLSClientConfig = t
	}
	ac, err := api.NewClient(&api.Config{
		Address:    cfg.Address,
		Scheme:     cfg.Scheme,
		Datacenter: cfg.Datacenter,
		Token:      token,
		Transport:  tr,
		HttpClient: &http.Client{Transport: tr},
	})
	if err != nil {
		return nil, fmt.Errorf("consul: client for %s: %w", cfg.Address, err)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	leader, err := ac.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(pctx))
	if err == nil && leader == "" {
		err = errors.New("the agent knows no Consul leader")
	}
	if err != nil {
		tr.CloseIdleConnections()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("consul: no answer from %s://%s within %v: %w", cfg.Scheme, cfg.Address, cfg.RequestTimeout, friendly(err, cfg.Prefix))
	}
	c := NewFromClient(ac, cfg.Prefix, cfg.RequestTimeout, WithLogger(cfg.Logger))
	c.transport = tr
	return c, nil
}

// ClientOption adjusts a Client made by NewFromClient.
type ClientOption func(*Client)

// WithLogger sets the logger of watch notes (the default discards).
func WithLogger(l *slog.Logger) ClientOption {
	return func(c *Client) {
		if l != nil {
			c.log = l
		}
	}
}

// NewFromClient uses a ready *api.Client (its address, datacenter, token
// and TLS are what it was built with); Close will not close its
// connections. An empty prefix means DefaultPrefix, a requestTimeout of
// zero or less DefaultRequestTimeout.
func NewFromClient(cli *api.Client, prefix string, requestTimeout time.Duration, opts ...ClientOption) *Client {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if requestTimeout <= 0 {
		requestTimeout = DefaultRequestTimeout
	}
	c := &Client{api: cli, prefix: prefix, timeout: requestTimeout, log: slog.New(slog.DiscardHandler), states: map[string]*keyState{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Close closes the idle connections of a client New made.
func (c *Client) Close() error {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	return nil
}

// Lock returns the Backend for the lock named name (key prefix + name).
func (c *Client) Lock(name string) *Backend {
	return &Backend{c: c, name: name, key: c.prefix + name}
}

// Backend is one lock on Consul KV.
type Backend struct {
	c    *Client
	name string
	key  string
	// seen is the last record decoded: its version, lease and when this
	// process first saw that version, for the WaitTime of blocking queries.
	seenMu sync.Mutex
	seen   struct {
		ver   elector.Version
		lease time.Duration
		at    time.Time
	}
	issued issued // versions handed out since the store last went back in time
}

var (
	_ elector.Backend = (*Backend)(nil)
	_ elector.Watcher = (*Backend)(nil)
)

// Describe names the key.
func (b *Backend) Describe() string { return "consul key " + b.key }

// Key is the lock's Consul key: prefix + name (to inspect or delete it with
// consul kv).
func (b *Backend) Key() string { return b.key }

func (b *Backend) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.c.timeout)
}

func (b *Backend) decode(p *api.KVPair) (elector.Record, elector.Version, error) {
	r, err := elector.DecodeRecord(p.Value)
	if err != nil {
		return elector.Record{}, "", fmt.Errorf("consul: key %s (index %d): %w", b.key, p.ModifyIndex, err)
	}
	v := version(p.ModifyIndex)
	b.seenMu.Lock()
	if b.seen.ver != v {
		b.seen.ver, b.seen.lease, b.seen.at = v, r.LeaseDuration, time.Now()
	}
	b.seenMu.Unlock()
	return r, v, nil
}

func version(i uint64) elector.Version { return elector.Version(strconv.FormatUint(i, 10)) }

// parseVersion returns the ModifyIndex a Version stands for: a positive
// decimal written as version writes it, or false.
func parseVersion(v elector.Version) (uint64, bool) {
	i, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil || i == 0 || version(i) != v {
		return 0, false
	}
	return i, true
}

// consistent is a consistent read bounded by ctx.
func consistent(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx)
}

// permission reports whether an error or a transaction error text is
// Consul refusing the token.
func permission(s string) bool {
	l := strings.ToLower(s)
	return strings.Contains(l, "permission denied") || strings.Contains(l, "acl not found")
}

// ErrPermission is wrapped by errors where Consul refused the ACL token (no
// token, a read-only one, an unknown one).
var ErrPermission = errors.New("permission denied")

// friendly names the permission failures plainly.
func friendly(err error, prefix string) error {
	var se api.StatusError
	if (errors.As(err, &se) && (se.Code == http.StatusForbidden || se.Code == http.StatusUnauthorized)) || permission(err.Error()) {
		return fmt.Errorf("%w: the ACL token needs key read and write on prefix %q (consul.token_file): %v", ErrPermission, prefix, err)
	}
	return err
}

func (b *Backend) fail(op string, err error) error {
	b.c.fails.Add(1)
	return fmt.Errorf("consul: %s %s: %w", op, b.key, friendly(err, b.c.prefix))
}

// Get reads the record (a consistent read).
func (b *Backend) Get(ctx context.Context) (elector.Record, elector.Version, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	s := b.c.state(b.key)
	floor := s.floor()
	p, meta, err := b.c.api.KV().Get(b.key, consistent(ctx))
	if err != nil {
		return elector.Record{}, "", b.fail("get", err)
	}
	b.observe(s, floor, meta.LastIndex, p, false)
	if p == nil {
		return elector.Record{}, "", fmt.Errorf("consul: key %s: %w", b.key, elector.ErrNotFound)
	}
	return b.handOut(s, p)
}

// handOut decodes p and records its version as handed out.
func (b *Backend) handOut(s *keyState, p *api.KVPair) (elector.Record, elector.Version, error) {
	r, v, err := b.decode(p)
	if err == nil {
		b.handOutVersion(s, p.ModifyIndex)
	}
	return r, v, err
}

// cas writes r at the key if its ModifyIndex is index (0: if the key does
// not exist), in a transaction that returns the new ModifyIndex. ok is
// false when Consul refused the CAS.
func (b *Backend) cas(ctx context.Context, op string, r elector.Record, index uint64) (v elector.Version, ok bool, err error) {
	value, err := elector.MarshalRecord(r)
	if err != nil {
		return "", false, fmt.Errorf("consul: %s %s: %w", op, b.key, err)
	}
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	s := b.c.state(b.key)
	floor := s.floor()
	ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: b.key, Value: value, Index: index}}}
	ok, resp, _, err := b.c.api.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return "", false, b.fail(op, err)
	}
	if !ok {
		var whats []string
		for _, e := range resp.Errors {
			whats = append(whats, e.What)
		}
		if what := strings.Join(whats, "; "); permission(what) {
			return "", false, b.fail(op, errors.New(what))
		}
		return "", false, nil
	}
	if len(resp.Results) != 1 || resp.Results[0].KV == nil || resp.Results[0].KV.ModifyIndex == 0 {
		return "", false, fmt.Errorf("consul: %s %s: the transaction answered no ModifyIndex", op, b.key)
	}
	kv := resp.Results[0].KV
	if kv.ModifyIndex == index {
		// The value written was the value stored: Consul leaves such a key
		// (and its ModifyIndex) as it was.
		b.observe(s, floor, kv.ModifyIndex, nil, false)
		b.handOutVersion(s, kv.ModifyIndex)
		return version(kv.ModifyIndex), true, nil
	}
	if kv.ModifyIndex <= floor && index != 0 {
		// The write landed at an index this Client had seen already: the
		// store forgot, and the record the CAS matched is not the one read.
		// The write is done; it is not reported as a success. (A create
		// matched no record: it stands, the store's going back is logged.)
		b.observe(s, floor, kv.ModifyIndex, &api.KVPair{ModifyIndex: kv.ModifyIndex, CreateIndex: kv.CreateIndex, Value: value}, true)
		return "", false, fmt.Errorf("consul: %s %s at index %d: the write landed at index %d, not above %d seen before: the store went back in time: %w",
			op, b.key, index, kv.ModifyIndex, floor, elector.ErrConflict)
	}
	b.observe(s, floor, kv.ModifyIndex, &api.KVPair{ModifyIndex: kv.ModifyIndex, CreateIndex: kv.CreateIndex, Value: value}, true)
	b.handOutVersion(s, kv.ModifyIndex)
	return version(kv.ModifyIndex), true, nil
}

// Create writes the record if the key does not exist (CAS with index 0).
func (b *Backend) Create(ctx context.Context, r elector.Record) (elector.Version, error) {
	v, ok, err := b.cas(ctx, "create", r, 0)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("consul: create %s: %w", b.key, elector.ErrConflict)
	}
	return v, nil
}

// Update writes the record if the key's ModifyIndex is still v. A refused
// CAS is ErrConflict, or ErrNotFound if the key is gone (told by a
// consistent read). A v that is not a ModifyIndex is ErrConflict without a
// request.
func (b *Backend) Update(ctx context.Context, r elector.Record, v elector.Version) (elector.Version, error) {
	index, valid := parseVersion(v)
	if !valid {
		return "", fmt.Errorf("consul: update %s: version %q is not a Consul ModifyIndex: %w", b.key, v, elector.ErrConflict)
	}
	s := b.c.state(b.key)
	if b.void(s, index) {
		return "", fmt.Errorf("consul: update %s: index %d was read before the store went back in time: %w", b.key, index, elector.ErrConflict)
	}
	nv, ok, err := b.cas(ctx, "update", r, index)
	if err != nil {
		return "", err
	}
	if ok {
		return nv, nil
	}
	gctx, cancel := b.ctx(ctx)
	defer cancel()
	floor := s.floor()
	p, meta, err := b.c.api.KV().Get(b.key, consistent(gctx))
	if err == nil {
		b.observe(s, floor, meta.LastIndex, p, false)
	}
	if err == nil && p == nil {
		return "", fmt.Errorf("consul: update %s: %w", b.key, elector.ErrNotFound)
	}
	return "", fmt.Errorf("consul: update %s at index %d: %w", b.key, index, elector.ErrConflict)
}

// minWatchWait is the shortest WaitTime: a lease that has run out already
// does not make the watch spin.
const minWatchWait = 250 * time.Millisecond

// waitTime is the WaitTime of a blocking query past version v: shorter
// than what is left of the lease of v's record as this process saw it
// (Consul adds up to 1/16 of jitter), or of the record's lease, or of ctx;
// DefaultWatchWait when nothing is known; within [minWatchWait,
// MaxWatchWait].
func (b *Backend) waitTime(ctx context.Context, v elector.Version) time.Duration {
	w := DefaultWatchWait
	b.seenMu.Lock()
	if b.seen.lease > 0 {
		w = b.seen.lease
		if b.seen.ver == v {
			w = b.seen.lease - time.Since(b.seen.at)
		}
	}
	b.seenMu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		w = min(w, time.Until(dl))
	}
	return max(min(w*16/17, MaxWatchWait), minWatchWait)
}

// Watch returns once the key's state is newer than version v: a record with
// a greater ModifyIndex, or ErrNotFound once the key is missing. It sends
// one consistent blocking query at a time (WaitIndex = the last index seen,
// WaitTime shorter than the lease left), so a follower sends one request per
// change of the record and none while it does not change. A query that
// returns without a change is no event. It never answers with a ModifyIndex
// at or below v, unless v is void: handed out before the store went back in
// time (see keyState); then it answers the present state at once.
//
// Indexes going backwards: as Consul's documentation of blocking queries
// asks, an index lower than the one the query waited past starts the
// blocking again from 0. The first query of a Watch does not block when v
// is void or when a request of this Client failed since its last watch (the
// agent may have restarted without its data: waiting past an index the
// store has not reached again would hang until WaitTime); the answer's index
// going below what was seen before is then logged, once, as the store going
// back in time.
func (b *Backend) Watch(ctx context.Context, v elector.Version) (elector.Record, elector.Version, error) {
	after, _ := parseVersion(v)
	s := b.c.state(b.key)
	index := after
	s.mu.Lock()
	if fails := b.c.fails.Load(); fails != s.fails {
		s.fails, index = fails, 0
	}
	s.mu.Unlock()
	if b.void(s, after) {
		index = 0
	} else {
		s.raise(after) // v is an index the store has reached
	}
	quick := 0 // unchanged answers in a row that came back at once
	for {
		if err := ctx.Err(); err != nil {
			return elector.Record{}, "", fmt.Errorf("consul: watch %s: %w", b.key, err)
		}
		wait := b.waitTime(ctx, v)
		qctx, cancel := context.WithTimeout(ctx, wait+wait/16+b.c.timeout)
		q := (&api.QueryOptions{RequireConsistent: true, WaitIndex: index, WaitTime: wait}).WithContext(qctx)
		floor := s.floor()
		sent := time.Now()
		p, meta, err := b.c.api.KV().Get(b.key, q)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return elector.Record{}, "", fmt.Errorf("consul: watch %s: %w", b.key, ctx.Err())
			}
			return elector.Record{}, "", b.fail("watch", err)
		}
		b.observe(s, floor, meta.LastIndex, p, false)
		if p == nil {
			return elector.Record{}, "", fmt.Errorf("consul: key %s: %w", b.key, elector.ErrNotFound)
		}
		if p.ModifyIndex > after || b.void(s, after) {
			return b.handOut(s, p)
		}
		// No change: block again from the index Consul answered.
		next := meta.LastIndex
		switch {
		case next < index:
			b.c.log.Info("consul: watch: the index went backwards; starting again from 0", "key", b.key, "was", index, "now", next)
			next = 0
		case next == 0:
			next = 1 // an index of 0 would not block
		}
		if time.Since(sent) < 5*time.Millisecond && next <= index {
			// Consul answered at once without a change: do not spin.
			if quick++; quick > 1 {
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		} else {
			quick = 0
		}
		index = next
	}
}

// PutRaw stores raw bytes at the lock's key, bypassing the encoding (tests
// and repairs).
func (c *Client) PutRaw(ctx context.Context, name string, raw []byte) error {
	_, err := c.api.KV().Put(&api.KVPair{Key: c.prefix + name, Value: raw}, (&api.WriteOptions{}).WithContext(ctx))
	return err
}

// Raw returns the bytes stored at the lock's key and its ModifyIndex.
func (c *Client) Raw(ctx context.Context, name string) ([]byte, uint64, error) {
	p, _, err := c.api.KV().Get(c.prefix+name, consistent(ctx))
	if err != nil {
		return nil, 0, err
	}
	if p == nil {
		return nil, 0, elector.ErrNotFound
	}
	return p.Value, p.ModifyIndex, nil
}
