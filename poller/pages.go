package poller

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/url"
	"slices"
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
	// SetAside are the participants (and session times) that could not be used,
	// over every session document; each document's own are in its Snapshot too.
	SetAside []diff.SetAside
	// Listed counts the participants listed, set aside or not, as total does.
	Listed int
	// Nameless counts participants listed without a participantId: they could be
	// anyone, so no one's absence from the snapshot that holds them counts.
	Nameless int
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
	Start        wireTime         `json:"start"`
	End          wireTime         `json:"end"`
	Status       string           `json:"status"`
	Participants []participantDoc `json:"participants"`
}

type participantDoc struct {
	ParticipantID string          `json:"participantId"`
	Name          string          `json:"name"`
	Timelog       []wireEntry     `json:"timelog"`
	Mode          string          `json:"mode"`
	DeviceInfo    json.RawMessage `json:"deviceInfo"`
	GeoLocation   json.RawMessage `json:"geoLocation"`
	SDKType       string          `json:"-"` // deviceInfo.sdkType
}

// wireTime is a time as the API writes it: an RFC 3339 string, or null. One that
// does not parse is kept as written, in Bad, so that the record holding it is set
// aside alone, not the whole page.
type wireTime struct {
	T   time.Time
	Set bool   // T was given
	Bad string // the value, when it is not a time
}

// UnmarshalJSON reads any JSON value: only a syntax error fails it.
func (w *wireTime) UnmarshalJSON(b []byte) error {
	*w = wireTime{}
	if string(b) == "null" {
		return nil
	}
	if err := w.T.UnmarshalJSON(b); err != nil {
		*w = wireTime{Bad: string(b)}
		return nil
	}
	w.Set = true
	return nil
}

// wireEntry is a timelog entry as the API writes it.
type wireEntry struct {
	Start wireTime `json:"start"`
	End   wireTime `json:"end"`
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

// newPage checks the decoded documents and makes a Page of them. Every value is
// checked here, once, by the rules of package diff: a participant that breaks one
// is set aside alone, and so is a session's time; an ID that cannot name the
// session or its room makes the page unusable.
func newPage(pi *pageInfo, docs []sessionDoc) (Page, error) {
	p := Page{Sessions: make([]diff.Snapshot, 0, len(docs))}
	if pi != nil {
		p.Paged, p.CurrentPage, p.PerPage, p.LastPage, p.Total = true, pi.CurrentPage, pi.PerPage, pi.LastPage, pi.Total
		if pi.LastPage < 0 || pi.Total < 0 || pi.LastPage > maxPages {
			return Page{}, fmt.Errorf("%w: pageInfo lastPage %d, total %d", ErrMalformed, pi.LastPage, pi.Total)
		}
	}
	for _, doc := range docs {
		s := diff.Snapshot{SessionID: cmp.Or(doc.ID, doc.AltID), RoomID: doc.RoomID, Status: doc.Status}
		if err := diff.CheckID(s.SessionID); err != nil {
			return Page{}, fmt.Errorf("%w: session document _id: %w", ErrMalformed, err)
		}
		if err := diff.CheckID(s.RoomID); s.RoomID != "" && err != nil {
			return Page{}, fmt.Errorf("%w: session document roomId: %w", ErrMalformed, err)
		}
		if start := sessionTime(&s, "start", doc.Start); start != nil {
			s.Start = *start
		}
		s.End = sessionTime(&s, "end", doc.End)
		if s.End != nil && s.End.Before(s.Start) {
			s.SetAside = append(s.SetAside, diff.SetAside{Reason: diff.ReasonOrder, Detail: "the session ends before it starts: its end is taken as unknown"})
			s.End = nil
		}
		if n := len(doc.Participants); n > 0 {
			s.Participants = make([]diff.Participant, 0, n)
		}
		p.Listed += len(doc.Participants)
		for i, pd := range doc.Participants {
			if pd.ParticipantID == "" {
				p.Nameless++
				s.SetAside = append(s.SetAside, diff.SetAside{Reason: diff.ReasonID, Detail: fmt.Sprintf("participant %d has no participantId", i)})
				continue
			}
			if part, bad := participant(pd); bad != nil {
				s.SetAside = append(s.SetAside, *bad)
			} else {
				s.Participants = append(s.Participants, part)
			}
		}
		if len(s.Participants) == 0 {
			s.Participants = nil // as when none was listed
		}
		p.SetAside = append(p.SetAside, s.SetAside...)
		p.Sessions = append(p.Sessions, s)
	}
	return p, nil
}

// sessionTime is a session document's start or end, to the millisecond; one that
// is not a time in range is set aside in s and taken as unknown.
func sessionTime(s *diff.Snapshot, field string, t wireTime) *time.Time {
	m, err := apiTime(t)
	if err != nil {
		s.SetAside = append(s.SetAside, diff.SetAside{Reason: diff.ReasonTime, Detail: "session " + field + ": " + err.Error()})
	}
	return m
}

// apiTime is a time from the API to the millisecond, nil if there is none; one that
// is not a time, or is out of range, is an error, and nil.
func apiTime(t wireTime) (*time.Time, error) {
	switch {
	case t.Bad != "":
		return nil, fmt.Errorf("%.40s is not an RFC 3339 time", t.Bad)
	case !t.Set:
		return nil, nil
	}
	m := ms(t.T)
	if err := diff.CheckTime(m); err != nil {
		return nil, err
	}
	return &m, nil
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

// participant reads a participant in its current stint, or says why it is set
// aside: an ID, a time or a text that breaks the rules of package diff, or no
// timelog entry to take as its stint.
func participant(pd participantDoc) (diff.Participant, *diff.SetAside) {
	aside := func(id, reason string, err error) (diff.Participant, *diff.SetAside) {
		return diff.Participant{}, &diff.SetAside{ID: id, Reason: reason, Detail: err.Error()}
	}
	if err := diff.CheckID(pd.ParticipantID); err != nil {
		return aside("", diff.ReasonID, fmt.Errorf("participantId %.32q…: %w", pd.ParticipantID, err))
	}
	id := pd.ParticipantID
	for _, f := range []struct {
		name string
		n    int
	}{{"name", len(pd.Name)}, {"mode", len(pd.Mode)}, {"sdkType", len(pd.SDKType)}, {"deviceInfo", len(pd.DeviceInfo)}, {"geoLocation", len(pd.GeoLocation)}} {
		if f.n > diff.MaxTextLen {
			return aside(id, diff.ReasonSize, fmt.Errorf("%s is %d bytes, more than %d", f.name, f.n, diff.MaxTextLen))
		}
	}
	p := diff.Participant{
		ID: id, Name: pd.Name, Mode: pd.Mode, SDKType: pd.SDKType,
		DeviceInfo: object(pd.DeviceInfo), GeoLocation: object(pd.GeoLocation), Timelog: make([]diff.Entry, len(pd.Timelog)),
	}
	for i, e := range pd.Timelog {
		for _, t := range []struct {
			field string
			w     wireTime
		}{{"start", e.Start}, {"end", e.End}} {
			if t.w.Bad != "" {
				return aside(id, diff.ReasonTime, fmt.Errorf("timelog[%d].%s: %.40s is not an RFC 3339 time", i, t.field, t.w.Bad))
			}
		}
		p.Timelog[i].Start = ms(e.Start.T)
		if e.End.Set {
			end := ms(e.End.T)
			p.Timelog[i].End = &end
		}
	}
	if reason, err := diff.CheckTimelog(p.Timelog); err != nil {
		return aside(id, reason, err)
	}
	// In order of start, whatever order the API lists them in: the stint is the
	// latest open entry.
	slices.SortStableFunc(p.Timelog, func(a, b diff.Entry) int { return a.Start.Compare(b.Start) })
	// The API lists only present participants, so when none is open (a late
	// write), the last entry stands for it.
	if n := len(p.Timelog); n > 0 {
		p.JoinedAt = p.Timelog[n-1].Start
	}
	for _, e := range slices.Backward(p.Timelog) {
		if e.End == nil {
			p.JoinedAt = e.Start
			break
		}
	}
	if p.JoinedAt.IsZero() {
		return aside(id, diff.ReasonTimelog, errors.New("no timelog entry"))
	}
	return p, nil
}

// Snapshot scans every page of a session's active participants, from the first. A
// page that fails fails the scan: nothing is returned from it. When the pages disagree
// with each other (total or lastPage changed, a participant listed twice, fewer or
// more listed than total), the session is scanned again, up to maxScans times; the
// last scan is then returned with Complete false, so that no one's absence from it
// counts. A scan that found no session document, or a participant without a usable
// stint, is incomplete too.
func (c *Client) Snapshot(ctx context.Context, log *slog.Logger, sessionID string) (diff.Snapshot, error) {
	snap, _, err := c.snapshot(ctx, log, sessionID, 0, 0)
	return snap, err
}

// SnapshotSince is Snapshot, with sum, a hash of the active list when it is one page
// that agrees with itself (0 otherwise). When sum is since (not 0), the list is byte
// for byte the one since was taken from, and snap is empty: nothing is decoded.
func (c *Client) SnapshotSince(ctx context.Context, log *slog.Logger, sessionID string, since uint64) (snap diff.Snapshot, sum uint64, err error) {
	return c.snapshot(ctx, log, sessionID, 0, since)
}

// Recheck scans a session of pages pages as Snapshot does, but from the last page to
// the first. The list is in order of arrival: a leave moves everyone after it one place
// toward page 1, and a newcomer is added at the end. A forward scan misses whoever a
// leave moves onto a page already read, even when a join keeps total unchanged; a
// backward scan reads pages in the direction of the move, so whoever moves is seen
// twice (and the scan disagrees) instead, and a newcomer it misses is no false left.
func (c *Client) Recheck(ctx context.Context, log *slog.Logger, sessionID string, pages int) (diff.Snapshot, error) {
	snap, _, err := c.snapshot(ctx, log, sessionID, max(pages, 1), 0)
	return snap, err
}

// snapshot scans forward if last is 0, else backward from page last; forward, it
// stops at a one-page list whose sum is since (see SnapshotSince). A nil log is the
// client's own, with the session's ID.
func (c *Client) snapshot(ctx context.Context, log *slog.Logger, sessionID string, last int, since uint64) (diff.Snapshot, uint64, error) {
	if log == nil {
		log = c.cfg.Log.With("session_id", sessionID)
	}
	var snap diff.Snapshot
	var why string
	for scan := 1; scan <= maxScans; scan++ {
		var sum uint64
		var err error
		snap, why, sum, err = c.scan(ctx, log, sessionID, last, since)
		if errors.Is(err, errSame) {
			c.cfg.Metrics.ScanPages.Observe(1)
			return diff.Snapshot{SessionID: sessionID}, since, nil
		}
		if err != nil {
			return diff.Snapshot{}, 0, err
		}
		c.cfg.Metrics.ScanPages.Observe(float64(snap.Pages))
		if why == "" {
			return snap, sum, nil
		}
		c.cfg.Metrics.ScansDiscarded.Inc()
		log.Info("pages disagreed, scanning again", "scan", scan, "why", why)
		if last > 0 {
			last = snap.Pages // the list has grown or shrunk
		}
	}
	log.Warn("pages kept disagreeing: no participant's absence counts this cycle", "why", why)
	snap.Complete = false
	return snap, 0, nil
}

// errSame ends a scan at a first page that is the one the caller already has.
var errSame = errors.New("the same page as before")

// pageSeed seeds the sums of pages: a sum says whether two pages are the same in this
// process, nothing more, and an API that sent pages made to collide could not know it.
var pageSeed = maphash.MakeSeed()

// scan fetches every page, forward from page 1 to its lastPage if last is 0, else
// backward from page last to 1; forward, it returns errSame at a first page whose
// sum is since. why says how the pages disagreed, if they did; sum is the first
// page's if it was the only one and they agreed.
func (c *Client) scan(ctx context.Context, log *slog.Logger, sessionID string, last int, since uint64) (diff.Snapshot, string, uint64, error) {
	sc := scanning{last: last, snap: diff.Snapshot{SessionID: sessionID}, seen: make(map[string]bool)}
	path := "/v2/sessions/" + url.PathEscape(sessionID) + "/participants/active"
	var sum uint64
	decode := func(body []byte) (Page, error) {
		if sc.pages == 0 && last == 0 {
			if sum = maphash.Bytes(pageSeed, body); sum == since && since != 0 {
				return Page{}, errSame
			}
		}
		return DecodePage(body)
	}
	if err := walk(ctx, c, log, metrics.EndpointActive, path, nil, foreground, "", max(last, 1), decode, sc.add); err != nil {
		return sc.snap, "", 0, err
	}
	snap := sc.snap
	snap.Pages = max(sc.first.LastPage, 1)
	if sc.why == "" && sc.first.Paged && sc.listed != sc.first.Total {
		sc.why = fmt.Sprintf("%d participants listed, total says %d", sc.listed, sc.first.Total)
	}
	switch {
	case !snap.Found:
		log.Warn("no session document in the answer: no participant's absence counts this cycle")
	case sc.nameless > 0:
		// They are in SetAside, for the loop to say.
	default:
		snap.Complete = true
	}
	if snap.Pages != 1 || !snap.Complete || sc.why != "" {
		sum = 0
	}
	return snap, sc.why, sum, nil
}

// scanning is one scan under way.
type scanning struct {
	last     int // the page it started from, going backward; 0 going forward
	first    Page
	pages    int // read so far
	snap     diff.Snapshot
	seen     map[string]bool // participantIds listed
	listed   int             // participants listed, as total counts them
	nameless int             // participants listed without a participantId
	why      string          // how the pages disagreed, if they did
}

// add takes in page n, and returns the next page to read, or 0 when the scan is
// over: every page read, or the pages disagree, so that a list that changed, or
// whose lastPage is wrong, is read no further (up to maxPages of it).
func (sc *scanning) add(n int, page Page) (int, error) {
	switch sc.pages++; {
	case sc.pages == 1:
		sc.first = page
		if !page.Paged {
			sc.first.LastPage = 1 // the older shape holds everyone at once
		}
		if sc.last > 0 && sc.first.LastPage != sc.last {
			sc.why = fmt.Sprintf("lastPage %d, not %d", sc.first.LastPage, sc.last)
		}
	case page.Total != sc.first.Total || page.LastPage != sc.first.LastPage:
		sc.why = fmt.Sprintf("page %d: total %d, lastPage %d; page %d: total %d, lastPage %d", n, page.Total, page.LastPage, max(sc.last, 1), sc.first.Total, sc.first.LastPage)
	}
	sc.listed += page.Listed
	sc.nameless += page.Nameless
	for _, s := range page.Sessions {
		if err := sc.merge(s); err != nil {
			return n, err
		}
	}
	switch {
	case sc.why == "" && page.Listed == 0 && n < sc.first.LastPage:
		sc.why = fmt.Sprintf("page %d empty, lastPage %d", n, sc.first.LastPage)
		return 0, nil
	case sc.why != "":
		return 0, nil
	case sc.last > 0:
		return n - 1, nil
	case n < sc.first.LastPage:
		return n + 1, nil
	}
	return 0, nil
}

// merge adds a session document of a page to the snapshot.
func (sc *scanning) merge(s diff.Snapshot) error {
	snap := &sc.snap
	if s.SessionID != snap.SessionID {
		return fmt.Errorf("%w: it is for session %q", ErrMalformed, s.SessionID)
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
	snap.SetAside = append(snap.SetAside, s.SetAside...)
	if snap.Participants == nil {
		// The first page's participants, kept where they are: a session of one page
		// is not copied.
		snap.Participants = s.Participants[:0]
	}
	for _, p := range s.Participants {
		if sc.seen[p.ID] {
			sc.why = fmt.Sprintf("participant %s listed twice", p.ID)
			continue
		}
		sc.seen[p.ID] = true
		snap.Participants = append(snap.Participants, p)
	}
	return nil
}
