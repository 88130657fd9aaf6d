package poller

import (
	"cmp"
	"log/slog"

	"github.com/rollcall/rollcall/diff"
)

// setAside tells, for one session's or room's loop, which records of its answers
// are set aside: each record once, when it first shows, and once when none is left,
// so that a record the API keeps sending bad costs one log line, not one a poll.
// It remembers only the records of the last answer.
type setAside struct {
	said map[string]bool // reason, ID and detail of each record set aside last time
}

// maxSaid bounds the records said for one answer: the rest are counted.
const maxSaid = 10

// note says what is new in list, the records set aside by the latest answer, and
// returns how many there are.
func (s *setAside) note(log *slog.Logger, list []diff.SetAside) int {
	if len(list) == 0 {
		if len(s.said) > 0 {
			log.Info("no record of the API's answers is set aside any more")
		}
		s.said = nil
		return 0
	}
	now := make(map[string]bool, len(list))
	fresh := 0
	for _, a := range list {
		k := a.Reason + "\x00" + a.ID + "\x00" + a.Detail
		if now[k] {
			continue
		}
		now[k] = true
		if s.said[k] {
			continue
		}
		if fresh++; fresh <= maxSaid {
			log.Warn("a record of the API's answer is set aside: the rest is used", "reason", a.Reason,
				"id", cmp.Or(a.ID, "(none usable)"), "why", a.Detail)
		}
	}
	if fresh > maxSaid {
		log.Warn("more records of the API's answer are set aside", "more", fresh-maxSaid)
	}
	s.said = now
	return len(list)
}
