package elector

import (
	"errors"
	"fmt"
	"time"
)

// Errors of slot claims (Elector.Claim, Elector.Done, ClaimResult.Err).
// Check them with errors.Is.
var (
	// ErrAlreadyClaimed: the slot, or a later one, of the job was claimed
	// before, by this candidate or another. A claimed slot is never
	// claimed again. Nothing was written.
	ErrAlreadyClaimed = errors.New("slot already claimed")
	// ErrNotClaimed: a Done or a Reclaim for a slot that is not the job's
	// last claimed slot. Nothing was written.
	ErrNotClaimed = errors.New("slot is not the job's claimed slot")
	// ErrNotLeader: this candidate does not lead, or its lease is no
	// longer valid, so it claims nothing. Unless ErrClaimFailed is wrapped
	// too, nothing was written.
	ErrNotLeader = errors.New("not leading")
	// ErrInvalidClaim: the job name or the slot cannot be stored, or the
	// record already holds MaxJobs other jobs. Nothing was written.
	ErrInvalidClaim = errors.New("invalid claim")
	// ErrClaimFailed: the write carrying the claim did not succeed (a
	// conflict, a store error, no answer in time, an answer after the
	// lease ran out) or could not be attempted. The run must not start.
	// The write may have landed all the same (its reply lost): the slot
	// may be recorded as started, and then counts as a run cut short.
	ErrClaimFailed = errors.New("claim failed")
)

// MaxQueuedClaims is how many claim requests a Machine holds while a call
// is in flight; more are refused (ClaimFailed).
const MaxQueuedClaims = 2 * MaxJobs

// ClaimRequest asks a Machine (Machine.Claim) to claim a slot of a job;
// with Done, to mark the job's claimed slot done; with Rerun, to claim the
// job's claimed slot again, to rerun a run cut short.
type ClaimRequest struct {
	// ID is the driver's name for the request, returned in its result.
	ID    uint64
	Job   string
	Slot  time.Time
	Done  bool
	Rerun bool
	// Abandon says that the run of Slot, claimed (or claimed again) by
	// this candidate, never started: the job's entry is put back as it
	// was before that claim, on the record's next write (the next
	// renewal, or the release), so the slot is not taken for a run cut
	// short. Nothing is written for it alone.
	Abandon bool
	// Forget removes the job's entry from the record (Slot is not used):
	// a job that no longer runs, or a name written by mistake, frees its
	// place (MaxJobs). The job, if it runs again, starts as a new one.
	Forget bool
}

// claimPrior is the last claim of a job a Machine wrote: the slot, its
// term, the job's entry before it (had: there was one), and whether its
// run is known never to have started (disowned: the claim's answer was
// lost, came too late, or the driver abandoned it).
type claimPrior struct {
	slot     time.Time
	term     int64
	prev     JobState
	had      bool
	disowned bool
}

// claimedBy reports whether e is the entry the claim p wrote and nothing
// since: its slot, started by its term, not done.
func (p claimPrior) claimedBy(e JobState) bool {
	return e.Started.Equal(p.slot) && e.StartedTerm == p.term && !e.Done.Equal(p.slot)
}

// unclaimed returns jobs with every disowned claim this candidate wrote put
// back to the entry it replaced: a claim whose run never started is not a
// run cut short, and the slot may be claimed again. Only the candidate
// that wrote a claim could have run its slot, so only it can say the run
// never started. jobs is not modified; it is returned as is when nothing
// changes.
func (m *Machine) unclaimed(jobs map[string]JobState) map[string]JobState {
	var out map[string]JobState
	for job, p := range m.priors {
		e, ok := jobs[job]
		if !p.disowned || !ok || !p.claimedBy(e) {
			continue
		}
		if out == nil {
			out = CloneJobs(jobs)
		}
		if p.had {
			out[job] = p.prev
		} else {
			delete(out, job)
		}
	}
	if out == nil {
		return jobs
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// ClaimOutcome is how a claim request ended.
type ClaimOutcome uint8

// The outcomes of claim requests.
const (
	ClaimNone ClaimOutcome = iota
	// ClaimAcknowledged: the write carrying the entry succeeded while this
	// candidate led with a valid lease.
	ClaimAcknowledged
	// ClaimAlreadyClaimed: the slot is at or before the job's Started
	// slot; for a Rerun, the slot may not be claimed again
	// (ErrAlreadyClaimed).
	ClaimAlreadyClaimed
	// ClaimNotClaimed: a Done or Rerun for a slot other than the job's
	// Started one (ErrNotClaimed).
	ClaimNotClaimed
	// ClaimNotLeader: not leading, or the lease is not valid (ErrNotLeader).
	ClaimNotLeader
	// ClaimInvalid: the job name or slot cannot be stored, or there are
	// MaxJobs other jobs (ErrInvalidClaim).
	ClaimInvalid
	// ClaimFailed: the write failed or could not be attempted
	// (ErrClaimFailed): the run must not start.
	ClaimFailed
)

// String names the outcome as in logs.
func (o ClaimOutcome) String() string {
	switch o {
	case ClaimAcknowledged:
		return "acknowledged"
	case ClaimAlreadyClaimed:
		return "already claimed"
	case ClaimNotClaimed:
		return "not the claimed slot"
	case ClaimNotLeader:
		return "not leading"
	case ClaimInvalid:
		return "invalid"
	case ClaimFailed:
		return "failed"
	}
	return "none"
}

// ClaimResult answers one ClaimRequest (Output.Claims).
type ClaimResult struct {
	Request ClaimRequest
	Outcome ClaimOutcome
	// Term is the leadership's term (fencing token) of an acknowledged
	// request: the run of the slot carries it.
	Term int64
	// State is the job's entry as the record holds it: after the write
	// for an acknowledged request, as found for a refused one.
	State JobState
	// Err says why a request was not acknowledged; it wraps the sentinel
	// of the outcome (ErrAlreadyClaimed, ErrNotClaimed, ErrNotLeader,
	// ErrInvalidClaim, ErrClaimFailed) and, for a failed write, the
	// store's error. nil when acknowledged.
	Err error
}

// Claim asks for a slot claim, or with req.Done marks the job's claimed
// slot done, or with req.Rerun claims it again to rerun a run cut short.
// While this candidate leads with a valid
// lease, the Machine turns it into a compare-and-swap Update of the record
// carrying the new entry, a renewal (KindRenew) sent as the next call
// without waiting for the retry period; its answer comes in the Output of
// the Result (Output.Claims). A request that comes while a call is in
// flight, or while the leader verifies its version after a conflict, is
// queued (at most MaxQueuedClaims) and served in order; requests are
// written one at a time, each checked against the record the previous one
// left.
//
// The rule: a claim of slot S is refused when S is at or before the job's
// Started slot (a slot that is claimed is never claimed again, by anyone);
// a Done of S is refused unless S is the job's Started slot (of any term:
// a new leader may close a run its predecessor left). A Rerun of S is the
// one exception to the first rule, for a run cut short: it is allowed
// only when S is the job's Started slot, not Done, claimed by an earlier
// leadership (a lower term) and not rerun already; so a slot runs at most
// twice. A follower, a stopping candidate and a leader whose lease has run
// out (it stops leading then) are refused at once. A write that fails is
// ClaimFailed; a conflict is handled as any renewal conflict (the
// candidate may stop leading).
func (m *Machine) Claim(now Now, req ClaimRequest) (out Output) {
	defer m.remember(now, &out)
	switch {
	case m.phase == done:
		out.Done = true
	case m.pending != OpNone:
		out.Pending = true
	case m.phase == leading && now.Mono >= m.validUntil:
		m.lead(now, &out) // the lease has run out: stop leading now
	default:
		out.Wait = m.last
	}
	req.Slot = req.Slot.UTC()
	switch {
	case req.Abandon:
		out.Claims = append(out.Claims, m.abandon(req))
	case !m.started():
		out.Claims = append(out.Claims, refusal(req, ClaimNotLeader, JobState{}, nil))
	case ValidJobName(req.Job) != nil:
		out.Claims = append(out.Claims, refusal(req, ClaimInvalid, JobState{}, ValidJobName(req.Job)))
	case !req.Forget && checkSlot(req.Slot) != nil:
		out.Claims = append(out.Claims, refusal(req, ClaimInvalid, JobState{}, checkSlot(req.Slot)))
	case req.Done && req.Rerun:
		out.Claims = append(out.Claims, refusal(req, ClaimInvalid, JobState{}, errors.New("both done and rerun")))
	case req.Forget && (req.Done || req.Rerun):
		out.Claims = append(out.Claims, refusal(req, ClaimInvalid, JobState{}, errors.New("forget with done or rerun")))
	case len(m.claims) >= MaxQueuedClaims:
		out.Claims = append(out.Claims, refusal(req, ClaimFailed, JobState{},
			fmt.Errorf("%d requests are queued already", len(m.claims))))
	default:
		m.claims = append(m.claims, req)
	}
	return out
}

// abandon answers an Abandon request: the claim must be this candidate's
// last of the job, at that slot. It is answered at once; the entry is put
// back on the next write.
func (m *Machine) abandon(req ClaimRequest) ClaimResult {
	p, ok := m.priors[req.Job]
	if !ok || !p.slot.Equal(req.Slot) || req.Done || req.Rerun {
		st := m.jobs[req.Job]
		return refusal(req, ClaimNotClaimed, st, errors.New("not this candidate's last claim of the job"))
	}
	p.disowned = true
	m.priors[req.Job] = p
	return ClaimResult{Request: req, Outcome: ClaimAcknowledged, Term: p.term, State: m.Jobs()[req.Job]}
}

// Jobs returns the job entries of the last record seen or written, kept
// across a deletion of the record (the next record this candidate creates
// carries them), with the claims whose runs never started put back (as
// the next write will). The map is shared: do not modify it.
func (m *Machine) Jobs() map[string]JobState { return m.unclaimed(m.jobs) }

// refusal is the result of a request that is not written.
func refusal(req ClaimRequest, o ClaimOutcome, st JobState, cause error) ClaimResult {
	what := requestName(req)
	var err error
	switch {
	case o == ClaimAlreadyClaimed && cause != nil:
		err = fmt.Errorf("%s: %w: %v", what, ErrAlreadyClaimed, cause)
	case o == ClaimAlreadyClaimed:
		err = fmt.Errorf("%s: %w (last claimed %s, term %d)", what, ErrAlreadyClaimed, formatSlot(st.Started), st.StartedTerm)
	case o == ClaimNotClaimed && st.Started.IsZero():
		err = fmt.Errorf("%s: %w (no slot claimed)", what, ErrNotClaimed)
	case o == ClaimNotClaimed:
		err = fmt.Errorf("%s: %w (last claimed %s, term %d)", what, ErrNotClaimed, formatSlot(st.Started), st.StartedTerm)
	case o == ClaimNotLeader:
		err = fmt.Errorf("%s: %w", what, ErrNotLeader)
	case o == ClaimInvalid:
		err = fmt.Errorf("%s: %w: %v", what, ErrInvalidClaim, cause)
	default:
		if cause == nil {
			cause = errors.New("no reason given")
		}
		err = fmt.Errorf("%s: %w: %w", what, ErrClaimFailed, cause)
	}
	return ClaimResult{Request: req, Outcome: o, State: st, Err: err}
}

// requestName says what a request is, for errors.
func requestName(req ClaimRequest) string {
	verb := "claim"
	switch {
	case req.Forget:
		return fmt.Sprintf("forget of job %q", req.Job)
	case req.Abandon:
		verb = "abandon"
	case req.Done:
		verb = "done"
	case req.Rerun:
		verb = "rerun"
	}
	return fmt.Sprintf("%s of job %q slot %s", verb, req.Job, formatSlot(req.Slot))
}

// rerunRefusal says why slot may not be rerun (nil if it may), st being
// the job's entry and term this leadership's.
func rerunRefusal(st JobState, slot time.Time, term int64) (ClaimOutcome, error) {
	switch {
	case st.Started.IsZero() || slot.After(st.Started):
		return ClaimNotClaimed, nil
	case slot.Before(st.Started):
		return ClaimAlreadyClaimed, fmt.Errorf("a later slot, %s, was claimed since", formatSlot(st.Started))
	case st.Done.Equal(slot):
		return ClaimAlreadyClaimed, errors.New("its run was done")
	case st.Rerun:
		return ClaimAlreadyClaimed, fmt.Errorf("it was rerun already, in term %d", st.StartedTerm)
	case st.StartedTerm >= term:
		return ClaimAlreadyClaimed, fmt.Errorf("this leadership (term %d) claimed it: its run was not cut short by a change of leader", st.StartedTerm)
	}
	return ClaimNone, nil
}

// serveClaims answers or starts the queued requests once nothing is in
// flight: all of them are refused when this candidate no longer leads;
// while it leads, refusals are answered and the first request to write
// becomes the output's call (instead of its wait).
func (m *Machine) serveClaims(now Now, out *Output) {
	if len(m.claims) == 0 {
		return
	}
	if !m.started() {
		for _, req := range m.claims {
			out.Claims = append(out.Claims, refusal(req, ClaimNotLeader, JobState{}, nil))
		}
		m.claims = nil
		return
	}
	if m.pending != OpNone || out.Call.Op != OpNone || out.Done || out.Pending {
		return
	}
	m.claimWrite(now, out)
}

// claimWrite answers queued requests that are refused and sends the first
// one that writes, as a renewal carrying its entry. It reports whether it
// sent one. Only while leading, with a valid lease, nothing in flight and
// no verification going on.
func (m *Machine) claimWrite(now Now, out *Output) bool {
	if !m.started() || m.pending != OpNone || m.verifying || now.Mono >= m.validUntil {
		return false
	}
	for len(m.claims) > 0 {
		req := m.claims[0]
		m.claims = m.claims[1:]
		if len(m.claims) == 0 {
			m.claims = nil
		}
		jobs := m.unclaimed(m.rec.Jobs)
		st, known := jobs[req.Job]
		next := st
		if req.Forget {
			if !known {
				out.Claims = append(out.Claims, refusal(req, ClaimNotClaimed, st, errors.New("the record holds no such job")))
				continue
			}
			m.lastAttempt = now.Mono
			if !m.unacked {
				m.unacked, m.unackedFrom = true, now.Mono
			}
			r := m.rec
			r.RenewTime = now.Wall
			r.Jobs = CloneJobs(jobs)
			delete(r.Jobs, req.Job)
			if len(r.Jobs) == 0 {
				r.Jobs = nil
			}
			delete(m.priors, req.Job)
			m.claiming, m.claimReq = true, req
			out.Wait = Wait{}
			m.write(now, OpUpdate, r, m.ver, out)
			return true
		}
		switch {
		case req.Done && (st.Started.IsZero() || !req.Slot.Equal(st.Started)):
			out.Claims = append(out.Claims, refusal(req, ClaimNotClaimed, st, nil))
			continue
		case req.Done:
			next.Done = req.Slot
		case req.Rerun:
			if o, why := rerunRefusal(st, req.Slot, m.term); o != ClaimNone {
				out.Claims = append(out.Claims, refusal(req, o, st, why))
				continue
			}
			next.StartedTerm, next.Rerun = m.term, true
		case !req.Slot.After(st.Started):
			out.Claims = append(out.Claims, refusal(req, ClaimAlreadyClaimed, st, nil))
			continue
		case !known && len(jobs) >= MaxJobs:
			out.Claims = append(out.Claims, refusal(req, ClaimInvalid, st,
				fmt.Errorf("the record holds %d jobs already, the most it may", len(jobs))))
			continue
		default:
			next.Started, next.StartedTerm, next.Rerun = req.Slot, m.term, false
		}
		m.lastAttempt = now.Mono
		if !m.unacked {
			m.unacked, m.unackedFrom = true, now.Mono
		}
		r := m.rec
		r.RenewTime = now.Wall
		r.Jobs = cloneJobs(jobs, req.Job, next)
		m.claiming, m.claimReq = true, req
		m.claimPrev, m.claimHad = st, known
		if !req.Done {
			delete(m.priors, req.Job) // superseded by this claim
		}
		out.Wait = Wait{}
		m.write(now, OpUpdate, r, m.ver, out)
		return true
	}
	return false
}

// answerClaim reports the outcome of the write that carried req, once its
// Result has been handled.
func (m *Machine) answerClaim(req ClaimRequest, err error, out *Output) {
	if !req.Done && !req.Forget {
		// Remember the claim; one that was not acknowledged but may have
		// landed (no answer, an answer too late) is disowned at once: its
		// run does not start. A conflict or "not found" landed nothing.
		landed := err == nil || !(errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound))
		if landed {
			if m.priors == nil {
				m.priors = map[string]claimPrior{}
			}
			m.priors[req.Job] = claimPrior{slot: req.Slot, term: m.sent.Jobs[req.Job].StartedTerm,
				prev: m.claimPrev, had: m.claimHad, disowned: err != nil || m.phase != leading}
		}
	}
	switch {
	case err == nil && m.phase == leading:
		out.Claims = append(out.Claims, ClaimResult{Request: req, Outcome: ClaimAcknowledged, Term: m.term, State: m.sent.Jobs[req.Job]})
	case err == nil:
		out.Claims = append(out.Claims, refusal(req, ClaimFailed, m.sent.Jobs[req.Job],
			fmt.Errorf("the write landed after the lease ran out or the campaign stopped: %w", ErrNotLeader)))
	default:
		out.Claims = append(out.Claims, refusal(req, ClaimFailed, m.rec.Jobs[req.Job], err))
	}
}
