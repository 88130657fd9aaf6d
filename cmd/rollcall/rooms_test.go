package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestRunRooms follows two rooms with `rollcall run`: one with a long history of
// ended sessions (three pages of its sessions list) and a live session that ends and
// is followed by a new one; one that starts empty and later gets a session. Each
// session's events come in order (started, its stints, ended), no old session gets
// any, and nothing is published twice.
func TestRunRooms(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker for several seconds")
	}
	e := newE2E(t, nil, "room-a", "room-b")
	for i := range 5 {
		old := e.api.NextSession("room-a")
		join(e.api, old, fmt.Sprintf("old-%d", i))
		e.api.EndSession(old)
	}
	live := e.api.NextSession("room-a")
	join(e.api, live, "a1", "a2", "a3")
	e.sessions[live] = "room-a"
	stop := e.start()
	defer stop()
	e.settle("the live session found")

	leave(e.api, live, "a1")
	join(e.api, live, "a4")
	e.settle("a1 left, a4 joined")

	next := e.api.NextSession("room-a") // the live session ends, the room's next begins
	join(e.api, next, "a1", "a5")
	e.sessions[next] = "room-a"
	e.settle("the next session of room-a")

	b := e.api.NextSession("room-b")
	join(e.api, b, "b1")
	e.sessions[b] = "room-b"
	e.settle("room-b's first session")
	leave(e.api, next, "a5")
	e.hold("two cycles later")

	if d := e.sessionOrder(); d != "" {
		t.Error(d)
	}
	// Order holds within a session; sessions are independent.
	want := []string{"ended " + live, "started " + b, "started " + live, "started " + next}
	slices.Sort(want)
	if got := slices.Sorted(slices.Values(e.sessionEvents())); !slices.Equal(got, want) {
		t.Errorf("session events %v, want %v", got, want)
	}
	if r := e.republished(); len(r) > 0 {
		t.Errorf("events published more than once without a fault: %v", r)
	}
}

// sessionOrder checks that each session's events in the stream begin with one
// session.started and, if it has a session.ended, end with it; it describes what is
// out of order, or returns "".
func (e *e2e) sessionOrder() string {
	seen := map[string][]string{}
	for _, ev := range e.events() {
		seen[ev.Data.SessionID] = append(seen[ev.Data.SessionID], strings.TrimPrefix(ev.Type, "live.videosdk."))
	}
	var out []string
	for id, kinds := range seen {
		started, ended := 0, 0
		for _, k := range kinds {
			switch k {
			case "session.started":
				started++
			case "session.ended":
				ended++
			}
		}
		if started != 1 || kinds[0] != "session.started" || ended > 1 || (ended == 1 && kinds[len(kinds)-1] != "session.ended") {
			out = append(out, fmt.Sprintf("session %s: %v", id, kinds))
		}
	}
	return strings.Join(out, "\n")
}

// TestRunRoomSessionEndsWhileDown: a room's session that ends while the worker is
// stopped gets, on the next start, the lefts of everyone still present and its
// session.ended, once; the room's next session is followed as usual. A start after
// that announces nothing again: the ended session's tombstone says it is done.
func TestRunRoomSessionEndsWhileDown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker for several seconds")
	}
	e := newE2E(t, nil, "room-a")
	live := e.api.NextSession("room-a")
	join(e.api, live, "a1", "a2")
	e.sessions[live] = "room-a"
	stop := e.start()
	e.settle("the live session followed")
	stop()

	leave(e.api, live, "a1")
	next := e.api.NextSession("room-a") // live ends with a2 still in it
	join(e.api, next, "a3")
	e.sessions[next] = "room-a"

	stop = e.start()
	e.settle("after the restart")
	e.hold("two cycles later")
	stop()
	before := len(e.events())
	stop = e.start()
	defer stop()
	e.hold("after a second restart")
	if n := len(e.events()); n != before {
		t.Errorf("%d events after a second restart, want none: %v", n-before, e.events()[before:])
	}
	if d := e.sessionOrder(); d != "" {
		t.Error(d)
	}
	want := []string{"ended " + live, "started " + live, "started " + next}
	slices.Sort(want)
	if got := slices.Sorted(slices.Values(e.sessionEvents())); !slices.Equal(got, want) {
		t.Errorf("session events %v, want %v", got, want)
	}
	if r := e.republished(); len(r) > 0 {
		t.Errorf("events published again after a restart: %v", r)
	}
}
