package poller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/publisher"
	"github.com/rollcall/rollcall/sim"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// rig is a poller wired to a simulated API and a real JetStream server.
type rig struct {
	*world
	js     jetstream.JetStream
	store  *publisher.Store
	poller *poller.Poller
	seen   int // events already returned by newEvents
}

func newRig(t *testing.T, w *world, withStream bool) *rig {
	t.Helper()
	ctx := context.Background()
	js, err := publisher.NewJetStream(natstest.Connect(t, natstest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	if withStream {
		ensureStream(t, js)
	}
	store, err := publisher.OpenStore(ctx, js, "ROLLCALL_STATE", 1, time.Hour, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := poller.New(w.client(2), store, publisher.New(js, "videosdk", quiet()))
	return &rig{world: w, js: js, store: store, poller: p}
}

// poll runs one cycle of the rig's session and returns the events it added.
func (r *rig) poll(t *testing.T) []string {
	t.Helper()
	if _, err := r.poller.Poll(context.Background(), quiet(), session); err != nil {
		t.Fatal(err)
	}
	return r.newEvents(t)
}

// with returns a poller over src, with the rig's store and stream.
func (r *rig) with(src poller.Source, opts ...poller.Option) *poller.Poller {
	return poller.New(src, r.store, publisher.New(r.js, "videosdk", quiet()), opts...)
}

func ensureStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	err := publisher.EnsureStream(context.Background(), js, publisher.StreamConfig{
		Name: "ROLLCALL", Prefix: "videosdk", Replicas: 1, DuplicateWindow: time.Hour, MaxAge: 24 * time.Hour,
	}, quiet())
	if err != nil {
		t.Fatal(err)
	}
}

// events returns the stream's events as "kind participant@second-of-join" lines,
// seconds counted from the session's start, after those already returned.
func (r *rig) newEvents(t *testing.T) []string {
	t.Helper()
	all := streamEvents(t, r.js)
	if r.seen == len(all) {
		return nil
	}
	out := all[r.seen:]
	r.seen = len(all)
	return out
}

// newEventsPeek returns the events after those already returned, leaving them unread.
func (r *rig) newEventsPeek(t *testing.T) []string {
	t.Helper()
	return streamEvents(t, r.js)[r.seen:]
}

func streamEvents(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	return eventLines(t, js, "")
}

// sessionEvents is session id's events, in stream order: the order that holds, since
// sessions are independent of each other.
func sessionEvents(t *testing.T, js jetstream.JetStream, id string) []string {
	t.Helper()
	return eventLines(t, js, id)
}

// eventLines is the events in the stream, of session id alone unless it is "", one
// line each.
func eventLines(t *testing.T, js jetstream.JetStream, id string) []string {
	t.Helper()
	var out []string
	for _, m := range natstest.Messages(t, js, "ROLLCALL") {
		if id != "" && !strings.HasSuffix(m.Subject, "."+events.EscapeToken(id)) {
			continue
		}
		var e struct {
			Type string `json:"type"`
			Data struct {
				ParticipantID string     `json:"participantId"`
				JoinedAt      *time.Time `json:"joinedAt"`
				LeftAt        *time.Time `json:"leftAt"`
				Detection     string     `json:"detection"`
			} `json:"data"`
		}
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		line := e.Type[len("live.videosdk."):]
		if e.Data.ParticipantID != "" {
			line += fmt.Sprintf(" %s@%d", e.Data.ParticipantID, e.Data.JoinedAt.Sub(newClock().Now())/time.Second)
		}
		if e.Data.LeftAt != nil {
			line += fmt.Sprintf(" until %d", e.Data.LeftAt.Sub(newClock().Now())/time.Second)
		}
		if e.Data.Detection == "reconciled" {
			line += " reconciled"
		}
		out = append(out, line)
	}
	return out
}

// TestPollScenario walks one session through the cases of the spec, one cycle per
// step, and checks what each cycle adds to the stream.
func TestPollScenario(t *testing.T) {
	w := newWorld(t, "a", "b", "c") // joined at seconds 1, 2, 3
	r := newRig(t, w, true)
	steps := []struct {
		name      string
		change    func()
		want      []string
		wantEnded bool
		wantErr   bool
	}{{
		name: "first poll: the session starts, everyone present joins, across two pages",
		want: []string{"session.started", "participant.joined a@1", "participant.joined b@2", "participant.joined c@3"},
	}, {
		name:   "nothing changed",
		change: func() {},
	}, {
		name: "a leaves, d joins",
		change: func() {
			w.clock.Add(7 * time.Second) // 10
			w.api.Leave(session, "a")
			w.api.Join(session, "d", "name-d")
		},
		want: []string{"participant.left a@1 until 10", "participant.joined d@10"},
	}, {
		name: "b leaves and comes back between two polls",
		change: func() {
			w.clock.Add(2 * time.Second) // 12
			w.api.Leave(session, "b")
			w.clock.Add(3 * time.Second) // 15
			w.api.Join(session, "b", "name-b")
		},
		want: []string{"participant.left b@2 until 12", "participant.joined b@15"},
	}, {
		name: "page 2 keeps failing while c leaves and g joins: nothing is published",
		change: func() {
			w.api.Leave(session, "c")
			w.api.Join(session, "g", "name-g")
			w.api.InjectFault(sim.Fault{Page: 2, Status: 503, Times: 3})
		},
		wantErr: true,
	}, {
		name:   "the next complete cycle catches up",
		change: func() {},
		want:   []string{"participant.left c@3 until 15", "participant.joined g@15"},
	}, {
		name: "the shifted pages of a mid-scan leave give no false left",
		change: func() {
			w.clock.Add(5 * time.Second) // 20
			w.api.Join(session, "e", "name-e")
			w.api.Join(session, "f", "name-f")
			w.api.InjectFault(sim.Fault{Page: 1, AfterServe: func() { w.api.Leave(session, "d") }})
		},
		want: []string{"participant.left d@10 until 20", "participant.joined e@20", "participant.joined f@20"},
	}, {
		name: "b leaves and h joins mid-scan: the pages shift, total unchanged, e is hidden; a second scan saves e from a false left",
		change: func() {
			w.clock.Add(5 * time.Second) // 25
			w.api.InjectFault(sim.Fault{Page: 1, AfterServe: func() {
				w.api.Leave(session, "b")
				w.api.Join(session, "h", "name-h")
			}})
		},
		want: []string{"participant.joined h@25"},
	}, {
		name:   "b, seen on page 1 before leaving, is gone from the next cycle's two scans",
		change: func() {},
		want:   []string{"participant.left b@15 until 25"},
	}, {
		name:      "the session ends: everyone left, then the session ended",
		change:    func() { w.api.EndSession(session) },
		want:      []string{"participant.left e@20 until 25", "participant.left f@20 until 25", "participant.left g@15 until 25", "participant.left h@25 until 25", "session.ended"},
		wantEnded: true,
	}, {
		name:      "an ended session yields nothing more",
		change:    func() {},
		wantEnded: true,
	}}
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		res, err := r.poller.Poll(context.Background(), quiet(), session)
		if (err != nil) != s.wantErr || res.Ended != s.wantEnded {
			t.Fatalf("%s: Poll = %+v, %v; want ended %v, error %v", s.name, res, err, s.wantEnded, s.wantErr)
		}
		if d := cmp.Diff(s.want, r.newEvents(t)); d != "" {
			t.Errorf("%s: events (-want +got):\n%s", s.name, d)
		}
	}
}

// TestPollFinishesAnInterruptedCycle: a cycle whose events cannot be acknowledged (no
// stream captures them) leaves them in the state's outbox. Meanwhile a, who joined in
// that cycle, leaves. The next cycle sends the outbox first, as it was, then the
// diff: a gets its joined and its left, though no snapshot ever saved shows a.
func TestPollFinishesAnInterruptedCycle(t *testing.T) {
	w := newWorld(t, "a", "b")
	r := newRig(t, w, false)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if _, err := r.poller.Poll(ctx, quiet(), session); err == nil {
		t.Fatal("Poll succeeded with no stream to publish to")
	}
	st, _, err := r.store.Load(context.Background(), session)
	if err != nil || st.Outbox == nil || len(st.Outbox.Changes) != 3 {
		t.Fatalf("state after an unacknowledged cycle: %+v, %v; want an outbox of 3 changes", st, err)
	}
	w.api.Leave(session, "a")
	ensureStream(t, r.js)
	if _, err := r.poller.Poll(context.Background(), quiet(), session); err != nil {
		t.Fatal(err)
	}
	want := []string{"session.started", "participant.joined a@1", "participant.joined b@2", "participant.left a@1 until 2"}
	if d := cmp.Diff(want, r.newEvents(t)); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	if st, _, _ := r.store.Load(context.Background(), session); st.Outbox != nil {
		t.Errorf("outbox kept after its events were acknowledged: %+v", st.Outbox)
	}
}

// failingStore fails the Save calls it is told to, as a crash right before them would.
type failingStore struct {
	poller.Store
	fail map[int]bool // by the number of the call, from 1
	n    int
}

func (s *failingStore) Save(ctx context.Context, id string, st diff.State, rev uint64) (uint64, error) {
	s.n++
	if s.fail[s.n] {
		return 0, fmt.Errorf("save %d: injected failure", s.n)
	}
	return s.Store.Save(ctx, id, st, rev)
}

// TestPollAckedButNotCleared: the events of a cycle are acknowledged, but the save
// that clears the outbox fails. The next cycle sends them again (the stream drops them
// as duplicates) and goes on from the state they led to.
func TestPollAckedButNotCleared(t *testing.T) {
	w := newWorld(t, "a")
	r := newRig(t, w, true)
	store := &failingStore{Store: r.store, fail: map[int]bool{2: true}}
	p := poller.New(w.client(2), store, publisher.New(r.js, "videosdk", quiet()))
	ctx := context.Background()
	w.api.Join(session, "z", "name-z")
	if _, err := p.Poll(ctx, quiet(), session); err == nil {
		t.Fatal("Poll succeeded though its second save failed")
	}
	w.api.Leave(session, "z")
	if _, err := p.Poll(ctx, quiet(), session); err != nil {
		t.Fatal(err)
	}
	want := []string{"session.started", "participant.joined a@1", "participant.joined z@1", "participant.left z@1 until 1"}
	if d := cmp.Diff(want, r.newEvents(t)); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

// TestPollDoesNotSaveAnUnchangedState: after the first cycle saves, identical cycles
// save nothing, whatever the API's raw JSON looks like: deviceInfo written with spaces
// and "&" does not come back byte for byte from the store.
func TestPollDoesNotSaveAnUnchangedState(t *testing.T) {
	spaced := func(t *testing.T) string {
		return strings.Replace(string(readFile(t, "documented-example.json")), `"platform": "desktop"`, `"platform" :  "desktop & <laptop>"`, 1)
	}
	tests := []struct {
		name string
		body func(t *testing.T) string // "" : the simulator's own answers
	}{
		{name: "the simulator's answers"},
		{name: "raw JSON with spaces and escapable characters", body: spaced},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, "a")
			r := newRig(t, w, true)
			if tt.body != nil {
				w.api.InjectFault(sim.Fault{Status: 200, Body: tt.body(t), Times: 3})
			}
			ctx := context.Background()
			var revs []uint64
			for range 3 {
				if _, err := r.poller.Poll(ctx, quiet(), session); err != nil {
					t.Fatal(err)
				}
				_, rev, err := r.store.Load(ctx, session)
				if err != nil {
					t.Fatal(err)
				}
				revs = append(revs, rev)
			}
			if revs[0] == 0 || revs[1] != revs[0] || revs[2] != revs[0] {
				t.Errorf("revisions after three identical cycles: %v, want one save", revs)
			}
		})
	}
}

// TestPollConfirmsOnlyWhatCanHaveShifted: an absence from a one-page list needs no
// second scan; an absence from a list of several pages does. Then the list of all
// participants is read, every page (two to a page), for a's leave time.
func TestPollConfirmsOnlyWhatCanHaveShifted(t *testing.T) {
	tests := []struct {
		name         string
		present      []string
		wantRequests int
	}{
		{"one page: one scan", []string{"a", "b"}, 1 + 1},
		{"two pages, then one: one answer holds everyone, one scan", []string{"a", "b", "c"}, 1 + 2},
		{"three pages, then two: two scans of two pages", []string{"a", "b", "c", "d", "e"}, 4 + 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.present...)
			r := newRig(t, w, true)
			ctx := context.Background()
			if _, err := r.poller.Poll(ctx, quiet(), session); err != nil {
				t.Fatal(err)
			}
			w.api.Leave(session, "a")
			before := w.api.Requests()
			if _, err := r.poller.Poll(ctx, quiet(), session); err != nil {
				t.Fatal(err)
			}
			if n := w.api.Requests() - before; n != tt.wantRequests {
				t.Errorf("%d requests for a cycle with a leave, want %d", n, tt.wantRequests)
			}
			if got := r.newEvents(t); !slices.ContainsFunc(got, func(e string) bool { return strings.HasPrefix(e, "participant.left a@1 until ") }) {
				t.Errorf("events %v, want a's left", got)
			}
		})
	}
}

// TestPollTwoShiftedScans: both the scan and its confirmation are shifted by a leave
// and a join right after their first page. The confirmation reads the pages backward,
// so the shift cannot hide anyone from it, and p4, hidden from the first scan, gets no
// false left. p1, gone before the first poll, is reconciled by the cycle that finds p3
// gone and reads the list of all participants.
func TestPollTwoShiftedScans(t *testing.T) {
	w := newWorld(t, "p1", "p2", "p3", "p4", "p5", "p6", "p7")
	r := newRig(t, w, true)
	ctx := context.Background()
	w.api.Leave(session, "p1")
	r.poll(t)
	w.clock.Add(10 * time.Second) // 17
	w.api.InjectFault(sim.Fault{Page: 1, AfterServe: func() {
		w.api.Leave(session, "p2")
		w.api.Join(session, "p8", "name-p8")
	}})
	w.api.InjectFault(sim.Fault{Page: 3, AfterServe: func() {
		w.api.Join(session, "p2", "name-p2")
		// The next request is the second scan's first page, whichever it is.
		w.api.InjectFault(sim.Fault{AfterServe: func() {
			w.api.Leave(session, "p3")
			w.api.Join(session, "p9", "name-p9")
		}})
	}})
	if _, err := r.poller.Poll(ctx, quiet(), session); err != nil {
		t.Fatal(err)
	}
	want := []string{"participant.left p2@2 until 17", "participant.joined p2@17", "participant.joined p8@17", "participant.joined p9@17"}
	if d := cmp.Diff(want, r.newEvents(t)); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"participant.joined p1@1 reconciled", "participant.left p1@1 until 7 reconciled", "participant.left p3@3 until 17"}, r.poll(t)); d != "" {
		t.Errorf("the next cycle's events (-want +got):\n%s", d)
	}
}

// TestRecheckSeesWhoAShiftMoves: a leave on page 1 and a join right after the last
// page is served shift every page; read backward, no one present is missed.
func TestRecheckSeesWhoAShiftMoves(t *testing.T) {
	w := newWorld(t, "a", "b", "c", "d", "e", "f", "g")
	w.api.InjectFault(sim.Fault{Page: 4, AfterServe: func() {
		w.api.Leave(session, "a")
		w.api.Join(session, "z", "name-z")
	}})
	got, err := w.client(2).Recheck(context.Background(), nil, session, 4)
	if err != nil {
		t.Fatal(err)
	}
	ids := ids(got)
	slices.Sort(ids)
	for _, id := range []string{"b", "c", "d", "e", "f", "g"} {
		if !slices.Contains(ids, id) {
			t.Errorf("%s, present all along, missing from %v", id, ids)
		}
	}
	if !got.Complete {
		t.Errorf("incomplete after rescans: %v", ids)
	}
}

// TestPollExcludes: participants in an excluded mode or with an excluded sdkType yield
// no events; one whose mode changes to an excluded one mid-stint is followed until it
// leaves, so the change makes no false left.
// TestPollExcludesAfterAConfirmingScan: b leaves a list of several pages, so the
// cycle scans again, backward, to confirm it; the viewer is excluded from that scan's
// participants too (outside testing found it joined there).
func TestPollExcludesAfterAConfirmingScan(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	w.api.JoinWith(session, sim.Participant{ID: "viewer", Mode: "VIEWER"})
	r := newRig(t, w, true)
	r.poller = r.with(w.client(2), poller.WithExclude([]string{"VIEWER"}, nil))
	r.poll(t)
	w.api.Leave(session, "b")
	if d := cmp.Diff([]string{"participant.left b@2 until 3"}, r.poll(t)); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	if st, _, err := r.store.Load(context.Background(), session); err != nil || slices.ContainsFunc(st.Present, func(p diff.Participant) bool { return p.ID == "viewer" }) {
		t.Errorf("state %+v, %v: the viewer is in it", st.Present, err)
	}
}

func TestPollExcludes(t *testing.T) {
	w := newWorld(t, "a")
	w.api.JoinWith(session, sim.Participant{ID: "viewer", Mode: "VIEWER"})
	w.api.JoinWith(session, sim.Participant{ID: "bot", SDKType: "recorder"})
	r := newRig(t, w, true)
	r.poller = r.with(w.client(2), poller.WithExclude([]string{"VIEWER"}, []string{"recorder"}))
	steps := []struct {
		name   string
		change func()
		want   []string
	}{
		{"the viewer and the recorder yield nothing", nil, []string{"session.started", "participant.joined a@1"}},
		{"a switches to an excluded mode: no left", func() { w.api.ChangeMode(session, "a", "VIEWER") }, nil},
		{"a leaves", func() { w.api.Leave(session, "a") }, []string{"participant.left a@1 until 1"}},
		{"the viewer is promoted: its stint joins", func() { w.api.ChangeMode(session, "viewer", "CONFERENCE") }, []string{"participant.joined viewer@1"}},
		{"the recorder leaves: nothing", func() { w.api.Leave(session, "bot") }, nil},
	}
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		if d := cmp.Diff(s.want, r.poll(t)); d != "" {
			t.Errorf("%s: events (-want +got):\n%s", s.name, d)
		}
	}
}

// countingStore counts the loads and saves that reach the store.
type countingStore struct {
	poller.Store
	loads, saves atomic.Int32
}

func (s *countingStore) Load(ctx context.Context, id string) (diff.State, uint64, error) {
	s.loads.Add(1)
	return s.Store.Load(ctx, id)
}

func (s *countingStore) Save(ctx context.Context, id string, st diff.State, rev uint64) (uint64, error) {
	s.saves.Add(1)
	return s.Store.Save(ctx, id, st, rev)
}

// TestPollCached: with a cache, a poll that changes nothing reads and writes nothing
// in the store; one with changes writes once, its state with its outbox, and reads
// nothing; the next poll's write clears the outbox, or, if it has nothing to write,
// a write of its own. A write by someone else (the state moved under the cache) fails
// the next save: the poll fails, publishes nothing, and the next one loads the state
// again and catches up, once.
func TestPollCached(t *testing.T) {
	w := newWorld(t, "a", "b")
	r := newRig(t, w, true)
	store := &countingStore{Store: r.store}
	p := poller.New(w.client(2), store, publisher.New(r.js, "videosdk", quiet()))
	ctx := context.Background()
	var cache poller.Cache
	poll := func() error { _, err := p.PollCached(ctx, quiet(), session, &cache); return err }
	for range 4 {
		if err := poll(); err != nil {
			t.Fatal(err)
		}
	}
	if l, s := store.loads.Load(), store.saves.Load(); l != 1 || s != 2 {
		t.Errorf("four polls, the first with joins: %d loads and %d saves, want 1 and 2 (the outbox, then without it, by the second poll)", l, s)
	}
	w.api.Leave(session, "a")
	if err := poll(); err != nil {
		t.Fatal(err)
	}
	if l, s := store.loads.Load(), store.saves.Load(); l != 1 || s != 3 {
		t.Errorf("a poll with a leave: %d loads and %d saves in all, want 1 and 3", l, s)
	}
	if st, _, err := r.store.Load(ctx, session); err != nil || st.Outbox == nil || len(st.Outbox.Changes) != 1 {
		t.Errorf("state after the poll with a leave: %+v, %v; want its outbox of one left, still there", st.Outbox, err)
	}
	if err := poll(); err != nil {
		t.Fatal(err)
	}
	if s := store.saves.Load(); s != 4 {
		t.Errorf("%d saves after a poll that follows one with changes, want 4: it clears the outbox", s)
	}
	if st, _, err := r.store.Load(ctx, session); err != nil || st.Outbox != nil || len(st.Present) != 1 {
		t.Errorf("state after the next poll: %+v, %v; want b alone present, and no outbox", st, err)
	}

	// Someone else writes the state: the cache's revision is stale.
	st, rev, err := r.store.Load(ctx, session)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Save(ctx, session, st, rev); err != nil {
		t.Fatal(err)
	}
	r.newEvents(t)
	w.api.Leave(session, "b")
	w.api.Join(session, "c", "name-c")
	if err := poll(); !errors.Is(err, publisher.ErrConflict) {
		t.Fatalf("poll over a state written by someone else = %v, want ErrConflict", err)
	}
	if got := r.newEvents(t); len(got) != 0 {
		t.Errorf("events from a poll whose save failed: %v", got)
	}
	if err := poll(); err != nil {
		t.Fatal(err)
	}
	if l := store.loads.Load(); l != 2 {
		t.Errorf("%d loads after the conflict, want 2: the state loaded again", l)
	}
	want := []string{"participant.left b@2 until 2", "participant.joined c@2"}
	if d := cmp.Diff(want, r.newEvents(t)); d != "" {
		t.Errorf("events after the conflict (-want +got):\n%s", d)
	}
}

// TestPollTellsTimeOnTheAPI: a poll reports how long it waited on the API, so that
// the loop can say where the time of a late poll went.
func TestPollTellsTimeOnTheAPI(t *testing.T) {
	w := newWorld(t, "a")
	r := newRig(t, w, true)
	w.api.InjectFault(sim.Fault{Delay: 300 * time.Millisecond})
	res, err := r.poller.Poll(context.Background(), quiet(), session)
	if err != nil {
		t.Fatal(err)
	}
	if res.Fetching < 300*time.Millisecond {
		t.Errorf("Fetching %v for an API that took 300ms to answer", res.Fetching)
	}
}

// TestPollCachedRestartsBeforeClearing: a worker stopped after a cycle with changes,
// before any next cycle cleared its outbox (kill -9): the next worker's first cycle
// sends the outbox again, and the stream drops what it holds: each event once. A
// loop that stops on its own settles first: nothing is sent again.
func TestPollCachedRestartsBeforeClearing(t *testing.T) {
	w := newWorld(t, "a")
	r := newRig(t, w, true)
	ctx := context.Background()
	var cache poller.Cache
	if _, err := r.poller.PollCached(ctx, quiet(), session, &cache); err != nil {
		t.Fatal(err)
	}
	w.api.Join(session, "b", "name-b")
	if _, err := r.poller.PollCached(ctx, quiet(), session, &cache); err != nil {
		t.Fatal(err)
	}
	if st, _, err := r.store.Load(ctx, session); err != nil || st.Outbox == nil {
		t.Fatalf("state after a cycle with changes: outbox %+v, %v; want it kept until the next write", st.Outbox, err)
	}
	// Killed here: a new worker, with nothing cached, polls.
	restarted := poller.New(w.client(2), r.store, publisher.New(r.js, "videosdk", quiet()))
	w.api.Leave(session, "a")
	if _, err := restarted.Poll(ctx, quiet(), session); err != nil {
		t.Fatal(err)
	}
	want := []string{"session.started", "participant.joined a@1", "participant.joined b@1", "participant.left a@1 until 1"}
	if d := cmp.Diff(want, r.newEvents(t)); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}

	// A loop that stops settles: the outbox of its last cycle is cleared.
	cache = poller.Cache{}
	if _, err := r.poller.PollCached(ctx, quiet(), session, &cache); err != nil {
		t.Fatal(err)
	}
	w.api.Join(session, "c", "name-c")
	if _, err := r.poller.PollCached(ctx, quiet(), session, &cache); err != nil {
		t.Fatal(err)
	}
	if err := r.poller.Settle(ctx, session, &cache); err != nil {
		t.Fatal(err)
	}
	if st, _, err := r.store.Load(ctx, session); err != nil || st.Outbox != nil || len(st.Present) != 2 {
		t.Errorf("state after Settle: %+v, %v; want b and c present, and no outbox", st, err)
	}
}
