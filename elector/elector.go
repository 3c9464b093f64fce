// Package elector is the vocabulary of leasehold and its leader-election core.
//
// A lock is one record in a store (a Kubernetes Lease, an etcd key, a Consul
// key, an in-memory cell). Candidates compete for it through a Backend, a
// small compare-and-swap interface that passes the version explicitly. The
// decision logic lives in Machine, a synchronous state machine that never
// reads a clock and never does I/O; Elector.Run drives it in real time, and
// the sim package drives the same Machine in virtual time.
package elector

import (
	"context"
	"errors"
	"math"
	"time"
)

// Record is the content of a lock as stored by a backend.
//
// Holder is the identity of the current leader, or "" when the lock has been
// released. AcquireTime and RenewTime are wall-clock timestamps written for
// people and tools to read; the core never compares them across machines.
// Term counts leadership acquisitions: it strictly increases every time a
// candidate starts leading, so a leader can hand it to the resources it
// writes as a fencing token. The record carries it: deleting the record by
// hand forgets it (candidates continue from the highest term they saw).
type Record struct {
	Holder string
	// Instance is the holder's process instance (Config.Instance): two
	// processes sharing one identity are told apart by it. Empty in
	// records written by tools that do not know it.
	Instance      string
	LeaseDuration time.Duration
	AcquireTime   time.Time
	RenewTime     time.Time
	Term          int64
	// Jobs are the slot claims of scheduled jobs, by job name (see
	// JobState; at most MaxJobs, names as ValidJobName says); nil when no
	// job has claimed a slot. They are written only through the Machine
	// (a claim is a renewal carrying the new entry) and carried unchanged
	// by renewals, takeovers and the release. The map is shared, not
	// copied, as the record is passed around: never modify it in place
	// (CloneJobs).
	Jobs map[string]JobState
}

// MaxTerm is the highest term a record can carry. A record at MaxTerm-1
// leaves no room for another takeover: see Record.TermExhausted.
const MaxTerm = math.MaxInt64 - 1

// TermExhausted reports whether no candidate can take this record over any
// more: the next term would not fit. An operator has to delete the record
// (and reset whatever is fenced with the term) to use the lock again.
func (r Record) TermExhausted() bool { return r.Term >= MaxTerm }

// Version identifies one stored state of a record. It is opaque to the core:
// a Kubernetes resourceVersion, an etcd ModRevision, a Consul ModifyIndex or a
// counter. Two reads return the same Version only if nothing was written in
// between.
type Version string

// Backend is the minimal compare-and-swap store an elector needs. One Backend
// value is bound to one lock. Implementations translate their native errors
// to ErrNotFound and ErrConflict and wrap every other error with context.
type Backend interface {
	// Get returns the stored record and its version, or ErrNotFound.
	Get(ctx context.Context) (Record, Version, error)
	// Create stores r if no record exists, or fails with ErrConflict.
	Create(ctx context.Context, r Record) (Version, error)
	// Update replaces the record if its version is still v, or fails with
	// ErrConflict (and ErrNotFound if the record has been deleted).
	Update(ctx context.Context, r Record, v Version) (Version, error)
	// Describe names the store and the lock, for logs and status output.
	Describe() string
}

// Watcher is an optional Backend capability: waiting for a change instead of
// polling. Followers whose backend implements it make no requests while
// nothing changes; they wake on a write or when the lease they observed runs
// out.
type Watcher interface {
	// Watch blocks until the stored record is newer than version v and
	// returns the new record and version (ErrNotFound if it was deleted),
	// or returns ctx's error when ctx is done. It must never answer with a
	// state older than v: a follower takes a changed version as a renewal
	// and keeps waiting. Followers treat errors and "not found" from a
	// watch as a reason to poll, never to write.
	Watch(ctx context.Context, v Version) (Record, Version, error)
}

// Remembering is an optional Backend capability: a store that cannot lose
// or roll back a record while its candidates run (an in-process store such
// as backend/memory) says so, and its candidates skip the guards against a
// store that forgot: a fresh candidate acquires on its first read instead
// of waiting one LeaseDuration for a holder the store may have forgotten,
// and terms count up from 1 instead of from the wall clock (WallTerm). A
// deletion or a term going back is still detected and waited out.
type Remembering interface {
	// NeverForgets reports whether the store keeps every record it
	// acknowledged for as long as the candidates run.
	NeverForgets() bool
}

// Sentinel errors. Check them with errors.Is: backends wrap them with context.
var (
	// ErrNotFound means the lock has no record.
	ErrNotFound = errors.New("record not found")
	// ErrConflict means a compare-and-swap failed: someone else wrote first.
	ErrConflict = errors.New("version conflict")
	// ErrCorrupt means a stored record cannot be decoded. The elector never
	// overwrites such a record; an operator has to look at it.
	ErrCorrupt = errors.New("stored record cannot be decoded")
	// ErrInvalidConfig means a Config failed Validate.
	ErrInvalidConfig = errors.New("invalid config")
)
