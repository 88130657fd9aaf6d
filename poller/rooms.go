package poller

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/metrics"
)

// SessionInfo is one session of a room, as the sessions list shows it.
type SessionInfo struct {
	ID     string
	Status string // "ongoing", "ended", or any other string, kept opaque
	Start  time.Time
	End    *time.Time // when it ended, if the list says
}

// Ended reports whether the list says the session has ended.
func (s SessionInfo) Ended() bool { return s.Status == diff.StatusEnded }

// DecodeSessions decodes a body of GET /v2/sessions/?roomId=…: pageInfo, and data as
// an array of sessions, each with an id (`id`, or `_id` as in the participants
// endpoints). A session whose id breaks diff.CheckID is set aside alone, and a time
// out of range is taken as unknown.
func DecodeSessions(body []byte) (pageInfo, []SessionInfo, []diff.SetAside, error) {
	var raw struct {
		PageInfo *pageInfo `json:"pageInfo"`
		Data     []struct {
			ID     string   `json:"id"`
			AltID  string   `json:"_id"`
			Status string   `json:"status"`
			Start  wireTime `json:"start"`
			End    wireTime `json:"end"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return pageInfo{}, nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if raw.PageInfo == nil || raw.Data == nil {
		return pageInfo{}, nil, nil, fmt.Errorf("%w: no pageInfo or no data array", ErrMalformed)
	}
	if pi := raw.PageInfo; pi.LastPage < 0 || pi.LastPage > maxPages {
		return pageInfo{}, nil, nil, fmt.Errorf("%w: pageInfo lastPage %d", ErrMalformed, pi.LastPage)
	}
	out := make([]SessionInfo, 0, len(raw.Data))
	var bad []diff.SetAside
	for i, d := range raw.Data {
		s := SessionInfo{ID: cmp.Or(d.ID, d.AltID), Status: d.Status}
		if err := diff.CheckID(s.ID); err != nil {
			bad = append(bad, diff.SetAside{Reason: diff.ReasonID, Detail: fmt.Sprintf("session %d: id %.32q…: %v", i, s.ID, err)})
			continue
		}
		start, err := apiTime(d.Start)
		if err != nil {
			bad = append(bad, diff.SetAside{ID: s.ID, Reason: diff.ReasonTime, Detail: "session start: " + err.Error()})
		} else if start != nil {
			s.Start = *start
		}
		if s.End, err = apiTime(d.End); err != nil {
			bad = append(bad, diff.SetAside{ID: s.ID, Reason: diff.ReasonTime, Detail: "session end: " + err.Error()})
		}
		if s.End != nil && s.End.Before(s.Start) {
			bad = append(bad, diff.SetAside{ID: s.ID, Reason: diff.ReasonOrder, Detail: "the session ends before it starts: its end is taken as unknown"})
			s.End = nil
		}
		out = append(out, s)
	}
	return *raw.PageInfo, out, bad, nil
}

// RoomSessions lists a room's sessions, newest first, at a lower priority than
// polls: while a poll waits for the rate limit, it waits too. With all, it reads
// every page; else it reads on only while a page lists a session that has not ended,
// since the list is newest first and a room's history is ended sessions, which
// are never polled. A failed page fails the whole list: no session is dropped
// because a list failed.
func (c *Client) RoomSessions(ctx context.Context, roomID string, all bool) ([]SessionInfo, []diff.SetAside, error) {
	log := c.cfg.Log.With("room_id", roomID)
	var out []SessionInfo
	var bad []diff.SetAside
	seen := make(map[string]bool)
	type listing struct {
		info     pageInfo
		sessions []SessionInfo
		bad      []diff.SetAside
	}
	decode := func(body []byte) (l listing, err error) {
		l.info, l.sessions, l.bad, err = DecodeSessions(body)
		return l, err
	}
	err := walk(ctx, c, log, metrics.EndpointSessions, "/v2/sessions/", url.Values{"roomId": {roomID}}, background,
		"sessions of room "+roomID+", ", 1, decode, func(n int, page listing) (int, error) {
			bad = append(bad, page.bad...)
			live := false
			for _, s := range page.sessions {
				// A session started mid-listing shifts the pages: one may be listed twice.
				if !seen[s.ID] {
					seen[s.ID] = true
					out = append(out, s)
				}
				live = live || !s.Ended()
			}
			if n < page.info.LastPage && (all || live) {
				return n + 1, nil
			}
			return 0, nil
		})
	if err != nil {
		return nil, nil, err
	}
	return out, bad, nil
}

// Probe asks the API for one page of a session's active participants, to check that
// it answers and accepts the credentials.
func (c *Client) Probe(ctx context.Context, sessionID string) error {
	q := url.Values{"page": {"1"}, "perPage": {"1"}}
	_, err := c.get(ctx, c.cfg.Log.With("session_id", sessionID), metrics.EndpointActive, "/v2/sessions/"+url.PathEscape(sessionID)+"/participants/active", q, foreground)
	return err
}
