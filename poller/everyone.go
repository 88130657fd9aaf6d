package poller

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/metrics"
)

// Everyone returns every participant a session has had, present or gone, each with
// its whole timelog (entries that ended carry their end), from every page of GET
// /v2/sessions/{id}/participants, as all.Participants; all.SetAside are the ones
// that could not be used, and all.Pages how many pages it read, even when it failed.
//
// The list is read once, page after page, up to the last page any page announced,
// and taken as it is: its readers never infer anything from someone's absence from
// it (a pending left waits for a later reading, a missed stint is reconciled by one),
// so a list that grows or shifts mid-scan does no harm. Everyone stays in it once
// joined: it only grows, and a shift could only show someone twice, who then counts
// once, as the later page shows them.
func (c *Client) Everyone(ctx context.Context, log *slog.Logger, sessionID string) (all diff.Snapshot, err error) {
	if log == nil {
		log = c.cfg.Log.With("session_id", sessionID)
	}
	all.SessionID = sessionID
	at := make(map[string]int) // participantId -> index in all.Participants
	last := 1
	path := "/v2/sessions/" + url.PathEscape(sessionID) + "/participants"
	err = walk(ctx, c, log, metrics.EndpointAll, path, nil, foreground, "all participants, ", 1, DecodePage, func(n int, page Page) (int, error) {
		all.Pages = n
		if page.Paged {
			last = max(last, page.LastPage)
		}
		for _, s := range page.Sessions {
			if s.SessionID != sessionID {
				return n, fmt.Errorf("%w: it is for session %q", ErrMalformed, s.SessionID)
			}
			all.SetAside = append(all.SetAside, s.SetAside...)
			for _, p := range s.Participants {
				if i, twice := at[p.ID]; twice {
					all.Participants[i] = p
					continue
				}
				at[p.ID] = len(all.Participants)
				all.Participants = append(all.Participants, p)
			}
		}
		if n < last {
			return n + 1, nil
		}
		return 0, nil
	})
	if err != nil {
		all.Pages++ // the page that failed: pages come one after the other, from 1
	}
	return all, err
}
