package poller_test

import (
	"cmp"
	"context"
	"errors"
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
	all, err := w.client(2).Everyone(context.Background(), nil, session)
	if err != nil {
		t.Fatal(err)
	}
	list := all.Participants
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

// TestEveryoneGrowsMidScan: people join between two pages, so total and lastPage grow:
// the list is read once, to its new last page, and takes them in.
func TestEveryoneGrowsMidScan(t *testing.T) {
	w := newWorld(t, "p1", "p2", "p3")
	w.api.InjectFault(sim.Fault{PathSuffix: "/participants", Page: 1, AfterServe: func() {
		w.api.Join(session, "p4", "late")
		w.api.Join(session, "p5", "late")
	}})
	before := w.api.Requests()
	all, err := w.client(2).Everyone(context.Background(), nil, session)
	if err != nil {
		t.Fatal(err)
	}
	list, pages := all.Participants, all.Pages
	if want := []string{"p1", "p2", "p3", "p4", "p5"}; !slices.Equal(idsOf(list), want) {
		t.Errorf("list %v, want %v", idsOf(list), want)
	}
	if n := w.api.Requests() - before; n != 3 || pages != 3 {
		t.Errorf("%d requests, %d pages; want 3 of each", n, pages)
	}
}

func TestEveryoneFaults(t *testing.T) {
	t.Run("a 500 is retried", func(t *testing.T) {
		w := newWorld(t, "p1", "p2", "p3")
		w.api.InjectFault(sim.Fault{PathContains: "/participants", Page: 2, Status: 500})
		if all, err := w.client(2).Everyone(context.Background(), nil, session); err != nil || len(all.Participants) != 3 {
			t.Errorf("%v, %v", idsOf(all.Participants), err)
		}
	})
	t.Run("a malformed page fails the list", func(t *testing.T) {
		w := newWorld(t, "p1", "p2", "p3")
		w.api.InjectFault(sim.Fault{PathContains: "/participants", Page: 2, Status: 200, Body: `{"data":`})
		if _, err := w.client(2).Everyone(context.Background(), nil, session); !errors.Is(err, poller.ErrMalformed) {
			t.Errorf("%v, want ErrMalformed", err)
		}
	})
	t.Run("an unknown session", func(t *testing.T) {
		w := newWorld(t, "p1")
		if _, err := w.client(2).Everyone(context.Background(), nil, "nope"); !errors.Is(err, poller.ErrNotFound) {
			t.Errorf("%v, want ErrNotFound", err)
		}
	})
	t.Run("someone listed twice counts once, as the later page shows them", func(t *testing.T) {
		w := newWorld(t, "p1", "p2", "p3")
		page2 := `{"pageInfo":{"currentPage":2,"perPage":2,"lastPage":2,"total":3},"data":{"_id":"` + session +
			`","participants":[{"participantId":"p2","name":"again","timelog":[{"start":"2023-07-24T08:28:11.000Z","end":"2023-07-24T08:28:30.000Z"}]}]}}`
		w.api.InjectFault(sim.Fault{PathSuffix: "/participants", Page: 2, Status: 200, Body: page2})
		all, err := w.client(2).Everyone(context.Background(), nil, session)
		list := all.Participants
		if err != nil || !slices.Equal(idsOf(list), []string{"p1", "p2"}) || list[1].Name != "again" || list[1].Timelog[0].End == nil {
			t.Errorf("%v (p2 %+v), %v; want p1 and p2 as page 2 shows it", idsOf(list), list, err)
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
