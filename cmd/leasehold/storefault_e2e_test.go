package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/internal/history"
	"github.com/leasehold-go/leasehold/internal/servers"
)

// Faults of the store itself (issue 19), against real servers: the record
// deleted or edited by hand, the store wiped, restored from an older
// snapshot, restarted without its data. Three `leasehold run` replicas on
// each; their commands write "<replica> <term> <unix-ns> <run>" every 20ms
// to one file, which internal/history checks over the whole run: no two
// leaderships at once (0 ms), no write the term fence would refuse, no term
// used twice. And liveness: a leader again within a lease, a retry period
// and a slack for a loaded machine of the store answering, with no process
// restarted, and a WARN naming what happened.

// sfLease is the lease of the store-fault replicas: the suite's short one.
const (
	sfLease     = "{duration: 2s, renew_deadline: 1500ms, retry_period: 250ms, release_on_cancel: true}"
	sfDuration  = 2 * time.Second
	sfRetry     = 250 * time.Millisecond
	sfSlack     = 12 * time.Second // a bound on a hang on a loaded 2-core machine, not a timing assertion
	sfLiveness  = sfDuration + sfRetry + sfSlack
	sfFirstLead = 20 * time.Second // the first start waits a lease after its first read
)

// sfWriter is the replicas' command: a write to the fenced resource (one
// line) every 20ms; $$ tells its runs apart.
const sfWriter = `while :; do echo "$LEASEHOLD_IDENTITY $LEASEHOLD_TERM $(date +%s%N) $$" >> "$OUT"; sleep 0.02; done`

// Warnings the core logs when the store forgot (elector.Anomaly).
const (
	warnWentBack = "the store went back in time"
	warnDeleted  = "the record was deleted"
	warnCorrupt  = "the record holds a lease longer than any candidate writes"
)

// sfRun is three replicas of `leasehold run` on one lock.
type sfRun struct {
	t     *testing.T
	cfg   string
	env   []string
	out   string
	procs map[string]*proc
	ids   []string // the replicas running (not killed by the test)
	watch *statusWatch
}

func startSFReplicas(t *testing.T, cfg string, env []string) *sfRun {
	t.Helper()
	r := &sfRun{t: t, cfg: cfg, env: env, out: filepath.Join(t.TempDir(), "out.txt"), procs: map[string]*proc{}}
	r.watch = startStatusWatch(t, cfg, env)
	r.add("a", "b", "c")
	return r
}

// statusWatch is `leasehold status --watch --json` on the lock, running
// through the fault as an operator's would: what it printed, in order.
type statusWatch struct {
	mu      sync.Mutex
	reports []statusReport
	stderr  *syncBuffer
}

func startStatusWatch(t *testing.T, cfg string, env []string) *statusWatch {
	t.Helper()
	w := &statusWatch{stderr: &syncBuffer{}}
	c := exec.Command(binary, "status", "--config", cfg, "--watch", "--json")
	c.Env = append(os.Environ(), env...)
	c.Stderr = w.stderr
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var rep statusReport
			if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
				rep.State = "unparsable: " + sc.Text()
			}
			w.mu.Lock()
			w.reports = append(w.reports, rep)
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		c.Process.Kill()
		<-done
		c.Wait()
	})
	return w
}

// since returns what the watch printed from at on (its time field).
func (w *statusWatch) since(at time.Time) []statusReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []statusReport
	for _, rep := range w.reports {
		if t, err := time.Parse("2006-01-02T15:04:05.000Z07:00", rep.Time); err == nil && !t.Before(at.Truncate(time.Millisecond)) {
			out = append(out, rep)
		}
	}
	return out
}

// recovered waits (a bound on a hang) until the watch, since the fault,
// said what happened when want is set (an anomaly: the record gone or the
// store back in time; or the record corrupt) and then showed the new
// leadership; and checks that
// a one-shot status names the new leader too.
func (r *sfRun) watchRecovered(f fault, wantAnomaly bool) {
	r.t.Helper()
	ok := func(reps []statusReport) (said string, shown bool) {
		for _, rep := range reps {
			switch {
			case said != "":
			case rep.Anomaly != "":
				said = rep.Anomaly
			case rep.State == "corrupt":
				said = "corrupt: " + rep.Problem
			}
			if (said != "" || !wantAnomaly) && rep.State == "leading" && rep.Holder == f.after.Replica && rep.Term == f.after.Term {
				return said, true
			}
		}
		return said, false
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		said, shown := ok(r.watch.since(f.injected))
		if shown {
			r.t.Logf("STATUS %s: status --watch said %q, then leading %s term %d", f.name, said, f.after.Replica, f.after.Term)
			break
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: status --watch did not say what happened (anomaly %v) and then show %s leading with term %d; it printed since the fault:\n%+v\nstderr: %s",
				f.name, wantAnomaly, f.after.Replica, f.after.Term, r.watch.since(f.injected), r.watch.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := exec.Command(binary, "status", "--config", r.cfg, "--json")
	c.Env = append(os.Environ(), r.env...)
	out, err := c.Output()
	var rep statusReport
	if jerr := json.Unmarshal(out, &rep); err != nil || jerr != nil || rep.State != "leading" || rep.Holder != f.after.Replica || rep.Term != f.after.Term {
		r.t.Fatalf("%s: status after recovery: %v, %+v; want exit 0, %s leading with term %d", f.name, err, rep, f.after.Replica, f.after.Term)
	}
}

// add starts replicas.
func (r *sfRun) add(ids ...string) {
	r.t.Helper()
	for _, id := range ids {
		r.procs[id] = startLeasehold(r.t, id, append([]string{"OUT=" + r.out}, r.env...),
			"run", "--config", r.cfg, "--id", id, "--", "sh", "-c", sfWriter)
		r.ids = append(r.ids, id)
	}
}

// kill SIGKILLs every replica and waits for them to exit (their commands
// die with them).
func (r *sfRun) kill() {
	r.t.Helper()
	for _, id := range r.ids {
		r.procs[id].cmd.Process.Signal(syscall.SIGKILL)
		<-r.procs[id].done
	}
	r.ids = nil
}

func (r *sfRun) writes() []history.Write {
	r.t.Helper()
	b, err := os.ReadFile(r.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	ws, _, err := history.Parse(bytes.NewReader(b))
	if err != nil {
		r.t.Fatal(err)
	}
	return ws
}

// waitWrites polls the output until cond holds, for at most limit.
func (r *sfRun) waitWrites(limit time.Duration, what string, cond func([]history.Write) bool) []history.Write {
	r.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ws := r.writes()
		if cond(ws) {
			return ws
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s did not happen within %v; history:\n%v", what, limit, history.Check(ws))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leading waits for a leader whose command has written n lines, and
// returns its last write.
func (r *sfRun) leading(n int) history.Write {
	r.t.Helper()
	ws := r.waitWrites(sfFirstLead, "a first leader writing", func(ws []history.Write) bool { return len(ws) >= n })
	return ws[len(ws)-1]
}

// newLeadership waits, for at most limit, for the first write of a
// leadership whose first write came after since, and returns that write.
func (r *sfRun) newLeadership(since time.Time, limit time.Duration) history.Write {
	r.t.Helper()
	var first history.Write
	r.waitWrites(limit, fmt.Sprintf("a leader again (a leadership started after %s)", since.Format("15:04:05.000")),
		func(ws []history.Write) bool {
			for _, iv := range history.Intervals(ws) {
				if iv.Start.After(since) {
					first = history.Write{Replica: iv.Replica, Run: iv.Run, Term: iv.Term, At: iv.Start}
					return true
				}
			}
			return false
		})
	return first
}

// waitLog waits, for at most limit, until some replica's log holds one of
// the texts, and returns the replica and the text found.
func (r *sfRun) waitLog(limit time.Duration, texts ...string) (string, string) {
	r.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		for _, id := range r.ids {
			logs := r.procs[id].logs.String()
			for _, s := range texts {
				if strings.Contains(logs, s) {
					return id, s
				}
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no replica logged any of %q within %v", texts, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var warnMsg = regexp.MustCompile(`level=WARN msg=("(?:[^"\\]|\\.)*"|\S+)`)

// warnings lists the distinct WARN messages of every replica (also those
// the test killed), each with the replicas that logged it.
func (r *sfRun) warnings() []string {
	by := map[string][]string{}
	var order []string
	ids := slices.Sorted(maps.Keys(r.procs))
	for _, id := range ids {
		for _, m := range warnMsg.FindAllStringSubmatch(r.procs[id].logs.String(), -1) {
			msg := strings.Trim(m[1], `"`)
			if len(msg) > 70 {
				msg = msg[:70] + "…"
			}
			if _, ok := by[msg]; !ok {
				order = append(order, msg)
			}
			if !slices.Contains(by[msg], id) {
				by[msg] = append(by[msg], id)
			}
		}
	}
	out := make([]string, len(order))
	for i, msg := range order {
		out[i] = fmt.Sprintf("%q by %s", msg, strings.Join(by[msg], ","))
	}
	return out
}

// allRunning fails the test if a replica exited: liveness must come
// without any process restarted.
func (r *sfRun) allRunning() {
	r.t.Helper()
	for _, id := range r.ids {
		select {
		case <-r.procs[id].done:
			r.t.Fatalf("replica %s exited (status %v): liveness must not need a restart", id, r.procs[id].cmd.ProcessState)
		default:
		}
	}
}

// stop sends SIGTERM to every replica and waits for them to exit.
func (r *sfRun) stop() {
	r.t.Helper()
	for _, id := range r.ids {
		r.procs[id].cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, id := range r.ids {
		select {
		case <-r.procs[id].done:
		case <-time.After(15 * time.Second):
			r.t.Fatalf("replica %s did not exit within 15s of SIGTERM", id)
		}
	}
}

// fault is what one store fault did, for the figures.
type fault struct {
	name      string
	injected  time.Time // when the fault began
	answering time.Time // when the store answered again
	before    history.Write
	after     history.Write
	warnBy    string
	warn      string
}

// finish lets the new leader write a little, stops the replicas and checks
// the whole history; it logs the figures of the fault.
func (r *sfRun) finish(f fault) history.Report {
	r.t.Helper()
	n := len(r.writes())
	r.waitWrites(10*time.Second, "the new leader writing on", func(ws []history.Write) bool { return len(ws) >= n+10 })
	r.allRunning()
	r.watchRecovered(f, f.warn == warnDeleted || f.warn == warnWentBack || f.warn == warnCorrupt)
	r.stop()
	rep := history.Check(r.writes())
	// The old leader's last write and the gap without a leader.
	var lastOld time.Time
	gap := time.Duration(0)
	for _, iv := range rep.Intervals {
		if !iv.Start.After(f.injected) {
			lastOld = iv.End
		}
	}
	if !lastOld.IsZero() {
		gap = f.after.At.Sub(lastOld)
	}
	r.t.Logf("FIGURES %s: overlap %v (%d overlaps); leader again %v after the store answered (%v after the fault; no leader for %v); term %d (%s) before, %d (%s) after; %q logged by %s",
		f.name, rep.MaxOverlap(), len(rep.Overlaps), f.after.At.Sub(f.answering).Round(time.Millisecond),
		f.after.At.Sub(f.injected).Round(time.Millisecond), gap.Round(time.Millisecond),
		f.before.Term, f.before.Replica, f.after.Term, f.after.Replica, f.warn, f.warnBy)
	r.t.Logf("WARNINGS %s: %s", f.name, strings.Join(r.warnings(), "; "))
	if !rep.OK() {
		r.t.Fatalf("%s: the history breaks the promise:\n%v", f.name, rep)
	}
	if f.after.Term <= f.before.Term {
		r.t.Fatalf("%s: the term went from %d to %d", f.name, f.before.Term, f.after.Term)
	}
	if testing.Verbose() {
		r.t.Logf("%s history:\n%v", f.name, rep)
	}
	return rep
}

// recovered waits for a leader again and the WARN, and checks liveness.
func (r *sfRun) recovered(f *fault, warns ...string) {
	r.t.Helper()
	f.after = r.newLeadership(f.injected, time.Until(f.answering.Add(sfLiveness)))
	r.allRunning()
	f.warnBy, f.warn = r.waitLog(5*time.Second, warns...)
}

// --- etcd ---

func etcdStoreFaultConfig(t *testing.T, srv *servers.Etcd) (path, lock string) {
	t.Helper()
	lock = fmt.Sprintf("sf-%d", time.Now().UnixNano())
	path = filepath.Join(t.TempDir(), "leasehold.yaml")
	cfg := fmt.Sprintf("backend: etcd\nname: %s\nlease: %s\netcd:\n  endpoints: [%q]\n  prefix: /storefault/\n",
		lock, sfLease, strings.TrimPrefix(srv.Endpoint, "http://"))
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, lock
}

// etcdCtl is an etcdctl of the test: a plain client of the server.
func etcdCtl(t *testing.T, srv *servers.Etcd) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// etcdSnapshot saves a snapshot of the server to a file, as `etcdctl
// snapshot save` does.
func etcdSnapshot(t *testing.T, srv *servers.Etcd) string {
	t.Helper()
	cli := etcdCtl(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := cli.SnapshotWithVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Snapshot.Close()
	path := filepath.Join(t.TempDir(), "snapshot.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, resp.Snapshot); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// tamper edits a stored record by hand: another holder, a lease of 100
// years, renewed now; the rest (the term) kept.
func tamper(t *testing.T, raw []byte) []byte {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatalf("the stored record is not JSON: %v: %q", err, raw)
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	rec["holder"] = "intruder"
	rec["instance"] = "by-hand"
	rec["lease_duration_ms"] = int64(100 * 365 * 24 * time.Hour / time.Millisecond)
	rec["renew_time"] = now
	rec["acquire_time"] = now
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStoreFaultEtcd(t *testing.T) {
	if binErr != nil {
		t.Fatal(binErr)
	}
	// An etcd of its own: this test wipes and restores it.
	srv, err := servers.StartEtcd()
	servers.Require(t, err)
	t.Cleanup(srv.Stop)

	// The key deleted by hand (etcdctl del) under a leader.
	t.Run("KeyDeleted", func(t *testing.T) {
		cfg, lock := etcdStoreFaultConfig(t, srv)
		r := startSFReplicas(t, cfg, nil)
		f := fault{name: "etcd key deleted", before: r.leading(10)}
		cli := etcdCtl(t, srv)
		f.injected = time.Now()
		resp, err := cli.Delete(context.Background(), "/storefault/"+lock)
		if err != nil || resp.Deleted != 1 {
			t.Fatalf("delete: %v, %+v", err, resp)
		}
		f.answering = time.Now()
		r.recovered(&f, warnDeleted)
		r.finish(f)
	})

	// The record edited by hand: another holder with a lease of 100 years.
	// It is not trusted: waited out for a lease of the candidates' own.
	t.Run("RecordTampered", func(t *testing.T) {
		cfg, lock := etcdStoreFaultConfig(t, srv)
		r := startSFReplicas(t, cfg, nil)
		f := fault{name: "etcd record tampered (100-year lease)", before: r.leading(10)}
		c, err := etcd.New(context.Background(), etcd.Config{Endpoints: []string{srv.Endpoint}, Prefix: "/storefault/"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		raw, err := c.Raw(context.Background(), lock)
		if err != nil {
			t.Fatal(err)
		}
		f.injected = time.Now()
		if err := c.PutRaw(context.Background(), lock, tamper(t, raw)); err != nil {
			t.Fatal(err)
		}
		f.answering = time.Now()
		r.recovered(&f, warnCorrupt)
		r.finish(f)
	})

	// The store wiped: etcd restarted on the same port with an empty data
	// directory (revisions start over at 1).
	t.Run("Wiped", func(t *testing.T) {
		cfg, _ := etcdStoreFaultConfig(t, srv)
		r := startSFReplicas(t, cfg, nil)
		f := fault{name: "etcd wiped", before: r.leading(10)}
		f.injected = time.Now()
		if err := srv.Wipe(); err != nil {
			t.Fatal(err)
		}
		f.answering = time.Now()
		r.recovered(&f, warnDeleted, warnWentBack)
		r.finish(f)
	})

	// The store restored from a snapshot taken while another replica led:
	// the old leader, alive and following, is handed its own record back,
	// whose revision the new leader's renewals have since reached again.
	t.Run("RestoredFromOlderSnapshot", func(t *testing.T) {
		cfg, _ := etcdStoreFaultConfig(t, srv)
		r := startSFReplicas(t, cfg, nil)
		first := r.leading(10)
		snap := etcdSnapshot(t, srv)
		// Leadership moves without any process exiting: the leader is
		// paused (its guard stops the command) until another one writes.
		old := r.procs[first.Replica]
		old.cmd.Process.Signal(syscall.SIGSTOP)
		paused := time.Now()
		next := r.newLeadership(paused, 20*time.Second)
		old.cmd.Process.Signal(syscall.SIGCONT)
		// The resumed leader must know of the new leadership (so it
		// remembers the higher term) before the store goes back.
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(old.logs.String(), "leader="+next.Replica) {
			if time.Now().After(deadline) {
				t.Fatalf("%s, resumed, did not observe %s leading within 15s", first.Replica, next.Replica)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Let the new leader renew a few times: its revisions climb back
		// over the snapshot's.
		n := len(r.writes())
		r.waitWrites(10*time.Second, "the second leader writing on", func(ws []history.Write) bool { return len(ws) >= n+50 })
		f := fault{name: "etcd restored from an older snapshot", before: next}
		f.injected = time.Now()
		err := srv.Restore(snap)
		servers.Require(t, err)
		f.answering = time.Now()
		r.recovered(&f, warnWentBack)
		r.finish(f)
		t.Logf("snapshot taken while %s led (term %d); restored while %s led (term %d)", first.Replica, first.Term, next.Replica, next.Term)
	})

	// The store restored from an older snapshot and every replica replaced
	// by a new process, which has seen no term but the restored one: the
	// term handed out next must still be above every term before (the
	// hybrid logical clock), never the restored term + 1 again.
	t.Run("RestoredAndReplicasReplaced", func(t *testing.T) {
		cfg, _ := etcdStoreFaultConfig(t, srv)
		r := startSFReplicas(t, cfg, nil)
		first := r.leading(10)
		snap := etcdSnapshot(t, srv)
		// The leader stops (releases): another takes over with a higher
		// term, which the snapshot does not hold.
		termed := time.Now()
		r.procs[first.Replica].cmd.Process.Signal(syscall.SIGTERM)
		<-r.procs[first.Replica].done
		r.ids = slices.DeleteFunc(r.ids, func(id string) bool { return id == first.Replica })
		next := r.newLeadership(termed, sfLiveness)
		n := len(r.writes())
		r.waitWrites(10*time.Second, "the second leader writing on", func(ws []history.Write) bool { return len(ws) >= n+10 })
		r.kill()
		f := fault{name: "etcd restored from an older snapshot, every replica replaced", before: next}
		f.injected = time.Now()
		err := srv.Restore(snap)
		servers.Require(t, err)
		f.answering = time.Now()
		r.add("d", "e", "f")
		// New processes wait a lease after their first read: no anomaly
		// to see, so no WARN to expect.
		f.after = r.newLeadership(f.injected, time.Until(f.answering.Add(sfLiveness)))
		f.warn, f.warnBy = "(none expected: new processes)", "-"
		r.finish(f)
		t.Logf("snapshot taken while %s led (term %d); %s led (term %d) when every replica was killed", first.Replica, first.Term, next.Replica, next.Term)
	})
}

// --- Consul ---

func TestStoreFaultConsul(t *testing.T) {
	if binErr != nil {
		t.Fatal(binErr)
	}
	// An agent of its own: this test kills it.
	srv, err := servers.StartConsul()
	servers.Require(t, err)
	t.Cleanup(srv.Stop)
	config := func(t *testing.T) (string, string) {
		lock := fmt.Sprintf("sf-%d", time.Now().UnixNano())
		path := filepath.Join(t.TempDir(), "leasehold.yaml")
		cfg := fmt.Sprintf("backend: consul\nname: %s\nlease: %s\nconsul:\n  prefix: storefault/\n  request_timeout: 1s\n", lock, sfLease)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return path, lock
	}
	env := []string{"LEASEHOLD_CONSUL_ADDRESS=" + srv.Address}

	// The key deleted by hand (consul kv delete) under a leader.
	t.Run("KeyDeleted", func(t *testing.T) {
		cfg, lock := config(t)
		r := startSFReplicas(t, cfg, env)
		f := fault{name: "consul key deleted", before: r.leading(10)}
		f.injected = time.Now()
		httpDo(t, nil, "DELETE", "http://"+srv.Address+"/v1/kv/storefault/"+lock, "", "", nil, 200)
		f.answering = time.Now()
		r.recovered(&f, warnDeleted)
		r.finish(f)
	})

	// The record edited by hand (consul kv get, edit, consul kv put):
	// another holder with a lease of 100 years.
	t.Run("RecordTampered", func(t *testing.T) {
		cfg, lock := config(t)
		r := startSFReplicas(t, cfg, env)
		f := fault{name: "consul record tampered (100-year lease)", before: r.leading(10)}
		url := "http://" + srv.Address + "/v1/kv/storefault/" + lock
		raw := httpDo(t, nil, "GET", url+"?raw", "", "", nil, 200)
		f.injected = time.Now()
		httpDo(t, nil, "PUT", url, "", "", tamper(t, raw), 200)
		f.answering = time.Now()
		r.recovered(&f, warnCorrupt)
		r.finish(f)
	})

	// The -dev agent killed and started again: every key is gone, and the
	// indexes start over.
	t.Run("AgentRestarted", func(t *testing.T) {
		cfg, _ := config(t)
		r := startSFReplicas(t, cfg, env)
		f := fault{name: "consul agent restarted (KV lost)", before: r.leading(10)}
		f.injected = time.Now()
		srv.Kill()
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		f.answering = time.Now()
		r.recovered(&f, warnDeleted, warnWentBack)
		r.finish(f)
	})
}

// --- Kubernetes ---

func TestStoreFaultKube(t *testing.T) {
	if binErr != nil {
		t.Fatal(binErr)
	}
	k, err := servers.StartKube()
	servers.Require(t, err)
	t.Cleanup(k.Stop)
	config := func(t *testing.T) (string, string) {
		lock := fmt.Sprintf("sf-%d", time.Now().UnixNano())
		path := filepath.Join(t.TempDir(), "leasehold.yaml")
		cfg := fmt.Sprintf("backend: kube\nname: %s\nlease: %s\nkube:\n  kubeconfig: %s\n  namespace: default\n", lock, sfLease, k.AdminKubeconfig)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return path, lock
	}
	ca, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}}}

	// The Lease deleted by hand (kubectl delete lease) under a leader.
	t.Run("LeaseDeleted", func(t *testing.T) {
		cfg, lock := config(t)
		r := startSFReplicas(t, cfg, nil)
		f := fault{name: "kube Lease deleted", before: r.leading(10)}
		f.injected = time.Now()
		httpDo(t, client, "DELETE", k.URL+"/apis/coordination.k8s.io/v1/namespaces/default/leases/"+lock, k.AdminToken, "", nil, 200)
		f.answering = time.Now()
		r.recovered(&f, warnDeleted)
		r.finish(f)
	})

	// The Lease edited by hand (kubectl patch): another holder with the
	// longest lease a Lease holds (2e9 seconds, 63 years), renewed now.
	t.Run("LeaseTampered", func(t *testing.T) {
		cfg, lock := config(t)
		r := startSFReplicas(t, cfg, nil)
		f := fault{name: "kube Lease tampered (63-year lease)", before: r.leading(10)}
		now := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00")
		patch := fmt.Sprintf(`{"spec":{"holderIdentity":"intruder","leaseDurationSeconds":2000000000,"acquireTime":%q,"renewTime":%q}}`, now, now)
		f.injected = time.Now()
		httpDo(t, client, "PATCH", k.URL+"/apis/coordination.k8s.io/v1/namespaces/default/leases/"+lock, k.AdminToken,
			"application/merge-patch+json", []byte(patch), 200)
		f.answering = time.Now()
		r.recovered(&f, warnCorrupt)
		r.finish(f)
	})

	// The apiserver restarted on a new, empty etcd: the Lease is gone and
	// resourceVersions start over.
	t.Run("FreshEtcd", func(t *testing.T) {
		cfg, _ := config(t)
		r := startSFReplicas(t, cfg, nil)
		f := fault{name: "kube-apiserver on a fresh etcd", before: r.leading(10)}
		f.injected = time.Now()
		if err := k.ReplaceEtcd(); err != nil {
			t.Fatal(err)
		}
		f.answering = time.Now()
		r.recovered(&f, warnDeleted, warnWentBack)
		r.finish(f)
	})
}

// httpDo sends a request (with a bearer token and a body when not empty)
// and fails the test unless the answer has the status want; it returns the
// answer's body.
func httpDo(t *testing.T, c *http.Client, method, url, token, contentType string, body []byte, want int) []byte {
	t.Helper()
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, got, want)
	}
	return got
}
