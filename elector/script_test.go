package elector

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata/*.txt scripts")

// TestScripts runs the scripts in testdata: each block is one input to a
// Machine, a "----" line and the Output it must answer with. Run with
// -rewrite to regenerate the expected outputs after a deliberate change.
// A command the runner does not understand (an unknown verb or key, a key
// given twice, a value that does not parse) fails the test, rewrite or not.
func TestScripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no scripts in testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, mismatches, err := runScript(f, data)
			if err != nil {
				t.Fatal(err)
			}
			if *rewrite {
				if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, m := range mismatches {
				t.Error(m)
			}
		})
	}
}

// The runner refuses what it does not understand, naming the file and the
// line, instead of running a typo as a default (and -rewrite blessing it).
func TestScriptRejectsTypos(t *testing.T) {
	for _, tc := range []struct{ script, want string }{
		{"new id=b rand=0.5\n----\nok\n\nstart tt=0\n----\nget deadline=2s\n", `typo.txt:5: start: unknown key "tt" (want t)`},
		{"new id=b rand=0.5\n\nstart t=0\n\nresult t=1ms holdr=a ver=1\n", `typo.txt:5: result: unknown key "holdr" (want t, holder, instance, term, ld, ver, err, jobs)`},
		{"new id=b rand=0.5\n\nstart t=0\n\nresult t=1ms holder=a term=three ver=1\n", `typo.txt:5: result: term="three" is not an integer`},
		{"new id=b rand=0.5\n\nstart t=1 s\n", `typo.txt:3: start: "s" is not key=value`},
		{"new id=b rand=0.5\n\nstart t=1\n", `typo.txt:3: start: t="1" is not a duration`},
		{"new id=b rand=0.5\n\nstart t=0 t=1s\n", `typo.txt:3: start: t given twice`},
		{"new id=b rand=0.5\n\nstart\n", `typo.txt:3: start: t missing`},
		{"new id=b rand=half\n", `typo.txt:1: new: rand="half" is not a number in [0, 1)`},
		{"new id=b rand=1.5\n", `typo.txt:1: new: rand="1.5" is not a number in [0, 1)`},
		{"new id=b watch=yes\n", `typo.txt:1: new: watch="yes" is not true or false`},
		{"new id=b rand=0.5\n\nstart t=0\n\nresult t=1ms err=notfuond\n", `typo.txt:5: result: err="notfuond" is not one of notfound, conflict, timeout, unreachable, corrupt`},
		{"new id=b rand=0.5\n\nstart t=0\n\nresult t=1ms ld=15\n", `typo.txt:5: result: ld="15" is not a duration`},
		{"new id=b rand=0.5\n\nstart t=0\n\nclaim t=1ms id=1 job=x slot=soon\n", `typo.txt:5: claim: slot="soon" is not a duration`},
		{"new id=b rand=0.5\n\nstart t=0\n\nresult t=1ms jobs=x:1m\n", `typo.txt:5: result: jobs="x:1m" is not name:started:term:done[,...] (durations after the epoch, - for none)`},
		{"new id=b\n\nstrat t=0\n", `typo.txt:3: unknown command "strat" (want new, start, tick, result, watched, stop, workdone, claim, done, rerun, abandon, forget)`},
		{"start t=0\n", "typo.txt:1: no machine: start the script with new"},
		{"new rand=0\n", "typo.txt:1: new: id missing"},
	} {
		_, _, err := runScript("typo.txt", []byte(tc.script))
		if err == nil || err.Error() != tc.want {
			t.Errorf("script %q: err = %v, want %q", tc.script, err, tc.want)
		}
	}
	// A well-formed script whose expected output is wrong is a mismatch,
	// named by file and line.
	_, mismatches, err := runScript("bad.txt", []byte("new id=b\n----\nok\n\nstart t=0\n----\nget deadline=3s\n"))
	if err != nil || len(mismatches) != 1 || !strings.HasPrefix(mismatches[0], "bad.txt:5: start t=0\n") {
		t.Fatalf("mismatches %q, err %v; want one at bad.txt:5", mismatches, err)
	}
}

// runScript runs a script and returns it with the outputs the Machine gave
// (what -rewrite writes) and the blocks whose expected output differs. An
// error is a command the runner does not understand, at name:line.
func runScript(name string, data []byte) (rewritten string, mismatches []string, err error) {
	var out strings.Builder
	var m *Machine
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		cmd := lines[i]
		if strings.TrimSpace(cmd) == "" || strings.HasPrefix(cmd, "#") {
			out.WriteString(cmd + "\n")
			continue
		}
		n := i + 1
		var expected []string
		if i+1 < len(lines) && lines[i+1] == "----" {
			for i += 2; i < len(lines) && lines[i] != ""; i++ {
				expected = append(expected, lines[i])
			}
		}
		got, err := apply(&m, cmd)
		if err != nil {
			return "", nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		if want := strings.Join(expected, "\n"); want != got {
			mismatches = append(mismatches, fmt.Sprintf("%s:%d: %s\n got: %s\nwant: %s", name, n, cmd, got, want))
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n\n", cmd, got)
	}
	return strings.TrimRight(out.String(), "\n") + "\n", mismatches, nil
}

// verbs are the script commands and the keys each takes; those marked
// required must be given.
var verbs = map[string]struct{ keys, required []string }{
	"new":      {keys: []string{"id", "instance", "rand", "watch", "release"}, required: []string{"id"}},
	"start":    {keys: []string{"t"}, required: []string{"t"}},
	"tick":     {keys: []string{"t"}, required: []string{"t"}},
	"result":   {keys: []string{"t", "holder", "instance", "term", "ld", "ver", "err", "jobs"}, required: []string{"t"}},
	"watched":  {keys: []string{"t", "holder", "instance", "term", "ld", "ver", "err", "jobs"}, required: []string{"t"}},
	"stop":     {keys: []string{"t"}, required: []string{"t"}},
	"workdone": {keys: []string{"t"}, required: []string{"t"}},
	"claim":    {keys: []string{"t", "id", "job", "slot"}, required: []string{"t", "id", "job", "slot"}},
	"done":     {keys: []string{"t", "id", "job", "slot"}, required: []string{"t", "id", "job", "slot"}},
	"rerun":    {keys: []string{"t", "id", "job", "slot"}, required: []string{"t", "id", "job", "slot"}},
	"abandon":  {keys: []string{"t", "id", "job", "slot"}, required: []string{"t", "id", "job", "slot"}},
	"forget":   {keys: []string{"t", "id", "job"}, required: []string{"t", "id", "job"}},
}

var verbOrder = []string{"new", "start", "tick", "result", "watched", "stop", "workdone", "claim", "done", "rerun", "abandon", "forget"}

// scriptErrs are the values of err=; the Machine only tells conflicts and
// missing records from other failures.
var scriptErrs = map[string]error{
	"notfound":    ErrNotFound,
	"conflict":    ErrConflict,
	"timeout":     context.DeadlineExceeded,
	"unreachable": errors.New("store unreachable"),
	"corrupt":     fmt.Errorf("lock x: %w", ErrCorrupt),
}

// args are one command's key=value arguments, checked against its verb.
type args struct {
	verb string
	kv   map[string]string
}

func parseArgs(fields []string) (args, error) {
	a := args{verb: fields[0], kv: map[string]string{}}
	v, ok := verbs[a.verb]
	if !ok {
		return a, fmt.Errorf("unknown command %q (want %s)", a.verb, strings.Join(verbOrder, ", "))
	}
	for _, f := range fields[1:] {
		k, val, ok := strings.Cut(f, "=")
		switch {
		case !ok || k == "":
			return a, fmt.Errorf("%s: %q is not key=value", a.verb, f)
		case !slices.Contains(v.keys, k):
			return a, fmt.Errorf("%s: unknown key %q (want %s)", a.verb, k, strings.Join(v.keys, ", "))
		}
		if _, dup := a.kv[k]; dup {
			return a, fmt.Errorf("%s: %s given twice", a.verb, k)
		}
		a.kv[k] = val
	}
	for _, k := range v.required {
		if _, ok := a.kv[k]; !ok {
			return a, fmt.Errorf("%s: %s missing", a.verb, k)
		}
	}
	return a, nil
}

func (a args) has(k string) bool { _, ok := a.kv[k]; return ok }

func (a args) str(k string) string { return a.kv[k] }

func (a args) bad(k, what string) error {
	return fmt.Errorf("%s: %s=%q is not %s", a.verb, k, a.kv[k], what)
}

func (a args) dur(k string, def time.Duration) (time.Duration, error) {
	if !a.has(k) {
		return def, nil
	}
	d, err := time.ParseDuration(a.kv[k])
	if err != nil {
		return 0, a.bad(k, "a duration")
	}
	return d, nil
}

func (a args) int(k string) (int64, error) {
	if !a.has(k) {
		return 0, nil
	}
	v, err := strconv.ParseInt(a.kv[k], 10, 64)
	if err != nil {
		return 0, a.bad(k, "an integer")
	}
	return v, nil
}

func (a args) float(k string) (float64, error) {
	if !a.has(k) {
		return 0, nil
	}
	v, err := strconv.ParseFloat(a.kv[k], 64)
	if err != nil || !(v >= 0 && v < 1) {
		return 0, a.bad(k, "a number in [0, 1)")
	}
	return v, nil
}

func (a args) bool(k string, def bool) (bool, error) {
	if !a.has(k) {
		return def, nil
	}
	switch a.kv[k] {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, a.bad(k, "true or false")
}

// jobs reads job entries: name:started:term:done, comma-separated, the
// times as durations after the epoch and - for none, the term followed by
// r for a rerun.
func (a args) jobs(k string) (map[string]JobState, error) {
	if !a.has(k) {
		return nil, nil
	}
	bad := a.bad(k, "name:started:term:done[,...] (durations after the epoch, - for none)")
	jobs := map[string]JobState{}
	for _, e := range strings.Split(a.kv[k], ",") {
		f := strings.Split(e, ":")
		if len(f) != 4 {
			return nil, bad
		}
		var st JobState
		for i, p := range []*time.Time{&st.Started, &st.Done} {
			v := f[1+2*i]
			if v == "-" {
				continue
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, bad
			}
			*p = epoch.Add(d)
		}
		var err error
		term, rerun := strings.CutSuffix(f[2], "r")
		st.Rerun = rerun
		if st.StartedTerm, err = strconv.ParseInt(term, 10, 64); err != nil {
			return nil, bad
		}
		jobs[f[0]] = st
	}
	return jobs, nil
}

// showJobs spells job entries as the jobs key reads them.
func showJobs(jobs map[string]JobState) string {
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Sub(epoch).String()
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(jobs)) {
		st := jobs[name]
		rerun := ""
		if st.Rerun {
			rerun = "r"
		}
		parts = append(parts, fmt.Sprintf("%s:%s:%d%s:%s", name, at(st.Started), st.StartedTerm, rerun, at(st.Done)))
	}
	return strings.Join(parts, ",")
}

// failure reads the error a call or watch returned (the first result) or
// says why the value is not one (the second).
func (a args) failure(k string) (error, error) {
	if !a.has(k) {
		return nil, nil
	}
	e, ok := scriptErrs[a.kv[k]]
	if !ok {
		return nil, a.bad(k, "one of notfound, conflict, timeout, unreachable, corrupt")
	}
	return e, nil
}

// apply runs one script command: a verb and key=value arguments.
func apply(mp **Machine, cmd string) (string, error) {
	a, err := parseArgs(strings.Fields(cmd))
	if err != nil {
		return "", err
	}
	if a.verb == "new" {
		cfg := DefaultConfig(a.str("id"))
		cfg.Instance = a.str("instance")
		f, err := a.float("rand")
		if err != nil {
			return "", err
		}
		watch, err := a.bool("watch", false)
		if err != nil {
			return "", err
		}
		if cfg.ReleaseOnCancel, err = a.bool("release", true); err != nil {
			return "", err
		}
		m, err := NewMachine(cfg, fixedRand(f), watch)
		if err != nil {
			return "", err
		}
		// Scripts are on a store that never forgets unless they say so
		// (remembers=false: the first-read hold and wall-clock terms).
		remembers, err := a.bool("remembers", true)
		if err != nil {
			return "", err
		}
		if remembers {
			m.StoreNeverForgets()
		}
		*mp = m
		return "ok", nil
	}
	m := *mp
	if m == nil {
		return "", errors.New("no machine: start the script with new")
	}
	t, err := a.dur("t", 0)
	if err != nil {
		return "", err
	}
	now := at(t)
	var o Output
	switch a.verb {
	case "start":
		o = m.Start(now)
	case "tick":
		o = m.Tick(now)
	case "stop":
		o = m.Stop(now)
	case "workdone":
		o = m.WorkDone(now)
	case "claim", "done", "rerun", "abandon":
		id, err := a.int("id")
		if err != nil {
			return "", err
		}
		slot, err := a.dur("slot", 0)
		if err != nil {
			return "", err
		}
		o = m.Claim(now, ClaimRequest{ID: uint64(id), Job: a.str("job"), Slot: epoch.Add(slot), Done: a.verb == "done", Rerun: a.verb == "rerun", Abandon: a.verb == "abandon"})
	case "forget":
		id, err := a.int("id")
		if err != nil {
			return "", err
		}
		o = m.Claim(now, ClaimRequest{ID: uint64(id), Job: a.str("job"), Forget: true})
	case "result", "watched":
		rec := Record{Holder: a.str("holder"), Instance: a.str("instance"), AcquireTime: epoch, RenewTime: epoch}
		if rec.Jobs, err = a.jobs("jobs"); err != nil {
			return "", err
		}
		if rec.LeaseDuration, err = a.dur("ld", ld); err != nil {
			return "", err
		}
		if rec.Term, err = a.int("term"); err != nil {
			return "", err
		}
		e, err := a.failure("err")
		if err != nil {
			return "", err
		}
		ver := Version(a.str("ver"))
		if a.verb == "result" {
			o = m.Result(now, rec, ver, e)
		} else {
			o = m.Watched(now, rec, ver, e)
		}
	}
	return show(o), nil
}
