package main

import (
	"context"
	"github.com/rollcall/rollcall/internal/testkit"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/natstest"
)

// TestRunSurvivesABrokerRestart: the NATS server goes away while the worker runs. The
// worker notices, reconnects on its own once the server is back, and publishes what
// happened meanwhile, once.
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
	// Back once a cycle has failed for want of it: cycles fail at loading the state,
	// before asking the API, and leave nothing behind.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, after, down := strings.Cut(e.logs.String(), "NATS disconnected")
		if down && strings.Contains(after, "msg=\"cycle failed\"") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cycle failed while the server was down:\n%s", e.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	var logs testkit.Buffer
	err := run(context.Background(), []string{"run", "-config", e.config}, &logs, &logs, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), `stream ROLLCALL captures ["other.>"]`) {
		t.Errorf("run: %v, want an error saying what stream ROLLCALL captures", err)
	}
}
