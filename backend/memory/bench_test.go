package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
)

// BenchmarkRenew measures one renewal round trip on the memory store: the
// Machine's Tick, the Update call (encoding included) and the Result.
func BenchmarkRenew(b *testing.B) {
	s := memory.New()
	be := s.Backend("lock", "me")
	m, err := elector.NewMachine(elector.DefaultConfig("me"), zero{}, true)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	now := func(d time.Duration) elector.Now { return elector.Now{Mono: d, Wall: time.Unix(0, 0).Add(d)} }
	out := m.Start(now(0))
	var mono time.Duration
	for {
		var rec elector.Record
		var ver elector.Version
		switch out.Call.Op {
		case elector.OpGet:
			rec, ver, err = be.Get(ctx)
		case elector.OpCreate:
			ver, err = be.Create(ctx, out.Call.Record)
		}
		out = m.Result(now(0), rec, ver, err)
		if out.Started {
			break
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		mono += 2 * time.Second
		out = m.Tick(now(mono))
		if out.Call.Op != elector.OpUpdate {
			b.Fatalf("want a renewal, got %v", out.Call.Op)
		}
		ver, err := be.Update(ctx, out.Call.Record, out.Call.Version)
		out = m.Result(now(mono), elector.Record{}, ver, err)
		if out.Stopped {
			b.Fatal("lost leadership")
		}
	}
}

type zero struct{}

func (zero) Float64() float64 { return 0 }
