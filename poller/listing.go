package poller

import (
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"
)

// listing is when a session's loop lets a poll read the list of all participants:
// when a reconciliation is due on its schedule, or when the poll needs it, but never
// sooner after the last reading than one poll interval for each page that reading
// took. The list, however long (it only grows), then costs at most as many requests
// as polling a one-page active list every interval; a long one is read less often,
// and lefts wait for it (up to poll.left_time_wait).
type listing struct {
	ticks     ticks
	schedule  bool      // reconciliations are scheduled
	due       time.Time // the next scheduled reconciliation
	notBefore time.Time // the next reading allowed
	failing   episode   // readings failed in a row
	backoff   backoff
}

// newListing returns the listing of session id, tracked from now: its first
// reconciliation is on the first of its ticks.
func newListing(sched cron.Schedule, anchor time.Time, id string, now time.Time) *listing {
	l := &listing{schedule: sched != nil}
	if l.schedule {
		l.ticks = newTicks(sched, anchor, "reconcile "+id)
		l.due = l.ticks.after(now)
	}
	return l
}

func (l *listing) mode(now time.Time) List {
	switch {
	case now.Before(l.notBefore):
		return ListNot
	case l.schedule && !now.Before(l.due):
		return ListNow
	}
	return ListIfNeeded
}

// before lets the list be read again two intervals before deadline at the latest,
// whatever the budget and the backoff: the last chances of what waits for it.
func (l *listing) before(deadline time.Time, every time.Duration) {
	if last := deadline.Add(-2 * every); l.notBefore.After(last) {
		l.notBefore = last
	}
}

// read notes a poll that began at began and read pages pages of the list (none: it
// did not read it), or failed to with err. A reading that fails is tried again after
// twice as long each time (a failed page costs its retries too), up to 32 times the
// usual wait, and said once when it starts failing and once when it works again.
func (l *listing) read(log *slog.Logger, began time.Time, pages int, err error, every time.Duration) {
	if pages == 0 {
		return
	}
	wait := time.Duration(pages) * every
	if err != nil {
		l.failing.happened(log, slog.LevelWarn, began, "reading the list of all participants failed: lefts wait for their end, and missed stints for the next reading, asked less often while it fails",
			"reading the list of all participants still fails", "err", err)
		wait = l.backoff.fail(2*wait, 32*wait)
	} else {
		l.failing.over(log, "reading the list of all participants works again")
		l.backoff.reset()
	}
	// Half an interval early, so that a one-page list may be read on every poll
	// whatever the jitter of their start.
	l.notBefore = began.Add(wait - every/2)
	if l.schedule && err == nil {
		l.due = l.ticks.after(began)
	}
}
