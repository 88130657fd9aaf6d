// Package events is rollcall's contract with its subscribers: the CloudEvents 1.0 it
// publishes, one per NATS message in structured JSON mode, their subjects, and Decode,
// which accepts what the contract allows and nothing else. rollcall's publisher
// writes these same types, so producer and consumers cannot drift apart.
//
// Every event carries a deterministic id, also sent as the Nats-Msg-Id header: the
// same stint (or session) and type always give the same id, so a consumer drops
// repeats by id. A participant's joinedAt is the start of its stint's timelog entry,
// the same on its joined and its left, so the two pair up.
package events

import (
	"encoding/json"
	"time"
)

// The four event types, as in the CloudEvents "type" attribute.
const (
	TypeJoined         = "live.videosdk.participant.joined"
	TypeLeft           = "live.videosdk.participant.left"
	TypeSessionStarted = "live.videosdk.session.started"
	TypeSessionEnded   = "live.videosdk.session.ended"
)

// How a participant's change was seen (ParticipantData.Detection).
const (
	// DetectionPoll: between two polls of the session's active participants.
	DetectionPoll = "poll"
	// DetectionReconciled: afterwards, in the session's list of all participants.
	DetectionReconciled = "reconciled"
)

// SpecVersion and ContentType are every event's specversion and datacontenttype.
const (
	SpecVersion = "1.0"
	ContentType = "application/json"
)

// Event is a CloudEvents 1.0 event in structured JSON mode. Data holds a
// ParticipantData for participant events and a SessionData for session events.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"` // /v2/sessions/<sessionId>, escaped as a URL path
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"` // the participantId, for participant events
	Time            Time            `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// ParticipantData is the data of participant events.
type ParticipantData struct {
	SessionID     string `json:"sessionId"`
	RoomID        string `json:"roomId"`
	ParticipantID string `json:"participantId"`
	Name          string `json:"name"`
	// JoinedAt is the start of the stint's timelog entry; null only if the API gave
	// no timelog.
	JoinedAt *Time `json:"joinedAt"`
	// LeftAt is the end of the stint's timelog entry when known: always null on a
	// joined, and null on a left whose end the API did not give.
	LeftAt     *Time  `json:"leftAt"`
	ObservedAt Time   `json:"observedAt"` // when rollcall saw the change
	Detection  string `json:"detection"`  // DetectionPoll or DetectionReconciled
	Mode       string `json:"mode"`       // "CONFERENCE", "VIEWER", …
	SDKType    string `json:"sdkType"`    // deviceInfo.sdkType, "" when absent
	// DeviceInfo and GeoLocation are the API's objects as it gave them ({} if it gave
	// none).
	DeviceInfo  json.RawMessage `json:"deviceInfo"`
	GeoLocation json.RawMessage `json:"geoLocation"`
}

// SessionData is the data of session events.
type SessionData struct {
	SessionID  string `json:"sessionId"`
	RoomID     string `json:"roomId"`
	Start      *Time  `json:"start"` // null if the API gave none
	End        *Time  `json:"end"`   // null but on a session.ended whose end the API gave
	ObservedAt Time   `json:"observedAt"`
}

// Time is an instant written in UTC with milliseconds, as the VideoSDK API writes
// it: "2023-07-24T08:28:09.650Z". It reads any RFC 3339 time.
type Time struct{ time.Time }

// TimeLayout is how Time is written.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// MarshalJSON writes t in TimeLayout.
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.UTC().Format(TimeLayout) + `"`), nil
}
