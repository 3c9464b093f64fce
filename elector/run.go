package elector

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
)

// Callbacks are the hooks a program gives the Elector, in the shape of
// client-go's LeaderCallbacks. They are called from Run's goroutine, in the
// order things happen, except OnStartedLeading which gets a goroutine of its
// own because it runs for as long as the leadership lasts.
type Callbacks struct {
	// OnStartedLeading runs the leader's work. Its context is cancelled the
	// moment leadership is lost or Run is stopped; term is the fencing token
	// to attach to every write the leader makes. Required.
	OnStartedLeading func(ctx context.Context, term int64)
	// OnStoppedLeading is called once leadership has ended, after the
	// context of OnStartedLeading was cancelled. Required.
	OnStoppedLeading func()
	// OnNewLeader is called when the observed holder changes, including to
	// this candidate and to "" (released or no record). Optional; it must
	// return quickly.
	OnNewLeader func(identity string)
	// OnRenewed is called after every acknowledged write that made or kept
	// this candidate the leader (before OnStartedLeading for the acquiring
	// one), with the instant on the Elector's clock until which the
	// leadership is valid: the send time of that write + RenewDeadline. A
	// watchdog in another process can stop the leader's work at that
	// instant even if this process is paused. Optional; it must return
	// quickly.
	OnRenewed func(term int64, validUntil time.Time)
}

// Elector campaigns for one lock on one Backend. Create it with New and start
// it with Run.
type Elector struct {
	cfg     Config
	backend Backend
	watcher Watcher
	cb      Callbacks
	clk     clock.Clock
	log     *slog.Logger
	rng     Rand

	running   atomic.Bool
	lingering chan struct{} // leader work a finished Run left running

	obs Observer

	mu      sync.Mutex
	term    int64 // non-zero while leading
	leader  string
	renewed time.Time // last successful write while leading

	parkHook func(parked bool) // tests: called around every wait
}

// Option changes how an Elector is built.
type Option func(*Elector)

// WithClock makes the Elector sleep and measure time on c (a mock clock in
// tests). The default is the real clock.
func WithClock(c clock.Clock) Option { return func(e *Elector) { e.clk = c } }

// WithLogger sets the structured logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(e *Elector) { e.log = l } }

// Observer is told what an Elector does, for metrics and health checks. Its
// methods are called on Run's goroutine, in order, and must not block.
type Observer interface {
	// Call reports a finished backend call. Renewal marks a leader's
	// renewal (an update while leading, not the release).
	Call(op Op, renewal, release bool, took time.Duration, err error)
	// Leading reports a start (with the term) or an end of leadership.
	Leading(leading bool, term int64)
}

// WithObserver makes the Elector report to o.
func WithObserver(o Observer) Option { return func(e *Elector) { e.obs = o } }

// WithRand sets the source of poll jitter; the default is seeded randomly.
func WithRand(r Rand) Option { return func(e *Elector) { e.rng = r } }

// New checks cfg, the backend and the callbacks and returns an Elector. If
// the backend implements Watcher, followers wait on it instead of polling.
func New(cfg Config, b Backend, cb Callbacks, opts ...Option) (*Elector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil || isNilPointer(b) {
		return nil, fmt.Errorf("%w: nil Backend", ErrInvalidConfig)
	}
	if cb.OnStartedLeading == nil {
		return nil, fmt.Errorf("%w: Callbacks.OnStartedLeading is nil", ErrInvalidConfig)
	}
	if cb.OnStoppedLeading == nil {
		return nil, fmt.Errorf("%w: Callbacks.OnStoppedLeading is nil", ErrInvalidConfig)
	}
	if cfg.Instance == "" {
		var id [8]byte
		crand.Read(id[:])
		cfg.Instance = hex.EncodeToString(id[:])
	}
	e := &Elector{cfg: cfg, backend: b, cb: cb}
	e.watcher, _ = b.(Watcher)
	for _, o := range opts {
		o(e)
	}
	if e.clk == nil {
		e.clk = clock.New()
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.rng == nil {
		e.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	e.log = e.log.With("identity", cfg.Identity, "instance", cfg.Instance, "store", b.Describe())
	return e, nil
}

func isNilPointer(v any) bool {
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return r.IsNil()
	}
	return false
}

// IsLeader reports whether this candidate currently leads.
func (e *Elector) IsLeader() bool { return e.Term() != 0 }

// Term returns the fencing token of the current leadership, or 0 when this
// candidate does not lead.
func (e *Elector) Term() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.term
}

// LastRenewal returns when this candidate last wrote the record
// successfully while leading (zero if it does not lead). A leader whose
// last renewal is older than RenewDeadline should have stopped: health
// checks use it to catch a stuck process.
func (e *Elector) LastRenewal() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.term == 0 {
		return time.Time{}
	}
	return e.renewed
}

// Config returns the configuration the Elector runs with, including the
// Instance New chose when the caller left it empty.
func (e *Elector) Config() Config { return e.cfg }

// Leader returns the holder last observed in the record ("" if none).
func (e *Elector) Leader() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leader
}

// Run campaigns until ctx is cancelled. If a previous Run of this Elector
// left leader work running (it ignored its context past RenewDeadline),
// Run first waits for that work to return. While leading it renews every
// RetryPeriod and steps down when RenewDeadline passes without a successful
// write; after losing leadership it waits for OnStartedLeading to return and
// campaigns again. When ctx is cancelled while leading, it cancels the
// leader's context, waits (up to RenewDeadline) for OnStartedLeading to
// return and, with ReleaseOnCancel, releases the lock. Backend errors are
// logged and retried, never returned. Run returns nil after a clean stop.
func (e *Elector) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("elector: Run called twice")
	}
	defer e.running.Store(false)
	m, err := NewMachine(e.cfg, e.rng, e.watcher != nil)
	if err != nil {
		return err
	}
	// Leader work that outlived the previous Run (it ignored its context)
	// must finish before this candidate may lead again.
	if l := e.lingering; l != nil {
		select {
		case <-l:
			e.lingering = nil
		case <-ctx.Done():
			return nil
		}
	}
	d := driver{e: e, m: m, start: e.clk.Now()}
	err = d.loop(ctx)
	if d.leadDone != nil {
		e.lingering = d.leadDone
	}
	return err
}

// driver is the state of one Run: the Machine and the leader's goroutine.
type driver struct {
	e     *Elector
	m     *Machine
	start time.Time

	leadCancel context.CancelFunc
	leadDone   chan struct{}
}

func (d *driver) now() Now {
	t := d.e.clk.Now()
	return Now{Mono: t.Sub(d.start), Wall: t}
}

func (d *driver) loop(ctx context.Context) error {
	out := d.m.Start(d.now())
	for {
		if !d.transitions(ctx, out) && out.Call.Release {
			// The leader's work did not finish in time: do not release a
			// lock whose work may still be running.
			out = d.m.Result(d.now(), Record{}, "", errors.New("release skipped"))
		}
		switch {
		case out.Done:
			return nil
		case out.Call.Op != OpNone && !out.Call.Release && ctx.Err() != nil:
			// Stopping: the call is not sent. A leader stops and releases.
			out = d.m.Stop(d.now())
		case out.Call.Op != OpNone:
			if out.Call.Release {
				// The release may have waited for the leader's work: give
				// it its full time from now.
				out.Call.Deadline = d.now().Mono + d.e.cfg.RenewDeadline
			}
			_, leading := d.m.Leading()
			sent := d.e.clk.Now()
			rec, ver, err := d.call(ctx, out.Call)
			if o := d.e.obs; o != nil {
				o.Call(out.Call.Op, leading && out.Call.Op == OpUpdate && !out.Call.Release, out.Call.Release, d.e.clk.Since(sent), err)
			}
			if err == nil && out.Call.Op != OpGet && !out.Call.Release {
				d.e.mu.Lock()
				d.e.renewed = sent
				d.e.mu.Unlock()
			}
			out = d.m.Result(d.now(), rec, ver, err)
		default:
			out = d.wait(ctx, out.Wait)
		}
	}
}

// transitions applies the leadership changes of out. It returns false when a
// release must be skipped because the leader's work is still running.
func (d *driver) transitions(ctx context.Context, out Output) bool {
	e := d.e
	ok := true
	switch out.Problem {
	case ProblemNone:
	case ProblemSharedIdentity:
		e.log.Warn(out.Problem.String())
	default:
		e.log.Error(out.Problem.String())
	}
	if out.Renewed && e.cb.OnRenewed != nil {
		term := out.Term
		if !out.Started {
			term, _ = d.m.Leading()
		}
		e.cb.OnRenewed(term, d.start.Add(out.ValidUntil))
	}
	if out.Stopped {
		e.mu.Lock()
		e.term = 0
		e.mu.Unlock()
		e.log.Info("stopped leading", "reason", out.Reason)
		if e.obs != nil {
			e.obs.Leading(false, 0)
		}
		if d.leadCancel != nil {
			d.leadCancel()
		}
		e.cb.OnStoppedLeading()
		ok = d.awaitLeaderWork(ctx)
	}
	if out.Started {
		e.mu.Lock()
		e.term = out.Term
		if out.LeaderChanged {
			// Leader() agrees with IsLeader() by the time the work starts.
			e.leader = out.Leader
		}
		e.mu.Unlock()
		e.log.Info("started leading", "term", out.Term)
		if e.obs != nil {
			e.obs.Leading(true, out.Term)
		}
		leadCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		d.leadCancel, d.leadDone = cancel, done
		go func(term int64) {
			defer close(done)
			e.cb.OnStartedLeading(leadCtx, term)
		}(out.Term)
	}
	if out.LeaderChanged {
		e.mu.Lock()
		e.leader = out.Leader
		e.mu.Unlock()
		switch out.Leader {
		case e.cfg.Identity:
		case "":
			e.log.Debug("no leader")
		default:
			e.log.Info("new leader observed", "leader", out.Leader)
		}
		if e.cb.OnNewLeader != nil {
			e.cb.OnNewLeader(out.Leader)
		}
	}
	return ok
}

// awaitLeaderWork waits for OnStartedLeading to return. When Run is stopping
// the wait is bounded by RenewDeadline (false if it did not return);
// otherwise it waits as long as it takes, warning every RenewDeadline, so
// that a candidate never runs two leaderships' work at once.
func (d *driver) awaitLeaderWork(ctx context.Context) bool {
	if d.leadDone == nil {
		return true
	}
	bounded := ctx.Err() != nil
	for {
		t := d.e.clk.Timer(d.e.cfg.RenewDeadline)
		stopping := ctx.Done()
		if bounded {
			stopping = nil
		}
		if d.e.parkHook != nil {
			d.e.parkHook(true)
		}
		var which int
		select {
		case <-d.leadDone:
			which = 0
		case <-stopping:
			which = 1
		case <-t.C:
			which = 2
		}
		if d.e.parkHook != nil {
			d.e.parkHook(false)
		}
		switch which {
		case 0:
			t.Stop()
			d.leadDone, d.leadCancel = nil, nil
			return true
		case 1:
			// Run is being stopped: from now on the wait is bounded.
			t.Stop()
			bounded = true
		case 2:
			if bounded {
				d.e.log.Error("OnStartedLeading did not return after its context was cancelled; not releasing the lock",
					"waited", d.e.cfg.RenewDeadline)
				return false
			}
			d.e.log.Warn("OnStartedLeading has not returned after losing leadership; not campaigning until it does")
		}
	}
}

// call performs c on the backend with c's deadline. Its context is not
// cancelled with Run's: a write in flight completes or times out.
func (d *driver) call(ctx context.Context, c Call) (Record, Version, error) {
	e := d.e
	left := c.Deadline - d.now().Mono
	if left <= 0 {
		// The driver was held up (callbacks) past the call's deadline: a
		// write sent now could land after the Machine stopped counting on
		// it. Do not send it.
		return Record{}, "", fmt.Errorf("elector: %s on %s: deadline passed before it was sent: %w", c.Op, e.backend.Describe(), context.DeadlineExceeded)
	}
	cctx, cancel := e.clk.WithTimeout(context.WithoutCancel(ctx), left)
	defer cancel()
	// The backend runs the call on its own goroutine so that the driver
	// gives up at the deadline even if the backend ignores its context:
	// a leader must stop on time however its store behaves.
	type result struct {
		rec Record
		ver Version
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		switch c.Op {
		case OpGet:
			r.rec, r.ver, r.err = e.backend.Get(cctx)
		case OpCreate:
			r.ver, r.err = e.backend.Create(cctx, c.Record)
		case OpUpdate:
			r.ver, r.err = e.backend.Update(cctx, c.Record, c.Version)
		}
		done <- r
	}()
	timer := e.clk.Timer(max(left, 0))
	defer timer.Stop()
	var r result
	select {
	case r = <-done:
	case <-timer.C:
		r.err = fmt.Errorf("elector: %s on %s: no answer by the deadline: %w", c.Op, e.backend.Describe(), context.DeadlineExceeded)
	}
	rec, ver, err := r.rec, r.ver, r.err
	switch {
	case err == nil:
		if c.Release {
			e.log.Info("released the lock", "term", c.Record.Term)
		}
	case errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound):
		e.log.Debug("backend call", "op", c.Op.String(), "err", err)
	default:
		e.log.Warn("backend call failed", "op", c.Op.String(), "release", c.Release, "err", err)
	}
	return rec, ver, err
}

type watchResult struct {
	rec Record
	ver Version
	err error
}

// wait sleeps until w.Until, a watch event or ctx's cancellation, and feeds
// what happened to the Machine.
func (d *driver) wait(ctx context.Context, w Wait) Output {
	e := d.e
	if ctx.Err() != nil {
		return d.m.Stop(d.now())
	}
	left := w.Until - d.now().Mono
	if left <= 0 {
		return d.m.Tick(d.now())
	}
	timer := e.clk.Timer(left)
	defer timer.Stop()
	var events chan watchResult
	if w.Watch && e.watcher != nil {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		events = make(chan watchResult, 1)
		// Not waited for: a Watcher that ignores its context leaks this
		// goroutine, as a backend call that ignores it does.
		go func() {
			rec, ver, err := e.watcher.Watch(wctx, w.Version)
			events <- watchResult{rec, ver, err}
		}()
	}
	if e.parkHook != nil {
		e.parkHook(true)
		defer e.parkHook(false)
	}
	select {
	case <-ctx.Done():
		return d.m.Stop(d.now())
	case <-timer.C:
		return d.m.Tick(d.now())
	case r := <-events:
		if ctx.Err() != nil {
			return d.m.Stop(d.now())
		}
		if r.err != nil && !errors.Is(r.err, ErrNotFound) {
			e.log.Warn("watch failed; polling until the next successful read", "err", r.err)
		}
		return d.m.Watched(d.now(), r.rec, r.ver, r.err)
	}
}
