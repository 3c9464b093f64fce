package benchreal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"
	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/elector"
)

// consulKind is Consul's api.Lock, each candidate with its own client and
// session: SessionTTL = LeaseDuration, LockWaitTime = LeaseDuration, the
// lock-delay of Options.ConsulLockDelay.
type consulKind struct {
	o    Options
	run  string
	base api.Config
}

func newConsulKind(o Options, run string) (kind, cleaner, error) {
	base, err := o.consulBase()
	if err != nil {
		return nil, nil, err
	}
	k := &consulKind{o: o, run: run, base: base}
	cli, _, err := k.client(&gate{}, nil)
	if err != nil {
		return nil, nil, err
	}
	return k, &consulCleaner{k: k, cli: cli}, nil
}

func (k *consulKind) name() string { return ImplConsul }
func (k *consulKind) mode() string { return ModeNative }

func (k *consulKind) settings() string {
	return fmt.Sprintf("api.Lock, SessionTTL %v, LockWaitTime %v, LockDelay %v (the agent times a session out 2 × TTL after its last renewal; a key refused for its lock-delay is retried every 5s); handoff: Unlock; crash: the client cut off, its session neither renewed nor destroyed; requests: HTTP requests; renew: a session renewal",
		k.o.LeaseDuration, k.o.LeaseDuration, k.o.ConsulLockDelay)
}

func (k *consulKind) prefix() string { return fmt.Sprintf("%s/%s/", k.o.Lock, k.run) }

func (k *consulKind) lockName(purpose string) string { return k.prefix() + purpose }

// client makes a Consul client whose requests pass g and, while leading
// reports true, time session renewals into h; kill aborts its requests in
// flight.
func (k *consulKind) client(g *gate, c *consulCand) (*api.Client, func(), error) {
	cfg := k.base
	tr := cleanhttp.DefaultPooledTransport()
	tr.Proxy = nil // the agent is reached directly
	hc, err := api.NewHttpClient(tr, cfg.TLSConfig)
	if err != nil {
		return nil, nil, fmt.Errorf("bench backend: consul-lock: TLS: %w", err)
	}
	kctx, kill := context.WithCancel(context.Background())
	hc.Transport = &consulRT{g: g, c: c, rt: tr, kill: kctx}
	cfg.HttpClient = hc
	cli, err := api.NewClient(&cfg)
	if err != nil {
		kill()
		return nil, nil, fmt.Errorf("bench backend: consul-lock: client for %s: %w", cfg.Address, err)
	}
	return cli, func() { kill(); tr.CloseIdleConnections() }, nil
}

// consulRT counts requests, fails them once cut off, aborts those in flight
// when killed (a crashed process's connections drop), and times the
// leader's session renewals.
type consulRT struct {
	g    *gate
	c    *consulCand // nil: not a candidate's
	rt   http.RoundTripper
	kill context.Context
}

func (t *consulRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := t.g.pass(); err != nil {
		return nil, err
	}
	if t.kill.Err() != nil {
		return nil, errCrashed
	}
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(t.kill, cancel)
	renew := t.c != nil && t.c.leading.Load() && r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/session/renew/")
	sent := time.Now()
	resp, err := t.rt.RoundTrip(r.WithContext(ctx))
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	if renew && resp.StatusCode == http.StatusOK {
		t.c.h.renewed(time.Since(sent))
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, done: func() { stop(); cancel() }}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

type consulCand struct {
	g       *gate
	h       *hooks
	leading atomic.Bool
	kill    func()
	stopCh  chan struct{}
	once    sync.Once
	crashed atomic.Bool
	done    chan struct{}

	mu sync.Mutex
	t0 time.Time
}

func (k *consulKind) start(ctx context.Context, lock, id string, h *hooks) (contender, error) {
	c := &consulCand{g: &gate{}, h: h, stopCh: make(chan struct{}), done: make(chan struct{})}
	cli, kill, err := k.client(c.g, c)
	if err != nil {
		return nil, err
	}
	c.kill = kill
	l, err := cli.LockOpts(&api.LockOptions{
		Key:          lock,
		SessionName:  "leasehold bench " + id,
		SessionTTL:   k.o.LeaseDuration.String(),
		LockWaitTime: k.o.LeaseDuration,
		LockDelay:    k.o.ConsulLockDelay,
	})
	if err != nil {
		kill()
		return nil, fmt.Errorf("consul-lock: candidate %s: %w", id, err)
	}
	ready := make(chan struct{})
	go func() {
		defer close(c.done)
		defer kill()
		c.mu.Lock()
		c.t0 = time.Now()
		c.mu.Unlock()
		close(ready)
		lost, err := l.Lock(c.stopCh)
		if err != nil {
			if !c.stopping() {
				h.fail(fmt.Errorf("consul-lock: candidate %s: %w", id, err))
			}
			return
		}
		if lost == nil { // stopped while waiting
			return
		}
		if c.stopping() {
			if !c.crashed.Load() {
				l.Unlock()
			}
			return
		}
		c.leading.Store(true)
		h.started(id)
		select {
		case <-lost:
		case <-c.stopCh:
		}
		c.leading.Store(false)
		h.stopped(id)
		if !c.crashed.Load() {
			l.Unlock() // releases the key; the session is destroyed
			// The session's destroy follows the release in the renewal
			// goroutine: give it a moment before the connections go.
			time.Sleep(50 * time.Millisecond)
		}
	}()
	stopOnDone(ctx, c.done, c.stop)
	<-ready
	return c, nil
}

func (c *consulCand) stopping() bool {
	select {
	case <-c.stopCh:
		return true
	default:
		return false
	}
}

func (c *consulCand) began() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t0
}

func (c *consulCand) requests() int64 { return c.g.n.Load() }

// stop: a leader unlocks; a follower stops waiting (its blocking query is
// aborted).
func (c *consulCand) stop() {
	c.once.Do(func() { close(c.stopCh) })
	if !c.leading.Load() {
		c.kill()
	}
	<-c.done
}

// crash cuts the client off and aborts its requests: the session is
// neither renewed nor destroyed, Consul invalidates it after its TTL.
func (c *consulCand) crash() {
	c.crashed.Store(true)
	c.g.cut.Store(true)
	c.kill()
	c.once.Do(func() { close(c.stopCh) })
	<-c.done
}

// consulCleaner deletes the locks' keys and leasehold's records.
type consulCleaner struct {
	k   *consulKind
	cli *api.Client
}

func (c *consulCleaner) clean(ctx context.Context, backends []elector.Backend) error {
	var errs []error
	kv := c.cli.KV()
	w := (&api.WriteOptions{}).WithContext(ctx)
	if _, err := kv.DeleteTree(c.k.prefix(), w); err != nil {
		errs = append(errs, fmt.Errorf("consul: delete %s*: %w", c.k.prefix(), err))
	}
	for _, b := range backends {
		if cb, ok := b.(*consul.Backend); ok {
			if _, err := kv.Delete(cb.Key(), w); err != nil {
				errs = append(errs, fmt.Errorf("consul: delete %s: %w", cb.Key(), err))
			}
		}
	}
	return errors.Join(errs...)
}

func (c *consulCleaner) close(context.Context) error { return nil }
