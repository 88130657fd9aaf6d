package poller

import (
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/rollcall/rollcall/diff"
)

// Cache is what a session's loop keeps between polls, and the Poller reads and
// fills: the session's state as its last poll left it in the store, so that a poll
// that changes nothing reads and writes nothing in KV, and the budget for reading the
// session's list of all participants. The zero Cache has no budget (a poll reads the
// list whenever it needs it) and no state (the next poll loads it). A poll that fails
// leaves the state out, and so does a write that finds it changed by someone else
// (compare-and-set); Drop leaves it out from outside.
type Cache struct {
	state   diff.State // without its present participants, which are in present
	present present
	rev     uint64
	ok      bool
	// unclean: the store's state at rev still holds the outbox of the cycle that
	// left state, though the stream has acknowledged its events (see Poller.save).
	unclean bool
	reading listing
	// sum is the hash of the one-page active list of a poll that found nothing to do
	// (see quiet); 0 if there is none.
	sum uint64
}

// NewCache returns the cache of session id polled on schedule, whose list of all
// participants is also read on reconcile's ticks (nil: only when polls need it);
// anchor is where @every schedules count from.
func NewCache(id string, schedule, reconcile cron.Schedule, anchor time.Time) Cache {
	l := listing{every: interval(schedule, anchor), schedule: reconcile != nil}
	if l.schedule {
		l.ticks = newTicks(reconcile, anchor, "reconcile "+id)
	}
	return Cache{reading: l}
}

// Drop leaves out the state: the next poll loads it from the store. The budget stays.
func (c *Cache) Drop() {
	c.state, c.present, c.rev, c.ok, c.unclean, c.sum = diff.State{}, nil, 0, false, false, 0
}

// take hands the state over to a poll: until the poll keeps one, the cache holds
// none. Its records stay, for keep to reuse.
func (c *Cache) take() { c.state, c.rev, c.ok, c.unclean = diff.State{}, 0, false, false }

// keep notes the state a poll saved, at rev, and whether the store's still holds the
// outbox that led to it (unclean). Present participants as the cache held them are
// kept as they are: most polls change no one.
func (c *Cache) keep(st diff.State, rev uint64, unclean bool) {
	if !c.present.same(st.Present) {
		c.present = compact(st.Present)
	}
	st.Present, st.Outbox = nil, nil
	c.state, c.rev, c.ok, c.unclean, c.sum = st, rev, true, unclean, 0
}

// quiet notes, after keep, that the poll read a one-page active list whose hash is
// sum, and found nothing to do with it: no change (but perhaps the outbox of the poll
// before cleared), no list of all participants wanted (but perhaps read, for a
// reconciliation that found nothing), and nothing waiting on the clock (no lefts
// waiting for their end, no session ending). Such a poll depends on nothing but the state and the
// page, so the next poll that reads the same page may stop there (see since).
func (c *Cache) quiet(sum uint64) { c.sum = sum }

// since is the sum of the page that a poll allowed list may stop at: none (0) when
// a reconciliation is due, which reads the list whatever the page.
func (c *Cache) since(list listMode) uint64 {
	if c == nil || !c.ok || c.unclean || list == listNow {
		return 0
	}
	return c.sum
}

// kept returns the state kept, its revision, and whether the store's still holds
// an outbox; ok is false if none is kept.
func (c *Cache) kept() (st diff.State, rev uint64, unclean, ok bool) {
	if c == nil || !c.ok {
		return diff.State{}, 0, false, false
	}
	st = c.state
	st.Present = c.present.expand()
	return st, c.rev, c.unclean, true
}

// hint notes that the next poll comes from a hint (a webhook): it may read the list
// of all participants if it needs it, whatever the budget; a hint is a reason to.
func (c *Cache) hint() { c.reading.hinted = true }

// listMode is what the budget lets a poll that begins at now read; a nil c has none.
func (c *Cache) listMode(now time.Time) listMode {
	if c == nil {
		return listIfNeeded
	}
	return c.reading.mode(now)
}

// listRead notes in the budget how the reading of a poll that began at began went
// (see listing.read); a nil c has none.
func (c *Cache) listRead(log *slog.Logger, began time.Time, pages int, err error, givesUp time.Time) {
	if c != nil {
		c.reading.read(log, began, pages, err, givesUp)
	}
}

// listing is when a poll may read the session's list of all participants: when a
// reconciliation is due on its schedule, or when the poll needs it, but never sooner
// after the last reading than one poll interval for each page that reading took. The
// list, however long (it only grows), then costs at most as many requests as polling
// a one-page active list every interval; a long one is read less often, and lefts
// wait for it (up to poll.left_time_wait).
type listing struct {
	every     time.Duration // the poll interval; 0: no budget
	ticks     ticks
	schedule  bool      // reconciliations are scheduled
	due       time.Time // the next scheduled reconciliation; zero: on the first tick after the first poll
	notBefore time.Time // the next reading allowed
	failing   episode   // readings failed in a row
	backoff   backoff
	hinted    bool // the next poll comes from a hint
}

// listMode says whether a poll may read the session's list of all participants.
type listMode int

const (
	// listIfNeeded reads it when the poll finds someone gone, or lefts wait for
	// their end.
	listIfNeeded listMode = iota
	// listNow reads it whatever the poll finds: a reconciliation is due.
	listNow
	// listNot reads it only if the session has ended: the last reading was too
	// recent for the list's length.
	listNot
)

func (l *listing) mode(now time.Time) listMode {
	if l.schedule && l.due.IsZero() {
		l.due = l.ticks.after(now)
	}
	hinted := l.hinted
	l.hinted = false
	switch {
	case now.Before(l.notBefore) && !hinted:
		return listNot
	case l.schedule && !now.Before(l.due):
		return listNow
	}
	return listIfNeeded
}

// read notes a poll that began at began and read pages pages of the list (none: it
// did not read it), or failed to with err; givesUp is when the first thing waiting
// for the list gives up (zero: nothing waits). A reading that fails is tried again
// after twice as long each time (a failed page costs its retries too), up to 32 times
// the usual wait, and said once when it starts failing and once when it works again.
// Whatever the budget and the backoff, the list may be read again two intervals
// before givesUp: the last chances of what waits for it.
func (l *listing) read(log *slog.Logger, began time.Time, pages int, err error, givesUp time.Time) {
	if l.every == 0 {
		return
	}
	if pages > 0 {
		wait := time.Duration(pages) * l.every
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
		l.notBefore = began.Add(wait - l.every/2)
		if l.schedule && err == nil {
			l.due = l.ticks.after(began)
		}
	}
	if last := givesUp.Add(-2 * l.every); !givesUp.IsZero() && l.notBefore.After(last) {
		l.notBefore = last
	}
}
