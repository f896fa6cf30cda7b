package server

import (
	"net"
	"sync"
)

// Connection limits of a server: a connection costs a file descriptor from accept until
// it closes, and a client that opens connections and sends nothing (half-open, slow
// headers) could take every descriptor the process has, so that neither legitimate
// requests nor the store's own files could open. LimitConns bounds both the connections
// held at once and those of one remote address; what is over the total waits in the
// kernel's backlog (no descriptor), what is over one address's share is closed at once.

// Defaults for `swcli server run`.
const (
	MaxConns      = 1024
	MaxConnsPerIP = 128
)

// LimitConns wraps ln with the limits above.
func LimitConns(ln net.Listener, total, perIP int) net.Listener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, total), perIP: perIP, byIP: map[string]int{}}
}

type limitListener struct {
	net.Listener
	slots chan struct{}
	perIP int
	mu    sync.Mutex
	byIP  map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		l.slots <- struct{}{}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.slots
			return nil, err
		}
		ip := remoteIP(c)
		l.mu.Lock()
		if l.byIP[ip] >= l.perIP {
			l.mu.Unlock()
			c.Close()
			<-l.slots
			continue
		}
		l.byIP[ip]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, l: l, ip: ip}, nil
	}
}

func remoteIP(c net.Conn) string {
	if host, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
		return host
	}
	return c.RemoteAddr().String()
}

type limitedConn struct {
	net.Conn
	l    *limitListener
	ip   string
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.byIP[c.ip]--; c.l.byIP[c.ip] <= 0 {
			delete(c.l.byIP, c.ip)
		}
		c.l.mu.Unlock()
		<-c.l.slots
	})
	return err
}
