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
		if again.Holder != r.Holder || again.Term != r.Term || again.LeaseDuration != r.LeaseDuration {
			t.Fatalf("re-encoded %+v, decoded %+v", again, r)
		}
	})
}
