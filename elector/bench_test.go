package elector

import (
	"testing"
	"time"
)

// BenchmarkMachineStep measures one input to the Machine: a leader's renewal
// cycle alternates a Tick (answered with an Update) and a Result (answered
// with a Wait). Goal: ≤ 1 µs and ≤ 2 allocations per step.
func BenchmarkMachineStep(b *testing.B) {
	m, err := NewMachine(DefaultConfig("me"), fixedRand(0.5), true)
	if err != nil {
		b.Fatal(err)
	}
	m.Start(at(0))
	m.Result(at(0), Record{}, "", ErrNotFound)
	m.Result(at(0), Record{}, "v1", nil)
	now := time.Duration(0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			now += rp
			if out := m.Tick(at(now)); out.Call.Op != OpUpdate {
				b.Fatalf("step %d: %v", i, out.Call.Op)
			}
		} else if out := m.Result(at(now), Record{}, "v1", nil); out.Call.Op != OpNone {
			b.Fatalf("step %d: %v", i, out.Call.Op)
		}
		i++
	}
}

// BenchmarkFollowerStep measures a watching follower observing a renewal.
func BenchmarkFollowerStep(b *testing.B) {
	m, _ := NewMachine(DefaultConfig("me"), fixedRand(0.5), true)
	m.Start(at(0))
	m.Result(at(0), Record{Holder: "other", LeaseDuration: ld, Term: 1}, "v0", nil)
	vers := [2]Version{"v1", "v2"}
	r := Record{Holder: "other", LeaseDuration: ld, Term: 1}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if out := m.Watched(at(time.Duration(i)*time.Millisecond), r, vers[i%2], nil); !out.Wait.Watch {
			b.Fatal("not watching")
		}
		i++
	}
}
