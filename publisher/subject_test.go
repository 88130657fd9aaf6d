package publisher

import (
	"regexp"
	"testing"
)

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
