package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
)

// TestRunSurvivesABrokerRestart: the NATS server goes away while the worker runs. The
// worker notices, /readyz says so, the worker reconnects on its own once the server is
// back, /readyz is 200 again, and what happened meanwhile is published once. /metrics
// counts the polls as they run.
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
	addr := e.httpAddr()
	if code, body := get(t, addr, "/readyz"); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Errorf("/readyz before the outage: %d %s", code, body)
	}
	if code, body := get(t, addr, "/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	okPolls := counter(t, addr, `rollcall_polls_total{outcome="ok"}`)
	eventually(t, "the ok polls counted as they run", func() bool {
		return counter(t, addr, `rollcall_polls_total{outcome="ok"}`) >= okPolls+4
	})
	for _, name := range []string{`rollcall_events_published_total{type="participant.joined"}`, `rollcall_api_requests_total{code="200",endpoint="active_participants"}`, `rollcall_tracked_sessions{status="polling"}`, `rollcall_participants_present`} {
		if counter(t, addr, name) == 0 {
			t.Errorf("%s is 0", name)
		}
	}

	dir, port := e.ns.StoreDir(), e.ns.Addr().(*net.TCPAddr).Port
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
	leave(e.api, "s1", "a")
	join(e.api, "s1", "d")
	join(e.api, "s2", "y")
	// Back once a cycle has failed for want of it: cycles fail at loading the state,
	// before asking the API, and leave nothing behind.
	down := time.Now()
	eventually(t, "a cycle failed while the server was down", func() bool {
		_, after, down := strings.Cut(e.logs.String(), "NATS disconnected")
		return down && strings.Contains(after, "msg=\"cycle failed\"")
	})
	var body string
	eventually(t, "/readyz 503, naming NATS", func() bool {
		var code int
		code, body = get(t, addr, "/readyz")
		return code == 503 && strings.Contains(body, `"nats":"not connected`)
	})
	t.Logf("/readyz 503 %s after the server stopped: %s", time.Since(down).Round(time.Millisecond), body)
	if polls := counter(t, addr, `rollcall_polls_total{outcome="failed"}`); polls == 0 {
		t.Error("no failed poll counted while the server was down")
	}
	e.ns = natstest.StartIn(t, dir, port)
	back := time.Now()
	eventually(t, "/readyz 200 again", func() bool { code, _ := get(t, addr, "/readyz"); return code == 200 })
	t.Logf("/readyz 200 %s after the server came back", time.Since(back).Round(time.Millisecond))
	e.settle("after the broker came back")
	e.hold("two cycles later")
}

// get fetches http://addr+path and returns the status code and body.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// counter reads one series from /metrics; 0 if it is not there.
func counter(t *testing.T, addr, series string) float64 {
	t.Helper()
	_, body := get(t, addr, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// eventually waits up to 20s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, what, cond)
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
