package kube_test

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/leasehold-go/leasehold/backend/kube"
	"github.com/leasehold-go/leasehold/elector"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// ExampleOpen campaigns for a lock kept in a Kubernetes Lease: kube.Open
// in the place of the memory backend of elector's examples. It needs a
// cluster, so it is compiled, not run.
func ExampleOpen() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	id, err := os.Hostname() // the pod's name: unique among the replicas
	if err != nil {
		log.Fatalf("identity: %v", err)
	}
	lease := elector.DefaultConfig(id)

	cfg := kube.DefaultConfig() // in a pod its service account, else $KUBECONFIG or ~/.kube/config
	cfg.Namespace = "my-team"
	cfg.LeaseDuration = lease.LeaseDuration // a Lease keeps whole seconds: Open refuses 1.5s
	backend, closeStore, err := kube.Open(ctx, cfg, "my-controller", slog.Default())
	if err != nil {
		log.Fatalf("opening the lock: %v", err) // no cluster, or RBAC refusing the Lease
	}
	defer closeStore()

	e, err := elector.New(lease, backend, elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) { <-ctx.Done() }, // the leader's work
		OnStoppedLeading: func() {},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := e.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// Example_clientGo is the program that Example_fromClientGo rewrites with
// leasehold, for comparison: client-go's leader election on a LeaseLock,
// its healthz adaptor, klog. It needs a cluster, so it is compiled, not run.
func Example_clientGo() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	id, err := os.Hostname() // the pod's name
	if err != nil {
		klog.Fatalf("identity: %v", err)
	}

	// Logging: klog, where client-go logs too.
	logger := klog.Background()

	// The lock: a LeaseLock on a clientset.
	rc, err := rest.InClusterConfig()
	if err != nil {
		klog.Fatalf("cluster config: %v", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		klog.Fatalf("clientset: %v", err)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: "my-team", Name: "my-controller"},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}

	// The health check: an adaptor the election fills in, and a handler.
	healthz := leaderelection.NewLeaderHealthzAdaptor(20 * time.Second)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := healthz.Check(r); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok\n")
	})
	go func() { logger.Error(http.ListenAndServe(":8080", mux), "health server") }()

	// The election: it returns when the leadership is lost.
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		ReleaseOnCancel: true,
		WatchDog:        healthz,
		Name:            "my-controller",
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) { <-ctx.Done() }, // the leader's work
			OnStoppedLeading: func() { logger.Info("no longer leading") },
			OnNewLeader:      func(leader string) { logger.Info("new leader", "leader", leader) },
		},
	})
}

// Example_fromClientGo is Example_clientGo with leasehold: the kube
// backend's Lease in place of the LeaseLock (the two share a Lease, so
// replicas can move one at a time), elector.HealthHandler in place of the
// healthz adaptor, and klog kept behind a *slog.Logger through logr's
// bridge. It needs a cluster, so it is compiled, not run.
func Example_fromClientGo() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	id, err := os.Hostname() // the pod's name
	if err != nil {
		klog.Fatalf("identity: %v", err)
	}

	// Logging: leasehold takes a *slog.Logger; logr.ToSlogHandler puts
	// one in front of klog (or of any logr sink, such as controller-runtime's).
	logger := slog.New(logr.ToSlogHandler(klog.Background()))

	// The lock: the same Lease. In a pod kube.Open uses the service account
	// (else $KUBECONFIG or ~/.kube/config); set cfg.REST to reuse a *rest.Config.
	lease := elector.DefaultConfig(id) // 15s / 10s / 2s, ReleaseOnCancel: true
	cfg := kube.DefaultConfig()
	cfg.Namespace = "my-team"
	cfg.LeaseDuration = lease.LeaseDuration
	backend, closeStore, err := kube.Open(ctx, cfg, "my-controller", logger)
	if err != nil {
		klog.Fatalf("opening the lock: %v", err)
	}
	defer closeStore()

	// The election: Run keeps campaigning until ctx is cancelled; the term
	// is the fencing token of the leader's writes.
	e, err := elector.New(lease, backend, elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) { <-ctx.Done() }, // the leader's work
		OnStoppedLeading: func() { logger.Info("no longer leading") },
		OnNewLeader:      func(leader string) { logger.Info("new leader", "leader", leader) },
	}, elector.WithLogger(logger))
	if err != nil {
		klog.Fatalf("elector: %v", err)
	}

	// The health check: no adaptor to wire, the handler asks e. client-go
	// counts the tolerance from LeaseDuration, leasehold from RenewDeadline:
	// this fails when NewLeaderHealthzAdaptor(20 * time.Second) did.
	mux := http.NewServeMux()
	mux.Handle("/healthz", elector.HealthHandler(e, 20*time.Second+lease.LeaseDuration-lease.RenewDeadline))
	go func() { logger.Error("health server", "err", http.ListenAndServe(":8080", mux)) }()

	if err := e.Run(ctx); err != nil {
		klog.Fatalf("election: %v", err)
	}
}

// Example_klogToSlog is the other direction of logr's bridge, for a
// program that moves to slog: logr.FromSlogHandler sends client-go's own
// klog lines to the program's slog handler. It changes klog's global
// logger, so it is compiled, not run.
func Example_klogToSlog() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	klog.SetLogger(logr.FromSlogHandler(logger.Handler()))
	defer klog.Flush()
	// ... elector.New(cfg, backend, callbacks, elector.WithLogger(logger))
}
