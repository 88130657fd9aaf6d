package poller_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/sim"
)

// rewrite is a fault that changes every answer of the active list (or of the list of
// all participants, with suffix "/participants") by edit, which gets the decoded body.
func rewrite(t *testing.T, suffix string, edit func(body map[string]any)) sim.Fault {
	return sim.Fault{PathSuffix: suffix, Times: 1000, Rewrite: func(b []byte) []byte {
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("rewrite %s: %v", b, err)
			return b
		}
		edit(body)
		out, err := json.Marshal(body)
		if err != nil {
			t.Errorf("rewrite: %v", err)
		}
		return out
	}}
}

// doc is the session document of an answer of either list.
func doc(body map[string]any) map[string]any {
	if list, ok := body["data"].([]any); ok {
		return list[0].(map[string]any)
	}
	return body["data"].(map[string]any)
}

// participant is the participant of id in an answer, or nil.
func participantOf(body map[string]any, id string) map[string]any {
	for _, p := range doc(body)["participants"].([]any) {
		if p := p.(map[string]any); p["participantId"] == id {
			return p
		}
	}
	return nil
}

// setStart sets the start of the first timelog entry of participant id, if listed.
func setStart(id, start string) func(map[string]any) {
	return func(body map[string]any) {
		if p := participantOf(body, id); p != nil {
			p["timelog"].([]any)[0].(map[string]any)["start"] = start
		}
	}
}

// TestHostileRecords: one participant's odd value is set aside alone. Whoever else
// is in the session is announced as always, nothing false is published, the state
// saved reads back (every Poll here loads it from the store), and the record is
// reported with its reason.
func TestHostileRecords(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(map[string]any) // of every answer of the active list, from the second poll on
		listFails  bool                 // and the list of all participants cannot be read
		wantEvents []string
		wantReason string
	}{
		{
			name:       "a newcomer whose start is year 10000 in UTC (valid RFC 3339)",
			edit:       setStart("c", "9999-12-31T23:00:00-05:00"),
			wantEvents: []string{"participant.joined d@4"},
			wantReason: diff.ReasonTime,
		},
		{
			name:       "a newcomer whose start is before 1970",
			edit:       setStart("c", "1969-12-31T23:59:59.999Z"),
			wantEvents: []string{"participant.joined d@4"},
			wantReason: diff.ReasonTime,
		},
		{
			name:       "a present participant whose start turns unreadable: still present, no left",
			edit:       setStart("b", "10000-01-01T00:00:00Z"),
			listFails:  true,
			wantEvents: []string{"participant.joined c@3", "participant.joined d@4"},
			wantReason: diff.ReasonTime,
		},
		{
			name: "a newcomer with an ID of 300 bytes",
			edit: func(body map[string]any) {
				if p := participantOf(body, "c"); p != nil {
					p["participantId"] = strings.Repeat("x", 300)
				}
			},
			wantEvents: []string{"participant.joined d@4"},
			wantReason: diff.ReasonID,
		},
		{
			name: "a newcomer with a name of 20 KiB",
			edit: func(body map[string]any) {
				if p := participantOf(body, "c"); p != nil {
					p["name"] = strings.Repeat("n", 20<<10)
				}
			},
			wantEvents: []string{"participant.joined d@4"},
			wantReason: diff.ReasonSize,
		},
		{
			name: "a newcomer whose closed entry ends before it starts",
			edit: func(body map[string]any) {
				if p := participantOf(body, "c"); p != nil {
					p["timelog"] = append([]any{map[string]any{"start": "2023-07-24T08:28:00.000Z", "end": "2023-07-24T08:27:00.000Z"}}, p["timelog"].([]any)...)
				}
			},
			wantEvents: []string{"participant.joined d@4"},
			wantReason: diff.ReasonOrder,
		},
		{
			name:       "a present participant shown in an older stint: the answer is older than the state, and nothing of it is used",
			edit:       setStart("b", "2023-07-24T08:00:00.000Z"),
			wantReason: diff.ReasonOlder,
		},
		{
			name: "a newcomer with two open entries, the later listed first: announced at the later",
			edit: func(body map[string]any) {
				if p := participantOf(body, "c"); p != nil {
					p["timelog"] = append(p["timelog"].([]any), map[string]any{"start": "2023-07-24T08:28:00.000Z", "end": nil})
				}
			},
			wantEvents: []string{"participant.joined c@3", "participant.joined d@4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, "a", "b")
			r := newRig(t, w, true)
			if d := gocmp.Diff([]string{"session.started", "participant.joined a@1", "participant.joined b@2"}, r.poll(t)); d != "" {
				t.Fatalf("first poll (-want +got):\n%s", d)
			}
			w.api.InjectFault(rewrite(t, "/active", tt.edit))
			if tt.listFails {
				w.api.InjectFault(sim.Fault{PathSuffix: "/participants", Status: 500, Times: 1000})
			}
			w.clock.Add(time.Second)
			w.api.Join(session, "c", "name-c")
			w.clock.Add(time.Second)
			w.api.Join(session, "d", "name-d")
			res, err := r.poller.Poll(context.Background(), quiet(), session)
			if err != nil {
				t.Fatal(err)
			}
			if d := gocmp.Diff(tt.wantEvents, r.newEvents(t)); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
			var reasons []string
			for _, a := range res.SetAside {
				reasons = append(reasons, a.Reason)
			}
			if tt.wantReason == "" {
				tt.wantReason, reasons = "none", append(reasons, "none")
			}
			if len(reasons) != 1 || reasons[0] != tt.wantReason {
				t.Errorf("set aside %+v, want one, for %s", res.SetAside, tt.wantReason)
			}
			// Polled again, from the state saved: nothing more.
			if got := r.poll(t); len(got) != 0 {
				t.Errorf("a second poll published %v", got)
			}
			checkStream(t, r)
		})
	}
}

// checkStream decodes every event of the rig's stream by the contract.
func checkStream(t *testing.T, r *rig) {
	t.Helper()
	for _, m := range natstest.Messages(t, r.js, "ROLLCALL") {
		if _, err := events.Decode(m.Data); err != nil {
			t.Errorf("%s: %v", m.Data, err)
		}
	}
}

// TestLyingListMakesNoFalseLeft: the active list claims one page and a total of
// three while five are present, for longer than left_time_wait; the list of all
// participants shows the two missing ones still there. No left is published, and
// when the active list tells the truth again, nothing is published either: they
// never left. When one of them does leave, the left has its exact end.
func TestLyingListMakesNoFalseLeft(t *testing.T) {
	w := newWorld(t, "a", "b", "c", "d", "e")
	r := newRig(t, w, true)
	r.poller = r.with(w.client(100), poller.WithClock(w.clock.Now), poller.WithLeftTimeWait(10*time.Second))
	r.poll(t)
	r.newEvents(t)
	w.api.InjectFault(rewrite(t, "/active", func(body map[string]any) {
		d := doc(body)
		d["participants"] = d["participants"].([]any)[:3]
		body["pageInfo"].(map[string]any)["total"] = 3
		body["pageInfo"].(map[string]any)["lastPage"] = 1
	}))
	for range 6 {
		w.clock.Add(5 * time.Second)
		if got := r.poll(t); len(got) != 0 {
			t.Fatalf("the lying list published %v", got)
		}
	}
	st, _, err := r.store.Load(context.Background(), session)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Pending) != 2 || !st.Pending[0].Open || !st.Pending[1].Open {
		t.Errorf("pending %+v, want d and e, open in the list", st.Pending)
	}
	w.api.ClearFaults()
	w.clock.Add(5 * time.Second)
	if got := r.poll(t); len(got) != 0 {
		t.Errorf("the truth again published %v", got)
	}
	if st, _, _ = r.store.Load(context.Background(), session); len(st.Present) != 5 || len(st.Pending) != 0 {
		t.Errorf("present %d, pending %d; want 5 and 0", len(st.Present), len(st.Pending))
	}
	w.clock.Add(time.Second)
	w.api.Leave(session, "d")
	w.clock.Add(time.Second)
	if d := gocmp.Diff([]string{"participant.left d@4 until 41"}, r.poll(t)); d != "" {
		t.Errorf("d's real leave (-want +got):\n%s", d)
	}
}

// TestFalseLeftTakenBack: the active list lies and the list of all participants
// cannot be read for longer than left_time_wait, so d's left goes out without its
// end, as the contract allows. When both lists show d's stint open again, d is
// present again in the state (who, the presence page), without a second joined (a
// stint has one); and when d really leaves, nothing more is published.
func TestFalseLeftTakenBack(t *testing.T) {
	w := newWorld(t, "a", "b", "c", "d")
	r := newRig(t, w, true)
	r.poller = r.with(w.client(100), poller.WithClock(w.clock.Now), poller.WithLeftTimeWait(10*time.Second))
	r.poll(t)
	r.newEvents(t)
	w.api.InjectFault(sim.Fault{PathSuffix: "/participants", Status: 500, Times: 1000})
	w.api.InjectFault(rewrite(t, "/active", func(body map[string]any) {
		d := doc(body)
		d["participants"] = d["participants"].([]any)[:3]
		body["pageInfo"].(map[string]any)["total"] = 3
	}))
	var got []string
	for range 4 {
		w.clock.Add(5 * time.Second)
		got = append(got, r.poll(t)...)
	}
	if d := gocmp.Diff([]string{"participant.left d@4"}, got); d != "" {
		t.Fatalf("with the list unreadable past the wait (-want +got):\n%s", d)
	}
	w.api.ClearFaults()
	w.clock.Add(5 * time.Second)
	if got := r.poll(t); len(got) != 0 {
		t.Errorf("both lists showing d again published %v", got)
	}
	st, _, err := r.store.Load(context.Background(), session)
	if err != nil || len(st.Present) != 4 {
		t.Errorf("present %v (%v), want a, b, c and d", st.Present, err)
	}
	w.clock.Add(time.Second)
	w.api.Leave(session, "d")
	w.clock.Add(time.Second)
	if got := r.poll(t); len(got) != 0 {
		t.Errorf("d's real leave published %v: its stint's left went out already", got)
	}
	if st, _, _ = r.store.Load(context.Background(), session); len(st.Present) != 3 || len(st.Pending) != 0 {
		t.Errorf("present %d, pending %d; want 3 and 0", len(st.Present), len(st.Pending))
	}
}

// TestHostileSession: a session document whose roomId is 10 KB cannot be published
// (its subjects would pass NATS's 4 KB control line, and the server would close the
// connection): that session's poll fails, with the reason, publishing nothing, and
// another session on the same connection is polled as always.
func TestHostileSession(t *testing.T) {
	w := newWorld(t, "a")
	w.api.StartSession("other", "r2")
	w.api.Join("other", "x", "name-x")
	r := newRig(t, w, true)
	w.api.InjectFault(rewrite(t, "/"+session+"/participants/active", func(body map[string]any) {
		doc(body)["roomId"] = strings.Repeat("r", 10_000)
	}))
	_, err := r.poller.Poll(context.Background(), quiet(), session)
	if !errors.Is(err, poller.ErrMalformed) || !strings.Contains(err.Error(), "roomId") {
		t.Errorf("poll of the session with a 10 KB roomId: %v, want ErrMalformed naming roomId", err)
	}
	if _, err := r.poller.Poll(context.Background(), quiet(), "other"); err != nil {
		t.Fatal(err)
	}
	if d := gocmp.Diff([]string{"session.started", "participant.joined x@1"}, r.newEvents(t)); d != "" {
		t.Errorf("the other session (-want +got):\n%s", d)
	}
}

// TestHostileRoomListing: a room's listing holding a session ID of 5 KB, and one
// whose start is out of range: the first is set aside alone, the second is listed
// with its start unknown.
func TestHostileRoomListing(t *testing.T) {
	w := newWorld(t)
	w.api.InjectFault(sim.Fault{PathContains: "/v2/sessions/", Rewrite: func(b []byte) []byte {
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatal(err)
		}
		list := body["data"].([]any)
		odd := map[string]any{"id": strings.Repeat("s", 5000), "roomId": room, "status": "ongoing", "start": "2023-07-24T08:28:09.215Z"}
		late := map[string]any{"id": "late", "roomId": room, "status": "ongoing", "start": "9999-12-31T23:59:59-01:00"}
		body["data"] = append([]any{odd, late}, list...)
		out, _ := json.Marshal(body)
		return out
	}})
	list, bad, err := w.client(20).RoomSessions(context.Background(), room, true)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	if d := gocmp.Diff([]string{"late", session}, ids); d != "" || !list[0].Start.IsZero() {
		t.Errorf("sessions (-want +got):\n%s\nlate's start %v, want unknown", d, list[0].Start)
	}
	if len(bad) != 2 || bad[0].Reason != diff.ReasonID || bad[1].Reason != diff.ReasonTime {
		t.Errorf("set aside %+v, want an id, then a time", bad)
	}
}

// TestUnreadableStateRebuilt: a state that cannot be read back (here, garbage
// written over it) is set aside under unreadable.<id> and rebuilt from the stream's
// events: the polls after it publish what changed since, and nothing twice.
func TestUnreadableStateRebuilt(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	r := newRig(t, w, true)
	r.store.RebuildFrom(r.js, "ROLLCALL", "videosdk")
	r.poll(t)
	w.clock.Add(time.Second)
	w.api.Leave(session, "b")
	w.clock.Add(time.Second)
	if d := gocmp.Diff([]string{"participant.left b@2 until 4"}, r.poll(t)); d != "" {
		t.Fatalf("b leaves (-want +got):\n%s", d)
	}
	kv, err := r.js.KeyValue(context.Background(), "ROLLCALL_STATE")
	if err != nil {
		t.Fatal(err)
	}
	garbage := []byte(`{"present":[{"id":"a","joinedAt":"10000-01-01T00:00:00Z"}]}`)
	if _, err := kv.Put(context.Background(), "sessions."+session, garbage); err != nil {
		t.Fatal(err)
	}
	w.clock.Add(time.Second)
	w.api.Leave(session, "c")
	w.api.Join(session, "d", "name-d")
	w.api.Join(session, "b", "name-b")
	w.clock.Add(time.Second)
	want := []string{"participant.joined b@6", "participant.left c@3 until 6", "participant.joined d@6"}
	if d := gocmp.Diff(want, r.poll(t)); d != "" {
		t.Errorf("after the state was rebuilt (-want +got):\n%s", d)
	}
	aside, err := kv.Get(context.Background(), "unreadable."+session)
	if err != nil || string(aside.Value()) != string(garbage) {
		t.Errorf("set aside: %v, %v; want the garbage", aside, err)
	}
	if got := r.poll(t); len(got) != 0 {
		t.Errorf("the next poll published %v", got)
	}
}
