// Package httpserver builds rollcall's HTTP servers so that no client can exhaust
// them: every phase of a request has a deadline, headers are bounded, keep-alive
// connections that sit idle are closed, and connections beyond a cap wait in the
// kernel's listen backlog instead of taking file descriptors.
//
// The write deadline bounds a whole response. A handler that streams (Server-Sent
// Events) lifts it for its request with http.ResponseController
// (SetWriteDeadline(time.Time{})), or better sets a new one before each write, so
// that a client that stops reading still cannot hold it for ever. (The read
// deadline needs nothing: net/http lifts it once a request without a body is read.)
package httpserver

import (
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// The limits of every server rollcall runs: they answer health checks, scrapes, a
// page and webhooks, none of which needs more.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second // the whole request, body included
	WriteTimeout      = 30 * time.Second // the whole response: /metrics of a large worker takes a while
	IdleTimeout       = 30 * time.Second // a keep-alive connection between two requests
	MaxHeaderBytes    = 16 << 10
	MaxConns          = 256 // open at once
)

// New returns a server of h with rollcall's limits, logging its errors (a TLS
// handshake, a panicking handler) to errorLog.
func New(h http.Handler, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          errorLog,
	}
}

// Serve serves srv on ln, with at most MaxConns connections open at once, until srv
// is closed.
func Serve(srv *http.Server, ln net.Listener) error {
	return srv.Serve(LimitListener(ln, MaxConns))
}

// LimitListener returns a listener that has at most n accepted connections open at
// once: Accept waits for one to close.
func LimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), closed: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	slots     chan struct{} // one per open connection
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitConn gives its slot back when it is closed, once.
type limitConn struct {
	net.Conn
	release func()
	once    sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
