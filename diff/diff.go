// Package diff is rollcall's vocabulary and its pure logic: what a participant, a
// snapshot of a session and a change of presence are, and how two snapshots turn into
// changes. It does no I/O, reads no clock and logs nothing.
//
// # Contract
//
// A stint is one continuous presence of a participantId in a session: one timelog
// entry, identified by the participantId and the start of that entry. Compute compares
// the stints of the previous state with those of a new snapshot of the active list,
// and with the session's list of all participants when the cycle read it:
//
//   - a stint present now and not before is Joined;
//   - a stint present before and not now has ended, but only when the snapshot is
//     Complete (every page fetched and consistent) or the session has ended: absence
//     in an incomplete snapshot proves nothing, so such a stint stays in the state and
//     the next complete snapshot decides;
//   - a stint that ended is Left with LeftAt its timelog end, taken from the
//     participant's timelog in the active list (a rejoin) or in the list of all
//     participants. A left whose end neither shows waits in the state (Pending), to be
//     published once the end shows, or without it (LeftAt nil) once it has waited
//     wait; a stint still there when its session ended takes the session's end then.
//     A pending stint that the active list shows again never left: it is present
//     again, and nothing is published;
//   - a participantId present in both with a different stint start left and came
//     back between the two snapshots: Left for the old stint, then Joined for the new
//     one. This needs no completeness, since the new stint is itself the proof;
//   - an answer that shows a participant in a stint older than the one in the state is
//     older than the state (a cache, a lagging replica): it yields nothing; one that
//     shows a stint already Left (Gone) yields nothing for it;
//   - a stint that ended and was never published (it began and ended between two
//     polls, or while rollcall was not polling), found in a timelog, is Joined and then
//     Left, both Reconciled, once: the state remembers, per participantId, the start of
//     its last published stint (Gone), and stints that start later are the new ones.
//     A state written before rollcall reconciled (Accounted false) adopts the list of
//     all participants as published, the first time it reads it;
//   - a session is Started the first time the API returns its document (Found);
//   - a session whose status is "ended" yields Left for every stint still present and
//     then, once no left waits for its end, SessionEnded; after that the state is
//     Ended and Compute yields nothing more.
//
// Within one call, changes come in this order: SessionStarted, then the participants'
// changes in the order they happened (a Joined at its start, a Left at its end, or at
// its start when its end is unknown; then by participantId, stint and Joined before
// Left), and SessionEnded last. A participant's changes follow its stints' order, in
// one call and across calls; a Left always follows its stint's Joined. A participantId
// listed twice in a snapshot counts once (the first).
package diff

import (
	"cmp"
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// StatusEnded is the session status after which no one is present.
const StatusEnded = "ended"

// Entry is one timelog entry of a participant: one stint. End is nil while it lasts.
type Entry struct {
	Start time.Time  `json:"start"`
	End   *time.Time `json:"end"`
}

// Participant is a participant in one of its stints, as far as events need it.
type Participant struct {
	ID          string          `json:"id"`
	Name        string          `json:"name,omitempty"`
	JoinedAt    time.Time       `json:"joinedAt"` // start of the stint's timelog entry
	Mode        string          `json:"mode,omitempty"`
	SDKType     string          `json:"sdkType,omitempty"`
	DeviceInfo  json.RawMessage `json:"deviceInfo,omitempty"`
	GeoLocation json.RawMessage `json:"geoLocation,omitempty"`
	// Timelog is the participant's whole timelog as last fetched. It is not kept in the
	// state: only a fresh snapshot's timelog is used, to find when a stint ended.
	Timelog []Entry `json:"-"`
}

// Snapshot is what one scan of a session's active participants found.
type Snapshot struct {
	SessionID string     `json:"sessionId"`
	RoomID    string     `json:"roomId,omitempty"`
	Status    string     `json:"status,omitempty"` // "ongoing", "ended", or any other string, kept opaque
	Start     time.Time  `json:"start"`
	End       *time.Time `json:"end,omitempty"` // when the session ended, if it has
	// Found is true when the API returned the session itself, not just an empty list.
	Found bool `json:"-"`
	// Pages is how many pages the scan took. A list of one page came in one answer:
	// it cannot have shifted mid-scan.
	Pages int `json:"-"`
	// Complete is true when every page was fetched and the pages agreed with each
	// other; only then does absence from Participants mean a participant left.
	Complete     bool          `json:"-"`
	Participants []Participant `json:"-"`
	// Everyone is the session's list of all participants, present or gone, each with
	// its whole timelog, when the cycle read it after the scan; nil when it did not.
	Everyone []Participant `json:"-"`
	// SetAside are the records of the active list that could not be used. One whose
	// ID is known keeps what the state says of it: its absence from Participants
	// proves nothing.
	SetAside []SetAside `json:"-"`
}

// State is what rollcall remembers of a session between cycles.
type State struct {
	RoomID  string        `json:"roomId,omitempty"`
	Started bool          `json:"started,omitempty"` // SessionStarted was emitted
	Ended   bool          `json:"ended,omitempty"`   // SessionEnded was emitted; nothing more to do
	Present []Participant `json:"present,omitempty"` // by participantId
	// Pending are the stints gone from the active list whose Left waits for their
	// timelog end, by participantId.
	Pending []Pending `json:"pending,omitempty"`
	// Gone is, per participantId whose stint has been Left, the start of the last such
	// stint: every stint of it up to that one has been published.
	Gone map[string]time.Time `json:"gone,omitempty"`
	// Accounted is true when every stint ever published is in Present, Pending or
	// Gone, so that the others can be reconciled. States from before reconciliation
	// lack it.
	Accounted bool `json:"accounted,omitempty"`
	// Ending is when the session was first found ended, while session.ended waits
	// for the list of all participants to be read (for up to wait).
	Ending *time.Time `json:"ending,omitempty"`
	// Saved is when the state was last saved, as the store says; not stored in it.
	Saved time.Time `json:"-"`
	// Outbox holds the changes that led to this state until the stream has
	// acknowledged them. Compute ignores it and returns a state without one.
	Outbox *Outbox `json:"outbox,omitempty"`
}

// Pending is a stint gone from the active list, whose Left waits for its end.
type Pending struct {
	Participant
	Since time.Time `json:"since"` // when the stint was first found gone
	// Reconciled: a stint no poll saw, found open in the list of all participants of
	// a session that ended; its Joined went out, Reconciled, and so will its Left.
	Reconciled bool `json:"reconciled,omitempty"`
	// Open: the list of all participants, when last read after the wait was over,
	// showed the stint still open. The two lists disagree, and the left waits for
	// its end there however long that takes, until the session's end settles it.
	Open bool `json:"open,omitempty"`
}

// Outbox is a cycle's changes, kept with the state they lead to, so that changes
// published but not yet acknowledged when a cycle stops are sent again as they were,
// whatever happened in the session since.
type Outbox struct {
	Session    Snapshot  `json:"session"` // the session's details, without participants
	ObservedAt time.Time `json:"observedAt"`
	Changes    []Change  `json:"changes"`
}

// Kind says what a Change is.
type Kind int

const (
	// Joined means a stint was seen for the first time.
	Joined Kind = iota + 1
	// Left means a stint that was seen before has ended.
	Left
	// SessionStarted means the session was seen for the first time.
	SessionStarted
	// SessionEnded means the session ended; it follows the Left of everyone still
	// present.
	SessionEnded
)

func (k Kind) String() string {
	switch k {
	case Joined:
		return "joined"
	case Left:
		return "left"
	case SessionStarted:
		return "session.started"
	case SessionEnded:
		return "session.ended"
	}
	return "unknown"
}

// Change is one event to publish. Participant is zero for session changes.
type Change struct {
	Kind        Kind        `json:"kind"`
	Participant Participant `json:"participant"`
	LeftAt      *time.Time  `json:"leftAt,omitempty"` // Left only: the stint's timelog end, when known
	// Reconciled marks both changes of a stint that no poll saw, found in a timelog.
	Reconciled bool `json:"reconciled,omitempty"`
	// ObservedAt is when a Left that waited for its end was first found gone; nil for
	// the others, observed when their cycle was.
	ObservedAt *time.Time `json:"observedAt,omitempty"`
}

// Compute returns the changes from prev to next and the state to keep after them;
// now is when next was taken, and wait how long a left may wait for its end. It does
// not modify its arguments.
func Compute(prev State, next Snapshot, now time.Time, wait time.Duration) ([]Change, State) {
	prev.Outbox = nil
	if prev.Ended {
		return nil, prev
	}
	at := make(map[string]int, len(next.Participants)) // participantId -> index in current
	current := next.Participants                       // copied only if someone is listed twice
	for i, p := range next.Participants {
		if _, dup := at[p.ID]; dup {
			current = slices.Clone(next.Participants[:i])
			break
		}
		at[p.ID] = i
	}
	if len(current) < len(next.Participants) {
		for _, p := range next.Participants[len(current):] {
			if _, dup := at[p.ID]; !dup {
				at[p.ID] = len(current)
				current = append(current, p)
			}
		}
	}
	if _, older := prev.Older(next); older {
		return nil, prev // an answer older than the state: it proves nothing
	}
	known := make(map[string]bool, len(prev.Present)+len(prev.Pending)) // participantIds in the state
	for _, old := range prev.Present {
		known[old.ID] = true
	}
	for _, old := range prev.Pending {
		known[old.ID] = true
	}
	unreadable := make(map[string]bool, len(next.SetAside)) // listed, but set aside
	for _, a := range next.SetAside {
		unreadable[a.ID] = a.ID != ""
	}
	ended := next.Status == StatusEnded
	c := computation{
		next: next, now: now, wait: wait, ended: ended,
		everyone: index(next.Everyone),
		state: State{
			RoomID: cmp.Or(next.RoomID, prev.RoomID), Started: prev.Started || next.Found,
			Gone: maps.Clone(prev.Gone),
		},
		accounted: prev.Accounted || !prev.Started,
	}
	if !c.accounted && next.Everyone != nil {
		c.adopt(prev.Saved)
	}
	if !prev.Started && next.Found {
		c.changes = append(c.changes, Change{Kind: SessionStarted})
	}
	size := len(current) // kept for every poll a session's loop caches: no room to spare
	if !next.Complete && !ended {
		size += len(prev.Present) // unproven absences are kept too
	}
	c.state.Present = make([]Participant, 0, size)
	for _, old := range prev.Present {
		i, seen := at[old.ID]
		switch {
		case seen && current[i].JoinedAt.Equal(old.JoinedAt) && ended:
			c.left(stored(current[i]), endOf(current[i].Timelog, old.JoinedAt), now, false, false)
		case seen && current[i].JoinedAt.Equal(old.JoinedAt):
			// Same stint; keep what the API says of it now (name and mode may change).
		case seen:
			c.rejoined(old, current[i], nil, false)
		case ended || (next.Complete && !unreadable[old.ID]):
			c.left(old, nil, now, false, false)
		default:
			c.state.Present = append(c.state.Present, old) // unproven absence: keep it
		}
	}
	for _, old := range prev.Pending {
		i, seen := at[old.ID]
		switch {
		case seen && current[i].JoinedAt.Equal(old.JoinedAt) && !ended:
			// Shown again: it never left. Present again, below.
		case seen && current[i].JoinedAt.Equal(old.JoinedAt):
			c.left(stored(current[i]), endOf(current[i].Timelog, old.JoinedAt), old.Since, old.Reconciled, old.Open)
		case seen:
			c.rejoined(old.Participant, current[i], &old.Since, old.Reconciled)
		case unreadable[old.ID] && !ended:
			c.state.Pending = append(c.state.Pending, old) // nothing new is known of it
		default:
			c.left(old.Participant, nil, old.Since, old.Reconciled, old.Open)
		}
	}
	for _, p := range current {
		if last, ok := c.state.Gone[p.ID]; ok && !known[p.ID] && !p.JoinedAt.After(last) {
			if p.JoinedAt.Equal(last) && !ended && c.open(p) {
				// Its left went out without its end, and both lists show it open: it
				// never left. Present again, without a second joined (a stint has
				// one), and its real leave publishes nothing more (see left).
				c.state.Present = append(c.state.Present, stored(p))
			}
			continue // else a stint already left: an answer that lags behind the list's
		}
		if !known[p.ID] {
			c.missed(p, p.JoinedAt)
			c.joined(p)
		}
		if !ended {
			c.state.Present = append(c.state.Present, stored(p))
		}
	}
	if c.accounted {
		c.reconcile()
	}
	c.state.Accounted = c.accounted && c.state.Started
	if ended && next.Everyone == nil && c.accounted {
		// The list of all participants could not be read: the stints no poll saw
		// are in it alone. Read it on the next polls, for up to wait.
		ending := cmp.Or(prev.Ending, &now)
		if ending.Add(wait).After(now) {
			c.state.Ending = ending
		}
	}
	if ended && len(c.state.Pending) == 0 && c.state.Ending == nil {
		// What is left of the session is that it ended. While lefts wait for their
		// end, or the list is still to be read, so does session.ended, which comes
		// after every event of the session.
		c.changes = append(c.changes, Change{Kind: SessionEnded})
		c.state = State{RoomID: c.state.RoomID, Started: c.state.Started, Ended: true}
	}
	Sort(c.changes)
	slices.SortFunc(c.state.Present, func(a, b Participant) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(c.state.Pending, func(a, b Pending) int { return cmp.Compare(a.ID, b.ID) })
	return c.changes, c.state
}

// computation is one call of Compute under way.
type computation struct {
	next     Snapshot
	now      time.Time
	wait     time.Duration
	ended    bool
	everyone map[string]Participant
	// accounted: every stint published is in the state (see State.Accounted), so
	// that the others can be told apart and reconciled.
	accounted bool
	changes   []Change
	state     State
}

// left publishes the end of stint p, found gone at since: at end if known, or at its
// end in the list of all participants. A stint without either waits in the state
// until since+wait; then for as long as the list shows it open (wasOpen: it did when
// last read), since the two lists then disagree and the active list may be the one
// that is wrong; else it is Left without an end. In a session that ended, it
// takes the session's end if it was still there as far as anyone knew when the
// session ended (open in the list, or found gone at or after the end). A stint
// whose Left went out already is not Left again.
func (c *computation) left(p Participant, end *time.Time, since time.Time, reconciled, wasOpen bool) {
	if last, ok := c.state.Gone[p.ID]; ok && !p.JoinedAt.After(last) {
		return
	}
	if end == nil {
		end = endOf(c.everyone[p.ID].Timelog, p.JoinedAt)
	}
	open := wasOpen
	if c.next.Everyone != nil {
		open = c.open(p)
	}
	ch := Change{Kind: Left, Participant: p, LeftAt: end, Reconciled: reconciled}
	switch {
	case end != nil:
	case since.Add(c.wait).After(c.now):
		c.state.Pending = append(c.state.Pending, Pending{Participant: p, Since: since, Reconciled: reconciled})
		return
	case open && !c.ended:
		// Past its wait, and the lists still disagree: not a list that lags, one
		// of them is wrong, and a left is never published on the active list's word
		// alone.
		c.state.Pending = append(c.state.Pending, Pending{Participant: p, Since: since, Reconciled: reconciled, Open: true})
		return
	case c.ended && c.next.End != nil && (reconciled || open || !since.Before(*c.next.End)):
		ch.LeftAt = c.next.End
	case reconciled:
		ch.LeftAt = &since // it had ended when the session was found ended
	}
	if ch.LeftAt != nil && ch.LeftAt.Before(p.JoinedAt) {
		// A session that ended before the stint began, as the API tells it: its end
		// is not the stint's. A reconciled left must have one: the stint lasted no
		// time, rather than less than none.
		ch.LeftAt = nil
		if reconciled {
			ch.LeftAt = &p.JoinedAt
		}
	}
	if since.Before(c.now) {
		ch.ObservedAt = &since
	}
	c.changes = append(c.changes, ch)
	c.gone(p.ID, p.JoinedAt)
}

// open reports whether the list of all participants, read in this computation,
// shows p's stint open.
func (c *computation) open(p Participant) bool {
	for _, e := range c.everyone[p.ID].Timelog {
		if e.Start.Equal(p.JoinedAt) {
			return e.End == nil
		}
	}
	return false
}

// rejoined publishes the end of old, shown by cur, the same participant in a later
// stint: old's Left (at once: cur's Joined must follow it), the stints between the
// two that no poll saw, and cur's Joined. since is when old was found gone, if it was.
func (c *computation) rejoined(old, cur Participant, since *time.Time, reconciled bool) {
	ch := Change{Kind: Left, Participant: old, LeftAt: endOf(cur.Timelog, old.JoinedAt), Reconciled: reconciled}
	if ch.LeftAt == nil {
		ch.LeftAt = endOf(c.everyone[old.ID].Timelog, old.JoinedAt)
	}
	if since != nil && since.Before(c.now) {
		ch.ObservedAt = since
	}
	c.changes = append(c.changes, ch)
	c.gone(old.ID, old.JoinedAt)
	c.missed(cur, cur.JoinedAt)
	c.joined(cur)
}

// joined publishes p's stint, and its end if the session has ended: everyone who
// just joined has also left with it.
func (c *computation) joined(p Participant) {
	c.changes = append(c.changes, Change{Kind: Joined, Participant: p})
	if c.ended {
		c.left(stored(p), endOf(p.Timelog, p.JoinedAt), c.now, false, false)
	}
}

// missed publishes the stints of p's timelog that ended, that started after p's
// last published one and, unless until is zero, before until, as Joined and Left,
// Reconciled, with p's details.
func (c *computation) missed(p Participant, until time.Time) {
	if !c.accounted {
		return // what was published is not known
	}
	for _, e := range p.Timelog {
		if last, ok := c.state.Gone[p.ID]; (ok && !e.Start.After(last)) || (!until.IsZero() && !e.Start.Before(until)) || e.End == nil {
			continue
		}
		q := stored(p)
		q.JoinedAt = e.Start
		end := *e.End
		c.changes = append(c.changes, Change{Kind: Joined, Participant: q, Reconciled: true},
			Change{Kind: Left, Participant: q, LeftAt: &end, Reconciled: true})
		c.gone(p.ID, e.Start)
	}
}

// reconcile publishes the stints in the list of all participants that no poll saw,
// of the participants neither present nor pending. A participant's stints from its
// first open one on wait: the active list will show it.
func (c *computation) reconcile() {
	busy := make(map[string]bool, len(c.state.Present)+len(c.state.Pending))
	for _, p := range c.state.Present {
		busy[p.ID] = true
	}
	for _, p := range c.state.Pending {
		busy[p.ID] = true
	}
	for _, p := range c.next.Everyone {
		if busy[p.ID] {
			continue
		}
		busy[p.ID] = true // listed twice: the first counts
		var open *Entry
		for _, e := range p.Timelog {
			if e.End == nil {
				open = &e
				break
			}
		}
		if open == nil {
			c.missed(p, time.Time{})
			continue
		}
		c.missed(p, open.Start)
		if last, ok := c.state.Gone[p.ID]; c.ended && (!ok || open.Start.After(last)) {
			// The session is over, so this stint is too, though the list does not
			// show its end yet: joined now, and its left waits for its end.
			q := stored(p)
			q.JoinedAt = open.Start
			c.changes = append(c.changes, Change{Kind: Joined, Participant: q, Reconciled: true})
			c.left(q, nil, c.now, true, false)
		}
	}
}

// adopt takes the stints that ended, in the list of all participants, before the
// state was last saved (all, if that is not known) as published: a state from before
// reconciliation does not know which were, and a stint that ended after the last save
// was not (a rollcall that publishes a left saves its state after).
func (c *computation) adopt(saved time.Time) {
	if c.state.Gone == nil {
		c.state.Gone = make(map[string]time.Time)
	}
	for _, p := range c.next.Everyone {
		for _, e := range p.Timelog {
			if e.End != nil && (saved.IsZero() || !e.End.After(saved)) && e.Start.After(c.state.Gone[p.ID]) {
				c.state.Gone[p.ID] = e.Start
			}
		}
	}
	c.accounted = true
}

// gone notes that id's stint that started at start was Left.
func (c *computation) gone(id string, start time.Time) {
	if !c.accounted {
		return
	}
	if last, ok := c.state.Gone[id]; ok && !start.After(last) {
		return
	}
	if c.state.Gone == nil {
		c.state.Gone = make(map[string]time.Time)
	}
	c.state.Gone[id] = start
}

// Sort puts a cycle's changes in the order Compute gives them: SessionStarted, the
// participants' changes in the order they happened, SessionEnded.
func Sort(changes []Change) {
	slices.SortStableFunc(changes, func(a, b Change) int {
		return cmp.Or(cmp.Compare(rank(a.Kind), rank(b.Kind)), a.when().Compare(b.when()),
			cmp.Compare(a.Participant.ID, b.Participant.ID), a.Participant.JoinedAt.Compare(b.Participant.JoinedAt),
			cmp.Compare(a.Kind, b.Kind))
	})
}

// rank puts session changes around the participants'.
func rank(k Kind) int {
	switch k {
	case SessionStarted:
		return 0
	case SessionEnded:
		return 2
	}
	return 1
}

// when is when a participant's change happened, for ordering: a Left without an end
// is ordered at its stint's start, which keeps it before the participant's next
// stint, and a Left never before its Joined.
func (c Change) when() time.Time {
	if c.Kind == Left && c.LeftAt != nil && c.LeftAt.After(c.Participant.JoinedAt) {
		return *c.LeftAt
	}
	return c.Participant.JoinedAt
}

// index maps the participants of the list of all participants by participantId.
func index(list []Participant) map[string]Participant {
	m := make(map[string]Participant, len(list))
	for _, p := range list {
		if _, dup := m[p.ID]; !dup {
			m[p.ID] = p
		}
	}
	return m
}

// endOf returns the end of the timelog entry that started at start, if it has one.
func endOf(timelog []Entry, start time.Time) *time.Time {
	for _, e := range timelog {
		if e.Start.Equal(start) && e.End != nil {
			end := *e.End
			return &end
		}
	}
	return nil
}

// stored drops what the state does not keep.
func stored(p Participant) Participant {
	p.Timelog = nil
	return p
}

// Equal reports whether two states are the same, so that an unchanged one need not be
// saved again. DeviceInfo and GeoLocation are not compared: they describe the stint's
// connection, which does not change while it lasts, and their raw JSON does not come
// back byte for byte from a store (compacted, escaped).
func (s State) Equal(o State) bool {
	same := func(a, b Participant) bool {
		return a.ID == b.ID && a.Name == b.Name && a.JoinedAt.Equal(b.JoinedAt) && a.Mode == b.Mode && a.SDKType == b.SDKType
	}
	return s.RoomID == o.RoomID && s.Started == o.Started && s.Ended == o.Ended && s.Accounted == o.Accounted &&
		(s.Outbox == nil) == (o.Outbox == nil) &&
		slices.EqualFunc(s.Present, o.Present, same) &&
		slices.EqualFunc(s.Pending, o.Pending, func(a, b Pending) bool {
			return same(a.Participant, b.Participant) && a.Since.Equal(b.Since) && a.Reconciled == b.Reconciled && a.Open == b.Open
		}) &&
		maps.EqualFunc(s.Gone, o.Gone, time.Time.Equal) &&
		(s.Ending == nil) == (o.Ending == nil) && (s.Ending == nil || s.Ending.Equal(*o.Ending))
}

// Older reports the first participant that snap shows in an older stint than s
// does, if any: the answer is older than the state (a cache, a lagging replica), and
// Compute takes nothing from it.
func (s State) Older(snap Snapshot) (id string, older bool) {
	// Compute leaves Present and Pending sorted by participantId: no map to build.
	present, pending := byID(s.Present), byID(s.Pending)
	stint := func(id string) (time.Time, bool) {
		if i, ok := slices.BinarySearchFunc(pending, id, func(p Pending, id string) int { return cmp.Compare(p.ID, id) }); ok {
			return pending[i].JoinedAt, true
		}
		if i, ok := slices.BinarySearchFunc(present, id, func(p Participant, id string) int { return cmp.Compare(p.ID, id) }); ok {
			return present[i].JoinedAt, true
		}
		return time.Time{}, false
	}
	for i, p := range snap.Participants {
		if at, ok := stint(p.ID); ok && p.JoinedAt.Before(at) &&
			!slices.ContainsFunc(snap.Participants[:i], func(q Participant) bool { return q.ID == p.ID }) { // listed twice: the first counts
			return p.ID, true
		}
	}
	return "", false
}

// byID returns list sorted by participantId: list itself if it is.
func byID[T interface{ id() string }](list []T) []T {
	order := func(a, b T) int { return cmp.Compare(a.id(), b.id()) }
	if slices.IsSortedFunc(list, order) {
		return list
	}
	list = slices.Clone(list)
	slices.SortStableFunc(list, order)
	return list
}

func (p Participant) id() string { return p.ID }

// Absent reports whether a stint of s is missing from snap: the absence that a left
// would rest on.
func (s State) Absent(snap Snapshot) bool {
	listed := make(map[string]bool, len(snap.Participants))
	for _, p := range snap.Participants {
		listed[p.ID] = true
	}
	for _, p := range s.Present {
		if !listed[p.ID] {
			return true
		}
	}
	return false
}

// Union is what two scans of a session, one after the other, saw together: whoever
// either lists is present (with the later scan's stint), so only an absence from both
// counts. It is complete only if both are, and ended if the later one is.
func Union(first, second Snapshot) Snapshot {
	u := second
	u.Complete = first.Complete && second.Complete
	u.Found = first.Found || second.Found
	u.RoomID = cmp.Or(second.RoomID, first.RoomID)
	u.Pages = max(first.Pages, second.Pages)
	listed := make(map[string]bool, len(second.Participants))
	for _, p := range second.Participants {
		listed[p.ID] = true
	}
	u.Participants = slices.Clone(second.Participants)
	for _, p := range first.Participants {
		if !listed[p.ID] {
			u.Participants = append(u.Participants, p)
		}
	}
	return u
}
