package sim

import (
	"bytes"
	"cmp"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Fault changes how the next matching requests are answered, for tests of a
// client's error handling. Faults act before authentication, as a gateway or load
// balancer in front of the API would.
type Fault struct {
	PathContains string        // "" matches any request path
	PathSuffix   string        // "" matches any; "/participants" only the list of all participants
	Page         int           // 0 matches any page; else only requests for that page (no ?page= is page 1)
	Status       int           // 0 = serve the normal response (use with Delay or AfterServe)
	Header       http.Header   // extra response headers, e.g. Retry-After
	Body         string        // raw body to send instead of the normal one (when Status != 0 or Body != "")
	Delay        time.Duration // wait before answering; a request cancelled meanwhile gets no answer
	Times        int           // number of matching requests it applies to; 0 or 1 = once
	AfterServe   func()        // called outside the lock once the response is written, e.g. to change the world mid-scan
	// Rewrite, if set, changes the body of the normal response before it is sent:
	// an API that answers with odd values.
	Rewrite func(body []byte) []byte
}

type queuedFault struct {
	Fault
	left int // matching requests still to affect
}

// InjectFault queues f. Queued faults are consumed in FIFO order: each request gets
// the first queued fault it matches.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &queuedFault{Fault: f, left: max(f.Times, 1)})
}

// ClearFaults drops every queued fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// nextFault consumes one use of the first queued fault that r matches. s.mu must
// be held.
func (s *Server) nextFault(r *http.Request) (Fault, bool) {
	for i, q := range s.faults {
		if !q.matches(r) {
			continue
		}
		if q.left--; q.left == 0 {
			s.faults = slices.Delete(s.faults, i, i+1)
		}
		return q.Fault, true
	}
	return Fault{}, false
}

func (f *Fault) matches(r *http.Request) bool {
	if !strings.Contains(r.URL.Path, f.PathContains) || !strings.HasSuffix(r.URL.Path, f.PathSuffix) {
		return false
	}
	if f.Page == 0 {
		return true
	}
	page, err := positiveParam(r.URL.Query(), "page", defaultPage)
	return err == nil && page == f.Page
}

// apply answers r as f says; serve writes the normal response.
func (f Fault) apply(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
	if f.Delay > 0 {
		select {
		case <-r.Context().Done():
			return // the client went away: there is no one to answer
		case <-time.After(f.Delay):
		}
	}
	// Set first, so that a fault's own Content-Type (say, an HTML error page) wins.
	w.Header().Set("Content-Type", "application/json")
	for k, vs := range f.Header {
		w.Header()[http.CanonicalHeaderKey(k)] = slices.Clone(vs)
	}
	switch {
	case f.Status != 0 || f.Body != "":
		w.WriteHeader(cmp.Or(f.Status, http.StatusOK))
		_, _ = io.WriteString(w, f.Body) // fails only if the client has gone
	case f.Rewrite != nil:
		rec := &recorder{header: w.Header(), status: http.StatusOK}
		serve(rec, r)
		w.WriteHeader(rec.status)
		_, _ = w.Write(f.Rewrite(rec.body.Bytes()))
	default:
		serve(w, r)
	}
	if f.AfterServe != nil {
		f.AfterServe()
	}
}

// recorder keeps a response for Rewrite.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(status int)      { r.status = status }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
