package poller

import (
	"cmp"
	"log/slog"
	"time"

	"github.com/rollcall/rollcall/diff"
)

// setAside tells, for one session's or room's loop, which records of its answers
// are set aside: each record once, when it first shows, and once when none is left,
// so that a record the API keeps sending bad costs one log line, not one a poll. A
// record that comes and goes (bad in one answer, good in the next) is said again
// only once it has been gone for remember.
type setAside struct {
	seen   map[string]time.Time // reason, ID and detail of each record said, and when last set aside
	unsaid bool                 // a record was said since the last "none any more"
}

// maxSaid bounds the records said for one answer: the rest are counted.
const maxSaid = 10

// remember is how long a record set aside is remembered once it no longer shows,
// and maxSeen how many are remembered beyond the last answer's: an API that sends new
// bad records all the time costs memory for one answer, and a log line each.
const (
	remember = time.Hour
	maxSeen  = 1000
)

// note says what is new in list, the records set aside by the answer of now, and
// returns how many there are.
func (s *setAside) note(log *slog.Logger, now time.Time, list []diff.SetAside) int {
	for k, last := range s.seen {
		if now.Sub(last) > remember {
			delete(s.seen, k)
		}
	}
	if len(list) == 0 {
		if s.unsaid {
			log.Info("no record of the API's answers is set aside any more")
			s.unsaid = false
		}
		return 0
	}
	if s.seen == nil {
		s.seen = make(map[string]time.Time, len(list))
	}
	fresh := 0
	for _, a := range list {
		k := a.Reason + "\x00" + a.ID + "\x00" + a.Detail
		if _, said := s.seen[k]; !said {
			if fresh++; fresh <= maxSaid {
				log.Warn("a record of the API's answer is set aside: the rest is used", "reason", a.Reason,
					"id", cmp.Or(a.ID, "(none usable)"), "why", a.Detail)
			}
		}
		s.seen[k] = now
	}
	if fresh > maxSaid {
		log.Warn("more records of the API's answer are set aside", "more", fresh-maxSaid)
	}
	if len(s.seen) > maxSeen {
		for k, last := range s.seen {
			if !last.Equal(now) {
				delete(s.seen, k)
			}
		}
	}
	s.unsaid = s.unsaid || fresh > 0
	return len(list)
}
