package kube_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	coordclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
)

// TestFaultsHA runs the fault suite on a control plane shaped as
// production runs it: two kube-apiservers on one 3-member etcd cluster
// (servers.KubeHA). The candidates' clients are spread over the
// apiservers (the i-th client of a lock on apiserver i mod 2), so a leader
// and its followers read the Lease through different watch caches. The
// etcd leader member is killed and paused, the members are restarted one
// at a time under the running apiservers; the Lease is deleted and
// tampered with; the whole control plane is wiped, and restored from an
// etcd snapshot (every apiserver killed, every member restored, the
// apiservers started again on it: an operator's restore from a backup).
func TestFaultsHA(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault suite runs two apiservers on a 3-member etcd for about two minutes")
	}
	ha, err := servers.StartKubeHA(2)
	servers.Require(t, err)
	t.Cleanup(ha.Stop)
	const patience = 30 * time.Second // for the cluster to elect, or a server to answer
	must := func(t testing.TB, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%v\n%s", err, ha.Logs())
		}
	}
	// answering waits until the cluster has a leader other than except
	// and every running apiserver answers /readyz (which reads etcd).
	answering := func(t testing.TB, except int) {
		t.Helper()
		_, err := ha.Etcd.WaitLeader(except, patience)
		must(t, err)
		must(t, ha.WaitReady(patience))
	}
	leader := func(t testing.TB) int {
		t.Helper()
		l, err := ha.Etcd.WaitLeader(-1, patience)
		must(t, err)
		return l
	}
	cs, err := kubernetes.NewForConfig(restConfig(t, ha.API(0).AdminKubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	leases := cs.CoordinationV1().Leases("default")

	// Each lock's clients, in the order New opened them, and what their
	// Clients logged (watch recoveries, the store going back in time).
	var mu sync.Mutex
	opened := map[string]int{}
	backendLogs := map[string]*backendtest.Log{}
	backendtest.RunFaults(t, backendtest.FaultHooks{
		New: func(t testing.TB, lock string) elector.Backend {
			mu.Lock()
			i := opened[lock]
			opened[lock]++
			log := backendLogs[lock]
			if log == nil {
				log = &backendtest.Log{}
				backendLogs[lock] = log
				t.Cleanup(func() {
					if s := log.String(); s != "" {
						t.Logf("the clients of %s logged:\n%s", lock, s[:min(len(s), 6000)])
					}
				})
			}
			mu.Unlock()
			return ownClient(t, ha.API(i%ha.Size()), log.Logger().With("client", i, "apiserver", i%ha.Size())).Lock(lock)
		},
		KillLeaderMember: func(t testing.TB) func(testing.TB) {
			l := leader(t)
			must(t, ha.Etcd.Kill(l))
			answering(t, l)
			return func(t testing.TB) {
				must(t, ha.Etcd.Start(l))
				answering(t, -1)
			}
		},
		PauseMember: func(t testing.TB) func(testing.TB) {
			l := leader(t)
			must(t, ha.Etcd.Pause(l))
			t.Cleanup(func() { ha.Etcd.Resume(l) }) // never leave it paused
			answering(t, l)
			return func(t testing.TB) {
				must(t, ha.Etcd.Resume(l))
				must(t, ha.Etcd.WaitHealthy(l, patience))
				answering(t, -1)
			}
		},
		RollingRestart: func(t testing.TB, restarted func(string)) {
			for i := range ha.Etcd.Size() {
				must(t, ha.Etcd.Restart(i))
				answering(t, -1)
				restarted(fmt.Sprintf("etcd member m%d", i))
			}
		},
		DeleteRecord: func(t testing.TB, lock string) {
			if err := leases.Delete(ctxT(t), lock, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		},
		TamperRecord: func(t testing.TB, lock string, rec elector.Record) { tamperLease(t, leases, lock, rec) },
		Wipe:         func(t testing.TB) { must(t, ha.Wipe()) },
		Snapshot: func(t testing.TB) func(testing.TB) {
			_, err := servers.Find("etcdutl") // in CI a missing one fails the test
			servers.Require(t, err)
			snap := filepath.Join(t.TempDir(), "snapshot.db")
			must(t, ha.Etcd.Snapshot(snap))
			return func(t testing.TB) { must(t, ha.Restore(snap)) }
		},
	})
}

// tamperLease replaces the spec of Lease lock with rec, as client-go's
// LeaseLock writes a record, through the admin's leases.
func tamperLease(t testing.TB, leases coordclient.LeaseInterface, lock string, rec elector.Record) {
	secs := min(int64(rec.LeaseDuration/time.Second), 1<<31-1)
	at, rt := metav1.NewMicroTime(rec.AcquireTime), metav1.NewMicroTime(rec.RenewTime)
	spec := coordinationv1.LeaseSpec{HolderIdentity: ptr(rec.Holder), LeaseDurationSeconds: ptr(int32(secs)),
		AcquireTime: &at, RenewTime: &rt, LeaseTransitions: ptr(int32(rec.Term))}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		// The leader renews meanwhile: read and write until the write
		// is not a Conflict.
		l, err := leases.Get(ctx, lock, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: lock}, Spec: spec}, metav1.CreateOptions{})
		} else if err == nil {
			l.Spec = spec
			_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		}
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}
