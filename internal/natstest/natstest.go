// Package natstest starts real, embedded nats-servers with JetStream for tests.
package natstest

import (
	"context"
	"errors"
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
