package consul_test

import (
	"context"
	"crypto/rand"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/elector"
)

// ExampleOpen campaigns for a lock kept in Consul's KV store: consul.Open
// in the place of the memory backend of elector's examples. It needs a
// running Consul agent, so it is compiled, not run.
func ExampleOpen() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	host, err := os.Hostname()
	if err != nil {
		log.Fatalf("identity: %v", err)
	}
	id := host + "_" + rand.Text()[:8]

	cfg := consul.DefaultConfig() // the local agent, 127.0.0.1:8500, keys under leasehold/
	cfg.TokenFile = "/etc/my-controller/consul-token"
	backend, closeStore, err := consul.Open(ctx, cfg, "my-controller", slog.Default())
	if err != nil {
		log.Fatalf("opening the lock: %v", err) // no agent, no token file, a token without access to the key
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
