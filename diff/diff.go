// Package diff is rollcall's vocabulary and its pure logic: what a participant, a
// snapshot of a session and a change of presence are, and how two snapshots turn into
// changes. It does no I/O, reads no clock and logs nothing.
//
// # Contract
//
// A stint is one continuous presence of a participantId in a session: one timelog
// entry, identified by the participantId and the start of that entry. Compute compares
// the stints present in the previous state with those of a new snapshot:
//
//   - a stint present now and not before is Joined;
//   - a stint present before and not now is Left, but only when the snapshot is
//     Complete (every page fetched and consistent) or the session has ended: absence
//     in an incomplete snapshot proves nothing, so such a stint stays in the state and
//     the next complete snapshot decides;
//   - a participantId present in both with a different stint start left and came
//     back between the two snapshots: Left for the old stint, then Joined for the new
//     one. This needs no completeness, since the new stint is itself the proof;
//   - an answer that shows a participant in a stint older than the one in the state is
//     older than the state (a cache, a lagging replica): it yields nothing;
//   - a glimpsed stint (see Snapshot.Glimpsed) of a participantId that neither the
//     state nor the snapshot lists was seen all the same: it is Joined, and its
//     absence from a later complete snapshot makes it Left. Glimpses of a
//     participantId already known add nothing;
//   - a session is Started the first time the API returns its document (Found);
//   - a session whose status is "ended" yields Left for every stint still present and
//     then SessionEnded; after that the state is Ended and Compute yields nothing more.
//
// Within one call, changes come in this order: SessionStarted, then every Left (by
// participantId), then every Joined (by join time, then participantId); for a session
// that ended, the Joined come before the Left and SessionEnded comes last. A Left is
// always for a stint whose Joined was emitted by an earlier call or earlier in the
// same call. A participantId listed twice in a snapshot counts once (the first).
//
// What polling cannot see: a stint that begins and ends between two snapshots leaves
// no trace here, and the time of a plain leave is unknown (LeftAt is nil) unless a
// later timelog entry of the same participant shows it.
package diff

import (
	"cmp"
	"encoding/json"
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
	// state: only a fresh snapshot's timelog is used, to find when an old stint ended.
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
	// Glimpsed lists participants seen by an earlier scan of the same cycle that was
	// discarded because its pages disagreed: present then, if not listed now.
	Glimpsed []Participant `json:"-"`
}

// State is what rollcall remembers of a session between cycles.
type State struct {
	RoomID  string        `json:"roomId,omitempty"`
	Started bool          `json:"started,omitempty"` // SessionStarted was emitted
	Ended   bool          `json:"ended,omitempty"`   // SessionEnded was emitted; nothing more to do
	Present []Participant `json:"present,omitempty"` // by participantId
	// Outbox holds the changes that led to this state until the stream has
	// acknowledged them. Compute ignores it and returns a state without one.
	Outbox *Outbox `json:"outbox,omitempty"`
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
	// Joined: a stint was seen for the first time.
	Joined Kind = iota + 1
	// Left: a stint that was seen before has ended.
	Left
	// SessionStarted: the session was seen for the first time.
	SessionStarted
	// SessionEnded: the session ended; it follows the Left of everyone still present.
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
}

// Compute returns the changes from prev to next and the state to keep after them.
// It does not modify its arguments.
func Compute(prev State, next Snapshot) ([]Change, State) {
	prev.Outbox = nil
	if prev.Ended {
		return nil, prev
	}
	now := make(map[string]int, len(next.Participants)) // participantId -> index in current
	current := make([]Participant, 0, len(next.Participants))
	for _, p := range next.Participants {
		if _, dup := now[p.ID]; !dup {
			now[p.ID] = len(current)
			current = append(current, p)
		}
	}
	known := make(map[string]bool, len(prev.Present)) // participantIds in the state
	for _, old := range prev.Present {
		known[old.ID] = true
		if i, seen := now[old.ID]; seen && current[i].JoinedAt.Before(old.JoinedAt) {
			return nil, prev // an answer older than the state: it proves nothing
		}
	}
	for _, p := range next.Glimpsed {
		if _, dup := now[p.ID]; !dup && !known[p.ID] {
			now[p.ID] = len(current)
			current = append(current, p)
		}
	}
	ended := next.Status == StatusEnded
	state := State{RoomID: cmp.Or(next.RoomID, prev.RoomID), Started: prev.Started || next.Found}
	var changes, lefts, joins []Change
	if !prev.Started && next.Found {
		changes = append(changes, Change{Kind: SessionStarted})
	}
	size := len(current) // kept for every poll a session's loop caches: no room to spare
	if !next.Complete && !ended {
		size += len(prev.Present) // unproven absences are kept too
	}
	state.Present = make([]Participant, 0, size)
	for _, old := range prev.Present {
		i, seen := now[old.ID]
		var cur Participant
		if seen {
			cur = current[i]
		}
		switch {
		case seen && cur.JoinedAt.Equal(old.JoinedAt) && ended:
			lefts = append(lefts, Change{Kind: Left, Participant: stored(cur), LeftAt: endOf(cur.Timelog, old.JoinedAt)})
		case seen && cur.JoinedAt.Equal(old.JoinedAt):
			// Same stint; keep what the API says of it now (name and mode may change).
		case seen:
			lefts = append(lefts, Change{Kind: Left, Participant: old, LeftAt: endOf(cur.Timelog, old.JoinedAt)})
			joins = append(joins, Change{Kind: Joined, Participant: cur})
		case next.Complete || ended:
			lefts = append(lefts, Change{Kind: Left, Participant: old})
		default:
			state.Present = append(state.Present, old) // unproven absence: keep it
		}
	}
	for _, p := range current {
		if !known[p.ID] {
			joins = append(joins, Change{Kind: Joined, Participant: p})
		}
		if !ended {
			state.Present = append(state.Present, stored(p))
		}
	}
	if ended {
		// Everyone who just joined has also left with the session.
		for _, j := range joins {
			lefts = append(lefts, Change{Kind: Left, Participant: stored(j.Participant), LeftAt: endOf(j.Participant.Timelog, j.Participant.JoinedAt)})
		}
	}

	slices.SortStableFunc(joins, func(a, b Change) int {
		return cmp.Or(a.Participant.JoinedAt.Compare(b.Participant.JoinedAt), cmp.Compare(a.Participant.ID, b.Participant.ID))
	})
	slices.SortStableFunc(lefts, func(a, b Change) int { return cmp.Compare(a.Participant.ID, b.Participant.ID) })
	if ended {
		// Joins come first so that each Left follows its Joined.
		changes = append(append(changes, joins...), lefts...)
		changes = append(changes, Change{Kind: SessionEnded})
		state.Ended = true
	} else {
		changes = append(append(changes, lefts...), joins...)
	}
	slices.SortFunc(state.Present, func(a, b Participant) int { return cmp.Compare(a.ID, b.ID) })
	return changes, state
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
	return s.RoomID == o.RoomID && s.Started == o.Started && s.Ended == o.Ended && (s.Outbox == nil) == (o.Outbox == nil) &&
		slices.EqualFunc(s.Present, o.Present, func(a, b Participant) bool {
			return a.ID == b.ID && a.Name == b.Name && a.JoinedAt.Equal(b.JoinedAt) && a.Mode == b.Mode && a.SDKType == b.SDKType
		})
}

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
	u.Glimpsed = append(slices.Clone(first.Glimpsed), second.Glimpsed...)
	u.Participants = slices.Clone(second.Participants)
	for _, p := range first.Participants {
		if !listed[p.ID] {
			u.Participants = append(u.Participants, p)
		}
	}
	return u
}
