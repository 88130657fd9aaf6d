package diff_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/diff"
	"pgregory.net/rapid"
)

// TestComputeProperty runs Compute over random sessions: participants join, leave and
// come back between polls, snapshots are complete, incomplete (some of the present
// hidden) or find no session document, may come with the list of all participants,
// lefts may wait for their end, and the session may end. Replaying every change
// emitted must tell the true story of who was present, as far as the snapshots show
// it, each participant's stints in order; and once the session has ended with the
// list read, every stint that ever was, with its true times.
func TestComputeProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newTrueWorld()
		r := newReplay()
		var state diff.State
		wait := time.Duration(rapid.IntRange(0, 6).Draw(t, "wait")) * time.Second
		steps := rapid.IntRange(1, 40).Draw(t, "steps")
		// Past the last step about half the time: then the session never ends.
		endAt := rapid.IntRange(0, 2*steps).Draw(t, "endAt")
		for step := range steps {
			if step == endAt {
				w.end()
			}
			if !w.ended {
				for range rapid.IntRange(0, 3).Draw(t, "changes") {
					w.toggle(rapid.SampledFrom(pool).Draw(t, "who"))
				}
			}
			w.tick(t)
			snap := w.snapshot(t)
			changes, next := diff.Compute(state, snap, w.now, wait)
			t.Logf("step %d: %s -> %v", step, describe(snap), summarizeStints(changes))
			r.apply(t, step, changes)
			checkStep(t, step, w, snap, changes, r, next)
			state = next
		}
	})
}

// pool is small, so that the same participants leave and come back often.
var pool = []string{"a", "b", "c", "d", "e", "f"}

// stint is a participantId in the stint that started at second start after t0.
type stint struct {
	id    string
	start int
}

func (s stint) String() string { return fmt.Sprintf("%s@%d", s.id, s.start) }

func stintOf(p diff.Participant) stint {
	return stint{p.ID, int(p.JoinedAt.Sub(t0) / time.Second)}
}

// trueWorld is the session as it really is; snapshots are taken of it.
type trueWorld struct {
	now     time.Time
	timelog map[string][]diff.Entry
	ended   bool
	atEnd   []string // who was present when the session ended
}

func newTrueWorld() *trueWorld {
	return &trueWorld{now: t0, timelog: map[string][]diff.Entry{}}
}

func (w *trueWorld) tick(t *rapid.T) {
	w.now = w.now.Add(time.Duration(rapid.IntRange(1, 3).Draw(t, "seconds")) * time.Second)
}

func (w *trueWorld) isPresent(id string) bool {
	log := w.timelog[id]
	return len(log) > 0 && log[len(log)-1].End == nil
}

// toggle makes id leave if present, else join in a new stint. The clock moves on after
// each change, so that a rejoin never starts in the same second as the stint before.
func (w *trueWorld) toggle(id string) {
	log := w.timelog[id]
	if w.isPresent(id) {
		log[len(log)-1].End = ptr(w.now)
	} else {
		w.timelog[id] = append(log, diff.Entry{Start: w.now})
	}
	w.now = w.now.Add(time.Second)
}

// end ends the session: everyone present leaves with it, at the same time.
func (w *trueWorld) end() {
	for _, id := range pool {
		if log := w.timelog[id]; w.isPresent(id) {
			w.atEnd = append(w.atEnd, id)
			log[len(log)-1].End = ptr(w.now)
		}
	}
	w.ended = true
	w.now = w.now.Add(time.Second)
}

func (w *trueWorld) present() []stint {
	var out []stint
	for _, id := range pool {
		if w.isPresent(id) {
			out = append(out, stintOf(w.participant(id)))
		}
	}
	return out
}

// participant is id as the API lists it: in its open stint, or its last one.
func (w *trueWorld) participant(id string) diff.Participant {
	log := slices.Clone(w.timelog[id])
	return diff.Participant{ID: id, JoinedAt: log[len(log)-1].Start, Timelog: log}
}

// endOf is when stint s really ended, nil if it has not.
func (w *trueWorld) endOf(s stint) *time.Time {
	for _, e := range w.timelog[s.id] {
		if e.Start.Equal(at(s.start)) {
			return e.End
		}
	}
	return nil
}

// snapshot takes one scan of the world: complete, incomplete (a random subset of the
// present hidden), or without the session document. Once the session has ended, the
// scan lists who was present at the end, or no one.
func (w *trueWorld) snapshot(t *rapid.T) diff.Snapshot {
	answer := rapid.SampledFrom([]string{"complete", "incomplete", "no document"}).Draw(t, "answer")
	if answer == "no document" {
		return diff.Snapshot{SessionID: "s1", Pages: 1}
	}
	snap := diff.Snapshot{
		SessionID: "s1", RoomID: "r1", Status: "ongoing", Start: t0, Found: true,
		Complete: answer == "complete",
		Pages:    rapid.IntRange(1, 3).Draw(t, "pages"), // Compute must not care
	}
	var listed []string
	for _, id := range pool {
		if w.isPresent(id) {
			listed = append(listed, id)
		}
	}
	if w.ended {
		snap.Status, snap.End = diff.StatusEnded, ptr(w.now)
		listed = nil
		if rapid.Bool().Draw(t, "listed after the end") {
			listed = w.atEnd
		}
	}
	for _, id := range rapid.Permutation(listed).Draw(t, "order") {
		if snap.Complete || !rapid.Bool().Draw(t, "hidden "+id) {
			snap.Participants = append(snap.Participants, w.participant(id))
		}
	}
	if rapid.Bool().Draw(t, "the list of all participants read") {
		snap.Everyone = []diff.Participant{} // read, if empty
		for _, id := range rapid.Permutation(pool).Draw(t, "list order") {
			if len(w.timelog[id]) > 0 {
				snap.Everyone = append(snap.Everyone, w.participant(id))
			}
		}
	}
	return snap
}

// existed reports whether s is a stint of the world, ended or not.
func (w *trueWorld) existed(s stint) bool {
	return slices.ContainsFunc(w.timelog[s.id], func(e diff.Entry) bool { return e.Start.Equal(at(s.start)) })
}

// replay applies changes as a subscriber would, and fails on any it could not apply.
type replay struct {
	present        map[stint]bool
	joined, left   map[stint]bool // ever
	last           map[string]int // per participantId, the start of its last joined stint
	started, ended int
	emitted        int
}

func newReplay() *replay {
	return &replay{present: map[stint]bool{}, joined: map[stint]bool{}, left: map[stint]bool{}, last: map[string]int{}}
}

func (r *replay) apply(t *rapid.T, step int, changes []diff.Change) {
	for _, c := range changes {
		s := stintOf(c.Participant)
		if r.ended > 0 {
			t.Fatalf("step %d: %v %v after session.ended", step, c.Kind, s)
		}
		switch c.Kind {
		case diff.SessionStarted:
			if r.emitted > 0 {
				t.Fatalf("step %d: session.started after %d other changes", step, r.emitted)
			}
			r.started++
		case diff.Joined:
			if r.joined[s] {
				t.Fatalf("step %d: joined %v a second time", step, s)
			}
			if last, ok := r.last[s.id]; ok && last > s.start {
				t.Fatalf("step %d: joined %v after %s@%d, a later stint", step, s, s.id, last)
			}
			for other := range r.present {
				if other.id == s.id {
					t.Fatalf("step %d: joined %v while %v has not left", step, s, other)
				}
			}
			r.joined[s], r.present[s] = true, true
			r.last[s.id] = s.start
		case diff.Left:
			if r.left[s] {
				t.Fatalf("step %d: left %v a second time", step, s)
			}
			if !r.present[s] {
				t.Fatalf("step %d: left %v, which had not joined", step, s)
			}
			r.left[s] = true
			delete(r.present, s)
		case diff.SessionEnded:
			r.ended++
		default:
			t.Fatalf("step %d: change of unknown kind %v", step, c.Kind)
		}
		r.emitted++
	}
}

func (r *replay) stints() []string {
	var out []string
	for s := range r.present {
		out = append(out, s.String())
	}
	slices.Sort(out)
	return out
}

// checkStep checks what one call of Compute emitted and kept against the world.
func checkStep(t *rapid.T, step int, w *trueWorld, snap diff.Snapshot, changes []diff.Change, r *replay, next diff.State) {
	var kept []string // joined, not left yet: present, or waiting for their end
	for _, p := range next.Present {
		kept = append(kept, stintOf(p).String())
	}
	waiting := map[stint]bool{}
	for _, p := range next.Pending {
		kept = append(kept, stintOf(p.Participant).String())
		waiting[stintOf(p.Participant)] = true
	}
	slices.Sort(kept)
	if d := cmp.Diff(r.stints(), kept); d != "" {
		t.Fatalf("step %d: the state's stints differ from the replayed ones (-replayed +state):\n%s", step, d)
	}
	if snap.Found && r.started != 1 {
		t.Fatalf("step %d: session found, but session.started emitted %d times", step, r.started)
	}

	ended := snap.Status == diff.StatusEnded
	for _, c := range changes {
		if c.Kind == diff.Joined && !w.existed(stintOf(c.Participant)) {
			t.Fatalf("step %d: joined %v, a stint that never existed", step, stintOf(c.Participant))
		}
		if c.Kind != diff.Left {
			continue
		}
		s := stintOf(c.Participant)
		// Without its own end, a stint of a session that ended takes the session's.
		atSessionEnd := ended && snap.Everyone == nil && c.LeftAt != nil && c.LeftAt.Equal(*snap.End)
		if end := w.endOf(s); c.LeftAt != nil && !atSessionEnd && (end == nil || !c.LeftAt.Equal(*end)) {
			t.Fatalf("step %d: left %v at %v, but it ended at %v", step, s, c.LeftAt, end)
		}
		if c.LeftAt == nil && snap.Everyone != nil {
			t.Fatalf("step %d: left %v without its end, though the list of all participants was read", step, s)
		}
		if c.Reconciled {
			continue // found in a timelog: ended, whatever the active list shows
		}
		if ended {
			continue
		}
		if slices.Contains(w.present(), s) {
			t.Fatalf("step %d: left %v, which is still present", step, s)
		}
		if !snap.Complete && c.ObservedAt == nil && !listedInAnotherStint(snap, s) { // a left that waited was proven before
			t.Fatalf("step %d: left %v on an incomplete snapshot that does not show it in a new stint", step, s)
		}
	}

	switch {
	case ended && (len(next.Pending) > 0 || next.Ending != nil):
		// Lefts wait for their end (the replay holds them, checked above), or the
		// list of all participants is still to be read, and session.ended waits.
		if r.ended != 0 || next.Ended || len(next.Present) > 0 {
			t.Fatalf("step %d: session ended with lefts waiting, but session.ended emitted %d times, state ended %v, present %v",
				step, r.ended, next.Ended, next.Present)
		}
	case ended:
		if r.ended != 1 || len(r.present) > 0 || !next.Ended {
			t.Fatalf("step %d: session ended, but session.ended emitted %d times, %v still present, state ended %v",
				step, r.ended, r.stints(), next.Ended)
		}
		if snap.Everyone != nil && len(changes) > 0 && changes[len(changes)-1].Kind == diff.SessionEnded {
			// Ended now, with the list: every stint there ever was has joined and left.
			for id, log := range w.timelog {
				for _, e := range log {
					if s := (stint{id, int(e.Start.Sub(t0) / time.Second)}); !r.joined[s] || !r.left[s] {
						t.Fatalf("step %d: the session ended with the list read, but %v has joined %v, left %v", step, s, r.joined[s], r.left[s])
					}
				}
			}
		}
	case snap.Complete:
		// The true ones, and those whose left waits for its end.
		for _, s := range w.present() {
			if !r.present[s] {
				t.Fatalf("step %d: after a complete snapshot, %v, present, is not in the replayed stints %v", step, s, r.stints())
			}
		}
		for s := range r.present {
			if !slices.Contains(w.present(), s) && !waiting[s] {
				t.Fatalf("step %d: after a complete snapshot, %v is in the replayed stints but neither present nor waiting", step, s)
			}
		}
	}
}

func listedInAnotherStint(snap diff.Snapshot, s stint) bool {
	for _, p := range snap.Participants {
		if p.ID == s.id && stintOf(p) != s {
			return true
		}
	}
	return false
}

func describe(snap diff.Snapshot) string {
	var listed []string
	for _, p := range snap.Participants {
		listed = append(listed, stintOf(p).String())
	}
	return fmt.Sprintf("found=%v status=%q complete=%v listed=%v", snap.Found, snap.Status, snap.Complete, listed)
}

func summarizeStints(cs []diff.Change) []string {
	var out []string
	for _, c := range cs {
		if c.Participant.ID == "" {
			out = append(out, c.Kind.String())
		} else {
			out = append(out, c.Kind.String()+" "+stintOf(c.Participant).String())
		}
	}
	return out
}
