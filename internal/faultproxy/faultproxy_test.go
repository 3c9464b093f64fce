package faultproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// patience is a hang guard, never a timing assertion.
const patience = 20 * time.Second

// echo is a TCP echo server on loopback that reports what it sees.
type echo struct {
	ln       net.Listener
	mu       sync.Mutex
	accepted int
	got      []byte      // every byte received, on any connection
	first    []time.Time // when each byte of got arrived
	errs     chan error  // read errors other than EOF, one per connection
	wg       sync.WaitGroup
}

func startEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln, errs: make(chan error, 16)}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.accepted++
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						now := time.Now()
						e.mu.Lock()
						e.got = append(e.got, buf[:n]...)
						for range n {
							e.first = append(e.first, now)
						}
						e.mu.Unlock()
						c.Write(buf[:n])
					}
					if err != nil {
						if !errors.Is(err, io.EOF) {
							e.errs <- err
						}
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); e.wg.Wait() })
	return e
}

func (e *echo) snapshot() (accepted int, got string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.accepted, string(e.got)
}

func start(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(patience)) // a hang guard
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}

// roundTrip writes s and reads it back.
func roundTrip(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	expect(t, c, s)
}

func expect(t *testing.T, c net.Conn, s string) {
	t.Helper()
	buf := make([]byte, len(s))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %q: %v", s, err)
	}
	if string(buf) != s {
		t.Fatalf("read %q, want %q", buf, s)
	}
}

func await(t *testing.T, p *Proxy, what string, cond func(Stats) bool) {
	t.Helper()
	if err := p.Await(ctxT(t), cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestPass(t *testing.T) {
	e := startEcho(t)
	p := start(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	roundTrip(t, c, "hello")
	await(t, p, "counts", func(s Stats) bool { return s.Up == 5 && s.Down == 5 })
	if s := p.Stats(); s.Accepted != 1 || s.Dialed != 1 || s.Open != 1 || s.Held != 0 {
		t.Fatalf("stats %+v", s)
	}
	// A close is forwarded: the server closes its side, the client sees EOF.
	c.CloseWrite()
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after a half close: %d %v, want EOF", n, err)
	}
	await(t, p, "the link closed", func(s Stats) bool { return s.Open == 0 })
}

// TestBlackhole: an open connection goes silent without being closed, a new
// one is accepted and held without the target being dialed; on Pass what
// was held is delivered, on the same connections.
func TestBlackhole(t *testing.T) {
	e := startEcho(t)
	p := start(t, e.ln.Addr().String())
	a := dial(t, p.Addr())
	roundTrip(t, a, "a")
	await(t, p, "the echo forwarded", func(s Stats) bool { return s.Down == 1 })

	p.Blackhole()
	if _, err := a.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	await(t, p, "b read and held", func(s Stats) bool { return s.Held == 1 })
	b := dial(t, p.Addr())
	if _, err := b.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	await(t, p, "the second connection accepted", func(s Stats) bool { return s.Accepted == 2 })
	if s := p.Stats(); s.Up != 1 || s.Dialed != 1 {
		t.Fatalf("forwarded during the blackhole: %+v", s)
	}
	if n, got := e.snapshot(); n != 1 || got != "a" {
		t.Fatalf("the server saw %d connections and %q during the blackhole, want 1 and %q", n, got, "a")
	}

	p.Pass()
	expect(t, a, "b") // the same connection: it was never closed
	expect(t, b, "c")
	roundTrip(t, a, "d")
	if n, got := e.snapshot(); n != 2 || got != "abcd" && got != "acbd" {
		t.Fatalf("after the blackhole the server saw %d connections and %q", n, got)
	}
	await(t, p, "nothing held", func(s Stats) bool { return s.Held == 0 && s.Down == 4 })
	if s := p.Stats(); s.Resets != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestLatency: each direction is delayed by at least the latency.
func TestLatency(t *testing.T) {
	const d = 150 * time.Millisecond
	e := startEcho(t)
	p := start(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	roundTrip(t, c, "warm")
	p.Delay(d)
	if m, got := p.Mode(); m != Latency || got != d {
		t.Fatalf("mode %v %v", m, got)
	}
	sent := time.Now()
	roundTrip(t, c, "x")
	rtt := time.Since(sent)
	e.mu.Lock()
	arrived := e.first[len(e.first)-1].Sub(sent)
	e.mu.Unlock()
	if arrived < d {
		t.Fatalf("the server got the byte %v after it was sent, less than the latency %v", arrived, d)
	}
	if rtt < 2*d {
		t.Fatalf("round trip %v, less than twice the latency %v", rtt, d)
	}
	// Chunks keep their order.
	for _, s := range []string{"1", "2", "3"} {
		if _, err := c.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, c, "123")
	p.Pass()
	roundTrip(t, c, "y")
	t.Logf("round trip at %v: %v; one way %v", d, rtt.Round(time.Millisecond), arrived.Round(time.Millisecond))
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// TestReset: open connections are reset on both sides, new ones are reset
// at once; on Pass new connections work again.
func TestReset(t *testing.T) {
	e := startEcho(t)
	p := start(t, e.ln.Addr().String())
	a := dial(t, p.Addr())
	roundTrip(t, a, "a")

	p.Reset()
	if n, err := a.Read(make([]byte, 1)); n != 0 || !isReset(err) {
		t.Fatalf("client read after Reset: %d %v, want a connection reset", n, err)
	}
	select {
	case err := <-e.errs:
		if !isReset(err) {
			t.Fatalf("server read after Reset: %v, want a connection reset", err)
		}
	case <-ctxT(t).Done():
		t.Fatal("the server side was not reset")
	}
	b, err := net.Dial("tcp", p.Addr())
	if err == nil {
		defer b.Close()
		b.SetDeadline(time.Now().Add(patience))
		_, err = b.Read(make([]byte, 1))
	}
	if !isReset(err) && !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a new connection during Reset: %v, want reset or refused", err)
	}
	await(t, p, "one reset, one refused, none open", func(s Stats) bool { return s.Refused == 1 && s.Resets == 1 && s.Open == 0 })
	if s := p.Stats(); s.Dialed != 1 {
		t.Fatalf("stats %+v", s)
	}

	p.Pass()
	roundTrip(t, dial(t, p.Addr()), "c")
}

// TestClose: Close resets what is open, and the port refuses afterwards.
func TestClose(t *testing.T) {
	e := startEcho(t)
	p := start(t, e.ln.Addr().String())
	a := dial(t, p.Addr())
	roundTrip(t, a, "a")
	p.Blackhole()
	dial(t, p.Addr()) // held, never dialed
	await(t, p, "both accepted", func(s Stats) bool { return s.Accepted == 2 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Read(make([]byte, 1)); !isReset(err) {
		t.Fatalf("read after Close: %v, want a connection reset", err)
	}
	if _, err := net.Dial("tcp", p.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Close: %v, want refused", err)
	}
	if s := p.Stats(); s.Open != 0 || s.Held != 0 {
		t.Fatalf("stats after Close %+v", s)
	}
}

// TestTargetDown: a target that refuses makes the proxy reset the client.
func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := start(t, addr)
	c, err := net.Dial("tcp", p.Addr())
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(patience))
		_, err = c.Read(make([]byte, 1))
	}
	if !isReset(err) {
		t.Fatalf("read through a proxy to a closed port: %v, want a connection reset", err)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, target := range []string{"10.1.2.3:80", "example.com:80", "localhost:80", "127.0.0.1", ""} {
		if p, err := Start(target); err == nil {
			p.Close()
			t.Errorf("Start(%q) accepted", target)
		}
	}
	if p, err := Start("[::1]:1"); err != nil {
		t.Errorf("Start([::1]:1): %v", err)
	} else {
		p.Close()
	}
}

// TestSet: addresses and URLs are rewritten to the proxies' addresses, one
// proxy per target, and the set's mode reaches proxies started later.
func TestSet(t *testing.T) {
	e := startEcho(t)
	target := e.ln.Addr().String()
	var s Set
	t.Cleanup(func() { s.Close() })
	u, err := s.Via("http://" + target + "/x")
	if err != nil {
		t.Fatal(err)
	}
	ps := s.Proxies()
	if len(ps) != 1 || u != "http://"+ps[0].Addr()+"/x" {
		t.Fatalf("Via(URL) = %q, proxies %v", u, ps)
	}
	if a, err := s.Via(target); err != nil || a != ps[0].Addr() {
		t.Fatalf("Via(%s) again = %q %v, want %s", target, a, err, ps[0].Addr())
	}
	s.Delay(time.Second)
	other := startEcho(t)
	if _, err := s.Via(other.ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	for _, p := range s.Proxies() {
		if m, d := p.Mode(); m != Latency || d != time.Second {
			t.Fatalf("proxy %s in %v %v, want latency 1s", p.Addr(), m, d)
		}
	}
	s.Pass()
	roundTrip(t, dial(t, ps[0].Addr()), "z")
	await(t, ps[0], "the bytes counted", func(st Stats) bool { return st.Up == 1 && st.Down == 1 })
	if st := s.Stats(); st.Up != 1 || st.Down != 1 {
		t.Fatalf("set stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Via(target); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Via after Close: %v", err)
	}
}
