package poller

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/diff"
)

// TestSetAsideSaidOnce: a record set aside is said once however often it comes
// back, including one that is bad in every other answer; "none any more" is said
// once too; a record gone for an hour, back, is news again.
func TestSetAsideSaidOnce(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	bad := []diff.SetAside{{ID: "flip", Reason: diff.ReasonTime, Detail: `timelog[0].start: "yesterday-ish" is not an RFC 3339 time`}}
	var s setAside
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for i := range 20 { // bad, good, bad, good…
		list := bad
		if i%2 == 1 {
			list = nil
		}
		if n := s.note(log, now, list); n != len(list) {
			t.Fatalf("note returned %d, want %d", n, len(list))
		}
		now = now.Add(2 * time.Second)
	}
	if warns, infos := strings.Count(buf.String(), "the rest is used"), strings.Count(buf.String(), "any more"); warns != 1 || infos != 1 {
		t.Errorf("%d lines for the record, %d for none any more; want one each:\n%s", warns, infos, buf.String())
	}
	buf.Reset()
	s.note(log, now.Add(2*time.Hour), bad)
	if n := strings.Count(buf.String(), "the rest is used"); n != 1 {
		t.Errorf("a record back after two hours: %d lines, want 1", n)
	}
}
