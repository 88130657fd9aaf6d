package poller

import (
	"context"
	"log/slog"
	"time"
)

// followRoom is one room's loop: it lists the room's sessions at once, then on each
// tick of the discover schedule or hint, and hands what it found to found. The first listing
// that succeeds reads every page; later ones stop at the first page with no live
// session. A listing that fails changes nothing.
func (m *Manager) followRoom(ctx context.Context, l *loop, found func([]SessionInfo)) {
	log := m.cfg.Log.With("room_id", l.id)
	ticks := newTicks(m.cfg.Discover, m.anchor, "room "+l.id)
	every := interval(m.cfg.Discover, m.anchor)
	listed := false
	var failing episode
	var aside setAside
	due := time.Now()
	for {
		if _, _, ok := wait(ctx, due, nil, l.hint); !ok {
			return
		}
		// A listing may wait behind polls for the rate limit, retry failures, or meet
		// a slow API: say so when it is late by more than an interval, before it is
		// done. The metrics tell which (rollcall_api_retries_total, the request
		// latency, rollcall_api_holds_total).
		since := due // the timer's own copy: due moves on while it may still run
		late := time.AfterFunc(time.Until(since.Add(every)), func() {
			log.Warn("room discovery is behind schedule: the room's listing is not done", "behind", time.Since(since).Round(time.Second))
		})
		list, bad, err := m.cfg.Rooms.RoomSessions(ctx, l.id, !listed)
		if !late.Stop() {
			log.Warn("room discovery was behind schedule", "behind", time.Since(due).Round(time.Second))
		}
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failing.happened(log, slog.LevelError, now, "listing the room's sessions failed; its sessions stay as they were",
				"listing the room's sessions still fails", "err", err)
			l.trouble(0, err.Error())
		default:
			failing.over(log, "listing the room's sessions works again")
			listed = true
			l.trouble(aside.note(log, now, bad), "")
			l.set(StatusFollowing, now, 0, 0)
			found(list)
		}
		due = ticks.after(now)
	}
}
