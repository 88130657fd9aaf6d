package publisher

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/rollcall/rollcall/diff"
)

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

// Subject is where a change of a session in a room is published:
// <prefix>.participant.joined|left.<roomId>.<sessionId> and
// <prefix>.session.started|ended.<roomId>.<sessionId>.
func Subject(prefix string, k diff.Kind, roomID, sessionID string) string {
	return prefix + "." + kindTokens(k) + "." + EscapeToken(roomID) + "." + EscapeToken(sessionID)
}

func kindTokens(k diff.Kind) string {
	if k == diff.Joined || k == diff.Left {
		return "participant." + k.String()
	}
	return k.String() // session.started, session.ended
}
