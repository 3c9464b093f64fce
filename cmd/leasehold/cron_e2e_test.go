package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/internal/servers"
)

// cronJobScript writes a line every 100ms for about 800ms (of the 2s
// between slots): slot, replica, rerun flag, time. A run cut short stops
// writing when it is killed.
const cronJobLines = 8
const cronJobScript = `i=0; while [ $i -lt 8 ]; do echo "$LEASEHOLD_SLOT $LEASEHOLD_IDENTITY ${LEASEHOLD_SLOT_RERUN:-0} $(date +%s%N)" >> "$OUT"; sleep 0.1; i=$((i+1)); done`

type cronLine struct {
	slot  time.Time
	id    string
	rerun bool
	at    time.Time
}

func cronLines(t *testing.T, path string) []cronLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []cronLine
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 4 {
			continue
		}
		slot, err := time.Parse(time.RFC3339, f[0])
		ns, err2 := strconv.ParseInt(f[3], 10, 64)
		if err != nil || err2 != nil {
			t.Fatalf("bad line %q", l)
		}
		out = append(out, cronLine{slot, f[1], f[2] == "1", time.Unix(0, ns)})
	}
	return out
}

// run is one run of the job: its slot, replica, whether a rerun, and the
// times of its first and last line.
type cronRun struct {
	slot        time.Time
	id          string
	rerun       bool
	first, last time.Time
	lines       int
}

func cronRuns(ls []cronLine) []cronRun {
	var runs []cronRun
	idx := map[string]int{}
	for _, l := range ls {
		k := fmt.Sprintf("%d %s %v", l.slot.Unix(), l.id, l.rerun)
		i, ok := idx[k]
		if !ok {
			i = len(runs)
			idx[k] = i
			runs = append(runs, cronRun{slot: l.slot, id: l.id, rerun: l.rerun, first: l.at})
		}
		r := &runs[i]
		r.last = l.at
		r.lines++
	}
	return runs
}

func cronLockConfig(t *testing.T) (path, lock string) {
	return writeConfig(t, "")
}

// leaderOf is the replica that wrote the latest line.
func leaderOf(ls []cronLine) string {
	if len(ls) == 0 {
		return ""
	}
	latest := ls[0]
	for _, l := range ls {
		if l.at.After(latest.at) {
			latest = l
		}
	}
	return latest.id
}

// Three replicas of leasehold cron, @every 2s; the leader is SIGKILLed
// (and restarted) or SIGSTOPped (and resumed) again and again. With
// --interrupted skip every slot due while a replica was alive runs exactly
// once; with rerun, at least once and twice only when the first run was
// cut short; never two runs at once.
func TestCronEverySlotOnceAcrossFailovers(t *testing.T) {
	needBinaryAndEtcd(t)
	for _, mode := range []string{"skip", "rerun"} {
		t.Run(mode, func(t *testing.T) {
			testCronFailovers(t, mode, 45*time.Second)
		})
	}
}

func testCronFailovers(t *testing.T, mode string, length time.Duration) {
	cfg, _ := cronLockConfig(t)
	out := filepath.Join(t.TempDir(), "runs.txt")
	start := func(id string) *proc {
		return startLeasehold(t, id, []string{"OUT=" + out}, "cron", "--config", cfg, "--id", id, "--schedule", "@every 2s",
			"--catch-up", "1m", "--interrupted", mode, "--grace", "200ms", "--", "sh", "-c", cronJobScript)
	}
	procs := map[string]*proc{}
	var all []*proc // every process started, for their logs
	for _, id := range []string{"r1", "r2", "r3"} {
		procs[id] = start(id)
		all = append(all, procs[id])
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	deadline := time.Now().Add(length)
	kills, stops := 0, 0
	for time.Now().Before(deadline) {
		time.Sleep(3*time.Second + time.Duration(rng.IntN(2000))*time.Millisecond)
		id := leaderOf(cronLines(t, out))
		p := procs[id]
		if p == nil {
			continue
		}
		if rng.IntN(2) == 0 {
			p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
			kills++
			time.Sleep(500 * time.Millisecond)
			procs[id] = start(id) // the pod comes back
			all = append(all, procs[id])
		} else {
			p.cmd.Process.Signal(syscall.SIGSTOP)
			stops++
			time.Sleep(time.Duration(2500+rng.IntN(2000)) * time.Millisecond)
			p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	// Let the last runs finish, then stop everyone gracefully.
	time.Sleep(4 * time.Second)
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		<-p.done
	}
	ls := cronLines(t, out)
	runs := cronRuns(ls)
	if len(runs) < 10 {
		t.Fatalf("only %d runs", len(runs))
	}
	// Never two runs at once: sorted by first line, each run's first line
	// comes after the previous run's last.
	sort.Slice(runs, func(i, j int) bool { return runs[i].first.Before(runs[j].first) })
	for i := 1; i < len(runs); i++ {
		if !runs[i].first.After(runs[i-1].last) {
			t.Errorf("runs overlap: %s slot %s until %s, %s slot %s from %s", runs[i-1].id, runs[i-1].slot.Format("15:04:05"),
				runs[i-1].last.Format("15:04:05.000"), runs[i].id, runs[i].slot.Format("15:04:05"), runs[i].first.Format("15:04:05.000"))
		}
	}
	// Every slot from the first to the last ran; exactly once (skip), or
	// twice only for a cut short first run (rerun).
	bySlot := map[int64][]cronRun{}
	for _, r := range runs {
		bySlot[r.slot.Unix()] = append(bySlot[r.slot.Unix()], r)
	}
	var slots []int64
	for s := range bySlot {
		slots = append(slots, s)
	}
	slices.Sort(slots)
	// A run counts as done once its replica logged "run done" for it: the
	// slot is marked done in the record. A run killed after its last line
	// but before that is cut short too (a replica cannot finish a job and
	// record it in one step).
	recorded := func(id string, slot int64) bool {
		want := "slot=" + time.Unix(slot, 0).UTC().Format(time.RFC3339)
		for _, p := range all {
			if p.id != id {
				continue
			}
			for _, l := range strings.Split(p.logs.String(), "\n") {
				if strings.Contains(l, `msg="run done"`) && strings.Contains(l, want) {
					return true
				}
			}
		}
		return false
	}
	// claimedBefore reports whether id's rerun of slot was of a claim by
	// another leadership: its log names the slot and the term that
	// claimed it, and that term is not the rerun's own.
	claimedBefore := func(id string, slot int64) bool {
		want := "slot=" + time.Unix(slot, 0).UTC().Format(time.RFC3339)
		for _, p := range all {
			if p.id != id {
				continue
			}
			for _, l := range strings.Split(p.logs.String(), "\n") {
				if !strings.Contains(l, "running again a slot cut short") || !strings.Contains(l, want) {
					continue
				}
				its, own := fieldOf(l, "its_term"), fieldOf(l, "term")
				if its != "" && its != own {
					return true
				}
			}
		}
		return false
	}
	// skippedAfterClaim reports whether a later leader found slot claimed
	// by a leadership that never finished it and, under skip, let it go:
	// a leader killed between its claim and its command's first line
	// leaves such a slot (issue 21 measures how often).
	skippedAfterClaim := func(slot int64) bool {
		want := "slot=" + time.Unix(slot, 0).UTC().Format(time.RFC3339)
		for _, p := range all {
			for _, l := range strings.Split(p.logs.String(), "\n") {
				if strings.Contains(l, "is not run again (--interrupted skip)") && strings.Contains(l, want) {
					return true
				}
			}
		}
		return false
	}
	missing, cut, reruns := 0, 0, 0
	for s := slots[0]; s <= slots[len(slots)-1]; s += 2 {
		rs := bySlot[s]
		switch {
		case len(rs) == 0 && mode == "skip" && skippedAfterClaim(s):
			cut++
			t.Logf("slot %s was claimed, cut short before its first line and skipped", time.Unix(s, 0).UTC().Format("15:04:05"))
		case len(rs) == 0:
			missing++
			t.Errorf("slot %s never ran", time.Unix(s, 0).UTC().Format("15:04:05"))
		case len(rs) == 1:
			if rs[0].lines < cronJobLines {
				cut++
			}
			if rs[0].rerun && !claimedBefore(rs[0].id, s) {
				// A rerun alone is right only when an earlier leadership
				// claimed the slot and was killed before its command
				// wrote a line (the record says so: the rerun logs it).
				t.Errorf("slot %s: a rerun without a first run or a claim", time.Unix(s, 0).UTC().Format("15:04:05"))
			}
		case len(rs) == 2 && mode == "rerun" && !rs[0].rerun && rs[1].rerun && !recorded(rs[0].id, s):
			reruns++
			cut++
		default:
			t.Errorf("slot %s ran %d times: %+v", time.Unix(s, 0).UTC().Format("15:04:05"), len(rs), rs)
		}
	}
	// How late slots start: on time while a leader lives, later for the
	// slots due during a failover (run by the next leader's catch-up).
	var delays []time.Duration
	for _, r := range runs {
		if !r.rerun {
			delays = append(delays, r.first.Sub(r.slot))
		}
	}
	slices.Sort(delays)
	q := func(p float64) time.Duration { return delays[int(p*float64(len(delays)-1))].Round(time.Millisecond) }
	t.Logf("%s: %d kills, %d pauses; %d slots, %d runs, %d cut short, %d rerun, %d missing; slot start delay p50 %v, p90 %v, max %v (lease 2s)",
		mode, kills, stops, len(slots), len(runs), cut, reruns, missing, q(0.5), q(0.9), q(1))
	if kills+stops == 0 {
		t.Fatal("no fault was injected")
	}
}

// fieldOf returns the value of key in a logfmt line ("" if absent).
func fieldOf(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// Replicas whose wall clocks are minutes apart still never both run a
// slot: the claim, not the clock, decides; the slots run in order.
func TestCronClocksApart(t *testing.T) {
	needBinaryAndEtcd(t)
	cfg, _ := cronLockConfig(t)
	out := filepath.Join(t.TempDir(), "runs.txt")
	procs := map[string]*proc{}
	start := func(id, offset string) {
		procs[id] = startLeasehold(t, id, []string{"OUT=" + out}, "cron", "--config", cfg, "--id", id, "--schedule", "@every 1s",
			"--clock-offset="+offset, "--grace", "200ms", "--", "sh", "-c", `echo "$LEASEHOLD_SLOT $LEASEHOLD_IDENTITY 0 $(date +%s%N)" >> "$OUT"`)
	}
	// The slow clock leads first (it claims slots three minutes back),
	// then the true one or the fast one (three minutes ahead).
	start("r1", "-3m")
	waitSlots(t, out, 10*time.Second, "a first run", func(map[int64][]string) bool { return len(cronLines(t, out)) > 0 })
	start("r2", "0s")
	start("r3", "3m")
	// Hand the lock around: stop the leader gracefully, twice.
	for range 2 {
		time.Sleep(4 * time.Second)
		id := leaderOf(cronLines(t, out))
		if procs[id] == nil {
			t.Fatalf("no leader ran a slot\n%s", procs["r1"].logs.String())
		}
		procs[id].cmd.Process.Signal(syscall.SIGTERM)
		<-procs[id].done
		delete(procs, id)
	}
	time.Sleep(3 * time.Second)
	ls := cronLines(t, out)
	seen := map[int64]string{}
	var last time.Time
	ids := map[string]bool{}
	for _, l := range ls {
		if other, ok := seen[l.slot.Unix()]; ok {
			t.Errorf("slot %s ran twice: %s and %s", l.slot.Format(time.RFC3339), other, l.id)
		}
		seen[l.slot.Unix()] = l.id
		if !l.slot.After(last) {
			t.Errorf("slot %s ran after %s", l.slot.Format(time.RFC3339), last.Format(time.RFC3339))
		}
		last = l.slot
		ids[l.id] = true
	}
	if len(ls) < 4 || len(ids) < 2 {
		t.Fatalf("%d runs by %d replicas: the test saw too little", len(ls), len(ids))
	}
}

// The sidecar's POST /claim: of concurrent claims of one slot from every
// replica, exactly one gets 200; the leader's others 409, the followers'
// 503. POST /done then marks it.
func TestSidecarClaims(t *testing.T) {
	needBinaryAndEtcd(t)
	// The cron: block is for status here (the sidecar does not read it).
	cfg, _ := writeConfig(t, "cron: {schedule: \"@every 1h\", job: report}\n")
	var addrs []string
	for _, id := range []string{"s1", "s2", "s3"} {
		port, err := servers.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		addrs = append(addrs, addr)
		startLeasehold(t, id, nil, "sidecar", "--config", cfg, "--id", id, "--http", addr)
	}
	// Every sidecar listens and names the same leader before the claims:
	// a follower that has not started yet would answer nothing.
	waitAgreedLeader(t, addrs, time.Minute)
	post := func(addr, path, job string, slot time.Time) (int, claimResponse) {
		resp, err := http.Post(fmt.Sprintf("http://%s/%s?job=%s&slot=%s", addr, path, job, slot.Format(time.RFC3339)), "", nil)
		if err != nil {
			return 0, claimResponse{Error: err.Error()}
		}
		defer resp.Body.Close()
		var r claimResponse
		json.NewDecoder(resp.Body).Decode(&r)
		return resp.StatusCode, r
	}
	base := time.Now().Truncate(time.Minute).UTC()
	for i := range 5 {
		slot := base.Add(time.Duration(i) * time.Minute)
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for _, a := range addrs {
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					code, _ := post(a, "claim", "report", slot)
					mu.Lock()
					codes[code]++
					mu.Unlock()
				}()
			}
		}
		wg.Wait()
		if codes[200] != 1 || codes[409] != 2 || codes[503] != 6 {
			t.Fatalf("slot %d: answers %v; want one 200, two 409 (the leader's other claims), six 503 (the followers')", i, codes)
		}
	}
	leader := askLeader(addrs[0])
	la := addrs[slices.Index([]string{"s1", "s2", "s3"}, leader)]
	last := base.Add(4 * time.Minute)
	if code, r := post(la, "done", "report", last); code != 200 {
		t.Fatalf("done: %d %+v", code, r)
	}
	if code, _ := post(la, "done", "report", base); code != 409 {
		t.Fatalf("done of a slot that is not the claimed one: %d, want 409", code)
	}
	if code, r := post(la, "claim", "report", base.Add(time.Hour)); code != 200 || r.Term < 1 {
		t.Fatalf("a later slot: %d %+v, want 200 with the term", code, r)
	}
	for _, bad := range []string{"claim?job=report&slot=soon", "claim?job=Bad_Name&slot=" + base.Format(time.RFC3339)} {
		resp, err := http.Post("http://"+la+"/"+bad, "", nil)
		if err != nil || resp.StatusCode != 400 {
			t.Errorf("POST /%s: %v %v, want 400", bad, resp.Status, err)
		}
		resp.Body.Close()
	}
	// status shows the job.
	var st bytes.Buffer
	if _, code := statusOf(t, "status", "--config", cfg); code != 0 {
		t.Fatalf("status exit %d", code)
	}
	text, _ := statusOf(t, "status", "--config", cfg)
	st.WriteString(text)
	if !strings.Contains(st.String(), "job:      report: last started "+base.Add(time.Hour).Format(time.RFC3339)) {
		t.Fatalf("status does not show the job:\n%s", st.String())
	}
	m := regexp.MustCompile(`schedule: report: "@every 1h" \(UTC\), next due (\S+)\n`).FindStringSubmatch(st.String())
	if m == nil {
		t.Fatalf("status does not show the schedule:\n%s", st.String())
	}
	if next, err := time.Parse(time.RFC3339, m[1]); err != nil || !next.After(base.Add(time.Hour)) || next.Sub(time.Now()) > 2*time.Hour {
		t.Fatalf("next due %s: want the first hour after the last claimed slot %s (%v)", m[1], base.Add(time.Hour).Format(time.RFC3339), err)
	}
}

// waitAgreedLeader waits until every sidecar at addrs answers and names the
// same leader; limit only bounds a test that would hang.
func waitAgreedLeader(t *testing.T, addrs []string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		names := make([]string, len(addrs))
		agreed := true
		for i, a := range addrs {
			names[i] = askLeader(a)
			agreed = agreed && names[i] != "" && names[i] != "?" && names[i] == names[0]
		}
		if agreed {
			return names[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sidecars did not agree on a leader within %v: %q", limit, names)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// --overlap skip: slots that come due while a run is still going are
// recorded and not run; --overlap wait (the default) runs them after it,
// one after another.
func TestCronOverlap(t *testing.T) {
	needBinaryAndEtcd(t)
	for _, mode := range []string{"skip", "wait"} {
		t.Run(mode, func(t *testing.T) {
			cfg, _ := cronLockConfig(t)
			out := filepath.Join(t.TempDir(), "runs.txt")
			// Each run takes 2.5s; the schedule is every second.
			p := startLeasehold(t, "r1", []string{"OUT=" + out}, "cron", "--config", cfg, "--id", "r1", "--schedule", "@every 1s",
				"--catch-up", "1m", "--overlap", mode, "--", "sh", "-c", `echo "$LEASEHOLD_SLOT r1 0 $(date +%s%N)" >> "$OUT"; sleep 2.5`)
			waitSlots(t, out, 20*time.Second, "four runs", func(map[int64][]string) bool { return len(cronLines(t, out)) >= 4 })
			p.cmd.Process.Signal(syscall.SIGTERM)
			<-p.done
			ls := cronLines(t, out)
			for i := 1; i < len(ls); i++ {
				gap := ls[i].slot.Sub(ls[i-1].slot)
				switch {
				case mode == "skip" && gap < 2*time.Second:
					t.Errorf("slots %s and %s both ran: the ones due during a run should be skipped", ls[i-1].slot.Format("15:04:05"), ls[i].slot.Format("15:04:05"))
				case mode == "wait" && gap != time.Second:
					t.Errorf("slots %s then %s: with wait every slot runs, in order", ls[i-1].slot.Format("15:04:05"), ls[i].slot.Format("15:04:05"))
				}
				if started := ls[i].at.Sub(ls[i-1].at); started < 2500*time.Millisecond {
					t.Errorf("runs %d and %d overlap: the second started %v after the first", i-1, i, started)
				}
			}
			if mode == "skip" && !strings.Contains(p.logs.String(), "skipped a slot") {
				t.Errorf("no slot was logged as skipped:\n%s", p.logs.String())
			}
		})
	}
}

// A new leader runs the slots missed within --catch-up, in order, and not
// older ones.
func TestCronCatchUp(t *testing.T) {
	needBinaryAndEtcd(t)
	cfg, _ := cronLockConfig(t)
	out := filepath.Join(t.TempDir(), "runs.txt")
	start := func(id, catchUp string) *proc {
		return startLeasehold(t, id, []string{"OUT=" + out}, "cron", "--config", cfg, "--id", id, "--schedule", "@every 1s",
			"--catch-up", catchUp, "--", "sh", "-c", `echo "$LEASEHOLD_SLOT `+id+` 0 $(date +%s%N)" >> "$OUT"`)
	}
	a := start("a", "1m")
	waitSlots(t, out, 15*time.Second, "two runs", func(map[int64][]string) bool { return len(cronLines(t, out)) >= 2 })
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
	killed := time.Now()
	lastA := cronLines(t, out)[len(cronLines(t, out))-1].slot
	// Nobody leads for a while: slots are missed (the lease is 2s).
	time.Sleep(6 * time.Second)
	b := start("b", "3s")
	waitSlots(t, out, 15*time.Second, "b's runs", func(map[int64][]string) bool {
		n := 0
		for _, l := range cronLines(t, out) {
			if l.id == "b" {
				n++
			}
		}
		return n >= 5
	})
	b.cmd.Process.Signal(syscall.SIGTERM)
	<-b.done
	var bs []cronLine
	for _, l := range cronLines(t, out) {
		if l.id == "b" {
			bs = append(bs, l)
		}
	}
	// b's first run is a catch-up slot about 3s before it led, not the
	// first slot after a's last (about 8s before).
	first := bs[0]
	if lag := first.at.Sub(first.slot); lag < 2*time.Second || lag > 4500*time.Millisecond {
		t.Errorf("b's first slot %s ran %v after its time; want a slot from the last 3s before it led", first.slot.Format("15:04:05"), lag)
	}
	if !first.slot.After(lastA.Add(2 * time.Second)) {
		t.Errorf("b ran slot %s, older than the 3s catch-up (a's last was %s, a died %s)", first.slot.Format("15:04:05"), lastA.Format("15:04:05"), killed.Format("15:04:05"))
	}
	for i := 1; i < len(bs); i++ {
		if bs[i].slot.Sub(bs[i-1].slot) != time.Second {
			t.Errorf("b's slots %s then %s: the caught-up slots and those after run in order, none skipped", bs[i-1].slot.Format("15:04:05"), bs[i].slot.Format("15:04:05"))
		}
	}
}

// An upgrade replaces the leasehold binary on disk (delete, then copy)
// while cron runs: the guards it starts afterwards are still the running
// leasehold (started through /proc/self/exe), so no slot fails, none is
// marked done without running, and the runs go on.
func TestCronBinaryReplaced(t *testing.T) {
	needBinaryAndEtcd(t)
	if runtime.GOOS != "linux" {
		t.Skip("the guard process is Linux's")
	}
	cfg, _ := cronLockConfig(t)
	dir := t.TempDir()
	copyBin := filepath.Join(dir, "leasehold")
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyBin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "runs.txt")
	p := &proc{id: "r1", logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(copyBin, "cron", "--config", cfg, "--id", "r1", "--schedule", "@every 1s", "--catch-up", "1m",
		"--", "sh", "-c", `echo "$LEASEHOLD_SLOT r1 0 $(date +%s%N)" >> "$OUT"`)
	p.cmd.Env = append(os.Environ(), "OUT="+out)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("--- logs:\n%s", p.logs.String())
		}
	})
	waitSlots(t, out, 30*time.Second, "two runs", func(map[int64][]string) bool { return len(cronLines(t, out)) >= 2 })
	// The upgrade: the file is removed and another written in its place
	// (here, one that is no leasehold at all).
	if err := os.Remove(copyBin); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyBin, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	n := len(cronLines(t, out))
	waitSlots(t, out, 30*time.Second, "three more runs", func(map[int64][]string) bool { return len(cronLines(t, out)) >= n+3 })
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	logs := p.logs.String()
	for _, bad := range []string{"cannot start", `"status":127`, "status=127"} {
		if strings.Contains(logs, bad) {
			t.Errorf("the logs say %q:\n%s", bad, logs)
		}
	}
	ls := cronLines(t, out)
	for i := 1; i < len(ls); i++ {
		if gap := ls[i].slot.Sub(ls[i-1].slot); gap != time.Second {
			t.Errorf("slots %s then %s: a slot was lost", ls[i-1].slot.Format("15:04:05"), ls[i].slot.Format("15:04:05"))
		}
	}
}

// SIGTERM during a run (a rolling update): the run going gets --grace to
// finish on its own while the lease is still renewed, is marked done, and
// no run starts after the signal; the slot is not lost.
func TestCronStopLetsRunFinish(t *testing.T) {
	needBinaryAndEtcd(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "leasehold.yaml")
	body := fmt.Sprintf("backend: etcd\nname: drain-%d\nlease: {duration: 6s, renew_deadline: 3s, retry_period: 500ms, release_on_cancel: true}\netcd:\n  endpoints: [%q]\n  prefix: /e2e/\n",
		time.Now().UnixNano(), strings.TrimPrefix(etcdSrv.Endpoint, "http://"))
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "runs.txt")
	p := startLeasehold(t, "r1", []string{"OUT=" + out}, "cron", "--config", cfg, "--id", "r1", "--schedule", "@every 1s",
		"--grace", "2500ms", "--log-format", "json", "--", "sh", "-c", `echo "start $LEASEHOLD_SLOT" >> "$OUT"; sleep 0.3; echo "end $LEASEHOLD_SLOT" >> "$OUT"`)
	read := func() []string {
		b, _ := os.ReadFile(out)
		return strings.Fields(string(b))
	}
	deadline := time.Now().Add(time.Minute)
	for !slices.Contains(read(), "start") {
		if time.Now().After(deadline) {
			t.Fatalf("no run started:\n%s", p.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	ws := read()
	slot := ws[len(ws)-1]
	if ws[len(ws)-2] != "start" {
		t.Fatalf("the signal must come during a run: %q", ws)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, p.logs)
	}
	ws = read()
	if !strings.Contains(strings.Join(ws, " "), "end "+slot) {
		t.Fatalf("the run of %s did not finish: %q\n%s", slot, ws, p.logs)
	}
	if last := ws[len(ws)-2:]; last[0] != "end" || last[1] != slot {
		t.Errorf("a run started after the signal: %q", ws)
	}
	logs := p.logs.String()
	if !strings.Contains(logs, `"msg":"run done"`) || strings.Contains(logs, "cut short") {
		t.Errorf("the run was not marked done, or was cut short:\n%s", logs)
	}
	// The record says the slot is done: the next leader neither skips
	// nor reruns it.
	st := exec.Command(binary, "status", "--config", cfg, "--json")
	b, _ := st.Output()
	var rep struct {
		Jobs map[string]struct {
			Started string `json:"started"`
			Done    string `json:"done"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, b)
	}
	found := false
	for _, j := range rep.Jobs {
		found = found || j.Done != "" && j.Done == j.Started
	}
	if !found {
		t.Errorf("status: no job whose last slot is done: %s", b)
	}
}

// A rolling update signals the leader as a slot comes due, again and again: no slot is lost and none runs twice. A claim made after the
// stop was asked for is not made, one that landed too late for its run is
// put back, and a run under way is let finish (issue 21, item 2).
func TestCronStopAtSlotBoundary(t *testing.T) {
	t.Run("etcd", func(t *testing.T) {
		needBinaryAndEtcd(t)
		cfg, _ := cronLockConfig(t)
		testCronStopAtSlotBoundary(t, cfg, nil)
	})
	t.Run("consul", func(t *testing.T) {
		srv := needBinaryAndConsul(t)
		cfg, _ := writeConsulConfig(t)
		testCronStopAtSlotBoundary(t, cfg, []string{"LEASEHOLD_CONSUL_ADDRESS=" + srv.Address})
	})
}

func testCronStopAtSlotBoundary(t *testing.T, cfg string, env []string) {
	out := filepath.Join(t.TempDir(), "runs.txt")
	env = append(env, "OUT="+out)
	start := func(id string) *proc {
		return startLeasehold(t, id, env, "cron", "--config", cfg, "--id", id, "--schedule", "@every 1s",
			"--catch-up", "1m", "--", "sh", "-c", `echo "$LEASEHOLD_SLOT $LEASEHOLD_IDENTITY 0 $(date +%s%N)" >> "$OUT"`)
	}
	procs := map[string]*proc{"r1": start("r1"), "r2": start("r2")}
	all := []*proc{procs["r1"], procs["r2"]}
	waitSlots(t, out, time.Minute, "a first run", func(map[int64][]string) bool { return len(cronLines(t, out)) >= 1 })
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	const stops = 10
	for range stops {
		// The leader gets SIGTERM from 40 ms before to 20 ms after the
		// next slot: before its claim, while it is in flight, as the run
		// starts.
		id := leaderOf(cronLines(t, out))
		next := time.Now().Truncate(time.Second).Add(time.Second)
		if time.Until(next) < 100*time.Millisecond {
			next = next.Add(time.Second)
		}
		time.Sleep(time.Until(next.Add(time.Duration(rng.IntN(60)-40) * time.Millisecond)))
		p := procs[id]
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("%s exited %d after SIGTERM:\n%s", id, code, p.logs)
		}
		procs[id] = start(id) // the new pod
		all = append(all, procs[id])
		// The other replica runs the next slots before the next stop.
		n := len(cronLines(t, out))
		waitSlots(t, out, time.Minute, "a run after the stop", func(map[int64][]string) bool { return len(cronLines(t, out)) >= n+2 })
	}
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		<-p.done
	}
	bySlot := map[int64]int{}
	var first, last int64
	for i, l := range cronLines(t, out) {
		s := l.slot.Unix()
		bySlot[s]++
		if i == 0 || s < first {
			first = s
		}
		last = max(last, s)
	}
	for s := first; s <= last; s++ {
		if n := bySlot[s]; n != 1 {
			t.Errorf("slot %s ran %d times, want once", time.Unix(s, 0).UTC().Format("15:04:05"), n)
		}
	}
	for _, p := range all {
		if l := p.logs.String(); strings.Contains(l, "cut short") {
			t.Errorf("%s: a slot counted as cut short after a graceful stop:\n%s", p.id, l)
		}
	}
	t.Logf("%d stops from 40 ms before to 20 ms after a slot; slots %d to %d, each run once", stops, first, last)
}

// A job with no history starts with its next slot: a new hourly job does
// not run the slot of the hour that has begun (issue 22).
func TestCronFirstStartWaitsForNextSlot(t *testing.T) {
	needBinaryAndEtcd(t)
	cfg, _ := cronLockConfig(t)
	out := filepath.Join(t.TempDir(), "runs.txt")
	p := startLeasehold(t, "r1", []string{"OUT=" + out}, "cron", "--config", cfg, "--id", "r1", "--schedule", "@hourly",
		"--catch-up", "2h", "--", "sh", "-c", `echo ran >> "$OUT"`)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.logs.String(), "it starts with its next slot") {
		if time.Now().After(deadline) {
			t.Fatalf("no word of the first slot:\n%s", p.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	next := time.Now().Truncate(time.Hour).Add(time.Hour).UTC().Format(time.RFC3339)
	if !strings.Contains(p.logs.String(), "next="+next) {
		t.Errorf("the first slot is not the next hour's (%s):\n%s", next, p.logs)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	if b, _ := os.ReadFile(out); len(b) != 0 || strings.Contains(p.logs.String(), "started the command") {
		t.Errorf("a run started: %q\n%s", b, p.logs)
	}
}
