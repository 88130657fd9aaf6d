package httpserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rollcall/rollcall/internal/testkit"
)

// TestLimitListener: past n open connections, Accept waits until one is closed.
func TestLimitListener(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		pipes := &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
		l := LimitListener(pipes, 2)
		accepted := make(chan net.Conn, 3)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}
		}()
		go func() {
			for range 3 {
				c, _ := net.Pipe()
				pipes.conns <- c
			}
		}()
		synctest.Wait()
		if n := len(accepted); n != 2 {
			t.Fatalf("%d connections accepted, want 2 (the limit)", n)
		}
		first := <-accepted
		first.Close()
		first.Close() // a second close gives no second slot back
		synctest.Wait()
		if n := len(accepted); n != 2 {
			t.Fatalf("%d connections accepted after one closed, want 2 (one more)", n)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		(<-accepted).Close()
		(<-accepted).Close()
		if _, ok := <-accepted; ok {
			t.Error("Accept returned a connection after Close")
		}
	})
}

// pipeListener accepts the in-memory connections sent on conns.
type pipeListener struct {
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func (p *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.closed:
		return nil, net.ErrClosed
	}
}

func (p *pipeListener) Close() error {
	p.closeOnce.Do(func() { close(p.closed) })
	return nil
}

func (p *pipeListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestIdleConnectionsDoNotStarveIt: many clients that make one request and then hold
// their keep-alive connection open, more than the cap, cannot keep /healthz from
// answering: idle connections are closed after the idle timeout, each making room for
// the next, and no more than the cap are ever open.
func TestIdleConnectionsDoNotStarveIt(t *testing.T) {
	const clients, limit = 40, 8
	srv := testServer(t)
	srv.IdleTimeout = 100 * time.Millisecond
	open := serve(t, srv, limit)

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			c, err := net.Dial("tcp", srv.Addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.SetDeadline(time.Now().Add(time.Minute)); err != nil { // a bound on a broken test, not a timing
				errs <- err
				return
			}
			if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				errs <- err
				return
			}
			r := bufio.NewReader(c)
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			// Kept alive and idle: the server must close it.
			if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
				errs <- fmt.Errorf("client %d: the idle connection was not closed by the server: %v", i, err)
			}
		})
	}
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Get("http://" + srv.Addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz with %d idle connections open: %v", clients, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %s", resp.Status)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if most := open.most.Load(); most > limit {
		t.Errorf("%d connections open at once, want at most %d", most, limit)
	}
}

// TestSlowAndLargeRequests: a connection that sends no request is closed after the
// header timeout, and headers over the bound are refused.
func TestSlowAndLargeRequests(t *testing.T) {
	srv := testServer(t)
	srv.ReadHeaderTimeout = 100 * time.Millisecond
	serve(t, srv, MaxConns)

	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "GET /healthz HTTP/1.1\r\n") // and no more
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("a connection that never finished its headers: %v, want it closed", err)
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+srv.Addr+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 2*MaxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers of %d bytes: %s, want 431", 2*MaxHeaderBytes, resp.Status)
	}
}

// TestStreamingLiftsTheWriteDeadline: a response still written after the write
// deadline is cut off, unless its handler lifts the deadline, as a stream of events
// must.
func TestStreamingLiftsTheWriteDeadline(t *testing.T) {
	// Each handler writes an event, then another each time it is told to.
	stream := func(lift bool, next <-chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			if lift {
				if err := rc.SetWriteDeadline(time.Time{}); err != nil {
					t.Errorf("lifting the write deadline: %v", err)
				}
			}
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil || rc.Flush() != nil {
					return
				}
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
		}
	}
	nextBounded, nextLifted := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/bounded", stream(false, nextBounded))
	mux.Handle("/lifted", stream(true, nextLifted))
	srv := New(mux, log.New(io.Discard, "", 0))
	srv.WriteTimeout = 200 * time.Millisecond
	serve(t, srv, MaxConns)
	get := func(path string) *bufio.Reader {
		resp, err := http.Get("http://" + srv.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return bufio.NewReader(resp.Body)
	}
	event := func(r *bufio.Reader) (string, error) {
		var e string
		for line := ""; line != "\n"; {
			var err error
			if line, err = r.ReadString('\n'); err != nil {
				return e, err
			}
			e += line
		}
		return e, nil
	}
	lifted := get("/lifted") // first: its deadline would pass before the other's
	bounded := get("/bounded")
	// The bounded stream is cut off once its deadline has passed: then the lifted
	// one's has too.
	for {
		if _, err := event(bounded); err != nil {
			break
		}
		nextBounded <- struct{}{}
	}
	for i := range 3 {
		e, err := event(lifted)
		if err != nil {
			t.Fatalf("the lifted stream was cut off after its deadline: %v", err)
		}
		if want := fmt.Sprintf("data: %d\n\n", i); e != want {
			t.Errorf("event %q, want %q", e, want)
		}
		nextLifted <- struct{}{}
	}
}

func testServer(t *testing.T) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return New(mux, log.New(io.Discard, "", 0))
}

// serve serves srv on a loopback port with at most limit connections open, sets
// srv.Addr, closes it when the test ends, and counts the connections open.
func serve(t *testing.T, srv *http.Server, limit int) *openConns {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Addr = l.Addr().String()
	open := &openConns{}
	// Until the test ends; if it failed sooner, the test's requests would fail.
	go func() { _ = srv.Serve(&countingListener{Listener: LimitListener(l, limit), open: open}) }()
	t.Cleanup(func() { _ = srv.Close() })
	return open
}

type openConns struct{ now, most atomic.Int64 }

// countingListener counts its open connections.
type countingListener struct {
	net.Listener
	open *openConns
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := l.open.now.Add(1)
	for m := l.open.most.Load(); n > m && !l.open.most.CompareAndSwap(m, n); m = l.open.most.Load() {
	}
	return &countedConn{Conn: c, open: l.open}, nil
}

type countedConn struct {
	net.Conn
	open *openConns
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.now.Add(-1) })
	return c.Conn.Close()
}
