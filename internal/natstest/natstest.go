// Package natstest starts real, embedded nats-servers with JetStream for tests.
package natstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/publisher"
)

// Start starts a server on a free port, storing in a temporary directory, and shuts it
// down when the test ends.
func Start(t testing.TB) *server.Server {
	t.Helper()
	return StartIn(t, t.TempDir(), -1)
}

// StartIn starts a server storing in dir on port (-1: a free one); restarting on the
// same dir and port brings the same streams back.
func StartIn(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	ns, err := publisher.StartEmbedded("127.0.0.1", port, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// StartWith starts a server on a free port with JetStream in a temporary directory,
// with the options that set sets (authorization, TLS), and shuts it down when the
// test ends.
func StartWith(t testing.TB, set func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true}
	set(opts)
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready after 10s")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// Connect connects to ns and closes the connection when the test ends.
func Connect(t testing.TB, ns *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Messages returns every message in the stream, in order; none if the stream does
// not exist yet.
func Messages(t testing.TB, js jetstream.JetStream, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// Publishes counts every message published on a subject, by its Nats-Msg-Id, through
// a core subscription: also those that a stream drops as duplicates.
type Publishes struct {
	mu   sync.Mutex
	byID map[string]int
}

// CountPublishes counts the messages published on subject (a wildcard may be given)
// until the connection closes.
func CountPublishes(t testing.TB, nc *nats.Conn, subject string) *Publishes {
	t.Helper()
	p := &Publishes{byID: make(map[string]int)}
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		p.mu.Lock()
		p.byID[m.Header.Get(jetstream.MsgIDHeader)]++
		p.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// Republished returns the ids published more than once.
func (p *Publishes) Republished() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for id, n := range p.byID {
		if n > 1 {
			out = append(out, id)
		}
	}
	return out
}

// JetStream connects to the server at url with opts, closes the connection when the
// test ends, and returns its JetStream context.
func JetStream(t testing.TB, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// Cluster is n nats-servers with JetStream, routed to each other, for tests of
// replicated streams and buckets. Node i can be stopped and started again on the
// same ports and storage.
type Cluster struct {
	t     testing.TB
	opts  []*server.Options
	nodes []*server.Server
}

// StartCluster starts a cluster of n nodes on free ports, and shuts them down when the
// test ends. It returns once JetStream has a meta leader and takes an R n stream.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	ports := freePorts(t, 2*n) // client ports, then cluster ports
	var routes []*url.URL
	for i := range n {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[n+i])})
	}
	for i := range n {
		c.opts = append(c.opts, &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: ports[i],
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true,
			Cluster: server.ClusterOpts{Name: "rollcall-test", Host: "127.0.0.1", Port: ports[n+i]},
			Routes:  routes,
		})
		c.nodes = append(c.nodes, nil)
		c.Start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.Stop(i)
		}
	})
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// A stream right after boot may fail until the cluster has elected its leaders.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "PROBE", Subjects: []string{"probe"}, Replicas: n})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster takes no R%d stream after 30s: %v", n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = js.DeleteStream(context.Background(), "PROBE")
	return c
}

// Start starts node i, stopped or never started.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	ns, err := server.NewServer(c.opts[i])
	if err != nil {
		c.t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("node %d not ready after 10s", i+1)
	}
	c.nodes[i] = ns
}

// Stop shuts node i down.
func (c *Cluster) Stop(i int) {
	if ns := c.nodes[i]; ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		c.nodes[i] = nil
	}
}

// URLs is the client URLs of every node, comma-separated.
func (c *Cluster) URLs() string {
	var urls []string
	for _, o := range c.opts {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(urls, ",")
}

// freePorts returns n ports free now.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return ports
}
