// Command controller is what a controller author writes with leasehold: a
// unique identity, signal handling, the three callbacks, and the term used
// as a fencing token on every write the leader makes.
//
// It runs against the in-memory backend so it works anywhere
// (go run ./examples/controller); a real deployment swaps that one line for
// the etcd, Consul or Kubernetes backend.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
)

func main() {
	if err := run(); err != nil {
		slog.Error("controller failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	// SIGTERM (a rolling update) cancels ctx: the elector stops the
	// leader's work, waits for it to return and releases the lock, so the
	// next replica takes over at once instead of after the lease runs out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	id, err := identity()
	if err != nil {
		return err
	}
	// The lock. Swap this for the etcd, Consul or Kubernetes backend.
	backend := memory.New().Backend("example-controller", id)

	cfg := elector.DefaultConfig(id) // 15s lease, 10s renew deadline, 2s retry, release on cancel
	store := &fencedStore{}

	e, err := elector.New(cfg, backend, elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) {
			slog.Info("leading", "term", term)
			reconcile(ctx, store, term)
		},
		OnStoppedLeading: func() {
			slog.Info("no longer leading")
		},
		OnNewLeader: func(leader string) {
			if leader != id && leader != "" {
				slog.Info("following", "leader", leader)
			}
		},
	})
	if err != nil {
		return err
	}
	return e.Run(ctx) // returns after ctx is cancelled and the lock released
}

// identity is unique per process: hostname plus a random suffix, so two
// processes on one host (or a restarted pod) never share an identity.
func identity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", err
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return host + "_" + hex.EncodeToString(b), nil
}

// reconcile is the leader's work loop. It stops as soon as ctx is cancelled
// and stamps every write with the term.
func reconcile(ctx context.Context, store *fencedStore, term int64) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := store.Write(term, fmt.Sprintf("reconciled %d", n)); err != nil {
			// A newer leader exists: stop writing at once.
			slog.Warn("write fenced off", "err", err)
			return
		}
	}
}

// fencedStore stands for any resource the leader writes to (a database row,
// an object store, an API). It remembers the highest term it has seen and
// refuses writes from older terms: a paused or partitioned ex-leader that
// still believes it leads cannot overwrite its successor's work.
type fencedStore struct {
	mu      sync.Mutex
	highest int64
	last    string
}

var errFenced = errors.New("write from a stale term")

func (s *fencedStore) Write(term int64, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if term < s.highest {
		return fmt.Errorf("%w: term %d < %d", errFenced, term, s.highest)
	}
	s.highest, s.last = term, value
	return nil
}
