package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/natstest"
)

// TestRunSurvivesABrokerRestart: the NATS server goes away while the worker runs. The
// worker keeps its schedule, reconnects on its own once the server is back, and
// publishes what happened meanwhile, once.
func TestRunSurvivesABrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker for several seconds")
	}
	e := newE2E(t, map[string]string{"s1": "room-1", "s2": "room-2"})
	join(e.api, "s1", "a", "b", "c")
	join(e.api, "s2", "x")
	stop := e.start()
	defer stop()
	e.settle("before the broker stops")

	dir, port := e.ns.StoreDir(), e.ns.Addr().(*net.TCPAddr).Port
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
	leave(e.api, "s1", "a")
	join(e.api, "s1", "d")
	join(e.api, "s2", "y")
	// An outage of three cycles: they fail at loading the state, before asking the
	// API, and leave nothing behind.
	time.Sleep(3 * time.Second)
	e.ns = natstest.StartIn(t, dir, port)
	e.settle("after the broker came back")
	e.hold("two cycles later")
}

// TestRunRefusesAStreamThatDoesNotCapture: a stream of the configured name that does
// not capture rollcall's subjects is a start-up error naming it.
func TestRunRefusesAStreamThatDoesNotCapture(t *testing.T) {
	e := newE2E(t, map[string]string{"s1": "room-1"})
	if _, err := e.js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "ROLLCALL", Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VIDEOSDK_SECRET": testSecret}
	var logs syncBuffer
	err := run(context.Background(), []string{"run", "-config", e.config}, &logs, &logs, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), `stream ROLLCALL captures ["other.>"]`) {
		t.Errorf("run: %v, want an error saying what stream ROLLCALL captures", err)
	}
}
