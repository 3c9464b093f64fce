// Package faultproxy is a TCP proxy for tests that puts a network fault
// between one client and a server, both on this machine: the client is
// given the proxy's address instead of the server's, and the test switches
// the proxy's mode while the client runs.
//
// The modes:
//
//   - Pass forwards every byte as it comes.
//   - Blackhole forwards nothing in either direction: connections stay
//     open and go silent (what a client sees of a network partition); new
//     connections are accepted and held, the server is not dialed. What was
//     held is delivered when the mode changes again, as TCP delivers what it
//     retransmits after a partition heals: bytes are delayed, never lost or
//     reordered.
//   - Latency delays every chunk read, and a close, by a fixed duration in
//     each direction (a round trip gains twice that).
//   - Reset closes every connection with a TCP RST (SO_LINGER 0) on both
//     sides, and resets every new connection as soon as it is accepted.
//
// A proxy listens on 127.0.0.1 and forwards only to a loopback address:
// tests never send traffic elsewhere.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"
)

// Mode is what a proxy does with the traffic it carries.
type Mode int

// The modes; see the package documentation.
const (
	Pass Mode = iota
	Blackhole
	Latency
	Reset
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Blackhole:
		return "blackhole"
	case Latency:
		return "latency"
	case Reset:
		return "reset"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Stats counts what a proxy did since it started.
type Stats struct {
	Accepted int64 // connections accepted from clients
	Refused  int64 // of those, reset at once (Reset mode)
	Dialed   int64 // connections made to the target
	Resets   int64 // connections reset by Reset or Close
	Open     int64 // connections open now (accepted, not yet closed)
	Up       int64 // bytes forwarded from clients to the target
	Down     int64 // bytes forwarded from the target to clients
	Held     int64 // bytes read and not yet forwarded (Blackhole, Latency)
}

// Proxy is one listening proxy to one target. Its methods may be called
// from any goroutine.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	mode    Mode
	delay   time.Duration
	changed chan struct{} // closed and replaced at every mode change
	links   map[*link]struct{}
	stats   Stats
	notify  chan struct{} // closed and replaced at every change of stats
	closed  bool
	wg      sync.WaitGroup
}

// Start starts a proxy in Pass mode on a free port of 127.0.0.1 that
// forwards to target (host:port, the host a loopback IP address).
func Start(target string) (*Proxy, error) {
	if err := loopback(target); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, changed: make(chan struct{}),
		links: map[*link]struct{}{}, notify: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// loopback refuses a target that is not host:port on a loopback IP.
func loopback(target string) error {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("faultproxy: target %q: only a loopback IP address is allowed", target)
	}
	return nil
}

// Addr is the address clients dial instead of the target: 127.0.0.1:PORT.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Pass forwards traffic again, first what was held.
func (p *Proxy) Pass() { p.set(Pass, 0) }

// Blackhole stops forwarding in both directions and holds connections.
func (p *Proxy) Blackhole() { p.set(Blackhole, 0) }

// Delay delays every chunk by d in each direction (d ≤ 0 is Pass).
func (p *Proxy) Delay(d time.Duration) {
	if d <= 0 {
		p.Pass()
		return
	}
	p.set(Latency, d)
}

// Reset resets every connection and every new one until the mode changes.
func (p *Proxy) Reset() { p.set(Reset, 0) }

// Mode returns the current mode and, for Latency, the delay.
func (p *Proxy) Mode() (Mode, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay
}

// Stats returns the counts now.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Await waits until cond holds for the proxy's stats, waking on every
// change, or returns ctx's error.
func (p *Proxy) Await(ctx context.Context, cond func(Stats) bool) error {
	for {
		p.mu.Lock()
		ok, ch := cond(p.stats), p.notify
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("faultproxy %s: %w (stats %+v)", p.Addr(), ctx.Err(), p.Stats())
		}
	}
}

// Close stops listening, resets every connection and waits until the
// proxy's goroutines have returned. Clients dialing its port afterwards are
// refused.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	links := p.linksLocked()
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.kill(true)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) set(m Mode, d time.Duration) {
	p.mu.Lock()
	p.mode, p.delay = m, d
	close(p.changed)
	p.changed = make(chan struct{})
	var links []*link
	if m == Reset {
		links = p.linksLocked()
	}
	p.mu.Unlock()
	for _, l := range links {
		l.kill(true)
	}
}

func (p *Proxy) linksLocked() []*link {
	out := make([]*link, 0, len(p.links))
	for l := range p.links {
		out = append(out, l)
	}
	return out
}

// update changes the stats under p.mu and wakes Await.
func (p *Proxy) update(f func(*Stats)) {
	p.mu.Lock()
	f(&p.stats)
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
}

// state is the mode now and a channel closed when it changes.
func (p *Proxy) state() (Mode, time.Duration, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay, p.changed
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		tc := c.(*net.TCPConn)
		p.mu.Lock()
		if p.closed || p.mode == Reset {
			p.stats.Accepted++
			p.stats.Refused++
			close(p.notify)
			p.notify = make(chan struct{})
			p.mu.Unlock()
			rst(tc)
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		l := &link{p: p, client: tc, ctx: ctx, cancel: cancel}
		p.links[l] = struct{}{}
		p.stats.Accepted++
		p.stats.Open++
		close(p.notify)
		p.notify = make(chan struct{})
		p.wg.Add(1)
		p.mu.Unlock()
		go l.run()
	}
}

// rst closes c with a TCP RST instead of a FIN.
func rst(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// link is one client connection and, once dialed, its connection to the
// target.
type link struct {
	p      *Proxy
	client *net.TCPConn
	ctx    context.Context // done once the link is killed
	cancel context.CancelFunc

	mu     sync.Mutex
	server *net.TCPConn
	held   int64 // bytes read and not forwarded; p.mu
	killed bool
}

// kill closes both connections, with an RST when reset, once.
func (l *link) kill(reset bool) {
	l.mu.Lock()
	if l.killed {
		l.mu.Unlock()
		return
	}
	l.killed = true
	server := l.server
	l.mu.Unlock()
	l.cancel()
	for _, c := range []*net.TCPConn{l.client, server} {
		if c == nil {
			continue
		}
		if reset {
			rst(c)
		} else {
			c.Close()
		}
	}
	if reset {
		l.p.update(func(s *Stats) { s.Resets++ })
	}
}

// run dials the target once the mode lets traffic through, then forwards
// both directions until both are closed or the link is killed.
func (l *link) run() {
	p := l.p
	defer p.wg.Done()
	defer func() {
		l.kill(false)
		p.mu.Lock()
		delete(p.links, l)
		p.stats.Open--
		p.stats.Held -= l.held
		close(p.notify)
		p.notify = make(chan struct{})
		p.mu.Unlock()
	}()
	for {
		m, _, changed := p.state()
		if m != Blackhole {
			break
		}
		select {
		case <-changed:
		case <-l.ctx.Done():
			return
		}
	}
	var d net.Dialer
	c, err := d.DialContext(l.ctx, "tcp", p.target)
	if err != nil {
		rst(l.client) // the target is down: the client sees a reset
		return
	}
	server := c.(*net.TCPConn)
	l.mu.Lock()
	if l.killed {
		l.mu.Unlock()
		rst(server)
		return
	}
	l.server = server
	l.mu.Unlock()
	p.update(func(s *Stats) { s.Dialed++ })
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pump(l.client, server, true) }()
	go func() { defer wg.Done(); l.pump(server, l.client, false) }()
	wg.Wait()
}

// chunk is what one read returned: bytes, or the end of the stream (err
// io.EOF for a close, another error for a reset), and when it was read.
type chunk struct {
	data []byte
	err  error
	at   time.Time
}

// pump forwards src to dst, holding each chunk as the mode says. A close
// of src is forwarded as a half close of dst; a reset of src, or a failed
// write, kills the link with a reset.
func (l *link) pump(src, dst *net.TCPConn, up bool) {
	p := l.p
	chunks := make(chan chunk, 64)
	read := make(chan struct{})
	// The reader returns once src ends or the link is killed (which
	// closes src); waited for, so that Close leaves no goroutine behind.
	defer func() { <-read }()
	go func() {
		defer close(read)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			now := time.Now()
			if n > 0 {
				p.update(func(s *Stats) { s.Held += int64(n); l.held += int64(n) })
				select {
				case chunks <- chunk{data: buf[:n], at: now}:
				case <-l.ctx.Done():
					return
				}
			}
			if err != nil {
				select {
				case chunks <- chunk{err: err, at: now}:
				case <-l.ctx.Done():
				}
				return
			}
		}
	}()
	for {
		var c chunk
		select {
		case c = <-chunks:
		case <-l.ctx.Done():
			return
		}
		if !l.hold(c.at) {
			return
		}
		if c.err != nil {
			if errors.Is(c.err, io.EOF) {
				dst.CloseWrite()
				return
			}
			l.kill(true) // src was reset (or closed under us)
			return
		}
		_, err := dst.Write(c.data)
		n := int64(len(c.data))
		p.update(func(s *Stats) {
			s.Held -= n
			l.held -= n
			if err == nil {
				if up {
					s.Up += n
				} else {
					s.Down += n
				}
			}
		})
		if err != nil {
			l.kill(true)
			return
		}
	}
}

// hold waits until a chunk read at at may be forwarded; false when the
// link is killed first.
func (l *link) hold(at time.Time) bool {
	for {
		m, d, changed := l.p.state()
		switch m {
		case Pass:
			return true
		case Latency:
			wait := time.Until(at.Add(d))
			if wait <= 0 {
				return true
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
				return true
			case <-changed:
				t.Stop()
			case <-l.ctx.Done():
				t.Stop()
				return false
			}
		default: // Blackhole; Reset kills the link
			select {
			case <-changed:
			case <-l.ctx.Done():
				return false
			}
		}
	}
}

// Set is the proxies of one client: one per address the client dials
// (every member of a cluster), switched together.
type Set struct {
	mu       sync.Mutex
	mode     Mode
	delay    time.Duration
	byTarget map[string]*Proxy
	order    []*Proxy
	closed   bool
}

// Via starts a proxy to target (host:port, or a URL whose host is
// host:port) in the set's current mode and returns what the client should
// be given instead of target: the proxy's address in the same form. A
// target given twice gets the same proxy.
func (s *Set) Via(target string) (string, error) {
	hostport, form := target, func(a string) string { return a }
	if u, err := url.Parse(target); err == nil && u.Scheme != "" && u.Host != "" {
		hostport = u.Host
		form = func(a string) string { v := *u; v.Host = a; return v.String() }
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errors.New("faultproxy: the set is closed")
	}
	if p, ok := s.byTarget[hostport]; ok {
		return form(p.Addr()), nil
	}
	p, err := Start(hostport)
	if err != nil {
		return "", err
	}
	p.set(s.mode, s.delay)
	if s.byTarget == nil {
		s.byTarget = map[string]*Proxy{}
	}
	s.byTarget[hostport] = p
	s.order = append(s.order, p)
	return form(p.Addr()), nil
}

// Proxies returns the set's proxies, in the order they were started.
func (s *Set) Proxies() []*Proxy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Proxy(nil), s.order...)
}

// Pass, Blackhole, Delay and Reset switch every proxy of the set, and
// the ones started later.
func (s *Set) Pass() { s.set(Pass, 0) }

// Blackhole switches every proxy of the set to Blackhole.
func (s *Set) Blackhole() { s.set(Blackhole, 0) }

// Delay switches every proxy of the set to Latency d.
func (s *Set) Delay(d time.Duration) {
	if d <= 0 {
		s.Pass()
		return
	}
	s.set(Latency, d)
}

// Reset switches every proxy of the set to Reset.
func (s *Set) Reset() { s.set(Reset, 0) }

func (s *Set) set(m Mode, d time.Duration) {
	s.mu.Lock()
	s.mode, s.delay = m, d
	ps := append([]*Proxy(nil), s.order...)
	s.mu.Unlock()
	for _, p := range ps {
		p.set(m, d)
	}
}

// Stats sums the stats of the set's proxies.
func (s *Set) Stats() Stats {
	var sum Stats
	for _, p := range s.Proxies() {
		st := p.Stats()
		sum.Accepted += st.Accepted
		sum.Refused += st.Refused
		sum.Dialed += st.Dialed
		sum.Resets += st.Resets
		sum.Open += st.Open
		sum.Up += st.Up
		sum.Down += st.Down
		sum.Held += st.Held
	}
	return sum
}

// Close closes every proxy of the set (their ports refuse connections from
// then on); Via fails afterwards.
func (s *Set) Close() error {
	s.mu.Lock()
	s.closed = true
	ps := append([]*Proxy(nil), s.order...)
	s.mu.Unlock()
	var errs []error
	for _, p := range ps {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}
