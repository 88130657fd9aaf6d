// Package natstest starts real, embedded nats-servers with JetStream for tests.
package natstest

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
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
