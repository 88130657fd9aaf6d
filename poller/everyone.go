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
// /v2/sessions/{id}/participants; pages is how many pages it read.
//
// The list is read once, page after page, up to the last page any page announced,
// and taken as it is: its readers never infer anything from someone's absence from
// it (a pending left waits for a later reading, a missed stint is reconciled by one),
// so a list that grows or shifts mid-scan does no harm. Everyone stays in it once
// joined: it only grows, and a shift could only show someone twice, who then counts
// once, as the later page shows them.
func (c *Client) Everyone(ctx context.Context, log *slog.Logger, sessionID string) (list []diff.Participant, pages int, err error) {
	if log == nil {
		log = c.cfg.Log.With("session_id", sessionID)
	}
	path := "/v2/sessions/" + url.PathEscape(sessionID) + "/participants"
	at := make(map[string]int) // participantId -> index in list
	last := 1
	for n := 1; n <= last; n++ {
		body, err := c.get(ctx, log, metrics.EndpointAll, path, url.Values{"page": {strconv.Itoa(n)}, "perPage": {strconv.Itoa(c.cfg.PerPage)}}, foreground)
		if err != nil {
			return nil, n, err
		}
		page, err := DecodePage(body)
		if err != nil {
			return nil, n, fmt.Errorf("all participants, page %d: %w; the body begins %q", n, err, snippet(body))
		}
		recycle(body)
		if len(page.Skipped) > 0 {
			return nil, n, fmt.Errorf("all participants, page %d: %w: participants without a timelog start: %v", n, ErrMalformed, page.Skipped)
		}
		if page.Paged {
			last = max(last, page.LastPage)
		}
		for _, s := range page.Sessions {
			if s.SessionID != sessionID {
				return nil, n, fmt.Errorf("all participants, page %d: %w: it is for session %q", n, ErrMalformed, s.SessionID)
			}
			for _, p := range s.Participants {
				if i, twice := at[p.ID]; twice {
					list[i] = p
					continue
				}
				at[p.ID] = len(list)
				list = append(list, p)
			}
		}
	}
	return list, last, nil
}
