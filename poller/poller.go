// Package poller turns VideoSDK's active-participants API into presence changes: a
// Client fetches every page of a session with its own tokens, retries and rate limit,
// and a Poller runs one cycle per tracked session: load the previous state, fetch all,
// diff, publish, save.
//
// # Guarantees
//
//   - A cycle whose fetch fails publishes nothing and saves nothing; the next cycle
//     starts again from the last saved state.
//   - A scan whose pages disagree is retried; if they keep disagreeing, the snapshot is
//     incomplete and no one's absence from it yields a left (see package diff).
//   - A left that rests on absence from a list of several pages needs a second scan,
//     last page first, that agrees on it: pages can shift without total changing, when
//     one participant leaves and another joins mid-scan.
//   - A cycle's events are saved with the state they lead to (an outbox) before they
//     are published, and cleared once the stream has acknowledged them, always with
//     compare-and-set on the revision that was loaded. A cycle that stops in between
//     is finished by the next: the same events, with the same ids, then the diff.
//   - Changes of one session are published in order; sessions are independent.
//
// What polling cannot see: a stint shorter than the interval between two polls, and
// the exact time of a leave.
package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rollcall/rollcall/diff"
)

// Source fetches snapshots of a session; Client is one.
type Source interface {
	// Snapshot scans every page, first to last.
	Snapshot(ctx context.Context, sessionID string) (diff.Snapshot, error)
	// Recheck scans a session of pages pages, last to first.
	Recheck(ctx context.Context, sessionID string, pages int) (diff.Snapshot, error)
}

// Store keeps each session's state between cycles, with compare-and-set on revision.
type Store interface {
	Load(ctx context.Context, sessionID string) (diff.State, uint64, error)
	Save(ctx context.Context, sessionID string, st diff.State, rev uint64) (uint64, error)
}

// Publisher publishes a session's changes and returns once all are acknowledged.
type Publisher interface {
	Publish(ctx context.Context, snap diff.Snapshot, observedAt time.Time, changes []diff.Change) error
}

// A session the API does not know (404) is asked again after notFoundWait, then after
// twice as long each time, up to maxNotFoundWait: it may be a typo that will never
// resolve, or a session that is not there yet, and neither is worth a request each
// cycle.
const (
	notFoundWait    = 30 * time.Second
	maxNotFoundWait = 10 * time.Minute
)

// Poller polls a fixed set of sessions.
type Poller struct {
	src   Source
	store Store
	pub   Publisher
	log   *slog.Logger
	slots chan struct{} // one per session polled at once, shared by overlapping cycles
	now   func() time.Time

	mu       sync.Mutex
	sessions []string
	ended    map[string]bool      // sessions no longer polled
	missing  map[string]*notFound // sessions the API answered 404 for, until found
	inflight map[string]bool      // sessions being polled, by this cycle or an earlier one
}

// notFound is when to ask again for a session that the API does not know.
type notFound struct {
	next time.Time
	wait time.Duration // the wait after the next 404
}

// Option configures a Poller.
type Option func(*Poller)

// WithClock sets the clock that times cycles, stamps observedAt and paces the
// requests for unknown sessions; the default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(p *Poller) { p.now = now }
}

// New returns a Poller of sessions that fetches up to concurrency sessions at once.
func New(src Source, store Store, pub Publisher, sessions []string, concurrency int, log *slog.Logger, opts ...Option) *Poller {
	p := &Poller{
		src: src, store: store, pub: pub, log: log, slots: make(chan struct{}, max(1, concurrency)), now: time.Now,
		sessions: sessions, ended: make(map[string]bool), missing: make(map[string]*notFound), inflight: make(map[string]bool),
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Cycle polls every session that has not ended, up to concurrency at once, and returns
// when all it started are done. Each session's failure is logged and left to the next
// cycle; a session the API does not know is logged once and asked again less and less
// often. Cycles may overlap: a session still being polled by an earlier cycle is
// skipped, so that one slow session holds up no other. Once stopping is closed, no
// further session is started; those under way go on until ctx ends.
func (p *Poller) Cycle(ctx context.Context, stopping <-chan struct{}) {
	now := p.now()
	p.mu.Lock()
	var todo []string
	for _, id := range p.sessions {
		if m := p.missing[id]; !p.ended[id] && !p.inflight[id] && (m == nil || !now.Before(m.next)) {
			todo = append(todo, id)
			p.inflight[id] = true
		}
	}
	p.mu.Unlock()
	done := func(id string) {
		p.mu.Lock()
		delete(p.inflight, id)
		p.mu.Unlock()
	}

	var wg sync.WaitGroup
	for i, id := range todo {
		slot := false
		select {
		case p.slots <- struct{}{}:
			slot = true
		case <-ctx.Done():
		case <-stopping:
		}
		if ctx.Err() != nil || isClosed(stopping) {
			if slot {
				<-p.slots // shared with later cycles: not to be lost
			}
			for _, id := range todo[i:] {
				done(id)
			}
			break
		}
		wg.Go(func() {
			defer func() { <-p.slots }()
			defer done(id)
			p.poll(ctx, id)
		})
	}
	wg.Wait()
}

// poll runs one session's cycle, and logs and notes how it went.
func (p *Poller) poll(ctx context.Context, id string) {
	log := p.log.With("session_id", id)
	// Cron's Recover does not reach this goroutine: a bug met by one session must not
	// stop the others, nor the worker.
	defer func() {
		if r := recover(); r != nil {
			log.Error("cycle panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	ended, err := p.Poll(ctx, log, id)
	switch {
	case err != nil && ctx.Err() != nil:
		log.Info("cycle abandoned", "err", err)
	case errors.Is(err, ErrNotFound):
		p.notFound(log, id)
	case err != nil:
		log.Error("cycle failed", "err", err)
	default:
		p.found(log, id, ended)
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// notFound notes a 404 for a session: logged when it begins, and asked again later.
func (p *Poller) notFound(log *slog.Logger, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.missing[id]
	if m == nil {
		m = &notFound{wait: notFoundWait}
		p.missing[id] = m
		log.Error("session not found: the API does not know it; asking again less and less often", "retry_in", m.wait)
	} else {
		log.Debug("session still not found", "retry_in", m.wait)
	}
	m.next = p.now().Add(m.wait)
	m.wait = min(2*m.wait, maxNotFoundWait)
}

// found notes a successful cycle of a session, which ends a not-found spell, and
// whether the session has ended.
func (p *Poller) found(log *slog.Logger, id string, ended bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.missing[id] != nil {
		delete(p.missing, id)
		log.Info("session found: polled every cycle again")
	}
	if ended {
		p.ended[id] = true
		log.Info("session ended: no longer polled")
	}
}

// Poll runs one cycle of one session and reports whether the session has ended.
func (p *Poller) Poll(ctx context.Context, log *slog.Logger, sessionID string) (ended bool, err error) {
	start := p.now()
	prev, rev, err := p.store.Load(ctx, sessionID)
	if err != nil {
		return false, err
	}
	if prev.Outbox != nil {
		// The last cycle stopped before its events were acknowledged.
		log.Info("sending again the events of a cycle that stopped before the stream acknowledged them", "events", len(prev.Outbox.Changes))
		if rev, err = p.deliver(ctx, sessionID, prev, rev); err != nil {
			return false, fmt.Errorf("previous cycle's events: %w", err)
		}
		prev.Outbox = nil
	}
	if prev.Ended {
		return true, nil
	}
	snap, err := p.src.Snapshot(ctx, sessionID)
	if err != nil {
		return false, fmt.Errorf("fetch: %w", err)
	}
	if snap.Complete && snap.Pages > 1 && snap.Status != diff.StatusEnded && prev.Absent(snap) {
		snap = p.confirm(ctx, log, sessionID, snap)
	}
	if snap.RoomID == "" {
		snap.RoomID = prev.RoomID
	}
	changes, next := diff.Compute(prev, snap)
	switch {
	case len(changes) > 0:
		meta := snap
		meta.Participants = nil
		next.Outbox = &diff.Outbox{Session: meta, ObservedAt: p.now(), Changes: changes}
		if rev, err = p.store.Save(ctx, sessionID, next, rev); err != nil {
			return false, err
		}
		if _, err = p.deliver(ctx, sessionID, next, rev); err != nil {
			return false, err
		}
	case !next.Equal(prev):
		if _, err = p.store.Save(ctx, sessionID, next, rev); err != nil {
			return false, err
		}
	}
	joined, left := count(changes)
	log.Info("cycle", "joined", joined, "left", left, "present", len(next.Present),
		"complete", snap.Complete, "duration", p.now().Sub(start).Round(time.Millisecond))
	return next.Ended, nil
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
	return p.store.Save(ctx, sessionID, st, rev)
}

// confirm scans a session of several pages again, backward, before anyone's absence
// counts: one participant leaving and another joining mid-scan shift the pages while
// total and count still agree, hiding someone who never left, and a backward scan
// cannot be fooled that way (see Client.Recheck). Only an absence from both scans
// counts. A single page came in one answer and needs no confirming.
func (p *Poller) confirm(ctx context.Context, log *slog.Logger, sessionID string, snap diff.Snapshot) diff.Snapshot {
	again, err := p.src.Recheck(ctx, sessionID, snap.Pages)
	if err != nil {
		log.Warn("confirming scan failed: no participant's absence counts this cycle", "err", err)
		snap.Complete = false
		return snap
	}
	return diff.Union(snap, again)
}

func count(changes []diff.Change) (joined, left int) {
	for _, c := range changes {
		switch c.Kind {
		case diff.Joined:
			joined++
		case diff.Left:
			left++
		}
	}
	return joined, left
}
