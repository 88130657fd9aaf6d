package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/publisher"
	"github.com/rollcall/rollcall/sim"
)

var crashSeed = flag.Uint64("crash.seed", 0, "TestCrashSafety: seed of the churn and of the kill times (0: a new one each run)")

// The shape of TestCrashSafety. A cycle of the four sessions takes most of a second:
// up to four pages each at per_page 2, a backward recheck when someone is absent, all
// through a rate limit of 30 requests a second, and a network to NATS slow enough
// (crashLatency each way) that a cycle's save, publish and acknowledgement take a
// good part of it too. Kills after crashMinUp to crashMaxUp land anywhere in a cycle.
// The churn changes the world every 200ms on average, one session at a time, so most
// stints outlast several polls, and short visits do not. The list of all participants
// shows an end only crashListLag after it, so that lefts wait for their end in the
// state when the kills come.
const (
	crashKills    = 22
	crashMinUp    = 900 * time.Millisecond // of which about 1 s to the first poll: connect, set up, a lease round
	crashMaxUp    = 3100 * time.Millisecond
	crashLatency  = 25 * time.Millisecond
	crashInterval = 200 * time.Millisecond
	crashCatchUp  = 30 * time.Second
	crashListLag  = 1500 * time.Millisecond
)

// TestCrashSafety kills the real binary with SIGKILL at random points of its cycles
// while the world churns, then lets one last run catch up and checks the stream
// against the simulator's ground truth: every stint has one joined and, once ended,
// one left after it with its end, a participant's stints in order; nothing twice,
// nothing invented, nothing missed, though kills find lefts waiting for their end.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it for half a minute")
	}
	seed := *crashSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -crash.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	bin := buildRollcall(t)

	sessions := map[string]string{"crash-1": "room-1", "crash-2": "room-2", "crash-3": "room-3", "crash-4": "room-4"}
	const ending = "crash-4" // ends a third of the way through the kills
	api := sim.New(sim.Config{APIKey: testKey, Secret: testSecret})
	api.SetListLag(crashListLag)
	for _, id := range slices.Sorted(maps.Keys(sessions)) { // creation order: Churn's
		api.StartSession(id, sessions[id])
		for i := range 3 + rng.IntN(4) {
			api.Join(id, fmt.Sprintf("%s-p%d", id, i), fmt.Sprintf("name-%d", i))
		}
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)

	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	published := natstest.CountPublishes(t, nc, "videosdk.>")
	proxy := latencyProxy(t, ns.Addr().String(), crashLatency)

	dir := t.TempDir()
	config := writeConfig(t, dir, srv.URL, "nats://"+proxy, 30, slices.Sorted(maps.Keys(sessions)), nil)

	churnCtx, cancelChurn := context.WithCancel(context.Background())
	churned := make(chan struct{})
	go func() {
		defer close(churned)
		api.Churn(churnCtx, sim.ChurnConfig{Rooms: len(sessions), MaxParticipants: 8, Interval: crashInterval, Seed: seed})
	}()
	stopChurn := sync.OnceFunc(func() {
		cancelChurn()
		<-churned
	})
	t.Cleanup(stopChurn)

	var runs []*crashRun
	keepLogsOnFailure(t, &runs)
	// Every other kill is aimed: it lands at a random moment shortly after a cycle
	// saves its outbox (seen here as the KV put goes by), when the cycle is about to
	// publish, publishing, or about to clear the outbox. Those moments last a few
	// round trips out of a cycle of a second, and random kills alone seldom hit them.
	// One in four is aimed, the same way, just after a state with lefts waiting for
	// their end is saved: on a loaded machine the runs are slow, and random kills may
	// all come before any left waits.
	outboxSaved, pendingSaved := make(chan struct{}, 1), make(chan struct{}, 1)
	signal := func(c chan struct{}) {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	if _, err := nc.Subscribe("$KV.ROLLCALL_STATE.>", func(m *nats.Msg) {
		var st diff.State
		if json.Unmarshal(m.Data, &st) != nil {
			return
		}
		if st.Outbox != nil {
			signal(outboxSaved)
		}
		if len(st.Pending) > 0 {
			signal(pendingSaved)
		}
	}); err != nil {
		t.Fatal(err)
	}
	tail := &streamTail{js: js, contract: testkit.NewContract(t)}
	var outboxes outboxStats
	aimed := 0
	start := time.Now()
	// One kill more, if none found lefts waiting: on a loaded machine, runs killed
	// within three seconds may never get as far as a poll that makes lefts wait.
	// That one waits for it, for up to half a minute.
	for i := 0; i < crashKills || i == crashKills && outboxes.waiting == 0; i++ {
		up := crashMinUp + time.Duration(rng.Int64N(int64(crashMaxUp-crashMinUp)))
		if i == crashKills {
			up = 30 * time.Second
		}
		after := time.Duration(rng.Int64N(int64(6 * crashLatency)))
		for _, c := range []chan struct{}{outboxSaved, pendingSaved} {
			select {
			case <-c: // by the previous run
			default:
			}
		}
		r := startRun(t, bin, config, dir, len(runs))
		runs = append(runs, r)
		how := "after " + up.Round(time.Millisecond).String()
		aim := func(saved chan struct{}, what string) {
			select {
			case <-saved:
				time.Sleep(after)
				aimed++
				how = fmt.Sprintf("%v after %s was saved", after.Round(time.Millisecond), what)
			case <-time.After(up):
			}
		}
		switch {
		case i == crashKills/3:
			time.Sleep(up / 2)
			api.EndSession(ending)
			time.Sleep(up - up/2)
		case i%2 == 1:
			aim(outboxSaved, "an outbox")
		case i%4 == 2 || i == crashKills:
			aim(pendingSaved, "a state with lefts waiting")
		default:
			time.Sleep(up)
		}
		r.kill(t)
		// What it sent just before dying is still on the wire; let it land.
		time.Sleep(4 * crashLatency)
		if note := outboxes.inspect(t, js, tail, sessions); note != "" {
			t.Logf("kill %d %s: %s", i+1, how, note)
		}
	}
	t.Logf("%d kills (%d aimed after a save) in %v; at %d of them a cycle was between saving its outbox and clearing it: %s; %d found lefts waiting for their end (%d in all)",
		len(runs), aimed, time.Since(start).Round(time.Millisecond), outboxes.kills, outboxes.summary(), outboxes.waitingKills, outboxes.waiting)
	if outboxes.waiting == 0 {
		t.Error("no kill found a left waiting for its end: the test did not try what it is for")
	}

	// The world stands still; one last run must catch up with it, then stop cleanly.
	stopChurn()
	final := startRun(t, bin, config, dir, len(runs))
	runs = append(runs, final)
	ended := map[string]bool{ending: true}
	deadline := time.Now().Add(crashCatchUp)
	for {
		c := checkCrash(sessions, ended, groundTruth(api, sessions), tail.read(t))
		if len(c.problems) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream did not catch up with the world within %v of the last start:\n%s\nlast run's log:\n%s",
				crashCatchUp, c.report(), lastLines(final.logs.String(), 60))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Two more cycles of every session still polled: nothing late, nothing extra.
	final.waitCycles(t, 2*(len(sessions)-len(ended)))
	final.term(t)

	c := checkCrash(sessions, ended, groundTruth(api, sessions), tail.read(t))
	if len(c.problems) > 0 {
		t.Fatalf("the stream does not match the world:\n%s", c.report())
	}
	again := len(published.Republished())
	t.Logf("%d events in the stream; %d stints, %d of them reconciled (shorter than a poll or while down); %d events published more than once, dropped by the stream as duplicates",
		len(tail.evs), c.seen, c.reconciled, again)
}

// buildRollcall builds this package's binary, without the race detector.
func buildRollcall(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the binary with: %v", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "rollcall")
	cmd := exec.Command(goCmd, "build", "-o", bin, ".")
	cmd.Dir = wd
	began := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(began).Round(time.Millisecond))
	return bin
}

// crashRun is one process of `rollcall run`.
type crashRun struct {
	n    int
	cmd  *exec.Cmd
	logs testkit.Buffer
	done chan error // its exit
}

// startRun starts the binary on config in dir, under its default replica name (this
// host and a random suffix), as a supervisor restarting one worker would; the test's
// end kills it if it still runs.
func startRun(t *testing.T, bin, config, dir string, n int) *crashRun {
	t.Helper()
	return startReplica(t, bin, config, dir, n, "")
}

// startReplica is startRun for the replica named replica ($ROLLCALL_REPLICA), unless
// it is "".
func startReplica(t *testing.T, bin, config, dir string, n int, replica string) *crashRun {
	t.Helper()
	r := &crashRun{n: n, done: make(chan error, 1)}
	r.cmd = exec.Command(bin, "run", "-config", config)
	r.cmd.Dir = dir
	// Only the secret from the environment: a VIDEOSDK_TOKEN or NATS_URL of the
	// caller's would override the file.
	r.cmd.Env = []string{"VIDEOSDK_SECRET=" + testSecret}
	if replica != "" {
		r.cmd.Env = append(r.cmd.Env, "ROLLCALL_REPLICA="+replica)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIDEOSDK_") && !strings.HasPrefix(kv, "NATS_URL=") && !strings.HasPrefix(kv, "ROLLCALL_REPLICA=") {
			r.cmd.Env = append(r.cmd.Env, kv)
		}
	}
	r.cmd.Stdout, r.cmd.Stderr = &r.logs, &r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-r.done:
			r.done <- err
		default:
			_ = r.cmd.Process.Kill() // it fails only if the process has exited: r.done has its end either way
			r.done <- <-r.done
		}
	})
	return r
}

// exited reports whether the process has exited, and how.
func (r *crashRun) exited() (bool, error) {
	select {
	case err := <-r.done:
		r.done <- err
		return true, err
	default:
		return false, nil
	}
}

// kill sends SIGKILL and waits for the exit. The worker must still have been running.
func (r *crashRun) kill(t *testing.T) {
	t.Helper()
	if ok, err := r.exited(); ok {
		t.Fatalf("run %d exited by itself before the kill: %v\n%s", r.n, err, r.logs.String())
	}
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := <-r.done
	r.done <- err
}

// term sends SIGTERM: the worker must exit 0 within the spec's 10 seconds.
func (r *crashRun) term(t *testing.T) {
	t.Helper()
	if ok, err := r.exited(); ok {
		t.Fatalf("run %d exited by itself before SIGTERM: %v\n%s", r.n, err, r.logs.String())
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatalf("run %d after SIGTERM: %v, want exit 0\n%s", r.n, err, lastLines(r.logs.String(), 60))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("run %d did not exit within 10s of SIGTERM\n%s", r.n, lastLines(r.logs.String(), 60))
	}
	if strings.Contains(r.logs.String(), testSecret) {
		t.Errorf("run %d logged the secret", r.n)
	}
}

// waitCycles waits until the run has logged n more session cycles.
func (r *crashRun) waitCycles(t *testing.T, n int) {
	t.Helper()
	cycles := func() int { return strings.Count(r.logs.String(), "msg=cycle ") }
	target := cycles() + n
	deadline := time.Now().Add(20 * time.Second)
	for cycles() < target {
		if time.Now().After(deadline) {
			t.Fatalf("run %d stopped polling:\n%s", r.n, lastLines(r.logs.String(), 60))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// keepLogsOnFailure saves the logs of the runs in *runs, as they are when the test
// ends, if it failed.
func keepLogsOnFailure(t *testing.T, runs *[]*crashRun) {
	t.Cleanup(func() {
		if t.Failed() {
			saveRunLogs(t, *runs)
		}
	})
}

// saveRunLogs writes every run's log to the test's artifact directory.
func saveRunLogs(t *testing.T, runs []*crashRun) {
	dir := t.ArtifactDir()
	for _, r := range runs {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("run-%02d.log", r.n)), []byte(r.logs.String()), 0o644); err != nil {
			t.Log(err)
			return
		}
	}
	t.Logf("the log of every run is in %s (kept with -artifacts)", dir)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// crashEvent is an event in the stream, with its sequence number.
type crashEvent struct {
	seq uint64
	event
}

func (e crashEvent) String() string {
	kind := strings.TrimPrefix(e.Type, "live.videosdk.")
	return fmt.Sprintf("#%d %s id=%s", e.seq, kind, e.ID)
}

// streamTail reads the stream ROLLCALL as it grows.
type streamTail struct {
	js       jetstream.JetStream
	contract *testkit.Contract // every event read is checked against it
	next     uint64            // the next sequence to read; 0 before the first
	evs      []crashEvent
	ids      map[string]bool
}

// read returns every event in the stream so far, in stream order. A cluster that is
// still electing the stream's leader (as it starts, or as a node comes back) answers
// nothing for a while: such a read is tried again, for up to half a minute. No message
// is skipped, since next only moves past a message once it has been read.
func (s *streamTail) read(t *testing.T) []crashEvent {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.readOnce(t)
		if err == nil {
			return s.evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("reading the stream: %v", err)
		}
		t.Logf("reading the stream: %v; trying again", err)
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *streamTail) readOnce(t *testing.T) error {
	t.Helper()
	ctx := t.Context()
	str, err := s.js.Stream(ctx, "ROLLCALL")
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	info, err := str.Info(ctx)
	if err != nil {
		return err
	}
	if s.ids == nil {
		s.ids = map[string]bool{}
	}
	for s.next = max(s.next, 1); s.next <= info.State.LastSeq; s.next++ {
		m, err := str.GetMsg(ctx, s.next)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := s.contract.Check(m.Data); err != nil { // every event keeps the contract
			t.Fatalf("stream message #%d on %s: %v\n%s", m.Sequence, m.Subject, err, m.Data)
		}
		ev := crashEvent{seq: m.Sequence}
		if err := json.Unmarshal(m.Data, &ev.event); err != nil {
			t.Fatalf("stream message #%d on %s: %v\n%s", m.Sequence, m.Subject, err, m.Data)
		}
		ev.Subject = m.Subject
		s.evs = append(s.evs, ev)
		s.ids[ev.ID] = true
	}
	return nil
}

// outboxStats counts where the kills found cycles that had saved an outbox: the events
// not yet published, some of them, or all of them but the outbox not yet cleared.
type outboxStats struct {
	kills                      int // kills that found an outbox
	unpublished, partly, acked int // sessions
	waitingKills, waiting      int // kills that found lefts waiting for their end, and those lefts
}

// inspect notes the outboxes left in the state bucket by the run just killed, and
// describes them.
func (o *outboxStats) inspect(t *testing.T, js jetstream.JetStream, tail *streamTail, sessions map[string]string) string {
	t.Helper()
	ctx := t.Context()
	if _, err := js.KeyValue(ctx, "ROLLCALL_STATE"); err != nil {
		return "" // not yet created: killed during start-up
	}
	store, err := publisher.OpenStore(ctx, js, "ROLLCALL_STATE", 1, time.Hour, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	tail.read(t)
	var notes []string
	waiting := 0
	for _, id := range slices.Sorted(maps.Keys(sessions)) {
		st, _, err := store.Load(ctx, id)
		if err != nil {
			t.Fatalf("session %s: %v", id, err)
		}
		if n := len(st.Pending); n > 0 {
			if waiting == 0 {
				o.waitingKills++
			}
			waiting += n
			o.waiting += n
			notes = append(notes, fmt.Sprintf("%s: %d lefts waiting for their end", id, n))
		}
		if st.Outbox == nil {
			continue
		}
		in := 0
		for _, c := range st.Outbox.Changes {
			if tail.ids[publisher.EventID(id, c)] {
				in++
			}
		}
		n := len(st.Outbox.Changes)
		switch in {
		case 0:
			o.unpublished++
		case n:
			o.acked++
		default:
			o.partly++
		}
		notes = append(notes, fmt.Sprintf("%s outbox of %d events, %d in the stream", id, n, in))
	}
	if len(notes) > len(slices.DeleteFunc(slices.Clone(notes), func(n string) bool { return strings.Contains(n, "outbox") })) {
		o.kills++
	}
	return strings.Join(notes, "; ")
}

func (o *outboxStats) summary() string {
	return fmt.Sprintf("%d sessions' events saved but none in the stream, %d partly in it, %d all in it but the outbox not yet cleared",
		o.unpublished, o.partly, o.acked)
}

func groundTruth(api *sim.Server, sessions map[string]string) map[string][]sim.Stint {
	out := map[string][]sim.Stint{}
	for id := range sessions {
		out[id] = api.Stints(id)
	}
	return out
}

// crashCheck is the outcome of checkCrash.
type crashCheck struct {
	problems         []string
	seen, reconciled int // stints
}

func (c crashCheck) report() string {
	const most = 40
	s := strings.Join(c.problems[:min(len(c.problems), most)], "\n")
	if len(c.problems) > most {
		s += fmt.Sprintf("\n… and %d more", len(c.problems)-most)
	}
	return s
}

// checkCrash compares the stream with the ground truth of the sessions (id -> room),
// of which those in ended have ended. Every stint must be there, exact: those shorter
// than a poll, or that fell while no worker ran, reconciled.
func checkCrash(sessions map[string]string, ended map[string]bool, truth map[string][]sim.Stint, evs []crashEvent) crashCheck {
	type stintKey struct{ session, participant, start string }
	stamp := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	var c crashCheck
	fail := func(format string, args ...any) { c.problems = append(c.problems, fmt.Sprintf(format, args...)) }

	want := map[stintKey]sim.Stint{}
	for id, stints := range truth {
		for _, st := range stints {
			want[stintKey{id, st.ParticipantID, stamp(st.Start)}] = st
		}
	}
	got := map[stintKey][]crashEvent{}
	open := map[[2]string]stintKey{} // per session and participant, its stint joined and not yet left
	ids := map[string][]crashEvent{}
	type span struct{ first, last uint64 } // of a session's participant events
	spans := map[string]*span{}
	sessionEvs := map[string]map[string][]crashEvent{} // session -> started/ended -> events
	for _, ev := range evs {
		ids[ev.ID] = append(ids[ev.ID], ev)
		d := ev.Data
		room, ok := sessions[d.SessionID]
		if !ok {
			fail("%v on %s: unknown session %q", ev, ev.Subject, d.SessionID)
			continue
		}
		kind, participant := strings.CutPrefix(ev.Type, "live.videosdk.participant.")
		if !participant {
			kind, _ = strings.CutPrefix(ev.Type, "live.videosdk.session.")
		}
		family := map[bool]string{true: "participant", false: "session"}[participant]
		if w := fmt.Sprintf("videosdk.%s.%s.%s.%s", family, kind, room, d.SessionID); ev.Subject != w || d.RoomID != room {
			fail("%v on %s, room %q: want subject %s, room %q", ev, ev.Subject, d.RoomID, w, room)
		}
		if !participant {
			if kind != "started" && kind != "ended" {
				fail("%v: unknown type %q", ev, ev.Type)
				continue
			}
			if sessionEvs[d.SessionID] == nil {
				sessionEvs[d.SessionID] = map[string][]crashEvent{}
			}
			sessionEvs[d.SessionID][kind] = append(sessionEvs[d.SessionID][kind], ev)
			continue
		}
		if kind != "joined" && kind != "left" {
			fail("%v: unknown type %q", ev, ev.Type)
			continue
		}
		if sp := spans[d.SessionID]; sp == nil {
			spans[d.SessionID] = &span{ev.seq, ev.seq}
		} else {
			sp.last = ev.seq
		}
		if d.JoinedAt == nil {
			fail("%v: session %s, participant %s: no joinedAt", ev, d.SessionID, d.ParticipantID)
			continue
		}
		k := stintKey{d.SessionID, d.ParticipantID, stamp(*d.JoinedAt)}
		st, ok := want[k]
		if !ok {
			fail("%v: session %s, participant %s, joinedAt %s: no such stint in the world", ev, k.session, k.participant, k.start)
		}
		who := [2]string{d.SessionID, d.ParticipantID}
		switch {
		case kind == "joined" && open[who] != (stintKey{}) && open[who] != k:
			fail("%v: session %s, participant %s: stint %s joined while stint %s has not left", ev, k.session, k.participant, k.start, open[who].start)
		case kind == "joined":
			open[who] = k
		case open[who] == k:
			delete(open, who)
		}
		if kind == "left" && ok && (d.LeftAt == nil || st.End == nil || !d.LeftAt.Equal(*st.End)) {
			fail("%v: session %s, participant %s, stint %s: leftAt %v, want its end %v", ev, k.session, k.participant, k.start, d.LeftAt, st.End)
		}
		if d.Detection == "reconciled" && kind == "joined" {
			c.reconciled++
		}
		got[k] = append(got[k], ev)
	}

	for id, same := range ids {
		if len(same) > 1 {
			fail("event id %s %d times in the stream: %v", id, len(same), same)
		}
	}
	for id := range sessions {
		started, endedEvs := sessionEvs[id]["started"], sessionEvs[id]["ended"]
		sp := spans[id]
		switch {
		case len(started) != 1:
			fail("session %s: %d session.started events, want 1: %v", id, len(started), started)
		case sp != nil && started[0].seq > sp.first:
			fail("session %s: %v after its first participant event #%d", id, started[0], sp.first)
		}
		wantEnded := map[bool]int{true: 1}[ended[id]]
		switch {
		case len(endedEvs) != wantEnded:
			fail("session %s: %d session.ended events, want %d: %v", id, len(endedEvs), wantEnded, endedEvs)
		case wantEnded == 1 && sp != nil && endedEvs[0].seq < sp.last:
			fail("session %s: %v before its last participant event #%d", id, endedEvs[0], sp.last)
		}
	}
	for k, st := range want {
		evs := got[k]
		var kinds []string
		for _, ev := range evs {
			kinds = append(kinds, strings.TrimPrefix(ev.Type, "live.videosdk.participant."))
		}
		wantKinds, end := []string{"joined"}, "open"
		if st.End != nil {
			wantKinds, end = []string{"joined", "left"}, stamp(*st.End)
		}
		switch {
		case len(evs) == 0:
			fail("session %s, participant %s, stint %s–%s: never published", k.session, k.participant, k.start, end)
		case !slices.Equal(kinds, wantKinds):
			fail("session %s, participant %s, stint %s–%s: events %v, want %v in this order", k.session, k.participant, k.start, end, evs, wantKinds)
		default:
			c.seen++
		}
	}
	slices.Sort(c.problems)
	return c
}

// latencyProxy forwards TCP connections to target, delaying each chunk by delay each
// way: a network slow enough that kills land between a cycle's save, publish and
// acknowledgement, and not only in its fetch. What a killed process sent is still
// delivered, as on a real network.
func latencyProxy(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	track := func(cs ...net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		conns = append(conns, cs...)
		return !closed
	}
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			if !track(client, server) {
				client.Close()
				server.Close()
				return
			}
			wg.Go(func() { pipeDelayed(server, client, delay) })
			wg.Go(func() { pipeDelayed(client, server, delay) })
		}
	})
	t.Cleanup(func() {
		if err := ln.Close(); err != nil {
			t.Error(err)
		}
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// pipeDelayed copies src to dst, each chunk delay after it was read. When either side
// is done it closes both, which ends the other direction too.
func pipeDelayed(dst, src net.Conn, delay time.Duration) {
	type chunk struct {
		due time.Time
		b   []byte
	}
	chunks := make(chan chunk, 1024)
	go func() {
		defer close(chunks)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				chunks <- chunk{time.Now().Add(delay), b[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	src.Close()
	dst.Close()
	for range chunks { // until the reader has returned
	}
}
