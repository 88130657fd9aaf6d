package poller

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"
)

// Statuses of tracked IDs, as `rollcall tracked` shows them.
const (
	StatusPolling   = "polling"   // a session whose loop runs
	StatusNotFound  = "not found" // a session the API answered 404 for, asked less often
	StatusEnded     = "ended"     // a session that ended: its loop has returned
	StatusFollowing = "following" // a room whose sessions are listed on the discover schedule
	StatusStopping  = "stopping"  // untracked, its poll in flight: it returns when that is done
)

// Status is one tracked session or room.
type Status struct {
	Kind    string    `json:"kind"`
	ID      string    `json:"id"`
	From    []string  `json:"from"` // "config", "bucket", "room <id>"
	Status  string    `json:"status"`
	Last    time.Time `json:"lastComplete,omitzero"` // a session's last complete poll, a room's last listing
	Present int       `json:"present"`               // a session's participants, as last polled
	Waiting int       `json:"waiting,omitempty"`     // a session's lefts waiting for their end
	Replica string    `json:"replica,omitempty"`     // the replica that polls or follows it, with leases
	// SetAside counts the records of its last answer that could not be used, and
	// Problem says why its polls or listings fail, while they do.
	SetAside int    `json:"setAside,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// set notes how the loop's last poll or listing went, for Status.
func (l *loop) set(status string, last time.Time, present, waiting int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status, l.present, l.waiting = status, present, waiting
	if !last.IsZero() {
		l.last = last
	}
}

// trouble notes what is wrong with the loop's answers: records set aside, and why
// its polls fail ("" while they work).
func (l *loop) trouble(setAside int, problem string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setAside, l.problem = setAside, problem
}

// Status returns every tracked session and room, sorted by kind and ID.
func (m *Manager) Status(ctx context.Context) ([]Status, error) {
	q := make(chan []Status, 1)
	select {
	case m.queries <- q:
		return <-q, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// status lists the loops as Status shows them. It runs on the Run goroutine.
func (m *Manager) status() []Status {
	var out []Status
	for _, loops := range []map[string]*loop{m.rooms, m.sessions} {
		for _, l := range loops {
			if len(l.from) == 0 && l.done {
				continue
			}
			l.mu.Lock()
			s := Status{Kind: l.kind, ID: l.id, From: slices.Sorted(maps.Keys(l.from)), Status: l.status, Last: l.last, Present: l.present, Waiting: l.waiting,
				SetAside: l.setAside, Problem: l.problem}
			if m.keeper != nil {
				s.Replica = m.cfg.Replica
			}
			l.mu.Unlock()
			switch {
			case len(l.from) == 0:
				s.Status = StatusStopping
			case l.ended:
				s.Status = StatusEnded
			}
			if s.Status == "" {
				s.Status = StatusPolling
				if l.kind == KindRoom {
					s.Status = StatusFollowing
				}
			}
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Status) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID)) // rooms first
	})
	return out
}
