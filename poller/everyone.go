package poller

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/metrics"
)

// Everyone returns every participant a session has had, present or gone, each with
// its whole timelog (entries that ended carry their end), from every page of GET
// /v2/sessions/{id}/participants. The list is in order of first join and only
// grows, so a participant who joins mid-scan shifts nothing before it; a scan whose
// total or lastPage changed, or that lists someone twice, is read again, up to
// maxScans times, and is an error if it never holds still. pages is how many pages the
// last scan read.
func (c *Client) Everyone(ctx context.Context, log *slog.Logger, sessionID string) (list []diff.Participant, pages int, err error) {
	if log == nil {
		log = c.cfg.Log.With("session_id", sessionID)
	}
	var why string
	for scan := 1; scan <= maxScans; scan++ {
		if list, pages, why, err = c.everyone(ctx, log, sessionID); err != nil {
			return nil, pages, err
		}
		if why == "" {
			return list, pages, nil
		}
		log.Info("the list of all participants changed mid-scan, scanning again", "scan", scan, "why", why)
	}
	return nil, pages, fmt.Errorf("the list of all participants kept changing mid-scan: %s", why)
}

// everyone reads every page once; why says how the pages disagreed, if they did.
func (c *Client) everyone(ctx context.Context, log *slog.Logger, sessionID string) (list []diff.Participant, pages int, why string, err error) {
	path := "/v2/sessions/" + url.PathEscape(sessionID) + "/participants"
	seen := make(map[string]bool)
	var first Page
	for n := 1; ; n++ {
		body, err := c.get(ctx, log, metrics.EndpointAll, path, url.Values{"page": {strconv.Itoa(n)}, "perPage": {strconv.Itoa(c.cfg.PerPage)}}, foreground)
		if err != nil {
			return nil, n, "", err
		}
		page, err := DecodePage(body)
		if err != nil {
			return nil, n, "", fmt.Errorf("all participants, page %d: %w; the body begins %q", n, err, snippet(body))
		}
		recycle(body)
		if n == 1 {
			first = page
			if !page.Paged {
				first.LastPage = 1
			}
		} else if page.Total != first.Total || page.LastPage != first.LastPage {
			return nil, n, fmt.Sprintf("page %d: total %d, lastPage %d; page 1: total %d, lastPage %d", n, page.Total, page.LastPage, first.Total, first.LastPage), nil
		}
		if len(page.Skipped) > 0 {
			return nil, n, "", fmt.Errorf("all participants, page %d: %w: participants without a timelog start: %v", n, ErrMalformed, page.Skipped)
		}
		for _, s := range page.Sessions {
			if s.SessionID != sessionID {
				return nil, n, "", fmt.Errorf("all participants, page %d: %w: it is for session %q", n, ErrMalformed, s.SessionID)
			}
			for _, p := range s.Participants {
				if seen[p.ID] {
					return nil, n, fmt.Sprintf("participant %s listed twice", p.ID), nil
				}
				seen[p.ID] = true
				list = append(list, p)
			}
		}
		if n >= first.LastPage {
			pages = n
			break
		}
	}
	if first.Paged && len(list) != first.Total {
		return nil, pages, fmt.Sprintf("%d participants listed, total says %d", len(list), first.Total), nil
	}
	return list, pages, "", nil
}
