package presence

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/httpserver"
	"github.com/rollcall/rollcall/internal/metrics"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/publisher"
)

const (
	feedStream = "ROLLCALL"
	feedPrefix = "videosdk"
)

// feedRig is a Feed of a stream on an embedded server, served over HTTP with
// rollcall's limits.
type feedRig struct {
	js   jetstream.JetStream
	feed *Feed
	url  string
	reg  *prometheus.Registry
	n    int // events published, for distinct ids
}

func newFeedRig(t testing.TB, opts FeedOptions) *feedRig {
	t.Helper()
	ns := natstest.Start(t)
	r := &feedRig{js: natstest.JetStream(t, ns.ClientURL()), reg: prometheus.NewRegistry()}
	err := publisher.EnsureStream(context.Background(), r.js, publisher.StreamConfig{
		Name: feedStream, Prefix: feedPrefix, Replicas: 1, DuplicateWindow: time.Minute, MaxAge: time.Hour,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.start(t, opts)
	return r
}

// start serves a new Feed of the rig's stream, as a restarted worker would.
func (r *feedRig) start(t testing.TB, opts FeedOptions) {
	t.Helper()
	opts.Metrics = metrics.New(nil)
	r.reg = prometheus.NewRegistry()
	r.reg.MustRegister(opts.Metrics.FeedClients, opts.Metrics.FeedDropped)
	r.feed = NewFeed(r.js, feedStream, feedPrefix, opts)
	srv := httptest.NewUnstartedServer(r.feed)
	srv.Config = httpserver.New(r.feed, log.New(io.Discard, "", 0))
	srv.Start()
	t.Cleanup(func() {
		r.feed.Close() // ends the responses, which srv.Close waits for
		srv.Close()
	})
	r.url = srv.URL
}

// publish stores an event as rollcall's publisher writes it and returns its
// sequence.
func (r *feedRig) publish(t testing.TB, kind diff.Kind, room, session string) uint64 {
	t.Helper()
	r.n++
	at := time.Date(2026, 12, 1, 10, 0, r.n, 0, time.UTC)
	snap := diff.Snapshot{SessionID: session, RoomID: room, Start: at}
	e := publisher.NewEvent(snap, at, diff.Change{Kind: kind, Participant: diff.Participant{
		ID: fmt.Sprintf("p%d", r.n), Name: "Ada\nLovelace <b>", JoinedAt: at, Mode: "CONFERENCE",
		DeviceInfo: json.RawMessage(`{"sdkType": "prebuilt"}`),
	}})
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return r.publishRaw(t, events.Subject(feedPrefix, e.Type, room, session), body)
}

func (r *feedRig) publishRaw(t testing.TB, subject string, body []byte) uint64 {
	t.Helper()
	ack, err := r.js.Publish(context.Background(), subject, body)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// value is a metric's value, as /metrics shows it.
func (r *feedRig) value(t testing.TB, name string) float64 {
	t.Helper()
	families, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			m := f.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// waitUntil waits until cond holds, for up to 10 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sseEvent is one event of the feed as a client reads it.
type sseEvent struct {
	ID, Event, Data string
}

// sseReader reads a response of the feed.
type sseReader struct {
	resp     *http.Response
	cancel   context.CancelFunc
	events   chan sseEvent
	comments chan string
	done     chan struct{} // closed at the end of the response
}

// get requests the feed at path (with its query) with lastEventID as the
// Last-Event-ID header ("" for none), and reads it until the test ends.
func (r *feedRig) get(t testing.TB, path, lastEventID string) *sseReader {
	t.Helper()
	resp, cancel := r.request(t, path, lastEventID)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", path, resp.Status, body)
	}
	c := &sseReader{resp: resp, cancel: cancel, events: make(chan sseEvent, 1000), comments: make(chan string, 1000), done: make(chan struct{})}
	go c.read()
	t.Cleanup(c.close)
	return c
}

func (r *feedRig) request(t testing.TB, path, lastEventID string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, cancel
}

// read parses the response as the SSE spec says an EventSource does.
func (c *sseReader) read() {
	defer close(c.done)
	sc := bufio.NewScanner(c.resp.Body)
	sc.Buffer(nil, 1<<20)
	var e sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			if line == "" && data != nil {
				e.Data = strings.Join(data, "\n")
				c.events <- e
				e, data = sseEvent{}, nil
			} else if line != "" {
				c.comments <- value
			}
		case "id":
			e.ID = value
		case "event":
			e.Event = value
		case "data":
			data = append(data, value)
		}
	}
}

func (c *sseReader) close() {
	c.cancel()
	c.resp.Body.Close()
	<-c.done
}

// next is the next event, within 10 s.
func (c *sseReader) next(t testing.TB) sseEvent {
	t.Helper()
	select {
	case e := <-c.events:
		return e
	case <-c.done:
		t.Fatal("the response ended")
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sseEvent{}
}

// ids reads n events and returns their ids.
func (c *sseReader) ids(t testing.TB, n int) []uint64 {
	t.Helper()
	var ids []uint64
	for range n {
		id, err := strconv.ParseUint(c.next(t).ID, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// none checks that no event comes within a short while.
func (c *sseReader) none(t testing.TB) {
	t.Helper()
	select {
	case e := <-c.events:
		t.Fatalf("unexpected event %+v", e)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestFeedEvents: each event of the stream is one SSE event whose id is its stream
// sequence, whose event is its CloudEvents type, and whose data is the message as
// the stream holds it, on one line; with the headers an event stream needs.
func TestFeedEvents(t *testing.T) {
	r := newFeedRig(t, FeedOptions{})
	c := r.get(t, "/events", "")
	for h, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive",
	} {
		if got := c.resp.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	kinds := []diff.Kind{diff.SessionStarted, diff.Joined, diff.Left, diff.SessionEnded}
	var want []sseEvent
	for _, k := range kinds {
		seq := r.publish(t, k, "r1", "s1")
		stream, err := r.js.Stream(context.Background(), feedStream)
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		var e events.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		want = append(want, sseEvent{ID: strconv.FormatUint(seq, 10), Event: e.Type, Data: string(m.Data)})
	}
	var got []sseEvent
	for range kinds {
		got = append(got, c.next(t))
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	types := []string{events.TypeSessionStarted, events.TypeJoined, events.TypeLeft, events.TypeSessionEnded}
	for i, e := range got {
		if e.Event != types[i] || strings.Contains(e.Data, "\n") {
			t.Errorf("event %d: type %s, data %q; want %s on one line", i, e.Event, e.Data, types[i])
		}
	}
}

// TestFeedMultilineData: a message that is not compact JSON is split into data lines
// that an EventSource joins back; one without a type has no event field.
func TestFeedMultilineData(t *testing.T) {
	r := newFeedRig(t, FeedOptions{})
	c := r.get(t, "/events", "")
	r.publishRaw(t, feedPrefix+".other", []byte("{\n  \"type\": \"x.y\"\r\n}"))
	r.publishRaw(t, feedPrefix+".other", []byte("a\rb\n\nc"))
	got := []sseEvent{c.next(t), c.next(t)}
	want := []sseEvent{{ID: "1", Event: "x.y", Data: "{\n  \"type\": \"x.y\"\n}"}, {ID: "2", Data: "a\nb\n\nc"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

// TestFeedStart: with no Last-Event-ID, new events only; with one, the events after
// it, each once, then the new ones; 0 is the stream's first. Whether the events
// missed are still in memory or have to be read from the stream.
func TestFeedStart(t *testing.T) {
	for _, recent := range []int{0, 2} {
		t.Run(fmt.Sprintf("recent=%d", recent), func(t *testing.T) {
			r := newFeedRig(t, FeedOptions{Recent: recent})
			for range 3 {
				r.publish(t, diff.Joined, "r1", "s1")
			}
			fresh := r.get(t, "/events", "")
			seq := r.publish(t, diff.Joined, "r1", "s1")
			if got := fresh.ids(t, 1); got[0] != seq {
				t.Errorf("without Last-Event-ID: first id %d, want the new event's, %d", got[0], seq)
			}
			all := r.get(t, "/events", "0")
			if d := cmp.Diff([]uint64{1, 2, 3, 4}, all.ids(t, 4)); d != "" {
				t.Errorf("Last-Event-ID 0 (-want +got):\n%s", d)
			}
			for range 4 {
				r.publish(t, diff.Left, "r1", "s1")
			}
			// A browser reconnecting after event 3, the events after 4 being
			// published meanwhile, and the new ones after it.
			back := r.get(t, "/events", "3")
			seq = r.publish(t, diff.Joined, "r1", "s1")
			if d := cmp.Diff([]uint64{4, 5, 6, 7, 8, 9}, back.ids(t, 6)); d != "" || seq != 9 {
				t.Errorf("Last-Event-ID 3 (-want +got):\n%s", d)
			}
			back.none(t)
			// The query parameter, for an EventSource's first request; the header,
			// which a reconnecting one sends, wins.
			query := r.get(t, "/events?lastEventId=7", "")
			header := r.get(t, "/events?lastEventId=2", "7")
			for name, c := range map[string]*sseReader{"query": query, "header": header} {
				if d := cmp.Diff([]uint64{8, 9}, c.ids(t, 2)); d != "" {
					t.Errorf("%s: Last-Event-ID 7 (-want +got):\n%s", name, d)
				}
			}
			if d := cmp.Diff([]uint64{5, 6, 7, 8, 9}, all.ids(t, 5)); d != "" {
				t.Errorf("the client from 0 goes on (-want +got):\n%s", d)
			}
		})
	}
}

// TestFeedRestart: a new feed (a restarted worker) serves clients that resume from
// its stream's latest events from memory, with no consumer of their own; one from
// further back gets one, and both go on with the new events.
func TestFeedRestart(t *testing.T) {
	r := newFeedRig(t, FeedOptions{Recent: 3})
	for range 5 {
		r.publish(t, diff.Joined, "r1", "s1")
	}
	consumers := func() int {
		s, err := r.js.Stream(context.Background(), feedStream)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.Consumers
	}
	near := r.get(t, "/events", "2")
	if d := cmp.Diff([]uint64{3, 4, 5}, near.ids(t, 3)); d != "" {
		t.Errorf("Last-Event-ID 2 (-want +got):\n%s", d)
	}
	if n := consumers(); n != 1 {
		t.Errorf("%d consumers, want the feed's one", n)
	}
	far := r.get(t, "/events", "1")
	if d := cmp.Diff([]uint64{2, 3, 4, 5}, far.ids(t, 4)); d != "" {
		t.Errorf("Last-Event-ID 1 (-want +got):\n%s", d)
	}
	if n := consumers(); n != 2 {
		t.Errorf("%d consumers, want the feed's and one to catch up", n)
	}
	seq := r.publish(t, diff.Left, "r1", "s1")
	for _, c := range []*sseReader{near, far} {
		if got := c.ids(t, 1); got[0] != seq {
			t.Errorf("next id %d, want %d", got[0], seq)
		}
	}
}

// TestFeedFilters: ?room= and ?session= take one room's or one session's events, by
// their IDs, which need escaping in subjects; the events in memory, those read from
// the stream and the new ones alike.
func TestFeedFilters(t *testing.T) {
	rooms := []string{"room.a b", "room-2"}
	sessions := []string{"s.1", "s 2"}
	for _, recent := range []int{0, 3} {
		t.Run(fmt.Sprintf("recent=%d", recent), func(t *testing.T) {
			r := newFeedRig(t, FeedOptions{Recent: recent})
			var seqs [2][2][]uint64 // by room, session
			publish := func() {
				for i, room := range rooms {
					for j, s := range sessions {
						seqs[i][j] = append(seqs[i][j], r.publish(t, diff.Joined, room, s))
					}
				}
				r.publishRaw(t, feedPrefix+".other", []byte(`{"type":"other"}`))
			}
			publish()
			cases := []struct {
				query string
				want  func() []uint64
			}{
				{"room=" + url.QueryEscape(rooms[0]), func() []uint64 { return mergeSeqs(seqs[0][0], seqs[0][1]) }},
				{"session=" + url.QueryEscape(sessions[1]), func() []uint64 { return mergeSeqs(seqs[0][1], seqs[1][1]) }},
				{"room=" + rooms[1] + "&session=" + url.QueryEscape(sessions[0]), func() []uint64 { return seqs[1][0] }},
			}
			clients := make([]*sseReader, len(cases))
			for i, tc := range cases {
				clients[i] = r.get(t, "/events?"+tc.query, "0")
			}
			publish()
			for i, tc := range cases {
				want := tc.want()
				if d := cmp.Diff(want, clients[i].ids(t, len(want))); d != "" {
					t.Errorf("%s (-want +got):\n%s", tc.query, d)
				}
				clients[i].none(t)
			}
		})
	}
}

// mergeSeqs merges two ascending lists.
func mergeSeqs(a, b []uint64) []uint64 {
	var out []uint64
	for len(a) > 0 || len(b) > 0 {
		if len(b) == 0 || len(a) > 0 && a[0] < b[0] {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}

// TestFeedHeartbeat: a quiet feed sends a comment every heartbeat interval.
func TestFeedHeartbeat(t *testing.T) {
	r := newFeedRig(t, FeedOptions{Heartbeat: 20 * time.Millisecond})
	c := r.get(t, "/events", "")
	for range 3 {
		select {
		case got := <-c.comments:
			if got != "heartbeat" {
				t.Errorf("comment %q, want heartbeat", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no heartbeat within 5s")
		}
	}
}

// TestFeedSlowClient: a client that stops reading is dropped once its queue is full,
// counted, and its response ended, however much is published after.
func TestFeedSlowClient(t *testing.T) {
	r := newFeedRig(t, FeedOptions{Queue: 4, WriteTimeout: time.Second})
	resp, cancel := r.request(t, "/events", "")
	defer cancel()
	defer resp.Body.Close()
	// 64 KiB events fill the sockets' buffers, then the queue.
	body := []byte(`{"type":"x","pad":"` + strings.Repeat("x", 64<<10) + `"}`)
	published := 0
	for r.value(t, "rollcall_sse_dropped_total") == 0 {
		if published++; published > 2000 {
			t.Fatalf("not dropped after %d events of 64 KiB", published-1)
		}
		r.publishRaw(t, feedPrefix+".other", body)
	}
	t.Logf("dropped after %d events", published)
	waitUntil(t, "no client left", func() bool { return r.value(t, "rollcall_sse_clients") == 0 })
	// Its response ends: what the sockets held, then the end.
	read := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, resp.Body) // an error or not, as long as it ends
		close(read)
	}()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("the dropped client's response did not end")
	}
	if n := r.value(t, "rollcall_sse_dropped_total"); n != 1 {
		t.Errorf("%v dropped, want 1", n)
	}
}

// TestFeedMaxClients: past MaxClients, 503 with Retry-After; a place freed is taken.
func TestFeedMaxClients(t *testing.T) {
	r := newFeedRig(t, FeedOptions{MaxClients: 2})
	first := r.get(t, "/events", "")
	r.get(t, "/events", "")
	resp, cancel := r.request(t, "/events", "")
	defer cancel()
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third client: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
	first.close()
	waitUntil(t, "one client left", func() bool { return r.value(t, "rollcall_sse_clients") == 1 })
	r.get(t, "/events", "")
}

// TestFeedBadRequests: a Last-Event-ID that is not a sequence, and a filter that is
// not an ID, are 400.
func TestFeedBadRequests(t *testing.T) {
	r := newFeedRig(t, FeedOptions{})
	long := strings.Repeat("x", diff.MaxIDLen+1)
	for _, tc := range []struct{ path, lastEventID string }{
		{"/events", "abc"},
		{"/events", "-1"},
		{"/events", "1.5"},
		{"/events", "18446744073709551616"},
		{"/events?lastEventId=x", ""},
		{"/events?room=", ""},
		{"/events?session=", ""},
		{"/events?room=" + long, ""},
		{"/events?session=ok&room=" + long, ""},
	} {
		resp, cancel := r.request(t, tc.path, tc.lastEventID)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s with Last-Event-ID %q: %s %s, want 400", tc.path, tc.lastEventID, resp.Status, body)
		}
	}
}

// TestFeedStreamGone: when the stream is deleted, the clients' responses end, and
// the feed answers 503 until it is there again.
func TestFeedStreamGone(t *testing.T) {
	r := newFeedRig(t, FeedOptions{})
	r.publish(t, diff.Joined, "r1", "s1")
	c := r.get(t, "/events", "0")
	c.next(t)
	if err := r.js.DeleteStream(context.Background(), feedStream); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the response did not end when the stream was deleted")
	}
	waitUntil(t, "503 without the stream", func() bool {
		resp, cancel := r.request(t, "/events", "")
		defer cancel()
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	err := publisher.EnsureStream(context.Background(), r.js, publisher.StreamConfig{
		Name: feedStream, Prefix: feedPrefix, Replicas: 1, DuplicateWindow: time.Minute, MaxAge: time.Hour,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	again := r.get(t, "/events", "")
	seq := r.publish(t, diff.Joined, "r1", "s1")
	if got := again.ids(t, 1); got[0] != seq {
		t.Errorf("id %d, want %d", got[0], seq)
	}
}

// TestFeedBrokerRestart: the NATS server restarts under the feed; a client that
// reconnects with the last id it got, as a browser does when its response ends,
// gets every event once.
func TestFeedBrokerRestart(t *testing.T) {
	dir := t.TempDir()
	ns := natstest.StartIn(t, dir, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	r := &feedRig{js: natstest.JetStream(t, ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))}
	err := publisher.EnsureStream(context.Background(), r.js, publisher.StreamConfig{
		Name: feedStream, Prefix: feedPrefix, Replicas: 1, DuplicateWindow: time.Minute, MaxAge: time.Hour,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.start(t, FeedOptions{})
	c := r.get(t, "/events", "0")
	r.publish(t, diff.Joined, "r1", "s1")
	r.publish(t, diff.Joined, "r1", "s1")
	got := c.ids(t, 2)
	ns.Shutdown()
	ns.WaitForShutdown()
	natstest.StartIn(t, dir, port)
	waitUntil(t, "reconnected", func() bool { return r.js.Conn().IsConnected() })
	r.publish(t, diff.Left, "r1", "s1")
	r.publish(t, diff.Left, "r1", "s1")
	for len(got) < 4 {
		select {
		case e := <-c.events:
			id, _ := strconv.ParseUint(e.ID, 10, 64)
			got = append(got, id)
		case <-c.done:
			t.Logf("reconnecting after %v", got)
			c = r.get(t, "/events", strconv.FormatUint(got[len(got)-1], 10))
		case <-time.After(10 * time.Second):
			t.Fatalf("got %v, then nothing for 10s", got)
		}
	}
	if d := cmp.Diff([]uint64{1, 2, 3, 4}, got); d != "" {
		t.Errorf("ids (-want +got):\n%s", d)
	}
	c.none(t)
}

// TestFeedStops: responses end when their clients go away and when the feed closes,
// and nothing is left running.
func TestFeedStops(t *testing.T) {
	r := newFeedRig(t, FeedOptions{Recent: 2})
	for range 5 {
		r.publish(t, diff.Joined, "r1", "s1")
	}
	before := goroutines()
	var clients []*sseReader
	for _, id := range []string{"", "0", "4", ""} { // new only, a catch-up, from memory
		clients = append(clients, r.get(t, "/events?room=r1", id))
	}
	r.publish(t, diff.Left, "r1", "s1")
	for _, c := range clients {
		c.next(t)
	}
	for _, c := range clients[:2] {
		c.close()
	}
	waitUntil(t, "two clients left", func() bool { return r.value(t, "rollcall_sse_clients") == 2 })
	r.feed.Close()
	for _, c := range clients[2:] {
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Fatal("a response did not end when the feed closed")
		}
	}
	resp, cancel := r.request(t, "/events", "")
	defer cancel()
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Close: %s, want 503", resp.Status)
	}
	// The HTTP client's idle connections and nats.go's short-lived goroutines
	// aside.
	http.DefaultClient.CloseIdleConnections()
	waitUntil(t, "back to the goroutines before", func() bool { return goroutines() <= before+2 })
}

// goroutines counts the goroutines but the embedded NATS server's, which keeps a
// stopped ordered consumer until its inactive threshold.
func goroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "nats-server/v2/server.") {
			count++
		}
	}
	return count
}
