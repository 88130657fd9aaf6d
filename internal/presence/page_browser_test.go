package presence_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/sim"
)

// chromium is the system's Chromium, for chromedp, which is never to download one.
// Without one the browser test is skipped, but not in CI (CI=true), whose .ci/run
// installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium on PATH: CI must run the browser test (.ci/run installs Debian's chromium)")
	}
	t.Skip("no Chromium on PATH (apt-get install chromium): the browser test is skipped")
	return ""
}

// browserTab starts a headless Chromium with one tab, closed when the test ends. It
// fails the test if a script throws or opens a dialog (alert) in it.
func browserTab(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // Chromium refuses root (CI containers) without it; the page is the test's own
		chromedp.WindowSize(1100, 760))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	var mu sync.Mutex
	var problems []string
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			x := ev.ExceptionDetails
			what := x.Text
			if x.Exception != nil {
				what += " " + x.Exception.Description
			}
			problems = append(problems, fmt.Sprintf("a script threw at %d:%d: %s", x.LineNumber, x.ColumnNumber, what))
		case *page.EventJavascriptDialogOpening:
			problems = append(problems, "a dialog opened: "+ev.Message)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Error(p)
		}
	})
	return ctx
}

// dom is what the page shows, as its markup contract says.
type dom struct {
	Sessions map[string][]string          `json:"sessions"` // data-session-id: its data-participant-id values, sorted
	Rooms    map[string]string            `json:"rooms"`    // data-session-id: its data-room-id
	Joined   map[string]map[string]string `json:"joined"`   // data-session-id: participant: data-joined-at
	Names    map[string]string            `json:"names"`    // data-participant-id: the name shown
	Feed     string                       `json:"feed"`     // #feed's data-state
	Images   int                          `json:"images"`   // img elements: none, whatever the names
	Loaded   bool                         `json:"loaded"`   // the mark set once loaded is there: not reloaded
	Received []uint64                     `json:"received"` // the ids of the feed's events the page took, in order
}

// logFeed records, in every document of the tab, the id of each event of the feed
// that the page's script is given, before it is.
const logFeed = `window.feedReceived = [];
window.EventSource = class extends window.EventSource {
	addEventListener(type, f, opts) {
		return super.addEventListener(type, (m) => { window.feedReceived.push(Number(m.lastEventId)); f(m); }, opts);
	}
};`

const readDOM = `(() => {
	const d = {sessions: {}, rooms: {}, joined: {}, names: {}, feed: document.getElementById("feed").dataset.state,
		images: document.querySelectorAll("img").length, loaded: window.loadedOnce === true, received: window.feedReceived};
	for (const s of document.querySelectorAll("[data-session-id]")) {
		const ps = [...s.querySelectorAll("[data-participant-id]")];
		d.sessions[s.dataset.sessionId] = ps.map((p) => p.dataset.participantId).sort();
		d.rooms[s.dataset.sessionId] = s.dataset.roomId;
		d.joined[s.dataset.sessionId] = Object.fromEntries(ps.map((p) => [p.dataset.participantId, p.dataset.joinedAt]));
		for (const p of ps) d.names[p.dataset.participantId] = p.querySelector(".name").textContent;
	}
	return d;
})()`

func (b *browserPage) read(t *testing.T) dom {
	t.Helper()
	d, err := chromedp.Run(b.ctx, chromedp.Evaluate[dom](readDOM))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// browserPage is the presence page open in a tab.
type browserPage struct{ ctx context.Context }

// until polls the page until cond holds, for at most d, and returns when it first
// held; it fails the test with what the page showed last if it does not.
func (b *browserPage) until(t *testing.T, d time.Duration, what string, cond func(dom) bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := b.read(t)
		if cond(got) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s; the page shows %+v", d, what, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// presentRig is the simulator over HTTP, an embedded NATS server and the worker,
// which the test stops and starts again on the same addresses.
type presentRig struct {
	api  *sim.Server
	cfg  worker.Config
	js   jetstream.JetStream
	logs testkit.Buffer
	stop func()
	live []string // the sessions that have not ended, as the test made them
	url  string   // the page, on the worker's http.listen
}

func newPresentRig(t *testing.T) *presentRig {
	t.Helper()
	r := &presentRig{api: sim.New(sim.Config{APIKey: "page-key", Secret: "page-secret"})}
	srv := httptest.NewServer(r.api)
	t.Cleanup(srv.Close)
	ns := natstest.Start(t)
	r.js = natstest.JetStream(t, ns.ClientURL())
	cfg := worker.Default()
	cfg.VideoSDK.BaseURL, cfg.VideoSDK.APIKey, cfg.VideoSDK.Secret = srv.URL, "page-key", "page-secret"
	cfg.VideoSDK.RateLimit = 0
	cfg.Poll.Schedule, cfg.Poll.DiscoverSchedule = "@every 1s", "@every 1s"
	cfg.NATS.URL = ns.ClientURL()
	cfg.HTTP.Listen = testkit.FreeAddr(t) // the same after a restart, as a worker's is
	for _, id := range []string{"r1", "r2", "r3"} {
		cfg.Rooms = append(cfg.Rooms, worker.Room{ID: id})
	}
	r.cfg, r.url = cfg, "http://"+cfg.HTTP.Listen+"/"
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the worker's log:\n%s", r.logs.String())
		}
	})
	return r
}

// start runs the worker until stop, or the end of the test.
func (r *presentRig) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := worker.New(ctx, r.cfg, worker.NewLogger(&r.logs, worker.Log{Level: "info", Format: "text"}))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	r.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the worker: %v", err)
		}
		w.Close() // which ends the feed's responses
	})
	t.Cleanup(r.stop)
}

// truth is who the simulator has present in each session that has not ended.
func (r *presentRig) truth() map[string][]string {
	out := make(map[string][]string)
	for _, s := range r.live {
		ids := r.api.Active(s)
		slices.Sort(ids)
		out[s] = append([]string{}, ids...)
	}
	return out
}

// stintStart is when the participant's last stint in the session began, as events
// write it.
func (r *presentRig) stintStart(session, participant string) string {
	var start time.Time
	for _, s := range r.api.Stints(session) {
		if s.ParticipantID == participant {
			start = s.Start
		}
	}
	return start.UTC().Format(events.TimeLayout)
}

// storedAt is when the stream stored the last event of this type about the
// participant (or the session, for "") of the session.
func (r *presentRig) storedAt(t *testing.T, typ, session, participant string) time.Time {
	t.Helper()
	msgs := natstest.Messages(t, r.js, "ROLLCALL")
	for _, m := range slices.Backward(msgs) {
		var e struct {
			Type string `json:"type"`
			Data struct {
				SessionID     string `json:"sessionId"`
				ParticipantID string `json:"participantId"`
			} `json:"data"`
		}
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		if e.Type == typ && e.Data.SessionID == session && e.Data.ParticipantID == participant {
			return m.Time
		}
	}
	t.Fatalf("no %s of %q in session %s in the stream", typ, participant, session)
	return time.Time{}
}

// TestPageInBrowser drives the presence page in headless Chromium against the
// worker, the simulator over HTTP and an embedded NATS server. The page shows
// exactly the simulator's present participants per session, first as the server
// renders it, then as it follows the feed: joins, leaves, a rejoin, a new session
// and an ended one, each within a second of its event reaching the stream, without
// a reload. It survives a restart of the worker, resuming where it was: no
// participant shows twice, and what changed meanwhile shows. A name that is markup
// shows as text.
func TestPageInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a browser and the worker for seconds")
	}
	tab := browserTab(t)
	r := newPresentRig(t)
	api := r.api
	api.StartSession("s1", "r1")
	api.Join("s1", "ada", "Ada Lovelace")
	api.Join("s1", "grace", "Grace Hopper")
	api.JoinWith("s1", sim.Participant{ID: "rec", Name: "Cloud recorder", SDKType: "recorder"})
	api.StartSession("s2", "r2")
	api.Join("s2", "alan", "Alan Turing")
	api.JoinWith("s2", sim.Participant{ID: "view", Name: "Livestream viewer", Mode: "VIEWER"})
	r.live = []string{"s1", "s2"}
	r.start(t)

	// Without JavaScript: the server's rendering.
	testkit.Eventually(t, 15*time.Second, "the server renders everyone present", func() bool {
		resp, body := getPage(t, r.url)
		got := renderedSessions(body)
		for s := range got {
			got[s] = got[s][1:] // the room
			slices.Sort(got[s])
		}
		return resp.StatusCode == 200 && cmp.Equal(got, r.truth())
	})

	b := &browserPage{ctx: tab}
	err := chromedp.Do(tab,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: logFeed})
			return err
		}),
		chromedp.Navigate(r.url),
		chromedp.Evaluate[chromedp.Void](`window.loadedOnce = true`))
	if err != nil {
		t.Fatal(err)
	}
	shows := func(want map[string][]string) func(dom) bool {
		return func(d dom) bool { return d.Loaded && d.Feed == "live" && cmp.Equal(d.Sessions, want) }
	}
	b.until(t, 5*time.Second, "the page live, with everyone present", shows(r.truth()))
	rendered, err := chromedp.Run(tab, chromedp.Evaluate[uint64](`Number(document.querySelector("main").dataset.lastEventId)`))
	if err != nil {
		t.Fatal(err)
	}
	if d := b.read(t); d.Rooms["s1"] != "r1" || d.Rooms["s2"] != "r2" {
		t.Errorf("data-room-id: %v", d.Rooms)
	}

	// within applies a change to the simulator, waits for the page to show the
	// simulator's truth, and checks that it did within a second of the change's
	// event (of this type, about this participant, or the session for "") reaching
	// the stream.
	within := func(what, typ, participant string, change func() (session string), also func(dom) bool) {
		t.Helper()
		session := change()
		want := r.truth()
		seen := b.until(t, 15*time.Second, what, func(d dom) bool { return shows(want)(d) && (also == nil || also(d)) })
		if lag := seen.Sub(r.storedAt(t, typ, session, participant)); lag > time.Second {
			t.Errorf("%s: the page showed it %v after its event reached the stream, want within a second", what, lag)
		}
	}
	within("a join", events.TypeJoined, "katherine", func() string { api.Join("s1", "katherine", "Katherine Johnson"); return "s1" }, nil)
	if path := os.Getenv("ROLLCALL_SCREENSHOT"); path != "" {
		// While the join is highlighted.
		png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	within("a leave", events.TypeLeft, "grace", func() string { api.Leave("s1", "grace"); return "s1" }, nil)
	within("a rejoin between two polls", events.TypeJoined, "ada", func() string {
		api.Leave("s1", "ada")
		api.Join("s1", "ada", "Ada Lovelace")
		return "s1"
	}, func(d dom) bool { return d.Joined["s1"]["ada"] == r.stintStart("s1", "ada") })
	within("a name that is markup", events.TypeJoined, "x", func() string { api.Join("s2", "x", xssName); return "s2" },
		func(d dom) bool { return d.Names["x"] == xssName })
	within("an ended session", events.TypeSessionEnded, "", func() string {
		api.EndSession("s2")
		r.live = []string{"s1"}
		return "s2"
	}, nil)
	var s3 string
	within("a new session", events.TypeSessionStarted, "", func() string {
		s3 = api.NextSession("r3")
		r.live = append(r.live, s3)
		return s3
	}, nil)

	// A restart: the page says it is reconnecting, then resumes after the last event
	// it applied, and shows what changed while the worker was away, once.
	r.stop()
	b.until(t, 5*time.Second, "the page says it reconnects", func(d dom) bool { return d.Feed == "reconnecting" })
	api.Leave("s1", "katherine")
	api.Join("s1", "grace", "Grace Hopper")
	api.Join(s3, "hedy", "Hedy Lamarr")
	r.start(t)
	b.until(t, 15*time.Second, "the page live again, as the simulator is", shows(r.truth()))
	d := b.read(t)
	if d.Images != 0 {
		t.Errorf("%d img elements: a name became markup", d.Images)
	}
	// Each event once, in the stream's order, from after the one the server
	// rendered up to, across the restart: the page resumed, and repeated nothing.
	if len(d.Received) == 0 || d.Received[0] <= rendered || !slices.IsSorted(d.Received) || len(slices.Compact(slices.Clone(d.Received))) != len(d.Received) {
		t.Errorf("the events the page took, by id: %v; the server rendered up to %d", d.Received, rendered)
	}
}
