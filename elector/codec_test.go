package elector

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
)

func TestCodecRoundTrip(t *testing.T) {
	r := Record{Holder: "a", LeaseDuration: 1500 * time.Millisecond,
		AcquireTime: epoch, RenewTime: epoch.Add(time.Second + time.Microsecond), Term: 42}
	got, err := DecodeRecord(EncodeRecord(r))
	if err != nil {
		t.Fatal(err)
	}
	if got.Holder != r.Holder || got.LeaseDuration != r.LeaseDuration || got.Term != r.Term ||
		!got.AcquireTime.Equal(r.AcquireTime) || !got.RenewTime.Equal(r.RenewTime) {
		t.Fatalf("round trip %+v, want %+v", got, r)
	}
}

// Lease durations are stored in whole milliseconds, rounded up: a reader
// never waits less than the writer meant. The instance rides along.
func TestCodecRoundsUpAndKeepsInstance(t *testing.T) {
	got, err := DecodeRecord(EncodeRecord(Record{Holder: "a", Instance: "p1", LeaseDuration: 1500*time.Microsecond + 1}))
	if err != nil || got.LeaseDuration != 2*time.Millisecond || got.Instance != "p1" {
		t.Fatalf("got %+v, %v; want a 2ms lease and instance p1", got, err)
	}
	old, err := DecodeRecord([]byte(`{"format":"leasehold.record/v1","holder":"a","lease_duration_ms":1000,"term":3}`))
	if err != nil || old.Instance != "" || old.Holder != "a" {
		t.Fatalf("a record without an instance: %+v, %v", old, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, in := range []string{
		``, `{`, `null`, `[]`, `{"format":"other/v9","holder":"a"}`,
		`{"format":"leasehold.record/v1","lease_duration_ms":-1}`,
		`{"format":"leasehold.record/v1","term":-3}`,
		`{"format":"leasehold.record/v1"} {}`,
		`{"format":"leasehold.record/v1"}}`,
		`{"format":"leasehold.record/v1"}]]]`,
		`{"format":"leasehold.record/v1","term":9223372036854775807}`,
		`{"format":"leasehold.record/v1","acquire_time":"yesterday"}`,
	} {
		if _, err := DecodeRecord([]byte(in)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeRecord(%q) err = %v, want ErrCorrupt", in, err)
		}
	}
}

// sameRecord reports whether two records hold the same values (times
// compared as instants).
func sameRecord(a, b Record) bool {
	if a.Holder != b.Holder || a.Instance != b.Instance || a.Term != b.Term || a.LeaseDuration != b.LeaseDuration ||
		!a.AcquireTime.Equal(b.AcquireTime) || !a.RenewTime.Equal(b.RenewTime) || len(a.Jobs) != len(b.Jobs) {
		return false
	}
	return maps.EqualFunc(a.Jobs, b.Jobs, func(x, y JobState) bool {
		return x.Started.Equal(y.Started) && x.StartedTerm == y.StartedTerm && x.Done.Equal(y.Done)
	})
}

func TestCodecJobs(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	r := Record{Holder: "a", LeaseDuration: time.Second, Term: 9, Jobs: map[string]JobState{
		"backup":      {Started: time.Date(2026, 12, 2, 8, 5, 0, 123456789, berlin), StartedTerm: 9, Done: time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)},
		"report.v2":   {Started: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), StartedTerm: 3},
		"never-done1": {Started: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), StartedTerm: 1},
	}}
	b, err := MarshalRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"jobs":{"backup":{"started":"2026-12-02T07:05:00.123456789Z","started_term":9,"done":"2026-12-02T07:00:00Z"},"never-done1":{"started":"0001-01-01T00:00:00.000000001Z","started_term":1},"report.v2":{"started":"2026-12-01T00:00:00Z","started_term":3}}`; !strings.Contains(string(b), want) {
		t.Fatalf("encoded %s\nwant it to contain %s", b, want)
	}
	got, err := DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if !sameRecord(got, r) {
		t.Fatalf("round trip %+v, want %+v", got, r)
	}
	if got.Jobs["backup"].Started.Location() != time.UTC {
		t.Fatalf("decoded slot in %v, want UTC", got.Jobs["backup"].Started.Location())
	}
	// No jobs: no field, so older readers see the record they know.
	if b := EncodeRecord(Record{Holder: "a", Jobs: map[string]JobState{}}); strings.Contains(string(b), "jobs") {
		t.Fatalf("a record without jobs encodes a jobs field: %s", b)
	}
	for _, in := range []string{`"jobs":null`, `"jobs":{}`} {
		r, err := DecodeRecord([]byte(`{"format":"leasehold.record/v1","holder":"a",` + in + `}`))
		if err != nil || len(r.Jobs) != 0 {
			t.Errorf("%s: %+v, %v; want no jobs", in, r, err)
		}
	}
}

func TestDecodeRejectsBadJobs(t *testing.T) {
	const ok = `{"started":"2026-12-02T07:05:00Z","started_term":2}`
	many := make([]string, MaxJobs+1)
	for i := range many {
		many[i] = fmt.Sprintf(`"j%02d":%s`, i, ok)
	}
	for _, tc := range []struct{ jobs, want string }{
		{`5`, "jobs: 5 is not an object"},
		{`[]`, "jobs: [ is not an object"},
		{`"x"`, "jobs: x is not an object"},
		{`{"a":5}`, `jobs: job "a": 5 is not an object`},
		{`{"a":{"started":"2026-12-02T07:05:00Z","started_term":2,"owner":"x"}}`, `jobs: job "a": unknown field "owner"`},
		{`{"a":{"started":"2026-12-02T07:05:00Z","started_term":2,"started_term":3}}`, `jobs: job "a": field "started_term" given twice`},
		{`{"a":` + ok + `,"a":` + ok + `}`, `jobs: job "a" given twice`},
		{`{"A":` + ok + `}`, `jobs: job name "A"`},
		{`{"-a":` + ok + `}`, `jobs: job name "-a"`},
		{`{"":` + ok + `}`, `jobs: the job name is empty`},
		{`{"` + strings.Repeat("a", 64) + `":` + ok + `}`, `more than 63`},
		{`{` + strings.Join(many, ",") + `}`, `jobs: more than 32 jobs (job "j32")`},
		{`{"a":{"started":"yesterday","started_term":2}}`, `jobs: job "a": started: "yesterday" is not an RFC 3339 time in UTC`},
		{`{"a":{"started":"2026-12-02T08:05:00+01:00","started_term":2}}`, `started: "2026-12-02T08:05:00+01:00" is not an RFC 3339 time in UTC`},
		{`{"a":{"started":"2026-12-02T07:05:00Z"}}`, `jobs: job "a": started_term 0 out of range`},
		{`{"a":{"started":"2026-12-02T07:05:00Z","started_term":-1}}`, `started_term -1 out of range`},
		{`{"a":{"started":"2026-12-02T07:05:00Z","started_term":1.5}}`, `started_term: 1.5 is not an integer in range`},
		{`{"a":{"started":"2026-12-02T07:05:00Z","started_term":"2"}}`, `started_term: 2 is not an integer`},
		{`{"a":{"started_term":2}}`, `started_term 2 without a started slot`},
		{`{"a":{"done":"2026-12-02T07:05:00Z"}}`, `a done slot without a started one`},
		{`{"a":{"started":"2026-12-02T07:05:00Z","started_term":2,"done":"2026-12-02T07:06:00Z"}}`, `done slot 2026-12-02T07:06:00Z after the started slot 2026-12-02T07:05:00Z`},
		{`{"a":{"started":"0001-01-01T00:00:00Z","started_term":2}}`, `started: "0001-01-01T00:00:00Z" is the zero time`},
		{`{"a":{"started":null,"started_term":2}}`, `started: <nil> is not a time`},
		{`{"a":{"started":"2026-12-02T07:05:00Z","started_term":2,"rerun":1}}`, `rerun: 1 is not true or false`},
		{`{"a":{"rerun":true}}`, `a rerun without a started slot`},
	} {
		in := `{"format":"leasehold.record/v1","holder":"a","term":2,"jobs":` + tc.jobs + `}`
		_, err := DecodeRecord([]byte(in))
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("jobs %s: err = %v, want ErrCorrupt saying %q", tc.jobs, err, tc.want)
		}
	}
}

// Writers refuse records out of bounds, naming the job.
func TestMarshalRecordRefusesBadJobs(t *testing.T) {
	slot := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	jobs := map[string]JobState{}
	for i := range MaxJobs + 1 {
		jobs[fmt.Sprintf("j%02d", i)] = JobState{Started: slot, StartedTerm: 1}
	}
	for _, tc := range []struct {
		jobs map[string]JobState
		want string
	}{
		{jobs, `33 jobs, more than 32 (the last: "j32")`},
		{map[string]JobState{"Big": {Started: slot, StartedTerm: 1}}, `job name "Big"`},
		{map[string]JobState{"a": {Started: slot}}, `job "a": started_term 0 out of range`},
		{map[string]JobState{"a": {Started: slot.AddDate(9000, 0, 0), StartedTerm: 1}}, `job "a": started: slot`},
		{map[string]JobState{"a": {Started: slot, StartedTerm: 1, Done: slot.Add(time.Second)}}, `job "a": done slot`},
	} {
		if _, err := MarshalRecord(Record{Holder: "x", Jobs: tc.jobs}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("MarshalRecord: err = %v, want one saying %q", err, tc.want)
		}
	}
}

func TestJobStateCodec(t *testing.T) {
	for _, s := range []JobState{
		{},
		{Started: time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC), StartedTerm: MaxTerm},
		{Started: time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC), StartedTerm: 7, Done: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Started: time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC), StartedTerm: 8, Rerun: true},
	} {
		got, err := DecodeJobState(EncodeJobState(s))
		if err != nil || got != s {
			t.Errorf("round trip of %+v: %+v, %v", s, got, err)
		}
	}
	if got := string(EncodeJobState(JobState{Started: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), StartedTerm: 8, Rerun: true, Done: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)})); got != `{"started":"2026-01-01T00:00:00Z","started_term":8,"rerun":true,"done":"2025-01-01T00:00:00Z"}` {
		t.Errorf("EncodeJobState of a rerun = %s", got)
	}
	for _, in := range []string{``, `{}x`, `{} {}`, `null`, `{"started":"2026-01-01T00:00:00Z","started_term":1}}`} {
		if _, err := DecodeJobState([]byte(in)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeJobState(%q) err = %v, want ErrCorrupt", in, err)
		}
	}
}

func TestValidJobName(t *testing.T) {
	for _, n := range []string{"a", "backup", "nightly-report.v2", "0", strings.Repeat("a", 63)} {
		if err := ValidJobName(n); err != nil {
			t.Errorf("ValidJobName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "A", "a_b", "a b", "-a", "a-", ".a", "a.", "é", strings.Repeat("a", 64), "a/b"} {
		if err := ValidJobName(n); err == nil {
			t.Errorf("ValidJobName(%q) accepted it", n)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(EncodeRecord(Record{Holder: "a", LeaseDuration: time.Second, Term: 1}))
	f.Add([]byte(`{"format":"leasehold.record/v1","holder":"x","lease_duration_ms":9223372036854775807}`))
	f.Add([]byte("\x00garbage"))
	f.Add(EncodeRecord(Record{Holder: "a", LeaseDuration: time.Second, Term: 3, Jobs: map[string]JobState{
		"backup": {Started: time.Date(2026, 12, 2, 7, 5, 0, 1, time.UTC), StartedTerm: 3, Done: time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)},
		"x.y":    {Started: time.Date(2026, 12, 2, 7, 5, 0, 0, time.UTC), StartedTerm: 1},
		"rerun":  {Started: time.Date(2026, 12, 2, 7, 5, 0, 0, time.UTC), StartedTerm: 4, Rerun: true},
	}}))
	f.Add([]byte(`{"format":"leasehold.record/v1","jobs":{"a":{"started":"2026-12-02T07:05:00Z","started_term":2,"done":"2026-12-02T07:05:00Z"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRecord(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// What decodes is a record a writer may write, and it survives the
		// trip: the same values, and the same bytes the second time.
		b, err := MarshalRecord(r)
		if err != nil {
			t.Fatalf("a decoded record is refused for writing: %v", err)
		}
		again, err := DecodeRecord(b)
		if err != nil {
			t.Fatalf("re-encoding a decoded record: %v", err)
		}
		if again.Holder != r.Holder || again.Instance != r.Instance || again.Term != r.Term || again.LeaseDuration != r.LeaseDuration ||
			!maps.Equal(again.Jobs, r.Jobs) {
			t.Fatalf("re-encoded %+v, decoded %+v", again, r)
		}
		if b2 := EncodeRecord(again); string(b2) != string(b) {
			t.Fatalf("encoding is not stable:\n%s\n%s", b, b2)
		}
	})
}
