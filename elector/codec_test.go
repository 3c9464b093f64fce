package elector

import (
	"errors"
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

func FuzzDecodeRecord(f *testing.F) {
	f.Add(EncodeRecord(Record{Holder: "a", LeaseDuration: time.Second, Term: 1}))
	f.Add([]byte(`{"format":"leasehold.record/v1","holder":"x","lease_duration_ms":9223372036854775807}`))
	f.Add([]byte("\x00garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRecord(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := DecodeRecord(EncodeRecord(r))
		if err != nil {
			t.Fatalf("re-encoding a decoded record: %v", err)
		}
		if again.Holder != r.Holder || again.Instance != r.Instance || again.Term != r.Term || again.LeaseDuration != r.LeaseDuration {
			t.Fatalf("re-encoded %+v, decoded %+v", again, r)
		}
	})
}
