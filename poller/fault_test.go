package poller_test

import (
	"cmp"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/sim"
)

// TestFaultMatrix: a session of a, b and c over two pages is polled once; then a
// leaves and d joins, and the next cycle meets a fault. Whatever the fault, that cycle
// publishes either every change or nothing, a clean cycle after it publishes the rest,
// and the stream ends up holding each event once.
func TestFaultMatrix(t *testing.T) {
	header := func(k, v string) http.Header { return http.Header{k: {v}} }
	html := header("Content-Type", "text/html")
	page2 := func(body string) sim.Fault { return sim.Fault{Page: 2, Status: 200, Body: body} }
	changes := []string{"participant.left a@1 until 10", "participant.joined d@10"}
	tests := []struct {
		name    string
		faults  []sim.Fault
		legacy  bool          // the cycle gets the older response shape
		timeout time.Duration // request_timeout; default 300ms
		wantErr string        // the faulty cycle fails with this; "" = the retries mend it
	}{
		{name: "429 with Retry-After", faults: []sim.Fault{{Status: 429, Header: header("Retry-After", "1")}}},
		{name: "429 without Retry-After", faults: []sim.Fault{{Status: 429}}},
		{name: "429 on every attempt", faults: []sim.Fault{{Status: 429, Times: 3}}, wantErr: "http 429"},
		{name: "500", faults: []sim.Fault{{Status: 500, Body: `{"statusCode":500}`}}},
		{name: "502 with an HTML page", faults: []sim.Fault{{Page: 2, Status: 502, Header: html, Body: "<html><h1>502 Bad Gateway</h1></html>"}}},
		{name: "503 on page 2 twice", faults: []sim.Fault{{Page: 2, Status: 503, Times: 2}}},
		{name: "503 on every attempt at page 2", faults: []sim.Fault{{Page: 2, Status: 503, Times: 3}}, wantErr: "http 503"},
		{name: "slower than request_timeout", faults: []sim.Fault{{Page: 2, Delay: 10 * time.Second}}},
		{name: "slower than request_timeout on every attempt", faults: []sim.Fault{{Delay: 10 * time.Second, Times: 3}}, wantErr: "deadline exceeded"},
		{name: "200 with a truncated body", faults: []sim.Fault{page2(`{"pageInfo":{"currentPage":2,"perPage":2,"last`)}, wantErr: "malformed page"},
		{name: "200 with a body that is not JSON", faults: []sim.Fault{page2("upstream connect error or disconnect/reset before headers")}, wantErr: "malformed page"},
		{name: "200 with an HTML error page", faults: []sim.Fault{{Page: 2, Status: 200, Header: html, Body: "<!DOCTYPE html><html><body>Service Unavailable</body></html>"}}, wantErr: "malformed page"},
		{name: "200 with a body over the cap", faults: []sim.Fault{page2(`{"data":[],"x":"` + strings.Repeat("x", poller.MaxBody) + `"}`)}, timeout: 10 * time.Second, wantErr: "response body over 16 MiB"},
		{name: "wrong types: total a string", faults: []sim.Fault{page2(`{"pageInfo":{"currentPage":2,"perPage":2,"lastPage":2,"total":"3"},"data":[]}`)}, wantErr: "malformed page"},
		{name: "wrong types: participants an object", faults: []sim.Fault{page2(`{"pageInfo":{"currentPage":2,"perPage":2,"lastPage":2,"total":3},"data":[{"_id":"` + session + `","participants":{"participantId":"d"}}]}`)}, wantErr: "malformed page"},
		{name: "a page past lastPage: empty, and total shrunk", faults: []sim.Fault{page2(`{"pageInfo":{"currentPage":2,"perPage":2,"lastPage":1,"total":2},"data":[]}`)}},
		{name: "the older shape: data an object, no pageInfo", legacy: true},
		{name: "401 for a token the server stopped accepting: minted afresh once", faults: []sim.Fault{{Status: 401, Body: `{"statusCode":401,"error":"Unauthorized","message":"Token is invalid or expired"}`}}},
		{name: "401 again with a fresh token", faults: []sim.Fault{{Status: 401, Times: 2}}, wantErr: "http 401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, "a", "b", "c")
			r := newRig(t, w, true)
			p := r.with(poller.NewClient(poller.ClientConfig{
				BaseURL: w.url, Tokens: w.tokens, PerPage: 2, RequestTimeout: cmp.Or(tt.timeout, 300*time.Millisecond),
				Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
			}))
			ctx := context.Background()
			if _, err := p.Poll(ctx, quiet(), session); err != nil {
				t.Fatal(err)
			}
			start := []string{"session.started", "participant.joined a@1", "participant.joined b@2", "participant.joined c@3"}
			if d := gocmp.Diff(start, r.newEvents(t)); d != "" {
				t.Fatalf("first cycle (-want +got):\n%s", d)
			}

			w.clock.Add(7 * time.Second) // 10
			w.api.Leave(session, "a")
			w.api.Join(session, "d", "name-d")
			for _, f := range tt.faults {
				w.api.InjectFault(f)
			}
			w.api.SetLegacyShape(tt.legacy)
			_, err := p.Poll(ctx, quiet(), session)
			want, wantAfter := changes, []string(nil)
			if tt.wantErr != "" {
				want, wantAfter = nil, changes
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("faulty cycle: %v, want an error containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("faulty cycle: %v", err)
			}
			if d := gocmp.Diff(want, r.newEvents(t)); d != "" {
				t.Errorf("faulty cycle (-want +got):\n%s", d)
			}

			w.api.SetLegacyShape(false)
			if _, err := p.Poll(ctx, quiet(), session); err != nil {
				t.Fatalf("clean cycle: %v", err)
			}
			if d := gocmp.Diff(wantAfter, r.newEvents(t)); d != "" {
				t.Errorf("clean cycle (-want +got):\n%s", d)
			}
			checkIDs(t, r.js)
		})
	}
}

// checkIDs fails if two messages of the stream carry the same event id.
func checkIDs(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range natstest.Messages(t, js, "ROLLCALL") {
		id := m.Header.Get(jetstream.MsgIDHeader)
		if id == "" || seen[id] {
			t.Errorf("message %d on %s: id %q missing or seen before", m.Sequence, m.Subject, id)
		}
		seen[id] = true
	}
}

// TestPollMidScanLeave: b, on page 1, leaves right after page 1 is served, so c moves
// onto page 1 and the scan never sees c. Total and count disagree, the session is
// scanned again, and c gets no false left and joined.
func TestPollMidScanLeave(t *testing.T) {
	w := newWorld(t, "a", "b", "c", "d", "e")
	r := newRig(t, w, true)
	r.poll(t)
	w.clock.Add(10 * time.Second)
	w.api.InjectFault(sim.Fault{Page: 1, AfterServe: func() { w.api.Leave(session, "b") }})
	if d := gocmp.Diff([]string{"participant.left b@2 until 15"}, r.poll(t)); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

// TestPollPagesKeepShifting: someone leaves after every first page, so no scan of
// the cycle agrees with itself. Nobody's absence counts: no left, not even for those
// really gone, until a cycle whose pages agree.
func TestPollPagesKeepShifting(t *testing.T) {
	w := newWorld(t, "a", "b", "c", "d", "e", "f")
	r := newRig(t, w, true)
	r.poll(t)
	for _, id := range []string{"a", "b", "c"} {
		w.api.InjectFault(sim.Fault{Page: 1, AfterServe: func() { w.api.Leave(session, id) }})
	}
	if got := r.poll(t); len(got) != 0 {
		t.Errorf("events from scans that never agreed: %v", got)
	}
	want := []string{"participant.left a@1 until 6", "participant.left b@2 until 6", "participant.left c@3 until 6"}
	if d := gocmp.Diff(want, r.poll(t)); d != "" {
		t.Errorf("the next agreeing cycle (-want +got):\n%s", d)
	}
}

// TestPollEndedSession: a session whose status is ended yields a left for everyone
// still present, then session.ended, and is not asked again.
func TestPollEndedSession(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	r := newRig(t, w, true)
	ctx := context.Background()
	r.poll(t)
	w.clock.Add(7 * time.Second) // 10
	w.api.Leave(session, "a")
	w.api.Join(session, "d", "name-d") // joins and the session ends between two polls: never seen
	w.api.EndSession(session)
	if res, err := r.poller.Poll(ctx, quiet(), session); !res.Ended || err != nil {
		t.Fatalf("Poll of an ended session = %+v, %v; want ended", res, err)
	}
	want := []string{"participant.left a@1 until 10", "participant.left b@2 until 10", "participant.left c@3 until 10",
		"participant.joined d@10 reconciled", "participant.left d@10 until 10 reconciled", "session.ended"}
	if d := gocmp.Diff(want, r.newEvents(t)); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	before := w.api.Requests()
	if res, err := r.poller.Poll(ctx, quiet(), session); !res.Ended || err != nil {
		t.Errorf("Poll after the end = %+v, %v; want ended", res, err)
	}
	if n := w.api.Requests() - before; n != 0 {
		t.Errorf("%d requests for an ended session, want none", n)
	}
}

// TestPollSessionFirstSeenEnded: a session whose first poll finds it ended (it began
// and ended between two listings of its room) is published whole from its list of
// all participants: started, each stint joined and left, reconciled, at its own
// times, then ended.
func TestPollSessionFirstSeenEnded(t *testing.T) {
	w := newWorld(t)
	w.clock.Add(time.Second)
	w.api.Join(session, "a", "name-a")
	w.clock.Add(time.Second)
	w.api.Join(session, "b", "name-b")
	w.clock.Add(time.Second)
	w.api.Leave(session, "a")
	w.clock.Add(time.Second)
	w.api.EndSession(session)
	r := newRig(t, w, true)
	if res, err := r.poller.Poll(context.Background(), quiet(), session); !res.Ended || err != nil {
		t.Fatalf("Poll = %+v, %v; want ended", res, err)
	}
	want := []string{"session.started", "participant.joined a@1 reconciled", "participant.joined b@2 reconciled",
		"participant.left a@1 until 3 reconciled", "participant.left b@2 until 4 reconciled", "session.ended"}
	if d := gocmp.Diff(want, r.newEvents(t)); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

// TestPollUnsafeSessionID: IDs that are not safe subject tokens are escaped by the
// documented rule: "_" and their unpadded base64url encoding.
func TestPollUnsafeSessionID(t *testing.T) {
	const id, roomID = "a.b *>", "room 1"
	w := newWorld(t)
	w.api.StartSession(id, roomID)
	w.api.Join(id, "x.y", "name")
	r := newRig(t, w, true)
	if _, err := r.poller.Poll(context.Background(), quiet(), id); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range natstest.Messages(t, r.js, "ROLLCALL") {
		got = append(got, m.Subject)
	}
	want := []string{
		"videosdk.session.started._cm9vbSAx._YS5iICo-",
		"videosdk.participant.joined._cm9vbSAx._YS5iICo-",
	}
	if d := gocmp.Diff(want, got); d != "" {
		t.Errorf("subjects (-want +got):\n%s", d)
	}
	if st, _, err := r.store.Load(context.Background(), id); err != nil || len(st.Present) != 1 {
		t.Errorf("state of the session: %+v, %v; want x present", st, err)
	}
}

// TestPollReconcilesADiscardedScansStint: z joins and is seen on the last page of a
// scan that is then discarded (y joined meanwhile, so total changed), and leaves
// before the next scan. No poll kept z; the next reconciliation finds its stint in the
// list of all participants and publishes it, with its true times.
func TestPollReconcilesADiscardedScansStint(t *testing.T) {
	w := newWorld(t, "a", "b", "c", "d", "e", "f")
	r := newRig(t, w, true)
	r.poller = r.with(w.client(2), poller.WithClock(w.clock.Now))
	r.poll(t)
	w.clock.Add(10 * time.Second) // 16
	w.api.Join(session, "z", "name-z")
	w.api.InjectFault(sim.Fault{Page: 3, AfterServe: func() { w.api.Join(session, "y", "name-y") }})
	w.api.InjectFault(sim.Fault{Page: 4, AfterServe: func() {
		w.clock.Add(2 * time.Second) // 18
		w.api.Leave(session, "z")
	}})
	if d := gocmp.Diff([]string{"participant.joined y@16"}, r.poll(t)); d != "" {
		t.Errorf("the cycle that saw z on a discarded scan (-want +got):\n%s", d)
	}
	// A loop's cache whose reconciliation falls due at the first tick after its
	// first poll, within a second.
	cache := poller.NewCache(session, every(time.Nanosecond), every(time.Second), w.clock.Now())
	if _, err := r.poller.PollCached(context.Background(), quiet(), session, &cache); err != nil {
		t.Fatal(err)
	}
	if got := r.newEvents(t); len(got) != 0 {
		t.Errorf("a poll that finds no one gone reads no list, and publishes nothing: %v", got)
	}
	w.clock.Add(time.Second) // 19: the reconciliation is due
	if _, err := r.poller.PollCached(context.Background(), quiet(), session, &cache); err != nil {
		t.Fatal(err)
	}
	want := []string{"participant.joined z@16 reconciled", "participant.left z@16 until 18 reconciled"}
	if d := gocmp.Diff(want, r.newEvents(t)); d != "" {
		t.Errorf("the reconciliation (-want +got):\n%s", d)
	}
}
