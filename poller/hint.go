package poller

// Hint is what a webhook tells: something changed in a session or a room, now. It is
// a reason to poll or list at once, never an event: the poll that follows publishes
// what changed, as a scheduled one would have.
type Hint struct {
	Type      string // participant-joined, participant-left, session-started, session-ended; others are ignored
	RoomID    string // the webhook's meetingId
	SessionID string
}

// The webhook types that hint.
const (
	HintJoined         = "participant-joined"
	HintLeft           = "participant-left"
	HintSessionStarted = "session-started"
	HintSessionEnded   = "session-ended"
)

// hintsQueued is how many hints wait for the Run goroutine at most; beyond, they are
// dropped: the polls' schedule stays the truth.
const hintsQueued = 1024

// Hint hands h to the Run goroutine, without blocking.
func (m *Manager) Hint(h Hint) {
	select {
	case m.hints <- h:
	default:
		m.cfg.Log.Debug("hint dropped: hints come faster than they are taken", "type", h.Type, "session_id", h.SessionID)
	}
}

// hinted acts on a hint, on the Run goroutine: a session followed here is polled at
// once; a session not followed here, of a room followed here, and a session-started,
// list the room at once; a room no one tracks goes to UnknownRoom. A loop takes one
// hint while it polls or lists, and drops the rest: they would ask the same.
func (m *Manager) hinted(h Hint) {
	switch h.Type {
	case HintJoined, HintLeft, HintSessionEnded:
		if l := m.sessions[h.SessionID]; l != nil && l.cancel != nil {
			nudge(l.hint)
			return
		}
	case HintSessionStarted:
	default:
		return
	}
	if l := m.rooms[h.RoomID]; l != nil && l.cancel != nil {
		nudge(l.hint)
		return
	}
	if h.RoomID != "" && m.cfg.UnknownRoom != nil && !m.tracks(KindRoom, h.RoomID) && !m.tracks(KindSession, h.SessionID) {
		m.cfg.UnknownRoom(h.RoomID)
	}
}

// tracks reports whether an origin tracks the session or room id, on this replica or
// another.
func (m *Manager) tracks(kind, id string) bool {
	for _, u := range m.origins {
		ids := u.Sessions
		if kind == KindRoom {
			ids = u.Rooms
		}
		for _, v := range ids {
			if v == id {
				return true
			}
		}
	}
	return false
}

// nudge sends on a channel of one without blocking: one waits, the rest coalesce.
func nudge(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
