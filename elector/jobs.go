package elector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"
)

// JobState is what the record of a lock keeps about one scheduled job: the
// last slot claimed (its run started) with the term of the leadership that
// claimed it, and the last slot marked done. A slot is an instant of the
// job's schedule, decided by the program (the schedule as its leader
// evaluates it), never by a clock comparison across machines.
//
// The entries are written only through the Machine (Machine.Claim,
// Elector.Claim, Elector.Done) and carried unchanged by renewals,
// takeovers and the release, so the next leader finds them: a slot at or
// before Started was claimed and is never claimed again, by anyone; a
// Started slot that is not Done is a run that was cut short (or a claim
// whose answer was lost).
type JobState struct {
	// Started is the last slot claimed (UTC; zero if none).
	Started time.Time
	// StartedTerm is the term (fencing token) of the leadership that
	// claimed Started; 0 if none.
	StartedTerm int64
	// Done is the last slot marked done (UTC; zero if none). It is never
	// after Started.
	Done time.Time
	// Rerun: Started was claimed again by a later leadership, to run it
	// again after a run cut short (Elector.Reclaim); StartedTerm is that
	// leadership's. A slot is rerun at most once, so it runs at most
	// twice.
	Rerun bool
}

// Bounds of the job entries of a record (Record.Jobs).
const (
	// MaxJobs is the most jobs one record holds.
	MaxJobs = 32
	// MaxJobNameLen is the longest job name: a job name is spelled like
	// a lock name (lower-case letters, digits, '-' and '.', starting and
	// ending with a letter or digit) and fits a Kubernetes annotation
	// name.
	MaxJobNameLen = 63
)

// ValidJobName says why name is not a valid job name (nil if it is).
func ValidJobName(name string) error {
	switch {
	case name == "":
		return errors.New("the job name is empty")
	case len(name) > MaxJobNameLen:
		return fmt.Errorf("job name %.20q... is %d bytes long, more than %d", name, len(name), MaxJobNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && ((c != '-' && c != '.') || i == 0 || i == len(name)-1) {
			return fmt.Errorf("job name %q: lower-case letters, digits, '-' and '.' only, starting and ending with a letter or digit", name)
		}
	}
	return nil
}

// checkSlot says why t cannot be stored as a slot (nil if it can): every
// slot is a non-zero instant of the years 1 to 9999, which RFC 3339 can
// spell.
func checkSlot(t time.Time) error {
	if t.IsZero() {
		return errors.New("the slot is the zero time")
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("slot %v is outside the years 1 to 9999", t)
	}
	return nil
}

// Check says why s cannot be stored as a job's entry (nil if it can): a
// Started slot without a term (or the other way round), a term out of
// range, a Done slot or a rerun without a Started slot, a Done slot after
// the Started one, a time RFC 3339 cannot spell.
func (s JobState) Check() error {
	switch {
	case s.Started.IsZero() && s.StartedTerm != 0:
		return fmt.Errorf("started_term %d without a started slot", s.StartedTerm)
	case !s.Started.IsZero() && (s.StartedTerm < 1 || s.StartedTerm > MaxTerm):
		return fmt.Errorf("started_term %d out of range", s.StartedTerm)
	case s.Started.IsZero() && !s.Done.IsZero():
		return errors.New("a done slot without a started one")
	case s.Started.IsZero() && s.Rerun:
		return errors.New("a rerun without a started slot")
	case !s.Done.IsZero() && s.Done.After(s.Started):
		return fmt.Errorf("done slot %s after the started slot %s", formatSlot(s.Done), formatSlot(s.Started))
	}
	if !s.Started.IsZero() {
		if err := checkSlot(s.Started); err != nil {
			return fmt.Errorf("started: %v", err)
		}
	}
	if !s.Done.IsZero() {
		if err := checkSlot(s.Done); err != nil {
			return fmt.Errorf("done: %v", err)
		}
	}
	return nil
}

// CheckJobs says why jobs cannot be stored in a record (nil if they can):
// more than MaxJobs entries, a name that is not a job name, an entry that
// does not pass JobState.Check. The error names the job. Backends refuse
// to write such a record.
func CheckJobs(jobs map[string]JobState) error {
	if len(jobs) == 0 {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(jobs)) {
		if err := ValidJobName(name); err != nil {
			return err
		}
		if err := jobs[name].Check(); err != nil {
			return fmt.Errorf("job %q: %v", name, err)
		}
	}
	if len(jobs) > MaxJobs {
		return fmt.Errorf("%d jobs, more than %d (the last: %q)", len(jobs), MaxJobs, slices.Max(slices.Collect(maps.Keys(jobs))))
	}
	return nil
}

// CheckRecord says why r cannot be stored (nil if it can): its job entries
// (CheckJobs). Backends call it before writing and refuse the write with
// its error.
func CheckRecord(r Record) error {
	if err := CheckJobs(r.Jobs); err != nil {
		return fmt.Errorf("record of %q, term %d: %w", r.Holder, r.Term, err)
	}
	return nil
}

// cloneJobs returns a copy of jobs with name set to s (when name != "").
// Jobs maps are never modified in place once they are in a Record the
// Machine has seen or handed out: they are shared, read-only.
func cloneJobs(jobs map[string]JobState, name string, s JobState) map[string]JobState {
	out := make(map[string]JobState, len(jobs)+1)
	maps.Copy(out, jobs)
	if name != "" {
		out[name] = s
	}
	return out
}

// CloneJobs returns a copy of jobs (nil if it is empty), for a caller that
// means to modify it or keep it past the record it came from.
func CloneJobs(jobs map[string]JobState) map[string]JobState {
	if len(jobs) == 0 {
		return nil
	}
	return maps.Clone(jobs)
}

// formatSlot is the stored spelling of a slot: RFC 3339 with nanoseconds,
// UTC.
func formatSlot(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// parseSlot reads a stored slot: RFC 3339, UTC ("Z"), with or without
// fractional seconds.
func parseSlot(s string) (time.Time, error) {
	if len(s) == 0 || s[len(s)-1] != 'Z' {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time in UTC", s)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time in UTC", s)
	}
	if t.IsZero() {
		return time.Time{}, fmt.Errorf("%q is the zero time, not a slot (leave the field out)", s)
	}
	return t.UTC(), nil
}

// EncodeJobState returns the stored form of one job's entry, the value of
// a job in the "jobs" object of leasehold.record/v1 and of a job
// annotation on a Kubernetes Lease (docs/backends.md):
//
//	{"started":"2026-12-02T07:05:00Z","started_term":42,"done":"2026-12-02T07:00:00Z"}
//
// A zero time is left out, and so is "rerun" unless it is true.
func EncodeJobState(s JobState) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	sep := ""
	if !s.Started.IsZero() {
		fmt.Fprintf(&b, `"started":%q,"started_term":%d`, formatSlot(s.Started), s.StartedTerm)
		sep = ","
	} else if s.StartedTerm != 0 {
		fmt.Fprintf(&b, `"started_term":%d`, s.StartedTerm)
		sep = ","
	}
	if s.Rerun {
		fmt.Fprintf(&b, `%s"rerun":true`, sep)
		sep = ","
	}
	if !s.Done.IsZero() {
		fmt.Fprintf(&b, `%s"done":%q`, sep, formatSlot(s.Done))
	}
	b.WriteByte('}')
	return b.Bytes()
}

// DecodeJobState parses one job's entry strictly: an object with the
// fields started, started_term, rerun and done only, each at most once,
// that passes JobState.Check. Errors wrap ErrCorrupt; callers add the job.
func DecodeJobState(b []byte) (JobState, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	s, err := decodeJobState(dec)
	if err != nil {
		return JobState{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return JobState{}, fmt.Errorf("%w: trailing data after the job entry", ErrCorrupt)
	}
	return s, nil
}

// decodeJobState reads one entry object from dec (which uses numbers).
func decodeJobState(dec *json.Decoder) (JobState, error) {
	var s JobState
	if err := expectDelim(dec, '{'); err != nil {
		return s, err
	}
	seen := map[string]bool{}
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return s, err
		}
		if seen[key] {
			return s, fmt.Errorf("field %q given twice", key)
		}
		seen[key] = true
		tok, err := dec.Token()
		if err != nil {
			return s, fmt.Errorf("%s: %v", key, err)
		}
		switch key {
		case "started", "done":
			str, ok := tok.(string)
			if !ok {
				return s, fmt.Errorf("%s: %v is not a time", key, tok)
			}
			t, err := parseSlot(str)
			if err != nil {
				return s, fmt.Errorf("%s: %v", key, err)
			}
			if key == "started" {
				s.Started = t
			} else {
				s.Done = t
			}
		case "started_term":
			n, ok := tok.(json.Number)
			if !ok {
				return s, fmt.Errorf("started_term: %v is not an integer", tok)
			}
			v, err := strconv.ParseInt(string(n), 10, 64)
			if err != nil {
				return s, fmt.Errorf("started_term: %s is not an integer in range", n)
			}
			s.StartedTerm = v
		case "rerun":
			b, ok := tok.(bool)
			if !ok {
				return s, fmt.Errorf("rerun: %v is not true or false", tok)
			}
			s.Rerun = b
		default:
			return s, fmt.Errorf("unknown field %q (want started, started_term, rerun, done)", key)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return s, err
	}
	if err := s.Check(); err != nil {
		return s, err
	}
	return s, nil
}

// decodeJobs reads the "jobs" object of a record strictly: job names that
// are valid and given once, entries DecodeJobState accepts, at most
// MaxJobs. null and {} are no jobs (nil).
func decodeJobs(raw json.RawMessage) (map[string]JobState, error) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	var jobs map[string]JobState
	for dec.More() {
		name, err := objectKey(dec)
		if err != nil {
			return nil, err
		}
		if err := ValidJobName(name); err != nil {
			return nil, err
		}
		if _, dup := jobs[name]; dup {
			return nil, fmt.Errorf("job %q given twice", name)
		}
		if len(jobs) == MaxJobs {
			return nil, fmt.Errorf("more than %d jobs (job %q)", MaxJobs, name)
		}
		s, err := decodeJobState(dec)
		if err != nil {
			return nil, fmt.Errorf("job %q: %v", name, err)
		}
		if jobs == nil {
			jobs = map[string]JobState{}
		}
		jobs[name] = s
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	return jobs, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		if d == '{' {
			return fmt.Errorf("%v is not an object", tok)
		}
		return fmt.Errorf("%v where %v was expected", tok, d)
	}
	return nil
}

func objectKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	key, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("%v is not an object key", tok)
	}
	return key, nil
}
