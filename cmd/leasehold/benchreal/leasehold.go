package benchreal

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/leasehold-go/leasehold/elector"
)

// leaseholdKind is leasehold's elector.Run on backends from
// Options.NewBackend, followers watching or (poll) polling.
type leaseholdKind struct {
	o     Options
	run   string
	short string // in lock names
	poll  bool

	mu      sync.Mutex
	opened  []elector.Backend // for the cleanup
	noWatch bool              // the backend has no Watch: both passes poll
}

func (k *leaseholdKind) name() string { return ImplLeasehold }

func (k *leaseholdKind) mode() string {
	if k.poll {
		return ModePoll
	}
	return ModeWatch
}

func (k *leaseholdKind) settings() string {
	s := fmt.Sprintf("elector.Run, LeaseDuration %v, RenewDeadline %v, RetryPeriod %v, release on cancel; ",
		k.o.LeaseDuration, k.o.RenewDeadline, k.o.RetryPeriod)
	k.mu.Lock()
	noWatch := k.noWatch
	k.mu.Unlock()
	switch {
	case k.poll:
		s += "followers poll (the backend's Watch hidden)"
	case noWatch:
		s += "the backend has no Watch: followers poll"
	default:
		s += "followers watch"
	}
	if k.o.Backend == "consul" {
		return s + "; requests: Backend calls (Get, Create, Update, Watch: a blocking query), one each"
	}
	return s + "; requests: Backend calls (Get, Create, Update), one each; a Watch rides an open stream and is no request"
}

func (k *leaseholdKind) lockName(purpose string) string {
	return fmt.Sprintf("%s-%s-%s-%s", k.o.Lock, k.run, k.short, purpose)
}

// stored lists the backends opened, whose records the cleanup deletes.
func (k *leaseholdKind) stored() []elector.Backend {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.opened
}

// lhCand is one leasehold candidate.
type lhCand struct {
	g      *gate
	cancel context.CancelFunc
	done   chan struct{}
	close  func() error
	start  time.Time
}

func (k *leaseholdKind) start(ctx context.Context, lock, id string, h *hooks) (contender, error) {
	b, closeFn, err := k.o.NewBackend(ctx, lock, id)
	if err != nil {
		return nil, fmt.Errorf("leasehold: open lock %s for candidate %s: %w", lock, id, err)
	}
	if b == nil {
		return nil, fmt.Errorf("leasehold: open lock %s for candidate %s: NewBackend returned no backend", lock, id)
	}
	if closeFn == nil {
		closeFn = func() error { return nil }
	}
	c := &lhCand{g: &gate{}, done: make(chan struct{}), close: closeFn}
	cb := &countedBackend{b: b, g: c.g}
	var be elector.Backend = cb
	w, watches := b.(elector.Watcher)
	k.mu.Lock()
	k.opened = append(k.opened, b)
	k.noWatch = !watches
	k.mu.Unlock()
	if watches && !k.poll {
		be = &countedWatcher{countedBackend: cb, w: w, isRequest: k.o.Backend == "consul"}
	}
	e, err := elector.New(k.o.electorConfig(id), be, elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, _ int64) {
			h.started(id)
			<-ctx.Done()
		},
		OnStoppedLeading: func() { h.stopped(id) },
	}, elector.WithLogger(slog.New(slog.DiscardHandler)), elector.WithObserver(renewObserver{h}))
	if err != nil {
		closeFn()
		return nil, fmt.Errorf("leasehold: candidate %s: %w", id, err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.start = time.Now()
	go func() {
		defer close(c.done)
		if err := e.Run(rctx); err != nil {
			h.fail(fmt.Errorf("leasehold: candidate %s: %w", id, err))
		}
	}()
	stopOnDone(ctx, c.done, cancel)
	return c, nil
}

func (c *lhCand) began() time.Time { return c.start }
func (c *lhCand) requests() int64  { return c.g.n.Load() }

func (c *lhCand) stop() {
	c.cancel()
	<-c.done
	c.close()
}

func (c *lhCand) crash() {
	c.g.cut.Store(true)
	c.cancel()
	<-c.done
	c.close()
}

// renewObserver reports the latency of every successful renewal.
type renewObserver struct{ h *hooks }

func (o renewObserver) Call(k elector.Kind, _ elector.Op, took time.Duration, err error) {
	if k == elector.KindRenew && err == nil {
		o.h.renewed(took)
	}
}

func (renewObserver) Leading(bool, int64, elector.StopReason) {}

// countedBackend counts the calls of one candidate and fails them once it
// is cut off. It has no Watch: followers poll.
type countedBackend struct {
	b elector.Backend
	g *gate
}

func (c *countedBackend) Get(ctx context.Context) (elector.Record, elector.Version, error) {
	if err := c.g.pass(); err != nil {
		return elector.Record{}, "", err
	}
	return c.b.Get(ctx)
}

func (c *countedBackend) Create(ctx context.Context, r elector.Record) (elector.Version, error) {
	if err := c.g.pass(); err != nil {
		return "", err
	}
	return c.b.Create(ctx, r)
}

func (c *countedBackend) Update(ctx context.Context, r elector.Record, v elector.Version) (elector.Version, error) {
	if err := c.g.pass(); err != nil {
		return "", err
	}
	return c.b.Update(ctx, r, v)
}

func (c *countedBackend) Describe() string { return c.b.Describe() }

// NeverForgets passes on the store's answer (elector.Remembering): the
// count changes nothing of how candidates treat their store.
func (c *countedBackend) NeverForgets() bool {
	r, ok := c.b.(elector.Remembering)
	return ok && r.NeverForgets()
}

// countedWatcher is countedBackend with the backend's Watch, counted as a
// request only where the store serves it as one (isRequest: Consul's
// blocking query), not where it rides an open stream (etcd, Kubernetes),
// as the store's own metrics count them.
type countedWatcher struct {
	*countedBackend
	w         elector.Watcher
	isRequest bool
}

func (c *countedWatcher) Watch(ctx context.Context, v elector.Version) (elector.Record, elector.Version, error) {
	pass := c.g.open
	if c.isRequest {
		pass = c.g.pass
	}
	if err := pass(); err != nil {
		return elector.Record{}, "", err
	}
	return c.w.Watch(ctx, v)
}
