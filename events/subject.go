package events

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Subjects are <prefix>.<kind>.<roomId>.<sessionId>, general to specific, where kind
// is participant.joined, participant.left, session.started or session.ended: so
// "videosdk.participant.>" is every presence event, and
// "videosdk.participant.*.<roomId>.>" one room's.
const (
	SubjectJoined         = "participant.joined"
	SubjectLeft           = "participant.left"
	SubjectSessionStarted = "session.started"
	SubjectSessionEnded   = "session.ended"
)

// kinds maps event types to their subject tokens.
var kinds = map[string]string{
	TypeJoined: SubjectJoined, TypeLeft: SubjectLeft,
	TypeSessionStarted: SubjectSessionStarted, TypeSessionEnded: SubjectSessionEnded,
}

// Subject is where an event of type eventType, of a session in a room, is published.
// It panics on a type that is not one of the four, a programming error.
func Subject(prefix, eventType, roomID, sessionID string) string {
	kind, ok := kinds[eventType]
	if !ok {
		panic("events: unknown event type " + eventType)
	}
	return prefix + "." + kind + "." + EscapeToken(roomID) + "." + EscapeToken(sessionID)
}

// ParseSubject reverses Subject: the event type, room ID and session ID of a subject
// under prefix (which may hold dots).
func ParseSubject(prefix, subject string) (eventType, roomID, sessionID string, err error) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	tokens := strings.Split(rest, ".")
	if !ok || len(tokens) != 4 {
		return "", "", "", fmt.Errorf("subject %q is not <%s>.<kind>.<roomId>.<sessionId>", subject, prefix)
	}
	kind := tokens[0] + "." + tokens[1]
	for t, k := range kinds {
		if k == kind {
			eventType = t
		}
	}
	if eventType == "" {
		return "", "", "", fmt.Errorf("subject %q: unknown kind %q", subject, kind)
	}
	if roomID, err = UnescapeToken(tokens[2]); err != nil {
		return "", "", "", err
	}
	if sessionID, err = UnescapeToken(tokens[3]); err != nil {
		return "", "", "", err
	}
	return eventType, roomID, sessionID, nil
}

// EscapeToken makes an ID safe as one subject token (and as a KV key).
//
// The rule, reversible by UnescapeToken: an ID made only of A-Z a-z 0-9 - _ that does
// not begin with "_" is used as it is; any other ID, the empty one included, becomes
// "_" followed by its unpadded base64url encoding (RFC 4648 §5). Plain IDs never begin
// with "_" and escaped ones always do, so the two cannot collide.
func EscapeToken(id string) string {
	if plain(id) {
		return id
	}
	return "_" + base64.RawURLEncoding.EncodeToString([]byte(id))
}

// plain reports whether id matches ^[A-Za-z0-9-][A-Za-z0-9_-]*$.
func plain(id string) bool {
	if id == "" || id[0] == '_' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// UnescapeToken reverses EscapeToken.
func UnescapeToken(token string) (string, error) {
	rest, escaped := strings.CutPrefix(token, "_")
	if !escaped {
		return token, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("unescape subject token %q: %w", token, err)
	}
	return string(b), nil
}
