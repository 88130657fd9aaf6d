package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
)

// ErrInvalid is wrapped by every error of Decode: the event breaks the contract.
var ErrInvalid = errors.New("not a rollcall event")

// Decode reads an event and checks it against the contract: every attribute and data
// field present with its type, the type one of the four, specversion 1.0, JSON data,
// the source and subject those of the data, joinedAt and leftAt null only where
// allowed, time as the type says, detection one of the two. Fields the contract does
// not name are allowed, so that a consumer keeps working when fields are added.
func Decode(data []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	fields, err := members(data)
	if err != nil {
		return Event{}, err
	}
	if err := require(fields, "specversion", "id", "source", "type", "time", "datacontenttype", "data"); err != nil {
		return Event{}, err
	}
	switch {
	case e.SpecVersion != SpecVersion:
		return Event{}, invalid("specversion %q, not %q", e.SpecVersion, SpecVersion)
	case e.ID == "":
		return Event{}, invalid("empty id")
	case e.DataContentType != ContentType:
		return Event{}, invalid("datacontenttype %q, not %q", e.DataContentType, ContentType)
	}
	switch e.Type {
	case TypeJoined, TypeLeft:
		_, err = e.participant()
	case TypeSessionStarted, TypeSessionEnded:
		_, err = e.session()
	default:
		err = invalid("unknown type %q", e.Type)
	}
	if err != nil {
		return Event{}, err
	}
	return e, nil
}

// Participant returns the data of a participant event read by Decode.
func (e Event) Participant() (ParticipantData, error) {
	if e.Type != TypeJoined && e.Type != TypeLeft {
		return ParticipantData{}, fmt.Errorf("a %s event has no participant data", e.Type)
	}
	return e.participant()
}

// Session returns the data of a session event read by Decode.
func (e Event) Session() (SessionData, error) {
	if e.Type != TypeSessionStarted && e.Type != TypeSessionEnded {
		return SessionData{}, fmt.Errorf("a %s event has no session data", e.Type)
	}
	return e.session()
}

func (e Event) participant() (ParticipantData, error) {
	var d ParticipantData
	if err := data(e.Data, &d, "sessionId", "roomId", "participantId", "name", "joinedAt", "leftAt", "observedAt",
		"detection", "mode", "sdkType", "deviceInfo", "geoLocation"); err != nil {
		return d, err
	}
	switch {
	case d.SessionID == "" || d.ParticipantID == "":
		return d, invalid("data: empty sessionId or participantId")
	case e.Source != source(d.SessionID):
		return d, invalid("source %q is not the session's, %q", e.Source, source(d.SessionID))
	case e.Subject != d.ParticipantID:
		return d, invalid("subject %q is not the participantId, %q", e.Subject, d.ParticipantID)
	case d.ObservedAt.IsZero():
		return d, invalid("data: observedAt is null")
	case d.Detection != DetectionPoll && d.Detection != DetectionReconciled:
		return d, invalid("data: detection %q", d.Detection)
	case !object(d.DeviceInfo) || !object(d.GeoLocation):
		return d, invalid("data: deviceInfo and geoLocation must be objects")
	case e.Type == TypeJoined && d.LeftAt != nil:
		return d, invalid("data: leftAt on a joined")
	case e.Type == TypeLeft && d.Detection == DetectionReconciled && d.LeftAt == nil:
		return d, invalid("data: a reconciled left without leftAt")
	case d.LeftAt != nil && d.JoinedAt != nil && d.LeftAt.Before(d.JoinedAt.Time):
		return d, invalid("data: leftAt before joinedAt")
	}
	// time is when it happened: the stint's start for a joined, its end for a left
	// when known, else when rollcall saw it.
	want := d.ObservedAt
	switch {
	case e.Type == TypeJoined && d.JoinedAt != nil:
		want = *d.JoinedAt
	case e.Type == TypeLeft && d.LeftAt != nil:
		want = *d.LeftAt
	}
	if !e.Time.Equal(want.Time) {
		return d, invalid("time %s, not %s", e.Time.UTC().Format(TimeLayout), want.UTC().Format(TimeLayout))
	}
	return d, nil
}

func (e Event) session() (SessionData, error) {
	var d SessionData
	if err := data(e.Data, &d, "sessionId", "roomId", "start", "end", "observedAt"); err != nil {
		return d, err
	}
	switch {
	case d.SessionID == "":
		return d, invalid("data: empty sessionId")
	case e.Source != source(d.SessionID):
		return d, invalid("source %q is not the session's, %q", e.Source, source(d.SessionID))
	case d.ObservedAt.IsZero():
		return d, invalid("data: observedAt is null")
	}
	// time: the session's start for started, its end for ended, when known.
	want := d.ObservedAt
	switch {
	case e.Type == TypeSessionStarted && d.Start != nil:
		want = *d.Start
	case e.Type == TypeSessionEnded && d.End != nil:
		want = *d.End
	}
	if !e.Time.Equal(want.Time) {
		return d, invalid("time %s, not %s", e.Time.UTC().Format(TimeLayout), want.UTC().Format(TimeLayout))
	}
	return d, nil
}

// source is the source attribute of a session's events.
func source(sessionID string) string { return "/v2/sessions/" + url.PathEscape(sessionID) }

// data decodes raw, which must be an object holding every one of keys, into v.
func data(raw json.RawMessage, v any, keys ...string) error {
	fields, err := members(raw)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if err := require(fields, keys...); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: data: %w", ErrInvalid, err)
	}
	return nil
}

// members returns the members of a JSON object.
func members(raw []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, invalid("not a JSON object")
	}
	return m, nil
}

// require checks that fields holds every one of keys.
func require(fields map[string]json.RawMessage, keys ...string) error {
	for _, k := range keys {
		if _, ok := fields[k]; !ok {
			return invalid("no %s", k)
		}
	}
	return nil
}

func object(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
