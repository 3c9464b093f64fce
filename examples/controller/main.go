// Command controller is what a controller author writes with leasehold: a
// unique identity, signal handling, the three callbacks, and the term used
// as a fencing token on every write the leader makes.
//
// The lock is kept in the store -backend names: memory (the default, so it
// runs anywhere: go run . in this directory), etcd, consul or kube. Each
// is opened through its package's Open(ctx, Config, lock, logger), the one
// line a real deployment changes:
//
//	controller                                   # in-process memory store
//	controller -backend etcd -etcd-endpoints 10.0.0.1:2379,10.0.0.2:2379
//	controller -backend consul -consul-address 127.0.0.1:8500
//	controller -backend kube -kube-namespace my-team [-kubeconfig ~/.kube/config]
//
// It logs to stderr (slog's text format): "leading" with the term when it
// leads, "wrote" with the term for every write, and it exits 0 after
// SIGTERM or Ctrl-C once the lock is released; 2 on a bad flag, 1 when the
// store cannot be opened.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/backend/kube"
	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
)

func main() {
	// SIGTERM (a rolling update) cancels ctx: the elector stops the
	// leader's work, waits for it to return and releases the lock, so the
	// next replica takes over at once instead of after the lease runs out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	var usage usageError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		if !usage.printed {
			fmt.Fprintln(os.Stderr, "controller:", err)
		}
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(1)
	}
}

// usageError is a bad command line (exit status 2). The flag package has
// printed its own errors already.
type usageError struct {
	msg     string
	printed bool
}

func (e usageError) Error() string { return e.msg }

// options are the command line.
type options struct {
	backend       string
	lock          string
	etcdEndpoints string
	consulAddress string
	kubeNamespace string
	kubeconfig    string
}

// backendFlags names the flags that only a given backend reads.
var backendFlags = map[string]string{
	"etcd-endpoints": "etcd",
	"consul-address": "consul",
	"kube-namespace": "kube",
	"kubeconfig":     "kube",
}

// parse reads the command line; help and errors go to stderr.
func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.backend, "backend", "memory", "the store of the lock: memory, etcd, consul or kube")
	fs.StringVar(&o.lock, "lock", "example-controller", "the lock's name (a key for etcd and Consul, a Lease for kube)")
	fs.StringVar(&o.etcdEndpoints, "etcd-endpoints", etcd.DefaultEndpoint, "etcd: comma-separated host:port or URLs")
	fs.StringVar(&o.consulAddress, "consul-address", consul.DefaultAddress, "consul: the agent's HTTP API, host:port")
	fs.StringVar(&o.kubeNamespace, "kube-namespace", kube.DefaultNamespace, "kube: the namespace of the Lease")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kube: a kubeconfig file (default: in a pod its service account, else $KUBECONFIG or ~/.kube/config)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usageError{msg: err.Error(), printed: true}
	}
	if fs.NArg() > 0 {
		return o, usageError{msg: fmt.Sprintf("unexpected argument %q (all options are flags)", fs.Arg(0))}
	}
	switch o.backend {
	case "memory", "etcd", "consul", "kube":
	default:
		return o, usageError{msg: fmt.Sprintf("-backend %q: want memory, etcd, consul or kube", o.backend)}
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if b, only := backendFlags[f.Name]; only && b != o.backend && err == nil {
			err = usageError{msg: fmt.Sprintf("-%s is a flag of -backend %s, not of -backend %s", f.Name, b, o.backend)}
		}
	})
	return o, err
}

// run parses args, opens the lock and campaigns until ctx is cancelled.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	id, err := identity()
	if err != nil {
		return err
	}
	cfg := elector.DefaultConfig(id) // 15s lease, 10s renew deadline, 2s retry, release on cancel

	// The lock: the one place where the store is chosen.
	backend, closeStore, err := open(ctx, o, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while connecting: a normal stop
		}
		return fmt.Errorf("opening lock %q on the %s backend: %w", o.lock, o.backend, err)
	}
	defer func() {
		if err := closeStore(); err != nil {
			log.Warn("closing the store", "err", err)
		}
	}()

	store := &fencedStore{}
	e, err := elector.New(cfg, backend, elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) {
			log.Info("leading", "term", term)
			reconcile(ctx, log, store, term)
		},
		OnStoppedLeading: func() {
			log.Info("no longer leading")
		},
		OnNewLeader: func(leader string) {
			if leader != id && leader != "" {
				log.Info("following", "leader", leader)
			}
		},
	}, elector.WithLogger(log))
	if err != nil {
		return fmt.Errorf("elector: %w", err)
	}
	if err := e.Run(ctx); err != nil { // returns after ctx is cancelled and the lock released
		return fmt.Errorf("elector: %w", err)
	}
	log.Info("stopped")
	return nil
}

// open opens the lock on the backend o names, through that backend
// package's Open: the shape every backend has.
func open(ctx context.Context, o options, cfg elector.Config, log *slog.Logger) (elector.Backend, func() error, error) {
	switch o.backend {
	case "etcd":
		c := etcd.DefaultConfig()
		c.Endpoints = strings.Split(o.etcdEndpoints, ",")
		c.MaxReconnectDelay = cfg.RetryPeriod // reconnect soon after an outage, as the CLI does
		return etcd.Open(ctx, c, o.lock, log)
	case "consul":
		c := consul.DefaultConfig()
		c.Address = o.consulAddress
		return consul.Open(ctx, c, o.lock, log)
	case "kube":
		c := kube.DefaultConfig()
		c.Namespace, c.Kubeconfig = o.kubeNamespace, o.kubeconfig
		c.LeaseDuration = cfg.LeaseDuration // a Lease keeps whole seconds
		return kube.Open(ctx, c, o.lock, log)
	default:
		return memory.Open(ctx, memory.DefaultConfig(), o.lock, log)
	}
}

// identity is unique per process: hostname plus a random suffix, so two
// processes on one host (or a restarted pod) never share an identity.
func identity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	return host + "_" + rand.Text()[:8], nil
}

// reconcile is the leader's work loop. It stops as soon as ctx is cancelled
// and stamps every write with the term.
func reconcile(ctx context.Context, log *slog.Logger, store *fencedStore, term int64) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		value := fmt.Sprintf("reconciled %d", n)
		if err := store.Write(term, value); err != nil {
			// A newer leader exists: stop writing at once.
			log.Warn("write fenced off", "err", err)
			return
		}
		log.Info("wrote", "term", term, "value", value)
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

// errFenced is what a write from an older term than the highest seen gets.
var errFenced = errors.New("write from a stale term")

// Write stores value if term is at least the highest term written so far.
func (s *fencedStore) Write(term int64, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if term < s.highest {
		return fmt.Errorf("%w: term %d < %d", errFenced, term, s.highest)
	}
	s.highest, s.last = term, value
	return nil
}
