//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/internal/servers"
	"github.com/leasehold-go/leasehold/internal/storeprofile"
)

// firstLine is the benchmark's command: it writes one line, "term identity
// unix-ns", as soon as it runs, then waits to be stopped.
const firstLine = `echo "$LEASEHOLD_TERM $LEASEHOLD_IDENTITY $(date +%s%N)" >> "$OUT"; exec sleep 1000`

// BenchmarkRunHandoff measures a graceful handoff through `leasehold run`
// on etcd, Consul and a kube-apiserver (lease 2s / 1.5s / 250ms): two replicas, the
// leader gets SIGTERM, and the time is from the signal to the next
// leader's command writing its first line. In the same run it measures
// what that cannot go below: the command's own start (the same sh -c,
// started directly), and the store's part (the old leader's "released the
// lock" to the new one's "started leading", from their JSON logs). Run
// it with a fixed count, each round takes a few seconds:
//
//	go test -run '^$' -bench RunHandoff -benchtime 15x ./cmd/leasehold
func BenchmarkRunHandoff(b *testing.B) {
	b.Run("etcd", func(b *testing.B) {
		needBinaryAndEtcd(b)
		cfg, _ := writeConfig(b, "")
		benchHandoff(b, cfg, nil)
	})
	b.Run("consul", func(b *testing.B) {
		srv := needBinaryAndConsul(b)
		cfg, _ := writeConsulConfig(b)
		benchHandoff(b, cfg, []string{"LEASEHOLD_CONSUL_ADDRESS=" + srv.Address})
	})
	b.Run("kube", func(b *testing.B) {
		if binErr != nil {
			b.Fatal(binErr)
		}
		k, err := servers.StartKube()
		servers.Require(b, err)
		b.Cleanup(k.Stop)
		cfg := filepath.Join(b.TempDir(), "leasehold.yaml")
		body := fmt.Sprintf("backend: kube\nname: handoff-%d\nlease: {duration: 2s, renew_deadline: 1500ms, retry_period: 250ms, release_on_cancel: true}\nkube:\n  kubeconfig: %s\n  namespace: default\n", time.Now().UnixNano(), k.AdminKubeconfig)
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
		benchHandoff(b, cfg, nil)
	})
}

// benchHandoff runs BenchmarkRunHandoff's rounds on the lock of cfg.
func benchHandoff(b *testing.B, cfg string, env []string) {
	out := filepath.Join(b.TempDir(), "out.txt")
	env = append(env, "OUT="+out)
	start := func(id string) *proc {
		return startLeasehold(b, id, env, "run", "--config", cfg, "--log-format", "json", "--id", id, "--grace", "300ms", "--", "sh", "-c", firstLine)
	}
	procs := map[string]*proc{"a": start("a")}
	waitFor(b, out, time.Minute, "a leading", func(ls []line) bool { return len(ls) == 1 })
	procs["b"] = start("b")
	following := func(p *proc) {
		deadline := time.Now().Add(time.Minute)
		for !strings.Contains(p.logs.String(), `"msg":"new leader observed"`) {
			if time.Now().After(deadline) {
				b.Fatalf("%s never followed:\n%s", p.id, p.logs)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// A replica acquires nothing before a lease after its first read
		// (docs/architecture.md), and its guard is started ahead of time
		// meanwhile: give it both, so the next round measures a handoff
		// and not that hold.
		time.Sleep(3 * time.Second)
	}
	following(procs["b"])

	var handoff, stopping, stopped, release, store, leadToGrant, leadToLine []time.Duration
	b.ResetTimer()
	for range b.N {
		ls := readLines(b, out)
		leader := lastID(ls)
		next := map[string]string{"a": "b", "b": "a"}[leader]
		sent := time.Now()
		procs[leader].cmd.Process.Signal(syscall.SIGTERM)
		ls = waitFor(b, out, time.Minute, "the next leader's command", func(ls []line) bool { return lastID(ls) == next })
		first := ls[len(ls)-1].at
		handoff = append(handoff, first.Sub(sent))
		<-procs[leader].done
		if code := procs[leader].cmd.ProcessState.ExitCode(); code != 0 {
			b.Fatalf("%s exited %d after SIGTERM:\n%s", leader, code, procs[leader].logs)
		}
		released := lastLogTime(b, procs[leader], `"msg":"released the lock"`)
		asked := lastLogTime(b, procs[leader], `"msg":"stopping the command"`)
		stopping = append(stopping, asked.Sub(sent))
		gone := lastLogTime(b, procs[leader], `"msg":"the command stopped"`)
		stopped = append(stopped, gone.Sub(asked))
		release = append(release, released.Sub(gone))
		led := lastLogTime(b, procs[next], `"msg":"started leading"`)
		granted := lastLogTime(b, procs[next], `"msg":"started the command"`)
		store = append(store, led.Sub(released))
		leadToGrant = append(leadToGrant, granted.Sub(led))
		leadToLine = append(leadToLine, first.Sub(led))
		b.StopTimer()
		procs[leader] = start(leader)
		following(procs[leader])
		b.StartTimer()
	}
	b.StopTimer()

	// The command's own start, directly: sh -c writing its first line.
	var direct []time.Duration
	for range b.N {
		sent := time.Now()
		c := exec.Command("sh", "-c", strings.Replace(firstLine, "; exec sleep 1000", "", 1))
		c.Env = append(c.Environ(), "OUT="+out, "LEASEHOLD_TERM=0", "LEASEHOLD_IDENTITY=direct")
		if err := c.Run(); err != nil {
			b.Fatal(err)
		}
		ls := readLines(b, out)
		direct = append(direct, ls[len(ls)-1].at.Sub(sent))
	}
	ms := func(ds []time.Duration, p float64) float64 {
		slices.Sort(ds)
		return float64(ds[int(p*float64(len(ds)-1))]) / 1e6
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(handoff, 0.5), "handoff-p50-ms")
	b.ReportMetric(ms(handoff, 0.9), "handoff-p90-ms")
	b.ReportMetric(ms(handoff, 1), "handoff-max-ms")
	b.ReportMetric(ms(stopping, 0.5), "signal-to-stopping-p50-ms")
	b.ReportMetric(ms(stopped, 0.5), "stopping-to-stopped-p50-ms")
	b.ReportMetric(ms(release, 0.5), "stopped-to-released-p50-ms")
	b.ReportMetric(ms(store, 0.5), "released-to-leading-p50-ms")
	b.ReportMetric(ms(leadToGrant, 0.5), "leading-to-grant-p50-ms")
	b.ReportMetric(ms(leadToLine, 0.5), "leading-to-first-line-p50-ms")
	b.ReportMetric(ms(direct, 0.5), "command-alone-p50-ms")
	// The simulator's work times (sim.Profiles): start = leading to the
	// first line, stop = stopping to stopped, and their lognormal spread.
	b.ReportMetric(storeprofile.WorkSigma(storeprofile.StatsOf(leadToLine), storeprofile.StatsOf(stopped)), "work-sigma")
}

// lastLogTime is the time of p's last JSON log line containing msg, at
// the nanosecond resolution slog's JSON handler writes.
func lastLogTime(tb testing.TB, p *proc, msg string) time.Time {
	tb.Helper()
	var at time.Time
	for _, l := range strings.Split(p.logs.String(), "\n") {
		if !strings.Contains(l, msg) {
			continue
		}
		var rec struct {
			Time time.Time `json:"time"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			tb.Fatalf("%s: log line %q: %v", p.id, l, err)
		}
		at = rec.Time
	}
	if at.IsZero() {
		tb.Fatalf("%s never logged %s:\n%s", p.id, msg, p.logs)
	}
	return at
}
