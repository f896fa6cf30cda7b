package bench

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Proxy forwards TCP connections to a target and counts the bytes that cross it in both
// directions: the bytes on the wire, measured at the socket rather than self-reported.
type Proxy struct {
	ln       net.Listener
	target   string
	up, down atomic.Int64
	conns    atomic.Int64
}

// NewProxy listens on a loopback port in front of target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target}
	go p.serve()
	return p, nil
}

// Addr is host:port to connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Bytes returns bytes sent to the target (up) and back (down) so far.
func (p *Proxy) Bytes() (up, down int64) { return p.up.Load(), p.down.Load() }

// Close stops accepting connections.
func (p *Proxy) Close() error { return p.ln.Close() }

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.conns.Add(1)
		go func() {
			defer c.Close()
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			defer s.Close()
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); n, _ := io.Copy(s, c); p.up.Add(n); s.(*net.TCPConn).CloseWrite() }()
			go func() { defer wg.Done(); n, _ := io.Copy(c, s); p.down.Add(n); c.(*net.TCPConn).CloseWrite() }()
			wg.Wait()
		}()
	}
}
