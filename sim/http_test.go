package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

func TestAuth(t *testing.T) {
	s, _, ts := newTestServer(t)
	startWith(s, sessionID, "iqpq5uen")
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"valid token", validToken(t), http.StatusOK},
		{"no header", "", http.StatusUnauthorized},
		{"Bearer prefix", "Bearer " + validToken(t), http.StatusUnauthorized},
		{"wrong secret", mint(t, jwt.SigningMethodHS256, claims(nil), "other-secret"), http.StatusUnauthorized},
		{"HS512", mint(t, jwt.SigningMethodHS512, claims(nil), testSecret), http.StatusUnauthorized},
		{"expired", mint(t, jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) {
			c["exp"] = at("07:59:59").Unix()
		}), testSecret), http.StatusUnauthorized},
		{"without exp", mint(t, jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) {
			delete(c, "exp")
		}), testSecret), http.StatusUnauthorized},
		{"wrong apikey", mint(t, jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) {
			c["apikey"] = "someone-else"
		}), testSecret), http.StatusUnauthorized},
		{"missing roles", mint(t, jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) {
			delete(c, "roles")
		}), testSecret), http.StatusUnauthorized},
		{"rtc role only", mint(t, jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) {
			c["roles"] = []string{"rtc"}
		}), testSecret), http.StatusUnauthorized},
	}
	wantBody := map[string]any{"statusCode": 401.0, "error": "Unauthorized", "message": "Token is invalid or expired"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := get(t, ts, "/v2/sessions/"+sessionID+"/participants/active", tt.header)
			if status != tt.want {
				t.Fatalf("status %d, want %d (body %s)", status, tt.want, body)
			}
			if status != http.StatusUnauthorized {
				return
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(wantBody, got); d != "" {
				t.Errorf("body (-want +got):\n%s", d)
			}
		})
	}
}

// docWorld builds the world of the documented examples: the active session of the
// fetch-active-participants page, an earlier ended session of the same room, a
// session of another room, and a viewer who has left.
func docWorld(s *Server, clock *Clock) {
	step := func(t string, f func()) { clock.Set(at(t)); f() }
	step("08:00:00", func() { s.StartSession("621490331a4fb00409e38ca4", roomID) })
	step("08:00:01.465", func() { s.Join("621490331a4fb00409e38ca4", "hasm43", "test-1") })
	step("08:20:00", func() { s.EndSession("621490331a4fb00409e38ca4") })
	step("08:25:00", func() { s.StartSession("621497578bea0d0404c35c4c", "abc-xyzw-lmno") })
	step("08:28:09.215", func() { s.StartSession(sessionID, roomID) })
	step("08:28:09.650", func() { s.Join(sessionID, "iqpq5uen", "demo1") })
	step("08:28:27.185", func() { s.Join(sessionID, "mxavzgb5", "demo2") })
	step("08:28:30", func() {
		s.JoinWith(sessionID, Participant{ID: "v1ewer01", Name: "Stream viewer", Mode: "VIEWER", SDKType: "prebuilt"})
	})
	step("08:28:40", func() { s.Leave(sessionID, "v1ewer01") })
}

// TestDocuments compares whole answers with the documents in testdata, which follow
// the examples of the VideoSDK docs field for field.
func TestDocuments(t *testing.T) {
	tests := []struct {
		name, path, golden string
		legacy             bool
	}{
		{"active participants", "/v2/sessions/" + sessionID + "/participants/active", "active.json", false},
		{"active participants, legacy shape", "/v2/sessions/" + sessionID + "/participants/active", "active-legacy.json", true},
		{"all participants", "/v2/sessions/" + sessionID + "/participants", "participants.json", false},
		{"sessions of a room", "/v2/sessions/?roomId=" + roomID, "sessions.json", false},
		{"one session", "/v2/sessions/621490331a4fb00409e38ca4", "session.json", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clock, ts := newTestServer(t)
			docWorld(s, clock)
			s.SetLegacyShape(tt.legacy)
			status, header, body := get(t, ts, tt.path, validToken(t))
			if status != http.StatusOK || header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, Content-Type %q", status, header.Get("Content-Type"))
			}
			// Links point at the server asked; the documents show the real API's host.
			body = []byte(strings.ReplaceAll(string(body), ts.URL, "https://api.videosdk.live"))
			want, err := os.ReadFile(filepath.Join("testdata", tt.golden))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(decode(t, want), decode(t, body)); d != "" {
				t.Errorf("answer (-%s +got):\n%s", tt.golden, d)
			}
		})
	}
}

func decode(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%v in %s", err, data)
	}
	return v
}

func TestPagination(t *testing.T) {
	s, _, ts := newTestServer(t)
	startWith(s, sessionID, "a", "b", "gone", "c", "d", "e")
	s.Leave(sessionID, "gone")
	tests := []struct {
		query    string
		wantInfo pageInfoJSON
		wantIDs  []string
	}{
		{"?page=1&perPage=2", pageInfoJSON{1, 2, 3, 5}, []string{"a", "b"}},
		{"?page=2&perPage=2", pageInfoJSON{2, 2, 3, 5}, []string{"c", "d"}},
		{"?page=3&perPage=2", pageInfoJSON{3, 2, 3, 5}, []string{"e"}},
		{"?page=4&perPage=2", pageInfoJSON{4, 2, 3, 5}, []string{}},
		{"", pageInfoJSON{1, 20, 1, 5}, []string{"a", "b", "c", "d", "e"}},
		{"?page=&perPage=", pageInfoJSON{1, 20, 1, 5}, []string{"a", "b", "c", "d", "e"}},
		{"?perPage=5", pageInfoJSON{1, 5, 1, 5}, []string{"a", "b", "c", "d", "e"}},
		{"?page=9223372036854775807&perPage=9223372036854775807", pageInfoJSON{9223372036854775807, 9223372036854775807, 1, 5}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			info, ids := activeIDs(t, ts, sessionID, tt.query)
			if d := cmp.Diff(tt.wantInfo, info); d != "" {
				t.Errorf("pageInfo (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantIDs, ids); d != "" {
				t.Errorf("participants (-want +got):\n%s", d)
			}
		})
	}

	t.Run("nobody present", func(t *testing.T) {
		s.StartSession("empty", roomID)
		info, ids := activeIDs(t, ts, "empty", "")
		if d := cmp.Diff(pageInfoJSON{1, 20, 1, 0}, info); d != "" || len(ids) != 0 {
			t.Errorf("pageInfo (-want +got):\n%s, participants %q", d, ids)
		}
	})

	for _, query := range []string{"?page=0", "?page=-1", "?page=x", "?perPage=0", "?perPage=1.5"} {
		t.Run("bad "+query, func(t *testing.T) {
			for _, path := range []string{"/participants/active", "/participants"} {
				var got apiError
				status := getJSON(t, ts, "/v2/sessions/"+sessionID+path+query, &got)
				if status != http.StatusBadRequest || got.StatusCode != 400 || got.Error != "Bad Request" || got.Message == "" {
					t.Errorf("%s: status %d, body %+v; want a 400 error body", path, status, got)
				}
			}
		})
	}
}

func TestLegacyShapeIsNotPaginated(t *testing.T) {
	s, _, ts := newTestServer(t)
	var ids []string
	for i := range 25 {
		ids = append(ids, fmt.Sprintf("p%02d", i))
	}
	startWith(s, sessionID, ids...)
	s.Leave(sessionID, "p03")
	s.SetLegacyShape(true)

	var got struct {
		PageInfo *pageInfoJSON
		Data     sessionJSON
	}
	getJSON(t, ts, "/v2/sessions/"+sessionID+"/participants/active?page=2&perPage=5", &got)
	var gotIDs []string
	for _, p := range got.Data.Participants {
		gotIDs = append(gotIDs, p.ParticipantID)
	}
	wantIDs := append(ids[:3:3], ids[4:]...)
	if got.PageInfo != nil || got.Data.ID != sessionID || !cmp.Equal(wantIDs, gotIDs) {
		t.Errorf("got pageInfo %v, data._id %q, participants %q; want no pageInfo, %q, %q",
			got.PageInfo, got.Data.ID, gotIDs, sessionID, wantIDs)
	}

	s.SetLegacyShape(false)
	if info, _ := activeIDs(t, ts, sessionID, ""); info.Total != 24 {
		t.Errorf("after SetLegacyShape(false): total %d, want 24", info.Total)
	}
}

func TestAllParticipants(t *testing.T) {
	s, _, ts := newTestServer(t)
	startWith(s, sessionID, "a", "b", "c")
	s.Leave(sessionID, "a")
	tests := []struct {
		query    string
		wantInfo pageInfoJSON
		wantIDs  []string
	}{
		{"", pageInfoJSON{1, 20, 1, 3}, []string{"a", "b", "c"}},
		{"?page=2&perPage=2", pageInfoJSON{2, 2, 2, 3}, []string{"c"}},
		{"?page=3&perPage=2", pageInfoJSON{3, 2, 2, 3}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var got struct {
				PageInfo pageInfoJSON
				Data     sessionJSON
			}
			getJSON(t, ts, "/v2/sessions/"+sessionID+"/participants"+tt.query, &got)
			var ids []string
			for _, p := range got.Data.Participants {
				ids = append(ids, p.ParticipantID)
			}
			if d := cmp.Diff(tt.wantInfo, got.PageInfo); d != "" {
				t.Errorf("pageInfo (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantIDs, ids); d != "" {
				t.Errorf("participants (-want +got):\n%s", d)
			}
		})
	}
}

func TestSessionsList(t *testing.T) {
	s, clock, ts := newTestServer(t)
	for i, id := range []string{"s1", "s2", "s3", "s4"} {
		clock.Set(at(fmt.Sprintf("09:0%d:00", i)))
		room := roomID
		if id == "s3" {
			room = "abc-xyzw-lmno"
		}
		s.StartSession(id, room)
	}
	s.EndSession("s1")
	type summaryJSON struct{ ID, RoomID, Status string }
	tests := []struct {
		query    string
		wantInfo pageInfoJSON
		want     []summaryJSON
	}{
		{"", pageInfoJSON{1, 20, 1, 4}, []summaryJSON{
			{"s4", roomID, "ongoing"}, {"s3", "abc-xyzw-lmno", "ongoing"}, {"s2", roomID, "ongoing"}, {"s1", roomID, "ended"},
		}},
		{"?roomId=" + roomID + "&perPage=2", pageInfoJSON{1, 2, 2, 3}, []summaryJSON{
			{"s4", roomID, "ongoing"}, {"s2", roomID, "ongoing"},
		}},
		{"?roomId=" + roomID + "&page=2&perPage=2", pageInfoJSON{2, 2, 2, 3}, []summaryJSON{{"s1", roomID, "ended"}}},
		{"?roomId=nobody-here", pageInfoJSON{1, 20, 1, 0}, []summaryJSON{}},
	}
	for _, tt := range tests {
		for _, path := range []string{"/v2/sessions/", "/v2/sessions"} {
			t.Run(path+tt.query, func(t *testing.T) {
				var got struct {
					PageInfo pageInfoJSON
					Data     []summaryJSON
				}
				getJSON(t, ts, path+tt.query, &got)
				if d := cmp.Diff(tt.wantInfo, got.PageInfo); d != "" {
					t.Errorf("pageInfo (-want +got):\n%s", d)
				}
				if d := cmp.Diff(tt.want, got.Data); d != "" {
					t.Errorf("sessions (-want +got):\n%s", d)
				}
			})
		}
	}
}

func TestNotFound(t *testing.T) {
	s, _, ts := newTestServer(t)
	startWith(s, sessionID, "a")
	sessionGone := apiError{StatusCode: 404, Error: "Not Found", Message: "Session not found"}
	tests := []struct {
		path string
		want apiError
	}{
		{"/v2/sessions/nope/participants/active", sessionGone},
		{"/v2/sessions/nope/participants", sessionGone},
		{"/v2/sessions/nope", sessionGone},
		{"/v2/rooms", apiError{StatusCode: 404, Error: "Not Found", Message: "Cannot GET /v2/rooms"}},
		{"/v2/sessions/" + sessionID + "/participants/active/x", apiError{
			StatusCode: 404, Error: "Not Found", Message: "Cannot GET /v2/sessions/" + sessionID + "/participants/active/x",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			var got apiError
			if status := getJSON(t, ts, tt.path, &got); status != http.StatusNotFound {
				t.Errorf("status %d, want 404", status)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("body (-want +got):\n%s", d)
			}
		})
	}
}
