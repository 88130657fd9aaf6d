package poller_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/sim"
)

// TestEveryone: the list of all participants, over three pages, gives everyone the
// session has had, in order of first join, each with every stint of its timelog, the
// ended ones with their end, as the simulator's stints say.
func TestEveryone(t *testing.T) {
	w := newWorld(t, "p1", "p2", "p3", "p4", "p5")
	w.clock.Add(time.Second)
	w.api.Leave(session, "p2")
	w.clock.Add(time.Second)
	w.api.Leave(session, "p3")
	w.clock.Add(time.Second)
	w.api.Join(session, "p3", "name-p3")
	list, _, err := w.client(2).Everyone(context.Background(), nil, session)
	if err != nil {
		t.Fatal(err)
	}
	var got []sim.Stint
	var order []string
	for _, p := range list {
		order = append(order, p.ID)
		for _, e := range p.Timelog {
			got = append(got, sim.Stint{SessionID: session, ParticipantID: p.ID, Start: e.Start, End: e.End})
		}
	}
	if want := []string{"p1", "p2", "p3", "p4", "p5"}; !slices.Equal(order, want) {
		t.Errorf("participants %v, want %v", order, want)
	}
	want := w.api.Stints(session)
	if !slices.EqualFunc(sorted(got), sorted(want), sameStint) {
		t.Errorf("stints\n got %v\nwant %v", got, want)
	}
}

// TestEveryoneJoinMidScan: someone joins between two pages, so total changes: the
// list is read again, and the newcomer is in it.
func TestEveryoneJoinMidScan(t *testing.T) {
	w := newWorld(t, "p1", "p2", "p3")
	w.api.InjectFault(sim.Fault{PathContains: "/participants", Page: 1, AfterServe: func() { w.api.Join(session, "p4", "late") }})
	before := w.api.Requests()
	list, _, err := w.client(2).Everyone(context.Background(), nil, session)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 4 || list[3].ID != "p4" {
		t.Errorf("list %v, want p1..p4", idsOf(list))
	}
	if n := w.api.Requests() - before; n != 4 { // page 1, page 2 (total changed), then both again
		t.Errorf("%d requests, want 4", n)
	}
}

func TestEveryoneFaults(t *testing.T) {
	t.Run("a 500 is retried", func(t *testing.T) {
		w := newWorld(t, "p1", "p2", "p3")
		w.api.InjectFault(sim.Fault{PathContains: "/participants", Page: 2, Status: 500})
		if list, _, err := w.client(2).Everyone(context.Background(), nil, session); err != nil || len(list) != 3 {
			t.Errorf("%v, %v", idsOf(list), err)
		}
	})
	t.Run("a malformed page fails the list", func(t *testing.T) {
		w := newWorld(t, "p1", "p2", "p3")
		w.api.InjectFault(sim.Fault{PathContains: "/participants", Page: 2, Status: 200, Body: `{"data":`})
		if _, _, err := w.client(2).Everyone(context.Background(), nil, session); !errors.Is(err, poller.ErrMalformed) {
			t.Errorf("%v, want ErrMalformed", err)
		}
	})
	t.Run("an unknown session", func(t *testing.T) {
		w := newWorld(t, "p1")
		if _, _, err := w.client(2).Everyone(context.Background(), nil, "nope"); !errors.Is(err, poller.ErrNotFound) {
			t.Errorf("%v, want ErrNotFound", err)
		}
	})
	t.Run("pages that never hold still", func(t *testing.T) {
		w := newWorld(t, "p1", "p2", "p3")
		n := 0
		w.api.InjectFault(sim.Fault{PathContains: "/participants", Page: 1, Times: 5, AfterServe: func() {
			n++
			w.api.Join(session, fmt.Sprintf("late-%d", n), "late")
		}})
		if _, _, err := w.client(2).Everyone(context.Background(), nil, session); err == nil {
			t.Error("a list that changes on every scan was taken as whole")
		}
	})
}

func idsOf(list []diff.Participant) []string {
	var out []string
	for _, p := range list {
		out = append(out, p.ID)
	}
	return out
}

func sorted(s []sim.Stint) []sim.Stint {
	s = slices.Clone(s)
	slices.SortFunc(s, func(a, b sim.Stint) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.ParticipantID, b.ParticipantID)
	})
	return s
}

func sameStint(a, b sim.Stint) bool {
	return a.ParticipantID == b.ParticipantID && a.Start.Equal(b.Start) && (a.End == nil) == (b.End == nil) && (a.End == nil || a.End.Equal(*b.End))
}
