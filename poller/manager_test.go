package poller_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/robfig/cron/v3"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/sim"
)

var memorySessions = flag.Int("memory.sessions", memoryDefault, "TestLoopMemoryBounded: how many sessions to follow and end")

// every is an @every schedule shorter than cron's parser allows, to keep tests short.
func every(d time.Duration) cron.Schedule { return cron.ConstantDelaySchedule{Delay: d} }

// managed is a Manager running over a rig until the test ends.
type managed struct {
	*poller.Manager
	updates chan poller.Update
	stop    func() // stops it and waits for Run to return
}

// manage runs a Manager of the rig's poller; change adjusts its config first.
func (r *rig) manage(t *testing.T, change func(*poller.ManagerConfig)) *managed {
	t.Helper()
	cfg := poller.ManagerConfig{
		Poller: r.poller, Rooms: r.client(2), Schedule: every(100 * time.Millisecond), Discover: every(100 * time.Millisecond),
		Log: quiet(),
	}
	if change != nil {
		change(&cfg)
	}
	m := &managed{Manager: poller.NewManager(cfg), updates: make(chan poller.Update)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx, context.Background(), m.updates)
	}()
	m.stop = sync.OnceFunc(func() {
		cancel()
		<-done
	})
	t.Cleanup(m.stop)
	return m
}

// track sends an origin's whole tracked set.
func (m *managed) track(origin string, sessions, rooms []string) {
	m.updates <- poller.Update{Origin: origin, Sessions: sessions, Rooms: rooms}
}

// status returns the manager's view as "kind id status from" lines.
func (m *managed) status(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, s := range statuses(t, m) {
		out = append(out, fmt.Sprintf("%s %s %s %s", s.Kind, s.ID, s.Status, strings.Join(s.From, ",")))
	}
	return out
}

// eventually waits up to 10s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, what, cond)
}

// requestsFor counts the simulator's requests whose path contains part.
type requestLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.paths = append(l.paths, r.URL.String())
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (l *requestLog) count(part string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, p := range l.paths {
		if strings.Contains(p, part) {
			n++
		}
	}
	return n
}

// logged serves the rig's simulator through a request log, and points the rig's
// poller at it.
func (r *rig) logged(t *testing.T) *requestLog {
	l := &requestLog{}
	srv := httptest.NewServer(l.wrap(r.api))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	r.poller = r.with(r.client(2))
	return l
}

// TestManagerSessions: configured sessions are polled at once and then on schedule;
// one that ends gets its lefts and session.ended and is polled no more; an unknown
// one yields nothing.
func TestManagerSessions(t *testing.T) {
	w := newWorld(t, "a")
	w.api.StartSession("s2", "r2")
	w.api.Join("s2", "x", "name-x")
	r := newRig(t, w, true)
	reqs := r.logged(t)
	m := r.manage(t, nil)
	m.track("config", []string{session, "s2", "unknown"}, nil)
	eventually(t, "both sessions polled twice", func() bool { return reqs.count("/s2/") >= 2 && reqs.count(session) >= 2 })
	w.api.EndSession("s2")
	eventually(t, "s2 ended", func() bool { return slices.Contains(m.status(t), "session s2 ended config") })
	asked := reqs.count("/s2/")
	before := reqs.count(session)
	eventually(t, "the other session polled on", func() bool { return reqs.count(session) >= before+3 })
	if n := reqs.count("/s2/"); n != asked {
		t.Errorf("s2 asked %d more times after it ended", n-asked)
	}
	want := []string{
		"session " + session + " polling config",
		"session s2 ended config",
		"session unknown not found config",
	}
	if d := cmp.Diff(want, m.status(t)); d != "" {
		t.Errorf("status (-want +got):\n%s", d)
	}
	list, _ := m.Status(context.Background())
	if s := list[1]; s.Present != 0 || s.Last.IsZero() {
		t.Errorf("the ended session's status %+v, want no one present and its last poll", s)
	}
	got := streamEvents(t, r.js)
	slices.Sort(got)
	wantEvents := []string{"participant.joined a@1", "participant.joined x@1", "participant.left x@1 until 1", "session.ended", "session.started", "session.started"}
	if d := cmp.Diff(wantEvents, got); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

// panickySource panics for one session and asks the simulator for the others.
type panickySource struct {
	poller.Source
	bad string
}

func (s panickySource) SnapshotSince(ctx context.Context, log *slog.Logger, id string, since uint64) (diff.Snapshot, uint64, error) {
	if id == s.bad {
		panic("a bug met by one session")
	}
	return s.Source.SnapshotSince(ctx, log, id, since)
}

// TestManagerSurvivesAPanic: a panic while polling one session is logged, and the
// other sessions are polled all the same.
func TestManagerSurvivesAPanic(t *testing.T) {
	w := newWorld(t, "a")
	r := newRig(t, w, true)
	var logs testkit.Buffer
	m := r.manage(t, func(c *poller.ManagerConfig) {
		c.Poller = r.with(panickySource{Source: r.client(2), bad: "bad"})
		c.Log = slog.New(slog.NewTextHandler(&logs, nil))
	})
	m.track("config", []string{"bad", session}, nil)
	eventually(t, "the good session published", func() bool { return len(streamEvents(t, r.js)) == 2 })
	eventually(t, "the panic logged twice", func() bool { return strings.Count(logs.String(), "cycle panicked") >= 2 })
}

// TestManagerSlowSessionHoldsUpNoOther: while one session's request hangs, the other
// session is polled on schedule, and the slow one is never asked twice at once.
func TestManagerSlowSessionHoldsUpNoOther(t *testing.T) {
	w := newWorld(t, "a")
	w.api.StartSession("fast", "r2")
	var slowAsked atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, session) {
			slowAsked.Add(1)
			<-release
		}
		w.api.ServeHTTP(rw, req)
	}))
	defer srv.Close()
	defer close(release)
	r := newRig(t, w, true)
	c := poller.NewClient(poller.ClientConfig{BaseURL: srv.URL, Tokens: w.tokens, RequestTimeout: time.Minute})
	m := r.manage(t, func(cfg *poller.ManagerConfig) { cfg.Poller = r.with(c) })
	m.track("config", []string{session, "fast"}, nil)
	eventually(t, "the slow session asked", func() bool { return slowAsked.Load() == 1 })
	for _, id := range []string{"x", "y", "z"} {
		w.api.Join("fast", id, "name-"+id)
		eventually(t, id+" joined while a session was slow", func() bool {
			return slices.Contains(streamEvents(t, r.js), "participant.joined "+id+"@1")
		})
	}
	if n := slowAsked.Load(); n != 1 {
		t.Errorf("the slow session was asked %d times while its first request was pending, want 1", n)
	}
}

// TestManagerRooms: a room with a long history is listed in full once; only its
// ongoing session is polled; a session that ends is announced at once, the room's next
// one is found and polled; untracking the room stops its sessions' loops and
// publishes no left.
func TestManagerRooms(t *testing.T) {
	w := newWorld(t)
	const r1 = "room-1"
	for range 5 { // five old sessions: three pages of the sessions list at 2 a page
		w.clock.Add(time.Minute)
		w.api.EndSession(w.api.NextSession(r1))
	}
	w.clock.Add(time.Minute)
	live := w.api.NextSession(r1)
	w.api.Join(live, "a", "name-a")
	r := newRig(t, w, true)
	reqs := r.logged(t)
	m := r.manage(t, func(c *poller.ManagerConfig) { c.Discover = every(300 * time.Millisecond) })
	m.track("config", nil, []string{r1})
	eventually(t, "the live session polled", func() bool { return reqs.count(live) >= 2 })
	if n := reqs.count("roomId=" + r1); n < 3 {
		t.Errorf("the first listing read %d pages, want all 3", n)
	}
	for _, s := range w.api.Sessions(r1) {
		if s != live && reqs.count(s) > 0 {
			t.Errorf("ended session %s polled", s)
		}
	}
	listed := reqs.count("roomId=")
	eventually(t, "listed again", func() bool { return reqs.count("roomId=") > listed+2 })

	w.clock.Add(time.Minute)
	next := w.api.NextSession(r1) // live ends, next starts
	w.api.Join(next, "b", "name-b")
	eventually(t, "the next session polled", func() bool {
		return slices.Contains(streamEvents(t, r.js), "participant.joined b@420")
	})
	eventually(t, "the ended session gone from the status", func() bool {
		return cmp.Equal(m.status(t), []string{"room " + r1 + " following config", "session " + next + " polling room " + r1})
	})
	wantNext := []string{"session.started", "participant.joined b@420"}
	for id, want := range map[string][]string{
		live: {"session.started", "participant.joined a@360", "participant.left a@360 until 420", "session.ended"},
		next: wantNext,
	} {
		if d := cmp.Diff(want, sessionEvents(t, r.js, id)); d != "" {
			t.Errorf("session %s's events (-want +got):\n%s", id, d)
		}
	}

	m.track("config", nil, nil)
	eventually(t, "nothing tracked", func() bool { return len(m.status(t)) == 0 })
	asked := reqs.count(next)
	w.api.Leave(next, "b")
	time.Sleep(500 * time.Millisecond) // five intervals: a loop still running would ask
	if n := reqs.count(next); n != asked {
		t.Errorf("an untracked room's session asked %d more times", n-asked)
	}
	if got := sessionEvents(t, r.js, next); len(got) != len(wantNext) {
		t.Errorf("events after untracking: %v", got[len(wantNext):])
	}

	// It ends while its room is untracked; tracking the room again finishes it.
	w.api.EndSession(next)
	m.track("config", nil, []string{r1})
	eventually(t, "the untracked session's end", func() bool { return len(sessionEvents(t, r.js, next)) == len(wantNext)+2 })
	if d := cmp.Diff([]string{"participant.left b@420 until 420", "session.ended"}, sessionEvents(t, r.js, next)[len(wantNext):]); d != "" {
		t.Errorf("events after tracking the room again (-want +got):\n%s", d)
	}
}

// TestManagerTrackAgain: a session untracked stops being polled without any left; its
// state is kept, so tracking it again publishes once what changed meanwhile.
func TestManagerTrackAgain(t *testing.T) {
	w := newWorld(t, "a", "b")
	r := newRig(t, w, true)
	reqs := r.logged(t)
	m := r.manage(t, nil)
	m.track("bucket", []string{session}, nil)
	eventually(t, "joins", func() bool { return len(streamEvents(t, r.js)) == 3 })
	m.track("bucket", nil, nil)
	eventually(t, "untracked", func() bool { return len(m.status(t)) == 0 })
	asked := reqs.count(session)
	w.api.Leave(session, "a")
	w.api.Join(session, "c", "name-c")
	time.Sleep(500 * time.Millisecond)
	if n := reqs.count(session); n != asked {
		t.Errorf("an untracked session asked %d more times", n-asked)
	}
	if got := streamEvents(t, r.js); len(got) != 3 {
		t.Errorf("events while untracked: %v", got[3:])
	}
	m.track("bucket", []string{session}, nil)
	eventually(t, "caught up", func() bool { return len(streamEvents(t, r.js)) == 5 })
	want := []string{"session.started", "participant.joined a@1", "participant.joined b@2", "participant.left a@1 until 2", "participant.joined c@2"}
	if d := cmp.Diff(want, streamEvents(t, r.js)); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

// TestManagerUntrackMidPoll: a session untracked while its poll is in flight, then
// tracked again, by the same origin and by a room that finds it, is never polled by
// two loops at once, and is polled again once the first poll returns.
func TestManagerUntrackMidPoll(t *testing.T) {
	w := newWorld(t, "a")
	var inflight, most atomic.Int32
	gate := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, session) {
			n := inflight.Add(1)
			defer inflight.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			<-gate
		}
		w.api.ServeHTTP(rw, req)
	}))
	defer srv.Close()
	r := newRig(t, w, true)
	c := poller.NewClient(poller.ClientConfig{BaseURL: srv.URL, Tokens: w.tokens, RequestTimeout: time.Minute})
	m := r.manage(t, func(cfg *poller.ManagerConfig) { cfg.Poller, cfg.Rooms = r.with(c), c })
	m.track("bucket", []string{session}, nil)
	eventually(t, "a poll in flight", func() bool { return inflight.Load() == 1 })
	m.track("bucket", nil, nil)
	m.track("bucket", []string{session}, nil)
	m.track("bucket", nil, nil)
	m.track("config", nil, []string{room}) // the room lists the session as ongoing
	time.Sleep(300 * time.Millisecond)
	close(gate)
	eventually(t, "polled after the release", func() bool { return len(streamEvents(t, r.js)) == 2 })
	want := []string{"room " + room + " following config", "session " + session + " polling room " + room}
	eventually(t, "the session followed for its room", func() bool { return cmp.Equal(want, m.status(t)) })
	if n := most.Load(); n != 1 {
		t.Errorf("%d polls of one session at once, want 1", n)
	}
}

// usage returns the number of goroutines, and the heap in use by allocations with
// package poller on their stack. It needs runtime.MemProfileRate = 1 from before
// those allocations.
func usage() (goroutines int, heap int64) {
	// The profile is as of the last completed GC; the one before it may still count.
	runtime.GC()
	runtime.GC()
	var records []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, false)
	for {
		records = make([]runtime.MemProfileRecord, n+50)
		var ok bool
		if n, ok = runtime.MemProfile(records, false); ok {
			records = records[:n]
			break
		}
	}
	for _, r := range records {
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			if strings.HasPrefix(f.Function, "github.com/rollcall/rollcall/poller.") {
				heap += r.InUseBytes()
				break
			}
			if !more {
				break
			}
		}
	}
	return runtime.NumGoroutine(), heap
}

// TestManagerEndedByList: a session whose room's list shows it ended, while its own
// active list no longer says so (a 404, or no session document), is ended from its
// state: a left for everyone present, then session.ended.
func TestManagerEndedByList(t *testing.T) {
	tests := []struct {
		name  string
		fault sim.Fault
	}{
		{"404", sim.Fault{PathContains: "/participants/active", Status: 404, Body: `{"statusCode":404}`, Times: 1000}},
		{"no session document", sim.Fault{PathContains: "/participants/active", Status: 200, Body: `{"pageInfo":{"currentPage":1,"perPage":2,"lastPage":1,"total":0},"data":[]}`, Times: 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			live := w.api.NextSession(room)
			w.api.Join(live, "a", "name-a")
			w.api.Join(live, "b", "name-b")
			r := newRig(t, w, true)
			m := r.manage(t, nil)
			m.track("config", nil, []string{room})
			eventually(t, "joins", func() bool { return len(streamEvents(t, r.js)) == 3 })
			w.api.InjectFault(tt.fault)
			w.api.EndSession(live)
			eventually(t, "the session ended", func() bool { return len(m.status(t)) == 1 })
			want := []string{"session.started", "participant.joined a@0", "participant.joined b@0", "participant.left a@0 until 0", "participant.left b@0 until 0", "session.ended"}
			if d := cmp.Diff(want, streamEvents(t, r.js)); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
		})
	}
}

// TestManagerUnfinished: a session whose state was left unfinished (followed before
// a restart) and that the room's list shows ended is polled once more: its lefts and
// session.ended are published. Ended sessions without such a state are not polled.
func TestManagerUnfinished(t *testing.T) {
	w := newWorld(t)
	old := w.api.NextSession(room)
	w.api.EndSession(old)
	w.clock.Add(time.Minute)
	live := w.api.NextSession(room)
	w.api.Join(live, "a", "name-a")
	r := newRig(t, w, true)
	reqs := r.logged(t)
	if _, err := r.poller.Poll(context.Background(), quiet(), live); err != nil { // before the "restart"
		t.Fatal(err)
	}
	r.newEvents(t)
	w.clock.Add(time.Minute)
	w.api.NextSession(room) // live ends while no one looks
	unfinished, err := r.store.Unfinished(context.Background())
	if err != nil || !cmp.Equal(unfinished, []string{live}) {
		t.Fatalf("Unfinished = %v, %v; want [%s]", unfinished, err, live)
	}
	m := r.manage(t, func(c *poller.ManagerConfig) { c.Unfinished = unfinished })
	m.track("config", nil, []string{room})
	eventually(t, "the live session ended, the next started", func() bool { return len(r.newEventsPeek(t)) == 3 })
	// The next session, which no one joined, has only its start; the two sessions'
	// events may interleave.
	got := slices.DeleteFunc(r.newEvents(t), func(e string) bool { return e == "session.started" })
	if d := cmp.Diff([]string{"participant.left a@60 until 120", "session.ended"}, got); d != "" {
		t.Errorf("events of the session that ended (-want +got):\n%s", d)
	}
	if n := reqs.count(old); n != 0 {
		t.Errorf("an ended session with no state polled %d times", n)
	}
	if got, _ := r.store.Unfinished(context.Background()); slices.Contains(got, live) {
		t.Errorf("still unfinished after its end: %v", got)
	}
}

// TestManagerSessionBetweenListings: a room's session that starts, has two
// participants come and go, and ends, all between two listings of the room, is
// published whole from its list of all participants: started, each stint joined and
// left, reconciled, at its own times, then ended; once, however many listings show
// it ended after. The sessions that ended before the room was first listed publish
// nothing and are never polled, whether the room had some or none.
func TestManagerSessionBetweenListings(t *testing.T) {
	for _, history := range []int{0, 2} { // ended sessions before the first listing: one page at 2 a page
		t.Run(fmt.Sprintf("%d sessions before", history), func(t *testing.T) {
			const r1 = "room-1"
			w := newWorld(t)
			var old []string
			for range history {
				w.clock.Add(time.Minute)
				s := w.api.NextSession(r1)
				w.api.Join(s, "a", "name-a")
				w.api.EndSession(s)
				old = append(old, s)
			}
			r := newRig(t, w, true)
			// The test holds listing while it changes the world: a listing sees all of
			// the change or none of it.
			var listing sync.Mutex
			reqs := &requestLog{}
			srv := httptest.NewServer(reqs.wrap(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
				if req.URL.Query().Has("roomId") {
					listing.Lock()
					defer listing.Unlock()
				}
				w.api.ServeHTTP(rw, req)
			})))
			t.Cleanup(srv.Close)
			r.url = srv.URL
			r.poller = r.with(r.client(2))
			var logs testkit.Buffer
			m := r.manage(t, func(c *poller.ManagerConfig) { c.Log = slog.New(slog.NewTextHandler(&logs, nil)) })
			m.track("config", nil, []string{r1})
			// The first listing is done, and handed on, once the second is asked.
			eventually(t, "listed twice", func() bool { return reqs.count("roomId=") >= 2 })

			listing.Lock()
			w.clock.Add(time.Minute) // 60 s after the last session began
			short := w.api.NextSession(r1)
			w.clock.Add(time.Second)
			w.api.Join(short, "a", "name-a")
			w.clock.Add(time.Second)
			w.api.Join(short, "b", "name-b")
			w.clock.Add(time.Second)
			w.api.Leave(short, "a")
			w.clock.Add(time.Second)
			w.api.Leave(short, "b")
			w.clock.Add(time.Second)
			w.api.EndSession(short)
			listing.Unlock()

			at := 60 * (history + 1) // seconds from the world's start to short's
			want := []string{
				"session.started",
				fmt.Sprintf("participant.joined a@%d reconciled", at+1),
				fmt.Sprintf("participant.joined b@%d reconciled", at+2),
				fmt.Sprintf("participant.left a@%d until %d reconciled", at+1, at+3),
				fmt.Sprintf("participant.left b@%d until %d reconciled", at+2, at+4),
				"session.ended",
			}
			eventually(t, "the short session published", func() bool { return len(sessionEvents(t, r.js, short)) == len(want) })
			asked, listed := reqs.count(short), reqs.count("roomId=")
			eventually(t, "listed three times more", func() bool { return reqs.count("roomId=") >= listed+3 })
			if d := cmp.Diff(want, streamEvents(t, r.js)); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
			if n := reqs.count(short) - asked; n != 0 {
				t.Errorf("the short session asked %d more times once published", n)
			}
			if n := strings.Count(logs.String(), "began and ended between two listings"); n != 1 {
				t.Errorf("said %d times that the short session was missed, want once:\n%s", n, logs.String())
			}
			for _, s := range old {
				if n := reqs.count(s); n > 0 {
					t.Errorf("session %s, which ended before the room was first listed, polled %d times", s, n)
				}
			}
		})
	}
}

// TestManagerSettlesWhenStopping: the outbox of a session's last cycle with changes
// waits in its state for the next poll's write; a loop that stops, untracked or with
// the worker, writes its state without it: nothing to send again on the next start.
func TestManagerSettlesWhenStopping(t *testing.T) {
	for _, how := range []string{"untracked", "stopped"} {
		t.Run(how, func(t *testing.T) {
			w := newWorld(t, "a", "b")
			r := newRig(t, w, true)
			m := r.manage(t, func(c *poller.ManagerConfig) { c.Schedule = every(time.Hour) }) // no second poll
			m.track("bucket", []string{session}, nil)
			eventually(t, "joins", func() bool { return len(streamEvents(t, r.js)) == 3 })
			if st, _, err := r.store.Load(context.Background(), session); err != nil || st.Outbox == nil {
				t.Fatalf("state after the first poll: outbox %v, %v; want it there until the next write", st.Outbox, err)
			}
			if how == "untracked" {
				m.track("bucket", nil, nil)
				eventually(t, "untracked", func() bool { return len(m.status(t)) == 0 })
			} else {
				m.stop()
			}
			st, _, err := r.store.Load(context.Background(), session)
			if err != nil || st.Outbox != nil || len(st.Present) != 2 {
				t.Errorf("state once the loop stopped: %+v, %v; want a and b present, and no outbox", st, err)
			}
		})
	}
}
