// Package memory is an in-process lock store: linearizable compare-and-swap
// on any number of named locks, a store-wide revision counter, and a watch.
//
// It is a backend in its own right (for tests, demos and single-process
// programs) and the store the simulator runs against. Test hooks delay
// calls, fail the next N calls and cut a client off from the store; others
// make it forget, as real stores do: Delete (a record deleted by hand),
// Wipe (restarted without its data) and Snapshot/Restore (restored from an
// older backup).
package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/leasehold-go/leasehold/elector"
)

// ErrInjected is the error returned by calls failed with Store.FailNext.
var ErrInjected = errors.New("memory: injected failure")

// Counts are the calls one client made, by kind.
type Counts struct {
	Get, Create, Update, Watch int64
}

// Store holds the locks. Records are kept as values (no encoding on the hot
// path); Raw shows them in the stored format of key-value backends. The zero
// value is not usable; call New.
type Store struct {
	clk clock.Clock

	mu       sync.Mutex
	rev      int64
	cells    map[string]*cell
	clients  map[string]*client
	latency  time.Duration
	failNext int
	failErr  error

	// Accounting that lets tests know when nothing is moving: calls being
	// served, watchers woken but not yet returned, calls held back by a
	// partition or latency.
	busy    int
	blocked int
}

// cell is one lock. The record is kept decoded; raw holds bytes planted by
// PlantRaw, which take its place until the next write.
type cell struct {
	exists  bool
	rec     elector.Record
	raw     []byte
	rev     int64
	waiters []*waiter
}

type waiter struct {
	ch    chan struct{}
	woken bool
}

type client struct {
	cut         bool
	loseReplies int // calls still to be applied with their reply lost
	counts      Counts
}

// Option configures a Store.
type Option func(*Store)

// WithClock makes latency sleep on c (a mock clock in tests).
func WithClock(c clock.Clock) Option { return func(s *Store) { s.clk = c } }

// New returns an empty store.
func New(opts ...Option) *Store {
	s := &Store{cells: map[string]*cell{}, clients: map[string]*client{}}
	for _, o := range opts {
		o(s)
	}
	if s.clk == nil {
		s.clk = clock.New()
	}
	return s
}

// Backend returns the handle through which the client named client uses the
// lock named lock. Hooks that act on clients (Partition, Counts) use that
// name.
func (s *Store) Backend(lock, client string) *Backend {
	return &Backend{s: s, lock: lock, client: client}
}

// Config is the configuration of the memory backend, the `memory:` block of
// the leasehold config file: it has no keys, since the store lives inside
// one process. It exists so that memory is configured and opened like every
// other backend.
type Config struct{}

// DefaultConfig returns the (empty) configuration.
func DefaultConfig() Config { return Config{} }

// Validate accepts every Config: there is nothing to get wrong.
func (Config) Validate() error { return nil }

// Open returns the lock named lock in a new, private Store (its client is
// named after the lock) and a closer that does nothing: the shape every
// backend's Open has. No other process, nor another Open, sees the lock, so
// it logs that at WARN on log (nil: nowhere).
func Open(ctx context.Context, cfg Config, lock string, log *slog.Logger) (elector.Backend, func() error, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Warn("the memory backend lives inside this process: no other process sees the lock")
	return New().Backend(lock, lock), func() error { return nil }, nil
}

// SetLatency delays every call by d on the store's clock (0 turns it off).
func (s *Store) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// FailNext makes the next n calls, from any client, fail with err (ErrInjected
// if err is nil) without touching the store.
func (s *Store) FailNext(n int, err error) {
	if err == nil {
		err = ErrInjected
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failErr = n, err
}

// Partition cuts client off: its calls get no answer until their context is
// done, as if requests or replies were lost, and its watches deliver nothing.
func (s *Store) Partition(client string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client(client).cut = true
}

// Heal reconnects a client cut off by Partition. Its watches look at the
// store again at once.
func (s *Store) Heal(client string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client(client).cut = false
	for _, c := range s.cells {
		s.wake(c)
	}
}

// LoseReplies makes the next n calls of client take effect in the store
// while their replies are lost: the caller hears nothing until its context
// is done, as when a connection drops after the request went through.
func (s *Store) LoseReplies(client string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client(client).loseReplies = n
}

// Counts returns the calls client has made so far.
func (s *Store) Counts(client string) Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client(client).counts
}

// PlantRaw stores raw bytes as the record of lock, bypassing the encoding,
// so tests can check how undecodable records are handled.
func (s *Store) PlantRaw(lock string, raw []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cell(lock)
	s.write(c, elector.Record{})
	c.raw = append([]byte{}, raw...)
}

// Delete removes the record of lock, as an operator deleting the key
// would: Get and Update then find no record, and watchers waiting for a
// change see it gone. The store's revision moves on, so a record created
// afterwards never reuses an old version.
func (s *Store) Delete(lock string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cell(lock)
	if !c.exists {
		return
	}
	s.rev++
	c.exists, c.rec, c.raw, c.rev = false, elector.Record{}, nil, s.rev
	s.wake(c)
}

// Wipe forgets every record and restarts the revision counter, as an etcd
// or a Consul started without its data does: versions handed out before
// are handed out again, for other writes. Watchers waiting for a change of
// a record see it gone.
func (s *Store) Wipe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev = 0
	for _, c := range s.cells {
		c.exists, c.rec, c.raw, c.rev = false, elector.Record{}, nil, 0
		s.wake(c)
	}
}

// Snapshot is the state of a Store at one instant: every record and the
// revision counter (Store.Snapshot, Store.Restore).
type Snapshot struct {
	rev   int64
	cells map[string]cellState
}

type cellState struct {
	exists bool
	rec    elector.Record
	raw    []byte
	rev    int64
}

// Rev is the store's revision counter when the snapshot was taken.
func (sn *Snapshot) Rev() int64 { return sn.rev }

// Snapshot returns the store's records and revision counter, for Restore.
func (s *Store) Snapshot() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := &Snapshot{rev: s.rev, cells: make(map[string]cellState, len(s.cells))}
	for lock, c := range s.cells {
		st := cellState{exists: c.exists, rec: c.rec, rev: c.rev}
		st.rec.Jobs = elector.CloneJobs(c.rec.Jobs)
		if c.raw != nil {
			st.raw = append([]byte(nil), c.raw...)
		}
		sn.cells[lock] = st
	}
	return sn
}

// Restore puts the store back to sn, records and revision counter both, as
// restoring an older backup does: the revisions written since sn are
// handed out again, for other writes (the ABA case a version alone cannot
// tell). Every watcher looks at the store again: one holding a version
// from the forgotten history sees the restored record (or none) at once.
// A nil sn is the empty store New returns.
func (s *Store) Restore(sn *Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sn == nil {
		sn = &Snapshot{}
	}
	s.rev = sn.rev
	for lock, st := range sn.cells {
		if _, ok := s.cells[lock]; !ok && st.exists {
			s.cells[lock] = &cell{}
		}
	}
	for lock, c := range s.cells {
		st := sn.cells[lock]
		c.exists, c.rec, c.raw, c.rev = st.exists, st.rec, nil, st.rev
		c.rec.Jobs = elector.CloneJobs(st.rec.Jobs)
		if st.raw != nil {
			c.raw = append([]byte(nil), st.raw...)
		}
		s.wake(c)
	}
}

// Raw returns the stored bytes of lock and whether a record exists.
func (s *Store) Raw(lock string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cell(lock)
	switch {
	case !c.exists:
		return nil, false
	case c.raw != nil:
		return append([]byte(nil), c.raw...), true
	}
	return elector.EncodeRecord(c.rec), true
}

// Quiet reports that no call is being served and no woken watcher is yet to
// return; Blocked counts calls held back by a partition or latency. Tests
// driving a mock clock use both to know when everything waits on time.
func (s *Store) Quiet() (quiet bool, blocked int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy == 0, s.blocked
}

func (s *Store) client(name string) *client {
	c := s.clients[name]
	if c == nil {
		c = &client{}
		s.clients[name] = c
	}
	return c
}

func (s *Store) cell(lock string) *cell {
	c := s.cells[lock]
	if c == nil {
		c = &cell{}
		s.cells[lock] = c
	}
	return c
}

// write stores r and wakes the watchers. s.mu must be held.
func (s *Store) write(c *cell, r elector.Record) elector.Version {
	s.rev++
	c.exists, c.rec, c.raw, c.rev = true, r, nil, s.rev
	s.wake(c)
	return version(c.rev)
}

// wake releases the watchers of c to look again. s.mu must be held.
func (s *Store) wake(c *cell) {
	for _, w := range c.waiters {
		w.woken = true
		s.busy++
		close(w.ch)
	}
	c.waiters = nil
}

func version(rev int64) elector.Version { return elector.Version(strconv.FormatInt(rev, 10)) }

// enter counts a call and applies the hooks: injected failure, partition,
// latency. On success the caller must call s.leave. s.mu must not be held.
func (s *Store) enter(ctx context.Context, b *Backend, count func(*Counts)) error {
	s.mu.Lock()
	cl := s.client(b.client)
	count(&cl.counts)
	if err := ctx.Err(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("memory: lock %q: %w", b.lock, err)
	}
	if s.failNext > 0 {
		s.failNext--
		err := s.failErr
		s.mu.Unlock()
		return fmt.Errorf("memory: lock %q: %w", b.lock, err)
	}
	cut, latency := cl.cut, s.latency
	if cut || latency > 0 {
		s.blocked++
	} else {
		s.busy++
	}
	s.mu.Unlock()

	if cut || latency > 0 {
		var err error
		if cut {
			<-ctx.Done()
			err = fmt.Errorf("memory: lock %q: client %q is cut off: %w", b.lock, b.client, ctx.Err())
		} else {
			t := s.clk.Timer(latency)
			select {
			case <-ctx.Done():
				t.Stop()
				err = fmt.Errorf("memory: lock %q: %w", b.lock, ctx.Err())
			case <-t.C:
			}
		}
		s.mu.Lock()
		s.blocked--
		if err == nil {
			s.busy++
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

func (s *Store) leave() {
	s.mu.Lock()
	s.busy--
	s.mu.Unlock()
}

// reply is the last step of a call: if its client's replies are to be
// lost, the call waits for its context and fails, its effect kept.
func (s *Store) reply(ctx context.Context, b *Backend) error {
	s.mu.Lock()
	cl := s.client(b.client)
	if cl.loseReplies == 0 {
		s.mu.Unlock()
		return nil
	}
	cl.loseReplies--
	s.busy--
	s.blocked++
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.blocked--
	s.busy++
	s.mu.Unlock()
	return fmt.Errorf("memory: lock %q: reply lost: %w", b.lock, ctx.Err())
}

// Backend is one client's handle on one lock.
type Backend struct {
	s      *Store
	lock   string
	client string
}

var (
	_ elector.Backend = (*Backend)(nil)
	_ elector.Watcher = (*Backend)(nil)
)

// Describe names the lock.
func (b *Backend) Describe() string { return fmt.Sprintf("memory lock %q", b.lock) }

// read decodes the record of c. s.mu must be held.
func (b *Backend) read(c *cell) (elector.Record, elector.Version, error) {
	if !c.exists {
		return elector.Record{}, "", fmt.Errorf("memory: lock %q: %w", b.lock, elector.ErrNotFound)
	}
	if c.raw == nil {
		r := c.rec
		r.Jobs = elector.CloneJobs(r.Jobs) // the caller's to keep
		return r, version(c.rev), nil
	}
	r, err := elector.DecodeRecord(c.raw)
	if err != nil {
		return elector.Record{}, "", fmt.Errorf("memory: lock %q: %w", b.lock, err)
	}
	return r, version(c.rev), nil
}

// Get returns the record of the lock.
func (b *Backend) Get(ctx context.Context) (elector.Record, elector.Version, error) {
	if err := b.s.enter(ctx, b, func(c *Counts) { c.Get++ }); err != nil {
		return elector.Record{}, "", err
	}
	defer b.s.leave()
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	return b.read(b.s.cell(b.lock))
}

// Create stores r if the lock has no record. A record CheckRecord refuses
// (job entries out of bounds) is refused, naming the job.
func (b *Backend) Create(ctx context.Context, r elector.Record) (elector.Version, error) {
	if err := b.s.enter(ctx, b, func(c *Counts) { c.Create++ }); err != nil {
		return "", err
	}
	defer b.s.leave()
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	c := b.s.cell(b.lock)
	if c.exists {
		return "", fmt.Errorf("memory: create lock %q: %w", b.lock, elector.ErrConflict)
	}
	if err := elector.CheckRecord(r); err != nil {
		return "", fmt.Errorf("memory: create lock %q: %w", b.lock, err)
	}
	r.Jobs = elector.CloneJobs(r.Jobs)
	v := b.s.write(c, r)
	b.s.mu.Unlock()
	defer b.s.mu.Lock()
	if err := b.s.reply(ctx, b); err != nil {
		return "", err
	}
	return v, nil
}

// Update replaces the record if its version is still v. A record
// CheckRecord refuses is refused, naming the job.
func (b *Backend) Update(ctx context.Context, r elector.Record, v elector.Version) (elector.Version, error) {
	if err := b.s.enter(ctx, b, func(c *Counts) { c.Update++ }); err != nil {
		return "", err
	}
	defer b.s.leave()
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	c := b.s.cell(b.lock)
	switch {
	case !c.exists:
		return "", fmt.Errorf("memory: update lock %q: %w", b.lock, elector.ErrNotFound)
	case version(c.rev) != v:
		return "", fmt.Errorf("memory: update lock %q at version %s (stored %d): %w", b.lock, v, c.rev, elector.ErrConflict)
	}
	if err := elector.CheckRecord(r); err != nil {
		return "", fmt.Errorf("memory: update lock %q: %w", b.lock, err)
	}
	r.Jobs = elector.CloneJobs(r.Jobs)
	nv := b.s.write(c, r)
	b.s.mu.Unlock()
	defer b.s.mu.Lock()
	if err := b.s.reply(ctx, b); err != nil {
		return "", err
	}
	return nv, nil
}

// Watch waits until the lock's version differs from v and returns the new
// record. A client cut off by Partition sees nothing until ctx is done.
func (b *Backend) Watch(ctx context.Context, v elector.Version) (elector.Record, elector.Version, error) {
	if err := b.s.enter(ctx, b, func(c *Counts) { c.Watch++ }); err != nil {
		return elector.Record{}, "", err
	}
	s := b.s
	defer s.leave()
	s.mu.Lock()
	for {
		c := s.cell(b.lock)
		cut := s.client(b.client).cut
		if !cut && (c.exists || v != "") && (!c.exists || version(c.rev) != v) {
			r, ver, err := b.read(c)
			s.mu.Unlock()
			return r, ver, err
		}
		w := &waiter{ch: make(chan struct{})}
		c.waiters = append(c.waiters, w)
		s.busy-- // waiting on a change, not working
		s.mu.Unlock()
		select {
		case <-w.ch:
			// The writer counted us busy again.
			s.mu.Lock()
		case <-ctx.Done():
			s.mu.Lock()
			if !w.woken {
				s.busy++
				c.waiters = remove(c.waiters, w)
			}
			s.mu.Unlock()
			return elector.Record{}, "", fmt.Errorf("memory: watch lock %q: %w", b.lock, ctx.Err())
		}
	}
}

func remove(ws []*waiter, w *waiter) []*waiter {
	for i, x := range ws {
		if x == w {
			return append(ws[:i], ws[i+1:]...)
		}
	}
	return ws
}
