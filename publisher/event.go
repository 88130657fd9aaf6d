package publisher

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"time"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
)

func timePtr(t *time.Time) *events.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	return &events.Time{Time: *t}
}

// EventID is the deterministic id of a change: the same stint (or session) and kind
// always give the same id, so a republished event is a duplicate JetStream drops.
func EventID(sessionID string, c diff.Change) string {
	var buf [256]byte // most IDs fit: no allocation but the result's
	b := append(append(buf[:0], c.Kind.String()...), 0)
	b = append(append(b, sessionID...), 0)
	b = append(append(b, c.Participant.ID...), 0)
	b = append(c.Participant.JoinedAt.UTC().AppendFormat(b, time.RFC3339Nano), 0)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// NewEvent builds the event for a change of session snap, observed at observedAt.
func NewEvent(snap diff.Snapshot, observedAt time.Time, c diff.Change) events.Event {
	return newEvent(snap, source(snap), observedAt, c, nil)
}

// source is the CloudEvents source of session snap's events.
func source(snap diff.Snapshot) string { return "/v2/sessions/" + url.PathEscape(snap.SessionID) }

// newEvent is NewEvent, with the event's source given, and its data appended to data.
func newEvent(snap diff.Snapshot, source string, observedAt time.Time, c diff.Change, data []byte) events.Event {
	e := events.Event{
		SpecVersion:     events.SpecVersion,
		ID:              EventID(snap.SessionID, c),
		Source:          source,
		DataContentType: events.ContentType,
	}
	obs := events.Time{Time: observedAt}
	switch c.Kind {
	case diff.Joined, diff.Left:
		p := c.Participant
		if c.ObservedAt != nil { // a left that waited for its end: when it was found gone
			obs = events.Time{Time: *c.ObservedAt}
		}
		detection := events.DetectionPoll
		if c.Reconciled {
			detection = events.DetectionReconciled
		}
		d := events.ParticipantData{
			SessionID: snap.SessionID, RoomID: snap.RoomID, ParticipantID: p.ID, Name: p.Name,
			JoinedAt: timePtr(&p.JoinedAt), LeftAt: timePtr(c.LeftAt), ObservedAt: obs,
			Detection: detection, Mode: p.Mode, SDKType: p.SDKType, DeviceInfo: orEmpty(p.DeviceInfo), GeoLocation: orEmpty(p.GeoLocation),
		}
		e.Subject, e.Type, e.Time = p.ID, events.TypeJoined, events.Time{Time: p.JoinedAt}
		if c.Kind == diff.Left {
			e.Type, e.Time = events.TypeLeft, obs
			if d.LeftAt != nil {
				e.Time = *d.LeftAt
			}
		} else if p.JoinedAt.IsZero() {
			e.Time = obs
		}
		e.Data = appendParticipantData(data, d)
	case diff.SessionStarted, diff.SessionEnded:
		d := events.SessionData{SessionID: snap.SessionID, RoomID: snap.RoomID, Start: timePtr(&snap.Start), End: timePtr(snap.End), ObservedAt: obs}
		e.Type, e.Time = events.TypeSessionStarted, obs
		if d.Start != nil {
			e.Time = *d.Start
		}
		if c.Kind == diff.SessionEnded {
			e.Type, e.Time = events.TypeSessionEnded, obs
			if d.End != nil {
				e.Time = *d.End
			}
		}
		e.Data = appendSessionData(data, d)
	}
	return e
}

func orEmpty(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}")
	}
	return raw
}
