package publisher

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"time"

	"github.com/rollcall/rollcall/diff"
)

// Event types, as in the CloudEvents "type" attribute.
const (
	TypeJoined         = "live.videosdk.participant.joined"
	TypeLeft           = "live.videosdk.participant.left"
	TypeSessionStarted = "live.videosdk.session.started"
	TypeSessionEnded   = "live.videosdk.session.ended"
)

// Event is a CloudEvents 1.0 event in structured JSON mode.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            Time            `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// ParticipantData is the data of participant events.
type ParticipantData struct {
	SessionID     string          `json:"sessionId"`
	RoomID        string          `json:"roomId"`
	ParticipantID string          `json:"participantId"`
	Name          string          `json:"name"`
	JoinedAt      *Time           `json:"joinedAt"` // null only if the API gave no timelog
	LeftAt        *Time           `json:"leftAt"`
	ObservedAt    Time            `json:"observedAt"`
	Detection     string          `json:"detection"`
	Mode          string          `json:"mode"`
	SDKType       string          `json:"sdkType"` // deviceInfo.sdkType, "" when absent
	DeviceInfo    json.RawMessage `json:"deviceInfo"`
	GeoLocation   json.RawMessage `json:"geoLocation"`
}

// SessionData is the data of session events.
type SessionData struct {
	SessionID  string `json:"sessionId"`
	RoomID     string `json:"roomId"`
	Start      *Time  `json:"start"`
	End        *Time  `json:"end"`
	ObservedAt Time   `json:"observedAt"`
}

// Time is a UTC instant that marshals with milliseconds, as the VideoSDK API writes it.
type Time struct{ time.Time }

const timeLayout = "2006-01-02T15:04:05.000Z"

// MarshalJSON writes "2023-07-24T08:28:09.650Z".
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.UTC().Format(timeLayout) + `"`), nil
}

func timePtr(t *time.Time) *Time {
	if t == nil || t.IsZero() {
		return nil
	}
	return &Time{*t}
}

// EventID is the deterministic id of a change: the same stint (or session) and kind
// always give the same id, so a republished event is a duplicate JetStream drops.
func EventID(sessionID string, c diff.Change) string {
	h := sha256.New()
	for _, s := range []string{c.Kind.String(), sessionID, c.Participant.ID, c.Participant.JoinedAt.UTC().Format(time.RFC3339Nano)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// NewEvent builds the event for a change of session snap, observed at observedAt.
func NewEvent(snap diff.Snapshot, observedAt time.Time, c diff.Change) Event {
	return newEvent(snap, observedAt, c, nil)
}

// newEvent is NewEvent with the event's data appended to data.
func newEvent(snap diff.Snapshot, observedAt time.Time, c diff.Change, data []byte) Event {
	e := Event{
		SpecVersion:     "1.0",
		ID:              EventID(snap.SessionID, c),
		Source:          "/v2/sessions/" + url.PathEscape(snap.SessionID),
		DataContentType: "application/json",
	}
	obs := Time{observedAt}
	switch c.Kind {
	case diff.Joined, diff.Left:
		p := c.Participant
		d := ParticipantData{
			SessionID: snap.SessionID, RoomID: snap.RoomID, ParticipantID: p.ID, Name: p.Name,
			JoinedAt: timePtr(&p.JoinedAt), LeftAt: timePtr(c.LeftAt), ObservedAt: obs,
			Detection: "poll", Mode: p.Mode, SDKType: p.SDKType, DeviceInfo: orEmpty(p.DeviceInfo), GeoLocation: orEmpty(p.GeoLocation),
		}
		e.Subject, e.Type, e.Time = p.ID, TypeJoined, Time{p.JoinedAt}
		if c.Kind == diff.Left {
			e.Type, e.Time = TypeLeft, obs
			if d.LeftAt != nil {
				e.Time = *d.LeftAt
			}
		} else if p.JoinedAt.IsZero() {
			e.Time = obs
		}
		e.Data = appendParticipantData(data, d)
	case diff.SessionStarted, diff.SessionEnded:
		d := SessionData{SessionID: snap.SessionID, RoomID: snap.RoomID, Start: timePtr(&snap.Start), End: timePtr(snap.End), ObservedAt: obs}
		e.Type, e.Time = TypeSessionStarted, obs
		if d.Start != nil {
			e.Time = *d.Start
		}
		if c.Kind == diff.SessionEnded {
			e.Type, e.Time = TypeSessionEnded, obs
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
