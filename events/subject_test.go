package events

import (
	"regexp"
	"testing"
)

func TestEscapeToken(t *testing.T) {
	tests := []struct{ id, want string }{
		{"64bb3619669942e088479mm0", "64bb3619669942e088479mm0"},
		{"r10p-2qz8-si67", "r10p-2qz8-si67"},
		{"a_b", "a_b"},
		{"", "_"},
		{"a.b", "_YS5i"},
		{"a b*>", "_YSBiKj4"},
		{"_x", "_X3g"}, // plain-looking, but a leading "_" marks escaped tokens
		{"été", "_w6l0w6k"},
	}
	for _, tt := range tests {
		got := EscapeToken(tt.id)
		if got != tt.want {
			t.Errorf("EscapeToken(%q) = %q, want %q", tt.id, got, tt.want)
		}
		back, err := UnescapeToken(got)
		if err != nil || back != tt.id {
			t.Errorf("UnescapeToken(%q) = %q, %v, want %q", got, back, err, tt.id)
		}
	}
}

func TestSubject(t *testing.T) {
	tests := []struct {
		eventType, room, session, want string
	}{
		{TypeJoined, "r10p-2qz8-si67", "64bb3619669942e088479mm0", "videosdk.participant.joined.r10p-2qz8-si67.64bb3619669942e088479mm0"},
		{TypeLeft, "r10p-2qz8-si67", "64bb3619669942e088479mm0", "videosdk.participant.left.r10p-2qz8-si67.64bb3619669942e088479mm0"},
		{TypeSessionStarted, "r10p-2qz8-si67", "64bb3619669942e088479mm0", "videosdk.session.started.r10p-2qz8-si67.64bb3619669942e088479mm0"},
		{TypeSessionEnded, "r10p-2qz8-si67", "64bb3619669942e088479mm0", "videosdk.session.ended.r10p-2qz8-si67.64bb3619669942e088479mm0"},
		{TypeJoined, "room.with dots", "", "videosdk.participant.joined._cm9vbS53aXRoIGRvdHM._"},
	}
	for _, tt := range tests {
		got := Subject("videosdk", tt.eventType, tt.room, tt.session)
		if got != tt.want {
			t.Errorf("Subject(%s, %q, %q) = %q, want %q", tt.eventType, tt.room, tt.session, got, tt.want)
		}
		typ, room, session, err := ParseSubject("videosdk", got)
		if err != nil || typ != tt.eventType || room != tt.room || session != tt.session {
			t.Errorf("ParseSubject(%q) = %s, %q, %q, %v", got, typ, room, session, err)
		}
	}
	for _, bad := range []string{"videosdk.participant.joined.r", "other.participant.joined.r.s", "videosdk.participant.waved.r.s", "videosdk.session.started.r._!!"} {
		if _, _, _, err := ParseSubject("videosdk", bad); err == nil {
			t.Errorf("ParseSubject(%q) succeeded, want an error", bad)
		}
	}
}

// FuzzPlain checks plain against the rule as EscapeToken's comment writes it.
func FuzzPlain(f *testing.F) {
	rule := regexp.MustCompile(`^[A-Za-z0-9-][A-Za-z0-9_-]*$`)
	for _, id := range []string{"", "_", "a", "-a_b", "_a", "a.b", "a b", "ü", "6650b2c5e6f3d4a1b2c3d4e5", "a\n"} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := plain(id), rule.MatchString(id); got != want {
			t.Errorf("plain(%q) = %v, want %v", id, got, want)
		}
	})
}
