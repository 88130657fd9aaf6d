package poller

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/metrics"
)

// maxPages bounds one scan, so that a broken lastPage cannot make it endless.
const maxPages = 10_000

// maxScans is how many times a session is scanned when its pages disagree (a
// participant came or went mid-scan and shifted them) before the snapshot is given up
// as incomplete.
const maxScans = 3

// ErrMalformed is returned for a 200 answer whose body is not a page of the API.
var ErrMalformed = errors.New("malformed page")

// Page is one decoded page of active participants.
type Page struct {
	// Paged is false for the older shape (data an object, no pageInfo), which holds
	// every participant at once.
	Paged                                 bool
	CurrentPage, PerPage, LastPage, Total int
	Sessions                              []diff.Snapshot // one per element of data; usually one
	// Skipped lists participants listed without a usable stint (no timelog start):
	// they cannot be told apart from one poll to the next, so the snapshot that holds
	// them is incomplete.
	Skipped []string
}

type pageInfo struct {
	CurrentPage int `json:"currentPage"`
	PerPage     int `json:"perPage"`
	LastPage    int `json:"lastPage"`
	Total       int `json:"total"`
}

type sessionDoc struct {
	ID           string           `json:"_id"`
	AltID        string           `json:"id"`
	RoomID       string           `json:"roomId"`
	Start        *time.Time       `json:"start"`
	End          *time.Time       `json:"end"`
	Status       string           `json:"status"`
	Participants []participantDoc `json:"participants"`
}

type participantDoc struct {
	ParticipantID string          `json:"participantId"`
	Name          string          `json:"name"`
	Timelog       []diff.Entry    `json:"timelog"`
	Mode          string          `json:"mode"`
	DeviceInfo    json.RawMessage `json:"deviceInfo"`
	GeoLocation   json.RawMessage `json:"geoLocation"`
	SDKType       string          `json:"-"` // deviceInfo.sdkType
}

// DecodePage decodes a body of GET /v2/sessions/{id}/participants/active, in either the
// current shape ({pageInfo, data: [session]}) or the older one ({data: session}).
// Every session document must have an id and every participant a participantId; an
// error means the page is unusable. Times are kept to the millisecond, as the API
// writes them, so that a change of precision does not make a stint look new.
func DecodePage(body []byte) (Page, error) {
	pi, docs, err := scanPage(body)
	if err != nil {
		// Malformed, or unusual JSON (see scanPage): encoding/json decides, and says why.
		if pi, docs, err = unmarshalPage(body); err != nil {
			return Page{}, err
		}
	}
	return newPage(pi, docs)
}

// unmarshalPage decodes a page with encoding/json, which defines what DecodePage
// accepts: scanPage is only faster.
func unmarshalPage(body []byte) (*pageInfo, []sessionDoc, error) {
	// One pass for the current shape; the older one, where data is an object, shows as
	// a type error and takes a second.
	var raw struct {
		PageInfo *pageInfo    `json:"pageInfo"`
		Data     []sessionDoc `json:"data"`
	}
	var docs []sessionDoc
	if err := json.Unmarshal(body, &raw); err == nil {
		if raw.Data == nil {
			return nil, nil, fmt.Errorf("%w: data is neither an array nor an object", ErrMalformed)
		}
		docs = raw.Data
	} else {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		var older struct {
			PageInfo *pageInfo  `json:"pageInfo"`
			Data     sessionDoc `json:"data"`
		}
		if olderErr := json.Unmarshal(body, &older); olderErr != nil {
			if te.Field == "data" { // data is not an array: the older shape's error says why
				err = olderErr
			}
			return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		raw.PageInfo, docs = older.PageInfo, []sessionDoc{older.Data}
	}
	for _, doc := range docs {
		for i, pd := range doc.Participants {
			var di struct {
				SDKType string `json:"sdkType"`
			}
			if json.Unmarshal(pd.DeviceInfo, &di) == nil {
				doc.Participants[i].SDKType = di.SDKType
			}
		}
	}
	return raw.PageInfo, docs, nil
}

// newPage checks the decoded documents and makes a Page of them.
func newPage(pi *pageInfo, docs []sessionDoc) (Page, error) {
	p := Page{Sessions: make([]diff.Snapshot, 0, len(docs))}
	if pi != nil {
		p.Paged, p.CurrentPage, p.PerPage, p.LastPage, p.Total = true, pi.CurrentPage, pi.PerPage, pi.LastPage, pi.Total
		if pi.LastPage < 0 || pi.Total < 0 || pi.LastPage > maxPages {
			return Page{}, fmt.Errorf("%w: pageInfo lastPage %d, total %d", ErrMalformed, pi.LastPage, pi.Total)
		}
	}
	for _, doc := range docs {
		s := diff.Snapshot{SessionID: cmp.Or(doc.ID, doc.AltID), RoomID: doc.RoomID, Status: doc.Status, End: msPtr(doc.End)}
		if s.SessionID == "" {
			return Page{}, fmt.Errorf("%w: session document without _id", ErrMalformed)
		}
		if doc.Start != nil {
			s.Start = ms(*doc.Start)
		}
		if n := len(doc.Participants); n > 0 {
			s.Participants = make([]diff.Participant, 0, n)
		}
		for i, pd := range doc.Participants {
			if pd.ParticipantID == "" {
				return Page{}, fmt.Errorf("%w: participant %d has no participantId", ErrMalformed, i)
			}
			if part, ok := participant(pd); ok {
				s.Participants = append(s.Participants, part)
			} else {
				p.Skipped = append(p.Skipped, pd.ParticipantID)
			}
		}
		if len(s.Participants) == 0 {
			s.Participants = nil // as when none was listed
		}
		p.Sessions = append(p.Sessions, s)
	}
	return p, nil
}

// object keeps raw JSON only if it is an object, as the API documents deviceInfo and
// geoLocation; anything else is dropped rather than passed on to subscribers.
func object(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	return raw
}

func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func msPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	m := ms(*t)
	return &m
}

// participant reads a participant in its current stint; ok is false when the timelog
// gives no stint start.
func participant(pd participantDoc) (p diff.Participant, ok bool) {
	p = diff.Participant{
		ID: pd.ParticipantID, Name: pd.Name, Mode: pd.Mode, SDKType: pd.SDKType,
		DeviceInfo: object(pd.DeviceInfo), GeoLocation: object(pd.GeoLocation), Timelog: pd.Timelog,
	}
	for i := range p.Timelog {
		p.Timelog[i].Start, p.Timelog[i].End = ms(p.Timelog[i].Start), msPtr(p.Timelog[i].End)
	}
	// The stint is the open timelog entry. The API lists only present participants,
	// so when none is open (a late write), the last entry stands for it.
	if n := len(p.Timelog); n > 0 {
		p.JoinedAt = p.Timelog[n-1].Start
	}
	for _, e := range slices.Backward(p.Timelog) {
		if e.End == nil {
			p.JoinedAt = e.Start
			break
		}
	}
	return p, !p.JoinedAt.IsZero()
}

// Snapshot scans every page of a session's active participants, from the first. A
// page that fails fails the scan: nothing is returned from it. When the pages disagree
// with each other (total or lastPage changed, a participant listed twice, fewer or
// more listed than total), the session is scanned again, up to maxScans times; the
// last scan is then returned with Complete false, so that no one's absence from it
// counts. A scan that found no session document, or a participant without a usable
// stint, is incomplete too.
func (c *Client) Snapshot(ctx context.Context, log *slog.Logger, sessionID string) (diff.Snapshot, error) {
	return c.snapshot(ctx, log, sessionID, 0)
}

// Recheck scans a session of pages pages as Snapshot does, but from the last page to
// the first. The list is in order of arrival: a leave moves everyone after it one place
// toward page 1, and a newcomer is added at the end. A forward scan misses whoever a
// leave moves onto a page already read, even when a join keeps total unchanged; a
// backward scan reads pages in the direction of the move, so whoever moves is seen
// twice (and the scan disagrees) instead, and a newcomer it misses is no false left.
func (c *Client) Recheck(ctx context.Context, log *slog.Logger, sessionID string, pages int) (diff.Snapshot, error) {
	return c.snapshot(ctx, log, sessionID, max(pages, 1))
}

// snapshot scans forward if last is 0, else backward from page last. A nil log is
// the client's own, with the session's ID.
func (c *Client) snapshot(ctx context.Context, log *slog.Logger, sessionID string, last int) (diff.Snapshot, error) {
	if log == nil {
		log = c.cfg.Log.With("session_id", sessionID)
	}
	var snap diff.Snapshot
	var why string
	for scan := 1; scan <= maxScans; scan++ {
		var err error
		snap, why, err = c.scan(ctx, log, sessionID, last)
		if err != nil {
			return diff.Snapshot{}, err
		}
		c.cfg.Metrics.ScanPages.Observe(float64(snap.Pages))
		if why == "" {
			return snap, nil
		}
		c.cfg.Metrics.ScansDiscarded.Inc()
		log.Info("pages disagreed, scanning again", "scan", scan, "why", why)
		if last > 0 {
			last = snap.Pages // the list has grown or shrunk
		}
	}
	log.Warn("pages kept disagreeing: no participant's absence counts this cycle", "why", why)
	snap.Complete = false
	return snap, nil
}

// scan fetches every page, forward from page 1 to its lastPage if last is 0, else
// backward from page last to 1. why says how the pages disagreed, if they did.
func (c *Client) scan(ctx context.Context, log *slog.Logger, sessionID string, last int) (snap diff.Snapshot, why string, err error) {
	path := "/v2/sessions/" + url.PathEscape(sessionID) + "/participants/active"
	snap = diff.Snapshot{SessionID: sessionID}
	var first Page
	var skipped []string
	listed := 0
	seen := make(map[string]bool)
	n := max(last, 1)
	for fetched := 0; ; fetched++ {
		body, err := c.get(ctx, log, metrics.EndpointActive, path, url.Values{"page": {strconv.Itoa(n)}, "perPage": {strconv.Itoa(c.cfg.PerPage)}}, foreground)
		if err != nil {
			return snap, "", err
		}
		page, err := DecodePage(body)
		if err != nil {
			return snap, "", fmt.Errorf("page %d: %w; the body begins %q", n, err, snippet(body))
		}
		recycle(body) // the page holds copies of what it keeps
		switch {
		case fetched == 0:
			first = page
			if !page.Paged {
				first.LastPage = 1 // the older shape holds everyone at once
			}
			if last > 0 && first.LastPage != last {
				why = fmt.Sprintf("lastPage %d, not %d", first.LastPage, last)
			}
		case page.Total != first.Total || page.LastPage != first.LastPage:
			why = fmt.Sprintf("page %d: total %d, lastPage %d; page %d: total %d, lastPage %d", n, page.Total, page.LastPage, max(last, 1), first.Total, first.LastPage)
		}
		listedBefore := listed
		skipped = append(skipped, page.Skipped...)
		listed += len(page.Skipped)
		for _, s := range page.Sessions {
			if s.SessionID != sessionID {
				return snap, "", fmt.Errorf("page %d: %w: it is for session %q", n, ErrMalformed, s.SessionID)
			}
			snap.Found = true
			if snap.RoomID == "" {
				snap.RoomID, snap.Start = s.RoomID, s.Start
			}
			// Any page saying ended is enough: the session ended during the scan.
			if snap.Status != diff.StatusEnded {
				snap.Status = s.Status
			}
			if s.End != nil {
				snap.End = s.End
			}
			for _, p := range s.Participants {
				listed++
				if seen[p.ID] {
					why = fmt.Sprintf("participant %s listed twice", p.ID)
					continue
				}
				seen[p.ID] = true
				snap.Participants = append(snap.Participants, p)
			}
		}
		if why == "" && listed == listedBefore && n < first.LastPage {
			why = fmt.Sprintf("page %d empty, lastPage %d", n, first.LastPage)
		}
		if why != "" {
			// The scan is void: read no further pages of a list that has changed or
			// whose lastPage is wrong, up to maxPages of them.
			break
		}
		if last > 0 {
			if n--; n < 1 {
				break
			}
		} else if n++; n > first.LastPage {
			break
		}
	}
	snap.Pages = max(first.LastPage, 1)
	if why == "" && first.Paged && listed != first.Total {
		why = fmt.Sprintf("%d participants listed, total says %d", listed, first.Total)
	}
	switch {
	case !snap.Found:
		log.Warn("no session document in the answer: no participant's absence counts this cycle")
	case len(skipped) > 0:
		log.Warn("participants listed without a timelog start: no participant's absence counts this cycle", "participants", skipped)
	default:
		snap.Complete = true
	}
	return snap, why, nil
}
