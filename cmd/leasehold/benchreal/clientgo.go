//go:build clientgo

package benchreal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/leasehold-go/leasehold/backend/kube"
	"github.com/leasehold-go/leasehold/elector"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// clientGoKind is client-go's leaderelection with a LeaseLock, each
// candidate on its own client, with the same three durations.
type clientGoKind struct {
	o   Options
	run string
	rc  *rest.Config
	ns  string

	mu    sync.Mutex
	names map[string]bool // the Leases of its locks, for the cleanup
}

func kubeREST(o Options) (*rest.Config, error) {
	if o.KubeREST != nil {
		return rest.CopyConfig(o.KubeREST), nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.KubeConfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: o.KubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("bench backend: client-go: kubeconfig %q: %w", o.KubeConfig, err)
	}
	return rc, nil
}

func newClientGoKind(o Options, run string) (kind, cleaner, error) {
	rc, err := kubeREST(o)
	if err != nil {
		return nil, nil, err
	}
	// The same client limits as leasehold's kube backend.
	rc.QPS, rc.Burst = kube.QPS, kube.Burst
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("bench backend: client-go: client for %s: %w", rc.Host, err)
	}
	k := &clientGoKind{o: o, run: run, rc: rc, ns: o.KubeNamespace, names: map[string]bool{}}
	return k, &kubeCleaner{k: k, cs: cs}, nil
}

func (k *clientGoKind) name() string { return ImplClientGo }
func (k *clientGoKind) mode() string { return ModeNative }

func (k *clientGoKind) settings() string {
	return fmt.Sprintf("leaderelection.LeaderElector with a LeaseLock in namespace %s, LeaseDuration %v, RenewDeadline %v, RetryPeriod %v, ReleaseOnCancel; requests: HTTP requests; renew: the leader's PUT",
		k.ns, k.o.LeaseDuration, k.o.RenewDeadline, k.o.RetryPeriod)
}

func (k *clientGoKind) lockName(purpose string) string {
	name := fmt.Sprintf("%s-%s-cg-%s", k.o.Lock, k.run, purpose)
	k.mu.Lock()
	k.names[name] = true
	k.mu.Unlock()
	return name
}

type cgCand struct {
	g       *gate
	leading atomic.Bool
	cancel  context.CancelFunc
	done    chan struct{}
	t0      time.Time
}

// timedRT counts a candidate's requests, fails them once it is cut off,
// and times the leader's PUTs (its renewals).
type timedRT struct {
	c  *cgCand
	h  *hooks
	rt http.RoundTripper
}

func (t timedRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := t.c.g.pass(); err != nil {
		return nil, err
	}
	renew := r.Method == http.MethodPut && t.c.leading.Load()
	sent := time.Now()
	resp, err := t.rt.RoundTrip(r)
	if renew && err == nil && resp.StatusCode == http.StatusOK {
		t.h.renewed(time.Since(sent))
	}
	return resp, err
}

func (k *clientGoKind) start(ctx context.Context, lock, id string, h *hooks) (contender, error) {
	c := &cgCand{g: &gate{}, done: make(chan struct{})}
	rc := rest.CopyConfig(k.rc)
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return timedRT{c: c, h: h, rt: rt} }
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("client-go: client for %s: %w", rc.Host, err)
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: lock, Namespace: k.ns},
			Client:     cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		},
		LeaseDuration:   k.o.LeaseDuration,
		RenewDeadline:   k.o.RenewDeadline,
		RetryPeriod:     k.o.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            lock,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				c.leading.Store(true)
				h.started(id)
				<-ctx.Done()
			},
			OnStoppedLeading: func() {
				c.leading.Store(false)
				h.stopped(id)
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("client-go: candidate %s: %w", id, err)
	}
	// client-go logs every attempt through klog: not into the report.
	rctx, cancel := context.WithCancel(klog.NewContext(context.WithoutCancel(ctx), logr.Discard()))
	c.cancel = cancel
	c.t0 = time.Now()
	go func() {
		defer close(c.done)
		le.Run(rctx)
	}()
	stopOnDone(ctx, c.done, cancel)
	return c, nil
}

func (c *cgCand) began() time.Time { return c.t0 }
func (c *cgCand) requests() int64  { return c.g.n.Load() }

// stop cancels the elector: with ReleaseOnCancel a leader releases.
func (c *cgCand) stop() {
	c.cancel()
	<-c.done
}

// crash cuts the client off, then cancels: its release fails.
func (c *cgCand) crash() {
	c.g.cut.Store(true)
	c.cancel()
	<-c.done
}

// kubeCleaner deletes the run's Leases.
type kubeCleaner struct {
	k  *clientGoKind
	cs *kubernetes.Clientset
}

func (c *kubeCleaner) clean(ctx context.Context, backends []elector.Backend) error {
	names := map[string]string{} // name → namespace
	c.k.mu.Lock()
	for name := range c.k.names {
		names[name] = c.k.ns
	}
	c.k.mu.Unlock()
	for _, b := range backends {
		if kb, ok := b.(*kube.Backend); ok {
			names[kb.Name()] = kb.Namespace()
		}
	}
	var errs []error
	for name, ns := range names {
		err := c.cs.CoordinationV1().Leases(ns).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete lease %s/%s: %w", ns, name, err))
		}
	}
	return errors.Join(errs...)
}

func (c *kubeCleaner) close(context.Context) error { return nil }
