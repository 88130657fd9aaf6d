package diff_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/diff"
)

var t0 = time.Date(2023, 7, 24, 8, 28, 9, 650e6, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func ptr(t time.Time) *time.Time { return &t }

// p is participant id in the stint that started at second start; ends are the ends of
// earlier stints, given as start/end pairs, for timelogs that show a rejoin.
func p(id string, start int, earlier ...[2]int) diff.Participant {
	var log []diff.Entry
	for _, e := range earlier {
		log = append(log, diff.Entry{Start: at(e[0]), End: ptr(at(e[1]))})
	}
	log = append(log, diff.Entry{Start: at(start)})
	return diff.Participant{ID: id, Name: "name-" + id, JoinedAt: at(start), Timelog: log}
}

func stored(ps ...diff.Participant) []diff.Participant {
	for i := range ps {
		ps[i].Timelog = nil
	}
	return ps
}

func snap(complete bool, ps ...diff.Participant) diff.Snapshot {
	return diff.Snapshot{SessionID: "s1", RoomID: "r1", Status: "ongoing", Found: true, Complete: complete, Participants: ps}
}

// glimpse adds participants seen only by a discarded scan to s.
func glimpse(s diff.Snapshot, ps ...diff.Participant) diff.Snapshot {
	s.Glimpsed = ps
	return s
}

func state(ps ...diff.Participant) diff.State {
	return diff.State{RoomID: "r1", Started: true, Present: stored(ps...)}
}

type change struct {
	Kind   string
	ID     string
	Start  int
	LeftAt *time.Time
}

func summarize(cs []diff.Change) []change {
	var out []change
	for _, c := range cs {
		s := change{Kind: c.Kind.String(), ID: c.Participant.ID, LeftAt: c.LeftAt}
		if c.Participant.ID != "" {
			s.Start = int(c.Participant.JoinedAt.Sub(t0) / time.Second)
		}
		out = append(out, s)
	}
	return out
}

func TestCompute(t *testing.T) {
	ended := snap(true)
	ended.Status = diff.StatusEnded
	endedWithLate := snap(false, p("c", 9))
	endedWithLate.Status = diff.StatusEnded
	closedA := p("a", 1)
	closedA.Timelog[0].End = ptr(at(30))
	endedListing := snap(true, closedA, p("b", 2))
	endedListing.Status = diff.StatusEnded

	tests := []struct {
		name        string
		prev        diff.State
		next        diff.Snapshot
		wantChanges []change
		wantState   diff.State
	}{{
		name:        "first sight of a session starts it and joins everyone, by join time",
		prev:        diff.State{},
		next:        snap(true, p("b", 1), p("a", 2)),
		wantChanges: []change{{Kind: "session.started"}, {Kind: "joined", ID: "b", Start: 1}, {Kind: "joined", ID: "a", Start: 2}},
		wantState:   state(p("a", 2), p("b", 1)),
	}, {
		name:      "no session document (an empty data array): not started, nothing emitted",
		prev:      diff.State{},
		next:      diff.Snapshot{SessionID: "s1", Status: "", Complete: true},
		wantState: diff.State{},
	}, {
		name:      "a stale answer, showing an older stint than the state's: nothing, not even the absences",
		prev:      state(p("a", 20, [2]int{1, 12}), p("b", 2)),
		next:      snap(true, p("a", 1)),
		wantState: state(p("a", 20), p("b", 2)),
	}, {
		name:      "nothing changed, nothing emitted",
		prev:      state(p("a", 1)),
		next:      snap(true, p("a", 1)),
		wantState: state(p("a", 1)),
	}, {
		name:        "a newcomer joins",
		prev:        state(p("a", 1)),
		next:        snap(true, p("a", 1), p("b", 5)),
		wantChanges: []change{{Kind: "joined", ID: "b", Start: 5}},
		wantState:   state(p("a", 1), p("b", 5)),
	}, {
		name:        "absent from a complete snapshot: left, time unknown",
		prev:        state(p("a", 1), p("b", 5)),
		next:        snap(true, p("a", 1)),
		wantChanges: []change{{Kind: "left", ID: "b", Start: 5}},
		wantState:   state(p("a", 1)),
	}, {
		name:      "absent from an incomplete snapshot: no left, kept in the state",
		prev:      state(p("a", 1), p("b", 5)),
		next:      snap(false, p("a", 1)),
		wantState: state(p("a", 1), p("b", 5)),
	}, {
		name:        "an incomplete snapshot still yields its joins",
		prev:        state(p("a", 1)),
		next:        snap(false, p("c", 7)),
		wantChanges: []change{{Kind: "joined", ID: "c", Start: 7}},
		wantState:   state(p("a", 1), p("c", 7)),
	}, {
		name:        "left and rejoined between polls: left for the old stint with its end, joined for the new",
		prev:        state(p("a", 1)),
		next:        snap(true, p("a", 20, [2]int{1, 12})),
		wantChanges: []change{{Kind: "left", ID: "a", Start: 1, LeftAt: ptr(at(12))}, {Kind: "joined", ID: "a", Start: 20}},
		wantState:   state(p("a", 20)),
	}, {
		name:        "a rejoin is proof enough even in an incomplete snapshot",
		prev:        state(p("a", 1), p("b", 2)),
		next:        snap(false, p("a", 20, [2]int{1, 12})),
		wantChanges: []change{{Kind: "left", ID: "a", Start: 1, LeftAt: ptr(at(12))}, {Kind: "joined", ID: "a", Start: 20}},
		wantState:   state(p("a", 20), p("b", 2)),
	}, {
		name:        "glimpsed by a discarded scan, a newcomer joins, and stays until a complete snapshot lacks it",
		prev:        state(p("a", 1)),
		next:        glimpse(snap(true, p("a", 1)), p("g", 6)),
		wantChanges: []change{{Kind: "joined", ID: "g", Start: 6}},
		wantState:   state(p("a", 1), p("g", 6)),
	}, {
		name:        "a glimpse of someone known, or also listed, adds nothing",
		prev:        state(p("a", 1), p("b", 2)),
		next:        glimpse(snap(true, p("a", 1), p("c", 7)), p("b", 2), p("c", 7)),
		wantChanges: []change{{Kind: "left", ID: "b", Start: 2}, {Kind: "joined", ID: "c", Start: 7}},
		wantState:   state(p("a", 1), p("c", 7)),
	}, {
		name:        "a participantId listed twice counts once",
		prev:        state(),
		next:        snap(false, p("a", 1), p("a", 1)),
		wantChanges: []change{{Kind: "joined", ID: "a", Start: 1}},
		wantState:   state(p("a", 1)),
	}, {
		name:        "an ended session: everyone present leaves, then the session ends",
		prev:        state(p("a", 1), p("b", 2)),
		next:        ended,
		wantChanges: []change{{Kind: "left", ID: "a", Start: 1}, {Kind: "left", ID: "b", Start: 2}, {Kind: "session.ended"}},
		wantState:   diff.State{RoomID: "r1", Started: true, Ended: true},
	}, {
		name: "an ended session, even incompletely listed, ends everyone; a late newcomer joins first",
		prev: state(p("a", 1)),
		next: endedWithLate,
		wantChanges: []change{
			{Kind: "joined", ID: "c", Start: 9}, {Kind: "left", ID: "a", Start: 1}, {Kind: "left", ID: "c", Start: 9}, {Kind: "session.ended"},
		},
		wantState: diff.State{RoomID: "r1", Started: true, Ended: true},
	}, {
		name: "an ended session still listing its participants: they leave too, at their timelog end when closed",
		prev: state(p("a", 1), p("b", 2)),
		next: endedListing,
		wantChanges: []change{
			{Kind: "left", ID: "a", Start: 1, LeftAt: ptr(at(30))}, {Kind: "left", ID: "b", Start: 2}, {Kind: "session.ended"},
		},
		wantState: diff.State{RoomID: "r1", Started: true, Ended: true},
	}, {
		name:      "after the end, nothing more",
		prev:      diff.State{RoomID: "r1", Started: true, Ended: true},
		next:      snap(true, p("a", 1)),
		wantState: diff.State{RoomID: "r1", Started: true, Ended: true},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes, got := diff.Compute(tt.prev, tt.next)
			if d := cmp.Diff(tt.wantChanges, summarize(changes)); d != "" {
				t.Errorf("changes (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantState, got); d != "" {
				t.Errorf("state (-want +got):\n%s", d)
			}
		})
	}
}

func TestComputeLeavesItsInputsAlone(t *testing.T) {
	prev := state(p("a", 1), p("b", 2))
	next := snap(true, p("a", 20, [2]int{1, 12}), p("c", 3))
	prevCopy, nextCopy := state(p("a", 1), p("b", 2)), snap(true, p("a", 20, [2]int{1, 12}), p("c", 3))
	diff.Compute(prev, next)
	if d := cmp.Diff(prevCopy, prev); d != "" {
		t.Errorf("prev modified (-want +got):\n%s", d)
	}
	if d := cmp.Diff(nextCopy, next); d != "" {
		t.Errorf("next modified (-want +got):\n%s", d)
	}
}

func TestUnion(t *testing.T) {
	first := snap(true, p("a", 1), p("b", 2), p("d", 4))
	second := snap(true, p("b", 2), p("c", 3), p("a", 9, [2]int{1, 5}))
	got := diff.Union(first, second)
	if d := cmp.Diff([]string{"b@2", "c@3", "a@9", "d@4"}, stints(got)); d != "" || !got.Complete {
		t.Errorf("complete %v; union (-want +got):\n%s", got.Complete, d)
	}
	second.Complete = false
	if diff.Union(first, second).Complete {
		t.Error("the union with an incomplete scan is complete")
	}
	if !state(p("a", 1), p("e", 1)).Absent(first) || state(p("a", 1), p("b", 7)).Absent(first) {
		t.Error("Absent: want true only when a present participantId is not listed")
	}
}

func stints(s diff.Snapshot) []string {
	var out []string
	for _, p := range s.Participants {
		out = append(out, fmt.Sprintf("%s@%d", p.ID, int(p.JoinedAt.Sub(t0)/time.Second)))
	}
	return out
}
