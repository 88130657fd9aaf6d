// Package poller turns VideoSDK's active-participants API into presence changes: a
// Client fetches every page of a session with its own tokens, retries and rate limit;
// a Poller runs one cycle of one session: load the previous state, fetch all, diff,
// publish, save; and a Manager runs one loop per tracked session, which decides when,
// and one per tracked room, which finds the room's sessions.
//
// # Guarantees
//
//   - A cycle whose fetch fails publishes nothing and saves nothing; the next cycle
//     starts again from the last saved state.
//
//   - A scan whose pages disagree is retried; if they keep disagreeing, the snapshot is
//     incomplete and no one's absence from it yields a left (see package diff).
//
//   - A left that rests on absence from a list of several pages needs a second scan,
//     last page first, that agrees on it: pages can shift without total changing, when
//     one participant leaves and another joins mid-scan.
//
//   - A cycle's events are saved with the state they lead to (an outbox) before they
//     are published, and cleared once the stream has acknowledged them, always with
//     compare-and-set on the revision that was loaded. A cycle that stops in between
//     is finished by the next: the same events, with the same ids, then the diff.
//
//   - Changes of one session are published in order; sessions are independent.
//
//   - A session is never polled by two loops at once. Its loop keeps its state between
//     polls (Cache) and reads it from the store again only when it starts, after a
//     failed poll, or after a write that found the state changed by someone else.
//
//   - A session that stops being tracked gets no left for anyone: its loop stops, its
//     state is kept, and tracking it again resumes from it.
//
//   - A session that ended publishes its lefts and session ended, then its state
//     becomes a tombstone, and its loop returns, keeping nothing in memory.
//
//   - A poll that finds someone gone, or has lefts waiting for their end, reads the
//     session's list of all participants before it publishes (unless its loop's
//     budget forbids it, see Cache): lefts take their timelog end, and the stints no
//     poll saw are reconciled. A left whose end does not show waits in the state for
//     up to WithLeftTimeWait, then goes out without it. A session that ends reads the
//     list once more, whatever the budget.
//
// What the active list alone cannot see, a stint shorter than the interval between
// two polls and the exact time of a leave, the list of all participants shows.
package poller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/metrics"
)

// Source fetches snapshots of a session; Client is one.
type Source interface {
	// SnapshotSince scans every page, first to last, logging to log (the session's);
	// sum is a hash of the list when it is one page that agrees with itself, else 0.
	// When sum is since (not 0), the page is the one since was taken from, byte for
	// byte, and snap is empty.
	SnapshotSince(ctx context.Context, log *slog.Logger, sessionID string, since uint64) (snap diff.Snapshot, sum uint64, err error)
	// Recheck scans a session of pages pages, last to first.
	Recheck(ctx context.Context, log *slog.Logger, sessionID string, pages int) (diff.Snapshot, error)
	// Everyone reads the list of all participants, present or gone, with their whole
	// timelogs, as all.Participants; all.Pages is how many pages it read, even when
	// it failed.
	Everyone(ctx context.Context, log *slog.Logger, sessionID string) (all diff.Snapshot, err error)
}

// Store keeps each session's state between cycles, with compare-and-set on revision.
type Store interface {
	Load(ctx context.Context, sessionID string) (diff.State, uint64, error)
	Save(ctx context.Context, sessionID string, st diff.State, rev uint64) (uint64, error)
	// End replaces the state of a session that has ended, saved at rev, by a small
	// tombstone that says so; a rev of 0 means there is nothing to replace.
	End(ctx context.Context, sessionID string, st diff.State, rev uint64) error
}

// Publisher publishes a session's changes and returns once all are acknowledged.
type Publisher interface {
	Publish(ctx context.Context, snap diff.Snapshot, observedAt time.Time, changes []diff.Change) error
}

// delivering bounds the sessions that save and publish their changes at once. A
// poll holds one of the fetching slots (WithConcurrency) from its start until its
// changes are computed; one with changes then takes a delivering slot before it
// gives its fetching slot back, so that the next sessions are fetched while it
// publishes, and no more sessions wait with their changes in memory than there are
// slots. Past a few dozen sessions at once, more only queue KV writes and publishes
// at the broker (see docs/performance.md).
const delivering = 64

// Poller runs one cycle of one session at a time; a Manager decides when.
type Poller struct {
	src     Source
	store   Store
	pub     Publisher
	now     func() time.Time
	metrics *metrics.Metrics
	// One token per poll fetching (or loading, or diffing), and per poll saving or
	// publishing its changes.
	fetching, delivering chan struct{}
	// Participants in these modes or with these deviceInfo.sdkType yield no events.
	excludeModes, excludeSDKTypes []string
	leftTimeWait                  time.Duration
}

// Option configures a Poller.
type Option func(*Poller)

// WithClock sets the clock that stamps observedAt and times cycles; the default is
// time.Now.
func WithClock(now func() time.Time) Option {
	return func(p *Poller) { p.now = now }
}

// WithMetrics records polls in m.
func WithMetrics(m *metrics.Metrics) Option {
	return func(p *Poller) { p.metrics = m }
}

// WithConcurrency lets n sessions be fetched at once (8 by default).
func WithConcurrency(n int) Option {
	return func(p *Poller) { p.fetching = make(chan struct{}, max(n, 1)) }
}

// WithExclude drops participants in the given modes (such as "VIEWER") or with the
// given deviceInfo.sdkType (such as "recorder") before the diff, so that they yield
// no events.
func WithExclude(modes, sdkTypes []string) Option {
	return func(p *Poller) { p.excludeModes, p.excludeSDKTypes = modes, sdkTypes }
}

// WithLeftTimeWait lets a left whose end the list of all participants does not show
// yet wait for it, in the session's state, for up to d; the default 0 publishes it
// at once, without its end.
func WithLeftTimeWait(d time.Duration) Option {
	return func(p *Poller) { p.leftTimeWait = d }
}

// New returns a Poller that fetches from src, keeps state in store and publishes to
// pub.
func New(src Source, store Store, pub Publisher, opts ...Option) *Poller {
	p := &Poller{src: src, store: store, pub: pub, now: time.Now, delivering: make(chan struct{}, delivering)}
	for _, o := range opts {
		o(p)
	}
	if p.fetching == nil {
		p.fetching = make(chan struct{}, 8)
	}
	p.metrics = metrics.Or(p.metrics)
	return p
}

// AtOnce is how many polls it fetches or delivers at once: what ManagerConfig's
// PollsAtOnce should be, at least.
func (p *Poller) AtOnce() int { return cap(p.fetching) + cap(p.delivering) }

// Poll runs one cycle of one session and reports whether the session has ended.
func (p *Poller) Poll(ctx context.Context, log *slog.Logger, sessionID string) (Result, error) {
	return p.cycle(ctx, log, sessionID, nil, nil)
}

// PollCached is Poll with the session's state taken from c when c holds it, and
// left in c when the poll succeeds; it reads the list of all participants as c's
// budget allows, and notes the reading there.
func (p *Poller) PollCached(ctx context.Context, log *slog.Logger, sessionID string, c *Cache) (Result, error) {
	return p.cycle(ctx, log, sessionID, nil, c)
}

// End ends a session that the sessions list shows ended while its active list no
// longer says so (it answers 404, or no session document): a left for everyone still
// present, then session.ended, as a poll that saw it ended would have published; end
// is the session's end, if the list gives it. A session never seen yields nothing.
func (p *Poller) End(ctx context.Context, log *slog.Logger, sessionID string, end *time.Time) (Result, error) {
	return p.cycle(ctx, log, sessionID, &diff.Snapshot{SessionID: sessionID, Status: diff.StatusEnded, End: end, Found: true, Complete: true}, nil)
}

// cycle is Poll, or End when ended gives the snapshot of the session's end; with a
// cache, it starts from the state in it, if any, and leaves the state it saved there.
// It reads top to bottom: load, observe, diff (with the list of all participants
// when needed), save and publish, report.
func (p *Poller) cycle(ctx context.Context, log *slog.Logger, sessionID string, ended *diff.Snapshot, cache *Cache) (res Result, err error) {
	start, began := time.Now(), p.now()
	defer func() { p.record(start, res, err) }()
	release, err := acquire(ctx, p.fetching)
	if err != nil {
		return Result{}, err
	}
	defer func() { release() }()
	list := cache.listMode(began)
	since := cache.since(list) // before load takes the state out of the cache
	prev, rev, unclean, err := p.load(ctx, log, sessionID, cache)
	if unclean {
		// The store's state still holds the outbox of the last cycle, whose events
		// the stream has acknowledged: this cycle's write clears it, or, if the
		// cycle fails before it writes, this one.
		defer func() {
			if unclean && err != nil && ctx.Err() == nil {
				_, _ = p.store.Save(ctx, sessionID, prev, rev) // else the next cycle sends it again: duplicates, dropped
			}
		}()
	}
	switch {
	case err != nil:
		return Result{}, err
	case prev.Ended:
		// Ended on an earlier cycle that stopped before its tombstone was written.
		return Result{Ended: true, Complete: true, Found: true}, p.store.End(ctx, sessionID, prev, rev)
	case ended != nil && !prev.Started:
		return Result{Ended: true, Complete: true, Found: true}, nil // nothing was announced: nothing to end
	}
	fetching := time.Now()
	snap, sum := ended, uint64(0)
	if snap == nil {
		if snap, sum, err = p.observe(ctx, log, sessionID, prev, since); err != nil {
			return Result{}, err
		}
		if since != 0 && sum == since {
			// The page the last poll read, which found nothing to do: this one would
			// find the same, as nothing waits on the clock (see Cache.quiet).
			cache.keep(prev, rev, false)
			cache.quiet(sum)
			p.metrics.SamePage.Inc()
			return Result{Complete: true, Found: true, Present: len(prev.Present), RoomID: prev.RoomID, Fetching: time.Since(fetching)}, nil
		}
	}
	snap.RoomID = cmp.Or(snap.RoomID, prev.RoomID)
	now := p.now() // when the poll saw what it saw: the list, read next, may be slow
	changes, next, all, listErr := p.compute(ctx, log, sessionID, prev, snap, now, list)
	cache.listRead(log, began, all.Pages, listErr, p.givesUp(next))
	fetched := time.Since(fetching)
	p.conflicts(log, prev, next)
	if len(changes) > 0 {
		// A cycle with changes saves and publishes on a delivering slot, and gives
		// its fetching slot to the next session.
		deliverer, err := acquire(ctx, p.delivering)
		if err != nil {
			return Result{}, err
		}
		release()
		release = deliverer
	}
	owed, wasUnclean := false, unclean // owed: the outbox saved with next is for the next cycle to clear
	unclean = false                    // save's to clear now
	if rev, owed, err = p.save(ctx, sessionID, prev, next, rev, wasUnclean, cache != nil, *snap, now, changes); err != nil {
		return Result{}, err
	}
	aside := p.setAside(prev, *snap, all, len(changes) == 0)
	if cache != nil && !next.Ended {
		cache.keep(next, rev, owed)
		// Nothing changed (a write that only cleared the outbox changed nothing), the
		// list is not wanted (it is when lefts wait or the session ends), and no
		// record was set aside. A reconciliation that found nothing may be quiet:
		// the list adds changes (missed stints) and keeps lefts waiting, and
		// without it, its poll would have found nothing either.
		if len(changes) == 0 && next.Equal(prev) && len(aside) == 0 && !wantsList(prev, *snap, listIfNeeded, changes, next) {
			cache.quiet(sum)
		}
	}
	joined, left := p.count(changes)
	return Result{Ended: next.Ended, Complete: snap.Complete, Found: snap.Found, Present: len(next.Present), RoomID: next.RoomID,
		Joined: joined, Left: left, Waiting: len(next.Pending), Fetching: fetched, SetAside: aside}, nil
}

// load returns the session's state from cache if it holds it, else from the store,
// with its revision, after sending again the events of an outbox the store's state
// still holds (a cycle that stopped before its events were acknowledged, or before
// the next write cleared them), and whether the store's state at rev still holds the
// outbox of the cycle the cache kept (unclean). The cache is empty until the poll
// has saved what it leaves.
func (p *Poller) load(ctx context.Context, log *slog.Logger, sessionID string, cache *Cache) (prev diff.State, rev uint64, unclean bool, err error) {
	prev, rev, unclean, ok := cache.kept()
	if !ok {
		if prev, rev, err = p.store.Load(ctx, sessionID); err != nil {
			return diff.State{}, 0, false, err
		}
	}
	if cache != nil {
		cache.take()
	}
	if prev.Outbox != nil {
		log.Info("sending again the events of the last cycle with changes, which stopped before its outbox was cleared: the stream drops those it holds", "events", len(prev.Outbox.Changes))
		p.metrics.OutboxResends.Add(float64(len(prev.Outbox.Changes)))
		if rev, err = p.deliver(ctx, sessionID, prev, rev); err != nil {
			return diff.State{}, 0, false, fmt.Errorf("previous cycle's events: %w", err)
		}
		prev.Outbox = nil
	}
	return prev, rev, unclean, nil
}

// observe fetches a snapshot of the session's active list, without the participants
// excluded, confirmed by a second scan when it rests a left on absence from a list of
// several pages; or, if the list is the one page since was taken from, nothing but
// since (see Source.SnapshotSince).
func (p *Poller) observe(ctx context.Context, log *slog.Logger, sessionID string, prev diff.State, since uint64) (*diff.Snapshot, uint64, error) {
	snap, sum, err := p.src.SnapshotSince(ctx, log, sessionID, since)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch: %w", err)
	}
	if since != 0 && sum == since {
		return &snap, sum, nil
	}
	snap = p.exclude(prev, snap)
	if snap.Complete && snap.Pages > 1 && snap.Status != diff.StatusEnded && prev.Absent(snap) {
		snap = p.exclude(prev, p.confirm(ctx, log, sessionID, snap))
	}
	return &snap, sum, nil
}

// compute diffs snap against prev, and again with the list of all participants when
// the changes need it and list allows (see wantsList), which it then returns too.
func (p *Poller) compute(ctx context.Context, log *slog.Logger, sessionID string, prev diff.State, snap *diff.Snapshot, now time.Time, list listMode) (
	changes []diff.Change, next diff.State, all diff.Snapshot, listErr error) {
	changes, next = diff.Compute(prev, *snap, now, p.leftTimeWait)
	if !wantsList(prev, *snap, list, changes, next) {
		return changes, next, all, nil
	}
	// Compute again with the list: it is pure, and this is the rare poll.
	if all, listErr = p.src.Everyone(ctx, log, sessionID); listErr != nil {
		log.Debug("reading the list of all participants failed: lefts wait for their end, and missed stints for the next reading", "err", listErr)
	} else {
		snap.Everyone = p.excludeFrom(prev, all.Participants)
	}
	changes, next = diff.Compute(prev, *snap, now, p.leftTimeWait)
	return changes, next, all, listErr
}

// save stores next, saved at rev before, if it changed or the state saved still holds
// a delivered outbox (unclean); with changes, it saves them with it as its outbox,
// publishes them, and saves next without them once the stream has acknowledged them
// (see deliver). It returns the revision saved. A session's loop, which keeps the
// state between cycles (defer), leaves that last write to its next cycle, whose own
// write it then is (owed): a cycle with changes writes the state once, and a first
// burst of many sessions is not slowed by a second write each. Until then, a stop
// leaves the outbox to be sent again: the stream drops it as duplicates (see
// duplicate_window).
func (p *Poller) save(ctx context.Context, sessionID string, prev, next diff.State, rev uint64, unclean, deferred bool, snap diff.Snapshot, now time.Time,
	changes []diff.Change) (newRev uint64, owed bool, err error) {
	if len(changes) == 0 {
		if next.Equal(prev) && !unclean {
			return rev, false, nil
		}
		rev, err := p.store.Save(ctx, sessionID, next, rev)
		return rev, false, err
	}
	snap.Participants, snap.Everyone = nil, nil
	next.Outbox = &diff.Outbox{Session: snap, ObservedAt: now, Changes: changes}
	if rev, err = p.store.Save(ctx, sessionID, next, rev); err != nil {
		return 0, false, err
	}
	if deferred && !next.Ended {
		if err := p.pub.Publish(ctx, snap, now, changes); err != nil {
			return rev, false, err
		}
		return rev, true, nil
	}
	rev, err = p.deliver(ctx, sessionID, next, rev)
	return rev, false, err
}

// Settle writes what c owes the store: the state its last cycle saved, without the
// outbox whose events the stream has acknowledged (see save), so that a loop that
// stops leaves nothing to send again.
func (p *Poller) Settle(ctx context.Context, sessionID string, c *Cache) error {
	st, rev, unclean, ok := c.kept()
	if !ok || !unclean {
		return nil
	}
	rev, err := p.store.Save(ctx, sessionID, st, rev)
	if err != nil {
		c.Drop()
		return err
	}
	c.keep(st, rev, false)
	return nil
}

// setAside lists the records of a poll's answers that could not be used, each
// counted: those of the active list and of the list of all participants, and the
// whole active list when it is older than the state (only a poll without changes
// can have had one).
func (p *Poller) setAside(prev diff.State, snap, all diff.Snapshot, unchanged bool) []diff.SetAside {
	out := slices.Concat(snap.SetAside, all.SetAside)
	if id, older := prev.Older(snap); unchanged && older {
		out = append(out, diff.SetAside{ID: id, Reason: diff.ReasonOlder,
			Detail: "the answer shows this participant in an older stint than the state: nothing of it is used"})
	}
	for _, a := range out {
		p.metrics.RecordsRejected.WithLabelValues(a.Reason).Inc()
	}
	return out
}

// givesUp is when the first thing that waits for the list of all participants in st
// gives up waiting (a left's end, or the session's end); zero if nothing waits.
func (p *Poller) givesUp(st diff.State) time.Time {
	var first time.Time
	note := func(since time.Time) {
		if t := since.Add(p.leftTimeWait); first.IsZero() || t.Before(first) {
			first = t
		}
	}
	for _, q := range st.Pending {
		if !q.Open { // a left the list shows open waits for its end, however long
			note(q.Since)
		}
	}
	if st.Ending != nil {
		note(*st.Ending)
	}
	return first
}

// conflicts says, once for each, which lefts started to wait because the list of all
// participants shows open a stint the active list no longer has, and which stints
// whose left went out both lists show open again: the left was wrong, and the
// participant is present again, without a second joined.
func (p *Poller) conflicts(log *slog.Logger, prev, next diff.State) {
	wasOpen := make(map[string]bool, len(prev.Pending))
	for _, q := range prev.Pending {
		wasOpen[q.ID] = q.Open
	}
	for _, q := range next.Pending {
		if q.Open && !wasOpen[q.ID] {
			p.metrics.Conflicts.Inc()
			log.Warn("the active list no longer shows a participant whose stint the list of all participants shows open: its left waits for its end there",
				"participant_id", q.ID, "joined_at", q.JoinedAt)
		}
	}
	for _, q := range next.Present {
		if last, ok := next.Gone[q.ID]; ok && !q.JoinedAt.After(last) && !slices.ContainsFunc(prev.Present, func(o diff.Participant) bool { return o.ID == q.ID }) {
			p.metrics.Conflicts.Inc()
			log.Warn("a stint whose left went out without its end is open in both lists: present again, without a second joined",
				"participant_id", q.ID, "joined_at", q.JoinedAt)
		}
	}
}

// wantsList reports whether a cycle reads the list of all participants: for a session
// that ended, the first time it is seen ended and then as the budget allows, until
// nothing waits for it; for the others, never when list forbids it, and otherwise
// when list asks for it, or the changes computed without it have a left without its
// end, or lefts wait.
func wantsList(prev diff.State, snap diff.Snapshot, list listMode, changes []diff.Change, next diff.State) bool {
	switch {
	case !snap.Found && !prev.Started:
		return false // nothing to read it for
	case snap.Status == diff.StatusEnded && (list != listNot || (len(prev.Pending) == 0 && prev.Ending == nil)):
		return true // the first time it is seen ended, whatever the budget
	case list == listNot:
		return false
	case snap.Status == diff.StatusEnded:
		return true
	case list == listNow:
		return true
	}
	return len(prev.Pending) > 0 || len(next.Pending) > 0 ||
		slices.ContainsFunc(changes, func(c diff.Change) bool { return c.Kind == diff.Left && c.LeftAt == nil }) ||
		slices.ContainsFunc(snap.Participants, func(q diff.Participant) bool { // a stint whose left went out: was it wrong?
			last, ok := prev.Gone[q.ID]
			return ok && q.JoinedAt.Equal(last) && !slices.ContainsFunc(next.Present, func(o diff.Participant) bool { return o.ID == q.ID })
		})
}

// Result is how a poll went.
type Result struct {
	Ended    bool   // the session has ended: no more polls
	Complete bool   // every page was fetched and agreed: absences counted
	Found    bool   // the API returned the session's document
	Present  int    // participants present after it
	RoomID   string // the session's room, once known
	Joined   int    // joined events it published
	Left     int    // left events it published
	Waiting  int    // lefts waiting for their end after it
	// Fetching is how long it waited on the API: its answers, retries and the rate
	// limit. The rest went to NATS and to waiting for a slot (max_concurrency).
	Fetching time.Duration
	// SetAside are the records of this poll's answers that could not be used.
	SetAside []diff.SetAside
}

// record counts a poll by outcome, with its duration.
func (p *Poller) record(start time.Time, res Result, err error) {
	outcome := metrics.OutcomeOK
	switch {
	case errors.Is(err, ErrNotFound):
		outcome = metrics.OutcomeNotFound
	case err != nil:
		outcome = metrics.OutcomeFailed
	case res.Ended:
		outcome = metrics.OutcomeEnded
	case !res.Complete:
		outcome = metrics.OutcomeIncomplete
	}
	p.metrics.Polls.WithLabelValues(outcome).Inc()
	p.metrics.PollDuration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
}

// exclude drops the participants whose mode or sdkType is excluded. A stint already
// in the state is kept whatever its mode now (someone who switched to an excluded mode
// mid-stint): dropping it would make a false left, and its return a second joined.
func (p *Poller) exclude(prev diff.State, snap diff.Snapshot) diff.Snapshot {
	if len(p.excludeModes) == 0 && len(p.excludeSDKTypes) == 0 {
		return snap
	}
	known := make(map[string]time.Time, len(prev.Present)+len(prev.Pending))
	for _, old := range prev.Present {
		known[old.ID] = old.JoinedAt
	}
	for _, old := range prev.Pending {
		known[old.ID] = old.JoinedAt
	}
	keep := func(list []diff.Participant) []diff.Participant {
		return slices.DeleteFunc(slices.Clone(list), func(q diff.Participant) bool {
			if at, ok := known[q.ID]; ok && at.Equal(q.JoinedAt) {
				return false
			}
			return slices.Contains(p.excludeModes, q.Mode) || slices.Contains(p.excludeSDKTypes, q.SDKType)
		})
	}
	snap.Participants = keep(snap.Participants)
	return snap
}

// excludeFrom is exclude for a list of all participants.
func (p *Poller) excludeFrom(prev diff.State, list []diff.Participant) []diff.Participant {
	return p.exclude(prev, diff.Snapshot{Participants: list}).Participants
}

// deliver publishes st's outbox, which is saved at revision rev, and once the stream
// has acknowledged it, saves st without it.
//
// The outbox is saved before anything is published: were the state saved only after
// the acknowledgement, a crash in between would leave the stream ahead of the state,
// and someone who joined in that cycle and left before the next would never get a
// left.
func (p *Poller) deliver(ctx context.Context, sessionID string, st diff.State, rev uint64) (uint64, error) {
	o := st.Outbox
	if err := p.pub.Publish(ctx, o.Session, o.ObservedAt, o.Changes); err != nil {
		return rev, err
	}
	st.Outbox = nil
	if st.Ended {
		return 0, p.store.End(ctx, sessionID, st, rev)
	}
	return p.store.Save(ctx, sessionID, st, rev)
}

// confirm scans a session of several pages again, backward, before anyone's absence
// counts: one participant leaving and another joining mid-scan shift the pages while
// total and count still agree, hiding someone who never left, and a backward scan
// cannot be fooled that way (see Client.Recheck). Only an absence from both scans
// counts. A single page came in one answer and needs no confirming.
func (p *Poller) confirm(ctx context.Context, log *slog.Logger, sessionID string, snap diff.Snapshot) diff.Snapshot {
	p.metrics.ConfirmingScans.Inc()
	again, err := p.src.Recheck(ctx, log, sessionID, snap.Pages)
	if err != nil {
		log.Warn("confirming scan failed: no participant's absence counts this cycle", "err", err)
		snap.Complete = false
		return snap
	}
	return diff.Union(snap, again)
}

// acquire takes a token of slots and returns the function that gives it back,
// unless ctx ends first.
func acquire(ctx context.Context, slots chan struct{}) (func(), error) {
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// count counts a cycle's joined and left, and the stints reconciled and lefts
// without their end in the metrics.
func (p *Poller) count(changes []diff.Change) (joined, left int) {
	for _, c := range changes {
		switch c.Kind {
		case diff.Joined:
			joined++
			if c.Reconciled {
				p.metrics.Reconciled.Inc()
			}
		case diff.Left:
			left++
			if c.LeftAt == nil {
				p.metrics.LeftsUntimed.Inc()
			}
		}
	}
	return joined, left
}
