package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of the documented page and perPage query parameters.
const (
	defaultPage    = 1
	defaultPerPage = 20
)

// apiError is the error body of the documented 401, used for every error.
type apiError struct {
	StatusCode int    `json:"statusCode"`
	Error      string `json:"error"`
	Message    string `json:"message"`
}

// ServeHTTP counts the request, applies the first queued fault it matches, checks
// the token and answers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	f, ok := s.nextFault(r)
	s.mu.Unlock()
	if ok {
		f.apply(w, r, s.serve)
		return
	}
	s.serve(w, r)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != publicKeyPath && !s.authorized(r.Header.Get("Authorization")) {
		status, body := errorBody(http.StatusUnauthorized, "Token is invalid or expired")
		writeJSON(w, status, body)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	handle := func(pattern string, h func(*http.Request) (int, any)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			status, body := h(r)
			writeJSON(w, status, body)
		})
	}
	handle("GET /v2/sessions/{sessionId}/participants/active", s.activeParticipants)
	handle("GET /v2/sessions/{sessionId}/participants", s.allParticipants)
	handle("GET /v2/sessions/{sessionId}", s.getSession)
	handle("GET /v2/sessions/{$}", s.listSessions)
	handle("GET /v2/sessions", s.listSessions)
	mux.HandleFunc("GET "+publicKeyPath, s.publicKey)
	// The catch-all keeps unknown paths and methods in the API's JSON error form
	// rather than ServeMux's plain-text 404 and 405.
	handle("/", func(r *http.Request) (int, any) {
		return errorBody(http.StatusNotFound, "Cannot "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// authorized reports whether token is an unexpired HS256 JWT signed with the secret,
// for this API key, with the role "crawler" that server-side REST calls need.
func (s *Server) authorized(token string) bool {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims,
		func(*jwt.Token) (any, error) { return s.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now),
	)
	if err != nil {
		return false
	}
	key, _ := claims["apikey"].(string)
	roles, _ := claims["roles"].([]any)
	return key == s.apiKey && slices.Contains(roles, any("crawler"))
}

func (s *Server) activeParticipants(r *http.Request) (int, any) {
	page, perPage, err := pageParams(r.URL.Query())
	if err != nil {
		return errorBody(http.StatusBadRequest, err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[r.PathValue("sessionId")]
	if sess == nil {
		return sessionNotFound()
	}
	present := sess.present()
	if s.legacy {
		return http.StatusOK, envelope[sessionDoc]{Data: s.doc(sess, present, baseURL(r), time.Time{})}
	}
	pts, info := paginate(present, page, perPage)
	return http.StatusOK, envelope[[]sessionDoc]{PageInfo: &info, Data: []sessionDoc{s.doc(sess, pts, baseURL(r), time.Time{})}}
}

func (s *Server) allParticipants(r *http.Request) (int, any) {
	page, perPage, err := pageParams(r.URL.Query())
	if err != nil {
		return errorBody(http.StatusBadRequest, err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[r.PathValue("sessionId")]
	if sess == nil {
		return sessionNotFound()
	}
	pts, info := paginate(sess.participants, page, perPage)
	var shownUntil time.Time // the list's lag: ends after it are not shown yet
	if s.listLag > 0 {
		shownUntil = s.clock().Add(-s.listLag)
	}
	return http.StatusOK, envelope[sessionDoc]{PageInfo: &info, Data: s.doc(sess, pts, baseURL(r), shownUntil)}
}

func (s *Server) getSession(r *http.Request) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[r.PathValue("sessionId")]
	if sess == nil {
		return sessionNotFound()
	}
	return http.StatusOK, summary(sess, baseURL(r), false)
}

// listSessions answers the sessions, of one room if roomId is given, newest first.
func (s *Server) listSessions(r *http.Request) (int, any) {
	q := r.URL.Query()
	page, perPage, err := pageParams(q)
	if err != nil {
		return errorBody(http.StatusBadRequest, err.Error())
	}
	roomID := q.Get("roomId")
	s.mu.Lock()
	defer s.mu.Unlock()
	var matched []*session
	for _, sess := range slices.Backward(s.order) {
		if roomID == "" || sess.roomID == roomID {
			matched = append(matched, sess)
		}
	}
	// Stable over reverse creation order, so sessions started in the same
	// millisecond still list the later one first.
	slices.SortStableFunc(matched, func(a, b *session) int { return b.start.Compare(a.start) })
	sessions, info := paginate(matched, page, perPage)
	data := make([]sessionSummary, 0, len(sessions))
	for _, sess := range sessions {
		data = append(data, summary(sess, baseURL(r), true))
	}
	return http.StatusOK, envelope[[]sessionSummary]{PageInfo: &info, Data: data}
}

// pageParams reads page and perPage, which must be positive integers when given.
func pageParams(q url.Values) (page, perPage int, err error) {
	if page, err = positiveParam(q, "page", defaultPage); err != nil {
		return 0, 0, err
	}
	if perPage, err = positiveParam(q, "perPage", defaultPerPage); err != nil {
		return 0, 0, err
	}
	return page, perPage, nil
}

func positiveParam(q url.Values, name string, def int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s must be a positive integer", name)
	}
	return n, nil
}

// paginate returns one page of items and its pageInfo. A page past the last one is
// empty. Bounds are computed so that no huge page or perPage can overflow.
func paginate[T any](items []T, page, perPage int) ([]T, pageInfo) {
	total := len(items)
	last := total / perPage
	if total%perPage != 0 {
		last++
	}
	info := pageInfo{CurrentPage: page, PerPage: perPage, LastPage: max(1, last), Total: total}
	if page > info.LastPage {
		return nil, info
	}
	lo := (page - 1) * perPage
	return items[lo : lo+min(perPage, total-lo)], info
}

func sessionNotFound() (int, any) {
	return errorBody(http.StatusNotFound, "Session not found")
}

func errorBody(status int, message string) (int, any) {
	return status, apiError{StatusCode: status, Error: http.StatusText(status), Message: message}
}

// baseURL is where the client reached this server, for the links in documents.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// An error here means the client has gone: there is no one left to tell.
	_ = json.NewEncoder(w).Encode(body)
}
