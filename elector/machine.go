package elector

import (
	"errors"
	"fmt"
	"time"
)

// Now is what a driver tells the Machine about time: a reading of the
// candidate's local monotonic clock (a duration since an arbitrary origin,
// the only thing ever used to measure intervals) and the wall-clock time
// (only written into records for people to read).
type Now struct {
	Mono time.Duration
	Wall time.Time
}

// Op is a backend call the Machine asks its driver to make.
type Op uint8

// The calls a Machine asks for.
const (
	OpNone Op = iota
	OpGet
	OpCreate
	OpUpdate
)

// String names the op as in logs and metrics.
func (o Op) String() string {
	switch o {
	case OpGet:
		return "get"
	case OpCreate:
		return "create"
	case OpUpdate:
		return "update"
	}
	return "none"
}

// Kind says what a call is for, so that drivers, metrics and logs need not
// work it out from the Op and the leadership.
type Kind uint8

// The kinds of calls.
const (
	KindNone    Kind = iota
	KindRead         // a Get: follow, verify, or look before acquiring
	KindAcquire      // a Create or Update that would make this candidate the leader
	KindRenew        // an Update by the leader keeping its lease
	KindRelease      // the Update that gives the lock up on Stop
)

// String names the kind as in logs and metrics.
func (k Kind) String() string {
	switch k {
	case KindRead:
		return "read"
	case KindAcquire:
		return "acquire"
	case KindRenew:
		return "renew"
	case KindRelease:
		return "release"
	}
	return "none"
}

// Call is one backend call to perform, at once. The driver reports its
// outcome with Machine.Result. A call still unanswered at Deadline (a
// monotonic instant) must be abandoned and reported with a
// context.DeadlineExceeded error; a call whose Deadline has passed before
// it could be sent is not sent and is reported the same way.
type Call struct {
	Op       Op
	Kind     Kind
	Record   Record  // OpCreate, OpUpdate: what to write
	Version  Version // OpUpdate: the version expected in the store
	Deadline time.Duration
}

// Wait tells the driver to do nothing until the monotonic instant Until and
// then call Machine.Tick. With Watch set and a Watcher backend, the driver
// also watches for a version other than Version and reports a change with
// Machine.Watched, whichever comes first. With Work set, the Machine waits
// for the leader's work (OnStartedLeading) to return, reported with
// Machine.WorkDone, or for Until, whichever comes first.
type Wait struct {
	Until   time.Duration
	Watch   bool
	Version Version
	Work    bool
}

// Output is the Machine's answer to one input. Transitions are listed first
// and happen before the call or the wait: Stopped is reported before any
// other candidate may take over, Started after the acquiring write
// succeeded.
type Output struct {
	// Stopped: this candidate no longer leads; the leader's work must be
	// told to stop now. Reason says why.
	Stopped bool
	Reason  StopReason
	// Started: this candidate leads from now on, with fencing token Term.
	Started bool
	Term    int64
	// LeaderChanged: the holder of the record is now Leader ("" = nobody).
	LeaderChanged bool
	Leader        string
	// Renewed: a write that made or kept this candidate the leader was
	// acknowledged; the leadership is valid until the monotonic instant
	// ValidUntil (its send time + RenewDeadline) unless renewed again. A
	// watchdog outside the process (leasehold run's guard) enforces it.
	Renewed    bool
	ValidUntil time.Duration
	// Problem is a condition an operator has to hear about, reported once
	// when it is first seen (ProblemNone otherwise).
	Problem Problem
	// Anomaly is something the store did that a healthy store never does
	// (the record deleted, gone back in time, holding absurd values),
	// reported each time it is seen, with the terms it concerns: the
	// driver logs it. What the Machine does about it is its own business
	// (it waits a lease before acquiring).
	Anomaly Anomaly
	// AnomalyTerm is the term of the record that showed the anomaly;
	// AnomalySeen the highest term this candidate had seen before.
	AnomalyTerm, AnomalySeen int64
	// Claims answers claim requests (Machine.Claim), in the order they
	// were made: each request is answered once, in the Output of the
	// input that settles it.
	Claims []ClaimResult

	// Exactly one of Call (Op != OpNone), Wait, Pending or Done. Pending
	// answers a Stop while a call is in flight: nothing to do but deliver
	// that call's Result.
	Call    Call
	Wait    Wait
	Pending bool
	Done    bool
}

// Rand is the source of jitter. The Machine reads no global random source;
// drivers pass a seeded generator (math/rand/v2's *Rand fits).
type Rand interface {
	Float64() float64
}

// StopReason says why a leadership ended (Output.Reason).
type StopReason uint8

// The reasons a leadership ends.
const (
	ReasonNone     StopReason = iota
	ReasonDeadline            // RenewDeadline passed without an acknowledged renewal
	ReasonConflict            // someone else changed the record
	ReasonStopped             // the driver stopped the campaign (Stop)
)

// String says the reason as in logs.
func (r StopReason) String() string {
	switch r {
	case ReasonDeadline:
		return "renew deadline passed without a successful write"
	case ReasonConflict:
		return "the record was changed by someone else"
	case ReasonStopped:
		return "stopped"
	}
	return "none"
}

// Problem is a condition that needs a person, reported in Output.Problem.
type Problem uint8

// The problems a Machine reports.
const (
	ProblemNone Problem = iota
	// ProblemSharedIdentity: the record names this candidate's identity
	// with another instance. Another live process uses the same identity;
	// this one waits its lease out instead of taking the lock from it.
	ProblemSharedIdentity
	// ProblemTermExhausted: the record's term leaves no room for another
	// takeover (Record.TermExhausted). Nobody can acquire the lock until an
	// operator deletes the record (and resets what is fenced with the term)
	// and restarts the candidates.
	ProblemTermExhausted
	// ProblemWorkLingers: the leader's work has not returned RenewDeadline
	// after it was told to stop. The Machine does not campaign again until
	// it does, and on Stop gives up without releasing the lock (reported
	// every RenewDeadline while it lasts).
	ProblemWorkLingers
)

// String says what the problem is and what to do about it.
func (p Problem) String() string {
	switch p {
	case ProblemSharedIdentity:
		return "another process uses this identity (the record names it with another instance); waiting for its lease to run out: give every process its own identity"
	case ProblemTermExhausted:
		return "the term has reached its limit, so no candidate can take the lock over: delete the record, reset whatever is fenced with the term, and restart the candidates"
	case ProblemWorkLingers:
		return "the leader's work has not returned since it was told to stop; not campaigning (nor releasing the lock) while it runs"
	}
	return "none"
}

// Anomaly is a store behaviour the Machine guards against (Output.Anomaly).
type Anomaly uint8

// The anomalies a Machine reports.
const (
	AnomalyNone Anomaly = iota
	// AnomalyWentBack: a read returned a record whose term is lower than
	// one this candidate saw or wrote before: the store was restored from
	// an older snapshot, wiped and re-created, or the record edited by hand.
	AnomalyWentBack
	// AnomalyDeleted: the record is gone after one was seen: deleted by
	// hand, or the store wiped or restarted without its data.
	AnomalyDeleted
	// AnomalyCorrupt: the record holds a value no candidate writes (a
	// lease longer than MaxLeaseDuration); it is treated as a record
	// written now with this candidate's LeaseDuration.
	AnomalyCorrupt
)

// String says what happened, as in logs.
func (a Anomaly) String() string {
	switch a {
	case AnomalyWentBack:
		return "the store went back in time (restored from an older snapshot, wiped, or the record edited by hand): waiting a lease before acquiring"
	case AnomalyDeleted:
		return "the record was deleted (by hand, or the store lost its data): waiting out the lease of its last holder before creating it"
	case AnomalyCorrupt:
		return "the record holds a lease longer than any candidate writes (edited by hand?): waiting this candidate's own lease duration instead"
	}
	return "none"
}

type phase uint8

const (
	following phase = iota
	leading
	stopping
	done
)

// Machine is the acquire/renew decision logic of one candidate, in the order
// of client-go's tryAcquireOrRenew, as a synchronous state machine: it is
// fed the time and the results of backend calls and answers with the next
// call, wait or leadership transition. It does no I/O, starts no goroutine,
// reads no clock and draws no random number but from the Rand it is given,
// so the same inputs always give the same outputs.
//
// A Machine is not safe for concurrent use; one driver owns it.
type Machine struct {
	cfg   Config
	rng   Rand
	watch bool

	phase   phase
	pending Op     // the call in flight, OpNone if none
	sent    Record // what the pending create/update writes
	sentAt  time.Duration

	// The last record observed and the local instant it was first seen.
	known      bool // a record was read
	missing    bool // the last read found no record
	rec        Record
	ver        Version
	observedAt time.Duration
	maxTerm    int64
	absurd     bool // the record's lease is beyond MaxLeaseDuration: not trusted

	// No acquiring write goes out before holdUntil: set one lease after
	// this candidate's first read (it cannot know whether a holder it
	// never saw still believes it leads: the store may have forgotten
	// it), after it saw the record deleted, and after it saw the store go
	// back in time.
	seenStore bool
	holdUntil time.Duration
	remembers bool // the store never forgets (Remembering): no first-read hold, no wall-clock terms
	// lastRead is when the last successful Get answered (readOnce: one
	// has). Reads of a missing record further apart than readGap may have
	// missed a record created and lost in between: the hold starts again.
	lastRead time.Duration
	readOnce bool
	// probation: leading by a record this candidate created on a store
	// that may forget, not started yet. Started comes with the first
	// acknowledged renewal sent at or after startAfter (readGap after the
	// create): by then every candidate polling the missing record has read
	// it, so if the store loses it, they see it deleted and hold off.
	probation  bool
	startAfter time.Duration
	// fromWatch: the knowledge being evaluated came from a watch, which
	// may be a cache; a write never follows it directly (a Get confirms).
	fromWatch bool

	// Leadership.
	term        int64
	validUntil  time.Duration // leading: lease valid until this instant
	lastAttempt time.Duration // leading: send time of the last renewal

	verifying   bool          // leading: a renewal conflicted; reading to see whether it was our own write
	unacked     bool          // leading: renewals were sent since the last one known to succeed
	unackedFrom time.Duration // leading: send time of the first of them

	leader      string
	leaderKnown bool
	watchFailed bool
	// The store last refused a write at conflictAt. No acquiring write and
	// no renewal with an adopted version goes out until a RetryPeriod
	// later: reads that lag behind (stale replicas, caches) could otherwise
	// make it write, be refused and read again without end.
	conflicted bool
	conflictAt time.Duration
	adopted    bool // leading: a version was adopted since the last acknowledged renewal

	reported [ProblemWorkLingers + 1]bool // problems already reported (once each)

	// The leader's work: started with Started, running until WorkDone.
	// While it runs after a leadership ended, no acquiring write goes out.
	working   bool
	awaitWork bool          // following: waiting for the work before campaigning again
	workFrom  time.Duration // when the current wait for the work began

	// Stop: stopAt is when it came; release tells whether the lock is to
	// be given up once the work has returned and no call is in flight.
	stopAt    time.Duration
	release   bool
	releasing bool // the release is the pending call

	last Wait // the last wait asked for

	// Slot claims: the requests not yet sent, the one the pending write
	// carries, and the job entries of the last record seen or written
	// (kept across a deletion).
	claims   []ClaimRequest
	claiming bool
	claimReq ClaimRequest
	jobs     map[string]JobState
	// claimPrev is the job's entry before the claim in flight (and
	// claimHad whether there was one); priors the last claim of each job
	// this candidate wrote, with what the entry held before it, so that
	// a claim whose run never started can be put back (see unclaimed).
	claimPrev JobState
	claimHad  bool
	priors    map[string]claimPrior
}

// NewMachine returns a Machine for cfg. watch tells it whether the driver can
// wait on a Watcher; rng provides jitter for follower polls.
func NewMachine(cfg Config, rng Rand, watch bool) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rng == nil {
		return nil, fmt.Errorf("%w: nil Rand", ErrInvalidConfig)
	}
	return &Machine{cfg: cfg, rng: rng, watch: watch}, nil
}

// StoreNeverForgets tells the Machine, before Start, that its store cannot
// lose or roll back a record while it runs (see Remembering): a first read
// is then trusted at once, and terms count up from the highest seen
// without the wall-clock floor.
func (m *Machine) StoreNeverForgets() { m.remembers = true }

// Leading reports whether the candidate leads and with which term.
func (m *Machine) Leading() (term int64, ok bool) {
	if m.started() {
		return m.term, true
	}
	return 0, false
}

// started reports whether the candidate leads and has said so (Started):
// not while it holds a record it created on probation.
func (m *Machine) started() bool { return m.phase == leading && !m.probation }

// readGap bounds the time between two successful reads of a follower
// polling a missing record: the longest jittered poll plus the longest a
// read may take.
func (m *Machine) readGap() time.Duration {
	rp := m.cfg.RetryPeriod
	return 2*rp + time.Duration(m.cfg.jitter()*float64(rp))
}

// Observed returns the last record seen, its version and whether one was seen.
func (m *Machine) Observed() (Record, Version, bool) {
	return m.rec, m.ver, m.known
}

// Start begins the campaign: the first call is a Get.
func (m *Machine) Start(now Now) Output {
	var out Output
	m.get(now, &out)
	m.remember(now, &out)
	return out
}

// Tick reports that the wait has ended: the instant Wait.Until was reached.
func (m *Machine) Tick(now Now) Output {
	var out Output
	switch {
	case m.phase == done:
		out.Done = true
	case m.pending != OpNone:
		out.Pending = true
	case m.phase == stopping:
		m.finishStop(now, &out)
	case m.phase == leading:
		m.lead(now, &out)
	case m.awaitWork && m.last.Work && now.Mono >= m.workFrom+m.cfg.RenewDeadline:
		out.Problem = ProblemWorkLingers // said every RenewDeadline while it lasts
		m.workFrom = now.Mono
		m.waitWork(now, &out)
	default:
		m.get(now, &out)
	}
	m.remember(now, &out)
	return out
}

// WorkDone reports that the leader's work (OnStartedLeading) has returned.
// The Machine goes on with what it waited for: campaigning again after a
// leadership ended, or the release after Stop.
func (m *Machine) WorkDone(now Now) Output {
	var out Output
	m.working = false
	switch {
	case m.phase == done:
		out.Done = true
	case m.pending != OpNone:
		out.Pending = true
	case m.phase == stopping:
		m.finishStop(now, &out)
	case m.awaitWork:
		m.awaitWork = false
		m.get(now, &out)
	default:
		out.Wait = m.last // nothing waited for it: wait as before
	}
	m.remember(now, &out)
	return out
}

// remember serves the queued claim requests, then keeps the wait asked
// for, so that an input that changes nothing can ask for it again.
func (m *Machine) remember(now Now, out *Output) {
	m.serveClaims(now, out)
	if out.Call.Op == OpNone && !out.Done && !out.Pending {
		m.last = out.Wait
	}
}

// Watched reports what a watch returned while waiting: a new record and
// version, ErrNotFound, or another error (the Machine falls back to polling
// until a Get succeeds again).
func (m *Machine) Watched(now Now, rec Record, ver Version, err error) (out Output) {
	if m.phase != following || m.pending != OpNone {
		return m.Tick(now)
	}
	defer m.remember(now, &out)
	switch {
	case err == nil && ver == m.ver && m.known:
		// A watch must return a version other than the one it was given;
		// one that does not is broken. Poll instead of spinning on it.
		m.watchFailed = true
		m.poll(now, &out)
	case err == nil && m.known && rec.Term < m.maxTerm:
		// Older than what was seen: a lagging cache, or the store went
		// back in time. Only a Get can tell.
		m.get(now, &out)
	case err == nil:
		m.observe(now, rec, ver, &out)
		m.fromWatch = true
		m.evaluate(now, &out)
		m.fromWatch = false
	default:
		// An error, or "not found" from a watch (deletions are rare; a
		// watch that says so while the record exists is broken): poll,
		// and let a Get decide.
		m.watchFailed = true
		m.poll(now, &out)
	}
	return out
}

// Result reports the outcome of the pending Call: the record and version
// read (OpGet) or written (OpCreate, OpUpdate), or the error.
func (m *Machine) Result(now Now, rec Record, ver Version, err error) (out Output) {
	op := m.pending
	if op == OpNone {
		return m.Tick(now) // no call was pending: nothing to report
	}
	defer m.remember(now, &out)
	m.pending = OpNone
	claimed, claim := m.claiming && op == OpUpdate, m.claimReq
	m.claiming, m.claimReq = false, ClaimRequest{}
	if claimed {
		defer func() { m.answerClaim(claim, err, &out) }()
	}
	if m.phase == stopping {
		m.stoppedResult(now, op, ver, err, &out)
		return out
	}
	switch op {
	case OpGet:
		if m.phase == leading {
			m.verified(now, rec, ver, err, &out)
			break
		}
		m.gotRecord(now, rec, ver, err, &out)
	case OpCreate, OpUpdate:
		m.wrote(now, op, ver, err, &out)
	}
	return out
}

// Stop ends the campaign (the driver's context was cancelled); it may come
// at any time, also while a call is in flight (the Machine then answers
// Pending and goes on once its Result is delivered). A leader stops leading
// at once. Nothing is sent after Stop but the release: with ReleaseOnCancel,
// once the leader's work has returned (waited for at most RenewDeadline
// from the Stop) and no call is in flight, the record is written with an
// empty holder and the same term, so a follower may take over at once. If
// the work has not returned by then, the lock is not released: the next
// leader waits out the lease.
func (m *Machine) Stop(now Now) (out Output) {
	defer m.remember(now, &out)
	switch m.phase {
	case done:
		out.Done = true
		return out
	case stopping:
		if m.pending != OpNone {
			out.Pending = true
		} else {
			out.Wait = m.last
		}
		return out
	case leading:
		m.stopLeading(now, ReasonStopped, &out)
		m.release = m.cfg.ReleaseOnCancel
	}
	m.phase = stopping
	m.stopAt = now.Mono
	if m.pending != OpNone {
		out.Pending = true
		return out
	}
	m.finishStop(now, &out)
	return out
}

// stoppedResult handles the Result of a call that was in flight when Stop
// came, or of the release.
func (m *Machine) stoppedResult(now Now, op Op, ver Version, err error, out *Output) {
	switch {
	case m.releasing:
		m.releasing = false
		m.phase = done
		out.Done = true
		return
	case op == OpCreate || op == OpUpdate:
		switch {
		case err == nil:
			// A renewal or an acquiring write that landed after all: the
			// lock is ours (never led: no Started); give it up with the
			// version it now has.
			m.rec, m.ver = m.sent, ver
			m.jobs = m.sent.Jobs
			m.release = m.cfg.ReleaseOnCancel
		case errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound):
			m.release = false // someone else wrote: nothing of ours to release
		}
	}
	m.finishStop(now, out)
}

// finishStop goes on with a Stop once no call is in flight: wait for the
// leader's work (up to RenewDeadline after the Stop), then release or end.
func (m *Machine) finishStop(now Now, out *Output) {
	if m.working {
		if now.Mono < m.stopAt+m.cfg.RenewDeadline {
			out.Wait = Wait{Until: m.stopAt + m.cfg.RenewDeadline, Work: true}
			return
		}
		out.Problem = ProblemWorkLingers
		m.release = false
	}
	if m.release {
		m.release = false
		r := m.rec
		r.Holder, r.Instance = "", ""
		r.RenewTime = now.Wall
		r.Jobs = m.unclaimed(r.Jobs) // a release never carries a claim whose run did not start
		m.releasing = true
		m.pending = OpUpdate
		m.sentAt = now.Mono
		out.Call = Call{Op: OpUpdate, Kind: KindRelease, Record: r, Version: m.ver, Deadline: now.Mono + m.cfg.RenewDeadline}
		return
	}
	m.phase = done
	out.Done = true
}

// waitWork waits for the leader's work to return, warning (with Tick) every
// RenewDeadline.
func (m *Machine) waitWork(now Now, out *Output) {
	out.Wait = Wait{Until: m.workFrom + m.cfg.RenewDeadline, Work: true}
}

// get asks for the record; after a leadership ended, only once the
// leader's work has returned.
func (m *Machine) get(now Now, out *Output) {
	if m.awaitWork {
		m.waitWork(now, out)
		return
	}
	m.pending = OpGet
	m.sentAt = now.Mono
	out.Call = Call{Op: OpGet, Kind: KindRead, Deadline: m.callDeadline(now)}
}

// callDeadline gives every call RetryPeriod to answer, so that a lost
// request or reply costs one retry, not the lease; a leader's calls never
// outlive its lease.
func (m *Machine) callDeadline(now Now) time.Duration {
	d := now.Mono + m.cfg.RetryPeriod
	if m.phase == leading {
		d = min(d, m.validUntil)
	}
	return d
}

// gotRecord handles a Get result (steps 2 and 3 of tryAcquireOrRenew).
func (m *Machine) gotRecord(now Now, rec Record, ver Version, err error, out *Output) {
	switch {
	case err == nil:
		m.watchFailed = false
		m.firstRead(now, rec)
		m.checkRollback(now, rec, ver, out)
		m.observe(now, rec, ver, out)
	case errors.Is(err, ErrNotFound):
		m.watchFailed = false
		m.firstRead(now, Record{})
		if m.missing && !m.remembers && now.Mono-m.lastRead > m.readGap() {
			// Two reads of a missing record, too far apart (a pause, an
			// outage) to be sure no record came and went between them
			// unseen, whose holder may still believe it leads.
			m.hold(now, Record{})
		}
		m.missingRecord(now, out)
	default:
		// Unreachable store or undecodable record: never write blindly.
		m.unreadable(now, out)
		return
	}
	m.lastRead, m.readOnce = now.Mono, true
	m.evaluate(now, out)
}

// unreadable handles a failed read while following: poll again, and once
// the lease of the holder last observed has run out, name nobody as the
// leader (it may well have stepped down). The poll wakes at that expiry at
// the latest, so the leader is not named for longer than a read takes.
func (m *Machine) unreadable(now Now, out *Output) {
	named := m.leaderKnown && m.leader != ""
	if named && now.Mono >= m.expiry() {
		m.setLeader("", out)
		named = false
	}
	m.poll(now, out)
	if named {
		out.Wait.Until = min(out.Wait.Until, m.expiry())
	}
}

// firstRead starts the hold of a candidate that has just read the store
// for the first time: it saw no holder before, so one it cannot see (the
// store forgot it) may still believe it leads for up to a lease.
func (m *Machine) firstRead(now Now, rec Record) {
	if m.seenStore {
		return
	}
	m.seenStore = true
	if !m.remembers {
		m.hold(now, rec)
	}
}

// hold forbids acquiring writes for a lease from now: the longer of this
// candidate's LeaseDuration and the one of rec (the last record seen,
// when it is trusted).
func (m *Machine) hold(now Now, rec Record) {
	ld := m.cfg.LeaseDuration
	if rec.LeaseDuration > ld && rec.LeaseDuration <= MaxLeaseDuration {
		ld = rec.LeaseDuration
	}
	m.holdUntil = max(m.holdUntil, now.Mono+ld)
}

// checkRollback compares a record read from the store (a Get: not a cache)
// with what this candidate knows: a term lower than the highest it saw or
// wrote means the store went back in time. Versions are no guide (a
// restored store hands the same ones out again), terms are: they never go
// down in a store that remembers.
func (m *Machine) checkRollback(now Now, rec Record, ver Version, out *Output) {
	if m.maxTerm > 0 && rec.Term < m.maxTerm && (!m.known || ver != m.ver) {
		out.Anomaly, out.AnomalyTerm, out.AnomalySeen = AnomalyWentBack, rec.Term, m.maxTerm
		m.hold(now, m.rec)
	}
}

// observe records what was read. Only a change of version restarts the
// observation clock: re-reading an unchanged record does not.
func (m *Machine) observe(now Now, rec Record, ver Version, out *Output) {
	m.missing = false
	if !m.known || ver != m.ver {
		m.known = true
		m.rec, m.ver = rec, ver
		m.jobs = rec.Jobs
		m.observedAt = now.Mono
		m.maxTerm = max(m.maxTerm, rec.Term)
		m.absurd = rec.LeaseDuration > MaxLeaseDuration
		if m.absurd && out.Anomaly == AnomalyNone {
			out.Anomaly, out.AnomalyTerm, out.AnomalySeen = AnomalyCorrupt, rec.Term, m.maxTerm
		}
	}
	m.setLeader(m.rec.Holder, out)
}

// missingRecord handles a read that found no record. A record seen before
// and gone now was deleted (or the store lost it): its holder may still
// believe it leads, so nobody creates it before that lease has run out.
func (m *Machine) missingRecord(now Now, out *Output) {
	if m.known {
		out.Anomaly, out.AnomalyTerm, out.AnomalySeen = AnomalyDeleted, m.rec.Term, m.maxTerm
		m.hold(now, m.rec)
	}
	m.known = false
	m.missing = true
	m.rec, m.ver = Record{}, ""
	m.absurd = false
	m.setLeader("", out)
}

func (m *Machine) setLeader(holder string, out *Output) {
	if !m.leaderKnown || holder != m.leader {
		m.leader, m.leaderKnown = holder, true
		out.LeaderChanged, out.Leader = true, holder
	}
}

// evaluate decides, from fresh knowledge, whether to follow or to write
// (steps 2, 4 and 5).
func (m *Machine) evaluate(now Now, out *Output) {
	holder := m.rec.Holder
	if !m.missing && holder != "" && !m.owns(m.rec) && now.Mono < m.expiry() {
		if holder == m.cfg.Identity {
			m.report(ProblemSharedIdentity, out)
		}
		m.follow(now, out)
		return
	}
	if now.Mono < m.holdUntil {
		m.holdOff(now, out)
		return
	}
	if m.conflicted && now.Mono < m.conflictAt+m.cfg.RetryPeriod {
		// Refused a moment ago: what this read shows may be stale. Read
		// again a RetryPeriod after the refusal before writing.
		out.Wait = Wait{Until: m.conflictAt + m.cfg.RetryPeriod}
		return
	}
	if m.fromWatch {
		// What a watch reports may come from a cache that has not seen the
		// store go back in time, and after it did, the same version can
		// name another record: a write goes out only with a version a Get
		// returned.
		m.get(now, out)
		return
	}
	term := max(m.maxTerm, m.rec.Term)
	if !m.remembers {
		term = max(term, WallTerm(now.Wall)-1)
	}
	if term >= MaxTerm {
		// The next term would not fit (or not decode): never write a
		// fencing token that wraps around. Say so: only a person can fix it.
		m.report(ProblemTermExhausted, out)
		m.poll(now, out)
		return
	}
	if m.missing {
		m.write(now, OpCreate, m.newRecord(now, term+1), "", out)
		return
	}
	// Released, expired as measured from our own observation, or written
	// by this very process (identity and instance): take it with a new term.
	m.write(now, OpUpdate, m.newRecord(now, term+1), m.ver, out)
}

// holdOff waits for the end of the hold (see Machine.holdUntil), on the
// watch when there is a record to watch, else polling, so that a record
// someone else creates meanwhile is followed.
func (m *Machine) holdOff(now Now, out *Output) {
	if m.known && m.watch && !m.watchFailed {
		out.Wait = Wait{Until: m.holdUntil, Watch: true, Version: m.ver}
		return
	}
	out.Wait = Wait{Until: min(m.holdUntil, now.Mono+m.jittered())}
}

// TermEpoch is the origin of WallTerm: terms are at least the whole seconds
// of the acquiring candidate's wall clock since then.
var TermEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// WallTerm is the lowest term a candidate whose wall clock reads wall may
// take: the whole seconds since TermEpoch (0 before it). A new term is the
// larger of this and the highest term seen plus one — a hybrid logical
// clock — so that a term stays unique even when the store forgot the
// terms it handed out (restored from an older snapshot, wiped), as long as
// the candidates' wall clocks agree within the time that passes between
// the last term handed out before the store forgot and the first after it
// (at least one LeaseDuration: see docs/architecture.md). The values stay
// below 2^31 until 2093, so a Kubernetes Lease's leaseTransitions holds
// them.
func WallTerm(wall time.Time) int64 {
	if wall.Before(TermEpoch) {
		return 0
	}
	return int64(wall.Sub(TermEpoch) / time.Second)
}

// newRecord is the record of an acquisition. It carries the job entries
// of the last record seen (also when that record has since been deleted):
// the next leader needs them, and a slot claimed is never claimed again.
func (m *Machine) newRecord(now Now, term int64) Record {
	return Record{
		Holder:        m.cfg.Identity,
		Instance:      m.cfg.Instance,
		LeaseDuration: m.cfg.LeaseDuration,
		AcquireTime:   now.Wall,
		RenewTime:     now.Wall,
		Term:          term,
		Jobs:          m.jobs,
	}
}

// owns reports whether r names this very candidate: its identity and, when
// it has one, its instance. A record with this identity and another
// instance belongs to another process.
func (m *Machine) owns(r Record) bool {
	return r.Holder == m.cfg.Identity && (m.cfg.Instance == "" || r.Instance == m.cfg.Instance)
}

// report sets out.Problem to p the first time p is seen.
func (m *Machine) report(p Problem, out *Output) {
	if !m.reported[p] {
		m.reported[p] = true
		out.Problem = p
	}
}

// expiry is the local instant the observed holder's lease runs out: its
// LeaseDuration after we saw the record change.
func (m *Machine) expiry() time.Duration {
	ld := m.rec.LeaseDuration
	if ld <= 0 || m.absurd {
		ld = m.cfg.LeaseDuration
	}
	return m.observedAt + ld
}

func (m *Machine) write(now Now, op Op, r Record, v Version, out *Output) {
	kind := KindAcquire
	if m.phase == leading {
		kind = KindRenew
	} else if m.awaitWork {
		// The last leadership's work still runs: no new one yet.
		m.waitWork(now, out)
		return
	}
	r.Jobs = m.unclaimed(r.Jobs)
	m.pending = op
	m.sent = r
	m.sentAt = now.Mono
	out.Call = Call{Op: op, Kind: kind, Record: r, Version: v, Deadline: m.callDeadline(now)}
}

// wrote handles the result of an acquiring write or a renewal.
func (m *Machine) wrote(now Now, op Op, ver Version, err error, out *Output) {
	if err == nil {
		acquired := m.phase != leading
		m.rec, m.ver = m.sent, ver
		m.jobs = m.sent.Jobs
		m.known, m.missing = true, false
		m.observedAt = m.sentAt
		m.maxTerm = max(m.maxTerm, m.sent.Term)
		m.lastAttempt = m.sentAt
		m.validUntil = m.sentAt + m.cfg.RenewDeadline
		m.verifying, m.unacked, m.adopted = false, false, false
		if now.Mono >= m.validUntil {
			// The answer came back too late to count: the lease it
			// bought has already run out on our clock.
			if !acquired {
				m.stopLeading(now, ReasonDeadline, out)
			}
			m.get(now, out)
			return
		}
		if acquired {
			m.phase = leading
			m.term = m.sent.Term
			if op == OpCreate && !m.remembers {
				m.probation, m.startAfter = true, now.Mono+m.readGap()
			}
		}
		if m.probation && m.sentAt >= m.startAfter {
			m.probation = false
			acquired = true
		}
		if m.probation {
			m.lead(now, out) // renew until the store has kept the record long enough
			return
		}
		if acquired {
			m.working = true
			out.Started, out.Term = true, m.term
			m.setLeader(m.cfg.Identity, out)
		}
		out.Renewed, out.ValidUntil = true, m.validUntil
		m.lead(now, out)
		return
	}
	conflict := errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound)
	if conflict {
		m.conflicted, m.conflictAt = true, now.Mono
	}
	if m.phase == leading {
		if now.Mono >= m.validUntil {
			m.stopLeading(now, ReasonDeadline, out)
			m.get(now, out)
			return
		}
		// The refused renewal did not land. If an earlier renewal is still
		// unanswered, it may have landed and moved the version (its reply
		// lost): read to tell. Otherwise someone else wrote.
		if conflict {
			m.unacked = m.unacked && m.unackedFrom < m.sentAt
		}
		switch {
		case conflict && m.unacked:
			m.verifying = true
			m.get(now, out)
		case conflict:
			m.stopLeading(now, ReasonConflict, out)
			m.get(now, out)
		default:
			m.lead(now, out)
		}
		return
	}
	if conflict {
		// Someone else wrote first: read what they wrote and follow it.
		m.get(now, out)
		return
	}
	m.poll(now, out)
}

// verified handles the read a leader makes after a conflicting renewal
// while an earlier renewal was unanswered. If the record names it with its
// term at another version, it adopts that version and renews with it at
// once; the lease is extended only when a renewal is acknowledged, never by
// a read (a read may be stale). A read showing the very version the store
// just refused is stale for sure: it reads again a RetryPeriod later,
// within its lease. Anything else means someone else wrote: it stops
// leading and follows.
func (m *Machine) verified(now Now, rec Record, ver Version, err error, out *Output) {
	switch {
	case now.Mono >= m.validUntil:
		m.stopLeading(now, ReasonDeadline, out)
		m.gotRecord(now, rec, ver, err, out)
	case err == nil && ver == m.ver:
		m.lead(now, out) // stale read: try again at the next retry
	case err == nil && rec.Holder == m.cfg.Identity && rec.Instance == m.cfg.Instance && rec.Term == m.term:
		m.verifying = false
		m.rec, m.ver = rec, ver
		m.jobs = rec.Jobs
		// Renew with it at once the first time; if that is refused too
		// (the read was stale after all), only a RetryPeriod after.
		m.lastAttempt = now.Mono - m.cfg.RetryPeriod
		if m.adopted {
			m.lastAttempt = m.conflictAt
		}
		m.adopted = true
		m.lead(now, out)
	case err == nil || errors.Is(err, ErrNotFound):
		m.stopLeading(now, ReasonConflict, out)
		m.gotRecord(now, rec, ver, err, out)
	default:
		m.lead(now, out) // read again at the next retry, while the lease lasts
	}
}

// lead renews or waits for the next renewal, and steps down once the lease
// is no longer valid.
func (m *Machine) lead(now Now, out *Output) {
	if now.Mono >= m.validUntil {
		m.stopLeading(now, ReasonDeadline, out)
		m.get(now, out)
		return
	}
	next := m.lastAttempt + m.cfg.RetryPeriod
	if now.Mono < next {
		out.Wait = Wait{Until: min(next, m.validUntil)}
		return
	}
	m.lastAttempt = now.Mono
	if m.verifying {
		m.get(now, out)
		return
	}
	if m.claimWrite(now, out) {
		return // the renewal carries a claim
	}
	if !m.unacked {
		m.unacked, m.unackedFrom = true, now.Mono
	}
	r := m.rec
	r.RenewTime = now.Wall
	m.write(now, OpUpdate, r, m.ver, out)
}

func (m *Machine) stopLeading(now Now, reason StopReason, out *Output) {
	if m.probation {
		// Never started: nothing to stop, nobody was told it leads.
		m.phase, m.probation, m.term = following, false, 0
		m.verifying, m.unacked, m.adopted = false, false, false
		return
	}
	m.phase = following
	if m.working {
		m.awaitWork, m.workFrom = true, now.Mono
	}
	m.verifying, m.unacked, m.adopted = false, false, false
	out.Stopped, out.Reason = true, reason
	m.term = 0
	// The record may still name us, but we no longer lead: until a read
	// says otherwise, nobody is known to lead.
	if m.leader == m.cfg.Identity {
		m.setLeader("", out)
	}
}

// follow waits for the holder's lease to run out: on the watch when there is
// one, else polling every jittered RetryPeriod.
func (m *Machine) follow(now Now, out *Output) {
	exp := m.expiry()
	if m.watch && !m.watchFailed {
		out.Wait = Wait{Until: exp, Watch: true, Version: m.ver}
		return
	}
	out.Wait = Wait{Until: min(exp, now.Mono+m.jittered())}
}

// poll waits a jittered RetryPeriod before the next Get (after an error).
func (m *Machine) poll(now Now, out *Output) {
	out.Wait = Wait{Until: now.Mono + m.jittered()}
}

func (m *Machine) jittered() time.Duration {
	rp := m.cfg.RetryPeriod
	return rp + time.Duration(m.rng.Float64()*m.cfg.jitter()*float64(rp))
}
