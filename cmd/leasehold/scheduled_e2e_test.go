package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/internal/servers"
)

// The two patterns of docs/scheduled-jobs.md, run as the doc shows them,
// with its scripts, on real processes against a real etcd: three replicas,
// a job every second, the leading replica SIGKILLed once. Every slot runs
// at most once, and after the failover the schedule goes on at the next
// leader; the slots due during the failover are missed (logged here, and
// the figure the doc quotes).

const scriptsDir = "../../docs/scheduled-jobs"

// slotLines reads "SLOT ID" lines.
func slotLines(t *testing.T, path string) map[int64][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	slots := map[int64][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		s, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			t.Fatalf("bad line %q", l)
		}
		slots[s] = append(slots[s], f[1])
	}
	return slots
}

// checkSlots: no slot twice; runs before and after the failover by two
// replicas; returns the slots missed in between.
func checkSlots(t *testing.T, slots map[int64][]string, first string) (missed int) {
	t.Helper()
	var keys []int64
	for s, ids := range slots {
		if len(ids) > 1 {
			t.Errorf("slot %d ran %d times: %v", s, len(ids), ids)
		}
		keys = append(keys, s)
	}
	slices.Sort(keys)
	if len(keys) < 4 {
		t.Fatalf("only %d slots ran: %v", len(keys), slots)
	}
	var after []string
	for i, s := range keys {
		if i > 0 {
			missed += int(s - keys[i-1] - 1)
		}
		if slots[s][0] != first {
			after = append(after, slots[s][0])
		}
	}
	if len(after) == 0 {
		t.Fatalf("no other replica ran a slot after %s was killed: %v", first, slots)
	}
	return missed
}

func waitSlots(t *testing.T, path string, limit time.Duration, what string, ok func(map[int64][]string) bool) map[int64][]string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := slotLines(t, path)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; slots %v", what, limit, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lastRunner is who ran the latest slot.
func lastRunner(s map[int64][]string) (string, int64) {
	var last int64 = -1
	for k := range s {
		last = max(last, k)
	}
	if last < 0 {
		return "", 0
	}
	return s[last][0], last
}

// Pattern 1: the scheduler itself runs under leasehold run.
func TestScheduledJobSchedulerUnderRun(t *testing.T) {
	needBinaryAndEtcd(t)
	cfg, _ := writeConfig(t, "")
	out := filepath.Join(t.TempDir(), "slots.txt")
	job := `echo "$SLOT $LEASEHOLD_IDENTITY" >> "$OUT"`
	procs := map[string]*proc{}
	for _, id := range []string{"r1", "r2", "r3"} {
		procs[id] = startLeasehold(t, id, []string{"OUT=" + out}, "run", "--config", cfg, "--id", id, "--grace", "300ms",
			"--", "sh", filepath.Join(scriptsDir, "every.sh"), "1", "sh", "-c", job)
	}
	s := waitSlots(t, out, 15*time.Second, "three slots run", func(s map[int64][]string) bool { return len(s) >= 3 })
	first, _ := lastRunner(s)
	procs[first].cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	s = waitSlots(t, out, 15*time.Second, "a slot run by another replica", func(s map[int64][]string) bool {
		id, _ := lastRunner(s)
		return id != "" && id != first
	})
	resumed := time.Since(killed)
	n := len(s)
	waitSlots(t, out, 10*time.Second, "two more slots", func(s map[int64][]string) bool { return len(s) >= n+2 })
	for id, p := range procs {
		if id != first {
			p.cmd.Process.Signal(syscall.SIGTERM)
			<-p.done
		}
	}
	missed := checkSlots(t, slotLines(t, out), first)
	t.Logf("scheduler under run: leader SIGKILLed; schedule resumed after %v, %d slots missed (lease 2s, job every 1s)", resumed.Round(10*time.Millisecond), missed)
	if missed > 4 {
		t.Errorf("%d slots missed in a failover with a 2s lease: more than the lease and a retry period explain", missed)
	}
}

// Pattern 2: every replica schedules the job; before each run it asks its
// sidecar whether it leads.
func TestScheduledJobAskTheSidecar(t *testing.T) {
	missed := sidecarPattern(t, func(id, url string) []string {
		return []string{"sh", filepath.Join(scriptsDir, "if-leader.sh"), url + "/", id}
	})
	t.Logf("asking the sidecar: leader's pod SIGKILLed; %d slots missed (lease 2s, job every 1s)", missed)
	if missed > 4 {
		t.Errorf("%d slots missed in a failover with a 2s lease: more than the lease and a retry period explain", missed)
	}
}

// sidecarPattern runs three replicas, each a sidecar and an app that runs
// every second, through gate (the script and its arguments before the
// job), a job writing its slot; SIGKILLs the leader's pod (its sidecar
// and its app), and checks that no slot ran twice and that another
// replica went on. It returns the slots missed.
func sidecarPattern(t *testing.T, gate func(id, sidecarURL string) []string) (missed int) {
	t.Helper()
	needBinaryAndEtcd(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("the scripts of docs/scheduled-jobs need curl: %v", err)
	}
	cfg, _ := writeConfig(t, "")
	out := filepath.Join(t.TempDir(), "slots.txt")
	type replica struct{ sidecar, app *proc }
	reps := map[string]replica{}
	for _, id := range []string{"r1", "r2", "r3"} {
		port, err := servers.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		sc := startLeasehold(t, id, nil, "sidecar", "--config", cfg, "--id", id, "--http", addr)
		args := append([]string{filepath.Join(scriptsDir, "every.sh"), "1"}, gate(id, "http://"+addr)...)
		args = append(args, "sh", "-c", `echo "$SLOT `+id+`" >> "$OUT"`)
		reps[id] = replica{sc, startProc(t, id+"-app", []string{"OUT=" + out}, "sh", args...)}
	}
	s := waitSlots(t, out, 15*time.Second, "three slots run", func(s map[int64][]string) bool { return len(s) >= 3 })
	first, _ := lastRunner(s)
	// The pod dies: its sidecar and its app.
	reps[first].sidecar.cmd.Process.Signal(syscall.SIGKILL)
	syscall.Kill(-reps[first].app.cmd.Process.Pid, syscall.SIGKILL)
	s = waitSlots(t, out, 15*time.Second, "a slot run by another replica", func(s map[int64][]string) bool {
		id, _ := lastRunner(s)
		return id != "" && id != first
	})
	n := len(s)
	waitSlots(t, out, 10*time.Second, "two more slots", func(s map[int64][]string) bool { return len(s) >= n+2 })
	return checkSlots(t, slotLines(t, out), first)
}

// startProc starts a process that is not leasehold (an app), killed with
// its process group at the end of the test.
func startProc(t *testing.T, id string, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{id: id, logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(name, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("--- %s logs:\n%s", id, p.logs.String())
		}
	})
	return p
}

// Pattern 3 (docs/cron.md): every replica schedules the job and claims
// each slot from its sidecar before running it (claim.sh): the slot runs
// once, on the leader, and after the leader's pod dies the slots go on at
// the next — with no slot run twice.
func TestScheduledJobClaimFromTheSidecar(t *testing.T) {
	missed := sidecarPattern(t, func(id, url string) []string {
		return []string{"sh", filepath.Join(scriptsDir, "claim.sh"), url, "report"}
	})
	t.Logf("claiming from the sidecar: leader's pod SIGKILLed; %d slots missed (lease 2s, job every 1s)", missed)
}
