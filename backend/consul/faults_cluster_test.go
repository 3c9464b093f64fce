package consul_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
)

// TestFaultsCluster runs the fault suite on a 3-server Consul cluster of
// its own, for the member cases the -dev agent of TestFaults cannot give:
// the leader server killed and restarted on its data, paused and resumed,
// and a rolling restart of the three; then the record deleted and tampered
// with, and the cluster restored from a snapshot taken through the
// snapshot API (Wipe is left to TestFaults).
//
// A Consul client talks to one agent (consul.Config has one Address; the
// library does not fail over), so the candidates of a case are spread over
// the servers as programs on three machines talking to their own agent
// would be: c1 to s0, c2 to s1, c3 to s2. A candidate whose server is down
// or paused is cut off from the store until it answers again; the two
// others go on.
func TestFaultsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault suite runs a 3-server Consul cluster for about a minute")
	}
	cl, err := servers.StartConsulCluster()
	servers.Require(t, err)
	t.Cleanup(cl.Stop)
	const (
		prefix   = "faults/"
		patience = 30 * time.Second // for the cluster to elect, or a server to answer
	)
	opts := func(t testing.TB) *api.WriteOptions {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		t.Cleanup(cancel)
		return (&api.WriteOptions{}).WithContext(ctx)
	}
	must := func(t testing.TB, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%v\n%s", err, cl.Logs())
		}
	}
	// raw is a client of the leader server now, for the operator's own
	// requests.
	raw := func(t testing.TB) *api.Client {
		t.Helper()
		l, err := cl.WaitLeader(-1, patience)
		must(t, err)
		return apiClient(t, cl.Address(l), "", nil)
	}
	// leader is the server leading the cluster now.
	leader := func(t testing.TB) int {
		t.Helper()
		l, err := cl.WaitLeader(-1, patience)
		must(t, err)
		return l
	}
	var (
		mu     sync.Mutex
		count  = map[string]int{}  // lock → clients made for it
		member = map[string]bool{} // test → a server was killed, paused or restarted
	)
	// memberFault marks t's case as one where servers fail but none loses
	// its data: its clients must not take that for the store going back.
	memberFault := func(t testing.TB) {
		mu.Lock()
		member[t.Name()] = true
		mu.Unlock()
	}
	backendtest.RunFaults(t, backendtest.FaultHooks{
		New: func(t testing.TB, lock string) elector.Backend {
			mu.Lock()
			i := count[lock] % cl.Size()
			count[lock]++
			mu.Unlock()
			log := &backendtest.Log{}
			c, err := consul.New(context.Background(), consul.Config{Address: cl.Address(i), Prefix: prefix,
				RequestTimeout: time.Second, Logger: log.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				c.Close()
				mu.Lock()
				m := member[t.Name()]
				mu.Unlock()
				// A server killed, paused or restarted on its data forgets
				// nothing: the client on s<i> must not say the store went
				// back in time (it would void its versions and wait a
				// lease for nothing).
				if back := log.Lines(slog.LevelWarn, "went back in time"); m && len(back) > 0 {
					t.Errorf("client on %s: %s\n%s", cl.Name(i), back[0], log.String())
				}
			})
			return c.Lock(lock)
		},
		KillLeaderMember: func(t testing.TB) func(testing.TB) {
			memberFault(t)
			l := leader(t)
			t.Logf("killing leader server %s", cl.Name(l))
			must(t, cl.Kill(l))
			_, err := cl.WaitLeader(l, patience)
			must(t, err)
			return func(t testing.TB) { must(t, cl.Start(l)) }
		},
		PauseMember: func(t testing.TB) func(testing.TB) {
			memberFault(t)
			l := leader(t)
			t.Logf("pausing leader server %s", cl.Name(l))
			must(t, cl.Pause(l))
			t.Cleanup(func() { cl.Resume(l) }) // never leave it paused
			_, err := cl.WaitLeader(l, patience)
			must(t, err)
			return func(t testing.TB) { must(t, cl.Resume(l)) }
		},
		RollingRestart: func(t testing.TB, restarted func(string)) {
			memberFault(t)
			for i := range cl.Size() {
				must(t, cl.Restart(i))
				restarted("server " + cl.Name(i))
			}
		},
		DeleteRecord: func(t testing.TB, lock string) {
			_, err := raw(t).KV().Delete(prefix+lock, opts(t))
			must(t, err)
		},
		TamperRecord: func(t testing.TB, lock string, rec elector.Record) {
			_, err := raw(t).KV().Put(&api.KVPair{Key: prefix + lock, Value: elector.EncodeRecord(rec)}, opts(t))
			must(t, err)
		},
		Snapshot: func(t testing.TB) func(testing.TB) {
			rc, _, err := raw(t).Snapshot().Save(nil)
			must(t, err)
			defer rc.Close()
			snap, err := io.ReadAll(rc)
			must(t, err)
			return func(t testing.TB) {
				must(t, raw(t).Snapshot().Restore(opts(t), bytes.NewReader(snap)))
			}
		},
	})
}
