package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/sim"
)

const (
	testKey    = "e2e-key"
	testSecret = "e2e-secret"
)

// e2e is the real program, `rollcall run`, against the simulated API and an embedded
// JetStream server that outlives the worker's restarts.
type e2e struct {
	t        *testing.T
	api      *sim.Server
	ns       *server.Server
	js       jetstream.JetStream
	config   string
	sessions map[string]string // session id -> room id
	// elsewhere are sessions whose events truth passes over: the test checks them.
	elsewhere map[string]bool

	logs *testkit.Buffer // of the worker last started

	published *natstest.Publishes // every publish seen on the wire, duplicates included
	contract  *testkit.Contract   // every event read from the stream is checked against it
}

// newE2E serves a simulated API in which the given sessions (id -> room) are ongoing,
// and writes a config that tracks them and the given rooms.
func newE2E(t *testing.T, sessions map[string]string, rooms ...string) *e2e {
	t.Helper()
	api := sim.New(sim.Config{APIKey: testKey, Secret: testSecret})
	for id, room := range sessions {
		api.StartSession(id, room)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if sessions == nil {
		sessions = map[string]string{}
	}
	e := &e2e{t: t, api: api, ns: ns, js: js, sessions: sessions, published: natstest.CountPublishes(t, nc, "videosdk.>"),
		contract: testkit.NewContract(t)}
	e.config = writeConfig(t, t.TempDir(), srv.URL, ns.ClientURL(), 0, slices.Sorted(maps.Keys(sessions)), rooms)
	return e
}

// writeConfig writes the tests' config.toml into dir: two participants (or sessions)
// a page, a poll and a room listing a second, a reconciliation every two, the given
// rate limit (0: none).
func writeConfig(t *testing.T, dir, apiURL, natsURL string, rateLimit int, sessions, rooms []string) string {
	t.Helper()
	var list strings.Builder
	for _, id := range sessions {
		fmt.Fprintf(&list, "[[sessions]]\nid = %q\n", id)
	}
	for _, id := range rooms {
		fmt.Fprintf(&list, "[[rooms]]\nid = %q\n", id)
	}
	cfg := fmt.Sprintf(`
[videosdk]
base_url = %q
api_key = %q
per_page = 2
request_timeout = "2s"
rate_limit = %d

[poll]
schedule = "@every 1s"
discover_schedule = "@every 1s"
reconcile_schedule = "@every 2s"

%s
[nats]
url = %q
duplicate_window = "1h"

[http]
listen = "127.0.0.1:0"

[log]
level = "debug"
`, apiURL, testKey, rateLimit, list.String(), natsURL)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// start runs `rollcall run` until the returned stop is called; stop checks that it
// exits cleanly within the spec's 10 seconds.
func (e *e2e) start() (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testkit.Buffer{}
	e.logs = logs
	done := make(chan error, 1)
	env := map[string]string{"VIDEOSDK_SECRET": testSecret}
	go func() {
		done <- run(ctx, []string{"run", "-config", e.config}, logs, logs, func(k string) string { return env[k] })
	}()
	return func() {
		e.t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Fatalf("rollcall run: %v\n%s", err, logs.String())
			}
		case <-time.After(10 * time.Second):
			e.t.Fatalf("rollcall run did not stop within 10s of the signal\n%s", logs.String())
		}
		if strings.Contains(logs.String(), testSecret) {
			e.t.Errorf("the log shows the secret")
		}
	}
}

type event struct {
	Subject string
	Type    string `json:"type"`
	ID      string `json:"id"`
	Data    struct {
		SessionID     string     `json:"sessionId"`
		RoomID        string     `json:"roomId"`
		ParticipantID string     `json:"participantId"`
		JoinedAt      *time.Time `json:"joinedAt"`
		LeftAt        *time.Time `json:"leftAt"`
		Detection     string     `json:"detection"`
	} `json:"data"`
}

func (e *e2e) events() []event {
	e.t.Helper()
	var out []event
	for _, m := range natstest.Messages(e.t, e.js, "ROLLCALL") {
		if err := e.contract.Check(m.Data); err != nil { // every event keeps the contract
			e.t.Fatalf("stream message on %s: %v\n%s", m.Subject, err, m.Data)
		}
		var ev event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			e.t.Fatal(err)
		}
		ev.Subject = m.Subject
		out = append(out, ev)
	}
	return out
}

// settle waits until the stream matches the simulator's ground truth, then checks it
// in full.
func (e *e2e) settle(step string) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for e.truth() != nil {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: the stream did not catch up with the world: %v", step, e.truth())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hold waits for two more cycles of every session and checks that the stream still
// matches the ground truth: nothing late, nothing extra.
func (e *e2e) hold(step string) {
	e.t.Helper()
	target := e.api.Requests() + 2*len(e.sessions)
	deadline := time.Now().Add(20 * time.Second)
	for e.api.Requests() < target {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: the worker stopped polling", step)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := e.truth(); err != nil {
		e.t.Fatalf("%s: %v", step, err)
	}
}

// truth compares the stream with the simulator's ground truth: each stint, however
// short, has exactly one joined, with joinedAt its timelog start, on its room's and
// session's subject; each ended stint exactly one left after its joined, with leftAt
// its timelog end; a participant's stints in the order they began; nothing else.
func (e *e2e) truth() error {
	type key struct{ session, participant, start string }
	stamp := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	want := map[key][]string{}
	for id := range e.sessions {
		for _, s := range e.api.Stints(id) {
			k := key{id, s.ParticipantID, stamp(s.Start)}
			want[k] = []string{"joined"}
			if s.End != nil {
				want[k] = append(want[k], "left at "+stamp(*s.End))
			}
		}
	}
	got := map[key][]string{}
	last := map[[2]string]time.Time{} // per session and participant, the start of its last joined stint
	for _, ev := range e.events() {
		kind, ok := strings.CutPrefix(ev.Type, "live.videosdk.participant.")
		if !ok {
			continue
		}
		d := ev.Data
		if e.elsewhere[d.SessionID] {
			continue
		}
		wantSubject := fmt.Sprintf("videosdk.participant.%s.%s.%s", kind, e.sessions[d.SessionID], d.SessionID)
		if ev.Subject != wantSubject || d.RoomID != e.sessions[d.SessionID] {
			return fmt.Errorf("%s event on %q, room %q; want %q", kind, ev.Subject, d.RoomID, wantSubject)
		}
		k := key{d.SessionID, d.ParticipantID, stamp(*d.JoinedAt)}
		switch who := [2]string{d.SessionID, d.ParticipantID}; {
		case kind == "joined" && d.JoinedAt.Before(last[who]):
			return fmt.Errorf("%s: the stint of %s joined after its next one, of %s", d.ParticipantID, k.start, stamp(last[who]))
		case kind == "joined":
			last[who] = *d.JoinedAt
		case d.LeftAt != nil:
			kind += " at " + stamp(*d.LeftAt)
		}
		got[k] = append(got[k], kind)
	}
	if d := cmp.Diff(want, got); d != "" {
		return fmt.Errorf("stints (-want +got):\n%s", d)
	}
	return nil
}

// sessionEvents lists the session events in stream order.
func (e *e2e) sessionEvents() []string {
	var out []string
	for _, ev := range e.events() {
		if kind, ok := strings.CutPrefix(ev.Type, "live.videosdk.session."); ok {
			out = append(out, kind+" "+ev.Data.SessionID)
		}
	}
	return out
}

// httpAddr is where the worker last started serves /metrics, from its log.
func (e *e2e) httpAddr() string {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, rest, ok := strings.Cut(e.logs.String(), "serving /, /events, /metrics, /healthz and /readyz\" listen="); ok {
			addr, _, _ := strings.Cut(rest, "\n")
			return addr
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the worker does not say where it serves /metrics:\n%s", e.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// republished lists the event ids published more than once.
func (e *e2e) republished() []string { return e.published.Republished() }

func join(api *sim.Server, session string, ids ...string) {
	for _, id := range ids {
		api.Join(session, id, "name-"+id)
	}
}

func leave(api *sim.Server, session string, ids ...string) {
	for _, id := range ids {
		api.Leave(session, id)
	}
}

// TestRun is the core scenario: three sessions, one spanning three pages that shrinks
// to one, joins, leaves, a rejoin between polls, and a session that ends.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker for several seconds")
	}
	e := newE2E(t, map[string]string{"big": "room-big", "small": "room-small", "ending": "room-ending"})
	join(e.api, "big", "p1", "p2", "p3", "p4", "p5", "p6")
	join(e.api, "small", "q1", "q2")
	join(e.api, "ending", "r1", "r2")
	stop := e.start()
	defer stop()
	e.settle("first cycle")

	leave(e.api, "big", "p2", "p3", "p4", "p5", "p6") // three pages shrink to one
	e.settle("big session shrank")

	leave(e.api, "small", "q1")
	join(e.api, "small", "q1", "q3") // q1 back with a new stint before the next poll
	e.settle("rejoin")

	e.api.EndSession("ending")
	join(e.api, "big", "p7")
	e.settle("session ended")
	e.hold("two cycles later")

	// Every participant event must come after its session started; the ended session
	// ends once, after its lefts.
	want := []string{"ended ending"}
	got := e.sessionEvents()
	if len(got) != 4 || !cmp.Equal(got[3:], want) {
		t.Errorf("session events %v, want three started and then %v", got, want)
	}
	if r := e.republished(); len(r) > 0 {
		t.Errorf("events published more than once without a fault: %v", r)
	}
}

// TestRunRestart stops the worker, changes the world, and starts it again: what
// happened meanwhile is published once, and nothing is published twice.
func TestRunRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker for several seconds")
	}
	e := newE2E(t, map[string]string{"s1": "room-1", "s2": "room-2"})
	join(e.api, "s1", "a", "b", "c")
	join(e.api, "s2", "x")
	stop := e.start()
	e.settle("before the restart")
	stop()

	leave(e.api, "s1", "a")
	leave(e.api, "s1", "b")
	join(e.api, "s1", "b", "d") // b rejoined while the worker was down
	e.api.EndSession("s2")

	stop = e.start()
	e.settle("after the restart")
	e.hold("two cycles later")
	if r := e.republished(); len(r) > 0 {
		t.Errorf("events published again after a restart: %v", r)
	}
	// s2, tracked by the config file, ended: its tombstone keeps a later start from
	// announcing it again.
	stop()
	before := len(e.events())
	stop = e.start()
	defer stop()
	e.hold("after a second restart")
	if n := len(e.events()); n != before || len(e.republished()) > 0 {
		t.Errorf("%d events after a second restart, want none; published again: %v", n-before, e.republished())
	}
}

// TestRunReconciles: stints that begin and end between two polls, stints that end
// while the worker is down, participants who come and go several times, and a session
// that ends while the worker is down. Every stint gets exactly one joined and one
// left, with joinedAt and leftAt its timelog's to the millisecond, each participant's
// in order; nothing is published twice; session.ended comes after them all.
func TestRunReconciles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker for several seconds")
	}
	e := newE2E(t, map[string]string{"s1": "room-1", "s2": "room-2"})
	join(e.api, "s1", "a", "b")
	join(e.api, "s2", "x")
	// Each change a few milliseconds after the one before: distinct timelog instants.
	step := func(f func(*sim.Server, string, ...string), session string, ids ...string) {
		for _, id := range ids {
			time.Sleep(3 * time.Millisecond)
			f(e.api, session, id)
		}
	}
	stop := e.start()
	e.settle("first cycle")

	step(join, "s1", "c") // c comes and goes between two polls
	step(leave, "s1", "c")
	step(leave, "s1", "a") // a goes and comes back twice
	step(join, "s1", "a")
	step(leave, "s1", "a")
	step(join, "s1", "a")
	e.settle("stints between two polls")

	stop()
	step(leave, "s1", "b")           // ends while the worker is down
	step(join, "s1", "d", "e")       // d comes and goes, e stays
	step(leave, "s1", "d", "a")      // a goes
	step(join, "s1", "a", "d")       // and both come back
	step(leave, "s2", "x")           // s2's only participant goes,
	step(join, "s2", "y")            // another comes and goes,
	step(leave, "s2", "y")           //
	step(join, "s2", "x")            // x comes back,
	time.Sleep(3 * time.Millisecond) //
	e.api.EndSession("s2")           // and s2 ends
	stop = e.start()
	defer stop()
	e.settle("after a downtime")
	e.hold("two cycles later")

	var reconciled int
	for _, ev := range e.events() {
		if ev.Data.Detection == "reconciled" {
			reconciled++
		}
	}
	// c; a's stint between its rejoins; d's first stint; s2: x's first stint is
	// seen, y's and x's second are not.
	if reconciled != 2*5 {
		t.Errorf("%d reconciled events, want 10 (five stints no poll saw)", reconciled)
	}
	if got := e.sessionEvents(); !slices.Equal(got[len(got)-1:], []string{"ended s2"}) {
		t.Errorf("session events %v, want s2's end last", got)
	}
	if r := e.republished(); len(r) > 0 {
		t.Errorf("events published more than once: %v", r)
	}
}

// runEmbedded writes a config for the embedded server (store_dir under dir) that polls
// the simulator at apiURL every second, tracks what tracked (TOML) and serves /metrics
// on listen (any free port if not given), and runs `rollcall run` with it until the
// test ends. It returns the config's path and the worker's log.
func runEmbedded(t *testing.T, dir, apiURL, tracked string, listen ...string) (string, *testkit.Buffer) {
	t.Helper()
	path := filepath.Join(dir, "config.toml")
	cfg := fmt.Sprintf("[videosdk]\nbase_url = %q\napi_key = %q\n[poll]\nschedule = \"@every 1s\"\ndiscover_schedule = \"@every 1s\"\n%s\n[nats]\nstore_dir = %q\n[http]\nlisten = %q\n",
		apiURL, testKey, tracked, filepath.Join(dir, "data"), append(listen, "127.0.0.1:0")[0])
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	env := map[string]string{"VIDEOSDK_SECRET": testSecret}
	go func() {
		done <- run(ctx, []string{"run", "-config", path}, logs, logs, func(k string) string { return env[k] })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return path, logs
}

// TestRunEmbeddedNATS: with nats.url = "", `run` starts its own JetStream server in
// store_dir, logs its URL, and publishes there.
func TestRunEmbeddedNATS(t *testing.T) {
	api := sim.New(sim.Config{APIKey: testKey, Secret: testSecret})
	api.StartSession("s1", "room-1")
	join(api, "s1", "a")
	srv := httptest.NewServer(api)
	defer srv.Close()
	dir := t.TempDir()
	path, logs := runEmbedded(t, dir, srv.URL, "[[sessions]]\nid = \"s1\"")
	env := map[string]string{"VIDEOSDK_SECRET": testSecret}

	url := ""
	deadline := time.Now().Add(20 * time.Second)
	for url == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no embedded server URL logged:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "embedded NATS server") {
				_, rest, _ := strings.Cut(line, " url=")
				url, _, _ = strings.Cut(rest, " ")
			}
		}
	}
	js := natstest.JetStream(t, url)
	for {
		if s, err := js.Stream(context.Background(), "ROLLCALL"); err == nil {
			if info, err := s.Info(context.Background()); err == nil && info.State.Msgs == 2 {
				break // session.started and a's joined
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the embedded server's stream did not get the first events:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "jetstream")); err != nil {
		t.Errorf("nothing stored in store_dir: %v", err)
	}
	// A second worker on the same store must not share it.
	err := run(context.Background(), []string{"run", "-config", path}, io.Discard, io.Discard, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "in use by another rollcall") {
		t.Errorf("a second run on the same store_dir: %v, want an error saying it is in use", err)
	}
}
