package elector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

// RecordFormat is the value of the "format" field of an encoded record. Key
// value backends (etcd, Consul, memory) store records as this JSON document,
// documented in docs/backends.md, so other tools can read them.
const RecordFormat = "leasehold.record/v1"

type wireRecord struct {
	Format          string    `json:"format"`
	Holder          string    `json:"holder"`
	Instance        string    `json:"instance,omitempty"`
	LeaseDurationMS int64     `json:"lease_duration_ms"`
	AcquireTime     time.Time `json:"acquire_time"`
	RenewTime       time.Time `json:"renew_time"`
	Term            int64     `json:"term"`
	// Jobs is the object of job entries (EncodeJobState), by job name;
	// absent when the record has none, so that older readers and records
	// are unaffected.
	Jobs json.RawMessage `json:"jobs,omitempty"`
}

// encodeJobs returns the "jobs" object, names in order, or nil for none.
func encodeJobs(jobs map[string]JobState) json.RawMessage {
	if len(jobs) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, name := range slices.Sorted(maps.Keys(jobs)) {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		b.Write(EncodeJobState(jobs[name]))
	}
	b.WriteByte('}')
	return b.Bytes()
}

// EncodeRecord returns the stored form of r. The lease duration is stored in
// whole milliseconds, rounded up: a reader never waits less than the writer
// meant. Job entries out of bounds are encoded as they are, and
// DecodeRecord refuses them: writers use MarshalRecord, which refuses them
// first.
func EncodeRecord(r Record) []byte {
	ms := r.LeaseDuration.Milliseconds()
	if r.LeaseDuration > time.Duration(ms)*time.Millisecond {
		ms++
	}
	b, err := json.Marshal(wireRecord{
		Format:          RecordFormat,
		Holder:          r.Holder,
		Instance:        r.Instance,
		LeaseDurationMS: ms,
		AcquireTime:     r.AcquireTime.UTC(),
		RenewTime:       r.RenewTime.UTC(),
		Term:            r.Term,
		Jobs:            encodeJobs(r.Jobs),
	})
	if err != nil {
		// Only unencodable times (years outside 0..9999) get here.
		b, _ = json.Marshal(wireRecord{Format: RecordFormat, Holder: r.Holder, Instance: r.Instance,
			LeaseDurationMS: ms, Term: r.Term, Jobs: encodeJobs(r.Jobs)})
	}
	return b
}

// MarshalRecord is EncodeRecord for writers: it refuses a record that
// CheckRecord refuses (job entries out of bounds), with an error naming
// the job.
func MarshalRecord(r Record) ([]byte, error) {
	if err := CheckRecord(r); err != nil {
		return nil, err
	}
	return EncodeRecord(r), nil
}

// DecodeRecord parses a stored record. Any problem is reported as an error
// wrapping ErrCorrupt that says what is wrong; callers add the key.
func DecodeRecord(b []byte) (Record, error) {
	var w wireRecord
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&w); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Record{}, fmt.Errorf("%w: trailing data after the record", ErrCorrupt)
	}
	switch {
	case w.Format != RecordFormat:
		return Record{}, fmt.Errorf("%w: format is %q, want %q", ErrCorrupt, w.Format, RecordFormat)
	case w.LeaseDurationMS < 0 || w.LeaseDurationMS > int64(time.Duration(1<<62)/time.Millisecond):
		return Record{}, fmt.Errorf("%w: lease_duration_ms %d out of range", ErrCorrupt, w.LeaseDurationMS)
	case w.Term < 0 || w.Term > MaxTerm:
		// MaxInt64 leaves no room for the next term: a takeover would wrap
		// the fencing token around.
		return Record{}, fmt.Errorf("%w: term %d out of range", ErrCorrupt, w.Term)
	}
	var jobs map[string]JobState
	if w.Jobs != nil {
		var err error
		if jobs, err = decodeJobs(w.Jobs); err != nil {
			return Record{}, fmt.Errorf("%w: jobs: %v", ErrCorrupt, err)
		}
	}
	return Record{
		Holder:        w.Holder,
		Instance:      w.Instance,
		LeaseDuration: time.Duration(w.LeaseDurationMS) * time.Millisecond,
		AcquireTime:   w.AcquireTime,
		RenewTime:     w.RenewTime,
		Term:          w.Term,
		Jobs:          jobs,
	}, nil
}
