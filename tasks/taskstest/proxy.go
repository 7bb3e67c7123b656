package taskstest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards TCP connections to a Redis: each new connection to the
// address it is at the time (Move changes it for later connections, while
// those made before stay where they went, as a managed endpoint or a DNS
// name moved by a failover), until Cut drops every connection and refuses
// new ones (a network partition). DelayNext holds the next request a
// client sends for a while before passing it on (a network stall that TCP
// recovers from).
type Proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	to    string
	cut   bool
	conns []net.Conn
	delay atomic.Int64 // ns
}

// StartProxy starts a Proxy to the address to, closed in t.Cleanup.
func StartProxy(t testing.TB, to string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, to: to}
	t.Cleanup(func() { ln.Close(); p.Cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", p.to)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { p.forward(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

// forward copies what the client c sends to up; a read that arrives while
// a delay is set (DelayNext) is held for it, and the delay is used up.
func (p *Proxy) forward(up, c net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if d := time.Duration(p.delay.Swap(0)); d > 0 {
				time.Sleep(d)
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// DelayNext holds the next request any client sends for d before passing
// it on.
func (p *Proxy) DelayNext(d time.Duration) { p.delay.Store(int64(d)) }

// Addr is the address to connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Move sends the connections made from now on to the address to.
func (p *Proxy) Move(to string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.to = to
}

// Cut drops every connection and refuses new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
