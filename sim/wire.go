package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"time"
)

// The JSON documents the API answers, with fields in the order of the VideoSDK docs.
// Builders run under s.mu and copy what they need, so the result can be encoded
// after the lock is released.

const timeLayout = "2006-01-02T15:04:05.000Z"

// Fixed values of fields rollcall passes along but never interprets: those of the
// documented example.
var (
	noEvents  = json.RawMessage(`{"mic":[],"webcam":[],"screenShare":[],"screenShareAudio":[]}`)
	emptyList = json.RawMessage(`[]`)
)

// stamp is a time written as the API writes it.
type stamp time.Time

func (t stamp) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format(timeLayout) + `"`), nil
}

// optStamp is nil (JSON null) for a time not yet reached, such as an open end.
func optStamp(t *time.Time) *stamp {
	if t == nil {
		return nil
	}
	return new(stamp(*t))
}

// envelope wraps paginated answers; the legacy active shape has no pageInfo.
type envelope[T any] struct {
	PageInfo *pageInfo `json:"pageInfo,omitempty"`
	Data     T         `json:"data"`
}

type pageInfo struct {
	CurrentPage int `json:"currentPage"`
	PerPage     int `json:"perPage"`
	LastPage    int `json:"lastPage"`
	Total       int `json:"total"`
}

// sessionDoc is the session document of the participants endpoints.
type sessionDoc struct {
	ID           string           `json:"_id"`
	APIKey       string           `json:"apiKey"`
	Start        stamp            `json:"start"`
	End          *stamp           `json:"end"`
	Participants []participantDoc `json:"participants"`
	Region       string           `json:"region"`
	HLSLog       json.RawMessage  `json:"hlsLog"`
	RoomID       string           `json:"roomId"`
	Status       string           `json:"status"`
	Links        docLinks         `json:"links"`
}

type docLinks struct {
	GetSession         string `json:"get_session"`
	GetAllParticipants string `json:"get_all_participants"`
}

type participantDoc struct {
	ParticipantID     string          `json:"participantId"`
	Name              string          `json:"name"`
	Events            json.RawMessage `json:"events"`
	Timelog           []timelogEntry  `json:"timelog"`
	InitTime          float64         `json:"initTime"`
	DeviceInfo        deviceInfo      `json:"deviceInfo"`
	ChangeModeHistory []modeChange    `json:"changeModeHistory"`
	Mode              string          `json:"mode"`
	ID                string          `json:"_id"`
	GeoLocation       json.RawMessage `json:"geoLocation"`
}

type timelogEntry struct {
	Start stamp  `json:"start"`
	End   *stamp `json:"end"`
}

type deviceInfo struct {
	SDKType          string          `json:"sdkType"`
	SDKVersion       string          `json:"sdkVersion"`
	Platform         string          `json:"platform"`
	BrowserUserAgent json.RawMessage `json:"browserUserAgent"`
}

type modeChange struct {
	Mode    string `json:"mode"`
	Timelog stamp  `json:"timelog"`
	ID      string `json:"_id"`
}

// sessionSummary is a session as the sessions endpoints answer it: `id`, not `_id`.
type sessionSummary struct {
	ID           string               `json:"id"`
	RoomID       string               `json:"roomId"`
	Start        stamp                `json:"start"`
	End          *stamp               `json:"end"`
	Participants []participantSummary `json:"participants"`
	Status       string               `json:"status"`
	Links        summaryLinks         `json:"links"`
}

type participantSummary struct {
	ID            string         `json:"_id"`
	ParticipantID string         `json:"participantId"`
	Name          string         `json:"name"`
	Timelog       []timelogEntry `json:"timelog"`
}

type summaryLinks struct {
	GetRoom    string `json:"get_room"`
	GetSession string `json:"get_session"`
}

// publicKeyDoc is the answer of the public key route, in the shape public code that
// verifies VideoSDK's webhooks reads; the docs do not show it.
type publicKeyDoc struct {
	PublicKey string `json:"publicKey"`
}

// webhookDoc is a webhook's body, with the fields of the docs' examples.
type webhookDoc struct {
	WebhookType string `json:"webhookType"`
	Data        any    `json:"data"`
}

type participantData struct {
	MeetingID       string `json:"meetingId"`
	SessionID       string `json:"sessionId"`
	ParticipantID   string `json:"participantId"`
	ParticipantName string `json:"participantName"`
}

type sessionStartedData struct {
	MeetingID string `json:"meetingId"`
	SessionID string `json:"sessionId"`
	Start     stamp  `json:"start"`
}

type sessionEndedData struct {
	MeetingID string `json:"meetingId"`
	SessionID string `json:"sessionId"`
	Start     stamp  `json:"start"`
	End       stamp  `json:"end"`
}

// doc renders sess with the participants pts (one page of them). base is the
// scheme and host the request was sent to. Timelog ends after shownUntil, unless it
// is zero, are shown as null: not known yet.
func (s *Server) doc(sess *session, pts []*participant, base string, shownUntil time.Time) sessionDoc {
	docs := make([]participantDoc, 0, len(pts)) // non-nil: an empty page is [], not null
	for _, pt := range pts {
		docs = append(docs, participantDoc{
			ParticipantID: pt.ID,
			Name:          pt.Name,
			Events:        noEvents,
			Timelog:       pt.timelogEntries(shownUntil),
			InitTime:      0.123,
			DeviceInfo:    deviceOf(pt.ID, pt.SDKType),
			ChangeModeHistory: []modeChange{{
				Mode:    pt.Mode,
				Timelog: stamp(pt.firstJoin),
				ID:      objectID("mode", sess.id, pt.ID),
			}},
			Mode:        pt.Mode,
			ID:          objectID("participant", sess.id, pt.ID),
			GeoLocation: placeOf(pt.ID),
		})
	}
	return sessionDoc{
		ID:           sess.id,
		APIKey:       s.apiKey,
		Start:        stamp(sess.start),
		End:          optStamp(sess.end),
		Participants: docs,
		Region:       "in002",
		HLSLog:       emptyList,
		RoomID:       sess.roomID,
		Status:       sess.status(),
		Links: docLinks{
			// Bare, as the real API sends it: clients must not follow it.
			GetSession:         base + "/v2/sessions/",
			GetAllParticipants: base + "/v2/sessions/" + url.PathEscape(sess.id) + "/participants",
		},
	}
}

// summary renders sess as the sessions endpoints do. The docs show get_session with
// the id in the list and bare in the single session; selfLink says which.
func summary(sess *session, base string, selfLink bool) sessionSummary {
	pts := make([]participantSummary, 0, len(sess.participants))
	for _, pt := range sess.participants {
		pts = append(pts, participantSummary{
			ID:            objectID("participant", sess.id, pt.ID),
			ParticipantID: pt.ID,
			Name:          pt.Name,
			Timelog:       pt.timelogEntries(time.Time{}),
		})
	}
	self := base + "/v2/sessions/"
	if selfLink {
		self += url.PathEscape(sess.id)
	}
	return sessionSummary{
		ID:           sess.id,
		RoomID:       sess.roomID,
		Start:        stamp(sess.start),
		End:          optStamp(sess.end),
		Participants: pts,
		Status:       sess.status(),
		Links: summaryLinks{
			GetRoom:    base + "/v2/rooms/" + url.PathEscape(sess.roomID),
			GetSession: self,
		},
	}
}

func (sess *session) status() string {
	if sess.end == nil {
		return "ongoing"
	}
	return "ended"
}

func (pt *participant) timelogEntries(shownUntil time.Time) []timelogEntry {
	out := make([]timelogEntry, len(pt.timelog))
	for i, sp := range pt.timelog {
		end := sp.end
		if end != nil && !shownUntil.IsZero() && end.After(shownUntil) {
			end = nil
		}
		out[i] = timelogEntry{Start: stamp(sp.start), End: optStamp(end)}
	}
	return out
}

// objectID derives a stable 24-hex-digit document ID (the length of a MongoDB
// ObjectId, as in the docs) from what the document belongs to.
func objectID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:12])
}
