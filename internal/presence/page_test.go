package presence_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/presence"
	"github.com/rollcall/rollcall/publisher"
)

const xssName = `<img src=x onerror=alert(1)>`

// pageOn serves the page of the stream and state bucket on js, for the rooms and
// sessions given as followed.
func pageOn(t *testing.T, js jetstream.JetStream, rooms, sessions []string) *httptest.Server {
	t.Helper()
	states, err := publisher.ReadStore(context.Background(), js, "ROLLCALL_STATE")
	if err != nil {
		t.Fatal(err)
	}
	page := presence.NewPage(presence.PageConfig{
		JetStream: js, Stream: "ROLLCALL", States: states, Log: slog.New(slog.DiscardHandler),
		Followed: func(context.Context) ([]string, []string, error) { return rooms, sessions, nil },
	})
	srv := httptest.NewServer(page)
	t.Cleanup(srv.Close)
	return srv
}

func getPage(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var (
	pageSessionRE     = regexp.MustCompile(`<article class="session" data-session-id="([^"]*)" data-room-id="([^"]*)">`)
	pageParticipantRE = regexp.MustCompile(`data-participant-id="([^"]*)"`)
)

// renderedSessions is, per data-session-id in body outside its <template> elements, its room
// and its data-participant-id values, in order.
func renderedSessions(body string) map[string][]string {
	body, _, _ = strings.Cut(body, "<template")
	out := make(map[string][]string)
	parts := pageSessionRE.Split(body, -1)
	for i, m := range pageSessionRE.FindAllStringSubmatch(body, -1) {
		ids := []string{"room " + m[2]}
		for _, p := range pageParticipantRE.FindAllStringSubmatch(parts[i+1], -1) {
			ids = append(ids, p[1])
		}
		out[m[1]] = ids
	}
	return out
}

// TestPageRendered: without JavaScript, the page shows each followed room, the live
// sessions of those rooms and the sessions followed alone, with who is present in
// the order they joined, as the markup contract says; a room with no live session
// shows as empty, an ended session and one no one follows do not show. A name is
// text, and the marks tell recorders and viewers. The page embeds the stream's last
// sequence, and allows no script but its own.
func TestPageRendered(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	js := natstest.JetStream(t, ns.ClientURL())
	if err := publisher.EnsureStream(ctx, js, publisher.StreamConfig{Name: "ROLLCALL", Prefix: "videosdk", Replicas: 1, DuplicateWindow: time.Minute, MaxAge: time.Hour},
		slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	store, err := publisher.OpenStore(ctx, js, "ROLLCALL_STATE", 1, time.Hour, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	who := func(id, name, mode, sdk string, joined int) diff.Participant {
		return diff.Participant{ID: id, Name: name, Mode: mode, SDKType: sdk, JoinedAt: at.Add(time.Duration(joined) * time.Minute)}
	}
	save := func(session string, st diff.State) {
		t.Helper()
		if _, err := store.Save(ctx, session, st, 0); err != nil {
			t.Fatal(err)
		}
	}
	save("s1", diff.State{RoomID: "r1", Started: true, Present: []diff.Participant{
		who("late", "Late", "CONFERENCE", "prebuilt", 5),
		who("x", xssName, "CONFERENCE", "prebuilt", 1),
		who("rec", "Recorder", "CONFERENCE", "recorder", 2),
		who("v", "Viewer", "VIEWER", "prebuilt", 3),
	}})
	save("s-alone", diff.State{RoomID: "r-other", Started: true, Present: []diff.Participant{who("a", "A", "CONFERENCE", "", 0)}})
	save("s-unfollowed", diff.State{RoomID: "r-gone", Started: true, Present: []diff.Participant{who("b", "B", "CONFERENCE", "", 0)}})
	save("s-ending", diff.State{RoomID: "r1", Started: true, Ended: true})
	pub := publisher.New(js, "videosdk", slog.New(slog.DiscardHandler))
	snap := diff.Snapshot{SessionID: "s1", RoomID: "r1", Status: "ongoing", Start: at}
	if err := pub.Publish(ctx, snap, at, []diff.Change{{Kind: diff.SessionStarted}, {Kind: diff.Joined, Participant: who("x", xssName, "CONFERENCE", "prebuilt", 1)}}); err != nil {
		t.Fatal(err)
	}

	srv := pageOn(t, js, []string{"r1", "r-empty"}, []string{"s-alone"})
	resp, body := getPage(t, srv.URL)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("%s, %s:\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	want := map[string][]string{
		"s1":      {"room r1", "x", "rec", "v", "late"},
		"s-alone": {"room r-other", "a"},
	}
	if d := cmp.Diff(want, renderedSessions(body)); d != "" {
		t.Errorf("sessions and who is present (-want +got):\n%s", d)
	}
	for _, room := range []string{"r-empty", "r-other", "r1"} {
		if !strings.Contains(body, `data-room="`+room+`"`) {
			t.Errorf("room %s not shown", room)
		}
	}
	if !regexp.MustCompile(`data-room="r-empty">\s*<h2>.*0 present</span></h2>\s*<p class="empty">No live session.</p>`).MatchString(body) {
		t.Errorf("the followed room with no live session is not shown empty:\n%s", body)
	}
	if strings.Contains(body, "<img") || !strings.Contains(body, `<span class="name">&lt;img src=x onerror=alert(1)&gt;</span>`) {
		t.Errorf("a name as markup, or not shown as text:\n%s", body)
	}
	for _, m := range []string{`data-mark="recorder">recorder`, `data-mark="viewer">viewer`} {
		if !strings.Contains(body, m) {
			t.Errorf("no %s in the page", m)
		}
	}
	if !strings.Contains(body, `data-last-event-id="2"`) {
		t.Errorf("the page does not embed the stream's last sequence, 2:\n%s", body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "default-src 'none'; script-src 'sha256-") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	var rules []struct{ Mark string }
	marks := regexp.MustCompile(`data-marks="([^"]*)"`).FindStringSubmatch(body)
	if marks == nil || json.Unmarshal([]byte(strings.ReplaceAll(marks[1], "&#34;", `"`)), &rules) != nil ||
		!slices.ContainsFunc(rules, func(r struct{ Mark string }) bool { return r.Mark == "bot" }) {
		t.Errorf("the marks for the script: %v", marks)
	}
}

// TestPageWithoutStream: before the worker has made the stream, the page says it
// cannot show who is present.
func TestPageWithoutStream(t *testing.T) {
	ctx := context.Background()
	js := natstest.JetStream(t, natstest.Start(t).ClientURL())
	if _, err := publisher.OpenStore(ctx, js, "ROLLCALL_STATE", 1, time.Hour, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	resp, body := getPage(t, pageOn(t, js, nil, nil).URL)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "stream not found") {
		t.Errorf("%s: %s", resp.Status, body)
	}
}
