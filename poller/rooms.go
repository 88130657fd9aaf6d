package poller

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
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
// endpoints).
func DecodeSessions(body []byte) (pageInfo, []SessionInfo, error) {
	var raw struct {
		PageInfo *pageInfo `json:"pageInfo"`
		Data     []struct {
			ID     string     `json:"id"`
			AltID  string     `json:"_id"`
			Status string     `json:"status"`
			Start  time.Time  `json:"start"`
			End    *time.Time `json:"end"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return pageInfo{}, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if raw.PageInfo == nil || raw.Data == nil {
		return pageInfo{}, nil, fmt.Errorf("%w: no pageInfo or no data array", ErrMalformed)
	}
	if pi := raw.PageInfo; pi.LastPage < 0 || pi.LastPage > maxPages {
		return pageInfo{}, nil, fmt.Errorf("%w: pageInfo lastPage %d", ErrMalformed, pi.LastPage)
	}
	out := make([]SessionInfo, 0, len(raw.Data))
	for i, d := range raw.Data {
		s := SessionInfo{ID: cmp.Or(d.ID, d.AltID), Status: d.Status, Start: ms(d.Start), End: msPtr(d.End)}
		if s.ID == "" {
			return pageInfo{}, nil, fmt.Errorf("%w: session %d has no id", ErrMalformed, i)
		}
		out = append(out, s)
	}
	return *raw.PageInfo, out, nil
}

// RoomSessions lists a room's sessions, newest first, at a lower priority than
// polls: while a poll waits for the rate limit, it waits too. With all, it reads
// every page; else it reads on only while a page lists a session that has not ended,
// since the list is newest first and a room's history is ended sessions, which
// are never polled. A failed page fails the whole list: no session is dropped
// because a list failed.
func (c *Client) RoomSessions(ctx context.Context, roomID string, all bool) ([]SessionInfo, error) {
	log := c.cfg.Log.With("room_id", roomID)
	var out []SessionInfo
	seen := make(map[string]bool)
	for n, last := 1, 1; n <= last; n++ {
		body, err := c.get(ctx, log, metrics.EndpointSessions, "/v2/sessions/", url.Values{
			"roomId": {roomID}, "page": {strconv.Itoa(n)}, "perPage": {strconv.Itoa(c.cfg.PerPage)},
		}, background)
		if err != nil {
			return nil, err
		}
		info, page, err := DecodeSessions(body)
		if err != nil {
			return nil, fmt.Errorf("sessions of room %s, page %d: %w; the body begins %q", roomID, n, err, snippet(body))
		}
		last = info.LastPage
		live := false
		for _, s := range page {
			// A session started mid-listing shifts the pages: one may be listed twice.
			if !seen[s.ID] {
				seen[s.ID] = true
				out = append(out, s)
			}
			live = live || !s.Ended()
		}
		if !all && !live {
			break
		}
	}
	return out, nil
}

// Probe asks the API for one page of a session's active participants or of a room's
// sessions (kind "session" or "room"), to check that it answers and accepts the
// credentials.
func (c *Client) Probe(ctx context.Context, kind, id string) error {
	log := c.cfg.Log.With(kind+"_id", id)
	q := url.Values{"page": {"1"}, "perPage": {"1"}}
	var err error
	if kind == KindRoom {
		q.Set("roomId", id)
		_, err = c.get(ctx, log, metrics.EndpointSessions, "/v2/sessions/", q, foreground)
	} else {
		_, err = c.get(ctx, log, metrics.EndpointActive, "/v2/sessions/"+url.PathEscape(id)+"/participants/active", q, foreground)
	}
	return err
}
