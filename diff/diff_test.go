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

// everyone is the list of all participants: id with stints as start/end pairs, an
// end below 0 for one that lasts.
func everyone(s diff.Snapshot, ps ...diff.Participant) diff.Snapshot {
	s.Everyone = ps
	return s
}

// tl is participant id with the stints given as start/end pairs; an end below 0 is a
// stint that lasts. Its JoinedAt is its last stint's start.
func tl(id string, stints ...[2]int) diff.Participant {
	q := diff.Participant{ID: id, Name: "name-" + id}
	for _, s := range stints {
		e := diff.Entry{Start: at(s[0])}
		if s[1] >= 0 {
			e.End = ptr(at(s[1]))
		}
		q.Timelog = append(q.Timelog, e)
		q.JoinedAt = e.Start
	}
	return q
}

// endedWith is the snapshot of a session that ended at second 50, listing no one
// active, with the list of all participants ps.
func endedWith(ps ...diff.Participant) diff.Snapshot {
	s := everyone(snap(true), ps...)
	s.Status, s.End = diff.StatusEnded, ptr(at(50))
	return s
}

func state(ps ...diff.Participant) diff.State {
	return diff.State{RoomID: "r1", Started: true, Accounted: true, Present: stored(ps...)}
}

// gone is s with gone, participantId and stint start pairs.
func gone(s diff.State, pairs ...any) diff.State {
	s.Gone = map[string]time.Time{}
	for i := 0; i < len(pairs); i += 2 {
		s.Gone[pairs[i].(string)] = at(pairs[i+1].(int))
	}
	return s
}

// pending is s with stints ps waiting for their end since second since.
func pending(s diff.State, since int, ps ...diff.Participant) diff.State {
	for _, q := range stored(ps...) {
		s.Pending = append(s.Pending, diff.Pending{Participant: q, Since: at(since)})
	}
	return s
}

type change struct {
	Kind       string
	ID         string
	Start      int
	LeftAt     *time.Time
	Reconciled bool
	ObservedAt *time.Time
}

func summarize(cs []diff.Change) []change {
	var out []change
	for _, c := range cs {
		s := change{Kind: c.Kind.String(), ID: c.Participant.ID, LeftAt: c.LeftAt, Reconciled: c.Reconciled, ObservedAt: c.ObservedAt}
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
		now         int // seconds after t0
		wait        time.Duration
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
		wantState:   gone(state(p("a", 1)), "b", 5),
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
		wantState:   gone(state(p("a", 20)), "a", 1),
	}, {
		name:        "a rejoin is proof enough even in an incomplete snapshot",
		prev:        state(p("a", 1), p("b", 2)),
		next:        snap(false, p("a", 20, [2]int{1, 12})),
		wantChanges: []change{{Kind: "left", ID: "a", Start: 1, LeftAt: ptr(at(12))}, {Kind: "joined", ID: "a", Start: 20}},
		wantState:   gone(state(p("a", 20), p("b", 2)), "a", 1),
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
		name: "an ended session, even incompletely listed, ends everyone; a late newcomer joins, then leaves",
		prev: state(p("a", 1)),
		next: endedWithLate,
		wantChanges: []change{
			{Kind: "left", ID: "a", Start: 1}, {Kind: "joined", ID: "c", Start: 9}, {Kind: "left", ID: "c", Start: 9}, {Kind: "session.ended"},
		},
		wantState: diff.State{RoomID: "r1", Started: true, Ended: true},
	}, {
		name: "an ended session still listing its participants: they leave too, at their timelog end when closed",
		prev: state(p("a", 1), p("b", 2)),
		next: endedListing,
		wantChanges: []change{
			{Kind: "left", ID: "b", Start: 2}, {Kind: "left", ID: "a", Start: 1, LeftAt: ptr(at(30))}, {Kind: "session.ended"},
		},
		wantState: diff.State{RoomID: "r1", Started: true, Ended: true},
	}, {
		name:        "a left whose end the list of all participants shows takes it",
		prev:        state(p("a", 1), p("b", 5)),
		next:        everyone(snap(true, p("a", 1)), tl("a", [2]int{1, -1}), tl("b", [2]int{5, 9})),
		wantChanges: []change{{Kind: "left", ID: "b", Start: 5, LeftAt: ptr(at(9))}},
		wantState:   gone(state(p("a", 1)), "b", 5),
	}, {
		name:      "a left whose end is not known yet waits in the state",
		prev:      state(p("a", 1), p("b", 5)),
		next:      everyone(snap(true, p("a", 1)), tl("a", [2]int{1, -1}), tl("b", [2]int{5, -1})),
		now:       10,
		wait:      time.Minute,
		wantState: pending(state(p("a", 1)), 10, p("b", 5)),
	}, {
		name:        "a waiting left whose end shows is published with it, observed when it was found gone",
		prev:        pending(state(p("a", 1)), 10, p("b", 5)),
		next:        everyone(snap(true, p("a", 1)), tl("a", [2]int{1, -1}), tl("b", [2]int{5, 9})),
		now:         20,
		wait:        time.Minute,
		wantChanges: []change{{Kind: "left", ID: "b", Start: 5, LeftAt: ptr(at(9)), ObservedAt: ptr(at(10))}},
		wantState:   gone(state(p("a", 1)), "b", 5),
	}, {
		name:      "a waiting left waits on when the list cannot be read",
		prev:      pending(state(p("a", 1)), 10, p("b", 5)),
		next:      snap(true, p("a", 1)),
		now:       69,
		wait:      time.Minute,
		wantState: pending(state(p("a", 1)), 10, p("b", 5)),
	}, {
		name:        "a left that has waited wait is published without an end",
		prev:        pending(state(p("a", 1)), 10, p("b", 5)),
		next:        snap(true, p("a", 1)),
		now:         70,
		wait:        time.Minute,
		wantChanges: []change{{Kind: "left", ID: "b", Start: 5, ObservedAt: ptr(at(10))}},
		wantState:   gone(state(p("a", 1)), "b", 5),
	}, {
		name:      "a waiting left that the active list shows again never happened",
		prev:      pending(state(p("a", 1)), 10, p("b", 5)),
		next:      snap(true, p("a", 1), p("b", 5)),
		now:       20,
		wait:      time.Minute,
		wantState: state(p("a", 1), p("b", 5)),
	}, {
		name:        "a waiting left whose participant is back in a new stint: left with the end its timelog shows, then joined",
		prev:        pending(state(p("a", 1)), 10, p("b", 5)),
		next:        snap(false, p("a", 1), p("b", 30, [2]int{5, 9})),
		now:         31,
		wait:        time.Minute,
		wantChanges: []change{{Kind: "left", ID: "b", Start: 5, LeftAt: ptr(at(9)), ObservedAt: ptr(at(10))}, {Kind: "joined", ID: "b", Start: 30}},
		wantState:   gone(state(p("a", 1), p("b", 30)), "b", 5),
	}, {
		name: "stints no poll saw are reconciled from the list: each joined then left, in time order with the others",
		prev: state(p("a", 1), p("b", 2)),
		next: everyone(snap(true, p("a", 1)),
			tl("a", [2]int{1, -1}), tl("b", [2]int{2, 7}), tl("c", [2]int{3, 4}, [2]int{6, 8}), tl("d", [2]int{5, 6}, [2]int{9, -1})),
		wantChanges: []change{
			{Kind: "joined", ID: "c", Start: 3, Reconciled: true}, {Kind: "left", ID: "c", Start: 3, LeftAt: ptr(at(4)), Reconciled: true},
			{Kind: "joined", ID: "d", Start: 5, Reconciled: true},
			{Kind: "joined", ID: "c", Start: 6, Reconciled: true}, {Kind: "left", ID: "d", Start: 5, LeftAt: ptr(at(6)), Reconciled: true},
			{Kind: "left", ID: "b", Start: 2, LeftAt: ptr(at(7))}, {Kind: "left", ID: "c", Start: 6, LeftAt: ptr(at(8)), Reconciled: true},
		},
		wantState: gone(state(p("a", 1)), "b", 2, "c", 6, "d", 5),
	}, {
		name:      "a reconciled stint is not published again",
		prev:      gone(state(p("a", 1)), "b", 2, "c", 6, "d", 5),
		next:      everyone(snap(true, p("a", 1)), tl("a", [2]int{1, -1}), tl("b", [2]int{2, 7}), tl("c", [2]int{3, 4}, [2]int{6, 8})),
		wantState: gone(state(p("a", 1)), "b", 2, "c", 6, "d", 5),
	}, {
		name: "a newcomer's earlier stints, in its timelog, are reconciled before its joined",
		prev: state(p("a", 1)),
		next: snap(true, p("a", 1), p("d", 10, [2]int{2, 4})),
		wantChanges: []change{
			{Kind: "joined", ID: "d", Start: 2, Reconciled: true}, {Kind: "left", ID: "d", Start: 2, LeftAt: ptr(at(4)), Reconciled: true},
			{Kind: "joined", ID: "d", Start: 10},
		},
		wantState: gone(state(p("a", 1), p("d", 10)), "d", 2),
	}, {
		name: "a rejoin with a stint between the two polls: left, the missed stint, joined",
		prev: state(p("a", 1)),
		next: snap(true, p("a", 20, [2]int{1, 5}, [2]int{8, 12})),
		wantChanges: []change{
			{Kind: "left", ID: "a", Start: 1, LeftAt: ptr(at(5))},
			{Kind: "joined", ID: "a", Start: 8, Reconciled: true}, {Kind: "left", ID: "a", Start: 8, LeftAt: ptr(at(12)), Reconciled: true},
			{Kind: "joined", ID: "a", Start: 20},
		},
		wantState: gone(state(p("a", 20)), "a", 8),
	}, {
		name: "an ended session, no waiting: lefts at their own end, else the session's if still there then (or open in the list); missed stints; then the end",
		prev: pending(state(p("a", 1), p("b", 2)), 10, p("f", 4), p("g", 6)),
		next: endedWith(tl("a", [2]int{1, 40}), tl("b", [2]int{2, -1}), tl("e", [2]int{3, 5}), tl("f", [2]int{4, -1}), tl("g", [2]int{5, 7})),
		now:  51,
		wantChanges: []change{
			{Kind: "joined", ID: "e", Start: 3, Reconciled: true}, {Kind: "left", ID: "e", Start: 3, LeftAt: ptr(at(5)), Reconciled: true},
			{Kind: "left", ID: "g", Start: 6, ObservedAt: ptr(at(10))},
			{Kind: "left", ID: "a", Start: 1, LeftAt: ptr(at(40))}, {Kind: "left", ID: "b", Start: 2, LeftAt: ptr(at(50))},
			{Kind: "left", ID: "f", Start: 4, LeftAt: ptr(at(50)), ObservedAt: ptr(at(10))},
			{Kind: "session.ended"},
		},
		wantState: diff.State{RoomID: "r1", Started: true, Ended: true},
	}, {
		name:        "a session that ended, as the API tells it, before a stint began: the left has no end, never one before its start",
		prev:        state(p("z", 60)),
		next:        endedWith(tl("z", [2]int{60, -1})),
		now:         70,
		wantChanges: []change{{Kind: "left", ID: "z", Start: 60}, {Kind: "session.ended"}},
		wantState:   diff.State{RoomID: "r1", Started: true, Ended: true},
	}, {
		name: "a session first seen ended: started, every stint of its list reconciled at its own times, then the end",
		prev: diff.State{},
		next: endedWith(tl("a", [2]int{10, 20}), tl("b", [2]int{12, 15}, [2]int{16, 30})),
		now:  55,
		wait: time.Minute,
		wantChanges: []change{
			{Kind: "session.started"},
			{Kind: "joined", ID: "a", Start: 10, Reconciled: true},
			{Kind: "joined", ID: "b", Start: 12, Reconciled: true}, {Kind: "left", ID: "b", Start: 12, LeftAt: ptr(at(15)), Reconciled: true},
			{Kind: "joined", ID: "b", Start: 16, Reconciled: true},
			{Kind: "left", ID: "a", Start: 10, LeftAt: ptr(at(20)), Reconciled: true},
			{Kind: "left", ID: "b", Start: 16, LeftAt: ptr(at(30)), Reconciled: true},
			{Kind: "session.ended"},
		},
		wantState: diff.State{RoomID: "r1", Started: true, Ended: true},
	}, {
		name: "an ended session whose lefts wait for their end: so does session.ended",
		prev: pending(state(p("a", 1), p("b", 2)), 10, p("f", 4)),
		next: endedWith(tl("a", [2]int{1, 40}), tl("b", [2]int{2, -1}), tl("e", [2]int{3, 5}), tl("f", [2]int{4, -1})),
		now:  51,
		wait: time.Minute,
		wantChanges: []change{
			{Kind: "joined", ID: "e", Start: 3, Reconciled: true}, {Kind: "left", ID: "e", Start: 3, LeftAt: ptr(at(5)), Reconciled: true},
			{Kind: "left", ID: "a", Start: 1, LeftAt: ptr(at(40))},
		},
		wantState: func() diff.State {
			s := pending(pending(gone(state(), "a", 1, "e", 3), 51, p("b", 2)), 10, p("f", 4))
			s.Present = []diff.Participant{}
			return s
		}(),
	}, {
		name: "an ended session once the wait is over: the session's end for who was there or whom the list shows open, nothing for who was not, then the end",
		prev: pending(pending(gone(state(), "a", 1, "e", 3), 51, p("b", 2)), 10, p("f", 4), p("g", 6)),
		next: endedWith(tl("a", [2]int{1, 40}), tl("b", [2]int{2, -1}), tl("e", [2]int{3, 5}), tl("f", [2]int{4, -1}), tl("g", [2]int{5, 7})),
		now:  111,
		wait: time.Minute,
		wantChanges: []change{
			{Kind: "left", ID: "g", Start: 6, ObservedAt: ptr(at(10))},
			{Kind: "left", ID: "b", Start: 2, ObservedAt: ptr(at(51)), LeftAt: ptr(at(50))}, {Kind: "left", ID: "f", Start: 4, ObservedAt: ptr(at(10)), LeftAt: ptr(at(50))},
			{Kind: "session.ended"},
		},
		wantState: diff.State{RoomID: "r1", Started: true, Ended: true},
	}, {
		name: "a stint already left, shown again (an ended session's listing while lefts wait): nothing for it",
		prev: pending(gone(state(), "a", 1), 51, p("b", 2)),
		next: func() diff.Snapshot {
			s := endedWith(tl("a", [2]int{1, 40}), tl("b", [2]int{2, 45}))
			s.Participants = []diff.Participant{p("a", 1), p("b", 2)}
			return s
		}(),
		now:         52,
		wait:        time.Minute,
		wantChanges: []change{{Kind: "left", ID: "b", Start: 2, LeftAt: ptr(at(45)), ObservedAt: ptr(at(51))}, {Kind: "session.ended"}},
		wantState:   diff.State{RoomID: "r1", Started: true, Ended: true},
	}, {
		name:        "an ended session whose list shows a stint no poll saw still open: joined now, its left waits, and so does the end",
		prev:        state(),
		next:        endedWith(tl("v", [2]int{45, -1})),
		now:         51,
		wait:        time.Minute,
		wantChanges: []change{{Kind: "joined", ID: "v", Start: 45, Reconciled: true}},
		wantState: func() diff.State {
			s := state()
			s.Present = []diff.Participant{}
			s.Pending = []diff.Pending{{Participant: diff.Participant{ID: "v", Name: "name-v", JoinedAt: at(45)}, Since: at(51), Reconciled: true}}
			return s
		}(),
	}, {
		name: "then its end shows: its left, reconciled, then the end",
		prev: func() diff.State {
			s := state()
			s.Pending = []diff.Pending{{Participant: diff.Participant{ID: "v", Name: "name-v", JoinedAt: at(45)}, Since: at(51), Reconciled: true}}
			return s
		}(),
		next:        endedWith(tl("v", [2]int{45, 47})),
		now:         55,
		wait:        time.Minute,
		wantChanges: []change{{Kind: "left", ID: "v", Start: 45, LeftAt: ptr(at(47)), Reconciled: true, ObservedAt: ptr(at(51))}, {Kind: "session.ended"}},
		wantState:   diff.State{RoomID: "r1", Started: true, Ended: true},
	}, {
		name: "an ended session whose list could not be read: its end waits for it",
		prev: state(p("a", 1)),
		next: func() diff.Snapshot { s := endedWith(); s.Everyone = nil; return s }(),
		now:  51,
		wait: time.Minute,
		wantState: func() diff.State {
			s := pending(state(), 51, p("a", 1))
			s.Present, s.Ending = []diff.Participant{}, ptr(at(51))
			return s
		}(),
	}, {
		name: "then the list is read: a's end, the stint no poll saw, then the end",
		prev: func() diff.State {
			s := pending(state(), 51, p("a", 1))
			s.Ending = ptr(at(51))
			return s
		}(),
		next: endedWith(tl("a", [2]int{1, 50}), tl("v", [2]int{20, 22})),
		now:  55,
		wait: time.Minute,
		wantChanges: []change{
			{Kind: "joined", ID: "v", Start: 20, Reconciled: true}, {Kind: "left", ID: "v", Start: 20, LeftAt: ptr(at(22)), Reconciled: true},
			{Kind: "left", ID: "a", Start: 1, LeftAt: ptr(at(50)), ObservedAt: ptr(at(51))},
			{Kind: "session.ended"},
		},
		wantState: diff.State{RoomID: "r1", Started: true, Ended: true},
	}, {
		name: "a state from before reconciliation, last saved at second 10: the stints that ended after are reconciled",
		prev: func() diff.State {
			s := diff.State{RoomID: "r1", Started: true, Present: stored(p("a", 1))}
			s.Saved = at(10)
			return s
		}(),
		next:        everyone(snap(true, p("a", 1)), tl("a", [2]int{1, -1}), tl("c", [2]int{3, 4}), tl("d", [2]int{5, 9}, [2]int{11, 12})),
		wantChanges: []change{{Kind: "joined", ID: "d", Start: 11, Reconciled: true}, {Kind: "left", ID: "d", Start: 11, LeftAt: ptr(at(12)), Reconciled: true}},
		wantState:   gone(state(p("a", 1)), "c", 3, "d", 11),
	}, {
		name:      "a state from before reconciliation takes the list's ended stints as published",
		prev:      diff.State{RoomID: "r1", Started: true, Present: stored(p("a", 1))},
		next:      everyone(snap(true, p("a", 1)), tl("a", [2]int{1, -1}), tl("c", [2]int{3, 4})),
		wantState: gone(state(p("a", 1)), "c", 3),
	}, {
		name:        "a state from before reconciliation, without the list: nothing reconciled",
		prev:        diff.State{RoomID: "r1", Started: true, Present: stored(p("a", 1))},
		next:        snap(true, p("a", 1), p("d", 10, [2]int{2, 4})),
		wantChanges: []change{{Kind: "joined", ID: "d", Start: 10}},
		wantState:   diff.State{RoomID: "r1", Started: true, Present: stored(p("a", 1), p("d", 10))},
	}, {
		name:      "after the end, nothing more",
		prev:      diff.State{RoomID: "r1", Started: true, Ended: true},
		next:      snap(true, p("a", 1)),
		wantState: diff.State{RoomID: "r1", Started: true, Ended: true},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes, got := diff.Compute(tt.prev, tt.next, at(tt.now), tt.wait)
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
	diff.Compute(prev, next, t0, 0)
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

// TestOlder: an answer is older than the state when it shows someone in an earlier
// stint than the state's, present or pending; a participant listed twice counts
// once, as first listed; a state not sorted by participantId (written by hand) is
// read as well.
func TestOlder(t *testing.T) {
	state := diff.State{Present: stored(p("a", 10), p("c", 10)), Pending: []diff.Pending{{Participant: stored(p("b", 10))[0], Since: at(20)}}}
	unsorted := diff.State{Present: stored(p("c", 10), p("a", 10)), Pending: state.Pending}
	tests := []struct {
		name  string
		state diff.State
		list  []diff.Participant
		want  string
	}{
		{"the same stints", state, []diff.Participant{p("a", 10), p("c", 10)}, ""},
		{"later stints and newcomers", state, []diff.Participant{p("a", 12), p("b", 11), p("d", 1)}, ""},
		{"an earlier stint of someone present", state, []diff.Participant{p("a", 10), p("c", 9)}, "c"},
		{"an earlier stint of someone pending", state, []diff.Participant{p("b", 9)}, "b"},
		{"listed twice, the earlier stint second", state, []diff.Participant{p("a", 10), p("a", 9)}, ""},
		{"listed twice, the earlier stint first", state, []diff.Participant{p("a", 9), p("a", 10)}, "a"},
		{"a state not sorted", unsorted, []diff.Participant{p("a", 10), p("c", 9)}, "c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, older := tt.state.Older(diff.Snapshot{Participants: tt.list})
			if id != tt.want || older != (tt.want != "") {
				t.Errorf("Older = %q, %v; want %q", id, older, tt.want)
			}
		})
	}
}
