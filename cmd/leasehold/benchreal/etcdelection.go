package benchreal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/elector"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// etcdKind is etcd's concurrency.Election, each candidate with its own
// client and session; the session TTL is LeaseDuration rounded up to whole
// seconds.
type etcdKind struct {
	o    Options
	run  string
	base clientv3.Config
	ttl  int
}

func newEtcdKind(o Options, run string) (kind, cleaner, error) {
	base, err := o.etcdBase()
	if err != nil {
		return nil, nil, err
	}
	if len(base.Endpoints) == 0 {
		return nil, nil, errors.New("bench backend: etcd-election: no etcd endpoints (Options.EtcdEndpoints or FromEtcd)")
	}
	if base.DialTimeout == 0 {
		base.DialTimeout = 5 * time.Second
	}
	if base.Logger == nil {
		base.Logger = zap.NewNop()
	}
	ttl := int((o.LeaseDuration + time.Second - 1) / time.Second)
	k := &etcdKind{o: o, run: run, base: base, ttl: max(ttl, 1)}
	cli, err := clientv3.New(base)
	if err != nil {
		return nil, nil, fmt.Errorf("bench backend: etcd-election: connect to %s: %w", strings.Join(base.Endpoints, ","), err)
	}
	return k, &etcdCleaner{k: k, cli: cli}, nil
}

func (k *etcdKind) name() string { return ImplEtcd }
func (k *etcdKind) mode() string { return ModeNative }

func (k *etcdKind) settings() string {
	return fmt.Sprintf("concurrency.Election, Session TTL %ds (keep-alive every TTL/3); handoff: Resign; crash: the client closed, its lease left to expire; requests: unary calls and stream messages sent; renew: a keep-alive round trip",
		k.ttl)
}

func (k *etcdKind) prefix() string { return fmt.Sprintf("/%s/%s/", k.o.Lock, k.run) }

func (k *etcdKind) lockName(purpose string) string { return k.prefix() + purpose }

type etcdCand struct {
	g       *gate
	leading atomic.Bool
	cli     *clientv3.Client
	cancel  context.CancelFunc
	done    chan struct{}
	crashed atomic.Bool

	mu sync.Mutex
	t0 time.Time
}

// interceptors count a candidate's unary calls and stream messages, fail
// them once it is cut off, and time the leader's keep-alives.
func (c *etcdCand) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if err := c.g.pass(); err != nil {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *etcdCand) stream(h *hooks) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if c.g.cut.Load() {
			return nil, errCrashed
		}
		s, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return &countedStream{ClientStream: s, c: c, h: h, keepAlive: strings.HasSuffix(method, "/LeaseKeepAlive")}, nil
	}
}

type countedStream struct {
	grpc.ClientStream
	c         *etcdCand
	h         *hooks
	keepAlive bool

	mu    sync.Mutex
	sends []time.Time // keep-alives awaiting their answer
}

func (s *countedStream) SendMsg(m any) error {
	if err := s.c.g.pass(); err != nil {
		return err
	}
	if s.keepAlive {
		s.mu.Lock()
		if len(s.sends) < 64 {
			s.sends = append(s.sends, time.Now())
		}
		s.mu.Unlock()
	}
	return s.ClientStream.SendMsg(m)
}

func (s *countedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if s.keepAlive && err == nil {
		s.mu.Lock()
		if len(s.sends) > 0 {
			sent := s.sends[0]
			s.sends = s.sends[1:]
			if s.c.leading.Load() {
				s.h.renewed(time.Since(sent))
			}
		}
		s.mu.Unlock()
	}
	return err
}

func (k *etcdKind) start(ctx context.Context, lock, id string, h *hooks) (contender, error) {
	c := &etcdCand{g: &gate{}, done: make(chan struct{})}
	cfg := k.base
	cfg.DialOptions = append(slices.Clone(cfg.DialOptions),
		grpc.WithChainUnaryInterceptor(c.unary), grpc.WithChainStreamInterceptor(c.stream(h)))
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd-election: connect to %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	c.cli = cli
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	ready := make(chan struct{})
	go func() {
		defer close(c.done)
		defer cli.Close()
		c.mu.Lock()
		c.t0 = time.Now()
		c.mu.Unlock()
		close(ready)
		s, err := concurrency.NewSession(cli, concurrency.WithTTL(k.ttl))
		if err != nil {
			if !c.crashed.Load() && rctx.Err() == nil {
				h.fail(fmt.Errorf("etcd-election: candidate %s: session: %w", id, err))
			}
			return
		}
		e := concurrency.NewElection(s, lock)
		if err := e.Campaign(rctx, id); err != nil {
			if !c.crashed.Load() && rctx.Err() == nil {
				h.fail(fmt.Errorf("etcd-election: candidate %s: campaign: %w", id, err))
			}
			if !c.crashed.Load() {
				s.Close()
			}
			return
		}
		c.leading.Store(true)
		h.started(id)
		select {
		case <-rctx.Done():
		case <-s.Done(): // the session's lease is gone: leadership lost
		}
		c.leading.Store(false)
		h.stopped(id)
		if c.crashed.Load() {
			return // abandoned: no resign, no revoke
		}
		rc, rcancel := context.WithTimeout(context.Background(), k.o.RenewDeadline)
		e.Resign(rc)
		rcancel()
		s.Close() // revokes the session's lease
	}()
	stopOnDone(ctx, c.done, cancel)
	<-ready
	return c, nil
}

func (c *etcdCand) began() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t0
}

func (c *etcdCand) requests() int64 { return c.g.n.Load() }

// stop: a leader resigns and revokes its session; a follower's campaign is
// cancelled.
func (c *etcdCand) stop() {
	c.cancel()
	<-c.done
}

// crash closes the client without revoking the session's lease: the
// lease (and the leader's key) lives until its TTL runs out.
func (c *etcdCand) crash() {
	c.crashed.Store(true)
	c.g.cut.Store(true)
	c.cli.Close()
	c.cancel()
	<-c.done
}

// etcdCleaner deletes the election's keys and leasehold's records.
type etcdCleaner struct {
	k   *etcdKind
	cli *clientv3.Client
}

func (c *etcdCleaner) clean(ctx context.Context, backends []elector.Backend) error {
	var errs []error
	if _, err := c.cli.Delete(ctx, c.k.prefix(), clientv3.WithPrefix()); err != nil {
		errs = append(errs, fmt.Errorf("etcd: delete %s*: %w", c.k.prefix(), err))
	}
	for _, b := range backends {
		if eb, ok := b.(*etcd.Backend); ok {
			if _, err := c.cli.Delete(ctx, eb.Key()); err != nil {
				errs = append(errs, fmt.Errorf("etcd: delete %s: %w", eb.Key(), err))
			}
		}
	}
	return errors.Join(errs...)
}

func (c *etcdCleaner) close(context.Context) error { return c.cli.Close() }
