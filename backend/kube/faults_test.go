package kube_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/kube"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestFaults runs the fault suite on a kube-apiserver of its own (one
// apiserver on one etcd member: the member cases are skipped). The Lease
// is deleted and tampered with; the apiserver is pointed at a fresh etcd
// (Wipe); the leader's client is cut off from the apiserver through a
// fault proxy (closed, blackholed, delayed, reset; HTTPS passes through it
// with the certificate of 127.0.0.1). Restoring etcd from a snapshot is
// not run here (this module has no etcd client to take one): the etcd
// backend's fault suite runs it.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault suite runs for about a minute and a quarter")
	}
	need(t)
	own, err := servers.StartKube()
	servers.Require(t, err)
	t.Cleanup(own.Stop)
	cs, err := kubernetes.NewForConfig(restConfig(t, own.AdminKubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	leases := cs.CoordinationV1().Leases("default")
	ctx := func(t testing.TB) context.Context {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return c
	}
	// open is a client of the apiserver as the admin, its REST config
	// adjusted by adjust.
	admin := restConfig(t, own.AdminKubeconfig)
	open := func(adjust func(*rest.Config), timeout time.Duration) (*kube.Client, error) {
		cfg := kube.DefaultConfig()
		cfg.REST = rest.CopyConfig(admin)
		adjust(cfg.REST)
		if timeout > 0 {
			cfg.RequestTimeout = timeout
		}
		cfg.Logger = slog.New(slog.DiscardHandler)
		return kube.New(context.Background(), cfg)
	}
	lock := func(t testing.TB, lock string, adjust func(*rest.Config)) elector.Backend {
		c, err := open(adjust, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.Lock(lock)
	}
	backendtest.RunFaults(t, backendtest.FaultHooks{
		New: func(t testing.TB, lock string) elector.Backend {
			return ownClient(t, own, slog.New(slog.DiscardHandler)).Lock(lock)
		},
		// The apiserver's certificate names 127.0.0.1, which the proxies
		// listen on too: TLS is verified as usual.
		NewVia: func(t testing.TB, l string, via func(string) string) elector.Backend {
			return lock(t, l, func(rc *rest.Config) { rc.Host = via(rc.Host) })
		},
		NewCounted: func(t testing.TB, l string) (elector.Backend, func() int) {
			cnt := &counter{}
			return lock(t, l, cnt.wrap), cnt.total
		},
		WatchRequests: 0, // one watch stream per Lease
		Connect: func(via func(string) string, timeout time.Duration) error {
			c, err := open(func(rc *rest.Config) { rc.Host = via(rc.Host) }, timeout)
			if err == nil {
				c.Close()
			}
			return err
		},
		DeleteRecord: func(t testing.TB, lock string) {
			if err := leases.Delete(ctx(t), lock, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		},
		TamperRecord: func(t testing.TB, lock string, rec elector.Record) { tamperLease(t, leases, lock, rec) },
		Wipe: func(t testing.TB) {
			if err := own.ReplaceEtcd(); err != nil {
				t.Fatal(err)
			}
		},
	})
}
