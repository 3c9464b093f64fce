package etcd_test

import (
	"context"
	"crypto/rand"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/elector"
)

// ExampleOpen campaigns for a lock kept in an etcd cluster: etcd.Open in
// the place of the memory backend of elector's examples. It needs a running
// etcd, so it is compiled, not run.
func ExampleOpen() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	host, err := os.Hostname()
	if err != nil {
		log.Fatalf("identity: %v", err)
	}
	id := host + "_" + rand.Text()[:8]

	cfg := etcd.DefaultConfig() // 127.0.0.1:2379, keys under /leasehold/
	cfg.Endpoints = []string{"etcd-0:2379", "etcd-1:2379", "etcd-2:2379"}
	backend, closeStore, err := etcd.Open(ctx, cfg, "my-controller", slog.Default())
	if err != nil {
		log.Fatalf("opening the lock: %v", err) // etcd unreachable, a bad TLS file, refused credentials
	}
	defer closeStore()

	e, err := elector.New(elector.DefaultConfig(id), backend, elector.Callbacks{
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
