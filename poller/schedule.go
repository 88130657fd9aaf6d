package poller

import (
	"hash/fnv"
	"time"

	"github.com/robfig/cron/v3"
)

// ticks are a cron schedule's ticks shifted by a fixed offset, so that the loops of
// many sessions on one schedule do not all fire at the same instant.
type ticks struct {
	sched  cron.Schedule
	anchor time.Time // where @every counts from, as cron.Cron counts from its start
	offset time.Duration
}

// newTicks returns sched's ticks shifted by an offset within one interval that is
// derived from id, so the same id always gets the same offset.
func newTicks(sched cron.Schedule, anchor time.Time, id string) ticks {
	t := ticks{sched: sched, anchor: anchor}
	if every := interval(sched, anchor); every > 0 {
		h := fnv.New64a()
		h.Write([]byte(id))
		t.offset = time.Duration(h.Sum64() % uint64(every))
	}
	return t
}

// interval is the time between two ticks of sched: the @every delay, or for a cron
// spec, the gap between its first two ticks after anchor.
func interval(sched cron.Schedule, anchor time.Time) time.Duration {
	if every, ok := sched.(cron.ConstantDelaySchedule); ok {
		return every.Delay
	}
	first := sched.Next(anchor)
	return sched.Next(first).Sub(first)
}

// after returns the first shifted tick strictly after now.
func (t ticks) after(now time.Time) time.Time {
	if every, ok := t.sched.(cron.ConstantDelaySchedule); ok {
		// cron's Next for @every counts from the time it is given; counting from the
		// anchor instead keeps each loop on its own phase, whatever its polls took.
		since := now.Sub(t.anchor) - t.offset
		n := int64(0)
		if since >= 0 {
			n = int64(since/every.Delay) + 1
		}
		return t.anchor.Add(time.Duration(n)*every.Delay + t.offset)
	}
	return t.sched.Next(now.Add(-t.offset)).Add(t.offset)
}
