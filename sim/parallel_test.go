package sim

import (
	"context"
	"testing"
)

// RunMany runs every job once, hands each result to the caller's
// goroutine, and stops handing out runs when its context is done.
func TestRunMany(t *testing.T) {
	sc, err := ParseScenario([]byte("name: t\nnodes: 3\nduration: 1m\nlease: {duration: 15s, renew_deadline: 10s, retry_period: 2s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]uint64{}
	RunMany(context.Background(), 20, 3, func(i int) (*Scenario, Options) { return sc, Options{Seed: uint64(100 + i)} },
		func(i int, r *Result, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := seen[i]; dup {
				t.Fatalf("run %d handed over twice", i)
			}
			seen[i] = r.Seed
		})
	for i := range 20 {
		if seen[i] != uint64(100+i) {
			t.Fatalf("run %d: seed %d, want %d (of %d runs)", i, seen[i], 100+i, len(seen))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	RunMany(ctx, 1000, 2, func(i int) (*Scenario, Options) { return sc, Options{Seed: uint64(i)} }, func(int, *Result, error) { n++ })
	if n != 0 {
		t.Fatalf("%d runs after the context was done, want none", n)
	}
}
