package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/bench"
	"github.com/leasehold-go/leasehold/cmd/leasehold/benchreal"
)

// bench sweep: the grid from the flags, every output, the recommendation,
// and bad input said naming the flag.
func TestBenchSweep(t *testing.T) {
	sweep := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"bench", "sweep", "--seeds", "3", "--duration", "10m"}, args...), &out, &errb)
		return out.String(), errb.String(), code
	}
	out, errs, code := sweep("--lease-duration", "5s,10s", "--retry-period", "0.1,500ms", "--json")
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || len(res.Points) != 4 {
		t.Fatalf("--json: exit %d, %v, %d points; stderr %q", code, err, len(res.Points), errs)
	}
	if p := res.Points[1]; time.Duration(p.LeaseDurationText) != 5*time.Second || time.Duration(p.RetryPeriodText) != 500*time.Millisecond || time.Duration(p.RenewDeadlineText).Milliseconds() != 3333 {
		t.Errorf("point 1: %+v; want lease 5s, retry 500ms, renew 2/3 of the lease", p.Params)
	}
	out, _, code = sweep("--lease-duration", "5s", "--nodes", "3,5", "--watch", "on,off", "--csv")
	pts, err := bench.ReadCSV(strings.NewReader(out))
	if code != 0 || err != nil || len(pts) != 4 || pts[3].Nodes != 5 || pts[3].Watch {
		t.Fatalf("--csv: exit %d, %v, %+v", code, err, pts)
	}
	dir := filepath.Join(t.TempDir(), "plots")
	out, errs, code = sweep("--lease-duration", "5s,15s", "--recommend", "--max-failover", "10s", "--svg", dir)
	if code != 0 || !strings.Contains(out, "recommended: 5s/3.333s/667ms n=3 watch\n") || !strings.Contains(out, "rejected:\n  15s/10s/2s n=3 watch: max-failover: crash failover p99") {
		t.Fatalf("--recommend: exit %d\n%s\n%s", code, out, errs)
	}
	for _, f := range []string{"tradeoff.svg", "handoff.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("--svg: %v", err)
		}
	}
	// A constraint alone asks for the recommendation; none meeting it
	// exits 3.
	if out, errs, code := sweep("--lease-duration", "15s", "--tolerate-pause", "6s"); code != 3 || !strings.Contains(out, "nothing recommended: no combination is safe and meets every constraint\n") ||
		!strings.Contains(out, "closest: 15s/10s/2s n=3 watch, which misses tolerate-pause: tolerates a pause of 5s < 6s") || !strings.Contains(errs, "nothing recommended") {
		t.Errorf("--tolerate-pause 6s: exit %d\n%s\n%s", code, out, errs)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--renew-deadline", "1.5"}, "--renew-deadline: 1.5: a fraction of the lease duration must be between 0 and 1"},
		{[]string{"--retry-period", "soon"}, `--retry-period: "soon" is neither a positive duration`},
		{[]string{"--lease-duration", "5"}, `--lease-duration: "5" is not a positive duration`},
		{[]string{"--nodes", "1"}, `--nodes: "1": want a whole number from 2 to 100`},
		{[]string{"--watch", "maybe"}, `--watch: "maybe": want on or off`},
		{[]string{"--faults", "meteor"}, `unknown fault "meteor"`},
		{[]string{"--renew-deadline", "0.1", "--retry-period", "0.1"}, "no valid combination"},
		{[]string{"--scenario", "no-such-scenario"}, "--scenario:"},
		{[]string{"--csv", "--json"}, "choose one"},
		{[]string{"--csv", "--recommend"}, "--csv has no room for the recommendation"},
		{[]string{"--csv", "--max-failover", "1m"}, "--csv has no room for the recommendation"},
	} {
		if _, errs, code := sweep(tc.args...); code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}

// The case: the fastest lease of the grid (5s, two thirds of it
// as the renew deadline) has dual leadership in every seed under the
// default faults' pauses. bench sweep --recommend never recommends it,
// whatever the constraints: it is rejected, the reason naming the unsafe
// seeds and the fault, in the table and in JSON; when nothing else meets
// --max-failover it says so, names the closest and exits 3.
func TestBenchSweepRecommendRejectsUnsafe(t *testing.T) {
	sweep := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"bench", "sweep", "--lease-duration", "5s,15s,30s", "--seeds", "4", "--duration", "1h", "--recommend"}, args...), &out, &errb)
		return out.String(), errb.String(), code
	}
	unsafeRow := regexp.MustCompile(`(?m)^ +5s +3\.333s +667ms +3 +watch .* 4/4 `)
	rejected := "rejected:\n  5s/3.333s/667ms n=3 watch: safety: 4/4 seeds unsafe under crash,stop,partition,pause: dual leadership after a pause (4 seeds)\n"
	// No constraint: the fastest is unsafe, the next is recommended.
	out, errs, code := sweep()
	if code != 0 || !unsafeRow.MatchString(out) || !strings.Contains(out, "recommended: 15s/10s/2s n=3 watch\n") || !strings.Contains(out, rejected) {
		t.Fatalf("no constraint: exit %d; want 0, the 5s row 4/4 unsafe, 15s recommended, 5s rejected\n%s\n%s", code, out, errs)
	}
	// --max-failover 10s: the 5s lease alone is fast enough, and unsafe.
	out, errs, code = sweep("--max-failover", "10s")
	if code != 3 || regexp.MustCompile(`(?m)^recommended: `).MatchString(out) || !strings.Contains(out, "nothing recommended: no combination is safe and meets every constraint\n") ||
		!strings.Contains(out, "closest: 15s/10s/2s n=3 watch, which misses max-failover: crash failover p99 ") ||
		!strings.Contains(out, rejected) || !strings.Contains(out, "\n  30s/20s/4s n=3 watch: max-failover: crash failover p99 ") ||
		!strings.Contains(errs, "nothing recommended") {
		t.Fatalf("--max-failover 10s: exit %d; want 3, nothing recommended, 15s closest, 5s rejected as unsafe\n%s\n%s", code, out, errs)
	}
	// The same in JSON.
	out, errs, code = sweep("--max-failover", "10s", "--json")
	var res struct {
		Points         []bench.Point        `json:"points"`
		Recommendation bench.Recommendation `json:"recommendation"`
	}
	if err := json.Unmarshal([]byte(out), &res); code != 3 || err != nil {
		t.Fatalf("--json: exit %d, %v\n%s\n%s", code, err, out, errs)
	}
	rec := res.Recommendation
	if rec.Recommended != nil || len(rec.Meet) != 0 || len(rec.Rejected) != 3 || rec.Closest == nil || time.Duration(rec.Closest.LeaseDurationText) != 15*time.Second {
		t.Fatalf("--json: recommended %v, %d meet, %d rejected, closest %v", rec.Recommended, len(rec.Meet), len(rec.Rejected), rec.Closest)
	}
	r5 := rec.Rejected[0]
	if time.Duration(r5.LeaseDurationText) != 5*time.Second || r5.UnsafeSeeds != 4 || len(r5.Reasons) != 1 ||
		r5.Reasons[0].Constraint != bench.ConstraintSafety || r5.Reasons[0].Measured != "4/4 seeds unsafe" ||
		!strings.Contains(r5.Reasons[0].Text, "dual leadership after a pause") {
		t.Errorf("--json: the 5s lease rejected as %+v", r5)
	}
	if c := rec.Closest.Reasons; len(c) != 1 || c[0].Constraint != bench.ConstraintMaxFailover || c[0].Limit != "10s" || c[0].Measured == "" {
		t.Errorf("--json: closest's reasons %+v", c)
	}
}

// bench backend against the real etcd: leasehold watching and polling and
// etcd's own Election, every figure there, the ratios computed.
func TestBenchBackendEtcd(t *testing.T) {
	needBinaryAndEtcd(t)
	cfg, lock := writeConfig(t, "")
	out, errs, code := runBinary(t, 3*time.Minute, "bench", "backend", "--config", cfg, "--candidates", "2", "--rounds", "2",
		"--window", "2s", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	var rep benchreal.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	got := map[string]bool{}
	for _, r := range rep.Results {
		got[r.Implementation+"/"+r.Mode] = true
		if r.Error != "" {
			t.Errorf("%s %s: %s", r.Implementation, r.Mode, r.Error)
		}
	}
	for _, want := range []string{benchreal.ImplLeasehold + "/" + benchreal.ModeWatch, benchreal.ImplLeasehold + "/" + benchreal.ModePoll, benchreal.ImplEtcd + "/" + benchreal.ModeNative} {
		if !got[want] {
			t.Errorf("no %s in %v", want, got)
		}
	}
	if len(rep.Ratios) == 0 || rep.Backend != "etcd" || rep.LeaseDuration != benchreal.Duration(2*time.Second) {
		t.Errorf("report: backend %q, lease %v, %d ratios", rep.Backend, rep.LeaseDuration, len(rep.Ratios))
	}
	// The config's own lock was not touched.
	if _, _, code := runBinary(t, 10*time.Second, "status", "--config", cfg); code != 3 {
		t.Errorf("status of %s after the bench: exit %d, want 3 (no record)", lock, code)
	}
}
