package kube_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// figureTiming is the timing of the published figures: 4s / 3s / 1s.
var figureTiming = timing{4 * time.Second, 3 * time.Second, time.Second}

type starter func(t testing.TB, lock, id string, tm timing) *cand

var kinds = []struct {
	name  string
	start starter
}{{"leasehold", startLeasehold}, {"client-go", startClientGo}}

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkHandoff: a leader of each kind stops gracefully (release on
// cancel); the time until the follower of the same kind leads. Run with
// -benchtime 5x: every iteration takes a few seconds.
func BenchmarkHandoff(b *testing.B) {
	need(b)
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			var ds []time.Duration
			for i := 0; i < b.N; i++ {
				lock := fmt.Sprintf("bench-handoff-%d", time.Now().UnixNano()%1e9)
				x, y := k.start(b, lock, "x", figureTiming), k.start(b, lock, "y", figureTiming)
				leader := leaderAmong(b, 15*time.Second, x, y)
				follower := x
				if leader == x {
					follower = y
				}
				time.Sleep(1500 * time.Millisecond) // the follower has seen the leader
				t0 := time.Now()
				leader.stop()
				<-follower.started
				ds = append(ds, time.Since(t0))
				follower.stop()
			}
			b.ReportMetric(ms(median(ds)), "median-ms")
			b.ReportMetric(ms(slices.Max(ds)), "max-ms")
		})
	}
}

// BenchmarkCrashFailover: the leader's network is cut (no release); the
// time from its last acknowledged renewal to the follower leading.
func BenchmarkCrashFailover(b *testing.B) {
	need(b)
	leases := admin(b).CoordinationV1().Leases("default")
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			var ds []time.Duration
			for i := 0; i < b.N; i++ {
				lock := fmt.Sprintf("bench-crash-%d", time.Now().UnixNano()%1e9)
				x, y := k.start(b, lock, "x", figureTiming), k.start(b, lock, "y", figureTiming)
				leader := leaderAmong(b, 15*time.Second, x, y)
				follower := x
				if leader == x {
					follower = y
				}
				time.Sleep(2500 * time.Millisecond)
				leader.cut.Store(true)
				<-follower.started
				at := time.Now()
				// The send time of the leader's last acknowledged write
				// (PUT), recorded by its transport, the same way for both
				// kinds.
				last := time.Unix(0, leader.renewed.Load())
				if leader.renewed.Load() == 0 {
					b.Fatalf("%s: no renewal recorded", k.name)
				}
				ds = append(ds, at.Sub(last))
				leader.stop()
				follower.stop()
				leases.Delete(ctxT(b), lock, metav1.DeleteOptions{})
			}
			b.ReportMetric(ms(median(ds)), "median-ms")
			b.ReportMetric(ms(slices.Max(ds)), "max-ms")
		})
	}
}

// BenchmarkRequests: requests per second of a follower and of the leader
// while nothing changes, over 10s, each kind on its own Lease.
func BenchmarkRequests(b *testing.B) {
	need(b)
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			var fol, lead float64
			for i := 0; i < b.N; i++ {
				lock := fmt.Sprintf("bench-reqs-%d", time.Now().UnixNano()%1e9)
				x, y := k.start(b, lock, "x", figureTiming), k.start(b, lock, "y", figureTiming)
				leader := leaderAmong(b, 15*time.Second, x, y)
				follower := x
				if leader == x {
					follower = y
				}
				time.Sleep(2 * time.Second)
				f0, l0 := follower.reqs.Load(), leader.reqs.Load()
				const window = 10 * time.Second
				time.Sleep(window)
				fol += float64(follower.reqs.Load()-f0) / window.Seconds()
				lead += float64(leader.reqs.Load()-l0) / window.Seconds()
				x.stop()
				y.stop()
			}
			b.ReportMetric(fol/float64(b.N), "follower-req/s")
			b.ReportMetric(lead/float64(b.N), "leader-req/s")
		})
	}
}
