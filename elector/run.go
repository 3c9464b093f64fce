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
	renewed time.Time           // last successful write while leading
	jobs    map[string]JobState // the job entries last seen (shared: cloned on the way out)
	claimCh chan claimCall      // Claim and Done requests to the running driver; nil when Run is not running
	runEnd  chan struct{}       // closed when that Run has ended
}

// claimCall is a Claim or Done on its way to the driver, with where to
// answer.
type claimCall struct {
	ctx   context.Context // the caller's: a request whose caller gave up before it reached the Machine is not made
	req   ClaimRequest
	reply chan ClaimResult // buffered: the driver never waits on it
}

// Option changes how an Elector is built.
type Option func(*Elector)

// WithClock makes the Elector sleep and measure time on c (a mock clock in
// tests). The default is the real clock.
func WithClock(c clock.Clock) Option { return func(e *Elector) { e.clk = c } }

// WithLogger sets the structured logger. The default discards: a library
// logs only where its program asks it to (pass slog.Default() to log
// there).
func WithLogger(l *slog.Logger) Option { return func(e *Elector) { e.log = l } }

// Observer is told what an Elector does, for metrics and health checks. Its
// methods are called on Run's goroutine, in order, and must not block.
type Observer interface {
	// Call reports a finished backend call: what it was for, the store
	// operation, how long it took and its error.
	Call(kind Kind, op Op, took time.Duration, err error)
	// Leading reports a start (with the term) or an end of leadership
	// (with the reason).
	Leading(leading bool, term int64, reason StopReason)
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
		e.log = slog.New(slog.DiscardHandler)
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
	if r, ok := e.backend.(Remembering); ok && r.NeverForgets() {
		m.StoreNeverForgets()
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
	d := driver{e: e, m: m, start: e.clk.Now(), claims: make(chan claimCall), waiting: map[uint64]chan ClaimResult{}}
	end := make(chan struct{})
	e.mu.Lock()
	e.claimCh, e.runEnd = d.claims, end
	e.mu.Unlock()
	err = d.loop(ctx)
	e.mu.Lock()
	e.claimCh, e.runEnd = nil, nil
	e.mu.Unlock()
	close(end)
	for id, reply := range d.waiting {
		// The Machine answers every request before it is done; this is a
		// safety net, not a path.
		reply <- ClaimResult{Request: ClaimRequest{ID: id}, Outcome: ClaimNotLeader,
			Err: fmt.Errorf("elector: the campaign ended: %w", ErrNotLeader)}
	}
	if d.leadDone != nil {
		e.lingering = d.leadDone
	}
	return err
}

// Claim claims slot S of job for this candidate's leadership: it writes
// "slot S of job started, with my term" into the lock's record, by a
// compare-and-swap renewal (so the claim holds only if the lease was still
// this candidate's), and returns the term to run the slot with (its
// fencing token). Run the slot's work only when Claim returns a nil error.
//
// A slot is claimed once, by anyone, ever: Claim fails with
// ErrAlreadyClaimed when S is at or before the job's last claimed slot
// (whoever claimed it). It fails with ErrNotLeader when this candidate
// does not lead with a valid lease (or Run is not running), with
// ErrInvalidClaim when job is not a job name (ValidJobName), the slot
// cannot be stored or the record holds MaxJobs other jobs, and with
// ErrClaimFailed when the write failed, got no answer, or ctx ended first:
// the write may then have landed all the same, leaving S recorded as
// started with no run behind it (the same as a run cut short). A conflict
// also means this candidate may no longer lead, as with any renewal that
// conflicts. Slots are instants of the job's schedule, compared with each
// other only, never with a clock: the claim, not the time, decides who
// runs a slot. Claim is safe for concurrent use; requests are served in
// order, one write at a time. Call it from OnStartedLeading or any other
// goroutine, never from OnNewLeader, OnRenewed or OnStoppedLeading: they
// run on Run's goroutine, which answers claims.
func (e *Elector) Claim(ctx context.Context, job string, slot time.Time) (term int64, err error) {
	r, err := e.request(ctx, ClaimRequest{Job: job, Slot: slot})
	if err != nil {
		return 0, err
	}
	return r.Term, nil
}

// Done marks slot S of job done: the run that Claim started has finished,
// so a new leader need not treat S as cut short. S must be the job's last
// claimed slot (ErrNotClaimed otherwise); any leader may mark it, also one
// that did not claim it (a new leader closing its predecessor's slot after
// running or skipping it). The other errors are Claim's.
func (e *Elector) Done(ctx context.Context, job string, slot time.Time) error {
	_, err := e.request(ctx, ClaimRequest{Job: job, Slot: slot, Done: true})
	return err
}

// Reclaim claims slot S of job again, to rerun a run cut short: the one
// exception to "a claimed slot is never claimed again". It succeeds only
// when S is the job's last claimed slot, is not done, was claimed by an
// earlier leadership (a lower term: its leader lost the lock mid-run) and
// was not rerun already (JobState.Rerun); so a slot runs at most twice.
// Otherwise it fails with ErrAlreadyClaimed (the error says why) or, when
// S is not the job's claimed slot, ErrNotClaimed; the other errors are
// Claim's. A new leader that reruns interrupted slots (at least once)
// calls it for a Started slot that is not Done; one that skips them (at
// most once) calls Done instead, or nothing.
func (e *Elector) Reclaim(ctx context.Context, job string, slot time.Time) (term int64, err error) {
	r, err := e.request(ctx, ClaimRequest{Job: job, Slot: slot, Rerun: true})
	if err != nil {
		return 0, err
	}
	return r.Term, nil
}

// Abandon tells the elector that the run of slot S of job, which this
// candidate claimed (Claim or Reclaim succeeded), never started: the
// command could not be started, the lease ran out before it could, or the
// caller was asked to stop first. The job's entry is put back as it was
// before that claim on the record's next write (the next renewal, or the
// release), so that no leader takes S for a run cut short (which `skip`
// would never run) and S may be claimed again. Only the candidate that
// claimed S can say its run never started; call Abandon only when that is
// certain. It fails with ErrNotClaimed when S is not this candidate's last
// claim of job. It writes nothing by itself and is answered at once, also
// after the leadership ended, as long as Run runs.
func (e *Elector) Abandon(job string, slot time.Time) error {
	_, err := e.request(context.Background(), ClaimRequest{Job: job, Slot: slot, Abandon: true})
	return err
}

// Forget removes job's entry from the record, with a compare-and-swap
// write while this candidate leads: a job that no longer runs, or a name
// written by mistake, frees its place (the record holds at most MaxJobs).
// If the job runs again, it starts as a new one: from its next slot, with
// nothing to catch up on and no slot cut short. It fails with
// ErrNotClaimed when the record holds no such job; the other errors are
// Claim's.
func (e *Elector) Forget(ctx context.Context, job string) error {
	_, err := e.request(ctx, ClaimRequest{Job: job, Forget: true})
	return err
}

// Jobs returns the job entries of the record as this candidate last saw
// or wrote it (a copy; nil when there are none; kept when the record is
// deleted, as the next record it creates carries them): for a leader, what its
// own last write holds, which is the store's state while it leads; for a
// follower, the last record read. A new leader reads it in
// OnStartedLeading to catch up: slots due after a job's Done slot have
// not run, and a Started slot that is not Done was cut short.
func (e *Elector) Jobs() map[string]JobState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return CloneJobs(e.jobs)
}

// request hands a Claim or Done to the running driver and waits for the
// Machine's answer.
func (e *Elector) request(ctx context.Context, req ClaimRequest) (ClaimResult, error) {
	what := "elector: " + requestName(req)
	if err := ctx.Err(); err != nil {
		return ClaimResult{}, fmt.Errorf("%s: %w: not sent: %w", what, ErrClaimFailed, err)
	}
	e.mu.Lock()
	ch, end := e.claimCh, e.runEnd
	e.mu.Unlock()
	if ch == nil {
		return ClaimResult{}, fmt.Errorf("%s: %w (Run is not running)", what, ErrNotLeader)
	}
	reply := make(chan ClaimResult, 1)
	select {
	case ch <- claimCall{ctx: ctx, req: req, reply: reply}:
	case <-end:
		return ClaimResult{}, fmt.Errorf("%s: %w (Run has ended)", what, ErrNotLeader)
	case <-ctx.Done():
		return ClaimResult{}, fmt.Errorf("%s: %w: not sent: %w", what, ErrClaimFailed, ctx.Err())
	}
	// Sent: wait for the answer even if ctx ends meanwhile (the Machine
	// answers within the write's deadline), so that a caller never
	// mistakes a claim that was acknowledged for one that failed: a
	// caller that no longer means to run the slot abandons it.
	select {
	case r := <-reply:
		if r.Err != nil {
			return r, fmt.Errorf("elector: %w", r.Err)
		}
		return r, nil
	case <-end:
		return ClaimResult{}, fmt.Errorf("%s: %w: Run ended before answering (the write may have landed)", what, ErrClaimFailed)
	}
}

// driver is the state of one Run: the Machine and the leader's goroutine.
// It performs what the Machine asks for and reports what happened; every
// decision (what to send, when, whether to release) is the Machine's.
type driver struct {
	e     *Elector
	m     *Machine
	start time.Time

	stopped    bool // Stop was delivered
	leadCancel context.CancelFunc
	leadDone   chan struct{} // closed when the leader's work returns; nil when none runs

	claims  chan claimCall              // Claim and Done requests
	nextID  uint64                      // the ID of the last request
	waiting map[uint64]chan ClaimResult // requests the Machine has not answered yet
}

// claim hands a request to the Machine; one whose caller gave up before
// it got here is not made.
func (d *driver) claim(c claimCall) Output {
	d.nextID++
	c.req.ID = d.nextID
	if err := c.ctx.Err(); err != nil && !c.req.Abandon {
		c.reply <- refusal(c.req, ClaimFailed, JobState{}, fmt.Errorf("not sent: %w", err))
		return Output{Wait: d.m.last, Pending: d.m.pending != OpNone}
	}
	d.waiting[c.req.ID] = c.reply
	return d.m.Claim(d.now(), c.req)
}

// answer delivers the Machine's answers to claim requests.
func (d *driver) answer(results []ClaimResult) {
	e := d.e
	for _, r := range results {
		reply, ok := d.waiting[r.Request.ID]
		if !ok {
			continue
		}
		delete(d.waiting, r.Request.ID)
		verb, did := "claim", "claimed a slot"
		switch {
		case r.Request.Forget:
			verb, did = "forget", "forgot a job"
		case r.Request.Abandon:
			verb, did = "abandon", "put back a claim whose run never started"
		case r.Request.Done:
			verb, did = "done", "marked a slot done"
		case r.Request.Rerun:
			verb, did = "rerun", "claimed a slot again, to rerun it"
		}
		switch r.Outcome {
		case ClaimAcknowledged:
			e.log.Info(did, "job", r.Request.Job, "slot", formatSlot(r.Request.Slot), "term", r.Term)
		case ClaimFailed:
			e.log.Warn(verb+" failed", "job", r.Request.Job, "slot", formatSlot(r.Request.Slot), "err", r.Err)
		default:
			e.log.Debug(verb+" refused", "job", r.Request.Job, "slot", formatSlot(r.Request.Slot), "err", r.Err)
		}
		reply <- r
	}
}

func (d *driver) now() Now {
	t := d.e.clk.Now()
	return Now{Mono: t.Sub(d.start), Wall: t}
}

// done is ctx's Done channel until Stop has been delivered, then nil.
func (d *driver) done(ctx context.Context) <-chan struct{} {
	if d.stopped {
		return nil
	}
	return ctx.Done()
}

// stop delivers Stop.
func (d *driver) stop() Output {
	d.stopped = true
	return d.m.Stop(d.now())
}

func (d *driver) loop(ctx context.Context) error {
	out := d.m.Start(d.now())
	for {
		d.transitions(ctx, out)
		switch {
		case out.Done:
			return nil
		case out.Call.Op != OpNone:
			out = d.call(ctx, out.Call)
		case out.Pending:
			// Only a Stop answers Pending, and it is delivered inside
			// call, which goes on waiting for the result.
			return errors.New("elector: internal error: the Machine awaits a result no call is waiting for")
		default:
			out = d.wait(ctx, out.Wait)
		}
	}
}

// transitions applies the leadership changes of out: logs, the Observer,
// the callbacks and the leader's goroutine.
func (d *driver) transitions(ctx context.Context, out Output) {
	e := d.e
	e.mu.Lock()
	e.jobs = d.m.Jobs() // before the callbacks: a new leader catches up from it
	e.mu.Unlock()
	if out.Anomaly != AnomalyNone {
		e.log.Warn(out.Anomaly.String(), "term", out.AnomalyTerm, "highest_term_seen", out.AnomalySeen)
	}
	switch out.Problem {
	case ProblemNone:
	case ProblemSharedIdentity:
		e.log.Warn(out.Problem.String())
	case ProblemWorkLingers:
		e.log.Warn(out.Problem.String(), "waited", e.cfg.RenewDeadline)
	default:
		e.log.Error(out.Problem.String())
	}
	if out.Renewed {
		term := out.Term
		if !out.Started {
			term, _ = d.m.Leading()
		}
		e.mu.Lock()
		e.renewed = d.start.Add(out.ValidUntil - e.cfg.RenewDeadline)
		e.mu.Unlock()
		if e.cb.OnRenewed != nil {
			e.cb.OnRenewed(term, d.start.Add(out.ValidUntil))
		}
	}
	if out.Stopped {
		e.mu.Lock()
		e.term = 0
		e.mu.Unlock()
		e.log.Info("stopped leading", "reason", out.Reason.String())
		if e.obs != nil {
			e.obs.Leading(false, 0, out.Reason)
		}
		if d.leadCancel != nil {
			d.leadCancel()
		}
		e.cb.OnStoppedLeading()
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
			e.obs.Leading(true, out.Term, ReasonNone)
		}
		// The work's context ends with the leadership or with Run's.
		leadCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		d.leadCancel, d.leadDone = cancel, done
		go func(term int64) {
			defer close(done)
			e.cb.OnStartedLeading(leadCtx, term)
		}(out.Term)
	}
	defer d.answer(out.Claims) // last: after the renewal it acknowledges
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
}

// call performs c on the backend with c's deadline and reports its result.
// Its context is not cancelled with Run's: a write in flight completes or
// times out. A cancellation meanwhile is delivered as Stop at once (so the
// leader's work is told to stop), and the result after it.
func (d *driver) call(ctx context.Context, c Call) Output {
	e := d.e
	sent := e.clk.Now()
	rec, ver, err := Record{}, Version(""), error(nil)
	left := c.Deadline - d.now().Mono
	if left <= 0 {
		// The driver was held up (callbacks) past the call's deadline: a
		// write sent now could land after the Machine stopped counting on
		// it. It is not sent.
		err = fmt.Errorf("elector: %s on %s: deadline passed before it was sent: %w", c.Op, e.backend.Describe(), context.DeadlineExceeded)
	} else {
		rec, ver, err = d.perform(ctx, c, left)
	}
	if o := e.obs; o != nil {
		o.Call(c.Kind, c.Op, e.clk.Since(sent), err)
	}
	switch {
	case err == nil:
		if c.Kind == KindRelease {
			e.log.Info("released the lock", "term", c.Record.Term)
		}
	case errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound):
		e.log.Debug("backend call", "op", c.Op.String(), "kind", c.Kind.String(), "err", err)
	default:
		e.log.Warn("backend call failed", "op", c.Op.String(), "kind", c.Kind.String(), "err", err)
	}
	return d.m.Result(d.now(), rec, ver, err)
}

// perform runs the call on its own goroutine, so that the driver gives up
// at the deadline even if the backend ignores its context: a leader must
// stop on time however its store behaves.
func (d *driver) perform(ctx context.Context, c Call, left time.Duration) (Record, Version, error) {
	e := d.e
	cctx, cancel := e.clk.WithTimeout(context.WithoutCancel(ctx), left)
	defer cancel()
	type result struct {
		rec Record
		ver Version
		err error
	}
	results := make(chan result, 1)
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
		results <- r
	}()
	timer := e.clk.Timer(left)
	defer timer.Stop()
	for {
		select {
		case r := <-results:
			return r.rec, r.ver, r.err
		case <-timer.C:
			return Record{}, "", fmt.Errorf("elector: %s on %s: no answer by the deadline: %w", c.Op, e.backend.Describe(), context.DeadlineExceeded)
		case <-d.done(ctx):
			// Stop while the call is in flight: the Machine says Pending
			// (and stops leading at once); the result still counts.
			d.transitions(ctx, d.stop())
		case c := <-d.claims:
			// Queued behind the call (or refused at once): Pending. A
			// cancellation that came first is delivered first.
			if !d.stopped && ctx.Err() != nil {
				d.transitions(ctx, d.stop())
			}
			d.transitions(ctx, d.claim(c))
		}
	}
}

type watchResult struct {
	rec Record
	ver Version
	err error
}

// wait sleeps until w.Until, a watch event, the leader's work returning
// (w.Work) or ctx's cancellation, and feeds what happened to the Machine.
func (d *driver) wait(ctx context.Context, w Wait) Output {
	e := d.e
	if !d.stopped && ctx.Err() != nil {
		return d.stop()
	}
	var workDone <-chan struct{}
	if w.Work {
		if d.leadDone == nil {
			return d.m.WorkDone(d.now())
		}
		workDone = d.leadDone
	}
	if workDone != nil {
		// Work that has returned already is reported before the timer,
		// which may have run out as well: select would pick either, and
		// a Tick would report work lingering that is done.
		select {
		case <-workDone:
			d.leadDone, d.leadCancel = nil, nil
			return d.m.WorkDone(d.now())
		default:
		}
	}
	left := w.Until - d.now().Mono
	if left <= 0 && workDone == nil {
		return d.m.Tick(d.now())
	}
	timer := e.clk.Timer(max(left, 0))
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
	select {
	case <-d.done(ctx):
		return d.stop()
	case <-workDone:
		d.leadDone, d.leadCancel = nil, nil
		return d.m.WorkDone(d.now())
	case <-timer.C:
		return d.m.Tick(d.now())
	case c := <-d.claims:
		if !d.stopped && ctx.Err() != nil {
			// A cancellation came first: the Machine hears of it first.
			out := d.stop()
			out.Claims = append(out.Claims, d.claim(c).Claims...)
			return out
		}
		return d.claim(c)
	case r := <-events:
		if !d.stopped && ctx.Err() != nil {
			return d.stop()
		}
		if r.err != nil && !errors.Is(r.err, ErrNotFound) {
			e.log.Warn("watch failed; polling until the next successful read", "err", r.err)
		}
		return d.m.Watched(d.now(), r.rec, r.ver, r.err)
	}
}
