package presence

import (
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/publisher"
)

//go:embed assets
var assets embed.FS

// The page is one document: its script and style are inlined from assets/, so it
// needs no other request than the feed's, and the policy allows them by their hash.
var (
	pageTemplate = template.Must(template.ParseFS(assets, "assets/index.html"))
	pageScript   = mustRead("assets/page.js")
	pageStyle    = mustRead("assets/page.css")
	pagePolicy   = "default-src 'none'; script-src " + sha256Source(pageScript) + "; style-src " + sha256Source(pageStyle) +
		"; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

func mustRead(name string) string {
	b, err := assets.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time: missing only if the build is broken
	}
	return string(b)
}

func sha256Source(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// pageTimeout bounds the reads of one page: the stream's info, the tracking bucket
// and every live session's state.
const pageTimeout = 10 * time.Second

// PageConfig is what the page reads.
type PageConfig struct {
	JetStream jetstream.JetStream
	Stream    string
	// States is the state bucket, opened for reading (publisher.ReadStore): a page
	// view must not rebuild a state.
	States *publisher.Store
	// Followed returns the rooms and sessions followed: the config file's and the
	// tracking bucket's. Each room is shown, with no live session if it has none.
	Followed func(ctx context.Context) (rooms, sessions []string, err error)
	Log      *slog.Logger
}

// Page serves the presence page: each followed room, its live sessions and who is
// present in each.
//
// The server renders who is present from the state bucket, so the page works
// without JavaScript, and its markup is a contract (spec.md): each live session is an
// element with data-session-id and data-room-id, holding one element per present
// participant with data-participant-id. Names are text, never markup: html/template
// here, textContent in the script, and a Content-Security-Policy that allows the
// page's own script and style alone.
//
// Before it reads the states, the page reads the stream's last sequence, and embeds
// it: the poller saves a session's state, with its events in an outbox, before it
// publishes them, so every event up to that sequence is in the states read after it.
// The script follows the feed from there; the events after it that the states show
// already come again, and are harmless: the script applies events idempotently, a
// stint being a participantId and its joinedAt.
type Page struct{ cfg PageConfig }

// NewPage returns the page of cfg.
func NewPage(cfg PageConfig) *Page { return &Page{cfg: cfg} }

// ServeHTTP renders the page as of now; 503 if the stream or the buckets cannot be
// read.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	view, err := p.read(ctx)
	if err != nil {
		if r.Context().Err() == nil {
			p.cfg.Log.Warn("cannot show the presence page", "err", err)
		}
		http.Error(w, "cannot read who is present: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pagePolicy)
	h.Set("Cache-Control", "no-store") // it embeds the stream's sequence as of now
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// The view's types are the template's own: it fails only on writing to a client
	// that has gone, whom nothing is left to tell.
	_ = pageTemplate.Execute(w, view)
}

// pageView is what index.html renders.
type pageView struct {
	LastEventID uint64 // the stream's last sequence before the states were read
	At          string // when, in UTC, for the page without JavaScript
	Rooms       []roomView
	Marks       string // markRules as JSON, for the script
	Blank       struct {
		Room        roomView
		Session     sessionView
		Participant participantView
	} // what the script clones for what it adds
	Script template.JS
	Style  template.CSS
}

type roomView struct {
	ID       string
	Sessions []sessionView
	Present  int
}

type sessionView struct {
	ID, RoomID string
	Present    []participantView
}

type participantView struct {
	ID, Name, Mode, SDKType, Mark string
	JoinedAt                      string // as events write it, for the script to compare stints
	Since                         string // for people, in UTC; the script writes local time
}

// read reads the stream's last sequence, then who is present in the followed rooms
// and sessions.
func (p *Page) read(ctx context.Context) (*pageView, error) {
	// Stream asks the server for the stream's info: its cached info is as of now.
	s, err := p.cfg.JetStream.Stream(ctx, p.cfg.Stream)
	if err != nil {
		return nil, err
	}
	last := s.CachedInfo().State.LastSeq
	rooms, sessions, err := p.cfg.Followed(ctx)
	if err != nil {
		return nil, err
	}
	live, err := p.cfg.States.Live(ctx)
	if err != nil {
		return nil, err
	}
	view := &pageView{LastEventID: last, At: time.Now().UTC().Format("15:04:05"),
		Marks: marksJSON, Script: template.JS(pageScript), Style: template.CSS(pageStyle)}
	view.Rooms = layout(rooms, sessions, live)
	return view, nil
}

// layout puts each live session of a followed room, or followed itself, under its
// room, and each followed room even with no live session, sorted by ID; participants
// by when they joined.
func layout(rooms, sessions []string, live []publisher.Live) []roomView {
	byID := make(map[string]*roomView)
	room := func(id string) *roomView {
		if byID[id] == nil {
			byID[id] = &roomView{ID: id}
		}
		return byID[id]
	}
	for _, id := range rooms {
		room(id)
	}
	for _, l := range live {
		if byID[l.State.RoomID] == nil && !slices.Contains(sessions, l.SessionID) {
			continue // neither followed nor in a followed room: its state is kept, not watched
		}
		r := room(l.State.RoomID)
		s := sessionView{ID: l.SessionID, RoomID: l.State.RoomID, Present: []participantView{}}
		for _, pt := range l.State.Present {
			s.Present = append(s.Present, participant(pt))
		}
		slices.SortFunc(s.Present, func(a, b participantView) int {
			return cmp.Or(strings.Compare(a.JoinedAt, b.JoinedAt), strings.Compare(a.ID, b.ID))
		})
		r.Sessions = append(r.Sessions, s)
		r.Present += len(s.Present)
	}
	var out []roomView
	for _, r := range byID {
		slices.SortFunc(r.Sessions, func(a, b sessionView) int { return strings.Compare(a.ID, b.ID) })
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b roomView) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func participant(p diff.Participant) participantView {
	v := participantView{ID: p.ID, Name: p.Name, Mode: p.Mode, SDKType: p.SDKType, Mark: mark(p.Mode, p.SDKType)}
	if !p.JoinedAt.IsZero() { // the API gave no timelog: events say null
		v.JoinedAt = p.JoinedAt.UTC().Format(events.TimeLayout)
		v.Since = p.JoinedAt.UTC().Format("15:04:05") + " UTC"
	}
	return v
}

// markRule marks the participants who are not people, which VideoSDK lists as
// participants too (its API notes: recorders, livestream bots, SIP callers, AI
// agents), by their mode or sdkType, compared without case. Only "recorder" and
// "VIEWER" are in the API's examples; the other values are the names VideoSDK's docs
// give those participants. The page shows mode and sdkType as they come either way.
type markRule struct {
	Mark     string   `json:"mark"`
	Modes    []string `json:"modes,omitempty"`
	SDKTypes []string `json:"sdkTypes,omitempty"`
}

// markRules are tried in order: the first that matches names the mark. The server
// applies them to who is present, and the script, given them as JSON, to who joins.
var markRules = []markRule{
	{Mark: "recorder", SDKTypes: []string{"recorder", "recording"}},
	{Mark: "bot", SDKTypes: []string{"bot", "agent", "hls", "livestream", "rtmp", "sip"}},
	{Mark: "viewer", Modes: []string{"viewer", "recv_only"}},
}

var marksJSON = func() string {
	b, err := json.Marshal(markRules)
	if err != nil {
		panic(err) // strings only: it cannot fail
	}
	return string(b)
}()

// mark is the mark of a participant in this mode, of this sdkType: "recorder",
// "bot", "viewer", or "" for anyone else.
func mark(mode, sdkType string) string {
	for _, r := range markRules {
		if slices.Contains(r.Modes, strings.ToLower(mode)) || slices.Contains(r.SDKTypes, strings.ToLower(sdkType)) {
			return r.Mark
		}
	}
	return ""
}
