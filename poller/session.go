package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Polls is what a session's loop needs of a poll; Poller is one.
type Polls interface {
	// PollCached runs one cycle of a session from the state in cache, and leaves
	// the state it saved there; it reads the list of all participants as the
	// cache's budget allows.
	PollCached(ctx context.Context, log *slog.Logger, sessionID string, cache *Cache) (Result, error)
	// End ends a session that its room's list shows ended (at end, if given).
	End(ctx context.Context, log *slog.Logger, sessionID string, end *time.Time) (Result, error)
	// Settle writes what cache owes the store, when the loop stops.
	Settle(ctx context.Context, sessionID string, cache *Cache) error
}

// sessionLoop is one session's goroutine, in the shape of Prometheus'
// discovery/refresh: run decides when (a poll at once, then one on each of the
// schedule's ticks shifted by the session's own offset, at once when poked, less
// often while the API does not know the session or rejects the credentials), and
// poll does one. Everything a session keeps between polls is here, and goes with
// the goroutine.
type sessionLoop struct {
	m         *Manager
	l         *loop // as the Run goroutine sees it
	log       *slog.Logger
	roomKnown bool   // log carries the session's room
	lease     string // the lease it polls under, with leases
	ticks     ticks
	every     time.Duration
	cache     Cache   // the session's state between polls, and its list-reading budget
	fail      episode // polls failing in a row
	notFound  backoff // the API does not know the session (404)
	rejected  backoff // the API rejects the credentials
	aside     setAside
	listed    *SessionInfo // a room's list shows the session ended
}

func (m *Manager) newSessionLoop(l *loop, room, lease string) *sessionLoop {
	s := &sessionLoop{m: m, l: l, log: m.cfg.Log.With("session_id", l.id), lease: lease,
		ticks: newTicks(m.cfg.Schedule, m.anchor, l.id), every: interval(m.cfg.Schedule, m.anchor)}
	if room != "" {
		s.log, s.roomKnown = s.log.With("room_id", room), true
	}
	s.cache = NewCache(l.id, m.cfg.Schedule, m.cfg.Reconcile, m.anchor)
	return s
}

// run polls until the session has ended (true), or ctx ends: tracking stopped, or
// the worker is stopping (false). A poll in flight runs on polls, not ctx.
func (s *sessionLoop) run(ctx, polls context.Context) (ended bool) {
	next := time.Now()
	for {
		due := next
		poked, hinted, ok := wait(ctx, next, s.l.poke, s.l.hint)
		if !ok {
			if err := s.m.cfg.Poller.Settle(polls, s.l.id, &s.cache); err != nil {
				s.log.Warn("the state's last write failed as tracking stops: the next poll sends its last events again, which the stream drops as duplicates", "err", err)
			}
			return false
		}
		if hinted {
			s.cache.hint()
		}
		if poked == nil { // the tick came first; a poke waiting is news all the same
			select {
			case p := <-s.l.poke:
				poked = &p
			default:
			}
		}
		if poked != nil {
			s.listed = poked
		}
		began := time.Now()
		var res Result
		var held bool
		var err error
		if !s.m.pooled(ctx, func() { res, held, err = s.poll(polls) }) {
			continue // stopping: the wait returns at once
		}
		now := time.Now()
		next = s.ticks.after(now)
		if !held {
			continue
		}
		if poked == nil && !hinted && err == nil && now.Sub(due) > s.every { // a failed poll is said as one
			s.m.late.note(s.m.cfg.Log, now, s.l.id, now.Sub(due), s.every, res.Fetching*2 >= now.Sub(began))
		}
		wait, done := s.after(polls, res, err, now.Sub(began), now)
		if done {
			return res.Ended
		}
		next = later(next, now.Add(wait))
	}
}

// poll runs one cycle under the session's lease, if this replica still holds it
// (held false: not polled, and what the loop kept is stale), reading the list of all
// participants as the budget allows; and ends the session if the active list no
// longer tells that it ended while its room's list does.
func (s *sessionLoop) poll(polls context.Context) (res Result, held bool, err error) {
	pctx, done, ok := s.m.underLease(polls, s.lease)
	if !ok {
		// The lease is gone (a pause, a partition): not a request, not a write. The
		// lease round stops the loop.
		s.log.Debug("lease gone: not polled here", "lease", s.lease)
		s.cache.Drop()
		return Result{}, false, nil
	}
	defer done()
	res, err = s.guarded(func() (Result, error) {
		return s.m.cfg.Poller.PollCached(pctx, s.log, s.l.id, &s.cache)
	})
	if err != nil && errors.Is(context.Cause(pctx), ErrLeaseGone) {
		s.log.Debug("lease gone before the poll was over: stopped here", "lease", s.lease, "err", err)
		s.cache.Drop()
		return Result{}, false, nil
	}
	if s.listed != nil && (errors.Is(err, ErrNotFound) || (err == nil && !res.Found)) {
		s.log.Info("the session's active list does not show it ended, its room's sessions list does: ending it")
		s.cache.Drop()
		res, err = s.guarded(func() (Result, error) { return s.m.cfg.Poller.End(pctx, s.log, s.l.id, s.listed.End) })
	}
	return res, true, err
}

// guarded runs a cycle, turning a panic into its failure: a bug met by one session
// must stop neither the others nor the worker.
func (s *sessionLoop) guarded(cycle func() (Result, error)) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("cycle panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return cycle()
}

// after takes in how a poll went, which took took and ended at now: it logs it,
// reports it to the Run goroutine, and returns how long the next poll must wait at
// least, or done when the loop is over (the session ended, or the worker stops).
func (s *sessionLoop) after(polls context.Context, res Result, err error, took time.Duration, now time.Time) (wait time.Duration, done bool) {
	if res.RoomID != "" && !s.roomKnown {
		s.log, s.roomKnown = s.log.With("room_id", res.RoomID), true
	}
	if err != nil {
		s.l.trouble(0, err.Error())
	} else {
		s.l.trouble(s.aside.note(s.log, now, res.SetAside), "")
		level := slog.LevelDebug // a poll that changes nothing is not news
		if res.Joined+res.Left > 0 {
			level = slog.LevelInfo
		}
		s.log.Log(context.Background(), level, "cycle", "joined", res.Joined, "left", res.Left, "present", res.Present,
			"waiting", res.Waiting, "complete", res.Complete, "duration", took.Round(time.Millisecond))
	}
	switch {
	case err != nil && polls.Err() != nil:
		s.log.Info("cycle abandoned", "err", err)
		return 0, true
	case errors.Is(err, ErrNotFound):
		wait = s.notFound.fail(s.m.cfg.NotFoundWait, s.m.cfg.MaxNotFoundWait)
		if s.notFound.failures == 1 {
			s.log.Error("session not found: the API does not know it; asking again less and less often", "retry_in", wait)
		} else {
			s.log.Debug("session still not found", "retry_in", wait)
		}
		s.l.set(StatusNotFound, time.Time{}, 0, 0)
		return wait, false
	case errors.Is(err, ErrUnauthorized):
		// Said once for every session by the Client.
		return s.rejected.fail(s.m.cfg.RejectedWait, max(time.Minute, s.m.cfg.RejectedWait)), false
	case err != nil:
		s.fail.happened(s.log, slog.LevelError, now, "cycle failed", "cycle still failing", "err", err)
		return 0, false
	case res.Ended:
		s.log.Info("session ended: no longer polled")
		s.l.set(StatusEnded, now, 0, 0) // everyone left with it; this was its last complete poll
		return 0, true
	}
	s.fail.over(s.log, "cycle works again")
	s.rejected.reset()
	s.l.seen = s.l.seen || res.Found
	if s.notFound.failures > 0 {
		s.notFound.reset()
		s.log.Info("session found: polled on schedule again")
	}
	var complete time.Time
	if res.Complete {
		complete = now
	}
	s.l.set(StatusPolling, complete, res.Present, res.Waiting)
	return 0, false
}

// wait waits until t, a poke (which it returns) or a hint; false if ctx ends first.
func wait(ctx context.Context, t time.Time, poke <-chan SessionInfo, hint <-chan struct{}) (poked *SessionInfo, hinted, ok bool) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil, false, true
	case s := <-poke:
		return &s, false, true
	case <-hint:
		return nil, true, true
	case <-ctx.Done():
		return nil, false, false
	}
}

// lateness counts the polls that finished more than an interval after they were due,
// and says so at most once a minute, with where the time of the latest went: a
// schedule the rate limit, max_concurrency, the API's latency or NATS cannot keep up
// with, which otherwise shows only in rollcall_oldest_complete_poll_age_seconds.
type lateness struct {
	mu     sync.Mutex
	count  int
	logged time.Time
}

// note counts a late poll of session id, late by by; api tells whether most of its
// time went to the VideoSDK API.
func (l *lateness) note(log *slog.Logger, now time.Time, id string, by, every time.Duration, api bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	if now.Sub(l.logged) < time.Minute {
		return
	}
	cause := "most of their time goes to the VideoSDK API: its latency, retries or the rate limit (rollcall_api_* metrics)"
	if !api {
		cause = "most of their time goes elsewhere than the API: NATS (publishing, the state's KV: slow or unreachable), or waiting for max_concurrency"
	}
	log.Warn("polls finish more than an interval after they are due: poll.schedule is not kept; "+cause,
		"late_polls", l.count, "interval", every, "session_id", id, "late_by", by.Round(time.Millisecond))
	l.count, l.logged = 0, now
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
