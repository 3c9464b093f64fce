package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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
	if code != 0 || !strings.Contains(out, "meet every constraint, best first:\n  1. 5s/3.333s/667ms") || !strings.Contains(out, "fails: 15s/10s/2s n=3 watch: crash failover p99") {
		t.Fatalf("--recommend: exit %d\n%s\n%s", code, out, errs)
	}
	for _, f := range []string{"failover.svg", "requests.svg", "safety.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("--svg: %v", err)
		}
	}
	// A constraint alone asks for the recommendation.
	if out, _, _ := sweep("--lease-duration", "15s", "--tolerate-pause", "6s"); !strings.Contains(out, "no combination meets every constraint") ||
		!strings.Contains(out, "tolerates a pause of 5s < 6s") {
		t.Errorf("--tolerate-pause 6s:\n%s", out)
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
	} {
		if _, errs, code := sweep(tc.args...); code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
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
