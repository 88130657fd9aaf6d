package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const (
	testKey    = "02jd88ag-f229-4c73-4be4-c35c2rf5f220"
	testSecret = "test-secret"
	sessionID  = "64bb3619669942e088479mm0"
	roomID     = "r10p-2qz8-si67"
)

// t0 is the day of the documented example; test tokens are valid all that day.
var t0 = time.Date(2023, 7, 24, 0, 0, 0, 0, time.UTC)

// at is a time of the test day, e.g. at("08:28:09.650").
func at(clock string) time.Time {
	t, err := time.Parse(time.TimeOnly, clock)
	if err != nil {
		panic(err)
	}
	return t0.Add(t.Sub(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)))
}

func newTestServer(t *testing.T) (*Server, *Clock, *httptest.Server) {
	t.Helper()
	clock := NewClock(at("08:00:00"))
	s := New(Config{APIKey: testKey, Secret: testSecret, Now: clock.Now})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, clock, ts
}

// claims returns the documented token payload, valid all of the test day, as
// changed by edit.
func claims(edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"apikey":      testKey,
		"permissions": []string{"allow_join"},
		"version":     2,
		"roles":       []string{"crawler"},
		"iat":         t0.Unix(),
		"exp":         t0.Add(24 * time.Hour).Unix(),
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func mint(t *testing.T, method jwt.SigningMethod, c jwt.MapClaims, secret string) string {
	t.Helper()
	token, err := jwt.NewWithClaims(method, c).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func validToken(t *testing.T) string {
	return mint(t, jwt.SigningMethodHS256, claims(nil), testSecret)
}

// do sends a GET with token as the Authorization header ("" sends none).
func do(ts *httptest.Server, path, token string) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

func get(t *testing.T, ts *httptest.Server, path, token string) (int, http.Header, []byte) {
	t.Helper()
	status, header, body, err := do(ts, path, token)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return status, header, body
}

// getJSON GETs path with a valid token and decodes the JSON answer into v.
func getJSON(t *testing.T, ts *httptest.Server, path string, v any) int {
	t.Helper()
	status, header, body := get(t, ts, path, validToken(t))
	if ct := header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", path, ct)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return status
}

type pageInfoJSON struct {
	CurrentPage, PerPage, LastPage, Total int
}

type timelogJSON struct {
	Start string
	End   *string
}

type participantJSON struct {
	ParticipantID string
	Timelog       []timelogJSON
}

type sessionJSON struct {
	ID           string `json:"_id"`
	Status       string
	End          *string
	Participants []participantJSON
}

type activeJSON struct {
	PageInfo pageInfoJSON
	Data     []sessionJSON
}

// activeIDs fetches one page of active participants and returns its pageInfo and
// the participantIds on it.
func activeIDs(t *testing.T, ts *httptest.Server, sessionID, query string) (pageInfoJSON, []string) {
	t.Helper()
	var page activeJSON
	path := "/v2/sessions/" + sessionID + "/participants/active" + query
	if status := getJSON(t, ts, path, &page); status != http.StatusOK {
		t.Fatalf("GET %s: status %d", path, status)
	}
	if len(page.Data) != 1 {
		t.Fatalf("GET %s: %d elements in data, want 1", path, len(page.Data))
	}
	ids := []string{}
	for _, p := range page.Data[0].Participants {
		ids = append(ids, p.ParticipantID)
	}
	return page.PageInfo, ids
}

func startWith(s *Server, sessionID string, ids ...string) {
	s.StartSession(sessionID, roomID)
	for _, id := range ids {
		s.Join(sessionID, id, "Name of "+id)
	}
}

// op is one change of the world in a timelog scenario, at a time of the test day.
type op struct {
	at, do, id string // do: join, leave or end
}

func TestTimelog(t *testing.T) {
	closed := func(start, end string) Stint {
		return Stint{SessionID: sessionID, Start: at(start), End: new(at(end))}
	}
	open := func(start string) Stint { return Stint{SessionID: sessionID, Start: at(start)} }
	by := func(id string, st Stint) Stint { st.ParticipantID = id; return st }
	tests := []struct {
		name       string
		ops        []op
		want       []Stint
		wantActive []string
	}{{
		name:       "first join opens an entry",
		ops:        []op{{"09:00:00", "join", "a"}},
		want:       []Stint{by("a", open("09:00:00"))},
		wantActive: []string{"a"},
	}, {
		name: "leave closes it",
		ops:  []op{{"09:00:00", "join", "a"}, {"09:00:01", "leave", "a"}},
		want: []Stint{by("a", closed("09:00:00", "09:00:01"))},
	}, {
		name:       "rejoin appends a new entry",
		ops:        []op{{"09:00:00", "join", "a"}, {"09:00:01", "leave", "a"}, {"09:00:02", "join", "a"}},
		want:       []Stint{by("a", closed("09:00:00", "09:00:01")), by("a", open("09:00:02"))},
		wantActive: []string{"a"},
	}, {
		name:       "a second connection kicks the first",
		ops:        []op{{"09:00:00", "join", "a"}, {"09:00:05", "join", "a"}},
		want:       []Stint{by("a", closed("09:00:00", "09:00:05")), by("a", open("09:00:05"))},
		wantActive: []string{"a"},
	}, {
		name: "leave when absent changes nothing",
		ops:  []op{{"09:00:00", "leave", "a"}, {"09:00:01", "join", "a"}, {"09:00:02", "leave", "a"}, {"09:00:03", "leave", "a"}},
		want: []Stint{by("a", closed("09:00:01", "09:00:02"))},
	}, {
		name: "list order is first-join order, whoever rejoins",
		ops: []op{
			{"09:00:00", "join", "a"}, {"09:00:01", "join", "b"},
			{"09:00:02", "leave", "a"}, {"09:00:03", "join", "a"},
		},
		want: []Stint{
			by("a", closed("09:00:00", "09:00:02")), by("b", open("09:00:01")), by("a", open("09:00:03")),
		},
		wantActive: []string{"a", "b"},
	}, {
		name: "stints order by start, then participantId",
		ops:  []op{{"09:00:00", "join", "z"}, {"09:00:00", "join", "y"}, {"09:00:01", "join", "a"}},
		want: []Stint{
			by("y", open("09:00:00")), by("z", open("09:00:00")), by("a", open("09:00:01")),
		},
		wantActive: []string{"z", "y", "a"},
	}, {
		name: "end closes every open entry; later joins are ignored",
		ops: []op{
			{"09:00:00", "join", "a"}, {"09:00:01", "join", "b"}, {"09:00:02", "leave", "b"},
			{"09:00:03", "end", ""}, {"09:00:04", "join", "c"},
		},
		want: []Stint{by("a", closed("09:00:00", "09:00:03")), by("b", closed("09:00:01", "09:00:02"))},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clock, ts := newTestServer(t)
			s.StartSession(sessionID, roomID)
			for _, o := range tt.ops {
				clock.Set(at(o.at))
				switch o.do {
				case "join":
					s.Join(sessionID, o.id, "Name of "+o.id)
				case "leave":
					s.Leave(sessionID, o.id)
				case "end":
					s.EndSession(sessionID)
				}
			}
			if d := cmp.Diff(tt.want, s.Stints(sessionID)); d != "" {
				t.Errorf("Stints (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantActive, s.Active(sessionID)); d != "" {
				t.Errorf("Active (-want +got):\n%s", d)
			}
			// Over HTTP: the active participants, each with its whole timelog.
			var page activeJSON
			getJSON(t, ts, "/v2/sessions/"+sessionID+"/participants/active", &page)
			var want []participantJSON
			for _, id := range tt.wantActive {
				want = append(want, participantJSON{ParticipantID: id, Timelog: timelogOf(tt.want, id)})
			}
			if d := cmp.Diff(want, page.Data[0].Participants, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("active endpoint (-want +got):\n%s", d)
			}
		})
	}
}

// timelogOf is participant id's timelog as the API writes it.
func timelogOf(stints []Stint, id string) []timelogJSON {
	var out []timelogJSON
	for _, st := range stints {
		if st.ParticipantID != id {
			continue
		}
		e := timelogJSON{Start: st.Start.Format(timeLayout)}
		if st.End != nil {
			e.End = new(st.End.Format(timeLayout))
		}
		out = append(out, e)
	}
	return out
}

func TestEndedSession(t *testing.T) {
	s, clock, ts := newTestServer(t)
	startWith(s, sessionID, "a", "b")
	clock.Set(at("09:15:00.123"))
	s.EndSession(sessionID)

	var page activeJSON
	getJSON(t, ts, "/v2/sessions/"+sessionID+"/participants/active", &page)
	want := activeJSON{
		PageInfo: pageInfoJSON{1, 20, 1, 0},
		Data: []sessionJSON{{
			ID: sessionID, Status: "ended", End: new("2023-07-24T09:15:00.123Z"), Participants: []participantJSON{},
		}},
	}
	if d := cmp.Diff(want, page); d != "" {
		t.Errorf("active endpoint (-want +got):\n%s", d)
	}
	if got := s.Active(sessionID); got != nil {
		t.Errorf("Active = %q, want none", got)
	}
}

func TestRequestsCountsEveryRequest(t *testing.T) {
	s, _, ts := newTestServer(t)
	startWith(s, sessionID, "a")
	s.InjectFault(Fault{PathContains: "/faulty", Status: http.StatusBadGateway})
	requests := []struct {
		path, token string
		want        int
	}{
		{"/v2/sessions/" + sessionID + "/participants/active", validToken(t), http.StatusOK},
		{"/v2/sessions/" + sessionID, "not-a-token", http.StatusUnauthorized},
		{"/v2/nowhere", validToken(t), http.StatusNotFound},
		{"/v2/sessions/" + sessionID + "/participants?page=0", validToken(t), http.StatusBadRequest},
		// A fault acts before authentication, as a gateway in front of the API would.
		{"/faulty", "", http.StatusBadGateway},
	}
	for i, r := range requests {
		if status, _, _ := get(t, ts, r.path, r.token); status != r.want {
			t.Errorf("GET %s: status %d, want %d", r.path, status, r.want)
		}
		if got := s.Requests(); got != i+1 {
			t.Errorf("after GET %s: Requests() = %d, want %d", r.path, got, i+1)
		}
	}
}

// TestConcurrentUse is for the race detector: world changes, HTTP, faults, ground
// truth and churn all at once.
func TestConcurrentUse(t *testing.T) {
	s, _, ts := newTestServer(t)
	s.StartSession("churned", roomID)
	s.Join("churned", "first", "First")
	s.StartSession(sessionID, roomID)
	ctx, cancel := context.WithCancel(t.Context())
	var churn sync.WaitGroup
	churn.Go(func() { s.Churn(ctx, ChurnConfig{Rooms: 1, Interval: time.Microsecond}) })

	const n = 20
	token := validToken(t)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("p%02d", i)
			s.Join(sessionID, id, id)
			s.InjectFault(Fault{PathContains: "/never"})
			if status, _, body, err := do(ts, "/v2/sessions/"+sessionID+"/participants/active", token); err != nil || status != http.StatusOK {
				t.Errorf("GET: %v, status %d, body %s", err, status, body)
			}
			s.Stints(sessionID)
			s.Active(sessionID)
			s.Leave(sessionID, id)
		})
	}
	wg.Wait()
	cancel()
	churn.Wait()

	if got := s.Requests(); got != n {
		t.Errorf("Requests() = %d, want %d", got, n)
	}
	stints := s.Stints(sessionID)
	if len(stints) != n {
		t.Errorf("%d stints, want %d", len(stints), n)
	}
	for _, st := range stints {
		if st.End == nil {
			t.Errorf("stint of %s still open after its leave", st.ParticipantID)
		}
	}
}
