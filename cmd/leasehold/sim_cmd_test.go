package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// --runs folds each run into the aggregate; per-run detail only with
// --per-run. The text gives failovers by cause.
func TestSimRuns(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"sim", "--runs", "8", "--json", "random-chaos"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var agg map[string]json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &agg); err != nil {
		t.Fatal(err)
	}
	if _, ok := agg["runs"]; ok || agg["aggregate"] == nil || !strings.Contains(string(agg["aggregate"]), `"by_cause"`) {
		t.Fatalf("--json --runs 8: keys %v, want the aggregate (with by_cause) alone", keys(agg))
	}
	out.Reset()
	if code := run(context.Background(), []string{"sim", "--runs", "3", "--json", "--per-run", "random-chaos"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var both struct {
		Runs []struct{ Seed uint64 }
	}
	if err := json.Unmarshal(out.Bytes(), &both); err != nil || len(both.Runs) != 3 || both.Runs[2].Seed != both.Runs[0].Seed+2 {
		t.Fatalf("--per-run: %v, runs %+v; want 3 runs in seed order", err, both.Runs)
	}
	out.Reset()
	if code := run(context.Background(), []string{"sim", "--runs", "4", "random-chaos"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"crash ", "stop ", "failovers: p50"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"sim", "--runs", "3", "long-pause"}, &out, &errb); code != 3 ||
		!strings.Contains(out.String(), "dual-leadership windows") || !strings.Contains(errb.String(), "rerun: leasehold sim --seed") {
		t.Fatalf("long-pause: exit %d, stdout %q, stderr %q; want 3, the windows and a rerun hint", code, out.String(), errb.String())
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Progress goes to the progress writer (stderr, when it is a terminal):
// the count of finished runs, ending with all of them; none otherwise.
func TestSimProgress(t *testing.T) {
	var out, errb, prog bytes.Buffer
	f := simFlags{runs: 30, scenario: "leader-crash", progress: &prog}
	if err := simCmd(context.Background(), f, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(prog.String(), "\r30 of 30 runs\n") {
		t.Fatalf("progress %q, want it to end with 30 of 30 runs", prog.String())
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"sim", "--runs", "30", "leader-crash"}, &out, &errb); code != 0 || errb.Len() != 0 {
		t.Fatalf("exit %d, stderr %q: progress on a stderr that is not a terminal", code, errb.String())
	}
}
