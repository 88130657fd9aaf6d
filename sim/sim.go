// Package sim simulates the VideoSDK REST API over real HTTP, for tests, for the
// `rollcall demo` and `rollcall sim` commands, and for benchmarks.
//
// A Server is an http.Handler holding a world of sessions. Tests drive the world
// through StartSession, Join, Leave and EndSession, read back the ground truth with
// Stints and Active, and compare it with what a client saw over HTTP. Churn drives
// the same world with seeded random arrivals and departures for demos. InjectFault
// makes the next matching requests fail, stall or change the world mid-scan.
// SendWebhooks posts VideoSDK's signed webhooks for the world's changes, late, lost or
// twice as asked, never holding up the change. All methods are safe for concurrent
// use.
//
// Simulated: token auth (HS256, apikey, role "crawler", expiry), the active
// participants endpoint in its current and pre-mid-2023 shapes, the all-participants
// endpoint, the sessions list and the single session, with the documented pagination
// and participant timelogs (join, leave, rejoin with the same participantId, and a
// second connection kicking the first); the public key that verifies webhook
// signatures (Sign makes them).
//
// Where the VideoSDK docs are silent, the simulator assumes:
//   - every error body has the {statusCode, error, message} form of the documented 401,
//     including 400 for a bad page or perPage and 404 for an unknown session or path;
//   - for an ended session the active endpoint answers 200 with status "ended", end
//     set and no participants;
//   - participants stay in first-join order, so a participant leaving mid-scan shifts
//     the later pages; a page past lastPage is empty, not an error;
//   - an empty page or perPage parameter means the default;
//   - faults act before authentication, as a gateway in front of the API would;
//   - the public key route answers {"publicKey": "<PEM>"}, as public code reads it;
//   - webhooks go to one URL for every room (VideoSDK's are registered per room, when
//     it is created), with no retries; a session's end sends a participant-left for
//     each participant still present, then the session-ended, and a second connection
//     a participant-left then a participant-joined;
//   - links point at the host the request was sent to;
//   - a rejoin keeps the name, mode and device of the participant's first join;
//   - fields rollcall does not interpret (events, initTime) carry the values of the
//     documented example; deviceInfo and geoLocation are in its shape, one of a few
//     dozen devices and thirty places per participant (see devices.go).
package sim

import (
	"cmp"
	"crypto/rsa"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config configures a Server.
type Config struct {
	APIKey string           // tokens must carry this apikey claim
	Secret string           // HS256 secret
	Now    func() time.Time // clock for timelog entries and token expiry; nil = time.Now

	// Key signs the webhooks. nil: a 2048-bit key generated on first use and shared
	// by every Server of the process that has none.
	Key *rsa.PrivateKey
	// PublicKeyPKCS1 serves the public key as PKCS#1 "RSA PUBLIC KEY" PEM rather than
	// PKIX "PUBLIC KEY" PEM, and PublicKeyBare serves the PEM alone as the body rather
	// than in {"publicKey": "<PEM>"}: VideoSDK's docs show several shapes, and a
	// receiver's tests try each.
	PublicKeyPKCS1, PublicKeyBare bool
}

// Server is a simulated VideoSDK REST API. Create it with New.
type Server struct {
	apiKey string
	secret []byte
	now    func() time.Time
	mux    *http.ServeMux

	privateKey        *rsa.PrivateKey // nil: defaultKey
	keyPKCS1, keyBare bool

	mu       sync.Mutex
	sessions map[string]*session
	order    []*session // creation order
	legacy   bool
	listLag  time.Duration // how long an end takes to show in the list of all participants
	faults   []*queuedFault
	requests int
	senders  []*WebhookSender
	pending  []Webhook // the changes' webhooks, sent by unlock
}

// Participant describes who joins. Mode is e.g. "CONFERENCE" or "VIEWER"; SDKType
// e.g. "prebuilt" or "recorder".
type Participant struct {
	ID, Name, Mode, SDKType string
}

// Stint is one timelog entry: one continuous presence of a participant. End is nil
// while the participant is present.
type Stint struct {
	SessionID, ParticipantID string
	Start                    time.Time
	End                      *time.Time
}

type session struct {
	id, roomID   string
	start        time.Time
	end          *time.Time     // nil while ongoing
	participants []*participant // first-join order; never reordered
	byID         map[string]*participant
}

type participant struct {
	Participant
	firstJoin time.Time
	timelog   []span
}

type span struct {
	start time.Time
	end   *time.Time // nil while present
}

// New returns a Server with an empty world.
func New(cfg Config) *Server {
	s := &Server{
		apiKey:     cfg.APIKey,
		secret:     []byte(cfg.Secret),
		now:        cfg.Now,
		privateKey: cfg.Key,
		keyPKCS1:   cfg.PublicKeyPKCS1,
		keyBare:    cfg.PublicKeyBare,
		sessions:   make(map[string]*session),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.mux = s.routes()
	return s
}

// clock returns the current time as the API reports it: UTC, millisecond precision.
func (s *Server) clock() time.Time {
	return s.now().UTC().Truncate(time.Millisecond)
}

// StartSession creates an ongoing session of a room, starting now. Starting a
// session that already exists does nothing.
func (s *Server) StartSession(sessionID, roomID string) {
	s.mu.Lock()
	defer s.unlock()
	s.startSession(sessionID, roomID)
}

func (s *Server) startSession(sessionID, roomID string) *session {
	if sess, ok := s.sessions[sessionID]; ok {
		return sess
	}
	sess := &session{id: sessionID, roomID: roomID, start: s.clock(), byID: make(map[string]*participant)}
	s.sessions[sessionID] = sess
	s.order = append(s.order, sess)
	s.changed(Webhook{Type: SessionStarted, RoomID: roomID, SessionID: sessionID, Start: sess.start, At: sess.start})
	return sess
}

// Join is JoinWith for a participant in mode "CONFERENCE" using the prebuilt SDK.
func (s *Server) Join(sessionID, participantID, name string) {
	s.JoinWith(sessionID, Participant{ID: participantID, Name: name})
}

// JoinWith makes p join an ongoing session now; an empty Mode or SDKType defaults to
// "CONFERENCE" or "prebuilt". A first join appends p to the session's participants
// with one open timelog entry; a rejoin appends an open entry; a join while already
// present is a second connection, which kicks the first: its entry closes now and a
// new one opens. Joining an unknown or ended session does nothing (VideoSDK would
// start a new session; call StartSession for that).
func (s *Server) JoinWith(sessionID string, p Participant) {
	p.Mode = cmp.Or(p.Mode, "CONFERENCE")
	p.SDKType = cmp.Or(p.SDKType, "prebuilt")
	s.mu.Lock()
	defer s.unlock()
	if sess := s.sessions[sessionID]; sess != nil && sess.end == nil {
		s.join(sess, p)
	}
}

func (s *Server) join(sess *session, p Participant) {
	now := s.clock()
	pt := sess.byID[p.ID]
	switch {
	case pt == nil:
		pt = &participant{Participant: p, firstJoin: now}
		sess.byID[p.ID] = pt
		sess.participants = append(sess.participants, pt)
	case pt.present():
		s.leave(sess, pt, now)
	}
	pt.timelog = append(pt.timelog, span{start: now})
	s.changed(Webhook{Type: ParticipantJoined, RoomID: sess.roomID, SessionID: sess.id, ParticipantID: pt.ID, ParticipantName: pt.Name, At: now})
}

// leave closes pt's open timelog entry at now; the caller checks that there is one.
func (s *Server) leave(sess *session, pt *participant, now time.Time) {
	pt.timelog[len(pt.timelog)-1].end = new(now)
	s.changed(Webhook{Type: ParticipantLeft, RoomID: sess.roomID, SessionID: sess.id, ParticipantID: pt.ID, ParticipantName: pt.Name, At: now})
}

// ChangeMode switches a participant's mode now, as VideoSDK's changeMode does (a
// viewer promoted to the conference, say), without ending its stint.
func (s *Server) ChangeMode(sessionID, participantID, mode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess := s.sessions[sessionID]; sess != nil {
		if pt := sess.byID[participantID]; pt != nil {
			pt.Mode = mode
		}
	}
}

// Leave closes the participant's open timelog entry now. It does nothing if the
// participant is not present.
func (s *Server) Leave(sessionID, participantID string) {
	s.mu.Lock()
	defer s.unlock()
	if sess := s.sessions[sessionID]; sess != nil {
		if pt := sess.byID[participantID]; pt != nil && pt.present() {
			s.leave(sess, pt, s.clock())
		}
	}
}

// EndSession closes every open timelog entry and ends the session now.
func (s *Server) EndSession(sessionID string) {
	s.mu.Lock()
	defer s.unlock()
	if sess := s.sessions[sessionID]; sess != nil {
		s.endSession(sess)
	}
}

func (s *Server) endSession(sess *session) {
	if sess.end != nil {
		return
	}
	now := s.clock()
	for _, pt := range sess.present() {
		s.leave(sess, pt, now)
	}
	sess.end = new(now)
	s.changed(Webhook{Type: SessionEnded, RoomID: sess.roomID, SessionID: sess.id, Start: sess.start, At: now})
}

// NextSession ends the room's ongoing session, if any, and starts the room's next one
// now, as VideoSDK does when people meet in a room again. It returns the new
// session's ID: 24 hex digits, derived from the room and the number of sessions in
// the world, so the same steps give the same IDs.
func (s *Server) NextSession(roomID string) string {
	s.mu.Lock()
	defer s.unlock()
	return s.nextSession(roomID).id
}

func (s *Server) nextSession(roomID string) *session {
	for _, sess := range s.order {
		if sess.roomID == roomID {
			s.endSession(sess)
		}
	}
	return s.startSession(objectID("session", roomID, strconv.Itoa(len(s.order))), roomID)
}

// Sessions returns the IDs of a room's sessions, oldest first.
func (s *Server) Sessions(roomID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, sess := range s.order {
		if sess.roomID == roomID {
			ids = append(ids, sess.id)
		}
	}
	return ids
}

// RoomOf returns the room of a session; "" for an unknown session.
func (s *Server) RoomOf(sessionID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess := s.sessions[sessionID]; sess != nil {
		return sess.roomID
	}
	return ""
}

// SetLegacyShape makes the active endpoint answer as before mid-2023: `data` is the
// session object, with every present participant and no pageInfo.
func (s *Server) SetLegacyShape(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.legacy = on
}

// SetListLag makes the list of all participants show a stint's end only lag after
// it: until then, the stint shows as open there, though the active list no longer
// lists it. The API's docs do not say how soon it shows; clients must cope with a lag.
func (s *Server) SetListLag(lag time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listLag = lag
}

// Stints returns every timelog entry of the session, ordered by start, then by
// participantID. It is nil for an unknown session.
func (s *Server) Stints(sessionID string) []Stint {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[sessionID]
	if sess == nil {
		return nil
	}
	var out []Stint
	for _, pt := range sess.participants {
		for _, sp := range pt.timelog {
			st := Stint{SessionID: sess.id, ParticipantID: pt.ID, Start: sp.start}
			if sp.end != nil {
				st.End = new(*sp.end)
			}
			out = append(out, st)
		}
	}
	// Stable, so one participant's entries with the same start keep their order.
	slices.SortStableFunc(out, func(a, b Stint) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.ParticipantID, b.ParticipantID))
	})
	return out
}

// Active returns the IDs of the participants present now, in first-join order.
func (s *Server) Active(sessionID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	if sess := s.sessions[sessionID]; sess != nil {
		for _, pt := range sess.present() {
			ids = append(ids, pt.ID)
		}
	}
	return ids
}

// Requests returns the number of HTTP requests received so far, failed ones included.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// present returns the participants whose last timelog entry is open, in list order.
func (sess *session) present() []*participant {
	var out []*participant
	for _, pt := range sess.participants {
		if pt.present() {
			out = append(out, pt)
		}
	}
	return out
}

func (pt *participant) present() bool {
	return len(pt.timelog) > 0 && pt.timelog[len(pt.timelog)-1].end == nil
}
