package sim

import (
	"testing"
	"time"
)

// BenchmarkHour simulates random-chaos: 5 nodes, one hour, RetryPeriod 2s,
// random faults. sim-s/s is simulated seconds per wall-clock second (goal:
// at least 100,000).
func BenchmarkHour(b *testing.B) {
	sc := load(b, "random-chaos")
	b.ReportAllocs()
	seed := uint64(0)
	start := time.Now()
	for b.Loop() {
		seed++
		if _, err := Run(sc, Options{Seed: seed}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(sc.Duration.Seconds()*float64(seed)/time.Since(start).Seconds(), "sim-s/s")
}
