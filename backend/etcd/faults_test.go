package etcd_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// TestFaults runs the fault suite on a 3-member etcd cluster of its own:
// every client is given all three members' endpoints, as production runs
// it. Members are killed, paused and restarted; the record is deleted and
// tampered with; the cluster is wiped and restored from a snapshot; the
// leader's client is cut off from all three members through fault
// proxies (closed, blackholed, delayed, reset).
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault suite runs a 3-member etcd cluster for about two minutes")
	}
	cl, err := servers.StartEtcdCluster(3)
	servers.Require(t, err)
	t.Cleanup(cl.Stop)
	const (
		prefix   = "/faults/"
		patience = 30 * time.Second // for the cluster to elect, or a member to answer
	)
	lease := elector.Config{LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 250 * time.Millisecond}
	raw, err := clientv3.New(clientv3.Config{Endpoints: cl.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	ctx := func(t testing.TB) context.Context {
		c, cancel := context.WithTimeout(context.Background(), patience)
		t.Cleanup(cancel)
		return c
	}
	must := func(t testing.TB, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%v\n%s", err, cl.Logs())
		}
	}
	// leader is the member leading the cluster now.
	leader := func(t testing.TB) int {
		t.Helper()
		l, err := cl.WaitLeader(-1, patience)
		must(t, err)
		return l
	}
	// open is a client of the members at endpoints, as the CLI makes it,
	// with extra gRPC dial options.
	open := func(t testing.TB, lock string, endpoints []string, opts ...grpc.DialOption) elector.Backend {
		c, err := etcd.NewWithDialOptions(context.Background(), etcd.Config{Endpoints: endpoints, Prefix: prefix,
			MaxReconnectDelay: lease.RetryPeriod, // as the CLI sets it
			Logger:            slog.New(slog.DiscardHandler)}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.Lock(lock)
	}
	via := func(via func(string) string) []string {
		var eps []string
		for _, e := range cl.Endpoints() {
			eps = append(eps, via(e))
		}
		return eps
	}
	backendtest.RunFaults(t, backendtest.FaultHooks{
		New: func(t testing.TB, lock string) elector.Backend { return open(t, lock, cl.Endpoints()) },
		NewVia: func(t testing.TB, lock string, v func(string) string) elector.Backend {
			return open(t, lock, via(v))
		},
		NewCounted: func(t testing.TB, lock string) (elector.Backend, func() int) {
			cnt := &counter{}
			return open(t, lock, cl.Endpoints(), grpc.WithChainUnaryInterceptor(cnt.interceptor())), cnt.total
		},
		WatchRequests: 0, // one watch stream per key
		Connect: func(v func(string) string, timeout time.Duration) error {
			c, err := etcd.New(context.Background(), etcd.Config{Endpoints: via(v), Prefix: prefix, DialTimeout: timeout,
				Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				c.Close()
			}
			return err
		},
		KillLeaderMember: func(t testing.TB) func(testing.TB) {
			l := leader(t)
			must(t, cl.Kill(l))
			_, err := cl.WaitLeader(l, patience)
			must(t, err)
			return func(t testing.TB) { must(t, cl.Start(l)) }
		},
		PauseMember: func(t testing.TB) func(testing.TB) {
			l := leader(t)
			must(t, cl.Pause(l))
			t.Cleanup(func() { cl.Resume(l) }) // never leave it paused
			_, err := cl.WaitLeader(l, patience)
			must(t, err)
			return func(t testing.TB) {
				must(t, cl.Resume(l))
				must(t, cl.WaitHealthy(l, patience))
			}
		},
		RollingRestart: func(t testing.TB, restarted func(string)) {
			for i := range cl.Size() {
				must(t, cl.Restart(i))
				restarted(fmt.Sprintf("member m%d", i))
			}
		},
		DeleteRecord: func(t testing.TB, lock string) {
			resp, err := raw.Delete(ctx(t), prefix+lock)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Deleted != 1 {
				t.Fatalf("delete %s%s: %d keys deleted, want 1", prefix, lock, resp.Deleted)
			}
		},
		TamperRecord: func(t testing.TB, lock string, rec elector.Record) {
			if _, err := raw.Put(ctx(t), prefix+lock, string(elector.EncodeRecord(rec))); err != nil {
				t.Fatal(err)
			}
		},
		Wipe: func(t testing.TB) { must(t, cl.Wipe()) },
		Snapshot: func(t testing.TB) func(testing.TB) {
			_, err := servers.Find("etcdutl") // in CI a missing one fails the test
			servers.Require(t, err)
			snap := filepath.Join(t.TempDir(), "snapshot.db")
			rc, err := raw.Snapshot(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			f, err := os.Create(snap)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, rc); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			return func(t testing.TB) { must(t, cl.Restore(snap)) }
		},
		Lease: lease,
	})
}
